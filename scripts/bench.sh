#!/usr/bin/env bash
# The side-by-side benchmarks: builds the six servers and the load generator (release), runs
# every scenario against each server (a fresh process per scenario, every delivery checked),
# and writes docs/benchmarks/{results.md,results.json,*.svg} plus the headline table in the
# README. Takes about 3 minutes on 2 cores once built (6 on a fresh clone). Extra arguments go
# to `sse-load bench` (e.g. `--size quick` for a one-minute check that does not touch docs/).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/examples.sh
build_release_servers

if [ "$#" -gt 0 ]; then
  exec "$sse_load" bench "$@" "${servers[@]}"
fi
out=docs/benchmarks
mkdir -p "$out"
status=0
"$sse_load" bench --json "$out/results.json" --markdown "$out/results.md" \
  --charts "$out" --readme README.md "${servers[@]}" || status=$?
echo "results: $out/results.md (exit $status)"
exit "$status"
