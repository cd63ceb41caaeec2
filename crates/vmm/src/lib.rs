//! Ditto's virtual machine monitor: an elastic VM on `/dev/kvm` with `m` regular and `n`
//! worker vCPUs, one host thread per vCPU.
//!
//! Launch ([`Vm::launch`]): validate the configuration, map private memory and the shared
//! window, load the guest ELF and build every CPU structure from the host ([`boot`]),
//! compute the launch measurement ([`measure`]) before any vCPU runs, seal private memory
//! (from then on host code can reach only the shared window, see [`memory`]), create the
//! vCPUs in long mode at CPL3, start their threads ([`vcpu`]) and wait until each one has
//! registered.
//!
//! Run: tasks submitted with [`Vm::submit`] wait in one queue and go only to awake workers
//! ([`dispatch`]); [`Vm::wake`], [`Vm::sleep`] and [`Vm::set_active_workers`] change which
//! workers are awake; a watchdog thread kicks vCPUs whose task overran its deadline.
#![warn(missing_docs)]

pub mod boot;
pub mod config;
pub mod dispatch;
pub mod elastic;
pub mod error;
pub mod function;
pub mod kvm;
pub mod loader;
pub mod measure;
pub mod memory;
mod vcpu;

pub use config::VmConfig;
pub use dispatch::{TaskError, TaskOutput, TaskResult, TaskSpec, TaskTicket, VcpuState, VcpuStats};
pub use error::{Result, VmmError};
pub use measure::Measurement;

use crate::dispatch::{Dispatch, Pending, VcpuCtl};
use crate::error::kvm_err;
use crate::memory::{PrivateMapping, PrivateMemory, SharedWindow};
use crate::vcpu::{InitState, VcpuThread};
use kvm_bindings::kvm_userspace_memory_region;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most log lines kept per VM.
const LOG_LINES: usize = 256;
/// Most timing samples kept per series.
const MAX_SAMPLES: usize = 1 << 20;

/// State shared by the VM handle, its vCPU threads and its watchdog.
pub(crate) struct VmShared {
    pub window: SharedWindow,
    dispatch: Mutex<Dispatch>,
    cvs: Vec<Condvar>,
    pub launch_cv: Condvar,
    pub watch_cv: Condvar,
    pub max_boot_faults: u32,
    logs: Mutex<VecDeque<(u32, String)>>,
    recording: AtomicBool,
    pings: Mutex<Vec<u64>>,
    wakes: Mutex<Vec<u64>>,
    /// The scheduling policy, once attached ([`Vm::set_policy`]).
    elastic: std::sync::OnceLock<elastic::Elastic>,
}

impl VmShared {
    /// Lock the dispatcher. A poisoned lock (a panicking thread) is taken over: the state
    /// it guards stays consistent between statements.
    pub fn lock(&self) -> MutexGuard<'_, Dispatch> {
        self.dispatch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Park vCPU `id`'s thread until notified.
    pub fn wait<'a>(&self, id: usize, g: MutexGuard<'a, Dispatch>) -> MutexGuard<'a, Dispatch> {
        self.cvs[id].wait(g).unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, id: usize) {
        self.cvs[id].notify_one();
    }

    /// Where idle events go, if a policy is attached.
    pub fn elastic_events(&self) -> Option<&std::sync::mpsc::Sender<elastic::Event>> {
        self.elastic.get().map(|e| &e.events)
    }

    pub fn push_log(&self, vcpu: u32, line: String) {
        tracing::info!(vcpu, "guest: {line}");
        let mut l = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() == LOG_LINES {
            l.pop_front();
        }
        l.push_back((vcpu, line));
    }

    fn record(&self, series: &Mutex<Vec<u64>>, ns: u64) {
        if self.recording.load(Ordering::Relaxed) {
            let mut s = series.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() < MAX_SAMPLES {
                s.push(ns);
            }
        }
    }

    pub fn record_ping(&self, ns: u64) {
        self.record(&self.pings, ns);
    }

    pub fn record_wake(&self, ns: u64) {
        self.record(&self.wakes, ns);
    }
}

