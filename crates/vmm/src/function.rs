//! The function contract on the host side: load a WebAssembly module into a VM (once,
//! validated by the guest on a regular vCPU), invoke it on a worker with JSON parameters
//! and limits, and turn the guest's untrusted outcome framing into a JSON result, log
//! lines, or an error classified the way OpenWhisk classifies them.

use crate::dispatch::{TaskError, TaskResult, TaskSpec, TaskTicket};
use crate::error::{Result, VmmError};
use crate::Vm;
use ditto_protocol::wasm::{
    decode_log, decode_outcome, InvokeHeader, LoadChunk, LoadReport, WasmCode,
    FLAG_STDERR_TRUNCATED, LOG_ARTIFACT, LOG_MODULE, MAX_ARTIFACT_SIZE, MAX_MODULE_SIZE,
    PART_ARTIFACT, PART_MODULE,
};
use ditto_protocol::{TaskKind, IN_BUF_SIZE, OUT_BUF_SIZE};
use serde::Serialize;
use std::time::Duration;

/// Limits of one invocation.
#[derive(Clone, Copy, Debug)]
pub struct FunctionLimits {
    /// Largest linear memory, bytes.
    pub max_memory: u64,
    /// Instruction budget: not supported by the compiled engine (deadlines bound run time
    /// instead); must be 0.
    pub fuel: u64,
    /// Largest result (stdout), bytes.
    pub max_output: u32,
    /// Largest log (stderr), bytes; more is truncated.
    pub max_logs: u32,
    /// Wall-clock deadline from when a worker starts the invocation.
    pub timeout: Duration,
}

impl Default for FunctionLimits {
    fn default() -> Self {
        Self {
            max_memory: 128 << 20,
            fuel: 0,
            max_output: (OUT_BUF_SIZE - 128 * 1024) as u32,
            max_logs: 64 * 1024,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Largest JSON parameters an invocation accepts, bytes.
pub const MAX_PARAMS: usize = IN_BUF_SIZE - std::mem::size_of::<InvokeHeader>();

/// Largest module a VM accepts, bytes.
pub const MAX_MODULE: usize = MAX_MODULE_SIZE as usize;

fn sha384(bytes: &[u8]) -> [u8; 48] {
    use sha2::{Digest, Sha384};
    Sha384::digest(bytes).into()
}

/// A finished control task of the load protocol: the outcome header and stdout, or the
/// function's error. The outer error is a VM failure.
fn control_outcome(
    r: TaskResult,
) -> Result<std::result::Result<(ditto_protocol::wasm::WasmOutcome, Vec<u8>), InvokeError>> {
    let out = match r.outcome {
        Ok(out) => out.output,
        Err(e) => {
            return Ok(Err(InvokeError::Internal(format!(
                "Loading the function failed: {e}"
            ))))
        }
    };
    Ok(match decode_outcome(&out) {
        Ok(d) if d.code == WasmCode::Ok => Ok((d.outcome, d.stdout.to_vec())),
        Ok(d) => Err(InvokeError::Developer(
            String::from_utf8_lossy(d.message).into_owned(),
        )),
        Err(e) => Err(InvokeError::Internal(format!(
            "Malformed outcome from the guest: {e}"
        ))),
    })
}

/// How an invocation went wrong, in OpenWhisk's three classes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum InvokeError {
    /// The function failed at run time (trap, non-zero exit, budget, timeout): status 1.
    #[error("{0}")]
    Application(String),
    /// The function or its module is unusable (bad module, no JSON object): status 2.
    #[error("{0}")]
    Developer(String),
    /// Ditto itself failed: status 3.
    #[error("{0}")]
    Internal(String),
}

impl InvokeError {
    /// OpenWhisk's `response.statusCode`.
    pub fn status_code(&self) -> u8 {
        match self {
            Self::Application(_) => 1,
            Self::Developer(_) => 2,
            Self::Internal(_) => 3,
        }
    }
}

/// Timings and placement of one invocation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InvokeStats {
    /// Worker vCPU that ran it.
    pub vcpu: Option<u32>,
    /// Time waiting for a worker, ns.
    pub queued_ns: u64,
    /// Dispatch to check-in, ns.
    pub run_ns: u64,
    /// Compiling the module on this worker (0 when cached), ns (guest clock).
    pub compile_ns: u64,
    /// Instantiation, ns (guest clock).
    pub instantiate_ns: u64,
    /// Running `_start`, ns (guest clock).
    pub exec_ns: u64,
    /// Fuel used.
    pub fuel_used: u64,
}

/// A finished invocation: result or error, plus logs and stats either way.
#[derive(Clone, Debug, Serialize)]
pub struct Invocation {
    /// The JSON result (object or array) or the error.
    pub result: std::result::Result<serde_json::Value, InvokeError>,
    /// stderr, as lines.
    pub logs: Vec<String>,
    /// Timings.
    pub stats: InvokeStats,
}

/// A pending invocation.
pub struct InvokeTicket {
    ticket: TaskTicket,
    limits: FunctionLimits,
}

impl InvokeTicket {
    /// Wait for the invocation to finish.
    pub fn wait(self) -> Invocation {
        interpret(self.ticket.wait(), &self.limits)
    }
}

fn now_realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What loading a function into a VM established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedFunction {
    /// Guest time to check and map the artifact (the OpenWhisk "init").
    pub init_time: Duration,
    /// SHA-384 of the module, as the guest computed it over the bytes it received.
    #[serde(with = "hex_bytes")]
    pub module_sha384: [u8; 48],
    /// SHA-384 of the artifact, as the guest computed it.
    #[serde(with = "hex_bytes")]
    pub artifact_sha384: [u8; 48],
    /// Bytes of code the guest sealed read+execute.
    pub code_bytes: u64,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8; 48], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

/// One entry of a VM's runtime measurement log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuntimeLogEntry {
    /// `module` or `artifact`.
    pub kind: &'static str,
    /// Bytes measured.
    pub len: u64,
    /// Their SHA-384.
    #[serde(with = "hex_bytes")]
    pub sha384: [u8; 48],
    /// The log's running digest after this entry.
    #[serde(with = "hex_bytes")]
    pub chained: [u8; 48],
}

