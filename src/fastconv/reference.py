"""The NumPy backend: every op in plain, vectorised NumPy.

This module is the executable specification of fastconv and the honest
baseline of its benchmarks. It computes in the input's dtype (float64 for the
gradient checks) and loops in Python only over kernel taps, never over pixels.

Functions here take already-validated, NHWC/HWIO arrays and a resolved
:class:`fastconv.shapes.ConvGeometry`; :mod:`fastconv.ops` does the checking.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .shapes import ConvGeometry


def _pad_spatial(x: np.ndarray, g: ConvGeometry, value: float = 0.0) -> np.ndarray:
    if not (g.pad_top or g.pad_bottom or g.pad_left or g.pad_right):
        return x
    return np.pad(x, ((0, 0), (g.pad_top, g.pad_bottom), (g.pad_left, g.pad_right), (0, 0)),
                  constant_values=value)


def _windows(xp: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """View of shape (N, out_h, out_w, C, kh, kw) over the padded input."""
    keh = (g.kh - 1) * g.dilation_h + 1
    kew = (g.kw - 1) * g.dilation_w + 1
    win = sliding_window_view(xp, (keh, kew), axis=(1, 2))
    return win[:, : (g.out_h - 1) * g.stride_h + 1 : g.stride_h,
               : (g.out_w - 1) * g.stride_w + 1 : g.stride_w,
               :, :: g.dilation_h, :: g.dilation_w]


def _tap_slices(g: ConvGeometry, i: int, j: int, step_h: int, step_w: int):
    """Slices of the padded input touched by tap (i, j) for every output pixel."""
    r0 = i * g.dilation_h
    c0 = j * g.dilation_w
    return (slice(None), slice(r0, r0 + (g.out_h - 1) * step_h + 1, step_h),
            slice(c0, c0 + (g.out_w - 1) * step_w + 1, step_w), slice(None))


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray],
           g: ConvGeometry, relu: bool = False) -> np.ndarray:
    """``y[n,p,q,o] = b[o] + sum_{i,j,c} xpad[n, p*sh + i*dh, q*sw + j*dw, c] * k[i,j,c,o]``."""
    win = _windows(_pad_spatial(x, g), g)
    # tensordot gathers the windows into an im2col matrix and calls BLAS.
    y = np.tensordot(win, kernel, axes=([3, 4, 5], [2, 0, 1]))
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return y


def conv2d_backward(dy: np.ndarray, x: np.ndarray, kernel: np.ndarray, g: ConvGeometry,
                    compute_dx: bool = True
                    ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d` (without activation) for the upstream ``dy``."""
    xp = _pad_spatial(x, g)
    win = _windows(xp, g)
    dbias = dy.sum(axis=(0, 1, 2))
    # (C, kh, kw, O) -> HWIO
    dkernel = np.tensordot(win, dy, axes=([0, 1, 2], [0, 1, 2])).transpose(1, 2, 0, 3)
    dx = None
    if compute_dx:
        # col2im: each tap adds dy @ k[i, j].T into a strided slice of dx.
        dxp = np.zeros(xp.shape, dtype=dy.dtype)
        for i in range(g.kh):
            for j in range(g.kw):
                dxp[_tap_slices(g, i, j, g.stride_h, g.stride_w)] += dy @ kernel[i, j].T
        dx = dxp[:, g.pad_top: g.pad_top + g.h, g.pad_left: g.pad_left + g.w, :]
        dx = np.ascontiguousarray(dx)
    return dx, np.ascontiguousarray(dkernel), dbias


def _pool_argmax(x: np.ndarray, g: ConvGeometry) -> Tuple[np.ndarray, np.ndarray]:
    """Max and the row-major index of its first occurrence in each window.

    Padded cells never win. A NaN in a window wins over every number, and the
    first NaN is the one that gets the gradient (like ``np.argmax``/``np.max``).
    """
    dtype_min = -np.inf
    win = _windows(_pad_spatial(x, g, dtype_min), g)
    valid = _windows(_pad_spatial(np.ones((1, g.h, g.w, 1), dtype=bool), g, False), g)
    shape = win.shape[:4] + (g.kh * g.kw,)
    win = win.reshape(shape)
    valid = valid.reshape(valid.shape[:4] + (g.kh * g.kw,))
    peak = np.max(np.where(valid, win, dtype_min), axis=-1)
    best = valid & ((win == peak[..., None]) | (np.isnan(win) & np.isnan(peak)[..., None]))
    return peak, np.argmax(best, axis=-1)


def max_pool2d(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    return _pool_argmax(x, g)[0].astype(x.dtype, copy=False)


def max_pool2d_backward(dy: np.ndarray, x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Each output gradient goes to the first maximum of its window; overlaps add."""
    _, arg = _pool_argmax(x, g)
    dxp = np.zeros((g.n, g.h + g.pad_top + g.pad_bottom, g.w + g.pad_left + g.pad_right,
                    g.c_in), dtype=dy.dtype)
    # Taps in reverse order add each cell's contributions in output-window
    # order, the order the C kernel uses, so overlapping sums agree exactly.
    for i in reversed(range(g.kh)):
        for j in reversed(range(g.kw)):
            routed = np.where(arg == i * g.kw + j, dy, 0)
            dxp[_tap_slices(g, i, j, g.stride_h, g.stride_w)] += routed
    return np.ascontiguousarray(
        dxp[:, g.pad_top: g.pad_top + g.h, g.pad_left: g.pad_left + g.w, :])


def dense(x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray],
          relu: bool = False) -> np.ndarray:
    y = x @ kernel
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return y


def dense_backward(dy: np.ndarray, x: np.ndarray, kernel: np.ndarray,
                   compute_dx: bool = True
                   ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    dx = dy @ kernel.T if compute_dx else None
    return dx, x.T @ dy, dy.sum(axis=0)


def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray,
                vhat: Optional[np.ndarray], alpha: float, beta_1: float, beta_2: float,
                epsilon: float) -> None:
    """One Adam step in place: TF's kernel, one operation at a time in the
    parameter's dtype (``fastconv.ops.adam_update`` documents it)."""
    t = param.dtype.type
    one = t(1)
    m += (grad - m) * (one - t(beta_1))
    v += (grad * grad - v) * (one - t(beta_2))
    if vhat is not None:
        np.maximum(vhat, v, out=vhat)
        v = vhat
    denominator = np.sqrt(v)
    denominator += t(epsilon)
    param -= (m * t(alpha)) / denominator
