"""The C backend agrees with the NumPy reference, on every SIMD path, over a
grid of strides, dilations, paddings and awkward sizes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastconv as fc
from fastconv import ops
from conftest import assert_close, numpy_backend

FWD_RTOL = 1e-5   # forward and dx, float32 against float32 reference
WGRAD_RTOL = 1e-4  # dkernel and dbias sum over many more terms

# (x shape NHWC, kernel shape HWIO): odd and tiny sizes, 1x1, batch 1, c_in 1,
# c_out off the vector width, rectangular kernels; few-channel layers (c_in <= 4,
# their own forward path) with several tiles per row and several column panels;
# channels enough for two K blocks of taps (FC_TAP_BLOCK_BYTES: 9 taps of
# 130 x 64 floats make blocks of 5 and 4; a block can be padding for a whole
# tile, and the last still applies the ReLU).
SHAPES = [
    ((1, 6, 7, 130), (3, 3, 130, 70)),
    ((2, 9, 8, 3), (3, 3, 3, 5)),
    ((1, 7, 11, 1), (3, 2, 1, 17)),
    ((1, 5, 31, 2), (2, 3, 2, 70)),
    ((2, 6, 5, 4), (3, 2, 4, 40)),
    ((3, 6, 5, 20), (1, 1, 20, 33)),
    ((1, 10, 9, 8), (2, 3, 8, 70)),
]


def _fits(x_shape, k_shape, dilation, padding):
    """'valid' needs the input to cover the dilated kernel (else it is an error
    case, tested in test_validation.py)."""
    if padding == "same":
        return True
    return all(x_shape[1 + a] >= (k_shape[a] - 1) * dilation + 1 for a in (0, 1))


GRID = [(shapes, s, d, pad)
        for shapes, s, d, pad in itertools.product(SHAPES, (1, 2, 3), (1, 2, 3), ("valid", "same"))
        if _fits(*shapes, d, pad)]


def _conv_case(rng, x_shape, k_shape, strides, dilation, padding):
    x = rng.standard_normal(x_shape).astype(np.float32)
    kernel = rng.standard_normal(k_shape).astype(np.float32)
    bias = rng.standard_normal(k_shape[3]).astype(np.float32)
    kw = dict(strides=strides, padding=padding, dilation_rate=dilation)
    return x, kernel, bias, kw


@pytest.mark.parametrize("shapes,strides,dilation,padding", GRID,
                         ids=["x{}k{}-s{}-d{}-{}".format(*c[0], *c[1:]) for c in GRID])
def test_conv2d_forward_and_backward(simd, rng, shapes, strides, dilation, padding):
    x_shape, k_shape = shapes
    x, kernel, bias, kw = _conv_case(rng, x_shape, k_shape, strides, dilation, padding)
    scale = float(np.abs(numpy_backend(fc.conv2d, x, kernel, bias, **kw)).max())
    for activation in (None, "relu"):
        expected = numpy_backend(fc.conv2d, x, kernel, bias, activation=activation, **kw)
        actual = fc.conv2d(x, kernel, bias, activation=activation, **kw)
        assert actual.dtype == np.float32
        assert_close(actual, expected, FWD_RTOL, f"forward {activation}", scale=scale)
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    dx0, dk0, db0 = numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw)
    dx1, dk1, db1 = fc.conv2d_backward(dy, x, kernel, **kw)
    assert_close(dx1, dx0, FWD_RTOL, "dx")
    assert_close(dk1, dk0, WGRAD_RTOL, "dkernel")
    assert_close(db1, db0, WGRAD_RTOL, "dbias")


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_kernel_equal_to_input(simd, rng, padding):
    x, kernel, bias, kw = _conv_case(rng, (2, 5, 4, 6), (5, 4, 6, 9), 1, 1, padding)
    assert_close(fc.conv2d(x, kernel, bias, **kw),
                 numpy_backend(fc.conv2d, x, kernel, bias, **kw), FWD_RTOL)
    dy = rng.standard_normal(fc.conv2d(x, kernel, **kw).shape).astype(np.float32)
    for a, e in zip(fc.conv2d_backward(dy, x, kernel, **kw),
                    numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw)):
        assert_close(a, e, WGRAD_RTOL)


def test_seed_layers(simd, rng):
    """The seed CNN's two convolutions at a small batch."""
    cases = [((4, 28, 28, 1), (3, 3, 1, 32), "same"), ((4, 28, 28, 32), (3, 3, 32, 64), "valid")]
    for x_shape, k_shape, padding in cases:
        x, kernel, bias, kw = _conv_case(rng, x_shape, k_shape, 1, 1, padding)
        y = fc.conv2d(x, kernel, bias, activation="relu", **kw)
        assert_close(y, numpy_backend(fc.conv2d, x, kernel, bias, activation="relu", **kw),
                     FWD_RTOL)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        for name, a, e, tol in zip(("dx", "dk", "db"), fc.conv2d_backward(dy, x, kernel, **kw),
                                   numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw),
                                   (FWD_RTOL, WGRAD_RTOL, WGRAD_RTOL)):
            assert_close(a, e, tol, name)


