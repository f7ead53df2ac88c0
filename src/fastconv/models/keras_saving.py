"""Whole models in Keras' own files: ``model.save`` and ``load_model``, and
``save_weights``/``load_weights`` in Keras' HDF5 layouts.

=================  =====================================================
``m.keras``        Keras 3's zip: ``metadata.json``, ``config.json`` (the
                   architecture in Keras 3's dialect and ``compile_config``)
                   and ``model.weights.h5`` (Keras 3's layout, with
                   ``optimizer/vars``)
``m.h5``           tf.keras 2.4's HDF5: attributes ``model_config`` (the
                   2.4 dialect), ``training_config``, ``keras_version``,
                   ``backend``; groups ``model_weights`` and
                   ``optimizer_weights``
``w.h5``           ``save_weights``: tf.keras 2.4's weight layout at the root
``w.weights.h5``   ``save_weights``: Keras 3's weight layout
=================  =====================================================

The format follows the extension, or ``save_format`` (``'keras'``, ``'h5'``;
``'tf'``, TensorFlow's SavedModel, is not supported). Loading looks at the
content (a zip or an HDF5 file), so either dialect loads from either
container, and files Keras 3 writes (``.keras``, and ``.h5`` through its
legacy writer) load as well as fastconv's own. ``h5py`` is needed for all of
this: ``pip install 'fastconv[h5]'``.

Every file is written whole to a temporary file and renamed into place
(:func:`fastconv._files.atomic_write`). A file is read as untrusted input:
sizes are checked before anything is decompressed or read (the zip's
central directory, config.json at most :data:`MAX_CONFIG_BYTES`, the
weights at most what the model's weights and optimizer state can take, every
HDF5 dataset's shape and dtype against the weight it is for), and a model is
returned, or weights assigned, only once the whole file was read and fits.
``load_model(safe_mode=True)`` (the default, as in Keras 3) refuses Lambda
layers stored as bytecode, which would run code from the file.
"""
from __future__ import annotations

import datetime
import json
import os
import sys
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .._files import atomic_write
from ..layers.base import Layer, set_weight_values
from . import compile_state, h5_format, serialization
from .config_dialects import KERAS2, KERAS3, json_default, without_keras3_refused
from .h5_format import H5Reader, Plan

__all__ = ["save_model", "load_model", "save_weights", "load_weights",
           "is_keras_weights_path", "MAX_CONFIG_BYTES", "KERAS_3_VERSION"]

PathLike = Union[str, "os.PathLike[str]"]
# The Keras 3 release whose .keras layout fastconv writes.
KERAS_3_VERSION = "3.15.1"
MAX_CONFIG_BYTES = 32 * 1024 * 1024
_MAX_METADATA_BYTES = 1024 * 1024
# Room for the HDF5 structure beside the arrays themselves.
_H5_OVERHEAD_BYTES = 16 * 1024 * 1024
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"


def _path_str(filepath: PathLike) -> str:
    return os.fspath(filepath)


def _model_format(path: str, save_format: Optional[str]) -> str:
    if save_format is not None:
        fmt = str(save_format).lower()
        if fmt in ("tf", "tensorflow"):
            raise NotImplementedError(
                "fastconv cannot write TensorFlow's SavedModel format (save_format='tf'); "
                "save as '.keras' (Keras 3's format) or '.h5' (tf.keras 2.4's)")
        if fmt in ("h5", "hdf5", "keras"):
            return "h5" if fmt != "keras" else "keras"
        raise ValueError(f"Unknown save_format {save_format!r}: use 'keras' or 'h5'")
    lower = path.lower()
    if lower.endswith(".keras"):
        return "keras"
    if lower.endswith((".h5", ".hdf5")):
        return "h5"
    raise NotImplementedError(
        f"Cannot tell the format of {path!r} from its extension: Keras would write a "
        "TensorFlow SavedModel here, which fastconv cannot. Use a '.keras' or '.h5' file "
        "name (or save_format='keras' / 'h5'); save_weights() writes '.npz'")


