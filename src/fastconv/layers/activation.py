"""Activation layers with parameters: ``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``,
``Softmax`` (tf.keras 2.4's ``advanced_activations``).

Forward and backward passes are vectorised NumPy expressions that follow
the TensorFlow ops Keras composes (``K.relu``, ``nn.leaky_relu``, ``K.elu``,
``nn.softmax``), including the derivative each op defines at its kinks:
ReLU's is 0 at the threshold, leaky ReLU's is ``alpha`` at 0, ``relu6``'s
is 0 at 0 and 6, and a ``max_value`` clip passes the gradient at the clip
value itself. NaN inputs give what NumPy's ``maximum``/``where`` give: NaN
out, and a gradient of 0 where a comparison with NaN decides.

Scalar arguments are stored as tf.keras 2.4 stores them, rounded to float32
(``K.cast_to_floatx``); ``get_config`` returns them as Python floats where
2.4 returns 0-d float32 arrays for ``ReLU`` (equal values, and what 2.4's
JSON shows).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from .. import activations
from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from .base import InputSpec, Layer

__all__ = ["ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"]

Shape = Tuple[Optional[int], ...]


def _floatx(value: Any, name: str, what: str) -> float:
    """A finite real number rounded to float32, as ``K.cast_to_floatx``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: `{name}` must be a float, got {type(value).__name__} "
                        f"{value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what}: `{name}` must be a finite float, got {value!r}")
    return float(np.float32(value))


# ---------------------------------------------------------------------------
# Keras' K.relu(x, alpha, max_value, threshold), shared by ReLU and LeakyReLU

def _is_leaky(slope: float, max_value: Optional[float], threshold: float) -> bool:
    """Whether K.relu takes TensorFlow's single leaky-ReLU op."""
    return slope != 0 and max_value is None and threshold == 0


def _relu_forward(x: np.ndarray, slope: float, max_value: Optional[float],
                  threshold: float) -> np.ndarray:
    """``K.relu``: ``x`` above ``threshold`` (clipped to ``max_value``), and
    ``slope * (x - threshold)`` at or below it, composed as Keras composes it."""
    one = x.dtype.type
    if _is_leaky(slope, max_value, threshold):
        return np.where(x > 0, x, x * one(slope))
    clip = max_value is not None
    if threshold != 0:
        y = x * (x > one(threshold))
    elif max_value == 6:
        y = np.clip(x, one(0), one(6))  # relu6
        clip = False
    else:
        y = activations.relu(x)
    if clip:
        y = np.clip(y, one(0), one(max_value))
    if slope != 0:
        y -= one(slope) * np.maximum(one(threshold) - x, one(0))
    return y


def _relu_backward(dy: np.ndarray, x: np.ndarray, slope: float, max_value: Optional[float],
                   threshold: float) -> np.ndarray:
    """The derivative TensorFlow's gradients of those ops give."""
    one = x.dtype.type
    if _is_leaky(slope, max_value, threshold):
        return np.where(x > 0, dy, dy * one(slope))
    if threshold != 0:
        passes = x > one(threshold)
        if max_value is not None:
            # clip_by_value passes its input's gradient on [0, max_value].
            passes &= (x >= 0) & (x <= one(max_value))
    elif max_value == 6:
        passes = (x > 0) & (x < 6)  # Relu6Grad
    else:
        passes = x > 0
        if max_value is not None:
            passes &= x <= one(max_value)
    dx = dy * passes
    if slope != 0:
        dx += dy * (one(slope) * (x < one(threshold)))
    return dx


def _relu_op_name(slope: float, max_value: Optional[float], threshold: float) -> str:
    """The last op K.relu adds (names the layer's symbolic output)."""
    if _is_leaky(slope, max_value, threshold):
        return "LeakyRelu"
    if slope != 0:
        return "sub"
    if max_value is not None and not (threshold == 0 and max_value == 6):
        return "clip_by_value"
    if threshold != 0:
        return "mul"
    return "Relu6" if max_value == 6 else "Relu"


