"""Keras 2.4's ``ImageDataGenerator``: random augmentation and normalisation
of image batches, in NumPy.

Draws are Keras': per image, in Keras' order, from ``np.random``-style
generators (``RandomState``), so a seeded iterator reproduces Keras'
first-epoch augmentation parameters exactly (see :mod:`._iterators`).
Applying them is vectorised over the batch: one affine warp of all the
images (:func:`fastconv._image.ndimage_affine_transform`, scipy.ndimage's
order-0/1 interpolation and fill modes, which Keras calls), then channel
shifts, flips and brightness as array operations.

The affine matrix is Keras 2.4's (keras-preprocessing 1.1.2): rotation,
then shift, shear and zoom, composed on *(row, column)* coordinates, about
the image centre. Two details differ from Keras 2.4 and follow the fix that
later Keras versions made: the centre is the middle of the pixel grid
(``(h - 1) / 2``; Keras 2.4's ``h / 2 + 0.5`` put it one pixel off, so a
90-degree rotation moved the image by a pixel), and brightness shifts keep
the image's value range (Keras 2.4 rescaled every image to 0..255 first).
Keras 3's legacy generator swaps the matrix to *(column, row)* coordinates
instead, so there ``theta`` turns the other way and ``tx``/``zx`` act on
columns (``height_shift_range`` shifts sideways); fastconv keeps Keras
2.4's: ``tx`` and ``zx`` act on rows, and a positive ``theta`` of 90 degrees
turns a square image as ``np.rot90(image, k=-1)`` (clockwise as shown).
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .. import _image, backend
from ._image_io import check_data_format

__all__ = ["ImageDataGenerator"]

_FILL_MODES = ("nearest", "constant", "reflect", "wrap")


def _real(value: Any, name: str, minimum: Optional[float] = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"`{name}` must be a finite number{bound}, got {value!r}")
    return float(value)


def _shift_range(value: Any, name: str) -> Any:
    """A float or int (as Keras: < 1 a fraction of the size, else pixels) or
    a 1-D list of allowed shifts."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        _real(value, name)
        return value
    array = np.asarray(value)
    if array.ndim == 1 and array.size and array.dtype.kind in "iuf" and np.all(
            np.isfinite(array)):
        return value
    raise ValueError(f"`{name}` must be a float, an int or a 1-D list of numbers, got "
                     f"{value!r}")


def _pair(value: Any, name: str) -> List[float]:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)
            for v in value):
        return [value[0], value[1]]
    raise ValueError(f"`{name}` must be a float or a tuple or list of two floats, got "
                     f"{value!r}")


