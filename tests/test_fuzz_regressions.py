"""The C API under parameters the Python layer never produces (issue 7).

- Every input that crashed the libFuzzer harness (fuzz/fuzz_kernels.c, run by
  tools/run_fuzz.sh) is kept in tests/data/fuzz_crashers/ and replayed here,
  decoded (manifest.json), through the exported fc_* functions.
- The contract of fastconv.h: invalid parameters and NULL buffers give a
  negative FC_ERR_* status, never a crash.

Each call runs in a child process: in a sanitizer build (tools/
run_sanitizers.sh, which also undoes CPython's -fwrapv so that signed overflow
is checked) an out-of-bounds access or undefined behaviour aborts the child
and fails the test; in a normal build a crash does.
"""
from __future__ import annotations

import json
import os

import pytest

import fc_capi
from reliability import result_lines, run_python

HERE = os.path.dirname(os.path.abspath(__file__))
CRASHERS = os.path.join(HERE, "data", "fuzz_crashers")

pytestmark = pytest.mark.skipif(fc_capi.load() is None,
                                reason="the extension does not export the fc_* C API")

with open(os.path.join(CRASHERS, "manifest.json")) as _f:
    MANIFEST = json.load(_f)["crashers"]

# The child: build exact-size buffers (NULL when too large), call, and check
# an FC_OK result against a direct loop over the definition.
REPLAY = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
import fc_capi as c

case = json.loads({case!r})
lib = c.load()
assert lib.fc_set_simd(c.SIMD[case["simd"]]) in (0, -4)
p = dict(case["params"])
LIMIT = 1 << 22

def count(*dims):
    total = 1
    for d in dims:
        if d < 0:
            return None
        total *= d
    return total

def buffer(n, rng, fill=None):
    if n is None or n > LIMIT:
        return None
    return (np.full(n, fill, np.float32) if fill is not None
            else rng.integers(-2, 3, n).astype(np.float32))

rng = np.random.default_rng(0)
op = case["op"]
if op.startswith("conv"):
    params = c.ConvParams(**p, n_threads=case["n_threads"])
    nx = count(p["n"], p["h"], p["w"], p["c_in"])
    ny = count(p["n"], p["out_h"], p["out_w"], p["c_out"])
    nk = count(p["kh"], p["kw"], p["c_in"], p["c_out"])
    x, dy, k = buffer(nx, rng), buffer(ny, rng), buffer(nk, rng)

    def taps():
        # (oh, ow, i, j, ih, iw) for every tap that lands inside the input:
        # the direct definition the three replays below sum over.
        for oh in range(p["out_h"]):
            for ow in range(p["out_w"]):
                for i in range(p["kh"]):
                    ih = oh * p["stride_h"] - p["pad_top"] + i * p["dilation_h"]
                    for j in range(p["kw"]):
                        iw = ow * p["stride_w"] - p["pad_left"] + j * p["dilation_w"]
                        if 0 <= ih < p["h"] and 0 <= iw < p["w"]:
                            yield oh, ow, i, j, ih, iw

    # (None: a buffer over LIMIT, passed as NULL; the call then fails.)
    X = None if x is None else x.reshape(p["n"], p["h"], p["w"], p["c_in"])
    K = None if k is None else k.reshape(p["kh"], p["kw"], p["c_in"], p["c_out"])
    D = None if dy is None else dy.reshape(p["n"], p["out_h"], p["out_w"], p["c_out"])
    if op == "conv2d_backward_input":
        dx = buffer(nx, rng, 12345.0)
        status = lib.fc_conv2d_backward_input(params, c.ptr(dy), c.ptr(k), c.ptr(dx))
        if status == 0:
            want = np.zeros((p["n"], p["h"], p["w"], p["c_in"]))
            for oh, ow, i, j, ih, iw in taps():
                want[:, ih, iw] += D[:, oh, ow] @ K[i, j].T
            np.testing.assert_array_equal(dx.reshape(want.shape), want)
    elif op == "conv2d_forward":
        y = buffer(ny, rng, 12345.0)
        status = lib.fc_conv2d_forward(params, c.ptr(x), c.ptr(k), None, c.ptr(y))
        if status == 0:
            want = np.zeros((p["n"], p["out_h"], p["out_w"], p["c_out"]))
            for oh, ow, i, j, ih, iw in taps():
                want[:, oh, ow] += X[:, ih, iw] @ K[i, j]
            if p["relu"]:
                want = np.maximum(want, 0)
            np.testing.assert_array_equal(y.reshape(want.shape), want)
    elif op == "conv2d_backward_kernel":
        dk, db = buffer(nk, rng, 12345.0), buffer(p["c_out"], rng, 12345.0)
        status = lib.fc_conv2d_backward_kernel(params, c.ptr(dy), c.ptr(x), c.ptr(dk),
                                               c.ptr(db))
        if status == 0:
            want = np.zeros((p["kh"], p["kw"], p["c_in"], p["c_out"]))
            for oh, ow, i, j, ih, iw in taps():
                want[i, j] += X[:, ih, iw].T @ D[:, oh, ow]
            np.testing.assert_array_equal(dk.reshape(want.shape), want)
            np.testing.assert_array_equal(db, D.sum(axis=(0, 1, 2)))
    else:
        raise SystemExit("op not replayed: " + op)
