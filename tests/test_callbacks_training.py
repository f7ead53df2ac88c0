"""LearningRateScheduler, ReduceLROnPlateau, CSVLogger, TerminateOnNaN and
LambdaCallback inside real ``fit`` runs, with tf.keras 2.4's rules worked out
by hand for each expectation."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from fastconv import backend
from fastconv.callbacks import (Callback, CSVLogger, LambdaCallback, LearningRateScheduler,
                                ReduceLROnPlateau, TerminateOnNaN)
from fastconv.layers import Dense, Input
from fastconv.models import Model
from fastconv.optimizers import SGD, schedules


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], np.float32) + 0.3)


def _model(lr=0.1):
    backend.set_random_seed(0)
    inputs = Input((4,))
    model = Model(inputs, Dense(1)(inputs))
    model.compile(optimizer=SGD(learning_rate=lr), loss="mse")
    return model


class ScriptedLoss(Callback):
    """Overwrites the epoch's monitored value with a scripted sequence (a
    callback ahead of the one under test sees the logs first)."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key = list(values), key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def test_learning_rate_scheduler_sets_each_epochs_rate_and_trains_with_it():
    x, y = _data()
    model = _model(0.1)
    history = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)])
    assert history.history["lr"] == [np.float32(0.1), np.float32(0.05), np.float32(0.025)]
    # the same three epochs with the rate set by hand: bitwise the same weights
    manual = _model(0.1)
    for rate in (0.1, 0.05, 0.025):
        manual.optimizer.learning_rate = rate
        manual.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), manual.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_scheduler_takes_one_argument_schedules_and_checks_outputs(capsys):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1), verbose=1)])
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    assert "Epoch 00002: LearningRateScheduler reducing learning rate to 0.02." in \
        capsys.readouterr().out
    before = model.get_weights()
    with pytest.raises(ValueError, match="should be float"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[LearningRateScheduler(lambda epoch: "fast")])
    with pytest.raises(ValueError, match="returned nan"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[LearningRateScheduler(lambda epoch: float("nan"))])
    for a, b in zip(before, model.get_weights()):   # no step was taken
        np.testing.assert_array_equal(a, b)
    scheduled = _model()
    scheduled.optimizer.learning_rate = schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(ValueError, match="is a schedule"):
        scheduled.fit(x, y, epochs=1, verbose=0,
                      callbacks=[LearningRateScheduler(lambda epoch: 0.1)])


def test_reduce_lr_on_plateau_reduces_at_the_right_epochs():
    x, y = _data()
    model = _model(0.1)
    # best 1.0, 0.9; epochs 2 and 3 do not beat 0.9 - min_delta: patience 2
    # is reached at epoch 3 (rate 0.1 -> 0.05 from epoch 4). Epoch 4 ends the
    # cooldown of 1 and, no longer in cooldown, counts as a wait (Keras
    # decrements first); epoch 5 is the second: reduced again (0.025 from 6).
    val = [1.0, 0.9, 0.89995, 0.95, 0.97, 0.99, 0.98, 0.5]
    history = model.fit(x, y, epochs=8, verbose=0, validation_data=(x, y), callbacks=[
        ScriptedLoss(val), ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1)])
    lr = [np.float32(v) for v in (0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025)]
    assert history.history["lr"] == lr
    assert model.optimizer.learning_rate == float(np.float32(0.025))


def test_reduce_lr_on_plateau_mode_max_min_lr_and_bad_arguments():
    x, y = _data()
    model = _model(0.1)
    plateau = ReduceLROnPlateau(monitor="acc_like", factor=0.1, patience=0, min_lr=0.005)
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[
        ScriptedLoss([0.5, 0.4, 0.6, 0.3], key="acc_like"), plateau])
    # 'acc' in the name: maximised. Epochs 1 (0.4) and 3 (0.3) do not improve;
    # the rate is a float32 (Keras' variable): 0.1f * 0.1f, then floored
    reduced = np.float32(0.1) * np.float32(0.1)
    assert history.history["lr"] == [np.float32(0.1), np.float32(0.1), reduced, reduced]
    assert model.optimizer.learning_rate == 0.005          # floored at min_lr
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="`mode`"):
        ReduceLROnPlateau(mode="largest")
    with pytest.raises(ValueError, match="`patience`"):
        ReduceLROnPlateau(patience=-1)
    with pytest.warns(RuntimeWarning, match="not available"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[ReduceLROnPlateau()])


def test_csv_logger_writes_kerass_file_and_appends(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    history = model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
                        callbacks=[CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for key, column in (("loss", 1), ("val_loss", 2)):
        assert [float(r[column]) for r in rows[1:]] == history.history[key]
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y),
              callbacks=[CSVLogger(path, separator=";", append=True)])
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    assert len(lines) == 6 and lines[0] == "epoch,loss,val_loss"
    assert lines[4].startswith("0;") and lines[5].count(";") == 2
    with pytest.raises(ValueError, match="separator"):
        CSVLogger(path, separator="::")


def test_terminate_on_nan_stops_at_the_first_bad_batch(capsys):
    x, y = _data()
    x[20] = np.nan                      # batch 2 of 8-row batches
    model = _model()
    batches = []
    history = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[
        TerminateOnNaN(), LambdaCallback(on_batch_end=lambda batch, logs: batches.append(batch))])
    assert batches == [0, 1, 2]
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    assert len(history.history["loss"]) == 1


def test_lambda_callback_calls_its_functions_positionally():
    x, y = _data()
    seen = []
    callback = LambdaCallback(
        on_train_begin=lambda l: seen.append("begin"),
        on_epoch_begin=lambda e, l: seen.append(("epoch", e)),
        on_epoch_end=lambda e, l: seen.append(("end", e, sorted(l))),
        on_train_end=lambda l: seen.append("done"),
        on_test_end=lambda l: seen.append("tested"))
    _model().fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[callback])
    assert seen == ["begin", ("epoch", 0), "tested", ("end", 0, ["loss", "val_loss"]),
                    ("epoch", 1), "tested", ("end", 1, ["loss", "val_loss"]), "done"]
    with pytest.raises(TypeError, match="not a callback hook"):
        LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="must be callable"):
        LambdaCallback(on_epoch_end=3)
