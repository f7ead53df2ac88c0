"""The functional model: ``Model(inputs, outputs)`` is a :class:`Functional`.

As in tf.keras 2.4, ``Model.__new__`` returns this class when given inputs
and outputs (so ``isinstance(m, Model)`` holds and a summary row of a nested
model reads ``model (Functional)``), and its automatic name is ``model``,
``model_1``... It owns one :class:`~fastconv.models.graph.Graph`, from its
inputs to its outputs; everything else (weights, running, training,
summary, nesting as a layer) is :class:`~fastconv.models.model.Model`'s.

A model built from another model's tensors (``Model(base.input,
base.get_layer('conv2d').output)``, feature extraction) is a new graph over
the same layer calls: it shares those layers and their weights.
"""
from __future__ import annotations

from typing import Any, Optional

from .. import backend
from ..layers.keras_tensor import shape_tuple
from .graph import Graph, as_list
from .model import Model

__all__ = ["Functional"]


class Functional(Model):
    """A functional model: the graph from ``inputs`` to ``outputs``.

    Parameters
    ----------
    inputs : KerasTensor or list of KerasTensor
        Tensors returned by :func:`fastconv.layers.Input`.
    outputs : KerasTensor or list of KerasTensor
        Tensors computed from ``inputs`` by layer calls.
    name : str, optional
        Default ``model``, ``model_1``, ...
    trainable : bool

    See :mod:`fastconv.models` for the training interface
    (:meth:`forward`, :meth:`backward`, :attr:`trainable_weights`).
    """

    _is_graph_network = True

    def __init__(self, inputs: Any = None, outputs: Any = None, name: Optional[str] = None,
                 trainable: bool = True, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"Keyword argument not understood: {next(iter(kwargs))}")
        if inputs is None or outputs is None:
            raise TypeError("Model(inputs, outputs) needs both `inputs` and `outputs`")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string, got {type(name).__name__}")
        # Keras hides the class name: a functional model is "model", "model_1"...
        self._init_model(name or backend.unique_object_name("model"), trainable)
        self._init_graph(inputs, outputs)

    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        inputs, inputs_as_list = as_list(inputs)
        outputs, outputs_as_list = as_list(outputs)
        self._set_graph(Graph(inputs, outputs, self.name), inputs_as_list, outputs_as_list)
        if not self._trainable:
            self.trainable = False

    def _build_for_shapes(self, shapes: Any, as_list: bool) -> None:
        """Nothing to do: a functional model is built when it is made."""

    def build(self, input_shape: Any = None) -> None:
        """Nothing to do: a functional model is built when it is made."""

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        """The model on ``inputs`` (arrays or KerasTensors), as ``model(inputs)``."""
        return self(inputs, training=training)

    @property
    def layers(self):
        """Layers in topological order, InputLayers included."""
        return list(self._graph.layers) if self._graph is not None else []

    # TF 2.4's Functional answers these from its own inputs and outputs,
    # whatever the calls of the model as a layer.

    @property
    def input(self) -> Any:
        """The input tensor (a list of them for several inputs)."""
        if not self.built:
            raise AttributeError(f"Model {self.name} is not built yet: it has no input")
        return list(self._inputs) if self._inputs_as_list and len(self._inputs) > 1 \
            else self._inputs[0]

    @property
    def output(self) -> Any:
        """The output tensor (a list of them for several outputs)."""
        if not self.built:
            raise AttributeError(f"Model {self.name} is not built yet: it has no output")
        return list(self._outputs) if self._outputs_as_list and len(self._outputs) > 1 \
            else self._outputs[0]

    @property
    def input_shape(self) -> Any:
        """Input shape tuple (a list of them for several inputs)."""
        self._require_built()
        shapes = [shape_tuple(t.shape) for t in self._inputs]
        return shapes if self._inputs_as_list and len(shapes) > 1 else shapes[0]

    @property
    def output_shape(self) -> Any:
        """Output shape tuple (a list of them for several outputs)."""
        self._require_built()
        shapes = [shape_tuple(t.shape) for t in self._outputs]
        return shapes if self._outputs_as_list and len(shapes) > 1 else shapes[0]
