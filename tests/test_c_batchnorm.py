"""The C batch-normalization kernels (csrc/batchnorm.c) through the bindings in
fastconv._kernels: against a float64 NumPy oracle written out below, against
PyTorch's batch_norm and autograd, on every SIMD path, in both dtypes, channels
last (inner = 1) and channels first (inner = H * W), plus accuracy on data
whose mean dwarfs its spread, bitwise thread determinism, NaN and infinity
propagation, and the C contract under hostile parameters (through ctypes, in
a child process)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fc_capi
from conftest import assert_close
from fastconv import _kernels as K
from reliability import result_lines, run_python

DTYPES = (np.float32, np.float64)
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
EPS = 1e-3

# (layout, shape): nhwc (n, h, w, c) -> (n*h*w, c, 1); nchw (n, c, h, w) ->
# (n, c, h*w); nc (n, c) -> (n, c, 1); ncl (n, c, l) -> (n, c, l).
CASES = [
    ("nhwc", (2, 5, 7, 3)),        # rows of 3: groups of 32 rows and 6 rows left
    ("nhwc", (1, 9, 11, 17)),      # batch 1
    ("nhwc", (3, 4, 4, 70)),
    ("nhwc", (2, 3, 3, 1)),
    ("nhwc", (2, 4, 5, 2100)),     # rows mode, two channel blocks
    ("nhwc", (12, 32, 32, 3)),     # grouped rows, two row chunks
    ("nchw", (2, 3, 9, 11)),
    ("nchw", (1, 17, 5, 7)),
    ("nchw", (3, 70, 4, 4)),
    ("nchw", (2, 1, 6, 6)),
    ("nchw", (2, 5, 3, 3)),        # inner 9: rows mode with repeated columns
    ("nchw", (4, 300, 3, 3)),      # ... and two channel blocks
    ("nchw", (40, 3, 30, 30)),     # runs mode, two row chunks
    ("nchw", (1, 2, 200, 201)),    # runs mode, two inner spans
    ("nc", (33, 70)),
    ("ncl", (3, 4, 15)),           # inner 15 / 16: the two modes' border
    ("ncl", (3, 4, 16)),
]
IDS = [f"{layout}-{'x'.join(map(str, shape))}" for layout, shape in CASES]


def view3(layout, shape):
    """(outer, c, inner) of a tensor of this layout and shape."""
    if layout == "nhwc":
        n, h, w, c = shape
        return n * h * w, c, 1
    if layout == "nchw":
        n, c, h, w = shape
        return n, c, h * w
    if layout == "nc":
        return shape[0], shape[1], 1
    return shape


def make(rng, outer, c, inner, dtype, offset=0.0, spread=1.0):
    """Values with a different mean and spread per channel."""
    base = rng.standard_normal((outer, c, inner))
    mean = offset + rng.uniform(-2, 2, c)[None, :, None]
    scale = spread * rng.uniform(0.5, 2, c)[None, :, None]
    return np.ascontiguousarray((mean + scale * base).astype(dtype).reshape(-1))


# --- the float64 oracle -----------------------------------------------------

def channel_major(a, outer, c, inner):
    """(c, M) float64: each channel's values in a contiguous row."""
    return np.asarray(a, np.float64).reshape(outer, c, inner).transpose(1, 0, 2).reshape(c, -1)


def oracle_stats(x, outer, c, inner):
    """Corrected two-pass: the mean of the residuals from NumPy's mean refines
    it (NumPy's pairwise mean alone is off by up to ~log2(M) ulps, more than
    the kernel), and the variance is taken about the refined mean."""
    v = channel_major(x, outer, c, inner)
    rough = v.mean(axis=1)
    mean = rough + (v - rough[:, None]).mean(axis=1)
    d = v - mean[:, None]
    return mean, (d ** 2).mean(axis=1) - d.mean(axis=1) ** 2


def per_channel(a):
    return np.asarray(a, np.float64)[None, :, None]


