"""``Conv2D``: 2-D convolution over NHWC input with an HWIO kernel."""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import activations, ops
from ._activated import ActivatedMixin
from ._args import (normalize_data_format, normalize_kernel_size, normalize_padding,
                    reject_unsupported, window_output_shape)
from .base import InputSpec, Layer

__all__ = ["Conv2D", "Convolution2D"]


class _ConvCache(NamedTuple):
    x: np.ndarray            # the input, for both gradients
    z: Optional[np.ndarray]  # pre-activation, only for non-fused, non-linear activations
    y: np.ndarray            # the output


class Conv2D(ActivatedMixin, Layer):
    """2-D convolution (cross-correlation, as TensorFlow) with Keras 2 semantics.

    Parameters
    ----------
    filters : int
        Output channels (a float is truncated with ``int()``, as Keras does).
    kernel_size : int or pair of int
    strides : int or pair of int, default (1, 1)
    padding : {'valid', 'same'}, case-insensitive
        'same' puts the extra row/column at the bottom/right (TensorFlow).
    data_format : None or 'channels_last'
        ``'channels_first'`` is refused (fastconv computes NHWC).
    dilation_rate : int or pair of int, default (1, 1)
        Cannot exceed 1 together with ``strides`` > 1 (as Keras).
    activation : None, str or callable
        'relu' is fused into the convolution's store.
    use_bias : bool
    kernel_initializer, bias_initializer : str, dict or callable
    **kwargs
        ``name``, ``dtype``, ``trainable``, ``input_shape``, ``batch_size``;
        ``groups=1`` and ``None`` regularizers/constraints are accepted for
        compatibility.

    Weights: ``kernel`` of shape ``(kh, kw, in_channels, filters)`` (HWIO) and
    ``bias`` of shape ``(filters,)``, in that order, as Keras stores them.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = f"Layer {self.name} (Conv2D)"
        reject_unsupported(what, kernel_regularizer=kernel_regularizer,
                           bias_regularizer=bias_regularizer,
                           activity_regularizer=activity_regularizer,
                           kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        if groups != 1:
            raise NotImplementedError(f"{what}: grouped convolution (groups={groups}) is not "
                                      "supported")
        try:
            filters = int(filters)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
            raise TypeError(f"{what}: `filters` must be a positive integer, "
                            f"got {filters!r}") from None
        if filters < 1:
            raise ValueError(f"{what}: `filters` must be a positive integer, got {filters}")
        self.filters = filters
        self.kernel_size = normalize_kernel_size(kernel_size, "kernel_size")
        self.strides = normalize_kernel_size(strides, "strides")
        self.dilation_rate = normalize_kernel_size(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.padding = normalize_padding(padding)
        self.data_format = normalize_data_format(data_format, what)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel = None
        self.bias = None
        self.input_spec = InputSpec(min_ndim=4)

    def build(self, input_shape: Tuple[Optional[int], ...]) -> None:
        """Create ``kernel`` (kh, kw, in, filters) and ``bias`` (filters,)."""
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("The channel dimension of the inputs should be defined. "
                             "Found `None`.")
        self.kernel = self.add_weight("kernel", self.kernel_size + (channels, self.filters),
                                      self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)
        self.input_spec = InputSpec(min_ndim=4, axes={-1: channels})
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """``(batch, out_h, out_w, filters)`` by TensorFlow's padding rules."""
        batch_h_w = window_output_shape(self.name, "Conv2D", input_shape, self.kernel_size,
                                        self.strides, self.padding, self.dilation_rate)
        return batch_h_w + (self.filters,)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _ConvCache]:
        """Convolution, bias and activation; caches input and output."""
        x = np.asarray(inputs, dtype=self._dtype)
        z = ops.conv2d(x, self.kernel.value, None if self.bias is None else self.bias.value,
                       strides=self.strides, padding=self.padding,
                       dilation_rate=self.dilation_rate, activation=self._fused_op_activation())
        y, z_cached = self._apply_activation(z)
        return y, _ConvCache(x, z_cached, y)

    def _backward_pre_activation(self, dz: np.ndarray, cache: _ConvCache, compute_dx: bool
                                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        dx, dkernel, dbias = ops.conv2d_backward(
            np.asarray(dz, dtype=self._dtype), cache.x, self.kernel.value,
            strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
            compute_dx=compute_dx)
        return dx, ([dkernel, dbias] if self.use_bias else [dkernel])

    def count_macs(self, input_shape: Any, output_shape: Tuple[Optional[int], ...]
                   ) -> Optional[int]:
        """``out_h * out_w * filters * kh * kw * in_channels`` per sample."""
        _, out_h, out_w, _ = output_shape
        channels = input_shape[-1]
        if out_h is None or out_w is None or channels is None:
            return None
        kh, kw = self.kernel_size
        return out_h * out_w * self.filters * kh * kw * channels

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        return self._activation_op_name("BiasAdd" if self.use_bias else "Conv2D")

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format,
            "dilation_rate": self.dilation_rate, "groups": 1,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        })
        return config


Convolution2D = Conv2D
