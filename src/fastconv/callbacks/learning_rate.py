"""Callbacks that set the optimizer's learning rate between epochs
(tf.keras 2.4's ``LearningRateScheduler`` and ``ReduceLROnPlateau``)."""
from __future__ import annotations

import inspect
import math
import numbers
import warnings
from typing import Any, Callable

import numpy as np

from .base import Callback, Logs
from .monitoring import monitor_op

__all__ = ["LearningRateScheduler", "ReduceLROnPlateau"]


def _optimizer_rate(callback: Callback) -> float:
    """The model's optimizer's learning rate, which must be a plain number."""
    optimizer = getattr(callback.model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{type(callback).__name__} needs a compiled model whose optimizer "
                         "has a `learning_rate`")
    rate = optimizer.learning_rate
    if callable(rate):
        raise ValueError(f"{type(callback).__name__} sets the learning rate each epoch, but the "
                         f"optimizer's is a schedule ({rate!r}); pass a float learning rate, "
                         "or let the schedule alone drive it")
    return float(rate)


def _set_rate(callback: Callback, rate: float) -> None:
    callback.model.optimizer.learning_rate = rate


class LearningRateScheduler(Callback):
    """At the start of each epoch, ``lr = schedule(epoch, lr)`` (or
    ``schedule(epoch)`` for a one-argument function), as tf.keras 2.4; the
    rate is logged as ``'lr'`` at the end of the epoch.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> float`` with the 0-based epoch and the
        current rate, or ``schedule(epoch) -> float``.
    verbose : int, default 0
        1 prints ``Epoch 00003: LearningRateScheduler reducing learning rate
        to 0.01.`` each epoch.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"`schedule` must be callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose

    def _takes_rate(self) -> bool:
        try:
            params = inspect.signature(self.schedule).parameters.values()
        except (TypeError, ValueError):   # builtins without a signature: try both
            return True
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)]
        return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        current = _optimizer_rate(self)
        # Keras calls schedule(epoch, lr) and falls back to schedule(epoch) on a
        # TypeError, which also swallows TypeErrors raised inside the schedule;
        # the signature decides here instead
        rate = self.schedule(epoch, current) if self._takes_rate() else self.schedule(epoch)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise ValueError(f'The output of the "schedule" function should be float, got '
                             f"{type(rate).__name__} {rate!r} at epoch {epoch}")
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(f'The "schedule" function returned {rate!r} at epoch {epoch}; a '
                             "learning rate must be a finite number >= 0")
        _set_rate(self, float(rate))
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1:05d}: LearningRateScheduler reducing learning rate to "
                  f"{rate}.")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if logs is not None:
            logs["lr"] = np.float32(_optimizer_rate(self))


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` once ``monitor`` has not
    improved for ``patience`` epochs (tf.keras 2.4's rules).

    ``current`` improves on ``best`` when ``current < best - min_delta`` (mode
    min) or ``current > best + min_delta`` (mode max; 'auto' maximises a
    monitor whose name contains ``'acc'``). After a reduction the wait counter
    pauses for ``cooldown`` epochs. The rate never goes below ``min_lr``, and
    is computed in float32 as Keras' variable holds it. The rate is logged as
    ``'lr'`` at the end of every epoch.

    Parameters
    ----------
    monitor : str, default 'val_loss'
    factor : float, default 0.1
        In (0, 1).
    patience : int, default 10
    verbose : int, default 0
    mode : {'auto', 'min', 'max'}, default 'auto'
    min_delta : float, default 1e-4
        (``epsilon`` is Keras' old name for it.)
    cooldown : int, default 0
    min_lr : float, default 0
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0, **kwargs: Any) -> None:
        super().__init__()
        if "epsilon" in kwargs:
            min_delta = kwargs.pop("epsilon")
            warnings.warn("`epsilon` argument is deprecated and will be removed, use "
                          "`min_delta` instead.", DeprecationWarning, stacklevel=2)
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        if not 0 < factor < 1:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0 (or <= 0); "
                             f"got factor={factor!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"`{name}` must be an int >= 0, got {value!r}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = mode
        self.min_delta = float(min_delta)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.monitor_op = monitor_op(mode, monitor, "ReduceLROnPlateau")
        self._reset()

    def _reset(self) -> None:
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def _improved(self, current: float) -> bool:
        if self.monitor_op is np.less:
            return bool(current < self.best - self.min_delta)
        return bool(current > self.best + self.min_delta)

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs: Logs = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs if logs is not None else {}
        logs["lr"] = np.float32(_optimizer_rate(self))
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          f"which is not available. Available metrics are: {','.join(logs)}",
                          RuntimeWarning, stacklevel=3)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old = np.float32(_optimizer_rate(self))
                if old > np.float32(self.min_lr):
                    new = max(float(old * np.float32(self.factor)), self.min_lr)
                    _set_rate(self, new)
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1:05d}: ReduceLROnPlateau reducing learning "
                              f"rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
