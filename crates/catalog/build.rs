//! Builds the function modules in `functions/` (a Cargo workspace of its own) for
//! wasm32-wasip1 in release, and copies every `.wasm` into OUT_DIR, where `src/lib.rs`
//! embeds them.
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip1";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .expect("workspace root exists");
    let functions = root.join("functions");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("functions");
    for p in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", functions.join(p).display());
    }

    check_wasm_target();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&functions)
        .args(["build", "--release", "--bins", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    // The modules have their own profile (functions/Cargo.toml); nothing of the host
    // build's configuration may leak into them.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .expect("failed to run cargo to build the function modules");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("may not be installed") || stderr.contains("can't find crate for `std`")
        {
            missing_target();
        }
        panic!("building the function modules (functions/) failed:\n{stderr}");
    }

    let built = target_dir.join(WASM_TARGET).join("release");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let bins = functions.join("src/bin");
    let entries = std::fs::read_dir(&bins).expect("functions/src/bin exists");
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 name");
        let wasm = built.join(format!("{name}.wasm"));
        copy(&wasm, &out_dir.join(format!("{name}.wasm")));
    }
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!("copying {} failed: {e}", from.display());
    }
}

/// Fail early, with the fix, when the standard library for wasm32-wasip1 is missing.
fn check_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output();
    let present = match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&dir).is_dir()
        }
        _ => false,
    };
    if !present {
        missing_target();
    }
}

fn missing_target() -> ! {
    panic!(
        "the Rust target {WASM_TARGET} is not installed, so the function modules in \
         functions/ cannot be built: run `rustup target add {WASM_TARGET}` \
         (or scripts/setup.sh, which does it)"
    );
}
