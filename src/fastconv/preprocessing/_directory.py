"""Listing the image files of a directory tree the way Keras does.

Two Keras functions index a folder of class subfolders, with rules that
agree on most points and differ on a few:

* both take the class names from the subdirectories, sorted as strings,
  and list each class folder's files recursively, by ``os.walk`` sorted by
  folder path, the files of a folder sorted by name, keeping those whose
  lower-cased name ends with an allowed extension
  (:func:`class_subdirectories`, :func:`index_subdirectory`);
* ``ImageDataGenerator.flow_from_directory`` (Keras 2.4's
  ``DirectoryIterator``) allows ``png jpg jpeg bmp ppm tif tiff`` (suffixes
  matched without the dot, as Keras does), counts hidden subdirectories as
  classes and splits off ``validation_split`` per class (the first files of
  each class are the validation subset);
* ``image_dataset_from_directory`` (``dataset_utils.index_directory``)
  allows ``.bmp .gif .jpeg .jpg .png``, skips hidden subdirectories (as
  Keras 3 does: a ``.ipynb_checkpoints`` folder is no class), shuffles all
  files at once with ``np.random.RandomState(seed)`` and splits off the
  *last* ``validation_split`` of them (in ``fastconv.preprocessing``'s
  dataset module).
"""
from __future__ import annotations

import os
from typing import Iterator, List, Optional, Sequence, Tuple

__all__ = ["check_directory", "class_subdirectories", "iter_valid_files",
           "index_subdirectory"]


def check_directory(directory: str, what: str = "directory") -> str:
    """``directory`` as a string, or a clear error when it is not a folder."""
    try:
        path = os.fspath(directory)
    except TypeError:
        raise TypeError(f"`{what}` must be a path, got {type(directory).__name__}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`{what}` {path!r} does not exist")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"`{what}` {path!r} is not a directory")
    return path


def class_subdirectories(directory: str, skip_hidden: bool) -> List[str]:
    """The subdirectories of ``directory`` (links to folders included),
    sorted as strings; names starting with '.' left out when ``skip_hidden``."""
    return [name for name in sorted(os.listdir(directory))
            if os.path.isdir(os.path.join(directory, name))
            and not (skip_hidden and name.startswith("."))]


def iter_valid_files(directory: str, formats: Tuple[str, ...], follow_links: bool
                     ) -> Iterator[Tuple[str, str]]:
    """``(folder, file name)`` of every allowed file under ``directory``:
    folders in sorted path order, files sorted by name within a folder."""
    walk = os.walk(directory, followlinks=follow_links)
    for root, _, files in sorted(walk, key=lambda entry: entry[0]):
        for name in sorted(files):
            if name.lower().endswith(formats):
                yield root, name


def index_subdirectory(directory: str, subdir: str, formats: Tuple[str, ...],
                       follow_links: bool, split: Optional[Sequence[float]] = None
                       ) -> List[str]:
    """The allowed files under ``directory/subdir``, as paths relative to
    ``directory`` (``subdir/...``; ``subdir=''`` lists the whole tree).

    ``split=(start, stop)`` keeps the files ``int(start * n)`` to
    ``int(stop * n)`` of the ``n`` found (Keras' per-class split)."""
    folder = os.path.join(directory, subdir)
    found = list(iter_valid_files(folder, formats, follow_links))
    if split is not None:
        found = found[int(split[0] * len(found)):int(split[1] * len(found))]
    return [os.path.join(subdir, os.path.relpath(os.path.join(root, name), folder))
            for root, name in found]
