"""Callbacks that record or react to the logs: ``CSVLogger``,
``TerminateOnNaN`` and ``LambdaCallback`` (tf.keras 2.4)."""
from __future__ import annotations

import collections.abc
import csv
import math
import os
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .base import Callback, Logs

__all__ = ["CSVLogger", "TerminateOnNaN", "LambdaCallback"]


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` and the epoch's logs, columns
    sorted by name (Keras 2.4's file, header included).

    Parameters
    ----------
    filename : str or path
    separator : str, default ','
    append : bool, default False
        Append to an existing file (its header is kept; a header is written
        only if the file is empty or new).

    A list-valued log is written as ``"[a, b]"``; if training stops early, the
    columns the last epoch lacks read ``NA``, as in Keras.
    """

    def __init__(self, filename: Any, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"`separator` must be a single character, got {separator!r}")
        self.sep = separator
        self.append = bool(append)
        self.keys: Optional[List[str]] = None
        self.append_header = True
        self.writer: Optional[csv.DictWriter] = None
        self.csv_file: Any = None

    def on_train_begin(self, logs: Logs = None) -> None:
        mode = "w"
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r", newline="") as f:
                    self.append_header = not f.readline()
            mode = "a"
        self.keys = None
        self.writer = None
        self.csv_file = open(self.filename, mode, newline="")

    @staticmethod
    def _cell(value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, collections.abc.Iterable) and not (
                isinstance(value, np.ndarray) and value.ndim == 0):
            return '"[%s]"' % ", ".join(map(str, value))
        return value

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = dict(logs or {})
        if self.keys is None:
            self.keys = sorted(logs)
        if getattr(self.model, "stop_training", False):
            logs = {k: logs.get(k, "NA") for k in self.keys}
        if self.writer is None:
            sep = self.sep

            class Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row: Dict[str, Any] = {"epoch": epoch}
        row.update((key, self._cell(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs: Logs = None) -> None:
        if self.csv_file is not None:
            self.csv_file.close()
        self.csv_file = None
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite
    (printing ``Batch 3: Invalid loss, terminating training``)."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


def _positional(fn: Callable) -> Callable:
    """``fn`` called as Keras 2.4 calls hooks, ``fn(epoch, logs)`` /
    ``fn(logs)``, whatever its parameters are named."""
    def hook(*args: Any, logs: Logs = None) -> Any:
        return fn(*args, logs)
    return hook


class LambdaCallback(Callback):
    """A callback made of plain functions, as ``tf.keras.callbacks.LambdaCallback``.

    ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_batch_begin(batch, logs)``, ``on_batch_end(batch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``; any other hook (e.g.
    ``on_train_batch_end``) by keyword too. Hooks not given do nothing.
    """

    _NAMED = ("on_epoch_begin", "on_epoch_end", "on_batch_begin", "on_batch_end",
              "on_train_begin", "on_train_end")

    def __init__(self, on_epoch_begin: Optional[Callable] = None,
                 on_epoch_end: Optional[Callable] = None,
                 on_batch_begin: Optional[Callable] = None,
                 on_batch_end: Optional[Callable] = None,
                 on_train_begin: Optional[Callable] = None,
                 on_train_end: Optional[Callable] = None, **kwargs: Callable) -> None:
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_batch_begin=on_batch_begin, on_batch_end=on_batch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end)
        for name, fn in kwargs.items():
            if not (name.startswith("on_") and callable(getattr(Callback, name, None))):
                raise TypeError(f"LambdaCallback: {name!r} is not a callback hook")
            given[name] = fn
        for name, fn in given.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"LambdaCallback: `{name}` must be callable, got "
                                f"{type(fn).__name__}")
            setattr(self, name, _positional(fn) if fn is not None else _ignore)
