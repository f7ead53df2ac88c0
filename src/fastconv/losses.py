"""Loss functions that return their value *and* their gradient.

Every loss function here returns ``(loss, grad)``: the mean loss over the
batch as a Python float, and the gradient of that mean with respect to
``y_pred`` (an array of ``y_pred``'s shape and floating dtype). That is what
a NumPy training loop needs; there is no autodiff to derive it later. A loss
*object* called as Keras calls one, ``loss(y_true, y_pred)``, returns the
scalar alone; its :meth:`Loss.value_and_gradient` returns the pair.

Values follow Keras 2 (tf.keras 2.4):

* The "batch" is every position but the last axis: a per-sample loss is
  computed over the last (class or feature) axis, then averaged over all
  remaining positions (Keras' ``SUM_OVER_BATCH_SIZE`` reduction). With
  ``sample_weight`` the result is ``sum(w * l) / count(l)``, as in Keras
  (the divisor is the number of samples, not the sum of the weights).
* ``from_logits=False`` means ``y_pred`` holds probabilities. Keras then
  clips them to ``[EPSILON, 1 - EPSILON]`` (``EPSILON = 1e-7``, Keras'
  ``backend.epsilon()``) before the log; the gradient is zero where the
  clip is active, as TensorFlow's gradient of ``clip_by_value`` is.

  - categorical: ``y_pred`` is first rescaled to sum to 1 over the last
    axis, then clipped, then ``-sum(y_true * log(p))``.
  - sparse categorical: clipped, then ``-log(p[y]) + log(sum(p))`` (Keras
    feeds ``log(p)`` to a softmax cross-entropy, which renormalises).
  - binary: clipped, then ``-(t log(p + eps) + (1 - t) log(1 - p + eps))``
    (Keras adds epsilon a second time inside the logs), mean over the last
    axis.

* ``from_logits=True`` is the fused, numerically stable path: ``y_pred``
  holds the pre-activation outputs ``z`` and the gradient comes out directly
  with respect to ``z``:

  - (sparse) categorical: ``log_softmax`` via the max-shifted
    log-sum-exp; gradient ``(softmax(z) * sum(t) - t) / n``, which is the
    familiar ``(softmax(z) - onehot) / n`` for labels that sum to one.
  - binary: ``max(z, 0) - z t + log1p(exp(-|z|))``; gradient
    ``(sigmoid(z) - t) / (n d)``.

  Keras 2.4 itself takes this path inside ``fit`` whenever the model's last
  layer is a softmax (or sigmoid) and the loss is the matching
  cross-entropy, whatever ``from_logits`` says, because in graph mode it
  finds the logits behind the activation op. A model can do the same: when
  ``loss.logits_activation`` names its output activation, call
  ``loss.value_and_gradient(y_true, z, from_logits=True)`` with the pre-activation ``z`` and
  skip the activation's backward pass; or, keeping only the activated
  output ``p``, call ``loss.value_and_logits_gradient(y_true, p)``, which
  computes the same logits gradient from ``p``. (Unclipped, the fused path can
  report larger losses for confidently wrong predictions than the clipped
  probability path, whose per-sample loss is at most ``-log(1e-7) ~ 16.1``.)

fastconv is stricter than Keras where Keras silently computes garbage:
labels of the wrong shape, out of range or non-integral, one-hot labels
given to the sparse loss (and the reverse), and "probabilities" outside
``[0, 1]`` (usually logits passed without ``from_logits=True``) raise
``ValueError`` naming ``y_true`` or ``y_pred``. Arrays of mismatched shapes
are never broadcast against each other; the only reshaping is Keras'
``(n,)`` vs ``(n, 1)`` matching.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

__all__ = [
    "EPSILON", "Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "BinaryCrossentropy", "MeanSquaredError", "FunctionLoss",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
    "mean_squared_error", "mse", "MSE", "get",
]

EPSILON = 1e-7
"""Keras' ``backend.epsilon()``: the clip margin for probabilities."""

