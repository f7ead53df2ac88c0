#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of fastconv's test suite,
# once per SIMD path.
#
#   tools/run_sanitizers.sh [PYTEST ARGS...]
#
# The extension is built with FASTCONV_SANITIZE=1 (setup.py: -fsanitize=
# address,undefined -fno-omit-frame-pointer -g -O1) in a throwaway copy of
# the working tree, so the editable install in src/fastconv is never touched;
# the tests run from that copy with the sanitizer runtimes preloaded into
# the (uninstrumented) Python. Without arguments the C-heavy test files run;
# pass pytest arguments to choose others (e.g. `tests` for everything).
#
# Environment:
#   SIMD_PATHS   paths to run (default: every one this CPU supports)
#   KEEP=1       keep the build directory (printed at the end)
#   JOBS         parallel compile jobs for build_ext (default 2)
#
# Exit status: non-zero when the build fails or a test fails on any path.
# The pytest logs are copied to build/sanitizers/.
# Leak detection is off (CPython itself holds memory until exit: that is
# tests/test_leaks.py's and tools/run_valgrind.sh's business).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
CC_FOR_SAN=${CC:-gcc}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-sanitize.XXXXXX")
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# The working tree as it is (tracked and untracked, not ignored files).
git ls-files -z --cached --others --exclude-standard |
    (cd "$ROOT" && xargs -0 tar cf - --ignore-failed-read 2>/dev/null) | (cd "$WORK" && tar xf -)
cd "$WORK"
rm -f src/fastconv/_kernels*.so src/fastconv/_kernels.c

echo "== building the sanitized extension in $WORK"
# CPython's CFLAGS carry -fwrapv, which makes signed overflow defined and
# switches UBSan's overflow checks off; -fno-wrapv (appended after them)
# checks the C kernels as the plain C99 library fastconv.h promises.
CFLAGS="${CFLAGS:-} -fno-wrapv" FASTCONV_SANITIZE=1 CC=$CC_FOR_SAN \
    "$PY" setup.py build_ext --inplace -j "${JOBS:-2}" \
    > build.log 2>&1 || { tail -50 build.log; echo "run_sanitizers.sh: build failed" >&2; exit 2; }

ASAN_LIB=$($CC_FOR_SAN -print-file-name=libasan.so)
UBSAN_LIB=$($CC_FOR_SAN -print-file-name=libubsan.so)
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
    [ -f "$lib" ] || { echo "run_sanitizers.sh: $lib not found" >&2; exit 2; }
done
grep -q -- "-fsanitize=address,undefined" build.log ||
    { echo "run_sanitizers.sh: the build did not use the sanitizer flags" >&2; exit 2; }
SO=$(ls src/fastconv/_kernels*.so)
nm -D "$SO" | grep -q __ubsan_handle_add_overflow ||
    echo "run_sanitizers.sh: warning: no signed-overflow checks in $SO (-fwrapv?)" >&2
if ! ldd "$SO" | grep -q libasan; then
    echo "run_sanitizers.sh: $SO is not linked against libasan" >&2
    exit 2
fi

export PYTHONPATH="$WORK/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONMALLOC=malloc            # let ASan see Python's allocations too
export FASTCONV_SANITIZED=1           # tests/reliability.py: skip address-space limits
# allocator_may_return_null: huge requests give MemoryError, as without ASan.
# allocator_may_return_null: huge requests give MemoryError, as without ASan.
ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1"
ASAN_OPTIONS="$ASAN_OPTIONS:strict_string_checks=1:detect_stack_use_after_return=1"
export ASAN_OPTIONS="$ASAN_OPTIONS:check_initialization_order=1${ASAN_EXTRA:+:$ASAN_EXTRA}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1"

# The extension under test must be the sanitized one.
LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" "$PY" -c "
import fastconv._kernels as k, sys
assert k.__file__.startswith('$WORK'), k.__file__
print('== testing', k.__file__, 'SIMD paths:', k.simd_supported())
"
PATHS=${SIMD_PATHS:-$(LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" "$PY" -c \
    "import fastconv._kernels as k; print(' '.join(reversed(k.simd_supported())))")}

if [ $# -eq 0 ]; then
    set -- tests/test_backends_agree.py tests/test_gradients.py tests/test_determinism.py \
        tests/test_properties.py tests/test_validation.py tests/test_bad_input.py \
        tests/test_threads.py tests/test_fuzz_regressions.py tests/test_layers.py \
        tests/test_models.py tests/test_seed.py tests/test_adam_update.py
fi
ARGS=()
for arg in "$@"; do
    # test files that do not exist in this checkout are left out
    case "$arg" in tests/*.py) [ -f "$arg" ] || continue ;; esac
    ARGS+=("$arg")
done

status=0
for simd in $PATHS; do
    echo "== FASTCONV_SIMD=$simd"
    # --capture=sys: the sanitizers write to file descriptor 2, and pytest's
    # default fd capture would swallow the report of a process they stop.
    set +e
    FASTCONV_SIMD=$simd LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" \
        "$PY" -m pytest -q -p no:cacheprovider --capture=sys "${ARGS[@]}" \
        > "pytest-$simd.log" 2>&1
    rc=$?
    set -e
    tail -25 "pytest-$simd.log"
    # Reports in the log: the test process's own, and those of child
    # processes whose tests failed (children of expected failures, which
    # replay known findings, are not shown).
    if grep -qE "ERROR: AddressSanitizer|runtime error:" "pytest-$simd.log"; then
        echo "== $simd: sanitizer reports:"
        grep -nE -A12 "ERROR: AddressSanitizer|runtime error:" "pytest-$simd.log" | head -60 || true
        rc=1
    fi
    echo "== $simd: exit status $rc"
    [ "$rc" -eq 0 ] || status=1
    mkdir -p "$ROOT/build/sanitizers"
    cp "pytest-$simd.log" "$ROOT/build/sanitizers/pytest-$simd.log"
done
exit $status
