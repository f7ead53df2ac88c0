/*
 * kernels_impl.h: the single-threaded micro-kernels, written once over a
 * small vector vocabulary and compiled once per instruction set.
 *
 * The including file (kernels_avx512.c, kernels_avx2.c, kernels_generic.c)
 * defines, before including this header:
 *   fc_vec, fc_mask, FC_VL            vector type, tail-mask type, lanes
 *   VZERO() VLOAD(p) VLOAD_M(p, m)    full and masked (zero-filling) loads
 *   VSTORE(p, v) VSTORE_M(p, v, m)    full and masked stores
 *   VBCAST(p) VFMA(a, b, c) VRELU(v)  broadcast *p, a * b + c, max(v, 0)
 *                                     (VRELU must keep NaN, like np.maximum)
 *   FC_MAKE_MASK(n)                   mask of the first n lanes, 1 <= n <= FC_VL
 *   FC_ACC_ROWS, FC_ACC_VECS          bounds of the accumulator arrays
 *
 * The bodies are always-inline functions whose tile shape (MR rows, NV
 * vectors) and tail flag are compile-time constants in each instantiation,
 * so the compiler unrolls the loops and keeps the accumulators in registers.
 * The generic build calls the same bodies with run-time shapes.
 */
#include <string.h>

#include "fc_internal.h"

/* ---------------------------------------------------------------------------
 * Indirect GEMM (forward and backward-input convolution, dense layers).
 * Each k step: NV loads of B, MR broadcasts of A, MR * NV FMAs.
 */
