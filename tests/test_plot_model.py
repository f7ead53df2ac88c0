"""``fastconv.utils.model_to_dot`` / ``plot_model`` (tf.keras 2.4 semantics).

The graphs are read back through pydot: node ids (``str(id(layer))``),
labels (``name: Class``, the record of shapes, the dtype), edges of the
functional graph (shared layers, merges, several outputs, calls made in
other models left out), Sequential's InputLayer, subclassed and unbuilt
models as one node, nested models collapsed or expanded into clusters.
Files: ``.dot`` without Graphviz, images through it (skipped where the
``dot`` program is missing), and the errors for a missing pydot or Graphviz.
"""
from __future__ import annotations

import os
import shutil
import sys

import pytest

from fastconv import backend
from fastconv.layers import Add, Concatenate, Conv2D, Dense, Flatten, Input
from fastconv.models import Model, Sequential
from fastconv.utils.vis_utils import model_to_dot, plot_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# pydot lists graph-wide defaults (``node [shape=record]``) as nodes with these names.
DEFAULT_NAMES = {"node", "edge", "graph"}


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


@pytest.fixture
def pydot():
    return pytest.importorskip("pydot")


@pytest.fixture
def graphviz():
    if shutil.which("dot") is None:
        pytest.skip("the Graphviz program `dot` is not installed (apt-get install graphviz)")


# ----------------------------------------------------------------------
# Reading graphs back


def _unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def node_labels(graph, recursive=True):
    """``{node id: label}``, of subgraphs' nodes too when ``recursive``."""
    labels = {node.get_name(): _unquote(node.get("label")) for node in graph.get_nodes()
              if node.get_name() not in DEFAULT_NAMES}
    if recursive:
        for sub in graph.get_subgraphs():
            labels.update(node_labels(sub))
    return labels


def edges(graph, recursive=True):
    """``[(source id, destination id)]`` in the order they were added."""
    found = [(e.get_source(), e.get_destination()) for e in graph.get_edges()]
    if recursive:
        for sub in graph.get_subgraphs():
            found.extend(edges(sub))
    return found


def nid(layer):
    return str(id(layer))


def seed_cnn():
    inputs = Input(shape=(28, 28, 1), name="image")
    x = Conv2D(32, 3, activation="relu", name="conv")(inputs)
    x = Flatten(name="flat")(x)
    outputs = Dense(10, activation="softmax", name="probs")(x)
    return Model(inputs, outputs, name="cnn")


def residual_model():
    inputs = Input(shape=(8,), name="x")
    left = Dense(4, name="left")(inputs)
    right = Dense(4, name="right")(inputs)
    total = Add(name="sum")([left, right])
    joined = Concatenate(name="join")([total, left])
    return Model(inputs, joined, name="residual")


def dense_block(name, units=4, width=8):
    inputs = Input(shape=(width,), name=f"{name}_in")
    return Model(inputs, Dense(units, name=f"{name}_dense")(inputs), name=name)


# ----------------------------------------------------------------------
# Functional models: nodes, labels, edges


def test_functional_nodes_labels_edges_and_graph_attributes(pydot):
    model = seed_cnn()
    dot = model_to_dot(model)
    assert isinstance(dot, pydot.Dot)
    image, conv, flat, probs = model.layers
    assert node_labels(dot) == {nid(image): "image: InputLayer", nid(conv): "conv: Conv2D",
                                nid(flat): "flat: Flatten", nid(probs): "probs: Dense"}
    assert edges(dot) == [(nid(image), nid(conv)), (nid(conv), nid(flat)),
                          (nid(flat), nid(probs))]
    # Keras 2.4's graph settings.
    assert dot.get("rankdir") == "TB"
    assert dot.get("dpi") == 96
    assert str(dot.get("concentrate")).lower() == "true"
    assert dot.get_node_defaults() == [{"shape": "record"}]


def test_without_layer_names_labels_are_class_names(pydot):
    model = seed_cnn()
    labels = node_labels(model_to_dot(model, show_layer_names=False))
    assert sorted(labels.values()) == ["Conv2D", "Dense", "Flatten", "InputLayer"]


