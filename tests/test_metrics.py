"""Metrics: Keras' accuracy resolution and per-epoch running means."""
from __future__ import annotations

import numpy as np
import pytest

from fastconv import metrics
from fastconv.metrics import (Mean, binary_accuracy, categorical_accuracy, resolve_accuracy,
                              sparse_categorical_accuracy)


# -- resolution of 'accuracy' ----------------------------------------------------------


@pytest.mark.parametrize("y_true_shape, y_pred_shape, expected", [
    ((32,), (32, 10), sparse_categorical_accuracy),       # rank(y_true) < rank(y_pred)
    ((32, 1), (32, 10), sparse_categorical_accuracy),     # last dim 1 vs > 1
    ((None, 1), (None, 10), sparse_categorical_accuracy),
    ((32, 10), (32, 10), categorical_accuracy),
    ((32, 1), (32, 1), binary_accuracy),                  # y_pred last dim 1
    ((32,), (32, 1), binary_accuracy),
    ((32, 3), (32, 3), categorical_accuracy),             # multi-label is *not* binary in Keras
    ((4, 5, 5), (4, 5, 5, 3), sparse_categorical_accuracy),
])
def test_accuracy_resolution_follows_keras_rule(y_true_shape, y_pred_shape, expected):
    assert resolve_accuracy(y_true_shape, y_pred_shape) is expected
    metric = metrics.get("accuracy", y_true_shape, y_pred_shape)
    assert metric.fn is expected and metric.name == "accuracy"


def test_crossentropy_resolution():
    assert metrics.get("ce", (8,), (8, 3)).fn.__name__ == "sparse_categorical_crossentropy"
    assert metrics.get("crossentropy", (8, 3), (8, 3)).fn.__name__ == "categorical_crossentropy"
    assert metrics.get("crossentropy", (8, 1), (8, 1)).fn.__name__ == "binary_crossentropy"


def test_accuracy_resolves_lazily_from_the_first_batch_and_keeps_its_name():
    metric = metrics.get("acc")
    assert metric.name == "acc"
    y_pred = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    metric.update_state(np.array([1, 1, 1]), y_pred)
    assert metric.fn is sparse_categorical_accuracy
    assert metric.result() == pytest.approx(2 / 3)
    metric.reset_state()
    assert metric.fn is sparse_categorical_accuracy and metric.result() == 0.0


# -- per-sample functions ---------------------------------------------------------------


