#!/usr/bin/env bash
# What the answer cache does for throughput, and what a hash lookup costs.
#
# 1. Recognised uploads/s with the cache on against the same run with it off
#    (cache_entries=0): sync decodes (`mixed` scenario) spread over USERS users (each
#    request the next user's token), of which REPEAT of the images repeat the fixture corpus
#    and the rest are images never seen before (a fixture made unique by a PNG text chunk or
#    a JPEG comment: same pixels, new bytes). Alternating rounds on the same data directory,
#    each after a warm-up of its own; medians.
# 2. `POST /v2/decode/cached` with batches of 100 lookups on one connection: every lookup a
#    hit (charged, recorded, one group commit per batch), and every lookup a miss.
# 3. The upload path's lookup from /metrics: on the shard itself against the hop to the
#    shard owning the entry, hits and misses.
#
# The per-user rate limit is raised for every run alike (one user makes the lookups).
#
# Usage: bench/cache_effect.sh [duration_s=15] [connections=32] [users=1000] [repeat=0.7] [rounds=2]
# Env: AIOCR_BIN, LOADGEN_BIN. Needs curl, python3 and the models (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

duration_s="${1:-15}"
connections="${2:-32}"
users="${3:-1000}"
repeat="${4:-0.7}"
rounds="${5:-2}"
port=18517
shards=2
work="$(mktemp -d /tmp/aiocr-cache-bench.XXXXXX)"
data="$work/data"
limits=(--set rate_limit_per_sec=1000000 --set rate_limit_burst=1000000)
cleanup() {
    stop_aiocr
    rm -rf "$work"
}
trap cleanup EXIT

image_corpus "$work/corpus"
serve() { # extra settings...
    start_aiocr "$port" "$data" --shards "$shards" "${limits[@]}" "$@"
}
metric() { # name (with labels) -> value
    curl -sf "http://127.0.0.1:$port/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}

echo "setting up $users users..." >&2
serve
admin_password="$(aiocr_password "$data" admin)"
admin="$(aiocr_token "$port" admin "$admin_password")"
python3 bench/cache_users.py "$port" "$admin" "$users" 1000000 benchuser "$work/tokens"
python3 bench/cache_users.py "$port" "$admin" 1 1000000000 lookupuser "$work/lookup-token"
stop_aiocr

run_mixed() { # cache_entries tag -> prints recognised uploads/s
    local out="$work/$2.json"
    serve --set "cache_entries=$1"
    "$LOADGEN_BIN" "http://127.0.0.1:$port/" -s mixed -c "$connections" -d 3s --no-live \
        --api-keys-file "$work/tokens" --images "$work/corpus" --repeat-share "$repeat" \
        --json >/dev/null
    "$LOADGEN_BIN" "http://127.0.0.1:$port/" -s mixed -c "$connections" -d "${duration_s}s" \
        --no-live --api-keys-file "$work/tokens" --images "$work/corpus" \
        --repeat-share "$repeat" --json >"$out"
    if [ "$1" != 0 ]; then
        for place in local remote; do
            for found in true false; do
                echo "lookup $place found=$found p50/p99 us:" \
                    "$(metric "aiocr_cache_lookup_duration_us{where=\"$place\",found=\"$found\",quantile=\"0.5\"}")" \
                    "$(metric "aiocr_cache_lookup_duration_us{where=\"$place\",found=\"$found\",quantile=\"0.99\"}")" \
                    "count $(metric "aiocr_cache_lookup_duration_us_count{where=\"$place\",found=\"$found\"}")" >&2
            done
        done
        echo "hits $(metric aiocr_cache_hits_total) misses $(metric aiocr_cache_misses_total)" >&2
    fi
    stop_aiocr
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"{s['ok']/s['elapsed_s']:.1f}\")" "$out"
}

declare -a on_rates off_rates
for round in $(seq 1 "$rounds"); do
    off_rates+=("$(run_mixed 0 "off-$round")")
    on_rates+=("$(run_mixed 65536 "on-$round")")
    echo "round $round: cache off ${off_rates[-1]}/s, cache on ${on_rates[-1]}/s" >&2
done
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.1f}')" "$@"; }
off="$(median "${off_rates[@]}")"
on="$(median "${on_rates[@]}")"

# Lookups: the corpus is cached by a short run of every image once.
serve
"$LOADGEN_BIN" "http://127.0.0.1:$port/" -s decode-sync -c 4 -n 240 --no-live \
    --api-keys-file "$work/lookup-token" --images "$work/corpus" --json >/dev/null
lookups() { # tag [upload-query]
    "$LOADGEN_BIN" "http://127.0.0.1:$port/" -s cached -c 1 -d 5s --no-live --lookup-batch 100 \
        --api-keys-file "$work/lookup-token" --images "$work/corpus" \
        --upload-query "${2:-}" --json >"$work/$1.json"
}
lookups hits
lookups misses "model=beta"
stop_aiocr
field() { json_field "$work/$1.json" "$2"; }

echo
echo "recognised uploads/s, $users users, $repeat repeated, $connections connections, medians of $rounds:"
echo "  cache off: $off/s   cache on: $on/s   ratio: $(ratio "$on" "$off")"
for tag in hits misses; do
    echo "batch of 100 lookups, all $tag, 1 connection: p50 $(field $tag "['latency_ms']['uncorrected']['p50']") ms," \
        "p99 $(field $tag "['latency_ms']['uncorrected']['p99']") ms, $(field $tag "['requests_per_s']") batches/s," \
        "errors $(field $tag "['failed']")"
done
