"""The convolution layers: Conv1D, Conv2D (grouped, NCHW, dilated), DepthwiseConv2D,
SeparableConv2D, Conv2DTranspose.

Keras 3 (torch backend) is the oracle for outputs, gradients, parameter counts
and shapes, given the same weights; configs, names and summaries are Keras
2.4's, written from its rules. Where Keras 3 differs from 2.4 the test says so.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastconv import backend, constraints, ops, regularizers
from fastconv.layers import (Conv1D, Conv2D, Conv2DTranspose, Convolution1D, Convolution2D,
                             Convolution2DTranspose, DepthwiseConv2D, Flatten, Input,
                             SeparableConv2D, SeparableConvolution2D)
from fastconv.models import Model, Sequential

os.environ.setdefault("KERAS_BACKEND", "torch")

CF = "channels_first"


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason="Keras 3 is the optional oracle")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="Keras 3's torch backend is the oracle")


# ---------------------------------------------------------------------------
# The oracle: the same layer in Keras 3, the same weights and data

# (class name, constructor kwargs, input shape without the batch)
CASES = [
    ("Conv2D", dict(filters=5, kernel_size=3, activation="relu"), (7, 8, 3)),
    ("Conv2D", dict(filters=4, kernel_size=(3, 2), strides=2, padding="same",
                    use_bias=False), (7, 8, 3)),
    ("Conv2D", dict(filters=4, kernel_size=3, dilation_rate=2, padding="same",
                    activation="tanh"), (9, 8, 2)),
    ("Conv2D", dict(filters=6, kernel_size=3, groups=2, padding="same"), (6, 7, 4)),
    # groups == input channels: the ops' depthwise path, with multiplier 2.
    ("Conv2D", dict(filters=8, kernel_size=3, groups=4, activation="relu"), (6, 7, 4)),
    ("Conv2D", dict(filters=4, kernel_size=3, data_format=CF), (3, 7, 8)),
    ("Conv2D", dict(filters=6, kernel_size=(2, 3), strides=(2, 1), padding="same",
                    groups=3, data_format=CF, activation="relu"), (3, 7, 8)),
    ("Conv2D", dict(filters=4, kernel_size=3, dilation_rate=(2, 1), padding="same",
                    data_format=CF, activation="sigmoid"), (2, 9, 8)),
    ("Conv1D", dict(filters=5, kernel_size=3, activation="relu"), (9, 3)),
    ("Conv1D", dict(filters=4, kernel_size=4, strides=2, padding="same"), (9, 3)),
    ("Conv1D", dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2,
                    activation="tanh"), (9, 2)),
    ("Conv1D", dict(filters=6, kernel_size=3, groups=2, use_bias=False), (9, 4)),
    ("Conv1D", dict(filters=4, kernel_size=3, padding="same", data_format=CF), (3, 9)),
    ("Conv1D", dict(filters=4, kernel_size=2, padding="causal", groups=2, data_format=CF,
                    activation="relu"), (4, 9)),
    ("DepthwiseConv2D", dict(kernel_size=3), (7, 8, 3)),
    ("DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=2, strides=2, padding="same",
                             activation="relu"), (7, 8, 3)),
    ("DepthwiseConv2D", dict(kernel_size=(3, 2), depth_multiplier=3, dilation_rate=2,
                             use_bias=False), (9, 8, 2)),
    ("DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=2, strides=2, padding="same",
                             data_format=CF), (3, 7, 8)),
    ("DepthwiseConv2D", dict(kernel_size=3, dilation_rate=2, data_format=CF,
                             activation="tanh"), (2, 9, 8)),
    ("SeparableConv2D", dict(filters=4, kernel_size=3, activation="relu"), (7, 8, 3)),
    ("SeparableConv2D", dict(filters=5, kernel_size=3, depth_multiplier=2, strides=2,
                             padding="same"), (7, 8, 3)),
    ("SeparableConv2D", dict(filters=4, kernel_size=3, dilation_rate=2, use_bias=False,
                             activation="tanh"), (9, 8, 2)),
    ("SeparableConv2D", dict(filters=4, kernel_size=3, depth_multiplier=2, padding="same",
                             data_format=CF, activation="relu"), (3, 7, 8)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, activation="relu"), (5, 6, 3)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same"), (5, 6, 3)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=4, strides=2), (5, 6, 2)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=3, strides=3, padding="same",
                             output_padding=1, use_bias=False), (4, 5, 2)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=(3, 4), strides=(2, 3),
                             output_padding=(1, 2), activation="tanh"), (4, 5, 2)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=3, dilation_rate=2, padding="same"),
     (5, 6, 2)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same",
                             data_format=CF, activation="relu"), (3, 5, 6)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=2, strides=2, output_padding=1,
                             data_format=CF), (2, 4, 5)),
]
CASE_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]
FASTCONV_LAYERS = {cls.__name__: cls for cls in (Conv1D, Conv2D, DepthwiseConv2D,
                                                   SeparableConv2D, Conv2DTranspose)}


def fastconv_model(name, kwargs, shape):
    inputs = Input(shape)
    layer = FASTCONV_LAYERS[name](**kwargs)
    return Model(inputs, layer(inputs)), layer


def keras_model(keras, name, kwargs, shape):
    inputs = keras.Input(shape)
    layer = getattr(keras.layers, name)(**kwargs)
    return keras.Model(inputs, layer(inputs)), layer


def random_like(rng, arrays):
    return [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]


def rel_err(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected))
                 / max(float(np.max(np.abs(expected))), 1e-30))


@pytest.mark.parametrize("ops_backend", ["c", "numpy"])
@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=CASE_IDS)
def test_outputs_and_gradients_equal_keras3(keras, torch, name, kwargs, shape, ops_backend):
    rng = np.random.default_rng(abs(hash((name, str(kwargs)))) % 2**32)
    ops.set_backend(ops_backend)
    model, layer = fastconv_model(name, kwargs, shape)
    kmodel, klayer = keras_model(keras, name, kwargs, shape)
    weights = random_like(rng, layer.get_weights())
    layer.set_weights(weights)
    klayer.set_weights(weights)
    x = rng.standard_normal((2,) + shape).astype(np.float32)

    expected_inference = kmodel(x, training=False).detach().numpy()
    assert rel_err(model.predict(x), expected_inference) <= 1e-5

    # One training step's gradients for the loss sum(y * g): torch autograd on Keras' model.
    xt = torch.tensor(x, requires_grad=True)
    yt = kmodel(xt, training=True)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (yt * torch.tensor(g)).sum().backward()
    y = model.forward(x, training=True)
    weight_grads, (dx,) = model.backward(g, input_gradients=True)

    assert rel_err(y, yt.detach().numpy()) <= 1e-5
    assert rel_err(dx, xt.grad.numpy()) <= 1e-5, "input gradient"
    assert len(weight_grads) == len(klayer.weights)
    for grad, kvar in zip(weight_grads, klayer.weights):
        assert rel_err(grad, kvar.value.grad.numpy()) <= 1e-5, kvar.name


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=CASE_IDS)
def test_weights_params_and_shapes_equal_keras3(keras, name, kwargs, shape):
    model, layer = fastconv_model(name, kwargs, shape)
    _, klayer = keras_model(keras, name, kwargs, shape)
    assert [w.shape for w in layer.get_weights()] == [tuple(w.shape) for w in klayer.weights]
    # Keras 2.4's names; Keras 3 calls DepthwiseConv2D's kernel 'kernel'.
    keras3_names = [w.name for w in klayer.weights]
    if name == "DepthwiseConv2D":
        keras3_names[0] = "depthwise_kernel"
    assert [v.name for v in layer.weights] == [f"{layer.name}/{n}:0" for n in keras3_names]
    assert layer.count_params() == klayer.count_params() == model.count_params()
    channel_axis = 0 if kwargs.get("data_format") == CF else len(shape) - 1
    unknown_sizes = tuple(d if i == channel_axis else None for i, d in enumerate(shape))
    for batch_shape in [(None,) + shape, (3,) + shape, (None,) + unknown_sizes]:
        assert layer.compute_output_shape(batch_shape) == tuple(
            klayer.compute_output_shape(batch_shape)), batch_shape
    x = np.zeros((3,) + shape, np.float32)
    assert layer(x).shape == layer.compute_output_shape(x.shape)
    assert model.output_shape == tuple(klayer.compute_output_shape((None,) + shape))


def test_depthwise_kernel_is_the_grouped_kernel_reshaped(rng):
    # Output channel c * multiplier + m is input channel c's filter m.
    layer = DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)
    x = rng.standard_normal((1, 5, 5, 3)).astype(np.float32)
    y = layer(x)
    kernel = layer.depthwise_kernel.numpy()
    for c in range(3):
        for m in range(2):
            single = Conv2D(1, 3, use_bias=False)
            single(x[..., c:c + 1])
            single.set_weights([kernel[:, :, c:c + 1, m:m + 1]])
            np.testing.assert_allclose(y[..., c * 2 + m], single(x[..., c:c + 1])[..., 0],
                                       rtol=1e-5, atol=1e-6)


def test_separable_is_depthwise_then_pointwise(rng):
    sep = SeparableConv2D(4, 3, depth_multiplier=2, strides=2, padding="same",
                          activation="relu")
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    y = sep(x)
    depthwise = DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same",
                                use_bias=False)
    pointwise = Conv2D(4, 1, activation="relu")
    mid = depthwise(x)
    pointwise(mid)
    dw, pw, bias = sep.get_weights()
    depthwise.set_weights([dw])
    pointwise.set_weights([pw, bias])
    np.testing.assert_allclose(y, pointwise(depthwise(x)), rtol=1e-5, atol=1e-6)


def test_even_same_transpose_without_output_padding_differs_from_keras3(keras):
    # 'same', an even kernel and output_padding=0: deconv_output_length gives
    # (3 - 1) * 2 + 4 - 2 * 2 = 4, but the convolution it transposes maps 4 back to 2,
    # not 3, so TF 2.4's conv2d_transpose raises; fastconv refuses it when the layer is
    # called. Keras 3 computes a 4x4 output instead.
    with pytest.raises(ValueError, match="output_padding"):
        Conv2DTranspose(2, 4, strides=2, padding="same", output_padding=0)(Input((3, 3, 1)))
    klayer = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same", output_padding=0)
    assert tuple(klayer.compute_output_shape((None, 3, 3, 1))) == (None, 4, 4, 2)


# ---------------------------------------------------------------------------
# Names, aliases, configs (Keras 2.4)

def test_automatic_names_and_aliases():
    assert Convolution1D is Conv1D and Convolution2D is Conv2D
    assert SeparableConvolution2D is SeparableConv2D
    assert Convolution2DTranspose is Conv2DTranspose
    names = [Conv1D(1, 3).name, Convolution1D(1, 3).name, DepthwiseConv2D(3).name,
             SeparableConv2D(1, 3).name, SeparableConvolution2D(1, 3).name,
             Conv2DTranspose(1, 3).name, Convolution2DTranspose(1, 3).name, Conv2D(1, 3).name]
    assert names == ["conv1d", "conv1d_1", "depthwise_conv2d", "separable_conv2d",
                     "separable_conv2d_1", "conv2d_transpose", "conv2d_transpose_1", "conv2d"]


def test_keras_class_tree():
    # As Keras: isinstance(layer, Conv2D) holds for its depthwise and transposed forms.
    assert isinstance(DepthwiseConv2D(3), Conv2D)
    assert isinstance(Conv2DTranspose(1, 3), Conv2D)
    assert not isinstance(SeparableConv2D(1, 3), Conv2D)
    assert not isinstance(Conv1D(1, 3), Conv2D)


GLOROT = {"class_name": "GlorotUniform", "config": {"seed": None}}
ZEROS = {"class_name": "Zeros", "config": {}}


def test_conv2d_config_is_keras_24s():
    layer = Conv2D(4, 3, strides=2, padding="SAME", data_format=CF, groups=2,
                   activation="relu", kernel_constraint="Constraint", input_shape=(4, 8, 8))
    assert layer.get_config() == {
        "name": "conv2d", "trainable": True, "dtype": "float32",
        "batch_input_shape": (None, 4, 8, 8),
        "filters": 4, "kernel_size": (3, 3), "strides": (2, 2), "padding": "same",
        "data_format": "channels_first", "dilation_rate": (1, 1), "groups": 2,
        "activation": "relu", "use_bias": True, "kernel_initializer": GLOROT,
        "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": {"class_name": "Constraint", "config": {}},
        "bias_constraint": None,
    }


def test_conv1d_config_is_keras_24s():
    assert Conv1D(3, 5, padding="causal", dilation_rate=2).get_config() == {
        "name": "conv1d", "trainable": True, "dtype": "float32",
        "filters": 3, "kernel_size": (5,), "strides": (1,), "padding": "causal",
        "data_format": "channels_last", "dilation_rate": (2,), "groups": 1,
        "activation": "linear", "use_bias": True, "kernel_initializer": GLOROT,
        "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
        "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
    }


def test_depthwise_config_is_keras_24s():
    # Conv2D's keys without filters and kernel_*, plus the depthwise ones (groups stays).
    assert DepthwiseConv2D(3, depth_multiplier=2, depthwise_initializer="he_normal",
                           use_bias=False).get_config() == {
        "name": "depthwise_conv2d", "trainable": True, "dtype": "float32",
        "kernel_size": (3, 3), "strides": (1, 1), "padding": "valid",
        "data_format": "channels_last", "dilation_rate": (1, 1), "groups": 1,
        "activation": "linear", "use_bias": False, "bias_initializer": ZEROS,
        "bias_regularizer": None, "activity_regularizer": None, "bias_constraint": None,
        "depth_multiplier": 2,
        "depthwise_initializer": {"class_name": "HeNormal", "config": {"seed": None}},
        "depthwise_regularizer": None, "depthwise_constraint": None,
    }


def test_separable_config_is_keras_24s():
    # SeparableConv's own dict: no groups, no kernel_*.
    assert SeparableConv2D(8, 3, depth_multiplier=2, activation="relu").get_config() == {
        "name": "separable_conv2d", "trainable": True, "dtype": "float32",
        "filters": 8, "kernel_size": (3, 3), "strides": (1, 1), "padding": "valid",
        "data_format": "channels_last", "depth_multiplier": 2, "dilation_rate": (1, 1),
        "activation": "relu", "use_bias": True, "depthwise_initializer": GLOROT,
        "pointwise_initializer": GLOROT, "bias_initializer": ZEROS,
        "depthwise_regularizer": None, "pointwise_regularizer": None, "bias_regularizer": None,
        "activity_regularizer": None, "depthwise_constraint": None,
        "pointwise_constraint": None, "bias_constraint": None,
    }


def test_transpose_config_is_keras_24s():
    config = Conv2DTranspose(4, 3, strides=2, output_padding=1).get_config()
    assert config["output_padding"] == (1, 1) and config["groups"] == 1
    assert config["dilation_rate"] == (1, 1) and config["strides"] == (2, 2)
    assert Conv2DTranspose(4, 3).get_config()["output_padding"] is None
    assert set(config) == set(Conv2D(4, 3).get_config()) | {"output_padding"}


@pytest.mark.parametrize("make", [
    lambda: Conv2D(4, 3, strides=2, padding="same", data_format=CF, groups=2,
                   activation="tanh", kernel_initializer="he_uniform",
                   bias_constraint="Constraint", input_shape=(4, 9, 9)),
    lambda: Conv1D(4, 3, padding="causal", groups=2, use_bias=False),
    lambda: DepthwiseConv2D((3, 2), depth_multiplier=3, dilation_rate=2, activation="relu"),
    lambda: SeparableConv2D(5, 3, strides=2, depth_multiplier=2, data_format=CF,
                            pointwise_initializer="lecun_normal"),
    lambda: Conv2DTranspose(3, 4, strides=2, output_padding=1, data_format=CF,
                            activation="sigmoid"),
], ids=["Conv2D", "Conv1D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"])
def test_from_config_round_trip(make, rng):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    spatial = (9, 9) if layer.rank == 2 else (9,)
    shape = (2, 4) + spatial if layer.data_format == CF else (2,) + spatial + (4,)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x), y)


class _Penalty(regularizers.Regularizer):
    def __call__(self, x):
        return 0.0

    def get_config(self):
        return {}


def test_regularizers_and_constraints_are_carried():
    kernel_reg, bias_reg, activity_reg = _Penalty(), _Penalty(), _Penalty()
    clip = constraints.Constraint()
    conv = Conv2D(2, 3, kernel_regularizer=kernel_reg, bias_regularizer=bias_reg,
                  activity_regularizer=activity_reg, kernel_constraint=clip)
    conv(Input((5, 5, 1)))
    assert conv.kernel.regularizer is kernel_reg and conv.bias.regularizer is bias_reg
    assert conv.kernel.constraint is clip and conv.bias.constraint is None
    assert conv.activity_regularizer is activity_reg
    assert conv.get_config()["activity_regularizer"] == {"class_name": "_Penalty", "config": {}}

    sep = SeparableConv2D(2, 3, depthwise_regularizer=kernel_reg, pointwise_constraint=clip,
                          bias_regularizer=bias_reg)
    sep(Input((5, 5, 1)))
    assert [v.regularizer for v in sep.weights] == [kernel_reg, None, bias_reg]
    assert [v.constraint for v in sep.weights] == [None, clip, None]

    depthwise = DepthwiseConv2D(3, depthwise_constraint=clip, depthwise_regularizer=kernel_reg)
    depthwise(Input((5, 5, 2)))
    assert depthwise.depthwise_kernel.constraint is clip
    assert depthwise.depthwise_kernel.regularizer is kernel_reg

    transpose = Conv2DTranspose(2, 3, kernel_regularizer=kernel_reg, bias_constraint=clip)
    transpose(Input((5, 5, 2)))
    assert transpose.kernel.regularizer is kernel_reg and transpose.bias.constraint is clip
    assert Conv1D(2, 3).activity_regularizer is None


# ---------------------------------------------------------------------------
# Shapes and bad arguments

def test_symbolic_shapes_keep_unknown_sizes():
    assert Conv2D(4, 3, strides=2, padding="same", data_format=CF).compute_output_shape(
        (None, 3, None, 9)) == (None, 4, None, 5)
    assert Conv1D(4, 3, padding="causal", dilation_rate=3).compute_output_shape(
        (None, None, 2)) == (None, None, 4)
    assert Conv1D(4, 3, padding="causal", dilation_rate=3).compute_output_shape(
        (None, 5, 2)) == (None, 5, 4)
    assert DepthwiseConv2D(3, depth_multiplier=4).compute_output_shape(
        (None, 7, None, 2)) == (None, 5, None, 8)
    assert Conv2DTranspose(4, 3, strides=2).compute_output_shape(
        (None, None, 5, 2)) == (None, None, 11, 4)
    tensor = Conv2DTranspose(4, 3, strides=2, padding="same", data_format=CF)(
        Input((2, None, 5)))
    assert tensor.shape == (None, 4, None, 10)


def test_output_tensor_names():
    inputs = Input((8, 8, 2))
    assert Conv2D(2, 3, data_format=CF)(Input((2, 8, 8))).name == "conv2d/BiasAdd:0"
    assert DepthwiseConv2D(3, activation="relu")(inputs).name == "depthwise_conv2d/Relu:0"
    assert SeparableConv2D(2, 3)(inputs).name == "separable_conv2d/BiasAdd:0"
    assert Conv2DTranspose(2, 3, use_bias=False)(inputs).name == \
        "conv2d_transpose/conv2d_transpose:0"


@pytest.mark.parametrize("make,message", [
    (lambda: Conv2D(4, 3, groups=3), "number of filters must be evenly divisible by the "
                                     "number of groups. Received: groups=3, filters=4"),
    (lambda: Conv2D(4, 3, groups=0), "`groups` must be a positive integer, got 0"),
    (lambda: Conv1D(4, 3, groups=1.5), "`groups` must be a positive integer"),
    (lambda: Conv2D(4, 3, data_format="NCHW"), "The `data_format` argument must be one of"),
    (lambda: Conv2D(4, 3, padding="causal"), "Causal padding is only supported for `Conv1D`"),
    (lambda: DepthwiseConv2D(3, padding="causal"), "Causal padding is only supported"),
    (lambda: Conv2DTranspose(4, 3, padding="causal"), "Causal padding is only supported"),
    (lambda: Conv1D(4, 3, padding="full"), "`padding` must be 'valid' or 'same' or 'causal'"),
    (lambda: Conv1D(4, (3, 3)), "`kernel_size` must be a positive integer or a tuple of 1"),
    (lambda: Conv1D(4, 0), "The argument `kernel_size` cannot contain 0"),
    (lambda: Conv2D(4, 3, strides=2, dilation_rate=2), "`strides > 1` not supported in "
                                                       "conjunction with `dilation_rate > 1`"),
    (lambda: SeparableConv2D(4, 3, strides=2, dilation_rate=2), "`strides > 1` not supported"),
    (lambda: DepthwiseConv2D(3, depth_multiplier=0), "`depth_multiplier` must be a positive"),
    (lambda: SeparableConv2D(4, 3, depth_multiplier=1.5), "`depth_multiplier` must be a "
                                                           "positive integer"),
    (lambda: DepthwiseConv2D(3, groups=2), "`groups` must be 1"),
    (lambda: Conv2DTranspose(4, 3, groups=2), "`groups` must be 1"),
    (lambda: Conv2DTranspose(4, 3, strides=2, output_padding=2), "`output_padding` must be "
                                                                 "smaller than the stride"),
    (lambda: Conv2DTranspose(4, 3, output_padding=(0, 0, 0)), "`output_padding`"),
    (lambda: SeparableConv2D("8", 3), "`filters` must be a positive integer"),
    (lambda: Conv1D(-2, 3), "`filters` must be a positive integer, got -2"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[")):
        make()


def test_float_filters_are_truncated_as_keras_does():
    assert Conv2D(4.7, 3).filters == 4


def test_input_channels_must_divide_into_groups_and_leave_layer_unbuilt():
    conv = Conv2D(4, 3, groups=2)
    with pytest.raises(ValueError, match="The number of input channels must be evenly divisible "
                                         r"by the number of groups. Received groups=2, but the "
                                         r"input has 3 channels \(full input shape is "
                                         r"\(None, 8, 8, 3\)\)"):
        conv(Input((8, 8, 3)))
    assert not conv.built
    assert conv(Input((8, 8, 6))).shape == (None, 6, 6, 4)
    assert conv.kernel.shape == (3, 3, 3, 4)


def test_channel_axis_is_checked_on_reuse_in_keras_terms():
    conv = Conv2D(2, 3, data_format=CF)
    conv(Input((3, 8, 8)))
    with pytest.raises(ValueError, match="expected axis -3 of input shape to have value 3"):
        conv(Input((4, 8, 8)))
    conv1 = Conv1D(2, 3, data_format=CF)
    conv1(Input((3, 8)))
    with pytest.raises(ValueError, match="expected axis -2 of input shape to have value 3"):
        conv1(Input((4, 8)))


def test_unknown_channels_and_wrong_ranks():
    with pytest.raises(ValueError, match="The channel dimension of the inputs should be defined"):
        Conv2D(2, 3, data_format=CF)(Input((None, 8, 8)))
    with pytest.raises(ValueError, match="The channel dimension of the inputs should be defined"):
        SeparableConv2D(2, 3)(Input((8, 8, None)))
    with pytest.raises(ValueError, match="expected min_ndim=3, found ndim=2"):
        Conv1D(2, 3)(Input((8,)))
    with pytest.raises(ValueError, match=r"takes rank-3 input \(batch, channels, width\)"):
        Conv1D(2, 3, data_format=CF)(Input((2, 8, 8)))
    with pytest.raises(ValueError, match="rank 4"):
        Conv2DTranspose(2, 3)(Input((2, 8, 8, 1)))
    depthwise = DepthwiseConv2D(3)
    depthwise(Input((8, 8, 2)))
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=5"):
        depthwise(Input((2, 8, 8, 2)))


def test_too_small_inputs_name_the_layer():
    with pytest.raises(ValueError, match=r"Layer conv1d \(Conv1D\) cannot be applied to input "
                                         r"shape \(None, 2, 1\)"):
        Conv1D(2, 3)(Input((2, 1)))
    with pytest.raises(ValueError, match=r"Layer depthwise_conv2d \(DepthwiseConv2D\).*width"):
        DepthwiseConv2D((1, 5), data_format=CF)(Input((1, 8, 4)))
    # 'causal' pads the front, so a short sequence is fine.
    assert Conv1D(2, 3, padding="causal")(Input((2, 1))).shape == (None, 2, 2)


# ---------------------------------------------------------------------------
# Models: gradients reach earlier layers; summaries

def test_chain_of_every_layer_trains_like_its_float64_finite_differences(rng):
    # NCHW through every layer, in float64, against central differences.
    inputs = Input((2, 9, 9), dtype="float64")
    x = Conv2D(4, 3, groups=2, padding="same", data_format=CF, activation="tanh",
               dtype="float64")(inputs)
    x = DepthwiseConv2D(3, depth_multiplier=2, strides=2, data_format=CF,
                        activation="sigmoid", dtype="float64")(x)
    x = SeparableConv2D(3, 3, padding="same", data_format=CF, dtype="float64")(x)
    x = Conv2DTranspose(2, 3, strides=2, output_padding=1, data_format=CF,
                        activation="softplus", dtype="float64")(x)
    model = Model(inputs, Flatten(dtype="float64")(x))
    model.set_weights(random_like(rng, model.get_weights()))
    data = rng.standard_normal((2, 2, 9, 9))
    g = rng.standard_normal(model.forward(data).shape)
    grads, (dx,) = model.backward(g, input_gradients=True)

    def loss():
        return float(np.sum(model(data) * g))

    eps = 1e-6
    for variable, grad in zip(model.trainable_weights, grads):
        values = variable.numpy()
        for index in [tuple(rng.integers(0, d) for d in values.shape) for _ in range(3)]:
            saved = values[index]
            values[index] = saved + eps
            up = loss()
            values[index] = saved - eps
            down = loss()
            values[index] = saved
            assert abs((up - down) / (2 * eps) - grad[index]) <= 1e-6 * max(1, abs(grad[index]))
    flat = data.reshape(-1)
    for i in rng.integers(0, flat.size, 5):
        saved = flat[i]
        flat[i] = saved + eps
        up = loss()
        flat[i] = saved - eps
        down = loss()
        flat[i] = saved
        assert abs((up - down) / (2 * eps) - dx.reshape(-1)[i]) <= 1e-6


def test_fit_runs_through_the_conv_family(rng):
    model = Sequential([Conv1D(4, 3, padding="causal", activation="relu", input_shape=(12, 2)),
                        Conv1D(4, 3, strides=2, groups=2), Flatten()])
    model.compile("sgd", "mse")
    x = rng.standard_normal((16, 12, 2)).astype(np.float32)
    y = rng.standard_normal((16, 20)).astype(np.float32)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


def _row(name, shape, params):
    """One sequential-layout summary row by TF 2.4's print_row (positions 29, 55, 65)."""
    line = name[:29]
    line = line + " " * (29 - len(line))
    line = (line[:-1] + " " + shape)[:55]
    line = line + " " * (55 - len(line))
    line = (line[:-1] + " " + str(params))[:65]
    return line + " " * (65 - len(line))


