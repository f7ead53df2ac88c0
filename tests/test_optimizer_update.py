"""ops.optimizer_update: the C backend's one-pass update of each optimizer rule
against the NumPy backend (bit for bit, float32 and float64, non-finite
values included, any thread count), an independent float64 formula per rule,
and bad input. The Keras-level checks of the optimizers built on it are in
tests/test_optimizers_keras.py."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from fastconv import ops

HYPER = {"learning_rate": 0.01, "decay_1": 0.9, "decay_2": 0.999, "epsilon": 1e-7,
         "momentum": 0.8, "grad_coefficient": 0.05, "m_coefficient": 0.8,
         "v_correction": 0.003}

RULES = {   # rule: (slots, coefficients)
    "sgd": (0, ["learning_rate"]),
    "momentum": (1, ["learning_rate", "momentum"]),
    "nesterov": (1, ["learning_rate", "momentum"]),
    "rmsprop": (1, ["learning_rate", "decay_1", "epsilon"]),
    "rmsprop_centered": (2, ["learning_rate", "decay_1", "epsilon"]),
    "rmsprop_momentum": (2, ["learning_rate", "decay_1", "momentum", "epsilon"]),
    "rmsprop_momentum_centered": (3, ["learning_rate", "decay_1", "momentum", "epsilon"]),
    "adagrad": (1, ["learning_rate", "epsilon"]),
    "adadelta": (2, ["learning_rate", "decay_1", "epsilon"]),
    "adamax": (2, ["learning_rate", "decay_1", "decay_2", "epsilon"]),
    "nadam": (2, ["learning_rate", "decay_1", "decay_2", "grad_coefficient",
                  "m_coefficient", "v_correction", "epsilon"]),
}


def _state(rng, rule, n, dtype):
    slots, _ = RULES[rule]
    param = rng.standard_normal(n).astype(dtype)
    grad = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 1, n)).astype(dtype)
    # Second-moment slots stay >= 0 (and >= mg**2 for the centered rules).
    state = [np.abs(rng.standard_normal(n)).astype(dtype) + dtype(1) for _ in range(slots)]
    if rule.endswith("centered") and slots:
        state[-1] = (rng.standard_normal(n) * 0.1).astype(dtype)
    return param, grad, state


def _run(backend, rule, param, grad, state, n_threads=None):
    param, state = param.copy(), [s.copy() for s in state]
    coefficients = {name: HYPER[name] for name in RULES[rule][1]}
    previous = ops.set_num_threads(n_threads) if n_threads else None
    try:
        with fc.use_backend(backend), np.errstate(all="ignore"):
            ops.optimizer_update(rule, param, grad, state, **coefficients)
    finally:
        if n_threads:
            ops.set_num_threads(previous)
    return [param, *state]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_c_matches_numpy_bit_for_bit(rng, rule, dtype):
    param, grad, state = _state(rng, rule, 70_001, dtype)   # several blocks, both threads
    grad[:5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    if state:
        state[0][5] = np.nan
    reference = _run("numpy", rule, param, grad, state)
    for threads in (1, 2):
        for got, want in zip(_run("c", rule, param, grad, state, threads), reference):
            np.testing.assert_array_equal(got, want)


def _textbook(rule, p, g, s, c):
    """Each rule from its definition, in float64 (Keras' formulas)."""
    lr, eps, d1, d2, mom = (c[k] for k in ("learning_rate", "epsilon", "decay_1", "decay_2",
                                           "momentum"))
    if rule == "sgd":
        return [p - lr * g]
    if rule in ("momentum", "nesterov"):
        v = mom * s[0] - lr * g
        return [p + (mom * v - lr * g if rule == "nesterov" else v), v]
    if rule in ("rmsprop", "rmsprop_centered"):
        ms = d1 * s[0] + (1 - d1) * g * g
        if rule == "rmsprop":
            return [p - lr * g / (np.sqrt(ms) + eps), ms]
        mg = d1 * s[1] + (1 - d1) * g
        return [p - lr * g / (np.sqrt(ms - mg * mg) + eps), ms, mg]
    if rule in ("rmsprop_momentum", "rmsprop_momentum_centered"):
        ms = d1 * s[0] + (1 - d1) * g * g
        if rule == "rmsprop_momentum":
            v = mom * s[1] + lr * g / np.sqrt(ms + eps)
            return [p - v, ms, v]
        mg = d1 * s[2] + (1 - d1) * g
        v = mom * s[1] + lr * g / np.sqrt(ms - mg * mg + eps)
        return [p - v, ms, v, mg]
    if rule == "adagrad":
        acc = s[0] + g * g
        return [p - lr * g / (np.sqrt(acc) + eps), acc]
    if rule == "adadelta":
        acc = d1 * s[0] + (1 - d1) * g * g
        u = np.sqrt(s[1] + eps) / np.sqrt(acc + eps) * g
        return [p - lr * u, acc, d1 * s[1] + (1 - d1) * u * u]
    if rule == "adamax":
        m = d1 * s[0] + (1 - d1) * g
        u = np.maximum(d2 * s[1], np.abs(g))
        return [p - lr * m / (u + eps), m, u]
    m = d1 * s[0] + (1 - d1) * g                                        # nadam
    v = d2 * s[1] + (1 - d2) * g * g
    m_bar = c["grad_coefficient"] * g + c["m_coefficient"] * m
    return [p - lr * m_bar / (np.sqrt(v / c["v_correction"]) + eps), m, v]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_is_its_formula(rng, rule):
    param, grad, state = _state(rng, rule, 1000, np.float64)
    got = _run("c", rule, param, grad, state)
    want = _textbook(rule, param, grad, state, HYPER)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_float32_arrays_in_a_float64_grad_and_views_take_numpy(rng):
    param, grad, state = _state(rng, "adagrad", 64, np.float32)
    strided = np.zeros(128, np.float32)[::2]
    strided[...] = param
    got = _run("c", "adagrad", strided, grad.astype(np.float64), state)
    want = _run("numpy", "adagrad", param, grad.astype(np.float64), state)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    before = grad.copy()
    _run("c", "adagrad", param, grad, state)
    np.testing.assert_array_equal(grad, before)      # the gradient is read only


@pytest.mark.parametrize("call,error,words", [
    (lambda p, g, s: ops.optimizer_update("lion", p, g, s, learning_rate=0.1),
     ValueError, "`rule`"),
    (lambda p, g, s: ops.optimizer_update("adagrad", p, g, [], learning_rate=0.1,
                                          epsilon=1e-7), ValueError, "needs 1 slot"),
    (lambda p, g, s: ops.optimizer_update("adagrad", p, g, s, learning_rate=0.1),
     ValueError, "missing ['epsilon']"),
    (lambda p, g, s: ops.optimizer_update("adagrad", p, g, s, learning_rate=0.1,
                                          epsilon=1e-7, rho=0.9), ValueError, "'rho'"),
    (lambda p, g, s: ops.optimizer_update("adagrad", p, g, s, learning_rate=float("nan"),
                                          epsilon=1e-7), ValueError, "learning_rate"),
    (lambda p, g, s: ops.optimizer_update("adagrad", p, g[:3], s, learning_rate=0.1,
                                          epsilon=1e-7), ValueError, "`grad`"),
    (lambda p, g, s: ops.optimizer_update("adagrad", p, g, [s[0][:3]], learning_rate=0.1,
                                          epsilon=1e-7), ValueError, "`accumulator`"),
    (lambda p, g, s: ops.optimizer_update("adagrad", p, g, [p], learning_rate=0.1,
                                          epsilon=1e-7), ValueError, "share memory"),
    (lambda p, g, s: ops.optimizer_update("adagrad", p.astype(np.int32), g, s,
                                          learning_rate=0.1, epsilon=1e-7),
     TypeError, "float dtype"),
])
def test_bad_input_is_named_and_changes_nothing(rng, call, error, words):
    param, grad, state = _state(rng, "adagrad", 8, np.float32)
    before = [param.copy(), *(s.copy() for s in state)]
    with pytest.raises(error) as info:
        call(param, grad, state)
    assert words in str(info.value)
    for a, b in zip([param, *state], before):
        np.testing.assert_array_equal(a, b)
