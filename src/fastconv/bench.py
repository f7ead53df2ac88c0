"""``python -m fastconv bench``: fastconv against its NumPy backend and PyTorch.

Every number is a median over rounds in which the implementations alternate
(so drift on a shared machine hits them alike), measured in this process:

* per layer (the seed CNN's layers and a few larger ones), forward and
  backward, at 1 thread and at all cores: milliseconds, GFLOP/s, % of the
  measured FMA peak, time / PyTorch's time and NumPy's time / ours;
* four networks end to end (:mod:`fastconv.bench_models`: the seed CNN,
  ResNet-20 v1, keras.io's MNIST convnet, a MobileNet v1 body): training,
  inference and batch-1 latency in images per second beside PyTorch, ONNX
  Runtime and OpenVINO from the same weights (:mod:`fastconv.bench_peers`)
  and TensorFlow in worker processes (:mod:`fastconv.bench_worker`), and
  the peak memory of training per framework;
* the many-core model (:mod:`fastconv.bench_scaling`): predicted
  efficiency of every layer and network at 1-64 threads;
* the optimizers: one update of the seed CNN's 1.1 M weights (fastconv's
  one-pass C rules beside ``torch.optim``'s default multi-tensor path);
* the input pipeline: the same training step fed by a ``Sequence`` whose
  ``__getitem__`` sleeps 5 ms per batch (a slow loader), drawn in the
  training thread (``workers=0``) and prefetched by a thread (``workers=1``):
  the milliseconds per step the loader adds to the array run's; and the
  same with ``flow_from_directory`` decoding and augmenting a folder of
  JPEGs (:mod:`fastconv.bench_input`);
* with ``--distributed``, :mod:`fastconv.bench_distributed` instead.

Forward is convolution + bias + ReLU (PyTorch: ``conv2d`` then in-place
``relu``); backward is the gradients training needs (no input gradient for a
network's first layer), without the ReLU mask, which both sides apply alike.
PyTorch runs channels_last tensors through ``aten.convolution_backward``, the
kernel its autograd calls. TensorFlow's asymmetric 'same' padding of stride-2
layers cannot be expressed in PyTorch; it gets the symmetric padding of equal
cost.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import bench_models, bench_scaling, ops
from .bench_models import seed_cnn
from .bench_timing import interleaved_medians, limit_numpy_blas, measure_peak
from .shapes import conv2d_geometry, conv2d_transpose_geometry, normalize_pair

try:
    from . import _kernels
except ImportError:  # pragma: no cover - a build without the extension
    _kernels = None


@dataclass(frozen=True)
class LayerCase:
    """One benchmarked layer: its sizes in NHWC order whatever ``data_format``."""

    name: str
    x_shape: Tuple[int, int, int, int]     # (n, h, w, c)
    window: Tuple[int, ...]                # HWIO kernel of the convolution (of the associated
                                           # convolution for "transpose"), or (ph, pw)
    strides: int = 1
    padding: str = "valid"
    kind: str = "conv"                     # conv, transpose, maxpool, avgpool, gap, batchnorm,
                                           # relu, dense (x_shape (n, 1, 1, features), window
                                           # (1, 1, features, units))
    first: bool = False                    # network input: no input gradient
    groups: int = 1
    data_format: str = "channels_last"
    dtype: str = "float32"
    seed: bool = False                     # one of the seed CNN's layers (--quick)

    @property
    def channels_first(self) -> bool:
        return self.data_format == "channels_first"

    def geometry(self):
        s = normalize_pair(self.strides, "s")
        if self.kind == "transpose":
            kh, kw, c_out, c_in = self.window
            return conv2d_transpose_geometry(self.x_shape, (kh, kw), c_out * self.groups, s,
                                             self.padding, None, (1, 1), groups=self.groups)
        if self.kind in ("maxpool", "avgpool"):
            return conv2d_geometry(self.x_shape, self.window, self.x_shape[3], s, self.padding)
        if self.kind in ("gap", "batchnorm", "relu"):
            n, h, w, c = self.x_shape
            return conv2d_geometry(self.x_shape, (h, w), c, (1, 1), "valid")
        return conv2d_geometry(self.x_shape, self.window[:2], self.window[3], s, self.padding,
                               groups=self.groups)

    def macs(self) -> float:
        """Multiply-adds of the forward pass; for the memory-bound kinds the
        elements read (no GFLOP/s are reported for them)."""
        g = self.geometry()
        if self.kind == "transpose":   # each input pixel meets every tap of the kernel
            return float(g.n * g.out_h * g.out_w * g.c_out * g.kh * g.kw * g.c_in / g.groups)
        if self.kind in ("conv", "dense"):
            return float(g.n * g.out_h * g.out_w * g.c_out * g.kh * g.kw * g.c_in / g.groups)
        return float(np.prod(self.x_shape))

    @property
    def computes(self) -> bool:
        return self.kind in ("conv", "transpose", "dense")


LAYERS = [
    LayerCase("seed conv2d (28x28x1->32, 3x3 same)", (64, 28, 28, 1), (3, 3, 1, 32), 1, "same",
              first=True, seed=True),
    LayerCase("seed conv2d_1 (28x28x32->64, 3x3 valid)", (64, 28, 28, 32), (3, 3, 32, 64), 1,
              "valid", seed=True),
    LayerCase("seed max_pooling2d (26x26x64, 2x2)", (64, 26, 26, 64), (2, 2), 2, "valid",
              kind="maxpool", seed=True),
    LayerCase("56x56x64->64, 3x3 same", (32, 56, 56, 64), (3, 3, 64, 64), 1, "same"),
    LayerCase("56x56x64->128, 3x3 s2 same", (32, 56, 56, 64), (3, 3, 64, 128), 2, "same"),
    LayerCase("28x28x128->128, 1x1", (32, 28, 28, 128), (1, 1, 128, 128), 1, "valid"),
    # the ops of the layers real CNNs use (issue 11)
    LayerCase("seed conv2d_1 NCHW/OIHW (vs torch NCHW)", (64, 28, 28, 32), (3, 3, 32, 64), 1,
              "valid", data_format="channels_first"),
    LayerCase("seed conv2d_1 float64", (64, 28, 28, 32), (3, 3, 32, 64), 1, "valid",
              dtype="float64"),
    LayerCase("seed max_pooling2d NCHW (vs torch NCHW)", (64, 26, 26, 64), (2, 2), 2, "valid",
              kind="maxpool", data_format="channels_first"),
    LayerCase("depthwise 3x3 56x56x64", (32, 56, 56, 64), (3, 3, 1, 64), 1, "same", groups=64),
    LayerCase("depthwise 3x3 s2 28x28x128", (32, 28, 28, 128), (3, 3, 1, 128), 2, "same",
              groups=128),
    LayerCase("conv2d_transpose 14x14x64->28x28x32 s2", (32, 14, 14, 64), (3, 3, 32, 64), 2,
              "same", kind="transpose"),
    LayerCase("batch norm (training) 56x56x64", (32, 56, 56, 64), (), kind="batchnorm"),
    LayerCase("avg pool 2x2 56x56x64", (32, 56, 56, 64), (2, 2), 2, "valid", kind="avgpool"),
    LayerCase("global avg pool 7x7x512", (32, 7, 7, 512), (), kind="gap"),
    LayerCase("relu 56x56x64", (32, 56, 56, 64), (), kind="relu"),
    LayerCase("seed dense (10816->100)", (64, 1, 1, 10816), (1, 1, 10816, 100), kind="dense",
              seed=True),
]


@dataclass
class LayerProblem:
    """A case's data and its forward/backward calls in fastconv and in PyTorch."""

    fwd: Callable[[], object]
    bwd: Callable[[], object]
    torch_fwd: Optional[Callable[[], object]] = None
    torch_bwd: Optional[Callable[[], object]] = None