def test_show_shapes_records_print_shapes_as_keras(pydot):
    model = seed_cnn()
    image, conv, flat, probs = model.layers
    labels = node_labels(model_to_dot(model, show_shapes=True))
    # The InputLayer's shapes are one-element lists, as Keras 2.4 prints them.
    assert labels[nid(image)] == ("image: InputLayer\n|{input:|output:}|"
                                  "{{[(None, 28, 28, 1)]}|{[(None, 28, 28, 1)]}}")
    assert labels[nid(conv)] == ("conv: Conv2D\n|{input:|output:}|"
                                 "{{(None, 28, 28, 1)}|{(None, 26, 26, 32)}}")
    assert labels[nid(flat)] == ("flat: Flatten\n|{input:|output:}|"
                                 "{{(None, 26, 26, 32)}|{(None, 21632)}}")
    assert labels[nid(probs)] == "probs: Dense\n|{input:|output:}|{{(None, 21632)}|{(None, 10)}}"


def test_show_dtype_and_shapes_together(pydot):
    model = seed_cnn()
    probs = model.get_layer("probs")
    assert node_labels(model_to_dot(model, show_dtype=True))[nid(probs)] == \
        "probs: Dense|float32"
    assert node_labels(model_to_dot(model, show_dtype=True, show_shapes=True,
                                    show_layer_names=False))[nid(probs)] == \
        "Dense|float32\n|{input:|output:}|{{(None, 21632)}|{(None, 10)}}"


def test_merges_draw_one_edge_per_inbound_layer(pydot):
    model = residual_model()
    x, left, right, total, joined = (model.get_layer(n) for n in
                                     ("x", "left", "right", "sum", "join"))
    dot = model_to_dot(model, show_shapes=True)
    assert sorted(edges(dot)) == sorted([
        (nid(x), nid(left)), (nid(x), nid(right)), (nid(left), nid(total)),
        (nid(right), nid(total)), (nid(total), nid(joined)), (nid(left), nid(joined))])
    # Several inputs: the list of their shapes.
    assert node_labels(dot)[nid(total)] == \
        "sum: Add\n|{input:|output:}|{{[(None, 4), (None, 4)]}|{(None, 4)}}"
    assert node_labels(dot)[nid(joined)].endswith("{{[(None, 4), (None, 4)]}|{(None, 8)}}")


def test_the_same_tensor_twice_is_one_edge(pydot):
    inputs = Input(shape=(3,), name="x")
    model = Model(inputs, Add(name="double")([inputs, inputs]))
    assert edges(model_to_dot(model)) == [(nid(model.get_layer("x")),
                                           nid(model.get_layer("double")))]


def test_shared_layer_gets_the_edges_of_every_call(pydot):
    a, b = Input(shape=(5,), name="a"), Input(shape=(5,), name="b")
    shared = Dense(2, name="shared")
    outputs = Concatenate(name="cat")([shared(a), shared(b)])
    model = Model([a, b], outputs)
    dot = model_to_dot(model, show_shapes=True)
    # One node for the shared layer, reached from both inputs.
    assert list(node_labels(dot)).count(nid(shared)) == 1
    assert sorted(edges(dot)) == sorted([(nid(a_layer), nid(shared)) for a_layer in
                                         (model.get_layer("a"), model.get_layer("b"))]
                                        + [(nid(shared), nid(model.get_layer("cat")))])
    assert node_labels(dot)[nid(shared)].endswith("{{(None, 5)}|{(None, 2)}}")


def test_shared_layer_with_calls_of_different_shapes_shows_question_marks(pydot):
    a, b = Input(shape=(2, 3), name="a"), Input(shape=(4, 5), name="b")
    flatten = Flatten(name="flat")
    model = Model([a, b], [flatten(a), flatten(b)])
    # Keras 2.4: input_shape / output_shape are ill-defined, so '?'.
    assert node_labels(model_to_dot(model, show_shapes=True))[nid(flatten)] == \
        "flat: Flatten\n|{input:|output:}|{{?}|{?}}"


def test_several_outputs(pydot):
    inputs = Input(shape=(6,), name="x")
    trunk = Dense(4, name="trunk")(inputs)
    model = Model(inputs, [Dense(1, name="head_a")(trunk), Dense(3, name="head_b")(trunk)])
    trunk_layer = model.get_layer("trunk")
    found = edges(model_to_dot(model))
    assert (nid(trunk_layer), nid(model.get_layer("head_a"))) in found
    assert (nid(trunk_layer), nid(model.get_layer("head_b"))) in found
    assert len(found) == 3