/// Bytes of a part carried by one `WasmLoad` chunk.
const CHUNK: usize = IN_BUF_SIZE - std::mem::size_of::<LoadChunk>();

impl Vm {
    /// Load a function into this VM (the OpenWhisk "init", once per VM): `module` and
    /// the `artifact` Cranelift compiled from it travel as data, in chunks, to a regular
    /// vCPU, which hashes both into the runtime measurement log, has wasmtime check the
    /// artifact, and maps its code read+execute. The outer error is a VM failure; the
    /// inner one a function that cannot be loaded.
    pub fn load_compiled(
        &self,
        module: &[u8],
        artifact: &[u8],
    ) -> Result<std::result::Result<LoadedFunction, InvokeError>> {
        if module.len() as u64 > MAX_MODULE_SIZE || artifact.len() as u64 > MAX_ARTIFACT_SIZE {
            return Ok(Err(InvokeError::Developer(format!(
                "The module ({} bytes) or its compiled code ({} bytes) exceeds the limits \
                 of {MAX_MODULE_SIZE} and {MAX_ARTIFACT_SIZE} bytes",
                module.len(),
                artifact.len()
            ))));
        }
        for (part, bytes) in [(PART_MODULE, module), (PART_ARTIFACT, artifact)] {
            let mut offset = 0usize;
            loop {
                let chunk = &bytes[offset..(offset + CHUNK).min(bytes.len())];
                let header = LoadChunk {
                    part,
                    reserved: 0,
                    total: bytes.len() as u64,
                    offset: offset as u64,
                };
                let mut input = Vec::with_capacity(std::mem::size_of::<LoadChunk>() + chunk.len());
                input.extend_from_slice(bytemuck::bytes_of(&header));
                input.extend_from_slice(chunk);
                let spec = TaskSpec::new(TaskKind::WasmLoad, 0)
                    .with_input(input)
                    .with_timeout(Duration::from_secs(10));
                if let Err(e) = control_outcome(self.submit_control(spec)?.wait())? {
                    return Ok(Err(e));
                }
                offset += chunk.len();
                if offset >= bytes.len() {
                    break;
                }
            }
        }
        let spec = TaskSpec::new(TaskKind::WasmInit, 0).with_timeout(Duration::from_secs(120));
        let r = self.submit_control(spec)?.wait();
        Ok(control_outcome(r)?.and_then(|(d, stdout)| {
            if stdout.len() != std::mem::size_of::<LoadReport>() {
                return Err(InvokeError::Internal(
                    "The guest's load report is malformed".into(),
                ));
            }
            let report: LoadReport = bytemuck::pod_read_unaligned(&stdout);
            let loaded = LoadedFunction {
                init_time: Duration::from_nanos(d.compile_ns),
                module_sha384: report.module_sha384,
                artifact_sha384: report.artifact_sha384,
                code_bytes: report.code_bytes,
            };
            if loaded.module_sha384 != sha384(module) || loaded.artifact_sha384 != sha384(artifact)
            {
                return Err(InvokeError::Internal(
                    "The guest measured different bytes than were sent".into(),
                ));
            }
            Ok(loaded)
        }))
    }

