"""Learning-rate schedules, as ``tf.keras.optimizers.schedules`` (TF 2.4).

A schedule is a callable ``schedule(step) -> float`` of the number of
optimizer steps already taken; pass one as an optimizer's
``learning_rate`` and it is evaluated once per step. The formulas are
TF 2.4's, evaluated in float64:

ExponentialDecay      ``lr * rate ** (step / decay_steps)`` (the exponent
                      floored with ``staircase``)
PiecewiseConstantDecay ``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]``
InverseTimeDecay      ``lr / (1 + rate * step / decay_steps)`` (floored with
                      ``staircase``)
PolynomialDecay       ``(lr - end) * (1 - step / decay_steps) ** power + end``,
                      ``step`` capped at ``decay_steps``, or with ``cycle``
                      ``decay_steps`` stretched to the next multiple past
                      ``step``
CosineDecay           ``lr * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps))
                      + alpha)``, ``s = min(step, decay_steps)``
CosineDecayRestarts   SGDR: cosine periods of ``first_decay_steps * t_mul**i``
                      steps, peaks scaled by ``m_mul**i``

Keras 3's ``CosineDecay`` adds a linear warmup (``warmup_target``,
``warmup_steps``); tf.keras 2.4 has none, and neither has fastconv.

Examples
--------
>>> from fastconv.optimizers import SGD, schedules
>>> lr = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
>>> round(lr(10), 6)
0.05
>>> opt = SGD(learning_rate=lr)
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Sequence

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
           "InverseTimeDecay", "PolynomialDecay", "CosineDecay", "CosineDecayRestarts",
           "serialize", "deserialize"]


def _number(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"`{name}` must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")
    return value


def _step(step: Any) -> float:
    value = float(step)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a schedule's step must be a finite number >= 0, got {step!r}")
    return value


class LearningRateSchedule:
    """Base class: ``__call__(step)``, ``get_config``, ``from_config``."""

    def __call__(self, step: Any) -> float:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "LearningRateSchedule":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _RateDecay(LearningRateSchedule):
    """The arguments of the decays in ``step / decay_steps`` (floored with
    ``staircase``): exponential and inverse-time."""

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float,
                 staircase: bool = False, name: Any = None) -> None:
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.decay_rate = _number(decay_rate, "decay_rate")
        self.staircase = bool(staircase)
        self.name = name

    def _progress(self, step: Any) -> float:
        p = _step(step) / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> Dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_RateDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``."""

    def __call__(self, step: Any) -> float:
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` up to and including ``boundaries[0]``, ``values[1]`` up
    to ``boundaries[1]``, ..., ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries: Sequence[float], values: Sequence[float],
                 name: Any = None) -> None:
        boundaries = [_number(b, "boundaries") for b in boundaries]
        values = [_number(v, "values") for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"`values` must have one more entry than `boundaries`, got "
                             f"{len(values)} values and {len(boundaries)} boundaries")
        if any(b1 < b0 for b0, b1 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"`boundaries` must be non-decreasing, got {boundaries}")
        self.boundaries: List[float] = boundaries
        self.values: List[float] = values
        self.name = name

    def __call__(self, step: Any) -> float:
        s = _step(step)
        for boundary, value in zip(self.boundaries, self.values):
            if s <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> Dict[str, Any]:
        return {"boundaries": list(self.boundaries), "values": list(self.values),
                "name": self.name}


class InverseTimeDecay(_RateDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``."""

    def __call__(self, step: Any) -> float:
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step))


class PolynomialDecay(LearningRateSchedule):
    """From ``initial_learning_rate`` to ``end_learning_rate`` over
    ``decay_steps`` along ``(1 - step / decay_steps) ** power``; then flat, or
    with ``cycle`` again from the top over a period stretched to the next
    multiple of ``decay_steps`` past ``step``."""

    def __init__(self, initial_learning_rate: float, decay_steps: float,
                 end_learning_rate: float = 0.0001, power: float = 1.0, cycle: bool = False,
                 name: Any = None) -> None:
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.end_learning_rate = _number(end_learning_rate, "end_learning_rate")
        self.power = _number(power, "power")
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step: Any) -> float:
        s, decay_steps = _step(step), self.decay_steps
        if self.cycle:
            # step 0 would give a period of 0: TF uses one period there
            multiplier = 1.0 if s == 0 else math.ceil(s / decay_steps)
            decay_steps = decay_steps * multiplier
        else:
            s = min(s, decay_steps)
        fraction = 1.0 - s / decay_steps
        return ((self.initial_learning_rate - self.end_learning_rate) * fraction ** self.power
                + self.end_learning_rate)

    def get_config(self) -> Dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Half a cosine from ``initial_learning_rate`` down to
    ``alpha * initial_learning_rate`` over ``decay_steps``, then flat (no
    warmup: Keras 3's ``warmup_*`` arguments are not tf.keras 2.4's)."""

    def __init__(self, initial_learning_rate: float, decay_steps: float, alpha: float = 0.0,
                 name: Any = None) -> None:
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.alpha = _number(alpha, "alpha")
        self.name = name

    def __call__(self, step: Any) -> float:
        s = min(_step(step), self.decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * s / self.decay_steps))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> Dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): period ``i`` lasts
    ``first_decay_steps * t_mul**i`` steps and starts at
    ``initial_learning_rate * m_mul**i``."""

    def __init__(self, initial_learning_rate: float, first_decay_steps: float,
                 t_mul: float = 2.0, m_mul: float = 1.0, alpha: float = 0.0,
                 name: Any = None) -> None:
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.first_decay_steps = _number(first_decay_steps, "first_decay_steps", positive=True)
        self.t_mul = _number(t_mul, "t_mul", positive=True)
        self.m_mul = _number(m_mul, "m_mul")
        self.alpha = _number(alpha, "alpha")
        self.name = name

    def __call__(self, step: Any) -> float:
        fraction = _step(step) / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            # periods 1, t, t^2, ... (in units of first_decay_steps) end at
            # (1 - t^i) / (1 - t): the one holding `fraction` is i
            restart = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul))
                                 / math.log(self.t_mul))
            done = (1.0 - self.t_mul ** restart) / (1.0 - self.t_mul)
            fraction = (fraction - done) / self.t_mul ** restart
        cosine = 0.5 * self.m_mul ** restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> Dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay,
                                            InverseTimeDecay, PolynomialDecay, CosineDecay,
                                            CosineDecayRestarts)}


def serialize(schedule: LearningRateSchedule) -> Dict[str, Any]:
    """``{'class_name': ..., 'config': ...}``, as Keras writes schedules in an
    optimizer's config."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: Dict[str, Any]) -> LearningRateSchedule:
    """Inverse of :func:`serialize`."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("a schedule config must be a dict with 'class_name' and 'config' "
                         f"keys, got {config!r}")
    cls = _SCHEDULES.get(config["class_name"])
    if cls is None:
        raise ValueError(f"Unknown learning-rate schedule {config['class_name']!r}; "
                         f"available: {sorted(_SCHEDULES)}")
    return cls.from_config(config.get("config", {}))
