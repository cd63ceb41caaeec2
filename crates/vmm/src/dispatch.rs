//! The worker controller: the VM's task queue, each vCPU's state (Sleeping, Active-idle,
//! Busy, Draining), wake/sleep requests, and per-vCPU accounting. One mutex guards it all;
//! each vCPU thread waits on its own condition variable, so a wake or a task reaches
//! exactly the thread meant for it.
//!
//! Rules this module enforces:
//! 1. Only a worker that is awake (not asleep, not draining) takes a task from the queue.
//! 2. A worker asked to sleep while busy becomes Draining; it parks at its next check-in,
//!    never mid-task.
//! 3. A worker can be woken at any time; a sleeping worker's thread is blocked on its
//!    condition variable (no CPU) and is not counted as reserved.

use ditto_protocol::TaskKind;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    /// The built-in workload.
    pub kind: TaskKind,
    /// Its argument.
    pub arg: u64,
    /// Input payload (≤ 1 MiB).
    pub input: Vec<u8>,
    /// Deadline, measured from when a worker starts the task.
    pub timeout: Option<Duration>,
}

impl TaskSpec {
    /// A task with no input and no deadline.
    pub fn new(kind: TaskKind, arg: u64) -> Self {
        Self {
            kind,
            arg,
            input: Vec::new(),
            timeout: None,
        }
    }

    /// Set a deadline.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Set the input payload.
    pub fn with_input(mut self, input: Vec<u8>) -> Self {
        self.input = input;
        self
    }
}

/// Why a task failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum TaskError {
    /// The task overran its deadline; its vCPU was kicked and reset.
    #[error("Task exceeded its deadline of {0:?}; the worker was reset")]
    Timeout(Duration),
    /// The guest raised a CPU exception or panicked; the vCPU was reset.
    #[error("Guest fault: {name} (vector {vector}) at rip {rip:#x}, address {addr:#x}{message}")]
    Fault {
        /// Exception vector (or 0x100 for a panic).
        vector: u64,
        /// Its name.
        name: &'static str,
        /// Faulting instruction.
        rip: u64,
        /// Faulting address.
        addr: u64,
        /// Panic message, prefixed with ": ", or empty.
        message: String,
    },
    /// The task reported an error.
    #[error("Task failed: {0}")]
    Failed(String),
    /// The guest rejected the task message.
    #[error("Guest rejected the task: {0}")]
    Rejected(String),
    /// The guest sent a malformed message; the vCPU was reset.
    #[error("Malformed guest message: {0}; the worker was reset")]
    Protocol(String),
    /// The vCPU could not run (KVM error or repeated boot faults).
    #[error("vCPU failure: {0}")]
    Vcpu(String),
    /// The VM shut down before the task finished.
    #[error("The VM shut down before the task ran")]
    ShutDown,
}

/// A successful task's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskOutput {
    /// Output payload.
    pub output: Vec<u8>,
    /// Task-defined value.
    pub value: u64,
}

/// The result of one task.
#[derive(Clone, Debug)]
pub struct TaskResult {
    /// Sequence number assigned at submission.
    pub seq: u64,
    /// The vCPU that ran it (`None` if it never ran).
    pub vcpu: Option<u32>,
    /// Output or error.
    pub outcome: Result<TaskOutput, TaskError>,
    /// Time in the queue.
    pub queued: Duration,
    /// Time from dispatch to completion.
    pub run: Duration,
}

/// A submitted task's handle.
pub struct TaskTicket {
    /// Sequence number.
    pub seq: u64,
    pub(crate) rx: mpsc::Receiver<TaskResult>,
}

impl TaskTicket {
    /// Wait for the result.
    pub fn wait(self) -> TaskResult {
        let seq = self.seq;
        self.rx.recv().unwrap_or(TaskResult {
            seq,
            vcpu: None,
            outcome: Err(TaskError::ShutDown),
            queued: Duration::ZERO,
            run: Duration::ZERO,
        })
    }

    /// Wait at most `t`.
    pub fn wait_timeout(&self, t: Duration) -> Option<TaskResult> {
        self.rx.recv_timeout(t).ok()
    }
}

/// Where a finished task's result goes (called exactly once, on a vCPU thread or the
/// thread that shuts the VM down; it must not block).
pub type Reply = Box<dyn FnOnce(TaskResult) + Send>;

/// A reply that sends into a channel.
pub(crate) fn channel_reply(tx: mpsc::Sender<TaskResult>) -> Reply {
    Box::new(move |r| {
        let _ = tx.send(r);
    })
}

/// A task waiting in the queue or running.
pub(crate) struct Pending {
    pub seq: u64,
    pub spec: TaskSpec,
    pub reply: Reply,
    pub submitted: Instant,
    pub dispatched: Option<Instant>,
}

