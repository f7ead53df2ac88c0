"""The reference's gradients against central finite differences in float64,
so the NumPy backend is a trustworthy spec for the C backend."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc

EPS = 1e-6


def _numeric_grad(f, arr, rng, n_points=25):
    """Central differences of the scalar f() at a few random entries of arr."""
    flat = arr.reshape(-1)
    idx = rng.choice(flat.size, size=min(n_points, flat.size), replace=False)
    grads = []
    for i in idx:
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        grads.append((up - down) / (2 * EPS))
    return idx, np.array(grads)


CONV_CASES = [
    ((2, 6, 7, 3), (3, 3, 3, 4), dict(strides=1, padding="valid")),
    ((2, 6, 7, 3), (3, 2, 3, 4), dict(strides=2, padding="same")),
    ((1, 8, 7, 2), (2, 3, 2, 3), dict(strides=(1, 2), padding="same", dilation_rate=(2, 1))),
    ((2, 5, 5, 1), (5, 5, 1, 2), dict(padding="valid")),
    ((1, 7, 6, 2), (3, 3, 2, 2), dict(strides=3, padding="same", dilation_rate=2)),
]


@pytest.mark.parametrize("x_shape,k_shape,kw", CONV_CASES)
def test_conv2d_reference_gradients(rng, x_shape, k_shape, kw):
    x = rng.standard_normal(x_shape)
    kernel = rng.standard_normal(k_shape)
    bias = rng.standard_normal(k_shape[3])
    with fc.use_backend("numpy"):
        weights = rng.standard_normal(fc.conv2d(x, kernel, **kw).shape)

        def loss():
            return float(np.sum(fc.conv2d(x, kernel, bias, **kw) * weights))

        dx, dk, db = fc.conv2d_backward(weights, x, kernel, **kw)
        assert dx.dtype == np.float64
        for arr, analytic in ((x, dx), (kernel, dk), (bias, db)):
            idx, numeric = _numeric_grad(loss, arr, rng)
            np.testing.assert_allclose(analytic.reshape(-1)[idx], numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kw", [dict(pool_size=2), dict(pool_size=3, strides=1, padding="same"),
                                dict(pool_size=(2, 3), strides=(1, 2), padding="same")])
def test_max_pool_reference_gradient(rng, kw):
    # Distinct values: a step of EPS cannot change which cell wins.
    x = rng.permutation(2 * 7 * 6 * 3).reshape(2, 7, 6, 3).astype(np.float64) / 10
    with fc.use_backend("numpy"):
        weights = rng.standard_normal(fc.max_pool2d(x, **kw).shape)

        def loss():
            return float(np.sum(fc.max_pool2d(x, **kw) * weights))

        dx = fc.max_pool2d_backward(weights, x, **kw)
        idx, numeric = _numeric_grad(loss, x, rng, n_points=60)
        np.testing.assert_allclose(dx.reshape(-1)[idx], numeric, rtol=1e-6, atol=1e-7)


def test_max_pool_ties_go_to_first_in_row_major_order():
    # The notes' checked cases (TensorFlow CPU): [[1,3],[3,2]] -> the top-right 3;
    # an all-ones 3x3 input with pool 2, stride 1 -> [[1,1,0],[1,1,0],[0,0,0]].
    for backend in ("numpy", "c"):
        with fc.use_backend(backend):
            x = np.array([[1, 3], [3, 2]], np.float32).reshape(1, 2, 2, 1)
            dx = fc.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), x, 2)
            np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1], [0, 0]])
            ones = np.ones((1, 3, 3, 1), np.float32)
            dx = fc.max_pool2d_backward(np.ones((1, 2, 2, 1), np.float32), ones, 2, strides=1)
            np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
            # 'same' padding never wins: all-negative input, pool 2 stride 2.
            neg = -np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
            y = fc.max_pool2d(neg, 2, padding="same")
            np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -3], [-7, -9]])


def test_dense_reference_gradients(rng):
    x = rng.standard_normal((4, 6))
    kernel = rng.standard_normal((6, 3))
    bias = rng.standard_normal(3)
    weights = rng.standard_normal((4, 3))
    with fc.use_backend("numpy"):
        def loss():
            return float(np.sum(fc.dense(x, kernel, bias) * weights))

        dx, dk, db = fc.dense_backward(weights, x, kernel)
        for arr, analytic in ((x, dx), (kernel, dk), (bias, db)):
            idx, numeric = _numeric_grad(loss, arr, rng)
            np.testing.assert_allclose(analytic.reshape(-1)[idx], numeric, rtol=1e-6, atol=1e-7)
