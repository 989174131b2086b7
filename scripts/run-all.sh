#!/usr/bin/env bash
# Starts the six example servers on their default ports (3001–3006), each printing its URLs, and
# stops them all (by their own PIDs) on Ctrl-C. Extra settings pass through the environment:
#   TICK_MS=250 scripts/run-all.sh
#
#   scripts/run-all.sh --cluster
# runs them as one cluster instead: a redis-server of its own (port 6390, or REDIS_PORT; its data
# in a temporary directory), the six servers on it (EVENT_LOG=redis://127.0.0.1:6390), and nginx
# in front of them on port 3000 (or NGINX_PORT), round-robin, configured as scripts/nginx/
# explains. The demo page then shows the same ids in all six cards, and an event published to
# one server reaches all six; http://127.0.0.1:3000/ is the whole cluster behind one address.
# It needs Debian's redis-server and nginx (apt-get install redis-server nginx).
#
#   scripts/run-all.sh --tls
# serves all six over HTTPS (HTTP/2 and HTTP/1.1) with the development certificate of
# scripts/dev-cert.sh (made in target/dev-cert if it is not there): open
# https://127.0.0.1:3001/ in a browser that trusts target/dev-cert/ca.pem.
#
#   scripts/run-all.sh --cluster --tls
# the cluster with nginx serving HTTPS and HTTP/2 on port 3000 (the instances behind it stay plain
# HTTP): the demo page with all six cards through nginx needs it, since over HTTP/1.1 a browser's
# six connections to one host are all taken by the six streams, and /health and publishing wait.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=false
tls=false
for argument in "$@"; do
  case "$argument" in
    --cluster) cluster=true ;;
    --tls) tls=true ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "usage: scripts/run-all.sh [--cluster] [--tls]" >&2; exit 2 ;;
  esac
done

source scripts/examples.sh
echo "building ${packages[*]} …"
cargo build --quiet $(printf -- '-p %s ' "${packages[@]}")

pids=()
work=""
stop() {
  trap - INT TERM EXIT
  # Everything it started, by PID: the servers end their streams, redis and nginx stop.
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "$work" ] && rm -rf "$work"
}
trap stop INT TERM EXIT

# Runs a command in the background with its output prefixed; $! is the command's own PID. The
# prefixing sed ignores Ctrl-C, so that it keeps reading until the process has logged its end.
run() {
  local name=$1
  shift
  "$@" > >(trap '' INT TERM; sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
}

if $cluster; then
  for tool in redis-server nginx; do
    command -v "$tool" >/dev/null 2>&1 || { echo "--cluster needs $tool (apt-get install $tool)" >&2; exit 1; }
  done
  redis_port=${REDIS_PORT:-6390}
  nginx_port=${NGINX_PORT:-3000}
  work=$(mktemp -d)
  run redis redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' \
    --appendonly yes --appendfsync everysec --daemonize no
  for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis_pid=${pids[-1]}
  export EVENT_LOG="redis://127.0.0.1:$redis_port"
fi

if $tls; then
  cert=target/dev-cert/cert.pem key=target/dev-cert/key.pem
  [ -f "$cert" ] || cargo run --quiet -p dev-cert -- --out target/dev-cert
  # In a cluster, nginx terminates TLS and the instances behind it stay plain HTTP.
  $cluster || export TLS_CERT="$cert" TLS_KEY="$key"
fi

target_dir=$(target_dir)
upstreams=()
for package in "${packages[@]}"; do
  run "$package" "$target_dir/debug/$package"
  upstreams+=("127.0.0.1:$(sed -n "s/^$package \([0-9]*\)$/\1/p" <<<"$(printf '%s\n' "${ports[@]}")")")
done

if $cluster; then
  nginx_tls=()
  $tls && nginx_tls=(--tls "$cert" "$key")
  conf=$(scripts/nginx/render.sh "$work/nginx" "$nginx_port" "${nginx_tls[@]}" "${upstreams[@]}")
  run nginx nginx -p "$work/nginx" -c "$conf"
fi

sleep 1
echo
echo "Each server's address is in its 'listening on' line above; every one serves the demo page"
echo "at / (each card connects to its own server). Ctrl-C stops them all."
if $tls && ! $cluster; then
  echo "Over HTTPS: https://127.0.0.1:3001/ in a browser that trusts target/dev-cert/ca.pem."
fi
if $cluster; then
  echo "One cluster on $EVENT_LOG (redis pid $redis_pid): the same ids in every card."
  if $tls; then
    nginx_url="https://127.0.0.1:$nginx_port"
    echo "Behind nginx, round-robin, over HTTPS and HTTP/2: $nginx_url/ (all six as one server;"
    echo "  the demo page with every card through it: $nginx_url/?all=$nginx_url"
    echo "  in a browser that trusts target/dev-cert/ca.pem)."
  else
    nginx_url="http://127.0.0.1:$nginx_port"
    echo "Behind nginx, round-robin: $nginx_url/ (all six as one server). Over plain HTTP/1.1 a"
    echo "  browser opens six connections to it at most: put every card through it with --tls."
  fi
fi
wait