impl Pending {
    /// The deadline, if the task has one and has started.
    pub fn deadline(&self) -> Option<Instant> {
        Some(self.dispatched? + self.spec.timeout?)
    }

    /// Whether the task has overrun its deadline at `now`.
    pub fn overdue(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    pub fn finish(self, vcpu: Option<u32>, outcome: Result<TaskOutput, TaskError>) {
        let now = Instant::now();
        let start = self.dispatched.unwrap_or(now);
        (self.reply)(TaskResult {
            seq: self.seq,
            vcpu,
            outcome,
            queued: start.saturating_duration_since(self.submitted),
            run: now.saturating_duration_since(start),
        });
    }
}

/// A vCPU's state, as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VcpuState {
    /// Started (or reset), not yet registered.
    Booting,
    /// A regular vCPU, registered and waiting.
    Regular,
    /// A worker, awake and waiting for a task (reserved, not spinning).
    ActiveIdle,
    /// A worker running a task.
    Busy,
    /// A worker running a task that has been told to sleep at its next check-in.
    Draining,
    /// A worker whose thread is parked outside KVM_RUN.
    Sleeping,
    /// A vCPU that cannot run any more.
    Failed,
    /// The VM shut down.
    Stopped,
}

impl VcpuState {
    /// Whether the vCPU counts as reserved (awake) in this state.
    pub fn reserved(self) -> bool {
        !matches!(self, Self::Sleeping | Self::Failed | Self::Stopped)
    }
}

/// Per-vCPU statistics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VcpuStats {
    /// vCPU index.
    pub id: u32,
    /// "regular" or "worker".
    pub kind: &'static str,
    /// Current state.
    pub state: Option<VcpuState>,
    /// Tasks completed successfully.
    pub tasks: u64,
    /// Tasks that failed on this vCPU.
    pub tasks_failed: u64,
    /// Check-ins received.
    pub checkins: u64,
    /// VM exits handled (every return from KVM_RUN).
    pub exits: u64,
    /// Times this worker was put to sleep.
    pub sleeps: u64,
    /// Times this worker was woken.
    pub wakes: u64,
    /// Faults (exceptions, panics, malformed messages, timeouts) that reset this vCPU.
    pub resets: u64,
    /// Time running tasks (Busy or Draining).
    pub busy_ns: u64,
    /// Time awake without a task.
    pub idle_ns: u64,
    /// Time asleep.
    pub asleep_ns: u64,
    /// Time reserved (everything but asleep).
    pub reserved_ns: u64,
}

/// One vCPU's control block (under the dispatcher lock).
pub(crate) struct VcpuCtl {
    pub regular: bool,
    pub want_awake: bool,
    pub state: VcpuState,
    pub since: Instant,
    pub current: Option<Pending>,
    pub stats: VcpuStats,
    /// Set by a wake request; cleared when the worker next starts a task (for timing).
    pub woken_at: Option<Instant>,
    /// Whether the vCPU has registered (sent Ready) at least once.
    pub registered: bool,
    /// Whether the watchdog already kicked this vCPU for its current task.
    pub kicked: bool,
    /// The vCPU thread, while it is alive (kicks go only to a recorded thread).
    pub pthread: Option<libc::pthread_t>,
    /// The vCPU thread's OS thread id (for CPU accounting), 0 until it starts.
    pub tid: i32,
    /// A task submission already signalled this idle worker (so the next submission
    /// signals another one); cleared when the worker looks at the queue.
    pub notified: bool,
    /// Incremented each time the worker becomes idle (so idle timers can tell whether
    /// it stayed idle since they were armed).
    pub idle_epoch: u64,
}

impl VcpuCtl {
    pub fn new(id: u32, regular: bool, awake: bool, now: Instant) -> Self {
        Self {
            regular,
            want_awake: regular || awake,
            state: VcpuState::Booting,
            since: now,
            current: None,
            stats: VcpuStats {
                id,
                kind: if regular { "regular" } else { "worker" },
                ..Default::default()
            },
            woken_at: None,
            registered: false,
            kicked: false,
            pthread: None,
            tid: 0,
            notified: false,
            idle_epoch: 0,
        }
    }

    /// Account the time spent in the current state and switch to `next`.
    pub fn transition(&mut self, next: VcpuState, now: Instant) {
        let ns = now.saturating_duration_since(self.since).as_nanos() as u64;
        account(&mut self.stats, self.state, ns);
        if next == VcpuState::Sleeping && self.state != VcpuState::Sleeping {
            self.stats.sleeps += 1;
        }
        if next == VcpuState::ActiveIdle && self.state != VcpuState::ActiveIdle {
            self.idle_epoch += 1;
        }

        self.state = next;
        self.since = now;
    }

