"""Models inside models (tf.keras 2.4 semantics): a Model or Sequential called on
a KerasTensor is one node of the outer graph, its weights are the outer model's,
runs go forward and back through it; freezing, the transfer-learning flow,
feature extraction from another model's tensors, and nested summary rows.
Compared with Keras 3 (torch backend) for outputs and training steps."""
from __future__ import annotations

import os
from typing import List

import numpy as np
import pytest

from fastconv import backend, optimizers, regularizers
from fastconv.layers import Concatenate, Conv2D, Dense, Flatten, Input, KerasTensor, Layer
from fastconv.models import Model, Sequential

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


def conv_base(name="base", trainable=True):
    inputs = Input((6, 6, 2))
    features = Flatten()(Conv2D(3, 3, activation="relu")(inputs))
    return Model(inputs, features, name=name, trainable=trainable)


def with_head(base, **call_kwargs):
    inputs = Input((6, 6, 2))
    return Model(inputs, Dense(2)(base(inputs, **call_kwargs)))


def keras_pair(keras):
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(3, 3, activation="relu")
    base = keras.Model(inputs, keras.layers.Flatten()(conv(inputs)), name="base")
    outer_inputs = keras.Input((6, 6, 2))
    return base, keras.Model(outer_inputs, keras.layers.Dense(2)(base(outer_inputs)))


def data(rng, n=6):
    return (rng.standard_normal((n, 6, 6, 2)).astype(np.float32),
            rng.standard_normal((n, 2)).astype(np.float32))


def same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------
# A nested model is a node; its weights are the outer model's


def test_nested_model_is_one_node_holding_its_weights():
    base = conv_base()
    model = with_head(base)
    assert [layer.name for layer in model.layers] == ["input_2", "base", "dense"]
    assert type(base).__name__ == "Functional" and isinstance(base, Model)
    node = base._inbound_nodes[0]
    assert node.inbound[0] is model.inputs[0] and node.output.shape == (None, 48)
    head = model.get_layer("dense")
    assert [v.name for v in model.weights] == [
        "conv2d/kernel:0", "conv2d/bias:0", "dense/kernel:0", "dense/bias:0"]
    assert all(a is b for a, b in zip(model.weights, base.weights + head.weights))
    assert model.count_params() == base.count_params() + head.count_params() == 57 + 98
    weights = [np.full(w.shape, i, np.float32) for i, w in enumerate(model.get_weights())]
    model.set_weights(weights)
    assert same_weights(base.get_weights(), weights[:2])
    # TF 2.4's Functional answers from its own tensors, whatever its calls.
    assert base.output_shape == (None, 48) and base.input_shape == (None, 6, 6, 2)
    assert base.output is base.outputs[0]


def test_outputs_and_one_training_step_equal_keras(keras):
    rng = np.random.default_rng(0)
    model = with_head(conv_base())
    theirs_base, theirs = keras_pair(keras)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.5
               for w in model.get_weights()]
    model.set_weights(weights)
    theirs.set_weights(weights)
    x, y = data(rng)
    np.testing.assert_allclose(model.predict(x), theirs.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    model.compile(optimizers.SGD(0.1), "mse")
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    assert model.train_on_batch(x, y) == pytest.approx(theirs.train_on_batch(x, y), rel=1e-5)
    for ours_w, theirs_w in zip(model.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours_w, theirs_w, rtol=1e-5, atol=1e-6)


def test_sequential_in_sequential_trains_as_keras(keras):
    rng = np.random.default_rng(1)
    inner = Sequential([Dense(5, activation="tanh", input_shape=(4,),
                              activity_regularizer=regularizers.l2(0.05))], name="inner")
    model = Sequential([inner, Dense(3)])
    assert model.built and model.inputs[0].name == "inner_input"
    k_inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        5, activation="tanh", activity_regularizer=keras.regularizers.L2(0.05))])
    theirs = keras.Sequential([keras.Input((4,)), k_inner, keras.layers.Dense(3)])
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)
    theirs.set_weights(weights)
    x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 3))
    model.compile(optimizers.SGD(0.05), "mse")
    theirs.compile(keras.optimizers.SGD(0.05), "mse")
    # The nested layer's activity penalty is part of the outer model's loss.
    assert model.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0),
                                                            rel=1e-5)
    assert model.train_on_batch(x, y) == pytest.approx(theirs.train_on_batch(x, y), rel=1e-5)
    for ours_w, theirs_w in zip(model.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours_w, theirs_w, rtol=1e-5, atol=1e-6)


