#!/usr/bin/env bash
# Issue 14's attack and fault suite, one run on this machine, default configuration, 2 shards.
# Per attack it prints the good client's latency and the server's memory as ratios against the
# same run without the attack:
#   1. stalled bodies: STALLED connections from 8 loopback addresses, each announcing a 1 MiB
#      body and sending 200 bytes of it (a third /v2 uploads without a token, a third 2captcha
#      /in.php multipart uploads, whose key is in the body, a third logins), re-opened as the
#      server closes them (goal: memory + < 64 MB);
#   2. idle flood: one address opens connections that never send a byte, re-opened as they
#      close, at and past its per-address limit (goal: good p99 within 2x, every request
#      answered);
#   3. login flood and 4. disk full: bench/login_flood.sh and bench/disk_full.sh, when present;
#   5. kill -9 loop: KILL_ROUNDS times, uploads and polls from 8 threads, then kill -9 at a
#      random moment and a restart; afterwards every acknowledged upload must be known and the
#      ledger must verify;
#   6. shard-directory damage: each case must be refused by `aiocr serve` and reported by
#      `aiocr ledger verify`.
# The good client: aiocr-loadgen, GET /v2/user/point and async uploads (1:1) at RATE/s.
# Usage: bench/attacks.sh [seconds=10] [stalled=4000] [kill_rounds=10] [rate=200]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

