"""The optimizer base class: steps on ``(gradient, parameter)`` pairs updated in
place, clipping, learning rates and schedules, per-parameter slots and their
saved state. The concrete optimizers are in :mod:`fastconv.optimizers`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import schedules
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "LearningRate", "check_nonnegative", "check_fraction"]

LearningRate = Union[float, Callable[[int], float]]
Slots = Dict[str, np.ndarray]


def check_nonnegative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"`{name}` must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: bookkeeping, validation, clipping and the step counter.

    Subclasses implement :meth:`_create_slots` and :meth:`_update_param`.

    Parameters
    ----------
    name : str
        Name reported by :meth:`get_config`.
    learning_rate : float or callable
        A float, or ``schedule(iterations) -> float`` evaluated once per step
        with the number of steps already taken (Keras' LearningRateSchedule
        convention).
    **kwargs
        ``lr`` (deprecated alias of ``learning_rate``), ``decay``,
        ``clipnorm``, ``clipvalue``, ``global_clipnorm``, as in Keras.

    Attributes
    ----------
    iterations : int
        Number of :meth:`apply_gradients` calls so far (Keras'
        ``optimizer.iterations``).
    """

    _ALLOWED_KWARGS = ("lr", "decay", "clipnorm", "clipvalue", "global_clipnorm")

    def __init__(self, name: str, learning_rate: LearningRate, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(self._ALLOWED_KWARGS))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {unknown}; "
                f"accepted: {list(self._ALLOWED_KWARGS)}")
        if "lr" in kwargs:  # Keras 2 still accepts the old name
            learning_rate = kwargs.pop("lr")
        self._name = name
        self.learning_rate = learning_rate
        self.decay = check_nonnegative(kwargs.pop("decay", 0.0), "decay")
        clip = {}
        for key in ("clipnorm", "global_clipnorm", "clipvalue"):
            value = kwargs.get(key)
            clip[key] = None if value is None else check_nonnegative(value, key)
        if clip["clipnorm"] is not None and clip["global_clipnorm"] is not None:
            raise ValueError("Cannot accept both `clipnorm` and `global_clipnorm`; pass one")
        self.clipnorm: Optional[float] = clip["clipnorm"]
        self.global_clipnorm: Optional[float] = clip["global_clipnorm"]
        self.clipvalue: Optional[float] = clip["clipvalue"]
        self.iterations = 0
        # id(param) -> (param, slots). Holding the array keeps its id from
        # being reused by a different array while the state exists.
        self._state: Dict[int, Tuple[np.ndarray, Slots]] = {}

    # A copy (pickle, deepcopy) holds new parameter arrays, so new ids: the
    # state travels as (parameter, slots) pairs and is keyed again. Pickled
    # with its model, each parameter is the model's own copied array.
    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_state"] = list(self._state.values())
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        pairs = state.pop("_state")
        self.__dict__.update(state)
        self._state = {id(param): (param, slots) for param, slots in pairs}

    # -- hyperparameters ---------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def learning_rate(self) -> LearningRate:
        """The learning rate (a float or a schedule); assignable between steps."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        if not callable(value):
            value = check_nonnegative(value, "learning_rate")
        self._learning_rate = value

    # Keras 2 alias, used by older callbacks (``model.optimizer.lr``).
    lr = learning_rate

    def current_learning_rate(self) -> float:
        """Learning rate the next step will use (schedule and decay applied)."""
        lr = self._learning_rate
        if callable(lr):
            lr = float(lr(self.iterations))
        if self.decay > 0.0:
            lr = lr / (1.0 + self.decay * self.iterations)
        return float(lr)

    # -- public update API -------------------------------------------------
    def apply_gradients(self, grads_and_vars: Iterable[Tuple[Optional[np.ndarray], np.ndarray]]
                        ) -> None:
        """Apply one step to every ``(gradient, parameter)`` pair, in place.

        Parameters
        ----------
        grads_and_vars : iterable of (ndarray or None, ndarray)
            Pairs as produced by ``zip(grads, params)``. A ``None`` gradient
            leaves its parameter untouched (as Keras does for variables
            without a gradient). Parameters must be writeable float arrays,
            or objects whose ``numpy()`` returns the live array (fastconv's
            ``Variable``, so ``zip(grads, model.trainable_weights)`` works);
            each gradient must have its parameter's shape. A parameter with a
            ``constraint`` (a Variable made with ``add_weight(constraint=...)``)
            is projected with it right after its update, as in Keras.

        Raises
        ------
        ValueError
            If no pair has a gradient, or a gradient's shape differs from its
            parameter's.
        TypeError
            If a parameter is not a writeable floating-point ndarray.
        """
        pairs: List[Tuple[np.ndarray, np.ndarray]] = []
        constrained: List[Tuple[Any, np.ndarray]] = []
        for index, pair in enumerate(grads_and_vars):
            try:
                grad, param = pair
            except (TypeError, ValueError):
                raise TypeError(
                    f"grads_and_vars[{index}] must be a (gradient, parameter) pair, "
                    f"got {type(pair).__name__}") from None
            constraint = getattr(param, "constraint", None)
            param = self._check_param(param, index)
            if grad is None:
                continue
            pairs.append((self._check_grad(grad, param, index), param))
            if constraint is not None:
                constrained.append((constraint, param))
        if not pairs:
            raise ValueError("No gradients provided for any parameter: every gradient "
                             "in `grads_and_vars` is None (or the sequence is empty)")
        grads = self._clip([g for g, _ in pairs])
        lr = self.current_learning_rate()
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"the learning rate for step {self.iterations} is {lr!r}; it must "
                             "be a finite number >= 0 (check the schedule)")
        self._begin_step()
        for grad, (_, param) in zip(grads, pairs):
            self._update_param(param, grad, self._slots_for(param), lr)
        for constraint, param in constrained:
            self._project(constraint, param)
        self.iterations += 1

    @staticmethod
    def _project(constraint: Callable[[np.ndarray], Any], param: np.ndarray) -> None:
        """``param[...] = constraint(param)``: Keras applies a variable's
        constraint right after the optimizer updates it."""
        projected = np.asarray(constraint(param))
        if projected.shape != param.shape:
            raise ValueError(f"The constraint {constraint!r} returned shape {projected.shape} "
                             f"for a weight of shape {param.shape}")
        param[...] = projected

    def apply(self, params: Sequence[np.ndarray], grads: Sequence[Optional[np.ndarray]]) -> None:
        """Same as ``apply_gradients(zip(grads, params))``, with a length check."""
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise ValueError(f"`params` has {len(params)} arrays but `grads` has "
                             f"{len(grads)}; they must pair up one to one")
        self.apply_gradients(zip(grads, params))

    def get_slot(self, param: np.ndarray, slot_name: str) -> np.ndarray:
        """The state array ``slot_name`` (e.g. ``'m'``) kept for ``param``."""
        entry = self._state.get(id(param))
        if entry is None or entry[0] is not param:
            raise KeyError(f"{self._name} holds no state for this parameter (it has not "
                           "been updated by this optimizer yet)")
        slots = entry[1]
        if slot_name not in slots:
            raise KeyError(f"{self._name} has no slot {slot_name!r}; it has {sorted(slots)}")
        return slots[slot_name]

    def get_state(self, params: Sequence[Any]) -> Dict[str, np.ndarray]:
        """Copies of everything the next steps depend on, for ``params`` in order.

        Keys: ``'iterations'``, ``'learning_rate'`` (when it is a number:
        callbacks such as ReduceLROnPlateau change it), optimizer-wide
        values as ``'extra/<name>'`` (Nadam's ``momentum_cache``) and each
        slot as ``'slot/<index in params>/<slot name>'`` (a parameter not
        yet updated has none). :meth:`set_state` with the same ``params``
        (or others of the same shapes, e.g. a reloaded model's) continues
        training bitwise where this state was taken.
        """
        state: Dict[str, np.ndarray] = {"iterations": np.array(self.iterations, np.int64)}
        if not callable(self._learning_rate):
            state["learning_rate"] = np.array(self._learning_rate, np.float64)
        for key, value in self._extra_state().items():
            state[f"extra/{key}"] = np.array(value, np.float64)
        for index, param in enumerate(params):
            array = self._check_param(param, index)
            entry = self._state.get(id(array))
            if entry is not None and entry[0] is array:
                for name, slot in entry[1].items():
                    state[f"slot/{index}/{name}"] = slot.copy()
        return state

    def set_state(self, params: Sequence[Any], state: Dict[str, np.ndarray]) -> None:
        """Restore :meth:`get_state`'s output for ``params``; all of it is
        checked (keys, shapes, dtypes) before anything changes.

        Raises
        ------
        ValueError
            A key this optimizer does not have, a slot for a parameter index
            out of range, or an array whose shape or dtype differs from its
            parameter's.
        """
        arrays = [self._check_param(param, index) for index, param in enumerate(params)]
        extras = self._extra_state()
        slots: Dict[int, Slots] = {}
        iterations = None
        learning_rate = None
        new_extras: Dict[str, float] = {}
        for key, value in state.items():
            value = np.asarray(value)
            parts = key.split("/")
            if key == "iterations" and value.shape == () and value.dtype.kind in "iu" \
                    and int(value) >= 0:
                iterations = int(value)
            elif key == "learning_rate" and value.shape == () and value.dtype.kind == "f":
                learning_rate = float(value)
            elif parts[0] == "extra" and len(parts) == 2 and parts[1] in extras \
                    and value.shape == ():
                new_extras[parts[1]] = float(value)
            elif parts[0] == "slot" and len(parts) == 3 and parts[1].isdigit() \
                    and int(parts[1]) < len(arrays) and parts[2] in self._slot_names():
                param = arrays[int(parts[1])]
                if value.shape != param.shape or value.dtype != param.dtype:
                    raise ValueError(
                        f"{self._name} state {key!r} has shape {value.shape} and dtype "
                        f"{value.dtype}, but parameter {parts[1]} has {param.shape} "
                        f"{param.dtype}")
                slots.setdefault(int(parts[1]), {})[parts[2]] = value
            else:
                raise ValueError(f"{self._name} cannot restore the state entry {key!r} "
                                 f"(shape {value.shape}, dtype {value.dtype}) for "
                                 f"{len(arrays)} parameters")
        for index, named in slots.items():
            missing = set(self._slot_names()) - set(named)
            if missing:
                raise ValueError(f"{self._name} state for parameter {index} lacks the slots "
                                 f"{sorted(missing)}")
        if iterations is None:
            raise ValueError(f"{self._name} state has no valid 'iterations' entry")
        if learning_rate is not None:
            self.learning_rate = learning_rate
        self.iterations = iterations
        for key, value in new_extras.items():
            setattr(self, key, value)
        self._state = {}
        for index, named in slots.items():
            param = arrays[index]
            self._state[id(param)] = (param, {name: np.array(named[name], copy=True)
                                              for name in self._slot_names()})

    def get_slot_names(self) -> List[str]:
        """Names of the state arrays this optimizer keeps per parameter."""
        return list(self._slot_names())

    def get_config(self) -> Dict[str, Any]:
        """Hyperparameters, with Keras 2's keys and order."""
        config: Dict[str, Any] = {"name": self._name}
        for key in ("clipnorm", "global_clipnorm", "clipvalue"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        lr = self._learning_rate
        config["learning_rate"] = (schedules.serialize(lr) if isinstance(lr, LearningRateSchedule)
                                   else lr)
        config["decay"] = self.decay
        config.update(self._hyper_config())
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Optimizer":
        """Build an optimizer from :meth:`get_config`'s output."""
        config = dict(config)
        config.pop("name", None)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # -- subclass hooks ----------------------------------------------------
    def _slot_names(self) -> Tuple[str, ...]:
        raise NotImplementedError

    def _hyper_config(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _update_param(self, param: np.ndarray, grad: np.ndarray, slots: Slots,
                      lr: float) -> None:
        raise NotImplementedError

    def _begin_step(self) -> None:
        """Once per step, before the parameters: optimizer-wide state."""

    def _extra_state(self) -> Dict[str, float]:
        """Optimizer-wide values :meth:`get_state` saves, by attribute name."""
        return {}

    def _initial_slot(self, name: str, param: np.ndarray) -> np.ndarray:
        return np.zeros_like(param)

    # -- helpers -----------------------------------------------------------
    def _slots_for(self, param: np.ndarray) -> Slots:
        entry = self._state.get(id(param))
        if entry is None or entry[0] is not param:
            entry = (param, {name: self._initial_slot(name, param)
                             for name in self._slot_names()})
            self._state[id(param)] = entry
        return entry[1]

    @staticmethod
    def _check_param(param: Any, index: int) -> np.ndarray:
        if not isinstance(param, np.ndarray) and callable(getattr(param, "numpy", None)):
            # A weight object whose numpy() is the live array, e.g. fastconv's
            # Variable, so `zip(grads, model.trainable_weights)` works as in Keras.
            param = param.numpy()
        if not isinstance(param, np.ndarray):
            raise TypeError(f"parameter {index} must be a NumPy array updated in place (or "
                            f"have a numpy() method returning one), got {type(param).__name__}")
        if param.dtype.kind != "f":
            raise TypeError(f"parameter {index} must have a floating dtype (float32 or "
                            f"float64), got {param.dtype}")
        if not param.flags.writeable:
            raise TypeError(f"parameter {index} is read-only; optimizers update "
                            "parameters in place")
        return param

    @staticmethod
    def _check_grad(grad: Any, param: np.ndarray, index: int) -> np.ndarray:
        grad = np.asarray(grad)
        if grad.dtype.kind not in "fiu":
            raise TypeError(f"gradient {index} must be numeric, got dtype {grad.dtype}")
        if grad.shape != param.shape:
            raise ValueError(f"gradient {index} has shape {grad.shape} but its parameter "
                             f"has shape {param.shape}")
        return grad.astype(param.dtype, copy=False)

    def _clip(self, grads: List[np.ndarray]) -> List[np.ndarray]:
        if self.clipnorm is not None:
            # tf.clip_by_norm: g * c / max(||g||, c), per gradient.
            clipped = []
            for g in grads:
                norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
                clipped.append(g * g.dtype.type(self.clipnorm / norm)
                               if norm > self.clipnorm else g)
            grads = clipped
        if self.global_clipnorm is not None:
            # tf.clip_by_global_norm: one factor from the norm of all gradients.
            norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
            if norm > self.global_clipnorm:
                grads = [g * g.dtype.type(self.global_clipnorm / norm) for g in grads]
        if self.clipvalue is not None:
            grads = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads


def check_fraction(value: Any, name: str, closed: bool = False) -> float:
    """A decay rate in [0, 1) (or [0, 1] when ``closed``)."""
    value = check_nonnegative(value, name)
    if value > 1 or (value == 1 and not closed):
        upper = "1]" if closed else "1)"
        raise ValueError(f"`{name}` must be in [0, {upper}, got {value!r}")
    return value
