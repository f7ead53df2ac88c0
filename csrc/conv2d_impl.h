/*
 * conv2d_impl.h: the convolution drivers for one element type (FC_T, names
 * through FCN, FC_IS_F64), compiled twice by conv2d.c. No include guard, on
 * purpose. conv2d.c describes the algorithms.
 */

static FCN(fc_igemm_fn) FCN(igemm_for)(const FCN(fc_kernel_table) *t, int mr, int nv, int tail)
{
    FCN(fc_igemm_fn) fn = t->igemm[mr][nv][tail];
    return fn ? fn : t->igemm_any;
}

static FCN(fc_wgrad_fn) FCN(wgrad_for)(const FCN(fc_kernel_table) *t, int mr, int nv, int tail)
{
    FCN(fc_wgrad_fn) fn = t->wgrad[mr][nv][tail];
    return fn ? fn : t->wgrad_any;
}

/* n groups of C floats, src step src_step, dst step dst_step; C is a
 * compile-time constant at each call so the group copy is a few moves. */
FC_ALWAYS_INLINE void FCN(copy_groups)(FC_T *FC_RESTRICT dst, int64_t dst_step,
                                  const FC_T *FC_RESTRICT src, int64_t src_step, int64_t n,
                                  const int C)
{
    for (int64_t r = 0; r < n; ++r, dst += dst_step, src += src_step)
        for (int ch = 0; ch < C; ++ch)
            dst[ch] = src[ch];
}

FC_ALWAYS_INLINE void FCN(zero_groups)(FC_T *FC_RESTRICT dst, int64_t dst_step, int64_t n,
                                  int64_t c)
{
    for (int64_t r = 0; r < n; ++r, dst += dst_step)
        for (int64_t ch = 0; ch < c; ++ch)
            dst[ch] = 0.0f;
}

/* The im2col rows of the out_w pixels of output row (img, oh): dst[ow]
 * holds pixel ow's kh x kw x c_in window (c_in <= FC_FEW_CHANNELS), zero
 * where it is padding. One pass per tap, each reading one input row at a
 * fixed column step: padding at the ends, a plain strided copy between. */
static void FCN(gather_row)(const fc_conv2d_params *p, const FC_T *x, int64_t img, int64_t oh,
                       FC_T *FC_RESTRICT dst)
{
    const int64_t c = p->c_in, K = p->kh * p->kw * c, s = p->stride_w, n = p->out_w;
    const FC_T *image = x + img * p->h * p->w * c;
    for (int64_t i = 0; i < p->kh; ++i) {
        const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
        const int row_inside = (uint64_t)ih < (uint64_t)p->h;
        const FC_T *row = image + (row_inside ? ih : 0) * p->w * c;
        for (int64_t j = 0; j < p->kw; ++j) {
            FC_T *out = dst + (i * p->kw + j) * c;
            /* pixel ow reads input column iw0 + ow * s: inside for ow in [lo, hi) */
            const int64_t iw0 = j * p->dilation_w - p->pad_left;
            int64_t lo = 0, hi = 0;
            if (row_inside && iw0 < p->w) {
                lo = iw0 >= 0 ? 0 : min64(ceil_div(-iw0, s), n);
                hi = max64(lo, min64(n, (p->w - 1 - iw0) / s + 1));
            }
            FCN(zero_groups)(out, K, lo, c);
            if (hi > lo) {
                const FC_T *src = row + (iw0 + lo * s) * c;
                switch (c) {
                case 1: FCN(copy_groups)(out + lo * K, K, src, s, hi - lo, 1); break;
                case 2: FCN(copy_groups)(out + lo * K, K, src, s * 2, hi - lo, 2); break;
                case 3: FCN(copy_groups)(out + lo * K, K, src, s * 3, hi - lo, 3); break;
                case 4: FCN(copy_groups)(out + lo * K, K, src, s * 4, hi - lo, 4); break;
                default: break;   /* c_in 0: windows of no floats */
                }
            }
            FCN(zero_groups)(out + hi * K, K, n - hi, c);
        }
    }
}

/*
 * The micro-kernels read whole vectors of B rows (fc_igemm_args); with a
 * channel tail (n_cols not a whole number of vectors) the reads of B's last
 * rows, as many as one vector spans, would leave an unpadded B. B is
 * ntaps x k_row rows of n_cols floats, read in K blocks of kc rows per tap:
 * the blocks from *first_row on are to read the returned copy, padded by a
 * vector, in B's place. NULL when nothing needs it (*first_row: past the
 * end); *status is FC_ERR_NOMEM when the copy could not be made.
 */
static FC_T *FCN(copy_b_end)(const FC_T *b, int64_t ntaps, int64_t k_row, int64_t kc,
                         int64_t n_cols, int vl, int64_t *first_row, int *status)
{
    const int64_t rows = ntaps * k_row;
    *first_row = rows;
    *status = FC_OK;
    if (n_cols % vl == 0 || rows == 0)
        return NULL;
    const int64_t last = rows - min64(ceil_div(vl, n_cols), rows);
    const int64_t tap = last / k_row;   /* the K block holding row `last` */
    *first_row = tap * k_row + (last - tap * k_row) / kc * kc;
    const int64_t floats = (rows - *first_row) * n_cols;
    FC_T *copy = (FC_T *)fc_calloc(floats + vl, sizeof(FC_T));
    if (copy == NULL) {
        *status = FC_ERR_NOMEM;
        return NULL;
    }
    memcpy(copy, b + *first_row * n_cols, (size_t)floats * sizeof(FC_T));
    return copy;
}

/* ------------------------------------------------------------------------ */
/* Shared driver of the two indirect GEMMs.                                  */

typedef struct FCN(igemm_problem) {
    const fc_conv2d_params *p;
    int backward;            /* 0: forward, 1: backward-input */
    int relu;                /* max(out, 0) after the last K block */
    const FC_T *a_src;      /* x (forward) or dy (backward) */
    const FC_T *b_src;      /* the kernel, or B packed into panels (b_packed) */
    int b_packed;            /* panel p at p * panel_stride, rows of ldb floats */
    int64_t ldb, panel_stride;
    const FC_T *bias;
    FC_T *out;
    int64_t m;               /* GEMM rows (pixels of the output array) */
    int64_t out_h, out_w;    /* spatial size of the output array */
    int64_t n_cols;          /* GEMM columns: the output channels of one group
                                (c_out / groups forward, c_in / groups backward) */
    int64_t ldc;             /* values between output pixels (c_out or c_in) */
    int64_t b_ld;            /* row stride of the kernel in b_src (c_out): the
                                columns of other groups lie between */
    int64_t a_ch;            /* floats per pixel of the A source */
    int64_t k_row;           /* floats per A row of one tap */
    int64_t ntaps;           /* taps per pixel in the pointer table */
    int mr;                  /* pixels per tile at most (the widest panel's register tile) */
    /* Row-aligned tiles: every row of the output array (every stride phase
     * of a row, backward) is cut into balanced tiles of at most mr pixels,
     * the same cut for every row. 0 tiles_per_row: flat tiles of mr
     * consecutive pixels (rows too short to fill a tile). */
    int64_t tiles_per_row;
    /* 1x1 stride-1 unpadded, forward or input gradient: GEMM row i is
     * pixel i, A row i at a_src + i * a_ch and C row i at out + i * ldc, so
     * tiles need no pixel coordinates (flat tiles; at 32-64 input channels
     * the pixel bookkeeping took as long as a tile's arithmetic; the 1x1
     * bench layer's whole backward, input gradient taking it too, 0.95x the
     * time at 1 and 2 threads, Zen 5, separate processes alternating). */
    int plain;
    const int64_t *tile_q0;  /* [tiles_per_row] first position in the column order */
    const int64_t *tile_w;   /* [tiles_per_row] pixels */
    int64_t panel_groups;    /* panels split across threads only for few tiles */
    int64_t ntiles;
    /* K blocks: groups of taps (a B block that fits L1) x ranges of k_row
     * (single-tap problems with long rows). */
    int64_t tap_group, ngroups;
    int64_t kc, nkc;
    const int64_t *w_order;  /* backward: input columns in stride-phase order */
    /* backward, flat tiles: an image's pixels as (row, col) pairs (a
     * division per pixel cost a tenth of a call), in order of their stride
     * phase (rh, rw), then row, then column, so that a tile of consecutive
     * GEMM rows reaches the same taps (mixing phases, a tile would multiply
     * the union of their taps, mostly by zero rows) */
    const int64_t *pix_order;
    /* backward: i * dilation_h = tq_h[i] * stride_h + tr_h[i], same for j */
    const int64_t *tq_h, *tr_h, *tq_w, *tr_w;
    /* backward: row + pad_top = row_q[row] * stride_h + row_r[row], same for
     * columns (tables: a division per pixel cost a tenth of a strided call) */
    const int64_t *row_q, *row_r, *col_q, *col_r;
    const FC_T *zero;       /* a zero row of at least k_row floats */
    /* Unpacked B with a channel tail: K blocks from b_end_row on read
     * b_end (copy_b_end) instead. */
    const FC_T *b_end;
    int64_t b_end_row;
    /* Forward: B already packed into panels (fc_conv2d_prepare_kernel);
     * NULL: packed here when it pays, or read in place. */
    const FC_T *b_prepacked;
} FCN(igemm_problem);



typedef struct FCN(igemm_scratch) {
    const FC_T **a;   /* [ntaps * mr] */
    const FC_T **b;   /* [ntaps] */
    int64_t *tap;      /* [ntaps] live tap indices */
    const FC_T **a_next;  /* a and tap of the pass's next tile, built ahead to */
    int64_t *tap_next;     /* prefetch its rows (run_igemm_items) */
    FC_T **c;         /* [mr] */
    pixel *pix;        /* [FC_TILES_PER_PASS * mr] */
    unsigned char *started;  /* [FC_TILES_PER_PASS * panels per group] */
} FCN(igemm_scratch);

/* A valid pixel at (img, row, col) of the output array, with what tap_row
 * needs: its window's top-left input cell (forward), or row + pad and
 * col + pad split into quotient and remainder by the stride (backward). */
static void FCN(set_pixel)(const FCN(igemm_problem) *g, pixel *px, int64_t img, int64_t row, int64_t col)
{
    const fc_conv2d_params *p = g->p;
    px->valid = 1;
    px->img = img;
    px->row = row;
    px->col = col;
    px->h0 = row * p->stride_h - p->pad_top;
    px->w0 = col * p->stride_w - p->pad_left;
    if (g->backward) {
        px->qh = g->row_q[row];
        px->rh = g->row_r[row];
        px->qw = g->col_q[col];
        px->rw = g->col_r[col];
    }
}

/* Coordinates of GEMM rows [m0, m0 + count), one division for the first. */
static void FCN(pixels_of)(const FCN(igemm_problem) *g, int64_t m0, int64_t count, pixel *px)
{
    const int64_t hh = g->out_h, ww = g->out_w;
    int64_t img = m0 / (hh * ww), rem = m0 - img * hh * ww;
    if (g->pix_order != NULL) {
        for (int64_t i = 0; i < count; ++i, ++px) {
            FCN(set_pixel)(g, px, img, g->pix_order[2 * rem], g->pix_order[2 * rem + 1]);
            px->valid = m0 + i < g->m;
            if (++rem == hh * ww) {
                rem = 0;
                ++img;
            }
        }
        return;
    }
    int64_t row = rem / ww, q = rem - row * ww;
    for (int64_t i = 0; i < count; ++i, ++px) {
        FCN(set_pixel)(g, px, img, row, g->backward ? g->w_order[q] : q);
        px->valid = m0 + i < g->m;
        if (++q == ww) {
            q = 0;
            if (++row == hh) {
                row = 0;
                ++img;
            }
        }
    }
}

/* Fill the mr pixel slots of a tile (unused slots invalid); returns its
 * width, the register tile height to use. */