    /// The VM's runtime measurement log (what code it was given after launch).
    pub fn runtime_log(&self) -> Result<Vec<RuntimeLogEntry>> {
        let spec = TaskSpec::new(TaskKind::RuntimeLog, 0).with_timeout(Duration::from_secs(10));
        let out = self
            .submit_control(spec)?
            .wait()
            .outcome
            .map_err(|e| VmmError::Guest(format!("Reading the runtime log failed: {e}")))?
            .output;
        let entries =
            decode_log(&out).map_err(|e| VmmError::Guest(format!("Malformed runtime log: {e}")))?;
        Ok(entries
            .iter()
            .map(|e| RuntimeLogEntry {
                kind: match e.kind {
                    LOG_MODULE => "module",
                    LOG_ARTIFACT => "artifact",
                    _ => "unknown",
                },
                len: e.len,
                sha384: e.sha384,
                chained: e.chained,
            })
            .collect())
    }

    /// Invoke the VM's function with JSON `params` (bytes) under `limits`.
    pub fn submit_invoke(&self, params: &[u8], limits: FunctionLimits) -> Result<InvokeTicket> {
        Ok(InvokeTicket {
            ticket: self.submit(invoke_spec(params, &limits)?)?,
            limits,
        })
    }

    /// Invoke, handing the finished [`Invocation`] to `done` (called once, without
    /// blocking, on a vCPU thread). Returns the task's sequence number.
    pub fn submit_invoke_with(
        &self,
        params: &[u8],
        limits: FunctionLimits,
        done: impl FnOnce(Invocation) + Send + 'static,
    ) -> Result<u64> {
        let spec = invoke_spec(params, &limits)?;
        self.submit_with(spec, Box::new(move |r| done(interpret(r, &limits))))
    }

    /// Invoke and wait.
    pub fn invoke(&self, params: &[u8], limits: FunctionLimits) -> Result<Invocation> {
        Ok(self.submit_invoke(params, limits)?.wait())
    }
}

fn invoke_spec(params: &[u8], limits: &FunctionLimits) -> Result<TaskSpec> {
    if limits.fuel != 0 {
        return Err(VmmError::InvalidArgument(
            "Instruction budgets (fuel) are not supported by the compiled engine; \
             bound run time with the timeout instead"
                .into(),
        ));
    }
    if params.len() > MAX_PARAMS {
        return Err(VmmError::InvalidArgument(format!(
            "Parameters of {} bytes exceed the limit of {MAX_PARAMS} bytes",
            params.len()
        )));
    }
    let header = InvokeHeader {
        max_memory: limits.max_memory,
        fuel: limits.fuel,
        realtime_ns: now_realtime_ns(),
        max_stdout: limits.max_output,
        max_stderr: limits.max_logs,
    };
    let mut input = Vec::with_capacity(std::mem::size_of::<InvokeHeader>() + params.len());
    input.extend_from_slice(bytemuck::bytes_of(&header));
    input.extend_from_slice(params);
    Ok(TaskSpec::new(TaskKind::WasmInvoke, 0)
        .with_input(input)
        .with_timeout(limits.timeout))
}

