//! The platform hooks wasmtime's no_std runtime calls (its "custom" platform, enabled by
//! the `custom-virtual-memory` and `custom-sync-primitives` features): virtual memory,
//! thread-local storage and locks, on a guest with no OS and an identity map.
//!
//! Memory comes from two places:
//! - **The code arena** (VM-wide, 4 KiB pages, writable and no-execute at boot). While a
//!   regular vCPU loads the function (VM-heap mode, see [`crate::heap`]), every mapping
//!   wasmtime asks for is carved from the arena: the artifact's code and data. When
//!   wasmtime makes text executable, [`wasmtime_mprotect`] asks the CPL0 gate to seal
//!   those pages read+execute; they are never writable again (W^X). Nothing in the arena
//!   is ever reused.
//! - **A worker's linear-memory region** (VM memory the VMM set aside for that worker,
//!   sized from the action's memory limit). Invocations on a worker map their linear
//!   memories there with a bump allocator that restarts when all are unmapped. Pages
//!   made accessible again are zeroed first (only the range earlier invocations touched).
//!   Bounds checks are explicit in the compiled code (`signals_based_traps(false)`), so
//!   protections of linear memory are bookkeeping, not page-table changes.

use crate::arch;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use ditto_protocol::{BootInfo, VcpuBootInfo, MAX_VCPUS};

const PAGE: u64 = 4096;
const PROT_WRITE: u32 = 1 << 1;
const PROT_EXEC: u32 = 1 << 2;
const ERR: i32 = 1;

fn boot() -> &'static BootInfo {
    // SAFETY: the boot information block is mapped, written before launch, never changed.
    unsafe { &*(ditto_protocol::memory::BOOT_INFO_GPA as *const BootInfo) }
}

fn vcpu() -> &'static VcpuBootInfo {
    // SAFETY: GS base points at this vCPU's entry of the boot information block.
    unsafe { &*(arch::current_info_addr() as *const VcpuBootInfo) }
}

fn round_up(n: u64) -> Option<u64> {
    n.checked_add(PAGE - 1).map(|n| n & !(PAGE - 1))
}

/// Next free byte of the code arena (0 = not yet initialised).
static ARENA_NEXT: AtomicU64 = AtomicU64::new(0);
/// Bytes of the arena sealed executable so far.
static SEALED: AtomicU64 = AtomicU64::new(0);

/// Bytes of code sealed read+execute so far.
pub fn sealed_bytes() -> u64 {
    SEALED.load(Ordering::Relaxed)
}

fn arena_alloc(size: u64) -> Option<u64> {
    let b = boot();
    let end = b.code_base + b.code_size;
    let _ = ARENA_NEXT.compare_exchange(0, b.code_base, Ordering::AcqRel, Ordering::Acquire);
    let size = round_up(size)?;
    let mut cur = ARENA_NEXT.load(Ordering::Acquire);
    loop {
        let next = cur.checked_add(size).filter(|n| *n <= end)?;
        match ARENA_NEXT.compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(cur),
            Err(now) => cur = now,
        }
    }
}

fn in_arena(addr: u64, size: u64) -> bool {
    let b = boot();
    addr >= b.code_base && addr.saturating_add(size) <= b.code_base + b.code_size
}

/// One worker's linear-memory region.
struct Region {
    next: AtomicU64,
    live: AtomicU64,
    /// Everything at or above this address (within the region) was never handed out
    /// dirty: it is still the zero memory the VM started with.
    dirty_end: AtomicU64,
}

static REGIONS: [Region; MAX_VCPUS] = [const {
    Region {
        next: AtomicU64::new(0),
        live: AtomicU64::new(0),
        dirty_end: AtomicU64::new(0),
    }
}; MAX_VCPUS];

/// Forget the current worker's mappings (at every vCPU start; what they held is garbage
/// now). The dirty watermark survives, so reused pages are still zeroed.
pub fn reset_current() {
    let v = vcpu();
    let r = &REGIONS[v.vcpu_id as usize % MAX_VCPUS];
    r.next.store(v.linear_base, Ordering::Relaxed);
    r.live.store(0, Ordering::Relaxed);
    if r.dirty_end.load(Ordering::Relaxed) < v.linear_base {
        r.dirty_end.store(v.linear_base, Ordering::Relaxed);
    }
    TLS[v.vcpu_id as usize % MAX_VCPUS].store(core::ptr::null_mut(), Ordering::Relaxed);
}

