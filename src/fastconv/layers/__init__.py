"""Keras-like layers (``tf.keras.layers``, Keras 2 / TF 2.4 semantics).

Replace ``tensorflow.keras`` with ``fastconv`` in your imports::

    from fastconv.layers import Input, Conv2D, MaxPooling2D, Flatten, Dense
    from fastconv.models import Model

Layers compute through :mod:`fastconv.ops`, so both compute backends
(``fastconv.set_backend('c' | 'numpy')``) serve them.
"""
from . import experimental
from .base import InputSpec, Layer, Node, Variable
from .convolutional import (Conv1D, Conv2D, Conv2DTranspose, Convolution1D, Convolution2D,
                            Convolution2DTranspose, DepthwiseConv2D, SeparableConv2D,
                            SeparableConvolution2D)
from .core import Activation, Dense, Flatten
from .embeddings import Embedding
from .input_layer import Input, InputLayer
from .keras_tensor import KerasTensor, TensorShape, TensorSpec
from .merge import Add, Concatenate
from .pooling import MaxPool2D, MaxPooling2D

__all__ = [
    "Input", "InputLayer", "Layer", "Conv2D", "Convolution2D", "MaxPooling2D", "MaxPool2D",
    "Flatten", "Dense", "Activation", "Add", "Concatenate", "InputSpec", "Node", "Variable",
    "KerasTensor", "TensorShape", "TensorSpec", "experimental",
    "Conv1D", "Convolution1D", "DepthwiseConv2D", "SeparableConv2D", "SeparableConvolution2D",
    "Conv2DTranspose", "Convolution2DTranspose", "Embedding",
]
