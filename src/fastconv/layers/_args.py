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


def normalize_kernel_size(value: Any, name: str, rank: int = 2) -> Tuple[int, ...]:
    """An int or a tuple of ``rank`` positive ints, with Keras' message for zeros."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        items: Optional[Sequence[Any]] = (value,) * rank
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        items = None
    if items is not None and any(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v == 0 for v in items):
        raise ValueError(f"The argument `{name}` cannot contain 0(s). "
                         f"Received: {tuple(int(v) for v in items)}")
    return shapes.normalize_tuple(value, rank, name)


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
                        input_shape: Sequence[Optional[int]], kernel: Tuple[int, ...],
                        strides: Tuple[int, ...], padding: str,
                        dilation: Optional[Tuple[int, ...]] = None, *,
                        channels_first: bool = False) -> Tuple[Optional[int], ...]:
    """``(batch, *spatial_out)`` of a window op (1-D or 2-D, by ``len(kernel)``).

    ``input_shape`` is ``(batch, *spatial, channels)``, or
    ``(batch, channels, *spatial)`` with ``channels_first``; ``padding`` is
    ``'valid'``, ``'same'`` or (1-D) ``'causal'``. Unknown (``None``) sizes
    stay unknown. An input too small for the kernel raises the
    :mod:`fastconv.shapes` error, prefixed with the layer.
    """
    input_shape = tuple(input_shape)
    rank = len(kernel)
    dilation = dilation or (1,) * rank
    if len(input_shape) != rank + 2:
        names = ("width",) if rank == 1 else ("height", "width")
        axes = ("channels",) + names if channels_first else names + ("channels",)
        raise ValueError(f"Layer {layer_name} ({layer_class}) takes rank-{rank + 2} input "
                         f"(batch, {', '.join(axes)}); received shape {input_shape}")
    spatial = input_shape[2:] if channels_first else input_shape[1:-1]
    what = ("input width",) if rank == 1 else ("input height", "input width")
    out = [input_shape[0]]
    for size, k, s, d, name in zip(spatial, kernel, strides, dilation, what):
        if size is None:
            out.append(None)
            continue
        pad = shapes.causal_padding(k, d) if padding == "causal" else padding
        try:
            out.append(shapes.resolve_padding(size, k, s, pad, d, what=name).out)
        except ValueError as exc:
            raise ValueError(f"Layer {layer_name} ({layer_class}) cannot be applied to input "
                             f"shape {input_shape}: {exc}") from exc
    return tuple(out)
