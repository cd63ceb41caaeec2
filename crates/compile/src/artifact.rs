//! Compiling a validated module into the artifact the guest loads, and hashing both.

use crate::{config, sha384, validate, CompileError, ModuleInfo};

/// A compiled module, ready to store with its action and ship to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// wasmtime's precompiled module (an ELF file for `x86_64-unknown-none`).
    pub bytes: Vec<u8>,
    /// SHA-384 of the WebAssembly module it was compiled from.
    pub module_sha384: [u8; 48],
    /// SHA-384 of [`Artifact::bytes`].
    pub artifact_sha384: [u8; 48],
}

/// Validate `module` (see [`validate`]) and compile it for the guest.
pub fn compile(module: &[u8]) -> Result<Artifact, CompileError> {
    compile_validated(module).map(|(_, a)| a)
}

/// [`compile`], also returning what validation learned.
pub fn compile_validated(module: &[u8]) -> Result<(ModuleInfo, Artifact), CompileError> {
    let info = validate(module)?;
    let engine = config::engine()?;
    let bytes = engine
        .precompile_module(module)
        .map_err(|e| CompileError::Compile(format!("{e:#}")))?;
    let artifact = Artifact {
        module_sha384: sha384(module),
        artifact_sha384: sha384(&bytes),
        bytes,
    };
    Ok((info, artifact))
}
