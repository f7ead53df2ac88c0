"""The pooling family's C kernels (csrc/pool2d.c, csrc/kernels_pool_impl.h),
called through fastconv._kernels: max and average pooling, global pooling and
upsampling, NHWC and NCHW, float32 and float64, on every SIMD path.

Oracles: plain NumPy loops over each window's cells, written here; PyTorch
float64 where it has the op (symmetric pads only: Keras' 'same' puts the extra
row or column at the bottom/right, which PyTorch's padding cannot express, so
those cases meet the loops alone). Max pooling promises an order of additions
(windows in row-major order, from 0), so its oracle runs in the input's dtype
in that order and must match bit for bit.
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

DTYPES = (np.float32, np.float64)
RTOL = {np.float32: 2e-6, np.float64: 1e-13}
THREADS = 2

# (x shape NHWC, pool, strides, padding): 'valid' / 'same' (TensorFlow's
# arithmetic) or explicit symmetric (pad_top, pad_left). Widths past the
# widest vector (16 floats) so that the NCHW loops run their vector bodies;
# channel counts off the vector widths.
POOL_CASES = [
    ((2, 8, 41, 3), (2, 2), (2, 2), "valid"),     # 2x2 pairs, an uncovered column
    ((1, 7, 37, 17), (2, 2), (2, 2), "same"),     # bottom/right border windows
    ((2, 9, 38, 70), (3, 3), (1, 1), "same"),     # overlapping, stride 1
    ((1, 11, 39, 1), (3, 3), (2, 2), "same"),     # overlapping, stride 2
    ((2, 6, 40, 5), (2, 3), (1, 2), "valid"),     # rectangular
    ((1, 10, 35, 4), (3, 2), (3, 2), "same"),     # pairs under 3-row windows
    ((1, 5, 50, 3), (1, 4), (1, 3), "valid"),     # stride 3 (the general strided pass)
    ((1, 4, 60, 2), (2, 2), (3, 3), "valid"),     # pool < stride: gaps
    ((1, 7, 5, 2), (7, 5), (1, 1), "valid"),      # one window, the whole input
    ((2, 6, 40, 3), (2, 2), (2, 2), (1, 1)),      # explicit pads: 2x2 off the fast path
    ((1, 9, 36, 2), (4, 3), (2, 3), (2, 1)),
]
POOL_IDS = [f"{'x'.join(map(str, c[0]))}-k{c[1][0]}{c[1][1]}-s{c[2][0]}{c[2][1]}-{c[3]}"
            for c in POOL_CASES]

# Symmetric cases for PyTorch: (x shape NHWC, kernel, stride, padding).
TORCH_CASES = [
    ((2, 9, 38, 3), (3, 3), (2, 2), (1, 1)),
    ((1, 8, 37, 17), (2, 2), (2, 2), (1, 1)),
    ((2, 7, 20, 4), (3, 3), (1, 1), (1, 1)),
    ((1, 6, 33, 2), (2, 3), (1, 2), (1, 1)),
    ((1, 9, 33, 5), (4, 4), (3, 3), (2, 2)),
    ((3, 6, 18, 1), (2, 2), (2, 2), (0, 0)),
]


def pool_geometry(x_shape, pool, strides, padding):
    """The 17-tuple fastconv.shapes.ConvGeometry the bindings read."""
    if isinstance(padding, str):
        return tuple(conv2d_geometry(x_shape, pool, x_shape[3], strides, padding))[:17]
    n, h, w, c = x_shape
    (ph, pw), (sh, sw), (pt, pl) = pool, strides, padding
    oh, ow = (h + 2 * pt - ph) // sh + 1, (w + 2 * pl - pw) // sw + 1
    return (n, h, w, c, ph, pw, c, oh, ow, sh, sw, 1, 1,
            pt, max(0, (oh - 1) * sh + ph - h - pt), pl, max(0, (ow - 1) * sw + pw - w - pl))


def windows(g):
    """(oh, ow, real cells in row-major order) of every output."""
    n, h, w, c, ph, pw, _, out_h, out_w, sh, sw, _, _, pt, _, pl, _ = g
    for i in range(out_h):
        for j in range(out_w):
            h0, w0 = i * sh - pt, j * sw - pl
            yield i, j, [(a, b) for a in range(max(h0, 0), min(h0 + ph, h))
                         for b in range(max(w0, 0), min(w0 + pw, w))]


def max_pool_oracle(x, dy, g):
    """y and dx (NHWC) in x's dtype: a NaN wins (the first), else the first
    maximum; dx adds dy to the winners, windows in row-major order."""
    n, _, _, c = x.shape
    y = np.empty((n, g[7], g[8], c), x.dtype)
    dx = np.zeros_like(x)
    for i, j, cells in windows(g):
        best, at = x[:, cells[0][0], cells[0][1]].copy(), np.zeros((n, c), int)
        for k, (a, b) in enumerate(cells[1:], 1):
            v = x[:, a, b]
            take = (v > best) | (np.isnan(v) & ~np.isnan(best))
            best, at = np.where(take, v, best), np.where(take, k, at)
        y[:, i, j] = best
        for k, (a, b) in enumerate(cells):
            dx[:, a, b] += np.where(at == k, dy[:, i, j], 0).astype(x.dtype)
    return y, dx


def avg_pool_oracle(x, dy, g, count_include_pad):
    """y and dx (NHWC) in float64."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    y = np.empty((x.shape[0], g[7], g[8], x.shape[3]))
    dx = np.zeros_like(x)
    for i, j, cells in windows(g):
        div = g[4] * g[5] if count_include_pad else len(cells)
        y[:, i, j] = sum(x[:, a, b] for a, b in cells) / div
        for a, b in cells:
            dx[:, a, b] += dy[:, i, j] / div
    return y, dx


