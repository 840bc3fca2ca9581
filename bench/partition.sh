#!/usr/bin/env bash
# The cluster under partitions, pauses, clock steps and a NATS that loses what it
# acknowledged (docs/cluster.md, "Partitions"). Network namespaces of its own, joined by veth
# pairs to a bridge in a hub namespace (addresses 10.77.0.0/24, inside them only): three
# nats-servers clustered (nats_replicas=3: R3 job stream and buckets), two nodes (A:
# recognition_split=remote, B: overflow), two workers, and a client namespace that runs
# bench/partition_client.py. Each round runs mixed load (async and sync uploads, polls,
# reports, user-a's uploads and logins through node B, the same new usernames created on
# both nodes at once) while one fault is on from a quarter to three quarters of the round:
#   cut-node      node A cut from every nats-server (nft drop in its namespace)
#   cut-worker    worker 1 cut from every nats-server
#   cut-minority  nats-3 cut from nats-1 and nats-2 (its clients stay on it)
#   cut-nodes     node A and node B on two sides: A reaches only nats-1, B only nats-2 and
#                 nats-3, and nats-1 is cut from them (nodes talk only through NATS)
#   lossy         20% of node A's and worker 1's packets dropped both ways (nft), and
#                 their links delayed (tc netem delay; where the kernel has no netem, a rate
#                 cap of 2 Mbit/s with a deep queue: delay by queueing)
#   pause         SIGSTOP of nats-2, worker 2 and node B, SIGCONT at the heal
#   clock         node A's wall clock 1 h ahead, then (half-way) 1 h behind, then right
#                 (libfaketime's timestamp file; its monotonic clock untouched)
#   store-loss    every nats-server killed and its store thrown away, then started empty
#   corrupt       nats-3 killed, its stream files overwritten with noise, started again
# After each heal the client waits (at most remote_timeout_ms + 15 s) for every acknowledged
# upload to end and checks the balances; then /v2/servers must list both nodes on both, the
# usernames must be on one node each, and both nodes are stopped (SIGTERM), their ledgers
# verified (`aiocr ledger verify`) and started again. One line per round, then a total:
# acknowledged, lost, double-charged, stuck.
# Needs root (ip netns, nft, tc). Installs what it needs and the suite does not (nftables,
# faketime) with apt-get when missing. Uses nats-server from PATH (NATS_SERVER to override).
# PARTITION_FAULTS="clock pause" plays only those faults, in turn (to loop one of them).
# Usage: bench/partition.sh [rounds=9] [seconds=24]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-9}"
seconds="${2:-24}"
AIOCR_BIN="$PWD/${AIOCR_BIN:-target/release/aiocr}"
NATS_SERVER="${NATS_SERVER:-nats-server}"
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
remote_timeout_ms=15000
settle_s=$((remote_timeout_ms / 1000 + 15))
faults=(cut-node cut-worker cut-minority cut-nodes lossy pause clock store-loss corrupt)
[ -z "${PARTITION_FAULTS:-}" ] || read -r -a faults <<<"$PARTITION_FAULTS"

for tool in nft:nftables faketime:faketime; do
    command -v "${tool%%:*}" >/dev/null || apt-get install -y -q "${tool##*:}" >/dev/null
