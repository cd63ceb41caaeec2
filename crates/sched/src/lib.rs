//! Ditto's hypervisor-side worker-vCPU scheduling: pure policies and a deterministic
//! discrete-event simulator that runs them unchanged.
//!
//! * [`policy`]: the [`Policy`] trait and what it sees and returns ([`LoadView`],
//!   [`PeriodMetrics`], [`Decision`], [`IdleTimer`]).
//! * [`policies`]: `ditto` (the paper's thresholds), `fixed`, `queue` (event-driven) and
//!   `predictive` (EWMA + hysteresis), built by [`build_policy`].
//! * [`pool`]: [`WorkerPool`], the host-side worker state machine + FIFO queue + clamping
//!   ([`Limits`]) that both the VMM and the simulator drive.
//! * [`log`]: the [`DecisionLog`] of applied decisions with reasons and timestamps.
//! * [`sim`], [`trace`], [`service`]: the simulator, its arrival traces (synthetic and
//!   Azure Functions 2019 CSV) and service-time distributions.
//! * [`units`]: parsing of durations and rates.
//!
//! All times are `u64` nanoseconds supplied by the driver; nothing here reads a clock.
//!
//! A driver's loop, in outline:
//! 1. `pool = WorkerPool::new(limits, policy.initial_active(n), now, log)`; call
//!    `policy.on_worker_idle` for each of `pool.idle_workers()`.
//! 2. On a task: `pool.arrive(task, now)` (start it if a worker was returned), then
//!    `pool.apply(&policy.on_arrival(&pool.view(now)), Trigger::Arrival, now)`.
//! 3. On a check-in: `pool.check_in(w, now)`; on a finished wake: `pool.wake_complete(w, now)`;
//!    on [`pool::Next::Idle`] ask `policy.on_worker_idle` and arm its timer; when the timer
//!    fires call `pool.sleep_if_idle(token, reason, now)`.
//! 4. Every `policy.period_ns()`: `pool.apply(&policy.on_period(&pool.period_metrics(now)),
//!    Trigger::Period, now)`.
//! 5. Act on each [`pool::Applied`]: unpark `woken`, park `slept`; drains park themselves
//!    at their next check-in.

pub mod log;
pub mod policies;
pub mod policy;
pub mod pool;
pub mod service;
pub mod sim;
pub mod trace;
pub mod units;

pub use log::{DecisionLog, DecisionRecord, Trigger};
pub use policies::{build_policy, policy_help, PolicyError, POLICIES};
pub use policy::{Action, Decision, IdleTimer, LoadView, PeriodMetrics, Policy};
pub use pool::{Applied, IdleToken, Limits, Next, PoolError, WorkerPool, WorkerState};
pub use sim::{
    compare, simulate, Comparison, SimConfig, SimError, SimOutcome, SimReport, Workload,
};

#[cfg(test)]
mod tests;
