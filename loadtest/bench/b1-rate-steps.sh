#!/usr/bin/env bash
# B1: maximum sustainable deliveries/s of one embedded relay node vs the `ceiling` fan-out server.
# `broadcast` 1 room x VIEWERS viewers (default 1000) x SIZE B (default 200), stepping the publish
# rate through RATES (events/s; deliveries/s = rate x viewers). At each step the relay (a fresh
# node) runs first, then the ceiling (A B A B ...), DURATION each (default 12s). A step passes when
# the event p99 < P99_MS (default 50) and nothing is lost. A server stops being stepped once it has
# failed STOP_AFTER steps in a row (default 2); the script ends when all have.
#
# SERVERS (default "relay ceiling ceiling-in-process") are run in that order at each step:
#   relay               a fresh embedded node (`relay serve`), driven by `loadtest broadcast`
#   ceiling             `loadtest ceiling`: the fan-out server in a process of its own (the
#                       default `--server process`), measured alone, competing with the clients for
#                       the cores the way the relay does
#   ceiling-in-process  `loadtest ceiling --server in-process`: the same server inside the loadtest
#                       process, in the clients' runtime (no cross-process wake-ups)
#   ceiling-ext         the same as `ceiling`, through ceiling-helper.sh (how runs before
#                       `loadtest ceiling --server process` existed measured it)
#
#   loadtest/bench/b1-rate-steps.sh
#   RATES="25 50 75 100" DURATION=15s loadtest/bench/b1-rate-steps.sh
#
# Per step: the loadtest --json report, the relay's CPU seconds (utime+stime from /proc, whole
# process life: connects, joins, publishing, drain) and its RSS max, and for the ceiling the
# loadtest process (server + clients, one process; the server cannot be sampled alone), and for
# ceiling / ceiling-ext the fan-out server's process (CPU over its whole life for ceiling-ext, like
# the relay's).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/ceiling-helper.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/b1}"
VIEWERS="${VIEWERS:-1000}" SIZE="${SIZE:-200}" DURATION="${DURATION:-12s}"
RATES="${RATES:-25 50 75 100 150 200 300 400 600 800}"
SERVERS="${SERVERS:-relay ceiling ceiling-in-process}"
P99_MS="${P99_MS:-50}" STOP_AFTER="${STOP_AFTER:-2}" QUIET_WAIT="${QUIET_WAIT:-60}"
SOURCE_IPS="${SOURCE_IPS:-127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4}"
mkdir -p "$OUT"
TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# proc_cpu_s PID: utime + stime of PID in seconds.
proc_cpu_s() { awk -v t="$TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"; }

machine_notes | tee "$OUT/machine.txt"
echo "ulimit -n: $(ulimit -n); ip_local_port_range: $(cat /proc/sys/net/ipv4/ip_local_port_range)" | tee -a "$OUT/machine.txt"
printf 'rate\tserver\texit\tjson\tserver_cpu_s_total\tmachine\n' >"$OUT/steps.tsv"

LOAD_COMMON=(--viewers "$VIEWERS" --size "$SIZE" --duration "$DURATION" --drain 5s
    --source-ips "$SOURCE_IPS" --max-p99-ms "$P99_MS" --max-loss 0 --quiet)
declare -A fails=()
for server in $SERVERS; do fails[$server]=0; done
[[ $SERVERS == *ceiling-ext* ]] && build_ceiling_helper

