//! The built-in `whisk.system` namespace, readable by every key: the `utils` package
//! (`echo`, `cat`, `sort`, `head`, `split`, `date`, `namespace`, behaving as OpenWhisk's
//! catalog defines them) and the `alarms` package (the feeds `alarm`, `interval`, `once`).
//! These actions run inside the platform (kind `builtin`), not in a VM: they are a few
//! lines of list handling each, and the alarm feeds manage the platform's own scheduler.

use crate::entity::{Common, Package};
use crate::invoke::Outcome;
use crate::model::{Action, KeyValue, Limits, KIND_BUILTIN};
use crate::names::SYSTEM_NAMESPACE;
use crate::Platform;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The packages of `whisk.system`: (name, description).
pub const PACKAGES: &[(&str, &str)] = &[
    ("utils", "Building blocks that format and assemble data"),
    ("alarms", "Alarms and periodic utility"),
];

/// The actions of `whisk.system`: (`package/name`, description, is a feed).
pub const ACTIONS: &[(&str, &str, bool)] = &[
    ("utils/cat", "Concatenates input into a string", false),
    ("utils/date", "Current date and time", false),
    ("utils/echo", "Returns the input", false),
    ("utils/head", "Extract prefix of an array", false),
    (
        "utils/namespace",
        "Returns the namespace of the caller",
        false,
    ),
    ("utils/sort", "Sorts an array", false),
    ("utils/split", "Split a string into an array", false),
    (
        "alarms/alarm",
        "Fire trigger when alarm occurs (cron)",
        true,
    ),
    (
        "alarms/interval",
        "Fire trigger at specified interval",
        true,
    ),
    ("alarms/once", "Fire trigger once when alarm occurs", true),
];

/// A `whisk.system` package.
pub fn package(name: &str) -> Option<Package> {
    PACKAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, d)| Package {
            common: Common {
                namespace: SYSTEM_NAMESPACE.into(),
                name: (*n).into(),
                version: "0.0.1".into(),
                publish: true,
                annotations: vec![KeyValue {
                    key: "description".into(),
                    value: json!(d),
                }],
                updated: 0,
            },
            parameters: Vec::new(),
            binding: None,
        })
}

/// A `whisk.system` action by its store name (`package/name`).
pub fn action(store_name: &str) -> Option<Arc<Action>> {
    ACTIONS
        .iter()
        .find(|(n, _, _)| *n == store_name)
        .map(|(n, d, feed)| {
            let mut annotations = vec![KeyValue {
                key: "description".into(),
                value: json!(d),
            }];
            if *feed {
                annotations.push(KeyValue {
                    key: "feed".into(),
                    value: json!(true),
                });
            }
            Arc::new(Action {
                namespace: SYSTEM_NAMESPACE.into(),
                name: (*n).into(),
                version: "0.0.1".into(),
                kind: KIND_BUILTIN.into(),
                code: n.as_bytes().to_vec(),
                parameters: Vec::new(),
                limits: Limits::default(),
                annotations,
                updated: 0,
            })
        })
}

/// The actions of one `whisk.system` package.
pub fn package_actions(package: &str) -> Vec<Arc<Action>> {
    ACTIONS
        .iter()
        .filter(|(n, _, _)| n.split('/').next() == Some(package))
        .filter_map(|(n, _, _)| action(n))
        .collect()
}

/// Run a builtin action for `caller`.
pub(crate) async fn run(
    p: &Arc<Platform>,
    action: &Action,
    caller: &str,
    params: Map<String, Value>,
) -> Outcome {
    match action.name.as_str() {
        "alarms/alarm" | "alarms/interval" | "alarms/once" => {
            let feed = action.short_name().to_string();
            let p2 = p.clone();
            let caller = caller.to_string();
            match tokio::task::spawn_blocking(move || {
                crate::alarms::lifecycle(&p2, &feed, &caller, params)
            })
            .await
            {
                Ok(r) => (r.map_err(|m| (1, m)), Vec::new()),
                Err(e) => (Err((3, format!("The feed failed: {e}"))), Vec::new()),
            }
        }
        name => utils(name, caller, params),
    }
}

