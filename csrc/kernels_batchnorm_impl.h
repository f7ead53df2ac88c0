/*
 * kernels_batchnorm_impl.h: the single-threaded loops of batch normalization
 * (batchnorm_impl.h drives them). Included at the end of kernels_impl.h, so
 * compiled once per instruction set and element type like the other
 * micro-kernels.
 *
 * The tensor is viewed as (outer, c, inner), value (o, ch, i) at
 * (o * c + ch) * inner + i. Two loop shapes:
 *   rows  an outer row is ld = c * inner contiguous values; vectors run
 *         across it and column j has its own coefficients (the caller repeats
 *         each channel's value inner times). A block of FC_BN_VECS vectors
 *         keeps its coefficients and sums in registers down the rows.
 *         Channels last (inner == 1) and small inner.
 *   runs  the inner values of one (o, ch) are contiguous: vectors run along
 *         them with the channel's coefficients broadcast. Channels first.
 *
 * Sums accumulate in float64, for float32 data too (the rows-mode gradient
 * sums over short runs in FC_T first, see Reductions), through the "wide"
 * vocabulary each ISA file defines next to the vector one (for double data
 * it is the same vectors):
 *   fc_wvec, FC_WL                 a vector of FC_WL doubles
 *   VWLOAD(p) VWLOAD_M(p, m)       FC_WL values of FC_T from p, as doubles
 *                                  (masked: the lanes off the mask read 0)
 *   fc_wmask FC_MAKE_WMASK(n)      the first n wide lanes, 1 <= n <= FC_WL
 *   VWZERO() VWSET1(d) VWADD(a, b) VWSUB(a, b) VWFMA(a, b, c)
 *   VWSTORE(p, v)                  FC_WL doubles to p
 * In a masked tail both x and the shift (or mean) read 0 off the mask, so
 * those lanes add exactly 0 to every sum.
 */

#define FC_BN_VECS 4        /* vectors per column block, accumulators per sum */
#define FC_BN_TILE_ROWS 32  /* rows per tile of the element-wise rows loops */
#define FC_BN_RUN_ROWS 16   /* rows the gradient sums add in FC_T (see Reductions) */

#ifndef FC_BN_ONCE
#define FC_BN_ONCE
/* BODY(NV, TAIL) with compile-time constants for the last column block of a
 * row, `left` values with 0 < left < FC_BN_VECS * vl (FC_BN_VECS is 4). */
#define FC_BN_PARTIAL_BLOCK(BODY, left, vl) \
    do { \
        const int nv_ = (int)(((left) + (vl) - 1) / (vl)); \
        switch (nv_ * 2 + ((left) % (vl) != 0)) { \
        case 2: BODY(1, 0); break; \
        case 3: BODY(1, 1); break; \
        case 4: BODY(2, 0); break; \
        case 5: BODY(2, 1); break; \
        case 6: BODY(3, 0); break; \
        case 7: BODY(3, 1); break; \
        case 9: BODY(4, 1); break; \
        default: break; \
        } \
    } while (0)

/* The rows-mode reductions (bn_stats_rows_body, bn_sums_rows_body): out1[j],
 * out2[j] for the columns j < width of one block (NV vectors), summed down
 * `rows` full rows of stride ld; k[j] per column. In a TAIL block the rows
 * read whole vectors while the lanes past width stay inside the rows given
 * (later columns, or the next rows' first values): their sums are never
 * stored, and k is 0 there. Only the last
 * rows, whose reads could leave the array, load through the mask (`whole`:
 * the rows before them): a masked load in the main row loop makes GCC 12
 * store every accumulator to the stack on each row. */
static inline int64_t bn_whole_rows(int64_t rows, int64_t ld, int64_t width, int64_t block_len)
{
    /* row r's reads end `over` values past its block; the rows after it hold
     * (rows - 1 - r) * ld values */
    const int64_t over = block_len - width, last = (over + ld - 1) / ld;
    return rows > last ? rows - last : 0;
}

