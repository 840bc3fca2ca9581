#!/usr/bin/env bash
# Issue 16's figures, measured in one run (docs/cluster.md):
#   1. what the job path through NATS adds to one recognition at low load: sync decodes
#      (`wait=1`) of one image over 1 connection, through a node whose jobs go to a worker
#      (recognition_split=remote) and through a node that runs them itself (local), in
#      alternating rounds; medians of the per-round p50 and mean (goal: remote - local < 1 ms);
#   2. throughput through a remote worker against that worker's own limit: `aiocr ocr
#      --bench --threads 1` on core 1, sync decodes with CONNECTIONS connections through
#      the node (shard on core 0) and the worker (core 1), and the same split done locally
#      (the node's recognition thread on core 1), in two alternating rounds, the better of
#      each (goal: remote >= 0.9 x the limit).
# nats-server and the load generator share core 0 with the nodes' shards; the answer cache
# is off, so every upload runs the model.
# Usage: bench/cluster.sh [seconds=5] [rounds=5] [connections=16]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

seconds="${1:-5}"
rounds="${2:-5}"
connections="${3:-16}"
nats_port=18901
local_port=18902
remote_port=18903
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
work="$(mktemp -d /tmp/aiocr-cluster-bench.XXXXXX)"
nats_pid=""
local_pid=""
remote_pid=""
worker_pid=""
cleanup() {
    for pid in "$worker_pid" "$remote_pid" "$local_pid" "$nats_pid"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT

one_image="$work/one"
mkdir -p "$one_image"
ln -s "$PWD/tests/fixtures/captcha/0001.png" "$one_image/"
corpus="$work/corpus"
image_corpus "$corpus"
common=(--shards 1 --set cache_entries=0 --set recognition_cores=1 --set recognition_wide_threads=1
    --set rate_limit_per_sec=1000000 --set rate_limit_burst=1000000)

limit() { # the worker's own limit on its core (images/s)
    taskset -c 1 "$AIOCR_BIN" ocr --bench --threads 1 --seconds "$seconds" "$corpus" |
        sed -nE 's/^images\/s: ([0-9.]+)/\1/p'
}

taskset -c 0 nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats" >"$work/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break
    sleep 0.1
done
nats_url="nats://127.0.0.1:$nats_port"

taskset -c 0 "$AIOCR_BIN" serve --listen "127.0.0.1:$local_port" --data "$work/local" "${common[@]}" \
    >"$work/local.out" 2>"$work/local.err" &
local_pid=$!
taskset -c 0 "$AIOCR_BIN" serve --listen "127.0.0.1:$remote_port" --data "$work/remote" "${common[@]}" \
    --set node_id=1 --set "nats_url=$nats_url" --set recognition_split=remote \
    >"$work/remote.out" 2>"$work/remote.err" &
remote_pid=$!
taskset -c 1 "$AIOCR_BIN" worker --name bench --set "nats_url=$nats_url" --set recognition_cores=1 \
    --set recognition_wide_threads=1 >"$work/worker.out" 2>"$work/worker.err" &
worker_pid=$!
for _ in $(seq 1 300); do
    grep -q "listening on" "$work/local.out" 2>/dev/null && grep -q "nats: ready" "$work/remote.err" 2>/dev/null &&
        grep -q "aiocr worker:" "$work/worker.out" 2>/dev/null && break
    sleep 0.1
done
grep -q "nats: ready" "$work/remote.err" || { cat "$work/remote.err" >&2; exit 1; }

prepare() { # PORT DATA_DIR -> the demo user's "demo:password" with points for the run
    local password admin_token
    password="$(aiocr_password "$2" demo)"
    admin_token="$(aiocr_token "$1" admin "$(aiocr_password "$2" admin)")"
    aiocr_grant "$1" "$admin_token" demo 10000000
    echo "demo:$password"
}
local_user="$(prepare "$local_port" "$work/local")"
remote_user="$(prepare "$remote_port" "$work/remote")"

decode() { # PORT USER CONNECTIONS IMAGES OUT
    taskset -c 0 "$LOADGEN_BIN" "http://127.0.0.1:$1" -s decode-sync -c "$3" -d "${seconds}s" \
        --images "$4" --user "$2" --json --no-live >"$5"
}

# Warm both paths (models, connections, consumers) before measuring.
decode "$local_port" "$local_user" 1 "$one_image" "$work/warm-local.json"
decode "$remote_port" "$remote_user" 1 "$one_image" "$work/warm-remote.json"

# 1. Low load: alternating rounds of one connection.
: >"$work/p50s"
for round in $(seq 1 "$rounds"); do
    decode "$local_port" "$local_user" 1 "$one_image" "$work/l$round.json"
    decode "$remote_port" "$remote_user" 1 "$one_image" "$work/r$round.json"
    for side in l r; do
        echo "$side $(json_field "$work/$side$round.json" "['latency_ms']['uncorrected']['p50']") \
$(json_field "$work/$side$round.json" "['latency_ms']['uncorrected']['mean']")" >>"$work/p50s"
    done
done
median() { # SIDE COLUMN
    awk -v side="$1" -v col="$2" '$1 == side { print $col }' "$work/p50s" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
local_p50="$(median l 2)"
remote_p50="$(median r 2)"
local_mean="$(median l 3)"
remote_mean="$(median r 3)"

# 2. Throughput: the limit, remote and local, alternating twice (the worker and the local
# node idle while `ocr --bench` has core 1).
: >"$work/limits"
for round in 1 2; do
    limit >>"$work/limits"
    decode "$remote_port" "$remote_user" "$connections" "$corpus" "$work/tr$round.json"
    decode "$local_port" "$local_user" "$connections" "$corpus" "$work/tl$round.json"
done
best() { # FILES...: the better requests/s
    for file in "$@"; do json_field "$file" "['requests_per_s']"; done | sort -g | tail -1
}
remote_rps="$(best "$work/tr1.json" "$work/tr2.json")"
local_rps="$(best "$work/tl1.json" "$work/tl2.json")"
limit="$(sort -g "$work/limits" | tail -1)"
failed="$(json_field "$work/tr2.json" "['failed']")"

echo "| figure | remote worker (through NATS) | local threads | difference or ratio |"
echo "|---|---|---|---|"
echo "| p50 ms, sync decode, 1 connection (median of $rounds rounds) | $remote_p50 | $local_p50 | +$(awk -v a="$remote_p50" -v b="$local_p50" 'BEGIN { printf "%.3f", a - b }') ms |"
echo "| mean ms, sync decode, 1 connection (median of $rounds rounds) | $remote_mean | $local_mean | +$(awk -v a="$remote_mean" -v b="$local_mean" 'BEGIN { printf "%.3f", a - b }') ms |"
echo "| sync decodes/s, $connections connections, one recognition core (failed: $failed) | $remote_rps | $local_rps | $(ratio "$remote_rps" "$local_rps") |"
echo "| the worker's own limit: aiocr ocr --bench --threads 1 on core 1 (the better of 2) | $limit images/s | | remote/limit $(ratio "$remote_rps" "$limit"), local/limit $(ratio "$local_rps" "$limit") |"
