#!/usr/bin/env bash
# A long run at ~70 % of capacity (docs/cluster.md, "Long runs"): slow leaks show as slopes.
# Two targets side by side: node S alone (no NATS) and node C with NATS and one worker
# (recognition_split=remote: every job through JetStream). Each one's capacity is measured
# first (closed loop, 16 connections, 15 s of the mix below); then both are driven open loop
# at SHARE of it (default 0.7) for MINUTES, in one-minute loadgen runs of mixed traffic
# (sync and async decodes of the fixtures, polls, balance reads, logins). After each minute:
# RSS and open files of the node (and of the worker and nats-server), the data directory's
# size (retention runs hourly and keeps retention_days of days: over a run shorter than a day
# it only grows with the uploads), the minute's p99 (corrected), its errors, and the node's
# heap in use (its /metrics, aiocr_heap_in_use_bytes: what the allocator handed out and did not
# get back, which RSS alone cannot tell from what glibc keeps). At the end, the least-squares
# slope of each series per hour, with its first and last value, and the slope of its second
# half (after the warm-up). Then each node is started again on its data directory: a heap
# that comes back to the end of the run's is held for the data kept, not lost.
# Each shard's ledger keeps a page cache (store_cache_mb, 64 MiB by default) that a node's
# memory grows into with its ledger, about 0.5 KiB per upload: at soak rates that takes
# hours, and looks like a leak of ~15 MiB/h until it is full. The soak sets it to CACHE_MB
# (default 2), full within its first minutes, so that a slope after them is not the cache.
# What still grows is the ledger's page table (an entry per page of its database, cached or
# not: about 110 bytes per upload kept, bounded by retention_days), which the restart at the
# end tells from a leak (docs/cluster.md, "An hour on a quiet machine").
# RSS also counts what glibc's malloc keeps of freed memory in each thread's arena (not lent
# to other threads' arenas; what loading the models freed is given back at start): a node's
# RSS can rise in steps while its live heap is flat (docs/cluster.md, "What the node alone's
# memory is"). MALLOC_ARENA_MAX=2 in the environment reaches every process the soak starts
# and makes a node's RSS follow its heap.
# nats-server runs with its monitoring port and its Go profiling port: each minute also
# samples what aiocr's traffic could make it keep (/varz subscriptions, connections and slow
# consumers, /jsz consumers and stored messages) beside the Go heap in use (the profile's
# HeapInuse: live objects and their spans, without the freed memory Go keeps before it
# returns it to the system). Counts flat while RSS rises is the Go runtime's, not a leak
# aiocr causes. NATS_SERVER picks another nats-server binary; GOGC / GOMEMLIMIT in the
# environment reach it (and change how its RSS follows its heap).
# Usage: bench/soak.sh [minutes=30] [share=0.7] [cache_mb=2]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

minutes="${1:-30}"
share="${2:-0.7}"
cache_mb="${3:-2}"
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
nats_port=18931
nats_monitor_port=18934
nats_profile_port=18935
NATS_SERVER="${NATS_SERVER:-nats-server}"
work="$(mktemp -d /tmp/aiocr-soak.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    [ -z "${failed:-}" ] && rm -rf "$work"
    return 0
}
trap cleanup EXIT

corpus="$work/corpus"
image_corpus "$corpus"
mix="decode-sync=3,decode-async=3,point=3,login=1"

mkdir -p "$work/nats"
printf 'listen: 127.0.0.1:%s\nmax_payload: 2MB\njetstream { store_dir: "%s" }\n' \
    "$nats_port" "$work/nats" >"$work/nats.conf"
"$NATS_SERVER" -c "$work/nats.conf" -m "$nats_monitor_port" --profile "$nats_profile_port" \
    >"$work/nats.log" 2>&1 &
nats_pid=$!
pids+=("$nats_pid")
sleep 1
# One user with points enough on each node, made before its first start.
for name in alone clustered; do
    "$AIOCR_BIN" user add --data "$work/$name" --shards 1 --username soak \
        --password soak-password --points 100000000 >/dev/null
    echo "soak:soak-password" >"$work/$name.users"
done
common=(--shards 1 --set cache_entries=0 --set recognition_wide_threads=1 --set "store_cache_mb=$cache_mb"
    --set rate_limit_per_sec=1000000 --set rate_limit_burst=1000000)
declare -A node_port=([alone]=18932 [clustered]=18933) node_pid=() node_rate=()
# start_node NAME: starts node NAME on its data directory (its pid in node_pid[NAME]).
start_node() {
    local name="$1" args=("${common[@]}")
    [ "$name" = clustered ] && args+=(--set "nats_url=nats://127.0.0.1:$nats_port"
        --set recognition_split=remote --set recognition_cores=0)
    # A node that does not start in time is stopped too (it holds the bench lock's descriptor).
    start_aiocr "${node_port[$name]}" "$work/$name" "${args[@]}" || { pids+=("$AIOCR_PID"); exit 1; }
    node_pid[$name]="$AIOCR_PID"
    pids+=("$AIOCR_PID")
}