#endif

/* ---------------------------------------------------------------------------
 * Reductions. One step over a vector of values x, with k the shift (stats)
 * or the mean (gradient sums) of their channels:
 *   stats (GRAD 0):     d = x - k;  a1 += d;   a2 += d * d
 *   gradient (GRAD 1):  d = x - k;  a1 += dy;  a2 += dy * d
 * The statistics convert every value to float64 (the variance to float32
 * rounding, |mean| >> std included). The rows-mode gradient sums add in FC_T
 * over runs of FC_BN_RUN_ROWS rows and the runs' sums in float64: per value
 * conversions made them compute-bound (measured on Zen 4, 32x56x56x64
 * channels last: the sums at 0.6x the time, the whole backward 0.7x).
 */
FC_ALWAYS_INLINE void FCN(bn_step)(fc_wvec xv, fc_wvec gv, fc_wvec k, fc_wvec *a1, fc_wvec *a2,
                                   const int GRAD)
{
    const fc_wvec d = VWSUB(xv, k);
    if (GRAD) {
        *a1 = VWADD(*a1, gv);
        *a2 = VWFMA(gv, d, *a2);
    } else {
        *a1 = VWADD(*a1, d);
        *a2 = VWFMA(d, d, *a2);
    }
}

/* Wide vectors per vector of FC_T. */
#define FC_BN_WIDE (FC_VL / FC_WL)

/* The first width sums of NW wide accumulators to out (all of them unless
 * TAIL). */
FC_ALWAYS_INLINE void FCN(bn_store_sums)(double *out, const fc_wvec *acc, int64_t width,
                                         const int NW, const int TAIL)
{
    if (!TAIL) {
        for (int v = 0; v < NW; ++v)
            VWSTORE(out + v * FC_WL, acc[v]);
        return;
    }
    double lanes[FC_BN_VECS * FC_BN_WIDE * FC_WL];
    for (int v = 0; v < NW; ++v)
        VWSTORE(lanes + v * FC_WL, acc[v]);
    memcpy(out, lanes, (size_t)width * sizeof(double));
}

/* The sum of all lanes of FC_BN_VECS accumulators, in a fixed order. */
FC_ALWAYS_INLINE double FCN(bn_lane_sum)(const fc_wvec *acc)
{
    const fc_wvec s = VWADD(VWADD(acc[0], acc[1]), VWADD(acc[2], acc[3]));
    double lanes[FC_WL];
    VWSTORE(lanes, s);
    double total = lanes[0];
    for (int i = 1; i < FC_WL; ++i)
        total += lanes[i];
    return total;
}

/* Statistics, one row of a column block: NV wide vectors, the last one
 * masked if MASKED. */
FC_ALWAYS_INLINE void FCN(bn_stats_row)(const FC_T *xr, const fc_wvec *kv, fc_wvec *a1,
                                        fc_wvec *a2, fc_wmask mask, const int NV,
                                        const int MASKED)
{
    (void)mask;
    for (int v = 0; v < NV; ++v) {
        const int m = MASKED && v == NV - 1;
        const fc_wvec xv = m ? VWLOAD_M(xr + v * FC_WL, mask) : VWLOAD(xr + v * FC_WL);
        FCN(bn_step)(xv, VWZERO(), kv[v], &a1[v], &a2[v], 0);
    }
}

