#!/usr/bin/env bash
# Issue 4's two figures, measured in one run on this machine:
#   1. the model's limit: `aiocr ocr --bench` with one thread per core over the fixtures;
#   2. end-to-end synchronous decodes (`wait=1`) through `aiocr serve` with 16 connections
#      (cache off, so every upload runs the model), as a ratio of (1) (goal: >= 0.90);
#      with 1 connection the wide engines run instead (one image on every core);
#   3. while (2) runs, GET /v2/user/point at a fixed moderate rate: its p99, corrected for
#      coordinated omission (goal: < 2 ms); and the same without the decode load.
# Usage: bench/decode_vs_model.sh [seconds=10] [point_rate=200] [decode_connections=16]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

seconds="${1:-10}"
point_rate="${2:-200}"
decode_connections="${3:-16}"
port=18491
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
work="$(mktemp -d /tmp/aiocr-decode-bench.XXXXXX)"
cleanup() { stop_aiocr; rm -rf "$work"; }
trap cleanup EXIT
corpus="$work/corpus"
image_corpus "$corpus"

model_limit="$("$AIOCR_BIN" ocr --bench --seconds "$seconds" "$corpus" | sed -nE 's/^images\/s: ([0-9.]+)/\1/p')"

start_aiocr "$port" "$work/data" --set cache_entries=0 --set rate_limit_per_sec=1000000 \
    --set rate_limit_burst=1000000
demo="$(aiocr_password "$work/data" demo)"
admin_token="$(aiocr_token "$port" admin "$(aiocr_password "$work/data" admin)")"
aiocr_grant "$port" "$admin_token" demo 10000000

# The point rate alone first: the latency the reactors give without recognition running.
"$LOADGEN_BIN" "http://127.0.0.1:$port" -s point -R "$point_rate" -c 4 -d "${seconds}s" \
    --user "demo:$demo" --json --no-live >"$work/point-idle.json"
"$LOADGEN_BIN" "http://127.0.0.1:$port" -s decode-sync -c "$decode_connections" -d "${seconds}s" --images "$corpus" \
    --user "demo:$demo" --json --no-live >"$work/decode.json" &
decode_pid=$!
sleep 1 # let the decode load reach its steady state
"$LOADGEN_BIN" "http://127.0.0.1:$port" -s point -R "$point_rate" -c 4 -d "$((seconds - 2))s" \
    --user "demo:$demo" --json --no-live >"$work/point-busy.json"
wait "$decode_pid"

decode_rps="$(json_field "$work/decode.json" "['requests_per_s']")"
decode_failed="$(json_field "$work/decode.json" "['failed']")"
idle_p99="$(json_field "$work/point-idle.json" "['latency_ms']['corrected']['p99']")"
busy_p99="$(json_field "$work/point-busy.json" "['latency_ms']['corrected']['p99']")"
busy_p99_raw="$(json_field "$work/point-busy.json" "['latency_ms']['uncorrected']['p99']")"

echo "| figure | aiocr | reference | ratio |"
echo "|---|---|---|---|"
echo "| sync decodes/s, $decode_connections connection(s) (failed: $decode_failed) | $decode_rps | $model_limit (ocr --bench, all cores) | $(ratio "$decode_rps" "$model_limit") |"
echo "| GET /v2/user/point p99 at $point_rate/s during decodes, ms | $busy_p99 (uncorrected $busy_p99_raw) | $idle_p99 (same rate, no decodes) | $(ratio "$busy_p99" "$idle_p99") |"
