/*
 * elementwise.c: parallel element-wise helpers of the training loop.
 *
 * ReLU's derivative, out = dy * (y > 0), in one pass: NumPy makes a boolean
 * mask, casts it and multiplies, single-threaded. Multiplying by 1 or 0 (not
 * selecting) keeps NumPy's results bit for bit: NaN * 0 is NaN, -1 * 0 is -0.
 */
#include <string.h>

#include "fc_internal.h"

/* y > 0 by its bits: 1 .. 0x7f800000 are exactly the floats above zero
 * (+inf included, NaN, zeros and negatives not). An integer test, because
 * GCC keeps a branch for a float comparison that may trap, and a branch on
 * a ReLU mask mispredicts half the time. */
static inline int positive(float y)
{
    uint32_t bits;
    memcpy(&bits, &y, sizeof bits);
    return bits - 1u < 0x7f800000u;
}

int fc_relu_backward(const float *FC_RESTRICT dy, const float *FC_RESTRICT y,
                     float *FC_RESTRICT out, int64_t n, int n_threads)
{
    if (n < 0 || (n > 0 && (dy == NULL || y == NULL || out == NULL)))
        return FC_ERR_ARG;
    const int64_t block = 1 << 16;
    const int64_t nblocks = (n + block - 1) / block;
    const int nthreads = fc_pick_threads(n_threads, (double)n / 4.0, nblocks);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
#endif
    for (int64_t b = 0; b < nblocks; ++b) {
        const int64_t end = (b + 1) * block < n ? (b + 1) * block : n;
        for (int64_t i = b * block; i < end; ++i)
            out[i] = dy[i] * (float)positive(y[i]);
    }
    return FC_OK;
}
