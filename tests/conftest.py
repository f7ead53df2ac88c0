"""Shared fixtures: random inputs, SIMD paths, tolerances, the optional oracle."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import Phase, settings

# The explain phase imports hypothesis' patch writer, whose dependencies emit
# DeprecationWarnings that filterwarnings=error turns into internal errors
# hiding the real failure.
settings.register_profile("fastconv", phases=[p for p in Phase if p != Phase.explain])
settings.load_profile("fastconv")

import fastconv as fc
from fastconv import ops

try:
    from fastconv import _kernels
except ImportError:  # tests of the C backend fail loudly through `c_backend`
    _kernels = None


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def simd_paths():
    return _kernels.simd_supported() if _kernels is not None else []


@pytest.fixture(params=simd_paths() or ["missing"])
def simd(request):
    """Run a test once per SIMD path this CPU and build support."""
    if _kernels is None:
        pytest.fail("fastconv._kernels did not import: the C backend is missing")
    previous = _kernels.get_simd()
    _kernels.set_simd(request.param)
    try:
        yield request.param
    finally:
        _kernels.set_simd(previous)


@pytest.fixture(autouse=True)
def _restore_settings():
    """Each test starts on the C backend with default threads."""
    ops.set_backend("c")
    previous = ops.set_num_threads(None)
    yield
    ops.set_backend("c")
    ops.set_num_threads(previous)


def assert_close(actual, expected, rtol, what="", scale=None):
    """Norm-wise relative error: max |a - e| <= rtol * max |e| (elementwise
    relative error is meaningless where sums cancel to ~0). ``scale``
    overrides max |e|: after a ReLU the largest output can be far smaller than
    the sums whose rounding errors it carries."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    scale = max(scale, 1e-30)
    err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert err <= rtol * scale, f"{what}: max abs error {err:.3e} > {rtol:.0e} * {scale:.3e}"


def numpy_backend(fn, *args, **kwargs):
    with fc.use_backend("numpy"):
        return fn(*args, **kwargs)


def randomize_batch_norms(model, rng):
    """``model`` with random BatchNormalization weights and statistics (fresh
    ones, 1 and 0, would hide a wrong fold)."""
    from fastconv.layers import BatchNormalization
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.set_weights([1 + 0.3 * rng.standard_normal(c), 0.2 * rng.standard_normal(c),
                               0.5 * rng.standard_normal(c), 0.5 + rng.random(c)])
    return model


@contextlib.contextmanager
def graph_index_emptied(graph, name, emptied=True):
    """``graph`` with its fusion index ``name`` (``_relu_masks_at_pools``,
    ``_relus_after_batch_norm``) empty inside the block when ``emptied``: the
    calls it names run unfused, the reference of the fused results."""
    saved = getattr(graph, name)
    if emptied:
        setattr(graph, name, {})
    try:
        yield graph
    finally:
        setattr(graph, name, saved)
