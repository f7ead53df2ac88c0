"""Gradient-descent optimizers with the update rules of Keras 2 (tf.keras 2.4).

Each optimizer updates float NumPy arrays **in place**. Its per-parameter
state (momentum, moment estimates, ...) is created lazily, the first time a
parameter is seen, and is keyed by the identity of the parameter array, so
the same array objects must be passed at every step (a layer that replaces
its weight arrays instead of writing into them starts with fresh state).

The formulas are those of TensorFlow's training kernels that ``optimizer_v2``
calls (``ResourceApplyKerasMomentum``, ``ResourceApplyAdam``,
``ResourceApplyRMSProp``, ...), evaluated in the parameter's dtype in the same
order, so a float32 run follows a TF 2.4 run to within float32 rounding:

SGD (``g`` gradient, ``lr`` learning rate, ``m`` momentum)::

    m == 0:          w -= lr * g
    m > 0:           v = m * v - lr * g;  w += v
    nesterov:        v = m * v - lr * g;  w += m * v - lr * g

Adam (``t`` = 1-based step)::

    lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1)           # == beta_1 * m + (1 - beta_1) * g
    v += (g * g - v) * (1 - beta_2)
    w -= lr_t * m / (sqrt(v) + epsilon)   # epsilon outside the sqrt and *not*
                                          # bias-corrected (PyTorch differs)
    amsgrad: vhat = max(vhat, v), and vhat replaces v in the last line

RMSprop (two code paths in TF, with epsilon in different places)::

    momentum == 0:   ms = rho * ms + (1 - rho) * g * g
                     centered: mg = rho * mg + (1 - rho) * g;  d = ms - mg * mg
                     w -= lr * g / (sqrt(d) + epsilon)
    momentum > 0:    ms += (g * g - ms) * (1 - rho)
                     centered: mg += (g - mg) * (1 - rho);     d = ms - mg * mg
                     mom = momentum * mom + lr * g / sqrt(d + epsilon)
                     w -= mom

Adagrad (``acc`` starts at ``initial_accumulator_value``)::

    acc += g * g;  w -= lr * g / (sqrt(acc) + epsilon)

Adadelta (``ResourceApplyAdadelta``)::

    acc = rho * acc + (1 - rho) * g * g
    update = sqrt(acc_delta + epsilon) / sqrt(acc + epsilon) * g
    acc_delta = rho * acc_delta + (1 - rho) * update * update
    w -= lr * update

Adamax::

    m = beta_1 * m + (1 - beta_1) * g;  u = max(beta_2 * u, |g|)
    w -= lr / (1 - beta_1**t) * m / (u + epsilon)

Nadam (momentum schedule ``mu_t = beta_1 * (1 - 0.5 * 0.96**(schedule_decay * t))``,
``prod_t = mu_1 ... mu_t``)::

    m = beta_1 * m + (1 - beta_1) * g;  v = beta_2 * v + (1 - beta_2) * g * g
    m_bar = (1 - mu_t) * g / (1 - prod_t) + mu_{t+1} * m / (1 - prod_t * mu_{t+1})
    w -= lr * m_bar / (sqrt(v / (1 - beta_2**t)) + epsilon)

The slots start at zero (TF 2's RMSprop, unlike TF 1's, starts ``ms`` at 0)
except Adagrad's. The learning rate may be a float, a callable
``schedule(iterations) -> float`` or one of :mod:`fastconv.optimizers.schedules`;
``decay`` is Keras' legacy time-based decay, ``lr / (1 + decay * iterations)``.
Gradient clipping (``clipnorm``, ``global_clipnorm``, ``clipvalue``) is
applied in that order, as in Keras.

Where Keras 3 differs from tf.keras 2.4 (fastconv follows 2.4): Adagrad adds
epsilon inside the square root there; Nadam's momentum schedule uses
``0.96**t`` (``schedule_decay=1``) and accepts schedules.

Examples
--------
>>> import numpy as np
>>> from fastconv import optimizers
>>> w = np.ones(3, dtype=np.float32)
>>> opt = optimizers.get("sgd")
>>> opt.apply_gradients([(np.full(3, 2.0, np.float32), w)])
>>> w
array([0.98, 0.98, 0.98], dtype=float32)
"""
from __future__ import annotations

