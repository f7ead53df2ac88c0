"""``BatchNormalization`` (tf.keras 2.4's ``normalization_v2``), on fastconv's fused ops.

Training (``training=True`` and ``layer.trainable``): one statistics pass and
one normalising pass (:func:`fastconv.ops.batch_norm_train`), then the
moving averages move towards the batch statistics
(:func:`~fastconv.ops.batch_norm_update_moving`), once per call; backward is
:func:`~fastconv.ops.batch_norm_backward` (two passes). Inference uses the
moving statistics (:func:`~fastconv.ops.batch_norm_inference`).

The ops normalise a channel axis that is last (``channels_last``) or axis 1
(``channels_first``); for any other axis, or several axes, the layer moves
the normalised axes last with one copy of the input (and of the gradient in
backward) and hands back a transposed view.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import ops
from .. import regularizers as regularizers_module
from .base import InputSpec, Layer, Variable

__all__ = ["BatchNormalization"]

Shape = Tuple[Optional[int], ...]

# tf.nn.fused_batch_norm raises a smaller epsilon to this (cuDNN's lower
# bound), on every device: tf.keras 2.4's fused path computes with it.
_FUSED_MIN_EPSILON = 1.001e-5


class _BatchNormCache(NamedTuple):
    x: np.ndarray            # the input in the ops' layout
    moved_shape: Optional[Tuple[int, ...]]  # shape after moving the axes last; None: not moved
    mean: np.ndarray         # the statistics the output was normalised with:
    var: np.ndarray          # the batch's (training) or a copy of the moving ones
    batch_statistics: bool
    epsilon: float


class BatchNormalization(Layer):
    """Normalises each feature (channel) to zero mean and unit variance, then
    scales by ``gamma`` and shifts by ``beta``::

        y = (x - mean) / sqrt(var + epsilon) * gamma + beta

    In training, with the batch's mean and (biased) variance; the moving
    averages then take ``moving -= (moving - batch) * (1 - momentum)``. In
    inference, and always when ``trainable`` is False (tf.keras 2.x: a frozen
    layer normalises with its moving statistics even inside ``fit``, which
    fine-tuning relies on), with ``moving_mean`` and ``moving_variance``.

    Parameters
    ----------
    axis : int or list of int, default -1
        The feature axis (or axes); statistics are taken over all others.
        After build it holds the resolved non-negative axes as a list (so
        ``get_config()['axis']`` is ``[3]`` for NHWC input, as in tf.keras 2.4).
    momentum : float in [0, 1], default 0.99
    epsilon : float > 0, default 1e-3
    center, scale : bool
        Whether ``beta`` / ``gamma`` exist (otherwise 0 and 1).
    beta_initializer, gamma_initializer, moving_mean_initializer,
    moving_variance_initializer : str, dict or callable
    beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint
        Carried by the weights for training.
    fused : None, True or False
        tf.keras 2.4 computes 4-D inputs normalised on axis 1 or 3 (float32)
        with ``tf.nn.fused_batch_norm`` (``fused=None`` picks it there,
        ``True`` insists and raises Keras' errors elsewhere, ``False``
        refuses it). fastconv always computes with its own fused ops;
        ``fused`` selects what differs between TF's two paths:

        * the variance fed to the moving variance: Bessel-corrected
          (``var * n / (n - 1)``, ``n = N*H*W``; biased when ``n == 1``) on
          the fused path, biased otherwise. Keras 3 always feeds the biased
          one.
        * epsilon: the fused path raises it to at least 1.001e-5.

    renorm_clipping, renorm_momentum
        Accepted and unused (they only matter with ``renorm=True``).
    renorm, virtual_batch_size, adjustment
        Not supported: ``renorm=True``, a ``virtual_batch_size`` or an
        ``adjustment`` raise ValueError.

    Weights, in Keras' order: ``gamma`` (if ``scale``), ``beta`` (if
    ``center``), both trainable; ``moving_mean``, ``moving_variance``,
    non-trainable. Shape ``(features,)`` (several axes: the input's rank with
    size 1 on the other axes, as Keras).
    """

    def __init__(self, axis: Union[int, Sequence[int]] = -1, momentum: float = 0.99,
                 epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, renorm: bool = False,
                 renorm_clipping: Optional[Dict[str, float]] = None,
                 renorm_momentum: float = 0.99, fused: Optional[bool] = None,
                 trainable: bool = True, virtual_batch_size: Optional[int] = None,
                 adjustment: Any = None, name: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(trainable=trainable, name=name, **kwargs)
        what = f"Layer {self.name} (BatchNormalization)"
        self._what = what
        if isinstance(axis, (list, tuple)) and axis and all(_is_int(a) for a in axis):
            self.axis: Union[int, List[int]] = [int(a) for a in axis]
        elif _is_int(axis):
            self.axis = int(axis)
        else:
            raise TypeError("Expected an int or a list/tuple of ints for the argument 'axis', "
                            f"but received: {axis!r}")
        self.momentum = _checked_number(momentum, "momentum", what, "in [0, 1]",
                                        lambda m: 0 <= m <= 1)
        self.epsilon = _checked_number(epsilon, "epsilon", what, "> 0", lambda e: e > 0)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers_module.get(beta_initializer)
        self.gamma_initializer = initializers_module.get(gamma_initializer)
        self.moving_mean_initializer = initializers_module.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers_module.get(moving_variance_initializer)
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.beta_constraint = constraints_module.get(beta_constraint)
        self.gamma_constraint = constraints_module.get(gamma_constraint)
        for argument, value, given in (("renorm", renorm, bool(renorm)),
                                       ("virtual_batch_size", virtual_batch_size,
                                        virtual_batch_size is not None),
                                       ("adjustment", adjustment, adjustment is not None)):
            if given:
                raise ValueError(f"{what}: `{argument}` is not supported by fastconv (got "
                                 f"{value!r}); leave it at its default")
        if fused not in (None, True, False):
            raise TypeError(f"{what}: `fused` must be None, True or False, got {fused!r}")
        if fused:
            self._raise_if_fused_cannot_be_used()
        elif fused is None and self._fused_cannot_be_used():
            fused = False
        # None until build (then: 4-D input), as in Keras.
        self.fused = fused
        self.gamma: Optional[Variable] = None
        self.beta: Optional[Variable] = None
        self.moving_mean: Optional[Variable] = None
        self.moving_variance: Optional[Variable] = None
        self._data_format = "channels_last"   # of the ops, set by build
        self._move: Optional[Tuple[int, ...]] = None  # transpose putting the axes last

    # ------------------------------------------------------------------
    # tf.keras 2.4's choice of path

    def _fused_cannot_be_used(self) -> Optional[str]:
        """Why tf.keras 2.4's fused path is out (None if it is not)."""
        axes = [self.axis] if isinstance(self.axis, int) else self.axis
        # Axis -3 is 1 and -1 is 3 for the 4-D inputs the fused path takes.
        if len(axes) > 1 or axes[0] not in (-3, -1, 1, 3):
            return "Passing fused=True is only supported when axis is 1 or 3"
        if self._dtype != np.float32:
            return ("Passing fused=True is only supported when the compute dtype is float16, "
                    f"bfloat16, or float32. Got dtype: {self.dtype}")
        return None

    def _raise_if_fused_cannot_be_used(self) -> None:
        reason = self._fused_cannot_be_used()
        if reason:
            raise ValueError(f"{self._what}: {reason}")

    # ------------------------------------------------------------------
    # Building

    def _resolve_axes(self, input_shape: Shape) -> List[int]:
        """The normalised axes as non-negative ints, checked against the input."""
        ndim = len(input_shape)
        given = [self.axis] if isinstance(self.axis, int) else self.axis
        axes = [a + ndim if a < 0 else a for a in given]
        for a in axes:
            if not 0 <= a < ndim:
                raise ValueError(f"{self._what}: Invalid axis: {a} (for input shape "
                                 f"{tuple(input_shape)})")
        if len(set(axes)) != len(axes):
            raise ValueError(f"{self._what}: Duplicate axis: {axes}")
        if len(axes) == ndim:
            raise ValueError(f"{self._what}: `axis` {given} leaves no axis of input shape "
                             f"{tuple(input_shape)} to take the statistics over")
        unknown = [a for a in axes if input_shape[a] is None]
        if unknown:
            raise ValueError("Input has undefined `axis` dimension. Received input with shape "
                             f"{tuple(input_shape)}. Axis value: {given}")
        return axes

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape (``axis`` checked against it)."""
        self._resolve_axes(tuple(input_shape))
        return tuple(input_shape)

    def build(self, input_shape: Shape) -> None:
        """Resolve the axes and the path, create the four weights."""
        input_shape = tuple(input_shape)
        ndim = len(input_shape)
        axes = self._resolve_axes(input_shape)
        if self.fused is None:
            self.fused = ndim == 4
        elif self.fused and ndim != 4:
            raise ValueError(f"{self._what}: Batch normalization layers with fused=True only "
                             "support 4D input tensors.")
        if self.fused and axes not in ([1], [3]):
            raise ValueError(f"{self._what}: Unsupported axis, fused batch norm only supports "
                             "axis == [1] or axis == [3]")
        self.axis = axes
        if axes == [ndim - 1]:
            self._data_format, self._move = "channels_last", None
        elif axes == [1]:
            self._data_format, self._move = "channels_first", None
        else:
            others = [a for a in range(ndim) if a not in axes]
            self._data_format, self._move = "channels_last", tuple(others + sorted(axes))
        sizes = {a: input_shape[a] for a in axes}
        param_shape = ((sizes[axes[0]],) if len(axes) == 1 else
                       tuple(sizes.get(a, 1) for a in range(ndim)))
        if self.scale:
            self.gamma = self.add_weight("gamma", param_shape, self.gamma_initializer,
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight("beta", param_shape, self.beta_initializer,
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)
        self.moving_mean = self.add_weight("moving_mean", param_shape,
                                           self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", param_shape,
                                               self.moving_variance_initializer,
                                               trainable=False)
        self.input_spec = InputSpec(ndim=ndim, axes=sizes)
        self.built = True

    # ------------------------------------------------------------------
    # Computing

    def _to_ops_layout(self, a: np.ndarray) -> Tuple[np.ndarray, Optional[Tuple[int, ...]]]:
        """``a`` with the normalised axes last (one copy) if the ops cannot
        take it as it is, and the moved shape to undo that with."""
        if self._move is None:
            return a, None
        moved = np.ascontiguousarray(a.transpose(self._move))
        features = len(self.axis)
        return moved.reshape(moved.shape[:-features] + (-1,)), moved.shape

    def _from_ops_layout(self, a: np.ndarray, moved_shape: Optional[Tuple[int, ...]]
                         ) -> np.ndarray:
        if moved_shape is None:
            return a
        return a.reshape(moved_shape).transpose(np.argsort(self._move))

    @staticmethod
    def _flat(variable: Optional[Variable]) -> Optional[np.ndarray]:
        """A weight as the ops' (features,) vector: a view, so in-place updates land."""
        return None if variable is None else variable.value.reshape(-1)

    def _epsilon(self) -> float:
        return max(self.epsilon, _FUSED_MIN_EPSILON) if self.fused else self.epsilon

    def forward(self, inputs: np.ndarray, training: bool = False, *,
                activation: Optional[str] = None) -> Tuple[np.ndarray, _BatchNormCache]:
        """Normalise with the batch statistics (training, updating the moving
        averages) or the moving ones; ``activation='relu'`` applies a ReLU in
        the same pass (the graph's fusion of a ReLU that follows: the cache,
        and so the backward, are the batch norm's own)."""
        x, moved_shape = self._to_ops_layout(np.asarray(inputs, dtype=self._dtype))
        gamma, beta = self._flat(self.gamma), self._flat(self.beta)
        moving_mean, moving_var = self._flat(self.moving_mean), self._flat(self.moving_variance)
        epsilon = self._epsilon()
        if training and self.trainable:
            y, mean, var = ops.batch_norm_train(x, gamma, beta, epsilon=epsilon,
                                                activation=activation,
                                                data_format=self._data_format)
            count = x.size // mean.shape[0]
            ops.batch_norm_update_moving(moving_mean, moving_var, mean, var,
                                         momentum=self.momentum,
                                         count=count if self.fused and count > 1 else None)
            cache = _BatchNormCache(x, moved_shape, mean, var, True, epsilon)
        else:
            y = ops.batch_norm_inference(x, gamma, beta, moving_mean, moving_var,
                                         epsilon=epsilon, activation=activation,
                                         data_format=self._data_format)
            cache = _BatchNormCache(x, moved_shape, moving_mean.copy(), moving_var.copy(), False,
                                    epsilon)
        return self._from_ops_layout(y, moved_shape), cache

    def backward(self, d_outputs: np.ndarray, cache: _BatchNormCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """``(dx, [dgamma, dbeta])`` (only the weights that exist)."""
        dy, _ = self._to_ops_layout(np.asarray(d_outputs, dtype=self._dtype))
        gamma = self._flat(self.gamma)
        if cache.batch_statistics:
            dx, dgamma, dbeta = ops.batch_norm_backward(
                dy, cache.x, gamma, cache.mean, cache.var, epsilon=cache.epsilon,
                data_format=self._data_format, compute_dx=compute_dx)
        else:
            dx, dgamma, dbeta = self._inference_backward(dy, cache, gamma, compute_dx)
        grads = [g.reshape(v.numpy().shape) for g, v in
                 ((dgamma, self.gamma), (dbeta, self.beta)) if v is not None]
        return (None if dx is None else self._from_ops_layout(dx, cache.moved_shape)), grads

    def _inference_backward(self, dy: np.ndarray, cache: _BatchNormCache,
                            gamma: Optional[np.ndarray], compute_dx: bool
                            ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
        """Gradients of ``(x - mean) * inv * gamma + beta`` with fixed statistics
        (no op covers this affine map; a few vectorised NumPy passes)."""
        channels_first = self._data_format == "channels_first"
        channel_axis = 1 if channels_first else dy.ndim - 1
        summed = tuple(a for a in range(dy.ndim) if a != channel_axis)

        def per_channel(v: np.ndarray) -> np.ndarray:
            return v.reshape((-1,) + (1,) * (dy.ndim - 2)) if channels_first else v

        one = dy.dtype.type
        inv = one(1) / np.sqrt(cache.var + one(cache.epsilon))
        dbeta = np.sum(dy, axis=summed)
        dgamma = np.sum(dy * (cache.x - per_channel(cache.mean)), axis=summed) * inv
        dx = None
        if compute_dx:
            dx = dy * per_channel(inv if gamma is None else inv * gamma)
        return dx, dgamma, dbeta

    def _output_op_name(self, input_shape: Any) -> str:
        # Traced in inference: the fused op, or nn.batch_normalization's last add.
        return "FusedBatchNormV3" if self.fused else "batchnorm/add_1"

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": list(self.axis) if isinstance(self.axis, list) else self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers_module.serialize(self.beta_initializer),
            "gamma_initializer": initializers_module.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers_module.serialize(
                self.moving_mean_initializer),
            "moving_variance_initializer": initializers_module.serialize(
                self.moving_variance_initializer),
            "beta_regularizer": regularizers_module.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers_module.serialize(self.gamma_regularizer),
            "beta_constraint": constraints_module.serialize(self.beta_constraint),
            "gamma_constraint": constraints_module.serialize(self.gamma_constraint),
        })
        return config


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _checked_number(value: Any, name: str, what: str, expected: str, ok: Any) -> float:
    """``value`` if it is a finite real number that ``ok`` accepts."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: `{name}` must be a float {expected}, got "
                        f"{type(value).__name__} {value!r}")
    if not math.isfinite(value) or not ok(value):
        raise ValueError(f"{what}: `{name}` must be a finite float {expected}, got {value!r}")
    return value
