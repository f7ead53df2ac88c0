"""The pieces every loss shares: validation of targets and predictions,
the batch reduction, and the :class:`Loss` base class (see
:mod:`fastconv.losses` for the conventions)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

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


def broadcast_sample_weight(sample_weight: Any, shape: Tuple[int, ...], what: str
                            ) -> np.ndarray:
    """``sample_weight`` as float64 of ``shape``, as Keras broadcasts weights:
    a trailing axis of 1 beyond ``shape`` is dropped, missing trailing axes
    are added (one weight per sample covers its row), then NumPy broadcasting;
    otherwise a ValueError naming ``what`` the weights were for. The one rule
    of losses and metrics."""
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.ndim == len(shape) + 1 and weights.shape[-1] == 1:
        weights = weights[..., 0]
    if weights.ndim < len(shape):
        weights = weights.reshape(weights.shape + (1,) * (len(shape) - weights.ndim))
    try:
        return np.broadcast_to(weights, shape)
    except ValueError:
        raise ValueError(f"sample_weight of shape {np.shape(sample_weight)} does not fit "
                         f"{what} of shape {tuple(shape)}") from None


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
    weights = broadcast_sample_weight(sample_weight, per_sample.shape, "the per-sample losses")
    loss = float(np.sum(per_sample * weights)) / count
    if grad is not None:
        # One weight per sample, spread over the sample's row of y_pred.
        scale = (weights / count).astype(grad.dtype)
        grad *= scale.reshape(per_sample.shape + (1,) * (grad.ndim - per_sample.ndim))
    return loss, grad


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
