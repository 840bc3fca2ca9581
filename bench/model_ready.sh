#!/usr/bin/env bash
# How soon a model added over the API answers on both shards under load (bench/model_ready.py
# says what is measured). Usage: bench/model_ready.sh [load_threads=4] [rounds=3]
# Write `uptime` beside the figures: the machine's other work shows in them.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
data_dir="$(mktemp -d /tmp/aiocr-model-ready.XXXXXX)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
trap 'stop_aiocr; rm -rf "$data_dir" "$data_dir.out" "$data_dir.err"' EXIT
start_aiocr "$port" "$data_dir" --shards 2 --model-dir "${AIOCR_MODEL_DIR:-models}" \
    --set rate_limit_per_sec=0
uptime
python3 bench/model_ready.py "$port" "$(aiocr_password "$data_dir" admin)" "${1:-4}" "${2:-3}"
