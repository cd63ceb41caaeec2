//! `ditto sim ...`: replay an arrival trace against an elastic VM in virtual time with the
//! same scheduling-policy code the VMM runs, and print latency, reserved vCPU-seconds,
//! wakes/sleeps and reaction time (or compare every policy against fixed-at-peak).

use anyhow::{bail, Context, Result};
use clap::Args;
use ditto_sched::service::ServiceDist;
use ditto_sched::sim::{
    compare, simulate, Comparison, SimConfig, SimReport, Workload, GOAL_P99_RATIO,
    GOAL_REACTION_MS, GOAL_RESERVED_RATIO,
};
use ditto_sched::trace::TraceSpec;
use ditto_sched::{build_policy, policy_help, POLICIES};
use std::time::Instant;

/// The long help shown after the options: trace grammar, service distributions, policies.
fn long_help() -> String {
    format!(
        "\
TRACE SPECS (durations take units: 500ms, 90s, 1h; rates are N/unit: 200/s, 12000/min):
  poisson:rate=200/s[,duration=60s]
      Poisson arrivals at a constant rate.
  onoff:on=10s,off=50s,rate=800/s[,base=0/s][,duration=60s]
      Repeating cycle: `off` at rate `base`, then `on` at rate `rate` (both Poisson).
  step:from=20/s,to=800/s,at=30s[,back=60s][,duration=90s]
      Rate `from`, then `to` from `at` (until `back`), then `from` again.
  diurnal:mean=200/s[,amp=0.8][,period=24h][,duration=PERIOD]
      Rate mean*(1 - amp*cos(2*pi*t/period)), starting at the trough.
  azure:PATH[,row=N|all][,function=HASHPREFIX][,scale=1][,start=0][,minutes=ALL][,speed=1]
      Azure Functions 2019 per-minute counts (HashOwner,HashApp,HashFunction,Trigger,1..1440);
      arrivals uniform within each minute; speed=60 replays one minute per second.
      Sample: crates/sched/data/azure_sample.csv

SERVICE DISTRIBUTIONS:
  const:5ms | exp:5ms (mean) | uniform:1ms..10ms | lognormal:median=5ms,sigma=1

POLICIES (--policy NAME, --policy-opt KEY=VALUE; with --compare: POLICY.KEY=VALUE):
{}
HOST MODEL: regular vCPUs are always awake and run no tasks; tasks queue FIFO and go to
active idle workers; a worker told to sleep while busy sleeps when its task ends; a wake
takes --wake-latency. Reserved vCPU-s = integral of (regular + awake workers); reaction =
delay from a task that had to queue to the first woken worker running.

EXAMPLE:
  ditto sim --trace onoff:on=10s,off=50s,rate=1000/s,base=20/s,duration=1h --service exp:5ms --compare",
        policy_help()
    )
}

