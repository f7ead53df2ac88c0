"""The functional graph: mapping it, running it forward, and back through its tape.

Calling layers on symbolic tensors records nodes (:class:`~fastconv.layers.Node`,
Keras' functional API). :class:`Graph` walks them back from a model's
outputs once, checks the wiring (cycles, disconnected inputs, duplicate
names), orders the nodes, and then runs them on arrays:

* :meth:`Graph.run` computes the outputs; with ``record=True`` it also returns
  a :class:`Tape`, each layer call's cache in execution order;
* :meth:`Graph.output_gradients` checks the gradients given for the outputs
  and :meth:`Graph.backpropagate` walks the tape backwards, handing each
  layer its output gradient and collecting the weight (and input) gradients.

Nothing here knows about models, training or files:
:class:`fastconv.models.Model` owns a graph and its last tape.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..layers.base import Layer, Node, Variable
from ..layers.keras_tensor import KerasTensor

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
    calls : list of (Node, cache)
        Each layer call and the cache its ``forward`` returned, in execution order.
    input_shapes, output_shapes : list of tuple
        Shapes of the arrays the pass started from and ended with.
    """

    __slots__ = ("calls", "input_shapes", "output_shapes")

    def __init__(self, calls: List[Tuple[Node, Any]], input_shapes: List[Shape],
                 output_shapes: List[Shape]) -> None:
        self.calls = calls
        self.input_shapes = input_shapes
        self.output_shapes = output_shapes


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
        # How many layer calls read each tensor, to free intermediates in inference.
        self._readers: Dict[int, int] = {}
        for node in self.execution:
            for t in node.inbound:
                self._readers[id(t)] = self._readers.get(id(t), 0) + 1
        self._output_ids = {id(t) for t in self.outputs}

    def is_read_by_layers(self, tensor: KerasTensor) -> bool:
        """Whether some layer call of the graph reads ``tensor`` (an output may be)."""
        return bool(self._readers.get(id(tensor)))

    # ------------------------------------------------------------------
    # Forward

    def run(self, arrays: List[np.ndarray], training: bool, record: bool
            ) -> Tuple[List[np.ndarray], Optional[Tape]]:
        """The outputs for one array per input, and the tape when ``record``.

        Without a tape, intermediate arrays are dropped as soon as no later
        layer call reads them.
        """
        values: Dict[int, np.ndarray] = {id(t): a for t, a in zip(self.inputs, arrays)}
        remaining = dict(self._readers)
        calls: List[Tuple[Node, Any]] = []
        for node in self.execution:
            layer = node.layer
            node_inputs = [values[id(t)] for t in node.inbound]
            try:
                y, cache = layer.forward(node_inputs if layer._takes_list else node_inputs[0],
                                         training)
            except ValueError as exc:
                raise ValueError(f"Layer {layer.name} ({type(layer).__name__}) of model "
                                 f"{self.owner}: {exc}") from exc
            values[id(node.output)] = y
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
        return outputs, Tape(calls, [a.shape for a in arrays], [o.shape for o in outputs])

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

    def _gradient_carriers(self, variables: Sequence[Variable], input_gradients: bool
                           ) -> set:
        """``id`` of every tensor whose value depends on a weight of ``variables``
        (or, with ``input_gradients``, on a model input): where gradients must reach."""
        wanted = {id(v) for v in variables}
        carriers = {id(t) for t in self.inputs} if input_gradients else set()
        for node in self.execution:
            if any(id(t) in carriers for t in node.inbound) or any(
                    id(v) in wanted for v in node.layer._variables):
                carriers.add(id(node.output))
        return carriers

    def gradient_blockers(self, variables: Sequence[Variable]) -> List[Tuple[Layer, str]]:
        """``(layer, why)`` for each layer call that would have to pass gradients of
        ``variables`` back but cannot (:meth:`Layer.input_gradient_error`)."""
        carriers = self._gradient_carriers(variables, False)
        blockers = []
        for node in self.execution:
            if any(id(t) in carriers for t in node.inbound):
                why = node.layer.input_gradient_error()
                if why is not None:
                    blockers.append((node.layer, why))
        return blockers

    def backpropagate(self, tape: Tape, tensor_grads: Dict[int, np.ndarray],
                      variables: Sequence[Variable], pre_activation: bool,
                      input_gradients: bool) -> Any:
        """Walk ``tape`` backwards from :meth:`output_gradients`' result.

        Returns gradients aligned with ``variables`` (zeros for a weight the
        outputs do not depend on; the sum for a weight used by several
        calls); with ``input_gradients`` the pair ``(weight_grads,
        input_grads)``. A layer computes an input gradient only
        where one is needed: for an input that depends on a weight of
        ``variables`` (or on a model input, with ``input_gradients``).
        """
        output_nodes = {id(t.node) for t in self.outputs}
        carriers = self._gradient_carriers(variables, input_gradients)
        weight_grads: Dict[int, np.ndarray] = {}
        for node, cache in reversed(tape.calls):
            dy = tensor_grads.pop(id(node.output), None)
            if dy is None:
                continue  # nothing downstream depends on this call
            layer = node.layer
            compute_dx = any(id(t) in carriers for t in node.inbound)
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

        result = [weight_grads.get(id(v), np.zeros_like(v.numpy())) for v in variables]
        if not input_gradients:
            return result
        input_grads = [tensor_grads.get(id(t), np.zeros(shape, dtype=t.dtype.as_numpy_dtype))
                       for t, shape in zip(self.inputs, tape.input_shapes)]
        return result, input_grads
