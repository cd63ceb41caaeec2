//! WebAssembly functions inside the guest, on `wasmi` (no_std + alloc).
//!
//! - `WasmInit` (on a regular vCPU, once per VM): validate the module the host sent, check
//!   it exports `_start`, and keep its bytes in a VM-wide buffer in private memory. The host
//!   never hands the guest executable code; the guest decides what runs.
//! - `WasmInvoke` (on a worker): compile the module once per worker (cached in that
//!   worker's private heap; recompiled after a reset), then per invocation create a fresh
//!   `Store` and instance, so no state leaks between invocations, give it the JSON
//!   parameters on stdin, and run `_start` under a memory limit and a fuel budget.
//!
//! The WASI preview1 subset: args, environ, `fd_read` (stdin), `fd_write` (stdout,
//! stderr), `clock_time_get`, `random_get` (RDRAND), `proc_exit`; every other import from
//! `wasi_snapshot_preview1` returns ENOSYS.

use crate::arch;
use crate::wal::Done;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use ditto_protocol::wasm::{InvokeHeader, WasmCode, WasmOutcome, FLAG_STDERR_TRUNCATED};
use ditto_protocol::{IN_BUF_SIZE, MAX_VCPUS};
use wasmi::{
    Caller, CompilationMode, Config, Engine, Error, Extern, Linker, Module, Store, StoreLimits,
    StoreLimitsBuilder, Val,
};

const WASI: &str = "wasi_snapshot_preview1";
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const EIO: i32 = 29;
const ENOSYS: i32 = 52;

const EMPTY: u32 = 0;
const LOADING: u32 = 1;
const READY: u32 = 2;

/// The VM-wide module: written once by a regular vCPU, then only read.
struct ModuleBuf(UnsafeCell<[u8; IN_BUF_SIZE]>);
// SAFETY: written only between a successful EMPTY->LOADING compare-exchange and the
// READY release store; read only after an acquire load observes READY.
unsafe impl Sync for ModuleBuf {}
static MODULE: ModuleBuf = ModuleBuf(UnsafeCell::new([0; IN_BUF_SIZE]));
static MODULE_STATE: AtomicU32 = AtomicU32::new(EMPTY);
static MODULE_LEN: AtomicUsize = AtomicUsize::new(0);

fn module_bytes() -> Option<&'static [u8]> {
    if MODULE_STATE.load(Ordering::Acquire) != READY {
        return None;
    }
    let len = MODULE_LEN.load(Ordering::Acquire);
    // SAFETY: READY was observed, so the buffer is no longer written (see ModuleBuf).
    Some(unsafe { &(&*MODULE.0.get())[..len] })
}

/// Per-invocation state seen by the WASI functions.
struct Ctx {
    stdin: Vec<u8>,
    stdin_pos: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    max_stdout: usize,
    max_stderr: usize,
    stdout_overflow: bool,
    stderr_truncated: bool,
    limits: StoreLimits,
    realtime_ns: u64,
    tsc0: u64,
    tsc_khz: u64,
}

/// A worker's compiled module, kept across invocations.
struct Compiled {
    engine: Engine,
    module: Module,
    linker: Linker<Ctx>,
}

struct PerVcpu([UnsafeCell<Option<Compiled>>; MAX_VCPUS]);
// SAFETY: slot `i` is only touched by vCPU `i`.
unsafe impl Sync for PerVcpu {}
static COMPILED: PerVcpu = PerVcpu([const { UnsafeCell::new(None) }; MAX_VCPUS]);

/// Forget this vCPU's cached module without dropping it (its heap is about to be
/// re-initialised, so the old objects are gone). Called at every (re)start.
///
/// # Safety
/// Only from `_start` of vCPU `id`, before its heap is initialised.
pub unsafe fn reset(id: usize) {
    // SAFETY: per the contract, this vCPU owns the slot and nothing references it.
    unsafe { core::ptr::write(COMPILED.0[id % MAX_VCPUS].get(), None) };
}

fn now_ns(tsc_khz: u64) -> u64 {
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
    finish(
        out,
        WasmOutcome {
            code: code as u32,
            ..Default::default()
        },
        &[],
        &[],
        message,
    )
}

fn new_engine() -> Engine {
    let mut config = Config::default();
    config
        .consume_fuel(true)
        .compilation_mode(CompilationMode::Lazy);
    Engine::new(&config)
}

