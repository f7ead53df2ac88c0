"""Output-size and padding arithmetic, written once for everyone.

TensorFlow's rules (which Keras uses), with the effective kernel size
``ke = (k - 1) * d + 1``:

* ``valid``: ``out = floor((in - ke) / s) + 1``, an error when ``in < ke``;
  no padding.
* ``same``: ``out = ceil(in / s)``,
  ``pad_total = max((out - 1) * s + ke - in, 0)``,
  ``pad_before = pad_total // 2`` and ``pad_after = pad_total - pad_before``:
  the extra row or column goes to the bottom/right (PyTorch's symmetric
  ``padding=`` cannot express this).

Layers, the functional API, the NumPy reference and the C wrapper all call
:func:`conv_output_size` / :func:`resolve_padding`; the C kernels receive the
already-resolved pads.
"""
from __future__ import annotations

import operator
from typing import NamedTuple, Optional, Sequence, Tuple, Union

IntOrPair = Union[int, Sequence[int]]

PADDINGS = ("valid", "same")

# Largest stride, dilation, pool or kernel size accepted (TensorFlow's int32).
MAX_WINDOW_ARG = 2**31 - 1


class Padding1D(NamedTuple):
    """Resolved padding along one spatial axis."""

    out: int
    before: int
    after: int


def normalize_padding(padding: object, name: str = "padding") -> str:
    """Return ``'valid'`` or ``'same'`` for a case-insensitive string."""
    if not isinstance(padding, str):
        raise TypeError(
            f"`{name}` must be the string 'valid' or 'same', "
            f"got {type(padding).__name__} {padding!r}"
        )
    value = padding.lower()
    if value not in PADDINGS:
        raise ValueError(
            f"`{name}` must be 'valid' or 'same' (case-insensitive), got {padding!r}"
        )
    return value


def _as_positive_int(value: object, name: str,
                     maximum: Optional[int] = MAX_WINDOW_ARG) -> int:
    # bool is an int subclass, but strides=True is certainly a mistake.
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be a positive integer, got bool {value!r}")
    try:
        result = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"`{name}` must be a positive integer, got {type(value).__name__} {value!r}"
        ) from None
    if result < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {result}")
    if maximum is not None and result > maximum:
        # The C kernels index with int64: a larger value would fail there with
        # an OverflowError that names no argument (issue 7).
        raise ValueError(f"`{name}` must be at most {maximum}, got {result}")
    return result


def normalize_pair(value: object, name: str) -> Tuple[int, int]:
    """An int ``n`` becomes ``(n, n)``; a pair is checked element-wise.

    Every element must be a positive integer (NumPy integers are accepted,
    floats and bools are not).
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"`{name}` must be a positive integer or a pair of them, got {value!r}"
        )
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be a positive integer or a pair of them, got {value!r}")
    try:  # an int, a NumPy integer or a 0-d integer array
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        single = _as_positive_int(n, name)
        return (single, single)
    if isinstance(value, Sequence) or hasattr(value, "__array__"):
        try:
            items = list(value)  # type: ignore[call-overload]
        except TypeError:  # a NumPy float scalar or 0-d float array
            raise TypeError(f"`{name}` must be a positive integer or a pair of them, "
                            f"got {type(value).__name__} {value!r}") from None
        if len(items) != 2:
            raise ValueError(
                f"`{name}` must be a positive integer or a pair of them, "
                f"got a sequence of length {len(items)}: {value!r}"
            )
        return (_as_positive_int(items[0], f"{name}[0]"),
                _as_positive_int(items[1], f"{name}[1]"))
    n = _as_positive_int(value, name)
    return (n, n)


def effective_kernel_size(kernel_size: int, dilation: int = 1) -> int:
    """``(k - 1) * d + 1``: the extent a dilated kernel covers."""
    return (kernel_size - 1) * dilation + 1


def _valid_formula(size: int, kernel_size: int, stride: int, dilation: int) -> str:
    ke = effective_kernel_size(kernel_size, dilation)
    return (
        f"out = floor((in - ((k - 1) * d + 1)) / s) + 1 = "
        f"floor(({size} - {ke}) / {stride}) + 1 = "
        f"{(size - ke) // stride + 1}"
    )


def resolve_padding(size: int, kernel_size: int, stride: int = 1,
                    padding: str = "valid", dilation: int = 1,
                    *, what: str = "input") -> Padding1D:
    """Output size and the (before, after) padding along one axis.

    ``padding`` must already be normalised. Raises ``ValueError`` showing the
    arithmetic with the caller's numbers when the output would be empty.
    """
    ke = effective_kernel_size(kernel_size, dilation)
    if padding == "same":
        out = -(-size // stride)
        if out < 1:
            raise ValueError(
                f"{what} size {size} gives an empty output with padding='same': "
                f"out = ceil(in / s) = ceil({size} / {stride}) = {out}"
            )
        total = max((out - 1) * stride + ke - size, 0)
        return Padding1D(out, total // 2, total - total // 2)
    if padding != "valid":
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    out = (size - ke) // stride + 1
    if size < ke or out < 1:
        raise ValueError(
            f"{what} size {size} is smaller than the effective kernel size {ke} "
            f"(k={kernel_size}, d={dilation}) with padding='valid': "
            f"{_valid_formula(size, kernel_size, stride, dilation)}. "
            f"(The general rule is O = (I - F + 2P) / S + 1 with P = 0 here.) "
            f"Use padding='same' or a larger input."
        )
    return Padding1D(out, 0, 0)


def conv_output_size(size: int, kernel_size: int, stride: int = 1,
                     padding: str = "valid", dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis.

    Parameters
    ----------
    size : int
        Input length (>= 1).
    kernel_size, stride, dilation : int
        Positive integers.
    padding : {'valid', 'same'}
        Case-insensitive.

    Examples
    --------
    >>> conv_output_size(28, 3, padding='valid')
    26
    >>> conv_output_size(28, 3, stride=2, padding='same')
    14
    """
    size = _as_positive_int(size, "size", maximum=None)
    kernel_size = _as_positive_int(kernel_size, "kernel_size")
    stride = _as_positive_int(stride, "stride")
    dilation = _as_positive_int(dilation, "dilation")
    return resolve_padding(size, kernel_size, stride,
                           normalize_padding(padding), dilation).out


class ConvGeometry(NamedTuple):
    """Everything a 2-D kernel needs about sizes, resolved once."""

    n: int
    h: int
    w: int
    c_in: int
    kh: int
    kw: int
    c_out: int
    out_h: int
    out_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int


def conv2d_geometry(x_shape: Sequence[int], kernel_hw: Tuple[int, int],
                    c_out: int, strides: Tuple[int, int], padding: str,
                    dilation: Tuple[int, int] = (1, 1),
                    *, what: str = "input") -> ConvGeometry:
    """Resolve the output size and pads of a 2-D window op on NHWC input."""
    n, h, w, c_in = (int(d) for d in x_shape)
    rows = resolve_padding(h, kernel_hw[0], strides[0], padding, dilation[0],
                           what=f"{what} height")
    cols = resolve_padding(w, kernel_hw[1], strides[1], padding, dilation[1],
                           what=f"{what} width")
    return ConvGeometry(n, h, w, c_in, kernel_hw[0], kernel_hw[1], c_out,
                        rows.out, cols.out, strides[0], strides[1],
                        dilation[0], dilation[1],
                        rows.before, rows.after, cols.before, cols.after)
