//! Elastic VMs per action: start on first use (a cold start, measured as `initTime`),
//! route invocations to the least-loaded VM, let each VM's scheduling policy (`ditto-sched`,
//! chosen by the action's `policy` annotation, default `queue`) wake and sleep its workers,
//! scale out with another VM when every worker of every VM of the action is busy, and
//! retire VMs idle for `keep_alive`. A host-wide budget bounds the awake vCPUs of all VMs together: a worker
//! wakes, and a VM starts, only if the budget allows.
//!
//! Fair share of the budget: a namespace alone may use all of it; with others holding
//! vCPUs, each may hold at most its weighted share. A namespace under its share that finds
//! the budget spent first evicts an idle VM (least recently used), else reclaims a VM of the
//! namespace most over its share: that VM is retired at once (its queued invocations still
//! finish on it, briefly over the budget) and its vCPUs go to the newcomer. While a
//! namespace is over its share, its VMs' vCPU threads run at nice 10, so the kernel favours
//! the others' threads when they contend for cores (checked every tick). Invocations that find no VM to run on (one is still starting, or the budget is
//! full) wait up to `cold_wait` for one instead of being refused. A module that fails VM
//! init is remembered per action version (negative cache) and not started again.

use crate::metrics::Metrics;
use crate::model::Action;
use ditto_vmm::function::{FunctionLimits, Invocation};
use ditto_vmm::loader::GuestImage;
use ditto_vmm::{Vm, VmConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pool settings.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Regular vCPUs per VM.
    pub regular: u32,
    /// Worker vCPUs per VM.
    pub workers: u32,
    /// Workers awake when a VM starts.
    pub initial_active: u32,
    /// Most VMs per action.
    pub max_vms_per_action: u32,
    /// A VM with nothing in flight for this long is retired.
    pub keep_alive: Duration,
    /// An awake worker beyond what the load needs sleeps after this much idleness.
    pub worker_idle: Duration,
    /// Host-wide budget of awake vCPUs.
    pub vcpu_budget: u32,
    /// Most invocations queued per action beyond its awake capacity.
    pub max_queue_per_action: u32,
    /// Extra delay added to every VM start, modelling a confidential VM's launch and
    /// attestation (off by default; benchmarks label it whenever it is used).
    pub extra_launch_delay: Duration,
    /// Longest an invocation waits for a VM (one starting, or budget to start one).
    pub cold_wait: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(2);
        Self {
            regular: 1,
            workers: 4,
            initial_active: 1,
            max_vms_per_action: 8,
            keep_alive: Duration::from_secs(60),
            worker_idle: Duration::from_millis(200),
            vcpu_budget: cores * 4,
            max_queue_per_action: 1000,
            extra_launch_delay: Duration::ZERO,
            cold_wait: Duration::from_secs(30),
        }
    }
}

/// Why an invocation could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Too much work queued, or no budget for a VM: retry later (429).
    #[error("{0}")]
    Overloaded(String),
    /// The VM could not be started (500).
    #[error("Cannot start a VM for the action: {0}")]
    Start(String),
    /// The module is unusable (502, developer error).
    #[error("{0}")]
    BadModule(String),
    /// The platform is shutting down (503).
    #[error("The platform is shutting down")]
    ShuttingDown,
}

/// The host-wide awake-vCPU budget, with per-namespace shares.
pub struct Budget {
    used: AtomicU32,
    limit: u32,
    /// vCPUs of one new VM: the headroom a lone namespace leaves for a newcomer.
    reserve: u32,
    /// Per namespace: (vCPUs held, weight).
    tenants: Mutex<HashMap<String, (u32, u32)>>,
}

/// Why the budget refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The namespace holds its share.
    Tenant,
    /// The host's budget is spent.
    Host,
}

/// The budget as one namespace's VMs see it (their policies wake workers through it).
pub struct TenantBudget {
    budget: Arc<Budget>,
    tenant: String,
}

