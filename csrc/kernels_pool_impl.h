/*
 * kernels_pool_impl.h: the pooling family's single-threaded micro-kernels
 * (max, average and sum windows, global pooling, upsampling). Included at the
 * end of kernels_impl.h, so compiled once per instruction set and element
 * type over its vector vocabulary (FC_T, FCN, VLOAD, ...). No include guard,
 * on purpose.
 *
 * NHWC kernels hold channels in vectors, FC_POOL_VECS at a time plus a masked
 * tail, the running results in registers.
 *
 * NCHW kernels run along the width in plain C loops that the compiler
 * vectorises under each ISA's flags (GCC 12 does all of them at -O3: the
 * NaN-aware select, stride-2 loads and stores through permutes, others
 * through gathers). A row of outputs splits into its interior (outputs whose
 * window has all its pool_w columns inside the input), reduced by one pass
 * per window cell over the whole interior with the stride a compile-time
 * constant for 1 and 2, and 2-wide windows of stride 2 (the common 2x2 pool)
 * as pairs of input columns in one pass per two window rows; and its border
 * outputs, reduced one at a time. Every output still sees its window's cells
 * in row-major order, so NCHW results equal NHWC ones.
 *
 * The order of every sum is fixed by the problem's shape, never by the
 * threads that run it.
 */

/* A cell replaces the running maximum when it is larger, or when it is NaN
 * and the maximum is not (VTAKE's rule): the first NaN sticks, and among
 * equal values the earliest cell in row-major window order wins. Padded
 * cells are never visited. */
#define FC_POOL_VECS 4

/* Outputs of an NCHW row per block of the max-pool backward's winner search
 * (the running maxima and winners live on the stack). */
#define FC_POOL_ROW_BLOCK 256

/* Pixels per block of the global argmax: the winner's position within a
 * block is kept in FC_T lanes, exact below 2**24. */
#define FC_ARGMAX_BLOCK ((int64_t)1 << 22)

/* Values per lane group of plane_sum. */
#define FC_SUM_LANES 16

#ifndef FC_POOL_HELPERS_DEFINED
#define FC_POOL_HELPERS_DEFINED
/* Real cells of the window of output (oh, ow): rows [*h_lo, *h_hi), cols
 * [*w_lo, *w_hi). */
FC_ALWAYS_INLINE void pool_window(const fc_pool2d_params *p, int64_t oh, int64_t ow,
                                  int64_t *h_lo, int64_t *h_hi, int64_t *w_lo, int64_t *w_hi)
{
    const int64_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    *h_lo = h0 < 0 ? 0 : h0;
    *h_hi = h0 + p->pool_h < p->h ? h0 + p->pool_h : p->h;
    *w_lo = w0 < 0 ? 0 : w0;
    *w_hi = w0 + p->pool_w < p->w ? w0 + p->pool_w : p->w;
}

/* Outputs [*a, *b) of a row whose windows have all pool_w columns inside the
 * input. */
FC_ALWAYS_INLINE void pool_interior(const fc_pool2d_params *p, int64_t *a, int64_t *b)
{
    const int64_t s = p->stride_w;
    const int64_t last = p->w + p->pad_left - p->pool_w;   /* ow * s <= last */
    int64_t lo = (p->pad_left + s - 1) / s, hi = last < 0 ? 0 : last / s + 1;
    lo = lo < p->out_w ? lo : p->out_w;
    hi = hi < p->out_w ? hi : p->out_w;
    *a = lo;
    *b = hi > lo ? hi : lo;
}

/* Outputs [*lo, *hi) along one axis whose windows hold input index i. */
FC_ALWAYS_INLINE void pool_cover(int64_t i, int64_t pad, int64_t pool, int64_t stride,
                                 int64_t out, int64_t *lo, int64_t *hi)
{
    const int64_t first = i + pad - pool + 1;              /* o * stride >= first */
    const int64_t l = first <= 0 ? 0 : (first + stride - 1) / stride;
    int64_t u = (i + pad) / stride + 1;                     /* o * stride <= i + pad */
    u = u < out ? u : out;
    *lo = l;
    *hi = u > l ? u : l;
}
#endif

FC_ALWAYS_INLINE int FCN(pool_take)(FC_T v, FC_T m) { return v > m || (v != v && m == m); }

/* One step of a window reduction: the running result m meets cell v. */
FC_ALWAYS_INLINE FC_T FCN(pool_step)(FC_T m, FC_T v, const int OP)
{
    return OP == FC_POOL_MAX ? (FCN(pool_take)(v, m) ? v : m) : m + v;
}

/* 1 / divisor of an average window with `cells` real cells. */
FC_ALWAYS_INLINE FC_T FCN(pool_rdiv)(const fc_pool2d_params *p, int64_t cells)
{
    return (FC_T)1 / (FC_T)(p->count_include_pad ? p->pool_h * p->pool_w : cells);
}

/* Asks for the cells of the window one output row down (same column, same
 * image) while this one is reduced: the window rows stream in side by side,
 * from memory or L3 when the pooled input was computed long before (a
 * layer's backward, a bench row). Measured on the seed's 64x26x26x64 max
 * pool (Zen 5, 1 thread, medians of 21): the forward right after the caches
 * were swept 0.70x the time, after one warm-up call 0.62x; in the layer
 * bench's alternation with PyTorch, forward 1.10-1.52x PyTorch's time ->
 * 0.73-0.98x, backward 0.76-0.94x -> 0.65-0.85x. */
FC_ALWAYS_INLINE void FCN(prefetch_next_window_row)(const fc_pool2d_params *p, const FC_T *image,
                                                    int64_t oh, int64_t ow)
{
    if (oh + 1 >= p->out_h)
        return;
    int64_t h_lo, h_hi, w_lo, w_hi;
    pool_window(p, oh + 1, ow, &h_lo, &h_hi, &w_lo, &w_hi);
    for (int64_t ih = h_lo; ih < h_hi; ++ih)
        fc_prefetch_bytes(image + (ih * p->w + w_lo) * p->c,
                          (w_hi - w_lo) * p->c * (int64_t)sizeof(FC_T));
}

/* ---------------------------------------------------------------------------
 * NHWC window reductions of output rows [r0, r1) (rows of n * out_h): the
 * max-pool winner, the sum, or the sum times 1 / divisor, of each window's
 * cells in row-major order, channels in vectors.
 */
