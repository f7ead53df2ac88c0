"""Weight files: ``Model.save_weights`` / ``Model.load_weights`` as ``.npz`` archives.

An archive holds one array per weight (``w0``, ``w1``, ..., layer by layer
in ``model.layers`` order, each layer's ``weights`` in order) and, under ``__fastconv_meta__``, a JSON string::

    {"format": "fastconv-weights-1", "model": <model name>,
     "layers": [{"name": <layer>, "class": <class name>,
                 "weights": [{"key": "w0", "name": "conv2d/kernel:0",
                              "shape": [3, 3, 1, 32], "dtype": "float32"}, ...]}, ...]}

listing only the layers that have weights. Writing is atomic (a temporary
file in the same directory, fsync'ed, then ``os.replace``), so a reader never
sees a partial file and an interrupted save keeps the old one. Reading
checks the format tag, every array's shape and dtype against the metadata
and (through the zip CRCs) the bytes, all before any weight is assigned.
Keras' own formats (``.h5``, ``.keras``) are not supported.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._files import atomic_write
from ..layers.base import Layer, Variable

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
    whole file reads and fits."""
    if skip_mismatch and not by_name:
        raise ValueError("When calling model.load_weights, skip_mismatch can only be set "
                         "to True when by_name is True.")
    path = os.fspath(filepath)
    saved_layers = _read_weights_file(path)
    plan: List[Tuple[Variable, np.ndarray]] = []
    layers = _with_weights(layers)
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
            plan.extend(zip(layer.weights, entry["arrays"]))
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
            plan.extend(zip(layer.weights, entry["arrays"]))
    for variable, value in plan:
        variable.assign(value)


def _with_weights(layers: Sequence[Layer]) -> List[Layer]:
    # Files list only layers that have weights, so both sides skip the others.
    return [layer for layer in layers if layer.weights]


def _weights_mismatch(layer: Layer, entry: Dict[str, Any]) -> Optional[str]:
    variables = layer.weights
    arrays = entry["arrays"]
    if len(arrays) != len(variables):
        return (f"layer {layer.name} expects {len(variables)} weights, but the saved layer "
                f"{entry['name']} has {len(arrays)}")
    for variable, array in zip(variables, arrays):
        if array.shape != variable.numpy().shape:
            return (f"weight {variable.name} has shape {variable.numpy().shape} but the saved "
                    f"weight of layer {entry['name']} has shape {array.shape}")
    return None


def _atomic_savez(path: str, arrays: Dict[str, np.ndarray]) -> None:
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def _read_weights_file(path: str) -> List[Dict[str, Any]]:
    """Every saved layer with its arrays, fully read and checked."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Unable to load weights: no file at {path}")
    try:
        # Our own handle: np.load leaks its file when the zip directory is unreadable.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            if _META_KEY not in archive.files:
                raise ValueError("it has no fastconv metadata (not written by save_weights)")
            meta = json.loads(str(archive[_META_KEY][()]))
            found = meta.get("format") if isinstance(meta, dict) else meta
            if found != WEIGHTS_FORMAT:
                raise ValueError(f"unknown format {found!r}, expected {WEIGHTS_FORMAT!r}")
            layers = []
            for layer_meta in meta["layers"]:
                arrays = []
                for weight_meta in layer_meta["weights"]:
                    # Reading each member checks its CRC, so corruption surfaces here.
                    array = archive[weight_meta["key"]]
                    if list(array.shape) != list(weight_meta["shape"]) or array.dtype.kind != "f":
                        raise ValueError(f"array {weight_meta['key']} has shape {array.shape} "
                                         f"and dtype {array.dtype}, the metadata says "
                                         f"{tuple(weight_meta['shape'])} {weight_meta['dtype']}")
                    arrays.append(array)
                layers.append({"name": str(layer_meta["name"]), "arrays": arrays})
    except Exception as exc:  # any parse failure of an untrusted file is a bad file
        raise ValueError(f"Unable to load weights from {path}: the file is corrupt or not a "
                         f"fastconv weights file ({type(exc).__name__}: {exc})") from exc
    return layers
