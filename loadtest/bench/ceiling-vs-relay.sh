#!/usr/bin/env bash
# The same broadcast load against `loadtest ceiling` (an in-process fan-out server with no logic)
# and against one embedded relay node, back to back: 1 room x VIEWERS viewers x RATE events/s x
# SIZE B for DURATION (defaults 500, 200, 200, 20s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/ceiling}"
VIEWERS="${VIEWERS:-500}" RATE="${RATE:-200}" SIZE="${SIZE:-200}" DURATION="${DURATION:-20s}"
mkdir -p "$OUT"
LOAD=(--viewers "$VIEWERS" --rate "$RATE" --size "$SIZE" --duration "$DURATION")

machine_notes | tee "$OUT/machine.txt"

wait_quiet | tee -a "$OUT/machine.txt"
echo "loadavg before ceiling: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
j0="$(cpu_jiffies)"
run "$LOADTEST" ceiling "${LOAD[@]}" --json "$OUT/ceiling.json" --quiet | tee "$OUT/ceiling.txt" \
    || echo "loadtest exited $?" | tee -a "$OUT/ceiling.txt"
echo "machine during ceiling: $(machine_busy_since "$j0")" | tee -a "$OUT/machine.txt"

read -r ws admin <<<"$(free_ports 2)"
start_relay "$OUT/relay.log" "$ws" "$admin" --max-room-members $((VIEWERS + 10))
wait_quiet | tee -a "$OUT/machine.txt"
echo "loadavg before relay: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
j0="$(cpu_jiffies)"
run "$LOADTEST" broadcast --url "ws://127.0.0.1:$ws/ws" --secret "$SECRET" "${LOAD[@]}" \
    --server-pid "$RELAY_PID" --json "$OUT/relay.json" --quiet | tee "$OUT/relay.txt" \
    || echo "loadtest exited $?" | tee -a "$OUT/relay.txt"
echo "machine during relay: $(machine_busy_since "$j0")" | tee -a "$OUT/machine.txt"
curl -fs "http://127.0.0.1:$admin/metrics" >"$OUT/metrics-relay.txt" || true
stop_pid "$RELAY_PID"
echo "results in $OUT"
