//! The WebAssembly engine configuration that the host compiler (`crates/compile`,
//! wasmtime + Cranelift, std) and the guest runtime (wasmtime `no_std`, `runtime` +
//! `custom-virtual-memory`) must agree on, defined once. The host builds its
//! `wasmtime::Config` from these constants only (no host feature detection), compiles a
//! module into an artifact, and the guest deserializes it with an engine configured from the
//! same constants.
//!
//! # What wasmtime 48.0.8 checks when the guest deserializes an artifact
//!
//! An artifact is an ELF file whose `.wasmtime.engine` section records the compiler's
//! configuration (`crates/wasmtime/src/engine/serialization.rs`, `Metadata`). The loading
//! engine refuses the artifact unless:
//!
//! 1. **Version**: the section's version string equals the loader's
//!    `Config::module_version`. wasmtime's default records only the *major* version
//!    ("48"), so a 48.0.8 artifact would load into any 48.x runtime; both sides set
//!    `ModuleVersionStrategy::Custom(`[`MODULE_VERSION`]`)` instead, which names the exact
//!    wasmtime version and a revision of this configuration: a mismatched pin fails loudly
//!    ("Module was compiled with incompatible version ...") instead of loading.
//! 2. **Target**: same architecture and same operating system ([`TARGET`]).
//! 3. **Shared Cranelift flags**: a fixed set must have wasmtime's required values
//!    (`preserve_frame_pointers`, `enable_probestack`, `libcall_call_conv`...); wasmtime sets
//!    them itself, so neither side touches them. `opt_level`, `regalloc` and the like do not
//!    matter.
//! 4. **ISA flags**: every flag that is *on* in the artifact must be reported present by the
//!    loader's `Config::detect_host_feature` (the guest supplies that function; it is asked
//!    for the names in [`HOST_FEATURES_REQUIRED`]). Flags that are off never matter.
//! 5. **WebAssembly features**: the artifact's feature bits must be a subset of the loader's
//!    ([`WASM_FEATURES`]; both sides set them explicitly, because wasmtime's defaults
//!    depend on its cargo features, which differ between host and guest).
//! 6. **Tunables** (`crates/environ/src/tunables.rs`, `Metadata::check_tunables`), compared
//!    for *equality*: `memory_reservation` ([`MEMORY_RESERVATION`]), `memory_guard_size`
//!    ([`MEMORY_GUARD_SIZE`]), `memory_may_move` ([`MEMORY_MAY_MOVE`]),
//!    `guard_before_linear_memory` ([`GUARD_BEFORE_LINEAR_MEMORY`]), `signals_based_traps`
//!    ([`SIGNALS_BASED_TRAPS`]), `memory_init_cow` ([`MEMORY_INIT_COW`]), `table_lazy_init`
//!    ([`TABLE_LAZY_INIT`]), `consume_fuel` ([`CONSUME_FUEL`]), `epoch_interruption`
//!    ([`EPOCH_INTERRUPTION`]), `relaxed_simd_deterministic`
//!    ([`RELAXED_SIMD_DETERMINISTIC`]), `debug_native` / `debug_guest` / `debug_symbols`
//!    ([`DEBUG_INFO`], [`DEBUG_SYMBOLS`]), `parse_wasm_debuginfo` ([`WASM_BACKTRACE_DETAILS`]),
//!    `concurrency_support` ([`CONCURRENCY_SUPPORT`]), `inlining` and its two size thresholds
//!    (wasmtime defaults: neither side touches them), `winch_callable` (Cranelift on both:
//!    false), `recording` (false), `collector` (no GC: none), and the GC heap's reservation,
//!    guard, initial size and may-move (copied from the memory tunables when not configured:
//!    neither side configures them).
//!
//! # What the guest may choose at run time
//!
//! Not recorded or not compared, so the guest may set them differently from the host:
//!
//! * **`memory_reservation_for_growth`** ([`MEMORY_RESERVATION_FOR_GROWTH`] is only the
//!   host's value): wasmtime says "this doesn't affect compilation, it's just a runtime
//!   setting". The guest may reserve extra room at each (re)allocation of a linear memory to
//!   make `memory.grow` copy less.
//! * `gc_heap_reservation_for_growth`, `generate_address_map` (present or not, both load),
//!   `debug_adapter_modules`, `branch_hinting`, the metadata-for-asserts flags.
//! * Everything that is not a tunable: `max_wasm_stack`, the memory creator / allocation
//!   strategy, `x86_float_abi_ok(true)` (required by the guest's own `x86_64-unknown-none`
//!   check, not recorded in the artifact), `detect_host_feature`.
//!
//! **`memory_may_move` cannot differ**: it is compared. With a reservation of 0 it must be
//! `true` (a linear memory that may not move could never grow past its initial size).
//!
//! # ISA flags and the guest's CPU state
//!
//! The guest sets `CR4.OSFXSR` but not `CR4.OSXSAVE`/`XCR0`, so VEX-encoded (AVX)
//! instructions raise `#UD`. [`ISA_FLAGS_ENABLED`] is the x86-64-v2 level minus `cmpxchg16b`:
//! SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, all legacy-encoded. SSE4.1 is what keeps
//! `f32/f64.floor/ceil/trunc/nearest` native (`roundss`/`roundsd`): without it wasmtime calls
//! a builtin, which in a soft-float `x86_64-unknown-none` guest returns wrong values
//! silently. SSSE3 keeps `i8x16.swizzle`/`shuffle` native. `has_fma` stays off: Cranelift
//! only uses FMA when `has_avx && has_fma` (FMA3 is VEX-encoded), so it would change no code
//! and only add a CPU requirement; relaxed-SIMD `madd` is then a multiply and an add, never
//! a call, because [`RELAXED_SIMD_DETERMINISTIC`] is false. BMI1/BMI2 (VEX) and LZCNT stay
//! off as well; every flag in [`ISA_FLAGS_DISABLED`] is set to false explicitly so that
//! Cranelift's defaults cannot change the artifact.

