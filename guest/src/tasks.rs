//! The built-in workloads: no-op, echo, integer spin, a floating-point loop, and the test
//! hooks that exercise the host's recovery paths (ping, fault, hang, bad message, panic).

use crate::wal::{Done, Task, TaskHandler, Worker};
use ditto_protocol::{bad_message, GuestMsgKind, TaskKind, TaskStatus, OUT_BUF_SIZE};

/// The handler for built-in tasks.
pub struct BuiltIn;

/// Integer busy work: `n` rounds of xorshift64 (the host's tests recompute it natively).
#[inline(never)]
pub fn spin(n: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Floating-point busy work (SSE2), `n` iterations.
#[inline(never)]
pub fn float_loop(n: u64) -> f64 {
    let mut x = 1.0f64;
    let mut acc = 0.0f64;
    for i in 0..n {
        x = x * 1.000_001 + 1.0 / ((i + 1) as f64);
        acc += x / (1.0 + acc * 1e-9);
    }
    acc
}

impl TaskHandler for BuiltIn {
    fn run(
        &mut self,
        w: &mut Worker,
        task: Task<'_>,
        out: &mut [u8],
    ) -> Result<Done, &'static str> {
        match task.kind {
            TaskKind::Noop => Ok(Done { len: 0, value: 0 }),
            TaskKind::Echo => {
                let n = task.input.len().min(out.len());
                out[..n].copy_from_slice(&task.input[..n]);
                Ok(Done {
                    len: n,
                    value: n as u64,
                })
            }
            TaskKind::Spin => Ok(Done {
                len: 0,
                value: spin(core::hint::black_box(task.arg)),
            }),
            TaskKind::Float => Ok(Done {
                len: 0,
                value: float_loop(core::hint::black_box(task.arg)).to_bits(),
            }),
            TaskKind::Ping => {
                for _ in 0..task.arg {
                    w.ping();
                }
                Ok(Done {
                    len: 0,
                    value: task.arg,
                })
            }
            TaskKind::Fault => raise(task.arg),
            TaskKind::Hang => loop {
                core::hint::spin_loop();
            },
            TaskKind::BadMessage => {
                let checkin = GuestMsgKind::CheckIn as u32;
                let ok = TaskStatus::Ok as u32;
                match task.arg {
                    bad_message::UNKNOWN_KIND => w.send_raw(0xBAD, 0xBAD, task.seq, ok, 0),
                    bad_message::OVERLONG => {
                        w.send_raw(checkin, checkin, task.seq, ok, OUT_BUF_SIZE as u32 + 1)
                    }
                    bad_message::BAD_STATUS => w.send_raw(checkin, checkin, task.seq, 77, 0),
                    bad_message::WRONG_SEQ => {
                        w.send_raw(checkin, checkin, task.seq ^ 0xFFFF, ok, 0)
                    }
                    bad_message::KIND_MISMATCH => {
                        w.send_raw(checkin, GuestMsgKind::Ping as u32, task.seq, ok, 0)
                    }
                    _ => return Err("unknown bad-message variant"),
                }
                // The host must not resume a vCPU after a malformed message; if it does,
                // say so rather than pretend the task worked.
                Err("host resumed the vCPU after a malformed message")
            }
            TaskKind::Panic => panic!("panic requested by task {}", task.seq),
            TaskKind::WasmLoad => Ok(crate::wasm::load(task.input, out)),
            TaskKind::WasmInit => Ok(crate::wasm::init(out, tsc_khz())),
            TaskKind::WasmInvoke => Ok(crate::wasm::invoke(task.input, out, tsc_khz())),
            TaskKind::RuntimeLog => Ok(crate::wasm::runtime_log(out)),
        }
    }
}

/// The TSC frequency the VMM recorded in the boot information (0 if unknown).
fn tsc_khz() -> u64 {
    let info = ditto_protocol::memory::BOOT_INFO_GPA as *const ditto_protocol::BootInfo;
    // SAFETY: the boot information block is mapped and written before launch.
    unsafe { core::ptr::addr_of!((*info).tsc_khz).read() as u64 }
}

/// Raise CPU exception `vector` at CPL3.
fn raise(vector: u64) -> Result<Done, &'static str> {
    // SAFETY (all arms): each instruction traps into the CPL0 stub, which reports the
    // fault; the host then resets this vCPU, so none of them returns.
    unsafe {
        match vector {
            0 => {
                core::arch::asm!("xor ecx, ecx", "div ecx", out("eax") _, out("ecx") _, out("edx") _)
            }
            3 => core::arch::asm!("int3"),
            6 => core::arch::asm!("ud2"),
            13 => core::arch::asm!("cli"),
            14 => {
                // The system area is supervisor-only: a user read faults.
                let _ = core::ptr::read_volatile(ditto_protocol::memory::PML4_GPA as *const u64);
            }
            ditto_protocol::fault_hook::EXEC_HEAP => {
                // A `ret` on the heap: no-execute, so the fetch faults (#PF).
                let code = alloc::vec![0xC3u8; 16];
                let f: extern "C" fn() = core::mem::transmute(code.as_ptr());
                f();
            }
            ditto_protocol::fault_hook::EXEC_WINDOW => {
                // Jump into this vCPU's mailbox (shared window): no-execute.
                let info = crate::arch::current_info_addr() as *const ditto_protocol::VcpuBootInfo;
                let mb = (*info).mailbox + ditto_protocol::memory::MAILBOX_IN_OFFSET;
                let f: extern "C" fn() = core::mem::transmute(mb as usize);
                f();
            }
            ditto_protocol::fault_hook::WRITE_TEXT => {
                // Overwrite our own code: text is read-only.
                core::ptr::write_volatile(raise as *const () as *mut u8, 0xCC);
            }
            ditto_protocol::fault_hook::WRITE_BOOT_INFO => {
                // Boot information is read-only to the guest.
                let info = crate::arch::current_info_addr() as *mut u64;
                core::ptr::write_volatile(info, 0);
            }
            _ => return Err("unsupported fault vector (use 0, 3, 6, 13, 14 or a fault_hook)"),
        }
    }
    Err("the requested exception did not happen")
}