# The weight gradient sums a chunk of about 1024 pixels in windows of 512
# (FC_WGRAD_WINDOW_PIXELS): a 1x1 layer's chunk is one run of 1000 pixels cut
# in two; a dilated 3x3 (no Winograd) with a channel tail makes windows of
# whole rows, the last pixels read from the padded copy of dy's end; a
# grouped layer's items each take one group's channels.
WINDOW_CASES = [
    ((3, 40, 40, 24), (1, 1, 24, 40), 1, 1, "valid", 1),
    ((2, 37, 33, 9), (3, 3, 9, 20), 1, 2, "same", 1),
    ((5, 45, 44, 16), (3, 3, 16, 70), 2, 1, "same", 1),
    ((3, 40, 40, 24), (3, 3, 8, 36), 1, 1, "same", 3),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("x_shape,k_shape,strides,dilation,padding,groups", WINDOW_CASES)
def test_weight_gradient_over_windows_of_a_chunk(simd, rng, x_shape, k_shape, strides, dilation,
                                                 padding, groups, dtype):
    x, kernel, _, kw = _conv_case(rng, x_shape, k_shape, strides, dilation, padding)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    kw["groups"] = groups
    dy_shape = fc.conv2d(x, kernel, **kw).shape
    assert np.prod(dy_shape[:3]) > 2 * 1024   # several chunks, two windows each
    dy = rng.standard_normal(dy_shape).astype(dtype)
    _, dk, db = fc.conv2d_backward(dy, x, kernel, compute_dx=False, **kw)
    _, dk_ref, db_ref = numpy_backend(fc.conv2d_backward, dy, x, kernel, compute_dx=False, **kw)
    assert_close(dk, dk_ref, WGRAD_RTOL, "dk")
    assert_close(db, db_ref, WGRAD_RTOL, "db")


def test_compute_dx_false_skips_dx(rng):
    x, kernel, _, kw = _conv_case(rng, (2, 6, 6, 2), (3, 3, 2, 4), 1, 1, "same")
    dy = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    for backend in ("c", "numpy"):
        with fc.use_backend(backend):
            dx, dk, db = fc.conv2d_backward(dy, x, kernel, compute_dx=False, **kw)
            assert dx is None
            assert_close(dk, fc.conv2d_backward(dy, x, kernel, **kw)[1], 0)


POOL_CASES = [
    ((2, 8, 8, 5), 2, None, "valid"),
    ((2, 7, 9, 5), 2, None, "valid"),
    ((2, 7, 9, 5), 2, None, "same"),
    ((1, 7, 9, 70), 3, 1, "same"),        # overlapping windows accumulate
    ((3, 9, 10, 17), (3, 2), (2, 1), "valid"),
    ((1, 5, 6, 3), (2, 3), (3, 2), "same"),
    ((2, 26, 26, 64), 2, None, "valid"),  # the seed's pool
    ((1, 4, 4, 1), 4, None, "valid"),     # window = input
    ((2, 5, 6, 61), (2, 3), 1, "same"),   # a channel tail in the last vector group
]


@pytest.mark.parametrize("x_shape,pool,strides,padding", POOL_CASES)
def test_max_pool_exact(simd, rng, x_shape, pool, strides, padding):
    # Rounded values make ties frequent: the first maximum must win in both.
    x = np.round(rng.standard_normal(x_shape) * 2).astype(np.float32)
    kw = dict(pool_size=pool, strides=strides, padding=padding)
    y = fc.max_pool2d(x, **kw)
    np.testing.assert_array_equal(y, numpy_backend(fc.max_pool2d, x, **kw))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(fc.max_pool2d_backward(dy, x, **kw),
                                  numpy_backend(fc.max_pool2d_backward, dy, x, **kw))


def test_max_pool_nan_and_inf_agree(simd, rng):
    x = rng.standard_normal((2, 6, 6, 20)).astype(np.float32)
    x[0, 0, 0, :5] = np.nan
    x[0, 0, 1, 3:8] = np.nan   # two NaNs in one window: the first gets the gradient
    x[1, 2, 2, :] = np.inf
    x[1, 4, 4, :] = -np.inf
    for kw in (dict(pool_size=2), dict(pool_size=3, strides=1, padding="same")):
        y = fc.max_pool2d(x, **kw)
        np.testing.assert_array_equal(y, numpy_backend(fc.max_pool2d, x, **kw))
        assert np.isnan(y[0, 0, 0, :5]).all()
        dy = rng.standard_normal(y.shape).astype(np.float32)
        np.testing.assert_array_equal(fc.max_pool2d_backward(dy, x, **kw),
                                      numpy_backend(fc.max_pool2d_backward, dy, x, **kw))


def test_conv_nan_propagates_like_reference(simd, rng):
    x = rng.standard_normal((1, 5, 5, 3)).astype(np.float32)
    x[0, 2, 2, 1] = np.nan
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    for activation in (None, "relu"):
        y = fc.conv2d(x, kernel, padding="same", activation=activation)
        y_ref = numpy_backend(fc.conv2d, x, kernel, padding="same", activation=activation)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
        assert np.isnan(y[0, 1:4, 1:4]).all()


# Beside the few-row path and a single panel: several panels of short rows
# (under 512 bytes) read in place below 32 tiles, with a tail panel and two
# K blocks (64x1100->100, 64x700->70), and packed from 32 tiles on (200x600->100);
# in float64, 60 units are short rows and 100 are not. The input gradient
# goes strip by strip: a last strip of a few features (1100, 700, 300, 7),
# features a whole number of strips (1024), one strip cut into row blocks
# (200x40->30). So does the weight gradient of fewer than two vectors of
# units over 1024 features or more (64x1100->10 with a last strip of a few,
# 5x1030->1 on the generic path too, float64 128x1600->10); its general driver
# folds chunks past 1024 samples (1100x20->3).
DENSE_CASES = [(1, 10816, 100, np.float32), (64, 300, 37, np.float32), (5, 7, 1, np.float32),
               (64, 1100, 100, np.float32), (64, 700, 70, np.float32),
               (200, 600, 100, np.float32), (32, 1024, 130, np.float32),
               (200, 40, 30, np.float32), (1100, 20, 3, np.float32),
               (64, 1100, 10, np.float32), (5, 1030, 1, np.float32),
               (64, 700, 60, np.float64), (64, 300, 100, np.float64),
               (128, 1600, 10, np.float64)]


@pytest.mark.parametrize("batch,features,units,dtype", DENSE_CASES)
def test_dense(simd, rng, batch, features, units, dtype):
    x = rng.standard_normal((batch, features)).astype(dtype)
    kernel = rng.standard_normal((features, units)).astype(dtype)
    bias = rng.standard_normal(units).astype(dtype)
    fwd, wgrad = (FWD_RTOL, WGRAD_RTOL) if dtype == np.float32 else (1e-12, 1e-12)
    for activation in (None, "relu"):
        assert_close(fc.dense(x, kernel, bias, activation),
                     numpy_backend(fc.dense, x, kernel, bias, activation), fwd)
    dy = rng.standard_normal((batch, units)).astype(dtype)
    grads = fc.dense_backward(dy, x, kernel)
    for name, a, e, tol in zip(("dx", "dk", "db"), grads,
                               numpy_backend(fc.dense_backward, dy, x, kernel),
                               (fwd, wgrad, wgrad)):
        assert_close(a, e, tol, name)
    # The general drivers on the same products: a 1x1 convolution over one
    # image whose row is the batch. The input gradient sums them in its
    # order; so do the weight and bias gradients up to 1024 samples (one
    # chunk each way).
    conv = fc.conv2d_backward(dy.reshape(1, 1, batch, units), x.reshape(1, 1, batch, features),
                              kernel.reshape(1, 1, features, units))
    np.testing.assert_array_equal(grads[0], conv[0].reshape(batch, features))
    if batch <= 1024:
        np.testing.assert_array_equal(grads[1], conv[1].reshape(features, units))
        np.testing.assert_array_equal(grads[2], conv[2])


def test_relu_backward_is_numpy_bit_for_bit(simd, rng):
    y = rng.standard_normal((3, 7, 9, 70)).astype(np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y.flat[:8] = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45]
    dy.flat[8:12] = [np.nan, np.inf, -np.inf, -1.0]
    y.flat[8:12] = [-1.0, -1.0, -1.0, -1.0]       # NaN/Inf times 0 stay NaN; -1 * 0 is -0
    with np.errstate(invalid="ignore"):   # inf * 0 in NumPy's own expression
        want = dy * (y > 0)
        from_numpy_backend = numpy_backend(fc.relu_backward, dy, y)
    got = fc.relu_backward(dy, y)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(from_numpy_backend, want)
    with pytest.raises(ValueError, match="`dy` must have the shape of `y`"):
        fc.relu_backward(dy[:1], y)


@pytest.mark.parametrize("dtype, uint", [(np.float32, np.uint32), (np.float64, np.uint64)])
def test_relu_is_numpy_maximum_bit_for_bit(dtype, uint, rng):
    # 3 blocks of the C loop (65536 elements each) and a tail, so threads split it
    x = rng.standard_normal((3, 65536 + 77)).astype(dtype)
    bits = x.reshape(-1).view(uint)
    bits[:4096] = rng.integers(0, np.iinfo(uint).max, 4096, dtype=uint, endpoint=True)
    info = np.finfo(dtype)
    x.flat[4096:4106] = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, info.smallest_subnormal,
                         -info.smallest_subnormal, info.max, -info.max]
    one_bit = uint(1)
    x.reshape(-1).view(uint)[4106] = np.array(np.nan, dtype).view(uint) | one_bit  # a payload
    x.reshape(-1).view(uint)[4107] = np.array(-np.nan, dtype).view(uint) | one_bit
    before = x.copy()
    want = np.maximum(x, 0)
    for threads in (1, 2):
        previous = fc.set_num_threads(threads)
        try:
            got = fc.relu(x)
        finally:
            fc.set_num_threads(previous)
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_array_equal(got.view(uint), want.view(uint))
    np.testing.assert_array_equal(x.view(uint), before.view(uint))   # input untouched
    strided = x[:, ::3]
    np.testing.assert_array_equal(fc.relu(strided).view(uint), np.maximum(strided, 0).view(uint))
    np.testing.assert_array_equal(numpy_backend(fc.relu, x).view(uint), want.view(uint))
    assert fc.relu(x[:0]).shape == (0, x.shape[1])