from typing import Any, Dict, Tuple, Union

import numpy as np

from .. import ops
from . import schedules
from .base import LearningRate, Optimizer, Slots, check_fraction, check_nonnegative
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam",
           "schedules", "get", "serialize", "deserialize"]


# Keras optimizers fastconv does not implement, so an unknown-name error can
# say "not provided yet" instead of "no such optimizer".
_KERAS_ONLY = ("ftrl",)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, as ``tf.keras.optimizers.SGD``.

    Parameters
    ----------
    learning_rate : float or callable, default 0.01
    momentum : float, default 0.0
        In ``[0, 1]``. With 0 the plain rule ``w -= lr * g`` is used and
        ``nesterov`` has no effect (as in Keras).
    nesterov : bool, default False
    name : str, default 'SGD'
    **kwargs
        ``decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``.
    """

    def __init__(self, learning_rate: LearningRate = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, name: str = "SGD", **kwargs: Any) -> None:
        super().__init__(name, learning_rate, **kwargs)
        momentum = check_nonnegative(momentum, "momentum")
        if momentum > 1:
            raise ValueError(f"`momentum` must be between [0, 1], got {momentum!r}")
        self.momentum = momentum
        self.nesterov = bool(nesterov)

    def _slot_names(self) -> Tuple[str, ...]:
        return ("momentum",) if self.momentum > 0 else ()

    def _hyper_config(self) -> Dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _update_param(self, param: np.ndarray, grad: np.ndarray, slots: Slots,
                      lr: float) -> None:
        if self.momentum == 0:
            ops.optimizer_update("sgd", param, grad, [], learning_rate=lr)
            return
        ops.optimizer_update("nesterov" if self.nesterov else "momentum", param, grad,
                             [slots["momentum"]], learning_rate=lr, momentum=self.momentum)


class Adam(Optimizer):
    """Adam, with TensorFlow's epsilon placement, as ``tf.keras.optimizers.Adam``.

    Parameters
    ----------
    learning_rate : float or callable, default 0.001
    beta_1 : float, default 0.9
    beta_2 : float, default 0.999
    epsilon : float, default 1e-7
        Added to ``sqrt(v)`` *after* the bias correction has been folded into
        the step size (the "epsilon hat" of the Adam paper), so for the same
        value it acts ``1/sqrt(1 - beta_2**t)`` times more strongly than
        PyTorch's ``eps`` early in training.
    amsgrad : bool, default False
    name : str, default 'Adam'
    **kwargs
        ``decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 name: str = "Adam", **kwargs: Any) -> None:
        super().__init__(name, learning_rate, **kwargs)
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= check_nonnegative(value, key) < 1:
                raise ValueError(f"`{key}` must be in [0, 1), got {value!r}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = check_nonnegative(epsilon, "epsilon")
        self.amsgrad = bool(amsgrad)

    def _slot_names(self) -> Tuple[str, ...]:
        return ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def _hyper_config(self) -> Dict[str, Any]:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}

    def _update_param(self, param: np.ndarray, grad: np.ndarray, slots: Slots,
                      lr: float) -> None:
        t = param.dtype.type
        one = t(1)
        beta_1, beta_2 = t(self.beta_1), t(self.beta_2)
        step = t(self.iterations + 1)
        # Same operations, in the parameter's dtype, as the TF kernel
        # (ops.adam_update: one pass in C for float32).
        alpha = t(lr) * np.sqrt(one - beta_2 ** step) / (one - beta_1 ** step)
        ops.adam_update(param, grad, slots["m"], slots["v"], alpha=float(alpha),
                        beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                        vhat=slots["vhat"] if self.amsgrad else None)


