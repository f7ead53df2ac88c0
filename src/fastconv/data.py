"""A small stand-in for ``tf.data.Dataset``: an iterable of NumPy elements
that ``fit``, ``evaluate`` and ``predict`` take, with the methods input
pipelines call on what ``image_dataset_from_directory`` returns.

A :class:`Dataset` is a recipe, re-run on every iteration (``for batch in
dataset``, one epoch of ``fit``); its elements are NumPy arrays, or tuples /
dicts of them. Methods return new datasets:

* :meth:`~Dataset.map` (``num_parallel_calls`` runs it in threads, keeping
  the order), :meth:`~Dataset.batch`, :meth:`~Dataset.unbatch`;
* :meth:`~Dataset.shuffle`: TF's buffer shuffle, a new order on every
  iteration (``reshuffle_each_iteration=True``), reproducible with a seed;
* :meth:`~Dataset.prefetch`: elements prepared ahead by a background thread;
* :meth:`~Dataset.cache`: the first complete iteration kept in memory and
  replayed;
* :meth:`~Dataset.take`, :meth:`~Dataset.skip`, :meth:`~Dataset.repeat`.

``len(dataset)`` is the number of elements where it is known, as
``len(tf_dataset)``; a TypeError for an infinite (``repeat()``) or unknown
length, where ``fit`` needs ``steps_per_epoch``. Elements are plain arrays,
not tensors: ``images[0].numpy()`` of TF code is ``images[0]`` here.
"""
from __future__ import annotations

import itertools
import math
import numbers
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, List, Optional

import numpy as np

