"""Subclassed models (``class Net(fastconv.Model)``, tf.keras 2.4 semantics):
layers tracked as attributes, ``call`` traced into the functional graph
machinery, predict/fit/evaluate/``model(x)`` against Keras 3 (torch backend),
summaries written from TF 2.4's rules, and what tracing cannot do."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fastconv
from fastconv import backend, ops, optimizers
from fastconv.layers import Add, Conv2D, Dense, Flatten, Input, Layer
from fastconv.models import Model

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


class ConvNet(fastconv.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = Conv2D(3, 3, activation="relu")
        self.blocks = [Dense(4, activation="tanh"), Dense(2)]
        self.flat = Flatten()

    def call(self, x, training=None):
        x = self.flat(self.conv(x))
        for block in self.blocks:
            x = block(x)
        return x


def keras_conv_net(keras):
    class KerasConvNet(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(3, 3, activation="relu")
            self.blocks = [keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)]
            self.flat = keras.layers.Flatten()

        def call(self, x, training=None):
            x = self.flat(self.conv(x))
            for block in self.blocks:
                x = block(x)
            return x

    return KerasConvNet()


def data(rng, n=6):
    return (rng.standard_normal((n, 6, 6, 2)).astype(np.float32),
            rng.standard_normal((n, 2)).astype(np.float32))


def test_layers_are_tracked_in_assignment_order():
    model = ConvNet()
    assert model.name == "conv_net" and not model.built
    assert [layer.name for layer in model.layers] == ["conv2d", "dense", "dense_1", "flatten"]
    assert model.weights == []
    model(np.zeros((1, 6, 6, 2), np.float32))
    assert model.built
    assert [v.name for v in model.weights] == [
        "conv2d/kernel:0", "conv2d/bias:0", "dense/kernel:0", "dense/bias:0",
        "dense_1/kernel:0", "dense_1/bias:0"]
    assert model.count_params() == 57 + 196 + 10
    assert ConvNet().name == "conv_net_1" and ConvNet(name="mine").name == "mine"


def test_outputs_and_training_equal_keras(keras):
    rng = np.random.default_rng(0)
    x, y = data(rng)
    model, theirs = ConvNet(), keras_conv_net(keras)
    model.build((None, 6, 6, 2))
    theirs(x[:1])
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.5
               for w in model.get_weights()]
    model.set_weights(weights)
    theirs.set_weights(weights)
    expected = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, batch_size=4), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)
    model.compile(optimizers.SGD(0.1), "mse")
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    assert model.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0),
                                                            rel=1e-5)
    assert model.train_on_batch(x, y) == pytest.approx(theirs.train_on_batch(x, y), rel=1e-5)
    for ours_w, theirs_w in zip(model.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours_w, theirs_w, rtol=1e-5, atol=1e-6)
    history = model.fit(x, y, epochs=3, batch_size=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_first_call_on_data_builds_and_fit_trains():
    model = ConvNet()
    x, y = data(np.random.default_rng(1))
    model.compile(optimizers.Adam(1e-2), "mse")
    loss = model.fit(x, y, epochs=5, batch_size=6, verbose=0).history["loss"]
    assert model.built and loss[-1] < loss[0]
    assert model.predict(x).shape == (6, 2)


SUMMARY = """\
Model: "conv_net"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
conv2d (Conv2D)              multiple                  57        
_________________________________________________________________
dense (Dense)                multiple                  196       
_________________________________________________________________
dense_1 (Dense)              multiple                  10        
_________________________________________________________________
flatten (Flatten)            multiple                  0         
_________________________________________________________________
spare (Dense)                multiple                  0 (unused)
=================================================================
Total params: 263
Trainable params: 263
Non-trainable params: 0
_________________________________________________________________"""


def test_summary_after_build_shows_multiple_as_tf24():
    model = ConvNet()
    model.spare = Dense(7, name="spare")  # tracked but never called
    with pytest.raises(ValueError, match="This model has not yet been built"):
        model.summary()
    model.build((None, 6, 6, 2))
    captured = []
    model.summary(print_fn=captured.append)
    assert captured == SUMMARY.split("\n")


class Branchy(fastconv.Model):
    """Keras' guide pattern: a Python branch on `training`."""

    def __init__(self):
        super().__init__()
        self.dense = Dense(3)
        self.extra = Dense(3, kernel_initializer="ones", bias_initializer="ones")

    def call(self, inputs, training=False):
        x = self.dense(inputs)
        if training:
            x = self.extra(x)
        return x