def _to_layout(a: np.ndarray, channels_first: bool) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if channels_first else a


def make_problem(case: LayerCase, rng: np.random.Generator, with_torch: bool) -> LayerProblem:
    """Random data of the case's shape and dtype and the calls to time.

    Convolutions: forward = conv + bias + ReLU (PyTorch: the conv, then an
    in-place relu), backward = the gradients training needs, without the ReLU
    mask. PyTorch gets the same layout and dtype (channels_last tensors for
    NHWC) and its backward kernels the autograd calls (aten.*_backward).
    """
    cf, dtype = case.channels_first, np.dtype(case.dtype)
    g = case.geometry()
    x_nhwc = rng.standard_normal(case.x_shape).astype(dtype)
    x = _to_layout(x_nhwc, cf)
    fmt = dict(data_format=case.data_format)
    if case.kind in ("conv", "transpose"):
        kernel = (rng.standard_normal(case.window) * 0.1).astype(dtype)      # HWIO
        out_c = g.c_in if case.kind == "transpose" else g.c_out
        bias = (rng.standard_normal(out_c) * 0.1).astype(dtype)
        k = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)) if cf else kernel
        kw = dict(strides=case.strides, padding=case.padding, groups=case.groups,
                  kernel_format="OIHW" if cf else "HWIO", **fmt)
        if case.kind == "conv":
            y_shape = (g.n, g.out_h, g.out_w, g.c_out)
            fwd = lambda: ops.conv2d(x, k, bias, activation="relu", **kw)  # noqa: E731
            dy_nhwc = rng.standard_normal(y_shape).astype(dtype)
            dy = _to_layout(dy_nhwc, cf)
            bwd = lambda: ops.conv2d_backward(dy, x, k, compute_dx=not case.first,  # noqa
                                              **kw)
        else:
            y_shape = (g.n, g.h, g.w, g.c_in)
            fwd = lambda: ops.conv2d_transpose(x, k, bias, activation="relu", **kw)  # noqa
            dy_nhwc = rng.standard_normal(y_shape).astype(dtype)
            dy = _to_layout(dy_nhwc, cf)
            bwd = lambda: ops.conv2d_transpose_backward(dy, x, k, **kw)  # noqa: E731
    elif case.kind in ("maxpool", "avgpool"):
        pool = ops.max_pool2d if case.kind == "maxpool" else ops.avg_pool2d
        back = ops.max_pool2d_backward if case.kind == "maxpool" else ops.avg_pool2d_backward
        kw = dict(pool_size=case.window, strides=case.strides, padding=case.padding, **fmt)
        dy_nhwc = rng.standard_normal((g.n, g.out_h, g.out_w, g.c_out)).astype(dtype)
        dy = _to_layout(dy_nhwc, cf)
        fwd = lambda: pool(x, **kw)  # noqa: E731
        bwd = lambda: back(dy, x, **kw)  # noqa: E731
    elif case.kind == "gap":
        dy = dy_nhwc = rng.standard_normal((g.n, g.c_in)).astype(dtype)
        fwd = lambda: ops.global_avg_pool2d(x, **fmt)  # noqa: E731
        bwd = lambda: ops.global_avg_pool2d_backward(dy, x, **fmt)  # noqa: E731
    elif case.kind == "batchnorm":
        c = case.x_shape[3]
        gamma = (1 + 0.1 * rng.standard_normal(c)).astype(dtype)
        beta = (0.1 * rng.standard_normal(c)).astype(dtype)
        dy_nhwc = rng.standard_normal(case.x_shape).astype(dtype)
        dy = _to_layout(dy_nhwc, cf)
        _, mean, var = ops.batch_norm_train(x, gamma, beta, **fmt)
        fwd = lambda: ops.batch_norm_train(x, gamma, beta, **fmt)  # noqa: E731
        bwd = lambda: ops.batch_norm_backward(dy, x, gamma, mean, var, **fmt)  # noqa: E731
    elif case.kind == "dense":
        # Dense(units, activation='relu'): forward with the ReLU; backward the
        # gradients training needs (dx, dkernel, dbias), without the ReLU mask
        features, units = case.window[2], case.window[3]
        x2 = x_nhwc.reshape(g.n, features)
        kernel = (rng.standard_normal((features, units)) * 0.01).astype(dtype)
        bias = (rng.standard_normal(units) * 0.1).astype(dtype)
        dy_nhwc = rng.standard_normal((g.n, units)).astype(dtype)
        dy = dy_nhwc
        fwd = lambda: ops.dense(x2, kernel, bias, activation="relu")  # noqa: E731
        bwd = lambda: ops.dense_backward(dy, x2, kernel)  # noqa: E731
    elif case.kind == "relu":
        # Activation('relu'): the forward, and the gradient from its output
        y = ops.relu(x)
        dy_nhwc = rng.standard_normal(case.x_shape).astype(dtype)
        dy = _to_layout(dy_nhwc, cf)
        fwd = lambda: ops.relu(x)  # noqa: E731
        bwd = lambda: ops.relu_backward(dy, y)  # noqa: E731
    else:
        raise ValueError(f"unknown bench kind {case.kind!r}")
    problem = LayerProblem(fwd, bwd)
    if with_torch:
        _add_torch(problem, case, x_nhwc, dy_nhwc, g, locals())
    return problem


