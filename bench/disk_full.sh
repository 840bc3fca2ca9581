#!/usr/bin/env bash
# A full disk under upload load (issue 14), in one run on this machine:
#   1. before: a load client uploads (upload-base64, closed loop) while a good client reads
#      its balance at a fixed rate (GET /v2/user/point, open loop) on the same shard;
#   2. full: the data directory's tmpfs is filled up to a small headroom and the load eats
#      the rest: uploads are refused with the contract's 5004, /health answers 503;
#   3. after: the filler is removed; the time until /health answers 200 again (no restart),
#      then the same load: uploads are acknowledged again.
# Then SIGTERM (exit code), `aiocr ledger verify`, and a restart that counts the load user's
# upload records against the uploads acknowledged (none may be missing) and checks that
# nothing stays reserved. Prints the good client's latency per phase as ratios against
# "before", and the load's answers per phase.
#
# Needs root (it mounts a size-limited tmpfs), curl and python3.
# Usage: bench/disk_full.sh [phase_s=6] [load_connections=8] [tmpfs_mb=64] [point_rate=200]
# Env: AIOCR_BIN, LOADGEN_BIN (default target/release/...), AIOCR_MODEL_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

phase_s="${1:-6}"
connections="${2:-8}"
tmpfs_mb="${3:-64}"
point_rate="${4:-200}"
# What the filler leaves free for the load to fill.
headroom_kb=1024
port=18531
base="http://127.0.0.1:$port"
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"

work="$(mktemp -d /tmp/aiocr-disk-full.XXXXXX)"
mnt="$work/mnt"
cleanup() {
    stop_aiocr
    umount -l "$mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$mnt"
mount -t tmpfs -o "size=${tmpfs_mb}m,mode=0700" tmpfs "$mnt"
mkdir "$mnt/data"
# The data on the tmpfs, the server's stdout/stderr ($work/data.out, .err) beside it, off it.
ln -s "$mnt/data" "$work/data"
corpus="$work/corpus"
image_corpus "$corpus"

start_aiocr "$port" "$work/data" --shards 2 --set rate_limit_per_sec=1000000 \
    --set rate_limit_burst=1000000
demo="$(aiocr_password "$work/data" demo)"
admin_token="$(aiocr_token "$port" admin "$(aiocr_password "$work/data" admin)")"
aiocr_grant "$port" "$admin_token" demo 100000000

# shard_of ID: the shard in a snowflake id (bits 12..16).
shard_of() { echo $((($1 >> 12) & 15)); }
login_id() { # USER PASSWORD -> user id
    curl -sf "$base/v2/user/login" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\"}" | sed -E 's/.*"user_id":"([0-9]+)".*/\1/'
}
# The good client's user lives on the load user's shard: the one whose disk fails first.
demo_shard="$(shard_of "$(login_id demo "$demo")")"
good=""
for n in $(seq 0 31); do
    id="$(curl -sf "$base/v2/admin/users" -H "Authorization: Bearer $admin_token" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"good$n\",\"password\":\"good-password\",\"points\":1000}" |
        sed -E 's/.*"user_id":"([0-9]+)".*/\1/')"
    if [ "$(shard_of "$id")" = "$demo_shard" ]; then
        good="good$n"
        break
    fi
done
[ -n "$good" ] || { echo "no user on shard $demo_shard" >&2; exit 1; }

loadgen() { # output-file user:password args...
    local out="$1" user="$2"
    shift 2
    "$LOADGEN_BIN" "$base" --user "$user" --json --no-live "$@" >"$out"
}
accepted() { # uploads acknowledged so far (every shard)
    local count
    count="$(metric_sum "$port" aiocr_uploads_accepted_total)"
    echo "${count:-0}"
}
phase() { # NAME: the load and the good client together for phase_s
    local before
    before="$(accepted)"
    loadgen "$work/load-$1.json" "demo:$demo" -s upload-base64 -c "$connections" \
        -d "${phase_s}s" --images "$corpus" &
    local load_pid=$!
    loadgen "$work/good-$1.json" "$good:good-password" -s point -R "$point_rate" -c 2 \
        -d "${phase_s}s"
    wait "$load_pid"
    echo $(($(accepted) - before)) >"$work/acked-$1"
}
health() { curl -s -o /dev/null -w '%{http_code}' "$base/health"; }

