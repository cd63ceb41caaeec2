//! The entry point shared by the function binaries (the WebAssembly modules).
//!
//! Contract: JSON parameters on stdin (empty stdin means `{}`), the JSON result on stdout
//! (one line), log lines on stderr. On an error the message goes to stderr as
//! `<name>: error: <message>`, nothing is written to stdout, and the exit code is 1.

use serde_json::Value;
use std::io::{Read, Write};
use std::process::ExitCode;

/// Run `kernel` (the catalog function `name`) as a program (see the module docs).
///
/// The binaries pass their kernel directly rather than looking it up in
/// [`crate::CATALOG`], so each module links only its own kernel.
pub fn main(name: &str, kernel: fn(&Value) -> crate::Result<Value>) -> ExitCode {
    match run(kernel) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{name}: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(kernel: fn(&Value) -> crate::Result<Value>) -> Result<(), String> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let params = parse_params(&input)?;
    let result = kernel(&params).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &result).map_err(|e| format!("writing stdout: {e}"))?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(|e| format!("writing stdout: {e}"))
}

/// Parse stdin: empty (or only whitespace) is `null`, which every function reads as `{}`.
pub fn parse_params(input: &[u8]) -> Result<Value, String> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(input).map_err(|e| format!("parameters are not valid JSON: {e}"))
}
