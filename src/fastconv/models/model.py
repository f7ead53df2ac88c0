""":class:`Model`, the base of every model, and the subclassed models built on it.

Three kinds of model share this class, as in tf.keras 2.4 (``engine/training.py``):

* **functional**: ``Model(inputs, outputs)`` returns a
  :class:`~fastconv.models.functional.Functional` (``Model.__new__`` swaps the
  class, as Keras does, so a summary row reads ``model (Functional)``);
* **Sequential** (:mod:`fastconv.models.sequential`), a Functional whose
  graph is the chain of its layers;
* **subclassed**: ``class Net(Model)`` makes its layers in ``__init__`` and
  composes them in ``call(self, inputs, training=None)``.

Every model is a :class:`~fastconv.layers.Layer`: called on a KerasTensor it
becomes one node of another model's graph, its weights become that model's
weights and a run goes forward and back through its own graph (the
``_forward_node`` / ``_backward_node`` hooks below); ``trainable = False`` on
it freezes everything inside.

**Subclassed models are traced.** fastconv has no automatic
differentiation, so ``call`` cannot simply run on arrays. When the input
shape becomes known (``build(input_shape)``, the first call on data, ``fit``
or ``predict``, or a call on a KerasTensor), ``call`` runs once on symbolic
inputs of that shape (batch free), and the layer calls it makes are recorded
into the same graph the functional API builds; that graph then runs forward
and backward. ``call`` is traced once for ``training=False`` and once, at
the first training step, for ``training=True``, so Python branches on
``training`` (``if training: x = self.dropout(x)``) work. What can be traced:
layer calls (fastconv's layers, nested models, and custom ``Layer``
subclasses, whose ``forward``/``backward`` may use :mod:`fastconv.ops` and
NumPy), Python code on shapes (``x.shape[-1]``), loops and branches that do
not depend on tensor values. What cannot: NumPy or ``fastconv.ops`` applied
to the symbolic tensors, and ``if``/``while`` on tensor values: they raise a
``TypeError`` saying so. Later data must have the traced shape (build with
``None`` sizes, e.g. ``build((None, None, None, 3))``, for varying sizes).
Layers are tracked as Keras tracks them: :attr:`Model.layers` lists the
layers assigned as attributes (directly, or in lists, tuples and dicts), in
assignment order; a layer with weights that ``call`` uses without it being
an attribute is refused (its weights would never be trained).
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from .. import regularizers as regularizers_module
from .. import summary as summary_module
from .._memory import with_cached_allocations
from ..layers.base import ArrayOrList, InputSpec, Layer, Node, Variable, as_input_array, \
    assert_input_compatibility, eager_result, regularization_penalties, set_weight_values
from ..layers.input_layer import Input
from ..layers.keras_tensor import KerasTensor, shape_tuple
from . import inference, saving
from .graph import Graph, Tape, as_list
from .training import TrainingMixin

__all__ = ["Model"]

_MISSING_SUPER_INIT = ("It looks like you are subclassing `Model` and you forgot to call "
                       "`super(YourClass, self).__init__()`. Always start with this line.")


def _describe_shape(value: Any) -> str:
    try:
        return str(np.shape(value))
    except ValueError:  # ragged nested lists
        return f"<ragged {type(value).__name__}>"


def _holds_layers(value: Any) -> bool:
    if isinstance(value, Layer):
        return True
    if isinstance(value, dict):
        value = list(value.values())
    return isinstance(value, (list, tuple)) and any(_holds_layers(v) for v in value)


def _layers_in(value: Any) -> Iterator[Layer]:
    """The layers in an attribute's value: itself, or those in its lists, tuples, dicts."""
    if isinstance(value, Layer):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _layers_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _layers_in(item)


def _is_functional_call(args: Sequence[Any], kwargs: Dict[str, Any]) -> bool:
    # Keras' is_functional_model_init_params.
    return (len(args) >= 2 or (len(args) == 1 and "outputs" in kwargs)
            or ("inputs" in kwargs and "outputs" in kwargs))


def _accepts_training(function: Callable[..., Any]) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == "training" or p.kind is inspect.Parameter.VAR_KEYWORD
               for p in parameters)


