//! Link the guest as a static, freestanding, non-PIE ELF at the address in `link.ld`
//! (rust-lld, the x86_64-unknown-none target's linker).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for arg in [
        "--gc-sections",
        "--build-id=none",
        "-z",
        "max-page-size=4096",
        "--no-pie",
        "-static",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    println!("cargo:rerun-if-changed=link.ld");
}
