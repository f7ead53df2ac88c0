#!/usr/bin/env bash
# libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer on fastconv's C
# entry points (fuzz/fuzz_kernels.c). Needs clang with libFuzzer and LLVM's
# OpenMP runtime (Debian/Ubuntu: apt-get install clang libomp-dev).
#
#   tools/run_fuzz.sh [SECONDS] [JOBS]     default: 600 seconds, 1 job
#   tools/run_fuzz.sh --repro FILE...      run saved inputs once (regressions)
#
# Builds into build/fuzz/ (never touches the Python extension), keeps its
# working corpus in build/fuzz/corpus (seeded from tests/data/fuzz_corpus and
# tests/data/fuzz_crashers), and writes any crashing input to
# build/fuzz/artifacts/. Copy crashers into tests/data/fuzz_crashers/ so that
# tests/test_fuzz_regressions.py replays them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/fuzz
CC=${FUZZ_CC:-clang}
mkdir -p "$OUT/corpus" "$OUT/artifacts"

if ! command -v "$CC" >/dev/null; then
    echo "run_fuzz.sh: $CC not found (apt-get install clang libomp-dev)" >&2
    exit 2
fi

SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-g -O1 -fopenmp -std=c99 -D_GNU_SOURCE -Icsrc $SAN"
ISA=""
case "$(uname -m)" in
    x86_64|amd64)
        ISA="-DFC_HAVE_AVX2=1 -DFC_HAVE_AVX512=1"
        $CC $CFLAGS $ISA -mavx2 -mfma -c csrc/kernels_avx2.c -o "$OUT/kernels_avx2.o"
        $CC $CFLAGS $ISA -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma \
            -c csrc/kernels_avx512.c -o "$OUT/kernels_avx512.o"
        EXTRA="$OUT/kernels_avx2.o $OUT/kernels_avx512.o"
        ;;
    *) EXTRA="" ;;
esac
# shellcheck disable=SC2086
$CC $CFLAGS $ISA fuzz/fuzz_kernels.c csrc/common.c csrc/cpu.c csrc/conv2d.c csrc/winograd.c csrc/pool2d.c csrc/arena.c \
    csrc/kernels_generic.c $EXTRA -lm -o "$OUT/fuzz_kernels"
echo "built $OUT/fuzz_kernels"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ "${1:-}" = "--repro" ]; then
    shift
    exec "$OUT/fuzz_kernels" -runs=1 "$@"
fi

SECONDS_TO_RUN=${1:-600}
JOBS=${2:-1}
for seed_dir in tests/data/fuzz_corpus tests/data/fuzz_crashers; do
    if [ -d "$seed_dir" ]; then
        find "$seed_dir" -maxdepth 1 -type f ! -name "*.json" ! -name "*.md" \
            -exec cp -n {} "$OUT/corpus/" \;
    fi
done
# -max_len: the header and the parameter fields fit in 32 bytes.
ARGS=(-max_len=48 -max_total_time="$SECONDS_TO_RUN" -artifact_prefix="$OUT/artifacts/"
      -print_final_stats=1 -timeout=20 -rss_limit_mb=4096)
if [ "$JOBS" -gt 1 ]; then
    # Parallel jobs write fuzz-N.log into the current directory: keep them in build/fuzz.
    cd "$OUT"
    ARGS+=(-jobs="$JOBS" -workers="$JOBS")
fi
"$OUT/fuzz_kernels" "$OUT/corpus" "${ARGS[@]}"
