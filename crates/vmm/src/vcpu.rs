//! The vCPU thread: it owns its `VcpuFd` and runs an explicit loop
//!
//! 1. Enter the guest (`KVM_RUN`).
//! 2. Classify the exit ([`classify_exit`], pure): doorbell, interrupted (kick), or other.
//! 3. Doorbell: copy the mailbox header out of the shared window, validate it
//!    ([`ditto_protocol::decode_guest_message`]) and act: `Ready`/`CheckIn` complete the
//!    previous task and fetch the next one from the dispatcher (parking the thread on its
//!    condition variable while asleep or idle); `Log`/`Ping` resume at once; `Fault` or a
//!    malformed message fails the task and resets the vCPU.
//! 4. Interrupted: a kick from the watchdog (deadline passed: fail the task, reset) or from
//!    shutdown (stop).
//!
//! Kicks follow Firecracker: a real-time signal whose handler sets `immediate_exit` in this
//! thread's `kvm_run`, so a kick that lands just before `KVM_RUN` is not lost. Kicks are
//! sent only under the dispatcher lock to a thread that is alive and in a running state.
//!
//! Reset follows the kernel's rule for pending I/O: re-enter `KVM_RUN` once with
//! `immediate_exit` set, then load the initial registers; the guest starts again at its
//! entry point with a fresh stack and heap and re-registers with `Ready`.

use crate::dispatch::{Next, TaskError, TaskOutput, VcpuState};
use crate::VmShared;
use ditto_protocol::{
    decode_guest_message, vector_name, GuestMessage, HostMsgKind, Mailbox, TaskStatus,
    DOORBELL_PORT,
};
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_run, kvm_sregs};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::cell::Cell;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, MutexGuard, OnceLock};
use std::time::Instant;

/// A vCPU's initial state, restored on reset.
#[derive(Clone)]
pub(crate) struct InitState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
}

thread_local! {
    static KVM_RUN_PTR: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let run = KVM_RUN_PTR.with(|p| p.get());
    if !run.is_null() {
        // SAFETY: the pointer is this thread's own kvm_run mapping, set while its VcpuFd
        // is alive and cleared before it is dropped; a single byte volatile store.
        unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!((*run).immediate_exit), 1) };
    }
    fence(Ordering::SeqCst);
}

/// The signal used for kicks.
pub(crate) fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

/// Install the kick handler once per process.
pub(crate) fn install_kick_handler() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler)
                .map_err(|e| format!("cannot install the vCPU kick signal handler: {e}"))
        })
        .clone()
}

/// Send a kick to `pthread`.
///
/// The caller holds the dispatcher lock and has checked the thread is alive (its
/// `pthread` is recorded and its state is a running one).
pub(crate) fn kick(pthread: libc::pthread_t) {
    // SAFETY: per the contract the thread exists; pthread_kill only queues a signal whose
    // handler is async-signal-safe.
    unsafe { libc::pthread_kill(pthread, kick_signal()) };
}

/// What an exit means, decided without side effects.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExitClass {
    /// A doorbell write with this 32-bit value.
    Doorbell(u32),
    /// A doorbell write of the wrong width.
    BadDoorbell(usize),
    /// `KVM_RUN` returned EINTR (a kick).
    Interrupted,
    /// Anything else: the guest did something it must not (or KVM failed).
    Unexpected(String),
}

/// Classify the result of `KVM_RUN`.
pub(crate) fn classify_exit(exit: Result<VcpuExit<'_>, vmm_sys_util::errno::Error>) -> ExitClass {
    match exit {
        Ok(VcpuExit::IoOut(port, data)) if port == DOORBELL_PORT => match <[u8; 4]>::try_from(data)
        {
            Ok(b) => ExitClass::Doorbell(u32::from_le_bytes(b)),
            Err(_) => ExitClass::BadDoorbell(data.len()),
        },
        Ok(VcpuExit::IoOut(port, _)) => {
            ExitClass::Unexpected(format!("write to I/O port {port:#x}"))
        }
        Ok(VcpuExit::IoIn(port, _)) => {
            ExitClass::Unexpected(format!("read from I/O port {port:#x}"))
        }
        Ok(VcpuExit::MmioRead(addr, _)) | Ok(VcpuExit::MmioWrite(addr, _)) => {
            ExitClass::Unexpected(format!("access to unmapped guest address {addr:#x}"))
        }
        Ok(VcpuExit::Hlt) => ExitClass::Unexpected("HLT".into()),
        Ok(VcpuExit::Shutdown) => ExitClass::Unexpected("triple fault (shutdown)".into()),
        Ok(other) => ExitClass::Unexpected(format!("unexpected VM exit {other:?}")),
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => ExitClass::Interrupted,
        Err(e) => ExitClass::Unexpected(format!("KVM_RUN failed: {e}")),
    }
}

