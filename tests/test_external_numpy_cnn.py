"""A NumPy CNN code base as users bring it (tests/data/numpy_cnn: course-style
NCHW layers with naive loops, caches and numeric gradient checks), checked by
its own tests, first as written, then with each of its conv/pool forward and
backward functions replaced by ONE fastconv call (``data_format='NCHW'``,
``kernel_format='OIHW'``, ``padding=pad``, ``strides=stride``): no transposes,
pads or casts in the glue.

Its checks run in float64, on both backends; the same glue also runs in
float32 on the 'c' backend against the naive code.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fastconv as fc
from conftest import assert_close

DATA = Path(__file__).parent / "data" / "numpy_cnn"

# ---------------------------------------------------------------------------
# The glue: one fastconv call each


def conv_forward_fastconv(x, w, b, conv_param):
    out = fc.conv2d(x, w, b, strides=conv_param['stride'], padding=conv_param['pad'],
                    data_format='NCHW', kernel_format='OIHW')
    return out, (x, w, b, conv_param)


def conv_backward_fastconv(dout, cache):
    x, w, b, conv_param = cache
    return fc.conv2d_backward(dout, x, w, strides=conv_param['stride'],
                              padding=conv_param['pad'], data_format='NCHW',
                              kernel_format='OIHW')


def max_pool_forward_fastconv(x, pool_param):
    out = fc.max_pool2d(x, (pool_param['pool_height'], pool_param['pool_width']),
                        pool_param['stride'], data_format='NCHW')
    return out, (x, pool_param)


def max_pool_backward_fastconv(dout, cache):
    x, pool_param = cache
    return fc.max_pool2d_backward(dout, x, (pool_param['pool_height'], pool_param['pool_width']),
                                  pool_param['stride'], data_format='NCHW')


SWAPS = {
    "conv_forward_naive": conv_forward_fastconv,
    "conv_backward_naive": conv_backward_fastconv,
    "max_pool_forward_naive": max_pool_forward_fastconv,
    "max_pool_backward_naive": max_pool_backward_fastconv,
}


def _load(name, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, DATA / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)   # cnn.py does `import layers`
    spec.loader.exec_module(module)
    return module


def _course(monkeypatch, swapped):
    layers = _load("layers", monkeypatch)
    course = SimpleNamespace(layers=layers, gc=_load("gradient_check", monkeypatch),
                             cnn=_load("cnn", monkeypatch),
                             naive={name: getattr(layers, name) for name in SWAPS})
    if swapped:
        for name, fn in SWAPS.items():
            monkeypatch.setattr(layers, name, fn)
    return course


@pytest.fixture(params=["naive", "fastconv-numpy", "fastconv-c"])
def course(request, monkeypatch):
    swapped = request.param != "naive"
    backend = request.param.split("-")[1] if swapped else "numpy"
    with fc.use_backend(backend):
        yield _course(monkeypatch, swapped)


# ---------------------------------------------------------------------------
# The code base's own checks (float64)


def test_conv_forward_known_answer(course):
    L = course.layers
    x = np.ones((1, 1, 3, 3))
    w = np.ones((1, 1, 3, 3))
    b = np.array([0.5])
    out, _ = L.conv_forward_naive(x, w, b, {'stride': 1, 'pad': 1})
    correct_out = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) + 0.5
    assert out.shape == (1, 1, 3, 3)
    assert course.gc.rel_error(out[0, 0], correct_out) < 1e-12
    out, _ = L.conv_forward_naive(x, w, b, {'stride': 2, 'pad': 1})
    assert course.gc.rel_error(out[0, 0], np.full((2, 2), 4.5)) < 1e-12


def test_conv_forward_matches_naive(course):
    L = course.layers
    rng = np.random.RandomState(231)
    x = rng.randn(2, 3, 7, 8)
    w = rng.randn(4, 3, 3, 3)
    b = rng.randn(4)
    for conv_param in ({'stride': 2, 'pad': 1}, {'stride': 1, 'pad': 0},
                       {'stride': 3, 'pad': 2}):
        out, _ = L.conv_forward_naive(x, w, b, conv_param)
        naive_out, _ = course.naive["conv_forward_naive"](x, w, b, conv_param)
        assert out.shape == naive_out.shape
        assert course.gc.rel_error(out, naive_out) < 1e-9


# Elementwise relative errors: entries that cancel to nearly 0 (the strided
# case here) carry the finite differences' rounding; these bounds are the
# naive code's own.
@pytest.mark.parametrize("conv_param,tol", [({'stride': 1, 'pad': 1}, 1e-8),
                                            ({'stride': 2, 'pad': 1}, 1e-6),
                                            ({'stride': 1, 'pad': 0}, 1e-8)])
def test_conv_backward_numeric(course, conv_param, tol):
    L, gc = course.layers, course.gc
    rng = np.random.RandomState(231)
    x = rng.randn(2, 3, 5, 5)
    w = rng.randn(3, 3, 3, 3)
    b = rng.randn(3)
    out, cache = L.conv_forward_naive(x, w, b, conv_param)
    dout = rng.randn(*out.shape)
    dx_num = gc.eval_numerical_gradient_array(
        lambda x: L.conv_forward_naive(x, w, b, conv_param)[0], x, dout)
    dw_num = gc.eval_numerical_gradient_array(
        lambda w: L.conv_forward_naive(x, w, b, conv_param)[0], w, dout)
    db_num = gc.eval_numerical_gradient_array(
        lambda b: L.conv_forward_naive(x, w, b, conv_param)[0], b, dout)
    dx, dw, db = L.conv_backward_naive(dout, cache)
    assert gc.rel_error(dx, dx_num) < tol
    assert gc.rel_error(dw, dw_num) < tol
    assert gc.rel_error(db, db_num) < tol


def test_max_pool_forward_known_answer(course):
    x = np.linspace(-0.3, 0.4, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    out, _ = course.layers.max_pool_forward_naive(
        x, {'pool_width': 2, 'pool_height': 2, 'stride': 2})
    # increasing values: each window's maximum is its bottom-right cell
    assert course.gc.rel_error(out, x[:, :, 1::2, 1::2]) < 1e-12


@pytest.mark.parametrize("pool_param", [{'pool_height': 2, 'pool_width': 2, 'stride': 2},
                                        {'pool_height': 3, 'pool_width': 2, 'stride': 1}])
def test_max_pool_backward_numeric(course, pool_param):
    L, gc = course.layers, course.gc
    rng = np.random.RandomState(231)
    x = rng.randn(2, 2, 8, 7)
    out, cache = L.max_pool_forward_naive(x, pool_param)
    dout = rng.randn(*out.shape)
    dx_num = gc.eval_numerical_gradient_array(
        lambda x: L.max_pool_forward_naive(x, pool_param)[0], x, dout)
    dx = L.max_pool_backward_naive(dout, cache)
    assert gc.rel_error(dx, dx_num) < 1e-8


def test_conv_relu_pool_numeric(course):
    L, gc = course.layers, course.gc
    rng = np.random.RandomState(231)
    x = rng.randn(2, 2, 6, 6)
    w = rng.randn(3, 2, 3, 3)
    b = rng.randn(3)
    dout = rng.randn(2, 3, 3, 3)
    conv_param = {'stride': 1, 'pad': 1}
    pool_param = {'pool_height': 2, 'pool_width': 2, 'stride': 2}
    out, cache = L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    dx, dw, db = L.conv_relu_pool_backward(dout, cache)
    dx_num = gc.eval_numerical_gradient_array(
        lambda x: L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)[0], x, dout)
    dw_num = gc.eval_numerical_gradient_array(
        lambda w: L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)[0], w, dout)
    db_num = gc.eval_numerical_gradient_array(
        lambda b: L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)[0], b, dout)
    assert gc.rel_error(dx_num, dx) < 1e-7
    assert gc.rel_error(dw_num, dw) < 1e-8
    assert gc.rel_error(db_num, db) < 1e-8


def test_three_layer_convnet(course):
    gc = course.gc
    num_inputs, input_dim, num_classes = 2, (2, 6, 6), 3
    rng = np.random.RandomState(231)
    X = rng.randn(num_inputs, *input_dim)
    y = rng.randint(num_classes, size=num_inputs)

    model = course.cnn.ThreeLayerConvNet(input_dim=input_dim, num_filters=2, filter_size=3,
                                         hidden_dim=4, num_classes=num_classes,
                                         weight_scale=1e-3, dtype=np.float64)
    loss, _ = model.loss(X, y)
    assert abs(loss - np.log(num_classes)) < 1e-3      # sanity: chance level

    model = course.cnn.ThreeLayerConvNet(input_dim=input_dim, num_filters=2, filter_size=3,
                                         hidden_dim=4, num_classes=num_classes,
                                         weight_scale=1e-1, reg=0.1, dtype=np.float64)
    loss, grads = model.loss(X, y)
    for name in sorted(grads):
        f = lambda _: model.loss(X, y)[0]  # noqa: E731
        grad_num = gc.eval_numerical_gradient(f, model.params[name], h=1e-6)
        assert gc.rel_error(grad_num, grads[name]) < 1e-6, name


# ---------------------------------------------------------------------------
# The same glue in float32 on the 'c' backend (NCHW/OIHW: the reference fallback)


def test_glue_in_float32_on_the_c_backend_matches_the_naive_code(monkeypatch):
    course = _course(monkeypatch, swapped=True)
    L, naive = course.layers, course.naive
    rng = np.random.RandomState(231)
    x = rng.randn(2, 3, 9, 8).astype(np.float32)
    w = rng.randn(4, 3, 3, 3).astype(np.float32)
    b = rng.randn(4).astype(np.float32)
    with fc.use_backend("c"):
        for conv_param in ({'stride': 1, 'pad': 1}, {'stride': 2, 'pad': 2}):
            out, cache = L.conv_forward_naive(x, w, b, conv_param)
            want, want_cache = naive["conv_forward_naive"](x.astype(np.float64), w, b, conv_param)
            assert out.dtype == np.float32
            assert_close(out, want, 1e-5, "conv forward")
            dout = rng.randn(*out.shape).astype(np.float32)
            for got, exp, name in zip(L.conv_backward_naive(dout, cache),
                                      naive["conv_backward_naive"](dout, want_cache),
                                      ("dx", "dw", "db")):
                assert got.dtype == np.float32
                assert_close(got, exp, 1e-5, name)
        pool_param = {'pool_height': 2, 'pool_width': 3, 'stride': 2}
        out, cache = L.max_pool_forward_naive(x, pool_param)
        want, want_cache = naive["max_pool_forward_naive"](x, pool_param)
        np.testing.assert_array_equal(out, want)
        dout = rng.randn(*out.shape).astype(np.float32)
        np.testing.assert_array_equal(L.max_pool_backward_naive(dout, cache),
                                      naive["max_pool_backward_naive"](dout, want_cache))
