#!/usr/bin/env bash
# Measures the most memory one customer token can make a node (embedded) or Redis (cluster, two
# nodes) hold under the default quotas: relay/examples/flood.rs floods with 4 connections for
# SECS seconds (events up to the log cap, unfinished uploads up to the staging share, chat);
# the relay's RSS and Redis's used_memory are sampled every second and the peaks printed.
#
#   scripts/measure-quota.sh embedded   # or: cluster
#
# Not a test: figures depend on the machine and the build (BIN, default target/release).
set -euo pipefail
MODE=${1:-embedded}
SECS=${SECS:-45}
BIN=${BIN:-target/release}
SECRET=measure-secret-measure-secret-0123
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }

URLS=(--url ws://127.0.0.1:18080/ws)
if [ "$MODE" = cluster ]; then
  redis-server --port 16399 --save '' --appendonly no --dir "$WORK" >/dev/null &
  PIDS+=($!)
  sleep 0.5
  EXTRA=(--redis-url redis://127.0.0.1:16399/)
  URLS+=(--url ws://127.0.0.1:18081/ws)
else
  EXTRA=()
fi
for i in 0 $([ "$MODE" = cluster ] && echo 1); do
  RELAY_JWT_SECRET=$SECRET "$BIN/relay" serve --listen "127.0.0.1:1808$i" \
    --admin-listen "127.0.0.1:1809$i" --archive-dir "$WORK/archive" --log-format json \
    "${EXTRA[@]}" >"$WORK/relay$i.log" 2>&1 &
  PIDS+=($!)
done
RELAY_PIDS=("${PIDS[@]: -$([ "$MODE" = cluster ] && echo 2 || echo 1)}")
sleep 1
base=0; for p in "${RELAY_PIDS[@]}"; do base=$((base + $(rss "$p"))); done
rbase=0
[ "$MODE" = cluster ] && rbase=$(redis-cli -p 16399 info memory | awk -F: '/^used_memory:/ {print $2+0}')
TOKEN=$(RELAY_JWT_SECRET=$SECRET "$BIN/relay" token --room flood --role customer --sub mallory)
"$BIN/examples/flood" --token "$TOKEN" --secs "$SECS" "${URLS[@]}" >"$WORK/flood.out" &
FLOOD=$!
peak=0; rpeak=0
while kill -0 "$FLOOD" 2>/dev/null; do
  now=0; for p in "${RELAY_PIDS[@]}"; do now=$((now + $(rss "$p"))); done
  [ "$now" -gt "$peak" ] && peak=$now
  if [ "$MODE" = cluster ]; then
    r=$(redis-cli -p 16399 info memory | awk -F: '/^used_memory:/ {print $2+0}')
    if [ "$r" -gt "$rpeak" ]; then
      rpeak=$r
      redis-cli -p 16399 info memory | grep -E '^(used_memory|used_memory_dataset|mem_clients_normal|used_memory_vm_eval|used_memory_scripts):' >"$WORK/rpeak.txt"
    fi
  fi
  sleep 1
done
cat "$WORK/flood.out"
mib() { echo "$(( $1 / 1048576 )) MiB"; }
echo "mode $MODE, ${SECS}s, relay RSS before $(mib "$base"), peak $(mib "$peak") (all nodes)"
if [ "$MODE" = cluster ]; then
  echo "redis used_memory before $(mib "$rbase"), peak $(mib "$rpeak"); at the peak:"
  cat "$WORK/rpeak.txt"
  echo "after the flood:"
  redis-cli -p 16399 info memory | grep -E '^(used_memory|used_memory_dataset|mem_clients_normal):'
  echo "log stream bytes counted by the cap (lb): $(redis-cli -p 16399 hget 'ar:{flood}:meta' lb)"
  echo "staged bytes counted for the room (r): $(redis-cli -p 16399 hget 'ar:{flood}:stg' r)"
fi
end=0; for p in "${RELAY_PIDS[@]}"; do end=$((end + $(rss "$p"))); done
echo "relay RSS after the flood $(mib "$end")"
[ "$MODE" = cluster ] && redis-cli -p 16399 --scan --pattern 'ar:*' | while read -r k; do
  echo "$k $(redis-cli -p 16399 memory usage "$k")"; done | sort -k2 -n | tail -5
exit 0
