"""ONNX models (:func:`fastconv.bench_peers.to_onnx`'s bytes) run by the
inference engines the benchmarks compare with:

* :func:`ort_session`: ONNX Runtime's CPU execution provider;
* :func:`openvino_runner`: OpenVINO's CPU plugin, float32 forced.

Each returns a runner whose ``run(x_nhwc)`` gives the model's output for an
NHWC float32 batch. onnxruntime and openvino are imported when a function
first needs them (``pip install 'fastconv[bench]'``).
"""
from __future__ import annotations

import io
from typing import Any, Dict, Tuple

import numpy as np

from . import _optional

__all__ = ["ort_session", "openvino_runner"]


def _require(module: str, feature: str):
    return _optional.require(module, "bench", f"fastconv.bench_runtimes.{feature}")


def _check_threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"`threads` must be a positive int, got {threads!r}")
    return int(threads)


def _check_onnx_bytes(onnx_bytes: Any) -> bytes:
    if not isinstance(onnx_bytes, (bytes, bytearray)):
        raise TypeError(f"`onnx_bytes` must be the bytes to_onnx returns, got "
                        f"{type(onnx_bytes).__name__}")
    return bytes(onnx_bytes)


def _as_input(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


class _OrtRunner:
    """An ONNX Runtime session: ``run(x_nhwc) -> np.ndarray``."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._input = session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's output for the NHWC batch ``x``."""
        return self.session.run(None, {self._input: _as_input(x)})[0]


def ort_session(onnx_bytes: bytes, threads: int) -> _OrtRunner:
    """An ONNX Runtime CPU session of ``onnx_bytes``: ``threads`` intra-op
    threads, 1 inter-op thread, sequential execution, all graph optimizations."""
    onnx_bytes, threads = _check_onnx_bytes(onnx_bytes), _check_threads(threads)
    ort = _require("onnxruntime", "ort_session")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_bytes, sess_options=options,
                                   providers=["CPUExecutionProvider"])
    return _OrtRunner(session)


class _OpenVinoRunner:
    """OpenVINO on the CPU: ``run(x_nhwc) -> np.ndarray``, compiled once per
    input shape (static shapes are what its CPU plugin is fastest on)."""

    def __init__(self, core: Any, model: Any, config: Dict[str, Any]) -> None:
        self.core = core
        self.model = model
        self.config = config
        self._compiled: Dict[Tuple[int, ...], Any] = {}

    def request(self, shape: Tuple[int, ...]):
        """The infer request compiled for inputs of ``shape``."""
        request = self._compiled.get(shape)
        if request is None:
            model = self.model.clone()
            model.reshape({model.inputs[0].any_name: list(shape)})
            compiled = self.core.compile_model(model, "CPU", self.config)
            request = compiled.create_infer_request()
            self._compiled[shape] = request
        return request

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's output for the NHWC batch ``x``."""
        x = _as_input(x)
        request = self.request(tuple(x.shape))
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()


def openvino_runner(onnx_bytes: bytes, threads: int) -> _OpenVinoRunner:
    """OpenVINO's CPU plugin on ``onnx_bytes``: float32 forced
    (``INFERENCE_PRECISION_HINT``; it would pick bf16 on CPUs with AMX or
    AVX512-BF16), ``threads`` inference threads, one stream, the LATENCY hint."""
    onnx_bytes, threads = _check_onnx_bytes(onnx_bytes), _check_threads(threads)
    ov = _require("openvino", "openvino_runner")
    core = ov.Core()
    model = core.read_model(io.BytesIO(onnx_bytes))
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
              "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    return _OpenVinoRunner(core, model, config)
