//! The worker pool: host-side bookkeeping of worker vCPU states, the VM's FIFO task queue,
//! clamping and applying decisions, per-period metrics and the decision log. Pure (no
//! clock, no threads), so the simulator and the VMM's control thread share the same rules.
//!
//! Rules:
//! 1. Worker states: `Sleeping -> Waking -> Idle <-> Busy -> Draining -> Sleeping`; a busy
//!    worker told to sleep becomes `Draining` and sleeps at its next check-in (when its task
//!    ends), never mid-task. A sleeping or waking worker never gets a task.
//! 2. Tasks wait in one FIFO queue and go to idle workers; the most recently idled worker is
//!    picked first (so surplus workers stay idle long enough to reach idle timeouts).
//! 3. Clamping ([`Limits::clamp`]): a wake cancels pending drains first (instant), then
//!    wakes sleeping workers (lowest number first), never above `max_active` active workers;
//!    a sleep takes idle workers first (least recently idled first), then drains busy ones,
//!    never below `min_active` active workers. Active = idle + busy + waking.
//! 4. Every applied decision (count > 0 after clamping) is logged with its reason.
//! 5. Reserved time is time awake (waking, idle, busy, draining); busy time is time running
//!    a task (busy or draining).

use crate::log::{DecisionLog, DecisionRecord, Trigger};
use crate::policy::{Action, Decision, LoadView, PeriodMetrics};
use serde::Serialize;
use std::collections::VecDeque;
use thiserror::Error;

/// A worker vCPU's state, host view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Parked; holds no physical core; never gets a task.
    Sleeping,
    /// Woken, not yet running (the wake latency).
    Waking,
    /// Active, waiting for work.
    Idle,
    /// Running a task.
    Busy,
    /// Running a task; sleeps at its next check-in.
    Draining,
}

/// Bounds the driver enforces on decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Worker vCPUs in the VM (`n`).
    pub workers: usize,
    /// Active workers never go below this (default 1: the first task of a burst never
    /// waits for a wake; 0 allows a fully idle VM).
    pub min_active: usize,
    /// Active workers never go above this (default `n`).
    pub max_active: usize,
}

impl Limits {
    /// Defaults for `workers` workers: `min_active = min(1, n)`, `max_active = n`.
    pub fn new(workers: usize) -> Self {
        Limits {
            workers,
            min_active: workers.min(1),
            max_active: workers,
        }
    }

    /// Check `min_active <= max_active <= workers`.
    pub fn validate(&self) -> Result<(), PoolError> {
        if self.min_active > self.max_active || self.max_active > self.workers {
            return Err(PoolError::BadLimits(*self));
        }
        Ok(())
    }

    /// How many of `requested` workers an `action` may affect in state `v`.
    pub fn clamp(&self, action: Action, requested: u32, v: &LoadView) -> u32 {
        let possible = match action {
            Action::Hold => 0,
            Action::Wake => {
                (v.draining + v.sleeping).min(self.max_active.saturating_sub(v.active()))
            }
            Action::Sleep => (v.idle + v.busy).min(v.active().saturating_sub(self.min_active)),
        };
        requested.min(u32::try_from(possible).unwrap_or(u32::MAX))
    }
}

/// A misuse of the pool by its driver (or a misbehaving guest).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    /// `min_active <= max_active <= workers` does not hold.
    #[error("Bad limits {0:?}: need min_active <= max_active <= workers")]
    BadLimits(Limits),
    /// No worker with this number.
    #[error("No worker {0}")]
    NoSuchWorker(usize),
    /// The operation is not valid in the worker's state.
    #[error("Worker {worker} is {state:?}, cannot {op}")]
    WrongState {
        /// The worker.
        worker: usize,
        /// Its state.
        state: WorkerState,
        /// What was attempted.
        op: &'static str,
    },
}

/// Identifies one idle stint of one worker; an idle timeout carries it so that it only
/// fires if the worker has stayed idle since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdleToken {
    /// The worker.
    pub worker: usize,
    epoch: u64,
}

/// What a worker does next after a check-in or a completed wake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<T> {
    /// Run this task (taken from the queue).
    Task(T),
    /// Nothing queued: the worker is now idle (tell the policy via `on_worker_idle`).
    Idle(IdleToken),
    /// The worker was draining and is now asleep (park it).
    Slept,
}

