"""Callbacks: exact progress-bar text (fake clock, fake tty and non-tty streams),
History, EarlyStopping, ModelCheckpoint, CallbackList.

Expected progress lines are worked out by hand from Keras 2.4's rules:
``'%{d}d/%d ['`` with d the digits of the target, ``int(30 * cur / target)``
filled cells (the last one ``>`` until done), ``ETA: %ds`` / ``M:SS`` /
``H:MM:SS`` from the per-step time (which excludes step 1 once it is seen),
``- %.0fs`` and ``%.0f{s,ms,us}/step`` when done, and ``%.4f`` / ``%.4e``
values.
"""
from __future__ import annotations

import io
import os

import numpy as np
import pytest

from fastconv.callbacks import (Callback, CallbackList, EarlyStopping, History,
                                ModelCheckpoint, Progbar, ProgbarLogger)


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakePipe(io.StringIO):
    """A non-interactive stream that counts flushes."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def fit_progbar(stream, clock, step_times, epoch_logs, batch_logs=None, verbose=1,
                known_steps=True):
    """Drive a ProgbarLogger the way Model.fit does.

    ``step_times[e]`` is the epoch's start time followed by the end time of
    each of its steps.
    """
    logger = ProgbarLogger(stream=stream, clock=clock)
    callbacks = CallbackList([logger], verbose=verbose, epochs=len(epoch_logs),
                             steps=len(step_times[0]) - 1 if known_steps else None)
    callbacks.on_train_begin()
    for epoch, (times, logs) in enumerate(zip(step_times, epoch_logs)):
        clock.now = times[0]
        callbacks.on_epoch_begin(epoch)
        for batch, now in enumerate(times[1:]):
            clock.now = now
            callbacks.on_train_batch_end(batch, (batch_logs or {}).copy())
        callbacks.on_epoch_end(epoch, dict(logs))
    callbacks.on_train_end()
    return stream.getvalue()


KERAS_FINAL = {"loss": 0.2950, "accuracy": 0.9148, "val_loss": 1.23e-05, "val_accuracy": 0.98}
KERAS_FINAL_LINE = ("1875/1875 [==============================] - 5s 2ms/step - loss: 0.2950 - "
                    "accuracy: 0.9148 - val_loss: 1.2300e-05 - val_accuracy: 0.9800")


def _keras_epoch_times():
    # Epoch starts at 0, step 1 ends at 1.252, then 2 ms per step: step 1875 at 5.0 s.
    return [0.0] + [1.252 + 0.002 * k for k in range(1875)]


# -- non-interactive streams: complete lines only ------------------------------------


def test_file_output_is_the_keras_final_line_only():
    stream = FakePipe()
    text = fit_progbar(stream, FakeClock(), [_keras_epoch_times()], [KERAS_FINAL],
                       batch_logs={"loss": 0.3, "accuracy": 0.9})
    assert text == KERAS_FINAL_LINE + "\n"
    assert "\r" not in text and "\b" not in text
    assert stream.flushes >= 1


def test_file_output_has_epoch_headers_when_more_than_one_epoch():
    times = [[10.0 * e] + [10.0 * e + 0.5 * (k + 1) for k in range(4)] for e in range(2)]
    text = fit_progbar(FakePipe(), FakeClock(), times,
                       [{"loss": 0.5, "acc": 0.75}, {"loss": 0.25, "acc": 1.0}])
    # 4 steps, 0.5 s each: elapsed 2 s, 500 ms/step.
    assert text == ("Epoch 1/2\n"
                    "4/4 [==============================] - 2s 500ms/step - loss: 0.5000 - acc: 0.7500\n"
                    "Epoch 2/2\n"
                    "4/4 [==============================] - 2s 500ms/step - loss: 0.2500 - acc: 1.0000\n")


def test_long_epoch_on_a_file_adds_a_line_every_log_interval():
    clock, stream = FakeClock(), FakePipe()
    bar = Progbar(1000, stateful_metrics=["loss"], stream=stream, clock=clock)
    for step in range(1, 1001):
        clock.now = 0.125 * step  # exact binary fractions
        bar.update(step, [("loss", 0.25)])
    # Lines at the first update >= 60 s after the start (step 480) and 60 s later
    # (step 960), then the final line. Per step: (60 - 0.125) / 479 = 0.125 s.
    assert stream.getvalue() == (
        " 480/1000 [=============>................] - ETA: 1:05 - loss: 0.2500\n"
        " 960/1000 [===========================>..] - ETA: 5s - loss: 0.2500\n"
        "1000/1000 [==============================] - 125s 125ms/step - loss: 0.2500\n")


def test_log_interval_none_writes_only_the_final_line():
    clock, stream = FakeClock(), FakePipe()
    bar = Progbar(1000, stream=stream, clock=clock, log_interval=None)
    for step in range(1, 1001):
        clock.now = 0.125 * step
        bar.update(step)
    assert stream.getvalue() == "1000/1000 [==============================] - 125s 125ms/step\n"


# -- interactive streams: \r rewrites ------------------------------------------------


def test_tty_rewrites_the_line_with_carriage_returns_and_throttles():
    stream, clock = FakeTTY(), FakeClock()
    times = [0.0, 0.3, 0.32, 0.6, 0.62, 0.9]
    losses = [0.8, 0.7, 0.5, 0.45, 0.4]
    logger = ProgbarLogger(stream=stream, clock=clock)
    callbacks = CallbackList([logger], verbose=1, epochs=1, steps=5)
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    for batch, (now, loss) in enumerate(zip(times[1:], losses)):
        clock.now = now
        callbacks.on_train_batch_end(batch, {"loss": loss})
    callbacks.on_epoch_end(0, {"loss": 0.4, "val_loss": 0.0005})
    # Step 1 (0.3 s): ETA 0.3 * 4 = 1.2 -> 1s. Step 2 (+0.02 s) and step 4 are
    # within 0.05 s of the previous render: skipped. Step 3: per step
    # (0.6 - 0.3) / 2 = 0.15, ETA 0.3 -> 0s. Step 5 (not yet final): ETA 0s.
    # Final: elapsed 0.9 -> 1s, (0.9 - 0.3) / 4 = 150 ms/step.
    assert stream.getvalue() == (
        "\r1/5 [=====>........................] - ETA: 1s - loss: 0.8000"
        "\r3/5 [=================>............] - ETA: 0s - loss: 0.5000"
        "\r5/5 [==============================] - ETA: 0s - loss: 0.4000"
        "\r5/5 [==============================] - 1s 150ms/step - loss: 0.4000 - val_loss: 5.0000e-04\n")


def test_tty_pads_a_shorter_line_with_spaces():
    stream, clock = FakeTTY(), FakeClock()
    bar = Progbar(10, stateful_metrics=["loss"], stream=stream, clock=clock)
    clock.now = 1.0
    bar.update(1, [("loss", 1e-4)])
    clock.now = 2.0
    bar.update(2, [("loss", 0.5)])
    assert stream.getvalue() == (
        "\r 1/10 [==>...........................] - ETA: 9s - loss: 1.0000e-04"
        "\r 2/10 [=====>........................] - ETA: 8s - loss: 0.5000    ")


def test_keras_mid_epoch_line_on_a_tty():
    stream, clock = FakeTTY(), FakeClock()
    bar = Progbar(1875, stateful_metrics=["loss", "accuracy"], stream=stream, clock=clock)
    clock.now = 1.252
    bar.update(1, [("loss", 0.5), ("accuracy", 0.5)])
    clock.now = 1.252 + 0.002 * 936  # step 937; ETA 938 * 2 ms = 1.876 -> 1s
    bar.update(937, [("loss", 0.3012), ("accuracy", 0.9105)])
    # Step 1's ETA was 1874 * 1.252 s = 2346 s = '39:06', 3 characters longer
    # than '1s', so the rewritten line is padded with 3 spaces.
    first, last = stream.getvalue().split("\r")[1:]
    assert first == "   1/1875 [" + "." * 30 + "] - ETA: 39:06 - loss: 0.5000 - accuracy: 0.5000"
    assert last == (" 937/1875 [=============>................] - ETA: 1s - loss: 0.3012 - "
                    "accuracy: 0.9105" + " " * 3)


def test_dynamic_can_be_forced_either_way():
    clock = FakeClock(1.0)
    tty = FakeTTY()
    Progbar(1, stream=tty, clock=clock, dynamic=False).update(1)
    assert tty.getvalue() == "1/1 [==============================] - 0s 0s/step\n"
    pipe = FakePipe()
    Progbar(1, stream=pipe, clock=clock, dynamic=True).update(1)
    assert pipe.getvalue() == "\r1/1 [==============================] - 0s 0s/step\n"


def test_stream_without_working_isatty_is_not_interactive():
    class Closed(io.StringIO):
        def isatty(self):
            raise ValueError("I/O operation on closed file")

    assert Progbar(1, stream=Closed()).dynamic is False
    assert Progbar(1, stream=FakePipe()).dynamic is False
    assert Progbar(1, stream=FakeTTY()).dynamic is True


def test_default_stream_is_sys_stdout_at_write_time(capsys):
    bar = Progbar(2, clock=FakeClock(), dynamic=False)
    bar.update(2)
    assert capsys.readouterr().out == "2/2 [==============================] - 0s 0s/step\n"


# -- formatting rules -----------------------------------------------------------------


@pytest.mark.parametrize("step_times, target, expected_tail", [
    ([3.0], 1, "- 3s 3s/step"),                                       # >= 1 s
    ([1e-4, 2e-4, 3e-4, 4e-4], 4, "- 0s 100us/step"),                 # < 1 ms
    ([0.0, 0.0], 2, "- 0s 0s/step"),                                  # zero
    ([2.0, 2.25, 2.5], 3, "- 2s 250ms/step"),                         # step 1 excluded
])
def test_time_per_step_units(step_times, target, expected_tail):
    clock, stream = FakeClock(), FakePipe()
    bar = Progbar(target, stream=stream, clock=clock)
    for step, now in enumerate(step_times, start=1):
        clock.now = now
        bar.update(step)
    assert stream.getvalue().endswith("] " + expected_tail + "\n")


@pytest.mark.parametrize("per_step, expected", [(1.0, "2:46:38"), (0.01, "1:39"), (0.005, "49s")])
def test_eta_formats(per_step, expected):
    # Target 10000; after step 2 the remaining 9998 steps take 9998 * per_step:
    # 9998 s = 2 h 46 min 38 s; 99.98 s = 1:39; 49.99 s -> 49s (truncated).
    clock, stream = FakeClock(), FakeTTY()
    bar = Progbar(10000, stream=stream, clock=clock, interval=0.0)
    clock.now = per_step
    bar.update(1)
    clock.now = 2 * per_step
    bar.update(2)
    assert stream.getvalue().split("\r")[-1] == "    2/10000 [" + "." * 30 + "] - ETA: " + expected


def test_small_and_nan_values_use_exponent_format():
    stream = FakePipe()
    bar = Progbar(1, stateful_metrics=["a", "b", "c", "d"], stream=stream, clock=FakeClock())
    bar.update(1, [("a", 0.001), ("b", 0.0011), ("c", -0.5), ("d", float("nan"))])
    assert stream.getvalue().endswith(" - a: 1.0000e-03 - b: 0.0011 - c: -0.5000 - d: nan\n")


def test_non_stateful_values_are_averaged_over_steps_like_keras():
    stream, clock = FakePipe(), FakeClock()
    bar = Progbar(3, stream=stream, clock=clock)
    bar.update(1, [("loss", 1.0)])
    bar.update(3, [("loss", 0.5)])  # covers 2 steps: (1 * 1 + 0.5 * 2) / 3
    assert stream.getvalue().endswith(" - loss: 0.6667\n")


def test_verbose_2_prints_one_line_per_epoch():
    times = [[0.0] + [1.252 + 0.002 * k for k in range(1875)]] * 3
    logs = [{"loss": 0.2950, "accuracy": 0.9148}] * 3
    text = fit_progbar(FakeTTY(), FakeClock(), times, logs, batch_logs={"loss": 1.0}, verbose=2)
    line = "1875/1875 - 5s - loss: 0.2950 - accuracy: 0.9148\n"
    assert text == "".join(f"Epoch {e}/3\n" + line for e in (1, 2, 3))


def test_verbose_2_keeps_keras_sign_quirk():
    # Keras 2.4's verbose=2 branch tests `avg > 1e-3` (no abs): negatives use %.4e.
    stream = FakePipe()
    bar = Progbar(1, verbose=2, stateful_metrics=["x"], stream=stream, clock=FakeClock())
    bar.update(1, [("x", -0.5)])
    assert stream.getvalue() == "1/1 - 0s - x: -5.0000e-01\n"


def test_unknown_target_is_taken_from_the_steps_seen():
    text = fit_progbar(FakePipe(), FakeClock(), [[0.0, 1.0, 2.0, 3.0]], [{"loss": 0.125}],
                       known_steps=False)
    # (3 - 1) / 2 = 1 s per step.
    assert text == "3/3 [==============================] - 3s 1s/step - loss: 0.1250\n"


def test_fit_without_verbose_progbar_prints_nothing():
    assert fit_progbar(FakePipe(), FakeClock(), [[0.0, 1.0]], [{"loss": 1.0}], verbose=0) == ""


# -- evaluate and predict ---------------------------------------------------------------


def _evaluate(callbacks, clock, times, logs):
    callbacks.on_test_begin()
    for batch, now in enumerate(times):
        clock.now = now
        callbacks.on_test_batch_end(batch, logs)
    callbacks.on_test_end(logs)


def test_evaluate_prints_a_bar_but_validation_inside_fit_is_silent():
    stream, clock = FakePipe(), FakeClock()
    logger = ProgbarLogger(stream=stream, clock=clock)
    callbacks = CallbackList([logger], verbose=1, epochs=1, steps=2)
    callbacks.on_train_begin()
    _evaluate(callbacks, clock, [0.5, 1.0], {"loss": 0.5})      # validation: silent
    assert stream.getvalue() == ""
    callbacks.on_train_end()
    _evaluate(callbacks, clock, [1.5, 2.0], {"loss": 0.5})      # a later evaluate()
    assert stream.getvalue() == ("2/2 [==============================] - 1s 500ms/step - "
                                 "loss: 0.5000\n")


def test_predict_bar_shows_no_values():
    stream, clock = FakePipe(), FakeClock()
    callbacks = CallbackList([ProgbarLogger(stream=stream, clock=clock)], verbose=1, epochs=1,
                             steps=2)
    callbacks.on_predict_begin()
    for batch, now in enumerate([0.5, 1.0]):
        clock.now = now
        callbacks.on_predict_batch_end(batch, {"outputs": np.zeros(3)})
    callbacks.on_predict_end()
    assert stream.getvalue() == "2/2 [==============================] - 1s 500ms/step\n"


# -- a tiny model and fit loop for the other callbacks ------------------------------------


class FakeModel:
    """Weights count the batches trained; records saves."""

    def __init__(self, with_save: bool = False) -> None:
        self.weights = [np.zeros(2), np.zeros(1)]
        self.stop_training = False
        self.saved = []
        self.restored = []
        if with_save:
            self.save = lambda path: self.saved.append(("model", path))

    def train_step(self) -> None:
        for w in self.weights:
            w += 1

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.restored.append([w.copy() for w in weights])
        self.weights = [w.copy() for w in weights]

    def save_weights(self, path):
        self.saved.append(path)


def simulate_fit(callbacks, model, epoch_logs, steps=2):
    callback_list = CallbackList(callbacks, add_history=True, model=model, verbose=0,
                                 epochs=len(epoch_logs), steps=steps)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        callback_list.on_epoch_begin(epoch)
        for batch in range(steps):
            callback_list.on_train_batch_begin(batch)
            model.train_step()
            callback_list.on_train_batch_end(batch, {"loss": logs.get("loss", 0.0)})
        callback_list.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    callback_list.on_train_end()
    return callback_list.history


def val_losses(*values):
    return [{"loss": 1.0, "val_loss": v} for v in values]


def test_history_records_every_epoch():
    model = FakeModel()
    logs = [{"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7},
            {"loss": 0.4, "accuracy": 0.9, "val_loss": 0.5, "val_accuracy": 0.75}]
    history = simulate_fit([], model, logs)
    assert history.history == {"loss": [0.5, 0.4], "accuracy": [0.8, 0.9],
                               "val_loss": [0.6, 0.5], "val_accuracy": [0.7, 0.75]}
    assert history.epoch == [0, 1]
    assert model.history is history


def test_early_stopping_patience_and_restore_best_weights(capsys):
    model = FakeModel()
    stopper = EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    history = simulate_fit([stopper], model, val_losses(1.0, 0.9, 0.95, 0.97, 0.85, 0.8))
    # Best at epoch 1; epochs 2 and 3 do not improve -> wait reaches 2 at epoch 3.
    assert history.epoch == [0, 1, 2, 3]
    assert stopper.stopped_epoch == 3 and stopper.best == 0.9
    # Restored to the weights after epoch 1 (2 epochs x 2 batches).
    assert model.weights[0].tolist() == [4.0, 4.0]
    assert capsys.readouterr().out == ("Restoring model weights from the end of the best epoch.\n"
                                       "Epoch 00004: early stopping\n")


def test_early_stopping_patience_zero_stops_at_first_non_improvement():
    model = FakeModel()
    stopper = EarlyStopping(patience=0)
    history = simulate_fit([stopper], model, val_losses(1.0, 0.9, 0.9, 0.5))
    assert history.epoch == [0, 1, 2] and model.restored == []


def test_early_stopping_min_delta_and_modes():
    # An improvement must beat best by more than min_delta.
    stopper = EarlyStopping(min_delta=0.15, patience=1)
    assert simulate_fit([stopper], FakeModel(), val_losses(1.0, 0.9, 0.8, 0.7)).epoch == [0, 1]
    assert simulate_fit([EarlyStopping(patience=1)], FakeModel(),
                        val_losses(1.0, 0.9, 0.8, 0.7)).epoch == [0, 1, 2, 3]
    # 'auto' maximises a monitor containing 'acc'.
    logs = [{"val_accuracy": a} for a in (0.5, 0.6, 0.55, 0.7)]
    history = simulate_fit([EarlyStopping(monitor="val_accuracy", patience=1)], FakeModel(), logs)
    assert history.epoch == [0, 1, 2]
    history = simulate_fit([EarlyStopping(monitor="val_accuracy", mode="min", patience=1)],
                           FakeModel(), logs)
    assert history.epoch == [0, 1]
    with pytest.raises(ValueError, match="`mode` must be 'auto', 'min' or 'max'"):
        EarlyStopping(mode="maximum")


def test_early_stopping_baseline_never_beaten_keeps_weights(capsys):
    model = FakeModel()
    stopper = EarlyStopping(baseline=0.5, patience=2, restore_best_weights=True, verbose=1)
    history = simulate_fit([stopper], model, val_losses(0.9, 0.8, 0.7))
    assert history.epoch == [0, 1] and model.restored == []
    assert model.weights[0].tolist() == [4.0, 4.0]
    assert "keeping the current weights" in capsys.readouterr().out


def test_early_stopping_without_monitor_warns_and_continues():
    with pytest.warns(RuntimeWarning, match="`val_loss` which is not available. Available "
                                            "metrics are: loss"):
        history = simulate_fit([EarlyStopping()], FakeModel(), [{"loss": 1.0}] * 3)
    assert history.epoch == [0, 1, 2]


def test_model_checkpoint_formats_the_path_per_epoch(tmp_path):
    model = FakeModel()
    pattern = os.path.join(tmp_path, "w.{epoch:02d}-{val_loss:.2f}.h5")
    simulate_fit([ModelCheckpoint(pattern, save_weights_only=True)], model,
                 val_losses(0.5, 0.4567, 0.6))
    assert model.saved == [os.path.join(tmp_path, name)
                           for name in ("w.01-0.50.h5", "w.02-0.46.h5", "w.03-0.60.h5")]


def test_model_checkpoint_save_best_only(capsys):
    model = FakeModel()
    checkpoint = ModelCheckpoint("best-{epoch}.h5", save_best_only=True, save_weights_only=True,
                                 verbose=1)
    simulate_fit([checkpoint], model, val_losses(0.5, 0.4, 0.45, 0.3))
    assert model.saved == ["best-1.h5", "best-2.h5", "best-4.h5"]
    assert capsys.readouterr().out == (
        "\nEpoch 00001: val_loss improved from inf to 0.50000, saving model to best-1.h5\n"
        "\nEpoch 00002: val_loss improved from 0.50000 to 0.40000, saving model to best-2.h5\n"
        "\nEpoch 00003: val_loss did not improve from 0.40000\n"
        "\nEpoch 00004: val_loss improved from 0.40000 to 0.30000, saving model to best-4.h5\n")
    # 'auto' maximises accuracy.
    model = FakeModel()
    logs = [{"val_acc": a} for a in (0.5, 0.7, 0.6)]
    simulate_fit([ModelCheckpoint("{epoch}", monitor="val_acc", save_best_only=True)], model, logs)
    assert model.saved == ["1", "2"]


def test_model_checkpoint_saves_the_model_when_it_can(capsys):
    model = FakeModel(with_save=True)
    simulate_fit([ModelCheckpoint("m{epoch}", verbose=1)], model, val_losses(0.5))
    assert model.saved == [("model", "m1")]
    assert capsys.readouterr().out == "\nEpoch 00001: saving model to m1\n"
    model = FakeModel(with_save=True)
    simulate_fit([ModelCheckpoint("w{epoch}", save_weights_only=True)], model, val_losses(0.5))
    assert model.saved == ["w1"]


def test_model_checkpoint_batch_frequency_and_errors(tmp_path):
    model = FakeModel()
    simulate_fit([ModelCheckpoint("b{epoch}", save_freq=3, save_weights_only=True)], model,
                 val_losses(0.5, 0.4, 0.3), steps=2)
    assert model.saved == ["b2", "b3"]  # after batches 3 (epoch 2) and 6 (epoch 3)
    with pytest.raises(KeyError, match=r"no value for the field \{val_acc\}; available "
                                       r"fields: epoch, loss, val_loss"):
        simulate_fit([ModelCheckpoint("{val_acc}")], FakeModel(), val_losses(0.5))
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint("x", save_freq="batch")
    with pytest.warns(RuntimeWarning, match="Can save best model only with val_loss"):
        simulate_fit([ModelCheckpoint("x", save_best_only=True)], FakeModel(), [{"loss": 1.0}])
    model = FakeModel()
    simulate_fit([ModelCheckpoint(tmp_path / "p{epoch}", save_weights_only=True)], model,
                 val_losses(0.5))
    assert model.saved == [str(tmp_path / "p1")]


# -- CallbackList ---------------------------------------------------------------------


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch))


def test_callback_list_order_defaults_and_aliases():
    recorder = Recorder()
    model = FakeModel()
    callbacks = CallbackList([recorder], add_history=True, add_progbar=True, model=model,
                             verbose=1, epochs=2, steps=3)
    assert isinstance(callbacks.callbacks[0], ProgbarLogger)  # progbar first
    assert callbacks.callbacks[1] is recorder
    assert isinstance(callbacks.callbacks[2], History)        # history last
    assert all(c.model is model for c in callbacks)
    assert recorder.params == {"verbose": 1, "epochs": 2, "steps": 3}
    callbacks.on_train_batch_begin(0)
    callbacks.on_batch_end(0, {"loss": 1.0})
    assert recorder.calls == [("batch_begin", 0), ("batch_end", 0, {"loss": 1.0})]
    history = History()
    assert CallbackList([history], add_history=True).callbacks == [history]
    with pytest.raises(TypeError, match="Callback instances"):
        CallbackList([lambda: None])


def test_callback_base_hooks_do_nothing():
    callback = Callback()
    for hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
                 "on_predict_begin", "on_predict_end"):
        getattr(callback, hook)({})
    for hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
                 "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
                 "on_predict_batch_end"):
        getattr(callback, hook)(0, {})
    assert callback.model is None and callback.params == {}
