"""Keras' two HDF5 weight layouts, written and read with h5py, defensively.

**tf.keras 2.4** (``model.save('m.h5')``'s ``model_weights`` group, and the
root of ``save_weights('w.h5')``): attributes ``layer_names``,
``keras_version``, ``backend``; one group per layer (every layer, named
after it) with a ``weight_names`` attribute (``'conv2d/kernel:0'``...) and
a dataset per weight at that name, in ``trainable_weights +
non_trainable_weights`` order (a nested model's whole list under its name).
Attributes longer than HDF5's 64 KiB object header are split into
``layer_names0``, ``layer_names1``... as Keras splits them.

**Keras 3** (``model.weights.h5`` inside ``.keras`` files, and
``save_weights('w.weights.h5')``): ``layers/<name>/vars/<i>`` where
``<name>`` is the snake-case *class* name made unique by order
(``dense``, ``dense_1``...), ``<i>`` the variable's position (trainable
first), nested models as ``layers/<name>/layers/...``, the model's own
(empty) ``vars``, and ``optimizer/vars/<i>``.

Reading is paranoid, because a file is input: every group is reached
without following soft or external links, every dataset must be a plain
one (no external storage, no virtual dataset) and its shape and dtype must
be what the model expects (a float array of the weight's shape) **before**
any of its data is read, so neither a dataset declaring a huge shape over a
few compressed bytes nor an object, string or compound dtype is ever
materialized. A load plans every assignment first and assigns only when the
whole file fits.
"""
from __future__ import annotations

import io
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .._optional import require
from ..layers.base import Layer, Variable
from .compile_state import StateEntry
from .config_dialects import keras3_snake_case

__all__ = ["h5py_module", "H5Reader", "open_h5", "h5_bytes", "legacy_weights",
           "keras3_variables", "write_keras2_weights", "plan_keras2_weights",
           "write_keras3_weights", "plan_keras3_weights", "keras3_optimizer_entries",
           "keras2_optimizer_entries", "write_attribute_list", "Plan"]

# HDF5 keeps attributes in the object header, which holds 64 KiB.
HDF5_OBJECT_HEADER_LIMIT = 64512
# The most a name list or a JSON attribute may hold when read back.
MAX_ATTRIBUTE_BYTES = 64 * 1024 * 1024

Plan = List[Tuple[Variable, Callable[[], np.ndarray]]]


def h5py_module(feature: str) -> Any:
    """h5py, or the ImportError naming ``pip install 'fastconv[h5]'``."""
    return require("h5py", "h5", feature)


def h5_bytes(build: Callable[[Any], None], feature: str) -> bytes:
    """The bytes of an HDF5 file that ``build(file)`` fills (made in memory,
    so the caller can write them atomically)."""
    h5py = h5py_module(feature)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        build(handle)
    return buffer.getvalue()


def open_h5(source: Any, what: str, feature: str) -> Any:
    """An h5py File read from a path or bytes; ``ValueError`` for anything
    HDF5 cannot open (a truncated or corrupt file)."""
    h5py = h5py_module(feature)
    try:
        return h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what} is not a readable HDF5 file (truncated or corrupt?): "
                         f"{exc}") from None


def write_attribute_list(obj: Any, name: str, values: Sequence[str]) -> None:
    """``obj.attrs[name] = values`` (bytes), split as Keras splits long lists."""
    data = np.array([v.encode("utf8") for v in values], dtype=bytes) if values \
        else np.array([], dtype=np.float64)   # what Keras writes for an empty list
    chunks = 1
    parts = np.array_split(data, chunks) if len(data) else [data]
    while any(part.nbytes > HDF5_OBJECT_HEADER_LIMIT for part in parts):
        chunks += 1
        parts = np.array_split(data, chunks)
    if chunks == 1:
        obj.attrs[name] = data
    else:
        for index, part in enumerate(parts):
            obj.attrs[f"{name}{index}"] = part


