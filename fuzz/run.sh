#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 10; CI uses that, people who want more pass more):
#   bash fuzz/run.sh 600
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). A crash stops
# the run with the input that caused it under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-10}
for target in alertmanager_body workflow_document template; do
  mkdir -p "corpus/$target"
  cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3
done