static int FCN(tile_pixels)(const FCN(igemm_problem) *g, int64_t tile, pixel *px)
{
    if (g->tiles_per_row == 0) {
        FCN(pixels_of)(g, tile * g->mr, g->mr, px);
        return g->mr;
    }
    const int64_t r = tile / g->tiles_per_row, j = tile - r * g->tiles_per_row;
    const int64_t img = r / g->out_h, row = r - img * g->out_h;
    const int64_t q0 = g->tile_q0[j], width = g->tile_w[j];
    for (int64_t i = 0; i < g->mr; ++i, ++px) {
        px->valid = i < width;
        if (!px->valid)
            continue;
        FCN(set_pixel)(g, px, img, row, g->backward ? g->w_order[q0 + i] : q0 + i);
    }
    return (int)width;
}

/* Row-aligned tiling when it fills tiles well: each segment (an output row
 * forward; a stride phase of an input row backward) is cut into balanced
 * tiles. Returns the number of tiles per row written to q0/width, or 0 for
 * flat tiling (average tile under 3/4 of mr, or under 1/2 for a strided
 * input gradient with a small B per tap). */
static int64_t FCN(plan_row_tiles)(const FCN(igemm_problem) *g, int mr, int64_t *q0, int64_t *width)
{
    const fc_conv2d_params *p = g->p;
    const int64_t nseg = g->backward ? min64(p->stride_w, p->w) : 1;
    int64_t ntiles = 0, start = 0;
    for (int64_t s = 0; s < nseg; ++s) {
        const int64_t len = g->backward ? ceil_div(p->w - s, p->stride_w) : p->out_w;
        const int64_t pieces = ceil_div(len, mr);
        for (int64_t k = 0; k < pieces; ++k) {
            q0[ntiles] = start + k * (len / pieces) + min64(k, len % pieces);
            width[ntiles] = len / pieces + (k < len % pieces ? 1 : 0);
            ++ntiles;
        }
        start += len;
    }
    if (4 * g->out_w >= 3 * mr * ntiles)
        return ntiles;
    /* A strided input gradient's flat tiles (pix_order) read a whole
     * image's dy per stride phase, from L2, while a row's tiles read the
     * few dy rows it meets and get the cheaper pointers of runs. With a
     * small B block per tap (little work per pointer) that outweighs tiles
     * half full. Measured, 3x3 stride-2 transposed convolutions, batch 32,
     * 1 thread, row / flat time: 14x14x64 -> 28x28x32 0.93, 14x14x32 ->
     * 28x28x32 0.85, 28x28x32 -> 56x56x16 0.94; 7x7x64 -> 14x14x64 1.03,
     * 7x7x128 -> 14x14x64 1.09, 14x14x128 -> 28x28x128 1.03. */
    const int strided = p->stride_h > 1 || p->stride_w > 1;
    if (g->backward && strided && 2 * g->out_w >= mr * ntiles &&
        g->k_row * g->n_cols <= FC_ROW_TILES_B_VALUES)
        return ntiles;
    return 0;
}

/* A row pointer for tap (i, j) of a pixel, or NULL where it is padding. */
static inline const FC_T *FCN(tap_row)(const FCN(igemm_problem) *g, const pixel *px, int64_t i,
                                   int64_t j)
{
    const fc_conv2d_params *p = g->p;
    if (!px->valid)
        return NULL;
    if (!g->backward) {
        const int64_t ih = px->h0 + i * p->dilation_h;
        const int64_t iw = px->w0 + j * p->dilation_w;
        if ((uint64_t)ih >= (uint64_t)p->h || (uint64_t)iw >= (uint64_t)p->w)
            return NULL;
        return g->a_src + ((px->img * p->h + ih) * p->w + iw) * g->a_ch;
    }
    /* dx[row, col] receives dy[oh, ow] through tap (i, j) when
     * oh * s - pad + i * d == row, i.e. when row + pad - i * d is a multiple
     * of s: with both sides split into quotient and remainder by s, the
     * remainders must match and oh is the difference of the quotients. */
    if (px->rh != g->tr_h[i] || px->rw != g->tr_w[j])
        return NULL;
    const int64_t oh = px->qh - g->tq_h[i], ow = px->qw - g->tq_w[j];
    if ((uint64_t)oh >= (uint64_t)p->out_h || (uint64_t)ow >= (uint64_t)p->out_w)
        return NULL;
    return g->a_src + ((px->img * p->out_h + oh) * p->out_w + ow) * g->a_ch;
}

/* Whether the mr pixels of a tile are one run of neighbours along a row
 * (output columns step 1 forward; input columns of one stride phase
 * backward): build_tile's fast path. */
static int FCN(tile_is_run)(const FCN(igemm_problem) *g, int mr, const pixel *px)
{
    const int64_t step = g->backward ? g->p->stride_w : 1;
    int run = 1;
    for (int r = 0; r < mr && run; ++r)
        run = px[r].valid && px[r].img == px[0].img && px[r].row == px[0].row &&
              px[r].col == px[0].col + r * step;
    return run;
}

/* Pointer table of one tile for taps [t0, t1) and row offset k0, into
 * a_tab [live * mr + r] and tap_tab [live]; returns the number of live taps
 * (taps that are padding for every pixel are dropped). A run of several
 * taps that all stay inside the rows sets *a_step instead (fc_igemm_args'
 * strided rows): a_tab [live] is then a tap's first row, the others a_step
 * apart; else *a_step is 0. Measured on Zen 5 (in-process A/B, 1 thread),
 * strided / table time: 3x3 stride-2 forward 56x56x64 -> 128 0.94-0.96,
 * 32x32x16 -> 32 0.93-0.96, its input gradient 0.93-0.96; a 1x1 input
 * gradient (one tap, whose table is cheap) 1.06-1.11 in three runs, so
 * single taps keep the table. */
static int64_t FCN(build_tile)(const FCN(igemm_problem) *g, int mr, const pixel *px, int run,
                          int64_t t0, int64_t t1, int64_t k0, const FC_T **a_tab,
                          int64_t *tap_tab, int64_t *a_step)
{
    const fc_conv2d_params *p = g->p;
    int64_t live = 0;
    *a_step = 0;
    /* Fast path for a run: a tap's pointers are a base plus a fixed step,
     * each only checked against the row's ends. */
    if (run) {
        /* the run's columns for the first and last tap of a kernel row */
        const int64_t col_step = g->backward ? 1 : p->stride_w;
        const int64_t span = (mr - 1) * col_step;
        const int64_t first = g->backward ? px[0].qw - g->tq_w[p->kw - 1] : px[0].w0;
        const int64_t last = g->backward ? px[0].qw - g->tq_w[0] + span
                                         : px[0].w0 + (p->kw - 1) * p->dilation_w + span;
        if (t1 - t0 > 1 && first >= 0 && last < (g->backward ? p->out_w : p->w)) {
            int64_t i = t0 / p->kw, j = t0 - i * p->kw;
            for (int64_t tap = t0; tap < t1; ++tap, j = j + 1 == p->kw ? (++i, 0) : j + 1) {
                int64_t at;
                if (!g->backward) {
                    const int64_t ih = px[0].h0 + i * p->dilation_h;
                    if ((uint64_t)ih >= (uint64_t)p->h)
                        continue;
                    at = (px[0].img * p->h + ih) * p->w + px[0].w0 + j * p->dilation_w;
                } else {
                    const int64_t oh = px[0].qh - g->tq_h[i];
                    if (px[0].rh != g->tr_h[i] || px[0].rw != g->tr_w[j] ||
                        (uint64_t)oh >= (uint64_t)p->out_h)
                        continue;
                    at = (px[0].img * p->out_h + oh) * p->out_w + px[0].qw - g->tq_w[j];
                }
                a_tab[live] = g->a_src + at * g->a_ch + k0;
                tap_tab[live++] = tap;
            }
            *a_step = col_step * g->a_ch;
            return live;
        }
        int64_t i = t0 / p->kw, j = t0 - i * p->kw;
        for (int64_t tap = t0; tap < t1; ++tap, j = j + 1 == p->kw ? (++i, 0) : j + 1) {
            const FC_T *row_base;
            int64_t col, col_step, ncols;
            if (!g->backward) {
                const int64_t ih = px[0].h0 + i * p->dilation_h;
                if ((uint64_t)ih >= (uint64_t)p->h)
                    continue;
                row_base = g->a_src + (px[0].img * p->h + ih) * p->w * g->a_ch;
                col = px[0].w0 + j * p->dilation_w;
                col_step = p->stride_w;
                ncols = p->w;
            } else {
                const int64_t oh = px[0].qh - g->tq_h[i];
                if (px[0].rh != g->tr_h[i] || px[0].rw != g->tr_w[j] ||
                    (uint64_t)oh >= (uint64_t)p->out_h)
                    continue;
                row_base = g->a_src + (px[0].img * p->out_h + oh) * p->out_w * g->a_ch;
                col = px[0].qw - g->tq_w[j];
                col_step = 1;
                ncols = p->out_w;
            }
            const FC_T **a = a_tab + live * mr;
            int any = 0;
            for (int r = 0; r < mr; ++r, col += col_step) {
                const int inside = (uint64_t)col < (uint64_t)ncols;
                any |= inside;
                a[r] = inside ? row_base + col * g->a_ch + k0 : g->zero;
            }
            if (any)
                tap_tab[live++] = tap;
        }
        return live;
    }
    /* Backward, a tile of one stride phase (pix_order keeps each phase's
     * pixels together) reaches only that phase's taps: the others are
     * dropped before any pixel is looked at, and the live ones need no
     * phase test per pixel. */
    int one_phase = g->backward;
    for (int r = 1; r < mr && one_phase; ++r)
        one_phase = !px[r].valid || (px[r].rh == px[0].rh && px[r].rw == px[0].rw);
    int64_t i = t0 / p->kw, j = t0 - i * p->kw;
    for (int64_t tap = t0; tap < t1; ++tap, j = j + 1 == p->kw ? (++i, 0) : j + 1) {
        int any = 0;
        const FC_T **a = a_tab + live * mr;
        if (one_phase) {
            if (g->tr_h[i] != px[0].rh || g->tr_w[j] != px[0].rw)
                continue;
            const int64_t dh = g->tq_h[i], dw = g->tq_w[j];
            for (int r = 0; r < mr; ++r) {
                const int64_t oh = px[r].qh - dh, ow = px[r].qw - dw;
                const int inside = px[r].valid && (uint64_t)oh < (uint64_t)p->out_h &&
                                   (uint64_t)ow < (uint64_t)p->out_w;
                any |= inside;
                const int64_t at = (px[r].img * p->out_h + oh) * p->out_w + ow;
                a[r] = inside ? g->a_src + at * g->a_ch + k0 : g->zero;
            }
        } else {
            for (int r = 0; r < mr; ++r) {
                const FC_T *src = FCN(tap_row)(g, &px[r], i, j);
                any |= src != NULL;
                a[r] = src ? src + k0 : g->zero;
            }
        }
        if (any)
            tap_tab[live++] = tap;
    }
    return live;
}

/* Row `row` of B (tap * k_row + k) in panel b_panel, whose columns start at c0. */
static inline const FC_T *FCN(b_row)(const FCN(igemm_problem) *g, const FC_T *b_panel, int64_t c0,
                                     int64_t row)
{
    return g->b_end != NULL && row >= g->b_end_row ? g->b_end + (row - g->b_end_row) * g->ldb + c0
                                                   : b_panel + row * g->ldb;
}

/*
 * Work items are (panel group, tile) pairs, tile-major within a group; a
 * thread owns a contiguous range. Its loop nest, BLIS-like: a pass of up to
 * FC_TILES_PER_PASS tiles (their C stays in L2), K blocks (their B block
 * stays in L1), the group's panels, the pass's tiles. Panels are split into
 * groups only when there are too few tiles to keep every thread busy (dense
 * layers: few pixels, wide B), so each thread reads the input once.
 */