def oracle_apply(x, mean, var, gamma, beta, eps, relu, outer, c, inner):
    v = np.asarray(x, np.float64).reshape(outer, c, inner)
    g = per_channel(gamma) if gamma is not None else 1.0
    b = per_channel(beta) if beta is not None else 0.0
    y = (v - per_channel(mean)) / np.sqrt(per_channel(var) + float(eps)) * g + b
    if relu:
        y = np.maximum(y, 0)
    return y.reshape(-1)


def oracle_backward(dy, x, mean, var, gamma, eps, outer, c, inner):
    m = outer * inner
    d = np.asarray(dy, np.float64).reshape(outer, c, inner)
    r = 1.0 / np.sqrt(per_channel(var) + float(eps))
    xhat = (np.asarray(x, np.float64).reshape(outer, c, inner) - per_channel(mean)) * r
    dbeta = d.sum(axis=(0, 2))
    dgamma = (d * xhat).sum(axis=(0, 2))
    g = per_channel(gamma) if gamma is not None else 1.0
    dx = g * r / m * (m * d - dbeta[None, :, None] - xhat * dgamma[None, :, None])
    return dx.reshape(-1), dgamma, dbeta


# --- calling the kernels ----------------------------------------------------

def stats(x, outer, c, inner, n_threads=0):
    mean = np.full(c, np.nan, x.dtype)
    var = np.full(c, np.nan, x.dtype)
    K.batch_norm_stats(x, mean, var, outer, c, inner, n_threads)
    return mean, var


def apply(x, mean, var, gamma, beta, eps, relu, outer, c, inner, n_threads=0):
    y = np.full(x.size, np.nan, x.dtype)
    K.batch_norm_apply(x, mean, var, gamma, beta, eps, relu, y, outer, c, inner, n_threads)
    return y


def backward(dy, x, mean, var, gamma, eps, outer, c, inner, n_threads=0, with_dx=True):
    dx = np.full(x.size, np.nan, x.dtype) if with_dx else None
    dgamma = np.full(c, np.nan, x.dtype)
    dbeta = np.full(c, np.nan, x.dtype)
    K.batch_norm_backward(dy, x, mean, var, gamma, eps, dx, dgamma, dbeta, outer, c, inner,
                          n_threads)
    return dx, dgamma, dbeta


def assert_stats_close(mean, var, ref_mean, ref_var, rtol, what=""):
    """Per channel: the mean within rtol of |mean| + std, var within rtol of itself."""
    mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    mean_err = np.abs(mean - ref_mean) / (np.abs(ref_mean) + np.sqrt(ref_var))
    var_err = np.abs(var - ref_var) / ref_var
    assert mean_err.max() <= rtol, f"{what}: mean relative error {mean_err.max():.2e}"
    assert var_err.max() <= rtol, f"{what}: var relative error {var_err.max():.2e}"


def abs_sums(dy, xhat_of, outer, c, inner):
    """Per channel, the sum of |dy| (or of |dy * xhat| for xhat_of = (x, mean, var)):
    the scale of a sum's rounding errors."""
    terms = np.abs(channel_major(dy, outer, c, inner))
    if xhat_of is not None:
        x, mean, var = xhat_of
        xhat = (channel_major(x, outer, c, inner) - np.asarray(mean, np.float64)[:, None]) / \
            np.sqrt(np.asarray(var, np.float64)[:, None] + EPS)
        terms = terms * np.abs(xhat)
    return terms.sum(axis=1)


def assert_sums_close(actual, expected, scale, dtype, what):
    err = np.abs(np.asarray(actual, np.float64) - expected)
    assert np.all(err <= RTOL[dtype] * scale), f"{what}: error {err.max():.2e}"


# --- against the oracle -----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout,shape", CASES, ids=IDS)
def test_stats_match_oracle(simd, rng, layout, shape, dtype):
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype)
    x_before = x.copy()
    mean, var = stats(x, outer, c, inner)
    assert np.array_equal(x, x_before), "x was written"
    ref_mean, ref_var = oracle_stats(x, outer, c, inner)
    # float32 outputs: their own rounding is 6e-8
    assert_stats_close(mean, var, ref_mean, ref_var, 2e-7 if dtype == np.float32 else 1e-13,
                       simd)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout,shape", CASES, ids=IDS)
