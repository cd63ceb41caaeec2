//! Ditto's ahead-of-time compiler for WebAssembly functions, run on the host at deploy time.
//!
//! * [`validate`] checks a module fully (every function body) against Ditto's function
//!   contract: at most [`MAX_MODULE_BYTES`], exports `_start: () -> ()`, imports only from
//!   `wasi_snapshot_preview1`, only the WebAssembly features the guest enables.
//! * [`compile`] validates, then compiles with wasmtime + Cranelift for the guest
//!   (`x86_64-unknown-none`) into an [`Artifact`]: the bytes the guest deserializes, with the
//!   SHA-384 of the module and of the artifact (what the guest's measurement log records).
//! * [`engine_config`] is the one `wasmtime::Config` used, derived only from
//!   [`ditto_protocol::engine`] (no host CPU detection), so the same module gives the same
//!   artifact bytes on any build machine.
//! * [`inspect`] reads back the engine record an artifact carries (version, target, ISA
//!   flags, tunables), to check a stored artifact before shipping it.
//!
//! **Resource bounds.** A module is at most 64 MiB. wasmparser's implementation limits
//! (checked during validation, before Cranelift runs) bound the rest: a function body is at
//! most 7,654,321 bytes, at most 50,000 locals, 1,000,000 functions, 100,000 types and
//! imports/exports each. Compilation runs on the calling thread, one function after the
//! other (wasmtime's `parallel-compilation` feature is not built), so its memory is that of
//! one function's IR at a time plus the output. Cranelift's time is roughly linear in
//! function size, so a 64 MiB module takes seconds, not hours; a caller that must bound
//! time strictly (the platform at deploy time) should run `ditto compile` as a child process
//! with a deadline and kill it, which frees everything (a thread cannot be cancelled).

mod artifact;
mod config;
mod error;
mod inspect;
mod validate;

pub use artifact::{compile, compile_validated, Artifact};
pub use config::{engine, engine_config, wasm_features};
pub use ditto_protocol::engine::MAX_MODULE_BYTES;
pub use error::CompileError;
pub use inspect::{inspect, EngineRecord, InspectError, RecordedTunables};
pub use validate::{validate, ModuleInfo};

/// SHA-384 of `bytes`.
pub fn sha384(bytes: &[u8]) -> [u8; 48] {
    use sha2::{Digest, Sha384};
    Sha384::digest(bytes).into()
}