# Slack allowed when checking that probabilities lie in [0, 1]: float32
# softmax/sigmoid outputs are in range, and anything slightly outside is
# clipped anyway; this only rejects values that cannot be probabilities.
_PROBABILITY_SLACK = 1e-4

LossAndGrad = Tuple[float, np.ndarray]


# ---------------------------------------------------------------------------
# Validation


def _as_prediction(y_pred: Any) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.dtype.kind != "f":
        raise TypeError(f"y_pred must be a floating-point array (float32 or float64), "
                        f"got dtype {y_pred.dtype}")
    if y_pred.ndim == 0:
        raise ValueError("y_pred must have at least one dimension (the batch), got a scalar")
    return y_pred


def _as_numeric(y_true: Any) -> np.ndarray:
    y_true = np.asarray(y_true)
    if y_true.dtype.kind not in "biuf":
        raise TypeError(f"y_true must be a numeric array, got dtype {y_true.dtype}")
    return y_true


def _match_rank(y_true: np.ndarray, y_pred: np.ndarray, loss_name: str) -> np.ndarray:
    """Keras' ``(n,)`` vs ``(n, 1)`` matching, then require equal shapes (also
    used by :mod:`fastconv.metrics`)."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., np.newaxis]
    elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{loss_name}: y_true has shape {y_true.shape} but y_pred has shape "
                         f"{y_pred.shape}; they must match")
    return y_true


def _check_probabilities(y_pred: np.ndarray, loss_name: str) -> None:
    if y_pred.size == 0:
        return
    low, high = float(np.min(y_pred)), float(np.max(y_pred))
    # NaN compares False: a diverged model reports a NaN loss, as in Keras.
    if low < -_PROBABILITY_SLACK or high > 1 + _PROBABILITY_SLACK:
        raise ValueError(
            f"{loss_name}: y_pred must hold probabilities in [0, 1] when from_logits=False, "
            f"got values in [{low:.4g}, {high:.4g}]. If y_pred are logits (no softmax/sigmoid "
            "on the output), pass from_logits=True.")


def _check_targets_in_unit_interval(y_true: np.ndarray, loss_name: str, hint: str) -> None:
    if y_true.size == 0:
        return
    low, high = float(np.min(y_true)), float(np.max(y_true))
    if not (0 <= low and high <= 1):
        raise ValueError(f"{loss_name}: y_true must hold targets in [0, 1], got values in "
                         f"[{low:.4g}, {high:.4g}]. {hint}")


def _check_smoothing(label_smoothing: float) -> float:
    label_smoothing = float(label_smoothing)
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"`label_smoothing` must be in [0, 1], got {label_smoothing!r}")
    return label_smoothing


def _sparse_labels(y_true: Any, y_pred: np.ndarray) -> np.ndarray:
    """Integer class indices of shape ``y_pred.shape[:-1]``, validated."""
    name = "sparse_categorical_crossentropy"
    y_true = _as_numeric(y_true)
    batch_shape, n_classes = y_pred.shape[:-1], y_pred.shape[-1]
    if y_true.shape == batch_shape + (1,):
        y_true = y_true[..., 0]
    elif y_true.shape != batch_shape:
        hint = ""
        if y_true.shape == y_pred.shape:
            hint = (" It looks one-hot encoded: use categorical_crossentropy, or pass "
                    "y_true.argmax(-1).")
        raise ValueError(f"{name}: y_true must hold integer class labels of shape "
                         f"{batch_shape} or {batch_shape + (1,)} for y_pred of shape "
                         f"{y_pred.shape}, got shape {y_true.shape}.{hint}")
    if y_true.dtype.kind == "f":
        bad = ~np.isfinite(y_true) | (y_true != np.round(y_true))
        if np.any(bad):
            position = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name}: y_true must hold integer class labels, got "
                             f"{y_true[position].item()!r} at index {position}")
    labels = y_true.astype(np.int64)
    out_of_range = (labels < 0) | (labels >= n_classes)
    if np.any(out_of_range):
        position = tuple(int(i) for i in np.argwhere(out_of_range)[0])
        raise ValueError(f"{name}: y_true holds label {labels[position]} at index {position}, "
                         f"outside the valid range [0, {n_classes}) for y_pred with "
                         f"{n_classes} classes on its last axis")
    return labels


def _reduce(per_sample: np.ndarray, grad: Optional[np.ndarray],
            sample_weight: Any) -> Tuple[float, Optional[np.ndarray]]:
    """Mean over the per-sample losses (SUM_OVER_BATCH_SIZE) and scale the gradient.

    ``grad`` holds the gradient of each per-sample loss with respect to its
    own row of ``y_pred``; the mean divides it by the number of samples.
    """
    count = per_sample.size
    if count == 0:
        raise ValueError("y_pred holds no samples; cannot average a loss over an empty batch")
    if sample_weight is None:
        loss = float(np.sum(per_sample, dtype=np.float64)) / count
        if grad is not None:
            grad *= grad.dtype.type(1.0 / count)
        return loss, grad
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.ndim == per_sample.ndim + 1 and weights.shape[-1] == 1:
        weights = weights[..., 0]
    try:
        weights = np.broadcast_to(weights, per_sample.shape)
    except ValueError:
        raise ValueError(f"sample_weight of shape {np.shape(sample_weight)} does not fit the "
                         f"per-sample losses of shape {per_sample.shape}") from None
    loss = float(np.sum(per_sample * weights)) / count
    if grad is not None:
        # One weight per sample, spread over the sample's row of y_pred.
        scale = (weights / count).astype(grad.dtype)
        grad *= scale.reshape(per_sample.shape + (1,) * (grad.ndim - per_sample.ndim))
    return loss, grad


# ---------------------------------------------------------------------------
# Per-sample losses and their gradients (the gradient is that of each
# per-sample loss with respect to its own row of y_pred; None if not wanted)


def _clip_bounds(dtype: np.dtype) -> Tuple[np.floating, np.floating]:
    # In y_pred's dtype, as TF computes them (float32: 1 - 1e-7 == 0.99999988).
    eps = dtype.type(EPSILON)
    return eps, dtype.type(1) - eps


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _categorical_terms(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool,
                       need_grad: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    if from_logits:
        log_probs = _log_softmax(y_pred)
        per_sample = -np.sum(y_true * log_probs, axis=-1)
        if not need_grad:
            return per_sample, None
        # d/dz of -sum(t * log_softmax(z)) = softmax(z) * sum(t) - t.
        grad = np.exp(log_probs) * np.sum(y_true, axis=-1, keepdims=True) - y_true
        return per_sample, grad
    total = np.sum(y_pred, axis=-1, keepdims=True)
    scaled = y_pred / total
    low, high = _clip_bounds(y_pred.dtype)
    clipped = np.clip(scaled, low, high)
    per_sample = -np.sum(y_true * np.log(clipped), axis=-1)
    if not need_grad:
        return per_sample, None
    inside = (scaled >= low) & (scaled <= high)
    d_scaled = np.where(inside, -y_true / clipped, 0).astype(y_pred.dtype)
    # Through q = p / sum(p): dL/dp_j = (dL/dq_j - sum_k dL/dq_k q_k) / sum(p).
    grad = (d_scaled - np.sum(d_scaled * scaled, axis=-1, keepdims=True)) / total
    return per_sample, grad


def _sparse_terms(labels: np.ndarray, y_pred: np.ndarray, from_logits: bool,
                  need_grad: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    index = labels[..., np.newaxis]
    if from_logits:
        log_probs = _log_softmax(y_pred)
        per_sample = -np.take_along_axis(log_probs, index, axis=-1)[..., 0]
        if not need_grad:
            return per_sample, None
        grad = np.exp(log_probs)
        np.put_along_axis(grad, index, np.take_along_axis(grad, index, axis=-1) - 1, axis=-1)
        return per_sample, grad
    low, high = _clip_bounds(y_pred.dtype)
    clipped = np.clip(y_pred, low, high)
    total = np.sum(clipped, axis=-1, keepdims=True)
    picked = np.take_along_axis(clipped, index, axis=-1)
    per_sample = (np.log(total) - np.log(picked))[..., 0]
    if not need_grad:
        return per_sample, None
    # L = log(sum c) - log(c_y): dL/dc_j = 1/sum(c) - [j == y] / c_y.
    grad = np.broadcast_to(1 / total, y_pred.shape).astype(y_pred.dtype)
    np.put_along_axis(grad, index, np.take_along_axis(grad, index, axis=-1) - 1 / picked,
                      axis=-1)
    grad[(y_pred < low) | (y_pred > high)] = 0
    return per_sample, grad


def _binary_terms(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool,
                  need_grad: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    width = y_pred.shape[-1]
    if from_logits:
        # TF's sigmoid_cross_entropy_with_logits: no overflow for any z.
        elementwise = (np.maximum(y_pred, 0) - y_pred * y_true
                       + np.log1p(np.exp(-np.abs(y_pred))))
        per_sample = np.mean(elementwise, axis=-1)
        if not need_grad:
            return per_sample, None
        exp_neg_abs = np.exp(-np.abs(y_pred))
        sigmoid = np.where(y_pred >= 0, 1 / (1 + exp_neg_abs), exp_neg_abs / (1 + exp_neg_abs))
        return per_sample, (sigmoid - y_true) / y_pred.dtype.type(width)
    eps = y_pred.dtype.type(EPSILON)
    low, high = _clip_bounds(y_pred.dtype)
    clipped = np.clip(y_pred, low, high)
    elementwise = -(y_true * np.log(clipped + eps) + (1 - y_true) * np.log(1 - clipped + eps))
    per_sample = np.mean(elementwise, axis=-1)
    if not need_grad:
        return per_sample, None
    grad = (-(y_true / (clipped + eps)) + (1 - y_true) / (1 - clipped + eps)) / width
    grad[(y_pred < low) | (y_pred > high)] = 0
    return per_sample, grad.astype(y_pred.dtype, copy=False)


def _squared_error_terms(y_true: np.ndarray, y_pred: np.ndarray,
                         need_grad: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    diff = y_pred - y_true
    per_sample = np.mean(diff * diff, axis=-1)
    if not need_grad:
        return per_sample, None
    return per_sample, diff * y_pred.dtype.type(2.0 / y_pred.shape[-1])


# ---------------------------------------------------------------------------
# Loss objects


class Loss:
    """A loss that computes its mean value and its gradient.

    Calling a loss, ``loss(y_true, y_pred, sample_weight=None)``, returns the
    mean loss (a float), as a Keras loss object does;
    :meth:`value_and_gradient` returns ``(mean_loss, grad_wrt_y_pred)``.

    Attributes
    ----------
    name : str
        Keras' name for the loss (``'categorical_crossentropy'``, ...).
    from_logits : bool
        Whether ``y_pred`` is taken as logits by default.
    logits_activation : str or None
        The output activation this loss can be fused with (``'softmax'``,
        ``'sigmoid'``), or None. A model whose last activation has this name
        may pass the pre-activation values with ``from_logits=True``.
    """

    logits_activation: Optional[str] = None

    def __init__(self, name: str, from_logits: bool = False) -> None:
        self.name = name
        self.from_logits = bool(from_logits)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        """The mean loss over the batch (Keras' ``SUM_OVER_BATCH_SIZE``)."""
        return self.value_and_gradient(y_true, y_pred, sample_weight)[0]

    def value_and_gradient(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *,
                           from_logits: Optional[bool] = None) -> LossAndGrad:
        """Mean loss over the batch and its gradient with respect to ``y_pred``.

        Parameters
        ----------
        y_true : array_like
            Targets (see each loss for the expected shape and values).
        y_pred : ndarray, floating
            Predictions: probabilities, or logits when ``from_logits``.
        sample_weight : array_like, optional
            One weight per sample (broadcastable to ``y_pred.shape[:-1]``).
        from_logits : bool, optional
            Overrides :attr:`from_logits` for this call (used by a model that
            fuses the output activation into the loss).

        Returns
        -------
        loss : float
        grad : ndarray of y_pred's shape and dtype
        """
        logits = self.from_logits if from_logits is None else bool(from_logits)
        per_sample, grad = self._terms(y_true, y_pred, logits, need_grad=True)
        loss, grad = _reduce(per_sample, grad, sample_weight)
        assert grad is not None
        return loss, grad

    def per_sample(self, y_true: Any, y_pred: Any, *,
                   from_logits: Optional[bool] = None) -> np.ndarray:
        """Loss of each sample (shape ``y_pred.shape[:-1]``), without gradient."""
        logits = self.from_logits if from_logits is None else bool(from_logits)
        return self._terms(y_true, y_pred, logits, need_grad=False)[0]

    def value_and_logits_gradient(self, y_true: Any, probabilities: Any,
                                  sample_weight: Any = None) -> LossAndGrad:
        """Loss of an activated output, and its gradient *before* the activation.

        For a model whose output layer applies :attr:`logits_activation` and
        that keeps only the probabilities ``p``: the loss of ``p`` (Keras'
        clipped probability formula), and the gradient with respect to the
        layer's pre-activation ``z``, computed from ``p`` without the
        activation's Jacobian: ``(p * sum(t) - t) / n`` for softmax (``p -
        onehot`` per sample for one-hot targets), ``(p - t) / (n * d)`` for
        sigmoid. Feed it to ``model.backward(grad, pre_activation=True)``.

        The value equals ``loss(y_true, z)`` of a ``from_logits=True`` loss unless a
        probability falls below the clip margin ``EPSILON``, where the clipped
        value is smaller (for binary cross-entropy Keras also adds ``EPSILON``
        inside the logs, a relative difference of about 1e-7); the gradient
        is exact.

        Raises
        ------
        TypeError
            If the loss has no fusable activation (``logits_activation`` is None).
        ValueError
            If the loss was built with ``from_logits=True``.
        """
        if self.logits_activation is None:
            raise TypeError(f"{self.name} is not paired with an output activation; use "
                            "loss(y_true, y_pred) and the activation's own backward")
        if self.from_logits:
            raise ValueError(f"{self.name} was built with from_logits=True, so it expects the "
                             "logits themselves: call loss(y_true, logits)")
        per_sample, grad = self._terms(y_true, probabilities, False, need_grad=True,
                                       logits_grad=True)
        loss, grad = _reduce(per_sample, grad, sample_weight)
        assert grad is not None
        return loss, grad

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _terms(self, y_true: Any, y_pred: Any, from_logits: bool, need_grad: bool,
               logits_grad: bool = False) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Per-sample losses and the gradient of each with respect to its own
        row of ``y_pred`` (or, with ``logits_grad``, of the pre-activation)."""
        raise NotImplementedError


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot (or soft) targets ``y_true`` of ``y_pred``'s shape.

    Parameters
    ----------
    from_logits : bool, default False
    label_smoothing : float, default 0
        Targets become ``y_true * (1 - s) + s / n_classes``, as in Keras.
    name : str, default 'categorical_crossentropy'
    """

    logits_activation = "softmax"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 name: str = "categorical_crossentropy") -> None:
        super().__init__(name, from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    def _terms(self, y_true, y_pred, from_logits, need_grad, logits_grad=False):
        name = "categorical_crossentropy"
        y_pred = _as_prediction(y_pred)
        y_true = _as_numeric(y_true)
        if y_true.shape != y_pred.shape:
            hint = ""
            if y_true.shape in (y_pred.shape[:-1], y_pred.shape[:-1] + (1,)):
                hint = (" It looks like integer class labels: use "
                        "sparse_categorical_crossentropy, or one-hot encode them.")
            raise ValueError(f"{name}: y_true must be one-hot (or soft) targets of y_pred's "
                             f"shape {y_pred.shape}, got shape {y_true.shape}.{hint}")
        _check_targets_in_unit_interval(
            y_true, name, "For integer class labels use sparse_categorical_crossentropy.")
        if not from_logits:
            _check_probabilities(y_pred, name)
        y_true = y_true.astype(y_pred.dtype)
        if self.label_smoothing:
            s = self.label_smoothing
            y_true = y_true * (1 - s) + s / y_pred.shape[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            if logits_grad:
                per_sample = _categorical_terms(y_true, y_pred, False, need_grad=False)[0]
                return per_sample, y_pred * np.sum(y_true, axis=-1, keepdims=True) - y_true
            return _categorical_terms(y_true, y_pred, from_logits, need_grad)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy for integer class labels ``y_true`` of shape ``y_pred.shape[:-1]``.

    Labels may also have a trailing axis of 1, and may be floats holding
    integers (Keras casts them; non-integral values are rejected here).

    Parameters
    ----------
    from_logits : bool, default False
    name : str, default 'sparse_categorical_crossentropy'
    """

    logits_activation = "softmax"

    def __init__(self, from_logits: bool = False,
                 name: str = "sparse_categorical_crossentropy") -> None:
        super().__init__(name, from_logits)

    def _terms(self, y_true, y_pred, from_logits, need_grad, logits_grad=False):
        y_pred = _as_prediction(y_pred)
        labels = _sparse_labels(y_true, y_pred)
        if not from_logits:
            _check_probabilities(y_pred, "sparse_categorical_crossentropy")
        if logits_grad:
            per_sample = _sparse_terms(labels, y_pred, False, need_grad=False)[0]
            grad = y_pred.copy()
            index = labels[..., np.newaxis]
            np.put_along_axis(grad, index, np.take_along_axis(grad, index, axis=-1) - 1, axis=-1)
            return per_sample, grad
        return _sparse_terms(labels, y_pred, from_logits, need_grad)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy for targets in ``[0, 1]`` of ``y_pred``'s shape.

    ``(n,)`` targets for ``(n, 1)`` predictions (and the reverse) are
    matched, as in Keras. The per-sample loss is the mean over the last axis.

    Parameters
    ----------
    from_logits : bool, default False
    label_smoothing : float, default 0
        Targets become ``y_true * (1 - s) + s / 2``, as in Keras.
    name : str, default 'binary_crossentropy'
    """

    logits_activation = "sigmoid"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 name: str = "binary_crossentropy") -> None:
        super().__init__(name, from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    def _terms(self, y_true, y_pred, from_logits, need_grad, logits_grad=False):
        name = "binary_crossentropy"
        y_pred = _as_prediction(y_pred)
        if y_pred.ndim == 1:  # one prediction per sample
            y_pred = y_pred[:, np.newaxis]
            per_sample, grad = self._terms(y_true, y_pred, from_logits, need_grad, logits_grad)
            return per_sample, None if grad is None else grad[:, 0]
        y_true = _match_rank(_as_numeric(y_true), y_pred, name)
        _check_targets_in_unit_interval(
            y_true, name, "For integer class labels with a softmax output use "
            "sparse_categorical_crossentropy.")
        if not from_logits:
            _check_probabilities(y_pred, name)
        y_true = y_true.astype(y_pred.dtype)
        if self.label_smoothing:
            y_true = y_true * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if logits_grad:
            per_sample = _binary_terms(y_true, y_pred, False, need_grad=False)[0]
            return per_sample, (y_pred - y_true) / y_pred.dtype.type(y_pred.shape[-1])
        return _binary_terms(y_true, y_pred, from_logits, need_grad)


class MeanSquaredError(Loss):
    """Mean squared error: per sample ``mean((y_pred - y_true)**2, axis=-1)``.

    Parameters
    ----------
    name : str, default 'mean_squared_error'
    """

    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(name, from_logits=False)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name}

    def value_and_gradient(self, y_true, y_pred, sample_weight=None, *, from_logits=None):
        if from_logits:
            raise ValueError("mean_squared_error has no logits form; from_logits must be "
                             "False or None")
        return super().value_and_gradient(y_true, y_pred, sample_weight)

    def _terms(self, y_true, y_pred, from_logits, need_grad, logits_grad=False):
        y_pred = _as_prediction(y_pred)
        if y_pred.ndim == 1:
            y_pred = y_pred[:, np.newaxis]
            per_sample, grad = self._terms(y_true, y_pred, from_logits, need_grad)
            return per_sample, None if grad is None else grad[:, 0]
        y_true = _match_rank(_as_numeric(y_true), y_pred, "mean_squared_error")
        return _squared_error_terms(y_true.astype(y_pred.dtype), y_pred, need_grad)


class FunctionLoss(Loss):
    """Wrap a user function ``fn(y_true, y_pred) -> (mean_loss, grad)``.

    fastconv has no autodiff, so a custom loss must return its gradient with
    respect to ``y_pred`` itself (unlike a Keras custom loss, which returns
    per-sample values only).
    """

    def __init__(self, fn: Callable[..., LossAndGrad], name: Optional[str] = None) -> None:
        super().__init__(name or getattr(fn, "__name__", type(fn).__name__))
        self.fn = fn

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "fn": self.fn}

    def value_and_gradient(self, y_true, y_pred, sample_weight=None, *, from_logits=None):
        if from_logits:
            raise ValueError(f"custom loss {self.name!r} cannot be fused with an activation")
        if sample_weight is None:
            result = self.fn(y_true, y_pred)
        else:
            result = self.fn(y_true, y_pred, sample_weight=sample_weight)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"custom loss {self.name!r} must return (mean_loss, grad_wrt_y_pred), "
                            f"got {type(result).__name__}")
        loss, grad = result
        grad = np.asarray(grad)
        if grad.shape != np.shape(y_pred):
            raise ValueError(f"custom loss {self.name!r} returned a gradient of shape "
                             f"{grad.shape} for y_pred of shape {np.shape(y_pred)}")
        return float(loss), grad

    def per_sample(self, y_true, y_pred, *, from_logits=None):
        raise NotImplementedError(f"custom loss {self.name!r} only provides its mean")


