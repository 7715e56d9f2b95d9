#!/usr/bin/env bash
# B2: three relay nodes + Redis + nginx vs three socket.io peer nodes + Redis + nginx.
#
# `loadtest cobrowse` with the real rrweb recordings (room r replays recording r mod 3), AGENTS
# agents per room (default 2) and one customer, SPEED times faster than recorded (default 10),
# stepping the number of rooms (ROOMS_RELAY, ROOMS_PEER). At each step the sides in SIDES run one
# after the other (relay, then peer), each with a fresh redis-server, nodes and nginx, DURATION
# of publishing (default 20s) + up to 5 s of drain. A step passes when the event p99 < P99_MS
# (default 50) and nothing is lost (loadtest --max-p99-ms --max-loss 0, exit 0); the summary also
# requires 0 duplicates and 0 reorders. A side stops being stepped after STOP_AFTER failed steps
# in a row (default 2).
#
#   relay  3 x `relay serve --redis-url` behind nginx with deploy/nginx/assist-relay-room-affinity.conf
#          (the project's recommended configuration: `hash $arg_room consistent`);
#          NGINX_CONF=assist-relay.conf runs the relay behind the ip_hash one instead.
#   peer   3 x `node server.js` of ../shared/peers/socketio-relay (copied to PEER_DIR, default
#          /tmp/peer-socketio, and `npm ci --omit=dev` there; the peer's code is never copied
#          into this repository) behind nginx with ip_hash, as the incumbent ran it: the same
#          deploy/nginx/assist-relay.conf with `location = /ws` changed to `location /socket.io/`.
#
# Clients connect from SOURCE_IPS round-robin (default 127.0.1.1,127.0.2.1,127.0.3.1: three /24s,
# because ip_hash hashes only the first three octets; with nginx's hash these three land on
# upstreams 1, 2 and 3 in order, so a room's customer and agents sit on different nodes, as with
# real clients on different networks).
#
# CPU: loadtest samples every server process (3 nodes, redis-server, the nginx master and its
# workers) over the publishing + drain window (utime + stime from /proc); the summary lists them
# per process and summed, with RSS. Each step is one `flock /tmp/bench.lock` (LOCK) invocation of
# this script, so that it never overlaps another benchmark on this machine.
#
#   loadtest/bench/b2-cluster.sh
#   ROOMS="25 50 100" SIDES=peer DURATION=15s loadtest/bench/b2-cluster.sh
#   loadtest/bench/b2-cluster.sh summarize                 # the tables again, from $OUT
#   BIN=/tmp/b2bin PASS=2 loadtest/bench/b2-cluster.sh     # PASS only names the output files
#   RELAY_EXTRA="--worker-threads 1" PASS=wt1 SIDES=relay loadtest/bench/b2-cluster.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/b2}"
# Rooms per step, per side (a side runs only the steps in its list; shared steps give equal offered
# load); ROOMS sets both.
ROOMS_RELAY="${ROOMS_RELAY:-${ROOMS:-10 25 50 100 200 300 400 600 800}}"
ROOMS_PEER="${ROOMS_PEER:-${ROOMS:-5 10 15 20 25 30 40 50 75 100}}"
SIDES="${SIDES:-relay peer}"
AGENTS="${AGENTS:-2}" SPEED="${SPEED:-10}" CHAT_RATE="${CHAT_RATE:-0.2}"
DURATION="${DURATION:-20s}" DRAIN="${DRAIN:-5s}"
P99_MS="${P99_MS:-50}" STOP_AFTER="${STOP_AFTER:-2}" QUIET_WAIT="${QUIET_WAIT:-30}"
SOURCE_IPS="${SOURCE_IPS:-127.0.1.1,127.0.2.1,127.0.3.1}"
FIXTURES="${FIXTURES:-$ROOT/../shared/fixtures/rrweb}"
RECORDINGS="${RECORDINGS:-demoit.json loan-apply.json chat-widget.json}"
PEER_SRC="${PEER_SRC:-$ROOT/../shared/peers/socketio-relay}"
PEER_DIR="${PEER_DIR:-/tmp/peer-socketio}"
NGINX="${NGINX:-/usr/sbin/nginx}"
NGINX_CONF="${NGINX_CONF:-assist-relay-room-affinity.conf}"
NGINX_WORKERS="${NGINX_WORKERS:-auto}"
LOCK="${LOCK:-/tmp/bench.lock}"
# Extra `relay serve` flags for every relay node, word-split (e.g. RELAY_EXTRA="--worker-threads 1").
RELAY_EXTRA="${RELAY_EXTRA:-}"
PASS="${PASS:-1}"
OTHER_MAX="${OTHER_MAX:-0.3}" RETRIES="${RETRIES:-1}"
mkdir -p "$OUT"

