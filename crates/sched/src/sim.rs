//! The deterministic discrete-event simulator: replays a [`Workload`] (arrival times plus
//! pre-drawn service times, from a fixed seed) against `m` regular + `n` worker vCPUs with
//! an unmodified [`Policy`], in virtual time, through the same [`WorkerPool`] rules the VMM
//! uses.
//!
//! Events (a binary heap ordered by time, then by insertion order): task arrival, task
//! completion (= check-in), wake completion (`wake_latency` after a wake decision), period
//! tick, idle timeout. The run ends when every task has completed and the trace's duration
//! has passed; the horizon is the later of the two.
//!
//! Metrics: latency = completion − arrival, wait = start − arrival; reserved vCPU-seconds =
//! ∫ (m + awake workers) dt; busy vCPU-seconds = worker time running tasks. Reaction time:
//! an *episode* starts when an arriving task has to queue while a worker could still be
//! woken; its reaction time is the delay until the first wake decision after it plus the
//! wake latency (the woken worker is running), or until a drain is cancelled. Episodes
//! whose queue empties before any wake are counted as unanswered.

use crate::log::{DecisionLog, Trigger};
use crate::policies::{build_policy, PolicyError};
use crate::policy::{Decision, Policy};
use crate::pool::{IdleToken, Limits, Next, PoolError, WorkerPool};
use crate::service::{ServiceDist, ServiceError};
use crate::trace::{Trace, TraceError, TraceSpec};
use crate::units::NS_PER_US;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use thiserror::Error;

/// Why a simulation could not run (or found a broken invariant).
#[derive(Debug, Error)]
pub enum SimError {
    /// The trace spec or file is bad.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The service distribution is bad.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The policy name or options are bad.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The pool refused an operation (a simulator bug).
    #[error("Worker pool error")]
    Pool(#[from] PoolError),
    /// The configuration is inconsistent.
    #[error("Bad simulator configuration: {0}")]
    Config(String),
    /// Tasks were left waiting with no awake worker and nothing left to wake one (e.g.
    /// `fixed` with `count=0` and `min_active` 0).
    #[error("{pending} tasks never ran: no worker was awake and the policy woke none")]
    Stalled {
        /// Tasks never completed.
        pending: usize,
    },
    /// An invariant was violated (a bug in the simulator or pool).
    #[error("Invariant violated at {time_ns} ns: {what}")]
    Invariant {
        /// Virtual time.
        time_ns: u64,
        /// What broke.
        what: String,
    },
}

/// Simulator parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimConfig {
    /// Regular vCPUs (`m`): always awake, never run tasks; counted as reserved.
    pub regular: usize,
    /// Worker vCPUs (`n`).
    pub workers: usize,
    /// Active workers never go below this.
    pub min_active: usize,
    /// Delay between a wake decision and the worker running (ns).
    pub wake_latency_ns: u64,
    /// Seed of the workload generator.
    pub seed: u64,
    /// Check the pool's invariants after every event (slow; for tests).
    pub audit: bool,
    /// Keep at most this many decision records (`None`: all).
    pub log_limit: Option<usize>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            regular: 1,
            workers: 8,
            min_active: 1,
            wake_latency_ns: 50 * NS_PER_US,
            seed: 42,
            audit: false,
            log_limit: Some(100_000),
        }
    }
}

/// Arrivals plus one pre-drawn service time per task: every policy sees the same tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Arrival times.
    pub trace: Trace,
    /// Service time of task `i` (ns).
    pub service_ns: Vec<u64>,
    /// The trace spec, for reports.
    pub trace_spec: String,
    /// The service spec, for reports.
    pub service_spec: String,
}

impl Workload {
    /// Generate from a trace spec and a service spec with `seed` (trace and service times
    /// use separate streams of ChaCha8).
    pub fn generate(trace: &str, service: &str, seed: u64) -> Result<Self, SimError> {
        let spec: TraceSpec = trace.parse()?;
        let dist: ServiceDist = service.parse()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let t = spec.generate(&mut rng)?;
        let mut srng = ChaCha8Rng::seed_from_u64(seed);
        srng.set_stream(1);
        let service_ns = t.arrivals.iter().map(|_| dist.sample(&mut srng)).collect();
        Ok(Workload {
            trace: t,
            service_ns,
            trace_spec: trace.to_string(),
            service_spec: dist.to_string(),
        })
    }

