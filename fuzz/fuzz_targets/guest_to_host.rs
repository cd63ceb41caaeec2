//! Host side of the guest -> host protocol: a doorbell value and a mailbox header the
//! guest wrote (arbitrary bytes) must decode to a valid message or an error, never a panic,
//! and every length it accepts must fit the output buffer.
#![no_main]

use ditto_protocol::{decode_guest_message, GuestMessage, Mailbox, OUT_BUF_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let n = core::mem::size_of::<Mailbox>();
    let mut bytes = vec![0u8; 4 + n];
    let k = data.len().min(bytes.len());
    bytes[..k].copy_from_slice(&data[..k]);
    let doorbell = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mb: Mailbox = bytemuck::pod_read_unaligned(&bytes[4..]);
    match decode_guest_message(doorbell, &mb) {
        Ok(GuestMessage::CheckIn { len, .. })
        | Ok(GuestMessage::Log { len })
        | Ok(GuestMessage::Fault { len, .. }) => assert!(len as usize <= OUT_BUF_SIZE),
        Ok(_) | Err(_) => {}
    }
});
