"""fastconv: fast CPU convolutions and pooling with a NumPy reference backend.

The functional API lives here (see :mod:`fastconv.ops`); the Keras-like layer
API in :mod:`fastconv.layers` and :mod:`fastconv.models`. Submodules load on
first use, so ``import fastconv`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

from .config import show_config
from .ops import (adam_update, avg_pool1d, avg_pool1d_backward, avg_pool2d,
                  avg_pool2d_backward, batch_norm_backward, batch_norm_inference,
                  batch_norm_train, batch_norm_update_moving, conv1d, conv1d_backward, conv2d,
                  conv2d_backward, conv2d_transpose, conv2d_transpose_backward,
                  conv_output_size, conv_transpose_output_size, dense, dense_backward,
                  get_backend, get_num_threads, global_avg_pool2d, global_avg_pool2d_backward,
                  global_max_pool2d, global_max_pool2d_backward, max_pool1d,
                  max_pool1d_backward, max_pool2d, max_pool2d_backward, relu_backward,
                  set_backend, set_num_threads, upsample2d, upsample2d_backward, use_backend)

__version__ = "0.1.0"

_SUBMODULES = ("layers", "models", "backend", "activations", "initializers", "losses",
               "metrics", "optimizers", "callbacks", "datasets", "shapes", "reference")

__all__ = [
    "conv2d", "conv2d_backward", "conv2d_transpose", "conv2d_transpose_backward", "conv1d",
    "conv1d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "max_pool1d", "max_pool1d_backward", "avg_pool1d", "avg_pool1d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward", "global_max_pool2d",
    "global_max_pool2d_backward", "batch_norm_train", "batch_norm_backward",
    "batch_norm_inference", "batch_norm_update_moving", "upsample2d", "upsample2d_backward",
    "dense", "dense_backward", "relu_backward", "adam_update", "conv_output_size",
    "conv_transpose_output_size", "set_backend", "get_backend", "use_backend",
    "set_num_threads", "get_num_threads", "show_config", "__version__", *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
