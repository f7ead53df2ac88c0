/*
 * depthwise_impl.h: the depthwise-convolution drivers for one element type
 * (FC_T, names through FCN), compiled twice by depthwise.c, which describes
 * the algorithms. No include guard, on purpose.
 */

/* ===========================================================================
 * Shared pieces
 */

/* Runs item(ctx, chunk, unit, dk, db, scratch) for every (chunk, unit) of a
 * weight gradient, each chunk's units writing disjoint parts of the chunk's
 * partial (dk: dk_len values, db: c_out values or NULL), and adds the
 * partials into dkernel / dbias in chunk order, a wave of chunks at a time.
 * One chunk: the units write dkernel / dbias directly. */
typedef void (*FCN(dw_item_fn))(const void *ctx, int64_t chunk, int64_t unit, FC_T *dk, FC_T *db,
                                void *scratch);

static int FCN(dw_reduce)(const fc_conv2d_params *p, int64_t nchunks, int64_t units,
                          int64_t dk_len, int64_t words_per_thread, FCN(dw_item_fn) item,
                          const void *ctx, FC_T *dkernel, FC_T *dbias)
{
    const int64_t partial_len = dk_len + p->c_out;
    const double work = (double)p->n * (double)p->out_h * (double)p->out_w * (double)dk_len;
    const int nthreads = fc_pick_threads(p->n_threads, work, nchunks * units);
    const int direct = nchunks == 1;
    int64_t wave = max64(1, FC_DW_PARTIAL_BYTES / (partial_len * (int64_t)sizeof(FC_T)));
    wave = min64(wave, nchunks);
    char *scratch = (char *)fc_malloc(fc_mul(max64(words_per_thread, 1), nthreads), 8);
    FC_T *partials = direct ? NULL : (FC_T *)fc_malloc(fc_mul(wave, partial_len), sizeof(FC_T));
    if (scratch == NULL || (partials == NULL && !direct)) {
        fc_free(scratch);
        fc_free(partials);
        return FC_ERR_NOMEM;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID(), team = FC_TEAM_SIZE();
        const unsigned fp = fc_fpmode_enter();
        void *mine = scratch + (size_t)(max64(words_per_thread, 1) * 8) * (size_t)tid;
        for (int64_t first = 0; first < nchunks; first += wave) {
            const int64_t nwave = min64(wave, nchunks - first);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t it = 0; it < nwave * units; ++it) {
                const int64_t c = it / units, u = it - c * units;
                FC_T *dk = direct ? dkernel : partials + c * partial_len;
                FC_T *db = dbias == NULL ? NULL : direct ? dbias : dk + dk_len;
                item(ctx, first + c, u, dk, db, mine);
            }
            if (direct)
                continue;   /* one wave of one chunk */
            /* this wave's partials into the outputs, in chunk order */
            int64_t e0, e1;
            fc_thread_range(partial_len, team, tid, &e0, &e1);
            for (int64_t c = 0; c < nwave; ++c) {
                const FC_T *src = partials + c * partial_len;
                const int first_chunk = first + c == 0;
                FCN(fc_fold)(dkernel, src, min64(e0, dk_len), min64(e1, dk_len), first_chunk);
                if (dbias != NULL)
                    FCN(fc_fold)(dbias, src + dk_len, max64(e0, dk_len) - dk_len,
                                 max64(e1, dk_len) - dk_len, first_chunk);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    fc_free(partials);
    return FC_OK;
}

/* ===========================================================================
 * Channels last
 */

/* Fetches the lines of the block a is about to write, ahead values on (the
 * same pixels of the next row). The input gradient writes a row stride phase
 * by stride phase, every other pixel for stride 2, a pattern the hardware
 * prefetchers do not follow: without this the stores wait on memory line by
 * line once the output outgrows the cache. Measured (Zen 4, in-process A/B):
 * 32x28x28x128 stride-2 input gradient 0.54-0.62x the time; on Zen 2, with
 * the pixel-major order below, 0.72-0.93x (stride 2 and 1). The forward
 * writes whole pixels in order and does without it (Zen 2: 0.93-1.16x, in
 * the noise). */
static inline void FCN(dw_fetch_block)(const FCN(fc_dw_block_args) *a, int64_t ahead, int vl)
{
    for (int q = 0; q < a->p; ++q)
        for (int v = 0; v < a->v; ++v)
            FC_PREFETCH(a->dst + ahead + q * a->dst_step + v * vl);
}

/* Runs a's pixels (a->p of them, their columns set, from source offset
 * src_off and output dst on) through every channel block in turn; fetches
 * each block's output lines `ahead` values on first unless ahead is 0. */
static void FCN(dw_channel_blocks)(const FCN(fc_kernel_table) *t, const dw_cblocks *cb,
                                   FCN(fc_dw_block_args) *a, const FC_T *kernel,
                                   const FC_T *bias, int64_t src_off, FC_T *dst, int64_t ahead)
{
    for (int64_t b = 0; b < cb->n; ++b) {
        int64_t ch;
        dw_cblock(cb, b, &ch, &a->v, &a->tail);
        a->kernel = kernel + ch;
        a->bias = bias == NULL ? NULL : bias + ch;
        a->src_off = src_off + ch;
        a->dst = dst + ch;
        if (ahead != 0)
            FCN(dw_fetch_block)(a, ahead, t->vl);
        t->dw_block(a);
    }
}

/* Rows [ih0, ih1) of image img expanded to output channels [c0, c0 + width)
 * (channel o holds x[.., o / M]), at buf + (ih - ih0) * w * width. */
static void FCN(dw_expand_rows)(const fc_conv2d_params *p, int64_t M, const FC_T *x, int64_t img,
                                int64_t ih0, int64_t ih1, int64_t c0, int64_t width,
                                FC_T *FC_RESTRICT buf)
{
    const int64_t cin = p->c_in;
    for (int64_t ih = ih0; ih < ih1; ++ih) {
        const FC_T *src = x + ((img * p->h + ih) * p->w) * cin;
        FC_T *dst = buf + (ih - ih0) * p->w * width;
        for (int64_t iw = 0; iw < p->w; ++iw, src += cin, dst += width) {
            int64_t ci = c0 / M, m = c0 - ci * M;
            for (int64_t e = 0; e < width; ++e) {
                dst[e] = src[ci];
                if (++m == M) {
                    m = 0;
                    ++ci;
                }
            }
        }
    }
}

/* Output row oh of one image: src holds its input rows from row0 on, C
 * channels per pixel (x itself, or rows expanded for M > 1); col_src and
 * col_k hold every kernel column's offsets. Pixel-major: every channel block
 * of a run of pixels before the next run, so that the row is written and its
 * input rows read in address order while their lines are in L1 (channel
 * block by channel block, each pass over the row touched only its block's
 * lines of every pixel, and the input rows came from L2 or memory once per
 * block). Measured on Zen 2 (1 thread, C harness, medians of 8 alternating
 * runs): forward 0.74x the time (32x56x56x64, 64-byte aligned input), 0.56x
 * (16 bytes off, as NumPy allocates), 0.69-0.78x (32x28x28x128 stride 2);
 * input gradient 0.70x / 0.46x / 0.86-0.99x, in the same order there
 * (dw_backward_input_row). */
static void FCN(dw_forward_row)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                const dw_cblocks *cb, const FC_T *src, int64_t row0,
                                const FC_T *kernel, const FC_T *bias, FC_T *yrow, int64_t oh,
                                const FC_T **row_src, int64_t *row_k, const int64_t *col_src,
                                const int64_t *col_k, const dw_run_blocks *runs)
{
    const int64_t C = p->c_out, w = p->w, kw = p->kw, sw = p->stride_w, dw = p->dilation_w;
    const int64_t pl = p->pad_left, out_w = p->out_w;
    FCN(fc_dw_block_args) a;
    a.nrows = 0;
    for (int64_t i = 0; i < p->kh; ++i) {
        const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
        if (ih < 0 || ih >= p->h)
            continue;
        row_src[a.nrows] = src + (ih - row0) * w * C;
        row_k[a.nrows] = i * kw * C;
        ++a.nrows;
    }
    a.row_src = row_src;
    a.row_k = row_k;
    a.src_step = sw * C;
    a.dst_step = C;
    a.relu = p->relu;
    /* the pixels whose whole kernel row lies inside the input: [lo, hi) */
    const int64_t lo = min64(ceil_div(pl, sw), out_w);
    const int64_t hi = clamp64(floor_div(w - 1 - (kw - 1) * dw + pl, sw) + 1, lo, out_w);
    for (int64_t ow = 0, np = 1; ow < out_w; ow += np) {
        int64_t j0, j1;
        if (ow >= lo && ow < hi && runs != NULL) {
            /* the interior in one call */
            np = hi - ow;
            FCN(fc_dw_run_args) run;
            run.row_src = row_src;
            run.row_k = row_k;
            run.nrows = a.nrows;
            run.src_off = ow * sw * C + col_src[0];
            run.n = np;
            run.pixel = C;
            run.stride = sw;
            run.kernel = kernel;
            run.bias = bias;
            run.dst = yrow + ow * C;
            run.nblocks = runs->n;
            run.block_ch = runs->ch;
            run.block_v = runs->v;
            run.tail = runs->tail;
            run.relu = p->relu;
            t->dw_run(&run);
            continue;
        }
        if (ow >= lo && ow < hi) {
            np = min64(FC_DW_MAX_P, hi - ow);
            j0 = 0;
            j1 = kw;
        } else {
            /* an edge pixel: its kernel columns inside the input */
            const int64_t base = ow * sw - pl;
            np = 1;
            j0 = base >= 0 ? 0 : min64(ceil_div(-base, dw), kw);
            j1 = base < w ? clamp64(floor_div(w - 1 - base, dw) + 1, j0, kw) : j0;
        }
        a.p = (int)np;
        a.col_src = col_src + j0;
        a.col_k = col_k + j0;
        a.ncols = j1 - j0;
        FCN(dw_channel_blocks)(t, cb, &a, kernel, bias, a.ncols > 0 ? ow * sw * C : 0,
                               yrow + ow * C, 0);
    }
}

static int FCN(dw_forward_cl)(const fc_conv2d_params *p, const FC_T *x, const FC_T *kernel,
                              const FC_T *bias, FC_T *y)
{
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t C = p->c_out, M = C / p->c_in, kh = p->kh, kw = p->kw;
    const int64_t sh = p->stride_h, reach_h = (kh - 1) * p->dilation_h;
    const dw_cblocks cb = dw_cblocks_of(C, t->vl, t->dw_v_max);
    /* M == 1: items are output rows. M > 1: bands of output rows, whose
     * input rows are expanded to C channels once per band. */
    const int64_t band =
        M > 1 ? dw_band_rows(p->w * C * (int64_t)sizeof(FC_T), sh, reach_h, p->out_h) : 1;
    const int64_t nbands = (p->out_h + band - 1) / band;
    const int64_t items = p->n * nbands;
    int64_t stage = 0;
    if (M > 1) {
        const int64_t span = dw_span(band, sh, reach_h);
        stage = span < 0 ? -1 : fc_mul(fc_mul(min64(span, p->h), p->w), C);
        if (stage < 0)
            return FC_ERR_OVERFLOW;
    }
    const int64_t words = 2 * kh + 2 * kw + FC_DW_WORDS(stage) + 8;
    const double work = (double)p->n * (double)p->out_h * (double)p->out_w * (double)C *
                        (double)(kh * kw);
    const int nthreads = fc_pick_threads(p->n_threads, work, items);
    char *scratch = (char *)fc_malloc(fc_mul(words, nthreads), 8);
    /* The run kernel's channel blocks. Stride 1: at most 2 vectors, which
     * it takes pixel-major (Zen 5, batch 32, medians of 15-25 alternating
     * calls, time against 4-vector blocks vector by vector, 1 / 2 threads:
     * 56x56x64 0.75 / 0.72, 24x24x128 0.89 / 0.91, 12x12x256 0.82 / 0.95,
     * 6x6x512 0.98 / 1.02). Stride 2: the table's blocks, vector by vector
     * from 3 vectors (2-vector blocks took 1.07-1.16x the time at 48x48x64,
     * 1.04-1.06x at 28x28x128, 0.91x at 24x24x128, 1 thread). */
    const dw_cblocks run_cb =
        dw_cblocks_of(C, t->vl, p->stride_w == 1 ? (int)min64(2, t->dw_v_max) : t->dw_v_max);
    dw_run_blocks runs = {NULL, NULL, 0, 0};
    if (scratch == NULL || (kw == 3 && p->dilation_w == 1 && (p->stride_w == 1 ||
                                                              p->stride_w == 2) &&
                            dw_run_blocks_of(&run_cb, &runs) != FC_OK)) {
        fc_free(scratch);
        return FC_ERR_NOMEM;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        char *mine = scratch + (size_t)(words * 8) * (size_t)tid;
        const FC_T **row_src = (const FC_T **)mine;
        int64_t *row_k = (int64_t *)(mine + kh * 8);
        int64_t *col_src = (int64_t *)(mine + 2 * kh * 8);
        int64_t *col_k = (int64_t *)(mine + (2 * kh + kw) * 8);
        FC_T *buf = (FC_T *)(mine + (2 * kh + 2 * kw) * 8);
        for (int64_t j = 0; j < kw; ++j) {
            col_src[j] = (j * p->dilation_w - p->pad_left) * C;
            col_k[j] = j * C;
        }
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t img = item / nbands, oh0 = (item - img * nbands) * band;
            const int64_t oh1 = min64(oh0 + band, p->out_h);
            const FC_T *src = buf;
            int64_t row0 = 0;
            if (M == 1) {
                src = x + img * p->h * p->w * C;
            } else {
                row0 = max64(0, oh0 * sh - p->pad_top);
                const int64_t ih1 = min64(p->h, (oh1 - 1) * sh - p->pad_top + reach_h + 1);
                FCN(dw_expand_rows)(p, M, x, img, row0, ih1, 0, C, buf);
            }
            for (int64_t oh = oh0; oh < oh1; ++oh)
                FCN(dw_forward_row)(p, t, &cb, src, row0, kernel, bias,
                                    y + ((img * p->out_h + oh) * p->out_w) * C, oh, row_src,
                                    row_k, col_src, col_k, runs.ch != NULL ? &runs : NULL);
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    dw_run_blocks_free(&runs);
    return FC_OK;
}

/* dx row ih of image img, gathered: for each column phase r (the dx pixels
 * with (iw + pad_left) % stride_w == r) the kernel columns j with
 * j * dilation_w % stride_w == r reach its pixel q = (iw + pad_left - r) /
 * stride_w from dy column q - e_j; e_j grows with j, so an edge pixel's
 * columns inside dy are a sub-range of the phase's list. dst holds C
 * channels per pixel: dx itself for M == 1, else a staging row summed over
 * m into dx. */
static void FCN(dw_backward_input_row)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                       const dw_cblocks *cb, const FC_T *dy, const FC_T *kernel,
                                       FC_T *dxrow, int64_t img, int64_t ih, const FC_T **row_src,
                                       int64_t *row_k, int64_t *col_src, int64_t *col_k,
                                       int64_t *e, FC_T *stage)
{
    const int64_t C = p->c_out, cin = p->c_in, M = C / cin, w = p->w, kw = p->kw;
    const int64_t sh = p->stride_h, sw = p->stride_w, dw = p->dilation_w, pl = p->pad_left;
    const int64_t out_w = p->out_w;
    FCN(fc_dw_block_args) a;
    a.nrows = 0;
    for (int64_t i = 0; i < p->kh; ++i) {
        const int64_t tt = ih + p->pad_top - i * p->dilation_h;
        if (tt < 0)
            break;
        if (tt % sh != 0 || tt / sh >= p->out_h)
            continue;
        row_src[a.nrows] = dy + ((img * p->out_h + tt / sh) * out_w) * C;
        row_k[a.nrows] = i * kw * C;
        ++a.nrows;
    }
    if (a.nrows == 0) {
        memset(dxrow, 0, (size_t)(w * cin) * sizeof(FC_T));
        return;
    }
    FC_T *dst = M == 1 ? dxrow : stage;
    a.row_src = row_src;
    a.row_k = row_k;
    a.src_step = C;
    a.dst_step = sw * C;
    a.relu = 0;
    for (int64_t r = 0; r < sw; ++r) {
        const int64_t q_lo = max64(0, ceil_div(pl - r, sw));
        const int64_t q_hi = floor_div(w - 1 + pl - r, sw) + 1;
        if (q_hi <= q_lo)
            continue;
        int64_t nj = 0;
        for (int64_t j = 0; j < kw; ++j) {
            const int64_t jd = j * dw;
            if (jd % sw != r)
                continue;
            e[nj] = (jd - r) / sw;
            col_src[nj] = -e[nj] * C;
            col_k[nj] = j * C;
            ++nj;
        }
        /* the pixels all of whose columns fall inside dy: [lo, hi) */
        const int64_t lo = nj ? clamp64(e[nj - 1], q_lo, q_hi) : q_lo;
        const int64_t hi = nj ? clamp64(out_w + e[0], lo, q_hi) : q_hi;
        for (int64_t q = q_lo, np = 1; q < q_hi; q += np) {
            int64_t b0 = 0, b1 = nj;
            if (q >= lo && q < hi) {
                np = min64(FC_DW_MAX_P, hi - q);
            } else {
                np = 1;
                b1 = 0;
                while (b1 < nj && e[b1] <= q)
                    ++b1;
                while (b0 < b1 && e[b0] <= q - out_w)
                    ++b0;
            }
            a.p = (int)np;
            a.col_src = col_src + b0;
            a.col_k = col_k + b0;
            a.ncols = b1 - b0;
            /* (the staging row of M > 1 stays in cache: no fetch) */
            FCN(dw_channel_blocks)(t, cb, &a, kernel, NULL, a.ncols > 0 ? q * C : 0,
                                   dst + (q * sw + r - pl) * C, M == 1 ? w * C : 0);
        }
    }
    if (M > 1) {
        for (int64_t iw = 0; iw < w; ++iw) {
            const FC_T *s = stage + iw * C;
            for (int64_t ci = 0; ci < cin; ++ci, s += M) {
                FC_T sum = s[0];
                for (int64_t m = 1; m < M; ++m)
                    sum += s[m];
                dxrow[iw * cin + ci] = sum;
            }
        }
    }
}

static int FCN(dw_backward_input_cl)(const fc_conv2d_params *p, const FC_T *dy,
                                     const FC_T *kernel, FC_T *dx)
{
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t C = p->c_out, M = C / p->c_in, kh = p->kh, kw = p->kw;
    const dw_cblocks cb = dw_cblocks_of(C, t->vl, t->dw_v_max);
    const int64_t items = p->n * p->h;
    const int64_t stage = M > 1 ? p->w * C : 0;
    const int64_t words = 2 * kh + 3 * kw + FC_DW_WORDS(stage) + 8;
    const double work = (double)p->n * (double)p->out_h * (double)p->out_w * (double)C *
                        (double)(kh * kw);
    const int nthreads = fc_pick_threads(p->n_threads, work, items);
    char *scratch = (char *)fc_malloc(fc_mul(words, nthreads), 8);
    if (scratch == NULL)
        return FC_ERR_NOMEM;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        char *mine = scratch + (size_t)(words * 8) * (size_t)tid;
        const FC_T **row_src = (const FC_T **)mine;
        int64_t *row_k = (int64_t *)(mine + kh * 8);
        int64_t *col_src = (int64_t *)(mine + 2 * kh * 8);
        int64_t *col_k = (int64_t *)(mine + (2 * kh + kw) * 8);
        int64_t *e = (int64_t *)(mine + (2 * kh + 2 * kw) * 8);
        FC_T *stage_row = (FC_T *)(mine + (2 * kh + 3 * kw) * 8);
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t img = item / p->h, ih = item - img * p->h;
            FCN(dw_backward_input_row)(p, t, &cb, dy, kernel, dx + item * p->w * p->c_in, img,
                                       ih, row_src, row_k, col_src, col_k, e, stage_row);
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    return FC_OK;
}

/* What a channels-last weight-gradient item needs. */
typedef struct FCN(dw_wgrad_cl) {
    const fc_conv2d_params *p;
    const FCN(fc_kernel_table) *t;
    const FC_T *dy, *x;
    dw_cblocks cb;
    dw_chunks chunks;
    int64_t stage_words;
} FCN(dw_wgrad_cl);

/* Segment s of nseg of a kernel row: its columns [j0, j0 + T) and the
 * output pixels [lo, hi) for which all of them fall inside the input. */
static void FCN(dw_wgrad_segment)(const fc_conv2d_params *p, int64_t nseg, int64_t s,
                                  int64_t *j0, int64_t *T, int64_t *lo, int64_t *hi)
{
    const int64_t sw = p->stride_w, dw = p->dilation_w, pl = p->pad_left;
    block_of(p->kw, nseg, s, j0, T);
    *lo = clamp64(ceil_div(pl - *j0 * dw, sw), 0, p->out_w);
    *hi = clamp64(floor_div(p->w - 1 + pl - (*j0 + *T - 1) * dw, sw) + 1, *lo, p->out_w);
}

/* Chunk `chunk`, channel block `unit`: dk (HWIO) and db of its channels. */
static void FCN(dw_wgrad_cl_item)(const void *vctx, int64_t chunk, int64_t unit, FC_T *dk,
                                  FC_T *db, void *scratch)
{
    const FCN(dw_wgrad_cl) *ctx = (const FCN(dw_wgrad_cl) *)vctx;
    const fc_conv2d_params *p = ctx->p;
    const int64_t C = p->c_out, M = C / p->c_in, w = p->w, kw = p->kw, sh = p->stride_h;
    const int64_t sw = p->stride_w, dw = p->dilation_w, pl = p->pad_left, out_w = p->out_w;
    const int64_t rows_max = ctx->chunks.rows_max;
    int64_t img, oh0, oh1, ch;
    dw_chunk(p, &ctx->chunks, chunk, &img, &oh0, &oh1);
    FCN(fc_dw_wgrad_args) a;
    dw_cblock(&ctx->cb, unit, &ch, &a.v, &a.tail);
    const int64_t width = a.tail ? a.tail : (int64_t)a.v * ctx->t->vl;

    const FC_T **xs = (const FC_T **)scratch;
    const FC_T **ds = xs + rows_max;
    int64_t *count = (int64_t *)(ds + rows_max);
    /* the source rows: x itself (C channels, this block's from ch on), or the
     * chunk's rows expanded to this block's channels */
    const FC_T *src;
    int64_t row0 = 0, cx = C, choff = ch;
    if (M == 1) {
        src = ctx->x + img * p->h * w * C;
    } else {
        FC_T *buf = (FC_T *)(count + rows_max);
        row0 = max64(0, oh0 * sh - p->pad_top);
        const int64_t ih1 =
            min64(p->h, (oh1 - 1) * sh - p->pad_top + (p->kh - 1) * p->dilation_h + 1);
        FCN(dw_expand_rows)(p, M, ctx->x, img, row0, ih1, ch, width, buf);
        src = buf;
        cx = width;
        choff = 0;
    }
    a.x = xs;
    a.d = ds;
    a.count = count;
    a.x_step = sw * cx;
    a.d_step = C;
    a.tap_step = dw * cx;
    a.ldo = C;
    const int64_t nseg = (kw + FC_DW_MAX_T - 1) / FC_DW_MAX_T;
    /* The interior pixels (all T columns of a segment inside the input) row
     * by row, every kernel row of an output row in turn: the rows an output
     * row reads stay in L1 between the kernel rows, where a pass over the
     * chunk per kernel row read it kh times from L2. The block's taps start
     * at zero and every call accumulates. */
    for (int64_t j = 0; j < p->kh * kw; ++j)
        memset(dk + j * C + ch, 0, (size_t)width * sizeof(FC_T));
    a.accumulate = 1;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
        const FC_T *drow = ctx->dy + ((img * p->out_h + oh) * out_w) * C + ch;
        for (int64_t i = 0; i < p->kh; ++i) {
            const int64_t ih = oh * sh - p->pad_top + i * p->dilation_h;
            if (ih < 0 || ih >= p->h)
                continue;
            const FC_T *xrow = src + (ih - row0) * w * cx + choff;
            for (int64_t s = 0; s < nseg; ++s) {
                int64_t j0, T, lo, hi;
                FCN(dw_wgrad_segment)(p, nseg, s, &j0, &T, &lo, &hi);
                if (hi == lo)
                    continue;
                xs[0] = xrow + (lo * sw - pl + j0 * dw) * cx;
                ds[0] = drow + lo * C;
                count[0] = hi - lo;
                a.nruns = 1;
                a.t = (int)T;
                a.out = dk + (i * kw + j0) * C + ch;
                ctx->t->dw_wgrad(&a);
            }
        }
        if (db != NULL) {   /* the bias gradient while the dy row is in L1 */
            FC_T row_sum[FC_DW_MAX_V * 16];   /* width <= dw_v_max * vl, vl <= 16 */
            ctx->t->colsum(drow, out_w, C, width, oh == oh0 ? db + ch : row_sum);
            if (oh > oh0)
                for (int64_t e = 0; e < width; ++e)
                    db[ch + e] += row_sum[e];
        }
    }
    /* The edge columns, kernel row by kernel row: each adds the segment's
     * columns inside the input (the same ones in every row), one run of one
     * pixel per row. */
    for (int64_t i = 0; i < p->kh; ++i) {
        for (int64_t s = 0; s < nseg; ++s) {
            int64_t j0, T, lo, hi;
            FCN(dw_wgrad_segment)(p, nseg, s, &j0, &T, &lo, &hi);
            for (int side = 0; side < 2; ++side) {
                const int64_t from = side ? hi : 0, to = side ? out_w : lo;
                for (int64_t ow = from; ow < to; ++ow) {
                    const int64_t base = ow * sw - pl;   /* column of tap 0 */
                    if (base >= w)
                        break;
                    const int64_t ja = max64(j0, base >= 0 ? 0 : ceil_div(-base, dw));
                    const int64_t jb = min64(j0 + T, floor_div(w - 1 - base, dw) + 1);
                    if (ja >= jb)
                        continue;
                    a.nruns = 0;
                    for (int64_t oh = oh0; oh < oh1; ++oh) {
                        const int64_t ih = oh * sh - p->pad_top + i * p->dilation_h;
                        if (ih < 0 || ih >= p->h)
                            continue;
                        xs[a.nruns] = src + (ih - row0) * w * cx + ((base + ja * dw) * cx + choff);
                        ds[a.nruns] = ctx->dy + ((img * p->out_h + oh) * out_w + ow) * C + ch;
                        count[a.nruns] = 1;
                        ++a.nruns;
                    }
                    a.t = (int)(jb - ja);
                    a.out = dk + (i * kw + ja) * C + ch;
                    if (a.nruns > 0)
                        ctx->t->dw_wgrad(&a);
                }
            }
        }
    }
}

