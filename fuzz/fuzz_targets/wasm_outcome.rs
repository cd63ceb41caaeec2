//! The WebAssembly task framing (guest -> host): an arbitrary output buffer must decode to
//! sections that lie inside it, or to an error, never a panic.
#![no_main]

use ditto_protocol::wasm::decode_outcome;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = decode_outcome(data) {
        let h = core::mem::size_of_val(&d.outcome);
        assert!(h + d.stdout.len() + d.stderr.len() + d.message.len() <= data.len());
        assert_eq!(d.stdout.len(), d.outcome.stdout_len as usize);
    }
});
