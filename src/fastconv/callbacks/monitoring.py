"""The callbacks that watch a monitored log value: :class:`EarlyStopping` and
:class:`ModelCheckpoint` (tf.keras 2.4's rules and messages), and
:func:`monitor_op`, the improvement test they and ReduceLROnPlateau share."""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .base import Callback, Logs

__all__ = ["EarlyStopping", "ModelCheckpoint", "monitor_op"]


def monitor_op(mode: str, monitor: str, callback: str,
                extra_max: Callable[[str], bool] = lambda name: False
                ) -> Callable[[float, float], bool]:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{callback}: `mode` must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "max" or (mode == "auto" and ("acc" in monitor or extra_max(monitor))):
        return np.greater
    return np.less


class EarlyStopping(Callback):
    """Stop training when a monitored value has stopped improving (Keras 2.4 rules).

    After each epoch, ``current`` improves on ``best`` if
    ``current - min_delta < best`` (mode min) or ``current + min_delta > best``
    (mode max). An improvement resets the wait counter (and, with
    ``restore_best_weights``, records ``model.get_weights()``); otherwise the
    counter grows and training stops once it reaches ``patience`` (so
    ``patience=0`` stops at the first epoch without improvement).

    Parameters
    ----------
    monitor : str, default 'val_loss'
    min_delta : float, default 0
        Minimum change that counts as an improvement (its sign is ignored).
    patience : int, default 0
    verbose : int, default 0
        1 prints Keras' messages.
    mode : {'auto', 'min', 'max'}, default 'auto'
        'auto' maximises a monitor whose name contains ``'acc'``, else
        minimises.
    baseline : float, optional
        Training stops unless the monitor beats this value within
        ``patience`` epochs.
    restore_best_weights : bool, default False
        When *stopping*, restore the weights of the best epoch (as in Keras
        2.4, weights are not restored if training runs to the last epoch).
        If no epoch ever beat the baseline there is nothing to restore and
        the weights are kept (Keras 2.4 crashes there).

    Attributes
    ----------
    stopped_epoch : int
        0-based epoch at which training was stopped, or 0.
    best : float
    wait : int
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: Optional[float] = None,
                 restore_best_weights: bool = False) -> None:
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.monitor_op = monitor_op(mode, monitor, "EarlyStopping")
        self.min_delta = abs(min_delta) if self.monitor_op is np.greater else -abs(min_delta)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.best_weights: Optional[List[np.ndarray]] = None

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        if self.baseline is not None:
            self.best = self.baseline
        else:
            self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.best_weights = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        current = self.get_monitor_value(logs)
        if current is None:
            return
        if self.monitor_op(current - self.min_delta, self.best):
            self.best = current
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights:
                if self.best_weights is None:
                    if self.verbose > 0:
                        print("No epoch improved on the baseline; keeping the current weights.")
                else:
                    if self.verbose > 0:
                        print("Restoring model weights from the end of the best epoch.")
                    self.model.set_weights(self.best_weights)

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print("Epoch %05d: early stopping" % (self.stopped_epoch + 1))

    def get_monitor_value(self, logs: Logs) -> Optional[float]:
        """``logs[monitor]``, or None with a warning naming the available keys."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}",
                          RuntimeWarning, stacklevel=3)
        return value


class ModelCheckpoint(Callback):
    """Save the model, or its weights, after every epoch (or every ``save_freq`` batches).

    Parameters
    ----------
    filepath : str or os.PathLike
        May hold ``str.format`` fields filled with ``epoch`` (1-based) and the
        epoch's logs, e.g. ``'ckpt/weights.{epoch:02d}-{val_loss:.2f}.h5'``.
    monitor : str, default 'val_loss'
    verbose : int, default 0
        1 prints Keras' messages.
    save_best_only : bool, default False
        Save only when ``monitor`` improves on the best value seen so far
        (kept across ``fit`` calls, as in Keras).
    save_weights_only : bool, default False
        Call ``model.save_weights(path)``. Otherwise ``model.save(path)`` is
        called if the model has it (``save_weights`` if not): the whole
        model, optimizer state included, in the format of the path's
        extension (``.keras`` or ``.h5``; see :mod:`fastconv.models.keras_saving`).
        Either way the file is written whole to a temporary file and
        renamed into place, so a crash mid-save keeps the previous one.
    mode : {'auto', 'min', 'max'}, default 'auto'
        'auto' maximises monitors containing ``'acc'`` or starting with
        ``'fmeasure'``, else minimises.
    save_freq : 'epoch' or int, default 'epoch'
        An int saves every that many batches (with the current epoch's
        number in the file name).
    """

    def __init__(self, filepath: Any, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq: Any = "epoch") -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0
                                         and not isinstance(save_freq, bool)):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}; expected 'epoch' or a "
                             "positive number of batches")
        self.save_freq = save_freq
        self.monitor_op = monitor_op(mode, monitor, "ModelCheckpoint",
                                      extra_max=lambda name: name.startswith("fmeasure"))
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self._current_epoch = 0
        self._batches_since_save = 0

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self.save_freq != "epoch":
            self._batches_since_save += 1
            if self._batches_since_save >= self.save_freq:
                self._batches_since_save = 0
                self._save_model(self._current_epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.save_freq == "epoch":
            self._save_model(epoch, logs)

    def _save_model(self, epoch: int, logs: Logs) -> None:
        logs = logs or {}
        filepath = self._get_file_path(epoch, logs)
        if not self.save_best_only:
            if self.verbose > 0:
                print("\nEpoch %05d: saving model to %s" % (epoch + 1, filepath))
            self._write(filepath)
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available, skipping. "
                          f"Available: {','.join(logs)}", RuntimeWarning, stacklevel=3)
            return
        if self.monitor_op(current, self.best):
            if self.verbose > 0:
                print("\nEpoch %05d: %s improved from %0.5f to %0.5f, saving model to %s"
                      % (epoch + 1, self.monitor, self.best, current, filepath))
            self.best = current
            self._write(filepath)
        elif self.verbose > 0:
            print("\nEpoch %05d: %s did not improve from %0.5f"
                  % (epoch + 1, self.monitor, self.best))

    def _write(self, filepath: str) -> None:
        try:
            if self.save_weights_only or not hasattr(self.model, "save"):
                self.model.save_weights(filepath)
            else:
                self.model.save(filepath)
        except IsADirectoryError:
            raise IsADirectoryError(
                "Please specify a non-directory filepath for ModelCheckpoint. Filepath used "
                f"is an existing directory: {filepath}") from None

    def _get_file_path(self, epoch: int, logs: Dict[str, Any]) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as exc:
            available = ", ".join(["epoch", *logs])
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: the logs have no value for the field {{{exc.args[0]}}}; "
                           f"available fields: {available}") from None
