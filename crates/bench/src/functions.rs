//! `ditto bench functions`: every catalog function in the guest against the same Rust code
//! native on the host. Per function: native median; in-guest execution (`_start`, guest
//! clock), instantiation and end-to-end invocation latency medians over warm invocations;
//! the cold path (VM launch + module validation + first invocation); the same module under
//! Node's V8 through `node:wasi` (when `node` is installed; the column is skipped loudly
//! otherwise); and the host's ahead-of-time compile time and artifact size (`ditto-compile`).

use crate::micro::{guest_image, BenchError};
use crate::summary::Summary;
use ditto_vmm::function::FunctionLimits;
use ditto_vmm::{Vm, VmConfig};
use indicatif::ProgressBar;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Unmeasured V8 invocations before the measured ones (V8 tiers up lazily).
const V8_WARMUP: u32 = 2;

/// Compilations per module for the compile-time median.
const COMPILE_RUNS: usize = 3;

/// One function's figures.
#[derive(Clone, Debug, Serialize)]
pub struct FunctionFigures {
    /// Catalog name.
    pub name: String,
    /// Parameters used.
    pub params: serde_json::Value,
    /// Native run time, ns.
    pub native_ns: Summary,
    /// In-guest `_start` time (guest clock), ns.
    pub guest_exec_ns: Summary,
    /// Median guest exec / median native.
    pub ratio: f64,
    /// Instantiation per invocation, ns.
    pub instantiate_ns: Summary,
    /// Submit to result on the host, warm, ns.
    pub invoke_ns: Summary,
    /// Launch + validate + first invocation, ns.
    pub cold_ns: u64,
    /// Module size, bytes.
    pub module_bytes: usize,
    /// The same invocation under Node's V8 (`node:wasi`), `_start` time, ns; `None` when
    /// node is not installed.
    pub v8_exec_ns: Option<Summary>,
    /// Median guest exec / median V8 exec (below 1: the guest is faster).
    pub guest_over_v8: Option<f64>,
    /// Host ahead-of-time compile (validate + Cranelift), ns.
    pub compile_ns: Summary,
    /// Compiled artifact size, bytes.
    pub artifact_bytes: usize,
}

/// Whether the V8 column can be measured: `node --version`, or why not.
pub fn v8_available() -> Result<String, String> {
    crate::v8::node_version().ok_or_else(|| {
        "node is not installed (or does not run): the V8 column is SKIPPED; install Node.js \
         >= 20 for it"
            .to_string()
    })
}

