//! Activations: list (summaries; full records with `docs=true`; `count=true`), get,
//! result, logs.

use super::{internal, namespace, not_found, ApiResult, ListQuery};
use crate::model::Activation;
use crate::Platform;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) async fn list_activations(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let store = p.store.clone();
    let v = tokio::task::spawn_blocking(move || -> Result<Value, crate::store::StoreError> {
        let name = q.name.as_deref().map(|n| n.rsplit('/').next().unwrap_or(n));
        if q.count.unwrap_or(false) {
            return Ok(json!({"activations": store.count_activations(&ns, name)?}));
        }
        let (limit, skip) = (q.limit.unwrap_or(30).min(200), q.skip.unwrap_or(0));
        if q.docs.unwrap_or(false) {
            let list = store.list_activations(&ns, name, limit, skip)?;
            return Ok(Value::Array(list.iter().map(Activation::to_json).collect()));
        }
        Ok(Value::Array(store.list_activation_summaries(
            &ns, name, q.since, q.upto, limit, skip,
        )?))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(v))
}

async fn find_activation(
    p: &Platform,
    headers: &HeaderMap,
    ns: &str,
    id: &str,
) -> ApiResult<Activation> {
    let ns = namespace(p, headers, ns)?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    p.store
        .get_activation(&ns, id)
        .map_err(internal)?
        .ok_or_else(not_found)
}

pub(super) async fn get_activation(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        find_activation(&p, &headers, &ns, &id).await?.to_json(),
    ))
}

pub(super) async fn activation_result(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        find_activation(&p, &headers, &ns, &id).await?.response(),
    ))
}

pub(super) async fn activation_logs(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"logs": find_activation(&p, &headers, &ns, &id).await?.logs}),
    ))
}