def _add_torch(problem: LayerProblem, case: LayerCase, x_nhwc: np.ndarray,
               dy_nhwc: np.ndarray, g, scope: dict) -> None:
    """The case in PyTorch, same data, layout and dtype (``scope``: the
    arrays make_problem made)."""
    import torch
    F = torch.nn.functional
    aten = torch.ops.aten
    fmt = torch.contiguous_format if case.channels_first else torch.channels_last

    def nchw(a_nhwc):
        return torch.from_numpy(np.ascontiguousarray(a_nhwc)).permute(0, 3, 1, 2).contiguous(
            memory_format=fmt)

    x = nchw(x_nhwc)
    dy_t = nchw(dy_nhwc) if dy_nhwc.ndim == 4 else torch.from_numpy(dy_nhwc)
    stride = [g.stride_h, g.stride_w]
    if case.kind in ("conv", "transpose"):
        kernel, bias = scope["kernel"], torch.from_numpy(scope["bias"])
        # Symmetric padding of equal cost (TF's extra bottom/right row cannot
        # be expressed); the outputs have the same size.
        pad = [(g.pad_top + g.pad_bottom + 1) // 2, (g.pad_left + g.pad_right + 1) // 2]
        if case.kind == "conv":
            w = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=fmt)

            def fwd():
                y = F.conv2d(x, w, bias, stride=stride, padding=pad, groups=case.groups)
                return F.relu(y, inplace=True)

            def bwd():
                return aten.convolution_backward(
                    dy_t, x, w, [w.shape[0]], stride, pad, [1, 1], False, [0, 0], case.groups,
                    [not case.first, True, True])
        else:
            # (kh, kw, out, in) HWIO of the associated convolution = (in, out, kh, kw)
            w = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=fmt)
            out_pad = [g.h - ((g.out_h - 1) * g.stride_h - 2 * pad[0] + g.kh),
                       g.w - ((g.out_w - 1) * g.stride_w - 2 * pad[1] + g.kw)]

            def fwd():
                y = F.conv_transpose2d(x, w, bias, stride=stride, padding=pad,
                                       output_padding=out_pad, groups=case.groups)
                return F.relu(y, inplace=True)

            def bwd():
                return aten.convolution_backward(
                    dy_t, x, w, [w.shape[1] * case.groups], stride, pad, [1, 1], True, out_pad,
                    case.groups, [True, True, True])
    elif case.kind == "maxpool":
        k = [g.kh, g.kw]
        _, indices = aten.max_pool2d_with_indices(x, k, stride, [0, 0], [1, 1], False)

        def fwd():
            return F.max_pool2d(x, k, stride)

        def bwd():
            return aten.max_pool2d_with_indices_backward(dy_t, x, k, stride, [0, 0], [1, 1],
                                                         False, indices)
    elif case.kind == "avgpool":
        k = [g.kh, g.kw]

        def fwd():
            return F.avg_pool2d(x, k, stride)

        def bwd():
            return aten.avg_pool2d_backward(dy_t, x, k, stride, [0, 0], False, True, None)
    elif case.kind == "gap":
        dy4 = dy_t.reshape(g.n, g.c_in, 1, 1)

        def fwd():
            return F.adaptive_avg_pool2d(x, 1).flatten(1)

        def bwd():
            return aten._adaptive_avg_pool2d_backward(dy4, x)
    elif case.kind == "dense":
        x2 = torch.from_numpy(scope["x2"])
        w = torch.from_numpy(np.ascontiguousarray(scope["kernel"].T))   # (units, features)
        bias = torch.from_numpy(scope["bias"])

        def fwd():
            return F.relu(F.linear(x2, w, bias), inplace=True)

        def bwd():   # what autograd's linear backward computes
            return dy_t.mm(w), dy_t.t().mm(x2), dy_t.sum(0)
    elif case.kind == "relu":
        y_t = F.relu(x)

        def fwd():
            return F.relu(x)

        def bwd():
            return aten.threshold_backward(dy_t, y_t, 0)
    else:  # batchnorm
        c = case.x_shape[3]
        gamma, beta = torch.from_numpy(scope["gamma"]), torch.from_numpy(scope["beta"])
        running_mean, running_var = torch.zeros(c, dtype=x.dtype), torch.ones(c, dtype=x.dtype)
        _, save_mean, save_invstd = aten.native_batch_norm(x, gamma, beta, running_mean,
                                                           running_var, True, 0.01, 1e-3)

        def fwd():
            return F.batch_norm(x, running_mean, running_var, gamma, beta, training=True,
                                momentum=0.01, eps=1e-3)

        def bwd():
            return aten.native_batch_norm_backward(dy_t, x, gamma, running_mean, running_var,
                                                   save_mean, save_invstd, True, 1e-3,
                                                   [True, True, True])
    problem.torch_fwd = lambda: _no_grad(torch, fwd)
    problem.torch_bwd = lambda: _no_grad(torch, bwd)


