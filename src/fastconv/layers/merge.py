"""Merge layers for branching graphs: ``Add`` and ``Concatenate``."""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .base import Layer

__all__ = ["Add", "Concatenate"]

Shape = Tuple[Optional[int], ...]


def _check_list(layer: Layer, shapes: Any) -> List[Shape]:
    if not isinstance(shapes, (list, tuple)) or not shapes or not isinstance(
            shapes[0], (list, tuple)):
        raise ValueError("A merge layer should be called on a list of inputs.")
    if len(shapes) < 2:
        raise ValueError(f"A merge layer should be called on a list of at least 2 inputs. "
                         f"Got {len(shapes)} inputs.")
    return [tuple(s) for s in shapes]


class Add(Layer):
    """Element-wise sum of a list of inputs of the same shape."""

    _takes_list = True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The common shape (known dims win over ``None``)."""
        shapes = _check_list(self, input_shape)
        result = list(shapes[0])
        for shape in shapes[1:]:
            if len(shape) != len(result) or any(
                    a is not None and b is not None and a != b for a, b in zip(result, shape)):
                # fastconv does not broadcast: every input must have the same shape.
                raise ValueError("Operands could not be broadcast together with shapes "
                                 + " ".join(str(s) for s in shapes))
            result = [a if a is not None else b for a, b in zip(result, shape)]
        return tuple(result)

    def forward(self, inputs: Sequence[np.ndarray], training: bool = False
                ) -> Tuple[np.ndarray, int]:
        """The sum; the cache is just the number of inputs."""
        arrays = [np.asarray(x, dtype=self._dtype) for x in inputs]
        total = arrays[0].copy()
        for x in arrays[1:]:
            if x.shape != total.shape:
                raise ValueError(f"Layer {self.name}: inputs have shapes "
                                 f"{[a.shape for a in arrays]}; they must be equal")
            total += x
        return total, len(arrays)

    def backward(self, d_outputs: np.ndarray, cache: int, compute_dx: bool = True
                 ) -> Tuple[Optional[List[np.ndarray]], List[np.ndarray]]:
        """The same gradient for every input (shared, read-only: do not modify it)."""
        return ([d_outputs] * cache if compute_dx else None), []

    def _output_op_name(self, input_shape: Any) -> str:
        return "add"


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