class ImageDataGenerator:
    """Batches of image data with real-time augmentation, as
    ``tf.keras.preprocessing.image.ImageDataGenerator`` (Keras 2.4).

    The arguments are Keras' (``featurewise_center``, ``samplewise_center``,
    ``featurewise_std_normalization``, ``samplewise_std_normalization``,
    ``zca_whitening``, ``zca_epsilon``, ``rotation_range``,
    ``width_shift_range``, ``height_shift_range``, ``brightness_range``,
    ``shear_range``, ``zoom_range``, ``channel_shift_range``, ``fill_mode``,
    ``cval``, ``horizontal_flip``, ``vertical_flip``, ``rescale``,
    ``preprocessing_function``, ``data_format``, ``validation_split``,
    ``interpolation_order``, ``dtype``), checked when given: a bad one is a
    ValueError that names it. ``interpolation_order`` may be 0 or 1 (Keras
    passes higher orders to scipy's splines; fastconv has no splines).

    Methods: :meth:`flow` (arrays), :meth:`flow_from_directory` (a folder of
    class subfolders), :meth:`fit` (feature-wise statistics),
    :meth:`standardize`, :meth:`get_random_transform`,
    :meth:`apply_transform`, :meth:`random_transform`. Their iterators are
    :class:`fastconv.utils.Sequence` objects, which ``fit``, ``evaluate``
    and ``predict`` take (also with ``workers > 1``).
    """

    def __init__(self, featurewise_center: bool = False, samplewise_center: bool = False,
                 featurewise_std_normalization: bool = False,
                 samplewise_std_normalization: bool = False, zca_whitening: bool = False,
                 zca_epsilon: float = 1e-6, rotation_range: float = 0,
                 width_shift_range: Any = 0.0, height_shift_range: Any = 0.0,
                 brightness_range: Optional[Sequence[float]] = None, shear_range: float = 0.0,
                 zoom_range: Any = 0.0, channel_shift_range: float = 0.0,
                 fill_mode: str = "nearest", cval: float = 0.0, horizontal_flip: bool = False,
                 vertical_flip: bool = False, rescale: Optional[float] = None,
                 preprocessing_function: Optional[Callable[[np.ndarray], Any]] = None,
                 data_format: Optional[str] = None, validation_split: float = 0.0,
                 interpolation_order: int = 1, dtype: Any = None) -> None:
        self.featurewise_center = bool(featurewise_center)
        self.samplewise_center = bool(samplewise_center)
        self.featurewise_std_normalization = bool(featurewise_std_normalization)
        self.samplewise_std_normalization = bool(samplewise_std_normalization)
        self.zca_whitening = bool(zca_whitening)
        self.zca_epsilon = _real(zca_epsilon, "zca_epsilon")
        self.rotation_range = _real(rotation_range, "rotation_range")
        self.width_shift_range = _shift_range(width_shift_range, "width_shift_range")
        self.height_shift_range = _shift_range(height_shift_range, "height_shift_range")
        self.shear_range = _real(shear_range, "shear_range")
        self.channel_shift_range = _real(channel_shift_range, "channel_shift_range")
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"`fill_mode` must be one of {_FILL_MODES}, got {fill_mode!r}")
        self.fill_mode = fill_mode
        self.cval = _real(cval, "cval", minimum=None)
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        if rescale is not None and rescale != 0:
            _real(rescale, "rescale", minimum=None)
        self.rescale = rescale
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise ValueError(f"`preprocessing_function` must be callable, got "
                             f"{preprocessing_function!r}")
        self.preprocessing_function = preprocessing_function
        self.data_format = check_data_format(data_format)
        self.channel_axis, self.row_axis, self.col_axis = (
            (3, 1, 2) if self.data_format == "channels_last" else (1, 2, 3))
        if validation_split and not (isinstance(validation_split, numbers.Real)
                                     and 0 < validation_split < 1):
            raise ValueError("`validation_split` must be strictly between 0 and 1. Received: "
                             f"{validation_split!r}")
        self._validation_split = float(validation_split or 0.0)
        if interpolation_order not in (0, 1) or isinstance(interpolation_order, bool):
            raise ValueError("`interpolation_order` must be 0 (nearest) or 1 (linear), got "
                             f"{interpolation_order!r}")
        self.interpolation_order = int(interpolation_order)
        self.dtype = np.dtype(backend.floatx() if dtype is None else dtype).name
        if np.dtype(self.dtype).kind != "f":
            raise ValueError(f"`dtype` must be a float type, got {dtype!r}")
        if isinstance(zoom_range, numbers.Real) and not isinstance(zoom_range, bool):
            _real(zoom_range, "zoom_range")
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        else:
            self.zoom_range = _pair(zoom_range, "zoom_range")
        if brightness_range is not None:
            if not isinstance(brightness_range, (tuple, list)) or len(brightness_range) != 2:
                raise ValueError("`brightness_range` should be a tuple or list of two floats. "
                                 f"Received: {brightness_range!r}")
            _pair(brightness_range, "brightness_range")
        self.brightness_range = brightness_range
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None
        self.principal_components: Optional[np.ndarray] = None
        if self.zca_whitening:
            if not self.featurewise_center:
                self.featurewise_center = True
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, which "
                              "overrides setting of `featurewise_center`.", stacklevel=2)
            if self.featurewise_std_normalization:
                self.featurewise_std_normalization = False
                warnings.warn("This ImageDataGenerator specifies `zca_whitening` which "
                              "overrides setting of `featurewise_std_normalization`.",
                              stacklevel=2)
        if self.featurewise_std_normalization and not self.featurewise_center:
            self.featurewise_center = True
            warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, "
                          "which overrides setting of `featurewise_center`.", stacklevel=2)
        if self.samplewise_std_normalization and not self.samplewise_center:
            self.samplewise_center = True
            warnings.warn("This ImageDataGenerator specifies `samplewise_std_normalization`, "
                          "which overrides setting of `samplewise_center`.", stacklevel=2)

    # ------------------------------------------------------------------
    # Iterators

    def flow(self, x: Any, y: Any = None, batch_size: int = 32, shuffle: bool = True,
             sample_weight: Any = None, seed: Optional[int] = None,
             save_to_dir: Optional[str] = None, save_prefix: str = "",
             save_format: str = "png", ignore_class_split: bool = False,
             subset: Optional[str] = None) -> Any:
        """A :class:`NumpyArrayIterator` over arrays ``x`` (rank 4; or a
        pair ``(x, [other inputs])``) with labels ``y`` and ``sample_weight``;
        ``subset='validation'`` takes the first ``validation_split`` of the
        samples, ``'training'`` the rest (Keras' rule; both must hold the same
        classes unless ``ignore_class_split``)."""
        from ._iterators import NumpyArrayIterator
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle,
                                  sample_weight=sample_weight, seed=seed,
                                  data_format=self.data_format, save_to_dir=save_to_dir,
                                  save_prefix=save_prefix, save_format=save_format,
                                  subset=subset, ignore_class_split=ignore_class_split,
                                  dtype=self.dtype)

    def flow_from_directory(self, directory: str, target_size: Sequence[int] = (256, 256),
                            color_mode: str = "rgb", classes: Optional[Sequence[str]] = None,
                            class_mode: Optional[str] = "categorical", batch_size: int = 32,
                            shuffle: bool = True, seed: Optional[int] = None,
                            save_to_dir: Optional[str] = None, save_prefix: str = "",
                            save_format: str = "png", follow_links: bool = False,
                            subset: Optional[str] = None, interpolation: str = "nearest",
                            keep_aspect_ratio: bool = False) -> Any:
        """A :class:`DirectoryIterator` over the images in the class
        subfolders of ``directory`` (see :mod:`._directory` for the rules)."""
        from ._iterators import DirectoryIterator
        return DirectoryIterator(directory, self, target_size=target_size,
                                 color_mode=color_mode, classes=classes, class_mode=class_mode,
                                 data_format=self.data_format, batch_size=batch_size,
                                 shuffle=shuffle, seed=seed, save_to_dir=save_to_dir,
                                 save_prefix=save_prefix, save_format=save_format,
                                 follow_links=follow_links, subset=subset,
                                 interpolation=interpolation,
                                 keep_aspect_ratio=keep_aspect_ratio, dtype=self.dtype)

    # ------------------------------------------------------------------
    # Normalisation

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Keras' normalisation of ``x`` (changed in place when it is a float
        array, as Keras does): ``preprocessing_function``, ``rescale``, the
        sample-wise statistics (over all of ``x``), the feature-wise ones
        and ZCA whitening."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        return self._normalize(x, None)

    def _standardize_batch(self, batch: np.ndarray) -> np.ndarray:
        """:meth:`standardize` applied to each image of a batch."""
        if self.preprocessing_function:
            for i in range(len(batch)):
                batch[i] = self.preprocessing_function(batch[i])
        return self._normalize(batch, (1, 2, 3))

    def _normalize(self, x: Any, axes: Optional[tuple]) -> np.ndarray:
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= np.mean(x, axis=axes, keepdims=True)
        if self.samplewise_std_normalization:
            x /= (np.std(x, axis=axes, keepdims=True) + 1e-6)
        if self.featurewise_center:
            if self.mean is not None:
                x -= self.mean
            else:
                warnings.warn("This ImageDataGenerator specifies `featurewise_center`, but it "
                              "hasn't been fit on any training data. Fit it first by calling "
                              "`.fit(numpy_data)`.", stacklevel=3)
        if self.featurewise_std_normalization:
            if self.std is not None:
                x /= (self.std + 1e-6)
            else:
                warnings.warn("This ImageDataGenerator specifies "
                              "`featurewise_std_normalization`, but it hasn't been fit on any "
                              "training data. Fit it first by calling `.fit(numpy_data)`.",
                              stacklevel=3)
        if self.zca_whitening:
            if self.principal_components is not None:
                flat = np.reshape(x, (-1, int(np.prod(np.shape(x)[-3:]))))
                x = np.reshape(flat @ self.principal_components, np.shape(x)).astype(
                    np.asarray(x).dtype, copy=False)
            else:
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, but it "
                              "hasn't been fit on any training data. Fit it first by calling "
                              "`.fit(numpy_data)`.", stacklevel=3)
        return x

    def fit(self, x: Any, augment: bool = False, rounds: int = 1,
            seed: Optional[int] = None) -> None:
        """Compute the feature-wise mean, std and ZCA matrix from sample data
        ``x`` (rank 4), after ``rescale`` (and, with ``augment``, over
        ``rounds`` randomly augmented copies), as Keras does. ZCA follows
        Keras 2.4: the SVD of the covariance, ``principal_components``."""
        x = np.array(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"Input to `.fit()` should have rank 4. Got array with shape: "
                             f"{x.shape}")
        if x.shape[self.channel_axis] not in (1, 3, 4):
            warnings.warn(f"Expected input to be images (as Numpy array) following the data "
                          f"format convention \"{self.data_format}\" (channels on axis "
                          f"{self.channel_axis}), i.e. expected either 1, 3 or 4 channels on "
                          f"axis {self.channel_axis}. However, it was passed an array with "
                          f"shape {x.shape} ({x.shape[self.channel_axis]} channels).",
                          stacklevel=2)
        if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 1:
            raise ValueError(f"`rounds` must be a positive int, got {rounds!r}")
        if self.rescale:
            x *= self.rescale
        if augment:
            rng: Any = np.random if seed is None else np.random.RandomState(seed)
            copies = []
            for _ in range(rounds):
                params = [self.get_random_transform(x.shape[1:], rng=rng) for _ in range(len(x))]
                copies.append(self._apply_batch(x.copy(), params))
            x = np.concatenate(copies)
        if self.featurewise_center:
            shape = [1, 1, 1]
            shape[self.channel_axis - 1] = x.shape[self.channel_axis]
            self.mean = np.reshape(np.mean(x, axis=(0, self.row_axis, self.col_axis)), shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            shape = [1, 1, 1]
            shape[self.channel_axis - 1] = x.shape[self.channel_axis]
            self.std = np.reshape(np.std(x, axis=(0, self.row_axis, self.col_axis)), shape)
            x /= (self.std + 1e-6)
        if self.zca_whitening:
            flat = np.reshape(x, (x.shape[0], -1))
            sigma = flat.T @ flat / flat.shape[0]
            u, s, _ = np.linalg.svd(sigma)
            s_inv = 1.0 / np.sqrt(s[np.newaxis] + self.zca_epsilon)
            self.principal_components = (u * s_inv) @ u.T

    # ------------------------------------------------------------------
    # Random transformations

    def get_random_transform(self, img_shape: Sequence[int], seed: Optional[int] = None,
                             rng: Any = None) -> Dict[str, Any]:
        """Random parameters of one image's transformation (Keras' keys:
        ``theta``, ``tx``, ``ty``, ``shear``, ``zx``, ``zy``,
        ``flip_horizontal``, ``flip_vertical``, ``channel_shift_intensity``,
        ``brightness``), drawn as Keras draws them: from
        ``np.random.RandomState(seed)``, the generator ``rng``, or NumPy's
        global generator."""
        if rng is None:
            rng = np.random if seed is None else np.random.RandomState(seed)
        row, col = self.row_axis - 1, self.col_axis - 1
        theta = rng.uniform(-self.rotation_range, self.rotation_range) \
            if self.rotation_range else 0
        tx = self._shift(rng, self.height_shift_range, img_shape[row])
        ty = self._shift(rng, self.width_shift_range, img_shape[col])
        shear = rng.uniform(-self.shear_range, self.shear_range) if self.shear_range else 0
        if self.zoom_range[0] == 1 and self.zoom_range[1] == 1:
            zx, zy = 1, 1
        else:
            zx, zy = rng.uniform(self.zoom_range[0], self.zoom_range[1], 2)
        flip_horizontal = (rng.random() < 0.5) * self.horizontal_flip
        flip_vertical = (rng.random() < 0.5) * self.vertical_flip
        channel_shift_intensity = None
        if self.channel_shift_range != 0:
            channel_shift_intensity = rng.uniform(-self.channel_shift_range,
                                                  self.channel_shift_range)
        brightness = None
        if self.brightness_range is not None:
            brightness = rng.uniform(self.brightness_range[0], self.brightness_range[1])
        return {"theta": theta, "tx": tx, "ty": ty, "shear": shear, "zx": zx, "zy": zy,
                "flip_horizontal": flip_horizontal, "flip_vertical": flip_vertical,
                "channel_shift_intensity": channel_shift_intensity, "brightness": brightness}

    @staticmethod
    def _shift(rng: Any, shift_range: Any, size: int) -> Any:
        # Keras' test of the range: a non-empty list draws even when it is [0]
        if not (len(shift_range) if isinstance(shift_range, (list, tuple, np.ndarray))
                else shift_range):
            return 0
        try:   # an int or a list: a choice of whole shifts, either way
            shift = rng.choice(shift_range)
            shift *= rng.choice([-1, 1])
        except ValueError:   # a float: uniform
            shift = rng.uniform(-shift_range, shift_range)
        if np.max(shift_range) < 1:
            shift *= size
        return shift

    def apply_transform(self, x: np.ndarray, transform_parameters: Dict[str, Any]
                        ) -> np.ndarray:
        """One image (rank 3) transformed by the parameters of
        :meth:`get_random_transform` (missing keys: no change), in Keras'
        order: affine warp, channel shift, flips, brightness."""
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"apply_transform takes one image of rank 3, got shape {x.shape}")
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(self.dtype)
        return self._apply_batch(x[None].astype(dtype), [transform_parameters])[0]

    def random_transform(self, x: np.ndarray, seed: Optional[int] = None) -> np.ndarray:
        """One image (rank 3) randomly transformed."""
        return self.apply_transform(x, self.get_random_transform(np.shape(x), seed))

    def _apply_batch(self, batch: np.ndarray, params: List[Dict[str, Any]]) -> np.ndarray:
        """A float batch (in ``data_format``) transformed image by image by
        ``params``, vectorised; ``batch`` may be overwritten."""
        channels_first = self.data_format == "channels_first"
        x = np.moveaxis(batch, 1, 3) if channels_first else batch   # a view: NHWC
        matrices = [self._matrix(p, x.shape[1], x.shape[2]) for p in params]
        warped = [i for i, m in enumerate(matrices) if m is not None]
        if warped:
            x[warped] = _image.ndimage_affine_transform(
                x[warped], np.stack([matrices[i] for i in warped]), self.interpolation_order,
                self.fill_mode, self.cval)
        shifts = np.array([np.nan if p.get("channel_shift_intensity") is None
                           else p["channel_shift_intensity"] for p in params])
        chosen = np.flatnonzero(~np.isnan(shifts))
        if chosen.size:
            part = x[chosen]
            low = part.min(axis=(1, 2, 3), keepdims=True)
            high = part.max(axis=(1, 2, 3), keepdims=True)
            x[chosen] = np.clip(part + shifts[chosen].reshape(-1, 1, 1, 1).astype(x.dtype),
                                low, high)
        for key, axis in (("flip_horizontal", 2), ("flip_vertical", 1)):
            chosen = np.flatnonzero([bool(p.get(key, False)) for p in params])
            if chosen.size:
                x[chosen] = np.flip(x[chosen], axis=axis)
        for i, p in enumerate(params):
            if p.get("brightness") is not None:
                x[i] = _brightness(x[i], p["brightness"])
        return batch

    def _matrix(self, p: Dict[str, Any], height: int, width: int) -> Optional[np.ndarray]:
        """Keras' affine matrix on (row, column) coordinates, or None for none."""
        theta, tx, ty = p.get("theta", 0), p.get("tx", 0), p.get("ty", 0)
        shear, zx, zy = p.get("shear", 0), p.get("zx", 1), p.get("zy", 1)
        matrix = None
        parts = []
        if theta != 0:
            t = np.deg2rad(theta)
            parts.append(np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0],
                                   [0, 0, 1]]))
        if tx != 0 or ty != 0:
            parts.append(np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64))
        if shear != 0:
            s = np.deg2rad(shear)
            parts.append(np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]))
        if zx != 1 or zy != 1:
            parts.append(np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]], dtype=np.float64))
        for part in parts:
            matrix = part if matrix is None else matrix @ part
        if matrix is None:
            return None
        o_row, o_col = (height - 1) / 2, (width - 1) / 2
        offset = np.array([[1, 0, o_row], [0, 1, o_col], [0, 0, 1]])
        reset = np.array([[1, 0, -o_row], [0, 1, -o_col], [0, 0, 1]])
        return offset @ matrix @ reset


def _brightness(x: np.ndarray, brightness: float) -> np.ndarray:
    """Keras' brightness shift of one image (h, w, c), without Pillow: its
    ``ImageEnhance.Brightness`` on the ``uint8`` image (values outside
    0..255 are scaled onto it and back, as Keras 3 does), alpha kept."""
    if x.shape[2] not in (1, 3, 4):
        raise ValueError(f"Unsupported channel number: {x.shape[2]} (brightness shifts take "
                         "1, 3 or 4 channels)")
    x = x.astype(np.float32)
    x_min, x_max = np.min(x), np.max(x)
    local_scale = bool(x_min < 0 or x_max > 255)
    if local_scale:
        x = x - x_min
        top = np.max(x)
        if top != 0:
            x /= top
        x *= 255
    pixels = x.astype(np.uint8).astype(np.float32)
    # Pillow's blend with black: trunc(float32(factor) * value), clipped.
    out = np.clip(np.trunc(np.float32(brightness) * pixels), 0, 255)
    if x.shape[2] == 4:
        out[:, :, 3] = pixels[:, :, 3]
    out = out.astype(np.float32)
    if local_scale:
        out = out / 255 * (x_max - x_min) + x_min
    return out