@pytest.mark.parametrize("dtype, uint", [(np.float32, np.uint32), (np.float64, np.uint64)])
def test_add_is_numpy_add_and_maximum_bit_for_bit(dtype, uint, rng):
    # 2 blocks of the C loop (65536 elements each) and a tail
    a = rng.standard_normal((2, 65536 + 91)).astype(dtype)
    b = rng.standard_normal(a.shape).astype(dtype)
    info = np.finfo(dtype)
    a.flat[:8] = [np.nan, np.inf, np.inf, -0.0, 0.0, info.max, -np.nan, 1.0]
    b.flat[:8] = [1.0, -np.inf, np.inf, -0.0, -0.0, info.max, 2.0, np.nan]
    a.reshape(-1).view(uint)[8] = np.array(np.nan, dtype).view(uint) | uint(1)   # a payload
    before_a, before_b = a.copy(), b.copy()
    for relu in (False, True):
        with np.errstate(over="ignore", invalid="ignore"):   # max + max, inf - inf
            want = np.add(a, b)
            from_numpy_backend = numpy_backend(ops.add, a, b, relu=relu)
        if relu:
            want = np.maximum(want, 0)
        for threads in (1, 2):
            previous = fc.set_num_threads(threads)
            try:
                got = ops.add(a, b, relu=relu)
            finally:
                fc.set_num_threads(previous)
            assert got.dtype == dtype and got.shape == a.shape
            np.testing.assert_array_equal(got.view(uint), want.view(uint))
        np.testing.assert_array_equal(from_numpy_backend.view(uint), want.view(uint))
    np.testing.assert_array_equal(a.view(uint), before_a.view(uint))   # inputs untouched
    np.testing.assert_array_equal(b.view(uint), before_b.view(uint))


