#!/usr/bin/env bash
# Shared pieces of the bench/ scripts: starting `aiocr serve` on a fresh data directory,
# reading the demo/admin passwords it prints on first start, logging in, and reading the
# loadgen's JSON summaries. Source it; it defines functions only.

AIOCR_BIN="${AIOCR_BIN:-target/release/aiocr}"
LOADGEN_BIN="${LOADGEN_BIN:-target/release/aiocr-loadgen}"

# start_aiocr PORT DATA_DIR [serve args...]: starts the server in the background, sets
# AIOCR_PID, waits until it listens (or fails). Its stdout/stderr go to DATA_DIR.out/.err.
start_aiocr() {
    local port="$1" data_dir="$2"
    shift 2
    "$AIOCR_BIN" serve --listen "127.0.0.1:$port" --data "$data_dir" "$@" \
        >"$data_dir.out" 2>"$data_dir.err" &
    AIOCR_PID=$!
    for _ in $(seq 1 300); do
        grep -q "listening on" "$data_dir.out" 2>/dev/null && return 0
        kill -0 "$AIOCR_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "aiocr serve did not start:" >&2
    cat "$data_dir.err" >&2
    # A server still starting (or hung) would hold the port for the next script.
    stop_aiocr
    return 1
}

# stop_pid PID: SIGTERM and wait, if PID is set.
stop_pid() {
    if [ -n "$1" ]; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}

# stop_aiocr: SIGTERM and wait (the server drains, voids what is pending, flushes).
stop_aiocr() {
    stop_pid "${AIOCR_PID:-}"
    AIOCR_PID=""
}

# aiocr_password DATA_DIR USER: the password the first start printed for USER (demo, admin).
aiocr_password() {
    sed -nE "s/.* $2 user +$2 \/ ([^ ]+).*/\1/p" "$1.out"
}

# aiocr_token PORT USER PASSWORD: a JWT.
aiocr_token() {
    curl -sf "http://127.0.0.1:$1/v2/user/login" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$2\",\"password\":\"$3\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/'
}

# aiocr_grant PORT ADMIN_TOKEN USER POINTS: adds points (benchmarks need more than 1000).
aiocr_grant() {
    curl -sf "http://127.0.0.1:$1/v2/admin/points" -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"$3\",\"points\":$4,\"reason\":\"benchmark\"}" >/dev/null
}

# image_corpus DIR: links the fixture images (not the manifest) into DIR, for --images.
image_corpus() {
    mkdir -p "$1"
    local image
    for image in "$PWD"/tests/fixtures/captcha/*.png "$PWD"/tests/fixtures/captcha/*.jpg \
        "$PWD"/tests/fixtures/captcha/*.gif "$PWD"/tests/fixtures/captcha/*.bmp; do
        ln -sf "$image" "$1/"
    done
}

# make_certificate DIR: a self-signed EC P-256 certificate for 127.0.0.1 and localhost,
# DIR/cert.pem and DIR/key.pem (PKCS#8), for the TLS benchmarks.
make_certificate() {
    mkdir -p "$1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# tls_suite PORT: "PROTOCOL SUITE" that OpenSSL's client (wrk's library, default settings)
# negotiates with the TLS server on PORT, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384".
tls_suite() {
    local brief
    brief="$(openssl s_client -connect "127.0.0.1:$1" -brief </dev/null 2>&1)"
    echo "$(echo "$brief" | sed -nE 's/^Protocol version: *//p') $(echo "$brief" | sed -nE 's/^Ciphersuite: *//p')"
}

