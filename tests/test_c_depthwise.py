"""The C depthwise-convolution kernels (csrc/depthwise*.c/h) through their
bindings in fastconv._kernels: groups == c_in, channel multiplier M = c_out /
c_in, channels last (NHWC, kernel HWIO (kh, kw, 1, c_out)) and channels first
(NCHW, kernel OIHW (c_out, 1, kh, kw)).

Oracles: a plain NumPy loop over the taps on the zero-padded input, written
here, and PyTorch's F.conv2d(groups=c_in) in float64 with autograd (the input
padded explicitly: TensorFlow's 'same' pads are asymmetric). The C API's
contract (hostile parameters) is checked through ctypes in a child process.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fc_capi
from conftest import assert_close
from fastconv import _kernels
from fastconv.shapes import conv2d_geometry
from reliability import result_lines, run_python

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = (np.float32, np.float64)


def make_geometry(x_shape, kh, kw, multiplier, strides, dilation, padding):
    """A 17-field geometry: padding 'same' / 'valid' (TensorFlow's), or explicit
    (pad_top, pad_bottom, pad_left, pad_right)."""
    n, h, w, c = x_shape
    if isinstance(padding, str):
        return tuple(conv2d_geometry(x_shape, (kh, kw), c * multiplier, strides, padding,
                                     dilation))[:17]
    pt, pb, pl, pr = padding
    out_h = (h + pt + pb - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    out_w = (w + pl + pr - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    return (n, h, w, c, kh, kw, c * multiplier, out_h, out_w, strides[0], strides[1],
            dilation[0], dilation[1], pt, pb, pl, pr)


def unpack(g):
    n, h, w, c, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, _, pl, _ = g
    return n, h, w, c, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, pl


# --------------------------------------------------------------------------
# The NumPy oracle: loops over the taps of a zero-padded input, float64, NHWC.

def _padded_extent(g):
    n, h, w, c, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, pl = unpack(g)
    hp = max(h + pt, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(w + pl, (ow - 1) * sw + (kw - 1) * dw + 1)
    return hp, wp


def _tap_slices(g, i, j):
    n, h, w, c, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, pl = unpack(g)
    return (slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
            slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))


def oracle_forward(x, k, bias, g, relu=False):
    """x (n, h, w, c_in), k (kh, kw, 1, c_out) -> y (n, out_h, out_w, c_out)."""
    n, h, w, c, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, pl = unpack(g)
    hp, wp = _padded_extent(g)
    xp = np.zeros((n, hp, wp, c))
    xp[:, pt:pt + h, pl:pl + w] = x
    xp = np.repeat(xp, co // c, axis=3)          # channel o reads input channel o // M
    y = np.zeros((n, oh, ow, co))
    for i in range(kh):
        for j in range(kw):
            rows, cols = _tap_slices(g, i, j)
            y += xp[:, rows, cols] * k[i, j, 0]
    if bias is not None:
        y += bias
    return np.maximum(y, 0) if relu else y


def oracle_backward(dy, x, k, g):
    """(dx, dk, db) of the forward above for the output gradient dy."""
    n, h, w, c, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, pl = unpack(g)
    hp, wp = _padded_extent(g)
    xp = np.zeros((n, hp, wp, c))
    xp[:, pt:pt + h, pl:pl + w] = x
    xp = np.repeat(xp, co // c, axis=3)
    dxp = np.zeros((n, hp, wp, co))
    dk = np.zeros((kh, kw, 1, co))
    for i in range(kh):
        for j in range(kw):
            rows, cols = _tap_slices(g, i, j)
            dxp[:, rows, cols] += dy * k[i, j, 0]
            dk[i, j, 0] = (dy * xp[:, rows, cols]).sum(axis=(0, 1, 2))
    dx = dxp[:, pt:pt + h, pl:pl + w].reshape(n, h, w, c, co // c).sum(axis=4)
    return dx, dk, dy.sum(axis=(0, 1, 2))


# --------------------------------------------------------------------------
# Calling the kernels in either layout; arrays in and out are NHWC / HWIO.

def to_layout(a, channels_first, kernel=False):
    if not channels_first:
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(a.transpose((3, 2, 0, 1) if kernel else (0, 3, 1, 2)))


def from_layout(a, channels_first, kernel=False):
    if not channels_first:
        return a
    return a.transpose((2, 3, 1, 0) if kernel else (0, 2, 3, 1))


def nan_array(shape_nhwc, dtype, channels_first, kernel=False):
    shape = shape_nhwc
    if channels_first:
        shape = tuple(shape_nhwc[i] for i in ((3, 2, 0, 1) if kernel else (0, 3, 1, 2)))
    return np.full(shape, np.nan, dtype)


def run_forward(x, k, bias, g, dtype, channels_first, relu=False, n_threads=2):
    n, h, w, c, kh, kw, co, oh, ow = g[:9]
    xc, kc = to_layout(x.astype(dtype), channels_first), to_layout(k.astype(dtype), channels_first, True)
    bc = None if bias is None else bias.astype(dtype)
    saved = (xc.copy(), kc.copy(), None if bc is None else bc.copy())
    y = nan_array((n, oh, ow, co), dtype, channels_first)
    _kernels.depthwise_conv2d_forward(xc, kc, bc, y, g, relu, channels_first, n_threads)
    for a, b in zip((xc, kc, bc), saved):
        assert a is None or np.array_equal(a, b, equal_nan=True), "an input was written"
    return from_layout(y, channels_first)


def run_backward(dy, x, k, g, dtype, channels_first, with_bias=True, n_threads=2):
    n, h, w, c, kh, kw, co, oh, ow = g[:9]
    dyc = to_layout(dy.astype(dtype), channels_first)
    xc, kc = to_layout(x.astype(dtype), channels_first), to_layout(k.astype(dtype), channels_first, True)
    saved = (dyc.copy(), xc.copy(), kc.copy())
    dx = nan_array((n, h, w, c), dtype, channels_first)
    _kernels.depthwise_conv2d_backward_input(dyc, kc, dx, g, channels_first, n_threads)
    dk = nan_array((kh, kw, 1, co), dtype, channels_first, kernel=True)
    db = np.full(co, np.nan, dtype) if with_bias else None
    _kernels.depthwise_conv2d_backward_kernel(dyc, xc, dk, db, g, channels_first, n_threads)
    for a, b in zip((dyc, xc, kc), saved):
        assert np.array_equal(a, b, equal_nan=True), "an input was written"
    return from_layout(dx, channels_first), from_layout(dk, channels_first, True), db


def random_case(rng, g):
    n, h, w, c, kh, kw, co, oh, ow = g[:9]
    x = rng.standard_normal((n, h, w, c))
    k = rng.standard_normal((kh, kw, 1, co))
    bias = rng.standard_normal(co)
    dy = rng.standard_normal((n, oh, ow, co))
    return x, k, bias, dy


def check_all(rng, g, dtype, channels_first, relu=False):
    x, k, bias, dy = random_case(rng, g)
    rtol = RTOL[dtype]
    y = run_forward(x, k, bias, g, dtype, channels_first, relu=relu)
    want = oracle_forward(x, k, bias, g, relu=relu)
    # after a ReLU the surviving outputs carry the rounding of the whole sums
    assert_close(y, want, rtol, "forward", scale=np.abs(oracle_forward(x, k, bias, g)).max())
    dx, dk, db = run_backward(dy, x, k, g, dtype, channels_first)
    want_dx, want_dk, want_db = oracle_backward(dy, x, k, g)
    assert_close(dx, want_dx, rtol, "dx")
    assert_close(dk, want_dk, rtol, "dkernel")
    assert_close(db, want_db, rtol, "dbias")


# (x shape NHWC, kh, kw, multiplier, strides, dilation, padding)
CASES = [
    ((2, 9, 11, 3), 3, 3, 1, (1, 1), (1, 1), "same"),
    ((1, 8, 7, 17), 3, 3, 2, (2, 2), (1, 1), "same"),          # asymmetric TF pads
    ((2, 10, 9, 70), 5, 5, 1, (3, 3), (2, 2), "same"),
    ((1, 6, 6, 1), 1, 1, 3, (1, 1), (1, 1), "valid"),
    ((2, 7, 5, 3), 3, 3, 3, (1, 2), (2, 1), "same"),
    ((1, 5, 4, 17), 5, 4, 1, (1, 1), (1, 1), "valid"),         # kernel = input
    ((1, 9, 8, 17), 3, 3, 2, (2, 2), (1, 1), (2, 0, 1, 2)),    # explicit pads
    ((2, 6, 13, 5), 2, 5, 1, (2, 1), (1, 2), "same"),
    ((1, 7, 23, 70), 3, 3, 1, (1, 1), (1, 1), "same"),         # interior blocks, a tail
    ((1, 5, 6, 70), 3, 3, 2, (1, 1), (1, 1), "valid"),         # 140 outputs: blocks + tail
    ((1, 12, 12, 1), 5, 5, 1, (3, 2), (1, 1), (2, 1, 1, 0)),
    ((1, 3, 3, 4), 3, 3, 1, (3, 3), (1, 1), (2, 0, 2, 0)),      # one output row and column
    ((2, 4, 5, 3), 3, 3, 2, (1, 1), (1, 1), (1, 4, 0, 3)),      # outputs that see no input
    # the sliding 3-tap weight-gradient window: runs of every length mod 3,
    # stride == dilation 2, and a 3-tap segment of a wide kernel
    ((1, 4, 24, 33), 3, 3, 1, (1, 1), (1, 1), "same"),
    ((1, 4, 25, 33), 3, 3, 1, (1, 1), (1, 1), "same"),
    ((1, 9, 14, 20), 3, 3, 1, (2, 2), (2, 2), "same"),
    ((1, 9, 14, 18), 7, 7, 1, (1, 1), (1, 1), "same"),
    # the forward's 3-column interior runs: blocks of 2 and 3 vectors and a
    # tail, stride 1 and 2, groups of 4 pixels and every remainder; stride 1
    # splits channels into blocks of at most 2 vectors (AVX-512: 53 is 2 + 1
    # and a 5-lane tail, 100 three of 2 and a 4-lane tail)
    ((2, 6, 19, 40), 3, 3, 1, (1, 1), (1, 1), "valid"),
    ((1, 5, 30, 53), 3, 3, 1, (2, 2), (1, 1), "same"),
    ((1, 4, 16, 53), 3, 3, 1, (1, 2), (1, 1), (1, 1, 0, 2)),
    ((1, 5, 22, 53), 3, 3, 1, (1, 1), (1, 1), "same"),
    ((2, 4, 13, 100), 3, 3, 1, (1, 1), (1, 1), "valid"),
]
CASE_IDS = [f"{s[0]}-{s[1]}x{s[2]}-M{s[3]}-s{s[4]}-d{s[5]}-{s[6]}" for s in CASES]


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_numpy_oracle(simd, rng, case, dtype, channels_first):
    shape, kh, kw, m, strides, dilation, padding = case
    g = make_geometry(shape, kh, kw, m, strides, dilation, padding)
    check_all(rng, g, dtype, channels_first)


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_relu_bias_none_and_no_dbias(simd, rng, dtype, channels_first):
    g = make_geometry((2, 9, 10, 19), 3, 3, 2, (2, 1), (1, 1), "same")
    x, k, bias, dy = random_case(rng, g)
    plain = run_forward(x, k, bias, g, dtype, channels_first)
    fused = run_forward(x, k, bias, g, dtype, channels_first, relu=True)
    assert np.array_equal(fused, np.maximum(plain, 0))
    no_bias = run_forward(x, k, None, g, dtype, channels_first)
    assert_close(no_bias, oracle_forward(x, k, None, g), RTOL[dtype], "no bias")
    with_db = run_backward(dy, x, k, g, dtype, channels_first)
    without = run_backward(dy, x, k, g, dtype, channels_first, with_bias=False)
    assert np.array_equal(with_db[1], without[1])


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_benchmark_layers(rng, dtype, channels_first):
    """The benchmarked shapes (at batch 2): 3x3 on 56x56x64 stride 1 and on
    56x56x128 to 28x28 stride 2, TensorFlow 'same'."""
    for shape, s in (((2, 56, 56, 64), 1), ((2, 56, 56, 128), 2)):
        g = make_geometry(shape, 3, 3, 1, (s, s), (1, 1), "same")
        check_all(rng, g, dtype, channels_first)


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
def test_wide_rows_with_multiplier(rng, channels_first):
    """Rows of 64 pixels x 256 channels: the channels-last forward expands one
    band of rows at a time."""
    g = make_geometry((1, 6, 64, 128), 3, 3, 2, (1, 1), (1, 1), "same")
    check_all(rng, g, np.float64, channels_first)


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_input_reaches_its_windows_only(simd, rng, value, channels_first):
    g = make_geometry((1, 8, 9, 3), 3, 3, 2, (2, 1), (1, 2), "same")
    x, k, bias, _ = random_case(rng, g)
    x[0, 3, 4, 1] = value
    hit = np.zeros_like(x)
    hit[0, 3, 4, 1] = 1.0
    reached = oracle_forward(hit, np.ones_like(k), None, g) > 0
    y = run_forward(x, k, bias, g, np.float32, channels_first)
    bad = np.isnan(y) if value != value else np.isinf(y)
    assert np.array_equal(bad, reached), "non-finite outputs differ from the windows"
    # ReLU keeps NaN (and takes -inf to 0)
    fused = run_forward(x, k, bias, g, np.float32, channels_first, relu=True)
    assert np.array_equal(fused, np.maximum(y, 0), equal_nan=True)


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
def test_bitwise_identical_across_thread_counts(rng, channels_first):
    # several weight-gradient chunks per image (40 x 40 outputs), one plane per
    # image and channel 1 (the channels-first drivers split rows per thread)
    cases = [make_geometry((4, 40, 40, 24), 3, 3, 1, (1, 1), (1, 1), "same"),
             make_geometry((3, 41, 40, 8), 3, 3, 2, (2, 2), (1, 1), "same"),
             make_geometry((2, 96, 96, 1), 5, 5, 1, (1, 1), (2, 2), "same")]
    for g in cases:
        x, k, bias, dy = random_case(rng, g)
        runs = []
        for n_threads in (1, 2, 3, 16):
            y = run_forward(x, k, bias, g, np.float32, channels_first, relu=True,
                            n_threads=n_threads)
            runs.append((y,) + run_backward(dy, x, k, g, np.float32, channels_first,
                                            n_threads=n_threads))
        for other in runs[1:]:
            for a, b in zip(runs[0], other):
                assert np.array_equal(a, b), "results depend on the thread count"


# --------------------------------------------------------------------------
# PyTorch, float64 with autograd.

TORCH_CASES = [CASES[i] for i in (0, 1, 2, 4, 6, 7, 9, 12)]


@pytest.mark.parametrize("channels_first", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=[CASE_IDS[CASES.index(c)] for c in TORCH_CASES])
def test_matches_torch(rng, case, channels_first):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the oracle is optional")
    F = torch.nn.functional
    shape, kh, kw, m, strides, dilation, padding = case
    g = make_geometry(shape, kh, kw, m, strides, dilation, padding)
    n, h, w, c, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, pl = unpack(g)
    x, k, bias, dy = random_case(rng, g)
    xt = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_(True)
    kt = torch.tensor(k).permute(3, 2, 0, 1).contiguous().requires_grad_(True)
    bt = torch.tensor(bias).requires_grad_(True)
    # bottom/right pads implied by the output size (negative: rows never read)
    pb = (oh - 1) * sh + (kh - 1) * dh + 1 - h - pt
    pr = (ow - 1) * sw + (kw - 1) * dw + 1 - w - pl
    yt = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), kt, bt, stride=(sh, sw), dilation=(dh, dw),
                  groups=c)
    yt.backward(torch.tensor(dy).permute(0, 3, 1, 2))
    want = [yt.detach().permute(0, 2, 3, 1).numpy(), xt.grad.permute(0, 2, 3, 1).numpy(),
            kt.grad.permute(2, 3, 1, 0).numpy(), bt.grad.numpy()]
    for dtype in DTYPES:
        got = [run_forward(x, k, bias, g, dtype, channels_first)]
        got += run_backward(dy, x, k, g, dtype, channels_first)
        for what, a, b in zip(("y", "dx", "dkernel", "dbias"), got, want):
            assert_close(a, b, RTOL[dtype], what)


# --------------------------------------------------------------------------
# The C contract, through ctypes in a child process.

CONTRACT = r"""
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import fc_capi as c

lib = c.load()
ok = dict(n=1, h=4, w=4, c_in=2, kh=3, kw=3, c_out=4, out_h=2, out_w=2, stride_h=1, stride_w=1,
          dilation_h=1, dilation_w=1, pad_top=0, pad_left=0, relu=0, n_threads=1, groups=2)
x, k = c.floats(32, 1), c.floats(36, 1)

def dw_all(params, x, k, y, dx, dk, db):
    return (lib.fc_depthwise_conv2d_forward(params, c.ptr(x), c.ptr(k), None, c.ptr(y)),
            lib.fc_depthwise_conv2d_backward_input(params, c.ptr(y), c.ptr(k), c.ptr(dx)),
            lib.fc_depthwise_conv2d_backward_kernel(params, c.ptr(y), c.ptr(x), c.ptr(dk),
                                                    c.ptr(db)))

for cf in (0, 1):
    base = dict(ok, channels_first=cf)
    y, dx, dk, db = c.floats(16), c.floats(32), c.floats(36), c.floats(4)
    assert dw_all(c.ConvParams(**base), x, k, y, dx, dk, db) == (0, 0, 0)
    assert (y == 9).all() and (db == 36).all() and (dk == 36).all()
    # the groups must be the input channels, c_out a multiple of them
    for field, value in dict(groups=[0, 1, 4, -2], c_out=[3, 5, -4]).items():
        for v in value:
            statuses = dw_all(c.ConvParams(**dict(base, **{{field: v}})), x, k, y, dx, dk, db)
            assert all(s == c.FC_ERR_ARG for s in statuses), (cf, field, v, statuses)
    # each field below its minimum, pads past the dilated kernel's reach
    for field, values in dict(n=[-1], h=[0, -5], w=[0], kh=[0], kw=[-1], out_h=[0],
                              out_w=[-3], stride_h=[0], stride_w=[-1], dilation_h=[0],
                              dilation_w=[-2], pad_top=[-1, 3, 2**62],
                              pad_left=[-1, 3]).items():
        for v in values:
            statuses = dw_all(c.ConvParams(**dict(base, **{{field: v}})), x, k, y, dx, dk, db)
            assert all(s in c.ERRORS for s in statuses), (cf, field, v, statuses)
    assert all(s in c.ERRORS for s in dw_all(
        c.ConvParams(**dict(base, c_in=-1, groups=-1)), x, k, y, dx, dk, db))
    # sizes whose products overflow int64, with NULL buffers
    for field in ("n", "h", "w", "kh", "out_w", "stride_h", "dilation_w", "c_out"):
        bad = c.ConvParams(**dict(base, **{{field: 2**62}}))
        statuses = dw_all(bad, None, None, None, None, None, None)
        assert all(s in c.ERRORS for s in statuses), (cf, field, statuses)
    huge = c.ConvParams(**dict(base, c_in=2**40, groups=2**40, c_out=2**41, h=2**12, w=2**12))
    assert all(s in c.ERRORS for s in dw_all(huge, None, None, None, None, None, None))
    # NULL parameters and buffers
    assert lib.fc_depthwise_conv2d_forward(None, c.ptr(x), c.ptr(k), None, c.ptr(y)) == c.FC_ERR_ARG
    assert lib.fc_depthwise_conv2d_backward_input(None, c.ptr(y), c.ptr(k), c.ptr(dx)) == c.FC_ERR_ARG
    assert lib.fc_depthwise_conv2d_backward_kernel(None, c.ptr(y), c.ptr(x), c.ptr(dk),
                                                   None) == c.FC_ERR_ARG
    assert set(dw_all(c.ConvParams(**base), None, None, None, None, None, None)) == {{c.FC_ERR_ARG}}
    assert lib.fc_depthwise_conv2d_forward(c.ConvParams(**base), c.ptr(x), None, None,
                                           c.ptr(y)) == c.FC_ERR_ARG
    # empty problems: nothing read; the weight gradient of no images is zero
    empty = c.ConvParams(**dict(base, n=0))
    zk, zb = c.floats(36, 7), c.floats(4, 7)
    assert lib.fc_depthwise_conv2d_forward(empty, None, None, None, None) == 0
    assert lib.fc_depthwise_conv2d_backward_input(empty, None, None, None) == 0
    assert lib.fc_depthwise_conv2d_backward_kernel(empty, None, None, c.ptr(zk), c.ptr(zb)) == 0
    assert (zk == 0).all() and (zb == 0).all()
    none = c.ConvParams(**dict(base, c_in=0, groups=0, c_out=0))
    assert dw_all(none, None, None, None, None, None, None) == (0, 0, 0)
    # a multiplier of 0: the input gradient sums over nothing
    zdx = c.floats(32, 7)
    assert lib.fc_depthwise_conv2d_backward_input(c.ConvParams(**dict(base, c_out=0)), None,
                                                  None, c.ptr(zdx)) == 0
    assert (zdx == 0).all()
print("RESULT ok")
"""


@pytest.mark.skipif(fc_capi.load() is None, reason="the extension does not export the fc_* C API")
def test_c_contract_errors_instead_of_crashes():
    out = run_python(CONTRACT.format(tests=os.path.dirname(os.path.abspath(__file__))),
                     timeout=120)
    assert result_lines(out) == ["ok"]
