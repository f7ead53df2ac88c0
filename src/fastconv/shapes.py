"""Output-size and padding arithmetic, written once for everyone.

With the effective kernel size ``ke = (k - 1) * d + 1``:

* ``valid`` (TensorFlow): ``out = floor((in - ke) / s) + 1``, an error when
  ``in < ke``; no padding.
* ``same`` (TensorFlow): ``out = ceil(in / s)``,
  ``pad_total = max((out - 1) * s + ke - in, 0)``,
  ``pad_before = pad_total // 2`` and ``pad_after = pad_total - pad_before``:
  the extra row or column goes to the bottom/right (PyTorch's symmetric
  ``padding=`` cannot express this).
* explicit pads ``(before, after)`` (PyTorch):
  ``out = floor((in + before + after - ke) / s) + 1``, an error when the
  padded input is smaller than ``ke``. Windows need not reach every after-pad
  cell.
* ``causal`` (Keras ``Conv1D``): the explicit pads ``((k - 1) * d, 0)``.

Transposed convolutions (:func:`conv_transpose_output_size`) are described by
their *associated* convolution, the one mapping the transpose's output space
back to its input space (see :func:`resolve_transpose_padding`).

Layers, the functional API, the NumPy reference and the C wrapper all call
these functions; the C kernels receive the already-resolved pads.
"""
from __future__ import annotations

import operator
from typing import NamedTuple, Optional, Sequence, Tuple, Union

IntOrPair = Union[int, Sequence[int]]
Pads = Tuple[Tuple[int, int], ...]
"""Explicit pads: one ``(before, after)`` pair per spatial axis."""
PaddingArg = Union[str, int, Sequence[object]]
ResolvedPadding = Union[str, Pads]
"""``'valid'``, ``'same'`` (``'causal'`` for 1-D) or explicit :data:`Pads`."""

PADDINGS = ("valid", "same")

# Largest stride, dilation, pool or kernel size accepted (TensorFlow's int32).
MAX_WINDOW_ARG = 2**31 - 1
# Largest explicit pad accepted (the C kernels index with int64).
MAX_PAD = 2**31 - 1


class Padding1D(NamedTuple):
    """Resolved padding along one spatial axis."""

    out: int
    before: int
    after: int


def _as_int(value: object, name: str, what: str) -> int:
    # bool is an int subclass, but strides=True is certainly a mistake.
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be {what}, got bool {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"`{name}` must be {what}, got {type(value).__name__} {value!r}"
        ) from None


def _as_positive_int(value: object, name: str,
                     maximum: Optional[int] = MAX_WINDOW_ARG) -> int:
    result = _as_int(value, name, "a positive integer")
    if result < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {result}")
    if maximum is not None and result > maximum:
        # The C kernels index with int64: a larger value would fail there with
        # an OverflowError that names no argument (issue 7).
        raise ValueError(f"`{name}` must be at most {maximum}, got {result}")
    return result


def _items(value: object) -> Optional[list]:
    """The elements of a sequence or array, or None for a scalar."""
    if isinstance(value, Sequence) or hasattr(value, "__array__"):
        try:
            return list(value)  # type: ignore[call-overload]
        except TypeError:  # a NumPy scalar or 0-d array
            return None
    return None


def normalize_tuple(value: object, n: int, name: str) -> Tuple[int, ...]:
    """An int ``k`` becomes ``(k,) * n``; a sequence of ``n`` is checked element-wise.

    Every element must be a positive integer (NumPy integers are accepted,
    floats and bools are not).
    """
    what = "a positive integer or a pair of them" if n == 2 else \
        f"a positive integer or a tuple of {n}"
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(f"`{name}` must be {what}, got {value!r}")
    try:  # an int, a NumPy integer or a 0-d integer array
        k = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        return (_as_positive_int(k, name),) * n
    items = _items(value)
    if items is None:
        if isinstance(value, Sequence) or hasattr(value, "__array__"):
            raise TypeError(f"`{name}` must be {what}, got {type(value).__name__} {value!r}")
        return (_as_positive_int(value, name),) * n  # raises the TypeError
    if len(items) != n:
        raise ValueError(f"`{name}` must be {what}, got a sequence of length {len(items)}: "
                         f"{value!r}")
    return tuple(_as_positive_int(v, f"{name}[{i}]") for i, v in enumerate(items))


