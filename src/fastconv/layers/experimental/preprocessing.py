"""Keras' ``tf.keras.layers.experimental.preprocessing``: the preprocessing
layers (tf.keras 2.4's home for them; Keras 3 has them in ``layers``, and so
does :mod:`fastconv.layers`).

``Rescaling``, ``Resizing``, ``CenterCrop`` and ``Normalization`` are in
:mod:`fastconv.layers.preprocessing`, the random augmentation layers in
:mod:`fastconv.layers.augmentation`.
"""
from ..augmentation import (RandomContrast, RandomCrop, RandomFlip, RandomRotation,
                            RandomTranslation, RandomZoom)
from ..preprocessing import CenterCrop, Normalization, Rescaling, Resizing

__all__ = ["Rescaling", "Resizing", "CenterCrop", "Normalization", "RandomFlip",
           "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
           "RandomCrop"]
