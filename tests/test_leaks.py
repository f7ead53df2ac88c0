"""Issue 7: no leaks. Resident memory and the number of live Python objects
stay flat over thousands of calls of every op (both backends), over errors,
over model predictions and over several fit epochs.

The C kernels allocate per-call scratch (packed weights, pointer tables,
weight-gradient partials): a missing free shows up here as resident memory
growing with the number of calls. Each check runs the op until warm (glibc
arenas, NumPy's small-array cache, OpenMP's thread pool), measures, runs it
many more times and measures again.
"""
from __future__ import annotations

import gc
import os
import resource
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv import backend as fc_backend
from fastconv.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
from fastconv.models import Model
from reliability import SANITIZED

pytestmark = [
    pytest.mark.skipif(SANITIZED, reason="AddressSanitizer's quarantine holds freed memory"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm"),
]

PAGE = resource.getpagesize()
MB = 1 << 20


def rss() -> int:
    """Resident bytes of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def assert_flat(fn, calls: int, warmup: int = 50, tolerance: int = 3 * MB,
                objects_tolerance: int = 200):
    for _ in range(warmup):
        fn()
    gc.collect()
    objects_before, before = live_objects(), rss()
    for _ in range(calls):
        fn()
    gc.collect()
    grown, objects_grown = rss() - before, live_objects() - objects_before
    assert grown <= tolerance, (f"resident memory grew by {grown / MB:.1f} MB over {calls} calls "
                                f"({grown / calls:.0f} bytes per call)")
    assert objects_grown <= objects_tolerance, (f"{objects_grown} more live Python objects "
                                                f"after {calls} calls")


RNG = np.random.default_rng(3)
X = RNG.standard_normal((4, 12, 12, 16)).astype(np.float32)
X1 = RNG.standard_normal((4, 12, 12, 1)).astype(np.float32)  # the gather path
K = RNG.standard_normal((3, 3, 16, 40)).astype(np.float32)
K1 = RNG.standard_normal((3, 3, 1, 40)).astype(np.float32)
B = RNG.standard_normal(40).astype(np.float32)
DY = RNG.standard_normal((4, 6, 6, 40)).astype(np.float32)
DP = RNG.standard_normal((4, 6, 6, 16)).astype(np.float32)
XD = RNG.standard_normal((8, 300)).astype(np.float32)
KD = RNG.standard_normal((300, 70)).astype(np.float32)
DYD = RNG.standard_normal((8, 70)).astype(np.float32)

OPS = {
    "conv2d": lambda: fc.conv2d(X, K, B, strides=2, padding="same", activation="relu"),
    "conv2d_first_layer": lambda: fc.conv2d(X1, K1, B, padding="same"),
    "conv2d_backward": lambda: fc.conv2d_backward(DY, X, K, strides=2, padding="same"),
    "conv2d_backward_first_layer": lambda: fc.conv2d_backward(
        DY, X1, K1, strides=2, padding="same", compute_dx=False),
    "max_pool2d": lambda: fc.max_pool2d(X, 3, 2, "same"),
    "max_pool2d_backward": lambda: fc.max_pool2d_backward(DP, X, 3, 2, "same"),
    "max_pool2d_backward_tiled": lambda: fc.max_pool2d_backward(DP, X, 2),
    "dense": lambda: fc.dense(XD, KD, activation="relu"),
    "dense_backward": lambda: fc.dense_backward(DYD, XD, KD),
}


@pytest.mark.parametrize("backend,calls", [("c", 2000), ("numpy", 300)])
@pytest.mark.parametrize("op", sorted(OPS))
def test_ops_do_not_leak(op, backend, calls):
    with fc.use_backend(backend):
        assert_flat(OPS[op], calls)


def test_threads_setting_changes_do_not_leak():
    """Per-thread scratch with changing team sizes (1, 2, default)."""
    counts = iter(range(10**9))

    def call():
        fc.set_num_threads([1, 2, None][next(counts) % 3])
        OPS["conv2d_backward"]()
        OPS["conv2d"]()
        OPS["max_pool2d_backward"]()
    try:
        assert_flat(call, 300, warmup=30)
    finally:
        fc.set_num_threads(None)


def test_errors_do_not_leak():
    """Refused calls (validation errors, raised and caught) leave nothing."""
    def call():
        for fn, args in ((fc.conv2d, (X, K[:, :, :3])), (fc.max_pool2d, (X[:, :1], 3)),
                         (fc.dense, (XD, KD[:5])), (fc.conv2d_backward, (DP, X, K))):
            try:
                fn(*args)
            except ValueError:
                pass
    assert_flat(call, 3000)


@pytest.fixture(autouse=True)
def one_thread_unless_asked():
    """One OpenMP thread: on a busy machine OpenMP's barriers can cost
    milliseconds per call (test_threads_setting_changes_do_not_leak covers
    teams of several threads)."""
    fc.set_num_threads(1)
    yield
    fc.set_num_threads(None)


def _model():
    fc_backend.clear_session()
    fc_backend.set_random_seed(0)
    inputs = Input((12, 12, 1))
    x = Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = MaxPooling2D(2)(x)
    x = Conv2D(16, 3, activation="relu")(x)
    outputs = Dense(10, activation="softmax")(Flatten()(x))
    return Model(inputs, outputs)


def test_model_predict_and_gradients_do_not_leak():
    model = _model()
    x = RNG.standard_normal((16, 12, 12, 1)).astype(np.float32)
    d_out = RNG.standard_normal((16, 10)).astype(np.float32)

    def call():
        model.predict(x, batch_size=8)
        model.forward(x)
        model.backward(d_out)
    assert_flat(call, 400)


@pytest.mark.skipif(not hasattr(Model, "fit"), reason="Model.fit is not implemented yet")
def test_fit_epochs_do_not_leak():
    model = _model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = RNG.standard_normal((256, 12, 12, 1)).astype(np.float32)
    y = RNG.integers(0, 10, 256)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_split=0.25)
    gc.collect()
    objects_before, before = live_objects(), rss()
    history = model.fit(x, y, batch_size=32, epochs=12, verbose=0, validation_split=0.25)
    gc.collect()
    assert len(history.history["loss"]) == 12
    grown = rss() - before
    assert grown <= 4 * MB, f"resident memory grew by {grown / MB:.1f} MB over 12 epochs"
    # a History per fit call and its per-epoch floats are expected
    assert live_objects() - objects_before <= 300
    model.evaluate(x, y, verbose=0)
    model.train_on_batch(x[:32], y[:32])
