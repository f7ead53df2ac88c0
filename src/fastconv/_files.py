"""Writing files so that a crash, a kill or a full disk never leaves half of one.

:func:`atomic_write` writes into a temporary file beside the target, fsyncs
it and renames it over the target (``os.replace``, atomic on POSIX and
Windows): a reader sees the old file or the new one, never a mix, and an
interrupted write (an exception, Ctrl-C, SIGKILL) keeps the old file.

* Through a symbolic link it writes the link's target; the link stays a link.
* A write killed before its rename leaves its temporary file,
  ``.<name>.XXXXXXXX.tmp`` beside the target. The next :func:`atomic_write`
  to the same target removes such leftovers, and nothing else: regular files
  named exactly so for that target, owned by this user, untouched for
  :data:`STALE_AFTER_S` seconds and not locked (each writer holds an
  ``flock`` on its temporary file while it writes; where ``fcntl`` is
  missing, Windows refuses to delete a file that is open).
* Errors name the path the caller gave, never the temporary file.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from typing import BinaryIO, Iterator, Optional, Tuple, Union

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_write", "STALE_AFTER_S"]

# A temporary file untouched for this long, and unlocked, is a killed write's.
STALE_AFTER_S = 10.0

# Temporary names: "." + target name + "." + 8 of tempfile's characters + ".tmp".
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_NAME_LENGTH = 8
_SUFFIX = ".tmp"
_ATTEMPTS = 100

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike]) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` (or, when ``path`` is
    a symbolic link, the file it points to) when the block ends without an
    exception; on an exception the temporary file is removed.

    An ``OSError`` of the writing itself (creating the temporary file,
    ``fsync``, ``chmod``, ``os.replace``) is raised again, of the same type
    and errno, naming ``path``; exceptions of the block pass unchanged
    unless they name the temporary file.
    """
    path = os.fspath(path)
    try:
        target = _resolve(path)
        _remove_stale_temps(target)
        # mkstemp-like 0600 while writing over an existing file, whose mode the
        # result then takes; a new file gets 0666 less the umask from the kernel.
        mode = _mode_of(target)
        fd, tmp_path = _create_temp(target, 0o600 if mode is not None else 0o666)
    except OSError as exc:
        renamed = _naming(exc, path)
        if renamed is exc:
            raise
        raise renamed from None
    _lock(fd)
    block_done = False
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            block_done = True
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp_path, mode)
        os.replace(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        if isinstance(exc, OSError) and (
                block_done or tmp_path in (exc.filename, exc.filename2)):
            renamed = _naming(exc, path)
            if renamed is not exc:
                raise renamed from None
        raise


def _resolve(path: str) -> str:
    """The file that writing ``path`` writes: symbolic links followed."""
    target = os.path.realpath(path)
    if os.path.islink(target):  # realpath gives up on a loop of links
        code = getattr(errno, "ELOOP", errno.EINVAL)
        raise OSError(code, os.strerror(code), path)  # as open() would say
    return target


def _mode_of(target: str) -> Optional[int]:
    try:
        return os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        return None


def _create_temp(target: str, mode: int) -> Tuple[int, str]:
    directory, base = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW | _O_BINARY
    for _ in range(_ATTEMPTS):
        name = "".join(secrets.choice(_NAME_CHARS) for _ in range(_NAME_LENGTH))
        tmp_path = os.path.join(directory, f".{base}.{name}{_SUFFIX}")
        try:
            return os.open(tmp_path, flags, mode), tmp_path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "No free temporary file name", target)


def _lock(fd: int) -> None:
    """Mark a temporary file as in use (released when it closes, or the process dies)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):  # a file system without locks
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _temp_pattern(base: str) -> "re.Pattern[str]":
    return re.compile(re.escape(f".{base}.") + f"[{_NAME_CHARS}]{{{_NAME_LENGTH}}}" +
                      re.escape(_SUFFIX))


def _remove_stale_temps(target: str) -> None:
    """Delete what killed writes to ``target`` left; never fails."""
    directory, base = os.path.split(target)
    pattern = _temp_pattern(base)
    try:
        with os.scandir(directory) as entries:
            names = [entry.name for entry in entries if pattern.fullmatch(entry.name)]
    except OSError:
        return
    now = time.time()
    for name in names:
        with contextlib.suppress(OSError):
            _remove_if_stale(os.path.join(directory, name), now)


def _remove_if_stale(tmp_path: str, now: float) -> None:
    info = os.lstat(tmp_path)
    if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < STALE_AFTER_S:
        return
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return
    if fcntl is None:
        os.unlink(tmp_path)  # Windows refuses while a writer has it open
        return
    fd = os.open(tmp_path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a writer holds it, or locks do not work here: leave it
        same = (info.st_dev, info.st_ino)
        if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) != same:
            return
        again = os.lstat(tmp_path)
        if (again.st_dev, again.st_ino) == same:
            os.unlink(tmp_path)
    finally:
        os.close(fd)


def _naming(exc: OSError, path: str) -> OSError:
    """``exc`` about ``path``: same type, errno and message, the caller's file
    name instead of the temporary one; ``exc`` itself when it has no errno."""
    if exc.errno is None:
        return exc
    strerror: Optional[str] = exc.strerror or os.strerror(exc.errno)
    try:
        return type(exc)(exc.errno, strerror, path)
    except Exception:  # a subclass with another signature
        return OSError(exc.errno, strerror, path)
