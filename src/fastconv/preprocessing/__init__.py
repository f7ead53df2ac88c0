"""Keras' ``tf.keras.preprocessing``: data loading and augmentation helpers.

Empty for now apart from the :mod:`~fastconv.preprocessing.image` namespace;
fastconv's small bundled dataset is in :mod:`fastconv.datasets`, and the
preprocessing *layers* go in :mod:`fastconv.layers.experimental.preprocessing`.
"""
from . import image

__all__ = ["image"]