def to_layout(a, channels_first):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if channels_first else a


def from_layout(a, channels_first):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if channels_first else a


def nan_like(shape, dtype):
    return np.full(shape, np.nan, dtype)


# max_pool2d_* take (..., n_threads, channels_first); the others (..., channels_first, n_threads)
_THREADS_FIRST = (_kernels.max_pool2d_forward, _kernels.max_pool2d_backward)


def call(fn, layout, inputs, out_shape, *args, threads=THREADS):
    """fn(*inputs in layout, a NaN-filled output, *args, ...): the output,
    back in NHWC; checks that the inputs were not written."""
    cf = layout == "nchw"
    laid = [to_layout(a, cf) if a.ndim == 4 else a for a in inputs]
    copies = [a.copy() for a in laid]
    if len(out_shape) == 4:
        n, h, w, c = out_shape
        out_shape = (n, c, h, w) if cf else out_shape
    out = nan_like(out_shape, inputs[0].dtype)
    if fn in _THREADS_FIRST:
        fn(*laid, out, *args, threads, cf)
    else:
        fn(*laid, out, *args, cf, threads)
    for a, b in zip(laid, copies):
        np.testing.assert_array_equal(a, b, err_msg="an input was written")
    return from_layout(out, cf) if out.ndim == 4 else out


