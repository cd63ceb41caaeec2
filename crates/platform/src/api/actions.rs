//! Actions: create/update (PUT), get, list, delete, and invoke (POST), directly in a
//! namespace (`/actions/{name}`) or in a package (`/actions/{pkg}/{name}`), including
//! sequences (kind `sequence`, `exec.components`).

use super::{
    count_json, err, internal, namespace, not_found, reader, store_err, truthy, ApiResult,
    ListQuery,
};
use crate::model::{self, Action, ActionPut, Activation, Limits, KIND_SEQUENCE};
use crate::names::{check_name, EntityPath, SYSTEM_NAMESPACE};
use crate::Platform;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn list_actions(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (caller, target) = reader(&p, &headers, &ns)?;
    if target == SYSTEM_NAMESPACE {
        let list: Vec<Value> = crate::system::ACTIONS
            .iter()
            .filter_map(|(n, _, _)| crate::system::action(n))
            .map(|a| a.to_json(false))
            .collect();
        if q.count.unwrap_or(false) {
            return Ok(count_json("actions", list.len() as u64));
        }
        return Ok(Json(Value::Array(list)));
    }
    if target != caller {
        namespace(&p, &headers, &ns)?;
    }
    if q.count.unwrap_or(false) {
        let n = p.store.count_actions(&caller, None).map_err(internal)?;
        return Ok(count_json("actions", n));
    }
    let list = p
        .store
        .list_actions(&caller, q.limit.unwrap_or(30).min(200), q.skip.unwrap_or(0))
        .map_err(internal)?;
    Ok(Json(Value::Array(
        list.iter().map(|a| a.to_json(false)).collect(),
    )))
}

async fn get_inner(
    p: &Platform,
    headers: &HeaderMap,
    ns: &str,
    pkg: Option<&str>,
    name: &str,
    q: &ListQuery,
) -> ApiResult<Json<Value>> {
    let (caller, target) = reader(p, headers, ns)?;
    let path = EntityPath::new(&target, pkg, name);
    let t = p.resolve(&caller, &path)?;
    Ok(Json(t.action.to_json(q.code.unwrap_or(true))))
}

pub(super) async fn get_action(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    get_inner(&p, &headers, &ns, None, &name, &q).await
}

pub(super) async fn get_packaged(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, pkg, name)): Path<(String, String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    get_inner(&p, &headers, &ns, Some(&pkg), &name, &q).await
}

#[derive(Deserialize)]
pub(super) struct PutQuery {
    overwrite: Option<bool>,
}

pub(super) async fn put_action(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<PutQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    put_inner(p, headers, ns, None, name, q, body).await
}

pub(super) async fn put_packaged(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, pkg, name)): Path<(String, String, String)>,
    Query(q): Query<PutQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    put_inner(p, headers, ns, Some(pkg), name, q, body).await
}

async fn put_inner(
    p: Arc<Platform>,
    headers: HeaderMap,
    ns: String,
    pkg: Option<String>,
    name: String,
    q: PutQuery,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    check_name(&name).map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
    if let Some(pkg) = &pkg {
        check_name(pkg).map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
        let package = p.package(&ns, pkg)?.ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                format!("The package '{pkg}' does not exist."),
            )
        })?;
        if package.binding.is_some() {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!("'{pkg}' is a package binding; actions cannot be created in a binding."),
            ));
        }
    }
    let path = EntityPath::new(&ns, pkg.as_deref(), &name);
    let name = path.store_name();
    let put: ActionPut = crate::request::action_put(&body).map_err(super::body_error)?;
    let overwrite = q.overwrite.unwrap_or(false);
    let existing = p.action(&ns, &name)?;
    if existing.is_some() && !overwrite {
        return Err(err(StatusCode::CONFLICT, "resource already exists"));
    }
    let mut kind = existing
        .as_ref()
        .map(|a| a.kind.clone())
        .unwrap_or_else(|| "wasm".into());
    let code = match (&put.exec, &existing) {
        (Some(exec), _) if exec.kind == KIND_SEQUENCE => {
            let components = exec.components.as_deref().ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    "A sequence needs exec.components (a list of action names).",
                )
            })?;
            let components = p.check_sequence(&ns, &path, components)?;
            kind = KIND_SEQUENCE.into();
            serde_json::to_vec(&components).map_err(internal)?
        }
        (Some(exec), _) => {
            kind = "wasm".into();
            if exec.kind != "wasm" {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("The action kind '{}' is not supported; Ditto runs kind 'wasm' (a wasm32-wasip1 module, base64 in exec.code).", exec.kind),
                ));
            }
            let b64 = exec
                .code
                .as_deref()
                .ok_or_else(|| err(StatusCode::BAD_REQUEST, "exec.code is required"))?;
            let code = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    err(
                        StatusCode::BAD_REQUEST,
                        format!("exec.code is not valid base64: {e}"),
                    )
                })?;
            if !code.starts_with(b"\0asm") {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "exec.code is not a WebAssembly module",
                ));
            }
            if code.len() > ditto_vmm::function::MAX_MODULE {
                return Err(err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "The module exceeds {} bytes.",
                        ditto_vmm::function::MAX_MODULE
                    ),
                ));
            }
            code
        }
        (None, Some(old)) => old.code.clone(),
        (None, None) => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "exec is required to create an action",
            ))
        }
    };
    let base = existing.as_ref().map(|a| a.limits).unwrap_or_default();
    let lp = put.limits.unwrap_or_default();
    let limits = Limits {
        timeout: lp.timeout.unwrap_or(base.timeout),
        memory: lp.memory.unwrap_or(base.memory),
        logs: lp.logs.unwrap_or(base.logs),
        concurrency: lp.concurrency.unwrap_or(base.concurrency),
    };
    limits
        .validate()
        .map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
    let annotations = put
        .annotations
        .or_else(|| existing.as_ref().map(|a| a.annotations.clone()))
        .unwrap_or_default();
    let (policy, opts) = model::policy_annotation(&annotations);
    ditto_sched::build_policy(&policy, &opts).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("Invalid policy annotation: {e}"),
        )
    })?;
    if kind == "wasm" {
        // Validate and compile ahead of time now, so a bad module is refused here (400)
        // and a cold start never compiles.
        let (pools, module) = (p.pools.clone(), code.clone());
        tokio::task::spawn_blocking(move || pools.artifacts().compile(&module))
            .await
            .map_err(internal)?
            .map_err(|e| match e {
                crate::artifacts::ArtifactError::Invalid(e) => {
                    err(StatusCode::BAD_REQUEST, e.to_string())
                }
                e => internal(e),
            })?;
    }
    let action = Action {
        namespace: ns.clone(),
        name: name.clone(),
        version: String::new(),
        kind,
        code,
        parameters: put
            .parameters
            .or_else(|| existing.as_ref().map(|a| a.parameters.clone()))
            .unwrap_or_default(),
        limits,
        annotations,
        updated: model::now_ms(),
    };
    let store = p.store.clone();
    let saved = tokio::task::spawn_blocking(move || store.put_action(action, overwrite))
        .await
        .map_err(internal)?
        .map_err(store_err)?;
    p.forget_action(&ns, &name);
    let prewarm = saved
        .annotation("prewarm")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let saved = Arc::new(saved);
    p.cache_action(saved.clone());
    if prewarm && saved.kind == "wasm" {
        let (p2, a2) = (p.clone(), saved.clone());
        tokio::spawn(async move {
            if let Err(e) = p2.pools.reserve(&a2).await {
                tracing::warn!(action = %a2.name, error = %e, "prewarm failed");
            }
        });
    }
    Ok(Json(saved.to_json(true)))
}

