//! Web actions: `/api/v1/web/{ns}/{pkg}/{action}.{ext}[/path]` (`default` = no package)
//! for actions annotated `web-export`. Any method; no credentials unless the action has
//! `require-whisk-auth` (`true`: valid Basic credentials; a string or number: the
//! `X-Require-Whisk-Auth` header must equal it). The action sees the request's query and
//! JSON/form body as parameters (or, with `raw-http`, `__ow_query` and `__ow_body`) plus
//! `__ow_method`, `__ow_headers`, `__ow_path`; with `final`, request parameters may not
//! override the action's. The extension picks the response: `.json` (the result, or the
//! field named by the path), `.html`/`.text` (the `html`/`text` or `body` field), `.http`
//! (the default: `statusCode`, `headers`, `body`). CORS headers are added (and OPTIONS
//! answered) unless the action is annotated `web-custom-options`.

use super::{authenticate, err, ActionResponse, ApiError, MAX_PARAMS_BYTES};
use crate::model::Activation;
use crate::names::{EntityPath, SYSTEM_NAMESPACE};
use crate::Platform;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The response extensions a web action may use.
pub const EXTENSIONS: &[&str] = &["json", "html", "text", "http", "svg"];

/// Split `action.ext[/rest]` into (action, extension, rest path).
pub(crate) fn split_action(rest: &str) -> (String, String, String) {
    let (first, tail) = match rest.split_once('/') {
        Some((f, t)) => (f, format!("/{t}")),
        None => (rest, String::new()),
    };
    match first.rsplit_once('.') {
        Some((name, ext)) if EXTENSIONS.contains(&ext) => (name.to_string(), ext.to_string(), tail),
        _ => (first.to_string(), "http".to_string(), tail),
    }
}