done
faketime_lib="$(dpkg -L libfaketime | grep 'libfaketimeMT.so.1$' | head -1)"
[ -x "$AIOCR_BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }

work="$(mktemp -d /tmp/aiocr-partition.XXXXXX)"
prefix="ap$$"
declare -A pid addr mark
addr=([n1]=10.77.0.11 [n2]=10.77.0.12 [n3]=10.77.0.13 [a]=10.77.0.21 [b]=10.77.0.22
    [w1]=10.77.0.31 [w2]=10.77.0.32 [c]=10.77.0.41)
members=(n1 n2 n3 a b w1 w2 c)
nats_ips=("${addr[n1]}" "${addr[n2]}" "${addr[n3]}")
nats_url="nats://${addr[n1]}:4222,nats://${addr[n2]}:4222,nats://${addr[n3]}:4222"

ns() { echo "$prefix-$1"; }
# in_ns WHO COMMAND...: COMMAND in WHO's network namespace. The processes the rounds signal
# are started with `nsenter --net=...` directly and `&` (nsenter execs them, so $! is their
# PID; `ip netns exec` and a backgrounded shell function would put another process between).
in_ns() { local who="$1"; shift; nsenter --net="/run/netns/$(ns "$who")" "$@"; }

cleanup() {
    for who in "${!pid[@]}"; do
        kill -CONT "${pid[$who]}" 2>/dev/null || true
        kill -9 "${pid[$who]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    for who in "${members[@]}" hub; do ip netns del "$(ns "$who")" 2>/dev/null || true; done
    [ -n "${PARTITION_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# The network: a bridge in the hub namespace, one veth pair per member.
ip netns add "$(ns hub)"
in_ns hub ip link add br0 type bridge
in_ns hub ip link set br0 up
for who in "${members[@]}"; do
    ip netns add "$(ns "$who")"
    ip link add "v$prefix$who" type veth peer name eth0 netns "$(ns "$who")"
    ip link set "v$prefix$who" netns "$(ns hub)"
    in_ns hub ip link set "v$prefix$who" master br0 up
    in_ns "$who" ip addr add "${addr[$who]}/24" dev eth0
    in_ns "$who" ip link set eth0 up
    in_ns "$who" ip link set lo up
    in_ns "$who" nft add table inet fault
    in_ns "$who" nft add chain inet fault in '{ type filter hook input priority 0; }'
    in_ns "$who" nft add chain inet fault out '{ type filter hook output priority 0; }'
done

# cut_off WHO IP...: WHO exchanges no packet with those addresses until heal.
cut_off() {
    local who="$1"; shift
    for ip in "$@"; do
        in_ns "$who" nft add rule inet fault in ip saddr "$ip" drop
        in_ns "$who" nft add rule inet fault out ip daddr "$ip" drop
    done
}
# lossy WHO PERCENT: drops that share of WHO's packets both ways, and delays its link.
lossy() {
    in_ns "$1" nft add rule inet fault in numgen random mod 100 \< "$2" drop
    in_ns "$1" nft add rule inet fault out numgen random mod 100 \< "$2" drop
    if ! in_ns "$1" tc qdisc add dev eth0 root netem delay 100ms 50ms 2>/dev/null; then
        in_ns "$1" tc qdisc add dev eth0 root handle 1: htb default 10
        in_ns "$1" tc class add dev eth0 parent 1: classid 1:10 htb rate 2mbit
    fi
}
heal_network() {
    for who in "${members[@]}"; do
        in_ns "$who" nft flush chain inet fault in
        in_ns "$who" nft flush chain inet fault out
        in_ns "$who" tc qdisc del dev eth0 root 2>/dev/null || true
    done
}

start_nats() {
    local who="$1" n="${1#n}"
    mkdir -p "$work/$who"
    cat >"$work/$who.conf" <<EOF
server_name: nats-$n
listen: ${addr[$who]}:4222
max_payload: 2MB
write_deadline: "5s"
jetstream { store_dir: "$work/$who" }
cluster {
  name: aiocr
  listen: ${addr[$who]}:6222
  routes: [nats-route://${addr[n1]}:6222, nats-route://${addr[n2]}:6222, nats-route://${addr[n3]}:6222]
}
EOF
    nsenter --net="/run/netns/$(ns "$who")" "$NATS_SERVER" -c "$work/$who.conf" >>"$work/$who.log" 2>&1 &
    pid[$who]=$!
}

cluster_settings=(--set "nats_url=$nats_url" --set nats_replicas=3 --set recognition_cores=0
    --set recognition_wide_threads=1 --set "remote_timeout_ms=$remote_timeout_ms"
    --set remote_ack_wait_ms=3000 --set heartbeat_ms=300 --set node_ttl_ms=3000
    --set nats_reconnect_max_ms=500 --set nats_request_timeout_ms=2000)

# start_node WHO NODE_ID SPLIT: serve in WHO's namespace, waits until it listens.
start_node() {
    local who="$1" id="$2" split="$3" clock=()
    [ "$who" = a ] && clock=(env LD_PRELOAD="$faketime_lib" FAKETIME_TIMESTAMP_FILE="$work/clock"
        FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1)
    : >"$work/$who.out"
    touch "$work/$who.err"
    mark[$who]="$(wc -l <"$work/$who.err")"
    nsenter --net="/run/netns/$(ns "$who")" "${clock[@]}" "$AIOCR_BIN" serve --listen "${addr[$who]}:8080" --shards 1 \
        --data "$work/data-$who" "${cluster_settings[@]}" --set "node_id=$id" \
        --set "recognition_split=$split" --set cache_entries=0 --set drain_timeout_ms=3000 \
        --set rate_limit_per_sec=100000 --set rate_limit_burst=100000 \
        --set "public_url=http://${addr[$who]}:8080" >"$work/$who.out" 2>>"$work/$who.err" &
    pid[$who]=$!
    for _ in $(seq 1 600); do
        grep -q "listening on" "$work/$who.out" && return 0
        kill -0 "${pid[$who]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "node $who did not start:" >&2
    tail -5 "$work/$who.err" >&2
    exit 1
}

start_worker() {
    nsenter --net="/run/netns/$(ns "$1")" "$AIOCR_BIN" worker --name "$1" "${cluster_settings[@]}" \
        >"$work/$1.out" 2>>"$work/$1.err" &
    pid[$1]=$!
}

# stop_node WHO: SIGTERM; the ledger must verify once it exited (at most 60 s).
stop_node() {
    local who="$1"
    kill -TERM "${pid[$who]}"
    for _ in $(seq 1 600); do kill -0 "${pid[$who]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${pid[$who]}" 2>/dev/null; then
        echo "node $who did not stop within 60 s" >&2
        return 1
    fi
    wait "${pid[$who]}" || { echo "node $who exited with $?" >&2; return 1; }
    "$AIOCR_BIN" ledger verify --data "$work/data-$who" >"$work/verify-$who" 2>&1 || {
        cat "$work/verify-$who" >&2
        return 1
    }
}

# servers_converged: both nodes list nodes 1 and 2 in /v2/servers (waits up to 30 s).
servers_converged() {
    for _ in $(seq 1 60); do
        local a b
        a="$(in_ns c curl -s -m 5 "http://${addr[a]}:8080/v2/servers" | grep -o '"id":"[0-9]*"' | sort | tr -d '\n' || true)"
        b="$(in_ns c curl -s -m 5 "http://${addr[b]}:8080/v2/servers" | grep -o '"id":"[0-9]*"' | sort | tr -d '\n' || true)"
        [ "$a" = '"id":"1""id":"2"' ] && [ "$b" = "$a" ] && return 0
        sleep 0.5
    done
    return 1
}

wait_ready() { # WHO: the node's NATS side is ready since its last start (or 60 s)
    for _ in $(seq 1 600); do
        tail -n "+$((mark[$1] + 1))" "$work/$1.err" | grep -q "nats: ready" && return 0
        sleep 0.1
    done
    return 1
}

echo "+0" >"$work/clock"
for who in n1 n2 n3; do start_nats "$who"; done
sleep 2
start_node a 1 remote
wait_ready a
in_ns b "$AIOCR_BIN" user add --role admin --username admin-b --password password-admin-b \
    --shards 1 --node-id 2 --nats "$nats_url" --data "$work/data-b" >/dev/null
start_node b 2 overflow
for who in w1 w2; do start_worker "$who"; done
wait_ready b
admin_a="$(sed -nE 's/.* admin user +admin \/ ([^ ]+).*/\1/p' "$work/a.out")"
in_ns c python3 bench/partition_client.py setup "$work/state" "http://${addr[a]}:8080" \
    "http://${addr[b]}:8080" "$admin_a" admin-b password-admin-b

fault_on() {
    case "$1" in
        cut-node) cut_off a "${nats_ips[@]}" ;;
        cut-worker) cut_off w1 "${nats_ips[@]}" ;;
        cut-minority) cut_off n3 "${addr[n1]}" "${addr[n2]}" ;;
        cut-nodes) cut_off a "${addr[n2]}" "${addr[n3]}"; cut_off b "${addr[n1]}"
            cut_off n1 "${addr[n2]}" "${addr[n3]}" ;;
        lossy) lossy a 20; lossy w1 20 ;;
        pause) for who in n2 w2 b; do kill -STOP "${pid[$who]}"; done ;;
        clock) echo "+3600" >"$work/clock" ;;
        store-loss) for who in n1 n2 n3; do kill -9 "${pid[$who]}"; wait "${pid[$who]}" 2>/dev/null || true
                rm -rf "${work:?}/$who"; done
            for who in n1 n2 n3; do start_nats "$who"; done ;;
        corrupt) kill -9 "${pid[n3]}"; wait "${pid[n3]}" 2>/dev/null || true
            find "$work/n3" -name '*.blk' | while read -r block; do
                size="$(stat -c %s "$block")"
                # An if, not `&&`: a small last file must not fail the pipeline (set -e).
                if [ "$size" -gt 64 ]; then
                    dd if=/dev/urandom of="$block" bs=1 seek=$((size / 3)) \
                        count=$((size / 3)) conv=notrunc status=none
                fi
            done
            start_nats n3 ;;
    esac
}
fault_middle() { # the second half of a two-step fault
    case "$1" in clock) echo "-3600" >"$work/clock" ;; esac
}
fault_off() {
    heal_network
    case "$1" in
        pause) for who in n2 w2 b; do kill -CONT "${pid[$who]}"; done ;;
        clock) echo "+0" >"$work/clock" ;;
    esac
}

