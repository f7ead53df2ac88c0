"""The NumPy backend: every op in plain, vectorised NumPy.

This module is the executable specification of fastconv and the honest
baseline of its benchmarks. It computes in the input's dtype (float64 for the
gradient checks) and loops in Python only over kernel taps, never over pixels.

Functions here take already-validated arrays and a resolved
:class:`fastconv.shapes.ConvGeometry`; :mod:`fastconv.ops` does the checking.
Activations come in the geometry's data format (NHWC, or NCHW when
``g.channels_first``) and kernels in the matching layout (HWIO, or OIHW);
the functions below compute in NHWC/HWIO and transpose at the edges, which is
the readable way, not the fast one.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .shapes import ConvGeometry

# ---------------------------------------------------------------------------
# Layouts


def _nhwc(a: np.ndarray, channels_first: bool) -> np.ndarray:
    """A view of activations in NHWC order."""
    return a.transpose(0, 2, 3, 1) if channels_first else a


def _from_nhwc(a: np.ndarray, channels_first: bool) -> np.ndarray:
    """Fresh C-contiguous activations in the caller's order."""
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2) if channels_first else a)


def _hwio(kernel: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """A view of the kernel as HWIO ``(kh, kw, c_in / groups, c_out)``."""
    return kernel.transpose(2, 3, 1, 0) if g.channels_first else kernel


def _from_hwio(kernel: np.ndarray, g: ConvGeometry) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1) if g.channels_first else kernel)


def _channel_shape(ndim: int, channels_first: bool) -> Tuple[int, ...]:
    """Shape that broadcasts a per-channel vector against activations."""
    return (1, -1) + (1,) * (ndim - 2) if channels_first else (-1,)


# ---------------------------------------------------------------------------
# Windows


def _pad_spatial(x: np.ndarray, g: ConvGeometry, value: float = 0.0) -> np.ndarray:
    """NHWC ``x`` with the geometry's pads (all of them) around height and width."""
    if not (g.pad_top or g.pad_bottom or g.pad_left or g.pad_right):
        return x
    return np.pad(x, ((0, 0), (g.pad_top, g.pad_bottom), (g.pad_left, g.pad_right), (0, 0)),
                  constant_values=value)


def _padded_zeros(g: ConvGeometry, channels: int, dtype: np.dtype) -> np.ndarray:
    return np.zeros((g.n, g.h + g.pad_top + g.pad_bottom, g.w + g.pad_left + g.pad_right,
                     channels), dtype=dtype)


