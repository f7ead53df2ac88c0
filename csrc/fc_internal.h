/*
 * fc_internal.h: what the drivers (conv2d.c, pool2d.c) and the per-ISA
 * micro-kernels (kernels_*.c) share. Not part of the public interface.
 *
 * The split: drivers decide the work decomposition and run the OpenMP
 * regions; micro-kernels are single-threaded loops compiled once per
 * instruction set and reached through a table of function pointers.
 */
#ifndef FC_INTERNAL_H
#define FC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fastconv.h"

#if defined(_MSC_VER) && !defined(__clang__)
#define FC_RESTRICT __restrict
#define FC_ALWAYS_INLINE static __forceinline
#else
#define FC_RESTRICT __restrict__
#define FC_ALWAYS_INLINE static inline __attribute__((always_inline))
#endif

/* Largest register tiles any ISA uses; the generic path uses the table
 * sizes at run time. */
/* A hint to fetch the cache line holding p; never faults, so it may point
 * past the end of an array. */
#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define FC_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#elif defined(__GNUC__) || defined(__clang__)
#define FC_PREFETCH(p) __builtin_prefetch(p)
#else
#define FC_PREFETCH(p) ((void)(p))
#endif

#define FC_MAX_MR 12  /* rows (pixels or input channels) of a tile   */
#define FC_MAX_NV 16  /* vectors (of the ISA's width) across columns */

/*
 * Indirect GEMM tile: C[r, 0:nr] (+)= sum_t sum_k A_t[r][k] * B_t[k, 0:nr]
 * for r < mr. Each tap t supplies mr row pointers (a row of kc contiguous
 * floats, or a shared zero row for padding) and one B pointer (kc rows of
 * ldb floats). Rows whose C pointer is NULL are computed but not stored.
 */
typedef struct fc_igemm_args {
    int64_t ntaps;
    int64_t kc;
    const float *const *a;    /* [ntaps * mr] */
    const float *const *b;    /* [ntaps]; rows of nv * vl readable floats (lanes past
                                 nr are read, never used: callers pad B) */
    int64_t ldb;
    int64_t nr;               /* valid columns, 1 .. nv * vl */
    const float *bias;        /* nr floats or NULL (ignored when accumulate) */
    float *const *c;          /* [mr] row pointers, NULL rows skipped */
    int mr, nv;               /* tile shape (used by the generic kernel) */
    int accumulate;           /* start from C instead of bias/zero */
    int relu;
} fc_igemm_args;

/*
 * Weight-gradient tile: OUT[r, 0:nr] (+)= sum over runs i, pixels j < count[i]
 * of A_i[j * a_stride + r] * D_i[j * d_stride + 0:nr], for r < mr; the run
 * pointers are offset by a_off / d_off floats.
 */
typedef struct fc_wgrad_args {
    int64_t nruns;
    const float *const *a;    /* [nruns] first pixel of each run (already offset) */
    const float *const *d;    /* [nruns]; nv * vl floats readable from d_off of every
                                 pixel (lanes past nr are read, never used) */
    const int64_t *count;     /* [nruns] */
    int64_t a_stride, d_stride;
    int64_t a_off, d_off;
    int64_t nr;
    float *out;
    int64_t ldo;
    int mr, nv;
    int accumulate;           /* add to OUT instead of overwriting it */
} fc_wgrad_args;

typedef void (*fc_igemm_fn)(const fc_igemm_args *);
typedef void (*fc_wgrad_fn)(const fc_wgrad_args *);

/* Max pooling forward of output rows [r0, r1) (rows of n * out_h). */
typedef void (*fc_maxpool_fwd_fn)(const fc_pool2d_params *p, const float *x, float *y,
                                  int64_t r0, int64_t r1);
/* Backward of output rows [r0, r1), channels [c0, c1); with `overlap`, adds
 * into dx (zeroed first), else stores each cell of each window. */
typedef void (*fc_maxpool_bwd_fn)(const fc_pool2d_params *p, const float *dy, const float *x,
                                  float *dx, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                  int overlap);

