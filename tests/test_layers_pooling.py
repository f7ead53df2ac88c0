"""Pooling layers: MaxPooling/AveragePooling 1-D and 2-D and their global forms,
both layouts, against Keras 3 (torch backend) and tf.keras 2.4's rules."""
from __future__ import annotations

import numpy as np
import pytest

from fastconv import backend, ops
from fastconv import layers as L
from fastconv.models import Model, Sequential
from keras_compare import assert_close, compare_models, import_keras


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def random(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------
# Against Keras 3: a small model holding each layer, forward and one step

WINDOW_2D = [  # (class name, kwargs)
    ("MaxPooling2D", {}),
    ("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("MaxPooling2D", {"pool_size": (2, 3), "strides": (1, 2)}),
    ("AveragePooling2D", {"pool_size": 2}),  # Keras 3 has no default pool_size; 2.4: (2, 2)
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AveragePooling2D", {"pool_size": (3, 2), "strides": 1, "padding": "SAME"}),
]
WINDOW_1D = [
    ("MaxPooling1D", {}),
    ("MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}),
    ("AveragePooling1D", {"pool_size": 2, "strides": 3}),
]
GLOBAL = ["GlobalMaxPooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
          "GlobalAveragePooling1D"]


def build_2d(lib, pool, data_format):
    """Input (7, 6, 3) -> Conv2D (weights before the pool) -> [Permute to NCHW] -> pool
    -> Flatten -> Dense."""
    inputs = lib.layers.Input((7, 6, 3))
    x = lib.layers.Conv2D(4, 3, padding="same")(inputs)
    if data_format == "channels_first":
        x = lib.layers.Permute((3, 1, 2))(x)
    x = pool(x)
    if len(x.shape) > 2:
        x = lib.layers.Flatten()(x)
    return lib.models.Model(inputs, lib.layers.Dense(3)(x))


def build_1d(lib, pool, data_format):
    """Input (9, 3) -> Dense (weights on the features) -> [Permute to NCW] -> pool
    -> Flatten -> Dense."""
    inputs = lib.layers.Input((9, 3))
    x = lib.layers.Dense(4)(inputs)
    if data_format == "channels_first":
        x = lib.layers.Permute((2, 1))(x)
    x = pool(x)
    if len(x.shape) > 2:
        x = lib.layers.Flatten()(x)
    return lib.models.Model(inputs, lib.layers.Dense(3)(x))


def tf_same_average_pooling(keras, pool_size, strides, data_format, spatial):
    """TensorFlow's AvgPool with padding='same' built from Keras ops: zero padding
    (the extra row/column bottom/right), a 'valid' average, rescaled to divide by
    the real cells only.

    Keras 3's torch backend pads 'same' average pooling evenly on both sides,
    so where TensorFlow pads unevenly its results differ (keras-team/keras#18452,
    #19721); fastconv follows TensorFlow (tf.keras 2.4), and this is the oracle.
    """
    ops_ = keras.ops
    dims = len(spatial)
    pools = (pool_size,) * dims if isinstance(pool_size, int) else tuple(pool_size)
    steps = (strides,) * dims if isinstance(strides, int) else tuple(strides)
    pads = []
    for size, k, s in zip(spatial, pools, steps):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    channels_first = data_format == "channels_first"
    full_pads = [(0, 0), (0, 0)] + pads if channels_first else [(0, 0)] + pads + [(0, 0)]

    class TFSameAveragePooling(keras.layers.Layer):
        def call(self, x):
            def window_mean(t):
                return ops_.average_pool(ops_.pad(t, full_pads), pools, steps, "valid",
                                         data_format)
            return window_mean(x) / window_mean(ops_.ones_like(x))

    return TFSameAveragePooling()


def uneven_same_padding(kwargs, spatial):
    """Whether TensorFlow's 'same' padding puts more at the end than at the start."""
    if str(kwargs.get("padding", "valid")).lower() != "same":
        return False
    pool = kwargs.get("pool_size", 2)
    strides = kwargs.get("strides", pool)
    dims = len(spatial)
    pools = (pool,) * dims if isinstance(pool, int) else pool
    steps = (strides,) * dims if isinstance(strides, int) else strides
    return any(max((-(-n // s) - 1) * s + k - n, 0) % 2 for n, k, s in zip(spatial, pools, steps))


def both_models(name, kwargs, data_format):
    keras = import_keras()
    import fastconv
    two_d = name.endswith("2D")
    build = build_2d if two_d else build_1d
    spatial = (7, 6) if two_d else (9,)
    fc_model = build(fastconv, getattr(L, name)(data_format=data_format, **kwargs), data_format)
    if name.startswith("Average") and uneven_same_padding(kwargs, spatial):
        k_pool = tf_same_average_pooling(keras, kwargs.get("pool_size", 2),
                                         kwargs.get("strides", kwargs.get("pool_size", 2)),
                                         data_format, spatial)
    else:
        k_pool = getattr(keras.layers, name)(data_format=data_format, **kwargs)
    k_model = build(keras, k_pool, data_format)
    x = random((2,) + spatial + (3,), seed=1)
    return fc_model, k_model, x


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name, kwargs", WINDOW_2D + WINDOW_1D)
def test_window_pooling_matches_keras(name, kwargs, data_format):
    fc_model, k_model, x = both_models(name, kwargs, data_format)
    compare_models(fc_model, k_model, [x])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name", GLOBAL)
def test_global_pooling_matches_keras(name, data_format, keepdims):
    # keepdims is Keras 2.6's (and 3's) argument; tf.keras 2.4 has none.
    fc_model, k_model, x = both_models(name, {"keepdims": keepdims}, data_format)
    compare_models(fc_model, k_model, [x])


def test_numpy_backend_gives_keras_results_too():
    fc_model, k_model, x = both_models("AveragePooling2D",
                                       {"pool_size": 3, "strides": 2, "padding": "same"},
                                       "channels_first")
    with ops.use_backend("numpy"):
        compare_models(fc_model, k_model, [x])


def test_max_pool_gradient_goes_to_the_first_maximum_of_a_tie():
    # TensorFlow's CPU rule (notes section 5): the first maximum in row-major order.
    layer = L.MaxPooling2D(2, data_format="channels_first")
    x = np.array([[[[1, 3], [3, 2]]], [[[5, 5], [5, 5]]]], np.float32)
    y, cache = layer.forward(x)
    dx, _ = layer.backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(y.ravel(), [3, 5])
    np.testing.assert_array_equal(dx, [[[[0, 1], [0, 0]]], [[[1, 0], [0, 0]]]])


def test_average_same_divides_by_real_cells():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    y = L.AveragePooling2D(2, padding="same")(x)
    # Windows: [1,2,4,5], [3,6], [7,8], [9]: each mean over its real cells.
    np.testing.assert_allclose(y.ravel(), [3.0, 4.5, 7.5, 9.0])


def test_global_pooling_1d_channels_first_reads_features_by_steps():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # (batch, features, steps)
    np.testing.assert_array_equal(L.GlobalMaxPooling1D(data_format="channels_first")(x),
                                  x.max(axis=2))
    np.testing.assert_allclose(L.GlobalAveragePooling1D()(x), x.mean(axis=1))
    kept = L.GlobalAveragePooling1D(data_format="channels_first", keepdims=True)(x)
    np.testing.assert_allclose(kept, x.mean(axis=2, keepdims=True))


# ---------------------------------------------------------------------------
# Keras 2.4's constructor rules, names and configs

def test_names_and_aliases():
    assert L.MaxPool2D is L.MaxPooling2D and L.AvgPool2D is L.AveragePooling2D
    assert L.MaxPool1D is L.MaxPooling1D and L.AvgPool1D is L.AveragePooling1D
    assert L.GlobalMaxPool2D is L.GlobalMaxPooling2D
    assert L.GlobalAvgPool2D is L.GlobalAveragePooling2D
    assert L.GlobalMaxPool1D is L.GlobalMaxPooling1D
    assert L.GlobalAvgPool1D is L.GlobalAveragePooling1D
    names = [L.AveragePooling2D().name, L.AvgPool2D().name, L.MaxPooling1D().name,
             L.AveragePooling1D().name, L.GlobalMaxPooling2D().name,
             L.GlobalAveragePooling2D().name, L.GlobalMaxPooling1D().name,
             L.GlobalAvgPool1D().name]
    assert names == ["average_pooling2d", "average_pooling2d_1", "max_pooling1d",
                     "average_pooling1d", "global_max_pooling2d", "global_average_pooling2d",
                     "global_max_pooling1d", "global_average_pooling1d"]


def test_configs_are_keras_24s_and_round_trip():
    base = {"trainable": True, "dtype": "float32"}
    cases = [
        (L.MaxPooling2D(), {"name": "max_pooling2d", "pool_size": (2, 2), "padding": "valid",
                            "strides": (2, 2), "data_format": "channels_last"}),
        (L.AveragePooling2D(3, 1, "SAME", "channels_first"),
         {"name": "average_pooling2d", "pool_size": (3, 3), "padding": "same",
          "strides": (1, 1), "data_format": "channels_first"}),
        (L.MaxPooling1D(3), {"name": "max_pooling1d", "strides": (3,), "pool_size": (3,),
                             "padding": "valid", "data_format": "channels_last"}),
        (L.AveragePooling1D(2, 1, data_format=None),
         {"name": "average_pooling1d", "strides": (1,), "pool_size": (2,), "padding": "valid",
          "data_format": "channels_last"}),
        (L.GlobalAveragePooling2D(), {"name": "global_average_pooling2d",
                                      "data_format": "channels_last"}),
        (L.GlobalMaxPooling1D("channels_first"), {"name": "global_max_pooling1d",
                                                  "data_format": "channels_first"}),
        # Keras 2.6's keepdims appears only when set (2.4 has no such key).
        (L.GlobalMaxPooling2D(keepdims=True), {"name": "global_max_pooling2d",
                                               "data_format": "channels_last",
                                               "keepdims": True}),
    ]
    for layer, expected in cases:
        config = layer.get_config()
        assert config == {**base, **expected}
        clone = type(layer).from_config(config)
        assert clone.get_config() == config and type(clone) is type(layer)


def test_configs_agree_with_keras_3_but_for_dtype_and_keepdims():
    keras = import_keras()
    # Keras 3's AveragePooling needs pool_size; every case here gives one.
    for name, kwargs in WINDOW_2D + WINDOW_1D + [(n, {}) for n in GLOBAL]:
        ours = getattr(L, name)(**kwargs).get_config()
        theirs = getattr(keras.layers, name)(**kwargs).get_config()
        # Keras 3 serializes a dtype policy, and its global pooling always
        # carries keepdims (2.6's argument); tf.keras 2.4 has neither.
        theirs.pop("dtype"), ours.pop("dtype")
        if name.startswith("Global"):
            assert theirs.pop("keepdims") is False
        else:  # Keras 3 keeps 'SAME' as written; 2.4's normalize_padding lowercases it
            theirs["padding"] = theirs["padding"].lower()
        assert {k: v for k, v in ours.items() if k != "name"} == \
            {k: v for k, v in theirs.items() if k != "name"}


def test_default_data_formats():
    # 2-D layers default to the backend's image_data_format, 1-D ones to
    # 'channels_last' in their signature (Keras 2.4).
    assert L.MaxPooling2D().data_format == backend.image_data_format() == "channels_last"
    assert L.GlobalAveragePooling2D(data_format=None).data_format == "channels_last"
    assert L.MaxPooling1D().data_format == "channels_last"
    assert L.GlobalMaxPooling1D(data_format="Channels_First").data_format == "channels_first"


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: L.MaxPooling2D(0), ValueError, "pool_size"),
    (lambda: L.AveragePooling2D((2, 2, 2)), ValueError, "pool_size"),
    (lambda: L.MaxPooling2D(2, strides=-1), ValueError, "strides"),
    (lambda: L.MaxPooling1D(2.5), TypeError, "pool_size"),
    (lambda: L.AveragePooling1D(2, padding="causal"), ValueError, "Causal padding"),
    (lambda: L.MaxPooling2D(padding="full"), ValueError, "padding"),
    (lambda: L.MaxPooling2D(data_format="NHWC"), ValueError, "data_format"),
    (lambda: L.GlobalAveragePooling1D(data_format="channels_middle"), ValueError,
     "data_format"),
    (lambda: L.GlobalMaxPooling2D(keepdims="yes"), TypeError, "keepdims"),
])
def test_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_bad_inputs_name_the_layer():
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        L.MaxPooling2D()(L.Input((4, 4)))
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=4"):
        L.GlobalMaxPooling1D()(L.Input((4, 4, 2)))
    with pytest.raises(ValueError, match=r"max_pooling2d_1 \(MaxPooling2D\).*input width "
                                         r"size 2 is smaller"):
        L.MaxPooling2D(3, data_format="channels_first")(L.Input((2, 5, 2)))
    with pytest.raises(ValueError, match=r"average_pooling1d \(AveragePooling1D\).*input "
                                         r"steps size 1"):
        L.AveragePooling1D(2)(L.Input((1, 4)))


# ---------------------------------------------------------------------------
# Shapes: symbolic (None batch and sizes) and on arrays

@pytest.mark.parametrize("layer, input_shape, expected", [
    (lambda: L.MaxPooling2D(3, 2, "same"), (None, 7, None, 4), (None, 4, None, 4)),
    (lambda: L.AveragePooling2D((2, 3), data_format="channels_first"), (None, 5, 7, 8),
     (None, 5, 3, 2)),
    (lambda: L.MaxPooling1D(2, 1), (None, 9, 3), (None, 8, 3)),
    (lambda: L.AveragePooling1D(3, 2, "same", "channels_first"), (None, 4, 9), (None, 4, 5)),
    (lambda: L.GlobalMaxPooling2D(), (None, None, None, 6), (None, 6)),
    (lambda: L.GlobalAveragePooling2D("channels_first", keepdims=True), (None, 6, 3, 3),
     (None, 6, 1, 1)),
    (lambda: L.GlobalAveragePooling1D(keepdims=True), (None, 5, 2), (None, 1, 2)),
    (lambda: L.GlobalMaxPooling1D("channels_first"), (None, 2, 5), (None, 2)),
])
def test_output_shapes(layer, input_shape, expected):
    assert tuple(layer()(L.Input(input_shape[1:])).shape) == expected
    concrete = (2,) + tuple(3 if d is None else d for d in input_shape[1:])
    fresh = layer()
    y = fresh(np.zeros(concrete, np.float32))
    assert y.shape == fresh.compute_output_shape(concrete)
    assert all(e is None or e == a for e, a in zip(expected[1:], y.shape[1:]))


# ---------------------------------------------------------------------------
# Summary rows (TF 2.4's layout: sequential-like, 65 columns)

def test_summary_of_a_model_mixing_pooling_layers():
    model = Sequential([
        L.Conv2D(8, 3, input_shape=(28, 28, 1)),
        L.MaxPooling2D(),
        L.AveragePooling2D(3, 2, "same"),
        L.Permute((3, 1, 2)),
        L.MaxPooling2D(1, data_format="channels_first"),
        L.GlobalAveragePooling2D("channels_first"),
        L.Reshape((8, 1)),
        L.MaxPooling1D(2),
        L.GlobalMaxPool1D(),
        L.Dense(2),
    ])
    lines = []
    model.summary(print_fn=lines.append)
    rule = "_" * 65
    expected = [
        'Model: "sequential"',
        rule,
        "Layer (type)                 Output Shape              Param #   ",
        "=" * 65,
        "conv2d (Conv2D)              (None, 26, 26, 8)         80        ",
        rule,
        "max_pooling2d (MaxPooling2D) (None, 13, 13, 8)         0         ",
        rule,
        "average_pooling2d (AveragePo (None, 7, 7, 8)           0         ",
        rule,
        "permute (Permute)            (None, 8, 7, 7)           0         ",
        rule,
        "max_pooling2d_1 (MaxPooling2 (None, 8, 7, 7)           0         ",
        rule,
        "global_average_pooling2d (Gl (None, 8)                 0         ",
        rule,
        "reshape (Reshape)            (None, 8, 1)              0         ",
        rule,
        "max_pooling1d (MaxPooling1D) (None, 4, 1)              0         ",
        rule,
        "global_max_pooling1d (Global (None, 1)                 0         ",
        rule,
        "dense (Dense)                (None, 2)                 4         ",
        "=" * 65,
        "Total params: 84",
        "Trainable params: 84",
        "Non-trainable params: 0",
        rule,
    ]
    assert lines == expected
