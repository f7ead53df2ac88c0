"""Training callbacks, as ``tf.keras.callbacks`` (Keras 2.4's hooks, logs
and messages).

* :mod:`.base`: :class:`Callback`, :class:`CallbackList`, :class:`History`,
  the progress bar (:class:`Progbar`, :class:`ProgbarLogger`);
* :mod:`.monitoring`: :class:`EarlyStopping`, :class:`ModelCheckpoint`;
* :mod:`.learning_rate`: :class:`LearningRateScheduler`,
  :class:`ReduceLROnPlateau`;
* :mod:`.loggers`: :class:`CSVLogger`, :class:`TerminateOnNaN`,
  :class:`LambdaCallback`;
* :mod:`.tensorboard`: :class:`TensorBoard` (event files through the optional
  ``tensorboard`` extra, which installs tensorboardX);
* :mod:`.backup`: :class:`BackupAndRestore` (also as
  ``callbacks.experimental.BackupAndRestore``, tf.keras 2.4's name).
"""
from __future__ import annotations

from .base import (DEFAULT_LOG_INTERVAL, Callback, CallbackList, History, Progbar,
                   ProgbarLogger)
from . import experimental
from .backup import BackupAndRestore
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .loggers import CSVLogger, LambdaCallback, TerminateOnNaN
from .monitoring import EarlyStopping, ModelCheckpoint
from .tensorboard import TensorBoard

__all__ = [
    "Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint",
    "ProgbarLogger", "Progbar", "DEFAULT_LOG_INTERVAL", "LearningRateScheduler",
    "ReduceLROnPlateau", "CSVLogger", "TerminateOnNaN", "LambdaCallback", "BackupAndRestore",
    "TensorBoard", "experimental",
]
