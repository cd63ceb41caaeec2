//! Framing of the WebAssembly tasks. A `WasmInvoke` task's input is an [`InvokeHeader`]
//! followed by the JSON parameters; the output of `WasmInit` and `WasmInvoke` is a
//! [`WasmOutcome`] followed by the function's stdout, its stderr and a diagnostic message,
//! whose lengths the header gives. [`decode_outcome`] validates that framing for the host.

use crate::message::ProtocolError;
use bytemuck::{Pod, Zeroable};
use core::mem::size_of;

/// Limits and clock base for one invocation (host -> guest).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct InvokeHeader {
    /// Largest linear memory the instance may have, bytes.
    pub max_memory: u64,
    /// Instruction budget (wasmi fuel); 0 means unlimited.
    pub fuel: u64,
    /// Host wall-clock time (ns since the Unix epoch) when the task was written.
    pub realtime_ns: u64,
    /// Most stdout bytes kept; more is an error.
    pub max_stdout: u32,
    /// Most stderr bytes kept; more is truncated.
    pub max_stderr: u32,
}

/// Which part of a function a [`LoadChunk`] carries.
pub const PART_MODULE: u32 = 0;
/// See [`PART_MODULE`]: the precompiled artifact.
pub const PART_ARTIFACT: u32 = 1;

/// Largest module a VM accepts, bytes.
pub const MAX_MODULE_SIZE: u64 = 64 << 20;
/// Largest precompiled artifact a VM accepts, bytes.
pub const MAX_ARTIFACT_SIZE: u64 = 192 << 20;

/// Header of one `WasmLoad` chunk (host -> guest), followed by the chunk's bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct LoadChunk {
    /// [`PART_MODULE`] or [`PART_ARTIFACT`].
    pub part: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Size of the whole part, bytes.
    pub total: u64,
    /// Offset of this chunk in the part; chunks arrive in order.
    pub offset: u64,
}

/// What `WasmInit` reports after the outcome header (guest -> host).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct LoadReport {
    /// SHA-384 of the module bytes the guest received.
    pub module_sha384: [u8; 48],
    /// SHA-384 of the artifact bytes the guest received and mapped.
    pub artifact_sha384: [u8; 48],
    /// Code bytes sealed read+execute.
    pub code_bytes: u64,
}

/// Kinds of runtime measurement log entries.
pub const LOG_MODULE: u32 = 1;
/// See [`LOG_MODULE`]: a precompiled artifact that was mapped executable.
pub const LOG_ARTIFACT: u32 = 2;

/// Header of the runtime measurement log (guest -> host).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct LogHeader {
    /// Entries following.
    pub count: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// One runtime measurement log entry: what was loaded and its SHA-384 (the role of a
/// TDX RTMR extend or a vTPM PCR event).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct LogEntry {
    /// [`LOG_MODULE`] or [`LOG_ARTIFACT`].
    pub kind: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Size of what was measured, bytes.
    pub len: u64,
    /// Its SHA-384.
    pub sha384: [u8; 48],
    /// The log's running digest after this entry: SHA-384(previous ‖ kind ‖ len ‖ sha384),
    /// starting from 48 zero bytes.
    pub chained: [u8; 48],
}

/// Host side: decode a runtime measurement log.
pub fn decode_log(bytes: &[u8]) -> Result<&[LogEntry], ProtocolError> {
    let h = size_of::<LogHeader>();
    if bytes.len() < h {
        return Err(ProtocolError::TooLong {
            what: "Missing log header; output",
            len: bytes.len() as u64,
            max: h as u64,
        });
    }
    let header: LogHeader = bytemuck::pod_read_unaligned(&bytes[..h]);
    let need = header.count as u64 * size_of::<LogEntry>() as u64;
    let body = &bytes[h..];
    if need > body.len() as u64 {
        return Err(ProtocolError::TooLong {
            what: "Log entries",
            len: need,
            max: body.len() as u64,
        });
    }
    bytemuck::try_cast_slice(&body[..need as usize]).map_err(|_| ProtocolError::TooLong {
        what: "Misaligned log entries",
        len: need,
        max: 0,
    })
}

/// What happened to a WebAssembly task (guest -> host).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct WasmOutcome {
    /// [`WasmCode`] as a number.
    pub code: u32,
    /// The function's exit status (`proc_exit`), 0 if it returned.
    pub exit_code: i32,
    /// Bytes of stdout following this header.
    pub stdout_len: u32,
    /// Bytes of stderr following stdout.
    pub stderr_len: u32,
    /// Bytes of diagnostic message following stderr.
    pub message_len: u32,
    /// [`FLAG_STDERR_TRUNCATED`] and friends.
    pub flags: u32,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Time to compile the module on this worker (0 when cached), ns.
    pub compile_ns: u64,
    /// Time to instantiate, ns.
    pub instantiate_ns: u64,
    /// Time running `_start`, ns.
    pub run_ns: u64,
}

