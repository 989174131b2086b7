#!/usr/bin/env bash
# The fault-and-load suite at full scale: builds the six servers and the load generator
# (release), runs every scenario against each server, and writes docs/faults.md. About 15
# minutes on 2 cores. Extra arguments go to `sse-load faults` (e.g. `--scale ci` for the bounded
# version CI runs, or `--only slowloris`); with arguments, docs/ is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(axum-example actix-web-example warp-example rocket-example poem-example salvo-example)
echo "building sse-load and ${packages[*]} (release) …"
cargo build --release --quiet -p sse-load $(printf -- '-p %s ' "${packages[@]}")
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
servers=()
for package in "${packages[@]}"; do servers+=("$target_dir/release/$package"); done

if [ "$#" -gt 0 ]; then
  exec "$target_dir/release/sse-load" faults "$@" "${servers[@]}"
fi
exec "$target_dir/release/sse-load" faults --scale full --markdown docs/faults.md \
  --json docs/faults.json "${servers[@]}"
