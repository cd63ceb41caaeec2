//! Prometheus metrics (the `prometheus` crate's registry and text encoder): invocations
//! by status, latency histogram, VM starts and retirements, worker wakes and sleeps, awake
//! and sleeping workers per VM, reserved vCPU-seconds, the host-wide vCPU budget, and the
//! journal and fair-share gauges.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Every metric the platform exports.
pub struct Metrics {
    registry: Registry,
    /// Invocations by OpenWhisk status.
    pub invocations: IntCounterVec,
    /// Invocation latency (accepted -> finished), seconds.
    pub latency: Histogram,
    /// VMs started.
    pub vm_starts: IntCounter,
    /// VMs retired after their keep-alive.
    pub vm_retired: IntCounter,
    /// Worker wakes.
    pub wakes: IntCounter,
    /// Worker sleeps.
    pub sleeps: IntCounter,
    /// Requests refused with 429.
    pub throttled: IntCounter,
    /// Awake workers per VM.
    pub awake_workers: IntGaugeVec,
    /// Sleeping workers per VM.
    pub sleeping_workers: IntGaugeVec,
    /// Reserved (awake) vCPU-seconds, all VMs since start (monotonic).
    pub reserved_vcpu_seconds: Gauge,
    /// Awake vCPUs charged against the budget.
    pub budget_in_use: IntGauge,
    /// The host-wide awake-vCPU budget.
    pub budget_limit: IntGauge,
    /// Live VMs.
    pub vms: IntGauge,
    /// Busy VMs retired to give a namespace under its share its vCPUs.
    pub vm_reclaimed: IntCounter,
    /// VM starts that failed (bad module or launch error).
    pub vm_start_failures: IntCounter,
    /// Journaled invocations found running at start and ended as interrupted.
    pub interrupted: IntCounter,
    /// Journaled invocations found queued at start and run.
    pub resumed: IntCounter,
    /// Invocations accepted and not yet recorded (all namespaces).
    pub accepted_unfinished: IntGauge,
    /// Invocations holding a running slot.
    pub running: IntGauge,
    /// Journal transactions committed.
    pub journal_commits: IntGauge,
    /// Journal operations committed.
    pub journal_ops: IntGauge,
}

impl Metrics {
    /// Create and register all metrics.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let invocations = IntCounterVec::new(
            Opts::new("ditto_invocations_total", "Invocations by status"),
            &["status"],
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "ditto_invocation_latency_seconds",
                "Invocation latency from acceptance to completion",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 20)?),
        )?;
        let vm_starts = IntCounter::new("ditto_vm_starts_total", "Elastic VMs started")?;
        let vm_retired = IntCounter::new(
            "ditto_vm_retired_total",
            "Elastic VMs retired after their keep-alive",
        )?;
        let wakes = IntCounter::new("ditto_worker_wakes_total", "Worker vCPU wake-ups")?;
        let sleeps = IntCounter::new("ditto_worker_sleeps_total", "Worker vCPUs put to sleep")?;
        let throttled = IntCounter::new("ditto_throttled_total", "Requests refused with 429")?;
        let awake_workers = IntGaugeVec::new(
            Opts::new("ditto_awake_workers", "Awake worker vCPUs per VM"),
            &["action", "vm"],
        )?;
        let sleeping_workers = IntGaugeVec::new(
            Opts::new("ditto_sleeping_workers", "Sleeping worker vCPUs per VM"),
            &["action", "vm"],
        )?;
        let reserved_vcpu_seconds = Gauge::new(
            "ditto_reserved_vcpu_seconds",
            "Awake vCPU-seconds of all VMs since start",
        )?;
        let budget_in_use = IntGauge::new(
            "ditto_vcpu_budget_in_use",
            "Awake vCPUs charged to the host-wide budget",
        )?;
        let budget_limit =
            IntGauge::new("ditto_vcpu_budget_limit", "Host-wide budget of awake vCPUs")?;
        let vms = IntGauge::new("ditto_vms", "Live elastic VMs")?;
        let vm_reclaimed = IntCounter::new(
            "ditto_vm_reclaimed_total",
            "Busy VMs of a namespace over its vCPU share retired for one under its share",
        )?;
        let vm_start_failures = IntCounter::new(
            "ditto_vm_start_failures_total",
            "VM starts that failed (module init or launch)",
        )?;
        let interrupted = IntCounter::new(
            "ditto_invocations_interrupted_total",
            "Invocations found running in the journal at start (recorded as interrupted)",
        )?;
        let resumed = IntCounter::new(
            "ditto_invocations_resumed_total",
            "Invocations found queued in the journal at start and run",
        )?;
        let accepted_unfinished = IntGauge::new(
            "ditto_invocations_unfinished",
            "Invocations accepted and not yet recorded",
        )?;
        let running = IntGauge::new(
            "ditto_invocations_running",
            "Invocations holding a running slot",
        )?;
        let journal_commits = IntGauge::new(
            "ditto_journal_commits",
            "Invocation journal transactions committed since start",
        )?;
        let journal_ops = IntGauge::new(
            "ditto_journal_operations",
            "Invocation journal operations committed since start",
        )?;
        registry.register(Box::new(invocations.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(vm_starts.clone()))?;
        registry.register(Box::new(vm_retired.clone()))?;
        registry.register(Box::new(wakes.clone()))?;
        registry.register(Box::new(sleeps.clone()))?;
        registry.register(Box::new(throttled.clone()))?;
        registry.register(Box::new(awake_workers.clone()))?;
        registry.register(Box::new(sleeping_workers.clone()))?;
        registry.register(Box::new(reserved_vcpu_seconds.clone()))?;
        registry.register(Box::new(budget_in_use.clone()))?;
        registry.register(Box::new(budget_limit.clone()))?;
        registry.register(Box::new(vms.clone()))?;
        for g in [
            &accepted_unfinished,
            &running,
            &journal_commits,
            &journal_ops,
        ] {
            registry.register(Box::new(g.clone()))?;
        }
        registry.register(Box::new(interrupted.clone()))?;
        registry.register(Box::new(vm_reclaimed.clone()))?;
        registry.register(Box::new(vm_start_failures.clone()))?;
        registry.register(Box::new(resumed.clone()))?;
        Ok(Metrics {
            registry,
            invocations,
            latency,
            vm_starts,
            vm_retired,
            wakes,
            sleeps,
            throttled,
            awake_workers,
            sleeping_workers,
            reserved_vcpu_seconds,
            budget_in_use,
            budget_limit,
            vms,
            interrupted,
            resumed,
            vm_reclaimed,
            vm_start_failures,
            accepted_unfinished,
            running,
            journal_commits,
            journal_ops,
        })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}