def _no_grad(torch, fn):
    with torch.no_grad():
        return fn()


def bench_layer(case: LayerCase, n_threads: int, rounds: int, use_numpy: bool, use_torch: bool,
                rng: np.random.Generator) -> List[dict]:
    problem = make_problem(case, rng, use_torch)

    def on_numpy(fn):
        def run():
            with ops.use_backend("numpy"):
                return fn()
        return run

    fns = {"fastconv fwd": problem.fwd, "fastconv bwd": problem.bwd}
    if use_numpy:
        fns.update({"numpy fwd": on_numpy(problem.fwd), "numpy bwd": on_numpy(problem.bwd)})
    if use_torch:
        fns.update({"torch fwd": problem.torch_fwd, "torch bwd": problem.torch_bwd})

    previous = ops.set_num_threads(n_threads)
    blas_limit = limit_numpy_blas(n_threads)
    if use_torch:
        import torch
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(n_threads)
    try:
        # blocks of 2: each timed call follows one of its own, not the other
        # framework's (see interleaved_medians)
        med = interleaved_medians(fns, rounds, rounds_for={"numpy fwd": 3, "numpy bwd": 3},
                                  block=2)
    finally:
        ops.set_num_threads(previous)
        if blas_limit is not None:
            blas_limit.unregister()
        if use_torch:
            torch.set_num_threads(torch_threads)

    peak = measure_peak(n_threads)
    rows = []
    for direction, work in (("forward", case.macs()),
                            ("backward", case.macs() * (1 if case.first or not case.computes
                                                        else 2))):
        d = {"forward": "fwd", "backward": "bwd"}[direction]
        ours = med[f"fastconv {d}"]
        gflops = 2 * work / ours / 1e9 if case.computes else float("nan")
        if case.dtype == "float64":
            gflops_peak = peak / 2       # half the lanes per vector
        else:
            gflops_peak = peak
        rows.append({
            "layer": case.name, "kind": case.kind, "direction": direction,
            "threads": n_threads, "dtype": case.dtype, "data_format": case.data_format,
            "fastconv_ms": ours * 1e3, "gflops": gflops,
            "pct_peak": 100 * gflops / gflops_peak if case.computes else float("nan"),
            "torch_ms": med[f"torch {d}"] * 1e3 if use_torch else None,
            "numpy_ms": med[f"numpy {d}"] * 1e3 if use_numpy else None,
            "vs_torch": ours / med[f"torch {d}"] if use_torch else None,
            "numpy_speedup": med[f"numpy {d}"] / ours if use_numpy else None,
        })
    return rows