FC_ALWAYS_INLINE void FCN(pool_reduce_nhwc)(const fc_pool2d_params *p, const FC_T *x, FC_T *y,
                                            int64_t r0, int64_t r1, const int OP)
{
    const int64_t c = p->c;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / p->out_h, oh = r - img * p->out_h;
        const FC_T *image = x + img * p->h * p->w * c;
        for (int64_t ow = 0; ow < p->out_w; ++ow) {
            int64_t h_lo, h_hi, w_lo, w_hi;
            pool_window(p, oh, ow, &h_lo, &h_hi, &w_lo, &w_hi);
            const fc_vec scale =
                VSET1(OP == FC_POOL_AVG ? FCN(pool_rdiv)(p, (h_hi - h_lo) * (w_hi - w_lo)) : 1);
            (void)scale;
            FC_T *out = y + (r * p->out_w + ow) * c;
            FCN(prefetch_next_window_row)(p, image, oh, ow);
            for (int64_t c0 = 0; c0 < c; c0 += FC_POOL_VECS * FC_VL) {
                const int64_t left = c - c0;
                const int nv = left >= FC_POOL_VECS * FC_VL ? FC_POOL_VECS
                                                            : (int)((left + FC_VL - 1) / FC_VL);
                const int tail = left < (int64_t)nv * FC_VL;
                const fc_mask mask = FC_MAKE_MASK(tail ? (int)(left % FC_VL) : FC_VL);
                (void)mask;
                fc_vec m[FC_POOL_VECS];
                const FC_T *first = image + (h_lo * p->w + w_lo) * c + c0;
                for (int v = 0; v < nv; ++v)
                    m[v] = (tail && v == nv - 1) ? VLOAD_M(first + v * FC_VL, mask)
                                                 : VLOAD(first + v * FC_VL);
                for (int64_t ih = h_lo; ih < h_hi; ++ih)
                    for (int64_t iw = (ih == h_lo ? w_lo + 1 : w_lo); iw < w_hi; ++iw) {
                        const FC_T *src = image + (ih * p->w + iw) * c + c0;
                        for (int v = 0; v < nv; ++v) {
                            const fc_vec cell = (tail && v == nv - 1)
                                                    ? VLOAD_M(src + v * FC_VL, mask)
                                                    : VLOAD(src + v * FC_VL);
                            m[v] = OP == FC_POOL_MAX ? VSEL(VTAKE(cell, m[v]), m[v], cell)
                                                     : VADD(m[v], cell);
                        }
                    }
                for (int v = 0; v < nv; ++v) {
                    const fc_vec res = OP == FC_POOL_AVG ? VMUL(m[v], scale) : m[v];
                    if (tail && v == nv - 1)
                        VSTORE_M(out + c0 + v * FC_VL, res, mask);
                    else
                        VSTORE(out + c0 + v * FC_VL, res);
                }
            }
        }
    }
}

/* One vector of channels of one window in the max-pool backward: the winner
 * per lane is found again (its cell number kept as a FC_T, exact for any
 * window size we accept), then every cell gets dy where it won. `xw` and
 * `dw` point at the window's first cell, `row` is the step between its
 * rows; ROWS and COLS > 0 fix the window's size at compile time (the full
 * 2x2 window: unrolled, no loop overhead), else rows x cols. */
FC_ALWAYS_INLINE void FCN(maxpool_bwd_window)(const FC_T *xw, FC_T *dw, const FC_T *g,
                                              int64_t rows, int64_t cols, int64_t row,
                                              int64_t c, int overlap, fc_mask mask,
                                              const int ROWS, const int COLS, const int TAIL)
{
    (void)mask;
    if (ROWS > 0) {
        rows = ROWS;
        cols = COLS;
    }
    fc_vec best = TAIL ? VLOAD_M(xw, mask) : VLOAD(xw);
    fc_vec winner = VZERO();
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
            if (i == 0 && j == 0)
                continue;
            const FC_T *src = xw + i * row + j * c;
            const fc_vec v = TAIL ? VLOAD_M(src, mask) : VLOAD(src);
            const fc_cmp take = VTAKE(v, best);
            best = VSEL(take, best, v);
            winner = VSEL(take, winner, VSET1((FC_T)(i * cols + j)));
        }
    const fc_vec grad = TAIL ? VLOAD_M(g, mask) : VLOAD(g);
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
            FC_T *d = dw + i * row + j * c;
            fc_vec routed = VSEL(VEQ(winner, VSET1((FC_T)(i * cols + j))), VZERO(), grad);
            if (overlap)
                routed = VADD(routed, TAIL ? VLOAD_M(d, mask) : VLOAD(d));
            if (TAIL)
                VSTORE_M(d, routed, mask);
            else
                VSTORE(d, routed);
        }
}

/*
 * Backward over output rows [r0, r1) and channels [c0, c1), a vector of
 * channels at a time (maxpool_bwd_window), the channel tail last.
 * `overlap` = windows may share cells: add into dx (zeroed by the caller);
 * otherwise each cell belongs to one window and is stored directly. Full
 * 2x2 windows take an unrolled body: the seed's 64x26x26x64 pool 0.77x the
 * time at 1 thread, 0.62x at 2 (Zen 3, separate processes alternating,
 * caches swept, medians of 6).
 */
static void FCN(maxpool_bwd_rows)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *x,
                                  FC_T *dx, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                  int overlap)
{
    const int64_t c = p->c, row = p->w * c;
    const int64_t c_full = c0 + (c1 - c0) / FC_VL * FC_VL;
    const fc_mask mask = FC_MAKE_MASK((int)(c1 - c_full));
    (void)mask;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / p->out_h, oh = r - img * p->out_h;
        const size_t image_off = (size_t)(img * p->h * p->w * c);
        for (int64_t ow = 0; ow < p->out_w; ++ow) {
            int64_t h_lo, h_hi, w_lo, w_hi;
            pool_window(p, oh, ow, &h_lo, &h_hi, &w_lo, &w_hi);
            const FC_T *g = dy + (r * p->out_w + ow) * c;
            FCN(prefetch_next_window_row)(p, x + image_off, oh, ow);
            const size_t first = image_off + (size_t)((h_lo * p->w + w_lo) * c);
            const int64_t rows = h_hi - h_lo, cols = w_hi - w_lo;
            int64_t ch = c0;
            if (rows == 2 && cols == 2)
                for (; ch < c_full; ch += FC_VL)
                    FCN(maxpool_bwd_window)(x + first + ch, dx + first + ch, g + ch, 2, 2, row, c,
                                            overlap, mask, 2, 2, 0);
            else
                for (; ch < c_full; ch += FC_VL)
                    FCN(maxpool_bwd_window)(x + first + ch, dx + first + ch, g + ch, rows, cols,
                                            row, c, overlap, mask, 0, 0, 0);
            if (ch < c1)
                FCN(maxpool_bwd_window)(x + first + ch, dx + first + ch, g + ch, rows, cols, row,
                                        c, overlap, mask, 0, 0, 1);
        }
    }
}

/* ---------------------------------------------------------------------------
 * NCHW window reductions, along the width.
 */

/* y[i] = src[i * S] (FIRST), else y[i] (op) src[i * S], for i < n. */
FC_ALWAYS_INLINE void FCN(nchw_pass)(const FC_T *FC_RESTRICT src, FC_T *FC_RESTRICT y, int64_t n,
                                     const int64_t S, const int OP, const int FIRST)
{
    for (int64_t i = 0; i < n; ++i) {
        const FC_T v = src[i * S];
        y[i] = FIRST ? v : FCN(pool_step)(y[i], v, OP);
    }
}

/* Windows 2 columns wide at stride 2: one or (TWO) two window rows a, b at a
 * time, the pair of columns of each output in one pass. */
FC_ALWAYS_INLINE void FCN(nchw_pair_pass)(const FC_T *FC_RESTRICT a, const FC_T *FC_RESTRICT b,
                                          FC_T *FC_RESTRICT y, int64_t n, const int OP,
                                          const int FIRST, const int TWO)
{
    for (int64_t i = 0; i < n; ++i) {
        FC_T m = FIRST ? a[2 * i] : FCN(pool_step)(y[i], a[2 * i], OP);
        m = FCN(pool_step)(m, a[2 * i + 1], OP);
        if (TWO) {
            m = FCN(pool_step)(m, b[2 * i], OP);
            m = FCN(pool_step)(m, b[2 * i + 1], OP);
        }
        y[i] = m;
    }
}