async fn delete_inner(
    p: &Platform,
    headers: &HeaderMap,
    ns: &str,
    pkg: Option<&str>,
    name: &str,
) -> ApiResult<Json<Value>> {
    let ns = namespace(p, headers, ns)?;
    let name = EntityPath::new(&ns, pkg, name).store_name();
    let a = p.action(&ns, &name)?.ok_or_else(not_found)?;
    p.store.delete_action(&ns, &name).map_err(internal)?;
    p.forget_action(&ns, &name);
    p.pools.remove(&ns, &name);
    Ok(Json(a.to_json(false)))
}

pub(super) async fn delete_action(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    delete_inner(&p, &headers, &ns, None, &name).await
}

pub(super) async fn delete_packaged(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, pkg, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    delete_inner(&p, &headers, &ns, Some(&pkg), &name).await
}

#[derive(Deserialize)]
pub(super) struct InvokeQuery {
    blocking: Option<String>,
    result: Option<String>,
    timeout: Option<u64>,
}

pub(super) async fn invoke(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<InvokeQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    invoke_inner(p, headers, ns, None, name, q, body).await
}

pub(super) async fn invoke_packaged(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, pkg, name)): Path<(String, String, String)>,
    Query(q): Query<InvokeQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    invoke_inner(p, headers, ns, Some(pkg), name, q, body).await
}

/// The parameters of an invocation: a JSON object of at most [`MAX_PARAMS_BYTES`].
pub(crate) fn invoke_params(body: &[u8]) -> ApiResult<serde_json::Map<String, Value>> {
    crate::request::invoke_params(body).map_err(super::body_error)
}

async fn invoke_inner(
    p: Arc<Platform>,
    headers: HeaderMap,
    ns: String,
    pkg: Option<String>,
    name: String,
    q: InvokeQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let (caller, target) = reader(&p, &headers, &ns)?;
    let params = invoke_params(&body)?;
    let path = EntityPath::new(&target, pkg.as_deref(), &name);
    let resolved = p.resolve(&caller, &path)?;
    let started = p.invoke(resolved, caller, params).await?;
    let (id, done) = (started.id, started.done);
    if !truthy(&q.blocking) {
        return Ok((StatusCode::ACCEPTED, Json(json!({"activationId": id}))).into_response());
    }
    let wait = Duration::from_millis(q.timeout.unwrap_or(60_000).clamp(1, 300_000));
    match tokio::time::timeout(wait, done).await {
        Ok(Ok(act)) => Ok(activation_response(&act, truthy(&q.result))),
        // The wait ran out, or the platform is stopping (the journal finishes it later).
        Ok(Err(_)) | Err(_) => {
            Ok((StatusCode::ACCEPTED, Json(json!({"activationId": id}))).into_response())
        }
    }
}

/// 200 for success, 502 for application/developer errors, 500 for internal errors.
pub(crate) fn activation_response(act: &Activation, result_only: bool) -> Response {
    let status = match act.status_code {
        0 => StatusCode::OK,
        1 | 2 => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = if result_only {
        act.result.clone()
    } else {
        act.to_json()
    };
    (status, Json(body)).into_response()
}