static int FCN(dw_backward_kernel_cl)(const fc_conv2d_params *p, const FC_T *dy, const FC_T *x,
                                      FC_T *dkernel, FC_T *dbias)
{
    FCN(dw_wgrad_cl) ctx;
    ctx.p = p;
    ctx.t = FCN(fc_active_kernels)();
    ctx.dy = dy;
    ctx.x = x;
    ctx.cb = dw_cblocks_of(p->c_out, ctx.t->vl, ctx.t->dw_v_max);
    ctx.chunks = dw_chunks_of(p);
    const int64_t C = p->c_out, M = C / p->c_in;
    int64_t stage = 0;
    if (M > 1) {
        const int64_t span = dw_span(ctx.chunks.rows_max, p->stride_h, (p->kh - 1) * p->dilation_h);
        const int64_t width = min64(C, (int64_t)ctx.t->dw_v_max * ctx.t->vl);
        stage = span < 0 ? -1 : fc_mul(fc_mul(min64(span, p->h), p->w), width);
        if (stage < 0)
            return FC_ERR_OVERFLOW;
    }
    ctx.stage_words = FC_DW_WORDS(stage);
    const int64_t words = 3 * ctx.chunks.rows_max + ctx.stage_words + 8;
    return FCN(dw_reduce)(p, ctx.chunks.n, ctx.cb.n, p->kh * p->kw * C, words,
                          FCN(dw_wgrad_cl_item), &ctx, dkernel, dbias);
}

