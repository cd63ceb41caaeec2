//! API routes (OpenWhisk's API gateway, served by Ditto itself): the management calls the
//! clients make (`/api/v1/web/whisk.system/apimgmt/{createApi,getApi,deleteApi}`, with
//! Basic credentials) map base path + relative path + verb to a web action; requests to
//! `/api/{namespace}{basepath}{relpath}` run it. Relative paths may hold `{param}`
//! segments, passed to the action as parameters.

use super::web::{self, Request};
use super::{authenticate, err, internal, not_found, parse_body, ApiError};
use crate::entity::{collection, Route};
use crate::names::EntityPath;
use crate::Platform;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const VERBS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

fn bad(msg: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, msg)
}

#[derive(Deserialize)]
struct CreateBody {
    apidoc: ApiDoc,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiDoc {
    #[serde(default)]
    gateway_base_path: Option<String>,
    #[serde(default)]
    gateway_path: Option<String>,
    #[serde(default)]
    gateway_method: Option<String>,
    #[serde(default)]
    action: Option<DocAction>,
    #[serde(default)]
    api_name: Option<String>,
    #[serde(default)]
    swagger: Option<Value>,
}

#[derive(Deserialize)]
struct DocAction {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

fn valid_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 1024
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-.~{}".contains(c))
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((
                k.to_string(),
                v.replace("%2F", "/")
                    .replace("%2f", "/")
                    .replace("%7B", "{")
                    .replace("%7D", "}"),
            ))
        })
        .collect()
}

/// `createApi`, `getApi`, `deleteApi`.
pub(super) async fn apimgmt(
    p: &Arc<Platform>,
    rest: &str,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let caller = authenticate(p, headers)?;
    let op = rest.split('.').next().unwrap_or("");
    let q = query_map(query);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:3233")
        .to_string();
    match (op, method.as_str()) {
        ("createApi", "POST") => {
            let b: CreateBody = parse_body(body)?;
            let d = b.apidoc;
            if d.swagger.is_some() {
                return Err(bad("Ditto's API routes take base path, path, verb and action, not a swagger document."));
            }
            let basepath = d.gateway_base_path.unwrap_or_else(|| "/".into());
            let relpath = d
                .gateway_path
                .ok_or_else(|| bad("The relative path (gatewayPath) is required."))?;
            let verb = d
                .gateway_method
                .ok_or_else(|| bad("The verb (gatewayMethod) is required."))?
                .to_ascii_uppercase();
            if !valid_path(&basepath) || !valid_path(&relpath) {
                return Err(bad("Base and relative paths start with '/' and hold letters, digits, '/', '_', '-', '.', '~' and {param}."));
            }
            if !VERBS.contains(&verb.as_str()) {
                return Err(bad(format!("The verb '{verb}' is not one of {VERBS:?}.")));
            }
            let a = d.action.ok_or_else(|| bad("The action is required."))?;
            let ns = match a.namespace.as_deref() {
                None | Some("_") | Some("") => caller.clone(),
                Some(n) => n.to_string(),
            };
            let path = EntityPath::parse(&format!("/{ns}/{}", a.name), &caller).map_err(bad)?;
            if path.namespace != caller {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "An API route may only run an action of the caller's namespace.",
                ));
            }
            let target = p.resolve(&caller, &path).map_err(|e| {
                if e.0 == StatusCode::NOT_FOUND {
                    bad(format!("The action '{path}' does not exist."))
                } else {
                    e
                }
            })?;
            if !web::exported(&target.action) {
                return Err(bad(format!("The action '{path}' is not a web action; update it with the annotation web-export = true.")));
            }
            let responsetype = q
                .get("responsetype")
                .cloned()
                .unwrap_or_else(|| "json".into());
            if !web::EXTENSIONS.contains(&responsetype.as_str()) {
                return Err(bad(format!(
                    "The response type '{responsetype}' is not one of {:?}.",
                    web::EXTENSIONS
                )));
            }
            let route = Route {
                namespace: caller.clone(),
                basepath: basepath.trim_end_matches('/').to_string(),
                relpath,
                operation: verb,
                action: path,
                api_name: d.api_name.unwrap_or_else(|| basepath.clone()),
                responsetype,
            };
            p.store
                .put_entity(collection::ROUTES, &caller, &route.key(), &route, true)
                .map_err(internal)?;
            let apis = apis_json(p, &caller, &host, Some(&route.basepath))?;
            Ok(Json(apis["apis"][0]["value"].clone()).into_response())
        }
        ("getApi", "GET") => {
            let bp = q
                .get("basepath")
                .map(|b| b.trim_end_matches('/').to_string());
            Ok(Json(apis_json(p, &caller, &host, bp.as_deref())?).into_response())
        }
        ("deleteApi", "DELETE") => {
            let bp = q
                .get("basepath")
                .ok_or_else(|| bad("The base path is required."))?
                .trim_end_matches('/')
                .to_string();
            let routes = routes_of(p, &caller)?;
            let mut n = 0;
            for r in routes.iter().filter(|r| {
                (r.basepath == bp || r.api_name == bp)
                    && q.get("relpath").is_none_or(|rp| &r.relpath == rp)
                    && q.get("operation")
                        .is_none_or(|op| op.eq_ignore_ascii_case(&r.operation))
            }) {
                p.store
                    .delete_entity(collection::ROUTES, &caller, &r.key())
                    .map_err(internal)?;
                n += 1;
            }
            if n == 0 {
                return Err(not_found());
            }
            Ok(Json(json!({})).into_response())
        }
        _ => Err(not_found()),
    }
}