    /// A workload from explicit arrivals and service times (equal lengths).
    pub fn from_parts(trace: Trace, service_ns: Vec<u64>) -> Result<Self, SimError> {
        if trace.arrivals.len() != service_ns.len() {
            return Err(SimError::Config(
                "one service time per arrival is needed".to_string(),
            ));
        }
        if trace.arrivals.windows(2).any(|w| w[0] > w[1]) {
            return Err(SimError::Config("arrivals must be sorted".to_string()));
        }
        Ok(Workload {
            trace,
            service_ns,
            trace_spec: "explicit".to_string(),
            service_spec: "explicit".to_string(),
        })
    }
}

/// Summary statistics of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Percentiles {
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `v` (ns); sorts `v`. All zero if empty.
    pub fn of(v: &mut [u64]) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let at = |p: f64| {
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1e6
        };
        Percentiles {
            mean_ms: v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1e6,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        }
    }
}

/// Reaction times: from a task that had to queue (while a worker could be woken) to the
/// first woken worker running.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Reaction {
    /// Episodes started.
    pub episodes: u64,
    /// Episodes ended by a wake.
    pub answered: u64,
    /// Reaction-time percentiles of answered episodes.
    pub time: Percentiles,
}

/// The result of one simulation (serialisable; deterministic for a given seed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// Policy name.
    pub policy: String,
    /// Policy parameters.
    pub policy_params: String,
    /// Trace spec.
    pub trace: String,
    /// Service spec.
    pub service: String,
    /// Workload seed.
    pub seed: u64,
    /// Regular vCPUs.
    pub regular: usize,
    /// Worker vCPUs.
    pub workers: usize,
    /// Minimum active workers.
    pub min_active: usize,
    /// Wake latency (µs).
    pub wake_latency_us: f64,
    /// Virtual time simulated (s).
    pub horizon_s: f64,
    /// Tasks in the trace.
    pub tasks: u64,
    /// Tasks completed (equals `tasks`).
    pub completed: u64,
    /// Latency (arrival to completion).
    pub latency: Percentiles,
    /// Wait (arrival to start).
    pub wait: Percentiles,
    /// ∫ (regular + awake workers) dt, in vCPU-seconds.
    pub reserved_vcpu_s: f64,
    /// ∫ awake workers dt, in vCPU-seconds.
    pub reserved_worker_vcpu_s: f64,
    /// Worker time running tasks, in vCPU-seconds.
    pub busy_vcpu_s: f64,
    /// busy / reserved worker time.
    pub worker_utilisation: f64,
    /// Mean awake workers.
    pub mean_awake_workers: f64,
    /// Most workers awake at once.
    pub peak_awake_workers: usize,
    /// Workers woken (sleeping -> waking).
    pub wakes: u64,
    /// Workers put to sleep.
    pub sleeps: u64,
    /// Drains cancelled by a wake.
    pub undrains: u64,
    /// Wake decisions applied.
    pub wake_decisions: u64,
    /// Sleep decisions applied.
    pub sleep_decisions: u64,
    /// Reaction times.
    pub reaction: Reaction,
}

/// One task's life in a simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskRecord {
    /// Arrival (ns).
    pub arrival_ns: u64,
    /// Start on a worker (ns).
    pub start_ns: u64,
    /// Completion (ns).
    pub end_ns: u64,
    /// The worker that ran it.
    pub worker: u32,
}

/// Everything a simulation produced.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    /// The summary.
    pub report: SimReport,
    /// Every applied decision (up to the configured cap).
    pub log: DecisionLog,
    /// Every task, in arrival order.
    pub tasks: Vec<TaskRecord>,
}

