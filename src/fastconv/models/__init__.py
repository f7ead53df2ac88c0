"""Keras-like models: functional :class:`Model` and :class:`Sequential`.

Building (Keras 2 / TF 2.4 semantics)::

    from fastconv.layers import Input, Conv2D, MaxPooling2D, Flatten, Dense
    from fastconv.models import Model, Sequential

    inputs = Input(shape=(28, 28, 1))
    x = Conv2D(32, 3, activation="relu")(inputs)
    x = MaxPooling2D(2)(x)
    outputs = Dense(10, activation="softmax")(Flatten()(x))
    model = Model(inputs=inputs, outputs=outputs)
    model.summary()
    probabilities = model.predict(images)          # float32 ndarray

Training interface (what compile/fit/train_on_batch build on)
-------------------------------------------------------------
``model.trainable_weights`` : list of :class:`fastconv.layers.Variable`
    Unique trainable weights, layers in ``model.layers`` order, each layer's
    ``[kernel, bias]``. ``v.numpy()`` is the live array; update it in place
    (``v.assign_sub(lr * g)``, ``v.numpy()[...] -= ...``) or ``v.assign(new)``.
``outputs = model.forward(x, training=True)``
    Runs the graph on arrays and records a tape (each layer call's cache) for
    the next :meth:`Model.backward`. Returns an ndarray (a list for several
    outputs), like ``model(x)``.
``grads = model.backward(d_outputs)``
    ``d_outputs`` is dL/d(output) (a list for several outputs; ``None`` for
    an output without loss), shaped like the forward outputs. Returns
    gradients aligned with ``model.trainable_weights`` (same shapes and
    dtypes; a weight used by several calls gets the sum). Consumes the tape.
    ``regularization=True`` adds the gradient of ``sum(model.losses)`` (the
    weights' regularization penalties and the forward pass's activity
    penalties), which ``fit`` adds to the loss.
    ``pre_activation=True`` says ``d_outputs`` is already the gradient of the
    output layers' *pre-activation* (logits) -- e.g. ``(softmax - onehot) / n``
    for softmax + categorical cross-entropy -- so the final activation's
    derivative is skipped. ``input_gradients=True`` returns
    ``(grads, [dL/d(input) ...])``. The first layers after an Input compute
    no input gradient unless that is asked for.
``model.non_trainable_weights``, ``model.weights``, ``get_weights()``,
``set_weights()``
    Keras order and layouts.

One training step with :mod:`fastconv.optimizers` (which update arrays in place)::

    probabilities = model.forward(x_batch, training=True)
    grads = model.backward((probabilities - onehot) / len(x_batch), pre_activation=True)
    optimizer.apply_gradients(zip(grads, [v.numpy() for v in model.trainable_weights]))

A hand-written loop (what TensorFlow's ``GradientTape`` loop does; the loss
and its gradients come from the model, :mod:`fastconv.models.custom_loop`)::

    loss_value, grads = model.compute_gradients(x_batch, y_batch, loss=loss_fn)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))

Training (Keras 2.4 semantics; details in each method's docstring)::

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=15,
                        validation_split=0.1)      # the *last* 10%, before shuffling
    history.history         # {'loss': [...], 'accuracy': [...], 'val_loss': [...], ...}
    loss, accuracy = model.evaluate(x_test, y_test)
    model.train_on_batch(x, y); model.test_on_batch(x, y)

A softmax (sigmoid) output trained with a (sparse) categorical (binary)
cross-entropy takes the fused, numerically stable gradient with respect to the
logits (``backward(..., pre_activation=True)``). The weights change only inside
the optimizer call, which holds back Ctrl-C until the step is whole, so an
interrupted ``fit`` leaves the model as it was after its last whole step.
Callbacks may set ``model.stop_training = True``.

Other API: ``model(x)`` / ``predict(x, batch_size=32)`` (no tape),
``summary(..., show_macs=False)``, ``summary_string()``, ``count_params()``,
``count_macs()``, ``save_weights(path)`` / ``load_weights(path)`` (``.npz``,
written atomically), ``get_layer(name)``, ``layers``, ``inputs``, ``outputs``.

Models are layers: a Model or Sequential called on a KerasTensor is one node
of another model (its weights are that model's; ``trainable = False`` on it
freezes them, read when training is set up: see ``Model.trainable``), and a
model built from another model's tensors (``Model(base.input,
base.get_layer(name).output)``) shares its layers. Subclassed models
(``class Net(Model)`` with layers made in ``__init__`` and a ``call``) are
traced into the same graph machinery; :mod:`fastconv.models.model` says
what ``call`` may do. Weight and activity regularizers join the loss and its
gradient, and constraints are applied after each update
(:mod:`fastconv.regularizers`, :mod:`fastconv.constraints`).

Not supported: layers with several outputs (so nesting models with several
outputs), training models with several outputs, ``fit`` on
datasets/generators or with ``steps_per_epoch``.

Where things live (Keras' engine split)
---------------------------------------
``graph.py``           the functional graph: mapping it from the outputs back,
                       running it forward and backward, the tape
``model.py``           :class:`Model`: structure, weights, calls, summary, nesting
                       as a layer, subclassed models and their traces
``functional.py``      ``Model(inputs, outputs)``, a ``Functional``
``sequential.py``      :class:`Sequential`
``training.py``        compile / fit / evaluate / predict / ``*_on_batch``,
                       loss and metrics bookkeeping (a mixin of Model)
``training_utils.py``  the training loop's argument checks, batching, data
                       splitting, class weights, Ctrl-C guard
``saving.py``          the ``.npz`` weight files
``serialization.py``   architectures as configs: get_config/from_config, to_json,
                       model_from_json, clone_model (``config_dialects.py``: the
                       layer arguments of tf.keras 2.4's and Keras 3's configs)
``keras_saving.py``    ``model.save``/``load_model`` in Keras' ``.keras`` and ``.h5``
                       files, save_weights/load_weights in their HDF5 layouts
                       (``h5_format.py``: the layouts; ``compile_state.py``: loss,
                       metrics, optimizer config and state)
"""
from __future__ import annotations

from .model import Model
from .sequential import Sequential
from .serialization import clone_model, model_from_config, model_from_json


def save_model(model: Model, filepath, overwrite: bool = True, include_optimizer: bool = True,
               save_format=None) -> None:
    """``model.save(filepath, ...)`` (tf.keras 2.4's ``save_model``): ``.keras`` or ``.h5``."""
    model.save(filepath, overwrite=overwrite, include_optimizer=include_optimizer,
               save_format=save_format)


def load_model(filepath, custom_objects=None, compile: bool = True, safe_mode: bool = True):
    """A model saved by :meth:`Model.save` or by Keras (``.keras`` or ``.h5``);
    see :func:`fastconv.models.keras_saving.load_model`."""
    from .keras_saving import load_model as _load
    return _load(filepath, custom_objects, compile, safe_mode)


__all__ = ["Model", "Sequential", "load_model", "save_model", "model_from_json",
           "model_from_config", "clone_model"]
