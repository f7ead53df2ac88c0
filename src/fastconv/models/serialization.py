"""Model architectures as configs: ``get_config``/``from_config``, ``to_json``,
``model_from_json`` and ``clone_model``.

A functional model's config lists its layers, each with the layer calls
(``inbound_nodes``) that wire the graph, then the graph's inputs and outputs
as ``[layer name, node index, tensor index]``. The two Keras dialects
(:mod:`fastconv.models.config_dialects` has the layer arguments) write the
calls differently:

* **tf.keras 2.4** (``get_config``, ``to_json``, ``.h5`` files): a call is a
  list ``[[layer, node, tensor, kwargs], ...]`` of its input tensors, and a
  nested model's first call is node 1 (its node 0 is the model's own
  input-to-output node, which 2.4 never saves);
* **Keras 3** (``.keras`` files): a call is ``{'args': [...], 'kwargs': {...}}``
  whose tensors are ``{'class_name': '__keras_tensor__', 'config': {...,
  'keras_history': [layer, node, tensor]}}``, nested models' calls counting
  from 0, and every object carries ``module`` and ``registered_name``.

:func:`model_config` writes either; the readers take both, in any container,
telling them apart by those shapes. Subclassed models follow Keras: their
``get_config`` raises ``NotImplementedError`` unless the subclass defines it,
and ``from_config`` then calls ``cls(**config)``.
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..layers.base import Layer, Node
from ..layers.core import Lambda
from ..layers.input_layer import Input, InputLayer
from ..layers.keras_tensor import KerasTensor, shape_tuple
from . import config_dialects as dialects
from .config_dialects import KERAS2, KERAS3
from .functional import Functional
from .graph import as_list
from .model import Model
from .sequential import Sequential

__all__ = ["model_config", "serialize_model", "model_from_config", "model_class_from_config",
           "model_from_json", "to_json", "clone_model", "deserialize_layer",
           "KERAS_2_VERSION"]

# What the Keras 2 dialect's files and JSON say they follow.
KERAS_2_VERSION = "2.4.0"
_FUNCTIONAL_KEYS = {"name", "trainable", "layers", "input_layers", "output_layers"}
_SEQUENTIAL_KEYS = {"name", "trainable", "layers", "build_input_shape", "dtype"}
_CALL_KWARGS = {"training", "mask"}


# ----------------------------------------------------------------------------
# Writing

def _is_graph_model(layer: Layer) -> bool:
    return isinstance(layer, Model) and layer._is_graph_network and layer._graph is not None


def _class_name(layer: Layer) -> str:
    return type(layer).__name__


def _keras3_entry(layer: Layer, config: Dict[str, Any]) -> Dict[str, Any]:
    if isinstance(layer, Sequential):
        module, registered = "keras", None
    elif isinstance(layer, Functional):
        module, registered = "keras.src.models.functional", "Functional"
    elif type(layer).__module__.startswith("fastconv."):
        module, registered = "keras.layers", None
    else:  # the user's class: Keras 3 finds it in custom_objects
        module, registered = type(layer).__module__, type(layer).__name__
    return {"module": module, "class_name": _class_name(layer), "config": config,
            "registered_name": registered}


def serialize_layer(layer: Layer, dialect: str = KERAS2) -> Dict[str, Any]:
    """``{'class_name', 'config'}`` of a layer (or a nested model) in ``dialect``."""
    if isinstance(layer, Model):
        return serialize_model(layer, dialect)
    config = layer.get_config()
    dialects.check_json_value(config, f"The config of layer {layer.name}")
    if dialect == KERAS3:
        return _keras3_entry(layer, dialects.to_keras3_config(layer, config))
    return {"class_name": _class_name(layer), "config": config}


def serialize_model(model: Model, dialect: str = KERAS2) -> Dict[str, Any]:
    """``{'class_name', 'config'}`` of a model in ``dialect`` (a subclassed
    model's own ``get_config``, which Keras requires it to define)."""
    graph_model = isinstance(model, Sequential) or model._is_graph_network
    config = model_config(model, dialect) if graph_model else model.get_config()
    if dialect == KERAS3:
        return _keras3_entry(model, config)
    return {"class_name": _class_name(model), "config": config}


def model_config(model: Model, dialect: str = KERAS2) -> Dict[str, Any]:
    """What ``model.get_config()`` returns (tf.keras 2.4's keys), or Keras 3's."""
    if isinstance(model, Sequential):
        return _sequential_config(model, dialect)
    if not model._is_graph_network:
        raise NotImplementedError(
            f"Model {model.name} is a subclassed model: as in Keras, its architecture "
            "cannot be serialized unless the subclass implements get_config() (and takes "
            "those keys in its constructor). Save its weights with save_weights(), or "
            "build it with the functional API.")
    return _functional_config(model, dialect)


def _node_indices(model: Model, dialect: str) -> Dict[int, int]:
    """``{id(node): index in the config}`` for every node of the model's graph."""
    graph = model._graph
    own = {id(node) for nodes in graph.nodes_by_depth.values() for node in nodes}
    indices: Dict[int, int] = {}
    for layer in graph.layers:
        # tf.keras 2.4 counts a nested model's own input-to-output node first.
        position = 1 if dialect == KERAS2 and _is_graph_model(layer) else 0
        for node in layer._inbound_nodes:
            if id(node) in own:
                indices[id(node)] = 0 if node.is_input else position
                position += not node.is_input
    return indices


def _history(tensor: KerasTensor, indices: Dict[int, int]) -> List[Any]:
    return [tensor.node.layer.name, indices[id(tensor.node)], 0]


def _node_data(node: Node, indices: Dict[int, int], dialect: str) -> Any:
    kwargs = {} if node.training is None else {"training": node.training}
    if dialect == KERAS2:
        return [_history(t, indices) + [kwargs] for t in node.inbound]
    tensors = [{"class_name": "__keras_tensor__",
                "config": {"shape": list(shape_tuple(t.shape)), "dtype": t.dtype.name,
                           "keras_history": _history(t, indices)}} for t in node.inbound]
    argument = tensors if node.layer._takes_list else tensors[0]
    return {"args": [argument], "kwargs": kwargs}


def _functional_config(model: Model, dialect: str) -> Dict[str, Any]:
    graph = model._graph
    indices = _node_indices(model, dialect)
    layers = []
    for layer in graph.layers:
        entry = serialize_layer(layer, dialect)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [
            _node_data(node, indices, dialect) for node in layer._inbound_nodes
            if id(node) in indices and not node.is_input]
        layers.append(entry)
    inputs = [_history(t, indices) for t in model._inputs]
    outputs = [_history(t, indices) for t in model._outputs]
    if dialect == KERAS3:
        return {"name": model.name, "trainable": model.trainable, "layers": layers,
                "input_layers": inputs if model._inputs_as_list else inputs[0],
                "output_layers": outputs if model._outputs_as_list else outputs[0]}
    return {"name": model.name, "layers": layers, "input_layers": inputs,
            "output_layers": outputs}


def _sequential_config(model: Sequential, dialect: str) -> Dict[str, Any]:
    layers = []
    input_tensor = model._input_tensor
    if input_tensor is not None:
        layers.append(serialize_layer(input_tensor.node.layer, dialect))
    layers.extend(serialize_layer(layer, dialect) for layer in model.layers)
    config: Dict[str, Any] = {"name": model.name, "layers": layers}
    if dialect == KERAS3:
        config = {"name": model.name, "trainable": model.trainable, "layers": layers}
        if input_tensor is not None:
            config["build_input_shape"] = list(shape_tuple(input_tensor.shape))
    return config


def to_json(model: Model, **kwargs: Any) -> str:
    """``model.to_json()``: tf.keras 2.4's ``{'class_name', 'config',
    'keras_version', 'backend'}`` as JSON (``kwargs`` go to ``json.dumps``)."""
    entry = serialize_model(model, KERAS2)
    entry.update(keras_version=KERAS_2_VERSION, backend="tensorflow")
    return json.dumps(entry, default=dialects.json_default, **kwargs)


# ----------------------------------------------------------------------------
# Reading

def _takes_custom_objects(method: Any) -> bool:
    try:
        return "custom_objects" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def deserialize_layer(entry: Any, custom_objects: Optional[Mapping[str, Any]] = None,
                      safe_mode: bool = False) -> Layer:
    """The layer (or nested model) a serialized ``{'class_name', 'config'}`` describes.

    ``safe_mode``: refuse a Lambda whose function is Python bytecode
    (loading it runs whatever it holds).
    """
    if not isinstance(entry, dict):
        raise ValueError(f"A layer config must be a dict with 'class_name' and 'config', got "
                         f"{type(entry).__name__}")
    cls, builtin = dialects.resolve_layer_class(entry, custom_objects)
    if issubclass(cls, Model):
        return model_from_config(entry, custom_objects, safe_mode)
    class_name = entry["class_name"]
    config = dialects.to_fastconv_config(cls, class_name, entry.get("config"), custom_objects,
                                         builtin)
    name = config.get("name")
    if safe_mode and issubclass(cls, Lambda) and "lambda" in (
            config.get("function_type"), config.get("output_shape_type")):
        raise ValueError(
            f"Layer {name!r} is a Lambda whose function is stored as Python bytecode: "
            "loading it runs that code, and this file may not be yours. If you trust it, "
            "load it with safe_mode=False.")
    try:
        if _takes_custom_objects(cls.from_config):
            return cls.from_config(config, custom_objects=custom_objects)
        return cls.from_config(config)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"Cannot rebuild layer {name!r} ({class_name}) from its config: "
                         f"{exc}") from exc


