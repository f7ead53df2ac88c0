"""Measured thread scaling of the bench's layers and networks beside the
many-core model's prediction (fastconv.bench_scaling): one command for a
big machine (a measurement, never a test).

    python tools/thread_speedup.py [--threads 1,2,4,8,16] [--rounds 7]
                                   [--only words] [--no-models] [--json FILE]

For every layer of ``fastconv.bench.LAYERS`` (forward and backward) and the
training step and inference batch of every benchmark network, the thread
counts are interleaved within each round (the order alternating from round
to round) so that drift of the machine's load or clock affects every count
alike; medians are reported as speedup over 1 thread and efficiency
(speedup / T), with the model's predicted efficiency from a 1-thread record
of the same call. Layer results are checked bitwise equal across thread
counts. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List

import numpy as np

import fastconv as fc
from fastconv import bench, bench_models, bench_scaling


def _flat(result) -> List[np.ndarray]:
    items = result if isinstance(result, (tuple, list)) else (result,)
    return [np.asarray(a) for a in items if a is not None]


def measure(name: str, fn: Callable[[], object], threads: List[int], rounds: int,
            check_bitwise: bool) -> dict:
    times: Dict[int, List[float]] = {t: [] for t in threads}
    reference = None
    for t in threads:
        fc.set_num_threads(t)
        out = fn()
        fn()
        if check_bitwise:
            flat = _flat(out)
            if reference is None:
                reference = [a.copy() for a in flat]
            elif not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(flat, reference)):
                raise AssertionError(f"{name}: results differ between 1 and {t} threads")
    for r in range(rounds):
        for t in (threads if r % 2 == 0 else threads[::-1]):
            fc.set_num_threads(t)
            t0 = time.perf_counter()
            fn()
            times[t].append(time.perf_counter() - t0)
    med = {t: statistics.median(v) for t, v in times.items()}
    record = bench_scaling.record(fn, repeats=2)
    predicted = {t: bench_scaling.predict(record, t)[0] for t in threads}
    return {"what": name, "ms": {t: med[t] * 1e3 for t in threads},
            "efficiency": {t: med[threads[0]] / (t / threads[0] * med[t]) for t in threads},
            "predicted_efficiency": {t: record.seconds / (t * predicted[t]) for t in threads}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default=None,
                        help="comma-separated counts (default 1, 2, 4, ... up to the cores)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default=None, help="layers whose names hold one of these words")
    parser.add_argument("--no-models", action="store_true", help="layers only")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    threads = ([int(t) for t in args.threads.split(",")] if args.threads else
               [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= cores])
    info = fc.show_config("dicts")
    assert info is not None
    print(f"fastconv {info['fastconv']} from {os.path.dirname(fc.__file__)}; simd {info['simd']}, "
          f"openmp {info['openmp']}, cpu_count {cores}, numpy {np.__version__}")
    peaks = {t: bench.measure_peak(t) for t in threads}
    print("FMA peak GFLOP/s:", ", ".join(f"{t}T {p:.0f}" for t, p in peaks.items()))
    rng = np.random.default_rng(0)
    calls: List[tuple] = []
    for case in bench.LAYERS:
        if args.only and not any(w.lower() in case.name.lower() for w in args.only.split(",")):
            continue
        problem = bench.make_problem(case, rng, False)
        calls += [(f"{case.name} fwd", problem.fwd, True), (f"{case.name} bwd", problem.bwd, True)]
    if not args.no_models:
        for name in bench_models.MODELS:
            for what, fn in bench_models.scaling_calls(name, rng).items():
                calls.append((f"{name} {what}", fn, False))   # training changes the weights
    head = f"{'measured efficiency (predicted)':52s}" + "".join(f" {f'T={t}':>13s}" for t in threads)
    print(head)
    print("-" * len(head))
    rows = []
    for name, fn, bitwise in calls:
        row = measure(name, fn, threads, args.rounds, bitwise)
        rows.append(row)
        print(f"{name[:52]:52s}" + "".join(
            f" {100 * row['efficiency'][t]:5.0f}% ({100 * row['predicted_efficiency'][t]:3.0f}%)"
            for t in threads), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": info, "peaks": peaks, "rows": rows}, f, indent=1, default=str)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
