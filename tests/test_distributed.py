"""fastconv.distributed on a LocalCluster of 2 worker processes on 127.0.0.1:
predict over a dask array and a shard folder equals a local predict bitwise;
distributed fit equals the same replicas run locally, bitwise, also when a
worker is killed mid-fit; workers get their share of the cores."""
from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest

from fastconv import backend, distributed, ops
from fastconv.callbacks import LambdaCallback
from fastconv.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D
from fastconv.models import Model

da = pytest.importorskip("dask.array")
dask_distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    # The nannies set OMP_NUM_THREADS=1 & co in this process's environment
    # before they spawn their workers; later tests' children must not inherit it.
    saved = dict(os.environ)
    cluster = dask_distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address=None)
    try:
        with dask_distributed.Client(cluster) as c:
            yield c
    finally:
        cluster.close()
        os.environ.clear()
        os.environ.update(saved)


def _model(seed=0):
    backend.set_random_seed(seed)
    inputs = Input((12, 12, 1))
    x = MaxPooling2D()(BatchNormalization()(Conv2D(4, 3, activation="relu")(inputs)))
    outputs = Dense(3, activation="softmax")(Dropout(0.3)(Flatten()(x)))
    model = Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n=96):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 12, 12, 1)).astype(np.float32)
    return x, (x[:, 0, 0, 0] > 0).astype(np.int64) + (x[:, 5, 5, 0] > 0.5)


def _same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_configure_gives_each_worker_its_share_of_the_cores(client):
    threads = distributed.configure(client)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert set(threads) == set(client.scheduler_info()["workers"])
    assert set(threads.values()) == {max(1, cores // 2)}     # 2 workers x 1 Dask thread


@pytest.mark.parametrize("chunk", [40, 96])
def test_predict_over_a_dask_array_equals_local_predict_bitwise(client, chunk):
    x, _ = _data()
    model = _model()
    model.fit(x, _data()[1], epochs=1, verbose=0)
    result = distributed.predict(model, da.from_array(x, chunks=(chunk, 6, 12, 1)),
                                 client=client, batch_size=16)
    assert result.shape == (96, 3) and all(c % 16 == 0 for c in result.chunks[0][:-1])
    np.testing.assert_array_equal(result.compute(), model.predict(x, batch_size=16))


def test_predict_over_a_shard_folder(client, tmp_path):
    x, _ = _data()
    for i, part in enumerate(np.split(x, [32, 70])):
        np.save(tmp_path / f"shard_{i:02d}.npy", part)
    model = _model()
    result = distributed.predict(model, str(tmp_path), client=client)
    assert result.chunks[0] == (32, 38, 26)
    expected = np.concatenate([model.predict(p) for p in np.split(x, [32, 70])])
    np.testing.assert_array_equal(result.compute(), expected)


def test_three_epochs_of_distributed_fit_equal_the_local_replicas_bitwise(client):
    x, y = _data()
    local = _model()
    local_history = distributed.fit(local, x, y, replicas=2, epochs=3, batch_size=16, seed=3)
    spread = _model()
    history = distributed.fit(spread, x, y, client=client, epochs=3, batch_size=16, seed=3)
    _same_weights(local, spread)
    assert history.history == local_history.history
    assert sorted(history.history) == ["accuracy", "loss"]
    assert spread.optimizer.iterations == 18


def _model_without_dropout(seed=0):
    backend.set_random_seed(seed)
    inputs = Input((12, 12, 1))
    x = MaxPooling2D()(BatchNormalization()(Conv2D(4, 3, activation="relu")(inputs)))
    model = Model(inputs, Dense(3, activation="softmax")(Flatten()(x)))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_one_replica_is_model_fit_bitwise_and_more_only_round_differently():
    x, y = _data()
    plain = _model_without_dropout()
    plain_history = plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    one = _model_without_dropout()
    history = distributed.fit(one, x, y, replicas=1, epochs=2, batch_size=16, shuffle=False)
    _same_weights(plain, one)
    assert history.history == plain_history.history
    # Two replicas normalise each slice with its own batch statistics (as
    # unsynchronised data-parallel batch norm does) and round the summed
    # gradient differently: close, not equal.
    two = _model_without_dropout()
    distributed.fit(two, x, y, replicas=2, epochs=2, batch_size=16, shuffle=False)
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)


def test_a_worker_killed_mid_fit_changes_nothing(client):
    x, y = _data()
    local = _model()
    distributed.fit(local, x, y, replicas=2, epochs=3, batch_size=16, seed=5)
    victim = sorted(client.run(os.getpid).values())[0]
    begun = []

    def kill(batch, logs):
        if len(begun) == 2 and batch == 1:
            os.kill(victim, signal.SIGKILL)

    spread = _model()
    distributed.fit(spread, x, y, client=client, replicas=2, epochs=3, batch_size=16, seed=5,
                    callbacks=[LambdaCallback(on_epoch_begin=lambda e, logs: begun.append(e),
                                              on_train_batch_begin=kill)])
    _same_weights(local, spread)
    client.wait_for_workers(2, timeout=60)      # the nanny restarts the killed worker


def test_without_dask_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"fastconv\[dask\]"):
        distributed.predict(_model(), np.zeros((2, 12, 12, 1), np.float32))


def test_bad_arguments_are_named(client):
    model = _model()
    with pytest.raises(TypeError, match="`x` must be a dask array"):
        distributed.predict(model, np.zeros((2, 12, 12, 1), np.float32), client=client)
    with pytest.raises(ValueError, match="no .npy shards"):
        distributed.predict(model, "/nonexistent/folder", client=client)
    with pytest.raises(ValueError, match="`replicas`"):
        distributed.fit(model, *_data(8), replicas=0)
    with pytest.raises(RuntimeError, match="compile"):
        distributed.fit(Model(model.inputs, model.outputs), *_data(8))
    assert ops.get_num_threads() >= 1
