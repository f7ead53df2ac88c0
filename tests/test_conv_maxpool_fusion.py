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
    """The plan's steps, those run as one chain counted one by one."""
    plans = model.__dict__["_inference_plans"]
    return sum(len(getattr(fn, "chained", [fn])) for fn, *_ in next(iter(plans.values())).steps)


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


# ---------------------------------------------------------------------------
# prepared kernels (the Winograd transform made once)

@pytest.mark.parametrize("pooled", [False, True], ids=["conv", "conv+pool"])
def test_a_prepared_kernel_gives_the_ops_results_bit_for_bit(simd, rng, pooled):
    x, k, b = _case(rng, (2, 11, 12, 32), 40)
    make = prepared.prepare_conv2d_maxpool if pooled else prepared.prepare_conv2d
    op = make(x.shape, x.dtype, k.shape, True, 1, "same", 1, "relu")
    assert op.prepares
    kernel_prepared = op.prepare_kernel(k)
    for threads in (1, 2):
        fc.set_num_threads(threads)
        np.testing.assert_array_equal(op.call_prepared(x, kernel_prepared, k, b), op(x, k, b))
    x[1, 4, 4, 0] = np.nan   # declined: computed from the kernel, NaN where the op puts it
    np.testing.assert_array_equal(op.call_prepared(x, kernel_prepared, k, b), op(x, k, b))


def test_ops_without_a_prepared_kernel_say_so(rng):
    x = np.zeros((1, 8, 8, 16), np.float32)
    assert not prepared.prepare_conv2d(x.shape, np.float64, (3, 3, 16, 16), True).prepares
    assert not prepared.prepare_conv2d(x.shape, x.dtype, (3, 3, 1, 16), True,
                                       groups=16).prepares   # depthwise
    assert not prepared.prepare_conv2d((1, 8, 8, 3), x.dtype, (3, 3, 3, 16),
                                       True).prepares   # the first-layer path
    assert not prepared.prepare_conv2d((2, 1, 1, 16), x.dtype, (1, 1, 16, 16),
                                       True).prepares   # the few-sample path
    dense = prepared.prepare_dense((2, 16), np.float32, (16, 4), True)   # few samples
    assert dense.prepare_kernel(np.zeros((16, 4), np.float32)) is None
    op = prepared.prepare_conv2d(x.shape, x.dtype, (3, 3, 16, 16), True)
    assert op.prepare_kernel(np.zeros((3, 3, 16, 8), np.float32)) is None   # not its shape


@pytest.mark.parametrize("k_shape,strides,padding,x_shape", [
    ((1, 1, 32, 48), 1, "valid", (2, 7, 9, 32)),     # a 1x1 GEMM: B packed in panels
    ((1, 1, 64, 130), 1, "valid", (2, 5, 5, 64)),    # three panels, a channel tail
    ((3, 3, 16, 40), 2, "same", (2, 11, 12, 16)),    # strided: the indirect GEMM
    ((5, 5, 8, 20), 1, "same", (1, 9, 9, 8)),
])
def test_a_packed_kernel_gives_the_ops_results_bit_for_bit(simd, rng, k_shape, strides,
                                                           padding, x_shape):
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = rng.standard_normal(k_shape).astype(np.float32)
    b = rng.standard_normal(k_shape[3]).astype(np.float32)
    op = prepared.prepare_conv2d(x.shape, x.dtype, k.shape, True, strides, padding, 1, "relu")
    assert op.prepares
    packed = op.prepare_kernel(k)
    for threads in (1, 2):
        fc.set_num_threads(threads)
        np.testing.assert_array_equal(op.call_prepared(x, packed, k, b), op(x, k, b))


