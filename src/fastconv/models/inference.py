"""Inference plans: ``model(x)``, ``predict`` and ``predict_on_batch`` without
per-call work beyond the kernels.

A plan is made for one graph, one input signature (shapes and dtypes) and
one ``training`` argument (None or False), at the first call that has them,
and reused while they stay the same. Making it:

* every Conv2D / DepthwiseConv2D / Dense / MaxPooling2D / AveragePooling2D
  call becomes a :mod:`fastconv.prepared` op (arguments checked and geometry
  resolved once);
* a convolution (or Dense) with a linear activation whose output only a
  BatchNormalization in inference mode reads is folded with it: the kernel
  scaled by ``gamma / sqrt(moving_variance + epsilon)`` per output channel,
  the bias ``(bias - moving_mean) * scale + beta``, computed in float64 and
  rounded once (TensorFlow's and ONNX Runtime's graph optimisers do the
  same). The results differ from the unfolded layers by rounding only
  (measured: up to 4e-7 relative on the bench MobileNet's float32
  probabilities, 3e-5 on ResNet-20's after 19 folds and a saturated softmax);
* a ReLU after such an op (``Activation('relu')``, ``ReLU()`` or
  ``ReLU(max_value=6)``), read by nothing else, is fused into its store;
* a channels-last Conv2D (with the above) whose output only a 2x2 stride-2
  MaxPooling2D reads becomes one :func:`~fastconv.prepared.prepare_conv2d_maxpool`
  op: where the C kernel fuses them, the convolution's output is never
  stored (the seed CNN's conv2d_1 -> max_pooling2d: 44 MB at batch 256);
* an Add of two float arrays of one shape (a residual connection) is one
  :func:`~fastconv.ops.add` pass, with the plain ReLU that alone reads it
  (ResNet-20 at batch 256: 0.9x the time, no temporary faulting fresh pages);
* GlobalAveragePooling2D becomes a prepared op too; a channels-last
  Flatten and an inference Dropout keep their input's memory;
* a run of such float32 channels-last steps that only feed one another
  (each value read by the next step alone, none a model output) is one
  :class:`~fastconv.prepared.PreparedChain`: one call into the C kernels,
  bit for bit the steps (a non-fused activation, Dense's softmax, runs on
  its output; steps with light kernels a slice of the batch at a time); it
  is bound again to the current weights when any
  variable changed (``Variable._changes``) or the dispatch did;
* every other layer call runs as in :meth:`Graph.run`, with the same
  ``training`` argument it would get there.

A convolution or Dense whose kernel the C kernels prepare (its Winograd
transform, or B packed into the GEMM's panels:
:meth:`~fastconv.prepared.PreparedOp.prepare_kernel`) keeps it prepared.
Folded copies and prepared kernels are the model's, shared by its plans:
one of each per layer, whatever the number of input shapes (about the
weights' size again; a Winograd transform 1.8 times its kernel).

A folded copy or a prepared kernel is remade when one of the weights it
came from changed: the plan keeps the :class:`~fastconv.layers.base.Variable`
versions it was made at (see ``Variable._version``: ``assign``,
``set_weights``, the optimizers and handing out the live array all change
it), and a prepared kernel also the SIMD path. Layers that are not folded
read their live weights at every call.

Not planned (the graph runs as before): graphs with an activity
regularizer (``model.losses`` needs the penalties) and calls with
``training=True``.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import activations, ops, prepared
from ..layers.activation import ReLU
from ..layers.base import Node, Variable
from ..layers.convolutional import Conv2D, DepthwiseConv2D
from ..layers.core import Activation, Dense, Flatten
from ..layers.merge import Add
from ..layers.normalization import BatchNormalization
from ..layers.pooling import AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D
from ..layers.regularization import Dropout

__all__ = ["InferencePlan", "plan_for", "relu_kind"]

# Plans kept per model: a predict call makes two (full batches, the last one).
MAX_PLANS_PER_MODEL = 4

Signature = Tuple[Any, ...]


def _signature(arrays: Sequence[np.ndarray], training: Optional[bool]) -> Signature:
    return (training,) + tuple((a.shape, a.dtype.str) for a in arrays)


def plannable(graph: Any) -> bool:
    """Whether the graph's calls can run from a plan (no activity penalties)."""
    return all(node.layer.activity_regularizer is None for node in graph.execution)


