"""fastconv.preprocessing.image (ImageDataGenerator, load_img & co),
image_dataset_from_directory and fastconv.data.Dataset.

Oracles: Keras 3 (torch backend) where it runs without TensorFlow: its
legacy ImageDataGenerator and DirectoryIterator, ``dataset_utils``'
indexing, ``image_utils``, and the Pillow loader of its grain path for
``image_dataset_from_directory``'s pixels (``tf.data`` itself needs
TensorFlow). Keras 3 warps on (column, row) coordinates where Keras 2.4 and
fastconv use (row, column), so geometric warps are compared on square
images through a transposition. Otherwise NumPy and Pillow directly.
"""
from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

PIL_Image = pytest.importorskip("PIL.Image")

import fastconv  # noqa: E402
from fastconv.data import AUTOTUNE, Dataset  # noqa: E402
from fastconv.preprocessing import image_dataset_from_directory  # noqa: E402
from fastconv.preprocessing.image import (ImageDataGenerator, array_to_img,  # noqa: E402
                                          img_to_array, load_img, save_img, smart_resize)
from fastconv.preprocessing.image_dataset import ALLOWLIST_FORMATS, index_directory  # noqa: E402
from keras_compare import import_keras  # noqa: E402

CLASSES = ("birds", "cats", "dogs")
# (relative path, Pillow mode, (height, width)); per class folder
FILES = [("a.png", "RGB", (12, 16)), ("b.JPG", "L", (16, 16)), ("sub/c.bmp", "RGB", (10, 20)),
         ("sub-x/d.gif", "P", (14, 11)), ("sub/deeper/e.jpeg", "RGB", (16, 16)),
         ("f.ppm", "RGB", (9, 9)), ("g.tif", "RGBA", (13, 15)), ("h.png", "RGBA", (20, 12))]


def _write(path, mode, size, rng):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = size if channels is None else size + (channels,)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    image = PIL_Image.fromarray(pixels, "L" if mode in ("L", "P") else mode)
    if mode == "P":
        image = image.convert("P")
    image.save(path)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Three classes with nested folders (sorted walk order: sub, sub-x,
    sub/deeper), mixed extensions, a text file, a hidden folder, a top-level
    image."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        for k, (relative, mode, size) in enumerate(FILES[:len(FILES) - (c % 2)]):
            _write(str(root / name / relative), mode, size, rng)
        (root / name / "notes.txt").write_text("not an image")
    _write(str(root / ".ipynb_checkpoints" / "x.png"), "RGB", (8, 8), rng)
    _write(str(root / "top.png"), "RGB", (8, 8), rng)
    return str(root)


@pytest.fixture(scope="module")
def keras():
    return import_keras()


