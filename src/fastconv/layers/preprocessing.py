"""Preprocessing layers that always compute: ``Rescaling``, ``Resizing``,
``CenterCrop``, ``Normalization`` (tf.keras 2.4's
``layers.experimental.preprocessing``, Keras 3's ``layers``).

The image layers take NHWC batches ``(n, height, width, channels)`` and,
as Keras 3 does, single images ``(height, width, channels)`` (tf.keras 2.4
takes only batches). Inputs of any numeric dtype are cast to the layer's
dtype (float32), so ``uint8`` images come out float32, as in Keras.

Every layer here is linear in its input and has the exact backward pass,
so it can sit anywhere in a model. The geometry is :mod:`fastconv._image`'s
(TensorFlow's conventions). The random augmentation layers (RandomFlip ...
RandomCrop) are in :mod:`fastconv.layers.augmentation`.
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import _image, backend
from .base import InputSpec, Layer

__all__ = ["Rescaling", "Resizing", "CenterCrop", "Normalization"]

Shape = Tuple[Optional[int], ...]


def _positive_int(value: Any, name: str, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{what}: `{name}` must be a positive int, got {value!r}")
    return int(value)


class ImageLayer(Layer):
    """Base of the image layers: NHWC input, a batch or one image."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_spec = InputSpec(min_ndim=3, max_ndim=4)

    @property
    def _what(self) -> str:
        return f"Layer {self.name} ({type(self).__name__})"

    @staticmethod
    def _spatial(shape: Shape) -> Tuple[Optional[int], Optional[int]]:
        return shape[-3], shape[-2]

    @staticmethod
    def _with_spatial(shape: Shape, height: Optional[int], width: Optional[int]) -> Shape:
        return tuple(shape[:-3]) + (height, width, shape[-1])

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape."""
        return tuple(input_shape)

    def _check_fits(self, shape: Shape, height: int, width: int) -> None:
        """ValueError naming `height`/`width` when a crop is larger than the input."""
        h, w = self._spatial(tuple(shape))
        for name, size, target in (("height", h, height), ("width", w, width)):
            if size is not None and target > size:
                raise ValueError(f"{self._what}: the crop {name} {target} (`{name}`) is "
                                 f"greater than the input {name} {size} (input shape "
                                 f"{tuple(shape)})")


# ---------------------------------------------------------------------------

class Rescaling(Layer):
    """``inputs * scale + offset``, in the layer's dtype.

    Parameters
    ----------
    scale : float, or an array broadcasting against each sample (per channel, say)
        ``1 / 255`` maps ``[0, 255]`` to ``[0, 1]``; ``1 / 127.5`` with
        ``offset=-1`` maps it to ``[-1, 1]``.
    offset : float or array, default 0
        Added after scaling.

    Any input rank; the backward pass is ``d_outputs * scale``.
    """

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = f"Layer {self.name} (Rescaling)"
        self._scale = self._factor(scale, "scale", what)
        self._offset = self._factor(offset, "offset", what)
        self.scale, self.offset = scale, offset

    def _factor(self, value: Any, name: str, what: str) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or array.dtype.kind == "b" or \
                not np.all(np.isfinite(array)):
            raise ValueError(f"{what}: `{name}` must be a finite number or an array of them, "
                             f"got {value!r}")
        return array.astype(self._dtype)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape (``scale`` and ``offset`` must broadcast to it)."""
        shape = tuple(input_shape)
        for name, value in (("scale", self._scale), ("offset", self._offset)):
            if value.ndim > len(shape) or any(
                    v != 1 and s is not None and v != s
                    for v, s in zip(value.shape[::-1], shape[::-1])):
                raise ValueError(f"Layer {self.name} (Rescaling): `{name}` of shape "
                                 f"{value.shape} does not broadcast to the input shape {shape}")
        return shape

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, None]:
        """``x * scale + offset``; nothing to cache."""
        x = np.asarray(inputs, dtype=self._dtype)
        return x * self._scale + self._offset, None

    def backward(self, d_outputs: np.ndarray, cache: None, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """``d_outputs * scale``."""
        if not compute_dx:
            return None, []
        return np.asarray(d_outputs, dtype=self._dtype) * self._scale, []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"scale": _plain(self.scale), "offset": _plain(self.offset)})
        return config


def _plain(value: Any) -> Any:
    """An array argument as nested lists (what a JSON config holds)."""
    return value.tolist() if isinstance(value, np.ndarray) else value


class _ResizeCache(NamedTuple):
    input_size: Tuple[int, int]
    box: Tuple[int, int, int, int]   # (top, left, height, width) cropped before resizing