/* ===========================================================================
 * Channels first
 */

/* out[q] = src[q * s + off] and its inverse for q in [q0, q1); stride 2 is
 * spelled out so that the compiler vectorises it (a variable stride it does
 * not). */
static void FCN(dw_gather)(FC_T *FC_RESTRICT out, const FC_T *FC_RESTRICT src, int64_t q0,
                           int64_t q1, int64_t s, int64_t off)
{
    if (s == 1)
        memcpy(out + q0, src + (q0 + off), (size_t)(q1 - q0) * sizeof(FC_T));
    else if (s == 2)
        for (int64_t q = q0; q < q1; ++q)
            out[q] = src[2 * q + off];
    else
        for (int64_t q = q0; q < q1; ++q)
            out[q] = src[q * s + off];
}

static void FCN(dw_scatter)(FC_T *FC_RESTRICT dst, const FC_T *FC_RESTRICT in, int64_t q0,
                            int64_t q1, int64_t s, int64_t off)
{
    if (s == 2)
        for (int64_t q = q0; q < q1; ++q)
            dst[2 * q + off] = in[q - q0];
    else
        for (int64_t q = q0; q < q1; ++q)
            dst[q * s + off] = in[q - q0];
}

/* Padded rows [R0, R1) (row ih + pad_top, column iw + pad_left) of an h x w
 * input plane, split into the stride_w column phases: dst[((prow - R0) *
 * stride_w + r) * wp + q] = the padded cell (prow, q * stride_w + r), zero
 * outside the input. */
