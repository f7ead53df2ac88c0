"""``Dense``, ``Flatten``, ``Activation`` and ``Lambda``."""
from __future__ import annotations

import inspect
import sys
import types
import warnings
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import _serialization, activations, constraints, initializers, ops, regularizers
from . import _autodiff
from ._activated import ActivatedMixin
from ._args import normalize_data_format, reject_unsupported
from .base import InputSpec, Layer

__all__ = ["Dense", "Flatten", "Activation", "Lambda"]


class _DenseCache(NamedTuple):
    x2d: np.ndarray          # input as (samples, features)
    z: Optional[np.ndarray]  # pre-activation, only when the activation needs it
    y: np.ndarray            # output, in the caller's shape
    input_shape: Tuple[int, ...]


class Dense(ActivatedMixin, Layer):
    """Fully connected layer: ``activation(x @ kernel + bias)``.

    Parameters
    ----------
    units : int
    activation : None, str or callable
        'relu' is fused into the op.
    use_bias : bool
    kernel_initializer, bias_initializer : str, dict or callable
    kernel_regularizer, bias_regularizer, activity_regularizer : optional
        :mod:`fastconv.regularizers` identifiers (``regularizers.l2(1e-4)``,
        ``'l1'``, ...); their penalties join the training loss.
    kernel_constraint, bias_constraint : optional
        :mod:`fastconv.constraints` identifiers, applied after each update.
    **kwargs
        ``name``, ``dtype``, ``trainable``, ``input_shape``, ``input_dim``,
        ``batch_size``.

    Weights: ``kernel`` of shape ``(in_features, units)`` and ``bias`` of
    shape ``(units,)``. Inputs of rank > 2 are multiplied on their last axis
    (Keras' ``tensordot``), e.g. ``(None, 5, 4) -> (None, 5, units)``.
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any) -> None:
        if "input_shape" not in kwargs and kwargs.get("input_dim") is not None:
            kwargs["input_shape"] = (kwargs.pop("input_dim"),)
        kwargs.pop("input_dim", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        what = f"Layer {self.name} (Dense)"
        try:
            units = int(units)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
            raise TypeError(f"{what}: `units` must be a positive integer, got {units!r}") from None
        if units < 1:
            raise ValueError(f"Received an invalid value for `units`, expected a positive "
                             f"integer, got {units}.")
        self.units = units
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel = None
        self.bias = None
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape: Tuple[Optional[int], ...]) -> None:
        """Create ``kernel`` (in_features, units) and ``bias`` (units,)."""
        last_dim = tuple(input_shape)[-1]
        if last_dim is None:
            raise ValueError("The last dimension of the inputs to `Dense` should be defined. "
                             "Found `None`.")
        self.kernel = self.add_weight("kernel", (last_dim, self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: last_dim})
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """The input shape with its last dim replaced by ``units``."""
        return tuple(input_shape)[:-1] + (self.units,)

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _DenseCache]:
        """Matrix product, bias and activation; caches input and output."""
        x = np.asarray(inputs, dtype=self._dtype)
        x2d = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        z = ops.dense(x2d, self.kernel.value, None if self.bias is None else self.bias.value,
                      activation=self._fused_op_activation())
        z = z.reshape(x.shape[:-1] + (self.units,))
        y, z_cached = self._apply_activation(z)
        return y, _DenseCache(x2d, z_cached, y, x.shape)

    def _backward_pre_activation(self, dz: np.ndarray, cache: _DenseCache, compute_dx: bool
                                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        dz2d = np.asarray(dz, dtype=self._dtype).reshape(-1, self.units)
        dx, dkernel, dbias = ops.dense_backward(dz2d, cache.x2d, self.kernel.value,
                                                compute_dx=compute_dx)
        if dx is not None:
            dx = dx.reshape(cache.input_shape)
        return dx, ([dkernel, dbias] if self.use_bias else [dkernel])

    def count_macs(self, input_shape: Any, output_shape: Tuple[Optional[int], ...]
                   ) -> Optional[int]:
        """``in_features * units`` per output position, per sample."""
        dims = tuple(input_shape)[1:]
        if any(d is None for d in dims):
            return None
        return int(np.prod(dims[:-1], dtype=np.int64)) * dims[-1] * self.units

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        product = "MatMul" if len(tuple(input_shape)) == 2 else "Tensordot"
        return self._activation_op_name("BiasAdd" if self.use_bias else product)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            # Keras 2.4's serialized objects, whatever form the constructor took.
            "kernel_initializer": initializers.serialize(
                initializers.get(self.kernel_initializer)),
            "bias_initializer": initializers.serialize(initializers.get(self.bias_initializer)),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        })
        return config


class _ShapeCache(NamedTuple):
    input_shape: Tuple[int, ...]


class Flatten(Layer):
    """Flattens each sample: ``(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)``.

    NHWC input is flattened in row-major (height, width, channel) order, the
    order Keras uses with ``channels_last``, so Dense weights carry over. With
    ``data_format='channels_first'`` the channel axis is moved last first (one
    copy), as tf.keras 2.4 does, so the same Dense weights serve both layouts.
    """

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, f"Layer {self.name} (Flatten)",
                                                 allow_channels_first=True)
        self.input_spec = InputSpec(min_ndim=1)

    def _channels_moved(self, ndim: int) -> bool:
        return self.data_format == "channels_first" and ndim >= 3

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """``(batch, product of the other dims)``; None if any is unknown."""
        dims = tuple(input_shape)[1:]
        if not dims:
            return (tuple(input_shape)[0], 1)
        if any(d is None for d in dims):
            return (tuple(input_shape)[0], None)
        return (tuple(input_shape)[0], int(np.prod(dims, dtype=np.int64)))

    def forward(self, inputs: np.ndarray, training: bool = False) -> Tuple[np.ndarray, _ShapeCache]:
        """A reshape (a view when the input is contiguous and channels last)."""
        x = np.asarray(inputs, dtype=self._dtype)
        shape = x.shape
        if self._channels_moved(x.ndim):
            x = np.moveaxis(x, 1, -1)
        return x.reshape(x.shape[0], -1), _ShapeCache(shape)

    def backward(self, d_outputs: np.ndarray, cache: _ShapeCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The gradient reshaped back to the input's shape."""
        if not compute_dx:
            return None, []
        shape = cache.input_shape
        if not self._channels_moved(len(shape)):
            return np.reshape(d_outputs, shape), []
        moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
        return np.ascontiguousarray(np.moveaxis(np.reshape(d_outputs, moved), -1, 1)), []

    def _output_op_name(self, input_shape: Any) -> str:
        return "Reshape"

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class _ActivationCache(NamedTuple):
    x: np.ndarray
    y: np.ndarray