def model_from_config(entry: Any, custom_objects: Optional[Mapping[str, Any]] = None,
                      safe_mode: bool = False) -> Any:
    """The model (or layer) of a serialized ``{'class_name', 'config'}``, in
    either dialect (Keras 2's ``Functional``/``Model``/``Sequential``,
    Keras 3's with ``module`` keys)."""
    if not isinstance(entry, dict) or "class_name" not in entry or "config" not in entry:
        raise ValueError("A model config must be a dict with 'class_name' and 'config' keys"
                         + (f", got keys {sorted(entry)}" if isinstance(entry, dict) else
                            f", got {type(entry).__name__}"))
    cls, builtin = dialects.resolve_layer_class(entry, custom_objects)
    if not issubclass(cls, Model):
        return deserialize_layer(entry, custom_objects, safe_mode)
    if builtin or cls.from_config.__func__ is Model.from_config.__func__:
        model = model_class_from_config(cls, entry["config"], custom_objects, safe_mode)
    elif _takes_custom_objects(cls.from_config):  # the user's own from_config
        model = cls.from_config(entry["config"], custom_objects=custom_objects)
    else:
        model = cls.from_config(entry["config"])
    build = entry.get("build_config")
    if not model.built and isinstance(build, dict) and build.get("input_shape"):
        model.build(tuple(build["input_shape"]))
    return model