def scaling_rows(layers: Sequence[LayerCase], models: Sequence[str],
                 rng: np.random.Generator) -> List[dict]:
    """The many-core model (:mod:`fastconv.bench_scaling`) of each layer's
    forward and backward and of each network's training and inference
    calls, from one-thread records of the bench's own problems."""
    out: List[dict] = []
    for case in layers:
        problem = make_problem(case, rng, False)
        for direction, fn in (("fwd", problem.fwd), ("bwd", problem.bwd)):
            out += bench_scaling.scaling_rows(f"{case.name} {direction}",
                                              bench_scaling.record(fn, repeats=3))
    for name in dict.fromkeys(models):
        for what, fn in bench_models.scaling_calls(name, rng).items():
            out += bench_scaling.scaling_rows(f"{name} {what}",
                                              bench_scaling.record(fn, repeats=2))
    return out


# fastconv optimizer -> (the torch.optim class, its arguments), for the same rule.
_OPTIMIZER_PEERS = {
    "SGD(momentum=0.9)": ("SGD", {"lr": 0.01, "momentum": 0.9}),
    "Adam": ("Adam", {"lr": 0.001}),
    "RMSprop": ("RMSprop", {"lr": 0.001, "alpha": 0.9}),
    "Adagrad": ("Adagrad", {"lr": 0.001}),
    "Adadelta": ("Adadelta", {"lr": 0.001}),
    "Adamax": ("Adamax", {"lr": 0.001}),
    "Nadam": ("NAdam", {"lr": 0.001}),
}


