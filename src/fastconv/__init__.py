"""fastconv: fast CPU Conv2D and MaxPool2D with a NumPy reference backend.

The functional API lives here (see :mod:`fastconv.ops`); the Keras-like layer
API in :mod:`fastconv.layers` and :mod:`fastconv.models`. Submodules load on
first use, so ``import fastconv`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

from .config import show_config
from .ops import (adam_update, conv2d, conv2d_backward, conv_output_size, dense,
                  dense_backward, get_backend, get_num_threads, max_pool2d, max_pool2d_backward,
                  relu_backward, set_backend, set_num_threads, use_backend)

__version__ = "0.1.0"

_SUBMODULES = ("layers", "models", "backend", "activations", "initializers", "losses",
               "metrics", "optimizers", "callbacks", "datasets", "shapes", "reference")

__all__ = [
    "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "dense",
    "dense_backward", "relu_backward", "adam_update", "conv_output_size", "set_backend",
    "get_backend", "use_backend",
    "set_num_threads", "get_num_threads", "show_config", "__version__", *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
