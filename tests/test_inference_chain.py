"""Chains of an inference plan (prepared.PreparedChain, run by one C call):
bit for bit the plan's steps one by one, bound again when weights, the SIMD
path or the backend change, and the steps themselves where the C kernels
decline (NaN or infinity met, another backend, a non-contiguous input)."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from fastconv import backend, ops, prepared
from fastconv import bench_models as bm
from fastconv.layers import (BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Dropout,
                             Flatten, GlobalAveragePooling2D, Input, MaxPooling2D, ReLU)
from fastconv.models import Model

from conftest import randomize_batch_norms

pytestmark = pytest.mark.skipif(ops._kernels is None, reason="needs the C kernels")


def _plan(model):
    return next(iter(model.__dict__["_inference_plans"].values()))


def _chains(model):
    return [fn for fn, *_ in _plan(model).steps if hasattr(fn, "chained")]


def _step_by_step(model, x):
    """The plan's result with every chain run as its steps, one by one."""
    plan = _plan(model)
    values = {id(t): a for t, a in zip(plan.graph.inputs, [x])}
    for fn, inbound, out, _ in plan.steps:
        ins = [values[i] for i in inbound]
        if hasattr(fn, "chained"):
            value = ins[0]
            for step in fn.chained:
                value = step([value])
            values[out] = value
        else:
            values[out] = fn(ins)
    return values[id(plan.graph.outputs[0])]


def _model_and_input(name, batch, rng):
    """A bench network (MobileNet's architecture at a small input, to keep
    tests short) and a batch for it. Its BatchNormalization statistics are
    those of its inputs on that batch: with fresh or random ones the deeper
    layers' outputs hardly depend on the image (MobileNet's by 1e-7), which
    would hide a chain that reads the wrong image."""
    if name == "mobilenet":
        model = bm.mobilenet_v1_style((32, 32, 3), alpha=0.25, classes=10)
    else:
        model = bm._randomized(name, rng)
    x = rng.standard_normal((max(batch, 8),) + model.input_shape[1:]).astype(np.float32)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            v = Model(model.inputs, layer.input)(x)
            v = v.reshape(-1, v.shape[-1])
            c = v.shape[1]
            var = v.var(axis=0)
            layer.set_weights([1 + 0.2 * rng.standard_normal(c), 0.2 * rng.standard_normal(c),
                               v.mean(axis=0), np.maximum(var, 0.1 * var.mean()) + 1e-3])
    model.__dict__.pop("_inference_plans", None)
    return model, x[:batch]


def _small_block_model(rng):
    backend.clear_session()
    inp = Input((16, 16, 3))
    x = Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inp)
    x = BatchNormalization()(x)
    x = ReLU(6.0)(x)
    x = DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = BatchNormalization()(x)
    x = ReLU(6.0)(x)
    x = Conv2D(32, 1, use_bias=False)(x)
    x = BatchNormalization()(x)
    x = ReLU()(x)
    x = Conv2D(32, 3, padding="same", activation="relu")(x)   # Winograd, prepared
    x = MaxPooling2D(2)(x)                                     # fused into it
    x = GlobalAveragePooling2D()(x)
    x = Dropout(0.5)(x)
    out = Dense(7, activation="softmax")(x)
    return randomize_batch_norms(Model(inp, out), rng)


@pytest.mark.parametrize("name", ["seed", "mobilenet", "resnet20", "mnist_convnet"])
@pytest.mark.parametrize("batch", [1, 3])
def test_bench_models_chain_bit_for_bit(rng, name, batch):
    model, x = _model_and_input(name, batch, rng)
    first = model(x)            # makes the plan, running its steps one by one
    if batch > 1:
        assert np.ptp(first, axis=0).max() > 1e-3   # outputs that tell the images apart
    chained = model(x)
    assert _chains(model), "no chain in the plan"
    np.testing.assert_array_equal(chained, first)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    np.testing.assert_array_equal(_step_by_step(model, x), first)
    np.testing.assert_allclose(chained, model.forward(x, training=False), rtol=1e-4,
                               atol=1e-6)


def test_chain_covers_the_block_and_runs_in_c(rng):
    model = _small_block_model(rng)
    x = rng.standard_normal((2, 16, 16, 3)).astype(np.float32)
    model(x)
    (chain_step,) = _chains(model)
    # conv+BN+ReLU6, depthwise+BN+ReLU6, 1x1+BN+ReLU, conv+max pool, GAP, Dropout, Dense
    assert len(chain_step.chained) == 7
    assert len(_plan(model).steps) == 1
    chain_step([x])   # binds the chain
    assert chain_step.chain(x) is not None   # the C call, not the steps
    np.testing.assert_array_equal(model(x), _step_by_step(model, x))


def test_chain_sees_weight_changes(rng):
    model = _small_block_model(rng)
    x = rng.standard_normal((2, 16, 16, 3)).astype(np.float32)
    before = model(x)
    model(x)
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 2, bias + 1])
    after = model(x)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, _step_by_step(model, x))
    # a folded layer's weight written in place through the array taken again
    conv = model.layers[1]
    conv.kernel.numpy()[...] *= -1
    np.testing.assert_array_equal(model(x), _step_by_step(model, x))
    bn = model.layers[2]
    bn.moving_mean.assign(bn.moving_mean.numpy() + 0.5)
    changed = model(x)
    np.testing.assert_array_equal(changed, _step_by_step(model, x))
    np.testing.assert_allclose(changed, model.forward(x, training=False), rtol=1e-4, atol=1e-6)


