"""Inference plans (fastconv.models.inference) and prepared ops (fastconv.prepared):
the same results as the layer-by-layer run (bitwise where nothing is folded,
to rounding where BatchNormalization is folded), remade when weights change,
and never where a call must see more than outputs."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastconv as fc
from fastconv import backend, prepared
from fastconv.layers import (Activation, Add, AveragePooling2D, BatchNormalization, Conv2D,
                             Dense, DepthwiseConv2D, Dropout, Flatten, GlobalAveragePooling2D,
                             Input, MaxPooling2D, ReLU)
from fastconv.models import Model, Sequential

from conftest import randomize_batch_norms


def _bn_model(rng, data_format="channels_last"):
    backend.clear_session()
    shape = (12, 12, 3) if data_format == "channels_last" else (3, 12, 12)
    inp = Input(shape)
    fmt = dict(data_format=data_format)
    x = Conv2D(8, 3, padding="same", use_bias=False, **fmt)(inp)
    x = BatchNormalization(axis=-1 if data_format == "channels_last" else 1)(x)
    x = ReLU(6.0)(x)
    y = DepthwiseConv2D(3, strides=2, padding="same", **fmt)(x)
    y = BatchNormalization(axis=-1 if data_format == "channels_last" else 1)(y)
    y = Activation("relu")(y)
    y = Conv2D(8, 1, **fmt)(y)
    y = BatchNormalization(axis=-1 if data_format == "channels_last" else 1)(y)
    z = AveragePooling2D(2, **fmt)(Conv2D(8, 3, strides=2, padding="same", activation="relu",
                                          **fmt)(x))
    y = Add()([AveragePooling2D(2, **fmt)(y), z])
    y = MaxPooling2D(2, padding="same", **fmt)(ReLU()(y))
    y = Flatten()(y)
    y = Dense(16)(y)
    y = BatchNormalization()(y)
    y = ReLU()(y)
    out = Dense(5, activation="softmax")(y)
    model = Model(inp, out)
    randomize_batch_norms(model, rng)
    return model


def _unplanned(model, x):
    return model.forward(x, training=False)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_folded_plan_matches_the_layer_by_layer_run(rng, data_format):
    model = _bn_model(rng, data_format)
    x = rng.standard_normal((5,) + model.input_shape[1:]).astype(np.float32)
    expected = _unplanned(model, x)
    np.testing.assert_allclose(model.predict(x), expected, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(model(x), expected, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=2e-5, atol=1e-6)
    with fc.use_backend("numpy"):   # the prepared ops hand other backends to the ops
        np.testing.assert_allclose(model.predict(x), expected, rtol=2e-5, atol=1e-6)
    plan = next(iter(model._inference_plans.values()))
    # conv+BN+ReLU6, depthwise+BN+ReLU, 1x1+BN, Dense+BN+ReLU became one step each
    assert len(plan.steps) < len(model._graph.execution) - 6


def test_plan_without_folding_is_bitwise_the_layer_by_layer_run(rng):
    backend.clear_session()
    model = Sequential([Conv2D(32, 3, padding="same", activation="relu",
                               input_shape=(28, 28, 1)),
                        Conv2D(64, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                        Dense(100, activation="relu"), Dense(10, activation="softmax")])
    for n in (1, 3, 64):
        x = rng.random((n, 28, 28, 1), dtype=np.float32)
        for threads in (1, 2):
            fc.set_num_threads(threads)
            np.testing.assert_array_equal(model.predict(x), _unplanned(model, x))
            np.testing.assert_array_equal(model(x), _unplanned(model, x))


def _residual_model(after_add):
    backend.clear_session()
    inp = Input((10, 10, 16))
    a = Conv2D(16, 3, padding="same", activation="relu")(inp)
    b = Conv2D(16, 3, padding="same")(a)
    y = after_add(Add()([inp, b]))
    out = Conv2D(4, 1)(y)
    return Model(inp, out)


# steps: the two convolutions' chain, the Add (with the ReLU where fused),
# what is not fused, the last convolution
@pytest.mark.parametrize("after_add, steps", [
    (lambda t: Activation("relu")(t), 3),
    (lambda t: ReLU()(t), 3),
    (lambda t: ReLU(6.0)(t), 4),                   # not a plain ReLU: a step of its own
    (lambda t: Add()([ReLU()(t), t]), 5),          # the sum has two readers
])
def test_residual_add_and_its_relu_are_one_step_bit_for_bit(rng, after_add, steps):
    model = _residual_model(after_add)
    for n in (1, 3):
        x = rng.standard_normal((n, 10, 10, 16)).astype(np.float32)
        x[0, 0, 0, :2] = [np.nan, -0.0]
        for threads in (1, 2):
            fc.set_num_threads(threads)
            np.testing.assert_array_equal(model.predict(x), _unplanned(model, x))
            np.testing.assert_array_equal(model(x), _unplanned(model, x))
    plan = next(iter(model._inference_plans.values()))
    assert len(plan.steps) == steps


def test_folded_weights_follow_every_way_weights_change(rng):
    model = _bn_model(rng)
    x = rng.standard_normal((4, 12, 12, 3)).astype(np.float32)
    model.predict(x)                                     # the plan and its folded copies
    bn = model.layers[2]
    conv = model.layers[1]

    def check(what):
        np.testing.assert_allclose(model.predict(x), _unplanned(model, x), rtol=2e-5,
                                   atol=1e-6, err_msg=what)

    weights = bn.get_weights()
    weights[2] = weights[2] + 1.0
    bn.set_weights(weights)
    check("set_weights on the BatchNormalization")
    conv.kernel.assign(conv.kernel.numpy() * 0.5)
    check("Variable.assign on the convolution's kernel")
    conv.kernel.numpy()[0, 0, 0, :] += 3.0               # in place through numpy()
    check("a write through numpy()")
    bn.moving_variance.value[:] = 2.0                    # in place through .value
    check("a write through .value")
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, np.arange(4) % 5, epochs=1, verbose=0)  # BN statistics and kernels move
    check("fit")
    saved = model.get_weights()
    model.set_weights([w * 0.9 for w in saved])
    check("Model.set_weights")


def test_plans_are_reused_bounded_and_not_pickled(rng):
    model = _bn_model(rng)
    x = rng.standard_normal((70, 12, 12, 3)).astype(np.float32)
    model.predict(x, batch_size=32)                      # batches of 32 and of 6
    plans = dict(model._inference_plans)
    assert len(plans) == 2
    model.predict(x, batch_size=32)
    assert all(model._inference_plans[k] is plans[k] for k in plans)
    for n in range(1, 8):
        model(x[:n])
    assert len(model._inference_plans) <= 4
    clone = pickle.loads(pickle.dumps(model))
    assert "_inference_plans" not in clone.__dict__
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))


def test_training_calls_and_forced_dropout_are_not_folded_away(rng):
    backend.clear_session()
    inp = Input((10,))
    h = Dense(64)(inp)
    h = BatchNormalization()(h)
    out = Dropout(0.5)(h, training=True)                 # Keras: drops even in predict
    model = Model(inp, out)
    x = rng.standard_normal((256, 10)).astype(np.float32)
    y = model.predict(x)
    assert 0.3 < np.mean(y == 0) < 0.7
    # training=True: batch statistics, not the moving ones
    bn_only = Model(inp, h)
    train = bn_only(x, training=True)
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-4)
    assert not np.allclose(bn_only(x), train)


def test_activity_regularizer_graphs_keep_their_penalties(rng):
    backend.clear_session()
    model = Sequential([Dense(4, activity_regularizer="l2", input_shape=(3,))])
    x = rng.standard_normal((2, 3)).astype(np.float32)
    model(x)
    assert model.losses and model.losses[0] > 0
    assert not model.__dict__.get("_inference_plans")


def test_bad_input_still_raises_the_layers_error(rng):
    backend.clear_session()
    inputs = Input((None, None, 2))
    model = Model(inputs, MaxPooling2D()(Conv2D(3, 3, padding="same")(inputs)))
    model(np.zeros((1, 8, 6, 2), np.float32))
    with pytest.raises(ValueError, match=r"Layer max_pooling2d \(MaxPooling2D\) of model"):
        model(np.zeros((1, 1, 6, 2), np.float32))
    with pytest.raises(ValueError):
        model.predict(np.zeros((1, 8, 6, 3), np.float32))


def test_global_pooling_and_other_layers_run_through_the_fallback(rng):
    backend.clear_session()
    inp = Input((9, 9, 4))
    out = Dense(3)(GlobalAveragePooling2D()(Conv2D(6, 3, activation="tanh")(inp)))
    model = Model(inp, out)
    x = rng.standard_normal((3, 9, 9, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), _unplanned(model, x))


# ---------------------------------------------------------------------------
# prepared ops

def test_prepared_ops_are_the_public_ops_bit_for_bit(rng):
    x = rng.standard_normal((2, 9, 11, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3, 8, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    conv = prepared.prepare_conv2d(x.shape, x.dtype, k.shape, True, 2, "same", 1, "relu")
    np.testing.assert_array_equal(conv(x, k, b), fc.conv2d(x, k, b, 2, "same",
                                                           activation="relu"))
    relu6 = prepared.prepare_conv2d(x.shape, x.dtype, k.shape, True, 1, "valid", 1, "relu6")
    np.testing.assert_array_equal(relu6(x, k * 10, b),
                                  np.clip(fc.conv2d(x, k * 10, b), 0, 6))
    kd = rng.standard_normal((3, 3, 1, 8)).astype(np.float32)
    dw = prepared.prepare_conv2d(x.shape, x.dtype, kd.shape, False, 1, "same", groups=8)
    np.testing.assert_array_equal(dw(x, kd, None), fc.conv2d(x, kd, None, 1, "same",
                                                             groups=8))
    xd = rng.standard_normal((3, 40)).astype(np.float64)
    kk = rng.standard_normal((40, 7))
    dense = prepared.prepare_dense(xd.shape, xd.dtype, kk.shape, False, "relu")
    np.testing.assert_array_equal(dense(xd, kk, None), fc.dense(xd, kk, None, "relu"))
    for kind, public in (("max", fc.max_pool2d), ("avg", fc.avg_pool2d)):
        pool = prepared.prepare_pool2d(kind, x.shape, x.dtype, 3, 2, "same")
        np.testing.assert_array_equal(pool(x), public(x, 3, 2, "same"))


def test_prepared_ops_hand_anything_else_to_the_public_op(rng):
    x = rng.standard_normal((2, 9, 11, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3, 8, 5)).astype(np.float32)
    conv = prepared.prepare_conv2d(x.shape, x.dtype, k.shape, False)
    other = rng.standard_normal((1, 7, 7, 8)).astype(np.float32)
    np.testing.assert_array_equal(conv(other, k, None), fc.conv2d(other, k))   # other shape
    view = np.asfortranarray(x)
    np.testing.assert_array_equal(conv(view, k, None), fc.conv2d(x, k))        # layout
    with pytest.raises(TypeError, match="dtype"):
        conv(x, k.astype(np.float64), None)                                    # the op's error
    with pytest.raises(ValueError, match="activation"):
        prepared.prepare_conv2d(x.shape, x.dtype, k.shape, False, activation="tanh")
    with pytest.raises(ValueError, match="kernel"):
        prepared.prepare_conv2d(x.shape, x.dtype, (3, 3, 4, 5), False)
    before = x.copy()
    conv(x, k, None)
    np.testing.assert_array_equal(x, before)


def test_a_chain_the_prepared_ops_cannot_take_runs_every_call_of_it(rng):
    """A float64 convolution on the float32 input: the chain (conv, BN, ReLU)
    runs layer by layer, all three of them."""
    backend.clear_session()
    inp = Input((8, 8, 2))
    x = Conv2D(4, 3, dtype="float64")(inp)
    x = BatchNormalization(dtype="float64")(x)
    out = ReLU(dtype="float64")(x)
    model = Model(inp, out)
    randomize_batch_norms(model, rng)
    x = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    y = model.predict(x)
    np.testing.assert_array_equal(y, _unplanned(model, x))
    assert (y == 0).any() and (y > 0).any()
