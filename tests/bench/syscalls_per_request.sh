#!/bin/bash
# SPDX-License-Identifier: MIT
# System calls per /healthz answered, keel against nginx-light (one worker, `return 200`): each
# server under `strace -f -c` while wrk -t1 -c50 runs for SECONDS (default 2), then each call's
# count ÷ the requests answered. strace slows both alike; the counts, not the times, are the point.
# Loopback only; stops what it starts. Needs strace, wrk and nginx-light (make deps-bench).
# Usage: tests/bench/syscalls_per_request.sh BUILD [SECONDS]
set -eu
build=${1:?usage: syscalls_per_request.sh BUILD [SECONDS]}; sec=${2:-2}
for tool in strace wrk nginx; do command -v $tool >/dev/null || { echo "needs $tool (make deps-bench)" >&2; exit 2; }; done
fp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
d=$(mktemp -d); mkdir -m 700 "$d/state" "$d/ng"
kp=; np=
trap 'kill $kp 2>/dev/null; kill -QUIT $np 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
kport=$(fp); nport=$(fp)
KEEL_DEFAULTS_FILE=/nonexistent KEEL_STATE_DIR=$d/state KEEL_HEALTHCHECK_ADDRESS=127.0.0.1:$kport KEEL_METRICS_ADDRESS=127.0.0.1:0 \
    KEEL_TOKEN_ADDRESS=127.0.0.1:0 "$build/keel" --log-level warning serve >"$d/keel.log" 2>&1 & kp=$!
cat >"$d/ng/nginx.conf" <<NG
worker_processes 1; daemon off; pid $d/ng/nginx.pid; error_log $d/ng/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$nport; location / { return 200 "ok"; } } }
NG
nginx -p "$d/ng" -c "$d/ng/nginx.conf" -e "$d/ng/error.log" 2>/dev/null & np=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$kport/livez" >/dev/null && curl -sf "http://127.0.0.1:$nport/" >/dev/null && break; sleep 0.05; done
for server in "keel $kp $kport" "nginx $(pgrep -P $np | head -1) $nport"; do
    set -- $server
    timeout -s INT $((sec + 1)) strace -f -c -p "$2" -o "$d/$1.strace" 2>/dev/null & sp=$!
    sleep 0.5
    n=$(wrk -t1 -c50 -d"${sec}s" "http://127.0.0.1:$3/healthz" | awk '/requests in/ {print $1}')
    wait $sp || true
    echo "$1: $n requests"
    # strace -c's rows: % time, seconds, usecs/call, calls, [errors,] syscall.
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && $NF != "total" { printf "  %-14s %8.3f a request\n", $NF, $4 / n }' "$d/$1.strace" |
        sort -k2 -rn | head -6
done
