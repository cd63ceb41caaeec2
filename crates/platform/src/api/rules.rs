//! Rules: create/update (PUT: a trigger of the rule's namespace and any readable action),
//! get, list, delete, and enable/disable (POST `{"status": "active"|"inactive"}`).

use super::{
    count_json, err, internal, namespace, not_found, parse_body, store_err, ApiResult, ListQuery,
};
use crate::entity::{collection, Common, Rule, Trigger};
use crate::model::{now_ms, KeyValue};
use crate::names::{check_name, EntityPath};
use crate::store::Stored;
use crate::Platform;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// A stored rule with its version filled in.
pub(super) fn with_version(s: Stored<Rule>) -> Rule {
    let mut r = s.doc;
    r.common.version = s.version;
    r
}

fn load(p: &Platform, ns: &str, name: &str) -> ApiResult<Option<Rule>> {
    Ok(p.store
        .get_entity::<Rule>(collection::RULES, ns, name)
        .map_err(internal)?
        .map(with_version))
}

pub(super) async fn list(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    if q.count.unwrap_or(false) {
        let n = p
            .store
            .count_entities(collection::RULES, &ns)
            .map_err(internal)?;
        return Ok(count_json("rules", n));
    }
    let (limit, skip) = (q.limit.unwrap_or(30).min(200), q.skip.unwrap_or(0));
    let list = p
        .store
        .list_entities::<Rule>(collection::RULES, Some(&ns), limit, skip)
        .map_err(internal)?;
    Ok(Json(Value::Array(
        list.into_iter()
            .map(|s| with_version(s).to_json())
            .collect(),
    )))
}

pub(super) async fn get(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    Ok(Json(load(&p, &ns, &name)?.ok_or_else(not_found)?.to_json()))
}

#[derive(Deserialize)]
pub(super) struct PutQuery {
    overwrite: Option<bool>,
}

#[derive(Deserialize)]
struct RulePut {
    #[serde(default)]
    trigger: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    publish: Option<bool>,
    #[serde(default)]
    annotations: Option<Vec<KeyValue>>,
    #[serde(default)]
    status: Option<String>,
}

fn bad(msg: impl Into<String>) -> super::ApiError {
    err(StatusCode::BAD_REQUEST, msg)
}

pub(super) async fn put(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<PutQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    check_name(&name).map_err(bad)?;
    let put: RulePut = parse_body(&body)?;
    let overwrite = q.overwrite.unwrap_or(false);
    let existing = load(&p, &ns, &name)?;
    if existing.is_some() && !overwrite {
        return Err(err(StatusCode::CONFLICT, "resource already exists"));
    }
    let trigger = match (put.trigger, &existing) {
        (Some(t), _) => EntityPath::parse(&t, &ns).map_err(bad)?,
        (None, Some(e)) => e.trigger.clone(),
        (None, None) => return Err(bad("A rule needs a trigger.")),
    };
    let action = match (put.action, &existing) {
        (Some(a), _) => EntityPath::parse(&a, &ns).map_err(bad)?,
        (None, Some(e)) => e.action.clone(),
        (None, None) => return Err(bad("A rule needs an action.")),
    };
    if trigger.namespace != ns || trigger.package.is_some() {
        return Err(bad(format!(
            "The trigger '{trigger}' must be in the rule's namespace '{ns}'."
        )));
    }
    if p.store
        .get_entity::<Trigger>(collection::TRIGGERS, &ns, &trigger.name)
        .map_err(internal)?
        .is_none()
    {
        return Err(err(
            StatusCode::NOT_FOUND,
            format!("The trigger '{trigger}' does not exist."),
        ));
    }
    match p.resolve(&ns, &action) {
        Ok(_) => {}
        Err(e) if e.0 == StatusCode::NOT_FOUND => {
            return Err(err(
                StatusCode::NOT_FOUND,
                format!("The action '{action}' does not exist."),
            ))
        }
        Err(e) => return Err(e),
    }
    let status = match put.status.as_deref() {
        None => existing
            .as_ref()
            .map(|e| e.status.clone())
            .unwrap_or_else(|| "active".into()),
        Some(s @ ("active" | "inactive")) => s.to_string(),
        Some(s) => {
            return Err(bad(format!(
                "The rule status '{s}' is not 'active' or 'inactive'."
            )))
        }
    };
    let mut r = Rule {
        common: Common {
            namespace: ns.clone(),
            name: name.clone(),
            version: String::new(),
            publish: put
                .publish
                .or(existing.as_ref().map(|e| e.common.publish))
                .unwrap_or(false),
            annotations: put
                .annotations
                .or_else(|| existing.as_ref().map(|e| e.common.annotations.clone()))
                .unwrap_or_default(),
            updated: now_ms(),
        },
        trigger,
        action,
        status,
    };
    r.common.version = p
        .store
        .put_entity(collection::RULES, &ns, &name, &r, overwrite)
        .map_err(store_err)?;
    Ok(Json(r.to_json()))
}

pub(super) async fn delete(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let r = load(&p, &ns, &name)?.ok_or_else(not_found)?;
    p.store
        .delete_entity(collection::RULES, &ns, &name)
        .map_err(internal)?;
    Ok(Json(r.to_json()))
}

#[derive(Deserialize)]
struct StatusPost {
    status: Option<String>,
}

pub(super) async fn set_status(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let post: StatusPost = parse_body(&body)?;
    let status = match post.status.as_deref() {
        Some(s @ ("active" | "inactive")) => s.to_string(),
        other => {
            return Err(bad(format!(
                "The rule status {other:?} is not 'active' or 'inactive'."
            )))
        }
    };
    let mut r = load(&p, &ns, &name)?.ok_or_else(not_found)?;
    if r.status != status {
        r.status = status;
        r.common.updated = now_ms();
        r.common.version = p
            .store
            .put_entity(collection::RULES, &ns, &name, &r, true)
            .map_err(store_err)?;
    }
    Ok(Json(json!({})))
}
