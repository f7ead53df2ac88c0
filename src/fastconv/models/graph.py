"""The functional graph: mapping it, running it forward, and back through its tape.

Calling layers on symbolic tensors records nodes (:class:`~fastconv.layers.Node`,
Keras' functional API). :class:`Graph` walks them back from a model's
outputs once, checks the wiring (cycles, disconnected inputs, duplicate
names), orders the nodes, and then runs them on arrays:

* :meth:`Graph.run` computes the outputs; with ``record=True`` it also returns
  a :class:`Tape`, each layer call's cache in execution order;
* :meth:`Graph.output_gradients` checks the gradients given for the outputs
  and :meth:`Graph.backpropagate` walks the tape backwards, handing each
  layer its output gradient and collecting the weight (and input) gradients;
* :meth:`Graph.output_shapes` and :meth:`Graph.count_macs` follow new input
  shapes through the nodes (a model called on other shapes than its own).

A layer runs through its ``_forward_node`` / ``_backward_node`` hooks
(:class:`~fastconv.layers.Layer`: ``forward`` / ``backward``). A model nested
as a layer overrides them to run its own graph, its tape being the node's
cache, so nesting needs nothing else here. A node's ``training`` (the
``training=`` its layer was called with) overrides the mode of the run.

Activity regularization happens here, because it belongs to a layer call:
after a node whose layer has an ``activity_regularizer``, the run appends
``regularizer(output) / batch_size`` to the ``losses`` list it was given and,
when recording, keeps that output; with ``regularization=True`` the backward
pass adds ``regularizer.gradient(output) / batch_size`` to the gradient
flowing into it. Weight penalties belong to the model (each weight counted
once, however many calls use it).

Nothing here knows about models, training or files:
:class:`fastconv.models.Model` owns a graph and its last tape.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from .. import regularizers as regularizers_module
from ..layers.base import Layer, Node, Variable, activity_penalty
from ..layers.keras_tensor import KerasTensor, shape_tuple
from ..layers.normalization import BatchNormalization
from .inference import relu_kind

__all__ = ["Graph", "Tape", "as_list"]

Shape = Tuple[int, ...]


def as_list(value: Any) -> Tuple[List[Any], bool]:
    """``(items, was_a_list)``: a list or tuple as a list, anything else as ``[value]``."""
    if isinstance(value, (list, tuple)):
        return list(value), True
    return [value], False


def _accumulate(store: Dict[int, np.ndarray], key: int, value: np.ndarray) -> None:
    # Never in place: a gradient array may be shared (Add hands the same one
    # to every input).
    previous = store.get(key)
    store[key] = value if previous is None else previous + value


class Tape:
    """What one recording forward pass keeps for the backward pass.

    Attributes
    ----------
    graph : Graph
        The graph that ran.
    calls : list of (Node, cache)
        Each layer call and the cache its ``forward`` returned, in execution order.
    input_shapes, output_shapes : list of tuple
        Shapes of the arrays the pass started from and ended with.
    activity_outputs : dict
        ``{id(node): output}`` for the calls of layers with an activity regularizer.
    """

    __slots__ = ("graph", "calls", "input_shapes", "output_shapes", "activity_outputs")

    def __init__(self, graph: "Graph", calls: List[Tuple[Node, Any]], input_shapes: List[Shape],
                 output_shapes: List[Shape], activity_outputs: Dict[int, np.ndarray]) -> None:
        self.graph = graph
        self.calls = calls
        self.input_shapes = input_shapes
        self.output_shapes = output_shapes
        self.activity_outputs = activity_outputs


def _map_graph(inputs: List[KerasTensor], outputs: List[KerasTensor]
               ) -> Tuple[Dict[int, List[Node]], List[Layer]]:
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
    return nodes_by_depth, layers


class Graph:
    """The checked, ordered graph from ``inputs`` to ``outputs``.

    Parameters
    ----------
    inputs, outputs : list of KerasTensor
        Inputs from :func:`fastconv.layers.Input`; outputs computed from them.
    owner : str
        The model's name, for error messages.

    Attributes
    ----------
    inputs, outputs : list of KerasTensor
    nodes_by_depth : dict
        ``{depth: [Node, ...]}``, deepest first (Keras' ``_nodes_by_depth``).
    layers : list of Layer
        Topological order, InputLayers included.
    execution : list of Node
        The layer calls in the order :meth:`run` makes them.
    """

    def __init__(self, inputs: List[KerasTensor], outputs: List[KerasTensor],
                 owner: str) -> None:
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
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.owner = owner
        self.nodes_by_depth, self.layers = _map_graph(self.inputs, self.outputs)
        self.execution = [node for nodes in self.nodes_by_depth.values() for node in nodes
                          if not node.is_input]
        self._index_tensors()

    def _index_tensors(self) -> None:
        # How many layer calls read each tensor, to free intermediates in inference.
        self._readers: Dict[int, int] = {}
        for node in self.execution:
            for t in node.inbound:
                self._readers[id(t)] = self._readers.get(id(t), 0) + 1
        self._output_ids = {id(t) for t in self.outputs}
        readers = self._reader_calls()
        self._relu_masks_at_pools = self._find_relu_masks_at_pools(readers)
        self._relus_after_batch_norm = self._find_relus_after_batch_norm(readers)

    def _reader_calls(self) -> Dict[int, List[Node]]:
        """``{id(tensor): [the layer calls that read it]}``."""
        readers: Dict[int, List[Node]] = {}
        for node in self.execution:
            for t in node.inbound:
                readers.setdefault(id(t), []).append(node)
        return readers

    def _find_relu_masks_at_pools(self, readers: Dict[int, List[Node]]) -> Dict[int, str]:
        """The calls whose fused ReLU's derivative their max pooling takes on
        the pooled gradient (``_Pooling.backward_through_relu``), ``{id(call):
        'relu' or 'pooling'}``: a call of a layer with a fused ReLU whose
        output only one pooling that takes_relu_mask reads ('relu': it passes
        back the gradient of its pre-activation), neither being an output or
        having an activity penalty, and that pooling ('pooling'). The seed
        CNN's conv2d_1 skips a pass over its 11 MB output gradient per step
        (batch 64) for one over the pooled 2.8 MB."""
        moved: Dict[int, str] = {}
        for node in self.execution:
            layer = node.layer
            found = readers.get(id(node.output), [])
            if (getattr(layer, "_relu_fused", False) is not True
                    or not hasattr(layer, "backward_pre_activation")
                    or getattr(layer, "_takes_list", False) or len(found) != 1
                    or id(node.output) in self._output_ids
                    or layer.activity_regularizer is not None):
                continue
            pool = found[0]
            takes = getattr(pool.layer, "takes_relu_mask", None)
            if (takes is not None and takes() and len(pool.inbound) == 1
                    and id(pool.output) not in self._output_ids):
                moved[id(node)], moved[id(pool)] = "relu", "pooling"
        return moved

    def _find_relus_after_batch_norm(self, readers: Dict[int, List[Node]]) -> Dict[int, str]:
        """The BatchNormalization calls that apply the ReLU after them in
        their own pass (:func:`fastconv.ops.batch_norm_train`'s
        ``activation='relu'``), ``{id(call): 'batch_norm'}``, and those ReLU
        calls, ``{id(call): 'relu'}``, which pass that output on as theirs: a
        plain ReLU (``Activation('relu')``, ``ReLU()``) that is the batch
        norm's output's only reader, neither call being an output or having
        an activity penalty. Backward nothing changes: the ReLU's derivative
        masks where its output is positive, which is where its input is, and
        the batch norm's needs its input and statistics, not its output.
        ResNet-20 v1 has 10 such pairs (its other ReLUs follow an Add);
        measured (Xeon, batch 32, in-process A/B, medians of 7): training
        0.98x the time at 1 thread, 0.94x at 2."""
        fused: Dict[int, str] = {}
        for node in self.execution:
            layer = node.layer
            found = readers.get(id(node.output), [])
            if (type(layer) is not BatchNormalization or len(found) != 1
                    or id(node.output) in self._output_ids
                    or layer.activity_regularizer is not None):
                continue
            relu = found[0]
            if (relu_kind(relu.layer) == "relu" and len(relu.inbound) == 1
                    and relu.layer.activity_regularizer is None
                    and id(relu.output) not in self._output_ids
                    and np.dtype(relu.layer._dtype) == np.dtype(layer._dtype)):
                fused[id(node)], fused[id(relu)] = "batch_norm", "relu"
        return fused

    # A copy (pickle, deepcopy) has new objects, so new ids: the indexes keyed
    # by id are rebuilt, not copied.
    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        for index in ("_readers", "_output_ids", "_relu_masks_at_pools",
                      "_relus_after_batch_norm"):
            del state[index]
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._index_tensors()

    def is_read_by_layers(self, tensor: KerasTensor) -> bool:
        """Whether some layer call of the graph reads ``tensor`` (an output may be)."""
        return bool(self._readers.get(id(tensor)))

    # ------------------------------------------------------------------
    # Forward

    def run(self, arrays: List[np.ndarray], training: bool, record: bool,
            losses: Optional[List[float]] = None) -> Tuple[List[np.ndarray], Optional[Tape]]:
        """The outputs for one array per input, and the tape when ``record``.

        Without a tape, intermediate arrays are dropped as soon as no later
        layer call reads them. ``losses``, when given, receives the activity
        penalty of every call whose layer has an activity regularizer
        (nested models' calls included).
        """
        values: Dict[int, np.ndarray] = {id(t): a for t, a in zip(self.inputs, arrays)}
        remaining = dict(self._readers)
        calls: List[Tuple[Node, Any]] = []
        activity_outputs: Dict[int, np.ndarray] = {}
        for node in self.execution:
            layer = node.layer
            node_inputs = [values[id(t)] for t in node.inbound]
            node_training = training if node.training is None else node.training
            role = self._relus_after_batch_norm.get(id(node))
            try:
                if role == "batch_norm":
                    y, cache = layer.forward(node_inputs[0], bool(node_training),
                                             activation="relu")
                elif role == "relu":   # its input is the batch norm's output, relu'd
                    y = node_inputs[0]
                    cache = layer._cache_of_relu_output(y)
                else:
                    y, cache = layer._forward_node(
                        node_inputs if layer._takes_list else node_inputs[0], node_training,
                        record, losses)
            except ValueError as exc:
                raise ValueError(f"Layer {layer.name} ({type(layer).__name__}) of model "
                                 f"{self.owner}: {exc}") from exc
            values[id(node.output)] = y
            if layer.activity_regularizer is not None:
                if losses is not None:
                    losses.append(activity_penalty(layer.activity_regularizer, y))
                if record:
                    activity_outputs[id(node)] = y
            if record:
                calls.append((node, cache))
            else:
                for t in node.inbound:
                    remaining[id(t)] -= 1
                    if remaining[id(t)] == 0 and id(t) not in self._output_ids:
                        values.pop(id(t), None)
        outputs = [values[id(t)] for t in self.outputs]
        if not record:
            return outputs, None
        return outputs, Tape(self, calls, [a.shape for a in arrays], [o.shape for o in outputs],
                             activity_outputs)

    # ------------------------------------------------------------------
    # Backward

    def output_gradients(self, tape: Tape, d_outputs: Any, pre_activation: bool
                         ) -> Dict[int, np.ndarray]:
        """Check the gradients given for the outputs; ``{id(output): gradient}``.

        Raises before anything is computed, so a caller can keep the tape
        and retry with corrected gradients.
        """
        several = isinstance(d_outputs, (list, tuple)) and (len(self.outputs) > 1
                                                            or len(d_outputs) == 1)
        given = list(d_outputs) if several else [d_outputs]
        if len(given) != len(self.outputs):
            raise ValueError(f"Model {self.owner} has {len(self.outputs)} output(s) but "
                             f"backward() received {len(given)} gradient(s)")
        tensor_grads: Dict[int, np.ndarray] = {}
        for tensor, grad, shape in zip(self.outputs, given, tape.output_shapes):
            if grad is None:
                continue
            grad = np.asarray(grad, dtype=tensor.dtype.as_numpy_dtype)
            if grad.shape != shape:
                raise ValueError(f"Model {self.owner}: the gradient for output "
                                 f"{tensor.node.layer.name} has shape {grad.shape}, expected "
                                 f"{shape} (the output's shape)")
            _accumulate(tensor_grads, id(tensor), grad)
        if pre_activation:
            for tensor in self.outputs:
                layer = tensor.node.layer
                if not hasattr(layer, "backward_pre_activation"):
                    raise ValueError(f"pre_activation=True needs output layers with an "
                                     f"activation; {layer.name} ({type(layer).__name__}) has none")
                if self.is_read_by_layers(tensor):
                    raise ValueError(f"pre_activation=True is ambiguous: output "
                                     f"{layer.name} is also read by other layers of the model")
        return tensor_grads

    def _gradient_carriers(self, wanted: Optional[Set[int]], input_gradients: bool) -> set:
        """``id`` of every tensor whose value depends on a weight whose id is in
        ``wanted`` (``None``: any weight), or, with ``input_gradients``, on a
        graph input: where gradients must reach."""
        carriers = {id(t) for t in self.inputs} if input_gradients else set()
        for node in self.execution:
            if any(id(t) in carriers for t in node.inbound) or any(
                    wanted is None or id(v) in wanted for v in node.layer.weights):
                carriers.add(id(node.output))
        return carriers

    def gradient_blockers(self, variables: Sequence[Variable]) -> List[Tuple[Layer, str]]:
        """``(layer, why)`` for each layer call that would have to pass gradients of
        ``variables`` back but cannot (:meth:`Layer.input_gradient_error`)."""
        carriers = self._gradient_carriers({id(v) for v in variables}, False)
        blockers = []
        for node in self.execution:
            if any(id(t) in carriers for t in node.inbound):
                why = node.layer.input_gradient_error()
                if why is not None:
                    blockers.append((node.layer, why))
        return blockers

    def backpropagate(self, tape: Tape, tensor_grads: Dict[int, np.ndarray],
                      pre_activation: bool, input_gradients: bool, regularization: bool,
                      wanted: Optional[Set[int]] = None
                      ) -> Tuple[Dict[int, Tuple[Variable, np.ndarray]],
                                 Optional[List[np.ndarray]]]:
        """Walk ``tape`` backwards from :meth:`output_gradients`' result.

        Returns ``({id(variable): (variable, gradient)}, input_grads)``: the
        gradient of every weight the outputs depend on (the sum for a weight
        used by several calls), and with ``input_gradients`` dL/d(input) for
        every graph input (else ``None``). A layer computes an input gradient
        only where one is needed: for an input that depends on a weight of
        ``wanted`` (or on a graph input, with ``input_gradients``).
        ``regularization`` adds the gradients of the activity penalties the
        recorded run reported (in nested graphs too). ``wanted``, the ids of
        the weights whose gradients are needed (``None``: all), lets calls
        that need neither an input gradient nor one of those weights be
        skipped (a frozen base model right after the Input).
        """
        output_nodes = {id(t.node) for t in self.outputs}
        carriers = self._gradient_carriers(wanted, input_gradients)
        weight_grads: Dict[int, Tuple[Variable, np.ndarray]] = {}
        for node, cache in reversed(tape.calls):
            dy = tensor_grads.pop(id(node.output), None)
            layer = node.layer
            fused = pre_activation and id(node) in output_nodes
            if regularization and id(node) in tape.activity_outputs:
                if fused:
                    raise ValueError(f"pre_activation=True cannot add the activity "
                                     f"regularizer's gradient of output layer {layer.name}, "
                                     "which is taken after the activation")
                d_penalty = _activity_gradient(layer, tape.activity_outputs[id(node)])
                dy = d_penalty if dy is None else dy + d_penalty
            if dy is None:
                continue  # nothing downstream depends on this call
            compute_dx = any(id(t) in carriers for t in node.inbound)
            if not compute_dx and wanted is not None and \
                    not any(id(v) in wanted for v in layer.weights):
                continue
            role = self._relu_masks_at_pools.get(id(node))
            if fused or role == "relu":   # (its pooling took the ReLU's mask)
                dx, grads = layer.backward_pre_activation(dy, cache, compute_dx)
                pairs: Sequence[Tuple[Variable, np.ndarray]] = list(zip(layer._variables, grads))
            elif role == "pooling":
                dx, pairs = layer.backward_through_relu(dy, cache, compute_dx)
            else:
                dx, pairs = layer._backward_node(dy, cache, compute_dx, regularization)
            for variable, grad in pairs:
                previous = weight_grads.get(id(variable))
                weight_grads[id(variable)] = (variable, grad if previous is None
                                              else previous[1] + grad)
            if dx is None:
                continue
            for tensor, grad in zip(node.inbound, dx if layer._takes_list else [dx]):
                if tensor.node.is_input and not input_gradients:
                    continue
                _accumulate(tensor_grads, id(tensor), grad)

        if not input_gradients:
            return weight_grads, None
        input_grads = [tensor_grads.get(id(t), np.zeros(shape, dtype=t.dtype.as_numpy_dtype))
                       for t, shape in zip(self.inputs, tape.input_shapes)]
        return weight_grads, input_grads

    # ------------------------------------------------------------------
    # Shapes for other inputs

    def tensor_shapes(self, input_shapes: Sequence[Sequence[Optional[int]]]
                      ) -> Dict[int, Tuple[Optional[int], ...]]:
        """``{id(tensor): shape}`` when the inputs have ``input_shapes``
        (Keras' ``compute_output_shape`` walk over the nodes); a layer that
        cannot take its new input shape raises its ``ValueError``."""
        input_shapes = [shape_tuple(shape) for shape in input_shapes]
        if input_shapes == [shape_tuple(t.shape) for t in self.inputs]:
            shapes = {id(t): shape_tuple(t.shape) for t in self.inputs}
            shapes.update({id(node.output): shape_tuple(node.output.shape)
                           for node in self.execution})
            return shapes
        shapes = {id(t): shape for t, shape in zip(self.inputs, input_shapes)}
        for node in self.execution:
            layer = node.layer
            node_inputs = [shapes[id(t)] for t in node.inbound]
            shapes[id(node.output)] = shape_tuple(layer.compute_output_shape(
                node_inputs if layer._takes_list else node_inputs[0]))
        return shapes

    def output_shapes(self, input_shapes: Sequence[Sequence[Optional[int]]]
                      ) -> List[Tuple[Optional[int], ...]]:
        """The outputs' shapes when the inputs have ``input_shapes``."""
        shapes = self.tensor_shapes(input_shapes)
        return [shapes[id(t)] for t in self.outputs]

    def count_macs(self, input_shapes: Sequence[Sequence[Optional[int]]]) -> Optional[int]:
        """Forward multiply-accumulates per sample for inputs of ``input_shapes``
        (``None`` if some layer's count needs an unknown size)."""
        shapes = self.tensor_shapes(input_shapes)
        total = 0
        for node in self.execution:
            layer = node.layer
            node_inputs = [shapes[id(t)] for t in node.inbound]
            macs = layer.count_macs(node_inputs if layer._takes_list else node_inputs[0],
                                    shapes[id(node.output)])
            if macs is None:
                return None
            total += macs
        return total


def _activity_gradient(layer: Layer, output: np.ndarray) -> np.ndarray:
    """d(activity penalty)/d(output): the regularizer's gradient over the batch size."""
    gradient = regularizers_module.gradient_of(layer.activity_regularizer,
                                               f"the activity of layer {layer.name}")
    grad = np.asarray(gradient(output), dtype=output.dtype)
    return grad / output.dtype.type(max(output.shape[0], 1))
