"""Prepared ops: ``conv2d``, ``dense`` and the 2-D poolings of :mod:`fastconv.ops`
for one input shape and dtype, their arguments checked and their geometry
resolved once.

A call of a prepared op on an input of that shape and dtype costs a few
attribute checks and the C kernel; ``ops.conv2d`` spends 30-40 us per call
checking and resolving arguments, as much as the arithmetic of a small layer
at batch 1. Anything else (another shape or dtype, a non-contiguous array,
the NumPy backend, a geometry the C kernels take only through a padded
copy) goes through the public op, so a prepared op never returns what the
op would not, and raises what it raises. The results are the op's, bit for
bit.

``activation`` is None/'linear', 'relu' or 'relu6' (Keras'
``ReLU(max_value=6)``), fused into the kernel's store as in the ops.

:func:`prepare_conv2d_maxpool` is a convolution followed by a 2x2 stride-2
max pooling. Where the C kernel fuses them (float32 channels-last layers
that run by Winograd: its 2x2 output tiles are the pooling windows) the
convolution's output is never stored; elsewhere, and for calls that meet
NaN or infinity, it is the two prepared ops one after the other. Either way
the result is the two ops', bit for bit.

Prepared kernels: a float32 channels-last convolution transforms its
kernel at every call (Winograd layers: 3x3 stride 1, 16+ channels; a sixth
of a seed conv2d_1 call at batch 1) or packs it into the GEMM's panels
(other one-group layers; a 1024x1024 1x1 kernel is 4 MB to copy).
``op.prepare_kernel(k)`` makes that once (None for other ops) and
``op.call_prepared(x, prepared, k, b)`` runs from it, bit for bit ``op(x, k,
b)``; the caller keeps it while the kernel's values stay the same (a
prepared kernel made under another SIMD path or Winograd setting is
declined by the C kernels, and the op computes from the kernel).

Used by :mod:`fastconv.models.inference`; weights are passed at each call
(the live arrays, or folded copies), never captured.

:class:`PreparedChain`: float32 channels-last prepared ops, each reading the
output of the one before, run by one call into the C kernels (a loop over
the ops' kernel calls; intermediate results in a scratch buffer), bit for
bit the ops one after the other. A layer from Python cost 50-90 us at batch
1 once the weights streaming through the caches had evicted the
interpreter's and NumPy's working set (measured on a Zen 5: the bench
MobileNet's 29 steps held 1.35 ms of kernels and took 3.1 ms).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from . import _memory, ops, shapes

__all__ = ["PreparedOp", "PreparedChain", "prepare_conv2d", "prepare_conv2d_maxpool",
           "prepare_dense", "prepare_pool2d", "prepare_global_avg_pool2d"]

# ChainStep: what a PreparedChain runs for an op: (kernel kind, C geometry
# tuple (the input shape for the global pooling), fused activation code,
# groups, pooled output height and width (0: not pooled)).
ChainStep = Tuple[str, Tuple[int, ...], int, int, int, int]

# A PreparedChain runs steps whose weights take at most SLICE_WEIGHT_BYTES a
# slice of the batch at a time, each slice's results between steps taking
# at most SLICE_BYTES (a quarter of a 2 MiB L2 each, two by turns). Measured
# (Zen 5, the seed CNN's two convolutions at batch 256, bit for bit): slices
# of 4-8 images 0.83-0.85x the time of whole batches at 1 and 2 threads, 32
# images 0.99-1.01x (their 3 MB between the steps went through memory).
SLICE_WEIGHT_BYTES = 256 << 10
SLICE_BYTES = 512 << 10



class PreparedOp:
    """One op for one input shape and dtype: ``op(x, *weights)``.

    ``weight_shapes`` holds the shape of each weight argument (None for an
    absent bias). ``fast`` is False when only the public op can run the
    geometry; then every call is the public op's.
    """

    __slots__ = ("x_shape", "dtype", "weight_shapes", "out_shape", "fast", "_op", "_run",
                 "_prepare", "_run_prepared", "prepared_key", "chain_step")

    def __init__(self, x_shape: Tuple[int, ...], dtype: np.dtype,
                 weight_shapes: Tuple[Optional[Tuple[int, ...]], ...],
                 out_shape: Tuple[int, ...], fast: bool, op, run, prepare=None,
                 run_prepared=None, prepared_key=None,
                 chain_step: Optional[ChainStep] = None) -> None:
        self.x_shape, self.dtype = x_shape, dtype
        self.weight_shapes, self.out_shape = weight_shapes, out_shape
        self.fast = fast
        self._op, self._run = op, run
        self._prepare, self._run_prepared = prepare, run_prepared
        # what the prepared kernel depends on besides the kernel's values and
        # the dispatch (channels, kernel size, strides, dilations; not the
        # input's size): ops with equal keys prepare the same array
        self.prepared_key = prepared_key
        # how a PreparedChain runs it (None: it cannot; float32 channels last only)
        self.chain_step = chain_step if fast and dtype == np.float32 else None

    @property
    def prepares(self) -> bool:
        """Whether prepare_kernel can return a prepared kernel."""
        return self.fast and self._prepare is not None

    def _matches(self, x: object, weights: Tuple[object, ...]) -> bool:
        if type(x) is not np.ndarray or x.shape != self.x_shape or x.dtype != self.dtype:
            return False
        flags = x.flags
        if not (flags.c_contiguous and flags.aligned):
            return False
        return self._weights_match(weights)

    def _weights_match(self, weights: Tuple[object, ...]) -> bool:
        for w, shape in zip(weights, self.weight_shapes):
            if w is None or shape is None:
                if (w is None) != (shape is None):
                    return False
                continue
            if (type(w) is not np.ndarray or w.shape != shape or w.dtype != self.dtype
                    or not w.flags.c_contiguous):
                return False
        return True

    def __call__(self, x: np.ndarray, *weights: Optional[np.ndarray]) -> np.ndarray:
        if self.fast and self._matches(x, weights) and ops.get_backend() == "c":
            return self._run(x, *weights)
        return self._op(x, *weights)

    def prepare_kernel(self, kernel: np.ndarray) -> Optional[np.ndarray]:
        """The kernel's prepared form for call_prepared (see the module doc),
        or None when this op has none or ``kernel`` is not of its shape."""
        if (not self.prepares or type(kernel) is not np.ndarray
                or kernel.shape != self.weight_shapes[0] or kernel.dtype != self.dtype
                or not kernel.flags.c_contiguous):
            return None
        return self._prepare(kernel)

    def call_prepared(self, x: np.ndarray, prepared: Optional[np.ndarray],
                      kernel: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
        """``self(x, kernel, bias)``, from ``prepared`` (prepare_kernel's
        result for this kernel's values) where it can."""
        if (prepared is not None and self.fast and self._matches(x, (kernel, bias))
                and ops.get_backend() == "c"):
            y = self._run_prepared(x, prepared, bias)
            if y is not None:
                return y
        return self(x, kernel, bias)   # declined (NaN or infinity met, another dispatch)


def _template(shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only array of ``shape`` holding no memory: what the geometry
    helpers read (shapes only)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def _c_conv(x_shape: Tuple[int, ...], dtype: np.dtype, kernel_shape: Tuple[int, ...],
            strides, padding, dilation_rate, groups: int, cf: bool):
    """The op's geometry of a convolution, its C geometry tuple, and whether
    the C kernels take it as it is (no padded copy, no kernel transpose)."""
    x_t, k_t = _template(x_shape, dtype), _template(kernel_shape, dtype)
    g = ops._conv_geometry(x_t, k_t, strides, padding, dilation_rate, groups, cf, False)
    gc, ex_h, ex_w = ops._c_geometry(g)
    fast = (ex_h == 0 and ex_w == 0 and not ops._is_empty(g)
            and ops._kernel_to_data_layout(k_t, False, cf) is k_t
            and ops._kernels is not None)
    return g, tuple(gc)[:17], fast


def prepare_conv2d(x_shape: Tuple[int, ...], dtype: object, kernel_shape: Tuple[int, ...],
                   has_bias: bool, strides=1, padding="valid", dilation_rate=1,
                   activation: Optional[str] = None, *, groups: int = 1,
                   data_format: str = "channels_last") -> PreparedOp:
    """``ops.conv2d`` with an HWIO kernel of ``kernel_shape`` for inputs of
    ``x_shape`` (raises the op's errors for arguments it refuses)."""
    dtype = np.dtype(dtype)
    act = ops._fused_activation(activation)
    cf = ops._channels_first(data_format)
    g, geometry, fast = _c_conv(x_shape, dtype, kernel_shape, strides, padding, dilation_rate,
                                groups, cf)
    out_shape = ops._act_shape(g, "out")
    depthwise = ops._depthwise(g)
    c_layout = ops._c_layout(g)

    def op(x, kernel, bias):
        return ops.conv2d(x, kernel, bias, strides, padding, dilation_rate, activation,
                          groups=groups, data_format=data_format)

    def run(x, kernel, bias):
        y = _memory.empty(out_shape, dtype)
        if depthwise:
            ops._kernels.depthwise_conv2d_forward(x, kernel, bias, y, geometry, act, cf,
                                                  ops._threads_arg())
        else:
            ops._kernels.conv2d_forward(x, kernel, bias, y, geometry, act, ops._threads_arg(),
                                        **c_layout)
        return y

    prepare, run_prepared = _kernel_preparation(geometry, fast, dtype, cf, groups, act,
                                                out_shape, pooled=False)
    bias_shape = (g.c_out,) if has_bias else None
    chain_step = None if cf else ("depthwise" if depthwise else "conv", geometry, act, g.groups,
                                  0, 0)
    return PreparedOp(tuple(x_shape), dtype, (tuple(kernel_shape), bias_shape), out_shape,
                      fast, op, run, prepare, run_prepared, _prepared_key(g), chain_step)


def _prepared_key(g: shapes.ConvGeometry) -> Tuple[int, ...]:
    """PreparedOp.prepared_key of a layer of geometry ``g``."""
    return (g.c_in, g.kh, g.kw, g.c_out, g.stride_h, g.stride_w, g.dilation_h, g.dilation_w)


def _aligned_empty(floats: int) -> np.ndarray:
    """float32 values starting on a 64-byte line: the micro-kernels load
    whole vectors of a prepared kernel, and NumPy's 16-byte alignment split
    every load across two lines (measured 5-10% slower than packing per call)."""
    raw = np.empty(floats + 16, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip:skip + floats]


def _kernel_preparation(geometry: Tuple[int, ...], fast: bool, dtype: np.dtype, cf: bool,
                        groups: int, act: int, out_shape: Tuple[int, ...], pooled: bool):
    """(prepare(kernel), run_prepared(x, prepared, bias)) of a convolution
    whose kernel the C kernels prepare (conv2d_prepared_kernel_floats > 0),
    else (None, None); run_prepared returns None for a call the C kernels
    decline, the 2x2 max pooling with ``pooled``."""
    if not (fast and dtype == np.float32 and not cf and groups == 1
            and ops._kernels.conv2d_prepared_kernel_floats(geometry) > 0):
        return None, None
    kernels = ops._kernels

    def prepare(kernel):
        out = _aligned_empty(kernels.conv2d_prepared_kernel_floats(geometry))
        kernels.conv2d_prepare_kernel(kernel, out, geometry, ops._threads_arg())
        return out

    def run_prepared(x, prepared, bias):
        y = _memory.empty(out_shape, dtype)
        if kernels.conv2d_forward_prepared(x, prepared, bias, y, geometry, act,
                                           ops._threads_arg(), pooled):
            return y
        return None
    return prepare, run_prepared


def prepare_conv2d_maxpool(x_shape: Tuple[int, ...], dtype: object,
                           kernel_shape: Tuple[int, ...], has_bias: bool, strides=1,
                           padding="valid", dilation_rate=1, activation: Optional[str] = None,
                           pool_padding="valid", *, data_format: str = "channels_last"
                           ) -> PreparedOp:
    """``ops.max_pool2d(ops.conv2d(x, ...), 2, 2, pool_padding)`` (see the
    module doc), for inputs of ``x_shape``."""
    dtype = np.dtype(dtype)
    conv = prepare_conv2d(x_shape, dtype, kernel_shape, has_bias, strides, padding,
                          dilation_rate, activation, data_format=data_format)
    pool = prepare_pool2d("max", conv.out_shape, dtype, 2, 2, pool_padding,
                          data_format=data_format)
    cf = ops._channels_first(data_format)
    g, geometry, fast = _c_conv(x_shape, dtype, kernel_shape, strides, padding, dilation_rate,
                                1, cf)
    fuses = (fast and pool.fast and dtype == np.float32 and not cf
             and ops._kernels.conv2d_maxpool2x2_fuses(geometry))
    act = ops._fused_activation(activation)
    out_shape = pool.out_shape

    def op(x, kernel, bias):
        return pool(conv(x, kernel, bias))

    def run(x, kernel, bias):
        y = _memory.empty(out_shape, dtype)
        if ops._kernels.conv2d_forward_maxpool2x2(x, kernel, bias, y, geometry, act,
                                                  ops._threads_arg()):
            return y
        return op(x, kernel, bias)   # NaN or infinity met: the unfused ops place them

    prepare, run_prepared = _kernel_preparation(geometry, fuses, dtype, cf, 1, act, out_shape,
                                                pooled=True)
    chain_step = ("conv_maxpool", geometry, act, 1, out_shape[1], out_shape[2])
    return PreparedOp(tuple(x_shape), dtype, conv.weight_shapes, out_shape, fuses, op, run,
                      prepare, run_prepared, _prepared_key(g), chain_step)


def prepare_dense(x_shape: Tuple[int, ...], dtype: object, kernel_shape: Tuple[int, ...],
                  has_bias: bool, activation: Optional[str] = None) -> PreparedOp:
    """``ops.dense`` with a kernel of ``kernel_shape`` for inputs of ``x_shape``."""
    dtype = np.dtype(dtype)
    act = ops._fused_activation(activation)
    if len(x_shape) != 2 or len(kernel_shape) != 2:
        raise ValueError(f"prepare_dense takes 2-D inputs and kernels, got {x_shape} and "
                         f"{kernel_shape}")
    g = ops._dense_geometry(_template(x_shape, dtype), _template(kernel_shape, dtype))
    out_shape = (g.n, g.c_out)
    geometry = tuple(g)[:17]
    x4 = (g.n, 1, 1, g.c_in)
    k4 = (1, 1, g.c_in, g.c_out)
    y4 = (g.n, 1, 1, g.c_out)

    def op(x, kernel, bias):
        return ops.dense(x, kernel, bias, activation)

    def run(x, kernel, bias):
        y = _memory.empty(out_shape, dtype)
        ops._kernels.conv2d_forward(x.reshape(x4), kernel.reshape(k4), bias, y.reshape(y4),
                                    geometry, act, ops._threads_arg())
        return y

    fast = not ops._is_empty(g) and ops._kernels is not None
    # as a 1x1 convolution: a kernel packed once for batches the GEMM runs
    prepare4, run4 = _kernel_preparation(geometry, fast, dtype, False, 1, act, y4, pooled=False)
    if prepare4 is None:
        prepare = run_prepared = None
    else:
        def prepare(kernel):
            return prepare4(kernel.reshape(k4))

        def run_prepared(x, prepared, bias):
            y = run4(x.reshape(x4), prepared, bias)
            return None if y is None else y.reshape(out_shape)

    return PreparedOp(tuple(x_shape), dtype, (tuple(kernel_shape), (g.c_out,) if has_bias
                                              else None), out_shape, fast, op, run, prepare,
                      run_prepared, _prepared_key(g), ("conv", geometry, act, 1, 0, 0))


def prepare_pool2d(kind: str, x_shape: Tuple[int, ...], dtype: object, pool_size=2,
                   strides=None, padding="valid", *,
                   data_format: str = "channels_last") -> PreparedOp:
    """``ops.max_pool2d`` (``kind='max'``) or ``ops.avg_pool2d`` (``'avg'``,
    Keras' division by the real cells) for inputs of ``x_shape``."""
    if kind not in ("max", "avg"):
        raise ValueError(f"`kind` must be 'max' or 'avg', got {kind!r}")
    dtype = np.dtype(dtype)
    cf = ops._channels_first(data_format)
    g = ops._pool_geometry(_template(x_shape, dtype), pool_size, strides, padding, "c", cf,
                           c_window_limit=kind == "max")
    out_shape = ops._act_shape(g, "out")
    geometry = tuple(g)[:17]
    public = ops.max_pool2d if kind == "max" else ops.avg_pool2d

    def op(x):
        return public(x, pool_size, strides, padding, data_format=data_format)

    if kind == "max":
        def run(x):
            y = _memory.empty(out_shape, dtype)
            ops._kernels.max_pool2d_forward(x, y, geometry, ops._threads_arg(), cf)
            return y
    else:
        def run(x):
            y = _memory.empty(out_shape, dtype)
            ops._kernels.avg_pool2d_forward(x, y, geometry, False, cf, ops._threads_arg())
            return y

    return PreparedOp(tuple(x_shape), dtype, (), out_shape,
                      not ops._is_empty(g) and ops._kernels is not None, op, run,
                      chain_step=None if cf else (f"{kind}_pool", geometry, 0, 1, 0, 0))


def prepare_global_avg_pool2d(x_shape: Tuple[int, ...], dtype: object, *,
                              data_format: str = "channels_last",
                              keepdims: bool = False) -> PreparedOp:
    """``ops.global_avg_pool2d`` for 4-D inputs of ``x_shape`` (raises the
    op's errors for arguments it refuses)."""
    dtype = np.dtype(dtype)
    x_shape = tuple(x_shape)
    _, _, g, keep = ops._global_args(_template(x_shape, dtype), data_format, keepdims)
    cf, n, c = g.channels_first, g.n, g.c_out
    out_shape = ops._act_shape(g, "out") if keep else (n, c)

    def op(x):
        return ops.global_avg_pool2d(x, data_format=data_format, keepdims=keepdims)

    def run(x):
        y = _memory.empty(out_shape, dtype)
        ops._kernels.global_avg_pool2d(x, y.reshape(n, c), cf, ops._threads_arg())
        return y

    fast = (ops._kernels is not None and not ops._is_empty(g)
            and dtype in (np.float32, np.float64))
    return PreparedOp(x_shape, dtype, (), out_shape, fast, op, run,
                      chain_step=None if cf else ("global_avg_pool", x_shape, 0, 1, 0, 0))


class PreparedChain:
    """Float32 channels-last prepared ops, each reading the one before's
    output, run by one call into the C kernels (see the module doc).

    ``bind(i, kernel, bias, prepared)`` gives op i its weights (what
    ``call_prepared`` would get; None for ops without them) and must be
    called again when any changes: the chain reads the arrays it was given.
    ``chain(x)`` returns the last op's output, or None where the ops'
    calls would not all run in C as they are (another backend, an input
    not C-contiguous, a kernel that declined: NaN or infinity met); then
    run the ops themselves. One call or bind at a time: the caller
    serialises threads (a bind frees the arrays a running call reads).
    """

    def __init__(self, chain_ops: Sequence[PreparedOp]) -> None:
        chain_ops = list(chain_ops)
        if len(chain_ops) < 2 or any(op.chain_step is None for op in chain_ops):
            raise ValueError("a PreparedChain takes two or more ops with a chain_step")
        for before, after in zip(chain_ops, chain_ops[1:]):
            if int(np.prod(before.out_shape)) != int(np.prod(after.x_shape)):
                raise ValueError(f"op output {before.out_shape} is not the next op's input "
                                 f"{after.x_shape}")
        self.ops = chain_ops
        self.x_shape, self.out_shape = chain_ops[0].x_shape, chain_ops[-1].out_shape
        self._program = ops._kernels.ChainProgram(len(chain_ops))
        self._plan_slices()
        self._bound = [False] * len(chain_ops)
        for i in range(len(chain_ops)):
            self._set(i, prepared=False)

    def _plan_slices(self) -> None:
        """The calls of the chain: runs of steps whose kernels are light
        (SLICE_WEIGHT_BYTES or less) go a slice of the batch at a time, so
        that the results between them stay in the caches (each sample's
        result does not depend on the others: the same bits); the other
        steps take the whole batch (their kernels stream from memory once).
        The scratch buffer holds four regions, each on a 64-byte line: two
        whole-batch results between runs, by turns, and two results inside
        a run, by turns."""
        n = self.x_shape[0]
        per_image = [int(np.prod(op.out_shape[1:])) for op in self.ops]
        light = [op.weight_shapes == () or op.weight_shapes[0] is None
                 or 4 * int(np.prod(op.weight_shapes[0])) <= SLICE_WEIGHT_BYTES
                 for op in self.ops]
        runs: list = []   # [first, stop, images per call]
        for i in range(len(self.ops)):
            if runs and light[i] == light[runs[-1][0]]:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1, 0])
        for run in runs:
            widest = max(per_image[run[0]:run[1] - 1], default=0)
            images = n
            if light[run[0]] and widest > 0:
                images = max(1, SLICE_BYTES // (4 * widest))
            run[2] = min(n, images)
        merged = [runs[0]]   # neighbours on whole batches are one call
        for run in runs[1:]:
            if run[2] == n and merged[-1][2] == n:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        self._runs = [tuple(run) for run in merged]

        def lined(floats: int) -> int:
            return -(-floats // 16) * 16
        between = lined(max([n * per_image[stop - 1] for _, stop, _ in self._runs[:-1]],
                            default=0))
        inside = lined(max([images * max(per_image[first:stop - 1], default=0)
                            for first, stop, images in self._runs], default=0))
        self._regions = (0, between, 2 * between, 2 * between + inside)
        self._scratch_floats = 2 * between + 2 * inside

    def _set(self, i: int, prepared: bool) -> None:
        kind, geometry, act, groups, pool_h, pool_w = self.ops[i].chain_step
        if prepared:
            kind = "conv_prepared"
        self._program.set_step(i, kind, geometry, act, groups, pool_h, pool_w)

    def bind(self, i: int, kernel: Optional[np.ndarray], bias: Optional[np.ndarray],
             prepared: Optional[np.ndarray] = None) -> None:
        """Op i's weights (validated as the op validates them)."""
        op = self.ops[i]
        weights = (kernel, bias) if op.weight_shapes else ()
        if not op._weights_match(weights):
            raise ValueError(f"op {i} of the chain takes weights of shapes {op.weight_shapes} "
                             f"({op.dtype}, C-contiguous)")
        self._set(i, prepared=False)
        use_prepared = (prepared is not None and op.prepares
                        and type(prepared) is np.ndarray and prepared.dtype == np.float32
                        and prepared.ndim == 1 and prepared.flags.c_contiguous)
        if use_prepared:
            self._set(i, prepared=True)
            use_prepared = self._program.prepared_fits(i, prepared)
            if not use_prepared:   # made under another dispatch: compute from the kernel
                self._set(i, prepared=False)
        self._program.bind(i, prepared if use_prepared else kernel, bias)
        self._bound[i] = True

    def __call__(self, x: np.ndarray) -> Optional[np.ndarray]:
        if not all(self._bound):
            raise ValueError("every op of the chain needs bind() before a call")
        if (type(x) is not np.ndarray or x.shape != self.x_shape or x.dtype != np.float32
                or not (x.flags.c_contiguous and x.flags.aligned)
                or ops.get_backend() != "c"):
            return None
        y = _memory.empty(self.out_shape, np.float32)
        scratch = _memory.empty((max(self._scratch_floats, 1),), np.float32)
        x_flat, y_flat, threads = x.reshape(-1), y.reshape(-1), ops._threads_arg()
        n, program = self.x_shape[0], self._program
        between_a, between_b, inside_a, inside_b = self._regions
        source, source_at = x_flat, 0
        per_in = x.size // n
        for k, (first, stop, images) in enumerate(self._runs):
            last = k == len(self._runs) - 1
            target = y_flat if last else scratch
            target_base = 0 if last else (between_a if k % 2 == 0 else between_b)
            per_out = int(np.prod(self.ops[stop - 1].out_shape[1:]))
            for start in range(0, n, images):
                count = min(images, n - start)
                declined = program.run(first, stop, count, source, source_at + start * per_in,
                                       scratch, inside_a, inside_b, target,
                                       target_base + start * per_out, threads)
                if declined >= 0:
                    return None
            source, source_at, per_in = target, target_base, per_out
        return y
