#!/usr/bin/env bash
# Runs every check and test of the project: formatting, clippy (warnings are errors),
# and the whole test suite (unit tests and the end-to-end tests on real /dev/kvm).
# Under CI (CI=true) a missing /dev/kvm fails the VM tests; elsewhere they skip loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd guest && cargo fmt -- --check && cargo clippy --release --locked -- -D warnings)
(cd functions && cargo fmt -- --check)
cargo test --workspace --locked
