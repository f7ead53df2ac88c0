"""The benchmark networks (fastconv.bench_models) and their conversions to the
peers the benchmarks run (fastconv.bench_peers): parameter counts against
Keras', outputs of PyTorch, ONNX Runtime and OpenVINO against fastconv's
predict, and one training step in PyTorch against fastconv's."""
import os
import sys

import numpy as np
import pytest

from fastconv import backend, bench_models, bench_peers, bench_runtimes
from fastconv.layers import (BatchNormalization, Conv2D, Conv2DTranspose, Dense, Flatten,
                             Input, LeakyReLU)
from fastconv.models import Model

# Small versions of the networks: 2 images; MobileNet at alpha 0.25 on 64x64.
CASES = {
    "seed": (bench_models.seed_cnn, (28, 28, 1)),
    "resnet20": (bench_models.resnet20_v1, (32, 32, 3)),
    "mnist_convnet": (bench_models.mnist_convnet, (28, 28, 1)),
    "mobilenet": (lambda: bench_models.mobilenet_v1_style((64, 64, 3), alpha=0.25, classes=10),
                  (64, 64, 3)),
}


def _randomize_batch_norm(model, rng):
    """Non-trivial statistics and affine weights, so a BN converted wrong
    (swapped mean/variance, a lost gamma, another epsilon) shows."""
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            c = layer.moving_mean.value.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.5, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.beta.assign(rng.normal(0.0, 0.5, c).astype(np.float32))


def _case(name, seed=0):
    builder, shape = CASES[name]
    rng = np.random.default_rng(seed)
    with backend.seeded_global_rng(seed):   # the initial weights, the same on every run
        model = builder()
    _randomize_batch_norm(model, rng)
    x = rng.random((2,) + shape, dtype=np.float32)
    return model, x


def _assert_same_probabilities(actual, expected, what):
    """Softmax outputs within 1e-4, and their logarithms within 1e-3: the
    logarithm sees differences of the logits that a saturated softmax hides."""
    assert actual.shape == expected.shape, what
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6, err_msg=what)
    np.testing.assert_allclose(np.log(np.maximum(actual, 1e-30)),
                               np.log(np.maximum(expected, 1e-30)), atol=1e-3, err_msg=what)


def _log_gap(a, b):
    return float(np.abs(np.log(np.maximum(a, 1e-30)) - np.log(np.maximum(b, 1e-30))).max())


# ----------------------------------------------------------------------
# The networks

@pytest.mark.parametrize("name, count", [("seed", 1_101_526), ("resnet20", 274_442),
                                         ("mnist_convnet", 34_826), ("mobilenet", 4_253_864)])
def test_parameter_counts_are_keras(name, count):
    model = bench_models.build(name)
    assert model.count_params() == count
    entry = bench_models.MODELS[name]
    assert model.input_shape == (None,) + entry.input_shape
    assert model.output_shape == (None, entry.classes)


