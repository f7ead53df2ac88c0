"""MNIST handwritten digits: ``fastconv.datasets.mnist.load_data()``, as Keras'.

60,000 training and 10,000 test images of 28x28 grayscale digits, from the
file Keras uses (``mnist.npz``), read from the Keras cache or downloaded
once into it (see :mod:`fastconv.datasets`).
"""
from __future__ import annotations

import os
from typing import Tuple

import numpy as np

from . import _cache, _readers

__all__ = ["load_data"]

ORIGIN = _cache.KERAS_ORIGIN + "mnist.npz"
"""Where :func:`load_data` downloads ``mnist.npz`` from (Keras' origin)."""

SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
"""The published sha256 of ``mnist.npz`` (Keras')."""

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")

ArrayPair = Tuple[np.ndarray, np.ndarray]


def load_data(path: "str | os.PathLike[str]" = "mnist.npz") -> Tuple[ArrayPair, ArrayPair]:
    """The MNIST digits as ``(x_train, y_train), (x_test, y_test)``.

    Parameters
    ----------
    path : str or os.PathLike, default 'mnist.npz'
        The file, relative to the Keras cache's ``datasets`` folder
        (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``); an absolute
        path is used as it is (as tf.keras 2.4; Keras 3 refuses paths).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        As Keras: ``x`` uint8 ``(60000, 28, 28)`` and ``(10000, 28, 28)``
        with values 0..255, ``y`` uint8 ``(60000,)`` and ``(10000,)`` with
        digits 0..9 (whatever the file holds, for another ``path``).

    Raises
    ------
    OSError
        When the file is not in the cache and cannot be downloaded; the
        message names the URL and the path to copy the file to.
    ValueError
        When the file is truncated or corrupt (the message names it and says
        to delete it), or when a download does not have the published hash
        (nothing is then saved).

    Warns
    -----
    UserWarning
        When the cached file's sha256 is not the published one; the file is
        used all the same (Keras would download it again).
    """
    fname = os.fspath(path)
    found = _cache.locate([fname])
    if found is not None:
        _cache.check_cached(found, SHA256, ORIGIN, stacklevel=2)
    else:
        copy_to = os.path.join(_cache.home_datadir(), fname)
        found = _cache.fetch(fname, ORIGIN, SHA256, "MNIST", copy_to)
    with _readers.reading(found, "MNIST .npz file", "fastconv.datasets.mnist.load_data"):
        arrays = _readers.read_npz(found, _ARRAYS)
        _check_pair(arrays["x_train"], arrays["y_train"], "train")
        _check_pair(arrays["x_test"], arrays["y_test"], "test")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _check_pair(x: np.ndarray, y: np.ndarray, part: str) -> None:
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise _readers.Corrupt(f"x_{part} of shape {x.shape} and y_{part} of shape "
                               f"{y.shape} are not n images and their n labels")
