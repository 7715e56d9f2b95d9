#!/usr/bin/env bash
# B1 system calls per delivery, natively: one embedded relay node under the B1 `broadcast` load
# (1 room x VIEWERS viewers x SIZE B at RATE events/s for DURATION), with `perf stat` counting the
# relay's syscall tracepoints (sendto, recvfrom, epoll_wait, futex, ...) over the whole run. Needs
# perf with access to tracepoints (root, or perf_event_paranoid <= -1).
#
#   loadtest/bench/b1-syscalls.sh                      # RATE=200 VIEWERS=1000 DURATION=12s
#   BIN=/tmp/before RATE=100 loadtest/bench/b1-syscalls.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/b1-syscalls}"
VIEWERS="${VIEWERS:-1000}" SIZE="${SIZE:-200}" RATE="${RATE:-200}" DURATION="${DURATION:-12s}"
SOURCE_IPS="${SOURCE_IPS:-127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4}"
EVENTS="${EVENTS:-sendto sendmsg write writev recvfrom read epoll_wait futex}"
mkdir -p "$OUT"
machine_notes >"$OUT/machine.txt"

read -r ws admin <<<"$(free_ports 2)"
start_relay "$OUT/relay.log" "$ws" "$admin" --max-room-members $((VIEWERS + 10)) --max-msgs-per-sec 5000
tp=()
for e in $EVENTS; do tp+=(-e "syscalls:sys_enter_$e"); done
printf '+ perf stat -x, -o %s %s -p %s\n' "$OUT/perf.csv" "${tp[*]}" "$RELAY_PID" >&2
perf stat -x, -o "$OUT/perf.csv" "${tp[@]}" -p "$RELAY_PID" &
perf_pid=$!
BENCH_PIDS+=("$perf_pid")
run "$LOADTEST" broadcast --url "ws://127.0.0.1:$ws/ws" --secret "$SECRET" --viewers "$VIEWERS" \
    --rate "$RATE" --size "$SIZE" --duration "$DURATION" --drain 5s --source-ips "$SOURCE_IPS" \
    --server-pid "$RELAY_PID" --quiet --json "$OUT/broadcast.json" >"$OUT/broadcast.txt" 2>&1 || true
kill -INT "$perf_pid" 2>/dev/null || true
wait "$perf_pid" 2>/dev/null || true
frames="$(curl -fs "http://127.0.0.1:$admin/metrics" |
    awk '/^relay_frames_out_total\{/ && /type="event"/ { s += $2 } END { printf "%d", s }' || echo 0)"
stop_pid "$RELAY_PID"

python3 - "$OUT/perf.csv" "$frames" "$OUT/broadcast.json" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
csv, frames = sys.argv[1], int(sys.argv[2])
r = json.load(open(sys.argv[3]))
lat = r.get("latency") or {}
print(f"event frames sent by the relay (whole run): {frames:,}; loadtest: {r['deliveries_per_s']:.0f} deliveries/s, "
      f"p50 {lat.get('p50_ms', 0):.2f} ms, p99 {lat.get('p99_ms', 0):.2f} ms, lost {r['events']['lost']}")
for line in open(csv):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[2].startswith("syscalls:"):
        n = int(parts[0]) if parts[0].isdigit() else 0
        name = parts[2].removeprefix("syscalls:sys_enter_")
        print(f"  {name}: {n:,} ({n / max(frames, 1):.3f} per event frame)")
EOF
echo "results in $OUT"
