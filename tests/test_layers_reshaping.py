"""ZeroPadding2D, Cropping2D, UpSampling2D, Reshape and Permute, both layouts, against
Keras 3 (torch backend) and tf.keras 2.4's rules."""
from __future__ import annotations

import numpy as np
import pytest

from fastconv import backend
from fastconv import layers as L
from fastconv.models import Model, Sequential
from keras_compare import compare_models, import_keras


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# Against Keras 3: Input -> Conv2D (weights first) -> [to NCHW] -> layer -> Flatten -> Dense

SPATIAL = [  # layers with a data_format: (class name, kwargs)
    ("ZeroPadding2D", {}),
    ("ZeroPadding2D", {"padding": 2}),
    ("ZeroPadding2D", {"padding": (1, 2)}),
    ("ZeroPadding2D", {"padding": ((1, 0), (2, 3))}),
    ("Cropping2D", {"cropping": 1}),
    ("Cropping2D", {"cropping": (0, 2)}),
    ("Cropping2D", {"cropping": ((1, 0), (2, 1))}),
    ("UpSampling2D", {}),
    ("UpSampling2D", {"size": (2, 3)}),
    ("UpSampling2D", {"size": 3, "interpolation": "bilinear"}),
    ("UpSampling2D", {"size": (1, 2), "interpolation": "bilinear"}),
]
LAYOUT_FREE = [
    ("Reshape", {"target_shape": (-1,)}),
    ("Reshape", {"target_shape": (6, -1, 2)}),
    ("Reshape", {"target_shape": (4, 42)}),
    ("Permute", {"dims": (2, 1, 3)}),
    ("Permute", {"dims": (3, 1, 2)}),
]


def build(lib, layer, channels_first):
    inputs = lib.layers.Input((7, 6, 3))
    x = lib.layers.Conv2D(4, 3, padding="same")(inputs)
    if channels_first:
        x = lib.layers.Permute((3, 1, 2))(x)
    x = lib.layers.Flatten()(layer(x))
    return lib.models.Model(inputs, lib.layers.Dense(3)(x))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name, kwargs", SPATIAL)
def test_spatial_layers_match_keras(name, kwargs, data_format):
    keras = import_keras()
    import fastconv
    cf = data_format == "channels_first"
    fc_model = build(fastconv, getattr(L, name)(data_format=data_format, **kwargs), cf)
    k_model = build(keras, getattr(keras.layers, name)(data_format=data_format, **kwargs), cf)
    compare_models(fc_model, k_model, [random((2, 7, 6, 3), seed=2)])


@pytest.mark.parametrize("name, kwargs", LAYOUT_FREE)
def test_reshape_and_permute_match_keras(name, kwargs):
    keras = import_keras()
    import fastconv
    fc_model = build(fastconv, getattr(L, name)(**kwargs), False)
    k_model = build(keras, getattr(keras.layers, name)(**kwargs), False)
    compare_models(fc_model, k_model, [random((2, 7, 6, 3), seed=3)])


def test_padding_and_cropping_are_each_others_backward():
    x = random((2, 3, 4, 5), seed=4)
    pad = L.ZeroPadding2D(((1, 2), (0, 3)), data_format="channels_first")
    y, cache = pad.forward(x)
    assert y.shape == (2, 3, 7, 8)
    np.testing.assert_array_equal(y[:, :, 1:5, 0:5], x)
    assert np.count_nonzero(y) == np.count_nonzero(x)
    dy = random(y.shape, seed=5)
    dx, weights = pad.backward(dy, cache)
    np.testing.assert_array_equal(dx, dy[:, :, 1:5, 0:5])
    assert weights == []
    crop = L.Cropping2D(((1, 2), (0, 3)), data_format="channels_first")
    z, crop_cache = crop.forward(y)
    np.testing.assert_array_equal(z, x)
    back, _ = crop.backward(dx, crop_cache)
    np.testing.assert_array_equal(back, pad.forward(dx)[0])  # dx put back inside zeros


# ---------------------------------------------------------------------------
# Keras 2.4's arguments, names and configs

def test_names():
    assert [L.ZeroPadding2D().name, L.Cropping2D().name, L.UpSampling2D().name,
            L.Reshape((1,)).name, L.Permute((1,)).name, L.ZeroPadding2D().name] == [
        "zero_padding2d", "cropping2d", "up_sampling2d", "reshape", "permute",
        "zero_padding2d_1"]