FC_ALWAYS_INLINE void FCN(bn_stats_rows_body)(const FC_T *x, int64_t rows, int64_t ld,
                                              const FC_T *k, double *out1, double *out2,
                                              int64_t width, const int NV, const int TAIL)
{
    const fc_wmask mask =
        FC_MAKE_WMASK(TAIL ? (int)(width - (int64_t)(NV - 1) * FC_WL) : FC_WL);
    fc_wvec kv[FC_BN_VECS], a1[FC_BN_VECS], a2[FC_BN_VECS];
    for (int v = 0; v < NV; ++v) {
        kv[v] = TAIL && v == NV - 1 ? VWLOAD_M(k + v * FC_WL, mask) : VWLOAD(k + v * FC_WL);
        a1[v] = VWZERO();
        a2[v] = VWZERO();
    }
    const int64_t whole = TAIL ? bn_whole_rows(rows, ld, width, (int64_t)NV * FC_WL) : rows;
    for (int64_t r = 0; r < whole; ++r)
        FCN(bn_stats_row)(x + r * ld, kv, a1, a2, mask, NV, 0);
    for (int64_t r = whole; r < rows; ++r)
        FCN(bn_stats_row)(x + r * ld, kv, a1, a2, mask, NV, 1);
    FCN(bn_store_sums)(out1, a1, width, NV, TAIL);
    FCN(bn_store_sums)(out2, a2, width, NV, TAIL);
}

/* Gradient sums, one row of a column block: NV vectors of FC_T into the
 * run's sums, the last one masked if MASKED. */
FC_ALWAYS_INLINE void FCN(bn_sums_row)(const FC_T *gr, const FC_T *xr, const fc_vec *kv,
                                       fc_vec *a1, fc_vec *a2, fc_mask mask, const int NV,
                                       const int MASKED)
{
    (void)mask;
    for (int v = 0; v < NV; ++v) {
        const int m = MASKED && v == NV - 1;
        const fc_vec d = VSUB(m ? VLOAD_M(xr + v * FC_VL, mask) : VLOAD(xr + v * FC_VL), kv[v]);
        const fc_vec gv = m ? VLOAD_M(gr + v * FC_VL, mask) : VLOAD(gr + v * FC_VL);
        a1[v] = VADD(a1[v], gv);
        a2[v] = VFMA(gv, d, a2[v]);
    }
}

/* Adds a run's sums (NV vectors of FC_T) into the float64 accumulators
 * (FC_BN_WIDE wide vectors each) and clears them. */
FC_ALWAYS_INLINE void FCN(bn_widen_run)(fc_vec *run, fc_wvec *acc, const int NV)
{
    for (int v = 0; v < NV; ++v) {
        FC_T lanes[FC_VL];
        VSTORE(lanes, run[v]);
        for (int h = 0; h < FC_BN_WIDE; ++h)
            acc[v * FC_BN_WIDE + h] = VWADD(acc[v * FC_BN_WIDE + h], VWLOAD(lanes + h * FC_WL));
        run[v] = VZERO();
    }
}

FC_ALWAYS_INLINE void FCN(bn_sums_rows_body)(const FC_T *dy, const FC_T *x, int64_t rows,
                                             int64_t ld, const FC_T *k, double *out1,
                                             double *out2, int64_t width, const int NV,
                                             const int TAIL)
{
    const fc_mask mask = FC_MAKE_MASK(TAIL ? (int)(width - (int64_t)(NV - 1) * FC_VL) : FC_VL);
    fc_vec kv[FC_BN_VECS], a1[FC_BN_VECS], a2[FC_BN_VECS];
    fc_wvec w1[FC_BN_VECS * FC_BN_WIDE], w2[FC_BN_VECS * FC_BN_WIDE];
    for (int v = 0; v < NV; ++v) {
        kv[v] = TAIL && v == NV - 1 ? VLOAD_M(k + v * FC_VL, mask) : VLOAD(k + v * FC_VL);
        a1[v] = VZERO();
        a2[v] = VZERO();
    }
    for (int i = 0; i < NV * FC_BN_WIDE; ++i) {
        w1[i] = VWZERO();
        w2[i] = VWZERO();
    }
    const int64_t whole = TAIL ? bn_whole_rows(rows, ld, width, (int64_t)NV * FC_VL) : rows;
    for (int64_t r0 = 0; r0 < whole; r0 += FC_BN_RUN_ROWS) {
        const int64_t r1 = min64(r0 + FC_BN_RUN_ROWS, whole);
        for (int64_t r = r0; r < r1; ++r)
            FCN(bn_sums_row)(dy + r * ld, x + r * ld, kv, a1, a2, mask, NV, 0);
        FCN(bn_widen_run)(a1, w1, NV);
        FCN(bn_widen_run)(a2, w2, NV);
    }
    for (int64_t r = whole; r < rows; ++r)   /* the masked rows: one more run */
        FCN(bn_sums_row)(dy + r * ld, x + r * ld, kv, a1, a2, mask, NV, 1);
    FCN(bn_widen_run)(a1, w1, NV);
    FCN(bn_widen_run)(a2, w2, NV);
    FCN(bn_store_sums)(out1, w1, width, NV * FC_BN_WIDE, TAIL);
    FCN(bn_store_sums)(out2, w2, width, NV * FC_BN_WIDE, TAIL);
}

