"""Keras-like models: functional :class:`Model` and :class:`Sequential`.

Building (Keras 2 / TF 2.4 semantics)::

    from fastconv.layers import Input, Conv2D, MaxPooling2D, Flatten, Dense
    from fastconv.models import Model, Sequential

    inputs = Input(shape=(28, 28, 1))
    x = Conv2D(32, 3, activation="relu")(inputs)
    x = MaxPooling2D(2)(x)
    outputs = Dense(10, activation="softmax")(Flatten()(x))
    model = Model(inputs=inputs, outputs=outputs)
    model.summary()
    probabilities = model.predict(images)          # float32 ndarray

Training interface (what compile/fit/train_on_batch build on)
-------------------------------------------------------------
``model.trainable_weights`` : list of :class:`fastconv.layers.Variable`
    Unique trainable weights, layers in ``model.layers`` order, each layer's
    ``[kernel, bias]``. ``v.numpy()`` is the live array; update it in place
    (``v.assign_sub(lr * g)``, ``v.numpy()[...] -= ...``) or ``v.assign(new)``.
``outputs = model.forward(x, training=True)``
    Runs the graph on arrays and records a tape (each layer call's cache) for
    the next :meth:`Model.backward`. Returns an ndarray (a list for several
    outputs), like ``model(x)``.
``grads = model.backward(d_outputs)``
    ``d_outputs`` is dL/d(output) (a list for several outputs; ``None`` for
    an output without loss), shaped like the forward outputs. Returns
    gradients aligned with ``model.trainable_weights`` (same shapes and
    dtypes; a weight used by several calls gets the sum). Consumes the tape.
    ``pre_activation=True`` says ``d_outputs`` is already the gradient of the
    output layers' *pre-activation* (logits) -- e.g. ``(softmax - onehot) / n``
    for softmax + categorical cross-entropy -- so the final activation's
    derivative is skipped. ``input_gradients=True`` returns
    ``(grads, [dL/d(input) ...])``. The first layers after an Input compute
    no input gradient unless that is asked for.
``model.non_trainable_weights``, ``model.weights``, ``get_weights()``,
``set_weights()``
    Keras order and layouts.

One training step with :mod:`fastconv.optimizers` (which update arrays in place)::

    probabilities = model.forward(x_batch, training=True)
    grads = model.backward((probabilities - onehot) / len(x_batch), pre_activation=True)
    optimizer.apply_gradients(zip(grads, [v.numpy() for v in model.trainable_weights]))

Training (Keras 2.4 semantics; details in each method's docstring)::

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=15,
                        validation_split=0.1)      # the *last* 10%, before shuffling
    history.history         # {'loss': [...], 'accuracy': [...], 'val_loss': [...], ...}
    loss, accuracy = model.evaluate(x_test, y_test)
    model.train_on_batch(x, y); model.test_on_batch(x, y)

A softmax (sigmoid) output trained with a (sparse) categorical (binary)
cross-entropy takes the fused, numerically stable gradient with respect to the
logits (``backward(..., pre_activation=True)``). The weights change only inside
the optimizer call, which holds back Ctrl-C until the step is whole, so an
interrupted ``fit`` leaves the model as it was after its last whole step.
Callbacks may set ``model.stop_training = True``.

Other API: ``model(x)`` / ``predict(x, batch_size=32)`` (no tape),
``summary(..., show_macs=False)``, ``summary_string()``, ``count_params()``,
``count_macs()``, ``save_weights(path)`` / ``load_weights(path)`` (``.npz``,
written atomically), ``get_layer(name)``, ``layers``, ``inputs``, ``outputs``.

Not supported: subclassed models (``class Net(Model)`` with ``call``),
nesting a model inside another as a layer, layers with several outputs,
training models with several outputs, ``fit`` on datasets/generators or with
``steps_per_epoch``.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _training
from ._memory import with_cached_allocations
from . import activations as activations_module
from . import backend
from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import summary as summary_module
from .layers.base import InputSpec, Layer, Node, Variable, as_input_array, \
    assert_input_compatibility, set_weight_values
from .layers.input_layer import Input, InputLayer
from .layers.keras_tensor import KerasTensor, shape_tuple

__all__ = ["Model", "Sequential"]

ArrayOrList = Union[np.ndarray, List[np.ndarray]]

# Format tag stored in every weights file, checked on load.
WEIGHTS_FORMAT = "fastconv-weights-1"
_META_KEY = "__fastconv_meta__"


def _flatten(value: Any) -> Tuple[List[Any], bool]:
    """``(items, was_a_list)``."""
    if isinstance(value, (list, tuple)):
        return list(value), True
    return [value], False


def _describe_shape(value: Any) -> str:
    try:
        return str(np.shape(value))
    except ValueError:  # ragged nested lists
        return f"<ragged {type(value).__name__}>"


def _accumulate(store: Dict[int, np.ndarray], key: int, value: np.ndarray) -> None:
    # Never in place: a gradient array may be shared (Add hands the same one
    # to every input).
    previous = store.get(key)
    store[key] = value if previous is None else previous + value


class _Compiled:
    """What :meth:`Model.compile` resolved: the loss, its weight and the metrics.

    ``loss_tracker`` is the running epoch mean of the batch losses (weighted
    by batch size); ``metrics`` see no sample weights, ``weighted_metrics``
    do (Keras' split).
    """

    def __init__(self, loss: Optional[losses_module.Loss], loss_weight: float,
                 metrics: List[metrics_module.Metric],
                 weighted_metrics: List[metrics_module.Metric]) -> None:
        self.loss = loss
        self.loss_weight = loss_weight
        self.loss_tracker = metrics_module.Mean(name="loss")
        self.metrics = metrics
        self.weighted_metrics = weighted_metrics

    @property
    def all_metrics(self) -> List[metrics_module.Metric]:
        return [self.loss_tracker, *self.metrics, *self.weighted_metrics]


def _single_entry(value: Any, what: str, output_names: Optional[List[str]]) -> Any:
    """Unwrap Keras' per-output forms (``[v]``, ``{'dense_1': v}``) for one output."""
    if isinstance(value, dict):
        if len(value) != 1:
            raise ValueError(f"`{what}` is a dict with {len(value)} entries, but fastconv trains "
                             f"models with one output (named {output_names})")
        (key, item), = value.items()
        if output_names is not None and key not in output_names:
            raise ValueError(f"`{what}` has an entry for {key!r}, which is not an output of "
                             f"the model; its output is {output_names[0]!r}")
        return item
    return value


class _Graph:
    """Result of walking a functional graph back from its outputs."""

    def __init__(self, nodes_by_depth: Dict[int, List[Node]], layers: List[Layer]) -> None:
        self.nodes_by_depth = nodes_by_depth
        self.layers = layers


def _map_graph(inputs: List[KerasTensor], outputs: List[KerasTensor]) -> _Graph:
    """Nodes by depth and layers in Keras' topological order.

    Depth 0 holds the output nodes; a node's depth exceeds its consumers'.
    Layers are listed deepest first, ties broken by the order a depth-first
    walk from the outputs meets them -- the order ``model.layers`` and the
    summary show in Keras.
    """
    post_order: List[Node] = []          # producers before consumers
    layer_order: Dict[int, int] = {}     # id(layer) -> first meeting
    layers_by_id: Dict[int, Layer] = {}
    finished: set = set()

    def meet(node: Node) -> None:
        if id(node.layer) not in layer_order:
            layer_order[id(node.layer)] = len(layer_order)
            layers_by_id[id(node.layer)] = node.layer

    for output in outputs:
        start = output.node
        if id(start) in finished:
            continue
        meet(start)
        in_progress = {id(start)}
        # An explicit stack: deep Sequential models must not hit the recursion limit.
        stack = [(start, iter(start.inbound))]
        while stack:
            node, pending = stack[-1]
            tensor = next(pending, None)
            if tensor is None:
                stack.pop()
                in_progress.discard(id(node))
                finished.add(id(node))
                post_order.append(node)
                continue
            parent = tensor.node
            if id(parent) in finished:
                continue
            if id(parent) in in_progress:
                raise ValueError(f"The tensor {tensor} at layer \"{parent.layer.name}\" is part "
                                 "of a cycle.")
            meet(parent)
            in_progress.add(id(parent))
            stack.append((parent, iter(parent.inbound)))

    node_depth: Dict[int, int] = {}
    nodes_by_id: Dict[int, Node] = {id(node): node for node in post_order}
    layer_depth: Dict[int, int] = {}
    for node in reversed(post_order):
        depth = node_depth.setdefault(id(node), 0)
        # A shared layer sits at the depth of its deepest call.
        depth = max(depth, layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for parent in node.parent_nodes:
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))

    for tensor in inputs:  # inputs that no output depends on
        layer = tensor.node.layer
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            layer_order[id(layer)] = -1
            layers_by_id[id(layer)] = layer
            node_depth[id(tensor.node)] = 0
            nodes_by_id[id(tensor.node)] = tensor.node

    nodes_by_depth: Dict[int, List[Node]] = {}
    for node_id, depth in node_depth.items():
        nodes_by_depth.setdefault(depth, []).append(nodes_by_id[node_id])
    layers_by_depth: Dict[int, List[Layer]] = {}
    for layer_id, depth in layer_depth.items():
        layers_by_depth.setdefault(depth, []).append(layers_by_id[layer_id])
    layers: List[Layer] = []
    for depth in sorted(layers_by_depth, reverse=True):
        layers.extend(sorted(layers_by_depth[depth], key=lambda l: layer_order[id(l)]))
    nodes_by_depth = {d: nodes_by_depth[d] for d in sorted(nodes_by_depth, reverse=True)}

    computable = {id(t) for t in inputs}
    reached: List[str] = []
    for depth_nodes in nodes_by_depth.values():
        for node in depth_nodes:
            if node.is_input:
                continue
            for tensor in node.inbound:
                if id(tensor) not in computable:
                    raise ValueError(
                        f"Graph disconnected: cannot obtain value for tensor {tensor} at layer "
                        f"\"{node.layer.name}\". The following previous layers were accessed "
                        f"without issue: {reached}")
            computable.add(id(node.output))
            reached.append(node.layer.name)

    names = [layer.name for layer in layers]
    for name in names:
        if names.count(name) != 1:
            raise ValueError(f"The name \"{name}\" is used {names.count(name)} times in the "
                             "model. All layer names should be unique.")
    return _Graph(nodes_by_depth, layers)


