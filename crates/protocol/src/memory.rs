//! The guest physical memory map. Guest memory is identity-mapped (virtual == physical).
//!
//! ```text
//! 0x0000_0000  system area (supervisor-only): page tables, GDT, IDT, TSSs, CPL0 stacks
//! 0x0020_0000  BootInfo (user, read-only by convention)
//! 0x0040_0000  guest image (ELF PT_LOAD segments, linked here by guest/link.ld), 4 KiB
//!              pages: text read+execute, rodata read-only, data/bss read+write, no-execute
//! ...          per vCPU: 2 MiB unmapped guard, 2 MiB stack
//! ...          code arena (4 KiB pages, writable + no-execute until sealed, then
//!              read+execute and never writable again), VM heap, per-vCPU heaps,
//!              per-worker linear-memory regions
//! 64 GiB       shared window: control page, then one mailbox per vCPU
//! ```
//!
//! Everything except guest-image text and sealed code-arena pages is mapped no-execute
//! (`EFER.NXE`): the stacks, heaps, linear memories and the shared window never execute.
//!
//! Everything below [`SHARED_WINDOW_GPA`] is private memory: after launch the host never
//! reads or writes it. The shared window is the only memory both sides touch.

/// Size of a small page.
pub const PAGE_SIZE: u64 = 4096;

/// Size of a large page (the unit of the identity map).
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;

/// Start of the system area.
pub const SYSTEM_AREA_GPA: u64 = 0;
/// Size of the system area (one supervisor-only large page).
pub const SYSTEM_AREA_SIZE: u64 = LARGE_PAGE_SIZE;

/// The PML4 table.
pub const PML4_GPA: u64 = 0x1000;
/// The PDPT table (covers the first 512 GiB).
pub const PDPT_GPA: u64 = 0x2000;
/// First page directory; PD `i` maps GiB `i`, at `PD_GPA + i * PAGE_SIZE` (PD
/// [`PRIVATE_GIBS`] maps the shared window's GiB).
pub const PD_GPA: u64 = 0x10_0000;
/// GiBs of private memory the page tables can map.
pub const PRIVATE_GIBS: u64 = 64;
/// Number of page directories reserved (private GiBs + the window's).
pub const PD_COUNT: u64 = PRIVATE_GIBS + 1;
/// Page tables (4 KiB mappings) for the image and the code arena: PT `i` maps the 2 MiB
/// at the `i`-th large page that is mapped with small pages.
pub const PT_GPA: u64 = PD_GPA + PD_COUNT * PAGE_SIZE;
/// Number of 4 KiB page tables reserved (each maps 2 MiB with small pages).
pub const PT_COUNT: u64 = (SYSTEM_AREA_SIZE - PT_GPA) / PAGE_SIZE;

/// The GDT: null, kernel code, kernel data, user data, user code, then one TSS descriptor
/// (16 bytes) per vCPU.
pub const GDT_GPA: u64 = 0x8000;
/// The IDT (32 exception vectors used).
pub const IDT_GPA: u64 = 0xA000;
/// Number of IDT entries the VMM fills with exception stubs (the architectural exceptions).
pub const IDT_ENTRIES: u64 = 32;

/// The TSS array: one [`TSS_SLOT_SIZE`] slot per vCPU.
pub const TSS_GPA: u64 = 0xB000;
/// Bytes reserved for one TSS with its I/O bitmap.
pub const TSS_SLOT_SIZE: u64 = 256;
/// The CPL0 exception stacks, one [`CPL0_STACK_SIZE`] slot per vCPU.
pub const CPL0_STACKS_GPA: u64 = 0x2_0000;
/// Size of one CPL0 exception stack.
pub const CPL0_STACK_SIZE: u64 = 0x2000;

/// GDT selector: kernel code (CPL0 exception stubs).
pub const SEL_KERNEL_CODE: u16 = 0x08;
/// GDT selector: kernel data.
pub const SEL_KERNEL_DATA: u16 = 0x10;
/// GDT selector: user data (RPL 3).
pub const SEL_USER_DATA: u16 = 0x18 | 3;
/// GDT selector: user code (RPL 3).
pub const SEL_USER_CODE: u16 = 0x20 | 3;
/// GDT selector of vCPU 0's TSS; vCPU `i` uses `SEL_TSS_BASE + 16 * i`.
pub const SEL_TSS_BASE: u16 = 0x28;

/// Where [`crate::BootInfo`] lives (user-readable private memory).
pub const BOOT_INFO_GPA: u64 = 0x20_0000;

/// Where the guest image is linked and loaded.
pub const GUEST_IMAGE_BASE: u64 = 0x40_0000;

/// Size of one vCPU's user stack (one large page, with an unmapped large page below it).
pub const USER_STACK_SIZE: u64 = LARGE_PAGE_SIZE;

/// Smallest heap the VMM gives a vCPU.
pub const MIN_HEAP_SIZE: u64 = LARGE_PAGE_SIZE;