class H5Reader:
    """Safe access to an open h5py File, naming ``what`` in every error."""

    def __init__(self, handle: Any, what: str) -> None:
        import h5py
        self.h5py = h5py
        self.handle = handle
        self.what = what

    def fail(self, message: str) -> ValueError:
        return ValueError(f"Unable to load {self.what}: {message}")

    def _child(self, parent: Any, name: str, kind: str) -> Any:
        if not name or name not in parent:
            raise self.fail(f"it has no {kind} {name!r} in {parent.name!r}")
        link = parent.get(name, getclass=True, getlink=True)
        if link is not self.h5py.HardLink:
            raise self.fail(f"{parent.name}/{name} is a {getattr(link, '__name__', link)}; "
                            "links are refused")
        return parent[name]

    def has(self, parent: Any, path: str) -> bool:
        current = parent
        for part in path.split("/"):
            if not isinstance(current, self.h5py.Group) or part not in current:
                return False
            if current.get(part, getclass=True, getlink=True) is not self.h5py.HardLink:
                return False
            current = current[part]
        return True

    def group(self, parent: Any, path: str) -> Any:
        current = parent
        for part in path.split("/"):
            current = self._child(current, part, "group")
            if not isinstance(current, self.h5py.Group):
                raise self.fail(f"{current.name} should be a group")
        return current

    def dataset(self, parent: Any, path: str) -> Any:
        if "/" in path:
            folder, path = path.rsplit("/", 1)
            parent = self.group(parent, folder)
        dataset = self._child(parent, path, "dataset")
        if not isinstance(dataset, self.h5py.Dataset):
            raise self.fail(f"{dataset.name} should be a dataset")
        if dataset.external:
            raise self.fail(f"{dataset.name} keeps its data in external files")
        if dataset.is_virtual:
            raise self.fail(f"{dataset.name} is a virtual dataset")
        return dataset

    def entry(self, parent: Any, path: str) -> StateEntry:
        """A dataset as a :class:`StateEntry`: shape and dtype now, data on ``read()``."""
        dataset = self.dataset(parent, path)
        dtype = dataset.dtype
        if dtype.fields is not None or dtype.kind not in "biuf" or dtype.itemsize > 8:
            # object, string, reference, compound, opaque...: never read
            dtype = np.dtype("O")
        return StateEntry(dataset.name, dataset.shape, dtype,
                          lambda: self.read(dataset, dataset.shape))

    def read(self, dataset: Any, shape: Tuple[int, ...]) -> np.ndarray:
        """The dataset's values, once its shape and dtype were checked."""
        if tuple(dataset.shape) != tuple(shape) or dataset.dtype.kind not in "biuf" or \
                dataset.dtype.fields is not None:
            raise self.fail(f"{dataset.name} is not a numeric array of shape {shape}")
        try:
            out = np.empty(shape, dtype=dataset.dtype)
            if out.size:
                dataset.read_direct(out)
            return out
        except (OSError, ValueError, TypeError) as exc:
            raise self.fail(f"cannot read {dataset.name} (corrupt?): {exc}") from None

    def text(self, obj: Any, name: str, required: bool = True) -> Optional[str]:
        """A string attribute (bytes or str), its size checked first."""
        if name not in obj.attrs:
            if required:
                raise self.fail(f"it has no {name!r} attribute")
            return None
        value = self._attribute(obj, name)
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value[()]
        if isinstance(value, bytes):
            try:
                return value.decode("utf8")
            except UnicodeDecodeError:
                raise self.fail(f"attribute {name!r} is not UTF-8 text") from None
        if isinstance(value, str):
            return value
        raise self.fail(f"attribute {name!r} should be text, got {type(value).__name__}")

    def _attribute(self, obj: Any, name: str) -> Any:
        attribute = obj.attrs.get_id(name)
        dtype = attribute.dtype
        if dtype.fields is not None or dtype.kind not in "SUOf":
            raise self.fail(f"attribute {name!r} of {obj.name} has dtype {dtype}")
        if dtype.kind == "O" and not self.h5py.check_string_dtype(dtype):
            raise self.fail(f"attribute {name!r} of {obj.name} holds objects")
        declared = int(np.prod(attribute.shape or (), dtype=np.float64)) * dtype.itemsize
        if declared > MAX_ATTRIBUTE_BYTES:
            raise self.fail(f"attribute {name!r} of {obj.name} is larger than "
                            f"{MAX_ATTRIBUTE_BYTES} bytes")
        try:
            return obj.attrs[name]
        except (OSError, ValueError, TypeError) as exc:
            raise self.fail(f"cannot read attribute {name!r} of {obj.name}: {exc}") from None

    def names(self, obj: Any, name: str) -> List[str]:
        """A list-of-names attribute, joined from Keras' chunks when split."""
        if name in obj.attrs:
            parts = [self._attribute(obj, name)]
        else:
            parts, index = [], 0
            while f"{name}{index}" in obj.attrs:
                parts.append(self._attribute(obj, f"{name}{index}"))
                index += 1
        values: List[str] = []
        for part in parts:
            array = np.atleast_1d(np.asarray(part))
            if array.dtype.kind == "f" and array.size == 0:
                continue   # Keras' empty list
            if array.ndim != 1:
                raise self.fail(f"attribute {name!r} of {obj.name} should be a list of names")
            for item in array:
                if isinstance(item, bytes):
                    item = item.decode("utf8", errors="strict")
                if not isinstance(item, str):
                    raise self.fail(f"attribute {name!r} of {obj.name} holds {item!r}")
                values.append(item)
        return values


