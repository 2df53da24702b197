#!/usr/bin/env bash
# Build the ingress core's libFuzzer targets with clang in their own build directory and run
# each for a bounded time from its seed corpus; fail when any target finds a crash, a leak or
# a sanitizer report. Exit 77 (ctest SKIP_RETURN_CODE) when clang is not installed.
#
#   IMP_FUZZ_SECONDS    seconds per target (default 20)
#   IMP_FUZZ_BUILD_DIR  build directory (default $IMP_BUILD_DIR/fuzz-clang, else build-fuzz)
#   IMP_FUZZ_TARGETS    space-separated subset of the targets (default all)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${IMP_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
seconds=${IMP_FUZZ_SECONDS:-20}
if [[ -n ${IMP_BUILD_DIR:-} ]]; then
    build=${IMP_FUZZ_BUILD_DIR:-$IMP_BUILD_DIR/fuzz-clang}
else
    build=${IMP_FUZZ_BUILD_DIR:-$src/build-fuzz}
fi
targets=${IMP_FUZZ_TARGETS:-"fuzz_verify_standard fuzz_verify_meta fuzz_normalize_generic
    fuzz_normalize_chatflow fuzz_normalize_whatsapp fuzz_normalize_telegram"}

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang is not installed; skipped" >&2
    exit 77
fi

mkdir -p "$build"
cmake -S "$here" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DIMP_FUZZ=ON >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" -- $targets >"$build/build.log" 2>&1 ||
    { tail -50 "$build/build.log" >&2; exit 1; }

failed=0
for t in $targets; do
    # A fresh working corpus per run: the checked-in seeds (and, for a normalizer, the unit
    # tests' payloads of its channel); what the run adds stays in the build directory.
    work=$build/corpus/$t
    rm -rf "$work" "$build/artifacts/$t"
    mkdir -p "$work" "$build/artifacts/$t"
    cp "$here/corpus/$t"/* "$work"/
    if [[ $t == fuzz_normalize_* ]]; then
        cp "$src/tests/unit/ingress/payloads/${t#fuzz_normalize_}"-*.json "$work"/
    fi
    log=$build/$t.log
    rc=0
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$build/bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -dict="$here/json.dict" \
        -artifact_prefix="$build/artifacts/$t/" "$work" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    crashes=$(find "$build/artifacts/$t" -type f | wc -l)
    printf '%-26s %s s  execs %-9s cov %-5s rss %s MB  corpus %-5s artifacts %s  rc %s\n' \
        "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${rss:-?}" "$(ls "$work" | wc -l)" \
        "$crashes" "$rc"
    if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
        failed=1
        echo "---- $t failed; its log ($log) ends:" >&2
        tail -40 "$log" >&2
    fi
done
exit $failed
