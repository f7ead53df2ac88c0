"""``Embedding``: rows of a learned table looked up by integer index."""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import constraints, initializers, regularizers
from .base import Layer

__all__ = ["Embedding"]

Shape = Tuple[Optional[int], ...]


class _EmbeddingCache(NamedTuple):
    indices: np.ndarray  # the looked-up rows, for the scatter-add of the gradient


class Embedding(Layer):
    """Turns integer indices into dense vectors: ``output[..., :] = embeddings[index]``.

    Parameters
    ----------
    input_dim : int
        Size of the vocabulary: indices must lie in ``[0, input_dim)``.
    output_dim : int
        Length of each vector.
    embeddings_initializer : str, dict or callable, default 'uniform'
        Keras' ``'uniform'`` is ``RandomUniform(-0.05, 0.05)``.
    embeddings_regularizer, activity_regularizer, embeddings_constraint
        Resolved and carried for training to apply (the table's regularizer
        and constraint travel on the weight, the activity regularizer on the
        layer).
    mask_zero : bool
        Whether index 0 is padding. :meth:`compute_mask` returns the mask
        ``inputs != 0``, but fastconv's models do not propagate masks: later
        layers and the loss see every step, where Keras would mask the loss
        and mask-aware layers (a warning says so).
    input_length : int or tuple of int, optional
        The sequence length(s) when constant; needed by a ``Flatten`` then
        ``Dense`` after the layer.
    **kwargs
        ``name``, ``dtype`` (of the table and output, float32 by default),
        ``trainable``, ``input_shape``, ``batch_size``.

    Inputs are integer arrays of any integer dtype, kept as they are (no
    round trip through float32, Keras' ``autocast=False``); float inputs are
    truncated to integers, as Keras casts them. An index outside
    ``[0, input_dim)`` raises ``ValueError``. As in Keras, the layer always
    has an input shape (``(input_length,)``, else ``(None,)``), so a
    Sequential starting with it is built at once.

    Weights: ``embeddings`` ``(input_dim, output_dim)``. The backward pass
    scatter-adds the output gradient into the rows that were looked up
    (repeated indices add up) and gives no input gradient: indices are not
    differentiable.
    """

    _autocast = False

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: Any = "uniform", embeddings_regularizer: Any = None,
                 activity_regularizer: Any = None, embeddings_constraint: Any = None,
                 mask_zero: bool = False, input_length: Any = None, **kwargs: Any) -> None:
        if "input_shape" not in kwargs:
            # Keras' rule: the layer always knows its input shape.
            if isinstance(input_length, (list, tuple)):
                kwargs["input_shape"] = tuple(input_length)
            else:
                kwargs["input_shape"] = (input_length,) if input_length else (None,)
        super().__init__(**kwargs)
        self.input_dim = self._dim(input_dim, "input_dim")
        self.output_dim = self._dim(output_dim, "output_dim")
        if self.input_dim < 1 or self.output_dim < 1:
            raise ValueError("Both `input_dim` and `output_dim` should be positive, found "
                             f"input_dim {self.input_dim} and output_dim {self.output_dim}")
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.input_length = input_length
        self.embeddings = None
        if self.mask_zero:
            warnings.warn(f"Layer {self.name} (Embedding): mask_zero=True is accepted and "
                          "compute_mask() returns the mask, but fastconv models do not "
                          "propagate masks: later layers and the loss also see the padded "
                          "steps (Keras would mask them)", UserWarning, stacklevel=2)

    def _dim(self, value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"Layer {self.name} (Embedding): `{name}` must be a positive "
                            f"integer, got {value!r}")
        return int(value)

    def build(self, input_shape: Shape) -> None:
        """Create ``embeddings`` (input_dim, output_dim)."""
        self.embeddings = self.add_weight(
            "embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
            regularizer=self.embeddings_regularizer, constraint=self.embeddings_constraint)
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """``input_shape + (output_dim,)``, known lengths taken from ``input_length``."""
        input_shape = tuple(input_shape)
        if self.input_length is None:
            return input_shape + (self.output_dim,)
        lengths = (list(self.input_length) if isinstance(self.input_length, (list, tuple))
                   else [self.input_length])
        mismatch = ValueError(f'"input_length" is {self.input_length}, but received input '
                              f"has shape {input_shape}")
        if len(lengths) != len(input_shape) - 1:
            raise mismatch
        for i, (expected, actual) in enumerate(zip(lengths, input_shape[1:])):
            if expected is not None and actual is not None and expected != actual:
                raise mismatch
            if expected is None:
                lengths[i] = actual
        return (input_shape[0],) + tuple(lengths) + (self.output_dim,)

    def _indices(self, inputs: Any) -> np.ndarray:
        """``inputs`` as valid row indices (integers in ``[0, input_dim)``)."""
        x = np.asarray(inputs)
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)):
                raise ValueError(f"Layer {self.name} (Embedding): indices must be finite, got "
                                 "NaN or infinity")
            x = np.trunc(x)  # Keras casts floats to int32, truncating toward zero
        elif x.dtype.kind not in "biu":
            raise TypeError(f"Layer {self.name} (Embedding): indices must be integers, got an "
                            f"array of dtype {x.dtype}")
        if x.size:
            low, high = x.min(), x.max()
            if low < 0 or high >= self.input_dim:
                bad = int(low if low < 0 else high)
                raise ValueError(f"Layer {self.name} (Embedding): indices must be in [0, "
                                 f"{self.input_dim}) (input_dim={self.input_dim}), got {bad}")
        return x.astype(np.intp, copy=False)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _EmbeddingCache]:
        """The looked-up rows, shaped ``inputs.shape + (output_dim,)``."""
        indices = self._indices(inputs)
        return np.take(self.embeddings.value, indices, axis=0), _EmbeddingCache(indices)

    def backward(self, d_outputs: np.ndarray, cache: _EmbeddingCache, compute_dx: bool = True
                 ) -> Tuple[None, List[np.ndarray]]:
        """No input gradient; the table's gradient sums ``d_outputs`` per index."""
        table = self.embeddings.value
        rows = np.asarray(d_outputs, dtype=table.dtype).reshape(-1, self.output_dim)
        grad = np.zeros_like(table)
        # Unbuffered, so repeated indices accumulate (in input order: deterministic).
        np.add.at(grad, cache.indices.ravel(), rows)
        return None, [grad]

    def compute_mask(self, inputs: Any, mask: Any = None) -> Optional[np.ndarray]:
        """``inputs != 0`` with ``mask_zero``, else None (as Keras)."""
        if not self.mask_zero:
            return None
        return np.asarray(inputs) != 0

    def _output_op_name(self, input_shape: Any) -> str:
        return "embedding_lookup/Identity_1"  # [U] what TF 2.4's embedding_lookup_v2 ends with

    def get_config(self) -> Dict[str, Any]:
        """Keras 2.4's keys, with serialized objects."""
        config = super().get_config()
        config.update({
            "input_dim": self.input_dim, "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero, "input_length": self.input_length,
        })
        return config