FC_ALWAYS_INLINE void FCN(nchw_pass_op)(const FC_T *src, FC_T *y, int64_t n, int64_t s,
                                        int first, const int OP)
{
    if (s == 1) {
        if (first)
            FCN(nchw_pass)(src, y, n, 1, OP, 1);
        else
            FCN(nchw_pass)(src, y, n, 1, OP, 0);
    } else if (s == 2) {
        if (first)
            FCN(nchw_pass)(src, y, n, 2, OP, 1);
        else
            FCN(nchw_pass)(src, y, n, 2, OP, 0);
    } else {
        if (first)
            FCN(nchw_pass)(src, y, n, s, OP, 1);
        else
            FCN(nchw_pass)(src, y, n, s, OP, 0);
    }
}

FC_ALWAYS_INLINE void FCN(nchw_pair_op)(const FC_T *a, const FC_T *b, FC_T *y, int64_t n,
                                        int first, const int OP)
{
    if (b != NULL) {
        if (first)
            FCN(nchw_pair_pass)(a, b, y, n, OP, 1, 1);
        else
            FCN(nchw_pair_pass)(a, b, y, n, OP, 0, 1);
    } else {
        if (first)
            FCN(nchw_pair_pass)(a, b, y, n, OP, 1, 0);
        else
            FCN(nchw_pair_pass)(a, b, y, n, OP, 0, 0);
    }
}

/* One border output of a plane: its window's real cells in row-major order. */
FC_ALWAYS_INLINE FC_T FCN(nchw_window)(const fc_pool2d_params *p, const FC_T *plane, int64_t oh,
                                       int64_t ow, const int OP)
{
    int64_t h_lo, h_hi, w_lo, w_hi;
    pool_window(p, oh, ow, &h_lo, &h_hi, &w_lo, &w_hi);
    FC_T m = plane[h_lo * p->w + w_lo];
    for (int64_t ih = h_lo; ih < h_hi; ++ih)
        for (int64_t iw = (ih == h_lo ? w_lo + 1 : w_lo); iw < w_hi; ++iw)
            m = FCN(pool_step)(m, plane[ih * p->w + iw], OP);
    return OP == FC_POOL_AVG ? m * FCN(pool_rdiv)(p, (h_hi - h_lo) * (w_hi - w_lo)) : m;
}

/* Output rows [r0, r1) (rows of n * c * out_h). */
FC_ALWAYS_INLINE void FCN(pool_reduce_nchw)(const fc_pool2d_params *p, const FC_T *x, FC_T *y,
                                            int64_t r0, int64_t r1, const int OP)
{
    const int64_t w = p->w, s = p->stride_w, pw = p->pool_w;
    int64_t va, vb;
    pool_interior(p, &va, &vb);
    const int pairs = pw == 2 && s == 2;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t plane = r / p->out_h, oh = r - plane * p->out_h;
        const FC_T *xp = x + plane * p->h * w;
        FC_T *yr = y + r * p->out_w;
        int64_t h_lo, h_hi, w_lo, w_hi;
        pool_window(p, oh, 0, &h_lo, &h_hi, &w_lo, &w_hi);
        for (int64_t ow = 0; ow < va; ++ow)
            yr[ow] = FCN(nchw_window)(p, xp, oh, ow, OP);
        if (vb > va) {
            const int64_t n = vb - va, col0 = va * s - p->pad_left;
            if (pairs) {
                for (int64_t ih = h_lo; ih < h_hi; ih += 2) {
                    const FC_T *a = xp + ih * w + col0;
                    FCN(nchw_pair_op)(a, ih + 1 < h_hi ? a + w : NULL, yr + va, n, ih == h_lo, OP);
                }
            } else {
                for (int64_t ih = h_lo; ih < h_hi; ++ih)
                    for (int64_t j = 0; j < pw; ++j)
                        FCN(nchw_pass_op)(xp + ih * w + col0 + j, yr + va, n, s,
                                          ih == h_lo && j == 0, OP);
            }
            if (OP == FC_POOL_AVG) {
                const FC_T scale = FCN(pool_rdiv)(p, (h_hi - h_lo) * pw);
                for (int64_t i = va; i < vb; ++i)
                    yr[i] *= scale;
            }
        }
        for (int64_t ow = vb; ow < p->out_w; ++ow)
            yr[ow] = FCN(nchw_window)(p, xp, oh, ow, OP);
    }
}

static void FCN(pool_reduce_rows)(const fc_pool2d_params *p, int op, const FC_T *x, FC_T *y,
                                  int64_t r0, int64_t r1)
{
    if (p->channels_first) {
        switch (op) {
        case FC_POOL_MAX: FCN(pool_reduce_nchw)(p, x, y, r0, r1, FC_POOL_MAX); break;
        case FC_POOL_AVG: FCN(pool_reduce_nchw)(p, x, y, r0, r1, FC_POOL_AVG); break;
        default: FCN(pool_reduce_nchw)(p, x, y, r0, r1, FC_POOL_SUM); break;
        }
    } else {
        switch (op) {
        case FC_POOL_MAX: FCN(pool_reduce_nhwc)(p, x, y, r0, r1, FC_POOL_MAX); break;
        case FC_POOL_AVG: FCN(pool_reduce_nhwc)(p, x, y, r0, r1, FC_POOL_AVG); break;
        default: FCN(pool_reduce_nhwc)(p, x, y, r0, r1, FC_POOL_SUM); break;
        }
    }
}

/* ---------------------------------------------------------------------------
 * NCHW max-pool backward: the winners of a row's interior outputs by one pass
 * per window cell (running maxima and cell numbers in FC_T), then dy to each
 * winner, the outputs in ascending order so that overlapping windows add in
 * NHWC's (row-major window) order.
 */
FC_ALWAYS_INLINE void FCN(nchw_argmax_pass)(const FC_T *FC_RESTRICT src, FC_T *FC_RESTRICT best,
                                            FC_T *FC_RESTRICT win, int64_t n, const int64_t S,
                                            FC_T cell, const int FIRST)
{
    for (int64_t i = 0; i < n; ++i) {
        const FC_T v = src[i * S];
        if (FIRST) {
            best[i] = v;
            win[i] = 0;
        } else {
            const int take = FCN(pool_take)(v, best[i]);
            best[i] = take ? v : best[i];
            win[i] = take ? cell : win[i];
        }
    }
}

static void FCN(nchw_argmax_op)(const FC_T *src, FC_T *best, FC_T *win, int64_t n, int64_t s,
                                FC_T cell)
{
    if (cell == 0) {
        if (s == 1)
            FCN(nchw_argmax_pass)(src, best, win, n, 1, 0, 1);
        else if (s == 2)
            FCN(nchw_argmax_pass)(src, best, win, n, 2, 0, 1);
        else
            FCN(nchw_argmax_pass)(src, best, win, n, s, 0, 1);
    } else {
        if (s == 1)
            FCN(nchw_argmax_pass)(src, best, win, n, 1, cell, 0);
        else if (s == 2)
            FCN(nchw_argmax_pass)(src, best, win, n, 2, cell, 0);
        else
            FCN(nchw_argmax_pass)(src, best, win, n, s, cell, 0);
    }
}

/* 2x2 windows at stride 2 with both rows real, pool == stride: the winner of
 * each column pair of rows a, b, and dy or 0 stored to all four cells.
 * Vectors hold FC_VL / 2 windows: both lanes of a column pair find the
 * pair's winner (cells in window order: a even, a odd, b even, b odd, the
 * pair's other lane brought in by VPAIRSWAP), and each keeps dy where the
 * winner is its own cell. */
#if FC_VL >= 2
/* FC_VL / 2 windows of nchw_pair_bwd: rows ra, rb, their dy duplicated
 * per pair of lanes; the dx rows to store. */