class _ElementwiseLayer(Layer):
    """A weightless layer whose output has its input's shape."""

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape."""
        return tuple(input_shape)

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        """``(y, cache)``."""
        raise NotImplementedError

    def _backward(self, dy: np.ndarray, cache: Any) -> np.ndarray:
        raise NotImplementedError

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, Any]:
        return self._forward(np.asarray(inputs, dtype=self._dtype))

    def backward(self, d_outputs: np.ndarray, cache: Any, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        if not compute_dx:
            return None, []
        return self._backward(np.asarray(d_outputs, dtype=self._dtype), cache), []


class ReLU(_ElementwiseLayer):
    """Rectified linear unit with Keras' options::

        f(x) = max_value                        for x >= max_value
        f(x) = x                                for threshold < x < max_value
        f(x) = negative_slope * (x - threshold) otherwise

    Parameters
    ----------
    max_value : float >= 0, optional
        Upper clip (None: none).
    negative_slope : float >= 0, default 0
    threshold : float, default 0
        (Keras 3 refuses a negative threshold; tf.keras 2.4 takes it, and
        so does fastconv.)

    With ``threshold < 0`` and no ``max_value`` the inputs in ``(threshold,
    0)`` pass unchanged (negative), with a ``max_value`` they clip to 0:
    that is what Keras' composition of ops computes.
    """

    def __init__(self, max_value: Optional[float] = None, negative_slope: float = 0,
                 threshold: float = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = f"Layer {self.name} (ReLU)"
        if max_value is not None:
            max_value = _floatx(max_value, "max_value", what)
            if max_value < 0:
                raise ValueError(f"{what}: max_value of Relu layer cannot be negative value: "
                                 f"{max_value}")
        if negative_slope is None:
            raise ValueError(f"{what}: negative_slope of Relu layer cannot be None. "
                             "Required a float")
        negative_slope = _floatx(negative_slope, "negative_slope", what)
        if negative_slope < 0:
            raise ValueError(f"{what}: negative_slope of Relu layer cannot be negative value: "
                             f"{negative_slope}")
        if threshold is None:
            raise ValueError(f"{what}: threshold of Relu layer cannot be None. Required a float")
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = _floatx(threshold, "threshold", what)

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return _relu_forward(x, self.negative_slope, self.max_value, self.threshold), x

    def _cache_of_relu_output(self, y: np.ndarray) -> np.ndarray:
        """The cache of a call of this layer, a plain ReLU (no slope, clip or
        threshold), whose output is ``y`` (computed elsewhere:
        Graph._find_relus_after_batch_norm): the derivative's mask ``x > 0``
        is ``y > 0``, NaN in neither."""
        return y

    def _backward(self, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        return _relu_backward(dy, x, self.negative_slope, self.max_value, self.threshold)

    def _output_op_name(self, input_shape: Any) -> str:
        return _relu_op_name(self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


class LeakyReLU(_ElementwiseLayer):
    """``f(x) = x`` for ``x > 0``, ``alpha * x`` otherwise.

    Parameters
    ----------
    alpha : float, default 0.3
        Any finite value, as tf.keras 2.4 (Keras 3 names it ``negative_slope``
        and refuses negative values).
    """

    def __init__(self, alpha: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = _floatx(alpha, "alpha", f"Layer {self.name} (LeakyReLU)")

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return _relu_forward(x, self.alpha, None, 0.0), x

    def _backward(self, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        return _relu_backward(dy, x, self.alpha, None, 0.0)

    def _output_op_name(self, input_shape: Any) -> str:
        return _relu_op_name(self.alpha, None, 0.0)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


class ELU(_ElementwiseLayer):
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise.

    Parameters
    ----------
    alpha : float, default 1.0
    """

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = _floatx(alpha, "alpha", f"Layer {self.name} (ELU)")

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        y = activations.elu(x, x.dtype.type(self.alpha))
        return y, (x, y)

    def _backward(self, dy: np.ndarray, cache: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        # d/dx alpha * (exp(x) - 1) = alpha * exp(x) = f(x) + alpha for
        # x <= 0 (TensorFlow's EluGrad, scaled by alpha); 1 above 0.
        x, y = cache
        return dy * np.where(x > 0, x.dtype.type(1), y + x.dtype.type(self.alpha))

    def _output_op_name(self, input_shape: Any) -> str:
        return "Elu" if self.alpha == 1 else "SelectV2"

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


class Softmax(Layer):
    """Softmax along ``axis``: ``exp(x) / sum(exp(x))``, stable for large inputs.

    Parameters
    ----------
    axis : int or tuple of int, default -1
        Several axes normalise over all of them together.
    """

    def __init__(self, axis: Union[int, Tuple[int, ...], List[int]] = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                               for a in axes):
            raise TypeError(f"Layer {self.name} (Softmax): `axis` must be an int or a tuple "
                            f"of ints, got {axis!r}")
        self.axis = axis

    def _axes(self, ndim: int) -> Tuple[int, ...]:
        axes = list(self.axis) if isinstance(self.axis, (list, tuple)) else [self.axis]
        for a in axes:
            if not -ndim <= a < ndim:
                raise ValueError(f"Layer {self.name} (Softmax): `axis` {self.axis} is out of "
                                 f"range for input of rank {ndim}")
        resolved = tuple(sorted({a % ndim for a in axes}))
        if len(resolved) != len(axes):
            raise ValueError(f"Layer {self.name} (Softmax): `axis` {self.axis} names an axis "
                             "twice")
        return resolved

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape (``axis`` checked against its rank)."""
        self._axes(len(tuple(input_shape)))
        return tuple(input_shape)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, np.ndarray]:
        """The softmax; the cache is the output."""
        x = np.asarray(inputs, dtype=self._dtype)
        y = activations.softmax(x, axis=self._axes(x.ndim))
        return y, y

    def backward(self, d_outputs: np.ndarray, cache: np.ndarray, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """``y * (dy - sum(dy * y))`` over the softmax axes."""
        if not compute_dx:
            return None, []
        y, dy = cache, np.asarray(d_outputs, dtype=self._dtype)
        return y * (dy - np.sum(dy * y, axis=self._axes(y.ndim), keepdims=True)), []

    def _output_op_name(self, input_shape: Any) -> str:
        several = isinstance(self.axis, (list, tuple)) and len(self.axis) > 1
        return "Exp" if several else "Softmax"

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


class PReLU(Layer):
    """Parametric ReLU: ``x`` for ``x > 0``, ``alpha * x`` otherwise, with a
    learned ``alpha``.

    Parameters
    ----------
    alpha_initializer : str, dict or callable, default 'zeros'
    alpha_regularizer, alpha_constraint : optional
        Carried by the weight for training (:mod:`fastconv.regularizers`,
        :mod:`fastconv.constraints`).
    shared_axes : int or sequence of int, optional
        Axes (1 = the first after the batch) along which one alpha is shared,
        e.g. ``[1, 2]`` for one alpha per channel of NHWC feature maps.

    Weight: ``alpha`` of the input shape without the batch axis, with size 1
    on the shared axes (``(1, 1, channels)`` above). The other axes' sizes
    must be known at build and are then pinned.
    """

    def __init__(self, alpha_initializer: Any = "zeros", alpha_regularizer: Any = None,
                 alpha_constraint: Any = None, shared_axes: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha_initializer = initializers_module.get(alpha_initializer)
        self.alpha_regularizer = regularizers_module.get(alpha_regularizer)
        self.alpha_constraint = constraints_module.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                       for a in axes):
                raise TypeError(f"Layer {self.name} (PReLU): `shared_axes` must be an int or "
                                f"a list of ints, got {shared_axes!r}")
            self.shared_axes = [int(a) for a in axes]
        self.alpha = None

    def _shared(self, ndim: int) -> List[int]:
        shared = self.shared_axes or []
        for a in shared:
            # Keras indexes the weight's shape with axis - 1, so 0 or a
            # negative axis would silently share another axis.
            if not 1 <= a < ndim:
                raise ValueError(f"Layer {self.name} (PReLU): `shared_axes` {self.shared_axes}"
                                 f" must hold axes 1..{ndim - 1} of the input (0 is the batch; "
                                 "negative axes are not accepted)")
        return shared

    def build(self, input_shape: Shape) -> None:
        """Create ``alpha`` of ``input_shape[1:]`` with 1 on the shared axes."""
        input_shape = tuple(input_shape)
        shared = self._shared(len(input_shape))
        param_shape = [1 if axis in shared else size
                       for axis, size in enumerate(input_shape) if axis > 0]
        unknown = [axis for axis, size in enumerate(param_shape, start=1) if size is None]
        if unknown:
            raise ValueError(f"Layer {self.name} (PReLU): the sizes of input axes {unknown} "
                             f"must be known to create `alpha` (input shape {input_shape}); "
                             "share them with `shared_axes`")
        self.alpha = self.add_weight("alpha", param_shape, self.alpha_initializer,
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={
            axis: size for axis, size in enumerate(input_shape) if axis > 0 and
            axis not in shared})
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """The input shape."""
        self._shared(len(tuple(input_shape)))
        return tuple(input_shape)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, np.ndarray]:
        """``relu(x) - alpha * relu(-x)``; the cache is the input."""
        x = np.asarray(inputs, dtype=self._dtype)
        return np.where(x > 0, x, self.alpha.value * x), x

    def backward(self, d_outputs: np.ndarray, cache: np.ndarray, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """``dx`` (``alpha`` below 0, 1 above, 0 at 0) and ``[dalpha]``."""
        x, dy = cache, np.asarray(d_outputs, dtype=self._dtype)
        alpha = self.alpha.value
        summed = (0, *self._shared(x.ndim))  # the axes one alpha serves
        dalpha = np.sum(dy * np.minimum(x, 0), axis=summed, keepdims=True).reshape(alpha.shape)
        dx = None
        if compute_dx:
            dx = np.where(x > 0, dy, np.where(x < 0, alpha * dy, x.dtype.type(0)))
        return dx, [dalpha]

    def _output_op_name(self, input_shape: Any) -> str:
        return "add"

    def get_config(self):
        config = super().get_config()
        config.update({
            "alpha_initializer": initializers_module.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers_module.serialize(self.alpha_regularizer),
            "alpha_constraint": constraints_module.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        })
        return config
