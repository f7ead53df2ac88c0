"""The convolution layers, as tf.keras 2.4's ``layers/convolutional.py``.

``Conv1D``, ``Conv2D`` (both grouped), ``DepthwiseConv2D``,
``SeparableConv2D`` and ``Conv2DTranspose``, with Keras' aliases. The class
tree is Keras' own, so ``isinstance(layer, Conv2D)`` answers as it does there:
:class:`_Conv` holds the arguments every convolution shares (Keras' private
``Conv``), ``DepthwiseConv2D`` and ``Conv2DTranspose`` subclass ``Conv2D``.

Layouts: activations are channels-last (NWC / NHWC) or channels-first
(NCW / NCHW, ``data_format='channels_first'``), both computed natively by
:mod:`fastconv.ops`; kernels are always in Keras' layout whatever the data
format, so Keras weights load unchanged. The bias and a ReLU are fused into
the op that produces the output.

Regularizers and constraints are resolved and carried (on the weights, and
``activity_regularizer`` on the layer) for training to apply; they do not
change the forward or backward pass of the layer itself.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import activations, constraints, initializers, ops, regularizers, shapes
from ._activated import ActivatedMixin
from ._args import (normalize_data_format, normalize_kernel_size, normalize_padding,
                    window_output_shape)
from .base import InputSpec, Layer

__all__ = ["Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose",
           "Convolution1D", "Convolution2D", "SeparableConvolution2D",
           "Convolution2DTranspose"]

Shape = Tuple[Optional[int], ...]


class _ConvCache(NamedTuple):
    x: np.ndarray            # the input, for both gradients
    z: Optional[np.ndarray]  # pre-activation, only for non-fused, non-linear activations
    y: np.ndarray            # the output
    mid: Optional[np.ndarray] = None  # SeparableConv2D: the depthwise output


def _positive_int(value: Any, name: str, what: str, truncate_float: bool = False) -> int:
    """A positive integer; ``truncate_float`` gives Keras' ``int(filters)`` for floats."""
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) or
                                       (truncate_float and isinstance(value, float))):
        raise TypeError(f"{what}: `{name}` must be a positive integer, got {value!r}")
    try:
        result = int(value)
    except (ValueError, OverflowError):  # int(nan), int(inf)
        raise TypeError(f"{what}: `{name}` must be a positive integer, "
                        f"got {value!r}") from None
    if result < 1:
        raise ValueError(f"{what}: `{name}` must be a positive integer, got {result}")
    return result


def _depthwise_op_args(layer: Any) -> Dict[str, Any]:
    """The ``ops.conv2d`` arguments of a depthwise step (DepthwiseConv2D,
    SeparableConv2D): Keras' kernel ``(kh, kw, in, mult)`` viewed as the HWIO
    kernel ``(kh, kw, 1, in * mult)`` of a convolution with ``groups = in``
    (no copy), whose flat output channel ``c * mult + m`` is filter ``m`` of
    input channel ``c``: TensorFlow's depthwise output order."""
    kh, kw, channels, mult = layer.depthwise_kernel.value.shape
    return dict(kernel=layer.depthwise_kernel.value.reshape(kh, kw, 1, channels * mult),
                strides=layer.strides, padding=layer.padding,
                dilation_rate=layer.dilation_rate, groups=channels,
                data_format=layer.data_format)


def _check_no_groups(what: str, groups: Any) -> None:
    """Accept Keras' inert ``groups=1`` (it is in their configs); refuse others."""
    if groups not in (None, 1):
        raise ValueError(f"{what}: `groups` must be 1 (the layer has no grouped form in "
                         f"Keras), got {groups!r}")


