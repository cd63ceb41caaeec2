//! WebAssembly functions inside the guest, on wasmtime's no_std runtime running code that
//! Cranelift compiled ahead of time on the host. The guest never compiles and never
//! interprets.
//!
//! - `WasmLoad` (regular vCPU, once per chunk): the module's bytes are hashed as they
//!   arrive; the artifact's bytes are collected in the VM heap and hashed.
//! - `WasmInit` (regular vCPU, once per VM): both hashes go into the runtime measurement
//!   log ([`measure`]) *before* anything is mapped executable; wasmtime checks the artifact
//!   (header, engine configuration, CPU features) and copies it into the code arena, whose
//!   text pages the CPL0 gate seals read+execute (W^X, see [`crate::platform`]); the WASI
//!   linker and an instantiation recipe (`InstancePre`) are built once, in the VM heap.
//! - `WasmInvoke` (any worker): a fresh `Store` and instance per invocation in the worker's
//!   own heap and linear-memory region (no state leaks between invocations), JSON
//!   parameters on stdin, `_start`, under the action's memory limit. Deadlines are the
//!   VMM watchdog's job (kick and reset); there is no fuel in the hot path.

pub mod measure;
pub mod wasi;

use crate::arch;
use crate::heap;
use crate::sync;
use crate::wal::Done;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use ditto_protocol::wasm::{
    InvokeHeader, LoadChunk, LoadReport, WasmCode, WasmOutcome, FLAG_STDERR_TRUNCATED,
    LOG_ARTIFACT, LOG_MODULE, MAX_ARTIFACT_SIZE, MAX_MODULE_SIZE, PART_ARTIFACT, PART_MODULE,
};
use sha2::{Digest, Sha384};
use wasmtime::{Config, Engine, InstancePre, Module, ResourceLimiter, Store, Trap};

/// Per-invocation state seen by the WASI functions.
pub struct Ctx {
    stdin: Vec<u8>,
    stdin_pos: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    max_stdout: usize,
    max_stderr: usize,
    stdout_overflow: bool,
    stderr_truncated: bool,
    limits: Limits,
    realtime_ns: u64,
    tsc0: u64,
    tsc_khz: u64,
}

