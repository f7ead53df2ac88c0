"""``python -m fastconv bench --distributed``: fastconv.distributed on a local
Dask cluster beside local predict and fit.

For 1 and 2 worker processes on this machine (each with its share of the
cores): images/s of the seed CNN's ``predict`` (batch 256) and of
data-parallel ``fit`` (global batch 64, SGD), beside the same work done
locally with all cores. One distributed training step is split into

* **compute**: the longest replica's time inside its task (forward, loss,
  backward of its slice), measured on the worker;
* **scheduling**: the round trip of an empty task (submit to gather),
  measured alone;
* **driver**: summing the replicas' gradients and the optimizer step;
* **transfer**: the rest of the step's wall time (the weights to the
  workers, the gradients back, their (de)serialization).

The serial part of a step (driver + scheduling + transfer, which grows with
the workers) and the compute per sample are what the scaling estimate in
``docs/distributed.md`` is made of.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List

import numpy as np

from . import distributed, ops
from .bench_models import seed_cnn

__all__ = ["bench_distributed", "distributed_table"]


def _noop() -> None:
    return None


def _timed_step(payload: Any, token: str, weights: List[np.ndarray], x: np.ndarray,
                y: np.ndarray, seed: int) -> Any:
    start = time.perf_counter()
    result = distributed._replica_step(payload, token, weights, x, y, seed)
    return result, time.perf_counter() - start


def _fit_steps(model: Any, client: Any, x: np.ndarray, y: np.ndarray, batch: int,
               steps: int) -> Dict[str, float]:
    """Median seconds per step and its parts, over ``steps`` steps."""
    import pickle
    replicas = len(client.scheduler_info()["workers"])
    payload = client.submit(distributed._hold, pickle.dumps(model), pure=False)
    token = "bench"
    compiled = model._require_compiled()
    trainable, frozen = model.trainable_weights, model.non_trainable_weights
    parts: Dict[str, List[float]] = {"step": [], "compute": [], "driver": [], "scheduling": []}
    for step in range(steps + 1):
        index = slice((step * batch) % len(x), (step * batch) % len(x) + batch)
        xb, yb = x[index], y[index]
        slices = distributed._replica_slices(len(xb), replicas)
        start = time.perf_counter()
        weights = client.submit(distributed._hold, model.get_weights(), pure=False)
        futures = [client.submit(_timed_step, payload, token, weights, xb[s], yb[s], r,
                                 pure=False) for r, s in enumerate(slices)]
        timed = client.gather(futures)
        driver_start = time.perf_counter()
        distributed._apply_step(model, compiled, trainable, frozen, slices, yb,
                                [result for result, _ in timed])
        end = time.perf_counter()
        t0 = time.perf_counter()
        client.submit(_noop, pure=False).result()
        scheduling = time.perf_counter() - t0
        if step == 0:
            continue   # the first step builds the models on the workers
        parts["step"].append(end - start)
        parts["compute"].append(max(seconds for _, seconds in timed))
        parts["driver"].append(end - driver_start)
        parts["scheduling"].append(scheduling)
    med = {key: statistics.median(values) for key, values in parts.items()}
    med["transfer"] = max(0.0, med["step"] - med["compute"] - med["driver"] - med["scheduling"])
    return med


def bench_distributed(worker_counts=(1, 2), steps: int = 10) -> List[dict]:
    """Rows: images/s of local and distributed predict and fit, and the step's parts."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from .optimizers import SGD
    rng = np.random.default_rng(0)
    x = rng.random((2048, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=len(x))
    batch = 64
    model = seed_cnn()
    model.compile(optimizer=SGD(0.01), loss="sparse_categorical_crossentropy")
    rows = []

    def median_seconds(fn: Any, rounds: int = 3) -> float:
        fn()   # warm up: allocations, the first call's builds
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    local_predict = len(x) / median_seconds(lambda: model.predict(x, batch_size=256))
    local_fit = batch * steps / median_seconds(lambda: model.fit(
        x[:batch * steps], y[:batch * steps], batch_size=batch, verbose=0, shuffle=False))
    rows.append({"what": "local (all cores)", "workers": 0, "predict_img_s": local_predict,
                 "fit_img_s": local_fit})
    for workers in worker_counts:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        try:
            with Client(cluster) as client:
                distributed.configure(client)
                lazy = da.from_array(x, chunks=(512, 28, 28, 1))
                predict_rate = len(x) / median_seconds(lambda: distributed.predict(
                    model, lazy, client=client, batch_size=256).compute())
                parts = _fit_steps(model, client, x, y, batch, steps)
        finally:
            cluster.close()
        rows.append({"what": f"{workers} worker(s)", "workers": workers,
                     "predict_img_s": predict_rate, "fit_img_s": batch / parts["step"],
                     **{f"{key}_ms": value * 1e3 for key, value in parts.items()}})
    return rows


def distributed_table(rows: List[dict]) -> str:
    header = (f"{'seed CNN on Dask':20s} {'predict img/s':>14s} {'fit img/s':>10s} "
              f"{'step ms':>8s} {'compute':>8s} {'transfer':>9s} {'schedule':>9s} "
              f"{'driver':>7s}")
    lines = [header, "-" * len(header)]
    for r in rows:
        parts = [r.get(k) for k in ("step_ms", "compute_ms", "transfer_ms", "scheduling_ms",
                                    "driver_ms")]
        text = " ".join("-".rjust(w) if v is None else f"{v:{w}.2f}"
                        for v, w in zip(parts, (8, 8, 9, 9, 7)))
        lines.append(f"{r['what']:20s} {r['predict_img_s']:14.0f} {r['fit_img_s']:10.0f} {text}")
    return "\n".join(lines)


def main() -> int:
    print(f"fastconv threads here: {ops.get_num_threads()}")
    print(distributed_table(bench_distributed()))
    return 0
