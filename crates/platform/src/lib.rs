//! The Ditto serverless platform: an OpenWhisk-compatible HTTP API ([`api`]) over elastic
//! VMs per action ([`pool`]), durable state in SQLite ([`store`]), Prometheus metrics
//! ([`metrics`]) and a TOML configuration ([`config`]).
//!
//! One invocation ([`Platform::invoke`] in `invoke.rs`, the one path every entry point
//! uses; [`Platform::submit`] admits and journals the VM-run ones): namespace limits
//! ([`tenants`]) → fair-share admission with per-namespace bounds ([`fair`]) → a running
//! slot and a VM at once (fast path), or a durable `queued` journal row and a wait for a
//! slot → placed on a VM (least loaded; scale out or cold-start from the precompiled
//! artifact ([`artifacts`]); wait for a VM that is starting) → journaled `started`
//! ([`journal`]) before the VM may run it → run in the guest → the activation replaces the
//! journal row (one transaction) → answer (blocking) or just record (non-blocking). On
//! restart, [`Platform::resume`] finishes what the journal holds.
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
pub mod fair;
mod invoke;
pub mod journal;
pub mod local;
pub mod metrics;
pub mod model;
pub mod names;
pub mod pool;
pub mod request;
pub mod store;
pub mod system;
pub mod tenants;

use crate::api::ApiError;
use crate::config::ServeConfig;
use crate::fair::{Fair, Refusal, Ticket};
use crate::journal::{Entry, Journal, State};
use crate::metrics::Metrics;
use crate::model::{Action, Activation, KeyValue};
use crate::pool::{Placed, PoolError, Pools, Reservation};
use crate::store::{Credentials, Store};
use crate::tenants::{NamespaceLimits, RateLimiter};
use axum::http::StatusCode;
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
    /// The invocation journal (group-committing writer).
    pub journal: Arc<Journal>,
    /// VM pools.
    pub pools: Arc<Pools>,
    /// Fair share of in-flight capacity.
    pub fair: Arc<Fair>,
    /// Per-namespace rate limits.
    pub limiter: RateLimiter,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    actions: Mutex<HashMap<(String, String), Arc<Action>>>,
    /// Background invocation tasks still running (drain waits for them).
    pub inflight: AtomicU32,
    drained: tokio::sync::Notify,
    /// Credentials created on first start (printed once by `ditto serve`).
    pub new_credentials: Option<Credentials>,
}

/// One invocation, from whichever entry point (API invoke, trigger fire, sequence step).
pub struct InvokeRequest {
    /// The action.
    pub action: Arc<Action>,
    /// The invoking namespace: owns the activation; its limits and share apply.
    pub namespace: String,
    /// Parameters (the action's defaults are merged in by [`Platform::submit`]).
    pub params: serde_json::Map<String, Value>,
    /// When the request arrived.
    pub accepted_at: Instant,
}

/// An accepted invocation: its activation id and the activation once recorded. The
/// receiver fails only if the platform stops first (the journal then finishes the
/// invocation after the restart).
pub struct Accepted {
    /// Activation id.
    pub id: String,
    /// The recorded activation.
    pub done: tokio::sync::oneshot::Receiver<Activation>,
}

