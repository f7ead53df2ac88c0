"""fastconv.callbacks.TensorBoard in real ``fit`` runs, its event files read
back with TensorBoard's own reader and compared with History and with the
batch logs and weights seen by other callbacks (tf.keras 2.4's rules)."""
from __future__ import annotations

import io
import os
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

from fastconv import backend  # noqa: E402
from fastconv.callbacks import LambdaCallback  # noqa: E402
from fastconv.callbacks.tensorboard import TensorBoard  # noqa: E402
from fastconv.layers import Conv2D, Dense, Flatten, Input  # noqa: E402
from fastconv.models import Sequential  # noqa: E402
from fastconv.optimizers import SGD, schedules  # noqa: E402

N_TRAIN, BATCH = 24, 8
STEPS = N_TRAIN // BATCH  # batches per epoch
WEIGHT_TAGS = {"conv2d/kernel_0", "conv2d/bias_0", "dense/kernel_0", "dense/bias_0"}


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N_TRAIN + 8, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, N_TRAIN + 8)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def _model(optimizer="sgd"):
    backend.clear_session()  # layer names conv2d, dense: the histogram tags
    backend.set_random_seed(0)
    model = Sequential([Input((6, 6, 1)), Conv2D(2, 3, activation="relu"), Flatten(),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _fit(model, callbacks, epochs=3, validation=True, **kwargs):
    (x, y), val = _data()
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=False,
                     validation_data=val if validation else None, callbacks=callbacks,
                     **kwargs)


def _read(path):
    """All events of a run folder (or one event file), nothing sampled away."""
    accumulator = event_accumulator.EventAccumulator(
        os.fspath(path), size_guidance={"scalars": 0, "histograms": 0, "images": 0,
                                        "tensors": 0})
    accumulator.Reload()
    return accumulator


def _scalars(accumulator, tag):
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def _assert_series(accumulator, tag, steps, values):
    events = _scalars(accumulator, tag)
    assert [step for step, _ in events] == list(steps), tag
    # simple_value is a float32
    np.testing.assert_allclose([v for _, v in events], values, rtol=1e-6, atol=1e-7,
                               err_msg=tag)


def test_epoch_scalars_equal_history_in_train_and_validation(tmp_path):
    history = _fit(_model(), [TensorBoard(tmp_path, write_graph=False)], epochs=3)
    # The writers were closed at train end (checked before reading: with
    # TensorFlow installed, tensorboard's reader keeps the files open).
    if os.path.isdir("/proc/self/fd"):
        open_files = [os.path.realpath(os.path.join("/proc/self/fd", fd))
                      for fd in os.listdir("/proc/self/fd")]
        assert not [f for f in open_files if f.startswith(os.path.realpath(tmp_path))]
    train, val = _read(tmp_path / "train"), _read(tmp_path / "validation")
    assert sorted(train.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss"]
    assert sorted(val.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss"]
    for name in ("loss", "accuracy"):
        _assert_series(train, "epoch_" + name, [0, 1, 2], history.history[name])
        _assert_series(val, "epoch_" + name, [0, 1, 2], history.history["val_" + name])
    # update_freq='epoch', histogram_freq=0, write_graph=False: nothing else
    for run in (train, val):
        assert run.Tags()["histograms"] == [] and run.Tags()["images"] == []
        assert run.Tags()["tensors"] == []


def test_each_epoch_is_on_disk_when_the_epoch_ends(tmp_path):
    on_disk = []  # epoch_loss steps readable from the files at each epoch end
    reader = LambdaCallback(on_epoch_end=lambda epoch, logs: on_disk.append(
        [s for s, _ in _scalars(_read(tmp_path / "train"), "epoch_loss")]))
    _fit(_model(), [TensorBoard(tmp_path), reader], epochs=3)  # the reader runs after it
    assert on_disk == [[0], [0, 1], [0, 1, 2]]


def test_without_validation_no_validation_run_is_written(tmp_path):
    history = _fit(_model(), [TensorBoard(tmp_path)], epochs=2, validation=False)
    assert sorted(os.listdir(tmp_path)) == ["train"]
    _assert_series(_read(tmp_path / "train"), "epoch_loss", [0, 1], history.history["loss"])


@pytest.mark.parametrize("update_freq, every", [("batch", 1), (1, 1), (2, 2)])
def test_batch_scalars_every_update_freq_batches_at_the_global_batch_count(
        tmp_path, update_freq, every):
    seen = []  # the running logs of every batch, in order
    recorder = LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(dict(logs)))
    history = _fit(_model(), [TensorBoard(tmp_path, update_freq=update_freq), recorder],
                   epochs=3)
    assert len(seen) == 3 * STEPS
    train = _read(tmp_path / "train")
    # Keras 2.4: the step is the fit's train counter after the batch (1-based,
    # counting on across epochs); a batch is written when it divides by N.
    steps = [k for k in range(1, 3 * STEPS + 1) if k % every == 0]
    for name in ("loss", "accuracy"):
        _assert_series(train, "batch_" + name, steps, [seen[k - 1][name] for k in steps])
        _assert_series(train, "epoch_" + name, [0, 1, 2], history.history[name])
    # validation batches write nothing (no custom summaries to pick up)
    assert sorted(_read(tmp_path / "validation").Tags()["scalars"]) == [
        "epoch_accuracy", "epoch_loss"]


def test_each_fit_restarts_the_batch_count_and_gets_its_own_event_files(tmp_path):
    callback = TensorBoard(tmp_path, update_freq=1, write_graph=False)
    model = _model()
    _fit(model, [callback], epochs=2)
    second = _fit(model, [callback], epochs=4, initial_epoch=2)
    files = sorted(os.listdir(tmp_path / "train"))
    assert len(files) == 2 and len(os.listdir(tmp_path / "validation")) == 2
    runs = sorted((_read(tmp_path / "train" / f) for f in files),
                  key=lambda run: _scalars(run, "epoch_loss")[0][0])
    assert [s for s, _ in _scalars(runs[0], "epoch_loss")] == [0, 1]
    _assert_series(runs[1], "epoch_loss", [2, 3], second.history["loss"][-2:])
    for run in runs:  # both files complete, and counted from 1 again
        assert [s for s, _ in _scalars(run, "batch_loss")] == list(range(1, 2 * STEPS + 1))


def test_a_learning_rate_schedule_is_logged_as_epoch_learning_rate(tmp_path):
    schedule = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    model = _model(SGD(learning_rate=schedule))
    _fit(model, [TensorBoard(tmp_path)], epochs=2)
    train = _read(tmp_path / "train")
    # the schedule at optimizer.iterations after each epoch (3 steps each)
    _assert_series(train, "epoch_learning_rate", [0, 1], [schedule(3), schedule(6)])
    assert "epoch_learning_rate" not in _read(tmp_path / "validation").Tags()["scalars"]


def test_histograms_of_every_weight_at_epochs_0_k_2k(tmp_path):
    weights = {}  # epoch -> {tag: values} seen at the end of the epoch

    def record(epoch, logs):
        weights[epoch] = {v.name.replace(":", "_"): np.array(v.numpy(), copy=True)
                          for layer in model.layers for v in layer.weights}

    model = _model()
    _fit(model, [TensorBoard(tmp_path, histogram_freq=2), LambdaCallback(on_epoch_end=record)],
         epochs=5)
    train = _read(tmp_path / "train")
    assert set(train.Tags()["histograms"]) == WEIGHT_TAGS
    assert train.Tags()["images"] == []  # write_images=False
    for tag in WEIGHT_TAGS:
        events = train.Histograms(tag)
        assert [e.step for e in events] == [0, 2, 4]
        for event in events:
            values = weights[event.step][tag].astype(np.float64).ravel()
            histogram = event.histogram_value
            assert histogram.num == values.size
            assert sum(histogram.bucket) == values.size
            np.testing.assert_allclose([histogram.min, histogram.max, histogram.sum,
                                        histogram.sum_squares],
                                       [values.min(), values.max(), values.sum(),
                                        values @ values], rtol=1e-6, atol=1e-9)
    assert train.Tags()["scalars"]  # histograms come besides the scalars
    assert _read(tmp_path / "validation").Tags()["histograms"] == []


def _expected_pixels(image):
    """TF's float-to-uint8 image rule, worked out directly (one channel)."""
    image = image.astype(np.float32)
    if image.min() < 0:
        return (image * (127 / np.abs(image).max()) + 128).astype(np.uint8)
    return (image * (255 / image.max())).astype(np.uint8)


def test_write_images_shows_weights_as_keras_does(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    model = _model()
    _fit(model, [TensorBoard(tmp_path, histogram_freq=1, write_images=True)], epochs=1)
    train = _read(tmp_path / "train")
    kernel, bias, dense_kernel, dense_bias = model.get_weights()
    # conv kernel (3, 3, 1, 2): one 3x3 image per filter; bias (2,): a column;
    # Dense kernel (32, 3): transposed to 3 high, 32 wide; tags '/image/<i>'
    expected = {
        "conv2d/kernel_0/image/0": kernel[:, :, 0, 0],
        "conv2d/kernel_0/image/1": kernel[:, :, 0, 1],
        "conv2d/bias_0/image/0": bias.reshape(2, 1),
        "dense/kernel_0/image/0": dense_kernel.T,
        "dense/bias_0/image/0": dense_bias.reshape(3, 1),
    }
    assert sorted(train.Tags()["images"]) == sorted(expected)
    for tag, values in expected.items():
        (event,) = train.Images(tag)
        assert (event.step, event.height, event.width) == (0, *values.shape)
        decoded = np.asarray(image_module.open(io.BytesIO(event.encoded_image_string)))
        np.testing.assert_array_equal(decoded, _expected_pixels(values), err_msg=tag)


def test_write_graph_writes_the_model_summary_text_once(tmp_path):
    model = _model()
    _fit(model, [TensorBoard(tmp_path)], epochs=2)
    (event,) = _read(tmp_path / "train").Tensors("model_summary/text_summary")
    text = event.tensor_proto.string_val[0].decode()
    assert event.step == 0
    assert [line[4:] for line in text.splitlines()] == model.summary_string().splitlines()
    _fit(_model(), [TensorBoard(tmp_path / "off", write_graph=False)], epochs=1)
    assert _read(tmp_path / "off" / "train").Tags()["tensors"] == []


def test_evaluate_inside_and_after_fit_leaves_the_writers_alone(tmp_path):
    callback = TensorBoard(tmp_path, update_freq=1)
    (x, y), (x_val, y_val) = _data()
    model = _model()
    results = []
    during = LambdaCallback(on_epoch_end=lambda epoch, logs: results.append(
        model.evaluate(x_val, y_val, verbose=0, callbacks=[callback])))
    history = _fit(model, [callback, during], epochs=3)
    assert len(results) == 3
    model.evaluate(x_val, y_val, verbose=0, callbacks=[callback])
    model.predict(x_val, callbacks=[callback])
    assert len(os.listdir(tmp_path / "train")) == len(os.listdir(tmp_path / "validation")) == 1
    train, val = _read(tmp_path / "train"), _read(tmp_path / "validation")
    _assert_series(train, "epoch_loss", [0, 1, 2], history.history["loss"])
    _assert_series(val, "epoch_loss", [0, 1, 2], history.history["val_loss"])
    assert [s for s, _ in _scalars(train, "batch_loss")] == list(range(1, 3 * STEPS + 1))


def test_a_nan_weight_stops_the_histogram_with_its_name(tmp_path):
    model = _model()
    spoil = LambdaCallback(on_epoch_end=lambda epoch, logs: model.layers[-1].weights[1]
                           .numpy().__setitem__(0, np.nan))
    callback = TensorBoard(tmp_path, histogram_freq=1)
    with pytest.raises(ValueError, match="dense/bias:0"):
        _fit(model, [spoil, callback], epochs=1)
    callback.on_train_end()  # fit stopped before closing the writer


def test_without_tensorboardX_construction_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'fastconv\[tensorboard\]'"):
        TensorBoard(tmp_path)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"update_freq": "sometimes"}, ValueError, "update_freq.*'sometimes'"),
    ({"update_freq": 0}, ValueError, "update_freq"),
    ({"update_freq": True}, ValueError, "update_freq"),
    ({"histogram_freq": -1}, ValueError, "histogram_freq.*-1"),
    ({"histogram_freq": 1.5}, TypeError, "histogram_freq.*float"),
    ({"embeddings_freq": -2}, ValueError, "embeddings_freq"),
    ({"profile_batch": (5, 2)}, ValueError, "profile_batch"),
    ({"profile_batch": -1}, ValueError, "profile_batch"),
    ({"profile_batch": "x,y"}, ValueError, "profile_batch"),
    ({"profile_batch": 1.0}, ValueError, "profile_batch"),
    ({"write_graph": "yes"}, TypeError, "write_graph"),
    ({"log_dir": 3}, TypeError, "log_dir.*int"),
    ({"embeddings_metadata": 3}, TypeError, "embeddings_metadata"),
    ({"write_grads_typo": True}, ValueError, "Unrecognized arguments.*write_grads_typo"),
])
def test_invalid_arguments_are_named(tmp_path, kwargs, error, match):
    kwargs = {"log_dir": tmp_path, **kwargs}
    with pytest.raises(error, match=match):
        TensorBoard(**kwargs)


@pytest.mark.parametrize("kwargs", [{"profile_batch": 0}, {"profile_batch": "2"},
                                    {"profile_batch": (0, 0)}, {"update_freq": "epoch"},
                                    {"write_grads": False, "batch_size": None}])
def test_accepted_arguments_warn_nothing(tmp_path, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TensorBoard(tmp_path, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"embeddings_freq": 1}, "embeddings_freq"),
    ({"profile_batch": (3, 5)}, "profile_batch"),
    ({"write_grads": True}, "write_grads"),
])
def test_unsupported_requests_warn_once_at_construction_and_write_nothing(
        tmp_path, kwargs, match):
    with pytest.warns(UserWarning, match=match) as record:
        callback = TensorBoard(tmp_path, **kwargs)
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and not again while training
        _fit(_model(), [callback], epochs=2)
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]