class RMSprop(Optimizer):
    """RMSprop, as ``tf.keras.optimizers.RMSprop`` (both of TF's code paths).

    Parameters
    ----------
    learning_rate : float or callable, default 0.001
    rho : float, default 0.9
        Discount factor of the running mean of squared gradients.
    momentum : float, default 0.0
        With momentum > 0 TF runs a different kernel in which epsilon is
        added *inside* the square root (``sqrt(ms + epsilon)``); without
        momentum it is added outside (``sqrt(ms) + epsilon``). Both are kept.
    epsilon : float, default 1e-7
    centered : bool, default False
        Normalise by the estimated variance ``ms - mg**2`` instead of ``ms``.
    name : str, default 'RMSprop'
    **kwargs
        ``decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.9,
                 momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False,
                 name: str = "RMSprop", **kwargs: Any) -> None:
        super().__init__(name, learning_rate, **kwargs)
        self.rho = check_nonnegative(rho, "rho")
        if self.rho > 1:
            raise ValueError(f"`rho` must be in [0, 1], got {rho!r}")
        self.momentum = check_nonnegative(momentum, "momentum")
        self.epsilon = check_nonnegative(epsilon, "epsilon")
        self.centered = bool(centered)

    def _slot_names(self) -> Tuple[str, ...]:
        names: Tuple[str, ...] = ("rms",)
        if self.momentum > 0:
            names += ("momentum",)
        if self.centered:
            names += ("mg",)
        return names

    def _hyper_config(self) -> Dict[str, Any]:
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}

    def _update_param(self, param: np.ndarray, grad: np.ndarray, slots: Slots,
                      lr: float) -> None:
        # Without momentum, the Python path of Keras' RMSprop; with it,
        # ResourceApplyRMSProp / ResourceApplyCenteredRMSProp (epsilon inside
        # the square root).
        if self.momentum == 0:
            rule, state = "rmsprop", [slots["rms"]]
            extra: Dict[str, float] = {}
        else:
            rule, state = "rmsprop_momentum", [slots["rms"], slots["momentum"]]
            extra = {"momentum": self.momentum}
        if self.centered:
            rule, state = rule + "_centered", state + [slots["mg"]]
        ops.optimizer_update(rule, param, grad, state, learning_rate=lr, decay_1=self.rho,
                             epsilon=self.epsilon, **extra)


class Adagrad(Optimizer):
    """Adagrad, as ``tf.keras.optimizers.Adagrad`` (``ResourceApplyAdagradV2``).

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    initial_accumulator_value : float, default 0.1
        Starting value of the per-parameter sum of squared gradients (> 0).
    epsilon : float, default 1e-7
        Added to ``sqrt(accumulator)``; Keras 3 adds it inside the square
        root instead (the two agree for ``epsilon=0``).
    name : str, default 'Adagrad'
    **kwargs
        ``decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``.
    """

    def __init__(self, learning_rate: LearningRate = 0.001,
                 initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 name: str = "Adagrad", **kwargs: Any) -> None:
        super().__init__(name, learning_rate, **kwargs)
        value = check_nonnegative(initial_accumulator_value, "initial_accumulator_value")
        if value == 0:
            raise ValueError("`initial_accumulator_value` must be > 0 (as in Keras), got 0")
        self.initial_accumulator_value = value
        self.epsilon = check_nonnegative(epsilon, "epsilon")

    def _slot_names(self) -> Tuple[str, ...]:
        return ("accumulator",)

    def _initial_slot(self, name: str, param: np.ndarray) -> np.ndarray:
        return np.full_like(param, self.initial_accumulator_value)

    def _hyper_config(self) -> Dict[str, Any]:
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}

    def _update_param(self, param: np.ndarray, grad: np.ndarray, slots: Slots,
                      lr: float) -> None:
        ops.optimizer_update("adagrad", param, grad, [slots["accumulator"]], learning_rate=lr,
                             epsilon=self.epsilon)


class Adadelta(Optimizer):
    """Adadelta, as ``tf.keras.optimizers.Adadelta`` (``ResourceApplyAdadelta``).

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
        tf.keras 2.4's default (the Adadelta paper uses 1.0).
    rho : float, default 0.95
        Decay rate of both running averages.
    epsilon : float, default 1e-7
    name : str, default 'Adadelta'
    **kwargs
        ``decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.95,
                 epsilon: float = 1e-7, name: str = "Adadelta", **kwargs: Any) -> None:
        super().__init__(name, learning_rate, **kwargs)
        self.rho = check_fraction(rho, "rho", closed=True)
        self.epsilon = check_nonnegative(epsilon, "epsilon")

    def _slot_names(self) -> Tuple[str, ...]:
        return ("accum_grad", "accum_var")

    def _hyper_config(self) -> Dict[str, Any]:
        return {"rho": self.rho, "epsilon": self.epsilon}

    def _update_param(self, param: np.ndarray, grad: np.ndarray, slots: Slots,
                      lr: float) -> None:
        ops.optimizer_update("adadelta", param, grad, [slots["accum_grad"], slots["accum_var"]],
                             learning_rate=lr, decay_1=self.rho, epsilon=self.epsilon)


