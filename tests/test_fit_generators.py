"""fit, evaluate and predict on generators, iterators, Sequences and lists of
batches: bitwise the results of the same batches as arrays, for any number of
workers; clear errors for malformed sources, and the weights of the last
whole step after one."""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from fastconv import backend, utils
from fastconv.callbacks import LambdaCallback
from fastconv.layers import Dense, Input
from fastconv.models import Model
from fastconv.optimizers import Adam

BATCH, STEPS = 8, 5


def _data(n=BATCH * STEPS):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return x, labels


def _model():
    backend.set_random_seed(0)
    inputs = Input((6,))
    model = Model(inputs, Dense(3, activation="softmax")(Dense(5, activation="relu")(inputs)))
    model.compile(optimizer=Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _batches(x, y, w=None):
    for i in range(0, len(x), BATCH):
        item = (x[i:i + BATCH], y[i:i + BATCH])
        yield item if w is None else item + (w[i:i + BATCH],)


def _endless(x, y):
    while True:
        yield from _batches(x, y)


class Reiterable:
    """A dataset-like iterable: a fresh pass over its batches per iter()."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return _batches(self.x, self.y)


class Batches(utils.Sequence):
    def __init__(self, x, y):
        self.x, self.y, self.epochs_ended = x, y, 0

    def __len__(self):
        return len(self.x) // BATCH

    def __getitem__(self, i):
        return self.x[i * BATCH:(i + 1) * BATCH], self.y[i * BATCH:(i + 1) * BATCH]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


@pytest.fixture
def reference():
    x, y = _data()
    model = _model()
    history = model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                        validation_data=(x[:16], y[:16]))
    return x, y, model, history


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("kind", ["generator", "sequence", "iterable"])
def test_fit_on_a_source_is_fit_on_the_same_batches_as_arrays(reference, kind, workers):
    x, y, expected, history = reference
    source = {"generator": lambda: _endless(x, y), "sequence": lambda: Batches(x, y),
              "iterable": lambda: Reiterable(x, y)}[kind]()
    model = _model()
    got = model.fit(source, epochs=3, verbose=0, workers=workers,
                    steps_per_epoch=None if kind == "sequence" else STEPS,
                    validation_data=_endless(x[:16], y[:16]) if kind == "generator"
                    else (x[:16], y[:16]), validation_steps=2 if kind == "generator" else None)
    _same_weights(model, expected)
    assert got.history == history.history
    if kind == "sequence":
        assert source.epochs_ended == 3
    assert not [t for t in threading.enumerate() if t.name == "fastconv-batches"]


def test_evaluate_and_predict_on_sources(reference):
    x, y, model, _ = reference
    want = model.evaluate(x, y, batch_size=BATCH, verbose=0)
    assert model.evaluate(_endless(x, y), steps=STEPS, verbose=0) == want
    assert model.evaluate(Batches(x, y), workers=3, verbose=0) == want
    np.testing.assert_array_equal(model.predict(Batches(x, y)), model.predict(x))
    np.testing.assert_array_equal(model.predict((b for b, _ in _batches(x, y)), steps=3),
                                  model.predict(x[:3 * BATCH]))


def test_class_weight_and_sample_weight_from_a_generator():
    x, y = _data()
    w = np.linspace(0.5, 1.5, len(x))
    weights = {0: 1.0, 1: 2.0, 2: 0.5}
    a, b = _model(), _model()
    a.fit(x, y, sample_weight=w, class_weight=weights, batch_size=BATCH, shuffle=False,
          verbose=0)
    b.fit(_batches(x, y, w), steps_per_epoch=STEPS, class_weight=weights, verbose=0)
    _same_weights(a, b)


def test_the_generator_aliases_warn_and_do_the_same(reference):
    x, y, expected, _ = reference
    model = _model()
    with pytest.warns(DeprecationWarning, match="fit_generator"):
        model.fit_generator(_endless(x, y), steps_per_epoch=STEPS, epochs=3, verbose=0,
                            validation_data=(x[:16], y[:16]))
    _same_weights(model, expected)
    with pytest.warns(DeprecationWarning, match="evaluate_generator"):
        assert model.evaluate_generator(Batches(x, y)) == expected.evaluate(x, y, verbose=0,
                                                                            batch_size=BATCH)
    with pytest.warns(DeprecationWarning, match="predict_generator"):
        np.testing.assert_array_equal(model.predict_generator(Batches(x, y)), model.predict(x))


def test_a_generator_without_steps_is_refused_not_run_forever():
    x, y = _data()
    with pytest.raises(ValueError, match="`steps_per_epoch` is needed"):
        _model().fit(_endless(x, y), epochs=2, verbose=0)
    with pytest.raises(ValueError, match="`steps` is needed"):
        _model().predict(b for b, _ in _batches(x, y))
    with pytest.raises(ValueError, match="must not be given"):
        _model().fit(Batches(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="`validation_split` needs array data"):
        _model().fit(Batches(x, y), validation_split=0.2, verbose=0)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bad_batch_mid_epoch_names_itself_and_keeps_the_last_whole_step(workers):
    x, y = _data()

    def broken():
        for step, (bx, by) in enumerate(_batches(x, y)):
            yield (bx[:, :4], by) if step == 3 else (bx, by)

    model = _model()
    with pytest.raises(ValueError, match="batch 3 of x"):
        model.fit(broken(), steps_per_epoch=STEPS, verbose=0, workers=workers)
    three = _model()
    three.fit(x[:3 * BATCH], y[:3 * BATCH], batch_size=BATCH, shuffle=False, verbose=0)
    _same_weights(model, three)
    with pytest.raises(ValueError, match=r"tuple \(x, y\)"):
        _model().fit(iter([x[:BATCH]]), steps_per_epoch=1, verbose=0, workers=workers)
    assert not [t for t in threading.enumerate() if t.name == "fastconv-batches"]


def test_an_error_inside_the_generator_reaches_the_caller():
    x, y = _data()

    def failing():
        yield from list(_batches(x, y))[:2]
        raise RuntimeError("the loader broke")

    with pytest.raises(RuntimeError, match="the loader broke"):
        _model().fit(failing(), steps_per_epoch=STEPS, verbose=0)
    assert not [t for t in threading.enumerate() if t.name == "fastconv-batches"]


def test_a_generator_that_runs_out_stops_training_with_a_warning():
    x, y = _data()
    model = _model()
    with pytest.warns(RuntimeWarning, match="ran out of data"):
        history = model.fit(_batches(x, y), steps_per_epoch=STEPS, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1


def test_stopping_early_releases_the_prefetch_thread():
    x, y = _data()
    model = _model()
    stop = LambdaCallback(on_batch_end=lambda b, logs: setattr(model, "stop_training", b == 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(_endless(x, y), steps_per_epoch=STEPS, epochs=2, verbose=0, callbacks=[stop],
                  max_queue_size=1)
    assert not [t for t in threading.enumerate() if t.name == "fastconv-batches"]


def test_calls_on_arrays_return_arrays_with_numpy_and_models_expose_variables():
    """Scripts written for TF eager write ``model(x).numpy()`` and iterate
    ``model.trainable_variables``; predict keeps returning plain arrays."""
    x, _ = _data()
    model = _model()
    out = model(x[:4])
    assert isinstance(out, np.ndarray) and type(out.numpy()) is np.ndarray
    np.testing.assert_array_equal(out.numpy(), model.predict(x[:4]))
    assert type(model.predict(x[:4])) is np.ndarray
    dense = model.layers[1]
    assert type(dense(x[:2]).numpy()) is np.ndarray
    assert [v.name for v in model.trainable_variables] == \
        [v.name for v in model.trainable_weights]
    assert model.variables == model.weights and dense.non_trainable_variables == []


class PidBatches(Batches):
    """Batches that record which process fetched them, and may fail."""

    def __init__(self, x, y, log_dir, fail_at=None, die_at=None):
        super().__init__(x, y)
        self.log_dir, self.fail_at, self.die_at = log_dir, fail_at, die_at

    def __getitem__(self, i):
        import os
        (self.log_dir / f"{os.getpid()}-{i}").touch()
        if i == self.fail_at:
            raise KeyError(f"no batch {i} here")
        if i == self.die_at:
            os._exit(3)
        return super().__getitem__(i)


def test_use_multiprocessing_fetches_a_sequence_in_processes_bitwise(reference, tmp_path):
    import os
    x, y, expected, history = reference
    model = _model()
    source = PidBatches(x, y, tmp_path)
    got = model.fit(source, epochs=3, verbose=0, workers=2, use_multiprocessing=True,
                    validation_data=(x[:16], y[:16]))
    _same_weights(model, expected)
    assert got.history == history.history
    pids = {int(name.split("-")[0]) for name in os.listdir(tmp_path)}
    assert pids and os.getpid() not in pids      # fetched by worker processes only
    assert source.epochs_ended == 3              # on_epoch_end runs in this process


def test_a_worker_process_that_raises_or_dies_stops_fit_with_an_error(tmp_path):
    x, y = _data()
    model = _model()
    with pytest.raises(KeyError, match="no batch 2 here"):
        model.fit(PidBatches(x, y, tmp_path, fail_at=2), verbose=0, workers=2,
                  use_multiprocessing=True)
    with pytest.raises(RuntimeError, match="worker process died"):
        model.fit(PidBatches(x, y, tmp_path, die_at=3), verbose=0, workers=2,
                  use_multiprocessing=True)
    assert model.optimizer.iterations > 0          # the steps before the bad batch count
    with pytest.warns(RuntimeWarning, match="needs a Sequence"):
        model.fit(_endless(x, y), steps_per_epoch=2, verbose=0, workers=2,
                  use_multiprocessing=True)
