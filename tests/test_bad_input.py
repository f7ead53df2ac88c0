"""Issue 7: no input a user can pass makes fastconv crash, hang, read or write
out of bounds, or silently return a wrong answer.

Complements tests/test_validation.py (the conv2d arguments, a few layouts),
tests/test_layers.py and tests/test_models.py: here are dense and pooling
arguments, every op on unusual memory layouts, empty and zero-size problems,
NaN/Inf propagation, sizes that overflow (in child processes), thread counts,
and the layer/model API (constructor arguments, input dtypes, fit, set_weights,
save_weights/load_weights under failures). Every refusal is a ValueError or
TypeError naming the argument; inputs are never modified.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile

import numpy as np
import pytest

import fastconv as fc
from fastconv import backend as fc_backend
from fastconv.models import saving as fc_saving
from fastconv.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
from fastconv.models import Model, Sequential
from reliability import SANITIZED, result_lines, run_python

BACKENDS = ["c", "numpy"]
X = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3) / 10
K = np.ones((3, 3, 3, 4), np.float32)
XD = np.arange(12, dtype=np.float32).reshape(3, 4)
KD = np.ones((4, 5), np.float32)

BAD_DTYPES = [np.int64, np.int8, np.uint16, bool, np.float16, np.complex64, np.complex128,
              "U3", "S3", object, "datetime64[s]"]


def on(backend, fn, *args, **kwargs):
    with fc.use_backend(backend):
        return fn(*args, **kwargs)


def quiet_numpy(fn, *args, **kwargs):
    """The NumPy backend, with NumPy's own NaN/overflow warnings silenced."""
    with fc.use_backend("numpy"), np.errstate(all="ignore"):
        return fn(*args, **kwargs)


def as_dtype(array, dtype):
    if np.dtype(dtype).kind == "M":
        return np.zeros(array.shape, dtype)
    return array.astype(dtype)


# ---------------------------------------------------------------------------
# Dense: not covered by test_validation.py

@pytest.mark.parametrize("backend", BACKENDS)
class TestDenseArguments:
    def test_rank(self, backend):
        with pytest.raises(ValueError, match=r"`x` must be a 2-D array.*got shape \(4,\)"):
            on(backend, fc.dense, XD[0], KD)
        with pytest.raises(ValueError, match=r"`x` must be a 2-D array"):
            on(backend, fc.dense, XD[None], KD)
        with pytest.raises(ValueError, match=r"`kernel` must be a 2-D array"):
            on(backend, fc.dense, XD, KD[None])
        with pytest.raises(ValueError, match=r"`bias` must be a 1-D array"):
            on(backend, fc.dense, XD, KD, np.ones((5, 1), np.float32))
        with pytest.raises(ValueError, match=r"`dy` must be a 2-D array"):
            on(backend, fc.dense_backward, np.ones(5, np.float32), XD, KD)

    @pytest.mark.parametrize("dtype", BAD_DTYPES)
    def test_dtype(self, backend, dtype):
        with pytest.raises(TypeError, match=r"`x` must have dtype float32"):
            on(backend, fc.dense, as_dtype(XD, dtype), KD)
        with pytest.raises(TypeError, match=r"`kernel` must have dtype float32"):
            on(backend, fc.dense, XD, as_dtype(KD, dtype))
        with pytest.raises(TypeError, match=r"`dy` must have dtype float32"):
            on(backend, fc.dense_backward, as_dtype(np.ones((3, 5)), dtype), XD, KD)

    def test_shapes_that_do_not_fit(self, backend):
        with pytest.raises(ValueError, match=r"`kernel` expects 5 input features .* `x` has 4"):
            on(backend, fc.dense, XD, np.ones((5, 5), np.float32))
        with pytest.raises(ValueError, match=r"`bias` must have shape \(5,\)"):
            on(backend, fc.dense, XD, KD, np.ones(4, np.float32))
        with pytest.raises(ValueError, match=r"`dy` must have the output's shape \(3, 5\)"):
            on(backend, fc.dense_backward, np.ones((3, 4), np.float32), XD, KD)
        with pytest.raises(ValueError, match=r"`dy` must have the output's shape \(3, 5\)"):
            on(backend, fc.dense_backward, np.ones((5, 3), np.float32), XD, KD)

    @pytest.mark.parametrize("activation", ["tanh", "relu7", 0, np.float32(1)])
    def test_activation(self, backend, activation):
        with pytest.raises(ValueError, match="`activation`"):
            on(backend, fc.dense, XD, KD, activation=activation)

    def test_strings_none_and_ragged(self, backend):
        with pytest.raises(TypeError, match="`x`"):
            on(backend, fc.dense, "x", KD)
        with pytest.raises(TypeError, match="`kernel`"):
            on(backend, fc.dense, XD, None)
        with pytest.raises(TypeError, match="`x`"):
            on(backend, fc.dense, [[1.0, 2.0], [3.0]], KD)


def test_dense_mixed_dtypes_on_numpy_backend():
    with pytest.raises(TypeError, match=r"`kernel` has dtype float64 but `x` has dtype float32"):
        on("numpy", fc.dense, XD, KD.astype(np.float64))
    with pytest.raises(TypeError, match=r"`dy` has dtype float32 but `x` has dtype float64"):
        on("numpy", fc.dense_backward, np.ones((3, 5), np.float32), XD.astype(np.float64),
           KD.astype(np.float64))


# ---------------------------------------------------------------------------
# Pooling and backward arguments