def test_a_shared_nested_model_sums_its_gradients():
    """One encoder called on two inputs: its weight gradient is the sum over
    both calls, checked against finite differences in float64."""
    rng = np.random.default_rng(2)
    enc_in = Input((3,), dtype="float64")
    encoder = Model(enc_in, Dense(2, activation="tanh", dtype="float64")(enc_in), name="enc")
    a, b = Input((3,), dtype="float64"), Input((3,), dtype="float64")
    model = Model([a, b], Dense(1, dtype="float64")(
        Concatenate(dtype="float64")([encoder(a), encoder(b)])))
    model.set_weights([rng.standard_normal(w.shape) for w in model.get_weights()])
    xa, xb = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    out = model.forward([xa, xb])
    grads, (dxa, dxb) = model.backward(np.ones_like(out), input_gradients=True)
    h = 1e-6

    def numeric(array):
        result = np.empty_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + h
            up = model([xa, xb]).sum()
            array[index] = saved - h
            down = model([xa, xb]).sum()
            array[index] = saved
            result[index] = (up - down) / (2 * h)
        return result

    for variable, grad in zip(model.trainable_weights, grads):
        np.testing.assert_allclose(grad, numeric(variable.numpy()), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dxa, numeric(xa), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dxb, numeric(xb), rtol=1e-6, atol=1e-9)


def test_calls_on_other_shapes_follow_the_layers():
    inputs = Input((None, None, 2))
    fully_conv = Model(inputs, Conv2D(4, 3)(inputs), name="fcn")
    outer_in = Input((10, 8, 2))
    outer = Model(outer_in, fully_conv(outer_in))
    assert outer.output_shape == (None, 8, 6, 4)
    assert fully_conv.compute_output_shape((None, 5, 5, 2)) == (None, 3, 3, 4)
    assert outer.count_macs() == 8 * 6 * 4 * 3 * 3 * 2
    assert outer(np.zeros((1, 10, 8, 2), np.float32)).shape == (1, 8, 6, 4)
    with pytest.raises(ValueError, match=r"Layer conv2d \(Conv2D\) cannot be applied"):
        fully_conv(Input((2, 2, 2)))


# ---------------------------------------------------------------------------
# Freezing: trainable=False, read when training is set up (TF 2.4)


def test_frozen_nested_model_keeps_its_weights_and_the_head_trains():
    base = conv_base()
    model = with_head(base)
    base.trainable = False
    assert all(not layer.trainable for layer in base.layers)
    assert model.trainable_weights == model.get_layer("dense").trainable_weights
    assert [v.name for v in model.non_trainable_weights] == ["conv2d/kernel:0", "conv2d/bias:0"]
    x, y = data(np.random.default_rng(3))
    frozen, head = base.get_weights(), model.get_layer("dense").get_weights()
    backward_calls = []
    real = base._backward_node
    base._backward_node = lambda *args: backward_calls.append(1) or real(*args)
    model.compile(optimizers.SGD(0.1), "mse")
    model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    assert same_weights(base.get_weights(), frozen)
    assert not same_weights(model.get_layer("dense").get_weights(), head)
    # Right after the Input, a frozen base needs no backward pass at all.
    assert backward_calls == []


