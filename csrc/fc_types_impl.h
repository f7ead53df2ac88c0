/*
 * fc_types_impl.h: the argument structs and the kernel table of the
 * micro-kernels for one element type. fc_internal.h includes it twice, with
 * FC_T float and FCN(name) name, then FC_T double and FCN(name) name##_f64.
 * No include guard, on purpose.
 */

/*
 * Indirect GEMM tile: C[r, 0:nr] (+)= sum_t sum_k A_t[r][k] * B_t[k, 0:nr]
 * for r < mr. Each tap t supplies mr row pointers (a row of kc contiguous
 * values, or a shared zero row for padding) and one B pointer (kc rows of
 * ldb values). Rows whose C pointer is NULL are computed but not stored.
 */
typedef struct FCN(fc_igemm_args) {
    int64_t ntaps;
    int64_t kc;
    const FC_T *const *a;     /* [ntaps * mr] */
    const FC_T *const *b;     /* [ntaps]; rows of nv * vl readable values (lanes past
                                 nr are read, never used: callers pad B) */
    int64_t ldb;
    int64_t nr;               /* valid columns, 1 .. nv * vl */
    const FC_T *bias;         /* NULL, or nr values (one per column), or with
                                 bias_rows one per row; ignored when accumulate */
    int bias_rows;
    FC_T *const *c;           /* [mr] row pointers, NULL rows skipped */
    int mr, nv;               /* tile shape (used by the generic kernel) */
    int accumulate;           /* start from C instead of bias/zero */
    int relu;
    /* 0: a and c are the tables above, one tile. > 0: strided rows, row r
     * of tap t at a[t] + r * a_step (a holds ntaps pointers) and C row r at
     * c[0] + r * c_step, and the call runs m_tiles tiles of mr rows, tile i
     * from row i * mr (bias_rows: bias[i * mr + r]). A call per register
     * tile weighed on small K: Winograd's 16 GEMMs of a 16-channel layer
     * called per 12 rows spent 25% of the forward in the driver, 14% with
     * whole blocks per call (perf, Zen 5). */
    int64_t a_step, c_step, m_tiles;
    int prefetch_a;           /* strided calls: each tile asks for the next tile's
                                 A lines as it starts (callers set it where A comes
                                 from L2 or memory, not where a previous panel's
                                 pass left it in L1) */
    /* NULL, or the B rows (kc of them, ldb apart, nv * vl values each) the
     * caller reads next: the call's first tile asks for them row by row as
     * its K loop runs, so that a panel of B streamed from memory or L3
     * arrives behind the current one instead of stalling the next call. */
    const FC_T *b_next;
} FCN(fc_igemm_args);

/*
 * Weight-gradient tile: OUT[r, 0:nr] (+)= sum over runs i, pixels j < count[i]
 * of A_i[j * a_stride + r] * D_i[j * d_stride + 0:nr], for r < mr; the run
 * pointers are offset by a_off / d_off values.
 */
typedef struct FCN(fc_wgrad_args) {
    int64_t nruns;
    const FC_T *const *a;     /* [nruns] first pixel of each run (already offset) */
    const FC_T *const *d;     /* [nruns]; nv * vl values readable from d_off of every
                                 pixel (lanes past nr are read, never used) */
    const int64_t *count;     /* [nruns] */
    int64_t a_stride, d_stride;
    int64_t a_off, d_off;
    int64_t nr;
    FC_T *out;
    int64_t ldo;
    int mr, nv;
    int accumulate;           /* add to OUT instead of overwriting it */
} FCN(fc_wgrad_args);

typedef void (*FCN(fc_igemm_fn))(const FCN(fc_igemm_args) *);
typedef void (*FCN(fc_wgrad_fn))(const FCN(fc_wgrad_args) *);

/* NHWC max-pool backward of output rows [r0, r1), channels [c0, c1); with
 * `overlap`, adds into dx (zeroed first), else stores each cell of each
 * window. */
typedef void (*FCN(fc_maxpool_bwd_fn))(const fc_pool2d_params *p, const FC_T *dy,
                                       const FC_T *x, FC_T *dx, int64_t r0, int64_t r1,
                                       int64_t c0, int64_t c1, int overlap);

/* ---------------------------------------------------------------------------
 * Depthwise convolution (kernels_depthwise_impl.h, driven by depthwise_impl.h).
 * Shapes the micro-kernels accept: */
#ifndef FC_DW_MAX_P
#define FC_DW_MAX_P 4      /* pixels of a channels-last block */
#define FC_DW_MAX_V 4      /* channel vectors of a block or tile (the table's
                              dw_v_max may be lower) */
