"""Keras-like layers (``tf.keras.layers``, Keras 2 / TF 2.4 semantics).

Replace ``tensorflow.keras`` with ``fastconv`` in your imports::

    from fastconv.layers import Input, Conv2D, MaxPooling2D, Flatten, Dense
    from fastconv.models import Model

Layers compute through :mod:`fastconv.ops`, so both compute backends
(``fastconv.set_backend('c' | 'numpy')``) serve them.
"""
from . import experimental
from .base import InputSpec, Layer, Node, Variable
from .convolutional import Conv2D, Convolution2D
from .core import Activation, Dense, Flatten
from .input_layer import Input, InputLayer
from .keras_tensor import KerasTensor, TensorShape, TensorSpec
from .merge import Add, Concatenate
from .pooling import MaxPool2D, MaxPooling2D
from .regularization import (Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                             SpatialDropout2D, SpatialDropout3D)
from .normalization import BatchNormalization
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax

__all__ = [
    "Input", "InputLayer", "Layer", "Conv2D", "Convolution2D", "MaxPooling2D", "MaxPool2D",
    "Flatten", "Dense", "Activation", "Add", "Concatenate", "InputSpec", "Node", "Variable",
    "KerasTensor", "TensorShape", "TensorSpec", "experimental",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "BatchNormalization", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
]
