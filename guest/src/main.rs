//! Ditto's guest runtime: a freestanding program with no OS, entered by the VMM on every
//! vCPU at CPL3 in long mode. There is no kernel: the VMM prepared page tables, GDT, IDT
//! and TSS from the host, and the only privileged code is the exception stubs in
//! [`arch`]. Each vCPU runs [`wal::run`] with the built-in task handler of [`tasks`].
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod heap;
mod mem;
mod platform;
mod sync;
mod tasks;
mod wal;
mod wasm;

use ditto_protocol::VcpuBootInfo;

/// Entry point of every vCPU (and of a vCPU after the VMM reset it). The VMM passes this
/// vCPU's boot information in RDI, sets RSP to its stack and GS base to `info`.
#[no_mangle]
pub extern "C" fn _start(info: &'static VcpuBootInfo) -> ! {
    // Give back locks a reset left held, and forget this worker's linear memories.
    sync::release_held();
    platform::reset_current();
    // SAFETY: `info` describes this vCPU's own heap, which nothing else uses, and the
    // heap is re-initialised only here, before any allocation on this vCPU.
    unsafe { heap::init_current(info) };
    wal::run(info, &mut tasks::BuiltIn)
}

#[panic_handler]
fn panic(panic_info: &core::panic::PanicInfo<'_>) -> ! {
    wal::report_panic(panic_info)
}
