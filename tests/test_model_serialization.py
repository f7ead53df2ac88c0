"""Architectures as configs: every layer's get_config/from_config (in both
Keras dialects), models' get_config/from_config, to_json/model_from_json,
clone_model, and the serialized forms of optimizers, losses, metrics,
initializers, regularizers, constraints and schedules."""
from __future__ import annotations

import json

import numpy as np
import pytest

import fastconv.layers as L
from fastconv import backend, constraints, initializers, losses, metrics, optimizers
from fastconv import regularizers
from fastconv.layers.base import Layer
from fastconv.models import Model, Sequential, clone_model, model_from_config, model_from_json
from fastconv.models import serialization
from fastconv.models.config_dialects import KERAS3, layer_classes
from fastconv.optimizers import schedules

from saving_models import BUILDERS, inputs_for, random_weights


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


class Scale(Layer):
    """A layer of the user's: ``x * factor``."""

    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        return inputs * np.float32(self.factor), None

    def backward(self, d_outputs, cache, compute_dx=True):
        return d_outputs * np.float32(self.factor), []

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


# One instance of every layer fastconv has, with arguments off their defaults.
FACTORIES = {
    "Conv1D": lambda: L.Conv1D(3, 5, strides=2, padding="causal", activation="relu"),
    "Conv2D": lambda: L.Conv2D(4, (3, 2), padding="same", dilation_rate=2, groups=2,
                               kernel_regularizer=regularizers.l2(1e-3),
                               bias_constraint=constraints.MaxNorm(2.0),
                               kernel_initializer=initializers.HeNormal(seed=3)),
    "Conv2DTranspose": lambda: L.Conv2DTranspose(2, 3, strides=2, output_padding=1),
    "DepthwiseConv2D": lambda: L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False),
    "SeparableConv2D": lambda: L.SeparableConv2D(3, 3, depth_multiplier=2,
                                                 activation="sigmoid"),
    "Dense": lambda: L.Dense(5, activation="softmax", kernel_initializer="he_uniform",
                             input_shape=(7,)),
    "Flatten": lambda: L.Flatten(data_format="channels_first"),
    "Activation": lambda: L.Activation("elu"),
    "Lambda": lambda: L.Lambda(lambda x, k=3.0: x * k, output_shape=(4,)),
    "Embedding": lambda: L.Embedding(10, 3, input_length=6),
    "InputLayer": lambda: L.InputLayer((5, 2), dtype="float64", name="in"),
    "Add": L.Add, "Subtract": L.Subtract, "Multiply": L.Multiply, "Average": L.Average,
    "Maximum": L.Maximum, "Minimum": L.Minimum,
    "Concatenate": lambda: L.Concatenate(axis=1),
    "MaxPooling1D": lambda: L.MaxPooling1D(3, strides=1, padding="same"),
    "MaxPooling2D": lambda: L.MaxPooling2D((2, 3), data_format="channels_first"),
    "AveragePooling1D": lambda: L.AveragePooling1D(2),
    "AveragePooling2D": lambda: L.AveragePooling2D(3, strides=2, padding="same"),
    "GlobalAveragePooling1D": lambda: L.GlobalAveragePooling1D(keepdims=True),
    "GlobalAveragePooling2D": lambda: L.GlobalAveragePooling2D(),
    "GlobalMaxPooling1D": lambda: L.GlobalMaxPooling1D(),
    "GlobalMaxPooling2D": lambda: L.GlobalMaxPooling2D(data_format="channels_first"),
    "ZeroPadding2D": lambda: L.ZeroPadding2D(((1, 2), (3, 4))),
    "Cropping2D": lambda: L.Cropping2D(((1, 0), (0, 2))),
    "UpSampling2D": lambda: L.UpSampling2D((2, 3), interpolation="bilinear"),
    "Reshape": lambda: L.Reshape((3, -1)),
    "Permute": lambda: L.Permute((2, 1)),
    "Dropout": lambda: L.Dropout(0.25, noise_shape=(None, 1), seed=4),
    "SpatialDropout1D": lambda: L.SpatialDropout1D(0.3),
    "SpatialDropout2D": lambda: L.SpatialDropout2D(0.3, data_format="channels_first"),
    "SpatialDropout3D": lambda: L.SpatialDropout3D(0.3),
    "GaussianNoise": lambda: L.GaussianNoise(0.2),
    "GaussianDropout": lambda: L.GaussianDropout(0.2),
    "BatchNormalization": lambda: L.BatchNormalization(axis=1, momentum=0.9, center=False,
                                                       gamma_regularizer="l1"),
    "ReLU": lambda: L.ReLU(max_value=4.0, negative_slope=0.2, threshold=0.1),
    "LeakyReLU": lambda: L.LeakyReLU(0.05),
    "PReLU": lambda: L.PReLU(alpha_initializer="ones", shared_axes=[1]),
    "ELU": lambda: L.ELU(0.7),
    "Softmax": lambda: L.Softmax(axis=1),
    # preprocessing and augmentation
    "Rescaling": lambda: getattr(L, "Rescaling")(1 / 255.0, offset=-1.0),
    "Resizing": lambda: getattr(L, "Resizing")(4, 5, interpolation="nearest"),
    "CenterCrop": lambda: getattr(L, "CenterCrop")(3, 4),
    "Normalization": lambda: getattr(L, "Normalization")(axis=-1),
    "RandomFlip": lambda: getattr(L, "RandomFlip")("horizontal", seed=1),
    "RandomRotation": lambda: getattr(L, "RandomRotation")(0.2, fill_mode="constant"),
    "RandomZoom": lambda: getattr(L, "RandomZoom")(0.1, 0.2),
    "RandomTranslation": lambda: getattr(L, "RandomTranslation")(0.1, 0.2),
    "RandomContrast": lambda: getattr(L, "RandomContrast")(0.3),
    "RandomCrop": lambda: getattr(L, "RandomCrop")(3, 3),
}


