"""The layer machinery: :class:`Layer`, :class:`Variable`, :class:`InputSpec`, :class:`Node`.

A layer works in two modes through one ``__call__``:

* on :class:`~fastconv.layers.keras_tensor.KerasTensor` inputs it checks the
  input against its :class:`InputSpec`, infers the output shape, builds its
  weights and records a :class:`Node` (Keras' functional graph);
* on arrays it builds itself if needed and computes the output.

Training contract (what :class:`fastconv.models.Model` drives)::

    outputs, cache = layer.forward(inputs, training)
    d_inputs, weight_grads = layer.backward(d_outputs, cache, compute_dx=...)

``forward`` returns its cache instead of keeping it, so a layer shared by
several calls in one graph keeps one cache per call. ``weight_grads`` is
aligned with ``layer.weights`` (``[kernel, bias]``). ``d_inputs`` is an array
(a list for merge layers) or ``None`` when ``compute_dx=False`` (a first layer
needs no input gradient).

Regularization is the engine's business, not the layer's: a weight made with
``add_weight(regularizer=..., constraint=...)`` carries both
(``variable.regularizer``, ``variable.constraint``), a layer's
``activity_regularizer`` attribute (``None`` by default, settable on any
layer as in Keras) is applied by the model to each call's output, and the
layer's ``backward`` never sees either (see :mod:`fastconv.models.graph`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import backend
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from .keras_tensor import KerasHistory, KerasTensor, TensorShape, as_dtype, shape_tuple

__all__ = ["Layer", "Variable", "InputSpec", "Node", "regularization_penalties"]

Shape = Tuple[Optional[int], ...]
ArrayOrList = Union[np.ndarray, List[np.ndarray]]


class EagerArray(np.ndarray):
    """What a layer or a model called on arrays returns: a NumPy array that
    also has the ``numpy()`` of TF's eager tensors, so scripts that write
    ``model(x).numpy()`` run unchanged. It is an ordinary ndarray in every
    other respect (``predict`` returns plain ndarrays)."""

    def numpy(self) -> np.ndarray:
        """The values as a plain ndarray (a view, no copy)."""
        return self.view(np.ndarray)


def eager_result(value: Any) -> Any:
    """``value`` (an array, or a list of arrays) viewed as :class:`EagerArray`."""
    if isinstance(value, np.ndarray):
        return value.view(EagerArray)
    if isinstance(value, list):
        return [eager_result(v) for v in value]
    return value


class Variable:
    """A named weight array that optimizers update in place.

    ``numpy()`` returns the live array (not a copy) so that in-place updates
    such as ``var.numpy()[...] -= lr * grad`` or :meth:`assign_sub` are seen by
    the layer at once; :meth:`assign` copies new values in, keeping shape and
    dtype.

    ``_version`` counts the times the live array was handed out (``value``,
    ``numpy()``, ``np.asarray``) or written (``assign*``): a copy derived from
    the values (the inference plans' folded BatchNormalization,
    :mod:`fastconv.models.inference`) is current while the version is the one
    it was made at. Writes through an array taken *before* that copy was made
    are not seen by it: take the array again (or ``assign``) to change weights.
    """

    _version = 0   # (instances pickled before it existed start at 0)
    # every version change of every variable: a plan that saw this count
    # knows no weight changed since (one check a call, not one per weight)
    _changes = 0

    def __init__(self, value: np.ndarray, name: str, trainable: bool = True) -> None:
        self._value = np.array(value, copy=True, order="C")
        self.name = name
        self._trainable = trainable
        self.regularizer: Any = None   # set by Layer.add_weight
        self.constraint: Any = None

    @property
    def value(self) -> np.ndarray:
        """The live array."""
        self._version += 1
        Variable._changes += 1
        return self._value

    @property
    def shape(self) -> TensorShape:
        """The weight's shape."""
        return TensorShape(self._value.shape)

    @property
    def dtype(self):
        """The weight's dtype (prints as ``tf.float32``)."""
        return as_dtype(self._value.dtype)

    @property
    def trainable(self) -> bool:
        """Whether optimizers should update this weight."""
        return self._trainable

    def numpy(self) -> np.ndarray:
        """The live array."""
        self._version += 1
        Variable._changes += 1
        return self._value

    def assign(self, value: Any) -> "Variable":
        """Copy ``value`` in (cast to this dtype; the shape must match).

        The cast happens before the copy, so a value that does not cast (an
        object array holding a string, say) leaves the variable unchanged.
        """
        value = np.asarray(value)
        if value.shape != self._value.shape:
            raise ValueError(f"Cannot assign a value of shape {value.shape} to variable "
                             f"{self.name} of shape {self._value.shape}")
        value = value.astype(self._value.dtype, copy=False)
        np.copyto(self._value, value)
        self._version += 1
        Variable._changes += 1
        return self

    def assign_add(self, delta: Any) -> "Variable":
        """``value += delta`` in place."""
        self._value += np.asarray(delta, dtype=self._value.dtype)
        self._version += 1
        Variable._changes += 1
        return self

    def assign_sub(self, delta: Any) -> "Variable":
        """``value -= delta`` in place."""
        self._value -= np.asarray(delta, dtype=self._value.dtype)
        self._version += 1
        Variable._changes += 1
        return self

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if dtype is None or np.dtype(dtype) == self._value.dtype:
            if copy:
                return self._value.copy()
            self._version += 1
            Variable._changes += 1
            return self._value
        return self._value.astype(dtype)

    def __repr__(self) -> str:
        return (f"<fastconv.Variable '{self.name}' shape={self.shape} "
                f"dtype={self._value.dtype.name}>")


