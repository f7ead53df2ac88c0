"""Optional dependencies: imported when a feature first needs them, never at load.

fastconv's only run-time dependency is NumPy. Features that stand on another
package (a TensorBoard writer, pydot, h5py, ...) call :func:`require` on
first use; without the package the user gets an ImportError naming the
feature, the package and the ``pip install 'fastconv[extra]'`` that brings it.
"""
from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``import module`` for ``feature``, or an ImportError naming ``extra``.

    Parameters
    ----------
    module : str
        Dotted name of the module to import (``"pydot"``).
    extra : str
        The optional-dependency group of ``pyproject.toml`` that installs it.
    feature : str
        What needs it, for the message (``"fastconv.utils.plot_model"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(
            f"{feature} needs the package '{top}', which is not installed (or failed to "
            f"import: {exc}). Install it with: pip install 'fastconv[{extra}]'") from exc
