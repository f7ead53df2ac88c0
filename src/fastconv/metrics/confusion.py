"""Metrics over thresholded predictions: :class:`Precision`, :class:`Recall`
and :class:`AUC` (tf.keras 2.4's rules, names and defaults).

Each keeps weighted counts of true/false positives and negatives at a list
of thresholds: an element is a predicted positive at threshold ``t`` when
``y_pred > t``, an actual positive when ``y_true != 0``. Predictions must
lie in [0, 1] (a ValueError otherwise, where Keras fails an assertion; NaN
counts as below every threshold, as TensorFlow's comparison has it).

The counts come from one sort per batch, not one comparison per threshold:
``searchsorted`` gives each prediction the number of thresholds below it,
and suffix sums of the weighted histograms give every threshold's counts
(exact, the same ``>`` in the prediction's dtype as Keras' broadcast test,
in ``O(n log T)`` for ``n`` predictions and ``T`` thresholds).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .. import backend
from .. import losses as _losses
from ..losses.core import broadcast_sample_weight
from .core import Metric, as_arrays

__all__ = ["Precision", "Recall", "AUC"]

_NEG_INF = -1e10        # Keras' "not in the top k" score and its top_k threshold
_EPSILON = 1e-7         # AUC's end thresholds sit this far outside [0, 1]


def _check_thresholds(thresholds: Any, owner: str) -> List[float]:
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) \
        else [thresholds]
    if not values:
        raise ValueError(f"{owner}: `thresholds` must hold at least one number, got "
                         f"{thresholds!r}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not 0 <= float(value) <= 1:
            raise ValueError(f"{owner}: `thresholds` must be numbers in [0, 1] (one, or a "
                             f"list), got {thresholds!r}")
    return [float(v) for v in values]


def _keep_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """``scores`` with all but the ``k`` largest of each row set to -1e10 (ties:
    the lower index wins, as ``tf.math.top_k``)."""
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    kept = np.full(scores.shape, _NEG_INF, dtype=scores.dtype)
    np.put_along_axis(kept, order, np.take_along_axis(scores, order, axis=-1), axis=-1)
    return kept


def confusion_counts(y_true: Any, y_pred: Any, sample_weight: Any, thresholds: np.ndarray,
                     owner: str, top_k: Optional[int] = None, class_id: Optional[int] = None,
                     label_weights: Optional[np.ndarray] = None, per_label: bool = False
                     ) -> Dict[str, np.ndarray]:
    """Weighted ``tp``, ``fp``, ``tn``, ``fn`` at each threshold.

    Shapes ``(T,)``, or ``(T, labels)`` with ``per_label`` (each column of
    the last axis counted apart, AUC's ``multi_label``). ``top_k`` keeps
    each row's ``k`` largest predictions before ``class_id`` picks a column,
    as Keras orders them; ``label_weights`` scales the columns.
    """
    y_true, y_pred = as_arrays(y_true, y_pred)
    y_true = _losses._match_rank(y_true, y_pred, owner)
    if y_pred.size and (np.any(y_pred < 0) or np.any(y_pred > 1)):
        raise ValueError(f"{owner}: predictions must be in [0, 1], got values from "
                         f"{np.nanmin(y_pred)} to {np.nanmax(y_pred)}")
    weights = np.ones(y_pred.shape) if sample_weight is None else \
        broadcast_sample_weight(sample_weight, y_pred.shape, f"{owner}'s predictions")
    if top_k is not None:
        y_pred = _keep_top_k(y_pred, top_k)
    if class_id is not None:
        if not -y_pred.shape[-1] <= class_id < y_pred.shape[-1]:
            raise ValueError(f"{owner}: `class_id` {class_id} is out of range for predictions "
                             f"with {y_pred.shape[-1]} classes")
        y_true, y_pred, weights = (a[..., class_id] for a in (y_true, y_pred, weights))
    if label_weights is not None:
        weights = weights * label_weights
    columns = y_pred.shape[-1] if per_label and y_pred.ndim else 1
    actual = (y_true != 0).reshape(-1, columns)
    weights = weights.reshape(-1, columns)
    # Compare in the predictions' precision, as Keras casts its thresholds.
    dtype = y_pred.dtype if y_pred.dtype.kind == "f" else np.float64
    cut = np.asarray(thresholds, dtype=dtype)
    order = np.argsort(cut, kind="stable")
    below = np.searchsorted(cut[order], y_pred.reshape(-1, columns), side="left")
    below[np.isnan(y_pred.reshape(-1, columns))] = 0
    n_cut = len(cut)
    # bins: (column, number of thresholds below); suffix sums over the second.
    bins = below + np.arange(columns) * (n_cut + 1)
    size = columns * (n_cut + 1)
    positives = np.bincount(bins[actual], weights[actual], size).reshape(columns, n_cut + 1)
    negatives = np.bincount(bins[~actual], weights[~actual], size).reshape(columns, n_cut + 1)
    # Predicted positive at sorted threshold i: i < below, i.e. bins i+1 and up.
    tp_sorted = np.cumsum(positives[:, ::-1], axis=1)[:, ::-1][:, 1:]
    fp_sorted = np.cumsum(negatives[:, ::-1], axis=1)[:, ::-1][:, 1:]
    tp, fp = np.empty_like(tp_sorted), np.empty_like(fp_sorted)
    tp[:, order], fp[:, order] = tp_sorted, fp_sorted
    counts = {"tp": tp, "fp": fp,
              "fn": positives.sum(axis=1, keepdims=True) - tp,
              "tn": negatives.sum(axis=1, keepdims=True) - fp}
    return {key: value.T if per_label else value[0] for key, value in counts.items()}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0 where the denominator is 0 (``div_no_nan``)."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


class _ThresholdRate(Metric):
    """Precision's and Recall's shared state: counts at ``thresholds``,
    optionally over the top ``k`` predictions of each row and/or column
    ``class_id``. Without a ``name``, instances are named as tf.keras 2.4
    names them: ``precision``, ``precision_1``, ... (reset by
    ``backend.clear_session()``). One threshold gives a float result; a
    list gives one value per threshold (an ndarray)."""

    _default_name = ""

    def __init__(self, thresholds: Union[None, float, Sequence[float]] = None,
                 top_k: Optional[int] = None, class_id: Optional[int] = None,
                 name: Optional[str] = None) -> None:
        owner = type(self).__name__
        if top_k is not None and (isinstance(top_k, bool) or
                                  not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"{owner}: `top_k` must be a positive int or None, got {top_k!r}")
        if class_id is not None and (isinstance(class_id, bool) or
                                     not isinstance(class_id, (int, np.integer))):
            raise ValueError(f"{owner}: `class_id` must be an int or None, got {class_id!r}")
        self.init_thresholds = thresholds
        self.top_k = None if top_k is None else int(top_k)
        self.class_id = None if class_id is None else int(class_id)
        if thresholds is None:
            # Keras: with top_k and no threshold, every top-k prediction counts.
            self.thresholds = [0.5 if top_k is None else _NEG_INF]
        else:
            self.thresholds = _check_thresholds(thresholds, owner)
        self._one_value = not isinstance(thresholds, (list, tuple, np.ndarray))
        super().__init__(name or backend.unique_object_name(self._default_name))

    def reset_state(self) -> None:
        zeros = np.zeros(len(self.thresholds))
        self.true_positives, self.false_positives = zeros.copy(), zeros.copy()
        self.false_negatives = zeros.copy()

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        counts = confusion_counts(y_true, y_pred, sample_weight, np.array(self.thresholds),
                                  self.name, top_k=self.top_k, class_id=self.class_id)
        self.true_positives += counts["tp"]
        self.false_positives += counts["fp"]
        self.false_negatives += counts["fn"]

    def _rates(self) -> np.ndarray:
        raise NotImplementedError

    def result(self) -> Union[float, np.ndarray]:
        rates = self._rates()
        return float(rates[0]) if self._one_value else rates

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_ThresholdRate):
    """``true_positives / (true_positives + false_positives)`` (0 with no
    predicted positives), tf.keras 2.4's ``Precision``."""

    _default_name = "precision"

    def _rates(self) -> np.ndarray:
        return _ratio(self.true_positives, self.true_positives + self.false_positives)


class Recall(_ThresholdRate):
    """``true_positives / (true_positives + false_negatives)`` (0 with no
    actual positives), tf.keras 2.4's ``Recall``."""

    _default_name = "recall"

    def _rates(self) -> np.ndarray:
        return _ratio(self.true_positives, self.true_positives + self.false_negatives)


class AUC(Metric):
    """Area under the ROC or precision-recall curve, tf.keras 2.4's ``AUC``.

    Parameters
    ----------
    num_thresholds : int, default 200
        Thresholds ``i / (num_thresholds - 1)`` for ``i = 1 .. num_thresholds
        - 2``, plus ``-1e-7`` and ``1 + 1e-7`` so that the end points count
        every prediction as positive, and none.
    curve : 'ROC' or 'PR'
    summation_method : 'interpolation', 'minoring' or 'majoring'
        Trapezoids (for 'PR', Davis & Goadrich's interpolation of precision
        over the true positives, as Keras), or the lower / upper Riemann sum.
    name : str, optional
        Default ``auc``, ``auc_1``, ... as tf.keras 2.4 numbers them.
    thresholds : list of float in [0, 1], optional
        Replaces the evenly spaced ones (the two end points are added).
    multi_label : bool, default False
        True: one curve per column of the last axis, the result their mean
        (weighted by ``label_weights``). False: every element is one
        prediction, ``label_weights`` weighting the columns' elements.
    label_weights : sequence of float, optional
    """

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", name: Optional[str] = None,
                 dtype: Any = None, thresholds: Optional[Sequence[float]] = None,
                 multi_label: bool = False, label_weights: Optional[Sequence[float]] = None
                 ) -> None:
        curve_name = str(curve).upper() if isinstance(curve, str) else curve
        if curve_name not in ("ROC", "PR"):
            raise ValueError(f"AUC: `curve` must be 'ROC' or 'PR', got {curve!r}")
        method = summation_method.lower() if isinstance(summation_method, str) else None
        if method not in ("interpolation", "minoring", "majoring"):
            raise ValueError("AUC: `summation_method` must be 'interpolation', 'minoring' or "
                             f"'majoring', got {summation_method!r}")
        if thresholds is not None:
            inner = sorted(_check_thresholds(thresholds, "AUC"))
            num_thresholds = len(inner) + 2
        else:
            if isinstance(num_thresholds, bool) or not isinstance(
                    num_thresholds, (int, np.integer)) or num_thresholds <= 1:
                raise ValueError(f"AUC: `num_thresholds` must be an int > 1, got "
                                 f"{num_thresholds!r}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.num_thresholds = int(num_thresholds)
        self.curve, self.summation_method = curve_name, method
        self.thresholds = [0.0 - _EPSILON] + inner + [1.0 + _EPSILON]
        self._init_from_thresholds = thresholds is not None
        self.multi_label = bool(multi_label)
        self.label_weights = None
        if label_weights is not None:
            weights = np.asarray(label_weights, dtype=np.float64)
            if weights.ndim != 1 or np.any(weights < 0) or not np.all(np.isfinite(weights)):
                raise ValueError("AUC: `label_weights` must be a list of finite numbers >= 0, "
                                 f"got {label_weights!r}")
            self.label_weights = weights
        super().__init__(name or backend.unique_object_name("auc"))

    def reset_state(self) -> None:
        # Per-label counts get their width at the first update, as Keras builds them.
        self._counts: Optional[Dict[str, np.ndarray]] = None

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred_shape = np.shape(y_pred)
        if self.multi_label and len(y_pred_shape) < 1:
            raise ValueError(f"{self.name}: multi_label needs predictions with a label axis, "
                             f"got shape {y_pred_shape}")
        if self.label_weights is not None and len(y_pred_shape) and \
                y_pred_shape[-1] != len(self.label_weights):
            raise ValueError(f"{self.name}: `label_weights` has {len(self.label_weights)} "
                             f"entries but the predictions have {y_pred_shape[-1]} labels")
        counts = confusion_counts(
            y_true, y_pred, sample_weight, np.array(self.thresholds), self.name,
            label_weights=None if self.multi_label else self.label_weights,
            per_label=self.multi_label)
        if self._counts is None:
            self._counts = counts
            return
        if counts["tp"].shape != self._counts["tp"].shape:
            raise ValueError(f"{self.name}: the predictions have {counts['tp'].shape[-1]} "
                             f"labels, earlier batches had {self._counts['tp'].shape[-1]}")
        for key in self._counts:
            self._counts[key] = self._counts[key] + counts[key]

    @property
    def true_positives(self) -> np.ndarray:
        return self._state("tp")

    @property
    def false_positives(self) -> np.ndarray:
        return self._state("fp")

    @property
    def true_negatives(self) -> np.ndarray:
        return self._state("tn")

    @property
    def false_negatives(self) -> np.ndarray:
        return self._state("fn")

    def _state(self, key: str) -> np.ndarray:
        if self._counts is None:
            return np.zeros(self.num_thresholds)
        return self._counts[key]

    def _interpolated_pr_auc(self) -> np.ndarray:
        """Davis & Goadrich (2006): precision interpolated linearly in the true
        positives between thresholds, integrated exactly over recall."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        predicted = tp + fp
        dp = predicted[:-1] - predicted[1:]
        slope = _ratio(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * predicted[1:]
        both = (predicted[:-1] > 0) & (predicted[1:] > 0)
        p_ratio = np.where(both, _ratio(predicted[:-1], np.maximum(predicted[1:], 0)), 1.0)
        with np.errstate(divide="ignore"):
            log_ratio = np.log(np.where(p_ratio > 0, p_ratio, 1.0))
        return _ratio(slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))

    def result(self) -> float:
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        if self.curve == "PR" and self.summation_method == "interpolation":
            by_label = self._interpolated_pr_auc().sum(axis=0)
        else:
            recall = _ratio(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _ratio(fp, fp + tn), recall
            else:
                x, y = recall, _ratio(tp, tp + fp)
            if self.summation_method == "interpolation":
                heights = (y[:-1] + y[1:]) / 2.0
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:-1], y[1:])
            else:
                heights = np.maximum(y[:-1], y[1:])
            by_label = ((x[:-1] - x[1:]) * heights).sum(axis=0)
        if not self.multi_label:
            return float(by_label)
        if self.label_weights is None:
            return float(np.mean(by_label)) if np.size(by_label) else 0.0
        return float(_ratio(np.sum(by_label * self.label_weights),
                            np.sum(self.label_weights)))

    def get_config(self) -> Dict[str, Any]:
        config: Dict[str, Any] = {
            "name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
            "summation_method": self.summation_method, "multi_label": self.multi_label,
            "label_weights": None if self.label_weights is None
            else self.label_weights.tolist()}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