static inline void FCN(nchw_pair_bwd_vec)(fc_vec ra, fc_vec rb, fc_vec grad, fc_vec *da,
                                          fc_vec *db)
{
    const fc_cmp odd = FC_ODD_LANES;
    const fc_vec own_a = VSEL(odd, VSET1(0), VSET1(1)), own_b = VSEL(odd, VSET1(2), VSET1(3));
    const fc_vec sa = VPAIRSWAP(ra), sb = VPAIRSWAP(rb);
    const fc_vec c1 = VSEL(odd, sa, ra), c2 = VSEL(odd, rb, sb), c3 = VSEL(odd, sb, rb);
    fc_vec m = VSEL(odd, ra, sa), k = VZERO();
    fc_cmp take = VTAKE(c1, m);
    m = VSEL(take, m, c1);
    k = VSEL(take, k, VSET1(1));
    take = VTAKE(c2, m);
    m = VSEL(take, m, c2);
    k = VSEL(take, k, VSET1(2));
    take = VTAKE(c3, m);
    k = VSEL(take, k, VSET1(3));
    *da = VSEL(VEQ(k, own_a), VZERO(), grad);
    *db = VSEL(VEQ(k, own_b), VZERO(), grad);
}
#endif

static void FCN(nchw_pair_bwd)(const FC_T *FC_RESTRICT a, const FC_T *FC_RESTRICT b,
                               const FC_T *FC_RESTRICT g, FC_T *FC_RESTRICT da,
                               FC_T *FC_RESTRICT db, int64_t n)
{
    int64_t i = 0;
#if FC_VL >= 2
    fc_vec va, vb;
    for (; i + FC_VL / 2 <= n; i += FC_VL / 2) {
        FCN(nchw_pair_bwd_vec)(VLOAD(a + 2 * i), VLOAD(b + 2 * i), VDUPHALF(g + i), &va, &vb);
        VSTORE(da + 2 * i, va);
        VSTORE(db + 2 * i, vb);
    }
    if (i < n) {
        /* The last windows by masked vectors (the seed's 13 windows a row
         * leave 5 after 8 on AVX-512; a scalar window cost about a vector). */
        const int64_t left = n - i;
        const fc_mask mask = FC_MAKE_MASK((int)(2 * left));
        FC_T tg[FC_VL / 2] = {0};
        for (int64_t j = 0; j < left; ++j)
            tg[j] = g[i + j];
        FCN(nchw_pair_bwd_vec)(VLOAD_M(a + 2 * i, mask), VLOAD_M(b + 2 * i, mask), VDUPHALF(tg),
                               &va, &vb);
#ifdef FC_SLOW_MASKED_STORE
        FC_T ta[FC_VL], tb[FC_VL];
        VSTORE(ta, va);
        VSTORE(tb, vb);
        for (int64_t j = 0; j < 2 * left; ++j) {
            da[2 * i + j] = ta[j];
            db[2 * i + j] = tb[j];
        }
#else
        VSTORE_M(da + 2 * i, va, mask);
        VSTORE_M(db + 2 * i, vb, mask);
#endif
    }
#else
    for (; i < n; ++i) {
        FC_T m = a[2 * i], k = 0, v;
        int take;
        v = a[2 * i + 1];
        take = FCN(pool_take)(v, m);
        m = take ? v : m;
        k = take ? 1 : k;
        v = b[2 * i];
        take = FCN(pool_take)(v, m);
        m = take ? v : m;
        k = take ? 2 : k;
        v = b[2 * i + 1];
        take = FCN(pool_take)(v, m);
        k = take ? 3 : k;
        const FC_T gi = g[i];
        da[2 * i] = k == 0 ? gi : 0;
        da[2 * i + 1] = k == 1 ? gi : 0;
        db[2 * i] = k == 2 ? gi : 0;
        db[2 * i + 1] = k == 3 ? gi : 0;
    }
#endif
}

/* The winner of one border output: its offset in the plane. */
static int64_t FCN(nchw_window_winner)(const fc_pool2d_params *p, const FC_T *plane, int64_t oh,
                                       int64_t ow)
{
    int64_t h_lo, h_hi, w_lo, w_hi;
    pool_window(p, oh, ow, &h_lo, &h_hi, &w_lo, &w_hi);
    int64_t at = h_lo * p->w + w_lo;
    FC_T m = plane[at];
    for (int64_t ih = h_lo; ih < h_hi; ++ih)
        for (int64_t iw = (ih == h_lo ? w_lo + 1 : w_lo); iw < w_hi; ++iw)
            if (FCN(pool_take)(plane[ih * p->w + iw], m)) {
                at = ih * p->w + iw;
                m = plane[at];
            }
    return at;
}

/* Output rows [r0, r1) (rows of n * c * out_h). tiled (pool == stride): the
 * row owns dx rows [h_lo, h_hi) of its windows, and for the last row of a
 * plane the rows below; it stores every cell of them. Otherwise adds into dx
 * (zeroed by the caller), one plane's rows by one thread, in order. */
static void FCN(maxpool_bwd_nchw_rows)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *x,
                                       FC_T *dx, int64_t r0, int64_t r1, int tiled)
{
    const int64_t w = p->w, s = p->stride_w, pw = p->pool_w, pad = p->pad_left;
    int64_t va, vb;
    pool_interior(p, &va, &vb);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t plane = r / p->out_h, oh = r - plane * p->out_h;
        const FC_T *xp = x + plane * p->h * w;
        FC_T *dp = dx + plane * p->h * w;
        const FC_T *g = dy + r * p->out_w;
        int64_t h_lo, h_hi, w_lo, w_hi;
        pool_window(p, oh, 0, &h_lo, &h_hi, &w_lo, &w_hi);
        const int64_t own_hi = oh == p->out_h - 1 ? p->h : h_hi;
        int64_t done = va;   /* interior outputs [va, done) already written */
        if (tiled && pw == 2 && pad == 0 && h_hi - h_lo == 2) {
            FCN(nchw_pair_bwd)(xp + h_lo * w, xp + (h_lo + 1) * w, g, dp + h_lo * w,
                               dp + (h_lo + 1) * w, vb);
            if (w > 2 * vb)  /* a right column no window covers */
                for (int64_t ih = h_lo; ih < h_hi; ++ih)
                    memset(dp + ih * w + 2 * vb, 0, (size_t)(w - 2 * vb) * sizeof(FC_T));
            if (own_hi > h_hi)
                memset(dp + h_hi * w, 0, (size_t)((own_hi - h_hi) * w) * sizeof(FC_T));
            done = vb;
        } else if (tiled) {
            memset(dp + h_lo * w, 0, (size_t)((own_hi - h_lo) * w) * sizeof(FC_T));
        }
        for (int64_t ow = 0; ow < va; ++ow) {
            FC_T *d = dp + FCN(nchw_window_winner)(p, xp, oh, ow);
            *d = tiled ? g[ow] : *d + g[ow];
        }
        for (int64_t ow0 = done; ow0 < vb; ow0 += FC_POOL_ROW_BLOCK) {
            const int64_t n = vb - ow0 < FC_POOL_ROW_BLOCK ? vb - ow0 : FC_POOL_ROW_BLOCK;
            const int64_t col0 = ow0 * s - pad;
            FC_T best[FC_POOL_ROW_BLOCK], win[FC_POOL_ROW_BLOCK];
            FC_T cell = 0;
            for (int64_t ih = h_lo; ih < h_hi; ++ih)
                for (int64_t j = 0; j < pw; ++j, cell += 1)
                    FCN(nchw_argmax_op)(xp + ih * w + col0 + j, best, win, n, s, cell);
            for (int64_t i = 0; i < n; ++i) {
                const int64_t k = (int64_t)win[i], kh = k / pw;
                FC_T *d = dp + (h_lo + kh) * w + col0 + i * s + (k - kh * pw);
                *d = tiled ? g[ow0 + i] : *d + g[ow0 + i];
            }
        }
        for (int64_t ow = vb; ow < p->out_w; ++ow) {
            FC_T *d = dp + FCN(nchw_window_winner)(p, xp, oh, ow);
            *d = tiled ? g[ow] : *d + g[ow];
        }
    }
}

