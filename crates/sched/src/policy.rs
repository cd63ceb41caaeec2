//! The pure policy interface: what a policy sees ([`LoadView`], [`PeriodMetrics`]), what it
//! returns ([`Decision`], [`IdleTimer`]) and the [`Policy`] trait itself.
//!
//! A policy never reads a clock and never touches a worker: the driver (the VMM's control
//! thread or the simulator) supplies the time in nanoseconds, calls the hooks, clamps the
//! returned decision to what is possible (see [`crate::pool::Limits`]) and records every
//! applied decision in a [`crate::log::DecisionLog`].
//!
//! Hooks, in the order a driver calls them:
//! 1. [`Policy::initial_active`] once, at start;
//! 2. [`Policy::on_arrival`] after every task arrival, once the driver has tried to hand the
//!    task to an idle worker (so `queued > 0` means the task had to wait);
//! 3. [`Policy::on_worker_idle`] whenever a worker becomes active-idle (after a check-in with
//!    an empty queue, after waking with nothing to do, and at start); the policy may arm an
//!    [`IdleTimer`]: "sleep this worker if it is still idle at `at_ns`";
//! 4. [`Policy::on_period`] every [`Policy::period_ns`] with the period's [`PeriodMetrics`].

use serde::Serialize;

/// What a decision asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Change nothing.
    Hold,
    /// Wake workers: first cancel pending drains (instant), then wake sleeping workers
    /// (they become usable after the wake latency).
    Wake,
    /// Put workers to sleep: idle workers sleep at once, busy ones drain (sleep at their
    /// next check-in, i.e. when their current task ends; never mid-task).
    Sleep,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Hold => "hold",
            Action::Wake => "wake",
            Action::Sleep => "sleep",
        })
    }
}

/// A policy's answer: a target delta (wake `count`, sleep `count`, or hold) plus a
/// human-readable reason that the driver records with the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Direction.
    pub action: Action,
    /// How many workers to wake or sleep (0 for [`Action::Hold`]).
    pub count: u32,
    /// Why, for the decision log (empty for hold).
    pub reason: String,
}

impl Decision {
    /// Change nothing (does not allocate).
    pub fn hold() -> Self {
        Decision {
            action: Action::Hold,
            count: 0,
            reason: String::new(),
        }
    }

    /// Wake `count` workers because of `reason`.
    pub fn wake(count: u32, reason: impl Into<String>) -> Self {
        Decision {
            action: Action::Wake,
            count,
            reason: reason.into(),
        }
    }

    /// Sleep `count` workers because of `reason`.
    pub fn sleep(count: u32, reason: impl Into<String>) -> Self {
        Decision {
            action: Action::Sleep,
            count,
            reason: reason.into(),
        }
    }

    /// True if the decision asks for no change.
    pub fn is_hold(&self) -> bool {
        self.action == Action::Hold || self.count == 0
    }
}

/// A snapshot of the worker pool at one instant, handed to the event hooks.
///
/// Worker states (host view): sleeping, waking (woken, not yet running), idle (active,
/// waiting for work), busy (running a task) and draining (busy, told to sleep at its next
/// check-in). Regular vCPUs are not counted: they are always awake and never run tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LoadView {
    /// Time of the snapshot (ns, driver clock).
    pub now_ns: u64,
    /// Worker vCPUs in the VM (`n`).
    pub workers: usize,
    /// Tasks waiting in the VM's FIFO queue.
    pub queued: usize,
    /// Active workers waiting for work.
    pub idle: usize,
    /// Workers running a task and staying awake.
    pub busy: usize,
    /// Workers running a task that will sleep at their next check-in.
    pub draining: usize,
    /// Workers woken but not yet running.
    pub waking: usize,
    /// Sleeping workers.
    pub sleeping: usize,
}

impl LoadView {
    /// Workers that are, or are about to be, available for work: idle + busy + waking.
    pub fn active(&self) -> usize {
        self.idle + self.busy + self.waking
    }

