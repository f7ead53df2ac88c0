"""Weight files: ``Model.save_weights`` / ``Model.load_weights`` as ``.npz`` archives.

An archive holds one array per weight (``w0``, ``w1``, ..., layer by layer
in ``model.layers`` order, each layer's ``weights`` in order) and, under ``__fastconv_meta__``, a JSON string::

    {"format": "fastconv-weights-1", "model": <model name>,
     "layers": [{"name": <layer>, "class": <class name>,
                 "weights": [{"key": "w0", "name": "conv2d/kernel:0",
                              "shape": [3, 3, 1, 32], "dtype": "float32"}, ...]}, ...]}

listing only the layers that have weights. Writing is atomic
(:func:`fastconv._files.atomic_write`: a temporary file beside the target,
fsync'ed, then ``os.replace``), so a reader never sees a partial file and an
interrupted save keeps the old one.

Reading trusts nothing in the file. Before any array's data is read it
checks the format tag and the structure of the metadata, every member's
``.npy`` header (shape, dtype; no objects, so nothing is unpickled) against
the metadata and against the size the zip directory declares, and the
shapes against the model's: a small file cannot make it allocate a large
array. Then it reads the arrays it loads (the zip CRCs check their bytes),
and only then assigns them, all or none (``set_weight_values``). Every
error names the file. Keras' own formats (``.h5``, ``.keras``) are not
supported.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import zipfile
from typing import Any, BinaryIO, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, \
    Union

import numpy as np

from .._files import atomic_write
from ..layers.base import Layer, Variable, set_weight_values

__all__ = ["save_weights", "load_weights", "WEIGHTS_FORMAT"]

# Format tag stored in every weights file, checked on load.
WEIGHTS_FORMAT = "fastconv-weights-1"
_META_KEY = "__fastconv_meta__"


def save_weights(filepath: Union[str, os.PathLike], model_name: str, layers: Sequence[Layer],
                 overwrite: bool = True, save_format: Optional[str] = None) -> None:
    """Write the weights of ``layers`` (a model's, in order) to ``filepath``."""
    if save_format not in (None, "npz"):
        raise ValueError(f"fastconv saves weights only as npz, got save_format="
                         f"{save_format!r}")
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    arrays: Dict[str, np.ndarray] = {}
    meta_layers = []
    for layer in _with_weights(layers):
        entries = []
        for variable in layer.weights:
            key = f"w{len(arrays)}"
            arrays[key] = variable.numpy()
            entries.append({"key": key, "name": variable.name,
                            "shape": list(variable.numpy().shape),
                            "dtype": variable.numpy().dtype.name})
        meta_layers.append({"name": layer.name, "class": type(layer).__name__,
                            "weights": entries})
    meta = {"format": WEIGHTS_FORMAT, "model": model_name, "layers": meta_layers}
    arrays[_META_KEY] = np.array(json.dumps(meta))
    _atomic_savez(path, arrays)


def load_weights(filepath: Union[str, os.PathLike], layers: Sequence[Layer],
                 by_name: bool = False, skip_mismatch: bool = False) -> None:
    """Assign the weights saved in ``filepath`` to ``layers`` (a model's, in
    order), matched in order or ``by_name``; nothing is assigned unless the
    whole file reads and fits, and then everything is, in one block that
    Ctrl-C cannot split (``set_weight_values``)."""
    if skip_mismatch and not by_name:
        raise ValueError("When calling model.load_weights, skip_mismatch can only be set "
                         "to True when by_name is True.")
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Unable to load weights: no file at {path}")
    layers = _with_weights(layers)
    with open(path, "rb") as handle:  # an OSError here names the path already
        with _bad_file(path):
            archive = zipfile.ZipFile(handle)
        with archive:
            with _bad_file(path):
                saved_layers = _read_layout(archive)
            # Shapes are matched from the headers: nothing the model cannot hold is read.
            plan = _match(path, layers, saved_layers, by_name, skip_mismatch)
            with _bad_file(path):
                values = [_read_data(archive, member) for _, member in plan]
    set_weight_values(path, [variable for variable, _ in plan], values)


def _with_weights(layers: Sequence[Layer]) -> List[Layer]:
    # Files list only layers that have weights, so both sides skip the others.
    return [layer for layer in layers if layer.weights]


def _match(path: str, layers: List[Layer], saved_layers: List[Dict[str, Any]], by_name: bool,
           skip_mismatch: bool) -> List[Tuple[Variable, "_Member"]]:
    """``(variable, saved array)`` pairs to assign; Keras' errors on a mismatch."""
    plan: List[Tuple[Variable, _Member]] = []
    if by_name:
        saved_by_name = {entry["name"]: entry for entry in saved_layers}
        for layer in layers:
            entry = saved_by_name.get(layer.name)
            if entry is None:
                continue
            problem = _weights_mismatch(layer, entry)
            if problem:
                if skip_mismatch:
                    continue
                raise ValueError(f"Unable to load weights from {path}: {problem}")
            plan.extend(zip(layer.weights, entry["members"]))
    else:
        if len(saved_layers) != len(layers):
            raise ValueError(f"Unable to load weights from {path}: You are trying to load a "
                             f"weight file containing {len(saved_layers)} layers into a "
                             f"model with {len(layers)} layers.")
        for index, (layer, entry) in enumerate(zip(layers, saved_layers)):
            problem = _weights_mismatch(layer, entry)
            if problem:
                raise ValueError(f"Unable to load weights from {path}: layer #{index} "
                                 f"(named \"{layer.name}\" in the current model) was found "
                                 f"to correspond to layer {entry['name']} in the save "
                                 f"file, but {problem}")
            plan.extend(zip(layer.weights, entry["members"]))
    return plan


def _weights_mismatch(layer: Layer, entry: Dict[str, Any]) -> Optional[str]:
    variables = layer.weights
    members = entry["members"]
    if len(members) != len(variables):
        return (f"layer {layer.name} expects {len(variables)} weights, but the saved layer "
                f"{entry['name']} has {len(members)}")
    for variable, member in zip(variables, members):
        if member.shape != variable.numpy().shape:
            return (f"weight {variable.name} has shape {variable.numpy().shape} but the saved "
                    f"weight of layer {entry['name']} has shape {member.shape}")
    return None


def _atomic_savez(path: str, arrays: Dict[str, np.ndarray]) -> None:
    try:
        with atomic_write(path) as handle:
            np.savez(handle, **arrays)
    except OSError as exc:
        # A failed write (a full disk, say) names no file: name the user's.
        if exc.errno is None or exc.filename is not None:
            raise
        raise type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), path) from None


