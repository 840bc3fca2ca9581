#!/usr/bin/env bash
# Issue 16's figures, measured in one run (docs/cluster.md):
#   1. what the job path through NATS adds to one recognition at low load: sync decodes
#      (`wait=1`) of one image over 1 connection, through a node whose jobs go to a worker
#      (recognition_split=remote) and through nodes that run them themselves (local: the
#      shard on core 0 and the recognition thread on core 1, as the remote split; and one
#      node wholly on core 1, whose model runs as fast as the worker's), in alternating
#      rounds; medians of the per-round p50 and mean, and each path's cost beside the model
#      run (mean request time minus mean recognition time, from the servers' metrics)
#      (goal: remote - local < 1 ms);
#   2. throughput through a remote worker against that worker's own limit, `aiocr ocr --bench
#      --threads 1` on the worker's core, and against the same split done locally: sync
#      decodes with CONNECTIONS connections through the node (its shard on core 0) and the
#      worker (core 1), and through a node whose recognition thread has core 1; the limit,
#      remote and local alternate twice, the better of each is kept (goal: remote >= 0.9 x
#      the limit).
# The machine is shared: how much of core 1 a process gets varies with the other load, so
# step 2 also reports images per CPU-second of the worker process (its NATS side included)
# against `ocr --bench`'s, which the other load does not move.
# nats-server and the load generator share core 0 with the nodes' shards (glommio pins shard
# 0 to the first core of the process; recognition_cores pins the recognition thread to core
# 1); the answer cache is off, so every upload runs the model.
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
one_core_port=18904
ticks_per_s="$(getconf CLK_TCK)"
load_start="$(cut -d' ' -f1 /proc/loadavg)"
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
work="$(mktemp -d /tmp/aiocr-cluster-bench.XXXXXX)"
nats_pid=""
local_pid=""
one_core_pid=""
remote_pid=""
worker_pid=""
cleanup() {
    for pid in "$worker_pid" "$remote_pid" "$one_core_pid" "$local_pid" "$nats_pid"; do
        stop_pid "$pid"
    done
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

taskset -c 0 nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats" >"$work/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break
    sleep 0.1
done
nats_url="nats://127.0.0.1:$nats_port"

# The nodes may use both cores: the shard takes core 0 and the recognition thread core 1 by
# themselves (a node confined to core 0 by taskset ran its core-1 thread at half speed here).
taskset -c 0,1 "$AIOCR_BIN" serve --listen "127.0.0.1:$local_port" --data "$work/local" "${common[@]}" \
    >"$work/local.out" 2>"$work/local.err" &
local_pid=$!
# Also a node wholly on core 1, as the worker is: its model runs at the worker's speed (the
# split node's recognition thread ran the model ~1.6x slower on this VM, its requests
# arriving from the other core).
taskset -c 1 "$AIOCR_BIN" serve --listen "127.0.0.1:$one_core_port" --data "$work/one-core" "${common[@]}" \
    >"$work/one-core.out" 2>"$work/one-core.err" &
one_core_pid=$!
taskset -c 0,1 "$AIOCR_BIN" serve --listen "127.0.0.1:$remote_port" --data "$work/remote" "${common[@]}" \
    --set node_id=1 --set "nats_url=$nats_url" --set recognition_split=remote \
    >"$work/remote.out" 2>"$work/remote.err" &
remote_pid=$!
taskset -c 1 "$AIOCR_BIN" worker --name bench --set "nats_url=$nats_url" --set recognition_cores=1 \
    --set recognition_wide_threads=1 >"$work/worker.out" 2>"$work/worker.err" &
worker_pid=$!
for _ in $(seq 1 300); do
    grep -q "listening on" "$work/local.out" 2>/dev/null && grep -q "listening on" "$work/one-core.out" 2>/dev/null &&
        grep -q "nats: ready" "$work/remote.err" 2>/dev/null && grep -q "aiocr worker:" "$work/worker.out" 2>/dev/null &&
        break
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
one_core_user="$(prepare "$one_core_port" "$work/one-core")"

decode() { # PORT USER CONNECTIONS IMAGES OUT
    taskset -c 0 "$LOADGEN_BIN" "http://127.0.0.1:$1" -s decode-sync -c "$3" -d "${seconds}s" \
        --images "$4" --user "$2" --json --no-live >"$5"
}
cpu_ticks() { # PID: user + system clock ticks of the whole process so far
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
worker_results() { # results the worker returned to the remote node so far
    curl -sf "http://127.0.0.1:$remote_port/metrics" |
        awk '/^aiocr_worker_results_total\{worker="bench"\}/ { n = $2 } END { print n + 0 }'
}

totals() { # PORT: "upload requests, their summed µs, recognitions, their summed µs" so far
    curl -sf "http://127.0.0.1:$1/metrics" | awk '
        /^aiocr_request_duration_us_count\{route="upload_base64"\}/ { rn = $2 }
        /^aiocr_request_duration_us_sum\{route="upload_base64"\}/ { rs = $2 }
        /^aiocr_recognize_duration_us_count / { cn = $2 }
        /^aiocr_recognize_duration_us_sum / { cs = $2 }
        END { print rn + 0, rs + 0, cn + 0, cs + 0 }'
}
path_cost_ms() { # "BEFORE" "AFTER" (totals): mean request time minus mean recognition time
    awk -v b="$1" -v a="$2" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        printf "%.3f", ((y[2] - x[2]) / (y[1] - x[1]) - (y[4] - x[4]) / (y[3] - x[3])) / 1000 }'
}

# Warm both paths (models, connections, consumers) before measuring.
decode "$local_port" "$local_user" 1 "$one_image" "$work/warm-local.json"
decode "$remote_port" "$remote_user" 1 "$one_image" "$work/warm-remote.json"
decode "$one_core_port" "$one_core_user" 1 "$one_image" "$work/warm-one-core.json"
local_before="$(totals "$local_port")"
remote_before="$(totals "$remote_port")"
one_core_before="$(totals "$one_core_port")"

# 1. Low load: alternating rounds of one connection.
: >"$work/p50s"
for round in $(seq 1 "$rounds"); do
    decode "$local_port" "$local_user" 1 "$one_image" "$work/l$round.json"
    decode "$remote_port" "$remote_user" 1 "$one_image" "$work/r$round.json"
    decode "$one_core_port" "$one_core_user" 1 "$one_image" "$work/o$round.json"
    for side in l r o; do
        echo "$side $(json_field "$work/$side$round.json" "['latency_ms']['uncorrected']['p50']") \
$(json_field "$work/$side$round.json" "['latency_ms']['uncorrected']['mean']")" >>"$work/p50s"
    done
done
median() { # SIDE COLUMN
    awk -v side="$1" -v col="$2" '$1 == side { print $col }' "$work/p50s" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# What each path costs beside the model run itself (the HTTP request, the reservation and the
# result's commit, and for the remote path the trip through NATS and the worker), from the
# servers' own sums: unlike the end-to-end figures, it does not move with how fast core 1
# ran the model in each round.
local_cost="$(path_cost_ms "$local_before" "$(totals "$local_port")")"
remote_cost="$(path_cost_ms "$remote_before" "$(totals "$remote_port")")"
one_core_cost="$(path_cost_ms "$one_core_before" "$(totals "$one_core_port")")"
local_p50="$(median l 2)"
remote_p50="$(median r 2)"
local_mean="$(median l 3)"
remote_mean="$(median r 3)"
one_core_p50="$(median o 2)"
one_core_mean="$(median o 3)"

# 2. Throughput: the limit, remote and local, alternating twice (the worker and the local
# node idle while `ocr --bench` has core 1).
: >"$work/limits"
: >"$work/worker_per_cpu_s"
for round in 1 2; do
    taskset -c 1 "$AIOCR_BIN" ocr --bench --threads 1 --seconds "$seconds" "$corpus" >"$work/bench$round.txt"
    sed -nE 's/^images\/s: ([0-9.]+)/\1/p' "$work/bench$round.txt" >>"$work/limits"
    ticks_before="$(cpu_ticks "$worker_pid")"
    results_before="$(worker_results)"
    decode "$remote_port" "$remote_user" "$connections" "$corpus" "$work/tr$round.json"
    ticks="$(($(cpu_ticks "$worker_pid") - ticks_before))"
    results="$(($(worker_results) - results_before))"
    awk -v n="$results" -v t="$ticks" -v hz="$ticks_per_s" 'BEGIN { printf "%.1f\n", n / (t / hz) }' \
        >>"$work/worker_per_cpu_s"
    decode "$local_port" "$local_user" "$connections" "$corpus" "$work/tl$round.json"
done
best() { # FILES...: the better requests/s
    for file in "$@"; do json_field "$file" "['requests_per_s']"; done | sort -g | tail -1
}
remote_rps="$(best "$work/tr1.json" "$work/tr2.json")"
local_rps="$(best "$work/tl1.json" "$work/tl2.json")"
limit="$(sort -g "$work/limits" | tail -1)"
failed="$(($(json_field "$work/tr1.json" "['failed']") + $(json_field "$work/tr2.json" "['failed']")))"
bench_per_cpu_s="$(sed -nE 's/^cpu-seconds: .*\(([0-9.]+) images per cpu-second\)/\1/p' \
    "$work/bench1.txt" "$work/bench2.txt" | sort -g | tail -1)"
worker_per_cpu_s="$(sort -g "$work/worker_per_cpu_s" | tail -1)"

echo "load average (1 min) at the start and the end: $load_start, $(cut -d' ' -f1 /proc/loadavg)"
difference() { # A B: A - B, signed, 3 decimals
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", a - b }'
}
echo "Low load, sync decodes of one image over 1 connection ($rounds rounds of ${seconds}s each):"
echo "| figure | remote worker (through NATS) | local: shard core 0, recognition core 1 | local: one node on core 1 | remote - local |"
echo "|---|---|---|---|---|"
echo "| p50 ms (median of rounds) | $remote_p50 | $local_p50 | $one_core_p50 | $(difference "$remote_p50" "$local_p50"), $(difference "$remote_p50" "$one_core_p50") ms |"
echo "| mean ms (median of rounds) | $(printf %.3f "$remote_mean") | $(printf %.3f "$local_mean") | $(printf %.3f "$one_core_mean") | $(difference "$remote_mean" "$local_mean"), $(difference "$remote_mean" "$one_core_mean") ms |"
echo "| mean ms beside the model run (all rounds) | $remote_cost | $local_cost | $one_core_cost | $(difference "$remote_cost" "$local_cost"), $(difference "$remote_cost" "$one_core_cost") ms |"
echo
echo "Throughput, $connections connections, one recognition core (the better of 2 rounds):"
echo "| figure | remote worker (through NATS) | local: shard core 0, recognition core 1 | ratio |"
echo "|---|---|---|---|"
echo "| sync decodes/s (remote failed: $failed) | $(printf %.1f "$remote_rps") | $(printf %.1f "$local_rps") | remote/local $(ratio "$remote_rps" "$local_rps") |"
echo "| the worker's own limit: aiocr ocr --bench --threads 1 on core 1 | $limit images/s | | remote/limit $(ratio "$remote_rps" "$limit"), local/limit $(ratio "$local_rps" "$limit") |"
echo "| images per CPU-second: the worker process (all its threads) vs ocr --bench | $worker_per_cpu_s | | worker/bench $(ratio "$worker_per_cpu_s" "$bench_per_cpu_s") (bench: $bench_per_cpu_s) |"
