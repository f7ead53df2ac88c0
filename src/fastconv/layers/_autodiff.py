"""Reverse-mode derivatives of element-wise NumPy arithmetic, for ``Lambda`` layers.

A ``Lambda`` wraps an arbitrary Python function, whose derivative fastconv
cannot know in general. The common case is safe, though: arithmetic such as
``lambda x: (x - 0.5) * 2``, ``lambda x: x ** 2 + np.exp(-x)`` or
``lambda t: t[0] * t[1]``. :func:`trace` runs the function on
:class:`Traced` stand-ins that compute with the real values and record every
operation, and :func:`gradients` walks the record backwards.

What is followed (everything else raises :class:`NotTraceable`, so a
function is either differentiated exactly or refused, never guessed):

* the operators ``+ - * / **``, unary ``-``, ``+`` and ``abs()``, with
  Python numbers, NumPy arrays (broadcasting) and other traced values;
* the NumPy ufuncs in :data:`_UNARY` and :data:`_BINARY` (``np.exp``,
  ``np.log``, ``np.sqrt``, ``np.square``, ``np.tanh``, ``np.maximum``...);
* comparisons and rounding (``x > 0``, ``np.sign``, ``np.floor``...), whose
  results are constants: gradient 0, as TensorFlow's;
* indexing and slicing (``x[:, :3]``, ``x[..., ::-1]``); the gradient goes
  back to the cells read, added up where cells are read more than once;
* ``.shape``, ``.ndim``, ``.size``, ``.dtype`` and ``len()``.

Refused, among others: reductions (``np.sum``, ``.mean()``), reshapes and
other methods, ``np.where``/``np.concatenate`` and any ``__array_function__``
API, conversion to an array or a number, and truth tests on the values.

The derivative rules are TensorFlow's, including at the edges:
``maximum(a, b)`` sends the gradient to ``a`` where ``a >= b`` (``minimum``:
``a <= b``), ``abs`` has derivative ``sign(x)`` (0 at 0), ``b`` in ``a ** b``
gets ``a ** b * log(a)`` where ``a > 0`` and 0 elsewhere.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["NotTraceable", "Traced", "Trace", "trace", "gradients", "sum_to_shape"]


class NotTraceable(TypeError):
    """The function did something whose derivative fastconv does not follow."""


def sum_to_shape(grad: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """The gradient of a value of ``shape`` that NumPy broadcast to ``grad.shape``
    (here and in the merge layers):
    ``grad`` summed over the leading axes broadcasting added and over the axes
    where ``shape`` has size 1."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


# d(output)/d(input) rules: (inputs' values, output value, upstream gradient)
# -> the gradient for each input position.
_Rule = Callable[[Sequence[Any], np.ndarray, np.ndarray], Tuple[Any, ...]]

_UNARY: Dict[np.ufunc, _Rule] = {
    np.negative: lambda v, y, g: (-g,),
    np.positive: lambda v, y, g: (g,),
    np.absolute: lambda v, y, g: (g * np.sign(v[0]),),
    np.exp: lambda v, y, g: (g * y,),
    np.expm1: lambda v, y, g: (g * (y + 1),),
    np.log: lambda v, y, g: (g / v[0],),
    np.log1p: lambda v, y, g: (g / (1 + v[0]),),
    np.sqrt: lambda v, y, g: (g / (2 * y),),
    np.square: lambda v, y, g: (g * 2 * v[0],),
    np.reciprocal: lambda v, y, g: (-g * y * y,),
    np.tanh: lambda v, y, g: (g * (1 - y * y),),
    np.sin: lambda v, y, g: (g * np.cos(v[0]),),
    np.cos: lambda v, y, g: (-g * np.sin(v[0]),),
}


def _power_rule(v: Sequence[Any], y: np.ndarray, g: np.ndarray) -> Tuple[Any, Any]:
    a, b = v
    positive = np.asarray(a) > 0
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1: inf, as TensorFlow's
        da = g * b * np.power(a, b - 1)
        db = g * y * np.where(positive, np.log(np.where(positive, a, 1)), 0)
    return da, db


_BINARY: Dict[np.ufunc, _Rule] = {
    np.add: lambda v, y, g: (g, g),
    np.subtract: lambda v, y, g: (g, -g),
    np.multiply: lambda v, y, g: (g * v[1], g * v[0]),
    np.true_divide: lambda v, y, g: (g / v[1], -g * v[0] / (v[1] * v[1])),
    np.power: _power_rule,
    np.maximum: lambda v, y, g: (g * (v[0] >= v[1]), g * (v[0] < v[1])),
    np.minimum: lambda v, y, g: (g * (v[0] <= v[1]), g * (v[0] > v[1])),
}

# Results that are constants for differentiation (gradient 0, as TensorFlow's).
_CONSTANT = {np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
             np.sign, np.floor, np.ceil, np.rint, np.trunc, np.isnan, np.isinf, np.isfinite,
             np.logical_and, np.logical_or, np.logical_not, np.logical_xor}


class Trace:
    """The record of one traced call: every :class:`Traced` value, in creation order."""

    def __init__(self) -> None:
        self.values: List["Traced"] = []


