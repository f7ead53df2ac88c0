"""Fashion-MNIST: ``fastconv.datasets.fashion_mnist.load_data()``, as Keras'.

60,000 training and 10,000 test 28x28 grayscale images of 10 kinds of
clothing (0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal,
6 shirt, 7 sneaker, 8 bag, 9 ankle boot), from the four gzip'ed IDX files
Keras uses, read from ``<Keras cache>/datasets/fashion-mnist/`` or
downloaded once into it (see :mod:`fastconv.datasets`).
"""
from __future__ import annotations

import os
from typing import List, Tuple

import numpy as np

from . import _cache, _readers

__all__ = ["load_data"]

ORIGIN = _cache.KERAS_ORIGIN
"""The folder :func:`load_data` downloads the four files from (Keras' origin)."""

FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
"""The files, in the cache's ``datasets/fashion-mnist`` folder. Keras
publishes no hash of them; the gzip checksums and the IDX headers are checked."""

_SUBDIR = "fashion-mnist"

ArrayPair = Tuple[np.ndarray, np.ndarray]


def load_data() -> Tuple[ArrayPair, ArrayPair]:
    """Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        As Keras: ``x`` uint8 ``(60000, 28, 28)`` and ``(10000, 28, 28)``,
        ``y`` uint8 ``(60000,)`` and ``(10000,)`` with classes 0..9.
        Unlike Keras' (views of the decompressed bytes), the arrays are
        writable.

    Raises
    ------
    OSError
        When files are missing and cannot be downloaded; the message names
        the URLs and the folder to copy them to.
    ValueError
        When a file is truncated or corrupt (the message names it and says
        to delete it).
    """
    paths = {name: _cache.locate([os.path.join(_SUBDIR, name)]) for name in FILES}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        folder = os.path.join(_cache.home_datadir(), _SUBDIR)
        for index, name in enumerate(missing):
            rest = [ORIGIN + other for other in missing[index + 1:]]
            also = f" (and {', '.join(rest)} to the same folder)" if rest else ""
            paths[name] = _cache.fetch(name, ORIGIN + name, None, "Fashion-MNIST",
                                       os.path.join(folder, name),
                                       cache_subdir=os.path.join("datasets", _SUBDIR),
                                       also=also)
    arrays: List[np.ndarray] = []
    for name in FILES:
        path = paths[name]
        assert path is not None
        with _readers.reading(path, "Fashion-MNIST IDX file",
                              "fastconv.datasets.fashion_mnist.load_data"):
            arrays.append(_readers.read_idx_gz(path, ndim=1 if "labels" in name else 3))
    y_train, x_train, y_test, x_test = arrays
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if len(x) != len(y):
            raise ValueError(
                f"Fashion-MNIST's {part} files in {os.path.dirname(paths[FILES[0]] or '')} "
                f"do not match: {len(x)} images but {len(y)} labels. Delete them and call "
                "fastconv.datasets.fashion_mnist.load_data() again to download fresh copies.")
    return (x_train, y_train), (x_test, y_test)