static void FCN(run_igemm_items)(const FCN(igemm_problem) *g, const FCN(fc_kernel_table) *t,
                                 int tid, FCN(igemm_scratch) *s)
{
    const int mr = g->mr;
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    const int64_t ntiles = g->ntiles;
    const int64_t npanels = ceil_div(g->n_cols, nr_panel);
    const int64_t per_group = ceil_div(npanels, g->panel_groups);
    const int64_t nblocks = g->ngroups * g->nkc;
    int64_t begin, end;
    int widths[FC_TILES_PER_PASS];
    unsigned char runs[FC_TILES_PER_PASS];
    fc_thread_range(ntiles * g->panel_groups, FC_TEAM_SIZE(), tid, &begin, &end);

    for (int64_t item = begin; item < end;) {
        const int64_t group = item / ntiles, tile0 = item - group * ntiles;
        const int64_t pass = min64(min64(FC_TILES_PER_PASS, ntiles - tile0), end - item);
        for (int64_t i = 0; i < pass && !g->plain; ++i) {
            widths[i] = FCN(tile_pixels)(g, tile0 + i, s->pix + i * mr);
            runs[i] = (unsigned char)FCN(tile_is_run)(g, widths[i], s->pix + i * mr);
        }
        const int64_t panel0 = group * per_group, panel1 = min64(panel0 + per_group, npanels);
        /* per (tile of the pass, panel of the group): C holds a partial sum */
        memset(s->started, 0, (size_t)(pass * per_group));
        for (int64_t kb = 0; kb < nblocks; ++kb) {
            const int64_t grp = kb / g->nkc, kcb = kb - grp * g->nkc;
            const int64_t t0 = grp * g->tap_group, t1 = min64(t0 + g->tap_group, g->ntaps);
            const int64_t k0 = kcb * g->kc;
            const int64_t kc = min64(g->kc, g->k_row - k0);
            for (int64_t panel = panel0; panel < panel1; ++panel) {
                const int64_t c0 = panel * nr_panel;
                const int64_t nr = min64(nr_panel, g->n_cols - c0);
                const int nv = (int)ceil_div(nr, t->vl);
                const int tail = nr % t->vl != 0;
                const FC_T *b_panel = g->b_src + (g->b_packed ? panel * g->panel_stride : c0);
                const int last = kb == nblocks - 1;
                const int relu = last ? g->relu : 0;
                if (g->plain) {
                    /* The pass's pixels are contiguous: its whole tiles in
                     * one strided call (which prefetches each next tile's
                     * rows), a short last tile of the matrix in another. */
                    const int64_t m0 = tile0 * mr, rows = min64(pass * mr, g->m - m0);
                    const FC_T *b_first = FCN(b_row)(g, b_panel, c0, k0);
                    for (int64_t r0 = 0; r0 < rows;) {
                        const int w = (int)min64(mr, rows - r0);
                        const FC_T *a_first = g->a_src + (m0 + r0) * g->a_ch + k0;
                        FC_T *c_first = g->out + (m0 + r0) * g->ldc + c0;
                        FCN(fc_igemm_args) args = {0};
                        args.ntaps = 1;
                        args.kc = kc;
                        args.a = &a_first;
                        args.b = &b_first;
                        args.ldb = g->ldb;
                        args.nr = nr;
                        args.bias = g->bias ? g->bias + c0 : NULL;
                        args.c = &c_first;
                        args.mr = w;
                        args.nv = nv;
                        args.accumulate = kb > 0;
                        args.relu = relu;
                        args.a_step = g->a_ch;
                        args.c_step = g->ldc;
                        args.m_tiles = w == mr ? (rows - r0) / mr : 1;
                        args.prefetch_a = panel == panel0;
                        /* the next panel's B block while this one runs, where the
                         * pass has few tiles to hide its arrival behind */
                        if (r0 == 0 && pass <= FC_PREFETCH_B_TILES && panel + 1 < panel1)
                            args.b_next = FCN(b_row)(g, g->b_src + (g->b_packed
                                                         ? (panel + 1) * g->panel_stride
                                                         : c0 + nr_panel), c0 + nr_panel, k0);
                        FCN(igemm_for)(t, w, nv, tail)(&args);
                        r0 += args.m_tiles * w;
                    }
                    continue;
                }
                /* The group's first panel meets the K block's A rows first,
                 * from L3 or memory (the later panels find them in L2): there
                 * the rows of the pass's next tile are asked for one call
                 * ahead, its pointer table built a tile early (live_next >= 0:
                 * s->a_next holds tile i's). */
                const int ahead = panel == panel0;
                int64_t live_next = -1, a_step_next = 0;
                for (int64_t i = 0; i < pass; ++i) {
                    const pixel *px = s->pix + i * mr;
                    const int w = widths[i];
                    const int next = ahead && i + 1 < pass;
                    int64_t live, a_step;
                    if (live_next >= 0) {
                        const FC_T **a_tab = s->a;
                        int64_t *tap_tab = s->tap;
                        s->a = s->a_next;
                        s->tap = s->tap_next;
                        s->a_next = a_tab;
                        s->tap_next = tap_tab;
                        live = live_next;
                        a_step = a_step_next;
                        live_next = -1;
                    } else {
                        live = FCN(build_tile)(g, w, px, runs[i], t0, t1, k0, s->a, s->tap,
                                               &a_step);
                    }
                    if (next) {
                        const int wn = widths[i + 1];
                        live_next = FCN(build_tile)(g, wn, s->pix + (i + 1) * mr, runs[i + 1],
                                                    t0, t1, k0, s->a_next, s->tap_next,
                                                    &a_step_next);
                        if (a_step_next)   /* each tap's rows, the run between them too */
                            for (int64_t l = 0; l < live_next; ++l)
                                fc_prefetch_bytes(s->a_next[l], ((wn - 1) * a_step_next + kc) *
                                                                    (int64_t)sizeof(FC_T));
                        else
                            for (int64_t r = 0; r < live_next * wn; ++r)
                                if (s->a_next[r] != g->zero)
                                    fc_prefetch_bytes(s->a_next[r], kc * (int64_t)sizeof(FC_T));
                    }
                    /* A block with no live tap leaves C as it is (strided
                     * backward: most taps miss most stride phases), unless
                     * it is the last and C still needs its bias/zero or ReLU. */
                    unsigned char *begun = &s->started[i * per_group + (panel - panel0)];
                    if (live == 0 && !(last && (!*begun || relu)))
                        continue;
                    for (int64_t l = 0; l < live; ++l)
                        s->b[l] = FCN(b_row)(g, b_panel, c0, s->tap[l] * g->k_row + k0);
                    /* strided A: a run, its C rows evenly spaced too */
                    for (int r = 0; r < (a_step ? 1 : w); ++r)
                        s->c[r] = px[r].valid
                                      ? g->out + ((px[r].img * g->out_h + px[r].row) * g->out_w +
                                                  px[r].col) * g->ldc + c0
                                      : NULL;
                    FCN(fc_igemm_args) args = {0};
                    args.a_step = a_step;
                    args.c_step = (g->backward ? g->p->stride_w : 1) * g->ldc;
                    args.m_tiles = 1;
                    args.ntaps = live;
                    args.kc = kc;
                    args.a = s->a;
                    args.b = s->b;
                    args.ldb = g->ldb;
                    args.nr = nr;
                    args.bias = g->bias ? g->bias + c0 : NULL;
                    args.c = s->c;
                    args.mr = w;
                    args.nv = nv;
                    args.bias_rows = 0;
                    args.accumulate = *begun;
                    args.relu = relu;
                    FCN(igemm_for)(t, w, nv, tail)(&args);
                    *begun = 1;
                }
            }
        }
        item += pass;
    }
}

/*
 * Copy tap `tap` of panel `panel` of B into the packed layout: rows
 * (tap * k_row + k) of nr_panel floats, zero beyond n_cols. Forward, B is the
 * kernel itself; backward, B[tap][c_out][c_in] is the kernel transposed per
 * tap, read 16 input channels at a time so the strided reads stay in cache.
 */
static void FCN(pack_block)(const FCN(igemm_problem) *g, const FC_T *kernel, FC_T *packed,
                       int64_t nr_panel, int64_t panel, int64_t tap)
{
    const int64_t c0 = panel * nr_panel, nr = min64(nr_panel, g->n_cols - c0);
    FC_T *out = packed + panel * g->panel_stride + tap * g->k_row * nr_panel;
    if (!g->backward) {
        const FC_T *in = kernel + tap * g->k_row * g->b_ld + c0;
        for (int64_t k = 0; k < g->k_row; ++k) {
            memcpy(out + k * nr_panel, in + k * g->b_ld, (size_t)nr * sizeof(FC_T));
            memset(out + k * nr_panel + nr, 0, (size_t)(nr_panel - nr) * sizeof(FC_T));
        }
        return;
    }
    /* this tap's (c_in / groups, c_out) block; the group's columns at kernel */
    const FC_T *w = kernel + tap * g->n_cols * g->b_ld;
    for (int64_t j0 = 0; j0 < nr; j0 += 16)
        for (int64_t co = 0; co < g->k_row; ++co)
            for (int64_t j = j0; j < min64(j0 + 16, nr); ++j)
                out[co * nr_panel + j] = w[(c0 + j) * g->b_ld + co];
    for (int64_t co = 0; co < g->k_row; ++co)
        memset(out + co * nr_panel + nr, 0, (size_t)(nr_panel - nr) * sizeof(FC_T));
}

/* Runs the GEMM, first packing B into panels when that pays: always
 * backward (the kernel must be transposed anyway), and forward when there
 * are several panels (a row stride of 128+ floats maps a panel's rows onto
 * a fraction of L1's sets) and enough tiles to reuse the copy (more of them
 * for short rows, which read in place do without it: FC_PACK_SHORT_ROW_*). */
