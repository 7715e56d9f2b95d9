#!/usr/bin/env bash
# B1 profile: instructions and system calls per delivery of one embedded relay node, counted by
# valgrind's callgrind over a fixed `broadcast` run (1 room x VIEWERS viewers x SIZE B at RATE
# events/s for DURATION). Counting starts once every viewer has joined (`callgrind_control -i on`)
# and stops when the load ends, so connects, handshakes and joins are not counted. Deliveries are
# the relay's own `relay_frames_out_total{type="event"}` over the same window.
#
# BIN must hold a relay built with symbols, e.g.
#   CARGO_PROFILE_RELEASE_DEBUG=true CARGO_TARGET_DIR=/tmp/cg-target \
#     cargo build --release -p assist-relay -p assist-relay-loadtest
#   BIN=/tmp/cg-target/release loadtest/bench/b1-callgrind.sh
#   RATE=200 VIEWERS=200 loadtest/bench/b1-callgrind.sh      # a rate callgrind cannot keep up with
#
# Under callgrind the relay runs 50-100x slower, so how many frames each wake-up writes (and so the
# syscalls per delivery) depends on RATE: at a low rate each event goes out alone; past what the
# slowed relay keeps up with, the writers' batches fill. The summary prints both counts.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/b1-callgrind}"
VIEWERS="${VIEWERS:-100}" SIZE="${SIZE:-200}" RATE="${RATE:-20}" DURATION="${DURATION:-20s}"
mkdir -p "$OUT"
machine_notes >"$OUT/machine.txt"

# "EVENT_FRAMES ALL_FRAMES" sent so far (relay_frames_out_total), from one scrape of the admin port.
frames_out() {
    curl -fs "http://127.0.0.1:$1/metrics" | awk '/^relay_frames_out_total\{/ {
        a += $2; if ($0 ~ /type="event"/) e += $2 } END { printf "%d %d\n", e, a }'
}

read -r ws admin <<<"$(free_ports 2)"
VG=(valgrind --tool=callgrind --instr-atstart=no --collect-systime=usec
    --callgrind-out-file="$OUT/callgrind.out"
    "$RELAY" serve --listen "127.0.0.1:$ws" --admin-listen "127.0.0.1:$admin"
    --max-room-members $((VIEWERS + 10)) --max-msgs-per-sec 5000)
printf '+ %s\n' "${VG[*]}" >&2
# exec: $! must be the relay's own pid (valgrind's wrapper execs too), for callgrind_control.
(exec "${VG[@]}" >"$OUT/relay.log" 2>&1) &
RELAY_PID=$!
BENCH_PIDS+=("$RELAY_PID")
for ((i = 0; i < 600; i++)); do
    curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done

run "$LOADTEST" broadcast --url "ws://127.0.0.1:$ws/ws" --secret "$SECRET" --viewers "$VIEWERS" \
    --rate "$RATE" --size "$SIZE" --duration "$DURATION" --drain 10s --quiet \
    --json "$OUT/broadcast.json" >"$OUT/broadcast.txt" 2>&1 &
lt=$!
BENCH_PIDS+=("$lt")
for ((i = 0; i < 1200; i++)); do
    [[ "$(connections "$admin")" -ge $((VIEWERS + 1)) ]] && break
    sleep 0.1
done
read -r events0 all0 <<<"$(frames_out "$admin")"
callgrind_control -i on "$RELAY_PID"
wait "$lt" || echo "loadtest exited $?"
callgrind_control -i off "$RELAY_PID"
read -r events1 all1 <<<"$(frames_out "$admin")"
callgrind_control -d "$RELAY_PID"
sleep 1
stop_pid "$RELAY_PID"

# The dump taken by -d is the file with the highest suffix.
dump="$(ls -1 "$OUT"/callgrind.out* | sort -V | tail -1)"
callgrind_annotate --inclusive=no "$dump" >"$OUT/annotate.txt" 2>/dev/null || true
callgrind_annotate --inclusive=no --sort=sysCount "$dump" >"$OUT/syscalls.txt" 2>/dev/null || true
python3 - "$dump" "$((events1 - events0))" "$((all1 - all0))" "$RATE" "$VIEWERS" <<'EOF' | tee "$OUT/summary.txt"
import re, sys
path, events, frames, rate, viewers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
names, totals = None, None
for line in open(path, errors="replace"):
    if line.startswith("events:"):
        names = line.split()[1:]
    elif line.startswith("totals:") or line.startswith("summary:"):
        totals = [int(x) for x in line.split()[1:]]
t = dict(zip(names or [], totals or []))
ir = t.get("Ir", 0)
print(f"rate {rate} ev/s, {viewers} viewers: {events} event frames ({frames} frames of any type) in the window")
print(f"Ir total {ir:,}")
if events:
    print(f"Ir per delivered event frame: {ir / events:,.0f}")
    if "sysCount" in t:
        print(f"syscalls per delivered event frame: {t['sysCount'] / events:.3f} ({t['sysCount']:,} syscalls; "
              "clock_gettime is one under valgrind, a vDSO call natively)")
EOF
# Syscalls by calling libc function (send, epoll_wait, ...), per delivered event frame.
python3 - "$OUT/syscalls.txt" "$((events1 - events0))" <<'EOF' | tee -a "$OUT/summary.txt"
import re, sys
events = max(int(sys.argv[2]), 1)
row = re.compile(r"^\s*[\d,]+\s+\(\s*[\d.]+%\)\s+([\d,]+)\s+\(\s*[\d.]+%\).*?:([\w@.]+) \[")
for line in open(sys.argv[1]):
    m = row.match(line)
    if m:
        n = int(m.group(1).replace(",", ""))
        print(f"  {m.group(2)}: {n:,} ({n / events:.3f} per delivered event frame)")
EOF
echo "results in $OUT"