@pytest.fixture(scope="module")
def legacy(keras):
    import keras.src.legacy.preprocessing.image as legacy
    return legacy


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _quiet(fn, *args, **kwargs):
    """Keras' legacy iterators print and may warn; the tests compare values."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------
# flow_from_directory against Keras 3's DirectoryIterator

@pytest.mark.parametrize("kwargs", [{}, {"subset": "training"}, {"subset": "validation"},
                                    {"classes": ["dogs", "birds"]}])
def test_directory_index_matches_keras(tree, legacy, kwargs, capsys):
    ours = ImageDataGenerator(validation_split=0.4).flow_from_directory(
        tree, target_size=(8, 8), **kwargs)
    theirs = _quiet(legacy.ImageDataGenerator(validation_split=0.4).flow_from_directory, tree,
                    target_size=(8, 8), **kwargs)
    assert ours.class_indices == theirs.class_indices
    assert ours.filenames == theirs.filenames
    assert ours.filepaths == theirs.filepaths
    np.testing.assert_array_equal(ours.classes, theirs.classes)
    assert (ours.samples, ours.n, len(ours)) == (theirs.samples, theirs.n, len(theirs))
    assert "Found" in capsys.readouterr().out
    if not kwargs:   # hidden folders are classes here; .ppm/.tif listed, .gif not
        assert ".ipynb_checkpoints" in ours.class_indices
        assert not any(f.endswith(".gif") for f in ours.filenames)
        birds = [f for f in ours.filenames if f.startswith("birds/")]
        assert birds == ["birds/a.png", "birds/b.JPG", "birds/f.ppm", "birds/g.tif",
                         "birds/h.png", "birds/sub/c.bmp", "birds/sub/deeper/e.jpeg"]


@pytest.mark.parametrize("class_mode", ["categorical", "sparse", "binary", "input", None])
def test_seeded_directory_batches_equal_keras(tree, legacy, class_mode):
    """First epoch, shuffled with a seed, flips + channel shift + brightness:
    the same order, the same draws, the same pixels as Keras."""
    settings = dict(horizontal_flip=True, vertical_flip=True, channel_shift_range=40.0,
                    brightness_range=(0.4, 1.6), rescale=1 / 255.0)
    args = dict(target_size=(10, 12), batch_size=5, seed=11, class_mode=class_mode,
                classes=["birds", "cats"] if class_mode == "binary" else None)
    ours = ImageDataGenerator(**settings).flow_from_directory(tree, **args)
    theirs = _quiet(legacy.ImageDataGenerator(**settings).flow_from_directory, tree, **args)
    for i in range(len(theirs)):
        mine, keras_batch = ours[i], _quiet(theirs.__getitem__, i)
        if class_mode is None:
            mine, keras_batch = (mine,), (keras_batch,)
        assert len(mine) == len(keras_batch)
        for a, b in zip(mine, keras_batch):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_seeded_flow_batches_equal_keras(legacy):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (23, 7, 9, 3)).astype(np.float32)
    y = rng.integers(0, 4, 23)
    weights = rng.random(23)
    settings = dict(horizontal_flip=True, channel_shift_range=20.0, brightness_range=(0.5, 1.2),
                    samplewise_center=True, validation_split=0.3)
    for extra in ({"sample_weight": weights}, {"subset": "training"}):
        # (Keras does not split sample_weight with a subset: its weights would
        # not follow their samples, so that case is fastconv's alone.)
        ours = ImageDataGenerator(**settings).flow(x, y, batch_size=4, seed=3,
                                                    ignore_class_split=True, **extra)
        theirs = _quiet(legacy.ImageDataGenerator(**settings).flow, x, y, batch_size=4, seed=3,
                        ignore_class_split=True, **extra)
        assert len(ours) == len(theirs)
        for i in range(len(theirs)):
            for a, b in zip(ours[i], _quiet(theirs.__getitem__, i)):
                np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)
    split = ImageDataGenerator(validation_split=0.3).flow(
        x, y, sample_weight=weights, shuffle=False, batch_size=23, subset="training",
        ignore_class_split=True)[0]
    np.testing.assert_array_equal(split[2], weights[int(23 * 0.3):])


@pytest.mark.parametrize("fill_mode", ["nearest", "constant", "reflect", "wrap"])
@pytest.mark.parametrize("order", [0, 1])
def test_affine_warp_equals_keras_on_transposed_images(legacy, fill_mode, order):
    """Keras 3 composes the same matrix on (column, row) coordinates, so on a
    square image its warp of the transposed image, transposed back, is
    Keras 2.4's (and fastconv's) warp; the random parameters are Keras'."""
    settings = dict(rotation_range=50, width_shift_range=0.25, height_shift_range=[1, 2, 3],
                    shear_range=25, zoom_range=(0.6, 1.3), fill_mode=fill_mode, cval=-5.0,
                    interpolation_order=order)
    ours, theirs = ImageDataGenerator(**settings), legacy.ImageDataGenerator(**settings)
    rng = np.random.default_rng(2)
    for seed in range(5):
        x = rng.random((11, 11, 2)).astype(np.float32) * 100
        params = ours.get_random_transform(x.shape, seed=seed)
        assert params == theirs.get_random_transform(x.shape, seed=seed)
        expected = _quiet(theirs.apply_transform, x.transpose(1, 0, 2), params).transpose(
            1, 0, 2)
        np.testing.assert_allclose(ours.apply_transform(x, params), expected, atol=1e-4)
        np.testing.assert_allclose(ours.random_transform(x, seed=seed), expected, atol=1e-4)


# ---------------------------------------------------------------------------
# Augmentations against NumPy

