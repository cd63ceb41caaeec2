//! Test module: reads linear memory far past its end (address 0xFFFF_FFF0), so the wasm
//! load traps with an out-of-bounds memory access.
fn main() {
    let addr = std::hint::black_box(0xFFFF_FFF0usize);
    // SAFETY: none; this is deliberately an invalid read. In WebAssembly it is an
    // out-of-bounds load, which traps before anything is read. Never run it natively.
    let v = unsafe { std::ptr::read_volatile(addr as *const u32) };
    println!("{{\"value\":{v}}}");
}