/// Bytes of the current worker's linear-memory region.
pub fn linear_region_size() -> u64 {
    vcpu().linear_size
}

/// The largest worker linear-memory region of this VM (every worker's is the same size).
pub fn linear_region_size_max() -> u64 {
    let b = boot();
    b.vcpus[..(b.vcpu_count as usize).min(MAX_VCPUS)]
        .iter()
        .map(|v| v.linear_size)
        .max()
        .unwrap_or(0)
}

fn region() -> (&'static Region, u64, u64) {
    let v = vcpu();
    (
        &REGIONS[v.vcpu_id as usize % MAX_VCPUS],
        v.linear_base,
        v.linear_base + v.linear_size,
    )
}

/// Make `[addr, addr + size)` of the current worker's region readable as zeros.
fn zero_dirty(r: &Region, addr: u64, size: u64) {
    let dirty = r.dirty_end.load(Ordering::Relaxed);
    let end = addr + size;
    if addr < dirty {
        let stop = end.min(dirty);
        // SAFETY: the range lies in this worker's own linear-memory region, which only
        // this worker uses, and nothing else references it while wasmtime re-maps it.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, (stop - addr) as usize) };
    }
    if end > dirty {
        r.dirty_end.store(end, Ordering::Relaxed);
    }
}

/// wasmtime hook: a new mapping of `size` bytes (zeroed where accessible).
///
/// # Safety
/// Called by wasmtime with a valid `ret`.
#[no_mangle]
pub unsafe extern "C" fn wasmtime_mmap_new(size: usize, prot: u32, ret: &mut *mut u8) -> i32 {
    let size = size as u64;
    if crate::heap::in_vm_heap() {
        // Loading: the artifact's image goes to the code arena (zero, never reused).
        return match arena_alloc(size) {
            Some(at) => {
                *ret = at as *mut u8;
                0
            }
            None => ERR,
        };
    }
    let (r, _, end) = region();
    let Some(size) = round_up(size) else {
        return ERR;
    };
    let at = r.next.load(Ordering::Relaxed);
    let Some(next) = at.checked_add(size).filter(|n| *n <= end) else {
        return ERR;
    };
    r.next.store(next, Ordering::Relaxed);
    r.live.fetch_add(1, Ordering::Relaxed);
    if prot != 0 {
        zero_dirty(r, at, size);
    }
    *ret = at as *mut u8;
    0
}

/// wasmtime hook: replace `[addr, addr + size)` with fresh zero memory.
///
/// # Safety
/// Called by wasmtime on a range it mapped.
#[no_mangle]
pub unsafe extern "C" fn wasmtime_mmap_remap(addr: *mut u8, size: usize, prot: u32) -> i32 {
    let (addr, size) = (addr as u64, size as u64);
    if in_arena(addr, size) {
        return if prot & PROT_EXEC != 0 { ERR } else { 0 };
    }
    let (r, base, end) = region();
    if addr < base || addr.saturating_add(size) > end {
        return ERR;
    }
    if prot != 0 {
        zero_dirty(r, addr, size);
    }
    0
}

/// wasmtime hook: unmap.
///
/// # Safety
/// Called by wasmtime on a range it mapped.
#[no_mangle]
pub unsafe extern "C" fn wasmtime_munmap(ptr: *mut u8, size: usize) -> i32 {
    let (addr, size) = (ptr as u64, size as u64);
    if in_arena(addr, size) {
        return 0; // the arena is never reused
    }
    let (r, base, end) = region();
    if addr < base || addr.saturating_add(size) > end {
        return ERR;
    }
    if r.live.fetch_sub(1, Ordering::Relaxed) <= 1 {
        r.live.store(0, Ordering::Relaxed);
        r.next.store(base, Ordering::Relaxed);
    }
    0
}

