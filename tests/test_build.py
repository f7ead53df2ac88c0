"""Facts about the build that a broken build would silently lose."""
from __future__ import annotations

import os

import pytest

from fastconv import _kernels


@pytest.mark.skipif(os.environ.get("FASTCONV_SKIP_OPENMP_TEST") == "1",
                    reason="FASTCONV_SKIP_OPENMP_TEST=1: a serial build was requested")
def test_openmp_enabled():
    """A normal build must have OpenMP; a serial fallback is a build problem."""
    assert _kernels.openmp_enabled(), (
        "fastconv was built without OpenMP: kernels run on one thread. Rebuild with a "
        "compiler that supports OpenMP (set FASTCONV_SKIP_OPENMP_TEST=1 to skip this test).")


def test_generic_path_always_available():
    assert "generic" in _kernels.simd_supported()
    assert _kernels.get_simd() in _kernels.simd_supported()


def test_unknown_simd_path_is_an_error():
    with pytest.raises(ValueError, match="unknown SIMD path"):
        _kernels.set_simd("sse9")


def test_fastconv_simd_environment_variable_forces_a_path():
    import subprocess
    import sys
    for name in _kernels.simd_supported():
        out = subprocess.run(
            [sys.executable, "-c", "import fastconv, fastconv._kernels as k; print(k.get_simd())"],
            env={**os.environ, "FASTCONV_SIMD": name}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == name
    out = subprocess.run([sys.executable, "-c", "import fastconv"],
                         env={**os.environ, "FASTCONV_SIMD": "sse9"}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and "unknown SIMD path 'sse9'" in out.stderr
