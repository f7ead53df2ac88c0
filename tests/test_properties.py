"""Property-based: C backend == NumPy reference over random shapes and parameters."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc
from conftest import assert_close, numpy_backend


@st.composite
def conv_problems(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["valid", "same", "SAME", "Valid"]))
    min_h = (kh - 1) * dh + 1 if padding.lower() == "valid" else 1
    min_w = (kw - 1) * dw + 1 if padding.lower() == "valid" else 1
    h, w = draw(st.integers(min_h, min_h + 9)), draw(st.integers(min_w, min_w + 9))
    n, c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    return (n, h, w, c_in), (kh, kw, c_in, c_out), dict(
        strides=(sh, sw), dilation_rate=(dh, dw), padding=padding), seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_problems())
def test_conv2d_backends_agree(problem):
    x_shape, k_shape, kw, seed = problem
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    kernel = rng.standard_normal(k_shape).astype(np.float32)
    bias = rng.standard_normal(k_shape[3]).astype(np.float32)
    # Rounding errors scale with the sums of |terms|, not with the result,
    # which may cancel to far less: the same sums over absolute values.
    magnitude = float(numpy_backend(fc.conv2d, np.abs(x), np.abs(kernel), np.abs(bias),
                                    **kw).max())
    linear = numpy_backend(fc.conv2d, x, kernel, bias, **kw)
    assert_close(fc.conv2d(x, kernel, bias, **kw), linear, 1e-5, scale=magnitude)
    y = fc.conv2d(x, kernel, bias, activation="relu", **kw)
    assert_close(y, numpy_backend(fc.conv2d, x, kernel, bias, activation="relu", **kw), 1e-5,
                 scale=magnitude)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = fc.conv2d_backward(dy, x, kernel, **kw)
    want = numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw)
    magnitudes = numpy_backend(fc.conv2d_backward, np.abs(dy), np.abs(x), np.abs(kernel), **kw)
    for a, e, m, tol in zip(got, want, magnitudes, (1e-5, 1e-4, 1e-4)):
        assert_close(a, e, tol, scale=float(np.max(m)))


@st.composite
def pool_problems(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    padding = draw(st.sampled_from(["valid", "same"]))
    h = draw(st.integers(ph if padding == "valid" else 1, 12))
    w = draw(st.integers(pw if padding == "valid" else 1, 12))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 70))
    return (n, h, w, c), dict(pool_size=(ph, pw), strides=strides, padding=padding), \
        draw(st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(pool_problems())
def test_max_pool_backends_agree_exactly(problem):
    x_shape, kw, seed = problem
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal(x_shape) * 2).astype(np.float32)
    y = fc.max_pool2d(x, **kw)
    np.testing.assert_array_equal(y, numpy_backend(fc.max_pool2d, x, **kw))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(fc.max_pool2d_backward(dy, x, **kw),
                                  numpy_backend(fc.max_pool2d_backward, dy, x, **kw))