class Activation(ActivatedMixin, Layer):
    """Applies an activation function element-wise (softmax: on the last axis).

    Parameters
    ----------
    activation : str or callable
        e.g. 'relu', 'softmax', 'sigmoid', 'tanh', 'linear'.
    """

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_activation(activation)

    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """The input shape."""
        return tuple(input_shape)

    def forward(self, inputs: np.ndarray, training: bool = False
                ) -> Tuple[np.ndarray, _ActivationCache]:
        """``activation(x)``; caches input and output."""
        x = np.asarray(inputs, dtype=self._dtype)
        y = np.asarray(self.activation(x), dtype=self._dtype)
        return y, _ActivationCache(x, y)

    def _cache_of_relu_output(self, y: np.ndarray) -> _ActivationCache:
        """The cache of a call of this layer, a ReLU, whose output is ``y``
        (computed elsewhere: Graph._find_relus_after_batch_norm): the ReLU's
        derivative reads only ``y``."""
        return _ActivationCache(y, y)

    def backward(self, d_outputs: np.ndarray, cache: _ActivationCache, compute_dx: bool = True
                 ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """The activation's derivative applied to ``d_outputs``."""
        if not compute_dx:
            return None, []
        return self._activation_backward(d_outputs, cache.x, cache.y), []

    def _backward_pre_activation(self, dz, cache, compute_dx):
        return (dz if compute_dx else None), []

    def _output_op_name(self, input_shape: Any) -> Optional[str]:
        # None: a linear Activation adds no op (its output is named 'Placeholder:0').
        return self._activation_op_name(None)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config


class _LambdaCache(NamedTuple):
    record: Optional[_autodiff.Trace]           # None: the call was not traced
    traced: Optional[List[_autodiff.Traced]]
    result: Any
    not_traced_because: Optional[str]


class Lambda(Layer):
    """Wraps a Python function of arrays as a layer.

    Parameters
    ----------
    function : callable
        Called as ``function(x, **arguments)`` on NumPy arrays (a list of
        them when the layer is called on a list), plus ``training=`` if its
        signature has that parameter. It must return one array whose first
        axis is the batch.
    output_shape : tuple, callable or None
        The output shape without the batch axis, or a function of the full
        input shape returning the full output shape. None: found by calling
        ``function`` on zeros of the input's shape, twice with different
        sizes in place of unknown (``None``) ones, so the sizes that follow
        them come out unknown too.
    mask : None
        fastconv has no masking; only None is accepted.
    arguments : dict, optional
        Keyword arguments for ``function``.

    Gradients: fastconv cannot differentiate an arbitrary Python function,
    but it differentiates exactly the common safe kind -- element-wise
    arithmetic, NumPy ufuncs such as ``np.exp``/``np.maximum``, comparisons
    and indexing (:mod:`fastconv.layers._autodiff` lists what is followed,
    with TensorFlow's derivative rules). A Lambda of that kind trains like
    any layer. Any other Lambda computes in inference and wherever no
    gradient has to pass through it (right after the model input, or after
    layers without trainable weights); ``compile``/``fit`` of a model that
    would need its gradient raise ``ValueError`` naming the layer and what
    its function does.

    ``get_config`` serializes the function as Keras 2.4 does (the bytecode of
    a Python function, the name of any other callable); :meth:`from_config`
    runs that bytecode, so load only configs you trust.
    """

    def __init__(self, function: Any, output_shape: Any = None, mask: Any = None,
                 arguments: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        what = f"Layer {self.name} (Lambda)"
        if not callable(function):
            raise TypeError(f"{what}: `function` must be callable, got "
                            f"{type(function).__name__} {function!r}")
        if output_shape is not None and not callable(output_shape) and not isinstance(
                output_shape, (tuple, list)):
            raise TypeError(f"{what}: `output_shape` must be a tuple, a function of the input "
                            f"shape or None, got {type(output_shape).__name__} "
                            f"{output_shape!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"{what}: `arguments` must be a dict of keyword arguments for "
                            f"`function`, got {type(arguments).__name__}")
        reject_unsupported(what, mask=mask)
        self.function = function
        self._output_shape = output_shape
        self.mask = None
        self.arguments = dict(arguments or {})
        try:
            self._fn_expects_training_arg = "training" in inspect.signature(function).parameters
        except (TypeError, ValueError):  # builtins and ufuncs without a signature
            self._fn_expects_training_arg = False
        # Set by build(): why tracing the function failed (None: it can be traced).
        self._trace_error: Optional[str] = None
        self._inferred_shapes: Dict[str, Tuple[Optional[int], ...]] = {}  # by input shape

    def __call__(self, inputs: Any, training: Optional[bool] = None, **kwargs: Any) -> Any:
        as_list = isinstance(inputs, (list, tuple))
        if self._inbound_nodes and as_list != self._takes_list:
            raise ValueError(f"Layer {self.name} (Lambda) was first called on "
                             f"{'a list of inputs' if self._takes_list else 'one input'}; "
                             "call it the same way every time")
        self._takes_list = as_list
        return super().__call__(inputs, training, **kwargs)

    # -- running the function ----------------------------------------------
    def _keyword_arguments(self, training: bool) -> Dict[str, Any]:
        kwargs = dict(self.arguments)
        if self._fn_expects_training_arg:
            kwargs["training"] = training
        return kwargs

    def _as_output(self, result: Any) -> np.ndarray:
        if isinstance(result, _autodiff.Traced):
            result = result.value
        if isinstance(result, (list, tuple, dict)):
            raise TypeError(f"Layer {self.name} (Lambda): `function` returned a "
                            f"{type(result).__name__}; fastconv layers have one output, an "
                            "array")
        y = np.asarray(result, dtype=self._dtype)
        if y.ndim == 0:
            raise ValueError(f"Layer {self.name} (Lambda): `function` returned a scalar; it "
                             "must return an array whose first axis is the batch")
        return y

    def _probe_inputs(self, input_shape: Any, unknown_size: int) -> List[np.ndarray]:
        shapes = list(input_shape) if self._takes_list else [input_shape]
        return [np.zeros(tuple(unknown_size if d is None else d for d in s), self._dtype)
                for s in shapes]

    def _call_function(self, arrays: List[np.ndarray], training: bool) -> Any:
        return self.function(arrays if self._takes_list else arrays[0],
                             **self._keyword_arguments(training))

    # -- the layer contract ---------------------------------------------------
    def compute_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        """From ``output_shape``, or by running the function on zeros."""
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        first = (list(input_shape) if self._takes_list else [input_shape])[0]
        if self._output_shape is not None:
            return (tuple(first)[0],) + tuple(self._output_shape)
        key = repr(input_shape)
        if key not in self._inferred_shapes:
            self._inferred_shapes[key] = self._infer_output_shape(input_shape)
        return self._inferred_shapes[key]

    def _infer_output_shape(self, input_shape: Any) -> Tuple[Optional[int], ...]:
        flat = [d for shape in (input_shape if self._takes_list else [input_shape])
                for d in shape]
        probes = []
        for unknown_size in ((2, 3) if None in flat else (2,)):
            arrays = self._probe_inputs(input_shape, unknown_size)
            try:
                with np.errstate(all="ignore"):  # zeros: log(0), 0 / 0 are fine here
                    result = self._call_function(arrays, False)
            except Exception as exc:
                raise ValueError(
                    f"Layer {self.name} (Lambda) could not infer its output shape by calling "
                    f"its function on zeros of shape {[a.shape for a in arrays]}: "
                    f"{type(exc).__name__}: {exc}. Pass `output_shape`.") from exc
            probes.append(self._as_output(result).shape)
        if len({len(p) for p in probes}) != 1:
            raise ValueError(f"Layer {self.name} (Lambda): the rank of the function's output "
                             f"depends on the input's unknown sizes ({probes[0]} and "
                             f"{probes[1]}); pass `output_shape`")
        return tuple(a if all(p[i] == a for p in probes) else None
                     for i, a in enumerate(probes[0]))

    def build(self, input_shape: Any) -> None:
        """Find out, on zeros of the input's shape, whether the function can be traced."""
        arrays = self._probe_inputs(input_shape, 2)
        try:
            with np.errstate(all="ignore"):
                _, _, result = _autodiff.trace(self.function, arrays,
                                               **self._keyword_arguments(True))
            self._as_output(result)
            self._trace_error = None
        except Exception as exc:  # whatever stops the trace, the function stays opaque
            self._trace_error = (str(exc) if isinstance(exc, _autodiff.NotTraceable)
                                 else f"{type(exc).__name__}: {exc}")
        self.built = True

    def input_gradient_error(self) -> Optional[str]:
        """Why this Lambda cannot pass gradients back (None: it can)."""
        if self._trace_error is None:
            return None
        return (f"fastconv cannot differentiate the function of Lambda layer {self.name}: it "
                f"uses {self._trace_error}, which fastconv does not follow (it "
                "differentiates element-wise arithmetic, NumPy ufuncs such as np.exp, "
                "comparisons and indexing)")

    def forward(self, inputs: Any, training: bool = False) -> Tuple[np.ndarray, _LambdaCache]:
        """The function's result; in training, traced for the backward pass when it can be."""
        arrays = [np.asarray(x, dtype=self._dtype) for x in
                  (inputs if self._takes_list else [inputs])]
        reason = self._trace_error or "inference"
        if training and self._trace_error is None:
            try:
                record, traced, result = _autodiff.trace(
                    self.function, arrays, **self._keyword_arguments(True))
            except _autodiff.NotTraceable as exc:  # a branch the probe did not take
                reason = str(exc)
            else:
                return self._as_output(result), _LambdaCache(record, traced, result, None)
        y = self._as_output(self._call_function(arrays, training))
        return y, _LambdaCache(None, None, None, reason)

    def backward(self, d_outputs: np.ndarray, cache: _LambdaCache, compute_dx: bool = True
                 ) -> Tuple[Any, List[np.ndarray]]:
        """The traced derivative; ``ValueError`` when the call could not be traced."""
        if not compute_dx:
            return None, []
        if cache.record is None or cache.traced is None:
            if cache.not_traced_because == "inference":
                raise ValueError(f"Layer {self.name} (Lambda): backward() needs a forward "
                                 "pass with training=True (only those are traced)")
            raise ValueError(f"Layer {self.name} (Lambda): fastconv cannot differentiate "
                             f"this call of its function: it uses "
                             f"{cache.not_traced_because}")
        grads = _autodiff.gradients(cache.record, cache.traced, cache.result,
                                    np.asarray(d_outputs, dtype=self._dtype))
        return (grads if self._takes_list else grads[0]), []

    # -- serialization (Keras 2.4's) -----------------------------------------
    @staticmethod
    def _serialize_function(value: Any, allow_raw: bool = False) -> Tuple[Any, str, Any]:
        if isinstance(value, types.FunctionType):  # Keras' LambdaType: every def too
            return _serialization.func_dump(value), "lambda", value.__module__
        if callable(value):
            return value.__name__, "function", getattr(value, "__module__", None)
        if allow_raw:
            return value, "raw", None
        raise ValueError(f"Invalid input for serialization, type: {type(value)} ")

    def get_config(self):
        config = super().get_config()
        function, function_type, module = self._serialize_function(self.function)
        shape, shape_type, shape_module = self._serialize_function(self._output_shape,
                                                                   allow_raw=True)
        config.update({"function": function, "function_type": function_type, "module": module,
                       "output_shape": shape, "output_shape_type": shape_type,
                       "output_shape_module": shape_module, "arguments": self.arguments})
        return config

    @staticmethod
    def _parse_function(config: Dict[str, Any], custom_objects: Optional[Dict[str, Any]],
                        key: str, module_key: str, type_key: str) -> Any:
        module = config.pop(module_key, None)
        globs: Dict[str, Any] = {}
        if module in sys.modules:
            globs.update(vars(sys.modules[module]))
        elif module is not None:
            warnings.warn(f"{module} is not loaded, but a Lambda layer uses it. It may cause "
                          "errors.", UserWarning, stacklevel=3)
        globs.update(custom_objects or {})
        kind = config.pop(type_key)
        if kind == "function":
            if config[key] not in globs:
                raise ValueError(f"Unknown function in Lambda layer: {config[key]}")
            return globs[config[key]]
        if kind == "lambda":
            return _serialization.func_load(config[key], globs=globs)
        if kind == "raw":
            value = config[key]
            return tuple(value) if isinstance(value, list) else value
        raise TypeError(f"Unknown function type: {kind}")

    @classmethod
    def from_config(cls, config: Dict[str, Any],
                    custom_objects: Optional[Dict[str, Any]] = None) -> "Lambda":
        """The layer :meth:`get_config` described (runs serialized bytecode)."""
        config = dict(config)
        config["function"] = cls._parse_function(config, custom_objects, "function", "module",
                                                 "function_type")
        config["output_shape"] = cls._parse_function(config, custom_objects, "output_shape",
                                                     "output_shape_module",
                                                     "output_shape_type")
        return cls(**config)
