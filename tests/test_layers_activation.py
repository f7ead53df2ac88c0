"""Activation layers (``layers/activation.py``): ReLU, LeakyReLU, PReLU, ELU, Softmax.

Outputs and gradients are compared with Keras 3 (torch backend, torch
autograd) for the same weights and inputs, kinks included (the derivative
each op defines there); configs, shapes, errors and summary rows with
tf.keras 2.4's rules.

Where Keras 3 differs from tf.keras 2.4 (fastconv follows 2.4):
LeakyReLU's slope is ``alpha`` in 2.4 (``negative_slope`` in Keras 3, which
also refuses negative slopes); ReLU takes a negative ``threshold`` in 2.4
(Keras 3 refuses it); 2.4 rounds the scalar arguments to float32.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_close
from keras_compare import import_keras as keras3, run
from fastconv import backend, initializers
from fastconv.layers import (ELU, Dense, Input, LeakyReLU, PReLU, ReLU, Softmax)
from fastconv.models import Model, Sequential


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def kinked_input(rng, shape, kinks=()):
    """Normal values kept 1e-2 away from the kinks, then the kinks themselves
    written into the first entries."""
    x = rng.standard_normal(shape).astype(np.float32) * 3
    for k in kinks:
        near = np.abs(x - k) < 1e-2
        x[near] += np.float32(2e-2)
    flat = x.reshape(-1)
    flat[:len(kinks)] = kinks
    return x


def fastconv_step(layer, x, dy):
    """``(y, dx, weight grads)`` of a model holding ``layer`` in one training step."""
    inputs = Input(x.shape[1:])
    model = Model(inputs, layer(inputs))
    y = model.forward(x, training=True)
    grads, (dx,) = model.backward(dy, input_gradients=True)
    return y, dx, grads


def keras_step(keras, keras_layer, x, dy, weights=None):
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, keras_layer(inputs))
    if weights is not None:
        keras_layer.set_weights(weights)
    return run(model, x, dy, training=True)


RELU_CASES = [
    ({}, {}, (0.0,)),
    ({"max_value": 6.0}, {"max_value": 6.0}, (0.0, 6.0)),
    ({"max_value": 2.5}, {"max_value": 2.5}, (0.0, 2.5)),
    ({"negative_slope": 0.1}, {"negative_slope": 0.1}, (0.0,)),
    ({"threshold": 0.5}, {"threshold": 0.5}, (0.0, 0.5)),
    ({"max_value": 3.0, "negative_slope": 0.2, "threshold": 0.5},
     {"max_value": 3.0, "negative_slope": 0.2, "threshold": 0.5}, (0.0, 0.5, 3.0)),
    ({"max_value": 6.0, "negative_slope": 0.2}, {"max_value": 6.0, "negative_slope": 0.2},
     (0.0, 6.0)),
]


@pytest.mark.parametrize("ours, theirs, kinks", RELU_CASES)
def test_relu_forward_and_gradient_match_keras3(rng, ours, theirs, kinks):
    keras = keras3()
    x = kinked_input(rng, (4, 6, 5), kinks)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, dx, grads = fastconv_step(ReLU(**ours), x, dy)
    ky, kdx, _ = keras_step(keras, keras.layers.ReLU(**theirs), x, dy)
    assert grads == []
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")
    np.testing.assert_array_equal(ReLU(**ours)(x), y)  # inference: the same function


def test_relu_negative_threshold_follows_keras_composition(rng):
    """tf.keras 2.4 takes threshold < 0 (Keras 3 refuses it): inputs between
    the threshold and 0 pass unchanged, or clip to 0 once max_value is set."""
    keras = keras3()
    with pytest.raises(ValueError, match="threshold"):
        keras.layers.ReLU(threshold=-1.0)
    x = np.array([[-2.0, -1.0, -0.5, 0.0, 0.5, 3.0]], np.float32)
    np.testing.assert_array_equal(ReLU(threshold=-1.0)(x), [[0, 0, -0.5, 0, 0.5, 3]])
    np.testing.assert_array_equal(ReLU(threshold=-1.0, max_value=2.0)(x), [[0, 0, 0, 0, 0.5, 2]])
    np.testing.assert_array_equal(ReLU(threshold=-1.0, negative_slope=0.5)(x),
                                  [[-0.5, 0, -0.5, 0, 0.5, 3]])


@pytest.mark.parametrize("alpha", [0.3, 0.0, 1.5])
def test_leaky_relu_matches_keras3(rng, alpha):
    keras = keras3()
    x = kinked_input(rng, (3, 7, 4), (0.0,))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, dx, _ = fastconv_step(LeakyReLU(alpha), x, dy)
    ky, kdx, _ = keras_step(keras, keras.layers.LeakyReLU(negative_slope=alpha), x, dy)
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")
    if alpha:
        assert dx.reshape(-1)[0] == pytest.approx(alpha * dy.reshape(-1)[0], rel=1e-6)


def test_leaky_relu_takes_negative_alpha_like_tf24():
    keras = keras3()
    with pytest.raises(ValueError, match="negative_slope"):
        keras.layers.LeakyReLU(negative_slope=-0.5)
    x = np.array([[-2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(LeakyReLU(alpha=-0.5)(x), [[1.0, 3.0]])


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_elu_matches_keras3(rng, alpha):
    keras = keras3()
    x = kinked_input(rng, (3, 5, 4), (0.0,))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, dx, _ = fastconv_step(ELU(alpha), x, dy)
    ky, kdx, _ = keras_step(keras, keras.layers.ELU(alpha), x, dy)
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")


@pytest.mark.parametrize("axis", [-1, 1, (1, 2)])
def test_softmax_matches_keras3(rng, axis):
    keras = keras3()
    x = rng.standard_normal((3, 4, 5)).astype(np.float32) * 4
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, dx, _ = fastconv_step(Softmax(axis), x, dy)
    ky, kdx, _ = keras_step(keras, keras.layers.Softmax(axis), x, dy)
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")
    np.testing.assert_allclose(y.sum(axis=axis), 1, rtol=1e-6)


def test_softmax_is_stable_for_large_inputs():
    y = Softmax()(np.array([[1000.0, 1000.0, -1000.0]], np.float32))
    np.testing.assert_allclose(y, [[0.5, 0.5, 0.0]])


@pytest.mark.parametrize("shared_axes", [None, [1, 2], 2])
def test_prelu_matches_keras3(rng, shared_axes):
    keras = keras3()
    x = kinked_input(rng, (3, 4, 5, 2), (0.0,))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ours = PReLU(shared_axes=shared_axes,
                 alpha_initializer=initializers.RandomUniform(0.05, 0.5, seed=1))
    y, dx, (dalpha,) = fastconv_step(ours, x, dy)
    theirs = keras.layers.PReLU(shared_axes=shared_axes)
    # The gradient is taken after the step's forward: the weights it used.
    ky, kdx, (kdalpha,) = keras_step(keras, theirs, x, dy, ours.get_weights())
    assert ours.alpha.numpy().shape == theirs.alpha.shape
    assert ours.count_params() == theirs.count_params()
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")
    assert_close(dalpha, kdalpha, 1e-5, "alpha gradient")


def test_prelu_weight_shapes_and_params():
    inputs = Input((4, 5, 3))
    per_channel = PReLU(shared_axes=[1, 2])
    per_unit = PReLU()
    per_channel(inputs), per_unit(inputs)
    assert per_channel.alpha.numpy().shape == (1, 1, 3)
    assert per_channel.count_params() == 3
    assert per_unit.alpha.numpy().shape == (4, 5, 3)
    assert per_unit.count_params() == 60
    assert [w.name for w in per_channel.weights] == ["p_re_lu/alpha:0"]
    np.testing.assert_array_equal(per_unit.alpha.numpy(), 0)  # 'zeros' by default


def test_prelu_gradients_match_finite_differences_in_float64(rng):
    x = kinked_input(rng, (2, 3, 4), ()).astype(np.float64)
    layer = PReLU(shared_axes=[1], dtype="float64",
                  alpha_initializer=initializers.RandomUniform(-0.5, 0.5, seed=3))
    layer(x)
    y, cache = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx, (dalpha,) = layer.backward(dy, cache)
    h = 1e-6
    alpha = layer.alpha.numpy()
    numeric = np.zeros_like(alpha)
    for index in np.ndindex(alpha.shape):
        original = alpha[index]
        alpha[index] = original + h
        plus = np.sum(layer(x) * dy)
        alpha[index] = original - h
        minus = np.sum(layer(x) * dy)
        alpha[index] = original
        numeric[index] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(dalpha, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, dy * np.where(x > 0, 1, alpha), rtol=1e-12)


def test_nan_inputs_behave_as_numpy():
    x = np.array([[np.nan, -1.0, 2.0]], np.float32)
    dy = np.ones_like(x)
    for layer in (ReLU(), ReLU(max_value=6.0), ReLU(threshold=0.5, negative_slope=0.1),
                  LeakyReLU(), ELU(), PReLU()):
        layer(x)  # builds PReLU
        y, cache = layer.forward(x, training=True)
        assert np.isnan(y[0, 0]) and not np.isnan(y[0, 1:]).any(), type(layer).__name__
        dx, _ = layer.backward(dy, cache)
        assert not np.isnan(dx[0, 1:]).any(), type(layer).__name__
    relu = ReLU()
    _, cache = relu.forward(x, training=True)
    assert relu.backward(dy, cache)[0][0, 0] == 0  # NaN > 0 is False: no gradient
    assert np.isnan(Softmax()(x)).all()  # the row's maximum is NaN


# ---------------------------------------------------------------------------
# Arguments

@pytest.mark.parametrize("make, error, match", [
    (lambda: ReLU(max_value=-1.0), ValueError, "max_value"),
    (lambda: ReLU(negative_slope=-0.1), ValueError, "negative_slope"),
    (lambda: ReLU(negative_slope=None), ValueError, "negative_slope"),
    (lambda: ReLU(threshold=None), ValueError, "threshold"),
    (lambda: ReLU(max_value="6"), TypeError, "max_value"),
    (lambda: ReLU(max_value=float("nan")), ValueError, "max_value"),
    (lambda: LeakyReLU(alpha=None), TypeError, "alpha"),
    (lambda: LeakyReLU(alpha=float("inf")), ValueError, "alpha"),
    (lambda: ELU(alpha=float("nan")), ValueError, "alpha"),
    (lambda: ELU(alpha="one"), TypeError, "alpha"),
    (lambda: Softmax(axis="last"), TypeError, "axis"),
    (lambda: Softmax(axis=()), TypeError, "axis"),
    (lambda: PReLU(shared_axes=["h"]), TypeError, "shared_axes"),
    (lambda: PReLU(alpha_initializer="nope"), ValueError, "Unknown initializer: nope"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_axes_are_refused_at_build():
    with pytest.raises(ValueError, match="axis"):
        Softmax(axis=3)(Input((4, 5)))
    with pytest.raises(ValueError, match="twice"):
        Softmax(axis=(1, -2))(Input((4, 5)))
    for shared in ([0], [-1], [3]):
        layer = PReLU(shared_axes=shared)
        with pytest.raises(ValueError, match="shared_axes"):
            layer(Input((4, 5)))
        assert not layer.built
    with pytest.raises(ValueError, match=r"axes \[1\] must be known"):
        PReLU(shared_axes=[2])(Input((None, 5)))
    PReLU(shared_axes=[1])(Input((None, 5)))  # the unknown axis is shared


def test_prelu_pins_its_unshared_axes():
    layer = PReLU(shared_axes=[1])
    layer(Input((4, 5)))
    layer(Input((7, 5)))  # the shared axis may change
    with pytest.raises(ValueError, match="expected axis 2 of input shape to have value 5"):
        layer(Input((4, 6)))


# ---------------------------------------------------------------------------
# Configs, shapes, names, summary

def test_configs_are_tf24s_and_round_trip():
    expected = {
        ReLU(max_value=6): {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0},
        ReLU(): {"max_value": None, "negative_slope": 0.0, "threshold": 0.0},
        LeakyReLU(): {"alpha": float(np.float32(0.3))},
        ELU(alpha=0.5): {"alpha": 0.5},
        Softmax(axis=(1, 2)): {"axis": (1, 2)},
        PReLU(shared_axes=(1, 2)): {"alpha_initializer": {"class_name": "Zeros", "config": {}},
                                    "alpha_regularizer": None, "alpha_constraint": None,
                                    "shared_axes": [1, 2]},
    }
    for layer, fields in expected.items():
        config = layer.get_config()
        assert config == {"name": layer.name, "trainable": True, "dtype": "float32", **fields}
        clone = type(layer).from_config(config)
        assert clone.get_config() == config
    prelu = PReLU.from_config(PReLU(alpha_initializer="ones", shared_axes=1).get_config())
    prelu(Input((3, 2)))
    np.testing.assert_array_equal(prelu.alpha.numpy(), [[1, 1]])


def test_names_and_output_tensor_names():
    inputs = Input((4, 3))
    outputs = [layer(inputs) for layer in (ReLU(), ReLU(max_value=6), LeakyReLU(), PReLU(),
                                           ELU(), ELU(0.5), Softmax(), ReLU(threshold=1.0))]
    assert [t.name for t in outputs] == [
        "re_lu/Relu:0", "re_lu_1/Relu6:0", "leaky_re_lu/LeakyRelu:0", "p_re_lu/add:0",
        "elu/Elu:0", "elu_1/SelectV2:0", "softmax/Softmax:0", "re_lu_2/mul:0"]


def test_shapes_symbolic_and_on_arrays(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    for layer in (ReLU(), LeakyReLU(), ELU(), Softmax(1), PReLU(shared_axes=1)):
        assert layer.compute_output_shape((None, 3, 4)) == (None, 3, 4)
        assert layer(Input((3, 4))).shape.as_list() == [None, 3, 4]
        y = layer(x)
        assert y.shape == x.shape and y.dtype == np.float32


def test_keras3_parameter_counts():
    keras = keras3()
    inputs, k_inputs = Input((4, 5, 3)), keras.Input((4, 5, 3))
    for ours, theirs in ((PReLU(), keras.layers.PReLU()),
                         (PReLU(shared_axes=[1, 2]), keras.layers.PReLU(shared_axes=[1, 2])),
                         (ReLU(), keras.layers.ReLU()), (Softmax(), keras.layers.Softmax())):
        ours(inputs), theirs(k_inputs)
        assert ours.count_params() == theirs.count_params()


def test_summary_rows():
    inputs = Input((8,))
    x = Dense(6)(inputs)
    x = PReLU()(x)
    x = LeakyReLU()(x)
    x = ELU()(x)
    x = ReLU(max_value=6)(x)
    outputs = Softmax()(Dense(3)(x))
    lines = []
    Model(inputs, outputs).summary(print_fn=lines.append)
    rule, double = "_" * 65, "=" * 65
    rows = [("input_1 (InputLayer)", "[(None, 8)]", "0"), ("dense (Dense)", "(None, 6)", "54"),
            ("p_re_lu (PReLU)", "(None, 6)", "6"), ("leaky_re_lu (LeakyReLU)", "(None, 6)", "0"),
            ("elu (ELU)", "(None, 6)", "0"), ("re_lu (ReLU)", "(None, 6)", "0"),
            ("dense_1 (Dense)", "(None, 3)", "21"), ("softmax (Softmax)", "(None, 3)", "0")]
    expected = ['Model: "model"', rule, f"{'Layer (type)':<29}{'Output Shape':<26}{'Param #':<10}",
                double]
    for i, (name, shape, params) in enumerate(rows):
        expected += [f"{name:<29}{shape:<26}{params:<10}", double if i == len(rows) - 1 else rule]
    expected += ["Total params: 81", "Trainable params: 81", "Non-trainable params: 0", rule]
    assert lines == expected


def test_sequential_trains_through_every_activation(rng):
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    # alpha starts at 0.25: with Keras' zeros every negative unit would sit on
    # the next ReLU's kink, whose derivative is 0 (as in TensorFlow).
    model = Sequential([Dense(8, input_shape=(6,)),
                        PReLU(alpha_initializer=initializers.Constant(0.25)), LeakyReLU(0.1),
                        ELU(), ReLU(max_value=6.0, negative_slope=0.05), Dense(3), Softmax()])
    model.compile("sgd", "categorical_crossentropy")
    before = model.get_weights()[2].copy()
    assert before.shape == (8,)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.array_equal(model.get_weights()[2], before)  # PReLU's alpha learned
