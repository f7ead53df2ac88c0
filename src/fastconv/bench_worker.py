"""One benchmark measurement in a fresh process: ``python -m fastconv.bench_worker SPEC``.

A peak resident set size only means something for a process that ran one
framework alone, so each measurement gets its own interpreter: the parent
calls :func:`run_worker` with a spec (a dict, sent as JSON on the command
line), the worker builds :mod:`fastconv.bench_models`' network, loads the
weights the parent wrote (:func:`save_weights`), converts it for its
framework, times it and prints one JSON line of results.

The spec (:func:`check_spec` fills the defaults and raises ValueError
naming the field that is wrong):

* ``framework``: "fastconv", "torch" or "tensorflow"; ``model``: a name of
  :data:`fastconv.bench_models.MODELS`; ``mode``: "train", "infer" or
  "check" (below);
* ``weights``: the path of an ``.npz`` of the fastconv model's
  ``get_weights()`` in list order, or None for the build's own initial
  weights (then every framework starts from other weights);
* ``threads`` (1), ``batch`` (32), ``steps`` (10: batches per timed run),
  ``rounds`` (5: timed runs, the median is reported), ``warmup`` (1: untimed
  runs first; TensorFlow traces its graph in the first fit/predict);
* ``exact_padding`` (False): torch only, :func:`fastconv.bench_peers.to_torch`'s
  argument (False: torch's symmetric padding, what a torch user writes).

What the modes run, on random images (seeded) and random labels:

* "train": ``steps`` SGD steps (learning rate 0.01) of batch ``batch``,
  sparse categorical cross-entropy plus the model's L2 penalties. fastconv
  and TensorFlow: ``compile`` then ``fit(x, y, batch_size=batch, epochs=1,
  shuffle=False, verbose=0)`` on ``steps * batch`` images (Keras' default
  ``jit_compile``, which is no XLA on a CPU-only machine); torch: the same
  loop by hand (``CrossEntropyLoss`` on the logits plus
  ``regularization_loss()``, ``zero_grad(set_to_none=True)``, channels_last).
* "infer": ``predict(x, batch_size=batch)`` on ``steps * batch`` images
  (torch: an eval-mode forward per batch under ``no_grad``). For batch 1,
  ``steps`` single calls instead: fastconv ``predict_on_batch``, torch a
  forward, TensorFlow a ``tf.function`` of ``model(x, training=False)``
  (fixed input signature, no XLA). Not the eager ``model(x)``: eagerly Keras
  dispatches every op from Python, which times the dispatcher rather than
  TensorFlow's kernels (seed model, 1 thread: 7.4 ms a call eager, 1.2 ms
  as a tf.function, 1.3 ms ``predict_on_batch``); a tf.function is what a
  TensorFlow user serving single images writes.
* "check": no timing; the framework's predictions of :func:`check_input`
  (``batch`` images) as ``outputs``, and ``max_abs_diff`` from fastconv's
  predictions of the same images in the same process (0 for fastconv).

TensorFlow gets the network through Keras' own file format: the worker
saves the fastconv model as ``.keras`` (fastconv writes Keras 3's format)
and loads it with ``keras.models.load_model(path, compile=False)`` under
the TensorFlow backend; same layers, names and weights.

Results: ``framework, model, mode, threads, batch, steps, rounds, warmup``,
``img_s`` (images/s of the median run), ``ms_per_batch``, ``times_s`` (every
timed run), ``rss_before_mib`` (resident memory once the model is built and
converted and the data made, before any step), ``peak_rss_mib`` (the
process's peak, VmHWM, read at the end), ``versions`` and
``loaded_frameworks`` (which of torch, tensorflow, keras, jax, onnxruntime,
openvino the process had imported: only its own framework). torch adds
``exact_padding``, TensorFlow ``jit_compile``. The torch and TensorFlow
workers import fastconv too (to rebuild the network), a few MiB of their
peak.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from . import bench_models

__all__ = ["FRAMEWORKS", "MODES", "FrameworkUnavailable", "check_spec", "save_weights",
           "load_weights", "check_input", "run_worker", "measure", "main"]

FRAMEWORKS = ("fastconv", "torch", "tensorflow")
MODES = ("train", "infer", "check")
LEARNING_RATE = bench_models.LEARNING_RATE
DATA_SEED = 0
CHECK_SEED = 1234
_DEFAULTS: Dict[str, Any] = {"weights": None, "threads": 1, "batch": 32, "steps": 10,
                             "rounds": 5, "warmup": 1, "exact_padding": False}
_REQUIRED = ("framework", "model", "mode")
_POSITIVE = ("threads", "batch", "steps", "rounds")
_WATCHED = ("torch", "tensorflow", "keras", "jax", "onnxruntime", "openvino")

# The worker's exit status says which exception the parent raises.
EXIT_FAILED, EXIT_BAD_SPEC, EXIT_UNAVAILABLE = 1, 2, 3


class FrameworkUnavailable(RuntimeError):
    """The worker could not import its framework (not installed, or broken)."""


class _Unavailable(Exception):
    """Raised in the worker when its framework does not import."""


# ----------------------------------------------------------------------
# The spec, the weights file and the inputs (parent and worker alike)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_spec(spec: Any) -> Dict[str, Any]:
    """``spec`` with the defaults filled in; ValueError naming the first
    field that is missing, unknown or wrong."""
    if not isinstance(spec, dict):
        raise ValueError(f"the spec must be a dict, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_REQUIRED) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown spec field(s) {unknown}; the fields are "
                         f"{sorted(_REQUIRED + tuple(_DEFAULTS))}")
    for name in _REQUIRED:
        if name not in spec:
            raise ValueError(f"`{name}` is missing from the spec")
    out = dict(_DEFAULTS, **spec)
    for name, choices in (("framework", FRAMEWORKS), ("model", tuple(bench_models.MODELS)),
                          ("mode", MODES)):
        if not isinstance(out[name], str) or out[name] not in choices:
            raise ValueError(f"`{name}` must be one of {list(choices)}, got {out[name]!r}")
    for name in _POSITIVE:
        if not _is_int(out[name]) or out[name] < 1:
            raise ValueError(f"`{name}` must be a positive int, got {out[name]!r}")
        out[name] = int(out[name])
    if not _is_int(out["warmup"]) or out["warmup"] < 0:
        raise ValueError(f"`warmup` must be an int >= 0, got {out['warmup']!r}")
    out["warmup"] = int(out["warmup"])
    if not isinstance(out["exact_padding"], bool):
        raise ValueError(f"`exact_padding` must be True or False, got {out['exact_padding']!r}")
    weights = out["weights"]
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(f"`weights` must be the path of an .npz file or None, got "
                             f"{weights!r}")
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise ValueError(f"`weights`: no such file {weights!r}")
        out["weights"] = os.path.abspath(weights)
    return out


def save_weights(model: Any, path: str) -> str:
    """Write ``model.get_weights()`` (list order) to the ``.npz`` at ``path``,
    the spec's ``weights``; returns the path."""
    with open(path, "wb") as f:   # a file object: np.savez would append ".npz" to a name
        np.savez(f, *model.get_weights())
    return path


