#!/usr/bin/env bash
# Click captchas under load, measured in one run on this machine:
#   1. GET /v2/user/point at a fixed rate, its p99 (coordinated-omission corrected), without
#      and then during a detection load (`detect-sync`, 8 connections): the reactors must
#      keep their latency (goal: < 2 ms during detections);
#   2. text captchas (`decode-sync`, 4 connections) alone and during the same detection load:
#      detections must not starve text (at most `detect_threads` recognition threads run
#      them; text is taken first);
#   3. detections/s and slide pairs/s through the server (sync).
# Usage: bench/detect_load.sh [seconds=8] [point_rate=200]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

seconds="${1:-8}"
point_rate="${2:-200}"
port=18511
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
work="$(mktemp -d /tmp/aiocr-detect-bench.XXXXXX)"
cleanup() { stop_aiocr; rm -rf "$work"; }
trap cleanup EXIT
corpus="$work/corpus"
image_corpus "$corpus"
clicks="$PWD/tests/fixtures/ddddocr-more/det"
slides="$PWD/tests/fixtures/ddddocr-more/slide"

start_aiocr "$port" "$work/data" --set cache_entries=0 --set rate_limit_per_sec=1000000 \
    --set rate_limit_burst=1000000
demo="$(aiocr_password "$work/data" demo)"
admin_token="$(aiocr_token "$port" admin "$(aiocr_password "$work/data" admin)")"
aiocr_grant "$port" "$admin_token" demo 100000000

loadgen() { # output-file args...
    local out="$1"
    shift
    "$LOADGEN_BIN" "http://127.0.0.1:$port" --user "demo:$demo" --json --no-live "$@" >"$out"
}

loadgen "$work/point-idle.json" -s point -R "$point_rate" -c 4 -d "${seconds}s"
loadgen "$work/text-alone.json" -s decode-sync -c 4 -d "${seconds}s" --images "$corpus"
loadgen "$work/detect.json" -s detect-sync -c 8 -d "$((seconds + 2))s" --images "$clicks" &
detect_pid=$!
sleep 1 # let the detection load reach its steady state
loadgen "$work/point-busy.json" -s point -R "$point_rate" -c 4 -d "$((seconds / 2))s"
loadgen "$work/text-busy.json" -s decode-sync -c 4 -d "$((seconds / 2))s" --images "$corpus"
wait "$detect_pid"
loadgen "$work/slide.json" -s slide-sync -c 8 -d "${seconds}s" --slide-pairs "$slides"

field() { json_field "$work/$1.json" "$2"; }
p99='["latency_ms"]["corrected"]["p99"]'
p50='["latency_ms"]["uncorrected"]["p50"]'
echo "| figure | during detections | reference | ratio |"
echo "|---|---|---|---|"
echo "| GET /v2/user/point p99 at $point_rate/s, ms | $(field point-busy "$p99") | $(field point-idle "$p99") (no load) | $(ratio "$(field point-busy "$p99")" "$(field point-idle "$p99")") |"
echo "| text decodes/s, 4 connections | $(field text-busy "['requests_per_s']") | $(field text-alone "['requests_per_s']") (alone) | $(ratio "$(field text-busy "['requests_per_s']")" "$(field text-alone "['requests_per_s']")") |"
echo "| text decode p50, ms | $(field text-busy "$p50") | $(field text-alone "$p50") (alone) | $(ratio "$(field text-busy "$p50")" "$(field text-alone "$p50")") |"
echo
echo "detections/s (8 connections, sync): $(field detect "['requests_per_s']") (failed: $(field detect "['failed']"))"
echo "slide pairs/s (8 connections, sync): $(field slide "['requests_per_s']") (failed: $(field slide "['failed']"))"
