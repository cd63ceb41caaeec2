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
//!   sized from the action's memory limit). [`RegionMemories`] is the engine's memory
//!   creator: a linear memory starts at the region's free base and grows in place to the
//!   end of the region (never moved, never copied); the store's limiter stops it at the
//!   action's limit. The region restarts when all its memories are dropped. Bytes made
//!   accessible again are zeroed first (only the range earlier invocations touched).
//!   Bounds checks are explicit in the compiled code (`signals_based_traps(false)`), so
//!   linear memory needs no page-table changes.

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

/// The engine's memory creator: linear memories in the current worker's region.
pub struct RegionMemories;

/// One linear memory at the start of the free part of a worker's region.
struct RegionMemory {
    base: u64,
    len: u64,
    capacity: u64,
}

// SAFETY: `new_memory` hands out zeroed memory of at least `minimum` bytes inside the
// current worker's region, disjoint from every live memory (bump allocation), and it is
// never reused before the memory is dropped. It never moves, so any reservation that
// fits is honoured; guards are refused (memory_guard_size is 0: bounds checks are
// explicit in the compiled code).
unsafe impl wasmtime::MemoryCreator for RegionMemories {
    fn new_memory(
        &self,
        _ty: wasmtime::MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        reserved: Option<usize>,
        guard: usize,
    ) -> Result<alloc::boxed::Box<dyn wasmtime::LinearMemory>, alloc::string::String> {
        if guard != 0 {
            return Err("guarded memories are not supported (bounds checks are explicit)".into());
        }
        let (r, _, end) = region();
        let at = r.next.load(Ordering::Relaxed);
        // A reservation is honoured by construction (the memory never moves) as long as
        // it fits in the region.
        if reserved.is_some_and(|n| at.saturating_add(n as u64) > end) {
            return Err("the requested reservation exceeds this worker's region".into());
        }
        let min = round_up(minimum as u64).ok_or("memory size overflows")?;
        if at.checked_add(min).is_none_or(|e| e > end) {
            return Err(alloc::format!(
                "no room for a {} MiB memory in this worker's {} MiB region",
                min >> 20,
                linear_region_size() >> 20
            ));
        }
        // This memory may grow to the end of the region; a second memory would find none.
        r.next.store(end, Ordering::Relaxed);
        r.live.fetch_add(1, Ordering::Relaxed);
        zero_dirty(r, at, min);
        Ok(alloc::boxed::Box::new(RegionMemory {
            base: at,
            len: minimum as u64,
            capacity: end - at,
        }))
    }
}

// SAFETY: `[base, base + capacity)` belongs to this memory alone until it is dropped;
// bytes up to `len` are accessible and were zeroed before first use.
unsafe impl wasmtime::LinearMemory for RegionMemory {
    fn byte_size(&self) -> usize {
        self.len as usize
    }

    fn byte_capacity(&self) -> usize {
        self.capacity as usize
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        let new = new_size as u64;
        if new > self.capacity {
            return Err(wasmtime::Error::msg(
                "linear memory exceeds the worker's region",
            ));
        }
        if new > self.len {
            let (r, _, _) = region();
            let from = self.base + (self.len & !(PAGE - 1));
            zero_dirty(
                r,
                from,
                round_up(self.base + new).unwrap_or(u64::MAX) - from,
            );
        }
        self.len = new;
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.base as *mut u8
    }
}

impl Drop for RegionMemory {
    fn drop(&mut self) {
        let (r, base, _) = region();
        if r.live.fetch_sub(1, Ordering::Relaxed) <= 1 {
            r.live.store(0, Ordering::Relaxed);
            r.next.store(base, Ordering::Relaxed);
        }
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
    // A reservation (no access yet) larger than what is left is cut to what is left:
    // wasmtime asks for `minimum + memory_reservation_for_growth` and the guest sets that
    // growth to the whole region, so a memory starts at the region's base and can grow in
    // place to the action's limit (the store's limiter stops it there, and the limit is
    // never above the region). Accessible memory is never cut.
    let size = if prot == 0 {
        size.min(end.saturating_sub(at))
    } else {
        size
    };
    let Some(next) = at.checked_add(size).filter(|n| *n <= end && size > 0) else {
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
pub extern "C" fn wasmtime_memory_image_map_at(
    _image: *mut u8,
    _addr: *mut u8,
    _len: usize,
) -> i32 {
    ERR
}

/// wasmtime hook: never called, since no image is ever created.
#[no_mangle]
pub extern "C" fn wasmtime_memory_image_free(_image: *mut u8) {}

static TLS: [AtomicPtr<u8>; MAX_VCPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_VCPUS];

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