def bits(a):
    """The array's bytes as unsigned integers: equal bits, NaN payloads and zero signs included."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def assert_bitwise(a, b, what=""):
    assert a.shape == b.shape and a.dtype == b.dtype, what
    assert np.array_equal(bits(a), bits(b)), f"{what}: not bitwise equal"


def max_pool(x, dy, g, layout, threads=THREADS):
    y = call(_kernels.max_pool2d_forward, layout, [x], (g[0], g[7], g[8], g[3]), g,
             threads=threads)
    dx = call(_kernels.max_pool2d_backward, layout, [dy, x], x.shape, g, threads=threads)
    return y, dx


def avg_pool(x, dy, g, cip, layout, threads=THREADS):
    y = call(_kernels.avg_pool2d_forward, layout, [x], (g[0], g[7], g[8], g[3]), g, cip,
             threads=threads)
    dx = call(_kernels.avg_pool2d_backward, layout, [dy], x.shape, g, cip, threads=threads)
    return y, dx


def pool_inputs(rng, g, dtype):
    x = rng.standard_normal(g[:4]).astype(dtype)
    dy = rng.standard_normal((g[0], g[7], g[8], g[3])).astype(dtype)
    return x, dy


# ---------------------------------------------------------------------------
# Max pooling

@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_max_pool_matches_loops_bitwise(simd, rng, case, dtype, layout):
    g = pool_geometry(*case)
    x, dy = pool_inputs(rng, g, dtype)
    y, dx = max_pool(x, dy, g, layout)
    want_y, want_dx = max_pool_oracle(x, dy, g)
    assert_bitwise(y, want_y, "y")
    assert_bitwise(dx, want_dx, "dx")


def awkward(rng, shape, dtype):
    """Few distinct values (ties everywhere), both zeros, infinities and NaNs."""
    choices = np.array([-1.5, -0.0, 0.0, 2.0, 2.0, np.inf, -np.inf, np.nan, 3.0, 3.0], dtype)
    x = rng.choice(choices, size=shape)
    x[rng.random(shape) < 0.7] = dtype(2.0)   # mostly ties
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_max_pool_ties_nan_inf_and_layouts_agree_bitwise(simd, rng, case, dtype):
    g = pool_geometry(*case)
    x = awkward(rng, g[:4], dtype)
    dy = rng.standard_normal((g[0], g[7], g[8], g[3])).astype(dtype)
    want_y, want_dx = max_pool_oracle(x, dy, g)
    got = {layout: max_pool(x, dy, g, layout) for layout in ("nhwc", "nchw")}
    for layout, (y, dx) in got.items():
        assert_bitwise(y, want_y, f"{layout} y")
        assert_bitwise(dx, want_dx, f"{layout} dx")


def test_max_pool_nan_gradient_goes_to_the_first_nan():
    x = np.array([[1.0, np.nan], [np.nan, 5.0]], np.float32).reshape(1, 2, 2, 1)
    g = pool_geometry(x.shape, (2, 2), (2, 2), "valid")
    for layout in ("nhwc", "nchw"):
        y, dx = max_pool(x, np.full((1, 1, 1, 1), 7, np.float32), g, layout)
        assert np.isnan(y).all()
        np.testing.assert_array_equal(dx.ravel(), [0, 7, 0, 0])
    x = np.array([[4.0, 4.0], [-np.inf, 4.0]], np.float64).reshape(1, 2, 2, 1)
    for layout in ("nhwc", "nchw"):
        y, dx = max_pool(x, np.full((1, 1, 1, 1), 3, np.float64), g, layout)
        np.testing.assert_array_equal(dx.ravel(), [3, 0, 0, 0])   # the first of the ties


def test_max_pool_positional_call_is_nhwc(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    g = pool_geometry(x.shape, (2, 2), (2, 2), "valid")
    y = nan_like((2, 3, 3, 3), np.float32)
    _kernels.max_pool2d_forward(x, y, g, 1)
    np.testing.assert_array_equal(y, x.reshape(2, 3, 2, 3, 2, 3).max(axis=(2, 4)))


# ---------------------------------------------------------------------------
# Average pooling

@pytest.mark.parametrize("cip", [False, True], ids=["real-cells", "include-pad"])
@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_avg_pool_matches_loops(simd, rng, case, dtype, layout, cip):
    g = pool_geometry(*case)
    x, dy = pool_inputs(rng, g, dtype)
    y, dx = avg_pool(x, dy, g, cip, layout)
    want_y, want_dx = avg_pool_oracle(x, dy, g, cip)
    assert_close(y, want_y, RTOL[dtype], "y")
    assert_close(dx, want_dx, RTOL[dtype], "dx")
    if layout == "nchw":   # the forward adds and scales alike in both layouts
        assert_bitwise(y, avg_pool(x, dy, g, cip, "nhwc")[0], "NCHW y vs NHWC y")


def test_avg_pool_propagates_nan_and_inf():
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 0, 0, 0], x[0, 3, 3, 0] = np.nan, np.inf
    g = pool_geometry(x.shape, (2, 2), (2, 2), "valid")
    for layout in ("nhwc", "nchw"):
        y, _ = avg_pool(x, np.ones((1, 2, 2, 1), np.float32), g, False, layout)
        np.testing.assert_array_equal(y.ravel(), [np.nan, 0, 0, np.inf])


# ---------------------------------------------------------------------------
# PyTorch float64 (symmetric pads)

def torch_pool(torch, kind, x, dy, kernel, stride, padding, **kw):
    t = torch.tensor(x.transpose(0, 3, 1, 2).astype(np.float64), requires_grad=True)
    fn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    y = fn(t, kernel, stride, padding, **kw)
    y.backward(torch.tensor(dy.transpose(0, 3, 1, 2).astype(np.float64)))
    return y.detach().numpy().transpose(0, 2, 3, 1), t.grad.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=[str(i) for i in range(len(TORCH_CASES))])
def test_pools_match_torch(simd, rng, case, dtype, layout):
    torch = pytest.importorskip("torch")
    x_shape, kernel, stride, padding = case
    g = pool_geometry(x_shape, kernel, stride, padding)
    x, dy = pool_inputs(rng, g, dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    y, dx = max_pool(x, dy, g, layout)
    want_y, want_dx = torch_pool(torch, "max", x, dy, kernel, stride, padding)
    assert_close(y, want_y, rtol, "max y")
    assert_close(dx, want_dx, rtol, "max dx")
    for cip in (False, True):
        y, dx = avg_pool(x, dy, g, cip, layout)
        want_y, want_dx = torch_pool(torch, "avg", x, dy, kernel, stride, padding,
                                     count_include_pad=cip)
        assert_close(y, want_y, rtol, f"avg y (count_include_pad={cip})")
        assert_close(dx, want_dx, rtol, f"avg dx (count_include_pad={cip})")


# ---------------------------------------------------------------------------
# Global pooling

GLOBAL_SHAPES = [(2, 5, 7, 3), (1, 1, 1, 70), (3, 9, 40, 17), (1, 33, 35, 1), (2, 4, 4, 130)]


def global_pools(x, dy, layout, threads=THREADS):
    n, _, _, c = x.shape
    out = {}
    out["avg"] = call(_kernels.global_avg_pool2d, layout, [x], (n, c), threads=threads)
    out["avg_dx"] = call(_kernels.global_avg_pool2d_backward, layout, [dy], x.shape,
                         threads=threads)
    out["max"] = call(_kernels.global_max_pool2d, layout, [x], (n, c), threads=threads)
    out["max_dx"] = call(_kernels.global_max_pool2d_backward, layout, [dy, x], x.shape,
                         threads=threads)
    return out


def global_max_oracle(x, dy):
    """y and dx (NHWC): max pooling with one window, the whole image."""
    g = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[1], x.shape[2], x.shape[3],
         1, 1, 1, 1, 1, 1, 0, 0, 0, 0)
    y, dx = max_pool_oracle(x, dy[:, None, None, :], g)
    return y[:, 0, 0], dx


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", GLOBAL_SHAPES,
                         ids=["x".join(map(str, s)) for s in GLOBAL_SHAPES])
def test_global_pools(simd, rng, shape, dtype, layout):
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal((shape[0], shape[3])).astype(dtype)
    got = global_pools(x, dy, layout)
    x64 = x.astype(np.float64)
    # float32 data is summed in float64: the mean is the correctly rounded
    # float64 mean, rounded once more
    assert_close(got["avg"], x64.mean(axis=(1, 2)), 1e-7 if dtype == np.float32 else 1e-15)
    hw = shape[1] * shape[2]
    assert_close(got["avg_dx"], np.broadcast_to((dy / hw)[:, None, None, :], shape), 1e-7)
    want_y, want_dx = global_max_oracle(x, dy)
    assert_bitwise(got["max"], want_y, "max")
    assert_bitwise(got["max_dx"], want_dx, "max dx")
    torch = pytest.importorskip("torch")
    t = torch.tensor(x64.transpose(0, 3, 1, 2), requires_grad=True)
    torch.nn.functional.adaptive_avg_pool2d(t, 1).reshape(shape[0], -1).backward(
        torch.tensor(dy.astype(np.float64)))
    assert_close(got["avg_dx"], t.grad.numpy().transpose(0, 2, 3, 1), RTOL[dtype])
    t = torch.tensor(x64.transpose(0, 3, 1, 2), requires_grad=True)
    m = torch.amax(t, dim=(2, 3))   # random data: no ties, which amax would share
    m.backward(torch.tensor(dy.astype(np.float64)))
    np.testing.assert_array_equal(got["max"], m.detach().numpy())
    assert_close(got["max_dx"], t.grad.numpy().transpose(0, 2, 3, 1), RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(2, 9, 11, 5), (1, 40, 41, 2), (1, 3, 3, 70)])
def test_global_max_ties_nan_inf_and_layouts_agree(simd, rng, shape, dtype):
    x = awkward(rng, shape, dtype)
    x[0, 0, 0, :] = dtype(-1.0)   # no NaN in some channels, for the first-maximum rule
    x[0, 5 % shape[1], 2 % shape[2], 0] = np.nan
    dy = rng.standard_normal((shape[0], shape[3])).astype(dtype)
    want_y, want_dx = global_max_oracle(x, dy)
    for layout in ("nhwc", "nchw"):
        got = global_pools(x, dy, layout)
        assert_bitwise(got["max"], want_y, f"{layout} max")
        assert_bitwise(got["max_dx"], want_dx, f"{layout} max dx")


def test_global_max_first_of_ties_and_first_nan_in_a_long_plane():
    # a plane longer than the lane groups, the winners in different lanes
    x = np.zeros((1, 1, 1000, 1), np.float32)
    x[0, 0, [70, 5, 999]] = 3.0
    for layout in ("nhwc", "nchw"):
        dx = call(_kernels.global_max_pool2d_backward, layout,
                  [np.ones((1, 1), np.float32), x], x.shape)
        assert np.flatnonzero(dx).tolist() == [5], layout
    x[0, 0, [900, 300]] = np.nan
    for layout in ("nhwc", "nchw"):
        dx = call(_kernels.global_max_pool2d_backward, layout,
                  [np.ones((1, 1), np.float32), x], x.shape)
        assert np.flatnonzero(dx).tolist() == [300], layout


def test_global_bindings_check_shapes():
    x = np.zeros((2, 3, 4, 5), np.float32)
    with pytest.raises(ValueError, match="y has shape"):
        _kernels.global_avg_pool2d(x, np.zeros((2, 4), np.float32), False, 1)
    with pytest.raises(ValueError, match="y has shape"):
        _kernels.global_max_pool2d(x, np.zeros((2, 5), np.float32), True, 1)


# ---------------------------------------------------------------------------
# Upsampling

UPSAMPLE_CASES = [((2, 4, 5, 3), (2, 2)), ((1, 3, 7, 17), (3, 2)), ((1, 1, 9, 1), (2, 3)),
                  ((2, 5, 1, 70), (1, 4)), ((1, 6, 20, 2), (2, 2)), ((1, 2, 3, 4), (1, 1)),
                  ((1, 3, 25, 1), (5, 3)), ((1, 2, 70, 3), (3, 2))]
UPSAMPLE_IDS = [f"{'x'.join(map(str, s))}-{f[0]}x{f[1]}" for s, f in UPSAMPLE_CASES]


def lerp_matrix(n_in, size):
    """(n_in * size, n_in): row d holds the weights output d reads (half-pixel
    centres, the coordinate clamped to [0, n_in - 1])."""
    a = np.zeros((n_in * size, n_in))
    for d in range(n_in * size):
        s = min(max((d + 0.5) / size - 0.5, 0.0), n_in - 1.0)
        lo = int(np.floor(s))
        hi, f = min(lo + 1, n_in - 1), s - lo
        a[d, lo] += 1 - f
        a[d, hi] += f
    return a


def repeat_matrix(n_in, size):
    return np.repeat(np.eye(n_in), size, axis=0)


def upsample_oracle(x, dy, size, bilinear):
    """y and dx (NHWC, float64): y = A_h x A_w^T, dx = A_h^T dy A_w."""
    make = lerp_matrix if bilinear else repeat_matrix
    ah, aw = make(x.shape[1], size[0]), make(x.shape[2], size[1])
    y = np.einsum("ph,nhwc,qw->npqc", ah, x.astype(np.float64), aw)
    dx = np.einsum("ph,npqc,qw->nhwc", ah, dy.astype(np.float64), aw)
    return y, dx


def upsample(x, dy, size, bilinear, layout, threads=THREADS):
    n, h, w, c = x.shape
    y = call(_kernels.upsample2d_forward, layout, [x], (n, h * size[0], w * size[1], c),
             size[0], size[1], bilinear, threads=threads)
    dx = call(_kernels.upsample2d_backward, layout, [dy], x.shape, size[0], size[1], bilinear,
              threads=threads)
    return y, dx


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", UPSAMPLE_CASES, ids=UPSAMPLE_IDS)
def test_upsample_matches_matrices(simd, rng, case, dtype, layout, mode):
    shape, size = case
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal((shape[0], shape[1] * size[0], shape[2] * size[1],
                              shape[3])).astype(dtype)
    y, dx = upsample(x, dy, size, mode == "bilinear", layout)
    want_y, want_dx = upsample_oracle(x, dy, size, mode == "bilinear")
    if mode == "nearest":
        assert_bitwise(y, want_y.astype(dtype), "y")   # a copy
    assert_close(y, want_y, RTOL[dtype], "y")
    assert_close(dx, want_dx, RTOL[dtype], "dx")


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", UPSAMPLE_CASES[:5], ids=UPSAMPLE_IDS[:5])
def test_upsample_matches_torch(simd, rng, case, dtype, layout, mode):
    torch = pytest.importorskip("torch")
    shape, size = case
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal((shape[0], shape[1] * size[0], shape[2] * size[1],
                              shape[3])).astype(dtype)
    y, dx = upsample(x, dy, size, mode == "bilinear", layout)
    t = torch.tensor(x.astype(np.float64).transpose(0, 3, 1, 2), requires_grad=True)
    kw = dict(align_corners=False) if mode == "bilinear" else {}
    out = torch.nn.functional.interpolate(t, scale_factor=size, mode=mode, **kw)
    out.backward(torch.tensor(dy.astype(np.float64).transpose(0, 3, 1, 2)))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(y, out.detach().numpy().transpose(0, 2, 3, 1), rtol, "y")
    assert_close(dx, t.grad.numpy().transpose(0, 2, 3, 1), rtol, "dx")


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_bilinear_upsample_keeps_inf_finite_elsewhere(simd, layout):
    # Infinities reach exactly the outputs that read them with a nonzero
    # weight; border and whole-coordinate outputs read one cell, so no 0 * inf.
    x = np.arange(4 * 5 * 2, dtype=np.float32).reshape(1, 4, 5, 2)
    x[0, 0, 0, 0], x[0, 3, 4, 1], x[0, 2, 2, 0] = np.inf, -np.inf, np.inf
    for size in ((2, 2), (3, 3)):
        y, _ = upsample(x, np.zeros((1, 4 * size[0], 5 * size[1], 2), np.float32), size, True,
                        layout)
        reads = np.einsum("ph,nhwc,qw->npqc", lerp_matrix(4, size[0]), np.isinf(x),
                          lerp_matrix(5, size[1])) > 0
        assert not np.isnan(y).any()
        np.testing.assert_array_equal(np.isinf(y), reads)


def test_upsample_bindings_check_shapes():
    x = np.zeros((1, 3, 4, 2), np.float32)
    with pytest.raises(ValueError, match="y has shape"):
        _kernels.upsample2d_forward(x, np.zeros((1, 6, 8, 3), np.float32), 2, 2, False, False, 1)
    with pytest.raises(ValueError, match="dy has shape"):
        _kernels.upsample2d_backward(np.zeros((1, 3, 6, 8), np.float32), x, 2, 2, True, True, 1)


# ---------------------------------------------------------------------------
# Bitwise identical for any thread count

@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_bitwise_identical_across_thread_counts(simd, rng, layout):
    # large enough that fc_pick_threads really splits every op
    x = rng.standard_normal((16, 48, 48, 32)).astype(np.float32)
    outs = {}
    for threads in (1, 2, 3, 16):
        res = []
        for case in (((2, 2), (2, 2), "valid"), ((3, 3), (1, 1), "same"),
                     ((3, 3), (2, 2), "same")):
            g = pool_geometry(x.shape, *case)
            dy = np.random.default_rng(1).standard_normal((g[0], g[7], g[8], g[3])).astype(
                np.float32)
            res += max_pool(x, dy, g, layout, threads)
            res += avg_pool(x, dy, g, False, layout, threads)
        res += global_pools(x, x[:, 0, 0, :] * 3, layout, threads).values()
        small = np.ascontiguousarray(x[:, :24, :24])
        dy = np.random.default_rng(2).standard_normal((16, 48, 48, 32)).astype(np.float32)
        for bilinear in (False, True):
            res += upsample(small, dy, (2, 2), bilinear, layout, threads)
        outs[threads] = res
    for threads in (2, 3, 16):
        for i, (a, b) in enumerate(zip(outs[1], outs[threads])):
            assert_bitwise(a, b, f"output {i} at {threads} threads")


# ---------------------------------------------------------------------------
# The C contract through ctypes, in a child process

CONTRACT = r"""
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import fc_capi as c

