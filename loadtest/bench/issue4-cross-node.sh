#!/usr/bin/env bash
# Issue 4 figures: a room of 1 customer + 3 agents on 3 cluster nodes sharing one redis-server.
#   cross-node: customer on node A, agents on nodes B, C, B (fan-out crosses Redis pub/sub)
#   same-node:  everyone on node A (what nginx room affinity produces)
# at the same offered load, 30 s each, with a fresh redis-server and fresh nodes per run. Around
# each run: CONFIG RESETSTAT, then INFO commandstats / INFO stats, to count Redis commands per
# relayed event. An idle run (nodes up, no clients) gives the background commands.
#
#   loadtest/bench/issue4-cross-node.sh                 # DURATION=30s by default
#   RECORDING=../shared/fixtures/rrweb/demoit.json SPEED=60 (defaults) for the recording runs
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/issue4}"
DURATION="${DURATION:-30s}"
RECORDING="${RECORDING:-$ROOT/../shared/fixtures/rrweb/demoit.json}"
SPEED="${SPEED:-60}"
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { echo "needs redis-server and redis-cli" >&2; exit 2; }
mkdir -p "$OUT"

# Node flags: a rate limit well above the offered load, so pacing never enters the figures.
NODE_FLAGS=(--max-msgs-per-sec 5000)

# start_cluster: a fresh redis-server and 3 nodes; sets REDIS_PORT, WS[0..2], ADMIN[0..2],
# NODE_PIDS, REDIS_PID.
start_cluster() {
    local ports i
    read -r -a ports <<<"$(free_ports 7)"
    REDIS_PORT="${ports[0]}"
    printf '+ redis-server --port %s --bind 127.0.0.1 --save "" --appendonly no\n' "$REDIS_PORT" >&2
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT" \
        --logfile "$OUT/redis-$1.log" &
    REDIS_PID=$!
    BENCH_PIDS+=("$REDIS_PID")
    for ((i = 0; i < 50; i++)); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    NODE_PIDS=()
    WS=()
    ADMIN=()
    for i in 0 1 2; do
        WS[i]="${ports[1 + 2 * i]}"
        ADMIN[i]="${ports[2 + 2 * i]}"
        start_relay "$OUT/node$i-$1.log" "${WS[i]}" "${ADMIN[i]}" \
            --redis-url "redis://127.0.0.1:$REDIS_PORT/0" "${NODE_FLAGS[@]}"
        NODE_PIDS+=("$RELAY_PID")
    done
}

stop_cluster() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${NODE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_pid "$REDIS_PID"
}

node_metrics() {
    local i
    for i in 0 1 2; do
        echo "## node $i (${WS[i]})"
        curl -fs "http://127.0.0.1:${ADMIN[i]}/metrics" | grep -E '^relay_(frames_(in|out)_total|closes_total|resyncs_total|redis_|queue_overflows|connections|fanout_latency_seconds)' | grep -v ' 0$' || true
    done
}

machine_notes | tee "$OUT/machine.txt"

# Background: nodes up, no clients (SKIP_IDLE=1 skips it).
if [[ "${SKIP_IDLE:-0}" != 1 ]]; then
start_cluster idle
redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
sleep "${DURATION%s}"
redis-cli -p "$REDIS_PORT" INFO commandstats >"$OUT/commandstats-idle.txt"
redis-cli -p "$REDIS_PORT" INFO stats >"$OUT/stats-idle.txt"
stop_cluster
fi

# RUNS: run names <source>-<placement>[-suffix], in order (a suffix tells repeats apart).
RUNS="${RUNS:-synthetic-cross synthetic-same recording-cross recording-same}"
for name in $RUNS; do
    IFS=- read -r source placement _ <<<"$name"
    start_cluster "$name"
    A="ws://127.0.0.1:${WS[0]}/ws"
    B="ws://127.0.0.1:${WS[1]}/ws"
    C="ws://127.0.0.1:${WS[2]}/ws"
    # Connections take the --url values round-robin in the order they are opened: the 3 agents
    # first (urls 1-3), then the customer (url 4).
    if [[ $placement == cross ]]; then urls=(--url "$B" --url "$C" --url "$B" --url "$A"); else urls=(--url "$A"); fi
    if [[ $source == synthetic ]]; then src=(--rate 200 --size 200); else src=(--recording "$RECORDING" --speed "$SPEED"); fi
    wait_quiet | tee -a "$OUT/machine.txt"
    redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
    j0="$(cpu_jiffies)"
    echo "loadavg before $name: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
    run "$LOADTEST" cobrowse "${urls[@]}" --secret "$SECRET" --rooms 1 --agents 3 \
        "${src[@]}" --chat-rate 0 --late-joiners 0 --duration "$DURATION" \
        --server-pid "${NODE_PIDS[0]}" --server-pid "${NODE_PIDS[1]}" --server-pid "${NODE_PIDS[2]}" \
        --server-pid "$REDIS_PID" --json "$OUT/$name.json" --quiet \
        | tee "$OUT/$name.txt" || echo "loadtest exited $?" | tee -a "$OUT/$name.txt"
    echo "machine during $name: $(machine_busy_since "$j0")" | tee -a "$OUT/machine.txt"
    redis-cli -p "$REDIS_PORT" INFO commandstats >"$OUT/commandstats-$name.txt"
    redis-cli -p "$REDIS_PORT" INFO stats >"$OUT/stats-$name.txt"
    node_metrics >"$OUT/metrics-$name.txt"
    stop_cluster
done
echo "results in $OUT"