@pytest.mark.parametrize("units", [3, 100])
def test_a_dense_layers_packed_kernel_gives_its_results_bit_for_bit(simd, rng, units):
    x = rng.standard_normal((37, 300)).astype(np.float32)
    k = rng.standard_normal((300, units)).astype(np.float32)
    b = rng.standard_normal(units).astype(np.float32)
    op = prepared.prepare_dense(x.shape, x.dtype, k.shape, True, "relu")
    assert op.prepares
    packed = op.prepare_kernel(k)
    for threads in (1, 2):
        fc.set_num_threads(threads)
        got = op.call_prepared(x, packed, k, b)
        assert got.shape == (37, units)
        np.testing.assert_array_equal(got, fc.dense(x, k, b, "relu"))


def test_a_prepared_kernel_of_another_dispatch_is_declined(rng):
    x, k, b = _case(rng, (2, 9, 9, 16), 16)
    op = prepared.prepare_conv2d(x.shape, x.dtype, k.shape, True, 1, "same")
    winograd_form = op.prepare_kernel(k)
    _kernels.set_winograd(False)
    try:
        # now the GEMM runs this layer: the Winograd transform is not its B
        np.testing.assert_array_equal(op.call_prepared(x, winograd_form, k, b), op(x, k, b))
        packed = op.prepare_kernel(k)
    finally:
        _kernels.set_winograd(True)
    np.testing.assert_array_equal(op.call_prepared(x, packed, k, b), op(x, k, b))


def test_the_prepared_kernel_bindings_check_their_arrays(rng):
    x, k, b = _case(rng, (2, 8, 8, 16), 16)
    g = fc.ops._conv_geometry(x, k, 1, "same", 1, 1, False, False)
    geometry = tuple(fc.ops._c_geometry(g)[0])[:17]
    floats = _kernels.conv2d_prepared_kernel_floats(geometry)
    assert floats > k.size
    with pytest.raises(ValueError, match="prepared"):
        _kernels.conv2d_prepare_kernel(k, np.empty(floats - 1, np.float32), geometry, 1)
    assert not _kernels.conv2d_forward_prepared(x, np.zeros(floats + 1, np.float32), b,
                                                np.empty((2, 8, 8, 16), np.float32), geometry,
                                                0, 1, False)   # another layer's size: declined
    assert not _kernels.conv2d_forward_prepared(x, np.zeros(floats, np.float32), b,
                                                np.empty((2, 8, 8, 16), np.float32), geometry,
                                                0, 1, False)   # no header: declined
    with pytest.raises(ValueError, match="y"):
        _kernels.conv2d_forward_prepared(x, np.empty(floats, np.float32), b,
                                         np.empty((2, 8, 7, 16), np.float32), geometry, 0, 1,
                                         False)
    g2 = fc.ops._conv_geometry(np.zeros((2, 8, 8, 3), np.float32), k[:, :, :3], 1, "same", 1, 1,
                               False, False)
    geometry2 = tuple(fc.ops._c_geometry(g2)[0])[:17]
    assert _kernels.conv2d_prepared_kernel_floats(geometry2) == 0   # the first-layer path
    with pytest.raises(ValueError, match="no prepared kernel"):
        _kernels.conv2d_prepare_kernel(k[:, :, :3].copy(), np.empty(floats, np.float32),
                                       geometry2, 1)


def _winograd_model(rng):
    backend.clear_session()
    model = Sequential([Conv2D(16, 3, padding="same", activation="relu",
                               input_shape=(9, 9, 16)),
                        Conv2D(16, 3, padding="same"), BatchNormalization(), Activation("relu")])
    data = rng.standard_normal((2, 9, 9, 16)).astype(np.float32)
    return model, data


def test_plans_remake_prepared_kernels_when_the_weights_change(rng):
    model, data = _winograd_model(rng)
    conv, conv_bn = model.layers[0], model.layers[1]
    model.predict(data)   # the plan and its prepared kernels
    changes = [
        lambda: conv.kernel.assign(rng.standard_normal(conv.kernel.shape).astype(np.float32)),
        lambda: conv.set_weights([w * 0.5 for w in conv.get_weights()]),
        lambda: conv_bn.kernel.assign(2 * conv_bn.kernel.numpy()),
        lambda: np.multiply(conv.kernel.numpy(), -1, out=conv.kernel.numpy()),   # in place
    ]
    for change in changes:
        before = model.predict(data)
        change()
        after = model.predict(data)
        # (BatchNormalization's fold rounds: a tolerance; a stale kernel is off by O(1))
        np.testing.assert_allclose(after, _unplanned(model, data), rtol=1e-4, atol=1e-5)
        assert not np.allclose(after, before)


