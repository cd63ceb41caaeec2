//! The runtime measurement log: what code this VM was given after launch (the module and
//! the precompiled artifact), as SHA-384 entries chained into a running digest, the role
//! a TDX RTMR or a vTPM PCR plays. It lives in private memory; the host can read a copy
//! (`RuntimeLog` task) but cannot change it, and a later attestation report can cover
//! its digest.

use crate::sync;
use core::cell::UnsafeCell;
use core::sync::atomic::AtomicUsize;
use ditto_protocol::wasm::{LogEntry, LogHeader};
use sha2::{Digest, Sha384};

const MAX_ENTRIES: usize = 16;

struct Log {
    entries: [LogEntry; MAX_ENTRIES],
    n: usize,
    digest: [u8; 48],
}

struct Shared(UnsafeCell<Log>, AtomicUsize);
// SAFETY: the log is only touched under its lock (the AtomicUsize).
unsafe impl Sync for Shared {}
static LOG: Shared = Shared(
    UnsafeCell::new(Log {
        entries: [LogEntry {
            kind: 0,
            reserved: 0,
            len: 0,
            sha384: [0; 48],
            chained: [0; 48],
        }; MAX_ENTRIES],
        n: 0,
        digest: [0; 48],
    }),
    AtomicUsize::new(0),
);

/// Append an entry; false if the log is full.
pub fn extend(kind: u32, len: u64, sha384: [u8; 48]) -> bool {
    sync::lock(&LOG.1);
    // SAFETY: we hold the log's lock.
    let log = unsafe { &mut *LOG.0.get() };
    let ok = log.n < MAX_ENTRIES;
    if ok {
        let mut h = Sha384::new();
        h.update(log.digest);
        h.update(kind.to_le_bytes());
        h.update(len.to_le_bytes());
        h.update(sha384);
        log.digest = h.finalize().into();
        log.entries[log.n] = LogEntry {
            kind,
            reserved: 0,
            len,
            sha384,
            chained: log.digest,
        };
        log.n += 1;
    }
    sync::unlock(&LOG.1);
    ok
}

/// Write the log (header and entries) into `out`; returns the bytes written.
pub fn report(out: &mut [u8]) -> usize {
    sync::lock(&LOG.1);
    // SAFETY: we hold the log's lock.
    let log = unsafe { &*LOG.0.get() };
    let h = core::mem::size_of::<LogHeader>();
    let header = LogHeader {
        count: log.n as u32,
        reserved: 0,
    };
    out[..h].copy_from_slice(bytemuck::bytes_of(&header));
    let body = bytemuck::cast_slice::<LogEntry, u8>(&log.entries[..log.n]);
    out[h..h + body.len()].copy_from_slice(body);
    sync::unlock(&LOG.1);
    h + body.len()
}
