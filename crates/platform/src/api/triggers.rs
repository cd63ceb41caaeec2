//! Triggers: create/update (PUT), get (with its rules), list, delete, and fire (POST).
//! Firing records one trigger activation whose result is the payload and whose logs say
//! which rule invoked which action with which activation id; every active rule's action is
//! invoked through the platform's one invocation path ([`Platform::invoke`]).

use super::{
    count_json, err, internal, namespace, not_found, parse_body, store_err, ApiResult, ListQuery,
};
use crate::entity::{collection, Common, Rule, Trigger};
use crate::model::{new_activation_id, now_ms, Activation, KeyValue};
use crate::names::{check_name, EntityPath};
use crate::store::Stored;
use crate::Platform;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A stored trigger with its version filled in.
pub(super) fn with_version(s: Stored<Trigger>) -> Trigger {
    let mut t = s.doc;
    t.common.version = s.version;
    t
}

/// The rules of namespace `ns` whose trigger is `trigger`.
pub(crate) fn rules_of(p: &Platform, ns: &str, trigger: &str) -> ApiResult<Vec<Rule>> {
    let path = EntityPath::new(ns, None, trigger);
    Ok(p.store
        .list_entities::<Rule>(collection::RULES, Some(ns), u32::MAX, 0)
        .map_err(internal)?
        .into_iter()
        .map(super::rules::with_version)
        .filter(|r| r.trigger == path)
        .collect())
}

fn load(p: &Platform, ns: &str, name: &str) -> ApiResult<Option<Trigger>> {
    Ok(p.store
        .get_entity::<Trigger>(collection::TRIGGERS, ns, name)
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
            .count_entities(collection::TRIGGERS, &ns)
            .map_err(internal)?;
        return Ok(count_json("triggers", n));
    }
    let (limit, skip) = (q.limit.unwrap_or(30).min(200), q.skip.unwrap_or(0));
    let list = p
        .store
        .list_entities::<Trigger>(collection::TRIGGERS, Some(&ns), limit, skip)
        .map_err(internal)?;
    Ok(Json(Value::Array(
        list.into_iter()
            .map(|s| with_version(s).to_json(&[]))
            .collect(),
    )))
}

pub(super) async fn get(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let t = load(&p, &ns, &name)?.ok_or_else(not_found)?;
    Ok(Json(t.to_json(&rules_of(&p, &ns, &name)?)))
}

#[derive(Deserialize)]
pub(super) struct PutQuery {
    overwrite: Option<bool>,
}

#[derive(Deserialize)]
struct TriggerPut {
    #[serde(default)]
    publish: Option<bool>,
    #[serde(default)]
    parameters: Option<Vec<KeyValue>>,
    #[serde(default)]
    annotations: Option<Vec<KeyValue>>,
}

pub(super) async fn put(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<PutQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    check_name(&name).map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
    let put: TriggerPut = parse_body(&body)?;
    let overwrite = q.overwrite.unwrap_or(false);
    let existing = load(&p, &ns, &name)?;
    if existing.is_some() && !overwrite {
        return Err(err(StatusCode::CONFLICT, "resource already exists"));
    }
    let mut t = Trigger {
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
        parameters: put
            .parameters
            .or_else(|| existing.as_ref().map(|e| e.parameters.clone()))
            .unwrap_or_default(),
    };
    t.common.version = p
        .store
        .put_entity(collection::TRIGGERS, &ns, &name, &t, overwrite)
        .map_err(store_err)?;
    Ok(Json(t.to_json(&rules_of(&p, &ns, &name)?)))
}

pub(super) async fn delete(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let t = load(&p, &ns, &name)?.ok_or_else(not_found)?;
    p.store
        .delete_entity(collection::TRIGGERS, &ns, &name)
        .map_err(internal)?;
    // An alarm feeding this trigger has nothing left to fire.
    p.store
        .delete_entity(collection::ALARMS, &ns, &name)
        .map_err(internal)?;
    Ok(Json(t.to_json(&[])))
}

pub(super) async fn fire_handler(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let ns = namespace(&p, &headers, &ns)?;
    let payload = super::actions::invoke_params(&body)?;
    match fire(&p, &ns, &name, payload).await? {
        Some(id) => Ok((StatusCode::ACCEPTED, Json(json!({"activationId": id}))).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Fire trigger `name` of namespace `ns` with `payload`. `Ok(None)` if it has no active
/// rule (OpenWhisk: 204, no activation); otherwise the trigger activation's id. The rules'
/// actions are invoked in the background, then the trigger activation is recorded.
pub(crate) async fn fire(
    p: &Arc<Platform>,
    ns: &str,
    name: &str,
    payload: Map<String, Value>,
) -> ApiResult<Option<String>> {
    let t = load(p, ns, name)?.ok_or_else(not_found)?;
    p.check_fire(ns)?;
    let rules: Vec<Rule> = rules_of(p, ns, name)?
        .into_iter()
        .filter(Rule::active)
        .collect();
    if rules.is_empty() {
        return Ok(None);
    }
    let mut args = payload.clone();
    for KeyValue { key, value } in &t.parameters {
        args.entry(key.clone()).or_insert_with(|| value.clone());
    }
    let id = new_activation_id();
    let start = now_ms();
    let (p2, ns2, id2) = (p.clone(), ns.to_string(), id.clone());
    p.spawn_tracked(async move {
        let mut logs = Vec::new();
        for r in rules {
            let rule = format!("{}/{}", r.common.namespace, r.common.name);
            let action = r.action.path();
            let outcome = match p2.resolve(&ns2, &r.action) {
                Ok(target) => p2.invoke(target, ns2.clone(), args.clone()).await,
                Err(e) => Err(e),
            };
            let line = match outcome {
                Ok(started) => json!({"statusCode": 0, "success": true,
                    "activationId": started.id, "rule": rule, "action": action}),
                Err(e) => json!({"statusCode": if e.0.is_server_error() { 3 } else { 2 },
                    "success": false, "error": e.1, "rule": rule, "action": action}),
            };
            logs.push(line.to_string());
        }
        let act = Activation {
            activation_id: id2,
            namespace: ns2.clone(),
            name: t.common.name.clone(),
            version: t.common.version.clone(),
            subject: ns2.clone(),
            start,
            end: now_ms(),
            status_code: 0,
            result: Value::Object(payload),
            logs,
            annotations: vec![
                KeyValue {
                    key: "path".into(),
                    value: json!(format!("{ns2}/{}", t.common.name)),
                },
                KeyValue {
                    key: "kind".into(),
                    value: json!("trigger"),
                },
            ],
        };
        if let Err(e) = p2.journal.finish(act).await {
            tracing::error!(error = %e, "cannot record trigger activation");
        }
    });
    Ok(Some(id))
}