#[derive(Debug)]
enum Ev {
    Arrival(usize),
    Done(usize),
    WakeDone(usize),
    Tick,
    IdleTimeout(IdleToken, String),
}

#[derive(Debug)]
struct Item {
    t: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    // Reversed: BinaryHeap is a max-heap and we want the earliest event first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

const UNSET: u64 = u64::MAX;

struct Sim<'a> {
    cfg: &'a SimConfig,
    wl: &'a Workload,
    policy: &'a mut dyn Policy,
    pool: WorkerPool<usize>,
    heap: BinaryHeap<Item>,
    seq: u64,
    start: Vec<u64>,
    end: Vec<u64>,
    worker: Vec<u32>,
    completed: usize,
    episode: Option<u64>,
    episodes: u64,
    reactions: Vec<u64>,
    peak_awake: usize,
}

impl Sim<'_> {
    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Item {
            t,
            seq: self.seq,
            ev,
        });
    }

    fn start_task(&mut self, w: usize, task: usize, now: u64) {
        self.start[task] = now;
        self.worker[task] = u32::try_from(w).unwrap_or(u32::MAX);
        self.push(now.saturating_add(self.wl.service_ns[task]), Ev::Done(w));
    }

    fn after(&mut self, w: usize, next: Next<usize>, now: u64) {
        match next {
            Next::Task(t) => self.start_task(w, t, now),
            Next::Idle(tok) => {
                let v = self.pool.view(now);
                if let Some(timer) = self.policy.on_worker_idle(w, &v) {
                    self.push(timer.at_ns.max(now), Ev::IdleTimeout(tok, timer.reason));
                }
            }
            Next::Slept => {}
        }
        if self.pool.queued() == 0 {
            self.episode = None;
        }
    }

    fn apply(&mut self, d: &Decision, trigger: Trigger, now: u64) {
        if d.is_hold() {
            return;
        }
        let a = self.pool.apply(d, trigger, now);
        for &w in &a.woken {
            self.push(
                now.saturating_add(self.cfg.wake_latency_ns),
                Ev::WakeDone(w),
            );
        }
        if !a.woken.is_empty() || !a.undrained.is_empty() {
            if let Some(s) = self.episode.take() {
                let lat = if a.woken.is_empty() {
                    0
                } else {
                    self.cfg.wake_latency_ns
                };
                self.reactions.push(now - s + lat);
            }
        }
    }

    fn handle(&mut self, now: u64, ev: Ev) -> Result<(), SimError> {
        match ev {
            Ev::Arrival(i) => {
                if let Some((w, t)) = self.pool.arrive(i, now) {
                    self.start_task(w, t, now);
                }
                let v = self.pool.view(now);
                if v.queued > 0 && self.episode.is_none() && v.sleeping + v.draining > 0 {
                    self.episode = Some(now);
                    self.episodes += 1;
                }
                let d = self.policy.on_arrival(&v);
                self.apply(&d, Trigger::Arrival, now);
                if let Some(&t) = self.wl.trace.arrivals.get(i + 1) {
                    self.push(t, Ev::Arrival(i + 1));
                }
            }
            Ev::Done(w) => {
                let task = *self.pool.current_task(w).ok_or(SimError::Invariant {
                    time_ns: now,
                    what: format!("completion on worker {w} without a task"),
                })?;
                if self.end[task] != UNSET {
                    return Err(SimError::Invariant {
                        time_ns: now,
                        what: format!("task {task} completed twice"),
                    });
                }
                self.end[task] = now;
                self.completed += 1;
                let next = self.pool.check_in(w, now)?;
                self.after(w, next, now);
            }
            Ev::WakeDone(w) => {
                let next = self.pool.wake_complete(w, now)?;
                self.after(w, next, now);
            }
            Ev::Tick => {
                let m = self.pool.period_metrics(now);
                let d = self.policy.on_period(&m);
                self.apply(&d, Trigger::Period, now);
                if let Some(p) = self.policy.period_ns() {
                    let outstanding = self.completed < self.wl.trace.arrivals.len();
                    if outstanding || now + p < self.wl.trace.duration_ns {
                        self.push(now + p, Ev::Tick);
                    }
                }
            }
            Ev::IdleTimeout(tok, reason) => {
                self.pool.sleep_if_idle(tok, &reason, now);
            }
        }
        Ok(())
    }
}

