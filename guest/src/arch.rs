//! x86-64 specifics: the doorbell (`out`), the CPL0 exception stubs whose addresses the
//! VMM puts in the IDT (`ditto_isr_0` .. `ditto_isr_31`), and the per-vCPU pointer read
//! through GS.
//!
//! The stubs run at CPL0 on the vCPU's TSS.RSP0 stack. The VMM sets RSP0 = top - 16 and
//! stores this vCPU's mailbox address at top - 8, so after the CPU frame (SS, RSP,
//! RFLAGS, CS, RIP, error code) and the stub's vector push, the mailbox address is at
//! `[rsp + 64]`. The stubs write a fault report there and ring the doorbell; the VMM then
//! resets the vCPU. CPL0 is emulated on nested KVM, so this path is kept to a dozen
//! instructions.

use ditto_protocol::layout::offsets;
use ditto_protocol::{GuestMsgKind, DOORBELL_PORT};

/// Ring the doorbell with message `kind`. Every write before it is visible to the host
/// when it handles the exit (the asm block is a compiler memory barrier, the exit a full
/// one).
#[inline(always)]
pub fn doorbell(kind: GuestMsgKind) {
    // SAFETY: the TSS I/O bitmap opens the doorbell ports to CPL3; the `out` only exits
    // to the VMM, which resumes us after it (or resets the vCPU).
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") DOORBELL_PORT, in("eax") kind as u32,
            options(nostack, preserves_flags));
    }
}

/// Ring the doorbell with a raw value (the BadMessage test hook).
#[inline(always)]
pub fn doorbell_raw(value: u32) {
    // SAFETY: as in `doorbell`.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") DOORBELL_PORT, in("eax") value,
            options(nostack, preserves_flags));
    }
}

/// Address of this vCPU's boot information (the VMM points GS base at it and its first
/// field is its own address).
#[inline(always)]
pub fn current_info_addr() -> u64 {
    let addr: u64;
    // SAFETY: GS base points at this vCPU's VcpuBootInfo, whose first field is readable.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) addr, options(nostack, readonly, preserves_flags));
    }
    addr
}

/// The current vCPU's id, read through GS (`VcpuBootInfo::vcpu_id`, at offset 8).
#[inline(always)]
pub fn current_vcpu_id() -> usize {
    let id: u32;
    // SAFETY: GS base points at this vCPU's VcpuBootInfo, whose `vcpu_id` is at offset 8.
    unsafe {
        core::arch::asm!("mov {:e}, gs:[8]", out(reg) id, options(nostack, readonly, preserves_flags));
    }
    id as usize
}

extern "C" {
    /// `int3` then return (see the sealing gate below): RDI = start, RSI = length,
    /// RAX = 0 when sealed.
    fn ditto_seal_call(start: u64, len: u64) -> u64;
}

/// Ask the CPL0 gate to seal `[start, start + len)` of the code arena: read+execute, never
/// writable again. Both must be 4 KiB aligned and inside the arena; returns whether the
/// gate accepted the range (it changes nothing otherwise).
pub fn seal_code(start: u64, len: u64) -> bool {
    // SAFETY: `ditto_seal_call` traps into the #BP gate, which validates the range against
    // the arena bounds the VMM wrote into supervisor-only memory, edits only those
    // page-table entries and returns; it follows the C ABI with integer arguments only.
    unsafe { ditto_seal_call(start, len) == 0 }
}

/// Read the time-stamp counter.
#[inline(always)]
#[allow(dead_code)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is allowed at CPL3 (CR4.TSD clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