/* ---------------------------------------------------------------------------
 * Average-pool backward as a gather: each dx cell sums dy * (1 / divisor) of
 * the windows holding it, windows in row-major order (output rows outer),
 * from 0. Threads own dx rows; nothing is zeroed first or written twice.
 */
static void FCN(avgpool_bwd_nhwc)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *rdiv,
                                  FC_T rdiv1, FC_T *dx, int64_t r0, int64_t r1)
{
    const int64_t c = p->c, out_w = p->out_w;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / p->h, ih = r - img * p->h;
        int64_t oh_lo, oh_hi;
        pool_cover(ih, p->pad_top, p->pool_h, p->stride_h, p->out_h, &oh_lo, &oh_hi);
        const FC_T *gimg = dy + img * p->out_h * out_w * c;
        for (int64_t iw = 0; iw < p->w; ++iw) {
            int64_t ow_lo, ow_hi;
            pool_cover(iw, p->pad_left, p->pool_w, p->stride_w, out_w, &ow_lo, &ow_hi);
            FC_T *d = dx + (r * p->w + iw) * c;
            for (int64_t c0 = 0; c0 < c; c0 += FC_POOL_VECS * FC_VL) {
                const int64_t left = c - c0;
                const int nv = left >= FC_POOL_VECS * FC_VL ? FC_POOL_VECS
                                                            : (int)((left + FC_VL - 1) / FC_VL);
                const int tail = left < (int64_t)nv * FC_VL;
                const fc_mask mask = FC_MAKE_MASK(tail ? (int)(left % FC_VL) : FC_VL);
                (void)mask;
                fc_vec acc[FC_POOL_VECS];
                for (int v = 0; v < FC_POOL_VECS; ++v)
                    acc[v] = VZERO();
                for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
                    for (int64_t ow = ow_lo; ow < ow_hi; ++ow) {
                        const fc_vec scale = VSET1(rdiv != NULL ? rdiv[oh * out_w + ow] : rdiv1);
                        const FC_T *src = gimg + (oh * out_w + ow) * c + c0;
                        for (int v = 0; v < nv; ++v) {
                            const fc_vec gv = (tail && v == nv - 1)
                                                  ? VLOAD_M(src + v * FC_VL, mask)
                                                  : VLOAD(src + v * FC_VL);
                            acc[v] = VFMA(gv, scale, acc[v]);
                        }
                    }
                for (int v = 0; v < nv; ++v) {
                    if (tail && v == nv - 1)
                        VSTORE_M(d + c0 + v * FC_VL, acc[v], mask);
                    else
                        VSTORE(d + c0 + v * FC_VL, acc[v]);
                }
            }
        }
    }
}

/* NCHW dx rows: per window row oh holding the dx row (in order), the scaled
 * dy row goes to the windows' columns. Stride 1: the scaled row, zero-padded
 * in scratch (w + pad_left + pool_w values), is added shifted once per window
 * column, in the order of ascending windows; other strides scatter each
 * window's value to its columns, windows ascending. */
static void FCN(avgpool_bwd_nchw)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *rdiv,
                                  FC_T rdiv1, FC_T *dx, int64_t r0, int64_t r1, FC_T *scratch)
{
    const int64_t w = p->w, s = p->stride_w, pw = p->pool_w, pad = p->pad_left;
    const int64_t out_w = p->out_w;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t plane = r / p->h, ih = r - plane * p->h;
        int64_t oh_lo, oh_hi;
        pool_cover(ih, p->pad_top, p->pool_h, p->stride_h, p->out_h, &oh_lo, &oh_hi);
        FC_T *FC_RESTRICT d = dx + r * w;
        for (int64_t iw = 0; iw < w; ++iw)
            d[iw] = 0;
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
            const FC_T *g = dy + (plane * p->out_h + oh) * out_w;
            const FC_T *rr = rdiv != NULL ? rdiv + oh * out_w : NULL;
            if (s == 1) {
                /* gs[k] = scaled g[k - (pw - 1)]; dx[iw] += gs[iw + pad + j],
                 * j ascending = windows ascending */
                FC_T *FC_RESTRICT gs = scratch;
                const int64_t len = w + pad + pw - 1;
                for (int64_t k = 0; k < len; ++k) {
                    const int64_t o = k - (pw - 1);
                    gs[k] = o >= 0 && o < out_w ? g[o] * (rr != NULL ? rr[o] : rdiv1) : 0;
                }
                for (int64_t j = 0; j < pw; ++j) {
                    const FC_T *FC_RESTRICT src = gs + pad + j;
                    for (int64_t iw = 0; iw < w; ++iw)
                        d[iw] += src[iw];
                }
            } else {
                for (int64_t ow = 0; ow < out_w; ++ow) {
                    const FC_T v = g[ow] * (rr != NULL ? rr[ow] : rdiv1);
                    const int64_t b = ow * s - pad;
                    const int64_t j0 = b < 0 ? -b : 0, j1 = b + pw < w ? pw : w - b;
                    for (int64_t j = j0; j < j1; ++j)
                        d[b + j] += v;
                }
            }
        }
    }
}

static void FCN(avgpool_bwd_rows)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *rdiv,
                                  FC_T rdiv1, FC_T *dx, int64_t r0, int64_t r1, FC_T *scratch)
{
    if (p->channels_first)
        FCN(avgpool_bwd_nchw)(p, dy, rdiv, rdiv1, dx, r0, r1, scratch);
    else
        FCN(avgpool_bwd_nhwc)(p, dy, rdiv, rdiv1, dx, r0, r1);
}

/* ---------------------------------------------------------------------------
 * Global pooling.
 */

/* Max-pool winners over `pixels` rows of c values, channels [c0, c1), in
 * vectors. With `where`, the winner's row too: tracked per block of
 * FC_ARGMAX_BLOCK rows in FC_T lanes, blocks folded in order (a later block
 * wins only by VTAKE's rule, so the first maximum stays first). */