impl ditto_vmm::elastic::WakeBudget for TenantBudget {
    fn try_take(&self, n: u32) -> bool {
        self.budget.try_take_for(&self.tenant, n).is_ok()
    }

    fn give(&self, n: u32) {
        self.budget.give_for(&self.tenant, n)
    }
}

impl Budget {
    /// A budget of `limit` vCPUs; `reserve` is one VM's worth.
    pub fn new(limit: u32, reserve: u32) -> Budget {
        Budget {
            used: AtomicU32::new(0),
            limit,
            reserve,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// `tenant`'s share with `t` the per-namespace table: the whole budget when no other
    /// namespace holds vCPUs, else its weighted part (at least one VM's worth).
    fn share(&self, t: &HashMap<String, (u32, u32)>, tenant: &str) -> u32 {
        let weight = t.get(tenant).map_or(1, |v| v.1.max(1)) as u64;
        let others: u64 = t
            .iter()
            .filter(|(k, v)| k.as_str() != tenant && v.0 > 0)
            .map(|(_, v)| v.1.max(1) as u64)
            .sum();
        if others == 0 {
            return self.limit;
        }
        ((self.limit as u64 * weight / (others + weight)) as u32).max(self.reserve)
    }

    /// Take `n` vCPUs for `tenant` if the host has them and the tenant's share allows.
    pub fn try_take_for(&self, tenant: &str, n: u32) -> Result<(), Refused> {
        let mut t = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let held = t.get(tenant).map_or(0, |v| v.0);
        if held + n > self.share(&t, tenant) {
            return Err(Refused::Tenant);
        }
        let ok = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.limit).then_some(u + n)
            })
            .is_ok();
        if !ok {
            return Err(Refused::Host);
        }
        t.entry(tenant.to_string()).or_insert((0, 1)).0 += n;
        Ok(())
    }

    /// The namespace most over its share (in vCPUs over share per weight), if `tenant`
    /// (asking for `n` more) would still be within its own share: whose VM to reclaim.
    fn most_over_share(&self, tenant: &str, n: u32) -> Option<String> {
        let t = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let mut with_me = t.clone();
        with_me.entry(tenant.to_string()).or_insert((0, 1)).0 += n;
        if with_me[tenant].0 > self.share(&with_me, tenant) {
            return None;
        }
        with_me
            .iter()
            .filter(|(k, _)| k.as_str() != tenant)
            .filter_map(|(k, v)| {
                let over = v.0 as i64 - self.share(&with_me, k) as i64;
                (over > 0).then_some((over, k.clone()))
            })
            .max()
            .map(|(_, k)| k)
    }

    /// Give `n` vCPUs of `tenant` back.
    pub fn give_for(&self, tenant: &str, n: u32) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
        let mut t = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = t.get_mut(tenant) {
            e.0 = e.0.saturating_sub(n);
        }
    }

    /// Set a namespace's share weight.
    pub fn set_weight(&self, tenant: &str, weight: u32) {
        let mut t = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() > 100_000 {
            t.retain(|_, v| v.0 > 0);
        }
        t.entry(tenant.to_string()).or_insert((0, 1)).1 = weight.max(1);
    }

    /// vCPUs in use.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    /// Whether `tenant` holds more than its share now (only possible while others hold
    /// vCPUs too).
    pub fn over_share(&self, tenant: &str) -> bool {
        let t = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        t.get(tenant).is_some_and(|v| v.0 > self.share(&t, tenant))
    }

    /// vCPUs held by one namespace.
    pub fn used_by(&self, tenant: &str) -> u32 {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .map_or(0, |v| v.0)
    }
}

/// One VM of an action.
pub struct PooledVm {
    /// Pool-unique id.
    pub id: u64,
    tenant: String,
    /// `namespace/action`, its metrics label.
    label: String,
    vm: Vm,
    inflight: AtomicU32,
    last_busy: Mutex<Instant>,
    retired: AtomicBool,
    /// Worker wakes and sleeps already exported to the metrics.
    exported: Mutex<(u64, u64)>,
    /// Whether its vCPU threads run at [`OVER_SHARE_NICE`].
    niced: AtomicBool,
}