def test_summary_rows_for_the_conv_family():
    inputs = Input((16, 16, 3))
    x = Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = DepthwiseConv2D(3, depth_multiplier=2)(x)
    x = SeparableConv2D(12, 3, strides=2, padding="same")(x)
    x = Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    x = Conv2D(6, 1, groups=2)(x)
    x = Conv2D(2, 3, data_format=CF)(x)   # reads (None, 14, 14, 6) as NCHW: 14 channels
    model = Model(inputs, x)
    rule, double = "_" * 65, "=" * 65
    lines = []
    model.summary(print_fn=lines.append)
    # params: 3*3*3*8+8; 3*3*8*2+16; 3*3*16 + 16*12 + 12; 3*3*4*12+4; 1*1*2*6+6; 3*3*14*2+2
    assert lines == [
        'Model: "model"', rule,
        "Layer (type)                 Output Shape              Param #   ", double,
        "input_1 (InputLayer)         [(None, 16, 16, 3)]       0         ", rule,
        "conv2d (Conv2D)              (None, 16, 16, 8)         224       ", rule,
        "depthwise_conv2d (DepthwiseC (None, 14, 14, 16)        160       ", rule,
        "separable_conv2d (SeparableC (None, 7, 7, 12)          348       ", rule,
        "conv2d_transpose (Conv2DTran (None, 14, 14, 4)         436       ", rule,
        "conv2d_1 (Conv2D)            (None, 14, 14, 6)         18        ", rule,
        "conv2d_2 (Conv2D)            (None, 2, 12, 4)          254       ", double,
        "Total params: 1,440", "Trainable params: 1,440", "Non-trainable params: 0", rule,
    ]
    assert lines[8] == _row("depthwise_conv2d (DepthwiseConv2D)", "(None, 14, 14, 16)", 160)