/// `WasmInit`: validate and keep the module.
pub fn init(input: &[u8], out: &mut [u8], tsc_khz: u64) -> Done {
    if MODULE_STATE
        .compare_exchange(EMPTY, LOADING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return fail(
            out,
            WasmCode::AlreadyLoaded,
            "A module is already loaded in this VM",
        );
    }
    let t0 = now_ns(tsc_khz);
    let engine = new_engine();
    let checked = Module::new(&engine, input)
        .map_err(|e| format!("Invalid WebAssembly module: {e}"))
        .and_then(
            |m| match m.get_export("_start").and_then(|e| e.func().cloned()) {
                Some(ty) if ty.params().is_empty() && ty.results().is_empty() => Ok(()),
                Some(_) => Err(String::from(
                    "The module's _start export must take and return nothing",
                )),
                None => Err(String::from(
                    "The module does not export a _start function (build it for wasm32-wasip1)",
                )),
            },
        );
    if let Err(msg) = checked {
        MODULE_STATE.store(EMPTY, Ordering::Release);
        return fail(out, WasmCode::BadModule, &msg);
    }
    // SAFETY: we hold LOADING, so nobody else reads or writes the buffer.
    unsafe { (&mut *MODULE.0.get())[..input.len()].copy_from_slice(input) };
    MODULE_LEN.store(input.len(), Ordering::Release);
    MODULE_STATE.store(READY, Ordering::Release);
    let o = WasmOutcome {
        compile_ns: now_ns(tsc_khz).saturating_sub(t0),
        ..Default::default()
    };
    finish(out, o, &[], &[], "")
}