    /// Statistics including the time spent so far in the current state.
    pub fn snapshot(&self, now: Instant) -> VcpuStats {
        let mut s = self.stats.clone();
        account(
            &mut s,
            self.state,
            now.saturating_duration_since(self.since).as_nanos() as u64,
        );
        s.state = Some(self.state);
        s
    }
}

fn account(s: &mut VcpuStats, state: VcpuState, ns: u64) {
    match state {
        VcpuState::Busy | VcpuState::Draining => s.busy_ns += ns,
        VcpuState::Sleeping => s.asleep_ns += ns,
        VcpuState::ActiveIdle | VcpuState::Regular | VcpuState::Booting => s.idle_ns += ns,
        VcpuState::Failed | VcpuState::Stopped => {}
    }
    if state.reserved() {
        s.reserved_ns += ns;
    }
}

/// The dispatcher state.
pub(crate) struct Dispatch {
    pub queue: VecDeque<Pending>,
    /// Control tasks (module init) for the regular vCPUs.
    pub control: VecDeque<Pending>,
    pub vcpus: Vec<VcpuCtl>,
    pub next_seq: u64,
    pub shutdown: bool,
    pub registered: u32,
    pub boot_error: Option<String>,
}

/// What a vCPU thread should do after a check-in.
pub(crate) enum Next {
    /// Run this task.
    Run,
    /// Wait (asleep, idle or regular) on the condition variable.
    Wait,
    /// The VM is shutting down.
    Stop,
}

impl Dispatch {
    pub fn new(regular: u32, workers: u32, active: u32, now: Instant) -> Self {
        let vcpus = (0..regular + workers)
            .map(|id| VcpuCtl::new(id, id < regular, id < regular + active, now))
            .collect();
        Self {
            queue: VecDeque::new(),
            control: VecDeque::new(),
            vcpus,
            next_seq: 1,
            shutdown: false,
            registered: 0,
            boot_error: None,
        }
    }

    /// Decide what vCPU `id`, now at a check-in with no task, does next. On `Run` the
    /// task is in `vcpus[id].current`.
    pub fn next_for(&mut self, id: usize, now: Instant) -> Next {
        if self.shutdown {
            return Next::Stop;
        }
        let v = &mut self.vcpus[id];
        v.notified = false;
        if v.state == VcpuState::Failed {
            return Next::Wait;
        }
        if v.regular {
            if let Some(p) = self.control.pop_front() {
                return self.start(id, p, now);
            }
            let v = &mut self.vcpus[id];
            if v.state != VcpuState::Regular {
                v.transition(VcpuState::Regular, now);
            }
            return Next::Wait;
        }
        if !v.want_awake {
            if v.state != VcpuState::Sleeping {
                v.transition(VcpuState::Sleeping, now);
            }
            return Next::Wait;
        }
        if let Some(p) = self.queue.pop_front() {
            return self.start(id, p, now);
        }
        let v = &mut self.vcpus[id];
        if v.state != VcpuState::ActiveIdle {
            v.transition(VcpuState::ActiveIdle, now);
        }
        Next::Wait
    }

    /// Hand task `p` to vCPU `id`: it becomes Busy with `p` as its current task.
    fn start(&mut self, id: usize, mut p: Pending, now: Instant) -> Next {
        p.dispatched = Some(now);
        let v = &mut self.vcpus[id];
        v.current = Some(p);
        v.transition(VcpuState::Busy, now);
        Next::Run
    }