/// Parse a function's stdout as its result: the whole output, or else its last non-empty
/// line, must be a JSON object or array.
pub fn parse_result(stdout: &[u8]) -> std::result::Result<serde_json::Value, InvokeError> {
    let text = String::from_utf8_lossy(stdout);
    let candidates = [
        Some(text.trim()),
        text.lines().rev().map(str::trim).find(|l| !l.is_empty()),
    ];
    let mut parsed = None;
    for c in candidates.into_iter().flatten() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(c) {
            parsed = Some(v);
            break;
        }
    }
    match parsed {
        Some(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => Ok(v),
        Some(_) => Err(InvokeError::Developer(
            "The action did not return a dictionary or array.".into(),
        )),
        None if text.trim().is_empty() => Err(InvokeError::Developer(
            "The action did not produce a valid response: its output was empty.".into(),
        )),
        None => Err(InvokeError::Developer(
            "The action did not produce a valid JSON response.".into(),
        )),
    }
}

/// Turn a finished WasmInvoke task into an [`Invocation`].
pub fn interpret(r: TaskResult, limits: &FunctionLimits) -> Invocation {
    let mut stats = InvokeStats {
        vcpu: r.vcpu,
        queued_ns: r.queued.as_nanos() as u64,
        run_ns: r.run.as_nanos() as u64,
        ..Default::default()
    };
    let out = match r.outcome {
        Ok(o) => o.output,
        Err(TaskError::Timeout(_)) => {
            let ms = limits.timeout.as_millis();
            return Invocation {
                result: Err(InvokeError::Application(format!(
                    "The action exceeded its time limits of {ms} milliseconds."
                ))),
                logs: Vec::new(),
                stats,
            };
        }
        Err(e) => {
            return Invocation {
                result: Err(InvokeError::Internal(e.to_string())),
                logs: Vec::new(),
                stats,
            }
        }
    };
    let d = match decode_outcome(&out) {
        Ok(d) => d,
        Err(e) => {
            return Invocation {
                result: Err(InvokeError::Internal(format!(
                    "Malformed outcome from the guest: {e}"
                ))),
                logs: Vec::new(),
                stats,
            }
        }
    };
    stats.compile_ns = d.outcome.compile_ns;
    stats.instantiate_ns = d.outcome.instantiate_ns;
    stats.exec_ns = d.outcome.run_ns;
    stats.fuel_used = d.outcome.fuel_used;
    let mut logs: Vec<String> = String::from_utf8_lossy(d.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    if d.outcome.flags & FLAG_STDERR_TRUNCATED != 0 {
        logs.push(format!("[logs truncated at {} bytes]", limits.max_logs));
    }
    let message = String::from_utf8_lossy(d.message).into_owned();
    let result = match d.code {
        WasmCode::Ok => parse_result(d.stdout),
        WasmCode::Trap => Err(InvokeError::Application(format!(
            "The function trapped: {message}"
        ))),
        WasmCode::Exit => Err(InvokeError::Application(format!(
            "The function exited with status {}.",
            d.outcome.exit_code
        ))),
        WasmCode::OutputTooLarge | WasmCode::OutOfFuel => Err(InvokeError::Application(message)),
        WasmCode::NoModule
        | WasmCode::BadModule
        | WasmCode::Instantiate
        | WasmCode::AlreadyLoaded => Err(InvokeError::Developer(message)),
        WasmCode::Poisoned => Err(InvokeError::Internal(message)),
    };
    Invocation {
        result,
        logs,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_must_be_objects_or_arrays() {
        assert_eq!(
            parse_result(b"{\"a\":1}\n").expect("object"),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            parse_result(b"[1,2]").expect("array"),
            serde_json::json!([1, 2])
        );
        assert_eq!(
            parse_result(b"debug line\n{\"ok\":true}\n").expect("last line"),
            serde_json::json!({"ok": true})
        );
        let e = parse_result(b"42").unwrap_err();
        assert_eq!(
            e.to_string(),
            "The action did not return a dictionary or array."
        );
        assert_eq!(e.status_code(), 2);
        assert!(parse_result(b"hello")
            .unwrap_err()
            .to_string()
            .contains("valid JSON"));
        assert!(parse_result(b"").unwrap_err().to_string().contains("empty"));
    }
}
