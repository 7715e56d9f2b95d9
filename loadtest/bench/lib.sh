# Helpers shared by the loadtest/bench/*.sh scripts (sourced, not run).
#
# Environment:
#   BIN   directory with `relay` and `loadtest` (default <repo>/target/release)
#   OUT   directory for the results (default ${TMPDIR:-/tmp}/assist-relay-bench/<script>)
# Everything binds to 127.0.0.1 on ports the kernel hands out; every process started is stopped on
# exit.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${BIN:-$ROOT/target/release}"
RELAY="$BIN/relay"
LOADTEST="$BIN/loadtest"
SECRET="${RELAY_JWT_SECRET:-bench-secret-0123456789abcdef0123456789}"
export RELAY_JWT_SECRET="$SECRET"
# Every load client (or nginx in front of the nodes) connects from one loopback address, so the
# per-address cap on handshakes in progress would count them all together: off for benchmarks.
export RELAY_MAX_PENDING_PER_ADDRESS="${RELAY_MAX_PENDING_PER_ADDRESS:-0}"

[[ -x "$RELAY" && -x "$LOADTEST" ]] || {
    echo "missing $RELAY or $LOADTEST: cargo build --release -p assist-relay -p assist-relay-loadtest" >&2
    exit 2
}

BENCH_PIDS=()
bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]:-}"; do
        [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]:-}"; do
        [[ -n "$pid" ]] && wait "$pid" 2>/dev/null || true
    done
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Echoes a command, then runs it (the exact commands end up in the log).
run() {
    printf '+ %s\n' "$*" >&2
    "$@"
}

# N free loopback ports from the kernel, never 6379.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
n, socks, ports = int(sys.argv[1]), [], []
while len(ports) < n:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
    p = s.getsockname()[1]
    if p != 6379: ports.append(p)
print(" ".join(map(str, ports)))
EOF
}

# Date, machine and load notes for the report.
machine_notes() {
    echo "date -u:      $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "nproc:        $(nproc)"
    echo "cpu:          $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "loadavg:      $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "kernel:       $(uname -r)"
    echo "relay:        $("$RELAY" --version) sha256 $(sha256sum "$RELAY" | cut -c1-12)"
    echo "loadtest:     $("$LOADTEST" --version) sha256 $(sha256sum "$LOADTEST" | cut -c1-12)"
    echo "git:          $(git -C "$ROOT" rev-parse --short HEAD) ($(git -C "$ROOT" status --porcelain --untracked-files=no | wc -l) modified tracked files)"
    echo "free -h:"
    free -h | sed 's/^/  /'
    echo "busiest processes at start (ps, %cpu since start):"
    ps -eo pid,pcpu,rss,comm --sort=-pcpu | head -6 | sed 's/^/  /'
}

# Waits until http://127.0.0.1:$1/readyz answers.
wait_ready() {
    local i
    for ((i = 0; i < 200; i++)); do
        curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "relay on admin port $1 not ready" >&2
    return 1
}

# start_relay LOG WS_PORT ADMIN_PORT [relay serve flags...]: starts a node, sets RELAY_PID.
start_relay() {
    local log="$1" ws="$2" admin="$3"
    shift 3
    printf '+ %s\n' "RELAY_JWT_SECRET=... $RELAY serve --listen 127.0.0.1:$ws --admin-listen 127.0.0.1:$admin $*" >&2
    "$RELAY" serve --listen "127.0.0.1:$ws" --admin-listen "127.0.0.1:$admin" "$@" >"$log" 2>&1 &
    RELAY_PID=$!
    BENCH_PIDS+=("$RELAY_PID")
    wait_ready "$admin"
}

# stop_pid PID: SIGTERM and wait.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# rss_kb PID: VmRSS in kB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo -; }

# sample_rss PID EVERY FILE: appends "seconds rss_kb" every EVERY seconds while PID lives; run it
# in the background.
sample_rss() {
    local pid="$1" every="$2" file="$3" t=0
    while kill -0 "$pid" 2>/dev/null; do
        printf '%s\t%s\n' "$t" "$(rss_kb "$pid")" >>"$file"
        sleep "$every"
        t=$((t + every))
    done
}

# Sum of relay_connections on the node with admin port $1.
connections() {
    curl -fs "http://127.0.0.1:$1/metrics" | awk '/^relay_connections\{/ { s += $2 } END { print s + 0 }'
}

# Busy and total jiffies of the whole machine (all CPUs) from /proc/stat.
cpu_jiffies() { awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat; }

# machine_busy_since "BUSY TOTAL": average busy cores of the whole machine since that snapshot
# (every process, ours and other users'), to compare with the cores the run's own processes used.
machine_busy_since() {
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$1"
    read -r b1 t1 <<<"$(cpu_jiffies)"
    awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v n="$(nproc)" 'BEGIN { printf "%.2f busy cores of %d\n", (t > 0 ? b / t * n : 0), n }'
}

