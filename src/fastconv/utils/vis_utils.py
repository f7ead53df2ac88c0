"""Keras 2.4's ``plot_model`` and ``model_to_dot``: a model's graph drawn with Graphviz.

:func:`model_to_dot` turns a model into a :class:`pydot.Dot`, one record-shaped
node per layer (id ``str(id(layer))``, label ``name: ClassName``, optionally
the dtype and the input/output shapes) and one edge per connection of the
functional graph; :func:`plot_model` writes it to a file whose extension is
the format (``png``, ``svg``, ``pdf``, ... through Graphviz's ``dot``;
``.dot``/``.gv`` as the graph's source, which needs only pydot).

pydot is optional (``pip install 'fastconv[plot]'``) and imported on first
use; the Graphviz programs are needed only to render an image.

What is drawn follows tf.keras 2.4 (``tensorflow/python/keras/utils/vis_utils.py``):

* a functional model: ``model.layers`` (InputLayers included), and for each
  call of a layer that belongs to this model an edge from every layer that
  fed it; a layer called twice gets the edges of both calls, and an edge
  drawn once however many tensors travel along it (``Add()([x, x])``);
* a Sequential model: its InputLayer too (Keras 2.4 draws the layers of the
  underlying functional graph, not ``Sequential.layers``);
* a subclassed model, or a Sequential that is not built yet: one node
  labelled with the model's name and nothing else (Keras 2.4 only draws
  graph networks);
* a model used as a layer: one node ``model: Functional``, or with
  ``expand_nested=True`` a dashed cluster labelled with its name holding
  its own layers (recursively), connected to the outer layers.

Differences from tf.keras 2.4, all where Keras fails or misdraws:

* :func:`model_to_dot` needs pydot only; Keras 2.4 also insisted on the
  Graphviz binary (it renders an empty graph first), and in a notebook
  printed a message and returned ``None`` instead of raising.
* ``.dot``, ``.gv`` and ``.raw`` files are the graph's source as pydot writes
  it, made without Graphviz; Keras 2.4 ran ``dot -Tdot`` for ``.dot`` (the
  same graph with layout coordinates added). The extension is read
  case-insensitively (Keras passed ``PNG`` to Graphviz, which refuses it).
* With ``expand_nested``, an edge into a nested model goes to the InputLayer
  of the matching input and an edge out of it leaves from the layer that
  makes its output; Keras 2.4 used the cluster's first and last node, which
  sends every input of a multi-input nested model to its first InputLayer
  (for one input and one output both agree). A nested model whose first or
  last layer is itself expanded is connected too (Keras 2.4 failed).
* ``rankdir`` is checked (``'TB'``, ``'LR'``, and Graphviz's ``'BT'``,
  ``'RL'``); Keras passed any string on and Graphviz ignored bad ones.
* :func:`plot_model` returns an IPython ``Image`` (``SVG`` for svg) when
  IPython is installed, for the formats IPython can show (png, jpeg, gif,
  svg); Keras 2.4 returned ``Image`` for everything but pdf, which raised
  for svg.
"""
from __future__ import annotations

import contextlib
import errno
import io
import numbers
import os
from typing import Any, Dict, List, Tuple, Union

from .._optional import require
from ..summary import network_node_ids

__all__ = ["model_to_dot", "plot_model"]

# Graphviz's rank directions; Keras documents the first two.
_RANKDIRS = ("TB", "LR", "BT", "RL")
# Extensions written as the graph's source by pydot, without Graphviz.
_SOURCE_FORMATS = ("dot", "gv", "raw")
# What IPython.display.Image can show (and SVG, through IPython.display.SVG).
_IPYTHON_IMAGE_FORMATS = ("png", "jpg", "jpeg", "jpe", "gif")

_GRAPHVIZ_MISSING = (
    "fastconv.utils.plot_model needs the Graphviz program `dot` to write a {fmt!r} file "
    "({path!r}), and it was not found on the PATH. Install Graphviz (Debian/Ubuntu: "
    "`apt-get install graphviz`, macOS: `brew install graphviz`, conda: `conda install "
    "graphviz`, or https://graphviz.org/download/). A '.dot' file (to_file='model.dot') "
    "needs only pydot, and so does fastconv.utils.model_to_dot.")


