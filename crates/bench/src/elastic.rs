//! `ditto bench elastic`: Ditto's claim on real VMs and real HTTP. One trace (fixed seed),
//! one catalog function, replayed open-loop against the platform once per configuration:
//!
//! - `ditto`: worker vCPUs with the paper's threshold policy;
//! - `ditto-fast`: worker vCPUs with the event-driven `queue` policy;
//! - `fixed-peak`: every worker always awake (a fixed VM sized for the peak);
//! - `fixed-mean`: a fixed VM sized for the mean load;
//! - `scale-out`: one-worker VMs started on demand and retired when idle (a new VM per
//!   scale step), optionally with a modelled confidential-VM launch delay.
//!
//! The load generator fixes every arrival time in advance; latency runs from the
//! *scheduled* arrival to the response, so a slow server cannot slow the load down.

use crate::micro::BenchError;
use crate::platform::Api;
use crate::summary::Summary;
use ditto_platform::config::ServeConfig;
use ditto_platform::local::LocalServer;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Options.
#[derive(Clone, Debug)]
pub struct ElasticOptions {
    /// Trace spec (see `ditto sim --help`).
    pub trace: String,
    /// Catalog function.
    pub function: String,
    /// Its parameters.
    pub params: Value,
    /// Seed of the trace.
    pub seed: u64,
    /// Latency SLO, ms.
    pub slo_ms: f64,
    /// Worker vCPUs of the elastic VM (and of fixed-peak).
    pub workers: u32,
    /// Modelled confidential-VM launch delay for scale-out, ms (0 = off).
    pub launch_delay_ms: u64,
    /// Configurations to run.
    pub configs: Vec<String>,
    /// Client threads of the load generator.
    pub clients: u32,
    /// Progress bar.
    pub progress: bool,
}

/// Every configuration, in report order.
pub const CONFIGS: &[&str] = &[
    "ditto",
    "ditto-fast",
    "fixed-peak",
    "fixed-mean",
    "scale-out",
];

impl ElasticOptions {
    /// The default suite (≤ 10 minutes here).
    pub fn default_suite() -> ElasticOptions {
        ElasticOptions {
            trace: "onoff:on=4s,off=8s,rate=500/s,base=10/s,duration=60s".into(),
            function: "fib".into(),
            params: json!({"n": 25}),
            seed: 42,
            slo_ms: 50.0,
            workers: 4,
            launch_delay_ms: 0,
            configs: CONFIGS.iter().map(|s| s.to_string()).collect(),
            clients: 64,
            progress: true,
        }
    }

    /// The quick suite (≤ 60 s here).
    pub fn quick() -> ElasticOptions {
        ElasticOptions {
            trace: "onoff:on=1s,off=1s,rate=150/s,base=5/s,duration=6s".into(),
            params: json!({"n": 20}),
            clients: 32,
            ..Self::default_suite()
        }
    }
}

/// One configuration's results.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigResult {
    /// Configuration name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// p90, ms.
    pub p90_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Max, ms.
    pub max_ms: f64,
    /// Completed requests per second of trace.
    pub throughput: f64,
    /// Requests answered with a successful activation.
    pub completed: u64,
    /// Requests that failed (HTTP error or failed activation).
    pub failed: u64,
    /// Requests over the SLO.
    pub slo_violations: u64,
    /// Integral of awake vCPUs (regular + workers) over the run, vCPU-seconds.
    pub reserved_vcpu_s: f64,
    /// CPU time of the VM threads, from the OS, seconds.
    pub host_cpu_s: f64,
    /// Worker wakes.
    pub wakes: u64,
    /// Worker sleeps.
    pub sleeps: u64,
    /// VMs started (including the prewarmed one).
    pub vm_starts: u64,
    /// Wall time of the replay, s.
    pub duration_s: f64,
    /// Time between the two accounting snapshots that bound `reserved_vcpu_s`, s.
    pub window_s: f64,
    /// Awake vCPUs over time: (seconds since start, awake vCPUs).
    pub timeline: Vec<(f64, u32)>,
    /// Every request's latency, ms (for the CDF).
    pub latencies_ms: Vec<f64>,
    /// vCPUs this configuration would hold if always awake.
    pub peak_vcpus: u32,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct ElasticReport {
    /// Trace spec.
    pub trace: String,
    /// Seed.
    pub seed: u64,
    /// Function and parameters.
    pub function: String,
    /// Parameters.
    pub params: Value,
    /// Requests in the trace.
    pub requests: usize,
    /// Trace length, s.
    pub trace_s: f64,
    /// Offered load per second of trace.
    pub offered_per_s: Vec<u32>,
    /// SLO, ms.
    pub slo_ms: f64,
    /// Modelled CVM launch delay for scale-out, ms (0 = off).
    pub launch_delay_ms: u64,
    /// Median in-guest run time of one request, ms (measured before the runs).
    pub service_ms: f64,
    /// Per configuration.
    pub configs: Vec<ConfigResult>,
    /// Host cores.
    pub host_cores: usize,
}

