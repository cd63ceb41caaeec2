#!/usr/bin/env bash
# The main job: builds everything (guest runtime and function catalog included), starts
# the Ditto platform (`ditto serve`, OpenWhisk API on 127.0.0.1:${DITTO_PORT:-3233}, data in
# a fresh directory), deploys the catalog functions, invokes one and prints its result,
# then keeps serving until Ctrl-C. Set DITTO_DEMO_EXIT=1 to stop after the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p ditto-cli
ditto=./target/release/ditto
port="${DITTO_PORT:-3233}"
data="$(mktemp -d -t ditto-data.XXXXXX)"
"$ditto" serve --listen "127.0.0.1:$port" --data-dir "$data" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
# The server writes wskprops once its listener is bound (connections queue from then on).
for _ in $(seq 1 100); do
    [ -f "$data/wskprops" ] && break

    kill -0 $server 2>/dev/null || { echo "ditto serve failed to start" >&2; exit 1; }
    sleep 0.1
done
export WSK_CONFIG_FILE="$data/wskprops"
"$ditto" catalog deploy
echo
echo "+ ditto action invoke fib -p n 25 --result"
"$ditto" action invoke fib -p n 25 --result
echo
echo "+ ditto action invoke html_template -p rows 3 -p cols 2 --result"
"$ditto" action invoke html_template -p rows 3 -p cols 2 --result
echo
echo "+ ditto activation list --limit 2"
"$ditto" activation list --limit 2 | grep -E '"(name|activationId|duration)"' || true
echo
echo "Try it yourself:  export WSK_CONFIG_FILE=$data/wskprops; $ditto action invoke matmul -p n 64 -r"
echo "Metrics:          http://127.0.0.1:$port/metrics"

if [ "${DITTO_DEMO_EXIT:-0}" = "1" ]; then
    exit 0
fi
echo "Serving until Ctrl-C."
wait $server
