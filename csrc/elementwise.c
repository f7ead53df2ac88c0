/*
 * elementwise.c: parallel element-wise helpers of the training loop.
 *
 * ReLU, y = np.maximum(x, 0), in one pass: NumPy's maximum takes its
 * NaN-propagating loop, 4x a copy's time (0.18 ms for ResNet-20's 2 MB
 * activations, 19 per training step), single-threaded.
 *
 * ReLU's derivative, out = dy * (y > 0), in one pass: NumPy makes a boolean
 * mask, casts it and multiplies, single-threaded. Multiplying by 1 or 0 (not
 * selecting) keeps NumPy's results bit for bit: NaN * 0 is NaN, -1 * 0 is -0.
 *
 * Adam's update in one pass over the four arrays, where NumPy makes eight
 * passes and as many temporaries (measured: 3.6 ms of a seed-CNN step), and
 * the other optimizers' rules likewise (fc_optimizer_update: Nadam's step on
 * the seed CNN's weights went from 8.8 to 0.7 ms at 2 threads).
 *
 * All exist for float (fc_relu_forward, ...) and double (..._f64), from
 * elementwise_impl.h.
 */
#include <math.h>
#include <string.h>

#include "fc_internal.h"

/* The optimizer updates repeat NumPy's operations one rounding at a time;
 * contracting a * b + c into an FMA would change last bits. */
#if defined(__clang__)
#define FC_NO_CONTRACT _Pragma("clang fp contract(off)")
#define FC_NO_CONTRACT_FN
#elif defined(__GNUC__)
#define FC_NO_CONTRACT
#define FC_NO_CONTRACT_FN __attribute__((optimize("fp-contract=off")))
#else
#define FC_NO_CONTRACT
#define FC_NO_CONTRACT_FN
#endif

/* y > 0 by its bits: 1 .. +inf's bits are exactly the values above zero
 * (+inf included, NaN, zeros and negatives not). An integer test, because
 * GCC keeps a branch for a float comparison that may trap, and a branch on
 * a ReLU mask mispredicts half the time. */
static inline int positive(float y)
{
    uint32_t bits;
    memcpy(&bits, &y, sizeof bits);
    return bits - 1u < 0x7f800000u;
}

static inline int positive_f64(double y)
{
    uint64_t bits;
    memcpy(&bits, &y, sizeof bits);
    return bits - 1u < 0x7ff0000000000000ull;
}

/* np.maximum(x, 0) by its bits: x itself above zero (+inf included) and
 * for any NaN (payload and sign kept, as NumPy keeps them), +0 otherwise
 * (-0 included, as NumPy gives). Integer operations only, so the loop has
 * no branch and vectorizes; the sign bit set and bits above -inf's is a
 * negative NaN. */
static inline float relu_value(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint32_t keep = (uint32_t)((int32_t)bits > 0) | (uint32_t)(bits > 0xff800000u);
    bits &= 0u - keep;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static inline double relu_value_f64(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint64_t keep = (uint64_t)((int64_t)bits > 0)
                          | (uint64_t)(bits > 0xfff0000000000000ull);
    bits &= 0ull - keep;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* np.maximum(a, b): NaN when either is NaN. */
#define MAX_NAN(a, b) (((a) != (a) || (a) >= (b)) ? (a) : (b))

#define FC_T float
#define FCN(name) name
#define FC_SQRT sqrtf
#include "elementwise_impl.h"
#undef FC_T
#undef FCN
#undef FC_SQRT

#define FC_T double
#define FCN(name) name##_f64
#define FC_SQRT sqrt
#include "elementwise_impl.h"
#undef FC_T
#undef FCN
#undef FC_SQRT