macro_rules! isr_stubs {
    ($($v:literal: $err:literal),* $(,)?) => {
        core::arch::global_asm!(
            ".pushsection .text.isr, \"ax\"",
            $(
                concat!(".global ditto_isr_", $v),
                ".balign 16",
                concat!("ditto_isr_", $v, ":"),
                // Vectors without a CPU error code push a zero one so frames agree.
                concat!(".if ", $err, " == 0"),
                "push 0",
                ".endif",
                concat!("push ", $v),
                "jmp ditto_isr_common",
            )*
            ".balign 16",
            "ditto_isr_common:",
            "mov rdi, [rsp + 64]",
            "mov rax, [rsp]",
            "mov [rdi + {vector}], rax",
            "mov rax, [rsp + 8]",
            "mov [rdi + {error}], rax",
            "mov rax, [rsp + 16]",
            "mov [rdi + {rip}], rax",
            "mov rax, cr2",
            "mov [rdi + {addr}], rax",
            "mov dword ptr [rdi + {len}], 0",
            "mov dword ptr [rdi + {kind}], {fault}",
            "mov eax, {fault}",
            "mov dx, {port}",
            "out dx, eax",
            "2:",
            "hlt",
            "jmp 2b",
            ".popsection",
            vector = const offsets::FAULT_VECTOR,
            error = const offsets::FAULT_ERROR,
            rip = const offsets::FAULT_RIP,
            addr = const offsets::FAULT_ADDR,
            len = const offsets::G_LEN,
            kind = const offsets::G_KIND,
            fault = const GuestMsgKind::Fault as u32,
            port = const DOORBELL_PORT,
        );
    };
}

// The code-sealing gate. This machine's nested KVM reliably delivers `int3` from CPL3
// (not `int n`), so the gate is the #BP entry of the IDT: an `int3` whose return address
// is `ditto_seal_ret` (only `ditto_seal_call` has it) seals pages; any other #BP is a
// fault, reported by the ordinary stub. CPL0 is emulated here (~1 µs per instruction), so
// the loop is tight; it runs once per function load. RDI = start, RSI = length; RAX = 0 if
// sealed, 1 if refused. SEAL_BOUNDS holds [arena start, arena end, address of the arena's
// first PTE], written by the VMM into supervisor-only memory. Each PTE of the range loses
// RW and NX.
core::arch::global_asm!(
    ".pushsection .text.isr, \"ax\"",
    ".global ditto_seal_call",
    ".balign 16",
    "ditto_seal_call:",
    "int3",
    "ditto_seal_ret:",
    "ret",
    ".global ditto_seal_gate",
    ".balign 16",
    "ditto_seal_gate:",
    "push rax",
    "lea rax, [rip + ditto_seal_ret]",
    "cmp [rsp + 8], rax",
    "pop rax",
    "jne ditto_isr_3",
    "push rcx",
    "push rdx",
    "push r8",
    "mov eax, 1",
    "test rdi, 0xfff",
    "jnz 3f",
    "test rsi, 0xfff",
    "jnz 3f",
    "test rsi, rsi",
    "jz 3f",
    "mov rcx, [{bounds}]",
    "cmp rdi, rcx",
    "jb 3f",
    "lea rdx, [rdi + rsi]",
    "cmp rdx, rdi",
    "jb 3f",
    "cmp rdx, [{bounds} + 8]",
    "ja 3f",
    // r8 = &PTE(start) = first_pte + ((start - arena) >> 12) * 8
    "mov r8, rdi",
    "sub r8, rcx",
    "shr r8, 9",
    "add r8, [{bounds} + 16]",
    "mov rcx, {keep}",
    "2:",
    "and [r8], rcx",
    "invlpg [rdi]",
    "add r8, 8",
    "add rdi, 4096",
    "cmp rdi, rdx",
    "jb 2b",
    "xor eax, eax",
    "3:",
    "pop r8",
    "pop rdx",
    "pop rcx",
    "iretq",
    ".popsection",
    bounds = const ditto_protocol::memory::SEAL_BOUNDS_GPA,
    keep = const !((1u64 << 63) | 2),
);

// vector: 1 if the CPU pushes an error code for it.
isr_stubs!(
    0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 1, 9: 0, 10: 1, 11: 1, 12: 1, 13: 1,
    14: 1, 15: 0, 16: 0, 17: 1, 18: 0, 19: 0, 20: 0, 21: 1, 22: 0, 23: 0, 24: 0, 25: 0,
    26: 0, 27: 0, 28: 0, 29: 1, 30: 1, 31: 0,
);
