//! Tenants: subjects, their namespaces and keys, and per-namespace limits.
//!
//! A key is never stored: each namespace row keeps a random 16-byte salt and
//! `SHA-256(salt ‖ key)`. Keys are 256-bit random secrets, so a fast salted hash is as strong
//! as a slow KDF here (there is nothing to guess), and checking one costs ~1 µs per request.
//! The check hashes the presented key and compares the two 32-byte digests in constant time.
//!
//! Limits follow OpenWhisk's per-namespace limits (`invocationsPerMinute`,
//! `concurrentInvocations`, `firesPerMinute`) and refuse with its 429 messages; `weight` is
//! Ditto's share weight in the fair scheduler ([`crate::fair`]). Unset = no extra limit.
//! [`RateLimiter`] keeps one-minute windows per namespace in memory.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A namespace's limits; `None` = the platform default (no extra limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceLimits {
    /// Invocations accepted per minute.
    #[serde(rename = "invocationsPerMinute")]
    pub invocations_per_minute: Option<u32>,
    /// Invocations accepted and unfinished at once.
    #[serde(rename = "concurrentInvocations")]
    pub concurrent_invocations: Option<u32>,
    /// Trigger fires per minute.
    #[serde(rename = "firesPerMinute")]
    pub fires_per_minute: Option<u32>,
    /// Share weight in the fair scheduler (default 1).
    pub weight: Option<u32>,
}

impl NamespaceLimits {
    /// The share weight (default 1, at least 1).
    pub fn weight(&self) -> u32 {
        self.weight.unwrap_or(1).max(1)
    }
}

/// A namespace of a subject, as `ditto admin user get|list` shows it (never the key).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceInfo {
    /// Subject owning it.
    pub subject: String,
    /// Namespace name.
    pub namespace: String,
    /// The key's uuid part.
    pub uuid: String,
}

/// `SHA-256(salt ‖ key)`.
pub fn hash_key(salt: &[u8], key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(key.as_bytes());
    h.finalize().into()
}

/// Compare two digests without an early exit.
pub fn same_digest(a: &[u8; 32], b: &[u8]) -> bool {
    if b.len() != 32 {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

/// Additive migration: salted key hashes, subjects, limits. Hashes any plaintext key left by
/// an older version and blanks it.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let cols: Vec<String> = conn
        .prepare("PRAGMA table_info(namespaces)")?
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<Result<_, _>>()?;
    for (col, ty) in [("subject", "TEXT"), ("salt", "BLOB"), ("key_hash", "BLOB")] {
        if !cols.iter().any(|c| c == col) {
            conn.execute_batch(&format!("ALTER TABLE namespaces ADD COLUMN {col} {ty}"))?;
        }
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS namespace_limits (
            namespace TEXT PRIMARY KEY, invocations_per_minute INTEGER,
            concurrent_invocations INTEGER, fires_per_minute INTEGER, weight INTEGER);",
    )?;
    let plain: Vec<(String, String)> = conn
        .prepare("SELECT name, key FROM namespaces WHERE key != ''")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, key) in plain {
        let salt: [u8; 16] = rand::random();
        conn.execute(
            "UPDATE namespaces SET key = '', salt = ?2, key_hash = ?3,
             subject = COALESCE(subject, ?1) WHERE name = ?1",
            params![name, salt.to_vec(), hash_key(&salt, &key).to_vec()],
        )?;
    }
    Ok(())
}

/// Insert a namespace with fresh credentials (the key is returned, only its hash stored).
pub(crate) fn insert_namespace(
    conn: &Connection,
    subject: &str,
    namespace: &str,
) -> rusqlite::Result<crate::store::Credentials> {
    let c = crate::store::Credentials {
        namespace: namespace.into(),
        uuid: uuid_v4(),
        key: hex::encode(rand::random::<[u8; 32]>()),
    };
    let salt: [u8; 16] = rand::random();
    conn.execute(
        "INSERT INTO namespaces (name, uuid, key, subject, salt, key_hash)
         VALUES (?1, ?2, '', ?3, ?4, ?5)",
        params![
            c.namespace,
            c.uuid,
            subject,
            salt.to_vec(),
            hash_key(&salt, &c.key).to_vec()
        ],
    )?;
    Ok(c)
}

