"""Datasets: Keras' downloadable ones, and small bundled digits for offline examples.

Keras' loaders, with the same return values (``tf.keras.datasets``)::

    from fastconv.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()

* :func:`mnist.load_data` -- handwritten digits, uint8 ``(60000, 28, 28)``
* :func:`fashion_mnist.load_data` -- clothing, uint8 ``(60000, 28, 28)``
* :func:`cifar10.load_data` -- colour images, uint8 ``(50000, 32, 32, 3)``
* :func:`cifar100.load_data` -- 100 (or 20 coarse) classes, the same images

They read Keras' cache (``$KERAS_HOME/datasets``, else ``~/.keras/datasets``),
so a machine that ran Keras once needs nothing more; a file that is missing
is downloaded from Keras' origin with :func:`fastconv.utils.get_file`
(progress bar, hash checked, written atomically). Unlike Keras, a cached
file whose hash is not the published one is used with a warning rather
than downloaded again, so files copied in by hand onto a machine without
network access are kept. Offline, the error names the URL and where to
copy the file. A truncated or corrupt file is a ValueError that names it
and says to delete it; CIFAR's pickles are read by an unpickler that can
build NumPy arrays of numbers and nothing else.

:func:`load_digits` turns scikit-learn's bundled 8x8 handwritten digits
(1,797 images, 10 classes, stored inside the scikit-learn package) into
Keras-style NHWC arrays, optionally upscaled so that models written for
28x28x1 MNIST input (such as the seed CNN) can be trained on them offline.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import cifar10, cifar100, fashion_mnist, mnist

__all__ = ["load_digits", "resize_bilinear", "mnist", "fashion_mnist", "cifar10", "cifar100"]

ArrayPair = Tuple[np.ndarray, np.ndarray]

_DIGITS_MAX_VALUE = 16.0  # pixel intensities in sklearn's digits are 0..16


def _interpolation_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Rows of linear-interpolation weights, ``out = M @ in`` along one axis.

    Pixel centres are aligned (output pixel ``i`` samples input coordinate
    ``(i + 0.5) * in_size / out_size - 0.5``), clamped at the borders; the
    convention of OpenCV's ``INTER_LINEAR`` and PIL's bilinear upscaling.
    """
    source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    source = np.clip(source, 0, in_size - 1)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    frac = source - lower
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, lower), 1 - frac)
    np.add.at(matrix, (rows, upper), frac)
    return matrix


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resize square NHWC images to ``size x size`` by bilinear interpolation.

    Parameters
    ----------
    images : ndarray of shape (n, h, w, c)
    size : int
        Output height and width.

    Returns
    -------
    ndarray of shape (n, size, size, c), images' dtype

    Notes
    -----
    Separable: each axis is multiplied by an interpolation matrix whose rows
    are convex weights (see :func:`_interpolation_matrix`), so values stay in
    the input's range and a constant image stays constant.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be NHWC with shape (n, h, w, c), got shape {images.shape}")
    rows = _interpolation_matrix(images.shape[1], size)
    cols = _interpolation_matrix(images.shape[2], size)
    resized = np.einsum("ih,nhwc,jw->nijc", rows, images.astype(np.float64), cols,
                        optimize=True)
    if images.size:
        # Convex weights keep values within the input range, up to rounding.
        resized = np.clip(resized, images.min(), images.max())
    return resized.astype(images.dtype if images.dtype.kind == "f" else np.float64)


def _stratified_split(labels: np.ndarray, test_fraction: float,
                      rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of a per-class split, each part in shuffled order.

    Each class sends ``floor(test_fraction * n_class + 0.5)`` of its samples
    (chosen at random) to the test part, but keeps at least one sample on
    each side when the class has two or more.
    """
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(np.floor(test_fraction * members.size + 0.5))
        if members.size >= 2:
            n_test = min(max(n_test, 1), members.size - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_digits(test_fraction: float = 0.25, seed: Optional[int] = 0,
                size: Optional[int] = None) -> Tuple[ArrayPair, ArrayPair]:
    """scikit-learn's 8x8 digits as ``((x_train, y_train), (x_test, y_test))``.

    Parameters
    ----------
    test_fraction : float, default 0.25
        Fraction of each class held out for testing (stratified split).
    seed : int or None, default 0
        Seed of the split and of the sample order; the same seed always gives
        the same arrays. None draws a fresh split.
    size : int, optional
        Height and width of the returned images. None keeps 8x8; e.g. 28
        upscales by bilinear interpolation (:func:`resize_bilinear`) to the
        28x28x1 input of MNIST models.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x`` float32 of shape ``(n, size, size, 1)`` with values in
        ``[0, 1]`` (intensity / 16), ``y`` int64 labels in ``0..9``. The
        1,797 images are split 1,346 / 451 with the default fraction.

    Raises
    ------
    ImportError
        If scikit-learn, which ships the data, is not installed.
    ValueError
        If ``test_fraction`` is not in (0, 1) or ``size`` is not a positive int.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_digits(size=28)  # doctest: +SKIP
    >>> x_train.shape, x_test.shape                                   # doctest: +SKIP
    ((1346, 28, 28, 1), (451, 28, 28, 1))
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be a number in (0, 1), got {test_fraction!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                             or size < 1):
        raise ValueError(f"`size` must be a positive int (e.g. 28) or None, got {size!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as exc:
        raise ImportError(
            "fastconv.datasets.load_digits reads the digits bundled with scikit-learn, which "
            "is not installed. Install it with: pip install 'fastconv[examples]'") from exc

    bunch = sklearn_load_digits()
    images = (np.asarray(bunch.images, dtype=np.float64) / _DIGITS_MAX_VALUE)[..., np.newaxis]
    labels = np.asarray(bunch.target, dtype=np.int64)
    if size is not None and size != images.shape[1]:
        images = resize_bilinear(images, int(size))
    images = images.astype(np.float32)

    rng = np.random.default_rng(seed)
    train, test = _stratified_split(labels, float(test_fraction), rng)
    return (images[train], labels[train]), (images[test], labels[test])