def load_weights(path: str) -> List[np.ndarray]:
    """The arrays :func:`save_weights` wrote, in their order."""
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def check_input(model: str, batch: int) -> np.ndarray:
    """The ``batch`` images "check" mode predicts (seeded, in [0, 1))."""
    shape = bench_models.MODELS[model].input_shape
    return np.random.default_rng(CHECK_SEED).random((batch, *shape), dtype=np.float32)


def _data(model: str, n: int):
    info = bench_models.MODELS[model]
    rng = np.random.default_rng(DATA_SEED)
    x = rng.random((n, *info.input_shape), dtype=np.float32)
    return x, rng.integers(0, info.classes, size=n).astype(np.int64)


# ----------------------------------------------------------------------
# The parent's side


def _tail(text: Any, limit: int = 3000) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-limit:]


def run_worker(spec: Dict[str, Any], timeout_s: float = 600) -> Dict[str, Any]:
    """Run one measurement in a fresh ``sys.executable`` and return its results.

    ``spec`` is checked here first (ValueError naming the field). The worker's
    environment is this process's with ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``
    and ``OPENBLAS_NUM_THREADS`` set to ``threads``, ``TF_CPP_MIN_LOG_LEVEL=2``,
    and ``KERAS_BACKEND=tensorflow`` for TensorFlow. Raises
    FrameworkUnavailable when the worker cannot import its framework,
    ValueError when it rejects the spec, RuntimeError (with the end of its
    stderr) when it fails, prints no result or runs past ``timeout_s``.
    """
    spec = check_spec(spec)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or \
            not timeout_s > 0:
        raise ValueError(f"`timeout_s` must be a positive number of seconds, got {timeout_s!r}")
    env = dict(os.environ)
    threads = str(spec["threads"])
    # numpy's OpenBLAS too: its own pool would otherwise spin up a thread a core.
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               TF_CPP_MIN_LOG_LEVEL="2")
    if spec["framework"] == "tensorflow":
        env["KERAS_BACKEND"] = "tensorflow"
    what = f"bench worker ({spec['framework']} {spec['model']} {spec['mode']})"
    command = [sys.executable, "-m", "fastconv.bench_worker", json.dumps(spec)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{what} timed out after {timeout_s} s; its stderr ends:\n"
                           f"{_tail(e.stderr)}") from None
    stderr = _tail(done.stderr)
    if done.returncode == EXIT_UNAVAILABLE:
        raise FrameworkUnavailable(f"{what}: {spec['framework']} does not import:\n{stderr}")
    if done.returncode == EXIT_BAD_SPEC:
        raise ValueError(f"{what} rejected the spec: {stderr.strip()}")
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed with exit status {done.returncode}; its stderr "
                           f"ends:\n{stderr}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
        if not isinstance(result, dict):
            raise ValueError("not a JSON object")
    except (IndexError, ValueError):
        raise RuntimeError(f"{what} printed no JSON result; its stdout ends:\n"
                           f"{_tail(done.stdout)}\nits stderr ends:\n{stderr}") from None
    return result


