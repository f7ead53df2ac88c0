"""fastconv: fast CPU Conv2D and MaxPool2D with a NumPy reference backend.

The functional API lives here (see :mod:`fastconv.ops`); the Keras-like
layer API in :mod:`fastconv.layers` and :mod:`fastconv.models`.
"""
from .ops import (conv2d, conv2d_backward, conv_output_size, dense, dense_backward,
                  get_backend, get_num_threads, max_pool2d, max_pool2d_backward,
                  set_backend, set_num_threads, use_backend)

__version__ = "0.1.0"

__all__ = [
    "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "dense",
    "dense_backward", "conv_output_size", "set_backend", "get_backend", "use_backend",
    "set_num_threads", "get_num_threads", "__version__",
]
