"""Pooling layers: max and average pooling over windows and over whole inputs, 1-D and 2-D.

``MaxPooling2D``/``MaxPool2D``, ``AveragePooling2D``/``AvgPool2D``,
``MaxPooling1D``/``MaxPool1D``, ``AveragePooling1D``/``AvgPool1D``,
``GlobalMaxPooling2D``/``GlobalMaxPool2D``,
``GlobalAveragePooling2D``/``GlobalAvgPool2D`` and their 1-D forms. Every
one computes through :mod:`fastconv.ops` in either layout, without
transposing: ``channels_last`` is ``(batch, height, width, channels)`` (1-D:
``(batch, steps, features)``), ``channels_first`` is ``(batch, channels,
height, width)`` (1-D: ``(batch, features, steps)``). None of them has
weights.
"""
from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import ops, shapes
from ._args import normalize_data_format, normalize_padding
from .base import InputSpec, Layer

__all__ = ["MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D",
           "GlobalMaxPooling2D", "GlobalMaxPool2D", "GlobalAveragePooling2D", "GlobalAvgPool2D",
           "GlobalMaxPooling1D", "GlobalMaxPool1D", "GlobalAveragePooling1D", "GlobalAvgPool1D"]

Shape = Tuple[Optional[int], ...]


class _PoolCache(NamedTuple):
    x: np.ndarray  # max: where each window's maximum is; average: the input's shape
    y: Optional[np.ndarray] = None   # the output (max pooling's window maxima)