# Waits (at most $1 seconds, default 180) until the machine is at least 75 % idle over 5 s, so a run
# does not start in the middle of someone else's build. Prints what it saw.
wait_quiet() {
    local limit="${1:-180}" waited=0 b0 t0 b1 t1 idle
    while :; do
        read -r b0 t0 <<<"$(cpu_jiffies)"
        sleep 5
        read -r b1 t1 <<<"$(cpu_jiffies)"
        idle=$(awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" 'BEGIN { printf "%d", (t > 0 ? 100 - b * 100 / t : 100) }')
        waited=$((waited + 5))
        if ((idle >= 75)); then echo "machine ${idle}% idle over 5 s (waited ${waited}s)"; return 0; fi
        if ((waited >= limit)); then echo "machine still busy (${idle}% idle) after ${waited}s; running anyway"; return 0; fi
    done
}

TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# proc_cpu_s PID: utime + stime of PID in seconds (process life so far).
proc_cpu_s() { awk -v t="$TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo -; }

# wait_port PORT: waits (at most 20 s) until something listens on 127.0.0.1:PORT.
wait_port() {
    local i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# nginx_conf TEMPLATE DIR LISTEN_PORT LOCATION UPSTREAM_PORT...: writes DIR/nginx.conf around one of
# deploy/nginx/*.conf with its upstream list and listen port replaced (as relay/tests/cluster.rs
# does). LOCATION `-` keeps the template's `location = /ws`; a path (a peer's, e.g. /socket.io/ or
# /app/) proxies that prefix instead. NGINX_WORKERS (default auto) sets worker_processes.
nginx_conf() {
    local template="$1" dir="$2" listen="$3" location="$4" servers="" p
    shift 4
    for p in "$@"; do servers+="    server 127.0.0.1:$p max_fails=1 fail_timeout=10s;\n"; done
    mkdir -p "$dir/tmp"
    awk -v servers="$servers" -v listen="$listen" -v location="$location" '
        /# BEGIN upstream servers/ { printf "%s", servers; skip = 1; next }
        /# END upstream servers/ { skip = 0; next }
        skip { next }
        $0 ~ /^ *listen 8080;$/ { print "    listen 127.0.0.1:" listen ";"; next }
        location != "-" && $0 ~ /location = \/ws \{/ { print "    location " location " {"; next }
        { print }
    ' "$ROOT/deploy/nginx/$template" >"$dir/upstream.conf"
    cat >"$dir/nginx.conf" <<EOF
worker_processes ${NGINX_WORKERS:-auto};
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  include $dir/upstream.conf;
}
EOF
}

# The step of a three-node cluster benchmark (b2-cluster.sh, b4-sockudo.sh), in pieces both use.
# They read the caller's locals (bash scopes dynamically): `name`, `side`, `ups` (the nodes'
# upstream ports), `pids` and `labels` (every sampled server process), `admins` (relay nodes'
# admin ports), `redis_port`; and DURATION and OUT.

# Starts nginx from the caller's `ndir` (config written by nginx_conf), keeps its upstream block in
# $OUT/nginx-$side.conf, waits for `nginx_port`, sets the caller's `nginx_pid`, and adds Redis
# (`redis_pid`), the nginx master and its workers to the sampled `pids` / `labels`.
start_nginx() {
    local i
    cp "$ndir/upstream.conf" "$OUT/nginx-$side.conf"
    printf '+ %s\n' "$NGINX -p $ndir -c $ndir/nginx.conf -e $ndir/error.log" >&2
    "$NGINX" -p "$ndir" -c "$ndir/nginx.conf" -e "$ndir/error.log" &
    nginx_pid=$!
    BENCH_PIDS+=("$nginx_pid")
    wait_port "$nginx_port"
    sleep 0.3
    pids+=("$redis_pid" "$nginx_pid")
    labels+=("redis" "nginx-master")
    for i in $(pgrep -P "$nginx_pid"); do pids+=("$i"); labels+=("nginx-worker"); done
}

# In the background, halfway through publishing: nginx -> node connections per node (where the
# clients landed), into $OUT/placement-$name.txt.
probe_placement() {
    (
        sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 2 + 3 }')"
        for i in 0 1 2; do
            printf 'node%s %s\n' "$i" "$(ss -Htn state established "( dport = :${ups[i]} )" 2>/dev/null | wc -l)"
        done >"$OUT/placement-$name.txt"
    ) &
}

# After the run: per process pid, label, CPU s at start (from $OUT/$name.procs0), CPU s at end and
# RSS kB at end into $OUT/$name.procs; the relay nodes' delivery metrics; Redis's commandstats.
record_step() {
    local i
    for i in "${!pids[@]}"; do
        printf '%s\t%s\t%s\t%s\t%s\n' "${pids[i]}" "${labels[i]}" "$(awk -F'\t' -v p="${pids[i]}" '$1 == p { print $3 }' "$OUT/$name.procs0")" \
            "$(proc_cpu_s "${pids[i]}")" "$(rss_kb "${pids[i]}")"
    done >"$OUT/$name.procs"
    if [[ $side == relay ]]; then
        for i in 0 1 2; do
            echo "## node$i"
            curl -fs "http://127.0.0.1:${admins[i]}/metrics" | grep -E '^relay_(frames_(in|out)_total\{type="(event|chat)"|closes_total|resyncs_total|queue_overflows|connections)' | grep -v ' 0$' || true
        done >"$OUT/metrics-$name.txt"
    fi
    redis-cli -p "$redis_port" INFO commandstats >"$OUT/commandstats-$name.txt" 2>/dev/null || true
}
