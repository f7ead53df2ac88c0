"""Blocks that a Ctrl-C cannot split.

:func:`defer_keyboard_interrupt` holds back SIGINT while a group of arrays
changes together (the optimizer's update of every weight, ``set_weights``,
``load_weights``), so that an interrupt never leaves a model that is half
the old one and half the new one. It lives here, below both the layers and
the models, because both use it.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, List, Tuple

__all__ = ["DeferredInterrupts", "defer_keyboard_interrupt"]


class DeferredInterrupts:
    """What :func:`defer_keyboard_interrupt` yields: the SIGINTs held back so far."""

    __slots__ = ("received",)

    def __init__(self) -> None:
        self.received: List[Tuple[int, Any]] = []

    @property
    def interrupted(self) -> bool:
        """Whether a SIGINT arrived during the block (it is delivered when the block ends)."""
        return bool(self.received)


@contextlib.contextmanager
def defer_keyboard_interrupt() -> Iterator[DeferredInterrupts]:
    """Hold back Ctrl-C (SIGINT) until the block has finished.

    Inside this block a SIGINT is only recorded (the yielded
    :class:`DeferredInterrupts` tells whether one came, so a block can undo
    its work); the previous handler (Python's, which raises
    KeyboardInterrupt) is called when the block ends. Outside the main
    thread, or when SIGINT is not handled by a Python function, the block
    runs unguarded (signals are delivered to the main thread only, so
    nothing can interrupt it there). Blocks nest: an inner one hands what it
    received to the outer one.
    """
    deferred = DeferredInterrupts()
    if threading.current_thread() is not threading.main_thread():
        yield deferred
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_DFL / SIG_IGN / set from C
        yield deferred
        return

    def record(signum: int, frame: Any) -> None:
        deferred.received.append((signum, frame))

    try:
        signal.signal(signal.SIGINT, record)
    except (ValueError, OSError):  # e.g. a sub-interpreter: no handlers to install
        yield deferred
        return
    try:
        yield deferred
    finally:
        signal.signal(signal.SIGINT, previous)
        if deferred.received:
            previous(*deferred.received[0])
