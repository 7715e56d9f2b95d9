#!/usr/bin/env bash
# B4: three relay nodes + Redis + nginx vs three sockudo 5.2.0 nodes (Pusher protocol 7, Redis
# adapter) + Redis + nginx, on two loads; the bar is the server CPU per delivery.
#
#   broadcast  `loadtest cobrowse` with synthetic events: BCAST_ROOMS rooms (a list of steps,
#              default "4"), each with one publisher at BCAST_RATE events/s (default 25) of
#              BCAST_SIZE bytes (default 200) and BCAST_VIEWERS viewers (default 100); no chat,
#              no late joiners.
#   cobrowse   B2's load: `loadtest cobrowse` with the real rrweb recordings (room r replays
#              recording r mod 3), one customer and AGENTS agents per room (default 2), SPEED times
#              faster than recorded (default 10), CHAT_RATE chat messages/s per room (default 0.2);
#              COBROWSE_ROOMS rooms per step (default "25 50").
# Each step runs the sides in SIDES (default "relay sockudo") one after the other, each with a
# fresh redis-server (own port, never 6379), three nodes and nginx, DURATION of publishing
# (default 20s) + up to DRAIN (5s); each step is one `flock $LOCK` invocation of this script. A
# step is ok when the event p99 < P99_MS (default 50) and nothing is lost, duplicated or reordered.
#
#   relay    3 x `relay serve --redis-url --max-connections 20000 --max-room-members BCAST_VIEWERS+10`
#            behind deploy/nginx/$NGINX_CONF (default assist-relay-room-affinity.conf,
#            `hash $arg_room consistent`, as in B2).
#   sockudo  3 x $SOCKUDO (default ~/.cache/assist-relay-peers/sockudo/bin/sockudo, built once by
#            ../shared/peers/sockudo/install.sh, about 15 minutes; never run by the test command)
#            with the environment of ../shared/peers/sockudo/README.md plus SOCKUDO_ENV, behind
#            deploy/nginx/assist-relay.conf (ip_hash) with `location = /ws` changed to
#            `location /app/`. loadtest speaks `--protocol pusher`: a room is the channel
#            private-ROOM, events are `client-event`, chat is the client event `client-chat`.
#            The app's limits are raised so they never throttle the load: per-app connection
#            quota off (the per-node cap is 20000, as the relay's --max-connections), client events
#            at most SOCKUDO_CLIENT_EVENTS_PER_S per socket (default 10000; sockudo's default is
#            100), event payloads up to 100 KiB (the recordings' largest event is 48 KiB), and
#            the per-address limit on WebSocket upgrades off (RATE_LIMITER_ENABLED=false: every
#            client comes from three addresses, as lib.sh sets RELAY_MAX_PENDING_PER_ADDRESS=0).
#
# Clients connect from SOURCE_IPS round-robin (default 127.0.1.1,127.0.2.1,127.0.3.1: three /24s,
# so ip_hash spreads them over the three sockudo nodes, as in B2).
#
# CPU: loadtest samples every server process (3 nodes, redis-server, the nginx master and its
# workers) and itself over the publishing + drain window (utime + stime from /proc); the summary
# lists them per process with RSS, and computes CPU-ms per 1000 deliveries of nodes + Redis (the
# bar: relay <= 0.67 x sockudo on both loads), nginx in a column of its own.
#
#   loadtest/bench/b4-sockudo.sh
#   SIDES=sockudo COBROWSE_ROOMS="25" BCAST_ROOMS="" loadtest/bench/b4-sockudo.sh
#   loadtest/bench/b4-sockudo.sh summarize               # the tables again, from $OUT
#   BIN=/tmp/b4bin PASS=2 QUIET_WAIT=60 loadtest/bench/b4-sockudo.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/b4}"
SIDES="${SIDES:-relay sockudo}"
BCAST_ROOMS="${BCAST_ROOMS-4}" BCAST_VIEWERS="${BCAST_VIEWERS:-100}"
BCAST_RATE="${BCAST_RATE:-25}" BCAST_SIZE="${BCAST_SIZE:-200}"
COBROWSE_ROOMS="${COBROWSE_ROOMS-25 50}"
AGENTS="${AGENTS:-2}" SPEED="${SPEED:-10}" CHAT_RATE="${CHAT_RATE:-0.2}"
DURATION="${DURATION:-20s}" DRAIN="${DRAIN:-5s}"
P99_MS="${P99_MS:-50}" QUIET_WAIT="${QUIET_WAIT:-30}"
SOURCE_IPS="${SOURCE_IPS:-127.0.1.1,127.0.2.1,127.0.3.1}"
FIXTURES="${FIXTURES:-$ROOT/../shared/fixtures/rrweb}"
RECORDINGS="${RECORDINGS:-demoit.json loan-apply.json chat-widget.json}"
SOCKUDO="${SOCKUDO:-$HOME/.cache/assist-relay-peers/sockudo/bin/sockudo}"
# Extra environment for every sockudo node, word-split (e.g. SOCKUDO_ENV="RUST_LOG=warn").
SOCKUDO_ENV="${SOCKUDO_ENV:-}"
SOCKUDO_CLIENT_EVENTS_PER_S="${SOCKUDO_CLIENT_EVENTS_PER_S:-10000}"
PUSHER_KEY="${PUSHER_KEY:-key}" PUSHER_SECRET="${PUSHER_SECRET:-secret}"
NGINX="${NGINX:-/usr/sbin/nginx}"
NGINX_CONF="${NGINX_CONF:-assist-relay-room-affinity.conf}"
NGINX_WORKERS="${NGINX_WORKERS:-auto}"
LOCK="${LOCK:-/tmp/bench.lock}"
# Extra `relay serve` flags for every relay node, word-split.
RELAY_EXTRA="${RELAY_EXTRA:-}"
PASS="${PASS:-1}"
mkdir -p "$OUT"

