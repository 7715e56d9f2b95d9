#!/usr/bin/env bash
# Issue 3 figure: one embedded relay node, one room of 50 viewers, the customer streaming
# 200 events/s of 200 B for 60 s; once without and once with one stalled viewer (a fresh relay
# per run). Relay RSS is sampled by loadtest every second and by this script every 5 s.
#
#   loadtest/bench/issue3-stalled-viewer.sh            # DURATION=60s, SIZE=200 by default
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/issue3}"
DURATION="${DURATION:-60s}"
SIZE="${SIZE:-200}"
mkdir -p "$OUT"

machine_notes | tee "$OUT/machine.txt"
for stalled in 0 1; do
    read -r ws admin <<<"$(free_ports 2)"
    start_relay "$OUT/relay-stalled$stalled.log" "$ws" "$admin" --max-room-members 100
    wait_quiet | tee -a "$OUT/machine.txt"
    # t=0 is just before loadtest starts (the relay is up, nothing connected).
    rm -f "$OUT/rss-stalled$stalled.tsv"
    sample_rss "$RELAY_PID" 5 "$OUT/rss-stalled$stalled.tsv" &
    sampler=$!
    echo "loadavg before run (stalled=$stalled): $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
    j0="$(cpu_jiffies)"
    run "$LOADTEST" broadcast --url "ws://127.0.0.1:$ws/ws" --secret "$SECRET" \
        --viewers 50 --stalled "$stalled" --rate 200 --size "$SIZE" --duration "$DURATION" \
        --server-pid "$RELAY_PID" --json "$OUT/stalled$stalled.json" --quiet \
        | tee "$OUT/stalled$stalled.txt" || echo "loadtest exited $?" | tee -a "$OUT/stalled$stalled.txt"
    echo "machine during run (stalled=$stalled): $(machine_busy_since "$j0")" | tee -a "$OUT/machine.txt"
    curl -fs "http://127.0.0.1:$admin/metrics" >"$OUT/metrics-stalled$stalled.txt" || true
    stop_pid "$RELAY_PID"
    wait "$sampler" 2>/dev/null || true
done
echo "results in $OUT"
