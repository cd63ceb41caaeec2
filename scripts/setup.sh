#!/usr/bin/env bash
# Installs what Ditto needs on a fresh machine (idempotent, quiet when all is present):
# the Rust toolchain components it uses, the wasm32-wasip1 target of the function
# catalog, and cargo-fuzz (from crates.io) for scripts/fuzz.sh. The guest builds for the host's own target
# triple, so no extra rustup target is needed for it.
set -euo pipefail
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust with rustup first" >&2
    exit 1
fi
if command -v rustup >/dev/null 2>&1; then
    for comp in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
    done
    # The function catalog (functions/) is built for WASI preview 1.
    rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
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