def normalize_pair(value: object, name: str) -> Tuple[int, int]:
    """An int ``n`` becomes ``(n, n)``; a pair is checked element-wise.

    Every element must be a positive integer (NumPy integers are accepted,
    floats and bools are not).
    """
    return normalize_tuple(value, 2, name)  # type: ignore[return-value]


def _as_pad(value: object, name: str) -> int:
    pad = _as_int(value, name, "a non-negative integer")
    if pad < 0:
        raise ValueError(f"`{name}` must be a non-negative integer, got {pad}")
    if pad > MAX_PAD:
        raise ValueError(f"`{name}` must be at most {MAX_PAD}, got {pad}")
    return pad


def _pad_pair(value: object, name: str) -> Tuple[int, int]:
    items = _items(value)
    if items is None or len(items) != 2:
        raise ValueError(f"`{name}` must be a pair (before, after), got {value!r}")
    return (_as_pad(items[0], f"{name}[0]"), _as_pad(items[1], f"{name}[1]"))


def normalize_padding(padding: object, name: str = "padding", *, explicit: bool = False,
                      spatial_dims: int = 2, causal: bool = False) -> ResolvedPadding:
    """Normalise a padding argument.

    Strings are case-insensitive: ``'valid'`` or ``'same'``, and ``'causal'``
    when ``causal=True``. With ``explicit=False`` (the Keras layers) nothing
    else is accepted. With ``explicit=True`` the non-negative integer forms
    are accepted too and returned as one ``(before, after)`` pair per axis:

    * 2-D: ``p`` -> ``((p, p), (p, p))``; ``(ph, pw)`` ->
      ``((ph, ph), (pw, pw))``; ``((top, bottom), (left, right))`` as is;
    * 1-D: ``p`` -> ``((p, p),)``; ``(left, right)`` -> ``((left, right),)``.

    NumPy integers are accepted; bools and floats raise ``TypeError``,
    negative pads ``ValueError``.
    """
    if isinstance(padding, str):  # the common case first, without building messages
        value = padding.lower()
        if value in PADDINGS or (causal and value == "causal"):
            return value
    strings = PADDINGS + (("causal",) if causal else ())
    quoted = " or ".join(repr(s) for s in strings)
    if spatial_dims == 2:
        forms = "an int, a pair (pad_h, pad_w) or ((top, bottom), (left, right))"
    else:
        forms = "an int or a pair (left, right)"
    expected = f"{quoted}" + (f", or {forms} of non-negative integers" if explicit else "")
    if isinstance(padding, str):
        value = padding.lower()
        if value == "causal":
            raise ValueError(f"`{name}`='causal' is only supported by 1-D convolutions "
                             f"(conv1d, Keras' Conv1D), got {padding!r}")
        raise ValueError(
            f"`{name}` must be {quoted} (case-insensitive)"
            + (f", or {forms} of non-negative integers" if explicit else "")
            + f", got {padding!r}")
    if not explicit or isinstance(padding, (bytes, bool)) or padding is None:
        kind = "the string " if not explicit else ""
        raise TypeError(f"`{name}` must be {kind}{expected}, got "
                        f"{type(padding).__name__} {padding!r}")
    try:
        p = operator.index(padding)  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        pad = _as_pad(p, name)
        return ((pad, pad),) * spatial_dims
    items = _items(padding)
    if items is None:
        raise TypeError(f"`{name}` must be {expected}, got {type(padding).__name__} "
                        f"{padding!r}")
    if len(items) != 2:
        raise ValueError(f"`{name}` must be {expected}, got a sequence of length "
                         f"{len(items)}: {padding!r}")
    if spatial_dims == 1:
        return ((_as_pad(items[0], f"{name}[0]"), _as_pad(items[1], f"{name}[1]")),)
    nested = [_items(v) is not None for v in items]
    if all(nested):
        return tuple(_pad_pair(v, f"{name}[{i}]") for i, v in enumerate(items))
    if any(nested):
        raise ValueError(f"`{name}` must be {expected} (not a mix of ints and pairs), "
                         f"got {padding!r}")
    ph, pw = _as_pad(items[0], f"{name}[0]"), _as_pad(items[1], f"{name}[1]")
    return ((ph, ph), (pw, pw))


