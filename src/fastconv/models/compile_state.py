"""A compiled model's training setup in Keras' files: the loss, the metrics,
the optimizer's config and its state.

* tf.keras 2.4 (``.h5``): the ``training_config`` attribute holds ``loss``,
  ``metrics``, ``weighted_metrics``, ``loss_weights`` and
  ``optimizer_config``; the ``optimizer_weights`` group holds
  ``optimizer.weights``: ``<name>/iter:0`` (int64), Nadam's
  ``<name>/momentum_cache:0``, then the slots **slot-major** in the order TF
  creates them (``Adam/<var>/m:0`` for every variable, then every ``v``...).
* Keras 3 (``.keras``): ``compile_config`` in ``config.json`` and
  ``optimizer/vars/<i>`` in the weights file, in Keras 3's variable order:
  the iteration count, the learning rate (unless it is a schedule), then the
  slots **variable-major within each of its groups** (Adam: ``m, v`` of each
  variable, then each ``vhat``; RMSprop: each ``rms``, each ``momentum``,
  each ``mg``), Nadam's ``u_product`` last.

fastconv's optimizers keep tf.keras 2.4's update rules whichever file they
come from; the slots mean the same in both Kerases (Keras 3's Nadam is 2.4's
with ``schedule_decay=1``, so a Keras 3 Nadam loads with that). A
hyperparameter Keras 3's optimizers lack (the learning-rate ``decay``,
Nadam's ``schedule_decay``) travels in ``metadata.json`` under
``"fastconv"`` so fastconv resumes exactly; Keras 3 does without it.

State that cannot be mapped exactly (another count, shape or slot name)
loads nothing: the model gets a fresh optimizer and a warning, as in Keras.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..optimizers import schedules
from ..optimizers.base import Optimizer
from .config_dialects import KERAS2, KERAS3, keras3_object, strip_keras3_object

__all__ = ["training_config", "compile_from_config", "optimizer_weights",
           "restore_optimizer", "StateEntry"]

# Keras 3 optimizer keys and the values that mean "as fastconv does".
_KERAS3_OPTIMIZER_DEFAULTS: Dict[str, Any] = {
    "weight_decay": None, "use_ema": False, "ema_momentum": 0.99,
    "ema_overwrite_frequency": None, "loss_scale_factor": None,
    "gradient_accumulation_steps": None}
_INERT_OPTIMIZER_VALUES: Dict[str, Tuple[Any, ...]] = {
    "weight_decay": (None, 0, 0.0), "use_ema": (False,), "loss_scale_factor": (None,),
    "gradient_accumulation_steps": (None, 1), "jit_compile": (True, False, None),
    "is_legacy_optimizer": (False,)}
# Keras 3 creates these slots together, variable by variable.
_KERAS3_GROUPS = {"Adam": [("m", "v"), ("vhat",)], "Adadelta": [("accum_grad", "accum_var")],
                  "Adamax": [("m", "v")], "Nadam": [("m", "v")]}
_FRESH = ("As a result, your model is starting with a freshly initialized optimizer.")


# ----------------------------------------------------------------------------
# Configs

def _optimizer_config(optimizer: Optimizer, dialect: str) -> Tuple[Dict[str, Any],
                                                                   Dict[str, Any]]:
    """``(serialized optimizer, fastconv-only extras)``."""
    lr = optimizer.learning_rate
    if callable(lr) and not isinstance(lr, schedules.LearningRateSchedule):
        raise ValueError(f"The learning rate of optimizer {optimizer.name} is a Python "
                         "function, which a Keras file cannot hold: use a "
                         "fastconv.optimizers.schedules object, or save with "
                         "include_optimizer=False")
    config = optimizer.get_config()
    class_name = type(optimizer).__name__
    if dialect == KERAS2:
        return {"class_name": class_name, "config": config}, {}
    extras: Dict[str, Any] = {}
    decay = config.pop("decay", 0.0)
    if isinstance(optimizer, optimizers_module.Nadam):
        if optimizer.schedule_decay != 1.0:
            extras["schedule_decay"] = optimizer.schedule_decay
        decay = optimizer.decay
    if decay:
        extras["decay"] = decay
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = keras3_object(config["learning_rate"],
                                                "keras.optimizers.schedules")
    keras3 = {"name": config.pop("name"), "learning_rate": config.pop("learning_rate")}
    keras3.update({key: config.pop(key, None) for key in
                   ("clipnorm", "global_clipnorm", "clipvalue")})
    keras3.update(_KERAS3_OPTIMIZER_DEFAULTS)
    keras3.update(config)
    return keras3_object({"class_name": class_name, "config": keras3},
                         "keras.optimizers"), extras


def _user_metrics(metrics: Sequence[Any], others: Sequence[Any]) -> Optional[List[Any]]:
    if not metrics:
        return None
    taken = {m.name for m in others}
    entries = []
    for metric in metrics:
        name = metric.name
        if name.startswith("weighted_") and name[len("weighted_"):] in taken:
            metric_name = name[len("weighted_"):]  # compile() renamed it
            serialized = metrics_module.serialize(metric)
            entries.append(metric_name if serialized == name else serialized)
        else:
            entries.append(metrics_module.serialize(metric))
    return entries


def _single(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def training_config(model: Any, dialect: str) -> Tuple[Optional[Dict[str, Any]],
                                                        Dict[str, Any]]:
    """``(training config, extras)`` of a compiled model (``(None, {})`` if
    it is not compiled): tf.keras 2.4's ``training_config`` or Keras 3's
    ``compile_config``."""
    compiled = getattr(model, "_compiled", None)
    if compiled is None or model.optimizer is None:
        return None, {}
    loss = losses_module.serialize(_single(model.loss))
    if dialect == KERAS3 and isinstance(loss, dict):
        loss = keras3_object(loss, "keras.losses")
    metrics = _user_metrics(compiled.metrics, [])
    weighted = _user_metrics(compiled.weighted_metrics, compiled.metrics)
    if dialect == KERAS3:
        metrics = None if metrics is None else [keras3_object(m, "keras.metrics")
                                                for m in metrics]
        weighted = None if weighted is None else [keras3_object(m, "keras.metrics")
                                                  for m in weighted]
    loss_weights = None if compiled.loss_weight == 1.0 else compiled.loss_weight
    optimizer, extras = _optimizer_config(model.optimizer, dialect)
    config: Dict[str, Any] = {"loss": loss, "metrics": metrics, "weighted_metrics": weighted,
                              "loss_weights": loss_weights}
    if dialect == KERAS2:
        config["optimizer_config"] = optimizer
    else:
        config = {"optimizer": optimizer, **config, "run_eagerly": False,
                  "steps_per_execution": 1, "jit_compile": False}
    return config, extras


def _optimizer_class(name: Any, custom_objects: Optional[Mapping[str, Any]]) -> type:
    custom = (custom_objects or {}).get(name)
    if custom is not None:
        if not (isinstance(custom, type) and issubclass(custom, Optimizer)):
            raise ValueError(f"custom_objects[{name!r}] must be a fastconv Optimizer subclass")
        return custom
    try:
        return optimizers_module._lookup(str(name))
    except ValueError as exc:
        raise ValueError(f"The file's optimizer {name!r} is not one fastconv has ({exc}); load "
                         "the model with compile=False and compile it with one of fastconv's"
                         ) from None


def _optimizer_from_config(entry: Any, dialect: str, custom_objects: Optional[Mapping[str, Any]],
                           extras: Mapping[str, Any]) -> Optimizer:
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ValueError(f"Cannot read the optimizer config {entry!r}")
    cls = _optimizer_class(entry["class_name"], custom_objects)
    config = strip_keras3_object(dict(entry.get("config") or {}))
    keras3 = dialect == KERAS3 or any(key in config for key in _KERAS3_OPTIMIZER_DEFAULTS)
    for key in list(config):
        if key in _INERT_OPTIMIZER_VALUES or key in _KERAS3_OPTIMIZER_DEFAULTS:
            value = config.pop(key)
            if key in _INERT_OPTIMIZER_VALUES and value not in _INERT_OPTIMIZER_VALUES[key]:
                raise ValueError(f"Optimizer {entry['class_name']}: fastconv cannot honour "
                                 f"{key}={value!r}; load with compile=False")
        elif key in ("clipnorm", "global_clipnorm", "clipvalue") and config[key] is None:
            del config[key]
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = schedules.deserialize(config["learning_rate"])
    if keras3 and issubclass(cls, optimizers_module.Nadam):
        config["schedule_decay"] = extras.get("schedule_decay", 1.0)
        config.pop("decay", None)
    if keras3 and extras.get("decay"):
        config["decay"] = extras["decay"]
    try:
        return cls.from_config(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Cannot rebuild optimizer {entry['class_name']} from its config "
                         f"{config}: {exc}") from None


def _plain(value: Any) -> Any:
    """A serialized loss or metric without Keras 3's wrapping; a function
    Keras 3 wrote as ``{'class_name': 'function', 'config': name}`` by its name."""
    value = strip_keras3_object(value)
    if isinstance(value, dict) and value.get("class_name") == "function":
        return value.get("config")
    return value


def _metrics_list(value: Any, custom_objects: Optional[Mapping[str, Any]]) -> Optional[List[Any]]:
    if value is None:
        return None
    if isinstance(value, dict):
        value = _single(value)
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"Cannot read the compiled metrics {value!r}")
    if len(value) == 1 and isinstance(value[0], list):  # tf.keras 2.4: one list per output
        value = value[0]
    return [metrics_module.deserialize(_plain(m), dict(custom_objects or {})) for m in value]


def compile_from_config(model: Any, config: Any, dialect: str,
                        custom_objects: Optional[Mapping[str, Any]],
                        extras: Mapping[str, Any]) -> None:
    """``model.compile(...)`` with what a file's training config says."""
    if not isinstance(config, dict):
        raise ValueError(f"Cannot read the training config {config!r}")
    optimizer_entry = config.get("optimizer_config", config.get("optimizer"))
    known = {"loss", "metrics", "weighted_metrics", "loss_weights", "optimizer_config",
             "optimizer", "run_eagerly", "steps_per_execution", "jit_compile",
             "sample_weight_mode", "auto_scale_loss"}
    unexpected = sorted(set(config) - known)
    if unexpected:
        raise ValueError(f"The training config has keys fastconv does not know: {unexpected}")
    if config.get("sample_weight_mode") not in (None,):
        raise ValueError("fastconv cannot honour sample_weight_mode="
                         f"{config['sample_weight_mode']!r}")
    optimizer = _optimizer_from_config(optimizer_entry, dialect, custom_objects, extras)
    custom = dict(custom_objects or {})
    loss = losses_module.deserialize(_plain(_single(config.get("loss"))), custom)
    loss_weights = config.get("loss_weights")
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=_metrics_list(config.get("metrics"), custom),
                  weighted_metrics=_metrics_list(config.get("weighted_metrics"), custom),
                  loss_weights=_single(loss_weights))