fn routes_of(p: &Platform, ns: &str) -> Result<Vec<Route>, ApiError> {
    Ok(p.store
        .list_entities::<Route>(collection::ROUTES, Some(ns), u32::MAX, 0)
        .map_err(internal)?
        .into_iter()
        .map(|s| s.doc)
        .collect())
}

/// `{"apis": [{id, key, value: {namespace, gwApiActivated, gwApiUrl, apidoc}}]}`, one per
/// base path, the apidoc a swagger 2.0 document of its routes.
fn apis_json(
    p: &Platform,
    ns: &str,
    host: &str,
    basepath: Option<&str>,
) -> Result<Value, ApiError> {
    let mut by_base: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    for r in routes_of(p, ns)? {
        if basepath.is_none_or(|b| b == r.basepath || b == r.api_name) {
            by_base.entry(r.basepath.clone()).or_default().push(r);
        }
    }
    let apis: Vec<Value> = by_base
        .into_iter()
        .map(|(base, routes)| {
            let mut paths: Map<String, Value> = Map::new();
            for r in &routes {
                let entry = paths.entry(r.relpath.clone()).or_insert_with(|| json!({}));
                entry[r.operation.to_ascii_lowercase()] = json!({
                    "operationId": format!("{} {}", r.operation.to_ascii_lowercase(), r.relpath),
                    "responses": {"default": {"description": "Default response"}},
                    "x-openwhisk": {
                        "namespace": r.action.namespace,
                        "package": r.action.package.clone().unwrap_or_else(|| "default".into()),
                        "action": r.action.name,
                        "url": format!("http://{host}/api/v1/web/{}/{}/{}.{}", r.action.namespace,
                            r.action.package.clone().unwrap_or_else(|| "default".into()), r.action.name, r.responsetype),
                    },
                });
            }
            let name = routes.first().map(|r| r.api_name.clone()).unwrap_or_else(|| base.clone());
            let url = format!("http://{host}/api/{ns}{base}");
            json!({
                "id": format!("API:{ns}:{base}"),
                "key": format!("API:{ns}:{base}"),
                "value": {
                    "namespace": ns,
                    "gwApiActivated": true,
                    "tenantId": ns,
                    "gwApiUrl": url,
                    "apidoc": {
                        "swagger": "2.0",
                        "basePath": if base.is_empty() { "/".to_string() } else { base.clone() },
                        "info": {"title": name, "version": "1.0.0"},
                        "paths": paths,
                    },
                },
            })
        })
        .collect();
    Ok(json!({ "apis": apis }))
}

/// Match `/seg/{param}/...` against a request path; the parameters on success.
fn match_path(pattern: &str, path: &str) -> Option<Map<String, Value>> {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let got: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if pat.len() != got.len() {
        return None;
    }
    let mut params = Map::new();
    for (p, g) in pat.iter().zip(got) {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            params.insert(name.to_string(), json!(g));
        } else if *p != g {
            return None;
        }
    }
    Some(params)
}

/// `/api/{ns}{basepath}{relpath}`: run the route's web action.
pub(super) async fn serve(
    State(p): State<Arc<Platform>>,
    Path((ns, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result: Result<Response, ApiError> = async {
        if !crate::names::valid_name(&ns) {
            return Err(not_found());
        }
        let full = format!("/{rest}");
        let routes = routes_of(&p, &ns)?;
        let mut path_matched = false;
        for r in routes {
            let Some(rel) = full.strip_prefix(&r.basepath) else {
                continue;
            };
            if !(rel.starts_with('/') || rel.is_empty()) {
                continue;
            }
            let Some(params) = match_path(&r.relpath, rel) else {
                continue;
            };
            path_matched = true;
            if !r.operation.eq_ignore_ascii_case(method.as_str()) {
                continue;
            }
            let req = Request {
                method,
                headers,
                query,
                body,
                params,
            };
            return web::run(
                &p,
                &r.action.namespace,
                r.action.package.as_deref(),
                &r.action.name,
                &r.responsetype,
                "",
                req,
            )
            .await;
        }
        if path_matched {
            Err(err(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed."))
        } else {
            Err(not_found())
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters() {
        assert_eq!(
            match_path("/books/{id}", "/books/42"),
            Some(json!({"id": "42"}).as_object().cloned().unwrap_or_default())
        );
        assert_eq!(match_path("/books/{id}", "/books"), None);
        assert_eq!(match_path("/a", "/b"), None);
        assert!(match_path("/", "").is_some());
    }
}