def test_call_is_traced_for_each_training_value():
    model = Branchy()
    x = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    inference = model(x)
    np.testing.assert_allclose(inference, x @ model.dense.kernel.numpy(), rtol=1e-6, atol=1e-6)
    assert not model.extra.built  # call(training=False) never reached it
    training = model.forward(x, training=True)
    np.testing.assert_allclose(training, inference @ np.ones((3, 3)) + 1, rtol=1e-5)
    model.compile(optimizers.SGD(0.1), "mse")
    before = model.extra.get_weights()
    model.fit(x, np.zeros((4, 3), np.float32), verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.extra.get_weights()))

    # Nested in a functional model, its training branch's layer trains from the first step.
    nested = Branchy()
    inputs = Input((5,))
    outer = Model(inputs, nested(inputs))
    assert not nested.extra.built
    outer.compile(optimizers.SGD(0.1), "mse")
    outer.train_on_batch(x, np.zeros((4, 3), np.float32))
    assert not np.array_equal(nested.extra.kernel.numpy(), np.ones((3, 3)))  # it was trained


class _Scale(Layer):
    """A custom layer computing with NumPy/fastconv.ops: y = relu(x) * w."""

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), "ones")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        relu = np.maximum(inputs, 0)
        return relu * self.w.numpy(), relu

    def backward(self, d_outputs, relu, compute_dx=True):
        dx = ops.relu_backward(d_outputs * self.w.numpy(), relu) if compute_dx else None
        return dx, [np.sum(d_outputs * relu, axis=0)]


class WithCustomLayer(fastconv.Model):
    def __init__(self):
        super().__init__(dtype="float64")
        self.first = Dense(3, dtype="float64")
        self.scale = _Scale(dtype="float64")
        self.last = Dense(1, dtype="float64")

    def call(self, x):
        return self.last(self.scale(self.first(x)))


def test_custom_layers_carry_what_ops_compute_and_gradients_flow():
    rng = np.random.default_rng(3)
    model = WithCustomLayer()
    x = rng.standard_normal((5, 2))
    model.build((None, 2))
    model.set_weights([rng.standard_normal(w.shape) for w in model.get_weights()])
    out = model.forward(x)
    grads = model.backward(np.ones_like(out))
    h = 1e-6
    for variable, grad in zip(model.trainable_weights, grads):
        value = variable.numpy()
        numeric = np.empty_like(value)
        for index in np.ndindex(value.shape):
            saved = value[index]
            value[index] = saved + h
            up = model(x).sum()
            value[index] = saved - h
            down = model(x).sum()
            value[index] = saved
            numeric[index] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9, err_msg=variable.name)


class TwoInputs(fastconv.Model):
    def __init__(self):
        super().__init__()
        self.left, self.right, self.add = Dense(2), Dense(2), Add()

    def call(self, inputs):
        a, b = inputs
        return self.add([self.left(a), self.right(b)])


def test_several_inputs_and_nesting_in_a_functional_model():
    model = TwoInputs()
    a, b = np.ones((3, 4), np.float32), np.ones((3, 5), np.float32)
    out = model([a, b])
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, model.left(a) + model.right(b), rtol=1e-6)
    net = ConvNet()
    inputs = Input((6, 6, 2))
    outer = Model(inputs, Dense(1, name="head")(net(inputs)))
    assert outer.output_shape == (None, 1) and net.built
    captured = []
    outer.summary(print_fn=captured.append)
    assert captured[4:9] == [
        "input_1 (InputLayer)         [(None, 6, 6, 2)]         0         ",
        "_" * 65,
        "conv_net (ConvNet)           (None, 2)                 263       ",
        "_" * 65,
        "head (Dense)                 (None, 1)                 3         "]


