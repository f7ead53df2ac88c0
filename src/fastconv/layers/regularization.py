"""Regularization layers: ``Dropout``, ``SpatialDropout1D/2D/3D``, ``GaussianNoise``,
``GaussianDropout`` (tf.keras 2.4's ``core`` and ``noise`` modules).

They change their input only in training (``training=True``, which ``fit``
passes); in inference they return it unchanged. Each training call draws its
noise as one vectorised array; a multiplicative one (the dropout masks,
GaussianDropout's noise) stays in the cache, so the backward pass multiplies
the gradient by the very mask the forward pass used.

Random numbers: a ``Dropout`` given ``seed=`` owns a generator seeded with it,
so a fresh layer replays the same sequence of masks (successive calls still
differ, as TensorFlow's seeded ops do); without a seed, and for the Gaussian
layers (which take no seed in tf.keras 2.4), they come from the generator of
:func:`fastconv.backend.set_random_seed`, which makes whole runs
reproducible. The streams are NumPy's, not TensorFlow's: the same seed gives
other masks than Keras, with the same statistics.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .. import backend
from .base import InputSpec, Layer

__all__ = ["Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
           "GaussianNoise", "GaussianDropout"]

Shape = Tuple[Optional[int], ...]


def _check_rate(rate: Any, what: str) -> float:
    """``rate`` as a float in [0, 1) (a rate of 1 would drop everything and
    scale by 1/0)."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"{what}: `rate` must be a float in the range [0, 1), got "
                        f"{type(rate).__name__} {rate!r}")
    if not 0 <= rate < 1:  # also refuses NaN
        raise ValueError(f"{what}: `rate` must be a float in the range [0, 1), got {rate!r}")
    return rate


class Dropout(Layer):
    """Sets a fraction ``rate`` of the input units to 0 in training, and scales
    the others by ``1 / (1 - rate)`` (inverted dropout), so the expected sum
    is unchanged and inference is the identity.

    Parameters
    ----------
    rate : float in [0, 1)
        Fraction of the units to drop. (tf.keras 2.4 checks it only when the
        layer first runs in training; fastconv checks it at construction.)
    noise_shape : sequence of (int or None), optional
        Shape of the keep/drop mask, broadcast over the input: ``(batch, 1,
        features)`` drops the same features at every time step. ``None``
        entries take the input's size. Each entry must be the input's size or 1.
    seed : int, optional
        Seeds this layer's own generator (see the module docstring).
    """

    def __init__(self, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None,
                 seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = f"Layer {self.name} ({type(self).__name__})"
        self.rate = _check_rate(rate, what)
        if noise_shape is not None:
            if isinstance(noise_shape, (str, bytes)) or not isinstance(noise_shape, Sequence) \
                    or not all(d is None or (isinstance(d, (int, np.integer)) and
                                             not isinstance(d, bool) and d >= 1)
                               for d in noise_shape):
                raise ValueError(f"{what}: `noise_shape` must be a tuple of positive ints or "
                                 f"None (one entry per input axis), got {noise_shape!r}")
        self.noise_shape = noise_shape
        if seed is not None and (isinstance(seed, bool) or
                                 not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{what}: `seed` must be a non-negative int or None, got {seed!r}")
        self.seed = seed
        self._seeded_rng = None if seed is None else np.random.default_rng(seed)

    def _random_generators(self) -> List[np.random.Generator]:
        return [] if self._seeded_rng is None else [self._seeded_rng]

    def _generator(self) -> np.random.Generator:
        # Looked up on every call: set_random_seed replaces the global generator.
        return self._seeded_rng if self._seeded_rng is not None else backend.global_rng()

    def _mask_shape(self, input_shape: Shape) -> Shape:
        """The shape of the mask for an input of ``input_shape`` (``None`` dims
        stay unknown), checked to broadcast over it."""
        if self.noise_shape is None:
            return tuple(input_shape)
        noise = tuple(self.noise_shape)
        problem = ""
        if len(noise) != len(input_shape):
            problem = f"it has {len(noise)} entries for an input of rank {len(input_shape)}"
        mask = tuple(size if n is None else n for n, size in zip(noise, input_shape))
        for n, size in zip(mask, input_shape):
            if not problem and n is not None and size is not None and n not in (1, size):
                problem = f"{mask} does not broadcast to the input shape {tuple(input_shape)}"
        if problem:
            raise ValueError(f"Layer {self.name} ({type(self).__name__}): `noise_shape` "
                             f"{noise}: {problem}; each entry must be the input's size, 1 "
                             "or None")
        return mask

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape."""
        self._mask_shape(tuple(input_shape))
        return tuple(input_shape)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """In training, ``x * mask`` with ``mask`` 0 or ``1 / (1 - rate)``; the
        cache is the mask (None when nothing was dropped)."""
        x = np.asarray(inputs, dtype=self._dtype)
        if not training or self.rate == 0:
            return x, None
        uniform = self._generator().random(self._mask_shape(x.shape), dtype=x.dtype)
        # TensorFlow keeps a unit when its uniform draw is >= rate.
        kept = uniform >= x.dtype.type(self.rate)
        mask = np.where(kept, x.dtype.type(1 / (1 - self.rate)), x.dtype.type(0))
        return x * mask, mask

    def backward(self, d_outputs: np.ndarray, cache: Optional[np.ndarray],
                 compute_dx: bool = True) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient times the forward pass's mask."""
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        return (dy if cache is None else dy * cache), []

    def _output_op_name(self, input_shape: Any) -> str:
        # TF 2.4 traces a layer call outside fit in inference: an identity op.
        return "Identity"

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed})
        return config


