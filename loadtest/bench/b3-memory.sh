#!/usr/bin/env bash
# B3: server RSS at LEVELS connections (default "0 1000 5000 10000"), idle (joined, no traffic) and
# active (a modest broadcast rate), for one embedded relay node and, for comparison, the `ceiling`
# fan-out server. A fresh server per level and mode. KB per connection is the slope between levels.
#
# Relay: `loadtest cobrowse` rooms of 4 agents + 1 customer (N/5 rooms), like idle-memory.sh.
#   idle:   --rate 0.05 (a Meta at once, nothing else in the window)
#   active: --rate $ACTIVE_RATE events/s of 200 B per room (default 2: 8 deliveries/s per room,
#           16k deliveries/s at 10k connections)
# Ceiling: loadtest's fan-out server (`loadtest::fanout::FanoutServer`, the server of
#   `loadtest ceiling`) in a process of its own, so its RSS is the server's alone, and N raw
#   WebSocket clients in another process (`ceiling-helper server` / `clients`, see
#   ceiling-helper.sh). The ceiling has one channel: everyone receives everything.
#   idle:   clients connect and stay silent
#   active: connection 0 sends $CEILING_ACTIVE_RATE messages/s of 200 B (default 2: the same
#           per-connection delivery rate as the relay's active rooms, 2 per connection per s)
# RSS (VmRSS) is read SETTLE seconds after every connection is open (default 5 idle, 10 active),
# 3 times 1 s apart; the table takes the last.
#
# VARIANTS: extra relay runs "name:flags" at VARIANT_LEVELS (idle), e.g. the room buffer:
#   VARIANTS="rb1024:--room-buffer 1024" (default: the default before 2026-12) VARIANT_LEVELS="0 5000"
#
#   loadtest/bench/b3-memory.sh
#   SERVERS=relay MODES=idle LEVELS="0 1000" VARIANTS= loadtest/bench/b3-memory.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/b3}"
LEVELS="${LEVELS:-0 1000 5000 10000}"
MODES="${MODES:-idle active}"
SERVERS="${SERVERS:-relay ceiling}"
ACTIVE_RATE="${ACTIVE_RATE:-2}" CEILING_ACTIVE_RATE="${CEILING_ACTIVE_RATE:-2}"
VARIANTS="${VARIANTS-rb1024:--room-buffer 1024}"
VARIANT_LEVELS="${VARIANT_LEVELS:-0 5000}"
SOURCE_IPS="${SOURCE_IPS:-127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4}"
QUIET_WAIT="${QUIET_WAIT:-60}"
mkdir -p "$OUT"

machine_notes | tee "$OUT/machine.txt"
echo "ulimit -n: $(ulimit -n); ip_local_port_range: $(cat /proc/sys/net/ipv4/ip_local_port_range)" | tee -a "$OUT/machine.txt"
printf 'server\tvariant\tmode\tconnections\trss_kb\tsamples_kb\tconnections_seen\n' >"$OUT/rss.tsv"

source "$(dirname "${BASH_SOURCE[0]}")/ceiling-helper.sh"

# sample ROW_PREFIX PID N ADMIN|-: 3 RSS readings 1 s apart, appended to rss.tsv.
sample() {
    local prefix="$1" pid="$2" n="$3" admin="$4" samples=() k seen=-
    for k in 1 2 3; do samples+=("$(rss_kb "$pid")"); sleep 1; done
    [[ $admin != - ]] && seen="$(connections "$admin")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$prefix" "$n" "${samples[2]}" "${samples[*]}" "$seen" | tee -a "$OUT/rss.tsv"
}

relay_level() { # VARIANT MODE N [relay flags...]
    local variant="$1" mode="$2" n="$3" lt="" i rate settle
    shift 3
    read -r ws admin <<<"$(free_ports 2)"
    start_relay "$OUT/relay-$variant-$mode-$n.log" "$ws" "$admin" --max-connections 20000 "$@"
    wait_quiet "$QUIET_WAIT" | tee -a "$OUT/machine.txt"
    if [[ $mode == idle ]]; then rate=0.05 settle=5; else rate="$ACTIVE_RATE" settle=10; fi
    if ((n > 0)); then
        run "$LOADTEST" cobrowse --url "ws://127.0.0.1:$ws/ws" --secret "$SECRET" --rooms $((n / 5)) \
            --agents 4 --rate "$rate" --size 200 --chat-rate 0 --late-joiners 0 --duration 20s --drain 1s \
            --source-ips "$SOURCE_IPS" --server-pid "$RELAY_PID" --json "$OUT/relay-$variant-$mode-$n.json" \
            --quiet >"$OUT/relay-$variant-$mode-$n.txt" 2>&1 &
        lt=$!
        BENCH_PIDS+=("$lt")
        for ((i = 0; i < 600; i++)); do
            [[ "$(connections "$admin")" -ge "$n" ]] && break
            sleep 0.1
        done
        echo "relay $variant $mode $n: connections open: $(connections "$admin") after $((i / 10)) s" | tee -a "$OUT/machine.txt"
    fi
    sleep "$settle"
    sample "relay	$variant	$mode" "$RELAY_PID" "$n" "$admin"
    curl -fs "http://127.0.0.1:$admin/metrics" >"$OUT/metrics-relay-$variant-$mode-$n.txt" || true
    [[ -n "$lt" ]] && { wait "$lt" || echo "loadtest exited $?"; }
    stop_pid "$RELAY_PID"
}

