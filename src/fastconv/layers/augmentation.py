"""Random image augmentation layers: ``RandomFlip``, ``RandomRotation``,
``RandomZoom``, ``RandomTranslation``, ``RandomContrast``, ``RandomCrop``
(tf.keras 2.4's ``layers.experimental.preprocessing``, Keras 3's ``layers``).

They change their input only in training: ``fit`` runs them with
``training=True``, ``predict``/``evaluate`` with ``training=False``, where
they pass the input through (RandomCrop centre-crops instead, as Keras). A
layer called by itself on arrays, without ``training=``, augments: their
``call`` defaults to ``training=True`` in tf.keras 2.4 and Keras 3 alike.

Each training call draws one transform per image (one contrast factor and
one crop window per batch, as tf.keras 2.4), from the layer's own
generator when it has a ``seed`` (a fresh layer replays the same sequence)
or from :func:`fastconv.backend.global_rng` otherwise, so
:func:`fastconv.backend.set_random_seed` makes whole runs reproducible. The
streams are NumPy's: the same seed draws other transforms than TensorFlow.

The geometric transforms are :func:`fastconv._image.affine_transform`
(``ImageProjectiveTransformV3``): each maps output pixels to input points,
``fill_mode`` places points that fall outside, with TensorFlow's
definitions of ``'reflect'`` (``d c b a | a b c d | d c b a``), ``'wrap'``,
``'nearest'`` and ``'constant'`` (``fill_value``). All of them are linear
in the images for a drawn transform, and the backward pass sends the
gradient through the very transform of the forward pass, so the layers
train anywhere in a model.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import _image, backend
from .preprocessing import ImageLayer, Shape, _positive_int

__all__ = ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
           "RandomContrast", "RandomCrop"]


def _bounds(value: Any, name: str, what: str) -> Tuple[float, float]:
    """``(lower, upper)`` of a factor: a number ``f`` means ``(-f, f)``, a
    pair is taken as is."""
    def real(v: Any) -> float:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) \
                or not math.isfinite(v):
            raise ValueError(f"{what}: `{name}` must be a finite float or a pair of them, got "
                             f"{value!r}")
        return float(v)

    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what}: `{name}` must be a float or a pair (lower, upper), got "
                             f"{value!r}")
        return real(value[0]), real(value[1])
    return -real(value), real(value)


class _RandomLayer(ImageLayer):
    """Seeding, the training switch and the identity of inference."""

    def __init__(self, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or
                                 not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{self._what}: `seed` must be a non-negative int or None, got "
                             f"{seed!r}")
        self.seed = None if seed is None else int(seed)
        self._seeded_rng = None if seed is None else np.random.default_rng(seed)

    def _random_generators(self) -> List[np.random.Generator]:
        return [] if self._seeded_rng is None else [self._seeded_rng]

    def _generator(self) -> np.random.Generator:
        # Looked up on every call: set_random_seed replaces the global generator.
        return self._seeded_rng if self._seeded_rng is not None else backend.global_rng()

    def call(self, inputs: np.ndarray, training: Optional[bool] = None) -> np.ndarray:
        """Keras' ``call(inputs, training=True)``: augments unless told not to."""
        return self.forward(inputs, True if training is None else bool(training))[0]

    def _forward_node(self, inputs: Any, training: Optional[bool], record: bool,
                      losses: Optional[List[float]]) -> Tuple[Any, Any]:
        # In a model called without `training` (model(x)), augment, as Keras
        # 2.4's default of call(inputs, training=True); predict passes False.
        return self.forward(inputs, True if training is None else bool(training))

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, Any]:
        """Augmented in training (the cache holds what was drawn); else the input."""
        x = np.asarray(inputs, dtype=self._dtype)
        if not training or x.size == 0:
            return x, None
        return self._augment(x)

    def backward(self, d_outputs: np.ndarray, cache: Any, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient through the forward pass's transform (identity in inference)."""
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        return (dy if cache is None else self._augment_backward(dy, cache)), []

    def _augment(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _augment_backward(self, dy: np.ndarray, cache: Any) -> np.ndarray:
        raise NotImplementedError

    def _output_op_name(self, input_shape: Any) -> str:
        # TF 2.4 traces a layer call outside fit in inference: an identity op.
        return "Identity"

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["seed"] = self.seed
        return config


class RandomFlip(_RandomLayer):
    """Flips each image left-right and/or up-down, each with probability 1/2.

    Parameters
    ----------
    mode : {'horizontal', 'vertical', 'horizontal_and_vertical'}
        Which flips may happen ('horizontal_and_vertical': both, drawn
        independently).
    seed : int, optional
    """

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: Optional[int] = None,
                 **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        if mode not in self._MODES:
            raise ValueError(f"{self._what}: `mode` must be one of {self._MODES}, got {mode!r}")
        self.mode = mode
        self.horizontal = mode in ("horizontal", "horizontal_and_vertical")
        self.vertical = mode in ("vertical", "horizontal_and_vertical")

    def _augment(self, x: np.ndarray) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        n = 1 if x.ndim == 3 else x.shape[0]
        rng = self._generator()
        horizontal = rng.random(n) < 0.5 if self.horizontal else np.zeros(n, bool)
        vertical = rng.random(n) < 0.5 if self.vertical else np.zeros(n, bool)
        return _image.flip(x, horizontal, vertical), (horizontal, vertical)

    def _augment_backward(self, dy: np.ndarray, cache: Tuple[np.ndarray, np.ndarray]
                          ) -> np.ndarray:
        return _image.flip(dy, *cache)   # a flip is its own transpose

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["mode"] = self.mode
        return config


class _RandomAffine(_RandomLayer):
    """A random transform per image, applied by :func:`fastconv._image.affine_transform`."""

    def __init__(self, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: Optional[int] = None, fill_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        if fill_mode not in _image.FILL_MODES:
            raise ValueError(f"{self._what}: `fill_mode` must be one of {_image.FILL_MODES}, "
                             f"got {fill_mode!r}")
        if interpolation not in _image.INTERPOLATIONS:
            raise ValueError(f"{self._what}: `interpolation` must be one of "
                             f"{_image.INTERPOLATIONS}, got {interpolation!r}")
        if isinstance(fill_value, (bool, np.bool_)) or not isinstance(fill_value, numbers.Real):
            raise ValueError(f"{self._what}: `fill_value` must be a float, got {fill_value!r}")
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, fill_value

    def _matrices(self, n: int, height: int, width: int, rng: np.random.Generator
                  ) -> np.ndarray:
        raise NotImplementedError

    def _augment(self, x: np.ndarray) -> Tuple[np.ndarray, _image.Sampling]:
        shape = ((1,) + x.shape) if x.ndim == 3 else x.shape
        matrices = self._matrices(shape[0], shape[1], shape[2], self._generator())
        sampling = _image.affine_sampling(shape, matrices, self.interpolation, self.fill_mode,
                                          dtype=x.dtype)
        return _image.sample(x, sampling, self.fill_value), sampling

    def _augment_backward(self, dy: np.ndarray, cache: _image.Sampling) -> np.ndarray:
        return _image.sample_backward(dy, cache)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "fill_value": self.fill_value,
                       "interpolation": self.interpolation})
        return config


class RandomRotation(_RandomAffine):
    """Rotates each image about its centre by a random angle.

    Parameters
    ----------
    factor : float or (lower, upper)
        In fractions of a full turn: the angle is drawn uniformly from
        ``[lower * 2pi, upper * 2pi]``; a float ``f`` means ``(-f, f)``.
        Positive angles turn the content counter-clockwise (as displayed).
    fill_mode : {'reflect', 'wrap', 'constant', 'nearest'}, default 'reflect'
    interpolation : {'bilinear', 'nearest'}, default 'bilinear'
    seed : int, optional
    fill_value : float, default 0
        What ``fill_mode='constant'`` fills with.
    """

    def __init__(self, factor: Any, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: Optional[int] = None, fill_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.lower, self.upper = _bounds(factor, "factor", self._what)
        if self.upper < self.lower:
            raise ValueError(f"{self._what}: `factor` must be a non-negative float or a pair "
                             f"(lower, upper) with lower <= upper, got {factor!r}")
        self.factor = factor

    def _matrices(self, n: int, height: int, width: int, rng: np.random.Generator
                  ) -> np.ndarray:
        angles = rng.uniform(self.lower * 2 * np.pi, self.upper * 2 * np.pi, n)
        return _image.rotation_matrices(angles, height, width)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["factor"] = self.factor
        return config


class RandomZoom(_RandomAffine):
    """Zooms each image about its centre by a random factor.

    Parameters
    ----------
    height_factor : float or (lower, upper)
        The vertical zoom is ``1 + u``, ``u`` drawn from ``[lower, upper]``
        (a float ``f``: ``(-f, f)``), within [-1, 1]. Positive values zoom
        out (a larger region is shown), negative values zoom in.
    width_factor : float or (lower, upper), optional
        The same for the horizontal zoom (values above -1); ``None`` keeps
        the aspect ratio (the horizontal zoom equals the vertical one).
    fill_mode, interpolation, seed, fill_value
        As :class:`RandomRotation`.
    """

    def __init__(self, height_factor: Any, width_factor: Any = None,
                 fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: Optional[int] = None, fill_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_lower, self.height_upper = _bounds(height_factor, "height_factor",
                                                       self._what)
        if abs(self.height_lower) > 1 or abs(self.height_upper) > 1:
            raise ValueError(f"{self._what}: `height_factor` must have values between [-1, 1], "
                             f"got {height_factor!r}")
        self.height_factor, self.width_factor = height_factor, width_factor
        if width_factor is not None:
            self.width_lower, self.width_upper = _bounds(width_factor, "width_factor",
                                                         self._what)
            if self.width_lower < -1 or self.width_upper < -1:
                raise ValueError(f"{self._what}: `width_factor` must have values larger than "
                                 f"-1, got {width_factor!r}")

    def _matrices(self, n: int, height: int, width: int, rng: np.random.Generator
                  ) -> np.ndarray:
        zoom_y = rng.uniform(1 + self.height_lower, 1 + self.height_upper, n)
        zoom_x = zoom_y if self.width_factor is None else \
            rng.uniform(1 + self.width_lower, 1 + self.width_upper, n)
        return _image.zoom_matrices(zoom_x, zoom_y, height, width)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config


class RandomTranslation(_RandomAffine):
    """Shifts each image by a random fraction of its size.

    Parameters
    ----------
    height_factor, width_factor : float or (lower, upper)
        The shift down (right) is ``u * height`` (``u * width``), ``u``
        drawn from ``[lower, upper]`` within [-1, 1]; a float ``f`` means
        ``(-f, f)``. Negative values shift up (left).
    fill_mode, interpolation, seed, fill_value
        As :class:`RandomRotation`.
    """

    def __init__(self, height_factor: Any, width_factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None,
                 fill_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        for name, value in (("height_factor", height_factor), ("width_factor", width_factor)):
            lower, upper = _bounds(value, name, self._what)
            if upper < lower:
                raise ValueError(f"{self._what}: `{name}` cannot have upper bound less than "
                                 f"lower bound, got {value!r}")
            if abs(lower) > 1 or abs(upper) > 1:
                raise ValueError(f"{self._what}: `{name}` must have values between [-1, 1], "
                                 f"got {value!r}")
            setattr(self, name.replace("factor", "lower"), lower)
            setattr(self, name.replace("factor", "upper"), upper)
        self.height_factor, self.width_factor = height_factor, width_factor

    def _matrices(self, n: int, height: int, width: int, rng: np.random.Generator
                  ) -> np.ndarray:
        dy = rng.uniform(self.height_lower, self.height_upper, n) * height
        dx = rng.uniform(self.width_lower, self.width_upper, n) * width
        return _image.translation_matrices(dx, dy)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config


class RandomContrast(_RandomLayer):
    """Scales each channel's deviations from its mean by a random factor:
    ``(x - mean) * f + mean``, the mean over each image's pixels.

    Parameters
    ----------
    factor : float or (lower, upper)
        ``f`` is drawn from ``[1 - lower, 1 + upper]`` (a float: both
        bounds), once per call for the whole batch, as tf.keras 2.4 (Keras 3
        draws one per image, and clips to a value range). ``lower`` in
        [0, 1], ``upper`` >= 0. Values are not clipped.
    seed : int, optional
    """

    def __init__(self, factor: Any, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        lower, upper = _bounds(factor, "factor", self._what)
        if not isinstance(factor, (tuple, list)):
            lower = upper
        if lower < 0 or upper < 0 or lower > 1:
            raise ValueError(f"{self._what}: `factor` cannot have negative values or a lower "
                             f"bound greater than 1.0, got {factor!r}")
        self.factor, self.lower, self.upper = factor, lower, upper

    def _augment(self, x: np.ndarray) -> Tuple[np.ndarray, float]:
        f = x.dtype.type(self._generator().uniform(1 - self.lower, 1 + self.upper))
        mean = x.mean(axis=(-3, -2), keepdims=True)
        return (x - mean) * f + mean, f

    def _augment_backward(self, dy: np.ndarray, cache: float) -> np.ndarray:
        f = cache
        return dy * f + dy.mean(axis=(-3, -2), keepdims=True) * (1 - f)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["factor"] = self.factor
        return config


class RandomCrop(_RandomLayer):
    """A random ``height x width`` window in training (the same window for
    the whole batch, as tf.keras 2.4); in inference the input resized
    (bilinear, aspect ratio kept) until its shorter side fits, then
    centre-cropped, as Keras.

    Parameters
    ----------
    height, width : positive int
        In training at most the input's size (ValueError otherwise).
    seed : int, optional
    """

    def __init__(self, height: int, width: int, seed: Optional[int] = None,
                 **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.height = _positive_int(height, "height", self._what)
        self.width = _positive_int(width, "width", self._what)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """``(..., height, width, channels)``."""
        return self._with_spatial(tuple(input_shape), self.height, self.width)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, Any]:
        """A random crop in training; resize and centre crop in inference.
        The cache: ``(input size, resized size, top, left)``."""
        x = np.asarray(inputs, dtype=self._dtype)
        h, w = x.shape[-3:-1]
        if training:
            self._check_fits(x.shape, self.height, self.width)
            rng = self._generator()
            top = int(rng.integers(0, h - self.height + 1))
            left = int(rng.integers(0, w - self.width + 1))
            resized = (h, w)
        else:
            # tf.keras 2.4: scale the side that would overflow less, truncating.
            if h * self.width > self.height * w:
                resized = (self.width * h // w, self.width)
            else:
                resized = (self.height, self.height * w // h)
            x = _image.resize(x, *resized, "bilinear")
            top, left, _, _ = _image.center_crop_box(*resized, self.height, self.width)
        return _image.crop(x, top, left, self.height, self.width), ((h, w), resized, top, left)

    def backward(self, d_outputs: np.ndarray, cache: Any, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The crop's padding, then (inference) the transposed resize."""
        if not compute_dx:
            return None, []
        size, resized, top, left = cache
        dx = _image.crop_backward(np.asarray(d_outputs, dtype=self._dtype), resized, top, left)
        if resized != size:
            dx = _image.resize_backward(dx, size, "bilinear")
        return dx, []

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        return None

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height": self.height, "width": self.width})
        return config