struct Setup {
    description: String,
    workers: u32,
    initial: u32,
    max_vms: u32,
    policy: Value,
    keep_alive: Duration,
    launch_delay: Duration,
}

fn setup(name: &str, o: &ElasticOptions, mean_workers: u32) -> Result<Setup, BenchError> {
    let fixed = |count: u32| json!([{"key": "policy", "value": "fixed"}, {"key": "policy_opts", "value": {"count": count.to_string()}}]);
    let s =
        |description: String, workers, initial, max_vms, policy, keep_alive: f64, delay: u64| {
            Setup {
                description,
                workers,
                initial,
                max_vms,
                policy,
                keep_alive: Duration::from_secs_f64(keep_alive),
                launch_delay: Duration::from_millis(delay),
            }
        };
    Ok(match name {
        "ditto" => s(
            format!(
                "1 VM, {} workers, paper's threshold policy (1 s period, 0.8/0.3)",
                o.workers
            ),
            o.workers,
            1,
            1,
            json!([{"key": "policy", "value": "ditto"}]),
            3600.0,
            0,
        ),
        "ditto-fast" => s(
            format!(
                "1 VM, {} workers, event-driven queue policy (20 ms idle timeout)",
                o.workers
            ),
            o.workers,
            1,
            1,
            json!([{"key": "policy", "value": "queue"}, {"key": "policy_opts", "value": {"idle_timeout": "20ms"}}]),
            3600.0,
            0,
        ),
        "fixed-peak" => s(
            format!("1 VM, {} workers always awake", o.workers),
            o.workers,
            o.workers,
            1,
            fixed(o.workers),
            3600.0,
            0,
        ),
        "fixed-mean" => s(
            format!("1 VM, {mean_workers} worker(s) always awake (mean load)"),
            mean_workers,
            mean_workers,
            1,
            fixed(mean_workers),
            3600.0,
            0,
        ),
        "scale-out" => s(
            if o.launch_delay_ms > 0 {
                format!("1-worker VMs on demand, retired after 1 s idle, +{} ms modelled CVM launch delay", o.launch_delay_ms)
            } else {
                "1-worker VMs on demand (real VM start), retired after 1 s idle".to_string()
            },
            1,
            1,
            o.workers * 2,
            fixed(1),
            1.0,
            o.launch_delay_ms,
        ),
        other => {
            return Err(BenchError::Measure(format!(
                "unknown configuration '{other}' (known: {})",
                CONFIGS.join(", ")
            )))
        }
    })
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Run the experiment.
pub fn run(o: &ElasticOptions) -> Result<ElasticReport, BenchError> {
    let spec = ditto_sched::trace::TraceSpec::from_str(&o.trace)
        .map_err(|e| BenchError::Measure(format!("trace: {e}")))?;
    let trace = spec
        .generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(o.seed))
        .map_err(|e| BenchError::Measure(format!("trace: {e}")))?;
    let f = ditto_catalog::get(&o.function)
        .ok_or_else(|| BenchError::Measure(format!("no catalog function '{}'", o.function)))?;
    let trace_s = trace.duration_ns as f64 / 1e9;
    let mut offered = vec![0u32; trace_s.ceil() as usize];
    for &a in &trace.arrivals {
        if let Some(b) = offered.get_mut((a / 1_000_000_000) as usize) {
            *b += 1;
        }
    }
    // Service time, to size fixed-mean: a few warm invocations in a throwaway VM.
    let service_ms = {
        let vm = ditto_vmm::Vm::launch_image(
            ditto_vmm::VmConfig {
                regular: 1,
                workers: 1,
                active: 1,
                memory_mib: 512,
                ..Default::default()
            },
            crate::micro::guest_image()?,
        )?;
        vm.load_compiled(
            f.wasm,
            &f.compiled()
                .map_err(|e| BenchError::Measure(e.to_string()))?
                .bytes,
        )?
        .map_err(|e| BenchError::Measure(e.to_string()))?;
        let text = o.params.to_string();
        let mut runs = Vec::new();
        for _ in 0..10 {
            let inv = vm.invoke(
                text.as_bytes(),
                ditto_vmm::function::FunctionLimits::default(),
            )?;
            inv.result.map_err(|e| BenchError::Measure(e.to_string()))?;
            runs.push(inv.stats.run_ns);
        }
        Summary::of(&runs).p50 as f64 / 1e6
    };
    let mean_rate = trace.arrivals.len() as f64 / trace_s;
    let mean_workers = ((mean_rate * service_ms / 1e3).ceil() as u32).clamp(1, o.workers);

    let bar = if o.progress {
        let b = ProgressBar::new(o.configs.len() as u64 * trace.arrivals.len() as u64);
        if let Ok(st) =
            ProgressStyle::with_template("{msg:<12} [{bar:40}] {pos}/{len} requests ({eta})")
        {
            b.set_style(st.progress_chars("=> "));
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let mut results = Vec::new();
    for name in &o.configs {
        bar.set_message(name.clone());
        results.push(run_config(
            name,
            o,
            &setup(name, o, mean_workers)?,
            &trace.arrivals,
            f.wasm,
            &bar,
        )?);
    }
    bar.finish_and_clear();
    Ok(ElasticReport {
        trace: o.trace.clone(),
        seed: o.seed,
        function: o.function.clone(),
        params: o.params.clone(),
        requests: trace.arrivals.len(),
        trace_s,
        offered_per_s: offered,
        slo_ms: o.slo_ms,
        launch_delay_ms: o.launch_delay_ms,
        service_ms,
        configs: results,
        host_cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    })
}

fn run_config(
    name: &str,
    o: &ElasticOptions,
    s: &Setup,
    arrivals: &[u64],
    wasm: &[u8],
    bar: &ProgressBar,
) -> Result<ConfigResult, BenchError> {
    let dir = std::env::temp_dir().join(format!("ditto-elastic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = ServeConfig {
        data_dir: dir.clone(),
        ..ServeConfig::default()
    };
    cfg.pool.workers = s.workers;
    cfg.pool.initial_active = s.initial;
    cfg.pool.max_vms_per_action = s.max_vms;
    cfg.pool.keep_alive = s.keep_alive;
    cfg.pool.vcpu_budget = 64;
    cfg.pool.extra_launch_delay = s.launch_delay;
    cfg.pool.max_queue_per_action = 100_000;
    let server = LocalServer::start(cfg).map_err(|e| BenchError::Measure(e.to_string()))?;
    let auth = server
        .auth
        .clone()
        .ok_or_else(|| BenchError::Measure("no credentials".into()))?;
    let api = Api::new(&server.base, &auth);
    api.deploy("f", wasm, s.policy.clone())?;
    // Prewarm: the VM exists before the window opens (scale-out starts its first VM too).
    let (st, v) = api.invoke("f", &o.params)?;
    if st != 200 {
        return Err(BenchError::Measure(format!(
            "{name}: prewarm failed: HTTP {st}: {v}"
        )));
    }
    std::thread::sleep(Duration::from_millis(300)); // let the policy settle to its idle state
    let pools = server.platform.pools.clone();
    pools.tick();
    let metrics0 = server.platform.metrics.render();
    let (reserved0, cpu0) = pools.totals();
    let window0 = Instant::now();

    // Open-loop replay.
    let (tx, rx) = mpsc::channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let results = Arc::new(Mutex::new(Vec::with_capacity(arrivals.len())));
    let senders: Vec<_> = (0..o.clients)
        .map(|_| {
            let (rx, results, api, params, bar) = (
                rx.clone(),
                results.clone(),
                api.clone(),
                o.params.clone(),
                bar.clone(),
            );
            std::thread::spawn(move || loop {
                let scheduled = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                    Ok(t) => t,
                    Err(_) => return,
                };
                let ok = matches!(api.invoke("f", &params), Ok((200, _)));
                let ms = scheduled.elapsed().as_secs_f64() * 1e3;
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((ms, ok));
                bar.inc(1);
            })
        })
        .collect();
    let t0 = Instant::now() + Duration::from_millis(20);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (pools, sampling) = (pools.clone(), sampling.clone());
        std::thread::spawn(move || {
            let mut tl = Vec::new();
            while sampling.load(std::sync::atomic::Ordering::Acquire) {
                tl.push((t0.elapsed().as_secs_f64(), pools.awake_vcpus()));
                std::thread::sleep(Duration::from_millis(100));
            }
            tl
        })
    };
    for &a in arrivals {
        let at = t0 + Duration::from_nanos(a);
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let _ = tx.send(at);
    }
    drop(tx);
    for h in senders {
        let _ = h.join();
    }
    let duration_s = t0.elapsed().as_secs_f64();
    sampling.store(false, std::sync::atomic::Ordering::Release);
    let timeline = sampler.join().unwrap_or_default();
    pools.tick();
    let (reserved1, cpu1) = pools.totals();
    let window_s = window0.elapsed().as_secs_f64();
    let metrics1 = server.platform.metrics.render();
    let delta = |m: &str| metric(&metrics1, m).saturating_sub(metric(&metrics0, m));
    let vm_starts = metric(&metrics1, "ditto_vm_starts_total");
    let (wakes, sleeps) = (
        delta("ditto_worker_wakes_total"),
        delta("ditto_worker_sleeps_total"),
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let mut lat: Vec<f64> = results.iter().map(|r| r.0).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * q).round() as usize]
        }
    };
    let completed = results.iter().filter(|r| r.1).count() as u64;
    Ok(ConfigResult {
        name: name.to_string(),
        description: s.description.clone(),
        p50_ms: pct(0.5),
        p90_ms: pct(0.9),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        throughput: completed as f64 / duration_s,
        completed,
        failed: results.len() as u64 - completed,
        slo_violations: lat.iter().filter(|&&l| l > o.slo_ms).count() as u64,
        reserved_vcpu_s: reserved1.saturating_sub(reserved0) as f64 / 1e9,
        host_cpu_s: cpu1.saturating_sub(cpu0) as f64 / 1e9,
        wakes,
        sleeps,
        vm_starts,
        duration_s,
        window_s,
        timeline,
        latencies_ms: lat,
        peak_vcpus: 1 + s.workers,
    })
}

