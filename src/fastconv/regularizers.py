"""Weight and activity regularizers (``tf.keras.regularizers``, tf.keras 2.4 semantics).

A regularizer maps an array to a penalty that training adds to the loss:

* ``L1(l1=0.01)``: ``l1 * sum(|x|)``; ``L2(l2=0.01)``: ``l2 * sum(x**2)``;
  ``L1L2(l1=0., l2=0.)``: both (note the zero defaults of the class);
* ``l1`` and ``l2`` are the classes themselves (TF 2.4's aliases, so
  ``l2(1e-4)`` is an ``L2``), and ``l1_l2(l1=0.01, l2=0.01)`` builds an
  ``L1L2`` with the function's defaults, as does the name ``'l1_l2'``.

The factors are stored in ``floatx`` (float32), as Keras' ``cast_to_floatx``
does, so ``L2(1e-4).get_config()`` is ``{'l2': 9.999999747378752e-05}`` in
tf.keras 2.4 and here. Penalties are computed in the array's dtype.

**Gradients.** fastconv has no automatic differentiation, so every
regularizer used in training also gives the gradient of its penalty:
``regularizer.gradient(x)``, an array shaped and typed like ``x``
(``l1 * sign(x)``, with 0 at 0 as TensorFlow's ``Abs`` gradient, and
``2 * l2 * x``). A custom regularizer gives one the same way: subclass
:class:`Regularizer` and implement ``__call__`` and ``gradient``, or attach a
``gradient`` attribute to a plain function. One without a gradient is
refused when a model that holds it is compiled or trained (:func:`gradient_of`
names the layer and the weight); fastconv does not fall back to finite
differences, which would cost two penalty evaluations per weight element at
every step.

Where training uses them (:mod:`fastconv.models`): each weight's regularizer
(``add_weight(regularizer=...)``, e.g. Dense's ``kernel_regularizer``) adds
``regularizer(weight)`` to the loss, and a layer's ``activity_regularizer``
adds ``regularizer(output) / batch_size`` for each call, in ``fit``,
``train_on_batch``, ``evaluate`` and ``test_on_batch`` alike, as tf.keras 2.4
adds ``model.losses`` to the loss.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, Optional, Union

import numpy as np

from . import _serialization, backend

__all__ = ["Regularizer", "L1L2", "L1", "L2", "l1", "l2", "l1_l2", "get", "serialize",
           "deserialize", "gradient_of"]


class Regularizer:
    """Base class: ``regularizer(x)`` is the penalty (a float) for the array
    ``x`` and ``regularizer.gradient(x)`` its gradient with respect to ``x``.

    Subclasses implement ``__call__``, ``gradient`` and ``get_config`` (the
    keyword arguments :meth:`from_config` passes back to ``__init__``). The
    base class penalises nothing.
    """

    def __call__(self, x: np.ndarray) -> float:
        """The penalty for the array ``x``."""
        return 0.0

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """d(penalty)/dx, shaped and typed like ``x``.

        Raises
        ------
        NotImplementedError
            In a subclass that defines a penalty (``__call__``) but not its gradient.
        """
        if type(self).__call__ is not Regularizer.__call__:
            raise NotImplementedError(
                f"{type(self).__name__} defines a penalty (__call__) but not its gradient: "
                "implement gradient(x), returning d(penalty)/dx shaped like x")
        return np.zeros_like(x)

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Regularizer":
        """The regularizer that :meth:`get_config` described."""
        return cls(**config)

    def get_config(self) -> Dict[str, Any]:
        """The constructor's keyword arguments (Keras' base class has none to give)."""
        raise NotImplementedError(f"{self} does not implement get_config()")


def _factor(value: Any, name: str) -> np.floating:
    """A regularization factor as Keras keeps it: a finite number cast to floatx."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"`{name}` must be a number (the regularization factor), got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    return np.dtype(backend.floatx()).type(value)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``; both factors default to 0 (use
    :func:`l1_l2` or the name ``'l1_l2'`` for 0.01 each)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x: np.ndarray) -> float:
        x = np.asarray(x)
        penalty = x.dtype.type(0)
        if self.l1:
            penalty += self.l1 * np.sum(np.abs(x))
        if self.l2:
            penalty += self.l2 * np.sum(np.square(x))
        return float(penalty)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        grad = np.zeros_like(x)
        if self.l1:
            grad += self.l1 * np.sign(x)
        if self.l2:
            grad += (2 * self.l2) * x
        return grad

    def get_config(self) -> Dict[str, Any]:
        return {"l1": float(self.l1), "l2": float(self.l2)}