def test_add_of_other_inputs_is_numpy_add():
    a = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    for b in (np.float32(1.5), np.ones(3, np.float32), a.T.copy().T, a[:, ::-1]):
        np.testing.assert_array_equal(ops.add(a, b), np.add(a, b))
        np.testing.assert_array_equal(ops.add(a, b, relu=True), np.maximum(np.add(a, b), 0))
    ints = np.array([-3, 0, 5], np.int32)
    assert ops.add(ints, ints).dtype == np.int32
    assert ops.add(a, a.astype(np.float64)).dtype == np.float64
    assert ops.add(a[:0], a[:0]).shape == (0, 3)


def test_relu_of_other_inputs_is_numpy_maximum():
    ints = np.array([-3, 0, 5], np.int32)
    np.testing.assert_array_equal(fc.relu(ints), np.maximum(ints, 0))
    assert fc.relu(ints).dtype == np.int32
    np.testing.assert_array_equal(fc.relu([-1.5, 2.0]), [0.0, 2.0])
    half = np.array([-1, 2], np.float16)
    assert fc.relu(half).dtype == np.float16


# 3x3 stride-1 layers with 16+ channels run by Winograd F(2x2, 3x3); each
# case runs with it on and off. Odd sizes leave partial 2x2 tiles at the
# bottom/right; channel counts leave vector tails.
WINOGRAD_CASES = [
    ((2, 9, 11, 17), (3, 3, 17, 20), "same"),
    ((1, 5, 6, 16), (3, 3, 16, 70), "same"),
    ((3, 7, 7, 40), (3, 3, 40, 16), "valid"),
    ((1, 1, 1, 16), (3, 3, 16, 16), "same"),
    ((2, 2, 3, 33), (3, 3, 33, 65), "same"),
    ((1, 3, 3, 16), (3, 3, 16, 16), "valid"),
    ((2, 12, 10, 130), (3, 3, 130, 18), "same"),
    ((1, 8, 9, 16), (3, 3, 16, 24), ((2, 0), (1, 3))),   # explicit, uneven pads
    ((2, 9, 12, 20), (3, 3, 20, 17), ((3, 1), (0, 3))),  # a pad past the kernel
    ((1, 30, 37, 16), (3, 3, 16, 16), "same"),           # rows of several vectors
    ((1, 3, 4100, 16), (3, 3, 16, 16), "same"),          # NCHW: a tile row too wide
]