# ----------------------------------------------------------------------------
# Which variables, in which order

def legacy_weights(layer: Layer) -> List[Variable]:
    """tf.keras 2.4's order in h5 files: ``trainable_weights + non_trainable_weights``."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def keras3_variables(layer: Layer) -> List[Variable]:
    """Keras 3's order of a layer's own variables: trainable ones, then the others."""
    own = list(layer._variables)
    return [v for v in own if v.trainable] + [v for v in own if not v.trainable]


def _is_model(layer: Layer) -> bool:
    from .model import Model
    return isinstance(layer, Model)


def keras3_paths(layers: Sequence[Layer], prefix: str = "",
                 children: Callable[[Any], Sequence[Layer]] = lambda model: model.layers
                 ) -> Iterator[Tuple[str, Layer]]:
    """``(path, layer)`` of every layer under ``layers/`` in Keras 3's naming,
    nested models first as themselves, then their ``children`` (their layers)."""
    used: Dict[str, int] = {}
    for layer in layers:
        base = keras3_snake_case(type(layer).__name__)
        if base in used:
            used[base] += 1
            name = f"{base}_{used[base]}"
        else:
            used[base] = 0
            name = base
        path = f"{prefix}layers/{name}"
        yield path, layer
        if _is_model(layer):
            yield from keras3_paths(children(layer), path + "/", children)


# ----------------------------------------------------------------------------
# tf.keras 2.4's layout

def write_keras2_weights(group: Any, layers: Sequence[Layer], keras_version: str) -> None:
    """``save_weights_to_hdf5_group`` of tf.keras 2.4: ``layers`` into ``group``."""
    write_attribute_list(group, "layer_names", [layer.name for layer in layers])
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = keras_version.encode("utf8")
    for layer in layers:
        layer_group = group.create_group(layer.name)
        weights = legacy_weights(layer)
        write_attribute_list(layer_group, "weight_names", [w.name for w in weights])
        for weight in weights:
            try:
                layer_group.create_dataset(weight.name, data=weight.numpy())
            except ValueError as exc:
                raise ValueError(f"Cannot save weight {weight.name} of layer {layer.name}: "
                                 f"{exc} (two weights of one model share that name)") from None


def _file_layers(reader: H5Reader, group: Any) -> List[Tuple[str, Any, List[str]]]:
    """``(layer name, group, weight names)`` of the layers that have weights."""
    found = []
    for name in reader.names(group, "layer_names"):
        layer_group = reader.group(group, name)
        weight_names = reader.names(layer_group, "weight_names")
        if weight_names:
            found.append((name, layer_group, weight_names))
    if reader.has(group, "top_level_model_weights"):
        top = reader.group(group, "top_level_model_weights")
        if reader.names(top, "weight_names"):
            raise reader.fail("it has top-level model weights, which fastconv models "
                              "never have")
    return found


def _layer_plan(reader: H5Reader, layer: Layer, saved: Tuple[str, Any, List[str]],
                index: int) -> Tuple[Optional[str], Plan]:
    """``(problem or None, plan)`` for one layer against one saved layer."""
    name, layer_group, weight_names = saved
    variables = legacy_weights(layer)
    if len(weight_names) != len(variables):
        return (f"Weight count mismatch for layer #{index} (named {layer.name} in the current "
                f"model, {name} in the save file). Layer expects {len(variables)} weight(s). "
                f"Received {len(weight_names)} saved weight(s)"), []
    plan: Plan = []
    for variable, weight_name in zip(variables, weight_names):
        entry = reader.entry(layer_group, weight_name)
        expected = variable.numpy().shape
        if entry.dtype.kind != "f":
            raise reader.fail(f"weight {entry.name} has dtype {entry.dtype}, not floats")
        if entry.shape != expected:
            return (f"Shape mismatch in layer #{index} (named {layer.name}) for weight "
                    f"{variable.name}. Weight expects shape {expected}. Received saved weight "
                    f"with shape {entry.shape}"), []
        plan.append((variable, entry.read))
    return None, plan


def plan_keras2_weights(reader: H5Reader, group: Any, layers: Sequence[Layer],
                        by_name: bool = False, skip_mismatch: bool = False) -> Plan:
    """Every ``(variable, read)`` a tf.keras 2.4 layout gives ``layers``,
    matched in order (Keras' topological loading) or by name; raises
    ``ValueError`` (Keras' messages) before anything is read."""
    if skip_mismatch and not by_name:
        raise ValueError("When calling model.load_weights, skip_mismatch can only be set to "
                         "True when by_name is True.")
    saved = _file_layers(reader, group)
    plan: Plan = []
    if by_name:
        by_layer = {entry[0]: entry for entry in saved}
        for index, layer in enumerate(layers):
            if layer.name not in by_layer or not legacy_weights(layer):
                continue
            problem, layer_plan = _layer_plan(reader, layer, by_layer[layer.name], index)
            if problem and skip_mismatch:
                warnings.warn(f"Skipping loading of weights: {problem}", UserWarning,
                              stacklevel=4)
                continue
            if problem:
                raise reader.fail(problem)
            plan.extend(layer_plan)
        return plan
    with_weights = [layer for layer in layers if legacy_weights(layer)]
    if len(saved) != len(with_weights):
        raise reader.fail(f"You are trying to load a weight file containing {len(saved)} "
                          f"layers into a model with {len(with_weights)} layers.")
    for index, (layer, entry) in enumerate(zip(with_weights, saved)):
        problem, layer_plan = _layer_plan(reader, layer, entry, index)
        if problem:
            raise reader.fail(problem)
        plan.extend(layer_plan)
    return plan


def keras2_optimizer_entries(reader: H5Reader, handle: Any) -> Optional[List[StateEntry]]:
    """The ``optimizer_weights`` of a tf.keras 2.4 file, in order (None if absent)."""
    if not reader.has(handle, "optimizer_weights"):
        return None
    group = reader.group(handle, "optimizer_weights")
    return [reader.entry(group, name) for name in reader.names(group, "weight_names")]


def write_keras2_optimizer(handle: Any, entries: Sequence[Tuple[str, np.ndarray]]) -> None:
    group = handle.create_group("optimizer_weights")
    write_attribute_list(group, "weight_names", [name for name, _ in entries])
    for name, value in entries:
        group.create_dataset(name, data=value)


# ----------------------------------------------------------------------------
# Keras 3's layout

def write_keras3_weights(handle: Any, model: Any,
                         optimizer: Optional[Tuple[str, Sequence[Tuple[str, np.ndarray]]]]
                         ) -> None:
    """``model``'s variables (and ``(name, entries)`` of its optimizer) as Keras 3 saves them."""
    handle.create_group("layers")
    handle.create_group("vars").attrs["name"] = model.name
    for path, layer in keras3_paths(model.layers):
        group = handle.require_group(path)
        variables = group.create_group("vars")
        variables.attrs["name"] = layer.name
        if _is_model(layer):
            continue
        for index, variable in enumerate(keras3_variables(layer)):
            variables.create_dataset(str(index), data=variable.numpy())
    if optimizer is not None:
        group = handle.create_group("optimizer").create_group("vars")
        group.attrs["name"] = optimizer[0]
        for name, value in optimizer[1]:
            group.create_dataset(name, data=value)


def _numbered(reader: H5Reader, group: Any, what: str) -> List[str]:
    keys = list(group.keys())
    if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
        raise reader.fail(f"{what} should hold datasets named 0..{len(keys) - 1}, got "
                          f"{sorted(keys)[:10]}")
    return [str(i) for i in range(len(keys))]


def _keras3_layer_plan(reader: H5Reader, handle: Any, path: str, layer: Layer
                       ) -> Tuple[Optional[str], Plan]:
    variables = keras3_variables(layer)
    if not reader.has(handle, f"{path}/vars"):
        if not variables:
            return None, []
        return (f"Layer '{layer.name}' expected {len(variables)} variables, but the file has "
                f"no {path}/vars"), []
    group = reader.group(handle, f"{path}/vars")
    keys = _numbered(reader, group, f"{path}/vars")
    if len(keys) != len(variables):
        return (f"Layer '{layer.name}' expected {len(variables)} variables, but received "
                f"{len(keys)} variables during loading"), []
    plan: Plan = []
    for key, variable in zip(keys, variables):
        entry = reader.entry(group, key)
        if entry.dtype.kind != "f":
            raise reader.fail(f"{entry.name} has dtype {entry.dtype}, not floats")
        if entry.shape != variable.numpy().shape:
            return (f"The shape of the target variable {variable.name} "
                    f"{variable.numpy().shape} and the shape of the saved {entry.name} "
                    f"{entry.shape} do not match"), []
        plan.append((variable, entry.read))
    return None, plan


def plan_keras3_weights(reader: H5Reader, handle: Any, paths: Sequence[Tuple[str, Layer]],
                        skip_mismatch: bool = False) -> Plan:
    """Every ``(variable, read)`` Keras 3's layout gives the layers at
    ``paths``; raises ``ValueError`` (Keras' messages) before reading anything."""
    plan: Plan = []
    for path, layer in paths:
        if _is_model(layer):
            continue
        problem, layer_plan = _keras3_layer_plan(reader, handle, path, layer)
        if problem is None:
            plan.extend(layer_plan)
        elif skip_mismatch:
            warnings.warn(f"Skipping loading of weights: {problem}", UserWarning, stacklevel=4)
        else:
            raise reader.fail(problem)
    return plan


def keras3_optimizer_entries(reader: H5Reader, handle: Any) -> Optional[List[StateEntry]]:
    """``optimizer/vars/<i>`` in order (None if the file has no optimizer)."""
    if not reader.has(handle, "optimizer/vars"):
        return None
    group = reader.group(handle, "optimizer/vars")
    return [reader.entry(group, key) for key in _numbered(reader, group, "optimizer/vars")]
