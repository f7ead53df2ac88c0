"""Gradients for hand-written training loops, without framework autodiff.

A TensorFlow custom loop records ``model(x, training=True)`` and the loss
on a ``GradientTape`` and asks it for ``tape.gradient(loss,
model.trainable_variables)``. fastconv has no tape over arbitrary Python;
the model's own backward pass gives the same gradients, for the losses
fastconv knows, in one call::

    optimizer = fastconv.optimizers.Adam(1e-3)
    loss_fn = fastconv.losses.SparseCategoricalCrossentropy()
    for x_batch, y_batch in batches:
        loss_value, grads = model.compute_gradients(x_batch, y_batch, loss=loss_fn)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

:class:`CustomLoopMixin` gives :class:`fastconv.models.Model` that method and
the loss-and-gradient step ``fit``'s train step is built on, so a hand
loop over the same batches with the compiled optimizer trains bitwise as
``fit`` does.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from .. import losses as losses_module
from .._memory import with_cached_allocations

__all__ = ["CustomLoopMixin"]


class CustomLoopMixin:
    """``compute_gradients`` and the loss-and-gradient step of a train step."""

    def _loss_and_gradients(self, loss: losses_module.Loss, loss_weight: float,
                            xs: List[np.ndarray], y: np.ndarray,
                            sample_weight: Optional[np.ndarray], fused: bool,
                            read_variables: bool
                            ) -> Tuple[float, List[np.ndarray], List[Any], np.ndarray]:
        """Forward in training mode, loss, backward.

        Returns ``(loss value, gradients, the variables they belong to,
        y_pred)``. The value is ``loss_weight * loss + sum(model.losses)``
        (regularization penalties of the weights before any update, and
        this batch's activity penalties), and the gradients are its
        gradients. ``read_variables`` reads ``trainable_weights`` anew;
        otherwise the ones fixed at the first step after ``compile``.
        """
        graph = self._training_graph()  # first: a subclassed model's trace may build layers
        if read_variables:
            self._check_regularizers()
            variables = self.trainable_weights
        else:
            variables = self._variables_to_train()
        activity: List[float] = []
        outputs, tape = graph.run(xs, True, record=True, losses=activity)
        y_pred = outputs[0]
        if fused:
            value, grad = loss.value_and_logits_gradient(y, y_pred, sample_weight)
        else:
            value, grad = loss.value_and_gradient(y, y_pred, sample_weight)
        if loss_weight != 1.0:
            value *= loss_weight
            grad = grad * grad.dtype.type(loss_weight)
        value += self._regularization_loss(activity)
        grads: List[np.ndarray] = []
        if variables:
            grads = self._gradients(tape, graph.output_gradients(tape, grad, fused), variables,
                                    fused, False, True)
        return float(value), grads, variables, y_pred

    @with_cached_allocations
    def compute_gradients(self, x: Any, y: Any, loss: Any = None, sample_weight: Any = None,
                          class_weight: Any = None, return_outputs: bool = False) -> Any:
        """Loss of one batch and its gradients, aligned with ``trainable_variables``.

        What a TensorFlow custom loop gets from ``GradientTape`` around
        ``loss_fn(y, model(x, training=True)) + sum(model.losses)``. Nothing
        is updated but what a training-mode forward pass updates (batch
        normalization's moving statistics, as ``model(x, training=True)``
        does in Keras); no metric changes. Apply the step with
        ``optimizer.apply_gradients(zip(grads, model.trainable_variables))``.

        Parameters
        ----------
        x : array or list/dict of arrays
            One batch of inputs.
        y : array
            Its targets.
        loss : str, Loss or callable, optional
            Any :func:`fastconv.losses.get` identifier. Default: the loss
            given to ``compile`` (with its ``loss_weights``).
        sample_weight : array of shape (n,), optional
        class_weight : dict, optional
            ``{class: weight}``, turned into sample weights as ``fit`` does.
        return_outputs : bool, default False
            Also return the model's output for the batch (what metrics read).

        Returns
        -------
        (float, list of ndarray) or (float, list of ndarray, ndarray)
            The loss value (regularization penalties included) and one
            gradient per ``model.trainable_variables`` entry, same shapes
            and dtypes (zeros for a weight the loss does not depend on);
            with ``return_outputs``, the output too. ``trainable_variables``
            is read at each call, so freezing a layer between calls takes
            effect at once.

        Raises
        ------
        ValueError
            No ``loss`` and no compiled loss; data that does not fit the
            model or the loss; a layer that cannot pass gradients back.
        """
        self._build_for_data(x)
        self._require_single_output("compute_gradients")
        self._check_gradients_reach_weights()
        if loss is None:
            compiled = self._compiled
            if compiled is None or compiled.loss is None:
                raise ValueError("compute_gradients: pass `loss` (e.g. "
                                 "loss='sparse_categorical_crossentropy'), or compile the model "
                                 "with a loss first")
            loss_obj, loss_weight = compiled.loss, compiled.loss_weight
        else:
            loss_obj, loss_weight = losses_module.get(loss), 1.0
        xs, y, weights, _ = self._prepare_xy(x, y, sample_weight, ("x", "y", "sample_weight"))
        weights = self._class_weighted(class_weight, y, weights)
        self._check_targets(y, "y", loss_obj)
        value, grads, _, y_pred = self._loss_and_gradients(
            loss_obj, loss_weight, xs, y, weights, self._fused_output_activation(loss_obj),
            read_variables=True)
        return (value, grads, y_pred) if return_outputs else (value, grads)
