//! The Worker vCPU Abstraction Layer: everything a task handler needs, and nothing of the
//! protocol. It registers the vCPU with the host (`Ready`), then runs the worker loop
//!
//! ```text
//! loop { next = check_in(previous outcome); run(next) }
//! ```
//!
//! in which one doorbell exit both completes the previous task and fetches the next, so
//! steady state costs exactly one VM exit per task. The host may park this vCPU inside that
//! exit (that is how a worker sleeps), so sleeping never interrupts a task. Task handlers
//! see a private copy of their input and an output buffer, and return a result or an error
//! message; they never touch ports or the mailbox.

use crate::arch;
use alloc::vec::Vec;
use core::fmt::Write;
use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use ditto_protocol::memory::{MAILBOX_IN_OFFSET, MAILBOX_OUT_OFFSET};
use ditto_protocol::{
    decode_host_message, GuestMsgKind, Mailbox, TaskKind, TaskStatus, VcpuBootInfo, ABI_VERSION,
    FAULT_PANIC, IN_BUF_SIZE, OUT_BUF_SIZE,
};

/// One task, as a handler sees it.
pub struct Task<'a> {
    /// Host-assigned sequence number.
    pub seq: u64,
    /// Which built-in workload.
    pub kind: TaskKind,
    /// Its argument.
    pub arg: u64,
    /// A private copy of the input payload.
    pub input: &'a [u8],
}

/// A task handler's success: bytes written to the output buffer and a task-defined number.
pub struct Done {
    /// Bytes of output written.
    pub len: usize,
    /// Task-defined value reported to the host.
    pub value: u64,
}

/// What runs tasks on a worker vCPU.
pub trait TaskHandler {
    /// Run `task`, writing any output into `out`. An `Err` becomes a failed task whose
    /// message the host reports.
    fn run(
        &mut self,
        worker: &mut Worker,
        task: Task<'_>,
        out: &mut [u8],
    ) -> Result<Done, &'static str>;
}

/// This vCPU's view of its mailbox and buffers.
pub struct Worker {
    mb: *mut Mailbox,
    input: *const u8,
    output: *mut u8,
}

impl Worker {
    fn new(info: &VcpuBootInfo) -> Self {
        let base = info.mailbox;
        Self {
            mb: base as *mut Mailbox,
            input: (base + MAILBOX_IN_OFFSET) as *const u8,
            output: (base + MAILBOX_OUT_OFFSET) as *mut u8,
        }
    }

    /// Write the guest-side fields of the mailbox and ring the doorbell.
    fn send(&mut self, kind: GuestMsgKind, seq: u64, status: TaskStatus, len: usize, value: u64) {
        let mb = self.mb;
        // SAFETY: `mb` is this vCPU's mailbox in the shared window (mapped, writable, and
        // written by no other vCPU); volatile because the host reads it.
        unsafe {
            write_volatile(addr_of_mut!((*mb).g_seq), seq);
            write_volatile(addr_of_mut!((*mb).g_status), status as u32);
            write_volatile(addr_of_mut!((*mb).g_len), len as u32);
            write_volatile(addr_of_mut!((*mb).g_value), value);
            write_volatile(addr_of_mut!((*mb).g_kind), kind as u32);
        }
        arch::doorbell(kind);
    }

    /// The output buffer in the shared window.
    fn output(&mut self) -> &'static mut [u8] {
        // SAFETY: OUT_BUF_SIZE bytes at `output` belong to this vCPU's mailbox.
        unsafe { core::slice::from_raw_parts_mut(self.output, OUT_BUF_SIZE) }
    }

    /// Send one log line to the host (costs one exit). Truncated to the output buffer.
    #[allow(dead_code)]
    pub fn log(&mut self, line: &str) {
        let n = line.len().min(OUT_BUF_SIZE);
        self.output()[..n].copy_from_slice(&line.as_bytes()[..n]);
        self.send(GuestMsgKind::Log, 0, TaskStatus::Ok, n, 0);
    }

    /// A bare exit round trip.
    pub fn ping(&mut self) {
        self.send(GuestMsgKind::Ping, 0, TaskStatus::Ok, 0, 0);
    }

    /// Write raw guest fields and ring with a raw value (the BadMessage test hook).
    pub fn send_raw(&mut self, doorbell: u32, kind: u32, seq: u64, status: u32, len: u32) {
        let mb = self.mb;
        // SAFETY: as in `send`.
        unsafe {
            write_volatile(addr_of_mut!((*mb).g_seq), seq);
            write_volatile(addr_of_mut!((*mb).g_status), status);
            write_volatile(addr_of_mut!((*mb).g_len), len);
            write_volatile(addr_of_mut!((*mb).g_kind), kind);
        }
        arch::doorbell_raw(doorbell);
    }
}