def model_class_from_config(cls: type, config: Any,
                            custom_objects: Optional[Mapping[str, Any]] = None,
                            safe_mode: bool = False) -> Model:
    """``cls.from_config(config)`` for a model class (Keras 2.4's rule: a
    functional-shaped config rebuilds the graph, a subclass gets ``cls(**config)``)."""
    if isinstance(cls, type) and issubclass(cls, Sequential):
        return _sequential_from_config(cls, config, custom_objects, safe_mode)
    if cls is Model or issubclass(cls, Functional):
        return _functional_from_config(Functional if cls is Model else cls, config,
                                       custom_objects, safe_mode)
    if not isinstance(config, dict):
        raise ValueError(f"The config of model class {cls.__name__} must be a dict")
    try:
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"Cannot rebuild the subclassed model {cls.__name__} from its "
                         f"config: {exc}") from exc


def _check_keys(config: Mapping[str, Any], allowed: set, what: str) -> None:
    unexpected = sorted(set(config) - allowed)
    if unexpected:
        raise ValueError(f"The config of {what} has keys fastconv does not know: {unexpected}")


def _is_keras3_config(layers: Sequence[Any]) -> bool:
    for data in layers:
        if isinstance(data, dict) and ("module" in data or any(
                isinstance(node, dict) for node in data.get("inbound_nodes") or [])):
            return True
    return False


def _triple(value: Any, what: str) -> Tuple[str, int, int]:
    if not (isinstance(value, (list, tuple)) and len(value) in (3, 4)
            and isinstance(value[0], str) and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for v in value[1:3])):
        raise ValueError(f"{what}: expected [layer name, node index, tensor index], got "
                         f"{value!r}")
    if value[2] != 0:
        raise ValueError(f"{what}: tensor index {value[2]} of layer {value[0]!r}; fastconv "
                         "layers have one output")
    return value[0], value[1], value[2]


