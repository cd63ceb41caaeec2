//! Message kinds, task kinds, status codes, and the validating decoders that turn an
//! untrusted [`Mailbox`] copy into a typed message.
//!
//! The exchange, one doorbell exit per task in steady state:
//!
//! 1. On boot each vCPU writes `Ready` (with its ABI version) and rings the doorbell.
//! 2. The host answers, on that vCPU's own thread, by writing a `Task` into the mailbox and
//!    resuming the vCPU (or by parking the thread first: that is how a worker sleeps).
//! 3. The guest runs the task, writes a `CheckIn` with the task's outcome, and rings again;
//!    the host completes the task and writes the next one in the same exit.
//! 4. `Fault` (from the CPL0 exception stubs or the guest's panic handler), `Log` and `Ping`
//!    are the other guest messages; `Log` and `Ping` are answered by resuming at once.

use crate::{Mailbox, ABI_VERSION, IN_BUF_SIZE, OUT_BUF_SIZE};
use core::fmt;

macro_rules! numbered_enum_impl {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $v:ident = $n:expr,)+ }) => {
        $(#[$m])*
        #[repr($repr)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v = $n,)+ }

        impl TryFrom<$repr> for $name {
            type Error = ProtocolError;
            fn try_from(v: $repr) -> Result<Self, ProtocolError> {
                match v {
                    $($n => Ok(Self::$v),)+
                    other => Err(ProtocolError::UnknownValue {
                        what: stringify!($name),
                        value: other as u64,
                    }),
                }
            }
        }
    };
}

pub(crate) use numbered_enum_impl as numbered_enum;

numbered_enum_impl! {
    /// What the guest says when it rings the doorbell (also the doorbell's 32-bit value).
    GuestMsgKind: u32 {
        /// The vCPU booted (or was reset) and registers; `g_seq` carries its ABI version.
        Ready = 1,
        /// The previous task is done (`g_seq`, `g_status`, `g_len`, `g_value`); give me the next.
        CheckIn = 2,
        /// An exception or a panic; the `fault_*` fields say which.
        Fault = 3,
        /// A log line of `g_len` bytes in the output buffer; resume me.
        Log = 4,
        /// Do nothing and resume me (used to time the bare exit round trip).
        Ping = 5,
    }
}

numbered_enum_impl! {
    /// What the host writes into `h_kind`.
    HostMsgKind: u32 {
        /// Run the task described by `h_task`, `h_seq`, `h_arg`, `h_len`.
        Task = 1,
    }
}

numbered_enum_impl! {
    /// Built-in workloads of the guest runtime.
    TaskKind: u32 {
        /// Return at once.
        Noop = 0,
        /// Copy the input payload to the output.
        Echo = 1,
        /// Spin for `h_arg` iterations of integer work; `g_value` is a checksum.
        Spin = 2,
        /// A floating-point loop of `h_arg` iterations; the result's bits go in `g_value`.
        Float = 3,
        /// Ring the doorbell with `Ping` `h_arg` times, then check in.
        Ping = 4,
        /// Raise CPU exception `h_arg` (test hook for fault recovery).
        Fault = 5,
        /// Loop forever (test hook for the deadline watchdog).
        Hang = 6,
        /// Send a malformed message of variant `h_arg` (test hook for validation).
        BadMessage = 7,
        /// Panic with a message (test hook for panic reports).
        Panic = 8,
        /// Regular vCPU: load the function whose module and precompiled artifact arrived
        /// in [`TaskKind::WasmLoad`] chunks: hash both into the runtime measurement log,
        /// check the artifact, map its code read+execute, and keep it as this VM's
        /// function (once per VM). Output: [`crate::wasm::WasmOutcome`] framing followed
        /// (as stdout) by a [`crate::wasm::LoadReport`].
        WasmInit = 9,
        /// Worker: run the VM's function on the input ([`crate::wasm::InvokeHeader`] then
        /// JSON parameters). Output: [`crate::wasm::WasmOutcome`] framing.
        WasmInvoke = 10,
        /// Regular vCPU: one chunk of the function's module or artifact (input: a
        /// [`crate::wasm::LoadChunk`] then the bytes). Chunks of a part arrive in order.
        WasmLoad = 11,
        /// Regular vCPU: report the runtime measurement log (output: a
        /// [`crate::wasm::LogHeader`] then its [`crate::wasm::LogEntry`]s).
        RuntimeLog = 12,
    }
}

