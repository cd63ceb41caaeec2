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
mod tasks;
mod wal;
mod wasm;

use ditto_protocol::VcpuBootInfo;

/// Entry point of every vCPU (and of a vCPU after the VMM reset it). The VMM passes this
/// vCPU's boot information in RDI, sets RSP to its stack and GS base to `info`.
#[no_mangle]
pub extern "C" fn _start(info: &'static VcpuBootInfo) -> ! {
    // SAFETY: we are this vCPU's `_start`, before its heap is initialised.
    unsafe { wasm::reset(info.vcpu_id as usize) };
    // SAFETY: `info` describes this vCPU's own heap, which nothing else uses, and the
    // heap is re-initialised only here, before any allocation on this vCPU.
    unsafe { heap::init_current(info) };
    wal::run(info, &mut tasks::BuiltIn)
}

#[panic_handler]
fn panic(panic_info: &core::panic::PanicInfo<'_>) -> ! {
    wal::report_panic(panic_info)
}

/// The precompiled `core`/`alloc` carry unwinding landing pads; with `panic = "abort"`
/// they are never entered, but the linker still needs these two symbols.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// See [`rust_eh_personality`]: unreachable, since nothing unwinds here.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