class _Pooling(Layer):
    """Window pooling over ``_rank - 2`` spatial axes (Keras' ``Pooling1D``/``Pooling2D``).

    Subclasses name the op pair, as staticmethods (``_forward_op``,
    ``_backward_op``: the :mod:`fastconv.ops` functions, called as ``op(x,
    pool_size, strides, padding, data_format=...)`` and ``op(dy, x,
    pool_size, ...)``), and TensorFlow's op type for the output's name.
    """

    _rank = 4
    _forward_op: Callable[..., np.ndarray]
    _backward_op: Callable[..., np.ndarray]
    _op_type = ""

    def __init__(self, pool_size: Any, strides: Any, padding: str, data_format: Optional[str],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        n = self._rank - 2
        self.pool_size = shapes.normalize_tuple(pool_size, n, "pool_size")
        self.strides = (self.pool_size if strides is None
                        else shapes.normalize_tuple(strides, n, "strides"))
        self.padding = normalize_padding(padding)
        self.data_format = normalize_data_format(
            data_format, f"Layer {self.name} ({type(self).__name__})", allow_channels_first=True)
        self.input_spec = InputSpec(ndim=self._rank)

    @property
    def _channels_first(self) -> bool:
        return self.data_format == "channels_first"

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape with its spatial sizes pooled (TensorFlow's padding rules)."""
        shape = tuple(input_shape)
        spatial = shape[2:] if self._channels_first else shape[1:-1]
        names = ("input height", "input width") if self._rank == 4 else ("input steps",)
        pooled = []
        for size, pool, stride, what in zip(spatial, self.pool_size, self.strides, names):
            if size is None:
                pooled.append(None)
                continue
            try:
                pooled.append(shapes.resolve_padding(size, pool, stride, self.padding,
                                                     what=what).out)
            except ValueError as exc:
                raise ValueError(f"Layer {self.name} ({type(self).__name__}) cannot be applied "
                                 f"to input shape {shape}: {exc}") from exc
        if self._channels_first:
            return (shape[0], shape[1]) + tuple(pooled)
        return (shape[0],) + tuple(pooled) + (shape[-1],)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _PoolCache]:
        """The pooled windows; caches the input."""
        x = np.asarray(inputs, dtype=self._dtype)
        y = self._forward_op(x, self.pool_size, self.strides, self.padding,
                             data_format=self.data_format)
        return y, _PoolCache(x, y)

    def backward(self, d_outputs: np.ndarray, cache: _PoolCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The input gradient from :mod:`fastconv.ops` (no weights)."""
        if not compute_dx:
            return None, []
        dx = self._backward_op(np.asarray(d_outputs, dtype=self._dtype), cache.x,
                               self.pool_size, self.strides, self.padding,
                               data_format=self.data_format)
        return dx, []

    def takes_relu_mask(self) -> bool:
        """Whether a ReLU's derivative before this pooling can be taken on its
        output instead (:meth:`backward_through_relu`): max pooling with
        windows that do not overlap, where the only input cell a window's
        gradient reaches (its maximum) holds the window's output."""
        return (self._forward_op is ops.max_pool2d and
                all(s >= k for s, k in zip(self.strides, self.pool_size)))

    def backward_through_relu(self, d_outputs: np.ndarray, cache: _PoolCache,
                              compute_dx: bool = True
                              ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """:meth:`backward`, times the derivative of the ReLU that made the
        input (``dx * (x > 0)``), for a pooling that takes_relu_mask: the mask
        of the output, a quarter of the input at 2x2, applied to ``d_outputs``.
        Bit for bit the two steps: each input cell gets one window's gradient
        or 0."""
        return self.backward(ops.relu_backward(np.asarray(d_outputs, dtype=self._dtype),
                                               cache.y), cache, compute_dx)

    def _output_op_name(self, input_shape: Any) -> str:
        # Keras' 1-D pooling is a 2-D pool between expand_dims and squeeze.
        return self._op_type if self._rank == 4 else "Squeeze"

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding,
                       "strides": self.strides, "data_format": self.data_format})
        return config


class MaxPooling2D(_Pooling):
    """2-D max pooling (alias ``MaxPool2D``).

    Parameters
    ----------
    pool_size : int or pair of int, default (2, 2)
    strides : int, pair of int or None
        ``None`` means ``pool_size``.
    padding : {'valid', 'same'}, case-insensitive
        With 'same', padded cells never win (they act as -inf); the extra
        row/column goes to the bottom/right.
    data_format : {'channels_last', 'channels_first'} or None
        None: :func:`fastconv.backend.image_data_format` ('channels_last').

    The gradient goes to the first maximum of each window in row-major order
    (TensorFlow's CPU rule); overlapping windows add up.
    """

    _forward_op = staticmethod(ops.max_pool2d)
    _backward_op = staticmethod(ops.max_pool2d_backward)
    _op_type = "MaxPool"

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_Pooling):
    """2-D average pooling (alias ``AvgPool2D``); the arguments of :class:`MaxPooling2D`.

    With ``padding='same'`` each window's sum is divided by the number of its
    real cells, padded ones left out (TensorFlow's ``AvgPool``, not PyTorch's
    default ``count_include_pad=True``). The gradient spreads each window's
    share evenly over its cells.
    """

    _forward_op = staticmethod(ops.avg_pool2d)
    _backward_op = staticmethod(ops.avg_pool2d_backward)
    _op_type = "AvgPool"

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class MaxPooling1D(_Pooling):
    """1-D max pooling over ``(batch, steps, features)`` (alias ``MaxPool1D``).

    Parameters
    ----------
    pool_size : int, default 2
    strides : int or None
        ``None`` means ``pool_size``.
    padding : {'valid', 'same'}, case-insensitive
    data_format : {'channels_last', 'channels_first'}, default 'channels_last'
        'channels_first' reads ``(batch, features, steps)``; None means
        :func:`fastconv.backend.image_data_format` (Keras 2.4's defaults).

    The rules of :class:`MaxPooling2D` along one axis.
    """

    _rank = 3
    _forward_op = staticmethod(ops.max_pool1d)
    _backward_op = staticmethod(ops.max_pool1d_backward)

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = "channels_last", **kwargs: Any) -> None:
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling1D(_Pooling):
    """1-D average pooling (alias ``AvgPool1D``); the arguments of :class:`MaxPooling1D`
    and the 'same' rule of :class:`AveragePooling2D`."""

    _rank = 3
    _forward_op = staticmethod(ops.avg_pool1d)
    _backward_op = staticmethod(ops.avg_pool1d_backward)

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = "channels_last", **kwargs: Any) -> None:
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


# ---------------------------------------------------------------------------
# Global pooling: one window over all the spatial axes

class _GlobalCache(NamedTuple):
    x4: np.ndarray  # the input as 4-D (1-D input: a height of 1), for the ops


