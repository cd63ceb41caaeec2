//! Guest memory, split by type so the rule "after launch the VMM touches only the shared
//! window" holds by construction:
//!
//! - [`PrivateMemory`] can be written only during launch (it records every page written,
//!   for the launch measurement). [`PrivateMemory::seal`] turns it into a
//!   [`PrivateMapping`], which keeps the mapping alive for KVM and has no accessor at all.
//! - [`SharedWindow`] is the only memory a running VM's host code can read or write, and
//!   only through typed mailbox accessors.

use crate::error::{Result, VmmError};
use ditto_protocol::memory::{
    mailbox_gpa, MAILBOX_IN_OFFSET, MAILBOX_OUT_OFFSET, PAGE_SIZE, SHARED_WINDOW_GPA,
};
use ditto_protocol::{layout::offsets, Mailbox, IN_BUF_SIZE, OUT_BUF_SIZE};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// A guest memory range registered with KVM.
pub(crate) struct KvmRange {
    pub gpa: u64,
    pub size: u64,
    pub host_addr: u64,
}

fn map(gpa: u64, size: u64) -> Result<(GuestMemoryMmap, KvmRange)> {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(gpa), size as usize)])
        .map_err(|e| VmmError::Memory(format!("cannot map {} MiB: {e}", size >> 20)))?;
    let host_addr = mem
        .get_host_address(GuestAddress(gpa))
        .map_err(|e| VmmError::Memory(e.to_string()))? as u64;
    Ok((
        mem,
        KvmRange {
            gpa,
            size,
            host_addr,
        },
    ))
}

/// Private guest memory during launch.
pub struct PrivateMemory {
    mem: GuestMemoryMmap,
    range: KvmRange,
    written: BTreeSet<u64>,
}

impl PrivateMemory {
    /// Map `size` bytes of private memory at guest address 0.
    pub fn new(size: u64) -> Result<Self> {
        let (mem, range) = map(0, size)?;
        Ok(Self {
            mem,
            range,
            written: BTreeSet::new(),
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.range.size
    }

    pub(crate) fn kvm_range(&self) -> &KvmRange {
        &self.range
    }

    /// Write `bytes` at `gpa`, recording the pages touched.
    pub fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.mem
            .write_slice(bytes, GuestAddress(gpa))
            .map_err(|e| VmmError::Memory(format!("write at {gpa:#x}: {e}")))?;
        let last = gpa + bytes.len() as u64 - 1;
        self.written.extend(gpa / PAGE_SIZE..=last / PAGE_SIZE);
        Ok(())
    }

    /// Pages written so far, ascending (guest page numbers).
    pub fn written_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.written.iter().copied()
    }

    /// Read one page (for the measurement).
    pub fn page(&self, page: u64) -> Result<[u8; PAGE_SIZE as usize]> {
        let mut buf = [0u8; PAGE_SIZE as usize];
        self.mem
            .read_slice(&mut buf, GuestAddress(page * PAGE_SIZE))
            .map_err(|e| VmmError::Memory(e.to_string()))?;
        Ok(buf)
    }

    /// End launch: from now on the host cannot read or write private memory.
    pub fn seal(self) -> PrivateMapping {
        PrivateMapping { _mem: self.mem }
    }
}

/// Private memory after launch: kept mapped for KVM, unreachable from host code.
pub struct PrivateMapping {
    _mem: GuestMemoryMmap,
}

/// The shared window: control page and per-vCPU mailboxes.
pub struct SharedWindow {
    mem: GuestMemoryMmap,
    range: KvmRange,
    vcpus: u32,
}

impl SharedWindow {
    /// Map the shared window for `vcpus` vCPUs.
    pub fn new(vcpus: u32) -> Result<Self> {
        let size = ditto_protocol::memory::shared_window_size(vcpus);
        let (mem, range) = map(SHARED_WINDOW_GPA, size)?;
        Ok(Self { mem, range, vcpus })
    }

    pub(crate) fn kvm_range(&self) -> &KvmRange {
        &self.range
    }

    fn mailbox(&self, id: u32) -> GuestAddress {
        debug_assert!(id < self.vcpus);
        GuestAddress(mailbox_gpa(id))
    }

    /// A private copy of vCPU `id`'s mailbox header.
    pub fn read_mailbox(&self, id: u32) -> Mailbox {
        let mut buf = [0u8; std::mem::size_of::<Mailbox>()];
        // The window is mapped for every id < vcpus; a failure would leave zeros, which
        // decode as an invalid message rather than anything trusted.
        let _ = self.mem.read_slice(&mut buf, self.mailbox(id));
        bytemuck::pod_read_unaligned(&buf)
    }

    /// Write a task for vCPU `id`: input payload first, then the header fields.
    pub fn write_task(&self, id: u32, header: &Mailbox, input: &[u8]) -> Result<()> {
        if input.len() > IN_BUF_SIZE {
            return Err(VmmError::InvalidArgument(format!(
                "Task input of {} bytes exceeds the {IN_BUF_SIZE}-byte buffer",
                input.len()
            )));
        }
        let base = self.mailbox(id);
        let w = |bytes: &[u8], off: u64| {
            self.mem
                .write_slice(bytes, base.unchecked_add(off))
                .map_err(|e| VmmError::Memory(e.to_string()))
        };
        w(input, MAILBOX_IN_OFFSET)?;
        let start = std::mem::offset_of!(Mailbox, h_kind);
        let end = std::mem::offset_of!(Mailbox, started_seq);
        w(&bytemuck::bytes_of(header)[start..end], start as u64)
    }

    /// Copy `len` bytes (clamped to the buffer) of vCPU `id`'s output buffer.
    pub fn read_output(&self, id: u32, len: u32) -> Vec<u8> {
        let n = (len as usize).min(OUT_BUF_SIZE);
        let mut buf = vec![0u8; n];
        let _ = self
            .mem
            .read_slice(&mut buf, self.mailbox(id).unchecked_add(MAILBOX_OUT_OFFSET));
        buf
    }

    /// The sequence number of the task vCPU `id` last started (written by the guest
    /// without an exit).
    pub fn started_seq(&self, id: u32) -> u64 {
        self.mem
            .load::<u64>(
                self.mailbox(id).unchecked_add(offsets::STARTED_SEQ as u64),
                Ordering::Acquire,
            )
            .unwrap_or(0)
    }
}
