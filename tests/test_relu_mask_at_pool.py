"""Training: the derivative of a fused ReLU right before a non-overlapping
max pooling is taken on the pooled gradient (Graph._relu_masks_at_pools,
_Pooling.backward_through_relu). The gradients must be the two-step ones
bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from fastconv import backend
from fastconv.layers import (Activation, Add, BatchNormalization, Conv2D, Dense, Flatten, Input,
                             MaxPooling2D)
from fastconv.models import Model

from conftest import graph_index_emptied


def _build(kind):
    backend.clear_session()
    inp = Input((9, 9, 3))
    if kind == "conv relu -> pool":
        x = MaxPooling2D(2)(Conv2D(16, 3, padding="same", activation="relu")(inp))
    elif kind == "bn relu -> pool same":
        x = BatchNormalization()(Conv2D(8, 3, padding="same")(inp))
        x = MaxPooling2D(2, padding="same")(Activation("relu")(x))   # 9 -> 5: clipped windows
    elif kind == "overlapping pool":
        x = MaxPooling2D(3, strides=2)(Conv2D(8, 3, activation="relu")(inp))
    elif kind == "read twice":
        c = Conv2D(8, 3, padding="same", activation="relu")(inp)
        x = MaxPooling2D(2)(c)
        x = Add()([x, MaxPooling2D(2)(c)])
    else:
        raise AssertionError(kind)
    out = Dense(4, activation="softmax")(Flatten()(x))
    model = Model(inp, out)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _one_step(model, weights, x, y, moved):
    model.set_weights(weights)
    with graph_index_emptied(model._graph, "_relu_masks_at_pools", not moved):
        model.train_on_batch(x, y)
    return model.get_weights()


@pytest.mark.parametrize("kind,moves", [("conv relu -> pool", True),
                                        ("bn relu -> pool same", True),
                                        ("overlapping pool", False), ("read twice", False)])
def test_gradients_are_the_two_step_ones_bit_for_bit(rng, kind, moves):
    model = _build(kind)
    assert bool(model._graph._relu_masks_at_pools) == moves
    weights = model.get_weights()
    x = rng.standard_normal((6, 9, 9, 3)).astype(np.float32)
    y = rng.integers(0, 4, 6)
    moved = _one_step(model, weights, x, y, True)
    two_step = _one_step(model, weights, x, y, False)
    for a, b, w in zip(moved, two_step, weights):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, w) for a, w in zip(moved, weights))   # it trained


def test_the_plan_survives_a_pickle(rng):
    import pickle
    model = _build("conv relu -> pool")
    copy = pickle.loads(pickle.dumps(model))
    assert sorted(copy._graph._relu_masks_at_pools.values()) == ["pooling", "relu"]
