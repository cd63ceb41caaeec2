//! Plain-old-data structures shared by guest and host: the boot information block (private,
//! written by the VMM before launch and measured) and the per-vCPU mailbox header (in the
//! shared window). All are `#[repr(C)]` with explicit padding so both sides agree on every
//! byte; `tests` pins their sizes and field offsets.

use bytemuck::{Pod, Zeroable};

/// Per-vCPU boot information. The VMM points the guest's GS base at this entry, so
/// `gs:[0]` (the `self_ptr` field) yields the current vCPU's entry without an exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct VcpuBootInfo {
    /// Guest address of this very entry.
    pub self_ptr: u64,
    /// The vCPU index (0-based; regular vCPUs first, then workers).
    pub vcpu_id: u32,
    /// [`crate::VcpuKind`] as a number.
    pub kind: u32,
    /// Guest address of this vCPU's [`Mailbox`].
    pub mailbox: u64,
    /// Initial stack pointer (top of the user stack).
    pub stack_top: u64,
    /// Start of this vCPU's private heap.
    pub heap_base: u64,
    /// Size of this vCPU's private heap in bytes.
    pub heap_size: u64,
    /// Start of this worker's linear-memory region (0 on regular vCPUs).
    pub linear_base: u64,
    /// Size of this worker's linear-memory region in bytes.
    pub linear_size: u64,
}

/// The boot information block at [`crate::memory::BOOT_INFO_GPA`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BootInfo {
    /// [`crate::BOOT_MAGIC`].
    pub magic: u64,
    /// [`crate::ABI_VERSION`].
    pub abi_version: u32,
    /// Total vCPUs.
    pub vcpu_count: u32,
    /// Regular vCPUs (the first `regular_count` ids).
    pub regular_count: u32,
    /// The guest's TSC frequency in kHz (0 if unknown), for the guest's clocks.
    pub tsc_khz: u32,
    /// Guest address of the shared window.
    pub shared_base: u64,
    /// Size of the shared window in bytes.
    pub shared_size: u64,
    /// Start of the VM-wide heap (the loaded function's engine, module and metadata).
    pub vm_heap_base: u64,
    /// Size of the VM-wide heap in bytes.
    pub vm_heap_size: u64,
    /// Start of the code arena (4 KiB-mapped; sealed read+execute by the guest's gate).
    pub code_base: u64,
    /// Size of the code arena in bytes.
    pub code_size: u64,
    /// Reserved, zero.
    pub reserved1: [u64; 7],
    /// One entry per vCPU; entries past `vcpu_count` are zero.
    pub vcpus: [VcpuBootInfo; crate::MAX_VCPUS],
}

impl Default for BootInfo {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// The header of one vCPU's mailbox in the shared window. The guest writes the `g_*`
/// fields and `started_seq`; the host writes the `h_*` fields. Each side copies the header
/// out before validating it, so the other side cannot change it between check and use.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Mailbox {
    /// Guest -> host: [`crate::GuestMsgKind`] (repeated in the doorbell value).
    pub g_kind: u32,
    /// Guest -> host: [`crate::TaskStatus`] of the task being checked in.
    pub g_status: u32,
    /// Guest -> host: sequence number of the task being checked in (or ABI version for
    /// Ready).
    pub g_seq: u64,
    /// Guest -> host: bytes of valid data in the output buffer.
    pub g_len: u32,
    /// Reserved, zero.
    pub g_reserved: u32,
    /// Guest -> host: a task-defined number (e.g. a checksum of the work done).
    pub g_value: u64,
    /// Fault report: exception vector (or [`crate::FAULT_PANIC`]).
    pub fault_vector: u64,
    /// Fault report: error code pushed by the CPU (0 if none).
    pub fault_error: u64,
    /// Fault report: faulting instruction pointer.
    pub fault_rip: u64,
    /// Fault report: faulting address (CR2) for page faults.
    pub fault_addr: u64,
    /// Host -> guest: [`crate::HostMsgKind`].
    pub h_kind: u32,
    /// Host -> guest: [`crate::TaskKind`].
    pub h_task: u32,
    /// Host -> guest: sequence number of the task.
    pub h_seq: u64,
    /// Host -> guest: task argument (iterations, count...).
    pub h_arg: u64,
    /// Host -> guest: bytes of valid data in the input buffer.
    pub h_len: u32,
    /// Reserved, zero.
    pub h_reserved: u32,
    /// Guest writes the sequence number of a task when it starts running it (no exit);
    /// the host may poll it to time wake-ups.
    pub started_seq: u64,
}

/// Byte offsets of the [`Mailbox`] fields the CPL0 exception stubs write.
pub mod offsets {
    use super::Mailbox;
    use core::mem::offset_of;
    /// `g_kind`.
    pub const G_KIND: usize = offset_of!(Mailbox, g_kind);
    /// `fault_vector`.
    pub const FAULT_VECTOR: usize = offset_of!(Mailbox, fault_vector);
    /// `fault_error`.
    pub const FAULT_ERROR: usize = offset_of!(Mailbox, fault_error);
    /// `fault_rip`.
    pub const FAULT_RIP: usize = offset_of!(Mailbox, fault_rip);
    /// `fault_addr`.
    pub const FAULT_ADDR: usize = offset_of!(Mailbox, fault_addr);
    /// `g_len`.
    pub const G_LEN: usize = offset_of!(Mailbox, g_len);
    /// `started_seq`.
    pub const STARTED_SEQ: usize = offset_of!(Mailbox, started_seq);
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_are_pinned() {
        assert_eq!(size_of::<VcpuBootInfo>(), 64);
        assert_eq!(size_of::<BootInfo>(), 128 + 64 * crate::MAX_VCPUS);
        assert_eq!(size_of::<Mailbox>(), 104);
    }

    #[test]
    fn offsets_are_pinned() {
        assert_eq!(offsets::G_KIND, 0);
        assert_eq!(offsets::G_LEN, 16);
        assert_eq!(offsets::FAULT_VECTOR, 32);
        assert_eq!(offsets::FAULT_ERROR, 40);
        assert_eq!(offsets::FAULT_RIP, 48);
        assert_eq!(offsets::FAULT_ADDR, 56);
        assert_eq!(offsets::STARTED_SEQ, 96);
    }

    #[test]
    fn mailbox_round_trips_through_bytes() {
        let m = Mailbox {
            g_kind: 2,
            g_status: 1,
            g_seq: 77,
            g_len: 5,
            g_value: 9,
            fault_rip: 0x40_1000,
            h_kind: 1,
            h_task: 3,
            h_seq: 78,
            h_arg: 1000,
            h_len: 12,
            started_seq: 78,
            ..Mailbox::default()
        };
        let bytes = bytemuck::bytes_of(&m);
        let back: Mailbox = bytemuck::pod_read_unaligned(bytes);
        assert_eq!(m, back);
    }

    #[test]
    fn boot_info_round_trips_through_bytes() {
        let mut b = BootInfo {
            magic: crate::BOOT_MAGIC,
            vcpu_count: 3,
            ..BootInfo::default()
        };
        b.vcpus[2].heap_size = 1 << 21;
        let back: BootInfo = bytemuck::pod_read_unaligned(bytemuck::bytes_of(&b));
        assert_eq!(back.magic, crate::BOOT_MAGIC);
        assert_eq!(back.vcpus[2].heap_size, 1 << 21);
    }
}
