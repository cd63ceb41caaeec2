//! Node's V8 as a reference engine: runs a catalog module through `node:wasi` the way the
//! guest runs it (module compiled once; per invocation a fresh instance, the JSON
//! parameters on stdin, `_start` to completion) and reports per-invocation times. Used by
//! `ditto bench functions` for its V8 column when `node` is installed.

use crate::micro::BenchError;
use serde::Deserialize;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The runner script, written next to the module for each run.
const RUNNER: &str = include_str!("v8/runner.cjs");

/// What the runner measured, measured runs only.
#[derive(Clone, Debug, Deserialize)]
pub struct V8Run {
    /// `new WebAssembly.Module` (V8's first-tier compile), ns.
    pub compile_ns: u64,
    /// `new WebAssembly.Instance` per invocation, ns.
    pub instantiate_ns: Vec<u64>,
    /// `wasi.start(instance)` per invocation, ns.
    pub exec_ns: Vec<u64>,
    /// The exit code of each invocation (0 when `_start` returned).
    pub exit_codes: Vec<i32>,
    /// stdout of the first measured invocation.
    pub first_stdout: String,
}

/// `node --version` if `node` is on the PATH and runs.
pub fn node_version() -> Option<String> {
    let out = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `wasm` under node `warmup + runs` times with `params` on stdin; kill node after
/// `timeout`.
pub fn run(
    wasm: &[u8],
    params: &str,
    runs: u32,
    warmup: u32,
    timeout: Duration,
) -> Result<V8Run, BenchError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let err =
        |what: &str, e: std::io::Error| BenchError::Measure(format!("V8 runner: {what}: {e}"));
    let dir = std::env::temp_dir().join(format!(
        "ditto-v8-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| err("scratch directory", e))?;
    let scratch = Scratch(dir);
    let file = |name: &str| scratch.0.join(name);
    std::fs::write(file("runner.cjs"), RUNNER).map_err(|e| err("write runner", e))?;
    std::fs::write(file("module.wasm"), wasm).map_err(|e| err("write module", e))?;
    std::fs::write(file("params.json"), params).map_err(|e| err("write params", e))?;
    let result_path = file("result.json");
    let log = std::fs::File::create(file("node.log")).map_err(|e| err("log file", e))?;
    let stdout = std::fs::File::create(&result_path).map_err(|e| err("result file", e))?;
    let mut child = Command::new("node")
        .arg("--no-warnings")
        .arg(file("runner.cjs"))
        .arg(file("module.wasm"))
        .arg(file("params.json"))
        .arg(&scratch.0)
        .arg(runs.to_string())
        .arg(warmup.to_string())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .map_err(|e| err("spawn node", e))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| err("wait for node", e))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Measure(format!(
                    "V8 runner: node did not finish within {timeout:?}"
                )));
            }
            // Polling a child process: a bench, not a race; 5 ms is far below run times.
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    if !status.success() {
        let log = std::fs::read_to_string(file("node.log")).unwrap_or_default();
        return Err(BenchError::Measure(format!(
            "V8 runner: node exited with {status}: {}",
            log.trim()
        )));
    }
    let text = std::fs::read_to_string(&result_path).map_err(|e| err("read result", e))?;
    let run: V8Run = serde_json::from_str(text.trim())
        .map_err(|e| BenchError::Measure(format!("V8 runner: bad result {text:?}: {e}")))?;
    if run.exec_ns.len() != runs as usize {
        return Err(BenchError::Measure(format!(
            "V8 runner: {} samples, expected {runs}",
            run.exec_ns.len()
        )));
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_runs_under_node_and_returns_its_parameters() {
        if node_version().is_none() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "node is required under CI"
            );
            eprintln!("SKIPPED: node is not installed, the V8 runner cannot be tested");
            return;
        }
        let echo = ditto_catalog::get("echo").expect("echo");
        let r = run(echo.wasm, r#"{"v8":[1,2]}"#, 3, 1, Duration::from_secs(60))
            .expect("node runs echo");
        assert_eq!(r.exec_ns.len(), 3);
        assert_eq!(r.instantiate_ns.len(), 3);
        assert_eq!(r.exit_codes, vec![0, 0, 0]);
        let out: serde_json::Value = serde_json::from_str(&r.first_stdout).expect("JSON");
        assert_eq!(out, serde_json::json!({"v8": [1, 2]}));
        // A trap fails the run with node's message.
        let trap = ditto_catalog::get("trap_unreachable").expect("module");
        assert!(
            run(trap.wasm, "{}", 1, 0, Duration::from_secs(60)).is_err(),
            "a trap is an error"
        );
    }
}
