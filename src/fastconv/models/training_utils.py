"""Helpers of the training loop (:mod:`fastconv.models.training`): argument
checks, data splitting and batching, class weights, and the interrupt guard
around the optimizer step. Keras keeps their counterparts in
``engine/training_utils.py`` and ``engine/data_adapter.py``.

Internal: the public surface is the methods of :class:`fastconv.models.Model`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

# The interrupt guard lives below the layers and the models, which both use it;
# training.py reaches it under this module's name.
from .._signals import defer_keyboard_interrupt

__all__ = [
    "defer_keyboard_interrupt", "check_positive_int", "check_verbose", "check_cardinality",
    "split_last", "class_weight_to_sample_weight", "should_validate", "batch_slices",
]


def check_positive_int(value: Any, name: str, *, allow_zero: bool = False) -> int:
    """``value`` as an int, or a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
            value < (0 if allow_zero else 1):
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"`{name}` must be {kind} integer, got {value!r}")
    return int(value)


def check_verbose(verbose: Any) -> int:
    """Keras' verbose values: 0 (silent), 1 (progress bar), 2 (one line per
    epoch); ``'auto'`` means 1."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def check_cardinality(named_arrays: Sequence[Tuple[str, Sequence[np.ndarray]]]) -> int:
    """The common number of samples, or Keras' "Data cardinality is ambiguous" error.

    Parameters
    ----------
    named_arrays : sequence of (label, arrays)
        e.g. ``[("x", [x]), ("y", [y]), ("sample_weight", [w])]``.
    """
    sizes = [(label, [int(a.shape[0]) for a in arrays]) for label, arrays in named_arrays]
    for label, arrays in named_arrays:
        for a in arrays:
            if a.ndim == 0:
                raise ValueError(f"`{label}` must be an array with a batch dimension, got a "
                                 f"scalar {a!r}")
    distinct = {n for _, ns in sizes for n in ns}
    if len(distinct) > 1:
        lines = "".join(f"  {label} sizes: {', '.join(str(n) for n in ns)}\n"
                        for label, ns in sizes)
        raise ValueError(f"Data cardinality is ambiguous:\n{lines}"
                         "Make sure all arrays contain the same number of samples.")
    if not distinct or distinct == {0}:
        raise ValueError("Expect x to be a non-empty array or dataset.")
    return distinct.pop()


def split_last(n: int, validation_split: Any) -> int:
    """Keras' ``train_validation_split``: the index where validation starts.

    The validation part is the *last* ``n - floor(n * (1 - split))`` samples,
    taken before any shuffling.
    """
    if isinstance(validation_split, bool) or not isinstance(
            validation_split, (int, float, np.integer, np.floating)) or \
            not 0 <= validation_split < 1:
        raise ValueError(f"`validation_split` must be a number in [0, 1), got "
                         f"{validation_split!r}")
    split_at = int(math.floor(n * (1.0 - float(validation_split))))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to split it into a "
            f"validation and training set as specified by `validation_split="
            f"{validation_split}`. Either provide more data, or a different value for the "
            "`validation_split` argument.")
    return split_at


def class_weight_to_sample_weight(class_weight: Dict[Any, float], y: np.ndarray,
                                  n_outputs: Optional[int],
                                  sample_weight: Optional[np.ndarray]) -> np.ndarray:
    """Per-sample weights ``class_weight[class of sample]`` (times ``sample_weight``).

    The class of a sample is its label (integer labels, or one column with a
    single sigmoid output) or the argmax of its one-hot row, as in Keras.
    """
    if not isinstance(class_weight, dict) or not class_weight:
        raise ValueError(f"`class_weight` must be a non-empty dict {{class index: weight}}, "
                         f"got {class_weight!r}")
    try:
        keys = sorted(int(k) for k in class_weight)
    except (TypeError, ValueError):
        raise ValueError(f"`class_weight` keys must be class indices, got "
                         f"{sorted(class_weight, key=repr)}") from None
    if keys != list(range(keys[-1] + 1)):
        raise ValueError(f"Expected `class_weight` to be a dict with keys from 0 to one less "
                         f"than the number of classes, found {class_weight}")
    table = np.array([float(class_weight[k]) for k in keys])
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        classes = np.argmax(y, axis=1)
    else:
        flat = y.reshape(len(y), -1)
        if flat.shape[1] != 1:
            raise ValueError(f"`class_weight` needs one class per sample: `y` of shape "
                             f"{y.shape} is neither labels nor one-hot rows")
        classes = flat[:, 0]
        if n_outputs == 1:  # binary targets in [0, 1]
            classes = np.round(classes)
        classes = classes.astype(np.int64)
    outside = (classes < 0) | (classes >= len(table))
    if np.any(outside):
        index = int(np.flatnonzero(outside)[0])
        raise ValueError(f"`class_weight` has no weight for class {classes[index]} (sample "
                         f"{index} of `y`); it covers classes 0..{len(table) - 1}")
    weights = table[classes]
    if sample_weight is not None:
        weights = weights * np.asarray(sample_weight, dtype=np.float64).reshape(len(y))
    return weights


def should_validate(epoch: int, validation_freq: Any) -> bool:
    """Keras' ``_should_eval``: ``epoch`` is 0-based; ``validation_freq`` an
    int (every that many epochs) or a collection of 1-based epoch numbers."""
    epoch += 1
    if isinstance(validation_freq, (int, np.integer)) and not isinstance(validation_freq, bool):
        if validation_freq < 1:
            raise ValueError(f"`validation_freq` must be a positive integer or a list of "
                             f"epochs, got {validation_freq!r}")
        return epoch % int(validation_freq) == 0
    if isinstance(validation_freq, (list, tuple, set, frozenset, range)):
        return epoch in validation_freq
    raise ValueError(f"`validation_freq` must be a positive integer or a list of epochs, got "
                     f"{validation_freq!r}")


def batch_slices(n: int, batch_size: int, steps: Optional[int] = None) -> List[slice]:
    """``slice``s of consecutive batches; the last may be partial."""
    count = -(-n // batch_size)
    if steps is not None:
        count = min(count, steps)
    return [slice(start, min(start + batch_size, n))
            for start in range(0, count * batch_size, batch_size)]
