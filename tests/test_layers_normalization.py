"""BatchNormalization (``layers/normalization.py``).

Outputs, input and weight gradients and moving statistics are compared
with Keras 3 (torch backend, torch autograd) for the same weights, in
training and in inference, for every layout the layer maps onto the ops
(axis last, axis 1, another axis moved last, 2-D and 3-D inputs).

Where Keras 3 differs from tf.keras 2.4 (fastconv follows 2.4):

* the moving variance: on 2.4's fused path (4-D input, axis 1 or 3,
  float32) it is fed the Bessel-corrected batch variance ``var * n / (n -
  1)``, ``n = N*H*W``; Keras 3 always feeds the biased one. The tests
  recover Keras 3's batch variance from its update and apply the
  correction.
* the fused path raises epsilon to at least 1.001e-5 (``nn.fused_batch_norm``).
* ``get_config()['axis']`` becomes the resolved list (``[3]``) at build;
  Keras 3 keeps ``-1``.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from conftest import assert_close
from keras_compare import import_keras as keras3, numpy_of, run
from fastconv import backend
from fastconv.layers import Add, BatchNormalization, Conv2D, Dense, Flatten, Input, ReLU
from fastconv.models import Model, Sequential


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def random_weights(rng, shape, dtype=np.float32):
    """gamma, beta, moving_mean, moving_variance of ``shape``."""
    return [rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype),
            rng.standard_normal(shape).astype(dtype), (rng.random(shape) + 0.5).astype(dtype)]


def models_pair(keras, shape, weights, **kwargs):
    """Our and Keras 3's single-layer models, with the same weights."""
    inputs = Input(shape[1:])
    layer = BatchNormalization(**kwargs)
    model = Model(inputs, layer(inputs))
    k_inputs = keras.Input(shape[1:])
    k_layer = keras.layers.BatchNormalization(**kwargs)
    k_model = keras.Model(k_inputs, k_layer(k_inputs))
    if weights is None:
        weights = layer.get_weights()
    layer.set_weights(weights)
    k_layer.set_weights(weights)
    return layer, model, k_layer, k_model


LAYOUTS = [  # (input shape, axis, tf.keras 2.4's fused path)
    ((4, 5, 6, 3), -1, True),
    ((4, 3, 5, 6), 1, True),
    ((4, 5, 6, 3), -3, True),
    ((4, 5, 6, 3), 2, False),   # moved last with one copy
    ((3, 4, 5, 2, 3), 2, False),  # moved last, a permutation that is not its own inverse
    ((6, 7), -1, False),
    ((4, 5, 3), -1, False),
    ((4, 5, 3), 1, False),      # channels_first on the ops, not fused in Keras (3-D)
]


@pytest.mark.parametrize("shape, axis, fused", LAYOUTS)
def test_training_step_matches_keras3(rng, shape, axis, fused):
    keras = keras3()
    momentum = 0.5  # recovering Keras 3's batch variance from its update stays exact enough
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    features = shape[axis]
    weights = random_weights(rng, (features,))
    layer, model, k_layer, k_model = models_pair(keras, shape, weights, axis=axis,
                                                 momentum=momentum)
    assert layer.fused is fused
    dy = rng.standard_normal(shape).astype(np.float32)
    y = model.forward(x, training=True)
    (dgamma, dbeta), (dx,) = model.backward(dy, input_gradients=True)
    ky, kdx, (kdgamma, kdbeta) = run(k_model, x, dy, training=True)
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")
    assert_close(dgamma, kdgamma, 1e-5, "gamma gradient")
    assert_close(dbeta, kdbeta, 1e-5, "beta gradient")
    assert_close(layer.moving_mean.numpy(), numpy_of(k_layer.moving_mean), 1e-5, "moving mean")
    moving_var0 = weights[3]
    keras_var = numpy_of(k_layer.moving_variance)
    if fused:
        n = x.size // features
        batch_var = (keras_var - momentum * moving_var0) / (1 - momentum)  # biased
        expected = momentum * moving_var0 + (1 - momentum) * batch_var * n / (n - 1)
    else:
        expected = keras_var
    assert_close(layer.moving_variance.numpy(), expected, 1e-5, "moving variance")
    if fused:  # the difference is real, not within rounding
        assert np.abs(layer.moving_variance.numpy() - keras_var).max() > 1e-3