def test_apply_matches_oracle(simd, rng, layout, shape, dtype):
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype)
    mean = rng.uniform(-2, 2, c).astype(dtype)
    var = rng.uniform(0.2, 4, c).astype(dtype)
    gamma = rng.uniform(-2, 2, c).astype(dtype)
    beta = rng.uniform(-1, 1, c).astype(dtype)
    inputs = [a.copy() for a in (x, mean, var, gamma, beta)]
    for g, b, relu in ((gamma, beta, False), (gamma, beta, True), (None, None, False),
                       (None, beta, True), (gamma, None, False)):
        y = apply(x, mean, var, g, b, EPS, relu, outer, c, inner)
        want = oracle_apply(x, mean, var, g, b, EPS, relu, outer, c, inner)
        assert not np.isnan(y).any(), "y not fully written"
        assert_close(y, want, RTOL[dtype], f"{simd} gamma={g is not None} "
                     f"beta={b is not None} relu={relu}", scale=np.abs(want).max() + 1)
        if relu:
            assert (y >= 0).all()
    for before, after in zip(inputs, (x, mean, var, gamma, beta)):
        assert np.array_equal(before, after), "an input was written"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout,shape", CASES, ids=IDS)
def test_backward_matches_oracle(simd, rng, layout, shape, dtype):
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype)
    dy = make(rng, outer, c, inner, dtype)
    mean, var = stats(x, outer, c, inner)
    gamma = rng.uniform(-2, 2, c).astype(dtype)
    inputs = [a.copy() for a in (dy, x, mean, var, gamma)]
    for g, with_dx in ((gamma, True), (None, True), (gamma, False)):
        dx, dgamma, dbeta = backward(dy, x, mean, var, g, EPS, outer, c, inner,
                                     with_dx=with_dx)
        want_dx, want_dgamma, want_dbeta = oracle_backward(dy, x, mean, var, g, EPS, outer, c,
                                                           inner)
        what = f"{simd} gamma={g is not None}"
        if with_dx:
            assert not np.isnan(dx).any(), "dx not fully written"
            assert_close(dx, want_dx, RTOL[dtype], what + " dx")
        assert_sums_close(dbeta, want_dbeta, abs_sums(dy, None, outer, c, inner), dtype,
                          what + " dbeta")
        assert_sums_close(dgamma, want_dgamma, abs_sums(dy, (x, mean, var), outer, c, inner),
                          dtype, what + " dgamma")
    for before, after in zip(inputs, (dy, x, mean, var, gamma)):
        assert np.array_equal(before, after), "an input was written"


# --- against PyTorch --------------------------------------------------------

TORCH_CASES = [("nchw", (4, 3, 9, 11)), ("nchw", (2, 17, 20, 20)), ("nhwc", (4, 9, 11, 3)),
               ("nhwc", (2, 6, 7, 70)), ("nc", (16, 33))]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout,shape", TORCH_CASES,
                         ids=[f"{l}-{'x'.join(map(str, s))}" for l, s in TORCH_CASES])
