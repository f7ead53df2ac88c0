"""Keras 3 on its torch backend as the oracle of the layer tests.

``keras3()`` imports it (skipping the test cleanly when Keras or PyTorch is
missing); :func:`run` evaluates a Keras model on NumPy data and, given an
output gradient ``dy``, returns torch autograd's gradients of ``sum(y * dy)``
with respect to the input and the trainable weights; :func:`numpy_of`
reads a Keras variable.
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")


def keras3():
    """The ``keras`` module on the torch backend, or skip."""
    keras = pytest.importorskip("keras")
    pytest.importorskip("torch")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()}, the oracle needs torch")
    return keras


def run(model, x: np.ndarray, dy: Optional[np.ndarray] = None, training: bool = False):
    """``y`` of ``model(x)``; with ``dy`` the triple ``(y, dL/dx, [dL/dw ...])``
    for ``L = sum(y * dy)``, the weights in ``model.trainable_weights`` order."""
    import torch
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=dy is not None)
    y = model(xt, training=training)
    if dy is None:
        return y.detach().cpu().numpy()
    weights = [v.value for v in model.trainable_weights]
    for w in weights:
        w.grad = None
    (y * torch.tensor(np.ascontiguousarray(dy))).sum().backward()
    grads: List[np.ndarray] = [w.grad.detach().cpu().numpy() for w in weights]
    return y.detach().cpu().numpy(), xt.grad.detach().cpu().numpy(), grads


def numpy_of(variable) -> np.ndarray:
    """A Keras variable's values (its own ``numpy()`` warns under NumPy 2)."""
    return variable.value.detach().cpu().numpy()
