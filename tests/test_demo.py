"""``python -m fastconv demo``: the seed CNN trained on the digits, end to end."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from fastconv import demo

SEED_SUMMARY = """\
Model: "model"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
input_1 (InputLayer)         [(None, 28, 28, 1)]       0         
_________________________________________________________________
conv2d (Conv2D)              (None, 28, 28, 32)        320       
_________________________________________________________________
conv2d_1 (Conv2D)            (None, 26, 26, 64)        18496     
_________________________________________________________________
max_pooling2d (MaxPooling2D) (None, 13, 13, 64)        0         
_________________________________________________________________
flatten (Flatten)            (None, 10816)             0         
_________________________________________________________________
dense (Dense)                (None, 100)               1081700   
_________________________________________________________________
dense_1 (Dense)              (None, 10)                1010      
=================================================================
Total params: 1,101,526
Trainable params: 1,101,526
Non-trainable params: 0
_________________________________________________________________
"""


def run_demo(*args, timeout=300):
    env = dict(os.environ, PYTHONWARNINGS="error")
    return subprocess.run([sys.executable, "-m", "fastconv", "demo", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_demo_prints_summary_progress_and_test_accuracy():
    pytest.importorskip("sklearn", reason="the demo needs scikit-learn (fastconv[examples])")
    result = run_demo("--epochs", "2", "--seed", "1", "--threads", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert SEED_SUMMARY in out
    assert "1,346 training / 451 held-out test images" in out
    assert "backend c (2 threads" in out
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"]
    # Not a terminal: whole lines, one final bar per epoch and one for evaluate.
    assert "\r" not in out and "\b" not in out
    bars = [line for line in lines if re.match(r"\d+/\d+ \[", line)]
    assert len(bars) == 3 and bars[0].startswith("43/43 [") and bars[-1].startswith("15/15 [")
    match = re.search(r"^test accuracy: (0\.\d{4}|1\.0000)$", out, re.MULTILINE)
    assert match, out
    assert float(match.group(1)) > 0.85          # two epochs already learn the digits
    assert re.search(r"^time: \d+\.\d s in all, training \d+\.\d s \(86 steps, \d+ ms/step\) "
                     r"on the c backend$", out, re.MULTILINE)
    assert "--backend numpy trains on the NumPy reference backend" in out
    assert out.splitlines()[-2].startswith("test accuracy: ")
    assert out.splitlines()[-1].startswith("time: ")


def test_demo_on_numpy_backend_reports_the_measured_speedup():
    pytest.importorskip("sklearn", reason="the demo needs scikit-learn (fastconv[examples])")
    result = run_demo("--backend", "numpy", "--epochs", "1", "--batch-size", "64")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "backend numpy" in out and "Epoch" not in out
    assert re.search(r"^test accuracy: 0\.\d{4}$", out, re.MULTILINE)
    assert re.search(r"^speed \(median of 5 training steps on one batch of 64, measured now\): "
                     r"C backend \d+\.\d ms/step, NumPy backend \d+\.\d ms/step -> the C "
                     r"backend is \d+\.\dx faster$", out, re.MULTILINE), out


def test_demo_is_reproducible_for_a_seed():
    pytest.importorskip("sklearn", reason="the demo needs scikit-learn (fastconv[examples])")
    runs = [run_demo("--epochs", "1", "--seed", "3", "--batch-size", "128") for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    accuracies = [re.search(r"^test accuracy: .*$", run.stdout, re.MULTILINE).group(0)
                  for run in runs]
    assert accuracies[0] == accuracies[1]


def test_demo_without_scikit_learn_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    assert demo.main(["--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert 'pip install "fastconv[examples]"' in err


def test_demo_arguments_are_checked(capsys):
    with pytest.raises(SystemExit) as exc:
        demo.main(["--epochs", "0"])
    assert exc.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        demo.main(["--backend", "cuda"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        demo.main(["--help"])
    assert exc.value.code == 0
    assert "--batch-size" in capsys.readouterr().out


def test_build_seed_cnn_is_the_seed_architecture():
    from fastconv import backend
    backend.clear_session()
    model = demo.build_seed_cnn()
    assert model.count_params() == 1_101_526
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "Conv2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    backend.clear_session()
