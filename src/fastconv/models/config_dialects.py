"""Keras' two config dialects of a layer, and the classes configs name.

A layer's config is the dict its ``get_config`` returns. fastconv's layers
speak **tf.keras 2.4's dialect** (``'dtype': 'float32'``, InputLayer's
``batch_input_shape``, LeakyReLU's ``alpha``, a Lambda's function as
``[code, defaults, closure]`` with ``function_type``); **Keras 3's** differs
for some layers and wraps every nested object (initializer, regularizer,
constraint, dtype policy) in ``{'module', 'class_name', 'config',
'registered_name'}``:

=====================  ==========================  =================================
layer                  tf.keras 2.4                Keras 3
=====================  ==========================  =================================
every layer            ``dtype: 'float32'``        a ``DTypePolicy`` object
InputLayer             ``batch_input_shape``       ``batch_shape`` (+ ``optional``)
LeakyReLU              ``alpha``                   ``negative_slope``
Embedding              ``input_length``            (none; ``quantization_config``)
Dense                                              ``quantization_config``
Conv2DTranspose,       ``groups`` (always 1)       (refused)
DepthwiseConv2D
SpatialDropout*D       ``trainable``,              (refused)
                       ``noise_shape``
BatchNormalization                                 ``synchronized``
GaussianNoise/Dropout                              ``seed``
Lambda                 ``[code, defaults, ...]``   ``{'class_name': '__lambda__', ...}``
=====================  ==========================  =================================

:func:`to_fastconv_config` turns either into fastconv's (2.4) form, checking
on the way that every key is one the layer understands (a clear
``ValueError`` naming the others) and resolving the user's classes and
functions from ``custom_objects``; :func:`to_keras3_config` writes Keras 3's.
Keys Keras 3 added with an inert value (``quantization_config: None``,
``optional: False``...) are dropped; a value fastconv cannot honour is an
error, never ignored. :func:`without_keras3_refused` leaves out of a 2.4
config the keys Keras 3 refuses, where they hold the value 2.4 restores
without them: what ``.h5`` files get, so Keras 3 reads them too.
"""
from __future__ import annotations

import inspect
import re
import warnings
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from .. import layers as layers_module
from ..layers.base import Layer

__all__ = ["KERAS2", "KERAS3", "layer_classes", "resolve_layer_class", "to_fastconv_config",
           "to_keras3_config", "keras3_object", "strip_keras3_object", "keras3_snake_case",
           "check_json_value", "json_default", "without_keras3_refused"]

KERAS2 = "keras2"
KERAS3 = "keras3"

# Keras 3 keys that fastconv drops when they hold this inert value.
_INERT_KERAS3_KEYS: Dict[str, Dict[str, Any]] = {
    "InputLayer": {"optional": False},
    "Dense": {"quantization_config": None, "lora_rank": None, "lora_alpha": None},
    "Embedding": {"quantization_config": None, "lora_rank": None, "lora_alpha": None},
    "BatchNormalization": {"synchronized": False},
}
# Arguments a constructor takes through **kwargs (popped before the base class).
_EXTRA_ARGUMENTS: Dict[str, Tuple[str, ...]] = {
    "Dense": ("input_dim",), "Conv2DTranspose": ("groups",),
    "InputLayer": ("sparse", "ragged", "input_tensor"),
    "Lambda": ("function_type", "module", "output_shape_type", "output_shape_module"),
}
# Keys of tf.keras 2.4's configs that Keras 3's layers refuse, and the value
# at which a file may leave them out (2.4 restores it when the key is missing).
_KERAS3_REFUSED: Dict[str, Dict[str, Any]] = {
    "DepthwiseConv2D": {"groups": 1}, "Conv2DTranspose": {"groups": 1},
    **{f"SpatialDropout{n}D": {"trainable": True, "noise_shape": None} for n in (1, 2, 3)},
}
_BASE_LAYER_ARGUMENTS = ("name", "trainable", "dtype", "input_shape", "batch_input_shape",
                         "batch_size", "weights", "dynamic", "activity_regularizer")
_OBJECT_MODULES = {"_initializer": "keras.initializers", "_regularizer": "keras.regularizers",
                   "_constraint": "keras.constraints"}


def layer_classes() -> Dict[str, type]:
    """Every fastconv layer class by the names Keras configs use (aliases too),
    and the model classes (``Functional``/``Model``, ``Sequential``)."""
    from .functional import Functional
    from .sequential import Sequential
    found: Dict[str, type] = {}
    for name in dir(layers_module):
        obj = getattr(layers_module, name)
        if isinstance(obj, type) and issubclass(obj, Layer) and obj is not Layer:
            found[name] = obj
    found.update(Functional=Functional, Model=Functional, Sequential=Sequential)
    return found