class Model:
    """A functional model: the graph from ``inputs`` to ``outputs``.

    Parameters
    ----------
    inputs : KerasTensor or list of KerasTensor
        Tensors returned by :func:`fastconv.layers.Input`.
    outputs : KerasTensor or list of KerasTensor
        Tensors computed from ``inputs`` by layer calls.
    name : str, optional
        Default ``model``, ``model_1``, ...
    trainable : bool

    See the module docstring for the training interface
    (:meth:`forward`, :meth:`backward`, :attr:`trainable_weights`).
    """

    def __init__(self, inputs: Any = None, outputs: Any = None, name: Optional[str] = None,
                 trainable: bool = True, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"Keyword argument not understood: {next(iter(kwargs))}")
        self._init_common(name, trainable)
        if inputs is None or outputs is None:
            raise TypeError("Model needs `inputs` and `outputs` (the functional API: "
                            "Model(inputs=Input(...), outputs=...)); subclassed models are "
                            "not supported by fastconv")
        self._init_graph(inputs, outputs)

    def _init_common(self, name: Optional[str], trainable: bool) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string, got {type(name).__name__}")
        # Keras names a functional model "model"; subclasses by their class name.
        base = "model" if type(self) is Model else backend.to_snake_case(type(self).__name__)
        self._name = name or backend.unique_object_name(base)
        self._trainable = bool(trainable)
        self._graph: Optional[_Graph] = None
        self._inputs: List[KerasTensor] = []
        self._outputs: List[KerasTensor] = []
        self._inputs_as_list = False
        self._outputs_as_list = False
        self._execution: List[Node] = []
        self._tape: Optional[List[Tuple[Node, Any]]] = None
        self._tape_output_shapes: List[Tuple[int, ...]] = []
        self._tape_input_shapes: List[Tuple[int, ...]] = []
        # Set by compile().
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.loss: Any = None
        self._compiled: Optional[_Compiled] = None
        self._accumulate_batch_metrics = False
        self.stop_training = False
        self.history: Optional[callbacks_module.History] = None

    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        inputs, inputs_as_list = _flatten(inputs)
        outputs, outputs_as_list = _flatten(outputs)
        for kind, tensors in (("inputs", inputs), ("outputs", outputs)):
            if not tensors:
                raise ValueError(f"Model `{kind}` must not be empty")
            for t in tensors:
                if not isinstance(t, KerasTensor):
                    raise TypeError(f"Model `{kind}` must be symbolic tensors (from Input() and "
                                    f"layer calls), got {type(t).__name__}")
        for t in inputs:
            if not t.node.is_input:
                raise ValueError(f"Model inputs must come from `fastconv.layers.Input`; {t} was "
                                 f"produced by layer \"{t.node.layer.name}\"")
        if len({id(t) for t in inputs}) != len(inputs):
            raise ValueError("The same Input tensor is listed twice in `inputs`")
        graph = _map_graph(inputs, outputs)
        self._graph = graph
        self._inputs, self._outputs = inputs, outputs
        self._inputs_as_list, self._outputs_as_list = inputs_as_list, outputs_as_list
        self._execution = [node for nodes in graph.nodes_by_depth.values() for node in nodes
                           if not node.is_input]
        # How many node calls read each tensor, to free intermediates in inference.
        readers: Dict[int, int] = {}
        for node in self._execution:
            for t in node.inbound:
                readers[id(t)] = readers.get(id(t), 0) + 1
        self._readers = readers
        self._output_ids = {id(t) for t in outputs}
        # What every call checks its data against.
        self._input_specs = [InputSpec(shape=shape_tuple(t.shape)) for t in inputs]
        self._input_dtypes = [t.dtype.as_numpy_dtype for t in inputs]
        self._tape = None
        if not self._trainable:
            self.trainable = False

    # ------------------------------------------------------------------
    # Structure

    @property
    def name(self) -> str:
        """The model's name."""
        return self._name

    @property
    def built(self) -> bool:
        """Whether the graph (and so every weight) exists."""
        return self._graph is not None

    @property
    def _nodes_by_depth(self) -> Dict[int, List[Node]]:
        return self._graph.nodes_by_depth if self._graph is not None else {}

    @property
    def layers(self) -> List[Layer]:
        """Layers in topological order, InputLayers included."""
        return list(self._graph.layers) if self._graph is not None else []

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

    @property
    def input_shape(self) -> Any:
        """Input shape tuple (a list of them for several inputs)."""
        self._require_built()
        shapes = [shape_tuple(t.shape) for t in self._inputs]
        return shapes if self._inputs_as_list and len(shapes) > 1 else shapes[0]

    @property
    def output_shape(self) -> Any:
        """Output shape tuple (a list of them for several outputs)."""
        self._require_built()
        shapes = [shape_tuple(t.shape) for t in self._outputs]
        return shapes if self._outputs_as_list and len(shapes) > 1 else shapes[0]

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
            raise ValueError(summary_module._NOT_BUILT)

    # ------------------------------------------------------------------
    # Weights

    @property
    def trainable(self) -> bool:
        """Setting it sets every layer's ``trainable``."""
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

    def get_weights(self) -> List[np.ndarray]:
        """Copies of :attr:`weights` as arrays (Keras order and layouts)."""
        return [np.array(v.numpy(), copy=True) for v in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set :attr:`weights` from arrays in Keras order and layouts
        (HWIO conv kernels, ``(in, units)`` Dense kernels). Nothing changes
        unless every count and shape fits (Keras' messages otherwise)."""
        set_weight_values(self.name, self.weights, weights)

    def count_params(self) -> int:
        """Number of scalars in the unique weights."""
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on {self.name}, but the layer "
                             "isn't built. You can build it manually via: "
                             f"`{self.name}.build(batch_input_shape)`.")
        return int(sum(v.numpy().size for v in self.weights))

    def count_macs(self) -> Optional[int]:
        """Forward multiply-accumulates per sample (``None`` if a size is
        unknown); what is counted is documented in :mod:`fastconv.summary`."""
        self._require_built()
        total = 0
        for node in self._execution:
            macs = node.layer.count_macs(node.input_shapes, node.output_shapes)
            if macs is None:
                return None
            total += macs
        return total

    # ------------------------------------------------------------------
    # Running

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
        items, _ = _flatten(x) if len(self._inputs) > 1 else ([x], False)
        if len(self._inputs) == 1 and isinstance(x, (list, tuple)) and len(x) == 1 and \
                isinstance(x[0], (np.ndarray, KerasTensor)):
            items = [x[0]]
        if isinstance(x, dict):
            missing = [n for n in self.input_names if n not in x]
            if missing:
                raise ValueError(f"Missing data for inputs {missing}; got keys {sorted(x)}")
            items = [x[n] for n in self.input_names]
        if any(isinstance(item, KerasTensor) for item in items):
            raise NotImplementedError(
                f"Calling model {self.name} on symbolic tensors (nesting models) is not "
                "supported by fastconv; call its layers on the tensors instead")
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

    def _run(self, arrays: List[np.ndarray], training: bool, record: bool
             ) -> Tuple[List[np.ndarray], Optional[List[Tuple[Node, Any]]]]:
        values: Dict[int, np.ndarray] = {id(t): a for t, a in zip(self._inputs, arrays)}
        remaining = dict(self._readers)
        tape: Optional[List[Tuple[Node, Any]]] = [] if record else None
        for node in self._execution:
            layer = node.layer
            node_inputs = [values[id(t)] for t in node.inbound]
            try:
                y, cache = layer.forward(node_inputs if layer._takes_list else node_inputs[0],
                                         training)
            except ValueError as exc:
                raise ValueError(f"Layer {layer.name} ({type(layer).__name__}) of model "
                                 f"{self.name}: {exc}") from exc
            values[id(node.output)] = y
            if record:
                tape.append((node, cache))
            else:
                # Inference keeps only what later layers still read.
                for t in node.inbound:
                    remaining[id(t)] -= 1
                    if remaining[id(t)] == 0 and id(t) not in self._output_ids:
                        values.pop(id(t), None)
        return [values[id(t)] for t in self._outputs], tape

    def _pack_outputs(self, outputs: List[np.ndarray]) -> ArrayOrList:
        return outputs if self._outputs_as_list else outputs[0]

    @with_cached_allocations
    def __call__(self, inputs: Any, training: bool = False, **kwargs: Any) -> ArrayOrList:
        """Run the model on arrays (no tape); returns an ndarray or a list."""
        if kwargs:
            raise TypeError(f"Model {self.name}: unexpected call arguments {sorted(kwargs)}")
        self._build_for_data(inputs)
        outputs, _ = self._run(self._prepare_inputs(inputs), bool(training), record=False)
        return self._pack_outputs(outputs)

    def _build_for_data(self, inputs: Any) -> None:
        """Hook for Sequential's deferred build; a functional model is built."""

    def forward(self, x: Any, training: bool = True) -> ArrayOrList:
        """Run on arrays and keep each layer call's cache for :meth:`backward`.

        Parameters
        ----------
        x : array or list of arrays
        training : bool
            Passed to every layer (no fastconv layer changes behaviour yet).

        Returns
        -------
        ndarray or list of ndarray, as ``model(x)``.
        """
        self._build_for_data(x)
        arrays = self._prepare_inputs(x)
        outputs, tape = self._run(arrays, bool(training), record=True)
        self._tape = tape
        self._tape_input_shapes = [a.shape for a in arrays]
        self._tape_output_shapes = [o.shape for o in outputs]
        return self._pack_outputs(outputs)

    def backward(self, d_outputs: Any, *, pre_activation: bool = False,
                 input_gradients: bool = False) -> Any:
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
        several = isinstance(d_outputs, (list, tuple)) and (len(self._outputs) > 1
                                                            or len(d_outputs) == 1)
        if several:
            given = list(d_outputs)
        else:
            given = [d_outputs]
        if len(given) != len(self._outputs):
            raise ValueError(f"Model {self.name} has {len(self._outputs)} output(s) but "
                             f"backward() received {len(given)} gradient(s)")
        tensor_grads: Dict[int, np.ndarray] = {}
        for tensor, grad, shape in zip(self._outputs, given, self._tape_output_shapes):
            if grad is None:
                continue
            grad = np.asarray(grad, dtype=tensor.dtype.as_numpy_dtype)
            if grad.shape != shape:
                raise ValueError(f"Model {self.name}: the gradient for output "
                                 f"{tensor.node.layer.name} has shape {grad.shape}, expected "
                                 f"{shape} (the output's shape)")
            _accumulate(tensor_grads, id(tensor), grad)

        output_nodes = {id(t.node) for t in self._outputs}
        if pre_activation:
            for tensor in self._outputs:
                layer = tensor.node.layer
                if not hasattr(layer, "backward_pre_activation"):
                    raise ValueError(f"pre_activation=True needs output layers with an "
                                     f"activation; {layer.name} ({type(layer).__name__}) has none")
                if self._readers.get(id(tensor)):
                    raise ValueError(f"pre_activation=True is ambiguous: output "
                                     f"{layer.name} is also read by other layers of the model")

        # Consumed only now: a call rejected above can be retried with fixed gradients.
        self._tape = None
        weight_grads: Dict[int, np.ndarray] = {}
        for node, cache in reversed(tape):
            dy = tensor_grads.pop(id(node.output), None)
            if dy is None:
                continue  # nothing downstream depends on this call
            layer = node.layer
            compute_dx = input_gradients or any(not t.node.is_input for t in node.inbound)
            if pre_activation and id(node) in output_nodes:
                dx, grads = layer.backward_pre_activation(dy, cache, compute_dx)
            else:
                dx, grads = layer.backward(dy, cache, compute_dx)
            for variable, grad in zip(layer._variables, grads):
                _accumulate(weight_grads, id(variable), grad)
            if dx is None:
                continue
            for tensor, grad in zip(node.inbound, dx if layer._takes_list else [dx]):
                if tensor.node.is_input and not input_gradients:
                    continue
                _accumulate(tensor_grads, id(tensor), grad)

        result = [weight_grads.get(id(v), np.zeros_like(v.numpy()))
                  for v in self.trainable_weights]
        if not input_gradients:
            return result
        input_grads = [tensor_grads.get(id(t), np.zeros(shape, dtype=t.dtype.as_numpy_dtype))
                       for t, shape in zip(self._inputs, self._tape_input_shapes)]
        return result, input_grads

    @with_cached_allocations
    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: int = 0,
                steps: Optional[int] = None, callbacks: Optional[Sequence[Any]] = None,
                max_queue_size: int = 10, workers: int = 1,
                use_multiprocessing: bool = False) -> ArrayOrList:
        """Outputs for ``x`` computed in batches of ``batch_size`` (default 32).

        Returns one array (a list for several outputs) holding every batch's
        outputs in order, in the model's dtype (float32 by default), as
        Keras does. ``steps`` limits the number of batches. ``verbose=1``
        shows a progress bar and ``callbacks`` receive the predict hooks
        (the default, ``verbose=0`` and no callbacks, skips that machinery
        entirely). ``max_queue_size``, ``workers`` and
        ``use_multiprocessing`` are accepted and ignored.
        """
        batch_size = 32 if batch_size is None else _training.check_positive_int(
            batch_size, "batch_size")
        verbose = _training.check_verbose(verbose)
        if steps is not None:
            steps = _training.check_positive_int(steps, "steps")
        self._build_for_data(x)
        arrays = self._prepare_inputs(x, "x")
        n = arrays[0].shape[0]
        if n == 0:
            raise ValueError("Expect x to be a non-empty array or dataset.")
        slices = _training.batch_slices(n, batch_size, steps)
        hooks = None
        if verbose or callbacks:
            hooks = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                                  verbose=verbose, epochs=1, steps=len(slices))
            hooks.on_predict_begin()
        if len(slices) == 1:  # one batch: hand out the arrays the last layers made
            if hooks is not None:
                hooks.on_predict_batch_begin(0)
            outputs, _ = self._run([a[slices[0]] for a in arrays], False, record=False)
            # A layer such as Flatten may return a view of the caller's input.
            results = [o.copy() if any(np.may_share_memory(o, a) for a in arrays) else o
                       for o in outputs]
            if hooks is not None:
                hooks.on_predict_batch_end(0, {"outputs": self._pack_outputs(results)})
        else:
            total = slices[-1].stop
            results = []
            for step, batch in enumerate(slices):
                if hooks is not None:
                    hooks.on_predict_batch_begin(step)
                outputs, _ = self._run([a[batch] for a in arrays], False, record=False)
                if not results:
                    results = [np.empty((total,) + o.shape[1:], dtype=o.dtype) for o in outputs]
                for store, out in zip(results, outputs):
                    store[batch] = out
                if hooks is not None:
                    hooks.on_predict_batch_end(step, {"outputs": self._pack_outputs(outputs)})
        if hooks is not None:
            hooks.on_predict_end()
        return self._pack_outputs(results)

    @with_cached_allocations
    def predict_on_batch(self, x: Any) -> ArrayOrList:
        """Outputs for one batch (``model(x)``)."""
        return self(x)

    # ------------------------------------------------------------------
    # Training: compile / fit / evaluate

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None,
                loss_weights: Any = None, weighted_metrics: Any = None,
                run_eagerly: Optional[bool] = None, steps_per_execution: Optional[int] = None,
                **kwargs: Any) -> None:
        """Configure the model for training (Keras 2.4's ``compile``).

        Parameters
        ----------
        optimizer : str or Optimizer, default 'rmsprop'
            A name (``'adam'``, ``'sgd'``, ``'rmsprop'``, case-insensitive,
            with Keras' default hyperparameters) or an instance from
            :mod:`fastconv.optimizers`. An instance keeps its state across
            ``compile`` calls.
        loss : str, Loss or callable
            A name (``'sparse_categorical_crossentropy'``, ``'mse'``, ...), a
            :class:`fastconv.losses.Loss`, or a function returning
            ``(mean_loss, grad_wrt_y_pred)`` (see :func:`fastconv.losses.get`).
            Cross-entropy on a softmax (sigmoid) output is trained through the
            fused, numerically stable gradient with respect to the logits.
            ``[loss]`` and ``{output_name: loss}`` are accepted too.
        metrics : list, optional
            e.g. ``['accuracy']``: ``'accuracy'``/``'acc'`` is resolved from
            the shapes of the first batch as Keras does (binary, sparse or
            categorical); any :func:`fastconv.metrics.get` identifier.
        loss_weights : float, optional
            Scales the loss (a one-entry list or dict is accepted).
        weighted_metrics : list, optional
            Metrics that take ``sample_weight``/``class_weight`` into account
            (named ``weighted_<name>`` if the name is taken).
        run_eagerly : bool, optional
            Accepted; fastconv always runs eagerly.
        steps_per_execution : int, optional
            Accepted; each batch is one step and gets its callbacks.

        Raises
        ------
        ValueError
            Unknown optimizer, loss or metric names.
        NotImplementedError
            For a model with several outputs.
        """
        if kwargs:
            raise TypeError(f"Invalid keyword argument(s) in `compile`: {sorted(kwargs)}")
        if steps_per_execution is not None:
            _training.check_positive_int(steps_per_execution, "steps_per_execution")
        output_names = None
        if self.built:
            self._require_single_output("compile")
            output_names = self.output_names
        optimizer_obj = optimizers_module.get(optimizer)
        loss_obj = losses_module.get(_single_entry(loss, "loss", output_names))
        loss_weight = _single_entry(loss_weights, "loss_weights", output_names)
        if isinstance(loss_weight, (list, tuple)) and len(loss_weight) == 1:
            loss_weight = loss_weight[0]
        if loss_weight is None:
            loss_weight = 1.0
        if isinstance(loss_weight, bool) or not isinstance(
                loss_weight, (int, float, np.integer, np.floating)) or not np.isfinite(loss_weight):
            raise ValueError(f"`loss_weights` must be a finite number for a model with one "
                             f"output, got {loss_weights!r}")
        metric_objs = self._resolve_metrics(metrics, "metrics", output_names)
        weighted_objs = self._resolve_metrics(weighted_metrics, "weighted_metrics", output_names)
        taken = {"loss"} | {m.name for m in metric_objs}
        for metric in weighted_objs:
            if metric.name in taken:
                metric.name = f"weighted_{metric.name}"
            taken.add(metric.name)
        self.optimizer = optimizer_obj
        self.loss = loss
        self._compiled = _Compiled(loss_obj, float(loss_weight), metric_objs, weighted_objs)
        self._accumulate_batch_metrics = False
        self.stop_training = False

    @staticmethod
    def _resolve_metrics(identifiers: Any, what: str, output_names: Optional[List[str]]
                         ) -> List[metrics_module.Metric]:
        identifiers = _single_entry(identifiers, what, output_names)
        if identifiers is None:
            return []
        if isinstance(identifiers, (str, metrics_module.Metric)) or callable(identifiers):
            identifiers = [identifiers]
        if not isinstance(identifiers, (list, tuple)):
            raise TypeError(f"Type of `{what}` argument not understood. Expected a list or "
                            f"dictionary, found: {identifiers!r}")
        return [metrics_module.get(identifier) for identifier in identifiers]

    @property
    def metrics(self) -> List[metrics_module.Metric]:
        """The running metrics: the loss tracker first, then the compiled metrics."""
        return self._compiled.all_metrics if self._compiled is not None else []

    @property
    def metrics_names(self) -> List[str]:
        """``['loss', <metric names>...]``: the order of :meth:`evaluate`'s list."""
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        """Reset the running loss and metrics (fit does it at each epoch)."""
        for metric in self.metrics:
            metric.reset_state()

    def _require_compiled(self) -> _Compiled:
        if self._compiled is None:
            raise RuntimeError("You must compile your model before training/testing. Use "
                               "`model.compile(optimizer, loss)`.")
        if self._compiled.loss is None:
            raise ValueError("No loss found. You may have forgotten to provide a `loss` "
                             "argument in the `compile()` method.")
        return self._compiled

    def _require_single_output(self, method: str) -> None:
        if len(self._outputs) != 1:
            raise NotImplementedError(f"{method}(): fastconv trains models with one output; "
                                      f"model {self.name} has {len(self._outputs)}")

    def _fused_output_activation(self) -> bool:
        """True when the loss fuses with the output layer's activation.

        Softmax + (sparse) categorical cross-entropy and sigmoid + binary
        cross-entropy: the step then feeds ``dL/d(logits)``, computed from
        the probabilities without the activation's Jacobian, to
        ``backward(..., pre_activation=True)``.
        """
        loss = self._compiled.loss if self._compiled is not None else None
        if loss is None or loss.logits_activation is None or loss.from_logits:
            return False
        tensor = self._outputs[0]
        layer = tensor.node.layer
        activation = getattr(layer, "activation", None)
        return (activation is not None
                and activation is activations_module.get(loss.logits_activation)
                and hasattr(layer, "backward_pre_activation")
                and not self._readers.get(id(tensor)))

    def _prepare_targets(self, y: Any, argname: str) -> np.ndarray:
        if y is None:
            raise ValueError(f"`{argname}` is required: fastconv trains and evaluates on "
                             "arrays, (x, y)")
        output_names = self.output_names
        y = _single_entry(y, argname, output_names)
        if isinstance(y, (list, tuple)) and len(y) == 1 and isinstance(y[0], np.ndarray):
            y = y[0]
        try:
            y = np.asarray(y)
        except ValueError as exc:
            raise ValueError(f"`{argname}` is not a rectangular array: {exc}") from None
        if y.dtype.kind not in "biuf":
            raise TypeError(f"`{argname}` must hold numbers, got dtype {y.dtype}")
        if y.ndim == 0:
            raise ValueError(f"`{argname}` must have a batch dimension, got a scalar")
        return y

    @staticmethod
    def _prepare_sample_weight(sample_weight: Any, argname: str) -> Optional[np.ndarray]:
        if sample_weight is None:
            return None
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.ndim == 2 and weights.shape[1] == 1:
            weights = weights[:, 0]
        if weights.ndim != 1:
            raise ValueError(f"`{argname}` must hold one weight per sample, shape (n,), got "
                             f"shape {weights.shape}")
        return weights

    def _check_targets(self, y: np.ndarray, argname: str) -> None:
        """Check all of ``y`` against the loss at once, so that a bad label is
        reported with its index in ``y`` (not in some batch) and before training.

        Done for the built-in cross-entropies, by evaluating the loss on a
        uniform prediction of the output's shape (which checks shapes,
        one-hot vs integer labels, and the label range).
        """
        loss = self._compiled.loss
        if loss is None or loss.logits_activation is None or \
                type(loss).__module__ != losses_module.__name__:
            return
        out_shape = shape_tuple(self._outputs[0].shape)
        if len(out_shape) < 2 or any(d is None for d in out_shape[1:]):
            return
        probe = np.full((len(y),) + tuple(out_shape[1:]), 1.0 / out_shape[-1], np.float32)
        try:
            loss.per_sample(y, probe)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"`{argname}` does not fit the loss {loss.name} and the model's "
                            f"output of shape {out_shape}: {exc}") from None

    def _prepare_xy(self, x: Any, y: Any, sample_weight: Any, names: Tuple[str, str, str]
                    ) -> Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray], int]:
        xs = self._prepare_inputs(x, names[0])
        y = self._prepare_targets(y, names[1])
        weights = self._prepare_sample_weight(sample_weight, names[2])
        labelled = [(names[0], xs), (names[1], [y])]
        if weights is not None:
            labelled.append((names[2], [weights]))
        n = _training.check_cardinality(labelled)
        return xs, y, weights, n

    def _current_logs(self, compiled: _Compiled) -> Dict[str, float]:
        return {metric.name: metric.result() for metric in compiled.all_metrics}

    def _update_metrics(self, compiled: _Compiled, loss_value: float, y: np.ndarray,
                        y_pred: np.ndarray, sample_weight: Optional[np.ndarray]) -> None:
        compiled.loss_tracker.update_state(loss_value, sample_weight=len(y_pred))
        for metric in compiled.metrics:
            metric.update_state(y, y_pred)
        for metric in compiled.weighted_metrics:
            metric.update_state(y, y_pred, sample_weight=sample_weight)

    def _train_step(self, compiled: _Compiled, xs: List[np.ndarray], y: np.ndarray,
                    sample_weight: Optional[np.ndarray], fused: bool) -> Dict[str, float]:
        """One optimizer step on one batch; returns the running logs.

        The weights change only inside the optimizer call, which a Ctrl-C
        cannot split: after any interruption the model holds the weights of
        a whole number of steps.
        """
        outputs, tape = self._run(xs, True, record=True)
        y_pred = outputs[0]
        if fused:
            value, grad = compiled.loss.value_and_logits_gradient(y, y_pred, sample_weight)
        else:
            value, grad = compiled.loss(y, y_pred, sample_weight)
        if compiled.loss_weight != 1.0:
            value *= compiled.loss_weight
            grad = grad * grad.dtype.type(compiled.loss_weight)
        variables = self.trainable_weights
        if variables:
            self._tape = tape
            self._tape_input_shapes = [a.shape for a in xs]
            self._tape_output_shapes = [y_pred.shape]
            grads = self.backward(grad, pre_activation=fused)
            with _training.defer_keyboard_interrupt():
                self.optimizer.apply_gradients(zip(grads, variables))
        self._update_metrics(compiled, value, y, y_pred, sample_weight)
        return self._current_logs(compiled)

    def _test_loop(self, compiled: _Compiled, xs: List[np.ndarray], y: np.ndarray,
                   sample_weight: Optional[np.ndarray], batch_size: int, steps: Optional[int],
                   hooks: callbacks_module.CallbackList) -> Dict[str, float]:
        slices = _training.batch_slices(len(y), batch_size, steps)
        self.reset_metrics()
        hooks.on_test_begin()
        logs: Dict[str, float] = {}
        for step, batch in enumerate(slices):
            hooks.on_test_batch_begin(step)
            outputs, _ = self._run([a[batch] for a in xs], False, record=False)
            batch_y = y[batch]
            batch_w = None if sample_weight is None else sample_weight[batch]
            value = compiled.loss(batch_y, outputs[0], batch_w)[0] * compiled.loss_weight
            self._update_metrics(compiled, value, batch_y, outputs[0], batch_w)
            logs = self._current_logs(compiled)
            hooks.on_test_batch_end(step, logs)
        hooks.on_test_end(logs)
        return logs

    def _format_results(self, logs: Dict[str, float], return_dict: bool) -> Any:
        if return_dict:
            return dict(logs)
        results = [logs[name] for name in self.metrics_names if name in logs]
        return results[0] if len(results) == 1 else results

    @with_cached_allocations
    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
            epochs: int = 1, verbose: Any = 1, callbacks: Optional[Sequence[Any]] = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: Any = True,
            class_weight: Optional[Dict[int, float]] = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: Optional[int] = None,
            validation_steps: Optional[int] = None, validation_batch_size: Optional[int] = None,
            validation_freq: Any = 1, max_queue_size: int = 10, workers: int = 1,
            use_multiprocessing: bool = False) -> callbacks_module.History:
        """Train for ``epochs`` epochs on arrays (Keras 2.4's ``fit``).

        Parameters
        ----------
        x : array, or list/dict of arrays for several inputs
            Converted once to the input dtype (float32).
        y : array
            Targets: integer labels for ``sparse_categorical_crossentropy``,
            one-hot rows for ``categorical_crossentropy``, ...
        batch_size : int, default 32
            Each epoch has ``ceil(n / batch_size)`` steps; the last batch may
            be smaller.
        epochs : int, default 1
            Index of the last epoch: training runs epochs ``initial_epoch``
            to ``epochs - 1``.
        verbose : 0, 1, 2 or 'auto'
            1: progress bar (``Epoch i/n`` lines when ``epochs > 1``), 2: one
            line per epoch, 0: silent. See :mod:`fastconv.callbacks` for how
            the bar is written to terminals and to files/pipes.
        callbacks : list of Callback
            A :class:`~fastconv.callbacks.History` (returned) and the progress
            bar are added.
        validation_split : float in [0, 1)
            Hold out the *last* fraction of ``x``/``y`` (taken before
            shuffling) and evaluate on it after every epoch.
        validation_data : (x_val, y_val) or (x_val, y_val, sample_weight_val)
            Overrides ``validation_split``.
        shuffle : bool or 'batch', default True
            Reshuffle the samples before each epoch (with the generator
            :func:`fastconv.backend.set_random_seed` seeds); ``'batch'``
            shuffles within each batch only.
        class_weight : dict, optional
            ``{class index: weight}``, turned into per-sample weights of the
            training data.
        sample_weight : array of shape (n,), optional
            Weights of the training samples in the loss (and in
            ``weighted_metrics``).
        initial_epoch : int, default 0
        validation_steps : int, optional
            Limit the validation pass to that many batches.
        validation_batch_size : int, optional
            Defaults to ``batch_size``.
        validation_freq : int or list of int, default 1
            Validate every that many epochs, or on the listed 1-based epochs.
        steps_per_epoch : None
            Only ``None`` (whole epochs over the arrays) is supported.
        max_queue_size, workers, use_multiprocessing
            Accepted and ignored (arrays need no input pipeline).

        Returns
        -------
        History
            ``history.history`` maps ``loss``, each metric, and with
            validation ``val_loss`` and ``val_<metric>`` to one value per
            epoch: the epoch's running means, as the progress bar shows them.

        Notes
        -----
        Setting ``model.stop_training = True`` (from a callback) ends
        training after the current batch. If training is interrupted (Ctrl-C
        or an exception from a callback), the model keeps the weights and
        optimizer state of the last whole step and stays usable; ``fit`` can
        be called again.
        """
        compiled = self._require_compiled()
        batch_size = 32 if batch_size is None else _training.check_positive_int(
            batch_size, "batch_size")
        epochs = _training.check_positive_int(epochs, "epochs", allow_zero=True)
        initial_epoch = _training.check_positive_int(initial_epoch, "initial_epoch",
                                                     allow_zero=True)
        verbose = _training.check_verbose(verbose)
        if steps_per_epoch is not None:
            raise NotImplementedError("`steps_per_epoch` is not supported: fastconv's fit "
                                      "trains on arrays by whole epochs; pass None")
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"`shuffle` must be True, False or 'batch', got {shuffle!r}")
        if validation_steps is not None:
            validation_steps = _training.check_positive_int(validation_steps, "validation_steps")
        validation_batch_size = batch_size if validation_batch_size is None else \
            _training.check_positive_int(validation_batch_size, "validation_batch_size")
        _training.should_validate(0, validation_freq)  # checks its type

        self._build_for_data(x)
        self._require_single_output("fit")
        xs, y, weights, n = self._prepare_xy(x, y, sample_weight, ("x", "y", "sample_weight"))
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or \
                    len(validation_data) not in (2, 3):
                raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, "
                                 f"y_val, val_sample_weight), got {type(validation_data).__name__}"
                                 + (f" of length {len(validation_data)}"
                                    if isinstance(validation_data, (tuple, list)) else ""))
            val_weights = validation_data[2] if len(validation_data) == 3 else None
            val_x, val_y, val_w, _ = self._prepare_xy(
                validation_data[0], validation_data[1], val_weights,
                ("validation_data[0]", "validation_data[1]", "validation_data[2]"))
            self._check_targets(val_y, "validation_data[1]")
            validation = (val_x, val_y, val_w)
        elif validation_split:
            split_at = _training.split_last(n, validation_split)
            validation = ([a[split_at:] for a in xs], y[split_at:],
                          None if weights is None else weights[split_at:])
            xs, y = [a[:split_at] for a in xs], y[:split_at]
            weights = None if weights is None else weights[:split_at]
            n = split_at
        if class_weight is not None:
            weights = _training.class_weight_to_sample_weight(
                class_weight, y, shape_tuple(self._outputs[0].shape)[-1], weights)
        self._check_targets(y, "y")
        if not shuffle:
            xs = [np.ascontiguousarray(a) for a in xs]  # batches are views, copied never

        fused = self._fused_output_activation()
        slices = _training.batch_slices(n, batch_size)
        hooks = callbacks_module.CallbackList(callbacks, add_history=True,
                                              add_progbar=verbose != 0, model=self,
                                              verbose=verbose, epochs=epochs,
                                              steps=len(slices))
        self._accumulate_batch_metrics = False
        self.stop_training = False
        rng = backend.global_rng()
        training_logs: Optional[Dict[str, float]] = None
        hooks.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                hooks.on_epoch_begin(epoch)
                order = None
                if shuffle is True:
                    order = rng.permutation(n)
                elif shuffle == "batch":
                    order = np.concatenate([rng.permutation(np.arange(b.start, b.stop))
                                            for b in slices])
                logs: Dict[str, float] = {}
                for step, batch in enumerate(slices):
                    hooks.on_train_batch_begin(step)
                    if order is None:
                        batch_x, batch_y = [a[batch] for a in xs], y[batch]
                        batch_w = None if weights is None else weights[batch]
                    else:
                        index = order[batch]
                        batch_x, batch_y = [a[index] for a in xs], y[index]
                        batch_w = None if weights is None else weights[index]
                    logs = self._train_step(compiled, batch_x, batch_y, batch_w, fused)
                    hooks.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                epoch_logs = dict(logs)
                if validation is not None and _training.should_validate(epoch, validation_freq):
                    val_logs = self._test_loop(compiled, *validation, validation_batch_size,
                                               validation_steps, hooks)
                    epoch_logs.update({"val_" + key: value for key, value in val_logs.items()})
                hooks.on_epoch_end(epoch, epoch_logs)
                training_logs = epoch_logs
                if self.stop_training:
                    break
        except BaseException:
            self._tape = None  # free the activations of an unfinished step
            raise
        hooks.on_train_end(training_logs)
        return hooks.history

    @with_cached_allocations
    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Any = 1, sample_weight: Any = None, steps: Optional[int] = None,
                 callbacks: Optional[Sequence[Any]] = None, max_queue_size: int = 10,
                 workers: int = 1, use_multiprocessing: bool = False,
                 return_dict: bool = False) -> Any:
        """Loss and metrics on ``(x, y)`` in batches (Keras 2.4's ``evaluate``).

        Returns
        -------
        float, list of float or dict
            The loss alone when no metric was compiled; else
            ``[loss, *metrics]`` in :attr:`metrics_names` order; the dict
            ``{name: value}`` with ``return_dict=True``. Values are means over
            all samples (batch losses weighted by batch size).

        ``verbose=1`` shows one progress bar; ``steps`` limits the batches.
        """
        compiled = self._require_compiled()
        batch_size = 32 if batch_size is None else _training.check_positive_int(
            batch_size, "batch_size")
        verbose = _training.check_verbose(verbose)
        if steps is not None:
            steps = _training.check_positive_int(steps, "steps")
        self._build_for_data(x)
        self._require_single_output("evaluate")
        xs, y, weights, n = self._prepare_xy(x, y, sample_weight, ("x", "y", "sample_weight"))
        self._check_targets(y, "y")
        hooks = callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=len(_training.batch_slices(n, batch_size, steps)))
        self._accumulate_batch_metrics = False
        logs = self._test_loop(compiled, xs, y, weights, batch_size, steps, hooks)
        return self._format_results(logs, return_dict)

    def _on_batch_data(self, x: Any, y: Any, sample_weight: Any
                       ) -> Tuple[_Compiled, List[np.ndarray], np.ndarray, Optional[np.ndarray]]:
        compiled = self._require_compiled()
        self._build_for_data(x)
        self._require_single_output("train_on_batch")
        xs, y, weights, _ = self._prepare_xy(x, y, sample_weight, ("x", "y", "sample_weight"))
        self._check_targets(y, "y")
        if not self._accumulate_batch_metrics:
            self.reset_metrics()
        return compiled, xs, y, weights

    @with_cached_allocations
    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       class_weight: Optional[Dict[int, float]] = None,
                       reset_metrics: bool = True, return_dict: bool = False) -> Any:
        """One optimizer step on one batch; returns its loss (and metrics).

        Returns what :meth:`evaluate` returns, for this batch. With
        ``reset_metrics=False`` the values accumulate over consecutive
        ``*_on_batch`` calls.
        """
        compiled, xs, y, weights = self._on_batch_data(x, y, sample_weight)
        if class_weight is not None:
            weights = _training.class_weight_to_sample_weight(
                class_weight, y, shape_tuple(self._outputs[0].shape)[-1], weights)
        try:
            logs = self._train_step(compiled, xs, y, weights, self._fused_output_activation())
        except BaseException:
            self._tape = None
            raise
        self._after_batch(reset_metrics)
        return self._format_results(logs, return_dict)

    @with_cached_allocations
    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                      reset_metrics: bool = True, return_dict: bool = False) -> Any:
        """Loss (and metrics) of one batch, without training."""
        compiled, xs, y, weights = self._on_batch_data(x, y, sample_weight)
        outputs, _ = self._run(xs, False, record=False)
        value = compiled.loss(y, outputs[0], weights)[0] * compiled.loss_weight
        self._update_metrics(compiled, value, y, outputs[0], weights)
        logs = self._current_logs(compiled)
        self._after_batch(reset_metrics)
        return self._format_results(logs, return_dict)

    def _after_batch(self, reset_metrics: bool) -> None:
        if reset_metrics:
            self.reset_metrics()
        self._accumulate_batch_metrics = not reset_metrics

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
    # Saving weights

    def _layers_with_weights(self) -> List[Layer]:
        return [layer for layer in self.layers if layer.weights]

    def save_weights(self, filepath: Union[str, os.PathLike], overwrite: bool = True,
                     save_format: Optional[str] = None) -> None:
        """Write all weights to ``filepath`` as an ``.npz`` archive.

        The file is written to a temporary file in the same directory and
        moved into place with ``os.replace``, so readers never see a partial
        file. The archive records layer names, weight names and shapes, which
        :meth:`load_weights` checks. The path is used as given (no extension
        is added); the format is always npz.
        """
        self._require_built()
        if save_format not in (None, "npz"):
            raise ValueError(f"fastconv saves weights only as npz, got save_format="
                             f"{save_format!r}")
        path = os.fspath(filepath)
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} exists and overwrite=False")
        layers = self._layers_with_weights()
        arrays: Dict[str, np.ndarray] = {}
        meta_layers = []
        for layer in layers:
            entries = []
            for variable in layer.weights:
                key = f"w{len(arrays)}"
                arrays[key] = variable.numpy()
                entries.append({"key": key, "name": variable.name,
                                "shape": list(variable.numpy().shape),
                                "dtype": variable.numpy().dtype.name})
            meta_layers.append({"name": layer.name, "class": type(layer).__name__,
                                "weights": entries})
        meta = {"format": WEIGHTS_FORMAT, "model": self.name, "layers": meta_layers}
        arrays[_META_KEY] = np.array(json.dumps(meta))
        _atomic_savez(path, arrays)

    def load_weights(self, filepath: Union[str, os.PathLike], by_name: bool = False,
                     skip_mismatch: bool = False) -> None:
        """Load weights written by :meth:`save_weights`.

        By default layers with weights are matched in order (Keras'
        topological loading); ``by_name=True`` matches layer names and skips
        layers absent from the file, and ``skip_mismatch=True`` (with
        ``by_name``) also skips layers whose weight count or shapes differ.
        The whole file is read and checked before any weight is assigned: on
        any error (missing/corrupt file, wrong structure, shape mismatch) a
        ``ValueError`` (``FileNotFoundError`` for a missing file) is raised
        and the model's weights are untouched.
        """
        self._require_built()
        if skip_mismatch and not by_name:
            raise ValueError("When calling model.load_weights, skip_mismatch can only be set "
                             "to True when by_name is True.")
        path = os.fspath(filepath)
        saved_layers = _read_weights_file(path)
        plan: List[Tuple[Variable, np.ndarray]] = []
        layers = self._layers_with_weights()
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

    def __repr__(self) -> str:
        return f"<fastconv.models.{type(self).__name__} name={self.name!r}>"


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
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                    suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
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
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise


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