/* The column blocks of ncols columns: FC_BN_VECS vectors each (wide ones for
 * the statistics), the last one partial. */
FC_ALWAYS_INLINE void FCN(bn_reduce_rows)(const FC_T *dy, const FC_T *x, int64_t rows,
                                          int64_t ld, int64_t ncols, const FC_T *k,
                                          double *out1, double *out2, const int GRAD)
{
    const int vl = GRAD ? FC_VL : FC_WL;
    const int64_t block = FC_BN_VECS * vl;
#define FC_BN_BODY(NV, TAIL) \
    do { \
        if (GRAD) \
            FCN(bn_sums_rows_body)(dy + j, x + j, rows, ld, k + j, out1 + j, out2 + j, width, NV, \
                                   TAIL); \
        else \
            FCN(bn_stats_rows_body)(x + j, rows, ld, k + j, out1 + j, out2 + j, width, NV, TAIL); \
    } while (0)
    int64_t j = 0;
    for (; j + block <= ncols; j += block) {
        const int64_t width = block;
        FC_BN_BODY(FC_BN_VECS, 0);
    }
    const int64_t width = ncols - j;
    if (width > 0)
        FC_BN_PARTIAL_BLOCK(FC_BN_BODY, width, vl);
#undef FC_BN_BODY
}

/* s1[j] = sum over rows of (x - shift[j]), s2[j] = sum of (x - shift[j])^2. */
static void FCN(bn_stats_rows)(const FC_T *x, int64_t rows, int64_t ld, int64_t ncols,
                               const FC_T *shift, double *s1, double *s2)
{
    FCN(bn_reduce_rows)(NULL, x, rows, ld, ncols, shift, s1, s2, 0);
}

/* sum_dy[j] = sum over rows of dy, sum_dyx[j] = sum of dy * (x - mean[j]). */
static void FCN(bn_sums_rows)(const FC_T *dy, const FC_T *x, int64_t rows, int64_t ld,
                              int64_t ncols, const FC_T *mean, double *sum_dy, double *sum_dyx)
{
    FCN(bn_reduce_rows)(dy, x, rows, ld, ncols, mean, sum_dy, sum_dyx, 1);
}

/* Runs: the two sums over nruns runs of len values (stride apart) of one
 * channel, k its shift or mean. FC_BN_VECS accumulators per sum break the
 * addition's latency chain; a run's last few whole vectors go to the first
 * accumulators and its masked tail to the last one (fixed indices, so the
 * accumulators stay in registers). */
