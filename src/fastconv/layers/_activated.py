"""Shared activation handling of Conv2D, Dense and Activation.

ReLU is fused into the op (``ops.conv2d(..., activation='relu')``) and its
derivative ``dy * (y > 0)`` is ``ops.relu_backward``; every other activation is applied in NumPy
after the op, keeping the pre-activation ``z`` for its derivative.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import activations, ops

__all__ = ["ActivatedMixin"]


class ActivatedMixin:
    """Gives a layer an ``activation`` and the two halves of its backward pass.

    A layer using it implements ``_backward_pre_activation(dz, cache,
    compute_dx)``; :meth:`backward` applies the activation's derivative first.
    :meth:`backward_pre_activation` skips it, for losses that hand over the
    gradient of the pre-activation directly (softmax + cross-entropy).
    """

    activation: Any

    def _set_activation(self, activation: Any) -> None:
        self.activation = activations.get(activation)
        self._relu_fused = self.activation is activations.relu
        self._is_linear = self.activation is activations.linear

    def _fused_op_activation(self) -> Optional[str]:
        """What to pass to ``ops``' ``activation=``: ``'relu'`` or None."""
        return "relu" if self._relu_fused else None

    def _apply_activation(self, z: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """``(y, z_to_cache)`` from the op's output ``z`` (already relu'd if fused)."""
        if self._relu_fused or self._is_linear:
            return z, None
        return np.asarray(self.activation(z), dtype=z.dtype), z

    def _activation_backward(self, dy: np.ndarray, z: Optional[np.ndarray],
                             y: np.ndarray) -> np.ndarray:
        if self._is_linear:
            return dy
        if self._relu_fused:
            return ops.relu_backward(dy, y)
        return activations.get_gradient(self.activation)(dy, z, y)

    def _activation_op_name(self, default: Optional[str]) -> Optional[str]:
        return activations.op_name(self.activation) or default

    def backward(self, d_outputs: np.ndarray, cache: Any, compute_dx: bool = True):
        """``(d_inputs, [dkernel, dbias])`` for ``d_outputs = dL/dy``."""
        dz = self._activation_backward(d_outputs, cache.z, cache.y)
        return self._backward_pre_activation(dz, cache, compute_dx)

    def backward_pre_activation(self, d_pre_activation: np.ndarray, cache: Any,
                                compute_dx: bool = True):
        """Like :meth:`backward`, for the gradient of the pre-activation ``z``."""
        return self._backward_pre_activation(d_pre_activation, cache, compute_dx)

    def _backward_pre_activation(self, dz: np.ndarray, cache: Any, compute_dx: bool):
        raise NotImplementedError
