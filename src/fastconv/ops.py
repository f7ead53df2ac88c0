"""The functional API: argument normalisation, validation, backend dispatch.

Two backends compute every op: ``"c"`` (the compiled kernels, parallel) and
``"numpy"`` (:mod:`fastconv.reference`, readable); both compute in the input
dtype, float32 or float64. Activations are NHWC (``data_format='channels_last'``, Keras'
default) or NCHW (``'channels_first'``); convolution kernels HWIO (Keras) or
OIHW (PyTorch, ``kernel_format='OIHW'``). Conventions are resolved here, once:
the backends receive a :class:`~fastconv.shapes.ConvGeometry` and the kernel
in the layout that matches the data format. Inputs are never modified;
non-contiguous, Fortran-ordered, misaligned or byte-swapped arrays are copied
once; outputs are fresh C-contiguous arrays of the input dtype.

Where tf.keras 2.4 and PyTorch differ, the defaults are Keras' (fastconv's
layers mirror tf.keras 2.4, and its users' weights come from Keras) and
PyTorch's behaviour is an argument away: explicit pads, ``kernel_format='OIHW'``,
``count_include_pad=True``, ``batch_norm_update_moving(count=...)``. Each
docstring says where the two differ.

The ``'c'`` backend runs every op in the compiled kernels (the moving-average
update of batch normalization, a few operations on per-channel vectors, runs
NumPy's on both).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import operator
import os
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _memory, reference
from .shapes import (ConvGeometry, IntOrPair, PaddingArg, ResolvedPadding, _as_positive_int,
                     _nhwc_sizes,
                     causal_padding, conv2d_geometry, conv2d_transpose_geometry,
                     conv_output_size, conv_transpose_output_size, normalize_output_padding,
                     normalize_pair, normalize_padding, normalize_tuple, pool2d_geometry)

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
    "add", "conv2d", "conv2d_backward", "conv2d_transpose", "conv2d_transpose_backward",
    "conv1d", "conv1d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
    "avg_pool2d_backward", "max_pool1d", "max_pool1d_backward", "avg_pool1d",
    "avg_pool1d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
    "global_max_pool2d", "global_max_pool2d_backward", "batch_norm_train",
    "batch_norm_backward", "batch_norm_inference", "batch_norm_update_moving", "upsample2d",
    "upsample2d_backward", "dense", "dense_backward", "relu", "relu_backward", "adam_update",
    "optimizer_update",
    "conv_output_size", "conv_transpose_output_size", "set_backend", "get_backend",
    "use_backend", "set_num_threads", "get_num_threads",
]

ArrayLike = Union[np.ndarray, "list", "tuple"]
BACKENDS = ("c", "numpy")
_ACCEPTED_DTYPES = {"c": (np.dtype(np.float32), np.dtype(np.float64)),
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

# Fork safety. GNU OpenMP keeps its thread team across fork() but not its
# threads: in a child forked after a parallel op, the next parallel region
# waits for threads that do not exist, forever. So once the kernels have run,
# a forked child runs them on one thread (a team of one never touches the
# pool) and refuses more, with a warning; 'spawn' and 'forkserver' children
# are fresh processes and keep the default.
_kernels_ran = False
_fork_limited = False

_FORK_LIMIT_MESSAGE = (
    "this process was forked after fastconv's kernels ran on several threads; GNU OpenMP "
    "cannot start a new thread team in it, so fastconv runs on one thread here. Use the "
    "'spawn' or 'forkserver' start method of multiprocessing for multi-threaded children")


def _after_fork_in_child() -> None:
    global _num_threads, _fork_limited
    if _kernels_ran:
        _num_threads, _fork_limited = 1, True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    small problems, and never more than max(16, 4 x processors).

    In a process forked (``os.fork``, multiprocessing's 'fork') after the
    kernels ran, the kernels stay on one thread: GNU OpenMP would hang
    there. Asking for more then warns and changes nothing."""
    global _num_threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"`n` must be a positive int or None, got {type(n).__name__} {n!r}")
        if n < 1 or n > 2**31 - 1:
            # The C kernels take an int: larger values would only fail later,
            # inside the first op, with an OverflowError naming nothing.
            raise ValueError(f"`n` must be a positive int (at most 2**31 - 1) or None, got {n}")
        n = int(n)
    if _fork_limited and n != 1:
        warnings.warn(_FORK_LIMIT_MESSAGE, RuntimeWarning, stacklevel=2)
        return _num_threads
    previous, _num_threads = _num_threads, n
    return previous


def get_num_threads() -> int:
    """Threads the C kernels would use now (before small-problem limits)."""
    if _num_threads is not None:
        return _num_threads
    return _kernels.default_num_threads() if _kernels is not None else 1


def _threads_arg() -> int:
    # 0 lets the C side ask OpenMP at call time, in the calling thread.
    global _kernels_ran
    _kernels_ran = True
    return _num_threads if _num_threads is not None else 0


# ---------------------------------------------------------------------------
# Validation helpers

_DTYPE_NAMES = {b: " or ".join(d.name for d in ds) for b, ds in _ACCEPTED_DTYPES.items()}


def _as_array(value: object, name: str, ndim: Optional[int], backend: str,
              layout: Optional[str] = None) -> np.ndarray:
    """A C-contiguous, aligned, native-byte-order array of an accepted float dtype.

    ``ndim=None`` accepts any rank; ``layout`` describes the expected axes in
    the rank error (default: the NHWC/HWIO description of ``name``).
    """
    accepted = _ACCEPTED_DTYPES[backend]
    if (type(value) is np.ndarray and value.dtype in accepted
            and (ndim is None or value.ndim == ndim)):
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
        raise TypeError(f"`{name}` must have dtype {names}, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        layout = _LAYOUTS.get(name, "") if layout is None else layout
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


# The activations a forward convolution or dense layer fuses into its store,
# as the C kernels' codes (fc_conv2d_params.relu): ReLU6 is Keras'
# ReLU(max_value=6) and MobileNet's activation.
_ACTIVATION_CODES = {"linear": 0, "relu": 1, "relu6": 2}


def _fused_activation(activation: object) -> int:
    """0 (none), 1 (ReLU) or 2 (ReLU6) for ``activation``."""
    if activation is None:
        return 0
    if isinstance(activation, str) and activation.lower() in _ACTIVATION_CODES:
        return _ACTIVATION_CODES[activation.lower()]
    raise ValueError(f"`activation` must be None, 'linear', 'relu' or 'relu6', got "
                     f"{activation!r}")


def _fused_relu(activation: object) -> bool:
    if activation is None:
        return False
    if isinstance(activation, str) and activation.lower() in ("linear", "relu"):
        return activation.lower() == "relu"
    raise ValueError(f"`activation` must be None, 'linear' or 'relu', got {activation!r}")


def _flag(value: object, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"`{name}` must be True or False, got {type(value).__name__} {value!r}")


def _is_empty(g: ConvGeometry) -> bool:
    return g.n == 0 or g.c_in == 0 or g.c_out == 0


# -- conventions ---------------------------------------------------------------

_DATA_FORMATS = {
    2: {"channels_last": False, "nhwc": False, "channels_first": True, "nchw": True},
    1: {"channels_last": False, "nwc": False, "channels_first": True, "ncw": True},
}
_DATA_FORMAT_NAMES = {2: "'channels_last'/'NHWC' or 'channels_first'/'NCHW'",
                      1: "'channels_last'/'NWC' or 'channels_first'/'NCW'"}
_KERNEL_FORMATS = {2: ("HWIO", "OIHW"), 1: ("WIO", "OIW")}


def _channels_first(data_format: object, dims: int = 2) -> bool:
    """True for NCHW (NCW), False for NHWC (NWC); case-insensitive."""
    expected = _DATA_FORMAT_NAMES[dims]
    if not isinstance(data_format, str):
        raise TypeError(f"`data_format` must be {expected} (case-insensitive), got "
                        f"{type(data_format).__name__} {data_format!r}")
    try:
        return _DATA_FORMATS[dims][data_format.lower()]
    except KeyError:
        raise ValueError(f"`data_format` must be {expected} (case-insensitive), got "
                         f"{data_format!r}") from None


def _kernel_oi_first(kernel_format: object, dims: int = 2) -> bool:
    """True for OIHW (OIW, PyTorch), False for HWIO (WIO, Keras); case-insensitive."""
    names = _KERNEL_FORMATS[dims]
    expected = f"'{names[0]}' (Keras) or '{names[1]}' (PyTorch)"
    if not isinstance(kernel_format, str):
        raise TypeError(f"`kernel_format` must be {expected}, got "
                        f"{type(kernel_format).__name__} {kernel_format!r}")
    value = kernel_format.upper()
    if value not in names:
        raise ValueError(f"`kernel_format` must be {expected} (case-insensitive), got "
                         f"{kernel_format!r}")
    return value == names[1]


@functools.lru_cache(maxsize=None)
def _act_layout(channels_first: bool, dims: int, out: bool = False) -> str:
    """Axes of activations, for messages: '(batch, height, width, channels) NHWC'."""
    spatial = ["height", "width"][2 - dims:]
    if out:
        spatial = ["out_" + s for s in spatial]
    letters = "HW"[2 - dims:]
    if channels_first:
        return f"(batch, channels, {', '.join(spatial)}) NC{letters}"
    return f"(batch, {', '.join(spatial)}, channels) N{letters}C"


@functools.lru_cache(maxsize=None)
def _kernel_layout(oi_first: bool, dims: int, transpose: bool = False) -> str:
    i, o = (("out_channels/groups", "in_channels") if transpose
            else ("in_channels/groups", "out_channels"))
    spatial = ["kernel_height", "kernel_width"][2 - dims:]
    name = _KERNEL_FORMATS[dims][oi_first]
    parts = [o, i] + spatial if oi_first else spatial + [i, o]
    return f"({', '.join(parts)}) {name}"


def _kernel_axes(oi_first: bool, dims: int) -> Tuple[Optional[int], int, int, int]:
    """Axes of the user's kernel holding (kernel_height, kernel_width, I, O)."""
    if dims == 2:
        return (2, 3, 1, 0) if oi_first else (0, 1, 2, 3)
    return (None, 2, 1, 0) if oi_first else (None, 0, 1, 2)


def _kernel_dims(kernel: np.ndarray, oi_first: bool, dims: int) -> Tuple[int, int, int, int]:
    """(kernel_height, kernel_width, I, O) of the user's kernel."""
    shape = kernel.shape
    if dims == 2:
        if oi_first:
            return shape[2], shape[3], shape[1], shape[0]
        return shape[0], shape[1], shape[2], shape[3]
    if oi_first:
        return 1, shape[2], shape[1], shape[0]
    return 1, shape[0], shape[1], shape[2]


def _kernel_to_data_layout(kernel: np.ndarray, oi_first: bool,
                           channels_first: bool) -> np.ndarray:
    """The 4-D kernel in the layout matching the data format (channels_last:
    HWIO, channels_first: OIHW): one transposed copy, only when they differ."""
    if oi_first == channels_first:
        return kernel
    if channels_first:  # HWIO -> OIHW
        return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))  # OIHW -> HWIO