FC_ALWAYS_INLINE void FCN(bn_reduce_runs)(const FC_T *dy, const FC_T *x, int64_t nruns,
                                          int64_t stride, int64_t len, FC_T k, double sums[2],
                                          const int GRAD)
{
    const int64_t full = len / FC_WL, rest = len - full * FC_WL;
    const fc_wmask mask = FC_MAKE_WMASK(rest > 0 ? (int)rest : FC_WL);
    (void)mask;
    FC_T k_lanes[FC_WL];
    for (int i = 0; i < FC_WL; ++i)
        k_lanes[i] = k;
    const fc_wvec kv = VWLOAD(k_lanes), kv_tail = VWLOAD_M(k_lanes, mask);
    (void)kv_tail;
    fc_wvec a1[FC_BN_VECS], a2[FC_BN_VECS];
    for (int v = 0; v < FC_BN_VECS; ++v) {
        a1[v] = VWZERO();
        a2[v] = VWZERO();
    }
#define FC_BN_STEP(ACC, OFF) \
    FCN(bn_step)(VWLOAD(xr + (OFF)), GRAD ? VWLOAD(gr + (OFF)) : VWZERO(), kv, &a1[ACC], \
                 &a2[ACC], GRAD)
    for (int64_t r = 0; r < nruns; ++r) {
        const FC_T *xr = x + r * stride;
        const FC_T *gr = GRAD ? dy + r * stride : NULL;
        int64_t q = 0;
        for (; q + FC_BN_VECS <= full; q += FC_BN_VECS) {
            FC_BN_STEP(0, q * FC_WL);
            FC_BN_STEP(1, (q + 1) * FC_WL);
            FC_BN_STEP(2, (q + 2) * FC_WL);
            FC_BN_STEP(3, (q + 3) * FC_WL);
        }
        if (q < full)
            FC_BN_STEP(0, q * FC_WL);
        if (q + 1 < full)
            FC_BN_STEP(1, (q + 1) * FC_WL);
        if (q + 2 < full)
            FC_BN_STEP(2, (q + 2) * FC_WL);
        if (rest > 0)
            FCN(bn_step)(VWLOAD_M(xr + full * FC_WL, mask),
                         GRAD ? VWLOAD_M(gr + full * FC_WL, mask) : VWZERO(), kv_tail, &a1[3],
                         &a2[3], GRAD);
    }
#undef FC_BN_STEP
    sums[0] = FCN(bn_lane_sum)(a1);
    sums[1] = FCN(bn_lane_sum)(a2);
}

/* sums = {sum of (x - shift), sum of (x - shift)^2} over the runs. */
static void FCN(bn_stats_runs)(const FC_T *x, int64_t nruns, int64_t stride, int64_t len,
                               FC_T shift, double sums[2])
{
    FCN(bn_reduce_runs)(NULL, x, nruns, stride, len, shift, sums, 0);
}

/* sums = {sum of dy, sum of dy * (x - mean)} over the runs. */
static void FCN(bn_sums_runs)(const FC_T *dy, const FC_T *x, int64_t nruns, int64_t stride,
                              int64_t len, FC_T mean, double sums[2])
{
    FCN(bn_reduce_runs)(dy, x, nruns, stride, len, mean, sums, 1);
}

/* ---------------------------------------------------------------------------
 * Element-wise passes, in the working precision:
 *   apply (DX 0):  y  = (x - mean) * scale + bias            (then ReLU)
 *   dx    (DX 1):  dx = (dy - dy_mean) * a + (x - mean) * b
 * with c1 = scale or a, c2 = bias or b, c3 = dy_mean. x - mean comes first so
 * that a large mean cancels exactly instead of through x * scale - mean * scale.
 */
FC_ALWAYS_INLINE fc_vec FCN(bn_elem)(fc_vec xv, fc_vec gv, fc_vec m, fc_vec c1, fc_vec c2,
                                     fc_vec c3, const int DX, const int RELU)
{
    if (DX)
        return VFMA(VSUB(gv, c3), c1, VFMA(VSUB(xv, m), c2, VZERO()));
    const fc_vec out = VFMA(VSUB(xv, m), c1, c2);
    return RELU ? VRELU(out) : out;
}

/* Rows: `rows` rows of ld values, columns [0, width) of one block; the
 * coefficient pointers start at the block's first column. */
