#!/usr/bin/env bash
# The captcha protocols' round trips against the same image through `/v2`, in one run on this
# machine, one connection each (latency, not throughput), alternating rounds, medians:
#   - `/v2/decode/upload-base64?wait=1` (the reference),
#   - `/createTask` answered `ready` with the solution (the JSON task protocol),
#   - `/in.php` then `/v2/result` with the key (2captcha v1's submit plus its first poll).
# Same corpus (the fixtures), answer cache off (every request runs the model), the key of the
# demo user. Prints p50/p99 per flow and the p50 difference to the reference (goal for
# createTask: < 0.3 ms more).
# Usage: bench/compat_vs_v2.sh [seconds=5] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

seconds="${1:-5}"
rounds="${2:-3}"
port=18501
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
work="$(mktemp -d /tmp/aiocr-compat-bench.XXXXXX)"
cleanup() { stop_aiocr; rm -rf "$work"; }
trap cleanup EXIT
corpus="$work/corpus"
image_corpus "$corpus"

start_aiocr "$port" "$work/data" --set cache_entries=0 --set rate_limit_per_sec=1000000 \
    --set rate_limit_burst=1000000
token="$(aiocr_token "$port" demo "$(aiocr_password "$work/data" demo)")"
admin_token="$(aiocr_token "$port" admin "$(aiocr_password "$work/data" admin)")"
aiocr_grant "$port" "$admin_token" demo 10000000
key="$(curl -sf -X POST "http://127.0.0.1:$port/v2/user/apikey" -H "Authorization: Bearer $token" |
    sed -E 's/.*"api_key":"([^"]+)".*/\1/')"

run() { # scenario round -> its JSON summary file
    local out="$work/$1-$2.json"
    "$LOADGEN_BIN" "http://127.0.0.1:$port" -s "$1" -c 1 -d "${seconds}s" --images "$corpus" \
        --api-key "$key" --poll-interval 1ms --json --no-live >"$out"
    echo "$out"
}

for round in $(seq 1 "$rounds"); do
    for scenario in decode-sync create-task in-php; do
        summary="$(run "$scenario" "$round")"
        p50="$(json_field "$summary" "['latency_ms']['uncorrected']['p50']")"
        failed="$(json_field "$summary" "['failed']")"
        echo "round $round: $scenario p50 $p50 ms (failed: $failed)" >&2
    done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
quantile() { # scenario quantile -> median over rounds
    for round in $(seq 1 "$rounds"); do
        json_field "$work/$1-$round.json" "['latency_ms']['uncorrected']['$2']"
    done | median
}
reference="$(quantile decode-sync p50)"
echo "| flow (1 connection, model runs every time) | p50 ms | p99 ms | p50 - /v2 p50, ms |"
echo "|---|---|---|---|"
for scenario in decode-sync create-task in-php; do
    p50="$(quantile "$scenario" p50)"
    p99="$(quantile "$scenario" p99)"
    difference="$(python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):+.3f}')" "$p50" "$reference")"
    echo "| $scenario | $p50 | $p99 | $difference |"
done
echo "(medians of $rounds alternating rounds of ${seconds}s)"