static int FCN(igemm_run)(FCN(igemm_problem) *g, const FCN(fc_kernel_table) *t)
{
    const fc_conv2d_params *p = g->p;
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    const int mr = t->igemm_mr[ceil_div(min64(g->n_cols, nr_panel), t->vl)];
    g->mr = mr;
    int64_t *row_plan = (int64_t *)fc_calloc(2 * p->w + 2 * p->out_w + 2, sizeof(int64_t));
    if (row_plan == NULL)
        return FC_ERR_NOMEM;
    /* A 1x1 stride-1 layer is a plain GEMM over contiguous pixels: flat
     * tiles are all full (rows of 28 would cut into 6+6+6+5+5). */
    const int plain_gemm = p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1;
    g->tiles_per_row = plain_gemm ? 0
                                  : FCN(plan_row_tiles)(g, mr, row_plan, row_plan + p->w + p->out_w + 1);
    g->plain = plain_gemm && p->pad_top == 0 && p->pad_left == 0 &&
               p->out_h == p->h && p->out_w == p->w;
    g->tile_q0 = row_plan;
    g->tile_w = row_plan + p->w + p->out_w + 1;
    g->ntiles = g->tiles_per_row ? (g->m / g->out_w) * g->tiles_per_row : ceil_div(g->m, mr);
    const int64_t ntiles = g->ntiles;
    const int64_t npanels = ceil_div(g->n_cols, nr_panel);
    const double work = (double)g->m * (double)g->ntaps * (double)g->k_row *
                        (double)g->n_cols;
    const int nthreads = fc_pick_threads(p->n_threads, work, ntiles * npanels);
    g->panel_groups = ntiles >= 4 * nthreads ? 1 : min64(npanels, ceil_div(4 * nthreads, ntiles));
    /* A wide B much larger than A (a dense layer's input gradient: B is
     * the whole weight matrix, A a few rows of dy): split the panels, not
     * the tiles, so each thread streams its share of B once instead of all
     * of it. Enough panels per thread keep the split balanced. */
    const double a_floats = (double)g->m * (double)g->a_ch;
    const double b_floats = (double)g->ntaps * (double)g->k_row * (double)g->n_cols;
    if (g->panel_groups == 1 && nthreads > 1 && npanels >= 4 * nthreads && b_floats > 4 * a_floats)
        g->panel_groups = nthreads;

    const FC_T *kernel = g->b_src;
    FC_T *packed = NULL, *b_end = NULL;
    /* (a group's columns of a grouped kernel are strided: always packed) */
    g->b_packed = g->b_prepacked != NULL || g->backward || g->b_ld != g->n_cols ||
                  (npanels > 1 && ntiles >= FC_PACK_MIN_TILES &&
                   (g->n_cols * (int64_t)sizeof(FC_T) >= FC_PACK_SHORT_ROW_BYTES ||
                    ntiles >= FC_PACK_SHORT_ROW_TILES));
    g->ldb = g->b_packed ? nr_panel : g->n_cols;
    g->panel_stride = g->ntaps * g->k_row * nr_panel;
    if (g->b_prepacked != NULL) {
        g->b_src = g->b_prepacked;
    } else if (g->b_packed) {
        /* every value but the 16 of slack is written by pack_block */
        packed = (FC_T *)fc_malloc(fc_mul(npanels, g->panel_stride) + 16, sizeof(FC_T));
        if (packed == NULL) {
            fc_free(row_plan);
            return FC_ERR_NOMEM;
        }
        memset(packed + npanels * g->panel_stride, 0, 16 * sizeof(FC_T));
        g->b_src = packed;
    }

    /* K blocks: groups of taps whose B block of one panel stays in L2
     * (FC_TAP_BLOCK_BYTES), split evenly, and long single-tap rows cut to
     * FC_KC_MAX. */
    const int64_t tap_bytes = max64(g->k_row * min64(g->n_cols, nr_panel) * (int64_t)sizeof(FC_T), 1);
    /* A strided input gradient: a tile reaches only the taps of its stride
     * phase (about 1 / (s_h s_w) of them), so the blocks of the live taps
     * fit together, and one K block per tile spares calls that hold one
     * short tap each (measured with pix_order: a 2x2-stride transposed
     * convolution's forward, 1 thread, 3.45 -> 2.42 ms). */
    const int64_t phases = g->backward ? p->stride_h * p->stride_w : 1;
    const int64_t most_taps = max64(1, min64(g->ntaps, phases * FC_TAP_BLOCK_BYTES / tap_bytes));
    g->ngroups = ceil_div(g->ntaps, most_taps);
    g->tap_group = ceil_div(g->ntaps, g->ngroups);
    g->kc = (g->ntaps == 1 && g->k_row > FC_KC_MAX) ? FC_KC_MAX : g->k_row;
    g->nkc = g->kc > 0 ? ceil_div(g->k_row, g->kc) : 1;
    g->b_end = NULL;
    g->b_end_row = g->ntaps * g->k_row;
    if (!g->b_packed) {
        int status;
        b_end = FCN(copy_b_end)(kernel, g->ntaps, g->k_row, g->kc, g->n_cols, t->vl, &g->b_end_row,
                           &status);
        if (status != FC_OK) {
            fc_free(row_plan);
            return status;
        }
        g->b_end = b_end;
    }

    /* Per-thread scratch, carved out of one block (in 8-byte words). */
    const int64_t tbl = g->ntaps * mr;
    const int64_t words_pix = (int64_t)FC_TILES_PER_PASS * mr * (int64_t)(sizeof(pixel) / 8);
    const int64_t words_started = ceil_div(FC_TILES_PER_PASS * ceil_div(npanels, g->panel_groups), 8);
    const int64_t per_thread = 2 * tbl + 3 * g->ntaps + mr + words_pix + words_started + 8;
    uint64_t *scratch = (uint64_t *)fc_calloc(fc_mul(per_thread, nthreads), 8);
    if (scratch == NULL) {
        fc_free(packed);
        fc_free(b_end);
        fc_free(row_plan);
        return FC_ERR_NOMEM;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        uint64_t *mine = scratch + per_thread * tid;
        FCN(igemm_scratch) s;
        s.a = (const FC_T **)mine;
        s.b = (const FC_T **)(mine + tbl);
        s.tap = (int64_t *)(mine + tbl + g->ntaps);
        s.c = (FC_T **)(mine + tbl + 2 * g->ntaps);
        s.pix = (pixel *)(mine + tbl + 2 * g->ntaps + mr);
        s.started = (unsigned char *)(mine + tbl + 2 * g->ntaps + mr + words_pix);
        s.a_next = (const FC_T **)(mine + tbl + 2 * g->ntaps + mr + words_pix + words_started);
        s.tap_next = (int64_t *)(mine + 2 * tbl + 2 * g->ntaps + mr + words_pix + words_started);

        if (packed != NULL) {
            int64_t b0, b1;
            fc_thread_range(npanels * g->ntaps, FC_TEAM_SIZE(), tid, &b0, &b1);
            for (int64_t item = b0; item < b1; ++item)
                FCN(pack_block)(g, kernel, packed, nr_panel, item / g->ntaps, item % g->ntaps);
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        FCN(run_igemm_items)(g, t, tid, &s);
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    fc_free(packed);
    fc_free(b_end);
    fc_free(row_plan);
    return FC_OK;
}

/* ------------------------------------------------------------------------ */
/* Forward with few input channels (the first layer).                        */

/*
 * K = taps x c_in is tiny here, so the general driver's per-tile pointer
 * tables, K blocks and gathers would cost more than the arithmetic. Each
 * thread takes whole output rows instead. With dilation_w 1 a window's row
 * is kw x c_in contiguous floats and its B rows (i * kw * c_in ...) are
 * contiguous in HWIO, so one micro-kernel tap covers a whole kernel row; the
 * kh input rows an output row reads are used in place, or copied once into
 * zero-padded strips where the row needs padding. With dilation there is
 * one tap per (i, j), pointing into the input row or at a zero row.
 */
static int FCN(few_channel_forward)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                               const FC_T *x, const FC_T *kernel, const FC_T *bias, FC_T *y)
{
    const int64_t c = p->c_in, c_out = p->c_out;
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    const int64_t npanels = ceil_div(c_out, nr_panel);
    const int mr = t->igemm_mr[ceil_div(min64(c_out, nr_panel), t->vl)];
    const int merge = p->dilation_w == 1;
    const int64_t ntaps = merge ? p->kh : p->kh * p->kw;
    const int64_t kc = merge ? p->kw * c : c;
    /* Input columns the windows of one output row span, from -pad_left
     * (padding is at most kw - 1 columns a side here, see check_params). */
    const int64_t span = merge ? (p->out_w - 1) * p->stride_w + p->kw : 0;
    const int in_place = !merge || (p->pad_left == 0 && span <= p->w);
    const int64_t strip = fc_mul(span, c) + 16;
    const int64_t rows = p->n * p->out_h;
    const int64_t tiles_per_row = ceil_div(p->out_w, mr);
    const double work = (double)rows * (double)p->out_w * (double)(p->kh * p->kw) *
                        (double)c * (double)c_out;
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);

    /* Per thread, in 8-byte words: kh strips, the input row of each kernel
     * row, and the micro-kernel's A, B and C pointer tables. */
    const int64_t strips = in_place ? 0 : fc_mul(p->kh, strip);
    const int64_t per_thread = FC_WORDS(strips) + p->kh + ntaps * mr + ntaps + mr + 8;
    FC_T *zero = (FC_T *)fc_calloc(strip, sizeof(FC_T));
    uint64_t *scratch = (uint64_t *)fc_calloc(fc_mul(per_thread, nthreads), 8);
    /* Each tap is one K block of kc rows; with a channel tail the last taps
     * read a padded copy (copy_b_end). */
    int64_t end_row;
    int status;
    FC_T *b_end = FCN(copy_b_end)(kernel, ntaps, kc, kc, c_out, t->vl, &end_row, &status);
    if (zero == NULL || scratch == NULL || status != FC_OK) {
        fc_free(zero);
        fc_free(scratch);
        fc_free(b_end);
        return FC_ERR_NOMEM;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        uint64_t *mine = scratch + per_thread * tid;
        FC_T *strip_mem = (FC_T *)mine;
        const FC_T **src = (const FC_T **)(mine + FC_WORDS(strips));
        const FC_T **a = src + p->kh;
        const FC_T **b = a + ntaps * mr;
        FC_T **out = (FC_T **)(b + ntaps);
        int64_t r0, r1;
        fc_thread_range(rows, FC_TEAM_SIZE(), tid, &r0, &r1);
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t img = r / p->out_h, oh = r - img * p->out_h;
            for (int64_t i = 0; i < p->kh; ++i) {
                const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                if ((uint64_t)ih >= (uint64_t)p->h) {
                    src[i] = zero;
                    continue;
                }
                const FC_T *x_row = x + (img * p->h + ih) * p->w * c;
                if (!merge) {
                    src[i] = x_row;   /* columns checked per tap below */
                    continue;
                }
                if (in_place) {
                    src[i] = x_row;
                    continue;
                }
                /* strip column q holds input column q - pad_left */
                FC_T *dst = strip_mem + i * strip;
                const int64_t q0 = p->pad_left, q1 = min64(span, p->pad_left + p->w);
                memset(dst, 0, (size_t)(min64(q0, span) * c) * sizeof(FC_T));
                if (q1 > q0) {
                    memcpy(dst + q0 * c, x_row, (size_t)((q1 - q0) * c) * sizeof(FC_T));
                    memset(dst + q1 * c, 0, (size_t)((span - q1) * c) * sizeof(FC_T));
                }
                src[i] = dst;
            }
            for (int64_t panel = 0; panel < npanels; ++panel) {
                const int64_t c0 = panel * nr_panel, nr = min64(nr_panel, c_out - c0);
                const int nv = (int)ceil_div(nr, t->vl);
                for (int64_t tap = 0; tap < ntaps; ++tap)
                    b[tap] = b_end != NULL && tap * kc >= end_row
                                 ? b_end + (tap * kc - end_row) * c_out + c0
                                 : kernel + tap * kc * c_out + c0;
                FCN(fc_igemm_args) args = {0};
                args.ntaps = ntaps;
                args.kc = kc;
                args.a = a;
                args.b = b;
                args.ldb = c_out;
                args.nr = nr;
                args.bias = bias ? bias + c0 : NULL;
                args.nv = nv;
                args.relu = p->relu;
                if (merge) {
                    /* A tile's rows are stride_w * c apart in a strip or input row:
                     * strided calls, one per tile width (the balanced widths below),
                     * no pointer tables. The tables' setup took a third of the
                     * first layer's time (perf, Zen 3, 28x28x1 -> 32). */
                    const int64_t wide = p->out_w / tiles_per_row + 1;
                    const int64_t n_wide = p->out_w % tiles_per_row;
                    FC_T *y_row = y + r * p->out_w * c_out + c0;
                    args.a_step = p->stride_w * c;
                    args.c_step = c_out;
                    args.c = &y_row;
                    for (int part = 0; part < 2; ++part) {
                        const int64_t width = part == 0 ? wide : wide - 1;
                        const int64_t ow0 = part == 0 ? 0 : n_wide * wide;
                        args.m_tiles = part == 0 ? n_wide : tiles_per_row - n_wide;
                        if (args.m_tiles == 0 || width == 0)
                            continue;
                        for (int64_t tap = 0; tap < ntaps; ++tap)
                            a[tap] = src[tap] + ow0 * args.a_step;
                        y_row = y + (r * p->out_w + ow0) * c_out + c0;
                        args.mr = (int)width;
                        FCN(igemm_for)(t, (int)width, nv, nr % t->vl != 0)(&args);
                    }
                    continue;
                }
                for (int64_t k = 0; k < tiles_per_row; ++k) {
                    /* balanced tiles: the row's out_w pixels in tiles_per_row pieces */
                    const int64_t ow0 = k * (p->out_w / tiles_per_row) +
                                        min64(k, p->out_w % tiles_per_row);
                    const int width = (int)(p->out_w / tiles_per_row +
                                            (k < p->out_w % tiles_per_row ? 1 : 0));
                    for (int64_t tap = 0; tap < ntaps; ++tap) {
                        const FC_T **a_tap = a + tap * width;
                        const int64_t i = tap / p->kw, j = tap - i * p->kw;
                        int64_t col = ow0 * p->stride_w - p->pad_left + j * p->dilation_w;
                        for (int q = 0; q < width; ++q, col += p->stride_w)
                            a_tap[q] = src[i] != zero && (uint64_t)col < (uint64_t)p->w
                                           ? src[i] + col * c
                                           : zero;
                    }
                    for (int q = 0; q < width; ++q)
                        out[q] = y + (r * p->out_w + ow0 + q) * c_out + c0;
                    args.c = out;
                    args.mr = width;
                    FCN(igemm_for)(t, width, nv, nr % t->vl != 0)(&args);
                }
            }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    fc_free(zero);
    fc_free(b_end);
    return FC_OK;
}

#include "conv2d_nchw_impl.h"

/* ------------------------------------------------------------------------ */
/* Forward with a few GEMM rows and one tap (a dense layer on a few samples). */

/*
 * B (c_in x c_out) is much larger than A and used once, so the time is the
 * stream of B from memory. The general driver cuts the columns into panels
 * of nv_max vectors and reads every row once per panel (two partial passes
 * for 100 columns); here each thread owns a range of column vectors and
 * covers it in as few tiles as gemv_nv allows, for all rows of A at once.
 * A range of more than one tile goes through B in blocks of rows, every
 * tile on a block in turn, so B streams from memory once (measured on Zen 2,
 * in-process A/B, two runs: one sample 10816 -> 100 0.86-0.93x the time at
 * 1 thread, 1024 -> 1000 0.77-0.84x, 4 x 4096 -> 512 0.81-0.87x; 0.66-1.03x
 * at 2 threads; the seed CNN's batch-1 latency 0.96x at 1 thread). Each
 * value is the same chain as in the general driver (bias, then the taps'
 * products in order, ReLU last; a block continues the sums stored by the one
 * before), so a sample's output does not depend on its batch size or the
 * thread count.
 */
static int FCN(gemv_forward)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                             const FC_T *x, const FC_T *kernel, const FC_T *bias, FC_T *y)
{
    const int mr = (int)(p->n * p->out_h * p->out_w);
    const int64_t k = p->c_in, n = p->c_out, vl = t->vl;
    const int64_t nvec = ceil_div(n, vl);
    const int nv_tile = t->gemv_nv[mr];
    const int has_tail = n % vl != 0;
    /* The tail vector reads whole vectors of every B row: past the end of
     * the matrix on the last rows (as many as a vector spans: c_out < vl
     * makes it several), which it reads from a padded copy (copy_b_end,
     * in K blocks of one row: rows from end_row on). */
    int64_t end_row = k;
    int status = FC_OK;
    FC_T *b_end = has_tail ? FCN(copy_b_end)(kernel, 1, k, 1, n, (int)vl, &end_row, &status)
                           : NULL;
    if (status != FC_OK)
        return status;
    const int nthreads = fc_pick_threads(p->n_threads, (double)mr * (double)k * (double)n, nvec);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t v0, v1;
        fc_thread_range(nvec, FC_TEAM_SIZE(), FC_THREAD_ID(), &v0, &v1);
        const int64_t width = (v1 - v0) * vl * (int64_t)sizeof(FC_T);   /* its bytes of a row */
        const int64_t kb_rows =
            v1 - v0 > nv_tile ? max64(FC_GEMV_BLOCK_MIN_ROWS, FC_GEMV_BLOCK_BYTES / width) : k;
        for (int64_t kb0 = 0; kb0 < k; kb0 += kb_rows) {
            const int64_t kb1 = min64(k, kb0 + kb_rows);
            for (int64_t vb = v0; vb < v1; vb += nv_tile) {
                const int nv = (int)min64(nv_tile, v1 - vb);
                const int64_t c0 = vb * vl, nr = min64((int64_t)nv * vl, n - c0);
                const int tail = nr % vl != 0;     /* this tile holds the last columns */
                const FC_T *a[FC_GEMV_MAX_ROWS], *b;
                FC_T *c[FC_GEMV_MAX_ROWS];
                for (int r = 0; r < mr; ++r)
                    c[r] = y + r * n + c0;
                FCN(fc_igemm_args) args = {0};
                args.ntaps = 1;
                args.a = a;
                args.b = &b;
                args.ldb = n;
                args.nr = nr;
                args.bias = bias ? bias + c0 : NULL;
                args.bias_rows = 0;
                args.c = c;
                args.mr = mr;
                args.nv = nv;
                const FCN(fc_igemm_fn) fn = FCN(igemm_for)(t, mr, nv, tail);
                /* rows [kb0, kb1): from the matrix up to end_row when the
                 * tile has the tail, the rest from the padded copy; every
                 * call continues the sums of the rows before it */
                const int64_t in_place = tail && b_end != NULL ? end_row : k;
                const int64_t seg[3] = {kb0, clamp64(in_place, kb0, kb1), kb1};
                for (int part = 0; part < 2; ++part) {
                    if (seg[part + 1] <= seg[part])
                        continue;
                    for (int r = 0; r < mr; ++r)
                        a[r] = x + r * k + seg[part];
                    b = part == 0 ? kernel + seg[0] * n + c0
                                  : b_end + (seg[1] - in_place) * n + c0;
                    args.kc = seg[part + 1] - seg[part];
                    args.accumulate = seg[part] > 0;
                    args.relu = seg[part + 1] == k ? p->relu : 0;
                    fn(&args);
                }
            }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(b_end);
    return FC_OK;
}

/* The indirect GEMM of a forward layer (one group's columns). */
static void FCN(forward_problem)(const fc_conv2d_params *p, FCN(igemm_problem) *g)
{
    const int64_t groups = groups_of(p);
    memset(g, 0, sizeof *g);
    g->p = p;
    g->backward = 0;
    g->relu = p->relu;
    g->m = p->n * p->out_h * p->out_w;
    g->out_h = p->out_h;
    g->out_w = p->out_w;
    g->n_cols = p->c_out / groups;
    g->ldc = p->c_out;
    g->b_ld = p->c_out;
    g->a_ch = p->c_in;
    g->k_row = p->c_in / groups;
    g->ntaps = p->kh * p->kw;
}

/* fc_conv2d_forward's channels-last paths besides Winograd and the GEMM:
 * the first-layer loop (1-4 input channels) and the few-sample pass (a 1x1
 * layer on at most FC_GEMV_MAX_ROWS pixels: dense layers at batch 1-4). */
static int FCN(forward_few_channels)(const fc_conv2d_params *p)
{
    return groups_of(p) == 1 && p->c_in <= FC_FEW_CHANNELS && p->kh * p->kw > 1;
}

static int FCN(forward_few_rows)(const fc_conv2d_params *p)
{
    return groups_of(p) == 1 && p->kh == 1 && p->kw == 1 && p->stride_h == 1 &&
           p->stride_w == 1 && p->pad_top == 0 && p->pad_left == 0 && p->out_h == p->h &&
           p->out_w == p->w && p->n * p->out_h * p->out_w <= FC_GEMV_MAX_ROWS;
}

#if !FC_IS_F64   /* prepared kernels (conv2d.c) are float32's */
/* Whether fc_conv2d_forward runs this (valid) layer by one indirect GEMM:
 * channels last, one group, none of the other paths. */
static int FCN(forward_is_igemm)(const fc_conv2d_params *p)
{
    if (p->channels_first || groups_of(p) != 1 || p->n < 1 || p->c_in < 1 || p->c_out < 1)
        return 0;
#if !FC_IS_F64
    if (fc_winograd_applies(p, 0))
        return 0;
#endif
    return !FCN(forward_few_channels)(p) && !FCN(forward_few_rows)(p);
}

/* B of such a layer packed as igemm_run packs it: panels of the kernel
 * table's widest tile, zero beyond c_out, and a vector of slack. */
static int64_t FCN(forward_packed_floats)(const fc_conv2d_params *p,
                                          const FCN(fc_kernel_table) *t)
{
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    return fc_mul(fc_mul(ceil_div(p->c_out, nr_panel), p->kh * p->kw),
                  fc_mul(p->c_in, nr_panel)) + 16;
}

static void FCN(forward_pack)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                              const FC_T *kernel, FC_T *packed)
{
    FCN(igemm_problem) g;
    FCN(forward_problem)(p, &g);
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    const int64_t npanels = ceil_div(g.n_cols, nr_panel);
    g.panel_stride = g.ntaps * g.k_row * nr_panel;
    for (int64_t panel = 0; panel < npanels; ++panel)
        for (int64_t tap = 0; tap < g.ntaps; ++tap)
            FCN(pack_block)(&g, kernel, packed, nr_panel, panel, tap);
    memset(packed + npanels * g.panel_stride, 0, 16 * sizeof(FC_T));
}
#endif