def _custom_lookup(custom_objects: Optional[Mapping[str, Any]], *names: Any) -> Any:
    if not custom_objects:
        return None
    for name in names:
        if isinstance(name, str):
            if name in custom_objects:
                return custom_objects[name]
            if ">" in name and name.split(">")[-1] in custom_objects:  # Keras 3 'package>Name'
                return custom_objects[name.split(">")[-1]]
    return None


def resolve_layer_class(entry: Mapping[str, Any], custom_objects: Optional[Mapping[str, Any]]
                        ) -> Tuple[type, bool]:
    """``(class, is_builtin)`` of a serialized layer ``{'class_name', 'config', ...}``.

    ``custom_objects`` take precedence. An unknown name is a ``ValueError``
    naming it (and the layer) and pointing to ``custom_objects``.
    """
    class_name = entry.get("class_name")
    config = entry.get("config")
    layer_name = config.get("name") if isinstance(config, dict) else None
    if not isinstance(class_name, str):
        raise ValueError(f"A layer config needs a string 'class_name', got {class_name!r}")
    custom = _custom_lookup(custom_objects, class_name, entry.get("registered_name"))
    if custom is not None:
        if not (isinstance(custom, type) and issubclass(custom, Layer)):
            raise ValueError(f"custom_objects[{class_name!r}] must be a subclass of "
                             f"fastconv.layers.Layer, got {custom!r}")
        return custom, False
    builtin = layer_classes().get(class_name)
    if builtin is not None:
        return builtin, True
    where = f" (layer {layer_name!r})" if layer_name else ""
    module = entry.get("module")
    origin = f" from module {module!r}" if isinstance(module, str) else ""
    raise ValueError(
        f"Unknown layer class {class_name!r}{origin}{where}: fastconv has no such layer. If it "
        f"is a layer of your own (a fastconv.layers.Layer subclass), pass it as "
        f"custom_objects={{{class_name!r}: {class_name}}}.")


def keras3_snake_case(name: str) -> str:
    """Keras 3's ``to_snake_case``, which names the groups of its weight files:
    ``Conv2DTranspose`` -> ``conv2d_transpose``, ``ReLU`` -> ``re_lu``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# ----------------------------------------------------------------------------
# Nested objects

def strip_keras3_object(value: Any) -> Any:
    """``value`` with every Keras 3 serialized object reduced to
    ``{'class_name', 'config'}`` (nested ones too); other values unchanged."""
    if isinstance(value, dict):
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"],
                    "config": strip_keras3_object(value["config"])}
        return {k: strip_keras3_object(v) for k, v in value.items()
                if k not in ("shared_object_id",)}
    if isinstance(value, list):
        return [strip_keras3_object(v) for v in value]
    return value


def keras3_object(value: Any, module: str) -> Any:
    """A 2.4 ``{'class_name', 'config'}`` as Keras 3 writes it, from ``module``
    (Keras 3 looks a name up in ``custom_objects`` first, so the user's
    classes may say the same module)."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        return {"module": module, "class_name": value["class_name"],
                "config": value["config"], "registered_name": None}
    return value


def _dtype_name(value: Any, layer: str) -> Any:
    if isinstance(value, dict):  # a DTypePolicy
        name = value.get("config", {}).get("name") if isinstance(value.get("config"), dict) \
            else None
        if not isinstance(name, str):
            raise ValueError(f"Layer {layer}: cannot read the dtype policy {value!r}")
        value = name
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"Layer {layer}: `dtype` must be a dtype name, got {value!r}")
    try:
        np.dtype(value)
    except TypeError:
        raise ValueError(f"Layer {layer}: fastconv computes in float32 or float64 and cannot "
                         f"take the dtype policy {value!r}") from None
    return value


def _resolve_custom_object(value: Any, custom_objects: Optional[Mapping[str, Any]],
                           function: bool) -> Any:
    """An instance (or function) of the user's for a nested object that names
    one of ``custom_objects``; ``value`` unchanged otherwise."""
    if not custom_objects:
        return value
    if isinstance(value, str):
        found = custom_objects.get(value)
        if found is None:
            return value
        if isinstance(found, type) and not function:
            return found()
        return found
    if isinstance(value, dict) and "class_name" in value:
        found = _custom_lookup(custom_objects, value["class_name"])
        if found is None:
            return value
        config = value.get("config", {})
        if hasattr(found, "from_config"):
            return found.from_config(config)
        if isinstance(found, type):
            return found(**(config if isinstance(config, dict) else {}))
        return found
    return value


# Keras 3 initializer arguments that fastconv's initializers do without when unset.
_INERT_INITIALIZER_KEYS = ("input_axes", "output_axes")


