"""Keras' ``tf.keras.utils``: the helpers fastconv has that Keras users look for here.

Each name is re-exported from the module it lives in:

* :class:`Progbar` -- Keras 2.4's progress bar (:mod:`fastconv.callbacks`).

The rest of ``tf.keras.utils`` (``to_categorical``, ``plot_model``,
``get_custom_objects``, ``Sequence``, ...) does not exist in fastconv yet.
"""
from __future__ import annotations

from .callbacks import Progbar

__all__ = ["Progbar"]