class InputSpec:
    """What a layer accepts: rank (``ndim``/``min_ndim``/``max_ndim``) and
    pinned axis sizes (``axes={-1: channels}`` once built)."""

    def __init__(self, ndim: Optional[int] = None, min_ndim: Optional[int] = None,
                 max_ndim: Optional[int] = None, axes: Optional[Dict[int, int]] = None,
                 shape: Optional[Shape] = None) -> None:
        self.ndim = len(shape) if shape is not None else ndim
        self.min_ndim = min_ndim
        self.max_ndim = max_ndim
        self.axes = dict(axes or {})
        self.shape = None if shape is None else tuple(shape)

    def __repr__(self) -> str:
        fields = [f"{k}={v}" for k, v in (("ndim", self.ndim), ("min_ndim", self.min_ndim),
                                          ("max_ndim", self.max_ndim), ("axes", self.axes),
                                          ("shape", self.shape)) if v]
        return f"InputSpec({', '.join(fields)})"


def as_input_array(value: Any, dtype: Any, owner: str, name: str = "x") -> np.ndarray:
    """``value`` as an array of ``dtype`` (None: its own); only numbers are converted.

    Booleans, integers and floats are cast; strings, bytes, objects,
    datetimes and complex numbers are refused (NumPy would parse, count
    epochs or drop the imaginary part without a word).
    """
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` passed to {owner} must hold real numbers (bool, int or "
                        f"float), got an array of dtype {arr.dtype}")
    return np.asarray(arr, dtype=dtype)


def assert_input_compatibility(specs: Optional[Sequence[Optional[InputSpec]]],
                               shapes: Sequence[Shape], layer_name: str) -> None:
    """Raise Keras 2.4's ``ValueError`` when an input breaks its spec.

    The messages are TF 2.4's, including its doubled ``: :`` before
    ``expected min_ndim``.
    """
    if not specs:
        return
    if len(shapes) != len(specs):
        raise ValueError(f"Layer {layer_name} expects {len(specs)} input(s), but it received "
                         f"{len(shapes)} input tensors. Inputs received: {list(shapes)}")
    for index, (spec, shape) in enumerate(zip(specs, shapes)):
        if spec is None:
            continue
        prefix = f"Input {index} of layer {layer_name} is incompatible with the layer: "
        ndim = len(shape)
        if spec.ndim is not None and ndim != spec.ndim:
            raise ValueError(f"{prefix}expected ndim={spec.ndim}, found ndim={ndim}. "
                             f"Full shape received: {tuple(shape)}")
        if spec.max_ndim is not None and ndim > spec.max_ndim:
            raise ValueError(f"{prefix}expected max_ndim={spec.max_ndim}, found ndim={ndim}")
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ValueError(f"{prefix}: expected min_ndim={spec.min_ndim}, found ndim={ndim}. "
                             f"Full shape received: {tuple(shape)}")
        for axis, value in spec.axes.items():
            actual = shape[axis] if -ndim <= axis < ndim else None
            if value is not None and actual is not None and actual != value:
                raise ValueError(f"{prefix}expected axis {axis} of input shape to have value "
                                 f"{value} but received input with shape {tuple(shape)}")
        if spec.shape is not None:
            for expected, actual in zip(spec.shape, shape):
                if expected is not None and actual is not None and expected != actual:
                    raise ValueError(f"Input {index} is incompatible with layer {layer_name}: "
                                     f"expected shape={spec.shape}, found shape={tuple(shape)}")


class Node:
    """One call of a layer on symbolic inputs: ``output = layer(inbound)``.

    Attributes
    ----------
    layer : Layer
    inbound : list of KerasTensor
        Empty for the node of an :class:`~fastconv.layers.InputLayer`.
    output : KerasTensor
    index : int
        Position in ``layer._inbound_nodes``.
    training : bool or None
        The ``training=`` given to this call (``layer(x, training=False)``):
        it overrides the mode the model runs in, as in Keras (a frozen base
        model kept in inference mode while the head trains). ``None``
        follows the model.
    """

    def __init__(self, layer: "Layer", inbound: List[KerasTensor],
                 training: Optional[bool] = None) -> None:
        self.layer = layer
        self.inbound = list(inbound)
        self.index = len(layer._inbound_nodes)
        self.output: Optional[KerasTensor] = None
        self.training = None if training is None else bool(training)
        layer._inbound_nodes.append(self)

    @property
    def is_input(self) -> bool:
        """True for the node an InputLayer creates (no inbound tensors)."""
        return not self.inbound

    @property
    def parent_nodes(self) -> List["Node"]:
        """Nodes that produced this node's inputs."""
        return [t.node for t in self.inbound]

    def iterate_inbound(self):
        """``(layer, node_index, tensor_index, tensor)`` for each inbound tensor."""
        for tensor in self.inbound:
            layer, node_index, tensor_index = tensor._keras_history
            yield layer, node_index, tensor_index, tensor

    @property
    def input_shapes(self) -> Union[Shape, List[Shape]]:
        """One shape tuple, or a list of them for several inputs."""
        shapes = [shape_tuple(t.shape) for t in self.inbound]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shapes(self) -> Union[Shape, List[Shape]]:
        """The output shape; a one-element list for an input node (as Keras,
        which is why summaries print ``[(None, 28, 28, 1)]``)."""
        shape = shape_tuple(self.output.shape)
        return [shape] if self.is_input else shape

    def __repr__(self) -> str:
        return f"<Node {self.layer.name}[{self.index}]>"


_BASE_KWARGS = ("input_shape", "batch_input_shape", "batch_size", "weights", "dynamic",
                "activity_regularizer")


class Layer:
    """Base class of fastconv layers (Keras 2 ``tf.keras.layers.Layer`` semantics).

    Parameters
    ----------
    trainable : bool
        Whether the weights are trainable.
    name : str, optional
        Default: the snake-case class name made unique in the process
        (``conv2d``, ``conv2d_1``, ...; see :mod:`fastconv.backend`).
    dtype : str or numpy dtype, optional
        Weight and compute dtype, ``'float32'`` by default. ``'float64'``
        works on the NumPy backend (gradient checks); the C backend is
        float32 only.
    input_shape, batch_size, batch_input_shape
        On the first layer of a :class:`~fastconv.models.Sequential`, create
        its input (``input_shape`` excludes the batch dimension).
    activity_regularizer : optional
        A :mod:`fastconv.regularizers` identifier: ``regularizer(output) /
        batch_size`` is added to the training loss for each call.

    Subclasses implement :meth:`build`, :meth:`compute_output_shape`,
    :meth:`forward` and :meth:`backward` (see the module docstring).
    """

    # Layers taking a list of inputs (merge layers) set this.
    _takes_list = False
    # False: array inputs keep their dtype instead of being cast to the layer's
    # (Keras' ``autocast``; Embedding takes integer indices, which float32 rounds).
    _autocast = True
    # The kinds of dtype a layer may compute in (an InputLayer also holds integers).
    _dtype_kinds = "f"
    # Keras lets any layer have one (a settable attribute); layers whose
    # constructor takes the argument set it with regularizers.get.
    activity_regularizer: Any = None

    def __init__(self, trainable: bool = True, name: Optional[str] = None,
                 dtype: Any = None, **kwargs: Any) -> None:
        for key in kwargs:
            if key not in _BASE_KWARGS:
                raise TypeError(f"Keyword argument not understood: {key}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string, got {type(name).__name__} {name!r}")
        self._name = name or backend.unique_object_name(
            backend.to_snake_case(type(self).__name__))
        compute_dtype = np.dtype(backend.floatx() if dtype is None else dtype)
        if compute_dtype.kind not in self._dtype_kinds:
            kinds = "a floating-point" if self._dtype_kinds == "f" else "a numeric"
            raise TypeError(f"Layer {self._name}: `dtype` must be {kinds} type, "
                            f"got {compute_dtype}")
        self._dtype = compute_dtype
        self._trainable = bool(trainable)
        self.built = False
        self.input_spec: Union[None, InputSpec, List[InputSpec]] = None
        self._variables: List[Variable] = []
        self._inbound_nodes: List[Node] = []
        self._batch_input_shape: Optional[Shape] = None
        if kwargs.get("batch_input_shape") is not None:
            self._batch_input_shape = tuple(kwargs["batch_input_shape"])
        elif kwargs.get("input_shape") is not None:
            input_shape = kwargs["input_shape"]
            if isinstance(input_shape, (int, np.integer)):
                input_shape = (input_shape,)
            self._batch_input_shape = (kwargs.get("batch_size"),) + tuple(input_shape)
        self._initial_weights = kwargs.get("weights")
        if kwargs.get("activity_regularizer") is not None:
            self.activity_regularizer = regularizers_module.get(kwargs["activity_regularizer"])
        # The activity penalty of the last call on arrays (Keras' eager losses).
        self._activity_losses: List[float] = []

    # ------------------------------------------------------------------
    # Identity and weights

    @property
    def name(self) -> str:
        """The layer's name."""
        return self._name

    @property
    def dtype(self) -> str:
        """The weight/compute dtype name, e.g. ``'float32'``."""
        return self._dtype.name

    @property
    def trainable(self) -> bool:
        """Whether the weights appear in :attr:`trainable_weights`."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)

    def add_weight(self, name: str, shape: Sequence[int], initializer: Any = "glorot_uniform",
                   dtype: Any = None, trainable: bool = True, regularizer: Any = None,
                   constraint: Any = None) -> Variable:
        """Create a weight from an initializer and track it (call from :meth:`build`).

        ``regularizer`` and ``constraint`` (objects of :mod:`fastconv.regularizers`
        / :mod:`fastconv.constraints`, or None) travel with the variable
        (``variable.regularizer``, ``variable.constraint``) for training to use.
        """
        init = initializers_module.get(initializer)
        dtype = self._dtype if dtype is None else np.dtype(dtype)
        value = np.asarray(init(tuple(int(d) for d in shape), dtype=dtype), dtype=dtype)
        if value.shape != tuple(shape):
            raise ValueError(f"Layer {self.name}: initializer {init!r} returned shape "
                             f"{value.shape} for weight '{name}' of shape {tuple(shape)}")
        variable = Variable(value, f"{self.name}/{name}:0", trainable)
        variable.regularizer = regularizer
        variable.constraint = constraint
        self._variables.append(variable)
        return variable

    @property
    def weights(self) -> List[Variable]:
        """All weights, trainable first (``[kernel, bias]`` for Conv2D/Dense)."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self) -> List[Variable]:
        """Weights an optimizer updates (none when ``trainable=False``)."""
        if not self._trainable:
            return []
        return [v for v in self._variables if v.trainable]

    @property
    def non_trainable_weights(self) -> List[Variable]:
        """Weights an optimizer leaves alone."""
        if not self._trainable:
            return list(self._variables)
        return [v for v in self._variables if not v.trainable]

    # TF's names of the same lists (custom training loops use them)
    @property
    def trainable_variables(self) -> List[Variable]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> List[Variable]:
        return self.non_trainable_weights

    @property
    def variables(self) -> List[Variable]:
        return self.weights

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the weights as NumPy arrays, in :attr:`weights` order."""
        return [np.array(v.numpy(), copy=True) for v in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set all weights from arrays in :attr:`weights` order and layouts.

        Every count and shape is checked before any weight changes.
        """
        set_weight_values(self.name, self.weights, weights)

    @property
    def losses(self) -> List[float]:
        """Keras' ``layer.losses``: the activity penalty of the last call on
        arrays, then the regularization penalty of each weight (evaluated now)."""
        return list(self._activity_losses) + regularization_penalties(self._variables)

    def count_params(self) -> int:
        """Number of scalars in the weights (the layer must be built)."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on {self.name}, but the layer isn't built. "
                f"You can build it manually via: `{self.name}.build(batch_input_shape)`.")
        return int(sum(int(np.prod(v.numpy().shape)) for v in self.weights))

    # ------------------------------------------------------------------
    # What subclasses implement

    def build(self, input_shape: Any) -> None:
        """Create the weights for ``input_shape`` (with batch dim)."""
        self.built = True

    def _random_generators(self) -> List[np.random.Generator]:
        """Generators of this layer's own (a seeded Dropout's), beyond
        ``backend.global_rng()``: what a training backup must save to
        resume bitwise."""
        return []

    def compute_output_shape(self, input_shape: Any) -> Shape:
        """Output shape (with batch dim) for ``input_shape``; raise
        ``ValueError`` naming the layer when the input cannot be processed."""
        raise NotImplementedError(f"{type(self).__name__} does not implement "
                                  "compute_output_shape")

    def forward(self, inputs: ArrayOrList, training: bool = False) -> Tuple[np.ndarray, Any]:
        """``(outputs, cache)`` for array inputs; ``cache`` feeds :meth:`backward`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, d_outputs: np.ndarray, cache: Any, compute_dx: bool = True
                 ) -> Tuple[Optional[ArrayOrList], List[np.ndarray]]:
        """``(d_inputs, weight_grads)`` for ``d_outputs = dL/d(outputs)``.

        ``weight_grads`` is aligned with :attr:`weights`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def input_gradient_error(self) -> Optional[str]:
        """Why :meth:`backward` cannot send gradients to the inputs; None when it can.

        Training refuses a model where such a layer lies between a trainable
        weight and the output (a ``Lambda`` over a function fastconv cannot
        differentiate).
        """
        return None

    def call(self, inputs: ArrayOrList, training: Optional[bool] = None) -> np.ndarray:
        """The forward computation on arrays, without keeping a cache."""
        return self.forward(inputs, bool(training))[0]

    # How a model's graph runs one call of this layer. A model nested as a
    # layer overrides both to run its own graph; other layers keep these.

    def _forward_node(self, inputs: ArrayOrList, training: bool, record: bool,
                      losses: Optional[List[float]]) -> Tuple[Any, Any]:
        """``(outputs, cache)``; ``record``: the cache will be kept for a
        backward pass; ``losses``: where a nested graph adds its activity penalties.
        ``training`` None (a model called without it) means inference here;
        layers whose Keras ``call`` defaults otherwise override this."""
        return self.forward(inputs, bool(training))

    def _backward_node(self, d_outputs: Any, cache: Any, compute_dx: bool,
                       regularization: bool) -> Tuple[Any, List[Tuple[Variable, np.ndarray]]]:
        """``(d_inputs, [(variable, gradient), ...])`` for one recorded call;
        ``regularization``: include the gradients of activity penalties
        inside a nested graph."""
        d_inputs, grads = self.backward(d_outputs, cache, compute_dx)
        return d_inputs, list(zip(self._variables, grads))

    def count_macs(self, input_shape: Any, output_shape: Shape) -> Optional[int]:
        """Multiply-accumulates of one call for one sample (0 for layers that
        multiply nothing; ``None`` if a needed dim is unknown)."""
        return 0

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        """TensorFlow op type that names this layer's output (``'Relu'``...)."""
        return None

    def get_config(self) -> Dict[str, Any]:
        """Keras-style configuration dict."""
        config: Dict[str, Any] = {"name": self.name, "trainable": self.trainable,
                                  "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = self._batch_input_shape
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Layer":
        """A new layer from :meth:`get_config`'s dict (Keras: ``cls(**config)``)."""
        return cls(**config)

    # ------------------------------------------------------------------
    # Calling

    def _specs(self) -> Optional[List[Optional[InputSpec]]]:
        if self.input_spec is None:
            return None
        return list(self.input_spec) if isinstance(self.input_spec, list) else [self.input_spec]

    def _check_and_build(self, shapes: List[Shape]) -> Shape:
        """Spec check, shape inference and (first time) build; returns the output shape."""
        assert_input_compatibility(self._specs(), shapes, self.name)
        shape_arg: Any = shapes if self._takes_list else shapes[0]
        # Infer the output shape before building, so a rejected input leaves
        # the layer unbuilt and reusable.
        output_shape = self.compute_output_shape(shape_arg)
        if not self.built:
            self.build(shape_arg)
            self.built = True
            if self._initial_weights is not None:
                self.set_weights(self._initial_weights)
                self._initial_weights = None
            # build() may pin axes (e.g. the channel count).
            assert_input_compatibility(self._specs(), shapes, self.name)
        return shape_tuple(output_shape)

    def __call__(self, inputs: Any, training: Optional[bool] = None, **kwargs: Any) -> Any:
        """Call on symbolic tensors (records a graph node) or on arrays (computes)."""
        if kwargs:
            raise TypeError(f"Layer {self.name}: unexpected call arguments {sorted(kwargs)}")
        as_list = isinstance(inputs, (list, tuple))
        items = list(inputs) if as_list else [inputs]
        if not items:
            raise ValueError(f"Layer {self.name} was called with an empty list of inputs")
        symbolic = [isinstance(t, KerasTensor) for t in items]
        if self._takes_list and not as_list:
            raise ValueError(f"A merge layer should be called on a list of inputs. "
                             f"Layer {self.name} received: {inputs}")
        if not self._takes_list and len(items) != 1:
            raise ValueError(f"Layer {self.name} expects 1 input(s), but it received "
                             f"{len(items)} input tensors.")
        if all(symbolic):
            return self._call_symbolic(items, training)
        if any(symbolic):
            raise TypeError(f"Layer {self.name}: inputs mix symbolic KerasTensors and arrays")
        dtype = self._dtype if self._autocast else None
        arrays = [as_input_array(x, dtype, f"layer {self.name}", "inputs") for x in items]
        self._check_and_build([a.shape for a in arrays])
        outputs = self.call(arrays if self._takes_list else arrays[0], training)
        self._activity_losses = [] if self.activity_regularizer is None else [
            activity_penalty(self.activity_regularizer, outputs)]
        return eager_result(outputs)

    def _call_symbolic(self, tensors: List[KerasTensor],
                       training: Optional[bool] = None) -> KerasTensor:
        output_shape = self._check_and_build([shape_tuple(t.shape) for t in tensors])
        node = Node(self, tensors, training)
        op = self._output_op_name(node.input_shapes)
        # TF names a layer output after its last op; an op-less layer (linear
        # Activation) returns the scratch graph's placeholder, hence the quirk.
        name = f"{self.name}/{op}:0" if op else "Placeholder:0"
        node.output = KerasTensor(output_shape, self._dtype, name,
                                  KerasHistory(self, node.index, 0))
        return node.output

    # ------------------------------------------------------------------
    # Graph introspection (Keras' layer.input / output / *_shape)

    @property
    def input(self) -> Any:
        """The symbolic input of the layer's first call (TF 2.4 reads node 0,
        whatever the later calls)."""
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name} is not connected, no input to return.")
        node = self._inbound_nodes[0]
        if node.is_input:
            return node.output
        return list(node.inbound) if self._takes_list else node.inbound[0]

    @property
    def output(self) -> KerasTensor:
        """The symbolic output of the layer's first call (node 0, as TF 2.4)."""
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name} has no inbound nodes.")
        return self._inbound_nodes[0].output

    def _shape_over_nodes(self, attribute: str, what: str) -> Any:
        if not self._inbound_nodes:
            raise AttributeError(f"The layer has never been called and thus has no defined "
                                 f"{what}.")
        shapes = [getattr(node, attribute) for node in self._inbound_nodes]
        if any(s != shapes[0] for s in shapes[1:]):
            raise AttributeError(
                f"The layer \"{self.name}\" has multiple inbound nodes, with different "
                f"{what}s. Hence the notion of \"{what}\" is ill-defined for the layer. "
                f"Use `get_{what.replace(' ', '_')}_at(node_index)` instead.")
        return shapes[0]

    @property
    def input_shape(self) -> Any:
        """Input shape of the layer's calls (if they all agree)."""
        return self._shape_over_nodes("input_shapes", "input shape")

    @property
    def output_shape(self) -> Any:
        """Output shape of the layer's calls (if they all agree); a list of one
        shape for an InputLayer, as in Keras."""
        return self._shape_over_nodes("output_shapes", "output shape")

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} name={self.name!r}>"


def regularization_penalties(variables: Sequence[Variable]) -> List[float]:
    """``regularizer(weight)`` for each variable that has a regularizer."""
    return [float(v.regularizer(v.numpy())) for v in variables if v.regularizer is not None]


def activity_penalty(regularizer: Any, output: np.ndarray) -> float:
    """Keras' activity penalty of one call: ``regularizer(output) / batch_size``
    (so its weight against the weight penalties does not depend on the batch size)."""
    return float(regularizer(output)) / max(output.shape[0], 1)


def set_weight_values(owner_name: str, variables: Sequence[Variable],
                      weights: Sequence[Any]) -> None:
    """Validate every array against ``variables`` and cast it to the
    variable's dtype first, then assign them all, or none.

    The assignment runs with Ctrl-C held back (``defer_keyboard_interrupt``)
    and keeps a copy of each old value: an exception raised while assigning,
    or a SIGINT that arrives meanwhile, puts every old value back before the
    exception (or the KeyboardInterrupt) goes on. The copies cost as much
    memory as the weights for the duration of the call.

    Messages are Keras 2.4's ``set_weights`` errors.
    """
    from .._signals import defer_keyboard_interrupt

    weights = list(weights)
    if len(weights) != len(variables):
        raise ValueError(
            f"You called `set_weights(weights)` on layer \"{owner_name}\" with a weight list "
            f"of length {len(weights)}, but the layer was expecting {len(variables)} weights. "
            f"Provided weights: {str(weights)[:50]}...")
    values = []
    for variable, weight in zip(variables, weights):
        value = np.asarray(weight)
        if value.shape != variable.numpy().shape:
            raise ValueError(f"Layer weight shape {variable.shape} not compatible with provided "
                             f"weight shape {value.shape}")
        if value.dtype.kind not in "fiub":
            raise TypeError(f"weight for {variable.name} must be numeric, got dtype "
                            f"{value.dtype}")
        # Cast now: a cast that fails must fail before the first assignment.
        values.append(value.astype(variable.numpy().dtype, copy=False))
    with defer_keyboard_interrupt() as deferred:
        old_values: List[Tuple[Variable, np.ndarray]] = []

        def restore() -> None:
            # Newest first, so a variable listed twice ends at its first old value;
            # straight into the arrays, not through assign (which is what failed).
            for variable, old in reversed(old_values):
                np.copyto(variable.numpy(), old)

        try:
            for variable, value in zip(variables, values):
                old_values.append((variable, np.array(variable.numpy(), copy=True)))
                variable.assign(value)
        except BaseException:
            restore()
            raise
        if deferred.interrupted:  # a Ctrl-C came meanwhile: cancel, then it is raised
            restore()