# ---------------------------------------------------------------------------
# Functional forms


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                             label_smoothing: float = 0.0,
                             sample_weight: Any = None) -> LossAndGrad:
    """Categorical cross-entropy: ``(mean loss, d loss / d y_pred)``.

    Parameters
    ----------
    y_true : array_like of y_pred's shape
        One-hot (or soft) targets in ``[0, 1]``.
    y_pred : ndarray of shape (..., n_classes), floating
        Probabilities, or logits if ``from_logits``.
    from_logits : bool, default False
        Fused softmax + cross-entropy; the gradient is then with respect to
        the logits.
    label_smoothing : float, default 0
    sample_weight : array_like, optional
        Per-sample weights.

    Returns
    -------
    loss : float
    grad : ndarray of y_pred's shape and dtype

    Raises
    ------
    ValueError
        If ``y_true``'s shape differs from ``y_pred``'s (with a hint when it
        looks like integer labels), targets leave ``[0, 1]``, or
        ``y_pred`` is not probabilities while ``from_logits=False``.
    """
    return CategoricalCrossentropy(from_logits, label_smoothing).value_and_gradient(
        y_true, y_pred, sample_weight)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                                    sample_weight: Any = None) -> LossAndGrad:
    """Sparse categorical cross-entropy: ``(mean loss, d loss / d y_pred)``.

    Parameters
    ----------
    y_true : array_like of shape y_pred.shape[:-1] (or with a trailing 1)
        Integer class labels in ``[0, n_classes)``.
    y_pred : ndarray of shape (..., n_classes), floating
        Probabilities, or logits if ``from_logits``.
    from_logits : bool, default False
        Fused softmax + cross-entropy; the gradient is then
        ``(softmax(z) - onehot) / n`` with respect to the logits.
    sample_weight : array_like, optional

    Returns
    -------
    loss : float
    grad : ndarray of y_pred's shape and dtype

    Raises
    ------
    ValueError
        If a label is out of range or non-integral, or ``y_true`` has the
        wrong shape (with a hint when it looks one-hot).
    """
    return SparseCategoricalCrossentropy(from_logits).value_and_gradient(y_true, y_pred,
                                                                  sample_weight)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                        label_smoothing: float = 0.0, sample_weight: Any = None) -> LossAndGrad:
    """Binary cross-entropy: ``(mean loss, d loss / d y_pred)``.

    Parameters
    ----------
    y_true : array_like of y_pred's shape (``(n,)`` for ``(n, 1)`` is accepted)
        Targets in ``[0, 1]``.
    y_pred : ndarray, floating
        Probabilities, or logits if ``from_logits`` (fused sigmoid + BCE).
    from_logits : bool, default False
    label_smoothing : float, default 0
    sample_weight : array_like, optional

    Returns
    -------
    loss : float
    grad : ndarray of y_pred's shape and dtype
    """
    return BinaryCrossentropy(from_logits, label_smoothing).value_and_gradient(
        y_true, y_pred, sample_weight)


