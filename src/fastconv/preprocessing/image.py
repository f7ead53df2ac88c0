"""Keras' ``tf.keras.preprocessing.image``: ``ImageDataGenerator`` and the
image helpers ``load_img``, ``img_to_array``, ``array_to_img``,
``save_img``, ``smart_resize``.

Reading and writing image files needs Pillow (``pip install
'fastconv[image]'``), imported on first use; augmentation and the array
helpers need only NumPy. See :mod:`._generator` for how the augmentation
follows Keras 2.4, :mod:`._iterators` for the iterators' batches and
seeding, and :mod:`._directory` for the directory rules.
"""
from typing import Any, Sequence

import numpy as np

from .. import _image
from ._generator import ImageDataGenerator
from ._image_io import array_to_img, check_size, img_to_array, load_img, save_img
from ._iterators import DirectoryIterator, Iterator, NumpyArrayIterator

__all__ = ["ImageDataGenerator", "Iterator", "NumpyArrayIterator", "DirectoryIterator",
           "load_img", "img_to_array", "array_to_img", "save_img", "smart_resize"]


def smart_resize(x: Any, size: Sequence[int], interpolation: str = "bilinear") -> np.ndarray:
    """An image ``(height, width, channels)`` (or a batch of them) resized to
    ``size = (height, width)`` without distortion, as Keras'
    ``smart_resize``: the largest centred crop of the target's aspect ratio,
    resized as ``tf.image.resize`` (``'bilinear'``, ``'nearest'``,
    ``'bicubic'``, ``'area'``). Returns float32 (or the input's float type)."""
    height, width = check_size(size, "size")
    array = np.asarray(x)
    if array.ndim not in (3, 4):
        raise ValueError("Expected an image array with shape `(height, width, channels)`, or "
                         f"`(batch_size, height, width, channels)`, got shape {array.shape}")
    box = _image.aspect_crop_box(array.shape[-3], array.shape[-2], height, width)
    return _image.resize(_image.crop(array, *box), height, width, interpolation)
