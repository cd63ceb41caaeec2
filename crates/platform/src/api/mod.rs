//! The OpenWhisk-compatible REST API (axum), one module per OpenWhisk entity (actions,
//! packages, triggers, rules, activations, web actions, API routes), plus `/metrics` and
//! `/health`. Every request (but web actions and API routes) is authenticated with HTTP
//! Basic `uuid:key`; a key writes only its own namespace (`_` means "mine") and reads its
//! own, `whisk.system` and other namespaces' shared packages. Every error, including
//! unknown routes, wrong methods, oversized bodies and bad query strings, is OpenWhisk's
//! JSON `{"error", "code"}`.

mod actions;
mod activations;
mod packages;
mod routes;
mod rules;
pub(crate) mod triggers;
mod web;

use crate::Platform;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub use crate::request::MAX_PARAMS_BYTES;
/// Largest request body, bytes (action create/update has its own, larger limit).
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Largest action create/update body: a 64 MiB module in base64 plus JSON around it.
pub const MAX_ACTION_BODY_BYTES: usize = (ditto_compile::MAX_MODULE_BYTES / 3 + 1) * 4 + (1 << 20);

/// An API error: status and OpenWhisk-style `{"error", "code"}` body.
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = hex::encode(rand::random::<[u8; 8]>());
        let mut r = (self.0, Json(json!({"error": self.1, "code": code}))).into_response();
        if self.0 == StatusCode::TOO_MANY_REQUESTS || self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn err(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(status, msg.into())
}

/// A 500 whose details (paths, database errors) go to the server log only; the caller
/// gets a reference to quote.
pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    let reference = hex::encode(rand::random::<[u8; 6]>());
    tracing::error!(error = %e, reference, "internal error");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "Internal server error (reference {reference}; the operator's log has the details)."
        ),
    )
}

/// 413 or 400 for a refused request body.
pub(crate) fn body_error(e: crate::request::BodyError) -> ApiError {
    match e {
        crate::request::BodyError::TooLarge(m) => err(StatusCode::PAYLOAD_TOO_LARGE, m),
        crate::request::BodyError::Malformed(m) => err(StatusCode::BAD_REQUEST, m),
    }
}

pub(crate) fn not_found() -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    )
}

/// The router.
pub fn router(p: Arc<Platform>) -> Router {
    let ns = "/api/v1/namespaces/{ns}";
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1", get(info))
        .route("/api/v1/namespaces", get(namespaces))
        .route("/api/v1/namespaces/{ns}", get(namespace_contents))
        .route(&format!("{ns}/limits"), get(limits))
        .route(&format!("{ns}/actions"), get(actions::list_actions))
        .route(
            &format!("{ns}/actions/{{name}}"),
            get(actions::get_action)
                .put(actions::put_action)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_ACTION_BODY_BYTES))
                .delete(actions::delete_action)
                .post(actions::invoke),
        )
        .route(
            &format!("{ns}/actions/{{pkg}}/{{name}}"),
            get(actions::get_packaged)
                .put(actions::put_packaged)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_ACTION_BODY_BYTES))
                .delete(actions::delete_packaged)
                .post(actions::invoke_packaged),
        )
        .route(&format!("{ns}/packages"), get(packages::list))
        .route(
            &format!("{ns}/packages/{{name}}"),
            get(packages::get)
                .put(packages::put)
                .delete(packages::delete),
        )
        .route(&format!("{ns}/triggers"), get(triggers::list))
        .route(
            &format!("{ns}/triggers/{{name}}"),
            get(triggers::get)
                .put(triggers::put)
                .delete(triggers::delete)
                .post(triggers::fire_handler),
        )
        .route(&format!("{ns}/rules"), get(rules::list))
        .route(
            &format!("{ns}/rules/{{name}}"),
            get(rules::get)
                .put(rules::put)
                .delete(rules::delete)
                .post(rules::set_status),
        )
        .route("/api/v1/web/{ns}/{pkg}/{*rest}", any(web::handle))
        .route("/api/{ns}/{*rest}", any(routes::serve))
        .route(
            &format!("{ns}/activations"),
            get(activations::list_activations),
        )
        .route(
            &format!("{ns}/activations/{{id}}"),
            get(activations::get_activation),
        )
        .route(
            &format!("{ns}/activations/{{id}}/result"),
            get(activations::activation_result),
        )
        .route(
            &format!("{ns}/activations/{{id}}/logs"),
            get(activations::activation_logs),
        )
        .fallback(|| async { not_found() })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(p)
}

/// Marks a response a web action produced: its status and body are the action's own.
#[derive(Clone, Copy)]
pub(crate) struct ActionResponse;

/// Turn every error the framework produces (405, 413, query and body rejections, ...)
/// into OpenWhisk's JSON `{"error", "code"}`.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || resp.extensions().get::<ActionResponse>().is_some()
    {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let msg = match status {
        StatusCode::NOT_FOUND => "The requested resource does not exist.".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed.".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "The request content was malformed: the request is larger than the limit of {MAX_BODY_BYTES} bytes."
        ),
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_string(),
        _ => format!("The request content was malformed: {text}"),
    };
    err(status, msg).into_response()
}

