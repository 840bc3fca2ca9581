#!/usr/bin/env bash
# Sets up this machine (see setup.sh) and runs the server on its embedded default
# configuration. Extra arguments go to `aiocr serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
exec target/release/aiocr serve "$@"