# start_sockudo LOG PORT REDIS_PORT: one sockudo node; sets SOCKUDO_PID.
start_sockudo() {
    local log="$1" port="$2" redis_port="$3"
    local -a env=(HOST=127.0.0.1 PORT="$port" ADAPTER_DRIVER=redis CACHE_DRIVER=redis QUEUE_DRIVER=memory
        REDIS_URL="redis://127.0.0.1:$redis_port" METRICS_ENABLED=false
        SOCKUDO_DEFAULT_APP_ID=app SOCKUDO_DEFAULT_APP_KEY="$PUSHER_KEY" SOCKUDO_DEFAULT_APP_SECRET="$PUSHER_SECRET"
        SOCKUDO_ENABLE_CLIENT_MESSAGES=true SOCKUDO_MAX_CONNECTIONS=20000
        SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=0
        SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND="$SOCKUDO_CLIENT_EVENTS_PER_S"
        SOCKUDO_DEFAULT_APP_MAX_EVENT_PAYLOAD_IN_KB=100 WEBSOCKET_MAX_PAYLOAD_KB=100
        RATE_LIMITER_ENABLED=false)
    # shellcheck disable=SC2206
    env+=($SOCKUDO_ENV)
    printf '+ env %s %s\n' "${env[*]}" "$SOCKUDO" >&2
    env "${env[@]}" "$SOCKUDO" >"$log" 2>&1 &
    SOCKUDO_PID=$!
    BENCH_PIDS+=("$SOCKUDO_PID")
    wait_port "$port"
}