class _GlobalPooling(Layer):
    """Reduces the spatial axes to one value per sample and channel.

    Subclasses name the :mod:`fastconv.ops` pair (``op(x, data_format=)``
    and ``op(dy, x, data_format=)`` on 4-D arrays, as staticmethods) and
    TensorFlow's op type. 1-D input runs through the 2-D ops as a height-1 image: a
    reshape, never a copy.

    ``keepdims`` is not in tf.keras 2.4 (Keras 2.6 added it); fastconv
    accepts it with 2.6's meaning and leaves it out of :meth:`get_config`
    while it is False, so configs stay those of 2.4.
    """

    _rank = 4
    _forward_op: Callable[..., np.ndarray]
    _backward_op: Callable[..., np.ndarray]
    _op_type = ""

    def __init__(self, data_format: Optional[str], keepdims: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(
            data_format, f"Layer {self.name} ({type(self).__name__})", allow_channels_first=True)
        if not isinstance(keepdims, (bool, np.bool_)):
            raise TypeError(f"Layer {self.name} ({type(self).__name__}): `keepdims` must be "
                            f"True or False, got {type(keepdims).__name__} {keepdims!r}")
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=self._rank)

    @property
    def _channels_first(self) -> bool:
        return self.data_format == "channels_first"

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """``(batch, channels)``; with ``keepdims`` the spatial axes stay, as size 1."""
        shape = tuple(input_shape)
        channels = shape[1] if self._channels_first else shape[-1]
        if not self.keepdims:
            return (shape[0], channels)
        ones = (1,) * (self._rank - 2)
        return (shape[0], channels) + ones if self._channels_first else \
            (shape[0],) + ones + (channels,)

    def _as_4d(self, x: np.ndarray) -> np.ndarray:
        if self._rank == 4:
            return x
        n, a, b = x.shape  # NWC -> (N, 1, W, C); NCW -> (N, C, 1, W)
        return x.reshape((n, a, 1, b) if self._channels_first else (n, 1, a, b))

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _GlobalCache]:
        """The reduction; caches the input."""
        x4 = self._as_4d(np.asarray(inputs, dtype=self._dtype))
        y = self._forward_op(x4, data_format=self.data_format)  # (batch, channels)
        if self.keepdims:
            ones = (1,) * (self._rank - 2)
            y = y.reshape(y.shape + ones if self._channels_first else
                          y.shape[:1] + ones + y.shape[1:])
        return y, _GlobalCache(x4)

    def backward(self, d_outputs: np.ndarray, cache: _GlobalCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The input gradient from :mod:`fastconv.ops` (no weights)."""
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        # The ops take (batch, channels) with keepdims=False, whatever the rank.
        dx = self._backward_op(dy.reshape(dy.shape[0], -1), cache.x4,
                               data_format=self.data_format)
        if self._rank == 3:
            n, c = dx.shape[0], dx.shape[1 if self._channels_first else 3]
            dx = dx.reshape((n, c, -1) if self._channels_first else (n, -1, c))
        return dx, []

    def _output_op_name(self, input_shape: Any) -> str:
        return self._op_type

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        if self.keepdims:
            config["keepdims"] = True
        return config


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over height and width (alias ``GlobalAvgPool2D``).

    Parameters
    ----------
    data_format : {'channels_last', 'channels_first'} or None
        None: :func:`fastconv.backend.image_data_format`.
    keepdims : bool, default False
        Keras 2.6's argument (not in 2.4): keep height and width as size 1,
        ``(batch, 1, 1, channels)`` or ``(batch, channels, 1, 1)``.
    """

    _forward_op = staticmethod(ops.global_avg_pool2d)
    _backward_op = staticmethod(ops.global_avg_pool2d_backward)
    _op_type = "Mean"

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(data_format, keepdims, **kwargs)


class GlobalMaxPooling2D(_GlobalPooling):
    """Maximum over height and width (alias ``GlobalMaxPool2D``); the arguments of
    :class:`GlobalAveragePooling2D`. The gradient goes to the first maximum in
    row-major (height, width) order."""

    _forward_op = staticmethod(ops.global_max_pool2d)
    _backward_op = staticmethod(ops.global_max_pool2d_backward)
    _op_type = "Max"

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(data_format, keepdims, **kwargs)


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over the steps (alias ``GlobalAvgPool1D``).

    Parameters
    ----------
    data_format : {'channels_last', 'channels_first'}, default 'channels_last'
        ``(batch, steps, features)`` or ``(batch, features, steps)``; None
        means :func:`fastconv.backend.image_data_format`.
    keepdims : bool, default False
        Keras 2.6's argument (not in 2.4): ``(batch, 1, features)`` or
        ``(batch, features, 1)``.

    Keras' ``mask`` call argument has no counterpart: fastconv has no masking.
    """

    _rank = 3
    _forward_op = staticmethod(ops.global_avg_pool2d)
    _backward_op = staticmethod(ops.global_avg_pool2d_backward)
    _op_type = "Mean"

    def __init__(self, data_format: Optional[str] = "channels_last", keepdims: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(data_format, keepdims, **kwargs)


class GlobalMaxPooling1D(_GlobalPooling):
    """Maximum over the steps (alias ``GlobalMaxPool1D``); the arguments of
    :class:`GlobalAveragePooling1D`; the gradient goes to the first maximum."""

    _rank = 3
    _forward_op = staticmethod(ops.global_max_pool2d)
    _backward_op = staticmethod(ops.global_max_pool2d_backward)
    _op_type = "Max"

    def __init__(self, data_format: Optional[str] = "channels_last", keepdims: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(data_format, keepdims, **kwargs)


# Keras' aliases: the same classes, so they share the automatic names.
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