phase before
available_kb="$(df -k --output=avail "$mnt" | tail -1 | tr -d ' ')"
dd if=/dev/zero of="$mnt/filler" bs=1K count="$((available_kb - headroom_kb))" status=none
phase full
health_full="$(curl -s "$base/health")"
health_full_status="$(health)"
rm "$mnt/filler"
freed_at="$(date +%s%N)"
until [ "$(health)" = 200 ]; do
    [ $(($(date +%s%N) - freed_at)) -lt 120000000000 ] || { echo "no recovery in 120 s" >&2; exit 1; }
    sleep 0.05
done
recovered_ms=$((($(date +%s%N) - freed_at) / 1000000))
phase after
curl -sf "$base/metrics" | grep -E '^aiocr_storage_' >"$work/storage-metrics"
acknowledged=$(($(cat "$work/acked-before") + $(cat "$work/acked-full") + $(cat "$work/acked-after")))
kill "$AIOCR_PID"
stop_status=0
wait "$AIOCR_PID" || stop_status=$?
AIOCR_PID=""
verify="$("$AIOCR_BIN" ledger verify --data "$work/data" 2>&1)" || true
cp "$work/data.err" "$work/first-run.err"

# Restart: every acknowledged upload has its record; nothing stays reserved.
start_aiocr "$port" "$work/data" --shards 2
demo_token="$(aiocr_token "$port" demo "$demo")"
stats="$(curl -sf "$base/v2/user/stats?days=2" -H "Authorization: Bearer $demo_token")"
records="$(python3 -c 'import json,sys; print(sum(d["uploads"] for d in json.loads(sys.argv[1])["data"]["days"]))' "$stats")"
reserved="$(curl -sf "$base/v2/user/point" -H "Authorization: Bearer $demo_token" |
    sed -E 's/.*"reserved":([0-9]+).*/\1/')"
stop_aiocr

p50='["latency_ms"]["corrected"]["p50"]'
p99='["latency_ms"]["corrected"]["p99"]'
error() { # FILE KIND -> count
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"].get(sys.argv[2], 0))' "$1" "$2"
}
echo "tmpfs ${tmpfs_mb} MiB, 2 shards; load: upload-base64, $connections connections (closed loop);"
echo "good client: GET /v2/user/point at $point_rate/s on the load's shard; $phase_s s per phase"
echo
echo "| phase | uploads acknowledged | 5004 | 5001 | good p50 ms | good p99 ms | p99 / before | good errors |"
echo "|---|---|---|---|---|---|---|---|"
reference="$(json_field "$work/good-before.json" "$p99")"
for name in before full after; do
    load="$work/load-$name.json" goodrun="$work/good-$name.json"
    echo "| $name | $(cat "$work/acked-$name") | $(error "$load" code_5004) | $(error "$load" code_5001) |" \
        "$(json_field "$goodrun" "$p50") | $(json_field "$goodrun" "$p99") |" \
        "$(ratio "$(json_field "$goodrun" "$p99")" "$reference") | $(json_field "$goodrun" "['failed']") |"
done
echo
echo "/health while full: $health_full_status $health_full"
echo "space freed -> /health 200 again: ${recovered_ms} ms (no restart)"
sed 's/^/  /' "$work/storage-metrics" | grep -v ' 0$' || true
grep -E 'storage (failed|recovered)' "$work/first-run.err" | cut -c1-200 | sed 's/^/  log: /' || true
echo "SIGTERM exit code: $stop_status"
echo "ledger verify: $verify"
echo "uploads acknowledged: $acknowledged; upload records after a restart: $records" \
    "(refused ones whose reservation reached the disk are records too, withdrawn); reserved: $reserved"
[ "$records" -ge "$acknowledged" ] && [ "$reserved" = 0 ] && [ "$stop_status" = 0 ]