else:
    params = c.PoolParams(**p, n_threads=case["n_threads"])
    nx = count(p["n"], p["h"], p["w"], p["c"])
    ny = count(p["n"], p["out_h"], p["out_w"], p["c"])
    x, dy = buffer(nx, rng), buffer(ny, rng)
    if x is None or dy is None:
        x = dy = None
    if op == "max_pool2d_backward":
        dx = None if x is None else buffer(nx, rng, 12345.0)
        status = lib.fc_max_pool2d_backward(params, c.ptr(dy), c.ptr(x), c.ptr(dx))
    else:
        y = None if x is None else buffer(ny, rng, 12345.0)
        status = lib.fc_max_pool2d_forward(params, c.ptr(x), c.ptr(y))
    assert status != 0 or x is not None, "FC_OK with NULL buffers"
assert status in (0,) + c.ERRORS, status
print("RESULT", status)
"""


@pytest.mark.parametrize("case", MANIFEST, ids=[c["file"] for c in MANIFEST])
def test_fuzz_crasher_replays_cleanly(case):
    assert os.path.isfile(os.path.join(CRASHERS, case["file"])), "raw input missing"
    out = run_python(REPLAY.format(tests=os.path.dirname(__file__), case=json.dumps(case)),
                     timeout=120)
    (status,) = result_lines(out)
    assert int(status) in (fc_capi.FC_OK,) + fc_capi.ERRORS


CONTRACT = r"""
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import fc_capi as c

lib = c.load()
ok = dict(n=1, h=4, w=4, c_in=2, kh=3, kw=3, c_out=3, out_h=2, out_w=2, stride_h=1, stride_w=1,
          dilation_h=1, dilation_w=1, pad_top=0, pad_left=0, relu=0, n_threads=1)
x, k, y = c.floats(32, 1), c.floats(54, 1), c.floats(12)
dx, dk, db = c.floats(32), c.floats(54), c.floats(3)

def conv_all(params, x, k, y, dx, dk, db):
    return (lib.fc_conv2d_forward(params, c.ptr(x), c.ptr(k), None, c.ptr(y)),
            lib.fc_conv2d_backward_input(params, c.ptr(y), c.ptr(k), c.ptr(dx)),
            lib.fc_conv2d_backward_kernel(params, c.ptr(y), c.ptr(x), c.ptr(dk), c.ptr(db)))

