"""A plain ReLU that is a BatchNormalization's only reader is applied in the
batch norm's own pass (Graph._relus_after_batch_norm): training and
inference through the graph must give the two-pass results bit for bit, and
only such pairs may be fused."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from fastconv import backend
from fastconv.layers import (Activation, Add, BatchNormalization, Conv2D, Dense,
                             GlobalAveragePooling2D, Input, ReLU)
from fastconv.models import Model

from conftest import graph_index_emptied


def _build(kind):
    backend.clear_session()
    inp = Input((8, 8, 3))
    x = BatchNormalization()(Conv2D(8, 3, padding="same")(inp))
    if kind == "activation relu":
        x = Activation("relu")(x)
    elif kind == "ReLU layer":
        x = ReLU()(x)
    elif kind == "channels first":   # (the first batch norm is read by a Conv2D)
        x = Conv2D(6, 3, padding="same", data_format="channels_first")(x)
        x = ReLU()(BatchNormalization(axis=1)(x))
    elif kind == "relu6":
        x = ReLU(max_value=6)(x)
    elif kind == "leaky":
        x = ReLU(negative_slope=0.1)(x)
    elif kind == "read twice":
        x = Add()([Activation("relu")(x), x])
    else:
        raise AssertionError(kind)
    out = Dense(4, activation="softmax")(GlobalAveragePooling2D()(x))
    model = Model(inp, out)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _train(model, weights, x, y, fused):
    model.set_weights(weights)
    with graph_index_emptied(model._graph, "_relus_after_batch_norm", not fused) as graph:
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        # the graph's own inference run (no plan: it folds the batch norms)
        outputs, _ = graph.run([x], False, record=False)
    return model.get_weights(), outputs[0]


@pytest.mark.parametrize("kind,pairs", [("activation relu", 1), ("ReLU layer", 1),
                                        ("channels first", 1), ("relu6", 0), ("leaky", 0),
                                        ("read twice", 0)])
def test_training_is_the_two_pass_one_bit_for_bit(rng, kind, pairs):
    model = _build(kind)
    roles = sorted(model._graph._relus_after_batch_norm.values())
    assert roles == ["batch_norm"] * pairs + ["relu"] * pairs
    weights = model.get_weights()
    x = rng.standard_normal((8, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    fused, fused_out = _train(model, weights, x, y, True)
    two_pass, two_pass_out = _train(model, weights, x, y, False)
    for a, b in zip(fused + [fused_out], two_pass + [two_pass_out]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, w) for a, w in zip(fused, weights))   # it trained


def test_an_output_batch_norm_is_not_fused():
    backend.clear_session()
    inp = Input((4, 4, 2))
    bn = BatchNormalization()(Conv2D(3, 1)(inp))
    model = Model(inp, [bn, Activation("relu")(bn)])
    assert model._graph._relus_after_batch_norm == {}


def test_the_index_survives_a_pickle():
    model = _build("ReLU layer")
    copy = pickle.loads(pickle.dumps(model))
    assert sorted(copy._graph._relus_after_batch_norm.values()) == ["batch_norm", "relu"]
