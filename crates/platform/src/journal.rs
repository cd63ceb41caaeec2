//! The invocation journal: an invocation is a row in SQLite before Ditto acknowledges it
//! (202, or before a blocking one runs), and its activation record replaces that row in one
//! transaction, so every acknowledged activation id ends with exactly one record whatever
//! kills the process.
//!
//! Protocol (row `state`):
//! 1. **Accept**: the row is written as `queued` (it waits for a fair-share slot) or directly
//!    as `started` (it had a slot and a VM at once). The caller waits for the commit.
//! 2. **Start**: a queued row becomes `started` before its VM may run it (committed first).
//! 3. **Finish**: `INSERT OR IGNORE` the activation and `DELETE` the row, one transaction.
//! 4. **Recovery** (next start): `started` rows were running when the process died; they end
//!    with a "whisk internal error" activation that says so. `queued` rows never ran and are
//!    run again (OpenWhisk's at-most-once: nothing that may have run is run twice).
//!
//! **Group commit.** One writer thread owns its own connection and commits whatever requests
//! are waiting in one transaction, so under load many invocations share one fsync (with
//! `synchronous=FULL`) while an idle caller pays exactly one.

use crate::model::Activation;
use crate::store::{connect, Durability, StoreError};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// Errors from the journal.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The database refused the write (read-only, full, I/O error...).
    #[error("The invocation journal cannot be written: {0}")]
    Write(String),
    /// The writer thread is gone (the platform is stopping).
    #[error("The invocation journal is closed")]
    Closed,
}

/// Where a journaled invocation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Accepted, waiting for a slot; never ran.
    Queued = 0,
    /// Handed to a VM (may have run).
    Started = 1,
}

/// One journaled invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Activation id.
    pub id: String,
    /// The invoking namespace (whose activation it is).
    pub namespace: String,
    /// The action's namespace.
    pub action_namespace: String,
    /// The action's name.
    pub action: String,
    /// The action's version at acceptance.
    pub version: String,
    /// JSON parameters (defaults merged).
    pub params: Vec<u8>,
    /// Its state.
    pub state: State,
    /// Acceptance time, ms since the epoch.
    pub accepted_ms: i64,
}

type Ack = tokio::sync::oneshot::Sender<Result<(), JournalError>>;

enum Op {
    Accept(Entry),
    Start(String),
    Finish(Box<Activation>),
}

/// Counters of the writer (commits and operations), for metrics and benchmarks.
#[derive(Default, Debug, Clone, Copy)]
pub struct JournalStats {
    /// Transactions committed.
    pub commits: u64,
    /// Operations committed.
    pub ops: u64,
}

/// The journal's writer handle.
pub struct Journal {
    tx: Mutex<Option<mpsc::Sender<(Op, Ack)>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stats: std::sync::Arc<Mutex<JournalStats>>,
}

/// Additive migration: the `journal` table.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS journal (
            id TEXT PRIMARY KEY, namespace TEXT NOT NULL, action_namespace TEXT NOT NULL,
            action TEXT NOT NULL, version TEXT NOT NULL, params BLOB NOT NULL,
            state INTEGER NOT NULL, accepted_ms INTEGER NOT NULL);",
    )
}

