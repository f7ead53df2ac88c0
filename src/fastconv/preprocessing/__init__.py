"""Keras' ``tf.keras.preprocessing``: loading and augmenting image data.

* :mod:`~fastconv.preprocessing.image`: ``ImageDataGenerator`` (with
  ``flow`` and ``flow_from_directory``), ``load_img``, ``img_to_array``,
  ``array_to_img``, ``save_img``;
* :func:`image_dataset_from_directory`: a :class:`fastconv.data.Dataset`
  of image batches from a folder of class subfolders.

Reading image files needs Pillow (``pip install 'fastconv[image]'``),
imported on first use. fastconv's small bundled datasets are in
:mod:`fastconv.datasets`; the preprocessing *layers* in
:mod:`fastconv.layers.experimental.preprocessing`.
"""
import importlib
from typing import Any

from .image_dataset import image_dataset_from_directory

__all__ = ["image", "image_dataset_from_directory"]


def __getattr__(name: str) -> Any:
    # `image` loads on first use: it subclasses fastconv.utils.Sequence, and
    # fastconv.utils imports image_dataset_from_directory from here.
    if name == "image":
        return importlib.import_module(f"{__name__}.image")
    raise AttributeError(f"module 'fastconv.preprocessing' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | {"image"})
