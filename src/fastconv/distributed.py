"""fastconv on Dask (``pip install 'fastconv[dask]'``): inference and
data-parallel training over a ``dask.distributed`` cluster.

* :func:`configure` gives every worker's kernels the cores it owns (Dask's
  nanny sets ``OMP_NUM_THREADS=1``, which would leave fastconv on one thread
  per worker).
* :func:`predict` runs ``model.predict`` over the blocks of a dask array (or
  a folder of ``.npy`` shards): the model is sent once to every worker and
  built there once; each block equals a local ``predict`` of it bitwise.
* :func:`fit` trains synchronously: each step, the global batch is cut into
  one slice per replica, each replica (a Dask task) computes its slice's
  loss gradients on the current weights, and the driver adds them in replica
  order and applies one optimizer step. Run with ``client=None`` it does the
  same in this process, which is the reference: distributed and local runs
  with the same number of replicas give the same weights, bitwise.

See ``docs/distributed.md`` for a guide (clusters, shard and batch sizes,
what is reproducible) and the measured costs.
"""
from __future__ import annotations

import glob
import os
import pickle
import socket
import threading
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import backend, ops
from ._optional import require
from .callbacks import CallbackList, History
from .models import training_utils

__all__ = ["configure", "predict", "fit", "FastconvThreads"]

_FEATURE = "fastconv.distributed"

try:   # the plugin's base class; without Dask, every function says which extra to install
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - exercised by the missing-extra test
    _WorkerPlugin = object  # type: ignore[assignment,misc]

# Worker-side cache: the model of each predict/fit call, unpickled once per
# worker process (token -> model).
_MODELS: Dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()
_MAX_CACHED_MODELS = 4


def _dask():
    require("dask.array", "dask", _FEATURE)
    return require("distributed", "dask", _FEATURE)


# ---------------------------------------------------------------------------
# Threads per worker

