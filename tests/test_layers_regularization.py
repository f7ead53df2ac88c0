"""Regularization layers (``layers/regularization.py``): Dropout, SpatialDropout1D/2D/3D,
GaussianNoise, GaussianDropout.

Random masks cannot match Keras' (other generators), so Keras 3 is compared
where the layers are deterministic: inference, and training with rate 0
(forward and the gradients of a small model). The masks are checked by
their statistics and structure, and the backward pass against the mask the
forward pass used.

Where Keras 3 differs from tf.keras 2.4 (fastconv follows 2.4):
GaussianNoise takes no ``seed`` in 2.4; 2.4's SpatialDropout2D/3D configs
lack ``data_format`` (fastconv adds it, as Keras 3, so a channels_first layer
survives ``from_config``); 2.4's Dropout accepts rates in [0, 1) (Keras 3:
[0, 1]).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_close
from keras_compare import import_keras as keras3, run
from fastconv import backend
from fastconv.layers import (Dense, Dropout, Flatten, GaussianDropout, GaussianNoise, Input,
                             SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
from fastconv.models import Model, Sequential


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def all_layers(rate=0.3):
    return [Dropout(rate), SpatialDropout1D(rate), SpatialDropout2D(rate),
            SpatialDropout3D(rate), GaussianNoise(rate), GaussianDropout(rate)]


RANKS = {"Dropout": 3, "SpatialDropout1D": 3, "SpatialDropout2D": 4, "SpatialDropout3D": 5,
         "GaussianNoise": 3, "GaussianDropout": 3}


def sample(rng, layer, size=4, dtype=np.float32):
    shape = (size,) * RANKS[type(layer).__name__]
    return (rng.standard_normal(shape) + 3).astype(dtype)  # no zeros: y / x is the mask


def test_inference_is_the_identity_like_keras3(rng):
    keras = keras3()
    for ours in all_layers():
        name = type(ours).__name__
        theirs = getattr(keras.layers, name)(0.3)
        x = sample(rng, ours)
        np.testing.assert_array_equal(ours(x), x)
        np.testing.assert_array_equal(ours(x, training=False), x)
        np.testing.assert_array_equal(ours.forward(x, training=False)[0], x)
        inputs = keras.Input(x.shape[1:])
        np.testing.assert_array_equal(run(keras.Model(inputs, theirs(inputs)), x), x)


def test_rate_zero_is_the_identity_in_training_like_keras3(rng):
    keras = keras3()
    for ours in all_layers(rate=0.0):
        name = type(ours).__name__
        x = sample(rng, ours)
        y, cache = ours.forward(x, training=True)
        np.testing.assert_array_equal(y, x)
        inputs = keras.Input(x.shape[1:])
        theirs = keras.Model(inputs, getattr(keras.layers, name)(0.0)(inputs))
        np.testing.assert_array_equal(run(theirs, x, training=True), x)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        np.testing.assert_array_equal(ours.backward(dy, cache)[0], dy)


def test_rate_zero_model_gradients_match_keras3(rng):
    """One training step of Dense -> Dropout(0) -> Dense: the same gradients as Keras 3."""
    keras = keras3()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    inputs = Input((4,))
    model = Model(inputs, Dense(2)(Dropout(0.0)(Dense(3, activation="tanh")(inputs))))
    k_inputs = keras.Input((4,))
    k_model = keras.Model(k_inputs, keras.layers.Dense(2)(keras.layers.Dropout(0.0)(
        keras.layers.Dense(3, activation="tanh")(k_inputs))))
    k_model.set_weights(model.get_weights())
    dy = rng.standard_normal((5, 2)).astype(np.float32)
    y = model.forward(x, training=True)
    grads, (dx,) = model.backward(dy, input_gradients=True)
    ky, kdx, kgrads = run(k_model, x, dy, training=True)
    assert_close(y, ky, 1e-5, "output")
    assert_close(dx, kdx, 1e-5, "input gradient")
    for g, kg in zip(grads, kgrads, strict=True):
        assert_close(g, kg, 1e-5, "weight gradient")


# ---------------------------------------------------------------------------
# Masks

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_mask_statistics(rate, dtype):
    n = 200_000
    x = np.ones((n // 100, 100), dtype)
    y, mask = Dropout(rate, seed=1, dtype=np.dtype(dtype).name).forward(x, training=True)
    assert y.dtype == dtype and mask.shape == x.shape
    dropped = np.mean(y == 0)
    # Binomial: 5 standard deviations.
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_array_equal(np.unique(y), [0, dtype(1 / (1 - rate))])


@pytest.mark.parametrize("layer, rank, mask_axes", [
    (lambda: SpatialDropout1D(0.4, seed=2), 3, (0, 2)),
    (lambda: SpatialDropout2D(0.4, seed=2), 4, (0, 3)),
    (lambda: SpatialDropout2D(0.4, data_format="channels_first", seed=2), 4, (0, 1)),
    (lambda: SpatialDropout3D(0.4, seed=2), 5, (0, 4)),
    (lambda: SpatialDropout3D(0.4, data_format="channels_first", seed=2), 5, (0, 1)),
    (lambda: Dropout(0.4, noise_shape=(None, 1, None), seed=2), 3, (0, 2)),
])
def test_spatial_masks_drop_whole_feature_maps(rng, layer, rank, mask_axes):
    layer = layer()
    shape = tuple(40 if axis in mask_axes else 3 for axis in range(rank))
    x = (rng.standard_normal(shape) + 3).astype(np.float32)
    y, mask = layer.forward(x, training=True)
    assert mask.shape == tuple(n if axis in mask_axes else 1 for axis, n in enumerate(shape))
    ratio = y / x
    # One decision per (sample, channel): constant along every other axis.
    np.testing.assert_allclose(ratio, np.broadcast_to(mask, shape), rtol=1e-6)
    decisions = mask.size
    assert abs(np.mean(mask == 0) - 0.4) < 5 * np.sqrt(0.4 * 0.6 / decisions)


def test_seeded_dropout_replays_its_masks_and_calls_differ():
    x = np.ones((50, 40), np.float32)
    first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    a1, a2 = first.forward(x, True)[0], first.forward(x, True)[0]
    b1, b2 = second.forward(x, True)[0], second.forward(x, True)[0]
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)
    assert not np.array_equal(a1, Dropout(0.5, seed=8).forward(x, True)[0])


def test_set_random_seed_makes_unseeded_layers_reproducible(rng):
    def draws():
        backend.set_random_seed(123)
        return [layer.forward(sample(np.random.default_rng(0), layer), True)[0]
                for layer in all_layers()]
    for a, b in zip(draws(), draws(), strict=True):
        np.testing.assert_array_equal(a, b)
    backend.set_random_seed(124)
    other = Dropout(0.5).forward(np.ones((20, 20), np.float32), True)[0]
    backend.set_random_seed(123)
    assert not np.array_equal(other, Dropout(0.5).forward(np.ones((20, 20), np.float32),
                                                          True)[0])
    backend.set_random_seed(None)


def test_backward_applies_the_forward_mask(rng):
    for layer in all_layers(rate=0.5):
        x = sample(rng, layer, size=6)
        y, cache = layer.forward(x, training=True)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        dx, grads = layer.backward(dy, cache)
        assert grads == [] and dx.shape == x.shape
        if isinstance(layer, GaussianNoise):
            np.testing.assert_array_equal(dx, dy)  # additive noise
        else:
            np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-6)
        assert layer.backward(dy, cache, compute_dx=False) == (None, [])


def test_gaussian_noise_statistics():
    x = np.full((400, 500), 2.0, np.float32)
    y, _ = GaussianNoise(0.5).forward(x, training=True)
    noise = y - x
    assert abs(noise.mean()) < 5 * 0.5 / np.sqrt(noise.size)
    assert abs(noise.std() - 0.5) < 0.005


def test_gaussian_dropout_statistics():
    rate = 0.2
    x = np.ones((400, 500), np.float32)
    y, noise = GaussianDropout(rate).forward(x, training=True)
    np.testing.assert_array_equal(y, noise)
    stddev = np.sqrt(rate / (1 - rate))
    assert abs(noise.mean() - 1) < 5 * stddev / np.sqrt(noise.size)
    assert abs(noise.std() - stddev) < 0.005


def test_fit_uses_training_mode_and_predict_does_not(rng):
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    model = Sequential([Dense(16, activation="relu", input_shape=(6,)), Dropout(0.5),
                        GaussianNoise(0.1), Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    assert not np.array_equal(model(x, training=True), model(x, training=True))


# ---------------------------------------------------------------------------
# Arguments, shapes, configs, summary

@pytest.mark.parametrize("make, error, match", [
    (lambda: Dropout(1.0), ValueError, r"`rate` must be a float in the range \[0, 1\), got 1.0"),
    (lambda: Dropout(-0.1), ValueError, "rate"),
    (lambda: Dropout(float("nan")), ValueError, "rate"),
    (lambda: Dropout("0.5"), TypeError, "rate"),
    (lambda: Dropout(True), TypeError, "rate"),
    (lambda: SpatialDropout2D(1.5), ValueError, "rate"),
    (lambda: GaussianDropout(1.0), ValueError, "rate"),
    (lambda: GaussianNoise(-1.0), ValueError, "stddev"),
    (lambda: GaussianNoise(float("inf")), ValueError, "stddev"),
    (lambda: Dropout(0.5, seed=-1), ValueError, "seed"),
    (lambda: Dropout(0.5, seed=1.5), ValueError, "seed"),
    (lambda: Dropout(0.5, noise_shape="abc"), ValueError, "noise_shape"),
    (lambda: Dropout(0.5, noise_shape=(None, 0)), ValueError, "noise_shape"),
    (lambda: SpatialDropout2D(0.5, data_format="NHWC"), ValueError, "data_format must be in"),
    (lambda: SpatialDropout3D(0.5, data_format="CHANNELS_LAST"), ValueError, "data_format"),
    (lambda: SpatialDropout1D(0.5, data_format="channels_last"), TypeError,
     "Keyword argument not understood: data_format"),
    (lambda: GaussianNoise(0.1, seed=1), TypeError, "Keyword argument not understood: seed"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_noise_shape_must_broadcast():
    with pytest.raises(ValueError, match=r"noise_shape.*2 entries for an input of rank 3"):
        Dropout(0.5, noise_shape=(None, 1))(Input((4, 5)))
    with pytest.raises(ValueError, match="does not broadcast"):
        Dropout(0.5, noise_shape=(None, 3, 1))(Input((4, 5)))
    layer = Dropout(0.5, noise_shape=(None, 1, 5))
    layer(Input((4, 5)))
    with pytest.raises(ValueError, match="does not broadcast"):
        layer.forward(np.ones((2, 4, 6), np.float32), training=True)


def test_spatial_dropout_ranks():
    for layer, good, bad in ((SpatialDropout1D(0.5), (4, 3), (4, 4, 3)),
                             (SpatialDropout2D(0.5), (4, 4, 3), (4, 3)),
                             (SpatialDropout3D(0.5), (2, 4, 4, 3), (4, 4, 3))):
        assert layer(Input(good)).shape.as_list() == [None, *good]
        with pytest.raises(ValueError, match=f"expected ndim={len(good) + 1}, found "
                                             f"ndim={len(bad) + 1}"):
            layer(Input(bad))


def test_shapes_symbolic_and_on_arrays(rng):
    for layer in all_layers():
        rank = RANKS[type(layer).__name__]
        shape = (None,) + (4,) * (rank - 1)
        assert layer.compute_output_shape(shape) == shape
        assert layer(Input(shape[1:])).shape.as_list() == list(shape)
        x = sample(rng, layer)
        assert layer(x).shape == x.shape
        assert layer.count_params() == 0 and layer.weights == []


def test_configs_are_tf24s_and_round_trip():
    expected = {
        Dropout(0.5): {"rate": 0.5, "noise_shape": None, "seed": None},
        Dropout(0.2, noise_shape=(None, 1, 4), seed=3): {"rate": 0.2, "noise_shape": (None, 1, 4),
                                                          "seed": 3},
        SpatialDropout1D(0.3): {"rate": 0.3, "noise_shape": None, "seed": None},
        SpatialDropout2D(0.3, data_format="channels_first"): {
            "rate": 0.3, "noise_shape": None, "seed": None, "data_format": "channels_first"},
        SpatialDropout3D(0.3): {"rate": 0.3, "noise_shape": None, "seed": None,
                                "data_format": "channels_last"},
        GaussianNoise(0.1): {"stddev": 0.1},
        GaussianDropout(0.4): {"rate": 0.4},
    }
    for layer, fields in expected.items():
        config = layer.get_config()
        assert config == {"name": layer.name, "trainable": True, "dtype": "float32", **fields}
        clone = type(layer).from_config(config)
        assert clone.get_config() == config
    assert [layer.name for layer in expected] == [
        "dropout", "dropout_1", "spatial_dropout1d", "spatial_dropout2d", "spatial_dropout3d",
        "gaussian_noise", "gaussian_dropout"]


def test_channels_first_survives_from_config(rng):
    layer = SpatialDropout2D.from_config(
        SpatialDropout2D(0.5, data_format="channels_first", seed=0).get_config())
    _, mask = layer.forward(np.ones((8, 6, 3, 3), np.float32), training=True)
    assert mask.shape == (8, 6, 1, 1)


def test_output_tensor_names():
    inputs = Input((4, 3))
    assert Dropout(0.5)(inputs).name == "dropout/Identity:0"
    assert SpatialDropout1D(0.5)(inputs).name == "spatial_dropout1d/Identity:0"
    # in_train_phase returns the input itself outside training: the placeholder.
    assert GaussianNoise(0.5)(inputs).name == "Placeholder:0"


def test_summary_rows():
    model = Sequential([Dense(8, input_shape=(4, 6)), Dropout(0.5), SpatialDropout1D(0.2),
                        GaussianNoise(0.1), GaussianDropout(0.1), Flatten()])
    lines = []
    model.summary(print_fn=lines.append)
    rule, double = "_" * 65, "=" * 65
    rows = [("dense (Dense)", "(None, 4, 8)", "56"), ("dropout (Dropout)", "(None, 4, 8)", "0"),
            # 'spatial_dropout1d (SpatialDropout1D)' cut at 29 columns, the last a space
            ("spatial_dropout1d (SpatialDr", "(None, 4, 8)", "0"),
            ("gaussian_noise (GaussianNois", "(None, 4, 8)", "0"),
            ("gaussian_dropout (GaussianDr", "(None, 4, 8)", "0"),
            ("flatten (Flatten)", "(None, 32)", "0")]
    expected = ['Model: "sequential"', rule,
                f"{'Layer (type)':<29}{'Output Shape':<26}{'Param #':<10}", double]
    for i, (name, shape, params) in enumerate(rows):
        expected += [f"{name:<29}{shape:<26}{params:<10}", double if i == len(rows) - 1 else rule]
    expected += ["Total params: 56", "Trainable params: 56", "Non-trainable params: 0", rule]
    assert lines == expected
