"""Models holding every layer fastconv has, written once for both fastconv and
Keras 3 (the two APIs agree on these calls), for the saving tests.

``build_*(L, Model, Input, Sequential)`` take a layers namespace and the
model constructors, so ``build_2d(fastconv.layers, fastconv.models.Model,
...)`` and ``build_2d(keras.layers, keras.Model, ...)`` make the same
architecture. Between them they hold every layer class of
``fastconv.layers`` that Keras 3 also has (``LAYERS_IN_MODELS`` lists them;
a test checks the list against ``fastconv.layers``).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import numpy as np


def build_2d(L: Any, Model: Any, Input: Any, Sequential: Any = None) -> Any:
    """Image layers: convolutions, pooling, reshaping, activations, merges, noise."""
    x0 = Input((8, 8, 3), name="image")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x0)
    x = L.BatchNormalization(name="bn")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise")(x)
    x = L.SeparableConv2D(4, 3, padding="same", name="separable")(x)
    x = L.Conv2DTranspose(3, 3, strides=2, padding="same", name="transpose")(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Cropping2D(((1, 1), (1, 1)))(x)
    x = L.MaxPooling2D(2)(x)
    x = L.AveragePooling2D(2)(x)
    x = L.UpSampling2D(2)(x)
    x = L.SpatialDropout2D(0.2)(x)
    x = L.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.05)(x)
    x = L.LeakyReLU(0.2)(x)
    x = L.PReLU(shared_axes=[1, 2])(x)
    x = L.ELU(0.5)(x)
    x = L.Activation("tanh")(x)
    a = L.GlobalAveragePooling2D()(x)
    b = L.GlobalMaxPooling2D()(x)
    merged = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]),
              L.Average()([a, b]), L.Maximum()([a, b]), L.Minimum()([a, b])]
    x = L.Concatenate()(merged)
    x = L.Dense(5, name="dense")(x)
    x = L.Dropout(0.3)(x)
    x = L.GaussianNoise(0.1)(x)
    x = L.GaussianDropout(0.1)(x)
    return Model(x0, L.Softmax()(x), name="every_2d")


def build_1d(L: Any, Model: Any, Input: Any, Sequential: Any = None) -> Any:
    """Sequences: Embedding, 1-D convolution and pooling, Permute, Reshape, Lambda."""
    ids = Input((12,), dtype="int32", name="ids")
    x = L.Embedding(20, 4, name="embedding")(ids)
    x = L.Conv1D(6, 3, padding="causal", name="conv1d")(x)
    x = L.MaxPooling1D(2)(x)
    x = L.AveragePooling1D(2, strides=1)(x)
    x = L.SpatialDropout1D(0.2)(x)
    p = L.Permute((2, 1))(x)
    r = L.Reshape((5, 6))(p)
    g1 = L.GlobalAveragePooling1D()(r)
    g2 = L.GlobalMaxPooling1D()(x)
    f = L.Flatten()(r)
    lam = L.Lambda(lambda t: t * 2.0 + 1.0, name="affine")(f)
    x = L.Concatenate()([g1, g2, lam])
    return Model(ids, L.Dense(3, activation="sigmoid")(x), name="every_1d")


def build_nested(L: Any, Model: Any, Input: Any, Sequential: Any) -> Any:
    """A Sequential and a functional model inside a functional one, a model
    and a layer called twice, and the 5-D SpatialDropout3D."""
    seq = Sequential([Input((4, 4, 3)), L.Conv2D(2, 3, padding="same", name="seq_conv"),
                      L.BatchNormalization(name="seq_bn"), L.Flatten()], name="seq_block")
    i = Input((6,), name="func_in")
    func = Model(i, L.Dense(4, activation="relu", name="func_dense")(i), name="func_block")
    x0 = Input((2, 4, 4, 3), name="volume")
    x = L.SpatialDropout3D(0.1)(x0)
    x = L.Reshape((8, 4, 3))(x)
    x = L.Cropping2D(((2, 2), (0, 0)))(x)
    x = seq(x)
    x = L.Dense(6, name="shared")(x)
    y = func(x)
    z = func(L.Dense(6, name="to6")(y))
    return Model(x0, L.Dense(2, name="head")(L.Concatenate()([y, z])), name="nested")


BUILDERS: Dict[str, Callable[..., Any]] = {"every_2d": build_2d, "every_1d": build_1d,
                                           "nested": build_nested}

LAYERS_IN_MODELS = {
    "Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D",
    "BatchNormalization", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Reshape", "Permute",
    "Flatten", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "Dense", "Embedding", "Activation", "Lambda", "ReLU", "LeakyReLU",
    "PReLU", "ELU", "Softmax", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
    "Concatenate", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "InputLayer",
}


def inputs_for(name: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == "every_1d":
        return rng.integers(0, 20, (3, 12)).astype("int32")
    shape = {"every_2d": (3, 8, 8, 3), "nested": (3, 2, 4, 4, 3)}[name]
    return rng.standard_normal(shape).astype("float32")


def random_weights(named: List[Tuple[str, np.ndarray]], seed: int = 0) -> List[np.ndarray]:
    """Values for ``[(name, array), ...]`` in order: normal * 0.5, variances positive."""
    rng = np.random.default_rng(seed)
    values = []
    for name, array in named:
        value = (rng.standard_normal(array.shape) * 0.5).astype(array.dtype)
        values.append(np.abs(value) + 0.5 if "variance" in name else value)
    return values
