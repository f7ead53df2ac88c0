"""Batches from generators, iterators, ``Sequence`` objects and other
iterables for ``fit``, ``evaluate`` and ``predict`` (Keras 2.4's
``GeneratorDataAdapter`` and ``KerasSequenceAdapter``).

A *batch source* is anything that is not an array (or a list/tuple/dict of
arrays) and yields batches:

* a ``Sequence``-like object (``__getitem__`` and ``__len__``, such as
  :class:`fastconv.utils.Sequence`): batch ``i`` of every epoch is
  ``source[i]``, ``on_epoch_end()`` is called after each epoch, and with
  ``workers > 1`` several batches are fetched at once by a thread pool (they
  are still used in order);
* an iterator (a Python generator, ``iter(...)``): batches are drawn from it
  across epochs, ``steps_per_epoch`` per epoch;
* any other iterable (a list of batches, a dataset object): a fresh pass
  over it each epoch.

Each batch is ``(x, y)`` or ``(x, y, sample_weight)`` (``x`` alone, or
``(x,)``, for ``predict``). With ``workers >= 1`` (the default) a background
thread prepares up to ``max_queue_size`` batches ahead while the kernels,
which release the GIL, compute the current one; ``workers=0`` draws them in
the calling thread. The batches are used in the order the source gives them
either way, so training on a source is bitwise training on the same batches
as arrays.

``use_multiprocessing=True`` with a ``Sequence`` and ``workers > 1`` fetches
the batches in that many worker *processes* (for ``__getitem__`` code that
holds the GIL: decoding, augmentation in Python). As in Keras 2.4 on Linux
they are forked at the start of each epoch, so they see the Sequence as it
is then (after ``on_epoch_end``) without pickling it; only the batches are
pickled back. Where fork is not available the ``spawn`` start method is
used, which needs a picklable Sequence. A worker that raises passes its
exception on; one that dies makes ``fit`` raise, never hang. Workers run
fastconv's kernels on one thread and ignore Ctrl-C (the main process
handles it). A generator or another iterator is never copied into processes
(Keras 2.4 would give each process its own copy, and so duplicate batches):
with ``use_multiprocessing`` it is drawn by the thread as usual, with a
warning.

Unlike Keras 2.4, which runs a generator without ``steps_per_epoch`` until
it is exhausted (forever, for the usual ``while True`` generator), an
iterator without a length needs ``steps_per_epoch``: the epoch must end.
"""
from __future__ import annotations

import multiprocessing
import signal
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..data import prefetched
from .training_utils import check_positive_int

__all__ = ["is_batch_source", "BatchSource", "unpack_batch", "array_batches",
           "GeneratorMethodsMixin"]

# The Sequence a worker process serves: set by the pool's initializer (fork
# inherits it without pickling).
_WORKER_SEQUENCE: Any = None


def _init_worker(sequence: Any) -> None:
    global _WORKER_SEQUENCE
    _WORKER_SEQUENCE = sequence
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    from .. import ops
    ops.set_num_threads(1)   # the parent's kernels own the cores


def _worker_item(index: int) -> Any:
    return _WORKER_SEQUENCE[index]


def _ready() -> bool:
    return True