assert conv_all(c.ConvParams(**ok), x, k, y, dx, dk, db) == (0, 0, 0)
assert (y == 18).all()
# no output channels: the input gradient is a sum over nothing (the path where
# the fuzzer's clang UBSan caught a NULL pointer offset; GCC's does not flag it)
none_out = c.floats(80, 7)   # 5 input channels: the GEMM path, not the few-channel one
assert lib.fc_conv2d_backward_input(c.ConvParams(**{{**ok, "c_in": 5, "c_out": 0}}),
                                    c.ptr(c.floats(1)), c.ptr(c.floats(1)),
                                    c.ptr(none_out)) == 0
assert (none_out == 0).all()
# a NULL parameter struct
assert lib.fc_conv2d_forward(None, c.ptr(x), c.ptr(k), None, c.ptr(y)) == c.FC_ERR_ARG
assert lib.fc_max_pool2d_forward(None, c.ptr(x), c.ptr(y)) == c.FC_ERR_ARG
# NULL buffers with valid parameters
assert set(conv_all(c.ConvParams(**ok), None, None, None, None, None, None)) == {{c.FC_ERR_ARG}}
# each field below its minimum, and sizes whose products overflow int64
for field, values in dict(n=[-1], h=[0, -5], w=[0], c_in=[-1], kh=[0], kw=[-1], c_out=[-1],
                          out_h=[0], out_w=[-3], stride_h=[0], stride_w=[-1], dilation_h=[0],
                          dilation_w=[-2], pad_top=[-1, 3, 2**62], pad_left=[-1, 3]).items():
    # (pads beyond the dilated kernel's reach, (3 - 1) * 1 here, break the contract)
    for value in values:
        bad = c.ConvParams(**dict(ok, **{{field: value}}))
        statuses = conv_all(bad, x, k, y, dx, dk, db)
        assert all(s in c.ERRORS for s in statuses), (field, value, statuses)
for field in ("n", "h", "c_out", "kh", "out_w", "stride_h", "dilation_w"):
    bad = c.ConvParams(**dict(ok, **{{field: 2**62}}))
    statuses = conv_all(bad, None, None, None, None, None, None)
    assert all(s in c.ERRORS for s in statuses), (field, statuses)

pool = dict(n=1, h=4, w=4, c=2, pool_h=2, pool_w=2, out_h=2, out_w=2, stride_h=2, stride_w=2,
            pad_top=0, pad_left=0, n_threads=1)
px, py, pdx = c.floats(32, 1), c.floats(8), c.floats(32)
assert lib.fc_max_pool2d_forward(c.PoolParams(**pool), c.ptr(px), c.ptr(py)) == 0
assert lib.fc_max_pool2d_backward(c.PoolParams(**pool), c.ptr(py), c.ptr(px), c.ptr(pdx)) == 0
for field, value in dict(n=-1, h=0, c=-1, pool_h=0, pool_w=-1, out_h=0, stride_w=0, pad_top=-1,
                         pad_left=2, out_w=3).items():
    # pad_left=2 == pool_w and out_w=3 leave windows without a real cell
    bad = c.PoolParams(**dict(pool, **{{field: value}}))
    assert lib.fc_max_pool2d_forward(bad, c.ptr(px), c.ptr(py)) in c.ERRORS, field
    assert lib.fc_max_pool2d_backward(bad, c.ptr(py), c.ptr(px), c.ptr(pdx)) in c.ERRORS, field
assert lib.fc_max_pool2d_forward(c.PoolParams(**pool), None, None) == c.FC_ERR_ARG
assert lib.fc_max_pool2d_backward(c.PoolParams(**pool), None, None, None) == c.FC_ERR_ARG
# SIMD selection
previous = lib.fc_get_simd()
for bad in (-1, 3, 99, 2**31 - 1):
    assert lib.fc_set_simd(bad) == c.FC_ERR_SIMD
assert lib.fc_get_simd() == previous
print("RESULT ok")
"""


def test_c_contract_errors_instead_of_crashes():
    out = run_python(CONTRACT.format(tests=os.path.dirname(__file__)), timeout=120)
    assert result_lines(out) == ["ok"]