def test_plans_remake_prepared_kernels_for_another_simd_path(rng):
    from conftest import simd_paths
    paths = [p for p in simd_paths() if p != _kernels.get_simd()]
    if not paths:
        pytest.skip("one SIMD path on this machine")
    model, data = _winograd_model(rng)
    first = model.predict(data)
    previous = _kernels.get_simd()
    try:
        _kernels.set_simd(paths[0])
        np.testing.assert_allclose(model.predict(data), _unplanned(model, data), rtol=1e-4,
                                   atol=1e-5)
    finally:
        _kernels.set_simd(previous)
    np.testing.assert_array_equal(model.predict(data), first)


def test_the_c_entry_points_refuse_bad_arguments_instead_of_crashing():
    import fc_capi
    lib = fc_capi.load()
    if lib is None:
        pytest.skip("the extension hides its fc_* symbols")
    fc_capi.declare_fused_conv(lib)
    good = dict(n=1, h=8, w=8, c_in=16, kh=3, kw=3, c_out=16, out_h=6, out_w=6, stride_h=1,
                stride_w=1, dilation_h=1, dilation_w=1, pad_top=0, pad_left=0, relu=0,
                n_threads=1, groups=1, channels_first=0)
    p = fc_capi.ConvParams(**good)
    x, k, b = fc_capi.floats(8 * 8 * 16, 1.0), fc_capi.floats(9 * 16 * 16, 0.5), None
    y = fc_capi.floats(3 * 3 * 16)
    P = fc_capi.ptr
    assert lib.fc_conv2d_maxpool2x2_fuses(p) == 1
    assert lib.fc_conv2d_forward_maxpool2x2(p, P(x), P(k), P(b), P(y), 3, 3) == fc_capi.FC_OK
    assert np.all(y == 72.0)   # 9 taps x 16 channels x 0.5 in every window
    for pool in ((4, 3), (3, 2), (0, 3), (-1, 3)):
        assert lib.fc_conv2d_forward_maxpool2x2(p, P(x), P(k), P(b), P(y), *pool) == \
            fc_capi.FC_ERR_ARG
    assert lib.fc_conv2d_forward_maxpool2x2(p, None, P(k), P(b), P(y), 3, 3) == \
        fc_capi.FC_ERR_ARG
    assert lib.fc_conv2d_forward_maxpool2x2(p, P(x), None, P(b), P(y), 3, 3) == \
        fc_capi.FC_ERR_ARG
    assert lib.fc_conv2d_forward_maxpool2x2(None, P(x), P(k), P(b), P(y), 3, 3) == \
        fc_capi.FC_ERR_ARG
    floats = lib.fc_conv2d_prepared_kernel_floats(p)
    u = fc_capi.floats(floats)
    assert lib.fc_conv2d_prepare_kernel(p, P(k), P(u)) == fc_capi.FC_OK
    y_full = fc_capi.floats(6 * 6 * 16)
    assert lib.fc_conv2d_forward_prepared(p, P(x), P(u), P(b), P(y_full), 0, 0) == fc_capi.FC_OK
    assert np.all(y_full == 72.0)
    assert lib.fc_conv2d_forward_prepared(p, P(x), None, P(b), P(y_full), 0, 0) == \
        fc_capi.FC_ERR_ARG
    assert lib.fc_conv2d_prepare_kernel(p, None, P(u)) == fc_capi.FC_ERR_ARG
    # layers Winograd does not run: the fused pooling declined; a packed B for
    # the GEMM's layers, nothing for channels first
    for change, packs in ((dict(stride_h=2, out_h=3), True), (dict(c_in=8), True),
                          (dict(channels_first=1), False)):
        q = fc_capi.ConvParams(**{**good, **change})
        assert lib.fc_conv2d_maxpool2x2_fuses(q) == 0
        assert lib.fc_conv2d_forward_maxpool2x2(q, P(x), P(k), P(b), P(y), q.out_h // 2,
                                                3) == fc_capi.FC_DECLINED
        assert (lib.fc_conv2d_prepared_kernel_floats(q) > 0) == packs
        if not packs:
            assert lib.fc_conv2d_prepare_kernel(q, P(k), P(u)) == fc_capi.FC_DECLINED
    # a prepared kernel of another layer's kind or size is declined, not misread
    q = fc_capi.ConvParams(**{**good, "stride_h": 2, "out_h": 3})
    assert lib.fc_conv2d_forward_prepared(q, P(x), P(u), P(b), P(y_full), 0, 0) == \
        fc_capi.FC_DECLINED
    strided = fc_capi.ConvParams(**{**good, "stride_h": 2, "stride_w": 2, "out_h": 3,
                                    "out_w": 3})
    one_by_one = fc_capi.ConvParams(**{**good, "kh": 1, "kw": 1, "stride_h": 2, "stride_w": 2,
                                       "out_h": 4, "out_w": 4})
    small = fc_capi.floats(lib.fc_conv2d_prepared_kernel_floats(one_by_one))
    assert lib.fc_conv2d_prepare_kernel(one_by_one, P(k[:256].copy()), P(small)) == fc_capi.FC_OK
    # a 1x1 layer's packed B (a ninth of the 3x3 one's) given to the 3x3 layer: declined
    assert lib.fc_conv2d_forward_prepared(strided, P(x), P(small), P(b), P(y), 0, 0) == \
        fc_capi.FC_DECLINED
    bad = fc_capi.ConvParams(**{**good, "pad_top": 5})   # past the kernel's reach
    assert lib.fc_conv2d_prepared_kernel_floats(bad) == 0
    assert lib.fc_conv2d_forward_maxpool2x2(bad, P(x), P(k), P(b), P(y), 3, 3) == \
        fc_capi.FC_ERR_ARG