/// Nice value of the vCPU threads of a namespace over its vCPU share: the kernel then gives
/// the other namespaces' threads ~10× its CPU weight when they contend for cores.
pub const OVER_SHARE_NICE: i32 = 10;

/// Set the nice value of threads `tids` (Linux: per thread). Lowering it back needs
/// CAP_SYS_NICE; failures are logged, never fatal.
fn renice(tids: &[i32], nice: i32) {
    for &tid in tids {
        // SAFETY: setpriority takes plain integers and touches no memory of ours; on Linux
        // PRIO_PROCESS with a thread id applies to that thread only.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        if r != 0 {
            tracing::debug!(tid, nice, error = %std::io::Error::last_os_error(), "cannot renice a vCPU thread");
        }
    }
}

impl PooledVm {
    fn touch(&self) {
        *self.last_busy.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

struct ActionPool {
    tenant: String,
    version: String,
    policy: String,
    policy_opts: Vec<(String, String)>,
    module: Arc<Vec<u8>>,
    /// Each worker's linear-memory region, MiB (the action's memory limit + a margin).
    linear_mib: u64,
    vms: Mutex<Vec<Arc<PooledVm>>>,
    /// VMs being started (counted against `max_vms_per_action` until they join `vms`).
    starting: AtomicU32,
}

/// What an invocation needs to know about where and how it ran.
pub struct Placed {
    /// The result.
    pub invocation: Invocation,
    /// Cold-start time (VM launch + module init), if this invocation started the VM.
    pub init_time: Option<Duration>,
    /// Time before the invocation was handed to a VM (includes any cold start).
    pub wait_time: Duration,
    /// The VM.
    pub vm_id: u64,
}

/// An invocation placed on a VM, not yet run.
pub struct Reservation {
    vm: Option<Arc<PooledVm>>,
    init_time: Option<Duration>,
    t0: Instant,
    limits: FunctionLimits,
    pools: Option<Arc<Pools>>,
}

impl Reservation {
    /// Run the invocation with JSON `params`.
    pub async fn run(mut self, params: Vec<u8>) -> Result<Placed, PoolError> {
        let Some(vm) = self.vm.clone() else {
            return Err(PoolError::ShuttingDown);
        };
        let wait_time = self.t0.elapsed();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let submitted = vm.vm.submit_invoke_with(&params, self.limits, move |inv| {
            let _ = tx.send(inv);
        });
        let result = match submitted {
            Ok(_) => rx
                .await
                .map_err(|_| PoolError::Start("the VM dropped the invocation".into())),
            Err(e) => Err(PoolError::Start(e.to_string())),
        };
        let vm_id = vm.id;
        drop(vm);
        self.release();
        Ok(Placed {
            invocation: result?,
            init_time: self.init_time,
            wait_time,
            vm_id,
        })
    }

    fn release(&mut self) {
        if let Some(vm) = self.vm.take() {
            vm.touch();
            vm.inflight.fetch_sub(1, Ordering::AcqRel);
            if vm.retired.load(Ordering::Acquire) {
                // Possibly the last handle of a retired VM: drop it off the async workers.
                std::thread::spawn(move || drop(vm));
            }
        }
        if let Some(p) = self.pools.take() {
            p.changed.notify_waiters();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// All actions' VMs.
pub struct Pools {
    cfg: PoolConfig,
    image: GuestImage,
    pools: Mutex<HashMap<(String, String), Arc<ActionPool>>>,
    budget: Arc<Budget>,
    metrics: Arc<Metrics>,
    next_vm: AtomicU64,
    retired_reserved_ns: AtomicU64,
    retired_cpu_ns: AtomicU64,
    closing: AtomicBool,
    /// Signalled when a VM joins or fails to start, a VM retires, or an invocation ends:
    /// whatever may let a waiting invocation be placed.
    changed: tokio::sync::Notify,
    /// Action versions whose module failed VM init, with the error.
    failed_init: Mutex<HashMap<(String, String), (String, String)>>,
    artifacts: Arc<crate::artifacts::Artifacts>,
}

/// A placement that could not be made now.
enum Place {
    /// Worth waiting for (a VM is starting, or the budget may free up).
    Wait(String),
    /// Final.
    Fail(PoolError),
}

impl Pools {
    /// Keep artifacts in `artifacts` (by default they live in memory only).
    pub fn with_artifacts(mut self, artifacts: Arc<crate::artifacts::Artifacts>) -> Self {
        self.artifacts = artifacts;
        self
    }

    /// The precompiled artifacts.
    pub fn artifacts(&self) -> &Arc<crate::artifacts::Artifacts> {
        &self.artifacts
    }

    /// Create pools for the embedded guest.
    pub fn new(cfg: PoolConfig, metrics: Arc<Metrics>) -> Result<Pools, ditto_vmm::VmmError> {
        let image = ditto_vmm::loader::parse(ditto_guest_image::GUEST_ELF)?;
        metrics.budget_limit.set(cfg.vcpu_budget as i64);
        Ok(Pools {
            budget: Arc::new(Budget::new(
                cfg.vcpu_budget,
                cfg.regular + cfg.initial_active,
            )),
            cfg,
            image,
            pools: Mutex::new(HashMap::new()),
            metrics,
            next_vm: AtomicU64::new(1),
            retired_reserved_ns: AtomicU64::new(0),
            retired_cpu_ns: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
            failed_init: Mutex::new(HashMap::new()),
            artifacts: Arc::new(
                crate::artifacts::Artifacts::new(None).expect("no store, nothing can fail"),
            ),
        })
    }

    /// Set a namespace's share weight of the vCPU budget.
    pub fn set_weight(&self, tenant: &str, weight: u32) {
        self.budget.set_weight(tenant, weight);
    }

    /// The budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    fn pool_for(&self, action: &Action) -> Arc<ActionPool> {
        let key = (action.namespace.clone(), action.name.clone());
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pools.get(&key) {
            if p.version == action.version {
                return p.clone();
            }
        }
        // Every worker may grow its memories to the action's limit (plus a margin for
        // wasmtime's rounding); guest memory is backed lazily, so untouched MiBs cost
        // nothing on the host.
        let linear_mib = action.limits.memory + 8;
        // The action's policy (annotations), defaulting to `queue` with the configured
        // worker idle timeout.
        let (policy, mut policy_opts) = crate::model::policy_annotation(&action.annotations);
        if policy == "queue" && !policy_opts.iter().any(|(k, _)| k == "idle_timeout") {
            policy_opts.push((
                "idle_timeout".into(),
                format!("{}ms", self.cfg.worker_idle.as_millis()),
            ));
        }
        let fresh = Arc::new(ActionPool {
            tenant: action.namespace.clone(),
            version: action.version.clone(),
            policy,
            policy_opts,

            module: Arc::new(action.code.clone()),
            linear_mib,
            vms: Mutex::new(Vec::new()),
            starting: AtomicU32::new(0),
        });
        if let Some(old) = pools.insert(key, fresh.clone()) {
            // An updated action: its old VMs finish what they run and are retired.
            let vms = std::mem::take(&mut *old.vms.lock().unwrap_or_else(|e| e.into_inner()));
            for v in vms {
                self.retire(v);
            }
        }
        fresh
    }

    /// Forget an action's VMs (after delete).
    pub fn remove(&self, ns: &str, name: &str) {
        let old = self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ns.to_string(), name.to_string()));
        if let Some(old) = old {
            let vms = std::mem::take(&mut *old.vms.lock().unwrap_or_else(|e| e.into_inner()));
            for v in vms {
                self.retire(v);
            }
        }
    }

    fn retire(&self, v: Arc<PooledVm>) {
        if v.retired.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics.vm_retired.inc();
        self.metrics.vms.dec();
        // Its per-VM gauges go with it (else every VM ever started stays exported).
        let id = v.id.to_string();
        let _ = self
            .metrics
            .awake_workers
            .remove_label_values(&[&v.label, &id]);
        let _ = self
            .metrics
            .sleeping_workers
            .remove_label_values(&[&v.label, &id]);
        let charged = self.cfg.regular + v.vm.active_workers();
        let reserved: u64 = v.vm.stats().iter().map(|s| s.reserved_ns).sum();
        self.retired_reserved_ns
            .fetch_add(reserved, Ordering::AcqRel);
        self.retired_cpu_ns
            .fetch_add(v.vm.vcpu_cpu_ns(), Ordering::AcqRel);
        self.budget.give_for(&v.tenant, charged);
        self.changed.notify_waiters();
        // The VM shuts down when its last handle goes: here if nothing is in flight,
        // otherwise when its last in-flight invocation finishes (see `invoke`). Shutting
        // down joins threads, so it never happens on an async worker.
        std::thread::spawn(move || drop(v));
    }

    /// Find (or start) the VM for one invocation of `action`; the invocation counts as
    /// in flight there until the [`Reservation`] is run or dropped. Waits up to
    /// `cold_wait` for a VM that is starting or for budget to start one.
    pub async fn reserve(self: &Arc<Self>, action: &Action) -> Result<Reservation, PoolError> {
        let t0 = Instant::now();
        let pool = self.pool_for(action);
        let deadline = t0 + self.cfg.cold_wait;
        let (vm, init_time) = loop {
            if self.closing.load(Ordering::Acquire) {
                return Err(PoolError::ShuttingDown);
            }
            // Register interest before looking, so a change in between is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.place(&pool, action).await {
                Ok(placed) => break placed,
                Err(Place::Fail(e)) => return Err(e),
                Err(Place::Wait(why)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.metrics.throttled.inc();
                        return Err(PoolError::Overloaded(why));
                    }
                    // Re-check at least every 50 ms (budget is also given back by policies).
                    let _ = tokio::time::timeout(
                        (deadline - now).min(Duration::from_millis(50)),
                        changed,
                    )
                    .await;
                }
            }
        };
        let limits = FunctionLimits {
            max_memory: action.limits.memory << 20,
            timeout: Duration::from_millis(action.limits.timeout),
            ..FunctionLimits::default()
        };
        Ok(Reservation {
            vm: Some(vm),
            init_time,
            t0,
            limits,
            pools: Some(self.clone()),
        })
    }

