"""The C convolution kernels for grouped, channels-first, transposed and
float64 layers, called through the binding and checked against PyTorch in
float64, on every SIMD path; bitwise identical for any thread count."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import assert_close
from fastconv import _kernels, shapes

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {np.float32: 1e-5, np.float64: 1e-12}

# (n, h, w, c_in), groups, c_out, (kh, kw), stride, dilation, padding: odd
# sizes, channel counts off the vector widths, 1x1, kernel = input, rows too
# short for the channels-first direct path, few channels, depthwise-like groups.
CASES = [
    ((2, 9, 8, 4), 1, 6, (3, 3), 1, 1, "same"),
    ((1, 7, 9, 12), 3, 9, (3, 3), 2, 1, "valid"),
    ((2, 6, 6, 64), 4, 64, (1, 1), 1, 1, "valid"),
    ((1, 10, 11, 32), 2, 34, (3, 3), 1, 2, "same"),
    ((2, 5, 7, 6), 6, 12, (3, 3), 1, 1, "same"),
    ((1, 12, 12, 40), 1, 40, (3, 3), 1, 1, "same"),
    ((1, 8, 8, 8), 1, 8, (3, 3), 2, 1, "same"),
    ((3, 28, 28, 32), 1, 64, (3, 3), 1, 1, "valid"),
    ((1, 5, 31, 2), 1, 70, (2, 3), 1, 1, "same"),
    ((2, 9, 10, 3), 1, 17, (3, 2), 3, 1, "same"),
    ((1, 4, 4, 5), 1, 3, (4, 4), 1, 1, "valid"),
    ((1, 11, 13, 7), 1, 5, (5, 3), 2, 2, "same"),
    ((1, 6, 5, 20), 1, 33, (1, 1), 1, 1, "valid"),
    ((2, 9, 8, 20), 1, 33, (1, 1), 2, 1, "valid"),
    ((7, 3, 30, 16), 2, 18, (3, 3), 1, 1, "same"),
    # channels-first: images read in place (windows cover them exactly), the
    # weight gradient over several chunks of images; a 1x1 layer as one row
    ((8, 28, 28, 4), 1, 6, (3, 3), 1, 1, "valid"),
    ((3, 40, 40, 8), 1, 5, (1, 1), 1, 1, "valid"),
]
IDS = ["x{}-g{}-o{}-k{}-s{}-d{}-{}".format(*c) for c in CASES]


def _torch_conv(x_nchw, w_oihw, b, g, groups):
    xt = torch.tensor(x_nchw, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w_oihw, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    padded = F.pad(xt, (g.pad_left, g.pad_right, g.pad_top, g.pad_bottom))
    y = F.conv2d(padded, wt, bt, stride=(g.stride_h, g.stride_w),
                 dilation=(g.dilation_h, g.dilation_w), groups=groups)
    return xt, wt, bt, y


def _layouts(x_nchw, w_oihw, channels_first):
    if channels_first:
        return np.ascontiguousarray(x_nchw), np.ascontiguousarray(w_oihw)
    return (np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)),
            np.ascontiguousarray(w_oihw.transpose(2, 3, 1, 0)))


def _to_user(a_nchw, channels_first):
    return a_nchw if channels_first else a_nchw.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv_matches_torch(simd, rng, case, dtype, channels_first):
    x_shape, groups, c_out, (kh, kw), s, d, padding = case
    n, h, w, c_in = x_shape
    g = shapes.conv2d_geometry(x_shape, (kh, kw), c_out, (s, s), padding, (d, d))
    x64 = rng.standard_normal((n, c_in, h, w))
    w64 = rng.standard_normal((c_out, c_in // groups, kh, kw))
    b64 = rng.standard_normal(c_out)
    xt, wt, bt, yt = _torch_conv(x64, w64, b64, g, groups)
    dy64 = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy64))
    x, kernel = _layouts(x64.astype(dtype), w64.astype(dtype), channels_first)
    b = b64.astype(dtype)
    dy = np.ascontiguousarray(_to_user(dy64.astype(dtype), channels_first))
    tol = TOL[dtype]
    kw_ = dict(groups=groups, channels_first=channels_first)
    for relu in (False, True):
        y = np.full(dy.shape, np.nan, dtype)
        _kernels.conv2d_forward(x, kernel, b, y, tuple(g), relu, 0, **kw_)
        want = yt.detach().numpy()
        scale = float(np.abs(want).max())
        want = np.maximum(want, 0) if relu else want
        assert_close(y, _to_user(want, channels_first), tol, f"forward relu={relu}", scale)
    dx = np.full(x.shape, np.nan, dtype)
    dk = np.full(kernel.shape, np.nan, dtype)
    db = np.full(c_out, np.nan, dtype)
    _kernels.conv2d_backward_input(dy, kernel, dx, tuple(g), 0, **kw_)
    _kernels.conv2d_backward_kernel(dy, x, dk, db, tuple(g), 0, **kw_)
    assert_close(dx, _to_user(xt.grad.numpy(), channels_first), tol, "dx")
    dk_want = wt.grad.numpy() if channels_first else wt.grad.numpy().transpose(2, 3, 1, 0)
    assert_close(dk, dk_want, 10 * tol, "dkernel")
    assert_close(db, bt.grad.numpy(), 10 * tol, "dbias")
    # The transposed convolution is the input gradient, with a bias and ReLU.
    bias_t = rng.standard_normal(c_in).astype(dtype)
    yt_t = np.full(x.shape, np.nan, dtype)
    _kernels.conv2d_transpose(dy, kernel, bias_t, yt_t, tuple(g), True, 0, **kw_)
    bias_shape = (1, c_in, 1, 1) if channels_first else (1, 1, 1, c_in)
    assert_close(yt_t, np.maximum(dx + bias_t.reshape(bias_shape), 0), tol, "transpose",
                 scale=float(np.abs(dx).max()))


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("groups", [1, 2])
def test_bitwise_identical_for_any_thread_count(rng, channels_first, groups):
    x_shape, c_out = (5, 13, 12, 8), 10
    g = shapes.conv2d_geometry(x_shape, (3, 3), c_out, (1, 1), "same")
    n, h, w, c_in = x_shape
    x = rng.standard_normal((n, c_in, h, w) if channels_first else x_shape).astype(np.float32)
    kernel = rng.standard_normal((c_out, c_in // groups, 3, 3) if channels_first
                                 else (3, 3, c_in // groups, c_out)).astype(np.float32)
    y_shape = (n, c_out, h, w) if channels_first else (n, h, w, c_out)
    dy = rng.standard_normal(y_shape).astype(np.float32)
    results = []
    for threads in (1, 2, 3, 16):
        y, dx = np.empty(y_shape, np.float32), np.empty_like(x)
        dk, db = np.empty_like(kernel), np.empty(c_out, np.float32)
        kw_ = dict(groups=groups, channels_first=channels_first)
        _kernels.conv2d_forward(x, kernel, None, y, tuple(g), False, threads, **kw_)
        _kernels.conv2d_backward_input(dy, kernel, dx, tuple(g), threads, **kw_)
        _kernels.conv2d_backward_kernel(dy, x, dk, db, tuple(g), threads, **kw_)
        results.append((y, dx, dk, db))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_nchw_weight_gradient_keeps_nan_where_the_reference_does(rng):
    """A NaN in the input reaches exactly the taps whose windows hold it (no
    lane the kernels compute past a row's end may carry it into another)."""
    x_shape, c_out = (2, 9, 20, 4), 3   # 'valid' 3x3: out_w 18, one vector + a tail
    g = shapes.conv2d_geometry(x_shape, (3, 3), c_out, (1, 1), "valid")
    x = rng.standard_normal((2, 4, 9, 20))
    x[1, 2, 4, 19] = np.nan             # the last column: only tap j = 2 reads it
    kernel = rng.standard_normal((c_out, 4, 3, 3))
    dy = rng.standard_normal((2, c_out, g.out_h, g.out_w))
    dk, db = np.empty_like(kernel), np.empty(c_out)
    _kernels.conv2d_backward_kernel(dy, x, dk, db, tuple(g), 0, 1, True)
    nan = np.isnan(dk)
    assert nan[:, 2, :, 2].all() and nan.sum() == nan[:, 2, :, 2].size


@pytest.mark.parametrize("field,value", [("groups", 3), ("groups", -1)])
def test_contract_bad_groups(field, value):
    import fc_capi as c
    lib = c.load()
    if lib is None:
        pytest.skip("the C symbols are hidden in this build")
    params = c.ConvParams(n=1, h=4, w=4, c_in=4, kh=3, kw=3, c_out=4, out_h=2, out_w=2,
                          stride_h=1, stride_w=1, dilation_h=1, dilation_w=1, pad_top=0,
                          pad_left=0, relu=0, n_threads=1, **{field: value})
    x, k, y = c.floats(64), c.floats(64), c.floats(16)
    assert lib.fc_conv2d_forward(params, c.ptr(x), c.ptr(k), None, c.ptr(y)) == c.FC_ERR_ARG
