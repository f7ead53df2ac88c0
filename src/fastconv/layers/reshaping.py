"""Layers that move values without computing new ones: ``ZeroPadding2D``,
``Cropping2D``, ``UpSampling2D``, ``Reshape`` and ``Permute``.

Padding and cropping are a copy into zeros and a slice (NumPy), each the
other's backward pass; upsampling runs :func:`fastconv.ops.upsample2d`.
None of them has weights.
"""
from __future__ import annotations

import operator
from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import ops, shapes
from ._args import normalize_data_format
from .base import InputSpec, Layer

__all__ = ["ZeroPadding2D", "Cropping2D", "UpSampling2D", "Reshape", "Permute"]

Shape = Tuple[Optional[int], ...]
Pads = Tuple[Tuple[int, int], Tuple[int, int]]


def _non_negative_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a non-negative integer, got bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a non-negative integer, got "
                        f"{type(value).__name__} {value!r}") from None
    if number < 0:
        raise ValueError(f"`{name}` must be a non-negative integer, got {number}")
    return number


def _spatial_pairs(value: Any, name: str) -> Pads:
    """Keras' ZeroPadding2D/Cropping2D argument as ``((top, bottom), (left, right))``.

    ``n`` -> ``((n, n), (n, n))``; ``(h, w)`` -> ``((h, h), (w, w))``; each of
    the two entries may also be a pair (as Keras, entries of both kinds may mix).
    """
    forms = ("an int, a pair (symmetric_height, symmetric_width) or a pair of pairs "
             "((top, bottom), (left, right)) of non-negative integers")
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        n = _non_negative_int(value, name)
        return ((n, n), (n, n))
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"`{name}` must be {forms}, got {type(value).__name__} {value!r}")
    if len(value) != 2:
        raise ValueError(f"`{name}` should have two elements, {forms}. Found: {value!r}")
    pairs = []
    for axis, entry in enumerate(value):
        what = f"{name}[{axis}]"
        if isinstance(entry, (tuple, list)):
            if len(entry) != 2:
                raise ValueError(f"`{what}` must be an int or a pair (before, after), "
                                 f"got {entry!r}")
            pairs.append((_non_negative_int(entry[0], f"{what}[0]"),
                          _non_negative_int(entry[1], f"{what}[1]")))
        else:
            n = _non_negative_int(entry, what)
            pairs.append((n, n))
    return (pairs[0], pairs[1])


