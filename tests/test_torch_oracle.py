"""An independent oracle: PyTorch (CPU) in float64, when it is installed.

TensorFlow's 'same' padding puts the extra row/column bottom/right, which
PyTorch's symmetric ``padding=`` cannot express, so the oracle pads explicitly.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from fastconv.shapes import conv2d_geometry, normalize_pair

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the oracle is optional")
F = torch.nn.functional


def _torch_conv(x, kernel, bias, strides, padding, dilation):
    s, d = normalize_pair(strides, "s"), normalize_pair(dilation, "d")
    g = conv2d_geometry(x.shape, kernel.shape[:2], kernel.shape[3], s, padding, d)
    xt = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_(True)
    kt = torch.tensor(kernel, dtype=torch.float64).permute(3, 2, 0, 1).requires_grad_(True)
    bt = torch.tensor(bias, dtype=torch.float64).requires_grad_(True)
    xp = F.pad(xt, (g.pad_left, g.pad_right, g.pad_top, g.pad_bottom))
    y = F.conv2d(xp, kt, bt, stride=s, dilation=d)
    return xt, kt, bt, y


CASES = [
    ((4, 28, 28, 32), (3, 3, 32, 64), 1, "valid", 1),
    ((4, 28, 28, 1), (3, 3, 1, 32), 1, "same", 1),
    ((2, 11, 10, 5), (3, 4, 5, 19), 2, "same", 1),
    ((2, 13, 12, 6), (3, 3, 6, 8), 1, "same", 2),
    ((3, 9, 9, 16), (1, 1, 16, 40), (2, 1), "valid", 1),
]


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,dilation", CASES)
def test_conv2d_matches_torch_float64(rng, x_shape, k_shape, strides, padding, dilation):
    x = rng.standard_normal(x_shape).astype(np.float32)
    kernel = rng.standard_normal(k_shape).astype(np.float32)
    bias = rng.standard_normal(k_shape[3]).astype(np.float32)
    kw = dict(strides=strides, padding=padding, dilation_rate=dilation)
    y = fc.conv2d(x, kernel, bias, **kw)
    xt, kt, bt, yt = _torch_conv(x, kernel, bias, strides, padding, dilation)
    y_ref = yt.permute(0, 2, 3, 1).detach().numpy()
    scale = np.abs(y_ref).max()
    assert np.abs(y - y_ref).max() <= 1e-5 * scale

    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64).permute(0, 3, 1, 2))
    dx, dk, db = fc.conv2d_backward(dy, x, kernel, **kw)
    refs = [(dx, xt.grad.permute(0, 2, 3, 1), 1e-5), (dk, kt.grad.permute(2, 3, 1, 0), 1e-4),
            (db, bt.grad, 1e-4)]
    for ours, theirs, tol in refs:
        theirs = theirs.numpy()
        assert np.abs(ours - theirs).max() <= tol * np.abs(theirs).max()


@pytest.mark.parametrize("x_shape,pool,strides,padding", [
    ((4, 26, 26, 64), 2, None, "valid"),
    ((2, 7, 9, 5), 2, None, "same"),
    ((2, 9, 8, 3), 3, 2, "valid"),
])
def test_max_pool_matches_torch(rng, x_shape, pool, strides, padding):
    x = rng.standard_normal(x_shape).astype(np.float32)
    kw = dict(pool_size=pool, strides=strides, padding=padding)
    y = fc.max_pool2d(x, **kw)
    p, s = normalize_pair(pool, "p"), normalize_pair(strides or pool, "s")
    g = conv2d_geometry(x.shape, p, x.shape[3], s, padding)
    xt = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_(True)
    xp = F.pad(xt, (g.pad_left, g.pad_right, g.pad_top, g.pad_bottom), value=-np.inf)
    yt = F.max_pool2d(xp, p, s)
    np.testing.assert_array_equal(y, yt.permute(0, 2, 3, 1).detach().numpy().astype(np.float32))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64).permute(0, 3, 1, 2))
    dx_ref = xt.grad.permute(0, 2, 3, 1).numpy()
    # Non-overlapping windows route each gradient to one cell: exact.
    np.testing.assert_array_equal(fc.max_pool2d_backward(dy, x, **kw), dx_ref.astype(np.float32))
