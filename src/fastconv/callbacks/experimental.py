"""``tf.keras.callbacks.experimental``: where tf.keras 2.4 keeps BackupAndRestore."""
from __future__ import annotations

from .backup import BackupAndRestore

__all__ = ["BackupAndRestore"]