def is_batch_source(data: Any) -> bool:
    """Whether ``data`` is a source of batches rather than array data."""
    if data is None or isinstance(data, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if hasattr(data, "__array__") or hasattr(data, "__array_interface__") or np.isscalar(data):
        return False   # array-likes (tensors of other libraries) are arrays
    sequence = hasattr(data, "__getitem__") and hasattr(data, "__len__")
    return sequence or hasattr(data, "__iter__") or hasattr(data, "__next__")


def unpack_batch(item: Any, where: str, with_targets: bool) -> Tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` of one yielded batch (``y``/``sample_weight``
    None where absent), or a ValueError that says which batch was wrong."""
    if isinstance(item, tuple) and 1 <= len(item) <= 3:
        parts = item + (None,) * (3 - len(item))
    elif isinstance(item, list) and len(item) in (2, 3) and with_targets:
        parts = tuple(item) + (None,) * (3 - len(item))
    else:
        parts = (item, None, None)
    if with_targets and parts[1] is None:
        raise ValueError(f"{where} must be a tuple (x, y) or (x, y, sample_weight), got "
                         f"{_describe(item)}")
    return parts


def _describe(item: Any) -> str:
    if isinstance(item, (tuple, list)):
        return f"a {type(item).__name__} of {len(item)} item(s)"
    shape = getattr(item, "shape", None)
    return f"{type(item).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


class BatchSource:
    """The batches of a source, epoch by epoch, prefetched in order.

    Parameters
    ----------
    data : Sequence-like, iterator or iterable
    steps : int or None
        Batches per epoch (``steps_per_epoch`` / ``steps``); None takes the
        source's length.
    steps_name : str
        The argument's name, for errors.
    workers, max_queue_size : int
        See the module docstring.
    """

    def __init__(self, data: Any, steps: Optional[int], steps_name: str, workers: int = 1,
                 max_queue_size: int = 10, use_multiprocessing: bool = False) -> None:
        self.data = data
        self.workers = check_positive_int(workers, "workers", allow_zero=True)
        self.max_queue_size = check_positive_int(max_queue_size, "max_queue_size")
        self.is_sequence = hasattr(data, "__getitem__") and hasattr(data, "__len__")
        self.use_processes = bool(use_multiprocessing) and self.is_sequence and self.workers > 1
        if use_multiprocessing and not self.is_sequence:
            warnings.warn(f"use_multiprocessing=True needs a Sequence; this {type(data).__name__} "
                          "is drawn by a thread in this process instead (a generator copied "
                          "into processes would give each its own batches)",
                          RuntimeWarning, stacklevel=3)
        if self.is_sequence:
            self.is_iterator = False
        elif hasattr(data, "__iter__"):
            self.is_iterator = iter(data) is data   # a generator, not a re-iterable
        else:
            self.is_iterator = True                 # __next__ alone
        if steps is None:
            if not hasattr(data, "__len__"):
                raise ValueError(
                    f"`{steps_name}` is needed when the data is a generator or an iterator "
                    f"without a length ({type(data).__name__}): fastconv does not run an "
                    "input until it is exhausted, which for an endless generator never "
                    "happens")
            steps = len(data)
            if steps == 0:
                raise ValueError(f"the data ({type(data).__name__}) has no batches")
        self.steps = check_positive_int(steps, steps_name)
        self.exhausted = False
        self._iterator: Optional[Iterator[Any]] = data if self.is_iterator else None

    def _pool(self) -> Optional[Executor]:
        """This epoch's pool of Sequence fetchers, made in the calling thread
        (so a fork copies the main thread, not the prefetch thread), or None."""
        if not self.is_sequence or self.workers <= 1:
            return None
        if not self.use_processes:
            return ThreadPoolExecutor(self.workers)
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                   initializer=_init_worker, initargs=(self.data,))
        try:
            pool.submit(_ready).result()   # start the workers now, from this thread
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        return pool

    def _items(self, pool: Optional[Executor]) -> Iterator[Any]:
        """This epoch's raw batches, in order."""
        if self.is_sequence:
            if pool is not None:
                fetch = _worker_item if self.use_processes else self.data.__getitem__
                # at most max_queue_size batches requested ahead of use
                pending = []
                try:
                    for index in range(self.steps):
                        pending.append(pool.submit(fetch, index % len(self.data)))
                        if len(pending) > self.max_queue_size:
                            yield pending.pop(0).result()
                    for future in pending:
                        yield future.result()
                except BrokenProcessPool:
                    raise RuntimeError(
                        f"a data worker process died while fetching batches of "
                        f"{type(self.data).__name__} (killed, or crashed in __getitem__); "
                        "run with use_multiprocessing=False to see the error") from None
            else:
                for index in range(self.steps):
                    yield self.data[index % len(self.data)]
            return
        iterator = self._iterator if self.is_iterator else iter(self.data)
        for _ in range(self.steps):
            try:
                yield next(iterator)
            except StopIteration:
                self.exhausted = True
                return

    def epoch(self) -> Iterator[Any]:
        """This epoch's batches; with workers, produced by a background thread."""
        pool = self._pool()
        try:
            if self.workers == 0:
                yield from self._items(pool)
            else:
                yield from prefetched(self._items(pool), self.max_queue_size,
                                      "fastconv-batches")
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self.exhausted:
            warnings.warn(f"Your input ran out of data: it gave fewer than {self.steps} "
                          "batches this epoch (a generator must yield `steps_per_epoch * "
                          "epochs` batches, `validation_steps` per validation); fit stops "
                          "when its training data runs out", RuntimeWarning, stacklevel=3)
        end = getattr(self.data, "on_epoch_end", None)
        if self.is_sequence and callable(end):
            end()


