"""Both backends against PyTorch (CPU, float64) on hypothesis grids, for
the ops of the "layers real CNNs use" set: grouped/depthwise convolutions with
explicit or TensorFlow pads, transposed convolutions, average and max pooling
with pads, batch normalization, interpolation and global pooling, in NCHW and
NHWC, forward and autograd backward.

Data is drawn in PyTorch's layout (NCHW, OIHW) and handed to fastconv in the
drawn ``data_format``/``kernel_format`` as transposed *views* (fastconv copies
them once). TensorFlow's 'same' pads (the extra row at the bottom) are written
out here from TensorFlow's rule and applied with ``F.pad``.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv as fc
from conftest import assert_close

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the oracle is optional")
F = torch.nn.functional

RTOL = 1e-10
EXAMPLES = settings(max_examples=40, deadline=None)
FEW_EXAMPLES = settings(max_examples=25, deadline=None)


@pytest.fixture(autouse=True, params=["numpy", "c"])
def _backend(request):
    """Every test runs on the NumPy reference and on the C kernels (float64)."""
    with fc.use_backend(request.param):
        yield


def T(a, grad=False):
    t = torch.tensor(np.ascontiguousarray(a), dtype=torch.float64)
    return t.requires_grad_(True) if grad else t


def to_user(a, channels_first):
    """NCHW (or NCW) -> the drawn data format, as a view."""
    if channels_first:
        return a
    return np.moveaxis(a, 1, -1)


def from_user(a, channels_first):
    return a if channels_first else np.moveaxis(a, -1, 1)


def kernel_to_user(w, oi_first):
    """OIHW (OIW) -> the drawn kernel format: HWIO (WIO) is a transposed view."""
    return w if oi_first else w.transpose(tuple(range(2, w.ndim)) + (1, 0))


def kernel_from_user(w, oi_first):
    if oi_first:
        return w
    spatial = w.ndim - 2
    return w.transpose((w.ndim - 1, w.ndim - 2) + tuple(range(spatial)))


def tf_same_pads(size, k, s, d=1):
    """TensorFlow's SAME padding along one axis: (before, after)."""
    ke = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + ke - size, 0)
    return total // 2, total - total // 2


formats = st.sampled_from([("NCHW", True), ("NHWC", False), ("channels_first", True),
                           ("channels_last", False)])
kernel_formats = st.sampled_from([("OIHW", True), ("HWIO", False)])


# ---------------------------------------------------------------------------
# conv2d: groups, depthwise, explicit (asymmetric) and TF pads

