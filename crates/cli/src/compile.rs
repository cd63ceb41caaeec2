//! `ditto compile`: validate a WebAssembly module and compile it, offline, into the artifact
//! the guest loads; print the SHA-384 of both (what the guest's measurement log records), so
//! anyone can reproduce an artifact the platform stored and check it.

use anyhow::{Context, Result};
use clap::Args;
use ditto_protocol::engine as e;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `ditto compile`.
#[derive(Args)]
#[command(after_help = "\
Exit status: 0 on success, 1 if the module is refused or cannot be read or written, \
2 if --verify finds a different artifact.

The artifact is a wasmtime 48.0.8 precompiled module for x86_64-unknown-none with the \
fixed configuration in crates/protocol/src/engine.rs (SSE3..SSE4.2 and POPCNT, no AVX, \
explicit bounds checks): the same module gives the same bytes on any machine.")]
pub struct CompileArgs {
    /// The WebAssembly module (wasm32-wasip1 command: exports `_start`, imports only
    /// from wasi_snapshot_preview1; at most 64 MiB).
    #[arg(value_name = "MODULE.wasm")]
    module: PathBuf,
    /// Where to write the artifact [default: MODULE with the extension .cwasm].
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// Do not write an artifact; compare the compiled bytes with this stored artifact
    /// instead (exit status 2 if they differ).
    #[arg(long, value_name = "ARTIFACT", conflicts_with = "out")]
    verify: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    module: PathBuf,
    module_bytes: usize,
    module_sha384: String,
    artifact: Option<PathBuf>,
    artifact_bytes: usize,
    artifact_sha384: String,
    compile_ms: f64,
    verified: Option<bool>,
    wasmtime: &'static str,
    target: &'static str,
    isa_flags: &'static [&'static str],
    functions: u32,
    wasi_imports: Vec<String>,
}

/// Run `ditto compile`.
pub fn run(a: CompileArgs) -> Result<ExitCode> {
    let module =
        std::fs::read(&a.module).with_context(|| format!("cannot read {}", a.module.display()))?;
    let t = Instant::now();
    let (info, artifact) = ditto_compile::compile_validated(&module)
        .with_context(|| format!("{} refused", a.module.display()))?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut verified = None;
    let mut written = None;
    if let Some(stored) = &a.verify {
        let bytes =
            std::fs::read(stored).with_context(|| format!("cannot read {}", stored.display()))?;
        verified = Some(bytes == artifact.bytes);
    } else {
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| a.module.with_extension("cwasm"));
        std::fs::write(&out, &artifact.bytes)
            .with_context(|| format!("cannot write {}", out.display()))?;
        written = Some(out);
    }
    let r = Report {
        module: a.module.clone(),
        module_bytes: module.len(),
        module_sha384: hex::encode(artifact.module_sha384),
        artifact: written.clone(),
        artifact_bytes: artifact.bytes.len(),
        artifact_sha384: hex::encode(artifact.artifact_sha384),
        compile_ms,
        verified,
        wasmtime: e::WASMTIME_VERSION,
        target: e::TARGET,
        isa_flags: e::ISA_FLAGS_ENABLED,
        functions: info.functions,
        wasi_imports: info.wasi_imports,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("module   {}", r.module.display());
        println!(
            "  size   {} bytes, {} functions",
            r.module_bytes, r.functions
        );
        println!("  sha384 {}", r.module_sha384);
        match (&written, verified) {
            (Some(out), _) => println!("artifact {}", out.display()),
            (None, Some(true)) => println!("artifact (identical to the stored one)"),
            (None, _) => println!("artifact (DIFFERS from the stored one)"),
        }
        println!("  size   {} bytes", r.artifact_bytes);
        println!("  sha384 {}", r.artifact_sha384);
        println!(
            "compiled in {:.1} ms (wasmtime {}, {}, {})",
            r.compile_ms,
            r.wasmtime,
            r.target,
            r.isa_flags.join(",")
        );
    }
    Ok(if verified == Some(false) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
