#!/usr/bin/env bash
# Runs aiocr's cargo-fuzz targets (fuzz/) one after another, each for SECONDS (default 60),
# one job and one worker each (the machine's cores are shared), and prints one line per
# target: seconds, executions, corpus size, crashes. Exits 1 if any target found a crash;
# the crashing inputs are in fuzz/artifacts/TARGET/ (see docs/fuzzing.md for what to do).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # no TARGET: every target of `cargo fuzz list`
#
# New inputs the fuzzer finds go to fuzz/work/TARGET (not committed); the committed seed
# corpus fuzz/corpus/TARGET is read, never written. Needs the nightly toolchain (libFuzzer's
# coverage instrumentation is nightly-only); cargo-fuzz is installed from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if [ $# -gt 0 ]; then shift; fi
case "$seconds" in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
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

failed=0
report=()
for target in "${targets[@]}"; do
    work="fuzz/work/$target"
    mkdir -p "$work" "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log="fuzz/work/$target.log"
    crashes_before=$(find "fuzz/artifacts/$target" -type f | wc -l)
    echo "fuzz.sh: $target for ${seconds}s (log: $log)"
    status=0
    # One job, one worker (libFuzzer's default without -jobs: this process, which stops at
    # the first crash); -timeout reports an input slower than 10 s as a crash, and the RSS
    # limit one that needs more than 2 GB. detect_odr_violation=0 as cargo-fuzz sets it.
    ASAN_OPTIONS=detect_odr_violation=0 "$bin_dir/$target" "$work" "fuzz/corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    crashes=$(($(find "fuzz/artifacts/$target" -type f | wc -l) - crashes_before))
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    corpus=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -nE 's/.*corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p')
    report+=("$(printf '%-20s %6ss %12s execs  corpus %-12s crashes %s' \
        "$target" "$seconds" "${runs:-?}" "${corpus:-?}" "$crashes")")
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        echo "fuzz.sh: $target FAILED (exit $status); see $log and fuzz/artifacts/$target/" >&2
    fi
done

printf '%s\n' "${report[@]}"
exit "$failed"