/// Why a vCPU is being reset.
enum Reset {
    /// Fail the current task (if any) with this error.
    Fail(TaskError),
}

/// What the loop does next.
enum Flow {
    Resume,
    Reset(Reset),
    Stop,
}

pub(crate) struct VcpuThread {
    pub shared: Arc<VmShared>,
    pub id: u32,
    pub vcpu: VcpuFd,
    pub init: InitState,
    pub exits: u64,
    pub boot_faults: u32,
    pub last_ping: Option<Instant>,
    /// The last idle epoch reported to the policy controller.
    pub idle_sent: u64,
}

impl VcpuThread {
    /// The thread body.
    pub fn run(mut self) {
        let run_ptr: *mut kvm_run = self.vcpu.get_kvm_run();
        KVM_RUN_PTR.with(|p| p.set(run_ptr));
        {
            let mut d = self.shared.lock();
            // SAFETY: pthread_self has no preconditions.
            d.vcpus[self.id as usize].pthread = Some(unsafe { libc::pthread_self() });
            // SAFETY: gettid has no preconditions.
            d.vcpus[self.id as usize].tid = unsafe { libc::gettid() };
        }
        loop {
            let class = classify_exit(self.vcpu.run());
            self.exits += 1;
            let flow = match class {
                ExitClass::Doorbell(value) => self.on_doorbell(value),
                ExitClass::BadDoorbell(len) => Flow::Reset(Reset::Fail(TaskError::Protocol(
                    format!("doorbell write of {len} bytes (expected 4)"),
                ))),
                ExitClass::Interrupted => self.on_interrupted(),
                ExitClass::Unexpected(what) => Flow::Reset(Reset::Fail(TaskError::Fault {
                    vector: 0,
                    name: "unexpected exit",
                    rip: self.vcpu.get_regs().map(|r| r.rip).unwrap_or(0),
                    addr: 0,
                    message: format!(": {what}"),
                })),
            };
            match flow {
                Flow::Resume => {}
                Flow::Stop => break,
                Flow::Reset(Reset::Fail(err)) => {
                    if !self.reset(err) {
                        break;
                    }
                }
            }
        }
        KVM_RUN_PTR.with(|p| p.set(std::ptr::null_mut()));
    }

