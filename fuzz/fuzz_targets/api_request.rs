//! The API's request parsing: arbitrary bytes as an `Authorization` value, invocation
//! parameters and an action PUT body must parse or be refused, never panic.
#![no_main]

use ditto_platform::request::{action_put, basic_auth, invoke_params, MAX_PARAMS_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((uuid, key)) = basic_auth(text) {
            assert!(!uuid.contains(':'));
            let _ = key;
        }
    }
    if let Ok(m) = invoke_params(data) {
        assert!(data.len() <= MAX_PARAMS_BYTES);
        let _ = m.len();
    }
    let _ = action_put(data);
});