/// What [`WorkerPool::apply`] changed; the driver acts on the lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Workers now waking: unpark them, then call [`WorkerPool::wake_complete`].
    pub woken: Vec<usize>,
    /// Draining workers told to stay awake (nothing to do).
    pub undrained: Vec<usize>,
    /// Idle workers now asleep: park them.
    pub slept: Vec<usize>,
    /// Busy workers now draining: they sleep at their next check-in.
    pub draining: Vec<usize>,
}

impl Applied {
    /// Workers affected.
    pub fn count(&self) -> usize {
        self.woken.len() + self.undrained.len() + self.slept.len() + self.draining.len()
    }
}

/// Running totals since the pool was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Totals {
    /// Worker time awake (ns).
    pub reserved_ns: u64,
    /// Worker time running tasks (ns).
    pub busy_ns: u64,
    /// Sleeping -> waking transitions.
    pub woken: u64,
    /// Transitions to sleeping.
    pub slept: u64,
    /// Drains cancelled by a wake.
    pub undrained: u64,
    /// Tasks arrived.
    pub arrivals: u64,
    /// Tasks completed (check-ins).
    pub completions: u64,
}

#[derive(Debug, Clone)]
struct Worker<T> {
    state: WorkerState,
    task: Option<T>,
    mark_ns: u64,
    epoch: u64,
    busy_p: u64,
    awake_p: u64,
    check_ins_p: u64,
}

/// Worker states + task queue + decision log of one VM (see the module docs).
#[derive(Debug, Clone)]
pub struct WorkerPool<T> {
    limits: Limits,
    ws: Vec<Worker<T>>,
    idle: Vec<usize>,
    queue: VecDeque<T>,
    period_start_ns: u64,
    period_arrivals: u64,
    period_completions: u64,
    totals: Totals,
    log: DecisionLog,
}