class L1(Regularizer):
    """``l1 * sum(|x|)``."""

    def __init__(self, l1: float = 0.01, **kwargs: Any) -> None:
        l1 = kwargs.pop("l", l1)  # Keras' backwards-compatible spelling
        if kwargs:
            raise TypeError(f"Argument(s) not recognized: {kwargs}")
        self.l1 = _factor(0.01 if l1 is None else l1, "l1")

    def __call__(self, x: np.ndarray) -> float:
        return float(self.l1 * np.sum(np.abs(x)))

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self.l1 * np.sign(x)

    def get_config(self) -> Dict[str, Any]:
        return {"l1": float(self.l1)}


class L2(Regularizer):
    """``l2 * sum(x**2)``."""

    def __init__(self, l2: float = 0.01, **kwargs: Any) -> None:
        l2 = kwargs.pop("l", l2)
        if kwargs:
            raise TypeError(f"Argument(s) not recognized: {kwargs}")
        self.l2 = _factor(0.01 if l2 is None else l2, "l2")

    def __call__(self, x: np.ndarray) -> float:
        return float(self.l2 * np.sum(np.square(x)))

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return (2 * self.l2) * np.asarray(x)

    def get_config(self) -> Dict[str, Any]:
        return {"l2": float(self.l2)}


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """An :class:`L1L2` with 0.01 for both factors by default."""
    return L1L2(l1=l1, l2=l2)


# TF 2.4's aliases: the functions are the classes.
l1 = L1
l2 = L2

_BY_NAME: Dict[str, Any] = {"Regularizer": Regularizer, "L1L2": L1L2, "L1": L1, "L2": L2,
                            "l1": l1, "l2": l2, "l1_l2": l1_l2}


def serialize(regularizer: Any) -> Union[None, Dict[str, Any], str]:
    """``{'class_name': ..., 'config': ...}`` (a function's name for a function, None for None)."""
    return _serialization.serialize(regularizer)


def deserialize(config: Union[Dict[str, Any], str],
                custom_objects: Optional[Mapping[str, Any]] = None) -> Any:
    """Inverse of :func:`serialize`; ``custom_objects`` maps names to the user's classes.

    The name ``'l1_l2'`` gives ``L1L2(l1=0.01, l2=0.01)`` (Keras' special case:
    the class's own defaults are zeros).
    """
    if config == "l1_l2":
        return L1L2(l1=0.01, l2=0.01)
    return _serialization.deserialize(config, _BY_NAME, custom_objects, "regularizer")


def get(identifier: Union[None, str, Dict[str, Any], Callable[[np.ndarray], float]]) -> Any:
    """Resolve a layer's ``*_regularizer`` argument: ``None``, a name
    (``'l1'``, ``'l2'``, ``'l1_l2'``: default factors), a :func:`serialize`
    dict, or a callable (returned unchanged).

    Raises
    ------
    ValueError
        ``Unknown regularizer: <name>``, or an identifier of another type.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (dict, str)):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")


def gradient_of(regularizer: Any, where: str) -> Callable[[np.ndarray], np.ndarray]:
    """The function giving d(penalty)/dx for ``regularizer``, or a ``TypeError``.

    ``where`` says what it regularizes (e.g. ``"weight dense/kernel:0 of layer
    dense"``) for the message. A :class:`Regularizer` subclass that
    implements only ``__call__``, and a plain function without a
    ``gradient`` attribute, have none.
    """
    gradient = getattr(regularizer, "gradient", None)
    missing = not callable(gradient)
    if isinstance(regularizer, Regularizer) and type(regularizer).gradient is \
            Regularizer.gradient and type(regularizer).__call__ is not Regularizer.__call__:
        missing = True
    if missing:
        raise TypeError(
            f"The regularizer {regularizer!r} of {where} gives no gradient, and fastconv has "
            "no automatic differentiation: subclass fastconv.regularizers.Regularizer and "
            "implement gradient(x) (d(penalty)/dx, shaped like x) next to __call__, or set a "
            "`gradient` attribute on your function")
    return gradient
