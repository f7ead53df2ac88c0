"""The functional :class:`Model`: a :class:`~fastconv.models.graph.Graph` with weights.

This module holds what a model *is*: its structure (layers, inputs,
outputs, shapes), its weights, running it on arrays (``model(x)``,
:meth:`Model.forward`/:meth:`Model.backward`), its summary and the entry
points to its weight files. Training (``compile``/``fit``/``evaluate``/
``predict``) comes from :class:`~fastconv.models.training.TrainingMixin`;
the file format lives in :mod:`fastconv.models.saving`.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .. import backend
from .. import summary as summary_module
from .._memory import with_cached_allocations
from ..layers.base import ArrayOrList, InputSpec, Layer, Node, Variable, as_input_array, \
    assert_input_compatibility, set_weight_values
from ..layers.keras_tensor import KerasTensor, shape_tuple
from . import saving
from .graph import Graph, Tape, as_list
from .training import TrainingMixin

__all__ = ["Model"]


def _describe_shape(value: Any) -> str:
    try:
        return str(np.shape(value))
    except ValueError:  # ragged nested lists
        return f"<ragged {type(value).__name__}>"


class Model(TrainingMixin):
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

    def __init__(self, inputs: Any = None, outputs: Any = None, name: Optional[str] = None,
                 trainable: bool = True, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"Keyword argument not understood: {next(iter(kwargs))}")
        self._init_common(name, trainable)
        if inputs is None or outputs is None:
            raise TypeError("Model needs `inputs` and `outputs` (the functional API: "
                            "Model(inputs=Input(...), outputs=...)); subclassed models are "
                            "not supported by fastconv")
        self._init_graph(inputs, outputs)

    def _init_common(self, name: Optional[str], trainable: bool) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string, got {type(name).__name__}")
        # Keras names a functional model "model"; subclasses by their class name.
        base = "model" if type(self) is Model else backend.to_snake_case(type(self).__name__)
        self._name = name or backend.unique_object_name(base)
        self._trainable = bool(trainable)
        self._graph: Optional[Graph] = None
        self._inputs: List[KerasTensor] = []
        self._outputs: List[KerasTensor] = []
        self._inputs_as_list = False
        self._outputs_as_list = False
        # The last recording forward pass, consumed by backward().
        self._tape: Optional[Tape] = None
        self._init_training()

    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        inputs, inputs_as_list = as_list(inputs)
        outputs, outputs_as_list = as_list(outputs)
        self._graph = Graph(inputs, outputs, self.name)
        self._inputs, self._outputs = inputs, outputs
        self._inputs_as_list, self._outputs_as_list = inputs_as_list, outputs_as_list
        # What every call checks its data against.
        self._input_specs = [InputSpec(shape=shape_tuple(t.shape)) for t in inputs]
        self._input_dtypes = [t.dtype.as_numpy_dtype for t in inputs]
        self._tape = None
        if not self._trainable:
            self.trainable = False

    # ------------------------------------------------------------------
    # Structure

    @property
    def name(self) -> str:
        """The model's name."""
        return self._name

    @property
    def built(self) -> bool:
        """Whether the graph (and so every weight) exists."""
        return self._graph is not None

    @property
    def _nodes_by_depth(self) -> Dict[int, List[Node]]:
        return self._graph.nodes_by_depth if self._graph is not None else {}

    @property
    def layers(self) -> List[Layer]:
        """Layers in topological order, InputLayers included."""
        return list(self._graph.layers) if self._graph is not None else []

    @property
    def inputs(self) -> Optional[List[KerasTensor]]:
        """The input tensors (a list)."""
        return list(self._inputs) if self.built else None

    @property
    def outputs(self) -> Optional[List[KerasTensor]]:
        """The output tensors (a list)."""
        return list(self._outputs) if self.built else None

    @property
    def input_names(self) -> List[str]:
        """Names of the input layers."""
        return [t.node.layer.name for t in self._inputs]

    @property
    def output_names(self) -> List[str]:
        """Names of the output layers."""
        return [t.node.layer.name for t in self._outputs]

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

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """A layer by name or by index in :attr:`layers`."""
        if index is not None and name is not None:
            raise ValueError("Provide only a layer name or a layer index.")
        if index is not None:
            if len(self.layers) <= index:
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self.layers)} layers.")
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}.")
        raise ValueError("Provide either a layer name or layer index.")

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(summary_module.NOT_BUILT_MESSAGE)

    # ------------------------------------------------------------------
    # Weights

    @property
    def trainable(self) -> bool:
        """Setting it sets every layer's ``trainable``."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = value

    @staticmethod
    def _unique(variables: Sequence[Variable]) -> List[Variable]:
        seen = set()
        unique = []
        for v in variables:
            if id(v) not in seen:
                seen.add(id(v))
                unique.append(v)
        return unique

    @property
    def weights(self) -> List[Variable]:
        """All weights: layers in order, each layer's ``[kernel, bias]``."""
        return self._unique([v for layer in self.layers for v in layer.weights])

    @property
    def trainable_weights(self) -> List[Variable]:
        """The weights an optimizer updates; :meth:`backward` aligns with this."""
        if not self._trainable:
            return []
        return self._unique([v for layer in self.layers for v in layer.trainable_weights])

    @property
    def non_trainable_weights(self) -> List[Variable]:
        """Weights of frozen layers."""
        if not self._trainable:
            return self.weights
        return self._unique([v for layer in self.layers for v in layer.non_trainable_weights])

    def get_weights(self) -> List[np.ndarray]:
        """Copies of :attr:`weights` as arrays (Keras order and layouts)."""
        return [np.array(v.numpy(), copy=True) for v in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set :attr:`weights` from arrays in Keras order and layouts
        (HWIO conv kernels, ``(in, units)`` Dense kernels). Nothing changes
        unless every count and shape fits (Keras' messages otherwise)."""
        set_weight_values(self.name, self.weights, weights)

    def count_params(self) -> int:
        """Number of scalars in the unique weights."""
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on {self.name}, but the layer "
                             "isn't built. You can build it manually via: "
                             f"`{self.name}.build(batch_input_shape)`.")
        return int(sum(v.numpy().size for v in self.weights))

    def count_macs(self) -> Optional[int]:
        """Forward multiply-accumulates per sample (``None`` if a size is
        unknown); what is counted is documented in :mod:`fastconv.summary`."""
        self._require_built()
        total = 0
        for node in self._graph.execution:
            macs = node.layer.count_macs(node.input_shapes, node.output_shapes)
            if macs is None:
                return None
            total += macs
        return total

    # ------------------------------------------------------------------
    # Running

    def _prepare_inputs(self, x: Any, argname: Optional[str] = None) -> List[np.ndarray]:
        """One array per model input, in the input's dtype (no copy when it
        already has it), shapes checked. ``argname`` (e.g. ``'x'``) makes
        the errors name the argument the data came from."""
        if argname is None:
            return self._prepare_inputs_unnamed(x)
        if x is None:
            raise ValueError(f"`{argname}` is required: pass the input data as an array (a "
                             "list or dict of arrays for several inputs)")
        try:
            return self._prepare_inputs_unnamed(x)
        except (ValueError, TypeError) as exc:
            expected = ", ".join(str(shape_tuple(t.shape)) for t in self._inputs)
            got = ", ".join(_describe_shape(a) for a in (
                x if isinstance(x, (list, tuple)) and len(self._inputs) > 1 else
                x.values() if isinstance(x, dict) else [x]))
            raise type(exc)(f"`{argname}` (shape {got}) does not fit the input of model "
                            f"{self.name}, which expects shape {expected} (the first axis "
                            f"is the batch): {exc}") from exc

    def _prepare_inputs_unnamed(self, x: Any) -> List[np.ndarray]:
        items, _ = as_list(x) if len(self._inputs) > 1 else ([x], False)
        if len(self._inputs) == 1 and isinstance(x, (list, tuple)) and len(x) == 1 and \
                isinstance(x[0], (np.ndarray, KerasTensor)):
            items = [x[0]]
        if isinstance(x, dict):
            missing = [n for n in self.input_names if n not in x]
            if missing:
                raise ValueError(f"Missing data for inputs {missing}; got keys {sorted(x)}")
            items = [x[n] for n in self.input_names]
        if any(isinstance(item, KerasTensor) for item in items):
            raise NotImplementedError(
                f"Calling model {self.name} on symbolic tensors (nesting models) is not "
                "supported by fastconv; call its layers on the tensors instead")
        if len(items) != len(self._inputs):
            raise ValueError(f"Layer {self.name} expects {len(self._inputs)} input(s), but it "
                             f"received {len(items)} input tensors.")
        arrays = [as_input_array(item, dtype, f"model {self.name}")
                  for item, dtype in zip(items, self._input_dtypes)]
        assert_input_compatibility(self._input_specs, [a.shape for a in arrays], self.name)
        if len({a.shape[0] for a in arrays}) > 1:
            raise ValueError(f"Model {self.name}: inputs have different numbers of samples: "
                             f"{[a.shape[0] for a in arrays]}")
        return arrays

    def _pack_outputs(self, outputs: List[np.ndarray]) -> ArrayOrList:
        return outputs if self._outputs_as_list else outputs[0]

    @with_cached_allocations
    def __call__(self, inputs: Any, training: bool = False, **kwargs: Any) -> ArrayOrList:
        """Run the model on arrays (no tape); returns an ndarray or a list."""
        if kwargs:
            raise TypeError(f"Model {self.name}: unexpected call arguments {sorted(kwargs)}")
        self._build_for_data(inputs)
        outputs, _ = self._graph.run(self._prepare_inputs(inputs), bool(training), record=False)
        return self._pack_outputs(outputs)

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        # What a layer called on a model (or np.asarray(model)) meets.
        raise TypeError(f"Model {self.name} is not an array: call layers on tensors (or "
                        "arrays), and the model on arrays")

    def _build_for_data(self, inputs: Any) -> None:
        """Hook for Sequential's deferred build; a functional model is built."""

    def forward(self, x: Any, training: bool = True) -> ArrayOrList:
        """Run on arrays and keep each layer call's cache for :meth:`backward`.

        Parameters
        ----------
        x : array or list of arrays
        training : bool
            Passed to every layer (no fastconv layer changes behaviour yet).

        Returns
        -------
        ndarray or list of ndarray, as ``model(x)``.
        """
        self._build_for_data(x)
        outputs, self._tape = self._graph.run(self._prepare_inputs(x), bool(training),
                                              record=True)
        return self._pack_outputs(outputs)

    def backward(self, d_outputs: Any, *, pre_activation: bool = False,
                 input_gradients: bool = False) -> Any:
        """Gradients of the loss for the last :meth:`forward`.

        Parameters
        ----------
        d_outputs : ndarray or list of (ndarray or None)
            dL/d(output), shaped like the outputs of :meth:`forward`.
        pre_activation : bool
            ``d_outputs`` are gradients of the output layers' pre-activation
            (e.g. logits of a softmax output); skip the final activation.
        input_gradients : bool
            Also return dL/d(input) for every model input.

        Returns
        -------
        list of ndarray
            Aligned with :attr:`trainable_weights`; with ``input_gradients``,
            the tuple ``(weight_grads, input_grads)``.
        """
        if self._tape is None:
            raise RuntimeError(f"Model {self.name}: backward() needs a forward(x, training=True) "
                               "first (each backward consumes the tape of one forward)")
        tape = self._tape
        tensor_grads = self._graph.output_gradients(tape, d_outputs, pre_activation)
        # Consumed only now: a call rejected above can be retried with fixed gradients.
        self._tape = None
        return self._graph.backpropagate(tape, tensor_grads, self.trainable_weights,
                                         pre_activation, input_gradients)

    # ------------------------------------------------------------------
    # Summary

    def summary(self, line_length: Optional[int] = None,
                positions: Optional[Sequence[float]] = None,
                print_fn: Optional[Callable[[str], object]] = None, *,
                show_macs: bool = False) -> None:
        """Print TF 2.4's summary table (see :mod:`fastconv.summary`).

        Parameters
        ----------
        line_length : int, optional
            Default 65 (sequential-like) or 98 (branching graphs).
        positions : sequence of float, optional
            Column ends (fractions if the last is <= 1).
        print_fn : callable, optional
            Called once per line; default ``print``.
        show_macs : bool
            Add a column with each layer's multiply-accumulates per sample and
            a total line (fastconv's extension).
        """
        summary_module.print_summary(self, line_length, positions, print_fn, show_macs)

    def summary_string(self, line_length: Optional[int] = None,
                       positions: Optional[Sequence[float]] = None, *,
                       show_macs: bool = False) -> str:
        """The summary as one string, lines joined by ``\\n``."""
        return "\n".join(summary_module.summary_lines(self, line_length, positions, show_macs))

    # ------------------------------------------------------------------
    # Weight files (the format: fastconv.models.saving)

    def save_weights(self, filepath: Union[str, os.PathLike], overwrite: bool = True,
                     save_format: Optional[str] = None) -> None:
        """Write all weights to ``filepath`` as an ``.npz`` archive.

        The file is written to a temporary file in the same directory and
        moved into place with ``os.replace``, so readers never see a partial
        file. The archive records layer names, weight names and shapes, which
        :meth:`load_weights` checks. The path is used as given (no extension
        is added); the format is always npz.
        """
        self._require_built()
        saving.save_weights(filepath, self.name, self.layers, overwrite, save_format)

    def load_weights(self, filepath: Union[str, os.PathLike], by_name: bool = False,
                     skip_mismatch: bool = False) -> None:
        """Load weights written by :meth:`save_weights`.

        By default layers with weights are matched in order (Keras'
        topological loading); ``by_name=True`` matches layer names and skips
        layers absent from the file, and ``skip_mismatch=True`` (with
        ``by_name``) also skips layers whose weight count or shapes differ.
        The whole file is read and checked before any weight is assigned: on
        any error (missing/corrupt file, wrong structure, shape mismatch) a
        ``ValueError`` (``FileNotFoundError`` for a missing file) is raised
        and the model's weights are untouched.
        """
        self._require_built()
        saving.load_weights(filepath, self.layers, by_name, skip_mismatch)

    def __repr__(self) -> str:
        return f"<fastconv.models.{type(self).__name__} name={self.name!r}>"
