#!/usr/bin/env bash
# Issue 4's two figures, measured in one run on this machine:
#   1. the model's limit: `aiocr ocr --bench` with one thread per core over the fixtures;
#   2. end-to-end synchronous decodes (`wait=1`) through `aiocr serve` with 16 connections
#      (cache off, so every upload runs the model), as a ratio of (1) (goal: >= 0.90);
#      with 1 connection the wide engines run instead (one image on every core);
#   3. while (2) runs, GET /v2/user/point at a fixed moderate rate: its p99, corrected for
#      coordinated omission (goal: < 2 ms); and the same without the decode load;
#   4. where the server's CPU went during (2), per decode and thread group, beside the
#      model's own CPU per image.
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

"$AIOCR_BIN" ocr --bench --seconds "$seconds" "$corpus" >"$work/model.txt"
model_limit="$(sed -nE 's/^images\/s: ([0-9.]+)/\1/p' "$work/model.txt")"
model_images_per_cpu_s="$(sed -nE 's/^cpu-seconds: .*\(([0-9.]+) images per cpu-second\)/\1/p' "$work/model.txt")"

start_aiocr "$port" "$work/data" --set cache_entries=0 --set rate_limit_per_sec=1000000 \
    --set rate_limit_burst=1000000
demo="$(aiocr_password "$work/data" demo)"
admin_token="$(aiocr_token "$port" admin "$(aiocr_password "$work/data" admin)")"
aiocr_grant "$port" "$admin_token" demo 10000000

# The point rate alone first: the latency the reactors give without recognition running.
"$LOADGEN_BIN" "http://127.0.0.1:$port" -s point -R "$point_rate" -c 4 -d "${seconds}s" \
    --user "demo:$demo" --json --no-live >"$work/point-idle.json"
thread_cpu "$AIOCR_PID" >"$work/cpu-before"
decode_started_s="$(date +%s.%N)"
"$LOADGEN_BIN" "http://127.0.0.1:$port" -s decode-sync -c "$decode_connections" -d "${seconds}s" --images "$corpus" \
    --user "demo:$demo" --json --no-live >"$work/decode.json" &
decode_pid=$!
sleep 1 # let the decode load reach its steady state
"$LOADGEN_BIN" "http://127.0.0.1:$port" -s point -R "$point_rate" -c 4 -d "$((seconds - 2))s" \
    --user "demo:$demo" --json --no-live >"$work/point-busy.json"
wait "$decode_pid"
thread_cpu "$AIOCR_PID" >"$work/cpu-after"
decode_wall_s="$(python3 -c "import sys, time; print(time.time() - float(sys.argv[1]))" "$decode_started_s")"

decode_rps="$(json_field "$work/decode.json" "['requests_per_s']")"
decode_failed="$(json_field "$work/decode.json" "['failed']")"
idle_p99="$(json_field "$work/point-idle.json" "['latency_ms']['corrected']['p99']")"
busy_p99="$(json_field "$work/point-busy.json" "['latency_ms']['corrected']['p99']")"
busy_p99_raw="$(json_field "$work/point-busy.json" "['latency_ms']['uncorrected']['p99']")"

echo "| figure | aiocr | reference | ratio |"
echo "|---|---|---|---|"
echo "| sync decodes/s, $decode_connections connection(s) (failed: $decode_failed) | $decode_rps | $model_limit (ocr --bench, all cores) | $(ratio "$decode_rps" "$model_limit") |"
echo "| GET /v2/user/point p99 at $point_rate/s during decodes, ms | $busy_p99 (uncorrected $busy_p99_raw) | $idle_p99 (same rate, no decodes) | $(ratio "$busy_p99" "$idle_p99") |"

# Where the server's CPU went during the decodes (the point rate's requests included), per
# sync decode, beside the model's own CPU per image: what the recognition threads spend above
# it, and what the shards and the ledger's I/O threads add, is the gap to the model's limit.
echo
echo "CPU per sync decode by thread group ($(json_field "$work/decode.json" "['requests']") decodes in ${decode_wall_s%.*} s; the model alone: $(python3 -c "import sys; print(f'{1e6 / float(sys.argv[1]):.0f}')" "$model_images_per_cpu_s") us per image):"
thread_cpu_table "$work/cpu-before" "$work/cpu-after" "$(json_field "$work/decode.json" "['requests']")" "$decode_wall_s"
