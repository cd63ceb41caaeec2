#!/usr/bin/env bash
# The main job: builds everything (the guest runtime included) and boots an elastic VM
# with 1 regular and 4 worker vCPUs, runs 1000 tasks on it and prints per-vCPU statistics
# and the launch measurement. Extra arguments go to `ditto vm run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p ditto-cli
exec ./target/release/ditto vm run --regular 1 --workers 4 --tasks 1000 --task spin:100000 "$@"
