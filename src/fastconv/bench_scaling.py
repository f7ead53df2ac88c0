"""The many-core model: how the bench's layers and models would scale to
T = 1 ... 64 threads, from one single-thread run on this machine.

Every parallel region of the C kernels is sized by one policy
(``fc_pick_threads``: at most one thread per work item and per 64 Ki
multiply-adds). While :func:`record` runs a call, the kernels log each
region's work, its number of work items and the time it was sized, and
every kernel call's end (``_kernels.record_regions``). From that record:

* a region's single-thread time is the time from its start to the next
  entry (the next region, or the end of its kernel call);
* the rest of the call's wall time (Python, NumPy glue, allocation) is
  serial and stays serial;
* at T threads a region gets ``n = threads_for(T, work, items)`` threads
  (the kernels' own policy), each doing ``ceil(items / n)`` items, so it
  takes ``t1 * ceil(items / n) / items`` plus a fork/join of
  :data:`FORK_JOIN_S` when ``n > 1``;
* the predicted efficiency is ``t1 / (T * t_T)``.

What the model leaves out: memory bandwidth shared by the cores (a
memory-bound op such as a pooling scales worse than predicted once the
cores saturate it), frequency changes, SMT, and the time-slicing of a
shared machine. It is a check of the work decomposition: a region with
fewer items than threads, or items of unequal count per thread, shows up
here before it is ever run on a big machine. ``tools/thread_speedup.py``
measures the real curve on one.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

from . import ops

try:
    from . import _kernels
except ImportError:  # pragma: no cover - a build without the extension
    _kernels = None

__all__ = ["THREADS", "FORK_JOIN_S", "Region", "Record", "record", "predict", "scaling_rows",
           "scaling_table"]

THREADS = (1, 2, 4, 8, 16, 32, 64)
# An OpenMP fork/join of a team of 16-64 threads (libgomp, one socket): a
# few microseconds; an assumption of the model, not a measurement here.
FORK_JOIN_S = 3e-6
# The threshold the bench flags: predicted efficiency at 16 threads.
FLAG_THREADS, FLAG_EFFICIENCY = 16, 0.8


@dataclass(frozen=True)
class Region:
    """One parallel region of a recorded call."""

    seconds: float     # on one thread
    work: float        # multiply-adds, or values moved
    items: int         # work items the region is cut into


@dataclass(frozen=True)
class Record:
    """A call run on one thread: its wall time and its parallel regions."""

    seconds: float
    regions: Tuple[Region, ...]

    @property
    def serial_seconds(self) -> float:
        """Wall time outside every region (never below zero)."""
        return max(self.seconds - sum(r.seconds for r in self.regions), 0.0)


def record(fn: Callable[[], object], repeats: int = 5) -> Record:
    """Run ``fn`` on one thread ``repeats`` times and keep the fastest run's record."""
    if _kernels is None:
        raise RuntimeError("fastconv's C extension is not built: no regions to record")
    previous = ops.set_num_threads(1)
    best = None
    try:
        fn()   # warm-up: allocator, caches, a plan's first call
        for _ in range(repeats):
            _kernels.record_regions(True)
            start = time.perf_counter()
            try:
                fn()
                seconds = time.perf_counter() - start
            finally:
                _kernels.record_regions(False)
            entries, count = _kernels.recorded_regions()
            if count > len(entries):
                raise RuntimeError(f"the call made {count} region records; the log keeps "
                                   f"{len(entries)}: record a smaller call")
            if best is None or seconds < best.seconds:
                best = Record(seconds, _regions(entries))
    finally:
        ops.set_num_threads(previous)
    assert best is not None
    return best


def _regions(entries: Sequence[Tuple[float, float, int]]) -> Tuple[Region, ...]:
    """Regions from the log: each lasts until the next entry (region or call end)."""
    regions = []
    for (t, work, items), following in zip(entries, entries[1:]):
        if items >= 0:
            regions.append(Region(max(following[0] - t, 0.0), work, int(items)))
    return tuple(regions)


def predict(rec: Record, threads: int) -> Tuple[float, float]:
    """(predicted seconds at ``threads``, work items per thread averaged over
    the regions' single-thread time)."""
    total = rec.serial_seconds
    weighted_items, region_time = 0.0, 0.0
    for r in rec.regions:
        n = _kernels.threads_for(threads, r.work, max(r.items, 1))
        per_thread = math.ceil(r.items / n) if r.items > 0 else 0
        total += r.seconds * (per_thread / r.items if r.items > 0 else 1.0)
        if n > 1:
            total += FORK_JOIN_S
        weighted_items += r.seconds * (r.items / n)
        region_time += r.seconds
    return total, (weighted_items / region_time if region_time > 0 else 0.0)


def scaling_rows(name: str, rec: Record, threads: Sequence[int] = THREADS) -> List[dict]:
    """One row per thread count: predicted ms, efficiency and items per thread."""
    rows = []
    for t in threads:
        seconds, items = predict(rec, t)
        rows.append({"what": name, "threads": t, "ms_1t": rec.seconds * 1e3,
                     "serial_pct": 100 * rec.serial_seconds / rec.seconds if rec.seconds else 0,
                     "regions": len(rec.regions), "predicted_ms": seconds * 1e3,
                     "items_per_thread": items,
                     "efficiency": rec.seconds / (t * seconds) if seconds > 0 else 1.0})
    return rows


def scaling_table(rows: Sequence[dict]) -> str:
    """Rows grouped per call: items per thread and efficiency for each T."""
    by_what: Dict[str, List[dict]] = {}
    for r in rows:
        by_what.setdefault(r["what"], []).append(r)
    threads = sorted({r["threads"] for r in rows})
    head = f"{'predicted scaling (items/thread, efficiency)':46s} {'1T ms':>7s} {'serial':>6s}"
    head += "".join(f" {f'T={t}':>11s}" for t in threads)
    lines = [head, "-" * len(head)]
    for what, group in by_what.items():
        first = group[0]
        cells = {r["threads"]: r for r in group}
        line = f"{what[:46]:46s} {first['ms_1t']:7.2f} {first['serial_pct']:5.0f}%"
        for t in threads:
            r = cells.get(t)
            line += (f" {r['items_per_thread']:5.0f} {100 * r['efficiency']:4.0f}%"
                     if r else f" {'-':>11s}")
        flag = cells.get(FLAG_THREADS)
        if flag and flag["efficiency"] < FLAG_EFFICIENCY:
            line += "  <80% at 16T"
        lines.append(line)
    return "\n".join(lines)
