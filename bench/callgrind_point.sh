#!/usr/bin/env bash
# User-space instructions per GET /v2/user/point, counted by callgrind (deterministic: unlike
# a throughput figure it needs no quiet machine). One shard under valgrind's callgrind with
# instrumentation off; a token from a native run of the same data directory; warm-up (token
# and user memos filled), then instrumentation on for `wrk -t1 -c8 -d10s` and off again.
# Prints requests, instructions and instructions per request; keeps the profile in OUT
# (read it with `callgrind_annotate OUT`, `--tree=caller` for who calls what).
# Usage: bench/callgrind_point.sh [out=callgrind.point.out]
# Run it under the benchmarks' lock (fixed port): flock /tmp/aiocr-bench.lock bench/...
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

out="${1:-callgrind.point.out}"
port=18511
for tool in valgrind callgrind_control wrk; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
work="$(mktemp -d /tmp/aiocr-callgrind.XXXXXX)"
valgrind_pid=""
cleanup() {
    stop_aiocr
    [ -n "$valgrind_pid" ] && kill -9 "$valgrind_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

start_aiocr "$port" "$work/data" --shards 1
token="$(aiocr_token "$port" demo "$(aiocr_password "$work/data" demo)")"
stop_aiocr
valgrind --tool=callgrind --callgrind-out-file="$out" --instr-atstart=no \
    "$AIOCR_BIN" serve --listen "127.0.0.1:$port" --data "$work/data" --shards 1 \
    >"$work/valgrind.out" 2>"$work/valgrind.err" &
valgrind_pid=$!
# Under callgrind the start takes minutes (the models are loaded instruction by instruction).
for _ in $(seq 1 6000); do
    grep -q "listening on" "$work/valgrind.out" 2>/dev/null && break
    kill -0 "$valgrind_pid" 2>/dev/null || { cat "$work/valgrind.err" >&2; exit 1; }
    sleep 0.1
done
url="http://127.0.0.1:$port/v2/user/point"
wrk -t1 -c8 -d3s -H "Authorization: Bearer $token" "$url" >/dev/null
callgrind_control -i on "$valgrind_pid" >/dev/null 2>&1
measured="$(wrk -t1 -c8 -d10s -H "Authorization: Bearer $token" "$url")"
callgrind_control -i off "$valgrind_pid" >/dev/null 2>&1
callgrind_control -d "$valgrind_pid" >/dev/null 2>&1
requests="$(echo "$measured" | sed -nE 's/^ *([0-9]+) requests in.*/\1/p')"
# Under valgrind the server's SIGTERM drain can take minutes: the dump is written, so a
# bounded wait, then SIGKILL.
kill "$valgrind_pid" 2>/dev/null || true
for _ in $(seq 1 100); do
    kill -0 "$valgrind_pid" 2>/dev/null || break
    sleep 0.1
done
kill -9 "$valgrind_pid" 2>/dev/null || true
wait "$valgrind_pid" 2>/dev/null || true
valgrind_pid=""
# callgrind_control -d writes OUT.1 (the dump it asked for); the exit writes OUT (nothing counted).
profile="$out.1"
[ -s "$profile" ] || profile="$out"
instructions="$(sed -nE 's/^totals: ([0-9]+).*/\1/p' "$profile" | head -1)"
echo "requests: $requests, instructions: $instructions, per request: $((instructions / requests)) (profile: $profile)"
