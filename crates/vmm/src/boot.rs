//! Everything the VMM prepares from the host before the first instruction runs: the
//! memory plan (image, per-vCPU guard + stack, per-vCPU heap), the identity-mapped page
//! tables, GDT, IDT, one TSS per vCPU with an I/O bitmap that opens only the doorbell,
//! the CPL0 exception stacks, the boot information block, and each vCPU's initial
//! register state (long mode, CPL3, SSE enabled). Pure functions over byte buffers, so
//! the layout is unit-tested without KVM.

use crate::config::VmConfig;
use crate::error::Result;
use crate::loader::GuestImage;
use crate::measure::{LaunchDigest, Measurement};
use crate::memory::PrivateMemory;
use ditto_protocol::memory::*;
use ditto_protocol::{
    BootInfo, VcpuBootInfo, VcpuKind, ABI_VERSION, BOOT_MAGIC, DOORBELL_PORT, DOORBELL_WIDTH,
};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

/// Where one vCPU's stack, heap and linear-memory region are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuPlan {
    /// Top of the user stack.
    pub stack_top: u64,
    /// Heap start.
    pub heap_base: u64,
    /// Heap size.
    pub heap_size: u64,
    /// Linear-memory region start (workers only; 0 on regular vCPUs).
    pub linear_base: u64,
    /// Linear-memory region size (0 on regular vCPUs).
    pub linear_size: u64,
}

/// The private memory plan.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Private memory size.
    pub mem_size: u64,
    /// First large page past the image.
    pub image_end: u64,
    /// Per-vCPU stacks, heaps and linear-memory regions.
    pub vcpus: Vec<VcpuPlan>,
    /// Large pages left unmapped (stack guards).
    pub guards: Vec<u64>,
    /// Code arena start (large-page aligned).
    pub code_base: u64,
    /// Code arena size.
    pub code_size: u64,
    /// VM-wide heap start.
    pub vm_heap_base: u64,
    /// VM-wide heap size.
    pub vm_heap_size: u64,
}