/// The action's memory limit, applied to every linear memory and table growth.
struct Limits {
    max_memory: usize,
    hit: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The function every worker instantiates (VM heap; never dropped).
struct Loaded {
    engine: Engine,
    pre: InstancePre<Ctx>,
}

/// Most stack wasm code may use (the vCPU's stack is 2 MiB; the rest is for the runtime).
const MAX_WASM_STACK: usize = 1 << 20;

const EMPTY: u32 = 0;
const LOADING: u32 = 1;
const READY: u32 = 2;

struct Slot(UnsafeCell<Option<Loaded>>);
// SAFETY: written only by the vCPU that moved STATE from LOADING to READY, before the
// release store; read only after an acquire load observes READY. `Loaded` is Sync.
unsafe impl Sync for Slot {}
static LOADED: Slot = Slot(UnsafeCell::new(None));
static STATE: AtomicU32 = AtomicU32::new(EMPTY);

/// Chunks received so far (under `PENDING_LOCK`).
struct Pending {
    module: Option<Sha384>,
    module_total: u64,
    module_got: u64,
    artifact: Vec<u8>,
    artifact_total: u64,
}

struct PendingSlot(UnsafeCell<Pending>);
// SAFETY: only touched under PENDING_LOCK.
unsafe impl Sync for PendingSlot {}
static PENDING: PendingSlot = PendingSlot(UnsafeCell::new(Pending {
    module: None,
    module_total: 0,
    module_got: 0,
    artifact: Vec::new(),
    artifact_total: 0,
}));
static PENDING_LOCK: AtomicUsize = AtomicUsize::new(0);

/// The current TSC in ns (0 if the rate is unknown).
pub fn now_ns(tsc_khz: u64) -> u64 {
    if tsc_khz == 0 {
        return 0;
    }
    (arch::rdtsc() as u128 * 1_000_000 / tsc_khz as u128) as u64
}

/// Write the outcome framing into `out`.
fn finish(out: &mut [u8], mut o: WasmOutcome, stdout: &[u8], stderr: &[u8], message: &str) -> Done {
    let h = size_of::<WasmOutcome>();
    let room = out.len() - h;
    let stdout = &stdout[..stdout.len().min(room)];
    let stderr = &stderr[..stderr.len().min(room - stdout.len())];
    let message = &message.as_bytes()[..message.len().min(room - stdout.len() - stderr.len())];
    o.stdout_len = stdout.len() as u32;
    o.stderr_len = stderr.len() as u32;
    o.message_len = message.len() as u32;
    let mut at = h;
    for part in [stdout, stderr, message] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    out[..h].copy_from_slice(bytemuck::bytes_of(&o));
    Done {
        len: at,
        value: o.code as u64,
    }
}

fn fail(out: &mut [u8], code: WasmCode, message: &str) -> Done {
    let o = WasmOutcome {
        code: code as u32,
        ..Default::default()
    };
    finish(out, o, &[], &[], message)
}

/// CPU features the engine may assume, read with CPUID (wasmtime checks them against
/// the flags the artifact was compiled with).
fn detect_feature(name: &str) -> Option<bool> {
    let (l1, l7) = (
        core::arch::x86_64::__cpuid(1),
        core::arch::x86_64::__cpuid_count(7, 0),
    );
    let ecx = |bit: u32| Some(l1.ecx & (1 << bit) != 0);
    let ebx7 = |bit: u32| Some(l7.ebx & (1 << bit) != 0);
    match name {
        "sse3" => ecx(0),
        "ssse3" => ecx(9),
        "fma" => ecx(12),
        "sse4.1" => ecx(19),
        "sse4.2" => ecx(20),
        "popcnt" => ecx(23),
        "bmi1" => ebx7(3),
        "bmi2" => ebx7(8),
        "lzcnt" => {
            let e = core::arch::x86_64::__cpuid(0x8000_0001);
            Some(e.ecx & (1 << 5) != 0)
        }
        // AVX needs OS support (XCR0) that this guest does not enable.
        "avx" | "avx2" | "avx512f" | "avx512vl" | "avx512dq" | "avx512bw" | "avx512vbmi" => {
            Some(false)
        }
        _ => None,
    }
}

fn engine() -> Result<Engine, String> {
    use ditto_protocol::engine as e;
    let mut c = Config::new();
    c.module_version(wasmtime::ModuleVersionStrategy::Custom(
        e::MODULE_VERSION.into(),
    ))
    .map_err(|err| format!("Cannot set the module version: {err}"))?;
    // Exactly the protocol's WebAssembly features, as the host compiler enables them.
    let mut features = wasmparser::WasmFeatures::empty();
    for name in e::WASM_FEATURES {
        if let Some(flag) = wasmparser::WasmFeatures::from_name(name) {
            features |= flag;
        }
    }
    c.wasm_features(wasmparser::WasmFeatures::all(), false)
        .wasm_features(features, true);
    // Every tunable wasmtime compares at deserialize time, from the constants the host
    // compiler uses too. Linear memories come from the worker's region
    // (`RegionMemories`): they grow in place to the action's limit, never moved or copied.
    c.consume_fuel(e::CONSUME_FUEL)
        .epoch_interruption(e::EPOCH_INTERRUPTION)
        .relaxed_simd_deterministic(e::RELAXED_SIMD_DETERMINISTIC)
        .debug_info(e::DEBUG_INFO)
        .debug_symbols(e::DEBUG_SYMBOLS)
        .wasm_backtrace_details(if e::WASM_BACKTRACE_DETAILS {
            wasmtime::WasmBacktraceDetails::Enable
        } else {
            wasmtime::WasmBacktraceDetails::Disable
        })
        .signals_based_traps(e::SIGNALS_BASED_TRAPS)
        .memory_reservation(e::MEMORY_RESERVATION)
        .memory_guard_size(e::MEMORY_GUARD_SIZE)
        .memory_may_move(e::MEMORY_MAY_MOVE)
        .guard_before_linear_memory(e::GUARD_BEFORE_LINEAR_MEMORY)
        .table_lazy_init(e::TABLE_LAZY_INIT)
        .memory_init_cow(e::MEMORY_INIT_COW)
        .memory_reservation_for_growth(0)
        .with_host_memory(alloc::sync::Arc::new(crate::platform::RegionMemories))
        .max_wasm_stack(MAX_WASM_STACK);
    // SAFETY: compiled code never calls float libcalls across the soft-float boundary:
    // the host compiles with SSE4.1 (ditto_protocol::engine::ISA_FLAGS_ENABLED), so
    // f32/f64 rounding is inline; and `detect_feature` reports what the CPU really has.
    unsafe {
        c.x86_float_abi_ok(true);
        c.detect_host_feature(detect_feature);
    }
    Engine::new(&c).map_err(|e| format!("Cannot create the engine: {e}"))
}

/// `WasmLoad`: take one chunk of the module or the artifact.
pub fn load(input: &[u8], out: &mut [u8]) -> Done {
    if STATE.load(Ordering::Acquire) != EMPTY {
        return fail(
            out,
            WasmCode::AlreadyLoaded,
            "A function is already loaded in this VM",
        );
    }
    let h = size_of::<LoadChunk>();
    if input.len() < h {
        return fail(out, WasmCode::BadModule, "Load chunk lacks its header");
    }
    let c: LoadChunk = bytemuck::pod_read_unaligned(&input[..h]);
    let data = &input[h..];
    sync::lock(&PENDING_LOCK);
    // SAFETY: we hold PENDING_LOCK.
    let p = unsafe { &mut *PENDING.0.get() };
    let r = load_chunk(p, &c, data);
    sync::unlock(&PENDING_LOCK);
    match r {
        Ok(()) => finish(out, WasmOutcome::default(), &[], &[], ""),
        Err(m) => fail(out, WasmCode::BadModule, &m),
    }
}

fn load_chunk(p: &mut Pending, c: &LoadChunk, data: &[u8]) -> Result<(), String> {
    let end = c
        .offset
        .checked_add(data.len() as u64)
        .ok_or("Chunk overflows")?;
    match c.part {
        PART_MODULE => {
            if c.total > MAX_MODULE_SIZE || end > c.total {
                return Err(format!(
                    "Module chunk out of range ({end} of {} bytes)",
                    c.total
                ));
            }
            if c.offset == 0 {
                p.module = Some(Sha384::new());
                p.module_total = c.total;
                p.module_got = 0;
            }
            if c.offset != p.module_got || c.total != p.module_total {
                return Err(String::from("Module chunks arrived out of order"));
            }
            p.module
                .as_mut()
                .ok_or("No module in progress")?
                .update(data);
            p.module_got = end;
        }
        PART_ARTIFACT => {
            if c.total > MAX_ARTIFACT_SIZE || end > c.total {
                return Err(format!(
                    "Artifact chunk out of range ({end} of {} bytes)",
                    c.total
                ));
            }
            if c.offset == 0 {
                heap::enter_vm_heap();
                p.artifact = Vec::new();
                let ok = p.artifact.try_reserve_exact(c.total as usize).is_ok();
                heap::leave_vm_heap();
                if !ok {
                    return Err(format!("No room for a {}-byte artifact", c.total));
                }
                p.artifact_total = c.total;
            }
            if c.offset != p.artifact.len() as u64 || c.total != p.artifact_total {
                return Err(String::from("Artifact chunks arrived out of order"));
            }
            p.artifact.extend_from_slice(data);
        }
        other => return Err(format!("Unknown load part {other}")),
    }
    Ok(())
}

/// `WasmInit`: measure, check and map the loaded artifact; build the instantiation recipe.
pub fn init(out: &mut [u8], tsc_khz: u64) -> Done {
    if STATE
        .compare_exchange(EMPTY, LOADING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return fail(
            out,
            WasmCode::AlreadyLoaded,
            "A function is already loaded in this VM",
        );
    }
    let t0 = now_ns(tsc_khz);
    sync::lock(&PENDING_LOCK);
    // SAFETY: we hold PENDING_LOCK.
    let p = unsafe { &mut *PENDING.0.get() };
    let r = finish_load(p);
    sync::unlock(&PENDING_LOCK);
    match r {
        Ok((loaded, report)) => {
            // SAFETY: we hold LOADING; nobody reads the slot before READY.
            unsafe { *LOADED.0.get() = Some(loaded) };
            STATE.store(READY, Ordering::Release);
            let o = WasmOutcome {
                compile_ns: now_ns(tsc_khz).saturating_sub(t0),
                ..Default::default()
            };
            finish(out, o, bytemuck::bytes_of(&report), &[], "")
        }
        Err(m) => {
            STATE.store(EMPTY, Ordering::Release);
            fail(out, WasmCode::BadModule, &m)
        }
    }
}

fn finish_load(p: &mut Pending) -> Result<(Loaded, LoadReport), String> {
    let module = p.module.take().ok_or("No module was sent")?;
    if p.module_got != p.module_total {
        return Err(format!(
            "Module incomplete ({} of {} bytes)",
            p.module_got, p.module_total
        ));
    }
    if p.artifact.is_empty() || p.artifact.len() as u64 != p.artifact_total {
        return Err(format!(
            "Artifact incomplete ({} of {} bytes)",
            p.artifact.len(),
            p.artifact_total
        ));
    }
    let report = LoadReport {
        module_sha384: module.finalize().into(),
        artifact_sha384: Sha384::digest(&p.artifact).into(),
        code_bytes: 0,
    };
    // Measure first: whatever is mapped executable below is already on the record.
    if !measure::extend(LOG_MODULE, p.module_total, report.module_sha384)
        || !measure::extend(LOG_ARTIFACT, p.artifact_total, report.artifact_sha384)
    {
        return Err(String::from("The runtime measurement log is full"));
    }
    heap::enter_vm_heap();
    let r = build(&p.artifact);
    p.artifact = Vec::new();
    heap::leave_vm_heap();
    let loaded = r?;
    Ok((
        loaded,
        LoadReport {
            code_bytes: crate::platform::sealed_bytes(),
            ..report
        },
    ))
}

fn build(artifact: &[u8]) -> Result<Loaded, String> {
    let engine = engine()?;
    // SAFETY: `deserialize` trusts the artifact's code. Its bytes are exactly the ones
    // hashed into the runtime measurement log above, wasmtime checks the header, version,
    // engine configuration and CPU features, and the code can only run where the CPL0
    // gate sealed it read+execute.
    let module = unsafe { Module::deserialize(&engine, artifact) }
        .map_err(|e| format!("The compiled artifact does not load: {e}"))?;
    match module.get_export("_start").and_then(|e| e.func().cloned()) {
        Some(ty) if ty.params().len() == 0 && ty.results().len() == 0 => {}
        Some(_) => {
            return Err(String::from(
                "The module's _start export must take and return nothing",
            ))
        }
        None => {
            return Err(String::from(
                "The module does not export a _start function (build it for wasm32-wasip1)",
            ))
        }
    }
    let linker = wasi::linker(&engine, &module).map_err(|e| format!("{e}"))?;
    let pre = linker
        .instantiate_pre(&module)
        .map_err(|e| format!("Cannot link the module: {e}"))?;
    Ok(Loaded { engine, pre })
}

/// `RuntimeLog`: the runtime measurement log.
pub fn runtime_log(out: &mut [u8]) -> Done {
    let len = measure::report(out);
    Done { len, value: 0 }
}

fn loaded() -> Option<&'static Loaded> {
    if STATE.load(Ordering::Acquire) != READY {
        return None;
    }
    // SAFETY: READY was observed, so the slot is written and never changes again.
    unsafe { (*LOADED.0.get()).as_ref() }
}

