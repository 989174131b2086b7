#!/usr/bin/env bash
# The side-by-side benchmarks: builds the six servers and the load generator (release), runs
# every scenario against each server (a fresh process per scenario, every delivery checked),
# and writes docs/benchmarks/{results.md,results.json,*.svg} plus the headline table in the
# README; then the shared event log's cost (`sse-load cluster`: three axum instances with
# 1,000 clients each on a redis-server it starts, against one axum process on the memory log)
# into docs/benchmarks/cluster.{md,json}, which needs Debian's redis-server. Takes
# about 5 minutes on 2 cores once built (8 on a fresh clone). Extra arguments go to
# `sse-load bench` (e.g. `--size quick` for a one-minute check that does not touch docs/).
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
"$sse_load" cluster --json "$out/cluster.json" --markdown "$out/cluster.md" \
  "${servers[0]}" || status=$?
echo "results: $out/results.md, $out/cluster.md (exit $status)"
exit "$status"