def test_sparse_categorical_accuracy_values():
    y_pred = np.array([[0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    np.testing.assert_array_equal(sparse_categorical_accuracy([1, 1, 2], y_pred), [1, 0, 1])
    # (n, 1) labels and float labels, as Keras accepts.
    np.testing.assert_array_equal(sparse_categorical_accuracy([[1.0], [0.0], [2.0]], y_pred),
                                  [1, 1, 1])
    assert sparse_categorical_accuracy([1, 1, 2], y_pred).dtype == np.float32
    with pytest.raises(ValueError, match="looks one-hot"):
        sparse_categorical_accuracy(np.eye(3), y_pred)


def test_categorical_and_binary_accuracy_values():
    y_pred = np.array([[0.1, 0.6, 0.3], [0.5, 0.4, 0.1]])
    np.testing.assert_array_equal(categorical_accuracy([[0, 1, 0], [0, 1, 0]], y_pred), [1, 0])
    with pytest.raises(ValueError, match="one-hot"):
        categorical_accuracy([1, 1], y_pred)
    probs = np.array([[0.7], [0.5], [0.2], [0.51]])
    # 0.5 is not above the threshold.
    np.testing.assert_array_equal(binary_accuracy([1, 1, 0, 1], probs), [1, 0, 1, 1])
    np.testing.assert_array_equal(binary_accuracy([[1], [0], [0], [0]], probs, threshold=0.6),
                                  [1, 1, 1, 1])
    # Several outputs per sample: the fraction correct per sample.
    np.testing.assert_allclose(binary_accuracy([[1, 0], [1, 1]], np.array([[0.9, 0.8], [0.6, 0.7]])),
                               [0.5, 1.0])
    with pytest.raises(ValueError, match=r"y_true has shape \(3, 1\) but y_pred has shape \(4, 1\)"):
        binary_accuracy([1, 0, 1], probs)


# -- running means ------------------------------------------------------------------


def test_mean_weights_each_batch_loss_by_batch_size():
    # Keras' loss tracker: Mean.update_state(batch_mean_loss, sample_weight=batch_size).
    loss = Mean("loss")
    batches = [(0.9, 32), (0.6, 32), (0.3, 16)]
    running = []
    for value, size in batches:
        loss.update_state(value, sample_weight=size)
        running.append(loss.result())
    assert running[0] == pytest.approx(0.9)
    assert running[1] == pytest.approx((0.9 * 32 + 0.6 * 32) / 64)
    assert running[2] == pytest.approx((0.9 * 32 + 0.6 * 32 + 0.3 * 16) / 80)
    # Not the plain mean of the batch values.
    assert running[2] != pytest.approx(np.mean([0.9, 0.6, 0.3]))


def test_running_accuracy_is_total_correct_over_total_seen():
    metric = metrics.SparseCategoricalAccuracy()
    # Batch 1: 4 samples, all right; batch 2 (partial): 2 samples, both wrong.
    metric.update_state([0, 1, 0, 1], np.array([[1.0, 0], [0, 1], [1, 0], [0, 1]]))
    assert metric.result() == 1.0
    metric.update_state([0, 0], np.array([[0, 1.0], [0, 1]]))
    assert metric.result() == pytest.approx(4 / 6)  # mean of batch accuracies would be 0.5
    assert metric.name == "sparse_categorical_accuracy"


def test_mean_sample_weight_and_reset():
    mean = Mean()
    mean.update_state([1.0, 2.0, 3.0], sample_weight=[1.0, 0.0, 2.0])
    assert mean.result() == pytest.approx((1 + 6) / 3)
    mean.update_state([[4.0]], sample_weight=[[[0.5]]])
    assert mean.result() == pytest.approx((1 + 6 + 2) / 3.5)
    assert mean(np.array([5.0])) == pytest.approx((1 + 6 + 2 + 5) / 4.5)  # __call__ updates
    mean.reset_states()
    assert mean.result() == 0.0 and mean.count == 0.0
    with pytest.raises(ValueError, match="sample_weight of shape"):
        mean.update_state([1.0, 2.0], sample_weight=[1.0, 2.0, 3.0])


def test_wrapper_expands_rank_one_targets_like_keras():
    # (n,) targets with (n, 1) outputs become (n, 1): one value per sample, so
    # batches are weighted by their size.
    metric = metrics.get("accuracy", (3,), (3, 1))
    metric.update_state(np.array([1, 0, 1]), np.array([[0.9], [0.1], [0.2]]))
    metric.update_state(np.array([1]), np.array([[0.9]]))
    assert metric.result() == pytest.approx(3 / 4)


def test_binary_accuracy_with_sample_weight():
    metric = metrics.BinaryAccuracy()
    metric.update_state([1, 0, 1], np.array([[0.9], [0.9], [0.9]]), sample_weight=[1.0, 3.0, 1.0])
    assert metric.result() == pytest.approx(2 / 5)


# -- get() ---------------------------------------------------------------------------


def test_get_other_identifiers():
    mse = metrics.get("mse")
    mse.update_state([[1.0, 2.0]], np.array([[2.0, 4.0]]))
    assert mse.name == "mse" and mse.result() == pytest.approx((1 + 4) / 2)
    mae = metrics.get("mae")
    mae.update_state([[1.0, 2.0]], np.array([[2.0, 4.0]]))
    assert mae.result() == pytest.approx(1.5)
    assert type(metrics.get("CategoricalAccuracy")) is metrics.CategoricalAccuracy
    instance = metrics.BinaryAccuracy(threshold=0.3)
    assert metrics.get(instance) is instance

    def exact_match(y_true, y_pred):
        return (np.asarray(y_true) == np.asarray(y_pred)).all(axis=-1).astype(np.float32)

    custom = metrics.get(exact_match)
    assert custom.name == "exact_match"
    custom.update_state([[1, 2], [3, 4]], np.array([[1, 2], [3, 5]]))
    assert custom.result() == 0.5
    with pytest.raises(ValueError, match="Unknown metric function: 'f1'"):
        metrics.get("f1")
    with pytest.raises(ValueError, match="Could not interpret"):
        metrics.get(3)