/// Lay out private memory for `config` and an image ending at `image_end`: image,
/// per-vCPU guard + stack, code arena, VM heap, per-vCPU heaps, then the rest split
/// evenly among the workers as linear-memory regions.
pub fn plan(config: &VmConfig, image_end: u64) -> MemoryPlan {
    let mem_size = config.memory_bytes();
    let image_end = image_end.div_ceil(LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE;
    let n = config.vcpus() as u64;
    let mut guards = Vec::new();
    let mut stacks = Vec::new();
    let mut at = image_end;
    for _ in 0..n {
        guards.push(at);
        at += LARGE_PAGE_SIZE;
        stacks.push(at + USER_STACK_SIZE);
        at += USER_STACK_SIZE;
    }
    let code_base = at;
    let code_size = config.code_mib << 20;
    let vm_heap_base = code_base + code_size;
    let vm_heap_size = (config.code_mib + crate::config::VM_HEAP_EXTRA_MIB) << 20;
    let heaps = vm_heap_base + vm_heap_size;
    let linear = heaps + n * VCPU_HEAP_SIZE;
    let linear_each =
        (mem_size.saturating_sub(linear) / (config.workers as u64).max(1)) & !(LARGE_PAGE_SIZE - 1);
    let vcpus = stacks
        .into_iter()
        .enumerate()
        .map(|(i, stack_top)| {
            let worker = i as u32 >= config.regular;
            let w = (i as u64).saturating_sub(config.regular as u64);
            VcpuPlan {
                stack_top,
                heap_base: heaps + i as u64 * VCPU_HEAP_SIZE,
                heap_size: VCPU_HEAP_SIZE,
                linear_base: if worker { linear + w * linear_each } else { 0 },
                linear_size: if worker { linear_each } else { 0 },
            }
        })
        .collect();
    MemoryPlan {
        mem_size,
        image_end,
        vcpus,
        guards,
        code_base,
        code_size,
        vm_heap_base,
        vm_heap_size,
    }
}

const PTE_P: u64 = 1;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_PS: u64 = 1 << 7;
const PTE_NX: u64 = 1 << 63;

/// One page-table page to write: its guest address and contents.
pub type TablePage = (u64, Vec<u8>);

/// Access rights of one 4 KiB page of the image.
fn image_page_flags(image: &GuestImage, page: u64) -> Option<u64> {
    let (lo, hi) = (page, page + PAGE_SIZE);
    let mut flags = None;
    for seg in &image.segments {
        if seg.gpa < hi && seg.gpa + seg.mem_size > lo {
            let f = flags.get_or_insert(PTE_P | PTE_US | PTE_NX);
            if seg.flags & object::elf::PF_W != 0 {
                *f |= PTE_RW;
            }
            if seg.flags & object::elf::PF_X != 0 {
                *f &= !PTE_NX;
            }
        }
    }
    // W^X inside the image too: a page both writable and executable is refused below.
    flags
}

/// The page tables as (gpa, page) pairs: PML4, PDPT, the page directories and the 4 KiB
/// page tables. Private memory and the shared window are mapped with 2 MiB pages,
/// no-execute; the system area is supervisor-only and the boot information read-only;
/// guards are absent. The image and the code arena use 4 KiB pages: image text is
/// read+execute, rodata read-only, data writable, each no-execute unless text; the code
/// arena is writable and no-execute until the guest's gate seals pages of it.
/// Also returns the address of the code arena's first page-table entry.
pub fn page_tables(
    plan: &MemoryPlan,
    image: &GuestImage,
    window_size: u64,
) -> Result<(Vec<TablePage>, u64)> {
    let mut pml4 = vec![0u8; PAGE_SIZE as usize];
    pml4[..8].copy_from_slice(&(PDPT_GPA | PTE_P | PTE_RW | PTE_US).to_le_bytes());
    let mut pdpt = vec![0u8; PAGE_SIZE as usize];
    let gibs = plan.mem_size.div_ceil(1 << 30).max(1);
    let mut pds: Vec<TablePage> = Vec::new();
    let pd_index = |gib: u64| {
        if gib >= PRIVATE_GIBS {
            PRIVATE_GIBS
        } else {
            gib
        }
    };
    for gib in (0..gibs).chain([SHARED_WINDOW_GPA >> 30]) {
        let gpa = PD_GPA + pd_index(gib) * PAGE_SIZE;
        let e = gpa | PTE_P | PTE_RW | PTE_US;
        pdpt[gib as usize * 8..gib as usize * 8 + 8].copy_from_slice(&e.to_le_bytes());
        pds.push((gpa, vec![0u8; PAGE_SIZE as usize]));
    }
    let mut pts: Vec<TablePage> = Vec::new();
    let set_pde = |pds: &mut Vec<TablePage>, addr: u64, e: u64| {
        let gpa = PD_GPA + pd_index(addr >> 30) * PAGE_SIZE;
        if let Some((_, pd)) = pds.iter_mut().find(|(g, _)| *g == gpa) {
            let idx = ((addr >> 21) & 511) as usize;
            pd[idx * 8..idx * 8 + 8].copy_from_slice(&e.to_le_bytes());
        }
    };
    let small = |addr: u64| {
        (addr >= GUEST_IMAGE_BASE && addr < plan.image_end)
            || (addr >= plan.code_base && addr < plan.code_base + plan.code_size)
    };
    let mut code_pte = 0;
    let mut addr = 0;
    while addr < plan.mem_size {
        if small(addr) {
            let pt_gpa = PT_GPA + pts.len() as u64 * PAGE_SIZE;
            if pts.len() as u64 >= PT_COUNT {
                return Err(crate::error::VmmError::Config(format!(
                    "the image and a {} MiB code arena need more than {PT_COUNT} page tables",
                    plan.code_size >> 20
                )));
            }
            if addr == plan.code_base {
                code_pte = pt_gpa;
            }
            let mut pt = vec![0u8; PAGE_SIZE as usize];
            for i in 0..512u64 {
                let page = addr + i * PAGE_SIZE;
                let flags = if addr >= plan.code_base {
                    Some(PTE_P | PTE_RW | PTE_US | PTE_NX)
                } else {
                    image_page_flags(image, page)
                };
                if let Some(f) = flags {
                    if f & PTE_RW != 0 && f & PTE_NX == 0 {
                        return Err(crate::error::VmmError::Image(format!(
                            "image page {page:#x} is both writable and executable"
                        )));
                    }
                    let e = page | f;
                    pt[i as usize * 8..i as usize * 8 + 8].copy_from_slice(&e.to_le_bytes());
                }
            }
            pts.push((pt_gpa, pt));
            set_pde(&mut pds, addr, pt_gpa | PTE_P | PTE_RW | PTE_US);
        } else if !plan.guards.contains(&addr) {
            let e = addr
                | PTE_P
                | PTE_PS
                | PTE_NX
                | match addr {
                    a if a < SYSTEM_AREA_SIZE => PTE_RW,
                    BOOT_INFO_GPA => PTE_US,
                    _ => PTE_RW | PTE_US,
                };
            set_pde(&mut pds, addr, e);
        }
        addr += LARGE_PAGE_SIZE;
    }
    let mut addr = SHARED_WINDOW_GPA;
    while addr < SHARED_WINDOW_GPA + window_size {
        set_pde(
            &mut pds,
            addr,
            addr | PTE_P | PTE_RW | PTE_PS | PTE_US | PTE_NX,
        );
        addr += LARGE_PAGE_SIZE;
    }
    let mut out = vec![(PML4_GPA, pml4), (PDPT_GPA, pdpt)];
    out.extend(pds);
    out.extend(pts);
    Ok((out, code_pte))
}

/// Bytes of one TSS including its I/O bitmap and the terminating 0xFF byte.
pub const TSS_LEN: usize = 104 + (DOORBELL_PORT + DOORBELL_WIDTH).div_ceil(8) as usize + 1;

/// The GDT for `vcpus` vCPUs.
pub fn gdt(vcpus: u32) -> Vec<u8> {
    let mut g: Vec<u8> = Vec::new();
    for d in [
        0u64,
        0x00AF_9A00_0000_FFFF, // kernel code: P, DPL0, exec/read, L
        0x00CF_9200_0000_FFFF, // kernel data
        0x00CF_F200_0000_FFFF, // user data: DPL3
        0x00AF_FA00_0000_FFFF, // user code: DPL3, L
    ] {
        g.extend_from_slice(&d.to_le_bytes());
    }
    for i in 0..vcpus as u64 {
        let base = TSS_GPA + i * TSS_SLOT_SIZE;
        let limit = TSS_LEN as u64 - 1;
        let low = (limit & 0xFFFF)
            | ((base & 0xFF_FFFF) << 16)
            | (0x8B << 40) // P, busy 64-bit TSS
            | (((limit >> 16) & 0xF) << 48)
            | (((base >> 24) & 0xFF) << 56);
        g.extend_from_slice(&low.to_le_bytes());
        g.extend_from_slice(&(base >> 32).to_le_bytes());
    }
    g
}

/// The IDT: an interrupt gate per exception vector to the guest's CPL0 stubs, except #BP,
/// whose gate is the guest's code-sealing gate `seal` (it hands ordinary breakpoints on
/// to their stub). #BP and #OF gates have DPL 3 so `int3`/`into` at CPL3 reach them.
pub fn idt(isr: &[u64; IDT_ENTRIES as usize], seal: u64) -> Vec<u8> {
    let mut t = Vec::with_capacity(16 * isr.len());
    for (v, &addr) in isr.iter().enumerate() {
        let addr = if v == 3 { seal } else { addr };
        let dpl: u64 = if v == 3 || v == 4 { 3 } else { 0 };
        let low = (addr & 0xFFFF)
            | ((SEL_KERNEL_CODE as u64) << 16)
            | ((0x8E | (dpl << 5)) << 40)
            | (((addr >> 16) & 0xFFFF) << 48);
        t.extend_from_slice(&low.to_le_bytes());
        t.extend_from_slice(&(addr >> 32).to_le_bytes());
    }
    t
}

/// One TSS: RSP0 and an I/O bitmap in which only the doorbell ports are open.
pub fn tss(rsp0: u64) -> Vec<u8> {
    let mut t = vec![0u8; TSS_LEN];
    t[4..12].copy_from_slice(&rsp0.to_le_bytes());
    t[102..104].copy_from_slice(&104u16.to_le_bytes());
    let bitmap = &mut t[104..];
    bitmap.fill(0xFF);
    for port in DOORBELL_PORT..DOORBELL_PORT + DOORBELL_WIDTH {
        bitmap[(port / 8) as usize] &= !(1 << (port % 8));
    }
    t
}

/// Whether `port` is open to CPL3 in a TSS built by [`tss`].
pub fn port_open(tss: &[u8], port: u16) -> bool {
    let base = u16::from_le_bytes([tss[102], tss[103]]) as usize;
    match tss.get(base + port as usize / 8) {
        Some(b) if base + (port as usize) / 8 < tss.len() - 1 => b & (1 << (port % 8)) == 0,
        _ => false,
    }
}

/// Top of vCPU `id`'s CPL0 stack. RSP0 is `top - 16`; `top - 8` holds the mailbox address
/// (read by the exception stubs) and `top - 16` the vCPU id.
pub fn cpl0_stack_top(id: u32) -> u64 {
    CPL0_STACKS_GPA + (id as u64 + 1) * CPL0_STACK_SIZE
}

/// The boot information block.
pub fn boot_info(config: &VmConfig, plan: &MemoryPlan, tsc_khz: u32) -> BootInfo {
    let mut b = BootInfo {
        tsc_khz,
        magic: BOOT_MAGIC,
        abi_version: ABI_VERSION,
        vcpu_count: config.vcpus(),
        regular_count: config.regular,
        shared_base: SHARED_WINDOW_GPA,
        shared_size: shared_window_size(config.vcpus()),
        vm_heap_base: plan.vm_heap_base,
        vm_heap_size: plan.vm_heap_size,
        code_base: plan.code_base,
        code_size: plan.code_size,
        ..BootInfo::default()
    };
    for (i, v) in plan.vcpus.iter().enumerate() {
        let id = i as u32;
        b.vcpus[i] = VcpuBootInfo {
            self_ptr: vcpu_info_gpa(id),
            vcpu_id: id,
            kind: if id < config.regular {
                VcpuKind::Regular
            } else {
                VcpuKind::Worker
            } as u32,
            mailbox: mailbox_gpa(id),
            stack_top: v.stack_top,
            heap_base: v.heap_base,
            heap_size: v.heap_size,
            linear_base: v.linear_base,
            linear_size: v.linear_size,
        };
    }
    b
}

/// Guest address of vCPU `id`'s entry in the boot information block.
pub fn vcpu_info_gpa(id: u32) -> u64 {
    BOOT_INFO_GPA
        + std::mem::offset_of!(BootInfo, vcpus) as u64
        + id as u64 * std::mem::size_of::<VcpuBootInfo>() as u64
}

/// Initial general-purpose registers of vCPU `id`.
pub fn initial_regs(entry: u64, id: u32, plan: &MemoryPlan) -> kvm_regs {
    kvm_regs {
        rip: entry,
        // As if `call` had pushed a return address: RSP + 8 is 16-byte aligned.
        rsp: plan.vcpus[id as usize].stack_top - 8,
        rdi: vcpu_info_gpa(id),
        rflags: 0x2,
        ..Default::default()
    }
}

fn segment(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_: if code { 0xB } else { 0x3 },
        present: 1,
        dpl: (selector & 3) as u8,
        db: if code { 0 } else { 1 },
        s: 1,
        l: if code { 1 } else { 0 },
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

const CR0_PE: u64 = 1;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// Turn KVM's reset segment state `base` into vCPU `id`'s long-mode, CPL3 state.
pub fn initial_sregs(mut s: kvm_sregs, id: u32, vcpus: u32) -> kvm_sregs {
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s.cr3 = PML4_GPA;
    s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    s.efer = EFER_LME | EFER_LMA | EFER_NXE;
    s.cs = segment(SEL_USER_CODE, true);
    s.ss = segment(SEL_USER_DATA, false);
    s.ds = s.ss;
    s.es = s.ss;
    s.fs = s.ss;
    s.gs = s.ss;
    s.gs.base = vcpu_info_gpa(id);
    s.tr = kvm_segment {
        base: TSS_GPA + id as u64 * TSS_SLOT_SIZE,
        limit: TSS_LEN as u32 - 1,
        selector: SEL_TSS_BASE + 16 * id as u16,
        type_: 0xB,
        present: 1,
        s: 0,
        ..Default::default()
    };
    s.ldt = kvm_segment {
        type_: 0x2,
        unusable: 1,
        ..Default::default()
    };
    s.gdt.base = GDT_GPA;
    s.gdt.limit = (SEL_TSS_BASE as u32 + 16 * vcpus - 1) as u16;
    s.idt.base = IDT_GPA;
    s.idt.limit = (16 * IDT_ENTRIES - 1) as u16;
    s
}

/// The register state that the measurement covers for one vCPU (its "VMSA").
pub fn vmsa_bytes(r: &kvm_regs, s: &kvm_sregs) -> Vec<u8> {
    let mut v = Vec::with_capacity(160);
    for x in [
        r.rip, r.rsp, r.rdi, r.rflags, s.cr0, s.cr3, s.cr4, s.efer, s.gs.base, s.tr.base,
        s.gdt.base, s.idt.base,
    ] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    for seg in [s.cs, s.ss, s.tr] {
        v.extend_from_slice(&seg.selector.to_le_bytes());
        v.extend_from_slice(&[seg.type_, seg.dpl, seg.l, seg.present]);
    }
    v.extend_from_slice(&s.gdt.limit.to_le_bytes());
    v.extend_from_slice(&s.idt.limit.to_le_bytes());
    v
}

/// Write the image and every system structure into private memory.
pub fn populate(
    mem: &mut PrivateMemory,
    config: &VmConfig,
    image: &GuestImage,
    plan: &MemoryPlan,
    tsc_khz: u32,
) -> Result<()> {
    for seg in &image.segments {
        // The zero tail (.bss) is already zero and is measured as `Zero` pages.
        mem.write(seg.gpa, &seg.data)?;
    }
    let (tables, code_pte) = page_tables(plan, image, shared_window_size(config.vcpus()))?;
    for (gpa, page) in tables {
        mem.write(gpa, &page)?;
    }
    let mut bounds = Vec::with_capacity(24);
    for v in [plan.code_base, plan.code_base + plan.code_size, code_pte] {
        bounds.extend_from_slice(&v.to_le_bytes());
    }
    mem.write(SEAL_BOUNDS_GPA, &bounds)?;
    mem.write(GDT_GPA, &gdt(config.vcpus()))?;
    mem.write(IDT_GPA, &idt(&image.isr, image.seal_gate))?;
    for id in 0..config.vcpus() {
        let top = cpl0_stack_top(id);
        mem.write(TSS_GPA + id as u64 * TSS_SLOT_SIZE, &tss(top - 16))?;
        let mut slots = [0u8; 16];
        slots[..8].copy_from_slice(&(id as u64).to_le_bytes());
        slots[8..].copy_from_slice(&mailbox_gpa(id).to_le_bytes());
        mem.write(top - 16, &slots)?;
    }
    mem.write(
        BOOT_INFO_GPA,
        bytemuck::bytes_of(&boot_info(config, plan, tsc_khz)),
    )?;
    Ok(())
}

/// Measure private memory (written pages as `Normal`, the rest as `Zero` ranges), the
/// shared window, and each vCPU's initial state.
///
/// Pages whose digest `image` already knows are chained with that digest; they hold only
/// image bytes, which `populate` copied verbatim.
pub fn measure(
    mem: &PrivateMemory,
    image: &GuestImage,
    window_size: u64,
    vmsas: &[Vec<u8>],
) -> Result<(Measurement, u64)> {
    let mut d = LaunchDigest::new();
    let mut next = 0u64; // first page not yet measured
    let zero = |d: &mut LaunchDigest, from: u64, to: u64| {
        if to > from {
            d.update(
                ditto_protocol::memory::PageType::Zero,
                from * PAGE_SIZE,
                (to - from) * PAGE_SIZE,
                None,
            );
        }
    };
    for page in mem.written_pages() {
        zero(&mut d, next, page);
        match image.page_digests.get(&page) {
            Some(digest) => d.update_digest(PageType::Normal, page * PAGE_SIZE, PAGE_SIZE, digest),
            None => d.update(
                PageType::Normal,
                page * PAGE_SIZE,
                PAGE_SIZE,
                Some(&mem.page(page)?),
            ),
        }
        next = page + 1;
    }
    zero(&mut d, next, mem.size() / PAGE_SIZE);
    d.update(PageType::Shared, SHARED_WINDOW_GPA, window_size, None);
    for (i, v) in vmsas.iter().enumerate() {
        d.update(PageType::Vmsa, i as u64, v.len() as u64, Some(v));
    }
    Ok((d.finish(), d.entries()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(regular: u32, workers: u32, mib: u64) -> VmConfig {
        VmConfig {
            regular,
            workers,
            active: workers,
            memory_mib: mib,
            ..Default::default()
        }
    }

    #[test]
    fn plan_keeps_regions_apart() {
        let c = cfg(1, 4, 256);
        let p = plan(&c, GUEST_IMAGE_BASE + 100_000);
        assert_eq!(p.vcpus.len(), 5);
        let mut prev_end = p.image_end;
        for v in &p.vcpus {
            assert!(
                v.stack_top - USER_STACK_SIZE >= prev_end + LARGE_PAGE_SIZE,
                "guard below stack"
            );
            prev_end = v.stack_top;
        }
        for w in p.vcpus.windows(2) {
            assert!(w[0].heap_base + w[0].heap_size <= w[1].heap_base);
        }
        let last = p.vcpus[4];
        assert!(last.heap_base + last.heap_size <= p.vcpus[1].linear_base);
        assert!(last.heap_size >= MIN_HEAP_SIZE);
        assert!(p.code_base >= prev_end && p.vm_heap_base >= p.code_base + p.code_size);
        assert_eq!(p.vcpus[0].linear_size, 0, "regular vCPUs run no functions");
        for w in p.vcpus[1..].windows(2) {
            assert_eq!(w[0].linear_base + w[0].linear_size, w[1].linear_base);
        }
        assert!(last.linear_base + last.linear_size <= c.memory_bytes());
        assert!(last.linear_size >= 2 << 20);
    }

    #[test]
    fn page_tables_map_user_memory_but_not_guards_or_system_area() {
        let img = crate::loader::parse(ditto_guest_image::GUEST_ELF).expect("parses");
        let c = cfg(1, 1, 256);
        let p = plan(&c, img.end);
        let (pts, code_pte) = page_tables(&p, &img, shared_window_size(2)).expect("tables");
        let table = |gpa: u64| &pts.iter().find(|(g, _)| *g == gpa).expect("table").1;
        let pde = |addr: u64| {
            let pd = table(PD_GPA + (addr >> 30).min(PRIVATE_GIBS) * PAGE_SIZE);
            let i = ((addr >> 21) & 511) as usize * 8;
            u64::from_le_bytes(pd[i..i + 8].try_into().expect("8 bytes"))
        };
        let pte = |addr: u64| {
            let pt = table(pde(addr) & 0x000F_FFFF_FFFF_F000);
            let i = ((addr >> 12) & 511) as usize * 8;
            u64::from_le_bytes(pt[i..i + 8].try_into().expect("8 bytes"))
        };
        assert_eq!(pde(0) & PTE_US, 0, "system area is supervisor-only");
        assert_ne!(pde(0) & PTE_P, 0);
        assert_eq!(pde(BOOT_INFO_GPA) & PTE_RW, 0, "boot info is read-only");
        assert_eq!(pde(p.guards[0]) & PTE_P, 0, "guard page unmapped");
        assert_eq!(pde(c.memory_bytes()) & PTE_P, 0, "nothing past memory");
        let heap = p.vcpus[0].heap_base;
        assert_ne!(pde(heap) & PTE_NX, 0, "heaps never execute");
        assert_ne!(
            pde(p.vcpus[1].linear_base) & PTE_NX,
            0,
            "linear memory never executes"
        );
        assert_ne!(
            pde(SHARED_WINDOW_GPA) & PTE_NX,
            0,
            "the shared window never executes"
        );
        assert_ne!(pde(SHARED_WINDOW_GPA) & PTE_US, 0, "window mapped");
        // Image text executes and is read-only; everything else of the image is NX.
        let text = img
            .segments
            .iter()
            .find(|s| s.flags & object::elf::PF_X != 0)
            .expect("text");
        assert_eq!(pte(text.gpa) & (PTE_NX | PTE_RW), 0, "text is read+execute");
        for s in img
            .segments
            .iter()
            .filter(|s| s.flags & object::elf::PF_X == 0)
        {
            assert_ne!(pte(s.gpa) & PTE_NX, 0, "data at {:#x} is no-execute", s.gpa);
        }
        // The code arena starts writable and no-execute; the gate finds its first PTE.
        assert_eq!(pte(p.code_base) & (PTE_NX | PTE_RW), PTE_NX | PTE_RW);
        assert_eq!(code_pte, pde(p.code_base) & 0x000F_FFFF_FFFF_F000);
    }

    #[test]
    fn tss_opens_exactly_the_doorbell() {
        let t = tss(0x1234);
        for port in 0..=u16::MAX {
            let open = (DOORBELL_PORT..DOORBELL_PORT + DOORBELL_WIDTH).contains(&port);
            assert_eq!(port_open(&t, port), open, "port {port:#x}");
        }
        assert!(TSS_LEN as u64 <= TSS_SLOT_SIZE);
        assert_eq!(*t.last().expect("non-empty"), 0xFF);
    }

    #[test]
    fn gdt_and_idt_have_expected_sizes() {
        assert_eq!(gdt(3).len(), SEL_TSS_BASE as usize + 3 * 16);
        let isr = [0x40_0000u64; IDT_ENTRIES as usize];
        let t = idt(&isr, 0x40_1000);
        assert_eq!(t.len(), 16 * IDT_ENTRIES as usize);
        let gate = &t[16 * 3..];
        assert_eq!(
            (gate[5] >> 5) & 3,
            3,
            "the sealing gate is reachable from CPL3"
        );
        assert_eq!(
            u16::from_le_bytes([gate[0], gate[1]]),
            0x1000,
            "#BP goes to the gate"
        );
        // Selector of gate 0 is the kernel code segment.
        assert_eq!(u16::from_le_bytes([t[2], t[3]]), SEL_KERNEL_CODE);
    }

    #[test]
    fn cached_image_digests_equal_hashing_memory() {
        let mut img = crate::loader::parse(ditto_guest_image::GUEST_ELF).expect("parses");
        let c = cfg(1, 1, 128);
        let p = plan(&c, img.end);
        let mut mem = PrivateMemory::new(p.mem_size).expect("maps");
        populate(&mut mem, &c, &img, &p, 1000).expect("populates");
        let cached = measure(&mem, &img, 2 << 20, &[vec![1, 2, 3]]).expect("measures");
        img.page_digests.clear();
        let hashed = measure(&mem, &img, 2 << 20, &[vec![1, 2, 3]]).expect("measures");
        assert_eq!(cached, hashed);
        let other = measure(&mem, &img, 4 << 20, &[vec![1, 2, 3]]).expect("measures");
        assert_ne!(cached.0, other.0, "window size is measured");
    }

    #[test]
    fn boot_info_points_each_vcpu_at_itself() {
        let c = cfg(2, 3, 256);
        let p = plan(&c, GUEST_IMAGE_BASE + 4096);
        let b = boot_info(&c, &p, 1);
        assert_eq!(b.vcpu_count, 5);
        for id in 0..5u32 {
            let v = b.vcpus[id as usize];
            assert_eq!(v.vcpu_id, id);
            assert_eq!(v.self_ptr, vcpu_info_gpa(id));
            assert_eq!(v.kind, if id < 2 { 0 } else { 1 });
        }
    }
}
