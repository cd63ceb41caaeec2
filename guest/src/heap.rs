//! The global allocator: one private heap per vCPU plus one VM-wide heap.
//!
//! A vCPU allocates from its own heap (the VMM carves them out of private memory and
//! names each in the vCPU's boot information), so workers never contend. The VM-wide heap
//! holds what all workers share: the loaded function's engine, module and instantiation
//! recipe, built once by a regular vCPU between [`enter_vm_heap`] and [`leave_vm_heap`].
//! A free goes back to the heap that owns the address, whichever vCPU frees it; each heap
//! has its own spin lock (uncontended in the common case). Resetting a vCPU re-initialises
//! only its own heap.

use crate::sync;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use ditto_protocol::{BootInfo, VcpuBootInfo, MAX_VCPUS};
use linked_list_allocator::Heap;

struct Locked {
    lock: AtomicUsize,
    base: AtomicU64,
    end: AtomicU64,
    heap: UnsafeCell<Heap>,
}

impl Locked {
    const fn new() -> Self {
        Self {
            lock: AtomicUsize::new(0),
            base: AtomicU64::new(0),
            end: AtomicU64::new(0),
            heap: UnsafeCell::new(Heap::empty()),
        }
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as u64;
        p >= self.base.load(Ordering::Relaxed) && p < self.end.load(Ordering::Relaxed)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        sync::lock(&self.lock);
        // SAFETY: the lock gives exclusive access to the heap.
        let r = f(unsafe { &mut *self.heap.get() });
        sync::unlock(&self.lock);
        r
    }
}

struct Heaps {
    vcpus: [Locked; MAX_VCPUS],
    vm: Locked,
    vm_mode: [AtomicBool; MAX_VCPUS],
}

// SAFETY: every heap is behind its own lock; the range fields are atomics.
unsafe impl Sync for Heaps {}

#[global_allocator]
static HEAPS: Heaps = Heaps {
    vcpus: [const { Locked::new() }; MAX_VCPUS],
    vm: Locked::new(),
    vm_mode: [const { AtomicBool::new(false) }; MAX_VCPUS],
};
static VM_HEAP_INIT: AtomicBool = AtomicBool::new(false);

/// Initialise the current vCPU's heap from its boot information, and the VM-wide heap if
/// nobody has yet.
///
/// # Safety
/// Called once per (re)start of this vCPU, after [`sync::release_held`] and before any
/// allocation; the heap range is this vCPU's own private memory.
pub unsafe fn init_current(info: &VcpuBootInfo) {
    let id = info.vcpu_id as usize % MAX_VCPUS;
    let h = &HEAPS.vcpus[id];
    HEAPS.vm_mode[id].store(false, Ordering::Relaxed);
    h.base.store(info.heap_base, Ordering::Relaxed);
    h.end
        .store(info.heap_base + info.heap_size, Ordering::Relaxed);
    // SAFETY: per the contract, nobody else uses this heap or its memory now.
    h.with(|heap| unsafe {
        *heap = Heap::empty();
        heap.init(info.heap_base as *mut u8, info.heap_size as usize)
    });
    let boot = ditto_protocol::memory::BOOT_INFO_GPA as *const BootInfo;
    // SAFETY: the boot information block is mapped and written before launch.
    let (base, size) = unsafe { ((*boot).vm_heap_base, (*boot).vm_heap_size) };
    if size > 0
        && VM_HEAP_INIT
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        HEAPS.vm.base.store(base, Ordering::Relaxed);
        HEAPS.vm.end.store(base + size, Ordering::Relaxed);
        // SAFETY: the VM heap is initialised exactly once, by the first vCPU to get here.
        HEAPS
            .vm
            .with(|heap| unsafe { heap.init(base as *mut u8, size as usize) });
    }
}

/// From now on the current vCPU allocates from the VM-wide heap.
pub fn enter_vm_heap() {
    HEAPS.vm_mode[crate::arch::current_vcpu_id() % MAX_VCPUS].store(true, Ordering::Relaxed);
}

/// Back to the current vCPU's own heap.
pub fn leave_vm_heap() {
    HEAPS.vm_mode[crate::arch::current_vcpu_id() % MAX_VCPUS].store(false, Ordering::Relaxed);
}

/// Whether the current vCPU allocates from the VM-wide heap.
pub fn in_vm_heap() -> bool {
    HEAPS.vm_mode[crate::arch::current_vcpu_id() % MAX_VCPUS].load(Ordering::Relaxed)
}

// SAFETY: allocation goes to the caller's heap (or the VM heap in VM mode); a free goes
// to the heap whose range holds the pointer, under that heap's lock.
unsafe impl GlobalAlloc for Heaps {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let id = crate::arch::current_vcpu_id() % MAX_VCPUS;
        let h = if self.vm_mode[id].load(Ordering::Relaxed) {
            &self.vm
        } else {
            &self.vcpus[id]
        };
        h.with(|heap| heap.allocate_first_fit(layout))
            .map(|p| p.as_ptr())
            .unwrap_or(core::ptr::null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = core::ptr::NonNull::new(ptr) else {
            return;
        };
        let id = crate::arch::current_vcpu_id() % MAX_VCPUS;
        let h = if self.vcpus[id].owns(ptr) {
            &self.vcpus[id]
        } else if self.vm.owns(ptr) {
            &self.vm
        } else if let Some(h) = self.vcpus.iter().find(|h| h.owns(ptr)) {
            h
        } else {
            return; // not ours: leak rather than corrupt a heap
        };
        // SAFETY: `ptr` came from `alloc` on the heap whose range holds it.
        h.with(|heap| unsafe { heap.deallocate(p, layout) });
    }
}