def _exported_layer_classes():
    return sorted({cls.__name__ for name, cls in layer_classes().items()
                   if not issubclass(cls, Model)})


def test_every_layer_class_of_fastconv_layers_has_a_config_test():
    missing = sorted(set(_exported_layer_classes()) - set(FACTORIES))
    assert not missing, f"add an instance of {missing} to FACTORIES"


def _json(value):
    return json.loads(json.dumps(value))


def _comparable(config):
    """A Lambda's bytecode is not byte-stable across marshal calls; compare the rest."""
    return {k: v for k, v in config.items() if k != "function"}


def _comparable_layers(model_config):
    return [{**entry, "config": _comparable(entry["config"])}
            for entry in _json(model_config)["layers"]]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_layer_round_trips_through_its_config(name):
    if name not in _exported_layer_classes():
        pytest.skip(f"{name} is not in this fastconv")
    layer = FACTORIES[name]()
    config = _json(layer.get_config())
    clone = type(layer).from_config(config)
    assert type(clone) is type(layer)
    assert _comparable(_json(clone.get_config())) == _comparable(config)
    # ...and through both dialects of a serialized layer.
    for dialect in ("keras2", KERAS3):
        entry = _json(serialization.serialize_layer(layer, dialect))
        rebuilt = serialization.deserialize_layer(entry)
        expected = {k: v for k, v in config.items()
                    if dialect == "keras2" or name == "InputLayer" or k != "batch_input_shape"}
        if dialect == KERAS3 and name == "Embedding":
            expected["input_length"] = None  # Keras 3's Embedding has no input_length
            rebuilt_config = {**_json(rebuilt.get_config()), "input_length": None}
        else:
            rebuilt_config = _json(rebuilt.get_config())
        if dialect == KERAS3 and name != "InputLayer":
            rebuilt_config.pop("batch_input_shape", None)
        assert _comparable(rebuilt_config) == _comparable(expected), dialect


