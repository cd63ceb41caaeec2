//! Runs a `ditto-sched` [`Policy`] against a real VM: the same policy code the simulator
//! runs, driven by real time.
//!
//! 1. **Event path (arrival).** [`Vm::submit_with`] calls `on_arrival` synchronously,
//!    in the submitter's thread, so a burst wakes workers within microseconds.
//! 2. **Event path (idle).** When a worker becomes idle its vCPU thread sends an event to
//!    the controller thread, which asks `on_worker_idle` and arms the returned timer; if
//!    the worker is still idle (same idle epoch) when it fires, it is put to sleep.
//! 3. **Periodic path.** Every `period_ns` the controller computes [`PeriodMetrics`] from
//!    the per-vCPU accounting deltas and calls `on_period`.
//!
//! Every applied decision is recorded with its trigger, reason and time in a
//! [`DecisionLog`]. An optional [`WakeBudget`] gates every wake (the platform's host-wide
//! vCPU budget) and is credited on every sleep.

use crate::dispatch::{Dispatch, VcpuState};
use crate::{Vm, VmShared};
use ditto_sched::{
    Action, Decision, DecisionLog, DecisionRecord, LoadView, PeriodMetrics, Policy, Trigger,
};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A gate on waking workers (e.g. a host-wide vCPU budget).
pub trait WakeBudget: Send + Sync {
    /// Take `n` vCPUs if available.
    fn try_take(&self, n: u32) -> bool;
    /// Give `n` vCPUs back.
    fn give(&self, n: u32);
}

/// Events from vCPU threads to the controller.
pub(crate) enum Event {
    /// Worker `vcpu` became idle (its `epoch`-th idle period).
    Idle { vcpu: usize, epoch: u64 },
    /// The VM is shutting down.
    Stop,
}

/// The policy and its bookkeeping, shared by the submit path and the controller thread.
pub(crate) struct Elastic {
    policy: Mutex<Box<dyn Policy>>,
    log: Mutex<DecisionLog>,
    budget: Option<Arc<dyn WakeBudget>>,
    pub(crate) events: mpsc::Sender<Event>,
    epoch: Instant,
    min_active: u32,
}

impl Elastic {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Apply `decision` to the dispatcher (caller holds the lock); returns workers to signal.
    fn apply(&self, d: &mut Dispatch, decision: &Decision, trigger: Trigger) -> Vec<usize> {
        if decision.is_hold() || decision.count == 0 {
            return Vec::new();
        }
        let now = Instant::now();
        let awake = d.awake_workers();
        let workers = d.vcpus.iter().filter(|v| !v.regular).count() as u32;
        let mut changed = Vec::new();
        match decision.action {
            Action::Wake => {
                let target = (awake + decision.count).min(workers);
                for (id, awake) in d.plan_active(target) {
                    if awake && self.budget.as_ref().is_some_and(|b| !b.try_take(1)) {
                        break;
                    }
                    if d.set_awake(id, awake, now) {
                        changed.push(id);
                    }
                }
            }
            Action::Sleep => {
                let target = awake.saturating_sub(decision.count).max(self.min_active);
                for (id, awake) in d.plan_active(target) {
                    if d.set_awake(id, awake, now) {
                        if let Some(b) = &self.budget {
                            b.give(1);
                        }
                        changed.push(id);
                    }
                }
            }
            Action::Hold => {}
        }
        if !changed.is_empty() {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.push(DecisionRecord {
                time_ns: self.now_ns(),
                action: decision.action,
                count: changed.len() as u32,
                requested: decision.count,
                trigger,
                reason: decision.reason.clone(),
                active_after: d.awake_workers(),
            });
        }
        changed
    }
}

