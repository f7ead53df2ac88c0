"""Per-layer forward/backward: fastconv (C) vs its NumPy backend vs PyTorch CPU.

Groups are per layer, direction and thread count, so pytest-benchmark's table
puts the three implementations side by side:

    pytest benchmarks --benchmark-only --benchmark-json=bench.json
"""
import numpy as np
import pytest

from fastconv import ops
from fastconv.bench import LAYERS, make_problem

IMPLS = ["fastconv", "numpy", "torch"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("case", LAYERS, ids=[c.name.split(" (")[0] for c in LAYERS])
def test_layer(benchmark, case, direction, impl, n_threads):
    if impl == "torch":
        pytest.importorskip("torch", reason="PyTorch is not installed")
    problem = make_problem(case, np.random.default_rng(0), with_torch=impl == "torch")
    benchmark.group = f"{case.name} {direction} {n_threads}T"
    benchmark.extra_info.update(layer=case.name, direction=direction, threads=n_threads,
                                macs=case.macs())
    if impl == "torch":
        fn = problem.torch_fwd if direction == "forward" else problem.torch_bwd
    else:
        fn = problem.fwd if direction == "forward" else problem.bwd
        if impl == "numpy":
            inner = fn

            def fn():
                with ops.use_backend("numpy"):
                    return inner()
    rounds = 3 if impl == "numpy" else 15
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)