class Traced:
    """A value of a traced computation: computes with NumPy, records how it was made."""

    __slots__ = ("value", "_trace", "_index", "_parents", "_rule", "_operands")
    __hash__ = None  # type: ignore[assignment]  # == returns an array, as NumPy's

    def __init__(self, value: np.ndarray, trace: Trace,
                 parents: Sequence[Tuple[int, "Traced"]] = (), rule: Optional[Any] = None,
                 operands: Sequence[Any] = ()) -> None:
        self.value = value
        self._trace = trace
        self._index = len(trace.values)
        self._parents = tuple(parents)  # (operand position, traced operand)
        self._rule = rule               # (values, output, grad) -> grads per position
        self._operands = tuple(operands)
        trace.values.append(self)

    # -- what the value may be asked -------------------------------------
    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    dtype = property(lambda self: self.value.dtype)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"<fastconv traced value shape={self.value.shape} dtype={self.value.dtype}>"

    # -- NumPy's protocols -------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        if method != "__call__" or kwargs:
            raise NotTraceable(f"{name} with {sorted(kwargs) or method}")
        traced = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Traced)]
        for _, x in traced:
            if x._trace is not self._trace:
                raise NotTraceable("values of two different traces met")
        values = [x.value if isinstance(x, Traced) else x for x in inputs]
        result = ufunc(*values)
        if ufunc in _CONSTANT:
            return result
        rules = _UNARY if len(inputs) == 1 else _BINARY
        if ufunc not in rules:
            raise NotTraceable(name)
        return Traced(np.asarray(result), self._trace, traced, rules[ufunc], values)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise NotTraceable(f"np.{getattr(func, '__name__', func)}")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotTraceable("conversion to an array (np.asarray)")

    # -- refused Python protocols ------------------------------------------
    def _refuse(self, *args: Any) -> Any:
        raise NotTraceable("a truth test, a conversion to a number or an iteration")

    __bool__ = __float__ = __int__ = __index__ = __complex__ = __iter__ = _refuse

    def __getattr__(self, name: str) -> Any:
        # Only attributes not found otherwise: methods such as .mean, .reshape.
        # Protocol probes (getattr(x, '__deepcopy__', None)) get the usual answer.
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotTraceable(f"the attribute or method .{name}")

    # -- indexing ------------------------------------------------------------
    def __getitem__(self, key: Any) -> "Traced":
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, Traced) for k in keys):
            raise NotTraceable("indexing with a traced value")
        shape = self.value.shape

        def rule(values: Sequence[Any], y: np.ndarray, g: np.ndarray) -> Tuple[np.ndarray]:
            dx = np.zeros(shape, dtype=g.dtype)
            np.add.at(dx, key, g)  # cells read more than once add up
            return (dx,)

        return Traced(np.asarray(self.value[key]), self._trace, [(0, self)], rule,
                      [self.value])

    # -- operators: NumPy's ufuncs, so one set of rules serves both ----------
    def __add__(self, other): return np.add(self, other)
    def __radd__(self, other): return np.add(other, self)
    def __sub__(self, other): return np.subtract(self, other)
    def __rsub__(self, other): return np.subtract(other, self)
    def __mul__(self, other): return np.multiply(self, other)
    def __rmul__(self, other): return np.multiply(other, self)
    def __truediv__(self, other): return np.true_divide(self, other)
    def __rtruediv__(self, other): return np.true_divide(other, self)
    def __pow__(self, other): return np.power(self, other)
    def __rpow__(self, other): return np.power(other, self)
    def __neg__(self): return np.negative(self)
    def __pos__(self): return np.positive(self)
    def __abs__(self): return np.absolute(self)
    def __lt__(self, other): return np.less(self, other)
    def __le__(self, other): return np.less_equal(self, other)
    def __gt__(self, other): return np.greater(self, other)
    def __ge__(self, other): return np.greater_equal(self, other)
    def __eq__(self, other): return np.equal(self, other)  # type: ignore[override]
    def __ne__(self, other): return np.not_equal(self, other)  # type: ignore[override]


def trace(function: Callable[..., Any], inputs: Sequence[np.ndarray], *args: Any,
          **kwargs: Any) -> Tuple[Trace, List[Traced], Any]:
    """Run ``function(traced_inputs_or_list, *args, **kwargs)``.

    ``inputs`` holds one array (the function gets one traced value) or
    several (it gets a list). Returns the trace, the traced inputs and the
    function's result (a :class:`Traced`, or a constant when the result does
    not depend on the inputs). Raises :class:`NotTraceable` for what the
    module docstring lists as refused.
    """
    record = Trace()
    traced = [Traced(np.asarray(x), record) for x in inputs]
    argument: Any = traced[0] if len(traced) == 1 else traced
    return record, traced, function(argument, *args, **kwargs)


def gradients(record: Trace, inputs: Sequence[Traced], output: Any,
              d_output: np.ndarray) -> List[np.ndarray]:
    """d(loss)/d(input) for each traced input, given d(loss)/d(output).

    ``output`` is :func:`trace`'s result; a constant output gives zeros.
    Each gradient has its input's shape and dtype.
    """
    grads: Dict[int, np.ndarray] = {}
    if isinstance(output, Traced):
        grads[output._index] = np.asarray(d_output)
        # Creation order is an order in which every value follows its operands.
        for value in reversed(record.values[:output._index + 1]):
            g = grads.get(value._index)
            if g is None or not value._parents:
                continue
            del grads[value._index]
            contributions = value._rule(value._operands, value.value, g)
            for position, parent in value._parents:
                part = sum_to_shape(np.asarray(contributions[position]), parent.value.shape)
                previous = grads.get(parent._index)
                grads[parent._index] = part if previous is None else previous + part
    return [np.asarray(grads.get(x._index, np.zeros_like(x.value)), dtype=x.value.dtype)
            for x in inputs]
