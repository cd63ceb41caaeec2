#!/usr/bin/env bash
# Installs what Ditto needs on a fresh machine (idempotent, quiet when all is present):
# the Rust toolchain components it uses, the wasm32-wasip1 target of the function catalog,
# the x86_64-unknown-none target of the guest runtime (wasmtime's no_std runtime runs
# only on an OS-less target), and cargo-fuzz (from crates.io) for scripts/fuzz.sh.
set -euo pipefail
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust with rustup first" >&2
    exit 1
fi
if command -v rustup >/dev/null 2>&1; then
    for comp in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
    done
    # functions/ is built for WASI preview 1, the guest runtime for the OS-less target.
    for target in wasm32-wasip1 x86_64-unknown-none; do
        rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
    done
    # Fuzzing (scripts/fuzz.sh) uses cargo-fuzz on the nightly toolchain (preinstalled here;
    # it cannot be downloaded on these machines).
    if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        echo "setup: WARNING: no nightly toolchain: scripts/fuzz.sh cannot run" >&2
    fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if [ ! -e /dev/kvm ]; then
    echo "setup: WARNING: /dev/kvm is missing; VMs cannot start on this machine" >&2
fi