    /// The error remembered for this action version's module, if its VM init failed.
    fn failed_init(&self, action: &Action) -> Option<String> {
        let f = self.failed_init.lock().unwrap_or_else(|e| e.into_inner());
        f.get(&(action.namespace.clone(), action.name.clone()))
            .filter(|(v, _)| *v == action.version)
            .map(|(_, m)| m.clone())
    }

    /// Choose (or start) the VM for one invocation and count it in flight there.
    async fn place(
        self: &Arc<Self>,
        pool: &Arc<ActionPool>,
        action: &Action,
    ) -> Result<(Arc<PooledVm>, Option<Duration>), Place> {
        let workers = self.cfg.workers;
        {
            let vms = pool.vms.lock().unwrap_or_else(|e| e.into_inner());
            let least = vms
                .iter()
                .filter(|v| !v.retired.load(Ordering::Acquire))
                .min_by_key(|v| v.inflight.load(Ordering::Acquire))
                .cloned();
            if let Some(v) = &least {
                let n = v.inflight.load(Ordering::Acquire);
                let full = n >= workers;
                let starting = pool.starting.load(Ordering::Acquire) as usize;
                let can_grow = vms.len() + starting < self.cfg.max_vms_per_action as usize;
                if !full || !can_grow || self.take_for_new_vm(pool).is_err() {
                    // Queue on the least-loaded VM unless that is too much.
                    let queued: u32 = vms
                        .iter()
                        .map(|v| v.inflight.load(Ordering::Acquire).saturating_sub(workers))
                        .sum();
                    if full && queued >= self.cfg.max_queue_per_action {
                        self.metrics.throttled.inc();
                        return Err(Place::Fail(PoolError::Overloaded(format!(
                            "Too many requests for action {}: {queued} invocations are queued",
                            action.name
                        ))));
                    }
                    v.inflight.fetch_add(1, Ordering::AcqRel);
                    return Ok((v.clone(), None));
                }
                // Every worker busy and room to grow: scale out (budget already taken).
            } else {
                if let Some(m) = self.failed_init(action) {
                    return Err(Place::Fail(PoolError::BadModule(m)));
                }
                if pool.starting.load(Ordering::Acquire) > 0 {
                    // A VM is starting: wait for it rather than start more at once (a cold
                    // burst then queues on it and scales out from there).
                    return Err(Place::Wait(format!(
                        "The VM of action {} is still starting",
                        action.name
                    )));
                }
                match self.take_for_new_vm(pool) {
                    Ok(()) => {}
                    Err(Refused::Tenant) => {
                        return Err(Place::Wait(format!(
                            "This namespace holds its share of the host's vCPU budget ({} of {} awake vCPUs)",
                            self.budget.used_by(&pool.tenant),
                            self.cfg.vcpu_budget
                        )))
                    }
                    Err(Refused::Host) => {
                        return Err(Place::Wait(format!(
                            "The host's vCPU budget ({} awake vCPUs) is exhausted",
                            self.cfg.vcpu_budget
                        )))
                    }
                }
            }
            // Counted while the pool is locked, so concurrent requests see this start.
            pool.starting.fetch_add(1, Ordering::AcqRel);
        }
        // Cold start: budget for regular + initial workers is held.
        let t0 = Instant::now();
        let (regular, workers, active) =
            (self.cfg.regular, self.cfg.workers, self.cfg.initial_active);
        let linear_mib = pool.linear_mib;
        let me = self.clone();
        let module = pool.module.clone();
        let (policy_name, policy_opts) = (pool.policy.clone(), pool.policy_opts.clone());
        let tenant = pool.tenant.clone();
        let delay = self.cfg.extra_launch_delay;
        let started = tokio::task::spawn_blocking(move || -> Result<Vm, PoolError> {
            if !delay.is_zero() {
                // A modelled confidential-VM launch + attestation delay.
                std::thread::sleep(delay);
            }
            let compiled = me.artifacts.get(&module).map_err(|e| match e {
                // Only a module that is not a valid function is the developer's error
                // (and remembered); a store failure is ours and may pass.
                crate::artifacts::ArtifactError::Invalid(_) => PoolError::BadModule(e.to_string()),
                crate::artifacts::ArtifactError::Store(_) => PoolError::Start(e.to_string()),
            })?;
            let cfg = VmConfig {
                regular,
                workers,
                active,
                code_mib: ditto_vmm::config::code_mib_for(compiled.artifact.len()),
                ..VmConfig::default()
            }
            .with_linear_memory(linear_mib);
            let vm =
                Vm::launch_image(cfg, &me.image).map_err(|e| PoolError::Start(e.to_string()))?;
            match vm.load_compiled(&module, &compiled.artifact) {
                Ok(Ok(_)) => {
                    let budget: Arc<dyn ditto_vmm::elastic::WakeBudget> = Arc::new(TenantBudget {
                        budget: me.budget.clone(),
                        tenant,
                    });
                    let policy = ditto_sched::build_policy(&policy_name, &policy_opts)
                        .map_err(|e| PoolError::BadModule(format!("Bad policy annotation: {e}")))?;
                    vm.set_policy(policy, Some(budget))
                        .map_err(|e| PoolError::Start(e.to_string()))?;
                    Ok(vm)
                }
                Ok(Err(e)) if e.status_code() == 3 => Err(PoolError::Start(e.to_string())),
                Ok(Err(e)) => Err(PoolError::BadModule(e.to_string())),
                Err(e) => Err(PoolError::Start(e.to_string())),
            }
        })
        .await
        .map_err(|e| PoolError::Start(e.to_string()))
        .and_then(|r| r);
        let vm = match started {
            Ok(vm) => vm,
            Err(e) => {
                self.metrics.vm_start_failures.inc();
                if let PoolError::BadModule(m) = &e {
                    self.failed_init
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(
                            (action.namespace.clone(), action.name.clone()),
                            (action.version.clone(), m.clone()),
                        );
                }
                pool.starting.fetch_sub(1, Ordering::AcqRel);
                self.budget
                    .give_for(&pool.tenant, self.cfg.regular + self.cfg.initial_active);
                self.changed.notify_waiters();
                return Err(Place::Fail(e));
            }
        };
        let pooled = Arc::new(PooledVm {
            id: self.next_vm.fetch_add(1, Ordering::AcqRel),
            tenant: pool.tenant.clone(),
            label: format!("{}/{}", action.namespace, action.name),
            vm,
            inflight: AtomicU32::new(1),
            last_busy: Mutex::new(Instant::now()),
            retired: AtomicBool::new(false),
            exported: Mutex::new((0, 0)),
            niced: AtomicBool::new(false),
        });
        self.metrics.vm_starts.inc();
        self.metrics.vms.inc();
        {
            let mut vms = pool.vms.lock().unwrap_or_else(|e| e.into_inner());
            vms.push(pooled.clone());
            pool.starting.fetch_sub(1, Ordering::AcqRel);
        }
        self.changed.notify_waiters();
        Ok((pooled, Some(t0.elapsed())))
    }

