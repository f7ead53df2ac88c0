"""A fastconv model's network in the frameworks the benchmarks compare with.

The benchmark builds each network once in fastconv and converts it, so every
peer runs the same weights:

* :func:`to_torch`: a ``torch.nn.Module`` taking NCHW tensors in the
  channels_last memory format (as a PyTorch user with an NHWC-friendly CPU
  setup runs a CNN), trainable, with the model's L2/L1 weight penalties
  (``regularization_loss()``) and the way back (``fastconv_weights()``);
* :func:`to_onnx`: an ONNX model (opset 17) taking NHWC float32 images with
  any batch size, which :mod:`fastconv.bench_runtimes` runs in ONNX Runtime
  and OpenVINO.

Only the layers of :mod:`fastconv.bench_models`' networks convert:
InputLayer, Conv2D (no groups), DepthwiseConv2D, BatchNormalization (on the
channel axis of 4-D input), Activation, ReLU (``max_value`` allowed), Add,
MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout and
Dense, all channels_last; activations linear, relu and softmax. Anything else
raises NotImplementedError naming the layer and its class.

Layouts. fastconv's NHWC activations become NCHW (the order both torch and
ONNX index), HWIO kernels OIHW, a depthwise kernel ``(kh, kw, c, m)`` the
grouped kernel ``(c*m, 1, kh, kw)``, a Dense kernel ``(in, units)`` torch's
``(units, in)``. A Flatten of NHWC lists features in (h, w, c) order, NCHW's
in (c, h, w): instead of a transpose in the forward pass, the rows of the
Dense that reads the flattened features are permuted once, at conversion.

TensorFlow's 'same' padding puts the extra row/column of an odd total at the
bottom/right (stride 2 on even sizes), which torch's symmetric ``padding=``
cannot express. ``to_torch(exact_padding=True)`` pads explicitly (``F.pad``
values as TensorFlow's) and then convolves unpadded, so the outputs equal
fastconv's; the default writes what a torch user writes, the symmetric
padding of the same output size and cost (the outputs then differ at the
borders). ONNX's ``pads`` are per side, so :func:`to_onnx` is always exact.

torch and onnx are imported when a function first needs them (``pip install 'fastconv[bench]'``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _optional, activations
from . import regularizers as regularizers_module
from .layers import (Activation, Add, AveragePooling2D, BatchNormalization, Conv2D, Dense,
                     DepthwiseConv2D, Dropout, Flatten, GlobalAveragePooling2D, InputLayer,
                     MaxPooling2D, ReLU)
from .layers.keras_tensor import shape_tuple
from .shapes import resolve_padding

__all__ = ["to_torch", "torch_sgd_epoch", "nhwc_to_torch", "torch_to_nhwc", "to_onnx", "OPSET"]

OPSET = 17

Pads = Tuple[int, int, int, int]   # (top, bottom, left, right)


def _require(module: str, feature: str):
    return _optional.require(module, "bench", f"fastconv.bench_peers.{feature}")


# ----------------------------------------------------------------------
# The plan: the model's graph as framework-neutral steps


@dataclass
class _Step:
    """One op of the converted network.

    ``kind`` is one of conv, depthwise, batchnorm, relu, relu6, softmax, add,
    maxpool, avgpool, gap, flatten, identity, dense. ``inputs`` and
    ``output`` are value ids (0 is the model's input). ``perm`` (dense only)
    maps the rows of the input features as torch/ONNX order them to the
    Keras row they stand for. ``final_softmax`` marks the softmax that makes
    the model's output (skipped by torch's ``logits=True``).
    """

    kind: str
    layer: Any
    inputs: List[int]
    output: int
    in_shape: Tuple[int, ...] = ()        # Keras shape of the first input, without batch
    out_shape: Tuple[int, ...] = ()
    pads: Pads = (0, 0, 0, 0)
    perm: Optional[np.ndarray] = None
    clip: float = 6.0
    keepdims: bool = False
    final_softmax: bool = False


@dataclass
class _Plan:
    """The steps, the input and output shapes (Keras', without batch) and the
    layout of the output: 'spatial' (NCHW in torch/ONNX) or 'flat'."""

    steps: List[_Step]
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    output_layout: str
    output_id: int
    regularized: List[Tuple[Any, str, float, float]] = field(default_factory=list)


def _describe(layer: Any) -> str:
    return f"layer {layer.name!r} ({type(layer).__name__})"


def _unsupported(layer: Any, why: str) -> NotImplementedError:
    return NotImplementedError(f"fastconv.bench_peers cannot convert {_describe(layer)}: {why}")


def _activation_kind(layer: Any) -> Optional[str]:
    fn = layer.activation
    if fn is activations.linear:
        return None
    if fn is activations.relu:
        return "relu"
    if fn is activations.softmax:
        return "softmax"
    raise _unsupported(layer, f"activation {activations.serialize(fn)!r} (linear, relu and "
                              "softmax convert)")


def _same_pads(layer: Any, in_shape: Tuple[int, ...], kernel: Sequence[int],
               strides: Sequence[int], dilation: Sequence[int] = (1, 1)) -> Pads:
    h, w = in_shape[0], in_shape[1]
    ph = resolve_padding(h, kernel[0], strides[0], layer.padding, dilation[0], what="input height")
    pw = resolve_padding(w, kernel[1], strides[1], layer.padding, dilation[1], what="input width")
    return (ph.before, ph.after, pw.before, pw.after)


def _flatten_perm(in_shape: Tuple[int, ...]) -> np.ndarray:
    """For each feature of an NCHW flatten, the index of the same value in
    the NHWC flatten of Keras."""
    h, w, c = in_shape
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).ravel()


def _same_layout(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a.shape == b.shape and bool(np.all(a == b))


def _regularizer_factors(layer: Any, variable: Any) -> Optional[Tuple[float, float]]:
    reg = variable.regularizer
    if reg is None:
        return None
    if type(reg) in (regularizers_module.L1L2, regularizers_module.L1, regularizers_module.L2):
        return float(getattr(reg, "l1", 0.0)), float(getattr(reg, "l2", 0.0))
    raise _unsupported(layer, f"the regularizer {type(reg).__name__} of weight "
                              f"{variable.name!r} (L1, L2 and L1L2 convert)")


def _plan(model: Any) -> _Plan:
    """The steps that compute ``model``'s output from its input, checked."""
    graph = model._graph_for(False)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise NotImplementedError(
            f"fastconv.bench_peers converts models with one input and one output; model "
            f"{model.name!r} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs")
    input_shape = shape_tuple(graph.inputs[0].shape)[1:]
    if None in input_shape or len(input_shape) not in (1, 3):
        raise NotImplementedError(f"fastconv.bench_peers converts models whose input is an "
                                  f"image (h, w, c) or a vector of known sizes; model "
                                  f"{model.name!r} takes {input_shape}")
    ids: Dict[int, int] = {id(graph.inputs[0]): 0}
    layouts: Dict[int, Any] = {0: "spatial" if len(input_shape) == 3 else "flat"}
    steps: List[_Step] = []
    counter = [0]

    def new_value(layout: Any) -> int:
        counter[0] += 1
        layouts[counter[0]] = layout
        return counter[0]

    for node in graph.execution:
        layer = node.layer
        if node.training is not None:
            raise _unsupported(layer, "a call with an explicit training= argument")
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise _unsupported(layer, f"data_format={layer.data_format!r} (channels_last "
                                      "converts)")
        inputs = [ids[id(t)] for t in node.inbound]
        in_shape = shape_tuple(node.inbound[0].shape)[1:]
        out_shape = shape_tuple(node.output.shape)[1:]
        layout = layouts[inputs[0]]
        spatial = isinstance(layout, str) and layout == "spatial"
        kind = type(layer)

        def add(step_kind: str, inputs=inputs, out_layout: Any = layout, **extra: Any) -> int:
            out = new_value(out_layout)
            steps.append(_Step(step_kind, layer, list(inputs), out, in_shape, out_shape,
                               **extra))
            return out

        if kind in (Conv2D, DepthwiseConv2D):
            if not spatial:
                raise _unsupported(layer, "its input is not an image")
            if kind is Conv2D and layer.groups != 1:
                raise _unsupported(layer, f"groups={layer.groups}")
            if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
                raise _unsupported(layer, "strides and dilation together")
            pads = _same_pads(layer, in_shape, layer.kernel_size, layer.strides,
                              layer.dilation_rate)
            out = add("conv" if kind is Conv2D else "depthwise", pads=pads)
            act = _activation_kind(layer)
            if act is not None:
                in_shape = out_shape
                out = add(act, inputs=[out])
        elif kind is Dense:
            if spatial or len(in_shape) != 1:
                raise _unsupported(layer, f"its input has shape {in_shape} (Dense converts "
                                          "on vectors, e.g. after Flatten)")
            perm = None if isinstance(layout, str) else layout
            out = add("dense", out_layout="flat", perm=perm)
            act = _activation_kind(layer)
            if act is not None:
                in_shape = out_shape
                out = add(act, inputs=[out], out_layout="flat")
        elif kind is BatchNormalization:
            if not spatial or list(layer.axis) != [3]:
                raise _unsupported(layer, f"axis={layer.axis} on input shape {in_shape} (the "
                                          "channel axis of an image converts)")
            out = add("batchnorm")
        elif kind is Activation:
            act = _activation_kind(layer)
            out = ids[id(node.inbound[0])] if act is None else add(act)
        elif kind is ReLU:
            if layer.negative_slope != 0 or layer.threshold != 0:
                raise _unsupported(layer, "negative_slope or threshold other than 0")
            if layer.max_value is None:
                out = add("relu")
            else:
                out = add("relu6", clip=float(layer.max_value))
        elif kind is Add:
            if not all(_same_layout(layouts[i], layout) for i in inputs):
                raise _unsupported(layer, "inputs flattened in different orders")
            out = add("add")
        elif kind in (MaxPooling2D, AveragePooling2D):
            if not spatial:
                raise _unsupported(layer, "its input is not an image")
            pads = _same_pads(layer, in_shape, layer.pool_size, layer.strides)
            if kind is AveragePooling2D and any(pads):
                raise _unsupported(layer, "padding='same' that pads (TensorFlow leaves the "
                                          "padded cells out of the average)")
            out = add("maxpool" if kind is MaxPooling2D else "avgpool", pads=pads)
        elif kind is GlobalAveragePooling2D:
            if not spatial:
                raise _unsupported(layer, "its input is not an image")
            out = add("gap", out_layout="spatial" if layer.keepdims else "flat",
                      keepdims=layer.keepdims)
        elif kind is Flatten:
            if spatial:
                out = add("flatten", out_layout=_flatten_perm(in_shape))
            elif len(in_shape) == 1:
                out = ids[id(node.inbound[0])]
            else:
                raise _unsupported(layer, f"its input has shape {in_shape}")
        elif kind is Dropout:
            # Identity in inference; torch keeps it (nn.Dropout) for training.
            out = add("dropout")
        elif kind is InputLayer:  # pragma: no cover - input nodes are not executed
            continue
        else:
            raise _unsupported(layer, "this layer class is not supported (see the module's "
                                      "docstring for those that are)")
        ids[id(node.output)] = out

    output_id = ids[id(graph.outputs[0])]
    output_layout = layouts[output_id]
    if not isinstance(output_layout, str):
        raise NotImplementedError(f"fastconv.bench_peers: the output of model {model.name!r} is "
                                  "a flattened image (put a Dense after the Flatten)")
    if steps and steps[-1].output == output_id and steps[-1].kind == "softmax":
        steps[-1].final_softmax = True
    regularized = []
    for layer in graph.layers:
        for variable in layer.weights:
            factors = _regularizer_factors(layer, variable)
            if factors is not None and any(factors):
                regularized.append((layer, variable.name, *factors))
    return _Plan(steps, input_shape, shape_tuple(graph.outputs[0].shape)[1:], output_layout,
                 output_id, regularized)


# ----------------------------------------------------------------------
# Weights in NCHW order, and back


def _conv_weights(layer: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(OIHW kernel, bias or None) of a Conv2D or DepthwiseConv2D."""
    if isinstance(layer, DepthwiseConv2D):
        k = layer.depthwise_kernel.value                       # (kh, kw, c, m)
        kh, kw, c, m = k.shape
        w = k.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)   # out channel c*m + j
    else:
        w = layer.kernel.value.transpose(3, 2, 0, 1)
    bias = None if layer.bias is None else layer.bias.value
    return np.ascontiguousarray(w, dtype=np.float32), bias


def _conv_from_oihw(layer: Any, w: np.ndarray) -> np.ndarray:
    if isinstance(layer, DepthwiseConv2D):
        kh, kw, c, m = layer.depthwise_kernel.value.shape
        return np.ascontiguousarray(w.reshape(c, m, kh, kw).transpose(2, 3, 0, 1))
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def _dense_weights(step: _Step) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(kernel ``(in, units)`` with rows in the peers' feature order, bias or None)."""
    k = step.layer.kernel.value
    if step.perm is not None:
        k = k[step.perm]
    bias = None if step.layer.bias is None else step.layer.bias.value
    return np.ascontiguousarray(k, dtype=np.float32), bias


def _dense_from_peer(step: _Step, k_peer: np.ndarray) -> np.ndarray:
    if step.perm is None:
        return np.ascontiguousarray(k_peer)
    k = np.empty_like(k_peer)
    k[step.perm] = k_peer
    return k


def _bn_arrays(layer: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(gamma, beta, moving mean, moving variance, epsilon as fastconv computes)."""
    mean = layer.moving_mean.value.reshape(-1)
    gamma = layer.gamma.value.reshape(-1) if layer.scale else np.ones_like(mean)
    beta = layer.beta.value.reshape(-1) if layer.center else np.zeros_like(mean)
    return gamma, beta, mean, layer.moving_variance.value.reshape(-1), float(layer._epsilon())


# ----------------------------------------------------------------------
# PyTorch

_TORCH_CLASSES: Dict[str, Any] = {}


def _torch_classes() -> Dict[str, Any]:
    """The nn.Module classes of the converted network (defined once torch is imported)."""
    if _TORCH_CLASSES:
        return _TORCH_CLASSES
    torch = _require("torch", "to_torch")
    nn = torch.nn

    class AddN(nn.Module):
        """The sum of its inputs (Keras' Add)."""

        def forward(self, *xs):
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out

    class GlobalAvgPool(nn.Module):
        """Mean over height and width; ``keepdims`` keeps them as size 1."""

        def __init__(self, keepdims: bool) -> None:
            super().__init__()
            self.keepdims = keepdims

        def forward(self, x):
            return x.mean(dim=(2, 3), keepdim=self.keepdims)

    class FrozenBatchNorm(nn.BatchNorm2d):
        """A BatchNormalization whose layer is not trainable: tf.keras 2.x
        normalises it with the moving statistics even in training."""

        def forward(self, x):
            return nn.functional.batch_norm(x, self.running_mean, self.running_var,
                                            self.weight, self.bias, False, 0.0, self.eps)

    class Converted(nn.Module):
        """A fastconv model as a torch module (see :func:`to_torch`).

        ``forward(x, logits=False)``: NCHW input (channels_last memory
        format is what it is tuned for); the model's output, or with
        ``logits=True`` the input of its final softmax.
        """

        def __init__(self, plan: _Plan, modules: List[Any], regularized: List[Tuple[str, float,
                                                                                      float]]
                     ) -> None:
            super().__init__()
            self.ops = nn.ModuleList(modules)
            self._wiring = [(tuple(s.inputs), s.output) for s in plan.steps]
            self._plan = plan
            self._regularized = regularized
            self._final_softmax = bool(plan.steps) and plan.steps[-1].final_softmax

        def forward(self, x, logits: bool = False):
            values = {0: x}
            last = len(self._wiring) - 1
            for index, (module, (ins, out)) in enumerate(zip(self.ops, self._wiring)):
                if logits and index == last and self._final_softmax:
                    return values[ins[0]]
                values[out] = module(*[values[i] for i in ins])
            if logits and not self._final_softmax:
                raise ValueError("logits=True: this model's output is not made by a softmax")
            return values[self._plan.output_id]

        def regularization_loss(self):
            """``sum(l2 * w**2 + l1 * |w|)`` over the regularized weights, as
            fastconv adds it to the loss in ``fit``."""
            params = dict(self.named_parameters())
            total = torch.zeros((), dtype=torch.float32)
            for name, l1, l2 in self._regularized:
                w = params[name]
                if l2:
                    total = total + l2 * (w * w).sum()
                if l1:
                    total = total + l1 * w.abs().sum()
            return total

        def fastconv_weights(self) -> Dict[str, List[np.ndarray]]:
            """``{layer name: arrays}`` in fastconv's layouts and its layers'
            ``get_weights()`` order, from this module's current weights (what
            ``layer.set_weights`` takes)."""
            result: Dict[str, List[np.ndarray]] = {}
            for step, module in zip(self._plan.steps, self.ops):
                layer = step.layer
                if step.kind in ("conv", "depthwise"):
                    conv = module[-1] if isinstance(module, nn.Sequential) else module
                    arrays = [_conv_from_oihw(layer, _np(conv.weight))]
                    if conv.bias is not None:
                        arrays.append(_np(conv.bias))
                elif step.kind == "dense":
                    arrays = [_dense_from_peer(step, _np(module.weight).T)]
                    if module.bias is not None:
                        arrays.append(_np(module.bias))
                elif step.kind == "batchnorm":
                    arrays = ([_np(module.weight)] if layer.scale else []) + (
                        [_np(module.bias)] if layer.center else []) + [
                        _np(module.running_mean), _np(module.running_var)]
                else:
                    continue
                result[layer.name] = arrays
            return result

    def _np(tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().copy()

    _TORCH_CLASSES.update(AddN=AddN, GlobalAvgPool=GlobalAvgPool,
                          FrozenBatchNorm=FrozenBatchNorm, Converted=Converted)
    return _TORCH_CLASSES


def _symmetric_pad(pads: Pads, size: Tuple[int, int], kernel: Tuple[int, int],
                   strides: Tuple[int, int], dilation: Tuple[int, int],
                   out: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """Torch's symmetric ``padding=`` of the same output size (and cost) as
    TensorFlow's pads, or None if there is none."""
    sym = []
    for axis in range(2):
        total = pads[2 * axis] + pads[2 * axis + 1]
        p = -(-total // 2)
        ke = (kernel[axis] - 1) * dilation[axis] + 1
        if (size[axis] + 2 * p - ke) // strides[axis] + 1 != out[axis]:
            return None
        sym.append(p)
    return sym[0], sym[1]


def _torch_op(step: _Step, exact_padding: bool):
    """The torch module of one step, with fastconv's weights."""
    torch = _require("torch", "to_torch")
    nn = torch.nn
    classes = _torch_classes()
    layer = step.layer
    trainable = bool(layer.trainable)

    def param(array: np.ndarray):
        return nn.Parameter(torch.tensor(np.asarray(array, dtype=np.float32)),
                            requires_grad=trainable)

    if step.kind in ("conv", "depthwise", "maxpool"):
        if step.kind == "maxpool":
            kernel, strides, dilation = layer.pool_size, layer.strides, (1, 1)
        else:
            kernel, strides, dilation = layer.kernel_size, layer.strides, layer.dilation_rate
        sym = None if exact_padding else _symmetric_pad(
            step.pads, step.in_shape[:2], kernel, strides, dilation, step.out_shape[:2])
        if sym is not None and step.kind == "maxpool" and max(sym[0], sym[1]) > min(kernel) // 2:
            sym = None  # torch's max pool pads at most half the window
        pre = None
        if sym is None:
            top, bottom, left, right = step.pads
            sym = (0, 0)
            if any(step.pads):
                fill = float("-inf") if step.kind == "maxpool" else 0.0
                pre = nn.ConstantPad2d((left, right, top, bottom), fill)
        if step.kind == "maxpool":
            op = nn.MaxPool2d(kernel, strides, padding=sym)
        else:
            w, b = _conv_weights(layer)
            groups = step.in_shape[2] if step.kind == "depthwise" else 1
            op = nn.Conv2d(step.in_shape[2], w.shape[0], kernel, strides, padding=sym,
                           dilation=dilation, groups=groups, bias=b is not None)
            op.weight = param(w)
            if b is not None:
                op.bias = param(b)
        return op if pre is None else nn.Sequential(pre, op)
    if step.kind == "dense":
        k, b = _dense_weights(step)
        op = nn.Linear(k.shape[0], k.shape[1], bias=b is not None)
        op.weight = param(np.ascontiguousarray(k.T))
        if b is not None:
            op.bias = param(b)
        return op
    if step.kind == "batchnorm":
        gamma, beta, mean, var, eps = _bn_arrays(layer)
        cls = nn.BatchNorm2d if trainable else classes["FrozenBatchNorm"]
        # Keras: moving = momentum * moving + (1 - momentum) * batch; torch
        # weighs the batch by its momentum. Both feed the unbiased variance
        # (fastconv's fused path, that of 4-D input in tf.keras 2.4).
        op = cls(len(mean), eps=eps, momentum=1.0 - float(layer.momentum))
        op.weight = nn.Parameter(torch.tensor(gamma), requires_grad=trainable and layer.scale)
        op.bias = nn.Parameter(torch.tensor(beta), requires_grad=trainable and layer.center)
        op.running_mean.copy_(torch.tensor(mean))
        op.running_var.copy_(torch.tensor(var))
        return op
    if step.kind == "relu":
        return nn.ReLU()
    if step.kind == "relu6":
        return nn.ReLU6() if step.clip == 6.0 else nn.Hardtanh(0.0, step.clip)
    if step.kind == "softmax":
        return nn.Softmax(dim=1)   # the channel axis of NCHW, the features of a vector
    if step.kind == "add":
        return classes["AddN"]()
    if step.kind == "avgpool":
        return nn.AvgPool2d(layer.pool_size, layer.strides)
    if step.kind == "gap":
        return classes["GlobalAvgPool"](step.keepdims)
    if step.kind == "flatten":
        return nn.Flatten(1)
    if step.kind == "dropout":
        return nn.Dropout(float(layer.rate))
    raise AssertionError(step.kind)  # pragma: no cover - _plan makes only the kinds above


def to_torch(model: Any, exact_padding: bool = False):
    """``model`` (a fastconv Model) as a ``torch.nn.Module`` with its current weights.

    Parameters
    ----------
    model : fastconv.models.Model
        Built, one input and one output, made of the layers listed in the
        module's docstring.
    exact_padding : bool
        True: TensorFlow's asymmetric 'same' padding, by an explicit pad before
        the op, so the outputs equal fastconv's. False (default, what the
        benchmark times): torch's symmetric padding of the same cost.

    Returns
    -------
    torch.nn.Module
        In channels_last memory format. ``module(x)`` takes NCHW tensors
        (:func:`nhwc_to_torch` makes them from NHWC arrays without a copy)
        and returns what ``model.predict`` returns (images as NCHW);
        ``module(x, logits=True)`` stops before the final softmax (for
        ``CrossEntropyLoss``). ``module.regularization_loss()`` is the sum of
        the model's weight penalties (add it to the loss to train as
        ``fit`` does); ``module.fastconv_weights()`` gives the weights back in
        fastconv's layouts. ``train()`` / ``eval()`` switch BatchNormalization
        and Dropout as fastconv's training flag does.
    """
    if not isinstance(exact_padding, (bool, np.bool_)):
        raise TypeError(f"`exact_padding` must be True or False, got {exact_padding!r}")
    plan = _plan(model)
    torch = _require("torch", "to_torch")
    classes = _torch_classes()
    modules = [_torch_op(step, bool(exact_padding)) for step in plan.steps]
    # Parameter names in the ModuleList follow the step index.
    names: Dict[Tuple[str, str], str] = {}
    for index, (step, module) in enumerate(zip(plan.steps, modules)):
        if step.kind in ("conv", "depthwise"):
            prefix = f"ops.{index}.1." if isinstance(module, torch.nn.Sequential) else \
                f"ops.{index}."
            names[(step.layer.name, "kernel")] = prefix + "weight"
            names[(step.layer.name, "bias")] = prefix + "bias"
        elif step.kind in ("dense", "batchnorm"):
            names[(step.layer.name, "kernel")] = f"ops.{index}.weight"
            names[(step.layer.name, "gamma")] = f"ops.{index}.weight"
            names[(step.layer.name, "bias")] = f"ops.{index}.bias"
            names[(step.layer.name, "beta")] = f"ops.{index}.bias"
    regularized = []
    for layer, var_name, l1, l2 in plan.regularized:
        short = var_name.rsplit("/", 1)[-1].split(":")[0]
        short = "kernel" if short == "depthwise_kernel" else short
        if (layer.name, short) not in names:
            raise _unsupported(layer, f"the regularizer of weight {var_name!r}")
        regularized.append((names[(layer.name, short)], l1, l2))
    module = classes["Converted"](plan, modules, regularized)
    module.eval()
    return module.to(memory_format=torch.channels_last)


def torch_sgd_epoch(module: Any, xs: Sequence[Any], ys: Sequence[Any], learning_rate: float):
    """The loop a PyTorch user writes to train ``module`` (from :func:`to_torch`)
    as fastconv's ``fit`` with SGD does: cross-entropy on the logits plus the
    model's weight penalties, one step per batch of ``xs``/``ys`` (tensors).
    Returns a function running one epoch of it."""
    torch = _require("torch", "torch_sgd_epoch")
    optimizer = torch.optim.SGD(module.parameters(), lr=learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch() -> None:
        module.train()
        for xb, yb in zip(xs, ys):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(module(xb, logits=True), yb) + module.regularization_loss()
            loss.backward()
            optimizer.step()
    return epoch


def nhwc_to_torch(x: np.ndarray):
    """A float32 NHWC array as the NCHW torch tensor of channels_last memory
    format that shares its memory (a copy only if ``x`` is not C-contiguous
    float32)."""
    torch = _require("torch", "nhwc_to_torch")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4:
        return torch.from_numpy(x)
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def torch_to_nhwc(y) -> np.ndarray:
    """A converted module's output as fastconv gives it (images back to NHWC)."""
    y = y.detach().cpu()
    if y.dim() == 4:
        y = y.permute(0, 2, 3, 1)
    return np.ascontiguousarray(y.numpy())


# ----------------------------------------------------------------------
# ONNX


def to_onnx(model: Any) -> bytes:
    """``model`` (a fastconv Model) as a serialized ONNX model (opset 17).

    Input ``input``: NHWC float32 with a dynamic batch dimension, transposed
    to NCHW by the first node; the ops are NCHW (Conv with TensorFlow's
    per-side ``pads``, ``group`` for depthwise, BatchNormalization with the
    moving statistics, Relu, Clip, Add, MaxPool, AveragePool,
    GlobalAveragePool, Flatten, Gemm, Softmax; Dropout left out). Output
    ``output``: what ``model.predict`` returns (images transposed back to
    NHWC). The model passes ``onnx.checker.check_model``.
    """
    plan = _plan(model)
    onnx = _require("onnx", "to_onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    nodes: List[Any] = []
    inits: List[Any] = []
    names: Dict[int, str] = {}

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    if len(plan.input_shape) == 3:
        nodes.append(helper.make_node("Transpose", ["input"], ["input_nchw"], perm=[0, 3, 1, 2]))
        names[0] = "input_nchw"
    else:
        names[0] = "input"
    for index, step in enumerate(plan.steps):
        layer = step.layer
        ins = [names[i] for i in step.inputs]
        out = f"{layer.name}_{index}_{step.kind}"
        names[step.output] = out
        top, bottom, left, right = step.pads
        pads = [top, left, bottom, right]
        if step.kind in ("conv", "depthwise"):
            w, b = _conv_weights(layer)
            args = ins + [const(f"{layer.name}/kernel", w)]
            if b is not None:
                args.append(const(f"{layer.name}/bias", b))
            nodes.append(helper.make_node(
                "Conv", args, [out], kernel_shape=list(layer.kernel_size),
                strides=list(layer.strides), dilations=list(layer.dilation_rate), pads=pads,
                group=step.in_shape[2] if step.kind == "depthwise" else 1))
        elif step.kind == "dense":
            k, b = _dense_weights(step)
            args = ins + [const(f"{layer.name}/kernel", k)]
            if b is not None:
                args.append(const(f"{layer.name}/bias", b))
            nodes.append(helper.make_node("Gemm", args, [out]))
        elif step.kind == "batchnorm":
            gamma, beta, mean, var, eps = _bn_arrays(layer)
            args = ins + [const(f"{layer.name}/{n}", a) for n, a in
                          (("gamma", gamma), ("beta", beta), ("moving_mean", mean),
                           ("moving_variance", var))]
            nodes.append(helper.make_node("BatchNormalization", args, [out], epsilon=eps))
        elif step.kind == "relu":
            nodes.append(helper.make_node("Relu", ins, [out]))
        elif step.kind == "relu6":
            args = ins + [const(f"{layer.name}/min", np.float32(0.0)),
                          const(f"{layer.name}/max", np.float32(step.clip))]
            nodes.append(helper.make_node("Clip", args, [out]))
        elif step.kind == "softmax":
            nodes.append(helper.make_node("Softmax", ins, [out], axis=1))
        elif step.kind == "add":
            nodes.append(helper.make_node("Add" if len(ins) == 2 else "Sum", ins, [out]))
        elif step.kind in ("maxpool", "avgpool"):
            nodes.append(helper.make_node(
                "MaxPool" if step.kind == "maxpool" else "AveragePool", ins, [out],
                kernel_shape=list(layer.pool_size), strides=list(layer.strides), pads=pads))
        elif step.kind == "gap":
            if step.keepdims:
                nodes.append(helper.make_node("GlobalAveragePool", ins, [out]))
            else:
                nodes.append(helper.make_node("GlobalAveragePool", ins, [out + "_4d"]))
                nodes.append(helper.make_node("Flatten", [out + "_4d"], [out], axis=1))
        elif step.kind == "flatten":
            nodes.append(helper.make_node("Flatten", ins, [out], axis=1))
        elif step.kind == "dropout":
            names[step.output] = ins[0]
        else:  # pragma: no cover - _plan makes only the kinds above
            raise AssertionError(step.kind)
    last = names[plan.output_id]
    if plan.output_layout == "spatial":
        nodes.append(helper.make_node("Transpose", [last], ["output"], perm=[0, 2, 3, 1]))
    else:
        nodes.append(helper.make_node("Identity", [last], ["output"]))
    float32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, model.name,
        [helper.make_tensor_value_info("input", float32, ["N", *plan.input_shape])],
        [helper.make_tensor_value_info("output", float32, ["N", *plan.output_shape])],
        initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="fastconv.bench_peers")
    proto.ir_version = 8   # opset 17's; readers older than the onnx package accept it
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