def bench_optimizers(n_threads: int, use_torch: bool, rng: np.random.Generator) -> List[dict]:
    """Milliseconds of one update of the seed CNN's weights, per optimizer."""
    from . import optimizers
    shapes = [tuple(v.shape) for v in seed_cnn().trainable_weights]
    rows = []
    for label, (torch_name, torch_args) in _OPTIMIZER_PEERS.items():
        params = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
        grads = [rng.standard_normal(shape).astype(np.float32) * 1e-3 for shape in shapes]
        ours = (optimizers.SGD(0.01, momentum=0.9) if label.startswith("SGD")
                else optimizers.get(label.lower()))
        fns = {"fastconv": lambda: ours.apply_gradients(zip(grads, params))}
        if use_torch:
            import torch
            tparams = [torch.from_numpy(p.copy()).requires_grad_() for p in params]
            for tp, g in zip(tparams, grads):
                tp.grad = torch.from_numpy(g.copy())
            theirs = getattr(torch.optim, torch_name)(tparams, **torch_args)
            fns["torch"] = theirs.step
            torch_threads = torch.get_num_threads()
            torch.set_num_threads(n_threads)
        previous = ops.set_num_threads(n_threads)
        try:
            med = interleaved_medians(fns, rounds=15, warmup=3)
        finally:
            ops.set_num_threads(previous)
            if use_torch:
                torch.set_num_threads(torch_threads)
        ours_ms = med["fastconv"] * 1e3
        theirs_ms = med["torch"] * 1e3 if use_torch else None
        rows.append({"optimizer": label, "threads": n_threads, "fastconv_ms": ours_ms,
                     "torch_ms": theirs_ms,
                     "vs_torch": ours_ms / theirs_ms if theirs_ms else None})
    return rows


LOADER_SLEEP_S = 0.005