fn memory(caller: &Caller<'_, Ctx>) -> Option<wasmi::Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// The `i`-th `(ptr, len)` entry of the iovec array at `iovs`, or `None` if it lies
/// outside memory.
fn iov(caller: &Caller<'_, Ctx>, mem: &wasmi::Memory, iovs: i32, i: i32) -> Option<(u32, u32)> {
    let mut b = [0u8; 8];
    let at = iovs.wrapping_add(i.wrapping_mul(8)) as u32 as usize;
    mem.read(caller, at, &mut b).ok()?;
    Some((
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// Write two little-endian u32 results (the shape of the `*_sizes_get` calls).
fn write_pair(caller: &mut Caller<'_, Ctx>, a: i32, va: u32, b: i32, vb: u32) -> i32 {
    match write_bytes(caller, a, &va.to_le_bytes()) {
        ESUCCESS => write_bytes(caller, b, &vb.to_le_bytes()),
        e => e,
    }
}

fn write_bytes(caller: &mut Caller<'_, Ctx>, addr: i32, bytes: &[u8]) -> i32 {
    match memory(caller) {
        Some(mem) if mem.write(&mut *caller, addr as u32 as usize, bytes).is_ok() => ESUCCESS,
        _ => EFAULT,
    }
}

/// The WASI functions implemented above (the rest get ENOSYS stubs).
const DEFINED: &[&str] = &[
    "args_sizes_get",
    "args_get",
    "environ_sizes_get",
    "environ_get",
    "fd_read",
    "fd_write",
    "clock_time_get",
    "random_get",
    "proc_exit",
];

fn build_linker(engine: &Engine, module: &Module) -> Result<Linker<Ctx>, Error> {
    let mut l = Linker::<Ctx>::new(engine);
    l.func_wrap(
        WASI,
        "args_sizes_get",
        // One argument, "function\0" (9 bytes).
        |mut c: Caller<'_, Ctx>, argc: i32, size: i32| -> i32 {
            write_pair(&mut c, argc, 1, size, 9)
        },
    )?;
    l.func_wrap(
        WASI,
        "args_get",
        |mut c: Caller<'_, Ctx>, argv: i32, buf: i32| -> i32 {
            let r = write_bytes(&mut c, buf, b"function\0");
            if r != ESUCCESS {
                return r;
            }
            write_bytes(&mut c, argv, &(buf as u32).to_le_bytes())
        },
    )?;
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: Caller<'_, Ctx>, count: i32, size: i32| -> i32 {
            write_pair(&mut c, count, 0, size, 0)
        },
    )?;
    l.func_wrap(
        WASI,
        "environ_get",
        |_: Caller<'_, Ctx>, _: i32, _: i32| -> i32 { ESUCCESS },
    )?;
    l.func_wrap(
        WASI,
        "fd_read",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, nread: i32| -> i32 {
            if fd != 0 {
                return EBADF;
            }
            let Some(mem) = memory(&c) else { return EFAULT };
            let mut total = 0u32;
            for i in 0..n.max(0) {
                let Some((ptr, len)) = iov(&c, &mem, iovs, i) else {
                    return EFAULT;
                };
                let ctx = c.data();
                let take = (len as usize).min(ctx.stdin.len() - ctx.stdin_pos);
                if take == 0 {
                    break;
                }
                let (pos, chunk) = (
                    ctx.stdin_pos,
                    ctx.stdin[ctx.stdin_pos..ctx.stdin_pos + take].to_vec(),
                );
                if mem.write(&mut c, ptr as usize, &chunk).is_err() {
                    return EFAULT;
                }
                c.data_mut().stdin_pos = pos + take;
                total += take as u32;
            }
            write_bytes(&mut c, nread, &total.to_le_bytes())
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_write",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, nwritten: i32| -> Result<i32, Error> {
            if fd != 1 && fd != 2 {
                return Ok(EBADF);
            }
            let Some(mem) = memory(&c) else {
                return Ok(EFAULT);
            };
            let mut total = 0u32;
            for i in 0..n.max(0) {
                let Some((ptr, len)) = iov(&c, &mem, iovs, i) else {
                    return Ok(EFAULT);
                };
                let (data, ctx) = mem.data_and_store_mut(&mut c);
                let Some(bytes) =
                    data.get(ptr as usize..(ptr as usize).saturating_add(len as usize))
                else {
                    return Ok(EFAULT);
                };
                if fd == 1 {
                    if ctx.stdout.len() + bytes.len() > ctx.max_stdout {
                        ctx.stdout_overflow = true;
                        return Err(Error::new("the function wrote more to stdout than allowed"));
                    }
                    ctx.stdout.extend_from_slice(bytes);
                } else {
                    let room = ctx.max_stderr - ctx.stderr.len();
                    if bytes.len() > room {
                        ctx.stderr_truncated = true;
                    }
                    ctx.stderr
                        .extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                total = total.wrapping_add(len);
            }
            Ok(write_bytes(&mut c, nwritten, &total.to_le_bytes()))
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: Caller<'_, Ctx>, id: i32, _precision: i64, out: i32| -> i32 {
            let ctx = c.data();
            if id > 3 {
                return EINVAL;
            }
            let elapsed = now_ns(ctx.tsc_khz).saturating_sub(ctx.tsc0);
            let t = ctx.realtime_ns.wrapping_add(elapsed);
            write_bytes(&mut c, out, &t.to_le_bytes())
        },
    )?;
    l.func_wrap(
        WASI,
        "random_get",
        |mut c: Caller<'_, Ctx>, buf: i32, len: i32| -> i32 {
            let mut bytes = Vec::new();
            while bytes.len() < len.max(0) as usize {
                match rdrand() {
                    Some(v) => bytes.extend_from_slice(&v.to_le_bytes()),
                    None => return EIO,
                }
            }
            bytes.truncate(len.max(0) as usize);
            write_bytes(&mut c, buf, &bytes)
        },
    )?;
    l.func_wrap(
        WASI,
        "proc_exit",
        |_: Caller<'_, Ctx>, code: i32| -> Result<(), Error> { Err(Error::i32_exit(code)) },
    )?;
    // Everything else the module imports from WASI: ENOSYS, with the right signature.
    for import in module.imports() {
        if import.module() != WASI {
            continue;
        }
        let Some(ty) = import.ty().func().cloned() else {
            continue;
        };
        if DEFINED.contains(&import.name()) {
            continue;
        }
        let returns_errno = ty.results().len() == 1;
        l.func_new(WASI, import.name(), ty, move |_, _, results: &mut [Val]| {
            if returns_errno {
                results[0] = Val::I32(ENOSYS);
            }
            Ok(())
        })?;
    }
    Ok(l)
}

/// RDRAND with the architectural retry loop.
fn rdrand() -> Option<u64> {
    for _ in 0..10 {
        let mut v = 0u64;
        // SAFETY: RDRAND is allowed at CPL3 and only writes `v`; its CPUID bit is set on
        // every host we run on, and a failure is reported through the carry flag.
        if unsafe { core::arch::x86_64::_rdrand64_step(&mut v) } == 1 {
            return Some(v);
        }
    }
    None
}

