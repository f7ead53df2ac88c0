"""Scoped caching allocation of NumPy arrays for training and inference.

A training step allocates and frees the same tens of megabytes (activations,
gradients, masks) every step; the system allocator hands such blocks back to
the OS and every step faults them in again, which measured a third of a seed
CNN training step. Inside :func:`cached_allocations`, NumPy allocates through
fastconv's caching allocator (``csrc/arena.c``, installed with NumPy's
NEP 49 handler API), which keeps freed blocks of 256 KiB or more (at most
256 MiB idle) for reuse. The handler is a context variable: code outside the
block, other threads and async tasks keep NumPy's default allocator. Arrays
made inside may live on anywhere; they return to the cache when freed.

The functional API allocates the outputs of the C kernels the same way
(:func:`empty`). ``FASTCONV_ARENA=0`` disables it (read at import);
:func:`release_cached_memory` (also called by
``fastconv.backend.clear_session()``) frees the idle blocks.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

try:
    from . import _kernels
except ImportError:  # a source tree that was never built: NumPy's allocator
    _kernels = None  # type: ignore[assignment]

F = TypeVar("F", bound=Callable[..., Any])

_ENABLED = _kernels is not None and os.environ.get("FASTCONV_ARENA", "1") != "0"


@contextlib.contextmanager
def cached_allocations() -> Iterator[None]:
    """NumPy allocates through fastconv's caching allocator inside the block."""
    if not _ENABLED:
        yield
        return
    kernels = _kernels
    previous = kernels.set_numpy_allocator(kernels.ARENA_HANDLER)
    try:
        yield
    finally:
        kernels.set_numpy_allocator(previous)


def with_cached_allocations(method: F) -> F:
    """Decorator: run ``method`` inside :func:`cached_allocations`."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with cached_allocations():
            return method(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def empty(shape: Any, dtype: Any) -> np.ndarray:
    """``np.empty`` from the caching allocator: the outputs of the C kernels,
    so that calling ops in a loop does not fault fresh pages every call.
    (cached_allocations inlined: a generator context manager cost 5 us of a
    17 us global-pooling call.)"""
    if not _ENABLED:
        return np.empty(shape, dtype=dtype)
    previous = _kernels.set_numpy_allocator(_kernels.ARENA_HANDLER)
    try:
        return np.empty(shape, dtype=dtype)
    finally:
        _kernels.set_numpy_allocator(previous)


def release_cached_memory() -> None:
    """Free the idle blocks the caching allocator holds."""
    if _kernels is not None:
        _kernels.arena_release()