def _crop(xp: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """The real cells of a padded NHWC array."""
    return xp[:, g.pad_top: g.pad_top + g.h, g.pad_left: g.pad_left + g.w, :]


def _windows(xp: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """View of shape (N, out_h, out_w, C, kh, kw) over the padded NHWC input."""
    keh = (g.kh - 1) * g.dilation_h + 1
    kew = (g.kw - 1) * g.dilation_w + 1
    win = sliding_window_view(xp, (keh, kew), axis=(1, 2))
    return win[:, : (g.out_h - 1) * g.stride_h + 1 : g.stride_h,
               : (g.out_w - 1) * g.stride_w + 1 : g.stride_w,
               :, :: g.dilation_h, :: g.dilation_w]


def _tap_slices(g: ConvGeometry, i: int, j: int, step_h: int, step_w: int):
    """Slices of the padded NHWC input touched by tap (i, j) for every output pixel."""
    r0 = i * g.dilation_h
    c0 = j * g.dilation_w
    return (slice(None), slice(r0, r0 + (g.out_h - 1) * step_h + 1, step_h),
            slice(c0, c0 + (g.out_w - 1) * step_w + 1, step_w), slice(None))


def _real_cells(g: ConvGeometry) -> np.ndarray:
    """(1, out_h, out_w, 1, kh, kw) booleans: which window cells are not padding."""
    return _windows(_pad_spatial(np.ones((1, g.h, g.w, 1), dtype=bool), g, False), g)


# ---------------------------------------------------------------------------
# Convolution
#
# With groups G, channel c of x belongs to group c // (c_in / G) and output
# channel o to group o // (c_out / G); the HWIO kernel's in-axis indexes the
# channels of one group (PyTorch and Keras agree).


def _split_groups(a: np.ndarray, axis: int, groups: int) -> np.ndarray:
    """View with ``axis`` split into (groups, channels per group)."""
    shape = a.shape[:axis] + (groups, a.shape[axis] // groups) + a.shape[axis + 1:]
    return a.reshape(shape)


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray],
           g: ConvGeometry, relu: int = 0) -> np.ndarray:
    """``y[n,p,q,o] = b[o] + sum_{i,j,c} xpad[n, p*sh + i*dh, q*sw + j*dw, G(o)*Cg + c]
    * k[i,j,c,o]`` (NHWC/HWIO indices, ``Cg = c_in / groups``, ``G(o)`` the group of o)."""
    k = _hwio(kernel, g)
    win = _windows(_pad_spatial(_nhwc(x, g.channels_first), g), g)
    if g.groups == 1:
        # tensordot gathers the windows into an im2col matrix and calls BLAS.
        y = np.tensordot(win, k, axes=([3, 4, 5], [2, 0, 1]))
    else:
        y = np.einsum("npqgcij,ijcgo->npqgo", _split_groups(win, 3, g.groups),
                      _split_groups(k, 3, g.groups))
        y = y.reshape(y.shape[:3] + (g.c_out,))
    if bias is not None:
        y += bias
    _activate(y, relu)
    return _from_nhwc(y, g.channels_first)


def conv2d_backward_input(dy: np.ndarray, kernel: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Gradient of :func:`conv2d` w.r.t. ``x`` (col2im: each tap adds
    ``dy @ k[i, j].T`` into a strided slice of the padded dx)."""
    k = _hwio(kernel, g)
    dys = _nhwc(dy, g.channels_first)
    dxp = _padded_zeros(g, g.c_in, dy.dtype)
    groups = g.groups
    for i in range(g.kh):
        for j in range(g.kw):
            if groups == 1:
                contribution = dys @ k[i, j].T
            else:
                # k[i, j] is (Cg, c_out) = (Cg, G, Og)
                tap = k[i, j].reshape(-1, groups, g.c_out // groups)
                contribution = np.einsum("npqgo,cgo->npqgc", _split_groups(dys, 3, groups), tap)
                contribution = contribution.reshape(contribution.shape[:3] + (g.c_in,))
            dxp[_tap_slices(g, i, j, g.stride_h, g.stride_w)] += contribution
    return _from_nhwc(_crop(dxp, g), g.channels_first)


def conv2d_backward_kernel(dy: np.ndarray, x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Gradient of :func:`conv2d` w.r.t. the kernel (in the kernel's layout)."""
    win = _windows(_pad_spatial(_nhwc(x, g.channels_first), g), g)
    dys = _nhwc(dy, g.channels_first)
    if g.groups == 1:
        # (C, kh, kw, O) -> HWIO
        dk = np.tensordot(win, dys, axes=([0, 1, 2], [0, 1, 2])).transpose(1, 2, 0, 3)
    else:
        dk = np.einsum("npqgcij,npqgo->ijcgo", _split_groups(win, 3, g.groups),
                       _split_groups(dys, 3, g.groups))
        dk = dk.reshape(g.kh, g.kw, g.c_in // g.groups, g.c_out)
    return _from_hwio(dk, g)


def bias_grad(dy: np.ndarray, channels_first: bool) -> np.ndarray:
    """``dy`` summed over every axis but the channel axis."""
    channel = 1 if channels_first else dy.ndim - 1
    return dy.sum(axis=tuple(a for a in range(dy.ndim) if a != channel))


def conv2d_backward(dy: np.ndarray, x: np.ndarray, kernel: np.ndarray, g: ConvGeometry,
                    compute_dx: bool = True, compute_dkernel: bool = True,
                    compute_dbias: bool = True
                    ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of :func:`conv2d` (without activation) for the upstream ``dy``."""
    dx = conv2d_backward_input(dy, kernel, g) if compute_dx else None
    dkernel = conv2d_backward_kernel(dy, x, g) if compute_dkernel else None
    dbias = bias_grad(dy, g.channels_first) if compute_dbias else None
    return dx, dkernel, dbias


def _activate(y: np.ndarray, code: int) -> None:
    """The fused activation in place: 0 none, 1 ReLU, 2 ReLU6 (NaN kept)."""
    if code:
        np.maximum(y, 0, out=y)
    if code == 2:
        np.minimum(y, 6, out=y)


def add_bias_relu(y: np.ndarray, bias: Optional[np.ndarray], channels_first: bool,
                  relu: bool) -> np.ndarray:
    """``max(y + bias, 0)`` (as asked), in place on the fresh ``y``."""
    if bias is not None:
        y += bias.reshape(_channel_shape(y.ndim, channels_first))
    if relu:
        np.maximum(y, 0, out=y)
    return y


# A transposed convolution is the input gradient of its associated
# convolution (shapes.conv2d_transpose_geometry); fastconv.ops composes it:
#   forward   y  = conv2d_backward_input(x, kernel, g) + bias
#   backward  dx = conv2d(dy, kernel, None, g)
#             dk = conv2d_backward_kernel(x, dy, g)      (dy-role x, x-role dy)
#             db = bias_grad(dy)


# ---------------------------------------------------------------------------
# Pooling


def _pool_argmax(x: np.ndarray, g: ConvGeometry) -> Tuple[np.ndarray, np.ndarray]:
    """Max and the row-major index of its first occurrence in each window (NHWC).

    Padded cells never win. A NaN in a window wins over every number, and the
    first NaN is the one that gets the gradient (like ``np.argmax``/``np.max``).
    """
    dtype_min = -np.inf
    win = _windows(_pad_spatial(x, g, dtype_min), g)
    valid = _real_cells(g)
    shape = win.shape[:4] + (g.kh * g.kw,)
    win = win.reshape(shape)
    valid = valid.reshape(valid.shape[:4] + (g.kh * g.kw,))
    peak = np.max(np.where(valid, win, dtype_min), axis=-1)
    best = valid & ((win == peak[..., None]) | (np.isnan(win) & np.isnan(peak)[..., None]))
    return peak, np.argmax(best, axis=-1)


def max_pool2d(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    peak = _pool_argmax(_nhwc(x, g.channels_first), g)[0]
    return _from_nhwc(peak.astype(x.dtype, copy=False), g.channels_first)


def max_pool2d_backward(dy: np.ndarray, x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Each output gradient goes to the first maximum of its window; overlaps add."""
    _, arg = _pool_argmax(_nhwc(x, g.channels_first), g)
    dys = _nhwc(dy, g.channels_first)
    dxp = _padded_zeros(g, g.c_in, dy.dtype)
    # Taps in reverse order add each cell's contributions in output-window
    # order, the order the C kernel uses, so overlapping sums agree exactly.
    for i in reversed(range(g.kh)):
        for j in reversed(range(g.kw)):
            routed = np.where(arg == i * g.kw + j, dys, 0)
            dxp[_tap_slices(g, i, j, g.stride_h, g.stride_w)] += routed
    return _from_nhwc(_crop(dxp, g), g.channels_first)


def _avg_divisor(g: ConvGeometry, count_include_pad: bool, dtype: np.dtype) -> np.ndarray:
    """(1, out_h, out_w, 1): kh * kw, or the real cells of each window."""
    if count_include_pad:
        return np.full((1, 1, 1, 1), g.kh * g.kw, dtype=dtype)
    return _real_cells(g).sum(axis=(4, 5)).astype(dtype)


def avg_pool2d(x: np.ndarray, g: ConvGeometry, count_include_pad: bool = False) -> np.ndarray:
    """Window sums (padding counts as zeros) divided by the real cells of the
    window, or by ``kh * kw`` with ``count_include_pad``."""
    win = _windows(_pad_spatial(_nhwc(x, g.channels_first), g), g)
    y = win.sum(axis=(4, 5)) / _avg_divisor(g, count_include_pad, x.dtype)
    return _from_nhwc(y, g.channels_first)


def avg_pool2d_backward(dy: np.ndarray, g: ConvGeometry,
                        count_include_pad: bool = False) -> np.ndarray:
    """Each window's gradient, divided by its divisor, spread over its cells."""
    share = _nhwc(dy, g.channels_first) / _avg_divisor(g, count_include_pad, dy.dtype)
    dxp = _padded_zeros(g, g.c_in, dy.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            dxp[_tap_slices(g, i, j, g.stride_h, g.stride_w)] += share
    return _from_nhwc(_crop(dxp, g), g.channels_first)


def global_avg_pool2d(x: np.ndarray, channels_first: bool, keepdims: bool) -> np.ndarray:
    axes = (2, 3) if channels_first else (1, 2)
    return np.ascontiguousarray(x.mean(axis=axes, keepdims=keepdims))


def global_avg_pool2d_backward(dy: np.ndarray, x_shape: Tuple[int, ...],
                               channels_first: bool) -> np.ndarray:
    """``dy`` (any of the output shapes) spread evenly over the image."""
    n, c = x_shape[0], x_shape[1 if channels_first else 3]
    h, w = (x_shape[2], x_shape[3]) if channels_first else (x_shape[1], x_shape[2])
    share = dy.reshape((n, c, 1, 1) if channels_first else (n, 1, 1, c)) / dy.dtype.type(h * w)
    return np.ascontiguousarray(np.broadcast_to(share, x_shape))


# ---------------------------------------------------------------------------
# Batch normalization over every axis but the channel axis


def _reduce_axes(ndim: int, channels_first: bool) -> Tuple[int, ...]:
    channel = 1 if channels_first else ndim - 1
    return tuple(a for a in range(ndim) if a != channel)


def _normalize(x: np.ndarray, mean: np.ndarray, var: np.ndarray, gamma: Optional[np.ndarray],
               beta: Optional[np.ndarray], epsilon: float, relu: bool,
               channels_first: bool) -> np.ndarray:
    shape = _channel_shape(x.ndim, channels_first)
    t = x.dtype.type
    scale = 1 / np.sqrt(var + t(epsilon))
    if gamma is not None:
        scale = scale * gamma
    y = (x - mean.reshape(shape)) * scale.reshape(shape)
    return np.ascontiguousarray(add_bias_relu(y, beta, channels_first, relu))


def batch_norm_train(x: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray],
                     epsilon: float, relu: bool, channels_first: bool
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y = (x - mean) / sqrt(var + eps) * gamma + beta`` with the batch mean and
    biased variance per channel; returns ``(y, mean, var)``."""
    axes = _reduce_axes(x.ndim, channels_first)
    mean = x.mean(axis=axes)
    shape = _channel_shape(x.ndim, channels_first)
    centred = x - mean.reshape(shape)
    var = np.mean(centred * centred, axis=axes)
    return _normalize(x, mean, var, gamma, beta, epsilon, relu, channels_first), mean, var


def batch_norm_backward(dy: np.ndarray, x: np.ndarray, gamma: Optional[np.ndarray],
                        mean: np.ndarray, var: np.ndarray, epsilon: float,
                        channels_first: bool, compute_dx: bool = True
                        ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """With ``xhat = (x - mean) * inv``, ``inv = 1 / sqrt(var + eps)`` and ``m``
    values per channel: ``dbeta = sum dy``, ``dgamma = sum dy * xhat``,
    ``dx = gamma * inv / m * (m * dy - dbeta - xhat * dgamma)`` (mean and var
    are the batch's, so their own gradients are included)."""
    axes = _reduce_axes(x.ndim, channels_first)
    shape = _channel_shape(x.ndim, channels_first)
    t = x.dtype.type
    inv = 1 / np.sqrt(var + t(epsilon))
    xhat = (x - mean.reshape(shape)) * inv.reshape(shape)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = None
    if compute_dx:
        m = t(x.size // x.shape[1 if channels_first else -1])
        scale = inv if gamma is None else gamma * inv
        dx = (dy - (dbeta.reshape(shape) + xhat * dgamma.reshape(shape)) / m) \
            * scale.reshape(shape)
        dx = np.ascontiguousarray(dx)
    return dx, dgamma, dbeta


def batch_norm_inference(x: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray],
                         moving_mean: np.ndarray, moving_var: np.ndarray, epsilon: float,
                         relu: bool, channels_first: bool) -> np.ndarray:
    return _normalize(x, moving_mean, moving_var, gamma, beta, epsilon, relu, channels_first)


def batch_norm_update_moving(moving_mean: np.ndarray, moving_var: np.ndarray,
                             mean: np.ndarray, var: np.ndarray, momentum: float,
                             count: Optional[int]) -> None:
    """TensorFlow's ``moving -= (moving - value) * (1 - momentum)`` in place;
    with ``count`` the variance fed in is ``var * count / (count - 1)``."""
    t = moving_mean.dtype.type
    decay = t(1) - t(momentum)
    if count is not None:
        var = var * t(count / (count - 1))
    moving_mean -= (moving_mean - mean) * decay
    moving_var -= (moving_var - var) * decay


# ---------------------------------------------------------------------------
# Upsampling


def _bilinear_matrix(size: int, scale: int, dtype: np.dtype) -> np.ndarray:
    """(size * scale, size) weights of half-pixel bilinear resizing along one axis:
    source ``(dst + 0.5) / scale - 0.5`` clamped to [0, size - 1]."""
    dst = np.arange(size * scale)
    src = np.clip((dst + 0.5) / scale - 0.5, 0, size - 1)
    low = np.floor(src).astype(np.intp)
    high = np.minimum(low + 1, size - 1)
    frac = src - low
    matrix = np.zeros((size * scale, size))
    np.add.at(matrix, (dst, low), 1 - frac)
    np.add.at(matrix, (dst, high), frac)
    return matrix.astype(dtype)


def _spatial_axes(channels_first: bool) -> Tuple[int, int]:
    return (2, 3) if channels_first else (1, 2)


def upsample2d(x: np.ndarray, size: Tuple[int, int], interpolation: str,
               channels_first: bool) -> np.ndarray:
    """'nearest' repeats each cell ``size`` times (Keras' UpSampling2D);
    'bilinear' applies the separable half-pixel weights of
    :func:`_bilinear_matrix` (``tf.image.resize(..., 'bilinear')``)."""
    ha, wa = _spatial_axes(channels_first)
    if interpolation == "nearest":
        return np.ascontiguousarray(np.repeat(np.repeat(x, size[0], axis=ha), size[1], axis=wa))
    rows = _bilinear_matrix(x.shape[ha], size[0], x.dtype)
    cols = _bilinear_matrix(x.shape[wa], size[1], x.dtype)
    y = np.moveaxis(np.tensordot(rows, x, axes=([1], [ha])), 0, ha)
    y = np.moveaxis(np.tensordot(cols, y, axes=([1], [wa])), 0, wa)
    return np.ascontiguousarray(y)


def upsample2d_backward(dy: np.ndarray, size: Tuple[int, int], interpolation: str,
                        channels_first: bool) -> np.ndarray:
    """The transpose of :func:`upsample2d` applied to ``dy``."""
    ha, wa = _spatial_axes(channels_first)
    h, w = dy.shape[ha] // size[0], dy.shape[wa] // size[1]
    if interpolation == "nearest":
        shape = list(dy.shape)
        shape[wa:wa + 1] = [w, size[1]]
        shape[ha:ha + 1] = [h, size[0]]
        return np.ascontiguousarray(dy.reshape(shape).sum(axis=(ha + 1, wa + 2)))
    rows = _bilinear_matrix(h, size[0], dy.dtype)
    cols = _bilinear_matrix(w, size[1], dy.dtype)
    dx = np.moveaxis(np.tensordot(rows.T, dy, axes=([1], [ha])), 0, ha)
    dx = np.moveaxis(np.tensordot(cols.T, dx, axes=([1], [wa])), 0, wa)
    return np.ascontiguousarray(dx)


# ---------------------------------------------------------------------------
# Dense and the optimizer step


def dense(x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray],
          relu: int = 0) -> np.ndarray:
    y = x @ kernel
    if bias is not None:
        y += bias
    _activate(y, relu)
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


def optimizer_update(rule: str, param: np.ndarray, grad: np.ndarray,
                     slots: List[np.ndarray], c: Dict[str, Any]) -> None:
    """One step of an optimizer ``rule`` in place, one NumPy operation at a
    time in the parameter's dtype (``fastconv.ops.optimizer_update`` lists the
    rules; ``c`` holds its coefficients as scalars of that dtype)."""
    lr, eps = c["learning_rate"], c["epsilon"]
    d1, om1 = c["decay_1"], c["one_minus_decay_1"]
    d2, om2 = c["decay_2"], c["one_minus_decay_2"]
    mom = c["momentum"]
    if rule == "sgd":
        param -= grad * lr
    elif rule in ("momentum", "nesterov"):
        lr_g = grad * lr
        velocity = slots[0]
        velocity *= mom
        velocity -= lr_g
        param += velocity * mom - lr_g if rule == "nesterov" else velocity
    elif rule in ("rmsprop", "rmsprop_centered"):
        ms = slots[0]
        ms *= d1
        ms += om1 * (grad * grad)
        denominator = ms
        if rule == "rmsprop_centered":
            mg = slots[1]
            mg *= d1
            mg += om1 * grad
            denominator = ms - mg * mg
        param -= lr * grad / (np.sqrt(denominator) + eps)
    elif rule in ("rmsprop_momentum", "rmsprop_momentum_centered"):
        ms = slots[0]
        ms += (grad * grad - ms) * om1
        if rule == "rmsprop_momentum_centered":
            mg = slots[2]
            mg += (grad - mg) * om1
            denominator = (ms - mg * mg) + eps
        else:
            denominator = ms + eps
        velocity = slots[1]
        velocity *= mom
        velocity += (grad * lr) / np.sqrt(denominator)
        param -= velocity
    elif rule == "adagrad":
        acc = slots[0]
        acc += grad * grad
        param -= lr * grad / (np.sqrt(acc) + eps)
    elif rule == "adadelta":
        acc, acc_delta = slots
        acc *= d1
        acc += grad * grad * om1
        update = np.sqrt(acc_delta + eps) / np.sqrt(acc + eps) * grad
        acc_delta *= d1
        acc_delta += update * update * om1
        param -= update * lr
    elif rule == "adamax":
        m, u = slots
        m *= d1
        m += om1 * grad
        np.maximum(u * d2, np.abs(grad), out=u)
        param -= lr * m / (u + eps)
    elif rule == "nadam":
        m, v = slots
        m *= d1
        m += om1 * grad
        v *= d2
        v += om2 * (grad * grad)
        m_bar = c["grad_coefficient"] * grad + c["m_coefficient"] * m
        param -= lr * m_bar / (np.sqrt(v / c["v_correction"]) + eps)
    else:  # pragma: no cover - ops checks the rule
        raise ValueError(f"unknown rule {rule!r}")