def _nested_object(key: str, value: Any, custom_objects: Optional[Mapping[str, Any]],
                   layer: str, class_name: str) -> Any:
    """An initializer, regularizer or constraint of a config, built now (the
    user's from ``custom_objects``), so a bad one is reported with its layer."""
    from .. import constraints, initializers, regularizers
    resolved = _resolve_custom_object(value, custom_objects, function=False)
    if resolved is not value or value is None or not isinstance(value, (dict, str)):
        return resolved
    if isinstance(value, dict) and isinstance(value.get("config"), dict):
        inner = {k: v for k, v in value["config"].items()
                 if not (k in _INERT_INITIALIZER_KEYS and v is None)}
        value = {"class_name": value["class_name"], "config": inner}
    module = (initializers if key.endswith("_initializer") else
              regularizers if key.endswith("_regularizer") else constraints)
    try:
        return module.get(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Layer {layer} ({class_name}): cannot rebuild {key} {value!r}: "
                         f"{exc}") from None


def _keras3_activation(value: Any) -> Any:
    """Keras 3 writes a function of the user's as ``{'class_name': 'function',
    'config': <name>, ...}``: its name."""
    if isinstance(value, dict) and value.get("class_name") == "function":
        return value.get("config")
    return value


# ----------------------------------------------------------------------------
# Reading: either dialect -> fastconv (tf.keras 2.4)

def _lambda_from_keras3(config: Dict[str, Any]) -> None:
    for key, type_key, module_key in (("function", "function_type", "module"),
                                      ("output_shape", "output_shape_type",
                                       "output_shape_module")):
        if type_key in config:  # already 2.4's form
            continue
        value = config.get(key)
        if isinstance(value, dict) and value.get("class_name") == "__lambda__":
            inner = value.get("config", {})
            config[key] = [inner.get("code"), inner.get("defaults"), inner.get("closure")]
            config[type_key] = "lambda"
            config.setdefault(module_key, inner.get("module"))
        elif isinstance(value, dict) and value.get("class_name") == "function":
            config[key] = value.get("config")
            config[type_key] = "function"
        elif isinstance(value, str) and key == "function":
            config[type_key] = "function"
        else:
            config[type_key] = "raw"
            config[key] = value
        config.setdefault(module_key, None)