class _SlowLoader:
    """A Sequence of the training batches whose every batch takes 5 ms to load."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def __getitem__(self, index: int):
        time.sleep(LOADER_SLEEP_S)
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]


def bench_loader(n_threads: int, train_batches: int, rng: np.random.Generator) -> List[dict]:
    """Milliseconds per training step with a 5 ms/batch loader beside arrays.

    Each call is one epoch of ``fit``; its first batch cannot be fetched
    ahead (an epoch's batches follow ``on_epoch_end`` of the one before), so
    the prefetched row carries 5 ms / ``train_batches`` of that wait.
    """
    from .optimizers import SGD
    batch = 64
    n_train = batch * train_batches
    x = rng.random((n_train, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=n_train)
    model = seed_cnn()
    model.compile(optimizer=SGD(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    loader = _SlowLoader(x, y, batch)
    fns = {
        "arrays": lambda: model.fit(x, y, batch_size=batch, verbose=0, shuffle=False),
        "workers=0": lambda: model.fit(loader, verbose=0, workers=0),
        "workers=1": lambda: model.fit(loader, verbose=0, workers=1),
    }
    previous = ops.set_num_threads(n_threads)
    try:
        med = interleaved_medians(fns, rounds=7, warmup=1)
    finally:
        ops.set_num_threads(previous)
    base = med["arrays"] / train_batches * 1e3
    rows = []
    for how in ("workers=0", "workers=1"):
        step = med[how] / train_batches * 1e3
        rows.append({"what": f"fit on a 5 ms/batch Sequence, {how}", "threads": n_threads,
                     "array_ms_step": base, "loader_ms_step": step, "extra_ms": step - base})
    return rows


# ---------------------------------------------------------------------------
# Report

def _fmt(value, spec):
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) \
        else format(value, spec)


_SHORT = {"forward": "fwd", "backward": "bwd"}


def layer_table(rows: Sequence[dict]) -> str:
    header = (f"{'layer':42s} {'dir':4s} {'thr':>3s} {'ms':>8s} {'GFLOP/s':>8s} {'%peak':>6s} "
              f"{'torch ms':>9s} {'/torch':>7s} {'numpy ms':>9s} {'xNumPy':>7s}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['layer'][:42]:42s} {_SHORT[r['direction']]:4s} {r['threads']:3d} "
            f"{r['fastconv_ms']:8.2f} {_fmt(r['gflops'], '8.0f')} {_fmt(r['pct_peak'], '6.0f')} "
            f"{_fmt(r['torch_ms'], '9.2f')} {_fmt(r['vs_torch'], '7.2f')} "
            f"{_fmt(r['numpy_ms'], '9.1f')} {_fmt(r['numpy_speedup'], '7.1f')}")
    return "\n".join(lines)


def optimizer_table(rows: Sequence[dict]) -> str:
    header = (f"{'optimizer step (seed CNN weights)':38s} {'thr':>3s} {'ms':>8s} "
              f"{'torch ms':>9s} {'/torch':>7s}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['optimizer']:38s} {r['threads']:3d} {r['fastconv_ms']:8.2f} "
                     f"{_fmt(r['torch_ms'], '9.2f')} {_fmt(r['vs_torch'], '7.2f')}")
    return "\n".join(lines)


def loader_table(rows: Sequence[dict]) -> str:
    header = (f"{'input pipeline (seed CNN, batch 64)':38s} {'thr':>3s} {'arrays ms/step':>15s} "
              f"{'loader ms/step':>15s} {'added ms':>9s}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['what']:38s} {r['threads']:3d} {r['array_ms_step']:15.2f} "
                     f"{r['loader_ms_step']:15.2f} {r['extra_ms']:9.2f}")
    return "\n".join(lines)


def geomean_vs_torch(rows: Sequence[dict]) -> Optional[float]:
    ratios = [r["vs_torch"] for r in rows if r.get("vs_torch")]
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else None


def draw_chart(rows: Sequence[dict], path: str, model_rows: Sequence[dict] = ()) -> bool:
    """Bars of fastconv's time / PyTorch's per layer row and, below, of the
    best peer's images/s / fastconv's per model row (both: lower is better)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = []
    layer_ratios = [r for r in rows if r.get("vs_torch")]
    if layer_ratios:
        panels.append(([f"{r['layer'].split(' (')[0][:28]} {_SHORT[r['direction']]} "
                        f"{r['threads']}T" for r in layer_ratios],
                       [r["vs_torch"] for r in layer_ratios],
                       "fastconv time / PyTorch time (lower is better)",
                       "layers: fastconv vs PyTorch CPU (oneDNN, channels_last), medians"))
    model_ratios = [r for r in model_rows if r.get("vs_best_peer")]
    if model_ratios:
        panels.append(([f"{r['model']} {r['what'].split(' (')[0]} b{r['batch']} "
                        f"{r['threads']}T ({r['best_peer']})" for r in model_ratios],
                       [1 / r["vs_best_peer"] for r in model_ratios],
                       "fastconv time / the best peer's time (lower is better)",
                       "networks: fastconv vs the best peer (images/s ratio)"))
    if not panels:
        return False
    heights = [0.32 * len(p[0]) + 1.2 for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights) + 0.5),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (labels, values, xlabel, title) in zip(axes[:, 0], panels):
        colors = ["tab:green" if v <= 1.0 else "tab:red" for v in values]
        ax.barh(range(len(values)), values, color=colors)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_yticks(range(len(values)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def environment() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "fastconv_threads_default": ops.get_num_threads()}
    if _kernels is not None:
        info.update(simd=_kernels.get_simd(), openmp=_kernels.openmp_enabled())
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastconv bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default=None,
                        help="comma-separated thread counts (default: 1 and all cores)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per layer (default 15)")
    parser.add_argument("--quick", action="store_true", help="the seed layers only, 7 rounds")
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy backend")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-model", action="store_true",
                        help="skip the whole-network benchmarks (training, inference, latency)")
    parser.add_argument("--models", default=None,
                        help="comma-separated networks of the model table (default: all of "
                             "seed, resnet20, mnist_convnet, mobilenet; --quick: seed)")
    parser.add_argument("--no-tensorflow", action="store_true",
                        help="leave TensorFlow out of the model table (it runs in worker "
                             "processes, about 10 s per row)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory rows of training (one process each)")
    parser.add_argument("--no-scaling", action="store_true",
                        help="skip the many-core model (predicted efficiency at 1-64 threads)")
    parser.add_argument("--distributed", action="store_true",
                        help="only fastconv.distributed on local Dask clusters of 1 and 2 "
                             "workers (needs fastconv[dask])")
    parser.add_argument("--no-optimizers", action="store_true",
                        help="skip the optimizer-step benchmark")
    parser.add_argument("--no-images", action="store_true",
                        help="skip the image-folder input benchmark (flow_from_directory JPEGs)")
    parser.add_argument("--no-loader", action="store_true",
                        help="skip the input-pipeline (slow loader) benchmark")
    parser.add_argument("--only", default=None,
                        help="comma-separated words: the layers whose names hold one")
    parser.add_argument("--json", default="bench_results/bench.json", help="JSON output path")
    parser.add_argument("--png", default="bench_results/bench.png", help="chart path")
    args = parser.parse_args(argv)

    if _kernels is None:
        print("fastconv's C extension is not built; nothing to benchmark", file=sys.stderr)
        return 1
    if args.distributed:
        from .bench_distributed import main as distributed_main
        return distributed_main()
    cores = os.cpu_count() or 1
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else sorted({1, ops.get_num_threads(), cores}))
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: comparing with NumPy only "
                  "(pip install torch for the PyTorch columns)")
            use_torch = False
    layers = [c for c in LAYERS if c.seed] if args.quick else LAYERS
    if args.only:
        layers = [c for c in layers if any(word.lower() in c.name.lower()
                                           for word in args.only.split(","))]
    rounds = 7 if args.quick else args.rounds
    env = environment()
    print("fastconv bench:", ", ".join(f"{k}={v}" for k, v in env.items()))
    peaks = {t: measure_peak(t) for t in threads}
    print("measured FMA peak:", ", ".join(f"{t} thread(s) {p:.0f} GFLOP/s"
                                          for t, p in peaks.items()))
    rng = np.random.default_rng(0)
    rows: List[dict] = []
    print(layer_table([]))
    for case in layers:
        for t in threads:
            new_rows = bench_layer(case, t, rounds, not args.no_numpy, use_torch, rng)
            rows.extend(new_rows)
            for line in layer_table(new_rows).splitlines()[2:]:
                print(line, flush=True)
    print("GFLOP/s count the direct algorithm's multiply-adds; 3x3 stride-1 layers run "
          "Winograd (2.25x fewer), so their % of peak can pass 100.")
    g = geomean_vs_torch(rows)
    if g is not None:
        print(f"geometric mean of fastconv / PyTorch time over these rows: {g:.2f}")
    model_rows: List[dict] = []
    memory_rows: List[dict] = []
    if not args.no_model:
        names = ["seed"] if args.quick else (
            [n.strip() for n in args.models.split(",")] if args.models
            else list(bench_models.MODELS))
        for name in names:
            if name not in bench_models.MODELS:
                parser.error(f"--models: unknown model {name!r}; choose from "
                             f"{sorted(bench_models.MODELS)}")
        wanted = [p for p in bench_models.INFERENCE_PEERS if use_torch or p != "torch"]
        peers = bench_models.available_peers(wanted)
        if len(peers) < len(wanted):
            print(f"not installed, so not compared: {sorted(set(wanted) - set(peers))} "
                  "(pip install 'fastconv[bench]')")
        with_tf = (not args.quick and not args.no_tensorflow
                   and bench_models.tensorflow_available())
        model_rows = bench_models.bench_model_rows(
            names, threads, peers, rounds=3 if args.quick else 5, rng=rng,
            with_tensorflow=with_tf, steps=4 if args.quick else bench_models.TRAIN_STEPS)
        print()
        print(bench_models.model_table(model_rows))
        if not args.no_memory and not args.quick:
            frameworks = ["fastconv"] + (["torch"] if "torch" in peers else []) + (
                ["tensorflow"] if with_tf else [])
            memory_rows = bench_models.bench_memory_rows(names, max(threads), frameworks, rng)
            print()
            print(bench_models.memory_table(memory_rows))
    scaling: List[dict] = []
    if not args.no_scaling:
        scaling = scaling_rows(layers, [r["model"] for r in model_rows if r["threads"] == 1],
                               rng)
        print()
        print(bench_scaling.scaling_table(scaling))
    optimizer_rows: List[dict] = []
    if not args.no_optimizers:
        for t in threads:
            optimizer_rows.extend(bench_optimizers(t, use_torch, rng))
        print()
        print(optimizer_table(optimizer_rows))
    image_rows: List[dict] = []
    if not args.no_images:
        try:
            import PIL  # noqa: F401
        except ImportError:
            print("Pillow is not installed: no image-folder rows (pip install 'fastconv[image]')")
        else:
            from .bench_input import bench_image_input, image_input_table
            for t in threads:
                image_rows.extend(bench_image_input(t, 4 if args.quick else 8, rng))
            print()
            print(image_input_table(image_rows))
    loader_rows: List[dict] = []
    if not args.no_loader:
        for t in threads:
            loader_rows.extend(bench_loader(t, train_batches=4 if args.quick else 16, rng=rng))
        print()
        print(loader_table(loader_rows))
    out = {"environment": env, "peak_gflops": peaks, "layers": rows, "models": model_rows,
           "memory": memory_rows, "scaling": scaling, "optimizers": optimizer_rows,
           "loader": loader_rows, "image_input": image_rows, "geomean_vs_torch": g}
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    if args.png and draw_chart(rows, args.png, model_rows):
        print(f"wrote {args.png}")
    return 0