@pytest.mark.parametrize("shape, axis, fused", LAYOUTS)
def test_inference_matches_keras3_with_the_same_weights(rng, shape, axis, fused):
    keras = keras3()
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    layer, model, k_layer, k_model = models_pair(keras, shape, random_weights(
        rng, (shape[axis],)), axis=axis)
    dy = rng.standard_normal(shape).astype(np.float32)
    before = layer.get_weights()
    y = model.forward(x, training=False)
    (dgamma, dbeta), (dx,) = model.backward(dy, input_gradients=True)
    ky, kdx, (kdgamma, kdbeta) = run(k_model, x, dy, training=False)
    assert_close(y, ky, 1e-5, "output")
    assert_close(model(x), ky, 1e-5, "output of model(x)")
    assert_close(dx, kdx, 1e-5, "input gradient")
    assert_close(dgamma, kdgamma, 1e-5, "gamma gradient")
    assert_close(dbeta, kdbeta, 1e-5, "beta gradient")
    for a, b in zip(layer.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)  # inference updates nothing


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_without_center_or_scale_matches_keras3(rng, center, scale):
    keras = keras3()
    shape = (3, 4, 4, 2)
    x = rng.standard_normal(shape).astype(np.float32)
    layer, model, _, k_model = models_pair(keras, shape, None, center=center, scale=scale)
    assert [w.name for w in layer.weights] == (
        ["batch_normalization/gamma:0"] * scale + ["batch_normalization/beta:0"] * center +
        ["batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0"])
    dy = rng.standard_normal(shape).astype(np.float32)
    y = model.forward(x, training=True)
    grads, (dx,) = model.backward(dy, input_gradients=True)
    ky, kdx, kgrads = run(k_model, x, dy, training=True)
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")
    assert len(grads) == len(kgrads) == center + scale
    for g, kg in zip(grads, kgrads):
        assert_close(g, kg, 1e-5, "weight gradient")


def test_conv_bn_relu_model_gradients_match_keras3(rng):
    """One training step of Conv2D -> BatchNormalization -> ReLU -> Dense."""
    keras = keras3()
    x = rng.standard_normal((6, 7, 7, 3)).astype(np.float32)
    inputs = Input((7, 7, 3))
    h = ReLU()(BatchNormalization()(Conv2D(4, 3)(inputs)))
    model = Model(inputs, Dense(2)(Flatten()(h)))
    k_inputs = keras.Input((7, 7, 3))
    k_h = keras.layers.ReLU()(keras.layers.BatchNormalization()(
        keras.layers.Conv2D(4, 3)(k_inputs)))
    k_model = keras.Model(k_inputs, keras.layers.Dense(2)(keras.layers.Flatten()(k_h)))
    weights = model.get_weights()
    weights[2:6] = random_weights(rng, (4,))
    model.set_weights(weights)
    k_model.set_weights(weights)
    assert [w.shape for w in model.weights] == [tuple(w.shape) for w in k_model.weights]
    dy = rng.standard_normal((6, 2)).astype(np.float32)
    y = model.forward(x, training=True)
    grads, (dx,) = model.backward(dy, input_gradients=True)
    ky, kdx, kgrads = run(k_model, x, dy, training=True)
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")
    names = [w.name for w in model.trainable_weights]
    assert len(grads) == len(kgrads) == 6
    for name, g, kg in zip(names, grads, kgrads):
        # The conv bias gradient is 0 (the batch mean cancels it): compare its
        # rounding errors with the kernel gradient they come from.
        scale = np.abs(kgrads[0]).max() if name == "conv2d/bias:0" else None
        assert_close(g, kg, 1e-5, name, scale=scale)