class Resizing(ImageLayer):
    """Resizes images to ``(height, width)``: ``tf.image.resize``.

    Parameters
    ----------
    height, width : positive int
    interpolation : {'bilinear', 'nearest', 'bicubic', 'area'}
        TensorFlow's definitions (see :func:`fastconv._image.resize`);
        tf.image.resize's ``'lanczos3'``, ``'lanczos5'``, ``'gaussian'``,
        ``'mitchellcubic'`` raise NotImplementedError.
    crop_to_aspect_ratio : bool, default False
        (tf.keras 2.6 and Keras 3) First crop the largest centred window
        with the target's aspect ratio, so the content is not distorted.

    Every method is linear in the input; the backward pass is exact.
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.height = _positive_int(height, "height", self._what)
        self.width = _positive_int(width, "width", self._what)
        try:
            _image.resize_weights(1, 1, interpolation)
        except ValueError:
            raise ValueError(f"{self._what}: `interpolation` must be one of "
                             f"{_image.RESIZE_METHODS}, got {interpolation!r}") from None
        self.interpolation = interpolation
        if not isinstance(crop_to_aspect_ratio, (bool, np.bool_)):
            raise ValueError(f"{self._what}: `crop_to_aspect_ratio` must be a bool, got "
                             f"{crop_to_aspect_ratio!r}")
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """``(..., height, width, channels)``."""
        return self._with_spatial(tuple(input_shape), self.height, self.width)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _ResizeCache]:
        """Crop (with ``crop_to_aspect_ratio``), then resize."""
        x = np.asarray(inputs, dtype=self._dtype)
        h, w = x.shape[-3:-1]
        box = (_image.aspect_crop_box(h, w, self.height, self.width)
               if self.crop_to_aspect_ratio else (0, 0, h, w))
        if box != (0, 0, h, w):
            x = _image.crop(x, *box)
        return _image.resize(x, self.height, self.width, self.interpolation), \
            _ResizeCache((h, w), box)

    def backward(self, d_outputs: np.ndarray, cache: _ResizeCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The transposed resize, then the crop's padding."""
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        top, left, height, width = cache.box
        dx = _image.resize_backward(dy, (height, width), self.interpolation)
        if (height, width) != cache.input_size:
            dx = _image.crop_backward(dx, cache.input_size, top, left)
        return dx, []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height": self.height, "width": self.width,
                       "interpolation": self.interpolation,
                       "crop_to_aspect_ratio": self.crop_to_aspect_ratio})
        return config


class _CropCache(NamedTuple):
    input_size: Tuple[int, int]
    top: int
    left: int


