"""pytest-benchmark suite: `pytest benchmarks --benchmark-only` (never part of the tests)."""
import os

import pytest

import fastconv as fc

THREADS = sorted({1, os.cpu_count() or 1})


@pytest.fixture(params=THREADS, ids=lambda n: f"{n}T")
def n_threads(request):
    """Runs each benchmark at 1 thread and at all cores (fastconv, NumPy's BLAS, torch)."""
    n = request.param
    previous = fc.set_num_threads(n)
    limits = None
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        pass
    torch_threads = None
    try:
        import torch
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(n)
    except ImportError:
        pass
    yield n
    fc.set_num_threads(previous)
    if limits is not None:
        limits.unregister()
    if torch_threads is not None:
        import torch
        torch.set_num_threads(torch_threads)
