//! Test module: traps at once with the wasm `unreachable` instruction.
fn main() {
    eprintln!("trap_unreachable: about to trap");
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}