def causal_padding(kernel_size: int, dilation: int = 1) -> Tuple[int, int]:
    """Keras' ``'causal'`` padding of a 1-D convolution: ``((k - 1) * d, 0)``."""
    return ((kernel_size - 1) * dilation, 0)


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
                    padding: Union[str, Tuple[int, int]] = "valid", dilation: int = 1,
                    *, what: str = "input") -> Padding1D:
    """Output size and the (before, after) padding along one axis.

    ``padding`` must already be normalised: ``'valid'``, ``'same'`` or an
    explicit ``(before, after)`` pair. Raises ``ValueError`` showing the
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
    if padding == "valid":
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
    if isinstance(padding, str):
        raise ValueError(f"padding must be 'valid', 'same' or a (before, after) pair, "
                         f"got {padding!r}")
    before, after = padding
    padded = size + before + after
    out = (padded - ke) // stride + 1
    if padded < ke:
        raise ValueError(
            f"{what} size {size} padded by ({before}, {after}) is {padded}, smaller than the "
            f"effective kernel size {ke} (k={kernel_size}, d={dilation}): "
            f"out = floor((in + before + after - ((k - 1) * d + 1)) / s) + 1 = "
            f"floor(({size} + {before} + {after} - {ke}) / {stride}) + 1 = {out}. "
            f"(The general rule is O = (I - F + 2P) / S + 1, here with 2P = "
            f"{before} + {after}.) Use larger pads or a larger input."
        )
    return Padding1D(out, before, after)


def _one_axis_padding(padding: object, kernel_size: int, dilation: int,
                      causal: bool) -> Union[str, Tuple[int, int]]:
    pad = normalize_padding(padding, explicit=True, spatial_dims=1, causal=causal)
    if pad == "causal":
        return causal_padding(kernel_size, dilation)
    return pad if isinstance(pad, str) else pad[0]


def conv_output_size(size: int, kernel_size: int, stride: int = 1,
                     padding: PaddingArg = "valid", dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis.

    Parameters
    ----------
    size : int
        Input length (>= 1).
    kernel_size, stride, dilation : int
        Positive integers.
    padding : {'valid', 'same', 'causal'}, int or (before, after)
        Strings are case-insensitive (TensorFlow's rules; ``'causal'`` is
        Keras' ``Conv1D`` left padding ``(k - 1) * d``); integers are explicit
        pads with PyTorch's arithmetic
        ``floor((in + before + after - ke) / s) + 1``.

    Examples
    --------
    >>> conv_output_size(28, 3, padding='valid')
    26
    >>> conv_output_size(28, 3, stride=2, padding='same')
    14
    >>> conv_output_size(28, 3, stride=2, padding=1)
    14
    """
    size = _as_positive_int(size, "size", maximum=None)
    kernel_size = _as_positive_int(kernel_size, "kernel_size")
    stride = _as_positive_int(stride, "stride")
    dilation = _as_positive_int(dilation, "dilation")
    pad = _one_axis_padding(padding, kernel_size, dilation, causal=True)
    return resolve_padding(size, kernel_size, stride, pad, dilation).out


def normalize_output_padding(value: object, strides: Tuple[int, ...],
                             name: str = "output_padding") -> Optional[Tuple[int, ...]]:
    """``None``, or one integer per axis with ``0 <= op < stride`` (Keras' rule)."""
    if value is None:
        return None
    n = len(strides)
    what = "None, a non-negative integer" + (" or a pair of them" if n == 2 else "")
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(f"`{name}` must be {what}, got {value!r}")
    scalar = True
    try:
        single = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        scalar = False
        items = _items(value)
        if items is None:
            raise TypeError(f"`{name}` must be {what}, got {type(value).__name__} "
                            f"{value!r}") from None
        if len(items) != n:
            raise ValueError(f"`{name}` must be {what}, got a sequence of length "
                             f"{len(items)}: {value!r}")
        pads = tuple(_as_pad(v, f"{name}[{i}]") for i, v in enumerate(items))
    else:
        pads = (_as_pad(single, name),) * n
    for axis, (op, s) in enumerate(zip(pads, strides)):
        if op >= s:
            where = f"[{axis}]" if n > 1 and not scalar else ""
            raise ValueError(f"`{name}{where}` must be smaller than the stride "
                             f"(0 <= output_padding < stride, as in Keras), got "
                             f"output_padding={op} with stride={s}")
    return pads


