"""Results are bitwise identical for any number of threads and from run to
run (the backward reductions use fixed chunks summed in a fixed order)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import fastconv as fc
from fastconv import _kernels

THREAD_COUNTS = (1, 2, 3, 5)


def _all_outputs(x, kernel, bias, dy, kw, pool_dy):
    y = fc.conv2d(x, kernel, bias, activation="relu", **kw)
    dx, dk, db = fc.conv2d_backward(dy, x, kernel, **kw)
    p = fc.max_pool2d(x, 2)
    dp = fc.max_pool2d_backward(pool_dy, x, 2)
    return [y, dx, dk, db, p, dp]


@pytest.mark.parametrize("kw", [dict(padding="valid"), dict(strides=2, padding="same")])
def test_bitwise_identical_across_thread_counts(simd, rng, kw):
    # Large enough that every thread count really runs in parallel.
    x = rng.standard_normal((8, 28, 28, 32)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    dy = rng.standard_normal(fc.conv2d(x, kernel, **kw).shape).astype(np.float32)
    pool_dy = rng.standard_normal((8, 14, 14, 32)).astype(np.float32)
    results = {}
    for n in THREAD_COUNTS:
        fc.set_num_threads(n)
        results[n] = _all_outputs(x, kernel, bias, dy, kw, pool_dy)
    fc.set_num_threads(2)
    again = _all_outputs(x, kernel, bias, dy, kw, pool_dy)
    for n in THREAD_COUNTS[1:]:
        for a, b in zip(results[1], results[n]):
            assert np.array_equal(a, b), f"{n} threads differ from 1 thread"
    for a, b in zip(results[2], again):
        assert np.array_equal(a, b), "two runs at 2 threads differ"


def test_dense_weight_gradient_deterministic(rng):
    x = rng.standard_normal((256, 700)).astype(np.float32)
    kernel = rng.standard_normal((700, 100)).astype(np.float32)
    dy = rng.standard_normal((256, 100)).astype(np.float32)
    outs = []
    for n in THREAD_COUNTS:
        fc.set_num_threads(n)
        outs.append(fc.dense_backward(dy, x, kernel))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            assert np.array_equal(a, b)


def test_concurrent_python_threads_get_correct_results(rng):
    """The GIL is released in the kernels; four Python threads at once."""
    cases = []
    for i in range(4):
        x = rng.standard_normal((4, 20 + i, 20, 16)).astype(np.float32)
        kernel = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
        cases.append((x, kernel, fc.conv2d(x, kernel, padding="same")))
    errors = []

    def worker(x, kernel, expected):
        try:
            for _ in range(20):
                if not np.array_equal(fc.conv2d(x, kernel, padding="same"), expected):
                    errors.append("mismatch")
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=c) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_simd_override_is_respected():
    for name in _kernels.simd_supported():
        previous = _kernels.get_simd()
        _kernels.set_simd(name)
        try:
            assert _kernels.get_simd() == name
        finally:
            _kernels.set_simd(previous)
