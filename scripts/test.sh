#!/usr/bin/env bash
# Runs every check and test of the project: formatting, clippy (warnings are errors),
# the whole test suite (unit tests, the end-to-end and fault-injection tests on real
# /dev/kvm) and a one-minute soak (fuzzing: scripts/fuzz.sh, see below).
# Under CI (CI=true) a missing /dev/kvm fails the VM tests; elsewhere they skip loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd guest && cargo fmt -- --check && cargo clippy --release --locked -- -D warnings)
(cd functions && cargo fmt -- --check)
cargo test --workspace --locked
# Coverage-guided fuzzing runs separately (`scripts/fuzz.sh [SECONDS]`): its build uses the
# nightly toolchain, under which the guest (built by crates/guest-image) lacks the
# x86_64-unknown-none target; set DITTO_FUZZ_SECONDS to run it here anyway.
if [ -n "${DITTO_FUZZ_SECONDS:-}" ]; then
    bash scripts/fuzz.sh "$DITTO_FUZZ_SECONDS"
fi
# The soak: one minute of mixed two-tenant load against a real `ditto serve` (the binary
# cargo test just built); exit status 2 if any accepted invocation was lost.
if [ -e /dev/kvm ]; then
    ./target/debug/ditto bench soak --minutes "${DITTO_SOAK_MINUTES:-1}" --out target/ci-reports
fi
