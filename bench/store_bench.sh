#!/usr/bin/env bash
# Micro-benchmarks of the state layer (src/store, src/auth.rs), printed as ops/s:
#   - reserve+post pairs per second on one shard: no flush, fsync after every pair, and one
#     fsync per 64 pairs (what group commit amortises to under load);
#   - balance reads per second (the store work of GET /v2/user/point);
#   - one batch of 100 cache hits recorded (POST /v2/decode/cached), and its flush, in ms;
#   - JWT HS256 checks per second, with and without the per-shard TokenCache; one argon2id
#     hash+verify in ms.
# They are #[ignore]d unit tests so they share the store's test helpers; release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --lib -- --ignored --nocapture --test-threads=1 _bench 2>&1 | grep -E '_bench |test result'
