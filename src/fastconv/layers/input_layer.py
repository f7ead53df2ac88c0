"""``Input()`` and ``InputLayer``: where a functional graph starts."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import backend
from .base import Layer, Node
from .keras_tensor import KerasHistory, KerasTensor, shape_tuple

__all__ = ["Input", "InputLayer"]


def _checked_dims(shape: Sequence[Any], what: str) -> Tuple[Optional[int], ...]:
    dims = []
    for d in shape:
        if d is None:
            dims.append(None)
            continue
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ValueError(f"`{what}` dims must be non-negative integers or None, "
                             f"got {tuple(shape)}")
        dims.append(int(d))
    return tuple(dims)


class InputLayer(Layer):
    """The layer behind :func:`Input`: holds the graph's entry tensor.

    Parameters
    ----------
    input_shape : tuple, optional
        Shape without the batch dimension.
    batch_size : int, optional
    dtype : optional
        ``'float32'`` by default; integer and bool dtypes are accepted too.
    name : str, optional
        Default ``input_<n>``, one-based, with its own counter.
    batch_input_shape : tuple, optional
        Full shape including the batch dimension (instead of ``input_shape``).
    """

    # Integer inputs feed Embedding layers (``Input((10,), dtype='int32')``).
    _dtype_kinds = "biuf"

    def __init__(self, input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_size: Optional[int] = None, dtype: Any = None,
                 name: Optional[str] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 **kwargs: Any) -> None:
        for key in ("sparse", "ragged"):
            if kwargs.pop(key, False):
                raise NotImplementedError(f"InputLayer: `{key}=True` is not supported")
        if kwargs.pop("input_tensor", None) is not None:
            raise NotImplementedError("InputLayer: `input_tensor` is not supported")
        if not name:
            # Keras' quirk: inputs count from 1 with their own counter.
            name = f"input_{backend.get_uid('input')}"
        super().__init__(trainable=False, name=name, dtype=dtype, **kwargs)
        if batch_input_shape is not None:
            if input_shape is not None or batch_size is not None:
                raise ValueError("Only provide the `input_shape` OR `batch_input_shape` "
                                 "argument to InputLayer, not both at the same time.")
            full_shape = _checked_dims(batch_input_shape, "batch_input_shape")
        elif input_shape is not None:
            if isinstance(input_shape, (int, np.integer)):
                input_shape = (input_shape,)
            full_shape = ((None if batch_size is None else int(batch_size)),) + _checked_dims(
                input_shape, "shape")
        else:
            raise ValueError("InputLayer needs `input_shape` or `batch_input_shape`")
        self._batch_input_shape = full_shape
        self.built = True
        node = Node(self, [])
        node.output = KerasTensor(full_shape, self._dtype, self.name,
                                  KerasHistory(self, 0, 0), spec_name=self.name)

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        return shape_tuple(input_shape)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, None]:
        return inputs, None

    def backward(self, d_outputs: np.ndarray, cache: Any, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        return (d_outputs if compute_dx else None), []

    def get_config(self):
        """tf.keras 2.4's keys: ``batch_input_shape``, ``dtype``, ``sparse``,
        ``ragged``, ``name`` (no ``trainable``: an InputLayer has no weights)."""
        return {"batch_input_shape": self._batch_input_shape, "dtype": self.dtype,
                "sparse": False, "ragged": False, "name": self.name}


def Input(shape: Union[None, int, Sequence[Optional[int]]] = None,
          batch_size: Optional[int] = None, name: Optional[str] = None,
          dtype: Any = None, batch_shape: Optional[Sequence[Optional[int]]] = None,
          **kwargs: Any) -> KerasTensor:
    """A symbolic input tensor, as ``tf.keras.Input``.

    Parameters
    ----------
    shape : int or tuple
        Shape of one sample, without the batch dimension (``None`` entries
        are unknown sizes). An int ``n`` means ``(n,)``.
    batch_size : int, optional
        Fixes the batch dimension; otherwise it is ``None``.
    name : str, optional
        Default ``input_1``, ``input_2``, ... (reset by
        :func:`fastconv.backend.clear_session`).
    dtype : optional
        ``'float32'`` by default; integers (``'int32'``) for indices into an
        :class:`~fastconv.layers.Embedding`.
    batch_shape : tuple, optional
        Full shape including the batch dimension, instead of ``shape``.

    Returns
    -------
    KerasTensor
        e.g. shape ``(None, 28, 28, 1)``.
    """
    if kwargs.pop("tensor", None) is not None:
        raise NotImplementedError("Input: the `tensor` argument is not supported")
    if shape is None and batch_shape is None:
        raise ValueError("Please provide to Input either a `shape` or a `tensor` argument. "
                         "Note that `shape` does not include the batch dimension.")
    if shape is not None and batch_shape is not None:
        raise ValueError("Only provide the `shape` OR `batch_shape` argument to Input, "
                         "not both at the same time.")
    layer = InputLayer(input_shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                       batch_input_shape=batch_shape, **kwargs)
    return layer._inbound_nodes[0].output