def _kernel_to_user_layout(dkernel: np.ndarray, oi_first: bool,
                           channels_first: bool) -> np.ndarray:
    """Inverse of :func:`_kernel_to_data_layout` (for dkernel)."""
    return _kernel_to_data_layout(dkernel, channels_first, oi_first)


def _check_spatial(x: np.ndarray, name: str, channels_first: bool = False,
                   dims: int = 2) -> None:
    spatial = x.shape[2:] if channels_first else x.shape[1:-1]
    if min(spatial) < 1:
        what = "height and width" if dims == 2 else "width"
        raise ValueError(f"`{name}` must have {what} >= 1, got shape {x.shape}")


def _window_arg(value: object, name: str, dims: int) -> Tuple[int, int]:
    """strides, dilation_rate, pool_size as a (height, width) pair (1-D: height 1)."""
    if dims == 2:
        return normalize_pair(value, name)
    return (1, normalize_tuple(value, 1, name)[0])


def _shape4(shape: Tuple[int, ...], channels_first: bool, dims: int) -> Tuple[int, ...]:
    """The 4-D shape the 1-D ops see: NWC -> (N, 1, W, C), NCW -> (N, C, 1, W)."""
    if dims == 2:
        return shape
    n, a, b = shape
    return (n, a, 1, b) if channels_first else (n, 1, a, b)


def _window_padding(padding: object, dims: int, causal: bool = False) -> ResolvedPadding:
    """Normalised padding: 'valid', 'same', 'causal' (1-D convolutions only) or
    explicit 2-D pads; 1-D pads become ((0, 0), (left, right))."""
    pad = normalize_padding(padding, explicit=True, spatial_dims=dims, causal=causal)
    if dims == 2 or isinstance(pad, str):
        return pad
    return ((0, 0),) + tuple(pad)


def _check_kernel(kernel: np.ndarray, x: np.ndarray, groups: int, channels_first: bool,
                  oi_first: bool, dims: int, transpose: bool) -> Tuple[int, int, int]:
    """Check the kernel against ``x`` and ``groups``; returns (kh, kw, c_out)."""
    kh, kw, k_i, k_o = _kernel_dims(kernel, oi_first, dims)
    axes = _kernel_axes(oi_first, dims)
    fmt = _KERNEL_FORMATS[dims][oi_first]
    if kh < 1 or kw < 1:
        what = "height and width" if dims == 2 else "width"
        raise ValueError(f"`kernel` must have {what} >= 1, got shape {kernel.shape}")
    x_axis = 1 if channels_first else x.ndim - 1
    c_in = x.shape[x_axis]
    if c_in % groups:
        raise ValueError(f"`groups`={groups} must divide the input channels, but `x` has "
                         f"{c_in} channels (x.shape[{x_axis}])")

    def layout_hint() -> str:
        """The expected layout, and the other format when the kernel fits that one."""
        _, _, i, o = _kernel_dims(kernel, not oi_first, dims)
        fits = o == c_in if transpose else (i * groups == c_in and o % groups == 0)
        other = _KERNEL_FORMATS[dims][not oi_first]
        hint = (f" (the shape fits kernel_format='{other}'; pass it for "
                f"{'PyTorch' if not oi_first else 'Keras'} weights)" if fits else "")
        return f"kernel layout is {_kernel_layout(oi_first, dims, transpose)}{hint}"

    if transpose:
        if k_o != c_in:
            raise ValueError(
                f"`kernel` of the transposed convolution takes {k_o} input channels "
                f"(kernel.shape[{axes[3]}]) but `x` has {c_in} channels (x.shape[{x_axis}]); "
                f"{layout_hint()}")
        return kh, kw, k_i * groups
    if k_o % groups:
        raise ValueError(f"`groups`={groups} must divide the output channels, but `kernel` of "
                         f"shape {kernel.shape} ({fmt}) has {k_o} (kernel.shape[{axes[3]}])")
    if k_i * groups != c_in:
        per_group = (f", i.e. {c_in // groups} per group with groups={groups}"
                     if groups > 1 else "")
        raise ValueError(
            f"`kernel` expects {k_i} input channels{' per group' if groups > 1 else ''} "
            f"(kernel.shape[{axes[2]}]) but `x` has {c_in} channels (x.shape[{x_axis}])"
            f"{per_group}; {layout_hint()}")
    return kh, kw, k_o


def _conv_geometry(x: np.ndarray, kernel: np.ndarray, strides: object, padding: object,
                   dilation_rate: object, groups: object, channels_first: bool,
                   oi_first: bool, dims: int = 2, *, transpose: bool = False,
                   output_padding: object = None) -> ConvGeometry:
    """Validate a convolution's arguments and resolve its geometry (for a
    transposed convolution: the geometry of its associated convolution)."""
    s = _window_arg(strides, "strides", dims)
    d = _window_arg(dilation_rate, "dilation_rate", dims)
    pad = _window_padding(padding, dims, causal=dims == 1 and not transpose)
    n_groups = _as_positive_int(groups, "groups")
    op = normalize_output_padding(output_padding, s) if transpose else None
    _check_spatial(x, "x", channels_first, dims)
    kh, kw, c_out = _check_kernel(kernel, x, n_groups, channels_first, oi_first, dims,
                                  transpose)
    if pad == "causal":
        pad = ((0, 0), causal_padding(kw, d[1]))
    shape = _shape4(x.shape, channels_first, dims)
    if transpose:
        return conv2d_transpose_geometry(shape, (kh, kw), c_out, s, pad, op, d,
                                         groups=n_groups, channels_first=channels_first)
    return conv2d_geometry(shape, (kh, kw), c_out, s, pad, d, groups=n_groups,
                           channels_first=channels_first)


def _act_shape(g: ConvGeometry, which: str) -> Tuple[int, int, int, int]:
    """The 4-D shape of the geometry's input ('in') or output ('out') activations."""
    if which == "in":
        n, h, w, c = g.n, g.h, g.w, g.c_in
    else:
        n, h, w, c = g.n, g.out_h, g.out_w, g.c_out
    return (n, c, h, w) if g.channels_first else (n, h, w, c)


def _check_shape(arr: np.ndarray, name: str, expected: Tuple[int, ...], what: str) -> None:
    if arr.shape != tuple(expected):
        raise ValueError(f"`{name}` must have {what} {tuple(expected)}, got {arr.shape}")


def _check_dy(dy: np.ndarray, expected: Tuple[int, ...]) -> None:
    _check_shape(dy, "dy", expected, "the output's shape")


def _check_bias(bias: Optional[np.ndarray], channels: int) -> None:
    if bias is not None and bias.shape[0] != channels:
        raise ValueError(f"`bias` must have shape ({channels},) to match the kernel's "
                         f"out_channels, got {bias.shape}")


# ---------------------------------------------------------------------------
# Convolution pieces, per backend. Arrays arrive validated, activations in the
# data format and the kernel in the matching layout.

def _c_geometry(g: ConvGeometry) -> Tuple[ConvGeometry, int, int]:
    """The geometry the C kernels run, and the zero rows (top) and columns
    (left) to add to the input first. The kernels take top/left pads up to
    the dilated kernel's reach ``(k - 1) * d`` (bottom/right ones are implied
    by the output size); a wider explicit pad only adds outputs that see no
    input, so its excess becomes zeros of a padded copy (a rare geometry)."""
    ex_h = max(g.pad_top - (g.kh - 1) * g.dilation_h, 0)
    ex_w = max(g.pad_left - (g.kw - 1) * g.dilation_w, 0)
    if ex_h == 0 and ex_w == 0:
        return g, 0, 0
    return g._replace(h=g.h + ex_h, w=g.w + ex_w, pad_top=g.pad_top - ex_h,
                      pad_left=g.pad_left - ex_w), ex_h, ex_w


def _spatial_pad(a: np.ndarray, top: int, left: int, channels_first: bool) -> np.ndarray:
    """``a`` with ``top`` zero rows and ``left`` zero columns in front."""
    if top == 0 and left == 0:
        return a
    spatial = ((top, 0), (left, 0))
    return np.pad(a, ((0, 0), (0, 0)) + spatial if channels_first else
                  ((0, 0),) + spatial + ((0, 0),))


def _spatial_crop(a: np.ndarray, top: int, left: int, channels_first: bool) -> np.ndarray:
    if top == 0 and left == 0:
        return a
    view = a[:, :, top:, left:] if channels_first else a[:, top:, left:, :]
    return np.ascontiguousarray(view)


def _c_layout(g: ConvGeometry) -> dict:
    return dict(groups=g.groups, channels_first=g.channels_first)


def _depthwise(g: ConvGeometry) -> bool:
    """One group per input channel: the depthwise kernels (vectorised over
    channels, not GEMMs of width c_out / c_in)."""
    return g.groups > 1 and g.groups == g.c_in


def _conv_forward(backend: str, x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray],
                  g: ConvGeometry, relu: int) -> np.ndarray:
    """The forward convolution; ``relu`` is the fused activation's code
    (:func:`_fused_activation`)."""
    if backend == "numpy" or _is_empty(g):
        return reference.conv2d(x, kernel, bias, g, relu)
    gc, ex_h, ex_w = _c_geometry(g)
    x = _spatial_pad(x, ex_h, ex_w, g.channels_first)
    y = _memory.empty(_act_shape(g, "out"), x.dtype)
    if _depthwise(g):
        _kernels.depthwise_conv2d_forward(x, kernel, bias, y, tuple(gc)[:17], relu,
                                          g.channels_first, _threads_arg())
    else:
        _kernels.conv2d_forward(x, kernel, bias, y, tuple(gc)[:17], relu, _threads_arg(),
                                **_c_layout(g))
    return y


