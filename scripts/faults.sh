#!/usr/bin/env bash
# The fault-and-load suite at full scale: builds the six servers and the load generator
# (release), runs every scenario against each server, and writes docs/faults.md. About 6
# minutes on 2 cores once built. Extra arguments go to `sse-load faults` (e.g. `--scale ci` for the bounded
# version CI runs, or `--only slowloris`); with arguments, docs/ is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/examples.sh
build_release_servers

if [ "$#" -gt 0 ]; then
  exec "$sse_load" faults "$@" "${servers[@]}"
fi
exec "$sse_load" faults --scale full --markdown docs/faults.md \
  --json docs/faults.json "${servers[@]}"