def test_training_step_matches_torch(rng, layout, shape, dtype):
    """Forward with batch statistics and autograd's gradients, PyTorch in float64."""
    torch = pytest.importorskip("torch")
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype, offset=3.0)
    dy = make(rng, outer, c, inner, dtype)
    gamma = rng.uniform(0.5, 2, c).astype(dtype)
    beta = rng.uniform(-1, 1, c).astype(dtype)

    def to_torch(a):  # to torch's channels-first layout (a view for nhwc)
        t = torch.from_numpy(np.asarray(a, np.float64).reshape(shape))
        return t.permute(0, 3, 1, 2) if layout == "nhwc" else t

    def from_torch(t):
        t = t.permute(0, 2, 3, 1) if layout == "nhwc" else t
        return t.detach().contiguous().numpy().reshape(-1)

    xt = to_torch(x).requires_grad_(True)
    gt = torch.from_numpy(gamma.astype(np.float64)).requires_grad_(True)
    bt = torch.from_numpy(beta.astype(np.float64)).requires_grad_(True)
    yt = torch.nn.functional.relu(torch.nn.functional.batch_norm(
        xt, None, None, gt, bt, training=True, momentum=0.0, eps=EPS))
    yt.backward(to_torch(dy))

    mean, var = stats(x, outer, c, inner)
    y = apply(x, mean, var, gamma, beta, EPS, True, outer, c, inner)
    assert_close(y, from_torch(yt), RTOL[dtype], "y")
    # torch's gradients include ReLU's: give the kernel the pre-activation dy
    dy_pre = (dy * (from_torch(yt) > 0)).astype(dtype)
    dx, dgamma, dbeta = backward(dy_pre, x, mean, var, gamma, EPS, outer, c, inner)
    assert_close(dx, from_torch(xt.grad), RTOL[dtype], "dx")
    assert_close(dgamma, gt.grad.numpy(), RTOL[dtype] * 10, "dgamma")
    assert_close(dbeta, bt.grad.numpy(), RTOL[dtype] * 10, "dbeta")


# --- accuracy when |mean| >> std ---------------------------------------------

@pytest.mark.parametrize("dtype,offset,spread,rtol", [
    (np.float32, 1e3, 1e-1, 1e-6),
    (np.float32, 1e4, 1e-3, 1e-6),   # values a few float32 steps apart
    (np.float64, 1e3, 1e-1, 1e-12),
    (np.float64, 1e6, 1e-2, 1e-12),
], ids=["f32-1e3", "f32-1e4", "f64-1e3", "f64-1e6"])
@pytest.mark.parametrize("layout,shape", [("nhwc", (16, 16, 16, 19)), ("nchw", (8, 19, 30, 30)),
                                          ("nchw", (32, 5, 3, 3))], ids=["nhwc", "nchw", "nchw3x3"])
def test_large_mean_stays_accurate(simd, rng, layout, shape, dtype, offset, spread, rtol):
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype, offset=offset, spread=spread)
    mean, var = stats(x, outer, c, inner)
    ref_mean, ref_var = oracle_stats(x, outer, c, inner)   # of the same rounded values
    var_err = np.abs(var.astype(np.float64) - ref_var) / ref_var
    assert var_err.max() <= rtol, f"var relative error {var_err.max():.2e}"
    mean_err = np.abs(mean.astype(np.float64) - ref_mean) / np.abs(ref_mean)
    assert mean_err.max() <= (1e-7 if dtype == np.float32 else 1e-15)
    # the normalised values and the gradient: the float64 formula with these
    # statistics, to the same tolerance as on centred data
    y = apply(x, mean, var, None, None, 0.0, False, outer, c, inner)
    assert_close(y, oracle_apply(x, mean, var, None, None, 0.0, False, outer, c, inner),
                 RTOL[dtype], "y")
    dy = make(rng, outer, c, inner, dtype)
    dx, dgamma, _ = backward(dy, x, mean, var, None, 0.0, outer, c, inner)
    want_dx, want_dgamma, _ = oracle_backward(dy, x, mean, var, None, 0.0, outer, c, inner)
    assert_close(dx, want_dx, RTOL[dtype], "dx")
    assert_sums_close(dgamma, want_dgamma, abs_sums(dy, (x, mean, var), outer, c, inner),
                      dtype, "dgamma")