/// `GET /namespaces/{ns}`: the namespace's actions, packages, triggers and rules.
async fn namespace_contents(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let store = p.store.clone();
    let v = tokio::task::spawn_blocking(move || -> Result<Value, crate::store::StoreError> {
        use crate::entity::{collection, Package, Rule, Trigger};
        let actions: Vec<Value> = store
            .list_actions(&ns, 200, 0)?
            .iter()
            .map(|a| a.to_json(false))
            .collect();
        let packages: Vec<Value> = store
            .list_entities::<Package>(collection::PACKAGES, Some(&ns), 200, 0)?
            .into_iter()
            .map(|s| packages::with_version(s).to_json(None))
            .collect();
        let triggers: Vec<Value> = store
            .list_entities::<Trigger>(collection::TRIGGERS, Some(&ns), 200, 0)?
            .into_iter()
            .map(|s| triggers::with_version(s).to_json(&[]))
            .collect();
        let rules: Vec<Value> = store
            .list_entities::<Rule>(collection::RULES, Some(&ns), 200, 0)?
            .into_iter()
            .map(|s| rules::with_version(s).to_json())
            .collect();
        Ok(json!({"name": ns, "actions": actions, "packages": packages, "triggers": triggers, "rules": rules}))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(v))
}

/// `GET /namespaces/{ns}/limits`: the limits that apply.
async fn limits(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> ApiResult<Json<Value>> {
    namespace(&p, &headers, &ns)?;
    Ok(Json(json!({
        "concurrentInvocations": p.config.max_inflight,
        "minActionTimeout": 100, "maxActionTimeout": 300_000,
        "minActionMemory": 128, "maxActionMemory": 512,
        "maxParameterSize": MAX_PARAMS_BYTES,
    })))
}

/// Authenticate for a read of `path_ns`: returns (caller, target namespace); the target
/// may be another namespace (the entity module then checks that it is shared).
pub(crate) fn reader(
    p: &Platform,
    headers: &HeaderMap,
    path_ns: &str,
) -> ApiResult<(String, String)> {
    let caller = authenticate(p, headers)?;
    let target = if path_ns == "_" {
        caller.clone()
    } else {
        if !crate::names::valid_name(path_ns) {
            return Err(not_found());
        }
        path_ns.to_string()
    };
    Ok((caller, target))
}

/// A `Json` body parsed with OpenWhisk's 400 on malformed content.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("The request content was malformed: {e}"),
        )
    })
}

/// `{collection: n}`, OpenWhisk's answer to `count=true`.
pub(crate) fn count_json(collection: &str, n: u64) -> Json<Value> {
    Json(json!({ collection: n }))
}

/// Map a store conflict to 409, anything else to 500.
pub(crate) fn store_err(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::Conflict => err(StatusCode::CONFLICT, "resource already exists"),
        e => internal(e),
    }
}

async fn metrics(State(p): State<Arc<Platform>>) -> impl IntoResponse {
    p.pools.tick();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        p.metrics.render(),
    )
}

async fn info() -> Json<Value> {
    Json(
        json!({"description": "Ditto: elastic confidential micro-VMs (OpenWhisk-compatible API)", "api_paths": ["/api/v1"]}),
    )
}

/// The caller's namespace, from HTTP Basic `uuid:key`.
pub(crate) fn authenticate(p: &Platform, headers: &HeaderMap) -> ApiResult<String> {
    let unauthorized = || {
        err(
            StatusCode::UNAUTHORIZED,
            "The supplied authentication is invalid.",
        )
    };
    let (uuid, key) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::request::basic_auth)
        .ok_or_else(unauthorized)?;
    p.store
        .authenticate(&uuid, &key)
        .map_err(internal)?
        .ok_or_else(unauthorized)
}

/// Authenticate and check that the path's namespace is the caller's.
pub(crate) fn namespace(p: &Platform, headers: &HeaderMap, path_ns: &str) -> ApiResult<String> {
    let ns = authenticate(p, headers)?;
    if path_ns == "_" || path_ns == ns {
        Ok(ns)
    } else {
        Err(err(
            StatusCode::FORBIDDEN,
            format!("The supplied authentication is not authorized to access '{path_ns}'."),
        ))
    }
}

async fn namespaces(State(p): State<Arc<Platform>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    Ok(Json(json!([authenticate(&p, &headers)?])))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    pub(crate) limit: Option<u32>,
    pub(crate) skip: Option<u32>,
    pub(crate) name: Option<String>,
    pub(crate) code: Option<bool>,
    pub(crate) count: Option<bool>,
    pub(crate) docs: Option<bool>,
    pub(crate) since: Option<i64>,
    pub(crate) upto: Option<i64>,
}

pub(crate) fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1") | Some(""))
}
