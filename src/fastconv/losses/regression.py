"""Regression-style losses of :mod:`fastconv.losses`: an elementwise term
of predictions against targets of their shape, reduced over the last axis
(MSE, MAE, Huber, hinge, KL divergence), and the cosine similarity."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from .core import EPSILON, Loss, _as_numeric, _as_prediction, _match_rank

__all__ = ["MeanSquaredError", "MeanAbsoluteError", "Huber", "Hinge", "KLDivergence",
           "CosineSimilarity"]


class _ElementwiseLoss(Loss):
    """A loss of predictions against targets of their shape with no logits
    form: per sample, the mean (or, with ``_sum``, the sum) over the last axis
    of an elementwise term of ``(y_true, y_pred)``. A 1-D ``y_pred`` holds one
    value per sample."""

    _sum = False

    def __init__(self, name: str) -> None:
        super().__init__(name, from_logits=False)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name}

    def value_and_gradient(self, y_true, y_pred, sample_weight=None, *, from_logits=None):
        if from_logits:
            raise ValueError(f"{self.name} has no logits form; from_logits must be False or "
                             "None")
        return super().value_and_gradient(y_true, y_pred, sample_weight)

    def _elementwise(self, y_true: np.ndarray, y_pred: np.ndarray, need_grad: bool
                     ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The term of each element and its derivative with respect to y_pred."""
        raise NotImplementedError

    def _terms(self, y_true, y_pred, from_logits, need_grad, logits_grad=False):
        y_pred = _as_prediction(y_pred)
        if y_pred.ndim == 1:
            per_sample, grad = self._terms(y_true, y_pred[:, np.newaxis], from_logits,
                                           need_grad)
            return per_sample, None if grad is None else grad[:, 0]
        y_true = _match_rank(_as_numeric(y_true), y_pred, self.name).astype(y_pred.dtype)
        term, derivative = self._elementwise(y_true, y_pred, need_grad)
        scale = y_pred.dtype.type(1.0 if self._sum else 1.0 / y_pred.shape[-1])
        per_sample = np.sum(term, axis=-1) * scale
        if not need_grad:
            return per_sample, None
        return per_sample, (derivative * scale).astype(y_pred.dtype, copy=False)


class MeanSquaredError(_ElementwiseLoss):
    """Mean squared error: per sample ``mean((y_pred - y_true)**2, axis=-1)``.

    Parameters
    ----------
    name : str, default 'mean_squared_error'
    """

    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(name)

    def _elementwise(self, y_true, y_pred, need_grad):
        diff = y_pred - y_true
        return diff * diff, (2 * diff if need_grad else None)


class MeanAbsoluteError(_ElementwiseLoss):
    """Mean absolute error: per sample ``mean(|y_pred - y_true|, axis=-1)``
    (gradient ``sign(y_pred - y_true)``, 0 where they are equal)."""

    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(name)

    def _elementwise(self, y_true, y_pred, need_grad):
        diff = y_pred - y_true
        return np.abs(diff), (np.sign(diff) if need_grad else None)


class Huber(_ElementwiseLoss):
    """Huber loss: per element ``0.5 e**2`` for ``|e| <= delta``, else
    ``delta * |e| - 0.5 delta**2`` (``e = y_pred - y_true``), mean over the
    last axis, as ``tf.keras.losses.Huber``.

    Parameters
    ----------
    delta : float, default 1.0
    name : str, default 'huber_loss'
    """

    def __init__(self, delta: float = 1.0, name: str = "huber_loss") -> None:
        super().__init__(name)
        delta = float(delta)
        if not np.isfinite(delta) or delta <= 0:
            raise ValueError(f"`delta` must be a finite number > 0, got {delta!r}")
        self.delta = delta

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "delta": self.delta}

    def _elementwise(self, y_true, y_pred, need_grad):
        diff = y_pred - y_true
        delta = y_pred.dtype.type(self.delta)
        small = np.abs(diff) <= delta
        term = np.where(small, 0.5 * diff * diff, delta * np.abs(diff) - 0.5 * delta * delta)
        if not need_grad:
            return term, None
        return term, np.where(small, diff, delta * np.sign(diff))


class Hinge(_ElementwiseLoss):
    """Hinge loss: per sample ``mean(max(1 - y_true * y_pred, 0), axis=-1)``
    for targets in {-1, 1}; targets that are all 0 or 1 are mapped to -1 and
    1 first, as Keras does."""

    def __init__(self, name: str = "hinge") -> None:
        super().__init__(name)

    def _elementwise(self, y_true, y_pred, need_grad):
        if y_true.size and np.all((y_true == 0) | (y_true == 1)):
            y_true = 2 * y_true - 1
        margin = 1 - y_true * y_pred
        term = np.maximum(margin, 0)
        return term, (np.where(margin > 0, -y_true, 0) if need_grad else None)


class KLDivergence(_ElementwiseLoss):
    """Kullback-Leibler divergence: per sample ``sum(t * log(t / p), axis=-1)``
    with ``t`` and ``p`` clipped to ``[EPSILON, 1]``, as Keras (the gradient
    is 0 where the clip of ``y_pred`` is active)."""

    _sum = True

    def __init__(self, name: str = "kl_divergence") -> None:
        super().__init__(name)

    def _elementwise(self, y_true, y_pred, need_grad):
        eps = y_pred.dtype.type(EPSILON)
        t = np.clip(y_true, eps, 1)
        p = np.clip(y_pred, eps, 1)
        term = t * np.log(t / p)
        if not need_grad:
            return term, None
        return term, np.where((y_pred >= eps) & (y_pred <= 1), -t / p, 0)


class CosineSimilarity(Loss):
    """Negative cosine similarity over the last axis: per sample
    ``-sum(l2_normalize(y_true) * l2_normalize(y_pred))`` (so -1 is best), with
    TF's ``l2_normalize`` (``x / sqrt(max(sum(x**2), 1e-12))``), as
    ``tf.keras.losses.CosineSimilarity(axis=-1)``."""

    def __init__(self, axis: int = -1, name: str = "cosine_similarity") -> None:
        if axis != -1:
            raise ValueError(f"CosineSimilarity supports axis=-1 (the last axis) only, got "
                             f"axis={axis!r}")
        super().__init__(name, from_logits=False)
        self.axis = -1

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "axis": self.axis}

    def value_and_gradient(self, y_true, y_pred, sample_weight=None, *, from_logits=None):
        if from_logits:
            raise ValueError(f"{self.name} has no logits form; from_logits must be False or "
                             "None")
        return super().value_and_gradient(y_true, y_pred, sample_weight)

    def _terms(self, y_true, y_pred, from_logits, need_grad, logits_grad=False):
        y_pred = _as_prediction(y_pred)
        y_true = _match_rank(_as_numeric(y_true), y_pred, self.name).astype(y_pred.dtype)
        floor = y_pred.dtype.type(1e-12)
        t_norm = np.sqrt(np.maximum(np.sum(y_true * y_true, -1, keepdims=True), floor))
        p_square = np.sum(y_pred * y_pred, -1, keepdims=True)
        p_norm = np.sqrt(np.maximum(p_square, floor))
        t_hat, p_hat = y_true / t_norm, y_pred / p_norm
        cosine = np.sum(t_hat * p_hat, axis=-1)
        if not need_grad:
            return -cosine, None
        # d(-t_hat . p / |p|) / dp; where the floor holds |p| is a constant
        projected = np.where(p_square > floor, cosine[..., np.newaxis] * p_hat, 0)
        return -cosine, (-(t_hat - projected) / p_norm).astype(y_pred.dtype, copy=False)
