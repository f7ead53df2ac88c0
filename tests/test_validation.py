"""Bad and unusual input to the functional API: a ValueError/TypeError that
names the argument, or a correct answer; inputs are never modified."""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from conftest import assert_close, numpy_backend

X = np.ones((2, 5, 5, 3), np.float32)
K = np.ones((3, 3, 3, 4), np.float32)


def _raises(error, match, fn, *args, **kwargs):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


@pytest.mark.parametrize("backend", ["c", "numpy"])
class TestConvArguments:
    def test_wrong_rank(self, backend):
        with fc.use_backend(backend):
            _raises(ValueError, r"`x` must be a 4-D array .*NHWC.*got shape \(5, 5, 3\)",
                    fc.conv2d, X[0], K)
            _raises(ValueError, r"`kernel` must be a 4-D array .*HWIO", fc.conv2d, X, K[0])
            _raises(ValueError, r"`bias` must be a 1-D", fc.conv2d, X, K, np.ones((4, 1), np.float32))

    @pytest.mark.parametrize("bad", [np.ones((2, 5, 5, 3), np.int64), np.ones((2, 5, 5, 3), bool),
                                     np.ones((2, 5, 5, 3), np.float16),
                                     np.full((2, 5, 5, 3), "a"), np.empty((2, 5, 5, 3), object),
                                     np.ones((2, 5, 5, 3), np.complex64)])
    def test_wrong_dtype(self, backend, bad):
        with fc.use_backend(backend):
            _raises(TypeError, r"`x` must have dtype float32", fc.conv2d, bad, K)

    def test_strings_and_none(self, backend):
        with fc.use_backend(backend):
            _raises(TypeError, r"`x`", fc.conv2d, "image", K)
            _raises(TypeError, r"`kernel`", fc.conv2d, X, None)

    def test_mixed_dtypes(self, backend):
        if backend == "c":
            _raises(TypeError, "float64", fc.conv2d, X.astype(np.float64), K)
        else:
            with fc.use_backend(backend):
                _raises(TypeError, r"`kernel` has dtype float64 but `x` has dtype float32",
                        fc.conv2d, X, K.astype(np.float64))

    def test_channel_mismatch(self, backend):
        with fc.use_backend(backend):
            _raises(ValueError, r"`kernel` expects 2 input channels .* `x` has 3 channels",
                    fc.conv2d, X, np.ones((3, 3, 2, 4), np.float32))

    def test_bias_length(self, backend):
        with fc.use_backend(backend):
            _raises(ValueError, r"`bias` must have shape \(4,\)", fc.conv2d, X, K,
                    np.ones(5, np.float32))

    def test_kernel_larger_than_input_valid(self, backend):
        with fc.use_backend(backend):
            with pytest.raises(ValueError) as info:
                fc.conv2d(X[:, :2, :2], K)
            assert "floor((2 - 3) / 1) + 1 = 0" in str(info.value)
            assert "height" in str(info.value)
            # dilation makes the effective kernel (3 - 1) * 3 + 1 = 7 > 5
            _raises(ValueError, r"floor\(\(5 - 7\) / 1\) \+ 1", fc.conv2d, X, K, dilation_rate=3)

    @pytest.mark.parametrize("name,value,error", [
        ("strides", 0, ValueError), ("strides", -1, ValueError), ("strides", 1.5, TypeError),
        ("strides", (1, 2, 3), ValueError), ("strides", "1", TypeError),
        ("dilation_rate", 0, ValueError), ("dilation_rate", (2, -2), ValueError),
        ("padding", "full", ValueError), ("padding", None, TypeError),
        ("activation", "sigmoid", ValueError), ("activation", 3, ValueError),
    ])
    def test_bad_parameters(self, backend, name, value, error):
        with fc.use_backend(backend):
            _raises(error, name, fc.conv2d, X, K, **{name: value})

    def test_dy_wrong_shape(self, backend):
        with fc.use_backend(backend):
            _raises(ValueError, r"`dy` must have the output's shape \(2, 3, 3, 4\)",
                    fc.conv2d_backward, np.ones((2, 3, 3, 5), np.float32), X, K)
            _raises(ValueError, r"`dy` must have the output's shape",
                    fc.max_pool2d_backward, np.ones((2, 3, 3, 3), np.float32), X, 2)

    def test_zero_height_input(self, backend):
        with fc.use_backend(backend):
            _raises(ValueError, "height and width", fc.conv2d, np.ones((1, 0, 5, 3), np.float32), K,
                    padding="same")
            _raises(ValueError, "kernel.*height and width", fc.conv2d, X,
                    np.ones((0, 3, 3, 4), np.float32))


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_empty_batch_and_zero_channels_give_correct_answers(backend):
    with fc.use_backend(backend):
        y = fc.conv2d(np.ones((0, 5, 5, 3), np.float32), K, padding="same")
        assert y.shape == (0, 5, 5, 4)
        bias = np.arange(4, dtype=np.float32)
        y = fc.conv2d(np.ones((1, 5, 5, 0), np.float32), np.ones((3, 3, 0, 4), np.float32), bias)
        np.testing.assert_array_equal(y, np.broadcast_to(bias, (1, 3, 3, 4)))
        y = fc.conv2d(X, np.ones((3, 3, 3, 0), np.float32))
        assert y.shape == (2, 3, 3, 0)
        dx, dk, db = fc.conv2d_backward(np.ones((0, 3, 3, 4), np.float32),
                                        np.ones((0, 5, 5, 3), np.float32), K)
        assert dx.shape == (0, 5, 5, 3) and not dk.any() and not db.any()
        assert fc.max_pool2d(np.ones((0, 4, 4, 2), np.float32)).shape == (0, 2, 2, 2)


