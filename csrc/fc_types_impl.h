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

/* Max pooling forward of output rows [r0, r1) (rows of n * out_h). */
typedef void (*FCN(fc_maxpool_fwd_fn))(const fc_pool2d_params *p, const FC_T *x, FC_T *y,
                                       int64_t r0, int64_t r1);
/* Backward of output rows [r0, r1), channels [c0, c1); with `overlap`, adds
 * into dx (zeroed first), else stores each cell of each window. */
typedef void (*FCN(fc_maxpool_bwd_fn))(const fc_pool2d_params *p, const FC_T *dy,
                                       const FC_T *x, FC_T *dx, int64_t r0, int64_t r1,
                                       int64_t c0, int64_t c1, int overlap);

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
    FCN(fc_maxpool_fwd_fn) maxpool_fwd;
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
} FCN(fc_kernel_table);
