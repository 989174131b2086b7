#!/usr/bin/env bash
# Starts the six example servers on their default ports (3001–3006), each printing its URLs, and
# stops them all (by their own PIDs) on Ctrl-C. Extra settings pass through the environment:
#   TICK_MS=250 scripts/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/examples.sh
echo "building ${packages[*]} …"
cargo build --quiet $(printf -- '-p %s ' "${packages[@]}")

pids=()
stop() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

target_dir=$(target_dir)
for package in "${packages[@]}"; do
  # Output goes through a prefixing sed that ignores Ctrl-C, so that it keeps reading until the
  # server has logged its shutdown and exited; $! is the server's own PID.
  "$target_dir/debug/$package" > >(trap '' INT TERM; sed -u "s/^/[$package] /") 2>&1 &
  pids+=($!)
done

sleep 1
echo
echo "Each server's address is in its 'listening on' line above; every one serves the demo page"
echo "at / (each card connects to its own server). Ctrl-C stops them all."
wait
