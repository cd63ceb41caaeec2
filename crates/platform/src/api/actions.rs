//! Actions: create/update (PUT), get, list, delete, and invoke (POST).

use super::{err, internal, namespace, not_found, truthy, ApiResult, ListQuery, MAX_PARAMS_BYTES};
use crate::model::{self, Action, ActionPut, Activation, KeyValue, Limits};
use crate::pool::PoolError;
use crate::Platform;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) async fn list_actions(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let list = p
        .store
        .list_actions(&ns, q.limit.unwrap_or(30).min(200), q.skip.unwrap_or(0))
        .map_err(internal)?;
    Ok(Json(Value::Array(
        list.iter().map(|a| a.to_json(false)).collect(),
    )))
}

pub(super) async fn get_action(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let a = p.action(&ns, &name)?.ok_or_else(not_found)?;
    Ok(Json(a.to_json(q.code.unwrap_or(true))))
}

#[derive(Deserialize)]
pub(super) struct PutQuery {
    overwrite: Option<bool>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.@ ".contains(c))
        && !name.starts_with([' ', '.'])
}

pub(super) async fn put_action(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<PutQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    if !valid_name(&name) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("The name '{name}' is not a valid entity name."),
        ));
    }
    let put: ActionPut = serde_json::from_slice(&body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("The request content was malformed: {e}"),
        )
    })?;
    let overwrite = q.overwrite.unwrap_or(false);
    let existing = p.action(&ns, &name)?;
    if existing.is_some() && !overwrite {
        return Err(err(StatusCode::CONFLICT, "resource already exists"));
    }
    let code = match (&put.exec, &existing) {
        (Some(exec), _) => {
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
    let action = Action {
        namespace: ns.clone(),
        name: name.clone(),
        version: String::new(),
        kind: "wasm".into(),
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
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => {
                err(StatusCode::CONFLICT, "resource already exists")
            }
            e => internal(e),
        })?;
    p.forget_action(&ns, &name);
    let prewarm = saved
        .annotation("prewarm")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let saved = Arc::new(saved);
    p.cache_action(saved.clone());
    if prewarm {
        let (p2, a2) = (p.clone(), saved.clone());
        tokio::spawn(async move {
            if let Err(e) = p2.pools.reserve(&a2).await {
                tracing::warn!(action = %a2.name, error = %e, "prewarm failed");
            }
        });
    }
    Ok(Json(saved.to_json(false)))
}

pub(super) async fn delete_action(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let a = p.action(&ns, &name)?.ok_or_else(not_found)?;
    p.store.delete_action(&ns, &name).map_err(internal)?;
    p.forget_action(&ns, &name);
    p.pools.remove(&ns, &name);
    Ok(Json(a.to_json(false)))
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
    let accepted_at = Instant::now();
    let ns = namespace(&p, &headers, &ns)?;
    if body.len() > MAX_PARAMS_BYTES {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request content was malformed: the parameters are {} bytes, more than the limit of {MAX_PARAMS_BYTES}.", body.len()),
        ));
    }
    let mut params = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "The request content was malformed: parameters must be a JSON object.",
                ))
            }
            Err(e) => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("The request content was malformed: {e}"),
                ))
            }
        }
    };
    let action = p.action(&ns, &name)?.ok_or_else(not_found)?;
    for KeyValue { key, value } in &action.parameters {
        params.entry(key.clone()).or_insert_with(|| value.clone());
    }
    if p.inflight.load(Ordering::Acquire) >= p.config.max_inflight {
        p.metrics.throttled.inc();
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests in flight; retry later.",
        ));
    }
    // Place the invocation first: refusals (429/503) create no activation.
    let reservation = match p.pools.reserve(&action).await {
        Ok(r) => Some(r),
        Err(PoolError::Overloaded(m)) => return Err(err(StatusCode::TOO_MANY_REQUESTS, m)),
        Err(PoolError::ShuttingDown) => {
            return Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "The platform is shutting down.",
            ))
        }
        Err(e) => {
            // Accepted, but the VM could not be started: record the failure.
            let code = if matches!(e, PoolError::BadModule(_)) {
                2
            } else {
                3
            };
            let act = p
                .record_failure(&action, &ns, accepted_at, code, e.to_string())
                .await;

            return Ok(activation_response(&act, truthy(&q.result)));
        }
    };
    let blocking = truthy(&q.blocking);
    let want_result = truthy(&q.result);
    let id_and_done = p.start_invocation(action, ns, params, accepted_at, reservation);
    let (id, done) = id_and_done;
    if !blocking {
        return Ok((StatusCode::ACCEPTED, Json(json!({"activationId": id}))).into_response());
    }
    let wait = Duration::from_millis(q.timeout.unwrap_or(60_000).clamp(1, 300_000));
    match tokio::time::timeout(wait, done).await {
        Ok(Ok(act)) => Ok(activation_response(&act, want_result)),
        Ok(Err(_)) => Err(internal("the invocation was lost")),
        Err(_) => Ok((StatusCode::ACCEPTED, Json(json!({"activationId": id}))).into_response()),
    }
}

/// 200 for success, 502 for application/developer errors, 500 for internal errors.
fn activation_response(act: &Activation, result_only: bool) -> Response {
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