/// Set the data directory's mode to 0700 (it holds keys' hashes and tenants' data).
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl Platform {
    /// Open the data directory (mode 0700), create the default namespace on first start,
    /// start the journal writer, prepare pools.
    pub fn open(config: ServeConfig) -> Result<Arc<Platform>, PlatformError> {
        let data_err = |source: Box<dyn std::error::Error + Send + Sync>| PlatformError::Data {
            path: config.data_dir.display().to_string(),
            source,
        };
        private_dir(&config.data_dir).map_err(|e| data_err(Box::new(e)))?;
        let db = config.data_dir.join("ditto.db");
        let store = Store::open_with(&db, config.durability).map_err(|e| data_err(Box::new(e)))?;
        let new_credentials = store
            .ensure_default_namespace(&config.default_namespace)
            .map_err(|e| data_err(Box::new(e)))?;
        let journal = Journal::open(&db, config.durability).map_err(|e| data_err(Box::new(e)))?;
        let metrics = Arc::new(Metrics::new()?);
        let store = Arc::new(store);
        let artifacts =
            artifacts::Artifacts::new(Some(store.clone())).map_err(|e| data_err(Box::new(e)))?;
        let pools = Arc::new(
            Pools::new(config.pool.clone(), metrics.clone())?.with_artifacts(Arc::new(artifacts)),
        );
        let fair = Fair::new(crate::fair::FairConfig {
            max_inflight: config.max_inflight,
            ..config.fair
        });
        Ok(Arc::new(Platform {
            config,
            store,
            journal: Arc::new(journal),
            pools,
            fair,
            limiter: RateLimiter::default(),
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

    /// A namespace's limits (cached for a second).
    pub fn limits(&self, ns: &str) -> NamespaceLimits {
        self.limiter.limits(ns, || {
            self.store
                .namespace_limits(ns)
                .map_err(|e| tracing::error!(error = %e, ns, "cannot read namespace limits"))
                .ok()
        })
    }

    /// Check a trigger fire of `ns` against its `firesPerMinute` (for trigger entry points).
    pub fn check_fire(&self, ns: &str) -> Result<(), ApiError> {
        let l = self.limits(ns);
        self.limiter
            .check(ns, crate::tenants::Kind::Fire, l.fires_per_minute)
            .map_err(|m| self.throttle(m))
    }

    fn throttle(&self, msg: String) -> ApiError {
        self.metrics.throttled.inc();
        ApiError(StatusCode::TOO_MANY_REQUESTS, msg)
    }

    /// Accept one invocation: the single admission path. Checks the namespace's limits and
    /// fair share (429 with OpenWhisk's messages), journals it durably (503 if the journal
    /// cannot be written: then nothing was accepted), and runs it in the background.
    /// With a free slot it is placed on a VM first, so a refusal to place it (429) leaves
    /// nothing behind; otherwise it waits, journaled as `queued`, for a slot.
    pub async fn submit(self: &Arc<Self>, req: InvokeRequest) -> Result<Accepted, ApiError> {
        let InvokeRequest {
            action,
            namespace: ns,
            mut params,
            accepted_at,
        } = req;
        let limits = self.limits(&ns);
        self.limiter
            .check(
                &ns,
                crate::tenants::Kind::Invocation,
                limits.invocations_per_minute,
            )
            .map_err(|m| self.throttle(m))?;
        for KeyValue { key, value } in &action.parameters {
            params.entry(key.clone()).or_insert_with(|| value.clone());
        }
        // From here on only the serialized bytes are held (counted against the tenant).
        let bytes = serde_json::to_vec(&Value::Object(params)).unwrap_or_else(|_| b"{}".to_vec());
        let mut ticket = self
            .fair
            .admit(
                &ns,
                limits.weight(),
                bytes.len(),
                limits.concurrent_invocations,
                false,
            )
            .map_err(|r| match r {
                Refusal::Closed => ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The platform is shutting down.".into(),
                ),
                r => self.throttle(r.to_string()),
            })?;
        self.pools.set_weight(&ns, limits.weight());
        let id = model::new_activation_id();
        let mut entry = Entry {
            id: id.clone(),
            namespace: ns.clone(),
            action_namespace: action.namespace.clone(),
            action: action.name.clone(),
            version: action.version.clone(),
            params: bytes,
            state: State::Queued,
            accepted_ms: model::now_ms() - accepted_at.elapsed().as_millis() as i64,
        };
        let (tx, done) = tokio::sync::oneshot::channel();
        if ticket.try_slot() {
            // Fast path: place it now; refusals leave nothing behind.
            let reservation = match self.pools.reserve(&action).await {
                Ok(r) => r,
                Err(PoolError::Overloaded(m)) => return Err(self.throttle(m)),
                Err(PoolError::ShuttingDown) => {
                    return Err(ApiError(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The platform is shutting down.".into(),
                    ))
                }
                Err(e) => {
                    // Accepted, but its VM could not start: record that.
                    let act = self
                        .record(&action, &ns, id.clone(), accepted_at, Err(e), Vec::new())
                        .await
                        .map_err(|e| not_durable(&e))?;
                    let _ = tx.send(act);
                    return Ok(Accepted { id, done });
                }
            };
            // A started row is never run again, so it does not need its parameters.
            entry.state = State::Started;
            let params = std::mem::take(&mut entry.params);
            if let Err(e) = self.journal.accept(entry).await {
                return Err(not_durable(&e));
            }
            self.spawn_run(
                action,
                ns,
                id.clone(),
                accepted_at,
                ticket,
                Some((reservation, params)),
                tx,
            );
        } else {
            self.journal
                .accept(entry.clone())
                .await
                .map_err(|e| not_durable(&e))?;
            self.spawn_queued(action, entry, accepted_at, ticket, tx);
        }
        Ok(Accepted { id, done })
    }

    /// Run a queued invocation once it gets a slot and a VM (journal `start` first).
    fn spawn_queued(
        self: &Arc<Self>,
        action: Arc<Action>,
        entry: Entry,
        accepted_at: Instant,
        mut ticket: Ticket,
        tx: tokio::sync::oneshot::Sender<Activation>,
    ) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let p = self.clone();
        tokio::spawn(async move {
            let _guard = InflightGuard(p.clone());
            if ticket.slot().await.is_err() {
                // Stopping: the row stays `queued` and runs after the restart.
                return;
            }
            // Placement waits are bounded by `cold_wait` each; an accepted invocation keeps
            // trying until its action's time limit has passed.
            let give_up = accepted_at + Duration::from_millis(action.limits.timeout);
            let reservation = loop {
                match p.pools.reserve(&action).await {
                    Ok(r) => break Ok(r),
                    Err(PoolError::ShuttingDown) => return,
                    // Stopping: not started, so the row stays `queued` for the restart.
                    Err(PoolError::Overloaded(_)) if p.fair.is_closed() => return,
                    Err(PoolError::Overloaded(m)) if Instant::now() < give_up => {
                        tracing::debug!(reason = %m, "queued invocation waits for a VM");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => break Err(e),
                }
            };
            let id = entry.id.clone();
            let ns = entry.namespace.clone();
            let run = match reservation {
                Ok(r) => match p.journal.start(&id).await {
                    Ok(()) => Some((r, entry.params)),
                    Err(e) => {
                        // Not marked started, so it must not run (it would run again after a
                        // restart); leave the row for the restart.
                        tracing::error!(error = %e, id, "cannot journal the start of an invocation");
                        return;
                    }
                },
                Err(e) => {
                    if let Ok(act) = p
                        .record(&action, &ns, id, accepted_at, Err(e), Vec::new())
                        .await
                    {
                        let _ = tx.send(act);
                    }
                    return;
                }
            };
            p.run_placed(action, ns, id, accepted_at, ticket, run, tx)
                .await;
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_run(
        self: &Arc<Self>,
        action: Arc<Action>,
        ns: String,
        id: String,
        accepted_at: Instant,
        ticket: Ticket,
        run: Option<(Reservation, Vec<u8>)>,
        tx: tokio::sync::oneshot::Sender<Activation>,
    ) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let p = self.clone();
        tokio::spawn(async move {
            let _guard = InflightGuard(p.clone());
            p.run_placed(action, ns, id, accepted_at, ticket, run, tx)
                .await;
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_placed(
        &self,
        action: Arc<Action>,
        ns: String,
        id: String,
        accepted_at: Instant,
        ticket: Ticket,
        run: Option<(Reservation, Vec<u8>)>,
        tx: tokio::sync::oneshot::Sender<Activation>,
    ) {
        let placed = match run {
            Some((r, params)) => r.run(params).await,
            None => Err(PoolError::ShuttingDown),
        };
        let (result, logs) = match placed {
            Ok(p) => {
                let logs = p.invocation.logs.clone();
                (Ok(p), logs)
            }
            Err(e) => (Err(e), Vec::new()),
        };
        match self
            .record(&action, &ns, id.clone(), accepted_at, result, logs)
            .await
        {
            Ok(act) => {
                let _ = tx.send(act);
            }
            Err(e) => {
                tracing::error!(error = %e, id, "cannot record an activation; the journal keeps the invocation")
            }
        }
        drop(ticket);
    }

    /// Build the activation of a finished (or failed-to-place) invocation, with tenant-safe
    /// messages (internal details go to the server log), and record it via the journal.
    async fn record(
        &self,
        action: &Action,
        ns: &str,
        id: String,
        accepted_at: Instant,
        placed: Result<Placed, PoolError>,
        logs: Vec<String>,
    ) -> Result<Activation, crate::journal::JournalError> {
        let (init_time, wait, result) = match placed {
            Ok(p) => {
                let r = p.invocation.result.map_err(|e| {
                    let code = e.status_code();
                    let msg = e.to_string();
                    if code == 3 {
                        tracing::error!(activation = %id, action = %action.name, error = %msg, "internal error running an invocation");
                        (3, tenant_safe_internal(&id))
                    } else {
                        (code, msg)
                    }
                });
                (p.init_time, p.wait_time, r)
            }
            Err(PoolError::BadModule(m)) => (None, Duration::ZERO, Err((2, m))),
            Err(e) => {
                tracing::error!(activation = %id, action = %action.name, error = %e, "invocation could not be placed");
                let msg = match e {
                    PoolError::Overloaded(m) => m,
                    PoolError::ShuttingDown => {
                        "The platform stopped before the invocation ran.".into()
                    }
                    _ => tenant_safe_internal(&id),
                };
                (None, Duration::ZERO, Err((3, msg)))
            }
        };
        let act = self.activation(action, ns, id, accepted_at, init_time, result, logs, wait);
        self.journal.finish(act.clone()).await?;
        Ok(act)
    }

    #[allow(clippy::too_many_arguments)]
    fn activation(
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
        let act = activation_record(action, ns, id, start, end, init_time, result, logs, wait);
        self.metrics
            .invocations
            .with_label_values(&[model::status_name(act.status_code)])
            .inc();
        self.metrics
            .latency
            .observe(accepted_at.elapsed().as_secs_f64());
        act
    }

    /// Finish what the journal holds from a previous run: `started` invocations end with a
    /// "whisk internal error" activation saying the platform stopped while they ran;
    /// `queued` ones run now. Returns (interrupted, resumed).
    pub async fn resume(self: &Arc<Self>) -> Result<(usize, usize), PlatformError> {
        let store = self.store.clone();
        let pending = tokio::task::spawn_blocking(move || store.pending_invocations())
            .await
            .map_err(|e| PlatformError::Data {
                path: self.config.data_dir.display().to_string(),
                source: Box::new(e),
            })?
            .map_err(|e| PlatformError::Data {
                path: self.config.data_dir.display().to_string(),
                source: Box::new(e),
            })?;
        let (mut interrupted, mut resumed) = (0, 0);
        for e in pending {
            let accepted_at = Instant::now()
                .checked_sub(Duration::from_millis(
                    (model::now_ms() - e.accepted_ms).max(0) as u64,
                ))
                .unwrap_or_else(Instant::now);
            let action = self
                .action(&e.action_namespace, &e.action)
                .ok()
                .flatten()
                .filter(|a| e.state == State::Queued || a.version == e.version);
            let stub = || {
                Arc::new(Action {
                    namespace: e.action_namespace.clone(),
                    name: e.action.clone(),
                    version: e.version.clone(),
                    kind: "wasm".into(),
                    code: Vec::new(),
                    parameters: Vec::new(),
                    limits: Default::default(),
                    annotations: Vec::new(),
                    updated: 0,
                })
            };
            match (e.state, action) {
                (State::Queued, Some(action)) => {
                    let ticket = self
                        .fair
                        .admit(
                            &e.namespace,
                            self.limits(&e.namespace).weight(),
                            e.params.len(),
                            None,
                            true,
                        )
                        .map_err(|r| PlatformError::Data {
                            path: self.config.data_dir.display().to_string(),
                            source: Box::new(r),
                        })?;
                    let (tx, _) = tokio::sync::oneshot::channel();
                    self.spawn_queued(action, e, accepted_at, ticket, tx);
                    resumed += 1;
                }
                (state, action) => {
                    let action = action.unwrap_or_else(stub);
                    let msg = if state == State::Started {
                        "The platform stopped while this invocation was running; it may not have completed, and it was not retried."
                    } else {
                        "The action was deleted before this invocation could run."
                    };
                    let act = self.activation(
                        &action,
                        &e.namespace,
                        e.id.clone(),
                        accepted_at,
                        None,
                        Err((3, msg.into())),
                        Vec::new(),
                        Duration::ZERO,
                    );
                    self.journal
                        .finish(act)
                        .await
                        .map_err(|err| PlatformError::Data {
                            path: self.config.data_dir.display().to_string(),
                            source: Box::new(err),
                        })?;
                    interrupted += 1;
                }
            }
        }
        self.metrics.interrupted.inc_by(interrupted as u64);
        self.metrics.resumed.inc_by(resumed as u64);
        if interrupted + resumed > 0 {
            tracing::warn!(
                interrupted,
                resumed,
                "finished the journal of the previous run"
            );
        }
        Ok((interrupted, resumed))
    }

    /// Stop taking new work and stop dispatching queued work (it stays journaled).
    pub fn begin_shutdown(&self) {
        self.fair.close();
    }

    /// Wait until every running invocation is recorded (or `limit` passes).
    pub async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.inflight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.drained.notified()).await;
        }
    }
}

/// Counts a background invocation task; drain waits for the count to reach zero.
struct InflightGuard(Arc<Platform>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// What a tenant sees for an internal error (details are in the server log).
fn tenant_safe_internal(id: &str) -> String {
    format!("An internal error occurred while running the action; the operator can look it up in the server log by activation id {id}.")
}

fn not_durable(e: &crate::journal::JournalError) -> ApiError {
    tracing::error!(error = %e, "invocation refused: the journal cannot be written");
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "The platform cannot record invocations durably right now (its database is not writable); the invocation was not accepted. Retry later.".into(),
    )
}

/// An OpenWhisk activation record.
#[allow(clippy::too_many_arguments)]
fn activation_record(
    action: &Action,
    ns: &str,
    id: String,
    start: i64,
    end: i64,
    init_time: Option<Duration>,
    result: Result<Value, (u8, String)>,
    logs: Vec<String>,
    wait: Duration,
) -> Activation {
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
    Activation {
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
    }
}

fn api_internal(e: &dyn std::fmt::Display) -> ApiError {
    api::internal(e)
}

/// Serve until `shutdown` resolves: first finish the journal of a previous run; at
/// shutdown stop accepting and dispatching (queued work stays journaled), drain running
/// invocations (recording their activations), close the journal and retire every VM.
pub async fn serve(
    platform: Arc<Platform>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    platform
        .resume()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let ticker = {
        let p = platform.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                p.pools.tick();
                p.update_gauges();
            }
        })
    };
    let alarms = tokio::spawn(alarms::run(platform.clone()));
    let app = api::router(platform.clone());
    let p2 = platform.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            p2.begin_shutdown();
        })
        .await?;
    platform.begin_shutdown();
    alarms.abort();
    platform.drain(Duration::from_secs(300)).await;
    ticker.abort();
    let j = platform.journal.clone();
    let _ = tokio::task::spawn_blocking(move || j.close(Duration::from_secs(10))).await;
    platform.pools.close();
    Ok(())
}

impl Platform {
    /// Refresh the fair-share and journal gauges.
    pub fn update_gauges(&self) {
        let (inflight, running) = self.fair.totals();
        self.metrics.accepted_unfinished.set(inflight as i64);
        self.metrics.running.set(running as i64);
        let s = self.journal.stats();
        self.metrics.journal_commits.set(s.commits as i64);
        self.metrics.journal_ops.set(s.ops as i64);
    }
}
