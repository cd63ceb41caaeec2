//! Test module: an integer division by zero that the compiler cannot see, compiled without
//! Rust's zero check, so the wasm `i32.div_u` instruction itself traps.
use std::num::NonZeroU32;

fn main() {
    let a = std::hint::black_box(7u32);
    let b = std::hint::black_box(0u32);
    // SAFETY: none; `b` is deliberately zero so that the division below reaches the
    // `i32.div_u` instruction, which traps in WebAssembly. Never run it natively.
    let d = unsafe { NonZeroU32::new_unchecked(b) };
    println!("{{\"value\":{}}}", a / d);
}
