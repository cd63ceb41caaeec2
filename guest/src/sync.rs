//! Spin locks shared by the vCPUs of one VM, with per-vCPU bookkeeping of what each vCPU
//! holds. There is no scheduler here: a vCPU that waits for a lock spins (`pause`), and
//! locks are held for a few hundred instructions at most (allocator operations, wasmtime's
//! registries). The bookkeeping exists because the VMM may reset a vCPU at any instruction
//! (deadline kill, fault): [`release_held`], called from `_start`, gives back whatever the
//! reset vCPU held so no other vCPU spins forever. A released *exclusive* lock may guard
//! half-updated data, so releasing one marks the VM [`poisoned`] and the host replaces it.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use ditto_protocol::MAX_VCPUS;

/// Exclusive holder bit of a lock word; the low bits count shared holders.
const WRITER: usize = 1 << 63;
/// How many locks one vCPU can hold at once (nesting depth; 3 is the deepest seen).
const MAX_HELD: usize = 16;

#[derive(Clone, Copy)]
enum Mode {
    Shared,
    Exclusive,
}

struct Held {
    locks: [(usize, Mode); MAX_HELD],
    n: usize,
}

struct PerVcpu([UnsafeCell<Held>; MAX_VCPUS]);
// SAFETY: entry `i` is only touched by vCPU `i` (through its own id).
unsafe impl Sync for PerVcpu {}
static HELD: PerVcpu = PerVcpu(
    [const {
        UnsafeCell::new(Held {
            locks: [(0, Mode::Shared); MAX_HELD],
            n: 0,
        })
    }; MAX_VCPUS],
);
static POISONED: AtomicBool = AtomicBool::new(false);

/// Whether a vCPU was reset while holding an exclusive lock (the VM's shared state may be
/// inconsistent; every later function task fails and the host retires the VM).
pub fn poisoned() -> bool {
    POISONED.load(Ordering::Acquire)
}

fn held() -> &'static mut Held {
    // SAFETY: the current vCPU's own entry; a vCPU is one thread of execution and these
    // functions are not re-entered (no interrupts at CPL3 that run guest code).
    unsafe { &mut *HELD.0[crate::arch::current_vcpu_id() % MAX_VCPUS].get() }
}

fn push(lock: &AtomicUsize, mode: Mode) {
    let h = held();
    if h.n < MAX_HELD {
        h.locks[h.n] = (lock as *const AtomicUsize as usize, mode);
        h.n += 1;
    }
}

fn pop(lock: &AtomicUsize) {
    let h = held();
    let addr = lock as *const AtomicUsize as usize;
    if let Some(i) = h.locks[..h.n].iter().rposition(|(a, _)| *a == addr) {
        h.locks.copy_within(i + 1..h.n, i);
        h.n -= 1;
    }
}

/// Take `lock` exclusively.
pub fn lock(lock: &AtomicUsize) {
    while lock
        .compare_exchange_weak(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    push(lock, Mode::Exclusive);
}

/// Release an exclusive hold of `lock`.
pub fn unlock(lock: &AtomicUsize) {
    pop(lock);
    lock.store(0, Ordering::Release);
}

/// Take `lock` shared.
pub fn lock_shared(lock: &AtomicUsize) {
    loop {
        let v = lock.load(Ordering::Relaxed);
        if v & WRITER == 0
            && lock
                .compare_exchange_weak(v, v + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            break;
        }
        core::hint::spin_loop();
    }
    push(lock, Mode::Shared);
}

/// Release a shared hold of `lock`.
pub fn unlock_shared(lock: &AtomicUsize) {
    pop(lock);
    lock.fetch_sub(1, Ordering::Release);
}

/// Give back every lock the current vCPU held when it was reset. Called from `_start`
/// before anything else takes a lock.
pub fn release_held() {
    let h = held();
    for &(addr, mode) in &h.locks[..h.n.min(MAX_HELD)] {
        // SAFETY: `addr` was a live lock word when pushed; lock words live in statics or
        // in VM-heap objects that are never freed while a vCPU may hold them.
        let lock = unsafe { &*(addr as *const AtomicUsize) };
        match mode {
            Mode::Shared => {
                lock.fetch_sub(1, Ordering::Release);
            }
            Mode::Exclusive => {
                POISONED.store(true, Ordering::Release);
                lock.store(0, Ordering::Release);
            }
        }
    }
    h.n = 0;
}
