"""ctypes access to the C entry points (csrc/fastconv.h) inside the built
extension, for tests that must call the C API with parameters the Python
layer never produces (fuzz regressions, contract checks).

The extension exports the fc_* symbols; when a build hides them, `load()`
returns None and the tests that need it skip.
"""
from __future__ import annotations

import ctypes
from typing import Optional

import numpy as np

FC_OK, FC_ERR_ARG, FC_ERR_NOMEM, FC_ERR_OVERFLOW, FC_ERR_SIMD, FC_DECLINED = 0, -1, -2, -3, -4, -5
ERRORS = (FC_ERR_ARG, FC_ERR_NOMEM, FC_ERR_OVERFLOW)
SIMD = {"generic": 0, "avx2": 1, "avx512": 2}


class ConvParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "n", "h", "w", "c_in", "kh", "kw", "c_out", "out_h", "out_w", "stride_h", "stride_w",
        "dilation_h", "dilation_w", "pad_top", "pad_left")] + [
        ("relu", ctypes.c_int), ("n_threads", ctypes.c_int), ("groups", ctypes.c_int64),
        ("channels_first", ctypes.c_int)]


class PoolParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "n", "h", "w", "c", "pool_h", "pool_w", "out_h", "out_w", "stride_h", "stride_w",
        "pad_top", "pad_left")] + [("n_threads", ctypes.c_int), ("channels_first", ctypes.c_int),
                                   ("count_include_pad", ctypes.c_int)]


class UpsampleParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in ("n", "h", "w", "c", "size_h", "size_w")] + [
        ("bilinear", ctypes.c_int), ("channels_first", ctypes.c_int), ("n_threads", ctypes.c_int)]


_FLOAT_P = ctypes.POINTER(ctypes.c_float)


def load() -> Optional[ctypes.CDLL]:
    """The extension as a C library with typed fc_* functions, or None."""
    try:
        from fastconv import _kernels
    except ImportError:
        return None
    lib = ctypes.CDLL(_kernels.__file__)
    try:
        for name, params in (("fc_conv2d_forward", [ctypes.POINTER(ConvParams)] + [_FLOAT_P] * 4),
                             ("fc_conv2d_backward_input",
                              [ctypes.POINTER(ConvParams)] + [_FLOAT_P] * 3),
                             ("fc_conv2d_backward_kernel",
                              [ctypes.POINTER(ConvParams)] + [_FLOAT_P] * 4),
                             ("fc_max_pool2d_forward",
                              [ctypes.POINTER(PoolParams)] + [_FLOAT_P] * 2),
                             ("fc_max_pool2d_backward",
                              [ctypes.POINTER(PoolParams)] + [_FLOAT_P] * 3),
                             ("fc_depthwise_conv2d_forward",
                              [ctypes.POINTER(ConvParams)] + [_FLOAT_P] * 4),
                             ("fc_depthwise_conv2d_backward_input",
                              [ctypes.POINTER(ConvParams)] + [_FLOAT_P] * 3),
                             ("fc_depthwise_conv2d_backward_kernel",
                              [ctypes.POINTER(ConvParams)] + [_FLOAT_P] * 4),
                             ("fc_avg_pool2d_forward",
                              [ctypes.POINTER(PoolParams)] + [_FLOAT_P] * 2),
                             ("fc_avg_pool2d_backward",
                              [ctypes.POINTER(PoolParams)] + [_FLOAT_P] * 2),
                             ("fc_global_avg_pool2d",
                              [ctypes.POINTER(PoolParams)] + [_FLOAT_P] * 2),
                             ("fc_global_avg_pool2d_backward",
                              [ctypes.POINTER(PoolParams)] + [_FLOAT_P] * 2),
                             ("fc_global_max_pool2d",
                              [ctypes.POINTER(PoolParams)] + [_FLOAT_P] * 2),
                             ("fc_global_max_pool2d_backward",
                              [ctypes.POINTER(PoolParams)] + [_FLOAT_P] * 3),
                             ("fc_upsample2d_forward",
                              [ctypes.POINTER(UpsampleParams)] + [_FLOAT_P] * 2),
                             ("fc_upsample2d_backward",
                              [ctypes.POINTER(UpsampleParams)] + [_FLOAT_P] * 2),
                             ("fc_set_simd", [ctypes.c_int]), ("fc_get_simd", [])):
            fn = getattr(lib, name)
            fn.argtypes = params
            fn.restype = ctypes.c_int
    except AttributeError:  # symbols hidden in this build
        return None
    return lib


def ptr(array: Optional[np.ndarray]):
    """A float* to a float32 array's data (None: NULL)."""
    if array is None:
        return None
    assert array.dtype == np.float32 and array.flags.c_contiguous
    return array.ctypes.data_as(_FLOAT_P)


def floats(count: int, fill: float = 0.0) -> np.ndarray:
    """Exactly ``count`` float32 elements (no slack past the end)."""
    return np.full(count, fill, dtype=np.float32)


class NormParams(ctypes.Structure):
    _fields_ = [("outer", ctypes.c_int64), ("c", ctypes.c_int64), ("inner", ctypes.c_int64),
                ("n_threads", ctypes.c_int)]


def declare_fused_conv(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Types lib's fused and prepared-kernel convolution entry points."""
    conv_p, i64 = ctypes.POINTER(ConvParams), ctypes.c_int64
    for name, params, restype in (
            ("fc_conv2d_maxpool2x2_fuses", [conv_p], ctypes.c_int),
            ("fc_conv2d_forward_maxpool2x2", [conv_p] + [_FLOAT_P] * 4 + [i64, i64],
             ctypes.c_int),
            ("fc_conv2d_prepared_kernel_floats", [conv_p], i64),
            ("fc_conv2d_prepare_kernel", [conv_p] + [_FLOAT_P] * 2, ctypes.c_int),
            ("fc_conv2d_forward_prepared", [conv_p] + [_FLOAT_P] * 4 + [i64, i64],
             ctypes.c_int)):
        fn = getattr(lib, name)
        fn.argtypes = params
        fn.restype = restype
    return lib


def declare_batchnorm(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Types lib's float32 fc_batch_norm_* entry points; returns lib."""
    norm_p = ctypes.POINTER(NormParams)
    for name, params in (("fc_batch_norm_stats", [norm_p] + [_FLOAT_P] * 3),
                         ("fc_batch_norm_apply", [norm_p] + [_FLOAT_P] * 5 +
                          [ctypes.c_float, ctypes.c_int, _FLOAT_P]),
                         ("fc_batch_norm_backward", [norm_p] + [_FLOAT_P] * 5 +
                          [ctypes.c_float] + [_FLOAT_P] * 3)):
        fn = getattr(lib, name)
        fn.argtypes = params
        fn.restype = ctypes.c_int
    return lib
