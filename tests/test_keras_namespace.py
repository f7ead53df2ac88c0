"""``import fastconv as keras`` stands in for TF 2.4's ``from tensorflow import keras``.

Scripts written against ``keras.Sequential``, ``keras.layers.Conv2D``,
``keras.Input``, ``keras.Model``, ``keras.optimizers.Adam``,
``keras.backend.clear_session()``... run with that one import changed.
(That ``import fastconv`` still imports only NumPy and the compute core is
tests/test_packaging.py's.)
"""
from __future__ import annotations

import types

import numpy as np
import pytest

import fastconv as keras
from fastconv import backend, callbacks, layers, models

KERAS_MODULES = ("layers", "models", "optimizers", "losses", "metrics", "callbacks",
                 "initializers", "regularizers", "constraints", "activations", "backend",
                 "datasets", "utils", "preprocessing")
KERAS_NAMES = ("Sequential", "Model", "Input")


def _digits(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def _seed_cnn_functional():
    """The seed notebook's CNN, written the way TF 2.4 tutorials write it."""
    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Conv2D(filters=32, kernel_size=3, strides=1, padding="same",
                            activation="relu")(inputs)
    x = keras.layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(100, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def _seed_cnn_sequential():
    return keras.Sequential([
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", input_shape=(28, 28, 1)),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def test_the_seed_cnn_builds_trains_and_predicts_through_the_keras_names():
    keras.backend.clear_session()
    keras.backend.set_random_seed(0)
    model = _seed_cnn_functional()
    assert model.count_params() == 1_101_526
    assert model.summary_string().splitlines()[0] == 'Model: "model"'
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    x, y = _digits(8)
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                        callbacks=[keras.callbacks.History()])
    assert sorted(history.history) == ["loss", "sparse_categorical_accuracy"]
    assert len(history.history["loss"]) == 2
    probabilities = model.predict(x[:3])
    assert probabilities.shape == (3, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_sequential_and_functional_seed_cnns_agree():
    functional = _seed_cnn_functional()
    sequential = _seed_cnn_sequential()
    assert isinstance(sequential, keras.Model)
    assert sequential.count_params() == functional.count_params()
    sequential.set_weights(functional.get_weights())
    x, _ = _digits(2, seed=1)
    np.testing.assert_array_equal(sequential.predict(x), functional.predict(x))


def test_every_keras_name_resolves_to_fastconvs_own():
    for name in KERAS_MODULES:
        module = getattr(keras, name)
        assert isinstance(module, types.ModuleType) and module.__name__ == f"fastconv.{name}"
    assert keras.Sequential is models.Sequential
    assert keras.Model is models.Model
    assert keras.Input is layers.Input
    assert keras.preprocessing.image.__name__ == "fastconv.preprocessing.image"
    assert (keras.layers.experimental.preprocessing.__name__
            == "fastconv.layers.experimental.preprocessing")
    assert keras.utils.Progbar is callbacks.Progbar


def test_dir_and_all_list_the_keras_names():
    names = set(KERAS_MODULES) | set(KERAS_NAMES)
    assert sorted(names - set(dir(keras))) == []
    assert sorted(names - set(keras.__all__)) == []


def test_keras_backend_is_fastconvs_backend():
    assert keras.backend is backend
    assert keras.backend.floatx() == "float32"
    assert keras.backend.image_data_format() == "channels_last"
    keras.backend.clear_session()
    assert keras.layers.Dense(1).name == "dense"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="'estimator'"):
        keras.estimator  # noqa: B018 - tf.keras has it, fastconv does not
