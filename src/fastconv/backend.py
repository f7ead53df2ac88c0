"""Process-wide state of the layer API: name counters, float type, data format.

Keras 2 keeps its automatic-name counters in one global graph, so names are
unique across the whole process until :func:`clear_session` resets them
(``conv2d``, ``conv2d_1``, ... and ``input_1``, ``input_2``, ...). This module
reproduces that, plus the read-only ``floatx()`` / ``image_data_format()``
settings the layers consult.

This is *not* the compute-backend switch: that is :func:`fastconv.set_backend`
(``"c"`` or ``"numpy"``).
"""
from __future__ import annotations

import contextlib
import re
import threading
from collections import defaultdict
from typing import DefaultDict, Iterator, Optional

import numpy as np

__all__ = [
    "clear_session", "get_uid", "unique_object_name", "reset_uids", "to_snake_case",
    "floatx", "epsilon", "image_data_format", "set_random_seed",
]

# Two separate counters, as in Keras: layer/model names count from zero
# ("dense", "dense_1"), Input() counts from one ("input_1").
_NAME_COUNTERS: DefaultDict[str, int] = defaultdict(int)
_UID_COUNTERS: DefaultDict[str, int] = defaultdict(int)
# Layers may be created from several Python threads; names must stay unique.
_LOCK = threading.Lock()

_FLOATX = "float32"
_IMAGE_DATA_FORMAT = "channels_last"

# Unseeded initializers draw from this generator; set_random_seed replaces it.
_global_rng: np.random.Generator = np.random.default_rng()


def floatx() -> str:
    """The default float type of layers and inputs: ``'float32'``."""
    return _FLOATX


def epsilon() -> float:
    """Keras' fuzz factor, ``1e-7`` (e.g. in the norm constraints' denominators)."""
    return 1e-7


def image_data_format() -> str:
    """The only image layout fastconv computes in: ``'channels_last'`` (NHWC)."""
    return _IMAGE_DATA_FORMAT


def to_snake_case(name: str) -> str:
    """Keras' class-name to layer-name rule: ``MaxPooling2D`` -> ``max_pooling2d``.

    Examples
    --------
    >>> to_snake_case("Conv2D"), to_snake_case("MaxPooling2D"), to_snake_case("ReLU")
    ('conv2d', 'max_pooling2d', 're_lu')
    """
    # An upper-case letter that starts a lower-case/digit run begins a word,
    # then any lower->upper transition does.
    words = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()
    return snake if not snake.startswith("_") else "private" + snake


def unique_object_name(base: str) -> str:
    """Next automatic name for ``base``, zero-based: ``base``, ``base_1``, ...

    User-given names never pass through here, so they do not advance the
    counter (two layers may both be called ``dense``; a model rejects that).
    """
    with _LOCK:
        number = _NAME_COUNTERS[base]
        _NAME_COUNTERS[base] = number + 1
    return base if number == 0 else f"{base}_{number}"


def get_uid(prefix: str = "") -> int:
    """One-based counter per prefix (``Input`` names are ``input_<uid>``)."""
    with _LOCK:
        _UID_COUNTERS[prefix] += 1
        return _UID_COUNTERS[prefix]


def reset_uids() -> None:
    """Forget every automatic name, so the next layer is ``conv2d`` again."""
    with _LOCK:
        _NAME_COUNTERS.clear()
        _UID_COUNTERS.clear()


def clear_session() -> None:
    """Reset all automatic names (as ``tf.keras.backend.clear_session()``).

    Existing layers and models keep working and keep their names; only names
    given afterwards restart at ``conv2d``, ``input_1``, ``model`` ...
    Also frees the idle buffers fastconv's caching allocator keeps
    (:mod:`fastconv._memory`).
    """
    reset_uids()
    from ._memory import release_cached_memory
    release_cached_memory()


def set_random_seed(seed: Optional[int]) -> None:
    """Seed the generator that unseeded initializers draw weights from.

    ``None`` draws fresh entropy from the OS. Initializers given their own
    ``seed=`` are unaffected.
    """
    global _global_rng
    _global_rng = np.random.default_rng(seed)


def global_rng() -> np.random.Generator:
    """The generator unseeded initializers use (see :func:`set_random_seed`)."""
    return _global_rng


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[np.random.Generator]:
    """The global generator seeded with ``seed`` inside the block, and the
    previous one back after it (a data-parallel replica's dropout masks)."""
    global _global_rng
    previous, _global_rng = _global_rng, np.random.default_rng(seed)
    try:
        yield _global_rng
    finally:
        _global_rng = previous
