/*
 * pool2d_impl.h: the pooling-family drivers for one element type (FC_T,
 * names through FCN), compiled twice by pool2d.c. No include guard, on
 * purpose.
 */

/* Values per pixel row of a layout: c for NHWC rows (w * c values), 1 for
 * NCHW rows (w values, one row per image and channel). */
#define FC_ROWS_PER_IMAGE(p, rows) ((p)->channels_first ? (p)->c * (rows) : (rows))

/* ---------------------------------------------------------------------------
 * Max pooling.
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
    const int64_t rows = p->n * FC_ROWS_PER_IMAGE(p, p->out_h);
    const double work = (double)(p->n * p->out_h) * (double)p->out_w *
                        (double)(p->pool_h * p->pool_w) * (double)p->c / 8.0;
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(rows, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        t->pool_reduce(p, FC_POOL_MAX, x, y, i0, i1);
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
        memset(image + row_end * p->w * c, 0,
               (size_t)((p->h - row_end) * p->w * c) * sizeof(FC_T));
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
    const int64_t rows = p->n * FC_ROWS_PER_IMAGE(p, p->out_h);
    const double work = (double)(p->n * p->out_h) * (double)p->out_w *
                        (double)(p->pool_h * p->pool_w) * (double)p->c / 4.0;
    /* pool == stride: windows tile the input, each cell has one writer, and
     * threads can own output rows. Otherwise windows overlap (or leave gaps):
     * threads own (image, channel block) slabs (NHWC) or (image, channel)
     * planes (NCHW) of dx, zeroed and added into. */
    const int tiled = p->pool_h == p->stride_h && p->pool_w == p->stride_w;

    if (p->channels_first) {
        const int64_t planes = p->n * p->c, plane = p->h * p->w;
        const int64_t items = tiled ? rows : planes;
        const int nthreads = fc_pick_threads(p->n_threads, work, items);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
        {
            const unsigned fp = fc_fpmode_enter();
            int64_t i0, i1;
            fc_thread_range(items, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
            if (tiled) {
                t->maxpool_bwd_nchw(p, dy, x, dx, i0, i1, 1);
            } else {
                for (int64_t i = i0; i < i1; ++i) {
                    memset(dx + i * plane, 0, (size_t)plane * sizeof(FC_T));
                    t->maxpool_bwd_nchw(p, dy, x, dx, i * p->out_h, (i + 1) * p->out_h, 0);
                }
            }
            fc_fpmode_leave(fp);
        }
        return FC_OK;
    }

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

/* ---------------------------------------------------------------------------
 * Average pooling.
 */

int FCN(fc_avg_pool2d_forward)(const fc_pool2d_params *p, const FC_T *x, FC_T *y)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (x == NULL || y == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t rows = p->n * FC_ROWS_PER_IMAGE(p, p->out_h);
    const double work = (double)(p->n * p->out_h) * (double)p->out_w *
                        (double)(p->pool_h * p->pool_w) * (double)p->c / 8.0;
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(rows, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        t->pool_reduce(p, FC_POOL_AVG, x, y, i0, i1);
        fc_fpmode_leave(fp);
    }
    return FC_OK;
}

int FCN(fc_avg_pool2d_backward)(const fc_pool2d_params *p, const FC_T *dy, FC_T *dx)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (dy == NULL || dx == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t rows = p->n * FC_ROWS_PER_IMAGE(p, p->h);
    const double work = (double)(p->n * p->out_h) * (double)p->out_w *
                        (double)(p->pool_h * p->pool_w) * (double)p->c / 4.0;
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);

    /* 1 / divisor: one for all windows, or a table when border windows hold
     * fewer real cells and those count. */
    const FC_T rdiv1 = (FC_T)1 / (FC_T)(p->pool_h * p->pool_w);
    FC_T *rdiv = NULL;
    if (!p->count_include_pad && windows_clipped(p)) {
        rdiv = (FC_T *)fc_malloc(fc_mul(p->out_h, p->out_w), sizeof(FC_T));
        if (rdiv == NULL)
            return FC_ERR_NOMEM;
        for (int64_t oh = 0; oh < p->out_h; ++oh)
            for (int64_t ow = 0; ow < p->out_w; ++ow)
                rdiv[oh * p->out_w + ow] = (FC_T)1 / (FC_T)window_cells(p, oh, ow);
    }
    /* NCHW stride-1 rows: a zero-padded scaled dy row per thread. */
    const int64_t row_len = p->w + p->pad_left + p->pool_w;
    FC_T *scratch = NULL;
    if (p->channels_first && p->stride_w == 1) {
        scratch = (FC_T *)fc_malloc(fc_mul(row_len, nthreads), sizeof(FC_T));
        if (scratch == NULL) {
            fc_free(rdiv);
            return FC_ERR_NOMEM;
        }
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(rows, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        FC_T *mine = scratch != NULL ? scratch + FC_THREAD_ID() * row_len : NULL;
        t->avgpool_bwd(p, dy, rdiv, rdiv1, dx, i0, i1, mine);
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    fc_free(rdiv);
    return FC_OK;
}

/* ---------------------------------------------------------------------------
 * Global pooling: NHWC items are (image, channel block), NCHW items are
 * (image, channel) planes.
 */

/* Asks for the block of NHWC item `item` (image, channel block): a short
 * strided piece of every pixel (FC_GSUM_AHEAD). */
static void FCN(prefetch_global_item)(const fc_pool2d_params *p, const FC_T *x, int64_t item)
{
    const int64_t hw = p->h * p->w, c = p->c, cb = FC_POOL_CHANNEL_BLOCK;
    const int64_t nblocks = (c + cb - 1) / cb, img = item / nblocks;
    const int64_t c0 = (item - img * nblocks) * cb;
    const FC_T *block = x + img * hw * c + c0;
    for (int64_t r = 0; r < hw; ++r)
        fc_prefetch_bytes(block + r * c, (min64(c0 + cb, c) - c0) * (int64_t)sizeof(FC_T));
}

int FCN(fc_global_avg_pool2d)(const fc_pool2d_params *p, const FC_T *x, FC_T *y)
{
    int status = check_global(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (x == NULL || y == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t hw = p->h * p->w, c = p->c, cb = FC_POOL_CHANNEL_BLOCK;
    const int64_t nblocks = (c + cb - 1) / cb;
    const int64_t items = p->channels_first ? p->n * c : p->n * nblocks;
    const int nthreads = fc_pick_threads(p->n_threads, (double)(p->n * hw * c) / 4.0, items);
    const double count = (double)hw;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        for (int64_t i = i0; i < i1; ++i) {
            if (p->channels_first) {
                y[i] = (FC_T)(t->plane_sum(x + i * hw, hw) / count);
                continue;
            }
            const int64_t img = i / nblocks, c0 = (i - img * nblocks) * cb;
            const int64_t c1 = min64(c0 + cb, c);
            if (i + FC_GSUM_AHEAD < i1)
                FCN(prefetch_global_item)(p, x, i + FC_GSUM_AHEAD);
            double acc[FC_POOL_CHANNEL_BLOCK];
            t->global_sum(x + img * hw * c + c0, hw, c, c1 - c0, acc);
            for (int64_t k = 0; k < c1 - c0; ++k)
                y[img * c + c0 + k] = (FC_T)(acc[k] / count);
        }
        fc_fpmode_leave(fp);
    }
    return FC_OK;
}

int FCN(fc_global_avg_pool2d_backward)(const fc_pool2d_params *p, const FC_T *dy, FC_T *dx)
{
    int status = check_global(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (dy == NULL || dx == NULL)
        return FC_ERR_ARG;
    const int64_t hw = p->h * p->w, c = p->c, cb = FC_POOL_CHANNEL_BLOCK;
    const int64_t nblocks = (c + cb - 1) / cb;
    const int64_t items = p->channels_first ? p->n * c : p->n * nblocks;
    const int nthreads = fc_pick_threads(p->n_threads, (double)(p->n * hw * c) / 8.0, items);
    const double count = (double)hw;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        for (int64_t i = i0; i < i1; ++i) {
            if (p->channels_first) {
                const FC_T v = (FC_T)((double)dy[i] / count);
                FC_T *FC_RESTRICT d = dx + i * hw;
                for (int64_t q = 0; q < hw; ++q)
                    d[q] = v;
                continue;
            }
            const int64_t img = i / nblocks, c0 = (i - img * nblocks) * cb;
            const int64_t n = min64(c0 + cb, c) - c0;
            FC_T v[FC_POOL_CHANNEL_BLOCK];
            for (int64_t k = 0; k < n; ++k)
                v[k] = (FC_T)((double)dy[img * c + c0 + k] / count);
            FC_T *d = dx + img * hw * c + c0;
            for (int64_t q = 0; q < hw; ++q)
                memcpy(d + q * c, v, (size_t)n * sizeof(FC_T));
        }
        fc_fpmode_leave(fp);
    }
    return FC_OK;
}

int FCN(fc_global_max_pool2d)(const fc_pool2d_params *p, const FC_T *x, FC_T *y)
{
    int status = check_global(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (x == NULL || y == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t hw = p->h * p->w, c = p->c, cb = FC_POOL_CHANNEL_BLOCK;
    const int64_t nblocks = (c + cb - 1) / cb;
    const int64_t items = p->channels_first ? p->n * c : p->n * nblocks;
    const int nthreads = fc_pick_threads(p->n_threads, (double)(p->n * hw * c) / 8.0, items);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        for (int64_t i = i0; i < i1; ++i) {
            if (p->channels_first) {
                y[i] = x[i * hw + t->plane_argmax(x + i * hw, hw)];
                continue;
            }
            const int64_t img = i / nblocks, c0 = (i - img * nblocks) * cb;
            const int64_t c1 = min64(c0 + cb, c);
            FC_T best[FC_POOL_CHANNEL_BLOCK];
            t->global_max(x + img * hw * c, hw, c, c0, c1, best, NULL);
            memcpy(y + img * c + c0, best, (size_t)(c1 - c0) * sizeof(FC_T));
        }
        fc_fpmode_leave(fp);
    }
    return FC_OK;
}

int FCN(fc_global_max_pool2d_backward)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *x,
                                       FC_T *dx)
{
    int status = check_global(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (dy == NULL || x == NULL || dx == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t hw = p->h * p->w, c = p->c, cb = FC_POOL_CHANNEL_BLOCK;
    const int64_t nblocks = (c + cb - 1) / cb;
    const int64_t items = p->channels_first ? p->n * c : p->n * nblocks;
    const int nthreads = fc_pick_threads(p->n_threads, (double)(p->n * hw * c) / 4.0, items);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        for (int64_t i = i0; i < i1; ++i) {
            if (p->channels_first) {
                const int64_t at = t->plane_argmax(x + i * hw, hw);
                memset(dx + i * hw, 0, (size_t)hw * sizeof(FC_T));
                dx[i * hw + at] = dy[i];
                continue;
            }
            const int64_t img = i / nblocks, c0 = (i - img * nblocks) * cb;
            const int64_t c1 = min64(c0 + cb, c);
            FC_T best[FC_POOL_CHANNEL_BLOCK];
            int64_t where[FC_POOL_CHANNEL_BLOCK];
            t->global_max(x + img * hw * c, hw, c, c0, c1, best, where);
            FC_T *d = dx + img * hw * c;
            for (int64_t q = 0; q < hw; ++q)
                memset(d + q * c + c0, 0, (size_t)(c1 - c0) * sizeof(FC_T));
            for (int64_t ch = c0; ch < c1; ++ch)
                d[where[ch - c0] * c + ch] = dy[img * c + ch];
        }
        fc_fpmode_leave(fp);
    }
    return FC_OK;
}

/* ---------------------------------------------------------------------------
 * Upsampling.
 */

/* One bilinear axis of `in` cells upsampled by `size` (fc_lerp_axis), in
 * ibuf (4 * out + 2 * in + 1 int64) and fbuf (4 * out FC_T). Output d reads
 * the source coordinate (d + 0.5) / size - 0.5 = (2d + 1 - size) / (2 size),
 * clamped to [0, in - 1]: its floor and fraction come from integer division,
 * so the weights repeat exactly with period size along the axis. */
static void FCN(lerp_axis_build)(int64_t in, int64_t size, int64_t *ibuf, FC_T *fbuf,
                                 FCN(fc_lerp_axis) *ax)
{
    const int64_t out = in * size, den = 2 * size;
    int64_t *lo = ibuf, *hi = lo + out, *start = hi + out, *src = start + in + 1;
    int64_t *cursor = src + 2 * out;
    FC_T *w0 = fbuf, *w1 = w0 + out, *wt = w1 + out;
    for (int64_t d = 0; d < out; ++d) {
        const int64_t num = 2 * d + 1 - size;
        const int64_t l = num < 0 ? 0 : num / den, rem = num < 0 ? 0 : num % den;
        if (rem == 0 || l + 1 >= in) {
            lo[d] = hi[d] = l < in ? l : in - 1;
            w0[d] = 1;
            w1[d] = 0;
        } else {
            const double f = (double)rem / (double)den;
            lo[d] = l;
            hi[d] = l + 1;
            w0[d] = (FC_T)(1 - f);
            w1[d] = (FC_T)f;
        }
    }
    /* the transpose: per input, its readers in ascending output order */
    for (int64_t i = 0; i <= in; ++i)
        start[i] = 0;
    for (int64_t d = 0; d < out; ++d) {
        start[lo[d] + 1] += 1;
        if (w1[d] != 0)
            start[hi[d] + 1] += 1;
    }
    for (int64_t i = 0; i < in; ++i) {
        start[i + 1] += start[i];
        cursor[i] = start[i];
    }
    for (int64_t d = 0; d < out; ++d) {
        src[cursor[lo[d]]] = d;
        wt[cursor[lo[d]]++] = w0[d];
        if (w1[d] != 0) {
            src[cursor[hi[d]]] = d;
            wt[cursor[hi[d]]++] = w1[d];
        }
    }
    ax->lo = lo;
    ax->hi = hi;
    ax->w0 = w0;
    ax->w1 = w1;
    ax->start = start;
    ax->src = src;
    ax->wt = wt;
}

/* Both axes' tables in two scratch blocks (freed by the caller). */
static int FCN(lerp_tables)(const fc_upsample_params *p, FCN(fc_lerp_axis) *ax_h,
                            FCN(fc_lerp_axis) *ax_w, int64_t **ibuf, FC_T **fbuf)
{
    const int64_t out_h = p->h * p->size_h, out_w = p->w * p->size_w;
    const int64_t ih = 4 * out_h + 2 * p->h + 1, iw = 4 * out_w + 2 * p->w + 1;
    *ibuf = (int64_t *)fc_malloc(ih + iw, sizeof(int64_t));
    *fbuf = (FC_T *)fc_malloc(4 * (out_h + out_w), sizeof(FC_T));
    if (*ibuf == NULL || *fbuf == NULL) {
        fc_free(*ibuf);
        fc_free(*fbuf);
        return FC_ERR_NOMEM;
    }
    FCN(lerp_axis_build)(p->h, p->size_h, *ibuf, *fbuf, ax_h);
    FCN(lerp_axis_build)(p->w, p->size_w, *ibuf + ih, *fbuf + 4 * out_h, ax_w);
    return FC_OK;
}

int FCN(fc_upsample2d_forward)(const fc_upsample_params *p, const FC_T *x, FC_T *y)
{
    int status = check_upsample(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (x == NULL || y == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t out_h = p->h * p->size_h, out_w = p->w * p->size_w;
    FCN(fc_lerp_axis) ax_h, ax_w;
    int64_t *ibuf = NULL;
    FC_T *fbuf = NULL;
    if (p->bilinear && (status = FCN(lerp_tables)(p, &ax_h, &ax_w, &ibuf, &fbuf)) != FC_OK)
        return status;
    /* nearest: input rows, each writing its size_h output rows; bilinear:
     * output rows */
    const int64_t rows = p->n * FC_ROWS_PER_IMAGE(p, p->bilinear ? out_h : p->h);
    /* per output value: 4 multiply-adds (bilinear) or a copy */
    const double work = (double)(p->n * out_h * out_w * p->c) * (p->bilinear ? 1.0 : 0.25);
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(rows, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        t->upsample_fwd(p, &ax_h, &ax_w, x, y, i0, i1);
        fc_fpmode_leave(fp);
    }
    fc_free(ibuf);
    fc_free(fbuf);
    return FC_OK;
}

int FCN(fc_upsample2d_backward)(const fc_upsample_params *p, const FC_T *dy, FC_T *dx)
{
    int status = check_upsample(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c == 0)
        return FC_OK;
    if (dy == NULL || dx == NULL)
        return FC_ERR_ARG;
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t out_h = p->h * p->size_h, out_w = p->w * p->size_w;
    const int64_t rows = p->n * FC_ROWS_PER_IMAGE(p, p->h);   /* dx rows */
    const double work = (double)(p->n * out_h * out_w * p->c) * (p->bilinear ? 2.0 : 0.25);
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);
    if (!p->bilinear) {
        /* the sum of each size_h x size_w block of dy: a sum pool */
        fc_pool2d_params q;
        memset(&q, 0, sizeof q);
        q.n = p->n;
        q.h = out_h;
        q.w = out_w;
        q.c = p->c;
        q.pool_h = q.stride_h = p->size_h;
        q.pool_w = q.stride_w = p->size_w;
        q.out_h = p->h;
        q.out_w = p->w;
        q.channels_first = p->channels_first;
        q.n_threads = p->n_threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
        {
            const unsigned fp = fc_fpmode_enter();
            int64_t i0, i1;
            fc_thread_range(rows, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
            t->pool_reduce(&q, FC_POOL_SUM, dy, dx, i0, i1);
            fc_fpmode_leave(fp);
        }
        return FC_OK;
    }
    FCN(fc_lerp_axis) ax_h, ax_w;
    int64_t *ibuf = NULL;
    FC_T *fbuf = NULL;
    if ((status = FCN(lerp_tables)(p, &ax_h, &ax_w, &ibuf, &fbuf)) != FC_OK)
        return status;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t i0, i1;
        fc_thread_range(rows, FC_TEAM_SIZE(), FC_THREAD_ID(), &i0, &i1);
        t->upsample_bwd(p, &ax_h, &ax_w, dy, dx, i0, i1);
        fc_fpmode_leave(fp);
    }
    fc_free(ibuf);
    fc_free(fbuf);
    return FC_OK;
}

#undef FC_ROWS_PER_IMAGE
