"""``Sequential``: a linear stack of layers, a :class:`~fastconv.models.functional.Functional`.

Keras semantics: layers added with ``input_shape=`` on the first one (or a
built model as the first layer) build the model at once; otherwise it is
built on :meth:`Sequential.build`, the first call on data or on a
KerasTensor, ``fit`` or ``predict``. Each build records the layer calls on
an ``Input`` and hands the result to the functional graph, so running,
training and saving are the functional model's. A model is a layer, so it
may be one of the stack (``Sequential([base_model, Dense(10)])``).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from ..layers.base import Layer
from ..layers.input_layer import Input, InputLayer
from ..layers.keras_tensor import KerasTensor, shape_tuple
from .functional import Functional

__all__ = ["Sequential"]


class Sequential(Functional):
    """A linear stack of layers, as ``tf.keras.Sequential``.

    Parameters
    ----------
    layers : list of Layer, optional
        Added in order with :meth:`add`. The first may carry
        ``input_shape=``, which builds the model at once (its input is named
        ``<first layer>_input``); otherwise the model is built by
        :meth:`build`, by the first call on data, or by :meth:`predict`.
    name : str, optional
        Default ``sequential``, ``sequential_1``, ...

    :attr:`layers` excludes the InputLayer, as in Keras.
    """

    def __init__(self, layers: Optional[Sequence[Any]] = None, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"Keyword argument not understood: {next(iter(kwargs))}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string, got {type(name).__name__}")
        self._init_model(name, True)
        self._stack: List[Layer] = []
        self._input_tensor: Optional[KerasTensor] = None
        self._stack_outputs: List[KerasTensor] = []
        # True when the user gave the Input (it survives popping every layer).
        self._explicit_input = False
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> List[Layer]:
        """The added layers, without the InputLayer."""
        return list(self._stack)

    def add(self, layer: Any) -> None:
        """Append a layer (or start with an ``Input`` tensor / ``InputLayer``).

        When the model already has an input, the layer is called at once, so
        shape errors surface here and the layer is not added.
        """
        if isinstance(layer, KerasTensor):
            if not layer.node.is_input:
                raise TypeError("Sequential.add accepts Input() tensors, not intermediate "
                                "symbolic tensors")
            layer = layer.node.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"The added layer must be an instance of class Layer. Found: {layer}")
        if isinstance(layer, InputLayer):
            if self._stack or self._input_tensor is not None:
                raise ValueError("An InputLayer can only be the first layer of a Sequential "
                                 "model")
            self._input_tensor = layer._inbound_nodes[0].output
            self._explicit_input = True
            self._tape = None
            return
        if any(existing.name == layer.name for existing in self._stack):
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name \"{layer.name}\" is already the name of a layer in this "
                             "model. Update the `name` argument to pass a unique name.")
        created_input = False
        if self._input_tensor is None and not self._stack and \
                layer._batch_input_shape is not None:
            self._input_tensor = Input(batch_shape=layer._batch_input_shape, dtype=layer.dtype,
                                       name=f"{layer.name}_input")
            created_input = True
        if self._input_tensor is not None:
            previous = self._stack_outputs[-1] if self._stack_outputs else self._input_tensor
            try:
                output = layer(previous)
            except Exception:
                if created_input:
                    self._input_tensor = None
                raise
            self._stack.append(layer)
            self._stack_outputs.append(output)
            self._init_graph(self._input_tensor, output)
        else:
            self._stack.append(layer)

    def pop(self) -> None:
        """Remove the last layer."""
        if not self._stack:
            raise TypeError("There are no layers in the model.")
        self._stack.pop()
        self._tape = None
        if self._stack_outputs:
            self._stack_outputs.pop()
        if not self._stack:
            if not self._explicit_input:
                self._input_tensor = None
            self._set_graph(None)
            self._stack_outputs = []
        elif self._stack_outputs:
            self._init_graph(self._input_tensor, self._stack_outputs[-1])

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build for ``input_shape`` (including the batch dim, e.g. ``(None, 28, 28, 1)``)."""
        if self.built:
            return
        if input_shape is None:
            if self._input_tensor is None:
                raise ValueError("You must provide an `input_shape` argument.")
            input_shape = shape_tuple(self._input_tensor.shape)
        self._build_for_shapes([tuple(input_shape)], False)

    def _build_for_shapes(self, shapes: Any, as_list: bool) -> None:
        if not self._stack:
            raise ValueError(f"Sequential model {self.name} has no layers to build")
        if len(shapes) != 1:
            raise ValueError(f"Sequential model {self.name} takes one input, got {len(shapes)}")
        self._build_graph(tuple(shapes[0]))

    def _build_graph(self, batch_shape: Tuple[Optional[int], ...]) -> None:
        first = self._stack[0]
        keep_input = self._input_tensor is not None
        input_tensor = self._input_tensor if keep_input else Input(
            batch_shape=batch_shape, dtype=first.dtype, name=f"{first.name}_input")
        outputs = []
        tensor = input_tensor
        for layer in self._stack:
            tensor = layer(tensor)
            outputs.append(tensor)
        self._input_tensor = input_tensor
        self._stack_outputs = outputs
        self._init_graph(input_tensor, tensor)
