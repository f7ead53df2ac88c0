"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate) and their
functional forms, against Keras 3 (torch backend) and tf.keras 2.4's rules."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import backend
from fastconv import layers as L
from fastconv.models import Model
from keras_compare import compare_models, fastconv_step, import_keras, keras_step


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]
FUNCTIONAL = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply",
              "Average": "average", "Maximum": "maximum", "Minimum": "minimum",
              "Concatenate": "concatenate"}

# Branch input shapes (without batch): each goes through its own Dense(4) first,
# so the merge sees (…, 4) tensors of these ranks.
SHAPES = {
    "same": [(5,), (5,)],
    "three": [(5,), (5,), (5,)],
    "rank": [(3, 5), (5,)],          # (None, 3, 4) with (None, 4): read as (None, 1, 4)
    "size one": [(1, 5), (3, 5)],    # (None, 1, 4) stretches to (None, 3, 4)
    "rank and one": [(2, 1, 5), (3, 5)],
}


def build(lib, merge, input_shapes, flatten=True):
    inputs = [lib.layers.Input(shape) for shape in input_shapes]
    branches = [lib.layers.Dense(4)(x) for x in inputs]
    x = merge(branches)
    if flatten and len(x.shape) > 2:
        x = lib.layers.Flatten()(x)
    return lib.models.Model(inputs, lib.layers.Dense(2)(x))


def model_pair(name, case, functional=False):
    keras = import_keras()
    input_shapes = SHAPES[case]
    if functional:
        ours = build(fastconv, getattr(L, FUNCTIONAL[name]), input_shapes)
        theirs = build(keras, getattr(keras.layers, FUNCTIONAL[name]), input_shapes)
    else:
        ours = build(fastconv, getattr(L, name)(), input_shapes)
        theirs = build(keras, getattr(keras.layers, name)(), input_shapes)
    xs = [random((2,) + shape, seed=i + 10) for i, shape in enumerate(input_shapes)]
    return ours, theirs, xs


@pytest.mark.parametrize("name, case", [(name, case) for name in ELEMENTWISE for case in SHAPES
                                         if not (name == "Subtract" and case == "three")])
def test_elementwise_merges_match_keras(name, case):
    ours, theirs, xs = model_pair(name, case)
    compare_models(ours, theirs, xs)


@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_functional_forms_match_keras(name):
    ours, theirs, xs = model_pair(name, "same", functional=True)
    assert type(ours.layers[-2]).__name__ == name
    compare_models(ours, theirs, xs)


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate_matches_keras(axis):
    keras = import_keras()
    shapes = [(3, 5), (3, 5)]
    ours = build(fastconv, L.Concatenate(axis=axis), shapes)
    theirs = build(keras, keras.layers.Concatenate(axis=axis), shapes)
    compare_models(ours, theirs, [random((2, 3, 5), 1), random((2, 3, 5), 2)])


def test_a_merge_reading_a_model_input_sends_it_a_gradient():
    keras = import_keras()

    def make(lib):
        a = lib.layers.Input((4,))
        return lib.models.Model(a, lib.layers.Multiply()([a, lib.layers.Dense(4)(a)]))

    compare_models(make(fastconv), make(keras), [random((3, 4), 5)])


def test_maximum_and_minimum_ties_send_the_gradient_to_the_first_input():
    # TensorFlow's rule (tf.keras 2.4): maximum(a, b) passes the gradient to a
    # where a >= b (minimum: a <= b). Keras 3 on torch splits a tie between
    # the inputs instead; elsewhere both agree.
    keras = import_keras()
    a = np.array([[1.0, 2.0, 3.0, -1.0]], np.float32)
    b = np.array([[1.0, 5.0, 0.0, -1.0]], np.float32)
    tie = a == b
    upstream = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    for name in ("Maximum", "Minimum"):
        inputs = [L.Input((4,)), L.Input((4,))]
        ours = Model(inputs, getattr(L, name)()(inputs))
        k_inputs = [keras.layers.Input((4,)), keras.layers.Input((4,))]
        theirs = keras.models.Model(k_inputs, getattr(keras.layers, name)()(k_inputs))
        _, (da, db), _ = fastconv_step(ours, [a, b], upstream)
        _, (ka, kb), _ = keras_step(theirs, [a, b], upstream)
        np.testing.assert_array_equal(da[tie], upstream[tie])
        np.testing.assert_array_equal(db[tie], 0)
        np.testing.assert_array_equal(da[~tie], ka[~tie])
        np.testing.assert_array_equal(db[~tie], kb[~tie])
        np.testing.assert_allclose((ka + kb)[tie], upstream[tie])  # torch: split


