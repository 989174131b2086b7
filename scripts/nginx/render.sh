#!/usr/bin/env bash
# Writes an nginx config for a cluster into DIR and prints its path:
#   scripts/nginx/render.sh DIR PORT [--tls CERT KEY] UPSTREAM…
# (each UPSTREAM host:port). With --tls, nginx serves HTTPS with HTTP/2 on PORT (CERT and KEY:
# PEM files, e.g. target/dev-cert/cert.pem and key.pem); the instances behind it stay plain HTTP.
set -euo pipefail
dir=$1 port=$2
shift 2
listen="        listen 127.0.0.1:$port;"
if [ "${1:-}" = "--tls" ]; then
  [ $# -ge 3 ] || { echo "render.sh: --tls needs CERT and KEY" >&2; exit 2; }
  for file in "$2" "$3"; do
    [ -r "$file" ] || { echo "render.sh: --tls: cannot read $file" >&2; exit 2; }
  done
  cert=$(realpath "$2") key=$(realpath "$3")
  shift 3
  # "listen … http2" is how nginx before 1.25.1 (Debian 12 has 1.22) turns HTTP/2 on; later ones
  # take "http2 on;" and only warn about the old form.
  version=$("${NGINX:-nginx}" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
  if [ -n "$version" ] && [ "$(printf '%s\n' 1.25.1 "$version" | sort -V | head -n1)" = 1.25.1 ]; then
    listen="        listen 127.0.0.1:$port ssl;"$'\n'"        http2 on;"
  else
    listen="        listen 127.0.0.1:$port ssl http2;"
  fi
  listen+=$'\n'"        ssl_certificate $cert;"$'\n'"        ssl_certificate_key $key;"
fi
upstreams=""
for upstream in "$@"; do
  upstreams+="        server $upstream max_fails=1 fail_timeout=5s;"$'\n'
done
mkdir -p "$dir"
chmod 755 "$dir" # nginx's workers may run as another user
template="$(dirname "$0")/sse-cluster.conf"
awk -v dir="$dir" -v upstreams="$upstreams" -v listen="$listen" '
  /@UPSTREAMS@/ { printf "%s", upstreams; next }
  /@LISTEN@/ { print listen; next }
  { gsub(/@DIR@/, dir); print }
' "$template" > "$dir/nginx.conf"
echo "$dir/nginx.conf"