# ---------------------------------------------------------------------------
# Reading: the zip directory and each .npy header are checked before any
# array's data is read, so a small file cannot make us allocate much.

_NPY_MAGIC = b"\x93NUMPY"
_MAX_NPY_HEADER = 10000          # numpy's own bound (np.load's max_header_size)
_MAX_META_BYTES = 64 << 20       # the metadata of 100,000 weights takes some 60 MB
# np.savez stores, np.savez_compressed deflates; zipfile decompresses bzip2 and
# LZMA without bounding a chunk's output, so those are refused.
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


class _Member(NamedTuple):
    """One ``.npy`` member as its headers describe it (nothing of its data read)."""
    info: zipfile.ZipInfo
    shape: Tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    header_size: int  # bytes before the data


@contextlib.contextmanager
def _bad_file(path: str) -> Iterator[None]:
    """Any failure to parse an untrusted file: a ValueError naming it."""
    try:
        yield
    except Exception as exc:
        raise ValueError(f"Unable to load weights from {path}: the file is corrupt or not a "
                         f"fastconv weights file ({type(exc).__name__}: {exc})") from exc


def _read_layout(archive: zipfile.ZipFile) -> List[Dict[str, Any]]:
    """Every saved layer, ``{"name", "members"}``, its arrays' headers checked
    against the metadata and the zip directory."""
    meta_name = _META_KEY + ".npy"
    if meta_name not in archive.namelist():
        raise ValueError("it has no fastconv metadata (not written by save_weights)")
    meta_member = _npy_member(archive, meta_name)
    if meta_member.dtype.kind != "U" or meta_member.shape != () or \
            meta_member.dtype.itemsize > _MAX_META_BYTES:
        raise ValueError(f"its metadata is a {meta_member.dtype} array of shape "
                         f"{meta_member.shape}, not a JSON string")
    meta = json.loads(str(_read_data(archive, meta_member)[()]))
    found = meta.get("format") if isinstance(meta, dict) else meta
    if found != WEIGHTS_FORMAT:
        raise ValueError(f"unknown format {found!r}, expected {WEIGHTS_FORMAT!r}")
    if not isinstance(meta.get("layers"), list):
        raise ValueError("its metadata has no list of layers")
    layers = []
    for layer_meta in meta["layers"]:
        if not (isinstance(layer_meta, dict) and isinstance(layer_meta.get("name"), str)
                and isinstance(layer_meta.get("weights"), list)):
            raise ValueError(f"malformed layer entry in the metadata: {str(layer_meta)[:100]}")
        members = []
        for weight_meta in layer_meta["weights"]:
            if not (isinstance(weight_meta, dict) and isinstance(weight_meta.get("key"), str)
                    and _is_shape(weight_meta.get("shape"))
                    and isinstance(weight_meta.get("dtype"), str)):
                raise ValueError(f"malformed weight entry in the metadata: "
                                 f"{str(weight_meta)[:100]}")
            key, shape = weight_meta["key"], tuple(weight_meta["shape"])
            member = _npy_member(archive, key + ".npy")
            if member.shape != shape or member.dtype.name != weight_meta["dtype"] or \
                    member.dtype.kind != "f":
                raise ValueError(f"array {key} has shape {member.shape} and dtype "
                                 f"{member.dtype}, the metadata says {shape} "
                                 f"{weight_meta['dtype']}")
            members.append(member)
        layers.append({"name": layer_meta["name"], "members": members})
    return layers


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)


