"""Models: running, weights in Keras layouts, saving, gradients, backends, oracles."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import fastconv as fc
from fastconv import backend, ops
from fastconv.layers import (Activation, Add, Concatenate, Conv2D, Dense, Flatten, Input,
                             InputLayer, MaxPooling2D)
from fastconv.models import Model, Sequential


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def seed_cnn(dtype=None, seed=0):
    """The seed's last model (conv 32 same relu, conv 64 relu, pool, dense 100, dense 10)."""
    backend.set_random_seed(seed)
    inputs = Input(shape=(28, 28, 1), dtype=dtype)
    x = Conv2D(32, 3, strides=1, padding="same", activation="relu", dtype=dtype)(inputs)
    x = Conv2D(64, 3, activation="relu", dtype=dtype)(x)
    x = MaxPooling2D(2, dtype=dtype)(x)
    x = Flatten(dtype=dtype)(x)
    x = Dense(100, activation="relu", dtype=dtype)(x)
    outputs = Dense(10, activation="softmax", dtype=dtype)(x)
    return Model(inputs=inputs, outputs=outputs)


def random_weights_like(model, rng, scale=0.1):
    """Keras-layout arrays: HWIO conv kernels, (in, units) dense kernels, (out,) biases."""
    return [(rng.standard_normal(w.shape) * scale).astype(np.float32)
            for w in model.get_weights()]