/// `WasmInvoke`: run the VM's function once in a fresh instance.
pub fn invoke(input: &[u8], out: &mut [u8], tsc_khz: u64) -> Done {
    let h = size_of::<InvokeHeader>();
    if input.len() < h {
        return fail(
            out,
            WasmCode::Instantiate,
            "Invocation input lacks its header",
        );
    }
    if sync::poisoned() {
        return fail(
            out,
            WasmCode::Poisoned,
            "This VM's shared state is unusable after a vCPU was killed while changing it",
        );
    }
    let header: InvokeHeader = bytemuck::pod_read_unaligned(&input[..h]);
    let Some(l) = loaded() else {
        return fail(out, WasmCode::NoModule, "No module is loaded in this VM");
    };
    // Leave room in the output for the header, stderr and a message.
    let max_stderr = (header.max_stderr as usize).min(64 * 1024);
    let max_stdout =
        (header.max_stdout as usize).min(out.len() - size_of::<WasmOutcome>() - max_stderr - 1024);
    let region = crate::platform::linear_region_size() as usize;
    let max_memory = (header.max_memory as usize).min(region);
    let ctx = Ctx {
        stdin: input[h..].to_vec(),
        stdin_pos: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
        max_stdout,
        max_stderr,
        stdout_overflow: false,
        stderr_truncated: false,
        limits: Limits {
            max_memory,
            hit: false,
        },
        realtime_ns: header.realtime_ns,
        tsc0: now_ns(tsc_khz),
        tsc_khz,
    };
    let t_inst = now_ns(tsc_khz);
    let mut store = Store::new(&l.engine, ctx);
    store.limiter(|c| &mut c.limits);
    let mut o = WasmOutcome::default();
    let instance = match l.pre.instantiate(&mut store) {
        Ok(i) => i,
        Err(e) => {
            let msg = if store.data().limits.hit {
                format!(
                    "The module needs more memory than its limit of {} MiB",
                    max_memory >> 20
                )
            } else {
                format!("Cannot instantiate the module: {e}")
            };
            o.code = WasmCode::Instantiate as u32;
            return finish(out, o, &[], &[], &msg);
        }
    };
    let Ok(start) = instance.get_typed_func::<(), ()>(&mut store, "_start") else {
        return fail(
            out,
            WasmCode::BadModule,
            "The module does not export _start",
        );
    };
    let t_run = now_ns(tsc_khz);
    o.instantiate_ns = t_run.saturating_sub(t_inst);
    let result = start.call(&mut store, ());
    o.run_ns = now_ns(tsc_khz).saturating_sub(t_run);
    let mut message = String::new();
    let code = match result {
        Ok(()) => WasmCode::Ok,
        Err(e) => {
            if let Some(wasi::Exit(n)) = e.downcast_ref::<wasi::Exit>() {
                o.exit_code = *n;
                if *n == 0 {
                    WasmCode::Ok
                } else {
                    WasmCode::Exit
                }
            } else if store.data().stdout_overflow {
                message = format!("The function wrote more than {max_stdout} bytes to stdout");
                WasmCode::OutputTooLarge
            } else {
                let trap = e.downcast_ref::<Trap>().copied();
                message = match trap {
                    _ if store.data().limits.hit => format!(
                        "The function exceeded its memory limit of {} MiB ({})",
                        max_memory >> 20,
                        trap.map(|t| format!("{t}"))
                            .unwrap_or_else(|| format!("{e}"))
                    ),
                    Some(Trap::StackOverflow) => {
                        String::from("The function exhausted its stack (call stack overflow)")
                    }
                    Some(t) => format!("{t}"),
                    None => format!("{e}"),
                };
                WasmCode::Trap
            }
        }
    };
    o.code = code as u32;
    let ctx = store.data();
    if ctx.stderr_truncated {
        o.flags |= FLAG_STDERR_TRUNCATED;
    }
    finish(out, o, &ctx.stdout, &ctx.stderr, &message)
}
