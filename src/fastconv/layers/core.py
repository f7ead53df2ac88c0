"""``Dense``, ``Flatten`` and ``Activation``."""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import activations, constraints, ops, regularizers
from ._activated import ActivatedMixin
from .base import InputSpec, Layer

__all__ = ["Dense", "Flatten", "Activation"]


class _DenseCache(NamedTuple):
    x2d: np.ndarray          # input as (samples, features)
    z: Optional[np.ndarray]  # pre-activation, only when the activation needs it
    y: np.ndarray            # output, in the caller's shape
    input_shape: Tuple[int, ...]


class Dense(ActivatedMixin, Layer):
    """Fully connected layer: ``activation(x @ kernel + bias)``.

    Parameters
    ----------
    units : int
    activation : None, str or callable
        'relu' is fused into the op.
    use_bias : bool
    kernel_initializer, bias_initializer : str, dict or callable
    kernel_regularizer, bias_regularizer, activity_regularizer : optional
        :mod:`fastconv.regularizers` identifiers (``regularizers.l2(1e-4)``,
        ``'l1'``, ...); their penalties join the training loss.
    kernel_constraint, bias_constraint : optional
        :mod:`fastconv.constraints` identifiers, applied after each update.
    **kwargs
        ``name``, ``dtype``, ``trainable``, ``input_shape``, ``input_dim``,
        ``batch_size``.

    Weights: ``kernel`` of shape ``(in_features, units)`` and ``bias`` of
    shape ``(units,)``. Inputs of rank > 2 are multiplied on their last axis
    (Keras' ``tensordot``), e.g. ``(None, 5, 4) -> (None, 5, units)``.
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any) -> None:
        if "input_shape" not in kwargs and kwargs.get("input_dim") is not None:
            kwargs["input_shape"] = (kwargs.pop("input_dim"),)
        kwargs.pop("input_dim", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        what = f"Layer {self.name} (Dense)"
        try:
            units = int(units)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
            raise TypeError(f"{what}: `units` must be a positive integer, got {units!r}") from None
        if units < 1:
            raise ValueError(f"Received an invalid value for `units`, expected a positive "
                             f"integer, got {units}.")
        self.units = units
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel = None
        self.bias = None
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape: Tuple[Optional[int], ...]) -> None:
        """Create ``kernel`` (in_features, units) and ``bias`` (units,)."""
        last_dim = tuple(input_shape)[-1]
        if last_dim is None:
            raise ValueError("The last dimension of the inputs to `Dense` should be defined. "
                             "Found `None`.")
        self.kernel = self.add_weight("kernel", (last_dim, self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: last_dim})
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """The input shape with its last dim replaced by ``units``."""
        return tuple(input_shape)[:-1] + (self.units,)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _DenseCache]:
        """Matrix product, bias and activation; caches input and output."""
        x = np.asarray(inputs, dtype=self._dtype)
        x2d = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        z = ops.dense(x2d, self.kernel.value, None if self.bias is None else self.bias.value,
                      activation=self._fused_op_activation())
        z = z.reshape(x.shape[:-1] + (self.units,))
        y, z_cached = self._apply_activation(z)
        return y, _DenseCache(x2d, z_cached, y, x.shape)

    def _backward_pre_activation(self, dz: np.ndarray, cache: _DenseCache, compute_dx: bool
                                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        dz2d = np.asarray(dz, dtype=self._dtype).reshape(-1, self.units)
        dx, dkernel, dbias = ops.dense_backward(dz2d, cache.x2d, self.kernel.value,
                                                compute_dx=compute_dx)
        if dx is not None:
            dx = dx.reshape(cache.input_shape)
        return dx, ([dkernel, dbias] if self.use_bias else [dkernel])

    def count_macs(self, input_shape: Any, output_shape: Tuple[Optional[int], ...]
                   ) -> Optional[int]:
        """``in_features * units`` per output position, per sample."""
        dims = tuple(input_shape)[1:]
        if any(d is None for d in dims):
            return None
        return int(np.prod(dims[:-1], dtype=np.int64)) * dims[-1] * self.units

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        product = "MatMul" if len(tuple(input_shape)) == 2 else "Tensordot"
        return self._activation_op_name("BiasAdd" if self.use_bias else product)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        })
        return config


class _ShapeCache(NamedTuple):
    input_shape: Tuple[int, ...]


class Flatten(Layer):
    """Flattens each sample: ``(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)``.

    NHWC input is flattened in row-major (height, width, channel) order, the
    order Keras uses with ``channels_last``, so Dense weights carry over.
    """

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format is not None and str(data_format).lower() != "channels_last":
            raise ValueError(f"Layer {self.name} (Flatten): only data_format='channels_last' "
                             f"(or None) is supported, got {data_format!r}")
        self.data_format = "channels_last"
        self.input_spec = InputSpec(min_ndim=1)

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """``(batch, product of the other dims)``; None if any is unknown."""
        dims = tuple(input_shape)[1:]
        if not dims:
            return (tuple(input_shape)[0], 1)
        if any(d is None for d in dims):
            return (tuple(input_shape)[0], None)
        return (tuple(input_shape)[0], int(np.prod(dims, dtype=np.int64)))

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _ShapeCache]:
        """A reshape (a view when the input is contiguous)."""
        x = np.asarray(inputs, dtype=self._dtype)
        return x.reshape(x.shape[0], -1), _ShapeCache(x.shape)

    def backward(self, d_outputs: np.ndarray, cache: _ShapeCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient reshaped back to the input's shape."""
        return (np.reshape(d_outputs, cache.input_shape) if compute_dx else None), []

    def _output_op_name(self, input_shape: Any) -> str:
        return "Reshape"

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class _ActivationCache(NamedTuple):
    x: np.ndarray
    y: np.ndarray


class Activation(ActivatedMixin, Layer):
    """Applies an activation function element-wise (softmax: on the last axis).

    Parameters
    ----------
    activation : str or callable
        e.g. 'relu', 'softmax', 'sigmoid', 'tanh', 'linear'.
    """

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_activation(activation)

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """The input shape."""
        return tuple(input_shape)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _ActivationCache]:
        """``activation(x)``; caches input and output."""
        x = np.asarray(inputs, dtype=self._dtype)
        y = np.asarray(self.activation(x), dtype=self._dtype)
        return y, _ActivationCache(x, y)

    def backward(self, d_outputs: np.ndarray, cache: _ActivationCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The activation's derivative applied to ``d_outputs``."""
        if not compute_dx:
            return None, []
        return self._activation_backward(d_outputs, cache.x, cache.y), []

    def _backward_pre_activation(self, dz, cache, compute_dx):
        return (dz if compute_dx else None), []

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        # None: a linear Activation adds no op (its output is named 'Placeholder:0').
        return self._activation_op_name(None)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
