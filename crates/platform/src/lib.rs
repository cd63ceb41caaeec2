//! The Ditto serverless platform: an OpenWhisk-compatible HTTP API ([`api`]) over elastic
//! VMs per action ([`pool`]), durable state in SQLite ([`store`]), Prometheus metrics
//! ([`metrics`]) and a TOML configuration ([`config`]).
//!
//! One invocation: authenticate → look up the action (cached) → admission (in-flight bound)
//! → place it on a VM (least loaded; wake a worker if all awake ones are busy; scale out or
//! cold-start if needed; refuse with 429 if over budget) → run it in the guest → record one
//! activation (SQLite) → answer (blocking) or just record (non-blocking).
//!
//! Around actions: packages and bindings, the built-in `whisk.system` namespace
//! ([`system`]), triggers and rules, alarm feeds ([`alarms`], [`cron`]), sequences, web
//! actions and API routes, all invoking through one path (`invoke.rs`); names are
//! validated in [`names`], stored entity shapes live in [`entity`].

pub mod alarms;
pub mod api;
pub mod artifacts;
pub mod config;
pub mod cron;
pub mod entity;
mod invoke;
pub mod local;
pub mod metrics;
pub mod model;
pub mod names;
pub mod pool;
pub mod store;
pub mod system;

use crate::api::ApiError;
use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::model::{Action, Activation, KeyValue};
use crate::pool::{Placed, PoolError, Pools, Reservation};
use crate::store::{Credentials, Store};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Errors starting the platform.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The data directory or database is unusable.
    #[error("Cannot open the data directory {path}: {source}")]
    Data {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Metrics could not be registered.
    #[error("Metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The VMM could not be prepared.
    #[error(transparent)]
    Vmm(#[from] ditto_vmm::VmmError),
    /// The listener failed.
    #[error("Cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The running platform's shared state.
pub struct Platform {
    /// Configuration.
    pub config: ServeConfig,
    /// Durable state.
    pub store: Arc<Store>,
    /// VM pools.
    pub pools: Arc<Pools>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    actions: Mutex<HashMap<(String, String), Arc<Action>>>,
    /// Invocations accepted and not yet recorded.
    pub inflight: AtomicU32,
    drained: tokio::sync::Notify,
    /// Credentials created on first start (printed once by `ditto serve`).
    pub new_credentials: Option<Credentials>,
}

impl Platform {
    /// Open the data directory, create the default namespace on first start, prepare pools.
    pub fn open(config: ServeConfig) -> Result<Arc<Platform>, PlatformError> {
        let data_err = |source: Box<dyn std::error::Error + Send + Sync>| PlatformError::Data {
            path: config.data_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|e| data_err(Box::new(e)))?;
        let store =
            Store::open(&config.data_dir.join("ditto.db")).map_err(|e| data_err(Box::new(e)))?;
        let new_credentials = store
            .ensure_default_namespace(&config.default_namespace)
            .map_err(|e| data_err(Box::new(e)))?;
        let metrics = Arc::new(Metrics::new()?);
        let store = Arc::new(store);
        let artifacts =
            artifacts::Artifacts::new(Some(store.clone())).map_err(|e| data_err(Box::new(e)))?;
        let pools = Arc::new(
            Pools::new(config.pool.clone(), metrics.clone())?.with_artifacts(Arc::new(artifacts)),
        );
        Ok(Arc::new(Platform {
            config,
            store,
            pools,
            metrics,
            actions: Mutex::new(HashMap::new()),
            inflight: AtomicU32::new(0),
            drained: tokio::sync::Notify::new(),
            new_credentials,
        }))
    }

    /// An action, from the cache or the store.
    pub(crate) fn action(&self, ns: &str, name: &str) -> Result<Option<Arc<Action>>, ApiError> {
        let key = (ns.to_string(), name.to_string());
        if let Some(a) = self
            .actions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Some(a.clone()));
        }
        let found = self
            .store
            .get_action(ns, name)
            .map_err(|e| api_internal(&e))?;
        Ok(found.map(|a| {
            let a = Arc::new(a);
            self.cache_action(a.clone());
            a
        }))
    }

    pub(crate) fn cache_action(&self, a: Arc<Action>) {
        self.actions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((a.namespace.clone(), a.name.clone()), a);
    }

    pub(crate) fn forget_action(&self, ns: &str, name: &str) {
        self.actions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ns.to_string(), name.to_string()));
    }

    /// Run a placed invocation in the background; returns its activation id and a receiver
    /// for the recorded activation.
    pub(crate) fn start_invocation(
        self: &Arc<Self>,
        action: Arc<Action>,
        ns: String,
        params: serde_json::Map<String, Value>,
        accepted_at: Instant,
        reservation: Option<Reservation>,
    ) -> (String, tokio::sync::oneshot::Receiver<Activation>) {
        let id = model::new_activation_id();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let p = self.clone();
        let id2 = id.clone();
        tokio::spawn(async move {
            let bytes =
                serde_json::to_vec(&Value::Object(params)).unwrap_or_else(|_| b"{}".to_vec());
            let placed = match reservation {
                Some(r) => r.run(bytes).await,
                None => Err(PoolError::ShuttingDown),
            };
            let act = p.finish(&action, &ns, &id2, accepted_at, placed).await;
            let _ = tx.send(act);
            if p.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
                p.drained.notify_waiters();
            }
        });
        (id, rx)
    }

    async fn finish(
        &self,
        action: &Action,
        ns: &str,
        id: &str,
        accepted_at: Instant,
        placed: Result<Placed, PoolError>,
    ) -> Activation {
        match placed {
            Ok(placed) => {
                let logs = placed.invocation.logs.clone();
                let result = placed
                    .invocation
                    .result
                    .map_err(|e| (e.status_code(), e.to_string()));
                self.record_with_id(
                    action,
                    ns,
                    id.to_string(),
                    accepted_at,
                    placed.init_time,
                    result,
                    logs,
                    placed.wait_time,
                )
                .await
            }
            Err(e) => {
                self.record_with_id(
                    action,
                    ns,
                    id.to_string(),
                    accepted_at,
                    None,
                    Err((3, e.to_string())),
                    Vec::new(),
                    Duration::ZERO,
                )
                .await
            }
        }
    }

    /// Record an activation that ended before it ran (e.g. its VM could not start).
    pub(crate) async fn record_failure(
        &self,
        action: &Action,
        ns: &str,
        accepted_at: Instant,
        code: u8,
        msg: String,
    ) -> Activation {
        self.record_with_id(
            action,
            ns,
            model::new_activation_id(),
            accepted_at,
            None,
            Err((code, msg)),
            Vec::new(),
            Duration::ZERO,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_with_id(
        &self,
        action: &Action,
        ns: &str,
        id: String,
        accepted_at: Instant,
        init_time: Option<Duration>,
        result: Result<Value, (u8, String)>,
        logs: Vec<String>,
        wait: Duration,
    ) -> Activation {
        let end = model::now_ms();
        let start = end - accepted_at.elapsed().as_millis() as i64;
        let (status_code, result) = match result {
            Ok(v) => (0, v),
            Err((code, msg)) => (code, json!({ "error": msg })),
        };
        let mut annotations = vec![
            KeyValue {
                key: "path".into(),
                value: json!(format!("{}/{}", action.namespace, action.name)),
            },
            KeyValue {
                key: "waitTime".into(),
                value: json!(wait.as_millis() as u64),
            },
            KeyValue {
                key: "kind".into(),
                value: json!(action.kind),
            },
            KeyValue {
                key: "limits".into(),
                value: json!(action.limits),
            },
        ];
        if let Some(init) = init_time {
            annotations.push(KeyValue {
                key: "initTime".into(),
                value: json!(init.as_millis() as u64),
            });
        }
        let act = Activation {
            activation_id: id,
            namespace: ns.to_string(),
            name: action.short_name().to_string(),
            version: action.version.clone(),
            subject: ns.to_string(),
            start,
            end,
            status_code,
            result,
            logs,
            annotations,
        };
        self.metrics
            .invocations
            .with_label_values(&[model::status_name(status_code)])
            .inc();
        self.metrics
            .latency
            .observe(accepted_at.elapsed().as_secs_f64());
        let store = self.store.clone();
        let a2 = act.clone();
        match tokio::task::spawn_blocking(move || store.put_activation(&a2)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot record activation"),
            Err(e) => tracing::error!(error = %e, "cannot record activation"),
        }
        act
    }

    /// Wait until every accepted invocation is recorded (or `limit` passes).
    pub async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.inflight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.drained.notified()).await;
        }
    }
}

fn api_internal(e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "internal error");
    ApiError(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        format!("Internal error: {e}"),
    )
}

/// Serve until `shutdown` resolves; then stop accepting, drain in-flight invocations
/// (recording their activations), and retire every VM.
pub async fn serve(
    platform: Arc<Platform>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ticker = {
        let p = platform.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                p.pools.tick();
            }
        })
    };
    let alarms = tokio::spawn(alarms::run(platform.clone()));
    let app = api::router(platform.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    alarms.abort();
    platform.drain(Duration::from_secs(300)).await;
    ticker.abort();
    platform.pools.close();
    Ok(())
}