pub(super) async fn handle(
    State(p): State<Arc<Platform>>,
    Path((ns, pkg, rest)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if ns == SYSTEM_NAMESPACE && pkg == "apimgmt" {
        return super::routes::apimgmt(&p, &rest, &method, &headers, query.as_deref(), &body)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let (name, ext, path) = split_action(&rest);
    let pkg = (pkg != "default").then_some(pkg);
    run(
        &p,
        &ns,
        pkg.as_deref(),
        &name,
        &ext,
        &path,
        Request {
            method,
            headers,
            query,
            body,
            params: Map::new(),
        },
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// One web request.
pub(crate) struct Request {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    /// Extra parameters (an API route's path parameters).
    pub params: Map<String, Value>,
}

fn web_not_found() -> ApiError {
    super::not_found()
}

fn bad(msg: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, msg)
}

/// Whether an action is exported to the web.
pub(crate) fn exported(a: &crate::model::Action) -> bool {
    a.annotation("web-export")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Run web action `/ns/pkg/name` for a request and shape its response by `ext`.
pub(crate) async fn run(
    p: &Arc<Platform>,
    ns: &str,
    pkg: Option<&str>,
    name: &str,
    ext: &str,
    path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let entity = EntityPath::new(ns, pkg, name);
    if !crate::names::valid_name(ns)
        || !crate::names::valid_name(name)
        || pkg.is_some_and(|p| !crate::names::valid_name(p))
    {
        return Err(web_not_found());
    }
    let target = p.resolve(ns, &entity).map_err(|_| web_not_found())?;
    let action = target.action.clone();
    if !exported(&action) {
        return Err(web_not_found());
    }
    // OpenWhisk answers CORS for web actions unless they handle OPTIONS themselves.
    let cors = !action
        .annotation("web-custom-options")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if cors && req.method == Method::OPTIONS {
        let mut r = StatusCode::OK.into_response();
        add_cors(&mut r, &req.headers);
        return Ok(r);
    }
    let mut user = None;
    match action.annotation("require-whisk-auth") {
        None | Some(Value::Bool(false)) | Some(Value::Null) => {}
        Some(Value::Bool(true)) => user = Some(authenticate(p, &req.headers)?),
        Some(secret) => {
            let want = secret
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| secret.to_string());
            let got = req
                .headers
                .get("x-require-whisk-auth")
                .and_then(|v| v.to_str().ok());
            if got != Some(want.as_str()) {
                return Err(err(
                    StatusCode::UNAUTHORIZED,
                    "The supplied authentication is invalid.",
                ));
            }
        }
    }
    if req.body.len() > MAX_PARAMS_BYTES {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request content was malformed: the body is larger than 1 MB.",
        ));
    }
    let raw = action
        .annotation("raw-http")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut params = req.params;
    if raw {
        params.insert(
            "__ow_query".into(),
            json!(req.query.clone().unwrap_or_default()),
        );
        if !req.body.is_empty() {
            let body = match std::str::from_utf8(&req.body) {
                Ok(s)
                    if content_type.starts_with("application/json")
                        || content_type.starts_with("text/")
                        || content_type.contains("urlencoded") =>
                {
                    json!(s)
                }
                _ => json!(base64::engine::general_purpose::STANDARD.encode(&req.body)),
            };
            params.insert("__ow_body".into(), body);
        }
    } else {
        for (k, v) in form_pairs(req.query.as_deref().unwrap_or("")) {
            params.insert(k, json!(v));
        }
        if !req.body.is_empty() {
            if content_type.starts_with("application/json") {
                match serde_json::from_slice::<Value>(&req.body) {
                    Ok(Value::Object(m)) => params.extend(m),
                    Ok(other) => {
                        params.insert("__ow_body".into(), other);
                    }
                    Err(e) => return Err(bad(format!("The request content was malformed: {e}"))),
                }
            } else if content_type.contains("x-www-form-urlencoded") {
                let text = String::from_utf8_lossy(&req.body).into_owned();
                for (k, v) in form_pairs(&text) {
                    params.insert(k, json!(v));
                }
            } else {
                let body = match std::str::from_utf8(&req.body) {
                    Ok(s) if content_type.starts_with("text/") => json!(s),
                    _ => json!(base64::engine::general_purpose::STANDARD.encode(&req.body)),
                };
                params.insert("__ow_body".into(), body);
            }
        }
    }
    let finals = action
        .annotation("final")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for key in params.keys() {
        let defined = action
            .parameters
            .iter()
            .chain(target.inherited.iter())
            .any(|kv| &kv.key == key);
        if (finals && defined) || (key.starts_with("__ow_") && !raw && key != "__ow_body") {
            return Err(bad(
                "Request defines parameters that are not allowed (e.g., reserved properties).",
            ));
        }
    }
    let req_headers = req.headers.clone();
    let hdrs: Map<String, Value> = req
        .headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION)
        .filter_map(|(k, v)| Some((k.as_str().to_string(), json!(v.to_str().ok()?))))
        .collect();
    params.insert(
        "__ow_method".into(),
        json!(req.method.as_str().to_ascii_lowercase()),
    );
    params.insert("__ow_headers".into(), Value::Object(hdrs));
    params.insert("__ow_path".into(), json!(path));
    if let Some(u) = user {
        params.insert("__ow_user".into(), json!(u));
    }
    let act = p.invoke_and_wait(target, ns.to_string(), params).await?;
    let mut r = respond(&act, ext, path)?;
    if cors {
        add_cors(&mut r, &req_headers);
    }
    Ok(r)
}

/// OpenWhisk's default CORS headers for web actions.
fn add_cors(r: &mut Response, request: &HeaderMap) {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH"),
    );
    let allow = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static(
            "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
        ));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
}

/// Decode `a=1&b=x%20y` pairs.
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn user_response(status: StatusCode, ct: &str, body: impl Into<Body>) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, ct.to_string())],
        body.into(),
    )
        .into_response();
    r.extensions_mut().insert(ActionResponse);
    r
}

