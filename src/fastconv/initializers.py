"""Weight initializers with Keras 2 semantics (values, not the RNG stream).

An initializer is called as ``init(shape, dtype=None) -> ndarray``.
:func:`get` resolves a name (``'glorot_uniform'``, ``'zeros'``, ``'ones'``,
...), a class name, a ``{'class_name', 'config'}`` dict, an instance or any
callable with that signature.

Seeds: an initializer built with ``seed=`` returns the same values on every
call; one without a seed draws from the process-wide generator that
:func:`fastconv.backend.set_random_seed` controls.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _serialization, backend

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
    "LecunUniform", "LecunNormal", "zeros", "ones", "glorot_uniform", "get", "serialize",
    "deserialize", "compute_fans",
]

Shape = Tuple[int, ...]


def _as_shape(shape: Union[int, Sequence[int]]) -> Shape:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def _as_float_dtype(dtype: Any) -> np.dtype:
    result = np.dtype(backend.floatx() if dtype is None else dtype)
    if result.kind != "f":
        raise TypeError(f"initializers produce floating-point weights; got dtype {result}")
    return result


def compute_fans(shape: Sequence[int]) -> Tuple[int, int]:
    """Keras' ``(fan_in, fan_out)``.

    Rank 2 (Dense): ``(shape[0], shape[1])``. Rank >= 3 (conv kernels, HWIO):
    ``receptive_field = prod(shape[:-2])``, then
    ``(shape[-2] * receptive_field, shape[-1] * receptive_field)``.
    Rank 1 uses ``shape[0]`` for both, rank 0 gives ``(1, 1)``.
    """
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = int(np.prod(shape[:-2]))
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype=None)``."""

    def __call__(self, shape: Union[int, Sequence[int]], dtype: Any = None) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments, for :meth:`from_config`."""
        return {}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Initializer":
        """Rebuild an initializer from :meth:`get_config`'s dict."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _SeededInitializer(Initializer):
    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = seed

    def _rng(self) -> np.random.Generator:
        # A fresh generator per call makes a seeded initializer repeatable,
        # which is what Keras 2's seeded initializers do.
        if self.seed is not None:
            return np.random.default_rng(self.seed)
        return backend.global_rng()


class Zeros(Initializer):
    """All zeros (the default bias initializer)."""

    def __call__(self, shape, dtype=None):
        return np.zeros(_as_shape(shape), dtype=_as_float_dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return np.ones(_as_shape(shape), dtype=_as_float_dtype(dtype))


class Constant(Initializer):
    """Every element equal to ``value``."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(_as_shape(shape), self.value, dtype=_as_float_dtype(dtype))

    def get_config(self):
        return {"value": self.value}


class RandomUniform(_SeededInitializer):
    """``U(minval, maxval)``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05,
                 seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        values = self._rng().uniform(self.minval, self.maxval, size=_as_shape(shape))
        return values.astype(_as_float_dtype(dtype))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(_SeededInitializer):
    """``N(mean, stddev**2)``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05,
                 seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        values = self._rng().normal(self.mean, self.stddev, size=_as_shape(shape))
        return values.astype(_as_float_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(_SeededInitializer):
    """Keras' ``VarianceScaling``: variance ``scale / n`` for a fan ``n``.

    ``n`` is ``fan_in``, ``fan_out`` or their mean (``mode='fan_avg'``),
    clamped below at 1. ``distribution='uniform'`` draws from
    ``U(-sqrt(3 * scale / n), +sqrt(3 * scale / n))``; ``'truncated_normal'``
    draws a normal cut at two standard deviations whose stddev is corrected
    (divided by 0.8796...) so the variance stays ``scale / n``;
    ``'untruncated_normal'`` draws ``N(0, scale / n)``.
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")
    # stddev of a standard normal truncated to [-2, 2].
    _TRUNCATED_STDDEV = 0.87962566103423978

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: Optional[int] = None) -> None:
        super().__init__(seed)
        if scale <= 0.0:
            raise ValueError(f"`scale` must be positive float. Got: {scale}")
        mode = mode.lower()
        if mode not in self._MODES:
            raise ValueError(f"Invalid `mode` argument: {mode}; expected one of {self._MODES}")
        distribution = distribution.lower()
        if distribution == "normal":  # Keras' legacy spelling
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"Invalid `distribution` argument: {distribution}; "
                             f"expected one of {self._DISTRIBUTIONS}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def _variance(self, shape: Shape) -> float:
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out,
               "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        return self.scale / max(1.0, fan)

    def __call__(self, shape, dtype=None):
        shape = _as_shape(shape)
        dtype = _as_float_dtype(dtype)
        variance = self._variance(shape)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, size=shape)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(variance), size=shape)
        else:
            values = self._truncated_normal(rng, math.sqrt(variance) / self._TRUNCATED_STDDEV,
                                            shape)
        return values.astype(dtype)

    @staticmethod
    def _truncated_normal(rng: np.random.Generator, stddev: float, shape: Shape) -> np.ndarray:
        values = rng.normal(0.0, 1.0, size=shape)
        # Redraw the few values outside two stddevs (about 4.6% per round).
        outside = np.abs(values) > 2.0
        while outside.any():
            values[outside] = rng.normal(0.0, 1.0, size=int(outside.sum()))
            outside = np.abs(values) > 2.0
        return values * stddev

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