def test_plans_follow_fit_through_packed_kernels(rng):
    backend.clear_session()
    model = Sequential([Conv2D(24, 1, activation="relu", input_shape=(6, 6, 8)),
                        Conv2D(16, 3, strides=2), Flatten(), Dense(5)])
    model.compile(optimizer="sgd", loss="mse")
    data = rng.standard_normal((16, 6, 6, 8)).astype(np.float32)
    target = rng.standard_normal((16, 5)).astype(np.float32)
    before = model.predict(data)   # plans, packed kernels
    model.fit(data, target, epochs=1, batch_size=16, verbose=0)
    after = model.predict(data)
    np.testing.assert_array_equal(after, _unplanned(model, data))
    assert not np.array_equal(after, before)


def test_a_models_plans_share_one_prepared_kernel_and_fold_per_layer(rng):
    backend.clear_session()
    inp = Input((None, None, 16))
    x = Conv2D(16, 3, padding="same", activation="relu")(inp)          # Winograd
    x = BatchNormalization()(Conv2D(24, 1)(x))                         # folded, packed
    model = Model(inp, x)
    outputs = []
    for size in (6, 7, 9):   # plans for three input sizes, each batch also with a remainder
        data = rng.standard_normal((11, size, size, 16)).astype(np.float32)
        outputs.append(model.predict(data, batch_size=8))
        np.testing.assert_allclose(outputs[-1], _unplanned(model, data), rtol=1e-4, atol=1e-5)
    shared = model.__dict__["_inference_shared"]
    assert sorted(key[0] for key in shared) == ["folded", "prepared", "prepared"]
    assert len(model.__dict__["_inference_plans"]) == 4   # the most kept