def test_trainable_is_read_when_the_train_function_is_made():
    """TF 2.4 fixes the trained variables when fit first makes its train
    function after compile: a change after that needs a recompile; one made
    between compile and the first fit counts; run_eagerly reads it every step."""
    x, y = data(np.random.default_rng(4))
    base = conv_base()
    model = with_head(base)
    model.compile(optimizers.SGD(0.1), "mse")
    model.fit(x, y, verbose=0)
    base.trainable = False
    before = base.get_weights()
    model.fit(x, y, verbose=0)
    assert not same_weights(base.get_weights(), before)  # still the old train function
    model.compile(optimizers.SGD(0.1), "mse")
    before = base.get_weights()
    model.fit(x, y, verbose=0)
    assert same_weights(base.get_weights(), before)

    base.trainable = True  # after compile, before the first fit: counts
    model.compile(optimizers.SGD(0.1), "mse")
    base.trainable = False
    before = base.get_weights()
    model.fit(x, y, verbose=0)
    assert same_weights(base.get_weights(), before)

    model.compile(optimizers.SGD(0.1), "mse", run_eagerly=True)
    model.train_on_batch(x, y)
    base.trainable = True
    before = base.get_weights()
    model.train_on_batch(x, y)
    assert not same_weights(base.get_weights(), before)


