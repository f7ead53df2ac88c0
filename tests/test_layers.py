"""Layers: names, symbolic tensors, shape inference, Keras errors, per-layer
forward/backward, activations and initializers."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from fastconv import activations, backend, initializers, ops
from fastconv.layers import (Activation, Add, Concatenate, Conv2D, Dense, Flatten, Input,
                             InputLayer, KerasTensor, Layer, MaxPool2D, MaxPooling2D)
from fastconv.models import Model, Sequential


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


# ---------------------------------------------------------------------------
# Names and clear_session

def test_automatic_names_count_per_class_from_zero():
    names = [Conv2D(1, 3).name, Conv2D(1, 3).name, MaxPooling2D().name, MaxPool2D().name,
             Dense(2).name, Flatten().name, Activation("relu").name, Dense(1).name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "max_pooling2d_1", "dense",
                     "flatten", "activation", "dense_1"]


def test_maxpool2d_is_an_alias():
    assert MaxPool2D is MaxPooling2D


def test_inputs_count_from_one_with_their_own_counter():
    Conv2D(1, 3)
    first, second = Input((4,)), Input((4,))
    assert first.name == "input_1" and second.name == "input_2"
    assert first.node.layer.name == "input_1"


def test_user_names_do_not_advance_the_counter():
    assert Dense(2, name="dense").name == "dense"
    assert Dense(2).name == "dense"
    assert Dense(2).name == "dense_1"


def test_model_and_sequential_names():
    inputs = Input((3,))
    outputs = Dense(2)(inputs)
    assert [Model(inputs, outputs).name, Model(inputs, outputs).name] == ["model", "model_1"]
    assert [Sequential().name, Sequential().name] == ["sequential", "sequential_1"]
    assert Model(inputs, outputs, name="mine").name == "mine"


def test_clear_session_resets_every_counter():
    Conv2D(1, 3), Input((2,)), Sequential()
    backend.clear_session()
    assert Conv2D(1, 3).name == "conv2d"
    assert Input((2,)).name == "input_1"
    assert Sequential().name == "sequential"


def test_snake_case_rule():
    assert [backend.to_snake_case(n) for n in
            ("Conv2D", "MaxPooling2D", "BatchNormalization", "ReLU", "LeakyReLU", "LSTM",
             "Conv2DTranspose", "GlobalAveragePooling2D")] == [
        "conv2d", "max_pooling2d", "batch_normalization", "re_lu", "leaky_re_lu", "lstm",
        "conv2d_transpose", "global_average_pooling2d"]


def test_custom_layer_subclass_name():
    class MyLayer(Layer):
        pass
    assert MyLayer().name == "my_layer"


# ---------------------------------------------------------------------------
# Symbolic tensors

def test_input_tensor_prints_like_tf24():
    t = Input(shape=(28, 28, 1))
    assert isinstance(t, KerasTensor)
    assert str(t) == ("KerasTensor(type_spec=TensorSpec(shape=(None, 28, 28, 1), "
                      "dtype=tf.float32, name='input_1'), name='input_1', "
                      "description=\"created by layer 'input_1'\")")
    assert repr(t) == ("<KerasTensor: shape=(None, 28, 28, 1) dtype=float32 "
                       "(created by layer 'input_1')>")


def test_shape_and_dtype_forms():
    t = Input(shape=(5, 5, 1))
    assert str(t.shape) == "(None, 5, 5, 1)"
    assert repr(t.shape) == "TensorShape([None, 5, 5, 1])"
    assert t.shape == (None, 5, 5, 1) and t.shape == [None, 5, 5, 1]
    assert t.shape[0] is None and t.shape[-1] == 1 and t.shape.as_list() == [None, 5, 5, 1]
    assert repr(t.dtype) == "tf.float32" and t.dtype == "float32" and t.dtype == np.float32
    assert str(Input(shape=5).shape) == "(None, 5)"
    assert str(Dense(5)(Input(shape=(3,))).shape) == "(None, 5)"
    assert str(Flatten()(Input((2, 3))).shape) == "(None, 6)"


def test_input_batch_size_and_dtype():
    t = Input((3,), batch_size=8, dtype="float64", name="x")
    assert t.shape == (8, 3) and t.dtype == np.float64 and t.name == "x"


def test_symbolic_tensor_has_no_values():
    t = Input((3,))
    with pytest.raises(TypeError):
        len(t)
    with pytest.raises(TypeError):
        np.asarray(t)
    with pytest.raises(TypeError):
        hash(t)


@pytest.mark.parametrize("make, expected", [
    (lambda x: Conv2D(2, 3, activation="relu")(x), "conv2d/Relu:0"),
    (lambda x: Conv2D(2, 3)(x), "conv2d/BiasAdd:0"),
    (lambda x: Conv2D(2, 3, activation="linear")(x), "conv2d/BiasAdd:0"),
    (lambda x: Conv2D(2, 3, use_bias=False)(x), "conv2d/Conv2D:0"),
    (lambda x: Conv2D(2, 3, activation="sigmoid")(x), "conv2d/Sigmoid:0"),
    (lambda x: MaxPooling2D()(x), "max_pooling2d/MaxPool:0"),
    (lambda x: Flatten()(x), "flatten/Reshape:0"),
    (lambda x: Dense(3, activation="softmax")(Flatten()(x)), "dense/Softmax:0"),
    (lambda x: Dense(3)(Flatten()(x)), "dense/BiasAdd:0"),
    (lambda x: Dense(3, use_bias=False)(Flatten()(x)), "dense/MatMul:0"),
    (lambda x: Activation("sigmoid")(x), "activation/Sigmoid:0"),
    (lambda x: Activation("tanh")(x), "activation/Tanh:0"),
    (lambda x: Activation("linear")(x), "Placeholder:0"),
    (lambda x: Add()([x, x]), "add/add:0"),
    (lambda x: Concatenate()([x, x]), "concatenate/concat:0"),
])
def test_output_tensor_op_names(make, expected):
    assert make(Input((6, 6, 1))).name == expected


def test_seed_keras_tensor_line():
    x = Conv2D(filters=4, kernel_size=3, strides=1, padding="same",
               activation="relu")(Input(shape=(28, 28, 1)))
    assert str(x) == ("KerasTensor(type_spec=TensorSpec(shape=(None, 28, 28, 4), "
                      "dtype=tf.float32, name=None), name='conv2d/Relu:0', "
                      "description=\"created by layer 'conv2d'\")")


# ---------------------------------------------------------------------------
# Shape inference

@pytest.mark.parametrize("size, kernel, strides, padding, dilation, expected", [
    (28, 3, 1, "same", 1, 28), (28, 3, 1, "valid", 1, 26), (28, 3, 2, "same", 1, 14),
    (7, 3, 2, "valid", 1, 3), (5, 3, 1, "VALID", 1, 3), (9, 3, 1, "valid", 2, 5),
    (10, (3, 3), (3, 3), "Same", 1, 4),
])
def test_conv_output_shape(size, kernel, strides, padding, dilation, expected):
    y = Conv2D(7, kernel, strides=strides, padding=padding,
               dilation_rate=dilation)(Input((size, size, 2)))
    assert y.shape == (None, expected, expected, 7)


def test_conv_keeps_unknown_spatial_sizes():
    assert Conv2D(3, 3)(Input((None, 10, 2))).shape == (None, None, 8, 3)


def test_pool_shapes():
    x = Input((13, 13, 4))
    assert MaxPooling2D(2)(x).shape == (None, 6, 6, 4)
    assert MaxPooling2D(2, padding="same")(x).shape == (None, 7, 7, 4)
    assert MaxPooling2D((3, 3), strides=1)(x).shape == (None, 11, 11, 4)


def test_dense_on_rank3_multiplies_last_axis():
    y = Dense(3)(Input((5, 4)))
    assert y.shape == (None, 5, 3) and y.name == "dense/BiasAdd:0"


# ---------------------------------------------------------------------------
# Construction errors (Keras' messages where Keras has one)

def test_kernel_size_zero():
    with pytest.raises(ValueError, match=r"The argument `kernel_size` cannot contain 0\(s\). "
                                         r"Received: \(0, 0\)"):
        Conv2D(1, 0)


def test_strides_with_dilation():
    with pytest.raises(ValueError, match=r"`strides > 1` not supported in conjunction with "
                                         r"`dilation_rate > 1`"):
        Conv2D(1, 3, strides=2, dilation_rate=2)


@pytest.mark.parametrize("padding", ["full", "circular"])
def test_unknown_padding(padding):
    with pytest.raises(ValueError, match=f"padding.*{padding}"):
        Conv2D(1, 3, padding=padding)
    with pytest.raises(ValueError, match=f"padding.*{padding}"):
        MaxPooling2D(padding=padding)


def test_causal_padding():
    with pytest.raises(ValueError, match="Causal padding is only supported for `Conv1D`"):
        Conv2D(1, 3, padding="causal")


def test_unknown_activation():
    with pytest.raises(ValueError, match="Unknown activation function: nope"):
        Conv2D(1, 3, activation="nope")
    with pytest.raises(ValueError, match="Unknown activation function: gelu2"):
        Dense(1, activation="gelu2")


def test_unknown_data_format_refused_clearly():
    for layer in (MaxPooling2D, Flatten):
        with pytest.raises(ValueError, match="data_format"):
            layer(data_format="nchw")


def test_flatten_channels_first_moves_channels_last_first():
    """tf.keras 2.4's Flatten(data_format='channels_first') flattens in
    (height, width, channel) order, so one Dense weight serves both layouts."""
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)      # NCHW
    nhwc = x.transpose(0, 2, 3, 1)
    first = Flatten(data_format="channels_first")
    y, cache = first.forward(x)
    np.testing.assert_array_equal(y, nhwc.reshape(2, -1))
    d = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    dx, _ = first.backward(d, cache)
    np.testing.assert_array_equal(dx, d.reshape(nhwc.shape).transpose(0, 3, 1, 2))
    assert first.get_config()["data_format"] == "channels_first"


def test_wrong_rank_messages():
    with pytest.raises(ValueError) as info:
        Conv2D(1, 3)(Input((28, 28)))
    assert str(info.value) == ("Input 0 of layer conv2d is incompatible with the layer: : "
                               "expected min_ndim=4, found ndim=3. Full shape received: "
                               "(None, 28, 28)")
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        MaxPooling2D()(Input((28, 28)))


def test_input_smaller_than_kernel_names_layer_and_shows_arithmetic():
    with pytest.raises(ValueError) as info:
        Conv2D(2, 3)(Input((2, 2, 1)))
    message = str(info.value)
    assert message.startswith("Layer conv2d (Conv2D)")
    assert "floor((2 - 3) / 1) + 1 = 0" in message and "padding='same'" in message
    with pytest.raises(ValueError, match=r"Layer max_pooling2d \(MaxPooling2D\).*floor"):
        MaxPooling2D(3)(Input((2, 2, 1)))


def test_rejected_input_leaves_layer_unbuilt_and_reusable():
    conv = Conv2D(2, 3)
    with pytest.raises(ValueError):
        conv(Input((2, 2, 1)))
    assert not conv.built
    assert conv(Input((5, 5, 1))).shape == (None, 3, 3, 2)


def test_channel_mismatch_on_reuse():
    conv = Conv2D(2, 3)
    conv(Input((5, 5, 1)))
    with pytest.raises(ValueError) as info:
        conv(Input((5, 5, 3)))
    assert str(info.value) == ("Input 0 of layer conv2d is incompatible with the layer: expected "
                               "axis -1 of input shape to have value 1 but received input with "
                               "shape (None, 5, 5, 3)")


def test_dense_needs_known_last_dim():
    with pytest.raises(ValueError, match="The last dimension of the inputs to `Dense` should be "
                                         "defined. Found `None`."):
        Dense(3)(Input((None,)))


def test_conv_needs_known_channels():
    with pytest.raises(ValueError, match="The channel dimension of the inputs should be defined"):
        Conv2D(3, 1)(Input((4, 4, None)))


def test_input_needs_a_shape():
    with pytest.raises(ValueError, match="Please provide to Input either a `shape` or a `tensor`"):
        Input()


def test_unknown_keyword():
    with pytest.raises(TypeError, match="Keyword argument not understood: foo"):
        Conv2D(1, 3, foo=1)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=(3, 3, 3)), dict(kernel_size=-1),
                                    dict(kernel_size="3"), dict(strides=1.5),
                                    dict(filters=0)])
def test_bad_conv_arguments(kwargs):
    args = dict(filters=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError)):
        Conv2D(**args)


def test_unsupported_keras_options_refused():
    from fastconv.layers import BatchNormalization
    with pytest.raises(ValueError, match="renorm"):
        BatchNormalization(renorm=True)


def test_merge_errors():
    a, b = Input((4,)), Input((5,))
    with pytest.raises(ValueError, match="Operands could not be broadcast"):
        Add()([a, b])
    with pytest.raises(ValueError, match="at least 2 inputs"):
        Add()([a])
    with pytest.raises(ValueError, match="should be called on a list of inputs"):
        Add()(a)
    with pytest.raises(ValueError, match="matching shapes except for the concat axis"):
        Concatenate()([Input((2, 3)), Input((4, 3))])
    assert Concatenate(axis=1)([Input((2, 3)), Input((4, 3))]).shape == (None, 6, 3)


# ---------------------------------------------------------------------------
# Weights

def test_weight_layouts_and_order():
    conv = Conv2D(8, (3, 5), name="c")
    conv(Input((10, 10, 4)))
    assert [w.shape for w in conv.weights] == [(3, 5, 4, 8), (8,)]
    assert [w.name for w in conv.weights] == ["c/kernel:0", "c/bias:0"]
    assert all(w.numpy().dtype == np.float32 for w in conv.weights)
    assert conv.count_params() == 3 * 5 * 4 * 8 + 8
    dense = Dense(3)
    dense(Input((4,)))
    assert [w.shape for w in dense.get_weights()] == [(4, 3), (3,)]
    assert Conv2D(2, 3, use_bias=False)(Input((4, 4, 1))).node.layer.count_params() == 18


def test_glorot_uniform_limit_and_zero_bias():
    conv = Conv2D(8, (3, 5), kernel_initializer=initializers.GlorotUniform(seed=1))
    conv(Input((10, 10, 4)))
    limit = np.sqrt(6 / (3 * 5 * 4 + 3 * 5 * 8))  # 0.18257 as in the notes
    kernel = conv.kernel.numpy()
    assert abs(limit - 0.18257) < 1e-5
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    assert abs(kernel.mean()) < 0.02 and abs(kernel.std() - limit / np.sqrt(3)) < 0.01
    assert np.all(conv.bias.numpy() == 0)


def test_seeded_initializers_repeat():
    init = initializers.get({"class_name": "GlorotUniform", "config": {"seed": 3}})
    np.testing.assert_array_equal(init((4, 5)), init((4, 5)))
    backend.set_random_seed(7)
    a = initializers.get("glorot_uniform")((4, 5))
    backend.set_random_seed(7)
    np.testing.assert_array_equal(a, initializers.GlorotUniform()((4, 5)))
    assert initializers.compute_fans((3, 3, 2, 4)) == (18, 36)
    np.testing.assert_array_equal(initializers.get("ones")((2,)), [1, 1])
    np.testing.assert_array_equal(initializers.get("zeros")((2,), dtype="float64"), [0, 0])
    custom = initializers.get(lambda shape, dtype=None: np.full(shape, 2.0, dtype))
    assert Dense(2, kernel_initializer=custom)(Input((3,))).node.layer.kernel.numpy()[0, 0] == 2
    with pytest.raises(ValueError, match="Unknown initializer: nope"):
        initializers.get("nope")


def test_layer_set_weights_errors():
    dense = Dense(3, name="d")
    dense(Input((4,)))
    with pytest.raises(ValueError, match='on layer "d" with a weight list of length 1, but the '
                                         'layer was expecting 2 weights'):
        dense.set_weights([np.zeros((4, 3))])
    with pytest.raises(ValueError, match=r"Layer weight shape \(4, 3\) not compatible with "
                                         r"provided weight shape \(3, 4\)"):
        dense.set_weights([np.zeros((3, 4)), np.zeros(3)])


def test_count_params_before_build():
    with pytest.raises(ValueError, match="isn't built"):
        Dense(3).count_params()


# ---------------------------------------------------------------------------
# Forward and backward of single layers, on arrays

def test_eager_call_on_arrays_builds_and_computes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    conv = Conv2D(4, 3, padding="same", activation="relu")
    y = conv(x)
    expected = ops.conv2d(x, conv.kernel.numpy(), conv.bias.numpy(), padding="same",
                          activation="relu")
    np.testing.assert_array_equal(y, expected)
    with pytest.raises(ValueError, match=r"Layer conv2d_1 \(Conv2D\).*floor"):
        Conv2D(1, 5)(x[:, :3, :3])


def _numeric_input_grad(layer, x, dy, eps=1e-6):
    grad = np.zeros_like(x)
    flat = grad.reshape(-1)
    for i in range(x.size):
        step = np.zeros(x.size)
        step[i] = eps
        plus = layer.call(x + step.reshape(x.shape))
        minus = layer.call(x - step.reshape(x.shape))
        flat[i] = np.sum((plus - minus) * dy) / (2 * eps)
    return grad


@pytest.mark.parametrize("make", [
    lambda: Conv2D(3, 2, strides=2, padding="same", activation="tanh", dtype="float64"),
    lambda: Conv2D(2, 3, dilation_rate=2, activation="sigmoid", dtype="float64"),
    lambda: Conv2D(2, 3, padding="same", activation="relu", dtype="float64"),
    lambda: MaxPooling2D(3, strides=2, padding="same", dtype="float64"),
    lambda: Activation("softmax", dtype="float64"),
    lambda: Activation("swish", dtype="float64"),
    lambda: Activation("elu", dtype="float64"),
    lambda: Flatten(dtype="float64"),
])
def test_layer_input_gradient_matches_finite_differences(make):
    rng = np.random.default_rng(5)
    layer = make()
    x = rng.standard_normal((2, 5, 5, 2))
    with fc.use_backend("numpy"):
        layer(x)  # the first call builds the weights
        y, cache = layer.forward(x)
        dy = rng.standard_normal(y.shape)
        dx, _ = layer.backward(dy, cache)
        numeric = _numeric_input_grad(layer, x, dy)
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-7)


def test_forward_builds_via_call_first():
    layer = Dense(2)
    with pytest.raises(AttributeError):
        layer.forward(np.zeros((1, 3), np.float32))  # not built: no kernel yet
    layer(np.zeros((1, 3), np.float32))
    y, _ = layer.forward(np.ones((1, 3), np.float32))
    np.testing.assert_allclose(y, np.ones((1, 3)) @ layer.kernel.numpy(), rtol=1e-6)


def test_conv_backward_uses_ops_and_skips_dx_when_asked():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    conv = Conv2D(3, 3, activation="relu")
    conv(x)
    y, cache = conv.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, (dk, db) = conv.backward(dy, cache)
    ref_dx, ref_dk, ref_db = ops.conv2d_backward(dy * (y > 0), x, conv.kernel.numpy())
    np.testing.assert_array_equal(dx, ref_dx)
    np.testing.assert_array_equal(dk, ref_dk)
    np.testing.assert_array_equal(db, ref_db)
    no_dx, grads = conv.backward(dy, cache, compute_dx=False)
    assert no_dx is None and len(grads) == 2


def test_dense_rank3_backward_shapes():
    rng = np.random.default_rng(2)
    dense = Dense(3, activation="tanh", dtype="float64")
    x = rng.standard_normal((2, 4, 5))
    with fc.use_backend("numpy"):
        dense(x)
        y, cache = dense.forward(x)
        dx, (dk, db) = dense.backward(np.ones_like(y), cache)
    assert y.shape == (2, 4, 3) and dx.shape == x.shape and dk.shape == (5, 3)
    np.testing.assert_allclose(db, (1 - y ** 2).sum(axis=(0, 1)))


def test_merge_layers_forward_backward():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((2, 3), np.float32)
    add, concat = Add(), Concatenate()
    np.testing.assert_array_equal(add([a, b]), a + b)
    y, cache = concat.forward([a, b])
    assert y.shape == (2, 6)
    pieces, _ = concat.backward(np.arange(12, dtype=np.float32).reshape(2, 6), cache)
    np.testing.assert_array_equal(pieces[0], [[0, 1, 2], [6, 7, 8]])
    np.testing.assert_array_equal(pieces[1], [[3, 4, 5], [9, 10, 11]])


def test_input_layer_direct():
    layer = InputLayer(input_shape=(3,), name="inp")
    assert layer.output.shape == (None, 3) and layer.output_shape == [(None, 3)]
    assert layer.count_params() == 0


# ---------------------------------------------------------------------------
# Activations

@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "linear", "elu",
                                  "selu", "softplus", "softsign", "swish", "exponential",
                                  "hard_sigmoid"])
def test_activation_derivatives_match_finite_differences(name):
    rng = np.random.default_rng(3)
    fn = activations.get(name)
    grad = activations.get_gradient(fn)
    x = rng.standard_normal((3, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep away from relu's kink
    x[np.abs(np.abs(x) - 2.5) < 1e-3] = 1.0  # and hard_sigmoid's
    dy = rng.standard_normal(x.shape)
    analytic = grad(dy, x, fn(x))
    numeric = np.zeros_like(x)
    eps = 1e-6
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = eps
        numeric[idx] = np.sum((fn(x + step) - fn(x - step)) * dy) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_softmax_is_stable_and_on_last_axis():
    x = np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    y = activations.softmax(x)
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    np.testing.assert_allclose(y[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(y.sum(axis=-1), 1, rtol=1e-6)
    with pytest.raises(ValueError, match="1D"):
        activations.softmax(np.zeros(3))


def test_sigmoid_is_stable():
    y = activations.sigmoid(np.array([-1000.0, 0.0, 1000.0], dtype=np.float32))
    np.testing.assert_array_equal(y, np.array([0.0, 0.5, 1.0], dtype=np.float32))
    assert y.dtype == np.float32


def test_activation_get_accepts_none_and_callables():
    assert activations.get(None) is activations.linear
    assert activations.get("relu") is activations.relu
    square = lambda x: x * x  # noqa: E731
    assert activations.get(square) is square
    with pytest.raises(NotImplementedError, match="no derivative"):
        activations.get_gradient(square)
    square.gradient = lambda dy, x, y: 2 * x * dy
    assert activations.get_gradient(square)(1.0, 3.0, 9.0) == 6.0
    with pytest.raises(TypeError):
        activations.get(3)


def test_custom_registered_activation_trains():
    activations.register("cube", lambda x: x ** 3, lambda dy, x, y: 3 * x * x * dy, "Pow")
    layer = Activation("cube", dtype="float64")
    x = np.array([[1.0, -2.0]])
    assert layer(x).tolist() == [[1.0, -8.0]]
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(y), cache)[0], [[3.0, 12.0]])
    assert Activation("cube")(Input((2,))).name == "activation_1/Pow:0"