for rate in $RATES; do
    for server in $SERVERS; do
        if ((fails[$server] >= STOP_AFTER)); then continue; fi
        name="$server-$rate"
        wait_quiet "$QUIET_WAIT" | tee -a "$OUT/machine.txt"
        echo "loadavg before $name: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
        j0="$(cpu_jiffies)"
        rc=0
        cpu_total=-
        if [[ $server == relay ]]; then
            read -r ws admin <<<"$(free_ports 2)"
            start_relay "$OUT/relay-$rate.log" "$ws" "$admin" --max-room-members $((VIEWERS + 10)) \
                --max-msgs-per-sec 5000
            run "$LOADTEST" broadcast --url "ws://127.0.0.1:$ws/ws" --secret "$SECRET" --rate "$rate" \
                "${LOAD_COMMON[@]}" --server-pid "$RELAY_PID" --json "$OUT/$name.json" \
                >"$OUT/$name.txt" 2>&1 || rc=$?
            cpu_total="$(proc_cpu_s "$RELAY_PID")"
            curl -fs "http://127.0.0.1:$admin/metrics" >"$OUT/metrics-$name.txt" || true
            stop_pid "$RELAY_PID"
        elif [[ $server == ceiling-ext ]]; then
            coproc SRV { exec "$CEILING_HELPER" server; }
            srv=$SRV_PID
            BENCH_PIDS+=("$srv")
            read -r port <&"${SRV[0]}"
            printf '+ %s server  # port %s, pid %s\n' "$CEILING_HELPER" "$port" "$srv" >&2
            run "$CEILING_HELPER" ext "ws://127.0.0.1:$port/" ceiling --rate "$rate" "${LOAD_COMMON[@]}" \
                --server-pid "$srv" --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || rc=$?
            cpu_total="$(proc_cpu_s "$srv")"
            stop_pid "$srv"
        elif [[ $server == ceiling-in-process ]]; then
            run "$LOADTEST" ceiling --server in-process --rate "$rate" "${LOAD_COMMON[@]}" \
                --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || rc=$?
        else
            run "$LOADTEST" ceiling --rate "$rate" "${LOAD_COMMON[@]}" --json "$OUT/$name.json" \
                >"$OUT/$name.txt" 2>&1 || rc=$?
        fi
        busy="$(machine_busy_since "$j0")"
        echo "machine during $name: $busy" | tee -a "$OUT/machine.txt"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rate" "$server" "$rc" "$OUT/$name.json" "$cpu_total" "$busy" >>"$OUT/steps.tsv"
        if ((rc == 0)); then fails[$server]=0; else fails[$server]=$((fails[$server] + 1)); fi
        echo "$name: exit $rc (0 = p99 < $P99_MS ms and no loss)"
    done
    left=0
    for server in $SERVERS; do ((fails[$server] < STOP_AFTER)) && left=1; done
    ((left)) || break
done

python3 - "$OUT/steps.tsv" "$VIEWERS" "$P99_MS" <<'EOF' | tee "$OUT/table.md"
import json, sys, os
tsv, viewers, p99max = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rows = [l.rstrip("\n").split("\t") for l in open(tsv)][1:]
best = {}
print("| rate ev/s | server | offered deliveries/s | delivered/s | lost / expected | p50 ms | p99 ms | max ms | publisher lag p99 ms | CPU s (window) | CPU cores | CPU-ms per 1000 deliveries | RSS max MiB | server CPU s (process life) | machine | pass |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for rate, server, rc, path, cpu_total, busy in rows:
    if not os.path.exists(path):
        print(f"| {rate} | {server} | {float(rate) * viewers:.0f} | (no report, exit {rc}) |" + " |" * 12)
        continue
    r = json.load(open(path))
    lat = r.get("latency") or {}
    lost, exp = r["events"]["lost"], r["events"]["expected"]
    label = "loadtest" if server == "ceiling-in-process" else "server"
    ps = [p for p in r["processes"] if p["label"].startswith(label)]
    p = ps[0] if ps else {}
    ok = rc == "0" and lost == 0 and lat.get("p99_ms", 1e9) < p99max
    if ok:
        best[server] = max(best.get(server, 0), r["deliveries_per_s"])
    cpk = p.get("cpu_ms_per_1k_deliveries")
    print(f"| {rate} | {server}{' (server + clients)' if server == 'ceiling-in-process' else ''} | {float(rate) * viewers:.0f} | {r['deliveries_per_s']:.0f} | {lost} / {exp} "
          f"| {lat.get('p50_ms', 0):.2f} | {lat.get('p99_ms', 0):.2f} | {lat.get('max_ms', 0):.2f} | {r['publisher_lag']['p99_ms']:.2f} "
          f"| {p.get('cpu_s', 0):.2f} | {p.get('cpu_cores', 0):.2f} | {cpk if cpk is None else f'{cpk:.1f}'} | {p.get('rss_max_kb', 0) / 1024:.0f} | {cpu_total} | {busy} | {'yes' if ok else 'no'} |")
print()
for s in sorted(set(r[1] for r in rows)):
    print(f"max sustainable deliveries/s, {s}: {best.get(s, 0):.0f}")
for s in ("ceiling", "ceiling-in-process", "ceiling-ext"):
    if best.get(s):
        print(f"ratio relay / {s}: {best.get('relay', 0) / best[s]:.2f}")
EOF
echo "results in $OUT"