/// The scheduler's view of a dispatcher.
pub(crate) fn load_view(d: &Dispatch, now_ns: u64) -> LoadView {
    let mut v = LoadView {
        now_ns,
        queued: d.queue.len(),
        ..LoadView::default()
    };
    for c in d.vcpus.iter().filter(|c| !c.regular) {
        v.workers += 1;
        match (c.state, c.want_awake) {
            (VcpuState::Sleeping, true) | (VcpuState::Booting, true) => v.waking += 1,
            (VcpuState::Sleeping, false) | (VcpuState::Failed, _) | (VcpuState::Stopped, _) => {
                v.sleeping += 1
            }
            (VcpuState::Draining, _) => v.draining += 1,
            (VcpuState::Busy, _) => v.busy += 1,
            (VcpuState::ActiveIdle, true) if !c.notified => v.idle += 1,
            (VcpuState::ActiveIdle, true) => v.busy += 1,
            (VcpuState::ActiveIdle, false) | (VcpuState::Booting, false) => v.sleeping += 1,
            (VcpuState::Regular, _) => {}
        }
    }
    // The scheduler counts as queued only tasks no idle worker is about to take (in its
    // model a task goes straight to an idle worker); here every task passes the queue.
    let taken = v.queued.min(v.idle);
    v.queued -= taken;
    v.idle -= taken;
    v.busy += taken;
    v
}

impl VmShared {
    /// The arrival hook, called by submit with the dispatcher locked.
    pub(crate) fn on_arrival(&self, d: &mut Dispatch) -> Vec<usize> {
        let Some(e) = self.elastic.get() else {
            return Vec::new();
        };
        let view = load_view(d, e.now_ns());
        let decision = e
            .policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .on_arrival(&view);
        e.apply(d, &decision, Trigger::Arrival)
    }
}

impl Vm {
    /// Let `policy` decide how many workers are awake from now on (see the module docs).
    /// `budget`, if given, gates every wake. Fails if a policy is already attached.
    pub fn set_policy(
        &self,
        policy: Box<dyn Policy>,
        budget: Option<Arc<dyn WakeBudget>>,
    ) -> crate::Result<()> {
        let (tx, rx) = mpsc::channel();
        let workers = self.config.workers as usize;
        let initial = policy.initial_active(workers).min(workers) as u32;
        let period = policy.period_ns().map(Duration::from_nanos);
        let elastic = Elastic {
            policy: Mutex::new(policy),
            log: Mutex::new(DecisionLog::with_limit(100_000)),
            budget,
            events: tx,
            epoch: Instant::now(),
            min_active: 1.min(self.config.workers),
        };
        if self.shared.elastic.set(elastic).is_err() {
            return Err(crate::VmmError::InvalidArgument(
                "A policy is already attached to this VM".into(),
            ));
        }
        // Move to the policy's initial count through the budget gate like any decision.
        {
            let mut d = self.shared.lock();
            let awake = d.awake_workers();
            let e = self.shared.elastic.get().expect("just set");
            let decision = if initial > awake {
                Decision::wake(initial - awake, "the policy's initial active count")
            } else {
                Decision::sleep(awake - initial, "the policy's initial active count")
            };
            for id in e.apply(&mut d, &decision, Trigger::Driver) {
                self.shared.notify(id);
            }
        }
        let shared = self.shared.clone();

        std::thread::Builder::new()
            .name("ditto-policy".into())
            .spawn(move || controller(shared, rx, period))
            .map_err(crate::VmmError::Thread)?;
        Ok(())
    }

    /// The decisions applied so far.
    pub fn decisions(&self) -> Vec<DecisionRecord> {
        match self.shared.elastic.get() {
            Some(e) => e
                .log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .records()
                .to_vec(),
            None => Vec::new(),
        }
    }
}

