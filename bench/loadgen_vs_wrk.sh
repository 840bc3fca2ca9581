#!/usr/bin/env bash
# Compares aiocr-loadgen with wrk against the same nginx (Debian package, 1 worker, a static
# answer from memory) on a free loopback port, alternating the two tools a few rounds:
#   wrk -t1 -c64 -d5s   vs   aiocr-loadgen -t1 -c64 -d5s
# Prints each run's requests/s, the medians and the ratio loadgen/wrk. Everything lives in a
# temporary directory (own config, prefix, logs, pid); nginx is stopped on exit.
# Options via environment: ROUNDS (default 3), DURATION (default 5s), CONNS (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNS="${CONNS:-64}"
LOADGEN="${LOADGEN:-target/release/aiocr-loadgen}"

for tool in nginx wrk; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool)" >&2; exit 2; }
done
if [[ ! -x "$LOADGEN" ]]; then
    cargo build --release -p aiocr-loadgen
fi

workdir="$(mktemp -d -t loadgen-bench.XXXXXX)"
nginx_pid=""
cleanup() {
    if [[ -n "$nginx_pid" ]] && kill -0 "$nginx_pid" 2>/dev/null; then
        kill "$nginx_pid"
        # Wait for the master to go so no worker outlives the script.
        for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port="$(free_port)"

mkdir -p "$workdir/logs"
cat >"$workdir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $workdir/nginx.pid;
error_log $workdir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $workdir/body;
    proxy_temp_path $workdir/proxy;
    fastcgi_temp_path $workdir/fastcgi;
    uwsgi_temp_path $workdir/uwsgi;
    scgi_temp_path $workdir/scgi;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$port;
        location / { default_type text/plain; return 200 "hello from nginx\n"; }
    }
}
CONF

nginx -p "$workdir" -c "$workdir/nginx.conf" -e "$workdir/logs/error.log" &
nginx_pid=$!
for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
done
url="http://127.0.0.1:$port/"
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') on $url (1 worker); $ROUNDS rounds of $DURATION, -t1 -c$CONNS"

# Runs a tool, keeping its stdout in $workdir/out and its CPU seconds (user+system) in $cpu_s.
run_timed() {
    local TIMEFORMAT='%3U %3S'
    { time "$@" >"$workdir/out" 2>/dev/null; } 2>"$workdir/time"
    cpu_s="$(awk '{printf "%.3f", $1 + $2}' "$workdir/time")"
}

# CPU microseconds per request: how much of the machine each tool needs for the same work,
# which a busy shared machine disturbs less than the rate itself.
cpu_us_per_request() { awk -v cpu="$1" -v n="$2" 'BEGIN {printf "%.2f", cpu * 1e6 / n}'; }

wrk_rates=()
loadgen_rates=()
for round in $(seq "$ROUNDS"); do
    run_timed wrk -t1 -c"$CONNS" -d"$DURATION" "$url"
    wrk_rate="$(awk '/^Requests\/sec:/ {print $2}' "$workdir/out")"
    wrk_cpu="$(cpu_us_per_request "$cpu_s" "$(awk '/requests in/ {print $1}' "$workdir/out")")"
    run_timed "$LOADGEN" -t1 -c"$CONNS" -d"$DURATION" --no-live "$url"
    loadgen_rate="$(awk '/^Requests per second:/ {print $4}' "$workdir/out")"
    loadgen_cpu="$(cpu_us_per_request "$cpu_s" "$(awk '/^Complete requests:/ {print $3}' "$workdir/out")")"
    printf 'round %s: wrk %s req/s (%s CPU us/req), aiocr-loadgen %s req/s (%s CPU us/req)\n' \
        "$round" "$wrk_rate" "$wrk_cpu" "$loadgen_rate" "$loadgen_cpu"
    wrk_rates+=("$wrk_rate")
    loadgen_rates+=("$loadgen_rate")
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
wrk_median="$(median "${wrk_rates[@]}")"
loadgen_median="$(median "${loadgen_rates[@]}")"
ratio="$(awk -v a="$loadgen_median" -v b="$wrk_median" 'BEGIN {printf "%.3f", a / b}')"
echo "median requests/s: wrk $wrk_median, aiocr-loadgen $loadgen_median, ratio loadgen/wrk $ratio"