__all__ = ["AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "Dataset"]

AUTOTUNE = -1                # tf.data.AUTOTUNE (the same value, so TF's constant works too)
INFINITE_CARDINALITY = -1    # tf.data.INFINITE_CARDINALITY
UNKNOWN_CARDINALITY = -2     # tf.data.UNKNOWN_CARDINALITY
_AUTOTUNE_PREFETCH = 2       # batches a prefetch(AUTOTUNE) keeps ready

_DONE = object()


def _count(value: Any, name: str, allow: tuple = ()) -> int:
    if value in allow and not isinstance(value, bool):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        extra = "".join(f" or {a}" for a in allow)
        raise ValueError(f"`{name}` must be a positive int{extra}, got {value!r}")
    return int(value)


def _threads(num_parallel_calls: Any) -> int:
    if num_parallel_calls is None:
        return 1
    if num_parallel_calls == AUTOTUNE and not isinstance(num_parallel_calls, bool):
        return max(1, min(os.cpu_count() or 1, 8))
    return _count(num_parallel_calls, "num_parallel_calls", (AUTOTUNE,))


def _stack(parts: List[Any]) -> Any:
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_stack([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {key: _stack([p[key] for p in parts]) for key in first}
    return np.stack([np.asarray(p) for p in parts])


def _rows(element: Any) -> Iterator[Any]:
    if isinstance(element, tuple):
        return (tuple(parts) for parts in zip(*(_rows(e) for e in element)))
    if isinstance(element, dict):
        keys = list(element)
        return (dict(zip(keys, parts)) for parts in zip(*(_rows(element[k]) for k in keys)))
    return iter(np.asarray(element))


def _slices(tensors: Any) -> Any:
    if isinstance(tensors, tuple):
        return tuple(_slices(t) for t in tensors)
    if isinstance(tensors, dict):
        return {key: _slices(value) for key, value in tensors.items()}
    return np.asarray(tensors)


def _leading(structure: Any) -> List[int]:
    if isinstance(structure, tuple):
        return [n for part in structure for n in _leading(part)]
    if isinstance(structure, dict):
        return [n for part in structure.values() for n in _leading(part)]
    if structure.ndim == 0:
        raise ValueError("from_tensor_slices needs arrays with a first axis to slice, got a "
                         "scalar")
    return [structure.shape[0]]


def _pick(structure: Any, index: int) -> Any:
    if isinstance(structure, tuple):
        return tuple(_pick(part, index) for part in structure)
    if isinstance(structure, dict):
        return {key: _pick(part, index) for key, part in structure.items()}
    return structure[index]


class Dataset:
    """An iterable of elements, rebuilt on every iteration (see the module
    docstring). Make one with :meth:`from_tensor_slices`, or get one from
    :func:`fastconv.preprocessing.image_dataset_from_directory`."""

    def __init__(self, make: Callable[[int], Iterator[Any]], length: int,
                 samples: Optional[int] = None) -> None:
        # make(i) returns the elements of this dataset's i-th iteration;
        # length: the element count, or INFINITE/UNKNOWN_CARDINALITY.
        self._make = make
        self._length = length
        self._samples = samples          # elements after unbatch(), when known
        self._iterations = itertools.count()

    @staticmethod
    def from_tensor_slices(tensors: Any) -> "Dataset":
        """The slices along the first axis of an array, or of a tuple / dict
        of arrays of one length (each element the tuple / dict of slices)."""
        data = _slices(tensors)
        lengths = set(_leading(data))
        if len(lengths) != 1:
            raise ValueError(f"from_tensor_slices needs arrays of one length, got lengths "
                             f"{sorted(lengths)}")
        n = lengths.pop()
        return Dataset(lambda _: (_pick(data, i) for i in range(n)), n)

    # ------------------------------------------------------------------
    # Iteration and length

    def __iter__(self) -> Iterator[Any]:
        return iter(self._make(next(self._iterations)))

    def cardinality(self) -> int:
        """The number of elements, ``INFINITE_CARDINALITY`` (-1) or
        ``UNKNOWN_CARDINALITY`` (-2), as ``tf.data.Dataset.cardinality()``."""
        return self._length

    def __len__(self) -> int:
        if self._length == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite (repeat()): pass steps_per_epoch / steps")
        if self._length == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown: pass steps_per_epoch / steps")
        return self._length

    def as_numpy_iterator(self) -> Iterator[Any]:
        """An iterator over the elements (which are NumPy arrays already)."""
        return iter(self)

    def __repr__(self) -> str:
        size = {INFINITE_CARDINALITY: "infinite", UNKNOWN_CARDINALITY: "unknown"}.get(
            self._length, self._length)
        return f"<fastconv.data.Dataset, {size} elements>"

    # ------------------------------------------------------------------
    # Transformations

    def map(self, map_func: Callable[..., Any], num_parallel_calls: Any = None,
            deterministic: Optional[bool] = None) -> "Dataset":
        """``map_func(element)`` (``map_func(*element)`` for a tuple) of every
        element; ``num_parallel_calls`` (an int or ``AUTOTUNE``) runs it in
        that many threads, results kept in order."""
        if not callable(map_func):
            raise ValueError(f"`map_func` must be callable, got {map_func!r}")
        threads = _threads(num_parallel_calls)

        def call(element: Any) -> Any:
            return map_func(*element) if isinstance(element, tuple) else map_func(element)

        def make(_: int) -> Iterator[Any]:
            if threads == 1:
                return (call(element) for element in self)
            return _parallel_map(call, iter(self), threads)

        return Dataset(make, self._length)

    def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        """Consecutive elements stacked into batches of ``batch_size`` (the
        last one smaller unless ``drop_remainder``)."""
        size = _count(batch_size, "batch_size")

        def make(_: int) -> Iterator[Any]:
            iterator = iter(self)
            while True:
                parts = list(itertools.islice(iterator, size))
                if not parts or (drop_remainder and len(parts) < size):
                    return
                yield _stack(parts)

        n = self._length
        length = n if n < 0 else (n // size if drop_remainder else math.ceil(n / size))
        samples = n if n >= 0 and not drop_remainder else None
        return Dataset(make, length, samples)

    def unbatch(self) -> "Dataset":
        """The rows of every element (the inverse of :meth:`batch`)."""
        def make(_: int) -> Iterator[Any]:
            for element in self:
                yield from _rows(element)

        length = self._samples if self._samples is not None else (
            INFINITE_CARDINALITY if self._length == INFINITE_CARDINALITY
            else UNKNOWN_CARDINALITY)
        return Dataset(make, length)

    def shuffle(self, buffer_size: int, seed: Optional[int] = None,
                reshuffle_each_iteration: bool = True) -> "Dataset":
        """TF's shuffle: a buffer of ``buffer_size`` elements from which each
        next element is drawn at random (a buffer at least as large as the
        dataset shuffles it uniformly). Every iteration draws a new order
        unless ``reshuffle_each_iteration=False``; a ``seed`` makes the
        sequence of orders reproducible (without one, it is drawn from
        ``np.random`` when the dataset is made)."""
        size = _count(buffer_size, "buffer_size")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or seed < 0):
            raise ValueError(f"`seed` must be an int >= 0 or None, got {seed!r}")
        base = int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))

        def make(iteration: int) -> Iterator[Any]:
            rng = np.random.default_rng([base, iteration if reshuffle_each_iteration else 0])
            buffer: List[Any] = []
            for element in self:
                if len(buffer) < size:
                    buffer.append(element)
                    continue
                j = int(rng.integers(len(buffer)))
                yield buffer[j]
                buffer[j] = element
            while buffer:
                j = int(rng.integers(len(buffer)))
                buffer[j], buffer[-1] = buffer[-1], buffer[j]
                yield buffer.pop()

        return Dataset(make, self._length, self._samples)

    def prefetch(self, buffer_size: int) -> "Dataset":
        """Elements prepared ahead by a background thread, up to
        ``buffer_size`` of them (``AUTOTUNE``: 2), while the caller works on
        the current one; errors are raised in the caller."""
        size = _count(buffer_size, "buffer_size", (AUTOTUNE,))
        size = _AUTOTUNE_PREFETCH if size == AUTOTUNE else size
        return Dataset(lambda _: prefetched(self, size), self._length, self._samples)

    def cache(self, filename: str = "") -> "Dataset":
        """The elements of the first complete iteration, kept in memory and
        replayed by later iterations (an order shuffled before the cache is
        then fixed, as in TF). Caching to a file is not implemented."""
        if filename:
            raise NotImplementedError("fastconv's Dataset.cache keeps the elements in memory "
                                      "only: call cache() without a filename")
        stored: List[List[Any]] = []
        lock = threading.Lock()

        def make(_: int) -> Iterator[Any]:
            with lock:
                done = stored[0] if stored else None
            if done is not None:
                yield from done
                return
            seen = []
            for element in self:
                seen.append(element)
                yield element
            with lock:
                if not stored:
                    stored.append(seen)

        return Dataset(make, self._length, self._samples)

    def take(self, count: int) -> "Dataset":
        """The first ``count`` elements (all of them for ``count=-1``)."""
        count = _count_or_all(count, "count")
        n = self._length
        if count < 0:
            return Dataset(lambda _: iter(self), n, self._samples)
        length = count if n == INFINITE_CARDINALITY else (
            UNKNOWN_CARDINALITY if n == UNKNOWN_CARDINALITY else min(count, n))
        return Dataset(lambda _: itertools.islice(iter(self), count), length)

    def skip(self, count: int) -> "Dataset":
        """All but the first ``count`` elements (none for ``count=-1``)."""
        count = _count_or_all(count, "count")
        n = self._length
        if count < 0:
            return Dataset(lambda _: iter(()), 0)
        length = n if n < 0 else max(n - count, 0)
        return Dataset(lambda _: itertools.islice(iter(self), count, None), length)

    def repeat(self, count: Optional[int] = None) -> "Dataset":
        """The dataset ``count`` times over (forever for None or -1); each
        repetition is a new iteration, so a shuffle reshuffles."""
        count = -1 if count is None else _count_or_all(count, "count")

        def make(_: int) -> Iterator[Any]:
            for _ in (itertools.count() if count < 0 else range(count)):
                yield from self

        n = self._length
        if count < 0:
            length = 0 if n == 0 else INFINITE_CARDINALITY
        else:
            length = n * count if n >= 0 else n
        return Dataset(make, length)


def _count_or_all(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < -1:
        raise ValueError(f"`{name}` must be an int >= 0, or -1 for all, got {value!r}")
    return int(value)


def _parallel_map(call: Callable[[Any], Any], elements: Iterator[Any], threads: int
                  ) -> Iterator[Any]:
    """``call`` of every element, computed by ``threads`` threads, in order."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="fastconv-map")
    pending: List[Any] = []
    try:
        for element in elements:
            pending.append(pool.submit(call, element))
            if len(pending) >= 2 * threads:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def prefetched(elements: Iterable[Any], size: int, thread_name: str = "fastconv-prefetch"
               ) -> Iterator[Any]:
    """The elements of ``elements``, drawn by a daemon thread at most ``size``
    ahead (the iteration itself runs in that thread); an exception there is
    raised here, and stopping early stops the thread. Dataset.prefetch and
    fit's batch sources (:mod:`fastconv.models.data_adapter`) both use it."""
    slots: "queue.Queue[Any]" = queue.Queue(size)
    stop = threading.Event()

    def produce() -> None:
        try:
            for element in elements:
                while not stop.is_set():
                    try:
                        slots.put((True, element), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((True, _DONE))
        except BaseException as error:   # raised in the consumer
            slots.put((False, error))

    worker = threading.Thread(target=produce, name=thread_name, daemon=True)
    worker.start()
    try:
        while True:
            ok, element = slots.get()
            if not ok:
                raise element
            if element is _DONE:
                return
            yield element
    finally:
        stop.set()
        while worker.is_alive():   # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                pass
            worker.join(timeout=0.05)