FC_ALWAYS_INLINE void igemm_body(const fc_igemm_args *FC_RESTRICT p,
                                 const int MR, const int NV, const int TAIL)
{
    fc_vec acc[FC_ACC_ROWS][FC_ACC_VECS];
    const int64_t ntaps = p->ntaps, kc = p->kc, ldb = p->ldb;
    const fc_mask mask = FC_MAKE_MASK(TAIL ? (int)(p->nr - (int64_t)(NV - 1) * FC_VL) : FC_VL);

    if (p->accumulate) {
        for (int r = 0; r < MR; ++r) {
            const float *c = p->c[r];
            for (int v = 0; v < NV; ++v) {
                if (c == NULL)
                    acc[r][v] = VZERO();
                else if (TAIL && v == NV - 1)
                    acc[r][v] = VLOAD_M(c + v * FC_VL, mask);
                else
                    acc[r][v] = VLOAD(c + v * FC_VL);
            }
        }
    } else {
        fc_vec init[FC_ACC_VECS];
        for (int v = 0; v < NV; ++v) {
            if (p->bias == NULL)
                init[v] = VZERO();
            else if (TAIL && v == NV - 1)
                init[v] = VLOAD_M(p->bias + v * FC_VL, mask);
            else
                init[v] = VLOAD(p->bias + v * FC_VL);
        }
        for (int r = 0; r < MR; ++r)
            for (int v = 0; v < NV; ++v)
                acc[r][v] = init[v];
    }

    for (int64_t t = 0; t < ntaps; ++t) {
        const float *a[FC_ACC_ROWS];
        for (int r = 0; r < MR; ++r)
            a[r] = p->a[t * MR + r];
        const float *b = p->b[t];
        for (int64_t k = 0; k < kc; ++k) {
            fc_vec bv[FC_ACC_VECS];
            for (int v = 0; v < NV; ++v)
                bv[v] = (TAIL && v == NV - 1) ? VLOAD_M(b + v * FC_VL, mask)
                                              : VLOAD(b + v * FC_VL);
            for (int r = 0; r < MR; ++r) {
                const fc_vec av = VBCAST(a[r] + k);
                for (int v = 0; v < NV; ++v)
                    acc[r][v] = VFMA(av, bv[v], acc[r][v]);
            }
            b += ldb;
        }
    }

    for (int r = 0; r < MR; ++r) {
        float *c = p->c[r];
        if (c == NULL)
            continue;
        for (int v = 0; v < NV; ++v) {
            const fc_vec out = p->relu ? VRELU(acc[r][v]) : acc[r][v];
            if (TAIL && v == NV - 1)
                VSTORE_M(c + v * FC_VL, out, mask);
            else
                VSTORE(c + v * FC_VL, out);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Weight gradient: an outer-product accumulation over the pixels of a few
 * runs. Each pixel: NV loads of dy, MR broadcasts of x, MR * NV FMAs.
 */
FC_ALWAYS_INLINE void wgrad_body(const fc_wgrad_args *FC_RESTRICT p,
                                 const int MR, const int NV, const int TAIL)
{
    fc_vec acc[FC_ACC_ROWS][FC_ACC_VECS];
    const fc_mask mask = FC_MAKE_MASK(TAIL ? (int)(p->nr - (int64_t)(NV - 1) * FC_VL) : FC_VL);
    (void)mask;
    const int64_t as = p->a_stride, ds = p->d_stride;

    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            acc[r][v] = VZERO();

    for (int64_t i = 0; i < p->nruns; ++i) {
        const float *a = p->a[i];
        const float *d = p->d[i];
        for (int64_t j = p->count[i]; j > 0; --j) {
            fc_vec dv[FC_ACC_VECS];
            for (int v = 0; v < NV; ++v)
                dv[v] = (TAIL && v == NV - 1) ? VLOAD_M(d + v * FC_VL, mask)
                                              : VLOAD(d + v * FC_VL);
            for (int r = 0; r < MR; ++r) {
                const fc_vec av = VBCAST(a + r);
                for (int v = 0; v < NV; ++v)
                    acc[r][v] = VFMA(av, dv[v], acc[r][v]);
            }
            a += as;
            d += ds;
        }
    }

    for (int r = 0; r < MR; ++r) {
        float *o = p->out + r * p->ldo;
        for (int v = 0; v < NV; ++v) {
            if (TAIL && v == NV - 1)
                VSTORE_M(o + v * FC_VL, acc[r][v], mask);
            else
                VSTORE(o + v * FC_VL, acc[r][v]);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Max pooling, one output pixel, channels innermost. Plain loops that the
 * compiler vectorises for the ISA this file is built for.
 *
 * A cell replaces the running maximum when it is larger, or when it is NaN
 * and the maximum is not: the first NaN sticks, and among equal values the
 * earliest cell in row-major window order wins.
 */
static void maxpool_fwd_pixel(const float *const *win, int64_t nwin, int64_t c,
                              float *FC_RESTRICT y)
{
    memcpy(y, win[0], (size_t)c * sizeof(float));
    for (int64_t j = 1; j < nwin; ++j) {
        const float *FC_RESTRICT x = win[j];
        for (int64_t ch = 0; ch < c; ++ch) {
            const float v = x[ch], m = y[ch];
            const int take = (v > m) | ((v != v) & (m == m));
            y[ch] = take ? v : m;
        }
    }
}

static void maxpool_bwd_pixel(const float *const *win, float *const *dx_win,
                              int64_t nwin, int64_t c, const float *FC_RESTRICT dy,
                              float *FC_RESTRICT best, int32_t *FC_RESTRICT idx)
{
    memcpy(best, win[0], (size_t)c * sizeof(float));
    for (int64_t ch = 0; ch < c; ++ch)
        idx[ch] = 0;
    for (int64_t j = 1; j < nwin; ++j) {
        const float *FC_RESTRICT x = win[j];
        for (int64_t ch = 0; ch < c; ++ch) {
            const float v = x[ch], m = best[ch];
            const int take = (v > m) | ((v != v) & (m == m));
            best[ch] = take ? v : m;
            idx[ch] = take ? (int32_t)j : idx[ch];
        }
    }
    for (int64_t j = 0; j < nwin; ++j) {
        float *FC_RESTRICT dx = dx_win[j];
        for (int64_t ch = 0; ch < c; ++ch)
            dx[ch] += (idx[ch] == (int32_t)j) ? dy[ch] : 0.0f;
    }
}
