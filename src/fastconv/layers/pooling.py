"""``MaxPooling2D`` (alias ``MaxPool2D``)."""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import ops, shapes
from ._args import normalize_data_format, normalize_padding, window_output_shape
from .base import InputSpec, Layer

__all__ = ["MaxPooling2D", "MaxPool2D"]


class _PoolCache(NamedTuple):
    x: np.ndarray  # the backward pass finds each window's first maximum in x


class MaxPooling2D(Layer):
    """2-D max pooling over NHWC input.

    Parameters
    ----------
    pool_size : int or pair of int, default (2, 2)
    strides : int, pair of int or None
        ``None`` means ``pool_size``.
    padding : {'valid', 'same'}, case-insensitive
        With 'same', padded cells never win (they act as -inf).
    data_format : None or 'channels_last'

    The gradient goes to the first maximum of each window in row-major order
    (TensorFlow's CPU rule); overlapping windows add up. No weights.
    """

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = shapes.normalize_pair(pool_size, "pool_size")
        self.strides = (self.pool_size if strides is None
                        else shapes.normalize_pair(strides, "strides"))
        self.padding = normalize_padding(padding)
        self.data_format = normalize_data_format(data_format, f"Layer {self.name} "
                                                              "(MaxPooling2D)")
        self.input_spec = InputSpec(ndim=4)

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """``(batch, out_h, out_w, channels)``."""
        batch_h_w = window_output_shape(self.name, "MaxPooling2D", input_shape, self.pool_size,
                                        self.strides, self.padding)
        return batch_h_w + (tuple(input_shape)[-1],)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _PoolCache]:
        """Window maxima; caches the input."""
        x = np.asarray(inputs, dtype=self._dtype)
        y = ops.max_pool2d(x, self.pool_size, self.strides, self.padding)
        return y, _PoolCache(x)

    def backward(self, d_outputs: np.ndarray, cache: _PoolCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """Routes each output gradient to its window's maximum."""
        if not compute_dx:
            return None, []
        dx = ops.max_pool2d_backward(np.asarray(d_outputs, dtype=self._dtype), cache.x,
                                     self.pool_size, self.strides, self.padding)
        return dx, []

    def _output_op_name(self, input_shape: Any) -> str:
        return "MaxPool"

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding,
                       "strides": self.strides, "data_format": self.data_format})
        return config


# Keras' alias: the same class, so it is also named max_pooling2d.
MaxPool2D = MaxPooling2D
