/*
 * pool2d_impl.h: the max-pooling drivers for one element type (FC_T, names
 * through FCN), compiled twice by pool2d.c. No include guard, on purpose.
 */

int FCN(fc_max_pool2d_forward)(const fc_pool2d_params *p, const FC_T *x, FC_T *y)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (x == NULL || y == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t rows = p->n * p->out_h;
    const double work = (double)rows * (double)p->out_w * (double)(p->pool_h * p->pool_w) *
                        (double)p->c / 8.0;
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t r0, r1;
        fc_thread_range(rows, FC_TEAM_SIZE(), FC_THREAD_ID(), &r0, &r1);
        t->maxpool_fwd(p, x, y, r0, r1);
        fc_fpmode_leave(fp);
    }
    return FC_OK;
}

/* Zero the cells of dx that output row (img, oh) owns but no window covers:
 * the columns right of the last window, and below the last window row. Only
 * for pool == stride, where windows tile the input without overlap. */
static void FCN(zero_uncovered)(const fc_pool2d_params *p, FC_T *dx, int64_t img, int64_t oh)
{
    const int64_t c = p->c;
    const int64_t col_end = min64(p->out_w * p->stride_w - p->pad_left, p->w);
    const int64_t row_end = min64(p->out_h * p->stride_h - p->pad_top, p->h);
    const int64_t h0 = oh * p->stride_h - p->pad_top;
    const int64_t h_lo = h0 < 0 ? 0 : h0, h_hi = min64(h0 + p->pool_h, p->h);
    FC_T *image = dx + img * p->h * p->w * c;
    if (col_end < p->w)
        for (int64_t ih = h_lo; ih < h_hi; ++ih)
            memset(image + (ih * p->w + col_end) * c, 0,
                   (size_t)((p->w - col_end) * c) * sizeof(FC_T));
    if (oh == p->out_h - 1 && row_end < p->h)
        memset(image + row_end * p->w * c, 0, (size_t)((p->h - row_end) * p->w * c) * sizeof(FC_T));
}

int FCN(fc_max_pool2d_backward)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *x,
                           FC_T *dx)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (dy == NULL || x == NULL || dx == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t rows = p->n * p->out_h;
    const double work = (double)rows * (double)p->out_w * (double)(p->pool_h * p->pool_w) *
                        (double)p->c / 4.0;
    /* pool == stride: windows tile the input, each cell has one writer, and
     * threads can own output rows. Otherwise windows overlap (or leave gaps):
     * threads own (image, channel block) slabs of dx, zeroed and added into. */
    const int tiled = p->pool_h == p->stride_h && p->pool_w == p->stride_w;
    const int64_t cb = FC_POOL_CHANNEL_BLOCK;
    const int64_t nblocks = (p->c + cb - 1) / cb;
    const int64_t items = tiled ? rows : p->n * nblocks;
    const int nthreads = fc_pick_threads(p->n_threads, work, items);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        if (tiled) {
            t->maxpool_bwd(p, dy, x, dx, i0, i1, 0, p->c, 0);
            for (int64_t r = i0; r < i1; ++r)
                FCN(zero_uncovered)(p, dx, r / p->out_h, r % p->out_h);
        } else {
            for (int64_t item = i0; item < i1; ++item) {
                const int64_t img = item / nblocks;
                const int64_t c0 = (item - img * nblocks) * cb;
                const int64_t c1 = min64(c0 + cb, p->c);
                FC_T *slab = dx + img * p->h * p->w * p->c;
                for (int64_t q = 0; q < p->h * p->w; ++q)
                    memset(slab + q * p->c + c0, 0, (size_t)(c1 - c0) * sizeof(FC_T));
                t->maxpool_bwd(p, dy, x, dx, img * p->out_h, (img + 1) * p->out_h, c0, c1, 1);
            }
        }
        fc_fpmode_leave(fp);
    }
    return FC_OK;
}