def test_frozen_layer_and_weight_files(tmp_path):
    model = ConvNet()
    x, y = data(np.random.default_rng(4))
    model.build((None, 6, 6, 2))
    model.conv.trainable = False
    frozen = model.conv.get_weights()
    model.compile(optimizers.SGD(0.1), "mse")
    model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, model.conv.get_weights()))
    path = tmp_path / "net.npz"
    model.save_weights(path)
    other = ConvNet()
    other.build((None, 6, 6, 2))
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def test_built_with_unknown_sizes_runs_on_any_size():
    class FullyConv(fastconv.Model):
        def __init__(self):
            super().__init__()
            self.conv = Conv2D(2, 3, padding="same")

        def call(self, x):
            return self.conv(x)

    model = FullyConv()
    model.build((None, None, None, 1))
    assert model(np.zeros((1, 5, 7, 1), np.float32)).shape == (1, 5, 7, 2)
    assert model(np.zeros((2, 9, 4, 1), np.float32)).shape == (2, 9, 4, 2)


# ---------------------------------------------------------------------------
# What is refused, and how


def test_missing_super_init_is_keras_runtime_error():
    class Forgetful(fastconv.Model):
        def __init__(self):
            self.dense = Dense(2)

    with pytest.raises(RuntimeError, match=r"forgot to call `super\(YourClass, "
                                           r"self\).__init__\(\)`"):
        Forgetful()

    class Silent(fastconv.Model):
        def __init__(self):
            self.units = 3

        def call(self, x):
            return x

    with pytest.raises(RuntimeError, match="forgot to call"):
        Silent()(np.zeros((1, 3), np.float32))


def test_call_must_be_implemented():
    with pytest.raises(NotImplementedError, match="you should implement a `call` method"):
        fastconv.Model()(np.zeros((1, 3), np.float32))


@pytest.mark.parametrize("body,match", [
    (lambda self, x: self.dense(x) if x > 0 else x, "'>' not supported"),
    (lambda self, x: self.dense(np.tanh(x)), "Cannot convert a symbolic KerasTensor"),
    (lambda self, x: ops.relu_backward(self.dense(x), x), "could not be traced"),
    (lambda self, x: self.dense(x).reshape((-1, 2)), "has no attribute 'reshape'"),
])
def test_what_cannot_be_traced_says_so(body, match):
    class Untraceable(fastconv.Model):
        def __init__(self):
            super().__init__()
            self.dense = Dense(2)

        call = body

    with pytest.raises((TypeError, AttributeError), match=match) as info:
        Untraceable()(np.ones((2, 3), np.float32))
    assert "could not be traced on symbolic inputs" in str(info.value)
    assert "Python branches on tensor values" in str(info.value)


def test_layers_with_weights_must_be_attributes():
    class MakesLayersInCall(fastconv.Model):
        def call(self, x):
            return Dense(2, name="hidden")(Flatten()(x))

    with pytest.raises(ValueError, match="uses layer hidden, which has weights but is not an "
                                         "attribute of the model"):
        MakesLayersInCall()(np.ones((2, 3), np.float32))

    class WeightlessInCall(ConvNet):
        def call(self, x, training=None):
            return Flatten()(super().call(x))  # a new weightless layer per trace: fine

    assert WeightlessInCall()(np.ones((2, 6, 6, 2), np.float32)).shape == (2, 2)


def test_wrong_rank_and_returns():
    model = ConvNet()
    model.build((None, 6, 6, 2))
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        model.predict(np.zeros((6, 6, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected shape=\(None, 6, 6, 2\), found shape"):
        model(np.zeros((1, 7, 7, 2), np.float32))

    class ReturnsArray(fastconv.Model):
        def call(self, x):
            return 3

    with pytest.raises(TypeError, match="call\\(\\) must return the output of a layer call"):
        ReturnsArray()(np.ones((1, 2), np.float32))
    with pytest.raises(TypeError, match="needs both `inputs` and `outputs`"):
        fastconv.Model(inputs=Input((2,)))
