"""``Embedding``: lookups, the scatter-add gradient, Keras 2.4's shapes and config.

Keras 3 (torch backend) is the oracle for outputs, gradients and parameter
counts with the same weights; configs and summaries are Keras 2.4's.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fastconv
from fastconv import backend, constraints, ops
from fastconv.layers import Dense, Embedding, Flatten, Input
from fastconv.models import Model, Sequential

os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason="Keras 3 is the optional oracle")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="Keras 3's torch backend is the oracle")


def rel_err(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected))
                 / max(float(np.max(np.abs(expected))), 1e-30))


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "int16"])
def test_lookup_equals_keras3_for_any_integer_dtype(keras, rng, dtype):
    layer, klayer = Embedding(11, 4), keras.layers.Embedding(11, 4)
    indices = rng.integers(0, 11, (3, 2, 5)).astype(dtype)   # rank 3: any rank works
    y = layer(indices)
    klayer.build((None, 2, 5))
    klayer.set_weights(layer.get_weights())
    assert y.dtype == np.float32 and y.shape == (3, 2, 5, 4)
    np.testing.assert_array_equal(y, klayer(indices).detach().numpy())
    np.testing.assert_array_equal(y, layer.get_weights()[0][indices])


@pytest.mark.parametrize("ops_backend", ["c", "numpy"])
def test_a_model_holding_it_trains_like_keras3(keras, torch, rng, ops_backend):
    # Input -> Embedding -> Conv1D -> Flatten -> Dense, int32 indices with repeats.
    ops.set_backend(ops_backend)

    def build(keras_like):   # fastconv stands in for keras: the same script builds both
        inputs = keras_like.Input((6,), dtype="int32")
        x = keras_like.layers.Embedding(7, 3)(inputs)
        x = keras_like.layers.Conv1D(4, 3, activation="tanh")(x)
        outputs = keras_like.layers.Dense(2)(keras_like.layers.Flatten()(x))
        return keras_like.Model(inputs, outputs)

    model, kmodel = build(fastconv), build(keras)
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)
    kmodel.set_weights(weights)
    indices = rng.integers(0, 7, (4, 6)).astype(np.int32)
    assert len(np.unique(indices)) < indices.size  # repeated rows must add up

    np.testing.assert_allclose(model.predict(indices),
                               kmodel(indices, training=False).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    y_keras = kmodel(torch.tensor(indices), training=True)
    g = rng.standard_normal(tuple(y_keras.shape)).astype(np.float32)
    (y_keras * torch.tensor(g)).sum().backward()
    y = model.forward(indices, training=True)
    grads, (d_indices,) = model.backward(g, input_gradients=True)
    assert rel_err(y, y_keras.detach().numpy()) <= 1e-5
    assert not np.any(d_indices)   # indices are not differentiable
    for grad, kvar in zip(grads, kmodel.trainable_weights):
        assert rel_err(grad, kvar.value.grad.numpy()) <= 1e-5, kvar.path
    # Rows never looked up get no gradient.
    unused = sorted(set(range(7)) - set(indices.ravel().tolist()))
    assert not np.any(grads[0][unused])


def test_gradient_is_a_scatter_add_over_the_indices(rng):
    layer = Embedding(5, 3)
    layer.build((None, 3))
    indices = np.array([[0, 3, 3], [3, 1, 0]])
    _, cache = layer.forward(indices)
    dy = rng.standard_normal((2, 3, 3)).astype(np.float32)
    dx, (grad,) = layer.backward(dy, cache)
    expected = np.zeros((5, 3), np.float32)
    for (i, j), row in np.ndenumerate(indices):
        expected[row] += dy[i, j]
    assert dx is None
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


def test_params_equal_keras3(keras):
    model = Sequential([Embedding(1000, 64, input_length=10)])
    klayer = keras.layers.Embedding(1000, 64)
    klayer.build((None, 10))
    assert model.count_params() == model.layers[0].count_params() == klayer.count_params()
    assert [v.name for v in model.layers[0].weights] == ["embedding/embeddings:0"]
    assert klayer.weights[0].name == "embeddings"


def test_float_indices_are_truncated_as_keras_casts_them(keras):
    layer, klayer = Embedding(5, 2), keras.layers.Embedding(5, 2)
    indices = np.array([[1.7, 2.2, 4.9, -0.5]], np.float32)
    y = layer(indices)
    klayer.build((None, 4))
    klayer.set_weights(layer.get_weights())
    table = layer.get_weights()[0]
    np.testing.assert_array_equal(y[0], table[[1, 2, 4, 0]])
    np.testing.assert_array_equal(y, klayer(indices).detach().numpy())


def test_large_int64_indices_are_not_rounded_through_float32():
    # 2**24 + 1 is not a float32: a cast to the layer's dtype would read row 2**24.
    row = 2**24 + 1
    layer = Embedding(row + 1, 1, embeddings_initializer="zeros")
    layer.build((None, 1))
    layer.embeddings.numpy()[row] = 7.0
    assert layer(np.array([[row]], np.int64))[0, 0, 0] == 7.0


def test_integer_inputs_in_a_model():
    inputs = Input((3,), dtype="int64")
    model = Model(inputs, Embedding(4, 2)(inputs))
    assert repr(inputs.dtype) == "tf.int64"
    table = model.get_weights()[0]
    np.testing.assert_array_equal(model.predict(np.array([[3, 0, 2]])), table[[[3, 0, 2]]])


@pytest.mark.parametrize("indices,message", [
    (np.array([[0, 5]]), r"indices must be in \[0, 5\) \(input_dim=5\), got 5"),
    (np.array([[-1, 2]]), r"indices must be in \[0, 5\) \(input_dim=5\), got -1"),
    (np.array([[2.0, 7.5]]), r"indices must be in \[0, 5\) \(input_dim=5\), got 7"),
    (np.array([[np.nan]]), "indices must be finite"),
])
def test_out_of_range_indices_raise(indices, message):
    layer = Embedding(5, 2, name="words")
    with pytest.raises(ValueError, match=r"Layer words \(Embedding\): " + message):
        layer(indices)


def test_out_of_range_indices_in_a_model_name_the_model_and_layer():
    model = Sequential([Embedding(5, 2, input_length=2)])
    with pytest.raises(ValueError, match=r"Layer embedding \(Embedding\) of model sequential.*"
                                         r"got 9"):
        model.predict(np.array([[1, 9]]))


def test_non_numeric_indices_are_refused():
    with pytest.raises(TypeError, match="must hold real numbers"):
        Embedding(5, 2)(np.array([["a", "b"]]))


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(input_dim=0, output_dim=2), ValueError, "Both `input_dim` and `output_dim` should be "
                                                  "positive, found input_dim 0 and output_dim 2"),
    (dict(input_dim=3, output_dim=-1), ValueError, "found input_dim 3 and output_dim -1"),
    (dict(input_dim=2.5, output_dim=2), TypeError, "`input_dim` must be a positive integer"),
    (dict(input_dim=3, output_dim="4"), TypeError, "`output_dim` must be a positive integer"),
    (dict(input_dim=3, output_dim=2, embeddings_initializer="nope"), ValueError,
     "Unknown initializer: nope"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        Embedding(**kwargs)


# ---------------------------------------------------------------------------
# Shapes, config, summary

def test_output_shapes(keras):
    assert Embedding(9, 4).compute_output_shape((None, 7)) == (None, 7, 4)
    klayer = keras.layers.Embedding(9, 4)
    assert tuple(klayer.compute_output_shape((None, 7))) == (None, 7, 4)
    assert Embedding(9, 4, input_length=7).compute_output_shape((None, None)) == (None, 7, 4)
    assert Embedding(9, 4, input_length=(2, None)).compute_output_shape(
        (None, 2, 5)) == (None, 2, 5, 4)
    with pytest.raises(ValueError, match=r'"input_length" is 7, but received input has shape '
                                         r"\(None, 6\)"):
        Embedding(9, 4, input_length=7)(Input((6,)))
    with pytest.raises(ValueError, match='"input_length" is 7'):
        Embedding(9, 4, input_length=7).compute_output_shape((None, 2, 7))


def test_it_always_has_an_input_shape_so_sequential_builds_at_once():
    # Keras 2.4's rule (Keras 3 dropped input_length and this default).
    model = Sequential([Embedding(50, 8)])
    assert model.built and model.inputs[0].shape == (None, None)
    assert model.inputs[0].name == "embedding_input"
    assert model.predict(np.array([[1, 2, 3]])).shape == (1, 3, 8)
    assert Sequential([Embedding(50, 8, input_length=4)]).output_shape == (None, 4, 8)


def test_config_is_keras_24s_and_round_trips():
    layer = Embedding(100, 8, mask_zero=False, input_length=12,
                      embeddings_constraint="Constraint")
    config = layer.get_config()
    assert config == {
        "name": "embedding", "trainable": True, "dtype": "float32",
        "batch_input_shape": (None, 12), "input_dim": 100, "output_dim": 8,
        "embeddings_initializer": {"class_name": "RandomUniform",
                                   "config": {"minval": -0.05, "maxval": 0.05, "seed": None}},
        "embeddings_regularizer": None, "activity_regularizer": None,
        "embeddings_constraint": {"class_name": "Constraint", "config": {}},
        "mask_zero": False, "input_length": 12,
    }
    clone = Embedding.from_config(config)
    assert clone.get_config() == config
    assert Embedding(3, 2).get_config()["batch_input_shape"] == (None, None)
    layer.build((None, 12))
    assert isinstance(layer.embeddings.constraint, constraints.Constraint)


def test_default_initializer_is_keras_uniform():
    layer = Embedding(200, 50)
    layer.build((None, 3))
    table = layer.get_weights()[0]
    assert table.shape == (200, 50) and np.abs(table).max() <= 0.05
    assert table.std() > 0.02   # U(-0.05, 0.05) has std 0.0289


def test_mask_zero_gives_a_mask_and_warns_that_models_ignore_it():
    with pytest.warns(UserWarning, match="fastconv models do not propagate masks"):
        layer = Embedding(5, 2, mask_zero=True)
    indices = np.array([[3, 0, 1, 0]])
    np.testing.assert_array_equal(layer.compute_mask(indices), [[True, False, True, False]])
    assert layer.supports_masking and layer.get_config()["mask_zero"] is True
    assert Embedding(5, 2).compute_mask(indices) is None


def test_summary_rows():
    model = Sequential([Embedding(1000, 64, input_length=10), Flatten(), Dense(1)])
    lines = []
    model.summary(print_fn=lines.append)
    rule = "_" * 65
    assert lines == [
        'Model: "sequential"', rule,
        "Layer (type)                 Output Shape              Param #   ", "=" * 65,
        "embedding (Embedding)        (None, 10, 64)            64000     ", rule,
        "flatten (Flatten)            (None, 640)               0         ", rule,
        "dense (Dense)                (None, 1)                 641       ", "=" * 65,
        "Total params: 64,641", "Trainable params: 64,641", "Non-trainable params: 0", rule,
    ]


def test_fit_learns_through_the_lookup(rng):
    backend.set_random_seed(0)
    model = Sequential([Embedding(20, 4, input_length=3), Flatten(), Dense(1)])
    model.compile("adam", "mse")
    x = rng.integers(0, 20, (64, 3))
    y = (x[:, :1] % 2).astype(np.float32)
    before = model.evaluate(x, y, verbose=0)
    table_before = model.get_weights()[0].copy()
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    assert not np.array_equal(model.get_weights()[0], table_before)
