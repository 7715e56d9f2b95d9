#!/usr/bin/env bash
# B2 profile: what ONE relay node spends per delivered event in the cobrowse scenario of B2
# (`loadtest cobrowse`, AGENTS agents per room, the real rrweb recordings, room r replays
# recording r mod 3), with the node alone (no nginx) and either embedded (STORE=embedded) or in
# cluster mode against its own redis-server on a free port (STORE=redis, never 6379).
#
#   MASK=passwords|none     the node's --mask-policy (passwords: every event that may need masking
#                           is parsed with serde_json; none: the opaque pass-through path)
#   PROFILE=callgrind       the node runs under valgrind --tool=callgrind; counting is switched on
#                           (callgrind_control -i on) once every connection has joined and off when
#                           the load ends; Ir per delivery from the dump, callgrind_annotate
#                           inclusive and exclusive top lists
#   PROFILE=perf            as native, plus `perf record -e cpu-clock -g` of the node over the
#                           window (user and kernel samples; perf-self.txt, perf-dso.txt)
#   PROFILE=native          no valgrind: utime + stime of the node (and redis-server) from
#                           /proc/<pid>/stat over the same window, CPU-ms per 1000 deliveries
#
# Deliveries are the node's own relay_frames_out_total{type="event"} + {type="chat"} over the
# window (what agents receive; acks to the customer are not counted), as in B2.
#
#   BIN=/tmp/b2p-target/release STORE=redis MASK=passwords PROFILE=callgrind \
#     ROOMS=25 SPEED=1 DURATION=20s flock /tmp/bench.lock loadtest/bench/b2-profile.sh
#   BIN=/tmp/b2p-target/release STORE=embedded MASK=none PROFILE=native \
#     ROOMS=25 SPEED=10 DURATION=15s flock /tmp/bench.lock loadtest/bench/b2-profile.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STORE="${STORE:-redis}" MASK="${MASK:-passwords}" PROFILE="${PROFILE:-native}"
ROOMS="${ROOMS:-25}" AGENTS="${AGENTS:-2}" SPEED="${SPEED:-10}" CHAT_RATE="${CHAT_RATE:-0.2}"
DURATION="${DURATION:-20s}" DRAIN="${DRAIN:-5s}"
FIXTURES="${FIXTURES:-$ROOT/../shared/fixtures/rrweb}"
RECORDINGS="${RECORDINGS:-demoit.json loan-apply.json chat-widget.json}"
NAME="${NAME:-$STORE-$MASK-$PROFILE-r$ROOMS-s$SPEED}"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/b2-profile}/$NAME"
TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
mkdir -p "$OUT"
machine_notes >"$OUT/machine.txt"