static void FCN(dw_phase_copy)(const fc_conv2d_params *p, const FC_T *FC_RESTRICT plane,
                               int64_t R0, int64_t R1, int64_t wp, FC_T *FC_RESTRICT dst)
{
    const int64_t sw = p->stride_w, pl = p->pad_left, w = p->w;
    for (int64_t prow = R0; prow < R1; ++prow) {
        const int64_t ih = prow - p->pad_top;
        for (int64_t r = 0; r < sw; ++r) {
            FC_T *out = dst + ((prow - R0) * sw + r) * wp;
            if (ih < 0 || ih >= p->h) {
                memset(out, 0, (size_t)wp * sizeof(FC_T));
                continue;
            }
            const FC_T *src = plane + ih * w;
            /* input column q * sw + r - pl inside for q in [qa, qb) */
            const int64_t qa = clamp64(ceil_div(pl - r, sw), 0, wp);
            const int64_t qb = clamp64(floor_div(w - 1 + pl - r, sw) + 1, qa, wp);
            memset(out, 0, (size_t)qa * sizeof(FC_T));
            FCN(dw_gather)(out, src, qa, qb, sw, r - pl);
            memset(out + qb, 0, (size_t)(wp - qb) * sizeof(FC_T));
        }
    }
}

/* Width of a phase row: every tap's out_w (rounded up to whole vectors)
 * columns from its offset (j * dilation_w) / stride_w. */