typedef struct fc_kernel_table {
    const char *name;
    int vl;                               /* floats per vector */
    int igemm_mr[FC_MAX_NV + 1];          /* pixels per igemm tile, per nv */
    int nv_max;                           /* vectors per igemm/wgrad tile */
    int wgrad_mr_max[FC_MAX_NV + 1];      /* per nv */
    fc_igemm_fn igemm[FC_MAX_MR + 1][FC_MAX_NV + 1][2];  /* [mr][nv][partial] */
    fc_wgrad_fn wgrad[FC_MAX_MR + 1][FC_MAX_NV + 1][2];  /* [mr][nv][partial] */
    fc_igemm_fn igemm_any;                /* run-time shaped, for empty slots */
    fc_wgrad_fn wgrad_any;
    fc_maxpool_fwd_fn maxpool_fwd;
    fc_maxpool_bwd_fn maxpool_bwd;
    /* out[0..c) = column sums of n rows of d, row stride ld (the bias gradient) */
    void (*colsum)(const float *d, int64_t n, int64_t ld, int64_t c, float *out);
    /* backward-input rows [r0, r1) (image x input row) of a layer with 1-4
     * input channels; the tables as in kernels_impl.h */
    void (*dx_few)(const fc_conv2d_params *p, const float *dy, const float *kernel, float *dx,
                   const int64_t *row_tab, const int64_t *col_tab, int64_t r0, int64_t r1);
    float (*fma_probe)(int64_t iters);    /* iters * 12 * vl multiply-adds */
    /* Winograd F(2x2, 3x3) tile transforms (kernels_impl.h) */
    void (*wino_input)(const float *const *cells, int64_t c, float *v, int64_t v_stride);
    int (*wino_output)(const float *m, int64_t m_stride, int64_t c, const float *bias,
                       int relu, float *const *out);   /* nonzero: a non-finite output */
    void (*wino_dy)(const float *const *cells, int64_t c, float *out, int64_t stride);
} fc_kernel_table;

extern const fc_kernel_table fc_kernels_generic;
#ifdef FC_HAVE_AVX2
extern const fc_kernel_table fc_kernels_avx2;
#endif
#ifdef FC_HAVE_AVX512
extern const fc_kernel_table fc_kernels_avx512;
#endif

/* The table of the active SIMD path (cpu.c). */
const fc_kernel_table *fc_active_kernels(void);

/* --- Winograd F(2x2, 3x3) (winograd.c) --- */

/* Whether fc_conv2d_forward (backward = 0) or fc_conv2d_backward_input
 * (backward = 1) of this layer runs through Winograd. */
int fc_winograd_applies(const fc_conv2d_params *p, int backward);
/* FC_OK, an error, or FC_WINO_NONFINITE: an output was NaN or infinite and
 * the caller must recompute with the direct algorithm (y is then garbage). */
#define FC_WINO_NONFINITE 1
int fc_winograd_conv3x3(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t out_h,
                        int64_t out_w, int64_t c_out, int64_t pad_top, int64_t pad_left,
                        const float *x, const float *kernel, int transpose, const float *bias,
                        int relu, float *y, int n_threads);

/* dkernel (and dbias unless NULL) of a layer for which fc_winograd_applies
 * (p, 0), by F(3x3, 2x2); chunked and folded in a fixed order like the direct
 * weight gradient, so bitwise identical for any thread count. */
int fc_winograd_wgrad3x3(const fc_conv2d_params *p, const float *dy, const float *x,
                         float *dkernel, float *dbias);

/* --- helpers shared by the drivers (common.c) --- */

/* Threads to use for `work` multiply-adds spread over `items` independent
 * pieces: never more than requested, than items, or than the work pays for. */
int fc_pick_threads(int requested, double work, int64_t items);

/* [begin, end) of the static block of `total` items owned by thread `tid`. */
void fc_thread_range(int64_t total, int nthreads, int tid, int64_t *begin, int64_t *end);

/* One step of an order-fixed reduction over chunk partials: dst[e] = src[e]
 * for the first chunk, dst[e] += src[e] after, for e in [e0, e1). */
void fc_fold(float *FC_RESTRICT dst, const float *FC_RESTRICT src, int64_t e0, int64_t e1,
             int first);

/* a * b, or -1 on overflow (both non-negative). */
int64_t fc_mul(int64_t a, int64_t b);

/* Per-thread floating-point mode for kernels: flush denormals to zero.
 * fc_fpmode_enter returns the previous state for fc_fpmode_leave. */
unsigned fc_fpmode_enter(void);
void fc_fpmode_leave(unsigned saved);

/* Zeroed, 64-byte aligned scratch; NULL on failure or overflow. */
void *fc_calloc(int64_t count, int64_t size);
void *fc_malloc(int64_t count, int64_t size);   /* not zeroed */
void fc_free(void *ptr);

#ifdef _OPENMP
#include <omp.h>
#define FC_THREAD_ID() omp_get_thread_num()
#else
#define FC_THREAD_ID() 0
#endif

#endif /* FC_INTERNAL_H */
