#!/usr/bin/env bash
# Redis time per append: the room-log append script (relay/src/store/redis/scripts/append.lua) of
# two commits side by side on one redis-server, in alternating rounds, with one subscriber on the
# room's channel (as a node with viewers has). Needs only redis-server, redis-cli and python3;
# no relay binary.
#
#   loadtest/bench/redis-append.sh [OLD_REV] [NEW_REV]
#
# OLD_REV defaults to HEAD~1, NEW_REV to the working tree ("work"). Environment: ROUNDS (default
# 3), CALLS per round (default 30000), CLIENTS (default 4), SIZE of the event JSON in bytes
# (default 1024), SENDER ('' = no rates; default "cust-1").
#
# Prints, per round and script: Redis's own time per call (INFO commandstats, evalsha) and the
# redis-server process's CPU per call (utime + stime over the round: parsing, the script, the
# reply, the publish to the subscriber and the system calls). CALLGRIND=1 runs redis-server under
# valgrind's callgrind and adds its instructions per call (user space, counted only during each
# round): deterministic where the times are noisy on a shared machine (use fewer CALLS, e.g. 3000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OLD=${1:-HEAD~1}
NEW=${2:-work}
ROUNDS=${ROUNDS:-3}
CALLS=${CALLS:-30000}
CLIENTS=${CLIENTS:-4}
SIZE=${SIZE:-1024}
SENDER=${SENDER-cust-1}
SCRIPT_PATH=relay/src/store/redis/scripts/append.lua

script_of() {
    if [[ $1 == work ]]; then cat "$ROOT/$SCRIPT_PATH"; else git -C "$ROOT" show "$1:$SCRIPT_PATH"; fi
}
# KEYS of a revision: the old script also took the `rate` hash.
nkeys_of() { script_of "$1" | grep -q "KEYS\[6\]" && echo 6 || echo 5; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
vg=()
[[ -n ${CALLGRIND:-} ]] && vg=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$dir/cg.%p")
"${vg[@]}" redis-server --port "$port" --save '' --appendonly no --dir "$dir" --daemonize no >"$dir/redis.log" 2>&1 &
rpid=$!
sub=
trap 'kill $rpid ${sub:-} 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$dir"' EXIT
cli() { redis-cli -p "$port" "$@"; }
for _ in $(seq 300); do cli ping >/dev/null 2>&1 && break; sleep 0.1; done

# One subscriber per room channel, reading and discarding (a node with viewers).
redis-cli -p "$port" psubscribe 'ar:*:ch' >/dev/null &
sub=$!

cpu_of() { awk '{print $14 + $15}' "/proc/$rpid/stat"; }
tick=$(getconf CLK_TCK)

run_round() { # rev name
    local rev=$1 sha nkeys room keys args before after stats calls usec
    sha=$(script_of "$rev" | cli -x script load)
    nkeys=$(nkeys_of "$rev")
    room="bench-$rev-$RANDOM"
    keys=("ar:{$room}:meta" "ar:{$room}:log" "ar:{$room}:chat" "ar:{$room}:d:" "ar:{$room}:pages")
    [[ $nkeys == 6 ]] && keys+=("ar:{$room}:rate")
    [[ -n ${CALLGRIND:-} ]] && { callgrind_control -z "$rpid" >/dev/null; callgrind_control -i on "$rpid" >/dev/null; }
    cli config resetstat >/dev/null
    before=$(cpu_of)
    # ARGV as relay/src/store/redis/log.rs passes them (rates generous: never refused): 25
    # strings until 2026-12-06, then 6 strings and 19 numbers packed as little-endian f64. CLIENTS
    # connections with one call in flight each, like redis-benchmark -c.
    python3 - "$port" "$sha" "$CALLS" "$CLIENTS" "$SENDER" "$SIZE" "$room" "$(script_of "$rev" | grep -c "struct.unpack('<ddd" || true)" "${keys[@]}" <<'PY'
import json, socket, struct, sys
port, sha, calls, clients, sender, size, room, packed = sys.argv[1:9]
keys = sys.argv[9:]
calls, clients = int(calls), int(clients)
n = int(size)
ev = json.dumps({"type": 3, "data": {"source": 0, "texts": [], "attributes": [{"id": 57, "attributes": {"style": "x" * (n - 120)}}], "removes": [], "adds": []}, "timestamp": 1718000000123}, separators=(",", ":")).encode()
body = b"e\x03\x00" + ev
chan = f"ar:{{{room}}}:ch".encode()
if packed != "0":
    args = [b"0123456789abcdef", body, b"1718000000123456", chan, b"", sender.encode(),
            struct.pack("<19d", 3, 1, 1000, 86400, 0, 0, 0, 200, 0, len(ev), 67108864, *[1, 1e11] * 4)]
else:
    args = [b"0123456789abcdef", body, b"3", b"1718000000123456", b"1", b"1000", b"86400", chan, b"0", b"0", b"", b"0",
            b"200", b"0", str(len(ev)).encode(), b"67108864", sender.encode()] + [b"1", b"100000000000"] * 4
parts = [b"EVALSHA", sha.encode(), str(len(keys)).encode()] + [k.encode() for k in keys] + args
cmd = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
socks = [socket.create_connection(("127.0.0.1", int(port))) for _ in range(clients)]
files = [s.makefile("rb") for s in socks]
def read(f):
    line = f.readline()
    t = line[:1]
    if t == b"*":
        return [read(f) for _ in range(int(line[1:]))]
    if t == b"$":
        k = int(line[1:])
        return None if k < 0 else f.read(k + 2)[:-2]
    if t == b"-":
        sys.exit("redis error: " + line.decode())
    return line[1:-2]
done = 0
while done < calls:
    batch = min(clients, calls - done)
    for s in socks[:batch]:
        s.sendall(cmd)
    for f in files[:batch]:
        read(f)
    done += batch
PY
    after=$(cpu_of)
    local ir=0
    if [[ -n ${CALLGRIND:-} ]]; then
        callgrind_control -i off "$rpid" >/dev/null
        rm -f "$dir"/cg.*.* 2>/dev/null || true
        callgrind_control -d "$rpid" >/dev/null
        ir=$(awk '/^totals:/ {print $2; exit}' "$dir"/cg.*.*)
    fi
    stats=$(cli info commandstats | tr -d '\r' | grep '^cmdstat_evalsha:')
    calls=$(sed -E 's/.*:calls=([0-9]+),.*/\1/' <<<"$stats")
    usec=$(sed -E 's/.*usec_per_call=([0-9.]+).*/\1/' <<<"$stats")
    local failed
    failed=$(sed -E 's/.*failed_calls=([0-9]+).*/\1/' <<<"$stats")
    local head
    head=$(cli hget "ar:{$room}:meta" head)
    python3 -c "
calls=$calls; cpu=($after-$before)/$tick
ir=$ir
print(f'$rev: calls {calls} (failed $failed, head $head), redis usec_per_call $usec, process CPU {cpu*1e6/calls:.1f} us/call' + (f', {ir/calls:,.0f} Ir/call' if ir else ''))"
    cli del "${keys[@]}" >/dev/null
}

echo "redis-append.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(redis-server --version | cut -d' ' -f3), calls $CALLS x $CLIENTS clients, event $SIZE B, sender '${SENDER}'"
echo "old=$OLD ($(git -C "$ROOT" rev-parse --short "$OLD" 2>/dev/null || echo -)) new=$NEW, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    echo "round $r"
    run_round "$OLD"
    run_round "$NEW"
done