    /// Workers holding a physical core (reserved): active + draining.
    pub fn awake(&self) -> usize {
        self.active() + self.draining
    }
}

/// What a periodic hook sees: the metrics of the period `[start_ns, now_ns)` and the pool's
/// state at its end. Per-worker vectors are indexed by worker number (`0..workers`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PeriodMetrics {
    /// Start of the period (ns).
    pub start_ns: u64,
    /// End of the period = now (ns).
    pub now_ns: u64,
    /// Per worker: time spent running tasks during the period (ns).
    pub busy_ns: Vec<u64>,
    /// Per worker: time spent awake (waking, idle, busy or draining) during the period (ns).
    pub awake_ns: Vec<u64>,
    /// Per worker: check-ins (task completions) during the period.
    pub check_ins: Vec<u64>,
    /// Tasks that arrived during the period.
    pub arrivals: u64,
    /// Tasks that completed during the period.
    pub completions: u64,
    /// The pool at the end of the period.
    pub load: LoadView,
}

impl PeriodMetrics {
    /// Length of the period (ns).
    pub fn len_ns(&self) -> u64 {
        self.now_ns.saturating_sub(self.start_ns)
    }

    /// Utilisation of the awake workers: total busy time / total awake time, or `None` when
    /// no worker was awake during the period (the paper's "active vCPU utilisation").
    pub fn utilisation(&self) -> Option<f64> {
        let awake: u64 = self.awake_ns.iter().sum();
        let busy: u64 = self.busy_ns.iter().sum();
        (awake > 0).then(|| busy as f64 / awake as f64)
    }

    /// Arrivals per second over the period (0 for an empty period).
    pub fn arrival_rate(&self) -> f64 {
        let len = self.len_ns();
        if len == 0 {
            0.0
        } else {
            self.arrivals as f64 * 1e9 / len as f64
        }
    }

    /// Mean busy time per completion (ns), an estimate of the service time, or `None` when
    /// nothing completed.
    pub fn mean_service_ns(&self) -> Option<f64> {
        let busy: u64 = self.busy_ns.iter().sum();
        (self.completions > 0).then(|| busy as f64 / self.completions as f64)
    }
}

/// "Sleep this worker if it is still idle at `at_ns`": returned by
/// [`Policy::on_worker_idle`]. The driver cancels it if the worker takes a task (or is slept
/// by another decision) before then; when it fires it is applied like a one-worker sleep
/// decision (so `min_active` still holds) and logged with `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdleTimer {
    /// Absolute time (ns, driver clock) at which the worker is slept if still idle.
    pub at_ns: u64,
    /// Reason recorded in the decision log.
    pub reason: String,
}

/// A worker-scheduling policy. Object-safe and `Send`, so a driver can hold a
/// `Box<dyn Policy>` on a control thread. All times are driver-supplied nanoseconds.
pub trait Policy: Send {
    /// Short policy name (`ditto`, `fixed`, `queue`, `predictive`).
    fn name(&self) -> &'static str;

    /// The policy's parameters, as `key=value` pairs separated by spaces.
    fn params(&self) -> String;

    /// Workers awake at start (the driver clamps it to `[min_active, max_active]`).
    fn initial_active(&self, workers: usize) -> usize {
        let _ = workers;
        0
    }

    /// Sampling period for [`Policy::on_period`], or `None` for a purely event-driven policy.
    fn period_ns(&self) -> Option<u64> {
        None
    }

    /// Called every period with that period's metrics.
    fn on_period(&mut self, metrics: &PeriodMetrics) -> Decision {
        let _ = metrics;
        Decision::hold()
    }

    /// Called after each task arrival, once the driver has tried to dispatch it.
    fn on_arrival(&mut self, view: &LoadView) -> Decision {
        let _ = view;
        Decision::hold()
    }

    /// Called when `worker` becomes active-idle; may arm an idle timeout for it.
    fn on_worker_idle(&mut self, worker: usize, view: &LoadView) -> Option<IdleTimer> {
        let _ = (worker, view);
        None
    }
}
