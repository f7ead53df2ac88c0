"""The training loop: ``compile``, ``fit``, ``evaluate``, ``predict`` and the
``*_on_batch`` methods, with the bookkeeping of losses and metrics.

:class:`TrainingMixin` gives :class:`fastconv.models.Model` these methods
(Keras keeps them in ``engine/training.py``). It drives the model only
through what a model is made of:

* ``self._graph_for(training)``: the :class:`~fastconv.models.graph.Graph`
  a run goes through (``run``, ``is_read_by_layers``); ``self._outputs`` and
  ``self.output_names``;
* ``self._build_for_data(x)``, ``self._prepare_inputs(x, argname)`` and
  ``self._pack_outputs(outputs)``;
* ``self.trainable_weights``, ``self.weights``, ``self._check_regularizers()``
  and ``self._gradients`` (the backward pass over a tape).

A step: ``Graph.run(..., record=True)`` -> loss value and gradient ->
``Model._gradients`` -> ``optimizer.apply_gradients``. The loss is the
compiled loss (times ``loss_weights``) plus ``sum(model.losses)``: each
weight's regularization penalty and the activity penalties of this batch,
in training as in ``evaluate``, as tf.keras 2.4 adds them; their gradients
join the weights' gradients, and the optimizer projects weights that carry
a constraint after updating them.

The weights a step trains are read once per ``compile``, at the first
training step after it, as tf.keras 2.4 reads them when it makes its train
function: changing ``trainable`` after that takes effect at the next
``compile`` (``compile(run_eagerly=True)`` reads them at every step, as
Keras' eager mode does). A softmax (sigmoid)
output trained with a (sparse) categorical (binary) cross-entropy takes the
fused, numerically stable gradient with respect to the logits
(``backward(..., pre_activation=True)``). The weights change only inside the
optimizer call, which holds back Ctrl-C until the step is whole, so an
interrupted ``fit`` leaves the model as it was after its last whole step.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .. import activations as activations_module
from .. import backend
from .. import callbacks as callbacks_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .._memory import with_cached_allocations
from ..layers.base import ArrayOrList
from ..layers.keras_tensor import shape_tuple
from . import data_adapter, inference, training_utils
from .custom_loop import CustomLoopMixin

__all__ = ["TrainingMixin"]


class _Compiled:
    """What :meth:`Model.compile` resolved: the loss, its weight and the metrics.

    ``loss_tracker`` is the running epoch mean of the batch losses (weighted
    by batch size); ``metrics`` see no sample weights, ``weighted_metrics``
    do (Keras' split).
    """

    def __init__(self, loss: Optional[losses_module.Loss], loss_weight: float,
                 metrics: List[metrics_module.Metric],
                 weighted_metrics: List[metrics_module.Metric]) -> None:
        self.loss = loss
        self.loss_weight = loss_weight
        self.loss_tracker = metrics_module.Mean(name="loss")
        self.metrics = metrics
        self.weighted_metrics = weighted_metrics

    @property
    def all_metrics(self) -> List[metrics_module.Metric]:
        return [self.loss_tracker, *self.metrics, *self.weighted_metrics]


def _single_entry(value: Any, what: str, output_names: Optional[List[str]]) -> Any:
    """Unwrap Keras' per-output forms (``[v]``, ``{'dense_1': v}``) for one output."""
    if isinstance(value, dict):
        if len(value) != 1:
            raise ValueError(f"`{what}` is a dict with {len(value)} entries, but fastconv trains "
                             f"models with one output (named {output_names})")
        (key, item), = value.items()
        if output_names is not None and key not in output_names:
            raise ValueError(f"`{what}` has an entry for {key!r}, which is not an output of "
                             f"the model; its output is {output_names[0]!r}")
        return item
    return value


class TrainingMixin(data_adapter.GeneratorMethodsMixin, CustomLoopMixin):
    """``compile``/``fit``/``evaluate``/``predict`` for :class:`fastconv.models.Model`
    (see the module docstring for what it needs from the model)."""

    def _init_training(self) -> None:
        # Set by compile().
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.loss: Any = None
        self._compiled: Optional[_Compiled] = None
        self._accumulate_batch_metrics = False
        self.stop_training = False
        self.history: Optional[callbacks_module.History] = None
        # What the train steps update, read at the first one after compile().
        self._train_variables: Optional[List[Any]] = None
        self._run_eagerly = False

    # ------------------------------------------------------------------
    # Inference in batches

    @with_cached_allocations
    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: int = 0,
                steps: Optional[int] = None, callbacks: Optional[Sequence[Any]] = None,
                max_queue_size: int = 10, workers: int = 1,
                use_multiprocessing: bool = False) -> ArrayOrList:
        """Outputs for ``x`` computed in batches of ``batch_size`` (default 32).

        Returns one array (a list for several outputs) holding every batch's
        outputs in order, in the model's dtype (float32 by default), as
        Keras does. ``steps`` limits the number of batches. ``verbose=1``
        shows a progress bar and ``callbacks`` receive the predict hooks
        (the default, ``verbose=0`` and no callbacks, skips that machinery
        entirely). ``x`` may be a source of batches (``x``, or ``(x, ...)``
        whose other items are ignored), prepared ahead as in :meth:`fit`;
        ``steps`` then defaults to its length.
        """
        batch_size = 32 if batch_size is None else training_utils.check_positive_int(
            batch_size, "batch_size")
        verbose = training_utils.check_verbose(verbose)
        if steps is not None:
            steps = training_utils.check_positive_int(steps, "steps")
        if data_adapter.is_batch_source(x):
            return self._predict_source(data_adapter.BatchSource(
                x, steps, "steps", workers, max_queue_size, use_multiprocessing), verbose,
                callbacks)
        self._build_for_data(x)
        arrays = self._prepare_inputs(x, "x")
        n = arrays[0].shape[0]
        if n == 0:
            raise ValueError("Expect x to be a non-empty array or dataset.")
        slices = training_utils.batch_slices(n, batch_size, steps)
        graph = self._graph_for(False)
        hooks = None
        if verbose or callbacks:
            hooks = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                                  verbose=verbose, epochs=1, steps=len(slices))
            hooks.on_predict_begin()
        if len(slices) == 1:  # one batch: hand out the arrays the last layers made
            if hooks is not None:
                hooks.on_predict_batch_begin(0)
            outputs = self._run_inference(graph, [a[slices[0]] for a in arrays])
            # A layer such as Flatten may return a view of the caller's input.
            results = [o.copy() if any(np.may_share_memory(o, a) for a in arrays) else o
                       for o in outputs]
            if hooks is not None:
                hooks.on_predict_batch_end(0, {"outputs": self._pack_outputs(results)})
        else:
            total = slices[-1].stop
            results = []
            for step, batch in enumerate(slices):
                if hooks is not None:
                    hooks.on_predict_batch_begin(step)
                outputs = self._run_inference(graph, [a[batch] for a in arrays])
                if not results:
                    results = [np.empty((total,) + o.shape[1:], dtype=o.dtype) for o in outputs]
                for store, out in zip(results, outputs):
                    store[batch] = out
                if hooks is not None:
                    hooks.on_predict_batch_end(step, {"outputs": self._pack_outputs(outputs)})
        if hooks is not None:
            hooks.on_predict_end()
        return self._pack_outputs(results)

    def _run_inference(self, graph: Any, arrays: List[np.ndarray]) -> List[np.ndarray]:
        """The graph's outputs in inference mode, through the model's plan for
        these shapes (:mod:`fastconv.models.inference`) when it has one."""
        plan = inference.plan_for(self, graph, arrays, False)
        if plan is None:
            return graph.run(arrays, False, record=False)[0]
        return plan.run(arrays)

    def _predict_source(self, source: data_adapter.BatchSource, verbose: int,
                        callbacks: Optional[Sequence[Any]]) -> ArrayOrList:
        hooks = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                              verbose=verbose, epochs=1, steps=source.steps)
        hooks.on_predict_begin()
        parts: List[List[np.ndarray]] = []
        with contextlib.closing(source.epoch()) as items:
            for step, item in enumerate(items):
                hooks.on_predict_batch_begin(step)
                batch_x = data_adapter.unpack_batch(item, f"batch {step} of x", False)[0]
                self._build_for_data(batch_x)
                arrays = self._prepare_inputs(batch_x, f"x of batch {step}")
                outputs = self._run_inference(self._graph_for(False), arrays)
                parts.append([o.copy() for o in outputs])   # layers may reuse buffers
                hooks.on_predict_batch_end(step, {"outputs": self._pack_outputs(outputs)})
        hooks.on_predict_end()
        return self._pack_outputs([np.concatenate(column) for column in zip(*parts)])

    def _source_batches(self, source: data_adapter.BatchSource, what: str,
                        class_weight: Optional[Dict[int, float]] = None,
                        on_first: Optional[Callable[[], None]] = None
                        ) -> Iterator[Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray]]]:
        """One epoch of a source's batches, checked and converted as arrays are."""
        with contextlib.closing(source.epoch()) as items:
            for step, item in enumerate(items):
                where = f"batch {step} of {what}"
                batch_x, batch_y, batch_w = data_adapter.unpack_batch(item, where, True)
                self._build_for_data(batch_x)
                if on_first is not None and step == 0:
                    on_first()
                xs, y, weights, _ = self._prepare_xy(
                    batch_x, batch_y, batch_w, tuple(f"{part} of {where}" for part in
                                                     ("x", "y", "sample_weight")))
                self._check_targets(y, f"y of {where}")
                weights = self._class_weighted(class_weight, y, weights)
                yield xs, y, weights

    @with_cached_allocations
    def predict_on_batch(self, x: Any) -> ArrayOrList:
        """Outputs for one batch (``model(x)``)."""
        return self(x)

    # ------------------------------------------------------------------
    # Training: compile / fit / evaluate

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None,
                loss_weights: Any = None, weighted_metrics: Any = None,
                run_eagerly: Optional[bool] = None, steps_per_execution: Optional[int] = None,
                **kwargs: Any) -> None:
        """Configure the model for training (Keras 2.4's ``compile``).

        Parameters
        ----------
        optimizer : str or Optimizer, default 'rmsprop'
            A name (``'adam'``, ``'sgd'``, ``'rmsprop'``, case-insensitive,
            with Keras' default hyperparameters) or an instance from
            :mod:`fastconv.optimizers`. An instance keeps its state across
            ``compile`` calls.
        loss : str, Loss or callable
            A name (``'sparse_categorical_crossentropy'``, ``'mse'``, ...), a
            :class:`fastconv.losses.Loss`, or a function returning
            ``(mean_loss, grad_wrt_y_pred)`` (see :func:`fastconv.losses.get`).
            Cross-entropy on a softmax (sigmoid) output is trained through the
            fused, numerically stable gradient with respect to the logits.
            ``[loss]`` and ``{output_name: loss}`` are accepted too.
        metrics : list, optional
            e.g. ``['accuracy']``: ``'accuracy'``/``'acc'`` is resolved from
            the shapes of the first batch as Keras does (binary, sparse or
            categorical); any :func:`fastconv.metrics.get` identifier.
        loss_weights : float, optional
            Scales the loss (a one-entry list or dict is accepted).
        weighted_metrics : list, optional
            Metrics that take ``sample_weight``/``class_weight`` into account
            (named ``weighted_<name>`` if the name is taken).
        run_eagerly : bool, optional
            fastconv always runs eagerly; ``True`` also makes every training
            step read :attr:`trainable_weights` anew (Keras' eager mode),
            where by default the first step after ``compile`` fixes them.
        steps_per_execution : int, optional
            Accepted; each batch is one step and gets its callbacks.

        Raises
        ------
        ValueError
            Unknown optimizer, loss or metric names.
        NotImplementedError
            For a model with several outputs.
        """
        if kwargs:
            raise TypeError(f"Invalid keyword argument(s) in `compile`: {sorted(kwargs)}")
        if steps_per_execution is not None:
            training_utils.check_positive_int(steps_per_execution, "steps_per_execution")
        output_names = None
        if self.built:
            self._require_single_output("compile")
            self._check_gradients_reach_weights()
            output_names = self.output_names
        optimizer_obj = optimizers_module.get(optimizer)
        loss_obj = losses_module.get(_single_entry(loss, "loss", output_names))
        loss_weight = _single_entry(loss_weights, "loss_weights", output_names)
        if isinstance(loss_weight, (list, tuple)) and len(loss_weight) == 1:
            loss_weight = loss_weight[0]
        if loss_weight is None:
            loss_weight = 1.0
        if isinstance(loss_weight, bool) or not isinstance(
                loss_weight, (int, float, np.integer, np.floating)) or not np.isfinite(loss_weight):
            raise ValueError(f"`loss_weights` must be a finite number for a model with one "
                             f"output, got {loss_weights!r}")
        metric_objs = self._resolve_metrics(metrics, "metrics", output_names)
        weighted_objs = self._resolve_metrics(weighted_metrics, "weighted_metrics", output_names)
        taken = {"loss"} | {m.name for m in metric_objs}
        for metric in weighted_objs:
            if metric.name in taken:
                metric.name = f"weighted_{metric.name}"
            taken.add(metric.name)
        if self.built:
            self._check_regularizers()
        self.optimizer = optimizer_obj
        self.loss = loss
        self._compiled = _Compiled(loss_obj, float(loss_weight), metric_objs, weighted_objs)
        self._accumulate_batch_metrics = False
        self.stop_training = False
        self._train_variables = None
        self._run_eagerly = bool(run_eagerly)

    @staticmethod
    def _resolve_metrics(identifiers: Any, what: str, output_names: Optional[List[str]]
                         ) -> List[metrics_module.Metric]:
        identifiers = _single_entry(identifiers, what, output_names)
        if identifiers is None:
            return []
        if isinstance(identifiers, (str, metrics_module.Metric)) or callable(identifiers):
            identifiers = [identifiers]
        if not isinstance(identifiers, (list, tuple)):
            raise TypeError(f"Type of `{what}` argument not understood. Expected a list or "
                            f"dictionary, found: {identifiers!r}")
        return [metrics_module.get(identifier) for identifier in identifiers]

    @property
    def metrics(self) -> List[metrics_module.Metric]:
        """The running metrics: the loss tracker first, then the compiled metrics."""
        return self._compiled.all_metrics if self._compiled is not None else []

    @property
    def metrics_names(self) -> List[str]:
        """``['loss', <metric names>...]``: the order of :meth:`evaluate`'s list."""
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        """Reset the running loss and metrics (fit does it at each epoch)."""
        for metric in self.metrics:
            metric.reset_state()

    def _require_compiled(self) -> _Compiled:
        if self._compiled is None:
            raise RuntimeError("You must compile your model before training/testing. Use "
                               "`model.compile(optimizer, loss)`.")
        if self._compiled.loss is None:
            raise ValueError("No loss found. You may have forgotten to provide a `loss` "
                             "argument in the `compile()` method.")
        return self._compiled

    def _check_gradients_reach_weights(self) -> None:
        """Refuse to train when a layer between the trainable weights and the output
        cannot pass gradients back (a Lambda over a function fastconv cannot
        differentiate): before any step, naming the layer."""
        blockers = self._graph.gradient_blockers(self.trainable_weights)
        if blockers:
            layer, why = blockers[0]
            raise ValueError(
                f"Model {self.name} cannot be trained: layer {layer.name} "
                f"({type(layer).__name__}) lies between trainable weights and the output. "
                f"{why}. Compute that step with fastconv layers, or freeze the layers before "
                "it (trainable=False).")

    def _require_single_output(self, method: str) -> None:
        if len(self._outputs) != 1:
            raise NotImplementedError(f"{method}(): fastconv trains models with one output; "
                                      f"model {self.name} has {len(self._outputs)}")

    def _fused_output_activation(self, loss: Optional[losses_module.Loss] = None) -> bool:
        """True when ``loss`` (default: the compiled loss) fuses with the
        output layer's activation.

        Softmax + (sparse) categorical cross-entropy and sigmoid + binary
        cross-entropy: the step then feeds ``dL/d(logits)``, computed from
        the probabilities without the activation's Jacobian, to
        ``backward(..., pre_activation=True)``. Not when the output layer has
        an activity regularizer (its gradient is taken after the activation).
        """
        if loss is None:
            loss = self._compiled.loss if self._compiled is not None else None
        if loss is None or loss.logits_activation is None or loss.from_logits:
            return False
        graph = self._graph_for(True)
        tensor = graph.outputs[0]
        layer = tensor.node.layer
        activation = getattr(layer, "activation", None)
        return (activation is not None
                and activation is activations_module.get(loss.logits_activation)
                and hasattr(layer, "backward_pre_activation")
                and layer.activity_regularizer is None
                and not graph.is_read_by_layers(tensor))

    def _variables_to_train(self) -> List[Any]:
        """The weights the train steps update (see the module docstring for when
        they are read); checks that every regularizer gives a gradient."""
        if self._train_variables is None or self._run_eagerly:
            self._check_regularizers()
            self._train_variables = self.trainable_weights
        return self._train_variables

    def _regularization_loss(self, activity_losses: List[float]) -> float:
        """``sum(model.losses)`` for a run that reported ``activity_losses``."""
        self._activity_losses = activity_losses
        return float(sum(self.losses))

    def _prepare_targets(self, y: Any, argname: str) -> np.ndarray:
        if y is None:
            raise ValueError(f"`{argname}` is required: fastconv trains and evaluates on "
                             "arrays, (x, y)")
        output_names = self.output_names
        y = _single_entry(y, argname, output_names)
        if isinstance(y, (list, tuple)) and len(y) == 1 and isinstance(y[0], np.ndarray):
            y = y[0]
        try:
            y = np.asarray(y)
        except ValueError as exc:
            raise ValueError(f"`{argname}` is not a rectangular array: {exc}") from None
        if y.dtype.kind not in "biuf":
            raise TypeError(f"`{argname}` must hold numbers, got dtype {y.dtype}")
        if y.ndim == 0:
            raise ValueError(f"`{argname}` must have a batch dimension, got a scalar")
        return y

    @staticmethod
    def _prepare_sample_weight(sample_weight: Any, argname: str) -> Optional[np.ndarray]:
        if sample_weight is None:
            return None
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.ndim == 2 and weights.shape[1] == 1:
            weights = weights[:, 0]
        if weights.ndim != 1:
            raise ValueError(f"`{argname}` must hold one weight per sample, shape (n,), got "
                             f"shape {weights.shape}")
        return weights

    def _check_targets(self, y: np.ndarray, argname: str,
                       loss: Optional[losses_module.Loss] = None) -> None:
        """Check all of ``y`` against ``loss`` (default: the compiled loss) at once, so that a bad label is
        reported with its index in ``y`` (not in some batch) and before training.

        Done for the built-in cross-entropies, by evaluating the loss on a
        uniform prediction of the output's shape (which checks shapes,
        one-hot vs integer labels, and the label range).
        """
        if loss is None:
            loss = self._compiled.loss
        if loss is None or loss.logits_activation is None or \
                type(loss).__module__ != losses_module.__name__:
            return
        out_shape = shape_tuple(self._outputs[0].shape)
        if len(out_shape) < 2 or any(d is None for d in out_shape[1:]):
            return
        probe = np.full((len(y),) + tuple(out_shape[1:]), 1.0 / out_shape[-1], np.float32)
        try:
            loss.per_sample(y, probe)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"`{argname}` does not fit the loss {loss.name} and the model's "
                            f"output of shape {out_shape}: {exc}") from None

    def _prepare_xy(self, x: Any, y: Any, sample_weight: Any, names: Tuple[str, str, str]
                    ) -> Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray], int]:
        xs = self._prepare_inputs(x, names[0])
        y = self._prepare_targets(y, names[1])
        weights = self._prepare_sample_weight(sample_weight, names[2])
        labelled = [(names[0], xs), (names[1], [y])]
        if weights is not None:
            labelled.append((names[2], [weights]))
        n = training_utils.check_cardinality(labelled)
        return xs, y, weights, n

    def _class_weighted(self, class_weight: Optional[Dict[Any, float]], y: np.ndarray,
                        weights: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """``sample_weight`` times the weights ``class_weight`` gives ``y``'s classes."""
        if class_weight is None:
            return weights
        return training_utils.class_weight_to_sample_weight(
            class_weight, y, shape_tuple(self._outputs[0].shape)[-1], weights)

    def _current_logs(self, compiled: _Compiled) -> Dict[str, float]:
        return {metric.name: metric.result() for metric in compiled.all_metrics}

    def _update_metrics(self, compiled: _Compiled, loss_value: float, y: np.ndarray,
                        y_pred: np.ndarray, sample_weight: Optional[np.ndarray]) -> None:
        compiled.loss_tracker.update_state(loss_value, sample_weight=len(y_pred))
        for metric in compiled.metrics:
            metric.update_state(y, y_pred)
        for metric in compiled.weighted_metrics:
            metric.update_state(y, y_pred, sample_weight=sample_weight)

    def _train_step(self, compiled: _Compiled, xs: List[np.ndarray], y: np.ndarray,
                    sample_weight: Optional[np.ndarray], fused: bool) -> Dict[str, float]:
        """One optimizer step on one batch; returns the running logs.

        The weights change only inside the optimizer call, which a Ctrl-C
        cannot split: after any interruption the model holds the weights of
        a whole number of steps.
        """
        value, grads, variables, y_pred = self._loss_and_gradients(
            compiled.loss, compiled.loss_weight, xs, y, sample_weight, fused,
            read_variables=False)
        if variables:
            # Variables, not arrays: the optimizer applies their constraints.
            with training_utils.defer_keyboard_interrupt():
                self.optimizer.apply_gradients(zip(grads, variables))
        self._update_metrics(compiled, value, y, y_pred, sample_weight)
        return self._current_logs(compiled)

    def _test_loop(self, compiled: _Compiled,
                   batches: Iterator[Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray]]],
                   hooks: callbacks_module.CallbackList) -> Dict[str, float]:
        self.reset_metrics()
        hooks.on_test_begin()
        logs: Dict[str, float] = {}
        for step, (batch_x, batch_y, batch_w) in enumerate(batches):
            hooks.on_test_batch_begin(step)
            activity: List[float] = []
            outputs, _ = self._graph_for(False).run(batch_x, False, record=False,
                                                    losses=activity)
            value = compiled.loss(batch_y, outputs[0], batch_w) * compiled.loss_weight
            value += self._regularization_loss(activity)
            self._update_metrics(compiled, value, batch_y, outputs[0], batch_w)
            logs = self._current_logs(compiled)
            hooks.on_test_batch_end(step, logs)
        hooks.on_test_end(logs)
        return logs

    def _format_results(self, logs: Dict[str, float], return_dict: bool) -> Any:
        if return_dict:
            return dict(logs)
        results = [logs[name] for name in self.metrics_names if name in logs]
        return results[0] if len(results) == 1 else results

    @with_cached_allocations
    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
            epochs: int = 1, verbose: Any = 1, callbacks: Optional[Sequence[Any]] = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: Any = True,
            class_weight: Optional[Dict[int, float]] = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: Optional[int] = None,
            validation_steps: Optional[int] = None, validation_batch_size: Optional[int] = None,
            validation_freq: Any = 1, max_queue_size: int = 10, workers: int = 1,
            use_multiprocessing: bool = False) -> callbacks_module.History:
        """Train for ``epochs`` epochs on arrays or batches (Keras 2.4's ``fit``).

        Parameters
        ----------
        x : array, list/dict of arrays for several inputs, or a source of batches
            Arrays are converted once to the input dtype (float32). A
            generator, iterator, ``Sequence`` or other iterable yields
            ``(x, y)`` or ``(x, y, sample_weight)`` batches
            (:mod:`fastconv.models.data_adapter`); ``y`` and
            ``sample_weight`` are then not given, and ``shuffle`` and
            ``batch_size`` do not apply (the source decides).
        y : array
            Targets: integer labels for ``sparse_categorical_crossentropy``,
            one-hot rows for ``categorical_crossentropy``, ...
        batch_size : int, default 32
            Each epoch has ``ceil(n / batch_size)`` steps; the last batch may
            be smaller.
        epochs : int, default 1
            Index of the last epoch: training runs epochs ``initial_epoch``
            to ``epochs - 1``.
        verbose : 0, 1, 2 or 'auto'
            1: progress bar (``Epoch i/n`` lines when ``epochs > 1``), 2: one
            line per epoch, 0: silent. See :mod:`fastconv.callbacks` for how
            the bar is written to terminals and to files/pipes.
        callbacks : list of Callback
            A :class:`~fastconv.callbacks.History` (returned) and the progress
            bar are added.
        validation_split : float in [0, 1)
            Hold out the *last* fraction of ``x``/``y`` (taken before
            shuffling) and evaluate on it after every epoch.
        validation_data : (x_val, y_val), (x_val, y_val, sample_weight_val) or a source
            Overrides ``validation_split``. A source of batches is run for
            ``validation_steps`` batches (default: its length) each time.
        shuffle : bool or 'batch', default True
            Reshuffle the samples before each epoch (with the generator
            :func:`fastconv.backend.set_random_seed` seeds); ``'batch'``
            shuffles within each batch only.
        class_weight : dict, optional
            ``{class index: weight}``, turned into per-sample weights of the
            training data.
        sample_weight : array of shape (n,), optional
            Weights of the training samples in the loss (and in
            ``weighted_metrics``).
        initial_epoch : int, default 0
        validation_steps : int, optional
            Limit the validation pass to that many batches.
        validation_batch_size : int, optional
            Defaults to ``batch_size``.
        validation_freq : int or list of int, default 1
            Validate every that many epochs, or on the listed 1-based epochs.
        steps_per_epoch : int, optional
            Batches per epoch from a source (default: its length; required
            for an iterator without one). With arrays only ``None`` (whole
            epochs) is supported.
        max_queue_size, workers, use_multiprocessing
            For a source: batches prepared ahead by a background thread
            (``workers=0``: in this thread; a ``Sequence`` with ``workers >
            1``: fetched by that many threads, or processes with
            ``use_multiprocessing``, used in order). Ignored for arrays.

        Returns
        -------
        History
            ``history.history`` maps ``loss``, each metric, and with
            validation ``val_loss`` and ``val_<metric>`` to one value per
            epoch: the epoch's running means, as the progress bar shows them.

        Notes
        -----
        Setting ``model.stop_training = True`` (from a callback) ends
        training after the current batch. If training is interrupted (Ctrl-C
        or an exception from a callback), the model keeps the weights and
        optimizer state of the last whole step and stays usable; ``fit`` can
        be called again.
        """
        compiled = self._require_compiled()
        batch_size = 32 if batch_size is None else training_utils.check_positive_int(
            batch_size, "batch_size")
        epochs = training_utils.check_positive_int(epochs, "epochs", allow_zero=True)
        initial_epoch = training_utils.check_positive_int(initial_epoch, "initial_epoch",
                                                     allow_zero=True)
        verbose = training_utils.check_verbose(verbose)
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"`shuffle` must be True, False or 'batch', got {shuffle!r}")
        if validation_steps is not None:
            validation_steps = training_utils.check_positive_int(validation_steps, "validation_steps")
        validation_batch_size = batch_size if validation_batch_size is None else \
            training_utils.check_positive_int(validation_batch_size, "validation_batch_size")
        training_utils.should_validate(0, validation_freq)  # checks its type

        def first_checks() -> None:   # once the model is built
            self._require_single_output("fit")
            self._check_gradients_reach_weights()

        def validation_arrays() -> Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray]]:
            if not isinstance(validation_data, (tuple, list)) or \
                    len(validation_data) not in (2, 3):
                raise ValueError(
                    "`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, "
                    f"val_sample_weight) or a generator, got {type(validation_data).__name__}"
                    + (f" of length {len(validation_data)}"
                       if isinstance(validation_data, (tuple, list)) else ""))
            val_weights = validation_data[2] if len(validation_data) == 3 else None
            val_x, val_y, val_w, _ = self._prepare_xy(
                validation_data[0], validation_data[1], val_weights,
                ("validation_data[0]", "validation_data[1]", "validation_data[2]"))
            self._check_targets(val_y, "validation_data[1]")
            return val_x, val_y, val_w

        source = val_source = None
        validation = None
        if data_adapter.is_batch_source(validation_data):
            val_source = data_adapter.BatchSource(validation_data, validation_steps,
                                                  "validation_steps", workers, max_queue_size,
                                                  use_multiprocessing)
        if data_adapter.is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("`y` and `sample_weight` must not be given when `x` is a "
                                 "generator, an iterator or a Sequence: its batches carry them")
            if validation_split:
                raise ValueError("`validation_split` needs array data; with a generator, pass "
                                 "`validation_data`")
            source = data_adapter.BatchSource(x, steps_per_epoch, "steps_per_epoch", workers,
                                              max_queue_size, use_multiprocessing)
            steps = source.steps
        else:
            if steps_per_epoch is not None:
                raise NotImplementedError("`steps_per_epoch` with arrays is not supported: fit "
                                          "trains on arrays by whole epochs; pass None, or "
                                          "pass the data as a generator or a Sequence")
            self._build_for_data(x)
            first_checks()
            xs, y, weights, n = self._prepare_xy(x, y, sample_weight,
                                                 ("x", "y", "sample_weight"))
            if validation_data is not None and val_source is None:
                validation = validation_arrays()
            elif validation_split:
                split_at = training_utils.split_last(n, validation_split)
                validation = ([a[split_at:] for a in xs], y[split_at:],
                              None if weights is None else weights[split_at:])
                xs, y = [a[:split_at] for a in xs], y[:split_at]
                weights = None if weights is None else weights[:split_at]
                n = split_at
            weights = self._class_weighted(class_weight, y, weights)
            self._check_targets(y, "y")
            if not shuffle:
                xs = [np.ascontiguousarray(a) for a in xs]  # batches are views, copied never
            slices = training_utils.batch_slices(n, batch_size)
            steps = len(slices)

        fused: Optional[bool] = None   # known once the model is built
        hooks = callbacks_module.CallbackList(callbacks, add_history=True,
                                              add_progbar=verbose != 0, model=self,
                                              verbose=verbose, epochs=epochs, steps=steps)
        self._accumulate_batch_metrics = False
        self.stop_training = False
        rng = backend.global_rng()
        training_logs: Optional[Dict[str, float]] = None
        hooks.on_train_begin()
        initial_epoch = hooks.resume_epoch(initial_epoch)
        try:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                hooks.on_epoch_begin(epoch)
                if source is not None:
                    batches = self._source_batches(source, "x", class_weight, first_checks)
                else:
                    order = None
                    if shuffle is True:
                        order = rng.permutation(n)
                    elif shuffle == "batch":
                        order = np.concatenate([rng.permutation(np.arange(b.start, b.stop))
                                                for b in slices])
                    batches = data_adapter.array_batches(xs, y, weights, slices, order)
                logs: Dict[str, float] = {}
                with contextlib.closing(batches):
                    for step, (batch_x, batch_y, batch_w) in enumerate(batches):
                        hooks.on_train_batch_begin(step)
                        if fused is None:
                            fused = self._fused_output_activation()
                        logs = self._train_step(compiled, batch_x, batch_y, batch_w, fused)
                        hooks.on_train_batch_end(step, logs)
                        if self.stop_training:
                            break
                if source is not None and source.exhausted:
                    self.stop_training = True   # Keras: "Your input ran out of data"
                epoch_logs = dict(logs)
                validating = validation_data is not None or validation is not None
                if validating and training_utils.should_validate(epoch, validation_freq):
                    if validation is None and val_source is None:
                        validation = validation_arrays()   # a source built the model
                    if val_source is not None:
                        val_batches = self._source_batches(val_source, "validation_data")
                    else:
                        val_batches = data_adapter.array_batches(*validation, training_utils.batch_slices(
                            len(validation[1]), validation_batch_size, validation_steps))
                    with contextlib.closing(val_batches):
                        val_logs = self._test_loop(compiled, val_batches, hooks)
                    epoch_logs.update({"val_" + key: value for key, value in val_logs.items()})
                hooks.on_epoch_end(epoch, epoch_logs)
                training_logs = epoch_logs
                if self.stop_training:
                    break
        except BaseException:
            self._tape = None  # free the activations of an unfinished step
            raise
        hooks.on_train_end(training_logs)
        return hooks.history

    @with_cached_allocations
    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Any = 1, sample_weight: Any = None, steps: Optional[int] = None,
                 callbacks: Optional[Sequence[Any]] = None, max_queue_size: int = 10,
                 workers: int = 1, use_multiprocessing: bool = False,
                 return_dict: bool = False) -> Any:
        """Loss and metrics on ``(x, y)`` in batches (Keras 2.4's ``evaluate``).

        Returns
        -------
        float, list of float or dict
            The loss alone when no metric was compiled; else
            ``[loss, *metrics]`` in :attr:`metrics_names` order; the dict
            ``{name: value}`` with ``return_dict=True``. Values are means over
            all samples (batch losses weighted by batch size).

        ``verbose=1`` shows one progress bar; ``steps`` limits the batches.
        ``x`` may be a source of ``(x, y[, sample_weight])`` batches, as in
        :meth:`fit` (``steps`` then defaults to its length).
        """
        compiled = self._require_compiled()
        batch_size = 32 if batch_size is None else training_utils.check_positive_int(
            batch_size, "batch_size")
        verbose = training_utils.check_verbose(verbose)
        if steps is not None:
            steps = training_utils.check_positive_int(steps, "steps")
        if data_adapter.is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("`y` and `sample_weight` must not be given when `x` is a "
                                 "generator, an iterator or a Sequence: its batches carry them")
            source = data_adapter.BatchSource(x, steps, "steps", workers, max_queue_size,
                                              use_multiprocessing)
            batches = self._source_batches(source, "x", on_first=lambda:
                                           self._require_single_output("evaluate"))
            count = source.steps
        else:
            self._build_for_data(x)
            self._require_single_output("evaluate")
            xs, y, weights, n = self._prepare_xy(x, y, sample_weight,
                                                 ("x", "y", "sample_weight"))
            self._check_targets(y, "y")
            slices = training_utils.batch_slices(n, batch_size, steps)
            batches, count = data_adapter.array_batches(xs, y, weights, slices), len(slices)
        hooks = callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=count)
        self._accumulate_batch_metrics = False
        with contextlib.closing(batches):
            logs = self._test_loop(compiled, batches, hooks)
        return self._format_results(logs, return_dict)

    def _on_batch_data(self, x: Any, y: Any, sample_weight: Any
                       ) -> Tuple[_Compiled, List[np.ndarray], np.ndarray, Optional[np.ndarray]]:
        compiled = self._require_compiled()
        self._build_for_data(x)
        self._require_single_output("train_on_batch")
        xs, y, weights, _ = self._prepare_xy(x, y, sample_weight, ("x", "y", "sample_weight"))
        self._check_targets(y, "y")
        if not self._accumulate_batch_metrics:
            self.reset_metrics()
        return compiled, xs, y, weights

    @with_cached_allocations
    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       class_weight: Optional[Dict[int, float]] = None,
                       reset_metrics: bool = True, return_dict: bool = False) -> Any:
        """One optimizer step on one batch; returns its loss (and metrics).

        Returns what :meth:`evaluate` returns, for this batch. With
        ``reset_metrics=False`` the values accumulate over consecutive
        ``*_on_batch`` calls.
        """
        compiled, xs, y, weights = self._on_batch_data(x, y, sample_weight)
        self._check_gradients_reach_weights()
        weights = self._class_weighted(class_weight, y, weights)
        try:
            logs = self._train_step(compiled, xs, y, weights, self._fused_output_activation())
        except BaseException:
            self._tape = None
            raise
        self._after_batch(reset_metrics)
        return self._format_results(logs, return_dict)

    @with_cached_allocations
    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                      reset_metrics: bool = True, return_dict: bool = False) -> Any:
        """Loss (and metrics) of one batch, without training."""
        compiled, xs, y, weights = self._on_batch_data(x, y, sample_weight)
        activity: List[float] = []
        outputs, _ = self._graph_for(False).run(xs, False, record=False, losses=activity)
        value = compiled.loss(y, outputs[0], weights) * compiled.loss_weight
        value += self._regularization_loss(activity)
        self._update_metrics(compiled, value, y, outputs[0], weights)
        logs = self._current_logs(compiled)
        self._after_batch(reset_metrics)
        return self._format_results(logs, return_dict)

    def _after_batch(self, reset_metrics: bool) -> None:
        if reset_metrics:
            self.reset_metrics()
        self._accumulate_batch_metrics = not reset_metrics
