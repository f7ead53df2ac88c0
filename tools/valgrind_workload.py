"""A small forward/backward of every op for tools/run_valgrind.sh.

Each op runs on every SIMD path usable under valgrind (valgrind hides
AVX-512 from CPUID, so auto-dispatch picks AVX2), with 1 and 2 threads, on
shapes that reach the special paths (first-layer gather, strides, 'same'
padding, channel tails, overlapping pool windows, several GEMM panels), and
is checked against the NumPy backend: a kernel that left an output element
unwritten would make valgrind report the comparison as a use of
uninitialised memory.
"""
import numpy as np

import fastconv as fc
from fastconv import _kernels


def check(got, want, what):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        if g is None:
            continue
        scale = max(float(np.max(np.abs(w))), 1e-30) if w.size else 1.0
        err = float(np.max(np.abs(g - w))) if w.size else 0.0
        if not err <= 1e-4 * scale:
            raise SystemExit(f"{what}: max error {err} (scale {scale})")


def both(fn, *args, **kwargs):
    got = fn(*args, **kwargs)
    with fc.use_backend("numpy"):
        want = fn(*args, **kwargs)
    return got, want


def main():
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    paths = _kernels.simd_supported()
    print("SIMD paths under valgrind:", paths)
    for simd in paths:
        _kernels.set_simd(simd)
        for threads in (1, 2):
            fc.set_num_threads(threads)
            tag = f"{simd}/{threads}t"
            # conv: the few-channel paths (own forward loop, im2col weight
            # gradient) and the tap path, forward and backward
            for c_in, strides, padding in ((1, 1, "same"), (3, 2, "same"), (13, 1, "valid"),
                                           (13, 2, "same")):
                x, k, b = r(2, 9, 10, c_in), r(3, 3, c_in, 21), r(21)
                check(*both(fc.conv2d, x, k, b, strides=strides, padding=padding,
                            activation="relu"), f"{tag} conv2d c_in={c_in}")
                dy = r(*fc.conv2d(x, k, strides=strides, padding=padding).shape)
                check(*both(fc.conv2d_backward, dy, x, k, strides=strides, padding=padding),
                      f"{tag} conv2d_backward c_in={c_in}")
            # Winograd F(2x2, 3x3) forward, backward-input and weight gradient
            # (3x3, stride 1, 16+ channels; odd sizes leave partial tiles),
            # and its direct fallback when an output is not finite
            for padding in ("same", "valid"):
                x, k, b = r(2, 7, 9, 17), r(3, 3, 17, 20), r(20)
                check(*both(fc.conv2d, x, k, b, padding=padding, activation="relu"),
                      f"{tag} winograd conv2d {padding}")
                dy = r(*fc.conv2d(x, k, padding=padding).shape)
                check(*both(fc.conv2d_backward, dy, x, k, padding=padding),
                      f"{tag} winograd conv2d_backward {padding}")
            x[0, 3, 4, 5] = np.inf
            assert not np.isfinite(fc.conv2d(x, k, padding="same")).all()
            y = r(3, 5, 7)
            check(*both(fc.relu_backward, r(3, 5, 7), y), f"{tag} relu_backward")
            # Adam, plain and AMSGrad: in place, so each backend gets copies
            state = [r(5, 7), r(5, 7), r(5, 7), np.abs(r(5, 7)), np.abs(r(5, 7))]
            for vhat in (False, True):
                runs = []
                for backend in ("c", "numpy"):
                    p, g, m, v, h = (a.copy() for a in state)
                    with fc.use_backend(backend):
                        fc.adam_update(p, g, m, v, alpha=0.01, beta_1=0.9, beta_2=0.999,
                                       epsilon=1e-7, vhat=h if vhat else None)
                    runs.append((p, m, v, h))
                check(runs[0], runs[1], f"{tag} adam_update vhat={vhat}")
            # several output panels and dilation
            x, k = r(1, 8, 8, 8), r(3, 3, 8, 70)
            check(*both(fc.conv2d, x, k, dilation_rate=2, padding="same"), f"{tag} dilated")
            x, k = r(1, 8, 9, 2), r(3, 3, 2, 70)   # few channels: one tap per (i, j)
            check(*both(fc.conv2d, x, k, dilation_rate=2, padding="same"),
                  f"{tag} dilated few-channel")
            # pooling: tiled, overlapping, 'same' padding, channel tails
            for pool, strides, padding in ((2, None, "valid"), (3, 2, "same"), (3, 1, "valid")):
                x = r(2, 7, 8, 19)
                check(*both(fc.max_pool2d, x, pool, strides, padding), f"{tag} max_pool2d")
                dy = r(*fc.max_pool2d(x, pool, strides, padding).shape)
                check(*both(fc.max_pool2d_backward, dy, x, pool, strides, padding),
                      f"{tag} max_pool2d_backward")
            # dense
            x, k, b = r(5, 37), r(37, 23), r(23)
            check(*both(fc.dense, x, k, b, activation="relu"), f"{tag} dense")
            check(*both(fc.dense_backward, r(5, 23), x, k), f"{tag} dense_backward")
    fc.set_num_threads(None)
    # a tiny model, forward and backward, through the layer API
    from fastconv.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
    from fastconv.models import Model
    inputs = Input((8, 8, 1))
    h = MaxPooling2D(2)(Conv2D(4, 3, padding="same", activation="relu")(inputs))
    model = Model(inputs, Dense(3, activation="softmax")(Flatten()(h)))
    x = r(4, 8, 8, 1)
    model.forward(x)
    grads = model.backward(r(4, 3))
    assert len(grads) == 4
    # the caching allocator (NumPy's allocator inside predict and fit)
    big = r(256, 8, 8, 1)
    for _ in range(3):
        assert model.predict(big, batch_size=128).shape == (256, 3)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(big, rng.integers(0, 3, 256), batch_size=64, epochs=1, verbose=0)
    print("valgrind workload done")


if __name__ == "__main__":
    main()