def _as_layout(layout, x, kernel, kw):
    """The NHWC/HWIO case as given, or in NCHW/OIHW with its formats named
    (each layout has its own Winograd transforms)."""
    if layout == "nhwc":
        return x, kernel, kw
    kw = dict(kw, data_format="channels_first", kernel_format="OIHW")
    return (np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), kw)


@pytest.fixture(params=[2, False], ids=["winograd", "direct"])
def winograd(request):
    """2 (WINOGRAD_ALWAYS): the weight gradient of these small layers too, which
    the AVX2 path otherwise runs directly."""
    from fastconv import _kernels
    assert _kernels.WINOGRAD_ALWAYS == 2
    previous = _kernels.get_winograd()
    _kernels.set_winograd(request.param)
    yield request.param
    _kernels.set_winograd(previous)


@pytest.mark.parametrize("x_shape,k_shape,winograd_dk", [
    ((1, 23, 24, 16), (3, 3, 16, 48), False),    # 552 output pixels
    ((1, 28, 28, 16), (3, 3, 16, 32), False),    # 16 + 32 channels
    ((1, 24, 24, 16), (3, 3, 16, 48), True),     # 576 pixels, 64 channels
])
def test_avx2_weight_gradient_by_winograd_only_where_it_pays(rng, x_shape, k_shape, winograd_dk):
    """On the AVX2 path (channels last) the default mode runs a layer's weight
    gradient by Winograd only from 24x24 output pixels and 64 channels (c_in +
    c_out) on; the others, bit for bit, directly (their rounding differs)."""
    from fastconv import _kernels
    if "avx2" not in _kernels.simd_supported():
        pytest.skip("the AVX2 path is not usable on this CPU")
    x, kernel, _, kw = _conv_case(rng, x_shape, k_shape, 1, 1, "same")
    dy = rng.standard_normal(x_shape[:3] + (k_shape[3],)).astype(np.float32)
    previous_simd, previous = _kernels.get_simd(), _kernels.get_winograd()
    dks = {}
    try:
        _kernels.set_simd("avx2")
        for mode in (False, True, _kernels.WINOGRAD_ALWAYS):
            _kernels.set_winograd(mode)
            dks[mode] = fc.conv2d_backward(dy, x, kernel, compute_dx=False, **kw)[1]
    finally:
        _kernels.set_simd(previous_simd)
        _kernels.set_winograd(previous)
    assert not np.array_equal(dks[False], dks[_kernels.WINOGRAD_ALWAYS])
    np.testing.assert_array_equal(dks[True], dks[_kernels.WINOGRAD_ALWAYS if winograd_dk else False])


