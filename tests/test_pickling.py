"""pickle, cloudpickle and copy.deepcopy of models: the copy predicts, evaluates
and trains bitwise as the original (its optimizer state included), for
functional, Sequential, nested and subclassed models, and holds each weight
once."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from fastconv import backend
from fastconv.layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                             MaxPooling2D)
from fastconv.models import Model, Sequential


def _pickle(obj):
    return pickle.loads(pickle.dumps(obj))


def _cloudpickle(obj):
    cloudpickle = pytest.importorskip("cloudpickle")
    return cloudpickle.loads(cloudpickle.dumps(obj))


COPIES = {"pickle": _pickle, "cloudpickle": _cloudpickle, "deepcopy": copy.deepcopy}


def _functional():
    inputs = Input((8, 8, 1))
    x = MaxPooling2D()(BatchNormalization()(Conv2D(4, 3, padding="same",
                                                   activation="relu")(inputs)))
    x = Dropout(0.3)(Flatten()(x))
    return Model(inputs, Dense(3, activation="softmax")(x))


def _sequential():
    return Sequential([Input((8, 8, 1)), Conv2D(3, 3, activation="relu"), Flatten(),
                       Dropout(0.2, seed=4), Dense(3, activation="softmax")])


def _nested():
    inner = Sequential([Input((8, 8, 1)), Conv2D(4, 3, activation="relu"), Flatten()],
                       name="features")
    inputs = Input((8, 8, 1))
    return Model(inputs, Dense(3, activation="softmax")(inner(inputs)))


class Net(Model):
    def __init__(self):
        super().__init__()
        self.conv = Conv2D(4, 3, activation="relu")
        self.flat = Flatten()
        self.drop = Dropout(0.25)
        self.out = Dense(3, activation="softmax")

    def call(self, inputs, training=None):
        return self.out(self.drop(self.flat(self.conv(inputs)), training=training))


MODELS = {"functional": _functional, "sequential": _sequential, "nested": _nested,
          "subclassed": Net}


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 8, 8, 1)).astype(np.float32)
    return x, (x[:, 0, 0, 0] > 0).astype(np.int64) + (x[:, 1, 1, 0] > 0.5)


def _trained(kind):
    backend.set_random_seed(0)
    model = MODELS[kind]()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return model


def _one_more_epoch(model):
    backend.set_random_seed(7)            # the same dropout masks and shuffles for both
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return model.get_weights(), history.history


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_a_copy_predicts_evaluates_and_trains_bitwise_as_the_original(kind, how):
    original = _trained(kind)
    duplicate = COPIES[how](original)
    x, y = _data()
    np.testing.assert_array_equal(duplicate.predict(x), original.predict(x))
    np.testing.assert_array_equal(duplicate(x).numpy(), original(x).numpy())
    assert duplicate.evaluate(x, y, verbose=0) == original.evaluate(x, y, verbose=0)
    assert duplicate.optimizer.iterations == original.optimizer.iterations == 3
    # The moments came along (not a fresh state with the old step count).
    for v_dup, v_orig in zip(duplicate.trainable_variables, original.trainable_variables):
        np.testing.assert_array_equal(duplicate.optimizer.get_slot(v_dup.numpy(), "m"),
                                      original.optimizer.get_slot(v_orig.numpy(), "m"))
    weights_dup, history_dup = _one_more_epoch(duplicate)
    weights_orig, history_orig = _one_more_epoch(original)
    assert history_dup == history_orig
    for a, b in zip(weights_dup, weights_orig):
        np.testing.assert_array_equal(a, b)


def test_the_copy_is_independent_of_the_original():
    original = _trained("functional")
    duplicate = _pickle(original)
    before = [w.copy() for w in original.get_weights()]
    _one_more_epoch(duplicate)
    for a, b in zip(before, original.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_pickle_holds_each_weight_once():
    backend.set_random_seed(0)
    inputs = Input((64,))
    shared = Dense(64)                    # one layer called twice: its weights once
    model = Model(inputs, Dense(10, activation="softmax")(shared(shared(inputs))))
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
    model.fit(x, np.arange(16) % 10, verbose=0)
    weight_bytes = sum(w.nbytes for w in model.get_weights())
    slot_bytes = 2 * sum(v.numpy().nbytes for v in model.trainable_variables)   # Adam: m, v
    size = len(pickle.dumps(model))
    assert weight_bytes + slot_bytes <= size < 1.1 * (weight_bytes + slot_bytes) + 60_000


def test_an_unbuilt_and_an_uncompiled_model_copy_too():
    net = _pickle(Net())
    x, _ = _data()
    assert net.predict(x[:2]).shape == (2, 3)
    model = copy.deepcopy(_functional())
    assert model.predict(x[:2]).shape == (2, 3)