# --- edges ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("c", [1, 3, 17, 70])
def test_one_value_per_channel(simd, rng, dtype, c):
    """outer * inner = 1: mean = x, var = 0, y = beta, dx = 0, dgamma = 0, dbeta = dy."""
    x = rng.standard_normal(c).astype(dtype)
    dy = rng.standard_normal(c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    mean, var = stats(x, 1, c, 1)
    assert np.array_equal(mean, x) and np.array_equal(var, np.zeros(c, dtype))
    y = apply(x, mean, var, None, beta, EPS, False, 1, c, 1)
    assert np.array_equal(y, beta)
    dx, dgamma, dbeta = backward(dy, x, mean, var, None, EPS, 1, c, 1)
    assert np.array_equal(dx, np.zeros(c, dtype))
    assert np.array_equal(dgamma, np.zeros(c, dtype)) and np.array_equal(dbeta, dy)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("outer,c,inner", [(0, 5, 1), (3, 4, 0), (0, 3, 9), (4, 0, 7)])
def test_empty_reductions(dtype, outer, c, inner):
    """No values: mean = var = 0 and dgamma = dbeta = 0 (c values written);
    apply and dx have nothing to write."""
    x = np.zeros(0, dtype)
    mean, var = stats(x, outer, c, inner)
    assert np.array_equal(mean, np.zeros(c)) and np.array_equal(var, np.zeros(c))
    y = apply(x, mean, var, None, None, EPS, True, outer, c, inner)
    assert y.size == 0
    dx, dgamma, dbeta = backward(x, x, mean, var, None, EPS, outer, c, inner)
    assert dx.size == 0
    assert np.array_equal(dgamma, np.zeros(c)) and np.array_equal(dbeta, np.zeros(c))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout,shape", [("nhwc", (2, 5, 5, 19)), ("nchw", (2, 19, 6, 6))])
def test_in_place(simd, rng, layout, shape, dtype):
    """y may be x, dx may be dy."""
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype)
    dy = make(rng, outer, c, inner, dtype)
    mean, var = stats(x, outer, c, inner)
    gamma = rng.uniform(0.5, 2, c).astype(dtype)
    want_y = apply(x, mean, var, gamma, None, EPS, True, outer, c, inner)
    want_dx, want_dg, want_db = backward(dy, x, mean, var, gamma, EPS, outer, c, inner)
    dg, db = np.empty(c, dtype), np.empty(c, dtype)
    K.batch_norm_backward(dy, x, mean, var, gamma, EPS, dy, dg, db, outer, c, inner, 0)
    assert np.array_equal(dy, want_dx) and np.array_equal(dg, want_dg)
    assert np.array_equal(db, want_db)
    K.batch_norm_apply(x, mean, var, gamma, None, EPS, True, x, outer, c, inner, 0)
    assert np.array_equal(x, want_y)


def test_size_mismatch_is_a_value_error():
    x = np.zeros(24, np.float32)
    with pytest.raises(ValueError, match="x has 24 values, expected 30"):
        K.batch_norm_stats(x, np.zeros(3, np.float32), np.zeros(3, np.float32), 2, 3, 5, 0)
    with pytest.raises(ValueError, match="gamma"):
        K.batch_norm_apply(x, np.zeros(3, np.float32), np.ones(3, np.float32),
                           np.ones(4, np.float32), None, 1e-3, False, np.zeros(24, np.float32),
                           2, 3, 4, 0)


# --- determinism ------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout,shape", [("nhwc", (16, 32, 32, 70)),
                                          ("nhwc", (64, 64, 64, 3)),
                                          ("nchw", (8, 70, 40, 40)),
                                          ("nchw", (512, 70, 3, 3))],
                         ids=["nhwc", "nhwc-c3", "nchw", "nchw3x3"])
def test_bitwise_identical_for_any_thread_count(simd, rng, layout, shape, dtype):
    # ~1M values: every thread count below really runs that many threads
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype, offset=5.0)
    dy = make(rng, outer, c, inner, dtype)
    gamma = rng.uniform(0.5, 2, c).astype(dtype)
    beta = rng.uniform(-1, 1, c).astype(dtype)
    results = {}
    for n in (1, 2, 3, 16):
        mean, var = stats(x, outer, c, inner, n)
        y = apply(x, mean, var, gamma, beta, EPS, True, outer, c, inner, n)
        grads = backward(dy, x, mean, var, gamma, EPS, outer, c, inner, n)
        results[n] = (mean, var, y) + grads
    for n in (2, 3, 16):
        for a, b in zip(results[1], results[n]):
            assert np.array_equal(a, b), f"{n} threads differ from 1"
    ref_mean, ref_var = oracle_stats(x, outer, c, inner)
    assert_stats_close(results[16][0], results[16][1], ref_mean, ref_var,
                       2e-7 if dtype == np.float32 else 1e-13)