def test_frozen_layer_runs_in_inference_even_in_training(rng):
    """tf.keras 2.x: ``trainable=False`` means the moving statistics, also in fit."""
    keras = keras3()
    shape = (5, 4, 4, 3)
    x = rng.standard_normal(shape).astype(np.float32)
    layer, model, _, k_model = models_pair(keras, shape, random_weights(rng, (3,)),
                                           trainable=False)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4
    before = layer.get_weights()
    inference = model(x)
    np.testing.assert_array_equal(model.forward(x, training=True), inference)
    assert_close(inference, run(k_model, x, training=True), 1e-5, "Keras 3 frozen layer")
    for a, b in zip(layer.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    layer.trainable = True  # unfrozen: batch statistics again
    assert not np.allclose(model.forward(x, training=True), inference)


def test_frozen_layer_during_fit(rng):
    x = rng.standard_normal((32, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    bn = BatchNormalization()
    model = Sequential([Conv2D(4, 3, input_shape=(6, 6, 2)), bn, Flatten(), Dense(1)])
    bn.set_weights(random_weights(rng, (4,)))
    bn.trainable = False
    frozen = bn.get_weights()
    conv_before = model.layers[0].get_weights()[0].copy()
    model.compile("adam", "mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(bn.get_weights(), frozen, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.layers[0].get_weights()[0], conv_before)
    np.testing.assert_array_equal(model.forward(x, training=True),
                                  model.forward(x, training=False))
    # predict folds the layer into the convolution: equal up to rounding
    np.testing.assert_allclose(model.predict(x), model.forward(x, training=False), rtol=1e-5,
                               atol=1e-5)
    bn.trainable = True
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(bn.get_weights()[2], frozen[2])  # moving mean moves again


def test_layer_called_twice_in_a_step_updates_twice(rng):
    a = rng.standard_normal((8, 3)).astype(np.float32)
    b = (rng.standard_normal((8, 3)) + 2).astype(np.float32)
    bn = BatchNormalization(momentum=0.9)
    first, second = Input((3,)), Input((3,))
    model = Model([first, second], Add()([bn(first), bn(second)]))
    model.forward([a, b], training=True)
    expected = np.zeros(3, np.float32)
    for batch in (a, b):
        expected -= (expected - batch.mean(axis=0)) * np.float32(0.1)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected, rtol=1e-6)


def test_several_axes_match_the_formula_and_finite_differences(rng):
    """axis=[1, 3]: statistics over batch and width, weights (1, H, 1, C) as Keras."""
    x = rng.standard_normal((5, 3, 4, 2)) * 2 + 1
    layer = BatchNormalization(axis=[1, 3], dtype="float64", momentum=0.5)
    layer(Input((3, 4, 2), dtype="float64"))
    assert [w.numpy().shape for w in layer.weights] == [(1, 3, 1, 2)] * 4
    assert layer.fused is False and layer.get_config()["axis"] == [1, 3]
    gamma, beta = rng.standard_normal((1, 3, 1, 2)), rng.standard_normal((1, 3, 1, 2))
    layer.set_weights([gamma, beta, np.zeros((1, 3, 1, 2)), np.ones((1, 3, 1, 2))])
    y, cache = layer.forward(x, training=True)
    mean, var = x.mean(axis=(0, 2), keepdims=True), x.var(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-10)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * mean, rtol=1e-10)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.5 + 0.5 * var, rtol=1e-10)
    dy = rng.standard_normal(x.shape)
    dx, (dgamma, dbeta) = layer.backward(dy, cache)

    def loss(x_, gamma_):
        m, v = x_.mean(axis=(0, 2), keepdims=True), x_.var(axis=(0, 2), keepdims=True)
        return np.sum(((x_ - m) / np.sqrt(v + 1e-3) * gamma_ + beta) * dy)

    h = 1e-6
    for index in [(0, 0, 0, 0), (2, 1, 3, 1), (4, 2, 1, 0)]:
        step = np.zeros_like(x)
        step[index] = h
        numeric = (loss(x + step, gamma) - loss(x - step, gamma)) / (2 * h)
        assert dx[index] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    for index in [(0, 0, 0, 0), (0, 2, 0, 1)]:
        step = np.zeros_like(gamma)
        step[index] = h
        numeric = (loss(x, gamma + step) - loss(x, gamma - step)) / (2 * h)
        assert dgamma[index] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(dbeta, dy.sum(axis=(0, 2), keepdims=True), rtol=1e-10)


def test_fused_path_raises_small_epsilons_like_tf24(rng):
    """tf.nn.fused_batch_norm computes with max(epsilon, 1.001e-5)."""
    x = rng.standard_normal((2, 3, 3, 2)).astype(np.float32)
    zeros = np.zeros(2, np.float32)
    ones = np.ones(2, np.float32)
    fused = BatchNormalization(epsilon=1e-7)
    plain = BatchNormalization(epsilon=1e-7, fused=False)
    for layer in (fused, plain):
        layer(x)
        layer.set_weights([ones, zeros, zeros, zeros])  # moving variance 0: y = x / sqrt(eps)
    np.testing.assert_allclose(fused(x), x / np.sqrt(np.float32(1.001e-5)), rtol=1e-6)
    np.testing.assert_allclose(plain(x), x / np.sqrt(np.float32(1e-7)), rtol=1e-6)
    assert fused.get_config()["epsilon"] == 1e-7


def test_path_choice_follows_tf24():
    cases = [({}, (4, 4, 3), True), ({"axis": 1}, (3, 4, 4), True),
             ({"axis": 2}, (4, 4, 3), False), ({}, (4, 3), False),
             ({"fused": False}, (4, 4, 3), False), ({"dtype": "float64"}, (4, 4, 3), False)]
    for kwargs, shape, fused in cases:
        layer = BatchNormalization(**kwargs)
        layer(Input(shape, dtype=kwargs.get("dtype")))
        assert layer.fused is fused, kwargs
        assert layer._output_op_name(None) == ("FusedBatchNormV3" if fused else "batchnorm/add_1")


def test_float64_moving_variance_is_biased(rng):
    """float64 is not fused in tf.keras 2.4, so the biased variance feeds the average."""
    x = rng.standard_normal((4, 3, 3, 2))
    layer = BatchNormalization(dtype="float64", momentum=0.0)
    layer(x)  # builds; inference updates nothing
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.moving_variance.numpy(), x.var(axis=(0, 1, 2)), rtol=1e-12)


