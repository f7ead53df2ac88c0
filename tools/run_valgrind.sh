#!/usr/bin/env bash
# Valgrind memcheck of a small forward/backward of every op (conv, pool,
# dense, a tiny model) through the normal build of the extension, on each
# SIMD path valgrind can run (it hides AVX-512, so AVX2 and generic).
#
#   tools/run_valgrind.sh            uses the fastconv that `python` imports
#
# CPython allocates through malloc here (PYTHONMALLOC=malloc), so pymalloc's
# arena tricks give no false reports; CPython's own one-time allocations
# that are still reachable at exit are not errors. The summary splits the
# reports into those with a fastconv frame (the extension, csrc/) and the
# rest. Exit status: 1 when fastconv has an invalid read/write, a use of
# uninitialised memory, an invalid free or a definite leak; 2 when valgrind
# itself failed.
set -euo pipefail
cd "$(dirname "$0")/.."
# The interpreter itself, not a wrapper script (pyenv shims are shell scripts,
# and valgrind would check the shell instead).
PY=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
OUT=build/valgrind
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "run_valgrind.sh: valgrind not found" >&2; exit 2; }

SUPP=()
[ -f tools/valgrind-python.supp ] && SUPP=(--suppressions=tools/valgrind-python.supp)

echo "== valgrind memcheck: $("$PY" -c 'import fastconv._kernels as k; print(k.__file__)')"
set +e
PYTHONMALLOC=malloc OMP_WAIT_POLICY=passive valgrind --tool=memcheck \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --track-origins=yes --num-callers=40 --error-limit=no "${SUPP[@]}" \
    --xml=yes --xml-file="$OUT/memcheck.xml" --log-file="$OUT/memcheck.log" \
    "$PY" tools/valgrind_workload.py
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "run_valgrind.sh: the workload failed under valgrind (status $rc)" >&2
    tail -30 "$OUT/memcheck.log" >&2
    exit 2
fi

"$PY" - "$OUT/memcheck.xml" <<'EOF'
import collections
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()


def frames(error):
    for stack in error.iter("stack"):
        for frame in stack.iter("frame"):
            yield {tag: (frame.findtext(tag) or "") for tag in ("obj", "fn", "dir", "file", "line")}


def ours(error):
    for f in frames(error):
        if "_kernels" in f["obj"] or f["fn"].startswith("fc_") or "/csrc" in f["dir"] \
                or f["file"].startswith("kernels_"):
            return True
    return False


totals, mine = collections.Counter(), collections.Counter()
leaked = collections.Counter()
examples = []
for error in root.iter("error"):
    kind = error.findtext("kind")
    totals[kind] += 1
    if kind.startswith("Leak_"):
        leaked[kind] += int(error.findtext("xwhat/leakedbytes") or 0)
    if ours(error):
        mine[kind] += 1
        if len(examples) < 5:
            what = error.findtext("what") or error.findtext("xwhat/text")
            top = [f"{f['fn']} ({f['file']}:{f['line']})" for f in frames(error)][:8]
            examples.append(f"{kind}: {what}\n    " + "\n    ".join(top))

print("== all memcheck reports:", dict(totals) or "none")
if leaked:
    print("== definitely lost bytes (all of the process):", dict(leaked))
print("== reports with a fastconv frame:", dict(mine) or "none")
for example in examples:
    print(example)
bad = sum(n for k, n in mine.items())
print("== fastconv: " + ("CLEAN (0 invalid reads/writes, 0 uninitialised uses, "
                         "0 definitely lost)" if bad == 0 else f"{bad} reports"))
sys.exit(1 if bad else 0)
EOF