# start_nginx PORT DIR ANSWER [CPU] [CERT KEY SUITE]: nginx (Debian package) with one worker
# answering ANSWER to every request, in the foreground of a background job (pinned to CPU if
# given); sets NGINX_PID. With CERT, KEY and SUITE it speaks TLS 1.3 only, with that one
# cipher suite.
start_nginx() {
    local port="$1" dir="$2" answer="$3" cpu="${4:-}" cert="${5:-}" key="${6:-}" suite="${7:-}"
    local pin=() ssl="" tls_lines="" scheme=http
    [ -n "$cpu" ] && pin=(taskset -c "$cpu")
    if [ -n "$cert" ]; then
        ssl=" ssl"
        scheme=https
        tls_lines="ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites $suite;"
    fi
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir;
    proxy_temp_path $dir;
    fastcgi_temp_path $dir;
    uwsgi_temp_path $dir;
    scgi_temp_path $dir;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port$ssl;
        $tls_lines
        location / {
            default_type application/json;
            return 200 '$answer';
        }
    }
}
CONF
    "${pin[@]}" nginx -c "$dir/nginx.conf" -p "$dir" &
    # shellcheck disable=SC2034 # read by the scripts that source this file
    NGINX_PID=$!
    for _ in $(seq 1 50); do
        curl -sfk "$scheme://127.0.0.1:$port/" >/dev/null && return 0
        sleep 0.1
    done
    echo "nginx did not start" >&2
    return 1
}

# metric_sum PORT NAME: the sum of every series of metric NAME (bare, or one per label set such
# as each shard's) in the /metrics of the server on PORT; nothing when it has none (or the
# server did not answer).
metric_sum() {
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk -v name="$2" 'index($1, name) == 1 && (length($1) == length(name) ||
            substr($1, length(name) + 1, 1) == "{") { sum += $2; seen = 1 }
            END { if (seen) printf "%.0f\n", sum }'
}

# json_field FILE EXPRESSION: a value from a loadgen --json summary, e.g.
# json_field run.json "['latency_ms']['corrected']['p99']".
json_field() {
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"
}

# ratio A B: A / B with 3 decimals.
ratio() {
    python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.3f}' if b else 'n/a')" "$1" "$2"
}

# thread_cpu PID: one line per thread of PID, "NAME TICKS" (user + system clock ticks so far),
# the name without its trailing numbers (aiocr-recog-0 and aiocr-recog-1 are one group).
thread_cpu() {
    local task name ticks
    for task in /proc/"$1"/task/*; do
        # The name may hold spaces; the fields after its closing parenthesis do not. A thread
        # that ended since the listing has no files left: it is skipped.
        name="$(sed -E 's/[-_ ]?[0-9]+$//' "$task/comm" 2>/dev/null)" || continue
        ticks="$(sed -E 's/.*\) //' "$task/stat" 2>/dev/null | awk '{ print $12 + $13 }')"
        [ -n "$name" ] && [ -n "$ticks" ] && printf '%s %s\n' "$name" "$ticks"
    done
    return 0
}

# thread_cpu_table BEFORE AFTER COUNT WALL_S: markdown rows of where the CPU went between two
# thread_cpu snapshots, per thread group: CPU-seconds, microseconds per operation (COUNT of
# them), share of one core over WALL_S seconds; then the process's total.
thread_cpu_table() {
    python3 - "$@" <<'PY'
import collections, os, sys
def read(path):
    ticks = collections.Counter()
    for line in open(path):
        name, value = line.rsplit(" ", 1)
        ticks[name] += int(value)
    return ticks
before, after = read(sys.argv[1]), read(sys.argv[2])
count, wall_s, hz = int(sys.argv[3]), float(sys.argv[4]), os.sysconf("SC_CLK_TCK")
spent = {name: (after[name] - before.get(name, 0)) / hz for name in after}
print("| threads | CPU s | us per operation | % of one core |")
print("|---|---|---|---|")
for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
    if seconds > 0:
        print(f"| {name} | {seconds:.2f} | {seconds / count * 1e6:.0f} | {seconds / wall_s * 100:.1f} |")
total = sum(spent.values())
print(f"| all | {total:.2f} | {total / count * 1e6:.0f} | {total / wall_s * 100:.1f} |")
PY
}