/// Run one simulation of `wl` under `policy`.
pub fn simulate(
    cfg: &SimConfig,
    wl: &Workload,
    policy: &mut dyn Policy,
) -> Result<SimOutcome, SimError> {
    if cfg.workers == 0 {
        return Err(SimError::Config(
            "at least one worker vCPU is needed".to_string(),
        ));
    }
    let limits = Limits {
        workers: cfg.workers,
        min_active: cfg.min_active,
        max_active: cfg.workers,
    };
    let log = cfg
        .log_limit
        .map_or_else(DecisionLog::new, DecisionLog::with_limit);
    let initial = policy.initial_active(cfg.workers);
    let pool = WorkerPool::new(limits, initial, 0, log)?;
    let n = wl.trace.arrivals.len();
    let mut sim = Sim {
        cfg,
        wl,
        policy,
        pool,
        heap: BinaryHeap::new(),
        seq: 0,
        start: vec![UNSET; n],
        end: vec![UNSET; n],
        worker: vec![u32::MAX; n],
        completed: 0,
        episode: None,
        episodes: 0,
        reactions: Vec::new(),
        peak_awake: 0,
    };
    for tok in sim.pool.idle_workers() {
        sim.after(tok.worker, Next::Idle(tok), 0);
    }
    if let Some(&t) = wl.trace.arrivals.first() {
        sim.push(t, Ev::Arrival(0));
    }
    if let Some(p) = sim.policy.period_ns() {
        if p == 0 {
            return Err(SimError::Config(
                "policy period must be positive".to_string(),
            ));
        }
        sim.push(p, Ev::Tick);
    }
    let mut now = 0;
    sim.peak_awake = sim.pool.view(0).awake();
    while let Some(item) = sim.heap.pop() {
        if sim.completed == n && item.t > wl.trace.duration_ns {
            break;
        }
        now = item.t;
        sim.handle(now, item.ev)?;
        sim.peak_awake = sim.peak_awake.max(sim.pool.view(now).awake());
        if cfg.audit {
            sim.pool
                .check_invariants()
                .map_err(|what| SimError::Invariant { time_ns: now, what })?;
        }
    }
    let horizon = now.max(wl.trace.duration_ns);
    if sim.completed != n {
        return Err(SimError::Stalled {
            pending: n - sim.completed,
        });
    }
    let totals = sim.pool.totals(horizon);
    if totals.busy_ns > totals.reserved_ns {
        return Err(SimError::Invariant {
            time_ns: horizon,
            what: "busy time exceeds reserved time".to_string(),
        });
    }
    let tasks: Vec<TaskRecord> = (0..n)
        .map(|i| TaskRecord {
            arrival_ns: wl.trace.arrivals[i],
            start_ns: sim.start[i],
            end_ns: sim.end[i],
            worker: sim.worker[i],
        })
        .collect();
    let mut lat: Vec<u64> = tasks.iter().map(|t| t.end_ns - t.arrival_ns).collect();
    let mut wait: Vec<u64> = tasks.iter().map(|t| t.start_ns - t.arrival_ns).collect();
    let log = sim.pool.take_log();
    let secs = |ns: u64| ns as f64 / 1e9;
    let report = SimReport {
        policy: sim.policy.name().to_string(),
        policy_params: sim.policy.params(),
        trace: wl.trace_spec.clone(),
        service: wl.service_spec.clone(),
        seed: cfg.seed,
        regular: cfg.regular,
        workers: cfg.workers,
        min_active: cfg.min_active,
        wake_latency_us: cfg.wake_latency_ns as f64 / 1e3,
        horizon_s: secs(horizon),
        tasks: n as u64,
        completed: sim.completed as u64,
        latency: Percentiles::of(&mut lat),
        wait: Percentiles::of(&mut wait),
        reserved_vcpu_s: secs(totals.reserved_ns) + cfg.regular as f64 * secs(horizon),
        reserved_worker_vcpu_s: secs(totals.reserved_ns),
        busy_vcpu_s: secs(totals.busy_ns),
        worker_utilisation: if totals.reserved_ns == 0 {
            0.0
        } else {
            totals.busy_ns as f64 / totals.reserved_ns as f64
        },
        mean_awake_workers: if horizon == 0 {
            0.0
        } else {
            totals.reserved_ns as f64 / horizon as f64
        },
        peak_awake_workers: sim.peak_awake,
        wakes: totals.woken,
        sleeps: totals.slept,
        undrains: totals.undrained,
        wake_decisions: log.wake_decisions(),
        sleep_decisions: log.sleep_decisions(),
        reaction: Reaction {
            episodes: sim.episodes,
            answered: sim.reactions.len() as u64,
            time: Percentiles::of(&mut sim.reactions),
        },
    };
    Ok(SimOutcome { report, log, tasks })
}