def test_set_winograd_rejects_other_modes():
    from fastconv import _kernels
    previous = _kernels.get_winograd()
    try:
        for bad in (3, -1, "on", 1.0, None):
            with pytest.raises(ValueError, match="`mode` must be False, True or WINOGRAD_ALWAYS"):
                _kernels.set_winograd(bad)
        assert _kernels.get_winograd() == previous
    finally:
        _kernels.set_winograd(previous)


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("x_shape,k_shape,padding", WINOGRAD_CASES)
def test_3x3_stride1_both_algorithms(simd, winograd, rng, x_shape, k_shape, padding, layout):
    x, kernel, bias, kw = _conv_case(rng, x_shape, k_shape, 1, 1, padding)
    x, kernel, kw = _as_layout(layout, x, kernel, kw)
    linear = numpy_backend(fc.conv2d, x, kernel, bias, **kw)
    scale = float(np.abs(linear).max())
    assert_close(fc.conv2d(x, kernel, bias, **kw), linear, FWD_RTOL, "forward")
    assert_close(fc.conv2d(x, kernel, bias, activation="relu", **kw),
                 numpy_backend(fc.conv2d, x, kernel, bias, activation="relu", **kw), FWD_RTOL,
                 "forward relu", scale=scale)
    dy = rng.standard_normal(linear.shape).astype(np.float32)
    for name, a, e, tol in zip(("dx", "dk", "db"), fc.conv2d_backward(dy, x, kernel, **kw),
                               numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw),
                               (FWD_RTOL, WGRAD_RTOL, WGRAD_RTOL)):
        assert_close(a, e, tol, name)


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_winograd_layers_propagate_nonfinite_x_like_the_reference(simd, winograd, rng, layout):
    """Winograd's transforms mix a tile's 16 cells: a call with a non-finite
    output is recomputed directly, so NaN/Inf land exactly where they do in
    the reference (forward, and backward-input for NaN/Inf in dy)."""
    x = rng.standard_normal((2, 10, 9, 32)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 32, 20)).astype(np.float32)
    x[0, 4, 4, 3], x[1, 2, 7, 0] = np.inf, np.nan
    x, kernel, kw = _as_layout(layout, x, kernel, dict(padding="same"))
    with np.errstate(invalid="ignore", over="ignore"):
        want = numpy_backend(fc.conv2d, x, kernel, **kw)
    got = fc.conv2d(x, kernel, **kw)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert_close(got[finite], want[finite], FWD_RTOL)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    dy[1, 5, 5, 2] = -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        dx_want = numpy_backend(fc.conv2d_backward, dy, x, kernel, **kw)[0]
    dx = fc.conv2d_backward(dy, x, kernel, **kw)[0]
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(dx_want))
    np.testing.assert_array_equal(np.isinf(dx), np.isinf(dx_want))


