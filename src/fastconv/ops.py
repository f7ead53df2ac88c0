"""The functional API: argument normalisation, validation, backend dispatch.

Two backends compute every op: ``"c"`` (the compiled kernels, float32,
parallel) and ``"numpy"`` (:mod:`fastconv.reference`, readable, computes in the
input dtype). Arrays are NHWC activations and HWIO kernels, as Keras stores
them. Inputs are never modified; non-contiguous, Fortran-ordered, misaligned
or byte-swapped arrays are copied once.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator, Optional, Tuple, Union

import numpy as np

from . import _memory, reference
from .shapes import (ConvGeometry, IntOrPair, conv2d_geometry, conv_output_size,
                     normalize_pair, normalize_padding)

try:
    from . import _kernels
    _KERNELS_IMPORT_ERROR: Optional[BaseException] = None
except ImportError as exc:  # a source tree that was never built
    # The C paths run only on the 'c' backend, which requires the module.
    _kernels = None  # type: ignore[assignment]
    _KERNELS_IMPORT_ERROR = exc

if _kernels is not None and os.environ.get("FASTCONV_SIMD"):
    # Forcing a path this CPU lacks is a configuration error, not a fallback.
    _kernels.set_simd(os.environ["FASTCONV_SIMD"].strip().lower())

__all__ = [
    "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "dense",
    "dense_backward", "relu_backward", "adam_update", "conv_output_size", "set_backend",
    "get_backend", "use_backend", "set_num_threads", "get_num_threads",
]

ArrayLike = Union[np.ndarray, "list", "tuple"]
BACKENDS = ("c", "numpy")
_ACCEPTED_DTYPES = {"c": (np.dtype(np.float32),),
                    "numpy": (np.dtype(np.float32), np.dtype(np.float64))}
_LAYOUTS = {
    "x": "(batch, height, width, channels) NHWC",
    "dy": "(batch, out_height, out_width, channels) NHWC",
    "kernel": "(kernel_height, kernel_width, in_channels, out_channels) HWIO",
    "bias": "(out_channels,)",
}

# ---------------------------------------------------------------------------
# Backend and thread settings

_default_backend = "c" if _kernels is not None else "numpy"
_backend_override: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "fastconv_backend", default=None)
_num_threads: Optional[int] = None


def _check_backend(name: object) -> str:
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {name!r}")
    name = name.lower()
    if name == "c" and _kernels is None:
        raise RuntimeError(
            "the C backend of fastconv is not available: its compiled extension failed "
            f"to import ({_KERNELS_IMPORT_ERROR}). Reinstall with `pip install .` "
            "or use the 'numpy' backend.")
    return name


def set_backend(name: str) -> None:
    """Make ``name`` ('c' or 'numpy') the default backend of every op."""
    global _default_backend
    _default_backend = _check_backend(name)


def get_backend() -> str:
    """The backend ops use now: the innermost :func:`use_backend`, else the default."""
    override = _backend_override.get()
    return override if override is not None else _default_backend


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Use ``name`` inside a ``with`` block (per thread and async task)."""
    token = _backend_override.set(_check_backend(name))
    try:
        yield get_backend()
    finally:
        _backend_override.reset(token)


def set_num_threads(n: Optional[int]) -> Optional[int]:
    """Threads for the C kernels; ``None`` follows OpenMP (``OMP_NUM_THREADS``,
    threadpoolctl). Returns the previous setting. The kernels use fewer for
    small problems, and never more than max(16, 4 x processors)."""
    global _num_threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"`n` must be a positive int or None, got {type(n).__name__} {n!r}")
        if n < 1 or n > 2**31 - 1:
            # The C kernels take an int: larger values would only fail later,
            # inside the first op, with an OverflowError naming nothing.
            raise ValueError(f"`n` must be a positive int (at most 2**31 - 1) or None, got {n}")
        n = int(n)
    previous, _num_threads = _num_threads, n
    return previous