# prepare_peer: a fresh copy of the peer with its locked dependencies (only when missing).
prepare_peer() {
    if [[ ! -d "$PEER_DIR/node_modules/socket.io" || ! -f "$PEER_DIR/server.js" ]]; then
        rm -rf "$PEER_DIR"
        run cp -r "$PEER_SRC" "$PEER_DIR"
        chmod -R u+w "$PEER_DIR"
        (cd "$PEER_DIR" && run npm ci --omit=dev --no-audit --no-fund)
    fi
    echo "peer:         $(cd "$PEER_DIR" && node --version) socket.io $(node -p 'require("'"$PEER_DIR"'/node_modules/socket.io/package.json").version') @socket.io/redis-adapter $(node -p 'require("'"$PEER_DIR"'/node_modules/@socket.io/redis-adapter/package.json").version')"
    echo "nginx:        $("$NGINX" -v 2>&1 | cut -d/ -f2) workers=$NGINX_WORKERS; redis: $(redis-server --version | awk '{print $3}')"
}

# step SIDE ROOMS: one run with a fresh cluster; writes $OUT/<side>-<rooms>-p<PASS>.{json,txt,procs}.
step() {
    local side="$1" rooms="$2" name="$1-$2-p$PASS" ports i rc=0 j0 urls=() pids=() labels=() recs=() f r
    # A repeated step gets its own files: <side>-<rooms>-p<PASS>-r2, -r3, ...
    for ((r = 2; ; r++)); do [[ -e "$OUT/$name.txt" ]] || break; name="$1-$2-p$PASS-r$r"; done
    read -r -a ports <<<"$(free_ports 8)"
    local redis_port="${ports[0]}" nginx_port="${ports[1]}"
    local ndir
    ndir="$(mktemp -d "${TMPDIR:-/tmp}/b2-nginx.XXXXXX")"
    wait_quiet "$QUIET_WAIT" | tee -a "$OUT/machine.txt"
    printf '+ redis-server --port %s --bind 127.0.0.1 --save "" --appendonly no\n' "$redis_port" >&2
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$ndir" \
        --logfile "$OUT/redis-$name.log" &
    local redis_pid=$!
    BENCH_PIDS+=("$redis_pid")
    for ((i = 0; i < 50; i++)); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    local ups=() admins=()
    for i in 0 1 2; do
        if [[ $side == relay ]]; then
            start_relay "$OUT/node$i-$name.log" "${ports[2 + 2 * i]}" "${ports[3 + 2 * i]}" \
                --redis-url "redis://127.0.0.1:$redis_port/0" --max-connections 20000 $RELAY_EXTRA
            pids+=("$RELAY_PID")
            admins+=("${ports[3 + 2 * i]}")
        else
            printf '+ (cd %s && PORT=%s REDIS_URL=redis://127.0.0.1:%s node server.js)\n' "$PEER_DIR" "${ports[2 + 2 * i]}" "$redis_port" >&2
            (cd "$PEER_DIR" && PORT="${ports[2 + 2 * i]}" REDIS_URL="redis://127.0.0.1:$redis_port" exec node server.js) \
                >"$OUT/node$i-$name.log" 2>&1 &
            pids+=("$!")
            BENCH_PIDS+=("$!")
            wait_port "${ports[2 + 2 * i]}"
        fi
        labels+=("node$i")
        ups+=("${ports[2 + 2 * i]}")
    done
    if [[ $side == relay ]]; then
        nginx_conf "$NGINX_CONF" "$ndir" "$nginx_port" - "${ups[@]}"
        urls=(--url "ws://127.0.0.1:$nginx_port/ws")
    else
        nginx_conf assist-relay.conf "$ndir" "$nginx_port" /socket.io/ "${ups[@]}"
        urls=(--url "ws://127.0.0.1:$nginx_port" --protocol socketio)
    fi
    local nginx_pid
    start_nginx
    for f in $RECORDINGS; do recs+=(--recording "$FIXTURES/$f"); done
    local spids=()
    for i in "${pids[@]}"; do spids+=(--server-pid "$i"); done
    for i in "${!pids[@]}"; do printf '%s\t%s\t%s\n' "${pids[i]}" "${labels[i]}" "$(proc_cpu_s "${pids[i]}")"; done >"$OUT/$name.procs0"
    echo "loadavg before $name: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
    j0="$(cpu_jiffies)"
    probe_placement
    run "$LOADTEST" cobrowse "${urls[@]}" --secret "$SECRET" --rooms "$rooms" --agents "$AGENTS" \
        "${recs[@]}" --speed "$SPEED" --chat-rate "$CHAT_RATE" --late-joiners 0 \
        --duration "$DURATION" --drain "$DRAIN" --source-ips "$SOURCE_IPS" \
        --max-p99-ms "$P99_MS" --max-loss 0 --quiet "${spids[@]}" --json "$OUT/$name.json" \
        >"$OUT/$name.txt" 2>&1 || rc=$?
    local busy
    busy="$(machine_busy_since "$j0")"
    echo "machine during $name: $busy" | tee -a "$OUT/machine.txt"
    record_step
    # Cores the rest of the machine (other users) took during the run: machine busy minus the
    # sampled server processes and loadtest.
    local other
    other="$(python3 - "$OUT/$name.json" "$busy" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    own = sum(p["cpu_cores"] for p in r["processes"])
    print(f"{float(sys.argv[2].split()[0]) - own:.2f}")
except Exception:
    print("nan")
PY
)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$rooms" "$PASS" "$rc" "$name" "$busy" "$other" >>"$OUT/steps.tsv"
    echo "$name: exit $rc (0 = p99 < $P99_MS ms and no loss)"
    # Stop: nodes first, then nginx (TERM: fast shutdown), then Redis.
    for i in 0 1 2; do kill -TERM "${pids[i]}" 2>/dev/null || true; done
    for i in 0 1 2; do wait "${pids[i]}" 2>/dev/null || true; done
    stop_pid "$nginx_pid"
    stop_pid "$redis_pid"
    rm -rf "$ndir"
}