def plan_for(owner: Any, graph: Any, arrays: Sequence[np.ndarray],
             training: Optional[bool]) -> Optional["InferencePlan"]:
    """The plan of ``owner`` (a model) for ``graph`` and these inputs, made
    on first use; None when the graph or the call is not planned."""
    if training or not plannable(graph):
        return None
    plans: Dict[Signature, InferencePlan] = owner.__dict__.setdefault("_inference_plans", {})
    key = _signature(arrays, training)
    plan = plans.get(key)
    if plan is not None and plan.graph is graph:
        return plan
    if len(plans) >= MAX_PLANS_PER_MODEL:
        plans.pop(next(iter(plans)))
    plan = InferencePlan(graph, training, owner.__dict__.setdefault("_inference_shared", {}))
    plans[key] = plan
    return plan


class _Link:
    """How a step joins a chain (prepared.PreparedChain): its op, its
    current weights (kernel, bias, prepared kernel) and what runs on the
    chain's output when it is the last (a non-fused activation)."""

    __slots__ = ("op", "weights", "post")

    def __init__(self, op: prepared.PreparedOp,
                 weights: Optional[Callable[[], Tuple[Any, Any, Any]]] = None,
                 post: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
        self.op, self.weights, self.post = op, weights, post


# the link of a layer whose output is its input's memory (Flatten of
# channels-last data, Dropout at inference): no call of its own in a chain
_SAME_MEMORY = _Link(None)  # type: ignore[arg-type]


def _linked(run: Callable[[List[np.ndarray]], np.ndarray], link: _Link
            ) -> Callable[[List[np.ndarray]], np.ndarray]:
    run.link = link  # type: ignore[attr-defined]
    return run


def _chain_step(fns: List[Callable[[List[np.ndarray]], np.ndarray]]
                ) -> Callable[[List[np.ndarray]], np.ndarray]:
    """One step for the linked steps ``fns`` (see InferencePlan._chained):
    their ops as one prepared.PreparedChain, bound again to the current
    weights when any variable, the SIMD path or the Winograd setting
    changed; the steps themselves where the chain declines, and in a
    thread that finds the chain running in another (a chain is one call at
    a time: binding while a call reads the weights would free them)."""
    links = [fn.link for fn in fns if fn.link is not _SAME_MEMORY]  # type: ignore[attr-defined]
    chain = prepared.PreparedChain([link.op for link in links])
    post = links[-1].post
    kernels = ops._kernels
    bound_at: List[Any] = [None]
    busy = threading.Lock()

    def run(ins: List[np.ndarray]) -> np.ndarray:
        y = None
        if busy.acquire(blocking=False):
            try:
                key = (Variable._changes, kernels.get_simd(), kernels.get_winograd())
                if key != bound_at[0]:
                    for i, link in enumerate(links):
                        chain.bind(i, *(link.weights() if link.weights is not None
                                        else (None, None, None)))
                    bound_at[0] = key
                y = chain(ins[0])
            finally:
                busy.release()
        if y is None:
            value = ins[0]
            for fn in fns:
                value = fn([value])
            return value
        return y if post is None else post(y)
    run.chained, run.chain = fns, chain  # type: ignore[attr-defined]
    return run


class _RefusedBy(ValueError):
    """A ValueError of a fused chain's later call (its layer named)."""

    def __init__(self, layer: Any, exc: ValueError) -> None:
        super().__init__(str(exc))
        self.layer = layer


class _Folded:
    """A kernel and bias with BatchNormalization folded in, remade when one
    of its source variables changed."""

    __slots__ = ("sources", "versions", "make", "kernel", "bias")

    def __init__(self, sources: List[Variable], make: Callable[[], Tuple[np.ndarray,
                                                                           np.ndarray]]):
        self.sources, self.make = sources, make
        self.versions: Tuple[int, ...] = ()
        self.kernel = self.bias = None

    def current(self) -> Tuple[np.ndarray, np.ndarray]:
        versions = tuple(v._version for v in self.sources)
        if versions != self.versions:
            self.kernel, self.bias = self.make()
            self.versions = tuple(v._version for v in self.sources)
        return self.kernel, self.bias


class _PreparedKernel:
    """A layer's prepared kernel, remade when one of its source variables
    changed or the kernels' dispatch did (SIMD path, Winograd). One per
    layer and kernel layout, shared by the model's plans (a predict call
    makes two: full batches and the last one), so the model holds one copy."""

    __slots__ = ("sources", "key", "prepared")

    def __init__(self, sources: List[Variable]) -> None:
        self.sources = sources
        self.key: Optional[Tuple[Any, ...]] = None
        self.prepared: Optional[np.ndarray] = None

    def get(self, op: prepared.PreparedOp, kernel: np.ndarray) -> Optional[np.ndarray]:
        kernels = ops._kernels
        key = (tuple(v._version for v in self.sources), kernels.get_simd(),
               kernels.get_winograd())
        if key != self.key:
            self.prepared = None   # the old one freed before the new one is made
            self.prepared = op.prepare_kernel(kernel)
            self.key = key
        return self.prepared


def relu_kind(layer: Any) -> Optional[str]:
    """'relu' or 'relu6' for a layer that is only that activation, else None."""
    if type(layer) is Activation and layer.activation is activations.relu:
        return "relu"
    if type(layer) is ReLU and layer.negative_slope == 0 and layer.threshold == 0:
        if layer.max_value is None:
            return "relu"
        if layer.max_value == 6:
            return "relu6"
    return None


def _conv_kernel_and_bias(layer: Any) -> Tuple[Variable, Optional[Variable]]:
    kernel = layer.depthwise_kernel if type(layer) is DepthwiseConv2D else layer.kernel
    return kernel, (layer.bias if layer.use_bias else None)


def _hwio(layer: Any, kernel: np.ndarray) -> np.ndarray:
    """The kernel as ops.conv2d takes it (a depthwise one as (kh, kw, 1, c * mult))."""
    if type(layer) is DepthwiseConv2D:
        kh, kw, c, mult = kernel.shape
        return kernel.reshape(kh, kw, 1, c * mult)
    return kernel


class InferencePlan:
    """The steps of one graph for one input signature (see the module doc)."""

    def __init__(self, graph: Any, training: Optional[bool],
                 shared: Optional[Dict[Any, Any]] = None) -> None:
        self.graph = graph
        self.training = training
        # the owner's folded copies and prepared kernels, shared by its plans
        # (one copy per layer, not one per input shape)
        self.shared: Dict[Any, Any] = {} if shared is None else shared
        self.steps: Optional[List[Tuple[Callable[[List[np.ndarray]], np.ndarray],
                                        List[int], int, List[int]]]] = None

    # ------------------------------------------------------------------

    def run(self, arrays: List[np.ndarray]) -> List[np.ndarray]:
        """The graph's outputs for one array per input."""
        if self.steps is None:
            return self._build_and_run(arrays)
        values: Dict[int, np.ndarray] = {id(t): a for t, a in zip(self.graph.inputs, arrays)}
        for fn, inbound, out, free in self.steps:
            values[out] = fn([values[i] for i in inbound])
            for i in free:
                del values[i]
        return [values[id(t)] for t in self.graph.outputs]

    def _build_and_run(self, arrays: List[np.ndarray]) -> List[np.ndarray]:
        graph = self.graph
        readers: Dict[int, List[Node]] = {}
        for node in graph.execution:
            for t in node.inbound:
                readers.setdefault(id(t), []).append(node)
        outputs = {id(t) for t in graph.outputs}
        values: Dict[int, np.ndarray] = {id(t): a for t, a in zip(graph.inputs, arrays)}
        absorbed = set()
        steps = []
        for node in graph.execution:
            if id(node) in absorbed:
                continue
            chain = self._chain(node, readers, outputs)
            absorbed.update(id(n) for n in chain[1:])
            inbound = [id(t) for t in node.inbound]
            out = id(chain[-1].output)
            try:
                fn = self._step(chain, [values[i] for i in inbound])
                values[out] = fn([values[i] for i in inbound])
            except ValueError as exc:
                layer = exc.layer if isinstance(exc, _RefusedBy) else chain[0].layer
                raise ValueError(f"Layer {layer.name} ({type(layer).__name__}) of model "
                                 f"{graph.owner}: {exc}") from exc
            steps.append((fn, inbound, out, []))
        steps = self._chained(steps, outputs)
        # Free each value after the last step that reads it (outputs are kept).
        last_read: Dict[int, int] = {}
        for index, (_, inbound, _, _) in enumerate(steps):
            for i in inbound:
                last_read[i] = index
        for i, index in last_read.items():
            if i not in outputs:
                steps[index][3].append(i)
        self.steps = steps
        return [values[id(t)] for t in graph.outputs]

    @staticmethod
    def _chained(steps: List[Any], outputs: set) -> List[Any]:
        """``steps`` with each run of linked steps that only feed one another
        (every value between them read by the next step alone, no model
        output; a non-fused activation only at the end) replaced by one
        step running them as a prepared.PreparedChain."""
        reads: Dict[int, int] = {}
        for _, inbound, _, _ in steps:
            for i in inbound:
                reads[i] = reads.get(i, 0) + 1
        result: List[Any] = []
        run: List[Any] = []

        def flush() -> None:
            # same-memory steps at the ends run on their own
            start, stop = 0, len(run)
            while start < stop and run[start][0].link is _SAME_MEMORY:
                start += 1
            while stop > start and run[stop - 1][0].link is _SAME_MEMORY:
                stop -= 1
            inner = run[start:stop]
            if sum(step[0].link is not _SAME_MEMORY for step in inner) >= 2:
                result.extend(run[:start])
                result.append((_chain_step([step[0] for step in inner]), inner[0][1],
                               inner[-1][2], []))
                result.extend(run[stop:])
            else:
                result.extend(run)
            run.clear()

        for step in steps:
            fn, inbound, _, _ = step
            link = getattr(fn, "link", None)
            if link is None or (link is not _SAME_MEMORY and link.op.chain_step is None):
                flush()
                result.append(step)
                continue
            if run:
                before = run[-1]
                joins = (inbound == [before[2]] and reads.get(before[2]) == 1
                         and before[2] not in outputs and before[0].link.post is None)
                if not joins:
                    flush()
            run.append(step)
        flush()
        return result

    # ------------------------------------------------------------------

    def _training_of(self, node: Node) -> Optional[bool]:
        return self.training if node.training is None else node.training

    def _inference_call(self, node: Node) -> bool:
        return not self._training_of(node)

    def _sole_reader(self, node: Node, readers: Dict[int, List[Node]],
                     outputs: set) -> Optional[Node]:
        """The one layer call that reads this call's output (None: several,
        none, or the output is a model output)."""
        out = id(node.output)
        found = readers.get(out, [])
        if out in outputs or len(found) != 1 or len(found[0].inbound) != 1:
            return None
        return found[0]

    def _chain(self, node: Node, readers: Dict[int, List[Node]], outputs: set) -> List[Node]:
        """``node`` and the calls folded or fused into it: [op, BN?, ReLU?,
        MaxPooling2D?], or [Add, ReLU?]."""
        layer = node.layer
        if type(layer) is Add and len(node.inbound) == 2:
            nxt = self._sole_reader(node, readers, outputs)
            return [node, nxt] if nxt is not None and relu_kind(nxt.layer) == "relu" else [node]
        if not (type(layer) in (Conv2D, DepthwiseConv2D, Dense) and layer.built
                and (layer._is_linear or layer._relu_fused)):
            return [node]
        chain = [node]
        nxt = self._sole_reader(node, readers, outputs)
        if layer._is_linear:
            if (nxt is not None and type(nxt.layer) is BatchNormalization
                    and self._inference_call(nxt) and nxt.layer.activity_regularizer is None
                    and self._bn_matches(layer, nxt.layer)):
                chain.append(nxt)
                nxt = self._sole_reader(nxt, readers, outputs)
            if nxt is not None and relu_kind(nxt.layer) is not None:
                chain.append(nxt)
                nxt = self._sole_reader(nxt, readers, outputs)
        if nxt is not None and self._pools_2x2(layer, nxt.layer):
            chain.append(nxt)
        return chain

    @staticmethod
    def _pools_2x2(layer: Any, pool: Any) -> bool:
        """Whether ``pool`` is a 2x2 stride-2 channels-last max pooling of a
        channels-last Conv2D's output (what prepare_conv2d_maxpool takes)."""
        return (type(layer) is Conv2D and layer.groups == 1
                and layer.data_format == "channels_last" and type(pool) is MaxPooling2D
                and pool.pool_size == (2, 2) and pool.strides == (2, 2)
                and pool.data_format == "channels_last"
                and np.dtype(pool._dtype) == np.dtype(layer._dtype))

    @staticmethod
    def _bn_matches(layer: Any, bn: Any) -> bool:
        """Whether ``bn`` normalises the channels ``layer`` computes, in the
        ops' layout (no transposes)."""
        if not bn.built or bn._move is not None or len(bn.axis) != 1:
            return False
        if np.dtype(bn._dtype) != np.dtype(layer._dtype):
            return False
        if type(layer) is Dense:
            channels, data_format = layer.units, "channels_last"
        elif type(layer) is DepthwiseConv2D:
            channels = int(np.prod(layer.depthwise_kernel.shape[2:]))
            data_format = layer.data_format
        else:
            channels, data_format = layer.filters, layer.data_format
        return bn._data_format == data_format and bn.moving_mean._value.size == channels

    # ------------------------------------------------------------------

    def _fallback(self, chain: List[Node]) -> Callable[[List[np.ndarray]], np.ndarray]:
        """The chain's calls one after the other, as Graph.run makes them."""
        calls = [(node.layer, self._training_of(node), node.layer._takes_list)
                 for node in chain]

        def call(inputs: List[np.ndarray]) -> np.ndarray:
            value: Any = inputs
            for layer, training, takes_list in calls:
                value = layer._forward_node(value if takes_list else value[0], training, False,
                                            None)[0]
                value = [value]
            return value[0]
        return call

    def _step(self, chain: List[Node], inputs: List[np.ndarray]
              ) -> Callable[[List[np.ndarray]], np.ndarray]:
        node = chain[0]
        layer = node.layer
        if type(layer) is Add:
            return self._add_step(chain, inputs)
        if len(inputs) != 1 or type(inputs[0]) is not np.ndarray:
            return self._fallback(chain)
        x = inputs[0]
        dtype = np.dtype(layer._dtype)
        if x.dtype != dtype or dtype not in (np.float32, np.float64):
            return self._fallback(chain)
        if type(layer) in (MaxPooling2D, AveragePooling2D) and x.ndim == 4:
            op = prepared.prepare_pool2d("max" if type(layer) is MaxPooling2D else "avg",
                                         x.shape, dtype, layer.pool_size, layer.strides,
                                         layer.padding, data_format=layer.data_format)
            return _linked(lambda ins: op(ins[0]), _Link(op))
        if type(layer) is GlobalAveragePooling2D and x.ndim == 4:
            op = prepared.prepare_global_avg_pool2d(x.shape, dtype,
                                                    data_format=layer.data_format,
                                                    keepdims=layer.keepdims)
            return _linked(lambda ins: op(ins[0]), _Link(op))
        if ((type(layer) is Flatten and not layer._channels_moved(x.ndim))
                or (type(layer) is Dropout and self._inference_call(node))):
            return _linked(self._fallback(chain), _SAME_MEMORY)
        if type(layer) in (Conv2D, DepthwiseConv2D) and x.ndim == 4 and (
                layer._is_linear or layer._relu_fused):
            return self._conv_step(chain, x)
        if type(layer) is Dense and x.ndim == 2 and (layer._is_linear or layer._relu_fused
                                                     or len(chain) == 1):
            return self._dense_step(chain, x)
        return self._fallback(chain)

    def _add_step(self, chain: List[Node], inputs: List[np.ndarray]
                  ) -> Callable[[List[np.ndarray]], np.ndarray]:
        """An Add of two arrays of its dtype and one shape (a residual
        connection), with the ReLU that alone reads it: one ops.add pass."""
        dtype = np.dtype(chain[0].layer._dtype)
        if not (len(inputs) == 2 and all(type(a) is np.ndarray and a.dtype == dtype
                                         and a.shape == inputs[0].shape for a in inputs)
                and dtype in (np.float32, np.float64)):
            return self._fallback(chain)
        relu = len(chain) == 2
        return lambda ins: ops.add(ins[0], ins[1], relu=relu)

    def _activation_of(self, chain: List[Node]) -> Optional[str]:
        layer = chain[0].layer
        if layer._relu_fused:
            return "relu"
        kinds = [relu_kind(node.layer) for node in chain[1:]]
        return next((kind for kind in kinds if kind is not None), None)

    def _weighted_step(self, op: prepared.PreparedOp,
                       current: Callable[[], Tuple[np.ndarray, Optional[np.ndarray]]],
                       sources: List[Variable],
                       post: Optional[Callable[[np.ndarray], np.ndarray]] = None
                       ) -> Callable[[List[np.ndarray]], np.ndarray]:
        """The step running ``op`` on the weights ``current()`` gives (in the
        op's layout), from the layer's shared prepared kernel where it has
        one, then ``post``."""
        holder = None
        if op.prepares:
            # keyed by the variables (the holder keeps them: their ids stay theirs)
            key = ("prepared",) + tuple(id(v) for v in sources) + (op.prepared_key,)
            holder = self.shared.get(key)
            if holder is None:
                holder = self.shared[key] = _PreparedKernel(sources)

        def weights() -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
            kernel, bias = current()
            return kernel, bias, holder.get(op, kernel) if holder is not None else None

        def run(ins: List[np.ndarray]) -> np.ndarray:
            kernel, bias, ready = weights()
            y = op.call_prepared(ins[0], ready, kernel, bias) if holder is not None \
                else op(ins[0], kernel, bias)
            return y if post is None else post(y)
        return _linked(run, _Link(op, weights, post))

    def _folded(self, layer: Any, kernel: Variable, bias: Optional[Variable], bn: Any
                ) -> _Folded:
        gamma, beta = getattr(bn, "gamma", None), getattr(bn, "beta", None)
        sources = [v for v in (kernel, bias, gamma, beta, bn.moving_mean, bn.moving_variance)
                   if v is not None]
        # keyed by the variables (the copy holds them: their ids stay theirs)
        key = ("folded",) + tuple(id(v) for v in sources)
        folded = self.shared.get(key)
        if folded is None:
            folded = self.shared[key] = self._make_folded(layer, kernel, bias, bn, sources)
        return folded

    def _make_folded(self, layer: Any, kernel: Variable, bias: Optional[Variable], bn: Any,
                     sources: List[Variable]) -> _Folded:
        gamma, beta = getattr(bn, "gamma", None), getattr(bn, "beta", None)
        epsilon = bn._epsilon()
        dtype = kernel._value.dtype

        def make() -> Tuple[np.ndarray, np.ndarray]:
            f64 = np.float64
            scale = 1.0 / np.sqrt(bn.moving_variance._value.reshape(-1).astype(f64) + epsilon)
            if gamma is not None:
                scale = scale * gamma._value.reshape(-1)
            shift = -bn.moving_mean._value.reshape(-1).astype(f64)
            if bias is not None:
                shift = shift + bias._value
            shift = shift * scale
            if beta is not None:
                shift = shift + beta._value.reshape(-1)
            if type(layer) is DepthwiseConv2D:   # (kh, kw, c, mult): channel c * mult + m
                k = kernel._value * scale.reshape(kernel._value.shape[2:])
            else:                                # HWIO or (in, units): the last axis
                k = kernel._value * scale
            return (np.ascontiguousarray(k, dtype=dtype),
                    np.ascontiguousarray(shift, dtype=dtype))

        return _Folded(sources, make)

    def _conv_step(self, chain: List[Node], x: np.ndarray
                   ) -> Callable[[List[np.ndarray]], np.ndarray]:
        layer = chain[0].layer
        kernel_var, bias_var = _conv_kernel_and_bias(layer)
        kernel_shape = _hwio(layer, kernel_var._value).shape
        channel_axis = 1 if layer.data_format == "channels_first" else 3
        bn = chain[1].layer if len(chain) > 1 and type(chain[1].layer) is BatchNormalization \
            else None
        has_bias = bias_var is not None or bn is not None
        op = prepared.prepare_conv2d(
            x.shape, x.dtype, kernel_shape, has_bias, layer.strides, layer.padding,
            layer.dilation_rate, self._activation_of(chain),
            groups=x.shape[channel_axis] if type(layer) is DepthwiseConv2D else layer.groups,
            data_format=layer.data_format)
        if type(chain[-1].layer) is MaxPooling2D:
            try:
                op = prepared.prepare_conv2d_maxpool(
                    x.shape, x.dtype, kernel_shape, has_bias, layer.strides, layer.padding,
                    layer.dilation_rate, self._activation_of(chain), chain[-1].layer.padding,
                    data_format=layer.data_format)
            except ValueError as exc:   # the convolution took them: the pooling refused
                raise _RefusedBy(chain[-1].layer, exc) from exc
        folded = self._folded(layer, kernel_var, bias_var, bn) if bn is not None else None
        if folded is None:
            def current() -> Tuple[np.ndarray, Optional[np.ndarray]]:
                return (_hwio(layer, kernel_var._value),
                        bias_var._value if bias_var is not None else None)
            return self._weighted_step(op, current, [kernel_var])

        def current_folded() -> Tuple[np.ndarray, Optional[np.ndarray]]:
            kernel, bias = folded.current()
            return _hwio(layer, kernel), bias
        return self._weighted_step(op, current_folded, folded.sources)

    def _dense_step(self, chain: List[Node], x: np.ndarray
                    ) -> Callable[[List[np.ndarray]], np.ndarray]:
        layer = chain[0].layer
        kernel_var, bias_var = layer.kernel, (layer.bias if layer.use_bias else None)
        bn = chain[1].layer if len(chain) > 1 and type(chain[1].layer) is BatchNormalization \
            else None
        fused = layer._is_linear or layer._relu_fused
        op = prepared.prepare_dense(x.shape, x.dtype, kernel_var._value.shape,
                                    bias_var is not None or bn is not None,
                                    self._activation_of(chain) if fused else None)
        folded = self._folded(layer, kernel_var, bias_var, bn) if bn is not None else None
        if folded is None:
            def current() -> Tuple[np.ndarray, Optional[np.ndarray]]:
                return kernel_var._value, bias_var._value if bias_var is not None else None

            def activation(z: np.ndarray) -> np.ndarray:
                return layer._apply_activation(z)[0]
            return self._weighted_step(op, current, [kernel_var],
                                       None if fused else activation)
        return self._weighted_step(op, folded.current, folded.sources)
