"""Keras' serialized form of a configurable object: ``{'class_name': ..., 'config': {...}}``.

tf.keras 2.4 builds every module's ``serialize``/``deserialize`` on
``serialize_keras_object``/``deserialize_keras_object``
(``utils/generic_utils.py``); these two functions are that rule, with its
messages, for the fastconv modules that follow it
(:mod:`fastconv.regularizers`, :mod:`fastconv.constraints`).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

__all__ = ["serialize", "deserialize"]


def serialize(instance: Any) -> Union[None, Dict[str, Any], str]:
    """``{'class_name', 'config'}`` for an object with ``get_config``; a
    function's (or class's) name otherwise; ``None`` for ``None`` (a layer
    argument left unset)."""
    if instance is None:
        return None
    if hasattr(instance, "get_config") and not isinstance(instance, type):
        return {"class_name": type(instance).__name__, "config": instance.get_config()}
    if hasattr(instance, "__name__"):
        return instance.__name__
    raise ValueError(f"Cannot serialize {instance!r}")


def deserialize(config: Any, known: Mapping[str, Any],
                custom_objects: Optional[Mapping[str, Any]], what: str) -> Any:
    """The object ``config`` describes.

    Parameters
    ----------
    config : dict or str
        A :func:`serialize` dict (its class is built with ``from_config``),
        or a name: a class is instantiated without arguments, a function
        returned as it is.
    known : mapping
        The names a module offers, e.g. ``{'Regularizer': Regularizer}``.
    custom_objects : mapping, optional
        The user's names; they take precedence over ``known``.
    what : str
        ``'regularizer'``, ``'constraint'``...: Keras' messages name it.
    """
    objects = {**known, **(custom_objects or {})}
    if isinstance(config, dict):
        if "class_name" not in config or "config" not in config:
            raise ValueError(f"Improper config format: {config}")
        cls = objects.get(config["class_name"])
        if cls is None:
            raise ValueError(f"Unknown {what}: {config['class_name']}")
        if hasattr(cls, "from_config"):
            return cls.from_config(config["config"])
        return cls(**config["config"])
    if isinstance(config, str):
        found = objects.get(config)
        if found is None:
            raise ValueError(f"Unknown {what}: {config}")
        return found() if isinstance(found, type) else found
    raise ValueError(f"Could not interpret serialized {what}: {config!r}")
