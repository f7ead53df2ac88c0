"""fastconv.utils: to_categorical and normalize against Keras 3 (the same
NumPy rules as tf.keras 2.4), their errors, and set_random_seed."""
from __future__ import annotations

import random

import numpy as np
import pytest

from keras_compare import import_keras

from fastconv import backend, utils


@pytest.mark.parametrize("y,num_classes", [
    ([0, 2, 1, 2], None),
    (np.array([[3], [0], [1]]), None),                # CIFAR's (N, 1) labels
    (np.array([[1, 0], [2, 2]], np.uint8), 4),
    (np.array([1.0, 0.0, 4.0]), 6),                   # whole-number floats
    (np.arange(6).reshape(2, 3, 1), None),
])
def test_to_categorical_matches_keras3(y, num_classes):
    keras = import_keras()
    got = utils.to_categorical(y, num_classes)
    want = np.asarray(keras.utils.to_categorical(y, num_classes))
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert utils.to_categorical(y, num_classes, dtype="int8").dtype == np.int8


@pytest.mark.parametrize("y,num_classes,error", [
    ([0, -1, 2], None, ">= 0"),
    ([0, 3], 3, "num_classes > 3"),
    ([0.5, 1.0], None, "whole-number"),
    (["a", "b"], None, "integer class indices"),
    ([0, 1], 0, "positive int"),
])
def test_to_categorical_refuses_what_keras_would_get_wrong(y, num_classes, error):
    with pytest.raises(ValueError, match=error):
        utils.to_categorical(y, num_classes)


# axis 0 is left out: Keras 3 turns it into -1 (`axis or -1`); tf.keras 2.4
# and fastconv normalise along axis 0 (the test below)
@pytest.mark.parametrize("axis,order", [(-1, 2), (1, 1), (2, 2)])
def test_normalize_matches_keras3(rng, axis, order):
    keras = import_keras()
    x = rng.standard_normal((4, 5, 3))
    x[1, :, :] = 0                                    # zero norms stay zero rows
    got = utils.normalize(x, axis=axis, order=order)
    want = np.asarray(keras.utils.normalize(x, axis=axis, order=order))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    norms = np.linalg.norm(got, order, axis)
    assert np.allclose(norms[norms > 0], 1.0)


def test_normalize_along_axis_0_as_tf24(rng):
    x = rng.standard_normal((4, 3))
    got = utils.normalize(x, axis=0)
    np.testing.assert_allclose(got, x / np.sqrt((x ** 2).sum(axis=0, keepdims=True)),
                               rtol=1e-12)


def test_set_random_seed_seeds_python_numpy_and_the_initializers():
    draws = []
    for _ in range(2):
        utils.set_random_seed(123)
        draws.append((random.random(), np.random.rand(), backend.global_rng().random()))
    assert draws[0] == draws[1]
    utils.set_random_seed(124)
    assert (random.random(), np.random.rand(), backend.global_rng().random()) != draws[0]
    with pytest.raises(ValueError, match="seed"):
        utils.set_random_seed(-1)
