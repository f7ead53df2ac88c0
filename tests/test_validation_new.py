"""Bad arguments to the new ops and conventions: a ValueError/TypeError whose
message names the argument; inputs are never modified; outputs are fresh
C-contiguous arrays of the input dtype."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc

BACKENDS = ["c", "numpy"]
X = np.arange(2 * 5 * 5 * 4, dtype=np.float32).reshape(2, 5, 5, 4) / 50   # NHWC
K = np.ones((3, 3, 4, 6), np.float32)                                      # HWIO
KT = np.ones((3, 3, 2, 4), np.float32)       # transposed: (kh, kw, out, in)
X1 = X[:, 0]                                 # NWC (2, 5, 4)
K1 = K[0]                                    # WIO (3, 4, 6)
C = np.zeros(4, np.float32)


def on(backend, fn, *args, **kwargs):
    with fc.use_backend(backend):
        return fn(*args, **kwargs)


def raises(backend, error, match, fn, *args, **kwargs):
    with pytest.raises(error, match=match):
        on(backend, fn, *args, **kwargs)


# ---------------------------------------------------------------------------
# padding

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding,error,match", [
    (1.5, TypeError, r"`padding` must be 'valid' or 'same', or an int"),
    (True, TypeError, "`padding`"),
    (None, TypeError, "`padding`"),
    (b"same", TypeError, "`padding`"),
    (np.float64(1), TypeError, "`padding`"),
    (-1, ValueError, "`padding` must be a non-negative integer, got -1"),
    ((1, -2), ValueError, r"`padding\[1\]` must be a non-negative integer"),
    ((1, 2.0), TypeError, r"`padding\[1\]`"),
    (((1, 2), (3,)), ValueError, r"`padding\[1\]` must be a pair"),
    (((1, 2), (3, -1)), ValueError, r"`padding\[1\]\[1\]`"),
    ((1, 2, 3), ValueError, "`padding`.*length 3"),
    ((1, (2, 3)), ValueError, "`padding`.*mix"),
    ("full", ValueError, "`padding` must be 'valid' or 'same'"),
    ("causal", ValueError, "`padding`='causal' is only supported by 1-D"),
    (2**31, ValueError, "`padding` must be at most"),
])
def test_bad_conv_padding(backend, padding, error, match):
    raises(backend, error, match, fc.conv2d, X, K, padding=padding)
    raises(backend, error, match, fc.conv2d_backward, np.ones((2, 3, 3, 6), np.float32), X, K,
           padding=padding)
    raises(backend, error, match, fc.max_pool2d, X, 3, padding=padding)
    raises(backend, error, match, fc.conv2d_transpose, X, KT, padding=padding)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_integers_are_pads(backend):
    y = on(backend, fc.conv2d, X, K, padding=np.int64(1))
    assert y.shape == (2, 5, 5, 6)
    assert on(backend, fc.conv2d, X, K, padding=np.array([[1, 0], [0, 2]])).shape == (2, 4, 5, 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_explicit_pads_too_small_show_the_arithmetic(backend):
    with pytest.raises(ValueError) as info:
        on(backend, fc.conv2d, X, K, padding=((0, 1), (0, 0)), dilation_rate=3)
    message = str(info.value)
    assert "floor((5 + 0 + 1 - 7) / 1) + 1 = 0" in message
    assert "O = (I - F + 2P) / S + 1" in message and "height" in message
    raises(backend, ValueError, r"floor\(\(5 \+ 0 \+ 0 - 6\) / 6\) \+ 1", fc.max_pool2d, X, 6,
           padding=0)
    raises(backend, ValueError, r"floor\(\(5 \+ 1 \+ 0 - 9\)", fc.conv1d, X1, K1,
           padding=(1, 0), dilation_rate=4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn", [fc.max_pool2d, fc.avg_pool2d])
@pytest.mark.parametrize("padding", [2, (0, 2), ((0, 0), (2, 0)), ((0, 3), (0, 0))])
def test_pool_pads_must_be_smaller_than_the_pool(backend, fn, padding):
    match = "`padding` must be smaller than the pool size on every side"
    raises(backend, ValueError, match, fn, X, 2, padding=padding)
    back = {fc.max_pool2d: fc.max_pool2d_backward, fc.avg_pool2d: fc.avg_pool2d_backward}[fn]
    raises(backend, ValueError, match, back, np.ones((2, 3, 3, 4), np.float32), X, 2,
           padding=padding)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_d_padding(backend):
    raises(backend, TypeError, r"`padding\[0\]`", fc.conv1d, X1, K1, padding=((1, 1), (1, 1)))
    raises(backend, ValueError, "`padding`.*length 3", fc.conv1d, X1, K1, padding=(1, 1, 1))
    raises(backend, ValueError, "causal", fc.max_pool1d, X1, 2, padding="causal")
    raises(backend, ValueError, "causal", fc.avg_pool1d, X1, 2, padding="causal")
    assert on(backend, fc.conv1d, X1, K1, padding="CAUSAL").shape == (2, 5, 6)


# ---------------------------------------------------------------------------
# groups, formats, kernel shapes

@pytest.mark.parametrize("backend", BACKENDS)
def test_groups(backend):
    raises(backend, ValueError, "`groups` must be a positive integer, got 0", fc.conv2d, X, K,
           groups=0)
    raises(backend, TypeError, "`groups`", fc.conv2d, X, K, groups=1.5)
    raises(backend, TypeError, "`groups`", fc.conv2d, X, K, groups=True)
    raises(backend, ValueError, r"`groups`=3 must divide the input channels, but `x` has 4 "
           r"channels \(x.shape\[3\]\)", fc.conv2d, X, K, groups=3)
    raises(backend, ValueError, r"`groups`=4 must divide the output channels, but `kernel` of "
           r"shape \(3, 3, 1, 6\) \(HWIO\) has 6", fc.conv2d, X, K[:, :, :1], groups=4)
    raises(backend, ValueError, r"`kernel` expects 4 input channels per group .* `x` has 4 "
           r"channels .* 2 per group with groups=2", fc.conv2d, X, K, groups=2)
    raises(backend, ValueError, r"x.shape\[1\]", fc.conv2d, X.transpose(0, 3, 1, 2), K,
           groups=3, data_format="NCHW")
    raises(backend, ValueError, "`groups`=2 must divide the input channels", fc.conv2d_transpose,
           X[..., :3], np.ones((3, 3, 1, 3), np.float32), groups=2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn,args", [
    (fc.conv2d, (X, K)), (fc.max_pool2d, (X,)), (fc.avg_pool2d, (X,)),
    (fc.global_avg_pool2d, (X,)), (fc.global_max_pool2d, (X,)), (fc.upsample2d, (X,)),
    (fc.conv2d_transpose, (X, KT)), (fc.conv1d, (X1, K1)), (fc.max_pool1d, (X1,)),
])
@pytest.mark.parametrize("value,error", [("NHCW", ValueError), ("channels_middle", ValueError),
                                         (None, TypeError), (1, TypeError),
                                         ("NDHWC", ValueError)])
def test_bad_data_format(backend, fn, args, value, error):
    raises(backend, error, "`data_format` must be", fn, *args, data_format=value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_format_names_per_rank(backend):
    raises(backend, ValueError, "`data_format`.*'NCW'", fc.conv1d, X1, K1, data_format="NCHW")
    raises(backend, ValueError, "`data_format`.*'NCHW'", fc.conv2d, X, K, data_format="NWC")
    assert on(backend, fc.conv2d, X, K, data_format="nhwc").shape == (2, 3, 3, 6)
    assert on(backend, fc.conv2d, X, K, data_format="Channels_Last").shape == (2, 3, 3, 6)
    raises(backend, ValueError, r"`x` must be a 4-D array \(batch, channels, height, width\) "
           r"NCHW, got shape \(2, 5, 4\)", fc.conv2d, X1, K, data_format="NCHW")
    raises(backend, ValueError, r"`x` must be a 3-D array \(batch, width, channels\) NWC",
           fc.conv1d, X, K1)
    raises(backend, ValueError, r"`kernel` must be a 3-D array \(out_channels, "
           r"in_channels/groups, kernel_width\) OIW", fc.conv1d, X1, K, kernel_format="OIW")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn,args,value,error", [
    (fc.conv2d, (X, K), "IOHW", ValueError), (fc.conv2d, (X, K), 1, TypeError),
    (fc.conv2d, (X, K), "WIO", ValueError), (fc.conv2d, (X, K), None, TypeError),
    (fc.conv1d, (X1, K1), "HWIO", ValueError), (fc.conv2d_transpose, (X, KT), "OHWI", ValueError),
])
def test_bad_kernel_format(backend, fn, args, value, error):
    raises(backend, error, "`kernel_format` must be", fn, *args, kernel_format=value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_shape_fitting_no_layout_or_the_other(backend):
    # A PyTorch weight (out=6, in=4, 2, 2) read as HWIO: in = shape[2] = 2 != 4.
    oihw = np.ones((6, 4, 2, 2), np.float32)
    raises(backend, ValueError, r"`kernel` expects 2 input channels \(kernel.shape\[2\]\) but "
           r"`x` has 4 channels .* \(the shape fits kernel_format='OIHW'", fc.conv2d, X, oihw)
    assert on(backend, fc.conv2d, X, oihw, kernel_format="OIHW").shape == (2, 4, 4, 6)
    raises(backend, ValueError, r"kernel_format='HWIO'; pass it for Keras weights",
           fc.conv2d, X, K, kernel_format="OIHW")
    with pytest.raises(ValueError, match=r"`kernel` expects 3 input channels") as info:
        on(backend, fc.conv2d, X, np.ones((2, 2, 3, 5), np.float32))
    assert "fits" not in str(info.value)
    raises(backend, ValueError, r"`kernel` of the transposed convolution takes 5 input channels "
           r"\(kernel.shape\[3\]\) but `x` has 4", fc.conv2d_transpose, X,
           np.ones((3, 3, 2, 5), np.float32))
    raises(backend, ValueError, r"`kernel` must have width >= 1", fc.conv1d, X1,
           np.ones((0, 4, 6), np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_shapes(backend):
    raises(backend, ValueError, r"`bias` must have shape \(6,\)", fc.conv2d, X, K,
           np.ones(4, np.float32), padding=1)
    raises(backend, ValueError, r"`bias` must have shape \(2,\)", fc.conv2d_transpose, X, KT,
           np.ones(4, np.float32))
    raises(backend, ValueError, r"`bias` must have shape \(6,\)", fc.conv1d, X1, K1,
           np.ones(5, np.float32))


# ---------------------------------------------------------------------------
# Transposed convolution

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value,strides,error,match", [
    (2, 2, ValueError, r"`output_padding` must be smaller than the stride .* output_padding=2 "
                       r"with stride=2"),
    ((0, 2), (2, 2), ValueError, r"`output_padding\[1\]` must be smaller than the stride"),
    (1, 1, ValueError, "`output_padding` must be smaller than the stride"),
    (-1, 2, ValueError, "`output_padding` must be a non-negative integer"),
    (1.0, 2, TypeError, "`output_padding`"),
    (True, 2, TypeError, "`output_padding`"),
    ((1, 1, 1), 2, ValueError, "`output_padding`.*length 3"),
    ("1", 2, TypeError, "`output_padding`"),
])
def test_bad_output_padding(backend, value, strides, error, match):
    raises(backend, error, match, fc.conv2d_transpose, X, KT, strides=strides,
           output_padding=value)
    raises(backend, error, match, fc.conv2d_transpose_backward, np.ones((2, 10, 10, 2),
           np.float32), X, KT, strides=strides, output_padding=value)


def test_conv_transpose_output_size_errors():
    with pytest.raises(ValueError, match="`output_padding` must be smaller than the stride"):
        fc.conv_transpose_output_size(5, 3, 2, "same", output_padding=2)
    with pytest.raises(ValueError, match="causal"):
        fc.conv_transpose_output_size(5, 3, 2, "causal")
    with pytest.raises(ValueError, match=r"\(in - 1\) \* s - before - after \+ ke \+ "
                                         r"output_padding = \(1 - 1\) \* 1 - 2 - 2 \+ 3 \+ 0 = -1"):
        fc.conv_transpose_output_size(1, 3, 1, 2)
    with pytest.raises(ValueError, match="`padding` must be a non-negative integer"):
        fc.conv_output_size(5, 3, padding=-1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_transpose_size_errors(backend):
    # 'same' with an even kernel and output_padding 0: TensorFlow refuses it too
    raises(backend, ValueError, r"`output_padding`=0 with padding='same'.*even effective kernel "
           r"size 4", fc.conv2d_transpose, X, np.ones((4, 4, 2, 4), np.float32), strides=2,
           padding="same", output_padding=0)
    assert on(backend, fc.conv2d_transpose, X, np.ones((4, 4, 2, 4), np.float32), strides=2,
              padding="same", output_padding=1).shape == (2, 9, 9, 2)   # (5 - 1) * 2 + 4 - 4 + 1
    raises(backend, ValueError, "empty transposed-convolution output with pads",
           fc.conv2d_transpose, X[:, :1, :1], KT, padding=2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dy_shapes(backend):
    dy = np.ones((2, 7, 7, 3), np.float32)
    raises(backend, ValueError, r"`dy` must have the output's shape \(2, 7, 7, 2\)",
           fc.conv2d_transpose_backward, dy, X, KT)
    raises(backend, ValueError, r"`dy` must have the output's shape \(2, 2, 2, 4\)",
           fc.avg_pool2d_backward, dy, X)
    raises(backend, ValueError, r"`dy` must have the output's shape \(2, 3, 6\)",
           fc.conv1d_backward, dy[:, 0], X1, K1)
    raises(backend, ValueError, r"`dy` must have the output's shape \(2, 2, 4\)",
           fc.max_pool1d_backward, dy[:, 0], X1)
    raises(backend, ValueError, r"`dy` must be a 3-D array \(batch, out_width, channels\)",
           fc.avg_pool1d_backward, dy, X1)
    raises(backend, ValueError, r"`dy` must have the output's shape \(2, 4\)",
           fc.global_avg_pool2d_backward, np.ones((2, 3), np.float32), X)
    raises(backend, ValueError, r"`dy` must be a 2-D array \(batch, channels\)",
           fc.global_max_pool2d_backward, np.ones((2, 1, 1, 4), np.float32), X)
    raises(backend, ValueError, r"`dy` must have the output's shape \(2, 1, 1, 4\)",
           fc.global_max_pool2d_backward, np.ones((2, 4, 1, 1), np.float32), X, keepdims=True)


# ---------------------------------------------------------------------------
# Flags

@pytest.mark.parametrize("backend", BACKENDS)
def test_flags_must_be_bools(backend):
    dy = np.ones((2, 3, 3, 6), np.float32)
    for name in ("compute_dx", "compute_dkernel", "compute_dbias"):
        raises(backend, TypeError, f"`{name}` must be True or False", fc.conv2d_backward, dy, X,
               K, **{name: "yes"})
    raises(backend, TypeError, "`count_include_pad`", fc.avg_pool2d, X, count_include_pad=1)
    raises(backend, TypeError, "`keepdims`", fc.global_avg_pool2d, X, keepdims=None)
    raises(backend, TypeError, "`compute_dx`", fc.batch_norm_backward, X, X, None, C, C + 1,
           compute_dx=0)
    dx, dk, db = on(backend, fc.conv2d_backward, dy, X, K, compute_dx=np.bool_(False),
                    compute_dkernel=False)
    assert dx is None and dk is None and db is None


# ---------------------------------------------------------------------------
# dtypes

NEW_OPS = [
    (fc.conv2d, lambda x: (x, K[:, :, :2]), dict(groups=2)),
    (fc.conv2d, lambda x: (x.transpose(0, 3, 1, 2), K), dict(data_format="NCHW")),
    (fc.conv2d_transpose, lambda x: (x, KT), {}),
    (fc.conv1d, lambda x: (x[:, 0], K1), {}),
    (fc.avg_pool2d, lambda x: (x,), {}),
    (fc.max_pool1d, lambda x: (x[:, 0],), {}),
    (fc.global_avg_pool2d, lambda x: (x,), {}),
    (fc.global_max_pool2d, lambda x: (x,), {}),
    (fc.batch_norm_train, lambda x: (x,), {}),
    (fc.upsample2d, lambda x: (x,), {}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float16, np.int32, bool, np.complex64])
@pytest.mark.parametrize("fn,args,kw", NEW_OPS)
def test_bad_dtypes(backend, dtype, fn, args, kw):
    raises(backend, TypeError, "`x` must have dtype float32", fn, *args(X.astype(dtype)), **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_dtypes(backend):
    raises(backend, TypeError, "`kernel` has dtype float64 but `x` has dtype float32",
           fc.conv2d_transpose, X, KT.astype(np.float64))
    raises(backend, TypeError, "`gamma` has dtype float64 but `x` has dtype float32",
           fc.batch_norm_train, X, np.ones(4))


# ---------------------------------------------------------------------------
# Batch normalization

@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_arguments(backend):
    ones = np.ones(4, np.float32)
    raises(backend, ValueError, r"`gamma` must have one value per channel of `x`, shape \(4,\), "
           r"got \(3,\)", fc.batch_norm_train, X, ones[:3])
    raises(backend, ValueError, r"`beta` must have .* \(4,\), got \(5,\)", fc.batch_norm_train,
           X.transpose(0, 3, 1, 2), None, np.ones(5, np.float32), data_format="channels_first")
    raises(backend, ValueError, r"`gamma` must be a 1-D array", fc.batch_norm_train, X,
           np.ones((4, 1), np.float32))
    raises(backend, ValueError, "`x` must have at least 2 dimensions", fc.batch_norm_train,
           ones)
    raises(backend, ValueError, "`x` must hold at least one value per channel",
           fc.batch_norm_train, X[:0])
    for eps, error in ((0, ValueError), (-1e-3, ValueError), (np.nan, ValueError),
                       ("1e-3", TypeError), (True, TypeError)):
        raises(backend, error, "`epsilon`", fc.batch_norm_train, X, epsilon=eps)
    raises(backend, ValueError, r"`data_format`='NCW' describes 3-D data but `x` has shape",
           fc.batch_norm_train, X, data_format="NCW")
    raises(backend, ValueError, "`data_format` must be", fc.batch_norm_train, X,
           data_format="NHCW")
    raises(backend, ValueError, "`activation`", fc.batch_norm_train, X, activation="tanh")
    raises(backend, ValueError, r"`dy` must have the shape of `x` \(2, 5, 5, 4\)",
           fc.batch_norm_backward, X[:1], X, None, C, ones)
    raises(backend, TypeError, "`mean`", fc.batch_norm_backward, X, X, None, None, ones)
    raises(backend, ValueError, "`var` must have one value per channel", fc.batch_norm_backward,
           X, X, None, C, ones[:2])
    raises(backend, TypeError, "`moving_var`", fc.batch_norm_inference, X, None, None, C, None)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(momentum=1.5), ValueError, r"`momentum` must be in \[0, 1\]"),
    (dict(momentum=-0.1), ValueError, "`momentum`"),
    (dict(momentum="0.9"), TypeError, "`momentum`"),
    (dict(momentum=True), TypeError, "`momentum`"),
    (dict(momentum=np.inf), ValueError, "`momentum`"),
    (dict(count=1), ValueError, "`count` must be an integer >= 2"),
    (dict(count=0), ValueError, "`count`"),
    (dict(count=2.0), TypeError, "`count`"),
    (dict(count=True), TypeError, "`count`"),
])
def test_batch_norm_update_moving_arguments(kwargs, error, match):
    mm, mv = np.zeros(3), np.ones(3)
    with pytest.raises(error, match=match):
        fc.batch_norm_update_moving(mm, mv, np.ones(3), np.ones(3), **kwargs)
    np.testing.assert_array_equal(mm, 0)
    np.testing.assert_array_equal(mv, 1)


def test_batch_norm_update_moving_arrays():
    mm, mv, s = np.zeros(3), np.ones(3), np.ones(3)
    update = fc.batch_norm_update_moving
    readonly = np.zeros(3)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="`moving_mean` must be writeable"):
        update(readonly, mv, s, s)
    with pytest.raises(TypeError, match="`moving_var` must be a NumPy array"):
        update(mm, [1.0, 1.0, 1.0], s, s)
    with pytest.raises(TypeError, match="`moving_mean` must have dtype float32 or float64"):
        update(mm.astype(np.float16), mv, s, s)
    with pytest.raises(TypeError, match="`moving_var` has dtype float32 but `moving_mean`"):
        update(mm, mv.astype(np.float32), s, s)
    with pytest.raises(ValueError, match=r"`moving_var` must have the shape of `moving_mean` "
                                         r"\(3,\), got \(4,\)"):
        update(mm, np.ones(4), s, s)
    with pytest.raises(ValueError, match="`moving_mean` must be a 1-D array"):
        update(np.zeros((3, 1)), np.ones((3, 1)), s, s)
    both = np.zeros(6)
    with pytest.raises(ValueError, match="must not share memory"):
        update(both[:3], both[2:5], s, s)
    with pytest.raises(TypeError, match="`var` has dtype float32 but `moving_mean` has dtype "
                                        "float64"):
        update(mm, mv, s, s.astype(np.float32))
    with pytest.raises(ValueError, match=r"`mean` must have the shape of `moving_mean`"):
        update(mm, mv, s[:2], s)
    with pytest.raises(TypeError, match="`mean`"):
        update(mm, mv, None, s)
    np.testing.assert_array_equal(mm, 0)
    update(mm, mv, s, s * 2, momentum=0.75, count=3)
    np.testing.assert_allclose(mm, 0.25)
    np.testing.assert_allclose(mv, 0.75 + 0.25 * 3.0)    # 2 * 3 / 2 = 3 fed in


# ---------------------------------------------------------------------------
# Upsampling

@pytest.mark.parametrize("backend", BACKENDS)
def test_upsample_arguments(backend):
    raises(backend, ValueError, "`size` must be a positive integer", fc.upsample2d, X, 0)
    raises(backend, TypeError, "`size`", fc.upsample2d, X, 1.5)
    raises(backend, ValueError, r"`size\[1\]`", fc.upsample2d, X, (2, -1))
    raises(backend, ValueError, "`interpolation` must be 'nearest' or 'bilinear'",
           fc.upsample2d, X, 2, "bicubic")
    raises(backend, TypeError, "`interpolation`", fc.upsample2d, X, 2, None)
    raises(backend, ValueError, r"`dy` must have a width that is a positive multiple of "
           r"`size`\[1\] = 2", fc.upsample2d_backward, X, (1, 2), "nearest")
    raises(backend, ValueError, r"`dy` must have a height that is a positive multiple of "
           r"`size`\[0\] = 3", fc.upsample2d_backward, X, (3, 1), "bilinear", data_format="NHWC")
    assert on(backend, fc.upsample2d_backward, X, (1, 5)).shape == (2, 5, 1, 4)


# ---------------------------------------------------------------------------
# Inputs are never modified; outputs are fresh, C-contiguous, of the input dtype

def _calls(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 7, 4)).astype(dtype)
    nchw = x.transpose(0, 3, 1, 2)                     # a view: copied once, never written
    k = rng.standard_normal((3, 3, 2, 6)).astype(dtype)
    oihw = k.transpose(3, 2, 0, 1)
    kt = rng.standard_normal((3, 3, 3, 4)).astype(dtype)
    b6, b3 = rng.standard_normal(6).astype(dtype), rng.standard_normal(3).astype(dtype)
    g4 = rng.standard_normal(4).astype(dtype)
    x1, k1 = x[:, 0], rng.standard_normal((3, 4, 6)).astype(dtype)
    y = fc.conv2d(x, k, b6, padding=1, groups=2)
    yt = fc.conv2d_transpose(x, kt, b3, strides=2, padding="same")
    dy1 = np.ones((2, 7, 6), dtype)
    return [x, nchw, k, oihw, kt, b6, b3, g4, x1, k1, dy1], [
        lambda: fc.conv2d(nchw, oihw, b6, padding=((1, 0), (2, 1)), groups=2,
                          data_format="NCHW", kernel_format="OIHW", activation="relu"),
        lambda: fc.conv2d(x[..., :2], oihw[:, :2].copy(), b6, padding=1, kernel_format="OIHW"),
        lambda: fc.conv2d_backward(y, x, k, padding=1, groups=2),
        lambda: fc.conv2d_backward(y.transpose(0, 3, 1, 2), nchw, k, padding=1, groups=2,
                                   data_format="NCHW"),
        lambda: fc.conv2d_transpose(x, kt, b3, strides=2, padding="same", activation="relu"),
        lambda: fc.conv2d_transpose_backward(yt, x, kt, strides=2, padding="same"),
        lambda: fc.conv1d(x1, k1, b6, padding="causal"),
        lambda: fc.conv1d_backward(dy1, x1, k1, padding=(1, 1)),
        lambda: fc.max_pool2d(nchw, 3, 2, 1, data_format="NCHW"),
        lambda: fc.max_pool2d_backward(np.ones((2, 3, 4, 4), dtype), x, 3, 2, 1),
        lambda: fc.avg_pool2d(x, 2, padding="same"),
        lambda: fc.avg_pool2d_backward(np.ones((2, 3, 4, 4), dtype), x, 2, padding="same",
                                       count_include_pad=True),
        lambda: fc.global_max_pool2d(x),
        lambda: fc.global_avg_pool2d_backward(g4[None].repeat(2, 0), x),
        lambda: fc.batch_norm_train(nchw, g4, g4, data_format="channels_first",
                                    activation="relu"),
        lambda: fc.batch_norm_backward(x, x, g4, g4, g4 * g4),
        lambda: fc.batch_norm_inference(x, g4, None, g4, g4 * g4),
        lambda: fc.upsample2d(nchw, 2, "bilinear", data_format="NCHW"),
        lambda: fc.upsample2d_backward(x, (2, 7), "nearest"),
    ]


@pytest.mark.parametrize("backend,dtype", [("c", np.float32), ("numpy", np.float32),
                                           ("numpy", np.float64)])
def test_inputs_unchanged_and_outputs_fresh(backend, dtype):
    with fc.use_backend(backend):
        inputs, calls = _calls(dtype)
        copies = [a.copy() for a in inputs]
        for call in calls:
            result = call()
            outputs = result if isinstance(result, tuple) else (result,)
            for out in outputs:
                if out is None:
                    continue
                assert out.dtype == dtype and out.flags.c_contiguous
                assert not any(np.shares_memory(out, a) for a in inputs)
    for a, b in zip(inputs, copies):
        np.testing.assert_array_equal(a, b)