/// Every journaled invocation, oldest first.
pub(crate) fn pending(conn: &Connection) -> Result<Vec<Entry>, StoreError> {
    let mut st = conn.prepare(
        "SELECT id, namespace, action_namespace, action, version, params, state, accepted_ms
         FROM journal ORDER BY accepted_ms, id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Entry {
            id: r.get(0)?,
            namespace: r.get(1)?,
            action_namespace: r.get(2)?,
            action: r.get(3)?,
            version: r.get(4)?,
            params: r.get(5)?,
            state: if r.get::<_, i64>(6)? == 0 {
                State::Queued
            } else {
                State::Started
            },
            accepted_ms: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn apply(conn: &Connection, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Accept(e) => {
            conn.execute(
                "INSERT INTO journal VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    e.id,
                    e.namespace,
                    e.action_namespace,
                    e.action,
                    e.version,
                    e.params,
                    e.state as i64,
                    e.accepted_ms
                ],
            )?;
        }
        Op::Start(id) => {
            conn.execute("UPDATE journal SET state = 1 WHERE id = ?1", [id])?;
        }
        Op::Finish(a) => {
            crate::store::insert_activation(conn, a)?;
            conn.execute("DELETE FROM journal WHERE id = ?1", [&a.activation_id])?;
        }
    }
    Ok(())
}

/// Commit `ops` in one transaction; on failure, each on its own (so one bad operation does
/// not fail its neighbours). One result per op.
fn commit(conn: &Connection, ops: &[Op]) -> Vec<Result<(), JournalError>> {
    let batch = (|| -> Result<(), StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for op in ops {
            if let Err(e) = apply(conn, op) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        if let Err(e) = conn.execute_batch("COMMIT") {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    })();
    match batch {
        Ok(()) => ops.iter().map(|_| Ok(())).collect(),
        Err(_) if ops.len() > 1 => ops
            .iter()
            .map(|op| commit(conn, std::slice::from_ref(op)).remove(0))
            .collect(),
        Err(e) => vec![Err(JournalError::Write(e.to_string()))],
    }
}

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 512;

impl Journal {
    /// Start the writer on its own connection to `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Journal, StoreError> {
        let conn = connect(path, durability)?;
        let (tx, rx) = mpsc::channel::<(Op, Ack)>();
        let stats = std::sync::Arc::new(Mutex::new(JournalStats::default()));
        let st2 = stats.clone();
        let thread = std::thread::Builder::new()
            .name("ditto-journal".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(x) => batch.push(x),
                            Err(_) => break,
                        }
                    }
                    let (ops, acks): (Vec<Op>, Vec<Ack>) = batch.into_iter().unzip();
                    let results = commit(&conn, &ops);
                    {
                        let mut s = st2.lock().unwrap_or_else(|e| e.into_inner());
                        s.commits += 1;
                        s.ops += ops.len() as u64;
                    }
                    for (ack, r) in acks.into_iter().zip(results) {
                        if let Err(e) = &r {
                            tracing::error!(error = %e, "journal write failed");
                        }
                        let _ = ack.send(r);
                    }
                }
            })
            .map_err(|e| StoreError::Io("the journal writer thread".into(), e))?;
        Ok(Journal {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            stats,
        })
    }

    async fn send(&self, op: Op) -> Result<(), JournalError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        {
            let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            let tx = tx.as_ref().ok_or(JournalError::Closed)?;
            tx.send((op, ack)).map_err(|_| JournalError::Closed)?;
        }
        done.await.map_err(|_| JournalError::Closed)?
    }

    /// Journal an accepted invocation (durable when this returns `Ok`).
    pub async fn accept(&self, e: Entry) -> Result<(), JournalError> {
        self.send(Op::Accept(e)).await
    }

    /// Mark a queued invocation as handed to a VM (durable when this returns `Ok`).
    pub async fn start(&self, id: &str) -> Result<(), JournalError> {
        self.send(Op::Start(id.to_string())).await
    }

    /// Record the activation and drop its journal row, atomically.
    pub async fn finish(&self, a: Activation) -> Result<(), JournalError> {
        self.send(Op::Finish(Box::new(a))).await
    }

    /// Commits and operations so far.
    pub fn stats(&self) -> JournalStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stop the writer after what is queued (waits up to `limit`).
    pub fn close(&self, limit: Duration) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let deadline = std::time::Instant::now() + limit;
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn entry(id: &str, state: State) -> Entry {
        Entry {
            id: id.into(),
            namespace: "guest".into(),
            action_namespace: "guest".into(),
            action: "echo".into(),
            version: "0.0.1".into(),
            params: b"{\"a\":1}".to_vec(),
            state,
            accepted_ms: 1,
        }
    }

    fn activation(id: &str) -> Activation {
        Activation {
            activation_id: id.into(),
            namespace: "guest".into(),
            name: "echo".into(),
            version: "0.0.1".into(),
            subject: "guest".into(),
            start: 1,
            end: 2,
            status_code: 0,
            result: serde_json::json!({"ok": true}),
            logs: vec![],
            annotations: vec![],
        }
    }

    #[tokio::test]
    async fn accept_start_finish_and_exactly_one_record() {
        let dir = std::env::temp_dir().join(format!(
            "ditto-journal-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = dir.join("ditto.db");
        let store = Store::open(&db).expect("store");
        let j = Journal::open(&db, Durability::Full).expect("journal");
        let (a, b) = ("a".repeat(32), "b".repeat(32));
        j.accept(entry(&a, State::Queued)).await.expect("accept a");
        j.accept(entry(&b, State::Queued)).await.expect("accept b");
        assert!(
            j.accept(entry(&a, State::Queued)).await.is_err(),
            "an id is journaled once"
        );
        j.start(&b).await.expect("start b");
        let p = store.pending_invocations().expect("pending");
        assert_eq!(
            p.iter()
                .map(|e| (e.id.clone(), e.state))
                .collect::<Vec<_>>(),
            vec![(a.clone(), State::Queued), (b.clone(), State::Started)]
        );
        assert_eq!(p[0].params, b"{\"a\":1}");
        j.finish(activation(&a)).await.expect("finish a");
        let mut second = activation(&a);
        second.status_code = 3;
        j.finish(second).await.expect("a second finish is ignored");
        assert_eq!(
            store
                .get_activation("guest", &a)
                .expect("read")
                .expect("recorded")
                .status_code,
            0,
            "the first record wins"
        );
        assert_eq!(store.pending_invocations().expect("pending").len(), 1);
        // Many concurrent finishes share commits.
        let j = std::sync::Arc::new(j);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("{i:032x}");
                j.accept(entry(&id, State::Started)).await?;
                j.finish(activation(&id)).await
            }));
        }
        for t in tasks {
            t.await.expect("joins").expect("journaled");
        }
        let s = j.stats();
        assert!(s.ops >= 405, "{s:?}");
        j.close(Duration::from_secs(5));
        assert!(matches!(j.start(&b).await, Err(JournalError::Closed)));
        std::fs::remove_dir_all(dir).ok();
    }
}
