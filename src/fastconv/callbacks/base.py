"""Training callbacks and the Keras 2.4 progress bar.

The hooks, their order and the logs they receive follow tf.keras 2.4, so a
``Model.fit`` built on :class:`CallbackList` behaves like Keras' for user
callbacks and :class:`History` (the monitoring callbacks are in
:mod:`.monitoring`).

Progress bar
------------
:class:`Progbar` writes the text of Keras 2.4's ``Progbar`` character for
character (bar, ETA, per-step time, ``%.4f``/``%.4e`` values, verbose=2
epoch lines); :class:`ProgbarLogger` drives it from ``fit``/``evaluate``/
``predict`` and prints ``Epoch i/n`` when there is more than one epoch.
How the text is *delivered* depends on the stream:

* **Interactive** (the stream's ``isatty()`` is true, or it is a Jupyter
  output stream): the line is rewritten in place with ``\\r`` at most every
  ``interval`` (0.05 s) seconds, padded with spaces when it got shorter, and
  ended with a newline when the epoch ends. (Keras also writes a run of
  ``\\b`` before the ``\\r``; it has no visible effect and is left out.)
* **Anything else** (a file, a pipe, a CI log, a captured stream): only
  complete lines are written, never ``\\r`` or ``\\b``. Each epoch gives its
  ``Epoch i/n`` line and its final line, exactly as Keras' final line. If an
  epoch runs longer than ``log_interval`` seconds (default 60), an
  intermediate line with the bar and ETA is added every ``log_interval``
  seconds, so a long run still shows progress without flooding the log.
  ``log_interval=None`` gives final lines only. (TF 2.4 treats every POSIX
  system as interactive and fills log files with ``\\b``/``\\r`` and one
  rewrite per 0.05 s; that is keras-team/keras PR #8171's complaint.)

``dynamic=True``/``False`` forces either behaviour. The stream (default:
``sys.stdout`` at write time) and the clock (default :func:`time.monotonic`)
are injectable, which makes the exact text testable.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO

import numpy as np

__all__ = [
    "Callback", "CallbackList", "History", "ProgbarLogger", "Progbar", "DEFAULT_LOG_INTERVAL",
]

Logs = Optional[Dict[str, Any]]
Clock = Callable[[], float]

DEFAULT_LOG_INTERVAL = 60.0
"""Seconds between intermediate lines when the stream is not interactive."""


def _is_interactive(stream: Any) -> bool:
    """True if ``\\r`` rewrites render as an updating line on ``stream``."""
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except (ValueError, OSError):  # a closed or detached stream
        return False
    # Jupyter's OutStream is not a tty but renders '\r' rewrites; so does
    # PyCharm's run console (which Keras also special-cases).
    if type(stream).__module__.split(".")[0] == "ipykernel":
        return True
    return bool(os.environ.get("PYCHARM_HOSTED")) and stream in (sys.stdout, sys.stderr)


# ---------------------------------------------------------------------------
# Progress bar


class Progbar:
    """Keras 2.4's progress bar, with tty-aware delivery.

    Parameters
    ----------
    target : int or None
        Total number of steps, or None if unknown.
    width : int, default 30
        Width of the bar in characters.
    verbose : {0, 1, 2}, default 1
        0 silent, 1 bar, 2 one line when finished.
    interval : float, default 0.05
        Minimum seconds between two renderings on an interactive stream.
    stateful_metrics : iterable of str, optional
        Names whose values are shown as given. Other values are averaged
        over the steps (weighted by the steps since the previous update),
        as Keras does.
    unit_name : str, default 'step'
    stream : text stream, optional
        Where to write; ``sys.stdout`` (looked up at write time) by default.
    clock : callable, optional
        Returns the time in seconds; :func:`time.monotonic` by default.
    dynamic : bool, optional
        Force (True) or forbid (False) in-place rewriting; by default it is
        used only on interactive streams (see the module docstring).
    log_interval : float or None, default DEFAULT_LOG_INTERVAL
        On a non-interactive stream, seconds between intermediate lines;
        None writes only the final line.
    """

    def __init__(self, target: Optional[int], width: int = 30, verbose: int = 1,
                 interval: float = 0.05, stateful_metrics: Optional[Iterable[str]] = None,
                 unit_name: str = "step", *, stream: Optional[TextIO] = None,
                 clock: Optional[Clock] = None, dynamic: Optional[bool] = None,
                 log_interval: Optional[float] = DEFAULT_LOG_INTERVAL) -> None:
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics = set(stateful_metrics or ())
        self._stream = stream
        self._clock: Clock = clock if clock is not None else time.monotonic
        self.dynamic = _is_interactive(self.stream) if dynamic is None else bool(dynamic)
        self.log_interval = log_interval
        self._total_width = 0
        self._seen_so_far = 0
        self._values: Dict[str, List[Any]] = {}
        self._values_order: List[str] = []
        self._start = self._clock()
        self._last_update: Optional[float] = None
        self._last_line = self._start
        self._time_after_first_step: Optional[float] = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def update(self, current: int, values: Optional[Sequence[tuple]] = None,
               finalize: Optional[bool] = None) -> None:
        """Record progress up to step ``current`` and render if it is time.

        Parameters
        ----------
        current : int
            Index of the current step (1-based count of steps done).
        values : list of (name, value), optional
            Metric values for the last step(s).
        finalize : bool, optional
            Whether this is the last update; defaults to
            ``current >= target``.
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or ():
            if name not in self._values_order:
                self._values_order.append(name)
            if name in self.stateful_metrics:
                self._values[name] = [value, 1]
            else:
                # Weight by the steps since the last update (at least 1, so a
                # repeated final update still counts).
                steps = max(current - self._seen_so_far, 1)
                if name not in self._values:
                    self._values[name] = [value * steps, steps]
                else:
                    self._values[name][0] += value * steps
                    self._values[name][1] += steps
        self._seen_so_far = current

        now = self._clock()
        # Tracked on every update (Keras only on rendered ones, which always
        # include step 1), so throttling cannot lose the first-step time.
        time_per_unit = self._estimate_step_duration(current, now)

        if self.verbose == 1:
            if self.dynamic:
                if (not finalize and self._last_update is not None
                        and now - self._last_update < self.interval):
                    return
                line = self._progress_line(current, now, time_per_unit, finalize)
                padding = " " * max(self._total_width - len(line), 0)
                self._total_width = len(line)
                self._write("\r" + line + padding + ("\n" if finalize else ""))
            else:
                if not finalize:
                    if self.log_interval is None or now - self._last_line < self.log_interval:
                        return
                    self._last_line = now
                self._write(self._progress_line(current, now, time_per_unit, finalize) + "\n")
        elif self.verbose == 2 and finalize:
            self._write(self._epoch_line(current, now) + "\n")
        self._last_update = now

    def add(self, n: int, values: Optional[Sequence[tuple]] = None) -> None:
        """Advance by ``n`` steps."""
        self.update(self._seen_so_far + n, values)

    # -- text ----------------------------------------------------------------
    def _count(self, current: int) -> str:
        digits = len(str(max(int(self.target), 1)))  # == int(log10(target)) + 1
        return "%*d/%d" % (digits, current, self.target)

    def _progress_line(self, current: int, now: float, time_per_unit: float,
                       finalize: bool) -> str:
        if self.target is not None:
            bar = self._count(current) + " ["
            filled = int(self.width * (float(current) / self.target))
            if filled > 0:
                bar += "=" * (filled - 1) + (">" if current < self.target else "=")
            bar += "." * (self.width - filled) + "]"
        else:
            bar = "%7d/Unknown" % current
        if self.target is None or finalize:
            info = " - %.0fs" % (now - self._start) + self._format_step_time(time_per_unit)
        else:
            info = " - ETA: " + self._format_eta(time_per_unit * (self.target - current))
        return bar + info + self._format_values(abs_threshold=True)

    def _epoch_line(self, current: int, now: float) -> str:
        count = self._count(current) if self.target is not None else "%d/Unknown" % current
        # Keras 2.4's verbose=2 line tests `avg > 1e-3` without abs(), so a
        # negative value is printed in %.4e; reproduced for identical output.
        return (count + " - %.0fs" % (now - self._start)
                + self._format_values(abs_threshold=False))

    def _format_step_time(self, time_per_unit: float) -> str:
        if time_per_unit >= 1 or time_per_unit == 0:
            return " %.0fs/%s" % (time_per_unit, self.unit_name)
        if time_per_unit >= 1e-3:
            return " %.0fms/%s" % (time_per_unit * 1e3, self.unit_name)
        return " %.0fus/%s" % (time_per_unit * 1e6, self.unit_name)

    @staticmethod
    def _format_eta(eta: float) -> str:
        if eta > 3600:
            return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
        if eta > 60:
            return "%d:%02d" % (eta // 60, eta % 60)
        return "%ds" % eta

    def _format_values(self, abs_threshold: bool) -> str:
        text = ""
        for name in self._values_order:
            total, count = self._values[name]
            average = float(np.mean(total / max(1, count)))
            magnitude = abs(average) if abs_threshold else average
            text += " - %s:" % name + (" %.4f" % average if magnitude > 1e-3
                                       else " %.4e" % average)
        return text

    def _estimate_step_duration(self, current: int, now: float) -> float:
        # The first step (graph building in Keras, cache warm-up here) is
        # not representative: once step 1 is seen, later estimates exclude it.
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit

    def _write(self, text: str) -> None:
        stream = self.stream
        stream.write(text)
        stream.flush()


# ---------------------------------------------------------------------------
# Callback machinery


class Callback:
    """Base class of callbacks; every hook does nothing by default.

    Attributes
    ----------
    model : object
        The model being trained, set by :meth:`set_model`. Callbacks here use
        ``model.stop_training``, ``get_weights()``, ``set_weights(list)`` and
        ``save_weights(path)``.
    params : dict
        Set by :meth:`set_params`; ``fit`` passes ``{'verbose', 'epochs',
        'steps'}`` as Keras does.
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.params: Dict[str, Any] = {}
        self.validation_data = None

    def set_params(self, params: Dict[str, Any]) -> None:
        self.params = params

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Alias of :meth:`on_train_batch_begin` kept by Keras 2 for old callbacks."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Alias of :meth:`on_train_batch_end` kept by Keras 2 for old callbacks."""

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Start of epoch ``epoch`` (0-based) in ``fit``."""

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """End of an epoch; ``logs`` holds the epoch's metrics and ``val_`` metrics."""

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        """``logs`` holds the running (epoch-so-far) metric values."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        pass

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        pass

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        pass

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        pass

    def on_train_begin(self, logs: Logs = None) -> None:
        pass

    def on_train_end(self, logs: Logs = None) -> None:
        pass

    def on_test_begin(self, logs: Logs = None) -> None:
        pass

    def on_test_end(self, logs: Logs = None) -> None:
        pass

    def on_predict_begin(self, logs: Logs = None) -> None:
        pass

    def on_predict_end(self, logs: Logs = None) -> None:
        pass


class CallbackList:
    """Calls each hook on a list of callbacks, in order.

    Parameters
    ----------
    callbacks : list of Callback, optional
    add_history : bool, default False
        Append a :class:`History` unless one is in ``callbacks``.
    add_progbar : bool, default False
        Insert a :class:`ProgbarLogger` *first* unless one is in
        ``callbacks`` (first, so the epoch's final line is printed before
        other callbacks' messages, as in Keras).
    model : object, optional
        Passed to :meth:`set_model`.
    **params
        Passed to :meth:`set_params` if given (``verbose``, ``epochs``,
        ``steps``).
    """

    def __init__(self, callbacks: Optional[Iterable[Callback]] = None, add_history: bool = False,
                 add_progbar: bool = False, model: Any = None, **params: Any) -> None:
        self.callbacks: List[Callback] = list(callbacks) if callbacks else []
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback instances, got "
                                f"{type(callback).__name__}")
        self.history: Optional[History] = next(
            (c for c in self.callbacks if isinstance(c, History)), None)
        self.progbar: Optional[ProgbarLogger] = next(
            (c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self.progbar is None and add_progbar:
            self.progbar = ProgbarLogger(count_mode="steps")
            self.callbacks.insert(0, self.progbar)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        self.model = None
        self.params: Dict[str, Any] = {}
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def set_params(self, params: Dict[str, Any]) -> None:
        self.params = params
        for callback in self.callbacks:
            callback.set_params(params)

    def set_model(self, model: Any) -> None:
        self.model = model
        for callback in self.callbacks:
            callback.set_model(model)

    def resume_epoch(self, initial_epoch: int) -> int:
        """The epoch ``fit`` starts at: a restoring callback's (BackupAndRestore,
        read after ``on_train_begin``) or ``initial_epoch``."""
        resumed = [getattr(cb, "resume_epoch", None) for cb in self.callbacks]
        resumed = [epoch for epoch in resumed if isinstance(epoch, int)]
        return max(resumed) if resumed else initial_epoch

    def _call(self, hook: str, *args: Any, logs: Logs = None) -> None:
        logs = logs if logs is not None else {}
        for callback in self.callbacks:
            getattr(callback, hook)(*args, logs=logs)

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_train_batch_end", batch, logs=logs)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_train_batch_end", batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_predict_batch_end", batch, logs=logs)

    def on_train_begin(self, logs: Logs = None) -> None:
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs: Logs = None) -> None:
        self._call("on_train_end", logs=logs)

    def on_test_begin(self, logs: Logs = None) -> None:
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs: Logs = None) -> None:
        self._call("on_test_end", logs=logs)

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs: Logs = None) -> None:
        self._call("on_predict_end", logs=logs)


class History(Callback):
    """Records each epoch's logs: ``history.history['loss'][i]`` is epoch i's loss.

    Attributes
    ----------
    history : dict of str -> list
        One list per log key (``loss``, ``accuracy``, ``val_loss``,
        ``val_accuracy``, ...), in the order the keys first appeared.
    epoch : list of int
        The epoch indices seen (reset by each ``on_train_begin``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: Dict[str, List[Any]] = {}
        self.epoch: List[int] = []

    def on_train_begin(self, logs: Logs = None) -> None:
        # As Keras 2.4: `epoch` restarts but `history` accumulates if the same
        # History instance is reused across fits.
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints the progress bar during ``fit``, ``evaluate`` and ``predict``.

    ``fit`` shows ``Epoch i/n`` (when n > 1) and one bar per epoch whose last
    line includes the validation metrics; the validation pass inside
    ``fit`` is silent. ``evaluate`` and ``predict`` show one bar.

    Parameters
    ----------
    count_mode : {'steps'}
        Keras' ``fit`` counts steps (batches).
    stateful_metrics : iterable of str, optional
        Names displayed as given. By default *every* value is displayed as
        given, because the model's logs already hold running epoch means
        (what Keras gets by listing all ``model.metrics``).
    stream, clock, dynamic, log_interval
        Passed to :class:`Progbar`.
    """

    def __init__(self, count_mode: str = "steps",
                 stateful_metrics: Optional[Iterable[str]] = None, *,
                 stream: Optional[TextIO] = None, clock: Optional[Clock] = None,
                 dynamic: Optional[bool] = None,
                 log_interval: Optional[float] = DEFAULT_LOG_INTERVAL) -> None:
        super().__init__()
        if count_mode != "steps":
            raise ValueError(f"Unknown `count_mode`: {count_mode!r}; fastconv counts 'steps'")
        self.stateful_metrics = None if stateful_metrics is None else set(stateful_metrics)
        self.stream = stream
        self.clock = clock
        self.dynamic = dynamic
        self.log_interval = log_interval
        self.progbar: Optional[Progbar] = None
        self.target: Optional[int] = None
        self.seen = 0
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params: Dict[str, Any]) -> None:
        super().set_params(params)
        self.verbose = params.get("verbose", 1)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs: Logs = None) -> None:
        self._called_in_fit = True  # validation inside fit stays silent

    def on_train_end(self, logs: Logs = None) -> None:
        # Keras 2.4 never resets this, which silences a later evaluate()
        # that reuses the same logger.
        self._called_in_fit = False

    def on_test_begin(self, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            assert self.progbar is not None
            self.progbar._write("Epoch %d/%d\n" % (epoch + 1, self.epochs))

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._batch_update_progbar(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._batch_update_progbar(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._batch_update_progbar(batch, None)  # predictions are not metrics

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._finalize_progbar(logs)

    def on_test_end(self, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs: Logs = None) -> None:
        self._finalize_progbar(None)

    def _reset_progbar(self) -> None:
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self) -> None:
        if self.progbar is None:
            self.progbar = Progbar(
                target=self.target, verbose=self.verbose, unit_name="step",
                stateful_metrics=self.stateful_metrics, stream=self.stream, clock=self.clock,
                dynamic=self.dynamic, log_interval=self.log_interval)
            if self.stateful_metrics is None:
                self.progbar.stateful_metrics = _AllNames()

    def _batch_update_progbar(self, batch: int, logs: Logs) -> None:
        self._maybe_init_progbar()
        self.seen = batch + 1  # one-based
        if self.verbose == 1:
            assert self.progbar is not None
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finalize_progbar(self, logs: Logs) -> None:
        self._maybe_init_progbar()
        assert self.progbar is not None
        if self.target is None:  # unknown length: now we know it
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)


class _AllNames(set):
    """A set that contains every name: all values are stateful."""

    def __contains__(self, item: object) -> bool:
        return True