/* The forward indirect GEMMs, one per group: a group's input channels are a
 * slice of each pixel, its kernel columns and output channels a slice of
 * c_out. With `packed` (one group), B comes packed (forward_pack), not from
 * `kernel`. */
static int FCN(forward_gemm)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                             const FC_T *x, const FC_T *kernel, const FC_T *packed,
                             const FC_T *bias, FC_T *y)
{
    const int64_t groups = groups_of(p), cig = p->c_in / groups, cog = p->c_out / groups;
    FCN(igemm_problem) g;
    FCN(forward_problem)(p, &g);
    FC_T *zero = (FC_T *)fc_calloc(max64(g.k_row, 1) + 64, sizeof(FC_T));
    if (zero == NULL)
        return FC_ERR_NOMEM;
    g.zero = zero;
    g.b_prepacked = packed;
    int status = FC_OK;
    for (int64_t grp = 0; grp < groups && status == FC_OK; ++grp) {
        g.a_src = x + grp * cig;
        g.b_src = packed != NULL ? NULL : kernel + grp * cog;
        g.bias = bias ? bias + grp * cog : NULL;
        g.out = y + grp * cog;
        status = FCN(igemm_run)(&g, t);
    }
    fc_free(zero);
    return status;
}

int FCN(fc_conv2d_forward)(const fc_conv2d_params *p, const FC_T *x, const FC_T *kernel,
                      const FC_T *bias, FC_T *y)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c_out == 0)
        return FC_OK;
    if (x == NULL || kernel == NULL || y == NULL)
        return FC_ERR_ARG;
#if !FC_IS_F64
    if (fc_winograd_applies(p, 0)) {
        status = (p->channels_first ? fc_winograd_conv3x3_nchw : fc_winograd_conv3x3)(
            p->n, p->h, p->w, p->c_in, p->out_h, p->out_w, p->c_out, p->pad_top, p->pad_left, x,
            kernel, 0, bias, p->relu, y, p->n_threads);
        if (status != FC_WINO_NONFINITE)
            return status;
    }
#endif
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    if (p->channels_first)
        return FCN(nchw_forward)(p, t, x, kernel, bias, y);
    if (FCN(forward_few_channels)(p))
        return FCN(few_channel_forward)(p, t, x, kernel, bias, y);
    if (FCN(forward_few_rows)(p))
        return FCN(gemv_forward)(p, t, x, kernel, bias, y);
    return FCN(forward_gemm)(p, t, x, kernel, NULL, bias, y);
}

/*
 * Backward-input with few input channels: the GEMM's N would be c_in, a few
 * lanes of a vector, so each input cell's c_in values are dot products over
 * the taps that reach it instead (dx_few in kernels_impl.h). Threads take
 * whole input rows; every value is one thread's fixed-order sum.
 */
static int FCN(few_channel_backward_input)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                      const FC_T *dy, const FC_T *kernel, FC_T *dx)
{
    /* tap i of input row ih reads output row (ih + pad - i * d) / s when
     * that divides exactly and lies in range; the same for columns */
    int64_t *row_tab = (int64_t *)fc_calloc(fc_mul(p->h, p->kh), sizeof(int64_t));
    int64_t *col_tab = (int64_t *)fc_calloc(fc_mul(p->w, p->kw), sizeof(int64_t));
    if (row_tab == NULL || col_tab == NULL) {
        fc_free(row_tab);
        fc_free(col_tab);
        return FC_ERR_NOMEM;
    }
    for (int64_t ih = 0; ih < p->h; ++ih)
        for (int64_t i = 0; i < p->kh; ++i) {
            const int64_t at = ih + p->pad_top - i * p->dilation_h;
            const int64_t oh = at >= 0 && at % p->stride_h == 0 ? at / p->stride_h : -1;
            row_tab[ih * p->kh + i] = oh < p->out_h ? oh : -1;
        }
    for (int64_t iw = 0; iw < p->w; ++iw)
        for (int64_t j = 0; j < p->kw; ++j) {
            const int64_t at = iw + p->pad_left - j * p->dilation_w;
            const int64_t ow = at >= 0 && at % p->stride_w == 0 ? at / p->stride_w : -1;
            col_tab[iw * p->kw + j] = ow < p->out_w ? ow : -1;
        }
    const int64_t rows = p->n * p->h;
    const double work = (double)rows * (double)p->w * (double)(p->kh * p->kw) *
                        (double)p->c_in * (double)p->c_out /
                        ((double)p->stride_h * (double)p->stride_w);
    const int nthreads = fc_pick_threads(p->n_threads, work, rows);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t r0, r1;
        fc_thread_range(rows, FC_TEAM_SIZE(), FC_THREAD_ID(), &r0, &r1);
        t->dx_few(p, dy, kernel, dx, row_tab, col_tab, r0, r1);
        fc_fpmode_leave(fp);
    }
    fc_free(row_tab);
    fc_free(col_tab);
    return FC_OK;
}

