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
    int wgrad_mr_max[FC_MAX_NV + 1];      /* per nv */
    FCN(fc_igemm_fn) igemm[FC_MAX_MR + 1][FC_MAX_NV + 1][2];  /* [mr][nv][partial] */
    FCN(fc_wgrad_fn) wgrad[FC_MAX_MR + 1][FC_MAX_NV + 1][2];  /* [mr][nv][partial] */
    FCN(fc_igemm_fn) igemm_any;           /* run-time shaped, for empty slots */
    FCN(fc_wgrad_fn) wgrad_any;
    FCN(fc_maxpool_bwd_fn) maxpool_bwd;
    /* out[0..c) = column sums of n rows of d, row stride ld (the bias gradient) */
    void (*colsum)(const FC_T *d, int64_t n, int64_t ld, int64_t c, FC_T *out);
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
    void (*wino_dy)(const float *const *cells, int64_t c, float *out, int64_t stride);
#endif
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
    /* acc[k] += x[r * ld + k] for rows r < rows in order, k < count; in float64 */
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
