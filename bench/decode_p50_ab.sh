#!/usr/bin/env bash
# A sync decode's latency at one connection, two builds (or two configurations) alternated in
# one run: POST /v2/decode/upload-base64?wait=1 of one image, answer cache off, aiocr-loadgen
# -c1, A and B taking turns round after round so that whatever else the machine does hits
# both alike. Prints every round's p50 / p99 (ms), the medians and the ratio B / A of the
# median p50s; then, per server, where a request's time went by its own /metrics over the
# whole run (p50s in us): the route, the recognition (decode, resize, model, CTC, in the
# recognition thread), the queue wait (submit until a thread took the job) and the
# group commit's fsync (overlapped with the recognition).
#
# Usage: bench/decode_p50_ab.sh A_BIN B_BIN [rounds=5] [seconds=5] [image=tests/fixtures/captcha/0001.png]
# A_ARGS / B_ARGS: extra `serve` arguments of each side, e.g.
#   A_ARGS="--set recognition_priority=normal" bench/decode_p50_ab.sh BIN BIN
# Run it under the benchmarks' lock (fixed ports): flock /tmp/aiocr-bench.lock bench/...
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

a_bin="$1"
b_bin="$2"
rounds="${3:-5}"
seconds="${4:-5}"
image="${5:-tests/fixtures/captcha/0001.png}"
for bin in "$a_bin" "$b_bin"; do
    [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
work="$(mktemp -d /tmp/aiocr-p50-ab.XXXXXX)"
a_pid=""
b_pid=""
cleanup() {
    stop_pid "$a_pid"
    stop_pid "$b_pid"
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/image"
ln -s "$PWD/$image" "$work/image/"

# start LABEL BIN PORT ARGS...: one server, its demo user granted points; prints its pid.
start() {
    local label="$1" bin="$2" port="$3"
    shift 3
    AIOCR_BIN="$bin" start_aiocr "$port" "$work/data-$label" --set cache_entries=0 \
        --set rate_limit_per_sec=1000000 --set rate_limit_burst=1000000 "$@"
    local admin
    admin="$(aiocr_token "$port" admin "$(aiocr_password "$work/data-$label" admin)")"
    aiocr_grant "$port" "$admin" demo 10000000
}
a_port=18521
b_port=18522
# shellcheck disable=SC2086 # the extra arguments are words on purpose
start A "$a_bin" "$a_port" ${A_ARGS:-}
a_pid="$AIOCR_PID"
# shellcheck disable=SC2086
start B "$b_bin" "$b_port" ${B_ARGS:-}
b_pid="$AIOCR_PID"
AIOCR_PID=""

run() { # label port round
    local out="$work/$1-$3.json"
    "$LOADGEN_BIN" "http://127.0.0.1:$2" -s decode-sync -c 1 -d "${seconds}s" \
        --images "$work/image" --user "demo:$(aiocr_password "$work/data-$1" demo)" \
        --json --no-live >"$out"
    echo "round $3 $1: p50 $(json_field "$out" "['latency_ms']['uncorrected']['p50']") ms," \
        "p99 $(json_field "$out" "['latency_ms']['uncorrected']['p99']") ms," \
        "$(json_field "$out" "['requests_per_s']")/s, failed $(json_field "$out" "['failed']")" >&2
}
# One short warm-up each (sessions, first allocations), not counted.
"$LOADGEN_BIN" "http://127.0.0.1:$a_port" -s decode-sync -c 1 -n 50 --images "$work/image" \
    --user "demo:$(aiocr_password "$work/data-A" demo)" --no-live >/dev/null
"$LOADGEN_BIN" "http://127.0.0.1:$b_port" -s decode-sync -c 1 -n 50 --images "$work/image" \
    --user "demo:$(aiocr_password "$work/data-B" demo)" --no-live >/dev/null
for round in $(seq 1 "$rounds"); do
    run A "$a_port" "$round"
    run B "$b_port" "$round"
done

median() { # label field
    for file in "$work/$1"-*.json; do json_field "$file" "$2"; done | sort -n |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
p50_field="['latency_ms']['uncorrected']['p50']"
p99_field="['latency_ms']['uncorrected']['p99']"
# p50_of PORT METRIC_LINE_PREFIX: the p50 /metrics reports for it.
metric_p50() {
    curl -sf "http://127.0.0.1:$1/metrics" | grep -F "$2" | grep -F 'quantile="0.5"' |
        awk '{ print $NF }' | head -1
}
split() { # label port
    echo "| $1 | $(metric_p50 "$2" 'aiocr_request_duration_us{route="upload_base64"') |" \
        "$(metric_p50 "$2" 'aiocr_recognize_duration_us{') |" \
        "$(metric_p50 "$2" 'aiocr_queue_wait_us{') |" \
        "$(metric_p50 "$2" 'aiocr_fsync_duration_us{') |"
}
echo "| build | p50 ms (median of $rounds) | p99 ms (median) |"
echo "|---|---|---|"
echo "| A $a_bin ${A_ARGS:-} | $(median A "$p50_field") | $(median A "$p99_field") |"
echo "| B $b_bin ${B_ARGS:-} | $(median B "$p50_field") | $(median B "$p99_field") |"
echo "p50 B / A: $(ratio "$(median B "$p50_field")" "$(median A "$p50_field")")"
echo
echo "| server | route p50 us | recognition p50 us | queue wait p50 us | fsync p50 us |"
echo "|---|---|---|---|---|"
split A "$a_port"
split B "$b_port"
echo "load: $(uptime | sed -E 's/.*load average: //')"
