"""Weight constraints (``tf.keras.constraints``, tf.keras 2.4 semantics):
projections applied to a weight after each optimizer update.

``constraint(w)`` returns the projected array; the optimizer assigns it to
the weight right after updating it (:meth:`fastconv.optimizers.Optimizer.apply_gradients`
does this for every :class:`~fastconv.layers.Variable` carrying a
``constraint``, as Keras' optimizers do), so weights an optimizer leaves
alone (frozen layers) are not projected either. The formulas are Keras', with
its ``epsilon()`` = 1e-7 in the denominators and norms taken over ``axis``
(an int or a list of ints; ``axis=0`` is each output unit of a Dense kernel
``(in, units)``, ``axis=[0, 1, 2]`` each filter of a Conv2D kernel
``(h, w, in, out)``)::

    MaxNorm(max_value=2, axis=0):     w * clip(n, 0, max_value) / (eps + n)
    NonNeg():                         w * (w >= 0)
    UnitNorm(axis=0):                 w / (eps + n)
    MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        w * (rate * clip(n, min_value, max_value) + (1 - rate) * n) / (eps + n)

with ``n = sqrt(sum(w**2, axis, keepdims=True))``. The snake-case names
(``max_norm``, ``non_neg``, ``unit_norm``, ``min_max_norm``, and the legacy
``maxnorm``, ``nonneg``, ``unitnorm``) are the classes themselves, as in
Keras. Unlike Keras, arguments that make no sense (a negative norm bound,
``min_value > max_value``, a ``rate`` outside [0, 1], a non-integer axis)
are refused at construction.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _serialization, backend

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm",
           "non_neg", "unit_norm", "min_max_norm", "get", "serialize", "deserialize"]

Axis = Union[int, Sequence[int]]


class Constraint:
    """Base class: ``constraint(weight)`` returns the projected weight.

    Subclasses implement ``__call__`` and ``get_config``. The base class
    returns the weight unchanged.
    """

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """The constrained weight for the weight array ``w``."""
        return w

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Constraint":
        """The constraint that :meth:`get_config` described."""
        return cls(**config)

    def get_config(self) -> Dict[str, Any]:
        """The constructor's keyword arguments (none for the base class)."""
        return {}


def _norm_bound(value: Any, name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0 (a bound on a norm), "
                         f"got {value!r}")
    return value


def _axis(value: Any) -> Axis:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                        for a in items):
        raise ValueError(f"`axis` must be an int or a list of ints, got {value!r}")
    return value


def _norms(w: np.ndarray, axis: Axis) -> np.ndarray:
    """``sqrt(sum(w**2))`` over ``axis``, kept as size-1 dims to broadcast against ``w``."""
    reduce: Union[int, Tuple[int, ...]] = tuple(axis) if isinstance(axis, (list, tuple)) \
        else axis
    return np.sqrt(np.sum(np.square(w), axis=reduce, keepdims=True))


class MaxNorm(Constraint):
    """Scale each slice over ``axis`` whose norm exceeds ``max_value`` back to it."""

    def __init__(self, max_value: float = 2, axis: Axis = 0) -> None:
        self.max_value = _norm_bound(max_value, "max_value")
        self.axis = _axis(axis)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return w * (desired / (backend.epsilon() + norms))

    def get_config(self) -> Dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Zero the negative entries."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w)
        return w * (w >= 0).astype(w.dtype)


class UnitNorm(Constraint):
    """Scale each slice over ``axis`` to norm 1 (``eps`` short of it)."""

    def __init__(self, axis: Axis = 0) -> None:
        self.axis = _axis(axis)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w)
        return w / (backend.epsilon() + _norms(w, self.axis))

    def get_config(self) -> Dict[str, Any]:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move each slice's norm into ``[min_value, max_value]``, by the fraction ``rate``."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: Axis = 0) -> None:
        self.min_value = _norm_bound(min_value, "min_value")
        self.max_value = _norm_bound(max_value, "max_value")
        if self.min_value > self.max_value:
            raise ValueError(f"`min_value` ({min_value}) must not exceed `max_value` "
                             f"({max_value})")
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not 0 <= rate <= 1:
            raise ValueError(f"`rate` must be a number in [0, 1], got {rate!r}")
        self.rate = rate
        self.axis = _axis(axis)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = (self.rate * np.clip(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return w * (desired / (backend.epsilon() + norms))

    def get_config(self) -> Dict[str, Any]:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


# Keras' aliases: the functions are the classes.
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm
maxnorm, nonneg, unitnorm = MaxNorm, NonNeg, UnitNorm

_BY_NAME: Dict[str, Any] = {
    "Constraint": Constraint, "MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm,
    "MinMaxNorm": MinMaxNorm, "max_norm": max_norm, "non_neg": non_neg,
    "unit_norm": unit_norm, "min_max_norm": min_max_norm, "maxnorm": maxnorm,
    "nonneg": nonneg, "unitnorm": unitnorm,
}


def serialize(constraint: Any) -> Union[None, Dict[str, Any], str]:
    """``{'class_name': ..., 'config': ...}`` (a function's name for a function, None for None)."""
    return _serialization.serialize(constraint)


def deserialize(config: Union[Dict[str, Any], str],
                custom_objects: Optional[Mapping[str, Any]] = None) -> Any:
    """Inverse of :func:`serialize`; ``custom_objects`` maps names to the user's classes."""
    return _serialization.deserialize(config, _BY_NAME, custom_objects, "constraint")


def get(identifier: Union[None, str, Dict[str, Any], Callable[[np.ndarray], np.ndarray]]
        ) -> Any:
    """Resolve a layer's ``*_constraint`` argument: ``None``, a name
    (``'max_norm'``, ``'NonNeg'``...: instantiated with its defaults), a
    :func:`serialize` dict, or a callable (returned unchanged).

    Raises
    ------
    ValueError
        ``Unknown constraint: <name>``, or an identifier of another type.
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier, "config": {}})
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")