/* out[pixel][ch] += bias[ch] (unless NULL), then max(out, 0) if relu: the
 * epilogue of a path whose micro-kernel has none (few-channel dx). */
static void FCN(add_bias_relu)(FC_T *out, int64_t pixels, int64_t c, const FC_T *bias,
                               int relu, int n_threads)
{
    const int nthreads = fc_pick_threads(n_threads, (double)(pixels * c) / 4.0, pixels);
    (void)nthreads;   /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
#endif
    for (int64_t q = 0; q < pixels; ++q) {
        FC_T *row = out + q * c;
        for (int64_t ch = 0; ch < c; ++ch) {
            const FC_T v = bias != NULL ? row[ch] + bias[ch] : row[ch];
            row[ch] = relu && v < 0 ? 0 : v;   /* NaN stays NaN */
        }
    }
}

/* ------------------------------------------------------------------------ */
/* A dense layer's input gradient, a strip of input features at a time.      */

/*
 * A dense layer (one pixel per sample, a 1x1 kernel) has a kernel
 * (in_features x units) far larger than dy (batch x units). The general
 * input-gradient driver packs the whole kernel transposed before its GEMM:
 * a pass over it that writes as much again, and cold by the time the GEMM
 * reads it. Here each strip of nr_panel input features has its kernel rows
 * (contiguous) transposed into L1 (t->transpose) and the GEMM runs on them
 * at once. Each value is the same chain of products, in the same order, as
 * in the general driver: bit for bit a 1x1 convolution's input gradient,
 * for any thread count. Measured (Xeon with AVX-512, 1 thread, medians of
 * 9, against the forward GEMM between two transposes that dense_backward
 * used for more units than samples, and PyTorch's dy @ W): 64 x 10816 ->
 * 100 0.97 ms / 1.19 / 0.82, 32 x 1024 -> 1000 0.52 / 0.55 / 0.54, one
 * sample 0.18 / 0.32 / 0.15, 256 x 10816 -> 100 3.40 / 4.55 / 3.21.
 * Prefetching the next strip during the GEMM and cutting K into blocks
 * measured no faster.
 */
static int FCN(is_dense)(const fc_conv2d_params *p)
{
    return !p->channels_first && groups_of(p) == 1 && p->kh == 1 && p->kw == 1 && p->h == 1 &&
           p->w == 1 && p->pad_top == 0 && p->pad_left == 0 && p->out_h == 1 && p->out_w == 1;
}

/* rows rows of C (c_step apart) = the same rows of A (a_step apart, kc
 * long) x one panel of B (kc rows ldb apart, nr <= nv_max vectors of
 * columns): tiles of as many rows as the panel's tile takes, then one of
 * the rest; C written, not accumulated. */
static void FCN(panel_gemm)(const FCN(fc_kernel_table) *t, const FC_T *a, int64_t a_step,
                            const FC_T *b, int64_t ldb, int64_t kc, int64_t nr, FC_T *c,
                            int64_t c_step, int64_t rows)
{
    const int nv = (int)ceil_div(nr, t->vl);
    const int tail = nr % t->vl != 0;
    const int mr = t->igemm_mr[nv];
    const FC_T *a_rows[1] = {a};
    const FC_T *b_rows[1] = {b};
    FC_T *c_rows[1] = {c};
    FCN(fc_igemm_args) args;
    memset(&args, 0, sizeof args);
    args.ntaps = 1;
    args.kc = kc;
    args.a = a_rows;
    args.b = b_rows;
    args.ldb = ldb;
    args.nr = nr;
    args.c = c_rows;
    args.nv = nv;
    args.a_step = a_step;
    args.c_step = c_step;
    args.mr = mr;
    args.m_tiles = rows / mr;
    if (args.m_tiles > 0)
        FCN(igemm_for)(t, mr, nv, tail)(&args);
    const int rest = (int)(rows - args.m_tiles * mr);
    if (rest > 0) {
        a_rows[0] += args.m_tiles * mr * a_step;
        c_rows[0] += args.m_tiles * mr * c_step;
        args.mr = rest;
        args.m_tiles = 1;
        FCN(igemm_for)(t, rest, nv, tail)(&args);
    }
}

static int FCN(dense_backward_input)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                     const FC_T *dy, const FC_T *kernel, FC_T *dx)
{
    const int64_t m = p->n, k_in = p->c_in, units = p->c_out;
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    const int64_t nstrips = ceil_div(k_in, nr_panel);
    const int mr_full = t->igemm_mr[t->nv_max];
    const double work = (double)m * (double)k_in * (double)units;
    const int nthreads = fc_pick_threads(p->n_threads, work, nstrips * ceil_div(m, mr_full));
    /* Fewer strips than keep every thread busy: cut the batch into blocks
     * of whole tiles too (each re-transposes its strip). */
    int64_t rows_per_block = m;
    if (nstrips < 4 * nthreads) {
        const int64_t blocks = min64(ceil_div(m, mr_full), ceil_div(4 * nthreads, nstrips));
        rows_per_block = ceil_div(ceil_div(m, blocks), mr_full) * mr_full;
    }
    const int64_t row_blocks = ceil_div(m, rows_per_block);
    const int64_t items = nstrips * row_blocks;
    const int64_t per_thread = units * nr_panel + 16;
    /* The lanes past the last strip's features are read, never used: zeros, or
     * an earlier strip's values. */
    FC_T *scratch = (FC_T *)fc_calloc(fc_mul(per_thread, nthreads), sizeof(FC_T));
    if (scratch == NULL)
        return FC_ERR_NOMEM;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        FC_T *kt = scratch + per_thread * FC_THREAD_ID();   /* units x nr_panel */
        int64_t have = -1;                                 /* the strip in kt */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t item = 0; item < items; ++item) {
            const int64_t strip = item / row_blocks, block = item - strip * row_blocks;
            const int64_t c0 = strip * nr_panel, nr = min64(nr_panel, k_in - c0);
            if (strip != have) {
                t->transpose(kernel + c0 * units, units, kt, nr_panel, nr, units);
                have = strip;
            }
            const int64_t r0 = block * rows_per_block, rows = min64(rows_per_block, m - r0);
            FCN(panel_gemm)(t, dy + r0 * units, units, kt, nr_panel, units, nr,
                            dx + r0 * k_in + c0, k_in, rows);
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    return FC_OK;
}

/* dx = the input gradient of the layer p for dy, + bias (NULL: none), then
 * ReLU if asked: fc_conv2d_backward_input (no bias, no ReLU) and the forward
 * of the transposed convolution of p. */
static int FCN(backward_input)(const fc_conv2d_params *p, const FC_T *dy, const FC_T *kernel,
                               const FC_T *bias, int relu, FC_T *dx)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c_in == 0)
        return FC_OK;
    if (dy == NULL || kernel == NULL || dx == NULL)
        return FC_ERR_ARG;
#if !FC_IS_F64
    if (fc_winograd_applies(p, 1)) {
        /* dx = dy correlated with the flipped, transposed kernel, pads 2 - p. */
        status = (p->channels_first ? fc_winograd_conv3x3_nchw : fc_winograd_conv3x3)(
            p->n, p->out_h, p->out_w, p->c_out, p->h, p->w, p->c_in, 2 - p->pad_top,
            2 - p->pad_left, dy, kernel, 1, bias, relu, dx, p->n_threads);
        if (status != FC_WINO_NONFINITE)
            return status;
    }
#endif
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    if (p->channels_first)
        return FCN(nchw_backward_input)(p, t, dy, kernel, bias, relu, dx);
    if (FCN(is_dense)(p) && bias == NULL && !relu)
        return FCN(dense_backward_input)(p, t, dy, kernel, dx);
    const int64_t taps = p->kh * p->kw;
    const int64_t groups = groups_of(p), cig = p->c_in / groups, cog = p->c_out / groups;
    if (groups == 1 && p->c_in <= FC_FEW_CHANNELS) {
        status = FCN(few_channel_backward_input)(p, t, dy, kernel, dx);
        if (status == FC_OK && (bias != NULL || relu))
            FCN(add_bias_relu)(dx, p->n * p->h * p->w, p->c_in, bias, relu, p->n_threads);
        return status;
    }

    /* One GEMM per group, as forward, with the roles of c_in and c_out swapped. */
    FCN(igemm_problem) g;
    memset(&g, 0, sizeof g);
    g.p = p;
    g.backward = 1;
    g.relu = relu;
    g.m = p->n * p->h * p->w;
    g.out_h = p->h;
    g.out_w = p->w;
    g.n_cols = cig;
    g.ldc = p->c_in;
    g.b_ld = p->c_out;
    g.a_ch = p->c_out;
    g.k_row = cog;
    g.ntaps = taps;

    /* Input columns in stride-phase order (0, s, 2s, ..., 1, 1 + s, ...): a
     * tile of neighbours then shares which taps are live. */
    const int strided = p->stride_h > 1 || p->stride_w > 1;
    int64_t *w_order =
        (int64_t *)fc_calloc(3 * p->w + 2 * p->h + 2 * (p->kh + p->kw), sizeof(int64_t));
    int64_t *pix_order = strided ? (int64_t *)fc_malloc(fc_mul(2 * p->h, p->w), sizeof(int64_t))
                                 : NULL;
    FC_T *zero = (FC_T *)fc_calloc(max64(g.k_row, 1) + 64, sizeof(FC_T));
    if (w_order == NULL || zero == NULL || (strided && pix_order == NULL)) {
        fc_free(w_order);
        fc_free(pix_order);
        fc_free(zero);
        return FC_ERR_NOMEM;
    }
    int64_t q = 0;
    for (int64_t phase = 0; phase < min64(p->stride_w, p->w); ++phase)
        for (int64_t col = phase; col < p->w; col += p->stride_w)
            w_order[q++] = col;
    int64_t *row_q = w_order + p->w, *row_r = row_q + p->h;
    int64_t *col_q = row_r + p->h, *col_r = col_q + p->w;
    for (int64_t row = 0; row < p->h; ++row) {
        row_q[row] = (row + p->pad_top) / p->stride_h;
        row_r[row] = (row + p->pad_top) - row_q[row] * p->stride_h;
    }
    for (int64_t col = 0; col < p->w; ++col) {
        col_q[col] = (col + p->pad_left) / p->stride_w;
        col_r[col] = (col + p->pad_left) - col_q[col] * p->stride_w;
    }
    int64_t *tq_h = col_r + p->w, *tr_h = tq_h + p->kh;
    int64_t *tq_w = tr_h + p->kh, *tr_w = tq_w + p->kw;
    for (int64_t i = 0; i < p->kh; ++i) {
        tq_h[i] = i * p->dilation_h / p->stride_h;
        tr_h[i] = i * p->dilation_h - tq_h[i] * p->stride_h;
    }
    for (int64_t j = 0; j < p->kw; ++j) {
        tq_w[j] = j * p->dilation_w / p->stride_w;
        tr_w[j] = j * p->dilation_w - tq_w[j] * p->stride_w;
    }
    if (pix_order != NULL) {
        int64_t at = 0;
        for (int64_t rh = 0; rh < p->stride_h; ++rh)
            for (int64_t rw = 0; rw < p->stride_w; ++rw)
                for (int64_t row = 0; row < p->h; ++row)
                    for (int64_t col = 0; col < p->w && row_r[row] == rh; ++col)
                        if (col_r[col] == rw) {
                            pix_order[at++] = row;
                            pix_order[at++] = col;
                        }
    }
    g.tq_h = tq_h;
    g.tr_h = tr_h;
    g.tq_w = tq_w;
    g.tr_w = tr_w;
    g.w_order = w_order;
    g.pix_order = pix_order;
    g.row_q = row_q;
    g.row_r = row_r;
    g.col_q = col_q;
    g.col_r = col_r;
    g.zero = zero;
    status = FC_OK;
    for (int64_t grp = 0; grp < groups && status == FC_OK; ++grp) {
        g.a_src = dy + grp * cog;
        g.b_src = kernel + grp * cog;
        g.bias = bias ? bias + grp * cig : NULL;
        g.out = dx + grp * cig;
        status = FCN(igemm_run)(&g, t);
    }
    fc_free(w_order);
    fc_free(pix_order);
    fc_free(zero);
    return status;
}

