"""The metric base class and the running means: :class:`Metric`, :class:`Mean`,
:class:`MeanMetricWrapper` over the per-sample functions (accuracies, top-k,
MSE/MAE, cross-entropies), and the shape-resolved ``'accuracy'``
(:func:`resolve_accuracy`). The package docstring states the Keras 2.4 rules.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .. import losses as _losses
from ..losses.core import broadcast_sample_weight

__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "MeanSquaredError", "MeanAbsoluteError",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "mean_squared_error", "mean_absolute_error",
    "resolve_accuracy", "resolve_crossentropy", "as_arrays",
]

Shape = Sequence[Optional[int]]
PerSampleFn = Callable[..., np.ndarray]


# ---------------------------------------------------------------------------
# Per-sample metric functions (return one float32 value per sample)


def as_arrays(y_true: Any, y_pred: Any) -> Tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == 0:
        raise ValueError("y_pred must have at least one dimension (the batch), got a scalar")
    return y_true, y_pred


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """1.0 where ``argmax(y_pred, -1)`` equals the integer label, else 0.0.

    Parameters
    ----------
    y_true : array_like of shape y_pred.shape[:-1] (or with a trailing 1)
    y_pred : array_like of shape (..., n_classes)

    Returns
    -------
    ndarray of shape y_pred.shape[:-1], float32
    """
    y_true, y_pred = as_arrays(y_true, y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1:] == (1,):
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        hint = " It looks one-hot: use categorical_accuracy." if y_true.shape == y_pred.shape else ""
        raise ValueError(f"sparse_categorical_accuracy: y_true must hold class labels of shape "
                         f"{y_pred.shape[:-1]} (or with a trailing 1) for y_pred of shape "
                         f"{y_pred.shape}, got shape {y_true.shape}.{hint}")
    # Keras casts the argmax to y_true's dtype; comparing values does the same.
    return (np.argmax(y_pred, axis=-1) == y_true).astype(np.float32)


def categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """1.0 where ``argmax(y_true, -1) == argmax(y_pred, -1)``, else 0.0.

    Parameters
    ----------
    y_true : array_like of y_pred's shape (one-hot)
    y_pred : array_like of shape (..., n_classes)

    Returns
    -------
    ndarray of shape y_pred.shape[:-1], float32
    """
    y_true, y_pred = as_arrays(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"categorical_accuracy: y_true must be one-hot with y_pred's shape "
                         f"{y_pred.shape}, got shape {y_true.shape}")
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> np.ndarray:
    """Fraction of ``(y_pred > threshold) == y_true`` over the last axis.

    Parameters
    ----------
    y_true : array_like of y_pred's shape (``(n,)`` for ``(n, 1)`` accepted)
    y_pred : array_like
        Probabilities (thresholded at ``threshold``; for logits use 0).
    threshold : float, default 0.5

    Returns
    -------
    ndarray of shape y_pred.shape[:-1] (``(n,)`` for 1-D input), float32
    """
    y_true, y_pred = as_arrays(y_true, y_pred)
    if y_pred.ndim == 1:  # one prediction per sample
        y_pred = y_pred[:, np.newaxis]
    y_true = _losses._match_rank(y_true, y_pred, "binary_accuracy")
    predicted = (y_pred > threshold).astype(y_pred.dtype)
    return np.mean(y_true == predicted, axis=-1, dtype=np.float32)


def mean_squared_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """Per-sample ``mean((y_pred - y_true)**2, axis=-1)``."""
    return _losses.MeanSquaredError().per_sample(y_true, y_pred)


def mean_absolute_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """Per-sample ``mean(|y_pred - y_true|, axis=-1)``."""
    return _losses.MeanAbsoluteError().per_sample(y_true, y_pred)


def _in_top_k(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """1 where ``labels``' score is among the ``k`` highest of its row; a tie
    at the boundary counts as in, as ``tf.nn.in_top_k``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive int, got {k!r}")
    n_classes = scores.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    target = np.take_along_axis(scores, labels[..., np.newaxis], axis=-1)
    return (np.sum(scores > target, axis=-1) < k).astype(np.float32)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    """Per sample 1 if the class of the one-hot ``y_true`` is among the ``k``
    highest scores of ``y_pred``, else 0."""
    y_true, y_pred = as_arrays(y_true, y_pred)
    y_true = _losses._match_rank(y_true, y_pred, "top_k_categorical_accuracy")
    return _in_top_k(y_pred, np.argmax(y_true, axis=-1), k)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    """As :func:`top_k_categorical_accuracy`, for integer labels."""
    y_true, y_pred = as_arrays(y_true, y_pred)
    batch = y_pred.shape[:-1]
    if y_true.shape == batch + (1,):
        y_true = y_true[..., 0]
    if y_true.shape != batch:
        raise ValueError(f"sparse_top_k_categorical_accuracy: y_true must hold one label per "
                         f"sample, shape {batch}, got {y_true.shape}")
    if y_true.dtype.kind == "f" and np.any(y_true != np.round(y_true)):
        raise ValueError("sparse_top_k_categorical_accuracy: y_true must hold integer labels")
    return _in_top_k(y_pred, y_true.astype(np.int64), k)


