"""Writing files so that a crash, a kill or a full disk never leaves half of one.

:func:`atomic_write` writes into a temporary file in the target's directory,
fsyncs it and renames it over the target (``os.replace``, atomic on POSIX
and Windows): a reader sees the old file or the new one, never a mix, and
an interrupted write (an exception, Ctrl-C, SIGKILL) keeps the old file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import BinaryIO, Iterator, Union

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike]) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` when the block ends
    without an exception; on an exception the temporary file is removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                    suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the usual permissions.
        if os.path.exists(path):
            os.chmod(tmp_path, os.stat(path).st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise
