//! `ditto bench micro`: the elastic VM's primitives, each over many samples.
//!
//! - **exit round trip**: the guest rings the doorbell with `Ping` in a loop; each sample
//!   is the host time between two consecutive ping exits (resume → guest → exit).
//! - **wake latency**: a worker is asleep with a task queued; the sample runs from the wake
//!   decision (`Vm::wake`) to the moment the woken worker starts the task, observed by
//!   polling the `started_seq` field the guest writes into the shared window (no exit).
//! - **cold start**: `Vm::launch_image` (image parsed once per process, as a pool does)
//!   for 1 regular + 4 workers and 64 MiB, to every vCPU registered.
//! - **dispatch throughput**: no-op tasks per second with 1, 2 and 4 active workers, and
//!   VM exits per task.
//! - **sleeping worker CPU**: CPU time of a sleeping worker's thread over one second.

use crate::summary::Summary;
use ditto_protocol::TaskKind;
use ditto_vmm::loader::GuestImage;
use ditto_vmm::{TaskSpec, VcpuState, Vm, VmConfig, VmmError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Options.
#[derive(Clone, Debug)]
pub struct MicroOptions {
    /// Samples per latency benchmark.
    pub samples: u32,
    /// No-op tasks per throughput run.
    pub dispatch_tasks: u32,
    /// Show progress bars (on stderr).
    pub progress: bool,
}

impl Default for MicroOptions {
    fn default() -> Self {
        Self {
            samples: 1000,
            dispatch_tasks: 20_000,
            progress: true,
        }
    }
}

/// Results.
#[derive(Clone, Debug, Serialize)]
pub struct MicroReport {
    /// Doorbell exit round trip.
    pub exit_roundtrip_ns: Summary,
    /// Wake decision to the woken worker starting its next task (observed in the guest).
    pub wake_latency_ns: Summary,
    /// Wake decision to the host dispatching the task (host side only).
    pub wake_to_dispatch_ns: Summary,
    /// Launch to every vCPU registered, 1 + 4 vCPUs, 64 MiB.
    pub cold_start_ns: Summary,
    /// No-op tasks per second, keyed by active workers.
    pub dispatch_tasks_per_s: BTreeMap<u32, f64>,
    /// VM exits per task in the dispatch runs, keyed by active workers.
    pub exits_per_task: BTreeMap<u32, f64>,
    /// CPU time of a sleeping worker's thread over one second.
    pub sleeping_worker_cpu_ns: u64,
    /// Host cores.
    pub host_cores: usize,
}

/// Errors.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The VM failed.
    #[error(transparent)]
    Vmm(#[from] VmmError),
    /// A measurement could not be taken.
    #[error("{0}")]
    Measure(String),
}

/// The embedded guest image, parsed once per process (as a VM pool would).
pub fn guest_image() -> Result<&'static GuestImage, VmmError> {
    static IMAGE: OnceLock<GuestImage> = OnceLock::new();
    if let Some(i) = IMAGE.get() {
        return Ok(i);
    }
    let parsed = ditto_vmm::loader::parse(ditto_guest_image::GUEST_ELF)?;
    Ok(IMAGE.get_or_init(|| parsed))
}

pub(crate) fn launch(regular: u32, workers: u32, active: u32) -> Result<Vm, VmmError> {
    let cfg = VmConfig {
        regular,
        workers,
        active,
        memory_mib: 64,
        ..VmConfig::default()
    };
    Vm::launch_image(cfg, guest_image()?)
}

fn bar(opts: &MicroOptions, len: u64, what: &str) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:<22} [{bar:40}] {pos}/{len} ({eta})") {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what.to_string());
    b
}

/// CPU time consumed so far by OS thread `tid` of this process, ns.
pub fn thread_cpu_ns(tid: i32) -> Result<u64, BenchError> {
    ditto_vmm::thread_cpu_ns(tid)
        .map_err(|e| BenchError::Measure(format!("cannot read CPU time of thread {tid}: {e}")))
}

fn wait_state(vm: &Vm, id: usize, want: VcpuState) -> Result<(), BenchError> {
    let t0 = Instant::now();
    while vm.states()[id] != want {
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(BenchError::Measure(format!(
                "vCPU {id} did not reach {want:?}"
            )));
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// Exit round trip samples.
pub fn exit_roundtrip(opts: &MicroOptions) -> Result<Summary, BenchError> {
    let vm = launch(1, 1, 1)?;
    let b = bar(opts, 1, "exit round trip");
    vm.set_recording(true);
    let r = vm.run(TaskSpec::new(TaskKind::Ping, opts.samples as u64 + 1))?;
    r.outcome.map_err(|e| BenchError::Measure(e.to_string()))?;
    b.finish_and_clear();
    Ok(Summary::of(&vm.take_ping_samples()))
}

/// Wake latency samples: (guest-observed start, host dispatch).
pub fn wake_latency(opts: &MicroOptions) -> Result<(Summary, Summary), BenchError> {
    let vm = launch(1, 1, 1)?;
    vm.set_recording(true);
    let b = bar(opts, opts.samples as u64, "wake latency");
    let mut samples = Vec::with_capacity(opts.samples as usize);
    for _ in 0..opts.samples {
        vm.sleep(1)?;
        wait_state(&vm, 1, VcpuState::Sleeping)?;
        let t = vm.submit(TaskSpec::new(TaskKind::Noop, 0))?;
        let t0 = Instant::now();
        vm.wake(1)?;
        while vm.started_seq(1) != t.seq {
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(BenchError::Measure(
                    "woken worker never started its task".into(),
                ));
            }
            std::hint::spin_loop();
        }
        samples.push(t0.elapsed().as_nanos() as u64);
        t.wait()
            .outcome
            .map_err(|e| BenchError::Measure(e.to_string()))?;
        b.inc(1);
    }
    b.finish_and_clear();
    Ok((Summary::of(&samples), Summary::of(&vm.take_wake_samples())))
}

/// Cold start samples (1 + 4 vCPUs, 64 MiB).
pub fn cold_start(opts: &MicroOptions) -> Result<Summary, BenchError> {
    let b = bar(opts, opts.samples as u64, "cold start");
    let mut samples = Vec::with_capacity(opts.samples as usize);
    for _ in 0..opts.samples {
        let vm = launch(1, 4, 4)?;
        samples.push(vm.launch_time().as_nanos() as u64);
        drop(vm);
        b.inc(1);
    }
    b.finish_and_clear();
    Ok(Summary::of(&samples))
}

/// No-op dispatch throughput with `active` workers: (tasks/s, exits per task).
pub fn dispatch(opts: &MicroOptions, active: u32) -> Result<(f64, f64), BenchError> {
    let vm = launch(1, 4, active)?;
    let b = bar(
        opts,
        opts.dispatch_tasks as u64,
        &format!("dispatch, {active} active"),
    );
    let exits0: u64 = vm.stats().iter().map(|s| s.exits).sum();
    let t0 = Instant::now();
    let mut tickets = Vec::with_capacity(opts.dispatch_tasks as usize);
    for _ in 0..opts.dispatch_tasks {
        tickets.push(vm.submit(TaskSpec::new(TaskKind::Noop, 0))?);
    }
    for t in tickets {
        t.wait()
            .outcome
            .map_err(|e| BenchError::Measure(e.to_string()))?;
        b.inc(1);
    }
    let secs = t0.elapsed().as_secs_f64();
    let exits: u64 = vm.stats().iter().map(|s| s.exits).sum::<u64>() - exits0;
    b.finish_and_clear();
    Ok((
        opts.dispatch_tasks as f64 / secs,
        exits as f64 / opts.dispatch_tasks as f64,
    ))
}

/// CPU used by a sleeping worker's thread over one second.
pub fn sleeping_cpu() -> Result<u64, BenchError> {
    let vm = launch(1, 1, 0)?;
    wait_state(&vm, 1, VcpuState::Sleeping)?;
    let tid = vm.vcpu_tids()[1];
    let before = thread_cpu_ns(tid)?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(thread_cpu_ns(tid)? - before)
}

/// Run every micro-benchmark.
pub fn run(opts: &MicroOptions) -> Result<MicroReport, BenchError> {
    let exit_roundtrip_ns = exit_roundtrip(opts)?;
    let (wake_latency_ns, wake_to_dispatch_ns) = wake_latency(opts)?;
    let cold_start_ns = cold_start(opts)?;
    let mut dispatch_tasks_per_s = BTreeMap::new();
    let mut exits_per_task = BTreeMap::new();
    for k in [1, 2, 4] {
        let (rate, exits) = dispatch(opts, k)?;
        dispatch_tasks_per_s.insert(k, rate);
        exits_per_task.insert(k, exits);
    }
    Ok(MicroReport {
        exit_roundtrip_ns,
        wake_latency_ns,
        wake_to_dispatch_ns,
        cold_start_ns,
        dispatch_tasks_per_s,
        exits_per_task,
        sleeping_worker_cpu_ns: sleeping_cpu()?,
        host_cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    })
}

impl MicroReport {
    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let us = |s: &Summary| {
            format!(
                "{:.1} | {:.1} | {:.1} | {}",
                s.p50 as f64 / 1e3,
                s.p99 as f64 / 1e3,
                s.max as f64 / 1e3,
                s.n
            )
        };
        let mut m = String::from("# ditto bench micro\n\n| measure | p50 (µs) | p99 (µs) | max (µs) | samples |\n|---|---|---|---|---|\n");
        m += &format!(
            "| doorbell exit round trip | {} |\n",
            us(&self.exit_roundtrip_ns)
        );
        m += &format!(
            "| worker wake latency (wake → task starts in guest) | {} |\n",
            us(&self.wake_latency_ns)
        );
        m += &format!(
            "| wake → host dispatch | {} |\n",
            us(&self.wake_to_dispatch_ns)
        );
        m += &format!(
            "| cold start, 1+4 vCPUs, 64 MiB | {} |\n",
            us(&self.cold_start_ns)
        );
        m += "\n| active workers | no-op tasks/s | VM exits per task |\n|---|---|---|\n";
        for (k, r) in &self.dispatch_tasks_per_s {
            m += &format!(
                "| {k} | {r:.0} | {:.3} |\n",
                self.exits_per_task.get(k).copied().unwrap_or(0.0)
            );
        }
        m += &format!(
            "\nSleeping worker CPU over 1 s: {} ns. Host cores: {}.\n",
            self.sleeping_worker_cpu_ns, self.host_cores
        );
        m
    }
}