/// Arguments of `ditto sim`.
#[derive(Args, Debug, Clone)]
#[command(after_long_help = long_help())]
pub struct SimArgs {
    /// Arrival trace SPEC, e.g. poisson:rate=200/s,duration=60s or
    /// onoff:on=10s,off=50s,rate=1000/s,duration=1h (see --help for the grammar).
    #[arg(long, value_name = "SPEC")]
    pub trace: String,
    /// Service-time distribution: const:5ms, exp:5ms, uniform:1ms..10ms,
    /// lognormal:median=5ms,sigma=1.
    #[arg(long, value_name = "DIST", default_value = "exp:5ms")]
    pub service: String,
    /// Scheduling policy: fixed, ditto, queue or predictive.
    #[arg(long, value_name = "NAME", default_value = "ditto")]
    pub policy: String,
    /// Policy option KEY=VALUE (repeatable), e.g. period=500ms; with --compare write
    /// POLICY.KEY=VALUE, e.g. queue.idle_timeout=5ms.
    #[arg(long = "policy-opt", value_name = "KEY=VALUE")]
    pub policy_opt: Vec<String>,
    /// Regular vCPUs (m): always awake, never run tasks.
    #[arg(long, value_name = "M", default_value_t = 1)]
    pub regular: usize,
    /// Worker vCPUs (n).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub workers: usize,
    /// Active workers never drop below this.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub min_active: usize,
    /// Delay from a wake decision to the worker running.
    #[arg(long, value_name = "DURATION", default_value = "50us")]
    pub wake_latency: String,
    /// Seed of the trace and service-time generator (same seed, same tasks).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run every policy on the same trace and seed and print them side by side with
    /// ratios against `fixed` at peak (all workers awake).
    #[arg(long)]
    pub compare: bool,
    /// Print the first N applied wake/sleep decisions (text output, single policy).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub decisions: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Split `--policy-opt` values into `(policy prefix, key, value)`.
fn parse_opts(raw: &[String]) -> Result<Vec<(Option<String>, String, String)>> {
    raw.iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("--policy-opt {s:?} is not KEY=VALUE"))?;
            let (p, k) = match k.split_once('.') {
                Some((p, k)) if POLICIES.iter().any(|i| i.name == p) => (Some(p.to_string()), k),
                _ => (None, k),
            };
            Ok((p, k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Options for `policy`: those prefixed with it, plus unprefixed ones when allowed.
fn opts_for(
    all: &[(Option<String>, String, String)],
    policy: &str,
    unprefixed: bool,
) -> Vec<(String, String)> {
    all.iter()
        .filter(|(p, _, _)| p.as_deref().map_or(unprefixed, |p| p == policy))
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Run `ditto sim`.
pub fn run(args: &SimArgs) -> Result<()> {
    let opts = parse_opts(&args.policy_opt)?;
    let cfg = SimConfig {
        regular: args.regular,
        workers: args.workers,
        min_active: args.min_active,
        wake_latency_ns: ditto_sched::units::parse_duration(&args.wake_latency)
            .context("--wake-latency")?,
        seed: args.seed,
        audit: false,
        log_limit: Some(args.decisions),
    };
    if cfg.min_active > cfg.workers {
        bail!(
            "--min-active ({}) exceeds --workers ({})",
            cfg.min_active,
            cfg.workers
        );
    }
    let t0 = Instant::now();
    // Parse first for errors that name the flag; generation parses again (cheap).
    args.trace
        .parse::<TraceSpec>()
        .with_context(|| format!("--trace {}", args.trace))?;
    args.service
        .parse::<ServiceDist>()
        .with_context(|| format!("--service {}", args.service))?;
    let wl = Workload::generate(&args.trace, &args.service, args.seed)?;
    if args.compare {
        if let Some((_, k, _)) = opts.iter().find(|(p, _, _)| p.is_none()) {
            bail!("with --compare, prefix policy options with the policy name (POLICY.{k}=...)");
        }
        let runs: Vec<(String, Vec<(String, String)>)> = POLICIES
            .iter()
            .map(|p| (p.name.to_string(), opts_for(&opts, p.name, false)))
            .collect();
        let c = compare(&cfg, &wl, &runs)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&c)?);
        } else {
            print_header(&c.baseline, wl.trace.arrivals.len());
            print_comparison(&c);
            println!(
                "simulated {} policies x {:.0} s of virtual time in {:.2} s",
                runs.len() + 1,
                c.baseline.horizon_s,
                t0.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    if let Some((Some(p), k, _)) = opts
        .iter()
        .find(|(p, _, _)| p.as_deref().is_some_and(|p| p != args.policy))
    {
        bail!(
            "--policy-opt {p}.{k} is for policy {p}, but --policy is {}",
            args.policy
        );
    }
    let mut policy = build_policy(&args.policy, &opts_for(&opts, &args.policy, true))?;
    let out = simulate(&cfg, &wl, policy.as_mut())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out.report)?);
        return Ok(());
    }
    let r = &out.report;
    print_header(r, wl.trace.arrivals.len());
    println!("policy     {} ({})", r.policy, r.policy_params);
    println!(
        "latency    p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  mean {:.3} ms",
        r.latency.p50_ms, r.latency.p99_ms, r.latency.p999_ms, r.latency.max_ms, r.latency.mean_ms
    );
    println!(
        "wait       p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        r.wait.p50_ms, r.wait.p99_ms, r.wait.max_ms
    );
    println!(
        "vCPU-s     reserved {:.1} (workers {:.1})  busy {:.1}  worker utilisation {:.1}%",
        r.reserved_vcpu_s,
        r.reserved_worker_vcpu_s,
        r.busy_vcpu_s,
        r.worker_utilisation * 100.0
    );
    println!(
        "workers    mean awake {:.2}  peak awake {}  wakes {}  sleeps {}  undrains {}  (decisions: {} wake, {} sleep)",
        r.mean_awake_workers,
        r.peak_awake_workers,
        r.wakes,
        r.sleeps,
        r.undrains,
        r.wake_decisions,
        r.sleep_decisions
    );
    println!(
        "reaction   {} episodes, {} answered by a wake; p50 {}  p99 {}  max {}",
        r.reaction.episodes,
        r.reaction.answered,
        ms_or_na(r.reaction.answered, r.reaction.time.p50_ms),
        ms_or_na(r.reaction.answered, r.reaction.time.p99_ms),
        ms_or_na(r.reaction.answered, r.reaction.time.max_ms)
    );
    if args.decisions > 0 {
        println!("decisions (first {}):", args.decisions);
        for d in out.log.records() {
            println!("  {d}");
        }
    }
    println!(
        "simulated {:.0} s of virtual time in {:.2} s",
        r.horizon_s,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn ms_or_na(n: u64, ms: f64) -> String {
    if n == 0 {
        "n/a".to_string()
    } else if ms < 1.0 {
        format!("{:.0} us", ms * 1e3)
    } else {
        format!("{ms:.1} ms")
    }
}

fn print_header(r: &SimReport, tasks: usize) {
    println!(
        "trace      {}  ({} tasks, {:.0} s)",
        r.trace, tasks, r.horizon_s
    );
    println!(
        "service    {}   seed {}   VM: {} regular + {} worker vCPUs, min_active {}, wake latency {} us",
        r.service, r.seed, r.regular, r.workers, r.min_active, r.wake_latency_us
    );
}

fn print_comparison(c: &Comparison) {
    println!();
    println!(
        "{:<11} {:>8} {:>9} {:>9} {:>9} {:>11} {:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}  goal",
        "policy",
        "p50 ms",
        "p99 ms",
        "max ms",
        "wait p99",
        "reserved",
        "busy",
        "wakes",
        "sleeps",
        "react p50",
        "react p99",
        "p99/fix",
        "resv/fix"
    );
    for (r, rel) in c.runs.iter().zip(&c.relative) {
        println!(
            "{:<11} {:>8.2} {:>9.2} {:>9.2} {:>9.3} {:>11.1} {:>9.1} {:>7} {:>7} {:>9} {:>9} {:>9.2} {:>9.2}  {}",
            r.policy,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.wait.p99_ms,
            r.reserved_vcpu_s,
            r.busy_vcpu_s,
            r.wakes,
            r.sleeps,
            ms_or_na(r.reaction.answered, r.reaction.time.p50_ms),
            ms_or_na(r.reaction.answered, r.reaction.time.p99_ms),
            rel.p99_ratio,
            rel.reserved_ratio,
            if rel.meets_goal { "yes" } else { "no" }
        );
    }
    println!(
        "(latency/wait in ms; reserved = vCPU-s incl. regular vCPUs, busy = worker vCPU-s running tasks; baseline `fixed` = all {} workers awake: p99 {:.2} ms, reserved {:.1} vCPU-s)",
        c.baseline.workers, c.baseline.latency.p99_ms, c.baseline.reserved_vcpu_s
    );
    println!(
        "goal: p99 <= {GOAL_P99_RATIO}x fixed, reserved <= {GOAL_RESERVED_RATIO}x fixed, reaction p99 <= {GOAL_REACTION_MS} ms -> {}",
        match &c.best {
            Some(b) => format!("MET (best: {b})"),
            None => "NOT MET".to_string(),
        }
    );
}
