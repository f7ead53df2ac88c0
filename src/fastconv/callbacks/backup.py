"""``BackupAndRestore``: a ``fit`` that was killed resumes from its last
finished epoch (tf.keras 2.4's ``tf.keras.callbacks.experimental.BackupAndRestore``).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import numpy as np

from .. import backend
from .._files import atomic_write
from .base import Callback, Logs

__all__ = ["BackupAndRestore"]

_FORMAT = "fastconv-backup-1"
_FILE_NAME = "backup.npz"


class BackupAndRestore(Callback):
    """Back up the training state after every epoch; restore it when ``fit``
    starts again after an interruption.

    After each epoch one file, ``<backup_dir>/backup.npz``, is replaced
    atomically (a crash or SIGKILL mid-write keeps the previous epoch's)
    with: the epoch, every model weight (moving statistics included), the
    optimizer's state (slots, iterations, a learning rate a callback may
    have changed) and the random generators' states (``backend``'s global
    one, which shuffles and draws dropout masks, and seeded layers' own).
    When ``fit`` begins and the file exists, all of it is restored and
    training continues at the epoch after the backed-up one, whatever
    ``initial_epoch`` says, as in Keras. A ``fit`` that ends normally
    (``epochs`` reached or ``stop_training``) deletes the file; one that
    stops on an exception keeps it.

    So a run killed and restarted with the same script ends with the weights
    of an uninterrupted run, bitwise, as long as the data and the callbacks
    are the same: other callbacks' own state (EarlyStopping's patience
    counter, ReduceLROnPlateau's) starts afresh, as in Keras, and so does a
    ``Sequence``'s own shuffling.

    Parameters
    ----------
    backup_dir : str or path
        Folder of the backup (made when needed). Use one per training run.

    Raises
    ------
    ValueError
        At ``fit``'s start, if the backup file is unreadable or does not fit
        the model or its optimizer (nothing is changed then); delete it to
        start afresh.
    """

    def __init__(self, backup_dir: Any) -> None:
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ValueError(f"`backup_dir` must be a non-empty path, got {backup_dir!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.resume_epoch: Optional[int] = None
        """Set by ``on_train_begin``: the epoch ``fit`` continues at, or None."""

    @property
    def backup_path(self) -> str:
        return os.path.join(self.backup_dir, _FILE_NAME)

    def on_train_begin(self, logs: Logs = None) -> None:
        self.resume_epoch = None
        if os.path.exists(self.backup_path):
            self.resume_epoch = self._restore() + 1

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        arrays = self._training_state(epoch)
        with atomic_write(self.backup_path) as handle:
            np.savez(handle, **arrays)

    def on_train_end(self, logs: Logs = None) -> None:
        # Training is complete: a later fit starts afresh (Keras deletes it too).
        if os.path.exists(self.backup_path):
            os.remove(self.backup_path)

    # -- the file ----------------------------------------------------------
    def _trained_variables(self) -> List[Any]:
        return list(self.model.trainable_weights)

    def _generators(self) -> List[np.random.Generator]:
        return [backend.global_rng(), *self.model._random_generators()]

    def _training_state(self, epoch: int) -> Dict[str, np.ndarray]:
        weights = self.model.get_weights()
        meta = {"format": _FORMAT, "epoch": int(epoch), "weights": len(weights),
                "optimizer": type(self.model.optimizer).__name__,
                "generators": [g.bit_generator.state for g in self._generators()]}
        arrays = {"__meta__": np.array(json.dumps(meta))}
        arrays.update({f"weight/{i}": w for i, w in enumerate(weights)})
        state = self.model.optimizer.get_state(self._trained_variables())
        arrays.update({f"optimizer/{key}": value for key, value in state.items()})
        return arrays

    def _read(self) -> Dict[str, Any]:
        """The backup, fully read and checked against the model."""
        path = self.backup_path
        try:
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
                meta = json.loads(str(archive["__meta__"][()]))
                if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                    raise ValueError(f"unknown format, expected {_FORMAT!r}")
                contents = {name: archive[name] for name in archive.files}
            epoch = meta["epoch"]
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(f"bad epoch {epoch!r}")
            weights = [contents[f"weight/{i}"] for i in range(int(meta["weights"]))]
            generators = list(meta["generators"])
        except Exception as exc:  # an unreadable file, whatever the cause
            raise ValueError(f"BackupAndRestore: cannot read the backup {path} ({type(exc).__name__}: "
                             f"{exc}); delete it to train from the start") from exc
        current = self.model.get_weights()
        if len(weights) != len(current) or any(
                w.shape != c.shape or w.dtype != c.dtype for w, c in zip(weights, current)):
            raise ValueError(f"BackupAndRestore: the backup {path} holds {len(weights)} weights "
                             "that do not match this model's (count, shapes or dtypes); it "
                             "belongs to another model: delete it or use another backup_dir")
        if meta.get("optimizer") != type(self.model.optimizer).__name__ or \
                len(generators) != len(self._generators()):
            raise ValueError(f"BackupAndRestore: the backup {path} was made with optimizer "
                             f"{meta.get('optimizer')} and {len(generators)} random generators; "
                             f"this run has {type(self.model.optimizer).__name__} and "
                             f"{len(self._generators())}")
        prefix = "optimizer/"
        optimizer_state = {key[len(prefix):]: value for key, value in contents.items()
                           if key.startswith(prefix)}
        return {"epoch": epoch, "weights": weights, "optimizer": optimizer_state,
                "generators": generators}

    def _restore(self) -> int:
        backup = self._read()
        generators = self._generators()
        for generator, state in zip(generators, backup["generators"]):
            try:   # on a spare generator first: a bad state must change nothing
                type(generator.bit_generator)().state = state
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(f"BackupAndRestore: the backup {self.backup_path} holds a "
                                 f"random generator state this run cannot take ({exc})") from exc
        # Checked whole before it changes anything; the weights were checked in _read.
        self.model.optimizer.set_state(self._trained_variables(), backup["optimizer"])
        for generator, state in zip(generators, backup["generators"]):
            generator.bit_generator.state = state
        self.model.set_weights(backup["weights"])
        return backup["epoch"]
