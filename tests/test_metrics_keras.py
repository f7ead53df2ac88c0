"""Top-k accuracies, MSE/MAE, Precision and Recall: running results over
batches (with sample weights) against Keras 3 (torch backend), whose rules
are tf.keras 2.4's, and inside a real fit."""
from __future__ import annotations

import numpy as np
import pytest

from keras_compare import import_keras

from fastconv import metrics


def _batches(rng, kind):
    out = []
    for _ in range(3):
        scores = rng.random((6, 5)).astype(np.float32)
        labels = rng.integers(0, 5, 6)
        if kind == "sparse":
            y = labels
        elif kind == "onehot":
            y = np.eye(5, dtype=np.float32)[labels]
        else:                                   # multi-label targets
            y = (rng.random((6, 5)) > 0.6).astype(np.float32)
        out.append((y, scores, rng.uniform(0.2, 2.0, 6).astype(np.float32)))
    return out


CASES = [("TopKCategoricalAccuracy", dict(k=2), "onehot"),
         ("SparseTopKCategoricalAccuracy", dict(k=3), "sparse"),
         ("MeanSquaredError", {}, "multi"),
         ("MeanAbsoluteError", {}, "multi"),
         ("Precision", {}, "multi"),
         ("Precision", dict(thresholds=0.3, class_id=2), "multi"),
         ("Recall", {}, "multi"),
         ("Recall", dict(thresholds=0.7), "multi")]


@pytest.mark.parametrize("name,kw,kind", CASES, ids=[f"{c[0]}-{i}" for i, c in
                                                     enumerate(CASES)])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_running_results_match_keras3(rng, name, kw, kind, weighted):
    keras = import_keras()
    from fastconv import backend
    keras.backend.clear_session()      # automatic names (precision, precision_1, ...)
    backend.clear_session()
    ours, theirs = getattr(metrics, name)(**kw), getattr(keras.metrics, name)(**kw)
    for y, p, w in _batches(rng, kind):
        ours.update_state(y, p, w if weighted else None)
        theirs.update_state(y, p, sample_weight=w if weighted else None)
        assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-6, abs=1e-7)
    assert ours.name == theirs.name
    ours.reset_state()
    assert ours.result() == 0.0


def test_top_k_counts_a_tie_at_the_boundary_as_in():
    scores = np.array([[0.5, 0.5, 0.1, 0.2]], np.float32)   # classes 0 and 1 tie
    assert metrics.sparse_top_k_categorical_accuracy([1], scores, k=1)[0] == 1.0
    assert metrics.sparse_top_k_categorical_accuracy([3], scores, k=2)[0] == 0.0
    with pytest.raises(ValueError, match="labels must be in"):
        metrics.sparse_top_k_categorical_accuracy([4], scores)
    with pytest.raises(ValueError, match="`k`"):
        metrics.top_k_categorical_accuracy(np.eye(4)[[0]], scores, k=0)


def test_metric_names_resolve_and_log_in_fit():
    from fastconv import backend
    backend.clear_session()
    from fastconv.layers import Dense, Input
    from fastconv.models import Model
    backend.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = (x[:, :3] > 0).astype(np.float32)
    inputs = Input((6,))
    model = Model(inputs, Dense(3, activation="sigmoid")(inputs))
    model.compile("adam", "binary_crossentropy",
                  metrics=["acc", "Precision", metrics.Recall(name="rec"), "mae"])
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    assert sorted(history.history) == sorted(
        ["loss", "acc", "precision", "rec", "mae", "val_loss", "val_acc", "val_precision",
         "val_rec", "val_mae"])
    with pytest.raises(NotImplementedError, match="top_k"):
        metrics.Precision(top_k=2)
    with pytest.raises(ValueError, match="thresholds"):
        metrics.Recall(thresholds=[0.2, 0.5])
