//! `ditto vm run`: boot an elastic VM, run tasks on its workers, print per-vCPU statistics
//! and the launch measurement.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ditto_protocol::TaskKind;
use ditto_vmm::{TaskSpec, Vm, VmConfig};
use serde::Serialize;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `ditto vm ...`
#[derive(Subcommand)]
pub enum VmCommand {
    /// Boot a VM, run tasks on its worker vCPUs, print statistics and the measurement.
    ///
    /// Exit status: 0 when every task succeeded, 2 when some task failed, 1 on an error
    /// (invalid configuration, no KVM, launch failure).
    Run(RunArgs),
}

/// Arguments of `ditto vm run`.
#[derive(Args)]
pub struct RunArgs {
    /// Regular vCPUs (always awake, run no tasks); at least 1.
    #[arg(long, short = 'm', default_value_t = 1)]
    regular: u32,
    /// Worker vCPUs (run tasks; the hypervisor can sleep them); regular + workers <= 64.
    #[arg(long, short = 'n', default_value_t = 4)]
    workers: u32,
    /// Workers awake at start (default: all).
    #[arg(long, short = 'k')]
    active: Option<u32>,
    /// Number of tasks to run.
    #[arg(long, short = 't', default_value_t = 100)]
    tasks: u32,
    /// The task: noop, echo:TEXT, spin:ITERS, float:ITERS, fault:VECTOR, hang, panic.
    #[arg(long, default_value = "spin:100000")]
    task: String,
    /// Per-task deadline in milliseconds (a task past it is killed, its worker reset).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Private guest memory in MiB (image, stacks, heaps, code arena; the rest is split
    /// among the workers as their linear-memory regions). Default: enough for every worker
    /// to grow a linear memory to --max-memory-mib. Untouched memory costs the host nothing.
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<u64>,
    /// Run this WebAssembly module (wasm32-wasip1, JSON on stdin -> JSON on stdout)
    /// instead of built-in tasks; it is validated in the guest once, then invoked.
    #[arg(long, value_name = "FILE")]
    wasm: Option<std::path::PathBuf>,
    /// JSON parameters for each invocation (with --wasm).
    #[arg(long, default_value = "{}", value_name = "JSON")]
    params: String,
    /// Number of invocations (with --wasm).
    #[arg(long, default_value_t = 1)]
    invocations: u32,
    /// Largest linear memory per invocation in MiB (with --wasm).
    #[arg(long, default_value_t = 128)]
    max_memory_mib: u64,
    /// KVM device.
    #[arg(long, default_value = "/dev/kvm", env = "DITTO_KVM")]
    kvm: String,
    /// Scheduling policy deciding how many workers are awake: ditto (the paper's
    /// threshold policy), fixed, queue, predictive. Without it the active count stays.
    #[arg(long)]
    policy: Option<String>,
    /// Policy option KEY=VALUE (repeatable), e.g. --policy-opt idle_timeout=5ms.
    #[arg(long = "policy-opt", value_name = "KEY=VALUE")]
    policy_opt: Vec<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Parse a task description like `spin:1000`.
pub fn parse_task(s: &str) -> Result<TaskSpec> {
    let (name, arg) = match s.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let num = |what: &str| -> Result<u64> {
        let a = arg.with_context(|| format!("task '{name}' needs a number: {name}:{what}"))?;
        a.parse::<u64>()
            .with_context(|| format!("'{a}' is not a valid {what} for task '{name}'"))
    };
    Ok(match name {
        "noop" => TaskSpec::new(TaskKind::Noop, 0),
        "echo" => TaskSpec::new(TaskKind::Echo, 0).with_input(arg.unwrap_or("").as_bytes().to_vec()),
        "spin" => TaskSpec::new(TaskKind::Spin, num("ITERS")?),
        "float" => TaskSpec::new(TaskKind::Float, num("ITERS")?),
        "fault" => TaskSpec::new(TaskKind::Fault, num("VECTOR")?),
        "hang" => TaskSpec::new(TaskKind::Hang, 0),
        "panic" => TaskSpec::new(TaskKind::Panic, 0),
        other => bail!("unknown task '{other}' (expected noop, echo:TEXT, spin:ITERS, float:ITERS, fault:VECTOR, hang or panic)"),
    })
}

#[derive(Serialize)]
struct RunReport {
    tasks_completed: u64,
    tasks_failed: u64,
    measurement: String,
    measured_entries: u64,
    launch_ms: f64,
    decisions: Vec<ditto_sched::DecisionRecord>,
    wall_ms: f64,
    tasks_per_s: f64,
    errors: Vec<String>,
    vcpus: Vec<ditto_vmm::VcpuStats>,
}

/// Run a `ditto vm` command.
pub fn run(cmd: VmCommand) -> Result<ExitCode> {
    match cmd {
        VmCommand::Run(a) => run_vm(a),
    }
}

fn run_vm(a: RunArgs) -> Result<ExitCode> {
    if let Some(path) = a.wasm.clone() {
        return run_wasm(&a, &path);
    }
    let mut spec = parse_task(&a.task)?;
    if let Some(ms) = a.timeout_ms {
        spec = spec.with_timeout(Duration::from_millis(ms));
    }
    let vm = launch(&a)?;
    let t0 = Instant::now();
    let tickets = (0..a.tasks)
        .map(|_| vm.submit(spec.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut errors = Vec::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    for t in tickets {
        match t.wait().outcome {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                if errors.len() < 10 {
                    errors.push(e.to_string());
                }
            }
        }
    }
    let wall = t0.elapsed();
    let report = RunReport {
        tasks_completed: ok,
        tasks_failed: failed,
        measurement: vm.measurement_hex(),
        measured_entries: vm.measured_entries(),
        decisions: vm.decisions(),
        launch_ms: vm.launch_time().as_secs_f64() * 1e3,
        wall_ms: wall.as_secs_f64() * 1e3,
        tasks_per_s: a.tasks as f64 / wall.as_secs_f64().max(1e-9),
        errors,
        vcpus: vm.shutdown(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn launch(a: &RunArgs) -> Result<Vm> {
    let mut cfg = VmConfig {
        regular: a.regular,
        workers: a.workers,
        active: a.active.unwrap_or(a.workers),
        kvm_path: a.kvm.clone(),
        ..VmConfig::default()
    }
    .with_linear_memory(a.max_memory_mib + 8);
    if let Some(m) = a.memory_mib {
        cfg.memory_mib = m;
    }
    let vm = Vm::launch(cfg, ditto_guest_image::GUEST_ELF)?;
    if let Some(name) = &a.policy {
        let opts = a
            .policy_opt
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect::<Option<Vec<_>>>()
            .context("--policy-opt takes KEY=VALUE")?;
        let policy = ditto_sched::build_policy(name, &opts)
            .map_err(|e| anyhow::anyhow!("{e}\n{}", ditto_sched::policy_help()))?;
        vm.set_policy(policy, None)?;
    }
    Ok(vm)
}

#[derive(Serialize)]
struct WasmReport {
    tasks_completed: u64,
    tasks_failed: u64,
    measurement: String,
    launch_ms: f64,
    load_ms: f64,
    wall_ms: f64,
    invocations: Vec<InvocationReport>,
    vcpus: Vec<ditto_vmm::VcpuStats>,
}

#[derive(Serialize)]
struct InvocationReport {
    result: Option<serde_json::Value>,
    error: Option<String>,
    status_code: u8,
    logs: Vec<String>,
    latency_ms: f64,
    stats: ditto_vmm::function::InvokeStats,
}

fn run_wasm(a: &RunArgs, path: &std::path::Path) -> Result<ExitCode> {
    let module = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str::<serde_json::Value>(&a.params).context("--params is not valid JSON")?;
    let limits = ditto_vmm::function::FunctionLimits {
        max_memory: a.max_memory_mib << 20,
        timeout: Duration::from_millis(a.timeout_ms.unwrap_or(60_000)),
        ..Default::default()
    };
    let t_compile = Instant::now();
    let artifact =
        ditto_compile::compile(&module).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    tracing::info!(
        ms = t_compile.elapsed().as_secs_f64() * 1e3,
        bytes = artifact.bytes.len(),
        "compiled ahead of time"
    );
    let vm = launch(a)?;
    let t_load = Instant::now();
    if let Err(e) = vm.load_compiled(&module, &artifact.bytes)? {
        bail!("{}: {e}", path.display());
    }
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    let t0 = Instant::now();
    let tickets = (0..a.invocations)
        .map(|_| {
            vm.submit_invoke(a.params.as_bytes(), limits)
                .map(|t| (Instant::now(), t))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut invocations = Vec::new();
    for (start, t) in tickets {
        let inv = t.wait();
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        let (result, error, status_code) = match inv.result {
            Ok(v) => (Some(v), None, 0),
            Err(e) => (None, Some(e.to_string()), e.status_code()),
        };
        invocations.push(InvocationReport {
            result,
            error,
            status_code,
            logs: inv.logs,
            latency_ms,
            stats: inv.stats,
        });
    }
    let failed = invocations.iter().filter(|i| i.error.is_some()).count() as u64;
    let report = WasmReport {
        tasks_completed: invocations.len() as u64 - failed,
        tasks_failed: failed,
        measurement: vm.measurement_hex(),
        launch_ms: vm.launch_time().as_secs_f64() * 1e3,
        load_ms,
        wall_ms: t0.elapsed().as_secs_f64() * 1e3,
        invocations,
        vcpus: vm.shutdown(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("launch measurement (SHA-384): {}", report.measurement);
        println!(
            "launched in {:.2} ms, module validated in {:.2} ms; {} invocations ok, {} failed in {:.1} ms",
            report.launch_ms, report.load_ms, report.tasks_completed, report.tasks_failed, report.wall_ms
        );
        for (i, inv) in report.invocations.iter().enumerate().take(20) {
            let what = match (&inv.result, &inv.error) {
                (Some(v), _) => v.to_string(),
                (_, Some(e)) => format!("error (status {}): {e}", inv.status_code),
                _ => String::new(),
            };
            println!(
                "#{i:<3} {:>8.2} ms on vCPU {:<2} (compile {:.2} ms, instantiate {:.3} ms, run {:.3} ms): {what}",
                inv.latency_ms,
                inv.stats.vcpu.map(|v| v.to_string()).unwrap_or_default(),
                inv.stats.compile_ns as f64 / 1e6,
                inv.stats.instantiate_ns as f64 / 1e6,
                inv.stats.exec_ns as f64 / 1e6
            );
            for l in &inv.logs {
                println!("      log: {l}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn print_table(r: &RunReport) {
    println!(
        "launch measurement (SHA-384, {} entries): {}",
        r.measured_entries, r.measurement
    );
    if !r.decisions.is_empty() {
        let wakes = r
            .decisions
            .iter()
            .filter(|d| d.action == ditto_sched::Action::Wake)
            .count();
        println!(
            "policy decisions: {} ({} wake, {} sleep); last: {:?}",
            r.decisions.len(),
            wakes,
            r.decisions.len() - wakes,
            r.decisions.last().map(|d| &d.reason)
        );
    }
    println!(
        "launched in {:.2} ms; {} tasks completed, {} failed in {:.1} ms ({:.0} tasks/s)\n",
        r.launch_ms, r.tasks_completed, r.tasks_failed, r.wall_ms, r.tasks_per_s
    );
    println!(
        "{:>4} {:<8} {:<11} {:>8} {:>7} {:>9} {:>8} {:>7} {:>11} {:>11} {:>11}",
        "vcpu",
        "kind",
        "state",
        "tasks",
        "failed",
        "checkins",
        "exits",
        "resets",
        "busy ms",
        "asleep ms",
        "reserved ms"
    );
    for v in &r.vcpus {
        let state = v.state.map(|s| format!("{s:?}")).unwrap_or_default();
        println!(
            "{:>4} {:<8} {:<11} {:>8} {:>7} {:>9} {:>8} {:>7} {:>11.2} {:>11.2} {:>11.2}",
            v.id,
            v.kind,
            state,
            v.tasks,
            v.tasks_failed,
            v.checkins,
            v.exits,
            v.resets,
            v.busy_ns as f64 / 1e6,
            v.asleep_ns as f64 / 1e6,
            v.reserved_ns as f64 / 1e6
        );
    }
    for e in &r.errors {
        println!("error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_task_specs() {
        assert_eq!(parse_task("spin:42").expect("valid").arg, 42);
        assert_eq!(parse_task("noop").expect("valid").kind, TaskKind::Noop);
        assert_eq!(parse_task("echo:hi").expect("valid").input, b"hi");
        assert!(parse_task("spin").is_err());
        assert!(parse_task("spin:x").is_err());
        assert!(parse_task("bogus")
            .unwrap_err()
            .to_string()
            .contains("unknown task"));
    }
}