class _Conv(ActivatedMixin, Layer):
    """The arguments and rules every convolution shares (Keras' ``Conv``).

    ``rank`` is the number of spatial axes (1 or 2). Subclasses create their
    weights in ``build`` and compute in ``forward``.
    """

    # DepthwiseConv2D: the output channels follow from the input (filters=None).
    _filters_from_input = False

    def __init__(self, rank: int, filters: Optional[int], kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = 1, groups: Optional[int] = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = self._what()
        self.rank = rank
        self.filters = (None if self._filters_from_input else
                        _positive_int(filters, "filters", what, truncate_float=True))
        self.groups = 1 if groups is None else _positive_int(groups, "groups", what)
        if self.filters is not None and self.filters % self.groups:
            raise ValueError("The number of filters must be evenly divisible by the number of "
                             f"groups. Received: groups={self.groups}, filters={self.filters}")
        self.kernel_size = normalize_kernel_size(kernel_size, "kernel_size", rank)
        self.strides = normalize_kernel_size(strides, "strides", rank)
        # 'causal' is Conv1D's; normalize_padding refuses it with Keras' message.
        self.padding = (shapes.normalize_padding(padding, "padding", causal=True) if rank == 1
                        else normalize_padding(padding))
        self.data_format = normalize_data_format(data_format, what, allow_channels_first=True)
        self.dilation_rate = normalize_kernel_size(dilation_rate, "dilation_rate", rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        # The penalty on the layer's output; training applies it (Keras: a Layer attribute).
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel = None
        self.bias = None
        self.input_spec = InputSpec(min_ndim=rank + 2)

    # ------------------------------------------------------------------
    # Layout

    def _what(self) -> str:
        return f"Layer {self.name} ({type(self).__name__})"

    @property
    def _channels_first(self) -> bool:
        return self.data_format == "channels_first"

    @property
    def _channel_axis(self) -> int:
        """Keras' channel axis, counted from the end (-3 for NCHW, -2 for NCW)."""
        return -1 - self.rank if self._channels_first else -1

    def _input_channels(self, input_shape: Shape) -> int:
        channels = tuple(input_shape)[self._channel_axis]
        if channels is None:
            raise ValueError("The channel dimension of the inputs should be defined. "
                             "Found `None`.")
        return int(channels)

    def _batch_and_spatial(self, input_shape: Shape) -> Shape:
        """``(batch, *spatial_out)`` by TensorFlow's padding rules."""
        return window_output_shape(self.name, type(self).__name__, input_shape,
                                   self.kernel_size, self.strides, self.padding,
                                   self.dilation_rate, channels_first=self._channels_first)

    def _with_channels(self, batch_spatial: Shape, channels: Optional[int]) -> Shape:
        batch, spatial = batch_spatial[:1], tuple(batch_spatial[1:])
        if self._channels_first:
            return batch + (channels,) + spatial
        return batch + spatial + (channels,)

    def _spatial_sizes(self, shape: Shape) -> Shape:
        shape = tuple(shape)
        return shape[2:] if self._channels_first else shape[1:-1]

    def _add_bias(self, size: int) -> None:
        if self.use_bias:
            self.bias = self.add_weight("bias", (size,), self.bias_initializer,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)

    def _bias_value(self) -> Optional[np.ndarray]:
        return None if self.bias is None else self.bias.value

    def _with_bias_grad(self, grads: List[np.ndarray], dbias: Optional[np.ndarray]
                        ) -> List[np.ndarray]:
        return grads + [dbias] if self.use_bias else grads

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        # TensorFlow's name of the op that produced the output: the activation,
        # else the bias addition, else the convolution (see _conv_op_name).
        return self._activation_op_name("BiasAdd" if self.use_bias else self._conv_op_name())

    def _conv_op_name(self) -> str:
        return "Conv2D"

    # ------------------------------------------------------------------
    # Configuration

    def get_config(self) -> Dict[str, Any]:
        """Keras 2.4's ``Conv.get_config()`` keys, with serialized objects."""
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format,
            "dilation_rate": self.dilation_rate, "groups": self.groups,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        })
        return config


