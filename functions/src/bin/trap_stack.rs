//! Test module: unbounded recursion with a frame in linear memory, so it exhausts the
//! stack (the interpreter's call stack or the shadow stack, whichever comes first).
use std::hint::black_box;

fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    // Never true, but the compiler cannot know: keeps the recursion "conditional".
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(black_box(depth + 1)).wrapping_add(frame[3])
}

fn main() {
    println!("{{\"value\":{}}}", recurse(black_box(0)));
}
