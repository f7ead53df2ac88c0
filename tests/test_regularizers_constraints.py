"""``fastconv.regularizers`` and ``fastconv.constraints`` (tf.keras 2.4 semantics):
the objects, their lookup and serialization, and what training does with them,
against Keras 3 (torch backend) where the two agree and against TF 2.4's rules
where they differ (each difference is named where it is tested)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastconv import backend, constraints, optimizers, regularizers
from fastconv.layers import Conv2D, Dense, Flatten, Input
from fastconv.models import Model, Sequential

# Keras 3 on NumPy 2 and torch warns about its own conversions.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:keras"),
              pytest.mark.filterwarnings("ignore::UserWarning:keras")]


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


class _Scaled(regularizers.Regularizer):
    def __init__(self, factor=1.0):
        self.factor = factor

    def __call__(self, x):
        return self.factor * float(np.sum(np.square(x)))

    def get_config(self):
        return {"factor": self.factor}


class _ScaledWithGradient(_Scaled):
    def gradient(self, x):
        return 2 * self.factor * x


class _Clipped(constraints.Constraint):
    def __init__(self, limit=1.0):
        self.limit = limit

    def __call__(self, w):
        return np.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


# ---------------------------------------------------------------------------
# Lookup and serialization


def test_the_base_classes_do_nothing():
    w = np.arange(4.0)
    assert regularizers.Regularizer()(w) == 0.0
    np.testing.assert_array_equal(regularizers.Regularizer().gradient(w), np.zeros(4))
    assert constraints.Constraint()(w) is w


def test_get_passes_none_and_callables_through():
    def penalty(x):
        return 0.5

    assert regularizers.get(None) is None and constraints.get(None) is None
    assert regularizers.get(penalty) is penalty
    assert constraints.get(np.abs) is np.abs


def test_get_by_name_uses_keras_defaults():
    assert type(regularizers.get("Regularizer")) is regularizers.Regularizer
    assert type(constraints.get("Constraint")) is constraints.Constraint
    assert regularizers.get("l1").get_config() == {"l1": pytest.approx(0.01)}
    assert regularizers.get("L2").get_config() == {"l2": pytest.approx(0.01)}
    # 'l1_l2' is Keras' special case: the function's defaults, not the class's zeros.
    assert regularizers.get("l1_l2").get_config() == {"l1": pytest.approx(0.01),
                                                      "l2": pytest.approx(0.01)}
    assert regularizers.get("L1L2").get_config() == {"l1": 0.0, "l2": 0.0}
    assert type(constraints.get("max_norm")) is constraints.MaxNorm
    assert constraints.get("maxnorm").get_config() == {"max_value": 2, "axis": 0}
    assert type(constraints.get("NonNeg")) is constraints.NonNeg
    assert constraints.get("unit_norm").get_config() == {"axis": 0}
    assert constraints.get("min_max_norm").get_config() == {
        "min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0}


def test_the_snake_case_names_are_the_classes():
    assert regularizers.l1 is regularizers.L1 and regularizers.l2 is regularizers.L2
    assert type(regularizers.l1_l2()) is regularizers.L1L2
    assert constraints.max_norm is constraints.MaxNorm
    assert constraints.non_neg is constraints.NonNeg
    assert constraints.unit_norm is constraints.UnitNorm
    assert constraints.min_max_norm is constraints.MinMaxNorm


def test_factors_are_kept_in_floatx_as_tf24_does():
    # TF 2.4's cast_to_floatx: the config holds float(np.float32(1e-4)); Keras 3
    # keeps the Python float (0.0001).
    assert regularizers.l2(1e-4).get_config() == {"l2": float(np.float32(1e-4))}
    assert regularizers.L1L2(l2=0.5).get_config() == {"l1": 0.0, "l2": 0.5}
    assert regularizers.L1(l=0.25).get_config() == {"l1": 0.25}  # Keras' old spelling


@pytest.mark.parametrize("module,what,name", [
    (regularizers, "regularizer", "l3"),
    (constraints, "constraint", "max_norms"),
])
def test_unknown_names(module, what, name):
    with pytest.raises(ValueError, match=f"Unknown {what}: {name}"):
        module.get(name)


@pytest.mark.parametrize("module,what", [(regularizers, "regularizer"),
                                         (constraints, "constraint")])
def test_other_identifiers_are_refused(module, what):
    with pytest.raises(ValueError, match=f"Could not interpret {what} identifier: 5"):
        module.get(5)
    with pytest.raises(ValueError, match="Improper config format"):
        module.get({"config": {}})


@pytest.mark.parametrize("instance", [
    regularizers.L1(0.5), regularizers.L2(2e-3), regularizers.L1L2(0.125, 0.25),
    constraints.MaxNorm(3, axis=[0, 1, 2]), constraints.NonNeg(), constraints.UnitNorm(1),
    constraints.MinMaxNorm(0.5, 2.0, 0.5, 1),
])
def test_builtins_round_trip(instance):
    module = regularizers if isinstance(instance, regularizers.Regularizer) else constraints
    config = module.serialize(instance)
    assert config == {"class_name": type(instance).__name__, "config": instance.get_config()}
    restored = module.get(config)
    assert type(restored) is type(instance) and restored.get_config() == instance.get_config()
    assert module.serialize(None) is None


def test_serialize_and_deserialize_round_trip_with_custom_objects():
    config = regularizers.serialize(_Scaled(0.25))
    assert config == {"class_name": "_Scaled", "config": {"factor": 0.25}}
    restored = regularizers.deserialize(config, custom_objects={"_Scaled": _Scaled})
    assert isinstance(restored, _Scaled) and restored.factor == 0.25
    assert restored(np.ones(2)) == 0.5

    config = constraints.serialize(_Clipped(2.0))
    assert config == {"class_name": "_Clipped", "config": {"limit": 2.0}}
    restored = constraints.deserialize(config, custom_objects={"_Clipped": _Clipped})
    np.testing.assert_array_equal(restored(np.array([-3.0, 1.0, 3.0])), [-2.0, 1.0, 2.0])
    assert constraints.serialize(constraints.Constraint()) == {"class_name": "Constraint",
                                                               "config": {}}


def test_functions_serialize_to_their_name():
    assert regularizers.serialize(np.sum) == "sum"
    assert regularizers.deserialize("sum", custom_objects={"sum": np.sum}) is np.sum


def test_the_base_regularizer_has_no_config_as_in_keras():
    with pytest.raises(NotImplementedError, match="does not implement get_config"):
        regularizers.serialize(regularizers.Regularizer())


@pytest.mark.parametrize("make,match", [
    (lambda: regularizers.L2("0.1"), "`l2` must be a number"),
    (lambda: regularizers.L1(float("nan")), "`l1` must be a finite number"),
    (lambda: regularizers.L1L2(l1=float("inf")), "`l1` must be a finite number"),
    (lambda: regularizers.L1L2(l2=True), "`l2` must be a number"),
    (lambda: constraints.MaxNorm(-1), "`max_value` must be a finite number >= 0"),
    (lambda: constraints.MaxNorm(2, axis=0.5), "`axis` must be an int or a list of ints"),
    (lambda: constraints.UnitNorm(axis=[]), "`axis` must be an int or a list of ints"),
    (lambda: constraints.MinMaxNorm(2.0, 1.0), r"`min_value` \(2.0\) must not exceed"),
    (lambda: constraints.MinMaxNorm(rate=1.5), r"`rate` must be a number in \[0, 1\]"),
])
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()
    with pytest.raises(TypeError, match="Argument\\(s\\) not recognized"):
        regularizers.L2(0.1, scale=2)


# ---------------------------------------------------------------------------
# Penalties, gradients and projections


def test_penalties_and_gradients_are_keras_formulas():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    x[0, 0] = 0.0
    l1, l2 = regularizers.L1(0.3), regularizers.L2(0.2)
    both = regularizers.L1L2(0.3, 0.2)
    assert l1(x) == pytest.approx(0.3 * np.abs(x).sum(), rel=1e-6)
    assert l2(x) == pytest.approx(0.2 * np.square(x).sum(), rel=1e-6)
    assert both(x) == pytest.approx(l1(x) + l2(x), rel=1e-6)
    assert regularizers.L1L2()(x) == 0.0
    for regularizer in (l1, l2, both):
        grad = regularizer.gradient(x)
        assert grad.dtype == np.float32 and grad.shape == x.shape
    # TensorFlow's Abs gradient is sign(x): 0 at 0.
    assert l1.gradient(x)[0, 0] == 0.0
    np.testing.assert_allclose(both.gradient(x), 0.3 * np.sign(x) + 0.4 * x, rtol=1e-6)


@pytest.mark.parametrize("regularizer", [regularizers.L1(0.3), regularizers.L2(0.2),
                                         regularizers.L1L2(0.1, 0.7)])
def test_gradients_match_finite_differences(regularizer):
    rng = np.random.default_rng(1)
    x = rng.uniform(0.2, 1.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))  # away from |x| kink
    h = 1e-6
    numeric = np.empty_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (regularizer(up) - regularizer(down)) / (2 * h)
    np.testing.assert_allclose(regularizer.gradient(x), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name,kwargs,shape", [
    ("MaxNorm", {}, (5, 3)),
    ("MaxNorm", {"max_value": 0.5, "axis": 1}, (4, 6)),
    ("MaxNorm", {"max_value": 1.5, "axis": [0, 1, 2]}, (3, 3, 2, 4)),
    ("NonNeg", {}, (5, 3)),
    ("UnitNorm", {}, (5, 3)),
    ("UnitNorm", {"axis": [0, 1, 2]}, (3, 3, 2, 4)),
    ("MinMaxNorm", {}, (5, 3)),
    ("MinMaxNorm", {"min_value": 0.5, "max_value": 1.2, "rate": 0.3, "axis": 1}, (4, 6)),
])
def test_projections_equal_keras(keras, name, kwargs, shape):
    w = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    w[0] *= 0.01  # some slices inside the bounds, some outside
    ours = getattr(constraints, name)(**kwargs)
    theirs = getattr(keras.constraints, name)(**kwargs)
    expected = keras.ops.convert_to_numpy(theirs(keras.ops.convert_to_tensor(w)))
    projected = ours(w)
    assert projected.dtype == np.float32
    np.testing.assert_allclose(projected, expected, rtol=1e-6, atol=1e-7)
    assert ours.get_config() == theirs.get_config()


# ---------------------------------------------------------------------------
# Dense carries them


def test_dense_arguments_config_and_round_trip():
    layer = Dense(3, kernel_regularizer=regularizers.l2(1e-4), bias_regularizer="l1",
                  activity_regularizer=regularizers.L1L2(l1=0.5),
                  kernel_constraint=constraints.max_norm(2.0), bias_constraint="non_neg")
    config = layer.get_config()
    assert config["kernel_regularizer"] == {"class_name": "L2",
                                            "config": {"l2": float(np.float32(1e-4))}}
    assert config["bias_regularizer"] == {"class_name": "L1",
                                          "config": {"l1": float(np.float32(0.01))}}
    assert config["activity_regularizer"] == {"class_name": "L1L2",
                                              "config": {"l1": 0.5, "l2": 0.0}}
    assert config["kernel_constraint"] == {"class_name": "MaxNorm",
                                           "config": {"max_value": 2.0, "axis": 0}}
    assert config["bias_constraint"] == {"class_name": "NonNeg", "config": {}}
    assert Dense(2).get_config()["kernel_regularizer"] is None
    clone = Dense.from_config(config)
    assert clone.get_config() == config
    clone(np.zeros((1, 4), np.float32))
    assert clone.kernel.regularizer.get_config() == config["kernel_regularizer"]["config"]
    assert type(clone.bias.constraint) is constraints.NonNeg
    # Any layer takes an activity regularizer, as Keras' base Layer does.
    assert type(Flatten(activity_regularizer="l2").activity_regularizer) is regularizers.L2


# ---------------------------------------------------------------------------
# Training adds the penalties, differentiates them, applies the constraints


def _dense_pair(keras, rng, **kwargs):
    """The same Dense-Dense model in fastconv and Keras, same weights."""
    def build(dense, inputs):
        hidden = dense(5, activation="tanh", **kwargs)(inputs)
        return dense(3, kernel_regularizer=kwargs.get("kernel_regularizer"))(hidden)

    ours_in = Input((4,))
    ours = Model(ours_in, build(Dense, ours_in))
    theirs_in = keras.Input((4,))
    theirs = keras.Model(theirs_in, build(keras.layers.Dense, theirs_in))
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.7
               for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _keras_regularizers(keras):
    return {"kernel_regularizer": keras.regularizers.L2(1e-2),
            "bias_regularizer": keras.regularizers.L1(3e-2),
            "activity_regularizer": keras.regularizers.L2(5e-2)}


def _our_regularizers():
    return {"kernel_regularizer": regularizers.l2(1e-2),
            "bias_regularizer": regularizers.l1(3e-2),
            "activity_regularizer": regularizers.l2(5e-2)}


def test_loss_and_one_sgd_step_equal_keras(keras):
    rng = np.random.default_rng(3)
    ours_in = Input((4,))
    ours_hidden = Dense(5, activation="tanh", **_our_regularizers())(ours_in)
    ours = Model(ours_in, Dense(3, kernel_regularizer=regularizers.l2(2e-2))(ours_hidden))
    theirs_in = keras.Input((4,))
    theirs_hidden = keras.layers.Dense(5, activation="tanh", **_keras_regularizers(keras))(
        theirs_in)
    theirs = keras.Model(theirs_in, keras.layers.Dense(
        3, kernel_regularizer=keras.regularizers.L2(2e-2))(theirs_hidden))
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.7
               for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32)

    ours.compile(optimizers.SGD(0.1), "mse")
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    # evaluate includes the penalties too (TF 2.4's test_step, as Keras 3).
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(
        theirs.evaluate(x, y, verbose=0), rel=1e-5)
    data_only = float(np.mean((ours.predict(x) - y) ** 2))
    assert ours.evaluate(x, y, verbose=0) > data_only + 0.01
    assert ours.train_on_batch(x, y) == pytest.approx(theirs.train_on_batch(x, y), rel=1e-5)
    for ours_w, theirs_w in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours_w, theirs_w, rtol=1e-5, atol=1e-6)
    theirs(x)  # Keras' losses are those of its last call
    ours(x)
    assert sum(ours.losses) == pytest.approx(
        sum(float(keras.ops.convert_to_numpy(v)) for v in theirs.losses), rel=1e-5)


def test_conv2d_regularizers_and_constraint_in_one_step_equal_keras(keras):
    """Conv2D's own arguments belong to its layer; the engine reads what the
    Variables and the layer carry, so they are set on them here."""
    rng = np.random.default_rng(4)
    ours_in = Input((6, 6, 2))
    conv = Conv2D(3, 3, activation="relu")
    ours = Model(ours_in, Dense(2)(Flatten()(conv(ours_in))))
    conv.kernel.regularizer = regularizers.l2(1e-2)
    conv.kernel.constraint = constraints.max_norm(0.6, axis=[0, 1, 2])
    conv.activity_regularizer = regularizers.l1(1e-3)
    theirs_in = keras.Input((6, 6, 2))
    theirs_conv = keras.layers.Conv2D(
        3, 3, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-2),
        kernel_constraint=keras.constraints.MaxNorm(0.6, axis=[0, 1, 2]),
        activity_regularizer=keras.regularizers.L1(1e-3))
    theirs = keras.Model(theirs_in, keras.layers.Dense(2)(
        keras.layers.Flatten()(theirs_conv(theirs_in))))
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.4
               for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((5, 2)).astype(np.float32)
    ours.compile(optimizers.SGD(0.2), "mse")
    theirs.compile(keras.optimizers.SGD(0.2), "mse")
    assert ours.train_on_batch(x, y) == pytest.approx(theirs.train_on_batch(x, y), rel=1e-5)
    for ours_w, theirs_w in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours_w, theirs_w, rtol=1e-5, atol=1e-6)
    # The constraint bound every filter's norm.
    norms = np.sqrt(np.sum(conv.kernel.numpy() ** 2, axis=(0, 1, 2)))
    assert np.all(norms <= 0.6 + 1e-6)


def test_dense_constraints_in_one_step_equal_keras(keras):
    rng = np.random.default_rng(5)
    ours_in = Input((4,))
    ours = Model(ours_in, Dense(3, kernel_constraint=constraints.UnitNorm(),
                                bias_constraint=constraints.NonNeg())(ours_in))
    theirs_in = keras.Input((4,))
    theirs = keras.Model(theirs_in, keras.layers.Dense(
        3, kernel_constraint=keras.constraints.UnitNorm(),
        bias_constraint=keras.constraints.NonNeg())(theirs_in))
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = rng.standard_normal((8, 3)).astype(np.float32)
    ours.compile(optimizers.SGD(0.5), "mse")
    theirs.compile(keras.optimizers.SGD(0.5), "mse")
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for ours_w, theirs_w in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours_w, theirs_w, rtol=1e-5, atol=1e-6)
    assert np.all(ours.get_weights()[1] >= 0)


def test_backward_with_regularization_is_the_gradient_of_the_whole_loss():
    """Finite differences in float64 of mean-squared error + sum(model.losses)
    (weight penalties of both layers, the activity penalty of the first)."""
    rng = np.random.default_rng(6)
    inputs = Input((3,), dtype="float64")
    hidden = Dense(4, activation="tanh", dtype="float64", kernel_regularizer=regularizers.L2(0.3),
                   bias_regularizer=regularizers.L1(0.2),
                   activity_regularizer=regularizers.L1L2(0.1, 0.4))(inputs)
    model = Model(inputs, Dense(2, dtype="float64",
                                kernel_regularizer=regularizers.L1(0.05))(hidden))
    model.set_weights([rng.standard_normal(w.shape) for w in model.get_weights()])
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))

    def total_loss():
        out = model(x)
        return float(np.mean((out - y) ** 2)) + sum(model.losses)

    out = model.forward(x)
    grads = model.backward(2 * (out - y) / out.size, regularization=True)
    h = 1e-6
    for variable, grad in zip(model.trainable_weights, grads):
        value = variable.numpy()
        numeric = np.empty_like(value)
        for index in np.ndindex(value.shape):
            saved = value[index]
            value[index] = saved + h
            up = total_loss()
            value[index] = saved - h
            down = total_loss()
            value[index] = saved
            numeric[index] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8, err_msg=variable.name)
    # Without regularization=True, backward is the data loss's gradient alone.
    model.forward(x)
    plain = model.backward(2 * (out - y) / out.size)
    assert not np.allclose(plain[0], grads[0])


def test_a_frozen_layer_keeps_its_penalty_but_not_its_updates():
    """TF 2.4 counts every weight's penalty (Keras 3 drops non-trainable ones);
    the optimizer leaves frozen weights, and so their constraints, alone."""
    inputs = Input((2,))
    frozen = Dense(2, kernel_regularizer=regularizers.L2(0.5),
                   kernel_constraint=constraints.UnitNorm(), trainable=False)
    model = Model(inputs, Dense(1)(frozen(inputs)))
    frozen.set_weights([np.full((2, 2), 3.0, np.float32), np.zeros(2, np.float32)])
    model.compile(optimizers.SGD(0.1), "mse")
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 1), np.float32)
    data_loss = float(np.mean(model.predict(x) ** 2))
    assert model.train_on_batch(x, y) == pytest.approx(data_loss + 0.5 * 36, rel=1e-6)
    np.testing.assert_array_equal(frozen.kernel.numpy(), np.full((2, 2), 3.0))


def test_optimizer_applies_constraints_in_a_custom_loop():
    inputs = Input((3,))
    layer = Dense(2, kernel_constraint=constraints.MaxNorm(0.1))
    model = Model(inputs, layer(inputs))
    x = np.ones((2, 3), np.float32)
    out = model.forward(x)
    grads = model.backward(np.ones_like(out))
    optimizers.SGD(1.0).apply_gradients(zip(grads, model.trainable_weights))
    assert np.all(np.linalg.norm(layer.kernel.numpy(), axis=0) <= 0.1 + 1e-6)
    # Plain arrays carry no constraint: the step alone.
    w = np.full(3, 5.0, np.float32)
    optimizers.SGD(1.0).apply_gradients([(np.ones(3, np.float32), w)])
    np.testing.assert_array_equal(w, np.full(3, 4.0))


def test_custom_regularizers_need_a_gradient():
    def build(regularizer):
        inputs = Input((3,))
        return Model(inputs, Dense(2, kernel_regularizer=regularizer, name="head")(inputs))

    with pytest.raises(TypeError, match=r"weight head/kernel:0 of layer head gives no "
                                        r"gradient.*implement gradient\(x\)"):
        build(_Scaled(0.1)).compile("sgd", "mse")

    def plain(w):
        return 0.1 * float(np.sum(w ** 2))

    with pytest.raises(TypeError, match="gives no gradient"):
        build(plain).compile("sgd", "mse")
    plain.gradient = lambda w: 0.2 * w
    build(plain).compile("sgd", "mse")

    # A custom one with a gradient trains exactly like the built-in it mimics.
    x = np.random.default_rng(7).standard_normal((4, 3)).astype(np.float32)
    y = np.zeros((4, 2), np.float32)
    custom, builtin = build(_ScaledWithGradient(0.1)), build(regularizers.L2(0.1))
    builtin.set_weights(custom.get_weights())
    for model in (custom, builtin):
        model.compile(optimizers.SGD(0.1), "mse")
    assert custom.train_on_batch(x, y) == pytest.approx(builtin.train_on_batch(x, y), rel=1e-6)
    for a, b in zip(custom.get_weights(), builtin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_regularizer_without_gradient_is_found_when_training_builds_the_model():
    model = Sequential([Dense(2, activity_regularizer=_Scaled(), name="late")])
    model.compile("sgd", "mse")  # not built yet: nothing to check
    with pytest.raises(TypeError, match="the activity of layer late gives no gradient"):
        model.fit(np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32), verbose=0)