def _conv_backward_input(backend: str, dy: np.ndarray, kernel: np.ndarray, g: ConvGeometry,
                         bias: Optional[np.ndarray] = None, relu: bool = False) -> np.ndarray:
    """dx; with a bias or ReLU: the transposed convolution (the C kernel fuses them)."""
    if backend == "numpy" or _is_empty(g):
        dx = reference.conv2d_backward_input(dy, kernel, g)
        return reference.add_bias_relu(dx, bias, g.channels_first, relu)
    gc, ex_h, ex_w = _c_geometry(g)
    dx = _memory.empty(_act_shape(gc, "in"), dy.dtype)
    if bias is None and not relu and _depthwise(g):
        _kernels.depthwise_conv2d_backward_input(dy, kernel, dx, tuple(gc)[:17],
                                                 g.channels_first, _threads_arg())
    elif bias is None and not relu:
        _kernels.conv2d_backward_input(dy, kernel, dx, tuple(gc)[:17], _threads_arg(),
                                       **_c_layout(g))
    else:
        _kernels.conv2d_transpose(dy, kernel, bias, dx, tuple(gc)[:17], relu, _threads_arg(),
                                  **_c_layout(g))
    return _spatial_crop(dx, ex_h, ex_w, g.channels_first)


def _conv_backward_kernel(backend: str, dy: np.ndarray, x: np.ndarray, g: ConvGeometry,
                          kernel_shape: Tuple[int, ...], want_dbias: bool
                          ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(dkernel in the data layout, dbias or None)."""
    dbias: Optional[np.ndarray]
    if backend == "numpy" or _is_empty(g):
        dbias = reference.bias_grad(dy, g.channels_first) if want_dbias else None
        return reference.conv2d_backward_kernel(dy, x, g), dbias
    gc, ex_h, ex_w = _c_geometry(g)
    x = _spatial_pad(x, ex_h, ex_w, g.channels_first)
    dkernel = _memory.empty(kernel_shape, x.dtype)
    dbias = _memory.empty((g.c_out,), x.dtype) if want_dbias else None
    if _depthwise(g):
        _kernels.depthwise_conv2d_backward_kernel(dy, x, dkernel, dbias, tuple(gc)[:17],
                                                  g.channels_first, _threads_arg())
    else:
        _kernels.conv2d_backward_kernel(dy, x, dkernel, dbias, tuple(gc)[:17], _threads_arg(),
                                        **_c_layout(g))
    return dkernel, dbias


def _backward_flags(compute_dx: object, compute_dkernel: object,
                    compute_dbias: object) -> Tuple[bool, bool, bool]:
    want_dx = _flag(compute_dx, "compute_dx")
    want_dk = _flag(compute_dkernel, "compute_dkernel")
    want_db = want_dk if compute_dbias is None else _flag(compute_dbias, "compute_dbias")
    return want_dx, want_dk, want_db


# ---------------------------------------------------------------------------
# Convolution

_CONV_PARAMETERS = """\
    strides, dilation_rate : int or pair of int
    padding : {'valid', 'same'}, int, (pad_h, pad_w) or ((top, bottom), (left, right))
        Strings are case-insensitive and follow TensorFlow: with 'same' the
        extra row/column goes to the bottom/right (PyTorch's symmetric
        ``padding=`` cannot express that). Integers are explicit zero pads with
        PyTorch's arithmetic ``out = floor((in + before + after - ke) / s) + 1``
        (``ke = (k - 1) * d + 1``).
    groups : int, keyword-only
        Grouped convolution: ``in_channels`` and ``out_channels`` are multiples
        of ``groups``; output channel ``o`` sees the input channels of group
        ``o // (out_channels / groups)`` (PyTorch and Keras agree).
        ``groups == in_channels`` is a depthwise convolution with channel
        multiplier ``out_channels / in_channels``.
    data_format : {'channels_last', 'NHWC', 'channels_first', 'NCHW'}, keyword-only
        Layout of ``x`` and of the output (and of ``dy``, ``dx``), case-insensitive.
    kernel_format : {'HWIO', 'OIHW'}, keyword-only
        ``'HWIO'`` ``(kh, kw, in_channels/groups, out_channels)`` as Keras stores
        it; ``'OIHW'`` ``(out_channels, in_channels/groups, kh, kw)`` as PyTorch
        stores it. Independent of ``data_format``."""


def conv2d(x: ArrayLike, kernel: ArrayLike, bias: Optional[ArrayLike] = None,
           strides: IntOrPair = 1, padding: PaddingArg = "valid",
           dilation_rate: IntOrPair = 1, activation: Optional[str] = None, *,
           groups: int = 1, data_format: str = "channels_last",
           kernel_format: str = "HWIO") -> np.ndarray:
    """2-D convolution (cross-correlation, as in TensorFlow and PyTorch).

    Parameters
    ----------
    x : ndarray of shape (batch, height, width, in_channels), or NCHW
    kernel : ndarray, see ``kernel_format``
    bias : ndarray of shape (out_channels,), optional
    {params}
    activation : None, 'linear', 'relu' or 'relu6'
        Fused into the kernel's store; 'relu6' is ``min(max(y, 0), 6)``
        (Keras' ``ReLU(max_value=6)``).

    Returns
    -------
    ndarray of shape (batch, out_height, out_width, out_channels), or NCHW
    """
    backend = get_backend()
    relu = _fused_activation(activation)
    cf = _channels_first(data_format)
    oi = _kernel_oi_first(kernel_format)
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    kernel = _as_array(kernel, "kernel", 4, backend, _kernel_layout(oi, 2))
    b = None if bias is None else _as_array(bias, "bias", 1, backend)
    _same_dtype(("x", x), ("kernel", kernel), ("bias", b))
    g = _conv_geometry(x, kernel, strides, padding, dilation_rate, groups, cf, oi)
    _check_bias(b, g.c_out)
    return _conv_forward(backend, x, _kernel_to_data_layout(kernel, oi, cf), b, g, relu)


def conv2d_backward(dy: ArrayLike, x: ArrayLike, kernel: ArrayLike, strides: IntOrPair = 1,
                    padding: PaddingArg = "valid", dilation_rate: IntOrPair = 1, *,
                    groups: int = 1, data_format: str = "channels_last",
                    kernel_format: str = "HWIO", compute_dx: bool = True,
                    compute_dkernel: bool = True, compute_dbias: Optional[bool] = None
                    ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of :func:`conv2d` for the gradient ``dy`` of its pre-activation output.

    Apply the activation's derivative to ``dy`` first (relu: ``dy * (y > 0)``).
    The arguments are those of the forward call.

    Parameters
    ----------
    compute_dx, compute_dkernel : bool, keyword-only
        Skip what is not needed (``compute_dx=False`` for a first layer).
    compute_dbias : bool, optional, keyword-only
        Default: follows ``compute_dkernel``.

    Returns
    -------
    dx : ndarray like ``x``, or None
    dkernel : ndarray like ``kernel`` (in its ``kernel_format``), or None
    dbias : ndarray of shape (out_channels,), ``dy`` summed over batch, height,
        width; or None
    """
    backend = get_backend()
    cf = _channels_first(data_format)
    oi = _kernel_oi_first(kernel_format)
    want_dx, want_dk, want_db = _backward_flags(compute_dx, compute_dkernel, compute_dbias)
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    kernel = _as_array(kernel, "kernel", 4, backend, _kernel_layout(oi, 2))
    dy = _as_array(dy, "dy", 4, backend, _act_layout(cf, 2, out=True))
    _same_dtype(("x", x), ("kernel", kernel), ("dy", dy))
    g = _conv_geometry(x, kernel, strides, padding, dilation_rate, groups, cf, oi)
    _check_dy(dy, _act_shape(g, "out"))
    return _conv_backward(backend, dy, x, kernel, g, oi, want_dx, want_dk, want_db)


def _conv_backward(backend: str, dy: np.ndarray, x: np.ndarray, kernel: np.ndarray,
                   g: ConvGeometry, oi: bool, want_dx: bool, want_dk: bool, want_db: bool
                   ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    cf = g.channels_first
    k = _kernel_to_data_layout(kernel, oi, cf)
    dx = _conv_backward_input(backend, dy, k, g) if want_dx else None
    dkernel = dbias = None
    if want_dk:
        dk, dbias = _conv_backward_kernel(backend, dy, x, g, k.shape, want_db)
        dkernel = _kernel_to_user_layout(dk, oi, cf)
    elif want_db:
        # A memory-bound sum NumPy does well (pairwise, so accurate); it may
        # differ in the last bits from the dbias computed beside dkernel.
        dbias = reference.bias_grad(dy, cf)
    return dx, dkernel, dbias


_TRANSPOSE_PARAMETERS = """\
    strides, dilation_rate : int or pair of int
    padding : {'valid', 'same'}, int, (pad_h, pad_w) or ((top, bottom), (left, right))
        Strings follow Keras' ``Conv2DTranspose`` (``deconv_output_length``):
        without ``output_padding`` the output is ``in * s + max(ke - s, 0)``
        ('valid') or ``in * s`` ('same'); with it, ``(in - 1) * s + ke - 2 * pad
        + output_padding`` (``pad = ke // 2`` for 'same', 0 for 'valid'), and
        the pads are TensorFlow's for the associated convolution (the extra row
        at the bottom). Integers are PyTorch's ``padding``:
        ``out = (in - 1) * s - before - after + ke + output_padding``.
    output_padding : int or pair of int, optional
        ``0 <= output_padding < stride`` on each axis (Keras' rule; PyTorch also
        allows values below the dilation).
    groups : int, keyword-only
        As in :func:`conv2d`, for the associated convolution.
    data_format : {'channels_last', 'NHWC', 'channels_first', 'NCHW'}, keyword-only
    kernel_format : {'HWIO', 'OIHW'}, keyword-only
        The layouts of the associated convolution: ``'HWIO'`` is
        ``(kh, kw, out_channels/groups, in_channels)``, exactly Keras'
        ``Conv2DTranspose`` kernel; ``'OIHW'`` is
        ``(in_channels, out_channels/groups, kh, kw)``, exactly PyTorch's
        ``conv_transpose2d`` weight."""


def conv2d_transpose(x: ArrayLike, kernel: ArrayLike, bias: Optional[ArrayLike] = None,
                     strides: IntOrPair = 1, padding: PaddingArg = "valid",
                     output_padding: Optional[IntOrPair] = None,
                     dilation_rate: IntOrPair = 1, activation: Optional[str] = None, *,
                     groups: int = 1, data_format: str = "channels_last",
                     kernel_format: str = "HWIO") -> np.ndarray:
    """Transposed 2-D convolution ("deconvolution").

    The gradient, with respect to its input, of the *associated* convolution
    that maps this op's output space back to its input space (same kernel,
    strides, dilation, groups and pads); then the bias and the activation.

    Parameters
    ----------
    x : ndarray of shape (batch, height, width, in_channels), or NCHW
    kernel : ndarray, see ``kernel_format``
    bias : ndarray of shape (out_channels,), optional
    {params}
    activation : None, 'linear' or 'relu'

    Returns
    -------
    ndarray of shape (batch, out_height, out_width, out_channels), or NCHW;
    sizes from :func:`fastconv.conv_transpose_output_size`.
    """
    backend = get_backend()
    relu = _fused_relu(activation)
    cf = _channels_first(data_format)
    oi = _kernel_oi_first(kernel_format)
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    kernel = _as_array(kernel, "kernel", 4, backend, _kernel_layout(oi, 2, transpose=True))
    b = None if bias is None else _as_array(bias, "bias", 1, backend)
    _same_dtype(("x", x), ("kernel", kernel), ("bias", b))
    g = _conv_geometry(x, kernel, strides, padding, dilation_rate, groups, cf, oi,
                       transpose=True, output_padding=output_padding)
    _check_bias(b, g.c_in)
    return _conv_backward_input(backend, x, _kernel_to_data_layout(kernel, oi, cf), g, b, relu)


def conv2d_transpose_backward(dy: ArrayLike, x: ArrayLike, kernel: ArrayLike,
                              strides: IntOrPair = 1, padding: PaddingArg = "valid",
                              output_padding: Optional[IntOrPair] = None,
                              dilation_rate: IntOrPair = 1, *, groups: int = 1,
                              data_format: str = "channels_last", kernel_format: str = "HWIO",
                              compute_dx: bool = True, compute_dkernel: bool = True,
                              compute_dbias: Optional[bool] = None
                              ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray],
                                         Optional[np.ndarray]]:
    """Gradients of :func:`conv2d_transpose` for the gradient ``dy`` of its
    pre-activation output; the arguments are those of the forward call.

    ``dx`` is the associated convolution of ``dy``; ``dkernel`` the associated
    convolution's kernel gradient with ``x`` in the role of its output gradient
    and ``dy`` in the role of its input; ``dbias`` is ``dy`` summed over batch,
    height and width. ``compute_*`` as in :func:`conv2d_backward`.

    Returns
    -------
    dx, dkernel, dbias : ndarray or None
    """
    backend = get_backend()
    cf = _channels_first(data_format)
    oi = _kernel_oi_first(kernel_format)
    want_dx, want_dk, want_db = _backward_flags(compute_dx, compute_dkernel, compute_dbias)
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    kernel = _as_array(kernel, "kernel", 4, backend, _kernel_layout(oi, 2, transpose=True))
    dy = _as_array(dy, "dy", 4, backend, _act_layout(cf, 2, out=True))
    _same_dtype(("x", x), ("kernel", kernel), ("dy", dy))
    g = _conv_geometry(x, kernel, strides, padding, dilation_rate, groups, cf, oi,
                       transpose=True, output_padding=output_padding)
    _check_dy(dy, _act_shape(g, "in"))
    k = _kernel_to_data_layout(kernel, oi, cf)
    dx = _conv_forward(backend, dy, k, None, g, False) if want_dx else None
    dkernel = dbias = None
    if want_dk:
        dk, _ = _conv_backward_kernel(backend, x, dy, g, k.shape, False)
        dkernel = _kernel_to_user_layout(dk, oi, cf)
    if want_db:
        dbias = reference.bias_grad(dy, cf)   # as in _conv_backward
    return dx, dkernel, dbias


_CONV1D_PARAMETERS = """\
    strides, dilation_rate : int or tuple of one int
    padding : {'valid', 'same', 'causal'}, int or (left, right)
        'causal' is Keras' ``Conv1D`` left padding ``(k - 1) * d``; the rest as
        in :func:`conv2d`.
    groups : int, keyword-only
    data_format : {'channels_last', 'NWC', 'channels_first', 'NCW'}, keyword-only
    kernel_format : {'WIO', 'OIW'}, keyword-only
        ``'WIO'`` ``(kw, in_channels/groups, out_channels)`` (Keras),
        ``'OIW'`` ``(out_channels, in_channels/groups, kw)`` (PyTorch)."""


def _x_view_1d(x: np.ndarray, channels_first: bool) -> np.ndarray:
    """NWC -> (N, 1, W, C), NCW -> (N, C, 1, W): a view."""
    return x.reshape(_shape4(x.shape, channels_first, 1))


def _kernel_view_1d(kernel: np.ndarray, oi_first: bool) -> np.ndarray:
    """WIO -> (1, W, I, O) HWIO, OIW -> (O, I, 1, W) OIHW: a view."""
    k = kernel.shape
    return kernel.reshape((k[0], k[1], 1, k[2]) if oi_first else (1,) + k)


def conv1d(x: ArrayLike, kernel: ArrayLike, bias: Optional[ArrayLike] = None,
           strides: IntOrPair = 1, padding: PaddingArg = "valid",
           dilation_rate: IntOrPair = 1, activation: Optional[str] = None, *,
           groups: int = 1, data_format: str = "channels_last",
           kernel_format: str = "WIO") -> np.ndarray:
    """1-D convolution: :func:`conv2d` over a height of 1 (views, no copies).

    Parameters
    ----------
    x : ndarray of shape (batch, width, in_channels), or NCW
    kernel : ndarray, see ``kernel_format``
    bias : ndarray of shape (out_channels,), optional
    {params}
    activation : None, 'linear' or 'relu'

    Returns
    -------
    ndarray of shape (batch, out_width, out_channels), or NCW
    """
    backend = get_backend()
    relu = _fused_relu(activation)
    cf = _channels_first(data_format, 1)
    oi = _kernel_oi_first(kernel_format, 1)
    x = _as_array(x, "x", 3, backend, _act_layout(cf, 1))
    kernel = _as_array(kernel, "kernel", 3, backend, _kernel_layout(oi, 1))
    b = None if bias is None else _as_array(bias, "bias", 1, backend)
    _same_dtype(("x", x), ("kernel", kernel), ("bias", b))
    g = _conv_geometry(x, kernel, strides, padding, dilation_rate, groups, cf, oi, dims=1)
    _check_bias(b, g.c_out)
    k4 = _kernel_to_data_layout(_kernel_view_1d(kernel, oi), oi, cf)
    y = _conv_forward(backend, _x_view_1d(x, cf), k4, b, g, relu)
    return y.reshape(_squeeze_h(y.shape, cf))


def _squeeze_h(shape: Tuple[int, ...], cf: bool) -> Tuple[int, ...]:
    return (shape[0], shape[1], shape[3]) if cf else (shape[0], shape[2], shape[3])


def conv1d_backward(dy: ArrayLike, x: ArrayLike, kernel: ArrayLike, strides: IntOrPair = 1,
                    padding: PaddingArg = "valid", dilation_rate: IntOrPair = 1, *,
                    groups: int = 1, data_format: str = "channels_last",
                    kernel_format: str = "WIO", compute_dx: bool = True,
                    compute_dkernel: bool = True, compute_dbias: Optional[bool] = None
                    ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of :func:`conv1d` (as :func:`conv2d_backward`): ``(dx, dkernel, dbias)``."""
    backend = get_backend()
    cf = _channels_first(data_format, 1)
    oi = _kernel_oi_first(kernel_format, 1)
    want_dx, want_dk, want_db = _backward_flags(compute_dx, compute_dkernel, compute_dbias)
    x = _as_array(x, "x", 3, backend, _act_layout(cf, 1))
    kernel = _as_array(kernel, "kernel", 3, backend, _kernel_layout(oi, 1))
    dy = _as_array(dy, "dy", 3, backend, _act_layout(cf, 1, out=True))
    _same_dtype(("x", x), ("kernel", kernel), ("dy", dy))
    g = _conv_geometry(x, kernel, strides, padding, dilation_rate, groups, cf, oi, dims=1)
    _check_dy(dy, _squeeze_h(_act_shape(g, "out"), cf))
    dy4 = dy.reshape(_act_shape(g, "out"))
    dx, dk, db = _conv_backward(backend, dy4, _x_view_1d(x, cf), _kernel_view_1d(kernel, oi),
                                g, oi, want_dx, want_dk, want_db)
    return (None if dx is None else dx.reshape(x.shape),
            None if dk is None else dk.reshape(kernel.shape), db)


def _fill_doc(fn: object, **fields: str) -> None:
    """Put shared parameter descriptions into a docstring's ``{field}`` slots."""
    doc = getattr(fn, "__doc__", None)
    if doc:  # None under python -OO
        fn.__doc__ = doc.format(**{k: v.strip() for k, v in fields.items()})


_fill_doc(conv2d, params=_CONV_PARAMETERS)
_fill_doc(conv2d_transpose, params=_TRANSPOSE_PARAMETERS)
_fill_doc(conv1d, params=_CONV1D_PARAMETERS)


# ---------------------------------------------------------------------------
# Pooling

# The C max-pool kernels number a window's cells in float32 lanes, exact up
# to 2**24 (issue 7: larger windows sent the gradient to several cells);
# csrc/pool2d.c refuses larger windows, this names the argument.
_C_MAX_POOL_WINDOW = 2**24

_POOL_PADDING_DOC = """\
    padding : {'valid', 'same'}, int, (pad_h, pad_w) or ((top, bottom), (left, right))
        Strings follow TensorFlow (with 'same' the extra row/column goes
        bottom/right); explicit pads use PyTorch's arithmetic and must be
        smaller than the pool size on every side, so every window holds a real
        cell (PyTorch also asks for at most half the pool size)."""


def _pool_geometry(x: np.ndarray, pool_size: object, strides: object, padding: object,
                   backend: str = "numpy", channels_first: bool = False, dims: int = 2,
                   c_window_limit: bool = False) -> ConvGeometry:
    """Pooling geometry; ``c_window_limit`` checks the C max-pool window limit
    on the 'c' backend."""
    pool = _window_arg(pool_size, "pool_size", dims)
    if c_window_limit and backend == "c" and pool[0] * pool[1] > _C_MAX_POOL_WINDOW:
        raise ValueError(f"`pool_size` {pool[2 - dims:]} gives windows of {pool[0] * pool[1]} "
                         "cells; the 'c' backend pools windows of at most 2**24 cells (use "
                         "the 'numpy' backend for larger windows)")
    s = pool if strides is None else _window_arg(strides, "strides", dims)
    pad = _window_padding(padding, dims)
    _check_spatial(x, "x", channels_first, dims)
    return pool2d_geometry(_shape4(x.shape, channels_first, dims), pool, s, pad,
                           channels_first=channels_first)


def _max_pool_forward(backend: str, x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    if backend == "numpy" or _is_empty(g):
        return reference.max_pool2d(x, g)
    y = _memory.empty(_act_shape(g, "out"), x.dtype)
    _kernels.max_pool2d_forward(x, y, tuple(g)[:17], _threads_arg(), g.channels_first)
    return y


def _max_pool_backward(backend: str, dy: np.ndarray, x: np.ndarray,
                       g: ConvGeometry) -> np.ndarray:
    if backend == "numpy" or _is_empty(g):
        return reference.max_pool2d_backward(dy, x, g)
    dx = _memory.empty(x.shape, x.dtype)
    _kernels.max_pool2d_backward(dy, x, dx, tuple(g)[:17], _threads_arg(), g.channels_first)
    return dx


def _avg_pool_forward(backend: str, x: np.ndarray, g: ConvGeometry,
                      include_pad: bool) -> np.ndarray:
    if backend == "numpy" or _is_empty(g):
        return reference.avg_pool2d(x, g, include_pad)
    y = _memory.empty(_act_shape(g, "out"), x.dtype)
    _kernels.avg_pool2d_forward(x, y, tuple(g)[:17], include_pad, g.channels_first,
                                _threads_arg())
    return y


def _avg_pool_backward(backend: str, dy: np.ndarray, g: ConvGeometry,
                       include_pad: bool) -> np.ndarray:
    if backend == "numpy" or _is_empty(g):
        return reference.avg_pool2d_backward(dy, g, include_pad)
    dx = _memory.empty(_act_shape(g, "in"), dy.dtype)
    _kernels.avg_pool2d_backward(dy, dx, tuple(g)[:17], include_pad, g.channels_first,
                                 _threads_arg())
    return dx


def max_pool2d(x: ArrayLike, pool_size: IntOrPair = 2, strides: Optional[IntOrPair] = None,
               padding: PaddingArg = "valid", *, data_format: str = "channels_last"
               ) -> np.ndarray:
    """2-D max pooling.

    Parameters
    ----------
    x : ndarray of shape (batch, height, width, channels), or NCHW
    pool_size : int or pair of int
    strides : int or pair of int, optional
        Default: ``pool_size``.
    {padding}
    data_format : {{'channels_last', 'NHWC', 'channels_first', 'NCHW'}}, keyword-only

    Padded cells never win. A NaN in a window is the window's maximum (as in
    ``np.max``).
    """
    backend = get_backend()
    cf = _channels_first(data_format)
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    g = _pool_geometry(x, pool_size, strides, padding, backend, cf, c_window_limit=True)
    return _max_pool_forward(backend, x, g)


def max_pool2d_backward(dy: ArrayLike, x: ArrayLike, pool_size: IntOrPair = 2,
                        strides: Optional[IntOrPair] = None, padding: PaddingArg = "valid", *,
                        data_format: str = "channels_last") -> np.ndarray:
    """Gradient of :func:`max_pool2d`: each output gradient goes to the first
    maximum of its window in row-major order (the first NaN, if any); overlapping
    windows add up. The arguments are those of the forward call."""
    backend = get_backend()
    cf = _channels_first(data_format)
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    dy = _as_array(dy, "dy", 4, backend, _act_layout(cf, 2, out=True))
    _same_dtype(("x", x), ("dy", dy))
    g = _pool_geometry(x, pool_size, strides, padding, backend, cf, c_window_limit=True)
    _check_dy(dy, _act_shape(g, "out"))
    return _max_pool_backward(backend, dy, x, g)


def avg_pool2d(x: ArrayLike, pool_size: IntOrPair = 2, strides: Optional[IntOrPair] = None,
               padding: PaddingArg = "valid", *, count_include_pad: bool = False,
               data_format: str = "channels_last") -> np.ndarray:
    """2-D average pooling.

    Parameters
    ----------
    x : ndarray of shape (batch, height, width, channels), or NCHW
    pool_size : int or pair of int
    strides : int or pair of int, optional
        Default: ``pool_size``.
    {padding}
    count_include_pad : bool, keyword-only
        False (default): divide each window's sum by its real (non-padded)
        cells, as Keras' ``AveragePooling2D(padding='same')`` does. True: divide
        by ``kh * kw``, PyTorch's default (``count_include_pad=True``) with
        explicit pads.
    data_format : {{'channels_last', 'NHWC', 'channels_first', 'NCHW'}}, keyword-only
    """
    backend = get_backend()
    cf = _channels_first(data_format)
    include = _flag(count_include_pad, "count_include_pad")
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    g = _pool_geometry(x, pool_size, strides, padding, backend, cf)
    return _avg_pool_forward(backend, x, g, include)


def avg_pool2d_backward(dy: ArrayLike, x: ArrayLike, pool_size: IntOrPair = 2,
                        strides: Optional[IntOrPair] = None, padding: PaddingArg = "valid", *,
                        count_include_pad: bool = False,
                        data_format: str = "channels_last") -> np.ndarray:
    """Gradient of :func:`avg_pool2d`: each window's gradient, divided as in the
    forward pass, spread over its cells. The arguments are those of the forward
    call (``x`` gives the input's shape)."""
    backend = get_backend()
    cf = _channels_first(data_format)
    include = _flag(count_include_pad, "count_include_pad")
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    dy = _as_array(dy, "dy", 4, backend, _act_layout(cf, 2, out=True))
    _same_dtype(("x", x), ("dy", dy))
    g = _pool_geometry(x, pool_size, strides, padding, backend, cf)
    _check_dy(dy, _act_shape(g, "out"))
    return _avg_pool_backward(backend, dy, g, include)


_fill_doc(max_pool2d, padding=_POOL_PADDING_DOC)
_fill_doc(avg_pool2d, padding=_POOL_PADDING_DOC)


# -- 1-D pooling: the 2-D ops over a height of 1 -----------------------------

def _pool1d_args(x: object, dy: object, pool_size: object, strides: object, padding: object,
                 data_format: object, c_window_limit: bool
                 ) -> Tuple[str, np.ndarray, Optional[np.ndarray], ConvGeometry]:
    backend = get_backend()
    cf = _channels_first(data_format, 1)
    x = _as_array(x, "x", 3, backend, _act_layout(cf, 1))
    dy_arr = None
    if dy is not None:
        dy_arr = _as_array(dy, "dy", 3, backend, _act_layout(cf, 1, out=True))
        _same_dtype(("x", x), ("dy", dy_arr))
    g = _pool_geometry(x, pool_size, strides, padding, backend, cf, 1, c_window_limit)
    if dy_arr is not None:
        _check_dy(dy_arr, _squeeze_h(_act_shape(g, "out"), cf))
        dy_arr = dy_arr.reshape(_act_shape(g, "out"))
    return backend, x, dy_arr, g


def max_pool1d(x: ArrayLike, pool_size: IntOrPair = 2, strides: Optional[IntOrPair] = None,
               padding: PaddingArg = "valid", *, data_format: str = "channels_last"
               ) -> np.ndarray:
    """1-D max pooling over ``x`` of shape (batch, width, channels) (or NCW):
    :func:`max_pool2d` over a height of 1. ``padding``: 'valid', 'same', an
    int or (left, right)."""
    backend, x, _, g = _pool1d_args(x, None, pool_size, strides, padding, data_format, True)
    y = _max_pool_forward(backend, x.reshape(_act_shape(g, "in")), g)
    return y.reshape(_squeeze_h(y.shape, g.channels_first))


def max_pool1d_backward(dy: ArrayLike, x: ArrayLike, pool_size: IntOrPair = 2,
                        strides: Optional[IntOrPair] = None, padding: PaddingArg = "valid", *,
                        data_format: str = "channels_last") -> np.ndarray:
    """Gradient of :func:`max_pool1d` (the rules of :func:`max_pool2d_backward`)."""
    backend, x, dy4, g = _pool1d_args(x, dy, pool_size, strides, padding, data_format, True)
    assert dy4 is not None
    dx = _max_pool_backward(backend, dy4, x.reshape(_act_shape(g, "in")), g)
    return dx.reshape(x.shape)


def avg_pool1d(x: ArrayLike, pool_size: IntOrPair = 2, strides: Optional[IntOrPair] = None,
               padding: PaddingArg = "valid", *, count_include_pad: bool = False,
               data_format: str = "channels_last") -> np.ndarray:
    """1-D average pooling: :func:`avg_pool2d` over a height of 1."""
    include = _flag(count_include_pad, "count_include_pad")
    backend, x, _, g = _pool1d_args(x, None, pool_size, strides, padding, data_format, False)
    y = _avg_pool_forward(backend, x.reshape(_act_shape(g, "in")), g, include)
    return y.reshape(_squeeze_h(y.shape, g.channels_first))


def avg_pool1d_backward(dy: ArrayLike, x: ArrayLike, pool_size: IntOrPair = 2,
                        strides: Optional[IntOrPair] = None, padding: PaddingArg = "valid", *,
                        count_include_pad: bool = False,
                        data_format: str = "channels_last") -> np.ndarray:
    """Gradient of :func:`avg_pool1d`."""
    include = _flag(count_include_pad, "count_include_pad")
    backend, x, dy4, g = _pool1d_args(x, dy, pool_size, strides, padding, data_format, False)
    assert dy4 is not None
    dx = _avg_pool_backward(backend, dy4, g, include)
    return dx.reshape(x.shape)


# -- global pooling ------------------------------------------------------------

def _global_args(x: object, data_format: object, keepdims: object
                 ) -> Tuple[str, np.ndarray, ConvGeometry, bool]:
    backend = get_backend()
    cf = _channels_first(data_format)
    keep = _flag(keepdims, "keepdims")
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    _check_spatial(x, "x", cf)
    n, h, w, c = _nhwc_sizes(x.shape, cf)
    # one unpadded window covering the image: nothing for the padding rules
    # to resolve (they were half of a small call's 10 us)
    g = ConvGeometry(n, h, w, c, h, w, c, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, cf)
    return backend, x, g, keep


def _global_dy(dy: object, g: ConvGeometry, keep: bool, backend: str, x: np.ndarray
               ) -> np.ndarray:
    """``dy`` validated against the global pool's output, as (N, 1, 1, C) / (N, C, 1, 1)."""
    out4 = _act_shape(g, "out")
    expected = out4 if keep else (g.n, g.c_out)
    layout = (_act_layout(g.channels_first, 2, out=True) + " with out_height = out_width = 1"
              if keep else "(batch, channels)")
    dy_arr = _as_array(dy, "dy", len(expected), backend, layout)
    _same_dtype(("x", x), ("dy", dy_arr))
    _check_dy(dy_arr, expected)
    return dy_arr.reshape(out4)


def global_avg_pool2d(x: ArrayLike, *, data_format: str = "channels_last",
                      keepdims: bool = False) -> np.ndarray:
    """Mean over height and width: (batch, channels), or (batch, 1, 1, channels) /
    (batch, channels, 1, 1) with ``keepdims`` (Keras' GlobalAveragePooling2D)."""
    backend, x, g, keep = _global_args(x, data_format, keepdims)
    cf = g.channels_first
    if backend == "numpy" or _is_empty(g):
        return reference.global_avg_pool2d(x, cf, keep)
    y = _memory.empty((g.n, g.c_out), x.dtype)
    _kernels.global_avg_pool2d(x, y, cf, _threads_arg())
    return y.reshape(_act_shape(g, "out")) if keep else y


def global_avg_pool2d_backward(dy: ArrayLike, x: ArrayLike, *, data_format: str = "channels_last",
                               keepdims: bool = False) -> np.ndarray:
    """Gradient of :func:`global_avg_pool2d`: ``dy / (height * width)`` at every cell."""
    backend, x, g, keep = _global_args(x, data_format, keepdims)
    dy4 = _global_dy(dy, g, keep, backend, x)
    shape, cf = x.shape, g.channels_first
    if backend == "numpy" or _is_empty(g):
        return reference.global_avg_pool2d_backward(dy4, shape, cf)
    dx = _memory.empty(shape, x.dtype)
    _kernels.global_avg_pool2d_backward(dy4.reshape(g.n, g.c_out), dx, cf, _threads_arg())
    return dx


def global_max_pool2d(x: ArrayLike, *, data_format: str = "channels_last",
                      keepdims: bool = False) -> np.ndarray:
    """Maximum over height and width (a NaN wins, as in ``np.max``): (batch,
    channels), or keeping the spatial axes with ``keepdims``. One max-pool
    window covering the image."""
    backend, x, g, keep = _global_args(x, data_format, keepdims)
    if backend == "numpy" or _is_empty(g):
        y = reference.max_pool2d(x, g)
        return y if keep else y.reshape(g.n, g.c_out)
    y = _memory.empty((g.n, g.c_out), x.dtype)
    _kernels.global_max_pool2d(x, y, g.channels_first, _threads_arg())
    return y.reshape(_act_shape(g, "out")) if keep else y


def global_max_pool2d_backward(dy: ArrayLike, x: ArrayLike, *, data_format: str = "channels_last",
                               keepdims: bool = False) -> np.ndarray:
    """Gradient of :func:`global_max_pool2d`: to the first maximum in row-major
    (height, width) order, the first NaN if there is one (as max_pool2d)."""
    backend, x, g, keep = _global_args(x, data_format, keepdims)
    dy4 = _global_dy(dy, g, keep, backend, x)
    if backend == "numpy" or _is_empty(g):
        return reference.max_pool2d_backward(dy4, x, g)
    dx = _memory.empty(x.shape, x.dtype)
    _kernels.global_max_pool2d_backward(dy4.reshape(g.n, g.c_out), x, dx, g.channels_first,
                                        _threads_arg())
    return dx


# ---------------------------------------------------------------------------
# Batch normalization

_BN_LETTER_FORMATS = {"nwc": (3, False), "ncw": (3, True), "nhwc": (4, False),
                      "nchw": (4, True), "ndhwc": (5, False), "ncdhw": (5, True)}


def _bn_input(x: object, backend: str, data_format: object,
              name: str = "x") -> Tuple[np.ndarray, bool, int]:
    """``x`` (any ndim >= 2), whether its channel axis is 1, and the channels."""
    arr = _as_array(x, name, None, backend)
    if arr.ndim < 2:
        raise ValueError(f"`{name}` must have at least 2 dimensions (batch, ..., channels), "
                         f"got shape {arr.shape}")
    expected = "'channels_last' or 'channels_first' (or 'NHWC', 'NCHW', 'NWC', 'NCW', ...)"
    if not isinstance(data_format, str):
        raise TypeError(f"`data_format` must be {expected}, got {type(data_format).__name__} "
                        f"{data_format!r}")
    key = data_format.lower()
    if key in ("channels_last", "channels_first"):
        cf = key == "channels_first"
    elif key in _BN_LETTER_FORMATS:
        ndim, cf = _BN_LETTER_FORMATS[key]
        if ndim != arr.ndim:
            raise ValueError(f"`data_format`={data_format!r} describes {ndim}-D data but "
                             f"`{name}` has shape {arr.shape}")
    else:
        raise ValueError(f"`data_format` must be {expected} (case-insensitive), got "
                         f"{data_format!r}")
    channels = arr.shape[1 if cf else -1]
    if arr.size == 0 and channels > 0:
        raise ValueError(f"`{name}` must hold at least one value per channel, got shape "
                         f"{arr.shape}")
    return arr, cf, channels


def _channel_vector(value: object, name: str, channels: int, backend: str) -> np.ndarray:
    arr = _as_array(value, name, 1, backend, f"of shape ({channels},), one value per channel")
    _check_shape(arr, name, (channels,), "one value per channel of `x`, shape")
    return arr


def _optional_vector(value: object, name: str, channels: int,
                     backend: str) -> Optional[np.ndarray]:
    return None if value is None else _channel_vector(value, name, channels, backend)


def _norm_dims(x: np.ndarray, channels_first: bool) -> Tuple[int, int, int]:
    """``x`` seen as (outer, channels, inner), the statistics taken per channel
    over outer and inner: channels last (outer = all but the channel axis,
    inner = 1) or first (outer = batch, inner = the spatial axes)."""
    if channels_first:
        return x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))
    c = x.shape[-1]
    return x.size // c, c, 1


def _epsilon(value: object) -> float:
    eps = _finite_number(value, "epsilon")
    if eps <= 0:
        raise ValueError(f"`epsilon` must be a finite number > 0, got {value!r}")
    return eps


def batch_norm_train(x: ArrayLike, gamma: Optional[ArrayLike] = None,
                     beta: Optional[ArrayLike] = None, *, epsilon: float = 1e-3,
                     activation: Optional[str] = None, data_format: str = "channels_last"
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalization with the batch's statistics (training mode).

    Normalises over every axis but the channel axis (the last one for
    ``'channels_last'``, axis 1 for ``'channels_first'``; any ``x.ndim >= 2``)::

        y = (x - mean) / sqrt(var + epsilon) * gamma + beta

    with the batch mean and the *biased* batch variance of each channel (as
    Keras and PyTorch normalise).

    Parameters
    ----------
    x : ndarray
    gamma, beta : ndarray of shape (channels,), optional
        None: 1 and 0 (Keras' ``scale=False`` / ``center=False``).
    epsilon : float, keyword-only
        Keras' default 1e-3 (PyTorch's is 1e-5).
    activation : None, 'linear' or 'relu', keyword-only
    data_format : {'channels_last', 'channels_first'}, keyword-only
        ('NHWC', 'NCHW', 'NWC', 'NCW', ... when they match ``x.ndim``.)

    Returns
    -------
    y : ndarray like ``x``
    mean, var : ndarray of shape (channels,)
        Feed them to :func:`batch_norm_backward` and
        :func:`batch_norm_update_moving`.
    """
    backend = get_backend()
    relu = _fused_relu(activation)
    x, cf, channels = _bn_input(x, backend, data_format)
    gamma = _optional_vector(gamma, "gamma", channels, backend)
    beta = _optional_vector(beta, "beta", channels, backend)
    eps = _epsilon(epsilon)
    _same_dtype(("x", x), ("gamma", gamma), ("beta", beta))
    if backend == "numpy" or channels == 0:
        return reference.batch_norm_train(x, gamma, beta, eps, relu, cf)
    outer, c, inner = _norm_dims(x, cf)
    flat, threads = x.reshape(-1), _threads_arg()
    mean, var = _memory.empty((c,), x.dtype), _memory.empty((c,), x.dtype)
    _kernels.batch_norm_stats(flat, mean, var, outer, c, inner, threads)
    y = _memory.empty(x.shape, x.dtype)
    _kernels.batch_norm_apply(flat, mean, var, gamma, beta, eps, relu, y.reshape(-1), outer, c,
                              inner, threads)
    return y, mean, var


def batch_norm_backward(dy: ArrayLike, x: ArrayLike, gamma: Optional[ArrayLike],
                        mean: ArrayLike, var: ArrayLike, *, epsilon: float = 1e-3,
                        data_format: str = "channels_last", compute_dx: bool = True
                        ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """Gradients of :func:`batch_norm_train` for the gradient ``dy`` of its
    pre-activation output (apply the activation's derivative first).

    ``mean`` and ``var`` are the batch statistics the forward pass returned;
    their dependence on ``x`` is included in ``dx``.

    Returns
    -------
    dx : ndarray like ``x``, or None with ``compute_dx=False``
    dgamma, dbeta : ndarray of shape (channels,)
        Computed even when ``gamma`` is None (the gradient of an implicit
        gamma of 1, beta of 0).
    """
    backend = get_backend()
    want_dx = _flag(compute_dx, "compute_dx")
    x, cf, channels = _bn_input(x, backend, data_format)
    dy = _as_array(dy, "dy", x.ndim, backend, f"with the shape of `x` {x.shape}")
    _check_shape(dy, "dy", x.shape, "the shape of `x`")
    gamma = _optional_vector(gamma, "gamma", channels, backend)
    mean = _channel_vector(mean, "mean", channels, backend)
    var = _channel_vector(var, "var", channels, backend)
    eps = _epsilon(epsilon)
    _same_dtype(("x", x), ("dy", dy), ("gamma", gamma), ("mean", mean), ("var", var))
    if backend == "numpy" or channels == 0:
        return reference.batch_norm_backward(dy, x, gamma, mean, var, eps, cf, want_dx)
    outer, c, inner = _norm_dims(x, cf)
    dx = _memory.empty(x.shape, x.dtype) if want_dx else None
    dgamma, dbeta = _memory.empty((c,), x.dtype), _memory.empty((c,), x.dtype)
    _kernels.batch_norm_backward(dy.reshape(-1), x.reshape(-1), mean, var, gamma, eps,
                                 None if dx is None else dx.reshape(-1), dgamma, dbeta, outer,
                                 c, inner, _threads_arg())
    return dx, dgamma, dbeta


def batch_norm_inference(x: ArrayLike, gamma: Optional[ArrayLike], beta: Optional[ArrayLike],
                         moving_mean: ArrayLike, moving_var: ArrayLike, *,
                         epsilon: float = 1e-3, activation: Optional[str] = None,
                         data_format: str = "channels_last") -> np.ndarray:
    """Batch normalization with the moving statistics (inference mode):
    ``(x - moving_mean) / sqrt(moving_var + epsilon) * gamma + beta``, then the
    activation. ``gamma``/``beta`` may be None (1 and 0)."""
    backend = get_backend()
    relu = _fused_relu(activation)
    x, cf, channels = _bn_input(x, backend, data_format)
    gamma = _optional_vector(gamma, "gamma", channels, backend)
    beta = _optional_vector(beta, "beta", channels, backend)
    mm = _channel_vector(moving_mean, "moving_mean", channels, backend)
    mv = _channel_vector(moving_var, "moving_var", channels, backend)
    eps = _epsilon(epsilon)
    _same_dtype(("x", x), ("gamma", gamma), ("beta", beta), ("moving_mean", mm),
                ("moving_var", mv))
    if backend == "numpy" or channels == 0:
        return reference.batch_norm_inference(x, gamma, beta, mm, mv, eps, relu, cf)
    outer, c, inner = _norm_dims(x, cf)
    y = _memory.empty(x.shape, x.dtype)
    _kernels.batch_norm_apply(x.reshape(-1), mm, mv, gamma, beta, eps, relu, y.reshape(-1),
                              outer, c, inner, _threads_arg())
    return y


def batch_norm_update_moving(moving_mean: np.ndarray, moving_var: np.ndarray, mean: ArrayLike,
                             var: ArrayLike, *, momentum: float = 0.99,
                             count: Optional[int] = None) -> None:
    """Update the moving statistics in place, with TensorFlow's operations::

        moving_mean -= (moving_mean - mean) * (1 - momentum)
        moving_var  -= (moving_var  - var')  * (1 - momentum)

    ``var' = var`` when ``count`` is None. With ``count`` (the number of values
    each channel was reduced over, e.g. ``N * H * W``) ``var' = var * count /
    (count - 1)``, the unbiased (Bessel-corrected) variance: that is what
    tf.keras 2.4 feeds its moving variance on its fused path (4-D inputs, the
    default for Conv2D feature maps), and what PyTorch's running variance
    uses. Keras 3 feeds the biased variance (``count=None``).

    PyTorch's ``momentum`` is ``1 - momentum`` here (0.1 there is 0.9 here).

    Parameters
    ----------
    moving_mean, moving_var : ndarray of shape (channels,), float32 or float64
        Writeable, of one dtype, not sharing memory; updated in place.
    mean, var : ndarray of shape (channels,)
        The batch statistics from :func:`batch_norm_train`, of the same dtype.
    momentum : float, keyword-only
        In [0, 1].
    count : int, optional, keyword-only
        >= 2.
    """
    floats = (np.dtype(np.float32), np.dtype(np.float64))
    for name, arr in (("moving_mean", moving_mean), ("moving_var", moving_var)):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"`{name}` must be a NumPy array (it is updated in place), "
                            f"got {type(arr).__name__}")
        if arr.dtype not in floats:
            raise TypeError(f"`{name}` must have dtype float32 or float64, got {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D array of shape (channels,), got shape "
                             f"{arr.shape}")
        if not arr.flags.writeable:
            raise ValueError(f"`{name}` must be writeable (it is updated in place)")
    if moving_var.dtype != moving_mean.dtype:
        raise TypeError(f"`moving_var` has dtype {moving_var.dtype} but `moving_mean` has "
                        f"dtype {moving_mean.dtype}")
    channels = moving_mean.shape[0]
    _check_shape(moving_var, "moving_var", (channels,), "the shape of `moving_mean`")
    if np.may_share_memory(moving_mean, moving_var):
        raise ValueError("`moving_mean` and `moving_var` must not share memory")
    stats = []
    for name, value in (("mean", mean), ("var", var)):
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError(f"`{name}` must be a float array, got {type(value).__name__}")
        arr = np.asarray(value)
        if arr.dtype != moving_mean.dtype:
            raise TypeError(f"`{name}` has dtype {arr.dtype} but `moving_mean` has dtype "
                            f"{moving_mean.dtype}")
        _check_shape(arr, name, (channels,), "the shape of `moving_mean`")
        stats.append(arr)
    m = _finite_number(momentum, "momentum")
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"`momentum` must be in [0, 1], got {momentum!r}")
    if count is not None:
        if isinstance(count, (bool, np.bool_)):
            raise TypeError(f"`count` must be an integer >= 2 or None, got bool {count!r}")
        try:
            count = operator.index(count)
        except TypeError:
            raise TypeError(f"`count` must be an integer >= 2 or None, got "
                            f"{type(count).__name__} {count!r}") from None
        if count < 2:
            raise ValueError(f"`count` must be an integer >= 2 (the values per channel; the "
                             f"unbiased variance divides by count - 1), got {count}")
    # A few vector operations over (channels,): NumPy's, on both backends.
    reference.batch_norm_update_moving(moving_mean, moving_var, stats[0], stats[1], m, count)


# ---------------------------------------------------------------------------
# Upsampling

_INTERPOLATIONS = ("nearest", "bilinear")


def _upsample_args(size: object, interpolation: object, data_format: object
                   ) -> Tuple[Tuple[int, int], str, bool]:
    s = normalize_pair(size, "size")
    if not isinstance(interpolation, str):
        raise TypeError(f"`interpolation` must be 'nearest' or 'bilinear', got "
                        f"{type(interpolation).__name__} {interpolation!r}")
    mode = interpolation.lower()
    if mode not in _INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be 'nearest' or 'bilinear' (case-insensitive), "
                         f"got {interpolation!r}")
    return s, mode, _channels_first(data_format)


def upsample2d(x: ArrayLike, size: IntOrPair = 2, interpolation: str = "nearest", *,
               data_format: str = "channels_last") -> np.ndarray:
    """Upsample height and width by integer factors.

    Parameters
    ----------
    x : ndarray of shape (batch, height, width, channels), or NCHW
    size : int or pair of positive int
        (height factor, width factor).
    interpolation : {'nearest', 'bilinear'}
        'nearest' repeats each cell (Keras' ``UpSampling2D``). 'bilinear' is
        ``tf.image.resize(..., 'bilinear')``: half-pixel centres, source
        coordinate ``(dst + 0.5) / size - 0.5`` clamped to ``[0, in - 1]``,
        identical to PyTorch's ``interpolate(mode='bilinear',
        align_corners=False)`` for integer factors.
    data_format : {'channels_last', 'NHWC', 'channels_first', 'NCHW'}, keyword-only

    Returns
    -------
    ndarray of shape (batch, height * size[0], width * size[1], channels), or NCHW
    """
    backend = get_backend()
    s, mode, cf = _upsample_args(size, interpolation, data_format)
    x = _as_array(x, "x", 4, backend, _act_layout(cf, 2))
    _check_spatial(x, "x", cf)
    if backend == "numpy" or x.size == 0:
        return reference.upsample2d(x, s, mode, cf)
    n, h, w, c = (x.shape[0], x.shape[2], x.shape[3], x.shape[1]) if cf else x.shape
    y = _memory.empty((n, c, h * s[0], w * s[1]) if cf else (n, h * s[0], w * s[1], c), x.dtype)
    _kernels.upsample2d_forward(x, y, s[0], s[1], mode == "bilinear", cf, _threads_arg())
    return y


def upsample2d_backward(dy: ArrayLike, size: IntOrPair = 2, interpolation: str = "nearest", *,
                        data_format: str = "channels_last") -> np.ndarray:
    """Gradient of :func:`upsample2d`: ``dx`` has ``dy``'s spatial sizes divided by
    ``size`` (which must divide them)."""
    backend = get_backend()
    s, mode, cf = _upsample_args(size, interpolation, data_format)
    dy = _as_array(dy, "dy", 4, backend, _act_layout(cf, 2, out=True))
    spatial = dy.shape[2:] if cf else dy.shape[1:3]
    for axis, (n, k) in enumerate(zip(spatial, s)):
        if n < 1 or n % k:
            name = ("height", "width")[axis]
            raise ValueError(f"`dy` must have a {name} that is a positive multiple of "
                             f"`size`[{axis}] = {k}, got shape {dy.shape}")
    if backend == "numpy" or dy.size == 0:
        return reference.upsample2d_backward(dy, s, mode, cf)
    n, c = dy.shape[0], dy.shape[1 if cf else 3]
    h, w = spatial[0] // s[0], spatial[1] // s[1]
    dx = _memory.empty((n, c, h, w) if cf else (n, h, w, c), dy.dtype)
    _kernels.upsample2d_backward(dy, dx, s[0], s[1], mode == "bilinear", cf, _threads_arg())
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
    (in_features, units); activation None, 'linear', 'relu' or 'relu6'."""
    backend = get_backend()
    relu = _fused_activation(activation)
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
    y = _memory.empty((g.n, g.c_out), x.dtype)
    _kernels.conv2d_forward(x.reshape(g.n, 1, 1, g.c_in), kernel.reshape(1, 1, g.c_in, g.c_out),
                            b, y.reshape(g.n, 1, 1, g.c_out), tuple(g)[:17], relu, _threads_arg())
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
        dx = _memory.empty(x.shape, x.dtype)
        _kernels.conv2d_backward_input(dy4, k4, dx.reshape(g.n, 1, 1, g.c_in), tuple(g)[:17],
                                       threads)
    dkernel = _memory.empty(kernel.shape, x.dtype)
    dbias = _memory.empty((g.c_out,), x.dtype)
    _kernels.conv2d_backward_kernel(dy4, x.reshape(g.n, 1, 1, g.c_in), dkernel.reshape(k4.shape),
                                    dbias, tuple(g)[:17], threads)
    return dx, dkernel, dbias


# ---------------------------------------------------------------------------
# Element-wise sum (residual connections), ReLU and its derivative

def add(a: ArrayLike, b: ArrayLike, *, relu: bool = False) -> np.ndarray:
    """``a + b``, then ``np.maximum(., 0)`` with ``relu``: for two C-contiguous
    float32 or float64 arrays of one shape and dtype, one parallel pass on
    the C backend into the caching allocator (NumPy's results bit for bit;
    a residual add and its ReLU without the temporary and its fresh pages);
    anything else (broadcasting, other dtypes, subclasses) NumPy's own."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
            and a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
            and a.flags.c_contiguous and b.flags.c_contiguous and a.size > 0
            and get_backend() == "c"):
        out = _memory.empty(a.shape, a.dtype)
        _kernels.add(a.reshape(-1), b.reshape(-1), out.reshape(-1), relu, _threads_arg())
        return out
    total = np.add(a, b)
    return np.maximum(total, 0) if relu else total

def relu(x: ArrayLike) -> np.ndarray:
    """``np.maximum(x, 0)`` for a float32 or float64 array, in one parallel
    pass on the C backend: NumPy's result bit for bit (NaN stays NaN, its
    payload and sign kept; -0 becomes +0), several times faster than
    NumPy's NaN-aware ``maximum`` loop. Anything else (other dtypes, lists,
    array subclasses, objects with ``__array_ufunc__`` such as a traced
    Lambda's values) gets ``np.maximum(x, 0)`` itself."""
    if (type(x) is not np.ndarray or x.dtype not in (np.float32, np.float64)
            or get_backend() == "numpy" or x.size == 0):
        return np.maximum(x, 0)
    x_arr = np.ascontiguousarray(x)
    out = _memory.empty(x_arr.shape, x_arr.dtype)
    _kernels.relu_forward(x_arr.reshape(-1), out.reshape(-1), _threads_arg())
    return out


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
    out = _memory.empty(dy_arr.shape, dy_arr.dtype)
    _kernels.relu_backward(dy_arr.reshape(-1), y_arr.reshape(-1), out.reshape(-1),
                           _threads_arg())
    return out


# ---------------------------------------------------------------------------
# Optimizer step

def _finite_number(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    return number


def _check_update_arrays(named: List[Tuple[str, Any]], grad: Any) -> np.ndarray:
    """An optimizer update's arrays: ``named[0]`` the parameter, the rest its
    state, all writeable float arrays of its shape and dtype sharing no
    memory; returns ``grad`` as an array of the parameter's shape."""
    param = named[0][1]
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
    return grad_arr


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
    backend runs float32 and float64 C-contiguous arrays in one parallel pass
    (NumPy's result bit for bit); anything else runs the same operations in
    NumPy.
    """
    named = [("param", param), ("m", m), ("v", v)]
    if vhat is not None:
        named.append(("vhat", vhat))
    grad_arr = _check_update_arrays(named, grad)
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
    in_c = (get_backend() == "c" and param.size > 0 and param.dtype in _ACCEPTED_DTYPES["c"] and
            all(a.dtype == param.dtype and a.flags.c_contiguous and a.flags.aligned
                for a in arrays))
    if not in_c:
        reference.adam_update(param, grad_arr, m, v, vhat, alpha, beta_1, beta_2, epsilon)
        return
    t = param.dtype.type   # the constants rounded to the working dtype, as NumPy does
    one = t(1)
    _kernels.adam_update(param.reshape(-1), grad_arr.reshape(-1), m.reshape(-1), v.reshape(-1),
                         None if vhat is None else vhat.reshape(-1), t(alpha),
                         one - t(beta_1), one - t(beta_2), t(epsilon), _threads_arg())


# every rule's coefficients (fastconv.h's FC_COEF_*, less the 1 - decays)
_UPDATE_COEFFICIENT_NAMES = ("learning_rate", "decay_1", "decay_2", "epsilon", "momentum",
                             "grad_coefficient", "m_coefficient", "v_correction")

# rule -> (slot names, coefficients it reads); the formulas are in
# reference.optimizer_update and csrc/fastconv.h.
_UPDATE_RULES: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "sgd": ((), ("learning_rate",)),
    "momentum": (("velocity",), ("learning_rate", "momentum")),
    "nesterov": (("velocity",), ("learning_rate", "momentum")),
    "rmsprop": (("ms",), ("learning_rate", "decay_1", "epsilon")),
    "rmsprop_centered": (("ms", "mg"), ("learning_rate", "decay_1", "epsilon")),
    "rmsprop_momentum": (("ms", "velocity"),
                         ("learning_rate", "decay_1", "momentum", "epsilon")),
    "rmsprop_momentum_centered": (("ms", "velocity", "mg"),
                                  ("learning_rate", "decay_1", "momentum", "epsilon")),
    "adagrad": (("accumulator",), ("learning_rate", "epsilon")),
    "adadelta": (("accum_grad", "accum_var"), ("learning_rate", "decay_1", "epsilon")),
    "adamax": (("m", "u"), ("learning_rate", "decay_1", "decay_2", "epsilon")),
    "nadam": (("m", "v"), ("learning_rate", "decay_1", "decay_2", "grad_coefficient",
                           "m_coefficient", "v_correction", "epsilon")),
}


def optimizer_update(rule: str, param: np.ndarray, grad: ArrayLike,
                     slots: Sequence[np.ndarray], **coefficients: float) -> None:
    """One step of an optimizer's update rule, in place, in one parallel pass.

    The loops behind :mod:`fastconv.optimizers` (Adam has
    :func:`adam_update`). Every rule repeats NumPy's operations in the
    parameter's dtype, one rounding each, so the C backend (float32 and
    float64 C-contiguous arrays) gives the NumPy backend's result bit for
    bit, at any thread count. With ``g`` the gradient, ``p`` the parameter,
    ``d1``/``d2`` the ``decay_1``/``decay_2`` coefficients and ``om1 = 1 -
    d1``, ``om2 = 1 - d2`` (computed in the dtype):

    * ``sgd``: ``p -= g * lr``;
    * ``momentum``, ``nesterov`` (slot velocity): ``vel = vel * momentum - g *
      lr``, then ``p += vel`` (nesterov: ``p += vel * momentum - g * lr``);
    * ``rmsprop``, ``rmsprop_centered`` (ms, mg): ``ms = ms * d1 + om1 * g**2``,
      ``p -= lr * g / (sqrt(ms) + eps)``, centered with ``ms - mg**2``;
    * ``rmsprop_momentum``, ``rmsprop_momentum_centered`` (ms, velocity, mg):
      ``ms += (g**2 - ms) * om1``, ``vel = vel * momentum + g * lr / sqrt(ms +
      eps)``, ``p -= vel``, centered with ``(ms - mg**2) + eps``;
    * ``adagrad`` (accumulator): ``acc += g**2``, ``p -= lr * g / (sqrt(acc) +
      eps)``;
    * ``adadelta`` (accum_grad, accum_var): ``acc = acc * d1 + g**2 * om1``,
      ``u = sqrt(var + eps) / sqrt(acc + eps) * g``, ``var = var * d1 + u**2 *
      om1``, ``p -= u * lr``;
    * ``adamax`` (m, u): ``m = m * d1 + om1 * g``, ``u = maximum(u * d2, |g|)``,
      ``p -= lr * m / (u + eps)``;
    * ``nadam`` (m, v): ``m = m * d1 + om1 * g``, ``v = v * d2 + om2 * g**2``,
      ``p -= lr * (grad_coefficient * g + m_coefficient * m) / (sqrt(v /
      v_correction) + eps)``.

    (centered: ``mg = mg * d1 + om1 * g``, or ``mg += (g - mg) * om1`` with
    momentum.) ``slots`` are the rule's state arrays in the order listed;
    ``coefficients`` the keyword arguments the rule reads (finite numbers;
    see the rule table in the source for which). Learning rates with bias
    corrections folded in are the caller's to compute.

    Raises
    ------
    ValueError
        An unknown rule, a wrong number of slots, a missing or non-finite
        coefficient, arrays of other shapes or sharing memory.
    TypeError
        Non-float or non-array arguments.
    """
    if rule not in _UPDATE_RULES:
        raise ValueError(f"`rule` must be one of {sorted(_UPDATE_RULES)}, got {rule!r}")
    slot_names, wanted = _UPDATE_RULES[rule]
    slots = list(slots)
    if len(slots) != len(slot_names):
        raise ValueError(f"rule {rule!r} needs {len(slot_names)} slot(s) {list(slot_names)}, "
                         f"got {len(slots)}")
    if coefficients.keys() != set(wanted):
        unknown = sorted(set(coefficients) - set(wanted))
        missing = [name for name in wanted if name not in coefficients]
        raise ValueError(f"rule {rule!r} takes the coefficients {list(wanted)}; missing "
                         f"{missing}, unexpected {unknown}")
    grad_arr = _check_update_arrays([("param", param), *zip(slot_names, slots)], grad)
    given = [(name, _finite_number(coefficients[name], name)) for name in wanted]
    arrays = [param, grad_arr, *slots]
    in_c = (get_backend() == "c" and param.size > 0 and param.dtype in _ACCEPTED_DTYPES["c"] and
            all(a.dtype == param.dtype and a.flags.c_contiguous and a.flags.aligned
                for a in arrays))
    # The coefficients rounded to the working dtype, as NumPy does, the
    # absent ones 0; 1 - decay computed in the dtype. (Built straight into
    # the C kernel's array: a dict of dtype scalars first cost 10 of a
    # 15 us call, and training makes one call per weight per step.)
    if not in_c:
        t = param.dtype.type
        values = {name: t(0) for name in _UPDATE_COEFFICIENT_NAMES}
        values.update((name, t(value)) for name, value in given)
        values["one_minus_decay_1"] = t(1) - values["decay_1"]
        values["one_minus_decay_2"] = t(1) - values["decay_2"]
        reference.optimizer_update(rule, param, grad_arr, slots, values)
        return
    positions = _kernels.UPDATE_COEFFICIENTS
    packed = np.zeros(_kernels.UPDATE_COEFFICIENT_COUNT, dtype=param.dtype)
    for name, value in given:
        packed[positions[name]] = value
    one = packed.dtype.type(1)
    packed[positions["one_minus_decay_1"]] = one - packed[positions["decay_1"]]
    packed[positions["one_minus_decay_2"]] = one - packed[positions["decay_2"]]
    flat = [a.reshape(-1) for a in slots] + [None] * (3 - len(slots))
    _kernels.optimizer_update(_kernels.UPDATE_RULES[rule], param.reshape(-1),
                              grad_arr.reshape(-1), flat[0], flat[1], flat[2], packed,
                              _threads_arg())