class _GroupedConv(_Conv):
    """``Conv1D`` and ``Conv2D``: kernel ``(*kernel_size, in / groups, filters)``.

    Output channel ``o`` sees the input channels of group
    ``o // (filters / groups)``, as in Keras (and PyTorch).
    """

    def build(self, input_shape: Shape) -> None:
        """Create ``kernel`` and ``bias`` (filters,)."""
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(
            "kernel", self.kernel_size + (channels // self.groups, self.filters),
            self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
        self._add_bias(self.filters)
        self.input_spec = InputSpec(min_ndim=self.rank + 2, axes={self._channel_axis: channels})
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The spatial sizes by TensorFlow's rules, ``filters`` channels."""
        batch_spatial = self._batch_and_spatial(input_shape)
        channels = tuple(input_shape)[self._channel_axis]
        if channels is not None and channels % self.groups:
            raise ValueError("The number of input channels must be evenly divisible by the "
                             f"number of groups. Received groups={self.groups}, but the input "
                             f"has {channels} channels (full input shape is "
                             f"{tuple(input_shape)}).")
        return self._with_channels(batch_spatial, self.filters)

    def _op_args(self) -> Dict[str, Any]:
        return dict(strides=self.strides, padding=self.padding,
                    dilation_rate=self.dilation_rate, groups=self.groups,
                    data_format=self.data_format)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _ConvCache]:
        """Convolution, bias and activation; caches input and output."""
        x = np.asarray(inputs, dtype=self._dtype)
        conv = ops.conv1d if self.rank == 1 else ops.conv2d
        z = conv(x, self.kernel.value, self._bias_value(),
                 activation=self._fused_op_activation(), **self._op_args())
        y, z_cached = self._apply_activation(z)
        return y, _ConvCache(x, z_cached, y)

    def _backward_pre_activation(self, dz: np.ndarray, cache: _ConvCache, compute_dx: bool
                                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        conv_backward = ops.conv1d_backward if self.rank == 1 else ops.conv2d_backward
        dx, dkernel, dbias = conv_backward(
            np.asarray(dz, dtype=self._dtype), cache.x, self.kernel.value,
            compute_dx=compute_dx, compute_dbias=self.use_bias, **self._op_args())
        return dx, self._with_bias_grad([dkernel], dbias)

    def count_macs(self, input_shape: Any, output_shape: Shape) -> Optional[int]:
        """``prod(out spatial) * filters * prod(kernel_size) * in / groups`` per sample."""
        spatial = self._spatial_sizes(output_shape)
        channels = tuple(input_shape)[self._channel_axis]
        if channels is None or any(d is None for d in spatial):
            return None
        return (int(np.prod(spatial, dtype=np.int64)) * self.filters
                * int(np.prod(self.kernel_size)) * (channels // self.groups))


class Conv1D(_GroupedConv):
    """1-D convolution (temporal convolution) with Keras 2.4 semantics.

    Parameters
    ----------
    filters : int
        Output channels (a float is truncated, as Keras does); a multiple of
        ``groups``.
    kernel_size, strides, dilation_rate : int or tuple of one int
        ``strides`` and ``dilation_rate`` cannot both exceed 1 (as Keras).
    padding : {'valid', 'same', 'causal'}, case-insensitive
        'same' puts the extra step at the end (TensorFlow); 'causal' pads
        ``(kernel_size - 1) * dilation_rate`` steps at the start only, so
        ``output[t]`` sees no input after ``t``.
    data_format : {'channels_last', 'channels_first'}, default 'channels_last'
        ``(batch, steps, channels)`` or ``(batch, channels, steps)``
        (Keras' Conv1D default is 'channels_last', not the image format).
    groups : int
        Splits the input channels into ``groups`` convolved separately.
    activation : None, str or callable
        'relu' is fused into the convolution.
    use_bias : bool
    kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint
        As Keras; see the module docstring for regularizers and constraints.

    Weights: ``kernel`` ``(kernel_size, in_channels / groups, filters)`` and
    ``bias`` ``(filters,)``.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", data_format: str = "channels_last",
                 dilation_rate: Any = 1, groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(1, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        # [U] TF 2.4 adds a channels-first 1-D bias with `+` ('add'), not BiasAdd.
        if self.use_bias and self._channels_first:
            return self._activation_op_name("add")
        return super()._output_op_name(input_shape)

    def _conv_op_name(self) -> str:
        return "conv1d/Squeeze"  # [U] TF's conv1d is a Conv2D between ExpandDims and Squeeze


class Conv2D(_GroupedConv):
    """2-D convolution (cross-correlation, as TensorFlow) with Keras 2.4 semantics.

    Parameters
    ----------
    filters : int
        Output channels (a float is truncated with ``int()``, as Keras does);
        a multiple of ``groups``.
    kernel_size : int or pair of int
    strides : int or pair of int, default (1, 1)
    padding : {'valid', 'same'}, case-insensitive
        'same' puts the extra row/column at the bottom/right (TensorFlow).
    data_format : None, 'channels_last' or 'channels_first'
        ``None`` is the backend's image format ('channels_last'). NCHW is
        computed natively (no transposed copies); the kernel stays HWIO.
    dilation_rate : int or pair of int, default (1, 1)
        Cannot exceed 1 together with ``strides`` > 1 (as Keras).
    groups : int
        Grouped convolution; the input channels must be a multiple too.
    activation : None, str or callable
        'relu' is fused into the convolution's store.
    use_bias : bool
    kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint
        As Keras; see the module docstring for regularizers and constraints.
    **kwargs
        ``name``, ``dtype``, ``trainable``, ``input_shape``, ``batch_size``.

    Weights: ``kernel`` of shape ``(kh, kw, in_channels / groups, filters)``
    (HWIO) and ``bias`` of shape ``(filters,)``, in that order, as Keras
    stores them.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)


class DepthwiseConv2D(Conv2D):
    """Depthwise 2-D convolution: each input channel convolved with its own
    ``depth_multiplier`` filters, channels never mixed.

    Parameters
    ----------
    kernel_size, strides, padding, data_format, dilation_rate
        As :class:`Conv2D`.
    depth_multiplier : int
        Output channels per input channel; output channel
        ``c * depth_multiplier + m`` is filter ``m`` of input channel ``c``.
    activation, use_bias
    depthwise_initializer, bias_initializer, depthwise_regularizer,
    bias_regularizer, activity_regularizer, depthwise_constraint,
    bias_constraint
        As Keras.

    Weights: ``depthwise_kernel`` ``(kh, kw, in_channels, depth_multiplier)``
    and ``bias`` ``(in_channels * depth_multiplier,)`` (Keras 2.4's names;
    Keras 3 calls the first one ``kernel``, same shape and meaning).
    Computed as a convolution with ``groups = in_channels`` on the kernel
    viewed as HWIO ``(kh, kw, 1, in_channels * depth_multiplier)`` (no copy).
    """

    _filters_from_input = True

    def __init__(self, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
                 depth_multiplier: int = 1, data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", depthwise_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 depthwise_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        groups = kwargs.pop("groups", 1)
        super().__init__(None, kernel_size, strides, padding, data_format, dilation_rate,
                         activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         bias_constraint=bias_constraint, **kwargs)
        _check_no_groups(self._what(), groups)
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier",
                                              self._what())
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.depthwise_kernel = None

    def build(self, input_shape: Shape) -> None:
        """Create ``depthwise_kernel`` and ``bias``."""
        channels = self._input_channels(input_shape)
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (channels, self.depth_multiplier),
            self.depthwise_initializer, regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint)
        self._add_bias(channels * self.depth_multiplier)
        self.input_spec = InputSpec(ndim=4, axes={self._channel_axis: channels})
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The spatial sizes by TensorFlow's rules, ``in * depth_multiplier`` channels."""
        batch_spatial = self._batch_and_spatial(input_shape)
        channels = tuple(input_shape)[self._channel_axis]
        return self._with_channels(batch_spatial,
                                   None if channels is None else channels * self.depth_multiplier)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _ConvCache]:
        """Depthwise convolution, bias and activation; caches input and output."""
        x = np.asarray(inputs, dtype=self._dtype)
        z = ops.conv2d(x, bias=self._bias_value(), activation=self._fused_op_activation(),
                       **_depthwise_op_args(self))
        y, z_cached = self._apply_activation(z)
        return y, _ConvCache(x, z_cached, y)

    def _backward_pre_activation(self, dz: np.ndarray, cache: _ConvCache, compute_dx: bool
                                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        dx, dkernel, dbias = ops.conv2d_backward(
            np.asarray(dz, dtype=self._dtype), cache.x, compute_dx=compute_dx,
            compute_dbias=self.use_bias, **_depthwise_op_args(self))
        dkernel = dkernel.reshape(self.depthwise_kernel.value.shape)
        return dx, self._with_bias_grad([dkernel], dbias)

    def count_macs(self, input_shape: Any, output_shape: Shape) -> Optional[int]:
        """``prod(out spatial) * in * depth_multiplier * kh * kw`` per sample."""
        spatial = self._spatial_sizes(output_shape)
        out_channels = tuple(output_shape)[self._channel_axis]
        if out_channels is None or any(d is None for d in spatial):
            return None
        return int(np.prod(spatial, dtype=np.int64)) * out_channels * int(
            np.prod(self.kernel_size))

    def _conv_op_name(self) -> str:
        return "depthwise"  # [U] tf.nn.depthwise_conv2d names its op 'depthwise'

    def get_config(self) -> Dict[str, Any]:
        """Conv2D's keys without the kernel's, plus the depthwise ones (as Keras 2.4)."""
        config = super().get_config()
        for key in ("filters", "kernel_initializer", "kernel_regularizer", "kernel_constraint"):
            config.pop(key)
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
        })
        return config


