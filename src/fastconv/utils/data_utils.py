"""Keras' ``get_file``: fetch a file into the Keras cache once, verified.

:func:`get_file` is ``tf.keras.utils.get_file`` of tf.keras 2.4 (same
signature, cache layout, hash rules and messages), so code that downloads a
dataset with Keras runs unchanged. It uses only the standard library
(``urllib.request``, ``hashlib``, ``tarfile``, ``zipfile``).

Where it is stricter than Keras 2.4, it is on purpose:

* **Atomic download.** Keras writes straight into the final file name, so an
  interrupted download can leave a partial file that later calls (without a
  hash) take for the cached copy. Here the bytes go to a hidden temporary
  file next to the final one, which is renamed into place (``os.replace``)
  only once it is complete (as long as ``Content-Length`` said) and its hash
  matches; on any error the temporary file is removed.
* **Safe extraction.** Archives come from the network and may be hostile.
  Keras 2.4 calls ``extractall`` unchecked, so a member ``../x``, ``/x`` or a
  link pointing out of the cache can write anywhere. Here such archives are
  refused with a ValueError naming the member, checked twice: by name before
  anything is written, then against the disk just before each member is
  written (which catches chains of in-archive symlinks that only escape
  once resolved). Where ``tarfile`` has extraction filters (Python 3.12,
  and 3.9-3.11 security releases), its ``'data'`` filter runs as well, which
  also drops setuid bits and the archive's owners. A failed extraction
  removes what it created; Keras would ``rmtree`` the whole cache
  subdirectory instead.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import re
import tarfile
import urllib.error
import urllib.request
import zipfile
from typing import IO, Any, Iterator, List, Optional, Tuple, Union

import numpy as np

from .._files import atomic_write
from ..callbacks import Progbar

__all__ = ["get_file"]

PathArg = Union[str, "os.PathLike[str]"]

_FALLBACK_CACHE_DIR = os.path.join("/tmp", ".keras")
"""Where the cache goes when the chosen cache dir cannot be written (as Keras)."""

_CHUNK_SIZE = 64 * 1024
_HASH_ALGORITHMS = ("auto", "md5", "sha256")
_HASH_LENGTHS = {"md5": 32, "sha256": 64}
_ARCHIVE_FORMATS = ("tar", "zip")
_FETCH_ERROR = "URL fetch failure on {}: {} -- {}"  # Keras 2.4's wording

# Python >= 3.12 warns when extractall runs without a filter (and 3.14
# changes the default); 'data' is the strictest and only adds to our checks.
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def get_file(fname: PathArg, origin: str, untar: bool = False,
             md5_hash: Optional[str] = None, file_hash: Optional[str] = None,
             cache_subdir: PathArg = "datasets", hash_algorithm: str = "auto",
             extract: bool = False, archive_format: Any = "auto",
             cache_dir: Optional[PathArg] = None) -> str:
    """Download ``origin`` into the Keras cache unless it is already there.

    As ``tf.keras.utils.get_file`` (2.4): the file goes to
    ``<cache_dir>/<cache_subdir>/<fname>`` (by default
    ``~/.keras/datasets/<fname>``), is downloaded only if missing or if its
    hash does not match ``file_hash``, and can be extracted into
    ``<cache_dir>/<cache_subdir>``. ``Downloading data from <origin>`` is
    printed before a download, and a :class:`~fastconv.callbacks.Progbar`
    (in bytes) shows its progress.

    Parameters
    ----------
    fname : str or os.PathLike
        Name of the file in the cache subdirectory. It is joined onto it with
        ``os.path.join``, as Keras does: an absolute path is used as it is,
        and a relative one may hold subdirectories (created when missing,
        where Keras would fail) or even ``..``; it is the caller's argument,
        not downloaded data, so it is not second-guessed. It must name a
        file: empty, ``.``, ``..`` or a trailing separator is refused.
    origin : str
        URL of the file (anything ``urllib.request.urlopen`` opens: http,
        https, ftp, file).
    untar : bool, default False
        Deprecated in Keras in favour of ``extract``. The download is stored
        as ``<fname>.tar.gz`` and extracted (as a tar archive, whatever
        ``archive_format`` says) unless ``<fname>`` already exists; the
        return value is then the path ``<fname>``, as in Keras, which
        expects the archive to hold a folder of that name.
    md5_hash : str, optional
        Deprecated in Keras in favour of ``file_hash``: an MD5 hash, used
        when ``file_hash`` is None.
    file_hash : str, optional
        Expected hex digest of the file (upper or lower case). A cached file
        that does not match is downloaded again (with Keras' message); a
        download that does not match raises ValueError and is not kept.
    cache_subdir : str or os.PathLike, default 'datasets'
        Subdirectory of the cache dir; an absolute path is used as it is.
    hash_algorithm : {'auto', 'md5', 'sha256'}, default 'auto'
        'auto' means sha256 for a 64-digit ``file_hash``, md5 otherwise.
    extract : bool, default False
        Extract the file into the cache subdirectory if it is an archive of
        a type in ``archive_format`` (and leave it be if it is not). As in
        Keras, this happens on every call, cached or not.
    archive_format : {'auto', 'tar', 'zip', None} or list of {'tar', 'zip'}
        'auto' is ``['tar', 'zip']``, tried in order; 'tar' covers
        compressed tars (gz, bz2, xz); None or ``[]`` extracts nothing.
    cache_dir : str or os.PathLike, optional
        Default: ``$KERAS_HOME`` if set and not empty, else ``~/.keras``.
        If it cannot be created or written, ``/tmp/.keras`` is used instead.

    Returns
    -------
    str
        The path of the file, or with ``untar=True`` of the extracted folder.

    Raises
    ------
    OSError
        ``URL fetch failure on <origin>: <code> -- <reason>`` when the URL
        cannot be fetched (no network, refused connection, HTTP error such
        as 404, or a body shorter than its ``Content-Length``). Keras 2.4
        raises a plain ``Exception`` with the same text; OSError is a
        subclass of it, so ``except Exception`` still catches it.
    ValueError
        For a download whose hash does not match, an archive member that
        would land outside the target directory, ``untar=True`` on a file
        that is not a tar archive, or a bad argument value.
    TypeError
        For an argument of the wrong type.

    Notes
    -----
    Differences from tf.keras 2.4, besides the atomic download and the safe
    extraction described in the module docstring:

    * ``$KERAS_HOME`` is honoured, as later Keras versions do (tf.keras 2.4
      ignores it in ``get_file``).
    * A missing cache dir is created; Keras 2.4 falls back to
      ``/tmp/.keras`` whenever ``~/.keras`` does not exist yet.
    * A download is checked against ``file_hash`` (Keras 2.4 checks only
      cached files), and a ``file_hash`` that cannot be a digest of the
      chosen algorithm (wrong length, not hex) is refused up front rather
      than never matching.
    * A failed re-download of a stale cached file leaves that file in place
      (it is replaced only by a verified download); Keras deletes it.
    * Like Keras, there is no timeout: a server that accepts the connection
      and then says nothing blocks the call.
    """
    fname = _path_arg(fname, "fname")
    if not fname:
        raise ValueError("`fname` must be a non-empty file name, got ''")
    if os.path.basename(fname) in ("", ".", ".."):
        raise ValueError(f"`fname` must name a file, got {fname!r} (a directory)")
    if not isinstance(origin, str):
        raise TypeError(f"`origin` must be a URL string, got {type(origin).__name__}")
    if not origin:
        raise ValueError("`origin` must be a non-empty URL, got ''")
    untar = _bool_arg(untar, "untar")
    extract = _bool_arg(extract, "extract")
    cache_subdir = _path_arg(cache_subdir, "cache_subdir")
    formats = _archive_formats(archive_format)
    algorithm, expected_hash = _resolve_hash(md5_hash, file_hash, hash_algorithm)

    datadir = os.path.join(_cache_base(cache_dir), cache_subdir)
    os.makedirs(datadir, exist_ok=True)
    if untar:
        untar_fpath = os.path.join(datadir, fname)
        fpath = untar_fpath + ".tar.gz"
    else:
        fpath = os.path.join(datadir, fname)

    download = not os.path.exists(fpath)
    if not download and expected_hash is not None:
        assert algorithm is not None
        if _file_digest(fpath, algorithm) != expected_hash:
            print("A local file was found, but it seems to be incomplete or outdated "
                  "because the " + algorithm + " file hash does not match the original "
                  "value of " + expected_hash + " so we will re-download the data.")
            download = True
    if download:
        print("Downloading data from", origin)
        _download(origin, fpath, algorithm, expected_hash)

    if untar:
        if not os.path.exists(untar_fpath):
            if not _extract_archive(fpath, datadir, ["tar"]):
                raise ValueError(f"untar=True, but {fpath} (from {origin}) is not a tar "
                                 "archive; pass extract=True to extract other formats")
        return untar_fpath
    if extract:
        _extract_archive(fpath, datadir, formats)
    return fpath


# ---------------------------------------------------------------------------
# Arguments


def _path_arg(value: Any, name: str) -> str:
    try:
        path = os.fspath(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a str or os.PathLike, "
                        f"got {type(value).__name__}") from None
    if not isinstance(path, str):
        raise TypeError(f"`{name}` must be a str or os.PathLike, got bytes {path!r}")
    return path


def _bool_arg(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r}")
    return bool(value)


def _archive_formats(archive_format: Any) -> List[str]:
    expected = "'auto', 'tar', 'zip', None or a list of 'tar'/'zip'"
    if archive_format is None:
        return []
    if isinstance(archive_format, str):
        formats = list(_ARCHIVE_FORMATS) if archive_format == "auto" else [archive_format]
    elif isinstance(archive_format, (list, tuple)):
        formats = list(archive_format)
    else:
        raise TypeError(f"`archive_format` must be {expected}, "
                        f"got {type(archive_format).__name__}")
    for fmt in formats:
        if fmt not in _ARCHIVE_FORMATS:
            raise ValueError(f"`archive_format` must be {expected}, got {archive_format!r}")
    return formats


def _resolve_hash(md5_hash: Optional[str], file_hash: Optional[str],
                  hash_algorithm: str) -> Tuple[Optional[str], Optional[str]]:
    """(algorithm, lower-case expected digest), both None without a hash."""
    if not isinstance(hash_algorithm, str) or hash_algorithm not in _HASH_ALGORITHMS:
        raise ValueError(f"`hash_algorithm` must be one of {_HASH_ALGORITHMS}, "
                         f"got {hash_algorithm!r}")
    name = "file_hash"
    if file_hash is None and md5_hash is not None:
        # Keras: the deprecated md5_hash always means md5.
        file_hash, hash_algorithm, name = md5_hash, "md5", "md5_hash"
    if file_hash is None:
        return None, None
    if not isinstance(file_hash, str):
        raise TypeError(f"`{name}` must be a hex digest string, got {type(file_hash).__name__}")
    digest = file_hash.strip().lower()
    if not re.fullmatch(r"[0-9a-f]+", digest):
        raise ValueError(f"`{name}` must be a hex digest, got {file_hash!r}")
    if hash_algorithm == "auto":
        if len(digest) not in (32, 64):
            raise ValueError(f"`{name}` must have 64 (sha256) or 32 (md5) hex digits with "
                             f"hash_algorithm='auto', got {len(digest)}: {file_hash!r}")
        algorithm = "sha256" if len(digest) == 64 else "md5"
    else:
        algorithm = hash_algorithm
        if len(digest) != _HASH_LENGTHS[algorithm]:
            raise ValueError(f"`{name}` must have {_HASH_LENGTHS[algorithm]} hex digits for "
                             f"{algorithm}, got {len(digest)}: {file_hash!r}")
    return algorithm, digest


def _cache_base(cache_dir: Optional[PathArg]) -> str:
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".keras")
    base = os.path.expanduser(_path_arg(cache_dir, "cache_dir"))
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:  # a file in the way, a read-only parent, ...
        return _FALLBACK_CACHE_DIR
    if not os.access(base, os.W_OK | os.X_OK):
        return _FALLBACK_CACHE_DIR
    return base


# ---------------------------------------------------------------------------
# Download


def _new_hasher(algorithm: str) -> Any:
    if algorithm == "md5":
        try:  # an integrity check, not security: allowed where FIPS forbids md5
            return hashlib.md5(usedforsecurity=False)
        except TypeError:
            return hashlib.md5()
    return hashlib.new(algorithm)


def _file_digest(path: str, algorithm: str) -> str:
    hasher = _new_hasher(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_SIZE), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _fetch_error(origin: str, code: Any, reason: Any) -> OSError:
    return OSError(_FETCH_ERROR.format(origin, code, reason))


def _download(origin: str, fpath: str, algorithm: Optional[str],
              expected_hash: Optional[str]) -> None:
    directory = os.path.dirname(fpath) or os.curdir
    os.makedirs(directory, exist_ok=True)
    # Whole or not at all: an error (KeyboardInterrupt included) removes the
    # temporary file and keeps whatever was at fpath.
    with atomic_write(fpath) as out:
        digest = _fetch(origin, out, algorithm)
        if expected_hash is not None and digest != expected_hash:
            raise ValueError(
                f"The {algorithm} hash of the file downloaded from {origin} is {digest}, "
                f"not the expected `file_hash` {expected_hash}: the download is corrupt or "
                "the hash is wrong. Nothing was saved.")


def _fetch(origin: str, out: IO[bytes], algorithm: Optional[str]) -> Optional[str]:
    """Stream ``origin`` into ``out``; the hex digest if ``algorithm`` is set."""
    try:
        response = urllib.request.urlopen(origin)
    except urllib.error.HTTPError as exc:  # before URLError, its base class
        exc.close()
        raise _fetch_error(origin, exc.code, exc.msg) from exc
    except urllib.error.URLError as exc:
        # Keras prints exc.errno, which urlopen leaves None; the errno of the
        # socket error underneath says more.
        raise _fetch_error(origin, getattr(exc.reason, "errno", exc.errno),
                           exc.reason) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _fetch_error(origin, getattr(exc, "errno", None), exc) from exc
    hasher = _new_hasher(algorithm) if algorithm is not None else None
    with response:
        total = _content_length(response)
        progbar = Progbar(total) if total != 0 else None
        received = 0
        while True:
            try:
                chunk = response.read(_CHUNK_SIZE)
            except http.client.IncompleteRead as exc:  # newer Pythons, and chunked bodies
                got = received + len(exc.partial)
                reason = (f"retrieval incomplete: got only {got} out of {total} bytes"
                          if total is not None else f"retrieval incomplete: {exc!r}")
                raise _fetch_error(origin, None, reason) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise _fetch_error(origin, getattr(exc, "errno", None), exc) from exc
            if not chunk:
                break
            out.write(chunk)
            if hasher is not None:
                hasher.update(chunk)
            received += len(chunk)
            if progbar is not None:
                progbar.update(received)  # finalizes itself on reaching total
        if total is not None and received < total:
            # http.client returns b'' when the server closes early, without
            # an error; Keras' urlretrieve reports it with this same text.
            raise _fetch_error(origin, None, f"retrieval incomplete: got only {received} "
                               f"out of {total} bytes")
        if total is None and progbar is not None:
            progbar.update(received, finalize=True)
    return hasher.hexdigest() if hasher is not None else None


def _content_length(response: Any) -> Optional[int]:
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


# ---------------------------------------------------------------------------
# Extraction


def _extract_archive(path: str, target: str, formats: List[str]) -> bool:
    """Extract ``path`` into ``target`` if it is one of ``formats``; whether it was."""
    for fmt in formats:
        if fmt == "tar" and tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                _extract_tar(archive, path, target)
            return True
        if fmt == "zip" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                _extract_zip(archive, path, target)
            return True
    return False


def _name_problem(name: str) -> Optional[str]:
    """Why an archive member name may not be extracted, or None."""
    if not name:
        return "has an empty name"
    # Both separators: an archive made on one system may be opened on another.
    if name.startswith(("/", "\\")) or os.path.isabs(name) or re.match(r"[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "has a '..' component"
    return None


def _escapes(relative: str) -> bool:
    normal = posixpath.normpath(relative)
    return normal == ".." or normal.startswith("../") or normal.startswith("/")


def _tar_member_problem(member: tarfile.TarInfo) -> Optional[str]:
    problem = _name_problem(member.name)
    if problem is not None:
        return problem
    if member.issym() or member.islnk():
        link = member.linkname
        if link.startswith(("/", "\\")) or os.path.isabs(link):
            return f"is a link to the absolute path {link!r}"
        # A symlink is relative to its own directory, a hard link to the root.
        base = posixpath.dirname(member.name) if member.issym() else ""
        if _escapes(posixpath.join(base, link.replace("\\", "/"))):
            return f"is a link to {link!r}, outside the target directory"
    elif member.ischr() or member.isblk() or member.isfifo():
        return "is a device or FIFO"
    return None


def _refuse(archive_path: str, name: str, problem: str, written: bool) -> ValueError:
    done = ("the members extracted before it were removed" if written
            else "nothing was extracted")
    return ValueError(f"Refusing to extract {archive_path}: member {name!r} {problem}; "
                      f"{done}")


def _inside(root_real: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _new_paths(target: str, name: str) -> List[str]:
    """The paths extracting ``name`` will create, outermost first."""
    created = []
    path = os.path.normpath(os.path.join(target, name))
    while path != target and not os.path.lexists(path):
        created.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return created[::-1]


def _remove_created(created: List[str]) -> None:
    for path in reversed(created):  # contents before their directories
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.remove(path)
        except OSError:
            pass


def _extract_tar(archive: tarfile.TarFile, archive_path: str, target: str) -> None:
    members = archive.getmembers()
    for member in members:
        problem = _tar_member_problem(member)
        if problem is not None:
            raise _refuse(archive_path, member.name, problem, written=False)
    target = os.path.normpath(target)
    root = os.path.realpath(target)
    created: List[str] = []

    def checked() -> Iterator[tarfile.TarInfo]:
        # Run lazily by extractall, so each check sees the members already
        # written, including symlinks that the name check could not follow.
        for member in members:
            dest = os.path.join(target, member.name)
            if member.issym():
                # The link itself is replaced, not followed; where it points must stay.
                ok = (_inside(root, os.path.dirname(dest))
                      and _inside(root, os.path.join(os.path.dirname(dest), member.linkname)))
            elif member.islnk():
                ok = (_inside(root, os.path.dirname(dest))
                      and _inside(root, os.path.join(target, member.linkname)))
            else:
                ok = _inside(root, dest)
            if not ok:
                raise _refuse(archive_path, member.name,
                              "resolves outside the target directory", written=bool(created))
            created.extend(_new_paths(target, member.name))
            yield member

    try:
        archive.extractall(target, members=checked(), **_TAR_FILTER)
    except BaseException as exc:
        _remove_created(created)
        filter_error = getattr(tarfile, "FilterError", None)
        if filter_error is not None and isinstance(exc, filter_error):
            member = getattr(exc, "tarinfo", None)
            name = member.name if member is not None else "?"
            raise _refuse(archive_path, name, f"was refused by tarfile: {exc}",
                          written=True) from exc
        raise


def _extract_zip(archive: zipfile.ZipFile, archive_path: str, target: str) -> None:
    infos = archive.infolist()
    for info in infos:
        problem = _name_problem(info.filename)
        if problem is not None:
            raise _refuse(archive_path, info.filename, problem, written=False)
    target = os.path.normpath(target)
    root = os.path.realpath(target)
    created: List[str] = []
    try:
        for info in infos:
            # zipfile writes symlinks as plain files, so only the path matters.
            if not _inside(root, os.path.join(target, info.filename)):
                raise _refuse(archive_path, info.filename,
                              "resolves outside the target directory", written=bool(created))
            created.extend(_new_paths(target, info.filename))
            archive.extract(info, target)
    except BaseException:
        _remove_created(created)
        raise
