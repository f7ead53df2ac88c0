"""Every op of the functional API gives bitwise identical results for 1, 2,
3 and 16 threads, in both layouts and both dtypes: forward ops because each
output is one thread's fixed-order sum, reductions (weight gradients, batch
statistics, global pooling) because they run over fixed chunks added in a
fixed order."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc

THREAD_COUNTS = (1, 2, 3, 16)


def _nchw(a, cf):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if cf else a


def _ops(rng, dtype, cf):
    """(name, call) pairs over inputs large enough to run on every thread."""
    fmt = dict(data_format="channels_first" if cf else "channels_last")
    r = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    x = _nchw(r(8, 24, 22, 16), cf)
    k = r(3, 3, 16, 24)
    k_g = r(3, 3, 4, 24)
    k_dw = r(3, 3, 1, 32)
    kf = dict(kernel_format="HWIO", **fmt)
    y_shape = fc.conv2d(x, k, padding="same", **kf).shape
    dy = r(*y_shape)
    dy_s2 = r(*fc.conv2d(x, k, strides=2, padding="same", **kf).shape)
    dy_g = r(*fc.conv2d(x, k_g, padding=1, groups=4, **kf).shape)
    dy_dw = r(*fc.conv2d(x, k_dw, padding="same", groups=16, **kf).shape)
    kt = r(3, 3, 8, 16)                        # transposed: 16 -> 8 channels, stride 2
    yt = fc.conv2d_transpose(x, kt, strides=2, padding="same", **kf)
    dyt = r(*yt.shape)
    pool_dy = r(*fc.max_pool2d(x, 3, 2, "same", **fmt).shape)
    avg_dy = r(*fc.avg_pool2d(x, 2, **fmt).shape)
    up_dy = r(*fc.upsample2d(x, 2, "bilinear", **fmt).shape)
    gap_dy = r(8, 16)
    gamma, beta = r(16), r(16)
    _, mean, var = fc.batch_norm_train(x, gamma, beta, **fmt)
    dense_x, dense_k, dense_dy = r(64, 900), r(900, 70), r(64, 70)
    return [
        ("conv2d", lambda: fc.conv2d(x, k, None, 1, "same", activation="relu", **kf)),
        ("conv2d_backward", lambda: fc.conv2d_backward(dy, x, k, 1, "same", **kf)),
        ("conv2d s2 backward", lambda: fc.conv2d_backward(dy_s2, x, k, 2, "same", **kf)),
        ("grouped backward", lambda: fc.conv2d_backward(dy_g, x, k_g, 1, 1, groups=4, **kf)),
        ("depthwise backward",
         lambda: fc.conv2d_backward(dy_dw, x, k_dw, 1, "same", groups=16, **kf)),
        ("conv2d_transpose", lambda: fc.conv2d_transpose(x, kt, None, 2, "same", **kf)),
        ("conv2d_transpose_backward",
         lambda: fc.conv2d_transpose_backward(dyt, x, kt, 2, "same", **kf)),
        ("max_pool2d", lambda: fc.max_pool2d(x, 3, 2, "same", **fmt)),
        ("max_pool2d_backward", lambda: fc.max_pool2d_backward(pool_dy, x, 3, 2, "same", **fmt)),
        ("avg_pool2d", lambda: fc.avg_pool2d(x, 2, **fmt)),
        ("avg_pool2d_backward", lambda: fc.avg_pool2d_backward(avg_dy, x, 2, **fmt)),
        ("global_avg_pool2d", lambda: fc.global_avg_pool2d(x, **fmt)),
        ("global_avg_pool2d_backward", lambda: fc.global_avg_pool2d_backward(gap_dy, x, **fmt)),
        ("global_max_pool2d", lambda: fc.global_max_pool2d(x, **fmt)),
        ("global_max_pool2d_backward", lambda: fc.global_max_pool2d_backward(gap_dy, x, **fmt)),
        ("upsample2d", lambda: fc.upsample2d(x, 2, "bilinear", **fmt)),
        ("upsample2d_backward", lambda: fc.upsample2d_backward(up_dy, 2, "bilinear", **fmt)),
        ("batch_norm_train", lambda: fc.batch_norm_train(x, gamma, beta, **fmt)),
        ("batch_norm_backward",
         lambda: fc.batch_norm_backward(dy_dw[:, :16] if cf else dy_dw[..., :16], x, gamma,
                                        mean, var, **fmt)),
        ("dense_backward", lambda: fc.dense_backward(dense_dy, dense_x, dense_k)),
    ]


def _flat(result):
    return [a for a in (result if isinstance(result, tuple) else (result,)) if a is not None]


@pytest.mark.parametrize("cf", [False, True], ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_every_op_bitwise_identical_for_any_thread_count(rng, dtype, cf):
    ops = _ops(rng, dtype, cf)
    results = {}
    for n in THREAD_COUNTS:
        fc.set_num_threads(n)
        results[n] = [_flat(call()) for _, call in ops]
    for (name, _), ref, *others in zip(ops, results[1], *(results[n] for n in THREAD_COUNTS[1:])):
        for n, other in zip(THREAD_COUNTS[1:], others):
            for a, b in zip(ref, other):
                assert a.dtype == dtype
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: {n} threads vs 1")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("units", [1, 16, 17, 100, 300])
def test_dense_on_a_few_samples_equals_their_rows_of_a_batch(rng, dtype, units, simd):
    """Up to four samples take the few-row path (one pass over the weights,
    columns split over threads); each output must be bit for bit the row the
    batched GEMM gives, with and without ReLU, at any thread count, and on
    K > 512 (the GEMM's K blocks) and K = 1 (only the padded last row), on
    every SIMD path (each has its own few-row tile shapes)."""
    for k in (1, 7, 1100):
        x = rng.standard_normal((9, k)).astype(dtype)
        kernel = rng.standard_normal((k, units)).astype(dtype)
        bias = rng.standard_normal(units).astype(dtype)
        for activation in (None, "relu"):
            fc.set_num_threads(1)
            batched = fc.dense(x, kernel, bias, activation)
            for n in THREAD_COUNTS:
                fc.set_num_threads(n)
                for rows in (1, 2, 3, 4, 5):
                    np.testing.assert_array_equal(
                        fc.dense(x[:rows], kernel, bias, activation), batched[:rows],
                        err_msg=f"k={k} rows={rows} {activation} at {n} threads")
        np.testing.assert_allclose(batched[:1], np.maximum(
            x[:1].astype(np.float64) @ kernel + bias, 0), rtol=1e-4, atol=1e-4 * np.sqrt(k))


_GUARDED_DENSE = r"""
import ctypes, mmap, sys
import numpy as np
import fastconv as fc
from fastconv import _kernels
page = mmap.PAGESIZE
libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
for simd in _kernels.simd_supported():
    _kernels.set_simd(simd)
    for rows, k, units in ((1, 7, 3), (4, 5, 1), (2, 9, 17), (3, 1, 2)):
        # the kernel ends where an inaccessible page begins: a read past it faults
        buf = mmap.mmap(-1, 2 * page)
        base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        assert libc.mprotect(base + page, page, 0) == 0
        nbytes = k * units * 4
        kernel = np.frombuffer(buf, np.float32, k * units, page - nbytes).reshape(k, units)
        kernel[...] = np.arange(k * units, dtype=np.float32).reshape(k, units) / 7
        x = np.ones((rows, k), np.float32)
        np.testing.assert_allclose(fc.dense(x, kernel, None), x @ kernel, rtol=1e-6)
        del kernel
print("ok")
"""


def test_the_few_row_dense_path_reads_nothing_past_the_kernel(tmp_path):
    """A dense kernel narrower than a vector, its last byte before a page the
    process may not read: the few-row path's tail vectors must take B's last
    rows from a padded copy (they overread by up to a vector, several rows)."""
    import subprocess
    import sys
    script = tmp_path / "guarded_dense.py"
    script.write_text(_GUARDED_DENSE)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