def close(actual, expected, rtol):
    """Norm-wise relative error (elementwise is meaningless where sums cancel)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-30)
    err = np.abs(actual - expected).max()
    assert err <= rtol * scale, f"max abs error {err:.3e} > {rtol} * {scale:.3e}"


# ---------------------------------------------------------------------------
# Running on data

def manual_seed_forward(model, x):
    """The seed CNN composed by hand from fastconv.ops."""
    k1, b1, k2, b2, k3, b3, k4, b4 = model.get_weights()
    h = ops.conv2d(x, k1, b1, padding="same", activation="relu")
    h = ops.conv2d(h, k2, b2, activation="relu")
    h = ops.max_pool2d(h, 2).reshape(len(x), -1)
    h = ops.dense(h, k3, b3, activation="relu")
    logits = ops.dense(h, k4, b4)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_predict_equals_call_equals_ops_composition():
    model = seed_cnn()
    x = np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32)
    called = model(x)
    predicted = model.predict(x, batch_size=2)
    assert called.dtype == predicted.dtype == np.float32 and called.shape == (5, 10)
    np.testing.assert_allclose(predicted, called, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(called, manual_seed_forward(model, x), rtol=1e-6, atol=1e-7)


def test_predict_casts_input_and_defaults():
    inputs = Input((3,))
    model = Model(inputs, Dense(2)(inputs))
    x = np.arange(21.0).reshape(7, 3)  # float64 in, float32 out, as Keras
    out = model.predict(x)
    assert out.dtype == np.float32 and out.shape == (7, 2)
    np.testing.assert_allclose(out, model.predict(x.tolist(), batch_size=3), rtol=1e-6)
    assert model.predict(x, steps=1, batch_size=2).shape == (2, 2)
    assert model.predict_on_batch(x).shape == (7, 2)
    with pytest.raises(ValueError, match="non-empty"):
        model.predict(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(x, batch_size=0)


def test_input_shape_checked_with_keras_message():
    inputs = Input((4, 4, 1))
    model = Model(inputs, Conv2D(1, 3)(inputs))
    with pytest.raises(ValueError, match=r"expected shape=\(None, 4, 4, 1\), found shape="
                                         r"\(2, 4, 4, 3\)"):
        model(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        model(np.zeros((4, 4, 1), np.float32))
    # On a KerasTensor the model becomes a node (nesting: tests/test_nested_models.py),
    # checked against the same spec.
    assert model(Input((4, 4, 1))).shape == (None, 2, 2, 1)
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        model(Input((4, 4)))


def test_unknown_spatial_size_runs_on_any_size():
    inputs = Input((None, None, 2))
    model = Model(inputs, MaxPooling2D()(Conv2D(3, 3, padding="same")(inputs)))
    assert model(np.zeros((1, 8, 6, 2), np.float32)).shape == (1, 4, 3, 3)
    with pytest.raises(ValueError, match=r"Layer max_pooling2d \(MaxPooling2D\) of model model"):
        model(np.zeros((1, 1, 6, 2), np.float32))


def test_multi_input_multi_output_model():
    a, b = Input((3,), name="a"), Input((3,), name="b")
    shared = Dense(4, activation="tanh")
    added = Add()([shared(a), shared(b)])
    out1, out2 = Dense(1)(added), Dense(2)(Concatenate()([added, a]))
    model = Model([a, b], [out1, out2])
    xa, xb = np.ones((5, 3), np.float32), np.zeros((5, 3), np.float32)
    y1, y2 = model([xa, xb])
    assert y1.shape == (5, 1) and y2.shape == (5, 2)
    p1, p2 = model.predict({"a": xa, "b": xb}, batch_size=2)
    np.testing.assert_allclose(p1, y1, rtol=1e-6)
    np.testing.assert_allclose(p2, y2, rtol=1e-6)
    with pytest.raises(ValueError, match="expects 2 input"):
        model(xa)


# ---------------------------------------------------------------------------
# Structure

def test_functional_layers_and_graph_errors():
    inputs = Input((4,))
    hidden = Dense(3, name="dense")(inputs)
    with pytest.raises(ValueError, match='The name "dense" is used 2 times in the model. All '
                                         'layer names should be unique.'):
        Model(inputs, Dense(3, name="dense")(hidden))
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(Input((4,)), hidden)
    with pytest.raises(ValueError, match="must come from `fastconv.layers.Input`"):
        Model(hidden, Dense(1)(hidden))
    with pytest.raises(TypeError, match="inputs"):
        Model(inputs=np.zeros(3), outputs=hidden)
    model = Model(inputs=[inputs], outputs=hidden)
    assert [type(l).__name__ for l in model.layers] == ["InputLayer", "Dense"]
    assert model.get_layer("dense") is model.layers[1]
    assert model.get_layer(index=0).name == "input_1"
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)


def test_a_layer_called_on_a_model_is_told_what_to_call_it_on():
    inputs = Input((4,))
    model = Model(inputs=inputs, outputs=Dense(3)(inputs))
    with pytest.raises(TypeError, match="Model model is not an array: call layers on tensors"):
        Dense(2)(model)
    with pytest.raises(TypeError, match="is not an array"):
        np.asarray(model)


def test_sequential_add_pop_and_input_naming():
    model = Sequential(name="stack")
    model.add(Dense(8, activation="relu", input_shape=(4,)))
    model.add(Dense(2))
    assert [l.name for l in model.layers] == ["dense", "dense_1"]
    assert model.inputs[0].name == "dense_input" and model.built
    assert model.count_params() == 4 * 8 + 8 + 8 * 2 + 2
    with pytest.raises(ValueError, match='Name "dense_1" is already the name of a layer'):
        model.add(Dense(1, name="dense_1"))
    with pytest.raises(ValueError, match="expected min_ndim=4, found ndim=2"):
        model.add(Conv2D(1, 1))  # rank 2 into a conv: refused, and not added
    assert len(model.layers) == 2
    model.pop()
    assert [l.name for l in model.layers] == ["dense"] and model.output_shape == (None, 8)
    assert model(np.ones((3, 4), np.float32)).shape == (3, 8)
    model.pop()
    assert model.layers == [] and not model.built
    with pytest.raises(TypeError, match="There are no layers in the model."):
        model.pop()


def test_sequential_reused_layer_checks_its_pinned_input_size():
    model = Sequential([Dense(3, input_shape=(4,))])
    reused = model.layers[0]
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        Sequential([Dense(5, input_shape=(2,)), reused])


def test_sequential_deferred_build_on_first_call():
    model = Sequential([Conv2D(2, 3, activation="relu"), Flatten(), Dense(3)])
    assert not model.built
    y = model(np.zeros((2, 5, 5, 1), np.float32))
    assert y.shape == (2, 3) and model.built
    assert model.inputs[0].name == "conv2d_input"
    assert model.inputs[0].shape == (None, 5, 5, 1)
    assert model.predict(np.zeros((3, 5, 5, 1), np.float32)).shape == (3, 3)


def test_sequential_from_input_tensor_and_input_layer():
    model = Sequential([Input((4,)), Dense(2)])
    assert [type(l).__name__ for l in model.layers] == ["Dense"]
    assert model.inputs[0].name == "input_1"
    model2 = Sequential([InputLayer(input_shape=(3,)), Dense(1)])
    assert model2.output_shape == (None, 1)
    with pytest.raises(TypeError, match="must be an instance of class Layer"):
        model2.add("dense")


def test_sequential_equals_functional_with_same_weights():
    seq = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(6, 6, 1)),
                      MaxPooling2D(), Flatten(), Dense(3, activation="softmax")])
    inputs = Input((6, 6, 1))
    x = MaxPooling2D()(Conv2D(4, 3, padding="same", activation="relu")(inputs))
    func = Model(inputs, Dense(3, activation="softmax")(Flatten()(x)))
    func.set_weights(seq.get_weights())
    x = np.random.default_rng(0).random((4, 6, 6, 1), dtype=np.float32)
    np.testing.assert_array_equal(seq.predict(x), func.predict(x))


# ---------------------------------------------------------------------------
# Weights in Keras order and layouts

def test_get_set_weights_round_trip_in_keras_order():
    model = seed_cnn()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 3, 1, 32), (32,), (3, 3, 32, 64), (64,), (1600 * 0 + 10816, 100),
                      (100,), (100, 10), (10,)]
    new = random_weights_like(model, np.random.default_rng(2))
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    copies = model.get_weights()
    copies[0][...] = 99  # get_weights returns copies
    assert model.get_weights()[0].max() < 99


def test_set_weights_errors_leave_weights_unchanged():
    inputs = Input((4,))
    model = Model(inputs, Dense(3)(inputs), name="net")
    before = model.get_weights()
    with pytest.raises(ValueError, match='on layer "net" with a weight list of length 1, but the '
                                         'layer was expecting 2 weights'):
        model.set_weights([np.ones((4, 3))])
    with pytest.raises(ValueError, match=r"Layer weight shape \(3,\) not compatible with provided "
                                         r"weight shape \(4,\)"):
        model.set_weights([np.ones((4, 3)), np.ones(4)])
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def independent_numpy_seed_forward(weights, x):
    """The seed CNN from Keras-layout weights, without fastconv: explicit TF
    'same' padding, a loop over kernel taps, reshape-max pooling."""
    k1, b1, k2, b2, k3, b3, k4, b4 = [w.astype(np.float64) for w in weights]

    def conv(inp, kernel, bias, same):
        kh, kw = kernel.shape[:2]
        if same:  # stride 1: total padding k - 1, the extra at the bottom/right
            inp = np.pad(inp, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
        out_h, out_w = inp.shape[1] - kh + 1, inp.shape[2] - kw + 1
        out = np.zeros(inp.shape[:1] + (out_h, out_w, kernel.shape[3]))
        for i in range(kh):
            for j in range(kw):
                out += inp[:, i:i + out_h, j:j + out_w, :] @ kernel[i, j]
        return out + bias

    h = np.maximum(conv(x.astype(np.float64), k1, b1, True), 0)
    h = np.maximum(conv(h, k2, b2, False), 0)
    n, hh, ww, c = h.shape
    h = h[:, :hh // 2 * 2, :ww // 2 * 2].reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))
    h = np.maximum(h.reshape(n, -1) @ k3 + b3, 0)
    logits = h @ k4 + b4
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_keras_layout_weights_match_independent_numpy():
    model = seed_cnn()
    rng = np.random.default_rng(3)
    weights = random_weights_like(model, rng)
    model.set_weights(weights)
    x = rng.random((3, 28, 28, 1), dtype=np.float32)
    close(model.predict(x), independent_numpy_seed_forward(weights, x), rtol=1e-5)


def test_torch_model_with_same_weights_predicts_the_same():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: no torch oracle")
    import torch.nn.functional as F
    model = seed_cnn()
    rng = np.random.default_rng(4)
    weights = random_weights_like(model, rng)
    model.set_weights(weights)
    x = rng.random((3, 28, 28, 1), dtype=np.float32)
    k1, b1, k2, b2, k3, b3, k4, b4 = [torch.from_numpy(w) for w in weights]
    with torch.no_grad():
        t = torch.from_numpy(x).permute(0, 3, 1, 2)                  # NHWC -> NCHW
        t = F.pad(t, (1, 1, 1, 1))                                   # TF 'same' for k=3, s=1
        t = F.relu(F.conv2d(t, k1.permute(3, 2, 0, 1), b1))          # HWIO -> OIHW
        t = F.relu(F.conv2d(t, k2.permute(3, 2, 0, 1), b2))
        t = F.max_pool2d(t, 2)
        t = t.permute(0, 2, 3, 1).reshape(3, -1)                     # Keras flattens NHWC
        t = F.relu(t @ k3 + b3)
        expected = torch.softmax(t @ k4 + b4, dim=1).numpy()
    close(model.predict(x), expected, rtol=1e-5)


# ---------------------------------------------------------------------------
# Saving and loading weights

def small_model(name=None):
    inputs = Input((5, 5, 2))
    x = Conv2D(3, 3, activation="relu")(inputs)
    return Model(inputs, Dense(2)(Flatten()(x)), name=name)


def test_save_load_round_trip(tmp_path):
    source, target = small_model(), small_model()
    path = tmp_path / "weights.npz"
    source.save_weights(path)
    assert os.listdir(tmp_path) == ["weights.npz"]  # no temp file left behind
    target.load_weights(str(path))
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.ones((1, 5, 5, 2), np.float32)
    np.testing.assert_array_equal(source(x), target(x))


def test_save_overwrites_atomically_and_respects_overwrite_false(tmp_path):
    model = small_model()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    model.set_weights([w + 1 for w in model.get_weights()])
    model.save_weights(path)  # replaces
    other = small_model()
    other.load_weights(path)
    np.testing.assert_array_equal(other.get_weights()[0], model.get_weights()[0])
    with pytest.raises(FileExistsError):
        model.save_weights(path, overwrite=False)
    with pytest.raises(ValueError, match="npz"):
        model.save_weights(tmp_path / "w.bin", save_format="pickle")
    with pytest.raises(NotImplementedError, match="TensorFlow checkpoints"):
        model.save_weights(tmp_path / "w.ckpt", save_format="tf")


def test_save_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    original = path.read_bytes()

    def broken_savez(handle, **arrays):
        handle.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(path)
    assert path.read_bytes() == original and os.listdir(tmp_path) == ["w.npz"]


def assert_weights_equal(model, weights):
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_data_byte", "empty"])
def test_corrupted_file_raises_and_leaves_weights_unchanged(tmp_path, damage):
    source, target = small_model(), small_model()
    path = tmp_path / "w.npz"
    source.save_weights(path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a zip file at all" * 10)
    elif damage == "empty":
        data = bytearray()
    else:
        # Flip a byte inside the last weight array's data: only the CRC notices.
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("w3.npy")
        data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF
    path.write_bytes(bytes(data))
    before = target.get_weights()
    with pytest.raises(ValueError, match="corrupt or not a fastconv weights file"):
        target.load_weights(path)
    assert_weights_equal(target, before)


def test_mismatched_model_raises_and_leaves_weights_unchanged(tmp_path):
    small_model().save_weights(tmp_path / "w.npz")
    inputs = Input((5, 5, 2))
    other = Model(inputs, Dense(2)(Flatten()(Conv2D(4, 3)(inputs))))  # 4 filters, not 3
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"has shape \(3, 3, 2, 4\) but the saved weight"):
        other.load_weights(tmp_path / "w.npz")
    assert_weights_equal(other, before)
    fewer = Model(inputs, Dense(2)(Flatten()(inputs)))
    with pytest.raises(ValueError, match="containing 2 layers into a model with 1 layers"):
        fewer.load_weights(tmp_path / "w.npz")


def test_load_missing_file_and_foreign_npz(tmp_path):
    model = small_model()
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / "nope.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no fastconv metadata"):
        model.load_weights(tmp_path / "foreign.npz")


def test_load_by_name(tmp_path):
    source = small_model()
    source.save_weights(tmp_path / "w.npz")
    backend.clear_session()  # the same layer names again
    inputs = Input((5, 5, 2))
    x = Conv2D(3, 3, activation="relu")(inputs)
    target = Model(inputs, Dense(7, name="new_head")(Flatten()(x)))
    head_before = target.get_weights()[2:]
    target.load_weights(tmp_path / "w.npz", by_name=True)
    np.testing.assert_array_equal(target.get_weights()[0], source.get_weights()[0])
    assert_weights_equal_list(target.get_weights()[2:], head_before)


def assert_weights_equal_list(got, want):
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Gradients: float64 on the NumPy backend against central differences

def loss_and_grad_check(model, xs, rng, eps=1e-6, rtol=1e-5, atol=1e-8):
    outputs = model.forward(xs)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    weights_r = [rng.standard_normal(o.shape) for o in outputs]

    def loss():
        outs = model(xs)
        outs = outs if isinstance(outs, list) else [outs]
        return sum(np.sum(o * r) for o, r in zip(outs, weights_r))

    d_out = weights_r if len(weights_r) > 1 else weights_r[0]
    grads, input_grads = model.backward(d_out, input_gradients=True)
    assert len(grads) == len(model.trainable_weights)
    for variable, grad in zip(model.trainable_weights, grads):
        value = variable.numpy()
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            original = value[idx]
            value[idx] = original + eps
            plus = loss()
            value[idx] = original - eps
            minus = loss()
            value[idx] = original
            numeric[idx] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=atol, err_msg=variable.name)
    xs_list = xs if isinstance(xs, list) else [xs]
    for x, grad in zip(xs_list, input_grads):
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            original = x[idx]
            x[idx] = original + eps
            plus = loss()
            x[idx] = original - eps
            minus = loss()
            x[idx] = original
            numeric[idx] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=atol, err_msg="input")


def test_chain_gradients_match_finite_differences():
    f64 = "float64"
    backend.set_random_seed(10)
    inputs = Input((6, 6, 2), dtype=f64)
    x = Conv2D(3, 3, padding="same", activation="tanh", dtype=f64)(inputs)
    x = MaxPooling2D(2, dtype=f64)(x)
    x = Conv2D(2, 2, strides=1, activation="sigmoid", dtype=f64)(x)
    x = Flatten(dtype=f64)(x)
    x = Dense(4, activation="relu", dtype=f64,
              bias_initializer="ones")(x)  # ones keep relu away from its kink
    outputs = Dense(3, activation="softmax", dtype=f64)(x)
    model = Model(inputs, outputs)
    rng = np.random.default_rng(11)
    with fc.use_backend("numpy"):
        loss_and_grad_check(model, rng.standard_normal((2, 6, 6, 2)), rng)


def test_branching_shared_layer_gradients_match_finite_differences():
    f64 = "float64"
    backend.set_random_seed(12)
    inputs = Input((4, 4, 2), dtype=f64)
    shared = Conv2D(2, 3, padding="same", activation="sigmoid", dtype=f64)
    first = shared(inputs)
    second = shared(first)  # the same weights used twice: gradients add up
    merged = Concatenate(dtype=f64)([Add(dtype=f64)([first, second]), inputs])
    flat = Flatten(dtype=f64)(MaxPooling2D(2, strides=1, dtype=f64)(merged))
    out1 = Dense(2, activation="tanh", dtype=f64)(flat)
    out2 = Dense(1, dtype=f64)(Flatten(dtype=f64)(first))
    model = Model(inputs, [out1, out2])
    assert len(model.trainable_weights) == 6
    rng = np.random.default_rng(13)
    with fc.use_backend("numpy"):
        loss_and_grad_check(model, rng.standard_normal((2, 4, 4, 2)), rng)


def test_two_input_model_gradients():
    f64 = "float64"
    a, b = Input((3,), dtype=f64), Input((3,), dtype=f64)
    squashed = Activation("tanh", dtype=f64)(b)
    out = Dense(2, activation="elu", dtype=f64)(Add(dtype=f64)([a, squashed]))
    model = Model([a, b], out)
    rng = np.random.default_rng(14)
    with fc.use_backend("numpy"):
        loss_and_grad_check(model, [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))], rng)


def test_pre_activation_gradient_skips_the_output_activation():
    model = seed_cnn(dtype="float64")
    rng = np.random.default_rng(15)
    x = rng.random((2, 28, 28, 1))
    dy = rng.standard_normal((2, 10))
    with fc.use_backend("numpy"):
        y = model.forward(x)
        via_activation = model.backward(dy)
        model.forward(x)
        dz = y * (dy - np.sum(dy * y, axis=1, keepdims=True))  # softmax's Jacobian product
        direct = model.backward(dz, pre_activation=True)
    for a, b in zip(via_activation, direct):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_backward_contract_errors():
    inputs = Input((3,))
    model = Model(inputs, Dense(2)(inputs))
    with pytest.raises(RuntimeError, match="forward"):
        model.backward(np.zeros((1, 2), np.float32))
    model.forward(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"has shape \(4, 3\), expected \(4, 2\)"):
        model.backward(np.zeros((4, 3), np.float32))
    assert len(model.backward(np.zeros((4, 2), np.float32))) == 2  # the tape survived
    with pytest.raises(RuntimeError, match="consumes the tape"):
        model.backward(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="pre_activation"):
        flat_inputs = Input((2, 2))
        flat = Model(flat_inputs, Flatten()(flat_inputs))
        flat.forward(np.zeros((1, 2, 2), np.float32))
        flat.backward(np.zeros((1, 4), np.float32), pre_activation=True)


def test_first_layer_computes_no_input_gradient(monkeypatch):
    calls = []
    real = ops.conv2d_backward

    def spy(*args, compute_dx=True, **kwargs):
        calls.append(compute_dx)
        return real(*args, compute_dx=compute_dx, **kwargs)
    monkeypatch.setattr(ops, "conv2d_backward", spy)
    model = seed_cnn()
    model.forward(np.zeros((1, 28, 28, 1), np.float32))
    model.backward(np.ones((1, 10), np.float32))
    assert calls == [True, False]  # conv2d_1 needs dx; conv2d (after the Input) does not
    calls.clear()
    model.forward(np.zeros((1, 28, 28, 1), np.float32))
    _, (dx,) = model.backward(np.ones((1, 10), np.float32), input_gradients=True)
    assert calls == [True, True] and dx.shape == (1, 28, 28, 1)


def test_trainable_weights_are_live_and_a_few_sgd_steps_learn():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    labels = (x[:, 0] + x[:, 1] > 0).astype(int)
    onehot = np.eye(2, dtype=np.float32)[labels]
    inputs = Input((4,))
    model = Model(inputs, Dense(2, activation="softmax")(Dense(8, activation="relu")(inputs)))

    def loss():
        return -np.mean(np.sum(onehot * np.log(model(x) + 1e-7), axis=1))
    start = loss()
    for _ in range(30):
        probabilities = model.forward(x)
        grads = model.backward((probabilities - onehot) / len(x), pre_activation=True)
        for variable, grad in zip(model.trainable_weights, grads):
            variable.assign_sub(0.5 * grad)
    assert loss() < 0.5 * start


# ---------------------------------------------------------------------------
# Both backends agree on the seed model

def test_c_backend_equals_numpy_backend_forward_and_backward():
    model = seed_cnn()
    model.set_weights(random_weights_like(model, np.random.default_rng(17)))
    x = np.random.default_rng(18).random((2, 28, 28, 1), dtype=np.float32)
    dy = np.random.default_rng(19).standard_normal((2, 10)).astype(np.float32)
    results = {}
    for name in ("c", "numpy"):
        with fc.use_backend(name):
            y = model.forward(x)
            grads, (dx,) = model.backward(dy, input_gradients=True)
            results[name] = (y, grads, dx)
    y_c, grads_c, dx_c = results["c"]
    y_np, grads_np, dx_np = results["numpy"]
    assert y_c.dtype == y_np.dtype == np.float32
    close(y_c, y_np, rtol=1e-5)
    for variable, g_c, g_np in zip(model.trainable_weights, grads_c, grads_np):
        assert g_c.dtype == np.float32 and g_c.shape == variable.shape
        close(g_c, g_np, rtol=1e-4)
    close(dx_c, dx_np, rtol=1e-4)
