"""The many-core model (fastconv.bench_scaling) and the kernels' region record."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastconv as fc
from fastconv import bench_scaling as bs

_kernels = pytest.importorskip("fastconv._kernels")


def test_thread_policy_is_one_thread_per_item_and_per_64k_multiply_adds():
    assert _kernels.threads_for(16, 1e9, 12) == 12
    assert _kernels.threads_for(16, 1e9, 1000) == 16
    assert _kernels.threads_for(64, 65536.0 * 5.5, 1000) == 5
    assert _kernels.threads_for(8, 10.0, 1000) == 1
    with pytest.raises(ValueError, match="requested"):
        _kernels.threads_for(0, 1.0, 1)


def test_record_lists_each_region_and_each_call_end(rng):
    x = rng.standard_normal((4, 20, 20, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
    fc.set_num_threads(1)
    _kernels.record_regions(True)
    try:
        fc.conv2d(x, k, strides=2)
        fc.max_pool2d(x)
    finally:
        _kernels.record_regions(False)
    entries, count = _kernels.recorded_regions()
    assert count == len(entries) == 4
    assert [items == -1 for _, _, items in entries] == [False, True, False, True]
    times = [t for t, _, _ in entries]
    assert times == sorted(times)
    conv_work = entries[0][1]
    assert conv_work == 4 * 9 * 9 * 32 * 3 * 3 * 16       # the GEMM's multiply-adds (9x9 out)
    fc.conv2d(x, k)                                       # not recording: nothing more
    assert _kernels.recorded_regions()[1] == 4


def test_predictions_follow_items_per_thread_and_the_serial_rest():
    rec = bs.Record(seconds=1.1, regions=(bs.Region(1.0, 1e12, 12),))
    t1, items1 = bs.predict(rec, 1)
    assert t1 == pytest.approx(1.1) and items1 == 12
    t16, items16 = bs.predict(rec, 16)           # 12 threads of one item each
    assert items16 == 1
    assert t16 == pytest.approx(0.1 + 1.0 / 12 + bs.FORK_JOIN_S)
    t8, _ = bs.predict(rec, 8)                   # 8 threads, two of the items each at worst
    assert t8 == pytest.approx(0.1 + 2.0 / 12 + bs.FORK_JOIN_S)
    rows = bs.scaling_rows("toy", rec, (1, 8, 16))
    assert rows[0]["efficiency"] == pytest.approx(1.0)
    assert rows[2]["efficiency"] == pytest.approx(1.1 / (16 * t16))
    table = bs.scaling_table(rows)
    assert "toy" in table and "<80% at 16T" in table


def test_a_well_split_large_call_is_predicted_to_scale(rng):
    x = rng.standard_normal((16, 32, 32, 32)).astype(np.float32)
    k = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    rec = bs.record(lambda: fc.conv2d(x, k, strides=2), repeats=2)
    assert rec.regions and all(r.items > 1 and r.seconds > 0 for r in rec.regions)
    assert 0 <= rec.serial_seconds < rec.seconds
    rows = {r["threads"]: r for r in bs.scaling_rows("conv", rec)}
    assert rows[1]["efficiency"] == pytest.approx(1.0)
    assert all(0 < rows[t]["efficiency"] <= 1.0 + 1e-9 for t in bs.THREADS)
    assert rows[64]["efficiency"] < rows[2]["efficiency"]
    assert math.isclose(rows[1]["items_per_thread"],
                        sum(r.seconds * r.items for r in rec.regions) /
                        sum(r.seconds for r in rec.regions))