def get_num_threads() -> int:
    """Threads the C kernels would use now (before small-problem limits)."""
    if _num_threads is not None:
        return _num_threads
    return _kernels.default_num_threads() if _kernels is not None else 1


def _threads_arg() -> int:
    # 0 lets the C side ask OpenMP at call time, in the calling thread.
    return _num_threads if _num_threads is not None else 0


# ---------------------------------------------------------------------------
# Validation helpers

_DTYPE_NAMES = {b: " or ".join(d.name for d in ds) for b, ds in _ACCEPTED_DTYPES.items()}


def _as_array(value: object, name: str, ndim: int, backend: str) -> np.ndarray:
    """A C-contiguous, aligned, native-byte-order array of an accepted float dtype."""
    accepted = _ACCEPTED_DTYPES[backend]
    if type(value) is np.ndarray and value.dtype in accepted and value.ndim == ndim:
        flags = value.flags
        if flags.c_contiguous and flags.aligned:
            return value  # the common case, checked without building anything
    names = _DTYPE_NAMES[backend]
    if isinstance(value, np.ndarray):
        arr = value
    else:
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError(f"`{name}` must be a {names} array, got {type(value).__name__}")
        try:
            # Array-likes without a dtype of their own take the working dtype.
            arr = np.asarray(value, dtype=accepted[0])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`{name}` must be a {names} array; could not convert "
                            f"{type(value).__name__}: {exc}") from None
    if arr.dtype.kind != "f" or arr.dtype.newbyteorder("=") not in accepted:
        hint = (" (the 'c' backend computes in float32: cast with .astype(np.float32) or "
                "use the 'numpy' backend)" if backend == "c" else "")
        raise TypeError(f"`{name}` must have dtype {names}, got {arr.dtype}{hint}")
    if arr.ndim != ndim:
        layout = _LAYOUTS.get(name, "")
        raise ValueError(f"`{name}` must be a {ndim}-D array {layout}, got shape {arr.shape}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    # ALIGNED too: a C-contiguous view at an odd byte offset (np.frombuffer,
    # packed records) would reach the kernels as misaligned float pointers,
    # undefined behaviour in C (UBSan reports it; vectorised code may fault).
    return np.require(arr, requirements=("C_CONTIGUOUS", "ALIGNED", "ENSUREARRAY"))


def _same_dtype(*named: Tuple[str, Optional[np.ndarray]]) -> None:
    arrays = [(n, a) for n, a in named if a is not None]
    first_name, first = arrays[0]
    for n, a in arrays[1:]:
        if a.dtype != first.dtype:
            raise TypeError(f"`{n}` has dtype {a.dtype} but `{first_name}` has dtype "
                            f"{first.dtype}; all arrays of one call must share a dtype")


def _fused_relu(activation: object) -> bool:
    if activation is None:
        return False
    if isinstance(activation, str) and activation.lower() in ("linear", "relu"):
        return activation.lower() == "relu"
    raise ValueError(f"`activation` must be None, 'linear' or 'relu', got {activation!r}")


def _check_spatial(x: np.ndarray, name: str) -> None:
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"`{name}` must have height and width >= 1, got shape {x.shape}")


def _check_kernel(kernel: np.ndarray, c_in: int) -> None:
    if kernel.shape[0] < 1 or kernel.shape[1] < 1:
        raise ValueError(f"`kernel` must have height and width >= 1, got shape {kernel.shape}")
    if kernel.shape[2] != c_in:
        raise ValueError(
            f"`kernel` expects {kernel.shape[2]} input channels (kernel.shape[2]) but `x` has "
            f"{c_in} channels (x.shape[3]); kernel layout is {_LAYOUTS['kernel']}")


def _check_dy(dy: np.ndarray, expected: Tuple[int, ...]) -> None:
    if dy.shape != expected:
        raise ValueError(f"`dy` must have the output's shape {expected}, got {dy.shape}")


