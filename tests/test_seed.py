"""Acceptance: the seed notebook runs on fastconv and prints what it shows.

The seed (``/work/shared/seed/000_*.txt``, or ``$FASTCONV_SEED``) is a blog
post whose ```python blocks each hold a notebook cell, a line of dashes, and
the output the author got with TF 2.4. The cells are extracted at test time,
``tensorflow.keras`` is replaced by ``fastconv`` in their import lines, and
they run in one shared namespace, in order, as in the notebook. The first
cell ran twice in the author's session (that is why the later outputs show
``input_4``/``conv2d_3``), so it runs twice here too.
"""
from __future__ import annotations

import contextlib
import glob
import io
import os
import re
from typing import Dict, List, Tuple

import pytest

from fastconv import backend

SEED_PATTERN = "/work/shared/seed/000_*.txt"


def _seed_path() -> str:
    explicit = os.environ.get("FASTCONV_SEED")
    if explicit:
        return explicit
    matches = sorted(glob.glob(SEED_PATTERN))
    if not matches:
        pytest.skip(f"the seed notebook is not on this machine ({SEED_PATTERN}); "
                    "set FASTCONV_SEED to its path")
    return matches[0]


def extract_cells(text: str) -> List[Tuple[str, List[str]]]:
    """``(code, expected_output_lines)`` for every ```python block.

    Inside a block, the first line made only of dashes separates the code from
    the output the seed shows.
    """
    cells = []
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        lines = block.split("\n")
        separator = next(i for i, line in enumerate(lines) if re.fullmatch(r"-{10,}", line))
        code = "\n".join(lines[:separator])
        expected = lines[separator + 1:]
        while expected and not expected[-1].strip():
            expected.pop()
        cells.append((code, expected))
    return cells


def rewrite_imports(code: str) -> str:
    """``tensorflow.keras`` -> ``fastconv``, in import lines only."""
    out = []
    for line in code.split("\n"):
        if re.match(r"\s*(from|import)\s+tensorflow\.keras", line):
            line = line.replace("tensorflow.keras", "fastconv")
        out.append(line)
    return "\n".join(out)


def run_cell(code: str, namespace: Dict[str, object]) -> List[str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(rewrite_imports(code), "<seed cell>", "exec"), namespace)
    return buffer.getvalue().rstrip("\n").split("\n")


@pytest.fixture(scope="module")
def seed_run():
    """Run all cells once (cell 1 twice); returns cells and what each printed."""
    with open(_seed_path(), encoding="utf-8") as handle:
        cells = extract_cells(handle.read())
    assert len(cells) == 5, f"expected the seed's 5 code cells, found {len(cells)}"
    backend.clear_session()
    namespace: Dict[str, object] = {"__name__": "__seed__"}
    printed = [run_cell(cells[0][0], namespace)]
    printed_again = run_cell(cells[0][0], namespace)
    for code, _ in cells[1:]:
        printed.append(run_cell(code, namespace))
    return cells, printed, printed_again, namespace


def test_imports_are_rewritten_and_nothing_else():
    code = "from tensorflow.keras.layers import Input\nprint('tensorflow.keras')"
    assert rewrite_imports(code) == "from fastconv.layers import Input\nprint('tensorflow.keras')"


def test_cell1_keras_tensor_print(seed_run):
    cells, printed, printed_again, _ = seed_run
    expected = cells[0][1]
    assert len(expected) == 1 and len(printed[0]) == 1
    exp_type, exp_tensor = expected[0].split(" x: ", 1)
    got_type, got_tensor = printed[0][0].split(" x: ", 1)
    # The seed shows TF's class path; fastconv's differs but the class is a KerasTensor.
    assert exp_type.endswith("KerasTensor'>")
    assert re.fullmatch(r"x type: <class 'fastconv\.[\w.]*KerasTensor'>", got_type), got_type
    assert got_tensor == exp_tensor
    # The second run of the same cell creates the next names.
    assert printed_again[0].split(" x: ", 1)[1] == exp_tensor.replace("conv2d", "conv2d_1")


def test_cell2_pooling_print_exact(seed_run):
    cells, printed, _, _ = seed_run
    assert printed[1] == cells[1][1]


def test_cell3_summary_exact(seed_run):
    cells, printed, _, _ = seed_run
    assert printed[2] == cells[2][1]
    assert all(len(line) == 65 for line in printed[2][1:-4])


def test_cell4_summary_exact(seed_run):
    cells, printed, _, _ = seed_run
    expected = cells[3][1]
    got = printed[3]
    assert got[:len(expected)] == expected
    # The seed's author cut the block before the summary's closing rule.
    assert got[len(expected):] == ["_" * 65]


def test_cell5_output_shape(seed_run):
    cells, printed, _, namespace = seed_run
    assert printed[4] == cells[4][1] == ["x.shape: (None, 3, 3, 1)"]
    assert repr(namespace["x"].shape) == "TensorShape([None, 3, 3, 1])"


def test_seed_models_compute(seed_run):
    """The seed's last functional model also runs on data."""
    import numpy as np
    _, _, _, namespace = seed_run
    model = namespace["model"]
    probabilities = model.predict(np.random.default_rng(0).random((2, 28, 28, 1),
                                                                   dtype=np.float32))
    assert probabilities.shape == (2, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