class SeparableConv2D(_Conv):
    """Depthwise separable 2-D convolution: a depthwise convolution (each
    input channel on its own) followed by a pointwise 1x1 convolution that
    mixes the channels, then the bias and the activation.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size, strides, padding, data_format, dilation_rate
        Of the depthwise step, as :class:`Conv2D`; the pointwise step has
        stride 1 and no padding.
    depth_multiplier : int
        Depthwise output channels per input channel.
    activation, use_bias
        'relu' and the bias are fused into the pointwise convolution.
    depthwise_initializer, pointwise_initializer, bias_initializer,
    depthwise_regularizer, pointwise_regularizer, bias_regularizer,
    activity_regularizer, depthwise_constraint, pointwise_constraint,
    bias_constraint
        As Keras.

    Weights, in Keras' order: ``depthwise_kernel`` ``(kh, kw, in,
    depth_multiplier)``, ``pointwise_kernel`` ``(1, 1, in * depth_multiplier,
    filters)``, ``bias`` ``(filters,)``.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), depth_multiplier: int = 1,
                 activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", depthwise_regularizer: Any = None,
                 pointwise_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, depthwise_constraint: Any = None,
                 pointwise_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         bias_constraint=bias_constraint, **kwargs)
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier",
                                              self._what())
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.pointwise_constraint = constraints.get(pointwise_constraint)
        self.depthwise_kernel = None
        self.pointwise_kernel = None

    def build(self, input_shape: Shape) -> None:
        """Create ``depthwise_kernel``, ``pointwise_kernel`` and ``bias``."""
        channels = self._input_channels(input_shape)
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (channels, self.depth_multiplier),
            self.depthwise_initializer, regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (1, 1, channels * self.depth_multiplier, self.filters),
            self.pointwise_initializer, regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint)
        self._add_bias(self.filters)
        self.input_spec = InputSpec(ndim=4, axes={self._channel_axis: channels})
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The depthwise step's spatial sizes, ``filters`` channels."""
        return self._with_channels(self._batch_and_spatial(input_shape), self.filters)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _ConvCache]:
        """Depthwise, then pointwise with the bias and ReLU fused; caches
        the input, the depthwise output and the output."""
        x = np.asarray(inputs, dtype=self._dtype)
        mid = ops.conv2d(x, **_depthwise_op_args(self))
        z = ops.conv2d(mid, self.pointwise_kernel.value, self._bias_value(),
                       activation=self._fused_op_activation(), data_format=self.data_format)
        y, z_cached = self._apply_activation(z)
        return y, _ConvCache(x, z_cached, y, mid)

    def _backward_pre_activation(self, dz: np.ndarray, cache: _ConvCache, compute_dx: bool
                                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        dmid, dpointwise, dbias = ops.conv2d_backward(
            np.asarray(dz, dtype=self._dtype), cache.mid, self.pointwise_kernel.value,
            data_format=self.data_format, compute_dbias=self.use_bias)
        dx, ddepthwise, _ = ops.conv2d_backward(dmid, cache.x, compute_dx=compute_dx,
                                                compute_dbias=False, **_depthwise_op_args(self))
        ddepthwise = ddepthwise.reshape(self.depthwise_kernel.value.shape)
        return dx, self._with_bias_grad([ddepthwise, dpointwise], dbias)

    def count_macs(self, input_shape: Any, output_shape: Shape) -> Optional[int]:
        """Depthwise ``prod(out spatial) * in * mult * kh * kw`` plus pointwise
        ``prod(out spatial) * in * mult * filters``, per sample."""
        spatial = self._spatial_sizes(output_shape)
        channels = tuple(input_shape)[self._channel_axis]
        if channels is None or any(d is None for d in spatial):
            return None
        mid_channels = channels * self.depth_multiplier
        positions = int(np.prod(spatial, dtype=np.int64))
        return positions * mid_channels * (int(np.prod(self.kernel_size)) + self.filters)

    def _conv_op_name(self) -> str:
        return "separable_conv2d"  # [U] tf.nn.separable_conv2d's pointwise op

    def get_config(self) -> Dict[str, Any]:
        """Keras 2.4's ``SeparableConv.get_config()`` (no ``groups``, no ``kernel_*``)."""
        config = Layer.get_config(self)
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format,
            "depth_multiplier": self.depth_multiplier, "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
            "pointwise_constraint": constraints.serialize(self.pointwise_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        })
        return config


