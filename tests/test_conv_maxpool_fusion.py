"""The fused convolution + 2x2 max pooling of inference plans
(prepared.prepare_conv2d_maxpool, the C kernel fc_conv2d_forward_maxpool2x2):
the two ops' result bit for bit on every SIMD path, whether the kernel fuses,
declines (NaN, infinity) or does not apply."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from fastconv import _kernels, backend, prepared
from fastconv.layers import Activation, BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D
from fastconv.models import Model, Sequential
from fastconv.layers import Input

pytestmark = pytest.mark.skipif(_kernels is None, reason="C extension not built")

# (x shape, c_out, conv padding, pool padding): even and odd conv outputs,
# channel tails, 'same' pooling's clipped last windows
CASES = [
    ((3, 28, 28, 32), 64, "valid", "valid"),   # the seed's conv2d_1 -> max_pooling2d
    ((2, 13, 13, 32), 64, "valid", "valid"),   # 11x11: an odd row and column dropped
    ((2, 15, 17, 16), 20, "same", "same"),     # 15x17: clipped windows kept
    ((2, 15, 17, 16), 33, "valid", "same"),
    ((1, 5, 6, 17), 16, "same", "valid"),
    ((1, 4, 4, 16), 16, "valid", "valid"),     # one window
]


def _unfused(x, k, b, padding, activation, pool_padding):
    return fc.max_pool2d(fc.conv2d(x, k, b, 1, padding, 1, activation), 2, 2, pool_padding)


def _case(rng, x_shape, c_out, scale=1.0):
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = (scale * rng.standard_normal((3, 3, x_shape[3], c_out))).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    return x, k, b


@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
@pytest.mark.parametrize("x_shape,c_out,padding,pool_padding", CASES)
def test_fused_is_the_two_ops_bit_for_bit(simd, rng, x_shape, c_out, padding, pool_padding,
                                          activation):
    x, k, b = _case(rng, x_shape, c_out, scale=0.5)
    op = prepared.prepare_conv2d_maxpool(x.shape, x.dtype, k.shape, True, 1, padding, 1,
                                         activation, pool_padding)
    assert op.fast, "a float32 channels-last 3x3 layer with 16+ channels fuses"
    x_before = x.copy()
    for threads in (1, 2):
        fc.set_num_threads(threads)
        got = op(x, k, b)
        want = _unfused(x, k, b, padding, activation, pool_padding)
        assert got.shape == want.shape == op.out_shape
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_inputs_come_out_as_the_two_ops_give_them(simd, rng, bad):
    x, k, b = _case(rng, (2, 12, 12, 16), 24)
    x[1, 5, 7, 3] = bad
    x[0, 0, 0, 0] = bad
    op = prepared.prepare_conv2d_maxpool(x.shape, x.dtype, k.shape, True, 1, "valid", 1,
                                         "relu")
    got, want = op(x, k, b), _unfused(x, k, b, "valid", "relu", "valid")
    np.testing.assert_array_equal(got, want)   # NaN where NaN (assert_array_equal's rule)
    assert not np.isfinite(want).all()


@pytest.mark.parametrize("what", ["few channels", "float64", "stride 2", "5x5", "channels_first",
                                  "winograd off"])
def test_layers_the_kernel_does_not_fuse_run_the_two_ops(rng, what):
    x_shape, k_shape, strides, dtype, data_format = ((2, 12, 12, 16), (3, 3, 16, 16), 1,
                                                     np.float32, "channels_last")
    if what == "few channels":
        x_shape, k_shape = (2, 12, 12, 3), (3, 3, 3, 16)
    elif what == "float64":
        dtype = np.float64
    elif what == "stride 2":
        strides = 2
    elif what == "5x5":
        k_shape = (5, 5, 16, 16)
    elif what == "channels_first":
        x_shape, data_format = (2, 16, 12, 12), "channels_first"
    x = rng.standard_normal(x_shape).astype(dtype)
    k = rng.standard_normal(k_shape).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    _kernels.set_winograd(what != "winograd off")
    try:
        op = prepared.prepare_conv2d_maxpool(x.shape, x.dtype, k.shape, True, strides, "same",
                                             1, "relu", data_format=data_format)
        assert not op.fast
        want = fc.max_pool2d(fc.conv2d(x, k, b, strides, "same", 1, "relu",
                                       data_format=data_format), 2, 2, data_format=data_format)
        np.testing.assert_array_equal(op(x, k, b), want)
    finally:
        _kernels.set_winograd(True)


def test_the_kernel_checks_its_arrays(rng):
    x, k, b = _case(rng, (2, 8, 8, 16), 16)
    g = fc.ops._conv_geometry(x, k, 1, "valid", 1, 1, False, False)
    geometry = tuple(fc.ops._c_geometry(g)[0])[:17]
    good = np.empty((2, 3, 3, 16), np.float32)
    assert _kernels.conv2d_forward_maxpool2x2(x, k, b, good, geometry, 0, 1)
    with pytest.raises(ValueError, match="y's batch and channels"):
        _kernels.conv2d_forward_maxpool2x2(x, k, b, np.empty((2, 3, 3, 8), np.float32),
                                           geometry, 0, 1)
    with pytest.raises(ValueError):   # a pooled size that is not out / 2
        _kernels.conv2d_forward_maxpool2x2(x, k, b, np.empty((2, 4, 3, 16), np.float32),
                                           geometry, 0, 1)
    with pytest.raises(ValueError, match="bias"):
        _kernels.conv2d_forward_maxpool2x2(x, k, b[:8], good, geometry, 0, 1)


# ---------------------------------------------------------------------------
# in inference plans

def _unplanned(model, x):
    return model.forward(x, training=False)


def _plan_steps(model):
    plans = model.__dict__["_inference_plans"]
    return len(next(iter(plans.values())).steps)


def test_plans_fuse_the_seed_block_and_keep_its_results(rng):
    backend.clear_session()
    inp = Input((28, 28, 1))
    x = Conv2D(32, 3, padding="same", activation="relu")(inp)
    x = Conv2D(64, 3, activation="relu")(x)
    x = MaxPooling2D(2)(x)
    out = Dense(10, activation="softmax")(Flatten()(x))
    model = Model(inp, out)
    data = rng.random((5, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(data), _unplanned(model, data))
    assert _plan_steps(model) == 4   # conv2d, conv2d_1 + max_pooling2d, flatten, dense


def test_plans_fuse_conv_bn_relu_pool_and_fold(rng):
    backend.clear_session()
    model = Sequential([Conv2D(16, 3, padding="same", input_shape=(10, 10, 16)),
                        BatchNormalization(), Activation("relu"), MaxPooling2D(2),
                        Conv2D(16, 3, padding="same", activation="relu"),
                        MaxPooling2D(2, padding="same")])
    bn = model.layers[1]
    bn.moving_mean.assign(rng.standard_normal(16).astype(np.float32))
    bn.moving_variance.assign(rng.random(16).astype(np.float32) + 0.5)
    data = rng.standard_normal((3, 10, 10, 16)).astype(np.float32)
    got = model.predict(data)
    np.testing.assert_allclose(got, _unplanned(model, data), rtol=2e-5, atol=2e-6)
    assert _plan_steps(model) == 2
    assert got.shape == (3, 3, 3, 16)


def test_a_pool_whose_input_is_read_elsewhere_is_not_fused(rng):
    backend.clear_session()
    inp = Input((8, 8, 16))
    conv = Conv2D(16, 3, padding="same", activation="relu")(inp)
    model = Model(inp, [MaxPooling2D(2)(conv), conv])
    data = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)
    pooled, full = model.predict(data)
    want = _unplanned(model, data)
    np.testing.assert_array_equal(pooled, want[0])
    np.testing.assert_array_equal(full, want[1])
