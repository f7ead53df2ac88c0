"""Every backward of the NumPy reference against central finite differences
in float64: the gradient of ``<w, f(inputs)>`` for a random projection ``w``,
at a few random coordinates of each input."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc

RTOL = 1e-7


@pytest.fixture(autouse=True)
def _numpy_backend():
    with fc.use_backend("numpy"):
        yield


def check_gradients(forward, inputs, analytic, rng, eps=1e-5, points=12):
    """``forward()`` reads the arrays of ``inputs`` (name -> array, perturbed in
    place); ``analytic`` maps the same names to the claimed gradients of the
    scalar ``forward()``. Norm-wise relative error per input."""
    for name, arr in inputs.items():
        grad = analytic[name]
        assert grad.shape == arr.shape and grad.dtype == np.float64, name
        flat = arr.reshape(-1)
        idx = rng.choice(flat.size, size=min(points, flat.size), replace=False)
        numeric = []
        for i in idx:
            old = flat[i]
            flat[i] = old + eps
            up = forward()
            flat[i] = old - eps
            down = forward()
            flat[i] = old
            numeric.append((up - down) / (2 * eps))
        numeric = np.array(numeric)
        ours = grad.reshape(-1)[idx]
        scale = max(np.abs(grad).max(), 1e-12)
        err = np.abs(ours - numeric).max()
        assert err <= RTOL * scale, f"{name}: max error {err:.3e} > {RTOL:.0e} * {scale:.3e}"


def to_user(a, cf):
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if cf else a


# ---------------------------------------------------------------------------
# Convolutions

CONV_CASES = [
    # x NHWC, kernel HWIO, kwargs
    ((2, 6, 7, 4), (3, 3, 2, 6), dict(groups=2, padding=((1, 2), (0, 3)), strides=(2, 1))),
    ((1, 5, 6, 3), (3, 2, 1, 6), dict(groups=3, padding="same", dilation_rate=(2, 1))),
    ((2, 5, 5, 2), (2, 2, 2, 3), dict(padding=(3, 1), strides=2)),   # pads beyond the kernel
    ((1, 4, 6, 4), (1, 3, 1, 4), dict(groups=4, padding=1, strides=(1, 3))),
]


@pytest.mark.parametrize("cf", [False, True], ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("oihw", [False, True], ids=["HWIO", "OIHW"])
@pytest.mark.parametrize("x_shape,k_shape,kw", CONV_CASES)
def test_conv2d(rng, x_shape, k_shape, kw, cf, oihw):
    x = to_user(rng.standard_normal(x_shape), cf)
    kernel = rng.standard_normal(k_shape)
    if oihw:
        kernel = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    bias = rng.standard_normal(k_shape[3])
    kw = dict(kw, data_format="NCHW" if cf else "NHWC", kernel_format="OIHW" if oihw else "HWIO")
    proj = rng.standard_normal(fc.conv2d(x, kernel, **kw).shape)
    dx, dk, db = fc.conv2d_backward(proj, x, kernel, **kw)
    check_gradients(lambda: float(np.sum(fc.conv2d(x, kernel, bias, **kw) * proj)),
                    {"x": x, "kernel": kernel, "bias": bias},
                    {"x": dx, "kernel": dk, "bias": db}, rng)


@pytest.mark.parametrize("kw", [
    dict(padding="causal", dilation_rate=2),
    dict(padding=(2, 0), strides=2, groups=2),
    dict(padding="same", strides=3, data_format="NCW", kernel_format="OIW"),
])
def test_conv1d(rng, kw):
    cf = kw.get("data_format") == "NCW"
    x = to_user(rng.standard_normal((2, 9, 4)), cf)
    kernel = rng.standard_normal((3, 2 if kw.get("groups") else 4, 6))
    if kw.get("kernel_format") == "OIW":
        kernel = np.ascontiguousarray(kernel.transpose(2, 1, 0))
    bias = rng.standard_normal(6)
    proj = rng.standard_normal(fc.conv1d(x, kernel, **kw).shape)
    dx, dk, db = fc.conv1d_backward(proj, x, kernel, **kw)
    check_gradients(lambda: float(np.sum(fc.conv1d(x, kernel, bias, **kw) * proj)),
                    {"x": x, "kernel": kernel, "bias": bias},
                    {"x": dx, "kernel": dk, "bias": db}, rng)


TRANSPOSE_CASES = [
    # x NHWC, kernel HWIO (kh, kw, out/groups, in), kwargs
    ((2, 3, 4, 4), (3, 3, 3, 4), dict(strides=2, padding="same")),
    ((1, 3, 3, 2), (4, 3, 2, 2), dict(strides=2, padding="same", output_padding=1)),
    ((1, 3, 4, 2), (2, 3, 2, 2), dict(strides=(3, 2), padding="valid", dilation_rate=(1, 2))),
    ((2, 4, 3, 4), (3, 2, 1, 4), dict(strides=2, padding=(1, 0), output_padding=(1, 0),
                                      groups=2)),
]


@pytest.mark.parametrize("cf", [False, True], ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("x_shape,k_shape,kw", TRANSPOSE_CASES)
def test_conv2d_transpose(rng, x_shape, k_shape, kw, cf):
    x = to_user(rng.standard_normal(x_shape), cf)
    kernel = rng.standard_normal(k_shape)
    if cf:
        kernel = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    bias = rng.standard_normal(k_shape[2] * kw.get("groups", 1))
    kw = dict(kw, data_format="NCHW" if cf else "NHWC", kernel_format="OIHW" if cf else "HWIO")
    proj = rng.standard_normal(fc.conv2d_transpose(x, kernel, **kw).shape)
    dx, dk, db = fc.conv2d_transpose_backward(proj, x, kernel, **kw)
    check_gradients(lambda: float(np.sum(fc.conv2d_transpose(x, kernel, bias, **kw) * proj)),
                    {"x": x, "kernel": kernel, "bias": bias},
                    {"x": dx, "kernel": dk, "bias": db}, rng)


# ---------------------------------------------------------------------------
# Pooling (distinct values, gaps far above eps: max pooling stays differentiable)

def distinct(rng, shape):
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64) / 10 - 5


POOL_CASES = [
    dict(pool_size=3, strides=2, padding=1),
    dict(pool_size=(2, 3), strides=1, padding=((1, 0), (0, 2))),
    dict(pool_size=3, strides=(1, 2), padding="same"),
]


@pytest.mark.parametrize("cf", [False, True], ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("kw", POOL_CASES)
def test_max_pool2d(rng, kw, cf):
    x = to_user(distinct(rng, (2, 5, 6, 3)), cf)
    kw = dict(kw, data_format="NCHW" if cf else "NHWC")
    proj = rng.standard_normal(fc.max_pool2d(x, **kw).shape)
    dx = fc.max_pool2d_backward(proj, x, **kw)
    check_gradients(lambda: float(np.sum(fc.max_pool2d(x, **kw) * proj)), {"x": x}, {"x": dx},
                    rng, points=40)


@pytest.mark.parametrize("include", [False, True])
@pytest.mark.parametrize("cf", [False, True], ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("kw", POOL_CASES)
def test_avg_pool2d(rng, kw, cf, include):
    x = to_user(rng.standard_normal((2, 5, 6, 3)), cf)
    kw = dict(kw, data_format="NCHW" if cf else "NHWC", count_include_pad=include)
    proj = rng.standard_normal(fc.avg_pool2d(x, **kw).shape)
    dx = fc.avg_pool2d_backward(proj, x, **kw)
    check_gradients(lambda: float(np.sum(fc.avg_pool2d(x, **kw) * proj)), {"x": x}, {"x": dx},
                    rng, points=40)


@pytest.mark.parametrize("kw", [dict(pool_size=3, strides=2, padding=(1, 2)),
                                dict(pool_size=2, padding="same", data_format="NCW")])
def test_pool1d(rng, kw):
    x = distinct(rng, (2, 7, 3))
    for forward, backward, extra in ((fc.max_pool1d, fc.max_pool1d_backward, {}),
                                     (fc.avg_pool1d, fc.avg_pool1d_backward, {}),
                                     (fc.avg_pool1d, fc.avg_pool1d_backward,
                                      {"count_include_pad": True})):
        args = dict(kw, **extra)
        proj = rng.standard_normal(forward(x, **args).shape)
        dx = backward(proj, x, **args)
        check_gradients(lambda: float(np.sum(forward(x, **args) * proj)), {"x": x}, {"x": dx},
                        rng)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_global_pools(rng, fmt, keepdims):
    x = distinct(rng, (2, 4, 3, 5))
    for forward, backward in ((fc.global_avg_pool2d, fc.global_avg_pool2d_backward),
                              (fc.global_max_pool2d, fc.global_max_pool2d_backward)):
        kw = dict(data_format=fmt, keepdims=keepdims)
        proj = rng.standard_normal(forward(x, **kw).shape)
        dx = backward(proj, x, **kw)
        check_gradients(lambda: float(np.sum(forward(x, **kw) * proj)), {"x": x}, {"x": dx},
                        rng, points=30)


# ---------------------------------------------------------------------------
# Batch normalization (the batch statistics depend on x: included in dx)

@pytest.mark.parametrize("shape,fmt", [((4, 3, 5, 2), "channels_last"),
                                       ((4, 3, 5, 2), "channels_first"),
                                       ((6, 3), "channels_last"), ((3, 2, 7), "NCW")])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(rng, shape, fmt, affine):
    x = rng.standard_normal(shape) * 3 + 1
    channels = shape[1] if fmt in ("channels_first", "NCW") else shape[-1]
    gamma = rng.standard_normal(channels) if affine else None
    beta = rng.standard_normal(channels) if affine else None
    proj = rng.standard_normal(shape)
    kw = dict(epsilon=1e-3, data_format=fmt)
    _, mean, var = fc.batch_norm_train(x, gamma, beta, **kw)
    dx, dgamma, dbeta = fc.batch_norm_backward(proj, x, gamma, mean, var, **kw)

    if affine:
        def loss():
            return float(np.sum(fc.batch_norm_train(x, gamma, beta, **kw)[0] * proj))
        check_gradients(loss, {"x": x, "gamma": gamma, "beta": beta},
                        {"x": dx, "gamma": dgamma, "beta": dbeta}, rng)
    else:
        # gamma None is an implicit gamma of ones: dgamma/dbeta are its gradients
        ones, zeros = np.ones(channels), np.zeros(channels)

        def loss():
            return float(np.sum(fc.batch_norm_train(x, ones, zeros, **kw)[0] * proj))
        check_gradients(loss, {"x": x, "gamma": ones, "beta": zeros},
                        {"x": dx, "gamma": dgamma, "beta": dbeta}, rng)


def test_batch_norm_inference_is_linear_in_its_arguments(rng):
    x = rng.standard_normal((3, 4, 2))
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    mm, mv = rng.standard_normal(2), rng.random(2) + 0.5
    y = fc.batch_norm_inference(x, gamma, beta, mm, mv, epsilon=1e-3)
    np.testing.assert_allclose(y, (x - mm) / np.sqrt(mv + 1e-3) * gamma + beta, rtol=1e-13)


# ---------------------------------------------------------------------------
# Upsampling

@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("fmt,size", [("NHWC", 2), ("NCHW", (3, 2)), ("NHWC", (1, 4))])
def test_upsample2d(rng, interpolation, fmt, size):
    x = rng.standard_normal((2, 3, 4, 3))
    kw = dict(interpolation=interpolation, data_format=fmt)
    proj = rng.standard_normal(fc.upsample2d(x, size, **kw).shape)
    dx = fc.upsample2d_backward(proj, size, **kw)
    check_gradients(lambda: float(np.sum(fc.upsample2d(x, size, **kw) * proj)), {"x": x},
                    {"x": dx}, rng, points=30)