def test_three_way_maximum_gradient_goes_to_the_first_winner():
    layer = L.Maximum()
    xs = [np.array([[1, 7, 2]], np.float32), np.array([[7, 7, 3]], np.float32),
          np.array([[7, 0, 3]], np.float32)]
    y, cache = layer.forward(xs)
    grads, _ = layer.backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(y, [[7, 7, 3]])
    np.testing.assert_array_equal(np.stack(grads)[:, 0], [[0, 1, 0], [1, 0, 1], [0, 0, 0]])


def test_multiply_gradient_with_zeros_is_the_product_of_the_others():
    xs = [np.array([[0.0, 2.0, 3.0]]), np.array([[4.0, 0.0, 5.0]]), np.array([[6.0, 7.0, 0.0]])]
    layer = L.Multiply(dtype="float64")
    y, cache = layer.forward(xs)
    dy = np.array([[1.0, 2.0, 3.0]])
    grads, _ = layer.backward(dy, cache)
    np.testing.assert_array_equal(grads[0], dy * xs[1] * xs[2])
    np.testing.assert_array_equal(grads[1], dy * xs[0] * xs[2])
    np.testing.assert_array_equal(grads[2], dy * xs[0] * xs[1])


def test_broadcast_gradients_match_finite_differences():
    # float64 on the NumPy backend: d(sum(y * g))/d(input) by central differences.
    rng = np.random.default_rng(7)
    shapes = [(2, 1, 3), (2, 4, 3), (2, 3)]
    for name in ("Multiply", "Average", "Subtract"):
        chosen = shapes[:2] if name == "Subtract" else shapes
        layer = getattr(L, name)(dtype="float64")
        xs = [rng.standard_normal(s) for s in chosen]
        y, cache = layer.forward(xs)
        g = rng.standard_normal(y.shape)
        grads, _ = layer.backward(g, cache)
        for i, x in enumerate(xs):
            assert grads[i].shape == x.shape
            numeric = np.zeros_like(x)
            for index in np.ndindex(x.shape):
                plus, minus = [a.copy() for a in xs], [a.copy() for a in xs]
                plus[i][index] += 1e-6
                minus[i][index] -= 1e-6
                numeric[index] = ((layer.forward(plus)[0] - layer.forward(minus)[0]) * g
                                  ).sum() / 2e-6
            np.testing.assert_allclose(grads[i], numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------
# Keras 2.4's shape rules and errors

@pytest.mark.parametrize("shapes, expected", [
    ([(4,), (4,)], (None, 4)),
    ([(3, 4), (4,)], (None, 3, 4)),
    ([(1, 4), (3, 1)], (None, 3, 4)),
    ([(None, 4), (3, 4)], (None, None, 4)),   # an unknown size stays unknown (Keras' rule)
    ([(2, 1, 4), (3, 4), (4,)], (None, 2, 3, 4)),
])
def test_output_shapes(shapes, expected):
    for name in ELEMENTWISE:
        if name == "Subtract" and len(shapes) != 2:
            continue
        tensor = getattr(L, name)()([L.Input(s) for s in shapes])
        assert tuple(tensor.shape) == expected, name
    arrays = [random((2,) + tuple(3 if d is None else d for d in s)) for s in shapes]
    y = L.Add()(arrays)
    np.testing.assert_allclose(y, sum(np.broadcast_arrays(
        *[a.reshape(a.shape[:1] + (1,) * (max(b.ndim for b in arrays) - a.ndim) + a.shape[1:])
          for a in arrays])), rtol=1e-6)


def test_known_batch_sizes_must_agree_and_carry_over():
    a, b = L.Input((3,), batch_size=2), L.Input((3,))
    assert tuple(L.Add()([a, b]).shape) == (2, 3)
    with pytest.raises(ValueError, match="Can not merge tensors with different batch sizes"):
        L.Add()([a, L.Input((3,), batch_size=3)])


def test_merge_errors():
    with pytest.raises(ValueError, match="Operands could not be broadcast together with shapes "
                                         r"\(4,\) \(5,\)"):
        L.Maximum()([L.Input((4,)), L.Input((5,))])
    with pytest.raises(ValueError, match="at least 2 inputs"):
        L.Multiply()([L.Input((4,))])
    with pytest.raises(ValueError, match="should be called on a list of inputs"):
        L.Average()(L.Input((4,)))
    inputs = [L.Input((None,)), L.Input((None,))]
    model = Model(inputs, L.Minimum()(inputs))
    with pytest.raises(ValueError, match=r"minimum \(Minimum\): inputs of shapes \[\(1, 3\), "
                                         r"\(1, 4\)\] cannot be broadcast"):
        model([np.zeros((1, 3), np.float32), np.zeros((1, 4), np.float32)])


def test_subtract_takes_two():
    with pytest.raises(ValueError, match="`Subtract` layer should be called on exactly 2 inputs"):
        L.Subtract()([L.Input((2,)), L.Input((2,)), L.Input((2,))])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        L.subtract([np.ones((1, 2)), np.ones((1, 2)), np.ones((1, 2))])


def test_names_configs_and_round_trips():
    layers = [getattr(L, name)() for name in ELEMENTWISE] + [L.Concatenate(axis=1)]
    assert [layer.name for layer in layers] == ["add", "subtract", "multiply", "average",
                                               "maximum", "minimum", "concatenate"]
    for layer in layers:
        config = layer.get_config()
        expected = {"name": layer.name, "trainable": True, "dtype": "float32"}
        if isinstance(layer, L.Concatenate):
            expected["axis"] = 1
        assert config == expected
        assert type(layer).from_config(config).get_config() == config
    tensor = L.maximum([L.Input((2,)), L.Input((2,))], name="biggest")
    assert tensor.node.layer.name == "biggest" and tensor.name == "biggest/Maximum:0"
    assert L.add([L.Input((2,))] * 3).name == "add_1/add_1:0"  # TF's second pairwise op


def test_arrays_in_and_out():
    a, b = random((2, 3), 1), random((2, 3), 2)
    np.testing.assert_allclose(L.subtract([a, b]), a - b)
    np.testing.assert_allclose(L.multiply([a, b, a]), a * b * a, rtol=1e-6)
    np.testing.assert_allclose(L.average([a, b]), (a + b) / 2, rtol=1e-6)
    np.testing.assert_array_equal(L.maximum([a, b]), np.maximum(a, b))
    np.testing.assert_array_equal(L.minimum([a, b]), np.minimum(a, b))
    np.testing.assert_array_equal(L.concatenate([a, b], axis=-1), np.concatenate([a, b], 1))


# ---------------------------------------------------------------------------
# Summary rows: a branching model uses TF 2.4's graph layout (98 columns)

def tf24_row(fields, positions=(32, 53, 65, 98)):
    """TF 2.4's print_row: each field cut hard at its column end, the column's last
    character forced to a space, every row padded to the full width."""
    line = ""
    for i, field in enumerate(fields):
        if i > 0:
            line = line[:-1] + " "
        line += str(field)
        line = line[:positions[i]]
        line += " " * (positions[i] - len(line))
    return line


def test_summary_of_a_model_mixing_merges():
    a, b = L.Input((4,)), L.Input((4,))
    x1, x2 = L.Dense(4)(a), L.Dense(4)(b)
    s = L.subtract([x1, x2])
    m = L.Multiply()([x1, x2, s])
    c = L.concatenate([L.maximum([s, m]), L.Average()([x1, x2])])
    model = Model([a, b], L.Dense(1)(c))
    rows = [  # (layer, output shape, params, connections), in Keras' layer order
        ("input_1 (InputLayer)", "[(None, 4)]", 0, []),
        ("input_2 (InputLayer)", "[(None, 4)]", 0, []),
        ("dense (Dense)", "(None, 4)", 20, ["input_1[0][0]"]),
        ("dense_1 (Dense)", "(None, 4)", 20, ["input_2[0][0]"]),
        ("subtract (Subtract)", "(None, 4)", 0, ["dense[0][0]", "dense_1[0][0]"]),
        ("multiply (Multiply)", "(None, 4)", 0,
         ["dense[0][0]", "dense_1[0][0]", "subtract[0][0]"]),
        ("maximum (Maximum)", "(None, 4)", 0, ["subtract[0][0]", "multiply[0][0]"]),
        ("average (Average)", "(None, 4)", 0, ["dense[0][0]", "dense_1[0][0]"]),
        ("concatenate (Concatenate)", "(None, 8)", 0, ["maximum[0][0]", "average[0][0]"]),
        ("dense_2 (Dense)", "(None, 1)", 9, ["concatenate[0][0]"]),
    ]
    expected = ['Model: "model"', "_" * 98,
                tf24_row(["Layer (type)", "Output Shape", "Param #", "Connected to"]), "=" * 98]
    for i, (layer, shape, params, connections) in enumerate(rows):
        expected.append(tf24_row([layer, shape, params, connections[0] if connections else ""]))
        expected += [tf24_row(["", "", "", c]) for c in connections[1:]]
        expected.append(("=" if i == len(rows) - 1 else "_") * 98)
    expected += ["Total params: 49", "Trainable params: 49", "Non-trainable params: 0",
                 "_" * 98]
    lines = []
    model.summary(print_fn=lines.append)
    assert lines == expected
