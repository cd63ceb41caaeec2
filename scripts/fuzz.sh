#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer, nightly toolchain) of Ditto's untrusted-input
# parsers: guest_to_host and host_to_guest (the protocol decoders, both directions),
# wasm_outcome (the WebAssembly task framing) and api_request (API request parsing).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 20 s, every target)
# Starts from the committed corpus in fuzz/corpus/<target>; new inputs go to a scratch copy
# (pass DITTO_FUZZ_KEEP=1 to add them to fuzz/corpus). A crash fails the script and leaves
# the input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(guest_to_host host_to_guest wasm_outcome api_request)
fi
cargo +nightly fuzz build
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    if [ "${DITTO_FUZZ_KEEP:-0}" = "1" ]; then
        work="$corpus"
    else
        work="$(mktemp -d -t "ditto-fuzz-$t.XXXXXX")"
        cp -r "$corpus/." "$work/" 2>/dev/null || true
    fi
    log="$(mktemp -t "ditto-fuzz-$t-log.XXXXXX")"
    if ! cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz: $t FAILED (input saved under fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    execs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)"
    if [ -z "$execs" ]; then
        execs="$(grep -Eo '#[0-9]+' "$log" | tail -1 | tr -d '#')"
    fi
    cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo '?')"
    echo "fuzz: $t: ${execs:-?} executions in ${secs} s, coverage ${cov} edges, 0 findings"
    [ "$work" != "$corpus" ] && rm -rf "$work"
    rm -f "$log"
done
