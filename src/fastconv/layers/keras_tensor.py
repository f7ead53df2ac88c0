"""Symbolic tensors: what calling a layer on ``Input(...)`` returns.

A :class:`KerasTensor` holds no data, only a shape (batch dimension usually
``None``), a dtype and the layer call that produced it. Calling layers on
symbolic tensors records a graph that :class:`fastconv.models.Model` runs.
The printed forms copy TF 2.4's ``KerasTensor``, ``TensorSpec``,
``TensorShape`` and ``tf.float32`` so notebooks print the same text.
"""
from __future__ import annotations

from typing import Any, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np

__all__ = ["DType", "TensorShape", "TensorSpec", "KerasTensor", "KerasHistory",
           "as_dtype"]

Dim = Optional[int]


class DType:
    """A dtype that prints like TensorFlow's: ``repr`` is ``tf.float32``.

    Compares equal to the NumPy dtype and to its name, so
    ``t.dtype == 'float32'`` and ``t.dtype == np.float32`` hold.
    """

    __slots__ = ("_np",)

    def __init__(self, dtype: Any) -> None:
        self._np = np.dtype(dtype)

    @property
    def name(self) -> str:
        """The dtype's name, e.g. ``'float32'``."""
        return self._np.name

    @property
    def as_numpy_dtype(self) -> type:
        """The NumPy scalar type, e.g. ``numpy.float32``."""
        return self._np.type

    def __repr__(self) -> str:
        return f"tf.{self.name}"

    def __str__(self) -> str:
        return f"<dtype: {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return self._np == other._np
        try:
            return self._np == np.dtype(other)  # type: ignore[arg-type]
        except TypeError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self._np)


def as_dtype(dtype: Any) -> DType:
    """``DType`` from a name, NumPy dtype or ``DType``."""
    return dtype if isinstance(dtype, DType) else DType(dtype)


class TensorShape(tuple):
    """A shape whose dims are ints or ``None`` (unknown, e.g. the batch).

    ``str`` gives ``(None, 3, 3, 1)``, ``repr`` gives
    ``TensorShape([None, 3, 3, 1])``; indexing and iteration give the dims,
    and it compares equal to tuples and lists of the same dims.
    """

    def __new__(cls, dims: Iterable[Dim]) -> "TensorShape":
        return super().__new__(cls, (None if d is None else int(d) for d in dims))

    @property
    def rank(self) -> int:
        """Number of dims."""
        return len(self)

    ndims = rank

    def as_list(self) -> List[Dim]:
        """The dims as a list."""
        return list(self)

    def is_fully_defined(self) -> bool:
        """True when no dim is ``None``."""
        return all(d is not None for d in self)

    def __str__(self) -> str:
        return tuple.__repr__(tuple(self))

    def __repr__(self) -> str:
        return f"TensorShape({list(self)})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = tuple.__hash__


class TensorSpec(NamedTuple):
    """Shape, dtype and optional name of a tensor (TF's ``TensorSpec`` text)."""

    shape: TensorShape
    dtype: DType
    name: Optional[str] = None

    def __repr__(self) -> str:
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype!r}, name={self.name!r})"


class KerasHistory(NamedTuple):
    """Where a symbolic tensor comes from: ``layer._inbound_nodes[node_index]``."""

    # A fastconv.layers.Layer; not imported, as layers.base imports this module.
    layer: Any
    node_index: int
    tensor_index: int


class KerasTensor:
    """A symbolic tensor: shape and dtype known, values not.

    Attributes
    ----------
    shape : TensorShape
    dtype : DType
    name : str
        TensorFlow-style, ``'<layer>/<op>:0'`` (e.g. ``'conv2d/Relu:0'``);
        documented as not unique, as in Keras.
    type_spec : TensorSpec
    node : the layer call that made it (internal).

    Symbolic tensors have no values: ``len(t)``, ``np.asarray(t)`` and
    ``hash(t)`` raise ``TypeError``. Run a :class:`fastconv.models.Model` on
    data to get arrays.
    """

    def __init__(self, shape: Iterable[Dim], dtype: Any, name: str,
                 keras_history: KerasHistory, spec_name: Optional[str] = None) -> None:
        self.type_spec = TensorSpec(TensorShape(shape), as_dtype(dtype), spec_name)
        self.name = name
        self._keras_history = keras_history

    @property
    def shape(self) -> TensorShape:
        """The shape; the batch dim is ``None`` unless fixed by ``Input(batch_size=...)``."""
        return self.type_spec.shape

    @property
    def dtype(self) -> DType:
        """The dtype, printed as ``tf.float32``."""
        return self.type_spec.dtype

    @property
    def node(self):
        """The :class:`~fastconv.layers.base.Node` (layer call) that produced this tensor."""
        layer, node_index, _ = self._keras_history
        return layer._inbound_nodes[node_index]

    def _layer_description(self) -> str:
        return f"created by layer '{self._keras_history.layer.name}'"

    def __str__(self) -> str:
        return (f"KerasTensor(type_spec={self.type_spec!r}, name={self.name!r}, "
                f"description=\"{self._layer_description()}\")")

    def __repr__(self) -> str:
        return (f"<KerasTensor: shape={self.shape} dtype={self.dtype.name} "
                f"({self._layer_description()})>")

    def __len__(self) -> int:
        raise TypeError("Keras symbolic tensors do not implement `__len__`: their batch "
                        f"size is not known. Shape: {self.shape}")

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(
            f"Cannot convert a symbolic KerasTensor ({self.name}) to a NumPy array: it has "
            "no values. Build a fastconv.models.Model from your inputs and outputs and call "
            "it (or predict) on arrays.")

    def __hash__(self) -> int:
        raise TypeError("KerasTensors are unhashable (as TensorFlow tensors); use id(tensor) "
                        "as a dict key instead.")

    def __bool__(self) -> bool:
        raise TypeError("The truth value of a symbolic KerasTensor is unknown.")

    def __iter__(self):
        raise TypeError("Cannot iterate over a symbolic KerasTensor.")


def shape_tuple(shape: Iterable[Dim]) -> Tuple[Dim, ...]:
    """A plain tuple of dims (``None`` for unknown)."""
    return tuple(None if d is None else int(d) for d in shape)