class _SpatialDropout(Dropout):
    """Dropout of whole feature maps: one keep/drop decision per sample and
    channel, the mask of size 1 on every other axis."""

    _rank = 0
    _channels_axis = -1

    def __init__(self, rate: float, **kwargs: Any) -> None:
        super().__init__(rate, **kwargs)
        self.input_spec = InputSpec(ndim=self._rank)

    def _mask_shape(self, input_shape: Shape) -> Shape:
        channels_axis = self._channels_axis % len(input_shape)
        return tuple(size if axis in (0, channels_axis) else 1
                     for axis, size in enumerate(input_shape))


class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole feature maps of ``(batch, steps, channels)`` input
    (mask ``(batch, 1, channels)``).

    Takes ``rate`` and Dropout's ``seed``; like tf.keras 2.4 it has no
    ``data_format``.
    """

    _rank = 3


class _SpatialDropoutND(_SpatialDropout):
    """SpatialDropout2D/3D: the channel axis is set by ``data_format``."""

    def __init__(self, rate: float, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(rate, **kwargs)
        if data_format is None:
            data_format = backend.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            # Keras' message, and like Keras no lower-casing.
            raise ValueError(f'Layer {self.name} ({type(self).__name__}): data_format must be '
                             f'in {{"channels_last", "channels_first"}}, got {data_format!r}')
        self.data_format = data_format
        self._channels_axis = 1 if data_format == "channels_first" else -1

    def get_config(self):
        # tf.keras 2.4's SpatialDropout2D/3D inherit Dropout's config and so
        # lose data_format (a channels_first layer comes back channels_last);
        # fastconv adds the key, as Keras 3 does, so the round trip holds.
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class SpatialDropout2D(_SpatialDropoutND):
    """Dropout of whole 2-D feature maps: mask ``(batch, 1, 1, channels)``
    (``channels_first``: ``(batch, channels, 1, 1)``).

    Parameters
    ----------
    rate : float in [0, 1)
    data_format : None, 'channels_last' or 'channels_first'
        Where the channels are; None means ``image_data_format()``.
    """

    _rank = 4


class SpatialDropout3D(_SpatialDropoutND):
    """Dropout of whole 3-D feature maps: mask ``(batch, 1, 1, 1, channels)``
    (``channels_first``: ``(batch, channels, 1, 1, 1)``). Arguments as
    :class:`SpatialDropout2D`."""

    _rank = 5


class GaussianNoise(Layer):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` in training.

    Parameters
    ----------
    stddev : float >= 0
        (tf.keras 2.4 does not check it; Keras 3 wants it in [0, 1]; fastconv
        refuses only negative or non-finite values.)
    """

    def __init__(self, stddev: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, numbers.Real) or \
                not math.isfinite(stddev) or stddev < 0:
            raise ValueError(f"Layer {self.name} (GaussianNoise): `stddev` must be a finite "
                             f"float >= 0, got {stddev!r}")
        self.stddev = stddev

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape."""
        return tuple(input_shape)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, None]:
        """``x + stddev * N(0, 1)`` in training; nothing to cache (the noise is added)."""
        x = np.asarray(inputs, dtype=self._dtype)
        if not training or self.stddev == 0:
            return x, None
        noised = backend.global_rng().standard_normal(x.shape, dtype=x.dtype)
        noised *= x.dtype.type(self.stddev)
        noised += x
        return noised, None

    def backward(self, d_outputs: np.ndarray, cache: None, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient, unchanged."""
        return (np.asarray(d_outputs, dtype=self._dtype) if compute_dx else None), []

    def get_config(self):
        config = super().get_config()
        config["stddev"] = self.stddev
        return config


class GaussianDropout(Layer):
    """Multiplies by Gaussian noise of mean 1 and standard deviation
    ``sqrt(rate / (1 - rate))`` in training.

    Parameters
    ----------
    rate : float in [0, 1)
        (tf.keras 2.4 treats a rate outside (0, 1) as "no noise"; fastconv
        refuses rates outside [0, 1).)
    """

    def __init__(self, rate: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = _check_rate(rate, f"Layer {self.name} (GaussianDropout)")

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape."""
        return tuple(input_shape)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """``x * noise`` in training; the cache is the noise."""
        x = np.asarray(inputs, dtype=self._dtype)
        if not training or self.rate == 0:
            return x, None
        noise = backend.global_rng().standard_normal(x.shape, dtype=x.dtype)
        noise *= x.dtype.type(math.sqrt(self.rate / (1 - self.rate)))
        noise += x.dtype.type(1)
        return x * noise, noise

    def backward(self, d_outputs: np.ndarray, cache: Optional[np.ndarray],
                 compute_dx: bool = True) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient times the forward pass's noise."""
        if not compute_dx:
            return None, []
        dy = np.asarray(d_outputs, dtype=self._dtype)
        return (dy if cache is None else dy * cache), []

    def get_config(self):
        config = super().get_config()
        config["rate"] = self.rate
        return config