numbered_enum_impl! {
    /// Outcome of a task, reported in a check-in.
    TaskStatus: u32 {
        /// The task succeeded; the output buffer holds its result.
        Ok = 0,
        /// The task failed; the output buffer holds a UTF-8 error message.
        Error = 1,
        /// The guest rejected the host's task message as malformed.
        Rejected = 2,
    }
}

numbered_enum_impl! {
    /// What a vCPU is for.
    VcpuKind: u32 {
        /// A regular vCPU: always awake, runs no tasks.
        Regular = 0,
        /// A worker vCPU: runs tasks; the host may sleep it at a check-in.
        Worker = 1,
    }
}

/// `fault_vector` value the guest's panic handler uses (not a CPU vector).
pub const FAULT_PANIC: u64 = 0x100;

/// Arguments of the [`TaskKind::Fault`] test hook beyond raw vectors: each breaks a W^X
/// or read-only rule and must end in a page fault (#PF, vector 14) that costs only that
/// task.
pub mod fault_hook {
    /// Execute bytes on the vCPU's heap.
    pub const EXEC_HEAP: u64 = 0x200;
    /// Execute bytes in the shared window.
    pub const EXEC_WINDOW: u64 = 0x201;
    /// Write into the guest image's own text.
    pub const WRITE_TEXT: u64 = 0x202;
    /// Write into the boot information block.
    pub const WRITE_BOOT_INFO: u64 = 0x203;
}

/// Variants of the [`TaskKind::BadMessage`] test hook.
pub mod bad_message {
    /// Ring with a doorbell value that is no message kind.
    pub const UNKNOWN_KIND: u64 = 0;
    /// Check in with an output length larger than the output buffer.
    pub const OVERLONG: u64 = 1;
    /// Check in with a status that does not exist.
    pub const BAD_STATUS: u64 = 2;
    /// Check in for a task sequence number that was never dispatched.
    pub const WRONG_SEQ: u64 = 3;
    /// Doorbell value and `g_kind` disagree.
    pub const KIND_MISMATCH: u64 = 4;
}

/// A validated guest -> host message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMessage {
    /// The vCPU is (re)booted and ready.
    Ready,
    /// A task finished.
    CheckIn {
        /// Sequence number of the finished task.
        seq: u64,
        /// Its outcome.
        status: TaskStatus,
        /// Bytes of output (≤ [`OUT_BUF_SIZE`]).
        len: u32,
        /// Task-defined number.
        value: u64,
    },
    /// An exception or panic.
    Fault {
        /// Exception vector (0..32) or [`FAULT_PANIC`].
        vector: u64,
        /// Error code.
        error: u64,
        /// Faulting instruction.
        rip: u64,
        /// Faulting address (page faults).
        addr: u64,
        /// Bytes of panic message in the output buffer (0 for CPU exceptions).
        len: u32,
    },
    /// A log line of `len` bytes in the output buffer.
    Log {
        /// Length in bytes.
        len: u32,
    },
    /// A bare round trip.
    Ping,
}

/// A validated host -> guest task request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRequest {
    /// Sequence number to echo in the check-in.
    pub seq: u64,
    /// What to run.
    pub kind: TaskKind,
    /// Its argument.
    pub arg: u64,
    /// Bytes of input (≤ [`IN_BUF_SIZE`]).
    pub len: u32,
}

