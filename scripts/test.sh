#!/usr/bin/env bash
# Every test of the project: the Rust tests (sse-core's unit tests on both event logs, the
# conformance parser and its property tests, the whole conformance suite against all six example
# servers on the memory log, on a shared Redis log and over HTTPS with HTTP/2, the cluster
# checks, the proof that every check fails against a server breaking its rule (over HTTP/1.1
# and over HTTP/2), and the fault-and-load suite at CI scale with
# its own proof against that broken server), then the demo page's end-to-end tests in headless
# Chromium.
#
# What the tests start for real comes from Debian's packages: redis-server (the shared event
# log), and Chromium, Node.js and nginx (the browser tests, one of them behind nginx). Run as
# root with apt-get, the script installs the missing ones. Elsewhere a missing redis-server is
# an error; missing browser tools skip the browser tests, except under CI=true, where anything
# missing is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/examples.sh

missing=()
command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || missing+=(redis-server)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} from Debian's packages …"
  apt-get update -qq
  # (Debian's nginx package may start its own nginx on port 80; the tests start one of their own.)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  missing=()
fi
for package in "${missing[@]}"; do
  if [ "$package" = redis-server ] || [ "${CI:-}" = true ]; then
    echo "error: the tests need $package (apt-get install ${missing[*]})" >&2
    exit 1
  fi
done

echo "== cargo test --workspace"
cargo test --workspace

echo "== browser end-to-end tests (e2e/)"
if [ ${#missing[@]} -gt 0 ]; then
  echo "skipping the browser tests: they need ${missing[*]} (apt-get install ${missing[*]})"
  exit 0
fi
# The example servers, and dev-cert for the certificate of the HTTPS tests.
cargo build --quiet $(printf -- '-p %s ' "${packages[@]}") -p dev-cert
npm --prefix e2e ci --no-audit --no-fund
PATH="$PATH:/usr/sbin" npm --prefix e2e test
