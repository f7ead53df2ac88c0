"""fastconv: fast CPU convolutions and pooling with a NumPy reference backend.

Two front doors:

* the functional API, here (``fastconv.conv2d`` & co, from :mod:`fastconv.ops`);
* the Keras-like API, shaped like TF 2.4's ``tf.keras``, so that
  ``import fastconv as keras`` stands in for ``from tensorflow import keras``:
  ``keras.Sequential``, ``keras.Model``, ``keras.Input`` and the modules
  ``keras.layers``, ``keras.models``, ``keras.optimizers``, ``keras.losses``,
  ``keras.metrics``, ``keras.callbacks``, ``keras.initializers``,
  ``keras.regularizers``, ``keras.constraints``, ``keras.activations``,
  ``keras.backend``, ``keras.datasets``, ``keras.utils`` and
  ``keras.preprocessing``.

The Keras-like API loads on first use (module ``__getattr__``), so
``import fastconv`` imports NumPy and the compute core only.
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
                  max_pool1d_backward, max_pool2d, max_pool2d_backward, optimizer_update,
                  relu, relu_backward,
                  set_backend, set_num_threads, upsample2d, upsample2d_backward, use_backend)

__version__ = "0.1.0"

# What `tensorflow.keras` offers under these names, and two compute-core modules.
_SUBMODULES = ("layers", "models", "optimizers", "losses", "metrics", "callbacks",
               "initializers", "regularizers", "constraints", "activations", "backend",
               "datasets", "utils", "preprocessing", "data", "distributed", "shapes",
               "reference")
# tf.keras' top-level classes and functions: name -> the submodule that holds it.
_KERAS_NAMES = {"Sequential": "models", "Model": "models", "Input": "layers"}

__all__ = [
    "conv2d", "conv2d_backward", "conv2d_transpose", "conv2d_transpose_backward", "conv1d",
    "conv1d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "max_pool1d", "max_pool1d_backward", "avg_pool1d", "avg_pool1d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward", "global_max_pool2d",
    "global_max_pool2d_backward", "batch_norm_train", "batch_norm_backward",
    "batch_norm_inference", "batch_norm_update_moving", "upsample2d", "upsample2d_backward",
    "dense", "dense_backward", "relu", "relu_backward", "adam_update", "optimizer_update",
    "conv_output_size",
    "conv_transpose_output_size", "set_backend", "get_backend", "use_backend",
    "set_num_threads", "get_num_threads", "show_config", "__version__", *_SUBMODULES,
    *_KERAS_NAMES,
]


def __getattr__(name: str) -> Any:
    # Called only for names not yet in the module: importing a submodule
    # binds it here, and a Keras name is bound on first use.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _KERAS_NAMES:
        value = getattr(importlib.import_module(f".{_KERAS_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(_KERAS_NAMES))
