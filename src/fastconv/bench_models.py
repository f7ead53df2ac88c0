"""The networks the benchmarks run, built with fastconv's Keras-like API.

Each builder resets the layer names (:func:`fastconv.backend.clear_session`)
and returns an uncompiled :class:`~fastconv.models.Model`, so two builds of
the same network have the same layer names and summary:

* :func:`seed_cnn`: the seed's CNN (28x28x1, two convolutions, a 100-unit
  Dense), 1,101,526 parameters;
* :func:`resnet20_v1`: ResNet-20 v1 for CIFAR-10, as in Keras' example
  ``cifar10_resnet.py`` (``resnet_v1(depth=20)``), 274,442 parameters;
* :func:`mnist_convnet`: keras.io's "Simple MNIST convnet", 34,826 parameters;
* :func:`mobilenet_v1_style`: the body of ``keras.applications.MobileNet``
  (v1) with a GlobalAveragePooling2D + Dense head, 4,253,864 parameters at
  ``alpha=1``, 96x96x3, 1000 classes (Keras' count for the same arguments).

:data:`MODELS` names them for the benchmark's command line. The parameter
counts are Keras' ``count_params()``: BatchNormalization's moving statistics
included.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import backend, ops
from . import regularizers
from .bench_timing import interleaved_medians
from .layers import (Activation, Add, AveragePooling2D, BatchNormalization, Conv2D, Dense,
                     DepthwiseConv2D, Dropout, Flatten, GlobalAveragePooling2D, Input,
                     MaxPooling2D, ReLU)
from .models import Model

__all__ = ["BenchModel", "MODELS", "seed_cnn", "resnet20_v1", "mnist_convnet",
           "mobilenet_v1_style", "build"]

Shape = Tuple[int, int, int]


def _check_classes(classes: int) -> int:
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive int (the number of output classes), "
                         f"got {classes!r}")
    return classes


def _check_input_shape(input_shape: Shape, minimum: int) -> Shape:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                  for d in shape):
        raise ValueError(f"`input_shape` must be (height, width, channels) of positive ints, "
                         f"got {input_shape!r}")
    if min(shape[:2]) < minimum:
        raise ValueError(f"`input_shape` {shape}: height and width must be at least {minimum} "
                         "for this network")
    return shape


def seed_cnn() -> Model:
    """The seed's CNN on 28x28x1 (what ``fastconv.bench`` times end to end).

    Conv2D(32, 3, same, relu) -> Conv2D(64, 3, relu) -> MaxPooling2D(2) ->
    Flatten -> Dense(100, relu) -> Dense(10, softmax): 1,101,526 parameters.
    """
    backend.clear_session()
    inp = Input(shape=(28, 28, 1))
    x = Conv2D(32, 3, padding="same", activation="relu")(inp)
    x = Conv2D(64, 3, activation="relu")(x)
    x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = Dense(100, activation="relu")(x)
    out = Dense(10, activation="softmax")(x)
    return Model(inputs=inp, outputs=out)


def _resnet_layer(x, filters: int, kernel_size: int = 3, strides: int = 1,
                  activation: Optional[str] = "relu", batch_normalization: bool = True):
    """Keras' example's ``resnet_layer`` (conv first): Conv2D -> BN -> activation."""
    x = Conv2D(filters, kernel_size, strides=strides, padding="same",
               kernel_initializer="he_normal", kernel_regularizer=regularizers.l2(1e-4))(x)
    if batch_normalization:
        x = BatchNormalization()(x)
    if activation is not None:
        x = Activation(activation)(x)
    return x


def resnet20_v1(input_shape: Shape = (32, 32, 3), classes: int = 10) -> Model:
    """ResNet-20 v1 of Keras' example ``cifar10_resnet.py`` (``resnet_v1``, depth 20).

    A 3x3 16-filter conv layer, then 3 stages of 3 residual blocks (16, 32,
    64 filters); each block is two conv layers (the second without ReLU)
    added to the shortcut, then ReLU. The first block of stages 2 and 3
    has stride 2 and a 1x1 stride-2 convolution (no BN, no activation) on
    its shortcut. Every conv is 'same', he_normal, L2(1e-4) on the kernel,
    with a bias. Head: AveragePooling2D(8) -> Flatten -> Dense(classes,
    softmax, he_normal). 274,442 parameters for 32x32x3 and 10 classes.
    """
    shape = _check_input_shape(input_shape, 8)
    classes = _check_classes(classes)
    backend.clear_session()
    inp = Input(shape=shape)
    filters = 16
    x = _resnet_layer(inp, filters)
    for stage in range(3):
        for block in range(3):
            downsample = stage > 0 and block == 0
            strides = 2 if downsample else 1
            y = _resnet_layer(x, filters, strides=strides)
            y = _resnet_layer(y, filters, activation=None)
            if downsample:
                x = _resnet_layer(x, filters, kernel_size=1, strides=strides, activation=None,
                                  batch_normalization=False)
            x = Add()([x, y])
            x = Activation("relu")(x)
        filters *= 2
    x = AveragePooling2D(pool_size=8)(x)
    x = Flatten()(x)
    out = Dense(classes, activation="softmax", kernel_initializer="he_normal")(x)
    return Model(inputs=inp, outputs=out)


def mnist_convnet(classes: int = 10) -> Model:
    """keras.io's "Simple MNIST convnet" on 28x28x1.

    Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) ->
    MaxPooling2D(2) -> Flatten -> Dropout(0.5) -> Dense(classes, softmax):
    34,826 parameters for 10 classes.
    """
    classes = _check_classes(classes)
    backend.clear_session()
    inp = Input(shape=(28, 28, 1))
    x = Conv2D(32, 3, activation="relu")(inp)
    x = MaxPooling2D(2)(x)
    x = Conv2D(64, 3, activation="relu")(x)
    x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = Dropout(0.5)(x)
    out = Dense(classes, activation="softmax")(x)
    return Model(inputs=inp, outputs=out)


# keras.applications.MobileNet's 13 depthwise-separable blocks: (pointwise filters, stride).
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                     (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1_style(input_shape: Shape = (96, 96, 3), alpha: float = 1.0,
                       classes: int = 1000) -> Model:
    """MobileNet v1's body (``keras.applications.MobileNet``) with a GAP + Dense head.

    ``conv1``: Conv2D(32*alpha, 3x3, stride 2, no bias) -> BN -> ReLU(6);
    then 13 blocks of DepthwiseConv2D(3x3, no bias) -> BN -> ReLU(6) ->
    Conv2D(filters*alpha, 1x1, no bias) -> BN -> ReLU(6), with Keras' filters
    and strides (64, 128 s2, 128, 256 s2, 256, 512 s2, 5 x 512, 1024 s2,
    1024); GlobalAveragePooling2D -> Dense(classes, softmax). Channel counts
    are ``int(filters * alpha)`` as in Keras.

    Padding is 'same' everywhere. keras.applications pads the stride-2
    layers with ZeroPadding2D(((0, 1), (0, 1))) and convolves 'valid':
    the same arithmetic for even sizes (TensorFlow's 'same' puts the extra
    row and column bottom/right), so the outputs agree for even input
    sizes. Keras' head (GAP with keepdims, Dropout(1e-3), a 1x1 Conv2D,
    Reshape, softmax) has the parameters of this Dense: 4,253,864 in all at
    ``alpha=1``, 96x96x3, 1000 classes, as ``MobileNet(input_shape=(96, 96,
    3), weights=None)``.
    """
    shape = _check_input_shape(input_shape, 32)
    classes = _check_classes(classes)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"`alpha` must be a positive number (the width multiplier), "
                         f"got {alpha!r}")
    backend.clear_session()
    inp = Input(shape=shape)
    x = Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="conv1")(inp)
    x = BatchNormalization(name="conv1_bn")(x)
    x = ReLU(6.0, name="conv1_relu")(x)
    for block_id, (filters, strides) in enumerate(_MOBILENET_BLOCKS, start=1):
        x = DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                            name=f"conv_dw_{block_id}")(x)
        x = BatchNormalization(name=f"conv_dw_{block_id}_bn")(x)
        x = ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
        x = Conv2D(int(filters * alpha), 1, padding="same", use_bias=False,
                   name=f"conv_pw_{block_id}")(x)
        x = BatchNormalization(name=f"conv_pw_{block_id}_bn")(x)
        x = ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)
    x = GlobalAveragePooling2D()(x)
    out = Dense(classes, activation="softmax", name="predictions")(x)
    return Model(inputs=inp, outputs=out)


@dataclass(frozen=True)
class BenchModel:
    """A benchmarked network: its builder (called with no arguments gives the
    network below), the input shape of one image (NHWC without the batch) and
    the number of classes it predicts."""

    builder: Callable[[], Model]
    input_shape: Shape
    classes: int


MODELS: Dict[str, BenchModel] = {
    "seed": BenchModel(seed_cnn, (28, 28, 1), 10),
    "resnet20": BenchModel(resnet20_v1, (32, 32, 3), 10),
    "mnist_convnet": BenchModel(mnist_convnet, (28, 28, 1), 10),
    "mobilenet": BenchModel(mobilenet_v1_style, (96, 96, 3), 1000),
}


def build(name: str) -> Model:
    """The network :data:`MODELS` calls ``name``, freshly built."""
    if name not in MODELS:
        raise ValueError(f"unknown benchmark model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name].builder()


# ----------------------------------------------------------------------
# Timing: each network in fastconv and in the peers, from the same weights

# Batches of the timed runs: inference as in the seed's bench (256; MobileNet
# 32, a 96x96 batch being 30x the seed's work), training as the sources do
# (the seed's fit batch 64, Keras' ResNet example 32, keras.io's MNIST 128).
INFER_BATCH = {"seed": 256, "resnet20": 256, "mnist_convnet": 256, "mobilenet": 32}
TRAIN_BATCH = {"seed": 64, "resnet20": 32, "mnist_convnet": 128}
LATENCY_MODELS = ("seed", "mobilenet")
TRAIN_STEPS = 8
# SGD's rate in every framework's timed training
LEARNING_RATE = 0.01
INFERENCE_PEERS = ("torch", "onnxruntime", "openvino")


def _randomized(name: str, rng: np.random.Generator) -> Model:
    """The network with non-trivial BatchNormalization statistics (a trained
    network's; fresh ones are 0 and 1, which hides a wrong fold)."""
    model = build(name)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            c = layer.moving_mean.shape[0]
            gamma, beta, mean, var = (1 + 0.1 * rng.standard_normal(c),
                                      0.1 * rng.standard_normal(c), 0.1 * rng.standard_normal(c),
                                      0.5 + rng.random(c))
            layer.set_weights([gamma, beta, mean, var])
    return model


def available_peers(wanted: Sequence[str] = INFERENCE_PEERS) -> List[str]:
    """The inference peers of ``wanted`` whose package imports here."""
    modules = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
    found = []
    for peer in wanted:
        if importlib.util.find_spec(modules[peer]) is not None and (
                peer == "torch" or importlib.util.find_spec("onnx") is not None):
            found.append(peer)
    return found


def _inference_runners(model: Model, peers: Sequence[str], threads: int
                       ) -> Dict[str, Callable[[np.ndarray], object]]:
    from . import bench_peers, bench_runtimes
    runners: Dict[str, Callable[[np.ndarray], object]] = {}
    if "torch" in peers:
        import torch
        module = bench_peers.to_torch(model).eval()

        def torch_run(x: np.ndarray, module=module) -> object:
            with torch.no_grad():
                return module(bench_peers.nhwc_to_torch(x))
        runners["torch"] = torch_run
    onnx_peers = [p for p in peers if p in ("onnxruntime", "openvino")]
    if onnx_peers:
        onnx_bytes = bench_peers.to_onnx(model)
        if "onnxruntime" in onnx_peers:
            runners["onnxruntime"] = bench_runtimes.ort_session(onnx_bytes, threads).run
        if "openvino" in onnx_peers:
            runners["openvino"] = bench_runtimes.openvino_runner(onnx_bytes, threads).run
    return runners


class _TorchThreads:
    """torch's intra-op threads set for a block (restored after)."""

    def __init__(self, threads: int, use: bool) -> None:
        self.threads, self.use, self.previous = threads, use, None

    def __enter__(self) -> "_TorchThreads":
        if self.use:
            import torch
            self.previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.use and self.previous is not None:
            import torch
            torch.set_num_threads(self.previous)


def _row(model: str, what: str, threads: int, batch: int, seconds: Dict[str, float],
         n_images: int) -> dict:
    img_s = {k: n_images / v for k, v in seconds.items()}
    peers = {k: v for k, v in img_s.items() if k != "fastconv"}
    best = max(peers, key=peers.get) if peers else None
    return {"model": model, "what": what, "threads": threads, "batch": batch,
            "fastconv_img_s": img_s["fastconv"],
            "fastconv_ms": seconds["fastconv"] * 1e3 * batch / n_images,
            "peers_img_s": peers, "best_peer": best,
            "vs_best_peer": img_s["fastconv"] / peers[best] if best else None}


def bench_inference(name: str, threads: int, batch: int, peers: Sequence[str], rounds: int,
                    rng: np.random.Generator) -> dict:
    """Images/s of inference on batches of ``batch`` (batch 1: single calls,
    ``predict_on_batch``) in fastconv and each peer, alternating."""
    model = _randomized(name, rng)
    x = rng.random((batch,) + MODELS[name].input_shape, dtype=np.float32)
    calls: Dict[str, Callable[[], object]] = {
        "fastconv": (lambda: model.predict_on_batch(x)) if batch == 1
        else (lambda: model.predict(x, batch_size=batch))}
    for peer, run in _inference_runners(model, peers, threads).items():
        calls[peer] = (lambda run=run: run(x))
    previous = ops.set_num_threads(threads)
    try:
        with _TorchThreads(threads, "torch" in peers):
            # single calls in blocks of 10, batches in blocks of 2: each
            # timed call follows one of its own (see interleaved_medians)
            seconds = interleaved_medians(calls, rounds, warmup=3,
                                          block=10 if batch == 1 else 2)
    finally:
        ops.set_num_threads(previous)
    what = "latency (batch 1)" if batch == 1 else f"inference (batch {batch})"
    return _row(name, what, threads, batch, seconds, batch)


def bench_training(name: str, threads: int, batch: int, use_torch: bool, rounds: int,
                   rng: np.random.Generator, steps: int = TRAIN_STEPS) -> dict:
    """Images/s of training (SGD 0.01, sparse cross-entropy, the network's L2
    penalties): fastconv's ``fit`` over ``steps`` batches beside the same
    steps in PyTorch from the same weights."""
    from .optimizers import SGD
    model = _randomized(name, rng)
    n = batch * steps
    x = rng.random((n,) + MODELS[name].input_shape, dtype=np.float32)
    y = rng.integers(0, MODELS[name].classes, size=n)
    calls: Dict[str, Callable[[], object]] = {}
    if use_torch:
        calls["torch"] = _torch_training(model, x, y, batch)
    model.compile(optimizer=SGD(learning_rate=LEARNING_RATE),
                  loss="sparse_categorical_crossentropy")
    calls["fastconv"] = lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0,
                                          shuffle=False)
    previous = ops.set_num_threads(threads)
    try:
        with _TorchThreads(threads, use_torch):
            seconds = interleaved_medians(calls, rounds, warmup=1)
    finally:
        ops.set_num_threads(previous)
    return _row(name, f"training (fit, batch {batch})", threads, batch, seconds, n)


