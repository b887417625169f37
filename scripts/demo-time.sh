#!/usr/bin/env bash
# How long `diandan up --demo` takes to replay its history and settle: the server is started on
# a fresh data dir and its CPU sampled every 2 s until it is idle (under 10% of one core);
# prints the elapsed time, the longest read-model WAL seen and the events written, then the
# replay's own log line (`demo history replayed … seconds=`).
#
#   scripts/demo-time.sh [ORDERS] [SERVER_BIN]
#
# ORDERS (default 20000, `--demo-history`); SERVER_BIN (default target/release/diandan).
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-20000}
server=$(realpath "${2:-target/release/diandan}")
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
start=$(date +%s%N)
RUST_LOG=warn,diandan=info "$server" up --demo --demo-history "$orders" --data-dir "$dir" \
    --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 >"$dir/log" 2>&1 &
pid=$!
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
longest=0
sleep 3
while true; do
    a=$(ticks); sleep 2; b=$(ticks)
    wal=$(stat -c %s "$dir/read.db-wal" 2>/dev/null || echo 0)
    [ "$wal" -gt "$longest" ] && longest=$wal
    # 2 s at 100 ticks/s: under 20 ticks is under 10% of one core.
    [ $((b - a)) -lt 20 ] && break
done
elapsed_ms=$((($(date +%s%N) - start) / 1000000 - 2000))
events=$(sqlite3 "file:$dir/events.db?mode=ro" 'SELECT MAX(position) FROM events' 2>/dev/null || echo "?") # sqlite3 optional
printf 'settled after %d.%d s (%s orders); read model WAL at most %d MB; %s events\n' \
    $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$orders" $((longest / 1000000)) "$events"
sed 's/\x1b\[[0-9;]*m//g' "$dir/log" | grep "demo history replayed" || true
