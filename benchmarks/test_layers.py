"""Per-layer forward/backward: fastconv (C) vs its NumPy backend vs PyTorch CPU.

Groups are per layer, direction and thread count, so pytest-benchmark's table
puts the three implementations side by side:

    pytest benchmarks --benchmark-only --benchmark-json=bench.json
"""
import numpy as np
import pytest

from fastconv import ops
from fastconv.bench import LAYERS, _TorchLayer

IMPLS = ["fastconv", "numpy", "torch"]


def _problem(case):
    rng = np.random.default_rng(0)
    g = case.geometry()
    x = rng.standard_normal(case.x_shape).astype(np.float32)
    dy = rng.standard_normal((g.n, g.out_h, g.out_w, g.c_out)).astype(np.float32)
    if case.kind == "conv":
        kernel = (rng.standard_normal(case.window) * 0.1).astype(np.float32)
        bias = np.zeros(case.window[3], np.float32)
        kw = dict(strides=case.strides, padding=case.padding)
        fwd = lambda: ops.conv2d(x, kernel, bias, activation="relu", **kw)  # noqa: E731
        bwd = lambda: ops.conv2d_backward(dy, x, kernel, compute_dx=not case.first, **kw)  # noqa
    else:
        kernel = bias = None
        kw = dict(pool_size=case.window, strides=case.strides, padding=case.padding)
        fwd = lambda: ops.max_pool2d(x, **kw)  # noqa: E731
        bwd = lambda: ops.max_pool2d_backward(dy, x, **kw)  # noqa: E731
    return x, kernel, bias, dy, fwd, bwd


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("case", LAYERS, ids=[c.name.split(" (")[0] for c in LAYERS])
def test_layer(benchmark, case, direction, impl, n_threads):
    x, kernel, bias, dy, fwd, bwd = _problem(case)
    benchmark.group = f"{case.name} {direction} {n_threads}T"
    benchmark.extra_info.update(layer=case.name, direction=direction, threads=n_threads,
                                macs=case.macs())
    if impl == "torch":
        pytest.importorskip("torch", reason="PyTorch is not installed")
        layer = _TorchLayer(case, x, kernel, bias, dy)
        fn = layer.forward if direction == "forward" else layer.backward
    else:
        fn = fwd if direction == "forward" else bwd
        if impl == "numpy":
            inner = fn

            def fn():
                with ops.use_backend("numpy"):
                    return inner()
    rounds = 3 if impl == "numpy" else 15
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)
