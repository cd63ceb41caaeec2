//! Packages: create/update (PUT), get (with its actions), list, delete; shared packages
//! (`publish`), bindings (`binding: {namespace, name}`), and the read-only `whisk.system`
//! packages.

use super::{
    count_json, err, internal, namespace, not_found, parse_body, reader, store_err, ApiResult,
    ListQuery,
};
use crate::entity::{collection, Binding, Common, Package};
use crate::model::{now_ms, KeyValue};
use crate::names::{check_name, SYSTEM_NAMESPACE};
use crate::store::Stored;
use crate::Platform;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// A stored package with its version filled in.
pub(super) fn with_version(s: Stored<Package>) -> Package {
    let mut p = s.doc;
    p.common.version = s.version;
    p
}

pub(super) async fn list(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (caller, target) = reader(&p, &headers, &ns)?;
    let list: Vec<Package> = if target == SYSTEM_NAMESPACE {
        crate::system::PACKAGES
            .iter()
            .filter_map(|(n, _)| crate::system::package(n))
            .collect()
    } else {
        if q.count.unwrap_or(false) && target == caller {
            let n = p
                .store
                .count_entities(collection::PACKAGES, &caller)
                .map_err(internal)?;
            return Ok(count_json("packages", n));
        }
        let (limit, skip) = (q.limit.unwrap_or(30).min(200), q.skip.unwrap_or(0));
        p.store
            .list_entities::<Package>(collection::PACKAGES, Some(&target), limit, skip)
            .map_err(internal)?
            .into_iter()
            .map(with_version)
            // Another namespace shows only what it shares.
            .filter(|pk| target == caller || pk.common.publish)
            .collect()
    };
    if q.count.unwrap_or(false) {
        return Ok(count_json("packages", list.len() as u64));
    }
    Ok(Json(Value::Array(
        list.iter().map(|pk| pk.to_json(None)).collect(),
    )))
}

/// The actions of a package (for a binding: of the bound package), as `{name, version}`.
fn actions_of(p: &Platform, pk: &Package) -> ApiResult<Vec<Value>> {
    let (ns, name) = match &pk.binding {
        Some(b) => (b.namespace.clone(), b.name.clone()),
        None => (pk.common.namespace.clone(), pk.common.name.clone()),
    };
    if ns == SYSTEM_NAMESPACE {
        return Ok(crate::system::package_actions(&name)
            .iter()
            .map(|a| {
                json!({"name": a.short_name(), "version": a.version, "annotations": a.annotations})
            })
            .collect());
    }
    Ok(p.store
        .package_actions(&ns, &name)
        .map_err(internal)?
        .into_iter()
        .map(|(n, v)| json!({"name": n, "version": v}))
        .collect())
}

pub(super) async fn get(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (caller, target) = reader(&p, &headers, &ns)?;
    let pk = p.package(&target, &name)?.ok_or_else(not_found)?;
    if !Platform::may_read(&caller, &target, &pk) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("The supplied authentication is not authorized to access '{target}'."),
        ));
    }
    let actions = actions_of(&p, &pk)?;
    Ok(Json(pk.to_json(Some(actions))))
}

#[derive(Deserialize)]
pub(super) struct PutQuery {
    overwrite: Option<bool>,
}

#[derive(Deserialize)]
struct PackagePut {
    #[serde(default)]
    publish: Option<bool>,
    #[serde(default)]
    parameters: Option<Vec<KeyValue>>,
    #[serde(default)]
    annotations: Option<Vec<KeyValue>>,
    #[serde(default)]
    binding: Option<Value>,
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
    let put: PackagePut = parse_body(&body)?;
    let overwrite = q.overwrite.unwrap_or(false);
    let existing = p.package(&ns, &name)?;
    if existing.is_some() && !overwrite {
        return Err(err(StatusCode::CONFLICT, "resource already exists"));
    }
    // `binding: {}` (what clients send for "no binding") means none.
    let binding = match put.binding {
        None | Some(Value::Null) => existing.as_ref().and_then(|e| e.binding.clone()),
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(v) => {
            let b: Binding = serde_json::from_value(v).map_err(|e| {
                err(
                    StatusCode::BAD_REQUEST,
                    format!("The binding must be {{\"namespace\", \"name\"}}: {e}"),
                )
            })?;
            let bns = if b.namespace == "_" || b.namespace.is_empty() {
                ns.clone()
            } else {
                b.namespace.clone()
            };
            check_name(&bns).map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
            check_name(&b.name).map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
            let bound = p.package(&bns, &b.name)?.ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The binding refers to the package '/{bns}/{}', which does not exist.",
                        b.name
                    ),
                )
            })?;
            if !Platform::may_read(&ns, &bns, &bound) {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    format!("The package '/{bns}/{}' is not shared.", b.name),
                ));
            }
            if bound.binding.is_some() {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "A binding cannot bind another binding.",
                ));
            }
            Some(Binding {
                namespace: bns,
                name: b.name,
            })
        }
    };
    if let Some(e) = &existing {
        if e.binding.is_some() != binding.is_some() {
            return Err(err(
                StatusCode::CONFLICT,
                "A package cannot be turned into a binding or back.",
            ));
        }
    }
    if binding.is_some() && p.store.count_actions(&ns, Some(&name)).map_err(internal)? > 0 {
        return Err(err(
            StatusCode::CONFLICT,
            "The package has actions; it cannot become a binding.",
        ));
    }
    let mut pk = Package {
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
        binding,
    };
    pk.common.version = p
        .store
        .put_entity(collection::PACKAGES, &ns, &name, &pk, overwrite)
        .map_err(store_err)?;
    Ok(Json(pk.to_json(None)))
}

#[derive(Deserialize)]
pub(super) struct DeleteQuery {
    force: Option<bool>,
}

pub(super) async fn delete(
    State(p): State<Arc<Platform>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&p, &headers, &ns)?;
    let pk = p.package(&ns, &name)?.ok_or_else(not_found)?;
    let contents = p.store.package_actions(&ns, &name).map_err(internal)?;
    if !contents.is_empty() {
        if !q.force.unwrap_or(false) {
            return Err(err(
                StatusCode::CONFLICT,
                format!(
                    "Package not empty (contains {} entities). Set force param or delete package contents.",
                    contents.len()
                ),
            ));
        }
        for (a, _) in contents {
            let store_name = format!("{name}/{a}");
            p.store.delete_action(&ns, &store_name).map_err(internal)?;
            p.forget_action(&ns, &store_name);
            p.pools.remove(&ns, &store_name);
        }
    }
    p.store
        .delete_entity(collection::PACKAGES, &ns, &name)
        .map_err(internal)?;
    Ok(Json(pk.to_json(None)))
}