def test_a_lambda_round_trip_computes_the_same():
    layer = FACTORIES["Lambda"]()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    for dialect in ("keras2", KERAS3):
        rebuilt = serialization.deserialize_layer(_json(serialization.serialize_layer(layer,
                                                                                     dialect)))
        np.testing.assert_array_equal(rebuilt(x), layer(x))


def test_dense_serializes_its_initializers_as_keras_does():
    config = L.Dense(2, kernel_initializer=initializers.Constant(0.5)).get_config()
    assert config["kernel_initializer"] == {"class_name": "Constant", "config": {"value": 0.5}}
    assert config["bias_initializer"] == {"class_name": "Zeros", "config": {}}


# ----------------------------------------------------------------------------
# Models

SEED_CNN_TF24 = {
    "class_name": "Functional", "keras_version": "2.4.0", "backend": "tensorflow",
    "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "config": {
            "batch_input_shape": [None, 28, 28, 1], "dtype": "float32", "sparse": False,
            "ragged": False, "name": "input_1"}, "name": "input_1", "inbound_nodes": []},
        {"class_name": "Conv2D", "config": {
            "name": "conv2d", "trainable": True, "dtype": "float32", "filters": 32,
            "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
            "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
            "activation": "relu", "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None},
         "name": "conv2d", "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {"class_name": "MaxPooling2D", "config": {
            "name": "max_pooling2d", "trainable": True, "dtype": "float32",
            "pool_size": [2, 2], "padding": "valid", "strides": [2, 2],
            "data_format": "channels_last"},
         "name": "max_pooling2d", "inbound_nodes": [[["conv2d", 0, 0, {}]]]},
        {"class_name": "Flatten", "config": {
            "name": "flatten", "trainable": True, "dtype": "float32",
            "data_format": "channels_last"},
         "name": "flatten", "inbound_nodes": [[["max_pooling2d", 0, 0, {}]]]},
        {"class_name": "Dense", "config": {
            "name": "dense", "trainable": True, "dtype": "float32", "units": 10,
            "activation": "softmax", "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None},
         "name": "dense", "inbound_nodes": [[["flatten", 0, 0, {}]]]}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}


def seed_cnn():
    inputs = L.Input(shape=(28, 28, 1))
    x = L.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = L.Flatten()(L.MaxPooling2D(2)(x))
    return Model(inputs, L.Dense(10, activation="softmax")(x))


def test_to_json_is_tf24s_json():
    assert json.loads(seed_cnn().to_json()) == SEED_CNN_TF24


def test_tf24_json_with_a_nested_sequential_loads():
    # tf.keras 2.4 numbers a nested model's first call 1: its node 0 links its
    # own input to its output and is never saved.
    dense = {"name": "dense", "trainable": True, "dtype": "float32", "units": 4,
             "activation": "relu", "use_bias": True,
             "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
             "bias_initializer": {"class_name": "Zeros", "config": {}},
             "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
             "kernel_constraint": None, "bias_constraint": None}
    text = json.dumps({"class_name": "Functional", "config": {"name": "outer", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3],
                                                "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "input_1"},
         "name": "input_1", "inbound_nodes": []},
        {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
            {"class_name": "InputLayer", "config": {
                "batch_input_shape": [None, 3], "dtype": "float32", "sparse": False,
                "ragged": False, "name": "dense_input"}},
            {"class_name": "Dense", "config": {**dense, "batch_input_shape": [None, 3]}}]},
         "name": "sequential", "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {"class_name": "Dense", "config": {**dense, "name": "dense_1", "units": 2},
         "name": "dense_1", "inbound_nodes": [[["sequential", 1, 0, {}]]]}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense_1", 0, 0]]}})
    model = model_from_json(text)
    assert [layer.name for layer in model.layers] == ["input_1", "sequential", "dense_1"]
    assert model.output_shape == (None, 2)
    assert json.loads(model.to_json())["config"] == json.loads(text)["config"]


