//! Guest side of the host -> guest protocol: a mailbox header the host wrote (arbitrary
//! bytes) must decode to a task or an error, never a panic, with its input length within
//! the input buffer.
#![no_main]

use ditto_protocol::{decode_host_message, Mailbox, IN_BUF_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = vec![0u8; core::mem::size_of::<Mailbox>()];
    let k = data.len().min(bytes.len());
    bytes[..k].copy_from_slice(&data[..k]);
    let mb: Mailbox = bytemuck::pod_read_unaligned(&bytes);
    if let Ok(t) = decode_host_message(&mb) {
        assert!(t.len as usize <= IN_BUF_SIZE);
    }
});
