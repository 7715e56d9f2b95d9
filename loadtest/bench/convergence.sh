#!/usr/bin/env bash
# Convergence after faults in cluster mode (issue 22): node kill -9, Redis restart, a 15 s Redis
# outage; RUNS runs each (default 20), real processes (relay nodes, a durable redis-server,
# nginx), as relay/tests/cluster.rs sets them up. Runs the #[ignore]d tests of
# relay/tests/convergence.rs in release mode, one at a time, and prints their
# "CONVERGENCE ..." lines: min, p50, p90, p99, max and every run in ms.
#
#   loadtest/bench/convergence.sh                       # all three
#   RUNS=5 TESTS=after_a_node_is_killed loadtest/bench/convergence.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-${TMPDIR:-/tmp}/assist-relay-bench/convergence}"
TESTS="${TESTS:-after_a_node_is_killed after_redis_restarts after_a_15_s_redis_outage}"
export RUNS="${RUNS:-20}"
mkdir -p "$OUT"
cd "$ROOT"
echo "convergence.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), RUNS=$RUNS, load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/summary.txt"
for t in $TESTS; do
    # The tests start the relay binary of the same profile (CARGO_BIN_EXE_relay): release here.
    cargo test --release -p assist-relay --locked --test convergence \
        -- --ignored --exact "$t" --nocapture --test-threads 1 >"$OUT/$t.log" 2>&1 || {
        echo "$t failed; see $OUT/$t.log" | tee -a "$OUT/summary.txt"
        continue
    }
    grep -o 'CONVERGENCE.*' "$OUT/$t.log" | tee -a "$OUT/summary.txt" || true
done
