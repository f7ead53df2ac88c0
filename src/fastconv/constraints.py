"""Weight constraints (``tf.keras.constraints``): projections applied to a
weight after each optimizer update.

For now this module holds Keras' base class :class:`Constraint` and the
lookup functions :func:`get`, :func:`serialize` and :func:`deserialize`
(tf.keras 2.4 semantics); the constraints themselves (``max_norm``,
``non_neg``, ``unit_norm``, ...) are not implemented yet, and layers accept
only ``None`` for their ``*_constraint`` arguments.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Union

import numpy as np

from . import _serialization

__all__ = ["Constraint", "get", "serialize", "deserialize"]


class Constraint:
    """Base class: ``constraint(weight)`` returns the projected weight.

    Subclasses implement ``__call__`` and ``get_config``. The base class
    returns the weight unchanged.
    """

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """The constrained weight for the weight array ``w``."""
        return w

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Constraint":
        """The constraint that :meth:`get_config` described."""
        return cls(**config)

    def get_config(self) -> Dict[str, Any]:
        """The constructor's keyword arguments (none for the base class)."""
        return {}


_BY_NAME: Dict[str, Any] = {"Constraint": Constraint}


def serialize(constraint: Any) -> Union[Dict[str, Any], str]:
    """``{'class_name': ..., 'config': ...}`` (a function's name for a function)."""
    return _serialization.serialize(constraint)


def deserialize(config: Union[Dict[str, Any], str],
                custom_objects: Optional[Mapping[str, Any]] = None) -> Any:
    """Inverse of :func:`serialize`; ``custom_objects`` maps names to the user's classes."""
    return _serialization.deserialize(config, _BY_NAME, custom_objects, "constraint")


def get(identifier: Union[None, str, Dict[str, Any], Callable[[np.ndarray], np.ndarray]]
        ) -> Any:
    """Resolve a layer's ``*_constraint`` argument: ``None``, a class name
    (instantiated with its defaults), a :func:`serialize` dict, or a
    callable (returned unchanged).

    Raises
    ------
    ValueError
        ``Unknown constraint: <name>``, or an identifier of another type.
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier, "config": {}})
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")
