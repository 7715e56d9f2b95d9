#!/usr/bin/env bash
# A local assist-relay cluster on loopback: one private redis-server, N relay nodes in cluster mode
# (--redis-url), optionally a compactor (recordings) and the demo pages, and nginx in front of them
# with one of the configurations in deploy/nginx/.
#
#   deploy/local/cluster.sh [start] [-n N] [--ip-hash] [--compactor] [--demo]   # foreground; Ctrl-C stops it all
#   deploy/local/cluster.sh stop                         # stops a cluster started from another shell
#
# See deploy/local/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/local/cluster.sh [start] [-n N] [--ip-hash] [--compactor] [--demo]
       deploy/local/cluster.sh stop

start (default)  Start redis-server, N relay nodes and nginx on 127.0.0.1 (free ports), print the
                 URLs, the secret and two tokens for room `demo`, then wait. Ctrl-C (or SIGTERM)
                 stops everything this script started.
stop             Stop a running cluster by the pids saved in the state directory.

Options:
  -n N           Relay nodes (default 3).
  --ip-hash      Use deploy/nginx/assist-relay.conf (ip_hash) instead of the default
                 deploy/nginx/assist-relay-room-affinity.conf (hash $arg_room consistent).
  --compactor    Also run `relay compactor` (archive in STATE/archive): ended sessions become
                 recordings (`relay export`). The nodes get an API key for
                 POST /v1/rooms/{room}/close either way.
  --demo         Serve the demo pages through nginx (/demo/; nodes with --demo
                 --demo-unsafe-public: anyone reaching nginx gets tokens). Builds sdk/demo
                 (npm ci && npm run build) when sdk/demo/dist is missing.
  -h, --help     This text.

Environment:
  ASSIST_RELAY_LOCAL_DIR  State directory (default ${TMPDIR:-/tmp}/assist-relay-local): pids,
                          logs, the generated nginx configuration, env (URLs, secret, tokens).
  RELAY_JWT_SECRET        Secret for the nodes and tokens (default: 32 random bytes, hex).
  RELAY_API_KEY           The nodes' /v1 API key (default: 32 random bytes, hex).
  CARGO_TARGET_DIR        Where the release binaries are (default <repo>/target).
  NGINX, REDIS_SERVER     Binaries to use (default: nginx and redis-server from PATH or /usr/sbin).
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${ASSIST_RELAY_LOCAL_DIR:-${TMPDIR:-/tmp}/assist-relay-local}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
RELAY_BIN="$TARGET/release/relay"

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- pids -----------------------------------------------------------------------------------------

# STATE/pids holds one "name pid" per line; `stop` and the exit trap use it.
record_pid() { printf '%s %s\n' "$1" "$2" >>"$STATE/pids"; }

alive() { kill -0 "$1" 2>/dev/null; }

# Whether pid $1 still runs the program $2 (guards against a recycled pid).
runs() {
    local exe
    alive "$1" || return 1
    exe="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)"
    [[ "$exe" == *"$2"* ]]
}

# Whether pid $1 has ended (gone, or a zombie waiting to be reaped).
ended() {
    local st
    alive "$1" || return 0
    st="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)"
    [[ -z "$st" || "$st" == Z ]]
}

