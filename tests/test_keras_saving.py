"""Whole models in Keras' files (``.keras``, ``.h5``), Keras' weight layouts
(``.h5``, ``.weights.h5``), training that resumes bitwise from a file, and
both ways with Keras 3 itself (skipped without it).

Hostile and broken files are in test_keras_saving_bad_files.py.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import fastconv.layers as L
from fastconv import backend, callbacks, optimizers
from fastconv.models import Model, Sequential, load_model, save_model

from keras_compare import import_keras, keras_weights, numpy_of
from saving_models import BUILDERS, LAYERS_IN_MODELS, inputs_for, random_weights

FORMATS = (".keras", ".h5")


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def fastconv_model(name):
    model = BUILDERS[name](L, Model, L.Input, Sequential)
    model.set_weights(random_weights([(v.name, v.numpy()) for v in model.weights]))
    return model


def small_classifier(seed=1):
    backend.set_random_seed(seed)
    inputs = L.Input((6, 6, 2))
    x = L.Conv2D(3, 3, activation="relu")(inputs)
    x = L.BatchNormalization()(x)
    return Model(inputs, L.Dense(4, activation="softmax")(L.Flatten()(x)))


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((16, 6, 6, 2)).astype(np.float32), rng.integers(0, 4, 16)


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_the_models_hold_every_layer_keras_also_has():
    from fastconv.models.config_dialects import layer_classes
    names = {cls.__name__ for cls in layer_classes().values()}
    # preprocessing layers are fastconv's own: their configs are tested in
    # test_model_serialization.py
    preprocessing = {"Rescaling", "Resizing", "CenterCrop", "Normalization", "RandomFlip",
                     "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
                     "RandomCrop"}
    assert names - preprocessing - {"Functional", "Sequential"} == LAYERS_IN_MODELS
    built = set()
    for name in BUILDERS:
        model = fastconv_model(name)
        stack = list(model.layers)
        while stack:
            layer = stack.pop()
            built.add(type(layer).__name__)
            if isinstance(layer, Model):
                stack.extend(layer.layers)
    assert LAYERS_IN_MODELS <= built


# ----------------------------------------------------------------------------
# fastconv -> file -> fastconv

@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_layer_survives_a_file(tmp_path, name, ext):
    model = fastconv_model(name)
    path = tmp_path / f"model{ext}"
    model.save(path)
    loaded = load_model(path, safe_mode=False)
    assert type(loaded) is type(model) and loaded.name == model.name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert_same_weights(loaded.get_weights(), model.get_weights())
    x = inputs_for(name)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer is None


@pytest.mark.parametrize("ext", FORMATS)
def test_a_sequential_model_survives_a_file(tmp_path, ext):
    model = Sequential([L.Dense(4, activation="relu", input_shape=(3,)), L.Dropout(0.1),
                        L.Dense(2)], name="stack")
    save_model(model, tmp_path / f"s{ext}")
    loaded = load_model(tmp_path / f"s{ext}")
    assert isinstance(loaded, Sequential) and loaded.name == "stack"
    assert [type(layer) for layer in loaded.layers] == [L.Dense, L.Dropout, L.Dense]
    assert_same_weights(loaded.get_weights(), model.get_weights())


OPTIMIZERS = [optimizers.Adam(learning_rate=0.01), optimizers.Adam(amsgrad=True),
              optimizers.SGD(0.05, momentum=0.9, nesterov=True),
              optimizers.RMSprop(momentum=0.5, centered=True), optimizers.Adagrad(0.05),
              optimizers.Adadelta(1.0), optimizers.Adamax(0.01),
              optimizers.Nadam(0.01), optimizers.Adam(0.01, decay=0.01, clipnorm=1.0),
              optimizers.SGD(optimizers.schedules.ExponentialDecay(0.1, 2, 0.5))]


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS,
                         ids=lambda o: type(o).__name__ + str(sorted(o.get_config().items())))
def test_training_resumes_bitwise_from_a_file(tmp_path, optimizer, ext):
    x, y = batch()
    model = small_classifier()
    model.compile(type(optimizer).from_config(optimizer.get_config()),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    for _ in range(3):
        model.train_on_batch(x, y)
    model.save(tmp_path / f"m{ext}")
    loaded = load_model(tmp_path / f"m{ext}")
    assert type(loaded.optimizer) is type(optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == 3
    assert loaded.metrics_names == model.metrics_names
    assert loaded.train_on_batch(x, y) == model.train_on_batch(x, y)
    assert_same_weights(loaded.get_weights(), model.get_weights())
    assert_same_weights(
        [loaded.optimizer.get_state(loaded.trainable_weights)[k] for k in sorted(
            loaded.optimizer.get_state(loaded.trainable_weights))],
        [model.optimizer.get_state(model.trainable_weights)[k] for k in sorted(
            model.optimizer.get_state(model.trainable_weights))])


@pytest.mark.parametrize("ext", FORMATS)
def test_compile_settings_survive_and_compile_false_skips_them(tmp_path, ext):
    from fastconv import losses, metrics
    model = small_classifier()
    model.compile(optimizers.RMSprop(0.01), losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=["acc", metrics.Precision(thresholds=[0.3, 0.6], name="prec")],
                  weighted_metrics=["acc"], loss_weights=0.5)
    model.save(tmp_path / f"m{ext}")
    loaded = load_model(tmp_path / f"m{ext}")
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.metrics_names == ["loss", "acc", "prec", "weighted_acc"]
    assert loaded._compiled.loss_weight == 0.5
    assert loaded._compiled.metrics[1].get_config() == model._compiled.metrics[1].get_config()
    assert load_model(tmp_path / f"m{ext}", compile=False).optimizer is None
    model.save(tmp_path / f"n{ext}", include_optimizer=False)
    assert load_model(tmp_path / f"n{ext}").optimizer is None


def test_an_optimizer_that_never_stepped_saves_and_loads(tmp_path):
    for ext in FORMATS:
        model = small_classifier()
        model.compile("adam", "sparse_categorical_crossentropy")
        model.save(tmp_path / f"m{ext}")
        loaded = load_model(tmp_path / f"m{ext}")
        assert loaded.optimizer.iterations == 0
        x, y = batch()
        assert loaded.train_on_batch(x, y) == model.train_on_batch(x, y)


def test_the_h5_file_is_tf24s_layout(tmp_path):
    model = small_classifier()
    model.compile(optimizers.Adam(), "sparse_categorical_crossentropy")
    model.train_on_batch(*batch())
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert f.attrs["keras_version"] == "2.4.0" and f.attrs["backend"] == "tensorflow"
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Functional"
        assert config["config"]["layers"][1]["inbound_nodes"] == [[["input_1", 0, 0, {}]]]
        training = json.loads(f.attrs["training_config"])
        assert training["optimizer_config"]["class_name"] == "Adam"
        assert training["loss"] == "sparse_categorical_crossentropy"
        weights = f["model_weights"]
        assert [n.decode() for n in weights.attrs["layer_names"]] == [
            "input_1", "conv2d", "batch_normalization", "flatten", "dense"]
        assert [n.decode() for n in weights["batch_normalization"].attrs["weight_names"]] == [
            "batch_normalization/gamma:0", "batch_normalization/beta:0",
            "batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0"]
        np.testing.assert_array_equal(weights["conv2d"]["conv2d"]["kernel:0"][()],
                                      model.get_layer("conv2d").kernel.numpy())
        names = [n.decode() for n in f["optimizer_weights"].attrs["weight_names"]]
        # slot-major: every m, then every v (TF's creation order)
        assert names[:2] == ["Adam/iter:0", "Adam/conv2d/kernel/m:0"]
        assert names[1:7] == [f"Adam/{w.name[:-2]}/m:0" for w in model.trainable_weights]
        assert names[7] == "Adam/conv2d/kernel/v:0"
        assert f["optimizer_weights"]["Adam/iter:0"][()] == 1


def test_the_keras_file_is_keras3s_layout(tmp_path):
    model = small_classifier()
    model.compile(optimizers.Adam(), "sparse_categorical_crossentropy")
    model.train_on_batch(*batch())
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert archive.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    assert config["class_name"] == "Functional" and config["module"] == \
        "keras.src.models.functional"
    conv = config["config"]["layers"][1]
    assert conv["module"] == "keras.layers" and conv["inbound_nodes"][0]["args"][0][
        "config"]["keras_history"] == ["input_1", 0, 0]
    assert config["compile_config"]["optimizer"]["config"]["use_ema"] is False
    with h5py.File(__import__("io").BytesIO(weights), "r") as f:
        assert sorted(f["layers"]) == ["batch_normalization", "conv2d", "dense", "flatten",
                                       "input_layer"]
        assert list(f["layers/batch_normalization/vars"]) == ["0", "1", "2", "3"]
        # iteration, learning rate, then m and v of each variable in turn
        assert len(f["optimizer/vars"]) == 2 + 2 * 6
        np.testing.assert_array_equal(f["optimizer/vars/2"][()], model.optimizer.get_slot(
            model.trainable_weights[0].numpy(), "m"))
        np.testing.assert_array_equal(f["optimizer/vars/3"][()], model.optimizer.get_slot(
            model.trainable_weights[0].numpy(), "v"))


def test_save_formats_and_refusals(tmp_path):
    model = small_classifier()
    model.save(tmp_path / "plain", save_format="h5")
    assert h5py.is_hdf5(tmp_path / "plain")
    model.save(tmp_path / "zipped", save_format="keras")
    assert zipfile.is_zipfile(tmp_path / "zipped")
    for path in ("plain", "zipped"):
        assert_same_weights(load_model(tmp_path / path).get_weights(), model.get_weights())
    with pytest.raises(NotImplementedError, match="SavedModel"):
        model.save(tmp_path / "saved", save_format="tf")
    with pytest.raises(NotImplementedError, match="'.keras' or '.h5'"):
        model.save(tmp_path / "model.pb")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "plain", save_format="h5", overwrite=False)

    class Net(Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    net = Net()
    net.build((None, 3))
    with pytest.raises(NotImplementedError, match="subclassed"):
        net.save(tmp_path / "net.keras")
    assert not os.path.exists(tmp_path / "net.keras")


def test_without_h5py_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install 'fastconv\[h5\]'"):
        small_classifier().save(tmp_path / "m.h5")
    assert not os.path.exists(tmp_path / "m.h5")


def test_lambda_layers_load_only_outside_safe_mode(tmp_path):
    model = fastconv_model("every_1d")
    for ext in FORMATS:
        model.save(tmp_path / f"m{ext}")
        with pytest.raises(ValueError, match="Lambda.*bytecode.*safe_mode=False"):
            load_model(tmp_path / f"m{ext}")
        loaded = load_model(tmp_path / f"m{ext}", safe_mode=False)
        x = inputs_for("every_1d")
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# ----------------------------------------------------------------------------
# Weight files

@pytest.mark.parametrize("filename", ["w.h5", "w.weights.h5", "w.hdf5"])
def test_weights_round_trip_through_keras_layouts(tmp_path, filename):
    model = fastconv_model("nested")
    model.save_weights(tmp_path / filename)
    other = fastconv_model("nested")
    other.set_weights(random_weights([(v.name, v.numpy()) for v in other.weights], seed=5))
    other.load_weights(tmp_path / filename)
    assert_same_weights(other.get_weights(), model.get_weights())
    with h5py.File(tmp_path / filename, "r") as f:
        keras3 = filename.endswith(".weights.h5")
        assert ("layers" in f) == keras3 and ("layer_names" in f.attrs) != keras3


def test_load_weights_by_name_and_from_whole_model_files(tmp_path):
    model = small_classifier()
    model.save_weights(tmp_path / "w.h5")
    model.save(tmp_path / "m.h5")
    model.save(tmp_path / "m.keras")
    inputs = L.Input((6, 6, 2))
    x = L.Conv2D(3, 3, activation="relu", name="conv2d")(inputs)
    other = Model(inputs, L.Dense(7, name="other_head")(L.Flatten()(x)))
    other.load_weights(tmp_path / "w.h5", by_name=True)
    assert_same_weights(other.get_layer("conv2d").get_weights(),
                        model.get_layer("conv2d").get_weights())
    for path in ("m.h5", "m.keras"):
        fresh = small_classifier(seed=9)
        fresh.load_weights(tmp_path / path)
        assert_same_weights(fresh.get_weights(), model.get_weights())
    head = Model(inputs, L.Dense(7, name="dense")(L.Flatten()(x)))
    with pytest.warns(UserWarning, match="Skipping loading of weights"):
        head.load_weights(tmp_path / "w.h5", by_name=True, skip_mismatch=True)
    with pytest.raises(ValueError, match="skip_mismatch can only be set"):
        head.load_weights(tmp_path / "w.h5", skip_mismatch=True)
    with pytest.raises(ValueError, match="by_name"):
        head.load_weights(tmp_path / "m.keras", by_name=True)
    with pytest.raises(ValueError, match="use model.save"):
        model.save_weights(tmp_path / "w.keras")


@pytest.mark.parametrize("ext", FORMATS)
def test_model_checkpoint_writes_whole_models_atomically(tmp_path, ext):
    x, y = batch()
    model = small_classifier()
    model.compile("adam", "sparse_categorical_crossentropy")
    pattern = str(tmp_path / ("ckpt-{epoch}" + ext))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(pattern, monitor="loss")])
    assert sorted(os.listdir(tmp_path)) == [f"ckpt-1{ext}", f"ckpt-2{ext}"]
    loaded = load_model(tmp_path / f"ckpt-2{ext}")
    assert loaded.optimizer.iterations == 4
    assert_same_weights(loaded.get_weights(), model.get_weights())


def test_a_handwritten_tf24_h5_file_loads_with_its_optimizer_state(tmp_path):
    dense = {"name": "dense", "trainable": True, "dtype": "float32", "units": 2,
             "activation": "softmax", "use_bias": True,
             "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
             "bias_initializer": {"class_name": "Zeros", "config": {}},
             "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
             "kernel_constraint": None, "bias_constraint": None}
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3],
                                                "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "dense_input"}},
        {"class_name": "Dense", "config": {**dense, "batch_input_shape": [None, 3]}}]}}
    training = {"loss": "sparse_categorical_crossentropy", "metrics": [[{
        "class_name": "MeanMetricWrapper", "config": {
            "name": "accuracy", "dtype": "float32", "fn": "sparse_categorical_accuracy"}}]],
        "weighted_metrics": None, "loss_weights": None, "optimizer_config": {
            "class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.001,
                                             "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999,
                                             "epsilon": 1e-07, "amsgrad": False}}}
    rng = np.random.default_rng(0)
    kernel, bias = rng.standard_normal((3, 2)).astype("f4"), np.array([0.1, -0.1], "f4")
    slots = {f"Adam/dense/{w}/{s}:0": rng.random(shape).astype("f4")
             for s in ("m", "v") for w, shape in (("kernel", (3, 2)), ("bias", (2,)))}
    with h5py.File(tmp_path / "tf24.h5", "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps(training).encode()
        f.attrs["keras_version"] = b"2.4.0"
        f.attrs["backend"] = b"tensorflow"
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [b"dense"]
        weights.attrs["backend"], weights.attrs["keras_version"] = b"tensorflow", b"2.4.0"
        group = weights.create_group("dense")
        group.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        group["dense/kernel:0"], group["dense/bias:0"] = kernel, bias
        opt = f.create_group("optimizer_weights")
        opt.attrs["weight_names"] = [b"Adam/iter:0"] + [n.encode() for n in slots]
        opt["Adam/iter:0"] = np.int64(7)
        for name, value in slots.items():
            opt[name] = value
    model = load_model(tmp_path / "tf24.h5")
    assert isinstance(model, Sequential) and model.metrics_names == ["loss", "accuracy"]
    assert_same_weights(model.get_weights(), [kernel, bias])
    assert model.optimizer.iterations == 7
    layer = model.get_layer("dense")
    np.testing.assert_array_equal(model.optimizer.get_slot(layer.kernel.numpy(), "v"),
                                  slots["Adam/dense/kernel/v:0"])
    np.testing.assert_array_equal(model.optimizer.get_slot(layer.bias.numpy(), "m"),
                                  slots["Adam/dense/bias/m:0"])


# ----------------------------------------------------------------------------
# With Keras 3

@pytest.fixture(scope="module")
def keras():
    return import_keras()


def keras_model(keras, name):
    model = BUILDERS[name](keras.layers, keras.Model, keras.Input, keras.Sequential)
    model.set_weights(random_weights([(v.path, numpy_of(v)) for v in model.weights]))
    return model


def keras_predict(model, x):
    import torch
    return model(torch.tensor(x), training=False).detach().cpu().numpy()


def relative(actual, expected):
    return float(np.abs(np.asarray(actual, np.float64) - expected).max()
                 / np.abs(expected).max())


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():  # Keras' own warnings (absl, deprecations)
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_keras3_loads_fastconvs_files(tmp_path, keras, name):
    model = fastconv_model(name)
    x = inputs_for(name)
    # tf.keras 2.4 numbers a nested model's calls from 1, which Keras 3's
    # legacy .h5 reader does not know; .keras files have Keras 3's numbering.
    for ext in FORMATS if name != "nested" else (".keras",):
        model.save(tmp_path / f"m{ext}")
        loaded = quiet(keras.models.load_model, str(tmp_path / f"m{ext}"), safe_mode=False)
        assert relative(keras_predict(loaded, x), model.predict(x)) <= 1e-5, ext


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fastconv_loads_keras3s_files(tmp_path, keras, name):
    model = keras_model(keras, name)
    x = inputs_for(name)
    for ext in FORMATS:
        quiet(model.save, str(tmp_path / f"k{ext}"))
        loaded = load_model(tmp_path / f"k{ext}", safe_mode=False)
        assert loaded.name == model.name
        assert relative(loaded.predict(x), keras_predict(model, x)) <= 1e-5, ext


def test_optimizer_state_carries_over_between_fastconv_and_keras3(tmp_path, keras):
    x, y = batch()
    pairs = [(optimizers.Adam(0.01, amsgrad=True), keras.optimizers.Adam(0.01, amsgrad=True)),
             (optimizers.RMSprop(0.01, momentum=0.5, centered=True),
              keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True))]
    for fc_optimizer, k_optimizer in pairs:
        model = small_classifier()
        model.compile(fc_optimizer, "sparse_categorical_crossentropy")
        for _ in range(3):
            model.train_on_batch(x, y)
        model.save(tmp_path / "fc.keras")
        theirs = quiet(keras.models.load_model, str(tmp_path / "fc.keras"))
        assert int(theirs.optimizer.iterations) == 3
        model.train_on_batch(x, y)
        quiet(theirs.train_on_batch, x, y)
        for mine, other in zip(model.get_weights(), keras_weights(theirs)):
            assert relative(other, mine) <= 1e-4
        k_model = BUILDERS_SMALL(keras)
        k_model.compile(k_optimizer, "sparse_categorical_crossentropy")
        for _ in range(3):
            quiet(k_model.train_on_batch, x, y)
        for ext in FORMATS:
            quiet(k_model.save, str(tmp_path / f"k{ext}"))
        quiet(k_model.train_on_batch, x, y)
        for ext in FORMATS:
            ours = load_model(tmp_path / f"k{ext}")
            assert ours.optimizer.iterations == 3 and type(ours.optimizer) is type(fc_optimizer)
            ours.train_on_batch(x, y)
            for mine, other in zip(ours.get_weights(), keras_weights(k_model)):
                assert relative(mine, other) <= 1e-4, ext


def BUILDERS_SMALL(keras):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(
        keras.layers.Flatten()(x)))


def test_weight_files_carry_over_between_fastconv_and_keras3(tmp_path, keras):
    x = inputs_for("nested")
    ours, theirs = fastconv_model("nested"), keras_model(keras, "nested")
    ours.save_weights(tmp_path / "fc.weights.h5")
    quiet(theirs.load_weights, str(tmp_path / "fc.weights.h5"))
    assert relative(keras_predict(theirs, x), ours.predict(x)) <= 1e-5
    theirs.set_weights(random_weights([(v.path, numpy_of(v)) for v in theirs.weights],
                                      seed=3))
    quiet(theirs.save_weights, str(tmp_path / "k.weights.h5"))
    ours.load_weights(tmp_path / "k.weights.h5")
    assert relative(ours.predict(x), keras_predict(theirs, x)) <= 1e-5
    flat_ours, flat_theirs = fastconv_model("every_2d"), keras_model(keras, "every_2d")
    flat_ours.save_weights(tmp_path / "fc.h5")  # tf.keras 2.4's layout
    quiet(flat_theirs.load_weights, str(tmp_path / "fc.h5"))
    x = inputs_for("every_2d")
    assert relative(keras_predict(flat_theirs, x), flat_ours.predict(x)) <= 1e-5


def test_keras3_sequential_models_load_in_fastconv(tmp_path, keras):
    layers = keras.layers
    model = keras.Sequential([keras.Input((5,)), layers.Dense(4, activation="relu"),
                              layers.BatchNormalization(), layers.Dense(2)], name="stack")
    model.set_weights(random_weights([(v.path, numpy_of(v)) for v in model.weights]))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    x = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    quiet(model.train_on_batch, x, np.zeros((8, 2), np.float32))
    for ext in FORMATS:
        quiet(model.save, str(tmp_path / f"s{ext}"))
        loaded = load_model(tmp_path / f"s{ext}")
        assert isinstance(loaded, Sequential) and loaded.name == "stack"
        assert [type(layer) for layer in loaded.layers] == [L.Dense, L.BatchNormalization,
                                                             L.Dense]
        assert loaded.optimizer.iterations == 1 and loaded.optimizer.momentum == 0.9
        assert relative(loaded.predict(x), keras_predict(model, x)) <= 1e-5, ext
