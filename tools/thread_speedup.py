"""1 -> 2 thread speedup of the seed CNN's conv2d_1 forward (a measurement,
never a test): batch 64, 28x28x32 input, 3x3x32x64 kernel, valid padding,
bias and fused ReLU, as the Keras layer computes it.

    python tools/thread_speedup.py [--rounds 21] [--threads 1 2]

Thread counts are interleaved within each round (the order alternates from
round to round) so that drift of the machine's load or clock affects every
count alike; medians are reported. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import fastconv as fc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 28, 28, 32)).astype(np.float32)
    k = (rng.standard_normal((3, 3, 32, 64)) * 0.1).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    macs = 64 * 26 * 26 * 64 * 3 * 3 * 32

    info = fc.show_config("dicts")
    assert info is not None
    print(f"fastconv {info['fastconv']} from {os.path.dirname(fc.__file__)}")
    print(f"simd {info['simd']}, openmp {info['openmp']}, cpu_count {info['cpu_count']}, "
          f"numpy {np.__version__}")
    print(f"conv2d_1 forward: x {x.shape}, kernel {k.shape}, valid, bias+relu, "
          f"{macs / 1e6:.0f} M multiply-adds")

    def once() -> float:
        t0 = time.perf_counter()
        fc.conv2d(x, k, b, activation="relu")
        return time.perf_counter() - t0

    times: dict = {n: [] for n in args.threads}
    reference = None
    for n in args.threads:
        fc.set_num_threads(n)
        for _ in range(args.warmup):
            once()
        y = fc.conv2d(x, k, b, activation="relu")
        if reference is None:
            reference = y
        assert np.array_equal(y, reference), "results differ between thread counts"
    for r in range(args.rounds):
        order = args.threads if r % 2 == 0 else args.threads[::-1]
        for n in order:
            fc.set_num_threads(n)
            times[n].append(once())
    fc.set_num_threads(None)

    base = statistics.median(times[args.threads[0]])
    print(f"{'threads':>7} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'GFLOP/s':>8} "
          f"{'speedup':>8}")
    for n in args.threads:
        med = statistics.median(times[n])
        print(f"{n:>7} {med * 1e3:>10.2f} {min(times[n]) * 1e3:>8.2f} "
              f"{max(times[n]) * 1e3:>8.2f} {2 * macs / med / 1e9:>8.1f} {base / med:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
