#!/usr/bin/env bash
# The cost of durable upload acknowledgements (group commit): the same upload load against
# `aiocr serve` with durable_acks=true (a 200 waits for the fsync covering its reservation)
# and durable_acks=false (acknowledged before the fsync; only for this measurement). Prints
# uploads/s for both and the fsync time and group size from /metrics.
#
# No recognition threads consume the queue here, so the queue is made large enough for the
# whole run; every upload is accepted, reserved and left pending.
#
# Usage: bench/upload_fsync.sh [duration_s=4] [connections=32] [shards=2]
# Env: AIOCR_BIN (default target/release/aiocr). Needs wrk and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

duration_s="${1:-4}"
connections="${2:-32}"
shards="${3:-2}"
aiocr_bin="${AIOCR_BIN:-target/release/aiocr}"
port=18483
image="tests/fixtures/captcha/0001.png"

work_dir="$(mktemp -d /tmp/aiocr-fsync.XXXXXX)"
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
cleanup() {
    stop_server
    rm -rf "$work_dir"
}
trap cleanup EXIT

start_server() { # data_dir durable_acks
    "$aiocr_bin" serve --listen "127.0.0.1:$port" --shards "$shards" --data "$1" \
        --set "durable_acks=$2" --set queue_len=400000 --set rate_limit_per_sec=100000000 \
        --set rate_limit_burst=100000000 >>"$1.out" 2>>"$1.err" &
    server_pid=$!
    # Up to 60 s: loading the models takes far longer than usual on a busy machine.
    for _ in $(seq 1 600); do
        [ "$(grep -c "listening on" "$1.out" 2>/dev/null)" -ge "$3" ] && return 0
        sleep 0.1
    done
    echo "server did not start: $(cat "$1.err")" >&2
    exit 1
}

measure() { # durable_acks -> prints one result line
    local data="$work_dir/data-$1" password token
    start_server "$data" "$1" 1
    password="$(sed -nE 's/.*demo user +demo \/ ([^ ]+) .*/\1/p' "$data.out")"
    stop_server
    "$aiocr_bin" points add --data "$data" --username demo --points 100000000 --reason bench >/dev/null
    start_server "$data" "$1" 2
    token="$(curl -sf "http://127.0.0.1:$port/v2/user/login" -H 'Content-Type: application/json' \
        -d "{\"username\":\"demo\",\"password\":\"$password\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/')"
    cat >"$work_dir/upload.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"file":"$(base64 -w0 "$image")"}'
LUA
    wrk -t1 -c"$connections" -d"${duration_s}s" -s "$work_dir/upload.lua" \
        "http://127.0.0.1:$port/v2/decode/upload-base64" >"$work_dir/wrk-$1.txt"
    curl -sf "http://127.0.0.1:$port/metrics" >"$work_dir/metrics-$1.txt"
    stop_server
    local rps errors p50 p99 group50 group99
    rps="$(sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p' "$work_dir/wrk-$1.txt")"
    errors="$(sed -nE 's/.*Non-2xx or 3xx responses: *([0-9]+).*/\1/p' "$work_dir/wrk-$1.txt")"
    p50="$(sed -nE 's/^aiocr_fsync_duration_us\{quantile="0.5"\} ([0-9]+)/\1/p' "$work_dir/metrics-$1.txt")"
    p99="$(sed -nE 's/^aiocr_fsync_duration_us\{quantile="0.99"\} ([0-9]+)/\1/p' "$work_dir/metrics-$1.txt")"
    group50="$(sed -nE 's/^aiocr_fsync_group_size\{quantile="0.5"\} ([0-9]+)/\1/p' "$work_dir/metrics-$1.txt")"
    group99="$(sed -nE 's/^aiocr_fsync_group_size\{quantile="0.99"\} ([0-9]+)/\1/p' "$work_dir/metrics-$1.txt")"
    local latency
    latency="$(sed -nE 's/^ *Latency +([^ ]+) .*/\1/p' "$work_dir/wrk-$1.txt")"
    echo "durable_acks=$1: $rps uploads/s (mean latency $latency, non-2xx ${errors:-0});" \
        "fsync p50 ${p50}us p99 ${p99}us; uploads per fsync p50 $group50 p99 $group99"
}

echo "wrk -t1 -c$connections -d${duration_s}s POST /v2/decode/upload-base64 ($(stat -c %s "$image")-byte PNG), $shards shard(s)"
measure true
measure false
