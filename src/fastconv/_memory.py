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

``FASTCONV_ARENA=0`` disables it; :func:`release_cached_memory` (also called
by ``fastconv.backend.clear_session()``) frees the idle blocks.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator, TypeVar

from . import ops

F = TypeVar("F", bound=Callable[..., Any])


def _enabled() -> bool:
    return ops._kernels is not None and os.environ.get("FASTCONV_ARENA", "1") != "0"


@contextlib.contextmanager
def cached_allocations() -> Iterator[None]:
    """NumPy allocates through fastconv's caching allocator inside the block."""
    if not _enabled():
        yield
        return
    kernels = ops._kernels
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


def release_cached_memory() -> None:
    """Free the idle blocks the caching allocator holds."""
    if ops._kernels is not None:
        ops._kernels.arena_release()