impl ElasticReport {
    /// The Markdown report.
    pub fn markdown(&self, cdf_svg: &str, timeline_svg: &str) -> String {
        let mut m = format!(
            "# ditto bench elastic\n\nTrace `{}` (seed {}), {} requests over {:.0} s; function `{}` `{}` \
             (median in-guest run {:.2} ms); SLO {} ms; {} host cores.{}\n\n",
            self.trace,
            self.seed,
            self.requests,
            self.trace_s,
            self.function,
            self.params,
            self.service_ms,
            self.slo_ms,
            self.host_cores,
            if self.launch_delay_ms > 0 {
                format!(" **scale-out includes a modelled confidential-VM launch delay of {} ms per VM start.**", self.launch_delay_ms)
            } else {
                String::new()
            }
        );
        m += "| configuration | p50 ms | p90 ms | p99 ms | max ms | completed | failed | SLO violations | reserved vCPU-s | host CPU s | wakes | sleeps | VM starts |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
        for c in &self.configs {
            m += &format!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.1} | {:.2} | {} | {} | {} |\n",
                c.name, c.p50_ms, c.p90_ms, c.p99_ms, c.max_ms, c.completed, c.failed, c.slo_violations, c.reserved_vcpu_s, c.host_cpu_s, c.wakes, c.sleeps, c.vm_starts
            );
        }
        m += "\n";
        for c in &self.configs {
            m += &format!("- **{}**: {}\n", c.name, c.description);
        }
        if let Some(peak) = self.configs.iter().find(|c| c.name == "fixed-peak") {
            m += "\nAgainst `fixed-peak`:\n\n| configuration | p99 / fixed-peak | reserved / fixed-peak |\n|---|---|---|\n";
            for c in &self.configs {
                m += &format!(
                    "| {} | {:.2}× | {:.2}× |\n",
                    c.name,
                    c.p99_ms / peak.p99_ms.max(1e-9),
                    c.reserved_vcpu_s / peak.reserved_vcpu_s.max(1e-9)
                );
            }
        }
        m += &format!("\n![latency CDF]({cdf_svg})\n\n![awake vCPUs over time]({timeline_svg})\n");
        m
    }
}