/// Shape an activation's result as the extension asks.
fn respond(act: &Activation, ext: &str, path: &str) -> Result<Response, ApiError> {
    if act.status_code != 0 {
        let msg = match act.result.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "The action did not succeed.".into(),
        };
        let status = match act.status_code {
            1 => StatusCode::BAD_REQUEST,
            2 => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        return Err(err(status, msg));
    }
    let mut result = &act.result;
    if ext != "http" {
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            result = result.get(seg).ok_or_else(|| {
                err(
                    StatusCode::NOT_FOUND,
                    "The requested property does not exist.",
                )
            })?;
        }
    }
    let field = |names: &[&str]| -> Option<&Value> {
        match result {
            Value::Object(m) => names.iter().find_map(|n| m.get(*n)),
            other => Some(other),
        }
    };
    match ext {
        "json" => match result {
            Value::Object(_) | Value::Array(_) => Ok(user_response(
                StatusCode::OK,
                "application/json",
                result.to_string(),
            )),
            _ => Err(bad("The action did not produce a valid JSON response.")),
        },
        "html" | "svg" => match field(&["body", ext]) {
            Some(Value::String(s)) => Ok(user_response(
                StatusCode::OK,
                if ext == "html" {
                    "text/html; charset=utf-8"
                } else {
                    "image/svg+xml"
                },
                s.clone(),
            )),
            _ => Err(bad(format!(
                "The action did not produce a valid {ext} response."
            ))),
        },
        "text" => match field(&["body", "text"]) {
            Some(Value::String(s)) => Ok(user_response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                s.clone(),
            )),
            Some(v) => Ok(user_response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                v.to_string(),
            )),
            None => Err(err(
                StatusCode::NOT_FOUND,
                "The requested property does not exist.",
            )),
        },
        _ => http_response(result),
    }
}

/// `.http`: `statusCode`, `headers`, `body` (a string, base64 for binary content types,
/// or JSON).
fn http_response(result: &Value) -> Result<Response, ApiError> {
    let invalid = || bad("The action did not produce a valid response (message/http).");
    let Value::Object(m) = result else {
        return Err(invalid());
    };
    let code = match m.get("statusCode") {
        None => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(invalid)?),
        Some(Value::String(s)) => Some(s.parse::<u64>().map_err(|_| invalid())?),
        Some(_) => return Err(invalid()),
    };
    let code = code
        .map(|c| {
            u16::try_from(c)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
        })
        .map(|c| c.ok_or_else(invalid))
        .transpose()?;
    let mut headers = HeaderMap::new();
    if let Some(h) = m.get("headers") {
        let Value::Object(h) = h else {
            return Err(invalid());
        };
        for (k, v) in h {
            let values: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            for v in values {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(_) | Value::Number(_) => v.to_string(),
                    _ => return Err(invalid()),
                };
                let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| invalid())?;
                let value = HeaderValue::from_str(&text).map_err(|_| invalid())?;
                headers.append(name, value);
            }
        }
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (status, body): (StatusCode, Vec<u8>) = match m.get("body") {
        None | Some(Value::Null) => (code.unwrap_or(StatusCode::NO_CONTENT), Vec::new()),
        Some(Value::String(s)) if s.is_empty() => {
            (code.unwrap_or(StatusCode::NO_CONTENT), Vec::new())
        }
        Some(Value::String(s)) => {
            let textual = ct.starts_with("text/")
                || ct.contains("json")
                || ct.contains("xml")
                || ct.contains("javascript")
                || ct.contains("urlencoded");
            let binary = !ct.is_empty() && !textual;
            let bytes = if binary {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| {
                        bad("The response body is not valid base64 for its binary content type.")
                    })?
            } else {
                s.as_bytes().to_vec()
            };
            if ct.is_empty() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
            }
            (code.unwrap_or(StatusCode::OK), bytes)
        }
        Some(js) => {
            if ct.is_empty() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            (code.unwrap_or(StatusCode::OK), js.to_string().into_bytes())
        }
    };
    let mut r = (status, headers, body).into_response();
    r.extensions_mut().insert(ActionResponse);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_names_and_extensions() {
        assert_eq!(
            split_action("hello.json"),
            ("hello".into(), "json".into(), String::new())
        );
        assert_eq!(
            split_action("hello.json/a/b"),
            ("hello".into(), "json".into(), "/a/b".into())
        );
        assert_eq!(
            split_action("hello"),
            ("hello".into(), "http".into(), String::new())
        );
        assert_eq!(
            split_action("v1.2"),
            ("v1.2".into(), "http".into(), String::new())
        );
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(
            form_pairs("a=1&b=x%26y&c"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x&y".into()),
                ("c".into(), String::new())
            ]
        );
    }
}