total_ack=0 total_lost=0 total_double=0 total_stuck=0 total_bad=0
quarter="$(awk "BEGIN { print $seconds / 4 }")"
for round in $(seq 1 "$rounds"); do
    fault="${faults[$(((round - 1) % ${#faults[@]}))]}"
    in_ns c python3 bench/partition_client.py round "$work/state" "$round" "$seconds" "$settle_s" \
        "$PWD/tests/fixtures/captcha/0001.png" >"$work/round.json" 2>"$work/round.err" &
    client=$!
    sleep "$quarter"
    fault_on "$fault"
    sleep "$quarter"
    fault_middle "$fault"
    sleep "$quarter"
    fault_off "$fault"
    wait "$client" || { cat "$work/round.err" >&2; exit 1; }
    verdict="$(cat "$work/round.json")"
    servers=ok
    servers_converged || servers=diverged
    stops=ok
    for who in a b; do stop_node "$who" || stops=failed; done
    start_node a 1 remote
    start_node b 2 overflow
    wait_ready a && wait_ready b || stops="$stops,not-ready"
    read -r ack lost double stuck names <<<"$(python3 -c '
import json, sys
v = json.loads(sys.argv[1])
print(v["acknowledged"], v["lost"], v["double_charged"], v["stuck"], len(v["names"]))' "$verdict")"
    bad="$names"
    [ "$servers" = ok ] || bad=$((bad + 1))
    [ "$stops" = ok ] || bad=$((bad + 1))
    total_ack=$((total_ack + ack)) total_lost=$((total_lost + lost))
    total_double=$((total_double + double)) total_stuck=$((total_stuck + stuck))
    total_bad=$((total_bad + bad))
    printf 'round %2d %-12s %s servers=%s stop+verify=%s\n' "$round" "$fault" "$verdict" "$servers" "$stops"
done
printf 'partition: %d rounds of %s s (load %s): acknowledged %d, lost %d, double-charged %d, stuck %d, other failures %d\n' \
    "$rounds" "$seconds" "$(cut -d' ' -f1-3 /proc/loadavg)" "$total_ack" "$total_lost" \
    "$total_double" "$total_stuck" "$total_bad"
[ $((total_lost + total_double + total_stuck + total_bad)) -eq 0 ]