    /// Charge a new VM (regular + initial workers) to the budget, first evicting idle
    /// VMs of other actions, least recently used first, if that is what it takes: when the
    /// namespace is at its share, only its own idle VMs; when the host is full, anyone's.
    /// `this` is the caller's pool, whose lock it holds; other pools are only try-locked,
    /// so two callers can never wait on each other.
    fn take_for_new_vm(&self, this: &ActionPool) -> Result<(), Refused> {
        let need = self.cfg.regular + self.cfg.initial_active;
        loop {
            let why = match self.budget.try_take_for(&this.tenant, need) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            let pools: Vec<Arc<ActionPool>> = self
                .pools
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            let mut victim: Option<(Duration, Arc<ActionPool>, u64)> = None;
            for p in pools.iter().filter(|p| {
                !std::ptr::eq(p.as_ref(), this) && (why == Refused::Host || p.tenant == this.tenant)
            }) {
                let Ok(vms) = p.vms.try_lock() else { continue };
                for v in vms
                    .iter()
                    .filter(|v| v.inflight.load(Ordering::Acquire) == 0)
                {
                    let idle = v.idle_for();
                    if victim.as_ref().is_none_or(|(best, _, _)| idle > *best) {
                        victim = Some((idle, p.clone(), v.id));
                    }
                }
            }
            if victim.is_none() && why == Refused::Host {
                // Nothing idle: reclaim the least-loaded VM of the namespace most over its
                // share, if this namespace is under its own.
                if let Some(over) = self.budget.most_over_share(&this.tenant, need) {
                    for p in pools.iter().filter(|p| p.tenant == over) {
                        let Ok(vms) = p.vms.try_lock() else { continue };
                        for v in vms.iter() {
                            let load = Duration::from_nanos(
                                u64::MAX - v.inflight.load(Ordering::Acquire) as u64,
                            );
                            if victim.as_ref().is_none_or(|(best, _, _)| load > *best) {
                                victim = Some((load, p.clone(), v.id));
                            }
                        }
                    }
                    if victim.is_some() {
                        self.metrics.vm_reclaimed.inc();
                    }
                }
            }
            let Some((_, pool, id)) = victim else {
                return Err(why);
            };
            let Ok(mut vms) = pool.vms.try_lock() else {
                return Err(why);
            };
            let Some(pos) = vms.iter().position(|v| {
                v.id == id
                    && (v.inflight.load(Ordering::Acquire) == 0 || pool.tenant != this.tenant)
            }) else {
                return Err(why);
            };
            let v = vms.remove(pos);
            drop(vms);
            self.retire(v);
        }
    }