# "EVENT CHAT ALL" frames sent so far (relay_frames_out_total), from one scrape of the admin port.
frames_out() {
    curl -fs "http://127.0.0.1:$1/metrics" | awk '/^relay_frames_out_total\{/ {
        a += $2; if ($0 ~ /type="event"/) e += $2; if ($0 ~ /type="chat"/) c += $2 }
        END { printf "%d %d %d\n", e, c, a }'
}
# utime + stime in clock ticks.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# "utime stime" in clock ticks.
ustime() { awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"; }
# Voluntary + involuntary context switches over all threads of a process.
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'; }

read -r ws admin redis_port <<<"$(free_ports 3)"
extra=()
redis_pid=""
if [[ $STORE == redis ]]; then
    printf '+ redis-server --port %s --bind 127.0.0.1 --save "" --appendonly no\n' "$redis_port" >&2
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT" \
        --logfile "$OUT/redis.log" &
    redis_pid=$!
    BENCH_PIDS+=("$redis_pid")
    for ((i = 0; i < 50; i++)); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    extra=(--redis-url "redis://127.0.0.1:$redis_port/0")
fi
SERVE=("$RELAY" serve --listen "127.0.0.1:$ws" --admin-listen "127.0.0.1:$admin"
    --max-connections 20000 --mask-policy "$MASK" --archive-dir "$OUT/archive" "${extra[@]}")
if [[ $PROFILE == callgrind ]]; then
    SERVE=(valgrind --tool=callgrind --instr-atstart=no --collect-systime=usec
        --callgrind-out-file="$OUT/callgrind.out" "${SERVE[@]}")
fi
printf '+ %s\n' "${SERVE[*]}" >&2
# exec: $! must be the relay's own pid (valgrind execs too), for callgrind_control and /proc.
(cd "$OUT" && exec "${SERVE[@]}" >"$OUT/relay.log" 2>&1) &
RELAY_PID=$!
BENCH_PIDS+=("$RELAY_PID")
for ((i = 0; i < 600; i++)); do
    curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done

recs=()
for f in $RECORDINGS; do recs+=(--recording "$FIXTURES/$f"); done
spids=(--server-pid "$RELAY_PID")
[[ -z $redis_pid ]] || spids+=(--server-pid "$redis_pid")
run "$LOADTEST" cobrowse --url "ws://127.0.0.1:$ws/ws" --secret "$SECRET" --rooms "$ROOMS" \
    --agents "$AGENTS" "${recs[@]}" --speed "$SPEED" --chat-rate "$CHAT_RATE" --late-joiners 0 \
    --duration "$DURATION" --drain "$DRAIN" --quiet "${spids[@]}" --json "$OUT/cobrowse.json" \
    >"$OUT/cobrowse.txt" 2>&1 &
lt=$!
BENCH_PIDS+=("$lt")
want=$((ROOMS * (AGENTS + 1)))
for ((i = 0; i < 1200; i++)); do
    [[ "$(connections "$admin")" -ge $want ]] && break
    sleep 0.1
done
read -r ev0 ch0 all0 <<<"$(frames_out "$admin")"
t0="$(ticks "$RELAY_PID")"
read -r u0 k0 <<<"$(ustime "$RELAY_PID")"
c0="$(ctxsw "$RELAY_PID")"
if [[ $PROFILE == perf ]]; then
    perf record -e cpu-clock -F 2000 -g -p "$RELAY_PID" -o "$OUT/perf.data" >"$OUT/perf-record.log" 2>&1 &
    perf_pid=$!
fi
r0=0
[[ -z $redis_pid ]] || r0="$(ticks "$redis_pid")"
s0="$(date +%s.%N)"
[[ $PROFILE != callgrind ]] || callgrind_control -i on "$RELAY_PID" >/dev/null
wait "$lt" || echo "loadtest exited $?"
[[ $PROFILE != callgrind ]] || callgrind_control -i off "$RELAY_PID" >/dev/null
s1="$(date +%s.%N)"
t1="$(ticks "$RELAY_PID")"
read -r u1 k1 <<<"$(ustime "$RELAY_PID")"
c1="$(ctxsw "$RELAY_PID")"
if [[ $PROFILE == perf ]]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
fi
r1=0
[[ -z $redis_pid ]] || r1="$(ticks "$redis_pid")"
read -r ev1 ch1 all1 <<<"$(frames_out "$admin")"
curl -fs "http://127.0.0.1:$admin/metrics" >"$OUT/metrics.txt" || true
[[ -z $redis_pid ]] || redis-cli -p "$redis_port" INFO commandstats >"$OUT/commandstats.txt" 2>/dev/null || true
[[ $PROFILE != callgrind ]] || callgrind_control -d "$RELAY_PID" >/dev/null
sleep 1
stop_pid "$RELAY_PID"
[[ -z $redis_pid ]] || stop_pid "$redis_pid"

del=$(((ev1 - ev0) + (ch1 - ch0)))
python3 - "$NAME" "$del" "$((ev1 - ev0))" "$((all1 - all0))" "$((t1 - t0))" "$((r1 - r0))" "$TCK" "$s0" "$s1" "$OUT/cobrowse.json" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
name, d, ev, allf, t, r, tck, s0, s1, js = sys.argv[1:]
d, ev, allf, t, r, tck = int(d), int(ev), int(allf), int(t), int(r), int(tck)
secs = float(s1) - float(s0)
node_ms, redis_ms = t * 1000 / tck, r * 1000 / tck
print(f"{name}: window {secs:.1f} s, deliveries {d} (event frames {ev}; all frames out {allf}), {d / secs:.0f}/s")
if d:
    print(f"node CPU {node_ms:.0f} ms = {node_ms * 1000 / d:.1f} CPU-ms per 1000 deliveries ({node_ms / 1000 / secs:.2f} cores)")
    if r:
        print(f"redis-server CPU {redis_ms:.0f} ms = {redis_ms * 1000 / d:.1f} CPU-ms per 1000 deliveries")
try:
    j = json.load(open(js))
    lat = j.get("latency") or {}
    e = j["events"]
    print(f"loadtest: published {j['published_events']} events, deliveries {j['deliveries']}, lost {e['lost']}, "
          f"p50 {lat.get('p50_ms', 0):.2f} ms, p99 {lat.get('p99_ms', 0):.2f} ms, "
          f"pub lag p99 {(j.get('publisher_lag') or {}).get('p99_ms', 0):.2f} ms")
except Exception as ex:
    print(f"loadtest report unreadable: {ex}")
EOF
awk -v u="$((u1 - u0))" -v k="$((k1 - k0))" -v c="$((c1 - c0))" -v d="$del" -v t="$TCK" 'BEGIN {
    if (d > 0) printf "node user %.1f / system %.1f CPU-ms per 1000 deliveries; context switches per delivery %.2f\n",
        u * 1e6 / t / d, k * 1e6 / t / d, c / d }' | tee -a "$OUT/summary.txt"
if [[ $PROFILE == perf ]]; then
    perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^$' | head -80 >"$OUT/perf-self.txt" || true
    perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 >"$OUT/perf-dso.txt" || true
    perf report -i "$OUT/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -v '^$' | head -80 >"$OUT/perf-children.txt" || true
fi

if [[ $PROFILE == callgrind ]]; then
    dump="$(ls -1 "$OUT"/callgrind.out* | sort -V | tail -1)"
    callgrind_annotate --inclusive=no "$dump" >"$OUT/exclusive.txt" 2>/dev/null || true
    callgrind_annotate --inclusive=yes "$dump" >"$OUT/inclusive.txt" 2>/dev/null || true
    callgrind_annotate --inclusive=no --sort=sysCount "$dump" >"$OUT/syscalls.txt" 2>/dev/null || true
    python3 - "$dump" "$del" <<'EOF' | tee -a "$OUT/summary.txt"
import sys
path, d = sys.argv[1], int(sys.argv[2])
names, totals = None, None
for line in open(path, errors="replace"):
    if line.startswith("events:"):
        names = line.split()[1:]
    elif line.startswith("totals:") or line.startswith("summary:"):
        totals = [int(x) for x in line.split()[1:]]
t = dict(zip(names or [], totals or []))
ir = t.get("Ir", 0)
print(f"Ir total {ir:,}; Ir per delivery {ir / max(d, 1):,.0f}")
if "sysCount" in t:
    print(f"syscalls per delivery {t['sysCount'] / max(d, 1):.2f}")
EOF
fi
echo "results in $OUT"
