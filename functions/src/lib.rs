//! Ditto's function catalog: FunctionBench-style kernels in pure Rust.
//!
//! Every kernel takes its parameters as a JSON object and returns a JSON object. The same
//! code runs natively (the host calls it through `ditto-catalog`) and inside the guest,
//! where each binary in `src/bin/` is a WebAssembly module (wasm32-wasip1) that reads the
//! parameters from stdin and prints the result on stdout (see [`cli`]).
//!
//! Every kernel is deterministic given its parameters (except `spin`, whose iteration count
//! depends on the clock), and produces bit-identical results natively and in WebAssembly:
//! they use only IEEE-exact float operations (`+ - * /`, `sqrt`) and the pure-Rust `libm`
//! for `sin`/`cos`. Missing parameters take defaults that run in a few milliseconds
//! natively; parameters of the wrong type, out of range or unknown are reported as an
//! [`Error`], never a panic, and the ranges keep linear memory below ~64 MiB.

use serde_json::Value;
use std::fmt;

pub mod cli;
pub mod kernels;
pub mod params;
mod util;

/// Why a function could not produce its result (bad parameters, failed self-check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// What a kernel returns.
pub type Result<T> = std::result::Result<T, Error>;

/// One catalog function: its name (also the name of its binary / WebAssembly module),
/// its parameters in one line, its default parameters as JSON, and its kernel.
#[derive(Clone, Copy)]
pub struct Spec {
    /// The function's name, e.g. `"matmul"`.
    pub name: &'static str,
    /// Its parameters, documented in one line.
    pub params: &'static str,
    /// Its default parameters, as a JSON object (what an empty `{}` means).
    pub default_params: &'static str,
    /// The kernel.
    pub run: fn(&Value) -> Result<Value>,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("default_params", &self.default_params)
            .finish_non_exhaustive()
    }
}

/// The catalog, in a fixed order (the `ditto-catalog` crate relies on it).
pub const CATALOG: &[Spec] = &[
    Spec {
        name: "noop",
        params: "none; returns {}",
        default_params: "{}",
        run: kernels::noop,
    },
    Spec {
        name: "echo",
        params: "any JSON object; returns it unchanged",
        default_params: "{}",
        run: kernels::echo,
    },
    Spec {
        name: "float_operation",
        params: "n: iterations of sin+cos+sqrt (default 100000, max 100000000)",
        default_params: r#"{"n":100000}"#,
        run: kernels::float_operation,
    },
    Spec {
        name: "matmul",
        params: "n: multiply two deterministic n×n f64 matrices (default 200, 1..=1024)",
        default_params: r#"{"n":200}"#,
        run: kernels::matmul,
    },
    Spec {
        name: "linpack",
        params: "n: LU-solve a deterministic n×n system, report residual (default 300, 1..=1024)",
        default_params: r#"{"n":300}"#,
        run: kernels::linpack,
    },
    Spec {
        name: "aes",
        params: "length: message bytes (default 16384, 1..=8 MiB), iterations: AES-128-CTR encrypt+decrypt rounds (default 16, 1..=100000)",
        default_params: r#"{"length":16384,"iterations":16}"#,
        run: kernels::aes,
    },
    Spec {
        name: "json",
        params: "rounds: serialise+parse round trips of a built-in ~9 KB document (default 100, 1..=100000)",
        default_params: r#"{"rounds":100}"#,
        run: kernels::json,
    },
    Spec {
        name: "compress",
        params: "size: bytes of generated text to deflate and inflate (default 131072, 1..=16 MiB)",
        default_params: r#"{"size":131072}"#,
        run: kernels::compress,
    },
    Spec {
        name: "html_template",
        params: "rows (default 1000, 1..=100000), cols (default 10, 1..=1000): render an HTML table, rows*cols <= 250000",
        default_params: r#"{"rows":1000,"cols":10}"#,
        run: kernels::html_template,
    },
    Spec {
        name: "fib",
        params: "n: naive recursive Fibonacci (default 30, max 40)",
        default_params: r#"{"n":30}"#,
        run: kernels::fib,
    },
    Spec {
        name: "spin",
        params: "ms: busy-loop until this many ms pass on the monotonic clock (default 10, max 60000)",
        default_params: r#"{"ms":10}"#,
        run: kernels::spin,
    },
];

/// The catalog entry called `name`.
pub fn find(name: &str) -> Option<&'static Spec> {
    CATALOG.iter().find(|s| s.name == name)
}

/// Run the catalog function `name` on `params` (natively).
pub fn run(name: &str, params: &Value) -> Result<Value> {
    let spec = find(name).ok_or_else(|| Error::new(format!("no catalog function `{name}`")))?;
    (spec.run)(params)
}
