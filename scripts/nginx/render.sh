#!/usr/bin/env bash
# Writes an nginx config for a cluster into DIR: scripts/nginx/render.sh DIR PORT UPSTREAM…
# (each UPSTREAM host:port). Prints the config's path.
set -euo pipefail
dir=$1 port=$2
shift 2
upstreams=""
for upstream in "$@"; do
  upstreams+="        server $upstream max_fails=1 fail_timeout=5s;"$'\n'
done
mkdir -p "$dir"
chmod 755 "$dir" # nginx's workers may run as another user
template="$(dirname "$0")/sse-cluster.conf"
awk -v dir="$dir" -v port="$port" -v upstreams="$upstreams" '
  /@UPSTREAMS@/ { printf "%s", upstreams; next }
  { gsub(/@DIR@/, dir); gsub(/@PORT@/, port); print }
' "$template" > "$dir/nginx.conf"
echo "$dir/nginx.conf"
