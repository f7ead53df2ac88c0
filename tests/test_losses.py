"""Losses: values from their formulas, gradients vs central differences, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fastconv import losses
from fastconv.losses import (binary_crossentropy, categorical_crossentropy,
                             mean_squared_error, sparse_categorical_crossentropy)

EPS = 1e-7


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def central_difference(loss_of, y_pred, h=1e-6):
    grad = np.zeros_like(y_pred)
    for index in np.ndindex(y_pred.shape):
        plus, minus = y_pred.copy(), y_pred.copy()
        plus[index] += h
        minus[index] -= h
        grad[index] = (loss_of(plus) - loss_of(minus)) / (2 * h)
    return grad


# -- values from the formulas -----------------------------------------------------


def test_sparse_and_categorical_values_on_probabilities():
    p = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    expected = -(math.log(0.7) + math.log(0.5)) / 2
    assert sparse_categorical_crossentropy([0, 2], p)[0] == pytest.approx(expected, rel=1e-12)
    assert categorical_crossentropy(np.eye(3)[[0, 2]], p)[0] == pytest.approx(expected, rel=1e-12)


def test_probabilities_are_renormalised_as_keras_does():
    # Keras divides by the row sum (categorical) or feeds log(p) to a softmax
    # (sparse); both give -log(0.2 / 0.4) = log 2 here.
    p = np.array([[0.2, 0.2]])
    assert sparse_categorical_crossentropy([0], p)[0] == pytest.approx(math.log(2), rel=1e-12)
    assert categorical_crossentropy([[1, 0]], p)[0] == pytest.approx(math.log(2), rel=1e-12)


def test_clipping_at_epsilon_and_zero_gradient_where_clipped():
    p = np.array([[0.0, 1.0]])
    loss, grad = sparse_categorical_crossentropy([0], p)
    # c = [1e-7, 1 - 1e-7]: log(sum c) - log(c_0) = -log(1e-7).
    assert loss == pytest.approx(-math.log(EPS), rel=1e-9)
    assert np.all(grad == 0)
    loss, grad = categorical_crossentropy([[1.0, 0.0]], p)
    assert loss == pytest.approx(-math.log(EPS), rel=1e-9)
    assert np.all(grad == 0)
    # Keras' binary crossentropy adds epsilon again inside the log.
    loss, grad = binary_crossentropy([[1.0]], np.array([[0.0]]))
    assert loss == pytest.approx(-math.log(EPS + EPS), rel=1e-9)
    assert np.all(grad == 0)


def test_binary_and_mse_values():
    t = np.array([[1.0, 0.0], [1.0, 1.0]])
    p = np.array([[0.9, 0.2], [0.6, 0.3]])
    per_element = -(t * np.log(p + EPS) + (1 - t) * np.log(1 - p + EPS))
    assert binary_crossentropy(t, p)[0] == pytest.approx(per_element.mean(), rel=1e-12)
    assert mean_squared_error(t, p)[0] == pytest.approx(((p - t) ** 2).mean(), rel=1e-12)
    # (n,) targets for (n, 1) predictions, and 1-D predictions: one value per sample.
    column = np.array([[0.9], [0.2], [0.6]])
    expected = np.mean([-math.log(0.9 + EPS), -math.log(0.8 + EPS), -math.log(0.6 + EPS)])
    assert binary_crossentropy([1, 0, 1], column)[0] == pytest.approx(expected, rel=1e-12)
    assert binary_crossentropy([1, 0, 1], column[:, 0])[0] == pytest.approx(expected, rel=1e-12)
    assert mean_squared_error([1, 0, 1], column)[0] == pytest.approx((0.01 + 0.04 + 0.16) / 3)


def test_sample_weight_divides_by_the_number_of_samples():
    p = np.array([[0.5, 0.5], [0.8, 0.2]])
    per_sample = np.array([math.log(2), -math.log(0.2)])
    loss, _ = sparse_categorical_crossentropy([0, 1], p, sample_weight=[2.0, 0.5])
    assert loss == pytest.approx((2.0 * per_sample[0] + 0.5 * per_sample[1]) / 2, rel=1e-12)
    loss, _ = sparse_categorical_crossentropy([0, 1], p, sample_weight=[[2.0], [0.5]])
    assert loss == pytest.approx((2.0 * per_sample[0] + 0.5 * per_sample[1]) / 2, rel=1e-12)


def test_label_smoothing():
    z = np.array([[2.0, -1.0, 0.5]])
    smoothed = np.array([[1, 0, 0]]) * 0.7 + 0.3 / 3
    expected = -np.sum(smoothed * np.log(softmax(z)))
    assert categorical_crossentropy([[1, 0, 0]], z, from_logits=True,
                                    label_smoothing=0.3)[0] == pytest.approx(expected, rel=1e-12)
    p = np.array([[0.9]])
    t = 1 * 0.8 + 0.5 * 0.2
    expected = -(t * math.log(0.9 + EPS) + (1 - t) * math.log(0.1 + EPS))
    assert binary_crossentropy([[1]], p, label_smoothing=0.2)[0] == pytest.approx(expected, rel=1e-9)


# -- gradients vs central differences (float64) ---------------------------------------


def _gradient_cases():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(5, 4)) * 2
    labels = np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4)[labels]
    soft = rng.uniform(0, 1, size=(5, 4))  # rows need not sum to 1
    unnormalised = rng.uniform(0.05, 0.9, size=(5, 4))
    p_bin = rng.uniform(0.05, 0.95, size=(5, 3))
    t_bin = rng.integers(0, 2, size=(5, 3)).astype(float)
    weights = rng.uniform(0.1, 2.0, size=5)
    z3 = rng.normal(size=(3, 2, 4))
    labels3 = rng.integers(0, 4, size=(3, 2))
    return [
        ("sparse logits", lambda y: sparse_categorical_crossentropy(labels, y, from_logits=True), z),
        ("sparse probs", lambda y: sparse_categorical_crossentropy(labels, y), softmax(z)),
        ("sparse unnormalised", lambda y: sparse_categorical_crossentropy(labels, y), unnormalised),
        ("sparse (n,1) weighted", lambda y: sparse_categorical_crossentropy(
            labels[:, None], y, from_logits=True, sample_weight=weights), z),
        ("sparse rank 3", lambda y: sparse_categorical_crossentropy(labels3, y, from_logits=True), z3),
        ("categorical logits", lambda y: categorical_crossentropy(onehot, y, from_logits=True), z),
        ("categorical soft logits", lambda y: categorical_crossentropy(soft, y, from_logits=True), z),
        ("categorical probs", lambda y: categorical_crossentropy(onehot, y), unnormalised),
        ("categorical smoothed weighted", lambda y: categorical_crossentropy(
            soft, y, label_smoothing=0.1, sample_weight=weights), unnormalised),
        ("binary probs", lambda y: binary_crossentropy(t_bin, y), p_bin),
        ("binary soft probs", lambda y: binary_crossentropy(p_bin[::-1], y), p_bin),
        ("binary logits", lambda y: binary_crossentropy(t_bin, y, from_logits=True), z[:, :3]),
        ("binary 1-D weighted", lambda y: binary_crossentropy(
            t_bin[:, 0], y, sample_weight=weights), p_bin[:, 0].copy()),
        ("binary smoothed logits", lambda y: binary_crossentropy(
            t_bin, y, from_logits=True, label_smoothing=0.2), z[:, :3]),
        ("mse", lambda y: mean_squared_error(p_bin, y), z[:, :3]),
        ("mse 1-D weighted", lambda y: mean_squared_error(
            t_bin[:, 0], y, sample_weight=weights), z[:, 0].copy()),
        ("mse (n,) vs (n,1)", lambda y: mean_squared_error(t_bin[:, 0], y), z[:, :1].copy()),
    ]


@pytest.mark.parametrize("label, loss_and_grad, y_pred", _gradient_cases(),
                         ids=[c[0] for c in _gradient_cases()])
def test_gradient_matches_central_differences(label, loss_and_grad, y_pred):
    loss, grad = loss_and_grad(y_pred)
    assert isinstance(loss, float)
    assert grad.shape == y_pred.shape and grad.dtype == np.float64
    expected = central_difference(lambda y: loss_and_grad(y)[0], y_pred)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


def test_fused_logits_gradient_is_softmax_minus_onehot_over_batch():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, 5))
    labels = rng.integers(0, 5, size=6)
    _, grad = sparse_categorical_crossentropy(labels, z, from_logits=True)
    np.testing.assert_allclose(grad, (softmax(z) - np.eye(5)[labels]) / 6, rtol=1e-12, atol=1e-15)
    _, grad = categorical_crossentropy(np.eye(5)[labels], z, from_logits=True)
    np.testing.assert_allclose(grad, (softmax(z) - np.eye(5)[labels]) / 6, rtol=1e-12, atol=1e-15)


def test_probability_path_chained_through_softmax_equals_fused_path():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(4, 3))
    labels = np.array([2, 0, 1, 1])
    p = softmax(z)
    loss_p, grad_p = sparse_categorical_crossentropy(labels, p)
    loss_z, grad_z = sparse_categorical_crossentropy(labels, z, from_logits=True)
    assert loss_p == pytest.approx(loss_z, rel=1e-12)
    # Softmax backward: dz = p * (dp - sum(dp * p)).
    chained = p * (grad_p - np.sum(grad_p * p, axis=-1, keepdims=True))
    np.testing.assert_allclose(chained, grad_z, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_are_stable(dtype):
    z = np.array([[1e4, 0.0, -1e4]], dtype=dtype)
    for label, expected in [(0, 0.0), (1, 1e4), (2, 2e4)]:
        loss, grad = sparse_categorical_crossentropy([label], z, from_logits=True)
        assert loss == pytest.approx(expected, abs=1e-6)
        assert grad.dtype == dtype
        np.testing.assert_array_equal(grad, np.array([[1, 0, 0]], dtype=dtype) - np.eye(3)[label])
    loss, grad = binary_crossentropy([[0.0, 1.0]], np.array([[1e4, -1e4]], dtype=dtype),
                                     from_logits=True)
    assert loss == pytest.approx(1e4)
    np.testing.assert_array_equal(grad, np.array([[0.5, -0.5]], dtype=dtype))
    loss, grad = binary_crossentropy([[1.0, 0.0]], np.array([[1e4, -1e4]], dtype=dtype),
                                     from_logits=True)
    assert loss == 0.0 and np.all(grad == 0)


def test_float32_in_float32_out():
    p = np.array([[0.6, 0.4]], dtype=np.float32)
    for loss, grad in [sparse_categorical_crossentropy([1], p), categorical_crossentropy([[0, 1]], p),
                       binary_crossentropy([[1, 0]], p), mean_squared_error([[1, 0]], p)]:
        assert isinstance(loss, float) and grad.dtype == np.float32


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("y_true, y_pred, match", [
    ([0, 3], np.full((2, 3), 1 / 3), r"y_true holds label 3 at index \(1,\), outside the valid "
                                     r"range \[0, 3\)"),
    ([-1, 0], np.full((2, 3), 1 / 3), r"label -1 .*range \[0, 3\)"),
    ([0.0, 1.5], np.full((2, 3), 1 / 3), "y_true must hold integer class labels, got 1.5"),
    ([0, 1, 2], np.full((2, 3), 1 / 3), r"y_true must hold integer class labels of shape \(2,\) "
                                        r"or \(2, 1\).*got shape \(3,\)"),
    (np.eye(3)[[0, 1]], np.full((2, 3), 1 / 3), "one-hot encoded: use categorical_crossentropy"),
    ([0, 1], np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]]), "pass from_logits=True"),
])
def test_sparse_errors_name_y_true_and_what_was_expected(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        sparse_categorical_crossentropy(y_true, y_pred)


def test_categorical_errors():
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"y_true must be one-hot.*\(2, 3\).*got shape \(2,\).*"
                                         "sparse_categorical_crossentropy"):
        categorical_crossentropy([0, 2], p)
    with pytest.raises(ValueError, match=r"y_true must hold targets in \[0, 1\]"):
        categorical_crossentropy([[0, 2, 0], [1, 0, 0]], p)
    with pytest.raises(ValueError, match="y_pred must hold probabilities"):
        categorical_crossentropy(np.eye(3)[[0, 1]], p * 5)


def test_binary_and_mse_errors():
    with pytest.raises(ValueError, match=r"y_true must hold targets in \[0, 1\].*sparse_"):
        binary_crossentropy([[3.0]], np.array([[0.5]]))
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 2\) but y_pred has shape \(2, 3\)"):
        binary_crossentropy(np.zeros((2, 2)), np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=r"y_true has shape \(3, 1\) but y_pred has shape \(2, 1\)"):
        mean_squared_error(np.zeros(3), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="no logits form"):
        losses.MeanSquaredError().value_and_gradient(np.zeros(2), np.zeros(2), from_logits=True)


def test_argument_type_and_weight_errors():
    with pytest.raises(TypeError, match="y_pred must be a floating-point array"):
        sparse_categorical_crossentropy([0], np.array([[1, 0]]))
    with pytest.raises(TypeError, match="y_true must be a numeric array"):
        binary_crossentropy([["a"]], np.array([[0.5]]))
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\)"):
        sparse_categorical_crossentropy([0, 1], np.full((2, 2), 0.5), sample_weight=[1, 2, 3])
    with pytest.raises(ValueError, match="no samples"):
        sparse_categorical_crossentropy(np.zeros(0, int), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)


def test_nan_predictions_give_a_nan_loss_not_an_error():
    loss, _ = binary_crossentropy([[1.0]], np.array([[np.nan]]))
    assert math.isnan(loss)


# -- objects and get() -----------------------------------------------------------------


def test_loss_objects_called_as_keras_return_the_scalar(rng):
    """``loss(y_true, y_pred)`` is Keras' reduced loss, a float;
    ``value_and_gradient`` is the pair the functional forms return."""
    p = rng.dirichlet(np.ones(4), size=6)
    labels = rng.integers(0, 4, 6)
    for loss, targets in ((losses.SparseCategoricalCrossentropy(), labels),
                          (losses.CategoricalCrossentropy(label_smoothing=0.1), np.eye(4)[labels]),
                          (losses.MeanSquaredError(), np.eye(4)[labels])):
        value = loss(targets, p)
        assert isinstance(value, float)
        pair = loss.value_and_gradient(targets, p)
        assert value == pair[0] and pair[1].shape == p.shape
    assert losses.sparse_categorical_crossentropy(labels, p)[0] == \
        losses.SparseCategoricalCrossentropy()(labels, p)


@pytest.mark.parametrize("name, cls", [
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ("SparseCategoricalCrossentropy", losses.SparseCategoricalCrossentropy),
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy),
    ("mean_squared_error", losses.MeanSquaredError), ("mse", losses.MeanSquaredError),
    ("MSE", losses.MeanSquaredError), ("MeanSquaredError", losses.MeanSquaredError),
])
def test_get_by_name(name, cls):
    assert type(losses.get(name)) is cls


def test_get_other_identifiers():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert losses.get(loss) is loss
    assert losses.get(None) is None
    from_function = losses.get(losses.categorical_crossentropy)
    assert type(from_function) is losses.CategoricalCrossentropy
    assert from_function.logits_activation == "softmax"
    assert losses.get("binary_crossentropy").logits_activation == "sigmoid"
    assert losses.get("mse").logits_activation is None
    with pytest.raises(ValueError, match="Unknown loss function: 'poisson'"):
        losses.get("poisson")
    with pytest.raises(ValueError, match="Could not interpret"):
        losses.get(42)


def test_loss_object_from_logits_override_and_per_sample():
    z = np.array([[3.0, 0.0], [0.0, 3.0]])
    loss = losses.get("sparse_categorical_crossentropy")
    fused = loss.value_and_gradient([0, 0], z, from_logits=True)[0]
    expected = -(np.log(softmax(z))[0, 0] + np.log(softmax(z))[1, 0]) / 2
    assert fused == pytest.approx(expected, rel=1e-12)
    per_sample = loss.per_sample([0, 1], softmax(z))
    np.testing.assert_allclose(per_sample, [-np.log(softmax(z))[0, 0]] * 2, rtol=1e-12)
    assert loss.get_config() == {"name": "sparse_categorical_crossentropy", "from_logits": False}


def test_custom_loss_must_return_value_and_gradient():
    def half_sum(y_true, y_pred):
        return float(np.sum(y_pred)) / 2, np.full_like(y_pred, 0.5)

    custom = losses.get(half_sum)
    assert custom.name == "half_sum"
    assert custom(None, np.ones((2, 2))) == 2.0          # called as Keras: the scalar
    value, grad = custom.value_and_gradient(None, np.ones((2, 2)))
    assert value == 2.0 and np.array_equal(grad, np.full((2, 2), 0.5))
    bad = losses.get(lambda y_true, y_pred: 1.0)
    with pytest.raises(TypeError, match="must return"):
        bad(None, np.ones(2))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("loss, targets, to_logits, activation, value_rtol", [
    (losses.SparseCategoricalCrossentropy(), np.array([2, 0, 1, 3]), None, softmax, 1e-12),
    (losses.CategoricalCrossentropy(), np.eye(4)[[2, 0, 1, 3]], None, softmax, 1e-12),
    (losses.CategoricalCrossentropy(label_smoothing=0.2), np.eye(4)[[2, 0, 1, 3]], None, softmax,
     1e-12),
    # Keras' probability BCE adds epsilon inside the logs: values differ by ~1e-7.
    (losses.BinaryCrossentropy(), np.array([[1, 0, 0, 1], [0, 0, 1, 1]] * 2, float), None,
     sigmoid, 1e-6),
    (losses.BinaryCrossentropy(), np.array([1.0, 0.0, 1.0, 1.0]), lambda z: z[:, 0], sigmoid,
     1e-6),
])
def test_logits_gradient_from_probabilities_equals_fused_path(loss, targets, to_logits, activation,
                                                              value_rtol):
    z = np.random.default_rng(5).normal(size=(4, 4))
    logits = to_logits(z) if to_logits else z
    weights = np.array([0.5, 1.0, 2.0, 1.5])
    value, grad = loss.value_and_logits_gradient(targets, activation(logits), sample_weight=weights)
    fused_value, fused_grad = loss.value_and_gradient(targets, logits, sample_weight=weights,
                                                      from_logits=True)
    assert value == pytest.approx(fused_value, rel=value_rtol)
    np.testing.assert_allclose(grad, fused_grad, rtol=1e-9, atol=1e-15)


def test_logits_gradient_from_probabilities_errors():
    with pytest.raises(TypeError, match="not paired with an output activation"):
        losses.MeanSquaredError().value_and_logits_gradient([[1.0]], np.array([[0.5]]))
    with pytest.raises(ValueError, match="from_logits=True"):
        losses.SparseCategoricalCrossentropy(from_logits=True).value_and_logits_gradient(
            [0], np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="outside the valid range"):
        losses.SparseCategoricalCrossentropy().value_and_logits_gradient([2], np.array([[0.5, 0.5]]))
