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

/* FC_PREFETCH of every line of the `bytes` bytes at p (which need not start
 * on a line). */
FC_ALWAYS_INLINE void fc_prefetch_bytes(const void *p, int64_t bytes)
{
    const char *c = (const char *)p;
    for (int64_t b = 0; b < bytes; b += 64)
        FC_PREFETCH(c + b);
    if (bytes > 0)
        FC_PREFETCH(c + bytes - 1);
}

/* Integer arithmetic of the drivers' index computations. */
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}
/* floor(a / b) and ceil(a / b) for b > 0 and any a */
static inline int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }
static inline int64_t gcd64(int64_t a, int64_t b)
{
    while (b != 0) {
        const int64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}
/* Start and size of balanced block b of n items in nb blocks. */
static inline void block_of(int64_t n, int64_t nb, int64_t b, int64_t *start, int64_t *size)
{
    const int64_t base = n / nb, extra = n % nb;
    *start = b * base + min64(b, extra);
    *size = base + (b < extra ? 1 : 0);
}

/* Largest register tiles any ISA uses; the generic path uses the table
 * sizes at run time. */
#define FC_MAX_MR 12  /* rows (pixels or input channels) of a tile   */
#define FC_MAX_NV 16  /* vectors (of the ISA's width) across columns */
#define FC_GEMV_MAX_ROWS 4  /* GEMM rows of the few-row forward (gemv_forward) */

/* The argument structs and kernel tables of the micro-kernels exist once per
 * element type: fc_igemm_args, fc_kernel_table, ... for float and
 * fc_igemm_args_f64, fc_kernel_table_f64, ... for double. */
#define FC_T float
#define FCN(name) name
#define FC_IS_F64 0
#include "fc_types_impl.h"
#undef FC_T
#undef FCN
#undef FC_IS_F64
#define FC_T double
#define FCN(name) name##_f64
#define FC_IS_F64 1
#include "fc_types_impl.h"
#undef FC_T
#undef FCN
#undef FC_IS_F64

extern const fc_kernel_table fc_kernels_generic;
extern const fc_kernel_table_f64 fc_kernels_generic_f64;
#ifdef FC_HAVE_AVX2
extern const fc_kernel_table fc_kernels_avx2;
extern const fc_kernel_table_f64 fc_kernels_avx2_f64;
#endif
#ifdef FC_HAVE_AVX512
extern const fc_kernel_table fc_kernels_avx512;
extern const fc_kernel_table_f64 fc_kernels_avx512_f64;
#endif

/* The tables of the active SIMD path (cpu.c). */
const fc_kernel_table *fc_active_kernels(void);
const fc_kernel_table_f64 *fc_active_kernels_f64(void);

/* --- pooling family (pool2d.c, kernels_pool_impl.h) --- */

/* What a pooling window reduces to: its max-pool winner, its mean, its sum. */
enum { FC_POOL_MAX = 0, FC_POOL_AVG = 1, FC_POOL_SUM = 2 };

/* Channels per work item of the NHWC pooling drivers (whole slabs of dx per
 * thread), and the most a global_max kernel call takes. */
#define FC_POOL_CHANNEL_BLOCK 64

/* --- Winograd F(2x2, 3x3) (winograd.c) --- */

/* Whether fc_conv2d_forward (backward = 0) or fc_conv2d_backward_input
 * (backward = 1) of this layer runs through Winograd, in either layout (the
 * weight gradient only in channels-last). */
int fc_winograd_applies(const fc_conv2d_params *p, int backward);
/* FC_OK, an error, or FC_WINO_NONFINITE: an output was NaN or infinite and
 * the caller must recompute with the direct algorithm (y is then garbage). */
#define FC_WINO_NONFINITE 1
int fc_winograd_conv3x3(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t out_h,
                        int64_t out_w, int64_t c_out, int64_t pad_top, int64_t pad_left,
                        const float *x, const float *kernel, int transpose, const float *bias,
                        int relu, float *y, int n_threads);
/* fc_winograd_conv3x3 of a forward channels-last layer for which
 * fc_winograd_applies; with pool_h > 0, y is its 2x2 stride-2 max pooling
 * (pool_h x pool_w: out_h / 2 rounded down or up); u, unless NULL, the
 * kernel's transform (fc_winograd_prepare_kernel) in place of `kernel`.
 * Same return values. */
int fc_winograd_forward_nhwc(const fc_conv2d_params *p, const float *x, const float *kernel,
                             const float *u, const float *bias, float *y, int64_t pool_h,
                             int64_t pool_w);
/* The floats of such a layer's kernel transform for the active kernel
 * table, and the transform itself (all of u written). */
int64_t fc_winograd_u_floats(const fc_conv2d_params *p);
int fc_winograd_prepare_kernel(const fc_conv2d_params *p, const float *kernel, float *u);
/* The same for NCHW x / y and an OIHW kernel (with transpose: of the layer
 * whose backward-input this is); same return values. */
int fc_winograd_conv3x3_nchw(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t out_h,
                             int64_t out_w, int64_t c_out, int64_t pad_top, int64_t pad_left,
                             const float *x, const float *kernel, int transpose,
                             const float *bias, int relu, float *y, int n_threads);

/* Whether the weight gradient runs by F(3x3, 2x2): fc_winograd_applies(p,
 * 0) and, on the AVX2 path (channels last), a large enough layer. */
int fc_winograd_wgrad_applies(const fc_conv2d_params *p);
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
void fc_fold_f64(double *FC_RESTRICT dst, const double *FC_RESTRICT src, int64_t e0, int64_t e1,
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

/* A thread's number in its parallel region, and the region's size: the
 * threads it really got, which OpenMP may make fewer than num_threads asked
 * (OMP_DYNAMIC, thread limits), so static splits divide work by it. */
#ifdef _OPENMP
#include <omp.h>
#define FC_THREAD_ID() omp_get_thread_num()
#define FC_TEAM_SIZE() omp_get_num_threads()
#else
#define FC_THREAD_ID() 0
#define FC_TEAM_SIZE() 1
#endif

#endif /* FC_INTERNAL_H */