# heap_kib PORT: a node's heap in use, KiB (nothing when its /metrics has none).
heap_kib() {
    local bytes
    bytes="$(metric_sum "$1" aiocr_heap_in_use_bytes)"
    [ -z "$bytes" ] || echo $((bytes / 1024))
}

start_node alone
start_node clustered
"$AIOCR_BIN" worker --nats "nats://127.0.0.1:$nats_port" --name soak \
    --set recognition_wide_threads=1 >"$work/worker.out" 2>"$work/worker.err" &
worker_pid=$!
pids+=("$worker_pid")
for _ in $(seq 1 300); do grep -q "aiocr worker:" "$work/worker.out" && break; sleep 0.1; done
wait_nats_ready() {
    for _ in $(seq 1 300); do grep -q "nats: ready" "$work/clustered.err" && break; sleep 0.1; done
}
wait_nats_ready

# loadgen PORT NAME ARGS...: one run of the mix, JSON summary to stdout.
loadgen() {
    local port="$1" name="$2"
    shift 2
    "$LOADGEN_BIN" "http://127.0.0.1:$port" --mix "$mix" --images "$corpus" \
        --users-file "$work/$name.users" --threads 1 --pin never --json "$@" 2>/dev/null
}

for name in alone clustered; do
    # The heap with the models loaded and an empty ledger: where the restart below is read from.
    heap_kib "${node_port[$name]}" >"$work/$name.heap-start"
    loadgen "${node_port[$name]}" "$name" -c 16 -d 15s >"$work/$name.capacity.json"
    node_rate[$name]="$(json_field "$work/$name.capacity.json" "['requests_per_s'] * $share")"
done
echo "ledger page cache: $cache_mb MiB per shard (store_cache_mb)"
echo "capacity (closed loop, 16 connections): alone $(json_field "$work/alone.capacity.json" "['requests_per_s']") ops/s, clustered $(json_field "$work/clustered.capacity.json" "['requests_per_s']") ops/s; soak at $share of each"

# sample MINUTE NAME PID [DATA_DIR] JSON [PORT]: one line of the series (with PORT, a node's
# heap in use from its /metrics).
sample() {
    local minute="$1" name="$2" pid="$3" data="$4" json="$5" port="${6:-}"
    local rss fds size p99 errors heap
    if ! kill -0 "$pid" 2>/dev/null; then
        failed=1
        echo "soak: $name (pid $pid) is gone after minute $minute; logs kept in $work" >&2
        exit 1
    fi
    rss="$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")"
    fds="$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)"
    size=0
    [ -n "$data" ] && size="$(du -sk "$data" | cut -f1)"
    p99="-"
    errors=0
    if [ -n "$json" ]; then
        p99="$(json_field "$json" "['latency_ms']['corrected']['p99']")"
        errors="$(json_field "$json" "['failed']")"
    fi
    heap="-"
    if [ -n "$port" ]; then
        heap="$(heap_kib "$port")"
        [ -n "$heap" ] || heap="-"
    fi
    echo "$minute $name $rss $fds $size $p99 $errors $heap" >>"$work/series"
}