/// `WasmInvoke`: run the VM's module once in a fresh instance.
pub fn invoke(id: usize, input: &[u8], out: &mut [u8], tsc_khz: u64) -> Done {
    let h = size_of::<InvokeHeader>();
    if input.len() < h {
        return fail(
            out,
            WasmCode::Instantiate,
            "Invocation input lacks its header",
        );
    }
    let header: InvokeHeader = bytemuck::pod_read_unaligned(&input[..h]);
    let Some(bytes) = module_bytes() else {
        return fail(out, WasmCode::NoModule, "No module is loaded in this VM");
    };
    // SAFETY: slot `id` belongs to this vCPU.
    let slot = unsafe { &mut *COMPILED.0[id % MAX_VCPUS].get() };
    let mut compile_ns = 0;
    if slot.is_none() {
        let t0 = now_ns(tsc_khz);
        let engine = new_engine();
        let compiled = Module::new(&engine, bytes)
            .map_err(|e| format!("{e}"))
            .and_then(|module| {
                build_linker(&engine, &module)
                    .map(|linker| (module, linker))
                    .map_err(|e| format!("{e}"))
            });
        match compiled {
            Ok((module, linker)) => {
                *slot = Some(Compiled {
                    engine,
                    module,
                    linker,
                })
            }
            Err(e) => return fail(out, WasmCode::BadModule, &e),
        }
        compile_ns = now_ns(tsc_khz).saturating_sub(t0);
    }
    let Some(c) = slot.as_ref() else {
        return fail(out, WasmCode::BadModule, "module cache empty");
    };

    // Leave room in the output for the header, stderr and a message.
    let max_stderr = (header.max_stderr as usize).min(64 * 1024);
    let max_stdout =
        (header.max_stdout as usize).min(out.len() - size_of::<WasmOutcome>() - max_stderr - 1024);
    let ctx = Ctx {
        stdin: input[h..].to_vec(),
        stdin_pos: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
        max_stdout,
        max_stderr,
        stdout_overflow: false,
        stderr_truncated: false,
        limits: StoreLimitsBuilder::new()
            .memory_size(header.max_memory as usize)
            .instances(1)
            .trap_on_grow_failure(true)
            .build(),
        realtime_ns: header.realtime_ns,
        tsc0: now_ns(tsc_khz),
        tsc_khz,
    };
    let t_inst = now_ns(tsc_khz);
    let mut store = Store::new(&c.engine, ctx);
    store.limiter(|c| &mut c.limits);
    let fuel = if header.fuel == 0 {
        u64::MAX
    } else {
        header.fuel
    };
    let _ = store.set_fuel(fuel);
    let mut o = WasmOutcome {
        compile_ns,
        ..Default::default()
    };
    let instance = match c.linker.instantiate_and_start(&mut store, &c.module) {
        Ok(i) => i,
        Err(e) => {
            let msg = format!("Cannot instantiate the module: {e}");
            return finish(
                out,
                WasmOutcome {
                    code: WasmCode::Instantiate as u32,
                    ..o
                },
                &[],
                &[],
                &msg,
            );
        }
    };
    let start = match instance.get_typed_func::<(), ()>(&store, "_start") {
        Ok(f) => f,
        Err(_) => {
            return fail(
                out,
                WasmCode::BadModule,
                "The module does not export _start",
            )
        }
    };
    let t_run = now_ns(tsc_khz);
    o.instantiate_ns = t_run.saturating_sub(t_inst);
    let result = start.call(&mut store, ());
    o.run_ns = now_ns(tsc_khz).saturating_sub(t_run);
    o.fuel_used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let mut message = String::new();
    let code = match result {
        Ok(()) => WasmCode::Ok,
        Err(e) => match e.i32_exit_status() {
            Some(0) => WasmCode::Ok,
            Some(n) => {
                o.exit_code = n;
                WasmCode::Exit
            }
            None if store.data().stdout_overflow => {
                message = format!("The function wrote more than {max_stdout} bytes to stdout");
                WasmCode::OutputTooLarge
            }
            None if e.as_trap_code() == Some(wasmi::TrapCode::OutOfFuel) => {
                message = format!(
                    "The function exceeded its instruction budget of {} units",
                    header.fuel
                );
                WasmCode::OutOfFuel
            }
            None => {
                message = format!("{e}");
                WasmCode::Trap
            }
        },
    };
    o.code = code as u32;
    let ctx = store.data();
    if ctx.stderr_truncated {
        o.flags |= FLAG_STDERR_TRUNCATED;
    }
    finish(out, o, &ctx.stdout, &ctx.stderr, &message)
}