# ----------------------------------------------------------------------------
# Optimizer state

class StateEntry:
    """One array of a file's optimizer state: its name, shape and dtype, and
    ``read()`` for its values (called only once everything fits)."""

    def __init__(self, name: str, shape: Tuple[int, ...], dtype: np.dtype,
                 read: Callable[[], np.ndarray]) -> None:
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.read = read


def _groups(optimizer: Optimizer) -> List[Tuple[str, ...]]:
    names = optimizer.get_slot_names()
    table = _KERAS3_GROUPS.get(type(optimizer).__name__, [(name,) for name in names])
    groups = [tuple(s for s in group if s in names) for group in table]
    return [group for group in groups if group]


def _layout(optimizer: Optimizer, params: Sequence[Any], dialect: str
            ) -> Tuple[List[Tuple[str, ...]], int]:
    """The file's entries in order, as ``('iterations',)``, ``('learning_rate',)``,
    ``('extra', name)`` or ``('slot', index, slot)``; and how many come first
    (what an optimizer that never stepped has)."""
    nadam = isinstance(optimizer, optimizers_module.Nadam)
    if dialect == KERAS2:
        head: List[Tuple[Any, ...]] = [("iterations",)]
        if nadam:
            head.append(("extra", "momentum_cache"))
        slots = [("slot", i, s) for s in optimizer.get_slot_names() for i in range(len(params))]
        return head + slots, 1
    head = [("iterations",)]
    if not callable(optimizer.learning_rate):
        head.append(("learning_rate",))
    slots = [("slot", i, s) for group in _groups(optimizer) for i in range(len(params))
             for s in group]
    tail = [("extra", "momentum_cache")] if nadam else []
    return head + slots + tail, len(head)