# --- NaN and infinity -------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout,shape", [("nhwc", (2, 5, 5, 19)), ("nchw", (2, 19, 6, 6)),
                                          ("nchw", (3, 19, 2, 2))])
@pytest.mark.parametrize("ch", [7, 17])    # 17: in a vector tail of the channels-last loops
def test_nan_propagates_to_what_depends_on_it(simd, rng, layout, shape, dtype, ch):
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype)
    dy = make(rng, outer, c, inner, dtype)
    at = (1 * c + ch) * inner + inner - 1      # a value of channel ch
    others = np.arange(c) != ch
    in_ch = (np.arange(outer * c * inner) // inner) % c == ch
    good_mean, good_var = stats(x, outer, c, inner)

    x_nan = x.copy()
    x_nan[at] = np.nan
    mean, var = stats(x_nan, outer, c, inner)
    assert np.isnan(mean[ch]) and np.isnan(var[ch])
    assert np.isfinite(mean[others]).all() and np.isfinite(var[others]).all()
    for relu in (False, True):
        y = apply(x_nan, good_mean, good_var, None, None, EPS, relu, outer, c, inner)
        assert np.isnan(y[at]) and np.isfinite(np.delete(y, at)).all()
    dx, dgamma, dbeta = backward(dy, x_nan, good_mean, good_var, None, EPS, outer, c, inner)
    assert np.isnan(dgamma[ch]) and np.isfinite(dgamma[others]).all()
    assert np.isfinite(dbeta).all()                  # dbeta does not depend on x
    assert np.isnan(dx[in_ch]).all() and np.isfinite(dx[~in_ch]).all()

    dy_nan = dy.copy()
    dy_nan[at] = np.nan
    dx, dgamma, dbeta = backward(dy_nan, x, good_mean, good_var, None, EPS, outer, c, inner)
    assert np.isnan(dgamma[ch]) and np.isnan(dbeta[ch])
    assert np.isfinite(dgamma[others]).all() and np.isfinite(dbeta[others]).all()
    assert np.isnan(dx[in_ch]).all() and np.isfinite(dx[~in_ch]).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout,shape", [("nhwc", (2, 5, 5, 19)), ("nchw", (2, 19, 6, 6))])
@pytest.mark.parametrize("first", [True, False], ids=["first-value", "later-value"])
def test_infinity_gives_infinite_mean_and_nan_var(simd, rng, layout, shape, dtype, first):
    """As NumPy: the mean of values with +inf is +inf, their variance NaN
    (also when the infinity is the value the kernel would shift by)."""
    outer, c, inner = view3(layout, shape)
    x = make(rng, outer, c, inner, dtype)
    x[(0 * c + 4) * inner + (0 if first else inner - 1) + (0 if first else c * inner)] = np.inf
    mean, var = stats(x, outer, c, inner)
    assert mean[4] == np.inf and np.isnan(var[4])
    assert np.isfinite(np.delete(mean, 4)).all() and np.isfinite(np.delete(var, 4)).all()


# --- the C contract ---------------------------------------------------------

CONTRACT = r"""
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import fc_capi as c

lib = c.declare_batchnorm(c.load())
P = c.NormParams
OK, ARG, OVER = c.FC_OK, c.FC_ERR_ARG, c.FC_ERR_OVERFLOW
x, dy, y, dx = c.floats(60, 1), c.floats(60, 1), c.floats(60), c.floats(60)
mean, var, g, b = c.floats(3), c.floats(3, 1), c.floats(3, 1), c.floats(3)
dg, db = c.floats(3), c.floats(3)

def stats(p, x, mean, var):
    return lib.fc_batch_norm_stats(p, c.ptr(x), c.ptr(mean), c.ptr(var))

def apply(p, x, mean, var, g, b, y):
    return lib.fc_batch_norm_apply(p, c.ptr(x), c.ptr(mean), c.ptr(var), c.ptr(g), c.ptr(b),
                                   1e-3, 1, c.ptr(y))

def backward(p, dy, x, mean, var, g, dx, dg, db):
    return lib.fc_batch_norm_backward(p, c.ptr(dy), c.ptr(x), c.ptr(mean), c.ptr(var),
                                      c.ptr(g), 1e-3, c.ptr(dx), c.ptr(dg), c.ptr(db))

def all3(p, *bufs):
    x, dy, y, dx, mean, var, g, b, dg, db = bufs
    return (stats(p, x, mean, var), apply(p, x, mean, var, g, b, y),
            backward(p, dy, x, mean, var, g, dx, dg, db))

bufs = (x, dy, y, dx, mean, var, g, b, dg, db)
nulls = (None,) * 10
for layout in ((4, 3, 5), (20, 3, 1)):
    assert all3(P(*layout, 1), *bufs) == (OK, OK, OK), layout
    assert (mean == 1).all() and (var == 0).all() and (y == 0).all()
    assert (dx == 0).all() and (dg == 0).all() and (db == 20).all()
# optional pointers: gamma, beta, dx
assert apply(P(4, 3, 5, 1), x, mean, var, None, None, y) == OK
assert backward(P(4, 3, 5, 1), dy, x, mean, var, None, None, dg, db) == OK
# a NULL parameter struct
assert all3(None, *bufs) == (ARG, ARG, ARG)
# NULL buffers the call needs
assert stats(P(4, 3, 5, 1), None, mean, var) == ARG
assert stats(P(4, 3, 5, 1), x, None, var) == ARG
assert stats(P(4, 3, 5, 1), x, mean, None) == ARG
for i in range(4):
    args = [x, mean, var, y]
    args[i] = None
    assert apply(P(4, 3, 5, 1), args[0], args[1], args[2], g, b, args[3]) == ARG, i
for i in range(6):
    args = [dy, x, mean, var, dg, db]
    args[i] = None
    assert backward(P(4, 3, 5, 1), args[0], args[1], args[2], args[3], g, dx, args[4],
                    args[5]) == ARG, i
# negative sizes, and sizes whose products overflow (NULL buffers: never touched)
for layout in ((-1, 3, 5), (4, -3, 5), (4, 3, -5), (-2**62, 3, 5)):
    assert all3(P(*layout, 1), *bufs) == (ARG, ARG, ARG), layout
for layout in ((2**62, 3, 5), (3, 2**62, 5), (5, 3, 2**62), (2**31, 2**31, 2**31),
               (2**40, 1, 2**40), (2**60, 16, 1)):
    assert all3(P(*layout, 1), *nulls) == (OVER, OVER, OVER), layout
# empty problems: no channel touches nothing; no values writes zero statistics
assert all3(P(4, 0, 5, 1), *nulls) == (OK, OK, OK)
assert all3(P(0, 0, 0, 1), *nulls) == (OK, OK, OK)
mean[:] = var[:] = dg[:] = db[:] = 7
assert stats(P(0, 3, 5, 1), None, mean, var) == OK and (mean == 0).all() and (var == 0).all()
assert backward(P(4, 3, 0, 1), None, None, None, None, None, None, dg, db) == OK
assert (dg == 0).all() and (db == 0).all()
assert apply(P(0, 3, 5, 1), None, None, None, None, None, None) == OK
assert stats(P(0, 3, 5, 1), None, None, None) == ARG
assert backward(P(0, 3, 5, 1), None, None, None, None, None, None, None, None) == ARG
# any n_threads
for n in (-5, 0, 2**31 - 1):
    assert all3(P(4, 3, 5, n), *bufs) == (OK, OK, OK), n
print("RESULT ok")
"""


@pytest.mark.skipif(fc_capi.load() is None, reason="the extension does not export the C API")
def test_c_contract_errors_instead_of_crashes():
    out = run_python(CONTRACT.format(tests=os.path.dirname(os.path.abspath(__file__))),
                     timeout=120)
    assert result_lines(out) == ["ok"]