class Adamax(Optimizer):
    """Adamax (Adam with the infinity norm), as ``tf.keras.optimizers.Adamax``.

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    beta_1 : float, default 0.9
    beta_2 : float, default 0.999
        Decay of the running maximum of ``|g|``.
    epsilon : float, default 1e-7
    name : str, default 'Adamax'
    **kwargs
        ``decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, name: str = "Adamax",
                 **kwargs: Any) -> None:
        super().__init__(name, learning_rate, **kwargs)
        self.beta_1 = check_fraction(beta_1, "beta_1")
        self.beta_2 = check_fraction(beta_2, "beta_2")
        self.epsilon = check_nonnegative(epsilon, "epsilon")

    def _slot_names(self) -> Tuple[str, ...]:
        return ("m", "v")

    def _hyper_config(self) -> Dict[str, Any]:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _update_param(self, param: np.ndarray, grad: np.ndarray, slots: Slots,
                      lr: float) -> None:
        step_size = lr / (1.0 - self.beta_1 ** (self.iterations + 1))
        ops.optimizer_update("adamax", param, grad, [slots["m"], slots["v"]],
                             learning_rate=step_size, decay_1=self.beta_1,
                             decay_2=self.beta_2, epsilon=self.epsilon)


class Nadam(Optimizer):
    """Nadam (Adam with Nesterov momentum), as ``tf.keras.optimizers.Nadam``.

    Parameters
    ----------
    learning_rate : float, default 0.001
        A float or a plain callable; tf.keras 2.4 refuses its
        ``LearningRateSchedule`` objects here, and so does fastconv (Keras 3
        accepts them).
    beta_1 : float, default 0.9
    beta_2 : float, default 0.999
    epsilon : float, default 1e-7
    schedule_decay : float, default 0.004
        The momentum schedule ``mu_t = beta_1 * (1 - 0.5 * 0.96**(schedule_decay
        * t))`` of tf.keras 2.4 (and Keras 1's Nadam). Its config calls it
        ``decay``, as 2.4's does; the learning rate itself is not decayed.
        Keras 3 uses ``0.96**t``, i.e. ``schedule_decay=1``.
    name : str, default 'Nadam'
    **kwargs
        ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``, and
        ``decay`` as another name of ``schedule_decay``.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, schedule_decay: float = 0.004,
                 name: str = "Nadam", **kwargs: Any) -> None:
        if "decay" in kwargs:   # the key of 2.4's config
            schedule_decay = kwargs.pop("decay")
        if isinstance(kwargs.get("lr", learning_rate), LearningRateSchedule):
            raise ValueError("The Nadam optimizer does not support learning-rate schedules "
                             "(tf.keras 2.4 refuses them too); pass a float or a callable")
        super().__init__(name, learning_rate, **kwargs)
        self.beta_1 = check_fraction(beta_1, "beta_1")
        self.beta_2 = check_fraction(beta_2, "beta_2")
        self.epsilon = check_nonnegative(epsilon, "epsilon")
        self.schedule_decay = check_nonnegative(schedule_decay, "schedule_decay")
        # mu_1 * ... * mu_t of the steps taken (TF's "momentum_cache")
        self.momentum_cache = 1.0
        self._mu = self._mu_next = self._prod = self._prod_next = 0.0

    def _mu_at(self, step: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** (self.schedule_decay * step))

    def _begin_step(self) -> None:
        step = self.iterations + 1
        self._mu, self._mu_next = self._mu_at(step), self._mu_at(step + 1)
        self.momentum_cache *= self._mu
        self._prod, self._prod_next = self.momentum_cache, self.momentum_cache * self._mu_next

    def _slot_names(self) -> Tuple[str, ...]:
        return ("m", "v")

    def _extra_state(self) -> Dict[str, float]:
        return {"momentum_cache": self.momentum_cache}

    def _hyper_config(self) -> Dict[str, Any]:
        return {"decay": self.schedule_decay, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}

    def _update_param(self, param: np.ndarray, grad: np.ndarray, slots: Slots,
                      lr: float) -> None:
        t = param.dtype.type   # the coefficients' quotients, in the dtype as TF's
        ops.optimizer_update(
            "nadam", param, grad, [slots["m"], slots["v"]], learning_rate=lr,
            decay_1=self.beta_1, decay_2=self.beta_2, epsilon=self.epsilon,
            grad_coefficient=t(1.0 - self._mu) / t(1.0 - self._prod),
            m_coefficient=t(self._mu_next) / t(1.0 - self._prod_next),
            v_correction=1.0 - self.beta_2 ** (self.iterations + 1))