FC_ALWAYS_INLINE void FCN(global_max_body)(const FC_T *x, int64_t pixels, int64_t c, int64_t c0,
                                           int64_t c1, FC_T *best, int64_t *where,
                                           const int WHERE)
{
    for (int64_t cb = c0; cb < c1; cb += FC_POOL_VECS * FC_VL) {
        const int64_t left = c1 - cb;
        const int nv = left >= FC_POOL_VECS * FC_VL ? FC_POOL_VECS
                                                    : (int)((left + FC_VL - 1) / FC_VL);
        const int tail = left < (int64_t)nv * FC_VL;
        const fc_mask mask = FC_MAKE_MASK(tail ? (int)(left % FC_VL) : FC_VL);
        (void)mask;
        const int64_t count = left < FC_POOL_VECS * FC_VL ? left : FC_POOL_VECS * FC_VL;
        for (int64_t q0 = 0; q0 < pixels; q0 += WHERE ? FC_ARGMAX_BLOCK : pixels) {
            const int64_t q1 = WHERE && pixels - q0 > FC_ARGMAX_BLOCK ? q0 + FC_ARGMAX_BLOCK
                                                                      : pixels;
            fc_vec m[FC_POOL_VECS], win[FC_POOL_VECS];
            const FC_T *first = x + q0 * c + cb;
            for (int v = 0; v < nv; ++v) {
                m[v] = (tail && v == nv - 1) ? VLOAD_M(first + v * FC_VL, mask)
                                             : VLOAD(first + v * FC_VL);
                win[v] = VZERO();
            }
            FC_T cell = 1;
            for (int64_t q = q0 + 1; q < q1; ++q, cell += 1) {
                const FC_T *src = x + q * c + cb;
                const fc_vec at = VSET1(cell);
                (void)at;
                for (int v = 0; v < nv; ++v) {
                    const fc_vec val = (tail && v == nv - 1) ? VLOAD_M(src + v * FC_VL, mask)
                                                             : VLOAD(src + v * FC_VL);
                    const fc_cmp take = VTAKE(val, m[v]);
                    m[v] = VSEL(take, m[v], val);
                    if (WHERE)
                        win[v] = VSEL(take, win[v], at);
                }
            }
            FC_T bm[FC_POOL_VECS * FC_VL], bw[FC_POOL_VECS * FC_VL];
            for (int v = 0; v < nv; ++v) {
                VSTORE(bm + v * FC_VL, m[v]);
                VSTORE(bw + v * FC_VL, win[v]);
            }
            FC_T *out = best + (cb - c0);
            int64_t *out_at = WHERE ? where + (cb - c0) : NULL;
            for (int64_t k = 0; k < count; ++k)
                if (q0 == 0 || FCN(pool_take)(bm[k], out[k])) {
                    out[k] = bm[k];
                    if (WHERE)
                        out_at[k] = q0 + (int64_t)bw[k];
                }
        }
    }
}

static void FCN(global_max_rows)(const FC_T *x, int64_t pixels, int64_t c, int64_t c0,
                                 int64_t c1, FC_T *best, int64_t *where)
{
    if (where != NULL)
        FCN(global_max_body)(x, pixels, c, c0, c1, best, where, 1);
    else
        FCN(global_max_body)(x, pixels, c, c0, c1, best, NULL, 0);
}

/* Whether candidate (v at q) beats (bv at bq) as the first max-pool winner:
 * NaN first, then the larger value, then the earlier position. */
FC_ALWAYS_INLINE int FCN(argmax_better)(FC_T v, int64_t q, FC_T bv, int64_t bq)
{
    if (v != v)
        return bv == bv || q < bq;
    if (bv != bv)
        return 0;
    return v > bv || (v == bv && q < bq);
}

/* A contiguous run as rows of FC_POOL_VECS * FC_VL lanes: the lanes' first
 * winners (global_max_rows), then the rest one by one; the first winner of
 * the run is the best candidate. */
static int64_t FCN(plane_argmax)(const FC_T *x, int64_t len)
{
    enum { L = FC_POOL_VECS * FC_VL };
    const int64_t rows = len / L;
    FC_T bv = x[0];
    int64_t bq = 0;
    if (rows > 0) {
        FC_T best[L];
        int64_t where[L];
        FCN(global_max_rows)(x, rows, L, 0, L, best, where);
        for (int64_t l = 0; l < L; ++l) {
            const int64_t q = where[l] * L + l;
            if (l == 0 || FCN(argmax_better)(best[l], q, bv, bq)) {
                bv = best[l];
                bq = q;
            }
        }
    }
    for (int64_t q = rows * L; q < len; ++q)
        if (FCN(argmax_better)(x[q], q, bv, bq)) {
            bv = x[q];
            bq = q;
        }
    return bq;
}

/* FC_GSUM_VECS wide vectors of channels in registers down all the rows, then
 * the next; the last count % (FC_GSUM_VECS * FC_WL) channels in memory. Per
 * channel the same additions in the same order either way (so the same bits
 * on every ISA); the sums in memory row by row ran at a load-add-store per
 * value (Zen 2, 32x7x7x512, 1 thread: 0.222 ms, PyTorch 0.13; now 0.144). */
#define FC_GSUM_VECS 8
static void FCN(global_sum_rows)(const FC_T *x, int64_t rows, int64_t ld, int64_t count,
                                 double *FC_RESTRICT acc)
{
    int64_t k = 0;
    for (; k + FC_GSUM_VECS * FC_WL <= count; k += FC_GSUM_VECS * FC_WL) {
        fc_wvec a[FC_GSUM_VECS];
        for (int v = 0; v < FC_GSUM_VECS; ++v)
            a[v] = VWZERO();
        for (int64_t r = 0; r < rows; ++r) {
            const FC_T *row = x + r * ld + k;
            for (int v = 0; v < FC_GSUM_VECS; ++v)
                a[v] = VWADD(a[v], VWLOAD(row + v * FC_WL));
        }
        for (int v = 0; v < FC_GSUM_VECS; ++v)
            VWSTORE(acc + k + v * FC_WL, a[v]);
    }
    for (int64_t j = k; j < count; ++j)
        acc[j] = 0;
    for (int64_t r = 0; r < rows && k < count; ++r) {
        const FC_T *FC_RESTRICT row = x + r * ld;
        for (int64_t j = k; j < count; ++j)
            acc[j] += (double)row[j];
    }
}
#undef FC_GSUM_VECS

/* FC_SUM_LANES running sums (lane l takes every FC_SUM_LANES-th value), added
 * in lane order, then the rest: the same order, so the same bits, on every
 * ISA. */
static double FCN(plane_sum)(const FC_T *FC_RESTRICT x, int64_t len)
{
    double acc[FC_SUM_LANES] = {0};
    int64_t i = 0;
    for (; i + FC_SUM_LANES <= len; i += FC_SUM_LANES)
        for (int l = 0; l < FC_SUM_LANES; ++l)
            acc[l] += (double)x[i + l];
    double sum = 0;
    for (int l = 0; l < FC_SUM_LANES; ++l)
        sum += acc[l];
    for (; i < len; ++i)
        sum += (double)x[i];
    return sum;
}

/* ---------------------------------------------------------------------------
 * Upsampling. Rows are (image, row) for NHWC (w * c values) and (image x
 * channel, row) for NCHW (w values).
 */

/* Nearest, input rows [r0, r1): each input row expands once into its first
 * output row, copied to the other size_h - 1. */
static void FCN(upsample_nearest_fwd)(const fc_upsample_params *p, const FC_T *x, FC_T *y,
                                      int64_t r0, int64_t r1)
{
    const int64_t w = p->w, sh = p->size_h, sw = p->size_w, out_w = w * sw;
    const int64_t cc = p->channels_first ? 1 : p->c;   /* values per pixel */
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / p->h, ih = r - img * p->h;
        const FC_T *FC_RESTRICT src = x + r * w * cc;
        FC_T *FC_RESTRICT dst = y + (img * p->h * sh + ih * sh) * out_w * cc;
        if (cc == 1 && sw == 2) {
            for (int64_t iw = 0; iw < w; ++iw) {
                dst[2 * iw] = src[iw];
                dst[2 * iw + 1] = src[iw];
            }
        } else if (cc == 1) {
            for (int64_t iw = 0; iw < w; ++iw)
                for (int64_t k = 0; k < sw; ++k)
                    dst[iw * sw + k] = src[iw];
        } else {
            for (int64_t iw = 0; iw < w; ++iw)
                for (int64_t k = 0; k < sw; ++k)
                    memcpy(dst + (iw * sw + k) * cc, src + iw * cc, (size_t)cc * sizeof(FC_T));
        }
        for (int64_t a = 1; a < sh; ++a)
            memcpy(dst + a * out_w * cc, dst, (size_t)(out_w * cc) * sizeof(FC_T));
    }
}

