#!/usr/bin/env bash
# Upload acknowledgement under a failed-login flood (issue 14, items 3 and 6): the same
# open-loop upload load (aiocr-loadgen, `upload-base64`: the answer is the acknowledgement,
# sent once the reservation is fsynced) without and then with FLOOD connections sending wrong
# passwords to /v2/user/login as fast as they are answered, on one server, in one run. Prints
# both p99s and their ratio (the goal: within 2x).
#
# Three servers, each measured both ways (after a short warm-up of the upload load):
# - `defaults`: the shipped configuration. The flood meets the login backoffs (per account
#   and per address) and is refused with 5002 before any hashing; each refusal is held for
#   `login_refusal_delay_ms` (1 s), so each flood connection gets about one answer a second.
# - `every guess hashed`: backoffs out of the way (free failures in the billions), as for an
#   attacker with endless addresses and names: every attempt is an argon2id verification,
#   so the password hash pool is saturated for the whole flood. This measures that hashing
#   no longer stands in front of the group commit's fsync.
# - `defaults, refusals not paced` (login_refusal_delay_ms=0): for reference, what the
#   pacing buys: the refusals are answered as fast as the flood sends.
# The per-user rate limit is raised on all (the uploads are one user's, at RATE/s).
#
# Usage: bench/login_flood.sh [duration_s=10] [rate=100] [flood_connections=64] [shards=2]
#        [rounds=3]
# Env: AIOCR_BIN, LOADGEN_BIN (default target/release/...); BENCH_DIR, where the data
# directories go (default /tmp; /dev/shm takes the disk's fsync time, and other processes'
# disk traffic, out of the acknowledgement: the flood's cost on the server stays in).
# Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

duration_s="${1:-10}"
rate="${2:-100}"
flood_connections="${3:-64}"
shards="${4:-2}"
rounds="${5:-3}"
port=18517
upload_connections=8

work_dir="$(mktemp -d "${BENCH_DIR:-/tmp}/aiocr-login-flood.XXXXXX")"
flood_pid=""
cleanup() {
    stop_pid "$flood_pid"
    stop_aiocr
    rm -rf "$work_dir"
}
trap cleanup EXIT

image_corpus "$work_dir/images"
printf '{"username":"admin","password":"not-the-admin-password"}' >"$work_dir/wrong.json"

# uploads OUT: the upload load, its JSON summary into OUT.
uploads() {
    "$LOADGEN_BIN" -t1 -c"$upload_connections" -R"$rate" -d"${duration_s}s" --no-live --json \
        -s upload-base64 --api-key "$demo_key" --images "$work_dir/images" \
        "http://127.0.0.1:$port" >"$1"
}

# flood OUT: FLOOD connections of wrong logins, a second longer than the uploads on each
# side; its JSON summary into OUT. Sets flood_pid.
flood() {
    "$LOADGEN_BIN" -t1 -c"$flood_connections" -d"$((duration_s + 2))s" --no-live --json \
        -m POST -H "Content-Type: application/json" --body-file "$work_dir/wrong.json" \
        "http://127.0.0.1:$port/v2/user/login" >"$1" &
    flood_pid=$!
}

# metric FILE NAME: a counter's value from a /metrics dump (0 when absent).
metric() {
    local value
    value="$(grep -F "$2 " "$1" | sed -nE 's/.* ([0-9]+)$/\1/p' | head -n1)"
    echo "${value:-0}"
}

# p99 FILE: the corrected p99 (ms) of a loadgen summary.
p99() {
    json_field "$1" "['latency_ms']['corrected']['p99']"
}

# measure LABEL [serve settings...]: one server; ROUNDS times the upload load alone, then
# under the flood (interleaved, so that the machine's other load drifts into both alike).
measure() {
    local label="$1" data="$work_dir/data-${1// /-}" settings=() setting
    shift
    for setting in rate_limit_per_sec=1000000 rate_limit_burst=1000000 queue_len=100000 "$@"; do
        settings+=(--set "$setting")
    done
    start_aiocr "$port" "$data" --shards "$shards" --model-dir "${AIOCR_MODEL_DIR:-models}" \
        "${settings[@]}"
    local admin_token demo_token
    admin_token="$(aiocr_token "$port" admin "$(aiocr_password "$data" admin)")"
    aiocr_grant "$port" "$admin_token" demo 10000000
    # The uploads use demo's API key: a login during a hashing flood may find the hash
    # queue full (5001), and logging in is not what is measured.
    demo_token="$(aiocr_token "$port" demo "$(aiocr_password "$data" demo)")"
    demo_key="$(curl -sf -X POST "http://127.0.0.1:$port/v2/user/apikey" \
        -H "Authorization: Bearer $demo_token" | sed -E 's/.*"api_key":"([0-9a-f]+)".*/\1/')"

    echo "== $label"
    duration_s=3 uploads "$work_dir/warm-up.json"
    local round ratios=() alone flooded flood_rates=()
    for round in $(seq 1 "$rounds"); do
        uploads "$work_dir/alone.json"
        flood "$work_dir/flood.json"
        sleep 1 # the flood is under way before the uploads start
        uploads "$work_dir/flooded.json"
        wait "$flood_pid" || true # a flood of wrong passwords has no success to report
        flood_pid=""
        alone="$(p99 "$work_dir/alone.json")"
        flooded="$(p99 "$work_dir/flooded.json")"
        ratios+=("$(ratio "$flooded" "$alone")")
        flood_rates+=("$(json_field "$work_dir/flood.json" "['requests_per_s']" | cut -d. -f1)")
        echo "  round $round: upload ack p99 alone $alone ms, under flood $flooded ms," \
            "ratio ${ratios[-1]};" \
            "uploads ok $(json_field "$work_dir/alone.json" "['ok']") / $(json_field "$work_dir/flooded.json" "['ok']");" \
            "flood answered ${flood_rates[-1]} logins/s"
    done
    curl -sf "http://127.0.0.1:$port/metrics" >"$work_dir/metrics.txt"
    stop_aiocr
    echo "  median p99 ratio (flood / alone): $(python3 -c 'import statistics, sys; print(statistics.median(float(r) for r in sys.argv[1:]))' "${ratios[@]}")"
    echo "  over the rounds: passwords checked and wrong $(metric "$work_dir/metrics.txt" aiocr_logins_failed_total)," \
        "refused by backoff $(metric "$work_dir/metrics.txt" 'aiocr_login_backoff_refusals_total{scope="account"}') (account)" \
        "+ $(metric "$work_dir/metrics.txt" 'aiocr_login_backoff_refusals_total{scope="address"}') (address)," \
        "hash queue full $(metric "$work_dir/metrics.txt" aiocr_password_hash_queue_full_total)"
}

echo "uploads: aiocr-loadgen -R$rate -c$upload_connections -d${duration_s}s -s upload-base64;" \
    "flood: -c$flood_connections POST /v2/user/login (wrong password); $shards shards," \
    "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
measure "defaults"
measure "every guess hashed" login_account_free_failures=1000000000 \
    login_address_free_failures=1000000000
measure "defaults, refusals not paced" login_refusal_delay_ms=0
