#!/usr/bin/env bash
# aiocr side by side with what users would pick instead, and with the model's limit, in one
# run on this machine:
#   - ddddocr 1.6.1 served the way ddddocr-fastapi serves it (FastAPI + uvicorn, POST /ocr),
#     installed into a virtualenv from PyPI, with 1 and 2 uvicorn workers (its best counts);
#   - sync decodes through aiocr and through the peer at 1, 16 and 64 connections
#     (aiocr-loadgen, the same image corpus, aiocr's answer cache off);
#   - the same request to both at one connection, POST /ocr with ddddocr-fastapi's base64
#     form field, alternating rounds: the p50 ratio;
#   - the model's limit: `aiocr ocr --bench` on every core;
#   - GET /v2/user/point against nginx's static answer (1 worker), same load generator;
#   - the upload path on cache hits (everything but the model).
# Prints one markdown table (figure, aiocr, reference, ratio) and writes a PNG chart of
# latency against throughput (bench/results/latency-throughput.png).
# Usage: bench/compare.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

seconds=10
form_rounds=5
[ "${1:-}" = "--quick" ] && seconds=3 && form_rounds=3
# The image of the one-connection /ocr comparison (150x50 PNG, the corpus's commonest size).
form_image="tests/fixtures/captcha/0001.png"
aiocr_port=18501
peer_port=18502
nginx_port=18503
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
venv="bench/.venv"
results="bench/results"
work="$(mktemp -d /tmp/aiocr-compare.XXXXXX)"
peer_pid=""
NGINX_PID=""
cleanup() {
    stop_aiocr
    stop_pid "$peer_pid"
    stop_pid "$NGINX_PID"
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$results"
corpus="$work/corpus"
image_corpus "$corpus"

if [ ! -x "$venv/bin/uvicorn" ]; then
    echo "compare: installing the peer (ddddocr, fastapi, uvicorn, python-multipart) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r bench/peer/requirements.txt
fi

# loadgen_run NAME URL ARGS...: one closed-loop run, summary kept as $work/NAME.json.
loadgen_run() {
    local name="$1" url="$2"
    shift 2
    "$LOADGEN_BIN" "$url" -d "${seconds}s" --json --no-live "$@" >"$work/$name.json"
}
field() { json_field "$work/$1.json" "$2"; }
rps() { field "$1" "['requests_per_s']"; }
p50() { field "$1" "['latency_ms']['uncorrected']['p50']"; }
p99() { field "$1" "['latency_ms']['uncorrected']['p99']"; }

echo "compare: model limit (aiocr ocr --bench, every core)" >&2
model_limit="$("$AIOCR_BIN" ocr --bench --seconds "$seconds" "$corpus" | sed -nE 's/^images\/s: ([0-9.]+)/\1/p')"

# The floor under any server's p50 on the one-connection comparison: the model alone on that
# image, one run at a time with every core inside it (what the server's wide runner does and
# what the peer's ONNX Runtime does by default), nothing else in the process.
echo "compare: the model alone on $(basename "$form_image"), one run at a time on every core" >&2
mkdir -p "$work/form-image"
ln -s "$PWD/$form_image" "$work/form-image/"
model_alone_ms="$("$AIOCR_BIN" ocr --bench --seconds "$seconds" --threads 1 \
    --intra-threads "$(nproc)" "$work/form-image" | sed -nE 's/^  model +([0-9.]+)$/\1/p')"

echo "compare: aiocr sync decodes" >&2
start_aiocr "$aiocr_port" "$work/data" --set cache_entries=0 --set rate_limit_per_sec=1000000 \
    --set rate_limit_burst=1000000
demo="$(aiocr_password "$work/data" demo)"
aiocr_grant "$aiocr_port" "$(aiocr_token "$aiocr_port" admin "$(aiocr_password "$work/data" admin)")" \
    demo 100000000
for connections in 1 16 64; do
    loadgen_run "aiocr-c$connections" "http://127.0.0.1:$aiocr_port" -s decode-sync \
        -c "$connections" --images "$corpus" --user "demo:$demo"
done
loadgen_run "aiocr-point" "http://127.0.0.1:$aiocr_port" -s point -c 64 --user "demo:$demo"
stop_aiocr

echo "compare: aiocr upload path on cache hits" >&2
start_aiocr "$aiocr_port" "$work/data-cached" --set rate_limit_per_sec=1000000 \
    --set rate_limit_burst=1000000
demo="$(aiocr_password "$work/data-cached" demo)"
aiocr_grant "$aiocr_port" \
    "$(aiocr_token "$aiocr_port" admin "$(aiocr_password "$work/data-cached" admin)")" demo 100000000
# One connection per shard-independent pass warms every shard's cache with every image.
"$LOADGEN_BIN" "http://127.0.0.1:$aiocr_port" -s decode-sync -c 1 -n 960 --images "$corpus" \
    --user "demo:$demo" --json --no-live >/dev/null
loadgen_run "aiocr-cached" "http://127.0.0.1:$aiocr_port" -s decode-sync -c 16 --images "$corpus" \
    --user "demo:$demo"
stop_aiocr

echo "compare: nginx static answer" >&2
start_nginx "$nginx_port" "$work/nginx" '{"code":0,"msg":"ok","data":{"points":1000,"reserved":0}}'
loadgen_run "nginx" "http://127.0.0.1:$nginx_port/v2/user/point" -c 64
stop_pid "$NGINX_PID"
NGINX_PID=""

best_peer_rps=0
for workers in 1 2; do
    echo "compare: peer with $workers uvicorn worker(s)" >&2
    "$venv/bin/uvicorn" ddddocr_fastapi:app --app-dir bench/peer --host 127.0.0.1 \
        --port "$peer_port" --workers "$workers" --log-level warning >"$work/peer.log" 2>&1 &
    peer_pid=$!
    for _ in $(seq 1 600); do
        curl -sf -o /dev/null "http://127.0.0.1:$peer_port/docs" && break
        sleep 0.2
    done
    # Warm every worker up (imports, sessions) before measuring.
    "$LOADGEN_BIN" "http://127.0.0.1:$peer_port/ocr" -s post-image -c 4 -n 40 --images "$corpus" \
        --no-live >/dev/null
    for connections in 1 16 64; do
        loadgen_run "peer-w$workers-c$connections" "http://127.0.0.1:$peer_port/ocr" \
            -s post-image -c "$connections" --images "$corpus" --timeout 60s
        best_peer_rps="$(python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" \
            "$best_peer_rps" "$(rps "peer-w$workers-c$connections")")"
    done
    stop_pid "$peer_pid"
    peer_pid=""