/* Bilinear NHWC output pixel from its 2x2 (or fewer) source pixels:
 * y = h0 * (w0 * a + w1 * b) + h1 * (w0 * c + w1 * d), the single-tap axes
 * (w1 == 0) reading one pixel alone (so an Inf is not multiplied by 0). */
FC_ALWAYS_INLINE void FCN(lerp_pixel)(const FC_T *a, const FC_T *b, const FC_T *c_, const FC_T *d,
                                      FC_T *out, int64_t c, FC_T h0, FC_T h1, FC_T w0, FC_T w1,
                                      const int TWO_H, const int TWO_W)
{
    const fc_vec H0 = VSET1(h0), H1 = VSET1(h1), W0 = VSET1(w0), W1 = VSET1(w1);
    (void)H0, (void)H1, (void)W0, (void)W1, (void)b, (void)c_, (void)d;
    for (int64_t ch = 0; ch < c; ch += FC_VL) {
        const int tail = c - ch < FC_VL;
        const fc_mask mask = FC_MAKE_MASK(tail ? (int)(c - ch) : FC_VL);
        (void)mask;
#define FC_LD(ptr) (tail ? VLOAD_M((ptr) + ch, mask) : VLOAD((ptr) + ch))
        fc_vec t0 = FC_LD(a);
        if (TWO_W)
            t0 = VFMA(W1, FC_LD(b), VMUL(W0, t0));
        if (TWO_H) {
            fc_vec t1 = FC_LD(c_);
            if (TWO_W)
                t1 = VFMA(W1, FC_LD(d), VMUL(W0, t1));
            t0 = VFMA(H1, t1, VMUL(H0, t0));
        }
#undef FC_LD
        if (tail)
            VSTORE_M(out + ch, t0, mask);
        else
            VSTORE(out + ch, t0);
    }
}

/* Bilinear NCHW rows along the width. lerp_axis_build's weights depend on
 * the remainder of 2d + 1 - size modulo 2 size alone, so away from the edges
 * the taps repeat with period size_w: output k * size_w + r (phase r) reads
 * in[k + off_r] and in[k + off_r + 1] for every k in [1, w - 1), and input iw
 * is read by the outputs iw * size_w + delta_e, e < E, for every iw in
 * [2, w - 2). Those run as loops over k (or iw) with the phase's taps fixed,
 * which the compiler vectorises (contiguous loads, size_w-strided stores or
 * loads); the edges read the tables. The same taps and weights either way. */

/* One output of a row pair from the tables (t0 from ra, t1 from rb). */
FC_ALWAYS_INLINE FC_T FCN(lerp_out)(const FC_T *ra, const FC_T *rb, FC_T h0, FC_T h1,
                                    const FCN(fc_lerp_axis) *ax, int64_t ow)
{
    const int64_t lo = ax->lo[ow], hi = ax->hi[ow];
    const FC_T w0 = ax->w0[ow], w1 = ax->w1[ow];
    const FC_T t0 = w1 == 0 ? ra[lo] : w0 * ra[lo] + w1 * ra[hi];
    if (h1 == 0)
        return t0;
    const FC_T t1 = w1 == 0 ? rb[lo] : w0 * rb[lo] + w1 * rb[hi];
    return h0 * t0 + h1 * t1;
}

/* Outputs k * SW (k in [1, w - 1)) of one phase, a = the phase's lower taps
 * (a[k], a[k + 1]) in row ra, b the same in rb. */
FC_ALWAYS_INLINE void FCN(lerp_phase)(const FC_T *FC_RESTRICT a, const FC_T *FC_RESTRICT b,
                                      FC_T *FC_RESTRICT out, int64_t w, const int64_t SW,
                                      FC_T h0, FC_T h1, FC_T w0, FC_T w1)
{
    if (w1 == 0 && h1 == 0) {
        for (int64_t k = 1; k < w - 1; ++k)
            out[k * SW] = a[k];
    } else if (w1 == 0) {
        for (int64_t k = 1; k < w - 1; ++k)
            out[k * SW] = h0 * a[k] + h1 * b[k];
    } else if (h1 == 0) {
        for (int64_t k = 1; k < w - 1; ++k)
            out[k * SW] = w0 * a[k] + w1 * a[k + 1];
    } else {
        for (int64_t k = 1; k < w - 1; ++k) {
            const FC_T t0 = w0 * a[k] + w1 * a[k + 1];
            const FC_T t1 = w0 * b[k] + w1 * b[k + 1];
            out[k * SW] = h0 * t0 + h1 * t1;
        }
    }
}

static void FCN(lerp_row_nchw)(const FC_T *ra, const FC_T *rb, FC_T h0, FC_T h1,
                               const FCN(fc_lerp_axis) *ax, int64_t w, int64_t sw, FC_T *out)
{
    const int64_t out_w = w * sw;
    const int64_t edge = w >= 3 ? sw : out_w;   /* outputs [0, edge) and [out_w - edge, ..) */
    for (int64_t ow = 0; ow < edge; ++ow)
        out[ow] = FCN(lerp_out)(ra, rb, h0, h1, ax, ow);
    for (int64_t ow = edge > out_w - edge ? edge : out_w - edge; ow < out_w; ++ow)
        out[ow] = FCN(lerp_out)(ra, rb, h0, h1, ax, ow);
    if (w < 3)
        return;
    for (int64_t r = 0; r < sw; ++r) {
        const int64_t d = sw + r, off = ax->lo[d] - 1;   /* k = 1's taps */
        const FC_T w0 = ax->w0[d], w1 = ax->w1[d];
        if (sw == 2)
            FCN(lerp_phase)(ra + off, rb + off, out + r, w, 2, h0, h1, w0, w1);
        else
            FCN(lerp_phase)(ra + off, rb + off, out + r, w, sw, h0, h1, w0, w1);
    }
}

/* d[iw] += wh * (sum over the readers of iw, ascending, of weight * g), for a
 * dy row g; the interior in blocks, the running sums on the stack. */
FC_ALWAYS_INLINE void FCN(lerp_bwd_pass)(const FC_T *FC_RESTRICT g, FC_T *FC_RESTRICT t,
                                         int64_t n, const int64_t SW, FC_T wt, int first)
{
    if (first)
        for (int64_t i = 0; i < n; ++i)
            t[i] = wt * g[i * SW];
    else
        for (int64_t i = 0; i < n; ++i)
            t[i] += wt * g[i * SW];
}

/* d[iw] += wh * (its readers' weights times g, in ascending order), from the
 * table. */
FC_ALWAYS_INLINE void FCN(lerp_bwd_one)(const FC_T *g, FC_T wh, const FCN(fc_lerp_axis) *ax,
                                        int64_t iw, FC_T *d)
{
    FC_T t = 0;
    for (int64_t f = ax->start[iw]; f < ax->start[iw + 1]; ++f)
        t += ax->wt[f] * g[ax->src[f]];
    d[iw] += wh * t;
}