# summarize: every step in $OUT/steps.tsv (all passes) as markdown tables.
summarize() {
    python3 - "$OUT" "$P99_MS" <<'PY'
import json, os, sys
from collections import defaultdict
out, p99max = sys.argv[1], float(sys.argv[2])
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "steps.tsv"))][1:]
best = defaultdict(dict)  # side -> pass -> best deliveries/s with every lower step passing too
print("| side | rooms | pass | events/s offered | deliveries/s | lost / expected | dups | reorders | p50 ms | p99 ms | max ms | pub lag p99 ms | server CPU s | server cores | server CPU-ms / 1000 deliveries | loadtest cores | machine | others' cores | ok |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
procs_out = []
last = {}
for i, row in enumerate(rows):
    last[(row[0], row[1], row[2])] = i
for i, row in enumerate(rows):
    side, rooms, pas, rc, name, busy = row[:6]
    other = row[6] if len(row) > 6 else "?"
    counts = last[(side, rooms, pas)] == i
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        print(f"| {side} | {rooms} | {pas} | (no report, exit {rc}) |" + " |" * 15)
        continue
    r = json.load(open(path))
    lat = r.get("latency") or {}
    ev, ch = r["events"], r["chat"]
    lost, exp = ev["lost"] + ch["lost"], ev["expected"] + ch["expected"]
    dups, reord = ev["dups"] + ch["dups"], ev["reorders"] + ch["reorders"]
    labels = {}
    pf = os.path.join(out, name + ".procs")
    if os.path.exists(pf):
        for l in open(pf):
            f = l.rstrip("\n").split("\t")
            labels[int(f[0])] = f[1]
    srv = [p for p in r["processes"] if p["label"] == "server"]
    lt = [p for p in r["processes"] if p["label"] != "server"]
    cpu = sum(p["cpu_s"] for p in srv)
    cores = sum(p["cpu_cores"] for p in srv)
    d = r["deliveries"]
    cpk = cpu * 1000.0 / (d / 1000.0) if d else float("nan")
    ok = rc == "0" and lost == 0 and dups == 0 and reord == 0 and lat.get("p99_ms", 1e9) < p99max
    lag = (r.get("publisher_lag") or {}).get("p99_ms", 0)
    print(f"| {side} | {rooms} | {pas} | {r['published_events'] / (r['params']['duration_s'] or 1):.0f} | {r['deliveries_per_s']:.0f} | {lost} / {exp} | {dups} | {reord} "
          f"| {lat.get('p50_ms', 0):.2f} | {lat.get('p99_ms', 0):.2f} | {lat.get('max_ms', 0):.2f} | {lag:.2f} | {cpu:.2f} | {cores:.2f} | {cpk:.1f} "
          f"| {lt[0]['cpu_cores'] if lt else 0:.2f} | {busy.split(' busy')[0]} | {other} | {('yes' if ok else '**no**') if counts else ('(repeated) yes' if ok else '(repeated) no')} |")
    per = defaultdict(lambda: [0.0, 0])
    for p in srv:
        k = labels.get(p["pid"], str(p["pid"]))
        per[k][0] += p["cpu_s"]
        per[k][1] += p["rss_max_kb"]
    procs_out.append((side, rooms, pas if counts else f"{pas} (repeated)", d, per, r["errors"]))
    if not counts:
        continue
    b = best[side].setdefault(pas, [0, True, 0])
    if ok:
        b[2] = max(b[2], r["deliveries_per_s"])
    if ok and b[1]:
        b[0] = max(b[0], r["deliveries_per_s"])
    elif not ok:
        b[1] = False
print()
print("Per process (window CPU s and CPU-ms per 1000 deliveries; RSS max MiB; nginx workers summed):")
print()
print("| side | rooms | pass | node0 | node1 | node2 | redis | nginx (master + workers) | **nodes + redis CPU-ms / 1000** | sum CPU s | sum CPU-ms / 1000 deliveries | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
bar = {}  # (rooms, pass) -> side -> (nodes + redis, nodes, redis, nginx) CPU-ms / 1000 deliveries
for side, rooms, pas, d, per, errs in procs_out:
    def cell(keys):
        c = sum(per[k][0] for k in keys if k in per)
        m = sum(per[k][1] for k in keys if k in per)
        return f"{c:.2f} s, {c * 1e6 / d if d else 0:.1f}, {m / 1024:.0f} MiB"
    def per_k(keys):
        return sum(per[k][0] for k in keys if k in per) * 1e6 / d if d else float("nan")
    tot = sum(v[0] for v in per.values())
    nodes, redis_, nginx = per_k(["node0", "node1", "node2"]), per_k(["redis"]), per_k(["nginx-master", "nginx-worker"])
    if "repeated" not in pas:
        bar.setdefault((int(rooms), pas), {})[side] = (nodes + redis_, nodes, redis_, nginx)
    print(f"| {side} | {rooms} | {pas} | {cell(['node0'])} | {cell(['node1'])} | {cell(['node2'])} | {cell(['redis'])} | {cell(['nginx-master', 'nginx-worker'])} | **{nodes + redis_:.1f}** | {tot:.2f} | {tot * 1e6 / d if d else 0:.1f} | {', '.join(f'{k}={v}' for k, v in errs.items()) or '-'} |")
print()
# The bar (issue 17): CPU per delivery of the nodes plus Redis, relay / peer, at equal load; nginx
# proxies the same frames on both sides and is shown apart, outside the bar.
pairs = [(k, v) for k, v in sorted(bar.items()) if "relay" in v and "peer" in v]
if pairs:
    print("Bar: nodes + Redis CPU-ms / 1000 deliveries, relay / peer (at most 0.33; goal 0.1); nginx apart:")
    print()
    print("| rooms | pass | relay nodes + redis (nodes, redis) | peer nodes + redis (nodes, redis) | **relay / peer** | nodes only | redis only | nginx relay / peer |")
    print("|---|---|---|---|---|---|---|---|")
    for (rooms, pas), v in pairs:
        r, q = v["relay"], v["peer"]
        print(f"| {rooms} | {pas} | {r[0]:.1f} ({r[1]:.1f}, {r[2]:.1f}) | {q[0]:.1f} ({q[1]:.1f}, {q[2]:.1f}) | **{r[0] / q[0]:.2f}** | {r[1] / q[1]:.2f} | {r[2] / q[2]:.2f} | {r[3]:.1f} / {q[3]:.1f} |")
    print()
for side in best:
    for pas, (b, _, hi) in sorted(best[side].items()):
        print(f"max sustainable deliveries/s, {side}, pass {pas}: highest ok step {hi:.0f}; with every lower step ok {b:.0f}")
PY
}

if [[ "${1:-}" == summarize ]]; then
    summarize
    exit 0
fi

if [[ "${1:-}" == step ]]; then
    step "$2" "$3"
    exit 0
fi

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { echo "needs redis-server and redis-cli" >&2; exit 2; }
[[ -x "$NGINX" ]] || { echo "needs nginx ($NGINX)" >&2; exit 2; }
[[ $SIDES != *peer* ]] || command -v npm >/dev/null || { echo "needs node and npm for the peer" >&2; exit 2; }
{
    machine_notes
    echo "ulimit -n: $(ulimit -n); ip_local_port_range: $(cat /proc/sys/net/ipv4/ip_local_port_range)"
    [[ $SIDES != *peer* ]] || prepare_peer
} | tee -a "$OUT/machine.txt"
[[ -f "$OUT/steps.tsv" ]] || printf 'side\trooms\tpass\texit\tname\tmachine\tother_cores\n' >"$OUT/steps.tsv"

declare -A fails=() steps=()
for side in $SIDES; do fails[$side]=0; done
steps[relay]=" $ROOMS_RELAY " steps[peer]=" $ROOMS_PEER "
for rooms in $(printf '%s\n' $ROOMS_RELAY $ROOMS_PEER | sort -nu); do
    for side in $SIDES; do
        ((fails[$side] < STOP_AFTER)) || continue
        [[ ${steps[$side]} == *" $rooms "* ]] || continue
        # A failed run during which other processes took more than OTHER_MAX cores is repeated (at
        # most RETRIES times); every run stays in steps.tsv, the last one counts.
        for ((attempt = 0; attempt <= RETRIES; attempt++)); do
            printf '+ flock %s %s step %s %s\n' "$LOCK" "$0" "$side" "$rooms" >&2
            flock "$LOCK" "$0" step "$side" "$rooms" || true
            read -r rc other <<<"$(awk -F'\t' -v s="$side" -v n="$rooms" -v p="$PASS" '$1 == s && $2 == n && $3 == p { r = $4; o = $7 } END { print (r == "" ? 2 : r), (o == "" ? "nan" : o) }' "$OUT/steps.tsv")"
            ((rc != 0)) || break
            awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o == "nan" || o + 0 > m + 0) }' || break
            ((attempt < RETRIES)) && echo "$side-$rooms-p$PASS: failed while other processes took $other cores (> $OTHER_MAX); repeating"
        done
        if ((rc == 0)); then fails[$side]=0; else fails[$side]=$((fails[$side] + 1)); fi
    done
    left=0
    for side in $SIDES; do ((fails[$side] < STOP_AFTER)) && left=1; done
    ((left)) || break
done

summarize | tee "$OUT/table.md"
echo "results in $OUT"
