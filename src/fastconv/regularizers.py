"""Weight regularizers (``tf.keras.regularizers``): penalties on weights added to the loss.

For now this module holds Keras' base class :class:`Regularizer` and the
lookup functions :func:`get`, :func:`serialize` and :func:`deserialize`
(tf.keras 2.4 semantics); the penalties themselves (``l1``, ``l2``,
``l1_l2``) are not implemented yet, and layers accept only ``None`` for
their ``*_regularizer`` arguments.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Union

import numpy as np

from . import _serialization

__all__ = ["Regularizer", "get", "serialize", "deserialize"]


class Regularizer:
    """Base class: ``regularizer(weight)`` is the penalty (a float) that
    training adds to the loss for that weight.

    Subclasses implement ``__call__`` and ``get_config`` (the keyword
    arguments :meth:`from_config` passes back to ``__init__``). The base
    class penalises nothing.
    """

    def __call__(self, x: np.ndarray) -> float:
        """The penalty for the weight array ``x``."""
        return 0.0

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Regularizer":
        """The regularizer that :meth:`get_config` described."""
        return cls(**config)

    def get_config(self) -> Dict[str, Any]:
        """The constructor's keyword arguments (Keras' base class has none to give)."""
        raise NotImplementedError(f"{self} does not implement get_config()")


_BY_NAME: Dict[str, Any] = {"Regularizer": Regularizer}


def serialize(regularizer: Any) -> Union[Dict[str, Any], str]:
    """``{'class_name': ..., 'config': ...}`` (a function's name for a function)."""
    return _serialization.serialize(regularizer)


def deserialize(config: Union[Dict[str, Any], str],
                custom_objects: Optional[Mapping[str, Any]] = None) -> Any:
    """Inverse of :func:`serialize`; ``custom_objects`` maps names to the user's classes."""
    return _serialization.deserialize(config, _BY_NAME, custom_objects, "regularizer")


def get(identifier: Union[None, str, Dict[str, Any], Callable[[np.ndarray], float]]) -> Any:
    """Resolve a layer's ``*_regularizer`` argument: ``None``, a name, a
    :func:`serialize` dict, or a callable (returned unchanged).

    Raises
    ------
    ValueError
        ``Unknown regularizer: <name>``, or an identifier of another type.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (dict, str)):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")
