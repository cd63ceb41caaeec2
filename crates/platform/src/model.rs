//! OpenWhisk-shaped records: actions, their limits, activations, and their JSON forms.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A `{key, value}` pair (parameters, annotations).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Value,
}

/// Action limits (OpenWhisk units: ms and MB).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limits {
    /// Timeout, ms (100 ..= 300 000).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Memory, MB (128 ..= 512).
    #[serde(default = "default_memory")]
    pub memory: u64,
    /// Log size, MB (kept for compatibility).
    #[serde(default = "default_logs")]
    pub logs: u64,
    /// Concurrency (kept for compatibility).
    #[serde(default = "default_concurrency")]
    pub concurrency: u64,
}

fn default_timeout() -> u64 {
    60_000
}
fn default_memory() -> u64 {
    256
}
fn default_logs() -> u64 {
    10
}
fn default_concurrency() -> u64 {
    1
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            memory: default_memory(),
            logs: default_logs(),
            concurrency: 1,
        }
    }
}

impl Limits {
    /// Check the ranges OpenWhisk allows.
    pub fn validate(&self) -> Result<(), String> {
        if !(100..=300_000).contains(&self.timeout) {
            return Err(format!(
                "The timeout limit {} ms is outside 100..300000 ms.",
                self.timeout
            ));
        }
        if !(128..=512).contains(&self.memory) {
            return Err(format!(
                "The memory limit {} MB is outside 128..512 MB.",
                self.memory
            ));
        }
        Ok(())
    }
}

/// `exec.kind` of a sequence: `code` holds the JSON list of its components.
pub const KIND_SEQUENCE: &str = "sequence";
/// `exec.kind` of a platform-internal action (`whisk.system`): `code` holds its name.
pub const KIND_BUILTIN: &str = "builtin";

/// A deployed action.
#[derive(Clone, Debug)]
pub struct Action {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Semantic version, bumped on every update.
    pub version: String,
    /// `exec.kind` ("wasm").
    pub kind: String,
    /// The WebAssembly module.
    pub code: Vec<u8>,
    /// Default parameters.
    pub parameters: Vec<KeyValue>,
    /// Limits.
    pub limits: Limits,
    /// Annotations.
    pub annotations: Vec<KeyValue>,
    /// Last update, ms since the epoch.
    pub updated: i64,
}

impl Action {
    /// The OpenWhisk JSON form; `code` includes the base64 module.
    pub fn to_json(&self, code: bool) -> Value {
        let path = crate::names::EntityPath::from_store(&self.namespace, &self.name);
        let mut exec = match self.kind.as_str() {
            KIND_SEQUENCE => json!({"kind": self.kind, "components": self.components()}),
            KIND_BUILTIN => json!({"kind": self.kind, "binary": false}),
            _ => json!({"kind": self.kind, "binary": true}),
        };
        if code && self.kind == "wasm" {
            exec["code"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(&self.code));
        }
        json!({
            "namespace": path.json_namespace(),
            "name": path.name,
            "version": self.version,
            "exec": exec,
            "parameters": self.parameters,
            "limits": self.limits,
            "annotations": self.annotations,
            "publish": false,
            "updated": self.updated,
        })
    }

    /// A sequence's components (fully qualified paths, kept as JSON in `code`).
    pub fn components(&self) -> Vec<String> {
        if self.kind != KIND_SEQUENCE {
            return Vec::new();
        }
        serde_json::from_slice(&self.code).unwrap_or_default()
    }

    /// The simple name (without its package).
    pub fn short_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        self.annotations
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }
}

/// The scheduling policy named by the `policy` annotation (default `queue`) and its
/// options from the `policy_opts` annotation (an object of option = value).
pub fn policy_annotation(annotations: &[KeyValue]) -> (String, Vec<(String, String)>) {
    let find = |k: &str| {
        annotations
            .iter()
            .find(|kv| kv.key == k)
            .map(|kv| &kv.value)
    };
    let name = find("policy")
        .and_then(Value::as_str)
        .unwrap_or("queue")
        .to_string();
    let opts = match find("policy_opts") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    (name, opts)
}

