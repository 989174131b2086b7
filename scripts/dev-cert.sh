#!/usr/bin/env bash
# Makes a development certificate authority and a certificate for 127.0.0.1, ::1 and localhost
# signed by it, for serving the examples over HTTPS:
#   scripts/dev-cert.sh [--out DIR]     (default target/dev-cert: ca.pem, cert.pem, key.pem)
# Then TLS_CERT=target/dev-cert/cert.pem TLS_KEY=target/dev-cert/key.pem cargo run -p axum-example
# and curl --cacert target/dev-cert/ca.pem https://127.0.0.1:3001/health.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet -p dev-cert -- "$@"