FC_ALWAYS_INLINE void FCN(bn_elem_rows_body)(const FC_T *dy, const FC_T *x, FC_T *out,
                                             int64_t rows, int64_t ld, const FC_T *mean,
                                             const FC_T *c1, const FC_T *c2, const FC_T *c3,
                                             int64_t width, const int NV, const int TAIL,
                                             const int DX, const int RELU)
{
    const fc_mask mask = FC_MAKE_MASK(TAIL ? (int)(width - (int64_t)(NV - 1) * FC_VL) : FC_VL);
    (void)mask;
    fc_vec m[FC_BN_VECS], k1[FC_BN_VECS], k2[FC_BN_VECS], k3[FC_BN_VECS];
    for (int v = 0; v < NV; ++v) {
        const int t = TAIL && v == NV - 1;
        const int64_t o = (int64_t)v * FC_VL;
        m[v] = t ? VLOAD_M(mean + o, mask) : VLOAD(mean + o);
        k1[v] = t ? VLOAD_M(c1 + o, mask) : VLOAD(c1 + o);
        k2[v] = t ? VLOAD_M(c2 + o, mask) : VLOAD(c2 + o);
        k3[v] = !DX ? VZERO() : t ? VLOAD_M(c3 + o, mask) : VLOAD(c3 + o);
    }
    for (int64_t r = 0; r < rows; ++r) {
        const FC_T *xr = x + r * ld;
        const FC_T *gr = DX ? dy + r * ld : NULL;
        FC_T *orow = out + r * ld;
        for (int v = 0; v < NV; ++v) {
            const int t = TAIL && v == NV - 1;
            const int64_t o = (int64_t)v * FC_VL;
            const fc_vec xv = t ? VLOAD_M(xr + o, mask) : VLOAD(xr + o);
            const fc_vec gv = !DX ? VZERO() : t ? VLOAD_M(gr + o, mask) : VLOAD(gr + o);
            const fc_vec res = FCN(bn_elem)(xv, gv, m[v], k1[v], k2[v], k3[v], DX, RELU);
            if (t)
                VSTORE_M(orow + o, res, mask);
            else
                VSTORE(orow + o, res);
        }
    }
}

/* Tiles of FC_BN_TILE_ROWS rows, each swept block by block across the row
 * (the tile stays in L1 between blocks). */
FC_ALWAYS_INLINE void FCN(bn_elem_rows)(const FC_T *dy, const FC_T *x, FC_T *out, int64_t rows,
                                        int64_t ld, const FC_T *mean, const FC_T *c1,
                                        const FC_T *c2, const FC_T *c3, const int DX,
                                        const int RELU)
{
    const int64_t block = FC_BN_VECS * FC_VL;
    for (int64_t r0 = 0; r0 < rows; r0 += FC_BN_TILE_ROWS) {
        const int64_t nr = rows - r0 < FC_BN_TILE_ROWS ? rows - r0 : FC_BN_TILE_ROWS;
        const int64_t off = r0 * ld;
        const FC_T *gt = DX ? dy + off : NULL;
        int64_t j = 0;
        for (; j + block <= ld; j += block)
            FCN(bn_elem_rows_body)(DX ? gt + j : NULL, x + off + j, out + off + j, nr, ld,
                                   mean + j, c1 + j, c2 + j, DX ? c3 + j : NULL, block,
                                   FC_BN_VECS, 0, DX, RELU);
        const int64_t left = ld - j;
#define FC_BN_BODY(NV, TAIL) \
    FCN(bn_elem_rows_body)(DX ? gt + j : NULL, x + off + j, out + off + j, nr, ld, mean + j, \
                           c1 + j, c2 + j, DX ? c3 + j : NULL, left, NV, TAIL, DX, RELU)
        if (left > 0)
            FC_BN_PARTIAL_BLOCK(FC_BN_BODY, left, FC_VL);
#undef FC_BN_BODY
    }
}

