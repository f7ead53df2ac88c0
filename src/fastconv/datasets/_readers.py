"""Reading the dataset files defensively: ``.npz``, gzip'ed IDX and CIFAR pickles.

A cached file may be truncated (an interrupted copy), corrupt or hostile.
Every reader here turns that into a ValueError that names the file and says
to delete it, never a crash or a hang, and keeps memory bounded: sizes are
checked against the headers (and against :data:`MAX_BYTES`) before any
data is read.

CIFAR's "python version" batches are Python 2 pickles of a ``dict`` (bytes
keys once read with ``encoding='bytes'``) holding a NumPy ``uint8`` array
(``data``), lists of ints (the labels), a list of bytes (the file names)
and bytes (the batch label). Unpickling may call any function a pickle
names, so :class:`_RestrictedUnpickler` resolves only the three NumPy names
an array needs (``_reconstruct``, in its NumPy 1 or NumPy 2 module,
``ndarray`` and ``dtype``), and to stand-ins of its own rather than NumPy's
(nothing of the pickle runs NumPy code, let alone any other): the array
is rebuilt from its raw bytes after its dtype (plain numbers only) and size
have been checked. It is the pure-Python unpickler, which reads what the
file holds rather than allocating what a length field claims.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import re
import struct
import tarfile
import zipfile
from typing import Any, Dict, Iterator, Mapping, Sequence, Tuple

import numpy as np

MAX_BYTES = 1 << 31
"""Largest array or file read (2 GiB); CIFAR-100's training batch, the
largest of these files, is 155 MB."""

_MAX_NPY_HEADER = 10_000


class Corrupt(Exception):
    """Why a file is unusable; :func:`reading` turns it into a ValueError."""


@contextlib.contextmanager
def reading(path: str, what: str, loader: str, delete: str = "") -> Iterator[None]:
    """Turn any failure to parse ``path`` into one clear ValueError.

    ``delete`` is what to remove to get a fresh copy (default: the file).
    """
    try:
        yield
    except MemoryError:
        raise
    except Corrupt as exc:
        raise ValueError(_message(path, what, loader, delete, str(exc))) from None
    except Exception as exc:  # zipfile, gzip, zlib, tarfile, pickle, struct, numpy ...
        if str(exc):
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "it ends early" if isinstance(exc, EOFError) else type(exc).__name__
        raise ValueError(_message(path, what, loader, delete, reason)) from exc


def _message(path: str, what: str, loader: str, delete: str, reason: str) -> str:
    return (f"{path} is not a valid {what} ({reason}). It is truncated, corrupt or not the "
            f"dataset's file: delete {delete or 'it'} and call {loader}() again to download "
            "a fresh copy.")


def _check_size(nbytes: int, what: str) -> None:
    if nbytes > MAX_BYTES:
        raise Corrupt(f"{what} claims {nbytes:,} bytes, more than the {MAX_BYTES:,} "
                      "fastconv reads")


# ---------------------------------------------------------------------------
# .npz (MNIST)


def _npy_header(stream: Any) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes before the data) of a ``.npy`` stream."""
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        raise Corrupt(f"unsupported .npy format version {version}")
    length_format = "<H" if version == (1, 0) else "<I"
    raw_length = stream.read(struct.calcsize(length_format))
    if len(raw_length) != struct.calcsize(length_format):
        raise Corrupt("it ends inside an array header")
    (length,) = struct.unpack(length_format, raw_length)
    if length > _MAX_NPY_HEADER:
        raise Corrupt(f"an array header of {length:,} bytes")
    header = io.BytesIO(raw_length + stream.read(length))
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read(header)
    return shape, dtype, fmt.MAGIC_LEN + len(raw_length) + length