done
# The goal's figure: the very same request to both servers, POST /ocr with the image as
# ddddocr-fastapi's base64 form field `image` (one image, the answers checked equal first),
# at one connection, aiocr (answer cache off) and the peer (1 worker) alternating rounds.
echo "compare: p50 at 1 connection, the same POST /ocr (base64 form), alternating" >&2
python3 -c 'import base64, sys, urllib.parse
image = base64.b64encode(open(sys.argv[1], "rb").read()).decode()
sys.stdout.write("image=" + urllib.parse.quote(image, safe=""))' "$form_image" >"$work/form.txt"
start_aiocr "$aiocr_port" "$work/data-form" --set cache_entries=0 \
    --set rate_limit_per_sec=1000000 --set rate_limit_burst=1000000
demo="$(aiocr_password "$work/data-form" demo)"
aiocr_grant "$aiocr_port" \
    "$(aiocr_token "$aiocr_port" admin "$(aiocr_password "$work/data-form" admin)")" demo 100000000
key="$(curl -sf -X POST "http://127.0.0.1:$aiocr_port/v2/user/apikey" \
    -H "Authorization: Bearer $(aiocr_token "$aiocr_port" demo "$demo")" |
    sed -E 's/.*"api_key":"([^"]+)".*/\1/')"
"$venv/bin/uvicorn" ddddocr_fastapi:app --app-dir bench/peer --host 127.0.0.1 \
    --port "$peer_port" --workers 1 --log-level warning >"$work/peer.log" 2>&1 &