def _sniff(path: str) -> Optional[str]:
    """'zip', 'h5' or None, from the first bytes of the file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise FileNotFoundError(f"No file or directory found at {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory (a SavedModel?); fastconv loads '.keras' "
                         "and '.h5' files") from None
    if head.startswith(_ZIP_SIGNATURE):
        return "zip"
    if head == _HDF5_SIGNATURE:
        return "h5"
    return None


def is_keras_weights_path(filepath: PathLike, save_format: Optional[str] = None) -> bool:
    """Whether ``save_weights``/``load_weights`` go to Keras' HDF5 layouts
    (``.h5``, ``.hdf5``, ``.weights.h5``, ``.keras``, ``save_format='h5'``,
    or an existing file that is HDF5) rather than fastconv's ``.npz``."""
    if save_format is not None and str(save_format).lower() in ("h5", "hdf5", "keras", "tf"):
        return True
    path = _path_str(filepath)
    if path.lower().endswith((".h5", ".hdf5", ".keras")):
        return True
    return save_format is None and os.path.isfile(path) and _sniff(path) == "h5"


def _check_target(path: str, overwrite: bool) -> None:
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")


def _json(value: Any) -> str:
    return json.dumps(value, default=json_default)


def _fastconv_version() -> str:
    # The package root is loaded before any of its modules (and is not imported
    # from here: the API does not import the front door).
    return str(getattr(sys.modules.get("fastconv"), "__version__", "unknown"))


# ----------------------------------------------------------------------------
# Saving

def _check_savable(model: Any) -> None:
    from .sequential import Sequential
    if not (isinstance(model, Sequential) or model._is_graph_network):
        raise NotImplementedError(
            f"Saving model {model.name} whole needs a functional or Sequential model; a "
            "subclassed model cannot be saved this way (as in tf.keras 2.4's HDF5 format). "
            "Save its weights with save_weights() instead.")
    model._require_built()


def save_model(model: Any, filepath: PathLike, overwrite: bool = True,
               include_optimizer: bool = True, save_format: Optional[str] = None) -> None:
    """``model.save``: see the module docstring."""
    path = _path_str(filepath)
    fmt = _model_format(path, save_format)
    _check_savable(model)
    _check_target(path, overwrite)
    if fmt == "h5":
        data = h5_format.h5_bytes(lambda handle: _write_h5_model(handle, model,
                                                                 include_optimizer),
                                  "fastconv.models.save")
        with atomic_write(path) as handle:
            handle.write(data)
        return
    _save_keras(model, path, include_optimizer)


def _write_h5_model(handle: Any, model: Any, include_optimizer: bool) -> None:
    config = without_keras3_refused(serialization.serialize_model(model, KERAS2))
    handle.attrs["model_config"] = _json(config).encode("utf8")
    handle.attrs["keras_version"] = serialization.KERAS_2_VERSION.encode("utf8")
    handle.attrs["backend"] = b"tensorflow"
    handle.attrs["fastconv_version"] = _fastconv_version().encode("utf8")
    training, _ = compile_state.training_config(model, KERAS2) if include_optimizer \
        else (None, {})
    if training is not None:
        handle.attrs["training_config"] = _json(training).encode("utf8")
    h5_format.write_keras2_weights(handle.create_group("model_weights"), model.layers,
                                   serialization.KERAS_2_VERSION)
    if training is not None:
        entries = compile_state.optimizer_weights(model, KERAS2)
        if entries:
            h5_format.write_keras2_optimizer(handle, entries)


