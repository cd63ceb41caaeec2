//! Builds the freestanding guest runtime in `guest/` (its own Cargo workspace with its own
//! flags) and copies the ELF into OUT_DIR, where `src/lib.rs` embeds it. This is the one
//! step that produces the guest; every host build and test goes through it.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .expect("workspace root exists");
    let guest = root.join("guest");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guest");
    for p in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "link.ld",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", guest.join(p).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("crates/protocol/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("crates/protocol/Cargo.toml").display()
    );

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guest)
        .args(["build", "--release", "--target-dir"])
        .arg(&target_dir);
    // The guest has its own flags (guest/.cargo/config.toml); nothing of the host build's
    // configuration may leak into it.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .expect("failed to run cargo to build the guest");
    if !out.status.success() {
        panic!(
            "building the guest runtime failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let elf = target_dir.join("x86_64-unknown-none/release/ditto-guest");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("ditto-guest.elf");
    std::fs::copy(&elf, &dest).expect("guest ELF exists after a successful build");
}
