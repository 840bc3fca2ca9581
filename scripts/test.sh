#!/usr/bin/env bash
# Runs every test of the project on this machine: sets up what is missing first (packages,
# models, ONNX Runtime, release build: see setup.sh), then the Rust test suites of the whole
# workspace against the real models and real servers, then shellcheck on the operator scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"
cargo test --release --workspace
shopt -s nullglob
shellcheck scripts/*.sh .ci/run tuning/*.sh bench/*.sh
echo "scripts/test.sh: all tests passed"