# step SIDE LOAD ROOMS: one run with a fresh cluster; writes $OUT/<side>-<load>-<rooms>-p<PASS>.*
step() {
    local side="$1" load="$2" rooms="$3" name="$1-$2-$3-p$PASS" ports i rc=0 j0 r
    local urls=() pids=() labels=() recs=() shape=() ups=() admins=() spids=()
    for ((r = 2; ; r++)); do [[ -e "$OUT/$name.txt" ]] || break; name="$1-$2-$3-p$PASS-r$r"; done
    read -r -a ports <<<"$(free_ports 8)"
    local redis_port="${ports[0]}" nginx_port="${ports[1]}" ndir
    ndir="$(mktemp -d "${TMPDIR:-/tmp}/b4-nginx.XXXXXX")"
    wait_quiet "$QUIET_WAIT" | tee -a "$OUT/machine.txt"
    printf '+ redis-server --port %s --bind 127.0.0.1 --save "" --appendonly no\n' "$redis_port" >&2
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$ndir" \
        --logfile "$OUT/redis-$name.log" &
    local redis_pid=$!
    BENCH_PIDS+=("$redis_pid")
    for ((i = 0; i < 50; i++)); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    for i in 0 1 2; do
        if [[ $side == relay ]]; then
            start_relay "$OUT/node$i-$name.log" "${ports[2 + 2 * i]}" "${ports[3 + 2 * i]}" \
                --redis-url "redis://127.0.0.1:$redis_port/0" --max-connections 20000 \
                --max-room-members $((BCAST_VIEWERS + 10)) $RELAY_EXTRA
            pids+=("$RELAY_PID")
            admins+=("${ports[3 + 2 * i]}")
        else
            start_sockudo "$OUT/node$i-$name.log" "${ports[2 + 2 * i]}" "$redis_port"
            pids+=("$SOCKUDO_PID")
        fi
        labels+=("node$i")
        ups+=("${ports[2 + 2 * i]}")
    done
    if [[ $side == relay ]]; then
        nginx_conf "$NGINX_CONF" "$ndir" "$nginx_port" - "${ups[@]}"
        urls=(--url "ws://127.0.0.1:$nginx_port/ws" --secret "$SECRET")
    else
        nginx_conf assist-relay.conf "$ndir" "$nginx_port" /app/ "${ups[@]}"
        urls=(--url "ws://127.0.0.1:$nginx_port" --protocol pusher --pusher-key "$PUSHER_KEY" --pusher-secret "$PUSHER_SECRET")
    fi
    local nginx_pid
    start_nginx
    if [[ $load == broadcast ]]; then
        shape=(--agents "$BCAST_VIEWERS" --rate "$BCAST_RATE" --size "$BCAST_SIZE" --chat-rate 0)
    else
        for r in $RECORDINGS; do recs+=(--recording "$FIXTURES/$r"); done
        shape=(--agents "$AGENTS" "${recs[@]}" --speed "$SPEED" --chat-rate "$CHAT_RATE")
    fi
    for i in "${pids[@]}"; do spids+=(--server-pid "$i"); done
    for i in "${!pids[@]}"; do printf '%s\t%s\t%s\n' "${pids[i]}" "${labels[i]}" "$(proc_cpu_s "${pids[i]}")"; done >"$OUT/$name.procs0"
    local load_before
    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "loadavg before $name: $load_before" | tee -a "$OUT/machine.txt"
    j0="$(cpu_jiffies)"
    probe_placement
    run "$LOADTEST" cobrowse "${urls[@]}" --rooms "$rooms" "${shape[@]}" --late-joiners 0 \
        --duration "$DURATION" --drain "$DRAIN" --source-ips "$SOURCE_IPS" \
        --max-p99-ms "$P99_MS" --max-loss 0 --quiet "${spids[@]}" --json "$OUT/$name.json" \
        >"$OUT/$name.txt" 2>&1 || rc=$?
    local busy
    busy="$(machine_busy_since "$j0")"
    echo "machine during $name: $busy" | tee -a "$OUT/machine.txt"
    record_step
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$load" "$rooms" "$PASS" "$rc" "$name" "$busy" "$load_before" >>"$OUT/steps.tsv"
    echo "$name: exit $rc (0 = p99 < $P99_MS ms and no loss)"
    # Stop: nodes first, then nginx, then Redis.
    for i in 0 1 2; do kill -TERM "${pids[i]}" 2>/dev/null || true; done
    for i in 0 1 2; do wait "${pids[i]}" 2>/dev/null || true; done
    stop_pid "$nginx_pid"
    stop_pid "$redis_pid"
    rm -rf "$ndir"
}

summarize() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/summarize.py" b4 "$OUT" "$P99_MS"
}

case "${1:-}" in
    summarize) summarize; exit 0 ;;
    step) step "$2" "$3" "$4"; exit 0 ;;
esac

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { echo "needs redis-server and redis-cli" >&2; exit 2; }
[[ -x "$NGINX" ]] || { echo "needs nginx ($NGINX)" >&2; exit 2; }
[[ $SIDES != *sockudo* || -x "$SOCKUDO" ]] || {
    echo "needs sockudo at $SOCKUDO: run ../shared/peers/sockudo/install.sh first (about 15 minutes)" >&2
    exit 2
}
{
    machine_notes
    echo "ulimit -n: $(ulimit -n); ip_local_port_range: $(cat /proc/sys/net/ipv4/ip_local_port_range)"
    [[ $SIDES != *sockudo* ]] || echo "sockudo:      $("$SOCKUDO" --version 2>&1 | head -1) sha256 $(sha256sum "$SOCKUDO" | cut -c1-12)"
    echo "nginx:        $("$NGINX" -v 2>&1 | cut -d/ -f2) workers=$NGINX_WORKERS; redis: $(redis-server --version | awk '{print $3}')"
} | tee -a "$OUT/machine.txt"
[[ -f "$OUT/steps.tsv" ]] || printf 'side\tload\trooms\tpass\texit\tname\tmachine\tloadavg\n' >"$OUT/steps.tsv"

for load in broadcast cobrowse; do
    if [[ $load == broadcast ]]; then steps="$BCAST_ROOMS"; else steps="$COBROWSE_ROOMS"; fi
    for rooms in $steps; do
        for side in $SIDES; do
            printf '+ flock %s %s step %s %s %s\n' "$LOCK" "$0" "$side" "$load" "$rooms" >&2
            flock "$LOCK" "$0" step "$side" "$load" "$rooms" || true
        done
    done
done

summarize | tee "$OUT/table.md"
echo "results in $OUT"
