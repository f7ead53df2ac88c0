/*
 * pool2d.c: threading for max pooling.
 *
 * Forward: threads own whole output rows. Backward: threads own whole
 * (image, channel block) slabs of dx, so the scatter of gradients into
 * overlapping windows never has two threads writing the same element and
 * needs no atomics; within a slab the order is fixed, so results do not
 * depend on the thread count.
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
    /* Every window must hold at least one real cell. */
    if (p->pad_top >= p->pool_h || p->pad_left >= p->pool_w ||
        (p->out_h - 1) * p->stride_h - p->pad_top >= p->h ||
        (p->out_w - 1) * p->stride_w - p->pad_left >= p->w)
        return FC_ERR_ARG;
    const int64_t in = fc_mul(fc_mul(fc_mul(p->n, p->h), p->w), p->c);
    const int64_t out = fc_mul(fc_mul(fc_mul(p->n, p->out_h), p->out_w), p->c);
    const int64_t win = fc_mul(p->pool_h, p->pool_w);
    if (in < 0 || out < 0 || win < 0 || win > (1 << 30) || in > (INT64_MAX >> 4))
        return FC_ERR_OVERFLOW;
    return FC_OK;
}

/* Pointers to the real cells of the window of output (img, oh, ow), in
 * row-major order, offset by `offset` floats; returns their number. */
static int64_t window_cells(const fc_pool2d_params *p, const float *base, int64_t img,
                            int64_t oh, int64_t ow, int64_t offset, const float **cells)
{
    const int64_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    int64_t n = 0;
    for (int64_t ih = h0 < 0 ? 0 : h0; ih < min64(h0 + p->pool_h, p->h); ++ih)
        for (int64_t iw = w0 < 0 ? 0 : w0; iw < min64(w0 + p->pool_w, p->w); ++iw)
            cells[n++] = base + ((img * p->h + ih) * p->w + iw) * p->c + offset;
    return n;
}

int fc_max_pool2d_forward(const fc_pool2d_params *p, const float *x, float *y)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (x == NULL || y == NULL)
        return FC_ERR_ARG;
    const fc_kernel_table *t = fc_active_kernels();
    const int64_t rows = p->n * p->out_h;
    const int64_t win = p->pool_h * p->pool_w;
    const double work = (double)rows * (double)p->out_w * (double)win * (double)p->c / 8.0;
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);
    const float **cells = (const float **)fc_calloc(win * nthreads, sizeof(float *));
    if (cells == NULL)
        return FC_ERR_NOMEM;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        const float **mine = cells + win * tid;
        int64_t r0, r1;
        fc_thread_range(rows, nthreads, tid, &r0, &r1);
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t img = r / p->out_h, oh = r - img * p->out_h;
            for (int64_t ow = 0; ow < p->out_w; ++ow) {
                const int64_t n = window_cells(p, x, img, oh, ow, 0, mine);
                t->maxpool_fwd(mine, n, p->c, y + (r * p->out_w + ow) * p->c);
            }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(cells);
    return FC_OK;
}

int fc_max_pool2d_backward(const fc_pool2d_params *p, const float *dy, const float *x,
                           float *dx)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (dy == NULL || x == NULL || dx == NULL)
        return FC_ERR_ARG;
    const fc_kernel_table *t = fc_active_kernels();
    const int64_t win = p->pool_h * p->pool_w;
    const int64_t cb = FC_POOL_CHANNEL_BLOCK;
    const int64_t nblocks = (p->c + cb - 1) / cb;
    const int64_t items = p->n * nblocks;
    const double work = (double)p->n * (double)(p->out_h * p->out_w) * (double)win *
                        (double)p->c / 4.0;
    const int nthreads = fc_pick_threads(p->n_threads, work, items);
    /* Per thread: window pointers into x and dx, then best (floats) and idx. */
    const int64_t per_thread = 2 * win + cb;
    void **scratch = (void **)fc_calloc(per_thread * nthreads, sizeof(void *));
    if (scratch == NULL)
        return FC_ERR_NOMEM;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        void **mine = scratch + per_thread * tid;
        const float **cells = (const float **)mine;
        float **dcells = (float **)(mine + win);
        float *best = (float *)(mine + 2 * win);
        int32_t *idx = (int32_t *)(best + cb);
        int64_t i0, i1;
        fc_thread_range(items, nthreads, tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t img = item / nblocks;
            const int64_t c0 = (item - img * nblocks) * cb;
            const int64_t nc = min64(cb, p->c - c0);
            float *slab = dx + img * p->h * p->w * p->c + c0;
            for (int64_t q = 0; q < p->h * p->w; ++q)
                memset(slab + q * p->c, 0, (size_t)nc * sizeof(float));
            for (int64_t oh = 0; oh < p->out_h; ++oh)
                for (int64_t ow = 0; ow < p->out_w; ++ow) {
                    const int64_t n = window_cells(p, x, img, oh, ow, c0, cells);
                    window_cells(p, dx, img, oh, ow, c0, (const float **)dcells);
                    const float *g = dy + ((img * p->out_h + oh) * p->out_w + ow) * p->c + c0;
                    t->maxpool_bwd(cells, dcells, n, nc, g, best, idx);
                }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    return FC_OK;
}