def _save_keras(model: Any, path: str, include_optimizer: bool) -> None:
    from .sequential import Sequential
    entry = serialization.serialize_model(model, KERAS3)
    shape = (list(model._input_tensor.shape) if isinstance(model, Sequential)
             and model._input_tensor is not None else None)
    entry["build_config"] = {"input_shape": shape}   # what Keras 3 writes
    compiled, extras = compile_state.training_config(model, KERAS3) if include_optimizer \
        else (None, {})
    optimizer = None
    if compiled is not None:
        entry["compile_config"] = compiled
        optimizer = (model.optimizer.name, compile_state.optimizer_weights(model, KERAS3))
    metadata: Dict[str, Any] = {
        "keras_version": KERAS_3_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "fastconv_version": _fastconv_version()}
    if extras:
        metadata["fastconv"] = {"optimizer": extras}
    weights = h5_format.h5_bytes(
        lambda handle: h5_format.write_keras3_weights(handle, model, optimizer),
        "fastconv.models.save")
    with atomic_write(path) as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(_METADATA, _json(metadata))
            archive.writestr(_CONFIG, _json(entry))
            archive.writestr(_WEIGHTS, weights)


def save_weights(model: Any, filepath: PathLike, overwrite: bool = True,
                 save_format: Optional[str] = None) -> None:
    """``save_weights`` to ``.weights.h5`` (Keras 3's layout) or ``.h5``
    (tf.keras 2.4's), written atomically."""
    path = _path_str(filepath)
    fmt = None if save_format is None else str(save_format).lower()
    if fmt in ("tf", "tensorflow"):
        raise NotImplementedError("fastconv cannot write TensorFlow checkpoints "
                                  "(save_format='tf'); use '.h5', '.weights.h5' or '.npz'")
    if fmt == "keras" or (fmt is None and path.lower().endswith(".keras")):
        raise ValueError("save_weights() writes '.h5' (tf.keras 2.4), '.weights.h5' (Keras 3) "
                         "or '.npz' files; a '.keras' file holds a whole model: use "
                         "model.save()")
    _check_target(path, overwrite)
    if path.lower().endswith(".weights.h5") and fmt is None:
        build = (lambda handle: h5_format.write_keras3_weights(handle, model, None))
    else:
        build = (lambda handle: h5_format.write_keras2_weights(
            handle, model.layers, serialization.KERAS_2_VERSION))
    data = h5_format.h5_bytes(build, "fastconv.models.Model.save_weights")
    with atomic_write(path) as handle:
        handle.write(data)


# ----------------------------------------------------------------------------
# Loading

def _assign(model_name: str, plan: Plan) -> None:
    """Read every planned array (all checked already), then assign them all or none."""
    values = [read() for _, read in plan]
    set_weight_values(model_name, [variable for variable, _ in plan], values)


def _parse_json(text: Union[str, bytes], what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} is not valid JSON: {str(exc)[:200]}") from None


def load_model(filepath: PathLike, custom_objects: Optional[Mapping[str, Any]] = None,
               compile: bool = True, safe_mode: bool = True) -> Any:
    """A model saved with ``model.save`` (by fastconv or Keras): ``.keras`` or
    ``.h5``, either dialect.

    Parameters
    ----------
    filepath : str or os.PathLike
    custom_objects : dict, optional
        Names of the file's classes and functions that are yours (layers,
        losses, metrics, activations, initializers...) -> the objects.
    compile : bool
        Compile with the file's loss, metrics and optimizer (whose state is
        restored, so training resumes where it stopped); ``False`` returns
        the model uncompiled.
    safe_mode : bool
        Refuse Lambda layers stored as Python bytecode (Keras 3's default);
        ``False`` runs them, for files you trust.
    """
    path = _path_str(filepath)
    kind = _sniff(path)
    if kind == "zip":
        return _load_keras(path, custom_objects, compile, safe_mode)
    if kind == "h5":
        return _load_h5_model(path, custom_objects, compile, safe_mode)
    raise ValueError(f"Unable to load a model from {path}: it is neither a '.keras' (zip) nor "
                     "an '.h5' (HDF5) file, or it is truncated")


