/*
 * pool2d.c: threading for the pooling family: max and average pooling,
 * global pooling and upsampling, NHWC and NCHW.
 *
 * Work splits so that every output element has one writer:
 * - window reductions (max and average forward, the nearest-upsampling
 *   backward as a sum pool): threads own output rows;
 * - max-pool backward: when windows tile the input (pool == stride) every
 *   cell has one window and threads own output rows (with the dx rows under
 *   them); otherwise threads own whole (image, channel block) slabs (NHWC)
 *   or (image, channel) planes (NCHW) of dx, zeroed and added into in
 *   row-major window order, so the scatter needs no atomics;
 * - average-pool and bilinear-upsampling backward gather: threads own dx
 *   rows, each cell summing what reads it in a fixed order;
 * - global pooling: threads own (image, channel block) or (image, channel)
 *   items, each reduced in one fixed order.
 * Within an item the order never depends on the thread count, so results are
 * bitwise identical for any number of threads.
 *
 * pool2d_impl.h holds the drivers, compiled here for float
 * (fc_max_pool2d_forward, ...) and double (fc_max_pool2d_forward_f64, ...).
 */
#include <string.h>

#include "fc_internal.h"

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
     * up to 2**24 (and average divisors are exact in float32 up to there). */
    if (win > (1 << 24))
        return FC_ERR_ARG;
    return FC_OK;
}

/* Global pooling reads only n, h, w, c (and the layout and thread count). */
static int check_global(const fc_pool2d_params *p)
{
    if (p == NULL)
        return FC_ERR_ARG;
    if (p->n < 0 || p->h < 1 || p->w < 1 || p->c < 0)
        return FC_ERR_ARG;
    const int64_t in = fc_mul(fc_mul(fc_mul(p->n, p->h), p->w), p->c);
    if (in < 0 || in > (INT64_MAX >> 4))
        return FC_ERR_OVERFLOW;
    return FC_OK;
}

static int check_upsample(const fc_upsample_params *p)
{
    if (p == NULL)
        return FC_ERR_ARG;
    if (p->n < 0 || p->h < 1 || p->w < 1 || p->c < 0 || p->size_h < 1 || p->size_w < 1)
        return FC_ERR_ARG;
    const int64_t out_h = fc_mul(p->h, p->size_h), out_w = fc_mul(p->w, p->size_w);
    const int64_t out = fc_mul(fc_mul(fc_mul(p->n, out_h), out_w), p->c);
    if (out_h < 0 || out_w < 0 || out < 0 || out_h > (INT64_MAX >> 4) ||
        out_w > (INT64_MAX >> 4) || out > (INT64_MAX >> 4))
        return FC_ERR_OVERFLOW;
    return FC_OK;
}

/* Real cells of the window of output (oh, ow). */
static int64_t window_cells(const fc_pool2d_params *p, int64_t oh, int64_t ow)
{
    const int64_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    const int64_t rows = min64(h0 + p->pool_h, p->h) - (h0 < 0 ? 0 : h0);
    const int64_t cols = min64(w0 + p->pool_w, p->w) - (w0 < 0 ? 0 : w0);
    return rows * cols;
}

/* Whether some window reaches past the input (so holds fewer real cells). */
static int windows_clipped(const fc_pool2d_params *p)
{
    return p->pad_top > 0 || p->pad_left > 0 ||
           (p->out_h - 1) * p->stride_h + p->pool_h - p->pad_top > p->h ||
           (p->out_w - 1) * p->stride_w + p->pool_w - p->pad_left > p->w;
}

/* Global average pooling asks for the block of the item this many items
 * ahead as it starts one (channels-last: an item is 64 channels of one
 * image, a short piece of every pixel). Measured (Zen 5, 1 thread,
 * 32x7x7x512, medians of 41 right after a cache sweep, 3 processes each):
 * average pooling 0.19-0.25 ms -> 0.14-0.16 with 2 items ahead (8 ahead
 * 0.14-0.26; after a warm-up call all read 0.08-0.12, and the layer bench's
 * row 0.99-1.23x PyTorch's time before, 1.01-1.14x after). Global max
 * pooling, asking alike, measured no different (0.19-0.28 ms before,
 * 0.19-0.23 after), so it does not. */
#ifndef FC_GSUM_AHEAD
#define FC_GSUM_AHEAD 2
#endif

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
