#!/usr/bin/env bash
# Two builds of aiocr, A and B, measured alternately in one run with the same scripts, so
# that whatever else the machine is doing hits both alike: `point_vs_nginx.sh` (GET
# /v2/user/point against nginx, as a % of nginx) and `decode_vs_model.sh` (sync decodes/s as
# a ratio of the model's limit, and point p99 during decodes). Prints every round and the
# medians per build.
#
# Usage: bench/ab.sh A_BIN B_BIN [rounds=3] [point_seconds=5] [decode_seconds=8]
# Example: cp target/release/aiocr /tmp/aiocr-new; git stash; cargo build --release;
#          bench/ab.sh target/release/aiocr /tmp/aiocr-new
set -euo pipefail
cd "$(dirname "$0")/.."

a_bin="$1"
b_bin="$2"
rounds="${3:-3}"
point_seconds="${4:-5}"
decode_seconds="${5:-8}"
for bin in "$a_bin" "$b_bin"; do
    [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done
results="$(mktemp /tmp/aiocr-ab.XXXXXX)"
trap 'rm -f "$results"' EXIT

measure() { # label bin -> "label point_pct decode_ratio busy_p99_ms"
    local point decode point_pct decode_ratio busy_p99
    point="$(AIOCR_BIN="$2" bench/point_vs_nginx.sh "$point_seconds" 64 3)"
    point_pct="$(echo "$point" | sed -nE 's/^aiocr \/ nginx: ([0-9.]+) % of requests\/s.*/\1/p')"
    decode="$(AIOCR_BIN="$2" bench/decode_vs_model.sh "$decode_seconds" 200)"
    decode_ratio="$(echo "$decode" | sed -nE 's/^\| sync decodes\/s.*\| ([0-9.]+) \|$/\1/p')"
    busy_p99="$(echo "$decode" | sed -nE 's/^\| GET \/v2\/user\/point p99 at [0-9]+\/s during decodes, ms \| ([0-9.]+) .*/\1/p')"
    echo "$1 $point_pct $decode_ratio $busy_p99"
}

for round in $(seq 1 "$rounds"); do
    for label in A B; do
        bin="$a_bin"
        [ "$label" = B ] && bin="$b_bin"
        line="$(measure "$label" "$bin")"
        echo "round $round: $line" >&2
        echo "$line" >>"$results"
    done
done

median_of() { # label column
    awk -v l="$1" -v c="$2" '$1 == l { print $c }' "$results" | sort -n |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "| build | point, % of nginx | sync decodes / model limit | point p99 during decodes, ms |"
echo "|---|---|---|---|"
echo "| A $a_bin | $(median_of A 2) | $(median_of A 3) | $(median_of A 4) |"
echo "| B $b_bin | $(median_of B 2) | $(median_of B 3) | $(median_of B 4) |"
echo "(medians of $rounds alternating rounds)"
