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
from .core import Activation, Dense, Flatten, Lambda
from .embeddings import Embedding
from .input_layer import Input, InputLayer
from .keras_tensor import KerasTensor, TensorShape, TensorSpec
from .merge import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add,
                    average, concatenate, maximum, minimum, multiply, subtract)
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D,
                      GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAvgPool1D,
                      GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D,
                      GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from .reshaping import Cropping2D, Permute, Reshape, UpSampling2D, ZeroPadding2D
from .regularization import (Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                             SpatialDropout2D, SpatialDropout3D)
from .normalization import BatchNormalization
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .preprocessing import CenterCrop, Normalization, Rescaling, Resizing
from .augmentation import (RandomContrast, RandomCrop, RandomFlip, RandomRotation,
                           RandomTranslation, RandomZoom)

__all__ = [
    "Input", "InputLayer", "Layer", "Conv2D", "Convolution2D", "MaxPooling2D", "MaxPool2D",
    "Flatten", "Dense", "Activation", "Add", "Concatenate", "InputSpec", "Node", "Variable",
    "KerasTensor", "TensorShape", "TensorSpec", "experimental",
    # pooling
    "AveragePooling2D", "AvgPool2D", "MaxPooling1D", "MaxPool1D", "AveragePooling1D",
    "AvgPool1D", "GlobalMaxPooling2D", "GlobalMaxPool2D", "GlobalAveragePooling2D",
    "GlobalAvgPool2D", "GlobalMaxPooling1D", "GlobalMaxPool1D", "GlobalAveragePooling1D",
    "GlobalAvgPool1D",
    # reshaping
    "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Reshape", "Permute",
    # merging, and the functional forms
    "Subtract", "Multiply", "Average", "Maximum", "Minimum", "add", "subtract", "multiply",
    "average", "maximum", "minimum", "concatenate",
    # core
    "Lambda",
    # convolutional
    "Conv1D", "Convolution1D", "DepthwiseConv2D", "SeparableConv2D", "SeparableConvolution2D",
    "Conv2DTranspose", "Convolution2DTranspose", "Embedding",
    # regularization, normalization, activations
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "BatchNormalization", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    # preprocessing (also in experimental.preprocessing, tf.keras 2.4's home)
    "Rescaling", "Resizing", "CenterCrop", "Normalization", "RandomFlip", "RandomRotation",
    "RandomZoom", "RandomTranslation", "RandomContrast", "RandomCrop",
]
