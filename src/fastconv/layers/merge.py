"""Merge layers for branching graphs: ``Add``, ``Subtract``, ``Multiply``, ``Average``,
``Maximum``, ``Minimum`` (element-wise) and ``Concatenate``, with their
functional forms ``add(inputs)``... ``concatenate(inputs, axis=-1)``.

The element-wise layers follow Keras 2.4's ``_Merge`` shape rules:

* the batch sizes must agree where known (else ``ValueError``);
* the other axes broadcast as NumPy does, aligned at the end: a size of 1
  stretches, an unknown size (``None``) gives an unknown size, two known
  sizes > 1 must be equal;
* an input of lower rank first gets new axes of size 1 right after the batch
  axis, until all ranks agree: ``(batch, 3)`` merged with ``(batch, 4, 3)``
  is read as ``(batch, 1, 3)``.

Backward, a broadcast input gets its gradient summed over the axes it was
stretched along. Maximum and Minimum send each element's gradient to the
input holding the winning value, the first one on ties (TensorFlow's rule
for ``maximum(a, b)``: ``a`` wins when ``a >= b``).
"""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .. import ops
from ._autodiff import sum_to_shape
from .base import Layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate"]

Shape = Tuple[Optional[int], ...]


def _check_list(layer: Layer, shapes: Any) -> List[Shape]:
    if not isinstance(shapes, (list, tuple)) or not shapes or not isinstance(
            shapes[0], (list, tuple)):
        raise ValueError("A merge layer should be called on a list of inputs.")
    if len(shapes) < 2:
        raise ValueError(f"A merge layer should be called on a list of at least 2 inputs. "
                         f"Got {len(shapes)} inputs.")
    return [tuple(s) for s in shapes]


def _elementwise_shape(shape1: Shape, shape2: Shape) -> Shape:
    """Keras' ``_compute_elemwise_op_output_shape`` (non-batch axes, aligned at the end)."""
    if len(shape1) < len(shape2):
        shape1, shape2 = shape2, shape1
    if not shape2:
        return shape1
    output = list(shape1[:len(shape1) - len(shape2)])
    for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
        if i is None or j is None:
            output.append(None)
        elif i == 1:
            output.append(j)
        elif j == 1 or i == j:
            output.append(i)
        else:
            raise ValueError(f"Operands could not be broadcast together with shapes "
                             f"{shape1} {shape2}")
    return tuple(output)