def _triples(value: Any, what: str) -> Tuple[List[Tuple[str, int, int]], bool]:
    """The ``[name, node, tensor]`` triples of ``input_layers``/``output_layers``
    (a flat triple or a list of them), and whether it was a list."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        return [_triple(value, what)], False
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{what} must be a non-empty list of [layer, node, tensor], got "
                         f"{value!r}")
    return [_triple(v, what) for v in value], True


class _Call:
    """One layer call of a config, resolved once its inputs exist."""

    def __init__(self, layer_name: str, refs: List[Tuple[str, int, int]], as_list: bool,
                 kwargs: Dict[str, Any]) -> None:
        self.layer_name = layer_name
        self.refs = refs
        self.as_list = as_list
        self.kwargs = kwargs


def _call_kwargs(kwargs: Any, where: str) -> Dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}: call arguments must be a dict, got {kwargs!r}")
    _check_keys(kwargs, _CALL_KWARGS, where + "'s call")
    if kwargs.get("mask") is not None:
        raise ValueError(f"{where}: fastconv has no masking, the call passes mask="
                         f"{kwargs['mask']!r}")
    training = kwargs.get("training")
    if training is not None and not isinstance(training, bool):
        raise ValueError(f"{where}: training must be true, false or null, got {training!r}")
    return {"training": training} if training is not None else {}


def _parse_node(layer_name: str, node: Any) -> _Call:
    where = f"Layer {layer_name!r}"
    if isinstance(node, dict):  # Keras 3
        _check_keys(node, {"args", "kwargs"}, where + "'s call")
        args = node.get("args")
        if not isinstance(args, list) or len(args) != 1:
            raise ValueError(f"{where}: fastconv layers take one (list) argument, the call "
                             f"passes {args!r}")
        argument = args[0]
        items = argument if isinstance(argument, list) else [argument]
        refs = []
        for item in items:
            if not (isinstance(item, dict) and item.get("class_name") == "__keras_tensor__"
                    and isinstance(item.get("config"), dict)):
                raise ValueError(f"{where}: the call passes {item!r}, which is not a tensor")
            refs.append(_triple(item["config"].get("keras_history"), where))
        return _Call(layer_name, refs, isinstance(argument, list),
                     _call_kwargs(node.get("kwargs"), where))
    if not isinstance(node, list) or not node:  # tf.keras 2.4
        raise ValueError(f"{where}: cannot read the layer call {node!r}")
    refs = [_triple(item, where) for item in node]
    kwargs = node[0][3] if len(node[0]) == 4 else {}
    return _Call(layer_name, refs, len(node) > 1, _call_kwargs(kwargs, where))


def _functional_from_config(cls: type, config: Any, custom_objects: Optional[Mapping[str, Any]],
                            safe_mode: bool) -> Model:
    if not isinstance(config, dict):
        raise ValueError("A functional model's config must be a dict")
    _check_keys(config, _FUNCTIONAL_KEYS, f"functional model {config.get('name')!r}")
    layers_data = config.get("layers")
    if not isinstance(layers_data, list):
        raise ValueError("A functional model's config needs a 'layers' list")
    keras3 = _is_keras3_config(layers_data)
    created: Dict[str, Layer] = {}
    calls: Dict[str, List[_Call]] = {}
    for data in layers_data:
        if not isinstance(data, dict):
            raise ValueError(f"Each entry of 'layers' must be a dict, got {data!r}")
        name = data.get("name", (data.get("config") or {}).get("name")
                        if isinstance(data.get("config"), dict) else None)
        if not isinstance(name, str) or name in created:
            raise ValueError(f"Layer entries need unique names, got {name!r}")
        entry = {k: v for k, v in data.items() if k not in ("name", "inbound_nodes")}
        layer = deserialize_layer(entry, custom_objects, safe_mode)
        if layer.name != name:
            raise ValueError(f"Layer entry {name!r} rebuilds a layer named {layer.name!r}")
        created[name] = layer
        nodes = data.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise ValueError(f"Layer {name!r}: 'inbound_nodes' must be a list")
        calls[name] = [_parse_node(name, node) for node in nodes]
    inputs, inputs_as_list = _triples(config.get("input_layers"), "input_layers")
    outputs, outputs_as_list = _triples(config.get("output_layers"), "output_layers")
    # tf.keras 2.4 numbers a nested model's calls from 1 (see the module docstring).
    offsets = {name: 0 for name in created}
    if not keras3:
        referenced: Dict[str, List[int]] = {}
        for pending in calls.values():
            for call in pending:
                for ref_name, index, _ in call.refs:
                    referenced.setdefault(ref_name, []).append(index)
        for ref_name, index, _ in inputs + outputs:
            referenced.setdefault(ref_name, []).append(index)
        for name, layer in created.items():
            if isinstance(layer, Model) and layer._is_graph_network and min(
                    referenced.get(name, [0])) >= 1:
                offsets[name] = 1
    produced: Dict[str, List[KerasTensor]] = {
        name: [layer._inbound_nodes[0].output] if isinstance(layer, InputLayer) else []
        for name, layer in created.items()}

    def tensor(ref: Tuple[str, int, int], what: str) -> Optional[KerasTensor]:
        name, index, _ = ref
        if name not in created:
            raise ValueError(f"{what} refers to layer {name!r}, which the config does not have")
        index -= offsets[name]
        outputs_so_far = produced[name]
        return outputs_so_far[index] if 0 <= index < len(outputs_so_far) else None

    while any(calls.values()):
        progress = False
        for name, pending in calls.items():
            while pending:
                call = pending[0]
                tensors = [tensor(ref, f"Layer {name!r}") for ref in call.refs]
                if any(t is None for t in tensors):
                    break
                layer = created[name]
                argument = tensors if (call.as_list or layer._takes_list) else tensors[0]
                try:
                    produced[name].append(layer(argument, **call.kwargs))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"Cannot rebuild the call of layer {name!r}: "
                                     f"{exc}") from exc
                pending.pop(0)
                progress = True
        if not progress:
            stuck = sorted(name for name, pending in calls.items() if pending)
            raise ValueError(f"Invalid functional model config: the calls of layers {stuck} "
                             "refer to layer calls that do not exist (or form a loop)")
    input_tensors = [tensor(ref, "input_layers") for ref in inputs]
    output_tensors = [tensor(ref, "output_layers") for ref in outputs]
    for ref, t in zip(inputs + outputs, input_tensors + output_tensors):
        if t is None:
            raise ValueError(f"input_layers/output_layers refer to call {ref[1]} of layer "
                             f"{ref[0]!r}, which the config does not make")
    if not keras3:
        # tf.keras 2.4 writes one input or output as a list of one, and its
        # functional models take a list of one as the tensor itself.
        inputs_as_list = inputs_as_list and len(input_tensors) > 1
        outputs_as_list = outputs_as_list and len(output_tensors) > 1
    name = config.get("name")
    model = cls(inputs=input_tensors if inputs_as_list else input_tensors[0],
                outputs=output_tensors if outputs_as_list else output_tensors[0], name=name)
    missing = sorted(set(created) - {layer.name for layer in model.layers})
    if missing:
        raise ValueError(f"Layers {missing} of the config are not connected to the outputs "
                         "of the model, which fastconv's functional models cannot hold")
    if config.get("trainable") is False:
        model.trainable = False
    return model


def _sequential_from_config(cls: type, config: Any, custom_objects: Optional[Mapping[str, Any]],
                            safe_mode: bool) -> Model:
    if isinstance(config, list):  # Keras 2.2 wrote the bare list of layers
        config = {"layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("A Sequential model's config needs a 'layers' list")
    _check_keys(config, _SEQUENTIAL_KEYS, f"Sequential model {config.get('name')!r}")
    model = cls(name=config.get("name"))
    for entry in config["layers"]:
        layer = deserialize_layer(entry, custom_objects, safe_mode)
        try:
            model.add(layer)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Cannot add layer {layer.name!r} to Sequential model "
                             f"{model.name!r}: {exc}") from exc
    shape = config.get("build_input_shape")
    if not model.built and isinstance(shape, (list, tuple)) and model.layers:
        model.build(tuple(shape))
    if config.get("trainable") is False:
        model.trainable = False
    return model


def model_from_json(json_string: str, custom_objects: Optional[Mapping[str, Any]] = None
                    ) -> Model:
    """The model ``model.to_json()`` described (tf.keras 2.4's or Keras 3's JSON).

    Lambda layers stored as bytecode are rebuilt (their code runs), as in
    tf.keras 2.4: parse only JSON you trust.
    """
    try:
        entry = json.loads(json_string)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"model_from_json: not a JSON model config ({exc})") from None
    if isinstance(entry, dict):
        entry = {k: v for k, v in entry.items() if k not in ("keras_version", "backend",
                                                              "compile_config")}
    return model_from_config(entry, custom_objects)


# ----------------------------------------------------------------------------
# clone_model

def _clone_layer(layer: Layer) -> Layer:
    return type(layer).from_config(layer.get_config())


def _new_input(tensor: KerasTensor) -> KerasTensor:
    layer = tensor.node.layer
    return Input(batch_shape=shape_tuple(tensor.shape), dtype=layer.dtype, name=layer.name)


def _given_inputs(input_tensors: Any, count: int) -> List[KerasTensor]:
    tensors, _ = as_list(input_tensors)
    if len(tensors) != count:
        raise ValueError(f"clone_model: the model has {count} input(s), input_tensors gives "
                         f"{len(tensors)}")
    for t in tensors:
        if not isinstance(t, KerasTensor) or not t.node.is_input:
            raise TypeError("clone_model: input_tensors must be tensors made by "
                            f"fastconv.layers.Input, got {t!r}")
    return tensors


def clone_model(model: Model, input_tensors: Any = None, clone_function: Any = None) -> Model:
    """A new model with the architecture of ``model`` and freshly initialized
    weights (tf.keras 2.4's ``clone_model``).

    Parameters
    ----------
    model : functional or Sequential Model
    input_tensors : KerasTensor or list, optional
        Tensors from :func:`fastconv.layers.Input` to build the clone on
        (default: new inputs like the model's).
    clone_function : callable, optional
        ``layer -> new layer``; default ``type(layer).from_config(layer.get_config())``.
        A layer called several times (shared) is cloned once.
    """
    if not isinstance(model, Model):
        raise ValueError(f"Expected `model` argument to be a `Model` instance, got {model!r}")
    clone = clone_function or _clone_layer
    if isinstance(model, Sequential):
        return _clone_sequential(model, input_tensors, clone)
    if not model._is_graph_network:
        raise ValueError("Expected `model` argument to be a functional `Model` instance, but "
                         "got a subclass model instead.")
    graph = model._graph
    new_inputs = (_given_inputs(input_tensors, len(model._inputs)) if input_tensors is not None
                  else [_new_input(t) for t in model._inputs])
    tensors = {id(old): new for old, new in zip(model._inputs, new_inputs)}
    clones: Dict[int, Layer] = {}
    for node in graph.execution:
        layer = node.layer
        if id(layer) not in clones:
            new_layer = clone(layer)
            if not isinstance(new_layer, Layer):
                raise TypeError(f"clone_function returned {new_layer!r} for layer "
                                f"{layer.name}, not a Layer")
            clones[id(layer)] = new_layer
        inputs = [tensors[id(t)] for t in node.inbound]
        tensors[id(node.output)] = clones[id(layer)](
            inputs if layer._takes_list else inputs[0], training=node.training)
    outputs = [tensors[id(t)] for t in model._outputs]
    return Functional(new_inputs if model._inputs_as_list else new_inputs[0],
                      outputs if model._outputs_as_list else outputs[0], name=model.name)


def _clone_sequential(model: Sequential, input_tensors: Any, clone: Any) -> Model:
    layers = [clone(layer) for layer in model.layers]
    for old, new in zip(model.layers, layers):
        if not isinstance(new, Layer):
            raise TypeError(f"clone_function returned {new!r} for layer {old.name}, not a "
                            "Layer")
    first: List[Any] = []
    if input_tensors is not None:
        first = _given_inputs(input_tensors, 1)
    elif model._input_tensor is not None:
        first = [_new_input(model._input_tensor)]
    return Sequential(first + layers, name=model.name)
