"""Running metrics with the semantics of Keras 2 (tf.keras 2.4).

During ``fit`` Keras shows, after every batch, the *running mean over the
epoch so far*, not the last batch's value:

* ``loss`` is a :class:`Mean` updated once per batch with the batch's mean
  loss and ``sample_weight=batch_size``, so a short last batch counts for its
  size only. The model should do exactly that::

      loss_tracker = Mean(name="loss")
      loss_tracker.update_state(batch_loss, sample_weight=len(x_batch))

* each metric (``'accuracy'``, ...) is a :class:`MeanMetricWrapper`: a
  per-sample function whose values are accumulated by a :class:`Mean`, i.e.
  total correct / total seen.

All metrics are reset at the start of each epoch (``reset_state``).

The string ``'accuracy'`` (or ``'acc'``) is resolved from the shapes of the
first batch, exactly as Keras' ``compile`` does (see :func:`resolve_accuracy`):
a last ``y_pred`` dimension of 1 means binary accuracy; ``y_true`` of lower
rank than ``y_pred``, or a ``y_true`` last dimension of 1 while ``y_pred``'s
is larger, means sparse categorical accuracy; anything else categorical. The
metric keeps the string as its display name. ``'crossentropy'``/``'ce'``
resolve the same way to the three cross-entropies.

Accumulators are float64 (Keras keeps float32 variables); the displayed
4-decimal values are the same.

Modules: :mod:`.core` (the base class, the running means and the per-sample
functions), :mod:`.confusion` (Precision, Recall and AUC over thresholds).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

from .confusion import AUC, Precision, Recall
from .core import (BinaryAccuracy, CategoricalAccuracy, Mean, MeanAbsoluteError,
                   MeanMetricWrapper, MeanSquaredError, Metric, PerSampleFn, Shape,
                   SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy,
                   TopKCategoricalAccuracy, ShapeResolvedMetric, binary_accuracy,
                   binary_crossentropy, categorical_accuracy, categorical_crossentropy,
                   mean_absolute_error, mean_squared_error, resolve_accuracy,
                   resolve_crossentropy, sparse_categorical_accuracy,
                   sparse_categorical_crossentropy, sparse_top_k_categorical_accuracy,
                   top_k_categorical_accuracy)

__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "MeanSquaredError", "MeanAbsoluteError", "Precision", "Recall", "AUC",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "mean_squared_error", "mean_absolute_error",
    "resolve_accuracy", "resolve_crossentropy", "get", "serialize", "deserialize",
]

_FUNCTIONS: Dict[str, PerSampleFn] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
}
_CLASSES: Dict[str, type] = {
    "BinaryAccuracy": BinaryAccuracy, "CategoricalAccuracy": CategoricalAccuracy,
    "SparseCategoricalAccuracy": SparseCategoricalAccuracy, "Mean": Mean,
    "TopKCategoricalAccuracy": TopKCategoricalAccuracy,
    "SparseTopKCategoricalAccuracy": SparseTopKCategoricalAccuracy,
    "MeanSquaredError": MeanSquaredError, "MeanAbsoluteError": MeanAbsoluteError,
    "Precision": Precision, "Recall": Recall, "AUC": AUC,
}


def get(identifier: Union[str, Metric, PerSampleFn], y_true_shape: Optional[Shape] = None,
        y_pred_shape: Optional[Shape] = None) -> Metric:
    """Resolve one entry of ``compile(metrics=[...])`` to a fresh :class:`Metric`.

    Parameters
    ----------
    identifier : str, Metric or callable
        ``'accuracy'``/``'acc'``/``'crossentropy'``/``'ce'`` (resolved from
        the shapes), a Keras metric function name (``'sparse_categorical_accuracy'``,
        ``'mse'``, ``'mae'``, ...), a class name (``'BinaryAccuracy'``), a
        :class:`Metric` instance (returned unchanged), or a per-sample
        callable ``fn(y_true, y_pred)`` (named after ``fn.__name__``).
    y_true_shape, y_pred_shape : sequence of int, optional
        Shapes of the targets and the model output. When omitted, a
        shape-dependent metric resolves itself at its first
        ``update_state`` call (as Keras does on the first batch).

    Returns
    -------
    Metric
        Named after the string given (``'acc'`` stays ``'acc'``).

    Raises
    ------
    ValueError
        For an unknown name or an uninterpretable identifier.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        resolver = None
        if identifier in ("accuracy", "acc"):
            resolver = resolve_accuracy
        elif identifier in ("crossentropy", "ce"):
            resolver = resolve_crossentropy
        if resolver is not None:
            if y_true_shape is not None and y_pred_shape is not None:
                return MeanMetricWrapper(resolver(y_true_shape, y_pred_shape), name=identifier)
            return ShapeResolvedMetric(resolver, identifier)
        if identifier in _FUNCTIONS:
            return MeanMetricWrapper(_FUNCTIONS[identifier], name=identifier)
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        known = ", ".join(repr(k) for k in ("accuracy", "acc", "crossentropy", "ce",
                                            *_FUNCTIONS, *_CLASSES))
        raise ValueError(f"Unknown metric function: {identifier!r}. Available: {known}")
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}; pass a name "
                     "such as 'accuracy', a Metric, or a per-sample function")


def serialize(metric: Any) -> Union[str, Dict[str, Any]]:
    """Keras' form of a compiled metric: the name it was given as (``'accuracy'``,
    ``'mae'``, a function's name), or ``{'class_name', 'config'}`` for a
    :class:`Metric` class."""
    if isinstance(metric, str):
        return metric
    if isinstance(metric, ShapeResolvedMetric):
        return metric.name
    if type(metric) is MeanMetricWrapper:
        if _FUNCTIONS.get(metric.name) is metric.fn:
            return metric.name
        return getattr(metric.fn, "__name__", metric.name)
    if isinstance(metric, Metric):
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    if callable(metric) and hasattr(metric, "__name__"):
        return metric.__name__
    raise ValueError(f"Cannot serialize the metric {metric!r}")


def deserialize(config: Any, custom_objects: Optional[Dict[str, Any]] = None) -> Any:
    """What ``compile(metrics=[...])`` takes for a :func:`serialize` form
    (tf.keras 2.4's ``MeanMetricWrapper`` configs and Keras 3's included)."""
    custom = custom_objects or {}
    if isinstance(config, str):
        return custom.get(config, config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret serialized metric {config!r}")
    name = config["class_name"]
    arguments = dict(config.get("config") or {})
    if arguments.get("dtype") in (None, "float32", "float64"):
        arguments.pop("dtype", None)
    if name == "MeanMetricWrapper":  # tf.keras 2.4 saves 'accuracy' so
        fn = arguments.pop("fn", None)
        shown = arguments.pop("name", None)
        if shown in ("accuracy", "acc", "crossentropy", "ce"):
            return shown
        function = custom.get(fn) or _FUNCTIONS.get(fn)
        if function is None:
            raise ValueError(f"Unknown metric function {fn!r}; pass it as "
                             f"custom_objects={{{fn!r}: ...}}")
        return MeanMetricWrapper(function, name=shown, **arguments)
    cls = custom.get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"Unknown metric class {name!r}; pass your own as "
                         f"custom_objects={{{name!r}: ...}}")
    if not isinstance(cls, type):
        return cls
    try:
        return cls.from_config(arguments) if hasattr(cls, "from_config") else cls(**arguments)
    except TypeError as exc:
        raise ValueError(f"Cannot rebuild metric {name} from {arguments}: {exc}") from None
