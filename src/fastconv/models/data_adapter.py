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
as arrays. ``use_multiprocessing`` is accepted and runs threads too (the
batches stay in one process; no pickling, no fork).

Unlike Keras 2.4, which runs a generator without ``steps_per_epoch`` until
it is exhausted (forever, for the usual ``while True`` generator), an
iterator without a length needs ``steps_per_epoch``: the epoch must end.
"""
from __future__ import annotations

import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .training_utils import check_positive_int

__all__ = ["is_batch_source", "BatchSource", "unpack_batch", "array_batches",
           "GeneratorMethodsMixin"]

_DONE = object()


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
                 max_queue_size: int = 10) -> None:
        self.data = data
        self.workers = check_positive_int(workers, "workers", allow_zero=True)
        self.max_queue_size = check_positive_int(max_queue_size, "max_queue_size")
        self.is_sequence = hasattr(data, "__getitem__") and hasattr(data, "__len__")
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

    def _items(self) -> Iterator[Any]:
        """This epoch's raw batches, in order, drawn in the calling thread."""
        if self.is_sequence:
            if self.workers > 1:
                with ThreadPoolExecutor(self.workers) as pool:
                    # at most max_queue_size batches requested ahead of use
                    pending = []
                    for index in range(self.steps):
                        pending.append(pool.submit(self.data.__getitem__,
                                                   index % len(self.data)))
                        if len(pending) > self.max_queue_size:
                            yield pending.pop(0).result()
                    for future in pending:
                        yield future.result()
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
        if self.workers == 0:
            yield from self._items()
        else:
            yield from self._prefetched()
        if self.exhausted:
            warnings.warn(f"Your input ran out of data: it gave fewer than {self.steps} "
                          "batches this epoch (a generator must yield `steps_per_epoch * "
                          "epochs` batches, `validation_steps` per validation); fit stops "
                          "when its training data runs out", RuntimeWarning, stacklevel=3)
        end = getattr(self.data, "on_epoch_end", None)
        if self.is_sequence and callable(end):
            end()

    def _prefetched(self) -> Iterator[Any]:
        slots: "queue.Queue[Any]" = queue.Queue(self.max_queue_size)
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in self._items():
                    while not stop.is_set():
                        try:
                            slots.put((True, item), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                slots.put((True, _DONE))
            except BaseException as error:   # handed to the consumer, raised there
                slots.put((False, error))

        worker = threading.Thread(target=produce, name="fastconv-batches", daemon=True)
        worker.start()
        try:
            while True:
                ok, item = slots.get()
                if not ok:
                    raise item
                if item is _DONE:
                    return
                yield item
        finally:
            stop.set()
            while worker.is_alive():   # unblock a producer waiting on a full queue
                try:
                    slots.get_nowait()
                except queue.Empty:
                    pass
                worker.join(timeout=0.05)


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