    /// The ids of workers that are awake, idle and not yet signalled.
    pub fn idle_workers(&self) -> impl Iterator<Item = usize> + '_ {
        self.vcpus
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                !v.regular && v.state == VcpuState::ActiveIdle && v.want_awake && !v.notified
            })
            .map(|(i, _)| i)
    }

    /// Pick an idle, unsignalled worker to signal for new work, and mark it signalled.
    pub fn claim_idle_worker(&mut self) -> Option<usize> {
        let id = self.idle_workers().next()?;
        self.vcpus[id].notified = true;
        Some(id)
    }

    /// Mark worker `id` as wanted awake or asleep. Returns whether anything changed.
    pub fn set_awake(&mut self, id: usize, awake: bool, now: Instant) -> bool {
        let v = &mut self.vcpus[id];
        if v.regular || v.want_awake == awake || v.state == VcpuState::Failed {
            return false;
        }
        v.want_awake = awake;
        if awake {
            v.stats.wakes += 1;
            v.woken_at = Some(now);
            if v.state == VcpuState::Draining {
                v.transition(VcpuState::Busy, now);
            }
        } else if v.state == VcpuState::Busy {
            v.transition(VcpuState::Draining, now);
        }
        true
    }

    /// Number of workers wanted awake.
    pub fn awake_workers(&self) -> u32 {
        self.vcpus
            .iter()
            .filter(|v| !v.regular && v.want_awake && v.state != VcpuState::Failed)
            .count() as u32
    }

    /// Choose workers to wake or sleep so that `k` are wanted awake: wake the lowest
    /// sleeping ids; sleep idle workers before busy ones (which drain).
    pub fn plan_active(&self, k: u32) -> Vec<(usize, bool)> {
        let awake = self.awake_workers();
        let workers = || {
            self.vcpus
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.regular && v.state != VcpuState::Failed)
        };
        if k > awake {
            workers()
                .filter(|(_, v)| !v.want_awake)
                .take((k - awake) as usize)
                .map(|(i, _)| (i, true))
                .collect()
        } else {
            let mut candidates: Vec<(usize, bool)> = workers()
                .filter(|(_, v)| v.want_awake)
                .map(|(i, v)| (i, matches!(v.state, VcpuState::Busy | VcpuState::Draining)))
                .collect();
            // Idle first, then busy; higher ids first within each group.
            candidates.sort_by_key(|&(i, busy)| (busy, std::cmp::Reverse(i)));
            candidates
                .into_iter()
                .take((awake - k) as usize)
                .map(|(i, _)| (i, false))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seq: u64) -> (Pending, mpsc::Receiver<TaskResult>) {
        let (tx, rx) = mpsc::channel();
        let p = Pending {
            seq,
            spec: TaskSpec::new(TaskKind::Noop, 0),
            reply: channel_reply(tx),
            submitted: Instant::now(),
            dispatched: None,
        };
        (p, rx)
    }

    #[test]
    fn only_awake_workers_take_tasks() {
        let now = Instant::now();
        let mut d = Dispatch::new(1, 2, 1, now);
        let (p, _rx) = pending(1);
        d.queue.push_back(p);
        assert!(
            matches!(d.next_for(0, now), Next::Wait),
            "regular vCPU takes no task"
        );
        assert!(
            matches!(d.next_for(2, now), Next::Wait),
            "sleeping worker takes no task"
        );
        assert_eq!(d.vcpus[2].state, VcpuState::Sleeping);
        assert!(matches!(d.next_for(1, now), Next::Run));
        assert_eq!(d.vcpus[1].current.as_ref().map(|p| p.seq), Some(1));
    }

    #[test]
    fn control_tasks_go_only_to_regular_vcpus() {
        let now = Instant::now();
        let mut d = Dispatch::new(1, 1, 1, now);
        let (p, _rx) = pending(1);
        d.control.push_back(p);
        assert!(
            matches!(d.next_for(1, now), Next::Wait),
            "a worker takes no control task"
        );
        assert!(matches!(d.next_for(0, now), Next::Run));
        assert_eq!(d.vcpus[0].current.as_ref().map(|p| p.seq), Some(1));
    }

    #[test]
    fn sleeping_a_busy_worker_drains_it() {
        let now = Instant::now();
        let mut d = Dispatch::new(1, 1, 1, now);
        let (p, _rx) = pending(1);
        d.queue.push_back(p);
        assert!(matches!(d.next_for(1, now), Next::Run));
        assert!(d.set_awake(1, false, now));
        assert_eq!(d.vcpus[1].state, VcpuState::Draining);
        // The task is still its own; at the check-in it parks.
        d.vcpus[1].current.take();
        assert!(matches!(d.next_for(1, now), Next::Wait));
        assert_eq!(d.vcpus[1].state, VcpuState::Sleeping);
        assert_eq!(d.vcpus[1].stats.sleeps, 1);
    }

    #[test]
    fn plan_active_prefers_idle_workers_for_sleep() {
        let now = Instant::now();
        let mut d = Dispatch::new(1, 3, 3, now);
        for id in 1..4 {
            d.next_for(id, now);
        }
        d.vcpus[3].state = VcpuState::Busy;
        let plan = d.plan_active(1);
        assert_eq!(plan, vec![(2, false), (1, false)]);
        let plan = d.plan_active(3);
        assert!(plan.is_empty());
    }

    #[test]
    fn accounting_splits_time_by_state() {
        let t0 = Instant::now();
        let mut v = VcpuCtl::new(1, false, true, t0);
        v.transition(VcpuState::Busy, t0 + Duration::from_millis(1));
        v.transition(VcpuState::Sleeping, t0 + Duration::from_millis(3));
        let s = v.snapshot(t0 + Duration::from_millis(10));
        assert_eq!(s.idle_ns, 1_000_000);
        assert_eq!(s.busy_ns, 2_000_000);
        assert_eq!(s.asleep_ns, 7_000_000);
        assert_eq!(s.reserved_ns, 3_000_000);
    }
}
