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

The regression losses (mean squared and absolute error, Huber, hinge, KL
divergence, cosine similarity) live in :mod:`fastconv.losses.regression`,
the shared validation, reduction and :class:`Loss` base in
:mod:`fastconv.losses.core`; all are importable from here.

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
    "BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "Huber", "Hinge",
    "KLDivergence", "CosineSimilarity", "FunctionLoss",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
    "mean_squared_error", "mse", "MSE", "mean_absolute_error", "mae", "MAE", "huber", "hinge",
    "kl_divergence", "kld", "KLD", "kullback_leibler_divergence", "cosine_similarity", "get",
    "serialize", "deserialize",
]

from .core import (EPSILON, Loss, LossAndGrad, _as_numeric, _as_prediction,
                   _check_probabilities, _check_smoothing, _check_targets_in_unit_interval,
                   _match_rank, _sparse_labels)
from .regression import (CosineSimilarity, Hinge, Huber, KLDivergence, MeanAbsoluteError,
                         MeanSquaredError)

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


def mean_absolute_error(y_true: Any, y_pred: Any, sample_weight: Any = None) -> LossAndGrad:
    """Mean absolute error: ``(mean loss, d loss / d y_pred)``."""
    return MeanAbsoluteError().value_and_gradient(y_true, y_pred, sample_weight)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0, sample_weight: Any = None
          ) -> LossAndGrad:
    """Huber loss: ``(mean loss, d loss / d y_pred)`` (see :class:`Huber`)."""
    return Huber(delta).value_and_gradient(y_true, y_pred, sample_weight)


def hinge(y_true: Any, y_pred: Any, sample_weight: Any = None) -> LossAndGrad:
    """Hinge loss: ``(mean loss, d loss / d y_pred)`` (see :class:`Hinge`)."""
    return Hinge().value_and_gradient(y_true, y_pred, sample_weight)


def kl_divergence(y_true: Any, y_pred: Any, sample_weight: Any = None) -> LossAndGrad:
    """KL divergence: ``(mean loss, d loss / d y_pred)`` (see :class:`KLDivergence`)."""
    return KLDivergence().value_and_gradient(y_true, y_pred, sample_weight)


def cosine_similarity(y_true: Any, y_pred: Any, sample_weight: Any = None) -> LossAndGrad:
    """Negative cosine similarity: ``(mean loss, d loss / d y_pred)``."""
    return CosineSimilarity().value_and_gradient(y_true, y_pred, sample_weight)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
kld = KLD = kullback_leibler_divergence = kl_divergence

_CLASSES: Dict[str, type] = {
    "categoricalcrossentropy": CategoricalCrossentropy,
    "sparsecategoricalcrossentropy": SparseCategoricalCrossentropy,
    "binarycrossentropy": BinaryCrossentropy,
    "meansquarederror": MeanSquaredError,
    "mse": MeanSquaredError,
    "meanabsoluteerror": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "huberloss": Huber,
    "hinge": Hinge,
    "kldivergence": KLDivergence,
    "kld": KLDivergence,
    "kullbackleiblerdivergence": KLDivergence,
    "cosinesimilarity": CosineSimilarity,
}
_FUNCTIONS = {
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    huber: Huber,
    hinge: Hinge,
    kl_divergence: KLDivergence,
    cosine_similarity: CosineSimilarity,
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
                     "'binary_crossentropy', 'mean_squared_error' ('mse'), "
                     "'mean_absolute_error' ('mae'), 'huber', 'hinge', 'kl_divergence' "
                     "('kld'), 'cosine_similarity'")
            raise ValueError(f"Unknown loss function: {identifier!r}. Available: {known}")
        return cls()
    if callable(identifier):
        cls = _FUNCTIONS.get(identifier)
        return cls() if cls is not None else FunctionLoss(identifier)
    raise ValueError(f"Could not interpret loss function identifier: {identifier!r}")


# Keras keys of a loss config that fastconv's losses fix: key -> the values meaning that.
_FIXED_KEYS = {"reduction": ("auto", "sum_over_batch_size", None), "ignore_class": (None,),
               "axis": (-1, None), "dtype": (None, "float32")}


def serialize(loss: Any) -> Union[None, str, Dict[str, Any]]:
    """Keras' form of a ``compile(loss=...)`` argument: a name for a name or a
    function (a user function by its ``__name__``), ``{'class_name', 'config'}``
    for a :class:`Loss`."""
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, FunctionLoss):
        return getattr(loss.fn, "__name__", loss.name)
    if isinstance(loss, Loss):
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    if callable(loss) and hasattr(loss, "__name__"):
        return loss.__name__
    raise ValueError(f"Cannot serialize the loss {loss!r}")


def deserialize(config: Any, custom_objects: Optional[Dict[str, Any]] = None) -> Optional[Loss]:
    """The :class:`Loss` a :func:`serialize` form (tf.keras 2.4's or Keras 3's)
    describes; ``custom_objects`` maps names to the user's functions or classes."""
    custom = custom_objects or {}
    if config is None:
        return None
    if isinstance(config, str):
        return get(custom.get(config, config))
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret serialized loss {config!r}")
    name = config["class_name"]
    cls = custom.get(name)
    if cls is None:
        cls = globals().get(name) if name in __all__ else None
        if not (isinstance(cls, type) and issubclass(cls, Loss)) or cls is FunctionLoss:
            raise ValueError(f"Unknown loss class {name!r}; pass your own as "
                             f"custom_objects={{{name!r}: ...}}")
    arguments = dict(config.get("config") or {})
    for key, fixed in _FIXED_KEYS.items():
        if key in arguments:
            value = arguments.pop(key)
            if value not in fixed:
                raise ValueError(f"Loss {name}: fastconv's losses take the mean over the "
                                 f"batch and cannot honour {key}={value!r}")
    if not isinstance(cls, type):
        return get(cls)
    try:
        return cls.from_config(arguments) if hasattr(cls, "from_config") else cls(**arguments)
    except TypeError as exc:
        raise ValueError(f"Cannot rebuild loss {name} from {arguments}: {exc}") from None