def _entry_name(optimizer: Optimizer, params: Sequence[Any], key: Tuple[Any, ...]) -> str:
    prefix = optimizer.name
    if key[0] == "iterations":
        return f"{prefix}/iter:0"
    if key[0] == "extra":
        return f"{prefix}/{key[1]}:0"
    variable_name = getattr(params[key[1]], "name", f"param_{key[1]}")
    return f"{prefix}/{variable_name.rsplit(':', 1)[0]}/{key[2]}:0"


def optimizer_weights(model: Any, dialect: str) -> Optional[List[Tuple[str, np.ndarray]]]:
    """``[(name, array), ...]`` of the compiled optimizer's state in the
    dialect's order (``None``: nothing to save, an optimizer that never stepped
    in tf.keras 2.4's layout)."""
    optimizer = model.optimizer
    params = model.trainable_weights
    state = optimizer.get_state(params)
    stepped = int(state["iterations"]) > 0 or any(k.startswith("slot/") for k in state)
    layout, head = _layout(optimizer, params, dialect)
    if not stepped:
        if dialect == KERAS2:
            return None
        layout = layout[:head]
    entries = []
    for key in layout:
        if key[0] == "iterations":
            value = np.array(int(state["iterations"]), np.int64)
        elif key[0] == "learning_rate":
            value = np.array(float(state.get("learning_rate", optimizer.learning_rate)),
                             np.float64)
        elif key[0] == "extra":
            value = np.array(float(state.get(f"extra/{key[1]}", 1.0)), np.float64)
        else:
            value = state.get(f"slot/{key[1]}/{key[2]}")
            if value is None:  # not updated yet: what its first update starts from
                value = optimizer._initial_slot(key[2], params[key[1]].numpy())
        name = _entry_name(optimizer, params, key) if dialect == KERAS2 else str(len(entries))
        entries.append((name, np.asarray(value)))
    return entries


