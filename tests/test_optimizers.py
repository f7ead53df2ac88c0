"""Optimizers: Keras 2.4 update rules, state handling, config, and a PyTorch cross-check.

The references below are written independently from the textbook form of
each rule (e.g. ``m = b1 * m + (1 - b1) * g``) in float64, not in the
implementation's update order, so a wrong coefficient or ordering shows up.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from fastconv import optimizers
from fastconv.optimizers import SGD, Adam, RMSprop

STEPS = 6


def _grads(rng, shape, steps=STEPS):
    # Mixed signs and magnitudes, never exactly zero.
    return [rng.normal(size=shape) * 10.0 ** rng.uniform(-2, 1, size=shape) for _ in range(steps)]


# -- independent float64 references -------------------------------------------------


def reference_sgd(w, grads, lr, momentum=0.0, nesterov=False):
    w, v = w.copy(), np.zeros_like(w)
    for g in grads:
        if momentum == 0:
            w = w - lr * g
            continue
        v = momentum * v - lr * g
        w = w + (momentum * v - lr * g if nesterov else v)
    return w


def reference_adam(w, grads, lr, b1, b2, eps, amsgrad=False):
    w, m, v, vhat = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        vhat = np.maximum(vhat, v)
        lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w = w - lr_t * m / (np.sqrt(vhat if amsgrad else v) + eps)
    return w


def reference_rmsprop(w, grads, lr, rho, momentum, eps, centered):
    w, ms, mg, mom = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        ms = rho * ms + (1 - rho) * g ** 2
        mg = rho * mg + (1 - rho) * g
        variance = ms - mg ** 2 if centered else ms
        if momentum == 0:
            w = w - lr * g / (np.sqrt(variance) + eps)        # TF's Python path
        else:
            mom = momentum * mom + lr * g / np.sqrt(variance + eps)  # TF's kernel
            w = w - mom
    return w


def run(optimizer, w0, grads, dtype=np.float64):
    w = w0.astype(dtype)
    for g in grads:
        optimizer.apply_gradients([(g.astype(dtype), w)])
    return w


# -- hand-computed first steps -------------------------------------------------


def test_sgd_hand_computed_momentum_and_nesterov():
    g = np.ones(2)
    # v1 = -0.1, w1 = -0.1; v2 = 0.9 * -0.1 - 0.1 = -0.19, w2 = -0.29.
    assert np.allclose(run(SGD(0.1, momentum=0.9), np.zeros(2), [g, g]), -0.29, atol=1e-15)
    # Nesterov: w1 = 0.9 * -0.1 - 0.1 = -0.19; w2 = w1 + 0.9 * -0.19 - 0.1 = -0.461.
    assert np.allclose(run(SGD(0.1, momentum=0.9, nesterov=True), np.zeros(2), [g, g]),
                       -0.461, atol=1e-15)
    # Plain: w -= lr * g.
    assert np.allclose(run(SGD(0.1), np.zeros(2), [g, 3 * g]), -0.4, atol=1e-15)


def test_adam_first_step_moves_each_weight_by_lr_when_epsilon_is_zero():
    # m1 = 0.1 g, v1 = 0.001 g^2, lr_t = lr sqrt(0.001) / 0.1:
    # step = lr_t * 0.1 g / (sqrt(0.001) |g|) = lr * sign(g).
    g = np.array([5.0, -0.02, 300.0])
    w = run(Adam(learning_rate=0.01, epsilon=0.0), np.zeros(3), [g])
    np.testing.assert_allclose(w, -0.01 * np.sign(g), rtol=1e-12)


def test_adam_epsilon_is_added_to_sqrt_v_not_to_the_bias_corrected_sqrt():
    # With a tiny gradient epsilon dominates: step = lr_t * m / (sqrt(v) + eps)
    # with lr_t = lr sqrt(1 - b2) / (1 - b1) at t = 1 (TF); PyTorch would divide by
    # sqrt(v / (1 - b2)) + eps instead.
    g, lr, eps = 1e-7, 0.001, 1e-7
    w = run(Adam(learning_rate=lr, epsilon=eps), np.zeros(1), [np.array([g])])
    lr_t = lr * math.sqrt(1 - 0.999) / (1 - 0.9)
    expected = -lr_t * (0.1 * g) / (math.sqrt(0.001) * g + eps)
    assert w[0] == pytest.approx(expected, rel=1e-12)
    torch_form = -lr / 0.1 * (0.1 * g) / (math.sqrt(0.001 * g * g / 0.001) + eps)
    assert abs(w[0] - torch_form) > 0.1 * abs(torch_form)


def test_rmsprop_first_steps_and_epsilon_placement_by_path():
    g, lr, eps = 1e-4, 0.001, 1e-7
    grad = np.array([g])
    # No momentum: w -= lr g / (sqrt(0.1 g^2) + eps).
    w = run(RMSprop(lr, epsilon=eps), np.zeros(1), [grad])
    assert w[0] == pytest.approx(-lr * g / (math.sqrt(0.1) * g + eps), rel=1e-12)
    # Momentum path: mom = lr g / sqrt(0.1 g^2 + eps), w -= mom.
    w = run(RMSprop(lr, momentum=0.5, epsilon=eps), np.zeros(1), [grad])
    assert w[0] == pytest.approx(-lr * g / math.sqrt(0.1 * g * g + eps), rel=1e-12)


# -- several steps against the references ----------------------------------------------

SGD_CASES = [dict(learning_rate=0.05), dict(learning_rate=0.05, momentum=0.9),
             dict(learning_rate=0.02, momentum=0.7, nesterov=True)]
ADAM_CASES = [dict(), dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3),
              dict(learning_rate=0.003, amsgrad=True)]
RMSPROP_CASES = [dict(), dict(learning_rate=0.01, rho=0.8, centered=True),
                 dict(learning_rate=0.01, momentum=0.9),
                 dict(learning_rate=0.005, rho=0.95, momentum=0.5, centered=True, epsilon=1e-4)]


def _reference_for(cls, kwargs, w0, grads):
    if cls is SGD:
        return reference_sgd(w0, grads, kwargs.get("learning_rate", 0.01),
                             kwargs.get("momentum", 0.0), kwargs.get("nesterov", False))
    if cls is Adam:
        return reference_adam(w0, grads, kwargs.get("learning_rate", 0.001),
                              kwargs.get("beta_1", 0.9), kwargs.get("beta_2", 0.999),
                              kwargs.get("epsilon", 1e-7), kwargs.get("amsgrad", False))
    return reference_rmsprop(w0, grads, kwargs.get("learning_rate", 0.001),
                             kwargs.get("rho", 0.9), kwargs.get("momentum", 0.0),
                             kwargs.get("epsilon", 1e-7), kwargs.get("centered", False))


CASES = ([(SGD, k) for k in SGD_CASES] + [(Adam, k) for k in ADAM_CASES]
         + [(RMSprop, k) for k in RMSPROP_CASES])


@pytest.mark.parametrize("cls, kwargs", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_matches_reference_over_several_steps(cls, kwargs, rng):
    w0 = rng.normal(size=(3, 4))
    grads = _grads(rng, w0.shape)
    expected = _reference_for(cls, kwargs, w0, grads)
    np.testing.assert_allclose(run(cls(**kwargs), w0, grads), expected, rtol=1e-10, atol=1e-13)
    # float32 parameters follow the same trajectory to float32 precision.
    w32 = run(cls(**kwargs), w0, grads, dtype=np.float32)
    assert w32.dtype == np.float32
    np.testing.assert_allclose(w32, expected, rtol=2e-4, atol=2e-5)


# -- state, counter, interface ----------------------------------------------------------


def test_updates_in_place_with_state_per_parameter(rng):
    a, b = np.zeros(3), np.zeros((2, 2))
    ga, gb = rng.normal(size=3), rng.normal(size=(2, 2))
    opt = Adam(learning_rate=0.1)
    a_id = id(a)
    for _ in range(3):
        opt.apply_gradients(zip([ga, gb], [a, b]))
    assert id(a) == a_id and opt.iterations == 3
    np.testing.assert_allclose(a, reference_adam(np.zeros(3), [ga] * 3, 0.1, 0.9, 0.999, 1e-7))
    np.testing.assert_allclose(b, reference_adam(np.zeros((2, 2)), [gb] * 3, 0.1, 0.9, 0.999, 1e-7))
    assert set(opt.get_slot_names()) == {"m", "v"}
    np.testing.assert_allclose(opt.get_slot(a, "m"), (1 - 0.9 ** 3) * ga)
    # A parameter seen for the first time gets fresh state, but the global step
    # (used by Adam's bias correction) keeps counting, as in Keras.
    c = np.zeros(3)
    opt.apply([c], [ga])
    lr_t = 0.1 * math.sqrt(1 - 0.999 ** 4) / (1 - 0.9 ** 4)
    np.testing.assert_allclose(c, -lr_t * 0.1 * ga / (np.sqrt(0.001 * ga ** 2) + 1e-7))


def test_none_gradients_are_skipped_but_count_as_a_step():
    a, b = np.zeros(2), np.ones(2)
    opt = SGD(0.5)
    opt.apply_gradients([(np.ones(2), a), (None, b)])
    assert np.array_equal(a, [-0.5, -0.5]) and np.array_equal(b, [1, 1])
    assert opt.iterations == 1


@pytest.mark.parametrize("bad, match", [
    ([], "No gradients"),
    ([(None, np.zeros(2))], "No gradients"),
    ([(np.zeros(3), np.zeros(2))], r"gradient 0 has shape \(3,\).*\(2,\)"),
])
def test_bad_gradients_raise_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        SGD().apply_gradients(bad)


def test_bad_parameters_raise_type_error():
    readonly = np.zeros(2)
    readonly.flags.writeable = False
    for param, match in [(np.zeros(2, dtype=np.int64), "floating dtype"),
                         ([0.0, 0.0], "NumPy array"), (readonly, "read-only")]:
        with pytest.raises(TypeError, match=match):
            SGD().apply_gradients([(np.zeros(2), param)])
    with pytest.raises(ValueError, match="pair up"):
        SGD().apply([np.zeros(2)], [])


def test_learning_rate_decay_schedule_and_assignment():
    w = np.zeros(1)
    opt = SGD(learning_rate=1.0, decay=0.5)
    for _ in range(3):  # lr / (1 + 0.5 * iterations) with iterations 0, 1, 2
        opt.apply_gradients([(np.ones(1), w)])
    assert w[0] == pytest.approx(-(1 + 1 / 1.5 + 1 / 2.0))
    seen = []
    opt = SGD(learning_rate=lambda step: seen.append(step) or 0.1 * (step + 1))
    w = np.zeros(1)
    opt.apply_gradients([(np.ones(1), w)])
    opt.apply_gradients([(np.ones(1), w)])
    assert seen == [0, 1] and w[0] == pytest.approx(-0.3)
    opt = Adam()
    opt.learning_rate = 0.5
    assert opt.lr == 0.5 and opt.get_config()["learning_rate"] == 0.5
    assert Adam(lr=0.2).learning_rate == 0.2  # Keras' deprecated alias
    with pytest.raises(ValueError, match="learning_rate"):
        SGD(learning_rate=-1)


def test_gradient_clipping():
    g = np.array([3.0, 4.0])  # norm 5
    w = np.zeros(2)
    SGD(1.0, clipnorm=1.0).apply_gradients([(g, w)])
    np.testing.assert_allclose(w, -g / 5)
    w1, w2 = np.zeros(2), np.zeros(1)
    # Global norm of ([3, 4], [12]) is 13.
    SGD(1.0, global_clipnorm=1.3).apply_gradients([(g, w1), (np.array([12.0]), w2)])
    np.testing.assert_allclose(np.concatenate([w1, w2]), -np.array([3, 4, 12]) / 10)
    w = np.zeros(2)
    SGD(1.0, clipvalue=3.5).apply_gradients([(g, w)])
    np.testing.assert_allclose(w, [-3.0, -3.5])
    with pytest.raises(ValueError, match="both"):
        SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        SGD(momentun=0.9)


def test_hyperparameter_validation():
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match="beta_1"):
        Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="rho"):
        RMSprop(rho=2.0)


def test_get_config_matches_keras_defaults():
    assert SGD().get_config() == {"name": "SGD", "learning_rate": 0.01, "decay": 0.0,
                                  "momentum": 0.0, "nesterov": False}
    assert Adam().get_config() == {"name": "Adam", "learning_rate": 0.001, "decay": 0.0,
                                   "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
                                   "amsgrad": False}
    assert RMSprop().get_config() == {"name": "RMSprop", "learning_rate": 0.001, "decay": 0.0,
                                      "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
                                      "centered": False}
    assert SGD(clipnorm=2.0).get_config()["clipnorm"] == 2.0


@pytest.mark.parametrize("name, cls", [("sgd", SGD), ("SGD", SGD), ("Adam", Adam),
                                       ("ADAM", Adam), ("rmsprop", RMSprop), ("RMSprop", RMSprop)])
def test_get_by_name_is_case_insensitive(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is cls and opt.iterations == 0
    assert opt is not optimizers.get(name)  # a fresh instance each time


def test_get_passes_instances_and_configs_through():
    opt = Adam(learning_rate=0.02, amsgrad=True)
    assert optimizers.get(opt) is opt
    clone = optimizers.get(optimizers.serialize(opt))
    assert type(clone) is Adam and clone.get_config() == opt.get_config()
    assert optimizers.get({"class_name": "sgd", "config": {"momentum": 0.5}}).momentum == 0.5


def test_get_unknown_names_raise_clear_errors():
    with pytest.raises(ValueError, match=r"Unknown optimizer: 'adamw'.*'sgd', 'adam', 'rmsprop'"):
        optimizers.get("adamw")
    with pytest.raises(ValueError, match="does not provide yet"):
        optimizers.get("Ftrl")
    with pytest.raises(ValueError, match="Could not interpret"):
        optimizers.get(3)


# -- PyTorch where the formulas coincide ---------------------------------------------------
#
# SGD: Keras keeps v_k = m v - lr g, PyTorch b = m b + g and w -= lr b, so
# v = -lr b and the trajectories are the same (also for Nesterov).
# Adam: PyTorch adds eps to sqrt(v) / sqrt(1 - b2^t) instead of to sqrt(v), so
# they agree only for eps = 0 (or, at step 1, for eps_torch = eps / sqrt(1 - b2)).
# RMSprop: without momentum both compute lr g / (sqrt(ms) + eps); with momentum
# TF puts eps inside the sqrt, so compare with eps = 0 there.


def _torch_run(torch, make_optimizer, w0, grads):
    param = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = make_optimizer([param])
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return param.detach().numpy()


TORCH_CASES = [
    ("sgd", lambda: SGD(0.05), lambda t, p: t.optim.SGD(p, lr=0.05)),
    ("momentum", lambda: SGD(0.05, momentum=0.9),
     lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9)),
    ("nesterov", lambda: SGD(0.02, momentum=0.7, nesterov=True),
     lambda t, p: t.optim.SGD(p, lr=0.02, momentum=0.7, nesterov=True)),
    ("adam eps=0", lambda: Adam(0.01, epsilon=0.0), lambda t, p: t.optim.Adam(p, lr=0.01, eps=0.0)),
    ("amsgrad eps=0", lambda: Adam(0.01, epsilon=0.0, amsgrad=True),
     lambda t, p: t.optim.Adam(p, lr=0.01, eps=0.0, amsgrad=True)),
    ("rmsprop", lambda: RMSprop(0.01, epsilon=1e-3),
     lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-3)),
    ("rmsprop centered", lambda: RMSprop(0.01, centered=True, epsilon=1e-3),
     lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-3, centered=True)),
    ("rmsprop momentum eps=0", lambda: RMSprop(0.01, momentum=0.8, epsilon=0.0),
     lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0, momentum=0.8)),
]


@pytest.mark.parametrize("label, ours, theirs", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_where_formulas_coincide(label, ours, theirs, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the cross-check is optional")
    w0 = rng.normal(size=(4, 3))
    grads = _grads(rng, w0.shape, steps=8)
    expected = _torch_run(torch, lambda p: theirs(torch, p), w0, grads)
    np.testing.assert_allclose(run(ours(), w0, grads), expected, rtol=1e-10, atol=1e-12)


def test_adam_differs_from_torch_by_epsilon_placement(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the cross-check is optional")
    w0 = np.zeros(5)
    grads = [np.full(5, 1e-6)]
    eps = 1e-7
    ours = run(Adam(0.001, epsilon=eps), w0, grads)
    same_eps = _torch_run(torch, lambda p: torch.optim.Adam(p, lr=0.001, eps=eps), w0, grads)
    assert not np.allclose(ours, same_eps, rtol=1e-3)
    # At step 1 TF's epsilon equals PyTorch's eps / sqrt(1 - beta_2).
    rescaled = _torch_run(torch, lambda p: torch.optim.Adam(p, lr=0.001, eps=eps / math.sqrt(0.001)),
                          w0, grads)
    np.testing.assert_allclose(ours, rescaled, rtol=1e-10)


def test_accepts_weight_objects_exposing_their_live_array():
    class Weight:
        def __init__(self):
            self.value = np.zeros(2)

        def numpy(self):
            return self.value

    weight = Weight()
    opt = SGD(0.5, momentum=0.5)
    opt.apply_gradients([(np.ones(2), weight)])
    opt.apply_gradients([(np.ones(2), weight)])
    # v1 = -0.5, w1 = -0.5; v2 = -0.25 - 0.5 = -0.75, w2 = -1.25: state was kept.
    np.testing.assert_allclose(weight.value, [-1.25, -1.25])