# nats_counts MINUTE: one line of nats-server's own counts (monitoring and profiling ports).
nats_counts() {
    python3 - "$1" "$nats_monitor_port" "$nats_profile_port" >>"$work/nats-series" <<'EOF'
import json, re, sys, urllib.request
minute, monitor, profile = sys.argv[1:]
def get(port, path):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read().decode()
varz = json.loads(get(monitor, "/varz"))
jsz = json.loads(get(monitor, "/jsz"))
heap = re.search(r"# HeapInuse = (\d+)", get(profile, "/debug/pprof/heap?debug=1"))
print(minute, varz["subscriptions"], varz["connections"], varz["slow_consumers"],
      jsz["consumers"], jsz["messages"], int(heap.group(1)) // 1024 if heap else "-")
EOF
}

echo "minute subscriptions connections slow_consumers consumers messages heap_inuse_kib" \
    >"$work/nats-series"
echo "minute name rss_kib open_files data_kib p99_ms errors heap_kib" >"$work/series"
for minute in $(seq 1 "$minutes"); do
    loadgen "${node_port[alone]}" alone -c 32 -R "${node_rate[alone]}" -d 60s >"$work/alone.json" &
    alone_load=$!
    loadgen "${node_port[clustered]}" clustered -c 32 -R "${node_rate[clustered]}" -d 60s \
        >"$work/clustered.json"
    wait "$alone_load"
    for name in alone clustered; do
        sample "$minute" "$name" "${node_pid[$name]}" "$work/$name" "$work/$name.json" \
            "${node_port[$name]}"
    done
    sample "$minute" worker "$worker_pid" "" ""
    sample "$minute" nats-server "$nats_pid" "$work/nats" ""
    nats_counts "$minute"
    tail -4 "$work/series" | sed "s/^/soak: /"
    tail -1 "$work/nats-series" | sed "s/^/soak: nats-server counts: /"
    for name in alone clustered; do
        json_field "$work/$name.json" "['errors']" | sed "s/^/soak: $name errors: /"
    done
done

# Is what a node's heap gained over the run held for the data it keeps (bounded by
# retention_days), or lost? Each node is stopped (SIGTERM), started again on its data
# directory and driven one more minute at its soak rate, and its heap then is set against
# the heap after the run's first minute, the same minute of load on an empty ledger: a gain
# held for the data comes back after the restart (sled rebuilds its page table for every
# page of the ledger when it opens it, and its cache fills again); one the process lost
# does not.
for name in alone clustered; do
    port="${node_port[$name]}"
    heap_first="$(awk -v name="$name" '$1 == 1 && $2 == name { print $8 }' "$work/series")"
    heap_end="$(heap_kib "$port")"
    uploads="$(metric_sum "$port" aiocr_uploads_accepted_total)"
    stop_pid "${node_pid[$name]}"
    start_node "$name"
    [ "$name" = clustered ] && wait_nats_ready
    sleep 2
    heap_restarted="$(heap_kib "$port")"
    loadgen "$port" "$name" -c 32 -R "${node_rate[$name]}" -d 60s >"$work/$name.restart.json"
    heap_loaded="$(heap_kib "$port")"
    python3 - "$name" "$(cat "$work/$name.heap-start")" "$heap_first" "$heap_end" \
        "$heap_restarted" "$heap_loaded" "$uploads" "$(du -sk "$work/$name" | cut -f1)" <<'EOF'
import sys
name = sys.argv[1]
start, first, end, restarted, loaded, uploads, data = (float(v) for v in sys.argv[2:])
# Below 1 MiB of gain the share is noise (a run of a few minutes): not printed.
held = f"{(loaded - first) / (end - first):.2f}" if end - first >= 1024 else "- (under 1 MiB gained)"
print(f"soak: {name}: heap in use (MiB) at start {start / 1024:.1f}, after minute 1 {first / 1024:.1f}, "
      f"at the end {end / 1024:.1f} ({uploads:.0f} uploads accepted); started again on its "
      f"{data / 1024:.1f} MiB of data: {restarted / 1024:.1f}, after one minute {loaded / 1024:.1f} "
      f"(share of the gain since minute 1 that came back: {held})")
EOF
done

python3 - "$work/series" "$(cut -d' ' -f1-3 /proc/loadavg)" "$work/nats-series" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1]).read().splitlines()[1:]]
nats_lines = open(sys.argv[3]).read().splitlines()
nats_columns, nats_rows = nats_lines[0].split()[1:], [line.split() for line in nats_lines[1:]]
columns = ["rss_kib", "open_files", "data_kib", "p99_ms", "errors", "heap_kib"]

def slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return 60 * sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0

print(f"soak: {len(rows) // 4} minute(s), load at the end {sys.argv[2]}; slope per hour (first -> last minute)")
for name in ("alone", "clustered", "worker", "nats-server"):
    mine = [r for r in rows if r[1] == name]
    cells = []
    for index, column in enumerate(columns):
        values = [(float(r[0]), float(r[2 + index])) for r in mine if r[2 + index] != "-"]
        if not values:
            continue
        if column == "errors":
            cells.append(f"errors {sum(v for _, v in values):.0f} in all")
        else:
            # The second half's slope too: the first minutes hold the warm-up (caches
            # filling, the allocator's arenas growing to their high-water marks).
            later = values[len(values) // 2:]
            cells.append(f"{column} {slope(values):+.1f}/h ({values[0][1]:.1f} -> {values[-1][1]:.1f}; "
                         f"second half {slope(later):+.1f}/h)")
    print(f"soak: {name}: " + ", ".join(cells))
cells = []
for index, column in enumerate(nats_columns):
    values = [(float(r[0]), float(r[1 + index])) for r in nats_rows if r[1 + index] != "-"]
    if values:
        cells.append(f"{column} {slope(values):+.1f}/h ({values[0][1]:.0f} -> {values[-1][1]:.0f})")
print("soak: nats-server counts: " + ", ".join(cells))
EOF
