"""``Model.summary()``: TF 2.4's text layout, plus an optional MACs column.

The table is byte-for-byte what TF 2.4's ``print_summary`` prints: 65
columns and positions ``[.45, .85, 1.]`` for sequential-like models, 98
columns and ``[.33, .55, .67, 1.]`` with a ``Connected to`` column for
graphs; every field is cut hard at its column end (no wrapping, so
``max_pooling2d_1 (MaxPooling2``), and every row is padded with spaces to
the full width.

``show_macs=True`` adds a ``MACs`` column and a total line. What is counted:
multiply-accumulate operations of the forward pass for **one sample**
(batch size 1), summed over the layer's calls in the model:

* Conv2D: ``out_h * out_w * filters * kh * kw * in_channels``; Conv1D alike;
  grouped: divided by ``groups``; DepthwiseConv2D, SeparableConv2D and
  Conv2DTranspose: see their ``count_macs``;
* Dense: ``in_features * units`` (times the positions for rank > 2 input);
* everything else (pooling, flatten, activations, merges, inputs): 0 --
  comparisons, additions and copies are not multiply-adds, and neither are
  bias additions or activations inside Conv2D/Dense.

One MAC is two FLOPs. ``?`` marks a layer whose spatial size is unknown.

Nested and subclassed models follow TF 2.4's rules too. A model used as a
layer is one row: its class name (``Functional``, ``Sequential`` or the
subclass), its own output shape and its parameter count. A subclassed
model's table is laid out as a sequence of the layers it tracks, each
shown with ``multiple`` as its output shape (TF 2.4 runs ``call`` without
recording layer calls, so its layers have no shapes of their own; fastconv's
traces are not counted either), and ``0 (unused)`` as the parameters of a
layer that ``call`` never built.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Set

__all__ = ["print_summary", "summary_lines", "is_sequential_like", "MACS_COLUMN_WIDTH",
           "NOT_BUILT_MESSAGE", "SummarizedModel"]

# Width of the optional MACs column ("12,460,032" needs 10, plus breathing room).
MACS_COLUMN_WIDTH = 15

# TF 2.4's summary() raises this for a model without a graph yet; fastconv's
# models raise it from every method that needs one.
NOT_BUILT_MESSAGE = ("This model has not yet been built. Build the model first by calling "
                     "`build()` or calling `fit()` with some data, or specify an `input_shape` "
                     "argument in the first layer(s) for automatic build.")


class SummarizedModel(Protocol):
    """What the summary reads from a model (:class:`fastconv.models.Model` has it).

    The layers and nodes are :class:`fastconv.layers.Layer` and
    :class:`fastconv.layers.Node`: the table reads a layer's ``name``,
    ``output_shape``, ``count_params()``, ``count_macs(...)`` and
    ``_inbound_nodes``, and a node's ``inbound``, ``is_input``,
    ``iterate_inbound()`` and shapes. This module imports neither models nor
    layers, so both may use it.
    """

    @property
    def name(self) -> str: ...

    @property
    def built(self) -> bool: ...

    @property
    def layers(self) -> List[Any]: ...

    @property
    def _nodes_by_depth(self) -> Dict[int, List[Any]]: ...

    @property
    def trainable_weights(self) -> List[Any]: ...

    @property
    def non_trainable_weights(self) -> List[Any]: ...

    # False for a subclassed model, whose ``_traced_node_ids`` are the layer
    # calls its traces recorded.
    _is_graph_network: bool
    _traced_node_ids: set


def network_node_ids(model: SummarizedModel) -> Set[int]:
    """``id``s of the layer calls (nodes) that belong to ``model``'s graph: a
    layer may also be called in other models, whose calls are not drawn or
    listed here."""
    return {id(node) for nodes in model._nodes_by_depth.values() for node in nodes}


def is_sequential_like(model: SummarizedModel) -> bool:
    """TF 2.4's test: a Sequential, a subclassed model, or a graph with one
    single-input node per depth and no layer called twice."""
    # By class name, as TF 2.4 does (and without importing the models).
    if type(model).__name__ == "Sequential" or not model._is_graph_network:
        return True
    nodes = []
    for depth_nodes in model._nodes_by_depth.values():
        if len(depth_nodes) > 1 or (len(depth_nodes) == 1 and
                                    len(depth_nodes[0].inbound) > 1):
            return False
        nodes.extend(depth_nodes)
    node_ids = {id(node) for node in nodes}
    for layer in model.layers:
        if sum(1 for node in layer._inbound_nodes if id(node) in node_ids) > 1:
            return False
    return True


def _format_row(fields: Sequence[object], positions: Sequence[int]) -> str:
    line = ""
    for i, field in enumerate(fields):
        if i > 0:
            # The previous column's last character always becomes a space.
            line = line[:-1] + " "
        line += str(field)
        line = line[:positions[i]]
        line += " " * (positions[i] - len(line))
    return line


def _output_shape(layer, hidden_node_ids) -> object:
    """TF 2.4's column: ``layer.output_shape``, ``multiple`` when the layer
    has no single one (``AttributeError``), ``?`` on ``RuntimeError``. The
    calls in ``hidden_node_ids`` (a subclassed model's traces) are not
    counted: a graph network's shape is its own, other layers' come from
    their other calls."""
    if hidden_node_ids and not getattr(layer, "_is_graph_network", False):
        shapes = [node.output_shapes for node in layer._inbound_nodes
                  if id(node) not in hidden_node_ids]
        return shapes[0] if shapes and all(s == shapes[0] for s in shapes) else "multiple"
    try:
        return layer.output_shape
    except AttributeError:
        return "multiple"
    except RuntimeError:
        return "?"


def _layer_macs(layer, own_node_ids) -> Optional[int]:
    total = 0
    for node in layer._inbound_nodes:
        if id(node) not in own_node_ids or node.is_input:
            continue
        macs = layer.count_macs(node.input_shapes, node.output_shapes)
        if macs is None:
            return None
        total += macs
    return total


def summary_lines(model: SummarizedModel, line_length: Optional[int] = None,
                  positions: Optional[Sequence[float]] = None,
                  show_macs: bool = False) -> List[str]:
    """The summary as a list of lines (no newlines).

    Parameters
    ----------
    model : SummarizedModel
    line_length : int, optional
        Total width; default 65 (sequential-like) or 98 (graph).
    positions : sequence of float, optional
        Column ends, as fractions of ``line_length`` (if the last is <= 1) or
        absolute. With ``show_macs`` give one more position (for MACs, after
        ``Param #``).
    show_macs : bool
        Add the MACs column and total (see the module docstring).
    """
    if not model.built:
        raise ValueError(NOT_BUILT_MESSAGE)
    sequential_like = is_sequential_like(model)
    if sequential_like:
        line_length = line_length or 65
        default_positions: List[float] = [.45, .85, 1.]
        headers = ["Layer (type)", "Output Shape", "Param #"]
    else:
        line_length = line_length or 98
        default_positions = [.33, .55, .67, 1.]
        headers = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    if show_macs:
        headers.insert(3, "MACs")

    if positions is None:
        ends = [int(line_length * p) for p in default_positions]
        if show_macs:
            # The MACs column goes after "Param #"; later columns move right.
            macs_end = ends[2] + MACS_COLUMN_WIDTH
            ends = ends[:3] + [macs_end] + [e + MACS_COLUMN_WIDTH for e in ends[3:]]
            line_length += MACS_COLUMN_WIDTH
    else:
        positions = list(positions)
        if len(positions) != len(headers):
            raise ValueError(f"`positions` needs {len(headers)} column ends for the columns "
                             f"{headers}, got {len(positions)}: {positions}")
        ends = ([int(line_length * p) for p in positions] if positions[-1] <= 1
                else [int(p) for p in positions])
        # As in Keras, the rules keep line_length even if the columns do not.

    own_node_ids = network_node_ids(model)
    lines = [f'Model: "{model.name}"', "_" * line_length, _format_row(headers, ends),
             "=" * line_length]

    layers = model.layers
    total_macs = 0
    macs_known = True
    hidden_node_ids = model._traced_node_ids
    for i, layer in enumerate(layers):
        # A layer a subclassed model's call never reached has no weights yet.
        params: object = (layer.count_params() if layer.built or
                          getattr(layer, "_is_graph_network", False) else "0 (unused)")
        fields: List[object] = [f"{layer.name} ({type(layer).__name__})",
                                _output_shape(layer, hidden_node_ids), params]
        if show_macs:
            macs = _layer_macs(layer, own_node_ids)
            if macs is None:
                macs_known = False
            else:
                total_macs += macs
            fields.append("?" if macs is None else f"{macs:,}")
        connections: List[str] = []
        if not sequential_like:
            for node in layer._inbound_nodes:
                if id(node) not in own_node_ids:
                    continue  # a call outside this model
                for inbound_layer, node_index, tensor_index, _ in node.iterate_inbound():
                    connections.append(f"{inbound_layer.name}[{node_index}][{tensor_index}]")
            fields.append(connections[0] if connections else "")
        lines.append(_format_row(fields, ends))
        for extra in connections[1:]:
            lines.append(_format_row([""] * (len(fields) - 1) + [extra], ends))
        lines.append(("=" if i == len(layers) - 1 else "_") * line_length)

    trainable = _count(model.trainable_weights)
    non_trainable = _count(model.non_trainable_weights)
    lines.append(f"Total params: {trainable + non_trainable:,}")
    lines.append(f"Trainable params: {trainable:,}")
    lines.append(f"Non-trainable params: {non_trainable:,}")
    if show_macs:
        if macs_known:
            lines.append(f"Total MACs per sample: {total_macs:,} "
                         f"({2 * total_macs:,} FLOPs)")
        else:
            lines.append(f"Total MACs per sample: at least {total_macs:,} "
                         "(layers marked ? have unknown sizes)")
    lines.append("_" * line_length)
    return lines


def _count(variables) -> int:
    seen = set()
    total = 0
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            total += int(v.numpy().size)
    return total


def print_summary(model: SummarizedModel, line_length: Optional[int] = None,
                  positions: Optional[Sequence[float]] = None,
                  print_fn: Optional[Callable[[str], object]] = None,
                  show_macs: bool = False) -> None:
    """Print :func:`summary_lines` one line per ``print_fn`` call (default ``print``)."""
    lines = summary_lines(model, line_length, positions, show_macs)
    emit = print if print_fn is None else print_fn
    for line in lines:
        emit(line)
