//! The OpenWhisk entities beyond actions and activations: packages (and bindings),
//! triggers, rules, API routes and alarm feeds. Each is stored as one JSON document in the
//! store's `entities` table; these are their stored shapes and their OpenWhisk JSON forms.

use crate::model::KeyValue;
use crate::names::EntityPath;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Store collection names.
pub mod collection {
    /// Packages.
    pub const PACKAGES: &str = "packages";
    /// Triggers.
    pub const TRIGGERS: &str = "triggers";
    /// Rules.
    pub const RULES: &str = "rules";
    /// API routes.
    pub const ROUTES: &str = "routes";
    /// Alarm feeds.
    pub const ALARMS: &str = "alarms";
}

/// What every stored entity has.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Common {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Semantic version (set by the store).
    #[serde(default)]
    pub version: String,
    /// Shared with every namespace.
    #[serde(default)]
    pub publish: bool,
    /// Annotations.
    #[serde(default)]
    pub annotations: Vec<KeyValue>,
    /// Last update, ms since the epoch.
    #[serde(default)]
    pub updated: i64,
}

/// `binding: {namespace, name}` of a package binding.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Binding {
    /// The bound package's namespace.
    pub namespace: String,
    /// The bound package's name.
    pub name: String,
}

/// A package or a package binding.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Package {
    /// Namespace, name, version, publish, annotations.
    #[serde(flatten)]
    pub common: Common,
    /// Default parameters (merged under the parameters of its actions).
    #[serde(default)]
    pub parameters: Vec<KeyValue>,
    /// For a binding: the package it binds.
    #[serde(default)]
    pub binding: Option<Binding>,
}

impl Package {
    /// OpenWhisk's JSON; `actions` (name + version) on a GET.
    pub fn to_json(&self, actions: Option<Vec<Value>>) -> Value {
        let mut v = json!({
            "namespace": self.common.namespace,
            "name": self.common.name,
            "version": self.common.version,
            "publish": self.common.publish,
            "annotations": self.common.annotations,
            "parameters": self.parameters,
            "binding": self.binding.as_ref().map(|b| json!(b)).unwrap_or(json!({})),
            "updated": self.common.updated,
        });
        if let Some(a) = actions {
            v["actions"] = Value::Array(a);
        }
        v
    }
}

/// A trigger.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Trigger {
    /// Namespace, name, version, publish, annotations.
    #[serde(flatten)]
    pub common: Common,
    /// Default parameters (merged under a firing's payload).
    #[serde(default)]
    pub parameters: Vec<KeyValue>,
}

impl Trigger {
    /// OpenWhisk's JSON, with the `rules` map (`ns/rule` → `{action, status}`).
    pub fn to_json(&self, rules: &[Rule]) -> Value {
        let map: serde_json::Map<String, Value> = rules
            .iter()
            .map(|r| {
                (
                    format!("{}/{}", r.common.namespace, r.common.name),
                    json!({"action": path_json(&r.action), "status": r.status}),
                )
            })
            .collect();
        json!({
            "namespace": self.common.namespace,
            "name": self.common.name,
            "version": self.common.version,
            "publish": self.common.publish,
            "annotations": self.common.annotations,
            "parameters": self.parameters,
            "limits": {},
            "rules": map,
            "updated": self.common.updated,
        })
    }
}

/// `{namespace, name}` as OpenWhisk writes a referenced entity (`namespace` may be `ns/pkg`).
pub fn path_json(p: &EntityPath) -> Value {
    json!({"namespace": p.json_namespace(), "name": p.name, "path": p.json_namespace()})
}

/// A rule: when `trigger` fires, invoke `action` (if `status` is `active`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rule {
    /// Namespace, name, version, publish, annotations.
    #[serde(flatten)]
    pub common: Common,
    /// The trigger (always in the rule's namespace).
    pub trigger: EntityPathDoc,
    /// The action (any readable namespace, possibly in a package).
    pub action: EntityPathDoc,
    /// `active` or `inactive`.
    pub status: String,
}

/// An [`EntityPath`] as stored.
pub type EntityPathDoc = EntityPath;

impl Serialize for EntityPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for EntityPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntityPath::parse(&s, "_").map_err(serde::de::Error::custom)
    }
}

impl Rule {
    /// Whether the rule fires.
    pub fn active(&self) -> bool {
        self.status == "active"
    }

    /// OpenWhisk's JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "namespace": self.common.namespace,
            "name": self.common.name,
            "version": self.common.version,
            "publish": self.common.publish,
            "annotations": self.common.annotations,
            "trigger": path_json(&self.trigger),
            "action": path_json(&self.action),
            "status": self.status,
            "updated": self.common.updated,
        })
    }
}

/// One API route: base path + relative path + verb → a web action.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Route {
    /// Owner namespace.
    pub namespace: String,
    /// Base path, e.g. `/hello` (starts with `/`).
    pub basepath: String,
    /// Relative path, e.g. `/world` or `/books/{id}`.
    pub relpath: String,
    /// HTTP verb, upper case.
    pub operation: String,
    /// The web action.
    pub action: EntityPathDoc,
    /// API name (defaults to the base path).
    pub api_name: String,
    /// Response type: json, http, html, text.
    pub responsetype: String,
}

impl Route {
    /// The store key: `basepath relpath VERB`.
    pub fn key(&self) -> String {
        format!("{} {} {}", self.basepath, self.relpath, self.operation)
    }
}

/// An alarm feed attached to a trigger.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Alarm {
    /// The trigger it fires.
    pub trigger: EntityPathDoc,
    /// Which feed: `alarm` (cron), `interval` or `once`.
    pub feed: String,
    /// The cron expression (`alarm`).
    #[serde(default)]
    pub cron: Option<String>,
    /// The period in minutes (`interval`).
    #[serde(default)]
    pub minutes: Option<u64>,
    /// When to fire, ms since the epoch (`once`).
    #[serde(default)]
    pub date: Option<i64>,
    /// Not before, ms since the epoch.
    #[serde(default)]
    pub start: Option<i64>,
    /// Not after, ms since the epoch.
    #[serde(default)]
    pub stop: Option<i64>,
    /// The payload of each firing.
    #[serde(default)]
    pub payload: serde_json::Map<String, Value>,
    /// Fires only when active (PAUSE/UNPAUSE).
    pub active: bool,
    /// Created, ms since the epoch (the `interval` feed's phase).
    pub created: i64,
    /// Last firing, ms since the epoch.
    #[serde(default)]
    pub last_fired: Option<i64>,
}