peer_pid=$!
for _ in $(seq 1 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$peer_port/docs" && break
    sleep 0.2
done
form_args=(-m POST --body-file "$work/form.txt" -H "Authorization: Bearer $key"
    -H "Content-Type: application/x-www-form-urlencoded" -c 1)
form_answer() { # URL -> the answer's data, checked to be a success
    curl -sf "$1" -H "Authorization: Bearer $key" --data-binary "@$work/form.txt" \
        -H "Content-Type: application/x-www-form-urlencoded" |
        python3 -c 'import json, sys; a = json.load(sys.stdin); assert a["code"] == 200, a; print(a["data"])'
}
aiocr_says="$(form_answer "http://127.0.0.1:$aiocr_port/ocr")"
peer_says="$(form_answer "http://127.0.0.1:$peer_port/ocr")"
[ "$aiocr_says" = "$peer_says" ] || {
    echo "compare: /ocr answers differ: aiocr '$aiocr_says', peer '$peer_says'" >&2
    exit 1
}
for url in "http://127.0.0.1:$aiocr_port/ocr" "http://127.0.0.1:$peer_port/ocr"; do
    "$LOADGEN_BIN" "$url" "${form_args[@]}" -n 100 --no-live >/dev/null # warm-up
done
for round in $(seq 1 "$form_rounds"); do
    loadgen_run "form-aiocr-$round" "http://127.0.0.1:$aiocr_port/ocr" "${form_args[@]}"
    loadgen_run "form-peer-$round" "http://127.0.0.1:$peer_port/ocr" "${form_args[@]}"
done
stop_aiocr
stop_pid "$peer_pid"
peer_pid=""
median_p50() { # NAME_PREFIX
    for round in $(seq 1 "$form_rounds"); do p50 "$1-$round"; done | sort -n |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
form_aiocr_p50="$(median_p50 form-aiocr)"
form_peer_p50="$(median_p50 form-peer)"

best_aiocr_rps="$(python3 -c "import sys; print(max(map(float, sys.argv[1:])))" \
    "$(rps aiocr-c1)" "$(rps aiocr-c16)" "$(rps aiocr-c64)")"
peer_p50_c1="$(python3 -c "import sys; print(min(map(float, sys.argv[1:])))" \
    "$(p50 peer-w1-c1)" "$(p50 peer-w2-c1)")"

{
    echo "| figure | aiocr | reference | ratio |"
    echo "|---|---|---|---|"
    for connections in 1 16 64; do
        echo "| sync decodes/s, $connections connection(s) | $(rps "aiocr-c$connections") | $(rps "peer-w1-c$connections") (peer, 1 worker); $(rps "peer-w2-c$connections") (2 workers) | $(ratio "$(rps "aiocr-c$connections")" "$(rps "peer-w1-c$connections")") / $(ratio "$(rps "aiocr-c$connections")" "$(rps "peer-w2-c$connections")") |"
    done
    echo "| best sync decodes/s | $best_aiocr_rps | $best_peer_rps (peer's best) | $(ratio "$best_aiocr_rps" "$best_peer_rps") |"
    echo "| p50 ms at 1 connection | $(p50 aiocr-c1) | $peer_p50_c1 (peer's best) | $(ratio "$(p50 aiocr-c1)" "$peer_p50_c1") |"
    echo "| p50 ms at 1 connection, the same POST /ocr (base64 form, $(basename "$form_image")), median of $form_rounds alternating rounds | $form_aiocr_p50 | $form_peer_p50 (peer, 1 worker) | $(ratio "$form_aiocr_p50" "$form_peer_p50") |"
    echo "| the model alone on $(basename "$form_image"), ms (ocr --bench, 1 run at a time on $(nproc) cores): the floor of either p50 | $model_alone_ms | $form_peer_p50 (peer's p50 above) | $(ratio "$model_alone_ms" "$form_peer_p50") |"
    echo "| p99 ms at 16 connections | $(p99 aiocr-c16) | $(p99 peer-w1-c16) (peer, 1 worker) | $(ratio "$(p99 aiocr-c16)" "$(p99 peer-w1-c16)") |"
    echo "| sync decodes/s at 16 vs the model's limit | $(rps aiocr-c16) | $model_limit (ocr --bench, all cores) | $(ratio "$(rps aiocr-c16)" "$model_limit") |"
    echo "| GET /v2/user/point req/s, 64 connections | $(rps aiocr-point) | $(rps nginx) (nginx static, 1 worker) | $(ratio "$(rps aiocr-point)" "$(rps nginx)") |"
    echo "| uploads/s on cache hits (no model), 16 connections | $(rps aiocr-cached) | $model_limit (model's limit) | $(ratio "$(rps aiocr-cached)" "$model_limit") |"
} | tee "$results/compare.md"

"$venv/bin/python" bench/plot.py "$work" "$results/latency-throughput.png"
echo "compare: chart written to $results/latency-throughput.png" >&2
