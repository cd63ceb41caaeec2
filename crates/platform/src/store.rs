//! Durable state in an embedded SQLite database (`rusqlite`, bundled): namespaces and their
//! keys, actions (with their modules), activations. Writes are synchronous and in WAL mode,
//! so a restart loses no deployed action and no recorded activation.

mod entities;

use crate::model::{Action, Activation, KeyValue, Limits};
pub use entities::Stored;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("Database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored JSON did not parse.
    #[error("Corrupt stored record: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The entity exists and overwrite was not requested.
    #[error("resource already exists")]
    Conflict,
}

/// The database.
pub struct Store {
    conn: Mutex<Connection>,
}

/// Credentials of a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Namespace name.
    pub namespace: String,
    /// The key's uuid part.
    pub uuid: String,
    /// The key's secret part.
    pub key: String,
}

impl Credentials {
    /// `uuid:key`, as in `~/.wskprops`.
    pub fn auth(&self) -> String {
        format!("{}:{}", self.uuid, self.key)
    }
}

fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

impl Store {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS namespaces (
                name TEXT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, key TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS actions (
                namespace TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
                kind TEXT NOT NULL, code BLOB NOT NULL, parameters TEXT NOT NULL,
                limits TEXT NOT NULL, annotations TEXT NOT NULL, updated INTEGER NOT NULL,
                PRIMARY KEY (namespace, name));
             CREATE TABLE IF NOT EXISTS activations (
                id TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
                version TEXT NOT NULL, subject TEXT NOT NULL, start INTEGER NOT NULL,
                end INTEGER NOT NULL, status_code INTEGER NOT NULL, result TEXT NOT NULL,
                logs TEXT NOT NULL, annotations TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS activations_by_ns ON activations (namespace, start DESC);",
        )?;
        entities::create_tables(&conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create the namespace `name` with fresh credentials if no namespace exists yet.
    /// Returns the new credentials (to print once), or `None` if namespaces exist.
    pub fn ensure_default_namespace(&self, name: &str) -> Result<Option<Credentials>, StoreError> {
        let conn = self.conn();
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM namespaces", [], |r| r.get(0))?;
        if count > 0 {
            return Ok(None);
        }
        let c = Credentials {
            namespace: name.into(),
            uuid: random_hex(16),
            key: random_hex(32),
        };
        conn.execute(
            "INSERT INTO namespaces VALUES (?1, ?2, ?3)",
            params![c.namespace, c.uuid, c.key],
        )?;
        Ok(Some(c))
    }

    /// Add a namespace with fresh credentials.
    pub fn create_namespace(&self, name: &str) -> Result<Credentials, StoreError> {
        let c = Credentials {
            namespace: name.into(),
            uuid: random_hex(16),
            key: random_hex(32),
        };
        self.conn().execute(
            "INSERT INTO namespaces VALUES (?1, ?2, ?3)",
            params![c.namespace, c.uuid, c.key],
        )?;
        Ok(c)
    }

    /// The namespace whose credentials these are.
    pub fn authenticate(&self, uuid: &str, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        let row: Option<(String, String)> = conn
            .query_row(
                "SELECT name, key FROM namespaces WHERE uuid = ?1",
                [uuid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        // Compare keys in constant time.
        Ok(row.and_then(|(ns, k)| {
            let same = k.len() == key.len()
                && k.bytes()
                    .zip(key.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            same.then_some(ns)
        }))
    }

    /// Create or (with `overwrite`) update an action; bumps the version.
    pub fn put_action(&self, mut a: Action, overwrite: bool) -> Result<Action, StoreError> {
        let conn = self.conn();
        let old: Option<String> = conn
            .query_row(
                "SELECT version FROM actions WHERE namespace = ?1 AND name = ?2",
                params![a.namespace, a.name],
                |r| r.get(0),
            )
            .optional()?;
        a.version = match old {
            Some(_) if !overwrite => return Err(StoreError::Conflict),
            Some(v) => bump(&v),
            None => "0.0.1".into(),
        };
        conn.execute(
            "INSERT OR REPLACE INTO actions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                a.namespace,
                a.name,
                a.version,
                a.kind,
                a.code,
                serde_json::to_string(&a.parameters)?,
                serde_json::to_string(&a.limits)?,
                serde_json::to_string(&a.annotations)?,
                a.updated
            ],
        )?;
        Ok(a)
    }

    fn action_from_row(
        r: &rusqlite::Row<'_>,
    ) -> rusqlite::Result<(Action, String, String, String)> {
        Ok((
            Action {
                namespace: r.get(0)?,
                name: r.get(1)?,
                version: r.get(2)?,
                kind: r.get(3)?,
                code: r.get(4)?,
                parameters: Vec::new(),
                limits: Limits::default(),
                annotations: Vec::new(),
                updated: r.get(8)?,
            },
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ))
    }

    fn finish_action(
        (mut a, p, l, n): (Action, String, String, String),
    ) -> Result<Action, StoreError> {
        a.parameters = serde_json::from_str::<Vec<KeyValue>>(&p)?;
        a.limits = serde_json::from_str(&l)?;
        a.annotations = serde_json::from_str(&n)?;
        Ok(a)
    }

    /// One action.
    pub fn get_action(&self, ns: &str, name: &str) -> Result<Option<Action>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT * FROM actions WHERE namespace = ?1 AND name = ?2",
                params![ns, name],
                Self::action_from_row,
            )
            .optional()?;
        row.map(Self::finish_action).transpose()
    }

    /// Actions of a namespace, by name.
    pub fn list_actions(&self, ns: &str, limit: u32, skip: u32) -> Result<Vec<Action>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT * FROM actions WHERE namespace = ?1 ORDER BY name LIMIT ?2 OFFSET ?3",
        )?;
        let rows = st.query_map(params![ns, limit, skip], Self::action_from_row)?;
        rows.map(|r| Self::finish_action(r?)).collect()
    }