/// The controller thread: idle timers and the periodic hook.
fn controller(shared: Arc<VmShared>, rx: mpsc::Receiver<Event>, period: Option<Duration>) {
    let Some(e) = shared.elastic.get() else {
        return;
    };
    let mut timers: BTreeMap<(u64, usize), u64> = BTreeMap::new(); // (at_ns, vcpu) -> epoch
    let mut next_period = period.map(|p| Instant::now() + p);
    let mut last = Snapshot::take(&shared.lock(), e.now_ns());
    loop {
        if shared.lock().shutdown {
            return;
        }
        let now_ns = e.now_ns();
        let next_timer = timers
            .keys()
            .next()
            .map(|&(at, _)| Duration::from_nanos(at.saturating_sub(now_ns)));
        let next_tick = next_period.map(|t| t.saturating_duration_since(Instant::now()));
        let wait = [next_timer, next_tick, Some(Duration::from_millis(100))]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_default();
        match rx.recv_timeout(wait) {
            Ok(Event::Idle { vcpu, epoch }) => {
                let d = shared.lock();
                let view = load_view(&d, e.now_ns());
                let worker = vcpu - d.vcpus.iter().filter(|c| c.regular).count();
                drop(d);
                let timer = e
                    .policy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .on_worker_idle(worker, &view);
                if let Some(t) = timer {
                    timers.insert((t.at_ns, vcpu), epoch);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(Event::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        // Fire due idle timers.
        let now_ns = e.now_ns();
        let due: Vec<((u64, usize), u64)> = timers
            .range(..(now_ns + 1, 0))
            .map(|(k, v)| (*k, *v))
            .collect();
        for (key, epoch) in due {
            timers.remove(&key);
            let mut d = shared.lock();
            let c = &d.vcpus[key.1];
            if c.state == VcpuState::ActiveIdle
                && c.want_awake
                && c.idle_epoch == epoch
                && d.awake_workers() > e.min_active
            {
                let now = Instant::now();
                if d.set_awake(key.1, false, now) {
                    if let Some(b) = &e.budget {
                        b.give(1);
                    }
                    let after = d.awake_workers();
                    e.log
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(DecisionRecord {
                            time_ns: now_ns,
                            action: Action::Sleep,
                            count: 1,
                            requested: 1,
                            trigger: Trigger::IdleTimeout,
                            reason: format!("worker {} idle past its timeout", key.1),
                            active_after: after,
                        });
                    shared.notify(key.1);
                }
            }
        }
        // The periodic hook.
        if let (Some(p), Some(t)) = (period, next_period) {
            if Instant::now() >= t {
                next_period = Some(t + p);
                let mut d = shared.lock();
                let snap = Snapshot::take(&d, e.now_ns());
                let metrics = snap.since(&last, load_view(&d, snap.now_ns));
                last = snap;
                let decision = e
                    .policy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .on_period(&metrics);
                let changed = e.apply(&mut d, &decision, Trigger::Period);
                for id in changed {
                    shared.notify(id);
                }
            }
        }
    }
}

/// Cumulative per-worker counters at one instant.
struct Snapshot {
    now_ns: u64,
    busy: Vec<u64>,
    awake: Vec<u64>,
    checkins: Vec<u64>,
    arrivals: u64,
    completions: u64,
}

impl Snapshot {
    fn take(d: &Dispatch, now_ns: u64) -> Snapshot {
        let now = Instant::now();
        let stats: Vec<_> = d
            .vcpus
            .iter()
            .filter(|c| !c.regular)
            .map(|c| c.snapshot(now))
            .collect();
        Snapshot {
            now_ns,
            busy: stats.iter().map(|s| s.busy_ns).collect(),
            awake: stats.iter().map(|s| s.reserved_ns).collect(),
            checkins: stats.iter().map(|s| s.checkins).collect(),
            arrivals: d.next_seq,
            completions: stats.iter().map(|s| s.tasks + s.tasks_failed).sum(),
        }
    }

    fn since(&self, prev: &Snapshot, load: LoadView) -> PeriodMetrics {
        let delta =
            |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x.saturating_sub(*y)).collect();
        PeriodMetrics {
            start_ns: prev.now_ns,
            now_ns: self.now_ns,
            busy_ns: delta(&self.busy, &prev.busy),
            awake_ns: delta(&self.awake, &prev.awake),
            check_ins: delta(&self.checkins, &prev.checkins),
            arrivals: self.arrivals.saturating_sub(prev.arrivals),
            completions: self.completions.saturating_sub(prev.completions),
            load,
        }
    }
}