class FastconvThreads(_WorkerPlugin):
    """A Dask worker plugin: fastconv's kernels get their host's share of
    cores in every worker, now and in workers that start later (see
    :func:`configure`)."""

    name = "fastconv-threads"

    def __init__(self, threads_by_host: Dict[str, int]) -> None:
        self.threads_by_host = dict(threads_by_host)

    def setup(self, worker: Any) -> None:
        host = getattr(worker, "ip", None) or socket.gethostname()
        threads = self.threads_by_host.get(host)
        if threads is None:   # a worker that joined later: its share of the host
            threads = max(1, (os.cpu_count() or 1) // max(1, getattr(worker, "nthreads", 1)))
        ops.set_num_threads(threads)

    def teardown(self, worker: Any) -> None:
        pass


def _host_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def configure(client: Any) -> Dict[str, int]:
    """Give each worker's kernels the cores it owns; returns ``{worker: threads}``.

    A worker on a host with ``C`` cores shared by ``W`` workers running
    ``T`` Dask threads each gets ``max(1, C // (W * T))`` kernel threads, so
    the tasks that run at once never oversubscribe the host. (Dask's nanny
    sets ``OMP_NUM_THREADS=1`` in every worker; without this call fastconv
    would run one thread per worker.) Workers that join later get their
    share of their host when they start. :func:`predict` and :func:`fit`
    call it.
    """
    _dask()
    workers = client.scheduler_info()["workers"]
    per_host: Dict[str, List[int]] = {}
    for info in workers.values():
        per_host.setdefault(info["host"], []).append(int(info.get("nthreads", 1)))
    cores = dict(client.run(_host_cores))
    threads_by_host: Dict[str, int] = {}
    for address, info in workers.items():
        host = info["host"]
        busy = sum(per_host[host])
        threads_by_host[host] = max(1, cores.get(address, 1) // max(1, busy))
    client.register_plugin(FastconvThreads(threads_by_host), name=FastconvThreads.name)
    return dict(client.run(ops.get_num_threads))


# ---------------------------------------------------------------------------
# Worker side

def _hold(value: Any) -> Any:
    """A task that returns its argument: data the scheduler can make again.

    Data given to ``client.scatter`` is lost with the worker that holds it
    (and a broadcast waits on a dead worker's address); the result of this
    task is recomputed from its argument instead, so a worker killed mid-step
    costs a rerun, not the fit."""
    return value


def _worker_model(token: str, payload: Any) -> Any:
    """The model of call ``token`` in this process, unpickled on first use."""
    with _MODELS_LOCK:
        model = _MODELS.get(token)
        if model is None:
            model = pickle.loads(payload) if isinstance(payload, bytes) else payload
            while len(_MODELS) >= _MAX_CACHED_MODELS:
                _MODELS.pop(next(iter(_MODELS)))
            _MODELS[token] = model
        return model


def _predict_block(block: np.ndarray, payload: Any, token: str, batch_size: int
                   ) -> np.ndarray:
    model = _worker_model(token, payload)
    return np.asarray(model.predict(np.asarray(block), batch_size=batch_size, verbose=0))


def _predict_shard(path: str, payload: Any, token: str, batch_size: int) -> np.ndarray:
    return _predict_block(np.load(path, allow_pickle=False), payload, token, batch_size)


def _replica_step(payload: Any, token: str, weights: List[np.ndarray], x: np.ndarray,
                  y: np.ndarray, seed: int) -> Tuple[float, List[np.ndarray],
                                                     List[np.ndarray], np.ndarray]:
    """One replica's part of a step: loss, gradients, the non-trainable
    weights after this slice's forward pass (batch statistics) and the
    outputs, all on the step's weights."""
    model = _worker_model(token, payload)
    model.set_weights(weights)
    with backend.seeded_global_rng(seed):   # this replica's dropout masks, anywhere
        value, grads, outputs = model.compute_gradients(x, y, return_outputs=True)
    state = [v.numpy().copy() for v in model.non_trainable_weights]
    return value, grads, state, outputs


# ---------------------------------------------------------------------------
# predict

def _batch_aligned_chunks(n: int, batch_size: int, chunk: int) -> Tuple[int, ...]:
    """Chunks of about ``chunk`` rows, each a multiple of ``batch_size`` (so the
    workers form the batches a local predict forms), the last one the rest."""
    rows = max(batch_size, (chunk // batch_size) * batch_size)
    sizes = [rows] * (n // rows)
    if n % rows:
        sizes.append(n % rows)
    return tuple(sizes) or (0,)


def predict(model: Any, x: Any, *, client: Any = None, batch_size: Optional[int] = None) -> Any:
    """``model.predict`` over a cluster; returns a dask array (float32).

    Parameters
    ----------
    model : fastconv Model
        Built; sent once (a task the workers copy from each other), built
        once per worker.
    x : dask array, or str
        A dask array of inputs, cut on the batch axis only (other axes are
        joined); its blocks are re-cut to multiples of ``batch_size`` so
        every worker forms the batches a local ``predict`` forms, which
        makes each output block equal the local result bitwise. A string is
        a folder of ``.npy`` shards (``*.npy``, in name order, each a batch
        of inputs, readable by the workers at that path).
    client : distributed.Client, optional
        Default: the current client.
    batch_size : int, default 32

    Returns
    -------
    dask array
        The outputs, one block per input block (per shard); ``.compute()``
        gathers them. A model with several outputs is not supported.
    """
    distributed = _dask()
    import dask.array as da
    client = client or distributed.get_client()
    batch_size = 32 if batch_size is None else training_utils.check_positive_int(
        batch_size, "batch_size")
    if not getattr(model, "built", False):
        raise ValueError("predict: the model must be built (call it once, or give Input)")
    if len(model.outputs) != 1:
        raise NotImplementedError("fastconv.distributed.predict: models with several outputs")
    configure(client)
    token = uuid.uuid4().hex
    payload = client.submit(_hold, pickle.dumps(model), pure=False)
    out_shape = tuple(model.output_shape)
    if isinstance(x, (str, os.PathLike)):
        paths = sorted(glob.glob(os.path.join(os.fspath(x), "*.npy")))
        if not paths:
            raise ValueError(f"predict: no .npy shards in the folder {os.fspath(x)!r}")
        blocks = []
        for path in paths:
            rows = np.load(path, mmap_mode="r").shape[0]   # the header only
            future = client.submit(_predict_shard, path, payload, token, batch_size,
                                   pure=False)
            blocks.append(da.from_delayed(future, shape=(rows,) + out_shape[1:],
                                          dtype=np.float32))
        return da.concatenate(blocks, axis=0)
    if not isinstance(x, da.Array):
        raise TypeError(f"predict: `x` must be a dask array or a folder of .npy shards, got "
                        f"{type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"predict: `x` needs a batch axis and a sample shape, got shape "
                         f"{x.shape}")
    chunk = max(x.chunks[0]) if x.chunks[0] else batch_size
    x = x.rechunk((_batch_aligned_chunks(x.shape[0], batch_size, chunk),) +
                  tuple((d,) for d in x.shape[1:]))
    out_ndim = len(out_shape)
    kwargs: Dict[str, Any] = {"dtype": np.float32,
                              "chunks": (x.chunks[0],) + tuple((d,) for d in out_shape[1:])}
    if out_ndim < x.ndim:
        kwargs["drop_axis"] = list(range(out_ndim, x.ndim))
    elif out_ndim > x.ndim:
        kwargs["new_axis"] = list(range(x.ndim, out_ndim))
    return x.map_blocks(_predict_block, payload, token, batch_size, **kwargs)


# ---------------------------------------------------------------------------
# fit

def _replica_slices(n: int, replicas: int) -> List[slice]:
    """A global batch of ``n`` cut into ``replicas`` near-equal slices (the
    first ones one longer), none empty."""
    replicas = min(replicas, n)
    base, extra = divmod(n, replicas)
    bounds = np.cumsum([0] + [base + (1 if i < extra else 0) for i in range(replicas)])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def fit(model: Any, x: np.ndarray, y: np.ndarray, *, client: Any = None,
        replicas: Optional[int] = None, epochs: int = 1, batch_size: int = 32,
        shuffle: bool = True, seed: int = 0, callbacks: Optional[Sequence[Any]] = None,
        verbose: int = 0) -> History:
    """Synchronous data-parallel training of a compiled ``model``; returns a History.

    Each step takes the next global batch of ``batch_size`` samples (in a
    permutation drawn from ``seed`` per epoch when ``shuffle``) and cuts it
    into ``replicas`` slices. Replica ``r`` computes, on the step's weights,
    the compiled loss of slice ``r`` and its gradients (dropout masks drawn
    from a seed made of ``seed``, the step and ``r``); the driver forms the
    global batch's gradient ``sum_r (n_r / n) * g_r`` in replica order,
    averages the replicas' non-trainable weights (batch normalization's
    moving statistics: the same as moving by the mean of the slices'
    statistics) and applies one optimizer step to ``model``. So ``model``
    is the only copy that changes, and the result depends on ``replicas``
    but not on where the replicas ran: ``client=None`` runs them in this
    process, which gives the distributed run's weights bitwise.

    Parameters
    ----------
    model : fastconv Model
        Built and compiled (its loss, optimizer and metrics are used).
    x, y : ndarray
        The training data (one input, one output), held by the driver; each
        step sends each replica its slice.
    client : distributed.Client, optional
        None runs the replicas here, one after the other.
    replicas : int, optional
        Default: the client's number of workers (1 without a client).
    epochs, batch_size, shuffle, seed, verbose
        As ``Model.fit``; ``seed`` fixes the shuffles and dropout masks.
    callbacks : list of Callback
        Run on the driver, as in ``Model.fit`` (a ModelCheckpoint gives the
        per-epoch checkpoint). A History is added and returned.

    A worker lost in a step only loses its task: Dask runs it again on
    another worker, with the same weights, slice and seed, so the result
    does not change.
    """
    compiled = model._require_compiled()
    epochs = training_utils.check_positive_int(epochs, "epochs")
    batch_size = training_utils.check_positive_int(batch_size, "batch_size")
    if client is not None:
        _dask()
        configure(client)
        if replicas is None:
            replicas = len(client.scheduler_info()["workers"])
    replicas = training_utils.check_positive_int(1 if replicas is None else replicas,
                                                 "replicas")
    xs, y_arr, _, n = model._prepare_xy(x, y, None, ("x", "y", "sample_weight"))
    if len(xs) != 1:
        raise NotImplementedError("fastconv.distributed.fit: models with one input")
    x_arr = xs[0]
    model._check_targets(y_arr, "y")
    token = uuid.uuid4().hex
    payload: Any = pickle.dumps(model)
    if client is not None:
        payload = client.submit(_hold, payload, pure=False)
    rng = np.random.default_rng(seed)
    hooks = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                         verbose=verbose, epochs=epochs,
                         steps=len(training_utils.batch_slices(n, batch_size)))
    trainable = model.trainable_weights
    frozen = model.non_trainable_weights
    model.stop_training = False
    hooks.on_train_begin()
    logs: Dict[str, float] = {}
    for epoch in range(epochs):
        model.reset_metrics()
        hooks.on_epoch_begin(epoch)
        order = rng.permutation(n) if shuffle else np.arange(n)
        for step, batch in enumerate(training_utils.batch_slices(n, batch_size)):
            hooks.on_train_batch_begin(step)
            index = order[batch]
            xb, yb = x_arr[index], y_arr[index]
            weights = model.get_weights()
            parts = _replica_slices(len(index), replicas)
            step_seed = int(rng.integers(2**31 - 1))
            args = [(weights, xb[part], yb[part], step_seed + r) for r, part in
                    enumerate(parts)]
            if client is None:
                results = [_replica_step(payload, token, *a) for a in args]
            else:
                weights_future = client.submit(_hold, weights, pure=False)
                futures = [client.submit(_replica_step, payload, token, weights_future, xs_, ys_,
                                         seed_, pure=False) for _, xs_, ys_, seed_ in args]
                results = client.gather(futures)
            logs = _apply_step(model, compiled, trainable, frozen, parts, yb, results)
            hooks.on_train_batch_end(step, logs)
        hooks.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    hooks.on_train_end(logs)
    with _MODELS_LOCK:
        _MODELS.pop(token, None)
    return hooks.history


def _weighted_sum(terms: List[np.ndarray], shares: List[float]) -> np.ndarray:
    """``sum_r shares[r] * terms[r]``, in replica order, in the terms' dtype."""
    t = terms[0].dtype.type
    total = terms[0] * t(shares[0])
    for share, term in zip(shares[1:], terms[1:]):
        total = total + term * t(share)
    return total


def _apply_step(model: Any, compiled: Any, trainable: List[Any], frozen: List[Any],
                parts: List[slice], y: np.ndarray, results: List[Any]) -> Dict[str, float]:
    n = sum(part.stop - part.start for part in parts)
    shares = [(part.stop - part.start) / n for part in parts]
    grads = [_weighted_sum([result[1][i] for result in results], shares)
             for i in range(len(trainable))]
    for i, variable in enumerate(frozen):
        variable.assign(_weighted_sum([result[2][i] for result in results], shares))
    with training_utils.defer_keyboard_interrupt():
        model.optimizer.apply_gradients(zip(grads, trainable))
    value = sum(share * result[0] for share, result in zip(shares, results))
    outputs = np.concatenate([result[3] for result in results])
    model._update_metrics(compiled, value, y, outputs, None)
    return model._current_logs(compiled)
