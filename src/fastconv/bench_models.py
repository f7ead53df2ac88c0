"""The networks the benchmarks run, built with fastconv's Keras-like API.

Each builder resets the layer names (:func:`fastconv.backend.clear_session`)
and returns an uncompiled :class:`~fastconv.models.Model`, so two builds of
the same network have the same layer names and summary:

* :func:`seed_cnn`: the seed's CNN (28x28x1, two convolutions, a 100-unit
  Dense), 1,101,526 parameters;
* :func:`resnet20_v1`: ResNet-20 v1 for CIFAR-10, as in Keras' example
  ``cifar10_resnet.py`` (``resnet_v1(depth=20)``), 274,442 parameters;
* :func:`mnist_convnet`: keras.io's "Simple MNIST convnet", 34,826 parameters;
* :func:`mobilenet_v1_style`: the body of ``keras.applications.MobileNet``
  (v1) with a GlobalAveragePooling2D + Dense head, 4,253,864 parameters at
  ``alpha=1``, 96x96x3, 1000 classes (Keras' count for the same arguments).

:data:`MODELS` names them for the benchmark's command line. The parameter
counts are Keras' ``count_params()``: BatchNormalization's moving statistics
included.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from . import backend
from . import regularizers
from .layers import (Activation, Add, AveragePooling2D, BatchNormalization, Conv2D, Dense,
                     DepthwiseConv2D, Dropout, Flatten, GlobalAveragePooling2D, Input,
                     MaxPooling2D, ReLU)
from .models import Model

__all__ = ["BenchModel", "MODELS", "seed_cnn", "resnet20_v1", "mnist_convnet",
           "mobilenet_v1_style", "build"]

Shape = Tuple[int, int, int]


def _check_classes(classes: int) -> int:
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive int (the number of output classes), "
                         f"got {classes!r}")
    return classes


def _check_input_shape(input_shape: Shape, minimum: int) -> Shape:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                  for d in shape):
        raise ValueError(f"`input_shape` must be (height, width, channels) of positive ints, "
                         f"got {input_shape!r}")
    if min(shape[:2]) < minimum:
        raise ValueError(f"`input_shape` {shape}: height and width must be at least {minimum} "
                         "for this network")
    return shape


def seed_cnn() -> Model:
    """The seed's CNN on 28x28x1 (what ``fastconv.bench`` times end to end).

    Conv2D(32, 3, same, relu) -> Conv2D(64, 3, relu) -> MaxPooling2D(2) ->
    Flatten -> Dense(100, relu) -> Dense(10, softmax): 1,101,526 parameters.
    """
    backend.clear_session()
    inp = Input(shape=(28, 28, 1))
    x = Conv2D(32, 3, padding="same", activation="relu")(inp)
    x = Conv2D(64, 3, activation="relu")(x)
    x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = Dense(100, activation="relu")(x)
    out = Dense(10, activation="softmax")(x)
    return Model(inputs=inp, outputs=out)


def _resnet_layer(x, filters: int, kernel_size: int = 3, strides: int = 1,
                  activation: Optional[str] = "relu", batch_normalization: bool = True):
    """Keras' example's ``resnet_layer`` (conv first): Conv2D -> BN -> activation."""
    x = Conv2D(filters, kernel_size, strides=strides, padding="same",
               kernel_initializer="he_normal", kernel_regularizer=regularizers.l2(1e-4))(x)
    if batch_normalization:
        x = BatchNormalization()(x)
    if activation is not None:
        x = Activation(activation)(x)
    return x


def resnet20_v1(input_shape: Shape = (32, 32, 3), classes: int = 10) -> Model:
    """ResNet-20 v1 of Keras' example ``cifar10_resnet.py`` (``resnet_v1``, depth 20).

    A 3x3 16-filter conv layer, then 3 stages of 3 residual blocks (16, 32,
    64 filters); each block is two conv layers (the second without ReLU)
    added to the shortcut, then ReLU. The first block of stages 2 and 3
    has stride 2 and a 1x1 stride-2 convolution (no BN, no activation) on
    its shortcut. Every conv is 'same', he_normal, L2(1e-4) on the kernel,
    with a bias. Head: AveragePooling2D(8) -> Flatten -> Dense(classes,
    softmax, he_normal). 274,442 parameters for 32x32x3 and 10 classes.
    """
    shape = _check_input_shape(input_shape, 8)
    classes = _check_classes(classes)
    backend.clear_session()
    inp = Input(shape=shape)
    filters = 16
    x = _resnet_layer(inp, filters)
    for stage in range(3):
        for block in range(3):
            downsample = stage > 0 and block == 0
            strides = 2 if downsample else 1
            y = _resnet_layer(x, filters, strides=strides)
            y = _resnet_layer(y, filters, activation=None)
            if downsample:
                x = _resnet_layer(x, filters, kernel_size=1, strides=strides, activation=None,
                                  batch_normalization=False)
            x = Add()([x, y])
            x = Activation("relu")(x)
        filters *= 2
    x = AveragePooling2D(pool_size=8)(x)
    x = Flatten()(x)
    out = Dense(classes, activation="softmax", kernel_initializer="he_normal")(x)
    return Model(inputs=inp, outputs=out)


def mnist_convnet(classes: int = 10) -> Model:
    """keras.io's "Simple MNIST convnet" on 28x28x1.

    Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) ->
    MaxPooling2D(2) -> Flatten -> Dropout(0.5) -> Dense(classes, softmax):
    34,826 parameters for 10 classes.
    """
    classes = _check_classes(classes)
    backend.clear_session()
    inp = Input(shape=(28, 28, 1))
    x = Conv2D(32, 3, activation="relu")(inp)
    x = MaxPooling2D(2)(x)
    x = Conv2D(64, 3, activation="relu")(x)
    x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = Dropout(0.5)(x)
    out = Dense(classes, activation="softmax")(x)
    return Model(inputs=inp, outputs=out)


# keras.applications.MobileNet's 13 depthwise-separable blocks: (pointwise filters, stride).
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                     (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1_style(input_shape: Shape = (96, 96, 3), alpha: float = 1.0,
                       classes: int = 1000) -> Model:
    """MobileNet v1's body (``keras.applications.MobileNet``) with a GAP + Dense head.

    ``conv1``: Conv2D(32*alpha, 3x3, stride 2, no bias) -> BN -> ReLU(6);
    then 13 blocks of DepthwiseConv2D(3x3, no bias) -> BN -> ReLU(6) ->
    Conv2D(filters*alpha, 1x1, no bias) -> BN -> ReLU(6), with Keras' filters
    and strides (64, 128 s2, 128, 256 s2, 256, 512 s2, 5 x 512, 1024 s2,
    1024); GlobalAveragePooling2D -> Dense(classes, softmax). Channel counts
    are ``int(filters * alpha)`` as in Keras.

    Padding is 'same' everywhere. keras.applications pads the stride-2
    layers with ZeroPadding2D(((0, 1), (0, 1))) and convolves 'valid':
    the same arithmetic for even sizes (TensorFlow's 'same' puts the extra
    row and column bottom/right), so the outputs agree for even input
    sizes. Keras' head (GAP with keepdims, Dropout(1e-3), a 1x1 Conv2D,
    Reshape, softmax) has the parameters of this Dense: 4,253,864 in all at
    ``alpha=1``, 96x96x3, 1000 classes, as ``MobileNet(input_shape=(96, 96,
    3), weights=None)``.
    """
    shape = _check_input_shape(input_shape, 32)
    classes = _check_classes(classes)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"`alpha` must be a positive number (the width multiplier), "
                         f"got {alpha!r}")
    backend.clear_session()
    inp = Input(shape=shape)
    x = Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="conv1")(inp)
    x = BatchNormalization(name="conv1_bn")(x)
    x = ReLU(6.0, name="conv1_relu")(x)
    for block_id, (filters, strides) in enumerate(_MOBILENET_BLOCKS, start=1):
        x = DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                            name=f"conv_dw_{block_id}")(x)
        x = BatchNormalization(name=f"conv_dw_{block_id}_bn")(x)
        x = ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
        x = Conv2D(int(filters * alpha), 1, padding="same", use_bias=False,
                   name=f"conv_pw_{block_id}")(x)
        x = BatchNormalization(name=f"conv_pw_{block_id}_bn")(x)
        x = ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)
    x = GlobalAveragePooling2D()(x)
    out = Dense(classes, activation="softmax", name="predictions")(x)
    return Model(inputs=inp, outputs=out)


@dataclass(frozen=True)
class BenchModel:
    """A benchmarked network: its builder (called with no arguments gives the
    network below), the input shape of one image (NHWC without the batch) and
    the number of classes it predicts."""

    builder: Callable[[], Model]
    input_shape: Shape
    classes: int


MODELS: Dict[str, BenchModel] = {
    "seed": BenchModel(seed_cnn, (28, 28, 1), 10),
    "resnet20": BenchModel(resnet20_v1, (32, 32, 3), 10),
    "mnist_convnet": BenchModel(mnist_convnet, (28, 28, 1), 10),
    "mobilenet": BenchModel(mobilenet_v1_style, (96, 96, 3), 1000),
}


def build(name: str) -> Model:
    """The network :data:`MODELS` calls ``name``, freshly built."""
    if name not in MODELS:
        raise ValueError(f"unknown benchmark model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name].builder()


# ----------------------------------------------------------------------
# Timing of the models (to come).