def test_configs_are_keras_24s_and_round_trip():
    base = {"trainable": True, "dtype": "float32"}
    cases = [
        (L.ZeroPadding2D(), {"name": "zero_padding2d", "padding": ((1, 1), (1, 1)),
                             "data_format": "channels_last"}),
        (L.ZeroPadding2D((2, 3), "channels_first"),
         {"name": "zero_padding2d_1", "padding": ((2, 2), (3, 3)),
          "data_format": "channels_first"}),
        (L.Cropping2D(), {"name": "cropping2d", "cropping": ((0, 0), (0, 0)),
                          "data_format": "channels_last"}),
        (L.Cropping2D(((1, 2), 3)), {"name": "cropping2d_1", "cropping": ((1, 2), (3, 3)),
                                     "data_format": "channels_last"}),
        (L.UpSampling2D(), {"name": "up_sampling2d", "size": (2, 2),
                            "data_format": "channels_last", "interpolation": "nearest"}),
        (L.UpSampling2D(3, "channels_first", "bilinear"),
         {"name": "up_sampling2d_1", "size": (3, 3), "data_format": "channels_first",
          "interpolation": "bilinear"}),
        (L.Reshape([2, -1]), {"name": "reshape", "target_shape": (2, -1)}),
        (L.Permute([2, 1]), {"name": "permute", "dims": (2, 1)}),
    ]
    for layer, expected in cases:
        config = layer.get_config()
        assert config == {**base, **expected}
        clone = type(layer).from_config(config)
        assert clone.get_config() == config and type(clone) is type(layer)


def test_configs_agree_with_keras_3_but_for_dtype():
    keras = import_keras()
    for name, kwargs in SPATIAL + LAYOUT_FREE:
        ours = getattr(L, name)(**kwargs).get_config()
        theirs = getattr(keras.layers, name)(**kwargs).get_config()
        ours.pop("dtype"), theirs.pop("dtype")  # Keras 3: a dtype policy dict
        ours.pop("name"), theirs.pop("name")
        assert ours == theirs, name


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: L.ZeroPadding2D(-1), ValueError, "`padding` must be a non-negative"),
    (lambda: L.ZeroPadding2D((1, 2, 3)), ValueError, "`padding` should have two elements"),
    (lambda: L.ZeroPadding2D(((1, 2), (3,))), ValueError, r"`padding\[1\]`"),
    (lambda: L.ZeroPadding2D(1.5), TypeError, "padding"),
    (lambda: L.ZeroPadding2D((1, True)), TypeError, r"padding\[1\]"),
    (lambda: L.ZeroPadding2D(data_format="NCHW"), ValueError, "data_format"),
    (lambda: L.Cropping2D(-2), ValueError, "`cropping` must be a non-negative"),
    (lambda: L.Cropping2D(((0, -1), (0, 0))), ValueError, r"`cropping\[0\]\[1\]`"),
    (lambda: L.Cropping2D("1"), TypeError, "cropping"),
    (lambda: L.UpSampling2D(0), ValueError, "size"),
    (lambda: L.UpSampling2D(interpolation="bicubic"), ValueError, "interpolation"),
    (lambda: L.UpSampling2D(interpolation="Nearest"), ValueError, "interpolation"),
    (lambda: L.Reshape(12), TypeError, "target_shape"),
    (lambda: L.Reshape((2, -1, -1)), ValueError, "one unknown dimension"),
    (lambda: L.Reshape((0, 3)), ValueError, "target_shape"),
    (lambda: L.Reshape((2.0, 3)), TypeError, "target_shape"),
    (lambda: L.Permute((1, 1)), ValueError, "Invalid permutation `dims`"),
    (lambda: L.Permute((0, 1)), ValueError, "Invalid permutation `dims`"),
    (lambda: L.Permute((1, 3)), ValueError, "Invalid permutation `dims`"),
    (lambda: L.Permute(2), TypeError, "dims"),
])
def test_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_a_crop_leaving_nothing_names_cropping():
    with pytest.raises(ValueError, match=r"cropping2d \(Cropping2D\): `cropping`=\(\(3, 3\), "
                                         r"\(0, 0\)\) removes 3 \+ 3 = 6 rows of the input's "
                                         r"height 6"):
        L.Cropping2D(((3, 3), (0, 0)))(L.Input((6, 5, 1)))
    with pytest.raises(ValueError, match="width 5"):
        L.Cropping2D(((0, 0), (2, 3)), data_format="channels_first")(L.Input((1, 6, 5)))
    # Unknown sizes: the arrays decide.
    inputs = L.Input((None, None, 1))
    model = Model(inputs, L.Cropping2D(2)(inputs))
    assert model(np.zeros((1, 5, 6, 1), np.float32)).shape == (1, 1, 2, 1)
    with pytest.raises(ValueError, match="`cropping`"):
        model(np.zeros((1, 4, 6, 1), np.float32))


