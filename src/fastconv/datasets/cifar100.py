"""CIFAR-100: ``fastconv.datasets.cifar100.load_data()``, as Keras'.

50,000 training and 10,000 test 32x32 colour images of 100 classes grouped
into 20 superclasses, from the "python version" archive Keras uses, read
from the Keras cache (extracted or not) or downloaded once into it (see
:mod:`fastconv.datasets`).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from . import _cifar

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
"""Where :func:`load_data` downloads the archive from (Keras' origin)."""

SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
"""The published sha256 of the archive (Keras')."""

_FILES = _cifar.CifarFiles(
    name="CIFAR-100", loader="fastconv.datasets.cifar100.load_data",
    folder="cifar-100-python", train=("train",), test=("test",), label_dtype=np.int64)

_CLASSES = {"fine": 100, "coarse": 20}

ArrayPair = Tuple[np.ndarray, np.ndarray]


def load_data(label_mode: str = "fine") -> Tuple[ArrayPair, ArrayPair]:
    """CIFAR-100 as ``(x_train, y_train), (x_test, y_test)``.

    Parameters
    ----------
    label_mode : {'fine', 'coarse'}, default 'fine'
        The 100 classes ('fine') or the 20 superclasses ('coarse').

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        As Keras (``image_data_format`` 'channels_last', fastconv's only
        one): ``x`` uint8 ``(50000, 32, 32, 3)`` and ``(10000, 32, 32, 3)``,
        ``y`` int64 ``(50000, 1)`` and ``(10000, 1)`` (int64, as Keras
        returns them whatever its docstring says). The images are
        C-contiguous (Keras returns transposed views).

    Raises
    ------
    OSError, ValueError
        As :func:`fastconv.datasets.cifar10.load_data`; ValueError also for
        a ``label_mode`` other than 'fine' or 'coarse'.

    Warns
    -----
    UserWarning
        When a cached archive's sha256 is not the published one.
    """
    if not isinstance(label_mode, str) or label_mode not in _CLASSES:
        raise ValueError(f"`label_mode` must be one of 'fine', 'coarse', got {label_mode!r}")
    return _cifar.load(_FILES, ORIGIN, SHA256, label_key=f"{label_mode}_labels",
                       n_classes=_CLASSES[label_mode])