class Sequential(Model):
    """A linear stack of layers, as ``tf.keras.Sequential``.

    Parameters
    ----------
    layers : list of Layer, optional
        Added in order with :meth:`add`. The first may carry
        ``input_shape=``, which builds the model at once (its input is named
        ``<first layer>_input``); otherwise the model is built by
        :meth:`build`, by the first call on data, or by :meth:`predict`.
    name : str, optional
        Default ``sequential``, ``sequential_1``, ...

    :attr:`layers` excludes the InputLayer, as in Keras.
    """

    def __init__(self, layers: Optional[Sequence[Any]] = None, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"Keyword argument not understood: {next(iter(kwargs))}")
        self._init_common(name, True)
        self._stack: List[Layer] = []
        self._input_tensor: Optional[KerasTensor] = None
        self._stack_outputs: List[KerasTensor] = []
        # True when the user gave the Input (it survives popping every layer).
        self._explicit_input = False
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> List[Layer]:
        """The added layers, without the InputLayer."""
        return list(self._stack)

    def add(self, layer: Any) -> None:
        """Append a layer (or start with an ``Input`` tensor / ``InputLayer``).

        When the model already has an input, the layer is called at once, so
        shape errors surface here and the layer is not added.
        """
        if isinstance(layer, KerasTensor):
            if not layer.node.is_input:
                raise TypeError("Sequential.add accepts Input() tensors, not intermediate "
                                "symbolic tensors")
            layer = layer.node.layer
        if isinstance(layer, Model):
            raise NotImplementedError("fastconv cannot nest a model inside a Sequential")
        if not isinstance(layer, Layer):
            raise TypeError(f"The added layer must be an instance of class Layer. Found: {layer}")
        if isinstance(layer, InputLayer):
            if self._stack or self._input_tensor is not None:
                raise ValueError("An InputLayer can only be the first layer of a Sequential "
                                 "model")
            self._input_tensor = layer._inbound_nodes[0].output
            self._explicit_input = True
            self._tape = None
            return
        if any(existing.name == layer.name for existing in self._stack):
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name \"{layer.name}\" is already the name of a layer in this "
                             "model. Update the `name` argument to pass a unique name.")
        created_input = False
        if self._input_tensor is None and not self._stack and \
                layer._batch_input_shape is not None:
            self._input_tensor = Input(batch_shape=layer._batch_input_shape, dtype=layer.dtype,
                                       name=f"{layer.name}_input")
            created_input = True
        if self._input_tensor is not None:
            previous = self._stack_outputs[-1] if self._stack_outputs else self._input_tensor
            try:
                output = layer(previous)
            except Exception:
                if created_input:
                    self._input_tensor = None
                raise
            self._stack.append(layer)
            self._stack_outputs.append(output)
            self._init_graph(self._input_tensor, output)
        else:
            self._stack.append(layer)

    def pop(self) -> None:
        """Remove the last layer."""
        if not self._stack:
            raise TypeError("There are no layers in the model.")
        self._stack.pop()
        self._tape = None
        if self._stack_outputs:
            self._stack_outputs.pop()
        if not self._stack:
            if not self._explicit_input:
                self._input_tensor = None
            self._graph = None
            self._stack_outputs = []
        elif self._stack_outputs:
            self._init_graph(self._input_tensor, self._stack_outputs[-1])

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build for ``input_shape`` (including the batch dim, e.g. ``(None, 28, 28, 1)``)."""
        if self.built:
            return
        if input_shape is None:
            if self._input_tensor is None:
                raise ValueError("You must provide an `input_shape` argument.")
            input_shape = shape_tuple(self._input_tensor.shape)
        if not self._stack:
            raise ValueError(f"Sequential model {self.name} has no layers to build")
        self._build_graph(tuple(input_shape))

    def _build_graph(self, batch_shape: Tuple[Optional[int], ...]) -> None:
        first = self._stack[0]
        keep_input = self._input_tensor is not None
        input_tensor = self._input_tensor if keep_input else Input(
            batch_shape=batch_shape, dtype=first.dtype, name=f"{first.name}_input")
        outputs = []
        tensor = input_tensor
        for layer in self._stack:
            tensor = layer(tensor)
            outputs.append(tensor)
        self._input_tensor = input_tensor
        self._stack_outputs = outputs
        self._init_graph(input_tensor, tensor)

    def _build_for_data(self, inputs: Any) -> None:
        if self.built:
            return
        if not self._stack:
            raise ValueError(f"Sequential model {self.name} has no layers")
        sample = inputs[0] if isinstance(inputs, (list, tuple)) and len(inputs) == 1 else inputs
        shape = np.shape(sample)
        if len(shape) < 1:
            raise ValueError(f"Sequential model {self.name} needs batched input data, got "
                             f"shape {shape}")
        # The batch dim stays unknown, so the model runs on any batch size.
        self._build_graph((None,) + tuple(shape[1:]))
