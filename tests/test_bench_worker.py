"""fastconv.bench_worker: one measurement per fresh process.

Each framework that is installed runs a tiny measurement of the seed model
(steps and rounds of 1-3, so the numbers mean nothing; the fields and their
relations are what is checked) and a "check" run whose predictions must be
fastconv's on the same weights file. Whether a framework is installed is
decided without importing it here (``find_spec``: importing TensorFlow into
the test process would cost seconds and hundreds of MiB); a worker that
cannot import it raises FrameworkUnavailable and the test skips.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastconv import bench_models, bench_worker
from fastconv.bench_worker import FrameworkUnavailable, check_spec, run_worker

TOLERANCE = 1e-4
CHECK_BATCH = 4


def _installed(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"{module} is not installed")


FRAMEWORK_PARAMS = {
    "fastconv": pytest.param("fastconv", id="fastconv"),
    "torch": pytest.param("torch", id="torch", marks=_installed("torch")),
    "tensorflow": pytest.param("tensorflow", id="tensorflow", marks=_installed("tensorflow")),
}


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """The seed model and the path of its weights file."""
    model = bench_models.build("seed")
    path = str(tmp_path_factory.mktemp("bench_worker") / "seed.npz")
    bench_worker.save_weights(model, path)
    return model, path


def _run(spec, timeout_s=300):
    try:
        return run_worker(spec, timeout_s=timeout_s)
    except FrameworkUnavailable as e:
        pytest.skip(str(e))


# ----------------------------------------------------------------------
# Measurements


TIMED = [
    ("fastconv", "train", 8), ("fastconv", "infer", 16), ("fastconv", "infer", 1),
    ("torch", "train", 8), ("torch", "infer", 16), ("torch", "infer", 1),
    # TensorFlow's import alone takes seconds: its training step only (the
    # one-image tf.function path was timed by hand).
    ("tensorflow", "train", 8),
]


@pytest.mark.parametrize("framework,mode,batch", [
    pytest.param(f, m, b, id=f"{f}-{m}-{b}", marks=FRAMEWORK_PARAMS[f].marks)
    for f, m, b in TIMED])
def test_a_measurement_reports_speed_and_memory(seed, framework, mode, batch):
    _, weights = seed
    steps = 3 if batch == 1 else 2
    result = _run({"framework": framework, "model": "seed", "mode": mode, "weights": weights,
                   "threads": 1, "batch": batch, "steps": steps, "rounds": 2, "warmup": 1})
    expected = {"framework": framework, "model": "seed", "mode": mode, "threads": 1,
                "batch": batch, "steps": steps, "rounds": 2, "warmup": 1}
    assert {k: result[k] for k in expected} == expected
    assert result["img_s"] > 0 and result["ms_per_batch"] > 0
    assert len(result["times_s"]) == 2 and all(t > 0 for t in result["times_s"])
    # img_s and ms_per_batch describe the same median run.
    assert result["img_s"] == pytest.approx(batch * 1e3 / result["ms_per_batch"], rel=1e-9)
    assert result["peak_rss_mib"] >= result["rss_before_mib"] > 0
    versions = result["versions"]
    assert versions["fastconv"] and versions["numpy"]
    others = {"fastconv": [], "torch": ["torch"], "tensorflow": ["keras", "tensorflow"]}
    assert result["loaded_frameworks"] == others[framework]
    if framework != "fastconv":
        assert versions[framework]
    if framework == "torch":
        assert result["exact_padding"] is False
    if framework == "tensorflow":
        assert versions["keras"].startswith("3.")
        assert result["jit_compile"] is False   # Keras' "auto" on a machine without GPU


@pytest.mark.parametrize("framework", list(FRAMEWORK_PARAMS.values()))
def test_every_framework_predicts_what_fastconv_predicts_from_the_weights_file(seed,
                                                                                 framework):
    model, weights = seed
    result = _run({"framework": framework, "model": "seed", "mode": "check",
                   "weights": weights, "batch": CHECK_BATCH})
    expected = model.predict(bench_worker.check_input("seed", CHECK_BATCH))
    outputs = np.asarray(result["outputs"], dtype=np.float32)
    assert result["output_shape"] == [CHECK_BATCH, 10] == list(outputs.shape)
    # Against this process's model: the weights went through the file.
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=TOLERANCE)
    # Against fastconv in the worker: the conversion is the same network.
    assert result["max_abs_diff"] <= TOLERANCE
    assert "img_s" not in result
    # Softmax outputs that vary between images: the comparison is not vacuous.
    assert np.ptp(expected, axis=0).max() > 10 * TOLERANCE


def test_the_check_input_is_fixed():
    a, b = bench_worker.check_input("seed", 3), bench_worker.check_input("seed", 3)
    assert a.shape == (3, 28, 28, 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_weights_files_keep_the_order_and_the_name(seed, tmp_path):
    model, _ = seed
    path = str(tmp_path / "weights.bin")
    assert bench_worker.save_weights(model, path) == path and os.path.isfile(path)
    loaded = bench_worker.load_weights(path)
    original = model.get_weights()
    assert len(loaded) == len(original)
    for a, b in zip(loaded, original):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------
# Bad specs and failures


BAD = [
    ("framework", {"framework": "mxnet"}),
    ("model", {"model": "vgg16"}),
    ("mode", {"mode": "fit"}),
    ("batch", {"batch": 0}),
    ("batch", {"batch": -4}),
    ("batch", {"batch": True}),
    ("steps", {"steps": 0}),
    ("rounds", {"rounds": 1.5}),
    ("threads", {"threads": "2"}),
    ("warmup", {"warmup": -1}),
    ("exact_padding", {"exact_padding": 1}),
    ("weights", {"weights": "/no/such/weights.npz"}),
    ("btach", {"btach": 8}),
]


def _spec(**changes):
    spec = {"framework": "fastconv", "model": "seed", "mode": "infer", "batch": 2, "steps": 1,
            "rounds": 1, "warmup": 0}
    spec.update(changes)
    return spec


@pytest.mark.parametrize("field,changes", BAD, ids=[f"{f}={v!r}" for f, c in BAD
                                                    for v in c.values()])
def test_a_bad_spec_is_refused_before_a_process_starts(monkeypatch, field, changes):
    def no_process(*args, **kwargs):
        raise AssertionError("run_worker launched a worker for a bad spec")
    monkeypatch.setattr(subprocess, "run", no_process)
    with pytest.raises(ValueError, match=f"`?{field}`?"):
        run_worker(_spec(**changes))


@pytest.mark.parametrize("field,changes", BAD, ids=[f"{f}={v!r}" for f, c in BAD
                                                    for v in c.values()])
def test_the_worker_refuses_a_bad_spec_too(capsys, field, changes):
    assert bench_worker.main([json.dumps(_spec(**changes))]) == bench_worker.EXIT_BAD_SPEC
    assert field in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["framework", "model", "mode"])
def test_the_required_fields_are_named_when_missing(missing):
    spec = _spec()
    del spec[missing]
    with pytest.raises(ValueError, match=f"`{missing}` is missing"):
        check_spec(spec)


def test_the_defaults_fill_the_spec():
    spec = check_spec({"framework": "torch", "model": "resnet20", "mode": "train"})
    assert spec == {"framework": "torch", "model": "resnet20", "mode": "train", "weights": None,
                    "threads": 1, "batch": 32, "steps": 10, "rounds": 5, "warmup": 1,
                    "exact_padding": False}


def test_the_worker_process_refuses_a_bad_spec_and_the_parent_says_which_field(monkeypatch):
    """With the parent's check out of the way, the worker's own check answers
    (exit status 2), and run_worker raises ValueError with its message."""
    monkeypatch.setattr(bench_worker, "check_spec", lambda spec: dict(spec, threads=1))
    with pytest.raises(ValueError, match="`batch` must be a positive int"):
        run_worker(_spec(batch=0), timeout_s=120)


def test_the_command_line_prints_one_json_line(seed):
    _, weights = seed
    spec = _spec(weights=weights)
    done = subprocess.run([sys.executable, "-m", "fastconv.bench_worker", json.dumps(spec)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["framework"] == "fastconv" and result["img_s"] > 0
    bad = subprocess.run([sys.executable, "-m", "fastconv.bench_worker", "{not json"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == bench_worker.EXIT_BAD_SPEC and "not JSON" in bad.stderr


def test_a_failing_worker_raises_runtime_error_with_its_stderr(tmp_path):
    path = str(tmp_path / "short.npz")
    np.savez(path, np.zeros(3, dtype=np.float32))   # one array: the seed model has 8
    with pytest.raises(RuntimeError, match="exit status 1") as info:
        run_worker(_spec(weights=path), timeout_s=120)
    assert "Traceback" in str(info.value)


def test_a_worker_past_its_time_raises_runtime_error():
    with pytest.raises(RuntimeError, match="timed out after 0.01 s"):
        run_worker(_spec(), timeout_s=0.01)


def test_a_framework_that_does_not_import_is_reported_as_unavailable(tmp_path, monkeypatch):
    """A ``torch`` package that raises ImportError, first on the worker's path."""
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no torch in this test')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    with pytest.raises(FrameworkUnavailable, match="no torch in this test"):
        run_worker(_spec(framework="torch"), timeout_s=120)


def test_a_bad_timeout_is_a_value_error():
    with pytest.raises(ValueError, match="timeout_s"):
        run_worker(_spec(), timeout_s=0)