class CenterCrop(ImageLayer):
    """The centred ``height x width`` window of each image (the extra pixel of
    an odd difference is cut at the bottom / right, as Keras).

    Parameters
    ----------
    height, width : positive int
        At most the input's size: a larger crop raises ValueError, as the
        InvalidArgumentError of tf.keras 2.4 (Keras 3 resizes instead).
    """

    def __init__(self, height: int, width: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.height = _positive_int(height, "height", self._what)
        self.width = _positive_int(width, "width", self._what)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """``(..., height, width, channels)``."""
        self._check_fits(tuple(input_shape), self.height, self.width)
        return self._with_spatial(tuple(input_shape), self.height, self.width)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _CropCache]:
        """A crop (a copy)."""
        x = np.asarray(inputs, dtype=self._dtype)
        self._check_fits(x.shape, self.height, self.width)
        h, w = x.shape[-3:-1]
        top, left, _, _ = _image.center_crop_box(h, w, self.height, self.width)
        return _image.crop(x, top, left, self.height, self.width), _CropCache((h, w), top, left)

    def backward(self, d_outputs: np.ndarray, cache: _CropCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient padded back to the input's size with zeros."""
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        return _image.crop_backward(dy, cache.input_size, cache.top, cache.left), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height": self.height, "width": self.width})
        return config


# ---------------------------------------------------------------------------
# Normalization

def _batches(data: Any, batch_size: Optional[int], steps: Optional[int]) -> Iterable[Any]:
    """The batches of ``adapt``'s data, at most ``steps`` of them.

    An array (or nested lists of numbers) is one array, read in slices of
    ``batch_size`` samples; a generator, iterator, Sequence or list of
    arrays is a stream of batches, and an ``(x, y)`` batch gives its ``x``.
    """
    if isinstance(data, list) and data and all(isinstance(d, (np.ndarray, tuple))
                                               for d in data):
        pieces: Iterable[Any] = iter(data)
    elif isinstance(data, (np.ndarray, list, numbers.Number)):
        array = np.asarray(data)
        if array.ndim == 0:
            array = array.reshape(1)
        size = batch_size or max(len(array), 1)
        pieces = (array[i:i + size] for i in range(0, len(array), size))
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        pieces = (data[i] for i in range(len(data)))
    else:
        try:
            pieces = iter(data)
        except TypeError:
            raise TypeError("Normalization.adapt: `data` must be an array or an iterable of "
                            f"batches, got {type(data).__name__}") from None
    for index, piece in enumerate(pieces):
        if steps is not None and index >= steps:
            break
        yield piece[0] if isinstance(piece, tuple) else piece


class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), epsilon)`` per feature.

    Parameters
    ----------
    axis : int, tuple of int or None, default -1
        The axes that keep their own statistics (the features); the mean
        and variance are taken over every other axis. ``None``: one mean and
        one variance for everything. The batch axis 0 cannot be one.
    mean, variance : float or array, optional
        (tf.keras 2.6 and Keras 3) Fixed statistics, broadcast to the kept
        axes; give both or neither. Without them the layer holds
        non-trainable weights ``mean`` (zeros), ``variance`` (ones) and
        ``count`` (a float64 scalar; int64 in tf.keras 2.4), as tf.keras 2.4,
        which :meth:`adapt` sets and ``get_weights``/``save_weights`` carry.

    The backward pass is ``d_outputs / max(sqrt(variance), epsilon)``.
    """

    def __init__(self, axis: Any = -1, mean: Any = None, variance: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = f"Layer {self.name} (Normalization)"
        if axis is None:
            axes: Tuple[int, ...] = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)):
            axes = (int(axis),)
        elif isinstance(axis, (tuple, list)) and all(
                isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))
                for a in axis):
            axes = tuple(int(a) for a in axis)
        else:
            raise ValueError(f"{what}: `axis` must be an int, a tuple of ints or None, got "
                             f"{axis!r}")
        if 0 in axes:
            raise ValueError(f"{what}: `axis` may not be 0 (the batch axis), got {axis!r}")
        if len(set(axes)) != len(axes):
            raise ValueError(f"{what}: `axis` repeats an axis: {axis!r}")
        self.axis = axes
        if (mean is None) != (variance is None):
            raise ValueError(f"{what}: give both `mean` and `variance`, or neither (got "
                             f"mean={mean!r}, variance={variance!r})")
        for name, value in (("mean", mean), ("variance", variance)):
            if value is not None:
                array = np.asarray(value)
                if array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)):
                    raise ValueError(f"{what}: `{name}` must be a finite number or an array "
                                     f"of them, got {value!r}")
        if variance is not None and np.any(np.asarray(variance) < 0):
            raise ValueError(f"{what}: `variance` must be >= 0, got {variance!r}")
        self.input_mean, self.input_variance = mean, variance
        self._broadcast_shape: Optional[Tuple[int, ...]] = None
        self._stat_shape: Tuple[int, ...] = ()
        self._kept: Tuple[int, ...] = ()
        self.mean = self.variance = self.count = None

    # -- shapes ---------------------------------------------------------
    def _resolve(self, shape: Shape) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """``(kept axes (non-negative, sorted), statistics shape)`` for an input shape."""
        ndim = len(shape)
        kept = []
        for a in self.axis:
            if not -ndim <= a < ndim or a % ndim == 0:
                raise ValueError(f"Layer {self.name} (Normalization): `axis` {self.axis} does "
                                 f"not name non-batch axes of an input of rank {ndim} (shape "
                                 f"{tuple(shape)}); use axis=None for rank-1 data")
            kept.append(a % ndim)
        kept.sort()
        sizes = tuple(shape[a] for a in kept)
        if any(s is None for s in sizes):
            raise ValueError(f"Layer {self.name} (Normalization): the kept axes {tuple(kept)} "
                             f"of the input shape {tuple(shape)} must have known sizes")
        return tuple(kept), tuple(int(s) for s in sizes)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape."""
        shape = tuple(input_shape)
        _, sizes = self._resolve(shape)
        if self.built and sizes != self._stat_shape:
            raise ValueError(f"Layer {self.name} (Normalization) was built for features of "
                             f"shape {self._stat_shape}, got an input of shape {shape}")
        return shape

    def build(self, input_shape: Any) -> None:
        """The statistics: constants, or the non-trainable weights adapt() sets."""
        shape = tuple(input_shape)
        self._kept, self._stat_shape = self._resolve(shape)
        self._broadcast_shape = tuple(shape[a] if a in self._kept else 1
                                      for a in range(len(shape)))
        if self.input_mean is not None:
            try:
                self._mean = np.broadcast_to(np.asarray(self.input_mean, self._dtype),
                                             self._stat_shape).copy()
                self._variance = np.broadcast_to(np.asarray(self.input_variance, self._dtype),
                                                 self._stat_shape).copy()
            except ValueError:
                raise ValueError(f"Layer {self.name} (Normalization): `mean` and `variance` "
                                 f"must broadcast to the shape of the kept axes "
                                 f"{self._stat_shape}") from None
        else:
            self.mean = self.add_weight("mean", self._stat_shape, "zeros", trainable=False)
            self.variance = self.add_weight("variance", self._stat_shape, "ones",
                                            trainable=False)
            # tf.keras 2.4's count is int64; float64 here (exact to 2**53), as
            # fastconv's weight files hold floating-point arrays only.
            self.count = self.add_weight("count", (), "zeros", dtype=np.float64,
                                         trainable=False)
        self.built = True

    def _statistics(self) -> Tuple[np.ndarray, np.ndarray]:
        if self.mean is not None:
            return self.mean.numpy(), self.variance.numpy()
        return self._mean, self._variance

    # -- adapt ------------------------------------------------------------
    def adapt(self, data: Any, batch_size: Optional[int] = None, steps: Optional[int] = None,
              reset_state: bool = True) -> None:
        """Set ``mean`` and ``variance`` to the statistics of ``data``.

        Parameters
        ----------
        data : array, or an iterable (generator, list, Sequence) of batches
            ``(x, y)`` batches contribute their ``x``.
        batch_size : int, optional
            Reads an array in slices of this many samples (same result).
        steps : int, optional
            At most this many batches.
        reset_state : bool, default True
            False: merge with the statistics of earlier ``adapt`` calls
            (weighted by ``count``, as tf.keras 2.4).

        The variance is the population variance (divided by the count).
        """
        what = f"Layer {self.name} (Normalization)"
        if self.input_mean is not None:
            raise ValueError(f"{what}: adapt() cannot change the `mean` and `variance` given "
                             "to the constructor")
        for name, value in (("batch_size", batch_size), ("steps", steps)):
            if value is not None:
                _positive_int(value, name, f"{what}.adapt")
        count, mean, m2 = 0, None, None
        for batch in _batches(data, batch_size, steps):
            x = np.asarray(batch)
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{what}.adapt: the data must hold real numbers, got dtype "
                                f"{x.dtype}")
            if x.size == 0:
                continue
            if not self.built:
                self._check_and_build([(None,) + x.shape[1:]])
            kept, sizes = self._resolve(x.shape)
            if sizes != self._stat_shape:
                raise ValueError(f"{what}.adapt: a batch of shape {x.shape} has features of "
                                 f"shape {sizes}, the layer {self._stat_shape}")
            reduced = tuple(a for a in range(x.ndim) if a not in kept)
            x = x.astype(np.float64)
            n = int(np.prod([x.shape[a] for a in reduced], dtype=np.int64))
            batch_mean = x.mean(axis=reduced)
            batch_m2 = ((x - x.mean(axis=reduced, keepdims=True)) ** 2).sum(axis=reduced)
            count, mean, m2 = _merge(count, mean, m2, n, batch_mean, batch_m2)
        if count == 0:
            raise ValueError(f"{what}.adapt: `data` holds no samples")
        if not reset_state and int(self.count.numpy()) > 0:
            old = int(self.count.numpy())
            old_mean = self.mean.numpy().astype(np.float64)
            old_m2 = self.variance.numpy().astype(np.float64) * old
            count, mean, m2 = _merge(old, old_mean, old_m2, count, mean, m2)
        self.mean.assign(mean)
        self.variance.assign(m2 / count)
        self.count.assign(count)

    # -- computing ------------------------------------------------------
    def _inverse_std(self) -> np.ndarray:
        _, variance = self._statistics()
        return (1 / np.maximum(np.sqrt(variance), self._dtype.type(backend.epsilon()))
                ).astype(self._dtype).reshape(self._broadcast_shape[1:])

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, None]:
        """``(x - mean) / max(sqrt(variance), epsilon)``; nothing to cache."""
        x = np.asarray(inputs, dtype=self._dtype)
        mean, _ = self._statistics()
        return (x - mean.reshape(self._broadcast_shape[1:])) * self._inverse_std(), None

    def backward(self, d_outputs: np.ndarray, cache: None, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """``d_outputs / max(sqrt(variance), epsilon)`` (the statistics get no gradient)."""
        if not compute_dx:
            return None, []
        return np.asarray(d_outputs, dtype=self._dtype) * self._inverse_std(), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"axis": self.axis, "mean": _plain(self.input_mean),
                       "variance": _plain(self.input_variance)})
        return config


def _merge(count: int, mean: Optional[np.ndarray], m2: Optional[np.ndarray], n: int,
           batch_mean: np.ndarray, batch_m2: np.ndarray
           ) -> Tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise update of (count, mean, sum of squared deviations)."""
    if count == 0 or mean is None or m2 is None:
        return n, batch_mean, batch_m2
    total = count + n
    delta = batch_mean - mean
    return total, mean + delta * (n / total), m2 + batch_m2 + delta ** 2 * (count * n / total)
