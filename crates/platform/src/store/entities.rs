//! The store's additive part for packages, triggers, rules, routes and alarms: one table of
//! JSON documents keyed by (collection, namespace, name), plus counts and activation
//! summaries from a brief copy of each activation that never holds results or logs.

use super::{bump, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// Create the `entities` table and `activation_briefs` (idempotent; called by
/// [`Store::open`]). `activation_briefs` holds every activation without its result and
/// logs, kept by SQLite triggers on `activations`, so listing summaries never walks a big
/// result's overflow pages; activations recorded before it existed are copied in once.
pub(super) fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS entities (
            collection TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
            version TEXT NOT NULL, doc TEXT NOT NULL, updated INTEGER NOT NULL,
            PRIMARY KEY (collection, namespace, name));
         CREATE TABLE IF NOT EXISTS activation_briefs (
            id TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
            version TEXT NOT NULL, subject TEXT NOT NULL, start INTEGER NOT NULL,
            end INTEGER NOT NULL, status_code INTEGER NOT NULL, annotations TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS activation_briefs_by_ns
            ON activation_briefs (namespace, start DESC);
         CREATE TRIGGER IF NOT EXISTS activation_briefs_insert AFTER INSERT ON activations
         BEGIN
            INSERT OR REPLACE INTO activation_briefs VALUES (NEW.id, NEW.namespace, NEW.name,
                NEW.version, NEW.subject, NEW.start, NEW.end, NEW.status_code, NEW.annotations);
         END;
         CREATE TRIGGER IF NOT EXISTS activation_briefs_delete AFTER DELETE ON activations
         BEGIN
            DELETE FROM activation_briefs WHERE id = OLD.id;
         END;",
    )?;
    let missing: bool = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM activations) != (SELECT COUNT(*) FROM activation_briefs)",
        [],
        |r| r.get(0),
    )?;
    if missing {
        conn.execute(
            "INSERT OR IGNORE INTO activation_briefs
             SELECT id, namespace, name, version, subject, start, end, status_code, annotations
             FROM activations WHERE id NOT IN (SELECT id FROM activation_briefs)",
            [],
        )?;
    }
    Ok(())
}

/// A stored document with its version.
#[derive(Clone, Debug)]
pub struct Stored<T> {
    /// The document.
    pub doc: T,
    /// Its version (bumped on every update).
    pub version: String,
}

