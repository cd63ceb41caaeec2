//! Ditto's function catalog: the WebAssembly modules (wasm32-wasip1) built from `functions/`
//! by this crate's build script and embedded at compile time, plus the same kernels compiled
//! for the host ([`native`], [`run_native`]) so tests can compare in-guest results and times
//! with native ones.
//!
//! Module contract: JSON parameters on stdin (empty means `{}`), one JSON object on stdout,
//! log lines on stderr; on bad parameters the module writes `<name>: error: <message>` to
//! stderr, nothing to stdout, and exits with code 1 (`proc_exit(1)`). The modules import
//! only `environ_get`, `environ_sizes_get`, `fd_read`, `fd_write`, `clock_time_get` and
//! `proc_exit` from `wasi_snapshot_preview1`.

use serde_json::Value;

/// The kernels of the catalog, compiled for the host (the `ditto-functions` crate).
pub use ditto_functions as native;

/// One embedded WebAssembly module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Its name, e.g. `"matmul"`.
    pub name: &'static str,
    /// Its parameters, documented in one line.
    pub params: &'static str,
    /// Its default parameters as a JSON object (what `{}` or an empty stdin means).
    pub default_params: &'static str,
    /// The module (wasm32-wasip1, exports `_start` and `memory`).
    pub wasm: &'static [u8],
}

impl Function {
    /// The module compiled ahead of time for the guest (once per process, then cached),
    /// as the platform compiles an action at deploy time.
    pub fn compiled(
        &self,
    ) -> Result<&'static ditto_compile::Artifact, ditto_compile::CompileError> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static ditto_compile::Artifact>>> =
            OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(a) = cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(self.name)
        {
            return Ok(a);
        }
        // Compiled outside the lock; a concurrent compile of the same module gives the
        // same bytes, and the first insert wins.
        let artifact: &'static ditto_compile::Artifact =
            Box::leak(Box::new(ditto_compile::compile(self.wasm)?));
        let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
        Ok(*map.entry(self.name).or_insert(artifact))
    }

    /// [`Function::default_params`], parsed.
    pub fn default_params_json(&self) -> Value {
        serde_json::from_str(self.default_params).unwrap_or(Value::Null)
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

macro_rules! wasm {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".wasm"))
    };
}

/// Entry `$i` of `native::CATALOG`, checked at compile time to be called `$name`.
macro_rules! catalog_fn {
    ($i:literal, $name:literal) => {{
        const SPEC: native::Spec = native::CATALOG[$i];
        const _: () = assert!(str_eq(SPEC.name, $name), "catalog order mismatch");
        Function {
            name: $name,
            params: SPEC.params,
            default_params: SPEC.default_params,
            wasm: wasm!($name),
        }
    }};
}

macro_rules! test_module {
    ($name:literal, $doc:literal) => {
        Function {
            name: $name,
            params: $doc,
            default_params: "{}",
            wasm: wasm!($name),
        }
    };
}

static CATALOG: [Function; 11] = [
    catalog_fn!(0, "noop"),
    catalog_fn!(1, "echo"),
    catalog_fn!(2, "float_operation"),
    catalog_fn!(3, "matmul"),
    catalog_fn!(4, "linpack"),
    catalog_fn!(5, "aes"),
    catalog_fn!(6, "json"),
    catalog_fn!(7, "compress"),
    catalog_fn!(8, "html_template"),
    catalog_fn!(9, "fib"),
    catalog_fn!(10, "spin"),
];
const _: () = assert!(CATALOG.len() == native::CATALOG.len());

static TEST_MODULES: [Function; 8] = [
    test_module!(
        "trap_unreachable",
        "ignores its parameters; traps with `unreachable`"
    ),
    test_module!(
        "trap_oob",
        "ignores its parameters; out-of-bounds load at 0xFFFF_FFF0"
    ),
    test_module!("trap_div0", "ignores its parameters; i32.div_u by zero"),
    test_module!(
        "trap_stack",
        "ignores its parameters; unbounded recursion (stack exhaustion)"
    ),
    test_module!("no_json", "ignores its parameters; prints plain text"),
    test_module!(
        "big_output",
        "ignores its parameters; prints a 1.5 MiB JSON object"
    ),
    test_module!("loop_forever", "ignores its parameters; never returns"),
    test_module!(
        "not_dict",
        "ignores its parameters; prints the JSON number 42"
    ),
];

/// The catalog functions (not the test modules), in a fixed order.
pub fn all() -> &'static [Function] {
    &CATALOG
}

/// The deliberately misbehaving modules used by tests (traps, bad output, no end).
pub fn test_modules() -> &'static [Function] {
    &TEST_MODULES
}

/// The catalog function or test module called `name`.
pub fn get(name: &str) -> Option<&'static Function> {
    CATALOG
        .iter()
        .chain(TEST_MODULES.iter())
        .find(|f| f.name == name)
}

/// Run the catalog function `name` natively on `params` (`null` means `{}`), giving the
/// same JSON result as its module (bit for bit, except `spin`'s time-dependent fields).
pub fn run_native(name: &str, params: &Value) -> Result<Value, String> {
    native::run(name, params).map_err(|e| e.0)
}

#[cfg(test)]
mod tests;