static void FCN(lerp_row_nchw_bwd)(const FC_T *g, FC_T wh, const FCN(fc_lerp_axis) *ax,
                                   int64_t w, int64_t sw, FC_T *d)
{
    const int64_t *start = ax->start, *src = ax->src;
    const FC_T *wt = ax->wt;
    if (w < 5) {
        for (int64_t iw = 0; iw < w; ++iw)
            FCN(lerp_bwd_one)(g, wh, ax, iw, d);
        return;
    }
    for (int64_t iw = 0; iw < 2; ++iw)
        FCN(lerp_bwd_one)(g, wh, ax, iw, d);
    for (int64_t iw = w - 2; iw < w; ++iw)
        FCN(lerp_bwd_one)(g, wh, ax, iw, d);
    /* input 2's readers: offsets from 2 * sw and weights, the same for all */
    const int64_t e0 = start[2], e1 = start[3];
    for (int64_t i0 = 2; i0 < w - 2; i0 += FC_POOL_ROW_BLOCK) {
        const int64_t n = w - 2 - i0 < FC_POOL_ROW_BLOCK ? w - 2 - i0 : FC_POOL_ROW_BLOCK;
        FC_T t[FC_POOL_ROW_BLOCK];
        for (int64_t e = e0; e < e1; ++e) {
            const FC_T *base = g + i0 * sw + (src[e] - 2 * sw);
            if (sw == 2)
                FCN(lerp_bwd_pass)(base, t, n, 2, wt[e], e == e0);
            else
                FCN(lerp_bwd_pass)(base, t, n, sw, wt[e], e == e0);
        }
        FC_T *FC_RESTRICT di = d + i0;
        for (int64_t i = 0; i < n; ++i)
            di[i] += wh * t[i];
    }
}

/* Bilinear, output rows [r0, r1). */
static void FCN(upsample_bilinear_fwd)(const fc_upsample_params *p, const FCN(fc_lerp_axis) *ax_h,
                                       const FCN(fc_lerp_axis) *ax_w, const FC_T *x, FC_T *y,
                                       int64_t r0, int64_t r1)
{
    const int64_t w = p->w, out_h = p->h * p->size_h, out_w = w * p->size_w;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / out_h, oh = r - img * out_h;
        const FC_T h0 = ax_h->w0[oh], h1 = ax_h->w1[oh];
        if (p->channels_first) {
            FCN(lerp_row_nchw)(x + (img * p->h + ax_h->lo[oh]) * w,
                               x + (img * p->h + ax_h->hi[oh]) * w, h0, h1, ax_w, w, p->size_w,
                               y + r * out_w);
            continue;
        }
        const int64_t c = p->c;
        const FC_T *ra = x + (img * p->h + ax_h->lo[oh]) * w * c;
        const FC_T *rb = x + (img * p->h + ax_h->hi[oh]) * w * c;
        for (int64_t ow = 0; ow < out_w; ++ow) {
            const FC_T *a = ra + ax_w->lo[ow] * c, *b = ra + ax_w->hi[ow] * c;
            const FC_T *c_ = rb + ax_w->lo[ow] * c, *d = rb + ax_w->hi[ow] * c;
            const FC_T w0 = ax_w->w0[ow], w1 = ax_w->w1[ow];
            FC_T *out = y + (r * out_w + ow) * c;
            if (h1 != 0 && w1 != 0)
                FCN(lerp_pixel)(a, b, c_, d, out, c, h0, h1, w0, w1, 1, 1);
            else if (h1 != 0)
                FCN(lerp_pixel)(a, b, c_, d, out, c, h0, h1, w0, w1, 1, 0);
            else if (w1 != 0)
                FCN(lerp_pixel)(a, b, c_, d, out, c, h0, h1, w0, w1, 0, 1);
            else
                FCN(lerp_pixel)(a, b, c_, d, out, c, h0, h1, w0, w1, 0, 0);
        }
    }
}

static void FCN(upsample_fwd_rows)(const fc_upsample_params *p, const FCN(fc_lerp_axis) *ax_h,
                                   const FCN(fc_lerp_axis) *ax_w, const FC_T *x, FC_T *y,
                                   int64_t r0, int64_t r1)
{
    if (p->bilinear)
        FCN(upsample_bilinear_fwd)(p, ax_h, ax_w, x, y, r0, r1);
    else
        FCN(upsample_nearest_fwd)(p, x, y, r0, r1);
}

/* Bilinear backward of dx rows [r0, r1), the transpose gathered: each dx cell
 * sums, over the output rows reading its row (ascending), that row's weight
 * times the sum over the output columns reading its column (ascending) of
 * weight x dy, from 0. */
static void FCN(upsample_bwd_rows)(const fc_upsample_params *p, const FCN(fc_lerp_axis) *ax_h,
                                   const FCN(fc_lerp_axis) *ax_w, const FC_T *dy, FC_T *dx,
                                   int64_t r0, int64_t r1)
{
    const int64_t w = p->w, out_h = p->h * p->size_h, out_w = w * p->size_w;
    const int64_t *FC_RESTRICT ws = ax_w->start, *FC_RESTRICT wsrc = ax_w->src;
    const FC_T *FC_RESTRICT wwt = ax_w->wt;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / p->h, ih = r - img * p->h;
        const int64_t e0 = ax_h->start[ih], e1 = ax_h->start[ih + 1];
        if (p->channels_first) {
            FC_T *d = dx + r * w;
            for (int64_t iw = 0; iw < w; ++iw)
                d[iw] = 0;
            for (int64_t e = e0; e < e1; ++e)
                FCN(lerp_row_nchw_bwd)(dy + (img * out_h + ax_h->src[e]) * out_w, ax_h->wt[e],
                                       ax_w, w, p->size_w, d);
            continue;
        }
        const int64_t c = p->c;
        const FC_T *gimg = dy + img * out_h * out_w * c;
        for (int64_t iw = 0; iw < w; ++iw) {
            FC_T *d = dx + (r * w + iw) * c;
            for (int64_t c0 = 0; c0 < c; c0 += FC_POOL_VECS * FC_VL) {
                const int64_t left = c - c0;
                const int nv = left >= FC_POOL_VECS * FC_VL ? FC_POOL_VECS
                                                            : (int)((left + FC_VL - 1) / FC_VL);
                const int tail = left < (int64_t)nv * FC_VL;
                const fc_mask mask = FC_MAKE_MASK(tail ? (int)(left % FC_VL) : FC_VL);
                (void)mask;
                fc_vec acc[FC_POOL_VECS];
                for (int v = 0; v < FC_POOL_VECS; ++v)
                    acc[v] = VZERO();
                for (int64_t e = e0; e < e1; ++e) {
                    const fc_vec wh = VSET1(ax_h->wt[e]);
                    const FC_T *grow = gimg + ax_h->src[e] * out_w * c + c0;
                    fc_vec t[FC_POOL_VECS];
                    for (int v = 0; v < FC_POOL_VECS; ++v)
                        t[v] = VZERO();
                    for (int64_t f = ws[iw]; f < ws[iw + 1]; ++f) {
                        const fc_vec ww = VSET1(wwt[f]);
                        const FC_T *src = grow + wsrc[f] * c;
                        for (int v = 0; v < nv; ++v) {
                            const fc_vec gv = (tail && v == nv - 1)
                                                  ? VLOAD_M(src + v * FC_VL, mask)
                                                  : VLOAD(src + v * FC_VL);
                            t[v] = VFMA(ww, gv, t[v]);
                        }
                    }
                    for (int v = 0; v < nv; ++v)
                        acc[v] = VFMA(wh, t[v], acc[v]);
                }
                for (int v = 0; v < nv; ++v) {
                    if (tail && v == nv - 1)
                        VSTORE_M(d + c0 + v * FC_VL, acc[v], mask);
                    else
                        VSTORE(d + c0 + v * FC_VL, acc[v]);
                }
            }
        }
    }
}

