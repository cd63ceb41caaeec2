//! The OpenWhisk-compatible REST API (axum), one module per OpenWhisk entity, plus
//! `/metrics` and `/health`. Every request is authenticated with HTTP Basic `uuid:key`; a
//! key reaches only its own namespace (`_` means "mine").

mod actions;
mod activations;

use crate::Platform;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest invocation parameters, bytes (OpenWhisk: 1 MB).
pub const MAX_PARAMS_BYTES: usize = 1_000_000;
/// Largest request body (an action with its base64 module), bytes.
pub const MAX_BODY_BYTES: usize = 4 << 20;

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

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "internal error");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("Internal error: {e}"),
    )
}

pub(crate) fn not_found() -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    )
}

/// The router.
/// The router.
pub fn router(p: Arc<Platform>) -> Router {
    let ns = "/api/v1/namespaces/{ns}";
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1", get(info))
        .route("/api/v1/namespaces", get(namespaces))
        .route(&format!("{ns}/actions"), get(actions::list_actions))
        .route(
            &format!("{ns}/actions/{{name}}"),
            get(actions::get_action)
                .put(actions::put_action)
                .delete(actions::delete_action)
                .post(actions::invoke),
        )
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
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(p)
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
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let encoded = value.strip_prefix("Basic ").ok_or_else(unauthorized)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| unauthorized())?;
    let text = String::from_utf8(decoded).map_err(|_| unauthorized())?;
    let (uuid, key) = text.split_once(':').ok_or_else(unauthorized)?;
    p.store
        .authenticate(uuid, key)
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
}

pub(crate) fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1") | Some(""))
}