static int64_t FCN(dw_phase_width)(const fc_conv2d_params *p, int vl)
{
    return (p->out_w + vl - 1) / vl * vl + (p->kw - 1) * p->dilation_w / p->stride_w;
}

/* Split work into more bands when planes alone would leave threads idle
 * (forward and backward-input only: their results do not depend on it). */
static int64_t FCN(dw_bands_for_threads)(const fc_conv2d_params *p, int64_t planes, int64_t band,
                                         int64_t rows)
{
    const int64_t want = 4 * (int64_t)(p->n_threads > 0 ? p->n_threads : fc_default_num_threads());
    const int64_t nb = (rows + band - 1) / band;
    if (planes * nb >= want)
        return band;
    const int64_t more = min64(rows, (want + planes - 1) / planes);
    return more > nb ? (rows + more - 1) / more : band;
}

static int FCN(dw_forward_cf)(const fc_conv2d_params *p, const FC_T *x, const FC_T *kernel,
                              const FC_T *bias, FC_T *y)
{
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t C = p->c_out, cin = p->c_in, M = C / cin, kh = p->kh, kw = p->kw;
    const int64_t taps = kh * kw, sh = p->stride_h, sw = p->stride_w;
    const int64_t reach_h = (kh - 1) * p->dilation_h;
    const int64_t wp = FCN(dw_phase_width)(p, t->vl), row_vals = fc_mul(sw, wp);
    if (row_vals < 0)
        return FC_ERR_OVERFLOW;
    int64_t band = dw_band_rows(row_vals * (int64_t)sizeof(FC_T), sh, reach_h, p->out_h);
    band = FCN(dw_bands_for_threads)(p, p->n * cin, band, p->out_h);
    const int64_t nbands = (p->out_h + band - 1) / band, items = p->n * cin * nbands;
    const int64_t span = dw_span(band, sh, reach_h);
    const int64_t plane = span < 0 ? -1 : fc_mul(span, row_vals);
    if (plane < 0)
        return FC_ERR_OVERFLOW;
    const int64_t words = FC_DW_WORDS(plane) + taps + FC_DW_WORDS(taps) + 16;
    const double work = (double)p->n * (double)p->out_h * (double)p->out_w * (double)C *
                        (double)taps;
    const int nthreads = fc_pick_threads(p->n_threads, work, items);
    char *scratch = (char *)fc_malloc(fc_mul(words, nthreads), 8);
    if (scratch == NULL)
        return FC_ERR_NOMEM;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        char *mine = scratch + (size_t)(words * 8) * (size_t)tid;
        const FC_T **src = (const FC_T **)mine;
        FC_T *wt = (FC_T *)(mine + taps * 8);
        FC_T *buf = (FC_T *)(mine + (taps + FC_DW_WORDS(taps) + 8) * 8);
        FCN(fc_dw_rows_args) a;
        a.src = src;
        a.wt = wt;
        a.relu = p->relu;
        a.len = p->out_w;
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t pl_idx = item / nbands, img = pl_idx / cin, ci = pl_idx - img * cin;
            const int64_t oh0 = (item - pl_idx * nbands) * band;
            const int64_t oh1 = min64(oh0 + band, p->out_h);
            const int64_t R0 = oh0 * sh;
            FCN(dw_phase_copy)(p, x + pl_idx * p->h * p->w, R0, (oh1 - 1) * sh + reach_h + 1, wp,
                               buf);
            for (int64_t m = 0; m < M; ++m) {
                const int64_t o = ci * M + m;
                const FC_T *kern = kernel + o * taps;
                a.bias = bias == NULL ? (FC_T)0 : bias[o];
                for (int64_t oh = oh0; oh < oh1; ++oh) {
                    a.ntaps = 0;
                    for (int64_t i = 0; i < kh; ++i) {
                        const int64_t prow = oh * sh + i * p->dilation_h;
                        const int64_t ih = prow - p->pad_top;
                        if (ih < 0 || ih >= p->h)
                            continue;
                        const FC_T *row = buf + (prow - R0) * row_vals;
                        for (int64_t j = 0; j < kw; ++j) {
                            const int64_t jd = j * p->dilation_w;
                            src[a.ntaps] = row + (jd % sw) * wp + jd / sw;
                            wt[a.ntaps] = kern[i * kw + j];
                            ++a.ntaps;
                        }
                    }
                    a.out = y + ((img * C + o) * p->out_h + oh) * p->out_w;
                    t->dw_rows(&a);
                }
            }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    return FC_OK;
}

