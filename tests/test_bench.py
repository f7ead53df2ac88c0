"""`python -m fastconv bench` runs end to end and writes what it says it writes.

Timings are not asserted (speed targets live in the benchmark itself); this checks
the command's plumbing: the table, the JSON, and the chart in a folder that does
not exist yet.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from fastconv import bench


def test_quick_bench_writes_json_and_chart_into_new_folders(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")  # the chart plots ratios to PyTorch
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # the default chart path is relative: bench_results/...
    assert bench.main(["--quick", "--threads", "1", "--no-numpy", "--no-model", "--no-loader",
                       "--no-optimizers", "--no-images",
                       "--json", str(tmp_path / "j" / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "seed conv2d_1" in out and "geometric mean" in out
    data = json.loads((tmp_path / "j" / "b.json").read_text())
    layers = {(r["layer"].split(" (")[0], r["direction"]) for r in data["layers"]}
    assert layers == {(name, d) for name in ("seed conv2d", "seed conv2d_1",
                                             "seed max_pooling2d", "seed dense")
                      for d in ("forward", "backward")}
    assert all(r["fastconv_ms"] > 0 and r["vs_torch"] > 0 for r in data["layers"])
    png = tmp_path / "bench_results" / "bench.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_without_torch_or_numpy_still_reports_our_times(tmp_path, capsys):
    target = tmp_path / "deep" / "er" / "b.json"
    assert bench.main(["--quick", "--threads", "1", "--no-numpy", "--no-torch", "--no-model",
                       "--no-loader", "--no-optimizers", "--no-images",
                       "--json", str(target), "--png", ""]) == 0
    rows = json.loads(target.read_text())["layers"]
    assert len(rows) == 8 and all(r["fastconv_ms"] > 0 and r["vs_torch"] is None for r in rows)


def test_loader_rows_report_the_step_time_with_and_without_prefetch(capsys):
    rows = bench.bench_loader(1, train_batches=2, rng=np.random.default_rng(0))
    assert [r["what"].split(", ")[1] for r in rows] == ["workers=0", "workers=1"]
    for r in rows:
        assert r["array_ms_step"] > 0 and r["loader_ms_step"] > 0
        assert r["extra_ms"] == pytest.approx(r["loader_ms_step"] - r["array_ms_step"])
    table = bench.loader_table(rows)
    assert "5 ms/batch Sequence, workers=1" in table and "added ms" in table


def test_optimizer_rows_cover_every_optimizer_beside_torch():
    pytest.importorskip("torch")
    rows = bench.bench_optimizers(1, True, rng=np.random.default_rng(0))
    assert [r["optimizer"] for r in rows] == list(bench._OPTIMIZER_PEERS)
    assert all(r["fastconv_ms"] > 0 and r["torch_ms"] > 0 and r["vs_torch"] > 0 for r in rows)
    assert "Nadam" in bench.optimizer_table(rows)


def test_relu_row_times_the_same_results_in_both_frameworks():
    torch = pytest.importorskip("torch")
    (case,) = [c for c in bench.LAYERS if c.kind == "relu"]
    problem = bench.make_problem(case, np.random.default_rng(0), with_torch=True)
    for ours, theirs in ((problem.fwd, problem.torch_fwd), (problem.bwd, problem.torch_bwd)):
        got = ours()
        want = theirs()
        assert isinstance(want, torch.Tensor)
        np.testing.assert_array_equal(got, want.permute(0, 2, 3, 1).numpy())


def test_dense_row_times_the_same_results_in_both_frameworks():
    pytest.importorskip("torch")
    (case,) = [c for c in bench.LAYERS if c.kind == "dense"]
    problem = bench.make_problem(case, np.random.default_rng(0), with_torch=True)
    np.testing.assert_allclose(problem.fwd(), problem.torch_fwd().numpy(), rtol=1e-4, atol=1e-4)
    dx, dkernel, dbias = problem.bwd()
    t_dx, t_dweight, t_dbias = (t.numpy() for t in problem.torch_bwd())
    # PyTorch's weight is (units, features): its gradient is the kernel's transposed
    for ours, theirs in ((dx, t_dx), (dkernel, t_dweight.T), (dbias, t_dbias)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())
