"""TensorFlow's output-size and padding arithmetic (shapes.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastconv as fc
from fastconv.shapes import normalize_pair, normalize_padding, resolve_padding


@pytest.mark.parametrize("size", range(1, 12))
@pytest.mark.parametrize("k", range(1, 6))
@pytest.mark.parametrize("s", range(1, 4))
@pytest.mark.parametrize("d", (1, 2))
def test_same_padding_formula(size, k, s, d):
    r = resolve_padding(size, k, s, "same", d)
    ke = (k - 1) * d + 1
    assert r.out == math.ceil(size / s)
    total = max((r.out - 1) * s + ke - size, 0)
    assert (r.before, r.after) == (total // 2, total - total // 2)
    if size >= ke:
        v = resolve_padding(size, k, s, "valid", d)
        assert v.out == (size - ke) // s + 1 and v.before == v.after == 0


def test_same_padding_matches_explicit_pad_then_valid(rng):
    """'same' is np.pad(before, after) followed by 'valid'; the extra goes bottom/right."""
    x = rng.standard_normal((1, 7, 8, 2))
    kernel = rng.standard_normal((4, 4, 2, 3))
    r_h, r_w = resolve_padding(7, 4, 2, "same"), resolve_padding(8, 4, 2, "same")
    assert r_h.after == r_h.before + 1
    padded = np.pad(x, ((0, 0), (r_h.before, r_h.after), (r_w.before, r_w.after), (0, 0)))
    with fc.use_backend("numpy"):
        np.testing.assert_allclose(fc.conv2d(x, kernel, strides=2, padding="same"),
                                   fc.conv2d(padded, kernel, strides=2, padding="valid"))


def test_conv_output_size_public():
    assert fc.conv_output_size(28, 3) == 26
    assert fc.conv_output_size(28, 3, padding="SAME") == 28
    assert fc.conv_output_size(5, 3, stride=1) == 3           # the seed's O = (5 - 3 + 0)/1 + 1
    assert fc.conv_output_size(56, 3, stride=2, padding="same") == 28
    assert fc.conv_output_size(10, 3, dilation=2) == 6


def test_valid_error_shows_arithmetic():
    with pytest.raises(ValueError) as info:
        fc.conv_output_size(2, 3)
    message = str(info.value)
    assert "out = floor((in - ((k - 1) * d + 1)) / s) + 1 = floor((2 - 3) / 1) + 1 = 0" in message
    assert "O = (I - F + 2P) / S + 1" in message


@pytest.mark.parametrize("value,expected", [(3, (3, 3)), ((2, 3), (2, 3)), ([1, 4], (1, 4)),
                                            (np.int64(2), (2, 2)), (np.array([2, 5]), (2, 5))])
def test_normalize_pair_accepts(value, expected):
    assert normalize_pair(value, "strides") == expected


@pytest.mark.parametrize("value,error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                         ((1, 2, 3), ValueError), ("2", TypeError),
                                         (True, TypeError), ((1, 0), ValueError), (None, TypeError)])
def test_normalize_pair_rejects(value, error):
    with pytest.raises(error, match="strides"):
        normalize_pair(value, "strides")


def test_normalize_padding():
    assert normalize_padding("SAME") == "same"
    with pytest.raises(ValueError, match="padding"):
        normalize_padding("full")
    with pytest.raises(TypeError, match="padding"):
        normalize_padding(1)


# ---------------------------------------------------------------------------
# Explicit pads (PyTorch's arithmetic) and transposed convolutions (Keras')


@pytest.mark.parametrize("value,expected", [
    (1, ((1, 1), (1, 1))), (np.int32(2), ((2, 2), (2, 2))), ((1, 2), ((1, 1), (2, 2))),
    (((0, 1), (2, 3)), ((0, 1), (2, 3))), ([[0, 1], [2, 3]], ((0, 1), (2, 3))),
    ("SAME", "same"), ("Valid", "valid")])
def test_normalize_explicit_padding(value, expected):
    assert normalize_padding(value, explicit=True) == expected


def test_normalize_padding_1d_and_causal():
    assert normalize_padding(3, explicit=True, spatial_dims=1) == ((3, 3),)
    assert normalize_padding((1, 0), explicit=True, spatial_dims=1) == ((1, 0),)
    assert normalize_padding("Causal", explicit=True, spatial_dims=1, causal=True) == "causal"
    with pytest.raises(ValueError, match="causal"):
        normalize_padding("causal", explicit=True)
    # the Keras layers keep their string-only padding
    with pytest.raises(TypeError, match="`padding` must be the string 'valid' or 'same'"):
        normalize_padding(1)


def test_conv_output_size_explicit_and_causal():
    assert fc.conv_output_size(5, 3, stride=2, padding=1) == 3      # O = (5 - 3 + 2) / 2 + 1
    assert fc.conv_output_size(5, 3, padding=(2, 0)) == 5
    assert fc.conv_output_size(7, 3, stride=2, padding="causal", dilation=2) == 4   # ceil(7 / 2)
    with pytest.raises(ValueError, match=r"floor\(\(2 \+ 0 \+ 0 - 3\) / 1\) \+ 1 = 0"):
        fc.conv_output_size(2, 3, padding=0)


def keras_deconv_output_length(size, k, padding, output_padding, stride, dilation):
    """tf.keras 2.4's conv_utils.deconv_output_length, copied."""
    k = k + (k - 1) * (dilation - 1)
    if output_padding is None:
        if padding == "valid":
            return size * stride + max(k - stride, 0)
        return size * stride
    pad = k // 2 if padding == "same" else 0
    return (size - 1) * stride + k - 2 * pad + output_padding


@pytest.mark.parametrize("size", range(1, 7))
@pytest.mark.parametrize("k", range(1, 5))
@pytest.mark.parametrize("s", range(1, 4))
@pytest.mark.parametrize("d", (1, 2))
def test_conv_transpose_output_size_is_keras_deconv_output_length(size, k, s, d):
    for padding in ("valid", "same"):
        for op in [None] + list(range(s)):
            expected = keras_deconv_output_length(size, k, padding, op, s, d)
            ke = (k - 1) * d + 1
            if padding == "same" and op is not None and -(-expected // s) != size:
                # TensorFlow refuses these (an even kernel with output_padding 0)
                assert ke % 2 == 0 and op == 0
                with pytest.raises(ValueError, match="`output_padding`"):
                    fc.conv_transpose_output_size(size, k, s, padding, op, d)
                continue
            got = fc.conv_transpose_output_size(size, k, s, padding, op, d)
            assert got == expected
            # the convolution it transposes maps the output back to the input size
            assert fc.conv_output_size(got, k, s, padding, d) == size
        # PyTorch's padding: out = (in - 1) * s - 2p + ke + op
        for p in range(3):
            out = (size - 1) * s - 2 * p + ke
            if out >= 1:
                assert fc.conv_transpose_output_size(size, k, s, p, None, d) == out