/// A running elastic VM.
pub struct Vm {
    shared: Arc<VmShared>,
    threads: Vec<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
    measurement: Measurement,
    measured_entries: u64,
    launch_time: Duration,
    config: VmConfig,
    _private: PrivateMapping,
    _vm: kvm_ioctls::VmFd,
}

impl Vm {
    /// Create a VM from `config` running the guest runtime `guest_elf`, and wait until every
    /// vCPU has registered.
    pub fn launch(config: VmConfig, guest_elf: &[u8]) -> Result<Vm> {
        Self::launch_image(config, &loader::parse(guest_elf)?)
    }

    /// Like [`Vm::launch`] with an image parsed once by [`loader::parse`] (what a pool
    /// launching many VMs of one image does; parsing and page digests are not repeated).
    pub fn launch_image(config: VmConfig, image: &loader::GuestImage) -> Result<Vm> {
        let t0 = Instant::now();
        config.validate(image.end - ditto_protocol::memory::GUEST_IMAGE_BASE)?;
        let kvm = kvm::open(&config.kvm_path)?;
        vcpu::install_kick_handler().map_err(VmmError::Launch)?;
        let vm = kvm.create_vm().map_err(kvm_err("create VM"))?;

        let mut vcpus = Vec::new();
        for id in 0..config.vcpus() {
            vcpus.push(vm.create_vcpu(id as u64).map_err(kvm_err("create vCPU"))?);
        }
        // The guest's clocks count TSC ticks; tell it their rate (0 = unknown).
        let tsc_khz = vcpus[0].get_tsc_khz().unwrap_or(0);

        let plan = boot::plan(&config, image.end);
        let mut private = PrivateMemory::new(plan.mem_size)?;
        boot::populate(&mut private, &config, image, &plan, tsc_khz)?;
        let window = SharedWindow::new(config.vcpus())?;
        for (slot, r) in [private.kvm_range(), window.kvm_range()]
            .into_iter()
            .enumerate()
        {
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: r.gpa,
                memory_size: r.size,
                userspace_addr: r.host_addr,
            };
            // SAFETY: the region is a live mmap of `size` bytes owned by `private` or
            // `window`, both of which the returned Vm keeps alive as long as the VM fd.
            unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("set memory region"))?;
        }

        let cpuid = kvm::supported_cpuid(&kvm)?;
        let mut inits = Vec::new();
        for (id, fd) in vcpus.iter().enumerate() {
            let id = id as u32;
            fd.set_cpuid2(&cpuid).map_err(kvm_err("set CPUID"))?;
            let sregs = boot::initial_sregs(
                fd.get_sregs().map_err(kvm_err("get sregs"))?,
                id,
                config.vcpus(),
            );
            let regs = boot::initial_regs(image.entry, id, &plan);
            fd.set_sregs(&sregs).map_err(kvm_err("set sregs"))?;
            fd.set_regs(&regs).map_err(kvm_err("set regs"))?;
            inits.push(InitState { regs, sregs });
        }
        let vmsas: Vec<Vec<u8>> = inits
            .iter()
            .map(|i| boot::vmsa_bytes(&i.regs, &i.sregs))
            .collect();
        let window_size = ditto_protocol::memory::shared_window_size(config.vcpus());
        let (measurement, measured_entries) = boot::measure(&private, image, window_size, &vmsas)?;
        let private = private.seal();

        let now = Instant::now();
        let shared = Arc::new(VmShared {
            window,
            dispatch: Mutex::new(Dispatch::new(
                config.regular,
                config.workers,
                config.active,
                now,
            )),
            cvs: (0..config.vcpus()).map(|_| Condvar::new()).collect(),
            launch_cv: Condvar::new(),
            watch_cv: Condvar::new(),
            max_boot_faults: config.max_boot_faults,
            logs: Mutex::new(VecDeque::new()),
            recording: AtomicBool::new(false),
            pings: Mutex::new(Vec::new()),
            wakes: Mutex::new(Vec::new()),
            elastic: std::sync::OnceLock::new(),
        });
        let mut me = Vm {
            shared: shared.clone(),
            threads: Vec::new(),
            watchdog: None,
            measurement,
            measured_entries,
            launch_time: Duration::ZERO,
            config: config.clone(),
            _private: private,
            _vm: vm,
        };
        for (id, (fd, init)) in vcpus.into_iter().zip(inits).enumerate() {
            let t = VcpuThread {
                shared: shared.clone(),
                id: id as u32,
                vcpu: fd,
                init,
                exits: 0,
                boot_faults: 0,
                last_ping: None,
                idle_sent: 0,
            };
            let h = std::thread::Builder::new()
                .name(format!("ditto-vcpu{id}"))
                .spawn(move || t.run())
                .map_err(VmmError::Thread)?;
            me.threads.push(h);
        }
        let wd = shared.clone();
        me.watchdog = Some(
            std::thread::Builder::new()
                .name("ditto-watchdog".into())
                .spawn(move || watchdog(&wd))
                .map_err(VmmError::Thread)?,
        );

        // Wait until every vCPU registered.
        let deadline = t0 + config.launch_timeout;
        let mut d = shared.lock();
        while d.registered < config.vcpus() && d.boot_error.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let msg = format!(
                    "only {} of {} vCPUs registered within {:?}",
                    d.registered,
                    config.vcpus(),
                    config.launch_timeout
                );
                drop(d);
                return Err(VmmError::Launch(msg));
            }
            d = shared
                .launch_cv
                .wait_timeout(d, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if let Some(e) = d.boot_error.clone() {
            drop(d);
            return Err(VmmError::Launch(e));
        }
        drop(d);
        me.launch_time = t0.elapsed();
        Ok(me)
    }

    /// The launch measurement (SHA-384).
    pub fn measurement(&self) -> Measurement {
        self.measurement
    }

    /// The launch measurement as lowercase hex.
    pub fn measurement_hex(&self) -> String {
        hex::encode(self.measurement)
    }

    /// Entries chained into the measurement.
    pub fn measured_entries(&self) -> u64 {
        self.measured_entries
    }

    /// Time from [`Vm::launch`] being called to every vCPU registered.
    pub fn launch_time(&self) -> Duration {
        self.launch_time
    }

    /// The configuration.
    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// Submit a task. It waits in the queue until an awake worker takes it.
    pub fn submit(&self, spec: TaskSpec) -> Result<TaskTicket> {
        let (tx, rx) = mpsc::channel();
        let seq = self.submit_with(spec, dispatch::channel_reply(tx))?;
        Ok(TaskTicket { seq, rx })
    }

    /// Submit a task whose result is handed to `reply` (called exactly once, without
    /// blocking; e.g. to complete an async channel).
    pub fn submit_with(&self, spec: TaskSpec, reply: dispatch::Reply) -> Result<u64> {
        if self.config.workers == 0 {
            return Err(VmmError::InvalidArgument(
                "This VM has no worker vCPUs to run tasks".into(),
            ));
        }
        let (seq, mut d) = self.enqueue(spec, reply, false)?;
        // The policy's event path: it may wake workers for this arrival at once.
        for id in self.shared.on_arrival(&mut d) {
            self.shared.notify(id);
        }
        if let Some(id) = d.claim_idle_worker() {
            self.shared.notify(id);
        }
        Ok(seq)
    }

    /// Check `spec`, assign it a sequence number and queue it (on the control queue for
    /// the regular vCPUs if `control`). Returns the sequence number and the still-held lock.
    fn enqueue(
        &self,
        spec: TaskSpec,
        reply: dispatch::Reply,
        control: bool,
    ) -> Result<(u64, MutexGuard<'_, Dispatch>)> {
        if spec.input.len() > ditto_protocol::IN_BUF_SIZE {
            return Err(VmmError::InvalidArgument(format!(
                "Task input of {} bytes exceeds the limit of {} bytes",
                spec.input.len(),
                ditto_protocol::IN_BUF_SIZE
            )));
        }
        let mut d = self.shared.lock();
        if d.shutdown {
            return Err(VmmError::ShutDown);
        }
        let seq = d.next_seq;
        d.next_seq += 1;
        let p = Pending {
            seq,
            spec,
            reply,
            submitted: Instant::now(),
            dispatched: None,
        };
        if control {
            d.control.push_back(p);
        } else {
            d.queue.push_back(p);
        }
        Ok((seq, d))
    }

    /// Submit a control task to the regular vCPUs (e.g. loading the VM's function).
    pub fn submit_control(&self, spec: TaskSpec) -> Result<TaskTicket> {
        let (tx, rx) = mpsc::channel();
        let (seq, _locked) = self.enqueue(spec, dispatch::channel_reply(tx), true)?;
        for id in 0..self.config.regular as usize {
            self.shared.notify(id);
        }
        Ok(TaskTicket { seq, rx })
    }

    /// Submit a task and wait for its result.
    pub fn run(&self, spec: TaskSpec) -> Result<TaskResult> {
        Ok(self.submit(spec)?.wait())
    }

    fn worker_index(&self, vcpu: u32) -> Result<usize> {
        if vcpu < self.config.regular || vcpu >= self.config.vcpus() {
            return Err(VmmError::InvalidArgument(format!(
                "vCPU {vcpu} is not a worker (workers are {}..{})",
                self.config.regular,
                self.config.vcpus()
            )));
        }
        Ok(vcpu as usize)
    }

    fn set_awake(&self, changes: &[(usize, bool)]) {
        let mut d = self.shared.lock();
        let now = Instant::now();
        for &(id, awake) in changes {
            if d.set_awake(id, awake, now) {
                self.shared.notify(id);
            }
        }
        // A woken worker may find queued work; an idle one may need to take over.
        for _ in 0..d.queue.len() {
            match d.claim_idle_worker() {
                Some(id) => self.shared.notify(id),
                None => break,
            }
        }
    }

    /// Wake worker vCPU `vcpu` (any time; it takes queued work at once).
    pub fn wake(&self, vcpu: u32) -> Result<()> {
        let id = self.worker_index(vcpu)?;
        self.set_awake(&[(id, true)]);
        Ok(())
    }

    /// Put worker vCPU `vcpu` to sleep: at once if idle, at its next check-in if busy.
    pub fn sleep(&self, vcpu: u32) -> Result<()> {
        let id = self.worker_index(vcpu)?;
        self.set_awake(&[(id, false)]);
        Ok(())
    }

    /// Make exactly `k` workers wanted awake.
    pub fn set_active_workers(&self, k: u32) -> Result<()> {
        if k > self.config.workers {
            return Err(VmmError::InvalidArgument(format!(
                "Cannot make {k} workers active: the VM has {}",
                self.config.workers
            )));
        }
        let plan = self.shared.lock().plan_active(k);
        self.set_awake(&plan);
        Ok(())
    }

    /// Workers currently wanted awake.
    pub fn active_workers(&self) -> u32 {
        self.shared.lock().awake_workers()
    }

    /// Tasks waiting in the queue.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Per-vCPU statistics now.
    pub fn stats(&self) -> Vec<VcpuStats> {
        let d = self.shared.lock();
        let now = Instant::now();
        d.vcpus.iter().map(|v| v.snapshot(now)).collect()
    }

    /// Each vCPU's state now.
    pub fn states(&self) -> Vec<VcpuState> {
        self.shared.lock().vcpus.iter().map(|v| v.state).collect()
    }

    /// CPU time consumed so far by this VM's vCPU threads, ns (from the OS).
    pub fn vcpu_cpu_ns(&self) -> u64 {
        self.vcpu_tids()
            .into_iter()
            .filter(|&t| t > 0)
            .filter_map(|t| thread_cpu_ns(t).ok())
            .sum()
    }

    /// OS thread ids of the vCPU threads (for CPU accounting).
    pub fn vcpu_tids(&self) -> Vec<i32> {
        self.shared.lock().vcpus.iter().map(|v| v.tid).collect()
    }

    /// The sequence number of the task vCPU `vcpu` last started, as written by the guest
    /// into the shared window without an exit.
    pub fn started_seq(&self, vcpu: u32) -> u64 {
        self.shared.window.started_seq(vcpu)
    }

    /// Start or stop recording exit-round-trip (ping) and wake-to-dispatch samples.
    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::SeqCst);
    }

    /// Take the recorded ping round trips (ns).
    pub fn take_ping_samples(&self) -> Vec<u64> {
        std::mem::take(&mut *self.shared.pings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Take the recorded wake-request-to-dispatch samples (ns).
    pub fn take_wake_samples(&self) -> Vec<u64> {
        std::mem::take(&mut *self.shared.wakes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The guest's most recent log lines, with the vCPU that wrote each.
    pub fn logs(&self) -> Vec<(u32, String)> {
        self.shared
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Stop the VM: queued tasks fail with [`TaskError::ShutDown`], running vCPUs are
    /// kicked out of the guest, threads are joined. Returns the final statistics.
    pub fn shutdown(mut self) -> Vec<VcpuStats> {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        {
            let mut d = self.shared.lock();
            if !d.shutdown {
                d.shutdown = true;
                while let Some(p) = d.control.pop_front() {
                    p.finish(None, Err(TaskError::ShutDown));
                }
                while let Some(p) = d.queue.pop_front() {
                    p.finish(None, Err(TaskError::ShutDown));
                }
                for (id, v) in d.vcpus.iter().enumerate() {
                    if let Some(t) = v.pthread {
                        // Alive (it clears `pthread` under this lock before exiting).
                        vcpu::kick(t);
                    }
                    self.shared.notify(id);
                }
                self.shared.watch_cv.notify_all();
            }
        }
        if let Some(e) = self.shared.elastic_events() {
            let _ = e.send(elastic::Event::Stop);
        }

        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time consumed so far by OS thread `tid` of this process, ns (from
/// `/proc/self/task/TID/schedstat`).
pub fn thread_cpu_ns(tid: i32) -> std::io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))?;
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected schedstat for thread {tid}")))
}

/// The deadline watchdog: sleeps until the earliest running task's deadline, then kicks
/// every vCPU whose task is overdue (once per task).
fn watchdog(shared: &VmShared) {
    let mut d = shared.lock();
    loop {
        if d.shutdown {
            return;
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for v in d.vcpus.iter_mut() {
            let Some(deadline) = v.current.as_ref().and_then(Pending::deadline) else {
                continue;
            };
            if now >= deadline {
                if !v.kicked {
                    if let Some(t) = v.pthread {
                        v.kicked = true;
                        vcpu::kick(t);
                    }
                }
            } else {
                next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
            }
        }
        let wait = next
            .map_or(Duration::from_millis(100), |n| {
                n.saturating_duration_since(now)
            })
            .min(Duration::from_millis(100));
        d = shared
            .watch_cv
            .wait_timeout(d, wait.max(Duration::from_micros(100)))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// Give every `VcpuCtl` a `Debug` for diagnostics without exposing internals.
impl std::fmt::Debug for VcpuCtl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcpuCtl")
            .field("state", &self.state)
            .field("want_awake", &self.want_awake)
            .finish()
    }
}