def test_chain_follows_the_simd_path(rng):
    model = _small_block_model(rng)
    x = rng.standard_normal((3, 16, 16, 3)).astype(np.float32)
    kernels = ops._kernels
    start = kernels.get_simd()
    model(x)   # makes the plan
    try:
        for simd in kernels.simd_supported():
            kernels.set_simd(simd)
            np.testing.assert_array_equal(model(x), _step_by_step(model, x))
            # rebound to kernels prepared for this path: they run in C
            assert _chains(model)[0].chain(x) is not None, simd
    finally:
        kernels.set_simd(start)


def test_chain_hands_nan_and_other_backends_to_the_steps(rng):
    model = _small_block_model(rng)
    x = rng.standard_normal((2, 16, 16, 3)).astype(np.float32)
    model(x)
    bad = x.copy()
    bad[0, 3, 5, 1] = np.nan
    bad[1, 7, 2, 0] = np.inf
    np.testing.assert_array_equal(model(bad), _step_by_step(model, bad))   # NaNs placed alike
    assert np.isnan(model(bad)[0]).all() and not np.isnan(model(x)).any()
    with fc.use_backend("numpy"):
        np.testing.assert_allclose(model(x), model.forward(x, training=False), rtol=1e-4,
                                   atol=1e-6)


def test_chain_results_do_not_depend_on_threads(rng):
    model = bm._randomized("seed", rng)
    x = rng.standard_normal((5, 28, 28, 1)).astype(np.float32)
    start = fc.get_num_threads()
    try:
        fc.set_num_threads(1)
        model(x)
        one = model(x)
        fc.set_num_threads(2)
        np.testing.assert_array_equal(model(x), one)
    finally:
        fc.set_num_threads(start)


def _two_ops():
    conv = prepared.prepare_conv2d((2, 8, 8, 3), np.float32, (3, 3, 3, 4), True, 1, "same",
                                   activation="relu")
    pool = prepared.prepare_pool2d("max", conv.out_shape, np.float32, 2)
    return conv, pool


def test_prepared_chain_is_the_ops_one_after_the_other(rng):
    conv, pool = _two_ops()
    chain = prepared.PreparedChain([conv, pool])
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    x_before = x.copy()
    with pytest.raises(ValueError, match="bind"):
        chain(x)
    chain.bind(0, kernel, bias)
    chain.bind(1, None, None)
    y = chain(x)
    np.testing.assert_array_equal(y, pool(conv(x, kernel, bias)))
    np.testing.assert_array_equal(x, x_before)
    assert chain(np.asfortranarray(x)) is None          # not C-contiguous: the ops' business
    assert chain(x.astype(np.float64)) is None
    assert chain(x[:1]) is None
    with fc.use_backend("numpy"):
        assert chain(x) is None


def test_prepared_chain_refuses_what_it_cannot_run(rng):
    conv, pool = _two_ops()
    with pytest.raises(ValueError, match="two or more"):
        prepared.PreparedChain([conv])
    with pytest.raises(ValueError, match="not the next op's input"):
        prepared.PreparedChain([pool, conv])
    f64 = prepared.prepare_pool2d("max", conv.out_shape, np.float64, 2)
    with pytest.raises(ValueError, match="chain_step"):
        prepared.PreparedChain([conv, f64])
    chain = prepared.PreparedChain([conv, pool])
    with pytest.raises(ValueError, match="weights of shapes"):
        chain.bind(0, np.zeros((3, 3, 3, 5), np.float32), None)
    with pytest.raises(ValueError, match="weights of shapes"):
        chain.bind(0, np.zeros((3, 3, 3, 4)), np.zeros(4))


def test_chain_called_from_threads_at_once(rng):
    import threading
    model = _small_block_model(rng)
    xs = [rng.standard_normal((2, 16, 16, 3)).astype(np.float32) for _ in range(4)]
    model(xs[0])
    expected = [_step_by_step(model, x) for x in xs]
    errors = []

    def work(k):
        try:
            for _ in range(30):
                np.testing.assert_array_equal(model(xs[k]), expected[k])
        except Exception as exc:   # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("name, light_bytes", [
    ("seed", None), ("resnet20", None), ("mnist_convnet", None), ("mobilenet", None),
    ("mobilenet", 600)])   # conv1 (864 bytes) heavy, then light and heavy runs by turns
def test_chain_in_slices_of_the_batch_bit_for_bit(rng, name, light_bytes, monkeypatch):
    # slices of about 2 images through the light steps (13 = 2 * 6 + 1: a short last one)
    if light_bytes is not None:
        monkeypatch.setattr(prepared, "SLICE_WEIGHT_BYTES", light_bytes)
    model, x = _model_and_input(name, 13, rng)
    first = model(x)
    assert np.ptp(first, axis=0).max() > 1e-3
    widest = max(int(np.prod(op.out_shape[1:])) for chain_step in _chains(model)
                 for op in chain_step.chain.ops[:-1])
    monkeypatch.setattr(prepared, "SLICE_BYTES", 8 * widest)
    model.__dict__.pop("_inference_plans")   # plans made again, under the small slices
    model(x)
    chains = [step.chain for step in _chains(model)]
    assert any(images < 13 for chain in chains for _, _, images in chain._runs)
    if light_bytes is not None:   # a run in slices after a whole-batch one
        assert any(images < 13 for chain in chains for _, _, images in chain._runs[1:])
    np.testing.assert_array_equal(model(x), first)
    np.testing.assert_array_equal(_step_by_step(model, x), first)
    for chain in chains:   # every light step in slices, each run on its own
        covered = [i for first_step, stop, _ in chain._runs for i in range(first_step, stop)]
        assert covered == list(range(len(chain.ops)))
