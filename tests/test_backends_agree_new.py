"""The new conventions on the C backend: explicit pads, OIHW kernels, groups,
channels-first data, transposed convolutions and float64 run in the C kernels
and agree with the NumPy reference; ops whose C kernel is still pending run
the reference itself. The 1-D ops equal the 2-D ops they wrap."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from fastconv import ops
from conftest import assert_close, numpy_backend

FWD_RTOL = 1e-5
WGRAD_RTOL = 1e-4


class _CountingKernels:
    """Stands in for fastconv._kernels inside ops and counts the kernel calls."""

    def __init__(self, real):
        self._real = real
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)
        return counted


@pytest.fixture
def c_calls(monkeypatch):
    counting = _CountingKernels(ops._kernels)
    monkeypatch.setattr(ops, "_kernels", counting)
    return counting.calls


def f32(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def agree(actual, expected, rtol, what):
    for a, e, name in zip(actual, expected, ("dx", "dkernel", "dbias")):
        if e is None:
            assert a is None, f"{what} {name}"
        else:
            assert a.dtype == e.dtype and a.flags.c_contiguous
            assert_close(a, e, rtol, f"{what} {name}")


# ---------------------------------------------------------------------------
# conv2d: explicit pads the C kernels take, and an OIHW kernel with NHWC data

CONV_CASES = [
    # x NHWC, kernel HWIO, kwargs
    ((2, 7, 8, 5), (3, 3, 5, 6), dict(padding=1)),
    ((2, 7, 8, 5), (3, 3, 5, 6), dict(padding=((2, 0), (1, 5)), strides=2)),
    ((1, 9, 6, 3), (3, 2, 3, 17), dict(padding=((0, 3), (1, 1)), dilation_rate=(2, 1))),
    ((2, 6, 6, 20), (3, 3, 20, 16), dict(padding=(1, 1))),        # Winograd-sized
    ((2, 7, 6, 20), (3, 3, 20, 18), dict(padding=((0, 4), (2, 3)))),   # ... rows of padding only
    ((1, 5, 6, 3), (3, 3, 3, 5), dict(padding=((1, 6), (0, 0)), strides=(2, 1))),
    ((3, 5, 9, 2), (1, 4, 2, 7), dict(padding=((0, 0), (3, 0)), strides=(1, 3))),
    ((1, 4, 4, 4), (2, 2, 4, 3), dict(padding=(1, 0), strides=2)),  # bottom pad unreached
]


@pytest.mark.parametrize("oihw", [False, True], ids=["HWIO", "OIHW"])
@pytest.mark.parametrize("x_shape,k_shape,kw", CONV_CASES)
def test_conv2d_explicit_pads_run_in_c(simd, rng, c_calls, x_shape, k_shape, kw, oihw):
    x, kernel, bias = f32(rng, x_shape), f32(rng, k_shape), f32(rng, k_shape[3])
    if oihw:
        kernel = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        kw = dict(kw, kernel_format="OIHW")
    for activation in (None, "relu"):
        want = numpy_backend(fc.conv2d, x, kernel, bias, activation=activation, **kw)
        got = fc.conv2d(x, kernel, bias, activation=activation, **kw)
        assert_close(got, want, FWD_RTOL, f"forward {activation}",
                     scale=float(np.abs(want).max()) + 1)
    dy = f32(rng, want.shape)
    agree(fc.conv2d_backward(dy, x, kernel, **kw),
          numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw), WGRAD_RTOL, "backward")
    flags = dict(compute_dx=False, compute_dbias=False)
    agree(fc.conv2d_backward(dy, x, kernel, **kw, **flags),
          numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw, **flags), WGRAD_RTOL, "dk only")
    assert c_calls.count("conv2d_forward") == 2
    assert c_calls.count("conv2d_backward_input") == 1
    assert c_calls.count("conv2d_backward_kernel") == 2


def test_conv2d_dbias_alone(rng):
    x, kernel = f32(rng, (2, 5, 5, 3)), f32(rng, (3, 3, 3, 4))
    dy = f32(rng, (2, 5, 5, 4))
    dx, dk, db = fc.conv2d_backward(dy, x, kernel, padding=1, compute_dx=False,
                                    compute_dkernel=False, compute_dbias=True)
    assert dx is None and dk is None
    assert_close(db, fc.conv2d_backward(dy, x, kernel, padding=1)[2], WGRAD_RTOL)


# Grouped, depthwise-shaped, channels-first and float64 layers, and a top pad
# wider than the kernel (the C kernels get its excess as zero rows of a copy).
LAYOUT_CASES = [
    ((2, 6, 7, 4), (3, 3, 2, 6), dict(groups=2, padding=1)),
    ((1, 5, 5, 3), (3, 3, 1, 6), dict(groups=3, padding="same")),
    ((2, 6, 7, 4), (3, 3, 4, 5), dict(padding=((3, 0), (0, 4)))),
    ((2, 6, 7, 4), (1, 1, 4, 5), dict(padding=2, strides=2)),
    ((2, 6, 7, 4), (3, 3, 4, 5), dict(padding="same", data_format="NCHW")),
    ((2, 9, 17, 8), (3, 3, 4, 6), dict(padding=((1, 2), (0, 1)), groups=2, strides=(1, 2),
                                       data_format="NCHW", kernel_format="OIHW")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("x_shape,k_shape,kw", LAYOUT_CASES)
def test_conv2d_layouts_run_in_c(simd, rng, c_calls, x_shape, k_shape, kw, dtype):
    x = rng.standard_normal(x_shape).astype(dtype)
    kernel = rng.standard_normal(k_shape).astype(dtype)
    bias = rng.standard_normal(k_shape[3]).astype(dtype)
    if kw.get("data_format") == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if kw.get("kernel_format") == "OIHW":
        kernel = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    rtol = FWD_RTOL if dtype == np.float32 else 1e-12
    want = numpy_backend(fc.conv2d, x, kernel, bias, **kw)
    y = fc.conv2d(x, kernel, bias, **kw)
    assert y.dtype == dtype
    assert_close(y, want, rtol, "forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    agree(fc.conv2d_backward(dy, x, kernel, **kw),
          numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw), 10 * rtol, "backward")
    depthwise = kw.get("groups", 1) == x_shape[3]   # one group per input channel
    prefix = "depthwise_" if depthwise else ""
    assert c_calls == [prefix + name for name in
                       ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_kernel")]


# ---------------------------------------------------------------------------
# conv2d_transpose through the C input-gradient and weight-gradient kernels

TRANSPOSE_CASES = [
    # x NHWC, kernel HWIO (kh, kw, out, in), kwargs
    ((2, 4, 5, 6), (3, 3, 4, 6), dict(strides=2, padding="same")),
    ((2, 4, 5, 6), (3, 3, 4, 6), dict(strides=2, padding="valid")),
    ((1, 3, 4, 5), (4, 4, 3, 5), dict(strides=2, padding="same", output_padding=1)),
    ((2, 4, 3, 3), (3, 2, 17, 3), dict(strides=(1, 2), padding=(1, 1), output_padding=(0, 1))),
    ((1, 5, 5, 16), (3, 3, 20, 16), dict(padding="same")),                 # stride 1, 3x3
    ((2, 3, 3, 2), (2, 3, 5, 2), dict(strides=3, padding="valid", dilation_rate=(2, 1))),
    # rows wide enough for half-full row tiles (plan_row_tiles), a channel tail
    ((2, 14, 13, 8), (3, 3, 17, 8), dict(strides=2, padding="same")),
    ((1, 11, 12, 16), (3, 3, 32, 16), dict(strides=2, padding=(2, 1), dilation_rate=2)),
]


@pytest.mark.parametrize("x_shape,k_shape,kw", TRANSPOSE_CASES)
def test_conv2d_transpose_runs_in_c(simd, rng, c_calls, x_shape, k_shape, kw):
    x, kernel, bias = f32(rng, x_shape), f32(rng, k_shape), f32(rng, k_shape[2])
    for activation in (None, "relu"):
        want = numpy_backend(fc.conv2d_transpose, x, kernel, bias, activation=activation, **kw)
        got = fc.conv2d_transpose(x, kernel, bias, activation=activation, **kw)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert_close(got, want, FWD_RTOL, f"forward {activation}",
                     scale=float(np.abs(want).max()) + 1)
    dy = f32(rng, want.shape)
    agree(fc.conv2d_transpose_backward(dy, x, kernel, **kw),
          numpy_backend(fc.conv2d_transpose_backward, dy, x, kernel, **kw), WGRAD_RTOL,
          "backward")
    assert c_calls.count("conv2d_transpose") == 2
    assert c_calls.count("conv2d_forward") == 1
    assert c_calls.count("conv2d_backward_kernel") == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_conv2d_transpose_layouts_run_in_c(rng, c_calls, dtype):
    x = rng.standard_normal((2, 4, 4, 4)).astype(dtype)
    cases = [(rng.standard_normal((3, 3, 1, 4)), dict(strides=2, padding="same", groups=2)),
             (rng.standard_normal((3, 3, 2, 4)), dict(strides=2, padding=(3, 3))),
             (rng.standard_normal((3, 3, 2, 4)), dict(strides=2, padding="same",
                                                      data_format="NCHW"))]
    rtol = FWD_RTOL if dtype == np.float32 else 1e-12
    for kernel, kw in cases:
        kernel = kernel.astype(dtype)
        bias = rng.standard_normal(kernel.shape[2] * kw.get("groups", 1)).astype(dtype)
        y = fc.conv2d_transpose(x, kernel, bias, activation="relu", **kw)
        assert_close(y, numpy_backend(fc.conv2d_transpose, x, kernel, bias, activation="relu",
                                      **kw), rtol, f"forward {kw}")
        dy = rng.standard_normal(y.shape).astype(dtype)
        agree(fc.conv2d_transpose_backward(dy, x, kernel, **kw),
              numpy_backend(fc.conv2d_transpose_backward, dy, x, kernel, **kw), 10 * rtol,
              f"backward {kw}")
    # the first is depthwise-shaped (its associated convolution has one group per
    # input channel): the depthwise kernels take its dx and dkernel
    assert c_calls == (["conv2d_transpose", "depthwise_conv2d_forward",
                        "depthwise_conv2d_backward_kernel"] +
                       ["conv2d_transpose", "conv2d_forward", "conv2d_backward_kernel"] * 2)


# ---------------------------------------------------------------------------
# Max pooling with explicit pads, 1-D and global pooling

POOL_CASES = [
    ((2, 7, 9, 5), dict(pool_size=3, strides=2, padding=1)),
    ((2, 7, 9, 5), dict(pool_size=(2, 3), strides=1, padding=((1, 0), (2, 1)))),
    ((1, 6, 6, 70), dict(pool_size=3, strides=(1, 2), padding=(2, 0))),
]


@pytest.mark.parametrize("x_shape,kw", POOL_CASES)
def test_max_pool2d_explicit_pads_run_in_c(simd, rng, c_calls, x_shape, kw):
    x = np.round(f32(rng, x_shape) * 2) - 4    # ties, and negative values next to padding
    y = fc.max_pool2d(x, **kw)
    np.testing.assert_array_equal(y, numpy_backend(fc.max_pool2d, x, **kw))
    dy = f32(rng, y.shape)
    np.testing.assert_array_equal(fc.max_pool2d_backward(dy, x, **kw),
                                  numpy_backend(fc.max_pool2d_backward, dy, x, **kw))
    assert c_calls == ["max_pool2d_forward", "max_pool2d_backward"]


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_max_pool_runs_in_c(simd, rng, c_calls, keepdims):
    x = np.round(f32(rng, (3, 5, 7, 20)) * 2)
    x[0, 1, 2, :4] = np.nan
    y = fc.global_max_pool2d(x, keepdims=keepdims)
    np.testing.assert_array_equal(y, numpy_backend(fc.global_max_pool2d, x, keepdims=keepdims))
    dy = f32(rng, y.shape)
    np.testing.assert_array_equal(
        fc.global_max_pool2d_backward(dy, x, keepdims=keepdims),
        numpy_backend(fc.global_max_pool2d_backward, dy, x, keepdims=keepdims))
    assert c_calls == ["global_max_pool2d", "global_max_pool2d_backward"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_nchw_pooling_and_resampling_run_in_c(simd, rng, c_calls, dtype):
    x = np.round(rng.standard_normal((2, 3, 7, 6)) * 2).astype(dtype)
    rtol = FWD_RTOL if dtype == np.float32 else 1e-12
    cases = [(fc.max_pool2d, fc.max_pool2d_backward, dict(pool_size=3, strides=2, padding=1)),
             (fc.avg_pool2d, fc.avg_pool2d_backward, dict(pool_size=2, padding="same")),
             (fc.avg_pool2d, fc.avg_pool2d_backward,
              dict(pool_size=3, strides=1, padding=1, count_include_pad=True))]
    for fwd, bwd, kw in cases:
        y = fwd(x, data_format="NCHW", **kw)
        assert_close(y, numpy_backend(fwd, x, data_format="NCHW", **kw), rtol, fwd.__name__)
        dy = rng.standard_normal(y.shape).astype(dtype)
        assert_close(bwd(dy, x, data_format="NCHW", **kw),
                     numpy_backend(bwd, dy, x, data_format="NCHW", **kw), rtol, bwd.__name__)
    for fwd, bwd in ((fc.global_max_pool2d, fc.global_max_pool2d_backward),
                     (fc.global_avg_pool2d, fc.global_avg_pool2d_backward)):
        y = fwd(x, data_format="NCHW")
        assert_close(y, numpy_backend(fwd, x, data_format="NCHW"), rtol, fwd.__name__)
        dy = rng.standard_normal(y.shape).astype(dtype)
        assert_close(bwd(dy, x, data_format="NCHW"),
                     numpy_backend(bwd, dy, x, data_format="NCHW"), rtol, bwd.__name__)
    for mode in ("nearest", "bilinear"):
        y = fc.upsample2d(x, (2, 3), mode, data_format="NCHW")
        assert_close(y, numpy_backend(fc.upsample2d, x, (2, 3), mode, data_format="NCHW"), rtol)
        dy = rng.standard_normal(y.shape).astype(dtype)
        assert_close(fc.upsample2d_backward(dy, (2, 3), mode, data_format="NCHW"),
                     numpy_backend(fc.upsample2d_backward, dy, (2, 3), mode,
                                   data_format="NCHW"), rtol)
    assert "upsample2d_forward" in c_calls and "avg_pool2d_backward" in c_calls


@pytest.mark.parametrize("cf", [False, True], ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_batch_norm_runs_in_c(simd, rng, c_calls, dtype, cf):
    x = (rng.standard_normal((3, 5, 6, 7)) * 3 + 10).astype(dtype)
    gamma, beta = rng.standard_normal(5 if cf else 7).astype(dtype), None
    fmt = "channels_first" if cf else "channels_last"
    rtol = FWD_RTOL if dtype == np.float32 else 1e-12
    for got, want in zip(fc.batch_norm_train(x, gamma, beta, activation="relu", data_format=fmt),
                         numpy_backend(fc.batch_norm_train, x, gamma, beta, activation="relu",
                                       data_format=fmt)):
        assert_close(got, want, rtol, "train")
    _, mean, var = fc.batch_norm_train(x, gamma, beta, data_format=fmt)
    dy = rng.standard_normal(x.shape).astype(dtype)
    agree(fc.batch_norm_backward(dy, x, gamma, mean, var, data_format=fmt),
          numpy_backend(fc.batch_norm_backward, dy, x, gamma, mean, var, data_format=fmt),
          10 * rtol, "backward")
    assert_close(fc.batch_norm_inference(x, gamma, beta, mean, var, data_format=fmt),
                 numpy_backend(fc.batch_norm_inference, x, gamma, beta, mean, var,
                               data_format=fmt), rtol, "inference")
    assert c_calls.count("batch_norm_apply") == 3 and "batch_norm_backward" in c_calls


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("cf", [False, True], ids=["NWC", "NCW"])
def test_conv1d_is_conv2d_over_a_height_of_one(rng, backend, cf):
    x, kernel, bias = f32(rng, (2, 11, 4)), f32(rng, (3, 4, 6)), f32(rng, 6)  # NWC, WIO
    x4, k4 = x[:, None], kernel[None]
    if cf:
        x, x4 = np.ascontiguousarray(x.transpose(0, 2, 1)), np.ascontiguousarray(
            x4.transpose(0, 3, 1, 2))
    fmt1, fmt2 = ("NCW", "NCHW") if cf else ("NWC", "NHWC")
    with fc.use_backend(backend):
        for pad1, pad2 in (("valid", "valid"), ("same", "same"), ((2, 1), ((0, 0), (2, 1))),
                           ("causal", ((0, 0), (4, 0)))):
            kw = dict(strides=2, dilation_rate=2)
            y = fc.conv1d(x, kernel, bias, padding=pad1, data_format=fmt1, **kw)
            y4 = fc.conv2d(x4, k4, bias, padding=pad2, data_format=fmt2, **kw)
            np.testing.assert_array_equal(y, y4[:, :, 0] if cf else y4[:, 0])
            dy = f32(rng, y.shape)
            dy4 = dy[:, :, None] if cf else dy[:, None]
            got = fc.conv1d_backward(dy, x, kernel, padding=pad1, data_format=fmt1, **kw)
            want = fc.conv2d_backward(dy4, x4, k4, padding=pad2, data_format=fmt2, **kw)
            np.testing.assert_array_equal(got[0], want[0].reshape(x.shape))
            np.testing.assert_array_equal(got[1], want[1][0])
            np.testing.assert_array_equal(got[2], want[2])
        # OIW kernels, as PyTorch's conv1d weight
        oiw = np.ascontiguousarray(kernel.transpose(2, 1, 0))
        np.testing.assert_array_equal(
            fc.conv1d(x, oiw, bias, kernel_format="OIW", data_format=fmt1),
            fc.conv1d(x, kernel, bias, data_format=fmt1))


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_pool1d_is_pool2d_over_a_height_of_one(rng, backend):
    x = np.round(f32(rng, (2, 13, 5)) * 2)
    with fc.use_backend(backend):
        for pool1, pool2, extra in ((fc.max_pool1d, fc.max_pool2d, {}),
                                    (fc.avg_pool1d, fc.avg_pool2d, {}),
                                    (fc.avg_pool1d, fc.avg_pool2d, {"count_include_pad": True})):
            back1 = {fc.max_pool1d: fc.max_pool1d_backward,
                     fc.avg_pool1d: fc.avg_pool1d_backward}[pool1]
            back2 = {fc.max_pool2d: fc.max_pool2d_backward,
                     fc.avg_pool2d: fc.avg_pool2d_backward}[pool2]
            for p1, p2 in (("same", "same"), ((1, 2), ((0, 0), (1, 2)))):
                y = pool1(x, 3, 2, p1, **extra)
                y4 = pool2(x[:, None], (1, 3), (1, 2), p2, **extra)
                np.testing.assert_array_equal(y, y4[:, 0])
                dy = f32(rng, y.shape)
                np.testing.assert_array_equal(back1(dy, x, 3, 2, p1, **extra),
                                              back2(dy[:, None], x[:, None], (1, 3), (1, 2), p2,
                                                    **extra)[:, 0])