@st.composite
def conv_cases(draw):
    if draw(st.booleans()):   # depthwise with a channel multiplier
        c_in = draw(st.integers(1, 4))
        groups, c_out = c_in, c_in * draw(st.integers(1, 3))
    else:
        groups = draw(st.sampled_from([1, 1, 2, 3]))
        c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["valid", "same", "int", "pair", "nested"]))
    if kind == "int":
        p = draw(st.integers(0, 3))
        padding, pads = p, ((p, p), (p, p))
    elif kind == "pair":
        ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        padding, pads = (ph, pw), ((ph, ph), (pw, pw))
    elif kind == "nested":
        pads = tuple((draw(st.integers(0, 4)), draw(st.integers(0, 4))) for _ in range(2))
        padding = pads
    else:
        padding, pads = kind, ((0, 0), (0, 0))
    sizes = []
    for axis in range(2):
        ke = (k[axis] - 1) * d[axis] + 1
        low = ke - sum(pads[axis]) if kind != "same" else 1
        sizes.append(max(1, low) + draw(st.integers(0, 4)))
    if kind == "same":
        pads = tuple(tf_same_pads(sizes[a], k[a], s[a], d[a]) for a in range(2))
    n = draw(st.integers(1, 2))
    return dict(x_shape=(n, c_in) + tuple(sizes), w_shape=(c_out, c_in // groups) + k,
                strides=s, dilation=d, groups=groups, padding=padding, pads=pads)


@EXAMPLES
@given(case=conv_cases(), fmt=formats, kfmt=kernel_formats, bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_conv2d_matches_torch(case, fmt, kfmt, bias, seed):
    rng = np.random.default_rng(seed)
    (data_format, cf), (kernel_format, oi) = fmt, kfmt
    x = rng.standard_normal(case["x_shape"])
    w = rng.standard_normal(case["w_shape"])
    b = rng.standard_normal(case["w_shape"][0]) if bias else None
    kw = dict(strides=case["strides"], padding=case["padding"], dilation_rate=case["dilation"],
              groups=case["groups"], data_format=data_format, kernel_format=kernel_format)
    y = fc.conv2d(to_user(x, cf), kernel_to_user(w, oi), b, **kw)

    xt, wt = T(x, True), T(w, True)
    bt = T(b, True) if bias else None
    (top, bottom), (left, right) = case["pads"]
    yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=case["strides"],
                  dilation=case["dilation"], groups=case["groups"])
    assert_close(from_user(y, cf), yt.detach().numpy(), RTOL, "forward")

    dy = rng.standard_normal(yt.shape)
    yt.backward(T(dy))
    dx, dw, db = fc.conv2d_backward(to_user(dy, cf), to_user(x, cf), kernel_to_user(w, oi),
                                    **kw)
    assert_close(from_user(dx, cf), xt.grad.numpy(), RTOL, "dx")
    assert_close(kernel_from_user(dw, oi), wt.grad.numpy(), RTOL, "dkernel")
    assert_close(db, dy.sum(axis=(0, 2, 3)), RTOL, "dbias")
    if bias:
        assert_close(db, bt.grad.numpy(), RTOL, "dbias vs torch")


@FEW_EXAMPLES
@given(groups=st.sampled_from([1, 2]), k=st.integers(1, 4), d=st.integers(1, 3),
       s=st.integers(1, 2), causal=st.booleans(), fmt=st.sampled_from([("NCW", True),
                                                                       ("NWC", False)]),
       oi=st.booleans(), seed=st.integers(0, 2**16))
def test_conv1d_matches_torch(groups, k, d, s, causal, fmt, oi, seed):
    rng = np.random.default_rng(seed)
    data_format, cf = fmt
    ke = (k - 1) * d + 1
    x = rng.standard_normal((2, 2 * groups, ke + 3))
    w = rng.standard_normal((3 * groups, 2, k))
    padding, pads = ("causal", ((k - 1) * d, 0)) if causal else ((1, 2), (1, 2))
    kw = dict(strides=s, padding=padding, dilation_rate=d, groups=groups,
              data_format=data_format, kernel_format="OIW" if oi else "WIO")
    y = fc.conv1d(to_user(x, cf), kernel_to_user(w, oi), None, **kw)
    xt, wt = T(x, True), T(w, True)
    yt = F.conv1d(F.pad(xt, pads), wt, stride=s, dilation=d, groups=groups)
    assert_close(from_user(y, cf), yt.detach().numpy(), RTOL)
    dy = rng.standard_normal(yt.shape)
    yt.backward(T(dy))
    dx, dw, db = fc.conv1d_backward(to_user(dy, cf), to_user(x, cf), kernel_to_user(w, oi), **kw)
    assert_close(from_user(dx, cf), xt.grad.numpy(), RTOL)
    assert_close(kernel_from_user(dw, oi), wt.grad.numpy(), RTOL)


# ---------------------------------------------------------------------------
# conv2d_transpose

@st.composite
def transpose_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    op = tuple(draw(st.integers(0, si - 1)) for si in s)
    sizes = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    ke = [(k[a] - 1) * d[a] + 1 for a in range(2)]
    # PyTorch's padding: keep the output non-empty
    pads = tuple(draw(st.integers(0, max(0, ((sizes[a] - 1) * s[a] + ke[a] + op[a] - 1) // 2)))
                 for a in range(2))
    return dict(x_shape=(draw(st.integers(1, 2)), c_in) + sizes,
                w_shape=(c_in, c_out // groups) + k, strides=s, dilation=d, groups=groups,
                output_padding=op, pads=pads)


@EXAMPLES
@given(case=transpose_cases(), fmt=formats, kfmt=kernel_formats, seed=st.integers(0, 2**16))
def test_conv2d_transpose_explicit_pads_match_torch(case, fmt, kfmt, seed):
    rng = np.random.default_rng(seed)
    (data_format, cf), (kernel_format, oi) = fmt, kfmt
    x = rng.standard_normal(case["x_shape"])
    w = rng.standard_normal(case["w_shape"])
    b = rng.standard_normal(case["w_shape"][1] * case["groups"])
    kw = dict(strides=case["strides"], padding=case["pads"],
              output_padding=case["output_padding"], dilation_rate=case["dilation"],
              groups=case["groups"], data_format=data_format, kernel_format=kernel_format)
    y = fc.conv2d_transpose(to_user(x, cf), kernel_to_user(w, oi), b, **kw)
    xt, wt, bt = T(x, True), T(w, True), T(b, True)
    yt = F.conv_transpose2d(xt, wt, bt, stride=case["strides"], padding=case["pads"],
                            output_padding=case["output_padding"], groups=case["groups"],
                            dilation=case["dilation"])
    assert y.shape == to_user(yt.detach().numpy(), cf).shape
    assert_close(from_user(y, cf), yt.detach().numpy(), RTOL, "forward")
    for axis in range(2):
        assert fc.conv_transpose_output_size(
            x.shape[2 + axis], w.shape[2 + axis], case["strides"][axis], case["pads"][axis],
            case["output_padding"][axis], case["dilation"][axis]) == yt.shape[2 + axis]
    dy = rng.standard_normal(yt.shape)
    yt.backward(T(dy))
    dx, dw, db = fc.conv2d_transpose_backward(to_user(dy, cf), to_user(x, cf),
                                              kernel_to_user(w, oi), **kw)
    assert_close(from_user(dx, cf), xt.grad.numpy(), RTOL, "dx")
    assert_close(kernel_from_user(dw, oi), wt.grad.numpy(), RTOL, "dkernel")
    assert_close(db, bt.grad.numpy(), RTOL, "dbias")


def keras_transpose_size(size, k, s, padding, op, d):
    """Keras 2.4's conv_utils.deconv_output_length, and TensorFlow's pad before."""
    ke = (k - 1) * d + 1
    if op is None:
        out = size * s + max(ke - s, 0) if padding == "valid" else size * s
    else:
        pad = ke // 2 if padding == "same" else 0
        out = (size - 1) * s + ke - 2 * pad + op
    before = tf_same_pads(out, k, s, d)[0] if padding == "same" else 0
    return out, before


@EXAMPLES
@given(case=transpose_cases(), padding=st.sampled_from(["same", "valid"]),
       with_op=st.booleans(), fmt=formats, kfmt=kernel_formats, seed=st.integers(0, 2**16))
def test_conv2d_transpose_keras_paddings_match_torch_full_then_crop(case, padding, with_op,
                                                                    fmt, kfmt, seed):
    """Keras' string paddings: PyTorch's padding=0 output (the full one), cropped
    at TensorFlow's pad before (zero-extended where Keras' output is longer)."""
    rng = np.random.default_rng(seed)
    (data_format, cf), (kernel_format, oi) = fmt, kfmt
    x = rng.standard_normal(case["x_shape"])
    w = rng.standard_normal(case["w_shape"])
    b = rng.standard_normal(case["w_shape"][1] * case["groups"])
    op = case["output_padding"] if with_op else None
    geometry = []
    for axis in range(2):
        size, k = x.shape[2 + axis], w.shape[2 + axis]
        s, d = case["strides"][axis], case["dilation"][axis]
        out, before = keras_transpose_size(size, k, s, padding, None if op is None else op[axis],
                                           d)
        if padding == "same" and op is not None and -(-out // s) != size:
            return  # an even kernel with output_padding 0: refused (test_validation_new)
        geometry.append((out, before))
    kw = dict(strides=case["strides"], padding=padding, output_padding=op,
              dilation_rate=case["dilation"], groups=case["groups"], data_format=data_format,
              kernel_format=kernel_format)
    y = fc.conv2d_transpose(to_user(x, cf), kernel_to_user(w, oi), b, **kw)
    xt, wt = T(x, True), T(w, True)
    full = F.conv_transpose2d(xt, wt, None, stride=case["strides"], groups=case["groups"],
                              dilation=case["dilation"])
    (out_h, top), (out_w, left) = geometry
    yt = F.pad(full, (-left, out_w - (full.shape[3] - left), -top, out_h - (full.shape[2] - top)))
    yt = yt + T(b).reshape(1, -1, 1, 1)
    assert_close(from_user(y, cf), yt.detach().numpy(), RTOL, "forward")
    for axis in range(2):
        assert fc.conv_transpose_output_size(
            x.shape[2 + axis], w.shape[2 + axis], case["strides"][axis], padding,
            None if op is None else op[axis], case["dilation"][axis]) == geometry[axis][0]
    dy = rng.standard_normal(yt.shape)
    yt.backward(T(dy))
    dx, dw, db = fc.conv2d_transpose_backward(to_user(dy, cf), to_user(x, cf),
                                              kernel_to_user(w, oi), **kw)
    assert_close(from_user(dx, cf), xt.grad.numpy(), RTOL, "dx")
    assert_close(kernel_from_user(dw, oi), wt.grad.numpy(), RTOL, "dkernel")
    assert_close(db, dy.sum(axis=(0, 2, 3)), RTOL, "dbias")


# ---------------------------------------------------------------------------
# Pooling

@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)   # PyTorch: pad <= k / 2
    sizes = tuple(max(1, k[a] - 2 * p[a]) + draw(st.integers(0, 4)) for a in range(2))
    return dict(x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3))) + sizes,
                pool=k, strides=s, pads=p)


@EXAMPLES
@given(case=pool_cases(), include=st.booleans(), fmt=formats, seed=st.integers(0, 2**16))
def test_avg_pool2d_matches_torch(case, include, fmt, seed):
    rng = np.random.default_rng(seed)
    data_format, cf = fmt
    x = rng.standard_normal(case["x_shape"])
    kw = dict(pool_size=case["pool"], strides=case["strides"], padding=case["pads"],
              count_include_pad=include, data_format=data_format)
    y = fc.avg_pool2d(to_user(x, cf), **kw)
    xt = T(x, True)
    yt = F.avg_pool2d(xt, case["pool"], case["strides"], case["pads"], count_include_pad=include)
    assert_close(from_user(y, cf), yt.detach().numpy(), RTOL)
    dy = rng.standard_normal(yt.shape)
    yt.backward(T(dy))
    dx = fc.avg_pool2d_backward(to_user(dy, cf), to_user(x, cf), **kw)
    assert_close(from_user(dx, cf), xt.grad.numpy(), RTOL)


@EXAMPLES
@given(case=pool_cases(), fmt=formats, seed=st.integers(0, 2**16))
def test_max_pool2d_with_pads_matches_torch(case, fmt, seed):
    rng = np.random.default_rng(seed)
    data_format, cf = fmt
    x = rng.standard_normal(case["x_shape"]) - 3   # negative: padding must never win
    kw = dict(pool_size=case["pool"], strides=case["strides"], padding=case["pads"],
              data_format=data_format)
    y = fc.max_pool2d(to_user(x, cf), **kw)
    xt = T(x, True)
    yt = F.max_pool2d(xt, case["pool"], case["strides"], case["pads"])
    np.testing.assert_array_equal(from_user(y, cf), yt.detach().numpy())
    dy = rng.standard_normal(yt.shape)
    yt.backward(T(dy))
    dx = fc.max_pool2d_backward(to_user(dy, cf), to_user(x, cf), **kw)
    assert_close(from_user(dx, cf), xt.grad.numpy(), RTOL)


@FEW_EXAMPLES
@given(k=st.integers(1, 4), s=st.integers(1, 3), data=st.data(), include=st.booleans(),
       cf=st.booleans(), seed=st.integers(0, 2**16))
def test_pool1d_matches_torch(k, s, data, include, cf, seed):
    rng = np.random.default_rng(seed)
    p = data.draw(st.integers(0, k // 2))
    x = rng.standard_normal((2, 3, max(1, k - 2 * p) + data.draw(st.integers(0, 4))))
    fmt = "NCW" if cf else "NWC"
    for ours, ours_back, theirs, extra in (
            (fc.max_pool1d, fc.max_pool1d_backward, F.max_pool1d, {}),
            (fc.avg_pool1d, fc.avg_pool1d_backward, F.avg_pool1d,
             {"count_include_pad": include})):
        y = ours(to_user(x, cf), k, s, p, data_format=fmt, **extra)
        xt = T(x, True)
        yt = theirs(xt, k, s, p, **extra)
        assert_close(from_user(y, cf), yt.detach().numpy(), RTOL)
        dy = rng.standard_normal(yt.shape)
        yt.backward(T(dy))
        dx = ours_back(to_user(dy, cf), to_user(x, cf), k, s, p, data_format=fmt, **extra)
        assert_close(from_user(dx, cf), xt.grad.numpy(), RTOL)


def loop_avg_pool_same(x, k, s):
    """Keras' AveragePooling2D(padding='same') written out with loops (NHWC):
    TensorFlow's pads, each window's mean over its real cells."""
    n, h, w, c = x.shape
    out_h, out_w = -(-h // s[0]), -(-w // s[1])
    top = tf_same_pads(h, k[0], s[0])[0]
    left = tf_same_pads(w, k[1], s[1])[0]
    y = np.zeros((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * s[0] - top, j * s[1] - left
            rows = slice(max(r0, 0), min(r0 + k[0], h))
            cols = slice(max(c0, 0), min(c0 + k[1], w))
            y[:, i, j, :] = x[:, rows, cols, :].mean(axis=(1, 2))
    return y


@FEW_EXAMPLES
@given(k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       size=st.tuples(st.integers(1, 7), st.integers(1, 7)), cf=st.booleans(),
       seed=st.integers(0, 2**16))
def test_avg_pool2d_same_without_padded_cells_matches_loops(k, s, size, cf, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2,) + size + (3,))   # NHWC
    fmt = "NCHW" if cf else "NHWC"
    x_user = np.moveaxis(x, -1, 1) if cf else x
    y = fc.avg_pool2d(x_user, k, s, "same", data_format=fmt)
    assert_close(np.moveaxis(y, 1, -1) if cf else y, loop_avg_pool_same(x, k, s), RTOL)
    # its gradient is the loop version's transpose: <dy, pool(x)> == <unpool(dy), x>
    dy = rng.standard_normal(y.shape)
    dx = fc.avg_pool2d_backward(dy, x_user, k, s, "same", data_format=fmt)
    assert np.isclose(np.sum(dy * y), np.sum(dx * x_user), rtol=1e-12)


@FEW_EXAMPLES
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5),
                       st.integers(1, 5)), fmt=formats, keepdims=st.booleans(),
       seed=st.integers(0, 2**16))
def test_global_pools_match_torch(shape, fmt, keepdims, seed):
    rng = np.random.default_rng(seed)
    data_format, cf = fmt
    x = rng.standard_normal(shape)
    for ours, ours_back, theirs in (
            (fc.global_avg_pool2d, fc.global_avg_pool2d_backward,
             lambda t: t.mean(dim=(2, 3), keepdim=True)),
            (fc.global_max_pool2d, fc.global_max_pool2d_backward,
             lambda t: t.amax(dim=(2, 3), keepdim=True))):
        kw = dict(data_format=data_format, keepdims=keepdims)
        y = ours(to_user(x, cf), **kw)
        xt = T(x, True)
        yt = theirs(xt)
        expected = yt.detach().numpy()
        if keepdims:
            assert_close(from_user(y, cf), expected, RTOL)
        else:
            assert_close(y, expected[:, :, 0, 0], RTOL)
        dy = rng.standard_normal(yt.shape)
        yt.backward(T(dy))
        dy_user = to_user(dy, cf) if keepdims else dy[:, :, 0, 0]
        dx = ours_back(dy_user, to_user(x, cf), **kw)
        assert_close(from_user(dx, cf), xt.grad.numpy(), RTOL)


# ---------------------------------------------------------------------------
# Batch normalization

@FEW_EXAMPLES
@given(ndim=st.integers(2, 4), channels=st.integers(1, 4), cf=st.booleans(),
       affine=st.booleans(), momentum=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_batch_norm_matches_torch(ndim, channels, cf, affine, momentum, seed):
    rng = np.random.default_rng(seed)
    shape = (3, channels) + (2, 3)[: ndim - 2]
    x = rng.standard_normal(shape) * 2 + 1
    gamma = rng.standard_normal(channels) if affine else None
    beta = rng.standard_normal(channels) if affine else None
    eps = 1e-5
    fmt = "channels_first" if cf else "channels_last"
    mm0, mv0 = rng.standard_normal(channels), rng.random(channels) + 0.5

    y, mean, var = fc.batch_norm_train(to_user(x, cf), gamma, beta, epsilon=eps, data_format=fmt)
    xt = T(x, True)
    gt = T(gamma, True) if affine else None
    bt = T(beta, True) if affine else None
    rm, rv = T(mm0), T(mv0)
    yt = F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=1 - momentum, eps=eps)
    assert_close(from_user(y, cf), yt.detach().numpy(), RTOL, "train forward")

    dy = rng.standard_normal(shape)
    yt.backward(T(dy))
    dx, dgamma, dbeta = fc.batch_norm_backward(to_user(dy, cf), to_user(x, cf), gamma, mean, var,
                                               epsilon=eps, data_format=fmt)
    assert_close(from_user(dx, cf), xt.grad.numpy(), 1e-9, "dx")
    if affine:
        assert_close(dgamma, gt.grad.numpy(), RTOL, "dgamma")
        assert_close(dbeta, bt.grad.numpy(), RTOL, "dbeta")

    # Running statistics: PyTorch's momentum is 1 - ours and its running
    # variance is the unbiased one, i.e. our count= path.
    mm, mv = mm0.copy(), mv0.copy()
    fc.batch_norm_update_moving(mm, mv, mean, var, momentum=momentum, count=x.size // channels)
    assert_close(mm, rm.numpy(), RTOL, "running mean")
    assert_close(mv, rv.numpy(), RTOL, "running var")

    y_eval = fc.batch_norm_inference(to_user(x, cf), gamma, beta, mm, mv, epsilon=eps,
                                     data_format=fmt)
    yt_eval = F.batch_norm(T(x), rm, rv, None if gamma is None else T(gamma),
                           None if beta is None else T(beta), training=False, eps=eps)
    assert_close(from_user(y_eval, cf), yt_eval.numpy(), RTOL, "inference")


# ---------------------------------------------------------------------------
# Interpolation

@FEW_EXAMPLES
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5),
                       st.integers(1, 5)),
       size=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       mode=st.sampled_from(["nearest", "bilinear"]), fmt=formats, seed=st.integers(0, 2**16))
def test_upsample2d_matches_torch_interpolate(shape, size, mode, fmt, seed):
    rng = np.random.default_rng(seed)
    data_format, cf = fmt
    x = rng.standard_normal(shape)
    y = fc.upsample2d(to_user(x, cf), size, mode, data_format=data_format)
    xt = T(x, True)
    extra = {"align_corners": False} if mode == "bilinear" else {}
    yt = F.interpolate(xt, size=(shape[2] * size[0], shape[3] * size[1]), mode=mode, **extra)
    assert_close(from_user(y, cf), yt.detach().numpy(), 1e-12, "forward")
    dy = rng.standard_normal(yt.shape)
    yt.backward(T(dy))
    dx = fc.upsample2d_backward(to_user(dy, cf), size, mode, data_format=data_format)
    assert_close(from_user(dx, cf), xt.grad.numpy(), 1e-12, "backward")


# ---------------------------------------------------------------------------
# Output sizes

@given(size=st.integers(1, 30), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 3),
       data=st.data())
@settings(max_examples=60, deadline=None)
def test_conv_output_size_with_explicit_pads_is_pytorchs(size, k, s, d, data):
    before, after = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4))
    ke = (k - 1) * d + 1
    if size + before + after < ke:
        with pytest.raises(ValueError, match="O = "):
            fc.conv_output_size(size, k, s, (before, after), d)
        return
    expected = F.conv1d(torch.zeros(1, 1, size + before + after), torch.zeros(1, 1, k),
                        stride=s, dilation=d).shape[-1]
    assert fc.conv_output_size(size, k, s, (before, after), d) == expected
    if before == after:
        assert fc.conv_output_size(size, k, s, before, d) == expected