def read_npz(path: str, names: Sequence[str]) -> Dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` file, their headers checked first."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for name in names:
            try:
                info = archive.getinfo(name + ".npy")
            except KeyError:
                raise Corrupt(f"it has no array {name!r}") from None
            with archive.open(info) as member:
                shape, dtype, header = _npy_header(member)
            if dtype.hasobject:
                raise Corrupt(f"the array {name!r} holds Python objects")
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            _check_size(nbytes, f"the array {name!r}")
            if info.file_size != header + nbytes:
                raise Corrupt(f"the array {name!r} of shape {shape} and dtype {dtype} "
                              f"should take {header + nbytes:,} bytes, not {info.file_size:,}")
            with archive.open(info) as member:
                arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                if member.read(1):  # also makes zipfile check the CRC
                    raise Corrupt(f"trailing bytes after the array {name!r}")
    return arrays


# ---------------------------------------------------------------------------
# gzip'ed IDX (Fashion-MNIST)


def read_idx_gz(path: str, ndim: int) -> np.ndarray:
    """The ``uint8`` array of a gzip'ed IDX file (Yann LeCun's MNIST format)."""
    with gzip.open(path, "rb") as stream:
        head = stream.read(4 + 4 * ndim)
        if len(head) < 4 + 4 * ndim:
            raise Corrupt("it ends inside its header")
        zero, dtype_code, file_ndim = struct.unpack(">HBB", head[:4])
        if zero != 0 or dtype_code != 0x08 or file_ndim != ndim:
            raise Corrupt(f"its header is not that of a {ndim}-D uint8 IDX array "
                          f"(magic {head[:4].hex()}, expected 0000080{ndim})")
        shape = struct.unpack(f">{ndim}I", head[4:])
        count = int(np.prod(shape, dtype=np.int64))
        _check_size(count, f"its header (shape {shape})")
        data = np.empty(count, np.uint8)
        view, filled = memoryview(data), 0
        while filled < count:
            got = stream.readinto(view[filled:])
            if not got:
                raise Corrupt(f"its header says shape {shape} ({count:,} bytes), but the "
                              f"data ends after {filled:,} bytes")
            filled += got
        if stream.read(1):  # also makes gzip check the CRC and length
            raise Corrupt(f"more data than its header's shape {shape}")
    return data.reshape(shape)


# ---------------------------------------------------------------------------
# CIFAR pickles


_RECONSTRUCT = ("numpy.core.multiarray", "numpy._core.multiarray")
_DTYPE_CODE = re.compile(r"[<>|=]?[biuf][1248]")


class _PickledNdarrayClass:
    """What ``numpy.ndarray`` resolves to: a token for ``_reconstruct``."""

    def __setstate__(self, state: Any) -> None:
        raise Corrupt("the pickle sets the state of numpy.ndarray itself")


_NDARRAY = _PickledNdarrayClass()


class _PickledDtype:
    """What ``numpy.dtype(code, align, copy)`` becomes: a plain-number dtype."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if isinstance(code, bytes):
            code = code.decode("latin-1")
        if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
            raise Corrupt(f"the pickle asks for the dtype {code!r}, not a plain number type")
        self.dtype = np.dtype(code)

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subdtype, names, fields, elsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) < 2:
            raise Corrupt(f"the pickle gives a dtype the state {state!r}")
        order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]
        if order not in ("<", ">", "|", "="):
            raise Corrupt(f"the pickle gives a dtype the byte order {order!r}")
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)


class _PickledArray:
    """What ``numpy.core.multiarray._reconstruct(ndarray, ...)`` becomes."""

    def __init__(self) -> None:
        self.shape: Tuple[int, ...] = ()
        self.dtype: np.dtype = np.dtype(np.uint8)
        self.fortran = False
        self.raw = b""
        self.complete = False

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise Corrupt("the pickle gives an array a state that is not numpy's")
        shape, dtype, fortran, raw = state[-4:]
        if (not isinstance(shape, tuple) or len(shape) > 32
                or not all(type(n) is int and n >= 0 for n in shape)):
            raise Corrupt(f"the pickle gives an array the shape {shape!r}")
        if not isinstance(dtype, _PickledDtype):
            raise Corrupt("the pickle gives an array a dtype that is not numpy.dtype")
        if not isinstance(raw, bytes):
            raise Corrupt(f"the pickle gives an array data of type {type(raw).__name__}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.dtype.itemsize
        if len(raw) != nbytes:
            raise Corrupt(f"an array of shape {shape} and dtype {dtype.dtype} needs "
                          f"{nbytes:,} bytes of data, the pickle has {len(raw):,}")
        self.shape, self.dtype, self.fortran, self.raw = shape, dtype.dtype, bool(fortran), raw
        self.complete = True

    def array(self) -> np.ndarray:
        """The array (read-only, over the pickle's bytes)."""
        if not self.complete:
            raise Corrupt("the pickle never sets the data of its array")
        flat = np.frombuffer(self.raw, dtype=self.dtype)
        return flat.reshape(self.shape, order="F" if self.fortran else "C")


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _PickledArray:
    if cls is not _NDARRAY:
        raise Corrupt("the pickle reconstructs something other than numpy.ndarray")
    return _PickledArray()


class _RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """The pure-Python unpickler, resolving only what a NumPy array needs."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _RECONSTRUCT and name == "_reconstruct":
            return _reconstruct
        if module == "numpy" and name == "ndarray":
            return _NDARRAY
        if module == "numpy" and name == "dtype":
            return _PickledDtype
        raise Corrupt(f"the pickle asks to run {module}.{name}, which no CIFAR batch does; "
                      "refused, since unpickling it could run any code")

    def persistent_load(self, pid: Any) -> Any:
        raise Corrupt("the pickle refers to a persistent object")


def read_cifar_pickle(data: bytes, label_key: str, n_classes: int
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """(images ``(n, 3, 32, 32)`` uint8, labels ``(n,)`` int64) of one CIFAR batch."""
    try:
        batch = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except KeyError as exc:  # the pure-Python unpickler's word for an unknown opcode
        raise Corrupt(f"it is not a valid pickle (unknown opcode or memo key {exc})") from None
    if not isinstance(batch, dict):
        raise Corrupt(f"it holds a {type(batch).__name__}, not a dict")
    entries: Mapping[str, Any] = {
        key.decode("latin-1") if isinstance(key, bytes) else key: value
        for key, value in batch.items() if isinstance(key, (bytes, str))}
    for key in ("data", label_key):
        if key not in entries:
            raise Corrupt(f"it has no {key!r} entry")
    if not isinstance(entries["data"], _PickledArray):
        raise Corrupt("its 'data' entry is not an array")
    images = entries["data"].array()
    if images.dtype != np.uint8 or images.ndim < 1 or images.size != len(images) * 3072:
        raise Corrupt(f"its 'data' is {images.dtype} of shape {images.shape}, not uint8 "
                      "rows of 3 x 32 x 32 pixels")
    labels = entries[label_key]
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise Corrupt(f"its {label_key!r} entry is not a list of ints")
    if len(labels) != len(images):
        raise Corrupt(f"it has {len(images)} images but {len(labels)} {label_key}")
    label_array = np.array(labels, dtype=np.int64)
    if label_array.size and not 0 <= label_array.min() <= label_array.max() < n_classes:
        raise Corrupt(f"its {label_key} are not all in 0..{n_classes - 1}")
    return images.reshape(len(images), 3, 32, 32), label_array


def read_file(path: str) -> bytes:
    """A whole (small enough) file."""
    size = os.path.getsize(path)
    _check_size(size, "the file")
    with open(path, "rb") as stream:
        return stream.read(size + 1)


def tar_members(path: str, names: Sequence[str]) -> Iterator[Tuple[str, bytes]]:
    """``(name, content)`` of the regular files ``names`` of a tar archive (any
    compression), in the archive's order, one at a time."""
    found = set()
    with tarfile.open(path, "r:*") as archive:
        for member in archive:  # one pass: a compressed tar reads front to back
            name = os.path.normpath(member.name).replace(os.sep, "/")
            if name not in names or name in found or not member.isfile():
                continue
            _check_size(member.size, f"its member {name}")
            stream = archive.extractfile(member)
            assert stream is not None  # a regular file
            content = stream.read()
            if len(content) != member.size:
                raise Corrupt(f"its member {name} ends early")
            found.add(name)
            yield name, content
    missing = [name for name in names if name not in found]
    if missing:
        raise Corrupt(f"it has no {', '.join(missing)}")
