#!/usr/bin/env bash
# An upload's own cost besides the model: the server's CPU time (utime + stime from /proc)
# per acknowledged upload, for async `POST /v2/decode/upload-base64` of one image whose answer
# is in the answer cache (every upload after the first is a hit: charged, recorded, durable).
# Two builds, A and B, measured alternately in one run so that the machine's other load hits
# both alike; prints every round and the median per build, and B / A.
#
# Usage: bench/upload_cpu.sh A_BIN B_BIN [rounds=3] [seconds=10] [connections=64]
# Needs: wrk, taskset, curl, release builds. The server runs 2 shards (pinned to the two
# cores, as in production), wrk runs on CPU 1; rate limits off (`--set
# rate_limit_per_sec=0`), the demo user granted enough points.
set -euo pipefail
cd "$(dirname "$0")/.."

a_bin="$1"
b_bin="$2"
rounds="${3:-3}"
seconds="${4:-10}"
connections="${5:-64}"
port=18491
for tool in wrk taskset curl; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
for bin in "$a_bin" "$b_bin"; do
    [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
work_dir="$(mktemp -d /tmp/aiocr-upload-cpu.XXXXXX)"
# shellcheck source=bench/lib.sh
source bench/lib.sh
cleanup() {
    stop_aiocr
    rm -rf "$work_dir"
}
trap cleanup EXIT

images=(tests/fixtures/captcha/*.png)
image="${images[0]}"
body="{\"file\":\"$(base64 -w0 "$image")\"}"
cat >"$work_dir/upload.lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
EOF

# measure BIN -> "us_per_upload uploads_per_s acknowledged"
measure() {
    local data="$work_dir/data-$RANDOM" token out cpu0 cpu1 requests failed
    AIOCR_BIN="$1" start_aiocr "$port" "$data" --shards 2 --set rate_limit_per_sec=0
    token="$(aiocr_token "$port" demo "$(aiocr_password "$data" demo)")"
    aiocr_grant "$port" "$(aiocr_token "$port" admin "$(aiocr_password "$data" admin)")" \
        demo 100000000
    # The first upload runs the model and fills the cache; the warm-up's are hits already.
    curl -sf "http://127.0.0.1:$port/v2/decode/upload-base64?wait=1" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body" >/dev/null
    taskset -c 1 wrk -t1 -c"$connections" -d2s -s "$work_dir/upload.lua" \
        -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v2/decode/upload-base64" >/dev/null
    cpu0="$(awk '{print $14 + $15}' "/proc/$AIOCR_PID/stat")"
    out="$(taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" -s "$work_dir/upload.lua" \
        -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v2/decode/upload-base64")"
    cpu1="$(awk '{print $14 + $15}' "/proc/$AIOCR_PID/stat")"
    stop_aiocr
    rm -rf "$data" "$data.out" "$data.err"
    requests="$(echo "$out" | sed -nE 's/^ *([0-9]+) requests in.*/\1/p')"
    failed="$(echo "$out" | sed -nE 's/^ *Non-2xx or 3xx responses: *([0-9]+).*/\1/p')"
    python3 - "$cpu0" "$cpu1" "$(getconf CLK_TCK)" "$requests" "${failed:-0}" "$seconds" <<'PY'
import sys
cpu0, cpu1, tck, requests, failed, seconds = map(float, sys.argv[1:])
acked = requests - failed
print(f"{(cpu1 - cpu0) / tck * 1e6 / acked:.1f} {acked / seconds:.0f} {acked:.0f}")
PY
}

results="$work_dir/results"
for round in $(seq 1 "$rounds"); do
    for label in A B; do
        bin="$a_bin"
        [ "$label" = B ] && bin="$b_bin"
        line="$(measure "$bin")"
        echo "round $round: $label $line us/upload, uploads/s, acknowledged"
        echo "$label $line" >>"$results"
    done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
median = {label: statistics.median(float(r[1]) for r in rows if r[0] == label) for label in "AB"}
print(f"median CPU per acknowledged upload: A {median['A']:.1f} us, B {median['B']:.1f} us, "
      f"B / A = {median['B'] / median['A']:.2f}")
PY
