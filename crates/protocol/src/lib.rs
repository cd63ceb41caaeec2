//! The guest<->host ABI of Ditto, shared by the VMM (`crates/vmm`) and the guest runtime
//! (`guest/`). Every address, port, message kind and status code is defined here once.
//!
//! Files that must stay in sync with this crate: `guest/src/arch.rs` (the CPL0 exception
//! stubs use the mailbox offsets through `const` operands) and `guest/link.ld` (the image
//! base, [`memory::GUEST_IMAGE_BASE`]).
//!
//! Everything one side reads from the other is untrusted: [`decode_guest_message`] turns the
//! guest's bytes into a typed [`GuestMessage`] for the host, and [`decode_host_message`] does
//! the same for the guest. Neither panics on any input.
#![no_std]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod engine;
pub mod layout;
pub mod memory;
pub mod message;
pub mod wasm;

pub use layout::{BootInfo, Mailbox, VcpuBootInfo};
pub use message::*;

/// Version of this ABI. The guest reports it in its Ready message; the host refuses others.
pub const ABI_VERSION: u32 = 2;

/// The single I/O port the guest uses to ring the host (the "doorbell"). A 32-bit `out`
/// touches four ports, so the TSS I/O bitmap opens `DOORBELL_PORT..DOORBELL_PORT + 4`.
pub const DOORBELL_PORT: u16 = 0x00D0;

/// Number of consecutive ports a 32-bit doorbell write touches.
pub const DOORBELL_WIDTH: u16 = 4;

/// The maximum number of vCPUs (regular + worker) in one VM.
pub const MAX_VCPUS: usize = 64;

/// Size of the per-vCPU input payload buffer (host -> guest), bytes.
pub const IN_BUF_SIZE: usize = 1 << 20;

/// Size of the per-vCPU output payload buffer (guest -> host), bytes.
pub const OUT_BUF_SIZE: usize = 1 << 20;

/// Magic value at the start of [`BootInfo`] ("DITTOBI1").
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"DITTOBI1");
