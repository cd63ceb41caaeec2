//! `ditto bench functions`: every catalog function in the guest against the same Rust code
//! native on the host. Per function: native median; in-guest execution (`_start`, guest
//! clock), instantiation and end-to-end invocation latency medians over warm invocations;
//! and the cold path (VM launch + module validation + first invocation).

use crate::micro::{guest_image, BenchError};
use crate::summary::Summary;
use ditto_vmm::function::FunctionLimits;
use ditto_vmm::{Vm, VmConfig};
use indicatif::ProgressBar;
use serde::Serialize;
use std::time::{Duration, Instant};

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
}

/// Run the comparison with `runs` measured runs per side.
pub fn run(runs: u32, progress: bool) -> Result<Vec<FunctionFigures>, BenchError> {
    let all = ditto_catalog::all();
    let bar = if progress {
        ProgressBar::new(all.len() as u64)
    } else {
        ProgressBar::hidden()
    };
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
        let t_cold = Instant::now();
        let cfg = VmConfig {
            regular: 1,
            workers: 1,
            active: 1,
            memory_mib: 512,
            ..VmConfig::default()
        };
        let vm = Vm::launch_image(cfg, guest_image()?)?;
        vm.load_compiled(f.wasm, &f.compiled().map_err(|e| fail(e.to_string()))?.bytes)?.map_err(|e| fail(e.to_string()))?;
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
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The figures as a Markdown table.
pub fn markdown(rows: &[FunctionFigures]) -> String {
    let mut m = String::from(
        "# ditto bench functions\n\nMedians; guest = wasmi interpreter inside the VM (guest clock), native = same Rust on the host.\n\n\
         | function | params | native ms | guest ms | guest/native | instantiate µs | warm invoke ms (p50 / p99) | cold ms | module KiB |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        m += &format!(
            "| {} | `{}` | {:.3} | {:.3} | {:.1}× | {:.0} | {:.3} / {:.3} | {:.1} | {} |\n",
            r.name,
            r.params,
            r.native_ns.p50 as f64 / 1e6,
            r.guest_exec_ns.p50 as f64 / 1e6,
            r.ratio,
            r.instantiate_ns.p50 as f64 / 1e3,
            r.invoke_ns.p50 as f64 / 1e6,
            r.invoke_ns.p99 as f64 / 1e6,
            r.cold_ns as f64 / 1e6,
            r.module_bytes / 1024
        );
    }
    m
}