def _npy_member(archive: zipfile.ZipFile, name: str) -> _Member:
    """The header of the ``.npy`` member ``name``, checked against the
    member's declared uncompressed size; only the header is read."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"it has no array {name}") from None
    if info.compress_type not in _COMPRESSIONS:
        raise ValueError(f"{name} uses zip compression method {info.compress_type}; only "
                         f"stored and deflated members are read")
    with archive.open(info) as stream:
        prefix = _read_exact(stream, len(_NPY_MAGIC) + 2, name)
        if prefix[:len(_NPY_MAGIC)] != _NPY_MAGIC:
            raise ValueError(f"{name} is not a .npy array")
        version = (prefix[-2], prefix[-1])
        if version == (1, 0):
            length_size, parse = 2, np.lib.format.read_array_header_1_0
        elif version == (2, 0):
            length_size, parse = 4, np.lib.format.read_array_header_2_0
        else:
            raise ValueError(f"{name} has .npy format version {version[0]}.{version[1]}")
        length_field = _read_exact(stream, length_size, name)
        length = int.from_bytes(length_field, "little")
        if length > _MAX_NPY_HEADER:
            raise ValueError(f"{name} has a {length}-byte .npy header, more than "
                             f"{_MAX_NPY_HEADER}")
        header = _read_exact(stream, length, name)
    shape, fortran_order, dtype = parse(io.BytesIO(length_field + header))
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects, which are never unpickled")
    if any(n < 0 for n in shape):
        raise ValueError(f"{name} has the negative shape {shape}")
    header_size = len(prefix) + length_size + length
    expected = header_size + math.prod(shape) * dtype.itemsize
    if info.file_size != expected:
        raise ValueError(f"{name} declares {info.file_size} bytes, but its header "
                         f"({tuple(shape)} {dtype}) makes {expected}")
    return _Member(info, tuple(shape), dtype, bool(fortran_order), header_size)


def _read_data(archive: zipfile.ZipFile, member: _Member) -> np.ndarray:
    """The array of a checked member (the CRC is verified on the last byte)."""
    name = member.info.filename
    with archive.open(member.info) as stream:
        _read_exact(stream, member.header_size, name)
        data = _read_exact(stream, member.info.file_size - member.header_size, name)
    array = np.frombuffer(data, dtype=member.dtype)
    if member.fortran_order:
        return array.reshape(member.shape[::-1]).transpose()
    return array.reshape(member.shape)


def _read_exact(stream: BinaryIO, size: int, name: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"{name} ends after {len(data)} of {size} bytes")
    return data
