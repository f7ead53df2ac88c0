"""Argument checks shared by the layers, on top of :mod:`fastconv.shapes`.

Size arithmetic and the normalisation of ints/pairs/paddings live in
:mod:`fastconv.shapes`; these helpers add the Keras-specific messages
(``kernel_size`` with zeros, causal padding, data formats) and prefix shape
errors with the layer they come from.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .. import backend, shapes

__all__ = ["normalize_kernel_size", "normalize_padding", "normalize_data_format",
           "window_output_shape", "reject_unsupported"]


def normalize_kernel_size(value: Any, name: str) -> Tuple[int, int]:
    """An int or a pair of positive ints, with Keras' message for zeros."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        items: Optional[Sequence[Any]] = (value, value)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        items = None
    if items is not None and any(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v == 0 for v in items):
        raise ValueError(f"The argument `{name}` cannot contain 0(s). "
                         f"Received: {tuple(int(v) for v in items)}")
    return shapes.normalize_pair(value, name)


def normalize_padding(value: Any) -> str:
    """``'valid'`` or ``'same'`` (case-insensitive); ``'causal'`` gets Keras' message."""
    if isinstance(value, str) and value.lower() == "causal":
        raise ValueError("Causal padding is only supported for `Conv1D`and `SeparableConv1D`.")
    return shapes.normalize_padding(value, "padding")


def normalize_data_format(value: Optional[str], layer: str,
                          allow_channels_first: bool = False) -> str:
    """``'channels_last'`` or ``'channels_first'`` (case-insensitive; None: the
    backend's ``image_data_format()``), as Keras' ``conv_utils``.

    Layers whose ops do not compute channels-first yet leave
    ``allow_channels_first`` False: ``'channels_first'`` is then refused with
    the reason.
    """
    if value is None:
        value = backend.image_data_format()
    if not isinstance(value, str) or value.lower() not in ("channels_last", "channels_first"):
        raise ValueError('The `data_format` argument must be one of "channels_first", '
                         f'"channels_last". Received: {value}')
    value = value.lower()
    if value == "channels_first" and not allow_channels_first:
        raise ValueError(
            f"{layer}: data_format='channels_first' (NCHW) is not supported; fastconv "
            "computes in channels_last (NHWC), Keras' default. Transpose your data with "
            "x.transpose(0, 2, 3, 1) and use data_format='channels_last' (or None).")
    return value


def reject_unsupported(layer: str, **arguments: Any) -> None:
    """Refuse Keras arguments fastconv accepts only at their inert defaults."""
    for key, value in arguments.items():
        if value is not None:
            raise NotImplementedError(f"{layer}: `{key}` is not supported by fastconv "
                                      f"(got {value!r}); leave it None")


def window_output_shape(layer_name: str, layer_class: str,
                        input_shape: Sequence[Optional[int]], kernel: Tuple[int, int],
                        strides: Tuple[int, int], padding: str,
                        dilation: Tuple[int, int] = (1, 1)) -> Tuple[Optional[int], ...]:
    """``(batch, out_h, out_w)`` of a 2-D window op on NHWC ``input_shape``.

    Unknown (``None``) sizes stay unknown. An input too small for the kernel
    raises the :mod:`fastconv.shapes` error, prefixed with the layer.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"Layer {layer_name} ({layer_class}) takes rank-4 input (batch, "
                         f"height, width, channels); received shape {input_shape}")
    out = [input_shape[0]]
    for axis, what in ((1, "input height"), (2, "input width")):
        size = input_shape[axis]
        if size is None:
            out.append(None)
            continue
        try:
            out.append(shapes.resolve_padding(size, kernel[axis - 1], strides[axis - 1],
                                              padding, dilation[axis - 1], what=what).out)
        except ValueError as exc:
            raise ValueError(f"Layer {layer_name} ({layer_class}) cannot be applied to input "
                             f"shape {input_shape}: {exc}") from exc
    return tuple(out)