def _is_empty(g: ConvGeometry) -> bool:
    return g.n == 0 or g.c_in == 0 or g.c_out == 0


def _conv_geometry(x: np.ndarray, kernel: np.ndarray, strides: IntOrPair, padding: str,
                   dilation_rate: IntOrPair) -> ConvGeometry:
    s = normalize_pair(strides, "strides")
    d = normalize_pair(dilation_rate, "dilation_rate")
    pad = normalize_padding(padding)
    _check_spatial(x, "x")
    _check_kernel(kernel, x.shape[3])
    return conv2d_geometry(x.shape, (kernel.shape[0], kernel.shape[1]), kernel.shape[3], s,
                           pad, d)


# ---------------------------------------------------------------------------
# Convolution

def conv2d(x: ArrayLike, kernel: ArrayLike, bias: Optional[ArrayLike] = None,
           strides: IntOrPair = 1, padding: str = "valid", dilation_rate: IntOrPair = 1,
           activation: Optional[str] = None) -> np.ndarray:
    """2-D convolution (cross-correlation, as in TensorFlow and PyTorch).

    Parameters
    ----------
    x : ndarray of shape (batch, height, width, in_channels)
    kernel : ndarray of shape (kernel_height, kernel_width, in_channels, out_channels)
    bias : ndarray of shape (out_channels,), optional
    strides, dilation_rate : int or pair of int
    padding : {'valid', 'same'}
        TensorFlow's rules: with 'same' the extra padding goes bottom/right.
    activation : None, 'linear' or 'relu'
        'relu' is fused into the kernel's store.

    Returns
    -------
    ndarray of shape (batch, out_height, out_width, out_channels)
    """
    backend = get_backend()
    relu = _fused_relu(activation)
    x = _as_array(x, "x", 4, backend)
    kernel = _as_array(kernel, "kernel", 4, backend)
    b = None if bias is None else _as_array(bias, "bias", 1, backend)
    _same_dtype(("x", x), ("kernel", kernel), ("bias", b))
    g = _conv_geometry(x, kernel, strides, padding, dilation_rate)
    if b is not None and b.shape[0] != g.c_out:
        raise ValueError(f"`bias` must have shape ({g.c_out},) to match the kernel's "
                         f"out_channels, got {b.shape}")
    if backend == "numpy" or _is_empty(g):
        return reference.conv2d(x, kernel, b, g, relu)
    y = _memory.empty((g.n, g.out_h, g.out_w, g.c_out))
    _kernels.conv2d_forward(x, kernel, b, y, tuple(g), relu, _threads_arg())
    return y


