//! Precompiled artifacts: every action's module is compiled ahead of time for the guest
//! (wasmtime + Cranelift, `ditto-compile`) when the action is created or updated, and the
//! artifact is kept in SQLite beside it, deduplicated by the module's SHA-384 (the same
//! module always gives the same artifact bytes). A cold start fetches the artifact; it
//! never compiles unless the stored artifact is missing or fails its integrity check (a
//! corrupted row is never shipped: it is recompiled, logged and replaced).

use crate::store::{Store, StoreError};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A module and the artifact compiled from it.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// SHA-384 of the module.
    pub module_sha384: [u8; 48],
    /// The artifact the guest loads.
    pub artifact: Arc<Vec<u8>>,
}

/// Errors from compiling or fetching an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The module is not a valid Ditto function (400 at deploy time).
    #[error("{0}")]
    Invalid(#[from] ditto_compile::CompileError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Artifacts, cached in memory over the store.
pub struct Artifacts {
    store: Option<Arc<Store>>,
    cache: Mutex<HashMap<[u8; 48], Arc<Vec<u8>>>>,
}

fn sha384(bytes: &[u8]) -> [u8; 48] {
    ditto_compile::sha384(bytes)
}

impl Artifacts {
    /// Artifacts kept in `store` (table `artifacts`, created if missing), or only in
    /// memory when `store` is `None` (benchmarks).
    pub fn new(store: Option<Arc<Store>>) -> Result<Artifacts, StoreError> {
        if let Some(s) = &store {
            s.conn().execute_batch(
                "CREATE TABLE IF NOT EXISTS artifacts (
                    module_sha384 BLOB PRIMARY KEY, artifact_sha384 BLOB NOT NULL,
                    bytes BLOB NOT NULL, created INTEGER NOT NULL)",
            )?;
        }
        Ok(Artifacts {
            store,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, key: &[u8; 48]) -> Option<Arc<Vec<u8>>> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    fn remember(&self, key: [u8; 48], bytes: Arc<Vec<u8>>) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: artifacts of deleted or old versions are dropped wholesale.
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(key, bytes);
    }

    /// Validate and compile `module` (deploy time) unless an intact artifact exists.
    pub fn compile(&self, module: &[u8]) -> Result<Compiled, ArtifactError> {
        let key = sha384(module);
        if let Some(a) = self.cached(&key) {
            return Ok(Compiled {
                module_sha384: key,
                artifact: a,
            });
        }
        if let Some(a) = self.load_intact(&key)? {
            return Ok(Compiled {
                module_sha384: key,
                artifact: a,
            });
        }
        let t0 = Instant::now();
        let artifact = ditto_compile::compile(module)?;
        tracing::info!(
            module_bytes = module.len(),
            artifact_bytes = artifact.bytes.len(),
            ms = t0.elapsed().as_secs_f64() * 1e3,
            module_sha384 = %hex::encode(key),
            "compiled a function ahead of time"
        );
        let bytes = Arc::new(artifact.bytes);
        if let Some(s) = &self.store {
            s.conn()
                .execute(
                    "INSERT OR REPLACE INTO artifacts VALUES (?1, ?2, ?3, ?4)",
                    params![
                        &key[..],
                        &artifact.artifact_sha384[..],
                        bytes.as_slice(),
                        crate::model::now_ms()
                    ],
                )
                .map_err(StoreError::from)?;
        }
        self.remember(key, bytes.clone());
        Ok(Compiled {
            module_sha384: key,
            artifact: bytes,
        })
    }

    /// The artifact for `module` (cold start): cached, else stored and intact, else
    /// compiled again (and stored).
    pub fn get(&self, module: &[u8]) -> Result<Compiled, ArtifactError> {
        self.compile(module)
    }

    /// The stored artifact for `key` if its bytes still hash to the recorded digest.
    fn load_intact(&self, key: &[u8; 48]) -> Result<Option<Arc<Vec<u8>>>, StoreError> {
        let Some(s) = &self.store else {
            return Ok(None);
        };
        let row: Option<(Vec<u8>, Vec<u8>)> = s
            .conn()
            .query_row(
                "SELECT artifact_sha384, bytes FROM artifacts WHERE module_sha384 = ?1",
                [&key[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((digest, bytes)) = row else {
            return Ok(None);
        };
        if digest != sha384(&bytes) {
            tracing::warn!(
                module_sha384 = %hex::encode(key),
                "a stored artifact failed its integrity check; compiling it again"
            );
            return Ok(None);
        }
        let bytes = Arc::new(bytes);
        self.remember(*key, bytes.clone());
        Ok(Some(bytes))
    }
}