    fn on_doorbell(&mut self, value: u32) -> Flow {
        let mb = self.shared.window.read_mailbox(self.id);
        let msg = match decode_guest_message(value, &mb) {
            Ok(m) => m,
            Err(e) => return Flow::Reset(Reset::Fail(TaskError::Protocol(e.to_string()))),
        };
        match msg {
            GuestMessage::Ping => {
                self.on_ping();
                Flow::Resume
            }
            GuestMessage::Log { len } => {
                let line = self.shared.window.read_output(self.id, len.min(4096));
                self.shared
                    .push_log(self.id, String::from_utf8_lossy(&line).into_owned());
                Flow::Resume
            }
            GuestMessage::Fault {
                vector,
                error: _,
                rip,
                addr,
                len,
            } => {
                let message = if len > 0 {
                    format!(
                        ": {}",
                        String::from_utf8_lossy(
                            &self.shared.window.read_output(self.id, len.min(4096))
                        )
                    )
                } else {
                    String::new()
                };
                Flow::Reset(Reset::Fail(TaskError::Fault {
                    vector,
                    name: vector_name(vector),
                    rip,
                    addr,
                    message,
                }))
            }
            GuestMessage::Ready => {
                self.boot_faults = 0;
                let shared = self.shared.clone();
                let mut d = shared.lock();
                let v = &mut d.vcpus[self.id as usize];
                let first = !v.registered;
                v.registered = true;
                v.stats.exits = self.exits;
                if let Some(p) = v.current.take() {
                    p.finish(
                        Some(self.id),
                        Err(TaskError::Vcpu("the vCPU restarted during the task".into())),
                    );
                }
                if first {
                    d.registered += 1;
                    self.shared.launch_cv.notify_all();
                }
                self.next_task(d)
            }
            GuestMessage::CheckIn {
                seq,
                status,
                len,
                value,
            } => {
                let output = self.shared.window.read_output(self.id, len);
                let shared = self.shared.clone();
                let mut d = shared.lock();
                let now = Instant::now();
                let v = &mut d.vcpus[self.id as usize];
                v.stats.checkins += 1;
                v.stats.exits = self.exits;
                match v.current.as_ref().map(|p| p.seq) {
                    Some(s) if s == seq => {}
                    other => {
                        drop(d);
                        return Flow::Reset(Reset::Fail(TaskError::Protocol(match other {
                            Some(s) => format!("check-in for task {seq} but task {s} is running"),
                            None => format!("check-in for task {seq} but no task is running"),
                        })));
                    }
                }
                let Some(p) = v.current.take() else {
                    return Flow::Resume;
                };
                v.kicked = false;
                let outcome = match status {
                    TaskStatus::Ok => Ok(TaskOutput { output, value }),
                    TaskStatus::Error => Err(TaskError::Failed(
                        String::from_utf8_lossy(&output).into_owned(),
                    )),
                    TaskStatus::Rejected => Err(TaskError::Rejected(
                        String::from_utf8_lossy(&output).into_owned(),
                    )),
                };
                if outcome.is_ok() {
                    v.stats.tasks += 1;
                } else {
                    v.stats.tasks_failed += 1;
                }
                // Leave Busy/Draining now; next_task decides the new state.
                v.transition(VcpuState::ActiveIdle, now);
                p.finish(Some(self.id), outcome);
                self.next_task(d)
            }
        }
    }

    fn on_ping(&mut self) {
        let now = Instant::now();
        if let Some(prev) = self.last_ping.replace(now) {
            self.shared
                .record_ping(now.duration_since(prev).as_nanos() as u64);
        }
    }

    /// Wait (parked) until this vCPU has a task, then write it into the mailbox.
    fn next_task(&mut self, mut d: MutexGuard<'_, crate::dispatch::Dispatch>) -> Flow {
        self.last_ping = None;
        let id = self.id as usize;
        loop {
            let now = Instant::now();
            match d.next_for(id, now) {
                Next::Stop => {
                    d.vcpus[id].transition(VcpuState::Stopped, now);
                    d.vcpus[id].pthread = None;
                    return Flow::Stop;
                }
                Next::Wait => {
                    let v = &d.vcpus[id];
                    if v.state == VcpuState::ActiveIdle && v.idle_epoch != self.idle_sent {
                        self.idle_sent = v.idle_epoch;
                        if let Some(e) = self.shared.elastic_events() {
                            let _ = e.send(crate::elastic::Event::Idle {
                                vcpu: id,
                                epoch: v.idle_epoch,
                            });
                        }
                    }
                    d = self.shared.wait(id, d)
                }
                Next::Run => {
                    let v = &mut d.vcpus[id];
                    if let Some(t) = v.woken_at.take() {
                        let ns = now.saturating_duration_since(t).as_nanos() as u64;
                        self.shared.record_wake(ns);
                    }
                    let Some(p) = v.current.as_ref() else {
                        continue;
                    };
                    let header = Mailbox {
                        h_kind: HostMsgKind::Task as u32,
                        h_task: p.spec.kind as u32,
                        h_seq: p.seq,
                        h_arg: p.spec.arg,
                        h_len: p.spec.input.len() as u32,
                        ..Mailbox::default()
                    };
                    let has_deadline = p.spec.timeout.is_some();
                    if let Err(e) = self
                        .shared
                        .window
                        .write_task(self.id, &header, &p.spec.input)
                    {
                        if let Some(p) = v.current.take() {
                            p.finish(Some(self.id), Err(TaskError::Rejected(e.to_string())));
                        }
                        v.transition(VcpuState::ActiveIdle, now);
                        continue;
                    }
                    if has_deadline {
                        self.shared.watch_cv.notify_one();
                    }
                    return Flow::Resume;
                }
            }
        }
    }