ceiling_level() { # MODE N
    local mode="$1" n="$2" rate settle cl="" srv port i
    if [[ $mode == idle ]]; then rate=0 settle=5; else rate="$CEILING_ACTIVE_RATE" settle=10; fi
    coproc SRV { exec "$CEILING_HELPER" server; }
    srv=$SRV_PID
    BENCH_PIDS+=("$srv")
    read -r port <&"${SRV[0]}"
    printf '+ %s server (port %s, pid %s)\n' "$CEILING_HELPER" "$port" "$srv" >&2
    wait_quiet "$QUIET_WAIT" | tee -a "$OUT/machine.txt"
    if ((n > 0)); then
        run "$CEILING_HELPER" clients "ws://127.0.0.1:$port/" "$n" "$SOURCE_IPS" "$rate" 200 40 \
            >"$OUT/ceiling-$mode-$n.txt" 2>&1 &
        cl=$!
        BENCH_PIDS+=("$cl")
        for ((i = 0; i < 600; i++)); do
            grep -q '^open' "$OUT/ceiling-$mode-$n.txt" 2>/dev/null && break
            sleep 0.1
        done
        echo "ceiling $mode $n: $(head -1 "$OUT/ceiling-$mode-$n.txt") after $((i / 10)) s" | tee -a "$OUT/machine.txt"
    fi
    sleep "$settle"
    sample "ceiling	-	$mode" "$srv" "$n" -
    if [[ -n "$cl" ]]; then kill -TERM "$cl" 2>/dev/null || true; wait "$cl" 2>/dev/null || true; fi
    stop_pid "$srv"
}

for server in $SERVERS; do
    [[ $server == ceiling ]] && build_ceiling_helper
    for mode in $MODES; do
        for n in $LEVELS; do
            if [[ $server == relay ]]; then relay_level default "$mode" "$n"; else ceiling_level "$mode" "$n"; fi
        done
    done
done
if [[ -n "$VARIANTS" && $SERVERS == *relay* ]]; then
    IFS=';' read -r -a vs <<<"$VARIANTS"
    for v in "${vs[@]}"; do
        name="${v%%:*}"
        read -r -a flags <<<"${v#*:}"
        for n in $VARIANT_LEVELS; do relay_level "$name" idle "$n" "${flags[@]}"; done
    done
fi

python3 - "$OUT/rss.tsv" <<'EOF' | tee "$OUT/table.md"
import sys
from collections import defaultdict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
series = defaultdict(list)
for server, variant, mode, n, kb, samples, seen in rows:
    series[(server, variant, mode)].append((int(n), int(kb), samples, seen))
print("| server | variant | mode | connections | VmRSS KiB | 3 samples KiB | connections seen | above 0 KiB | KiB per connection (above 0 / N) | **slope KiB per connection** (from the previous level) | slope KB (10^3 B) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for key, pts in series.items():
    pts.sort()
    base = next((kb for n, kb, _, _ in pts if n == 0), None)
    if base is None:
        base = next((kb for (s, v, m), p in series.items() for n, kb, _, _ in p if n == 0 and s == key[0] and v == key[1]), None)
    prev = None
    for n, kb, samples, seen in pts:
        above = kb - base if base is not None else None
        per = f"{above / n:.1f}" if n and above is not None else ""
        slope = (kb - prev[1]) / (n - prev[0]) if prev and n > prev[0] else None
        print(f"| {key[0]} | {key[1]} | {key[2]} | {n} | {kb} | {samples} | {seen} | {above if above is not None else ''} | {per} | "
              f"{'' if slope is None else f'**{slope:.1f}**'} | {'' if slope is None else f'{slope * 1.024:.1f}'} |")
        prev = (n, kb)
EOF
echo "results in $OUT"
