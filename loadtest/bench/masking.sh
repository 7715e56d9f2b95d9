#!/usr/bin/env bash
# Server-side masking cost: the same cobrowse load against two embedded relay nodes that differ
# only in --mask-policy (`none` and `inputs`), alternating A B A B (REPS pairs per load level),
# then the relay's in-process masking MB/s (the ignored `mask::tests::throughput` test).
#
# The load: ROOMS rooms, each with a customer replaying ../shared/fixtures/rrweb/loan-apply.json
# (a three-page loan form: 432 events, 146 Mutations, 87 Input events, 3 FullSnapshots, typed
# values) looping at each of SPEEDS times recorded speed, AGENTS agents per room, no chat, for
# DURATION. Under `inputs` the relay parses and masks every FullSnapshot, Mutation and Input event;
# under `none` it parses none. Both nodes get --max-msgs-per-sec 100000 and --max-bytes-per-sec
# 1000000000 so the per-connection rate limits stay out of the figures.
#
#   loadtest/bench/masking.sh          # SPEEDS="20 100" REPS=2 DURATION=15s; about 3-4 min
#   SKIP_MASK_TEST=1 loadtest/bench/masking.sh   # without the cargo test (which compiles relay)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/masking}"
SPEEDS="${SPEEDS:-20 100}" REPS="${REPS:-2}" DURATION="${DURATION:-15s}"
ROOMS="${ROOMS:-20}" AGENTS="${AGENTS:-2}"
RECORDING="${RECORDING:-$ROOT/../shared/fixtures/rrweb/loan-apply.json}"
POLICIES=(none inputs)
mkdir -p "$OUT"
rm -f "$OUT"/run-*.json "$OUT"/run-*.txt "$OUT"/run-*.counters

machine_notes | tee "$OUT/machine.txt"
declare -A PID WS ADMIN
for policy in "${POLICIES[@]}"; do
    read -r ws admin <<<"$(free_ports 2)"
    start_relay "$OUT/relay-$policy.log" "$ws" "$admin" --mask-policy "$policy" \
        --max-msgs-per-sec 100000 --max-bytes-per-sec 1000000000
    PID[$policy]=$RELAY_PID WS[$policy]=$ws ADMIN[$policy]=$admin
done

# counters ADMIN_PORT: "masked_events fanout_sum_s fanout_count" from the node's /metrics.
counters() {
    curl -fs "http://127.0.0.1:$1/metrics" | awk '
        /^relay_masked_events_total\{/ { m += $2 }
        /^relay_fanout_latency_seconds_sum/ { s += $2 }
        /^relay_fanout_latency_seconds_count/ { c += $2 }
        END { printf "%d %.6f %d\n", m, s, c }'
}

for speed in $SPEEDS; do
    for ((rep = 1; rep <= REPS; rep++)); do
        for policy in "${POLICIES[@]}"; do
            name="run-$speed-$rep-$policy"
            wait_quiet "${QUIET_WAIT:-120}" | tee -a "$OUT/machine.txt"
            echo "loadavg before $name: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
            c0="$(counters "${ADMIN[$policy]}")"
            j0="$(cpu_jiffies)"
            run "$LOADTEST" cobrowse --url "ws://127.0.0.1:${WS[$policy]}/ws" --secret "$SECRET" \
                --rooms "$ROOMS" --agents "$AGENTS" --recording "$RECORDING" --speed "$speed" \
                --chat-rate 0 --late-joiners 0 --duration "$DURATION" \
                --server-pid "${PID[$policy]}" --json "$OUT/$name.json" --quiet \
                >"$OUT/$name.txt" 2>&1 || echo "loadtest exited $?" | tee -a "$OUT/$name.txt"
            echo "machine during $name: $(machine_busy_since "$j0")" | tee -a "$OUT/machine.txt"
            echo "$c0 $(counters "${ADMIN[$policy]}")" >"$OUT/$name.counters"
        done
    done
done
for policy in "${POLICIES[@]}"; do
    curl -fs "http://127.0.0.1:${ADMIN[$policy]}/metrics" >"$OUT/metrics-$policy.txt" || true
    stop_pid "${PID[$policy]}"
done

python3 - "$OUT" <<'EOF'
import glob, json, os, sys

out = sys.argv[1]
runs = {}
for p in sorted(glob.glob(os.path.join(out, "run-*.json"))):
    speed, rep, policy = os.path.basename(p)[4:-5].split("-")
    with open(p) as f:
        d = json.load(f)
    with open(p[:-5] + ".counters") as f:
        m0, s0, c0, m1, s1, c1 = (float(x) for x in f.read().split())
    d["masked"] = int(m1 - m0)
    # Server side: an entry accepted by the publisher's node to the viewer's socket flush.
    d["fanout_ms"] = (s1 - s0) / (c1 - c0) * 1000 if c1 > c0 else float("nan")
    runs[(float(speed), int(rep), policy)] = d

def srv(d):
    s = [q for q in d["processes"] if q["label"] == "server"]
    return s[0] if s else None

print("\n## Same load, policy inputs vs none (A B A B)\n")
print("| speed | pair | policy | published ev/s | delivered ev/s | lost / expected | resyncs | p50 ms | p99 ms | relay fan-out mean ms | relay CPU s | relay CPU-ms per 1000 published | events rewritten by masking |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (speed, rep, policy), d in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "none")):
    s = srv(d)
    pub = d["published_events"]
    cpu = s["cpu_s"] if s else float("nan")
    lat = d["latency"] or {"p50_ms": float("nan"), "p99_ms": float("nan")}
    print(f"| {speed:g}x | {rep} | {policy} | {d['publish_rate']:.0f} | {d['deliveries_per_s']:.0f} | {d['events']['lost']} / {d['events']['expected']} | {d['events']['resyncs']} "
          f"| {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | {d['fanout_ms']:.2f} | {cpu:.2f} | {cpu * 1e6 / max(pub, 1):.1f} | {d['masked']} |")
    if policy == "inputs" and (speed, rep, "none") in runs:
        a, b = runs[(speed, rep, "none")], d
        sa, sb = srv(a), srv(b)
        la, lb = a["latency"], b["latency"]
        cpu_ratio = (sb["cpu_s"] / max(b["published_events"], 1)) / (sa["cpu_s"] / max(a["published_events"], 1)) if sa and sb and sa["cpu_s"] else float("nan")
        print(f"| {speed:g}x | {rep} | **inputs / none** | | **{b['deliveries_per_s'] / a['deliveries_per_s']:.2f}x** | | | "
              f"{lb['p50_ms'] / la['p50_ms']:.2f}x | {lb['p99_ms'] / la['p99_ms']:.2f}x | {b['fanout_ms'] / a['fanout_ms']:.2f}x | | **{cpu_ratio:.2f}x** | |" if la and lb else "")
EOF

if [[ -z "${SKIP_MASK_TEST:-}" ]]; then
    wait_quiet "${QUIET_WAIT:-120}" | tee -a "$OUT/machine.txt"
    echo "loadavg before the mask throughput test: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
    # Builds the relay's lib tests (release) first; the timed part starts after the build.
    (cd "$ROOT" && run cargo test --release -p assist-relay --lib mask::tests::throughput -- --ignored --nocapture) \
        >"$OUT/mask-throughput.txt" 2>&1 || echo "cargo test exited $?" >>"$OUT/mask-throughput.txt"
    echo
    echo "## In-process masking throughput (mask::tests::throughput)"
    grep -E 'MB/s|exited|error' "$OUT/mask-throughput.txt" || tail -20 "$OUT/mask-throughput.txt"
fi
echo "results in $OUT"