impl<T: Clone> WorkerPool<T> {
    /// A pool at time `now_ns` with `initially_active` workers (clamped to
    /// `[min_active, max_active]`) idle, the rest asleep. Call [`WorkerPool::idle_workers`]
    /// to arm the policy's idle timers for them.
    pub fn new(
        limits: Limits,
        initially_active: usize,
        now_ns: u64,
        log: DecisionLog,
    ) -> Result<Self, PoolError> {
        limits.validate()?;
        let k = initially_active.clamp(limits.min_active, limits.max_active);
        let ws = (0..limits.workers)
            .map(|i| Worker {
                state: if i < k {
                    WorkerState::Idle
                } else {
                    WorkerState::Sleeping
                },
                task: None,
                mark_ns: now_ns,
                epoch: 0,
                busy_p: 0,
                awake_p: 0,
                check_ins_p: 0,
            })
            .collect();
        Ok(WorkerPool {
            limits,
            ws,
            idle: (0..k).rev().collect(),
            queue: VecDeque::new(),
            period_start_ns: now_ns,
            period_arrivals: 0,
            period_completions: 0,
            totals: Totals::default(),
            log,
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A worker's state.
    pub fn state(&self, worker: usize) -> Option<WorkerState> {
        self.ws.get(worker).map(|w| w.state)
    }

    /// Tokens of the currently idle workers (most recently idled last).
    pub fn idle_workers(&self) -> Vec<IdleToken> {
        self.idle
            .iter()
            .map(|&w| IdleToken {
                worker: w,
                epoch: self.ws[w].epoch,
            })
            .collect()
    }

    /// The task a worker is running, if any.
    pub fn current_task(&self, worker: usize) -> Option<&T> {
        self.ws.get(worker).and_then(|w| w.task.as_ref())
    }

    /// Tasks waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The decision log.
    pub fn log(&self) -> &DecisionLog {
        &self.log
    }

    /// Take the decision log out, leaving an empty one with no cap.
    pub fn take_log(&mut self) -> DecisionLog {
        std::mem::take(&mut self.log)
    }

    /// The pool's state at `now_ns`.
    pub fn view(&self, now_ns: u64) -> LoadView {
        let mut v = LoadView {
            now_ns,
            workers: self.ws.len(),
            queued: self.queue.len(),
            ..LoadView::default()
        };
        for w in &self.ws {
            match w.state {
                WorkerState::Sleeping => v.sleeping += 1,
                WorkerState::Waking => v.waking += 1,
                WorkerState::Idle => v.idle += 1,
                WorkerState::Busy => v.busy += 1,
                WorkerState::Draining => v.draining += 1,
            }
        }
        v
    }

    fn account(&mut self, w: usize, now_ns: u64) {
        let wk = &mut self.ws[w];
        let dt = now_ns.saturating_sub(wk.mark_ns);
        wk.mark_ns = wk.mark_ns.max(now_ns);
        if wk.state != WorkerState::Sleeping {
            wk.awake_p += dt;
            self.totals.reserved_ns += dt;
        }
        if matches!(wk.state, WorkerState::Busy | WorkerState::Draining) {
            wk.busy_p += dt;
            self.totals.busy_ns += dt;
        }
    }

    fn set_state(&mut self, w: usize, new: WorkerState, now_ns: u64) {
        self.account(w, now_ns);
        if self.ws[w].state == WorkerState::Idle {
            self.idle.retain(|&i| i != w);
            self.ws[w].epoch += 1;
        }
        if new == WorkerState::Idle {
            self.idle.push(w);
        }
        if new == WorkerState::Sleeping {
            self.totals.slept += 1;
        }
        self.ws[w].state = new;
    }

    fn check(&self, w: usize, ok: &[WorkerState], op: &'static str) -> Result<(), PoolError> {
        let state = self.state(w).ok_or(PoolError::NoSuchWorker(w))?;
        if ok.contains(&state) {
            Ok(())
        } else {
            Err(PoolError::WrongState {
                worker: w,
                state,
                op,
            })
        }
    }

    /// A task arrives: it goes to the most recently idled worker (returned, the driver starts
    /// it there), or to the back of the queue (`None`).
    pub fn arrive(&mut self, task: T, now_ns: u64) -> Option<(usize, T)> {
        self.period_arrivals += 1;
        self.totals.arrivals += 1;
        match self.idle.last().copied() {
            Some(w) => {
                self.set_state(w, WorkerState::Busy, now_ns);
                self.ws[w].task = Some(task.clone());
                Some((w, task))
            }
            None => {
                self.queue.push_back(task);
                None
            }
        }
    }

    fn next_for(&mut self, w: usize, now_ns: u64) -> Next<T> {
        match self.queue.pop_front() {
            Some(t) => {
                self.set_state(w, WorkerState::Busy, now_ns);
                self.ws[w].task = Some(t.clone());
                Next::Task(t)
            }
            None => {
                self.set_state(w, WorkerState::Idle, now_ns);
                Next::Idle(IdleToken {
                    worker: w,
                    epoch: self.ws[w].epoch,
                })
            }
        }
    }

    /// Worker `worker` checks in: its task is done. A draining worker sleeps; otherwise it
    /// takes the next queued task or becomes idle.
    pub fn check_in(&mut self, worker: usize, now_ns: u64) -> Result<Next<T>, PoolError> {
        self.check(
            worker,
            &[WorkerState::Busy, WorkerState::Draining],
            "check in",
        )?;
        self.ws[worker].task = None;
        self.ws[worker].check_ins_p += 1;
        self.period_completions += 1;
        self.totals.completions += 1;
        if self.ws[worker].state == WorkerState::Draining {
            self.set_state(worker, WorkerState::Sleeping, now_ns);
            return Ok(Next::Slept);
        }
        Ok(self.next_for(worker, now_ns))
    }

    /// A waking worker is now running: it takes the next queued task or becomes idle.
    pub fn wake_complete(&mut self, worker: usize, now_ns: u64) -> Result<Next<T>, PoolError> {
        self.check(worker, &[WorkerState::Waking], "complete a wake")?;
        Ok(self.next_for(worker, now_ns))
    }

    fn record(
        &mut self,
        now_ns: u64,
        action: Action,
        count: usize,
        requested: u32,
        trigger: Trigger,
        reason: &str,
    ) {
        let active_after = u32::try_from(self.view(now_ns).active()).unwrap_or(u32::MAX);
        self.log.push(DecisionRecord {
            time_ns: now_ns,
            action,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            requested,
            trigger,
            reason: reason.to_string(),
            active_after,
        });
    }

    /// Clamp and apply a decision (see the module docs for the order workers are picked
    /// in), logging it if it changed anything.
    pub fn apply(&mut self, d: &Decision, trigger: Trigger, now_ns: u64) -> Applied {
        let mut out = Applied::default();
        if d.is_hold() {
            return out;
        }
        let k = self.limits.clamp(d.action, d.count, &self.view(now_ns)) as usize;
        if k == 0 {
            return out;
        }
        match d.action {
            Action::Hold => {}
            Action::Wake => {
                for w in 0..self.ws.len() {
                    if out.count() == k {
                        break;
                    }
                    if self.ws[w].state == WorkerState::Draining {
                        self.set_state(w, WorkerState::Busy, now_ns);
                        self.totals.undrained += 1;
                        out.undrained.push(w);
                    }
                }
                for w in 0..self.ws.len() {
                    if out.count() == k {
                        break;
                    }
                    if self.ws[w].state == WorkerState::Sleeping {
                        self.set_state(w, WorkerState::Waking, now_ns);
                        self.totals.woken += 1;
                        out.woken.push(w);
                    }
                }
            }
            Action::Sleep => {
                while out.count() < k {
                    let Some(&w) = self.idle.first() else { break };
                    self.set_state(w, WorkerState::Sleeping, now_ns);
                    out.slept.push(w);
                }
                for w in 0..self.ws.len() {
                    if out.count() == k {
                        break;
                    }
                    if self.ws[w].state == WorkerState::Busy {
                        self.set_state(w, WorkerState::Draining, now_ns);
                        out.draining.push(w);
                    }
                }
            }
        }
        self.record(now_ns, d.action, out.count(), d.count, trigger, &d.reason);
        out
    }

    /// An idle timeout fired: sleep the worker if it has been idle since `token` was issued
    /// and `min_active` allows. Returns whether it slept (and was logged).
    pub fn sleep_if_idle(&mut self, token: IdleToken, reason: &str, now_ns: u64) -> bool {
        let Some(w) = self.ws.get(token.worker) else {
            return false;
        };
        if w.state != WorkerState::Idle || w.epoch != token.epoch {
            return false;
        }
        if self.view(now_ns).active() <= self.limits.min_active {
            return false;
        }
        self.set_state(token.worker, WorkerState::Sleeping, now_ns);
        self.record(now_ns, Action::Sleep, 1, 1, Trigger::IdleTimeout, reason);
        true
    }

    /// Close the current period at `now_ns` and return its metrics; the next period starts.
    pub fn period_metrics(&mut self, now_ns: u64) -> PeriodMetrics {
        for w in 0..self.ws.len() {
            self.account(w, now_ns);
        }
        let m = PeriodMetrics {
            start_ns: self.period_start_ns,
            now_ns,
            busy_ns: self.ws.iter().map(|w| w.busy_p).collect(),
            awake_ns: self.ws.iter().map(|w| w.awake_p).collect(),
            check_ins: self.ws.iter().map(|w| w.check_ins_p).collect(),
            arrivals: self.period_arrivals,
            completions: self.period_completions,
            load: self.view(now_ns),
        };
        for w in &mut self.ws {
            w.busy_p = 0;
            w.awake_p = 0;
            w.check_ins_p = 0;
        }
        self.period_start_ns = now_ns;
        self.period_arrivals = 0;
        self.period_completions = 0;
        m
    }

    /// Totals up to `now_ns`.
    pub fn totals(&mut self, now_ns: u64) -> Totals {
        for w in 0..self.ws.len() {
            self.account(w, now_ns);
        }
        self.totals
    }

    /// Check the pool's internal invariants (used by tests and audited simulations).
    pub fn check_invariants(&self) -> Result<(), String> {
        let v = self.view(0);
        for (i, w) in self.ws.iter().enumerate() {
            let runs = matches!(w.state, WorkerState::Busy | WorkerState::Draining);
            if runs != w.task.is_some() {
                return Err(format!(
                    "worker {i} is {:?} with task present = {}",
                    w.state,
                    w.task.is_some()
                ));
            }
            let in_idle = self.idle.iter().filter(|&&x| x == i).count();
            if in_idle != usize::from(w.state == WorkerState::Idle) {
                return Err(format!(
                    "worker {i} is {:?} and {in_idle} times in the idle list",
                    w.state
                ));
            }
        }
        if !self.queue.is_empty() && v.idle > 0 {
            return Err(format!(
                "{} tasks queued while {} workers idle",
                self.queue.len(),
                v.idle
            ));
        }
        if v.active() > self.limits.max_active || v.active() < self.limits.min_active {
            return Err(format!(
                "{} active outside [{}, {}]",
                v.active(),
                self.limits.min_active,
                self.limits.max_active
            ));
        }
        if self.totals.busy_ns > self.totals.reserved_ns {
            return Err(format!(
                "busy {} > reserved {}",
                self.totals.busy_ns, self.totals.reserved_ns
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, active: usize) -> WorkerPool<u32> {
        WorkerPool::new(Limits::new(n), active, 0, DecisionLog::new()).unwrap()
    }

    #[test]
    fn lifo_dispatch_fifo_queue_and_drain() {
        let mut p = pool(3, 2);
        assert_eq!(p.arrive(1, 0), Some((0, 1))); // most recently idled is worker 0 initially
        assert_eq!(p.arrive(2, 0), Some((1, 2)));
        assert_eq!(p.arrive(3, 1), None);
        assert_eq!(p.arrive(4, 1), None);
        assert_eq!(p.check_in(1, 10).unwrap(), Next::Task(3));
        let a = p.apply(&Decision::sleep(5, "t"), Trigger::Period, 10);
        // 2 active, min 1: one drains (no idle worker).
        assert_eq!(a.draining, vec![0]);
        assert_eq!(p.check_in(0, 12).unwrap(), Next::Slept);
        assert_eq!(p.check_in(1, 13).unwrap(), Next::Task(4));
        assert!(matches!(p.check_in(1, 14).unwrap(), Next::Idle(_)));
        assert!(p.check_in(1, 15).is_err());
        p.check_invariants().unwrap();
        let t = p.totals(20);
        assert_eq!((t.arrivals, t.completions, t.slept), (4, 4, 1));
        assert_eq!(t.busy_ns, 12 + 14);
        assert_eq!(t.reserved_ns, 12 + 20);
        assert_eq!(p.log().records().len(), 1);
        assert_eq!(p.log().records()[0].count, 1);
        assert_eq!(p.log().records()[0].requested, 5);
    }

    #[test]
    fn wake_cancels_drain_first_and_respects_max() {
        let mut p = pool(3, 2);
        p.arrive(1, 0);
        p.arrive(2, 0);
        p.apply(&Decision::sleep(1, "t"), Trigger::Period, 1);
        assert_eq!(p.view(1).draining, 1);
        let a = p.apply(&Decision::wake(9, "t"), Trigger::Arrival, 2);
        assert_eq!((a.undrained.len(), a.woken.len()), (1, 1));
        assert_eq!(p.view(2).active(), 3);
        assert_eq!(
            p.apply(&Decision::wake(1, "t"), Trigger::Arrival, 3)
                .count(),
            0
        );
        assert!(matches!(p.wake_complete(2, 5).unwrap(), Next::Idle(_)));
        p.check_invariants().unwrap();
    }

    #[test]
    fn idle_timeout_only_if_still_idle_and_above_min() {
        let mut p = pool(2, 2);
        let toks = p.idle_workers();
        assert_eq!(toks.len(), 2);
        p.arrive(1, 1); // takes worker 0 (top of the stack)
        assert!(!p.sleep_if_idle(toks[1], "x", 2)); // worker 0 not idle
        assert!(!p.sleep_if_idle(toks[1], "x", 2));
        assert!(p.sleep_if_idle(toks[0], "x", 3)); // worker 1 idle since start
        let Next::Idle(t0) = p.check_in(0, 4).unwrap() else {
            panic!()
        };
        assert!(!p.sleep_if_idle(t0, "x", 5)); // min_active = 1
        p.check_invariants().unwrap();
    }

    #[test]
    fn bad_limits() {
        let l = Limits {
            workers: 2,
            min_active: 3,
            max_active: 2,
        };
        assert!(WorkerPool::<u32>::new(l, 0, 0, DecisionLog::new()).is_err());
    }
}
