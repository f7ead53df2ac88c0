"""Smoke test of an installed fastconv (a wheel in a fresh environment).

Run it from a directory where the source tree is not importable:

    cd "$(mktemp -d)" && python /path/to/tools/smoke_test.py

It checks that the compiled extension imports, that OpenMP is on and which
SIMD path runs, that conv2d / conv2d_backward / max_pool2d agree with a plain
NumPy computation written here (not fastconv's own reference backend), that
1 and 2 threads give bitwise identical results, and that the typing files and
license files are installed. Exit status 0 means every check passed.

FASTCONV_SKIP_OPENMP_TEST=1 accepts a build without OpenMP (a deliberate
serial build); nothing else is optional.
"""
from __future__ import annotations

import os
import sys
from typing import List, Tuple

import numpy as np

FAILURES: List[str] = []


def check(condition: bool, what: str) -> None:
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        FAILURES.append(what)


def same_pads(size: int, k: int, s: int, d: int) -> Tuple[int, int, int]:
    """TensorFlow 'same' padding: (out, pad_before, pad_after)."""
    ke = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + ke - size, 0)
    return out, total // 2, total - total // 2


def numpy_conv2d(x, w, b, stride, dilation, padding):
    """Direct NHWC/HWIO convolution in float64 (one einsum per kernel tap)."""
    n, h, wd, _ = x.shape
    kh, kw, _, cout = w.shape
    if padding == "same":
        oh, pt, pb = same_pads(h, kh, stride, dilation)
        ow, pl, pr = same_pads(wd, kw, stride, dilation)
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    else:
        oh = (h - ((kh - 1) * dilation + 1)) // stride + 1
        ow = (wd - ((kw - 1) * dilation + 1)) // stride + 1
    y = np.zeros((n, oh, ow, cout))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i * dilation: i * dilation + (oh - 1) * stride + 1: stride,
                      j * dilation: j * dilation + (ow - 1) * stride + 1: stride, :]
            y += np.einsum("nhwc,co->nhwo", patch, w[i, j])
    return y + (0 if b is None else b)


def numpy_conv2d_backward(dy, x, w):
    """Valid, stride 1, dilation 1: (dx, dw, db) in float64."""
    kh, kw = w.shape[:2]
    oh, ow = dy.shape[1:3]
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + oh, j:j + ow, :]
            dw[i, j] = np.einsum("nhwc,nhwo->co", patch, dy)
            dx[:, i:i + oh, j:j + ow, :] += np.einsum("nhwo,co->nhwc", dy, w[i, j])
    return dx, dw, dy.sum(axis=(0, 1, 2))


def close(a, b, rtol=1e-4) -> bool:
    a = np.asarray(a, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))), 1e-30)
    return a.shape == b.shape and float(np.max(np.abs(a - b))) <= rtol * scale


def main() -> int:
    import fastconv as fc

    where = os.path.dirname(os.path.abspath(fc.__file__))
    print(f"fastconv {fc.__version__} from {where}")
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}")
    check(os.path.isfile(os.path.join(where, "__init__.py")), "fastconv imports")
    src_tree = os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(where)), "setup.py"))
    check(not src_tree, "fastconv is imported from an installation, not a source tree")

    from fastconv import _kernels
    check(True, f"compiled extension imports: {os.path.basename(_kernels.__file__)}")

    print("--- fastconv.show_config() ---")
    fc.show_config()
    print("------------------------------")
    info = fc.show_config("dicts")
    assert info is not None
    check(info.get("compiled") is True, "show_config: compiled extension")
    if os.environ.get("FASTCONV_SKIP_OPENMP_TEST") == "1":
        print(f"skip  OpenMP required (FASTCONV_SKIP_OPENMP_TEST=1); openmp={info.get('openmp')}")
    else:
        check(info.get("openmp") is True, "show_config: openmp True")
    check(info.get("simd") in info.get("simd_available", []),
          f"show_config: SIMD path {info.get('simd')!r} is one of {info.get('simd_available')}")
    check(isinstance(info.get("num_threads"), int) and info["num_threads"] >= 1,
          f"show_config: num_threads = {info.get('num_threads')}")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 13, 11, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 17)).astype(np.float32)
    b = rng.standard_normal(17).astype(np.float32)
    for padding, stride, dilation in (("valid", 1, 1), ("same", 2, 1), ("same", 1, 2)):
        y = fc.conv2d(x, w, b, strides=stride, dilation_rate=dilation, padding=padding)
        ref = numpy_conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                           stride, dilation, padding)
        check(y.dtype == np.float32 and close(y, ref),
              f"conv2d {padding} stride={stride} dilation={dilation} == NumPy {ref.shape}")
    y = fc.conv2d(x, w, b, activation="relu")
    check(close(y, np.maximum(numpy_conv2d(x.astype(np.float64), w.astype(np.float64),
                                           b.astype(np.float64), 1, 1, "valid"), 0)),
          "conv2d with fused relu == NumPy")

    dy = rng.standard_normal((3, 11, 9, 17)).astype(np.float32)
    dx, dw, db = fc.conv2d_backward(dy, x, w)
    rdx, rdw, rdb = numpy_conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                          w.astype(np.float64))
    check(close(dx, rdx) and close(dw, rdw) and close(db, rdb),
          "conv2d_backward (dx, dkernel, dbias) == NumPy")

    p = fc.max_pool2d(x[:, :12, :10], 2)
    rp = x[:, :12, :10].reshape(3, 6, 2, 5, 2, 5).max(axis=(2, 4))
    check(np.array_equal(p, rp), "max_pool2d == NumPy")

    big_x = rng.standard_normal((8, 28, 28, 32)).astype(np.float32)
    big_w = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    previous = fc.set_num_threads(1)
    one = fc.conv2d(big_x, big_w)
    fc.set_num_threads(2)
    two = fc.conv2d(big_x, big_w)
    fc.set_num_threads(previous)
    check(np.array_equal(one, two), "conv2d: 1 and 2 threads give bitwise identical results")

    for name in ("py.typed", "_kernels.pyi"):
        check(os.path.isfile(os.path.join(where, name)), f"{name} is installed")
    try:
        from importlib.metadata import files
        installed = [str(f) for f in (files("fastconv") or [])]
    except Exception as exc:  # no metadata: not installed as a distribution
        installed = []
        print(f"      (no distribution metadata: {exc})")
    for name in ("LICENSE", "GCC_RUNTIME_LIBRARY_EXCEPTION.txt", "THIRD_PARTY_NOTICES.txt"):
        check(any(f.endswith(name) for f in installed), f"license file {name} is installed")

    print(f"\n{'FAILED: ' + str(len(FAILURES)) + ' check(s)' if FAILURES else 'all checks passed'}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
