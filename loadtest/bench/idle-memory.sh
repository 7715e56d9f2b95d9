#!/usr/bin/env bash
# Relay RSS with 0 and with N idle connections (default LEVELS="1000 5000"), a fresh embedded node
# per level. Connections are `loadtest cobrowse` rooms of 4 agents + 1 customer publishing one
# synthetic event every 20 s (--rate 0.05: a Meta at once, the FullSnapshot 20 s later), so they
# are joined and idle. RSS (VmRSS) is read once every connection is open, 3 s later, 3 times 1 s
# apart; the table takes the last.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/idle-memory}"
LEVELS="${LEVELS:-1000 5000}"
mkdir -p "$OUT"
machine_notes | tee "$OUT/machine.txt"
printf 'connections\trss_kb\tsamples_kb\n' >"$OUT/rss.tsv"

for n in 0 $LEVELS; do
    read -r ws admin <<<"$(free_ports 2)"
    start_relay "$OUT/relay-$n.log" "$ws" "$admin"
    wait_quiet 60 | tee -a "$OUT/machine.txt"
    lt=""
    if ((n > 0)); then
        rooms=$((n / 5))
        run "$LOADTEST" cobrowse --url "ws://127.0.0.1:$ws/ws" --secret "$SECRET" --rooms "$rooms" \
            --agents 4 --rate 0.05 --size 200 --chat-rate 0 --late-joiners 0 --duration 20s --drain 1s \
            --server-pid "$RELAY_PID" --json "$OUT/cobrowse-$n.json" --quiet >"$OUT/cobrowse-$n.txt" 2>&1 &
        lt=$!
        BENCH_PIDS+=("$lt")
        for ((i = 0; i < 300; i++)); do
            [[ "$(connections "$admin")" -ge "$n" ]] && break
            sleep 0.1
        done
        echo "connections open: $(connections "$admin") after $((i / 10)) s" | tee -a "$OUT/machine.txt"
    else
        sleep 2
    fi
    sleep 3
    samples=()
    for k in 1 2 3; do samples+=("$(rss_kb "$RELAY_PID")"); sleep 1; done
    printf '%s\t%s\t%s\n' "$n" "${samples[2]}" "${samples[*]}" | tee -a "$OUT/rss.tsv"
    echo "connections at the last sample: $(connections "$admin")" | tee -a "$OUT/machine.txt"
    [[ -n "$lt" ]] && { wait "$lt" || echo "loadtest exited $?"; }
    stop_pid "$RELAY_PID"
done
echo "results in $OUT"
