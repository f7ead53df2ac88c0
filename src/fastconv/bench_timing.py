"""The timing primitives every bench module shares: alternating medians,
the measured FMA peak, and the NumPy BLAS thread limit.

Times are medians over rounds in which the implementations alternate, so
that drift on a shared machine (another tenant, a frequency change) hits
them alike; what is compared is measured in one process.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional

try:
    from . import _kernels
except ImportError:  # pragma: no cover - a build without the extension
    _kernels = None

__all__ = ["interleaved_medians", "measure_peak", "limit_numpy_blas"]


def interleaved_medians(fns: Dict[str, Callable[[], object]], rounds: int,
                        rounds_for: Optional[Dict[str, int]] = None, warmup: int = 2,
                        budget_s: Optional[float] = None, block: int = 1) -> Dict[str, float]:
    """Median seconds per call of each function, alternating them per round.

    ``rounds_for`` caps the rounds of slow entries (the NumPy backend);
    ``budget_s`` stops adding rounds once that much time was spent (at least
    three rounds run). With ``block > 1`` each round calls each function
    ``block`` times in a row and times all but the first of them: a
    framework switched to meets the previous one's thread pool still
    spinning (ONNX Runtime, OpenVINO and OpenMP teams busy-wait for a while
    after their work) and its own data evicted from the caches, and would
    pay for both. The bench's layer and inference rows use blocks of 2 (10
    for calls of a millisecond): measured on a 2-core Zen 5, the seed CNN's
    batch-256 inference at 2 threads read 9387 images/s in fastconv and
    11226 in ONNX Runtime timing every call, 13526 and 12028 in blocks of 2.
    """
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    start = time.perf_counter()
    for r in range(rounds):
        for key, fn in fns.items():
            if rounds_for and r >= rounds_for.get(key, rounds):
                continue
            for i in range(block):
                t0 = time.perf_counter()
                fn()
                if block == 1 or i > 0:
                    times[key].append(time.perf_counter() - t0)
        if budget_s is not None and r >= 2 and time.perf_counter() - start > budget_s:
            break
    return {k: statistics.median(v) for k, v in times.items() if v}


def measure_peak(n_threads: int) -> float:
    """FP32 GFLOP/s of the active SIMD path's FMA units on n_threads threads."""
    if _kernels is None:
        return float("nan")
    iters = 2_000_000 if _kernels.get_simd() != "generic" else 500_000
    _kernels.fma_peak_probe(iters // 10, n_threads)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        macs = _kernels.fma_peak_probe(iters, n_threads)
        best = max(best, 2 * macs / (time.perf_counter() - t0) / 1e9)
    return best


def limit_numpy_blas(n_threads: int):
    """threadpoolctl limits of NumPy's BLAS (the NumPy backend's matmuls)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n_threads, user_api="blas")