/// Why a message was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A numeric field held a value outside its enum.
    UnknownValue {
        /// The enum's name.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// The doorbell value and the mailbox's `g_kind` disagree.
    KindMismatch {
        /// The doorbell value.
        doorbell: u32,
        /// The mailbox field.
        mailbox: u32,
    },
    /// A length exceeds its buffer.
    TooLong {
        /// Which length.
        what: &'static str,
        /// The length found.
        len: u64,
        /// The largest allowed.
        max: u64,
    },
    /// The guest speaks another ABI version.
    VersionMismatch {
        /// The version the guest reported.
        guest: u64,
    },
    /// A fault report names a vector that is no CPU exception.
    BadVector(u64),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownValue { what, value } => write!(f, "Unknown {what} value {value}"),
            Self::KindMismatch { doorbell, mailbox } => write!(
                f,
                "Doorbell value {doorbell} does not match mailbox message kind {mailbox}"
            ),
            Self::TooLong { what, len, max } => {
                write!(f, "{what} of {len} bytes exceeds the maximum of {max}")
            }
            Self::VersionMismatch { guest } => write!(
                f,
                "Guest speaks ABI version {guest}, host speaks {ABI_VERSION}"
            ),
            Self::BadVector(v) => write!(f, "Fault report names invalid vector {v}"),
        }
    }
}