/// The exact wasmtime version the artifacts are for; host and guest pin `=48.0.8`.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The version string recorded in every artifact and required by the loader
/// (`Config::module_version(ModuleVersionStrategy::Custom(..))` on both sides). Bump the
/// `ditto.N` part when any constant of this module changes, so old artifacts are refused
/// and recompiled rather than half-matched.
pub const MODULE_VERSION: &str = "wasmtime-48.0.8+ditto.1";

/// The target triple artifacts are compiled for: the guest's OS-less x86-64.
pub const TARGET: &str = "x86_64-unknown-none";

/// Cranelift x86-64 ISA flags turned on (legacy SSE encodings only; see the module doc).
pub const ISA_FLAGS_ENABLED: &[&str] = &[
    "has_sse3",
    "has_ssse3",
    "has_sse41",
    "has_sse42",
    "has_popcnt",
];

/// Cranelift x86-64 ISA flags turned off explicitly (AVX and other VEX encodings, FMA,
/// BMI, LZCNT, CMPXCHG16B).
pub const ISA_FLAGS_DISABLED: &[&str] = &[
    "has_cmpxchg16b",
    "has_avx",
    "has_avx2",
    "has_fma",
    "has_avx_vnni",
    "has_avx512bitalg",
    "has_avx512dq",
    "has_avx512vl",
    "has_avx512vbmi",
    "has_avx512f",
    "has_avx512vnni",
    "has_bmi1",
    "has_bmi2",
    "has_lzcnt",
];

/// The CPU features (Rust `std::arch` names) the guest's `detect_host_feature` must report
/// present for an artifact to load: one per entry of [`ISA_FLAGS_ENABLED`], in order.
pub const HOST_FEATURES_REQUIRED: &[&str] = &["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt"];

/// The WebAssembly features both engines enable, by `wasmparser::WasmFeatures` flag name;
/// every other feature is disabled. WebAssembly 2.0 (with SIMD) plus relaxed SIMD, tail
/// calls and extended constant expressions. Not: threads (no shared memory in the guest),
/// GC and exceptions (wasmtime's `gc` feature, not built), memory64, multi-memory, the
/// component model.
pub const WASM_FEATURES: &[&str] = &[
    "MUTABLE_GLOBAL",
    "SATURATING_FLOAT_TO_INT",
    "SIGN_EXTENSION",
    "REFERENCE_TYPES",
    "MULTI_VALUE",
    "BULK_MEMORY",
    "SIMD",
    "RELAXED_SIMD",
    "TAIL_CALL",
    "FLOATS",
    "EXTENDED_CONST",
];

/// `Config::memory_reservation`, bytes: no virtual reservation; a linear memory is
/// allocated at its current size (checked at deserialize time).
pub const MEMORY_RESERVATION: u64 = 0;

/// `Config::memory_guard_size`, bytes: no guard region; every access is bounds-checked
/// explicitly (checked at deserialize time).
pub const MEMORY_GUARD_SIZE: u64 = 0;

/// `Config::memory_reservation_for_growth`, bytes, as the host sets it. Not checked at
/// deserialize time: the guest may choose its own value.
pub const MEMORY_RESERVATION_FOR_GROWTH: u64 = 0;

/// `Config::memory_may_move`: linear memories are reallocated when they grow (checked).
pub const MEMORY_MAY_MOVE: bool = true;

/// `Config::guard_before_linear_memory` (checked).
pub const GUARD_BEFORE_LINEAR_MEMORY: bool = false;

/// `Config::signals_based_traps`: no signal handlers in the guest; bounds checks, division
/// checks and stack checks are explicit code (checked).
pub const SIGNALS_BASED_TRAPS: bool = false;

/// `Config::memory_init_cow`: data segments are copied in, no copy-on-write images
/// (checked).
pub const MEMORY_INIT_COW: bool = false;

/// `Config::table_lazy_init` (wasmtime's default; checked).
pub const TABLE_LAZY_INIT: bool = true;

/// `Config::consume_fuel`: deadlines are the VMM watchdog's job (checked).
pub const CONSUME_FUEL: bool = false;

/// `Config::epoch_interruption` (checked).
pub const EPOCH_INTERRUPTION: bool = false;

/// `Config::relaxed_simd_deterministic`: false so relaxed `madd` never becomes a call
/// (checked).
pub const RELAXED_SIMD_DETERMINISTIC: bool = false;

/// `Config::debug_info` (native DWARF; checked).
pub const DEBUG_INFO: bool = false;

/// `Config::debug_symbols`: native symbols for compiled functions in the artifact (checked).
pub const DEBUG_SYMBOLS: bool = false;

/// `Config::wasm_backtrace_details`: keep the module's DWARF for backtraces (checked as
/// `parse_wasm_debuginfo`). Off: wasm offsets in traps come from the address map.
pub const WASM_BACKTRACE_DETAILS: bool = false;

/// `Config::concurrency_support` (component-model async; checked).
pub const CONCURRENCY_SUPPORT: bool = false;

/// Largest module the host accepts, bytes (the guest's transfer limit is sized for it).
pub const MAX_MODULE_BYTES: usize = 64 << 20;

/// The only module a function may import from.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// The export the guest runs: a function of type `() -> ()`.
pub const ENTRY_POINT: &str = "_start";

const _: () = assert!(ISA_FLAGS_ENABLED.len() == HOST_FEATURES_REQUIRED.len());
const _: () = assert!(MEMORY_MAY_MOVE || MEMORY_RESERVATION != 0);