def _accepted_arguments(cls: type) -> Optional[set]:
    """The keyword arguments ``cls(...)`` takes along its ``__init__`` chain:
    each ``__init__``'s own, following ``**kwargs`` up to :class:`Layer`'s."""
    accepted: set = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is Layer:
            accepted.update(_BASE_LAYER_ARGUMENTS)
            return accepted
        accepted.update(_EXTRA_ARGUMENTS.get(klass.__name__, ()))
        parameters = list(inspect.signature(init).parameters.values())[1:]
        accepted.update(p.name for p in parameters
                        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return accepted
    return None


def to_fastconv_config(cls: type, class_name: str, config: Any,
                       custom_objects: Optional[Mapping[str, Any]], builtin: bool
                       ) -> Dict[str, Any]:
    """fastconv's config for a layer of ``cls`` from a config in either dialect
    (``builtin``: ``cls`` is fastconv's, whose arguments are known).

    Raises ``ValueError`` for keys the layer does not take (naming them)
    and for values fastconv cannot honour.
    """
    if not isinstance(config, dict):
        raise ValueError(f"The config of a {class_name} layer must be a dict, got "
                         f"{type(config).__name__}")
    layer = repr(config.get("name", class_name))
    config = strip_keras3_object(dict(config))
    if "dtype" in config:
        config["dtype"] = _dtype_name(config["dtype"], layer)
        if config["dtype"] is None:
            del config["dtype"]
    if not builtin:
        return config
    kind = cls.__name__
    for key, inert in _INERT_KERAS3_KEYS.get(kind, {}).items():
        if key in config:
            if config[key] != inert and not (kind == "BatchNormalization"
                                            and key == "synchronized"):
                raise ValueError(f"Layer {layer} ({class_name}): fastconv cannot honour "
                                 f"{key}={config[key]!r} (only {inert!r})")
            del config[key]  # synchronized BN: one device computes the same statistics
    if kind == "InputLayer":
        if "batch_shape" in config:
            config["batch_input_shape"] = config.pop("batch_shape")
        if "shape" in config and "batch_input_shape" not in config:
            shape = config.pop("shape")
            config["batch_input_shape"] = [None] + list(shape or [])
        config.pop("trainable", None)
    elif kind == "LeakyReLU" and "negative_slope" in config:
        config["alpha"] = config.pop("negative_slope")
    elif kind in ("GaussianNoise", "GaussianDropout") and "seed" in config:
        seed = config.pop("seed")
        if seed is not None:
            warnings.warn(f"Layer {layer} ({class_name}): fastconv's noise layers draw from "
                          f"fastconv's generator and ignore seed={seed!r}", UserWarning,
                          stacklevel=4)
    elif kind == "Lambda":
        _lambda_from_keras3(config)
    for key in list(config):
        if key == "activation":
            config[key] = _resolve_custom_object(_keras3_activation(config[key]),
                                                 custom_objects, function=True)
        elif key.endswith(("_initializer", "_regularizer", "_constraint")):
            config[key] = _nested_object(key, config[key], custom_objects, layer, class_name)
    accepted = _accepted_arguments(cls)
    if accepted is not None:
        unexpected = sorted(set(config) - accepted)
        if unexpected:
            raise ValueError(f"Layer {layer} ({class_name}): its config has keys fastconv's "
                             f"{class_name} does not take: {unexpected}")
    return config


# ----------------------------------------------------------------------------
# Writing: fastconv (tf.keras 2.4) -> Keras 3

def _dtype_policy(name: Any) -> Any:
    if not isinstance(name, str):
        return name
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def _lambda_to_keras3(config: Dict[str, Any]) -> None:
    for key, type_key, module_key in (("function", "function_type", "module"),
                                      ("output_shape", "output_shape_type",
                                       "output_shape_module")):
        kind = config.pop(type_key, None)
        module = config.pop(module_key, None)
        value = config.get(key)
        if kind == "lambda":
            code, defaults, closure = value
            # Keras 3 reads code, defaults and closure; the module (for the
            # function's globals) rides along for fastconv.
            config[key] = {"class_name": "__lambda__",
                           "config": {"code": code, "defaults": defaults, "closure": closure,
                                      "module": module}}
        elif kind == "function":
            config[key] = {"module": "builtins", "class_name": "function", "config": value,
                           "registered_name": "function"}
        elif value is None and key == "output_shape":
            config.pop(key)
        elif isinstance(value, tuple):
            config[key] = list(value)


def to_keras3_config(layer: Layer, config: Dict[str, Any]) -> Dict[str, Any]:
    """Keras 3's config for ``layer`` from its fastconv (2.4) ``config``."""
    config = dict(config)
    kind = type(layer).__name__ if type(layer).__module__.startswith("fastconv.") else None
    if kind == "InputLayer":
        return {"batch_shape": config.get("batch_input_shape"), "dtype": config.get("dtype"),
                "sparse": False, "ragged": False, "name": config.get("name")}
    config.pop("batch_input_shape", None)
    config.pop("batch_size", None)
    if "dtype" in config:
        config["dtype"] = _dtype_policy(config["dtype"])
    if kind == "LeakyReLU" and "alpha" in config:
        config["negative_slope"] = config.pop("alpha")
    elif kind == "Embedding":
        config.pop("input_length", None)
    for key in _KERAS3_REFUSED.get(kind or "", {}):
        # No effect in fastconv either: these layers take only groups=1, and a
        # spatial dropout draws its own mask shape and has no weights to freeze.
        config.pop(key, None)
    if kind == "BatchNormalization" and isinstance(config.get("axis"), list):
        if len(config["axis"]) != 1:
            raise ValueError(f"Layer {layer.name}: Keras 3's BatchNormalization takes one "
                             f"axis, this one normalizes over {config['axis']}")
        config["axis"] = config["axis"][0]
    elif kind == "Lambda":
        _lambda_to_keras3(config)
    for key, value in list(config.items()):
        for suffix, module in _OBJECT_MODULES.items():
            if key.endswith(suffix) and isinstance(value, dict):
                config[key] = keras3_object(value, module)
    return config


def without_keras3_refused(entry: Any) -> Any:
    """A serialized model or layer (2.4 dialect) without the keys, at their
    inert values, that Keras 3 refuses (see ``_KERAS3_REFUSED``); nested
    models' layers too. What fastconv writes into ``.h5`` files, which then
    load in Keras 3 as well as in tf.keras 2.4."""
    if isinstance(entry, list):
        return [without_keras3_refused(item) for item in entry]
    if not isinstance(entry, dict):
        return entry
    entry = dict(entry)
    config = entry.get("config")
    if isinstance(config, dict):
        config = dict(config)
        for key, inert in _KERAS3_REFUSED.get(entry.get("class_name"), {}).items():
            if key in config and config[key] == inert:
                del config[key]
        if isinstance(config.get("layers"), list):
            config["layers"] = without_keras3_refused(config["layers"])
        entry["config"] = config
    return entry


def check_json_value(value: Any, where: str) -> None:
    """Refuse a value a JSON config cannot hold (a live object left in a config)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_json_value(item, where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            check_json_value(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return
    raise ValueError(f"{where} holds {type(value).__name__} {value!r}, which a Keras config "
                     "cannot store; give the layer a serializable argument (a name, or an "
                     "object with get_config)")


def json_default(value: Any) -> Any:
    """``json.dumps``' ``default`` for the NumPy scalars and tuples in configs."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
