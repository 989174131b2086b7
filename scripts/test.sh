#!/usr/bin/env bash
# Every test of the project: the Rust tests (sse-core's unit tests, the conformance parser and
# its property tests, the whole conformance suite against all six example servers, the proof
# that every check fails against a server breaking its rule, and the fault-and-load suite at CI
# scale with its own proof against that broken server), then the demo page's end-to-end tests
# in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/examples.sh

echo "== cargo test --workspace"
cargo test --workspace

echo "== browser end-to-end tests (e2e/)"
# They need Debian's Chromium and Node.js; as root with apt-get, the missing ones are installed.
missing=()
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} from Debian's packages …"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "skipping the browser tests: they need ${missing[*]} (apt-get install ${missing[*]})"
    exit 0
  fi
fi
cargo build --quiet $(printf -- '-p %s ' "${packages[@]}")
npm --prefix e2e ci --no-audit --no-fund
npm --prefix e2e test
