"""datasets.load_digits: shapes, scaling, the stratified split, upscaling, errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from fastconv import datasets

sklearn_datasets = pytest.importorskip("sklearn.datasets",
                                       reason="scikit-learn (fastconv[examples]) is not installed")


@pytest.fixture(scope="module")
def digits():
    bunch = sklearn_datasets.load_digits()
    return bunch.images / 16.0, bunch.target


@pytest.fixture(scope="module")
def split():
    return datasets.load_digits()


def _sorted_rows(images):
    flat = images.reshape(len(images), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_shapes_dtypes_and_range(split):
    (x_train, y_train), (x_test, y_test) = split
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1)
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))
    assert len(x_train) + len(x_test) == 1797


def test_split_is_a_partition_of_the_whole_dataset(split, digits):
    (x_train, y_train), (x_test, y_test) = split
    images, labels = digits
    ours = np.concatenate([x_train[..., 0], x_test[..., 0]]).astype(np.float64)
    ours_labels = np.concatenate([y_train, y_test])
    # Same multiset of (image, label) rows: nothing lost, nothing duplicated.
    combined = np.concatenate([ours.reshape(1797, -1), ours_labels[:, None]], axis=1)
    original = np.concatenate([images.reshape(1797, -1), labels[:, None]], axis=1)
    np.testing.assert_allclose(_sorted_rows(combined), _sorted_rows(original), atol=1e-7)


def test_split_is_stratified(split, digits):
    (_, y_train), (_, y_test) = split
    class_sizes = np.bincount(digits[1])
    expected_test = np.floor(0.25 * class_sizes + 0.5).astype(int)
    np.testing.assert_array_equal(np.bincount(y_test), expected_test)
    np.testing.assert_array_equal(np.bincount(y_train), class_sizes - expected_test)


def test_split_is_seeded_and_shuffled(split):
    (x_train, y_train), _ = split
    (x_again, y_again), _ = datasets.load_digits(seed=0)
    np.testing.assert_array_equal(x_train, x_again)
    np.testing.assert_array_equal(y_train, y_again)
    (_, y_other), _ = datasets.load_digits(seed=1)
    assert not np.array_equal(y_train, y_other)
    # Classes are mixed, not in sorted runs.
    assert np.count_nonzero(np.diff(y_train)) > len(y_train) // 2


def test_test_fraction(digits):
    (_, y_train), (_, y_test) = datasets.load_digits(test_fraction=0.1)
    np.testing.assert_array_equal(np.bincount(y_test),
                                  np.floor(0.1 * np.bincount(digits[1]) + 0.5).astype(int))


def test_upscaling_to_28(split):
    (x_train, y_train), (x_test, _) = datasets.load_digits(size=28)
    assert x_train.shape[1:] == (28, 28, 1) and x_test.shape[1:] == (28, 28, 1)
    assert x_train.dtype == np.float32 and 0.0 <= x_train.min() and x_train.max() <= 1.0
    np.testing.assert_array_equal(y_train, split[0][1])  # same split as at 8x8
    # Bilinear upscaling preserves the mean intensity to within a few percent.
    assert abs(x_train.mean() - split[0][0].mean()) < 0.05 * split[0][0].mean()


def test_resize_bilinear_hand_computed():
    # 2 -> 4: output centres map to input coordinates -0.25, 0.25, 0.75, 1.25,
    # clamped to 0, 0.25, 0.75, 1: [a, 0.75a + 0.25b, 0.25a + 0.75b, b].
    a, b, c, d = 1.0, 3.0, 5.0, 9.0
    image = np.array([[a, b], [c, d]]).reshape(1, 2, 2, 1)
    row = lambda p, q: [p, 0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q, q]
    top, bottom = row(a, b), row(c, d)
    expected = np.array([row(top[j], bottom[j]) for j in range(4)]).T
    np.testing.assert_allclose(datasets.resize_bilinear(image, 4)[0, :, :, 0], expected)


def test_resize_bilinear_properties():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 8, 8, 2))
    np.testing.assert_allclose(datasets.resize_bilinear(images, 8), images, atol=1e-12)
    constant = np.full((1, 8, 8, 1), 0.7)
    np.testing.assert_allclose(datasets.resize_bilinear(constant, 28), 0.7, atol=1e-12)
    assert datasets.resize_bilinear(images.astype(np.float32), 5).dtype == np.float32
    with pytest.raises(ValueError, match="NHWC"):
        datasets.resize_bilinear(np.zeros((8, 8)), 4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(test_fraction=0.0), "test_fraction"), (dict(test_fraction=1.5), "test_fraction"),
    (dict(test_fraction="0.2"), "test_fraction"), (dict(size=0), "size"),
    (dict(size=28.0), "size"), (dict(size=True), "size"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.load_digits(**kwargs)


def test_missing_scikit_learn_gives_install_hint(monkeypatch):
    # A None entry in sys.modules makes `import sklearn...` raise ImportError.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'fastconv\[examples\]'"):
        datasets.load_digits()
