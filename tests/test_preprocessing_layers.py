"""Preprocessing layers (``layers/preprocessing.py``, ``layers/augmentation.py``)
and their geometry (``_image.py``).

Oracles: Keras 3 on torch for what is deterministic (Rescaling, Resizing
bilinear/nearest, CenterCrop, Normalization, keras.ops.image.affine_transform,
and torch autograd for their gradients). The random layers cannot match
Keras' draws (other generators), so each transform is checked against a
direct NumPy computation instead: flips against np.flip, a rotation by
exactly 90 degrees against np.rot90, whole-pixel translations against
np.pad/np.roll with the fill mode, zoom 1 against the identity; the fill
modes by hand on a 4-pixel row, TensorFlow's formulas included.

Where Keras 3 differs from tf.keras 2.4 (fastconv follows 2.4): 'wrap'
(Keras 3 wraps the interpolation taps, TF the coordinate, see
``_image.map_coordinates``); integer inputs of Resizing (Keras 3 resizes
uint8 in uint8 and rounds); RandomContrast draws one factor per batch.
"""
from __future__ import annotations

import numpy as np
import pytest

from keras_compare import assert_close, import_keras as keras3, run
from fastconv import _image, backend
from fastconv.layers import (CenterCrop, Conv2D, Dense, Flatten, Input, Normalization,
                             RandomContrast, RandomCrop, RandomFlip, RandomRotation,
                             RandomTranslation, RandomZoom, Rescaling, Resizing, experimental)
from fastconv.models import Model, Sequential


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def images(rng, shape=(3, 7, 9, 2)):
    return rng.random(shape, dtype=np.float32)


def numpy_of(tensor):
    """A Keras (torch) tensor as NumPy (not convert_to_numpy, whose np.array
    NumPy 2 flags with a DeprecationWarning)."""
    return tensor.detach().cpu().numpy()


RANDOM_LAYERS = [lambda **k: RandomFlip(**k), lambda **k: RandomRotation(0.2, **k),
                 lambda **k: RandomZoom(0.3, 0.2, **k),
                 lambda **k: RandomTranslation(0.2, 0.3, **k),
                 lambda **k: RandomContrast(0.5, **k)]


# ---------------------------------------------------------------------------
# _image: resizing

@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_resize_matches_keras3(rng, method):
    keras = keras3()
    x = images(rng)
    for size in [(14, 18), (3, 4), (5, 13), (10, 3), (7, 9)]:
        expected = numpy_of(keras.layers.Resizing(*size, interpolation=method)(x))
        assert_close(_image.resize(x, *size, method), expected, 1e-5, f"{method} {size}")
    single = _image.resize(x[0], 4, 5, method)          # one image in, one image out
    np.testing.assert_array_equal(single, _image.resize(x[:1], 4, 5, method)[0])