static int FCN(dw_backward_input_cf)(const fc_conv2d_params *p, const FC_T *dy,
                                     const FC_T *kernel, FC_T *dx)
{
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t C = p->c_out, cin = p->c_in, M = C / cin, kh = p->kh, kw = p->kw;
    const int64_t taps = kh * kw, sh = p->stride_h, sw = p->stride_w, pl = p->pad_left;
    const int64_t reach_h = (kh - 1) * p->dilation_h, reach_w = (kw - 1) * p->dilation_w;
    const int64_t out_w = p->out_w;
    /* dy rows are staged with lp zeros on the left: a phase's pixel q reads
     * dy column q - e (0 <= e <= lp), whole vectors up to column qmax + vl */
    const int64_t lp = reach_w / sw, qmax = floor_div(p->w - 1 + pl, sw) + 1;
    const int64_t wd = lp + max64(out_w, qmax + t->vl);
    /* bands of dx rows whose M x (dy rows) fit the staging budget */
    const int64_t fit = max64(1, FC_DW_STAGE_BYTES / (M * wd * (int64_t)sizeof(FC_T)));
    int64_t band = fit > (p->h + reach_h) / sh + 1 ? p->h : clamp64(fit * sh - reach_h, 1, p->h);
    band = FCN(dw_bands_for_threads)(p, p->n * cin, band, p->h);
    const int64_t nbands = (p->h + band - 1) / band, items = p->n * cin * nbands;
    const int64_t rows_max = (band - 1 + reach_h) / sh + 1;
    const int64_t staged = fc_mul(fc_mul(M, rows_max), wd);
    if (staged < 0)
        return FC_ERR_OVERFLOW;
    const int64_t stage = sw > 1 ? qmax + t->vl : 0;
    const int64_t words = FC_DW_WORDS(staged) + FC_DW_WORDS(stage) + M * taps +
                          FC_DW_WORDS(M * taps) + 24;
    const double work = (double)p->n * (double)p->out_h * (double)out_w * (double)C *
                        (double)taps;
    const int nthreads = fc_pick_threads(p->n_threads, work, items);
    char *scratch = (char *)fc_malloc(fc_mul(words, nthreads), 8);
    if (scratch == NULL)
        return FC_ERR_NOMEM;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        char *mine = scratch + (size_t)(words * 8) * (size_t)tid;
        const FC_T **src = (const FC_T **)mine;
        FC_T *wt = (FC_T *)(mine + M * taps * 8);
        FC_T *rows = (FC_T *)(mine + (M * taps + FC_DW_WORDS(M * taps) + 8) * 8);
        FC_T *stage_row = (FC_T *)(mine + (M * taps + FC_DW_WORDS(M * taps) +
                                           FC_DW_WORDS(staged) + 16) * 8);
        FCN(fc_dw_rows_args) a;
        a.src = src;
        a.wt = wt;
        a.bias = 0;
        a.relu = 0;
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t pl_idx = item / nbands, img = pl_idx / cin, ci = pl_idx - img * cin;
            const int64_t ih0 = (item - pl_idx * nbands) * band;
            const int64_t ih1 = min64(ih0 + band, p->h);
            const int64_t oh_lo = max64(0, ceil_div(ih0 + p->pad_top - reach_h, sh));
            const int64_t oh_hi = min64(p->out_h, floor_div(ih1 - 1 + p->pad_top, sh) + 1);
            for (int64_t m = 0; m < M; ++m) {
                const FC_T *plane = dy + (img * C + ci * M + m) * p->out_h * out_w;
                for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
                    FC_T *row = rows + (m * rows_max + oh - oh_lo) * wd;
                    memset(row, 0, (size_t)lp * sizeof(FC_T));
                    memcpy(row + lp, plane + oh * out_w, (size_t)out_w * sizeof(FC_T));
                    memset(row + lp + out_w, 0, (size_t)(wd - lp - out_w) * sizeof(FC_T));
                }
            }
            for (int64_t ih = ih0; ih < ih1; ++ih) {
                FC_T *dxrow = dx + (pl_idx * p->h + ih) * p->w;
                for (int64_t r = 0; r < sw; ++r) {
                    const int64_t q_lo = max64(0, ceil_div(pl - r, sw));
                    const int64_t q_hi = floor_div(p->w - 1 + pl - r, sw) + 1;
                    if (q_hi <= q_lo)
                        continue;
                    a.ntaps = 0;
                    for (int64_t m = 0; m < M; ++m) {
                        const FC_T *kern = kernel + (ci * M + m) * taps;
                        for (int64_t i = 0; i < kh; ++i) {
                            const int64_t tt = ih + p->pad_top - i * p->dilation_h;
                            if (tt < 0)
                                break;
                            if (tt % sh != 0 || tt / sh >= p->out_h)
                                continue;
                            const FC_T *row = rows + (m * rows_max + tt / sh - oh_lo) * wd + lp + q_lo;
                            for (int64_t j = 0; j < kw; ++j) {
                                const int64_t jd = j * p->dilation_w;
                                if (jd % sw != r)
                                    continue;
                                src[a.ntaps] = row - (jd - r) / sw;
                                wt[a.ntaps] = kern[i * kw + j];
                                ++a.ntaps;
                            }
                        }
                    }
                    a.len = q_hi - q_lo;
                    a.out = sw == 1 ? dxrow : stage_row;
                    t->dw_rows(&a);
                    if (sw > 1)
                        FCN(dw_scatter)(dxrow, stage_row, q_lo, q_hi, sw, r - pl);
                }
            }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    return FC_OK;
}