/// stderr was longer than the limit and was cut.
pub const FLAG_STDERR_TRUNCATED: u32 = 1;

crate::message::numbered_enum! {
    /// Result class of a WebAssembly task.
    WasmCode: u32 {
        /// It ran to completion (returned or exited with status 0).
        Ok = 0,
        /// It trapped (unreachable, out-of-bounds, division by zero, stack exhaustion...).
        Trap = 1,
        /// It called `proc_exit` with a non-zero status.
        Exit = 2,
        /// It wrote more to stdout than allowed.
        OutputTooLarge = 3,
        /// It used up its instruction budget.
        OutOfFuel = 4,
        /// No module is loaded in this VM.
        NoModule = 5,
        /// The module is not valid WebAssembly, or has no `_start`.
        BadModule = 6,
        /// The module could not be instantiated (unknown import, memory too large...).
        Instantiate = 7,
        /// A module is already loaded in this VM.
        AlreadyLoaded = 8,
        /// The function's loaded state is unusable (a vCPU was killed while changing it);
        /// the VM must be replaced.
        Poisoned = 9,
    }
}

/// A decoded outcome with its byte ranges.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The header.
    pub outcome: WasmOutcome,
    /// Its code.
    pub code: WasmCode,
    /// The function's stdout.
    pub stdout: &'a [u8],
    /// The function's stderr.
    pub stderr: &'a [u8],
    /// A diagnostic message from the runtime.
    pub message: &'a [u8],
}

/// Host side: validate the framing of a WebAssembly task's output.
pub fn decode_outcome(bytes: &[u8]) -> Result<Decoded<'_>, ProtocolError> {
    let h = size_of::<WasmOutcome>();
    if bytes.len() < h {
        return Err(ProtocolError::TooLong {
            what: "Missing outcome header; output",
            len: bytes.len() as u64,
            max: h as u64,
        });
    }
    let outcome: WasmOutcome = bytemuck::pod_read_unaligned(&bytes[..h]);
    let code = WasmCode::try_from(outcome.code)?;
    let body = &bytes[h..];
    let total = outcome.stdout_len as u64 + outcome.stderr_len as u64 + outcome.message_len as u64;
    if total > body.len() as u64 {
        return Err(ProtocolError::TooLong {
            what: "Outcome sections",
            len: total,
            max: body.len() as u64,
        });
    }
    let (stdout, rest) = body.split_at(outcome.stdout_len as usize);
    let (stderr, rest) = rest.split_at(outcome.stderr_len as usize);
    let message = &rest[..outcome.message_len as usize];
    Ok(Decoded {
        outcome,
        code,
        stdout,
        stderr,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_pinned() {
        assert_eq!(size_of::<InvokeHeader>(), 32);
        assert_eq!(size_of::<WasmOutcome>(), 56);
        assert_eq!(size_of::<LoadChunk>(), 24);
        assert_eq!(size_of::<LoadReport>(), 104);
        assert_eq!(size_of::<LogEntry>(), 112);
    }

    fn framed(o: WasmOutcome, body: &[u8]) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[..56].copy_from_slice(bytemuck::bytes_of(&o));
        b[56..56 + body.len()].copy_from_slice(body);
        b
    }

    #[test]
    fn decodes_sections_and_rejects_overlong() {
        let o = WasmOutcome {
            stdout_len: 2,
            stderr_len: 3,
            message_len: 1,
            ..Default::default()
        };
        let b = framed(o, b"{}errX");
        let d = decode_outcome(&b[..62]).expect("valid");
        assert_eq!(
            (d.stdout, d.stderr, d.message),
            (&b"{}"[..], &b"err"[..], &b"X"[..])
        );
        assert_eq!(d.code, WasmCode::Ok);
        assert!(decode_outcome(&b[..61]).is_err(), "sections past the end");
        let bad = WasmOutcome {
            code: 99,
            ..Default::default()
        };
        assert!(decode_outcome(&framed(bad, b"")).is_err());
        let huge = WasmOutcome {
            stdout_len: u32::MAX,
            stderr_len: u32::MAX,
            ..Default::default()
        };
        assert!(decode_outcome(&framed(huge, b"")).is_err());
        assert!(decode_outcome(&[0u8; 10]).is_err());
    }
}
