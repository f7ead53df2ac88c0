"""Thread control that plays well with the ecosystem.

- The default thread count is OpenMP's, read at call time in the calling
  thread, so ``OMP_NUM_THREADS`` and threadpoolctl apply;
  ``fastconv.set_num_threads(n)`` overrides it and ``None`` goes back.
- fastconv never changes OpenMP's global state (no ``omp_set_num_threads``).
- Kernels release the GIL, and several Python threads may call them at once.
- Small problems do not start a parallel region (``fc_pick_threads`` in
  csrc/common.c caps the team at one thread per FC_MIN_WORK_PER_THREAD
  multiply-adds, and the ``#pragma omp parallel ... if (nthreads > 1)``
  then runs serially).

Speed is never asserted here (see the benchmarks); the checks are about
behaviour: thread counts reported, OS threads actually started, results, and
whether another Python thread could run. Bitwise identity across thread
counts is in test_determinism.py.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastconv as fc
from fastconv import _kernels

threadpoolctl = pytest.importorskip("threadpoolctl")

needs_openmp = pytest.mark.skipif(not _kernels.openmp_enabled(),
                                  reason="built without OpenMP: one thread only")
needs_proc_tasks = pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                                      reason="counts OS threads through /proc/self/task (Linux)")


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object last."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "FASTCONV_"))}
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def fastconv_openmp_library() -> str:
    """Path of the OpenMP runtime that fastconv._kernels itself links to:
    resolve omp_get_max_threads through the extension's own handle (dlsym
    searches its dependencies) and ask dladdr which file holds it."""
    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    libdl = ctypes.CDLL(ctypes.util.find_library("dl") or None)
    libdl.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    symbol = ctypes.CDLL(_kernels.__file__).omp_get_max_threads
    info = DlInfo()
    assert libdl.dladdr(ctypes.cast(symbol, ctypes.c_void_p), ctypes.byref(info)) != 0
    return os.path.realpath(info.dli_fname.decode())


def openmp_pools() -> list:
    return [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "openmp"]


# ---------------------------------------------------------------------------
# OMP_NUM_THREADS, set_num_threads, threadpoolctl


@needs_openmp
@pytest.mark.parametrize("value", ["1", "3"])
def test_omp_num_threads_sets_the_default(value):
    got = run_python("""
        import json, fastconv as fc
        info = fc.show_config("dicts")
        print(json.dumps([fc.get_num_threads(), info["num_threads"], info["num_threads_source"]]))
    """, OMP_NUM_THREADS=value)
    assert got[0] == got[1] == int(value)
    assert "OpenMP default" in got[2]


@needs_openmp
def test_omp_num_threads_shows_in_fastconv_info():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    out = subprocess.run([sys.executable, "-m", "fastconv", "info"], capture_output=True,
                         text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
             for line in out.stdout.splitlines() if ":" in line}
    assert lines["num_threads"] == "1"
    assert lines["openmp"] == "True"


def test_set_num_threads_overrides_and_none_restores_the_default():
    default = fc.get_num_threads()
    assert fc.set_num_threads(3) is None
    assert fc.get_num_threads() == 3
    info = fc.show_config("dicts")
    assert info["num_threads"] == 3 and info["num_threads_source"] == "fastconv.set_num_threads"
    assert fc.set_num_threads(np.int64(2)) == 3
    assert fc.get_num_threads() == 2
    assert fc.set_num_threads(None) == 2
    assert fc.get_num_threads() == default
    assert fc.show_config("dicts")["num_threads"] == default


@needs_openmp
@pytest.mark.skipif(sys.platform == "win32", reason="dladdr: ELF/Mach-O platforms")
def test_threadpoolctl_finds_the_openmp_runtime_fastconv_links():
    mine = fastconv_openmp_library()
    assert "omp" in os.path.basename(mine)  # libgomp, libomp, libiomp
    found = [os.path.realpath(p["filepath"]) for p in openmp_pools()]
    assert mine in found, f"threadpoolctl sees {found}, fastconv links {mine}"


@needs_openmp
def test_threadpool_limits_limits_fastconv():
    x = np.random.default_rng(0).standard_normal((4, 16, 16, 8)).astype(np.float32)
    k = np.random.default_rng(1).standard_normal((3, 3, 8, 16)).astype(np.float32)
    expected = fc.conv2d(x, k)
    outside = fc.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fc.get_num_threads() == 1
        assert fc.show_config("dicts")["num_threads"] == 1
        assert np.array_equal(fc.conv2d(x, k), expected)
        # An explicit setting still wins over the OpenMP default...
        fc.set_num_threads(2)
        assert fc.get_num_threads() == 2
        # ...and None goes back to it.
        fc.set_num_threads(None)
        assert fc.get_num_threads() == 1
    assert fc.get_num_threads() == outside


@needs_openmp
@needs_proc_tasks
def test_threadpool_limits_really_keeps_fastconv_on_one_os_thread():
    """Count the process' OS threads: under threadpool_limits(1) large
    kernels start no OpenMP worker; with two threads requested they do."""
    got = run_python("""
        import json, os
        import numpy as np
        import fastconv as fc
        from threadpoolctl import threadpool_limits

        def os_threads():
            return len(os.listdir("/proc/self/task"))

        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 28, 28, 32)).astype(np.float32)
        k = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
        dy = rng.standard_normal((8, 26, 26, 64)).astype(np.float32)
        before = os_threads()
        with threadpool_limits(limits=1, user_api="openmp"):
            fc.conv2d(x, k)
            fc.conv2d_backward(dy, x, k)
            fc.max_pool2d(x, 2)
            limited = os_threads()
        fc.set_num_threads(2)
        fc.conv2d(x, k)
        print(json.dumps([before, limited, os_threads()]))
    """, OMP_NUM_THREADS="4")
    before, limited, parallel = got
    assert limited == before, f"OpenMP threads started under threadpool_limits(1): {got}"
    assert parallel > before, f"no OpenMP worker started with 2 threads: {got}"


@needs_openmp
def test_fastconv_never_changes_the_openmp_setting():
    """After fastconv ran with set_num_threads(1) and (2), OpenMP's own
    max-threads setting (what threadpoolctl reads) is what it was."""
    got = run_python("""
        import json
        import numpy as np
        import fastconv as fc
        from threadpoolctl import threadpool_info

        def openmp_max_threads():
            return sorted(p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp")

        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 28, 28, 32)).astype(np.float32)
        k = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
        before = openmp_max_threads()
        for n in (1, 2, None):
            fc.set_num_threads(n)
            y = fc.conv2d(x, k)
            fc.conv2d_backward(y, x, k)
            fc.max_pool2d(x, 2)
        print(json.dumps([before, openmp_max_threads(), fc.get_num_threads()]))
    """, OMP_NUM_THREADS="3")
    before, after, default = got
    assert before and before == after == [3] * len(before)
    assert default == 3


def test_the_extension_does_not_reference_omp_setters():
    """Static side of the check above: the names of OpenMP's global setters
    do not occur in the compiled module (its import table lists every
    OpenMP function it calls)."""
    with open(_kernels.__file__, "rb") as f:
        binary = f.read()
    for setter in (b"omp_set_num_threads", b"omp_set_dynamic", b"omp_set_max_active_levels"):
        assert setter not in binary, setter.decode()


# ---------------------------------------------------------------------------
# Small problems


@needs_openmp
@needs_proc_tasks
def test_small_problems_start_no_parallel_region():
    """fc_pick_threads gives tiny problems one thread even when two are
    requested, so OpenMP starts no worker thread for them (an OS-thread
    count, not a timing); a large problem in the same process does."""
    got = run_python("""
        import json, os
        import numpy as np
        import fastconv as fc

        def os_threads():
            return len(os.listdir("/proc/self/task"))

        rng = np.random.default_rng(0)
        fc.set_num_threads(2)
        before = os_threads()
        x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
        k = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
        xd = rng.standard_normal((2, 10)).astype(np.float32)
        kd = rng.standard_normal((10, 4)).astype(np.float32)
        for _ in range(3):
            y = fc.conv2d(x, k, padding="same")
            fc.conv2d_backward(y, x, k, padding="same")
            fc.max_pool2d_backward(fc.max_pool2d(x, 2), x, 2)
            fc.dense_backward(fc.dense(xd, kd), xd, kd)
        small = os_threads()
        big = rng.standard_normal((8, 28, 28, 32)).astype(np.float32)
        fc.conv2d(big, rng.standard_normal((3, 3, 32, 64)).astype(np.float32))
        print(json.dumps([before, small, os_threads()]))
    """)
    before, small, large = got
    assert small == before, f"a tiny problem started OpenMP threads: {got}"
    assert large > before, f"a large problem started no OpenMP thread: {got}"


# ---------------------------------------------------------------------------
# The GIL and concurrent Python threads


def _progress_while_busy(busy, max_calls: int, target: int = 20_000) -> int:
    """Run ``busy()`` up to ``max_calls`` times in a worker thread and count
    the iterations of a pure-Python loop that the main thread completes while
    the worker is inside ``busy()``.

    The switch interval is set to 30 s, so the interpreter never forces the
    GIL away from a thread: the main thread can run while the worker is
    inside ``busy()`` only if ``busy()`` itself lets go of the GIL. Once the
    main thread has the GIL it keeps it, the worker cannot get back out of
    ``busy()``, and the loop reaches ``target`` at once. Nothing is timed, so
    a slow or loaded machine only makes the test take longer.
    """
    state = {"in_call": False}
    stop = threading.Event()

    def worker():
        for _ in range(max_calls):
            if stop.is_set():
                break
            state["in_call"] = True
            busy()
            state["in_call"] = False

    previous = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    progress = 0
    try:
        t = threading.Thread(target=worker)
        t.start()
        while t.is_alive():
            if state["in_call"]:
                progress += 1
                if progress >= target:
                    break
            else:
                time.sleep(0.0005)  # blocks: lets the worker run its Python code
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(previous)
    return progress


def test_conv2d_releases_the_gil():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 28, 28, 32)).astype(np.float32)
    k = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    fc.set_num_threads(1)  # a long call, and a core left for the main thread
    progress = _progress_while_busy(lambda: fc.conv2d(x, k), max_calls=200)
    assert progress >= 20_000, (
        f"the main thread ran only {progress} loop iterations while conv2d was running")


@pytest.mark.skipif(not getattr(sys, "_is_gil_enabled", lambda: True)(),
                    reason="free-threaded Python: there is no GIL to hold")
def test_gil_probe_detects_a_call_that_holds_the_gil():
    """The probe above is sensitive: a C call that keeps the GIL (sum over a
    long range) lets the main thread make no progress at all."""
    progress = _progress_while_busy(lambda: sum(range(3_000_000)), max_calls=3)
    assert progress == 0


def test_concurrent_mixed_calls_while_thread_settings_change(rng):
    """Four Python threads run forward, backward and pooling at once while the
    main thread keeps switching set_num_threads between 1, 2, 3 and the
    OpenMP default; every result stays bitwise equal to the one computed
    alone (results do not depend on the thread count)."""
    cases = []
    for i in range(4):
        x = rng.standard_normal((4, 18 + i, 17, 8)).astype(np.float32)
        k = rng.standard_normal((3, 3, 8, 24)).astype(np.float32)
        b = rng.standard_normal(24).astype(np.float32)
        kw = dict(strides=1 + i % 2, padding="same" if i % 2 else "valid")
        y = fc.conv2d(x, k, b, activation="relu", **kw)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        grads = fc.conv2d_backward(dy, x, k, **kw)
        pool = fc.max_pool2d(x, 2)
        dpool = fc.max_pool2d_backward(pool, x, 2)
        cases.append((x, k, b, kw, dy, (y, *grads, pool, dpool)))
    errors: list = []

    def worker(x, k, b, kw, dy, expected):
        try:
            for step in range(15):
                op = (step + len(kw["padding"])) % 3
                if op == 0:
                    got = [fc.conv2d(x, k, b, activation="relu", **kw)]
                    want = expected[:1]
                elif op == 1:
                    got = list(fc.conv2d_backward(dy, x, k, **kw))
                    want = expected[1:4]
                else:
                    pool = fc.max_pool2d(x, 2)
                    got = [pool, fc.max_pool2d_backward(pool, x, 2)]
                    want = expected[4:]
                if not all(np.array_equal(g, w) for g, w in zip(got, want)):
                    errors.append(f"mismatch in op {op}")
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=case) for case in cases]
    for t in threads:
        t.start()
    settings = [1, 2, 3, None]
    i = 0
    while any(t.is_alive() for t in threads):
        fc.set_num_threads(settings[i % len(settings)])
        i += 1
        time.sleep(0.001)
    for t in threads:
        t.join()
    assert errors == []