class _Drawn:
    """One model drawn: its pydot graph and where its inputs and outputs are.

    ``inputs[k]`` is the id of the node an edge into the model's ``k``-th
    input ends at, ``outputs[k]`` the id of the node its ``k``-th output
    leaves from (for an expanded nested model: inside its cluster).
    """

    __slots__ = ("graph", "inputs", "outputs")

    def __init__(self, graph: Any, inputs: List[str], outputs: List[str]) -> None:
        self.graph = graph
        self.inputs = inputs
        self.outputs = outputs


def _check_arguments(model: Any, rankdir: Any, dpi: Any) -> None:
    # Imported here: fastconv.models imports a great deal, and nothing in
    # fastconv.utils should need it at import time.
    from ..models.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"`model` must be a fastconv model (fastconv.models.Model, Sequential "
                        f"or a subclass of Model), got {type(model).__name__}: {model!r}")
    if not isinstance(rankdir, str) or rankdir not in _RANKDIRS:
        raise ValueError(f"`rankdir` must be one of {list(_RANKDIRS)} ('TB': top to bottom, "
                         f"'LR': left to right), got {rankdir!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not dpi > 0:
        raise ValueError(f"`dpi` must be a positive number, got {dpi!r}")


def _drawn_layers(model: Any) -> List[Any]:
    """The layers Keras 2.4 draws: a Sequential's InputLayer included."""
    from ..models.functional import Functional
    from ..models.sequential import Sequential

    if isinstance(model, Sequential):
        # As Keras' super(Sequential, model).layers: the functional graph's.
        return list(Functional.layers.fget(model))
    return list(model.layers)


def _format_shape(shape: Any) -> str:
    # Keras 2.4 prints the shape's str(): '(None, 26, 26, 32)', a list for
    # an InputLayer ('[(None, 28, 28, 1)]') or a layer with several inputs.
    return str(shape)


def _shape_labels(layer: Any) -> Tuple[str, str]:
    """``(input, output)`` as Keras 2.4 labels them: the layer's
    ``input_shape`` / ``output_shape`` (over all its calls), ``'?'`` where
    that is undefined (calls of different shapes)."""
    try:
        output_label = _format_shape(layer.output_shape)
    except (AttributeError, RuntimeError):
        output_label = "?"
    if layer._inbound_nodes and all(node.is_input for node in layer._inbound_nodes):
        # An InputLayer: Keras 2.4's input node lists its tensor as its input
        # too (so both read '[(None, 28, 28, 1)]'); fastconv's node has no
        # inbound tensors, whose shapes would print as '[]'.
        return output_label, output_label
    try:
        input_label = _format_shape(layer.input_shape)
    except (AttributeError, RuntimeError):
        input_label = "?"
    return input_label, output_label


def _layer_label(layer: Any, show_shapes: bool, show_dtype: bool,
                 show_layer_names: bool) -> str:
    class_name = type(layer).__name__
    label = f"{layer.name}: {class_name}" if show_layer_names else class_name
    if show_dtype:
        dtype = getattr(layer, "dtype", None)
        label = f"{label}|{'?' if dtype is None else dtype}"
    if show_shapes:
        inputs, outputs = _shape_labels(layer)
        # A Graphviz record: the label, then a two-row table of shapes.
        label = f"{label}\n|{{input:|output:}}|{{{{{inputs}}}|{{{outputs}}}}}"
    return label


def _add_edge(graph: Any, pydot: Any, src: str, dst: str) -> None:
    # One edge per pair of nodes, as Keras (Add()([x, x]) is one arrow).
    if not graph.get_edge(src, dst):
        graph.add_edge(pydot.Edge(src, dst))


def _draw(model: Any, pydot: Any, show_shapes: bool, show_dtype: bool,
          show_layer_names: bool, rankdir: str, expand_nested: bool, dpi: Any,
          subgraph: bool) -> _Drawn:
    from ..models.functional import Functional

    if subgraph:
        graph = pydot.Cluster(style="dashed", graph_name=model.name)
        graph.set("label", model.name)
        graph.set("labeljust", "l")
    else:
        graph = pydot.Dot()
        graph.set("rankdir", rankdir)
        graph.set("concentrate", True)
        graph.set("dpi", dpi)
        graph.set_node_defaults(shape="record")

    if not model._is_graph_network or not model.built:
        # Keras 2.4 draws only graph networks: a subclassed model (and an
        # unbuilt Sequential, which Keras does not count as one yet) is a
        # single node with its name.
        node_id = str(id(model))
        graph.add_node(pydot.Node(node_id, label=model.name))
        return _Drawn(graph, [node_id], [node_id])

    layers = _drawn_layers(model)
    nested: Dict[int, _Drawn] = {}
    for layer in layers:
        # Keras expands Functional models (Sequential included), never
        # subclassed ones, which stay one node.
        if expand_nested and isinstance(layer, Functional) and layer.built:
            drawn = _draw(layer, pydot, show_shapes, show_dtype, show_layer_names, rankdir,
                          expand_nested, dpi, subgraph=True)
            nested[id(layer)] = drawn
            graph.add_subgraph(drawn.graph)
        else:
            graph.add_node(pydot.Node(str(id(layer)), label=_layer_label(
                layer, show_shapes, show_dtype, show_layer_names)))

    def entry(layer: Any, position: int) -> str:
        drawn = nested.get(id(layer))
        return str(id(layer)) if drawn is None else drawn.inputs[position]

    def exit_(layer: Any, tensor_index: int) -> str:
        drawn = nested.get(id(layer))
        return str(id(layer)) if drawn is None else drawn.outputs[tensor_index]

    own_node_ids = network_node_ids(model)   # the calls summary() lists
    for layer in layers:
        for node in layer._inbound_nodes:
            if id(node) not in own_node_ids:
                continue
            for position, (inbound_layer, _, tensor_index, _) in enumerate(
                    node.iterate_inbound()):
                # A layer with several inputs takes them all as one list, so
                # the position is the nested model's input index.
                _add_edge(graph, pydot, exit_(inbound_layer, tensor_index),
                          entry(layer, position))

    def source_of(tensor: Any) -> str:
        producer, _, tensor_index = tensor._keras_history
        return exit_(producer, tensor_index)

    return _Drawn(graph, [source_of(t) for t in model.inputs],
                  [source_of(t) for t in model.outputs])


def model_to_dot(model: Any, show_shapes: bool = False, show_dtype: bool = False,
                 show_layer_names: bool = True, rankdir: str = "TB",
                 expand_nested: bool = False, dpi: Union[int, float] = 96,
                 subgraph: bool = False) -> Any:
    """The model's graph as a :class:`pydot.Dot`, as ``tf.keras.utils.model_to_dot`` (2.4).

    Parameters
    ----------
    model : fastconv.models.Model
        A functional, Sequential or subclassed model (see the module
        docstring for what each draws).
    show_shapes : bool
        Make each label a record with the layer's input and output shapes
        (``input_shape`` / ``output_shape`` as Keras prints them:
        ``(None, 26, 26, 32)``, ``[(None, 28, 28, 1)]`` for an InputLayer,
        a list for several inputs, ``?`` when a shared layer's calls differ).
    show_dtype : bool
        Add the layer's dtype (``float32``) to its label.
    show_layer_names : bool
        Label nodes ``name: ClassName``; without, ``ClassName``.
    rankdir : {'TB', 'LR', 'BT', 'RL'}
        Graphviz's direction: ``'TB'`` vertical, ``'LR'`` horizontal.
    expand_nested : bool
        Draw each nested functional or Sequential model as a dashed cluster
        of its own layers instead of one node.
    dpi : positive number
        The image resolution Graphviz renders at.
    subgraph : bool
        Return a :class:`pydot.Cluster` (what ``expand_nested`` nests)
        instead of a :class:`pydot.Dot`.

    Returns
    -------
    pydot.Dot or pydot.Cluster
        Nodes are named ``str(id(layer))`` (``str(id(model))`` for the one
        node of a subclassed model), as in Keras.

    Raises
    ------
    ImportError
        Without pydot (``pip install 'fastconv[plot]'``). Graphviz itself is
        not needed here.
    TypeError
        If ``model`` is not a fastconv model.
    ValueError
        For a ``rankdir`` or ``dpi`` out of range.
    """
    _check_arguments(model, rankdir, dpi)
    pydot = require("pydot", "plot", "fastconv.utils.model_to_dot")
    return _draw(model, pydot, bool(show_shapes), bool(show_dtype), bool(show_layer_names),
                 rankdir, bool(expand_nested), dpi, bool(subgraph)).graph


def _render(dot: Any, fmt: str, path: str) -> bytes:
    """``dot`` rendered by Graphviz, with errors that say what to do."""
    captured = io.StringIO()
    try:
        # pydot prints Graphviz's stderr before failing an assert; keep it
        # for the error message instead.
        with contextlib.redirect_stdout(captured):
            return dot.create(format=fmt)
    except OSError as exc:
        if exc.errno == errno.ENOENT or isinstance(exc, FileNotFoundError):
            # ImportError, as Keras 2.4 raises for a missing Graphviz (code
            # that catches it to skip plotting keeps working).
            raise ImportError(_GRAPHVIZ_MISSING.format(fmt=fmt, path=path)) from exc
        raise
    except AssertionError as exc:
        details = captured.getvalue().strip()
        if "not recognized" in details:
            raise ValueError(f"`to_file` {path!r}: Graphviz has no output format {fmt!r} "
                             f"(the file's extension). {details}") from exc
        raise RuntimeError(f"Graphviz failed to write {path!r} as {fmt!r}: "
                           f"{details or exc}") from exc


def _notebook_image(path: str, fmt: str) -> Any:
    # Keras returns an IPython image so a notebook cell shows the plot.
    if fmt not in _IPYTHON_IMAGE_FORMATS and fmt != "svg":
        return None
    try:
        from IPython import display
    except ImportError:
        return None
    if fmt == "svg":
        return display.SVG(filename=path)
    # The format given, not guessed from the name (which may have no extension).
    return display.Image(filename=path, format="jpeg" if fmt in ("jpg", "jpe") else fmt)


def plot_model(model: Any, to_file: Union[str, "os.PathLike[str]"] = "model.png",
               show_shapes: bool = False, show_dtype: bool = False,
               show_layer_names: bool = True, rankdir: str = "TB",
               expand_nested: bool = False, dpi: Union[int, float] = 96) -> Any:
    """Write the model's graph to ``to_file``, as ``tf.keras.utils.plot_model`` (2.4).

    Parameters
    ----------
    model : fastconv.models.Model
    to_file : str or os.PathLike
        The file to write; its extension is the format: any Graphviz output
        format (``png``, ``svg``, ``pdf``, ``jpg``, ...; no extension:
        ``png``), or ``.dot`` / ``.gv`` / ``.raw`` for the graph's DOT
        source, written without Graphviz.
    show_shapes, show_dtype, show_layer_names, rankdir, expand_nested, dpi
        As :func:`model_to_dot`.

    Returns
    -------
    IPython.display.Image, IPython.display.SVG or None
        With IPython installed, the image for a notebook to show (png, jpeg,
        gif, svg); otherwise ``None``.

    Raises
    ------
    ImportError
        Without pydot (``pip install 'fastconv[plot]'``), or without
        Graphviz's ``dot`` for an image format (install Graphviz, e.g.
        ``apt-get install graphviz``; ``.dot`` output works without it).
    ValueError
        For an extension Graphviz has no format for, and as
        :func:`model_to_dot`.
    TypeError
        For a ``to_file`` that is not a path, and as :func:`model_to_dot`.
    RuntimeError
        When Graphviz fails for another reason (its message included).
    """
    if not isinstance(to_file, (str, os.PathLike)):
        raise TypeError(f"`to_file` must be a file path (str or os.PathLike), got "
                        f"{type(to_file).__name__}: {to_file!r}")
    path = os.fspath(to_file)
    if not isinstance(path, str):
        raise TypeError(f"`to_file` must be a text path, got {path!r}")
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir,
                       expand_nested=expand_nested, dpi=dpi)
    extension = os.path.splitext(path)[1][1:].lower()
    fmt = extension or "png"
    if fmt in _SOURCE_FORMATS:
        # The source, with UTF-8 for layer names that are not ASCII.
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot.to_string())
        return None
    # Rendered in full before the file is opened: a failure leaves no file.
    data = _render(dot, fmt, path)
    with open(path, "wb") as f:
        f.write(data)
    return _notebook_image(path, fmt)
