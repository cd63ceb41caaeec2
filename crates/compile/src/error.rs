//! Why a module was refused or could not be compiled. The messages are written for the
//! tenant who deployed the module (they become the body of a 400 response).

use thiserror::Error;

/// A refused module, or a failed compilation.
#[derive(Debug, Error)]
pub enum CompileError {
    /// The module is larger than [`crate::MAX_MODULE_BYTES`].
    #[error("The module is {size} bytes; the limit is {max} bytes (64 MiB)")]
    TooLarge {
        /// Its size, bytes.
        size: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// Does not start with the WebAssembly magic bytes.
    #[error("The file is not a WebAssembly module: it does not start with the bytes \\0asm")]
    NotWasm,
    /// Not valid WebAssembly (bad header, bad section, a function body that does not
    /// validate, a feature Ditto does not enable...).
    #[error("The module is not valid WebAssembly: {message} (at byte offset {offset:#x})")]
    Invalid {
        /// wasmparser's description.
        message: String,
        /// Byte offset in the module.
        offset: usize,
    },
    /// A component, not a core module.
    #[error("The file is a WebAssembly component; Ditto runs core modules (wasm32-wasip1)")]
    Component,
    /// No `_start` function export.
    #[error("The module does not export a function `_start`; build it as a WASI command (wasm32-wasip1 binary)")]
    NoStart,
    /// `_start` exists but is not a function of type `() -> ()`.
    #[error(
        "The module's `_start` export {0}; it must be a function taking and returning nothing"
    )]
    BadStart(String),
    /// An import from a module other than `wasi_snapshot_preview1`.
    #[error("The module imports `{module}`.`{name}`; only imports from `wasi_snapshot_preview1` are available")]
    ForeignImport {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
    },
    /// An import from `wasi_snapshot_preview1` that is not a function.
    #[error(
        "The module imports `wasi_snapshot_preview1`.`{0}` as something other than a function"
    )]
    NonFunctionImport(String),
    /// wasmtime refused or failed to compile a module that passed validation, or the
    /// engine could not be built (a Ditto bug).
    #[error("Compilation failed: {0}")]
    Compile(String),
}