int FCN(fc_conv2d_backward_input)(const fc_conv2d_params *p, const FC_T *dy, const FC_T *kernel,
                                  FC_T *dx)
{
    return FCN(backward_input)(p, dy, kernel, NULL, 0, dx);
}

int FCN(fc_conv2d_transpose)(const fc_conv2d_params *p, const FC_T *x, const FC_T *kernel,
                             const FC_T *bias, FC_T *y)
{
    return FCN(backward_input)(p, x, kernel, bias, p != NULL && p->relu, y);
}

/* ------------------------------------------------------------------------ */
/* Backward-kernel: chunked, order-fixed reduction over output rows.         */

typedef struct FCN(wgrad_plan) {
    const fc_conv2d_params *p;
    const FC_T *dy, *x;
    int gather;
    int64_t k_rows;          /* rows of dW per tap (c_in / groups), or taps x c_in gathered */
    int64_t groups, cig, cog;    /* conv groups and the channels of one */
    int64_t row_tiles;       /* work units: taps x groups, or 1 when gathering */
    int64_t rows_per_chunk;  /* output rows (n * out_h) per chunk */
    int64_t nchunks;
    int64_t nblocks;         /* row blocks of dW per tap unit */
    int64_t nitems_per_chunk;
    int64_t partial_len;     /* floats per chunk partial: dW then dbias */
    int64_t nr_panel;
    const FC_T *dy_tail;    /* dy's last tail_pixels rows and a vector, or NULL */
    int64_t tail_pixels;
} FCN(wgrad_plan);


typedef struct FCN(wgrad_scratch) {
    const FC_T **a;
    const FC_T **d;
    int64_t *count;
    FC_T *gather;
    FC_T *pack;   /* widely spaced pixels: an item's channels, pixel by pixel */
} FCN(wgrad_scratch);

/*
 * The micro-kernel reads whole vectors of every dy row (fc_wgrad_args);
 * with a channel tail, the reads from dy's last few pixels (the last
 * w->tail_pixels: enough for one vector) would leave the array. The parts of
 * runs over those pixels become runs that read w->dy_tail, a copy of them
 * padded by a vector, with the same layout. Returns the number of runs.
 */
static int64_t FCN(pad_tail_pixels)(const FCN(wgrad_plan) *w, FCN(wgrad_scratch) *s, int64_t nruns,
                               int64_t a_stride)
{
    const fc_conv2d_params *p = w->p;
    if (w->dy_tail == NULL)
        return nruns;
    const int64_t c_out = p->c_out;
    const FC_T *limit = w->dy + (p->n * p->out_h * p->out_w - w->tail_pixels) * c_out;
    const int64_t n0 = nruns;
    for (int64_t r = 0; r < n0; ++r) {
        const FC_T *d0 = s->d[r];
        const int64_t first = d0 >= limit ? 0 : ceil_div((int64_t)(limit - d0), c_out);
        if (first >= s->count[r])
            continue;
        const FC_T *a = s->a[r] + first * a_stride;
        const FC_T *d = w->dy_tail + (d0 + first * c_out - limit);
        if (first == 0) {
            s->a[r] = a;
            s->d[r] = d;
            continue;
        }
        s->a[nruns] = a;
        s->d[nruns] = d;
        s->count[nruns] = s->count[r] - first;
        s->count[r] = first;
        ++nruns;
    }
    return nruns;
}

/* Cuts the runs longer than `most` pixels into pieces of at most `most`, in
 * place and in order (the scratch holds ceil_div(chunk pixels, most) more
 * runs). Returns the number of runs. */
static int64_t FCN(split_runs)(FCN(wgrad_scratch) *s, int64_t nruns, int64_t a_stride,
                              int64_t d_stride, int64_t most)
{
    int64_t total = 0;
    for (int64_t r = 0; r < nruns; ++r)
        total += ceil_div(s->count[r], most);
    /* from the last run back, so that no piece overwrites a run not yet read */
    for (int64_t r = nruns - 1, out = total; r >= 0; --r) {
        const FC_T *a = s->a[r], *d = s->d[r];
        const int64_t count = s->count[r], pieces = ceil_div(count, most);
        out -= pieces;
        for (int64_t q = pieces - 1; q >= 0; --q) {
            s->a[out + q] = a + q * most * a_stride;
            s->d[out + q] = d + q * most * d_stride;
            s->count[out + q] = min64(most, count - q * most);
        }
    }
    return total;
}

/* The end of the window of runs that starts at run r0: the runs after it
 * while their pixels add up to at most `most` (at least one run). */
static int64_t FCN(window_end)(const FCN(wgrad_scratch) *s, int64_t r0, int64_t nruns, int64_t most)
{
    int64_t r1 = r0 + 1, pixels = s->count[r0];
    while (r1 < nruns && pixels + s->count[r1] <= most)
        pixels += s->count[r1++];
    return r1;
}

static void FCN(wgrad_item)(const FCN(wgrad_plan) *w, const FCN(fc_kernel_table) *t, int64_t chunk,
                       int64_t unit, int64_t group, FC_T *partial, FC_T *partial_db,
                       FCN(wgrad_scratch) *s,
                       int want_bias)
{
    const fc_conv2d_params *p = w->p;
    const int64_t row0 = chunk * w->rows_per_chunk;
    const int64_t row1 = min64(row0 + w->rows_per_chunk, p->n * p->out_h);
    int64_t nruns = 0;
    int64_t a_stride, tap_rows0, col0 = 0;   /* col0: the group's first column */

    if (w->gather) {
        /* im2col of the chunk: one run over its contiguous output pixels. */
        FC_T *dst = s->gather;
        for (int64_t r = row0; r < row1; ++r, dst += p->out_w * w->k_rows) {
            const int64_t img = r / p->out_h, oh = r - img * p->out_h;
            FCN(gather_row)(p, w->x, img, oh, dst);
        }
        s->a[0] = s->gather;
        s->d[0] = w->dy + row0 * p->out_w * p->c_out;
        s->count[0] = (row1 - row0) * p->out_w;
        nruns = 1;
        a_stride = w->k_rows;
        tap_rows0 = 0;
    } else {
        /* unit = (tap, conv group); a group's inputs are a slice of each pixel */
        const int64_t tap = unit / w->groups, cg = unit - tap * w->groups;
        const int64_t i = tap / p->kw, j = tap - i * p->kw;
        /* Output columns whose input column for tap j is inside the image:
         * 0 <= ow * s - pad + j * d < w. */
        const int64_t off = j * p->dilation_w - p->pad_left;
        const int64_t lo = off >= 0 ? 0 : ceil_div(-off, p->stride_w);
        const int64_t hi_num = p->w - 1 - off;
        const int64_t hi = hi_num < 0 ? -1 : min64(hi_num / p->stride_w, p->out_w - 1);
        for (int64_t r = row0; r < row1 && hi >= lo; ++r) {
            const int64_t img = r / p->out_h, oh = r - img * p->out_h;
            const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
            if (ih < 0 || ih >= p->h)
                continue;
            const FC_T *a = w->x + ((img * p->h + ih) * p->w + lo * p->stride_w + off) * p->c_in +
                            cg * w->cig;
            const FC_T *d = w->dy + (r * p->out_w + lo) * p->c_out;
            /* A run that continues the previous one in both x and dy (whole
             * rows of a 1x1 stride-1 layer) extends it: fewer, longer runs. */
            if (nruns > 0 &&
                a == s->a[nruns - 1] + s->count[nruns - 1] * p->stride_w * p->c_in &&
                d == s->d[nruns - 1] + s->count[nruns - 1] * p->c_out) {
                s->count[nruns - 1] += hi - lo + 1;
                continue;
            }
            s->a[nruns] = a;
            s->d[nruns] = d;
            s->count[nruns] = hi - lo + 1;
            ++nruns;
        }
        a_stride = p->stride_w * p->c_in;
        tap_rows0 = tap * w->cig;
        col0 = cg * w->cog;
    }
    nruns = FCN(pad_tail_pixels)(w, s, nruns, a_stride);

    const int64_t b0 = group * FC_WGRAD_BLOCKS_PER_ITEM;
    const int64_t b1 = min64(b0 + FC_WGRAD_BLOCKS_PER_ITEM, w->nblocks);
    /* the item's rows of x (channels, or im2col columns): k_begin .. k_end
     * (none without input channels: no blocks) */
    int64_t k_begin = 0, k_end = 0, size;
    if (b1 > b0) {
        block_of(w->k_rows, w->nblocks, b0, &k_begin, &size);
        block_of(w->k_rows, w->nblocks, b1 - 1, &k_end, &size);
        k_end += size;
    }
    int64_t a_off0 = 0;   /* subtracted from each block's first row */
    if (s->pack != NULL) {
        /* Pixels a page or more apart (dense layers: a pixel is a whole
         * input row): copy the item's channels of every pixel together
         * first, so the kernel reads one small block instead of touching a
         * page per pixel. */
        const int64_t width = k_end - k_begin;
        FC_T *dst = s->pack;
        for (int64_t r = 0; r < nruns; ++r) {
            const FC_T *src = s->a[r] + k_begin;
            s->a[r] = dst;
            for (int64_t q = 0; q < s->count[r]; ++q, src += a_stride, dst += width)
                memcpy(dst, src, (size_t)width * sizeof(FC_T));
        }
        a_stride = width;
        a_off0 = k_begin;
    }
    /* Windows of the item's pixels (FC_WGRAD_WINDOW_PIXELS), each summed
     * over all the item's blocks and panels before the next, whose rows of
     * x and dy are asked for meanwhile, a slice per call. The tiles carry
     * their sums from window to window in `partial`: the same additions in
     * the same order as one call per block over the whole chunk. */
    nruns = FCN(split_runs)(s, nruns, a_stride, p->c_out, FC_WGRAD_WINDOW_PIXELS);
    const int64_t npanels = ceil_div(w->cog, w->nr_panel);
    const int64_t calls = npanels * (b1 - b0);
    const int64_t x_bytes = (k_end - k_begin) * (int64_t)sizeof(FC_T);
    const int64_t dy_bytes = w->cog * (int64_t)sizeof(FC_T);
    int64_t r0 = 0;
    do {   /* (no runs: one empty window, whose calls store the zero sums) */
        const int64_t r1 = r0 < nruns ? FCN(window_end)(s, r0, nruns, FC_WGRAD_WINDOW_PIXELS) : r0;
        const int64_t r2 = r1 < nruns ? FCN(window_end)(s, r1, nruns, FC_WGRAD_WINDOW_PIXELS) : r1;
        int64_t next_pixels = 0;
        for (int64_t r = r1; r < r2; ++r)
            next_pixels += s->count[r];
        const int64_t per_call = calls > 0 ? ceil_div(next_pixels, calls) : 0;
        int64_t run = r1, at = 0;   /* the next pixel to ask for: run, pixel */
        for (int64_t panel = 0; panel < npanels; ++panel) {
            const int64_t c0 = col0 + panel * w->nr_panel;
            const int64_t nr = min64(w->nr_panel, col0 + w->cog - c0);
            const int nv = (int)ceil_div(nr, t->vl);
            const int tail = nr % t->vl != 0;
            for (int64_t b = b0; b < b1; ++b) {
                int64_t k0, mr;
                block_of(w->k_rows, w->nblocks, b, &k0, &mr);
                FCN(fc_wgrad_args) args;
                args.nruns = r1 - r0;
                args.a = s->a + r0;
                args.d = s->d + r0;
                args.count = s->count + r0;
                args.a_stride = a_stride;
                args.d_stride = p->c_out;
                args.a_off = k0 - a_off0;
                args.d_off = c0;
                args.nr = nr;
                args.out = partial + (tap_rows0 + k0) * p->c_out + c0;
                args.ldo = p->c_out;
                args.mr = (int)mr;
                args.nv = nv;
                args.accumulate = r0 > 0;
                FCN(wgrad_for)(t, (int)mr, nv, tail)(&args);
                for (int64_t q = 0; q < per_call && run < r2; ++q) {
                    fc_prefetch_bytes(s->a[run] + at * a_stride + (k_begin - a_off0), x_bytes);
                    fc_prefetch_bytes(s->d[run] + at * p->c_out + col0, dy_bytes);
                    if (++at == s->count[run]) {
                        ++run;
                        at = 0;
                    }
                }
            }
        }
        r0 = r1;
    } while (r0 < nruns);

    if (want_bias) {
        t->colsum(w->dy + row0 * p->out_w * p->c_out, (row1 - row0) * p->out_w, p->c_out,
                  p->c_out, partial_db);
    }
}

