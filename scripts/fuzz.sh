#!/usr/bin/env bash
# Runs aiocr's cargo-fuzz targets (fuzz/, docs/fuzzing.md) one after another, each for SECONDS
# (default 60), one job and one worker each (the machine's cores are shared), and prints one
# line per target: seconds, executions, corpus size, crashes. Exits 1 if any target found a
# crash; the crashing inputs are then in fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   # no TARGET: every target of `cargo fuzz list`
#   scripts/fuzz.sh merge [TARGET...]       # refresh the committed corpora from the runs
#
# New inputs the fuzzer finds go to fuzz/work/TARGET (not committed); the committed corpus
# fuzz/corpus/TARGET is read, never written, by a run. `merge` replaces the committed corpus's
# libFuzzer-named inputs with the smallest inputs of a set-cover merge of both, within
# FUZZ_CORPUS_KB (default 32) per target; the hand-named seeds stay. Needs the nightly
# toolchain (libFuzzer's instrumentation); cargo-fuzz is installed from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...] | scripts/fuzz.sh merge [TARGET...]" >&2
    exit 2
}

mode=run
seconds=60
if [ "${1:-}" = merge ]; then
    mode=merge
    shift
elif [ $# -gt 0 ]; then
    seconds="$1"
    shift
fi
case "$seconds" in
    '' | *[!0-9]*) usage ;;
esac

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build for every target, before any run: the runs then use the binaries as built, even
# if the sources change meanwhile.
cargo +nightly fuzz build -O
bin_dir="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
# As cargo-fuzz runs its targets.
export ASAN_OPTIONS=detect_odr_violation=0

# One target for $seconds; appends its line to the report, returns 1 on a crash.
run_target() {
    local target="$1" work="fuzz/work/$1" log="fuzz/work/$1.log"
    local status=0 before crashes runs corpus
    mkdir -p "$work" "fuzz/corpus/$target" "fuzz/artifacts/$target"
    before=$(find "fuzz/artifacts/$target" -type f | wc -l)
    echo "fuzz.sh: $target for ${seconds}s (log: $log)"
    # One job, one worker (libFuzzer's default without -jobs: this process, which stops at
    # the first crash); -timeout reports an input slower than 10 s as a crash, and the RSS
    # limit one that needs more than 2 GB.
    "$bin_dir/$target" "$work" "fuzz/corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    crashes=$(($(find "fuzz/artifacts/$target" -type f | wc -l) - before))
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    corpus=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -nE 's/.*corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p')
    report+=("$(printf '%-18s %5ss %11s execs  corpus %-11s crashes %s' \
        "$target" "$seconds" "${runs:-?}" "${corpus:-?}" "$crashes")")
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        echo "fuzz.sh: $target FAILED (exit $status); see $log and fuzz/artifacts/$target/" >&2
        return 1
    fi
}

# The committed corpus of one target: its hand-named seeds, plus the smallest inputs of a
# set-cover merge of everything found so far, within the budget.
merge_target() {
    local target="$1" corpus="fuzz/corpus/$1" merged seeds size file used=0
    local budget=$((${FUZZ_CORPUS_KB:-32} * 1024))
    merged=$(mktemp -d)
    mkdir -p "fuzz/work/$target" "$corpus"
    "$bin_dir/$target" -set_cover_merge=1 "$merged" "$corpus" "fuzz/work/$target" \
        >"fuzz/work/$target.merge.log" 2>&1
    find "$corpus" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
    # libFuzzer names an input by its content's SHA-1: a seed's copy is not taken twice.
    seeds=$(find "$corpus" -type f -exec sha1sum {} + | cut -c1-40)
    while read -r size file; do
        if grep -qx "$(basename "$file")" <<<"$seeds"; then continue; fi
        if [ $((used + size)) -gt "$budget" ]; then break; fi
        cp "$file" "$corpus/"
        used=$((used + size))
    done < <(find "$merged" -type f -printf '%s %p\n' | sort -n)
    rm -rf "$merged"
    report+=("$(printf '%-18s %4s files %8s bytes' "$target" \
        "$(find "$corpus" -type f | wc -l)" "$(find "$corpus" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')")")
}

failed=0
report=()
for target in "${targets[@]}"; do
    if [ "$mode" = merge ]; then
        merge_target "$target"
    else
        run_target "$target" || failed=1
    fi
done

printf '%s\n' "${report[@]}"
exit "$failed"
