#!/usr/bin/env bash
# GET /v2/user/point on `aiocr serve --shards 1` (JWT checked, balance read from sled) against
# nginx (Debian package, 1 worker, a static JSON answer of the same size) on this machine, with
# the same load generator settings in the same run. Both servers run on CPU 0, wrk on CPU 1.
# Prints both requests/s and the ratio (goal: aiocr >= 80% of nginx).
# The two are measured in alternating rounds and the medians compared, so that load from other
# processes on the machine hits both alike.
#
# Usage: bench/point_vs_nginx.sh [duration_s=5] [connections=64] [rounds=5]
# Needs: nginx, wrk, a release build (cargo build --release; AIOCR_BIN=path measures another
# build, e.g. one without vendor/glommio's patch).
# POINT_TLS=1 (what bench/point_tls_vs_nginx.sh sets) measures both servers over TLS instead:
# one certificate (EC P-256, made here), TLS 1.3, the cipher suite aiocr (rustls) negotiates
# with OpenSSL's client, which nginx is then restricted to; wrk keeps its connections, so the
# rounds measure records, not handshakes.
set -euo pipefail
cd "$(dirname "$0")/.."

duration_s="${1:-5}"
connections="${2:-64}"
rounds="${3:-5}"
aiocr_bin="${AIOCR_BIN:-target/release/aiocr}"
nginx_port=18481
aiocr_port=18482
aiocr_tls_port=18483
server_cpu=0
wrk_cpu=1
tls="${POINT_TLS:-0}"

for tool in nginx wrk taskset openssl; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
[ -x "$aiocr_bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }

work_dir="$(mktemp -d /tmp/aiocr-bench.XXXXXX)"
# shellcheck source=bench/lib.sh
source bench/lib.sh
NGINX_PID=""
cleanup() {
    stop_aiocr
    stop_pid "$NGINX_PID"
    rm -rf "$work_dir"
}
trap cleanup EXIT

answer='{"code":0,"msg":"ok","data":{"points":1000,"reserved":0}}'
# One shard on CPU 0 (the executor pins itself there); demo user created on first start.
# Logins go to the plain port; with POINT_TLS=1 the measured requests go to the TLS one.
aiocr_args=(--shards 1)
scheme=http
aiocr_bench_port="$aiocr_port"
if [ "$tls" = 1 ]; then
    make_certificate "$work_dir/tls"
    aiocr_args+=(--set "tls_listen=127.0.0.1:$aiocr_tls_port"
        --set "tls_cert=$work_dir/tls/cert.pem" --set "tls_key=$work_dir/tls/key.pem")
    scheme=https
    aiocr_bench_port="$aiocr_tls_port"
fi
AIOCR_BIN="$aiocr_bin" start_aiocr "$aiocr_port" "$work_dir/data" "${aiocr_args[@]}"
aiocr_pid="$AIOCR_PID"
token="$(aiocr_token "$aiocr_port" demo "$(aiocr_password "$work_dir/data" demo)")"
aiocr_url="$scheme://127.0.0.1:$aiocr_bench_port/v2/user/point"
nginx_url="$scheme://127.0.0.1:$nginx_port/v2/user/point"
curl -sfk -H "Authorization: Bearer $token" "$aiocr_url" >/dev/null

if [ "$tls" = 1 ]; then
    read -r protocol suite < <(tls_suite "$aiocr_tls_port")
    [ "$protocol" = TLSv1.3 ] || { echo "aiocr negotiated $protocol, not TLSv1.3" >&2; exit 1; }
    start_nginx "$nginx_port" "$work_dir/nginx" "$answer" "$server_cpu" \
        "$work_dir/tls/cert.pem" "$work_dir/tls/key.pem" "$suite"
    nginx_suite="$(tls_suite "$nginx_port")"
    [ "$nginx_suite" = "$protocol $suite" ] ||
        { echo "nginx negotiated $nginx_suite, aiocr $protocol $suite" >&2; exit 1; }
    echo "both servers: $protocol $suite, $(openssl x509 -in "$work_dir/tls/cert.pem" -noout -text |
        sed -nE 's/^ *Public Key Algorithm: *//p') certificate"
else
    start_nginx "$nginx_port" "$work_dir/nginx" "$answer" "$server_cpu"
fi
nginx_pid="$NGINX_PID"

cpu_ticks() { # pid -> user+system clock ticks of the whole process so far
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

run_wrk() { # url pid -> "requests/s requests-per-CPU-second" of that server process
    local before after output requests rps
    before="$(cpu_ticks "$2")"
    output="$(taskset -c "$wrk_cpu" wrk -t1 -c"$connections" -d"${duration_s}s" \
        -H "Authorization: Bearer $token" "$1")"
    after="$(cpu_ticks "$2")"
    echo "$output" >>"$work_dir/wrk.log"
    requests="$(echo "$output" | sed -nE 's/^ *([0-9]+) requests in .*/\1/p')"
    rps="$(echo "$output" | sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p')"
    awk -v r="$requests" -v rps="$rps" -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%s %.0f\n", rps, (t > 0) ? r * hz / t : 0 }'
}

# Warm both up, then measure each (same settings, same run).
taskset -c "$wrk_cpu" wrk -t1 -c"$connections" -d2s "$nginx_url" >/dev/null
taskset -c "$wrk_cpu" wrk -t1 -c"$connections" -d2s -H "Authorization: Bearer $token" \
    "$aiocr_url" >/dev/null
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
: >"$work_dir/nginx.rps"
: >"$work_dir/aiocr.rps"
nginx_worker="$(pgrep -P "$nginx_pid" | head -1)"
for round in $(seq 1 "$rounds"); do
    read -r nginx_round nginx_cpu_round < <(run_wrk "$nginx_url" "$nginx_worker")
    read -r aiocr_round aiocr_cpu_round < <(run_wrk "$aiocr_url" "$aiocr_pid")
    echo "$nginx_round $nginx_cpu_round" >>"$work_dir/nginx.rps"
    echo "$aiocr_round $aiocr_cpu_round" >>"$work_dir/aiocr.rps"
    echo "round $round: nginx $nginx_round requests/s ($nginx_cpu_round per CPU-second)," \
        "aiocr $aiocr_round requests/s ($aiocr_cpu_round per CPU-second)"
done
column_median() { awk -v c="$1" '{ print $c }' "$2" | median; }
nginx_rps="$(column_median 1 "$work_dir/nginx.rps")"
aiocr_rps="$(column_median 1 "$work_dir/aiocr.rps")"
nginx_per_cpu="$(column_median 2 "$work_dir/nginx.rps")"
aiocr_per_cpu="$(column_median 2 "$work_dir/aiocr.rps")"
percent() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.1f", 100 * a / n }'; }
echo "wrk -t1 -c$connections -d${duration_s}s x $rounds alternating rounds, servers on CPU $server_cpu, wrk on CPU $wrk_cpu, $scheme"
echo "nginx (1 worker, static answer):       median $nginx_rps requests/s, $nginx_per_cpu requests per CPU-second"
echo "aiocr --shards 1 (JWT + sled balance): median $aiocr_rps requests/s, $aiocr_per_cpu requests per CPU-second"
echo "aiocr / nginx: $(percent "$aiocr_rps" "$nginx_rps") % of requests/s," \
    "$(percent "$aiocr_per_cpu" "$nginx_per_cpu") % of requests per CPU-second"