def test_a_reshape_that_does_not_fit_names_target_shape():
    with pytest.raises(ValueError, match=r"`target_shape` \(4, 5\) cannot hold the 9 values"):
        L.Reshape((4, 5))(L.Input((3, 3)))
    with pytest.raises(ValueError, match=r"`target_shape` \(-1, 4\) cannot hold the 9 values"):
        L.Reshape((-1, 4))(L.Input((3, 3)))
    inputs = L.Input((None, 3))
    outputs = L.Reshape((-1, 6))(inputs)
    assert tuple(outputs.shape) == (None, None, 6)
    model = Model(inputs, outputs)
    assert model(np.zeros((2, 4, 3), np.float32)).shape == (2, 2, 6)
    with pytest.raises(ValueError, match=r"`target_shape` \(-1, 6\) cannot hold the 9"):
        model(np.zeros((2, 3, 3), np.float32))


def test_permute_checks_the_rank():
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        L.Permute((2, 1))(L.Input((4,)))


# ---------------------------------------------------------------------------
# Shapes: symbolic and on arrays

@pytest.mark.parametrize("make, input_shape, expected", [
    (lambda: L.ZeroPadding2D(((1, 2), (3, 4))), (None, 5, None, 2), (None, 8, None, 2)),
    (lambda: L.ZeroPadding2D(1, "channels_first"), (None, 2, 3, 4), (None, 2, 5, 6)),
    (lambda: L.Cropping2D(((1, 0), (0, 2))), (None, 4, 5, 3), (None, 3, 3, 3)),
    (lambda: L.Cropping2D(1, "channels_first"), (None, 3, None, 4), (None, 3, None, 2)),
    (lambda: L.UpSampling2D((2, 3)), (None, 2, None, 1), (None, 4, None, 1)),
    (lambda: L.UpSampling2D(2, "channels_first"), (None, 1, 2, 3), (None, 1, 4, 6)),
    (lambda: L.Reshape((-1, 2)), (None, 3, 4), (None, 6, 2)),
    (lambda: L.Reshape((-1, 2)), (None, None, 4), (None, None, 2)),
    (lambda: L.Permute((3, 1, 2)), (None, 2, None, 4), (None, 4, 2, None)),
])
def test_output_shapes(make, input_shape, expected):
    assert tuple(make()(L.Input(input_shape[1:])).shape) == expected
    concrete = (2,) + tuple(3 if d is None else d for d in input_shape[1:])
    layer = make()
    y = layer(random(concrete))
    assert y.shape == layer.compute_output_shape(concrete)
    assert all(e is None or e == a for e, a in zip(expected[1:], y.shape[1:]))


# ---------------------------------------------------------------------------
# Summary rows (TF 2.4's sequential-like layout, 65 columns)

def test_summary_of_a_model_mixing_reshaping_layers():
    model = Sequential([
        L.ZeroPadding2D(((1, 0), (2, 1)), input_shape=(8, 8, 3)),
        L.Cropping2D(2),
        L.UpSampling2D((1, 2), interpolation="bilinear"),
        L.Permute((3, 1, 2)),
        L.ZeroPadding2D(1, data_format="channels_first"),
        L.Reshape((-1, 16)),
        L.Dense(4),
    ])
    lines = []
    model.summary(print_fn=lines.append)
    rule = "_" * 65
    assert lines == [
        'Model: "sequential"',
        rule,
        "Layer (type)                 Output Shape              Param #   ",
        "=" * 65,
        "zero_padding2d (ZeroPadding2 (None, 9, 11, 3)          0         ",
        rule,
        "cropping2d (Cropping2D)      (None, 5, 7, 3)           0         ",
        rule,
        "up_sampling2d (UpSampling2D) (None, 5, 14, 3)          0         ",
        rule,
        "permute (Permute)            (None, 3, 5, 14)          0         ",
        rule,
        "zero_padding2d_1 (ZeroPaddin (None, 3, 7, 16)          0         ",
        rule,
        "reshape (Reshape)            (None, 21, 16)            0         ",
        rule,
        "dense (Dense)                (None, 21, 4)             68        ",
        "=" * 65,
        "Total params: 68",
        "Trainable params: 68",
        "Non-trainable params: 0",
        rule,
    ]