/// An OpenWhisk-style uuid (version 4 layout, 36 characters).
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The namespace whose credentials these are.
pub(crate) fn authenticate(
    conn: &Connection,
    uuid: &str,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    type Row = (String, Option<Vec<u8>>, Option<Vec<u8>>);
    let row: Option<Row> = conn
        .query_row(
            "SELECT name, salt, key_hash FROM namespaces WHERE uuid = ?1",
            [uuid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    // An unknown uuid costs a hash too, so timing does not tell which uuids exist.
    let (ns, salt, stored) = match row {
        Some((ns, Some(salt), Some(h))) => (Some(ns), salt, h),
        _ => (None, vec![0u8; 16], vec![0u8; 32]),
    };
    let presented = hash_key(&salt, key);
    Ok(ns.filter(|_| same_digest(&presented, &stored)))
}

/// Every namespace, optionally of one subject, by subject then namespace.
pub(crate) fn list(
    conn: &Connection,
    subject: Option<&str>,
) -> rusqlite::Result<Vec<NamespaceInfo>> {
    let mut st = conn.prepare(
        "SELECT COALESCE(subject, name), name, uuid FROM namespaces
         WHERE ?1 IS NULL OR COALESCE(subject, name) = ?1 ORDER BY 1, 2",
    )?;
    let rows = st.query_map([subject], |r| {
        Ok(NamespaceInfo {
            subject: r.get(0)?,
            namespace: r.get(1)?,
            uuid: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Delete a subject's namespaces (keys and limits; actions and activations stay). How many.
pub(crate) fn delete_subject(conn: &Connection, subject: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM namespace_limits WHERE namespace IN
         (SELECT name FROM namespaces WHERE COALESCE(subject, name) = ?1)",
        [subject],
    )?;
    conn.execute(
        "DELETE FROM namespaces WHERE COALESCE(subject, name) = ?1",
        [subject],
    )
}

/// A namespace's limits (all `None` if never set).
pub(crate) fn get_limits(conn: &Connection, ns: &str) -> rusqlite::Result<NamespaceLimits> {
    Ok(conn
        .query_row(
            "SELECT invocations_per_minute, concurrent_invocations, fires_per_minute, weight
             FROM namespace_limits WHERE namespace = ?1",
            [ns],
            |r| {
                Ok(NamespaceLimits {
                    invocations_per_minute: r.get(0)?,
                    concurrent_invocations: r.get(1)?,
                    fires_per_minute: r.get(2)?,
                    weight: r.get(3)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Set a namespace's limits (replacing all four).
pub(crate) fn set_limits(conn: &Connection, ns: &str, l: &NamespaceLimits) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO namespace_limits VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            ns,
            l.invocations_per_minute,
            l.concurrent_invocations,
            l.fires_per_minute,
            l.weight
        ],
    )?;
    Ok(())
}

/// OpenWhisk's message for a per-minute limit.
pub fn too_many_requests(count: u32, allowed: u32) -> String {
    format!("Too many requests in the last minute (count: {count}, allowed: {allowed}).")
}

/// OpenWhisk's message for the concurrency limit.
pub fn too_many_concurrent(count: u32, allowed: u32) -> String {
    format!("Too many concurrent requests in flight (count: {count}, allowed: {allowed}).")
}

/// Per-namespace counts in fixed one-minute windows (OpenWhisk counts per minute too), plus a
/// short cache of each namespace's limits so that `ditto admin limits set` takes effect on a
/// running server within [`LIMITS_TTL`].
#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<(String, Kind), (u64, u32)>>,
    cache: Mutex<HashMap<String, (Instant, NamespaceLimits)>>,
}

/// How long a namespace's limits are cached.
pub const LIMITS_TTL: Duration = Duration::from_secs(1);

/// What is being counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Action invocations.
    Invocation,
    /// Trigger fires.
    Fire,
}

impl RateLimiter {
    /// The limits of `ns`, cached for [`LIMITS_TTL`]; `load` reads them from the store.
    pub fn limits(
        &self,
        ns: &str,
        load: impl FnOnce() -> Option<NamespaceLimits>,
    ) -> NamespaceLimits {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, l)) = c.get(ns) {
            if at.elapsed() < LIMITS_TTL {
                return *l;
            }
        }
        let l = load().unwrap_or_default();
        if c.len() > 100_000 {
            c.clear();
        }
        c.insert(ns.to_string(), (Instant::now(), l));
        l
    }

    /// Count one `kind` event for `ns` against `allowed` per minute; the OpenWhisk message
    /// if it is over.
    pub fn check(&self, ns: &str, kind: Kind, allowed: Option<u32>) -> Result<(), String> {
        let minute = crate::model::now_ms().max(0) as u64 / 60_000;
        self.check_at(ns, kind, allowed, minute)
    }

    fn check_at(
        &self,
        ns: &str,
        kind: Kind,
        allowed: Option<u32>,
        minute: u64,
    ) -> Result<(), String> {
        let Some(allowed) = allowed else {
            return Ok(());
        };
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (m, _)| *m == minute);
        }
        let e = w.entry((ns.to_string(), kind)).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        if e.1 >= allowed {
            return Err(too_many_requests(e.1 + 1, allowed));
        }
        e.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_exactly() {
        let salt = [7u8; 16];
        let h = hash_key(&salt, "secret");
        assert!(same_digest(&h, &hash_key(&salt, "secret")));
        assert!(!same_digest(&h, &hash_key(&salt, "secreT")));
        assert!(!same_digest(&h, &hash_key(&[8u8; 16], "secret")));
        assert!(!same_digest(&h, &h[..31]));
    }

    #[test]
    fn rate_limit_counts_per_minute_with_openwhisk_message() {
        let r = RateLimiter::default();
        assert!(r.check("a", Kind::Invocation, None).is_ok());
        for _ in 0..3 {
            r.check_at("a", Kind::Invocation, Some(3), 7)
                .expect("under");
        }
        assert_eq!(
            r.check_at("a", Kind::Invocation, Some(3), 7).unwrap_err(),
            "Too many requests in the last minute (count: 4, allowed: 3)."
        );
        assert!(
            r.check_at("b", Kind::Invocation, Some(3), 7).is_ok(),
            "per namespace"
        );
        assert!(r.check_at("a", Kind::Fire, Some(3), 7).is_ok(), "per kind");
        assert!(
            r.check_at("a", Kind::Invocation, Some(3), 8).is_ok(),
            "next minute"
        );
    }

    #[test]
    fn uuids_have_the_v4_layout() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
