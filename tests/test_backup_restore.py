"""BackupAndRestore: a fit killed with SIGKILL and started again ends with the
weights of an uninterrupted run, bitwise; the optimizer state it saves
(``get_state``/``set_state``) continues every optimizer bitwise; bad backups
are refused before anything changes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastconv import backend, optimizers
from fastconv.callbacks import BackupAndRestore, LambdaCallback, experimental
from fastconv.layers import BatchNormalization, Dense, Dropout, Input
from fastconv.models import Model

EPOCHS = 4

# One training run as a script: the same seed, data and model each time.
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from fastconv import backend
    from fastconv.callbacks import BackupAndRestore, LambdaCallback
    from fastconv.layers import BatchNormalization, Dense, Dropout, Input
    from fastconv.models import Model

    backup_dir, out_path, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    backend.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    inputs = Input((6,))
    hidden = Dropout(0.3)(BatchNormalization()(Dense(8, activation="relu")(inputs)))
    hidden = Dropout(0.2, seed=5)(hidden)
    model = Model(inputs, Dense(2, activation="softmax")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

    def maybe_die(batch, logs):
        # Mid-epoch, after the backup of the epoch before: that epoch's work is lost.
        if kill_at >= 0 and len(seen) == kill_at and batch == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    seen = []
    callbacks = [BackupAndRestore(backup_dir),
                 LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch),
                                on_train_batch_end=maybe_die)]
    history = model.fit(x, y, batch_size=8, epochs={epochs}, callbacks=callbacks, verbose=0)
    np.savez(out_path, *model.get_weights(), epochs=np.array(seen))
""").format(epochs=EPOCHS)


def _run(tmp_path, name, backup_dir, kill_at):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{name}.npz"
    proc = subprocess.run([sys.executable, str(script), str(backup_dir), str(out), str(kill_at)],
                          capture_output=True, text=True, timeout=120)
    return proc, out


def test_a_fit_killed_mid_epoch_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    reference, reference_out = _run(tmp_path, "reference", tmp_path / "ref_backup", -1)
    assert reference.returncode == 0, reference.stderr
    backup_dir = tmp_path / "backup"
    killed, killed_out = _run(tmp_path, "killed", backup_dir, 3)   # in the third epoch
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not killed_out.exists()
    assert (backup_dir / "backup.npz").exists()
    resumed, resumed_out = _run(tmp_path, "resumed", backup_dir, -1)
    assert resumed.returncode == 0, resumed.stderr
    with np.load(reference_out) as ref, np.load(resumed_out) as res:
        np.testing.assert_array_equal(res["epochs"], [2, 3])   # epochs 0 and 1 were backed up
        np.testing.assert_array_equal(ref["epochs"], np.arange(EPOCHS))
        weights = [key for key in ref.files if key.startswith("arr_")]
        assert len(weights) == 8                              # moving statistics included
        for key in weights:
            np.testing.assert_array_equal(ref[key], res[key])
    assert not (backup_dir / "backup.npz").exists()           # a finished fit deletes it


def _model(seed=0, units=4):
    backend.set_random_seed(seed)
    inputs = Input((3,))
    model = Model(inputs, Dense(2, activation="softmax")(Dropout(0.25)(
        Dense(units, activation="relu")(inputs))))
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model


def _data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((24, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


class Boom(Exception):
    pass


def test_an_exception_keeps_the_backup_and_the_next_fit_resumes_bitwise(tmp_path):
    x, y = _data()
    reference = _model()
    reference.fit(x, y, batch_size=6, epochs=3, verbose=0)

    def fail(batch, logs):
        if len(begun) == 2 and batch == 1:
            raise Boom

    begun = []
    model = _model()
    backup = BackupAndRestore(tmp_path)
    counter = LambdaCallback(on_epoch_begin=lambda epoch, logs: begun.append(epoch),
                             on_train_batch_end=fail)
    with pytest.raises(Boom):
        model.fit(x, y, batch_size=6, epochs=3, verbose=0, callbacks=[backup, counter])
    assert os.path.exists(backup.backup_path)
    begun.clear()
    history = model.fit(x, y, batch_size=6, epochs=3, verbose=0, callbacks=[backup])
    assert history.epoch == [1, 2]
    for a, b in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == reference.optimizer.iterations == 12
    assert not os.path.exists(backup.backup_path)


def test_bad_backups_are_refused_before_anything_changes(tmp_path):
    x, y = _data()
    other = _model(units=5)
    other.fit(x, y, epochs=1, verbose=0, callbacks=[BackupAndRestore(tmp_path / "other")])
    # A backup left by a run that was stopped: keep the file by raising.
    with pytest.raises(Boom):
        other.fit(x, y, epochs=2, verbose=0, callbacks=[
            BackupAndRestore(tmp_path / "other"),
            LambdaCallback(on_epoch_end=lambda epoch, logs: (_ for _ in ()).throw(Boom()))])
    model = _model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="do not match this model"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BackupAndRestore(tmp_path / "other")])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "backup.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="cannot read the backup"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BackupAndRestore(tmp_path / "bad")])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0
    with pytest.raises(ValueError, match="backup_dir"):
        BackupAndRestore("")
    assert experimental.BackupAndRestore is BackupAndRestore


OPTIMIZERS = [optimizers.SGD(0.1, momentum=0.9, nesterov=True), optimizers.Adam(0.01),
              optimizers.Adam(0.01, amsgrad=True), optimizers.RMSprop(0.01, momentum=0.5),
              optimizers.Adagrad(0.1), optimizers.Adadelta(1.0), optimizers.Adamax(0.01),
              optimizers.Nadam(0.01)]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o.get_config()["name"] + (
    "_ams" if o.get_config().get("amsgrad") else ""))
def test_optimizer_state_continues_bitwise(optimizer):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4)]
    grads = [[rng.standard_normal(p.shape).astype(p.dtype) for p in params] for _ in range(6)]
    for step in grads[:3]:
        optimizer.apply_gradients(zip(step, params))
    state = optimizer.get_state(params)
    copies = [p.copy() for p in params]
    fresh = type(optimizer).from_config(optimizer.get_config())
    fresh.set_state(copies, state)
    for step in grads[3:]:
        optimizer.apply_gradients(zip(step, params))
        fresh.apply_gradients(zip(step, copies))
    for a, b in zip(params, copies):
        np.testing.assert_array_equal(a, b)
    assert fresh.iterations == optimizer.iterations == 6


def test_optimizer_state_is_checked_whole():
    params = [np.zeros((2, 2), np.float32)]
    adam = optimizers.Adam()
    adam.apply_gradients([(np.ones((2, 2), np.float32), params[0])])
    state = adam.get_state(params)
    assert sorted(state) == ["iterations", "learning_rate", "slot/0/m", "slot/0/v"]
    fresh = optimizers.Adam()
    for bad, match in [({**state, "slot/0/m": np.zeros(3, np.float32)}, "shape"),
                       ({**state, "slot/1/m": state["slot/0/m"]}, "cannot restore"),
                       ({k: v for k, v in state.items() if k != "slot/0/v"}, "lacks the slots"),
                       ({k: v for k, v in state.items() if k != "iterations"}, "iterations")]:
        with pytest.raises(ValueError, match=match):
            fresh.set_state(params, bad)
        assert fresh.iterations == 0 and fresh.get_state(params) == {
            "iterations": 0, "learning_rate": 0.001}