def _load_h5_model(path: str, custom_objects: Optional[Mapping[str, Any]], compile: bool,
                   safe_mode: bool) -> Any:
    what = f"the model in {path}"
    with h5_format.open_h5(path, path, "fastconv.models.load_model") as handle:
        reader = H5Reader(handle, what)
        config = _parse_json(reader.text(handle, "model_config"), f"{path}'s model_config")
        version = reader.text(handle, "keras_version", required=False) or ""
        dialect = KERAS3 if version.startswith("3") else KERAS2
        model = serialization.model_from_config(config, custom_objects, safe_mode)
        plan = h5_format.plan_keras2_weights(reader, reader.group(handle, "model_weights"),
                                             model.layers)
        training = reader.text(handle, "training_config", required=False) if compile else None
        optimizer_entries = h5_format.keras2_optimizer_entries(reader, handle) \
            if training is not None else None
        _assign(model.name, plan)
        if training is not None:
            config = _parse_json(training, f"{path}'s training_config")
            compile_state.compile_from_config(model, config, dialect, custom_objects, {})
            if optimizer_entries:
                compile_state.restore_optimizer(
                    model, optimizer_entries, dialect,
                    _config_learning_rate(config.get("optimizer_config")))
    return model


def _config_learning_rate(entry: Any) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("config"), dict):
        value = entry["config"].get("learning_rate")
        return float(value) if isinstance(value, (int, float)) else value
    return None