def _same_predictions(a, b, x):
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(b.predict(x), a.predict(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_models_of_every_layer_round_trip_through_json_and_config(name):
    model = BUILDERS[name](L, Model, L.Input, Sequential)
    model.set_weights(random_weights([(v.name, v.numpy()) for v in model.weights]))
    x = inputs_for(name)
    for rebuilt in (model_from_json(model.to_json()), Model.from_config(model.get_config()),
                    model_from_config(_json(serialization.serialize_model(model, KERAS3)))):
        assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
        assert _comparable_layers(rebuilt.get_config()) == _comparable_layers(model.get_config())
        _same_predictions(model, rebuilt, x)


def test_sequential_config_round_trips_built_or_not():
    built = Sequential([L.Dense(3, input_shape=(4,)), L.ReLU()], name="stack")
    config = built.get_config()
    assert config["name"] == "stack"
    assert [entry["class_name"] for entry in config["layers"]] == ["InputLayer", "Dense", "ReLU"]
    clone = Sequential.from_config(config)
    assert clone.built and clone.input_shape == (None, 4)
    _same_predictions(built, clone, np.ones((2, 4), np.float32))
    lazy = Sequential([L.Dense(3), L.Dense(1)])
    rebuilt = Sequential.from_config(lazy.get_config())
    assert not rebuilt.built and [type(layer) for layer in rebuilt.layers] == [L.Dense, L.Dense]


def test_multiple_inputs_outputs_and_training_flags_survive_the_config():
    a, b = L.Input((3,), name="a"), L.Input((3,), name="b")
    dropped = L.Dropout(0.5)(a, training=False)
    out1 = L.Dense(2, name="o1")(L.Concatenate()([dropped, b]))
    out2 = L.Dense(1, name="o2")(b)
    model = Model([a, b], [out1, out2])
    config = model.get_config()
    assert config["layers"][1]["inbound_nodes"] == [[["a", 0, 0, {"training": False}]]]
    for rebuilt in (Model.from_config(config),
                    model_from_config(_json(serialization.serialize_model(model, KERAS3)))):
        assert rebuilt.input_names == ["a", "b"] and rebuilt.output_names == ["o1", "o2"]
        node = rebuilt.get_layer("dropout")._inbound_nodes[0]
        assert node.training is False
        x = [np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32)]
        rebuilt.set_weights(model.get_weights())
        for got, expected in zip(rebuilt.predict(x), model.predict(x)):
            np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_custom_layers_need_custom_objects():
    inputs = L.Input((3,))
    model = Model(inputs, Scale(3.0, name="scale")(L.Dense(2)(inputs)))
    text = model.to_json()
    with pytest.raises(ValueError, match=r"Unknown layer class 'Scale'.*custom_objects="):
        model_from_json(text)
    rebuilt = model_from_json(text, custom_objects={"Scale": Scale})
    assert rebuilt.get_layer("scale").factor == 3.0
    _same_predictions(model, rebuilt, np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="must be a subclass of fastconv.layers.Layer"):
        model_from_json(text, custom_objects={"Scale": object})


def test_unknown_classes_and_keys_are_errors_that_name_them():
    config = seed_cnn().get_config()
    config["layers"][1]["class_name"] = "Conv3D"
    with pytest.raises(ValueError, match="Unknown layer class 'Conv3D'.*layer 'conv2d'"):
        Model.from_config(config)
    config = seed_cnn().get_config()
    config["layers"][1]["config"]["kernel_sise"] = 3
    with pytest.raises(ValueError, match=r"'conv2d_1' \(Conv2D\).*\['kernel_sise'\]"):
        Model.from_config(config)
    config = seed_cnn().get_config()
    config["extra"] = 1
    with pytest.raises(ValueError, match=r"keys fastconv does not know: \['extra'\]"):
        Model.from_config(config)
    config = seed_cnn().get_config()
    config["layers"][2]["inbound_nodes"] = [[["nowhere", 0, 0, {}]]]
    with pytest.raises(ValueError, match="refers to layer 'nowhere'"):
        Model.from_config(config)
    config = seed_cnn().get_config()
    config["layers"][2]["inbound_nodes"] = [[["conv2d_3", 0, 0, {"mask": [1]}]]]
    with pytest.raises(ValueError, match="no masking"):
        Model.from_config(config)
    with pytest.raises(ValueError, match="not a JSON model config"):
        model_from_json("{not json")


def test_keras3_layer_arguments_are_translated_and_inert_extras_dropped():
    entry = {"module": "keras.layers", "class_name": "LeakyReLU", "registered_name": None,
             "config": {"name": "lr", "trainable": True, "negative_slope": 0.1,
                        "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                  "config": {"name": "float32"}, "registered_name": None}}}
    assert serialization.deserialize_layer(entry).alpha == pytest.approx(0.1)
    dense = {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "config": {"name": "d", "units": 2, "quantization_config": None,
                        "kernel_initializer": {"module": "keras.initializers",
                                               "class_name": "GlorotUniform",
                                               "config": {"seed": 1, "input_axes": None,
                                                          "output_axes": None},
                                               "registered_name": None}}}
    assert serialization.deserialize_layer(dense).units == 2
    dense["config"]["quantization_config"] = {"mode": "int8"}
    with pytest.raises(ValueError, match="quantization_config"):
        serialization.deserialize_layer(dense)
    policy = {**entry, "config": {**entry["config"], "dtype": {
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"},
        "registered_name": None}}}
    with pytest.raises(ValueError, match="mixed_float16"):
        serialization.deserialize_layer(policy)


class Net(Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = L.Dense(units)

    def call(self, inputs, training=None):
        return self.dense(inputs)


class ConfigurableNet(Net):
    def get_config(self):
        return {"units": self.units, "name": self.name}


def test_subclassed_models_follow_keras():
    net = Net()
    net.build((None, 4))
    with pytest.raises(NotImplementedError, match="subclassed model"):
        net.get_config()
    with pytest.raises(NotImplementedError, match="subclassed model"):
        net.to_json()
    with pytest.raises(ValueError, match="subclass model"):
        clone_model(net)
    configurable = ConfigurableNet(units=5, name="mine")
    rebuilt = ConfigurableNet.from_config(configurable.get_config())
    assert isinstance(rebuilt, ConfigurableNet) and rebuilt.units == 5 and rebuilt.name == "mine"


# ----------------------------------------------------------------------------
# clone_model

def test_clone_model_makes_new_weights_and_the_same_architecture():
    backend.set_random_seed(0)
    model = BUILDERS["nested"](L, Model, L.Input, Sequential)
    clone = clone_model(model)
    assert clone is not model and clone.name == model.name
    assert _json(clone.get_config()) == _json(model.get_config())
    assert all(a is not b for a, b in zip(clone.layers, model.layers))
    assert not all(np.array_equal(a, b) for a, b in zip(clone.get_weights(), model.get_weights()))
    # the model called twice inside is cloned once and called twice
    assert len(clone.get_layer("func_block")._inbound_nodes) == 2
    _same_predictions(model, clone, inputs_for("nested"))


def test_clone_model_with_input_tensors_and_a_clone_function():
    model = seed_cnn()
    new_input = L.Input((28, 28, 1), name="new_input")
    seen = []

    def clone_function(layer):
        seen.append(layer.name)
        return type(layer).from_config({**layer.get_config(), "name": layer.name + "_c"})

    clone = clone_model(model, input_tensors=new_input, clone_function=clone_function)
    assert clone.input_names == ["new_input"]
    assert seen == ["conv2d", "max_pooling2d", "flatten", "dense"]
    assert [layer.name for layer in clone.layers][1:] == [n + "_c" for n in seen]
    with pytest.raises(TypeError, match="made by fastconv.layers.Input"):
        clone_model(model, input_tensors=L.Dense(2)(L.Input((3,))))
    stack = Sequential([L.Dense(3, input_shape=(2,)), L.Dense(1)], name="stack")
    cloned_stack = clone_model(stack)
    assert isinstance(cloned_stack, Sequential) and cloned_stack.input_shape == (None, 2)
    _same_predictions(stack, cloned_stack, np.ones((4, 2), np.float32))


# ----------------------------------------------------------------------------
# The other configurable objects

OPTIMIZERS = [optimizers.SGD(0.1, momentum=0.9, nesterov=True, clipnorm=1.0),
              optimizers.Adam(schedules.ExponentialDecay(0.1, 10, 0.5), amsgrad=True),
              optimizers.RMSprop(rho=0.8, momentum=0.1, centered=True),
              optimizers.Adagrad(initial_accumulator_value=0.2), optimizers.Adadelta(rho=0.9),
              optimizers.Adamax(beta_1=0.8), optimizers.Nadam(schedule_decay=0.01)]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: type(o).__name__)
def test_optimizers_round_trip(optimizer):
    rebuilt = optimizers.deserialize(_json(optimizers.serialize(optimizer)))
    assert type(rebuilt) is type(optimizer) and rebuilt.get_config() == optimizer.get_config()


@pytest.mark.parametrize("loss", [
    "sparse_categorical_crossentropy", losses.CategoricalCrossentropy(label_smoothing=0.1),
    losses.BinaryCrossentropy(from_logits=True), losses.Huber(delta=2.0),
    losses.MeanSquaredError(), losses.CosineSimilarity(), losses.KLDivergence(), losses.Hinge()],
    ids=str)
def test_losses_round_trip(loss):
    serialized = _json(losses.serialize(loss))
    rebuilt = losses.deserialize(serialized)
    expected = losses.get(loss)
    assert type(rebuilt) is type(expected) and rebuilt.get_config() == expected.get_config()
    if isinstance(serialized, dict):  # tf.keras 2.4's and Keras 3's extra keys
        keras_form = {**serialized, "config": {**serialized["config"], "reduction": "auto"}}
        assert losses.deserialize(keras_form).get_config() == expected.get_config()
        with pytest.raises(ValueError, match="reduction='sum'"):
            losses.deserialize({**serialized, "config": {**serialized["config"],
                                                         "reduction": "sum"}})


def test_metrics_round_trip():
    for metric in ("accuracy", "mae", metrics.Precision(thresholds=[0.3, 0.7], name="p"),
                   metrics.AUC(num_thresholds=50, curve="PR", name="auc"),
                   metrics.TopKCategoricalAccuracy(k=3, name="top3")):
        resolved = metrics.get(metric)
        rebuilt = metrics.get(metrics.deserialize(_json(metrics.serialize(resolved))))
        assert type(rebuilt) is type(resolved) and rebuilt.get_config() == resolved.get_config()
    tf24 = {"class_name": "MeanMetricWrapper",
            "config": {"name": "acc", "dtype": "float32", "fn": "categorical_accuracy"}}
    assert metrics.deserialize(tf24) == "acc"


@pytest.mark.parametrize("module, value", [
    (initializers, initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=1)),
    (initializers, initializers.RandomNormal(0.5, 2.0)), (initializers, initializers.Constant(3)),
    (regularizers, regularizers.L1L2(0.1, 0.2)), (regularizers, regularizers.L2(0.3)),
    (constraints, constraints.MinMaxNorm(0.1, 2.0, 0.5, axis=1)),
    (constraints, constraints.UnitNorm(axis=0)), (constraints, constraints.NonNeg()),
    (schedules, schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])),
    (schedules, schedules.CosineDecayRestarts(0.1, 5, alpha=0.1))], ids=repr)
def test_initializers_regularizers_constraints_and_schedules_round_trip(module, value):
    rebuilt = module.deserialize(_json(module.serialize(value)))
    assert type(rebuilt) is type(value) and rebuilt.get_config() == value.get_config()