impl Store {
    /// Create or (with `overwrite`) replace a document; returns its new version.
    pub fn put_entity<T: Serialize>(
        &self,
        collection: &str,
        ns: &str,
        name: &str,
        doc: &T,
        overwrite: bool,
    ) -> Result<String, StoreError> {
        let conn = self.conn();
        let old: Option<String> = conn
            .query_row(
                "SELECT version FROM entities WHERE collection = ?1 AND namespace = ?2 AND name = ?3",
                params![collection, ns, name],
                |r| r.get(0),
            )
            .optional()?;
        let version = match old {
            Some(_) if !overwrite => return Err(StoreError::Conflict),
            Some(v) => bump(&v),
            None => "0.0.1".into(),
        };
        conn.execute(
            "INSERT OR REPLACE INTO entities VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                collection,
                ns,
                name,
                version,
                serde_json::to_string(doc)?,
                crate::model::now_ms()
            ],
        )?;
        Ok(version)
    }

    /// One document.
    pub fn get_entity<T: DeserializeOwned>(
        &self,
        collection: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Stored<T>>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT doc, version FROM entities WHERE collection = ?1 AND namespace = ?2 AND name = ?3",
                params![collection, ns, name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(d, version)| {
            Ok(Stored {
                doc: serde_json::from_str(&d)?,
                version,
            })
        })
        .transpose()
    }

    /// Documents of a namespace by name (`ns = None`: every namespace).
    pub fn list_entities<T: DeserializeOwned>(
        &self,
        collection: &str,
        ns: Option<&str>,
        limit: u32,
        skip: u32,
    ) -> Result<Vec<Stored<T>>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT doc, version FROM entities WHERE collection = ?1 AND (?2 IS NULL OR namespace = ?2)
             ORDER BY namespace, name LIMIT ?3 OFFSET ?4",
        )?;
        let rows = st.query_map(params![collection, ns, limit, skip], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| {
            let (d, version) = r?;
            Ok(Stored {
                doc: serde_json::from_str(&d)?,
                version,
            })
        })
        .collect()
    }

    /// How many documents a namespace has in a collection.
    pub fn count_entities(&self, collection: &str, ns: &str) -> Result<u64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM entities WHERE collection = ?1 AND namespace = ?2",
            params![collection, ns],
            |r| r.get(0),
        )?)
    }

    /// Delete a document; whether it existed.
    pub fn delete_entity(
        &self,
        collection: &str,
        ns: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM entities WHERE collection = ?1 AND namespace = ?2 AND name = ?3",
            params![collection, ns, name],
        )? > 0)
    }

    /// How many actions a namespace has (`package`: only in that package).
    pub fn count_actions(&self, ns: &str, package: Option<&str>) -> Result<u64, StoreError> {
        let prefix = package.map(|p| format!("{p}/"));
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM actions WHERE namespace = ?1
             AND (?2 IS NULL OR substr(name, 1, length(?2)) = ?2)",
            params![ns, prefix],
            |r| r.get(0),
        )?)
    }

    /// Names and versions of the actions in a package.
    pub fn package_actions(
        &self,
        ns: &str,
        package: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = format!("{package}/");
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT name, version FROM actions WHERE namespace = ?1
             AND substr(name, 1, length(?2)) = ?2 ORDER BY name",
        )?;
        let rows = st.query_map(params![ns, prefix], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| {
            let (n, v) = r?;
            Ok((n.strip_prefix(&prefix).unwrap_or(&n).to_string(), v))
        })
        .collect()
    }

    /// How many activations a namespace has (optionally of one name).
    pub fn count_activations(&self, ns: &str, name: Option<&str>) -> Result<u64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM activation_briefs WHERE namespace = ?1 AND (?2 IS NULL OR name = ?2)",
            params![ns, name],
            |r| r.get(0),
        )?)
    }

    /// OpenWhisk's activation summaries (no result, no logs), newest first, optionally of
    /// one name and within `[since, upto]` (ms since the epoch).
    pub fn list_activation_summaries(
        &self,
        ns: &str,
        name: Option<&str>,
        since: Option<i64>,
        upto: Option<i64>,
        limit: u32,
        skip: u32,
    ) -> Result<Vec<Value>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, namespace, name, version, subject, start, end, status_code, annotations
             FROM activation_briefs WHERE namespace = ?1 AND (?2 IS NULL OR name = ?2)
             AND (?3 IS NULL OR start >= ?3) AND (?4 IS NULL OR start <= ?4)
             ORDER BY start DESC, id LIMIT ?5 OFFSET ?6",
        )?;
        let rows = st.query_map(params![ns, name, since, upto, limit, skip], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, u8>(7)?,
                r.get::<_, String>(8)?,
            ))
        })?;
        rows.map(|r| {
            let (id, ns, name, version, subject, start, end, code, ann) = r?;
            let ann: Value = serde_json::from_str(&ann)?;
            Ok(json!({
                "activationId": id, "namespace": ns, "name": name, "version": version,
                "subject": subject, "start": start, "end": end, "duration": end - start,
                "statusCode": code, "annotations": ann, "publish": false,
            }))
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Activation;
    use crate::store::Store;
    use serde_json::json;

    fn act(id: &str, start: i64) -> Activation {
        Activation {
            activation_id: id.into(),
            namespace: "guest".into(),
            name: "a".into(),
            version: "0.0.1".into(),
            subject: "guest".into(),
            start,
            end: start + 5,
            status_code: 1,
            result: json!({"pad": "x".repeat(100_000)}),
            logs: vec!["l".into()],
            annotations: vec![],
        }
    }

    #[test]
    fn summaries_follow_activations_and_backfill() {
        let p = std::env::temp_dir().join(format!(
            "ditto-briefs-{}-{}.db",
            std::process::id(),
            crate::model::now_ms()
        ));
        let s = Store::open(&p).expect("opens");
        s.put_activation(&act("a1", 10)).expect("put");
        s.put_activation(&act("a2", 20)).expect("put");
        // Exactly one record per id: a second one for the same id is ignored.
        s.put_activation(&act("a2", 30)).expect("ignored");
        let l = s
            .list_activation_summaries("guest", Some("a"), None, None, 10, 0)
            .expect("list");
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0]["activationId"].clone(), l[0]["start"].clone()),
            (json!("a2"), json!(20))
        );
        assert_eq!(l[0]["statusCode"], 1);
        assert!(l[0].get("response").is_none() && l[0].get("logs").is_none());
        assert_eq!(s.count_activations("guest", None).expect("count"), 2);
        assert_eq!(
            s.list_activation_summaries("guest", None, Some(21), Some(29), 10, 0)
                .expect("list")
                .len(),
            0,
            "since/upto"
        );
        // Rows recorded before the brief table existed are copied in at the next open.
        s.conn()
            .execute_batch("DELETE FROM activation_briefs")
            .expect("clear");
        drop(s);
        let s = Store::open(&p).expect("reopens");
        assert_eq!(s.count_activations("guest", None).expect("count"), 2);
        std::fs::remove_file(&p).ok();
    }
}