/// The body of `PUT .../actions/{name}`.
#[derive(Debug, Deserialize)]
pub struct ActionPut {
    /// `exec`, required on create.
    pub exec: Option<ExecPut>,
    /// Default parameters.
    #[serde(default)]
    pub parameters: Option<Vec<KeyValue>>,
    /// Limits.
    #[serde(default)]
    pub limits: Option<LimitsPut>,
    /// Annotations.
    #[serde(default)]
    pub annotations: Option<Vec<KeyValue>>,
}

/// `exec` of an action PUT.
#[derive(Debug, Deserialize)]
pub struct ExecPut {
    /// "wasm" or "sequence".
    pub kind: String,
    /// Base64 of the module.
    pub code: Option<String>,
    /// A sequence's components.
    #[serde(default)]
    pub components: Option<Vec<String>>,
}

/// Limits in a PUT: every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct LimitsPut {
    /// Timeout, ms.
    pub timeout: Option<u64>,
    /// Memory, MB.
    pub memory: Option<u64>,
    /// Logs, MB.
    pub logs: Option<u64>,
    /// Concurrency.
    pub concurrency: Option<u64>,
}

/// OpenWhisk's response status names by code.
pub fn status_name(code: u8) -> &'static str {
    match code {
        0 => "success",
        1 => "application error",
        2 => "action developer error",
        _ => "whisk internal error",
    }
}

/// A finished activation.
#[derive(Clone, Debug, PartialEq)]
pub struct Activation {
    /// 32 hex digits.
    pub activation_id: String,
    /// Namespace.
    pub namespace: String,
    /// Action name.
    pub name: String,
    /// Action version.
    pub version: String,
    /// Who invoked it.
    pub subject: String,
    /// Start, ms since the epoch.
    pub start: i64,
    /// End, ms since the epoch.
    pub end: i64,
    /// 0 success, 1 application error, 2 developer error, 3 internal error.
    pub status_code: u8,
    /// The result (an object; `{"error": ...}` on failure).
    pub result: Value,
    /// Log lines.
    pub logs: Vec<String>,
    /// Annotations (waitTime, initTime, kind, limits, path).
    pub annotations: Vec<KeyValue>,
}

impl Activation {
    /// Whether it succeeded.
    pub fn success(&self) -> bool {
        self.status_code == 0
    }

    /// The `response` object.
    pub fn response(&self) -> Value {
        json!({
            "status": status_name(self.status_code),
            "statusCode": self.status_code,
            "success": self.success(),
            "result": self.result,
        })
    }

    /// The OpenWhisk JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "activationId": self.activation_id,
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "subject": self.subject,
            "start": self.start,
            "end": self.end,
            "duration": self.end - self.start,
            "response": self.response(),
            "logs": self.logs,
            "annotations": self.annotations,
            "publish": false,
        })
    }
}

/// A fresh activation id: 32 random hex digits.
pub fn new_activation_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_ranges() {
        assert!(Limits::default().validate().is_ok());
        assert!(Limits {
            timeout: 50,
            ..Limits::default()
        }
        .validate()
        .is_err());
        assert!(Limits {
            memory: 1024,
            ..Limits::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn activation_json_has_openwhisk_fields() {
        let a = Activation {
            activation_id: new_activation_id(),
            namespace: "guest".into(),
            name: "echo".into(),
            version: "0.0.1".into(),
            subject: "guest".into(),
            start: 10,
            end: 15,
            status_code: 1,
            result: json!({"error": "boom"}),
            logs: vec![],
            annotations: vec![],
        };
        let j = a.to_json();
        assert_eq!(j["activationId"].as_str().map(str::len), Some(32));
        assert_eq!(j["duration"], 5);
        assert_eq!(j["response"]["status"], "application error");
        assert_eq!(j["response"]["success"], false);
    }
}