def test_flips_are_exact():
    x = np.random.default_rng(3).random((6, 5, 3)).astype(np.float32)
    generator = ImageDataGenerator()
    np.testing.assert_array_equal(generator.apply_transform(x, {"flip_horizontal": True}),
                                  x[:, ::-1])
    np.testing.assert_array_equal(generator.apply_transform(x, {"flip_vertical": True}), x[::-1])
    chw = ImageDataGenerator(data_format="channels_first")
    np.testing.assert_array_equal(chw.apply_transform(x.transpose(2, 0, 1),
                                                      {"flip_horizontal": 1}),
                                  x[:, ::-1].transpose(2, 0, 1))


@pytest.mark.parametrize("fill_mode", ["nearest", "constant", "reflect", "wrap"])
def test_rotation_by_90_degrees_is_rot90(fill_mode):
    x = np.random.default_rng(4).random((7, 7, 2)).astype(np.float32)
    generator = ImageDataGenerator(fill_mode=fill_mode, cval=-1.0)
    np.testing.assert_allclose(generator.apply_transform(x, {"theta": 90}), np.rot90(x, k=-1),
                               atol=1e-5)
    np.testing.assert_allclose(generator.apply_transform(x, {"theta": -90}), np.rot90(x, k=1),
                               atol=1e-5)


def test_whole_pixel_shifts_are_rolls_with_fill():
    x = np.random.default_rng(5).random((6, 8, 3)).astype(np.float32)
    constant = ImageDataGenerator(fill_mode="constant", cval=9.0)
    expected = np.roll(x, -2, axis=0)          # tx: rows; output row r reads r + 2
    expected[-2:] = 9.0
    np.testing.assert_allclose(constant.apply_transform(x, {"tx": 2}), expected, atol=1e-6)
    expected = np.roll(x, 3, axis=1)           # ty = -3: columns, content moves right
    expected[:, :3] = 9.0
    np.testing.assert_allclose(constant.apply_transform(x, {"ty": -3}), expected, atol=1e-6)
    nearest = ImageDataGenerator(fill_mode="nearest")
    expected = np.roll(x, 1, axis=0)
    expected[0] = x[0]
    np.testing.assert_allclose(nearest.apply_transform(x, {"tx": -1}), expected, atol=1e-6)
    # height_shift_range moves rows (2 pixels, either way), width_shift_range columns
    for seed in range(4):
        moved = ImageDataGenerator(height_shift_range=[2]).random_transform(x, seed=seed)
        assert np.allclose(moved[:-2], x[2:]) or np.allclose(moved[2:], x[:-2])
        moved = ImageDataGenerator(width_shift_range=[2]).random_transform(x, seed=seed)
        assert np.allclose(moved[:, :-2], x[:, 2:]) or np.allclose(moved[:, 2:], x[:, :-2])


def test_channel_shift_and_brightness_against_numpy_and_pillow():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (5, 6, 3)).astype(np.float32)
    generator = ImageDataGenerator()
    shifted = generator.apply_transform(x, {"channel_shift_intensity": 30.0})
    np.testing.assert_array_equal(shifted, np.clip(x + 30.0, x.min(), x.max()))
    from PIL import ImageEnhance
    bright = generator.apply_transform(x, {"brightness": 1.37})
    pil = ImageEnhance.Brightness(PIL_Image.fromarray(x.astype(np.uint8))).enhance(1.37)
    np.testing.assert_array_equal(bright, np.asarray(pil, dtype=np.float32))
    # values outside 0..255 keep their range (scaled onto 0..255 and back)
    scaled = generator.apply_transform(x / 255.0 - 0.5, {"brightness": 1.0})
    np.testing.assert_allclose(scaled, x / 255.0 - 0.5, atol=1 / 255 + 1e-6)


