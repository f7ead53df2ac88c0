/*
 * pool2d.c: threading for max pooling.
 *
 * Forward: threads own whole output rows. Backward: when windows tile the
 * input (pool == stride) every cell has one window and threads own output
 * rows; otherwise threads own whole (image, channel block) slabs of dx, so
 * the scatter into overlapping windows never has two threads writing the
 * same element and needs no atomics. Within a slab the order is fixed, so
 * results do not depend on the thread count.
 *
 * pool2d_impl.h holds the drivers, compiled here for float
 * (fc_max_pool2d_forward, ...) and double (fc_max_pool2d_forward_f64, ...).
 */
#include <string.h>

#include "fc_internal.h"

/* Channels per backward work item (whole slabs of dx per thread). */
#define FC_POOL_CHANNEL_BLOCK 64

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int check_params(const fc_pool2d_params *p)
{
    if (p == NULL)
        return FC_ERR_ARG;
    if (p->n < 0 || p->h < 1 || p->w < 1 || p->c < 0 || p->pool_h < 1 || p->pool_w < 1 ||
        p->out_h < 1 || p->out_w < 1 || p->stride_h < 1 || p->stride_w < 1 ||
        p->pad_top < 0 || p->pad_left < 0)
        return FC_ERR_ARG;
    const int64_t in = fc_mul(fc_mul(fc_mul(p->n, p->h), p->w), p->c);
    const int64_t out = fc_mul(fc_mul(fc_mul(p->n, p->out_h), p->out_w), p->c);
    const int64_t win = fc_mul(p->pool_h, p->pool_w);
    const int64_t span_h = fc_mul(p->out_h - 1, p->stride_h);
    const int64_t span_w = fc_mul(p->out_w - 1, p->stride_w);
    if (in < 0 || out < 0 || win < 0 || span_h < 0 || span_w < 0 || in > (INT64_MAX >> 4) ||
        out > (INT64_MAX >> 4) || span_h > (INT64_MAX >> 4) || span_w > (INT64_MAX >> 4))
        return FC_ERR_OVERFLOW;
    /* Every window must hold at least one real cell. */
    if (p->pad_top >= p->pool_h || p->pad_left >= p->pool_w || span_h - p->pad_top >= p->h ||
        span_w - p->pad_left >= p->w)
        return FC_ERR_ARG;
    /* The backward kernels number a window's cells in float32 lanes, exact
     * up to 2**24. */
    if (win > (1 << 24))
        return FC_ERR_ARG;
    return FC_OK;
}

#define FC_T float
#define FCN(name) name
#include "pool2d_impl.h"
#undef FC_T
#undef FCN

#define FC_T double
#define FCN(name) name##_f64
#include "pool2d_impl.h"
#undef FC_T
#undef FCN