def test_fused_moving_variance_of_a_single_value_per_channel_stays_finite(rng):
    layer = BatchNormalization(momentum=0.5)
    x = rng.standard_normal((1, 1, 1, 3)).astype(np.float32)
    layer(x)
    assert layer.fused
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), 0.5)


def test_both_compute_backends_agree(rng):
    x = rng.standard_normal((4, 5, 5, 3)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for backend_name in ("c", "numpy"):
        backend.clear_session()
        layer = BatchNormalization(axis=2)
        with fc.use_backend(backend_name):
            layer(x)
            layer.set_weights(random_weights(np.random.default_rng(1), (5,)))
            y, cache = layer.forward(x, training=True)
            dx, grads = layer.backward(dy, cache)
            results.append([y, dx, *grads, *layer.get_weights()])
    for a, b in zip(*results, strict=True):
        assert_close(a, b, 1e-5)


# ---------------------------------------------------------------------------
# Arguments, shapes, configs, summary

@pytest.mark.parametrize("kwargs, error, match", [
    ({"axis": "last"}, TypeError, "Expected an int or a list/tuple of ints for the argument"),
    ({"axis": [1.5]}, TypeError, "axis"),
    ({"momentum": 1.5}, ValueError, "momentum"),
    ({"momentum": None}, TypeError, "momentum"),
    ({"epsilon": 0}, ValueError, "epsilon"),
    ({"epsilon": float("nan")}, ValueError, "epsilon"),
    ({"renorm": True}, ValueError, "renorm"),
    ({"virtual_batch_size": 2}, ValueError, "virtual_batch_size"),
    ({"adjustment": lambda shape: (1, 0)}, ValueError, "adjustment"),
    ({"fused": True, "axis": 2}, ValueError, "fused=True is only supported when axis is 1 or 3"),
    ({"fused": True, "dtype": "float64"}, ValueError, "compute dtype is float16, bfloat16"),
    ({"fused": "yes"}, TypeError, "fused"),
    ({"beta_initializer": "nope"}, ValueError, "Unknown initializer: nope"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNormalization(**kwargs)


def test_unused_renorm_arguments_are_accepted():
    layer = BatchNormalization(renorm_clipping={"rmax": 3.0}, renorm_momentum=0.5)
    assert "renorm_clipping" not in layer.get_config()


def test_bad_inputs_are_refused_at_build():
    for kwargs, shape, match in [({"axis": 4}, (4, 4, 3), "Invalid axis: 4"),
                                 ({"axis": [1, -3]}, (4, 4, 3), "Duplicate axis"),
                                 ({"axis": [0, 1]}, (4,), "no axis"),
                                 ({"fused": True}, (4, 3), "only support 4D input tensors"),
                                 ({}, (4, None), "Input has undefined `axis` dimension")]:
        layer = BatchNormalization(**kwargs)
        with pytest.raises(ValueError, match=match):
            layer(Input(shape))
    layer = BatchNormalization()
    layer(Input((4, 3)))
    with pytest.raises(ValueError, match="expected axis 2 of input shape to have value 3"):
        layer(Input((4, 5)))
    with pytest.raises(ValueError, match="expected ndim=3"):
        layer(Input((4, 5, 3)))


def test_config_is_tf24s_and_round_trips():
    layer = BatchNormalization(momentum=0.9)
    assert layer.get_config()["axis"] == -1
    layer(Input((4, 4, 3)))
    config = layer.get_config()
    assert config == {
        "name": "batch_normalization", "trainable": True, "dtype": "float32", "axis": [3],
        "momentum": 0.9, "epsilon": 0.001, "center": True, "scale": True,
        "beta_initializer": {"class_name": "Zeros", "config": {}},
        "gamma_initializer": {"class_name": "Ones", "config": {}},
        "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
        "moving_variance_initializer": {"class_name": "Ones", "config": {}},
        "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
        "gamma_constraint": None}
    clone = BatchNormalization.from_config(config)
    clone(Input((4, 4, 3)))
    assert clone.get_config() == config and clone.fused is True
    frozen = BatchNormalization.from_config({**config, "trainable": False, "name": "frozen",
                                             "gamma_initializer": {"class_name": "Constant",
                                                                   "config": {"value": 2.0}}})
    frozen(Input((4, 4, 3)))
    assert frozen.trainable is False
    np.testing.assert_array_equal(frozen.gamma.numpy(), 2)


def test_shapes_weights_and_params_match_keras3():
    keras = keras3()
    for shape, axis in [((4, 4, 3), -1), ((3, 4, 4), 1), ((7,), -1), ((5, 6), 1)]:
        layer, k_layer = BatchNormalization(axis=axis), keras.layers.BatchNormalization(axis=axis)
        assert layer.compute_output_shape((None,) + shape) == (None,) + shape
        assert layer(Input(shape)).shape.as_list() == [None, *shape]
        k_layer(keras.Input(shape))
        assert layer.count_params() == k_layer.count_params()
        assert [w.numpy().shape for w in layer.weights] == [tuple(w.shape)
                                                           for w in k_layer.weights]
        assert [w.trainable for w in layer.weights] == [True, True, False, False]
        assert layer(np.ones((2,) + shape, np.float32)).shape == (2,) + shape
    assert [w.name for w in layer.weights] == [
        f"{layer.name}/{n}:0" for n in ("gamma", "beta", "moving_mean", "moving_variance")]


def test_summary_rows_count_moving_statistics_as_non_trainable():
    model = Sequential([Conv2D(8, 3, input_shape=(8, 8, 3)), BatchNormalization(), ReLU(),
                        Flatten(), Dense(4), BatchNormalization(trainable=False)])
    lines = []
    model.summary(print_fn=lines.append)
    rule, double = "_" * 65, "=" * 65
    rows = [("conv2d (Conv2D)", "(None, 6, 6, 8)", "224"),
            # 'batch_normalization (BatchNormalization)' cut at 29 columns, the last a space
            ("batch_normalization (BatchNo", "(None, 6, 6, 8)", "32"),
            ("re_lu (ReLU)", "(None, 6, 6, 8)", "0"), ("flatten (Flatten)", "(None, 288)", "0"),
            ("dense (Dense)", "(None, 4)", "1156"),
            ("batch_normalization_1 (Batch", "(None, 4)", "16")]
    expected = ['Model: "sequential"', rule,
                f"{'Layer (type)':<29}{'Output Shape':<26}{'Param #':<10}", double]
    for i, (name, shape, params) in enumerate(rows):
        expected += [f"{name:<29}{shape:<26}{params:<10}", double if i == len(rows) - 1 else rule]
    # Trainable: conv 224 + gamma/beta 16 + dense 1156; the frozen layer's 16 all count
    # as non-trainable, with the first layer's 16 moving statistics.
    expected += ["Total params: 1,428", "Trainable params: 1,396", "Non-trainable params: 32",
                 rule]
    assert lines == expected
