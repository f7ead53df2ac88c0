"""Lambda: arrays in and out, shape inference, Keras 2.4's config, and gradients --
exact for element-wise arithmetic (against Keras 3 and finite differences), refused
with a clear error at compile/fit time for functions fastconv cannot differentiate."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import backend
from fastconv import layers as L
from fastconv.layers import _autodiff
from fastconv.models import Model, Sequential
from keras_compare import compare_models, import_keras


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def random(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def dense_lambda_dense(lib, layer, inputs=5):
    x = lib.layers.Input((inputs,))
    return lib.models.Model(x, lib.layers.Dense(2)(layer(lib.layers.Dense(4)(x))))


# ---------------------------------------------------------------------------
# Gradients through element-wise arithmetic equal Keras 3's

# (fastconv's function on NumPy, Keras' on keras.ops: the same formula)
FORMULAS = [
    ("polynomial", lambda x: x * x * 0.5 - 3.0 * x + 1.0,
     lambda ops: lambda x: x * x * 0.5 - 3.0 * x + 1.0),
    ("exp and division", lambda x: np.exp(-x) / (1.0 + x ** 2),
     lambda ops: lambda x: ops.exp(-x) / (1.0 + x ** 2)),
    ("leaky relu by maximum", lambda x: np.maximum(x, 0.1 * x),
     lambda ops: lambda x: ops.maximum(x, 0.1 * x)),
    ("abs, sqrt, tanh", lambda x: np.sqrt(x * x + 1.0) + np.tanh(abs(x)),
     lambda ops: lambda x: ops.sqrt(x * x + 1.0) + ops.tanh(ops.abs(x))),
    ("a mask from a comparison", lambda x: x * (x > 0),
     lambda ops: lambda x: x * ops.cast(x > 0, "float32")),
    ("slices", lambda x: x[:, 1:3] * x[:, :2] - x[:, ::-1][:, :2],
     lambda ops: lambda x: x[:, 1:3] * x[:, :2] - ops.flip(x, axis=1)[:, :2]),
    ("constant array", lambda x: x * np.array([1.0, -2.0, 0.5, 3.0], np.float32) + 2 ** x,
     lambda ops: lambda x: x * ops.convert_to_tensor([1.0, -2.0, 0.5, 3.0]) + 2 ** x),
]


@pytest.mark.parametrize("name, ours, theirs", FORMULAS, ids=[f[0] for f in FORMULAS])
def test_elementwise_lambda_trains_like_keras(name, ours, theirs):
    keras = import_keras()
    fc_model = dense_lambda_dense(fastconv, L.Lambda(ours))
    k_model = dense_lambda_dense(keras, keras.layers.Lambda(theirs(keras.ops)))
    assert fc_model.layers[2].input_gradient_error() is None
    compare_models(fc_model, k_model, [random((3, 5), seed=1)])


def test_lambda_on_a_list_and_with_arguments_trains_like_keras():
    keras = import_keras()

    def make(lib, function, **kwargs):
        a, b = lib.layers.Input((5,)), lib.layers.Input((3,))
        merged = lib.layers.Lambda(function, **kwargs)(
            [lib.layers.Dense(4)(a), lib.layers.Dense(4)(b)])
        return lib.models.Model([a, b], lib.layers.Dense(2)(merged))

    function = lambda t, scale: (t[0] - t[1]) ** 2 * scale + t[0]  # noqa: E731
    fc_model = make(fastconv, function, arguments={"scale": 0.5})
    k_model = make(keras, function, arguments={"scale": 0.5})
    compare_models(fc_model, k_model, [random((3, 5), 1), random((3, 3), 2)])


def test_traced_gradients_match_finite_differences():
    # float64: every rule of _autodiff against central differences.
    rng = np.random.default_rng(3)
    constant = rng.uniform(0.5, 1.5, (1, 4))
    functions = [
        lambda x: np.log(x) + np.log1p(x) + np.expm1(x) + np.reciprocal(x),
        lambda x: np.sin(x) * np.cos(x) + np.square(x) - (+x) / constant,
        lambda x: x ** x + constant ** x + np.power(x, 3),
        lambda x: np.minimum(x, constant) + np.maximum(constant, 2 * x),
        lambda x: x[[0, 0, 1], 1:] * 2 + 1 / x[:1, None, 1],  # rows read twice, broadcast
        lambda x: np.floor(x) * x + np.sign(x) + (x >= 1.0) * x,
    ]
    x = rng.uniform(0.5, 2.0, (2, 4))
    for function in functions:
        record, traced, result = _autodiff.trace(function, [x])
        upstream = rng.standard_normal(result.value.shape)
        (grad,) = _autodiff.gradients(record, traced, result, upstream)
        numeric = np.zeros_like(x)
        for index in np.ndindex(x.shape):
            plus, minus = x.copy(), x.copy()
            plus[index] += 1e-6
            minus[index] -= 1e-6
            numeric[index] = ((function(plus) - function(minus)) * upstream).sum() / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_traced_maximum_ties_and_repeated_cells_follow_tensorflow():
    x = np.array([[1.0, 2.0, 3.0]])
    record, traced, y = _autodiff.trace(lambda t: np.maximum(t, 2.0), [x])
    (grad,) = _autodiff.gradients(record, traced, y, np.ones((1, 3)))
    np.testing.assert_array_equal(grad, [[0, 1, 1]])  # the tie at 2 goes to t (a >= b)
    record, traced, y = _autodiff.trace(lambda t: t[:, [0, 0, 2]], [x])
    (grad,) = _autodiff.gradients(record, traced, y, np.array([[1.0, 2.0, 4.0]]))
    np.testing.assert_array_equal(grad, [[3, 0, 4]])  # read twice: gradients add up


@pytest.mark.parametrize("function, what", [
    (lambda x: np.sum(x, axis=1), "np.sum"),
    (lambda x: x.mean(axis=0), ".mean"),
    (lambda x: np.asarray(x) * 2, "conversion to an array"),
    (lambda x: x * 2 if x[0, 0] else x, "truth test"),  # (x[0, 0] > 0 is a constant)
    (lambda x: np.where(x > 0, x, 0.0), "np.where"),
    (lambda x: x @ np.ones((4, 2), np.float32), "np.matmul"),
    (lambda x: np.add(x, 1, out=x), "np.add"),
    (lambda x: x.reshape(-1), ".reshape"),
    (lambda x: float(x[0, 0]) * x, "truth test, a conversion to a number"),
])
def test_what_fastconv_cannot_differentiate_is_refused(function, what):
    with pytest.raises(_autodiff.NotTraceable, match=what):
        _autodiff.trace(function, [np.ones((2, 4), np.float32)])
    layer = L.Lambda(function)
    layer(L.Input((4,)))
    assert what in layer.input_gradient_error()


# ---------------------------------------------------------------------------
# A Lambda fastconv cannot differentiate

def opaque(x):
    """Row norms: fine in inference, but np.sum is not followed by the tracer."""
    return np.sqrt(np.sum(x * x, axis=1, keepdims=True)) * x


def test_compile_refuses_a_model_needing_the_gradient_of_an_opaque_lambda():
    model = dense_lambda_dense(fastconv, L.Lambda(opaque, name="norms"))
    assert model.predict(random((3, 5))).shape == (3, 2)  # inference works
    with pytest.raises(ValueError, match=r"Model model cannot be trained: layer norms \(Lambda"
                                         r"\) lies between trainable weights and the output\. "
                                         r"fastconv cannot differentiate the function of Lambda "
                                         r"layer norms: it uses np\.sum"):
        model.compile("sgd", "mse")


def test_fit_and_train_on_batch_refuse_it_before_any_step():
    model = Sequential([L.Dense(4), L.Lambda(opaque, name="norms"), L.Dense(2)])
    model.compile("sgd", "mse")  # not built yet: nothing to check
    x, y = random((4, 5)), random((4, 2))
    with pytest.raises(ValueError, match="layer norms"):
        model.fit(x, y, verbose=0)
    before = model.get_weights()
    with pytest.raises(ValueError, match="layer norms"):
        model.train_on_batch(x, y)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert model.evaluate(x, y, verbose=0) > 0  # evaluation needs no gradient


def test_an_opaque_lambda_where_no_gradient_passes_trains():
    # Right after the input, after weightless layers, or with the layers before
    # it frozen, no gradient has to go through the Lambda.
    x, y = random((8, 6, 6, 2)), random((8, 3))
    for prefix in ([], [L.MaxPooling2D()], None):
        backend.clear_session()
        inputs = L.Input((6, 6, 2))
        h = inputs
        frozen = L.Conv2D(2, 3, padding="same", trainable=False)
        for layer in (prefix if prefix is not None else [frozen]):
            h = layer(h)
        h = L.Lambda(lambda t: t / np.sum(np.abs(t) + 1.0))(h)
        model = Model(inputs, L.Dense(3)(L.Flatten()(h)))
        model.compile("sgd", "mse")
        before = model.get_weights()
        model.fit(x, y, epochs=2, verbose=0)
        after = model.get_weights()
        assert not np.array_equal(before[-2], after[-2])  # the Dense kernel learnt
        if prefix is None:
            np.testing.assert_array_equal(before[0], after[0])  # the frozen conv did not


def test_backward_through_an_opaque_lambda_raises_naming_it():
    inputs = L.Input((4,))
    model = Model(inputs, L.Lambda(opaque, name="norms")(inputs))
    model.forward(random((2, 4)), training=True)
    with pytest.raises(ValueError, match=r"Layer norms \(Lambda\): fastconv cannot "
                                         r"differentiate this call of its function: it uses "
                                         r"np\.sum"):
        model.backward(np.ones((2, 4), np.float32), input_gradients=True)


def test_a_branch_the_probe_did_not_take_is_caught_at_the_call():
    # Built on zeros, the function takes its traceable branch; on positive data
    # it sums, and only the backward pass that needed it complains.
    def branchy(x):
        return np.sum(x) * x if (x > 0).any() else 2 * x

    model = dense_lambda_dense(fastconv, L.Lambda(branchy, name="branchy"))
    model.compile("sgd", "mse")
    model.set_weights([np.abs(w) + 0.1 for w in model.get_weights()])
    with pytest.raises(ValueError, match=r"Layer branchy \(Lambda\).*np\.sum"):
        model.train_on_batch(np.abs(random((2, 5))), random((2, 2)))


# ---------------------------------------------------------------------------
# Arrays, shapes, training argument

def test_arrays_in_and_out():
    x = random((2, 3))
    np.testing.assert_allclose(L.Lambda(lambda t: t * 2 + 1)(x), x * 2 + 1)
    np.testing.assert_allclose(L.Lambda(np.exp)(x), np.exp(x), rtol=1e-6)
    y = L.Lambda(lambda t, power: t ** power, arguments={"power": 3})(x)
    np.testing.assert_allclose(y, x ** 3, rtol=1e-6)


@pytest.mark.parametrize("make, input_shape, expected", [
    (lambda: L.Lambda(lambda t: t[:, :, :2]), (None, None, 3), (None, None, 2)),
    (lambda: L.Lambda(lambda t: np.sum(t, axis=1)), (None, None, 3), (None, 3)),
    (lambda: L.Lambda(lambda t: t.reshape(len(t), -1)), (None, None, 3), (None, None)),
    (lambda: L.Lambda(lambda t: t.reshape(len(t), -1)), (None, 4, 3), (None, 12)),
    (lambda: L.Lambda(lambda t: t, output_shape=(7,)), (None, 3), (None, 7)),
    (lambda: L.Lambda(lambda t: t, output_shape=lambda s: (s[0], 2 * s[1])), (None, 3),
     (None, 6)),
])
def test_output_shapes(make, input_shape, expected):
    assert tuple(make()(L.Input(input_shape[1:])).shape) == expected


def test_a_function_failing_on_zeros_asks_for_output_shape():
    def needs_positive(x):
        if not (x > 0).all():
            raise ArithmeticError("positive input expected")
        return np.log(x)

    with pytest.raises(ValueError, match=r"Layer lambda \(Lambda\) could not infer its output "
                                         r"shape .*ArithmeticError: positive input expected\. "
                                         r"Pass `output_shape`"):
        L.Lambda(needs_positive)(L.Input((3,)))
    tensor = L.Lambda(needs_positive, output_shape=(3,))(L.Input((3,)))
    assert tuple(tensor.shape) == (None, 3)
    assert tensor.node.layer.input_gradient_error() is not None  # never traced: opaque


def test_the_training_argument_reaches_a_function_that_takes_it():
    inputs = L.Input((3,))
    model = Model(inputs, L.Lambda(lambda t, training: t * (2.0 if training else 1.0))(inputs))
    x = random((2, 3))
    np.testing.assert_allclose(model.predict(x), x)
    np.testing.assert_allclose(model.forward(x, training=True), 2 * x)


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: L.Lambda(3), TypeError, "`function` must be callable"),
    (lambda: L.Lambda(abs, output_shape=3), TypeError, "`output_shape`"),
    (lambda: L.Lambda(abs, arguments=[1]), TypeError, "`arguments` must be a dict"),
    (lambda: L.Lambda(abs, mask=lambda x, m: m), NotImplementedError, "mask"),
    (lambda: L.Lambda(lambda t: [t, t])(L.Input((2,))), TypeError, "one output"),
    (lambda: L.Lambda(lambda t: 1.0)(L.Input((2,))), ValueError, "returned a scalar"),
])
def test_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_called_the_same_way_every_time():
    layer = L.Lambda(lambda t: t)
    layer(L.Input((2,)))
    with pytest.raises(ValueError, match="first called on one input"):
        layer([L.Input((2,)), L.Input((2,))])


# ---------------------------------------------------------------------------
# Config (Keras 2.4's function serialization) and summary

def scale_by_three(x):
    return x * 3.0


def test_config_is_keras_24s_and_round_trips():
    offset = 0.25
    layer = L.Lambda(lambda t, k=2.0: t * k + offset, output_shape=(3,))
    config = layer.get_config()
    assert set(config) == {"name", "trainable", "dtype", "function", "function_type", "module",
                           "output_shape", "output_shape_type", "output_shape_module",
                           "arguments"}
    code, defaults, closure = config["function"]
    assert isinstance(code, str) and defaults == (2.0,) and closure == (0.25,)
    assert (config["function_type"], config["module"]) == ("lambda", __name__)
    assert (config["output_shape"], config["output_shape_type"],
            config["output_shape_module"]) == ((3,), "raw", None)
    assert config["arguments"] == {}
    x = random((2, 3))
    for original in (layer, L.Lambda(scale_by_three), L.Lambda(np.tanh, name="t")):
        config = original.get_config()
        clone = L.Lambda.from_config(config)
        assert clone.name == original.name
        np.testing.assert_array_equal(clone(x), original(x))
    # A callable that is not a Python function is stored by name (Keras: 'function').
    config = L.Lambda(np.tanh).get_config()
    assert (config["function"], config["function_type"], config["module"]) == \
        ("tanh", "function", "numpy")
    with pytest.raises(ValueError, match="Unknown function in Lambda layer: missing"):
        L.Lambda.from_config({**config, "function": "missing"})
    assert L.Lambda.from_config({**config, "function": "mine", "module": None},
                                custom_objects={"mine": scale_by_three}).function is \
        scale_by_three


def test_summary_row():
    model = Sequential([L.Lambda(lambda t: t[:, :2] * 2, input_shape=(5,)), L.Dense(3)])
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[4] == "lambda (Lambda)              (None, 2)                 0         "
    assert lines[6] == "dense (Dense)                (None, 3)                 9         "