def test_nchw_winograd_leaves_rows_too_wide_for_its_scratch_to_the_direct_path(rng):
    """A channels-first band is whole tile rows, so its scratch grows with the
    width: a row past the bound runs directly (bitwise the direct result),
    a narrower one by Winograd (a different rounding)."""
    from fastconv import _kernels
    kernel = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    kw = dict(padding="same", data_format="channels_first", kernel_format="OIHW")

    def both(x):
        previous = _kernels.get_winograd()
        try:
            _kernels.set_winograd(True)
            on = fc.conv2d(x, kernel, **kw)
            _kernels.set_winograd(False)
            return on, fc.conv2d(x, kernel, **kw)
        finally:
            _kernels.set_winograd(previous)

    wide = rng.standard_normal((1, 16, 3, 4100)).astype(np.float32)
    on, off = both(wide)
    np.testing.assert_array_equal(on, off)
    on, off = both(np.ascontiguousarray(wide[..., :200]))
    assert not np.array_equal(on, off)
    assert_close(on, off, FWD_RTOL)


# One shape per forward path: the GEMM (3x3 and 1x1, wide and narrow), Winograd
# (3x3 stride 1, 16+ channels), few input channels, the few-row dense path,
# depthwise, and each in NCHW.
_RELU6_CASES = [
    ((2, 9, 8, 24), (3, 3, 24, 40), 1, "same", 1),     # Winograd
    ((2, 9, 8, 24), (3, 3, 24, 40), 2, "same", 1),     # GEMM, strided
    ((2, 7, 6, 40), (1, 1, 40, 70), 1, "valid", 1),    # 1x1 GEMM, K blocks
    ((2, 9, 8, 3), (3, 3, 3, 20), 1, "same", 1),       # few channels
    ((2, 9, 8, 24), (3, 3, 1, 24), 2, "same", 24),     # depthwise
]


@pytest.mark.parametrize("cf", [False, True], ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("case", _RELU6_CASES, ids=lambda c: f"{c[1]}s{c[2]}g{c[4]}")
def test_fused_relu6_is_the_reference_bit_for_bit(rng, simd, case, cf):
    """ReLU6 (Keras' ReLU(max_value=6), MobileNet's) fused into every forward
    path: min(max(y, 0), 6) with NaN kept, equal to the NumPy reference's
    clamp of its own output. Large weights put many outputs above 6, and a
    NaN and an infinity in x must come out as the reference has them."""
    x_shape, k_shape, strides, padding, groups = case
    x = rng.standard_normal(x_shape).astype(np.float32) * 3
    x[0, 1, 2, 0], x[1, 3, 3, -1] = np.nan, np.inf
    k = rng.standard_normal(k_shape).astype(np.float32)
    b = rng.standard_normal(k_shape[-1]).astype(np.float32)
    fmt = dict(data_format="channels_first" if cf else "channels_last")
    xx = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if cf else x
    y = fc.conv2d(xx, k, b, strides, padding, activation="relu6", groups=groups, **fmt)
    with fc.use_backend("numpy"), np.errstate(invalid="ignore"):   # inf * 0 in padding
        z = fc.conv2d(xx, k, b, strides, padding, groups=groups, **fmt)
    expected = np.minimum(np.maximum(z, 0), 6)
    assert (expected == 6).mean() > 0.2 and np.isnan(expected).any()
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-5, atol=2e-4)
    assert np.nanmax(y) <= 6 and np.nanmin(y) >= 0


def test_fused_relu6_dense_on_few_and_many_rows(rng, simd):
    k = rng.standard_normal((300, 70)).astype(np.float32)
    b = rng.standard_normal(70).astype(np.float32)
    for rows in (1, 3, 40):
        x = rng.standard_normal((rows, 300)).astype(np.float32)
        y = fc.dense(x, k, b, "relu6")
        np.testing.assert_allclose(y, np.clip(x.astype(np.float64) @ k + b, 0, 6), rtol=1e-4,
                                   atol=1e-4)
        np.testing.assert_array_equal(y, np.minimum(fc.dense(x, k, b, "relu"), 6))