def resolve_transpose_padding(size: int, kernel_size: int, stride: int = 1,
                              padding: Union[str, Tuple[int, int]] = "valid",
                              output_padding: Optional[int] = None, dilation: int = 1,
                              *, what: str = "input") -> Padding1D:
    """Output size of a transposed convolution along one axis, and the pads of
    its associated convolution (output space -> input space).

    * ``'valid'``/``'same'``: Keras' ``deconv_output_length``. Without
      ``output_padding``: valid ``in * s + max(ke - s, 0)``, same ``in * s``;
      with it: ``(in - 1) * s + ke - 2 * pad + op`` (``pad = ke // 2`` for
      same, 0 for valid). The pads are TensorFlow's SAME/VALID pads of the
      associated convolution whose input has that output size (the extra
      row goes to the bottom).
    * explicit ``(before, after)``: PyTorch's
      ``out = (in - 1) * s - before - after + ke + op``; the associated
      convolution has the pads ``(before, after)``.

    ``output_padding`` must already satisfy ``0 <= op < stride``.
    """
    ke = effective_kernel_size(kernel_size, dilation)
    if isinstance(padding, str):
        if output_padding is None:
            out = size * stride + (max(ke - stride, 0) if padding == "valid" else 0)
            formula = (f"out = in * s + max(ke - s, 0) = {size} * {stride} + "
                       f"max({ke} - {stride}, 0)" if padding == "valid"
                       else f"out = in * s = {size} * {stride}")
        else:
            pad = ke // 2 if padding == "same" else 0
            out = (size - 1) * stride + ke - 2 * pad + output_padding
            formula = (f"out = (in - 1) * s + ke - 2 * pad + output_padding = "
                       f"({size} - 1) * {stride} + {ke} - 2 * {pad} + {output_padding}")
        formula += f" = {out}"
        if out < 1:  # only 'same' with an even kernel, output_padding 0 and in 1
            raise ValueError(f"`output_padding`={output_padding} with padding={padding!r} gives "
                             f"an empty transposed-convolution output for the {what} size "
                             f"{size}: {formula}. Use output_padding >= 1 or None.")
        assoc = resolve_padding(out, kernel_size, stride, padding, dilation, what=what)
        if assoc.out != size:
            # Only 'same' with an even effective kernel and output_padding=0
            # gets here; TensorFlow refuses it too (the sizes do not match).
            raise ValueError(
                f"`output_padding`={output_padding} with padding={padding!r} gives a "
                f"transposed-convolution output of {out} along the {what} ({formula}), but the "
                f"convolution it transposes maps {out} to {assoc.out}, not to the {what} size "
                f"{size} (even effective kernel size {ke}). Use output_padding >= 1 or None.")
        return Padding1D(out, assoc.before, assoc.after)
    before, after = padding
    op = 0 if output_padding is None else output_padding
    out = (size - 1) * stride - before - after + ke + op
    if out < 1:
        raise ValueError(
            f"{what} size {size} gives an empty transposed-convolution output with pads "
            f"({before}, {after}): out = (in - 1) * s - before - after + ke + output_padding = "
            f"({size} - 1) * {stride} - {before} - {after} + {ke} + {op} = {out}. "
            f"(The inverse of O = (I - F + 2P) / S + 1.) Use smaller pads.")
    return Padding1D(out, before, after)


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1,
                               padding: PaddingArg = "valid",
                               output_padding: Optional[int] = None,
                               dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis.

    Parameters
    ----------
    size : int
        Input length (>= 1).
    kernel_size, stride, dilation : int
        Positive integers.
    padding : {'valid', 'same'}, int or (before, after)
        Strings follow Keras' ``deconv_output_length``; integers are explicit
        pads with PyTorch's arithmetic
        ``(in - 1) * s - before - after + ke + output_padding``.
    output_padding : int, optional
        ``0 <= output_padding < stride``.

    Examples
    --------
    >>> conv_transpose_output_size(7, 3, stride=2, padding='same')
    14
    >>> conv_transpose_output_size(7, 3, stride=2, padding='valid')
    15
    >>> conv_transpose_output_size(7, 3, stride=2, padding=1, output_padding=1)
    14
    """
    size = _as_positive_int(size, "size", maximum=None)
    kernel_size = _as_positive_int(kernel_size, "kernel_size")
    stride = _as_positive_int(stride, "stride")
    dilation = _as_positive_int(dilation, "dilation")
    pad = _one_axis_padding(padding, kernel_size, dilation, causal=False)
    op = normalize_output_padding(output_padding, (stride,))
    return resolve_transpose_padding(size, kernel_size, stride, pad,
                                     None if op is None else op[0], dilation).out


class ConvGeometry(NamedTuple):
    """Everything a 2-D kernel needs about sizes, resolved once.

    ``pad_bottom``/``pad_right`` are the after-pads the user (or TensorFlow's
    'same' rule) asked for; windows need not reach all of them. The C
    kernels take the first 17 fields (``tuple(g)[:17]``); ``groups`` and
    ``channels_first`` (activations NCHW and kernels OIHW) come after.
    """

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
    groups: int = 1
    channels_first: bool = False


def _split_padding(padding: ResolvedPadding) -> Tuple[object, object]:
    if isinstance(padding, str):
        return padding, padding
    return padding[0], padding[1]


def _nhwc_sizes(x_shape: Sequence[int], channels_first: bool) -> Tuple[int, int, int, int]:
    dims = tuple(int(d) for d in x_shape)
    if channels_first:
        return dims[0], dims[2], dims[3], dims[1]
    return dims  # type: ignore[return-value]


def conv2d_geometry(x_shape: Sequence[int], kernel_hw: Tuple[int, int],
                    c_out: int, strides: Tuple[int, int], padding: ResolvedPadding,
                    dilation: Tuple[int, int] = (1, 1),
                    *, what: str = "input", groups: int = 1,
                    channels_first: bool = False) -> ConvGeometry:
    """Resolve the output size and pads of a 2-D window op.

    ``x_shape`` is NHWC, or NCHW with ``channels_first=True``; ``padding`` is
    ``'valid'``, ``'same'`` or ``((top, bottom), (left, right))``.
    """
    n, h, w, c_in = _nhwc_sizes(x_shape, channels_first)
    pad_h, pad_w = _split_padding(padding)
    rows = resolve_padding(h, kernel_hw[0], strides[0], pad_h, dilation[0],  # type: ignore
                           what=f"{what} height")
    cols = resolve_padding(w, kernel_hw[1], strides[1], pad_w, dilation[1],  # type: ignore
                           what=f"{what} width")
    return ConvGeometry(n, h, w, c_in, kernel_hw[0], kernel_hw[1], c_out,
                        rows.out, cols.out, strides[0], strides[1],
                        dilation[0], dilation[1],
                        rows.before, rows.after, cols.before, cols.after,
                        groups, channels_first)


def pool2d_geometry(x_shape: Sequence[int], pool: Tuple[int, int], strides: Tuple[int, int],
                    padding: ResolvedPadding, *, channels_first: bool = False,
                    what: str = "input") -> ConvGeometry:
    """Geometry of a 2-D pooling; explicit pads must be smaller than the pool
    on every side, so that every window holds a real cell."""
    if not isinstance(padding, str):
        for axis, ((before, after), k) in enumerate(zip(padding, pool)):
            if before >= k or after >= k:
                name = ("height", "width")[axis]
                raise ValueError(
                    f"`padding` must be smaller than the pool size on every side (every window "
                    f"must hold a real cell), got pads ({before}, {after}) along the {name} "
                    f"with pool size {k}")
    _, _, _, c = _nhwc_sizes(x_shape, channels_first)
    return conv2d_geometry(x_shape, pool, c, strides, padding, (1, 1), what=what,
                           channels_first=channels_first)


def conv2d_transpose_geometry(x_shape: Sequence[int], kernel_hw: Tuple[int, int], c_out: int,
                              strides: Tuple[int, int], padding: ResolvedPadding,
                              output_padding: Optional[Tuple[int, ...]],
                              dilation: Tuple[int, int] = (1, 1), *, groups: int = 1,
                              channels_first: bool = False) -> ConvGeometry:
    """The geometry of the convolution associated with a transposed convolution.

    The transposed convolution maps ``x`` (``c_in`` channels) to ``c_out``
    channels; it is the input gradient of the returned convolution, whose
    input is the transpose's output (``h``, ``w``, ``c_in`` fields: the
    transpose's output size and ``c_out``) and whose output is ``x``
    (``out_h``, ``out_w``, ``c_out`` fields: ``x``'s size and channels).
    """
    n, h, w, c_in = _nhwc_sizes(x_shape, channels_first)
    pad_h, pad_w = _split_padding(padding)
    op = (None, None) if output_padding is None else output_padding
    rows = resolve_transpose_padding(h, kernel_hw[0], strides[0], pad_h, op[0],  # type: ignore
                                     dilation[0], what="input height")
    cols = resolve_transpose_padding(w, kernel_hw[1], strides[1], pad_w, op[1],  # type: ignore
                                     dilation[1], what="input width")
    return ConvGeometry(n, rows.out, cols.out, c_out, kernel_hw[0], kernel_hw[1], c_in,
                        h, w, strides[0], strides[1], dilation[0], dilation[1],
                        rows.before, rows.after, cols.before, cols.after,
                        groups, channels_first)