/* What a channels-first weight-gradient item needs. */
typedef struct FCN(dw_wgrad_cf) {
    const fc_conv2d_params *p;
    const FCN(fc_kernel_table) *t;
    const FC_T *dy, *x;
    dw_chunks chunks;
    int64_t wp, row_vals, plane_words;
} FCN(dw_wgrad_cf);

/* Chunk `chunk`, input channels [unit * FC_DW_CF_GROUP, ...): dk (OIHW) and
 * db of their output channels. */
static void FCN(dw_wgrad_cf_item)(const void *vctx, int64_t chunk, int64_t unit, FC_T *dk,
                                  FC_T *db, void *scratch)
{
    const FCN(dw_wgrad_cf) *ctx = (const FCN(dw_wgrad_cf) *)vctx;
    const fc_conv2d_params *p = ctx->p;
    const int64_t C = p->c_out, cin = p->c_in, M = C / cin, kh = p->kh, kw = p->kw;
    const int64_t taps = kh * kw, sh = p->stride_h, sw = p->stride_w;
    const int64_t wp = ctx->wp, row_vals = ctx->row_vals, rows_max = ctx->chunks.rows_max;
    int64_t img, oh0, oh1;
    dw_chunk(p, &ctx->chunks, chunk, &img, &oh0, &oh1);
    const int64_t R0 = oh0 * sh, R1 = (oh1 - 1) * sh + (kh - 1) * p->dilation_h + 1;

    FC_T *plane = (FC_T *)scratch;
    const FC_T **xs = (const FC_T **)((char *)scratch + ctx->plane_words * 8);
    const FC_T **ds = xs + rows_max;
    int64_t *tap_off = (int64_t *)(ds + rows_max);
    for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j) {
            const int64_t jd = j * p->dilation_w;
            tap_off[i * kw + j] = i * p->dilation_h * row_vals + (jd % sw) * wp + jd / sw;
        }
    for (int64_t oh = oh0; oh < oh1; ++oh)
        xs[oh - oh0] = plane + (oh - oh0) * sh * row_vals;
    const int64_t ntiles = (taps + FC_DW_MAX_DOTS - 1) / FC_DW_MAX_DOTS;
    FCN(fc_dw_dots_args) a;
    a.nruns = oh1 - oh0;
    a.x = xs;
    a.d = ds;
    a.len = p->out_w;
    const int64_t ci1 = min64(cin, (unit + 1) * FC_DW_CF_GROUP);
    for (int64_t ci = unit * FC_DW_CF_GROUP; ci < ci1; ++ci) {
        FCN(dw_phase_copy)(p, ctx->x + (img * cin + ci) * p->h * p->w, R0, R1, wp, plane);
        for (int64_t m = 0; m < M; ++m) {
            const int64_t o = ci * M + m;
            for (int64_t oh = oh0; oh < oh1; ++oh)
                ds[oh - oh0] = ctx->dy + ((img * C + o) * p->out_h + oh) * p->out_w;
            for (int64_t k = 0; k < ntiles; ++k) {
                int64_t t0, nt;
                block_of(taps, ntiles, k, &t0, &nt);
                a.tap_off = tap_off + t0;
                a.ntaps = nt;
                a.out = dk + o * taps + t0;
                a.db = k == 0 && db != NULL ? db + o : NULL;
                ctx->t->dw_dots(&a);
            }
        }
    }
}