def _torch_training(model: Model, x: np.ndarray, y: np.ndarray, batch: int
                    ) -> Callable[[], None]:
    """One epoch of the PyTorch loop a PyTorch user writes for the network."""
    import torch
    from . import bench_peers
    xt = bench_peers.nhwc_to_torch(x)
    yt = torch.from_numpy(y.astype(np.int64))
    return bench_peers.torch_sgd_epoch(bench_peers.to_torch(model), xt.split(batch),
                                       yt.split(batch), LEARNING_RATE)


def scaling_calls(name: str, rng: np.random.Generator) -> Dict[str, Callable[[], object]]:
    """The calls the many-core model records for a network: one training
    step (``train_on_batch``, the training batch) and one inference batch."""
    from .optimizers import SGD
    model = _randomized(name, rng)
    shape = MODELS[name].input_shape
    calls: Dict[str, Callable[[], object]] = {}
    if name in TRAIN_BATCH:
        batch = TRAIN_BATCH[name]
        x = rng.random((batch,) + shape, dtype=np.float32)
        y = rng.integers(0, MODELS[name].classes, size=batch)
        model.compile(optimizer=SGD(learning_rate=LEARNING_RATE),
                      loss="sparse_categorical_crossentropy")
        calls[f"training step (batch {batch})"] = lambda: model.train_on_batch(x, y)
    xi = rng.random((INFER_BATCH[name],) + shape, dtype=np.float32)
    calls[f"inference (batch {INFER_BATCH[name]})"] = lambda: model.predict_on_batch(xi)
    return calls


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed (it runs in bench_worker's subprocess)."""
    return importlib.util.find_spec("tensorflow") is not None


def bench_model_rows(names: Sequence[str], threads: Sequence[int], peers: Sequence[str],
                     rounds: int, rng: np.random.Generator, with_tensorflow: bool = False,
                     steps: int = TRAIN_STEPS) -> List[dict]:
    """The model table: for each network, training (where it has a training
    batch), inference and batch-1 latency at each thread count, beside the
    peers (TensorFlow through :mod:`fastconv.bench_worker`, in its own
    process, when ``with_tensorflow``)."""
    rows = []
    for name in names:
        for t in threads:
            if name in TRAIN_BATCH:
                rows.append(bench_training(name, t, TRAIN_BATCH[name], "torch" in peers, rounds,
                                           rng, steps))
            rows.append(bench_inference(name, t, INFER_BATCH[name], peers, rounds, rng))
            if name in LATENCY_MODELS:
                rows.append(bench_inference(name, t, 1, peers, rounds * 4, rng))
    if with_tensorflow:
        _add_tensorflow(rows, rng, steps)
    return rows


def _add_tensorflow(rows: List[dict], rng: np.random.Generator, steps: int) -> None:
    """TensorFlow's images/s for each row, measured in a worker process from
    the same weights (not alternating with the others: one process each)."""
    from . import bench_worker
    with tempfile.TemporaryDirectory() as folder:
        weights: Dict[str, str] = {}
        for row in rows:
            name = row["model"]
            if name not in weights:
                weights[name] = os.path.join(folder, f"{name}.npz")
                bench_worker.save_weights(_randomized(name, rng), weights[name])
            training = row["what"].startswith("training")
            spec = {"framework": "tensorflow", "model": name, "weights": weights[name],
                    "mode": "train" if training else "infer", "threads": row["threads"],
                    "batch": row["batch"], "steps": steps if training else
                    (50 if row["batch"] == 1 else 4), "rounds": 5, "warmup": 2}
            result = bench_worker.run_worker(spec)
            row["peers_img_s"]["tensorflow"] = result["img_s"]
            best = max(row["peers_img_s"], key=row["peers_img_s"].get)
            row["best_peer"] = best
            row["vs_best_peer"] = row["fastconv_img_s"] / row["peers_img_s"][best]


def bench_memory_rows(names: Sequence[str], threads: int, frameworks: Sequence[str],
                      rng: np.random.Generator, steps: int = TRAIN_STEPS) -> List[dict]:
    """Peak resident memory of a training run (each framework alone in a
    fresh process, :mod:`fastconv.bench_worker`): MiB at the peak and after
    building the model."""
    from . import bench_worker
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            if name not in TRAIN_BATCH:
                continue
            path = os.path.join(folder, f"{name}.npz")
            bench_worker.save_weights(_randomized(name, rng), path)
            row: dict = {"model": name, "batch": TRAIN_BATCH[name], "threads": threads}
            for framework in frameworks:
                result = bench_worker.run_worker({
                    "framework": framework, "model": name, "weights": path, "mode": "train",
                    "threads": threads, "batch": TRAIN_BATCH[name], "steps": steps,
                    "rounds": 2, "warmup": 1})
                row[f"{framework}_peak_mib"] = result["peak_rss_mib"]
                row[f"{framework}_base_mib"] = result["rss_before_mib"]
            rows.append(row)
    return rows


def model_table(rows: Sequence[dict]) -> str:
    """The model rows: fastconv's images/s, each peer's, the ratio to the best."""
    peers = sorted({p for r in rows for p in r["peers_img_s"]})
    head = f"{'model':14s} {'what':24s} {'thr':>3s} {'fastconv':>9s}"
    head += "".join(f" {p[:11]:>11s}" for p in peers) + f" {'best peer':>11s} {'ratio':>6s}"
    lines = [head + "   (images/s; latency rows also in ms)", "-" * len(head)]
    for r in rows:
        line = (f"{r['model']:14s} {r['what'][:24]:24s} {r['threads']:3d} "
                f"{r['fastconv_img_s']:9.0f}")
        for p in peers:
            value = r["peers_img_s"].get(p)
            line += f" {value:11.0f}" if value is not None else f" {'-':>11s}"
        ratio = r["vs_best_peer"]
        line += f" {r['best_peer'] or '-':>11s} {ratio:6.2f}" if ratio else f" {'-':>11s} {'-':>6s}"
        if r["batch"] == 1:
            line += f"   fastconv {r['fastconv_ms']:.3f} ms"
        lines.append(line)
    return "\n".join(lines)


def memory_table(rows: Sequence[dict]) -> str:
    frameworks = sorted({k[:-9] for r in rows for k in r if k.endswith("_peak_mib")})
    head = f"{'peak RSS of training (MiB)':28s} {'batch':>5s}" + "".join(
        f" {f'{f} peak':>16s} {'(model)':>8s}" for f in frameworks)
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{r['model']:28s} {r['batch']:5d}"
        for f in frameworks:
            line += f" {r.get(f'{f}_peak_mib', float('nan')):16.0f} " \
                    f"{r.get(f'{f}_base_mib', float('nan')):8.0f}"
        lines.append(line)
    return "\n".join(lines)
