"""ops.adam_update: the C backend's one-pass Adam step against the NumPy
backend (bit for bit: the same float32 operations, one rounding each), an
independent float64 formula, thread counts, and bad input.

The optimizer-level checks (Keras' update rule over several steps, AMSGrad,
state) are in tests/test_optimizers.py; they run through this op.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import fastconv as fc
from fastconv import ops
from fastconv.optimizers import Adam

HYPER = dict(alpha=0.003, beta_1=0.9, beta_2=0.999, epsilon=1e-7)


def _state(rng, n, amsgrad, dtype=np.float32):
    param = rng.standard_normal(n).astype(dtype)
    grad = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 1, n)).astype(dtype)
    m = (rng.standard_normal(n) * 0.1).astype(dtype)
    v = np.abs(rng.standard_normal(n) * 0.01).astype(dtype)
    vhat = (v * rng.uniform(0.5, 1.5, n)).astype(dtype) if amsgrad else None
    return param, grad, m, v, vhat


def _run(backend, state, **hyper):
    param, grad, m, v, vhat = (None if a is None else a.copy() for a in state)
    with fc.use_backend(backend):
        ops.adam_update(param, grad, m, v, vhat=vhat, **{**HYPER, **hyper})
    return param, m, v, vhat


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("n", [0, 1, 33, 70_001])   # 70_001: several blocks, both threads
def test_c_matches_numpy_bit_for_bit(rng, n, amsgrad):
    state = _state(rng, n, amsgrad)
    if n > 3:   # non-finite gradients and moments take NumPy's path through the formula
        state[1][:3] = [np.nan, np.inf, -np.inf]
        state[3][3] = np.nan
        if amsgrad:
            state[4][4] = np.nan
    with np.errstate(all="ignore"):   # NumPy warns about the inf - inf it computes
        c, ref = _run("c", state), _run("numpy", state)
    for name, a, b in zip(("param", "m", "v", "vhat"), c, ref):
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_matches_the_textbook_formula_in_float64(rng, amsgrad):
    param, grad, m, v, vhat = _state(rng, 1000, amsgrad)
    eps, alpha = HYPER["epsilon"], HYPER["alpha"]
    # TF's kernel forms 1 - beta in float32 (1 - 0.999f is 0.00099998713...)
    c1 = float(np.float32(1) - np.float32(HYPER["beta_1"]))
    c2 = float(np.float32(1) - np.float32(HYPER["beta_2"]))
    m64 = (1 - c1) * m.astype(np.float64) + c1 * grad
    v64 = (1 - c2) * v.astype(np.float64) + c2 * grad.astype(np.float64) ** 2
    u64 = np.maximum(vhat, v64) if amsgrad else v64
    want = param - alpha * m64 / (np.sqrt(u64) + eps)
    got, m1, v1, vhat1 = _run("c", (param, grad, m, v, vhat))
    np.testing.assert_allclose(m1, m64, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(v1, v64, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if amsgrad:
        np.testing.assert_allclose(vhat1, u64, rtol=1e-5, atol=1e-10)


def test_same_bits_for_any_thread_count(rng):
    state = _state(rng, 200_003, amsgrad=False)
    results = []
    for threads in (1, 2, 3):
        previous = fc.set_num_threads(threads)
        try:
            results.append(_run("c", state))
        finally:
            fc.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0][:3], other[:3]):
            np.testing.assert_array_equal(a, b)


def test_grad_is_not_modified_and_float64_runs_in_numpy(rng):
    param, grad, m, v, _ = _state(rng, 50, False, dtype=np.float64)
    grad_before = grad.copy()
    want = _run("numpy", (param, grad, m, v, None))
    ops.adam_update(param, grad, m, v, **HYPER)   # C backend selected, float64 arrays
    np.testing.assert_array_equal(grad, grad_before)
    for a, b in zip((param, m, v), want[:3]):
        np.testing.assert_array_equal(a, b)


def test_strided_views_are_updated_in_place(rng):
    base = [rng.standard_normal((6, 8)).astype(np.float32) for _ in range(4)]
    base[3] = np.abs(base[3])
    views = [b[:, ::2] for b in base]   # not contiguous: the NumPy path
    expected = _run("numpy", tuple(np.ascontiguousarray(x) for x in views) + (None,))
    param, grad, m, v = views
    ops.adam_update(param, grad, m, v, **HYPER)
    for got, want in zip((param, m, v), expected[:3]):
        np.testing.assert_array_equal(got, want)


def test_optimizer_on_the_c_and_numpy_backends_agrees(rng):
    for amsgrad in (False, True):
        weights = {}
        for backend in ("c", "numpy"):
            w = np.linspace(-1, 1, 4000, dtype=np.float32).reshape(40, 100)
            opt = Adam(learning_rate=0.01, amsgrad=amsgrad)
            gen = np.random.default_rng(5)
            with fc.use_backend(backend):
                for _ in range(4):
                    opt.apply_gradients([(gen.standard_normal(w.shape).astype(np.float32), w)])
            weights[backend] = w
        np.testing.assert_array_equal(weights["c"], weights["numpy"])


def _good(rng):
    param, grad, m, v, _ = _state(rng, 8, False)
    return dict(param=param, grad=grad, m=m, v=v)


@pytest.mark.parametrize("change, error, words", [
    (dict(m=[0.0] * 8), TypeError, "`m` must be a NumPy array"),
    (dict(param=np.zeros(8, np.int32)), TypeError, "`param` must have a float dtype"),
    (dict(v=np.zeros(9, np.float32)), ValueError, "`v` must have the shape of `param`"),
    (dict(m=np.zeros(8, np.float64)), TypeError, "`m` has dtype float64"),
    (dict(grad=None), TypeError, "`grad` must be a float array"),
    (dict(grad=np.zeros(8, np.int64)), TypeError, "`grad` must have a float dtype"),
    (dict(grad=np.zeros(7, np.float32)), ValueError, "`grad` must have the shape"),
    (dict(beta_1=1.0), ValueError, "`beta_1` must be in [0, 1)"),
    (dict(beta_2=-0.1), ValueError, "`beta_2` must be in [0, 1)"),
    (dict(epsilon=-1e-7), ValueError, "`epsilon` must be >= 0"),
    (dict(alpha=float("nan")), ValueError, "`alpha` must be finite"),
    (dict(alpha=True), TypeError, "`alpha` must be a number"),
    (dict(alpha="0.1"), TypeError, "`alpha` must be a number"),
])
def test_bad_input_is_named(rng, change, error, words):
    kwargs = {**_good(rng), **HYPER, **change}
    arrays = {k: a for k, a in kwargs.items() if isinstance(a, np.ndarray)}
    copies = {k: a.copy() for k, a in arrays.items()}
    with pytest.raises(error, match=re.escape(words)):
        ops.adam_update(**kwargs)
    for name, arr in arrays.items():   # refused before anything was updated
        np.testing.assert_array_equal(arr, copies[name], err_msg=name)


def test_read_only_and_aliased_arrays_are_refused(rng):
    good = _good(rng)
    frozen = good["v"].copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="`v` must be writeable"):
        ops.adam_update(good["param"], good["grad"], good["m"], frozen, **HYPER)
    with pytest.raises(ValueError, match="`m` and `v` must not share memory"):
        ops.adam_update(good["param"], good["grad"], good["m"], good["m"], **HYPER)
    with pytest.raises(ValueError, match="`param` and `vhat` must not share memory"):
        ops.adam_update(good["param"], good["grad"], good["m"], good["v"],
                        vhat=good["param"][::-1], **HYPER)
