"""Where the Keras datasets lie on disk, and how a missing one is fetched.

The cache is Keras' own: ``$KERAS_HOME/datasets`` when ``KERAS_HOME`` is set
(and not empty), else ``~/.keras/datasets``, the folder
:func:`fastconv.utils.get_file` writes to, so a machine that ran Keras once
needs no download. Rules shared by every loader:

* A file already there is used as found. Where a hash is published its
  digest is checked, and a mismatch only warns (Keras would download the
  file again, fastconv keeps it: on a machine without network access the
  files are copied in by hand, and a copy from a mirror may differ).
* A missing file is downloaded with :func:`~fastconv.utils.get_file`: the
  same origin and hash as Keras, a progress bar, the hash checked on the
  download, the file written atomically (a failed or corrupt download leaves
  nothing in the cache).
* Without network access the error names the URL and the exact path to copy
  the file to.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Callable, Iterator, Optional, Sequence

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
"""The folder Keras downloads MNIST and Fashion-MNIST from."""

_CHUNK = 1 << 20


def home_datadir() -> str:
    """``$KERAS_HOME/datasets`` or ``~/.keras/datasets``; nothing is created."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(os.path.expanduser(base), "datasets")


def _datadirs() -> Iterator[str]:
    """The folders to look in: the Keras cache, then the fallback that
    :func:`~fastconv.utils.get_file` downloads to when the cache cannot be
    written (``/tmp/.keras/datasets``), if that is where it would go."""
    home = home_datadir()
    yield home
    from ..utils.data_utils import _cache_base

    download_dir = os.path.join(_cache_base(None), "datasets")
    if os.path.normpath(download_dir) != os.path.normpath(home):
        yield download_dir


def locate(relative_paths: Sequence[str],
           present: Callable[[str], bool] = os.path.isfile) -> Optional[str]:
    """The first ``<datasets folder>/<relative path>`` that is ``present``, or None.

    An absolute path is looked at as it is (``os.path.join``, as Keras).
    """
    for datadir in _datadirs():
        for relative in relative_paths:
            path = os.path.join(datadir, relative)
            if present(path):
                return path
    return None


def sha256_of(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def check_cached(path: str, sha256: Optional[str], origin: str, stacklevel: int) -> None:
    """Warn if the cached ``path`` is not the file published at ``origin``."""
    if sha256 is None:
        return
    digest = sha256_of(path)
    if digest != sha256.lower():
        warnings.warn(
            f"{path} is not the file published at {origin}: its sha256 is {digest}, not "
            f"{sha256}. fastconv uses it as found (Keras would download it again); delete "
            "it to download a fresh copy.", UserWarning, stacklevel=stacklevel + 1)


def fetch(fname: str, origin: str, sha256: Optional[str], what: str, copy_to: str,
          cache_subdir: str = "datasets", untar: bool = False, also: str = "") -> str:
    """:func:`~fastconv.utils.get_file` ``origin``, with a clear error offline.

    ``copy_to`` is where the user may put the file by hand instead, named in
    the error when the download fails (followed by ``also``).
    """
    from ..utils.data_utils import get_file

    try:
        return get_file(fname, origin, untar=untar, file_hash=sha256,
                        cache_subdir=cache_subdir)
    except OSError as exc:
        if not str(exc).startswith("URL fetch failure"):
            raise  # a disk error (full, read-only, ...), which names its own path
        raise OSError(
            f"{what}: {os.path.basename(copy_to)} is not in the Keras cache and could not "
            f"be downloaded ({exc}). Without network access, download {origin} on another "
            f"machine and copy it to {copy_to}{also}") from exc
    except ValueError as exc:
        if sha256 is None or "hash" not in str(exc):
            raise
        raise ValueError(
            f"{what}: the file downloaded from {origin} does not have the published sha256 "
            f"{sha256} (a corrupt or altered download); nothing was saved in the cache. Try "
            f"again, or copy a good file to {copy_to}. ({exc})") from exc