/// Per-vCPU private heap (stores, instances, WASI buffers of one invocation).
pub const VCPU_HEAP_SIZE: u64 = 8 << 20;

/// Supervisor-only words read by the code-sealing gate: code arena start, arena end, and
/// the address of the arena's first 4 KiB page-table entry (written by the VMM, measured).
pub const SEAL_BOUNDS_GPA: u64 = 0xF_F000;

/// Private memory must end at or below this address (the shared window starts here).
pub const PRIVATE_MEMORY_MAX: u64 = SHARED_WINDOW_GPA;

/// Guest physical address of the shared window.
pub const SHARED_WINDOW_GPA: u64 = PRIVATE_GIBS << 30;

/// Size of the control page at the start of the shared window.
pub const CONTROL_PAGE_SIZE: u64 = PAGE_SIZE;

/// Offset of a mailbox's input buffer from the mailbox start.
pub const MAILBOX_IN_OFFSET: u64 = PAGE_SIZE;
/// Offset of a mailbox's output buffer from the mailbox start.
pub const MAILBOX_OUT_OFFSET: u64 = MAILBOX_IN_OFFSET + crate::IN_BUF_SIZE as u64;
/// Distance between two vCPUs' mailboxes.
pub const MAILBOX_STRIDE: u64 = MAILBOX_OUT_OFFSET + crate::OUT_BUF_SIZE as u64;

/// Guest physical address of vCPU `id`'s mailbox header.
pub const fn mailbox_gpa(id: u32) -> u64 {
    SHARED_WINDOW_GPA + CONTROL_PAGE_SIZE + id as u64 * MAILBOX_STRIDE
}

/// Size of the shared window for `vcpus` vCPUs, rounded up to a large page.
pub const fn shared_window_size(vcpus: u32) -> u64 {
    let raw = CONTROL_PAGE_SIZE + vcpus as u64 * MAILBOX_STRIDE;
    raw.div_ceil(LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE
}

/// Kinds of initial guest pages, as chained into the launch measurement (the shape of
/// SEV-SNP's `LAUNCH_UPDATE` page types).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageType {
    /// A page with contents (image, tables, boot info); its contents are hashed.
    Normal = 1,
    /// A private page that starts zeroed; measured by address only.
    Zero = 3,
    /// The initial register state of one vCPU (SNP's VMSA page).
    Vmsa = 2,
    /// Shared (unencrypted) memory; measured by address only, never trusted.
    Shared = 4,
}

// The layout is checked at compile time: a change that makes regions overlap does not build.
const _: () = {
    assert!(PT_GPA + 64 * PAGE_SIZE <= SYSTEM_AREA_SIZE);
    assert!(PT_COUNT >= 64);
    let gdt_size = SEL_TSS_BASE as u64 + 16 * crate::MAX_VCPUS as u64;
    assert!(GDT_GPA + gdt_size <= IDT_GPA);
    assert!(IDT_GPA + 16 * IDT_ENTRIES <= TSS_GPA);
    assert!(TSS_GPA + TSS_SLOT_SIZE * crate::MAX_VCPUS as u64 <= CPL0_STACKS_GPA);
    assert!(CPL0_STACKS_GPA + CPL0_STACK_SIZE * crate::MAX_VCPUS as u64 <= SEAL_BOUNDS_GPA);
    assert!(SEAL_BOUNDS_GPA + 24 <= PD_GPA);
    assert!(BOOT_INFO_GPA + core::mem::size_of::<crate::BootInfo>() as u64 <= GUEST_IMAGE_BASE);
    // A TSS (104 bytes) plus an I/O bitmap covering the doorbell plus the 0xFF byte fits.
    let bitmap = (crate::DOORBELL_PORT + crate::DOORBELL_WIDTH) as u64 / 8 + 2;
    assert!(104 + bitmap <= TSS_SLOT_SIZE);
    // Every mailbox fits in the window, and the window in the mapped GiBs.
    let n = crate::MAX_VCPUS as u32;
    assert!(mailbox_gpa(n - 1) + MAILBOX_STRIDE <= SHARED_WINDOW_GPA + shared_window_size(n));
    assert!(shared_window_size(1).is_multiple_of(LARGE_PAGE_SIZE));
    assert!(SHARED_WINDOW_GPA + shared_window_size(n) <= (PRIVATE_GIBS + 1) << 30);
    assert!(core::mem::size_of::<crate::Mailbox>() as u64 <= MAILBOX_IN_OFFSET);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_are_disjoint_and_ordered() {
        for id in 0..crate::MAX_VCPUS as u32 - 1 {
            assert_eq!(mailbox_gpa(id + 1) - mailbox_gpa(id), MAILBOX_STRIDE);
        }
        assert_eq!(mailbox_gpa(0), SHARED_WINDOW_GPA + CONTROL_PAGE_SIZE);
        assert_eq!(shared_window_size(2), 6 << 20);
    }
}