def test_mobilenet_is_keras_applications_mobilenet():
    """Parameters at alpha 1 (96x96) and, at alpha 0.25 on 64x64 with
    Keras' layer names, the same outputs from the same weights (Keras pads
    its stride-2 layers with ZeroPadding2D; 'same' is that on even sizes)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    full = keras.applications.MobileNet(input_shape=(96, 96, 3), weights=None)
    assert full.count_params() == bench_models.mobilenet_v1_style().count_params() == 4_253_864

    model, x = _case("mobilenet")
    small = keras.applications.MobileNet(input_shape=(64, 64, 3), alpha=0.25, weights=None,
                                         classes=10)
    assert small.count_params() == model.count_params()
    ours = {layer.name: layer for layer in model.layers}
    copied = 0
    for layer in small.layers:
        if layer.name in ours and layer.weights:
            layer.set_weights(ours[layer.name].get_weights())
            copied += 1
        elif layer.name == "conv_preds":   # Keras' head: a 1x1 conv in place of the Dense
            kernel, bias = ours["predictions"].get_weights()
            layer.set_weights([kernel.reshape((1, 1) + kernel.shape), bias])
            copied += 1
    assert copied == 1 + 2 * 13 * 2 + 1 + 1   # conv1 + BN, 13 blocks of 2 convs + 2 BNs, head
    # A direct call on a torch tensor: predict and convert_to_numpy use np.array(tensor),
    # which NumPy 2 flags with a DeprecationWarning under torch.
    torch = pytest.importorskip("torch")
    expected = small(torch.from_numpy(x), training=False).detach().numpy()
    _assert_same_probabilities(model.predict(x), expected, "fastconv vs keras.applications")


def test_builders_refuse_bad_arguments():
    with pytest.raises(ValueError, match="classes"):
        bench_models.resnet20_v1(classes=0)
    with pytest.raises(ValueError, match="input_shape"):
        bench_models.mobilenet_v1_style(input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="alpha"):
        bench_models.mobilenet_v1_style(alpha=-1)
    with pytest.raises(ValueError, match="unknown benchmark model"):
        bench_models.build("vgg")


# ----------------------------------------------------------------------
# Inference: every peer equals fastconv's predict

@pytest.mark.parametrize("name", list(CASES))
def test_torch_equals_fastconv(name):
    torch = pytest.importorskip("torch")
    model, x = _case(name)
    expected = model.predict(x)
    module = bench_peers.to_torch(model, exact_padding=True)
    xt = bench_peers.nhwc_to_torch(x)
    assert xt.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        probabilities = bench_peers.torch_to_nhwc(module(xt))
        logits = module(xt, logits=True)
    _assert_same_probabilities(probabilities, expected, f"{name}: torch")
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), expected, rtol=1e-4, atol=1e-6)


def test_torch_symmetric_padding_is_seen_by_the_comparison():
    """ResNet-20's stride-2 3x3 convs on even sizes pad bottom/right only in
    TensorFlow; torch's symmetric padding shifts the windows, which the
    comparison above must notice."""
    torch = pytest.importorskip("torch")
    model, x = _case("resnet20")
    expected = model.predict(x)
    with torch.no_grad():
        symmetric = bench_peers.to_torch(model)(bench_peers.nhwc_to_torch(x)).numpy()
    assert _log_gap(symmetric, expected) > 1e-2
    with pytest.raises(AssertionError):
        _assert_same_probabilities(symmetric, expected, "symmetric padding")
    # The seed CNN has no stride: both paddings agree.
    model, x = _case("seed")
    with torch.no_grad():
        seed = bench_peers.to_torch(model)(bench_peers.nhwc_to_torch(x)).numpy()
    _assert_same_probabilities(seed, model.predict(x), "seed, symmetric padding")


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_runtime_and_openvino_equal_fastconv(name):
    onnx = pytest.importorskip("onnx")
    model, x = _case(name)
    expected = model.predict(x)
    blob = bench_peers.to_onnx(model)
    proto = onnx.load_from_string(blob)
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == bench_peers.OPSET
    assert not any(node.op_type == "Dropout" for node in proto.graph.node)
    runners = []
    if _importable("onnxruntime"):
        runners.append(("onnxruntime", bench_runtimes.ort_session(blob, threads=1)))
    if _importable("openvino"):
        runners.append(("openvino", bench_runtimes.openvino_runner(blob, threads=1)))
    if not runners:
        pytest.skip("neither onnxruntime nor openvino is installed")
    for peer, runner in runners:
        _assert_same_probabilities(runner.run(x), expected, f"{name}: {peer}")
        # Another batch size through the same runner (dynamic batch dimension).
        _assert_same_probabilities(runner.run(x[:1]), expected[:1], f"{name}: {peer}, batch 1")


def _importable(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------
# Training: one SGD step in torch moves the weights as fastconv's fit does

@pytest.mark.parametrize("name", ["seed", "resnet20"])
def test_one_training_step_in_torch_equals_fastconv(name):
    torch = pytest.importorskip("torch")
    from fastconv.optimizers import SGD
    model, x = _case(name, seed=1)
    y = np.array([3, 7])
    module = bench_peers.to_torch(model, exact_padding=True)
    before = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    assert module.fastconv_weights().keys() == before.keys()
    for key, arrays in module.fastconv_weights().items():   # the way back is exact
        for got, want in zip(arrays, before[key]):
            np.testing.assert_array_equal(got, want)

    # The weight penalty is the model's: L2(1e-4) on ResNet's kernels, none in the seed.
    penalty = sum(float(layer.kernel_regularizer(layer.kernel.value)) for layer in model.layers
                  if getattr(layer, "kernel_regularizer", None) is not None)
    assert float(module.regularization_loss().detach()) == pytest.approx(penalty, rel=1e-5)
    assert (penalty > 0) == (name == "resnet20")

    model.compile(optimizer=SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)

    module.train()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    optimizer.zero_grad()
    logits = module(bench_peers.nhwc_to_torch(x), logits=True)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)) + \
        module.regularization_loss()
    loss.backward()
    optimizer.step()

    moved = 0
    for key, arrays in module.fastconv_weights().items():
        layer = model.get_layer(key)
        for got, want, old, var in zip(arrays, layer.get_weights(), before[key], layer.weights):
            what = f"{name}: {var.name}"
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=what)
            step, torch_step = np.linalg.norm(want - old), np.linalg.norm(got - old)
            if step < 1e-6:
                # The biases of the convolutions before a BatchNormalization: their
                # gradient is 0 (the batch mean takes them out) up to rounding.
                assert torch_step < 1e-6, f"{what}: torch moves it by {torch_step:.1e}"
                continue
            moved += 1
            error = np.linalg.norm((got - old) - (want - old)) / step
            assert error < 1e-3, f"{what}: the update differs by {error:.1e} (relative)"
    # Every trainable weight but those biases moved, and the moving statistics.
    assert moved >= len(model.trainable_weights) - (19 if name == "resnet20" else 0)


# ----------------------------------------------------------------------
# What does not convert, and bad arguments

def _small(layer_maker):
    inp = Input(shape=(8, 8, 2))
    x = layer_maker()(inp)
    x = Flatten()(x)
    return Model(inp, Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("maker, what", [
    (lambda: Conv2DTranspose(4, 3), "Conv2DTranspose"),
    (lambda: LeakyReLU(), "LeakyReLU"),
    (lambda: Conv2D(4, 3, activation="tanh"), "activation 'tanh'"),
    (lambda: Conv2D(4, 3, groups=2), "groups=2"),
])
def test_unsupported_layers_are_named(maker, what):
    model = _small(maker)
    for convert in (bench_peers.to_onnx, bench_peers.to_torch):
        with pytest.raises(NotImplementedError, match=what):
            convert(model)


def test_a_flattened_output_is_refused():
    inp = Input(shape=(4, 4, 2))
    model = Model(inp, Flatten()(Conv2D(2, 3)(inp)))
    with pytest.raises(NotImplementedError, match="flattened image"):
        bench_peers.to_onnx(model)


def test_bad_arguments():
    model, _ = _case("seed")
    with pytest.raises(TypeError, match="exact_padding"):
        bench_peers.to_torch(model, exact_padding="yes")
    with pytest.raises(TypeError, match="onnx_bytes"):
        bench_runtimes.ort_session("model.onnx", 1)
    with pytest.raises(ValueError, match="threads"):
        bench_runtimes.openvino_runner(b"", 0)


def test_a_missing_peer_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # import fails
    with pytest.raises(ImportError, match=r"pip install 'fastconv\[bench\]'"):
        bench_runtimes.ort_session(b"not a model", 1)