def test_unusual_layouts_are_read_correctly(rng):
    """Fortran order, strided views, read-only and byte-swapped arrays."""
    base = rng.standard_normal((2, 9, 10, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    expected = numpy_backend(fc.conv2d, base, kernel, padding="same")
    fortran = np.asfortranarray(base)
    readonly = base.copy()
    readonly.flags.writeable = False
    swapped = base.astype(base.dtype.newbyteorder(">"))
    big = np.zeros((4, 18, 20, 6), np.float32)
    big[::2, ::2, ::2, ::2] = base
    view = big[::2, ::2, ::2, ::2]
    ro_kernel = kernel.copy()
    ro_kernel.flags.writeable = False
    for x in (fortran, readonly, swapped, view):
        assert_close(fc.conv2d(x, ro_kernel, padding="same"), expected, 1e-5)
    # transposed kernel view (e.g. a PyTorch OIHW weight permuted to HWIO)
    oihw = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    assert_close(fc.conv2d(base, oihw.transpose(2, 3, 1, 0), padding="same"), expected, 1e-5)


def test_inputs_are_never_modified(rng):
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    dy = rng.standard_normal((2, 8, 8, 4)).astype(np.float32)
    dp = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    copies = [a.copy() for a in (x, kernel, bias, dy, dp)]
    for backend in ("c", "numpy"):
        with fc.use_backend(backend):
            fc.conv2d(x, kernel, bias, padding="same", activation="relu")
            fc.conv2d_backward(dy, x, kernel, padding="same")
            fc.max_pool2d(x)
            fc.max_pool2d_backward(dp, x)
    for a, b in zip((x, kernel, bias, dy, dp), copies):
        np.testing.assert_array_equal(a, b)


def test_lists_are_accepted():
    y = fc.conv2d(X.tolist(), K.tolist())
    np.testing.assert_allclose(y, 27.0)


def test_backend_and_thread_settings():
    with pytest.raises(ValueError, match="backend"):
        fc.set_backend("torch")
    with pytest.raises(ValueError, match="backend"):
        with fc.use_backend(None):
            pass
    assert fc.get_backend() == "c"
    with fc.use_backend("NumPy"):
        assert fc.get_backend() == "numpy"
        with fc.use_backend("c"):
            assert fc.get_backend() == "c"
        assert fc.get_backend() == "numpy"
    assert fc.get_backend() == "c"
    with pytest.raises(ValueError, match="`n` must be a positive int"):
        fc.set_num_threads(0)
    with pytest.raises(TypeError, match="`n` must be a positive int"):
        fc.set_num_threads(1.5)
    fc.set_num_threads(3)
    assert fc.get_num_threads() == 3
    assert fc.set_num_threads(None) == 3
    assert fc.get_num_threads() >= 1


def test_float64_on_numpy_backend_computes_in_float64(rng):
    x = rng.standard_normal((1, 5, 5, 2))
    kernel = rng.standard_normal((3, 3, 2, 2))
    with fc.use_backend("numpy"):
        assert fc.conv2d(x, kernel).dtype == np.float64
        assert fc.max_pool2d(x).dtype == np.float64