def _same_rank(arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Each array with axes of size 1 inserted after the batch axis up to the
    largest rank (views)."""
    ndim = max(a.ndim for a in arrays)
    return [a.reshape(a.shape[:1] + (1,) * (ndim - a.ndim) + a.shape[1:]) if a.ndim < ndim
            else a for a in arrays]


def _fold(ufunc: np.ufunc, arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``ufunc(...ufunc(ufunc(a0, a1), a2)..., an)``: TensorFlow's pairwise order."""
    result = arrays[0]
    for x in arrays[1:]:
        result = ufunc(result, x)
    return result


class _MergeCache(NamedTuple):
    inputs: List[np.ndarray]             # rank-matched inputs (what the merge read)
    input_shapes: List[Tuple[int, ...]]  # as given, for the gradients' shapes
    output: np.ndarray


class _Merge(Layer):
    """Element-wise merge of a list of inputs (Keras' ``_Merge``).

    Subclasses implement ``_merge(arrays) -> array`` on rank-matched inputs
    and ``_merge_backward(dy, cache) -> [gradient per input]``, each
    gradient of the output's shape or one broadcasting to it;
    :meth:`backward` sums them back to the inputs' shapes.
    """

    _takes_list = True
    _op_type = ""

    def _check_count(self, count: int) -> None:
        """Subclasses needing a particular number of inputs raise here."""

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """Keras' broadcast of the non-batch axes; the known batch size, if any."""
        shapes = _check_list(self, input_shape)
        self._check_count(len(shapes))
        batch_sizes = {s[0] for s in shapes if s[0] is not None}
        if len(batch_sizes) > 1:
            raise ValueError(f"Can not merge tensors with different batch sizes. Got tensors "
                             f"with shapes : {list(shapes)}")
        output = shapes[0][1:]
        for shape in shapes[1:]:
            output = _elementwise_shape(output, shape[1:])
        return (batch_sizes.pop() if batch_sizes else None,) + output

    def forward(self, inputs: Sequence[np.ndarray], training: bool = False
                ) -> Tuple[np.ndarray, _MergeCache]:
        """The merge of the rank-matched inputs; caches them and the output."""
        arrays = [np.asarray(x, dtype=self._dtype) for x in inputs]
        self._check_count(len(arrays))
        matched = _same_rank(arrays)
        try:
            np.broadcast_shapes(*(a.shape for a in matched))
        except ValueError:
            raise ValueError(f"Layer {self.name} ({type(self).__name__}): inputs of shapes "
                             f"{[a.shape for a in arrays]} cannot be broadcast together"
                             ) from None
        y = np.asarray(self._merge(matched), dtype=self._dtype)
        return y, _MergeCache(matched, [a.shape for a in arrays], y)

    def backward(self, d_outputs: np.ndarray, cache: _MergeCache, compute_dx: bool = True
                 ) -> Tuple[Optional[List[np.ndarray]], List[np.ndarray]]:
        """Each input's gradient, summed over the axes it was broadcast along.

        The arrays may be shared between inputs (Add): read-only.
        """
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        grads = self._merge_backward(dy, cache)
        return [sum_to_shape(np.broadcast_to(g, dy.shape), x.shape).reshape(shape)
                for g, x, shape in zip(grads, cache.inputs, cache.input_shapes)], []

    def _merge(self, arrays: List[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _merge_backward(self, dy: np.ndarray, cache: _MergeCache) -> List[np.ndarray]:
        raise NotImplementedError

    def _output_op_name(self, input_shape: Any) -> str:
        # The last of TensorFlow's n - 1 pairwise ops: add, add_1, ...
        count = len(input_shape)
        return self._op_type if count == 2 else f"{self._op_type}_{count - 2}"


class Add(_Merge):
    """Element-wise sum of a list of inputs."""

    _op_type = "add"

    def _merge(self, arrays):
        return _fold(ops.add, arrays)

    def _merge_backward(self, dy, cache):
        return [dy] * len(cache.inputs)


class Subtract(_Merge):
    """``inputs[0] - inputs[1]``: exactly two inputs."""

    _op_type = "sub"

    def _check_count(self, count: int) -> None:
        if count != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs "
                             f"(layer {self.name} got {count})")

    def _merge(self, arrays):
        return arrays[0] - arrays[1]

    def _merge_backward(self, dy, cache):
        return [dy, -dy]


class Multiply(_Merge):
    """Element-wise product of a list of inputs.

    Each input's gradient is ``dy`` times the product of the other inputs
    (multiplied out, never divided, so zeros are fine).
    """

    _op_type = "mul"

    def _merge(self, arrays):
        return _fold(np.multiply, arrays)

    def _merge_backward(self, dy, cache):
        xs = cache.inputs
        # Products of the others, directly: merges have a handful of inputs.
        return [dy * _fold(np.multiply, xs[:i] + xs[i + 1:]) for i in range(len(xs))]


class Average(_Merge):
    """Element-wise mean of a list of inputs (their sum divided by their count)."""

    _op_type = "truediv"

    def _merge(self, arrays):
        return _fold(np.add, arrays) / self._dtype.type(len(arrays))

    def _merge_backward(self, dy, cache):
        return [dy / self._dtype.type(len(cache.inputs))] * len(cache.inputs)

    def _output_op_name(self, input_shape: Any) -> str:
        return "truediv"  # one division after the additions


class _Extremum(_Merge):
    """Maximum or Minimum: the gradient goes to the first input holding the result."""

    _reduce: np.ufunc

    def _merge(self, arrays):
        return _fold(self._reduce, arrays)

    def _merge_backward(self, dy, cache):
        taken = np.zeros(cache.output.shape, dtype=bool)
        zero = dy.dtype.type(0)
        grads = []
        for x in cache.inputs:
            wins = (x == cache.output) & ~taken
            taken |= wins
            grads.append(np.where(wins, dy, zero))
        return grads


class Maximum(_Extremum):
    """Element-wise maximum of a list of inputs; ties send the gradient to the first."""

    _op_type = "Maximum"
    _reduce = np.maximum


class Minimum(_Extremum):
    """Element-wise minimum of a list of inputs; ties send the gradient to the first."""

    _op_type = "Minimum"
    _reduce = np.minimum


class _ConcatCache(NamedTuple):
    split_points: List[int]
    axis: int


class Concatenate(Layer):
    """Joins a list of inputs along ``axis`` (the last one by default).

    Parameters
    ----------
    axis : int
        Must not be the batch axis.
    """

    _takes_list = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _axis_for(self, ndim: int) -> int:
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= axis < ndim:
            raise ValueError(f"Layer {self.name} (Concatenate): axis {self.axis} is out of "
                             f"range or the batch axis for inputs of rank {ndim}")
        return axis

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """Shapes must match except on ``axis``, where sizes add up."""
        shapes = _check_list(self, input_shape)
        ndim = len(shapes[0])
        mismatch = ValueError("A `Concatenate` layer requires inputs with matching shapes "
                              f"except for the concat axis. Got inputs shapes: {shapes}")
        if any(len(s) != ndim for s in shapes):
            raise mismatch
        axis = self._axis_for(ndim)
        result = list(shapes[0])
        for shape in shapes[1:]:
            for i, (a, b) in enumerate(zip(result, shape)):
                if i != axis and a is not None and b is not None and a != b:
                    raise mismatch
            result = [b if (i != axis and a is None) else a for i, (a, b) in
                      enumerate(zip(result, shape))]
        sizes = [s[axis] for s in shapes]
        result[axis] = None if any(s is None for s in sizes) else sum(sizes)
        return tuple(result)

    def forward(self, inputs: Sequence[np.ndarray], training: bool = False
                ) -> Tuple[np.ndarray, _ConcatCache]:
        """``np.concatenate``; caches where to split the gradient."""
        arrays = [np.asarray(x, dtype=self._dtype) for x in inputs]
        axis = self._axis_for(arrays[0].ndim)
        split_points = list(np.cumsum([a.shape[axis] for a in arrays])[:-1])
        return np.concatenate(arrays, axis=axis), _ConcatCache(split_points, axis)

    def backward(self, d_outputs: np.ndarray, cache: _ConcatCache, compute_dx: bool = True
                 ) -> Tuple[Optional[List[np.ndarray]], List[np.ndarray]]:
        """The gradient split back into the inputs' pieces."""
        if not compute_dx:
            return None, []
        pieces = np.split(d_outputs, cache.split_points, axis=cache.axis)
        return [np.ascontiguousarray(p) for p in pieces], []

    def _output_op_name(self, input_shape: Any) -> str:
        return "concat"

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


# ---------------------------------------------------------------------------
# Functional forms (Keras' ``layers.add(inputs, **kwargs)`` ...): a new layer, called

def add(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: Sequence[Any], axis: int = -1, **kwargs: Any) -> Any:
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