def test_summary_rows_for_a_sequential_1d_stack():
    model = Sequential([Conv1D(8, 5, padding="causal", activation="relu", input_shape=(20, 16)),
                        Conv1D(4, 3, strides=2, groups=2, data_format="channels_last")])
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[4:9] == [
        "conv1d (Conv1D)              (None, 20, 8)             648       ", "_" * 65,
        "conv1d_1 (Conv1D)            (None, 9, 4)              52        ", "=" * 65,
        "Total params: 700",
    ]


def test_macs_of_the_conv_family():
    inputs = Input((16, 16, 3))
    x = Conv2D(8, 3, padding="same")(inputs)                  # 16*16 * 8 * 9 * 3
    x = DepthwiseConv2D(3, depth_multiplier=2)(x)             # 14*14 * 16 * 9
    x = SeparableConv2D(12, 3, strides=2, padding="same")(x)  # 7*7 * 16 * (9 + 12)
    x = Conv2DTranspose(4, 3, strides=2, padding="same")(x)   # 7*7 * 12 * 9 * 4
    x = Conv2D(6, 1, groups=2)(x)                             # 14*14 * 6 * 1 * 2
    x = Conv2D(2, 3, data_format=CF)(x)                       # 12*4 * 2 * 9 * 14
    assert Model(inputs, x).count_macs() == (55296 + 28224 + 16464 + 21168 + 2352 + 12096)
    sequence = Input((20, 4))
    assert Model(sequence, Conv1D(6, 5, groups=2, padding="causal")(sequence)).count_macs() \
        == 20 * 6 * 5 * 2
    assert Conv2D(2, 3).count_macs((None, None, 8, 1), (None, None, 6, 2)) is None