/// Register with the host and serve tasks forever.
pub fn run(info: &'static VcpuBootInfo, handler: &mut dyn TaskHandler) -> ! {
    let mut w = Worker::new(info);
    let mut input: Vec<u8> = Vec::new();
    w.send(
        GuestMsgKind::Ready,
        ABI_VERSION as u64,
        TaskStatus::Ok,
        0,
        0,
    );
    loop {
        // SAFETY: copy the header out of shared memory once; validate only the copy.
        let header = unsafe { read_volatile(w.mb) };
        let (seq, status, len, value) = match decode_host_message(&header) {
            Ok(req) => {
                // SAFETY: our own mailbox; tells a polling host that the task started.
                unsafe { write_volatile(addr_of_mut!((*w.mb).started_seq), req.seq) };
                input.clear();
                let n = (req.len as usize).min(IN_BUF_SIZE);
                // SAFETY: IN_BUF_SIZE bytes at `input` belong to this mailbox; we copy them
                // into private memory so the host cannot change them under the task.
                input.extend_from_slice(unsafe { core::slice::from_raw_parts(w.input, n) });
                let out = w.output();
                let task = Task {
                    seq: req.seq,
                    kind: req.kind,
                    arg: req.arg,
                    input: &input,
                };
                match handler.run(&mut w, task, out) {
                    Ok(done) => (
                        req.seq,
                        TaskStatus::Ok,
                        done.len.min(OUT_BUF_SIZE),
                        done.value,
                    ),
                    Err(msg) => (req.seq, TaskStatus::Error, write_message(out, msg), 0),
                }
            }
            Err(e) => {
                let mut cursor = Cursor {
                    buf: w.output(),
                    len: 0,
                };
                let _ = write!(cursor, "Guest rejected the task message: {e}");
                (header.h_seq, TaskStatus::Rejected, cursor.len, 0)
            }
        };
        w.send(GuestMsgKind::CheckIn, seq, status, len, value);
    }
}

fn write_message(out: &mut [u8], msg: &str) -> usize {
    let n = msg.len().min(out.len());
    out[..n].copy_from_slice(&msg.as_bytes()[..n]);
    n
}

/// A bounded writer into a byte buffer; output past the end is dropped.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Report a panic to the host as a fault with its message; the host resets this vCPU.
pub fn report_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let addr = arch::current_info_addr();
    // SAFETY: GS points at this vCPU's boot info (set by the VMM before launch).
    let mut w = Worker::new(unsafe { &*(addr as *const VcpuBootInfo) });
    let mut cursor = Cursor {
        buf: w.output(),
        len: 0,
    };
    let _ = write!(cursor, "{}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(cursor, " at {}:{}", loc.file(), loc.line());
    }
    let len = cursor.len;
    let mb = w.mb;
    // SAFETY: our own mailbox.
    unsafe {
        write_volatile(addr_of_mut!((*mb).fault_vector), FAULT_PANIC);
        write_volatile(addr_of_mut!((*mb).fault_error), 0);
        write_volatile(addr_of_mut!((*mb).fault_rip), 0);
        write_volatile(addr_of_mut!((*mb).fault_addr), 0);
    }
    loop {
        w.send(GuestMsgKind::Fault, 0, TaskStatus::Error, len, 0);
    }
}
