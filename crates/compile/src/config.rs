//! The one wasmtime configuration Ditto compiles with, derived only from the constants in
//! [`ditto_protocol::engine`] (see its module doc for which settings the guest's loader
//! checks). Nothing here looks at the build machine: the target, every ISA flag, every
//! WebAssembly feature and every tunable that is recorded in an artifact is set
//! explicitly, so wasmtime's defaults (which depend on its cargo features and, for
//! `wasm_backtrace_details`, on an environment variable) cannot change the artifact.

use crate::CompileError;
use ditto_protocol::engine as e;
use std::sync::OnceLock;
use wasmparser::WasmFeatures;
use wasmtime::{Config, Engine, ModuleVersionStrategy, OptLevel, WasmBacktraceDetails};

/// The WebAssembly features Ditto enables ([`e::WASM_FEATURES`]), as wasmparser flags.
pub fn wasm_features() -> WasmFeatures {
    let mut f = WasmFeatures::empty();
    for name in e::WASM_FEATURES {
        // A name that is not a flag is caught by this crate's tests; skipping it here
        // only narrows the set (never widens what the guest must accept).
        if let Some(flag) = WasmFeatures::from_name(name) {
            f |= flag;
        }
    }
    f
}

/// The compiler configuration for guest artifacts.
pub fn engine_config() -> Result<Config, CompileError> {
    let mut c = Config::new();
    c.target(e::TARGET)
        .map_err(|err| CompileError::Compile(format!("target {}: {err}", e::TARGET)))?;
    c.module_version(ModuleVersionStrategy::Custom(e::MODULE_VERSION.into()))
        .map_err(|err| CompileError::Compile(format!("module version: {err}")))?;
    c.cranelift_opt_level(OptLevel::Speed);
    // SAFETY: these are Cranelift's x86-64 ISA flags. Code compiled with them is only run
    // by the guest's wasmtime, which refuses the artifact unless its `detect_host_feature`
    // reports every enabled flag present (wasmtime's `check_compatible_with_isa_flag`);
    // every disabled flag only removes instruction choices.
    unsafe {
        for flag in e::ISA_FLAGS_ENABLED {
            c.cranelift_flag_set(flag, "true");
        }
        for flag in e::ISA_FLAGS_DISABLED {
            c.cranelift_flag_set(flag, "false");
        }
    }
    // Exactly the protocol's feature set: everything off, then the list on.
    c.wasm_features(WasmFeatures::all(), false);
    c.wasm_features(wasm_features(), true);
    c.memory_reservation(e::MEMORY_RESERVATION)
        .memory_guard_size(e::MEMORY_GUARD_SIZE)
        .memory_reservation_for_growth(e::MEMORY_RESERVATION_FOR_GROWTH)
        .memory_may_move(e::MEMORY_MAY_MOVE)
        .guard_before_linear_memory(e::GUARD_BEFORE_LINEAR_MEMORY)
        .signals_based_traps(e::SIGNALS_BASED_TRAPS)
        .memory_init_cow(e::MEMORY_INIT_COW)
        .table_lazy_init(e::TABLE_LAZY_INIT)
        .consume_fuel(e::CONSUME_FUEL)
        .epoch_interruption(e::EPOCH_INTERRUPTION)
        .relaxed_simd_deterministic(e::RELAXED_SIMD_DETERMINISTIC)
        .debug_info(e::DEBUG_INFO)
        .debug_symbols(e::DEBUG_SYMBOLS)
        .wasm_backtrace_details(if e::WASM_BACKTRACE_DETAILS {
            WasmBacktraceDetails::Enable
        } else {
            WasmBacktraceDetails::Disable
        })
        .concurrency_support(e::CONCURRENCY_SUPPORT);
    Ok(c)
}

/// The compiling engine, built once per process.
pub fn engine() -> Result<&'static Engine, CompileError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let config = engine_config().map_err(|e| e.to_string())?;
            Engine::new(&config).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| CompileError::Compile(format!("building the compiler: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_name_is_a_wasmparser_flag() {
        for name in e::WASM_FEATURES {
            assert!(WasmFeatures::from_name(name).is_some(), "{name}");
        }
        let f = wasm_features();
        assert!(f.contains(WasmFeatures::SIMD | WasmFeatures::BULK_MEMORY));
        assert!(!f.contains(WasmFeatures::THREADS));
        assert!(!f.contains(WasmFeatures::GC_TYPES));
    }

    #[test]
    fn the_engine_builds() {
        engine().expect("the protocol's configuration is accepted by wasmtime");
    }
}