/// Run the comparison with `runs` measured runs per side.
pub fn run(runs: u32, progress: bool) -> Result<Vec<FunctionFigures>, BenchError> {
    let all = ditto_catalog::all();
    let bar = if progress {
        ProgressBar::new(all.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    let node = v8_available();
    if let Err(why) = &node {
        eprintln!("WARNING: {why}");
    }
    let mut out = Vec::new();
    for f in all {
        bar.set_message(f.name);
        let params = f.default_params_json();
        let text = params.to_string();
        let fail = |e: String| BenchError::Measure(format!("{}: {e}", f.name));
        ditto_catalog::run_native(f.name, &params).map_err(fail)?;
        let mut native = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            ditto_catalog::run_native(f.name, &params).map_err(fail)?;
            native.push(t.elapsed().as_nanos() as u64);
        }
        // Compiled at deploy time on the platform: not part of a cold start.
        let artifact = f.compiled().map_err(|e| fail(e.to_string()))?;
        let t_cold = Instant::now();
        let cfg = VmConfig {
            regular: 1,
            workers: 1,
            active: 1,
            memory_mib: 512,
            ..VmConfig::default()
        };
        let vm = Vm::launch_image(cfg, guest_image()?)?;
        vm.load_compiled(f.wasm, &artifact.bytes)?
            .map_err(|e| fail(e.to_string()))?;
        let limits = FunctionLimits {
            timeout: Duration::from_secs(60),
            ..FunctionLimits::default()
        };
        vm.invoke(text.as_bytes(), limits)?
            .result
            .map_err(|e| fail(e.to_string()))?;
        let cold_ns = t_cold.elapsed().as_nanos() as u64;
        let (mut exec, mut inst, mut lat) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            let inv = vm.invoke(text.as_bytes(), limits)?;
            lat.push(t.elapsed().as_nanos() as u64);
            inv.result.map_err(|e| fail(e.to_string()))?;
            exec.push(inv.stats.exec_ns);
            inst.push(inv.stats.instantiate_ns);
        }
        drop(vm);
        let v8_exec_ns = match node {
            Ok(_) => {
                match crate::v8::run(f.wasm, &text, runs, V8_WARMUP, Duration::from_secs(600)) {
                    Ok(r) if r.exit_codes.iter().all(|&c| c == 0) => Some(Summary::of(&r.exec_ns)),
                    Ok(r) => {
                        return Err(fail(format!("under V8 it exited with {:?}", r.exit_codes)))
                    }
                    // node itself can die (seen: SIGABRT after ~20 linpack instances in one
                    // process); that is V8's column missing, not the guest's failure.
                    Err(e) => {
                        eprintln!("*** {}: no V8 figure: {e} ***", f.name);
                        None
                    }
                }
            }
            Err(_) => None,
        };
        let mut compile = Vec::new();
        let mut artifact_bytes = 0;
        for _ in 0..COMPILE_RUNS {
            let t = Instant::now();
            let a = ditto_compile::compile(f.wasm).map_err(|e| fail(e.to_string()))?;
            compile.push(t.elapsed().as_nanos() as u64);
            artifact_bytes = a.bytes.len();
        }
        let native_ns = Summary::of(&native);
        let guest_exec_ns = Summary::of(&exec);
        out.push(FunctionFigures {
            name: f.name.to_string(),
            params,
            ratio: guest_exec_ns.p50 as f64 / native_ns.p50.max(1) as f64,
            native_ns,
            guest_exec_ns,
            instantiate_ns: Summary::of(&inst),
            invoke_ns: Summary::of(&lat),
            cold_ns,
            module_bytes: f.wasm.len(),
            guest_over_v8: v8_exec_ns.map(|v| guest_exec_ns.p50 as f64 / v.p50.max(1) as f64),
            v8_exec_ns,
            compile_ns: Summary::of(&compile),
            artifact_bytes,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The figures as Markdown: the run-time table (with the V8 column when measured), then
/// the host compile table.
pub fn markdown(rows: &[FunctionFigures]) -> String {
    let v8 = rows.iter().any(|r| r.v8_exec_ns.is_some());
    let mut m = String::from(
        "# ditto bench functions\n\nMedians; guest = the module compiled ahead of time (Cranelift) and run by wasmtime inside the VM (guest clock), native = same Rust on the host, \
         V8 = the same module under Node's V8 through node:wasi (fresh instance per invocation, `_start` time, after warm-up).\n\n",
    );
    if !v8 {
        m += "**V8 column skipped: node is not installed.**\n\n";
    }
    m += "| function | params | native ms | guest ms | guest/native |";
    if v8 {
        m += " V8 ms (p50 / p99) | guest/V8 |";
    }
    m += " instantiate µs | warm invoke ms (p50 / p99) | cold ms | module KiB |\n|---|---|---|---|---|";
    if v8 {
        m += "---|---|";
    }
    m += "---|---|---|---|\n";
    for r in rows {
        m += &format!(
            "| {} | `{}` | {:.3} | {:.3} | {:.1}× |",
            r.name,
            r.params,
            r.native_ns.p50 as f64 / 1e6,
            r.guest_exec_ns.p50 as f64 / 1e6,
            r.ratio,
        );
        if v8 {
            match (r.v8_exec_ns, r.guest_over_v8) {
                (Some(v), Some(g)) => {
                    m += &format!(
                        " {:.3} / {:.3} | {:.1}× |",
                        v.p50 as f64 / 1e6,
                        v.p99 as f64 / 1e6,
                        g
                    )
                }
                _ => m += " – | – |",
            }
        }
        m += &format!(
            " {:.0} | {:.3} / {:.3} | {:.1} | {} |\n",
            r.instantiate_ns.p50 as f64 / 1e3,
            r.invoke_ns.p50 as f64 / 1e6,
            r.invoke_ns.p99 as f64 / 1e6,
            r.cold_ns as f64 / 1e6,
            r.module_bytes / 1024
        );
    }
    m += &format!(
        "\n## Host ahead-of-time compile (ditto-compile: validate + wasmtime {} Cranelift for {}, one thread)\n\n\
         | function | module KiB | compile ms (p50 / max of {COMPILE_RUNS}) | ms per MiB of module | artifact KiB | artifact/module |\n\
         |---|---|---|---|---|---|\n",
        ditto_protocol::engine::WASMTIME_VERSION,
        ditto_protocol::engine::TARGET,
    );
    for r in rows {
        let mib = r.module_bytes as f64 / (1024.0 * 1024.0);
        m += &format!(
            "| {} | {} | {:.1} / {:.1} | {:.0} | {} | {:.2}× |\n",
            r.name,
            r.module_bytes / 1024,
            r.compile_ns.p50 as f64 / 1e6,
            r.compile_ns.max as f64 / 1e6,
            r.compile_ns.p50 as f64 / 1e6 / mib.max(1e-9),
            r.artifact_bytes / 1024,
            r.artifact_bytes as f64 / r.module_bytes.max(1) as f64,
        );
    }
    m
}
