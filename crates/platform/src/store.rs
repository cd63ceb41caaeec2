//! Durable state in an embedded SQLite database (`rusqlite`, bundled): namespaces and their
//! key hashes ([`crate::tenants`]), actions (with their modules), activations and the
//! invocation journal ([`crate::journal`]). WAL mode; `synchronous` per [`Durability`]. The
//! file is created 0600 (SQLite gives its `-wal`/`-shm` files the same mode).

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
    /// A file could not be created or its mode set.
    #[error("Cannot prepare {0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// The database.
pub struct Store {
    conn: Mutex<Connection>,
    path: std::path::PathBuf,
    durability: Durability,
}

/// How hard a commit waits for the disk (SQLite `synchronous` in WAL mode). The platform's
/// default is `Normal`: every commit is in the OS before it is acknowledged, so it survives
/// any death of the process (kill -9 included); `Full` also survives power loss and OS
/// crashes at about twice the cost per invocation (measured in docs/ARCHITECTURE.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: every commit fsyncs the WAL; survives power loss and OS crashes.
    Full,
    /// `synchronous=NORMAL`: commits reach the OS (survive any process kill) and the WAL is
    /// fsynced at checkpoints only; an OS crash may lose the last commits.
    #[default]
    Normal,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            _ => Err(format!("durability must be 'full' or 'normal', not '{s}'")),
        }
    }
}

/// Open a connection to `path` with Ditto's settings.
pub(crate) fn connect(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Io(path.display().to_string(), e))?;
    }
    let conn = Connection::open(path)?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // WAL: readers never block the writer. The WAL is checkpointed every 1000 pages (SQLite's
    // default) and truncated back to 64 MiB after a checkpoint, so it cannot grow without end.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous={sync};
         PRAGMA busy_timeout=5000;
         PRAGMA journal_size_limit=67108864;"
    ))?;
    if conn.pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))? != "wal" {
        return Err(StoreError::Io(
            path.display().to_string(),
            std::io::Error::other("SQLite could not switch the database to WAL mode"),
        ));
    }
    Ok(conn)
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

#[cfg(test)]
fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

impl Store {
    /// Open (or create) the database at `path` with [`Durability::Full`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, Durability::Full)
    }

    /// Open (or create) the database at `path`.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let conn = connect(path, durability)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS namespaces (
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
        crate::tenants::migrate(&conn)?;
        crate::journal::migrate(&conn)?;
        entities::create_tables(&conn)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::Io(path.display().to_string(), e))?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            durability,
        })
    }

    /// Every journaled (accepted, unfinished) invocation, oldest first.
    pub fn pending_invocations(&self) -> Result<Vec<crate::journal::Entry>, StoreError> {
        crate::journal::pending(&self.conn())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its durability setting.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create the namespace `name` (subject `name`) with fresh credentials if no namespace
    /// exists yet. Returns the new credentials (to print once), or `None` if namespaces exist.
    pub fn ensure_default_namespace(&self, name: &str) -> Result<Option<Credentials>, StoreError> {
        let conn = self.conn();
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM namespaces", [], |r| r.get(0))?;
        if count > 0 {
            return Ok(None);
        }
        Ok(Some(crate::tenants::insert_namespace(&conn, name, name)?))
    }

    /// Add a namespace with fresh credentials (subject = the namespace's name).
    pub fn create_namespace(&self, name: &str) -> Result<Credentials, StoreError> {
        self.create_user(name, name)
    }

    /// Add namespace `namespace` of `subject` with fresh credentials (`wskadmin user create`).
    pub fn create_user(&self, subject: &str, namespace: &str) -> Result<Credentials, StoreError> {
        let conn = self.conn();
        let exists: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM namespaces WHERE name = ?1)",
            [namespace],
            |r| r.get(0),
        )?;
        if exists {
            return Err(StoreError::Conflict);
        }
        Ok(crate::tenants::insert_namespace(&conn, subject, namespace)?)
    }

    /// Namespaces (never keys), optionally of one subject.
    pub fn list_users(
        &self,
        subject: Option<&str>,
    ) -> Result<Vec<crate::tenants::NamespaceInfo>, StoreError> {
        Ok(crate::tenants::list(&self.conn(), subject)?)
    }

    /// Delete a subject's namespaces; how many there were.
    pub fn delete_user(&self, subject: &str) -> Result<usize, StoreError> {
        Ok(crate::tenants::delete_subject(&self.conn(), subject)?)
    }

    /// A namespace's limits.
    pub fn namespace_limits(
        &self,
        ns: &str,
    ) -> Result<crate::tenants::NamespaceLimits, StoreError> {
        Ok(crate::tenants::get_limits(&self.conn(), ns)?)
    }

    /// Replace a namespace's limits.
    pub fn set_namespace_limits(
        &self,
        ns: &str,
        l: &crate::tenants::NamespaceLimits,
    ) -> Result<(), StoreError> {
        Ok(crate::tenants::set_limits(&self.conn(), ns, l)?)
    }

    /// The namespace whose credentials these are (salted hash, constant-time compare).
    pub fn authenticate(&self, uuid: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(crate::tenants::authenticate(&self.conn(), uuid, key)?)
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
        insert_activation(&self.conn(), a).map(|_| ())
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

/// Insert an activation unless one with its id exists (the first record of an id wins, so
/// an id never gets two). Whether it was inserted.
pub(crate) fn insert_activation(conn: &Connection, a: &Activation) -> Result<bool, StoreError> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO activations VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
    Ok(n == 1)
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
