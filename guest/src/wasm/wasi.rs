//! The WASI preview1 subset a function sees: args (`function`), an empty environment,
//! `fd_read` on stdin (the JSON parameters), `fd_write` on stdout (the result, bounded:
//! overflow is an error) and stderr (the logs, truncated), `clock_time_get` (TSC-based),
//! `random_get` (RDRAND) and `proc_exit`. Every other import from `wasi_snapshot_preview1`
//! gets a stub with the right signature that returns ENOSYS.

use super::Ctx;
use alloc::vec::Vec;
use wasmtime::{Caller, Engine, Error, Extern, Linker, Memory, Module, Val};

/// The WASI module name.
pub const WASI: &str = "wasi_snapshot_preview1";
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const EIO: i32 = 29;
const ENOSYS: i32 = 52;

/// `proc_exit(code)`: ends the run with that status.
#[derive(Debug)]
pub struct Exit(pub i32);

impl core::fmt::Display for Exit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "exit with status {}", self.0)
    }
}
impl core::error::Error for Exit {}

/// The function wrote more to stdout than allowed.
#[derive(Debug)]
pub struct OutputTooLarge;

impl core::fmt::Display for OutputTooLarge {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the function wrote more to stdout than allowed")
    }
}
impl core::error::Error for OutputTooLarge {}

fn memory(caller: &mut Caller<'_, Ctx>) -> Option<Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// The `i`-th `(ptr, len)` entry of the iovec array at `iovs`.
fn iov(caller: &mut Caller<'_, Ctx>, mem: &Memory, iovs: i32, i: i32) -> Option<(u32, u32)> {
    let mut b = [0u8; 8];
    let at = (iovs as u32 as usize).checked_add((i as u32 as usize).checked_mul(8)?)?;
    mem.read(&*caller, at, &mut b).ok()?;
    Some((
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

fn write_bytes(caller: &mut Caller<'_, Ctx>, addr: i32, bytes: &[u8]) -> i32 {
    match memory(caller) {
        Some(mem) if mem.write(&mut *caller, addr as u32 as usize, bytes).is_ok() => ESUCCESS,
        _ => EFAULT,
    }
}

/// Two little-endian u32 results (the shape of the `*_sizes_get` calls).
fn write_pair(caller: &mut Caller<'_, Ctx>, a: i32, va: u32, b: i32, vb: u32) -> i32 {
    match write_bytes(caller, a, &va.to_le_bytes()) {
        ESUCCESS => write_bytes(caller, b, &vb.to_le_bytes()),
        e => e,
    }
}

fn fd_read(c: &mut Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, nread: i32) -> i32 {
    if fd != 0 {
        return EBADF;
    }
    let Some(mem) = memory(c) else { return EFAULT };
    let mut total = 0u32;
    for i in 0..n.max(0) {
        let Some((ptr, len)) = iov(c, &mem, iovs, i) else {
            return EFAULT;
        };
        let (data, ctx) = mem.data_and_store_mut(&mut *c);
        let take = (len as usize).min(ctx.stdin.len() - ctx.stdin_pos);
        if take == 0 {
            break;
        }
        let Some(dst) = data.get_mut(ptr as usize..(ptr as usize).saturating_add(take)) else {
            return EFAULT;
        };
        dst.copy_from_slice(&ctx.stdin[ctx.stdin_pos..ctx.stdin_pos + take]);
        ctx.stdin_pos += take;
        total += take as u32;
    }
    write_bytes(c, nread, &total.to_le_bytes())
}

fn fd_write(
    c: &mut Caller<'_, Ctx>,
    fd: i32,
    iovs: i32,
    n: i32,
    nwritten: i32,
) -> Result<i32, Error> {
    if fd != 1 && fd != 2 {
        return Ok(EBADF);
    }
    let Some(mem) = memory(c) else {
        return Ok(EFAULT);
    };
    let mut total = 0u32;
    for i in 0..n.max(0) {
        let Some((ptr, len)) = iov(c, &mem, iovs, i) else {
            return Ok(EFAULT);
        };
        let (data, ctx) = mem.data_and_store_mut(&mut *c);
        let Some(bytes) = data.get(ptr as usize..(ptr as usize).saturating_add(len as usize))
        else {
            return Ok(EFAULT);
        };
        if fd == 1 {
            if ctx.stdout.len() + bytes.len() > ctx.max_stdout {
                ctx.stdout_overflow = true;
                return Err(Error::new(OutputTooLarge));
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
    Ok(write_bytes(c, nwritten, &total.to_le_bytes()))
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

/// The WASI functions implemented here (the rest get ENOSYS stubs).
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

/// A linker with the WASI subset for `module` (ENOSYS stubs for its other WASI imports).
pub fn linker(engine: &Engine, module: &Module) -> Result<Linker<Ctx>, Error> {
    let mut l = Linker::<Ctx>::new(engine);
    // One argument, "function\0" (9 bytes).
    l.func_wrap(
        WASI,
        "args_sizes_get",
        |mut c: Caller<'_, Ctx>, argc: i32, size: i32| write_pair(&mut c, argc, 1, size, 9),
    )?;
    l.func_wrap(
        WASI,
        "args_get",
        |mut c: Caller<'_, Ctx>, argv: i32, buf: i32| match write_bytes(&mut c, buf, b"function\0")
        {
            ESUCCESS => write_bytes(&mut c, argv, &(buf as u32).to_le_bytes()),
            e => e,
        },
    )?;
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: Caller<'_, Ctx>, count: i32, size: i32| write_pair(&mut c, count, 0, size, 0),
    )?;
    l.func_wrap(WASI, "environ_get", |_: Caller<'_, Ctx>, _: i32, _: i32| {
        ESUCCESS
    })?;
    l.func_wrap(
        WASI,
        "fd_read",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, nread: i32| {
            fd_read(&mut c, fd, iovs, n, nread)
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_write",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, nwritten: i32| {
            fd_write(&mut c, fd, iovs, n, nwritten)
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: Caller<'_, Ctx>, id: i32, _precision: i64, out: i32| {
            if !(0..=3).contains(&id) {
                return EINVAL;
            }
            let ctx = c.data();
            let elapsed = super::now_ns(ctx.tsc_khz).saturating_sub(ctx.tsc0);
            let t = ctx.realtime_ns.wrapping_add(elapsed);
            write_bytes(&mut c, out, &t.to_le_bytes())
        },
    )?;
    l.func_wrap(
        WASI,
        "random_get",
        |mut c: Caller<'_, Ctx>, buf: i32, len: i32| {
            let len = len.max(0) as usize;
            if len > (1 << 20) {
                return EINVAL;
            }
            let mut bytes = Vec::with_capacity(len + 8);
            while bytes.len() < len {
                match rdrand() {
                    Some(v) => bytes.extend_from_slice(&v.to_le_bytes()),
                    None => return EIO,
                }
            }
            bytes.truncate(len);
            write_bytes(&mut c, buf, &bytes)
        },
    )?;
    l.func_wrap(
        WASI,
        "proc_exit",
        |_: Caller<'_, Ctx>, code: i32| -> Result<(), Error> { Err(Error::new(Exit(code))) },
    )?;
    for import in module.imports() {
        if import.module() != WASI || DEFINED.contains(&import.name()) {
            continue;
        }
        let Some(ty) = import.ty().func().cloned() else {
            continue;
        };
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