def test_featurewise_and_samplewise_normalisation_equal_numpy():
    rng = np.random.default_rng(7)
    x = rng.random((20, 4, 5, 3)).astype(np.float32) * 200
    generator = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                                   rescale=0.5)
    generator.fit(x)
    scaled = x * 0.5
    mean = scaled.mean(axis=(0, 1, 2)).reshape(1, 1, 3)
    std = (scaled - mean).std(axis=(0, 1, 2)).reshape(1, 1, 3)
    np.testing.assert_allclose(generator.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(generator.std, std, rtol=1e-5)
    batch = next(generator.flow(x, batch_size=20, shuffle=False))
    np.testing.assert_allclose(batch, (scaled - mean) / (std + 1e-6), rtol=1e-4, atol=1e-4)
    samplewise = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True)
    batch = samplewise.flow(x, batch_size=20, shuffle=False)[0]
    centred = x - x.mean(axis=(1, 2, 3), keepdims=True)
    expected = centred / (centred.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(batch, expected, rtol=1e-4, atol=1e-5)
    with pytest.warns(UserWarning, match="hasn't been fit"):
        ImageDataGenerator(featurewise_center=True).standardize(x[0].copy())


def test_zca_whitening_whitens():
    rng = np.random.default_rng(8)
    x = rng.random((400, 3, 3, 1))
    x[..., 0] += 2 * x[:, :1, :1, 0]        # correlated pixels
    with pytest.warns(UserWarning, match="zca_whitening"):
        generator = ImageDataGenerator(zca_whitening=True, zca_epsilon=1e-9, dtype="float64")
    generator.fit(x)
    white = generator.standardize(x.copy())   # featurewise_center is implied
    flat = white.reshape(len(x), -1)
    np.testing.assert_allclose(flat.T @ flat / len(x), np.eye(9), atol=1e-6)


# ---------------------------------------------------------------------------
# Seeding and thread safety

def test_seeded_iterators_reproduce_and_batches_are_index_addressed(tree):
    settings = dict(rotation_range=30, zoom_range=0.2, horizontal_flip=True)
    make = lambda: ImageDataGenerator(**settings).flow_from_directory(  # noqa: E731
        tree, target_size=(9, 9), batch_size=3, seed=5)
    first, second = make(), make()
    forward = [first[i] for i in range(len(first))]
    with ThreadPoolExecutor(4) as pool:     # workers > 1: any order, any thread
        parallel = list(pool.map(second.__getitem__, reversed(range(len(second)))))[::-1]
    for (a, la), (b, lb) in zip(forward, parallel):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(first[1][0], forward[1][0])   # same batch twice: same
    first.on_epoch_end()
    assert not np.array_equal(first[0][1], forward[0][1]) or not np.array_equal(
        first[0][0], forward[0][0])                                # a new epoch differs
    other = ImageDataGenerator(**settings).flow_from_directory(tree, target_size=(9, 9),
                                                                batch_size=3, seed=6)
    assert not np.array_equal(other[0][0], forward[0][0])
    assert isinstance(first, fastconv.utils.Sequence)
    endless = iter(make())
    assert [next(endless)[0].shape[0] for _ in range(len(first) + 1)][-1] == 3


def test_channels_first_batches_are_the_transposed_channels_last_ones():
    x = np.random.default_rng(12).random((7, 6, 6, 3)).astype(np.float32) * 255
    settings = dict(rotation_range=40, width_shift_range=0.2, zoom_range=0.2,
                    horizontal_flip=True, channel_shift_range=10.0, brightness_range=(0.5, 1.5))
    last = ImageDataGenerator(**settings).flow(x, batch_size=7, seed=1)[0]
    first = ImageDataGenerator(data_format="channels_first", **settings).flow(
        x.transpose(0, 3, 1, 2), batch_size=7, seed=1)[0]
    assert not np.allclose(last, x)
    np.testing.assert_allclose(first, last.transpose(0, 3, 1, 2), atol=1e-4)


def test_training_with_worker_threads_is_bitwise_training_without(tree):
    def train(workers):
        model = _small_model()
        iterator = ImageDataGenerator(rescale=1 / 255.0, rotation_range=20, zoom_range=0.2,
                                      horizontal_flip=True).flow_from_directory(
            tree, target_size=(8, 8), color_mode="grayscale", class_mode="sparse",
            batch_size=4, seed=0, classes=list(CLASSES))
        model.fit(iterator, epochs=2, verbose=0, workers=workers)
        return model.get_weights()
    for a, b in zip(train(0), train(3)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# image_dataset_from_directory

@pytest.mark.parametrize("labels,shuffle,class_names", [
    ("inferred", False, None), ("inferred", True, None), (None, True, None),
    ("inferred", True, ["dogs", "birds"])])
def test_dataset_index_matches_keras(tree, keras, labels, shuffle, class_names):
    from keras.src.utils import dataset_utils
    theirs = _quiet(dataset_utils.index_directory, tree, labels, ALLOWLIST_FORMATS,
                    class_names=class_names, shuffle=shuffle, seed=42, verbose=False)
    ours = index_directory(tree, labels, ALLOWLIST_FORMATS, class_names=class_names,
                           shuffle=shuffle, seed=42, verbose=False)
    assert ours[0] == theirs[0]
    assert ours[2] == theirs[2]
    if labels is None:
        assert ours[1] is None and theirs[1] is None
        assert os.path.join(tree, "top.png") in ours[0]
    else:
        np.testing.assert_array_equal(ours[1], theirs[1])
        assert not any(".ipynb_checkpoints" in p for p in ours[0])   # hidden: no class


def test_dataset_split_and_pixels_match_keras(tree, keras):
    from keras.src.utils import dataset_utils
    from keras.src.utils.image_dataset_utils import _load_image_grain

    def keras_index(shuffle, subset):
        paths, labels, _ = _quiet(dataset_utils.index_directory, tree, "inferred",
                                  ALLOWLIST_FORMATS, shuffle=shuffle, seed=9, verbose=False)
        return _quiet(dataset_utils.get_training_or_validation_split, paths, labels, 0.3,
                      subset)

    for subset in ("training", "validation"):
        shuffled = image_dataset_from_directory(tree, image_size=(4, 4), seed=9,
                                                validation_split=0.3, subset=subset,
                                                verbose=False)
        assert shuffled.file_paths == keras_index(True, subset)[0]
        paths, labels = keras_index(False, subset)   # sorted order: batches in file order
        for method, crop, mode, channels in [("bilinear", False, "rgb", 3),
                                             ("nearest", True, "grayscale", 1),
                                             ("bilinear", True, "rgba", 4)]:
            dataset = image_dataset_from_directory(
                tree, image_size=(9, 13), batch_size=4, shuffle=False, validation_split=0.3,
                subset=subset, interpolation=method, crop_to_aspect_ratio=crop,
                color_mode=mode, label_mode="categorical", verbose=False)
            assert dataset.file_paths == paths and dataset.class_names == list(CLASSES)
            assert len(dataset) == math.ceil(len(paths) / 4)
            images = np.concatenate([b[0] for b in dataset])
            onehot = np.concatenate([b[1] for b in dataset])
            np.testing.assert_array_equal(onehot.argmax(1), labels)
            # (bytes, not the path: Keras' loader leaves the files it opens open)
            expected = np.stack([np.asarray(_load_image_grain(
                io.BytesIO(_read(p)), (9, 13), channels, method, "channels_last",
                crop_to_aspect_ratio=crop)) for p in paths])
            assert images.dtype == np.float32 and images.shape == expected.shape
            np.testing.assert_allclose(images, expected, rtol=0, atol=1 / 255)


def test_dataset_reshuffles_every_epoch_reproducibly(tree):
    def orders(seed):
        dataset = image_dataset_from_directory(tree, image_size=(4, 4), batch_size=5,
                                               seed=seed, verbose=False)
        return [np.concatenate([labels for _, labels in dataset]) for _ in range(3)]
    first, again, other = orders(1), orders(1), orders(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(first[0], e) for e in first[1:])
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert all(sorted(a) == sorted(first[0]) for a in first)


def test_label_modes_and_explicit_labels(tree):
    n = len(index_directory(tree, None, ALLOWLIST_FORMATS, shuffle=False, verbose=False)[0])
    explicit = list(np.arange(n) % 2)
    for mode, shape, dtype in [("int", (4,), np.int32), ("binary", (4, 1), np.float32),
                               ("categorical", (4, 2), np.float32)]:
        dataset = image_dataset_from_directory(tree, labels=explicit, label_mode=mode,
                                               image_size=5, batch_size=4, shuffle=False,
                                               verbose=False)
        assert dataset.class_names == ["0", "1"]
        images, labels = next(iter(dataset))
        assert images.shape == (4, 5, 5, 3) and labels.shape == shape and labels.dtype == dtype
    unlabelled = image_dataset_from_directory(tree, labels=None, image_size=5, batch_size=None,
                                              shuffle=False, verbose=False)
    assert unlabelled.class_names is None and len(unlabelled) == n
    assert next(iter(unlabelled)).shape == (5, 5, 3)
    train, val = image_dataset_from_directory(tree, image_size=5, seed=0, validation_split=0.25,
                                              subset="both", verbose=False)
    assert not set(train.file_paths) & set(val.file_paths)
    assert fastconv.utils.image_dataset_from_directory is image_dataset_from_directory


# ---------------------------------------------------------------------------
# Training on the iterators and the dataset

def _small_model():
    from fastconv.layers import Conv2D, Dense, Flatten, Input
    from fastconv.models import Model
    fastconv.backend.set_random_seed(0)
    inputs = Input((8, 8, 1))
    outputs = Dense(3, activation="softmax")(Flatten()(Conv2D(2, 3)(inputs)))
    model = Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_fit_takes_flow_flow_from_directory_and_the_dataset(tree):
    model = _small_model()
    rng = np.random.default_rng(9)
    x, y = rng.random((20, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, 20)
    generator = ImageDataGenerator(rescale=1 / 255.0, rotation_range=15, horizontal_flip=True,
                                   validation_split=0.3)
    history = model.fit(generator.flow(x, y, batch_size=6, seed=0), epochs=2, verbose=0,
                        workers=2)
    assert len(history.history["loss"]) == 2
    train = generator.flow_from_directory(tree, target_size=(8, 8), color_mode="grayscale",
                                          class_mode="sparse", batch_size=4, seed=0,
                                          classes=list(CLASSES), subset="training")
    val = generator.flow_from_directory(tree, target_size=(8, 8), color_mode="grayscale",
                                        class_mode="sparse", batch_size=4, seed=0,
                                        classes=list(CLASSES), subset="validation")
    history = model.fit(train, validation_data=val, epochs=2, verbose=0, workers=3)
    assert np.all(np.isfinite(history.history["val_loss"]))
    dataset = image_dataset_from_directory(tree, color_mode="grayscale", image_size=(8, 8),
                                           batch_size=4, seed=0, verbose=False)
    pipeline = dataset.map(lambda images, labels: (images / 255.0, labels),
                           num_parallel_calls=AUTOTUNE).cache().shuffle(8, seed=0).prefetch(
        AUTOTUNE)
    history = model.fit(pipeline, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and len(pipeline) == len(dataset)
    assert model.predict(dataset.map(lambda images, labels: images), verbose=0).shape == (
        len(dataset.file_paths), 3)


# ---------------------------------------------------------------------------
# fastconv.data.Dataset

def test_dataset_methods():
    data = Dataset.from_tensor_slices((np.arange(10), np.arange(10) * 2))
    batches = data.batch(4)
    assert len(batches) == 3 and [len(b[0]) for b in batches] == [4, 4, 2]
    assert len(data.batch(4, drop_remainder=True)) == 2
    assert [int(a) for a, _ in batches.unbatch()] == list(range(10))
    assert len(batches.unbatch()) == 10
    assert [int(a) for a, _ in data.take(3)] == [0, 1, 2] and len(data.skip(7)) == 3
    assert len(data.repeat(3)) == 30 and len(data.take(-1)) == 10
    with pytest.raises(TypeError, match="infinite"):
        len(data.repeat())
    shuffled = data.shuffle(10, seed=1)
    epochs = [[int(a) for a, _ in shuffled] for _ in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs) and epochs[0] != epochs[1]
    again = Dataset.from_tensor_slices((np.arange(10), np.arange(10))).shuffle(10, seed=1)
    assert epochs == [[int(a) for a, _ in again] for _ in range(3)]
    fixed = data.shuffle(10, seed=1, reshuffle_each_iteration=False)
    assert [int(a) for a, _ in fixed] == [int(a) for a, _ in fixed]
    calls = []
    cached = data.map(lambda a, b: (calls.append(1), a + b)[1]).cache()
    assert list(cached) == list(cached) and len(calls) == 10
    assert data.cardinality() == 10 and data.repeat().cardinality() == -1
    with pytest.raises(ValueError, match="batch_size"):
        data.batch(0)


def test_prefetch_runs_ahead_in_a_background_thread_and_passes_errors():
    produced, names = [], set()

    def slow(value):
        names.add(threading.current_thread().name)
        produced.append(int(value))
        return value

    iterator = iter(Dataset.from_tensor_slices(np.arange(6)).map(slow).prefetch(3))
    assert int(next(iterator)) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(produced) >= 4 and names == {"fastconv-prefetch"}
    assert [int(v) for v in iterator] == [1, 2, 3, 4, 5]

    def boom(value):
        raise RuntimeError(f"bad element {value}")
    with pytest.raises(RuntimeError, match="bad element 0"):
        list(Dataset.from_tensor_slices(np.arange(3)).map(boom).prefetch(AUTOTUNE))


# ---------------------------------------------------------------------------
# Image files

def test_save_load_and_convert_images(tmp_path):
    rng = np.random.default_rng(10)
    pixels = rng.integers(0, 256, (7, 9, 3)).astype(np.float32)
    path = str(tmp_path / "x.png")
    save_img(path, pixels, scale=False)
    loaded = load_img(path)
    assert loaded.size == (9, 7) and loaded.mode == "RGB"
    np.testing.assert_array_equal(img_to_array(loaded), pixels)
    assert img_to_array(loaded, data_format="channels_first").shape == (3, 7, 9)
    gray = img_to_array(load_img(path, color_mode="grayscale"))
    np.testing.assert_array_equal(gray[..., 0], np.asarray(loaded.convert("L")))
    np.testing.assert_array_equal(img_to_array(load_img(path, target_size=(3, 4))),
                                  np.asarray(loaded.resize((4, 3), PIL_Image.NEAREST)))
    scaled = np.asarray(array_to_img(pixels - 100))           # scale: min..max onto 0..255
    assert scaled.min() == 0 and scaled.max() == 255
    with pytest.warns(UserWarning, match="RGBA"):
        save_img(str(tmp_path / "rgba.jpg"), rng.random((4, 4, 4)))
    assert load_img(str(tmp_path / "rgba.jpg")).size == (4, 4)
    with pytest.raises(ValueError, match="file_format"):
        save_img(str(tmp_path / "noext"), pixels)


def test_image_helpers_match_keras(tmp_path, keras):
    from keras.src.utils import image_utils
    rng = np.random.default_rng(10)
    pixels = rng.integers(0, 256, (7, 9, 3)).astype(np.float32)
    path = str(tmp_path / "x.png")
    save_img(path, pixels, scale=False)
    for interpolation in ("nearest", "bilinear", "bicubic", "lanczos"):
        ours = img_to_array(load_img(path, target_size=(4, 5), interpolation=interpolation))
        theirs = image_utils.img_to_array(image_utils.load_img(path, target_size=(4, 5),
                                                               interpolation=interpolation))
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(
        img_to_array(load_img(path, color_mode="grayscale", target_size=(3, 3),
                              keep_aspect_ratio=True)),
        image_utils.img_to_array(image_utils.load_img(path, color_mode="grayscale",
                                                      target_size=(3, 3),
                                                      keep_aspect_ratio=True)))
    for data in (pixels / 255.0 - 0.3, pixels[..., :1] * 3, pixels[..., :1]):
        for scale in (True, False):
            np.testing.assert_array_equal(np.asarray(array_to_img(data, scale=scale)),
                                          np.asarray(image_utils.array_to_img(data,
                                                                              scale=scale)))


def test_smart_resize_matches_keras(keras):
    from keras.src.utils import image_utils
    rng = np.random.default_rng(13)
    for shape in [(20, 31, 3), (2, 17, 9, 1)]:
        x = rng.random(shape).astype(np.float32) * 255
        for size in [(8, 8), (5, 12)]:
            expected = _quiet(image_utils.smart_resize, x, size)   # NumPy 2 warns in Keras
            np.testing.assert_allclose(smart_resize(x, size), expected, atol=1e-3)


def test_bad_files_and_folders_raise_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    (empty / "cls" / "readme.txt").write_text("hello")
    with pytest.raises(ValueError, match="No images found"):
        ImageDataGenerator().flow_from_directory(str(empty))
    with pytest.raises(ValueError, match="No images found"):
        image_dataset_from_directory(str(empty), verbose=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageDataGenerator().flow_from_directory(str(tmp_path / "missing"))
    bad = tmp_path / "bad" / "cls"
    bad.mkdir(parents=True)
    (bad / "text.png").write_text("this is not a PNG")
    rng = np.random.default_rng(11)
    PIL_Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(bad / "ok.jpg")
    data = (bad / "ok.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(data[:len(data) // 2])
    for name in ("text.png", "truncated.jpg"):
        with pytest.raises(ValueError, match=name):
            load_img(str(bad / name))
    iterator = ImageDataGenerator().flow_from_directory(str(tmp_path / "bad"), batch_size=1,
                                                        shuffle=False, target_size=(8, 8))
    with pytest.raises(ValueError, match="text.png"):
        iterator[1]
    (bad / "text.png").unlink()
    with pytest.raises(ValueError, match="truncated.jpg"):
        _small_model().predict(image_dataset_from_directory(
            str(tmp_path / "bad"), labels=None, image_size=(8, 8), color_mode="grayscale",
            shuffle=False, verbose=False), verbose=0)


@pytest.mark.parametrize("call,argument", [
    (lambda d: ImageDataGenerator().flow_from_directory(d, color_mode="cmyk"), "color mode"),
    (lambda d: ImageDataGenerator().flow_from_directory(d, class_mode="other"), "class_mode"),
    (lambda d: ImageDataGenerator().flow_from_directory(d, target_size=(0, 3)), "target_size"),
    (lambda d: ImageDataGenerator().flow_from_directory(d, interpolation="cubic"),
     "interpolation"),
    (lambda d: ImageDataGenerator().flow_from_directory(d, subset="test"), "subset"),
    (lambda d: ImageDataGenerator().flow_from_directory(d, classes=["cats", "cows"]),
     "classes"),
    (lambda d: ImageDataGenerator().flow_from_directory(d, batch_size=0), "batch_size"),
    (lambda d: ImageDataGenerator(rotation_range=-3), "rotation_range"),
    (lambda d: ImageDataGenerator(zoom_range=(1, 2, 3)), "zoom_range"),
    (lambda d: ImageDataGenerator(fill_mode="mirror"), "fill_mode"),
    (lambda d: ImageDataGenerator(brightness_range=0.5), "brightness_range"),
    (lambda d: ImageDataGenerator(validation_split=1.5), "validation_split"),
    (lambda d: ImageDataGenerator(interpolation_order=3), "interpolation_order"),
    (lambda d: ImageDataGenerator().flow(np.zeros((3, 4, 4)), batch_size=2), "rank 4"),
    (lambda d: ImageDataGenerator().flow(np.zeros((3, 4, 4, 1)), np.zeros(2)), "same length"),
    (lambda d: image_dataset_from_directory(d, label_mode="sparse"), "label_mode"),
    (lambda d: image_dataset_from_directory(d, image_size=(3,)), "image_size"),
    (lambda d: image_dataset_from_directory(d, color_mode="rgbx"), "color_mode"),
    (lambda d: image_dataset_from_directory(d, validation_split=0.2, subset="training"),
     "seed"),
    (lambda d: image_dataset_from_directory(d, subset="training"), "validation_split"),
    (lambda d: image_dataset_from_directory(d, interpolation="cubic"), "interpolation"),
    (lambda d: image_dataset_from_directory(d, label_mode="binary", verbose=False), "binary"),
    (lambda d: image_dataset_from_directory(d, labels=[0, 1], verbose=False), "labels"),
    (lambda d: image_dataset_from_directory(d, class_names=["cows"], verbose=False),
     "class_names"),
    (lambda d: image_dataset_from_directory(d, batch_size=0), "batch_size"),
])
def test_bad_arguments_name_the_argument(tree, call, argument):
    with pytest.raises(ValueError, match=argument):
        call(tree)


def test_missing_pillow_is_a_clear_import_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r"fastconv\[image\]"):
        load_img(str(tmp_path / "x.png"))
    batch = ImageDataGenerator(horizontal_flip=True).flow(np.ones((2, 3, 3, 1)), seed=0)[0]
    assert batch.shape == (2, 3, 3, 1)   # array augmentation needs no Pillow


def test_importing_fastconv_preprocessing_does_not_import_pillow():
    code = ("import sys, fastconv.utils, fastconv.preprocessing.image, fastconv.data; "
            "assert 'PIL' not in sys.modules, 'PIL imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_bench_input_rows(monkeypatch):
    from fastconv import bench_input
    rows = bench_input.bench_image_input(1, train_batches=1, rng=np.random.default_rng(0),
                                         rounds=1)
    assert [r["what"].split(", ")[-1] for r in rows] == ["workers=0", "workers=1",
                                                         "2 procs"]
    for row in rows:
        assert row["loader_img_s"] > 0 and row["array_img_s"] > 0 and row["threads"] == 1
        assert row["extra_ms"] == pytest.approx(row["loader_ms_step"] - row["array_ms_step"])
    table = bench_input.image_input_table(rows)
    assert "workers=1" in table and len(table.splitlines()) == 5
