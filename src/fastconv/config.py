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
    """Print (``mode="stdout"``) or return (``mode="dicts"``) the build facts:
    version, whether OpenMP is on, the SIMD path in use and those this CPU
    offers, the thread count and the NumPy the extension was built against."""
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