class _Spatial2D(Layer):
    """A layer over 4-D images in either layout (``data_format``)."""

    def __init__(self, data_format: Optional[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(
            data_format, f"Layer {self.name} ({type(self).__name__})", allow_channels_first=True)
        self.input_spec = InputSpec(ndim=4)

    @property
    def _channels_first(self) -> bool:
        return self.data_format == "channels_first"

    def _with_spatial(self, shape: Shape, height: Optional[int], width: Optional[int]) -> Shape:
        """``shape`` with its height and width replaced."""
        if self._channels_first:
            return (shape[0], shape[1], height, width)
        return (shape[0], height, width, shape[3])

    def _spatial(self, shape: Shape) -> Tuple[Optional[int], Optional[int]]:
        return (shape[2], shape[3]) if self._channels_first else (shape[1], shape[2])

    def _window(self, pads: Pads, sizes: Tuple[int, int]) -> Tuple[slice, ...]:
        """The index of the region ``pads`` leaves inside images of ``sizes``."""
        (top, bottom), (left, right) = pads
        rows = slice(top, sizes[0] - bottom)
        cols = slice(left, sizes[1] - right)
        everything = slice(None)
        if self._channels_first:
            return (everything, everything, rows, cols)
        return (everything, rows, cols, everything)

    def _padded_copy(self, x: np.ndarray, pads: Pads) -> np.ndarray:
        """``x`` inside zeros, ``pads`` rows/columns on each side."""
        (top, bottom), (left, right) = pads
        h, w = self._spatial(x.shape)
        out = np.zeros(self._with_spatial(x.shape, h + top + bottom, w + left + right), x.dtype)
        out[self._window(pads, self._spatial(out.shape))] = x
        return out

    def _cropped_copy(self, x: np.ndarray, pads: Pads) -> np.ndarray:
        return np.ascontiguousarray(x[self._window(pads, self._spatial(x.shape))])


class _ShapeCache(NamedTuple):
    input_shape: Tuple[int, ...]


class ZeroPadding2D(_Spatial2D):
    """Adds rows and columns of zeros around each image.

    Parameters
    ----------
    padding : int, (symmetric_height, symmetric_width) or ((top, bottom), (left, right))
        Non-negative integers; default ``(1, 1)``. Stored (and in
        :meth:`get_config`) as ``((top, bottom), (left, right))``, as Keras.
    data_format : {'channels_last', 'channels_first'} or None
        None: :func:`fastconv.backend.image_data_format`.

    The backward pass is the slice of the gradient the input occupies.
    """

    def __init__(self, padding: Any = (1, 1), data_format: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(data_format, **kwargs)
        self.padding = _spatial_pairs(padding, "padding")

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """Height and width grown by the pads (unknown sizes stay unknown)."""
        shape = tuple(input_shape)
        (top, bottom), (left, right) = self.padding
        h, w = self._spatial(shape)
        return self._with_spatial(shape, None if h is None else h + top + bottom,
                                  None if w is None else w + left + right)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _ShapeCache]:
        """A zero-filled copy with the input in the middle."""
        x = np.asarray(inputs, dtype=self._dtype)
        return self._padded_copy(x, self.padding), _ShapeCache(x.shape)

    def backward(self, d_outputs: np.ndarray, cache: _ShapeCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient's inner region (the pads' gradient goes nowhere)."""
        if not compute_dx:
            return None, []
        return self._cropped_copy(np.asarray(d_outputs, dtype=self._dtype), self.padding), []

    def _output_op_name(self, input_shape: Any) -> str:
        return "Pad"

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config


class Cropping2D(_Spatial2D):
    """Removes rows and columns at the edges of each image.

    Parameters
    ----------
    cropping : int, (symmetric_height, symmetric_width) or ((top, bottom), (left, right))
        Non-negative integers; default ``((0, 0), (0, 0))``. A crop that
        leaves no row or no column raises ``ValueError`` when the layer meets
        its input (Keras 2.4 builds an empty or negative shape instead).
    data_format : {'channels_last', 'channels_first'} or None

    The backward pass puts the gradient back in place inside zeros.
    """

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(data_format, **kwargs)
        self.cropping = _spatial_pairs(cropping, "cropping")

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """Height and width shrunk by the crops; a crop leaving nothing raises."""
        shape = tuple(input_shape)
        sizes = []
        for size, (before, after), what in zip(self._spatial(shape), self.cropping,
                                                ("height", "width")):
            if size is None:
                sizes.append(None)
                continue
            if before + after >= size:
                raise ValueError(
                    f"Layer {self.name} (Cropping2D): `cropping`={self.cropping} removes "
                    f"{before} + {after} = {before + after} rows of the input's {what} "
                    f"{size} (input shape {shape}), leaving none; the crops must add up to "
                    f"less than the {what}")
            sizes.append(size - before - after)
        return self._with_spatial(shape, sizes[0], sizes[1])

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _ShapeCache]:
        """A copy of the kept region."""
        x = np.asarray(inputs, dtype=self._dtype)
        self.compute_output_shape(x.shape)  # arrays larger or smaller than the graph's
        return self._cropped_copy(x, self.cropping), _ShapeCache(x.shape)

    def backward(self, d_outputs: np.ndarray, cache: _ShapeCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """Zeros where the crops were, the gradient inside."""
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        return self._padded_copy(dy, self.cropping), []

    def _output_op_name(self, input_shape: Any) -> str:
        return "strided_slice"

    def get_config(self):
        config = super().get_config()
        config.update({"cropping": self.cropping, "data_format": self.data_format})
        return config


class UpSampling2D(_Spatial2D):
    """Repeats (or interpolates) rows and columns by integer factors.

    Parameters
    ----------
    size : int or pair of positive int, default (2, 2)
        (rows factor, columns factor).
    data_format : {'channels_last', 'channels_first'} or None
    interpolation : {'nearest', 'bilinear'}
        Exactly these strings, as Keras 2.4. 'bilinear' is
        ``tf.image.resize``'s (half-pixel centres; see
        :func:`fastconv.ops.upsample2d`).
    """

    def __init__(self, size: Any = (2, 2), data_format: Optional[str] = None,
                 interpolation: str = "nearest", **kwargs: Any) -> None:
        super().__init__(data_format, **kwargs)
        self.size = shapes.normalize_pair(size, "size")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError('`interpolation` argument should be one of `"nearest"` or '
                             f'`"bilinear"`. Received: {interpolation!r}')
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """Height and width multiplied by ``size``."""
        shape = tuple(input_shape)
        h, w = self._spatial(shape)
        return self._with_spatial(shape, None if h is None else h * self.size[0],
                                  None if w is None else w * self.size[1])

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, None]:
        """:func:`fastconv.ops.upsample2d`; nothing to cache."""
        x = np.asarray(inputs, dtype=self._dtype)
        return ops.upsample2d(x, self.size, self.interpolation,
                              data_format=self.data_format), None

    def backward(self, d_outputs: np.ndarray, cache: None, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """:func:`fastconv.ops.upsample2d_backward`."""
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        return ops.upsample2d_backward(dy, self.size, self.interpolation,
                                       data_format=self.data_format), []

    def _output_op_name(self, input_shape: Any) -> str:
        # Keras' resize_images: tf.image.resize in NHWC, between two transposes
        # for channels_first.
        if self._channels_first:
            return "transpose_1"
        return "resize/" + ("ResizeNearestNeighbor" if self.interpolation == "nearest" else
                            "ResizeBilinear")

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format,
                       "interpolation": self.interpolation})
        return config


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (the batch axis stays).

    Parameters
    ----------
    target_shape : tuple of int
        Without the batch axis; positive sizes, one of them may be -1 (the
        size that makes the element count fit).

    A shape that cannot hold the input's elements raises ``ValueError``
    naming ``target_shape``: when the layer meets its input if the input's
    sizes are known, else when it meets the arrays.
    """

    def __init__(self, target_shape: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = f"Layer {self.name} (Reshape)"
        if not isinstance(target_shape, (tuple, list)):
            raise TypeError(f"{what}: `target_shape` must be a tuple of integers, got "
                            f"{type(target_shape).__name__} {target_shape!r}")
        dims = []
        for i, dim in enumerate(target_shape):
            if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
                raise TypeError(f"{what}: `target_shape` must hold integers, got "
                                f"{target_shape!r} ({type(dim).__name__} at position {i})")
            if dim < 1 and dim != -1:
                raise ValueError(f"{what}: `target_shape` sizes must be positive or -1, got "
                                 f"{tuple(target_shape)}")
            dims.append(int(dim))
        if dims.count(-1) > 1:
            raise ValueError(f"{what}: `target_shape` may hold one unknown dimension (-1), "
                             f"got {tuple(dims)}")
        self.target_shape = tuple(dims)

    def _fitted(self, sample_shape: Tuple[int, ...]) -> Tuple[int, ...]:
        """``target_shape`` with its -1 resolved for samples of ``sample_shape``."""
        count = int(np.prod(sample_shape, dtype=np.int64))
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        if -1 in self.target_shape:
            if count % known == 0:
                return tuple(count // known if d == -1 else d for d in self.target_shape)
        elif count == known:
            return self.target_shape
        raise ValueError(
            f"Layer {self.name} (Reshape): `target_shape` {self.target_shape} cannot hold "
            f"the {count} values of each sample of shape {tuple(sample_shape)} "
            "(total size of new array must be unchanged)")

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """``(batch,) + target_shape``, -1 resolved when the input's sizes are known."""
        shape = tuple(input_shape)
        if any(d is None for d in shape[1:]):
            return (shape[0],) + tuple(None if d == -1 else d for d in self.target_shape)
        return (shape[0],) + self._fitted(shape[1:])

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _ShapeCache]:
        """A reshape (a view of a contiguous input)."""
        x = np.asarray(inputs, dtype=self._dtype)
        return x.reshape(x.shape[:1] + self._fitted(x.shape[1:])), _ShapeCache(x.shape)

    def backward(self, d_outputs: np.ndarray, cache: _ShapeCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient reshaped back."""
        return (np.reshape(d_outputs, cache.input_shape) if compute_dx else None), []

    def _output_op_name(self, input_shape: Any) -> str:
        return "Reshape"

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


class Permute(Layer):
    """Reorders the non-batch axes: ``Permute((2, 1))`` swaps the first two.

    Parameters
    ----------
    dims : tuple of int
        A permutation of ``1 .. n`` (the batch axis is 0 and stays); the
        input must have rank ``n + 1``.
    """

    def __init__(self, dims: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = f"Layer {self.name} (Permute)"
        if not isinstance(dims, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_))
                for d in dims):
            raise TypeError(f"{what}: `dims` must be a tuple of integers, got {dims!r}")
        if sorted(int(d) for d in dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Invalid permutation `dims` for Permute Layer: {tuple(dims)}. "
                             "The set of indices in `dims` must be consecutive and start "
                             "from 1.")
        self.dims = tuple(int(d) for d in dims)
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)
        self._inverse = tuple(int(i) for i in np.argsort((0,) + self.dims))

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input's sizes in the order ``dims`` gives."""
        shape = tuple(input_shape)
        return (shape[0],) + tuple(shape[d] for d in self.dims)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, None]:
        """A transposed copy (contiguous, as the ops downstream read it)."""
        x = np.asarray(inputs, dtype=self._dtype)
        return np.ascontiguousarray(x.transpose((0,) + self.dims)), None

    def backward(self, d_outputs: np.ndarray, cache: None, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient transposed back."""
        if not compute_dx:
            return None, []
        return np.ascontiguousarray(np.transpose(d_outputs, self._inverse)), []

    def _output_op_name(self, input_shape: Any) -> str:
        return "transpose"

    def get_config(self):
        config = super().get_config()
        config["dims"] = self.dims
        return config