# ----------------------------------------------------------------------
# The worker's side: one runner per framework


def _status_mib(key: str) -> float:
    """``key`` (VmRSS, VmHWM) of /proc/self/status in MiB; elsewhere the
    peak from getrusage (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


class _Runner:
    """A framework's prepared model: ``run()`` is one timed run, ``predict(x)``
    its NHWC predictions as NumPy (for "check"), ``extra`` the result fields
    it adds."""

    def __init__(self, run: Callable[[], Any], predict: Callable[[np.ndarray], np.ndarray],
                 extra: Optional[Dict[str, Any]] = None) -> None:
        self.run = run
        self.predict = predict
        self.extra = extra or {}


def _batches(a: Any, batch: int, steps: int) -> List[Any]:
    return [a[i * batch:(i + 1) * batch] for i in range(steps)]


def _fastconv_runner(spec: Dict[str, Any], model: Any, x: np.ndarray, y: np.ndarray,
                     versions: Dict[str, str]) -> _Runner:
    import fastconv
    fastconv.set_num_threads(spec["threads"])
    batch, steps = spec["batch"], spec["steps"]

    def predict(images: np.ndarray) -> np.ndarray:
        return model.predict(images, batch_size=batch)

    if spec["mode"] == "train":
        from .optimizers import SGD
        model.compile(optimizer=SGD(learning_rate=LEARNING_RATE),
                      loss="sparse_categorical_crossentropy")
        return _Runner(lambda: model.fit(x, y, batch_size=batch, epochs=1, shuffle=False,
                                         verbose=0), predict)
    if batch == 1:
        singles = _batches(x, 1, steps)

        def run_singles() -> None:
            for one in singles:
                model.predict_on_batch(one)
        return _Runner(run_singles, predict)
    return _Runner(lambda: model.predict(x, batch_size=batch), predict)


def _torch_runner(spec: Dict[str, Any], model: Any, x: np.ndarray, y: np.ndarray,
                  versions: Dict[str, str]) -> _Runner:
    try:
        import torch
    except ImportError as e:
        raise _Unavailable(f"import torch: {e}") from e
    from .bench_peers import nhwc_to_torch, to_torch, torch_sgd_epoch, torch_to_nhwc
    versions["torch"] = torch.__version__
    # Inter-op threads first: torch refuses the call once its pool has started.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(spec["threads"])
    import fastconv
    fastconv.set_num_threads(spec["threads"])   # fastconv only converts here
    module = to_torch(model, exact_padding=spec["exact_padding"])
    batch, steps = spec["batch"], spec["steps"]
    xs = _batches(nhwc_to_torch(x), batch, steps)   # channels_last views of x
    extra = {"exact_padding": spec["exact_padding"]}

    def predict(images: np.ndarray) -> np.ndarray:
        module.eval()
        with torch.no_grad():
            return np.concatenate([torch_to_nhwc(module(t)) for t in
                                   nhwc_to_torch(images).split(batch)])

    if spec["mode"] == "train":
        ys = _batches(torch.from_numpy(y), batch, steps)
        return _Runner(torch_sgd_epoch(module, xs, ys, LEARNING_RATE), predict, extra)

    def infer() -> None:
        module.eval()
        with torch.no_grad():
            for xb in xs:
                module(xb)
    return _Runner(infer, predict, extra)


def _tensorflow_runner(spec: Dict[str, Any], model: Any, x: np.ndarray, y: np.ndarray,
                       versions: Dict[str, str]) -> _Runner:
    # Keras picks its backend when it is first imported.
    os.environ["KERAS_BACKEND"] = "tensorflow"
    try:
        import tensorflow as tf
    except ImportError as e:
        raise _Unavailable(f"import tensorflow: {e}") from e
    # Before any op runs: TensorFlow fixes its thread pools on first use.
    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    try:
        import keras
    except ImportError as e:
        raise _Unavailable(f"import keras: {e}") from e
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}, not TensorFlow (it "
                           "was imported before KERAS_BACKEND was set)")
    versions.update(tensorflow=tf.__version__, keras=keras.__version__)
    with tempfile.TemporaryDirectory(prefix="fastconv-bench-") as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        kmodel = keras.models.load_model(path, compile=False)
    batch, steps = spec["batch"], spec["steps"]

    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(kmodel.predict(images, batch_size=batch, verbose=0))

    if spec["mode"] == "train":
        kmodel.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE),
                       loss="sparse_categorical_crossentropy")
        return _Runner(lambda: kmodel.fit(x, y, batch_size=batch, epochs=1, shuffle=False,
                                          verbose=0), predict,
                       {"jit_compile": bool(kmodel.jit_compile)})
    if batch == 1:
        signature = [tf.TensorSpec((1, *x.shape[1:]), tf.float32)]
        call = tf.function(lambda t: kmodel(t, training=False), input_signature=signature,
                           jit_compile=False)
        singles = [tf.constant(one) for one in _batches(x, 1, steps)]

        def run_singles() -> None:
            for one in singles:
                call(one).numpy()
        return _Runner(run_singles, predict, {"jit_compile": False})
    return _Runner(lambda: kmodel.predict(x, batch_size=batch, verbose=0), predict,
                   {"jit_compile": False})


_RUNNERS = {"fastconv": _fastconv_runner, "torch": _torch_runner,
            "tensorflow": _tensorflow_runner}


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The measurement ``spec`` asks for, in this process (what the worker
    runs; call it in a process of its own, see :func:`run_worker`)."""
    spec = check_spec(spec)
    import fastconv
    versions = {"python": sys.version.split()[0], "numpy": np.__version__,
                "fastconv": fastconv.__version__}
    model = bench_models.build(spec["model"])
    if spec["weights"] is not None:
        model.set_weights(load_weights(spec["weights"]))
    batch, steps = spec["batch"], spec["steps"]
    check = spec["mode"] == "check"
    x, y = _data(spec["model"], 1 if check else batch * steps)
    images = check_input(spec["model"], batch) if check else None
    # Computed before the conversion: the TensorFlow worker's fastconv
    # predictions are then made before TensorFlow is imported.
    reference = model.predict(images, batch_size=batch) if check else None
    runner = _RUNNERS[spec["framework"]](spec, model, x, y, versions)
    result: Dict[str, Any] = {key: spec[key] for key in (
        "framework", "model", "mode", "threads", "batch", "steps", "rounds", "warmup")}
    result["rss_before_mib"] = _status_mib("VmRSS")
    if check:
        outputs = np.asarray(runner.predict(images), dtype=np.float32)
        result.update(outputs=outputs.tolist(), output_shape=list(outputs.shape),
                      max_abs_diff=float(np.max(np.abs(outputs - reference))))
    else:
        for _ in range(spec["warmup"]):
            runner.run()
        times = []
        for _ in range(spec["rounds"]):
            start = time.perf_counter()
            runner.run()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        result.update(img_s=batch * steps / median, ms_per_batch=1e3 * median / steps,
                      times_s=times)
    result.update(runner.extra)
    result["peak_rss_mib"] = _status_mib("VmHWM")
    result["versions"] = versions
    result["loaded_frameworks"] = sorted(name for name in _WATCHED if name in sys.modules)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m fastconv.bench_worker '<json spec>'``: print the results as
    one JSON line. Exit status 2: a bad spec; 3: the framework does not
    import; 1: the measurement failed."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if len(argv) != 1:
            raise ValueError("usage: python -m fastconv.bench_worker '<json spec>'")
        try:
            spec = json.loads(argv[0])
        except ValueError as e:
            raise ValueError(f"the spec is not JSON: {e}") from None
        spec = check_spec(spec)
    except ValueError as e:
        print(f"fastconv.bench_worker: bad spec: {e}", file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        result = measure(spec)
    except _Unavailable as e:
        print(f"fastconv.bench_worker: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    # Last line of stdout: whatever a framework prints comes before it.
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
