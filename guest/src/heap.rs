//! The global allocator: one private heap per vCPU (the VMM carves them out of private
//! memory and names each in the vCPU's boot information). A vCPU allocates only from its
//! own heap, so there is no lock and no sharing between workers, and resetting one vCPU
//! (after a fault or a deadline kill) simply re-initialises its heap.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use ditto_protocol::{VcpuBootInfo, MAX_VCPUS};
use linked_list_allocator::Heap;

struct PerVcpuHeaps([UnsafeCell<Heap>; MAX_VCPUS]);

// SAFETY: entry `i` is only ever touched by vCPU `i` (selected through its own GS base),
// and a vCPU runs one thread of execution; there is no concurrent access to one entry.
unsafe impl Sync for PerVcpuHeaps {}

#[global_allocator]
static HEAPS: PerVcpuHeaps = PerVcpuHeaps([const { UnsafeCell::new(Heap::empty()) }; MAX_VCPUS]);

fn current() -> *mut Heap {
    let info = crate::arch::current_info_addr() as *const VcpuBootInfo;
    // SAFETY: GS points at this vCPU's boot info, written by the VMM before launch.
    let id = unsafe { (*info).vcpu_id } as usize;
    HEAPS.0[id % MAX_VCPUS].get()
}

/// Initialise the current vCPU's heap from its boot information.
///
/// # Safety
/// Called once per (re)start of this vCPU before any allocation; the heap range is this
/// vCPU's own private memory.
pub unsafe fn init_current(info: &VcpuBootInfo) {
    // SAFETY: per the contract, nobody else uses this heap or its memory.
    unsafe { (*current()).init(info.heap_base as *mut u8, info.heap_size as usize) };
}

// SAFETY: allocation and deallocation go to the calling vCPU's own heap only.
unsafe impl GlobalAlloc for PerVcpuHeaps {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: this vCPU's heap, accessed only by this vCPU.
        unsafe { (*current()).allocate_first_fit(layout) }
            .map(|p| p.as_ptr())
            .unwrap_or(core::ptr::null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = core::ptr::NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` on this same vCPU's heap.
            unsafe { (*current()).deallocate(p, layout) };
        }
    }
}
