"""Top-k accuracies, MSE/MAE, Precision, Recall and AUC: running results over
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
         ("Recall", dict(thresholds=0.7), "multi"),
         ("Precision", dict(thresholds=[0.2, 0.5, 0.3]), "multi"),
         ("Precision", dict(top_k=2), "multi"),
         ("Precision", dict(top_k=2, class_id=1, thresholds=0.4), "multi"),
         ("Recall", dict(thresholds=[0.0, 0.9, 1.0]), "multi"),
         ("Recall", dict(top_k=1), "onehot"),
         ("AUC", {}, "multi"),
         ("AUC", dict(curve="PR"), "multi"),
         ("AUC", dict(curve="PR", summation_method="minoring", num_thresholds=20), "multi"),
         ("AUC", dict(summation_method="majoring", num_thresholds=7), "multi"),
         ("AUC", dict(multi_label=True), "multi"),
         ("AUC", dict(multi_label=True, curve="PR",
                      label_weights=[0.5, 1.0, 0.0, 2.0, 1.0]), "multi"),
         ("AUC", dict(label_weights=[0.5, 1.0, 0.0, 2.0, 1.0]), "multi"),
         ("AUC", dict(thresholds=[0.25, 0.5, 0.75]), "onehot")]


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
        expected = np.asarray(theirs.result(), dtype=np.float64)
        result = ours.result()
        assert np.shape(result) == expected.shape
        np.testing.assert_allclose(result, expected, rtol=2e-6, atol=1e-7)
    assert ours.name == theirs.name
    ours.reset_state()
    assert np.all(np.asarray(ours.result()) == 0.0)


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
                  metrics=["acc", "Precision", metrics.Recall(name="rec"), "mae", "AUC"])
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    assert sorted(history.history) == sorted(
        ["loss", "acc", "precision", "rec", "mae", "auc", "val_loss", "val_acc",
         "val_precision", "val_rec", "val_mae", "val_auc"])
    with pytest.raises(ValueError, match="`top_k`"):
        metrics.Precision(top_k=0)
    with pytest.raises(ValueError, match="`thresholds`"):
        metrics.Recall(thresholds=[0.2, 1.5])
    with pytest.raises(ValueError, match="`curve`"):
        metrics.AUC(curve="DET")
    with pytest.raises(ValueError, match="`num_thresholds`"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match=r"predictions must be in \[0, 1\]"):
        metrics.AUC().update_state([1.0, 0.0], [1.5, 0.2])
    auc = metrics.AUC(multi_label=True)
    auc.update_state(np.eye(3)[[0, 1]], np.full((2, 3), 0.3))
    with pytest.raises(ValueError, match="labels"):
        auc.update_state(np.eye(4)[[0, 1]], np.full((2, 4), 0.3))


def test_one_weight_per_row_covers_the_row_as_in_keras():
    keras = import_keras()
    values = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    weights = np.array([1.0, 3.0], np.float32)
    ours, theirs = metrics.Mean(), keras.metrics.Mean()
    ours.update_state(values, sample_weight=weights)
    theirs.update_state(values, sample_weight=weights)
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-6)
    with pytest.raises(ValueError, match="does not fit values of shape"):
        metrics.Mean().update_state(values, sample_weight=np.ones(3))
