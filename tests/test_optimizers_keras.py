"""Adagrad, Adadelta, Adamax, Nadam and the learning-rate schedules: against
Keras 3 (torch backend) on the same weights and gradients where its formulas
are tf.keras 2.4's, and against independent float64 references where they
differ (Adagrad's epsilon, Nadam's momentum schedule)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from keras_compare import import_keras, max_relative_error, numpy_of

from fastconv import optimizers
from fastconv.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, Nadam, schedules

STEPS = 5
RTOL = 1e-6


def _problem(rng, shape=(7, 5)):
    w0 = rng.standard_normal(shape).astype(np.float32)
    grads = [(rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 1, size=shape))
             .astype(np.float32) for _ in range(STEPS)]
    return w0, grads


def _run_fastconv(opt, w0, grads):
    w = w0.copy()
    for g in grads:
        opt.apply_gradients([(g, w)])
    return w


def _run_keras(keras, opt, w0, grads):
    var = keras.Variable(w0.copy())
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    return numpy_of(var)


# (fastconv optimizer, Keras 3 class name and kwargs): the same rule in both
SAME_RULE = [
    (lambda: Adagrad(learning_rate=0.1, epsilon=0.0), "Adagrad",
     dict(learning_rate=0.1, epsilon=0.0)),
    (lambda: Adagrad(learning_rate=0.05, initial_accumulator_value=0.5, epsilon=0.0),
     "Adagrad", dict(learning_rate=0.05, initial_accumulator_value=0.5, epsilon=0.0)),
    (lambda: Adadelta(learning_rate=1.0), "Adadelta", dict(learning_rate=1.0)),
    (lambda: Adadelta(learning_rate=0.5, rho=0.8, epsilon=1e-3), "Adadelta",
     dict(learning_rate=0.5, rho=0.8, epsilon=1e-3)),
    (lambda: Adamax(learning_rate=0.02), "Adamax", dict(learning_rate=0.02)),
    (lambda: Adamax(learning_rate=0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-3), "Adamax",
     dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-3)),
    # Keras 3's momentum schedule is 0.96**t: tf.keras 2.4's with schedule_decay 1
    (lambda: Nadam(learning_rate=0.01, schedule_decay=1.0), "Nadam",
     dict(learning_rate=0.01)),
    (lambda: Nadam(learning_rate=0.002, beta_1=0.8, beta_2=0.99, epsilon=1e-4,
                   schedule_decay=1.0), "Nadam",
     dict(learning_rate=0.002, beta_1=0.8, beta_2=0.99, epsilon=1e-4)),
]


# Keras 3's torch Nadam goes through np.array(tensor), which NumPy 2 flags
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("ours,keras_name,keras_kw", SAME_RULE,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(SAME_RULE)])
def test_steps_match_keras3(rng, ours, keras_name, keras_kw):
    keras = import_keras()
    w0, grads = _problem(rng)
    got = _run_fastconv(ours(), w0, grads)
    want = _run_keras(keras, getattr(keras.optimizers, keras_name)(**keras_kw), w0, grads)
    assert max_relative_error(got, want) <= RTOL
    assert max_relative_error(got, w0) > 1e-4   # the steps moved the weights


@pytest.mark.parametrize("clip", [dict(clipnorm=0.5), dict(clipvalue=0.3),
                                  dict(global_clipnorm=0.7)], ids=lambda c: next(iter(c)))
def test_clipping_matches_keras3(rng, clip):
    keras = import_keras()
    w0, grads = _problem(rng)
    w1, grads1 = _problem(rng, (3,))
    ours = Adamax(learning_rate=0.05, **clip)
    theirs = keras.optimizers.Adamax(learning_rate=0.05, **clip)
    a, b = w0.copy(), w1.copy()
    va, vb = keras.Variable(w0.copy()), keras.Variable(w1.copy())
    for g, h in zip(grads, grads1):
        ours.apply_gradients([(g, a), (h, b)])
        theirs.apply_gradients([(keras.ops.convert_to_tensor(g), va),
                                (keras.ops.convert_to_tensor(h), vb)])
    assert max_relative_error(a, numpy_of(va)) <= RTOL
    assert max_relative_error(b, numpy_of(vb)) <= RTOL


# -- where Keras 3 is not tf.keras 2.4: independent float64 references ----------------

def test_adagrad_adds_epsilon_outside_the_square_root_as_tf24(rng):
    w0, grads = _problem(rng)
    lr, eps, init = 0.1, 0.5, 0.1     # a large epsilon makes the placement visible
    w, acc = w0.astype(np.float64), np.full(w0.shape, init)
    for g in grads:
        acc = acc + g.astype(np.float64) ** 2
        w = w - lr * g / (np.sqrt(acc) + eps)
    got = _run_fastconv(Adagrad(learning_rate=lr, epsilon=eps), w0, grads)
    assert max_relative_error(got, w) <= RTOL
    inside = w0.astype(np.float64)
    acc = np.full(w0.shape, init)
    for g in grads:
        acc = acc + g.astype(np.float64) ** 2
        inside = inside - lr * g / np.sqrt(acc + eps)
    assert max_relative_error(got, inside) > 1e-3


def test_nadam_default_momentum_schedule_is_tf24s(rng):
    """mu_t = beta_1 (1 - 0.5 * 0.96 ** (0.004 t)), the learning rate undecayed."""
    w0, grads = _problem(rng)
    lr, b1, b2, eps, sd = 0.01, 0.9, 0.999, 1e-7, 0.004
    w, m, v, prod = w0.astype(np.float64), 0.0, 0.0, 1.0
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        mu, mu_next = (b1 * (1 - 0.5 * 0.96 ** (sd * s)) for s in (t, t + 1))
        prod *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_bar = (1 - mu) * g / (1 - prod) + mu_next * m / (1 - prod * mu_next)
        w = w - lr * m_bar / (np.sqrt(v / (1 - b2 ** t)) + eps)
    opt = Nadam(learning_rate=lr)
    got = _run_fastconv(opt, w0, grads)
    assert max_relative_error(got, w) <= RTOL
    assert opt.get_config()["decay"] == 0.004
    assert math.isclose(opt.momentum_cache, prod, rel_tol=1e-12)


def test_nadam_refuses_schedules_as_tf24_does():
    with pytest.raises(ValueError, match="does not support learning-rate schedules"):
        Nadam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9))
    Nadam(learning_rate=lambda step: 0.01)   # a plain callable is fine


# -- schedules ----------------------------------------------------------------------

SCHEDULES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5,
                              staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[3, 10, 10, 20], values=[1.0, 0.5, 0.3, 0.2,
                                                                        0.1])),
    ("InverseTimeDecay", dict(initial_learning_rate=0.2, decay_steps=4, decay_rate=0.7)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.2, decay_steps=4, decay_rate=0.7,
                              staircase=True)),
    ("PolynomialDecay", dict(initial_learning_rate=0.3, decay_steps=12)),
    ("PolynomialDecay", dict(initial_learning_rate=0.3, decay_steps=12, end_learning_rate=0.01,
                             power=2.0, cycle=True)),
    ("CosineDecay", dict(initial_learning_rate=0.4, decay_steps=15)),
    ("CosineDecay", dict(initial_learning_rate=0.4, decay_steps=15, alpha=0.1)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.5, first_decay_steps=5)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.5, first_decay_steps=4, t_mul=1.0,
                                 m_mul=0.8, alpha=0.05)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.5, first_decay_steps=3, t_mul=1.5,
                                 m_mul=0.9)),
]


@pytest.mark.parametrize("name,kw", SCHEDULES, ids=[f"{s[0]}-{i}" for i, s in
                                                      enumerate(SCHEDULES)])
def test_schedules_match_keras3(name, kw):
    keras = import_keras()
    ours = getattr(schedules, name)(**kw)
    theirs = getattr(keras.optimizers.schedules, name)(**kw)
    got = np.array([ours(step) for step in range(60)])
    want = np.array([float(theirs(step).item()) for step in range(60)])
    # Keras evaluates in float32: near a cosine's zero its relative error grows
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6 * kw.get("initial_learning_rate",
                                                                        1.0))
    assert len(set(np.round(got, 9))) > 1     # not a constant


def test_a_schedule_drives_an_optimizer_as_in_keras3(rng):
    keras = import_keras()
    w0, grads = _problem(rng)
    kw = dict(initial_learning_rate=0.1, decay_steps=2, decay_rate=0.3)
    got = _run_fastconv(SGD(learning_rate=schedules.ExponentialDecay(**kw), momentum=0.9),
                        w0, grads)
    want = _run_keras(keras, keras.optimizers.SGD(
        learning_rate=keras.optimizers.schedules.ExponentialDecay(**kw), momentum=0.9),
        w0, grads)
    assert max_relative_error(got, want) <= RTOL


def test_schedule_configs_round_trip_through_the_optimizer():
    lr = schedules.CosineDecayRestarts(0.5, 10, t_mul=1.5, m_mul=0.9, alpha=0.01)
    opt = Adam(learning_rate=lr)
    config = optimizers.serialize(opt)
    assert config["config"]["learning_rate"] == {"class_name": "CosineDecayRestarts",
                                                 "config": lr.get_config()}
    clone = optimizers.deserialize(config)
    assert isinstance(clone.learning_rate, schedules.CosineDecayRestarts)
    assert [clone.learning_rate(s) for s in range(40)] == [lr(s) for s in range(40)]


def test_a_schedule_returning_nan_stops_the_step_and_keeps_the_weights():
    w = np.ones(4, np.float32)
    opt = SGD(learning_rate=lambda step: 0.1 if step < 2 else float("nan"))
    for _ in range(2):
        opt.apply_gradients([(np.ones(4, np.float32), w)])
    before = w.copy()
    with pytest.raises(ValueError, match="learning rate for step 2 is nan"):
        opt.apply_gradients([(np.ones(4, np.float32), w)])
    np.testing.assert_array_equal(w, before)
    assert opt.iterations == 2


@pytest.mark.parametrize("make,error", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), "decay_steps"),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), "one more entry"),
    (lambda: schedules.PiecewiseConstantDecay([5, 2], [0.1, 0.2, 0.3]), "non-decreasing"),
    (lambda: schedules.CosineDecay(float("nan"), 10), "initial_learning_rate"),
    (lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0), "t_mul"),
    (lambda: Adagrad(initial_accumulator_value=0.0), "initial_accumulator_value"),
    (lambda: Adadelta(rho=1.5), "rho"),
    (lambda: Adamax(beta_1=1.0), "beta_1"),
    (lambda: Nadam(beta_2=-0.1), "beta_2"),
])
def test_bad_hyperparameters_name_the_argument(make, error):
    with pytest.raises(ValueError, match=error):
        make()


def test_a_non_number_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="decay_rate"):
        schedules.ExponentialDecay(0.1, 10, "fast")


def test_names_resolve_with_tf24_defaults():
    defaults = {"adagrad": dict(learning_rate=0.001, initial_accumulator_value=0.1,
                                epsilon=1e-7),
                "adadelta": dict(learning_rate=0.001, rho=0.95, epsilon=1e-7),
                "adamax": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
                "nadam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                              decay=0.004)}
    for name, want in defaults.items():
        config = optimizers.get(name).get_config()
        assert {k: config[k] for k in want} == want, name
        clone = optimizers.deserialize(optimizers.serialize(optimizers.get(name)))
        assert clone.get_config() == config
    with pytest.raises(ValueError, match="does not provide yet"):
        optimizers.get("Ftrl")