/// One policy's figures relative to the baseline (`fixed` with every worker awake).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Relative {
    /// Policy name.
    pub policy: String,
    /// p99 latency / baseline p99 latency.
    pub p99_ratio: f64,
    /// Reserved vCPU-seconds (regular + workers) / baseline's.
    pub reserved_ratio: f64,
    /// Meets the goal: `p99_ratio <= 1.3`, `reserved_ratio <= 0.5`, reaction p99 <= 1 ms.
    pub meets_goal: bool,
}

/// Several policies on the same workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The baseline run (`fixed`, all workers awake: fixed-size VM sized for the peak).
    pub baseline: SimReport,
    /// Every run, in the order asked.
    pub runs: Vec<SimReport>,
    /// Ratios against the baseline, one per run.
    pub relative: Vec<Relative>,
    /// The policy meeting the goal with the fewest reserved vCPU-seconds, if any.
    pub best: Option<String>,
}

/// Goal thresholds used by [`compare`].
pub const GOAL_P99_RATIO: f64 = 1.3;
/// Goal on reserved vCPU-seconds relative to fixed-at-peak.
pub const GOAL_RESERVED_RATIO: f64 = 0.5;
/// Goal on reaction time p99 (ms).
pub const GOAL_REACTION_MS: f64 = 1.0;

/// Run `fixed` (all workers) as the baseline and each `(policy, options)` on the same
/// workload; compute ratios and pick the best policy meeting the goal.
pub fn compare(
    cfg: &SimConfig,
    wl: &Workload,
    policies: &[(String, Vec<(String, String)>)],
) -> Result<Comparison, SimError> {
    let mut fixed = build_policy("fixed", &[])?;
    let baseline = simulate(cfg, wl, fixed.as_mut())?.report;
    let mut runs = Vec::new();
    let mut relative = Vec::new();
    for (name, opts) in policies {
        let mut p = build_policy(name, opts)?;
        let r = simulate(cfg, wl, p.as_mut())?.report;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let p99_ratio = ratio(r.latency.p99_ms, baseline.latency.p99_ms);
        let reserved_ratio = ratio(r.reserved_vcpu_s, baseline.reserved_vcpu_s);
        let meets_goal = p99_ratio <= GOAL_P99_RATIO
            && reserved_ratio <= GOAL_RESERVED_RATIO
            && r.reaction.time.p99_ms <= GOAL_REACTION_MS;
        relative.push(Relative {
            policy: r.policy.clone(),
            p99_ratio,
            reserved_ratio,
            meets_goal,
        });
        runs.push(r);
    }
    let best = relative
        .iter()
        .zip(&runs)
        .filter(|(rel, _)| rel.meets_goal)
        .min_by(|a, b| a.1.reserved_vcpu_s.total_cmp(&b.1.reserved_vcpu_s))
        .map(|(rel, _)| rel.policy.clone());
    Ok(Comparison {
        baseline,
        runs,
        relative,
        best,
    })
}