# stop_group SIG PROGRAM SECS PID...: sends SIG to each PID that still runs PROGRAM, waits up to
# SECS seconds for all of them to end, then sends SIGKILL to the rest.
stop_group() {
    local sig="$1" prog="$2" secs="$3" pid i left
    shift 3
    local pids=()
    for pid in "$@"; do
        if runs "$pid" "$prog"; then
            kill "-$sig" "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    ((${#pids[@]})) || return 0
    for ((i = 0; i < secs * 10; i++)); do
        left=0
        for pid in "${pids[@]}"; do ended "$pid" || left=1; done
        ((left)) || return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        if ! ended "$pid"; then
            log "$prog (pid $pid) did not exit after ${secs}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# Pids recorded under names matching the glob $1.
recorded() {
    local name pid
    [[ -f "$STATE/pids" ]] || return 0
    while read -r name pid; do
        # shellcheck disable=SC2053
        [[ "$name" == $1 ]] && printf '%s\n' "$pid"
    done <"$STATE/pids"
}

# Stops every recorded process: relay nodes first (they close their clients with 4000 and remove
# their presence from Redis), then the compactor, then nginx (and its workers), then redis-server.
stop_recorded() {
    [[ -f "$STATE/pids" ]] || return 0
    local nodes compactor nginx redis
    mapfile -t nodes < <(recorded 'node-*')
    mapfile -t compactor < <(recorded compactor)
    mapfile -t nginx < <(recorded nginx)
    mapfile -t redis < <(recorded redis)
    ((${#nodes[@]})) && stop_group TERM relay 15 "${nodes[@]}"
    # After the nodes: a session they ended on the way out is still recorded.
    ((${#compactor[@]})) && stop_group TERM relay 15 "${compactor[@]}"
    if ((${#nginx[@]})); then
        # Fast shutdown (TERM): a graceful one (QUIT) would wait for open WebSocket connections.
        # Its workers are remembered so that none outlives a master that had to be killed.
        local workers=() pid
        for pid in "${nginx[@]}"; do
            mapfile -t -O "${#workers[@]}" workers < <(pgrep -P "$pid" 2>/dev/null || true)
        done
        stop_group TERM nginx 5 "${nginx[@]}"
        ((${#workers[@]})) && stop_group KILL nginx 1 "${workers[@]}"
    fi
    ((${#redis[@]})) && stop_group TERM redis-server 10 "${redis[@]}"
    rm -f "$STATE/pids"
}

# --- stop -----------------------------------------------------------------------------------------

cmd_stop() {
    local name pid
    if [[ ! -f "$STATE/pids" ]]; then
        log "nothing to stop (no $STATE/pids)"
        return 0
    fi
    # A foreground cluster.sh still running: let its own trap stop everything.
    while read -r name pid; do
        if [[ "$name" == script ]] && [[ "$pid" != "$$" ]] && runs "$pid" cluster.sh; then
            log "stopping cluster.sh (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 250); do alive "$pid" || break; sleep 0.1; done
        fi
    done <"$STATE/pids"
    stop_recorded
    log "stopped"
}

# --- start ----------------------------------------------------------------------------------------

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found${2:+ ($2)}"; }

find_bin() {
    local override="$1" name="$2"
    if [[ -n "$override" ]]; then printf '%s' "$override"; return; fi
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    [[ -x "/usr/sbin/$name" ]] && { printf '/usr/sbin/%s' "$name"; return; }
    die "$name not found (install it or set ${3})"
}

# Prints $1 free TCP ports on 127.0.0.1, asked from the kernel (bind to port 0), all distinct and
# never 6379, 8080 or 9090.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
n, socks, ports = int(sys.argv[1]), [], []
while len(ports) < n:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    p = s.getsockname()[1]
    if p not in (6379, 8080, 9090):
        ports.append(p)
print(" ".join(map(str, ports)))
EOF
}

# Waits until 127.0.0.1:$1 accepts TCP connections (pid $2 must stay alive), up to $3 s.
wait_port() {
    local port="$1" pid="$2" secs="$3" what="$4" i
    for ((i = 0; i < secs * 10; i++)); do
        alive "$pid" || die "$what exited during startup; see its log in $STATE/logs"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$what did not listen on 127.0.0.1:$port within ${secs}s; see $STATE/logs"
}

# Waits until http://127.0.0.1:$1/readyz answers 200.
wait_ready() {
    local port="$1" pid="$2" secs="$3" what="$4" i
    for ((i = 0; i < secs * 10; i++)); do
        alive "$pid" || die "$what exited during startup; see $STATE/logs/$what.log"
        if python3 -c 'import sys,urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/readyz" % sys.argv[1], timeout=1)' "$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    die "$what not ready on 127.0.0.1:$port/readyz within ${secs}s; see $STATE/logs/$what.log"
}

# Writes the nginx configuration: the chosen deploy/nginx file with the upstream servers between
# the BEGIN/END markers replaced and `listen 8080;` replaced, inside a minimal main configuration
# whose pid, logs and temp paths are all in $STATE/nginx.
write_nginx_conf() {
    local src="$1" port="$2" demo="$3" dir="$STATE/nginx" servers="" p extra=""
    shift 3
    for p in "$@"; do
        servers+="    server 127.0.0.1:$p max_fails=1 fail_timeout=10s;"$'\n'
    done
    mkdir -p "$dir/temp"
    grep -q '# BEGIN upstream servers' "$src" && grep -q '# END upstream servers' "$src" \
        || die "$src has no BEGIN/END upstream servers markers"
    grep -qE '^[[:space:]]*listen 8080;' "$src" || die "$src has no 'listen 8080;' line"
    if ((demo)); then
        # The demo pages and /demo/token from any node (the pages open /ws on the same host).
        grep -q '# Admin endpoints stay on each node' "$src" || die "$src has no '# Admin endpoints' line"
        extra='    location /demo/ {
        proxy_pass http://assist_relay;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_connect_timeout 2s;
        proxy_next_upstream error timeout;
    }

'
    fi
    SERVERS="$servers" PORT="$port" EXTRA="$extra" awk '
        /# BEGIN upstream servers/ { print; printf "%s", ENVIRON["SERVERS"]; skip = 1; next }
        /# END upstream servers/   { skip = 0 }
        skip { next }
        /^[[:space:]]*listen 8080;/ { sub(/listen 8080;/, "listen 127.0.0.1:" ENVIRON["PORT"] ";") }
        /# Admin endpoints stay on each node/ { printf "%s", ENVIRON["EXTRA"] }
        { print }
    ' "$src" >"$dir/assist-relay.conf"
    cat >"$dir/nginx.conf" <<EOF
# Generated by deploy/local/cluster.sh from $src.
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log notice;

events {
    worker_connections 4096;
}

http {
    access_log $dir/access.log;
    client_body_temp_path $dir/temp/client_body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;

    include $dir/assist-relay.conf;
}
EOF
}

CHILDREN=()
STARTED=0

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if ((STARTED)); then
        log "stopping everything (relay nodes, compactor, nginx, redis-server)"
        stop_recorded
        log "stopped"
    fi
    exit "$rc"
}

cmd_start() {
    local nodes=3 conf_name="assist-relay-room-affinity.conf" with_compactor=0 demo=0
    while (($#)); do
        case "$1" in
            -n) [[ $# -ge 2 ]] || die "-n needs a number"; nodes="$2"; shift 2 ;;
            -n*) nodes="${1#-n}"; shift ;;
            --ip-hash) conf_name="assist-relay.conf"; shift ;;
            --compactor) with_compactor=1; shift ;;
            --demo) demo=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
    [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive number, got '$nodes'"

    local nginx redis conf
    nginx="$(find_bin "${NGINX:-}" nginx NGINX)"
    redis="$(find_bin "${REDIS_SERVER:-}" redis-server REDIS_SERVER)"
    need python3 "used to pick free ports"
    conf="$ROOT/deploy/nginx/$conf_name"
    [[ -f "$conf" ]] || die "$conf not found"

    # One cluster per state directory.
    if [[ -f "$STATE/pids" ]]; then
        local name pid
        while read -r name pid; do
            if ! ended "$pid" && [[ "$name" != script || "$pid" != "$$" ]]; then
                die "a cluster is already running from $STATE ($name pid $pid); run '$0 stop' first"
            fi
        done <"$STATE/pids"
    fi

    if [[ ! -x "$RELAY_BIN" ]]; then
        need cargo "needed to build $RELAY_BIN"
        log "building the release binaries (cargo build --release -p assist-relay)"
        (cd "$ROOT" && cargo build --release -p assist-relay)
    fi
    local demo_dir="$ROOT/sdk/demo/dist"
    if ((demo)) && [[ ! -f "$demo_dir/customer.html" ]]; then
        need npm "needed to build the demo pages (Node 20+)"
        log "building the demo pages (npm ci && npm run build in sdk/demo)"
        (cd "$ROOT/sdk/demo" && npm ci --no-audit --no-fund && npm run build) >&2
    fi

    rm -rf "$STATE"
    mkdir -p "$STATE/logs" "$STATE/redis"
    chmod 755 "$STATE"
    : >"$STATE/pids"
    record_pid script "$$"
    STARTED=1
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local secret="${RELAY_JWT_SECRET:-}"
    if [[ -z "$secret" ]]; then
        secret="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    fi

    local api_key="${RELAY_API_KEY:-}"
    if [[ -z "$api_key" ]]; then
        api_key="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    fi
    local node_extra=()
    ((demo)) && node_extra+=(--demo --demo-unsafe-public --demo-dir "$demo_dir")

    local ports
    read -r -a ports <<<"$(free_ports $((2 * nodes + 3)))"
    local redis_port="${ports[0]}" nginx_port="${ports[1]}" compactor_port="${ports[$((2 * nodes + 2))]}"
    local ws_ports=() admin_ports=() i
    for ((i = 0; i < nodes; i++)); do
        ws_ports+=("${ports[2 + 2 * i]}")
        admin_ports+=("${ports[3 + 2 * i]}")
    done

    # redis-server: private, no persistence, loopback only.
    "$redis" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$STATE/redis" --daemonize no --logfile "$STATE/logs/redis.log" </dev/null &
    local redis_pid=$!
    CHILDREN+=("$redis_pid")
    record_pid redis "$redis_pid"
    wait_port "$redis_port" "$redis_pid" 10 redis-server
    local redis_url="redis://127.0.0.1:$redis_port/0"

    # Relay nodes.
    local node_pids=()
    for ((i = 0; i < nodes; i++)); do
        RELAY_JWT_SECRET="$secret" RELAY_API_KEY="$api_key" "$RELAY_BIN" serve \
            --listen "127.0.0.1:${ws_ports[i]}" --admin-listen "127.0.0.1:${admin_ports[i]}" \
            --redis-url "$redis_url" --drain-timeout 5s "${node_extra[@]}" \
            >"$STATE/logs/node-$((i + 1)).log" 2>&1 </dev/null &
        node_pids+=($!)
        CHILDREN+=($!)
        record_pid "node-$((i + 1))" "$!"
    done
    for ((i = 0; i < nodes; i++)); do
        wait_ready "${admin_ports[i]}" "${node_pids[i]}" 40 "node-$((i + 1))"
    done

    # The compactor: ended sessions into recordings in $STATE/archive.
    local compactor_pid=""
    if ((with_compactor)); then
        mkdir -p "$STATE/archive"
        "$RELAY_BIN" compactor --redis-url "$redis_url" --archive-dir "$STATE/archive" \
            --admin-listen "127.0.0.1:$compactor_port" \
            >"$STATE/logs/compactor.log" 2>&1 </dev/null &
        compactor_pid=$!
        CHILDREN+=("$compactor_pid")
        record_pid compactor "$compactor_pid"
        wait_ready "$compactor_port" "$compactor_pid" 40 compactor
    fi

    # nginx.
    write_nginx_conf "$conf" "$nginx_port" "$demo" "${ws_ports[@]}"
    "$nginx" -t -q -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -e "$STATE/nginx/error.log" \
        >"$STATE/logs/nginx-t.log" 2>&1 || { cat "$STATE/logs/nginx-t.log" >&2; die "nginx -t failed"; }
    "$nginx" -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -e "$STATE/nginx/error.log" \
        >"$STATE/logs/nginx.log" 2>&1 </dev/null &
    local nginx_pid=$!
    CHILDREN+=("$nginx_pid")
    record_pid nginx "$nginx_pid"
    wait_port "$nginx_port" "$nginx_pid" 10 nginx

    # Tokens for room demo.
    local agent customer
    agent="$("$RELAY_BIN" token --secret "$secret" --room demo --role agent --sub alice --ttl 43200)"
    customer="$("$RELAY_BIN" token --secret "$secret" --room demo --role customer --sub bob --ttl 43200)"

    local url="ws://127.0.0.1:$nginx_port/ws"
    local recording="loadtest/fixtures/demo-shop.json"

    {
        printf 'export RELAY_URL=%q\n' "$url"
        printf 'export RELAY_JWT_SECRET=%q\n' "$secret"
        printf 'export RELAY_API_KEY=%q\n' "$api_key"
        printf 'export REDIS_URL=%q\n' "$redis_url"
        if ((with_compactor)); then printf 'export ARCHIVE_DIR=%q\n' "$STATE/archive"; fi
        if ((demo)); then printf 'export DEMO_URL=%q\n' "http://127.0.0.1:$nginx_port/demo/"; fi
        printf 'export AGENT_TOKEN=%q\n' "$agent"
        printf 'export CUSTOMER_TOKEN=%q\n' "$customer"
        for ((i = 0; i < nodes; i++)); do
            printf 'export NODE_%d_URL=%q\n' $((i + 1)) "ws://127.0.0.1:${ws_ports[i]}/ws"
            printf 'export NODE_%d_ADMIN=%q\n' $((i + 1)) "http://127.0.0.1:${admin_ports[i]}"
        done
    } >"$STATE/env"
    chmod 600 "$STATE/env"

    cat <<EOF

assist-relay local cluster: $nodes node(s), redis-server,${compactor_pid:+ a compactor,} nginx ($conf_name)

  nginx (WebSocket):  $url   (rooms are routed by ?room=)
EOF
    for ((i = 0; i < nodes; i++)); do
        printf '  node-%d:             ws://127.0.0.1:%s/ws   admin http://127.0.0.1:%s (/livez /readyz /metrics)   pid %s\n' \
            $((i + 1)) "${ws_ports[i]}" "${admin_ports[i]}" "${node_pids[i]}"
    done
    cat <<EOF
  redis:              $redis_url   (redis-cli -p $redis_port)
EOF
    if ((with_compactor)); then
        printf '  compactor:          admin http://127.0.0.1:%s (/livez /readyz /metrics)   archive %s   pid %s\n' \
            "$compactor_port" "$STATE/archive" "$compactor_pid"
    fi
    if ((demo)); then
        printf '  demo:               http://127.0.0.1:%s/demo/customer.html?room=demo and .../demo/agent.html?room=demo\n' "$nginx_port"
    fi
    cat <<EOF
  secret:             $secret
  API key:            $api_key
  agent token:        $agent
  customer token:     $customer
                      (room demo, agent alice and customer bob, valid 12 h)

Watch as the agent, then stream a recording as the customer (from $ROOT):

  cargo run -q --release -p assist-relay --example client -- --url '$url?room=demo' --token '$agent'
  cargo run -q --release -p assist-relay --example client -- --url '$url?room=demo' --token '$customer' --publish $recording --speed 10

End the session (every client is closed with 4502; with --compactor it becomes a recording):

  curl -s -X POST -H 'Authorization: Bearer $api_key' http://127.0.0.1:${admin_ports[0]}/v1/rooms/demo/close
EOF
    if ((with_compactor)); then
        cat <<EOF
  $RELAY_BIN export demo --archive-dir $STATE/archive --out $STATE/replay-demo --rrweb-dir node_modules/rrweb-player/dist
EOF
    fi
    cat <<EOF

State and logs: $STATE (source $STATE/env for the URLs, secret and tokens).
Ctrl-C stops everything; from another shell: $0 stop

EOF

    # Wait. A node that exits (e.g. killed to try failover) is reported; the rest keep running.
    local pid name
    while :; do
        set +e
        wait -n
        local rc=$?
        set -e
        ((rc == 127)) && { log "every process has exited"; exit 1; }
        for pid in "${CHILDREN[@]}"; do
            if ! alive "$pid"; then
                name="$(awk -v p="$pid" '$2 == p { print $1 }' "$STATE/pids")"
                log "${name:-pid $pid} (pid $pid) exited; see $STATE/logs"
            fi
        done
        local still=()
        for pid in "${CHILDREN[@]}"; do alive "$pid" && still+=("$pid"); done
        ((${#still[@]})) || { log "every process has exited"; exit 1; }
        CHILDREN=("${still[@]}")
    done
}

case "${1:-start}" in
    start) shift || true; cmd_start "$@" ;;
    stop) cmd_stop ;;
    -h | --help | help) usage ;;
    -*) cmd_start "$@" ;;
    *) usage >&2; exit 2 ;;
esac
