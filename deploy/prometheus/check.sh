#!/usr/bin/env bash
# Checks the Prometheus kit with promtool: the configuration (and the rule files it loads), the
# rules, and their unit tests. relay/tests/ops_kit.rs runs the same checks in `cargo test`.
# promtool ships with Prometheus (Debian: apt-get install prometheus; scripts/test installs it).
set -euo pipefail
cd "$(dirname "$0")"

command -v promtool >/dev/null || {
  echo "promtool is required (Debian: apt-get install prometheus, or run scripts/test)" >&2
  exit 1
}
promtool check config prometheus.yml
promtool check rules rules/*.yml
promtool test rules tests/*.yml
