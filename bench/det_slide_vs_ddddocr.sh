#!/usr/bin/env bash
# Detection images/s and slide pairs/s: aiocr (`aiocr det --bench`, `aiocr slide --bench`)
# against ddddocr 1.6.1 in Python with its defaults (one process; ONNX Runtime's default
# threads), on the same machine in the same run, over the same fixtures
# (tests/fixtures/ddddocr-more: 120 click captchas, 120 slide pairs of three kinds).
# ddddocr comes from PyPI into bench/.venv (the same virtualenv as bench/compare.sh).
# ROUNDS rounds alternate the sides (Python, then aiocr on every core and on one thread), so
# that a change in the machine's load hits both; the table has each figure's median.
# Usage: bench/det_slide_vs_ddddocr.sh [SECONDS [ROUNDS]]   (default 5 s per run, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

seconds="${1:-5}"
rounds="${2:-3}"
fixtures="$PWD/tests/fixtures/ddddocr-more"
venv="bench/.venv"
export AIOCR_MODEL_DIR="${AIOCR_MODEL_DIR:-$PWD/models}"

if ! "$venv/bin/python" -c "import ddddocr, cv2" 2>/dev/null; then
    echo "det_slide: installing ddddocr (and the compare.sh peer's packages) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r bench/peer/requirements.txt
fi

# aiocr_rate KIND FIELD ARGS...: the FIELD ("images/s" or "pairs/s") line of a bench run.
aiocr_rate() {
    local kind="$1" field="$2"
    shift 2
    "$AIOCR_BIN" "$kind" --bench --seconds "$seconds" "$@" | sed -nE "s|^$field: ([0-9.]+)|\1|p"
}

# median VALUES...: the median of the numbers given.
median() {
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

py_det=() py_slide=() det_all=() det_one=() slide_all=() slide_one=()
check=""
for round in $(seq 1 "$rounds"); do
    echo "det_slide: round $round of $rounds: ddddocr in Python, then aiocr (${seconds} s each)" >&2
    out="$("$venv/bin/python" bench/peer/ddddocr_det_slide.py "$fixtures" "$seconds" $check)"
    check="--no-check" # the first round compared ddddocr's answers with the manifests
    py_det+=("$(echo "$out" | sed -nE 's/^det_images_per_s ([0-9.]+)/\1/p')")
    py_slide+=("$(echo "$out" | sed -nE 's/^slide_pairs_per_s ([0-9.]+)/\1/p')")
    det_all+=("$(aiocr_rate det images/s "$fixtures/det")")
    det_one+=("$(aiocr_rate det images/s --threads 1 "$fixtures/det")")
    slide_all+=("$(aiocr_rate slide pairs/s "$fixtures/slide")")
    slide_one+=("$(aiocr_rate slide pairs/s --threads 1 "$fixtures/slide")")
done

py_det_m="$(median "${py_det[@]}")"
py_slide_m="$(median "${py_slide[@]}")"
row() { # row FIGURE AIOCR_VALUES_NAME PYTHON_MEDIAN
    local -n values="$2"
    local m
    m="$(median "${values[@]}")"
    echo "| $1 | $m | $3 | $(ratio "$m" "$3") |"
}
echo "| figure ($(nproc) cores, median of $rounds rounds of ${seconds} s) | aiocr | ddddocr 1.6.1 in Python | ratio |"
echo "|---|---|---|---|"
row "detection images/s, aiocr on every core" det_all "$py_det_m"
row "detection images/s, aiocr on one thread" det_one "$py_det_m"
row "slide pairs/s, aiocr on every core" slide_all "$py_slide_m"
row "slide pairs/s, aiocr on one thread" slide_one "$py_slide_m"
echo "(load average during the run: $(cut -d' ' -f1-3 /proc/loadavg))"