#define FC_DW_MAX_T 5      /* taps of a channels-last weight-gradient tile */
#define FC_DW_MAX_DOTS 9   /* taps of a channels-first weight-gradient tile */
#endif

/*
 * Channels-last block: for pixels p < p and channels ch of v vectors,
 *   dst[p * dst_step + ch] = act(bias[ch] + sum over tap rows r < nrows and
 *       tap columns c < ncols of  src(r, c, p)[ch] * kernel[row_k[r] + col_k[c] + ch])
 *   src(r, c, p) = row_src[r] + (col_src[c] + src_off + p * src_step).
 * kernel, bias (NULL: zero) and dst point at the block's first channel,
 * src_off includes it. With tail > 0 (v == 1 only) the vector holds tail
 * channels, else whole vectors. Forward: the taps of a window inside the
 * input; backward-input: the taps of the transposed problem. col_src and
 * col_k are arithmetic progressions (consecutive kernel columns, or those of
 * one stride phase): the 3 x 3 kernels step through them.
 */
typedef struct FCN(fc_dw_block_args) {
    const FC_T *const *row_src;
    const int64_t *row_k;
    int64_t nrows;
    const int64_t *col_src, *col_k;
    int64_t ncols;
    int64_t src_off, src_step;
    const FC_T *kernel, *bias;
    FC_T *dst;
    int64_t dst_step;
    int p, v, tail, relu;
} FCN(fc_dw_block_args);

/*
 * Channels-last run of a 3-column kernel (dilation 1) along one output row:
 * for output pixels q < n and every channel of the blocks,
 *   dst[q * pixel + ch] = act(bias[ch] + sum over rows r < nrows, columns
 *       c < 3 of row_src[r][src_off + (q * stride + c) * pixel + ch]
 *                * kernel[row_k[r] + c * pixel + ch]),
 * every source pixel inside the input (the driver keeps the edges). The
 * channels come in nblocks blocks: block b starts at channel block_ch[b] and
 * holds block_v[b] whole vectors, except a last one of tail lanes (v == 1)
 * when tail > 0. pixel: elements per pixel (source and output); stride: 1
 * or 2.
 */
typedef struct FCN(fc_dw_run_args) {
    const FC_T *const *row_src;
    const int64_t *row_k;
    int64_t nrows, src_off, n, pixel, stride;
    const FC_T *kernel, *bias;
    FC_T *dst;
    int64_t nblocks;
    const int64_t *block_ch;
    const int *block_v;
    int tail, relu;
} FCN(fc_dw_run_args);

/*
 * Channels-last weight-gradient tile: for taps t < t (of one kernel row, tap
 * t's source at x + t * tap_step) and channels ch of v vectors,
 *   out[t * ldo + ch] (+)= sum over runs i, pixels q < count[i] of
 *       x[i][t * tap_step + q * x_step + ch] * d[i][q * d_step + ch].
 * out, x and d point at the first channel; tail as in fc_dw_block_args.
 */
typedef struct FCN(fc_dw_wgrad_args) {
    int64_t nruns;
    const FC_T *const *x;
    const FC_T *const *d;
    const int64_t *count;
    int64_t x_step, d_step, tap_step;
    FC_T *out;
    int64_t ldo;
    int t, v, tail, accumulate;   /* accumulate: add to out instead of storing */
} FCN(fc_dw_wgrad_args);

/*
 * Channels-first row: out[q] = act(bias + sum over taps k < ntaps of
 * wt[k] * src[k][q]) for q < len. Whole vectors are read: src[k] must be
 * readable up to len rounded up to the vector length (those lanes are
 * never stored).
 */
typedef struct FCN(fc_dw_rows_args) {
    int64_t ntaps;
    const FC_T *const *src;
    const FC_T *wt;
    FC_T bias;
    int relu;
    FC_T *out;
    int64_t len;
} FCN(fc_dw_rows_args);

/*
 * Channels-first weight-gradient tile: for taps k < ntaps (<= FC_DW_MAX_DOTS),
 *   out[k] = sum over runs i, q < len of d[i][q] * x[i][tap_off[k] + q]
 * and, unless db is NULL, *db = the sum of the d[i][q]; exactly len values
 * are read per row.
 */
typedef struct FCN(fc_dw_dots_args) {
    int64_t nruns;
    const FC_T *const *x;
    const FC_T *const *d;
    const int64_t *tap_off;
    int64_t ntaps, len;
    FC_T *out, *db;
} FCN(fc_dw_dots_args);
/* One axis of bilinear upsampling (built by pool2d_impl.h). Forward: output
 * index o reads in[lo[o]] * w0[o] + in[hi[o]] * w1[o], or in[lo[o]] alone
 * when w1[o] == 0 (then hi[o] == lo[o]). Transpose: input index i is read by
 * the outputs src[start[i] .. start[i + 1]), ascending, with weights wt. */