class Model(TrainingMixin, Layer):
    """A model: layers wired into a graph, with training (tf.keras 2.4 semantics).

    ``Model(inputs, outputs, name=None, trainable=True)`` builds a functional
    model (see :mod:`fastconv.models`); ``class Net(Model)`` with layers made
    in ``__init__`` (after ``super().__init__()``) and a ``call(self, inputs,
    training=None)`` builds a subclassed one (see the module docstring for
    how it is traced and what ``call`` may do).

    Parameters (subclassed)
    -----------------------
    name : str, optional
        Default: the snake-case class name (``Net`` -> ``net``, ``net_1``...).
    trainable : bool
    dtype : optional
        The dtype of the traced inputs, ``'float32'`` by default.
    """

    # Functional and Sequential run the graph they were built with; a
    # subclassed model runs the traces of its call.
    _is_graph_network = False

    def __new__(cls, *args: Any, **kwargs: Any) -> "Model":
        if cls is Model and _is_functional_call(args, kwargs):
            from .functional import Functional  # functional.py builds on this module
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or "inputs" in kwargs or "outputs" in kwargs:
            raise TypeError(
                "Model(inputs, outputs) needs both `inputs` and `outputs` (the functional API); "
                "a subclass of Model calls super().__init__() with at most `name`, "
                "`trainable` and `dtype` (fastconv does not take inputs/outputs from a "
                "subclass's __init__)")
        name = kwargs.pop("name", None)
        trainable = kwargs.pop("trainable", True)
        dtype = kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"Keyword argument not understood: {next(iter(kwargs))}")
        self._init_model(name, trainable, dtype)

    def _init_model(self, name: Optional[str], trainable: bool, dtype: Any = None) -> None:
        """What every model starts from (Functional and Sequential call it too)."""
        object.__setattr__(self, "_base_model_initialized", True)
        Layer.__init__(self, trainable=trainable, name=name, dtype=dtype)
        self._graph: Optional[Graph] = None
        self._inputs: List[KerasTensor] = []
        self._outputs: List[KerasTensor] = []
        self._inputs_as_list = False
        self._outputs_as_list = False
        self._input_specs: List[InputSpec] = []
        self._input_dtypes: List[Any] = []
        # Subclassed: the graph traced for each value of `training`, and every
        # node those traces added to the layers (summaries do not show them).
        self._traces: Dict[bool, Graph] = {}
        self._traced_node_ids: set = set()
        # The last recording forward pass, consumed by backward().
        self._tape: Optional[Tape] = None
        self._init_training()

    def __setattr__(self, name: str, value: Any) -> None:
        if "_base_model_initialized" not in self.__dict__ and _holds_layers(value):
            raise RuntimeError(_MISSING_SUPER_INIT)
        super().__setattr__(name, value)

    # A copy (pickle, cloudpickle, deepcopy) has new objects, so new ids: the
    # ids of traced nodes travel as the nodes, and the tape of an unfinished
    # step is not copied.
    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        traced = state.pop("_traced_node_ids")
        state["_traced_nodes"] = [node for graph in self._traces.values()
                                  for nodes in graph.nodes_by_depth.values() for node in nodes
                                  if id(node) in traced]
        state["_tape"] = None
        state.pop("_inference_plans", None)   # closures over this model's layers: remade
        state.pop("_inference_shared", None)
        state.pop("_checked_input", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        traced = state.pop("_traced_nodes")
        self.__dict__.update(state)
        self.__dict__["_traced_node_ids"] = {id(node) for node in traced}

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails.
        if not name.startswith("__") and "_base_model_initialized" not in self.__dict__:
            raise RuntimeError(_MISSING_SUPER_INIT)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _set_graph(self, graph: Optional[Graph], inputs_as_list: bool = False,
                   outputs_as_list: bool = False) -> None:
        """Make ``graph`` the model's (``None``: unbuilt again)."""
        self._graph = graph
        self.built = graph is not None
        self._tape = None
        if graph is None:
            self._inputs, self._outputs, self._input_specs, self._input_dtypes = [], [], [], []
            return
        self._inputs, self._outputs = list(graph.inputs), list(graph.outputs)
        self._inputs_as_list, self._outputs_as_list = inputs_as_list, outputs_as_list
        # What every call checks its data against.
        self._input_specs = [InputSpec(shape=shape_tuple(t.shape)) for t in self._inputs]
        self._input_dtypes = [t.dtype.as_numpy_dtype for t in self._inputs]
        self._takes_list = len(self._inputs) > 1
        self._batch_input_shape = shape_tuple(self._inputs[0].shape) \
            if len(self._inputs) == 1 else None

    # ------------------------------------------------------------------
    # Subclassed models: call, build, tracing

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        """What a subclass defines: the outputs computed from ``inputs`` with its layers."""
        raise NotImplementedError("When subclassing the `Model` class, you should implement a "
                                  "`call` method.")

    def build(self, input_shape: Any) -> None:
        """Trace :meth:`call` for ``input_shape`` (with the batch dim, e.g.
        ``(None, 28, 28, 1)``; a list of shapes for several inputs)."""
        if self.built:
            return
        several = isinstance(input_shape, (list, tuple)) and bool(input_shape) and all(
            isinstance(s, (list, tuple)) for s in input_shape)
        shapes = [tuple(s) for s in input_shape] if several else [tuple(input_shape)]
        self._build_for_shapes(shapes, several)

    def _build_for_shapes(self, shapes: List[Sequence[Optional[int]]], as_list: bool) -> None:
        """Build for inputs of these shapes (subclassed: trace for inference)."""
        several = len(shapes) > 1
        self._inputs = [Input(batch_shape=tuple(shape), dtype=self.dtype,
                              name=f"{self.name}_input" + (f"_{i + 1}" if several else ""))
                        for i, shape in enumerate(shapes)]
        self._inputs_as_list = as_list
        self._traces = {}
        graph, outputs_as_list = self._trace(False)
        self._set_graph(graph, as_list, outputs_as_list)

    def _trace(self, training: bool) -> Any:
        """``(graph, outputs_as_list)``: ``call`` run on the symbolic inputs."""
        if type(self).call is Model.call:
            raise NotImplementedError("When subclassing the `Model` class, you should "
                                      "implement a `call` method.")
        argument = list(self._inputs) if self._inputs_as_list else self._inputs[0]
        kwargs = {"training": training} if _accepts_training(self.call) else {}
        try:
            outputs = self.call(argument, **kwargs)
        except (TypeError, AttributeError) as exc:
            raise type(exc)(
                f"Model {self.name}: call() could not be traced on symbolic inputs ({exc}). "
                "fastconv runs call() on KerasTensors to record the layers it calls: compose "
                "layers there (write a Layer subclass with forward/backward for a "
                "computation of your own, e.g. with fastconv.ops); NumPy or fastconv.ops on "
                "the symbolic tensors, and Python branches on tensor values, need arrays "
                "and cannot be traced.") from exc
        items, outputs_as_list = as_list(outputs)
        if not items or not all(isinstance(t, KerasTensor) for t in items):
            raise TypeError(f"Model {self.name}: call() must return the output of a layer "
                            f"call (or a list of them), got {type(outputs).__name__}")
        graph = Graph(self._inputs, items, self.name)
        tracked = {id(layer) for layer in self.layers}
        for layer in graph.layers:
            if layer.weights and id(layer) not in tracked:
                raise ValueError(
                    f"Model {self.name}: call() uses layer {layer.name}, which has weights but "
                    "is not an attribute of the model, so they would never be trained: create "
                    "the layer in __init__ and assign it to self")
        self._traced_node_ids.update(id(node) for nodes in graph.nodes_by_depth.values()
                                     for node in nodes)
        self._traces[training] = graph
        return graph, outputs_as_list

    def _graph_for(self, training: bool) -> Graph:
        """The graph a run in this mode goes through."""
        if self._is_graph_network:
            return self._graph
        graph = self._traces.get(bool(training))
        return graph if graph is not None else self._trace(bool(training))[0]

    def _training_graph(self) -> Graph:
        """``_graph_for(True)``, with the training traces of nested subclassed
        models made too: a layer only their ``training=True`` branch calls
        gets its weights before the trained weights are read."""
        graph = self._graph_for(True)
        for layer in self._all_layers():
            if isinstance(layer, Model) and layer.built:
                layer._graph_for(True)
        return graph

    # ------------------------------------------------------------------
    # Structure

    @property
    def _nodes_by_depth(self) -> Dict[int, List[Node]]:
        return self._graph.nodes_by_depth if self._graph is not None else {}

    @property
    def layers(self) -> List[Layer]:
        """Subclassed: the layers assigned as attributes, in assignment order."""
        found: List[Layer] = []
        seen = set()
        for value in vars(self).values():
            for layer in _layers_in(value):
                if id(layer) not in seen and layer is not self:
                    seen.add(id(layer))
                    found.append(layer)
        return found

    @property
    def inputs(self) -> Optional[List[KerasTensor]]:
        """The input tensors (a list)."""
        return list(self._inputs) if self.built else None

    @property
    def outputs(self) -> Optional[List[KerasTensor]]:
        """The output tensors (a list)."""
        return list(self._outputs) if self.built else None

    @property
    def input_names(self) -> List[str]:
        """Names of the input layers."""
        return [t.node.layer.name for t in self._inputs]

    @property
    def output_names(self) -> List[str]:
        """Names of the output layers."""
        return [t.node.layer.name for t in self._outputs]

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """A layer by name or by index in :attr:`layers`."""
        if index is not None and name is not None:
            raise ValueError("Provide only a layer name or a layer index.")
        if index is not None:
            if len(self.layers) <= index:
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self.layers)} layers.")
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}.")
        raise ValueError("Provide either a layer name or layer index.")

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(summary_module.NOT_BUILT_MESSAGE)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape for ``input_shape`` (a list of shapes for several
        inputs), followed through the layers as Keras' Functional does."""
        self._require_built()
        shapes = list(input_shape) if self._takes_list else [input_shape]
        outputs = self._graph.output_shapes(shapes)
        return outputs if len(outputs) > 1 else outputs[0]

    # ------------------------------------------------------------------
    # Architecture and whole-model files (fastconv.models.serialization,
    # fastconv.models.keras_saving)

    def get_config(self) -> Dict[str, Any]:
        """The architecture as tf.keras 2.4's config (functional and
        Sequential models); a subclassed model must define its own, as in Keras."""
        from . import serialization
        return serialization.model_config(self)

    @classmethod
    def from_config(cls, config: Dict[str, Any],
                    custom_objects: Optional[Dict[str, Any]] = None) -> "Model":
        """The model :meth:`get_config` described (new weights); a subclass
        without a functional config gets ``cls(**config)``, as in Keras."""
        from . import serialization
        return serialization.model_class_from_config(cls, config, custom_objects)

    def to_json(self, **kwargs: Any) -> str:
        """The architecture as JSON (``kwargs`` go to ``json.dumps``); see
        :func:`fastconv.models.model_from_json`."""
        from . import serialization
        return serialization.to_json(self, **kwargs)

    def save(self, filepath: Union[str, os.PathLike], overwrite: bool = True,
             include_optimizer: bool = True, save_format: Optional[str] = None) -> None:
        """Save the architecture, the weights and (compiled) the training
        configuration and optimizer state, as Keras does: ``.keras`` (Keras
        3's zip) or ``.h5`` (tf.keras 2.4's HDF5), by extension or
        ``save_format`` (``'keras'``, ``'h5'``). Written atomically; see
        :mod:`fastconv.models.keras_saving`."""
        from . import keras_saving
        keras_saving.save_model(self, filepath, overwrite, include_optimizer, save_format)

    # ------------------------------------------------------------------
    # Weights

    @property
    def trainable(self) -> bool:
        """Setting it sets every layer's ``trainable`` (nested models' layers too).

        Training reads it when its step function is made, as tf.keras 2.4
        does: at the first ``fit``/``train_on_batch`` after ``compile``, so a
        change made later takes effect at the next ``compile``.
        """
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = value

    @staticmethod
    def _unique(variables: Sequence[Variable]) -> List[Variable]:
        seen = set()
        unique = []
        for v in variables:
            if id(v) not in seen:
                seen.add(id(v))
                unique.append(v)
        return unique

    @property
    def weights(self) -> List[Variable]:
        """All weights: layers in order, each layer's ``[kernel, bias]``."""
        return self._unique([v for layer in self.layers for v in layer.weights])

    @property
    def trainable_weights(self) -> List[Variable]:
        """The weights an optimizer updates; :meth:`backward` aligns with this."""
        if not self._trainable:
            return []
        return self._unique([v for layer in self.layers for v in layer.trainable_weights])

    @property
    def non_trainable_weights(self) -> List[Variable]:
        """Weights of frozen layers."""
        if not self._trainable:
            return self.weights
        return self._unique([v for layer in self.layers for v in layer.non_trainable_weights])

    @property
    def losses(self) -> List[float]:
        """Keras' ``model.losses``: the activity penalties of the last run on
        arrays (a call, :meth:`forward`, a training or test step), then each
        weight's regularization penalty, evaluated now (a shared weight once)."""
        return list(self._activity_losses) + regularization_penalties(self.weights)

    def _all_layers(self) -> Iterator[Layer]:
        """Every layer, nested models' layers included."""
        for layer in self.layers:
            yield layer
            if isinstance(layer, Model):
                yield from layer._all_layers()

    def _random_generators(self) -> List[np.random.Generator]:
        return [generator for layer in self._all_layers()
                for generator in layer._random_generators()]

    def _check_regularizers(self) -> None:
        """Every regularizer training will meet gives a gradient (or a TypeError naming it)."""
        for layer in self._all_layers():
            if layer.activity_regularizer is not None:
                regularizers_module.gradient_of(layer.activity_regularizer,
                                                f"the activity of layer {layer.name}")
            for variable in layer._variables:
                if variable.regularizer is not None:
                    regularizers_module.gradient_of(
                        variable.regularizer, f"weight {variable.name} of layer {layer.name}")

    def get_weights(self) -> List[np.ndarray]:
        """Copies of :attr:`weights` as arrays (Keras order and layouts)."""
        return [np.array(v.numpy(), copy=True) for v in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set :attr:`weights` from arrays in Keras order and layouts
        (HWIO conv kernels, ``(in, units)`` Dense kernels). Nothing changes
        unless every count, shape and cast fits (Keras' messages otherwise);
        then every weight changes, in one block that Ctrl-C cannot split (an
        interrupt meanwhile keeps the old weights, then raises)."""
        set_weight_values(self.name, self.weights, weights)

    def count_params(self) -> int:
        """Number of scalars in the unique weights."""
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on {self.name}, but the layer "
                             "isn't built. You can build it manually via: "
                             f"`{self.name}.build(batch_input_shape)`.")
        return int(sum(v.numpy().size for v in self.weights))

    def count_macs(self, input_shape: Any = None, output_shape: Any = None) -> Optional[int]:
        """Forward multiply-accumulates per sample (``None`` if a size is
        unknown); what is counted is documented in :mod:`fastconv.summary`.
        ``input_shape``: count for inputs of that shape (a call of this model
        as a layer) instead of its own."""
        self._require_built()
        if input_shape is None:
            shapes = [shape_tuple(t.shape) for t in self._inputs]
        else:
            shapes = list(input_shape) if self._takes_list else [input_shape]
        return self._graph.count_macs(shapes)

    # ------------------------------------------------------------------
    # Running on arrays

    def _prepare_inputs(self, x: Any, argname: Optional[str] = None) -> List[np.ndarray]:
        """One array per model input, in the input's dtype (no copy when it
        already has it), shapes checked. ``argname`` (e.g. ``'x'``) makes
        the errors name the argument the data came from."""
        if argname is None:
            return self._prepare_inputs_unnamed(x)
        if x is None:
            raise ValueError(f"`{argname}` is required: pass the input data as an array (a "
                             "list or dict of arrays for several inputs)")
        try:
            return self._prepare_inputs_unnamed(x)
        except (ValueError, TypeError) as exc:
            expected = ", ".join(str(shape_tuple(t.shape)) for t in self._inputs)
            got = ", ".join(_describe_shape(a) for a in (
                x if isinstance(x, (list, tuple)) and len(self._inputs) > 1 else
                x.values() if isinstance(x, dict) else [x]))
            raise type(exc)(f"`{argname}` (shape {got}) does not fit the input of model "
                            f"{self.name}, which expects shape {expected} (the first axis "
                            f"is the batch): {exc}") from exc

    def _prepare_inputs_unnamed(self, x: Any) -> List[np.ndarray]:
        # An array of the shape and dtype the last call checked (the loop of a
        # batch-1 server) skips the checks: they cost what a small layer does.
        last = self.__dict__.get("_checked_input")
        if (type(x) is np.ndarray and last is not None and last[2] is self._input_specs
                and x.shape == last[0] and x.dtype == last[1]):
            return [x]
        arrays = self._checked_inputs(x)
        if len(self._inputs) == 1 and arrays[0] is x and type(x) is np.ndarray:
            self.__dict__["_checked_input"] = (x.shape, x.dtype, self._input_specs)
        return arrays

    def _checked_inputs(self, x: Any) -> List[np.ndarray]:
        items, _ = as_list(x) if len(self._inputs) > 1 else ([x], False)
        if len(self._inputs) == 1 and isinstance(x, (list, tuple)) and len(x) == 1 and \
                isinstance(x[0], (np.ndarray, KerasTensor)):
            items = [x[0]]
        if isinstance(x, dict):
            missing = [n for n in self.input_names if n not in x]
            if missing:
                raise ValueError(f"Missing data for inputs {missing}; got keys {sorted(x)}")
            items = [x[n] for n in self.input_names]
        if any(isinstance(item, KerasTensor) for item in items):
            raise TypeError(f"Model {self.name}: call it on a KerasTensor or a list of them "
                            "to nest it in another model (not on a dict or a mix with arrays)")
        if len(items) != len(self._inputs):
            raise ValueError(f"Layer {self.name} expects {len(self._inputs)} input(s), but it "
                             f"received {len(items)} input tensors.")
        arrays = [as_input_array(item, dtype, f"model {self.name}")
                  for item, dtype in zip(items, self._input_dtypes)]
        assert_input_compatibility(self._input_specs, [a.shape for a in arrays], self.name)
        if len({a.shape[0] for a in arrays}) > 1:
            raise ValueError(f"Model {self.name}: inputs have different numbers of samples: "
                             f"{[a.shape[0] for a in arrays]}")
        return arrays

    def _pack_outputs(self, outputs: List[np.ndarray]) -> ArrayOrList:
        return outputs if self._outputs_as_list else outputs[0]

    def _build_for_data(self, inputs: Any) -> None:
        """Build an unbuilt model for data like ``inputs`` (batch dim left free)."""
        if self.built:
            return
        if isinstance(inputs, dict):
            raise ValueError(f"Model {self.name} is not built yet: pass its first data as an "
                             "array or a list of arrays (not a dict), or call build() first")
        # A list of arrays is one array per input; a nested list of numbers is one array.
        several = isinstance(inputs, (list, tuple)) and bool(inputs) and all(
            isinstance(item, np.ndarray) for item in inputs)
        items = list(inputs) if several else [inputs]
        shapes = []
        for item in items:
            shape = np.shape(item)
            if len(shape) < 1:
                raise ValueError(f"Model {self.name} needs batched input data, got shape "
                                 f"{shape}")
            shapes.append((None,) + tuple(shape[1:]))
        self._build_for_shapes(shapes, several and len(items) > 1)

    def __call__(self, inputs: Any, training: Optional[bool] = None, **kwargs: Any) -> Any:
        """On arrays: run the model (no tape), returning an ndarray or a list.
        On KerasTensors: become a node of the graph being built (a nested
        model), returning the output KerasTensor."""
        if kwargs:
            raise TypeError(f"Model {self.name}: unexpected call arguments {sorted(kwargs)}")
        items, several = as_list(inputs)
        symbolic = [isinstance(t, KerasTensor) for t in items]
        if not any(symbolic):
            return self._call_arrays(inputs, training)
        if not all(symbolic):
            raise TypeError(f"Model {self.name}: inputs mix symbolic KerasTensors and arrays")
        if not self.built:
            self._build_for_shapes([shape_tuple(t.shape) for t in items], several)
        return self._call_symbolic(items, training)

    @with_cached_allocations
    def _call_arrays(self, inputs: Any, training: Optional[bool]) -> ArrayOrList:
        self._build_for_data(inputs)
        activity: List[float] = []
        # training=None reaches the layers as None: each takes its own default,
        # as in Keras (inference for Dropout and BatchNormalization, while the
        # random preprocessing layers augment: `augmentation(images)`).
        graph = self._graph_for(bool(training))
        arrays = self._prepare_inputs(inputs)
        plan = inference.plan_for(self, graph, arrays, training)
        if plan is not None:
            outputs = plan.run(arrays)
        else:
            outputs, _ = graph.run(arrays, training, record=False, losses=activity)
        self._activity_losses = activity
        return eager_result(self._pack_outputs(outputs))

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        # What a layer called on a model (or np.asarray(model)) meets.
        raise TypeError(f"Model {self.name} is not an array: call layers on tensors (or "
                        "arrays), and the model on arrays")

    # ------------------------------------------------------------------
    # As a node of another model's graph (the Layer hooks)

    def _check_and_build(self, shapes: List[Any]) -> Any:
        assert_input_compatibility(self._input_specs, shapes, self.name)
        if len(self._outputs) != 1:
            raise NotImplementedError(f"Model {self.name} has {len(self._outputs)} outputs; "
                                      "fastconv nests models with one output")
        return self._graph.output_shapes(shapes)[0]

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        # The inner output's name under the model's scope: model/dense/Softmax:0.
        return self._outputs[0].name.rsplit(":", 1)[0]

    def _forward_node(self, inputs: ArrayOrList, training: bool, record: bool,
                      losses: Optional[List[float]]) -> Any:
        arrays = list(inputs) if self._takes_list else [inputs]
        outputs, tape = self._graph_for(bool(training)).run(arrays, training, record, losses)
        return outputs[0], tape

    def _backward_node(self, d_outputs: Any, tape: Tape, compute_dx: bool,
                       regularization: bool) -> Any:
        graph = tape.graph
        tensor_grads = graph.output_gradients(tape, d_outputs, False)
        weight_grads, input_grads = graph.backpropagate(tape, tensor_grads, False, compute_dx,
                                                        regularization)
        d_inputs = None if input_grads is None else (
            input_grads if self._takes_list else input_grads[0])
        return d_inputs, list(weight_grads.values())

    # ------------------------------------------------------------------
    # Forward and backward (the training interface of fastconv.models)

    def forward(self, x: Any, training: bool = True) -> ArrayOrList:
        """Run on arrays and keep each layer call's cache for :meth:`backward`.

        Parameters
        ----------
        x : array or list of arrays
        training : bool
            Passed to every layer (a node called with ``training=`` keeps its own).

        Returns
        -------
        ndarray or list of ndarray, as ``model(x)``.
        """
        self._build_for_data(x)
        activity: List[float] = []
        outputs, self._tape = self._graph_for(bool(training)).run(
            self._prepare_inputs(x), bool(training), record=True, losses=activity)
        self._activity_losses = activity
        return self._pack_outputs(outputs)

    def backward(self, d_outputs: Any, *, pre_activation: bool = False,
                 input_gradients: bool = False, regularization: bool = False) -> Any:
        """Gradients of the loss for the last :meth:`forward`.

        Parameters
        ----------
        d_outputs : ndarray or list of (ndarray or None)
            dL/d(output), shaped like the outputs of :meth:`forward`.
        pre_activation : bool
            ``d_outputs`` are gradients of the output layers' pre-activation
            (e.g. logits of a softmax output); skip the final activation.
        input_gradients : bool
            Also return dL/d(input) for every model input.
        regularization : bool
            Also differentiate ``sum(model.losses)``: the activity penalties
            of that forward pass and every weight's penalty (what ``fit``
            adds to the loss).

        Returns
        -------
        list of ndarray
            Aligned with :attr:`trainable_weights`; with ``input_gradients``,
            the tuple ``(weight_grads, input_grads)``.
        """
        if self._tape is None:
            raise RuntimeError(f"Model {self.name}: backward() needs a forward(x, training=True) "
                               "first (each backward consumes the tape of one forward)")
        tape = self._tape
        tensor_grads = tape.graph.output_gradients(tape, d_outputs, pre_activation)
        # Consumed only now: a call rejected above can be retried with fixed gradients.
        self._tape = None
        return self._gradients(tape, tensor_grads, self.trainable_weights, pre_activation,
                               input_gradients, regularization)

    @staticmethod
    def _gradients(tape: Tape, tensor_grads: Dict[int, np.ndarray],
                   variables: Sequence[Variable], pre_activation: bool, input_gradients: bool,
                   regularization: bool) -> Any:
        """Backpropagate ``tape`` and align the weight gradients with ``variables``
        (zeros for a weight the outputs do not depend on)."""
        weight_grads, input_grads = tape.graph.backpropagate(
            tape, tensor_grads, pre_activation, input_gradients, regularization,
            wanted={id(v) for v in variables})
        grads = []
        for variable in variables:
            entry = weight_grads.get(id(variable))
            grad = np.zeros_like(variable.numpy()) if entry is None else entry[1]
            if regularization and variable.regularizer is not None:
                penalty_gradient = regularizers_module.gradient_of(
                    variable.regularizer, f"weight {variable.name}")
                grad = grad + np.asarray(penalty_gradient(variable.numpy()),
                                         dtype=variable.numpy().dtype)
            grads.append(grad)
        return (grads, input_grads) if input_gradients else grads

    # ------------------------------------------------------------------
    # Summary

    def summary(self, line_length: Optional[int] = None,
                positions: Optional[Sequence[float]] = None,
                print_fn: Optional[Callable[[str], object]] = None, *,
                show_macs: bool = False) -> None:
        """Print TF 2.4's summary table (see :mod:`fastconv.summary`).

        Parameters
        ----------
        line_length : int, optional
            Default 65 (sequential-like) or 98 (branching graphs).
        positions : sequence of float, optional
            Column ends (fractions if the last is <= 1).
        print_fn : callable, optional
            Called once per line; default ``print``.
        show_macs : bool
            Add a column with each layer's multiply-accumulates per sample and
            a total line (fastconv's extension).
        """
        summary_module.print_summary(self, line_length, positions, print_fn, show_macs)

    def summary_string(self, line_length: Optional[int] = None,
                       positions: Optional[Sequence[float]] = None, *,
                       show_macs: bool = False) -> str:
        """The summary as one string, lines joined by ``\\n``."""
        return "\n".join(summary_module.summary_lines(self, line_length, positions, show_macs))

    # ------------------------------------------------------------------
    # Weight files (the format: fastconv.models.saving)

    def save_weights(self, filepath: Union[str, os.PathLike], overwrite: bool = True,
                     save_format: Optional[str] = None) -> None:
        """Write all weights to ``filepath``: Keras' HDF5 layouts for ``.h5``
        / ``.hdf5`` or ``save_format='h5'`` (tf.keras 2.4's) and ``.weights.h5``
        (Keras 3's; :mod:`fastconv.models.keras_saving`), else an ``.npz`` archive.

        The file is written to a temporary file in the same directory and
        moved into place with ``os.replace``, so readers never see a partial
        file (through a symbolic link, the link's target is written; the
        temporary files of a save that was killed are removed by the next
        save to the same file). The archive records layer names, weight names
        and shapes, which :meth:`load_weights` checks. The path is used as
        given (no extension is added).
        """
        self._require_built()
        from . import keras_saving
        if keras_saving.is_keras_weights_path(filepath, save_format):
            keras_saving.save_weights(self, filepath, overwrite, save_format)
            return
        saving.save_weights(filepath, self.name, self.layers, overwrite, save_format)

    def load_weights(self, filepath: Union[str, os.PathLike], by_name: bool = False,
                     skip_mismatch: bool = False) -> None:
        """Load weights written by :meth:`save_weights` (or by Keras: ``.h5``,
        ``.weights.h5``, ``.keras``; checked as thoroughly, all or nothing).

        By default layers with weights are matched in order (Keras'
        topological loading); ``by_name=True`` matches layer names and skips
        layers absent from the file, and ``skip_mismatch=True`` (with
        ``by_name``) also skips layers whose weight count or shapes differ.
        Every array's header (shape, dtype, declared size) is checked
        against the file's metadata and the model before any data is read,
        so a small file cannot claim a huge array; the arrays to load are
        then read and checked (zip CRCs), and only then assigned, all in one
        block that Ctrl-C cannot split. On any error (missing/corrupt file,
        wrong structure, shape mismatch) a ``ValueError`` naming the file
        (``FileNotFoundError`` for a missing file) is raised and the model's
        weights are untouched.
        """
        self._require_built()
        from . import keras_saving
        if keras_saving.is_keras_weights_path(filepath):
            keras_saving.load_weights(self, filepath, by_name, skip_mismatch)
            return
        saving.load_weights(filepath, self.layers, by_name, skip_mismatch)

    def __repr__(self) -> str:
        return f"<fastconv.models.{type(self).__name__} name={self.name!r}>"