def array_batches(xs: List[np.ndarray], y: np.ndarray, weights: Optional[np.ndarray],
                  slices: List[slice], order: Optional[np.ndarray] = None
                  ) -> Iterator[Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray]]]:
    """The batches of array data in the form a source's batches take: each
    slice of ``slices``, or of the permutation ``order``."""
    for batch in slices:
        index = batch if order is None else order[batch]
        yield [a[index] for a in xs], y[index], None if weights is None else weights[index]


class GeneratorMethodsMixin:
    """Keras 2.4's deprecated generator methods of a model, which now only
    forward to ``fit``, ``evaluate`` and ``predict`` (they take generators)."""

    def fit_generator(self, generator: Any, steps_per_epoch: Optional[int] = None,
                      epochs: int = 1, verbose: Any = 1,
                      callbacks: Optional[Sequence[Any]] = None, validation_data: Any = None,
                      validation_steps: Optional[int] = None, validation_freq: Any = 1,
                      class_weight: Optional[Dict[int, float]] = None, max_queue_size: int = 10,
                      workers: int = 1, use_multiprocessing: bool = False, shuffle: bool = True,
                      initial_epoch: int = 0) -> Any:
        """Deprecated alias of :meth:`fit` for a generator, as in Keras 2.4."""
        warnings.warn("`Model.fit_generator` is deprecated and will be removed in a future "
                      "version. Please use `Model.fit`, which supports generators.",
                      DeprecationWarning, stacklevel=2)
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        verbose=verbose, callbacks=callbacks, validation_data=validation_data,
                        validation_steps=validation_steps, validation_freq=validation_freq,
                        class_weight=class_weight, max_queue_size=max_queue_size,
                        workers=workers, use_multiprocessing=use_multiprocessing,
                        shuffle=shuffle, initial_epoch=initial_epoch)

    def evaluate_generator(self, generator: Any, steps: Optional[int] = None,
                           callbacks: Optional[Sequence[Any]] = None, max_queue_size: int = 10,
                           workers: int = 1, use_multiprocessing: bool = False,
                           verbose: Any = 0) -> Any:
        """Deprecated alias of :meth:`evaluate` for a generator, as in Keras 2.4."""
        warnings.warn("`Model.evaluate_generator` is deprecated and will be removed in a "
                      "future version. Please use `Model.evaluate`, which supports "
                      "generators.", DeprecationWarning, stacklevel=2)
        return self.evaluate(generator, steps=steps, callbacks=callbacks, verbose=verbose,
                             max_queue_size=max_queue_size, workers=workers,
                             use_multiprocessing=use_multiprocessing)

    def predict_generator(self, generator: Any, steps: Optional[int] = None,
                          callbacks: Optional[Sequence[Any]] = None, max_queue_size: int = 10,
                          workers: int = 1, use_multiprocessing: bool = False,
                          verbose: Any = 0) -> Any:
        """Deprecated alias of :meth:`predict` for a generator, as in Keras 2.4."""
        warnings.warn("`Model.predict_generator` is deprecated and will be removed in a "
                      "future version. Please use `Model.predict`, which supports "
                      "generators.", DeprecationWarning, stacklevel=2)
        return self.predict(generator, steps=steps, callbacks=callbacks, verbose=verbose,
                            max_queue_size=max_queue_size, workers=workers,
                            use_multiprocessing=use_multiprocessing)