def conv2d_backward(dy: ArrayLike, x: ArrayLike, kernel: ArrayLike, strides: IntOrPair = 1,
                    padding: str = "valid", dilation_rate: IntOrPair = 1, *,
                    compute_dx: bool = True
                    ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d` for the gradient ``dy`` of its pre-activation output.

    Apply the activation's derivative to ``dy`` first (relu: ``dy * (y > 0)``).

    Returns
    -------
    dx : ndarray like ``x``, or None when ``compute_dx=False`` (first layers)
    dkernel : ndarray like ``kernel``
    dbias : ndarray of shape (out_channels,), ``dy`` summed over batch, height, width
    """
    backend = get_backend()
    x = _as_array(x, "x", 4, backend)
    kernel = _as_array(kernel, "kernel", 4, backend)
    dy = _as_array(dy, "dy", 4, backend)
    _same_dtype(("x", x), ("kernel", kernel), ("dy", dy))
    g = _conv_geometry(x, kernel, strides, padding, dilation_rate)
    _check_dy(dy, (g.n, g.out_h, g.out_w, g.c_out))
    if backend == "numpy" or _is_empty(g):
        return reference.conv2d_backward(dy, x, kernel, g, compute_dx)
    threads = _threads_arg()
    dx = None
    if compute_dx:
        dx = _memory.empty(x.shape)
        _kernels.conv2d_backward_input(dy, kernel, dx, tuple(g), threads)
    dkernel = _memory.empty(kernel.shape)
    dbias = _memory.empty((g.c_out,))
    _kernels.conv2d_backward_kernel(dy, x, dkernel, dbias, tuple(g), threads)
    return dx, dkernel, dbias


# ---------------------------------------------------------------------------
# Max pooling

# The C max-pool kernels number a window's cells in float32 lanes, exact up
# to 2**24 (issue 7: larger windows sent the gradient to several cells);
# csrc/pool2d.c refuses larger windows, this names the argument.
_C_MAX_POOL_WINDOW = 2**24


def _pool_geometry(x: np.ndarray, pool_size: IntOrPair, strides: Optional[IntOrPair],
                   padding: str, backend: str = "numpy") -> ConvGeometry:
    """Pooling geometry; ``backend='c'`` also checks the C kernels' window limit."""
    pool = normalize_pair(pool_size, "pool_size")
    if backend == "c" and pool[0] * pool[1] > _C_MAX_POOL_WINDOW:
        raise ValueError(f"`pool_size` {pool} gives windows of {pool[0] * pool[1]} cells; the "
                         "'c' backend pools windows of at most 2**24 cells (use the 'numpy' "
                         "backend for larger windows)")
    s = pool if strides is None else normalize_pair(strides, "strides")
    pad = normalize_padding(padding)
    _check_spatial(x, "x")
    return conv2d_geometry(x.shape, pool, x.shape[3], s, pad, (1, 1))


def max_pool2d(x: ArrayLike, pool_size: IntOrPair = 2, strides: Optional[IntOrPair] = None,
               padding: str = "valid") -> np.ndarray:
    """2-D max pooling over NHWC input; ``strides=None`` means ``pool_size``.

    With 'same' padding, padded cells never win. A NaN in a window is the
    window's maximum (as in ``np.max``).
    """
    backend = get_backend()
    x = _as_array(x, "x", 4, backend)
    g = _pool_geometry(x, pool_size, strides, padding, backend)
    if backend == "numpy" or _is_empty(g):
        return reference.max_pool2d(x, g)
    y = _memory.empty((g.n, g.out_h, g.out_w, g.c_out))
    _kernels.max_pool2d_forward(x, y, tuple(g), _threads_arg())
    return y


def max_pool2d_backward(dy: ArrayLike, x: ArrayLike, pool_size: IntOrPair = 2,
                        strides: Optional[IntOrPair] = None, padding: str = "valid"
                        ) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: each output gradient goes to the first
    maximum of its window in row-major order; overlapping windows add up."""
    backend = get_backend()
    x = _as_array(x, "x", 4, backend)
    dy = _as_array(dy, "dy", 4, backend)
    _same_dtype(("x", x), ("dy", dy))
    g = _pool_geometry(x, pool_size, strides, padding, backend)
    _check_dy(dy, (g.n, g.out_h, g.out_w, g.c_out))
    if backend == "numpy" or _is_empty(g):
        return reference.max_pool2d_backward(dy, x, g)
    dx = _memory.empty(x.shape)
    _kernels.max_pool2d_backward(dy, x, dx, tuple(g), _threads_arg())
    return dx


# ---------------------------------------------------------------------------
# Dense (fully connected): a 1x1 convolution over a 1x1 image per sample

def _dense_geometry(x: np.ndarray, kernel: np.ndarray) -> ConvGeometry:
    if kernel.shape[0] != x.shape[1]:
        raise ValueError(
            f"`kernel` expects {kernel.shape[0]} input features (kernel.shape[0]) but `x` has "
            f"{x.shape[1]} (x.shape[1]); kernel layout is (in_features, units)")
    return ConvGeometry(x.shape[0], 1, 1, x.shape[1], 1, 1, kernel.shape[1], 1, 1,
                        1, 1, 1, 1, 0, 0, 0, 0)


def dense(x: ArrayLike, kernel: ArrayLike, bias: Optional[ArrayLike] = None,
          activation: Optional[str] = None) -> np.ndarray:
    """``act(x @ kernel + bias)`` for ``x`` (batch, in_features), ``kernel``
    (in_features, units); activation None, 'linear' or 'relu'."""
    backend = get_backend()
    relu = _fused_relu(activation)
    x = _as_array(x, "x", 2, backend)
    kernel = _as_array(kernel, "kernel", 2, backend)
    b = None if bias is None else _as_array(bias, "bias", 1, backend)
    _same_dtype(("x", x), ("kernel", kernel), ("bias", b))
    g = _dense_geometry(x, kernel)
    if b is not None and b.shape[0] != g.c_out:
        raise ValueError(f"`bias` must have shape ({g.c_out},) to match the kernel's "
                         f"units, got {b.shape}")
    if backend == "numpy" or _is_empty(g):
        return reference.dense(x, kernel, b, relu)
    y = _memory.empty((g.n, g.c_out))
    _kernels.conv2d_forward(x.reshape(g.n, 1, 1, g.c_in), kernel.reshape(1, 1, g.c_in, g.c_out),
                            b, y.reshape(g.n, 1, 1, g.c_out), tuple(g), relu, _threads_arg())
    return y


def dense_backward(dy: ArrayLike, x: ArrayLike, kernel: ArrayLike, *, compute_dx: bool = True
                   ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """Gradients of :func:`dense` for the pre-activation gradient ``dy``:
    ``(dy @ kernel.T, x.T @ dy, dy.sum(0))``."""
    backend = get_backend()
    x = _as_array(x, "x", 2, backend)
    kernel = _as_array(kernel, "kernel", 2, backend)
    dy = _as_array(dy, "dy", 2, backend)
    _same_dtype(("x", x), ("kernel", kernel), ("dy", dy))
    g = _dense_geometry(x, kernel)
    if dy.shape != (g.n, g.c_out):
        raise ValueError(f"`dy` must have the output's shape {(g.n, g.c_out)}, got {dy.shape}")
    if backend == "numpy" or _is_empty(g):
        return reference.dense_backward(dy, x, kernel, compute_dx)
    threads = _threads_arg()
    dy4 = dy.reshape(g.n, 1, 1, g.c_out)
    k4 = kernel.reshape(1, 1, g.c_in, g.c_out)
    dx = None
    if compute_dx:
        dx = _memory.empty(x.shape)
        _kernels.conv2d_backward_input(dy4, k4, dx.reshape(g.n, 1, 1, g.c_in), tuple(g), threads)
    dkernel = _memory.empty(kernel.shape)
    dbias = _memory.empty((g.c_out,))
    _kernels.conv2d_backward_kernel(dy4, x.reshape(g.n, 1, 1, g.c_in), dkernel.reshape(k4.shape),
                                    dbias, tuple(g), threads)
    return dx, dkernel, dbias


# ---------------------------------------------------------------------------
# Activation derivatives

def relu_backward(dy: ArrayLike, y: ArrayLike) -> np.ndarray:
    """``dy * (y > 0)``: the gradient of a fused ReLU's input from that of its
    output ``y``, in one parallel pass on the C backend (NumPy's result, bit
    for bit: NaN in ``dy`` stays NaN where ``y <= 0``)."""
    backend = get_backend()
    dy_arr = _as_array(dy, "dy", np.ndim(dy), backend)
    y_arr = _as_array(y, "y", np.ndim(y), backend)
    _same_dtype(("dy", dy_arr), ("y", y_arr))
    if dy_arr.shape != y_arr.shape:
        raise ValueError(f"`dy` must have the shape of `y` {y_arr.shape}, got {dy_arr.shape}")
    if backend == "numpy" or dy_arr.size == 0:
        return dy_arr * (y_arr > 0)
    out = _memory.empty(dy_arr.shape)
    _kernels.relu_backward(dy_arr.reshape(-1), y_arr.reshape(-1), out.reshape(-1),
                           _threads_arg())
    return out


# ---------------------------------------------------------------------------
# Optimizer step

def _finite_number(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    return number


def adam_update(param: np.ndarray, grad: ArrayLike, m: np.ndarray, v: np.ndarray, *,
                alpha: float, beta_1: float, beta_2: float, epsilon: float,
                vhat: Optional[np.ndarray] = None) -> None:
    """One Adam step, in place, with TF's operations in the parameter's dtype::

        m += (grad - m) * (1 - beta_1)
        v += (grad * grad - v) * (1 - beta_2)
        vhat = maximum(vhat, v)                 # AMSGrad, when vhat is given
        param -= m * alpha / (sqrt(vhat if given else v) + epsilon)

    ``alpha`` is the step's learning rate with both bias corrections folded
    in, ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`` (as
    :class:`fastconv.optimizers.Adam` computes it). ``param``, ``m``, ``v`` and
    ``vhat`` are float arrays of one shape and dtype, updated in place. The C
    backend runs float32 C-contiguous arrays in one parallel pass (NumPy's
    result bit for bit); anything else runs the same operations in NumPy.
    """
    named = [("param", param), ("m", m), ("v", v)]
    if vhat is not None:
        named.append(("vhat", vhat))
    for name, arr in named:
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"`{name}` must be a NumPy array (it is updated in place), "
                            f"got {type(arr).__name__}")
        if arr.dtype.kind != "f":
            raise TypeError(f"`{name}` must have a float dtype, got {arr.dtype}")
        if not arr.flags.writeable:
            raise ValueError(f"`{name}` must be writeable (it is updated in place)")
    for name, arr in named[1:]:
        if arr.shape != param.shape:
            raise ValueError(f"`{name}` must have the shape of `param` {param.shape}, "
                             f"got {arr.shape}")
        if arr.dtype != param.dtype:
            raise TypeError(f"`{name}` has dtype {arr.dtype} but `param` has dtype "
                            f"{param.dtype}")
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError(f"`{name_a}` and `{name_b}` must not share memory")
    if grad is None or isinstance(grad, (str, bytes)):
        raise TypeError(f"`grad` must be a float array, got {type(grad).__name__}")
    grad_arr = np.asarray(grad)
    if grad_arr.dtype.kind != "f":
        raise TypeError(f"`grad` must have a float dtype, got {grad_arr.dtype}")
    if grad_arr.shape != param.shape:
        raise ValueError(f"`grad` must have the shape of `param` {param.shape}, "
                         f"got {grad_arr.shape}")
    alpha = _finite_number(alpha, "alpha")
    beta_1 = _finite_number(beta_1, "beta_1")
    beta_2 = _finite_number(beta_2, "beta_2")
    epsilon = _finite_number(epsilon, "epsilon")
    for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {beta!r}")
    if epsilon < 0:
        raise ValueError(f"`epsilon` must be >= 0, got {epsilon!r}")

    arrays = [a for _, a in named] + [grad_arr]
    in_c = (get_backend() == "c" and param.size > 0 and
            all(a.dtype == np.float32 and a.flags.c_contiguous and a.flags.aligned
                for a in arrays))
    if not in_c:
        reference.adam_update(param, grad_arr, m, v, vhat, alpha, beta_1, beta_2, epsilon)
        return
    one = np.float32(1)
    _kernels.adam_update(param.reshape(-1), grad_arr.reshape(-1), m.reshape(-1), v.reshape(-1),
                         None if vhat is None else vhat.reshape(-1), np.float32(alpha),
                         one - np.float32(beta_1), one - np.float32(beta_2),
                         np.float32(epsilon), _threads_arg())
