#!/usr/bin/env bash
# Accuracy on the captcha package's ImageCaptcha style ("lib"): the stock models against the
# model trained for it (tests/fixtures/trained-lib, scripts/train/), read by `aiocr ocr` with
# the server's own engine. Counts answers equal to the label, case-insensitively, on the
# held-out set (tests/fixtures/trained-lib/held-out, never trained on) and on the "lib" rows of
# tests/fixtures/captcha (made by another generator run).
# Usage: bench/trained_lib.sh   (after cargo build --release; AIOCR_MODEL_DIR as for the server)
set -euo pipefail
cd "$(dirname "$0")/.."
models="$(realpath "${AIOCR_MODEL_DIR:-models}")"
dir="$(mktemp -d /tmp/aiocr-trained-lib.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
# A model directory with the stock models and the trained one as custom model `lib`.
for file in "$models"/*; do ln -s "$file" "$dir/"; done
mkdir "$dir/custom"
cp tests/fixtures/trained-lib/lib.onnx "$dir/custom/lib.onnx"
cp tests/fixtures/trained-lib/charsets.json "$dir/custom/lib.json"

# score SET_NAME MANIFEST IMAGE_DIR: one line per model, "right/total" (label = column 2).
score() {
    local name="$1" manifest="$2" images="$3" files=()
    while IFS=$'\t' read -r file label style _; do
        [[ "$name" == fixtures && "$style" != lib ]] && continue
        files+=("$images/$file")
        printf '%s\t%s\n' "$images/$file" "$label"
    done < <(tail -n +2 "$manifest") > "$dir/labels.tsv"
    for model in old beta lib; do
        AIOCR_MODEL_DIR="$dir" target/release/aiocr ocr --model "$model" "${files[@]}" > "$dir/answers.tsv"
        awk -F'\t' -v set="$name" -v model="$model" '
            NR == FNR { label[$1] = $2; next }
            { total++; if (tolower($2) == label[$1]) right++ }
            END { printf "%-9s model %-4s %3d/%d right (%.1f %%)\n", set, model, right, total, 100 * right / total }
        ' "$dir/labels.tsv" "$dir/answers.tsv"
    done
}
score held-out tests/fixtures/trained-lib/held-out/manifest.tsv tests/fixtures/trained-lib/held-out
score fixtures tests/fixtures/captcha/manifest.tsv tests/fixtures/captcha
