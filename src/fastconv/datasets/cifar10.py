"""CIFAR-10: ``fastconv.datasets.cifar10.load_data()``, as Keras'.

50,000 training and 10,000 test 32x32 colour images of 10 classes
(0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse,
8 ship, 9 truck), from the "python version" archive Keras uses, read from
the Keras cache (extracted or not) or downloaded once into it (see
:mod:`fastconv.datasets`).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from . import _cifar

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
"""Where :func:`load_data` downloads the archive from (Keras' origin)."""

SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
"""The published sha256 of the archive (Keras')."""

_FILES = _cifar.CifarFiles(
    name="CIFAR-10", loader="fastconv.datasets.cifar10.load_data",
    folder="cifar-10-batches-py", train=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test=("test_batch",), label_dtype=np.uint8)

ArrayPair = Tuple[np.ndarray, np.ndarray]


def load_data() -> Tuple[ArrayPair, ArrayPair]:
    """CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        As Keras (``image_data_format`` 'channels_last', fastconv's only
        one): ``x`` uint8 ``(50000, 32, 32, 3)`` and ``(10000, 32, 32, 3)``,
        ``y`` uint8 ``(50000, 1)`` and ``(10000, 1)`` with classes 0..9.
        The images are C-contiguous (Keras returns transposed views).

    Raises
    ------
    OSError
        When the data is not in the cache and cannot be downloaded; the
        message names the URL and the path to copy the archive to.
    ValueError
        When a batch or the archive is truncated, corrupt or not a CIFAR
        pickle (the message names it and says what to delete); when a
        download does not have the published hash (nothing is saved).

    Warns
    -----
    UserWarning
        When a cached archive's sha256 is not the published one; it is used
        all the same (Keras would download it again).
    """
    return _cifar.load(_FILES, ORIGIN, SHA256, label_key="labels", n_classes=10)