    /// The periodic path (every few ms): retire VMs idle past `keep_alive`, refresh
    /// gauges (wakes and sleeps are the policies' business).
    pub fn tick(&self) {
        let pools: Vec<((String, String), Arc<ActionPool>)> = self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut reserved_ns = self.retired_reserved_ns.load(Ordering::Acquire);
        for ((ns, name), pool) in pools {
            let over = self.budget.over_share(&pool.tenant);
            let mut vms = pool.vms.lock().unwrap_or_else(|e| e.into_inner());
            for v in vms.iter() {
                if v.niced.swap(over, Ordering::AcqRel) != over {
                    renice(&v.vm.vcpu_tids(), if over { OVER_SHARE_NICE } else { 0 });
                }
            }
            let mut keep = Vec::new();
            for v in vms.drain(..) {
                let inflight = v.inflight.load(Ordering::Acquire);
                let idle = v.idle_for();
                if inflight == 0 && idle >= self.cfg.keep_alive {
                    self.retire(v);
                    continue;
                }
                let label = format!("{ns}/{name}");
                let id = v.id.to_string();
                let now_awake = v.vm.active_workers() as i64;
                self.metrics
                    .awake_workers
                    .with_label_values(&[&label, &id])
                    .set(now_awake);
                self.metrics
                    .sleeping_workers
                    .with_label_values(&[&label, &id])
                    .set(self.cfg.workers as i64 - now_awake);
                let stats = v.vm.stats();
                reserved_ns += stats.iter().map(|s| s.reserved_ns).sum::<u64>();
                let wakes: u64 = stats.iter().map(|s| s.wakes).sum();
                let sleeps: u64 = stats.iter().map(|s| s.sleeps).sum();
                let mut seen = v.exported.lock().unwrap_or_else(|e| e.into_inner());
                self.metrics.wakes.inc_by(wakes.saturating_sub(seen.0));
                self.metrics.sleeps.inc_by(sleeps.saturating_sub(seen.1));
                *seen = (wakes.max(seen.0), sleeps.max(seen.1));
                drop(seen);
                keep.push(v);
            }
            *vms = keep;
        }
        self.metrics
            .reserved_vcpu_seconds
            .set(reserved_ns as f64 / 1e9);
        self.metrics.budget_in_use.set(self.budget.used() as i64);
    }