def _mismatch(key: Tuple[Any, ...], entry: StateEntry, params: Sequence[Any], dialect: str
              ) -> Optional[str]:
    if key[0] == "iterations":
        if entry.shape != () or entry.dtype.kind not in "iu":
            return f"{entry.name} should be an integer scalar (the iteration count)"
        return None
    if key[0] in ("learning_rate", "extra"):
        if entry.shape != () or entry.dtype.kind != "f":
            return f"{entry.name} should be a float scalar ({key[-1]})"
        return None
    param = params[key[1]].numpy()
    if entry.shape != param.shape or entry.dtype.kind != "f":
        return (f"{entry.name} has shape {entry.shape} and dtype {entry.dtype}, the {key[2]!r} "
                f"slot of {getattr(params[key[1]], 'name', key[1])} needs {param.shape} "
                "floats")
    if dialect == KERAS2 and entry.name.rsplit(":", 1)[0].rsplit("/", 1)[-1] != key[2]:
        return f"{entry.name} is not a {key[2]!r} slot (tf.keras 2.4 saves them slot by slot)"
    return None


def restore_optimizer(model: Any, entries: Sequence[StateEntry], dialect: str,
                      config_learning_rate: Any = None) -> bool:
    """Set the compiled optimizer's state from a file's entries; on anything
    that does not map exactly, warn and leave the optimizer fresh. Returns
    whether the state was restored."""
    optimizer = model.optimizer
    params = model.trainable_weights
    layout, head = _layout(optimizer, params, dialect)
    if len(entries) == head and len(entries) < len(layout):
        layout = layout[:head]   # an optimizer that never stepped
    if len(entries) != len(layout):
        return _fresh(f"the file has {len(entries)} optimizer arrays, {optimizer.name} with "
                      f"{len(params)} trainable weights has {len(layout)}")
    for key, entry in zip(layout, entries):
        problem = _mismatch(key, entry, params, dialect)
        if problem:
            return _fresh(problem)
    try:
        state: Dict[str, Any] = {}
        for key, entry in zip(layout, entries):
            value = entry.read()
            if key[0] == "iterations":
                if int(value) < 0:
                    return _fresh(f"{entry.name} is negative")
                state["iterations"] = np.array(int(value), np.int64)
            elif key[0] == "learning_rate":
                same = isinstance(config_learning_rate, float) and np.float32(
                    config_learning_rate) == np.float32(value)
                if not same:  # changed in training (ReduceLROnPlateau); the config may lag
                    state["learning_rate"] = np.array(float(value), np.float64)
            elif key[0] == "extra":
                state[f"extra/{key[1]}"] = np.array(float(value), np.float64)
            else:
                param = params[key[1]].numpy()
                state[f"slot/{key[1]}/{key[2]}"] = np.asarray(value).astype(param.dtype)
        if len(layout) == head and state.get("iterations", 0) and optimizer.get_slot_names():
            return _fresh("the file has an iteration count but no slots")
        optimizer.set_state(params, state)
    except (ValueError, TypeError, OSError) as exc:
        return _fresh(str(exc))
    return True


def _fresh(why: str) -> bool:
    warnings.warn(f"Error in loading the saved optimizer state: {why}. {_FRESH}",
                  UserWarning, stacklevel=4)
    return False
