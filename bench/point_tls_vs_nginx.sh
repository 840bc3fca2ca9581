#!/usr/bin/env bash
# GET /v2/user/point over TLS: `aiocr serve --shards 1` on its tls_listen port against nginx
# (1 worker, static answer) over TLS, with the same certificate, protocol (TLS 1.3) and cipher
# suite, the same cores split (servers on CPU 0, wrk on CPU 1) and the same alternating rounds
# and medians as bench/point_vs_nginx.sh, which does the measuring (goal: aiocr >= 80% of
# nginx over TLS).
#
# Usage: bench/point_tls_vs_nginx.sh [duration_s=5] [connections=64] [rounds=5]
# Needs: nginx, wrk (built with OpenSSL: https), openssl, a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
POINT_TLS=1 exec bench/point_vs_nginx.sh "$@"