def mean_squared_error(y_true: Any, y_pred: Any, sample_weight: Any = None) -> LossAndGrad:
    """Mean squared error: ``(mean loss, d loss / d y_pred)``.

    The per-sample loss is the mean over the last axis; a 1-D ``y_pred``
    holds one value per sample.
    """
    return MeanSquaredError().value_and_gradient(y_true, y_pred, sample_weight)


mse = MSE = mean_squared_error

_CLASSES: Dict[str, type] = {
    "categoricalcrossentropy": CategoricalCrossentropy,
    "sparsecategoricalcrossentropy": SparseCategoricalCrossentropy,
    "binarycrossentropy": BinaryCrossentropy,
    "meansquarederror": MeanSquaredError,
    "mse": MeanSquaredError,
}
_FUNCTIONS = {
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
}


def _normalise_name(name: str) -> str:
    return name.replace("_", "").lower()


def get(identifier: Union[None, str, Loss, Callable[..., LossAndGrad]]) -> Optional[Loss]:
    """Resolve ``compile(loss=...)``'s argument to a :class:`Loss`.

    Parameters
    ----------
    identifier : str, Loss, callable or None
        A name, matched ignoring case and underscores
        (``'sparse_categorical_crossentropy'``, ``'SparseCategoricalCrossentropy'``,
        ``'mse'``, ...); a :class:`Loss` (returned unchanged); one of this
        module's functions (mapped to its class, so it can be fused); any
        other callable returning ``(mean_loss, grad)`` (wrapped in
        :class:`FunctionLoss`); or None (returned as None, as Keras does).

    Raises
    ------
    ValueError
        For an unknown name or an uninterpretable identifier.
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _CLASSES.get(_normalise_name(identifier))
        if cls is None:
            known = ("'categorical_crossentropy', 'sparse_categorical_crossentropy', "
                     "'binary_crossentropy', 'mean_squared_error' ('mse')")
            raise ValueError(f"Unknown loss function: {identifier!r}. Available: {known}")
        return cls()
    if callable(identifier):
        cls = _FUNCTIONS.get(identifier)
        return cls() if cls is not None else FunctionLoss(identifier)
    raise ValueError(f"Could not interpret loss function identifier: {identifier!r}")