def _member(archive: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes:
    """A member's bytes, its declared size (the central directory's) checked
    against ``limit`` before anything is decompressed; the CRC checked on read."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"Unable to load {path}: the archive has no {name}") from None
    if info.file_size > limit:
        raise ValueError(f"Unable to load {path}: {name} declares {info.file_size} bytes, "
                         f"more than the {limit} it may hold (a decompression bomb?)")
    try:
        with archive.open(info) as stream:
            data = stream.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise ValueError(f"Unable to load {path}: cannot read {name} (corrupt?): "
                         f"{exc}") from None
    if len(data) != info.file_size:
        raise ValueError(f"Unable to load {path}: {name} holds {len(data)} bytes, its "
                         f"header says {info.file_size}")
    return data


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"Unable to load {path}: not a readable '.keras' zip (truncated or "
                         f"corrupt?): {exc}") from None


def _weights_limit(model: Any) -> int:
    """The most a weights file may hold for ``model``: its weights and up to
    four optimizer slots for each, plus the HDF5 structure."""
    total = sum(v.numpy().nbytes for v in model.weights)
    return 5 * total + _H5_OVERHEAD_BYTES


def _load_keras(path: str, custom_objects: Optional[Mapping[str, Any]], compile: bool,
                safe_mode: bool) -> Any:
    with _open_zip(path) as archive:
        if _WEIGHTS not in archive.namelist() and "model.weights.npz" in archive.namelist():
            raise ValueError(f"Unable to load {path}: its weights are in Keras 3's npz layout "
                             "(model.weights.npz); fastconv reads model.weights.h5")
        config = _parse_json(_member(archive, _CONFIG, MAX_CONFIG_BYTES, path),
                             f"{path}'s config.json")
        metadata: Any = {}
        if _METADATA in archive.namelist():
            metadata = _parse_json(_member(archive, _METADATA, _MAX_METADATA_BYTES, path),
                                   f"{path}'s metadata.json")
        if not isinstance(config, dict):
            raise ValueError(f"Unable to load {path}: config.json is not a model config")
        compiled = config.pop("compile_config", None) if compile else None
        config.pop("compile_config", None)
        model = serialization.model_from_config(config, custom_objects, safe_mode)
        weights = _member(archive, _WEIGHTS, _weights_limit(model), path)
    extras = metadata.get("fastconv", {}).get("optimizer", {}) if isinstance(metadata, dict) \
        and isinstance(metadata.get("fastconv"), dict) else {}
    with h5_format.open_h5(weights, f"{path}'s {_WEIGHTS}", "fastconv.models.load_model") \
            as handle:
        reader = H5Reader(handle, f"the weights in {path}")
        plan = h5_format.plan_keras3_weights(reader, handle,
                                             _config_paths(model, config))
        entries = h5_format.keras3_optimizer_entries(reader, handle) if compiled else None
        _assign(model.name, plan)
        if compiled:
            compile_state.compile_from_config(model, compiled, KERAS3, custom_objects,
                                              extras if isinstance(extras, dict) else {})
            if entries:
                compile_state.restore_optimizer(
                    model, entries, KERAS3, _config_learning_rate(compiled.get("optimizer")))
    return model


def _config_children(model: Any, entry: Mapping[str, Any]) -> List[Layer]:
    """The layers of a nested model in the order its config lists them, which
    is the order Keras 3 named their weight groups in."""
    from .sequential import Sequential
    config = entry.get("config") if isinstance(entry, dict) else None
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        return list(model.layers)
    ordered: List[Layer] = []
    for data in layers:
        name = data.get("name") or (data.get("config") or {}).get("name")
        if isinstance(model, Sequential) and data.get("class_name") == "InputLayer":
            continue  # Sequential.layers leaves it out, and so do the weight groups
        try:
            ordered.append(model.get_layer(name))
        except ValueError:
            return list(model.layers)
    return ordered if len(ordered) == len(model.layers) else list(model.layers)


def _config_paths(model: Any, entry: Mapping[str, Any]) -> List[Tuple[str, Layer]]:
    """``(weights path, layer)`` in the order of the file's config (Keras 3's)."""
    entries: Dict[int, Mapping[str, Any]] = {id(model): entry}

    def children(layer: Any) -> Sequence[Layer]:
        own = entries.get(id(layer), {})
        ordered = _config_children(layer, own)
        config = own.get("config") if isinstance(own, dict) else None
        for data in (config or {}).get("layers", []) if isinstance(config, dict) else []:
            name = data.get("name") or (data.get("config") or {}).get("name")
            for child in ordered:
                if child.name == name:
                    entries[id(child)] = data
        return ordered

    return list(h5_format.keras3_paths(children(model), "", children))


def load_weights(model: Any, filepath: PathLike, by_name: bool = False,
                 skip_mismatch: bool = False) -> None:
    """``load_weights`` from an HDF5 file in either Keras layout (or the weights
    of a ``.keras`` file); all checked before any weight changes."""
    path = _path_str(filepath)
    kind = _sniff(path)
    if kind == "zip":
        if by_name:
            raise ValueError("by_name=True needs tf.keras 2.4's '.h5' layout; the weight "
                             "groups of a '.keras' file are named by layer class and order")
        with _open_zip(path) as archive:
            data = _member(archive, _WEIGHTS, _weights_limit(model), path)
        source: Any = data
    elif kind == "h5":
        source = path
    else:
        raise ValueError(f"Unable to load weights from {path}: it is not an HDF5 file (or a "
                         "'.keras' zip), or it is truncated")
    with h5_format.open_h5(source, path, "fastconv.models.Model.load_weights") as handle:
        reader = H5Reader(handle, f"weights from {path}")
        if "layer_names" in handle.attrs or reader.has(handle, "model_weights"):
            group = handle if "layer_names" in handle.attrs else reader.group(handle,
                                                                              "model_weights")
            plan = h5_format.plan_keras2_weights(reader, group, model.layers, by_name,
                                                 skip_mismatch)
        elif reader.has(handle, "layers") or reader.has(handle, "vars"):
            if by_name:
                raise ValueError("by_name=True needs tf.keras 2.4's '.h5' layout; this file "
                                 "has Keras 3's, whose groups are named by layer class and "
                                 "order")
            plan = h5_format.plan_keras3_weights(reader, handle,
                                                 list(h5_format.keras3_paths(model.layers)),
                                                 skip_mismatch)
        else:
            raise reader.fail("it has neither tf.keras 2.4's weight layout (layer_names) nor "
                              "Keras 3's (layers/...)")
        _assign(model.name, plan)