class GlorotUniform(VarianceScaling):
    """Xavier/Glorot uniform: ``U(-limit, limit)``, ``limit = sqrt(6 / (fan_in + fan_out))``.

    For a conv kernel ``(kh, kw, in, out)``: ``fan_in = kh*kw*in`` and
    ``fan_out = kh*kw*out`` (see :func:`compute_fans`).
    """

    def __init__(self, seed: Optional[int] = None) -> None:
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotNormal(VarianceScaling):
    """Truncated normal with variance ``2 / (fan_in + fan_out)``."""

    def __init__(self, seed: Optional[int] = None) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class HeUniform(VarianceScaling):
    """``U(-limit, limit)``, ``limit = sqrt(6 / fan_in)``."""

    def __init__(self, seed: Optional[int] = None) -> None:
        super().__init__(2.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class HeNormal(VarianceScaling):
    """Truncated normal with variance ``2 / fan_in``."""

    def __init__(self, seed: Optional[int] = None) -> None:
        super().__init__(2.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class LecunUniform(VarianceScaling):
    """``U(-limit, limit)``, ``limit = sqrt(3 / fan_in)``."""

    def __init__(self, seed: Optional[int] = None) -> None:
        super().__init__(1.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class LecunNormal(VarianceScaling):
    """Truncated normal with variance ``1 / fan_in``."""

    def __init__(self, seed: Optional[int] = None) -> None:
        super().__init__(1.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


# Keras' functional aliases.
zeros = Zeros
ones = Ones
glorot_uniform = GlorotUniform

_BY_NAME: Dict[str, type] = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "random_uniform": RandomUniform, "uniform": RandomUniform,
    "random_normal": RandomNormal, "normal": RandomNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
}
_BY_CLASS_NAME: Dict[str, type] = {cls.__name__: cls for cls in set(_BY_NAME.values())}

InitializerLike = Union[str, Dict[str, Any], Initializer, Callable[..., np.ndarray]]


def get(identifier: InitializerLike) -> Callable[..., np.ndarray]:
    """Resolve ``identifier`` to a callable ``init(shape, dtype=None)``.

    Raises
    ------
    ValueError
        ``Unknown initializer: <name>`` for an unknown name or class name.
    TypeError
        For anything that is not a string, config dict or callable.
    """
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_CLASS_NAME.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown initializer: {identifier}")
        return cls()
    if isinstance(identifier, dict):
        if "class_name" not in identifier:
            raise ValueError(f"an initializer config dict needs a 'class_name' key, "
                             f"got {identifier!r}")
        name = identifier["class_name"]
        cls = _BY_CLASS_NAME.get(name) or _BY_NAME.get(name)
        if cls is None:
            raise ValueError(f"Unknown initializer: {name}")
        return cls.from_config(identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(initializer: Any) -> Union[None, str, Dict[str, Any]]:
    """Keras' serialized form, as layers' ``get_config`` give it:
    ``{'class_name': 'GlorotUniform', 'config': {'seed': None}}`` for an
    :class:`Initializer` (pass it through :func:`get` first: a name is not
    serialized), a plain function's name otherwise."""
    return _serialization.serialize(initializer)


def deserialize(config: Union[str, Dict[str, Any]],
                custom_objects: Optional[Dict[str, Any]] = None) -> Any:
    """The initializer a :func:`serialize` form (or a name) describes;
    ``custom_objects`` maps names to the user's classes."""
    return _serialization.deserialize(config, {**_BY_NAME, **_BY_CLASS_NAME}, custom_objects,
                                      "initializer")