fn check_len(what: &'static str, len: u32, max: usize) -> Result<u32, ProtocolError> {
    if len as usize > max {
        return Err(ProtocolError::TooLong {
            what,
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(len)
}

/// Host side: validate what the guest wrote. `doorbell` is the 32-bit value of the `out`
/// that caused the exit; `mb` is a private copy of the guest's mailbox header.
pub fn decode_guest_message(doorbell: u32, mb: &Mailbox) -> Result<GuestMessage, ProtocolError> {
    let kind = GuestMsgKind::try_from(doorbell)?;
    if mb.g_kind != doorbell {
        return Err(ProtocolError::KindMismatch {
            doorbell,
            mailbox: mb.g_kind,
        });
    }
    Ok(match kind {
        GuestMsgKind::Ready => {
            if mb.g_seq != ABI_VERSION as u64 {
                return Err(ProtocolError::VersionMismatch { guest: mb.g_seq });
            }
            GuestMessage::Ready
        }
        GuestMsgKind::CheckIn => GuestMessage::CheckIn {
            seq: mb.g_seq,
            status: TaskStatus::try_from(mb.g_status)?,
            len: check_len("Check-in output", mb.g_len, OUT_BUF_SIZE)?,
            value: mb.g_value,
        },
        GuestMsgKind::Fault => {
            if mb.fault_vector >= 32 && mb.fault_vector != FAULT_PANIC {
                return Err(ProtocolError::BadVector(mb.fault_vector));
            }
            GuestMessage::Fault {
                vector: mb.fault_vector,
                error: mb.fault_error,
                rip: mb.fault_rip,
                addr: mb.fault_addr,
                len: if mb.fault_vector == FAULT_PANIC {
                    check_len("Panic message", mb.g_len, OUT_BUF_SIZE)?
                } else {
                    0
                },
            }
        }
        GuestMsgKind::Log => GuestMessage::Log {
            len: check_len("Log line", mb.g_len, OUT_BUF_SIZE)?,
        },
        GuestMsgKind::Ping => GuestMessage::Ping,
    })
}

/// Guest side: validate what the host wrote.
pub fn decode_host_message(mb: &Mailbox) -> Result<TaskRequest, ProtocolError> {
    match HostMsgKind::try_from(mb.h_kind)? {
        HostMsgKind::Task => Ok(TaskRequest {
            seq: mb.h_seq,
            kind: TaskKind::try_from(mb.h_task)?,
            arg: mb.h_arg,
            len: check_len("Task input", mb.h_len, IN_BUF_SIZE)?,
        }),
    }
}

/// Name of a CPU exception vector, for error messages.
pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack fault (#SS)",
        13 => "general protection (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating point (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating point (#XM)",
        FAULT_PANIC => "guest panic",
        _ => "CPU exception",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkin(seq: u64, status: u32, len: u32) -> Mailbox {
        Mailbox {
            g_kind: GuestMsgKind::CheckIn as u32,
            g_seq: seq,
            g_status: status,
            g_len: len,
            g_value: 42,
            ..Mailbox::default()
        }
    }

    #[test]
    fn valid_checkin_decodes() {
        let m = checkin(7, 0, 3);
        assert_eq!(
            decode_guest_message(2, &m),
            Ok(GuestMessage::CheckIn {
                seq: 7,
                status: TaskStatus::Ok,
                len: 3,
                value: 42
            })
        );
    }

    #[test]
    fn ready_checks_version() {
        let mut m = Mailbox {
            g_kind: 1,
            g_seq: ABI_VERSION as u64,
            ..Mailbox::default()
        };
        assert_eq!(decode_guest_message(1, &m), Ok(GuestMessage::Ready));
        m.g_seq = 99;
        assert_eq!(
            decode_guest_message(1, &m),
            Err(ProtocolError::VersionMismatch { guest: 99 })
        );
    }

    #[test]
    fn rejects_unknown_kind_mismatch_bad_status_and_overlong() {
        let m = checkin(1, 0, 0);
        assert!(matches!(
            decode_guest_message(0xdead, &m),
            Err(ProtocolError::UnknownValue {
                what: "GuestMsgKind",
                value: 0xdead
            })
        ));
        assert!(matches!(
            decode_guest_message(GuestMsgKind::Ping as u32, &m),
            Err(ProtocolError::KindMismatch { .. })
        ));
        assert!(matches!(
            decode_guest_message(2, &checkin(1, 9, 0)),
            Err(ProtocolError::UnknownValue {
                what: "TaskStatus",
                value: 9
            })
        ));
        let too_long = OUT_BUF_SIZE as u32 + 1;
        assert!(matches!(
            decode_guest_message(2, &checkin(1, 0, too_long)),
            Err(ProtocolError::TooLong { .. })
        ));
        assert!(decode_guest_message(2, &checkin(1, 0, OUT_BUF_SIZE as u32)).is_ok());
        assert!(decode_guest_message(2, &checkin(1, 0, u32::MAX)).is_err());
    }

    #[test]
    fn fault_vectors_are_validated() {
        let mut m = Mailbox {
            g_kind: 3,
            fault_vector: 14,
            fault_addr: 0x1000,
            ..Mailbox::default()
        };
        assert!(matches!(
            decode_guest_message(3, &m),
            Ok(GuestMessage::Fault {
                vector: 14,
                addr: 0x1000,
                len: 0,
                ..
            })
        ));
        m.fault_vector = 40;
        assert_eq!(
            decode_guest_message(3, &m),
            Err(ProtocolError::BadVector(40))
        );
        m.fault_vector = FAULT_PANIC;
        m.g_len = 12;
        assert!(matches!(
            decode_guest_message(3, &m),
            Ok(GuestMessage::Fault { len: 12, .. })
        ));
        m.g_len = u32::MAX;
        assert!(decode_guest_message(3, &m).is_err());
    }

    #[test]
    fn host_messages_are_validated() {
        let mut m = Mailbox {
            h_kind: 1,
            h_task: 2,
            h_seq: 5,
            h_arg: 100,
            h_len: 0,
            ..Mailbox::default()
        };
        assert_eq!(
            decode_host_message(&m),
            Ok(TaskRequest {
                seq: 5,
                kind: TaskKind::Spin,
                arg: 100,
                len: 0
            })
        );
        m.h_task = 1000;
        assert!(decode_host_message(&m).is_err());
        m.h_task = 1;
        m.h_len = IN_BUF_SIZE as u32 + 1;
        assert!(decode_host_message(&m).is_err());
        m.h_len = 0;
        m.h_kind = 0;
        assert!(decode_host_message(&m).is_err());
    }

    #[test]
    fn every_enum_round_trips() {
        for k in [
            GuestMsgKind::Ready,
            GuestMsgKind::CheckIn,
            GuestMsgKind::Fault,
            GuestMsgKind::Log,
            GuestMsgKind::Ping,
        ] {
            assert_eq!(GuestMsgKind::try_from(k as u32), Ok(k));
        }
        for t in 0..=12u32 {
            assert_eq!(TaskKind::try_from(t).map(|k| k as u32), Ok(t));
        }
        assert!(TaskKind::try_from(13).is_err());
        for s in 0..=2u32 {
            assert_eq!(TaskStatus::try_from(s).map(|k| k as u32), Ok(s));
        }
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes() {
        // A cheap deterministic fuzz: xorshift over whole headers.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut bytes = [0u8; core::mem::size_of::<Mailbox>()];
            for b in bytes.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let m: Mailbox = bytemuck::pod_read_unaligned(&bytes);
            let _ = decode_guest_message((x >> 32) as u32 % 8, &m);
            let _ = decode_host_message(&m);
        }
    }
}
