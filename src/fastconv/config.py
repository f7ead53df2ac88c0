"""What this installation of fastconv is: ``fastconv.show_config()``."""
from __future__ import annotations

import os
import platform
from typing import Any, Dict, Optional

import numpy as np

from . import ops


def build_info() -> Dict[str, Any]:
    """Version, OpenMP, SIMD paths, threads and the NumPy versions."""
    from . import __version__
    info: Dict[str, Any] = {
        "fastconv": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "numpy_runtime": np.__version__,
        "backend": ops.get_backend(),
    }
    kernels = ops._kernels
    if kernels is None:
        info.update(compiled=False, error=str(ops._KERNELS_IMPORT_ERROR))
        return info
    info.update(
        compiled=True,
        numpy_build=kernels.NUMPY_BUILD_VERSION,
        openmp=kernels.openmp_enabled(),
        simd=kernels.get_simd(),
        simd_available=kernels.simd_supported(),
        simd_forced=os.environ.get("FASTCONV_SIMD") or None,
        num_threads=ops.get_num_threads(),
        num_threads_source=("fastconv.set_num_threads" if ops._num_threads is not None
                            else "OpenMP default (OMP_NUM_THREADS, threadpoolctl)"),
        cpu_count=os.cpu_count(),
    )
    return info


def show_config(mode: str = "stdout") -> Optional[Dict[str, Any]]:
    """Print (``mode="stdout"``) or return (``mode="dicts"``) the build facts.

    Keys of the returned dict (``python -m fastconv info`` prints the same):

    - ``fastconv``: the installed version (``fastconv.__version__``)
    - ``python``, ``platform``: interpreter version, OS and machine
    - ``numpy_runtime``: the NumPy imported now
    - ``backend``: ``"c"`` or ``"numpy"`` (:func:`fastconv.get_backend`)
    - ``compiled``: whether the C extension imported; when it did not, only
      ``error`` follows, and the keys below are absent
    - ``numpy_build``: the NumPy the extension was compiled against
    - ``openmp``: whether the kernels were built with OpenMP
    - ``simd``: the SIMD path in use (``"avx512"``, ``"avx2"``, ``"generic"``)
    - ``simd_available``: the paths this build and CPU support
    - ``simd_forced``: the ``FASTCONV_SIMD`` environment variable, or None
    - ``num_threads``: threads a large kernel would use now
      (:func:`fastconv.get_num_threads`)
    - ``num_threads_source``: where that number comes from: an explicit
      ``fastconv.set_num_threads`` or the OpenMP default (``OMP_NUM_THREADS``,
      threadpoolctl)
    - ``cpu_count``: ``os.cpu_count()``
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"`mode` must be 'stdout' or 'dicts', got {mode!r}")
    info = build_info()
    if mode == "dicts":
        return info
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}} : {value}")
    return None