def test_calls_made_in_other_models_are_not_drawn(pydot):
    shared = Dense(2, name="shared")
    a = Input(shape=(4,), name="a")
    model_a = Model(a, shared(a), name="model_a")
    b = Input(shape=(4,), name="b")
    Model(b, shared(b), name="model_b")  # a second call of `shared`, elsewhere
    dot = model_to_dot(model_a)
    assert edges(dot) == [(nid(model_a.get_layer("a")), nid(shared))]
    assert set(node_labels(dot).values()) == {"a: InputLayer", "shared: Dense"}


# ----------------------------------------------------------------------
# Sequential, subclassed and unbuilt models


def test_sequential_draws_its_input_layer(pydot):
    model = Sequential([Dense(3, input_shape=(5,), name="first"), Dense(2, name="second")])
    dot = model_to_dot(model, show_shapes=True)
    labels = node_labels(dot)
    # Keras 2.4 draws the functional graph's layers: the InputLayer too.
    assert len(labels) == 3
    input_layer = model._input_tensor.node.layer
    assert labels[nid(input_layer)] == ("first_input: InputLayer\n|{input:|output:}|"
                                        "{{[(None, 5)]}|{[(None, 5)]}}")
    first, second = model.layers
    assert edges(dot) == [(nid(input_layer), nid(first)), (nid(first), nid(second))]


def test_sequential_built_later_is_drawn_once_built(pydot):
    model = Sequential([Dense(3, name="first")])
    # Unbuilt, Keras 2.4 counts it as no graph network: one node, its name.
    dot = model_to_dot(model)
    assert node_labels(dot) == {nid(model): model.name}
    model.build((None, 7))
    labels = node_labels(model_to_dot(model))
    assert sorted(labels.values()) == ["first: Dense", "first_input: InputLayer"]


