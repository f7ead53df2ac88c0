"""What an installation of fastconv must look like, whether it is the
source checkout or a wheel installed in a fresh environment.

(That a normal build has OpenMP is tests/test_build.py::test_openmp_enabled.)
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import fastconv as fc
from fastconv import _kernels
from test_architecture import COMPUTE_CORE

PACKAGE_DIR = Path(fc.__file__).resolve().parent
# The source checkout, or the temporary test folder of a wheel check, which
# holds copies of tests/ and pyproject.toml.
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

DOCUMENTED_KEYS = {
    "fastconv", "python", "platform", "numpy_runtime", "backend", "compiled",
    "numpy_build", "openmp", "simd", "simd_available", "simd_forced", "num_threads",
    "num_threads_source", "cpu_count",
}


# Prints what `import fastconv` adds to sys.modules, and the top-level
# packages among them that are not the standard library: those with a file in
# site-packages or outside the standard library's folders (builtins, and the
# runtime module Cython registers, have no file).
_IMPORT_PROBE = """
import json, sys, sysconfig
before = set(sys.modules)
import fastconv
loaded = sorted(set(sys.modules) - before)
paths = sysconfig.get_paths()
site = (paths["purelib"], paths["platlib"])
stdlib = (paths["stdlib"], paths["platstdlib"])
def installed(name):
    path = getattr(sys.modules.get(name), "__file__", None)
    return bool(path) and (path.startswith(site) or not path.startswith(stdlib))
packages = sorted({m.split(".")[0] for m in loaded if installed(m.split(".")[0])})
print(json.dumps({"loaded": loaded, "packages": packages}))
"""


def test_import_fastconv_imports_numpy_and_the_compute_core_only():
    """`import fastconv` loads the functional API and the compiled kernels:
    no module of the Keras-like API or the tools, no package but NumPy."""
    out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["packages"] == ["fastconv", "numpy"]
    ours = {m for m in report["loaded"] if m.split(".")[0] == "fastconv"}
    outside = sorted(ours - {"fastconv"} - COMPUTE_CORE)
    assert outside == [], f"`import fastconv` imported {outside}, outside the compute core"
    assert {"fastconv.ops", "fastconv._kernels"} <= ours


def test_submodules_still_load_on_first_use():
    out = subprocess.run([sys.executable, "-c",
                          "import sys, fastconv; fastconv.layers; print('fastconv.layers' in sys.modules)"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_show_config_dicts_has_the_documented_keys():
    info = fc.show_config("dicts")
    assert isinstance(info, dict)
    assert set(info) == DOCUMENTED_KEYS
    for key in DOCUMENTED_KEYS:  # and the docstring documents each of them
        assert f"``{key}``" in fc.show_config.__doc__, key
    assert info["compiled"] is True
    assert isinstance(info["openmp"], bool)
    assert info["simd"] in info["simd_available"]
    assert "generic" in info["simd_available"]
    assert isinstance(info["num_threads"], int) and info["num_threads"] >= 1
    assert info["num_threads"] == fc.get_num_threads()
    assert info["backend"] == fc.get_backend()
    assert info["numpy_build"] == _kernels.NUMPY_BUILD_VERSION
    assert re.match(r"^\d+\.\d+", info["numpy_build"])


def test_show_config_stdout_prints_every_key(capsys):
    assert fc.show_config() is None
    printed = capsys.readouterr().out
    keys = {line.split(":", 1)[0].strip() for line in printed.splitlines()}
    assert keys == DOCUMENTED_KEYS


def test_show_config_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        fc.show_config("json")


def _pyproject_version() -> str:
    text = PYPROJECT.read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the [project] table's version line
        match = re.search(r'^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', text,
                          re.MULTILINE | re.DOTALL)
        assert match, "no version in pyproject.toml's [project] table"
        return match.group(1)
    return tomllib.loads(text)["project"]["version"]


def test_version_strings_agree():
    installed = metadata.version("fastconv")
    assert fc.__version__ == installed
    assert fc.show_config("dicts")["fastconv"] == installed
    if PYPROJECT.is_file():
        assert _pyproject_version() == installed, (
            "pyproject.toml's version and the installed metadata differ: reinstall, or "
            "update fastconv.__version__ together with pyproject.toml")


def test_python_m_fastconv_info_reports_version_and_openmp():
    out = subprocess.run([sys.executable, "-m", "fastconv", "info"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
              for line in out.stdout.splitlines() if ":" in line}
    assert fields["fastconv"] == fc.__version__
    assert fields["openmp"] == str(_kernels.openmp_enabled())
    assert fields["simd"] == _kernels.get_simd()


def test_typing_files_are_installed():
    """PEP 561: py.typed marks the package as typed; _kernels.pyi types the
    compiled module."""
    assert (PACKAGE_DIR / "py.typed").is_file()
    assert (PACKAGE_DIR / "_kernels.pyi").is_file()


def test_kernels_stub_matches_the_compiled_module():
    tree = ast.parse((PACKAGE_DIR / "_kernels.pyi").read_text(encoding="utf-8"))
    stubbed = {node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {node.target.id for node in tree.body
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and not node.target.id.startswith("_")}
    public = {name for name in dir(_kernels) if not name.startswith("_")}
    assert stubbed == public


def test_license_files_are_installed():
    files = [str(f).replace(os.sep, "/") for f in (metadata.files("fastconv") or [])]
    if not any(".dist-info/" in f for f in files):
        pytest.skip("no installed file list (an egg-info or a bare source tree)")
    if metadata.metadata("fastconv")["License-Expression"] is None:
        pytest.skip("the installed metadata predates pyproject's license-files: reinstall")
    assert metadata.metadata("fastconv")["License-Expression"] == "MIT"
    names = {f.rsplit("/", 1)[-1] for f in files if "/licenses/" in f}
    assert {"LICENSE", "GCC_RUNTIME_LIBRARY_EXCEPTION.txt", "THIRD_PARTY_NOTICES.txt"} <= names
