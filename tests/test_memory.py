"""The caching allocator used inside fit/evaluate/predict (fastconv._memory)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from fastconv import _kernels, backend
from fastconv._memory import cached_allocations, release_cached_memory

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

BIG = (1024, 1024)  # 4 MiB of float32: above the 256 KiB caching threshold


def test_handler_is_scoped_to_the_block():
    before = np.empty(BIG, np.float32)
    with cached_allocations():
        inside = np.empty(BIG, np.float32)
        with cached_allocations():          # nesting restores the outer handler
            nested = np.empty(BIG, np.float32)
        after_nested = np.empty(BIG, np.float32)
    after = np.empty(BIG, np.float32)
    assert get_handler_name(inside) == "fastconv_arena"
    assert get_handler_name(nested) == "fastconv_arena"
    assert get_handler_name(after_nested) == "fastconv_arena"
    assert get_handler_name(before) != "fastconv_arena"
    assert get_handler_name(after) != "fastconv_arena"


def test_freed_blocks_are_reused_and_calloc_zeroes_them():
    release_cached_memory()
    with cached_allocations():
        _, hits0, _ = _kernels.arena_stats()
        for _ in range(5):
            a = np.full(BIG, 7.0, np.float32)   # dirty the block
            del a
            z = np.zeros(BIG, np.float32)        # calloc on a reused, dirty block
            assert not z.any()
            del z
        _, hits1, _ = _kernels.arena_stats()
    assert hits1 - hits0 >= 8


def test_realloc_keeps_contents():
    with cached_allocations():
        a = np.arange(300_000, dtype=np.float32)
        a.resize(600_000, refcheck=False)        # ndarray.resize uses the handler's realloc
        np.testing.assert_array_equal(a[:300_000], np.arange(300_000, dtype=np.float32))
        assert not a[300_000:].any()
        a.resize(100, refcheck=False)
        np.testing.assert_array_equal(a, np.arange(100, dtype=np.float32))


def test_arrays_outlive_the_block():
    with cached_allocations():
        kept = np.arange(BIG[0] * BIG[1], dtype=np.float32)
    other = np.ones(BIG, np.float32)             # default allocator again
    np.testing.assert_array_equal(kept[:5], [0, 1, 2, 3, 4])
    del kept, other


def test_other_threads_keep_numpy_default():
    names = []
    with cached_allocations():
        worker = threading.Thread(target=lambda: names.append(
            get_handler_name(np.empty(BIG, np.float32))))
        worker.start()
        worker.join()
    assert names and names[0] != "fastconv_arena"


def test_clear_session_releases_idle_blocks():
    with cached_allocations():
        a = np.empty(BIG, np.float32)
        del a
    assert _kernels.arena_stats()[0] > 0
    backend.clear_session()
    assert _kernels.arena_stats()[0] == 0


def test_environment_switch_disables_it():
    code = ("import numpy as np\n"
            "from fastconv._memory import cached_allocations\n"
            "try:\n    from numpy._core.multiarray import get_handler_name\n"
            "except ImportError:\n    from numpy.core.multiarray import get_handler_name\n"
            "with cached_allocations():\n    print(get_handler_name(np.empty((1024, 1024))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "FASTCONV_ARENA": "0"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() != "fastconv_arena"


def test_model_loops_allocate_through_the_cache():
    from fastconv.layers import Dense, Input
    from fastconv.models import Model
    backend.clear_session()
    inp = Input(shape=(300,))
    model = Model(inp, Dense(1000)(inp))
    y = model.predict(np.ones((512, 300), np.float32), batch_size=512)
    while y.base is not None:   # a view's handler is its owner's
        y = y.base
    assert get_handler_name(y) == "fastconv_arena"