def test_resize_area_and_bicubic_by_hand(rng):
    x = images(rng, (2, 6, 8, 3))
    # area: an integer factor is the block mean; 3 -> 2 weighs the middle pixel half
    blocks = x.reshape(2, 3, 2, 4, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(_image.resize(x, 3, 4, "area"), blocks, rtol=1e-6)
    row = np.array([1.0, 4.0, 10.0]).reshape(1, 1, 3, 1)
    np.testing.assert_allclose(_image.resize(row, 1, 2, "area").ravel(),
                               [(1 + 0.5 * 4) / 1.5, (0.5 * 4 + 10) / 1.5])
    # bicubic: Keys' a = -0.5 reproduces a linear ramp away from the borders ...
    ramp = np.tile(np.arange(8.0).reshape(1, 8, 1, 1), (1, 1, 2, 1))
    up = _image.resize(ramp, 16, 2, "bicubic")[0, :, 0, 0]
    source = (np.arange(16) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(up[3:-3], source[3:-3], atol=1e-12)
    # ... and at the border drops the taps outside the image, renormalising the rest
    d, a = 0.75, -0.5                                   # output 0 samples -0.25: taps -2..1
    near = ((a + 2) * (1 - d) - (a + 3)) * (1 - d) ** 2 + 1
    far = ((a * (2 - d) - 5 * a) * (2 - d) + 8 * a) * (2 - d) - 4 * a
    np.testing.assert_allclose(up[0], (near * 0 + far * 1) / (near + far), atol=1e-12)
    constant = np.full((1, 5, 3, 1), 2.5, np.float32)
    for method in _image.RESIZE_METHODS:
        np.testing.assert_allclose(_image.resize(constant, 7, 2, method), 2.5, rtol=1e-6)
        np.testing.assert_array_equal(_image.resize(x, 6, 8, method), x)   # same size


@pytest.mark.parametrize("method", _image.RESIZE_METHODS)
def test_resize_backward_is_the_transpose(rng, method):
    a, b = rng.random((2, 5, 6, 2)), rng.random((2, 4, 9, 2))
    forward = np.sum(_image.resize(a, 4, 9, method) * b)
    assert np.isclose(forward, np.sum(a * _image.resize_backward(b, (5, 6), method)))


def test_resize_refuses_bad_arguments():
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="`method`"):
        _image.resize(x, 2, 2, "linear")
    with pytest.raises(NotImplementedError, match="lanczos3"):
        _image.resize(x, 2, 2, "lanczos3")
    with pytest.raises(ValueError, match="`height`"):
        _image.resize(x, 0, 2)
    with pytest.raises(ValueError, match="`images`"):
        _image.resize(np.zeros((4, 4)), 2, 2)


# ---------------------------------------------------------------------------
# _image: warps

def random_transforms(rng, n, projective=False):
    t = np.concatenate([rng.normal(0, 0.3, (n, 6)), np.zeros((n, 2))], axis=1)
    t[:, [0, 4]] += 1
    t[:, [2, 5]] *= 6
    if projective:
        t[:, 6:] = rng.normal(0, 0.01, (n, 2))
    return t


@pytest.mark.parametrize("fill_mode", ["constant", "nearest", "reflect"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_transform_matches_keras3(rng, fill_mode, interpolation):
    keras = keras3()
    x = images(rng, (4, 9, 11, 3))
    t = random_transforms(rng, 4)   # Keras 3's torch warp drops the projective terms
    expected = numpy_of(keras.ops.image.affine_transform(
        x, t.astype(np.float32), interpolation, fill_mode, 0.3))
    assert_close(_image.affine_transform(x, t, interpolation, fill_mode, 0.3), expected, 1e-5,
                 f"{fill_mode} {interpolation}")
    # a 3x3 matrix (scaled: only the ratio counts) is the 8-vector
    matrices = np.concatenate([t, np.ones((4, 1))], axis=1).reshape(4, 3, 3) * 2
    np.testing.assert_allclose(_image.affine_transform(x, matrices, interpolation, fill_mode, 0.3),
                               _image.affine_transform(x, t, interpolation, fill_mode, 0.3))


def test_affine_gradient_matches_torch_autograd(rng):
    keras = keras3()
    import torch
    x = images(rng, (2, 6, 7, 2))
    t = random_transforms(rng, 2)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    y = keras.ops.image.affine_transform(xt, torch.tensor(t, dtype=torch.float32), "bilinear",
                                         "reflect")
    (y * torch.tensor(dy)).sum().backward()
    sampling = _image.affine_sampling(x.shape, t, "bilinear", "reflect")
    assert_close(_image.sample_backward(dy, sampling), xt.grad.numpy(), 1e-5)
    # and, in every mode, the transpose of the forward warp
    a, b = rng.random(x.shape), rng.random(x.shape)
    for mode in _image.FILL_MODES:
        for interpolation in _image.INTERPOLATIONS:
            s = _image.affine_sampling(x.shape, t, interpolation, mode, dtype=np.float64)
            assert np.isclose(np.sum(_image.sample(a, s) * b),
                              np.sum(a * _image.sample_backward(b, s))), (mode, interpolation)


def test_fill_modes_by_hand():
    """TF's MapCoordinate on a row of 4 pixels: reflect (d c b a | a b c d |
    d c b a), wrap (a b c d | a b c d) with TF's quirks (clamped between the
    edges: -0.3 reads d, 3.4 reads a; -4 reads d, not a), nearest, constant."""
    c = np.array([-5.0, -4, -2, -1, -0.3, 0, 3, 3.4, 4, 5, 8])
    expected = {"reflect": [3, 3, 1, 0, 0, 0, 3, 3, 3, 2, 0],
                "wrap": [3, 3, 2, 3, 3, 0, 3, 0, 0, 1, 0],
                "nearest": [0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3],
                "constant": c}
    for mode, values in expected.items():
        np.testing.assert_allclose(_image.map_coordinates(c, 4, mode), values, err_msg=mode)
    # end to end: a row read half a pixel to the left, nearest rounding halves away
    # from zero (TF's std::round): output x samples x - 0.5, i.e. pixel x (x >= 1)
    row = np.array([1.0, 2, 3, 4]).reshape(1, 1, 4, 1)
    shift = _image.translation_matrices([0.5], [0])
    np.testing.assert_array_equal(
        _image.affine_transform(row, shift, "nearest", "constant", -9).ravel(), [-9, 2, 3, 4])
    np.testing.assert_allclose(
        _image.affine_transform(row, shift, "bilinear", "constant", -9).ravel(),
        [-4, 1.5, 2.5, 3.5])
    # projective: output x samples x / (c0 x + 1); where c0 x + 1 = 0, fill_value
    ramp = np.arange(8.0).reshape(1, 1, 8, 1)
    out = _image.affine_transform(ramp, [1, 0, 0, 0, 1, 0, 0.25, 0]).ravel()
    np.testing.assert_allclose(out, np.arange(8) / (0.25 * np.arange(8) + 1))
    out = _image.affine_transform(ramp, [1, 0, 0, 0, 1, 0, -0.5, 0], fill_value=-1).ravel()
    assert out[2] == -1 and out[1] == 2 and np.all(out[3:] == -1)   # x = 3: -6 is outside


def test_rotation_flip_and_crop_helpers(rng):
    x = images(rng, (2, 6, 6, 3))
    quarter = _image.rotation_matrices([np.pi / 2, -np.pi / 2], 6, 6)
    turned = _image.affine_transform(x, quarter, "nearest")
    np.testing.assert_array_equal(turned[0], np.rot90(x[0], 1))
    np.testing.assert_array_equal(turned[1], np.rot90(x[1], -1))
    flipped = _image.flip(x, [True, False], True)
    np.testing.assert_array_equal(flipped[0], x[0, ::-1, ::-1])
    np.testing.assert_array_equal(flipped[1], x[1, ::-1])
    np.testing.assert_array_equal(_image.crop(x, 1, 2, 3, 4), x[:, 1:4, 2:6])
    back = _image.crop_backward(np.ones((2, 3, 4, 3)), (6, 6), 1, 2)
    assert back.sum() == 2 * 3 * 4 * 3 and back[:, 1:4, 2:6].all()
    assert _image.center_crop_box(7, 8, 4, 4) == (1, 2, 4, 4)
    assert _image.aspect_crop_box(10, 20, 5, 5) == (0, 5, 10, 10)
    with pytest.raises(ValueError, match="crop box"):
        _image.crop(x, 4, 0, 3, 3)
    with pytest.raises(ValueError, match="`matrices`"):
        _image.affine_transform(x, np.eye(2))


# ---------------------------------------------------------------------------
# Deterministic layers against Keras 3

def test_rescaling_resizing_center_crop_match_keras3(rng):
    keras = keras3()
    x = (rng.random((3, 8, 10, 2)) * 255).astype(np.float32)
    pairs = [(Rescaling(1 / 255, -0.5), keras.layers.Rescaling(1 / 255, -0.5)),
             (Rescaling([0.5, 2.0]), keras.layers.Rescaling([0.5, 2.0])),
             (CenterCrop(5, 7), keras.layers.CenterCrop(5, 7)),
             (CenterCrop(8, 3), keras.layers.CenterCrop(8, 3))]
    for method in ("bilinear", "nearest"):
        for crop in (False, True):
            pairs += [(Resizing(5, 7, method, crop), keras.layers.Resizing(5, 7, method, crop)),
                      (Resizing(12, 6, method, crop), keras.layers.Resizing(12, 6, method, crop))]
    for ours, theirs in pairs:
        what = repr(ours.get_config())
        inputs = keras.Input(x.shape[1:])
        k_model = keras.Model(inputs, theirs(inputs))
        expected = run(k_model, x)
        y = ours(x)
        assert y.dtype == np.float32 and y.shape == expected.shape, what
        assert_close(y, expected, 1e-5, what)
        # the backward pass against torch autograd
        upstream = rng.standard_normal(expected.shape).astype(np.float32)
        _, k_dx, _ = run(k_model, x, upstream)
        _, cache = ours.forward(x)
        assert_close(ours.backward(upstream, cache)[0], k_dx, 1e-5, what)
    assert Rescaling(2.0)(np.arange(4, dtype=np.uint8).reshape(2, 2)).dtype == np.float32


def test_image_layers_take_one_image_and_report_shapes(rng):
    x = images(rng, (7, 9, 2))
    np.testing.assert_array_equal(Resizing(4, 5)(x), _image.resize(x[None], 4, 5)[0])
    assert CenterCrop(3, 3)(x).shape == (3, 3, 2)
    assert RandomCrop(3, 4, seed=0)(x).shape == (3, 4, 2)
    assert RandomRotation(0.1, seed=0)(x).shape == x.shape
    inputs = Input((8, 10, 3))
    for layer, shape in [(Resizing(4, 5), (None, 4, 5, 3)), (CenterCrop(6, 6), (None, 6, 6, 3)),
                         (RandomCrop(2, 3), (None, 2, 3, 3)), (RandomFlip(), (None, 8, 10, 3)),
                         (Rescaling(2.0), (None, 8, 10, 3)), (Normalization(), (None, 8, 10, 3))]:
        assert tuple(layer(inputs).shape) == shape, type(layer).__name__
        assert layer.compute_output_shape((None, 8, 10, 3)) == shape
    with pytest.raises(ValueError, match="`height`"):
        CenterCrop(9, 4)(inputs)
    with pytest.raises(ValueError, match="min_ndim=3"):
        Resizing(2, 2)(np.zeros((4, 4), np.float32))


def test_normalization_adapt_and_call_match_keras3(rng):
    keras = keras3()
    for axis, shape in [(-1, (40, 5)), ((1, 3), (20, 3, 4, 2)), (None, (30, 2, 3)), (2, (9, 3, 4))]:
        data = rng.normal(3, 2, shape).astype(np.float32)
        ours, theirs = Normalization(axis=axis), keras.layers.Normalization(axis=axis)
        ours.adapt(data)
        theirs.adapt(data)
        assert_close(ours(data), numpy_of(theirs(data)), 1e-5, f"axis {axis}")
        # in batches, from a generator, give the same statistics
        batched = Normalization(axis=axis)
        batched.adapt(data[i:i + 7] for i in range(0, len(data), 7))
        for w, v in zip(batched.get_weights(), ours.get_weights()):
            np.testing.assert_allclose(w, v, rtol=1e-5, atol=1e-6)
    layer = Normalization()
    layer(np.zeros((2, 4), np.float32))
    assert [w.shape for w in layer.get_weights()] == [(4,), (4,), ()]
    assert layer.count_params() == 9 and not layer.trainable_weights


def test_normalization_merges_constants_and_gradients(rng):
    data = rng.normal(1, 3, (50, 3))
    merged = Normalization()
    merged.adapt(data[:20])
    merged.adapt(data[20:], reset_state=False)   # tf.keras 2.4's incremental adapt
    np.testing.assert_allclose(merged.mean.numpy(), data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(merged.variance.numpy(), data.var(0), rtol=1e-5)
    assert int(merged.count.numpy()) == 50
    fixed = Normalization(mean=[1.0, 2.0, 3.0], variance=4.0)
    x = rng.random((4, 3)).astype(np.float32)
    np.testing.assert_allclose(fixed(x), (x - [1, 2, 3]) / 2, rtol=1e-6)
    assert fixed.get_weights() == []
    y, cache = fixed.forward(x)
    np.testing.assert_allclose(fixed.backward(np.ones_like(x), cache)[0], 0.5)
    with pytest.raises(ValueError, match="adapt"):
        fixed.adapt(x)
    epsilon = Normalization(mean=0.0, variance=0.0)   # sqrt(0) is floored at epsilon
    np.testing.assert_allclose(epsilon(np.ones((1, 2))), 1 / backend.epsilon(), rtol=1e-6)


# ---------------------------------------------------------------------------
# Random layers: each transform checked directly

def test_random_flip_flips_whole_images(rng):
    x = images(rng, (64, 5, 6, 1))
    for mode, variants in [("horizontal", [(), (2,)]), ("vertical", [(), (1,)]),
                           ("horizontal_and_vertical", [(), (1,), (2,), (1, 2)])]:
        y = RandomFlip(mode, seed=3)(x)
        seen = set()
        for original, out in zip(x, y):
            matches = [axes for axes in variants
                       if np.array_equal(out, np.flip(original, [a - 1 for a in axes]))]
            assert matches, mode
            seen.add(matches[0])
        assert seen == set(variants), mode      # each flip happens in a batch of 64


def test_random_rotation_by_a_quarter_turn_is_rot90(rng):
    x = images(rng, (3, 6, 6, 2))
    np.testing.assert_allclose(RandomRotation((0.25, 0.25))(x), np.rot90(x, 1, axes=(1, 2)),
                               atol=1e-6)
    np.testing.assert_array_equal(RandomRotation((-0.25, -0.25), interpolation="nearest")(x),
                                  np.rot90(x, -1, axes=(1, 2)))


@pytest.mark.parametrize("fill_mode,pad", [("reflect", "symmetric"), ("wrap", "wrap"),
                                           ("nearest", "edge"), ("constant", "constant")])
def test_random_translation_by_whole_pixels(rng, fill_mode, pad):
    x = images(rng, (2, 8, 5, 1))
    # down 2 rows (0.25 * 8) and left 1 column (-0.2 * 5)
    y = RandomTranslation((0.25, 0.25), (-0.2, -0.2), fill_mode=fill_mode, fill_value=7)(x)
    kwargs = {"constant_values": 7} if pad == "constant" else {}
    padded = np.pad(x, ((0, 0), (2, 0), (0, 1), (0, 0)), mode=pad, **kwargs)
    np.testing.assert_allclose(y, padded[:, :8, 1:], atol=1e-6)


def test_random_zoom_against_the_sampling_formula(rng):
    keras = keras3()
    x = images(rng, (2, 7, 9, 1))
    np.testing.assert_array_equal(RandomZoom(0.0)(x), x)           # zoom 1
    y = RandomZoom((-0.5, -0.5), (0.25, 0.25), fill_mode="nearest")(x)
    zy, zx = 0.5, 1.25             # output (x, y) samples input (zx x + ox, zy y + oy)
    t = np.tile(np.array([zx, 0, 4 * (1 - zx), 0, zy, 3 * (1 - zy), 0, 0], np.float32), (2, 1))
    expected = numpy_of(keras.ops.image.affine_transform(x, t, "bilinear", "nearest"))
    assert_close(y, expected, 1e-5)
    np.testing.assert_allclose(y[:, 3, 4], x[:, 3, 4], rtol=1e-6)   # the centre stays


def test_random_contrast_scales_deviations_from_the_mean(rng):
    x = images(rng, (4, 5, 6, 3))
    y = RandomContrast((0.2, 0.4), seed=1)(x)
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y.mean(axis=(1, 2), keepdims=True), mean, atol=1e-6)
    factors = (y - mean) / (x - mean)
    np.testing.assert_allclose(factors, factors.flat[0], rtol=1e-4)  # one per batch (2.4)
    assert 0.8 <= factors.flat[0] <= 1.4


def test_random_crop_windows_and_inference(rng):
    keras = keras3()
    x = images(rng, (3, 8, 12, 2))
    y = RandomCrop(4, 5, seed=0)(x)
    windows = [(i, j) for i in range(5) for j in range(8)
               if np.array_equal(y, x[:, i:i + 4, j:j + 5])]
    assert len(windows) == 1                  # one window, the same for the batch
    # inference: resized until the shorter side fits (8x12 -> 4x6), centre crop
    expected = numpy_of(keras.layers.Resizing(4, 6)(x))[:, :, 1:5]
    assert_close(RandomCrop(4, 4)(x, training=False), expected, 1e-5)
    with pytest.raises(ValueError, match="`height`"):
        RandomCrop(9, 4)(x)


# ---------------------------------------------------------------------------
# Random layers: modes, seeds, gradients, configs

def test_random_layers_pass_through_in_inference_and_augment_in_training(rng):
    x = images(rng, (4, 6, 7, 2))
    for make in RANDOM_LAYERS:
        layer = make(seed=0)
        name = type(layer).__name__
        for out in (layer(x, training=False), layer.forward(x, training=False)[0]):
            np.testing.assert_array_equal(out, x, err_msg=name)
        assert layer(x.astype(np.float64), training=False).dtype == np.float32
        assert not np.allclose(layer(x, training=True), x), name
        assert not np.allclose(layer(x), x), name   # Keras' call defaults to training=True


def test_seeded_layers_replay_and_the_global_seed_reproduces(rng):
    x = images(rng, (4, 6, 7, 2))
    for make in RANDOM_LAYERS + [lambda **k: RandomCrop(3, 4, **k)]:
        first, second = make(seed=5), make(seed=5)
        a = first(x)
        np.testing.assert_array_equal(a, second(x))
        assert not np.array_equal(first(x), a) or isinstance(first, RandomFlip)
        runs = []
        for _ in range(2):
            backend.set_random_seed(11)
            runs.append(make()(x))
        np.testing.assert_array_equal(*runs)


def test_backward_is_the_transpose_of_the_drawn_transform(rng):
    a = rng.random((8, 6, 7, 2))     # 8 images: every kind of flip is drawn
    b = rng.random((8, 6, 7, 2))
    makers = RANDOM_LAYERS + [lambda **k: RandomRotation(0.3, fill_mode=m, **k)
                              for m in ("wrap", "constant", "nearest")]
    makers += [lambda **k: RandomZoom(0.3, interpolation="nearest", **k)]
    for make in makers:
        layer = make(seed=9, dtype="float64")
        y, cache = layer.forward(a, training=True)
        dx = layer.backward(b, cache)[0]
        assert np.isclose(np.sum(y * b), np.sum(a * dx)), layer.get_config()
        assert layer.backward(b, None)[0] is not None
    crop = RandomCrop(4, 5, seed=1, dtype="float64")
    for training in (True, False):
        y, cache = crop.forward(a, training=training)
        c = rng.random(y.shape)
        assert np.isclose(np.sum(y * c), np.sum(a * crop.backward(c, cache)[0]))


def test_configs_round_trip_with_keras_keys():
    layers = [Rescaling(0.5, 1.0), Resizing(3, 4, "bicubic", True), CenterCrop(2, 3),
              Normalization(axis=(1, 2), mean=[1.0, 2.0], variance=[1.0, 4.0]),
              RandomFlip("vertical", seed=1),
              RandomRotation((-0.1, 0.2), "wrap", "nearest", 2, 0.5),
              RandomZoom(0.2, (0.1, 0.3), "constant", seed=3), RandomTranslation(0.1, 0.2, seed=4),
              RandomContrast(0.3, seed=5), RandomCrop(5, 6, seed=6)]
    keys = {"Rescaling": {"scale", "offset"}, "Resizing": {"height", "width", "interpolation",
                                                           "crop_to_aspect_ratio"},
            "CenterCrop": {"height", "width"}, "Normalization": {"axis", "mean", "variance"},
            "RandomFlip": {"mode", "seed"}, "RandomContrast": {"factor", "seed"},
            "RandomRotation": {"factor", "fill_mode", "fill_value", "interpolation", "seed"},
            "RandomCrop": {"height", "width", "seed"}}
    affine = {"height_factor", "width_factor", "fill_mode", "fill_value", "interpolation", "seed"}
    keys.update(RandomZoom=affine, RandomTranslation=affine)
    for layer in layers:
        config = layer.get_config()
        name = type(layer).__name__
        assert set(config) == keys[name] | {"name", "trainable", "dtype"}, name
        assert type(layer).from_config(config).get_config() == config, name
    assert experimental.preprocessing.RandomZoom is RandomZoom


def test_the_layers_train_and_predict_in_a_sequential_model(rng):
    backend.set_random_seed(0)
    x = (rng.random((16, 10, 10, 1)) * 255).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = Sequential([
        Input((10, 10, 1)), Rescaling(1 / 255), RandomFlip(seed=1), RandomRotation(0.1, seed=2),
        RandomZoom(0.1, seed=3), RandomTranslation(0.1, 0.1, seed=4), RandomContrast(0.2, seed=5),
        RandomCrop(8, 8, seed=6), Conv2D(4, 3, activation="relu"), Flatten(),
        Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    np.testing.assert_array_equal(model.predict(x), model.predict(x))  # inference: no draws


def test_gradients_flow_through_the_layers_inside_a_model(rng):
    """A trainable kernel before the preprocessing layers gets its gradient
    through their backward passes (training mode, the drawn transforms),
    checked by finite differences with the same draws (the global seed reset
    before every forward pass)."""
    inputs = Input((6, 6, 2))
    h = Conv2D(2, 1, use_bias=False, dtype="float64")(inputs)
    for layer in [Normalization(mean=0.5, variance=2.0, dtype="float64"),
                  Resizing(8, 7, dtype="float64"), CenterCrop(7, 7, dtype="float64"),
                  Rescaling(3.0, dtype="float64"), RandomFlip(dtype="float64"),
                  RandomRotation(0.2, dtype="float64"), RandomZoom(0.2, dtype="float64"),
                  RandomTranslation(0.2, 0.2, dtype="float64"),
                  RandomContrast(0.3, dtype="float64"), RandomCrop(4, 4, dtype="float64")]:
        h = layer(h)
    model = Model(inputs, Flatten(dtype="float64")(h))
    x = rng.random((2, 6, 6, 2))
    upstream = rng.standard_normal((2, 32))

    def loss():
        backend.set_random_seed(3)
        return np.sum(model.forward(x, training=True) * upstream)

    kernel = model.layers[1].weights[0]
    loss()
    analytic = model.backward(upstream)[0]
    numeric = np.zeros_like(analytic)
    for index in np.ndindex(*analytic.shape):
        for sign in (1, -1):
            kernel.numpy()[index] += sign * 1e-6
            numeric[index] += sign * loss() / 2e-6
            kernel.numpy()[index] -= sign * 1e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


BAD_ARGUMENTS = [
    (lambda: Rescaling("half"), "scale"), (lambda: Resizing(0, 3), "height"),
    (lambda: Resizing(3, 3, "cubic"), "interpolation"), (lambda: CenterCrop(3, -1), "width"),
    (lambda: Normalization(axis=0), "axis"), (lambda: Normalization(mean=1.0), "variance"),
    (lambda: RandomFlip("diagonal"), "mode"), (lambda: RandomFlip(seed=-1), "seed"),
    (lambda: RandomRotation((0.2, 0.1)), "factor"),
    (lambda: RandomRotation(0.1, fill_mode="mirror"), "fill_mode"),
    (lambda: RandomRotation(0.1, interpolation="bicubic"), "interpolation"),
    (lambda: RandomZoom(1.5), "height_factor"), (lambda: RandomZoom(0.1, -2.0), "width_factor"),
    (lambda: RandomTranslation(0.1, (0.3, 0.2)), "width_factor"),
    (lambda: RandomTranslation(0.1, 0.1, fill_value="x"), "fill_value"),
    (lambda: RandomContrast(-0.1), "factor"), (lambda: RandomContrast((1.5, 0.1)), "factor"),
    (lambda: RandomCrop(2, 0), "width"),
]


@pytest.mark.parametrize("make,argument", BAD_ARGUMENTS, ids=[a for _, a in BAD_ARGUMENTS])
def test_bad_arguments_name_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()

