"""Activation functions with the derivatives backpropagation needs.

Every activation here is a plain function on NumPy arrays that keeps the
input's dtype. Its derivative is registered alongside it and is looked up
with :func:`get_gradient`; a derivative has the signature
``gradient(dy, x, y) -> dx`` where ``x`` is the activation's input
(the pre-activation), ``y = f(x)`` its output and ``dy = dL/dy``. Passing both
lets each derivative use whichever is cheaper and more accurate (relu, sigmoid,
tanh and softmax only need ``y``).

Use :func:`get` to resolve ``None``, a name or a callable the way
``tf.keras.activations.get`` does, and :func:`register` to add your own
activation with a derivative so that layers can train through it.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Union

import numpy as np

from . import ops

__all__ = [
    "relu", "softmax", "sigmoid", "tanh", "linear", "elu", "selu", "softplus",
    "softsign", "swish", "exponential", "hard_sigmoid",
    "get", "get_gradient", "serialize", "register", "op_name",
]

ActivationFn = Callable[[np.ndarray], np.ndarray]
GradientFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Identifier = Union[None, str, ActivationFn]

# SELU constants (Klambauer et al., 2017), as Keras uses them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# ---------------------------------------------------------------------------
# The functions

def linear(x: np.ndarray) -> np.ndarray:
    """Identity: ``f(x) = x`` (also what ``None`` means)."""
    return x


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` (:func:`fastconv.ops.relu`: NumPy's result, in one
    parallel pass for float arrays)."""
    return ops.relu(x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""
    x = np.asarray(x)
    # exp(-|x|) is in (0, 1]: no overflow warning, no cancellation.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` along ``axis`` (the last one by default).

    The row maximum is subtracted first, so large logits do not overflow.
    As in Keras, a 1-D input is an error (there is no batch axis to keep).
    """
    x = np.asarray(x)
    if x.ndim <= 1:
        raise ValueError(f"Cannot apply softmax to a tensor that is 1D. "
                         f"Received input with shape {x.shape}")
    e = x - x.max(axis=axis, keepdims=True)
    if e.dtype.kind != "f":       # integers: exp makes floats (no in-place pass)
        e = np.exp(e)
        return e / e.sum(axis=axis, keepdims=True)
    # In place on the fresh difference (the same values as exp(e) / sum):
    # three small ufunc calls are most of a batch-1 output layer's cost.
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    x = np.asarray(x)
    # expm1 only of the non-positive part: exp of large positives would overflow.
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)


def selu(x: np.ndarray) -> np.ndarray:
    """Scaled ELU with the self-normalising constants."""
    return (_SELU_SCALE * elu(x, _SELU_ALPHA)).astype(np.asarray(x).dtype, copy=False)


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))``, stable for large ``|x|``."""
    return np.logaddexp(0, x).astype(np.asarray(x).dtype, copy=False)


def softsign(x: np.ndarray) -> np.ndarray:
    """``x / (1 + |x|)``."""
    return x / (1 + np.abs(x))


def swish(x: np.ndarray) -> np.ndarray:
    """``x * sigmoid(x)``."""
    return x * sigmoid(x)


def exponential(x: np.ndarray) -> np.ndarray:
    """``exp(x)``."""
    return np.exp(x)


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """Keras 2's piecewise-linear sigmoid: ``clip(0.2 * x + 0.5, 0, 1)``."""
    return np.clip(0.2 * np.asarray(x) + 0.5, 0, 1).astype(np.asarray(x).dtype, copy=False)


# ---------------------------------------------------------------------------
# Derivatives: gradient(dy, x, y) -> dL/dx

def _linear_gradient(dy, x, y):
    return dy


def _relu_gradient(dy, x, y):
    # y > 0 exactly where x > 0; at x == 0 the derivative is taken as 0, as in TF.
    return dy * (y > 0)


def _sigmoid_gradient(dy, x, y):
    return dy * y * (1 - y)


def _tanh_gradient(dy, x, y):
    return dy * (1 - y * y)


def _softmax_gradient(dy, x, y):
    # Jacobian-vector product of softmax along the last axis:
    # dx_i = y_i * (dy_i - sum_j dy_j y_j).
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _elu_gradient(dy, x, y):
    # For x <= 0, d/dx alpha*(exp(x)-1) = y + alpha with alpha = 1.
    return dy * np.where(x > 0, 1, y + 1)


def _selu_gradient(dy, x, y):
    return dy * np.where(x > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA)


def _softplus_gradient(dy, x, y):
    return dy * sigmoid(x)


def _softsign_gradient(dy, x, y):
    d = 1 + np.abs(x)
    return dy / (d * d)


def _swish_gradient(dy, x, y):
    s = sigmoid(x)
    return dy * (s + x * s * (1 - s))


def _exponential_gradient(dy, x, y):
    return dy * y


def _hard_sigmoid_gradient(dy, x, y):
    return dy * np.where((x > -2.5) & (x < 2.5), 0.2, 0.0).astype(dy.dtype, copy=False)


# name -> (function, derivative, TensorFlow op type of the last op it adds).
# The op type names a layer's output tensor (e.g. 'dense/Softmax:0'); None
# means the activation adds no op (linear), so the previous op names it.
_REGISTRY: Dict[str, tuple] = {
    "linear": (linear, _linear_gradient, None),
    "relu": (relu, _relu_gradient, "Relu"),
    "sigmoid": (sigmoid, _sigmoid_gradient, "Sigmoid"),
    "tanh": (tanh, _tanh_gradient, "Tanh"),
    "softmax": (softmax, _softmax_gradient, "Softmax"),
    "elu": (elu, _elu_gradient, "Elu"),
    "selu": (selu, _selu_gradient, "Selu"),
    "softplus": (softplus, _softplus_gradient, "Softplus"),
    "softsign": (softsign, _softsign_gradient, "Softsign"),
    "swish": (swish, _swish_gradient, "mul"),
    "exponential": (exponential, _exponential_gradient, "Exp"),
    "hard_sigmoid": (hard_sigmoid, _hard_sigmoid_gradient, "clip_by_value"),
}


def _entry_for(fn: ActivationFn) -> Optional[tuple]:
    for entry in _REGISTRY.values():
        if entry[0] is fn:
            return entry
    return None


def register(name: str, fn: ActivationFn, gradient: GradientFn,
             op_name: Optional[str] = None) -> None:
    """Make ``fn`` available as ``activation=name`` with its derivative.

    Parameters
    ----------
    name : str
        Lookup key for :func:`get`.
    fn : callable
        ``y = fn(x)`` on NumPy arrays.
    gradient : callable
        ``dx = gradient(dy, x, y)``.
    op_name : str, optional
        Name of the op in symbolic tensor names (defaults to ``fn.__name__``).
    """
    if not callable(fn) or not callable(gradient):
        raise TypeError("`fn` and `gradient` must be callables")
    _REGISTRY[name] = (fn, gradient, op_name or getattr(fn, "__name__", name))


def get(identifier: Identifier) -> ActivationFn:
    """Resolve an activation: ``None`` -> :func:`linear`, a name, or a callable.

    Raises
    ------
    ValueError
        ``Unknown activation function: <name>`` for an unknown name.
    TypeError
        For anything that is neither None, a string nor callable.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        entry = _REGISTRY.get(identifier)
        if entry is None:
            raise ValueError(f"Unknown activation function: {identifier}")
        return entry[0]
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret activation function identifier: {identifier!r}")


def get_gradient(fn: ActivationFn) -> GradientFn:
    """The derivative ``gradient(dy, x, y)`` of an activation from :func:`get`.

    A callable that was not registered may carry its own derivative as a
    ``gradient`` attribute. Otherwise training through it is impossible and
    this raises ``NotImplementedError`` naming the way out.
    """
    entry = _entry_for(fn)
    if entry is not None:
        return entry[1]
    gradient = getattr(fn, "gradient", None)
    if callable(gradient):
        return gradient
    raise NotImplementedError(
        f"activation {getattr(fn, '__name__', fn)!r} has no derivative, so gradients "
        "cannot flow through it; register one with fastconv.activations.register("
        "name, fn, gradient) or set fn.gradient = lambda dy, x, y: ...")


def serialize(fn: ActivationFn) -> str:
    """The registered name of an activation, else its ``__name__``."""
    for name, entry in _REGISTRY.items():
        if entry[0] is fn:
            return name
    return getattr(fn, "__name__", repr(fn))


def op_name(fn: ActivationFn) -> Optional[str]:
    """The op type this activation contributes to symbolic tensor names.

    ``None`` for :func:`linear` (it adds no op). Unregistered callables use
    their ``__name__`` (TensorFlow would show the last op they trace).
    """
    entry = _entry_for(fn)
    if entry is not None:
        return entry[2]
    return getattr(fn, "__name__", "activation")