lib = c.load()
E = c.ERRORS
pool = dict(n=1, h=4, w=4, c=2, pool_h=2, pool_w=2, out_h=2, out_w=2, stride_h=2, stride_w=2,
            pad_top=0, pad_left=0, n_threads=1)
x, y, dx = c.floats(32, 1), c.floats(8), c.floats(32)

def pool_all(params, x, y, dx):
    return (lib.fc_max_pool2d_forward(params, c.ptr(x), c.ptr(y)),
            lib.fc_max_pool2d_backward(params, c.ptr(y), c.ptr(x), c.ptr(dx)),
            lib.fc_avg_pool2d_forward(params, c.ptr(x), c.ptr(y)),
            lib.fc_avg_pool2d_backward(params, c.ptr(y), c.ptr(dx)))

def global_all(params, x, g, dx):
    return (lib.fc_global_avg_pool2d(params, c.ptr(x), c.ptr(g)),
            lib.fc_global_avg_pool2d_backward(params, c.ptr(g), c.ptr(dx)),
            lib.fc_global_max_pool2d(params, c.ptr(x), c.ptr(g)),
            lib.fc_global_max_pool2d_backward(params, c.ptr(g), c.ptr(x), c.ptr(dx)))

for cf in (0, 1):
    for cip in (0, 1):
        ok = dict(pool, channels_first=cf, count_include_pad=cip)
        assert pool_all(c.PoolParams(**ok), x, y, dx) == (0, 0, 0, 0)
        assert set(pool_all(c.PoolParams(**ok), None, None, None)) == {{c.FC_ERR_ARG}}
        # empty problems succeed without touching the (NULL) buffers
        for empty in (dict(n=0), dict(c=0)):
            assert pool_all(c.PoolParams(**dict(ok, **empty)), None, None, None) == (0,) * 4
        for field, values in dict(n=[-1], h=[0, -5], w=[0], c=[-1], pool_h=[0], pool_w=[-1],
                                  out_h=[0, 3], out_w=[-3, 3], stride_h=[0], stride_w=[-1],
                                  pad_top=[-1, 2, 2**62], pad_left=[2]).items():
            for value in values:
                bad = c.PoolParams(**dict(ok, **{{field: value}}))
                assert set(pool_all(bad, x, y, dx)) <= set(E), (field, value)
        for field in ("n", "h", "w", "c", "out_h", "stride_w"):
            bad = c.PoolParams(**dict(ok, **{{field: 2**62}}))
            assert set(pool_all(bad, None, None, None)) <= set(E), field
        big = c.PoolParams(**dict(ok, h=5000, w=5000, pool_h=5000, pool_w=5000, out_h=1, out_w=1))
        # windows of more than 2**24 cells
        assert set(pool_all(big, None, None, None)) == {{c.FC_ERR_ARG}}

        glob = dict(n=2, h=3, w=5, c=4, n_threads=1, channels_first=cf)
        gx, gy, gdx = c.floats(120, 1), c.floats(8), c.floats(120)
        assert global_all(c.PoolParams(**glob), gx, gy, gdx) == (0, 0, 0, 0)
        # the window fields are ignored: zeros (invalid for a window op) are fine
        assert global_all(c.PoolParams(**dict(glob, pool_h=0, stride_w=0, out_h=-1)),
                          gx, gy, gdx) == (0, 0, 0, 0)
        assert set(global_all(c.PoolParams(**glob), None, None, None)) == {{c.FC_ERR_ARG}}
        assert global_all(c.PoolParams(**dict(glob, n=0)), None, None, None) == (0,) * 4
        for field, value in dict(n=-1, h=0, w=-2, c=-1).items():
            bad = c.PoolParams(**dict(glob, **{{field: value}}))
            assert set(global_all(bad, gx, gy, gdx)) == {{c.FC_ERR_ARG}}, field
        for field in ("n", "h", "w", "c"):
            bad = c.PoolParams(**dict(glob, **{{field: 2**62}}))
            assert set(global_all(bad, None, None, None)) == {{c.FC_ERR_OVERFLOW}}, field

        for bilinear in (0, 1):
            up = dict(n=1, h=2, w=3, c=2, size_h=2, size_w=3, bilinear=bilinear,
                      channels_first=cf, n_threads=1)
            ux, uy = c.floats(12, 1), c.floats(72)
            P = c.UpsampleParams
            assert lib.fc_upsample2d_forward(P(**up), c.ptr(ux), c.ptr(uy)) == 0
            assert (uy == 1).all()
            assert lib.fc_upsample2d_backward(P(**up), c.ptr(uy), c.ptr(ux)) == 0
            assert (ux == 6).all()
            assert lib.fc_upsample2d_forward(P(**up), None, None) == c.FC_ERR_ARG
            assert lib.fc_upsample2d_backward(P(**up), None, None) == c.FC_ERR_ARG
            assert lib.fc_upsample2d_forward(P(**dict(up, c=0)), None, None) == 0
            for field, value in dict(n=-1, h=0, w=-1, c=-1, size_h=0, size_w=-2).items():
                bad = P(**dict(up, **{{field: value}}))
                assert lib.fc_upsample2d_forward(bad, c.ptr(ux), c.ptr(uy)) == c.FC_ERR_ARG
                assert lib.fc_upsample2d_backward(bad, c.ptr(uy), c.ptr(ux)) == c.FC_ERR_ARG
            for over in (dict(h=2**62, size_h=4), dict(w=2**40, size_w=2**30),
                         dict(n=2**40, c=2**30)):
                bad = P(**dict(up, **over))
                assert lib.fc_upsample2d_forward(bad, None, None) == c.FC_ERR_OVERFLOW
                assert lib.fc_upsample2d_backward(bad, None, None) == c.FC_ERR_OVERFLOW

assert set(pool_all(None, x, y, dx)) == {{c.FC_ERR_ARG}}
assert set(global_all(None, x, y, dx)) == {{c.FC_ERR_ARG}}
assert lib.fc_upsample2d_forward(None, c.ptr(x), c.ptr(y)) == c.FC_ERR_ARG
assert lib.fc_upsample2d_backward(None, c.ptr(x), c.ptr(y)) == c.FC_ERR_ARG
print("RESULT ok")
"""


@pytest.mark.skipif(fc_capi.load() is None, reason="the extension does not export the C API")
def test_c_contract_errors_instead_of_crashes():
    out = run_python(CONTRACT.format(tests=os.path.dirname(__file__)), timeout=120)
    assert result_lines(out) == ["ok"]