typedef struct FCN(fc_lerp_axis) {
    const int64_t *lo, *hi;
    const FC_T *w0, *w1;
    const int64_t *start, *src;
    const FC_T *wt;
} FCN(fc_lerp_axis);

typedef struct FCN(fc_kernel_table) {
    const char *name;
    int vl;                               /* values per vector */
    int igemm_mr[FC_MAX_NV + 1];          /* pixels per igemm tile, per nv */
    int nv_max;                           /* vectors per igemm/wgrad tile */
    /* vectors per igemm tile of mr <= FC_GEMV_MAX_ROWS rows in the few-row
     * path (dense layers on a few samples: one pass over B, all columns a
     * thread owns at once); the igemm slots [mr][1..gemv_nv[mr]] exist */
    int gemv_nv[FC_GEMV_MAX_ROWS + 1];
    int wgrad_mr_max[FC_MAX_NV + 1];      /* per nv */
    FCN(fc_igemm_fn) igemm[FC_MAX_MR + 1][FC_MAX_NV + 1][2];  /* [mr][nv][partial] */
    FCN(fc_wgrad_fn) wgrad[FC_MAX_MR + 1][FC_MAX_NV + 1][2];  /* [mr][nv][partial] */
    FCN(fc_igemm_fn) igemm_any;           /* run-time shaped, for empty slots */
    FCN(fc_wgrad_fn) wgrad_any;
    FCN(fc_maxpool_bwd_fn) maxpool_bwd;
    /* out[0..c) = column sums of n rows of d, row stride ld (the bias gradient) */
    void (*colsum)(const FC_T *d, int64_t n, int64_t ld, int64_t c, FC_T *out);
    /* dst[j * ldd + i] = src[i * lds + j], i < rows, j < cols (kernels_impl.h) */
    void (*transpose)(const FC_T *src, int64_t lds, FC_T *dst, int64_t ldd, int64_t rows,
                      int64_t cols);
    /* backward-input rows [r0, r1) (image x input row) of a layer with 1-4
     * input channels; the tables as in kernels_impl.h */
    void (*dx_few)(const fc_conv2d_params *p, const FC_T *dy, const FC_T *kernel, FC_T *dx,
                   const int64_t *row_tab, const int64_t *col_tab, int64_t r0, int64_t r1);
#if !FC_IS_F64
    float (*fma_probe)(int64_t iters);    /* iters * 12 * vl multiply-adds */
    /* Winograd F(2x2, 3x3) tile transforms (kernels_impl.h), float32 only */
    void (*wino_input)(const float *const *cells, int64_t c, float *v, int64_t v_stride);
    int (*wino_output)(const float *m, int64_t m_stride, int64_t c, const float *bias,
                       int relu, float *const *out);   /* nonzero: a non-finite output */
    /* the same, the max of the tile's outputs in `cells` (bit 2 r + c: output
     * (r, c) exists) stored at out: a 2x2 max-pooling window */
    int (*wino_output_pool)(const float *m, int64_t m_stride, int64_t c, const float *bias,
                            int relu, unsigned cells, float *out);
    void (*wino_dy)(const float *const *cells, int64_t c, float *out, int64_t stride);
    /* the channels-first transforms of a row of tiles (tiles in the lanes) */
    void (*wino_input_cf)(const float *const *rows, int64_t n, float *v,
                          int64_t v_stride);
    int (*wino_output_cf)(const float *m, int64_t m_stride, int64_t n, float bias, int relu,
                          float *const *out);
#endif
    /* depthwise convolution (kernels_depthwise_impl.h) */
    int dw_v_max;                         /* channel vectors per block / tile */
    void (*dw_block)(const FCN(fc_dw_block_args) *a);
    void (*dw_run)(const FCN(fc_dw_run_args) *a);
    void (*dw_wgrad)(const FCN(fc_dw_wgrad_args) *a);
    void (*dw_rows)(const FCN(fc_dw_rows_args) *a);
    void (*dw_dots)(const FCN(fc_dw_dots_args) *a);
    /* Batch normalization (kernels_batchnorm_impl.h, driven by batchnorm_impl.h).
     * "rows": `rows` rows of ld values, per-column coefficients, the first
     * ncols (stats, sums) or all ld (apply, dx) columns; "runs": contiguous
     * runs of one channel, per-channel coefficients. Sums in double. */
    void (*bn_stats_rows)(const FC_T *x, int64_t rows, int64_t ld, int64_t ncols,
                          const FC_T *shift, double *s1, double *s2);
    void (*bn_stats_runs)(const FC_T *x, int64_t nruns, int64_t stride, int64_t len,
                          FC_T shift, double sums[2]);
    void (*bn_sums_rows)(const FC_T *dy, const FC_T *x, int64_t rows, int64_t ld,
                         int64_t ncols, const FC_T *mean, double *sum_dy, double *sum_dyx);
    void (*bn_sums_runs)(const FC_T *dy, const FC_T *x, int64_t nruns, int64_t stride,
                         int64_t len, FC_T mean, double sums[2]);
    void (*bn_apply_rows)(const FC_T *x, FC_T *y, int64_t rows, int64_t ld, const FC_T *mean,
                          const FC_T *scale, const FC_T *bias, int relu);
    void (*bn_apply_runs)(const FC_T *x, FC_T *y, int64_t e0, int64_t e1, int64_t inner,
                          int64_t c, const FC_T *mean, const FC_T *scale, const FC_T *bias,
                          int relu);
    void (*bn_dx_rows)(const FC_T *dy, const FC_T *x, FC_T *dx, int64_t rows, int64_t ld,
                       const FC_T *mean, const FC_T *dy_mean, const FC_T *a, const FC_T *b);
    void (*bn_dx_runs)(const FC_T *dy, const FC_T *x, FC_T *dx, int64_t e0, int64_t e1,
                       int64_t inner, int64_t c, const FC_T *mean, const FC_T *dy_mean,
                       const FC_T *a, const FC_T *b);
    /* --- pooling family (kernels_pool_impl.h); op is an FC_POOL_* --- */
    /* window reduction of output rows [r0, r1): NHWC rows of n * out_h, NCHW
     * rows of n * c * out_h (p->channels_first picks the layout) */
    void (*pool_reduce)(const fc_pool2d_params *p, int op, const FC_T *x, FC_T *y, int64_t r0,
                        int64_t r1);
    /* NCHW max-pool backward of output rows [r0, r1) (rows of n * c * out_h);
     * tiled (pool == stride): stores every cell of the rows the windows own,
     * else adds into dx (zeroed by the caller) */
    void (*maxpool_bwd_nchw)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *x,
                             FC_T *dx, int64_t r0, int64_t r1, int tiled);
    /* average-pool backward of dx rows [r0, r1) (rows of n * h, or n * c * h
     * for NCHW); rdiv: 1 / divisor per output cell, or NULL for rdiv1 for
     * all; scratch: w + pad_left + pool_w values (NCHW only) */
    void (*avgpool_bwd)(const fc_pool2d_params *p, const FC_T *dy, const FC_T *rdiv, FC_T rdiv1,
                        FC_T *dx, int64_t r0, int64_t r1, FC_T *scratch);
    /* best[ch - c0] = the max-pool winner of channel ch over `pixels` rows of
     * c values (channels [c0, c1), at most FC_POOL_CHANNEL_BLOCK); where[ch -
     * c0] its row, unless where is NULL */
    void (*global_max)(const FC_T *x, int64_t pixels, int64_t c, int64_t c0, int64_t c1,
                       FC_T *best, int64_t *where);
    /* the max-pool winner's index in a contiguous run of len values (len >= 1) */
    int64_t (*plane_argmax)(const FC_T *x, int64_t len);
    /* acc[k] = the sum of x[r * ld + k] over rows r < rows in order, k < count;
     * in float64 */
    void (*global_sum)(const FC_T *x, int64_t rows, int64_t ld, int64_t count, double *acc);
    /* the float64 sum of a contiguous run of len values, in a fixed order */
    double (*plane_sum)(const FC_T *x, int64_t len);
    /* upsampling forward of rows [r0, r1): nearest, input rows (n * h, or
     * n * c * h); bilinear, output rows (n * out_h, or n * c * out_h) */
    void (*upsample_fwd)(const fc_upsample_params *p, const FCN(fc_lerp_axis) *ax_h,
                         const FCN(fc_lerp_axis) *ax_w, const FC_T *x, FC_T *y, int64_t r0,
                         int64_t r1);
    /* bilinear backward of dx rows [r0, r1) (n * h, or n * c * h); nearest
     * backward is pool_reduce's FC_POOL_SUM */
    void (*upsample_bwd)(const fc_upsample_params *p, const FCN(fc_lerp_axis) *ax_h,
                         const FCN(fc_lerp_axis) *ax_w, const FC_T *dy, FC_T *dx, int64_t r0,
                         int64_t r1);
} FCN(fc_kernel_table);