class Conv2DTranspose(Conv2D):
    """Transposed 2-D convolution ("deconvolution"): the input gradient of the
    convolution with the same kernel, strides, padding and dilation, mapping
    the output space back to the input space; then bias and activation.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size, strides, dilation_rate : int or pair of int
    padding : {'valid', 'same'}
    output_padding : None, int or pair of int
        Sizes by Keras 2.4's ``deconv_output_length`` (``ke`` the dilated
        kernel size): without it ``in * s + max(ke - s, 0)`` ('valid') or
        ``in * s`` ('same'); with it ``(in - 1) * s + ke - 2 * pad +
        output_padding`` (``pad = ke // 2`` for 'same', 0 for 'valid'). Each
        value must be smaller than its stride (Keras' rule).
    data_format, activation, use_bias, kernel_initializer, bias_initializer,
    kernel_regularizer, bias_regularizer, activity_regularizer,
    kernel_constraint, bias_constraint
        As :class:`Conv2D` ('relu' and the bias are fused).

    Weights: ``kernel`` ``(kh, kw, filters, in_channels)`` as Keras stores it
    (the associated convolution's HWIO kernel), ``bias`` ``(filters,)``.
    Unlike TF 2.4 (which asserts), unequal dilations along height and width
    are computed.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", output_padding: Any = None,
                 data_format: Optional[str] = None, dilation_rate: Any = (1, 1),
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any) -> None:
        groups = kwargs.pop("groups", 1)
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)
        _check_no_groups(self._what(), groups)
        self.output_padding = shapes.normalize_output_padding(output_padding, self.strides)

    def build(self, input_shape: Shape) -> None:
        """Create ``kernel`` (kh, kw, filters, in) and ``bias`` (filters,)."""
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(
            "kernel", self.kernel_size + (self.filters, channels), self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self._add_bias(self.filters)
        self.input_spec = InputSpec(ndim=4, axes={self._channel_axis: channels})
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """Spatial sizes by ``deconv_output_length``, ``filters`` channels."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"{self._what()}: inputs should have rank 4. Received input "
                             f"shape: {input_shape}")
        output_padding = self.output_padding or (None, None)
        spatial = []
        for axis, size in enumerate(self._spatial_sizes(input_shape)):
            if size is None:
                spatial.append(None)
                continue
            try:
                spatial.append(shapes.conv_transpose_output_size(
                    size, self.kernel_size[axis], self.strides[axis], self.padding,
                    output_padding[axis], self.dilation_rate[axis]))
            except ValueError as exc:
                raise ValueError(f"{self._what()} cannot be applied to input shape "
                                 f"{input_shape}: {exc}") from exc
        return self._with_channels((input_shape[0],) + tuple(spatial), self.filters)

    def _op_args(self) -> Dict[str, Any]:
        return dict(strides=self.strides, padding=self.padding,
                    output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                    data_format=self.data_format)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _ConvCache]:
        """Transposed convolution, bias and activation; caches input and output."""
        x = np.asarray(inputs, dtype=self._dtype)
        z = ops.conv2d_transpose(x, self.kernel.value, self._bias_value(),
                                 activation=self._fused_op_activation(), **self._op_args())
        y, z_cached = self._apply_activation(z)
        return y, _ConvCache(x, z_cached, y)

    def _backward_pre_activation(self, dz: np.ndarray, cache: _ConvCache, compute_dx: bool
                                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        dx, dkernel, dbias = ops.conv2d_transpose_backward(
            np.asarray(dz, dtype=self._dtype), cache.x, self.kernel.value,
            compute_dx=compute_dx, compute_dbias=self.use_bias, **self._op_args())
        return dx, self._with_bias_grad([dkernel], dbias)

    def count_macs(self, input_shape: Any, output_shape: Shape) -> Optional[int]:
        """``prod(in spatial) * in * kh * kw * filters`` per sample: every input
        value is multiplied into a ``(kh, kw, filters)`` patch."""
        spatial = self._spatial_sizes(input_shape)
        channels = tuple(input_shape)[self._channel_axis]
        if channels is None or any(d is None for d in spatial):
            return None
        return (int(np.prod(spatial, dtype=np.int64)) * channels
                * int(np.prod(self.kernel_size)) * self.filters)

    def _conv_op_name(self) -> str:
        return "conv2d_transpose"  # [U] tf.nn.conv2d_transpose's op name

    def get_config(self) -> Dict[str, Any]:
        """Conv2D's keys plus ``output_padding`` (as Keras 2.4)."""
        config = super().get_config()
        config["output_padding"] = self.output_padding
        return config


# Keras' aliases: the same classes, so the same automatic names.
Convolution1D = Conv1D
Convolution2D = Conv2D
SeparableConvolution2D = SeparableConv2D
Convolution2DTranspose = Conv2DTranspose