static void FCN(bn_apply_rows)(const FC_T *x, FC_T *y, int64_t rows, int64_t ld, const FC_T *mean,
                               const FC_T *scale, const FC_T *bias, int relu)
{
    if (relu)
        FCN(bn_elem_rows)(NULL, x, y, rows, ld, mean, scale, bias, NULL, 0, 1);
    else
        FCN(bn_elem_rows)(NULL, x, y, rows, ld, mean, scale, bias, NULL, 0, 0);
}

static void FCN(bn_dx_rows)(const FC_T *dy, const FC_T *x, FC_T *dx, int64_t rows, int64_t ld,
                            const FC_T *mean, const FC_T *dy_mean, const FC_T *a, const FC_T *b)
{
    FCN(bn_elem_rows)(dy, x, dx, rows, ld, mean, a, b, dy_mean, 1, 0);
}

/* Runs: the flat values [e0, e1), walked run by run (a run is the inner
 * values of one (o, ch), channel ch = run % c). */
FC_ALWAYS_INLINE void FCN(bn_elem_runs)(const FC_T *dy, const FC_T *x, FC_T *out, int64_t e0,
                                        int64_t e1, int64_t inner, int64_t c, const FC_T *mean,
                                        const FC_T *c1, const FC_T *c2, const FC_T *c3,
                                        const int DX, const int RELU)
{
    int64_t run = e0 / inner, ch = run % c;
    for (int64_t e = e0; e < e1; ++run, ch = ch + 1 == c ? 0 : ch + 1) {
        const int64_t end = (run + 1) * inner < e1 ? (run + 1) * inner : e1;
        const fc_vec m = VSET1(mean[ch]), k1 = VSET1(c1[ch]), k2 = VSET1(c2[ch]);
        const fc_vec k3 = DX ? VSET1(c3[ch]) : VZERO();
        for (; e + FC_VL <= end; e += FC_VL) {
            const fc_vec gv = DX ? VLOAD(dy + e) : VZERO();
            VSTORE(out + e, FCN(bn_elem)(VLOAD(x + e), gv, m, k1, k2, k3, DX, RELU));
        }
        if (e < end) {
            const fc_mask mask = FC_MAKE_MASK((int)(end - e));
            const fc_vec gv = DX ? VLOAD_M(dy + e, mask) : VZERO();
            VSTORE_M(out + e, FCN(bn_elem)(VLOAD_M(x + e, mask), gv, m, k1, k2, k3, DX, RELU),
                     mask);
            e = end;
        }
    }
}

static void FCN(bn_apply_runs)(const FC_T *x, FC_T *y, int64_t e0, int64_t e1, int64_t inner,
                               int64_t c, const FC_T *mean, const FC_T *scale, const FC_T *bias,
                               int relu)
{
    if (relu)
        FCN(bn_elem_runs)(NULL, x, y, e0, e1, inner, c, mean, scale, bias, NULL, 0, 1);
    else
        FCN(bn_elem_runs)(NULL, x, y, e0, e1, inner, c, mean, scale, bias, NULL, 0, 0);
}

static void FCN(bn_dx_runs)(const FC_T *dy, const FC_T *x, FC_T *dx, int64_t e0, int64_t e1,
                            int64_t inner, int64_t c, const FC_T *mean, const FC_T *dy_mean,
                            const FC_T *a, const FC_T *b)
{
    FCN(bn_elem_runs)(dy, x, dx, e0, e1, inner, c, mean, a, b, dy_mean, 1, 0);
}

/* The kernel-table entries (kernels_table.h, kernels_generic.c). */
#define FC_BN_TABLE_ENTRIES \
    .bn_stats_rows = FCN(bn_stats_rows), .bn_stats_runs = FCN(bn_stats_runs), \
    .bn_sums_rows = FCN(bn_sums_rows), .bn_sums_runs = FCN(bn_sums_runs), \
    .bn_apply_rows = FCN(bn_apply_rows), .bn_apply_runs = FCN(bn_apply_runs), \
    .bn_dx_rows = FCN(bn_dx_rows), .bn_dx_runs = FCN(bn_dx_runs),