def _crossentropy_metric(loss: _losses.Loss) -> PerSampleFn:
    def per_sample(y_true: Any, y_pred: Any) -> np.ndarray:
        return loss.per_sample(y_true, y_pred)
    per_sample.__name__ = loss.name
    return per_sample


binary_crossentropy = _crossentropy_metric(_losses.BinaryCrossentropy())
categorical_crossentropy = _crossentropy_metric(_losses.CategoricalCrossentropy())
sparse_categorical_crossentropy = _crossentropy_metric(_losses.SparseCategoricalCrossentropy())


# ---------------------------------------------------------------------------
# Keras' shape rule for 'accuracy' / 'crossentropy'


def _kind_from_shapes(y_true_shape: Shape, y_pred_shape: Shape) -> str:
    y_true_shape, y_pred_shape = tuple(y_true_shape), tuple(y_pred_shape)
    if not y_pred_shape:
        raise ValueError("y_pred must have at least one dimension to resolve the metric")
    y_true_last = y_true_shape[-1] if y_true_shape else None
    y_pred_last = y_pred_shape[-1]
    if y_pred_last == 1:
        return "binary"
    if len(y_true_shape) < len(y_pred_shape) or (
            y_true_last == 1 and y_pred_last is not None and y_pred_last > 1):
        return "sparse"
    return "categorical"


def resolve_accuracy(y_true_shape: Shape, y_pred_shape: Shape) -> PerSampleFn:
    """The accuracy function Keras picks for ``metrics=['accuracy']``.

    Parameters
    ----------
    y_true_shape, y_pred_shape : sequence of int or None
        Shapes of the targets as given to ``fit`` and of the model output
        (batch dimension included; ``None`` allowed).

    Returns
    -------
    callable
        :func:`binary_accuracy` if ``y_pred``'s last dimension is 1;
        :func:`sparse_categorical_accuracy` if ``y_true`` has lower rank, or
        a last dimension of 1 while ``y_pred``'s is larger;
        :func:`categorical_accuracy` otherwise.
    """
    kind = _kind_from_shapes(y_true_shape, y_pred_shape)
    return {"binary": binary_accuracy, "sparse": sparse_categorical_accuracy,
            "categorical": categorical_accuracy}[kind]


def resolve_crossentropy(y_true_shape: Shape, y_pred_shape: Shape) -> PerSampleFn:
    """The cross-entropy Keras picks for ``metrics=['crossentropy']`` (same rule)."""
    kind = _kind_from_shapes(y_true_shape, y_pred_shape)
    return {"binary": binary_crossentropy, "sparse": sparse_categorical_crossentropy,
            "categorical": categorical_crossentropy}[kind]


# ---------------------------------------------------------------------------
# Stateful metrics


