#!/usr/bin/env bash
# Large keyframes: `loadtest snapshot` against two embedded relay nodes that differ only in
# --mask-policy (`none`, and the default `passwords`), alternating A B A B (REPS pairs).
#
# Each run: the customer uploads the FullSnapshot ROUNDS times in chunks sized from
# joined.limits.chunk_bytes (stitching MB/s, first slice written to the upload's `ack`); then JOINS
# fresh agents per codec (JSON and MessagePack, alternating, one at a time) connect, join and time
# connect-to-whole-keyframe. Per pair and policy: two snapshots (a generated 5 MB one and the
# 7.0 MB FullSnapshot of big-catalog.json) x two upload codecs (json, msgpack).
#
# Both nodes get --max-bytes-per-sec 1000000000: at the default 8 MiB/s (burst 16 MiB) the
# per-connection byte rate, not stitching, would bound back-to-back uploads.
#
#   loadtest/bench/snapshot.sh        # REPS=2 ROUNDS=5 JOINS=50; about 2-3 min on a quiet machine
#   QUIET_WAIT=10 REPS=1 ROUNDS=2 JOINS=3 loadtest/bench/snapshot.sh   # smoke test
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/snapshot}"
REPS="${REPS:-2}" ROUNDS="${ROUNDS:-5}" JOINS="${JOINS:-50}"
CATALOG="${CATALOG:-$ROOT/../shared/fixtures/rrweb/big-catalog.json}"
POLICIES=(none passwords)
mkdir -p "$OUT"
rm -f "$OUT"/run-*.json "$OUT"/run-*.txt

machine_notes | tee "$OUT/machine.txt"
declare -A PID WS ADMIN
for policy in "${POLICIES[@]}"; do
    read -r ws admin <<<"$(free_ports 2)"
    start_relay "$OUT/relay-$policy.log" "$ws" "$admin" --mask-policy "$policy" --max-bytes-per-sec 1000000000
    PID[$policy]=$RELAY_PID WS[$policy]=$ws ADMIN[$policy]=$admin
done

for ((rep = 1; rep <= REPS; rep++)); do
    for policy in "${POLICIES[@]}"; do
        wait_quiet "${QUIET_WAIT:-120}" | tee -a "$OUT/machine.txt"
        echo "loadavg before rep $rep $policy: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
        j0="$(cpu_jiffies)"
        for snap in gen5 catalog; do
            case $snap in
                gen5) SRC=(--snapshot-mb 5) ;;
                catalog) SRC=(--snapshot-from "$CATALOG") ;;
            esac
            for codec in json msgpack; do
                name="run-$rep-$policy-$snap-$codec"
                run "$LOADTEST" snapshot --url "ws://127.0.0.1:${WS[$policy]}/ws" --secret "$SECRET" \
                    "${SRC[@]}" --codec "$codec" --rounds "$ROUNDS" --joins "$JOINS" \
                    --server-pid "${PID[$policy]}" --json "$OUT/$name.json" --quiet \
                    >"$OUT/$name.txt" 2>&1 || echo "loadtest exited $?" | tee -a "$OUT/$name.txt"
            done
        done
        echo "machine during rep $rep $policy: $(machine_busy_since "$j0")" | tee -a "$OUT/machine.txt"
    done
done
for policy in "${POLICIES[@]}"; do
    curl -fs "http://127.0.0.1:${ADMIN[$policy]}/metrics" >"$OUT/metrics-$policy.txt" || true
    stop_pid "${PID[$policy]}"
done

python3 - "$OUT" <<'EOF'
import glob, json, math, os, statistics, sys

out = sys.argv[1]
runs = []
for p in sorted(glob.glob(os.path.join(out, "run-*.json"))):
    rep, policy, snap, codec = os.path.basename(p)[4:-5].split("-")
    with open(p) as f:
        runs.append((int(rep), policy, snap, codec, json.load(f)))
if not runs:
    sys.exit("no results")

def pct(xs, q):
    # Nearest rank, as HdrHistogram reports it.
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]

policies = ["none", "passwords"]
snaps = [s for s in ("gen5", "catalog") if any(r[2] == s for r in runs)]
reps = sorted({r[0] for r in runs})
size = {s: next(r[4]["snapshot"]["snapshot_bytes"] for r in runs if r[2] == s) for s in snaps}
label = {"gen5": "generated", "catalog": "big-catalog.json"}
breaches = [(r[:4], b) for r in runs for b in r[4]["breaches"]]

print("\n## Stitching throughput (MB/s = 10^6 bytes/s; median of the rounds of each run)\n")
print("| snapshot | upload codec | slices | " + " | ".join(f"{p} rep {n}" for n in reps for p in policies) + " | " + " | ".join(f"passwords/none rep {n}" for n in reps) + " |")
print("|---" * (3 + len(reps) * 3) + "|")
for s in snaps:
    for c in ("json", "msgpack"):
        cells, ratios, chunks = [], [], "-"
        for n in reps:
            got = {}
            for p in policies:
                r = [x[4] for x in runs if x[:4] == (n, p, s, c)]
                sp = r[0]["snapshot"] if r else None
                if sp and sp["upload_mb_per_s"]:
                    got[p] = sp["upload_mb_per_s"]["median"]
                    chunks = f'{sp["chunks"]} x {sp["chunk_bytes"]} B'
                cells.append(f"{got[p]:.1f}" if p in got else "-")
            ratios.append(f"{got['passwords'] / got['none']:.2f}x" if len(got) == 2 else "-")
        print(f"| {label[s]} ({size[s] / 1e6:.2f} MB) | {c} | {chunks} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")

print("\n## Join to whole keyframe (ms, connect start to the FullSnapshot reassembled; all runs of a policy pooled)\n")
print("| keyframe | agent codec | policy | joins | p50 | p90 | p99 | max | MB/s at p50 | chunk frames | byte-identical |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for s in snaps:
    for c in ("json", "msgpack"):
        for p in policies:
            xs, frames, ident, n = [], set(), 0, 0
            for x in runs:
                if x[1] == p and x[2] == s:
                    for j in x[4]["snapshot"]["joins"]:
                        if j["codec"] == c:
                            xs += j["keyframe_samples_ms"]
                            frames.add(round(j["chunk_frames_per_join"]))
                            ident += j["identical"]
                            n += j["completed"]
            if not xs:
                continue
            p50 = statistics.median(xs)
            print(f"| {label[s]} ({size[s] / 1e6:.2f} MB) | {c} | {p} | {n} | {p50:.2f} | {pct(xs, .9):.2f} | {pct(xs, .99):.2f} | {max(xs):.2f} | {size[s] / 1e6 / (p50 / 1000):.0f} | {'/'.join(map(str, sorted(frames)))} | {ident} of {n} |")

print("\n## Relay CPU per run (s), from --server-pid sampling\n")
for x in runs:
    srv = [q for q in x[4]["processes"] if q["label"] == "server"]
    if srv:
        print(f"- rep {x[0]} {x[1]} {x[2]} {x[3]}: {srv[0]['cpu_s']:.2f} s, RSS max {srv[0]['rss_max_kb'] / 1024:.0f} MiB")
print("\nbreaches:", breaches if breaches else "none")
EOF
echo "results in $OUT"
