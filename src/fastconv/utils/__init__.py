"""Keras' ``tf.keras.utils``: the helpers fastconv has that Keras users look for here.

* :func:`to_categorical`, :func:`normalize`: Keras 2.4's array helpers;
* :func:`set_random_seed`: seeds Python's ``random``, NumPy's global
  generator and fastconv's initializers at once;
* :class:`Sequence`: the base class of batch datasets ``fit`` takes;
* :class:`Progbar`: Keras 2.4's progress bar (:mod:`fastconv.callbacks`);
* :func:`get_file` (:mod:`.data_utils`): Keras 2.4's cached, hash-checked
  download, written atomically, with archives extracted safely;
* :func:`plot_model`, :func:`model_to_dot` (:mod:`.vis_utils`): the model's
  graph through pydot and Graphviz (the optional extra ``fastconv[plot]``).
"""
from __future__ import annotations

import numbers
import random
from typing import Any, Optional

import numpy as np

from .. import backend
from ..callbacks import Progbar
from .data_utils import get_file
from .vis_utils import model_to_dot, plot_model
from ..preprocessing.image_dataset import image_dataset_from_directory

__all__ = ["Progbar", "Sequence", "to_categorical", "normalize", "set_random_seed",
           "get_file", "plot_model", "model_to_dot", "image_dataset_from_directory"]


class Sequence:
    """Base class of a dataset of batches, as ``keras.utils.Sequence``.

    Subclasses implement ``__getitem__(index)`` (batch ``index``: ``(x, y)``
    or ``(x, y, sample_weight)``) and ``__len__()`` (batches per epoch), and
    may implement ``on_epoch_end()``, which ``fit`` calls after every epoch
    (to reshuffle, say). Batches are fetched by index, so ``fit(...,
    workers=4)`` can fetch several at once in threads and still use them in
    order.
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Called by ``fit`` at the end of every epoch."""

    def __iter__(self) -> Any:
        for index in range(len(self)):
            yield self[index]


def to_categorical(y: Any, num_classes: Optional[int] = None, dtype: Any = "float32"
                   ) -> np.ndarray:
    """One-hot rows of class indices, as ``keras.utils.to_categorical``.

    Parameters
    ----------
    y : array-like of ints
        Class indices in ``[0, num_classes)``. A trailing axis of size 1 is
        dropped first (labels shaped ``(N, 1)``, as CIFAR's, give ``(N,
        num_classes)``).
    num_classes : int, optional
        Default: ``max(y) + 1``.
    dtype : default 'float32'

    Returns
    -------
    ndarray of shape ``y.shape + (num_classes,)`` (without the size-1 axis).

    Raises
    ------
    ValueError
        For labels that are not whole numbers, negative, or not below
        ``num_classes`` (Keras would wrap negative ones around silently).
    """
    labels = np.asarray(y)
    if labels.dtype == object or labels.dtype.kind not in "iufb":
        raise ValueError(f"`y` must hold integer class indices, got dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError("`y` must hold whole-number class indices; got values that are "
                             "not (e.g. probabilities: pass class indices)")
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.ravel()
    if flat.size and flat.min() < 0:
        raise ValueError(f"`y` must hold class indices >= 0, got {int(flat.min())}")
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}")
    elif flat.size and flat.max() >= num_classes:
        raise ValueError(f"`y` holds class {int(flat.max())}, which needs num_classes > "
                         f"{int(flat.max())}; got num_classes={num_classes}")
    categorical = np.zeros((flat.size, int(num_classes)), dtype=dtype)
    categorical[np.arange(flat.size), flat] = 1
    return categorical.reshape(shape + (int(num_classes),))


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """``x`` divided by its ``order``-norm along ``axis`` (zero norms left
    as 1), as ``keras.utils.normalize``."""
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)


def set_random_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and the generator
    fastconv's unseeded initializers and shuffling draw from (as
    ``keras.utils.set_random_seed`` seeds Python, NumPy and the backend)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    backend.set_random_seed(int(seed))