class Metric:
    """Base class: accumulate with :meth:`update_state`, read with :meth:`result`.

    Parameters
    ----------
    name : str
        Key of the metric in the logs (``'loss'``, ``'accuracy'``, ...).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset_state()

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def reset_states(self) -> None:
        """Keras 2.4's name for :meth:`reset_state`."""
        self.reset_state()

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        """Update with one batch and return the running result (as Keras does)."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        result = self.result()
        text = f"{result:.4g}" if np.ndim(result) == 0 else \
            np.array2string(np.asarray(result), precision=4)
        return f"<{type(self).__name__} name={self.name!r} result={text}>"


class Mean(Metric):
    """Weighted running mean: ``sum(values * w) / sum(w)``.

    Parameters
    ----------
    name : str, default 'mean'

    Examples
    --------
    Keras' running loss over batches of 32, 32 and 16 samples:

    >>> loss = Mean("loss")
    >>> for batch_loss, size in [(0.9, 32), (0.6, 32), (0.3, 16)]:
    ...     loss.update_state(batch_loss, sample_weight=size)
    >>> round(loss.result(), 6)  # (0.9*32 + 0.6*32 + 0.3*16) / 80
    0.66
    """

    def __init__(self, name: str = "mean") -> None:
        super().__init__(name)

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Add ``values`` (any shape), each weighted by ``sample_weight``.

        Parameters
        ----------
        values : array_like
        sample_weight : array_like, optional
            Broadcastable to ``values`` (a trailing axis of 1 is dropped).
            Without it every value has weight 1.
        """
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self.total += float(np.sum(values))
            self.count += float(values.size)
            return
        weights = broadcast_sample_weight(sample_weight, values.shape, "values")
        self.total += float(np.sum(values * weights))
        self.count += float(np.sum(weights))

    def result(self) -> float:
        """The running mean, or 0.0 before any weight was added (Keras' div_no_nan)."""
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """Running mean of a per-sample function ``fn(y_true, y_pred, **kwargs)``.

    Parameters
    ----------
    fn : callable
        Returns one value per sample.
    name : str, optional
        Defaults to ``fn.__name__``.
    **kwargs
        Passed to ``fn`` (e.g. ``threshold``).
    """

    def __init__(self, fn: PerSampleFn, name: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(name or getattr(fn, "__name__", type(fn).__name__))
        self.fn = fn
        self.fn_kwargs = kwargs

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Evaluate ``fn`` on one batch and add its per-sample values."""
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        # Keras (compile_utils.match_dtype_and_rank): (n,) targets for (n, k)
        # outputs become (n, 1) before the metric sees them.
        if y_true.ndim == 1 and y_pred.ndim == 2:
            y_true = y_true[:, np.newaxis]
        values = self.fn(y_true, y_pred, **self.fn_kwargs)
        super().update_state(values, sample_weight)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, **self.fn_kwargs}


class ShapeResolvedMetric(MeanMetricWrapper):
    """``'accuracy'``/``'crossentropy'`` resolved from the first batch's shapes."""

    def __init__(self, resolver: Callable[[Shape, Shape], PerSampleFn], name: str) -> None:
        self._resolver = resolver
        super().__init__(self._unresolved, name=name)

    @staticmethod
    def _unresolved(y_true: Any, y_pred: Any) -> np.ndarray:  # pragma: no cover - replaced
        raise AssertionError("resolved before use")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if self.fn is self._unresolved:
            self.fn = self._resolver(np.shape(y_true), np.shape(y_pred))
        super().update_state(y_true, y_pred, sample_weight)


class BinaryAccuracy(MeanMetricWrapper):
    """Running :func:`binary_accuracy`."""

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """Running :func:`categorical_accuracy`."""

    def __init__(self, name: str = "categorical_accuracy") -> None:
        super().__init__(categorical_accuracy, name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """Running :func:`sparse_categorical_accuracy`."""

    def __init__(self, name: str = "sparse_categorical_accuracy") -> None:
        super().__init__(sparse_categorical_accuracy, name)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """Running :func:`top_k_categorical_accuracy`."""

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy") -> None:
        super().__init__(top_k_categorical_accuracy, name, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """Running :func:`sparse_top_k_categorical_accuracy`."""

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy") -> None:
        super().__init__(sparse_top_k_categorical_accuracy, name, k=k)


class MeanSquaredError(MeanMetricWrapper):
    """Running :func:`mean_squared_error`."""

    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(mean_squared_error, name)


class MeanAbsoluteError(MeanMetricWrapper):
    """Running :func:`mean_absolute_error`."""

    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(mean_absolute_error, name)