seconds="${1:-10}"
stalled="${2:-4000}"
kill_rounds="${3:-10}"
rate="${4:-200}"
port=18961
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
# The attackers hold thousands of sockets: raise this shell's limit as far as the hard one.
ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d /tmp/aiocr-attacks.XXXXXX)"
attacker_pid=""
cleanup() {
    stop_pid "$attacker_pid"
    stop_aiocr
    rm -rf "$work"
}
trap cleanup EXIT
corpus="$work/corpus"
image_corpus "$corpus"
images=("$corpus"/*.png)
image="${images[0]}"

# rss_peak_kb PID SECONDS: the largest VmRSS of PID sampled every 100 ms for SECONDS.
rss_peak_kb() {
    local peak=0 rss _
    for _ in $(seq 1 "$(($2 * 10))"); do
        rss="$(awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)"
        [ "${rss:-0}" -gt "$peak" ] && peak="$rss"
        sleep 0.1
    done
    echo "$peak"
}

# good_client NAME: the good client for `seconds`, its summary in $work/NAME.json and the
# server's peak memory meanwhile in $work/NAME.rss.
good_client() {
    rss_peak_kb "$AIOCR_PID" "$seconds" >"$work/$1.rss" &
    local sampler=$!
    "$LOADGEN_BIN" "http://127.0.0.1:$port" --user "demo:$demo" --json --no-live \
        --mix point=1,upload=1 --images "$corpus" -R "$rate" -c 8 -d "${seconds}s" \
        >"$work/$1.json"
    wait "$sampler"
}

p50='["latency_ms"]["corrected"]["p50"]'
p99='["latency_ms"]["corrected"]["p99"]'
# compare NAME BASELINE FIELD: "base -> attack (ratio x)" of a loadgen summary field.
compare() {
    local base attack
    base="$(json_field "$work/$2.json" "$3")"
    attack="$(json_field "$work/$1.json" "$3")"
    echo "$base -> $attack ($(ratio "$attack" "$base")x)"
}

# report NAME BASELINE ATTACKER_SUMMARY: one row of the table.
report() {
    local rss_attack rss_base answered
    rss_attack="$(cat "$work/$1.rss")"
    rss_base="$(cat "$work/$2.rss")"
    answered="$(json_field "$work/$1.json" "['ok']") / $(json_field "$work/$1.json" "['requests']")"
    echo "| $1 | $(compare "$1" "$2" "$p50") | $(compare "$1" "$2" "$p99") | $answered | $((rss_base / 1024)) -> $((rss_attack / 1024)) (+$(((rss_attack - rss_base) / 1024))) | $3 |"
}

# attack NAME ATTACKER_ARGS...: a fresh server; the good client alone (NAME-base), then
# again while bench/attack_clients.py ATTACKER_ARGS runs (NAME); the server's refusal
# counters after it in $work/NAME.refusals.
attack() {
    local name="$1" data="$work/data-$1"
    shift
    start_aiocr "$port" "$data" --shards 2
    demo="$(aiocr_password "$data" demo)"
    admin_token="$(aiocr_token "$port" admin "$(aiocr_password "$data" admin)")"
    aiocr_grant "$port" "$admin_token" demo 100000000
    good_client "$name-warmup" >/dev/null
    good_client "$name-base"
    python3 bench/attack_clients.py "$@" >"$work/$name.attacker" &
    attacker_pid=$!
    sleep 3 # let the attackers open their connections
    good_client "$name"
    wait "$attacker_pid"
    attacker_pid=""
    curl -sf "http://127.0.0.1:$port/metrics" |
        grep -E '^aiocr_(connections_refused|requests_refused_before_body|bodies_refused_busy)' |
        sed -E 's/\{[^}]*\}//' | awk '{sum[$1] += $2} END {for (k in sum) printf "%s=%d ", k, sum[k]}' \
            >"$work/$name.refusals"
    stop_aiocr
}

stalled_sources=(127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7 127.0.0.8 127.0.0.9)
per_address_limit=1024
attack stalled stalled "$port" "$stalled" "$((seconds + 4))" "${stalled_sources[@]}"
attack idle idle "$port" "$per_address_limit" "$((seconds + 4))" 127.0.0.2

echo "## attacks (good client: point + async upload at $rate/s, 8 connections, ${seconds} s each)"
echo
echo "| attack | good p50 ms (ratio) | good p99 ms (ratio) | good answered ok | server RSS MB | attacker |"
echo "|---|---|---|---|---|---|"
report stalled stalled-base "$(cat "$work/stalled.attacker")"
report idle idle-base "$(cat "$work/idle.attacker")"
echo
for name in stalled idle; do
    echo "server refusals during $name: $(cat "$work/$name.refusals")"
done
echo

for script in bench/login_flood.sh bench/disk_full.sh; do
    if [ -x "$script" ]; then
        echo "## $script"
        "$script"
        echo
    fi
done

echo "## kill -9 loop ($kill_rounds rounds under uploads and polls)"
kill_data="$work/kill"
start_aiocr "$port" "$kill_data" --shards 2
demo="$(aiocr_password "$kill_data" demo)"
admin_token="$(aiocr_token "$port" admin "$(aiocr_password "$kill_data" admin)")"
aiocr_grant "$port" "$admin_token" demo 100000000
demo_token="$(aiocr_token "$port" demo "$demo")"
for round in $(seq 1 "$kill_rounds"); do
    if [ "$round" -gt 1 ]; then
        "$AIOCR_BIN" serve --listen "127.0.0.1:$port" --data "$kill_data" \
            >>"$kill_data.out" 2>>"$kill_data.err" &
        AIOCR_PID=$!
        for _ in $(seq 1 100); do
            curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
            sleep 0.1
        done
    fi
    # A copy made while the server runs, before this round's uploads: a backup to restore.
    [ "$round" -eq 2 ] && cp -a "$kill_data" "$work/kill-early"
    python3 bench/attack_clients.py uploads "$port" "$demo_token" "$image" "$work/acks" 3 8 \
        >/dev/null &
    attacker_pid=$!
    sleep "$(python3 -c 'import random; print(round(random.uniform(0.5, 2.5), 2))')"
    kill -9 "$AIOCR_PID"
    wait "$AIOCR_PID" 2>/dev/null || true
    AIOCR_PID=""
    wait "$attacker_pid"
    attacker_pid=""
done
start_aiocr "$port" "$kill_data"
echo "after $kill_rounds kills: $(python3 bench/attack_clients.py check "$port" "$demo_token" "$work/acks")"
stop_aiocr
echo "ledger verify: $("$AIOCR_BIN" ledger verify --data "$kill_data" 2>&1 | tail -1)" \
    "(the intact directory the damage cases below start from)"
echo

echo "## shard-directory damage (refused at start? reported by verify?)"
echo
echo "| case | serve | ledger verify |"
echo "|---|---|---|"
short() { sed -E "s#$work/case/?##g; s#^aiocr serve: opening ##; s#damaged data directory: ##" | cut -c1-150; }
damage_case() { # NAME COMMAND: COMMAND damages a copy of the killed server's data directory
    local name="$1" command="$2" case_dir="$work/case"
    rm -rf "$case_dir"
    cp -a "$kill_data" "$case_dir"
    (cd "$case_dir" && eval "$command")
    local served="" verified serve_pid
    "$AIOCR_BIN" serve --listen "127.0.0.1:0" --data "$case_dir" >"$work/case.out" 2>&1 &
    serve_pid=$!
    for _ in $(seq 1 200); do
        if grep -q "listening on" "$work/case.out"; then
            served="STARTED"
            break
        fi
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.1
    done
    stop_pid "$serve_pid"
    if [ -z "$served" ]; then
        served="refused: $(grep -v warning "$work/case.out" | grep -m1 -E '^aiocr' | short || true)"
    fi
    if "$AIOCR_BIN" ledger verify --data "$case_dir" >"$work/verify.out" 2>&1; then
        verified="clean: $(tail -1 "$work/verify.out")"
    else
        verified="exit $?: $(grep -m1 -iE 'missing|not|recreated|belongs|holds|ends' "$work/verify.out" | short || true)"
    fi
    echo "| $name | $served | $verified |"
}
damage_case "shard-1 deleted" 'rm -rf shard-1'
damage_case "shard-1 recreated empty" 'rm -rf shard-1 && mkdir shard-1'
# sled rebuilds its state from its log when its snapshot files are gone: nothing is lost, so
# this one must start and verify clean with the intact directory's counts.
damage_case "sled snapshots deleted (both shards)" 'rm -f shard-*/snap.*'
damage_case "shard-0 and shard-1 swapped" 'mv shard-0 x && mv shard-1 shard-0 && mv x shard-1'
damage_case "shard-1 from another data directory" "rm -rf shard-1 && cp -a '$work/data-stalled/shard-1' shard-1"
damage_case "older copies of both shards (a restored backup)" "rm -rf shard-0 shard-1 && cp -a '$work/kill-early/shard-0' '$work/kill-early/shard-1' ."