    fn on_interrupted(&mut self) -> Flow {
        self.vcpu.set_kvm_immediate_exit(0);
        let d = self.shared.lock();
        if d.shutdown {
            return Flow::Reset(Reset::Fail(TaskError::ShutDown));
        }
        let v = &d.vcpus[self.id as usize];
        match v.current.as_ref() {
            Some(p) if p.overdue(Instant::now()) => Flow::Reset(Reset::Fail(TaskError::Timeout(
                p.spec.timeout.unwrap_or_default(),
            ))),
            _ => Flow::Resume,
        }
    }

    /// Fail the current task with `err` and restart the vCPU from its entry point.
    /// Returns false if the thread should stop.
    fn reset(&mut self, err: TaskError) -> bool {
        let now = Instant::now();
        {
            let mut d = self.shared.lock();
            let shutdown = d.shutdown;
            let v = &mut d.vcpus[self.id as usize];
            let was_booting = v.state == VcpuState::Booting;
            if let Some(p) = v.current.take() {
                v.stats.tasks_failed += 1;
                p.finish(
                    Some(self.id),
                    Err(if shutdown {
                        TaskError::ShutDown
                    } else {
                        err.clone()
                    }),
                );
            }
            v.kicked = false;
            if shutdown {
                v.transition(VcpuState::Stopped, now);
                v.pthread = None;
                return false;
            }
            v.stats.resets += 1;
            if was_booting {
                self.boot_faults += 1;
            }
            tracing::warn!(vcpu = self.id, error = %err, "resetting vCPU");
            if self.boot_faults >= self.shared.max_boot_faults {
                v.transition(VcpuState::Failed, now);
                let msg = format!(
                    "vCPU {} failed to boot {} times; last error: {err}",
                    self.id, self.boot_faults
                );
                d.boot_error.get_or_insert(msg);
                self.shared.launch_cv.notify_all();
                // Park until shutdown; a failed vCPU never runs again.
                while !d.shutdown {
                    d = self.shared.wait(self.id as usize, d);
                }
                d.vcpus[self.id as usize].pthread = None;
                return false;
            }
            v.transition(VcpuState::Booting, now);
        }
        // Complete any pending I/O before touching registers (KVM API rule).
        self.vcpu.set_kvm_immediate_exit(1);
        let _ = self.vcpu.run();
        self.vcpu.set_kvm_immediate_exit(0);
        let fpu = kvm_fpu {
            fcw: 0x37F,
            mxcsr: 0x1F80,
            ..Default::default()
        };
        let restored = self
            .vcpu
            .set_sregs(&self.init.sregs)
            .and_then(|_| self.vcpu.set_regs(&self.init.regs))
            .and_then(|_| self.vcpu.set_fpu(&fpu));
        if let Err(e) = restored {
            let mut d = self.shared.lock();
            let v = &mut d.vcpus[self.id as usize];
            v.transition(VcpuState::Failed, Instant::now());
            v.pthread = None;
            d.boot_error
                .get_or_insert(format!("vCPU {} could not be reset: {e}", self.id));
            self.shared.launch_cv.notify_all();
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::errno::Error as Errno;

    #[test]
    fn classifies_exits() {
        let v = 2u32.to_le_bytes();
        assert_eq!(
            classify_exit(Ok(VcpuExit::IoOut(DOORBELL_PORT, &v))),
            ExitClass::Doorbell(2)
        );
        assert_eq!(
            classify_exit(Ok(VcpuExit::IoOut(DOORBELL_PORT, &[1]))),
            ExitClass::BadDoorbell(1)
        );
        assert!(matches!(
            classify_exit(Ok(VcpuExit::IoOut(0x80, &v))),
            ExitClass::Unexpected(_)
        ));
        assert!(matches!(
            classify_exit(Ok(VcpuExit::Hlt)),
            ExitClass::Unexpected(_)
        ));
        assert!(
            matches!(classify_exit(Ok(VcpuExit::Shutdown)), ExitClass::Unexpected(m) if m.contains("triple"))
        );
        assert_eq!(
            classify_exit(Err(Errno::new(libc::EINTR))),
            ExitClass::Interrupted
        );
        assert!(matches!(
            classify_exit(Err(Errno::new(libc::EFAULT))),
            ExitClass::Unexpected(_)
        ));
    }
}