/// The `utils` package, as the catalog's JavaScript defines it.
pub fn utils(name: &str, caller: &str, params: Map<String, Value>) -> Outcome {
    let lines = || -> Vec<Value> {
        match params.get("lines") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        }
    };
    match name {
        "utils/echo" => (Ok(Value::Object(params)), Vec::new()),
        "utils/cat" => {
            let l = lines();
            let payload = l.iter().map(js_string).collect::<Vec<_>>().join("\n");
            let out = json!({"lines": l, "payload": payload});
            (Ok(out.clone()), vec![format!("cat: returning {out}")])
        }
        "utils/sort" => {
            let mut l = lines();
            // JavaScript's default sort compares the elements' string forms.
            l.sort_by_key(js_string);
            let n = l.len();
            (Ok(json!({"lines": l, "length": n})), Vec::new())
        }
        "utils/head" => {
            let l = lines();
            let num = match params.get("num") {
                Some(v) if v.as_f64().is_some_and(|n| n != 0.0) => v.clone(),
                _ => json!(1),
            };
            let take = num.as_f64().map(|n| n.max(0.0) as usize).unwrap_or(1);
            let head: Vec<Value> = l.into_iter().take(take).collect();
            (Ok(json!({"lines": head, "num": num})), Vec::new())
        }
        "utils/split" => {
            let Some(payload) = params.get("payload").filter(|v| !v.is_null()) else {
                return (
                    Err((
                        1,
                        "The parameter 'payload' is required (a string to split).".into(),
                    )),
                    Vec::new(),
                );
            };
            let text = js_string(payload);
            let lines: Vec<&str> = match params.get("separator").map(js_string) {
                Some(sep) if !sep.is_empty() => text.split(sep.as_str()).collect(),
                _ => text
                    .split('\n')
                    .map(|l| l.strip_suffix('\r').unwrap_or(l))
                    .collect(),
            };
            (Ok(json!({"lines": lines, "payload": payload})), Vec::new())
        }
        "utils/date" => {
            let now = crate::cron::iso8601(crate::model::now_ms());
            (Ok(json!({"date": now})), vec![format!("It is now {now}")])
        }
        "utils/namespace" => (Ok(json!({"namespace": caller})), Vec::new()),
        other => (
            Err((2, format!("No such built-in action '{other}'."))),
            Vec::new(),
        ),
    }
}

/// A value's string form as JavaScript's `String(v)` gives it (near enough for JSON).
fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Array(a) => a.iter().map(js_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, params: Value) -> Value {
        let Value::Object(m) = params else {
            panic!("object")
        };
        utils(name, "guest", m).0.expect("succeeds")
    }

    #[test]
    fn utils_behave_like_the_catalog() {
        assert_eq!(run("utils/echo", json!({"a": 1})), json!({"a": 1}));
        assert_eq!(
            run("utils/cat", json!({"lines": ["a", "b", 3]})),
            json!({"lines": ["a", "b", 3], "payload": "a\nb\n3"})
        );
        assert_eq!(
            run("utils/sort", json!({"lines": ["b", "a", "C", "10", "9"]})),
            json!({"lines": ["10", "9", "C", "a", "b"], "length": 5})
        );
        assert_eq!(
            run("utils/head", json!({"lines": ["x", "y", "z"], "num": 2})),
            json!({"lines": ["x", "y"], "num": 2})
        );
        assert_eq!(
            run("utils/head", json!({"lines": ["x", "y"]})),
            json!({"lines": ["x"], "num": 1})
        );
        assert_eq!(
            run("utils/split", json!({"payload": "a\r\nb\nc"})),
            json!({"lines": ["a", "b", "c"], "payload": "a\r\nb\nc"})
        );
        assert_eq!(
            run("utils/split", json!({"payload": "a,b", "separator": ","})),
            json!({"lines": ["a", "b"], "payload": "a,b"})
        );
        assert_eq!(
            run("utils/namespace", json!({})),
            json!({"namespace": "guest"})
        );
        let d = run("utils/date", json!({}));
        assert!(d["date"].as_str().is_some_and(|s| s.ends_with('Z')));
        assert!(utils("utils/split", "guest", Map::new()).0.is_err());
    }
}
