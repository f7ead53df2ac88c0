"""What CIFAR-10 and CIFAR-100 share: finding the batches, reading, assembling.

The batches are looked for, in each folder of the Keras cache, as

* an extracted folder: ``<folder>/`` (tf.keras 2.x) or
  ``<folder>-target/<folder>/`` (Keras 3), used if it has every batch;
* else an archive: ``<folder>.tar.gz`` (tf.keras 2.x),
  ``<folder>-target_archive`` (Keras 3) or the name of the download itself
  (``cifar-10-python.tar.gz``, as a browser saves it), read in place (no
  extraction, so a read-only cache works) after its hash is checked.

When none is there, the archive is downloaded as tf.keras 2.4 does
(``get_file(<folder>, origin, untar=True)``): ``<folder>.tar.gz``, extracted
beside it into ``<folder>/``.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import _cache, _readers

ArrayPair = Tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CifarFiles:
    """One CIFAR variant: where its batches are and what they hold."""

    name: str                     # for messages: 'CIFAR-10'
    loader: str                   # 'fastconv.datasets.cifar10.load_data'
    folder: str                   # the archive's top folder: 'cifar-10-batches-py'
    train: Tuple[str, ...]        # batch file names in that folder
    test: Tuple[str, ...]
    label_dtype: type             # Keras: uint8 for CIFAR-10, int64 for CIFAR-100

    def folders(self) -> List[str]:
        return [self.folder, os.path.join(f"{self.folder}-target", self.folder)]

    def archives(self, origin: str) -> List[str]:
        return [f"{self.folder}.tar.gz", f"{self.folder}-target_archive",
                posixpath.basename(origin)]

    def has_batches(self, path: str) -> bool:
        return all(os.path.isfile(os.path.join(path, name)) for name in self.train + self.test)


def load(files: CifarFiles, origin: str, sha256: Optional[str], label_key: str,
         n_classes: int) -> Tuple[ArrayPair, ArrayPair]:
    """``((x_train, y_train), (x_test, y_test))`` as Keras: ``x`` uint8
    ``(n, 32, 32, 3)`` (channels last, C-contiguous), ``y`` ``(n, 1)``."""
    folder = _cache.locate(files.folders(), present=files.has_batches)
    archive = None
    if folder is None:
        archive = _cache.locate(files.archives(origin))
        if archive is not None:
            _cache.check_cached(archive, sha256, origin, stacklevel=3)
    if folder is None and archive is None:
        home = _cache.home_datadir()
        copy_to = os.path.join(home, f"{files.folder}.tar.gz")
        # get_file(untar=True) returns the folder, extracted beside <folder>.tar.gz
        # unless a folder of that name was already there (an incomplete one).
        download_name = posixpath.basename(origin)
        others = [] if download_name == os.path.basename(copy_to) else [
            f"as {download_name}, its own name"]
        others.append(f"extract it there: {os.path.join(home, files.folder)}")
        also = f" (or {', or '.join(others)})"
        extracted = _cache.fetch(files.folder, origin, sha256, files.name, copy_to,
                                 untar=True, also=also)
        if files.has_batches(extracted):
            folder = extracted
        else:
            archive = extracted + ".tar.gz"

    batches: Dict[str, ArrayPair] = {}
    if folder is not None:
        for name in files.train + files.test:
            path = os.path.join(folder, name)
            with _readers.reading(path, f"{files.name} batch", files.loader,
                                  delete=f"the folder {folder}"):
                batches[name] = _readers.read_cifar_pickle(_readers.read_file(path),
                                                           label_key, n_classes)
    else:
        assert archive is not None
        wanted = [f"{files.folder}/{name}" for name in files.train + files.test]
        with _readers.reading(archive, f"{files.name} archive", files.loader):
            for member, content in _readers.tar_members(archive, wanted):
                batches[posixpath.basename(member)] = _readers.read_cifar_pickle(
                    content, label_key, n_classes)

    train = _assemble([batches[name] for name in files.train], files.label_dtype)
    test = _assemble([batches[name] for name in files.test], files.label_dtype)
    return train, test


def _assemble(parts: List[ArrayPair], label_dtype: type) -> ArrayPair:
    """Batches ``(n, 3, 32, 32)`` -> one channels-last ``(N, 32, 32, 3)`` array."""
    total = sum(len(images) for images, _ in parts)
    x = np.empty((total, 32, 32, 3), dtype=np.uint8)
    y = np.empty((total, 1), dtype=label_dtype)
    start = 0
    for images, labels in parts:
        stop = start + len(images)
        x[start:stop] = images.transpose(0, 2, 3, 1)
        y[start:stop, 0] = labels
        start = stop
    return x, y