static int FCN(dw_backward_kernel_cf)(const fc_conv2d_params *p, const FC_T *dy, const FC_T *x,
                                      FC_T *dkernel, FC_T *dbias)
{
    FCN(dw_wgrad_cf) ctx;
    ctx.p = p;
    ctx.t = FCN(fc_active_kernels)();
    ctx.dy = dy;
    ctx.x = x;
    ctx.chunks = dw_chunks_of(p);
    ctx.wp = FCN(dw_phase_width)(p, ctx.t->vl);
    ctx.row_vals = fc_mul(p->stride_w, ctx.wp);
    const int64_t span = dw_span(ctx.chunks.rows_max, p->stride_h, (p->kh - 1) * p->dilation_h);
    const int64_t plane = ctx.row_vals < 0 || span < 0 ? -1 : fc_mul(span, ctx.row_vals);
    if (plane < 0)
        return FC_ERR_OVERFLOW;
    ctx.plane_words = FC_DW_WORDS(plane) + 8;
    const int64_t words = ctx.plane_words + 2 * ctx.chunks.rows_max + p->kh * p->kw + 8;
    const int64_t units = (p->c_in + FC_DW_CF_GROUP - 1) / FC_DW_CF_GROUP;
    return FCN(dw_reduce)(p, ctx.chunks.n, units, p->kh * p->kw * p->c_out, words,
                          FCN(dw_wgrad_cf_item), &ctx, dkernel, dbias);
}

/* ===========================================================================
 * Entry points
 */

int FCN(fc_depthwise_conv2d_forward)(const fc_conv2d_params *p, const FC_T *x,
                                     const FC_T *kernel, const FC_T *bias, FC_T *y)
{
    const int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c_out == 0)
        return FC_OK;
    if (x == NULL || kernel == NULL || y == NULL)
        return FC_ERR_ARG;
    return p->channels_first ? FCN(dw_forward_cf)(p, x, kernel, bias, y)
                             : FCN(dw_forward_cl)(p, x, kernel, bias, y);
}

int FCN(fc_depthwise_conv2d_backward_input)(const fc_conv2d_params *p, const FC_T *dy,
                                            const FC_T *kernel, FC_T *dx)
{
    const int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c_in == 0)
        return FC_OK;
    if (dx == NULL)
        return FC_ERR_ARG;
    if (p->c_out == 0) {   /* a multiplier of 0: dx sums over nothing */
        memset(dx, 0, (size_t)(p->n * p->h * p->w * p->c_in) * sizeof(FC_T));
        return FC_OK;
    }
    if (dy == NULL || kernel == NULL)
        return FC_ERR_ARG;
    return p->channels_first ? FCN(dw_backward_input_cf)(p, dy, kernel, dx)
                             : FCN(dw_backward_input_cl)(p, dy, kernel, dx);
}

int FCN(fc_depthwise_conv2d_backward_kernel)(const fc_conv2d_params *p, const FC_T *dy,
                                             const FC_T *x, FC_T *dkernel, FC_T *dbias)
{
    const int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->c_out == 0)
        return FC_OK;
    if (dkernel == NULL)
        return FC_ERR_ARG;
    if (p->n == 0) {
        memset(dkernel, 0, (size_t)(p->kh * p->kw * p->c_out) * sizeof(FC_T));
        if (dbias != NULL)
            memset(dbias, 0, (size_t)p->c_out * sizeof(FC_T));
        return FC_OK;
    }
    if (dy == NULL || x == NULL)
        return FC_ERR_ARG;
    return p->channels_first ? FCN(dw_backward_kernel_cf)(p, dy, x, dkernel, dbias)
                             : FCN(dw_backward_kernel_cl)(p, dy, x, dkernel, dbias);
}
