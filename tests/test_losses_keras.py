"""MeanAbsoluteError, Huber, Hinge, KLDivergence, CosineSimilarity (and the
existing MSE through the shared elementwise base): values against Keras 3
(torch backend), whose formulas are tf.keras 2.4's, and gradients against
central differences in float64."""
from __future__ import annotations

import numpy as np
import pytest

from keras_compare import import_keras
from test_losses import central_difference as _central_difference

from fastconv import losses


def _case(rng, name):
    shape = (5, 4)
    if name in ("KLDivergence",):
        t = rng.dirichlet(np.ones(4), size=5)
        p = rng.dirichlet(np.ones(4), size=5) * 0.9 + 0.02
    elif name == "Hinge":
        t = rng.integers(0, 2, size=shape).astype(float)      # 0/1: mapped to -1/1
        p = rng.standard_normal(shape)
    else:
        t, p = rng.standard_normal(shape), rng.standard_normal(shape) * 2
    return t, p


CASES = [("MeanSquaredError", {}, "mean_squared_error"),
         ("MeanAbsoluteError", {}, "mae"),
         ("Huber", {}, "huber"),
         ("Huber", {"delta": 0.3}, None),
         ("Hinge", {}, "hinge"),
         ("KLDivergence", {}, "kld"),
         ("CosineSimilarity", {}, "cosine_similarity")]


@pytest.mark.parametrize("name,kw,alias", CASES, ids=[f"{c[0]}-{i}" for i, c in
                                                      enumerate(CASES)])
def test_values_match_keras3_and_gradients_match_differences(rng, name, kw, alias):
    keras = import_keras()
    t, p = _case(rng, name)
    weights = rng.uniform(0.2, 2.0, size=5)
    ours = getattr(losses, name)(**kw)
    theirs = getattr(keras.losses, name)(**kw)
    for w in (None, weights):
        want = float(theirs(t.astype(np.float32), p.astype(np.float32),
                            sample_weight=None if w is None else w.astype(np.float32)))
        got = ours(t.astype(np.float32), p.astype(np.float32), w)
        assert got == pytest.approx(want, rel=2e-6, abs=1e-7)
        value, grad = ours.value_and_gradient(t, p, w)
        numeric = _central_difference(lambda y: ours(t, y, w), p)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    if alias is not None:
        assert type(losses.get(alias)) is type(ours)
    assert type(losses.get(name)) is type(ours)


def test_one_value_per_sample_and_the_functional_forms(rng):
    t, p = rng.standard_normal(6), rng.standard_normal(6)
    for fn, cls in ((losses.mean_absolute_error, losses.MeanAbsoluteError),
                    (losses.huber, losses.Huber), (losses.hinge, losses.Hinge)):
        value, grad = fn(t, p)
        assert grad.shape == p.shape
        assert value == cls()(t, p)
        np.testing.assert_allclose(grad, _central_difference(lambda y: cls()(t, y), p),
                                   rtol=1e-6, atol=1e-9)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="delta"):
        losses.Huber(delta=0)
    with pytest.raises(ValueError, match="axis=-1"):
        losses.CosineSimilarity(axis=0)
    with pytest.raises(ValueError, match="no logits form"):
        losses.Hinge().value_and_gradient([1.0], np.array([0.5]), from_logits=True)
    with pytest.raises(ValueError, match="y_true has shape"):
        losses.MeanAbsoluteError()(np.zeros((2, 3)), np.zeros((2, 4)))