/// wasmtime hook: change protections. Executable is granted only to code-arena pages,
/// through the sealing gate, and sealed pages never become writable again.
///
/// # Safety
/// Called by wasmtime on a range it mapped.
#[no_mangle]
pub unsafe extern "C" fn wasmtime_mprotect(ptr: *mut u8, size: usize, prot: u32) -> i32 {
    let (addr, size) = (ptr as u64, size as u64);
    if in_arena(addr, size) {
        if prot & PROT_EXEC != 0 {
            if prot & PROT_WRITE != 0 || !arch::seal_code(addr, size) {
                return ERR;
            }
            SEALED.fetch_add(size, Ordering::Relaxed);
        }
        return 0;
    }
    if prot & PROT_EXEC != 0 {
        return ERR;
    }
    let (r, base, end) = region();
    if addr < base || addr.saturating_add(size) > end {
        return ERR;
    }
    if prot != 0 {
        zero_dirty(r, addr, size);
    }
    0
}

/// wasmtime hook: the page size.
#[no_mangle]
pub extern "C" fn wasmtime_page_size() -> usize {
    PAGE as usize
}

/// wasmtime hook: copy-on-write memory images are not offered (`memory_init_cow` is off).
///
/// # Safety
/// Called by wasmtime with a valid `ret`.
#[no_mangle]
pub unsafe extern "C" fn wasmtime_memory_image_new(
    _ptr: *const u8,
    _len: usize,
    ret: &mut *mut u8,
) -> i32 {
    *ret = core::ptr::null_mut();
    0
}

/// wasmtime hook: never called, since no image is ever created.
#[no_mangle]
pub extern "C" fn wasmtime_memory_image_map_at(_image: *mut u8, _addr: *mut u8, _len: usize) -> i32 {
    ERR
}

/// wasmtime hook: never called, since no image is ever created.
#[no_mangle]
pub extern "C" fn wasmtime_memory_image_free(_image: *mut u8) {}

static TLS: [AtomicPtr<u8>; MAX_VCPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_VCPUS];

/// wasmtime hook: this vCPU's TLS pointer (one slot).
#[no_mangle]
pub extern "C" fn wasmtime_tls_get(_slot: usize) -> *mut u8 {
    TLS[arch::current_vcpu_id() % MAX_VCPUS].load(Ordering::Relaxed)
}

/// wasmtime hook: set this vCPU's TLS pointer.
#[no_mangle]
pub extern "C" fn wasmtime_tls_set(_slot: usize, ptr: *mut u8) {
    TLS[arch::current_vcpu_id() % MAX_VCPUS].store(ptr, Ordering::Relaxed);
}

fn word(lock: *mut usize) -> &'static AtomicUsize {
    // SAFETY: wasmtime passes a pointer to a live, aligned usize lock word it owns.
    unsafe { AtomicUsize::from_ptr(lock) }
}

/// wasmtime hook: free a mutex (nothing to do).
#[no_mangle]
pub extern "C" fn wasmtime_sync_lock_free(_lock: *mut usize) {}

/// wasmtime hook: take a mutex.
#[no_mangle]
pub extern "C" fn wasmtime_sync_lock_acquire(lock: *mut usize) {
    crate::sync::lock(word(lock));
}

/// wasmtime hook: release a mutex.
#[no_mangle]
pub extern "C" fn wasmtime_sync_lock_release(lock: *mut usize) {
    crate::sync::unlock(word(lock));
}

/// wasmtime hook: take a read lock.
#[no_mangle]
pub extern "C" fn wasmtime_sync_rwlock_read(lock: *mut usize) {
    crate::sync::lock_shared(word(lock));
}

/// wasmtime hook: release a read lock.
#[no_mangle]
pub extern "C" fn wasmtime_sync_rwlock_read_release(lock: *mut usize) {
    crate::sync::unlock_shared(word(lock));
}

/// wasmtime hook: take a write lock.
#[no_mangle]
pub extern "C" fn wasmtime_sync_rwlock_write(lock: *mut usize) {
    crate::sync::lock(word(lock));
}

/// wasmtime hook: release a write lock.
#[no_mangle]
pub extern "C" fn wasmtime_sync_rwlock_write_release(lock: *mut usize) {
    crate::sync::unlock(word(lock));
}

/// wasmtime hook: free a read-write lock (nothing to do).
#[no_mangle]
pub extern "C" fn wasmtime_sync_rwlock_free(_lock: *mut usize) {}
