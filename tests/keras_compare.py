"""Keras 3 (torch backend) as the oracle of fastconv's layers: the same model in
both, the same weights and inputs, then outputs and one training step's
gradients side by side.

A "step" is the backward pass of ``loss = sum(output * upstream)`` for a
fixed random ``upstream``: its gradients are ``upstream`` pushed back
through the model, to every trainable weight and every input. fastconv
gets them from ``Model.forward``/``Model.backward``, Keras from torch
autograd on its model.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import pytest

Arrays = List[np.ndarray]


def import_keras() -> Any:
    """Keras 3 on its torch backend, or skip the test."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()!r}, these checks need 'torch'")
    return keras


def max_relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max|actual - expected| / max|expected|`` (normwise; 0 for two zero arrays)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.abs(expected).max(initial=0.0)
    error = np.abs(actual - expected).max(initial=0.0)
    return error / scale if scale > 0 else error


def assert_close(actual: Any, expected: Any, rtol: float = 1e-5, what: str = "") -> None:
    error = max_relative_error(actual, expected)
    assert error <= rtol, f"{what}: relative error {error:.3g} > {rtol}"


def numpy_of(variable: Any) -> np.ndarray:
    """A Keras variable's values, without its ``numpy()`` (whose
    ``np.array(variable)`` NumPy 2 flags with a DeprecationWarning)."""
    return variable.value.detach().cpu().numpy().copy()


def keras_weights(model: Any) -> Arrays:
    """``model.get_weights()``, through :func:`numpy_of`."""
    return [numpy_of(v) for v in model.weights]


def keras_step(model: Any, inputs: Sequence[np.ndarray], upstream: np.ndarray,
               training: bool = True) -> Tuple[np.ndarray, Arrays, Arrays]:
    """``(output, input gradients, trainable-weight gradients)`` of Keras' model."""
    import torch
    xs = [torch.tensor(x, requires_grad=True) for x in inputs]
    y = model(xs if len(xs) > 1 else xs[0], training=training)
    loss = (y * torch.tensor(upstream)).sum()
    weights = [v.value for v in model.trainable_weights]
    grads = torch.autograd.grad(loss, xs + weights, allow_unused=True)
    as_numpy = [np.zeros(t.shape, np.float32) if g is None else g.detach().numpy()
                for g, t in zip(grads, xs + weights)]
    return y.detach().numpy(), as_numpy[:len(xs)], as_numpy[len(xs):]


def run(model: Any, x: np.ndarray, dy: Optional[np.ndarray] = None, training: bool = False):
    """Keras' ``model(x)`` as NumPy; with ``dy`` the triple ``(y, dL/dx,
    [dL/dw ...])`` of :func:`keras_step` for one input."""
    x = np.ascontiguousarray(x)
    if dy is None:
        import torch
        return model(torch.tensor(x), training=training).detach().cpu().numpy()
    y, input_grads, weight_grads = keras_step(model, [x], np.ascontiguousarray(dy), training)
    return y, input_grads[0], weight_grads


def fastconv_step(model: Any, inputs: Sequence[np.ndarray], upstream: np.ndarray
                  ) -> Tuple[np.ndarray, Arrays, Arrays]:
    """The same for a fastconv model (its training-mode forward and backward)."""
    y = model.forward(list(inputs) if len(inputs) > 1 else inputs[0], training=True)
    weight_grads, input_grads = model.backward(upstream, input_gradients=True)
    return np.asarray(y), list(input_grads), list(weight_grads)


def compare_models(fc_model: Any, k_model: Any, inputs: Sequence[np.ndarray],
                   seed: int = 0, rtol: float = 1e-5) -> None:
    """Keras' weights into fastconv's model, then parameter counts, inference
    outputs and one step's outputs and gradients must agree."""
    assert fc_model.count_params() == k_model.count_params()
    k_weights = keras_weights(k_model)
    assert [w.shape for w in fc_model.get_weights()] == [w.shape for w in k_weights]
    fc_model.set_weights(k_weights)
    single = inputs[0] if len(inputs) == 1 else list(inputs)
    k_inference = np.asarray(k_model(single, training=False).detach())
    assert_close(fc_model(single), k_inference, rtol, "inference output")
    upstream = np.random.default_rng(seed).standard_normal(k_inference.shape).astype(np.float32)
    k_y, k_dx, k_dw = keras_step(k_model, inputs, upstream)
    f_y, f_dx, f_dw = fastconv_step(fc_model, inputs, upstream)
    assert_close(f_y, k_y, rtol, "training output")
    assert len(f_dx) == len(k_dx) and len(f_dw) == len(k_dw)
    for i, (f, k) in enumerate(zip(f_dx, k_dx)):
        assert_close(f, k, rtol, f"input gradient {i}")
    for variable, f, k in zip(fc_model.trainable_weights, f_dw, k_dw):
        assert_close(f, k, rtol, f"gradient of {variable.name}")
