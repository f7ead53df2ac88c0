"""Geometry of NHWC image batches, vectorised NumPy: resizing, affine and
projective warps, crops, flips, with their gradients.

The conventions are TensorFlow's (what tf.keras 2.4's preprocessing layers
compute), so that the layers of :mod:`fastconv.layers.preprocessing` and
the data tools of :mod:`fastconv.preprocessing` agree with Keras:

* :func:`resize` is ``tf.image.resize`` (``antialias=False``): half-pixel
  centres for ``'bilinear'``, ``'nearest'`` and ``'bicubic'`` (Keys' cubic,
  ``a = -0.5``, taps outside the image dropped and the rest renormalised,
  weights read from TF's 1024-step table), exact box averages for
  ``'area'``.
* :func:`affine_transform` is ``tf.raw_ops.ImageProjectiveTransformV3``: a
  transform maps each *output* pixel ``(x, y)`` (column, row) to the *input*
  point it samples; ``fill_mode`` moves that point back inside the image
  before interpolating (TF's own definitions of ``'reflect'``, ``'wrap'``,
  ``'nearest'``, ``'constant'``, see :func:`map_coordinates`).

Every function takes one image ``(height, width, channels)`` or a batch
``(n, height, width, channels)`` and returns the same rank. Floating images
keep their dtype; other images are computed and returned in float32.

Each linear operation has a gradient (the transposed operation), for layers
that sit inside a model: :func:`resize_backward`, :func:`sample_backward`,
:func:`crop_backward`. A warp is split in two for that reason:
:func:`affine_sampling` computes where each output value reads its input
(a :class:`Sampling`, reusable), :func:`sample` applies it and
:func:`sample_backward` sends a gradient back through it.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Tuple

import numpy as np

__all__ = ["RESIZE_METHODS", "INTERPOLATIONS", "FILL_MODES", "resize", "resize_backward",
           "resize_weights", "affine_transform", "affine_sampling", "Sampling", "sample",
           "sample_backward", "map_coordinates", "as_transforms", "rotation_matrices",
           "zoom_matrices", "translation_matrices", "crop", "crop_backward", "center_crop_box",
           "aspect_crop_box", "flip"]

RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area")
INTERPOLATIONS = ("nearest", "bilinear")
FILL_MODES = ("reflect", "wrap", "constant", "nearest")
# tf.image.resize methods fastconv does not implement (a clear error, not "unknown").
_UNSUPPORTED_RESIZE = ("lanczos3", "lanczos5", "gaussian", "mitchellcubic")

Taps = Tuple[np.ndarray, np.ndarray]  # (index (out, k) int64, weight (out, k) float64)


# ---------------------------------------------------------------------------
# Arguments

def _as_images(images: Any, name: str = "images") -> Tuple[np.ndarray, bool]:
    """``(batch (n, h, w, c) of a float dtype, whether the input was one image)``."""
    array = np.asarray(images)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold real numbers, got dtype {array.dtype}")
    if array.ndim not in (3, 4):
        raise ValueError(f"`{name}` must be one image (height, width, channels) or a batch "
                         f"(n, height, width, channels), got shape {array.shape}")
    if array.dtype.kind != "f":
        array = array.astype(np.float32)
    single = array.ndim == 3
    return (array[None] if single else array), single


def _positive_size(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


def _check_choice(value: Any, name: str, choices: Sequence[str],
                  unsupported: Sequence[str] = ()) -> str:
    if isinstance(value, str) and value in unsupported:
        raise NotImplementedError(f"`{name}`={value!r} (a tf.image.resize method) is not "
                                  f"implemented in fastconv; use one of {tuple(choices)}")
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Resizing: separable, one set of taps per axis

def resize_weights(in_size: int, out_size: int, method: str = "bilinear") -> Taps:
    """The taps of a 1-D resize: ``out[i] = sum_k weight[i, k] * in[index[i, k]]``.

    Returns ``(index, weight)``, both of shape ``(out_size, k)`` (``k`` = 1
    for nearest, 2 bilinear, 4 bicubic, up to ``ceil(in/out) + 1`` area);
    every row of weights sums to 1. :func:`resize` applies them along the
    height, then the width.
    """
    in_size = _positive_size(in_size, "in_size")
    out_size = _positive_size(out_size, "out_size")
    method = _check_choice(method, "method", RESIZE_METHODS, _UNSUPPORTED_RESIZE)
    out = np.arange(out_size)
    scale = in_size / out_size
    if method == "nearest":
        # floor((i + 0.5) * in / out) in exact integer arithmetic (TF's float32
        # arithmetic gives the same except where it rounds across an integer).
        index = np.minimum((2 * out + 1) * in_size // (2 * out_size), in_size - 1)
        return index[:, None].astype(np.int64), np.ones((out_size, 1))
    if method == "area":
        # TF's resize_area: output cell i covers input [i * scale, (i + 1) * scale).
        start, stop = out * scale, (out + 1) * scale
        first = np.floor(start).astype(np.int64)
        k = int(np.max(np.ceil(stop).astype(np.int64) - first))
        index = first[:, None] + np.arange(k)
        weight = np.clip(np.minimum(index + 1, stop[:, None]) - np.maximum(index, start[:, None]),
                         0, None) / scale
        weight[index >= in_size] = 0
        return np.minimum(index, in_size - 1), weight
    source = (out + 0.5) * scale - 0.5
    lower = np.floor(source)
    delta = source - lower
    lower = lower.astype(np.int64)
    if method == "bilinear":
        index = np.stack([lower, lower + 1], axis=1)
        weight = np.stack([1 - delta, delta], axis=1)
        return np.clip(index, 0, in_size - 1), weight
    # bicubic: TF's Keys kernel (a = -0.5) sampled at the 1024-step table entry
    # nearest to delta; taps outside the image get weight 0, then renormalised.
    a = -0.5
    d = np.rint(delta * 1024) / 1024

    def near(x: np.ndarray) -> np.ndarray:   # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:    # 1 <= |x| <= 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    index = lower[:, None] + np.arange(-1, 3)
    weight = np.stack([far(d + 1), near(d), near(1 - d), far(2 - d)], axis=1)
    weight = np.where((index >= 0) & (index < in_size), weight, 0.0)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.clip(index, 0, in_size - 1), weight


def _dense(taps: Taps, in_size: int) -> np.ndarray:
    """The ``(out, in)`` matrix of a set of taps."""
    index, weight = taps
    matrix = np.zeros((index.shape[0], in_size))
    np.add.at(matrix, (np.repeat(np.arange(index.shape[0]), index.shape[1]), index.ravel()),
              weight.ravel())
    return matrix


def _apply_taps(x: np.ndarray, taps: Taps, axis: int) -> np.ndarray:
    index, weight = taps
    shape = [1] * x.ndim
    shape[axis] = index.shape[0]
    result = None
    for k in range(index.shape[1]):
        term = np.take(x, index[:, k], axis=axis)
        term *= weight[:, k].astype(x.dtype).reshape(shape)
        result = term if result is None else np.add(result, term, out=result)
    return result


def resize(images: Any, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    """``tf.image.resize(images, (height, width), method)`` (no antialiasing).

    Parameters
    ----------
    images : array (h, w, c) or (n, h, w, c)
    height, width : positive int
        The output size.
    method : {'bilinear', 'nearest', 'bicubic', 'area'}
        See the module docstring (``'lanczos3'`` and the other kernels of
        tf.image.resize raise NotImplementedError).

    Returns
    -------
    ndarray (height, width, c) or (n, height, width, c), float (see the module docstring)
    """
    batch, single = _as_images(images)
    height, width = _positive_size(height, "height"), _positive_size(width, "width")
    method = _check_choice(method, "method", RESIZE_METHODS, _UNSUPPORTED_RESIZE)
    _, h, w, _ = batch.shape
    if batch.size == 0:
        out = np.zeros((batch.shape[0], height, width, batch.shape[3]), batch.dtype)
    elif (h, w) == (height, width):
        out = batch.copy()
    else:
        out = batch
        if h != height:
            out = _apply_taps(out, resize_weights(h, height, method), 1)
        if w != width:
            out = _apply_taps(out, resize_weights(w, width, method), 2)
        out = np.ascontiguousarray(out)
    return out[0] if single else out


def resize_backward(d_outputs: Any, input_size: Tuple[int, int],
                    method: str = "bilinear") -> np.ndarray:
    """Gradient of :func:`resize`: ``d_outputs`` (its output's shape) sent
    back to an input of spatial size ``input_size = (h, w)``."""
    dy, single = _as_images(d_outputs, "d_outputs")
    h, w = (_positive_size(s, "input_size") for s in input_size)
    _, height, width, _ = dy.shape
    dx = dy
    if height != h:
        matrix = _dense(resize_weights(h, height, method), h).astype(dy.dtype)
        dx = np.einsum("oi,nowc->niwc", matrix, dx, optimize=True)
    if width != w:
        matrix = _dense(resize_weights(w, width, method), w).astype(dy.dtype)
        dx = np.einsum("oj,nhoc->nhjc", matrix, dx, optimize=True)
    dx = np.ascontiguousarray(dx)
    return dx[0] if single else dx


# ---------------------------------------------------------------------------
# Affine and projective warps

def as_transforms(matrices: Any, batch_size: Optional[int] = None) -> np.ndarray:
    """``matrices`` as TF's ``(n, 8)`` transform rows (float64).

    Takes ``(3, 3)`` or ``(n, 3, 3)`` matrices (divided by their ``[2, 2]``
    entry) or TF's 8-vectors ``[a0, a1, a2, b0, b1, b2, c0, c1]``, ``(8,)``
    or ``(n, 8)``. One transform is repeated for a batch of ``batch_size``.
    """
    m = np.asarray(matrices, dtype=np.float64)
    if m.shape[-2:] == (3, 3) and m.ndim in (2, 3):
        m = m.reshape((-1, 3, 3))
        corner = m[:, 2, 2]
        if np.any(corner == 0):
            raise ValueError("`matrices`: a 3x3 transform needs a non-zero [2, 2] entry")
        m = (m / corner[:, None, None]).reshape(-1, 9)[:, :8]
    elif m.shape[-1:] == (8,) and m.ndim in (1, 2):
        m = m.reshape(-1, 8)
    else:
        raise ValueError("`matrices` must be 3x3 matrices, shape (3, 3) or (n, 3, 3), or "
                         f"TF's 8-vectors, shape (8,) or (n, 8); got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("`matrices` must be finite")
    if batch_size is not None and m.shape[0] != batch_size:
        if m.shape[0] != 1:
            raise ValueError(f"`matrices` holds {m.shape[0]} transforms for a batch of "
                             f"{batch_size} images (give one, or one per image)")
        m = np.repeat(m, batch_size, axis=0)
    return m


def map_coordinates(coordinates: np.ndarray, size: int, fill_mode: str) -> np.ndarray:
    """Move sample coordinates along an axis of ``size`` pixels inside it, as
    TF's ``MapCoordinate`` (image_ops.h) does before interpolating.

    * ``'reflect'``: ``(d c b a | a b c d | d c b a)``, about the pixel edges
      (coordinate ``-1`` reads pixel 0, ``-2`` pixel 1);
    * ``'wrap'``: ``(a b c d | a b c d)``, TF's formula, exact for points
      less than ``size - 1`` pixels outside (beyond that TF's own quirk is
      kept: a point in ``(-1, 0)`` or ``(size - 1, size)`` reads the nearest
      edge pixel, not a blend of both edges);
    * ``'nearest'``: clamped to ``[0, size - 1]``;
    * ``'constant'``: unchanged (points outside read ``fill_value``).

    Every mode but ``'constant'`` returns coordinates in ``[0, size - 1]``.
    """
    c = np.asarray(coordinates, dtype=np.float64)
    if fill_mode == "constant":
        return c
    if size <= 1:
        return np.zeros_like(c)
    if fill_mode == "reflect":
        sz2 = 2 * size
        low = sz2 * np.trunc(-c / sz2) + c
        low = np.where(low < -size, low + sz2, -low - 1)
        high = c - sz2 * np.trunc(c / sz2)
        high = np.where(high >= size, sz2 - high - 1, high)
        c = np.where(c < 0, low, np.where(c > size - 1, high, c))
    elif fill_mode == "wrap":
        sz = size - 1
        low = c + size * (np.trunc(-c / sz) + 1)
        high = c - size * np.trunc(c / sz)
        c = np.where(c < 0, low, np.where(c > size - 1, high, c))
    elif fill_mode != "nearest":
        raise ValueError(f"`fill_mode` must be one of {FILL_MODES}, got {fill_mode!r}")
    return np.clip(c, 0, size - 1)


class Sampling(NamedTuple):
    """Where each output value of a warp reads the input.

    ``output[b, y, x] = sum_t weight[t, b, y, x] * table[index[t, b, y, x]]``
    where ``table`` is the input's pixels ``(n * h * w, c)`` followed by one
    row of ``fill_value`` (index ``n * h * w``, which taps outside the image
    read).
    """
    index: np.ndarray      # (taps, n, out_h, out_w) int64
    weight: np.ndarray     # (taps, n, out_h, out_w), the images' dtype
    input_shape: Tuple[int, int, int]   # (n, h, w)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's ``round``: halves away from zero (NumPy's rounds them to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def affine_sampling(input_shape: Sequence[int], matrices: Any,
                    interpolation: str = "bilinear", fill_mode: str = "constant",
                    output_shape: Optional[Tuple[int, int]] = None,
                    dtype: Any = np.float32) -> Sampling:
    """The :class:`Sampling` of :func:`affine_transform` for a batch of
    ``input_shape = (n, h, w[, c])`` (other arguments as there)."""
    n, h, w = (int(s) for s in tuple(input_shape)[:3])
    interpolation = _check_choice(interpolation, "interpolation", INTERPOLATIONS)
    fill_mode = _check_choice(fill_mode, "fill_mode", FILL_MODES)
    out_h, out_w = (h, w) if output_shape is None else (
        _positive_size(output_shape[0], "output_shape"),
        _positive_size(output_shape[1], "output_shape"))
    t = as_transforms(matrices, n)[:, :, None, None]
    y, x = np.meshgrid(np.arange(out_h, dtype=np.float64), np.arange(out_w, dtype=np.float64),
                       indexing="ij")
    projection = t[:, 6] * x + t[:, 7] * y + 1
    infinite = projection == 0
    projection = np.where(infinite, 1, projection)
    in_x = map_coordinates((t[:, 0] * x + t[:, 1] * y + t[:, 2]) / projection, w, fill_mode)
    in_y = map_coordinates((t[:, 3] * x + t[:, 4] * y + t[:, 5]) / projection, h, fill_mode)
    # Far-away points (constant mode) read fill_value whatever their distance:
    # bounded first, so that they convert to integers.
    in_x, in_y = np.clip(in_x, -2, w + 1), np.clip(in_y, -2, h + 1)
    fill = n * h * w
    base = np.arange(n, dtype=np.int64).reshape(n, 1, 1) * (h * w)

    def axis_taps(coord: np.ndarray, size: int, nearest: bool):
        """[(tap index, inside, weight), ...] along one axis."""
        if nearest:
            tap = _round_half_away(coord).astype(np.int64)
            return [(tap, (tap >= 0) & (tap < size), None)]
        lower = np.floor(coord)
        tap = lower.astype(np.int64)
        return [(tap, (tap >= 0) & (tap < size), (lower + 1) - coord),
                (tap + 1, (tap >= -1) & (tap < size - 1), coord - lower)]

    nearest = interpolation == "nearest"
    rows, cols = axis_taps(in_y, h, nearest), axis_taps(in_x, w, nearest)
    taps = len(rows) * len(cols)
    index = np.empty((taps, n, out_h, out_w), dtype=np.int64)
    weight = np.empty((taps, n, out_h, out_w), dtype=dtype)
    outside = infinite if infinite.any() else None
    t = 0
    for row, row_inside, row_weight in rows:
        for col, col_inside, col_weight in cols:
            inside = row_inside & col_inside
            if outside is not None:
                inside &= ~outside
            np.multiply(row, w, out=index[t])
            index[t] += col
            index[t] += base
            np.copyto(index[t], fill, where=~inside)
            if nearest:
                weight[t] = 1
            else:
                np.multiply(row_weight, col_weight, out=weight[t], casting="unsafe")
            t += 1
    if outside is not None:  # a point at infinity reads fill_value once
        weight[:, outside] = 0
        weight[0, outside] = 1
    return Sampling(index, weight, (n, h, w))


def sample(images: Any, sampling: Sampling, fill_value: float = 0.0) -> np.ndarray:
    """Apply a :class:`Sampling` to images of its ``input_shape``."""
    batch, single = _as_images(images)
    n, h, w, c = batch.shape
    if (n, h, w) != tuple(sampling.input_shape):
        raise ValueError(f"`images` of shape {batch.shape} do not match the sampling's input "
                         f"shape {tuple(sampling.input_shape)}")
    table = np.concatenate([batch.reshape(n * h * w, c),
                            np.full((1, c), fill_value, dtype=batch.dtype)])
    weight = sampling.weight.astype(batch.dtype, copy=False)
    out = None
    for t in range(sampling.index.shape[0]):
        term = table[sampling.index[t]]
        term *= weight[t][..., None]
        out = term if out is None else np.add(out, term, out=out)
    return out[0] if single else out


def sample_backward(d_outputs: Any, sampling: Sampling) -> np.ndarray:
    """Gradient of :func:`sample` with respect to the images (the fill value
    is a constant, the coordinates are not differentiated)."""
    dy, single = _as_images(d_outputs, "d_outputs")
    n, h, w = sampling.input_shape
    c = dy.shape[3]
    index = sampling.index.reshape(-1)
    weight = sampling.weight.reshape(sampling.weight.shape[0], -1)
    dx = np.empty((n * h * w, c), dtype=dy.dtype)
    flat_dy = dy.reshape(-1, c)
    for channel in range(c):
        values = (weight * flat_dy[:, channel]).reshape(-1)
        dx[:, channel] = np.bincount(index, weights=values, minlength=n * h * w + 1)[:-1]
    dx = dx.reshape(n, h, w, c)
    return dx[0] if single else dx


def affine_transform(images: Any, matrices: Any, interpolation: str = "bilinear",
                     fill_mode: str = "constant", fill_value: float = 0.0,
                     output_shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Warp images with per-image projective transforms, as
    ``tf.raw_ops.ImageProjectiveTransformV3`` (``keras.ops.image.affine_transform``).

    Parameters
    ----------
    images : array (h, w, c) or (n, h, w, c)
    matrices : array (3, 3), (n, 3, 3), (8,) or (n, 8)
        Each maps an *output* point to the *input* point it samples: with
        the 8-vector ``[a0, a1, a2, b0, b1, b2, c0, c1]`` (the first 8
        entries of the 3x3 matrix, row by row), output ``(x, y)`` (column,
        row) samples input ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``
        with ``k = c0 x + c1 y + 1``. One transform serves the whole batch.
    interpolation : {'bilinear', 'nearest'}
        'nearest' rounds halves away from zero, as TF.
    fill_mode : {'constant', 'reflect', 'wrap', 'nearest'}
        See :func:`map_coordinates`. (Keras' layers default to 'reflect',
        ``keras.ops.image.affine_transform`` to 'constant', as here.)
    fill_value : float
        What points outside the image read with ``fill_mode='constant'``;
        bilinear taps outside blend it in.
    output_shape : (height, width), optional
        Default: the input's.

    Returns
    -------
    ndarray of the input's rank, float (see the module docstring)

    The warp is linear in the images: :func:`affine_sampling` and
    :func:`sample_backward` give its gradient.
    """
    batch, single = _as_images(images)
    sampling = affine_sampling(batch.shape, matrices, interpolation, fill_mode, output_shape,
                               batch.dtype)
    out = sample(batch, sampling, fill_value)
    return out[0] if single else out


def rotation_matrices(angles: Any, height: int, width: int) -> np.ndarray:
    """``(n, 3, 3)`` rotations by ``angles`` (radians, counter-clockwise as
    displayed) about the image centre: Keras' ``get_rotation_matrix``."""
    a = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    cos, sin = np.cos(a), np.sin(a)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
    return _matrices(cos, -sin, x_offset, sin, cos, y_offset)


def zoom_matrices(zoom_x: Any, zoom_y: Any, height: int, width: int) -> np.ndarray:
    """``(n, 3, 3)`` zooms about the image centre: Keras' ``get_zoom_matrix``.
    A factor above 1 samples a larger region (zooms out)."""
    zx = np.atleast_1d(np.asarray(zoom_x, dtype=np.float64))
    zy = np.atleast_1d(np.asarray(zoom_y, dtype=np.float64))
    zero = np.zeros_like(zx)
    return _matrices(zx, zero, (width - 1) / 2 * (1 - zx), zero, zy, (height - 1) / 2 * (1 - zy))


def translation_matrices(dx: Any, dy: Any) -> np.ndarray:
    """``(n, 3, 3)`` translations moving the content ``dx`` pixels right and
    ``dy`` down: Keras' ``get_translation_matrix``."""
    dx = np.atleast_1d(np.asarray(dx, dtype=np.float64))
    dy = np.atleast_1d(np.asarray(dy, dtype=np.float64))
    one, zero = np.ones_like(dx), np.zeros_like(dx)
    return _matrices(one, zero, -dx, zero, one, -dy)


def _matrices(a0, a1, a2, b0, b1, b2) -> np.ndarray:
    a0, a1, a2, b0, b1, b2 = np.broadcast_arrays(a0, a1, a2, b0, b1, b2)
    m = np.zeros(a0.shape + (3, 3))
    m[..., 0, 0], m[..., 0, 1], m[..., 0, 2] = a0, a1, a2
    m[..., 1, 0], m[..., 1, 1], m[..., 1, 2] = b0, b1, b2
    m[..., 2, 2] = 1
    return m


# ---------------------------------------------------------------------------
# Crops and flips

def center_crop_box(height: int, width: int, crop_height: int, crop_width: int
                    ) -> Tuple[int, int, int, int]:
    """``(top, left, crop_height, crop_width)`` of Keras' centre crop (the
    extra pixel of an odd difference goes to the bottom / right)."""
    if crop_height > height or crop_width > width:
        raise ValueError(f"a crop of {crop_height}x{crop_width} does not fit in an image of "
                         f"{height}x{width}")
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def aspect_crop_box(height: int, width: int, target_height: int, target_width: int
                    ) -> Tuple[int, int, int, int]:
    """The largest centred window of ``height x width`` with the aspect ratio
    of ``target_height x target_width``, as Keras' ``crop_to_aspect_ratio``
    (``smart_resize``): ``(top, left, crop_height, crop_width)``."""
    crop_height = max(min(height, width * target_height // target_width), 1)
    crop_width = max(min(width, height * target_width // target_height), 1)
    return center_crop_box(height, width, crop_height, crop_width)


def crop(images: Any, top: int, left: int, height: int, width: int) -> np.ndarray:
    """The window ``[top:top + height, left:left + width]`` of every image
    (a copy), checked to lie inside the images."""
    batch, single = _as_images(images)
    _, h, w, _ = batch.shape
    if top < 0 or left < 0 or height < 0 or width < 0 or top + height > h or left + width > w:
        raise ValueError(f"the crop box (top={top}, left={left}, height={height}, "
                         f"width={width}) does not lie inside images of {h}x{w}")
    out = batch[:, top:top + height, left:left + width].copy()
    return out[0] if single else out


def crop_backward(d_outputs: Any, input_size: Tuple[int, int], top: int, left: int
                  ) -> np.ndarray:
    """Gradient of :func:`crop`: ``d_outputs`` placed at ``(top, left)`` in
    zeros of spatial size ``input_size``."""
    dy, single = _as_images(d_outputs, "d_outputs")
    n, height, width, c = dy.shape
    dx = np.zeros((n, int(input_size[0]), int(input_size[1]), c), dtype=dy.dtype)
    dx[:, top:top + height, left:left + width] = dy
    return dx[0] if single else dx


def flip(images: Any, horizontal: Any = False, vertical: Any = False) -> np.ndarray:
    """Images flipped left-right and/or up-down (a copy).

    ``horizontal`` and ``vertical`` are bools for the whole batch, or one
    bool per image (a random flip draws them).
    """
    batch, single = _as_images(images)
    n = batch.shape[0]
    out = batch.copy()
    for axis, which in ((2, horizontal), (1, vertical)):
        chosen = np.broadcast_to(np.asarray(which, dtype=bool), (n,))
        if chosen.any():
            out[chosen] = np.flip(out[chosen], axis=axis)
    return out[0] if single else out



# ---------------------------------------------------------------------------
# scipy.ndimage's conventions (Keras' ImageDataGenerator warps with
# scipy.ndimage.affine_transform, whose fill modes are not TF's)

NDIMAGE_FILL_MODES = ("constant", "nearest", "reflect", "wrap")
# Coordinates this close outside the image count as on its edge (see below).
_NDIMAGE_EDGE_TOLERANCE = 1e-6


def ndimage_map_coordinates(coordinates: np.ndarray, size: int, fill_mode: str
                            ) -> Tuple[np.ndarray, np.ndarray]:
    """``(coordinates moved inside [0, size - 1], outside)`` along an axis
    of ``size`` pixels, as ``scipy.ndimage`` (order <= 1) treats points
    beyond the edges:

    * ``'nearest'``: clamped (as TF's ``'nearest'``);
    * ``'reflect'``: ``(d c b a | a b c d | d c b a)`` about the pixel edges,
      the same as TF's ``'reflect'`` (:func:`map_coordinates`);
    * ``'wrap'``: scipy's, whose period is ``size - 1``, not ``size``: the
      last and first pixels overlap (TF's ``'wrap'`` has period ``size``);
    * ``'constant'``: unchanged, ``outside`` marks the points beyond the
      edges, which read ``cval`` *whole* (scipy's ``'constant'``, no blending
      with the edge pixels, unlike TF's and scipy's ``'grid-constant'``).

    Unlike scipy, a point less than 1e-6 pixel outside counts as on the edge
    (scipy gives ``cval``, or the opposite edge under ``'wrap'``, to points
    that rounding put 1e-16 outside, as a rotation by 90 degrees does).
    """
    c = np.asarray(coordinates, dtype=np.float64)
    tolerance = _NDIMAGE_EDGE_TOLERANCE
    outside = (c < -tolerance) | (c > size - 1 + tolerance)
    if fill_mode == "reflect":
        c = np.where(outside, map_coordinates(c, size, "reflect"), c)
    elif fill_mode == "wrap" and size > 1:
        c = np.where(outside, np.mod(c, size - 1), c)
    elif fill_mode not in NDIMAGE_FILL_MODES:
        raise ValueError(f"`fill_mode` must be one of {NDIMAGE_FILL_MODES}, got {fill_mode!r}")
    c = np.clip(c, 0, size - 1)
    return c, outside if fill_mode == "constant" else np.zeros(c.shape, dtype=bool)


def ndimage_affine_sampling(input_shape: Sequence[int], matrices: Any, order: int = 1,
                            fill_mode: str = "nearest", dtype: Any = np.float32) -> Sampling:
    """The :class:`Sampling` of :func:`ndimage_affine_transform` for a batch
    of ``input_shape = (n, h, w[, c])`` (other arguments as there)."""
    n, h, w = (int(s) for s in tuple(input_shape)[:3])
    if order not in (0, 1):
        raise ValueError(f"`order` (the interpolation order) must be 0 or 1, got {order!r}")
    fill_mode = _check_choice(fill_mode, "fill_mode", NDIMAGE_FILL_MODES)
    m = np.asarray(matrices, dtype=np.float64)
    if m.shape[-2:] != (3, 3) or m.ndim not in (2, 3):
        raise ValueError(f"`matrices` must have shape (3, 3) or (n, 3, 3), got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("`matrices` must be finite")
    m = np.broadcast_to(m.reshape(-1, 3, 3), (n, 3, 3))[:, :, :, None, None]
    row, col = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                           indexing="ij")
    in_row, row_out = ndimage_map_coordinates(m[:, 0, 0] * row + m[:, 0, 1] * col + m[:, 0, 2],
                                              h, fill_mode)
    in_col, col_out = ndimage_map_coordinates(m[:, 1, 0] * row + m[:, 1, 1] * col + m[:, 1, 2],
                                              w, fill_mode)
    outside = row_out | col_out
    base = np.arange(n).reshape(n, 1, 1) * (h * w)

    def flat(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        index = base + np.minimum(r, h - 1).astype(np.int64) * w + np.minimum(c, w - 1).astype(
            np.int64)
        return np.where(outside, n * h * w, index)

    if order == 0:   # scipy rounds halves up
        index = flat(np.floor(in_row + 0.5), np.floor(in_col + 0.5))[None]
        weight = np.ones((1,) + index.shape[1:])
    else:
        r0, c0 = np.floor(in_row), np.floor(in_col)
        wr1, wc1 = in_row - r0, in_col - c0
        wr0, wc0 = 1 - wr1, 1 - wc1
        index = np.stack([flat(r0, c0), flat(r0, c0 + 1), flat(r0 + 1, c0),
                          flat(r0 + 1, c0 + 1)])
        weight = np.stack([wr0 * wc0, wr0 * wc1, wr1 * wc0, wr1 * wc1])
        weight = np.where(outside, np.array([1.0, 0, 0, 0]).reshape(4, 1, 1, 1), weight)
    return Sampling(index, weight.astype(dtype), (n, h, w))


def ndimage_affine_transform(images: Any, matrices: Any, order: int = 1,
                             fill_mode: str = "nearest", cval: float = 0.0) -> np.ndarray:
    """Warp images as ``scipy.ndimage.affine_transform`` warps each channel
    (what Keras' ``ImageDataGenerator`` calls), vectorised over the batch.

    Parameters
    ----------
    images : array (h, w, c) or (n, h, w, c)
    matrices : array (3, 3) or (n, 3, 3)
        Homogeneous matrices on *(row, column)* coordinates: output pixel
        ``(r, c)`` samples the input at ``M[:2, :2] @ (r, c) + M[:2, 2]``
        (scipy's ``matrix`` and ``offset``). One matrix serves the batch.
    order : {0, 1}
        Nearest (halves rounded up, as scipy) or linear interpolation.
    fill_mode : {'nearest', 'constant', 'reflect', 'wrap'}
        scipy's definitions, see :func:`ndimage_map_coordinates`.
    cval : float
        What points outside read with ``fill_mode='constant'``.

    Returns
    -------
    ndarray of the input's shape, float (see the module docstring)
    """
    batch, single = _as_images(images)
    sampling = ndimage_affine_sampling(batch.shape, matrices, order, fill_mode, batch.dtype)
    out = sample(batch, sampling, cval)
    return out[0] if single else out


__all__ += ["NDIMAGE_FILL_MODES", "ndimage_map_coordinates", "ndimage_affine_sampling",
            "ndimage_affine_transform"]
