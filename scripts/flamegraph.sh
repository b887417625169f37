#!/usr/bin/env bash
# A flame graph of `diandan up` serving the HTTP flows of `diandan bench` (scenario 8):
# perf attached to the server process for 8 s of the closed loop (64 flows in flight).
#
#   scripts/flamegraph.sh OUT.svg [SERVER_BIN]
#
# SERVER_BIN (default target/release/diandan) is the build profiled; the load generator is
# always target/release/diandan. Frames under 0.3% of the samples are left out (--minwidth 3.6
# px of 1200). Needs perf (linux-perf) and inferno (`cargo install inferno`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1")
server=$(realpath "${2:-target/release/diandan}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

DIANDAN_BENCH_SERVER="$server" RUST_LOG=warn target/release/diandan bench \
    --only http --out "$work/report" >"$work/bench.out" 2>"$work/bench.err" &
bench=$!
# The server starts, is seeded, then answers 5 s of /healthz before the flows begin.
pid=""
for _ in $(seq 1 200); do
    pid=$(pgrep -f -n "^$server up --data-dir $work" || true)
    [ -n "$pid" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { echo "flamegraph.sh: the server never started" >&2; cat "$work/bench.err" >&2; exit 1; }
until grep -q "baseline GET /healthz" "$work/bench.err"; do sleep 0.2; done
sleep 1
perf record -F 199 --call-graph dwarf -p "$pid" -o "$work/perf.data" -- sleep 8 2>/dev/null
wait "$bench"
grep -E "closed loop, HTTP" "$work/bench.err" >&2 || true
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf > "$work/folded"
inferno-flamegraph --minwidth 3.6 --title "diandan up, HTTP flows (closed loop, 64 in flight): $(basename "$server")" \
    < "$work/folded" > "$out"
echo "written $out" >&2