_OPTIMIZERS: Dict[str, type] = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop,
                                "adagrad": Adagrad, "adadelta": Adadelta, "adamax": Adamax,
                                "nadam": Nadam}


def serialize(optimizer: Optimizer) -> Dict[str, Any]:
    """``{'class_name': ..., 'config': ...}``, the form :func:`get` accepts."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: Dict[str, Any]) -> Optimizer:
    """Inverse of :func:`serialize`; the class name is matched case-insensitively."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("an optimizer config must be a dict with 'class_name' and "
                         f"'config' keys, got {config!r}")
    cls = _lookup(config["class_name"])
    return cls.from_config(config.get("config", {}))


def _lookup(name: str) -> type:
    key = name.lower()
    if key in _OPTIMIZERS:
        return _OPTIMIZERS[key]
    known = ", ".join(repr(k) for k in _OPTIMIZERS)
    if key in _KERAS_ONLY:
        raise ValueError(f"Unknown optimizer: {name!r}. It is a Keras optimizer that "
                         f"fastconv does not provide yet; available: {known} "
                         "(case-insensitive)")
    raise ValueError(f"Unknown optimizer: {name!r}. Available: {known} (case-insensitive)")


def get(identifier: Union[str, Optimizer, Dict[str, Any]]) -> Optimizer:
    """Resolve ``compile(optimizer=...)``'s argument to an :class:`Optimizer`.

    Parameters
    ----------
    identifier : str, Optimizer or dict
        An optimizer instance (returned unchanged), a name (``'sgd'``,
        ``'adam'``, ``'rmsprop'``; case-insensitive, Keras' default
        hyperparameters), or a :func:`serialize` dict.

    Raises
    ------
    ValueError
        For an unknown name or an identifier of another type.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}; pass a "
                     "name such as 'adam' or an Optimizer instance")