/* A dense layer's weight gradient (see dense_backward_input), a strip of
 * features at a time: dW^T (units x nr_panel) = dy^T x by the GEMM tile,
 * features along its vectors and units as its rows, x's rows read in place
 * as B; then transposed into the strip's rows of dW. The same chains as the
 * general driver's, for batches of up to FC_WGRAD_CHUNK_PIXELS (it sums
 * larger ones in chunks). Taken for fewer than two vectors of units and
 * samples a page or more apart, where the general driver copies each
 * sample's features per item and its tile (12 rows of one or two vectors)
 * waits on its broadcasts. Measured (Xeon with AVX-512, medians of 9,
 * general driver = 1, at 1 / 2 threads): 128 x 1600 -> 10 (the keras.io
 * MNIST convnet's last layer) 0.39 / 0.37, 64 x 10816 -> 10 0.57 / 0.40,
 * 64 x 1024 -> 30 0.75 / 0.60, 1024 x 1600 -> 10 0.50 / 0.48; at 100 units
 * 0.91 / 1.00 (64 samples), 1.17 / 0.99 (32) and 1.55 (one sample), the
 * transposed store costing what the full lanes save. */
static int FCN(dense_backward_kernel)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                      const FC_T *dy, const FC_T *x, FC_T *dkernel, FC_T *dbias)
{
    const int64_t m = p->n, k_in = p->c_in, units = p->c_out;
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    const int64_t nstrips = ceil_div(k_in, nr_panel);
    const double work = (double)m * (double)k_in * (double)units;
    const int nthreads = fc_pick_threads(p->n_threads, work, nstrips);
    /* shared: dy^T; per thread: dW^T of a strip, and the last strip's x
     * columns padded to whole vectors (the tile reads whole B rows) */
    const int64_t per_thread = (units + m) * nr_panel + 16;
    FC_T *dy_t = (FC_T *)fc_malloc(fc_mul(units, m), sizeof(FC_T));
    FC_T *scratch = (FC_T *)fc_calloc(fc_mul(per_thread, nthreads), sizeof(FC_T));
    if (scratch == NULL || dy_t == NULL) {
        fc_free(dy_t);
        fc_free(scratch);
        return FC_ERR_NOMEM;
    }
    t->transpose(dy, units, dy_t, m, m, units);
    if (dbias != NULL)
        t->colsum(dy, m, units, units, dbias);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        FC_T *dwt = scratch + per_thread * FC_THREAD_ID();   /* units x nr_panel */
        FC_T *x_end = dwt + units * nr_panel;                /* m x nr_panel */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t strip = 0; strip < nstrips; ++strip) {
            const int64_t c0 = strip * nr_panel, nr = min64(nr_panel, k_in - c0);
            const int nv = (int)ceil_div(nr, t->vl);
            const FC_T *b = x + c0;
            int64_t ldb = k_in;
            if (c0 + nv * t->vl > k_in) {
                for (int64_t r = 0; r < m; ++r)
                    memcpy(x_end + r * nr_panel, x + r * k_in + c0, (size_t)nr * sizeof(FC_T));
                b = x_end;
                ldb = nr_panel;
            }
            FCN(panel_gemm)(t, dy_t, m, b, ldb, m, nr, dwt, nr_panel, units);
            t->transpose(dwt, nr_panel, dkernel + c0 * units, units, units, nr);
        }
        fc_fpmode_leave(fp);
    }
    fc_free(dy_t);
    fc_free(scratch);
    return FC_OK;
}

int FCN(fc_conv2d_backward_kernel)(const fc_conv2d_params *p, const FC_T *dy, const FC_T *x,
                              FC_T *dkernel, FC_T *dbias)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->c_out == 0)
        return FC_OK;
    const int64_t taps = p->kh * p->kw;
    const int64_t groups = groups_of(p), cig = p->c_in / groups, cog = p->c_out / groups;
    const int64_t dk_len = taps * cig * p->c_out;
    if (dkernel == NULL && dk_len > 0)
        return FC_ERR_ARG;
    if (p->n == 0) {
        if (dk_len > 0)
            memset(dkernel, 0, (size_t)dk_len * sizeof(FC_T));
        if (dbias)
            memset(dbias, 0, (size_t)p->c_out * sizeof(FC_T));
        return FC_OK;
    }
    if (dy == NULL || (x == NULL && p->c_in > 0))
        return FC_ERR_ARG;
#if !FC_IS_F64
    if (fc_winograd_wgrad_applies(p))
        return fc_winograd_wgrad3x3(p, dy, x, dkernel, dbias);
#endif
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    if (p->channels_first) {
        const fc_conv2d_params flat = FCN(nchw_flat_1x1)(p);
        return FCN(nchw_wgrad_gemm)(&flat, t, dy, x, dkernel, dbias);
    }
    if (FCN(is_dense)(p) && p->n <= FC_WGRAD_CHUNK_PIXELS && p->c_out < 2 * t->vl &&
        p->c_in >= FC_WGRAD_PACK_STRIDE)
        return FCN(dense_backward_kernel)(p, t, dy, x, dkernel, dbias);

    FCN(wgrad_plan) w;
    memset(&w, 0, sizeof w);
    w.p = p;
    w.dy = dy;
    w.x = x;
    w.gather = groups == 1 && taps > 1 && p->c_in <= FC_FEW_CHANNELS;
    w.groups = groups;
    w.cig = cig;
    w.cog = cog;
    w.k_rows = w.gather ? taps * p->c_in : cig;
    w.row_tiles = w.gather ? 1 : taps * groups;
    w.rows_per_chunk = max64(1, FC_WGRAD_CHUNK_PIXELS / p->out_w);
    w.nchunks = ceil_div(p->n * p->out_h, w.rows_per_chunk);
    w.nr_panel = (int64_t)t->nv_max * t->vl;
    /* Row blocks sized for the widest panel's register tile. */
    {
        const int nv_full = (int)ceil_div(min64(cog, w.nr_panel), t->vl);
        const int64_t mr_max = t->wgrad_mr_max[nv_full];
        w.nblocks = w.k_rows > 0 ? ceil_div(w.k_rows, mr_max) : 0;
    }
    const int64_t ngroups = max64(1, ceil_div(w.nblocks, FC_WGRAD_BLOCKS_PER_ITEM));
    w.nitems_per_chunk = w.row_tiles * ngroups;
    w.partial_len = dk_len + p->c_out;

    const int64_t chunk_pixels = w.rows_per_chunk * p->out_w;
    const double work = (double)p->n * (double)(p->out_h * p->out_w) * (double)dk_len;
    const int nthreads = fc_pick_threads(p->n_threads, work, w.nchunks * w.nitems_per_chunk);
    /* Chunks whose partials are held at once: enough to keep every thread
     * busy, within a memory budget. Does not affect the result. */
    int64_t wave = max64(1, FC_WGRAD_PARTIAL_BYTES / (w.partial_len * 4));
    wave = min64(wave, w.nchunks);

    /* + pad_tail_pixels' runs (at most one per pixel it redirects), +
     * split_runs' pieces */
    const int64_t max_runs = w.rows_per_chunk + t->vl + 1 +
                             ceil_div(w.rows_per_chunk * p->out_w, FC_WGRAD_WINDOW_PIXELS);
    /* Pixels at least this many floats apart are packed per item (4 KiB:
     * each would sit on its own page). */
    const int pack = !w.gather && p->stride_w * p->c_in >= FC_WGRAD_PACK_STRIDE;
    int64_t widest_block = 1;
    for (int nv = 1; nv <= t->nv_max; ++nv)
        widest_block = max64(widest_block, t->wgrad_mr_max[nv]);
    const int64_t pack_floats =
        pack ? fc_mul(chunk_pixels, FC_WGRAD_BLOCKS_PER_ITEM * widest_block) : 0;
    const int64_t per_thread = 3 * max_runs + 8 +
                               (w.gather ? FC_WORDS(chunk_pixels * w.k_rows) + 16 : 0) +
                               FC_WORDS(pack_floats) + 16;
    /* One chunk (dense layers, small batches): its sums are the result, so
     * the items write dkernel and dbias directly, with nothing to fold. */
    const int direct = w.nchunks == 1;
    char *scratch = (char *)fc_calloc(fc_mul(per_thread, nthreads), 8);
    FC_T *partials = direct ? NULL : (FC_T *)fc_malloc(fc_mul(wave, w.partial_len), sizeof(FC_T));
    const int64_t total_pixels = p->n * p->out_h * p->out_w;
    w.tail_pixels = cog % t->vl ? min64(ceil_div(t->vl, p->c_out), total_pixels) : 0;
    FC_T *dy_tail =
        w.tail_pixels ? (FC_T *)fc_calloc(w.tail_pixels * p->c_out + t->vl, sizeof(FC_T)) : NULL;
    if (scratch == NULL || (partials == NULL && !direct) || (dy_tail == NULL && w.tail_pixels)) {
        fc_free(scratch);
        fc_free(partials);
        fc_free(dy_tail);
        return FC_ERR_NOMEM;
    }
    if (dy_tail != NULL)
        memcpy(dy_tail, dy + (total_pixels - w.tail_pixels) * p->c_out,
               (size_t)(w.tail_pixels * p->c_out) * sizeof(FC_T));
    w.dy_tail = dy_tail;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        char *mine = scratch + (size_t)(per_thread * 8) * (size_t)tid;
        FCN(wgrad_scratch) s;
        s.a = (const FC_T **)mine;
        s.d = (const FC_T **)(mine + max_runs * 8);
        s.count = (int64_t *)(mine + 2 * max_runs * 8);
        s.gather = w.gather ? (FC_T *)(mine + (3 * max_runs + 8) * 8) : NULL;
        s.pack = pack ? (FC_T *)(mine + (per_thread - FC_WORDS(pack_floats) - 8) * 8) : NULL;

        for (int64_t first = 0; first < w.nchunks; first += wave) {
            const int64_t nwave = min64(wave, w.nchunks - first);
            const int64_t nitems = nwave * w.nitems_per_chunk;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t item = 0; item < nitems; ++item) {
                const int64_t c = item / w.nitems_per_chunk;
                const int64_t rest = item - c * w.nitems_per_chunk;
                const int64_t unit = rest / ngroups, group = rest - unit * ngroups;
                FC_T *partial = direct ? dkernel : partials + c * w.partial_len;
                FCN(wgrad_item)(&w, t, first + c, unit, group, partial,
                           direct ? dbias : partial + dk_len, &s,
                           dbias != NULL && unit == 0 && group == 0);
            }
            if (direct)
                continue;   /* the loop ends: one wave of one chunk */
            /* Fold this wave's partials into the outputs, in chunk order. */
            int64_t e0, e1;
            fc_thread_range(w.partial_len, FC_TEAM_SIZE(), tid, &e0, &e1);
            for (int64_t c = 0; c < nwave; ++c) {
                const FC_T *src = partials + c * w.partial_len;
                const int first_chunk = first + c == 0;
                FCN(fc_fold)(dkernel, src, max64(e0, 0), min64(e1, dk_len), first_chunk);
                if (dbias != NULL)
                    FCN(fc_fold)(dbias, src + dk_len, max64(e0, dk_len) - dk_len, e1 - dk_len,
                            first_chunk);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    fc_free(partials);
    fc_free(dy_tail);
    return FC_OK;
}