    /// Delete an action; whether it existed.
    pub fn delete_action(&self, ns: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM actions WHERE namespace = ?1 AND name = ?2",
            params![ns, name],
        )? > 0)
    }

    /// Record an activation.
    pub fn put_activation(&self, a: &Activation) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO activations VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                a.activation_id,
                a.namespace,
                a.name,
                a.version,
                a.subject,
                a.start,
                a.end,
                a.status_code,
                serde_json::to_string(&a.result)?,
                serde_json::to_string(&a.logs)?,
                serde_json::to_string(&a.annotations)?
            ],
        )?;
        Ok(())
    }

    fn activation_from_row(
        r: &rusqlite::Row<'_>,
    ) -> rusqlite::Result<(Activation, String, String, String)> {
        Ok((
            Activation {
                activation_id: r.get(0)?,
                namespace: r.get(1)?,
                name: r.get(2)?,
                version: r.get(3)?,
                subject: r.get(4)?,
                start: r.get(5)?,
                end: r.get(6)?,
                status_code: r.get(7)?,
                result: serde_json::Value::Null,
                logs: Vec::new(),
                annotations: Vec::new(),
            },
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
        ))
    }

    fn finish_activation(
        (mut a, res, logs, ann): (Activation, String, String, String),
    ) -> Result<Activation, StoreError> {
        a.result = serde_json::from_str(&res)?;
        a.logs = serde_json::from_str(&logs)?;
        a.annotations = serde_json::from_str(&ann)?;
        Ok(a)
    }

    /// One activation of a namespace.
    pub fn get_activation(&self, ns: &str, id: &str) -> Result<Option<Activation>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT * FROM activations WHERE namespace = ?1 AND id = ?2",
                params![ns, id],
                Self::activation_from_row,
            )
            .optional()?;
        row.map(Self::finish_activation).transpose()
    }

    /// Activations of a namespace, newest first, optionally of one action.
    pub fn list_activations(
        &self,
        ns: &str,
        name: Option<&str>,
        limit: u32,
        skip: u32,
    ) -> Result<Vec<Activation>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT * FROM activations WHERE namespace = ?1 AND (?2 IS NULL OR name = ?2)
             ORDER BY start DESC, id LIMIT ?3 OFFSET ?4",
        )?;
        let rows = st.query_map(params![ns, name, limit, skip], Self::activation_from_row)?;
        rows.map(|r| Self::finish_activation(r?)).collect()
    }
}

/// 0.0.1 -> 0.0.2 (anything unparsable restarts at 0.0.1).
fn bump(v: &str) -> String {
    let parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [a, b, c] => format!("{a}.{b}.{}", c + 1),
        _ => "0.0.1".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (Store, std::path::PathBuf) {
        let p = std::env::temp_dir().join(format!(
            "ditto-store-test-{}-{}.db",
            std::process::id(),
            random_hex(4)
        ));
        (Store::open(&p).expect("opens"), p)
    }

    fn action(name: &str) -> Action {
        Action {
            namespace: "guest".into(),
            name: name.into(),
            version: String::new(),
            kind: "wasm".into(),
            code: vec![0, 97, 115, 109],
            parameters: vec![KeyValue {
                key: "a".into(),
                value: serde_json::json!(1),
            }],
            limits: Limits::default(),
            annotations: vec![],
            updated: 1,
        }
    }

    #[test]
    fn namespaces_and_auth() {
        let (s, p) = temp_db();
        let c = s
            .ensure_default_namespace("guest")
            .expect("ok")
            .expect("created");
        assert!(
            s.ensure_default_namespace("guest").expect("ok").is_none(),
            "only once"
        );
        assert_eq!(
            s.authenticate(&c.uuid, &c.key).expect("ok"),
            Some("guest".into())
        );
        assert_eq!(s.authenticate(&c.uuid, "wrong").expect("ok"), None);
        assert_eq!(s.authenticate("nope", &c.key).expect("ok"), None);
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn actions_crud_with_versions_and_persistence() {
        let (s, p) = temp_db();
        assert_eq!(
            s.put_action(action("a"), false).expect("created").version,
            "0.0.1"
        );
        assert!(matches!(
            s.put_action(action("a"), false),
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            s.put_action(action("a"), true).expect("updated").version,
            "0.0.2"
        );
        drop(s);
        let s = Store::open(&p).expect("reopens");
        let a = s.get_action("guest", "a").expect("ok").expect("persisted");
        assert_eq!(
            (a.version.as_str(), a.code.len(), a.parameters.len()),
            ("0.0.2", 4, 1)
        );
        assert_eq!(s.list_actions("guest", 10, 0).expect("ok").len(), 1);
        assert!(s.delete_action("guest", "a").expect("ok"));
        assert!(!s.delete_action("guest", "a").expect("ok"));
        std::fs::remove_file(p).ok();
    }
}