class TwoDense(Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(4, name="hidden")
        self.out = Dense(2, name="out")

    def call(self, x):
        return self.out(self.hidden(x))


def test_subclassed_model_is_one_node_with_its_name(pydot):
    model = TwoDense(name="net")
    model.build((None, 3))
    dot = model_to_dot(model, show_shapes=True, show_dtype=True)
    assert node_labels(dot) == {nid(model): "net"}
    assert edges(dot) == []


def test_subclassed_model_inside_a_functional_model_is_a_layer_node(pydot):
    inputs = Input(shape=(3,), name="x")
    net = TwoDense(name="net")
    model = Model(inputs, net(inputs))
    labels = node_labels(model_to_dot(model, show_shapes=True, expand_nested=True))
    # Never expanded: Keras expands functional models only.
    assert labels[nid(net)] == "net: TwoDense\n|{input:|output:}|{{(None, 3)}|{(None, 2)}}"
    assert len(labels) == 2


# ----------------------------------------------------------------------
# Nested models


def test_nested_model_collapsed_is_one_functional_node(pydot):
    block = dense_block("block")
    inputs = Input(shape=(8,), name="x")
    model = Model(inputs, Dense(1, name="head")(block(inputs)))
    dot = model_to_dot(model, show_shapes=True)
    assert dot.get_subgraphs() == []
    assert node_labels(dot)[nid(block)] == \
        "block: Functional\n|{input:|output:}|{{(None, 8)}|{(None, 4)}}"
    assert edges(dot) == [(nid(model.get_layer("x")), nid(block)),
                          (nid(block), nid(model.get_layer("head")))]


def test_expand_nested_draws_a_cluster_of_the_inner_layers(pydot):
    block = dense_block("block")
    inputs = Input(shape=(8,), name="x")
    model = Model(inputs, Dense(1, name="head")(block(inputs)))
    dot = model_to_dot(model, expand_nested=True)
    (cluster,) = dot.get_subgraphs()
    assert cluster.get_name() == "cluster_block"
    assert _unquote(cluster.get("label")) == "block"
    assert cluster.get("style") == "dashed"
    assert cluster.get("labeljust") == "l"
    inner_input, inner_dense = block.layers
    assert node_labels(cluster) == {nid(inner_input): "block_in: InputLayer",
                                    nid(inner_dense): "block_dense: Dense"}
    # The nested model has no node of its own; edges go into and out of its layers.
    assert nid(block) not in node_labels(dot)
    assert set(node_labels(dot, recursive=False)) == {nid(model.get_layer("x")),
                                                      nid(model.get_layer("head"))}
    assert sorted(edges(dot)) == sorted([
        (nid(model.get_layer("x")), nid(inner_input)), (nid(inner_input), nid(inner_dense)),
        (nid(inner_dense), nid(model.get_layer("head")))])


def test_expand_nested_connects_each_input_of_a_multi_input_model(pydot):
    a, b = Input(shape=(4,), name="in_a"), Input(shape=(4,), name="in_b")
    inner = Model([a, b], Add(name="inner_add")([a, b]), name="pair")
    x, y = Input(shape=(4,), name="x"), Input(shape=(4,), name="y")
    model = Model([x, y], inner([Dense(4, name="dx")(x), Dense(4, name="dy")(y)]))
    found = edges(model_to_dot(model, expand_nested=True))
    # Each outer tensor goes to the InputLayer of the matching inner input.
    assert (nid(model.get_layer("dx")), nid(inner.get_layer("in_a"))) in found
    assert (nid(model.get_layer("dy")), nid(inner.get_layer("in_b"))) in found
    assert (nid(model.get_layer("dy")), nid(inner.get_layer("in_a"))) not in found


def test_expand_nested_two_levels_and_a_nested_sequential(pydot):
    seq = Sequential([Dense(4, input_shape=(8,), name="s1"), Dense(4, name="s2")], name="seq")
    mid_in = Input(shape=(8,), name="mid_in")
    middle = Model(mid_in, Dense(3, name="mid_dense")(seq(mid_in)), name="middle")
    inputs = Input(shape=(8,), name="x")
    model = Model(inputs, Dense(1, name="head")(middle(inputs)))
    dot = model_to_dot(model, expand_nested=True)
    (middle_cluster,) = dot.get_subgraphs()
    (seq_cluster,) = middle_cluster.get_subgraphs()
    assert seq_cluster.get_name() == "cluster_seq"
    seq_input = seq._input_tensor.node.layer
    assert set(node_labels(seq_cluster).values()) == {"s1_input: InputLayer", "s1: Dense",
                                                     "s2: Dense"}
    found = edges(dot)
    assert (nid(mid_in.node.layer), nid(seq_input)) in found
    assert (nid(seq.get_layer("s2")), nid(middle.get_layer("mid_dense"))) in found
    assert (nid(inputs.node.layer), nid(mid_in.node.layer)) in found
    assert (nid(middle.get_layer("mid_dense")), nid(model.get_layer("head"))) in found
    # Every edge joins two drawn nodes.
    drawn = set(node_labels(dot))
    assert all(src in drawn and dst in drawn for src, dst in found)


def test_subgraph_returns_a_cluster(pydot):
    dot = model_to_dot(seed_cnn(), subgraph=True)
    assert isinstance(dot, pydot.Cluster)
    assert dot.get_name() == "cluster_cnn"
    assert len(node_labels(dot)) == 4


# ----------------------------------------------------------------------
# Arguments


def test_rankdir_and_dpi_reach_the_graph(pydot):
    dot = model_to_dot(seed_cnn(), rankdir="LR", dpi=200)
    assert dot.get("rankdir") == "LR"
    assert dot.get("dpi") == 200


@pytest.mark.parametrize("rankdir", ["lr", "XY", "", None, 1])
def test_bad_rankdir_is_a_value_error_naming_it(pydot, rankdir):
    with pytest.raises(ValueError, match=r"`rankdir` must be one of \['TB', 'LR'"):
        model_to_dot(seed_cnn(), rankdir=rankdir)


@pytest.mark.parametrize("dpi", [0, -5, "96", True])
def test_bad_dpi_is_a_value_error_naming_it(pydot, dpi):
    with pytest.raises(ValueError, match="`dpi` must be a positive number"):
        model_to_dot(seed_cnn(), dpi=dpi)


@pytest.mark.parametrize("not_a_model", [Dense(2), "model", None])
def test_not_a_model_is_a_type_error(pydot, not_a_model, tmp_path):
    with pytest.raises(TypeError, match="`model` must be a fastconv model"):
        model_to_dot(not_a_model)
    with pytest.raises(TypeError, match="`model` must be a fastconv model"):
        plot_model(not_a_model, to_file=str(tmp_path / "m.dot"))


def test_to_file_must_be_a_path(pydot):
    with pytest.raises(TypeError, match="`to_file` must be a file path"):
        plot_model(seed_cnn(), to_file=123)


# ----------------------------------------------------------------------
# Files


# pydot 4.0's parser uses pyparsing names that pyparsing 3.3 deprecates.
@pytest.mark.filterwarnings("ignore:.*deprecated - use:DeprecationWarning:pydot")
def test_dot_file_needs_no_graphviz_and_parses_back(pydot, tmp_path, monkeypatch):
    model = residual_model()
    # No Graphviz anywhere on the PATH: the source is pydot's alone.
    monkeypatch.setenv("PATH", str(tmp_path))
    path = tmp_path / "model.dot"
    assert plot_model(model, to_file=path, show_shapes=True) is None
    (parsed,) = pydot.graph_from_dot_file(str(path))
    expected = model_to_dot(model, show_shapes=True)
    # In the file, the record's line break is DOT's escape: backslash, n.
    assert node_labels(parsed) == {name: label.replace("\n", "\\n")
                                   for name, label in node_labels(expected).items()}
    assert sorted(edges(parsed)) == sorted(edges(expected))
    assert parsed.get("rankdir") == "TB"


def test_png_file_has_the_png_signature(pydot, graphviz, tmp_path):
    path = tmp_path / "model.png"
    plot_model(seed_cnn(), to_file=str(path), show_shapes=True, show_dtype=True,
               expand_nested=True, rankdir="LR")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_no_extension_is_png_and_extensions_ignore_case(pydot, graphviz, tmp_path):
    plain = tmp_path / "model"
    plot_model(seed_cnn(), to_file=plain)
    assert plain.read_bytes()[:8] == PNG_SIGNATURE
    upper = tmp_path / "model.PNG"
    plot_model(seed_cnn(), to_file=upper)
    assert upper.read_bytes()[:8] == PNG_SIGNATURE


def test_svg_and_pdf_files(pydot, graphviz, tmp_path):
    svg, pdf = tmp_path / "model.svg", tmp_path / "model.pdf"
    plot_model(residual_model(), to_file=svg)
    plot_model(residual_model(), to_file=pdf)
    text = svg.read_text()
    assert "<svg" in text and "sum: Add" in text
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_unknown_extension_is_a_value_error_naming_to_file(pydot, graphviz, tmp_path):
    path = tmp_path / "model.nosuchformat"
    with pytest.raises(ValueError, match="`to_file`.*no output format 'nosuchformat'"):
        plot_model(seed_cnn(), to_file=path)
    assert not path.exists()


def test_notebook_image_is_returned_when_ipython_is_there(pydot, graphviz, tmp_path,
                                                          monkeypatch):
    display = pytest.importorskip("IPython.display")
    image = plot_model(seed_cnn(), to_file=tmp_path / "m.png")
    assert isinstance(image, display.Image)
    assert isinstance(plot_model(seed_cnn(), to_file=tmp_path / "m.svg"), display.SVG)
    assert plot_model(seed_cnn(), to_file=tmp_path / "m.pdf") is None
    monkeypatch.setitem(sys.modules, "IPython", None)
    assert plot_model(seed_cnn(), to_file=tmp_path / "n.png") is None


# ----------------------------------------------------------------------
# Missing dependencies


def test_missing_graphviz_says_how_to_install_it(pydot, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` to be found
    path = tmp_path / "model.png"
    with pytest.raises(ImportError) as info:
        plot_model(seed_cnn(), to_file=path)
    message = str(info.value)
    assert "Graphviz" in message and "apt-get install graphviz" in message
    assert "'.dot'" in message and "model.png" in message
    assert not path.exists()
    # model_to_dot itself needs no Graphviz.
    assert len(node_labels(model_to_dot(seed_cnn()))) == 4


def test_missing_pydot_names_the_plot_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pydot", None)  # `import pydot` now fails
    with pytest.raises(ImportError, match=r"fastconv\[plot\]") as info:
        model_to_dot(seed_cnn())
    assert "pydot" in str(info.value)
    with pytest.raises(ImportError, match=r"fastconv\[plot\]"):
        plot_model(seed_cnn(), to_file=tmp_path / "model.dot")
    assert not (tmp_path / "model.dot").exists()


def test_module_imports_without_pydot():
    # pydot is imported on first use, never when fastconv.utils.vis_utils loads.
    import subprocess
    code = ("import sys; sys.modules['pydot'] = None; "
            "import fastconv.utils.vis_utils as v; print(v.model_to_dot.__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "model_to_dot"