@pytest.mark.parametrize("backend", BACKENDS)
class TestPoolArguments:
    @pytest.mark.parametrize("name,value,error,match", [
        ("pool_size", 0, ValueError, "`pool_size` must be a positive integer, got 0"),
        ("pool_size", -2, ValueError, "`pool_size` must be a positive integer"),
        ("pool_size", (2, 0), ValueError, r"`pool_size\[1\]` must be a positive integer"),
        ("pool_size", 1.5, TypeError, "`pool_size` must be a positive integer"),
        ("pool_size", (2.0, 2), TypeError, r"`pool_size\[0\]`"),
        ("pool_size", (2, 2, 2), ValueError, "`pool_size`.*length 3"),
        ("pool_size", (), ValueError, "`pool_size`.*length 0"),
        ("pool_size", "2", TypeError, "`pool_size`"),
        ("pool_size", None, TypeError, "`pool_size`"),
        ("pool_size", True, TypeError, "`pool_size`"),
        ("pool_size", np.float64(2), TypeError, "`pool_size`"),
        ("pool_size", np.array(2.0), TypeError, "`pool_size`"),
        ("pool_size", 2**31, ValueError, "`pool_size` must be at most"),
        ("strides", 0, ValueError, "`strides` must be a positive integer"),
        ("strides", (1, -1), ValueError, r"`strides\[1\]`"),
        ("strides", 2.0, TypeError, "`strides`"),
        ("strides", [1], ValueError, "`strides`.*length 1"),
        ("strides", 2**40, ValueError, "`strides` must be at most"),
        ("padding", "full", ValueError, "`padding` must be 'valid' or 'same'"),
        ("padding", "same ", ValueError, "`padding`"),
        ("padding", b"same", TypeError, "`padding`"),
        ("padding", None, TypeError, "`padding`"),
    ])
    def test_bad_parameters(self, backend, name, value, error, match):
        kwargs = {"pool_size": 2, name: value}
        with pytest.raises(error, match=match):
            on(backend, fc.max_pool2d, X, **kwargs)
        dy = np.ones((2, 2, 2, 3), np.float32)
        with pytest.raises(error, match=match):
            on(backend, fc.max_pool2d_backward, dy, X, **kwargs)

    @pytest.mark.parametrize("dtype", BAD_DTYPES)
    def test_dtype(self, backend, dtype):
        with pytest.raises(TypeError, match=r"`x` must have dtype float32"):
            on(backend, fc.max_pool2d, as_dtype(X, dtype))
        with pytest.raises(TypeError, match=r"`dy` must have dtype float32"):
            on(backend, fc.max_pool2d_backward, as_dtype(np.ones((2, 2, 2, 3)), dtype), X)

    def test_rank_and_size(self, backend):
        with pytest.raises(ValueError, match=r"`x` must be a 4-D array"):
            on(backend, fc.max_pool2d, X[0])
        with pytest.raises(ValueError, match=r"`dy` must be a 4-D array"):
            on(backend, fc.max_pool2d_backward, np.ones((2, 2, 3), np.float32), X)
        with pytest.raises(ValueError, match=r"floor\(\(5 - 6\) / 6\) \+ 1 = 0"):
            on(backend, fc.max_pool2d, X, 6)
        with pytest.raises(ValueError, match="height and width >= 1"):
            on(backend, fc.max_pool2d, np.ones((1, 0, 4, 2), np.float32), padding="same")
        # dy with the right size but the wrong shape (transposed)
        with pytest.raises(ValueError, match=r"`dy` must have the output's shape \(2, 2, 2, 3\)"):
            on(backend, fc.max_pool2d_backward, np.ones((2, 2, 3, 2), np.float32), X)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_backward_arguments(backend):
    dy = np.ones((2, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"`dy` must be a 4-D array"):
        on(backend, fc.conv2d_backward, dy[0], X, K)
    with pytest.raises(ValueError, match=r"`kernel` must be a 4-D array"):
        on(backend, fc.conv2d_backward, dy, X, K[0])
    with pytest.raises(TypeError, match=r"`dy` must have dtype float32"):
        on(backend, fc.conv2d_backward, dy.astype(np.int32), X, K)
    with pytest.raises(TypeError, match="`dy`"):
        on(backend, fc.conv2d_backward, "dy", X, K)
    with pytest.raises(ValueError, match=r"`kernel` expects 2 input channels"):
        on(backend, fc.conv2d_backward, dy, X, np.ones((3, 3, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"`dy` must have the output's shape \(2, 3, 3, 4\)"):
        on(backend, fc.conv2d_backward, np.ones((2, 5, 5, 4), np.float32), X, K)
    with pytest.raises(ValueError, match=r"`dy` must have the output's shape \(2, 5, 5, 4\)"):
        on(backend, fc.conv2d_backward, dy, X, K, padding="same")
    with pytest.raises(ValueError, match=r"`dilation_rate\[1\]` must be a positive integer"):
        on(backend, fc.conv2d_backward, dy, X, K, dilation_rate=(1, 0))
    with pytest.raises(ValueError, match=r"floor\(\(5 - 7\) / 1\) \+ 1"):
        on(backend, fc.conv2d_backward, dy, X, K, dilation_rate=3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,value,error,match", [
    ("strides", np.float64(1.0), TypeError, "`strides` must be a positive integer"),
    ("strides", np.array(1.0), TypeError, "`strides`"),
    ("strides", 2**31, ValueError, r"`strides` must be at most 2147483647"),
    ("strides", (1, 2**63), ValueError, r"`strides\[1\]` must be at most"),
    ("dilation_rate", 2**40, ValueError, "`dilation_rate` must be at most"),
    ("dilation_rate", (1, 2**70), ValueError, r"`dilation_rate\[1\]` must be at most"),
    ("dilation_rate", np.array([[1, 1]]), ValueError, "`dilation_rate`"),
    ("strides", {1, 2}, TypeError, "`strides`"),
])
def test_conv_window_arguments_beyond_int_range(backend, name, value, error, match):
    """Values the C side cannot take in int64 are refused up front, naming
    the argument (they used to raise an unnamed OverflowError in the binding)."""
    with pytest.raises(error, match=match):
        on(backend, fc.conv2d, X, K, padding="same", **{name: value})


@pytest.mark.parametrize("backend", BACKENDS)
def test_largest_accepted_stride_gives_a_correct_answer(backend):
    y = on(backend, fc.conv2d, X, K, strides=2**31 - 1)
    np.testing.assert_allclose(y, np.tensordot(X[:, :3, :3], K, axes=3)[:, None, None], rtol=1e-6)
    assert on(backend, fc.max_pool2d, X, 2, 2**31 - 1, "same").shape == (2, 1, 1, 3)


@pytest.mark.parametrize("backend", ["numpy", "NUMPY", "C"])
def test_backend_names_are_case_insensitive(backend):
    with fc.use_backend(backend):
        assert fc.get_backend() == backend.lower()


@pytest.mark.parametrize("name", ["torch", "", None, 1, "c ", b"c"])
def test_unknown_backend(name):
    with pytest.raises(ValueError, match="`backend` must be one of"):
        fc.set_backend(name)
    assert fc.get_backend() == "c"


@pytest.mark.parametrize("n,error", [(0, ValueError), (-1, ValueError), (2**31, ValueError),
                                     (True, TypeError), ("2", TypeError), (2.0, TypeError)])
def test_bad_thread_counts(n, error):
    with pytest.raises(error, match="`n` must be a positive int"):
        fc.set_num_threads(n)
    assert fc.get_num_threads() >= 1  # the setting is unchanged


def test_numpy_integer_thread_count():
    fc.set_num_threads(np.int64(2))
    assert fc.get_num_threads() == 2 and type(fc.get_num_threads()) is int
    np.testing.assert_allclose(fc.conv2d(X, K), quiet_numpy(fc.conv2d, X, K), rtol=1e-6)


# ---------------------------------------------------------------------------
# Empty batches and zero-size dimensions: correct (empty or zero) answers

@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_zero_size_problems(backend):
    with fc.use_backend(backend):
        # pooling: empty batch, zero channels, forward and backward
        x0 = np.ones((0, 4, 4, 2), np.float32)
        assert fc.max_pool2d_backward(np.ones((0, 2, 2, 2), np.float32), x0).shape == x0.shape
        xc = np.ones((2, 4, 4, 0), np.float32)
        assert fc.max_pool2d(xc, 2).shape == (2, 2, 2, 0)
        assert fc.max_pool2d_backward(np.ones((2, 2, 2, 0), np.float32), xc).shape == xc.shape
        # conv backward with zero output channels: zero gradients of the right shapes
        k0 = np.ones((3, 3, 3, 0), np.float32)
        dx, dk, db = fc.conv2d_backward(np.ones((2, 3, 3, 0), np.float32), X, k0)
        assert dx.shape == X.shape and not dx.any() and dk.shape == k0.shape and db.shape == (0,)
        # conv backward with zero input channels
        xz, kz = np.ones((2, 5, 5, 0), np.float32), np.ones((3, 3, 0, 4), np.float32)
        dx, dk, db = fc.conv2d_backward(np.ones((2, 3, 3, 4), np.float32), xz, kz)
        assert dx.shape == xz.shape and dk.shape == kz.shape
        np.testing.assert_array_equal(db, np.full(4, 18.0))
        _, dk, _ = fc.conv2d_backward(np.ones((2, 3, 3, 4), np.float32), X, K, compute_dx=False)
        assert dk.shape == K.shape
        # dense: empty batch, zero features (y = bias), zero units
        assert fc.dense(np.ones((0, 4), np.float32), KD).shape == (0, 5)
        bias = np.arange(5, dtype=np.float32)
        y = fc.dense(np.ones((3, 0), np.float32), np.ones((0, 5), np.float32), bias)
        np.testing.assert_array_equal(y, np.broadcast_to(bias, (3, 5)))
        assert fc.dense(XD, np.ones((4, 0), np.float32)).shape == (3, 0)
        dx, dk, db = fc.dense_backward(np.ones((0, 5), np.float32), np.ones((0, 4), np.float32),
                                       KD)
        assert dx.shape == (0, 4) and not dk.any() and not db.any() and dk.shape == KD.shape
        dx, dk, db = fc.dense_backward(np.ones((3, 5), np.float32), XD, KD, compute_dx=False)
        assert dx is None


# ---------------------------------------------------------------------------
# Unusual memory layouts: every op reads them correctly and never writes them

def layouts(a: np.ndarray):
    """Copies of ``a``'s values in unusual memory layouts, all read-only."""
    out = {}
    out["fortran"] = np.asfortranarray(a)
    out["big_endian"] = a.astype(a.dtype.newbyteorder(">"))
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    big[tuple(slice(None, None, 2) for _ in a.shape)] = a
    out["strided"] = big[tuple(slice(None, None, 2) for _ in a.shape)]
    out["negative_strides"] = np.flip(np.ascontiguousarray(np.flip(a)))
    raw = bytearray(a.nbytes + 1)
    unaligned = np.ndarray(a.shape, a.dtype, buffer=raw, offset=1)
    unaligned[...] = a
    out["unaligned"] = unaligned
    # a zero-stride view: every sample the same
    out["broadcast"] = np.broadcast_to(a[:1], a.shape) if a.shape[0] == 1 else None
    for name, view in list(out.items()):
        if view is None:
            del out[name]
        else:
            view.flags.writeable = False
    return out


def _snapshot(arrays):
    return [(a.tobytes(), a.shape, a.strides, a.dtype) for a in arrays]


def _check_layouts(fn, args, expected, rtol=1e-6):
    """Replace each argument in turn by each unusual layout of it."""
    for position, arg in enumerate(args):
        for name, view in layouts(arg).items():
            call = list(args)
            call[position] = view
            before = _snapshot(call)
            got = fn(*call)
            assert _snapshot(call) == before, f"argument {position} ({name}) was modified"
            got = got if isinstance(got, tuple) else (got,)
            for g, e in zip(got, expected):
                np.testing.assert_allclose(g, e, rtol=rtol, atol=1e-6,
                                           err_msg=f"argument {position} as {name}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_op_reads_unusual_layouts(backend, rng):
    x = rng.standard_normal((1, 6, 7, 3)).astype(np.float32)
    k = rng.standard_normal((3, 2, 3, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    dy = rng.standard_normal((1, 3, 4, 5)).astype(np.float32)
    dp = rng.standard_normal((1, 3, 4, 3)).astype(np.float32)
    xd = rng.standard_normal((1, 6)).astype(np.float32)
    kd = rng.standard_normal((6, 4)).astype(np.float32)
    dyd = rng.standard_normal((1, 4)).astype(np.float32)
    with fc.use_backend(backend):
        cases = [
            (lambda x, k, b: fc.conv2d(x, k, b, strides=2, padding="same", activation="relu"),
             (x, k, b)),
            (lambda dy, x, k: fc.conv2d_backward(dy, x, k, strides=2, padding="same"),
             (dy, x, k)),
            (lambda x: fc.max_pool2d(x, 3, 2, "same"), (x,)),
            (lambda dy, x: fc.max_pool2d_backward(dy, x, 3, 2, "same"), (dp, x)),
            (lambda x, k, b: fc.dense(x, k, b, activation="relu"), (xd, kd, b[:4])),
            (lambda dy, x, k: fc.dense_backward(dy, x, k), (dyd, xd, kd)),
        ]
        for fn, args in cases:
            expected = fn(*[a.copy() for a in args])
            expected = expected if isinstance(expected, tuple) else (expected,)
            _check_layouts(fn, args, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_are_fresh_writable_arrays(backend):
    """Results never alias an input (a caller may write into them)."""
    xr = X.copy()
    xr.flags.writeable = False
    with fc.use_backend(backend):
        outs = [fc.conv2d(xr, K), fc.max_pool2d(xr, 1), *fc.conv2d_backward(
            np.ones((2, 3, 3, 4), np.float32), xr, K), fc.dense(XD, KD)]
    for out in outs:
        assert out.flags.writeable and out.flags.c_contiguous
        assert not np.shares_memory(out, xr) and not np.shares_memory(out, K)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_array_subclasses_give_plain_arrays(backend):
    """np.matrix (always 2-D) must not leak into the 4-D reshapes of dense."""
    y = on(backend, fc.dense, np.asmatrix(XD), np.asmatrix(KD), activation="relu")
    assert type(y) is np.ndarray
    np.testing.assert_allclose(y, np.maximum(XD @ KD, 0), rtol=1e-6)
    dx, dk, db = on(backend, fc.dense_backward, np.asmatrix(np.ones((3, 5), np.float32)),
                    np.asmatrix(XD), KD)
    assert type(dx) is np.ndarray and dx.shape == (3, 4) and dk.shape == (4, 5)


# ---------------------------------------------------------------------------
# NaN and Inf

def _nonfinite_masks(a):
    a = np.asarray(a)
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


def assert_same_nonfinite(c_result, np_result, what):
    for name, m_c, m_n in zip(("NaN", "+inf", "-inf"), _nonfinite_masks(c_result),
                              _nonfinite_masks(np_result)):
        assert np.array_equal(m_c, m_n), (f"{what}: {name} at {np.argwhere(m_c != m_n)[:5]} "
                                          f"differs between the backends")
    finite = np.isfinite(np_result)
    np.testing.assert_allclose(np.asarray(c_result)[finite], np.asarray(np_result)[finite],
                               rtol=1e-4, atol=1e-4, err_msg=what)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("c_in", [2, 7])  # the small-channel gather path and the tap path
@pytest.mark.parametrize("padding,strides", [("valid", 1), ("same", 1), ("same", 2)])
def test_nonfinite_input_propagates_the_same_in_both_backends(simd, rng, value, c_in, padding,
                                                               strides):
    """NaN/Inf in x reach exactly the outputs and gradients that read them,
    identically in the C backend (every SIMD path) and the NumPy backend."""
    x = rng.standard_normal((2, 9, 11, c_in)).astype(np.float32)
    x[0, 0, 0, 0] = value        # a corner (padding neighbours with 'same')
    x[1, 4, 5, c_in - 1] = value  # an interior cell
    k = rng.standard_normal((3, 3, c_in, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    kw = dict(strides=strides, padding=padding)
    for activation in (None, "relu"):
        assert_same_nonfinite(fc.conv2d(x, k, b, activation=activation, **kw),
                              quiet_numpy(fc.conv2d, x, k, b, activation=activation, **kw),
                              f"conv2d {activation}")
    dy = rng.standard_normal(fc.conv2d(x, k, **kw).shape).astype(np.float32)
    for name, got, want in zip(("dx", "dkernel", "dbias"), fc.conv2d_backward(dy, x, k, **kw),
                               quiet_numpy(fc.conv2d_backward, dy, x, k, **kw)):
        assert_same_nonfinite(got, want, f"conv2d_backward {name}")
    xd = x.reshape(2, -1)[:, :20]
    kd = rng.standard_normal((20, 6)).astype(np.float32)
    assert_same_nonfinite(fc.dense(xd, kd), quiet_numpy(fc.dense, xd, kd), "dense")
    dyd = rng.standard_normal((2, 6)).astype(np.float32)
    for got, want in zip(fc.dense_backward(dyd, xd, kd), quiet_numpy(fc.dense_backward, dyd, xd,
                                                                      kd)):
        assert_same_nonfinite(got, want, "dense_backward")


def _exact_conv_oracle(x, k, dy, strides, padding):
    """float64 conv forward and weight gradient in which padding contributes
    nothing at all (not 0 * value): the NaN/Inf pattern the maths gives."""
    g = fc.shapes.conv2d_geometry(x.shape, k.shape[:2], k.shape[3], (strides, strides), padding)
    xp = np.pad(x.astype(np.float64), ((0, 0), (g.pad_top, g.pad_bottom),
                                       (g.pad_left, g.pad_right), (0, 0)))
    inside = np.pad(np.ones(x.shape[1:3], bool), ((g.pad_top, g.pad_bottom),
                                                  (g.pad_left, g.pad_right)))
    y = np.zeros((x.shape[0], g.out_h, g.out_w, k.shape[3]))
    dk = np.zeros(k.shape)
    rows = slice(None, (g.out_h - 1) * strides + 1, strides)
    cols = slice(None, (g.out_w - 1) * strides + 1, strides)
    with np.errstate(all="ignore"):
        for i in range(k.shape[0]):
            for j in range(k.shape[1]):
                xs = xp[:, i:, j:][:, rows, cols]
                real = inside[i:, j:][rows, cols][None, :, :, None]
                y += np.where(real, xs @ k[i, j].astype(np.float64), 0.0)
                dys = np.where(real, dy.astype(np.float64), 0.0)
                dk[i, j] = np.einsum("npqc,npqo->co", np.where(real, xs, 0.0), dys)
    return y, dk


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("source", ["kernel", "dy"])
@pytest.mark.parametrize("c_in", [2, 7])
@pytest.mark.parametrize("padding,strides", [("valid", 1), ("same", 1), ("same", 2)])
def test_nonfinite_weights_and_gradients_are_never_lost(simd, rng, value, source, c_in, padding,
                                                        strides):
    """NaN/Inf in the kernel or in dy: wherever the exact result is NaN/Inf,
    both backends give NaN/Inf (nothing is silently dropped), and wherever
    they are finite they are right. Where exactly extra NaNs appear from
    0 * Inf at padding is unspecified (README): the reference multiplies
    explicit zero padding, the C kernels may skip it."""
    x = rng.standard_normal((2, 9, 30, c_in)).astype(np.float32)
    k = rng.standard_normal((3, 3, c_in, 5)).astype(np.float32)
    kw = dict(strides=strides, padding=padding)
    dy = rng.standard_normal(fc.conv2d(x, k, **kw).shape).astype(np.float32)
    target = k if source == "kernel" else dy
    target[(0,) * target.ndim] = value
    target[(1,) * target.ndim] = value
    y_exact, dk_exact = _exact_conv_oracle(x, k, dy, strides, padding)
    outputs = {"kernel": [("conv2d", lambda: fc.conv2d(x, k, **kw), y_exact)],
               "dy": [("dkernel", lambda: fc.conv2d_backward(dy, x, k, **kw)[1], dk_exact)]}
    for name, fn, exact in outputs[source]:
        for label, got in (("c", fn()), ("numpy", quiet_numpy(fn))):
            lost = ~np.isfinite(exact) & np.isfinite(got)
            assert not lost.any(), (f"{label} {name}: non-finite values lost at "
                                    f"{np.argwhere(lost)[:5]}")
            both = np.isfinite(exact) & np.isfinite(got)
            np.testing.assert_allclose(got[both], exact[both], rtol=1e-4, atol=1e-3)


class TestMaxPoolNaNRule:
    """fastconv.h: a NaN in a window wins, and the first NaN (row-major) gets
    the gradient; otherwise the first maximum; padded cells never win."""

    def run(self, x, pool, strides=None, padding="valid"):
        """C (this SIMD path) == NumPy, exactly; returns y, dx and the dy used
        (1, 2, 3, ... so that every window's gradient is told apart)."""
        shape = quiet_numpy(fc.max_pool2d, x, pool, strides, padding).shape
        dy = np.arange(1, 1 + int(np.prod(shape)), dtype=np.float32).reshape(shape)
        y_c = fc.max_pool2d(x, pool, strides, padding)
        dx_c = fc.max_pool2d_backward(dy, x, pool, strides, padding)
        np.testing.assert_array_equal(y_c, quiet_numpy(fc.max_pool2d, x, pool, strides, padding))
        np.testing.assert_array_equal(dx_c, quiet_numpy(fc.max_pool2d_backward, dy, x, pool,
                                                        strides, padding))
        return y_c, dx_c, dy

    def test_first_nan_wins_and_gets_the_gradient(self, simd):
        # 20 channels: a full vector plus a masked tail on every SIMD path
        x = np.zeros((1, 2, 2, 20), np.float32)
        x[0, 0, 1, :] = np.nan   # first NaN in row-major order
        x[0, 1, 0, :] = np.nan
        x[0, 1, 1, :] = 5.0      # larger than everything, but NaN wins
        y, dx, dy = self.run(x, 2)
        assert np.isnan(y).all()
        expected = np.zeros_like(x)
        expected[0, 0, 1, :] = dy[0, 0, 0, :]
        np.testing.assert_array_equal(dx, expected)

    def test_nan_after_the_maximum_still_wins(self, simd):
        x = np.full((1, 3, 3, 17), -1.0, np.float32)
        x[0, 0, 0, :] = 9.0
        x[0, 2, 2, 5] = np.nan
        y, dx, dy = self.run(x, 3)
        assert np.isnan(y[0, 0, 0, 5]) and (np.delete(y[0, 0, 0], 5) == 9.0).all()
        assert dx[0, 2, 2, 5] == dy[0, 0, 0, 5] and dx[0, 0, 0, 5] == 0.0
        assert dx[0, 0, 0, 4] == dy[0, 0, 0, 4]

    def test_infinities_and_ties(self, simd):
        x = np.full((1, 4, 4, 9), -np.inf, np.float32)
        y, dx, dy = self.run(x, 2)              # all -inf: the first cell gets the gradient
        assert (y == -np.inf).all() and dx[0, 0, 0, 0] == dy[0, 0, 0, 0]
        assert dx[0, 1, 1, 0] == 0.0
        x[0, 0, 1, :] = np.inf
        x[0, 1, 0, :] = np.inf                  # a tie of +inf: the first one
        y, dx, dy = self.run(x, 2)
        assert dx[0, 0, 1, 0] == dy[0, 0, 0, 0] and dx[0, 1, 0, 0] == 0.0

    def test_padding_never_wins_even_against_minus_inf(self, simd):
        x = np.full((1, 3, 3, 18), -np.inf, np.float32)
        y, dx, dy = self.run(x, 2, 2, "same")   # 2x2 windows with bottom/right padding
        assert (y == -np.inf).all()
        assert dx.sum() == dy.sum()             # every gradient lands on a real cell

    def test_overlapping_windows_with_nan(self, simd, rng):
        x = rng.standard_normal((2, 7, 7, 19)).astype(np.float32)
        x[rng.random(x.shape) < 0.1] = np.nan
        x[rng.random(x.shape) < 0.05] = np.inf
        x[rng.random(x.shape) < 0.05] = -np.inf
        for pool, strides, padding in ((3, 1, "valid"), (3, 2, "same"), (2, 1, "same")):
            self.run(x, pool, strides, padding)


# ---------------------------------------------------------------------------
# Sizes that overflow: a clean error or a correct answer, never a crash or a
# hang. Each runs in a child process.

HUGE_CASES = {
    # zero-stride views of astronomical size: copying them cannot work
    "conv_x": "fc.conv2d(np.broadcast_to(np.float32(1), (1, 2**20, 2**20, 1)), "
              "np.ones((3, 3, 1, 1), np.float32))",
    "conv_kernel": "fc.conv2d(np.ones((1, 5, 5, 2**16), np.float32), "
                   "np.broadcast_to(np.float32(1), (3, 3, 2**16, 2**16)))",
    "conv_backward_dy": "fc.conv2d_backward(np.broadcast_to(np.float32(1), (2**24, 3, 3, 2**20)),"
                        " np.ones((1, 5, 5, 1), np.float32), np.ones((3, 3, 1, 2**20), "
                        "np.float32))",
    "pool_x": "fc.max_pool2d(np.broadcast_to(np.float32(0), (2**16, 2**16, 2**16, 1)))",
    "dense_x": "fc.dense(np.broadcast_to(np.float32(1), (2**40, 4)), np.ones((4, 2), np.float32))",
    "dense_kernel": "fc.dense(np.ones((1, 4), np.float32), "
                    "np.broadcast_to(np.float32(1), (4, 2**40)))",
    # an output far larger than the input: 'same' with a huge batch of views
    "conv_output": "fc.conv2d(np.broadcast_to(np.float32(1), (2**30, 8, 8, 1)), "
                   "np.ones((1, 1, 1, 2**10), np.float32))",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(HUGE_CASES))
def test_huge_zero_stride_views_give_a_clean_error(backend, case):
    out = run_python(f"""
        import numpy as np, fastconv as fc
        fc.set_backend({backend!r})
        try:
            {HUGE_CASES[case]}
            print("RESULT ok")
        except (MemoryError, ValueError) as exc:
            print("RESULT", type(exc).__name__, str(exc).replace("\\n", " "))
        """, timeout=120)
    (line,) = result_lines(out)
    kind, _, message = line.partition(" ")
    assert kind in ("MemoryError", "ValueError") and message, line


def test_overlapping_strided_views_are_read_correctly(rng):
    """as_strided views whose elements alias each other (zero and overlapping
    strides) give the same answer as their materialised copies."""
    base = rng.standard_normal(64).astype(np.float32)
    item = base.itemsize
    views = [np.lib.stride_tricks.as_strided(base, (2, 6, 6, 3), (0, 4 * item, item, 2 * item)),
             np.lib.stride_tricks.as_strided(base, (2, 6, 6, 3), (8 * item, 0, 3 * item, 0))]
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    for view in views:
        copy = np.array(view)
        for backend in BACKENDS:
            with fc.use_backend(backend):
                np.testing.assert_allclose(fc.conv2d(view, k, padding="same"),
                                           fc.conv2d(copy, k, padding="same"), rtol=1e-6)
                np.testing.assert_array_equal(fc.max_pool2d(view, 3, 1), fc.max_pool2d(copy, 3, 1))
                dy = np.ones((2, 6, 6, 4), np.float32)
                for a, b in zip(fc.conv2d_backward(dy, view, k, padding="same"),
                                fc.conv2d_backward(dy, copy, k, padding="same")):
                    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_pool_window_beyond_float_cell_counter():
    """More than 2**24 cells in one window: the C backward numbered cells in
    float32 lanes and sent the gradient to every cell past 2**24 (three cells
    here). The C backend now refuses such windows naming `pool_size` (the
    NumPy backend is exact but loops over the 2**24 taps in Python: not run)."""
    out = run_python("""
        import numpy as np, fastconv as fc
        n = 2**24 + 3
        x = np.zeros((1, 1, n, 1), np.float32)
        x[0, 0, 2**24 + 1, 0] = 1.0
        dy = np.ones((1, 1, 1, 1), np.float32)
        for op in ("forward", "backward"):
            try:
                if op == "forward":
                    print("RESULT c forward", fc.max_pool2d(x, (1, n)).item())
                else:
                    dx = fc.max_pool2d_backward(dy, x, (1, n))
                    print("RESULT c backward", np.flatnonzero(dx).tolist())
            except ValueError as exc:
                assert "`pool_size`" in str(exc), exc
                print("RESULT c", op, "refused")
        """, timeout=240)
    results = result_lines(out)
    assert results[0] in ("c forward refused", "c forward 1.0")
    assert results[1] in ("c backward refused", f"c backward [{2**24 + 1}]")


@pytest.mark.parametrize("backend", BACKENDS)
def test_pool_window_larger_than_the_image(backend):
    """'same' pooling with a window far larger than the image: mostly padding.
    A correct answer, or (C, over 2**24 cells) a refusal naming `pool_size`."""
    x = np.arange(2 * 5 * 6 * 3, dtype=np.float32).reshape(2, 5, 6, 3)
    dy = np.ones((2, 1, 1, 3), np.float32)
    # (the NumPy backend pads the whole window: keep it small there)
    for pool in (7, 300) + (((4097, 4097), (1, 2**25)) if backend == "c" else ()):
        try:
            y = on(backend, fc.max_pool2d, x, pool, 100, "same")
            dx = on(backend, fc.max_pool2d_backward, dy, x, pool, 100, "same")
        except ValueError as exc:
            assert backend == "c" and "`pool_size`" in str(exc)
            assert pool[0] * pool[1] > 2**24
            continue
        np.testing.assert_array_equal(y, x.max(axis=(1, 2), keepdims=True))
        assert dx.sum() == dy.sum() and dx[:, -1, -1].all()


def test_huge_dilation_with_same_padding():
    """dilation 2**30 with 'same' padding: only the centre tap touches the
    image. C answers exactly; NumPy would pad by 2**30 and refuses cleanly."""
    out = run_python("""
        import numpy as np, fastconv as fc
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
        k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
        y = fc.conv2d(x, k, padding="same", dilation_rate=2**30)
        np.testing.assert_allclose(y, x @ k[1, 1], rtol=1e-5, atol=1e-6)
        dx, dk, db = fc.conv2d_backward(np.ones_like(y), x, k, padding="same",
                                        dilation_rate=2**30)
        np.testing.assert_allclose(dx, np.ones_like(y) @ k[1, 1].T, rtol=1e-5, atol=1e-6)
        assert not np.delete(dk.reshape(9, 3, 4), 4, axis=0).any()
        try:
            with fc.use_backend("numpy"):
                fc.conv2d(x, k, padding="same", dilation_rate=2**30)
            print("RESULT numpy ok")
        except (MemoryError, ValueError) as exc:
            print("RESULT numpy", type(exc).__name__)
        """, timeout=120)
    assert result_lines(out)[0] in ("numpy ok", "numpy MemoryError", "numpy ValueError")


@pytest.mark.skipif(os.environ.get("FASTCONV_BIG_TESTS") != "1",
                    reason="needs about 12 GB of memory: set FASTCONV_BIG_TESTS=1")
def test_index_arithmetic_beyond_32_bits():
    """An input of more than 2**31 elements (8.6 GB): pixel and element
    indices overflow 32 bits. Pooling and a strided 1x1 convolution must
    still read the last elements right."""
    out = run_python("""
        import numpy as np, fastconv as fc
        h, w = 2**16 + 2, 2**15 + 2          # h * w > 2**31
        x = np.empty((1, h, w, 1), np.float32)
        x[0, :, :, 0] = np.arange(w, dtype=np.float32)[None, :] % 251
        x[0, -2:, -2:, 0] = [[1000.0, 1001.0], [1002.0, 1003.0]]
        y = fc.max_pool2d(x, 2)
        assert y.shape == (1, h // 2, w // 2, 1) and y[0, -1, -1, 0] == 1003.0, y[0, -1, -1]
        del y
        z = fc.conv2d(x, np.full((1, 1, 1, 1), 2.0, np.float32), strides=2)
        assert z[0, -1, -1, 0] == 2000.0 and z[0, -1, 0, 0] == 0.0
        print("RESULT ok")
        """, timeout=600)
    assert result_lines(out) == ["ok"]


@pytest.mark.skipif(SANITIZED, reason="an address-space limit breaks AddressSanitizer")
def test_absurd_thread_count_never_kills_the_process():
    """set_num_threads(100000): the C side uses at most max(16, 4 x processors)
    threads (libgomp exits the process when thread creation fails)."""
    run_python("""
        import resource
        import numpy as np, fastconv as fc
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))
        fc.set_num_threads(100000)
        x = np.ones((64, 28, 28, 32), np.float32)
        k = np.ones((3, 3, 32, 64), np.float32)
        try:
            y = fc.conv2d(x, k)
            assert float(y[0, 0, 0, 0]) == 288.0
        except (RuntimeError, MemoryError, ValueError):
            pass  # a clean error is fine
        """, timeout=120)


# ---------------------------------------------------------------------------
# Layers and models

@pytest.fixture
def fresh_names():
    fc_backend.clear_session()
    yield
    fc_backend.clear_session()


@pytest.mark.parametrize("make,error,match", [
    (lambda: Conv2D(0, 3), ValueError, "`filters` must be a positive integer"),
    (lambda: Conv2D(-4, 3), ValueError, "`filters`"),
    (lambda: Conv2D(None, 3), TypeError, "`filters`"),
    (lambda: Conv2D("many", 3), TypeError, "`filters`"),
    (lambda: Conv2D(float("nan"), 3), TypeError, "`filters`"),
    (lambda: Conv2D(float("inf"), 3), (TypeError, ValueError), "`filters`"),
    (lambda: Conv2D(2, 0), ValueError, "`kernel_size` cannot contain 0"),
    (lambda: Conv2D(2, (3, 0)), ValueError, "`kernel_size` cannot contain 0"),
    (lambda: Conv2D(2, 2**31), ValueError, "`kernel_size` must be at most"),
    (lambda: Conv2D(2, 3, strides=0), ValueError, "`strides`"),
    (lambda: Conv2D(2, 3, strides=(1, -1)), ValueError, "`strides"),
    (lambda: Conv2D(2, 3, strides=2**40), ValueError, "`strides` must be at most"),
    (lambda: Conv2D(2, 3, dilation_rate=0), ValueError, "`dilation_rate`"),
    (lambda: Conv2D(2, 3, dilation_rate=1.0), TypeError, "`dilation_rate`"),
    (lambda: Conv2D(2, 3, padding="full"), ValueError, "padding"),
    (lambda: Conv2D(2, 3, padding=0), TypeError, "padding"),
    (lambda: Conv2D(2, 3, activation="nope"), ValueError, "Unknown activation function: nope"),
    (lambda: Conv2D(2, 3, activation=3), (TypeError, ValueError), "activation"),
    (lambda: Dense(0), ValueError, "`units`"),
    (lambda: Dense(-1), ValueError, "`units`"),
    (lambda: Dense(None), TypeError, "`units`"),
    (lambda: Dense("x"), TypeError, "`units`"),
    (lambda: Dense(float("inf")), (TypeError, ValueError), "`units`"),
    (lambda: Dense(3, activation="nope"), ValueError, "Unknown activation function"),
    (lambda: MaxPooling2D(0), ValueError, "`pool_size`"),
    (lambda: MaxPooling2D((2, -2)), ValueError, r"`pool_size\[1\]`"),
    (lambda: MaxPooling2D(1.5), TypeError, "`pool_size`"),
    (lambda: MaxPooling2D(2, strides=0), ValueError, "`strides`"),
    (lambda: MaxPooling2D(2, strides=2.0), TypeError, "`strides`"),
    (lambda: MaxPooling2D(2, padding="causal"), ValueError, "padding"),
    (lambda: MaxPooling2D(2, data_format="nchw"), ValueError, "data_format"),
    (lambda: Input((-1, 3)), ValueError, "`shape`"),
    (lambda: Input((2.5, 3)), ValueError, "`shape`"),
])
def test_bad_layer_arguments(fresh_names, make, error, match):
    with pytest.raises(error, match=match):
        make()


def small_cnn(name=None):
    inputs = Input((6, 6, 2))
    x = Conv2D(3, 3, activation="relu")(inputs)
    x = MaxPooling2D(2)(x)
    outputs = Dense(3, activation="softmax")(Flatten()(x))
    return Model(inputs, outputs, name=name)


@pytest.fixture
def cnn(fresh_names):
    fc_backend.set_random_seed(7)
    return small_cnn()


@pytest.fixture
def data(rng):
    x = rng.standard_normal((10, 6, 6, 2)).astype(np.float32)
    y = np.arange(10) % 3
    return x, y


@pytest.mark.parametrize("dtype", [np.int32, bool, np.float16, np.float64, ">f4", ">f8"])
def test_model_accepts_numeric_inputs_by_casting(cnn, data, dtype):
    x, _ = data
    expected = cnn.predict(x.astype(dtype).astype(np.float32))
    np.testing.assert_array_equal(cnn.predict(x.astype(dtype)), expected)
    np.testing.assert_array_equal(cnn(x.astype(dtype)), expected)


@pytest.mark.parametrize("dtype", ["U12", "S12", object, np.complex64, "datetime64[s]"])
def test_model_refuses_non_numeric_inputs(cnn, data, dtype):
    x, _ = data
    bad = as_dtype(x, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # we want the error, not numpy's ComplexWarning
        with pytest.raises(TypeError, match="x"):
            cnn.predict(bad)


def test_model_reads_unusual_layouts_and_never_writes_inputs(cnn, data):
    x, y = data
    expected = cnn.predict(x)
    for name, view in layouts(x).items():
        if name == "broadcast":
            continue
        before = _snapshot([view])
        np.testing.assert_array_equal(cnn.predict(view), expected, err_msg=name)
        np.testing.assert_array_equal(cnn(view), expected, err_msg=name)
        assert _snapshot([view]) == before, name


@pytest.fixture
def compiled(cnn):
    cnn.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return cnn


def test_fit_never_writes_its_inputs(compiled, data):
    x, y = data
    w = np.linspace(0.5, 1.5, 10)
    for a in (x, y, w):
        a.flags.writeable = False
    before = _snapshot([x, y, w])
    compiled.fit(x, y, sample_weight=w, batch_size=4, epochs=2, verbose=0,
                 validation_split=0.2, shuffle=True)
    compiled.evaluate(x, y, verbose=0)
    compiled.train_on_batch(x, y)
    assert _snapshot([x, y, w]) == before


@pytest.mark.parametrize("label,kwargs,error,match", [
    ("x/y mismatch", dict(y=np.arange(9) % 3), ValueError, "Data cardinality is ambiguous"),
    ("weights mismatch", dict(sample_weight=np.ones(11)), ValueError, "cardinality"),
    ("label too large", dict(y=np.full(10, 3)), ValueError, "label 3 .* outside the valid range"),
    ("negative label", dict(y=-(np.arange(10) % 2)), ValueError, "label -1"),
    ("fractional label", dict(y=np.full(10, 0.5)), ValueError, "integer class labels"),
    ("NaN label", dict(y=np.full(10, np.nan)), ValueError, "integer class labels"),
    ("inf label", dict(y=np.full(10, np.inf)), ValueError, "y"),
    ("huge label", dict(y=np.full(10, 2**62)), ValueError, "outside the valid range"),
    ("string labels", dict(y=np.array(["a"] * 10)), TypeError, "`y` must hold numbers"),
    ("one-hot for sparse", dict(y=np.eye(3)[np.arange(10) % 3]), ValueError, "one-hot"),
    ("no y", dict(y=None), ValueError, "`y` is required"),
    ("wrong x shape", dict(x=np.ones((10, 5, 6, 2), np.float32)), ValueError, "`x`"),
    ("empty x", dict(x=np.ones((0, 6, 6, 2), np.float32), y=np.zeros(0)), ValueError,
     "non-empty"),
    ("batch_size 0", dict(batch_size=0), ValueError, "`batch_size`"),
    ("batch_size float", dict(batch_size=2.5), ValueError, "`batch_size`"),
    ("batch_size bool", dict(batch_size=True), ValueError, "`batch_size`"),
    ("epochs negative", dict(epochs=-1), ValueError, "`epochs`"),
    ("validation_split 1", dict(validation_split=1.0), ValueError, "`validation_split`"),
    ("validation_split str", dict(validation_split="0.1"), ValueError, "`validation_split`"),
    ("validation_data", dict(validation_data=(np.ones((2, 6, 6, 2)),)), ValueError,
     "`validation_data`"),
    ("validation labels", dict(validation_data=(np.ones((2, 6, 6, 2)), np.array([0, 5]))),
     ValueError, "label 5"),
    ("class_weight", dict(class_weight={5: 1.0}), ValueError, "class_weight"),
    ("shuffle", dict(shuffle="yes"), ValueError, "`shuffle`"),
])
def test_fit_refuses_bad_data_before_touching_the_weights(compiled, data, label, kwargs, error,
                                                          match):
    x, y = data
    args = dict(x=x, y=y, verbose=0, batch_size=4)
    args.update(kwargs)
    before = compiled.get_weights()
    with pytest.raises(error, match=match):
        compiled.fit(**args)
    for got, want in zip(compiled.get_weights(), before):
        np.testing.assert_array_equal(got, want, err_msg=label)


def test_fit_with_nan_inputs_finishes(compiled, data):
    """NaN data is the user's to fix, but it must not crash or hang: the loss
    reports NaN."""
    x, y = data
    history = compiled.fit(np.full_like(x, np.nan), y, epochs=1, verbose=0)
    assert np.isnan(history.history["loss"][0])


@pytest.mark.parametrize("make_weights,error,match", [
    (lambda w: w[:-1], ValueError, "weight list of length 3, but the layer was expecting 4"),
    (lambda w: w + [np.ones(3)], ValueError, "length 5"),
    (lambda w: [np.ones((3, 3, 2, 4))] + w[1:], ValueError, r"Layer weight shape \(3, 3, 2, 3\)"),
    (lambda w: w[:3] + [np.ones((3, 1))], ValueError, r"\(3,\) not compatible"),
    (lambda w: w[:3] + [np.ones(())], ValueError, "not compatible"),
    (lambda w: w[:3] + ["abc"], (TypeError, ValueError), None),
    (lambda w: w[:3] + [None], (TypeError, ValueError), None),
    (lambda w: w[:3] + [np.ones(3, np.complex64)], TypeError, "must be numeric"),
    (lambda w: w[:3] + [np.array(["1", "2", "3"])], (TypeError, ValueError), None),
    (lambda w: list(reversed(w)), ValueError, "not compatible"),
])
def test_set_weights_refusals_leave_every_weight_unchanged(cnn, make_weights, error, match):
    before = cnn.get_weights()
    new = make_weights([w + 1 for w in before])
    with pytest.raises(error, match=match):
        cnn.set_weights(new)
    for got, want in zip(cnn.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    layer = cnn.layers[1]
    with pytest.raises((TypeError, ValueError)):
        layer.set_weights([before[0]])
    np.testing.assert_array_equal(cnn.get_weights()[0], before[0])


def test_set_weights_casts_numbers_and_copies(cnn):
    new = [np.ones(w.shape, np.int64) for w in cnn.get_weights()]
    cnn.set_weights(new)
    new[0][...] = 5  # the model holds its own copy
    assert all(w.dtype == np.float32 and (w == 1).all() for w in cnn.get_weights())
    cnn.set_weights([w.tolist() for w in cnn.get_weights()])  # nested lists


# save_weights / load_weights under failures (tests/test_models.py covers a
# failing np.savez, truncation, garbage, a flipped data byte, a mismatched
# model and a missing file)

def _listing(path):
    return sorted(os.listdir(path))


@pytest.mark.parametrize("target,exc", [
    ("replace", OSError("rename failed")),
    ("fsync", OSError("I/O error")),
    ("savez", KeyboardInterrupt()),
    ("chmod", PermissionError("no")),
])
def test_interrupted_save_keeps_the_old_file_and_leaves_no_temp(cnn, tmp_path, monkeypatch,
                                                                target, exc):
    path = tmp_path / "w.npz"
    cnn.save_weights(path)
    original = path.read_bytes()
    cnn.set_weights([w + 1 for w in cnn.get_weights()])

    def fail(*args, **kwargs):
        raise exc
    module = {"replace": os, "fsync": os, "chmod": os, "savez": np}[target]
    monkeypatch.setattr(module, target, fail)
    with pytest.raises(type(exc)):
        cnn.save_weights(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert _listing(tmp_path) == ["w.npz"]


def test_save_into_a_missing_directory_or_onto_a_directory(cnn, tmp_path):
    with pytest.raises(FileNotFoundError):
        cnn.save_weights(tmp_path / "missing" / "w.npz")
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        cnn.save_weights(tmp_path / "adir")
    assert _listing(tmp_path) == ["adir"] and _listing(tmp_path / "adir") == []


def _rewrite_npz(path, edit):
    """Rewrite the archive at ``path`` with ``edit(dict of arrays)`` applied."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    edit(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _meta_edit(change):
    def edit(arrays):
        meta = json.loads(str(arrays[fc_saving._META_KEY][()]))
        change(meta)
        arrays[fc_saving._META_KEY] = np.array(json.dumps(meta))
    return edit


BAD_FILES = {
    "meta_not_json": lambda a: a.__setitem__(fc_saving._META_KEY, np.array("{not json")),
    "meta_wrong_format": _meta_edit(lambda m: m.__setitem__("format", "other")),
    "meta_no_layers": _meta_edit(lambda m: m.pop("layers")),
    "meta_layers_not_list": _meta_edit(lambda m: m.__setitem__("layers", 3)),
    "meta_missing_key": _meta_edit(lambda m: m["layers"][0]["weights"][0].__setitem__("key",
                                                                                        "zz")),
    "meta_shape_lies": _meta_edit(lambda m: m["layers"][0]["weights"][0].__setitem__(
        "shape", [1, 2])),
    "array_integer": lambda a: a.__setitem__("w0", a["w0"].astype(np.int32)),
    "array_strings": lambda a: a.__setitem__("w1", a["w1"].astype("U8")),
    "array_wrong_shape": lambda a: a.__setitem__("w0", a["w0"].ravel()),
    "array_deleted": lambda a: a.pop("w3"),
    "meta_deleted": lambda a: a.pop(fc_saving._META_KEY),
}


@pytest.mark.parametrize("damage", sorted(BAD_FILES))
def test_malformed_weight_files_leave_weights_unchanged(cnn, tmp_path, damage):
    path = tmp_path / "w.npz"
    small_cnn().save_weights(path)
    _rewrite_npz(path, BAD_FILES[damage])
    before = cnn.get_weights()
    with pytest.raises(ValueError, match="Unable to load weights"):
        cnn.load_weights(path)
    for got, want in zip(cnn.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_pickled_object_arrays_are_never_unpickled(cnn, tmp_path):
    path = tmp_path / "w.npz"
    cnn.save_weights(path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["w0"] = np.array([object()] * 3, dtype=object)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    before = cnn.get_weights()
    with pytest.raises(ValueError, match="Unable to load weights"):
        cnn.load_weights(path)
    np.testing.assert_array_equal(cnn.get_weights()[0], before[0])


def test_npy_header_claiming_a_huge_array_is_a_clean_error(cnn, tmp_path):
    """A member whose header claims an astronomically large shape must give
    a ValueError, not a MemoryError escaping or a crash."""
    path = tmp_path / "w.npz"
    cnn.save_weights(path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = members["w1.npy"]
    start, end = header.index(b"(3,)"), header.index(b"(3,)") + 4
    huge = b"(4611686018427387904,)"  # 2**62 floats
    patched = header[:start] + huge + header[end:]
    # keep the header length field consistent: pad/trim the spaces before '\n'
    length = int.from_bytes(header[8:10], "little")
    body = patched[10:10 + length + len(huge) - 4]
    body = body.rstrip(b"\n").rstrip(b" ")
    body = body + b" " * (length - 1 - len(body)) + b"\n"
    assert len(body) == length
    members["w1.npy"] = header[:10] + body + header[10 + length:]
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    before = cnn.get_weights()
    with pytest.raises(ValueError, match="Unable to load weights"):
        cnn.load_weights(path)
    for got, want in zip(cnn.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_truncation_at_any_point_is_a_clean_error(cnn, tmp_path):
    path = tmp_path / "w.npz"
    small_cnn().save_weights(path)
    blob = path.read_bytes()
    before = cnn.get_weights()
    for cut in sorted(set(np.linspace(1, len(blob) - 1, 25).astype(int))):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match="Unable to load weights"):
            cnn.load_weights(path)
    for got, want in zip(cnn.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_load_from_a_directory_is_a_clean_error(cnn, tmp_path):
    before = cnn.get_weights()
    with pytest.raises((ValueError, IsADirectoryError)):
        cnn.load_weights(tmp_path)
    np.testing.assert_array_equal(cnn.get_weights()[0], before[0])


def test_sequential_refuses_bad_input_before_building(fresh_names):
    model = Sequential([Conv2D(2, 3), Flatten(), Dense(2)])
    with pytest.raises(ValueError):
        model.predict(np.ones((2, 2, 2, 1), np.float32))  # smaller than the kernel
    assert model.predict(np.ones((2, 5, 5, 1), np.float32)).shape == (2, 2)