    /// Refuse new work, then retire every VM once its in-flight work is done.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        let pools: Vec<Arc<ActionPool>> = self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, v)| v)
            .collect();
        for p in pools {
            let vms = std::mem::take(&mut *p.vms.lock().unwrap_or_else(|e| e.into_inner()));
            for v in vms {
                self.retire(v);
            }
        }
    }

    /// Reserved (awake) vCPU-ns and vCPU-thread CPU-ns of every VM ever started.
    pub fn totals(&self) -> (u64, u64) {
        let mut reserved = self.retired_reserved_ns.load(Ordering::Acquire);
        let mut cpu = self.retired_cpu_ns.load(Ordering::Acquire);
        for p in self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            for v in p.vms.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                reserved += v.vm.stats().iter().map(|s| s.reserved_ns).sum::<u64>();
                cpu += v.vm.vcpu_cpu_ns();
            }
        }
        (reserved, cpu)
    }

    /// Awake vCPUs now (regular + awake workers of every live VM).
    pub fn awake_vcpus(&self) -> u32 {
        let (vms, workers, _) = self.snapshot();
        vms as u32 * self.cfg.regular + workers
    }

    /// (live VMs, awake workers, in flight) over all actions.
    pub fn snapshot(&self) -> (usize, u32, u32) {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = (0, 0, 0);
        for p in pools.values() {
            for v in p.vms.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                out.0 += 1;
                out.1 += v.vm.active_workers();
                out.2 += v.inflight.load(Ordering::Acquire);
            }
        }
        out
    }
}