class _ModeRecorder(Layer):
    """Identity that records the `training` flag of every call it runs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.modes: List[bool] = []

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        self.modes.append(bool(training))
        return inputs, None

    def backward(self, d_outputs, cache, compute_dx=True):
        return (d_outputs if compute_dx else None), []


def test_transfer_learning_flow():
    """Keras' guide: freeze the base, call it with training=False, train the
    head; unfreeze, recompile with a small learning rate, fine-tune. The base
    stays in inference mode throughout (the node's training=False)."""
    rng = np.random.default_rng(5)
    base_in = Input((6, 6, 2))
    recorder = _ModeRecorder()
    base = Model(base_in, Flatten()(recorder(Conv2D(3, 3, activation="relu")(base_in))),
                 name="base")
    base.trainable = False
    inputs = Input((6, 6, 2))
    head = Dense(2)
    model = Model(inputs, head(base(inputs, training=False)))
    x, y = data(rng, n=8)

    model.compile(optimizers.Adam(1e-2), "mse")
    pretrained, head_before = base.get_weights(), head.get_weights()
    first = model.fit(x, y, epochs=3, batch_size=4, verbose=0).history["loss"]
    assert same_weights(base.get_weights(), pretrained)
    assert not same_weights(head.get_weights(), head_before)
    assert first[-1] < first[0]

    base.trainable = True
    model.compile(optimizers.Adam(1e-4), "mse")
    assert len(model.trainable_weights) == 4
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert not same_weights(base.get_weights(), pretrained)
    assert recorder.modes and not any(recorder.modes)  # inference mode in every fit step


def test_a_model_frozen_at_construction():
    base = conv_base(trainable=False)
    assert base.trainable_weights == [] and len(base.non_trainable_weights) == 2
    model = with_head(base)
    assert len(model.trainable_weights) == 2


# ---------------------------------------------------------------------------
# Feature extraction: new models over another model's tensors


def test_feature_extraction_shares_layers_and_weights():
    rng = np.random.default_rng(6)
    inputs = Input((6, 6, 2))
    conv = Conv2D(3, 3, activation="relu", name="features")
    full = Model(inputs, Dense(2)(Flatten()(conv(inputs))))
    extractor = Model(full.input, full.get_layer("features").output)
    assert extractor.get_layer("features") is conv
    assert extractor.weights[0] is conv.kernel
    x, y = data(rng)
    expected = np.maximum(0, _valid_conv(x, conv.kernel.numpy()) + conv.bias.numpy())
    np.testing.assert_allclose(extractor.predict(x), expected, rtol=1e-5, atol=1e-6)
    # Training the full model moves the extractor's outputs (same weights).
    before = extractor.predict(x)
    full.compile(optimizers.SGD(0.1), "mse")
    full.train_on_batch(x, y)
    assert not np.allclose(extractor.predict(x), before)
    # A layer's output is its first call's (TF 2.4 reads node 0).
    conv(Input((6, 6, 2)))
    assert conv.output is extractor.outputs[0]
    # A new head on an existing model's output reuses its layers (not a nested model).
    tuned = Model(full.input, Dense(1)(full.layers[-2].output))
    assert [l.name for l in tuned.layers[:-1]] == [l.name for l in full.layers[:-1]]


def _valid_conv(x, kernel):
    kh, kw = kernel.shape[:2]
    out = np.zeros((x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + out.shape[1], j:j + out.shape[2], :]
            out += np.tensordot(patch, kernel[i, j], axes=([3], [0]))
    return out


# ---------------------------------------------------------------------------
# Summary rows (written from TF 2.4's print_summary rules)


def lines_of(model):
    captured: List[str] = []
    model.summary(print_fn=captured.append)
    return captured


NESTED = """\
Model: "model"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
input_2 (InputLayer)         [(None, 6, 6, 2)]         0         
_________________________________________________________________
base (Functional)            (None, 48)                57        
_________________________________________________________________
dense (Dense)                (None, 2)                 98        
=================================================================
Total params: 155
Trainable params: {trainable}
Non-trainable params: {frozen}
_________________________________________________________________"""


def test_nested_model_is_one_summary_row():
    base = conv_base()
    model = with_head(base)
    assert lines_of(model) == NESTED.format(trainable="155", frozen="0").split("\n")
    base.trainable = False
    assert lines_of(model) == NESTED.format(trainable="98", frozen="57").split("\n")


def test_nested_sequential_row_and_shared_nested_model_in_graph_mode():
    encoder = Sequential([Dense(3, input_shape=(4,))], name="enc")
    a, b = Input((4,)), Input((4,))
    model = Model([a, b], Dense(1)(Concatenate()([encoder(a), encoder(b)])))
    expected = [
        'Model: "model"',
        "_" * 98,
        "Layer (type)                    Output Shape         Param #     Connected to"
        "                     ",
        "=" * 98,
        "input_1 (InputLayer)            [(None, 4)]          0                       "
        "                     ",
        "_" * 98,
        "input_2 (InputLayer)            [(None, 4)]          0                       "
        "                     ",
        "_" * 98,
        "enc (Sequential)                (None, 3)            15          input_1[0][0]"
        "                    ",
        "                                                                 input_2[0][0]"
        "                    ",
        "_" * 98,
        "concatenate (Concatenate)       (None, 6)            0           enc[0][0]"
        "                        ",
        "                                                                 enc[1][0]"
        "                        ",
        "_" * 98,
        "dense_1 (Dense)                 (None, 1)            7           concatenate[0][0]"
        "                ",
        "=" * 98,
        "Total params: 22",
        "Trainable params: 22",
        "Non-trainable params: 0",
        "_" * 98,
    ]
    assert lines_of(model) == expected


# ---------------------------------------------------------------------------
# Bad input


def test_bad_nested_calls():
    base = conv_base()
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        base(Input((6, 6)))
    with pytest.raises(ValueError, match=r"expected shape=\(None, 6, 6, 2\), found shape="
                                         r"\(None, 6, 6, 3\)"):
        base(Input((6, 6, 3)))
    with pytest.raises(TypeError, match="inputs mix symbolic KerasTensors and arrays"):
        base([Input((6, 6, 2)), np.zeros((1, 6, 6, 2))])
    a = Input((3,))
    two_outputs = Model(a, [Dense(1)(a), Dense(2)(a)])
    with pytest.raises(NotImplementedError, match="one output"):
        two_outputs(Input((3,)))
    with pytest.raises(TypeError, match="call it on a KerasTensor or a list"):
        base({"input_1": Input((6, 6, 2))})
    assert isinstance(base(Input((6, 6, 2))), KerasTensor)  # a failed call changed nothing


def test_nested_model_on_arrays_in_a_model_checks_the_batch():
    model = with_head(conv_base())
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        model.predict(np.zeros((6, 6, 2), np.float32))
