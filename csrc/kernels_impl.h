/*
 * kernels_impl.h: the single-threaded micro-kernels, written once over a
 * small vector vocabulary and compiled once per instruction set.
 *
 * The including file (kernels_avx512.c, kernels_avx2.c, kernels_generic.c)
 * includes it once per element type, defining before each inclusion:
 *   FC_T, FCN(name), FC_IS_F64        the element type (float or double), the
 *                                     name of an instantiation (fc_types_impl.h),
 *                                     and whether it is the double one
 *   fc_vec, fc_mask, FC_VL            vector type, tail-mask type, lanes
 *   VZERO() VLOAD(p) VLOAD_M(p, m)    full and masked (zero-filling) loads
 *   VSTORE(p, v) VSTORE_M(p, v, m)    full and masked stores
 *   VBCAST(p) VFMA(a, b, c) VRELU(v)  broadcast *p, a * b + c, max(v, 0)
 *                                     (VRELU must keep NaN, like np.maximum)
 *   VMIN(a, b)                        min(a, b), b when b is NaN
 *   VADD(a, b) VSUB(a, b) VSET1(f)    a + b, a - b, f in every lane
 *   VMUL(a, b)                        a * b
 *   FC_MAKE_MASK(n)                   mask of the first n lanes, 1 <= n <= FC_VL
 *   fc_cmp VTAKE(v, m) VEQ(a, b)      lane predicates: v > m or (v NaN and m
 *                                     not); a == b
 *   VSEL(pred, a, b)                  pred ? b : a, per lane
 *   VPAIRSWAP(v) FC_ODD_LANES         (FC_VL >= 2 only) lanes 2i and 2i+1 swapped; the
 *   VDUPHALF(p)                       odd lanes (an fc_cmp); p[i] in lanes 2i, 2i+1
 *   VHSUM(v)                          the sum of v's lanes, an FC_T
 *   VLOAD_EVEN(p) VLOAD_ODD(p)        (float only) p[2i], p[2i + 1] in lane i: the
 *                                     even and odd values of 2 FC_VL at p
 *   FC_ACC_ROWS, FC_ACC_VECS          bounds of the accumulator arrays
 *   FC_IGEMM_VECS                     (optional) the igemm tile's bound on
 *                                     vectors, when its few-row shapes (the
 *                                     table's gemv_nv) are wider than FC_ACC_VECS
 *
 * The bodies are always-inline functions whose tile shape (MR rows, NV
 * vectors) and tail flag are compile-time constants in each instantiation,
 * so the compiler unrolls the loops and keeps the accumulators in registers.
 * The generic build calls the same bodies with run-time shapes.
 */
#include <string.h>

#include "fc_internal.h"

#ifndef FC_IGEMM_VECS
#define FC_IGEMM_VECS FC_ACC_VECS
#endif

/* The prefetches' step in vectors: 16 values, a cache line of floats, two
 * of doubles. The float64 kernels thus fetch every other line; fetching
 * every line measured no faster (Zen 3, float64 1x1 backward: 1.02-1.05x
 * the time in four alternating runs, inside the 0.97-1.09 two identical
 * builds gave). */
#define FC_VECS_PER_LINE (FC_VL >= 16 ? 1 : 16 / FC_VL)

/* The fused activations of a forward store (the `relu` field): 0 none,
 * FC_ACT_RELU max(v, 0), FC_ACT_RELU6 min(max(v, 0), 6); NaN survives both. */
#define FC_ACTIVATE(v, act) \
    ((act) == 0 ? (v) : (act) == FC_ACT_RELU ? VRELU(v) : VMIN(VSET1((FC_T)6), VRELU(v)))

/* ---------------------------------------------------------------------------
 * Indirect GEMM (forward and backward-input convolution, dense layers).
 * Each k step: NV loads of B, MR broadcasts of A, MR * NV FMAs.
 */
FC_ALWAYS_INLINE void FCN(igemm_tile)(const FCN(fc_igemm_args) *FC_RESTRICT p, int64_t tile,
                                 const int MR, const int NV, const int TAIL)
{
    fc_vec acc[FC_ACC_ROWS][FC_IGEMM_VECS];
    const int64_t ntaps = p->ntaps, kc = p->kc, ldb = p->ldb;
    const int64_t a_step = p->a_step, row0 = tile * MR;
    const fc_mask mask = FC_MAKE_MASK(TAIL ? (int)(p->nr - (int64_t)(NV - 1) * FC_VL) : FC_VL);
    FC_T *c_row[FC_ACC_ROWS];
    for (int r = 0; r < MR; ++r)
        c_row[r] = a_step ? p->c[0] + (row0 + r) * p->c_step : p->c[r];

    /* Strided rows: ask for the next tile's A lines now (from L2, or from
     * memory for a 1x1 layer's input), a tile's arithmetic ahead of use. */
    if (a_step && p->prefetch_a && tile + 1 < p->m_tiles)
        for (int64_t t = 0; t < ntaps; ++t)
            for (int r = 0; r < MR; ++r)
                fc_prefetch_bytes(p->a[t] + (row0 + MR + r) * a_step, kc * (int64_t)sizeof(FC_T));

    if (p->accumulate) {
        for (int r = 0; r < MR; ++r) {
            const FC_T *c = c_row[r];
            for (int v = 0; v < NV; ++v) {
                if (c == NULL)
                    acc[r][v] = VZERO();
                else if (TAIL && v == NV - 1)
                    acc[r][v] = VLOAD_M(c + v * FC_VL, mask);
                else
                    acc[r][v] = VLOAD(c + v * FC_VL);
            }
        }
    } else if (p->bias_rows) {
        /* a bias per row (channels-first outputs: rows are channels) */
        for (int r = 0; r < MR; ++r) {
            const fc_vec b = VSET1(p->bias[row0 + r]);
            for (int v = 0; v < NV; ++v)
                acc[r][v] = b;
        }
    } else {
        fc_vec init[FC_IGEMM_VECS];
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

    /* C is written, not read, when this call starts it: ask for its lines
     * now, so that they arrive while the K loop runs. Stored cold at the
     * end, they stalled the stores behind them (the driver's next pointer
     * table): on a Zen 3 a 1x1 layer 28x28x128->128 at batch 32 went from
     * 21.9 to 17.1 ms at 1 thread (medians of 30 alternations), the 3x3
     * stride-2 one from 66.9 to 58.9 ms, the first layer (1 input channel)
     * 0.89 of its time. The last value's line too: a row need not start on
     * a line. */
    if (!p->accumulate)
        for (int r = 0; r < MR; ++r) {
            const FC_T *c = c_row[r];
            if (c == NULL)
                continue;
            for (int v = 0; v < NV; v += FC_VECS_PER_LINE)
                FC_PREFETCH(c + v * FC_VL);
            FC_PREFETCH(c + NV * FC_VL - 1);
        }

    const FC_T *b_next = tile == 0 && ntaps == 1 ? p->b_next : NULL;
    for (int64_t t = 0; t < ntaps; ++t) {
        const FC_T *a[FC_ACC_ROWS];
        for (int r = 0; r < MR; ++r)
            a[r] = a_step ? p->a[t] + (row0 + r) * a_step : p->a[t * MR + r];
        const FC_T *b = p->b[t];
        /* Unrolled: the loop's own add/compare/branch otherwise share the
         * FMA ports once per k step. Measured (Xeon with AVX-512, 1 thread,
         * in-process A/B of prepared pointwise layers, medians of 9):
         * 6x6x512 -> 512 and 3x3x1024 -> 1024 at batch 32 0.96x the time,
         * batch 1 0.97x; K = 128 layers 0.99-1.00x, the 3x3 stride-2
         * 56x56x64 -> 128 0.95-1.02x in three runs. In L1 alone (a C
         * harness) the 6x4 tile went from 86% of the FMA peak to 98%. */
        if (b_next != NULL) {
            /* the same loop, asking for the next B rows (fc_igemm_args) */
#if defined(__GNUC__)
#pragma GCC unroll 4
#endif
            for (int64_t k = 0; k < kc; ++k) {
                for (int v = 0; v < NV; v += FC_VECS_PER_LINE)
                    FC_PREFETCH(b_next + v * FC_VL);
                b_next += ldb;
                fc_vec bv[FC_IGEMM_VECS];
                for (int v = 0; v < NV; ++v)
                    bv[v] = VLOAD(b + v * FC_VL);
                for (int r = 0; r < MR; ++r) {
                    const fc_vec av = VBCAST(a[r] + k);
                    for (int v = 0; v < NV; ++v)
                        acc[r][v] = VFMA(av, bv[v], acc[r][v]);
                }
                b += ldb;
            }
            continue;
        }
#if defined(__GNUC__)
#pragma GCC unroll 4
#endif
        for (int64_t k = 0; k < kc; ++k) {
            /* Whole vectors even in a tail: B rows are padded (see
             * fc_igemm_args). A masked load in this loop makes GCC 12 store
             * every accumulator to the stack on every iteration. */
            fc_vec bv[FC_IGEMM_VECS];
            for (int v = 0; v < NV; ++v)
                bv[v] = VLOAD(b + v * FC_VL);
            for (int r = 0; r < MR; ++r) {
                const fc_vec av = VBCAST(a[r] + k);
                for (int v = 0; v < NV; ++v)
                    acc[r][v] = VFMA(av, bv[v], acc[r][v]);
            }
            b += ldb;
        }
    }

    for (int r = 0; r < MR; ++r) {
        FC_T *c = c_row[r];
        if (c == NULL)
            continue;
        for (int v = 0; v < NV; ++v) {
            const fc_vec out = FC_ACTIVATE(acc[r][v], p->relu);
            if (TAIL && v == NV - 1)
                VSTORE_M(c + v * FC_VL, out, mask);
            else
                VSTORE(c + v * FC_VL, out);
        }
    }
}

FC_ALWAYS_INLINE void FCN(igemm_body)(const FCN(fc_igemm_args) *FC_RESTRICT p,
                                 const int MR, const int NV, const int TAIL)
{
    const int64_t tiles = p->a_step ? p->m_tiles : 1;
    for (int64_t tile = 0; tile < tiles; ++tile)
        FCN(igemm_tile)(p, tile, MR, NV, TAIL);
}

/* Pixels ahead the weight-gradient kernel prefetches (4-16 measured alike). */
#define FC_WGRAD_PREFETCH 8

/* ---------------------------------------------------------------------------
 * Weight gradient: an outer-product accumulation over the pixels of a few
 * runs. Each pixel: NV loads of dy, MR broadcasts of x, MR * NV FMAs.
 */
FC_ALWAYS_INLINE void FCN(wgrad_body)(const FCN(fc_wgrad_args) *FC_RESTRICT p,
                                 const int MR, const int NV, const int TAIL)
{
    fc_vec acc[FC_ACC_ROWS][FC_ACC_VECS];
    const fc_mask mask = FC_MAKE_MASK(TAIL ? (int)(p->nr - (int64_t)(NV - 1) * FC_VL) : FC_VL);
    (void)mask;
    const int64_t as = p->a_stride, ds = p->d_stride;

    for (int r = 0; r < MR; ++r) {
        const FC_T *o = p->out + r * p->ldo;
        for (int v = 0; v < NV; ++v) {
            if (!p->accumulate)
                acc[r][v] = VZERO();
            else if (TAIL && v == NV - 1)
                acc[r][v] = VLOAD_M(o + v * FC_VL, mask);
            else
                acc[r][v] = VLOAD(o + v * FC_VL);
        }
    }

    for (int64_t i = 0; i < p->nruns; ++i) {
        const FC_T *a = p->a[i] + p->a_off;
        const FC_T *d = p->d[i] + p->d_off;
        for (int64_t j = p->count[i]; j > 0; --j) {
            /* Whole vectors, as in igemm_body: the lanes past nr hold
             * whatever follows (the caller guarantees it is readable) and
             * are never stored. */
            fc_vec dv[FC_ACC_VECS];
            /* The pixels' rows stream from L2 (a chunk is far larger than
             * L1): ask for a later pixel's lines ahead (measured: the
             * stride-2 layer's weight gradient 17.9 -> 17.0 ms, 1x1 ~10%). */
            for (int v = 0; v < NV; v += FC_VECS_PER_LINE)
                FC_PREFETCH(d + FC_WGRAD_PREFETCH * ds + v * FC_VL);
            FC_PREFETCH(a + FC_WGRAD_PREFETCH * as);
            for (int v = 0; v < NV; ++v)
                dv[v] = VLOAD(d + v * FC_VL);
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
        FC_T *o = p->out + r * p->ldo;
        for (int v = 0; v < NV; ++v) {
            if (TAIL && v == NV - 1)
                VSTORE_M(o + v * FC_VL, acc[r][v], mask);
            else
                VSTORE(o + v * FC_VL, acc[r][v]);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Backward-input of a layer with few input channels (c_in <= 4). A GEMM over
 * c_in would fill c_in lanes of a vector; here dx[pixel][ci] is a dot product
 * over (taps, c_out) of dy rows with kernel rows, vectorised over c_out, the
 * lanes summed at the end. row_tab[ih * kh + i] (col_tab[iw * kw + j]) is the
 * output row (column) that tap i (j) of input row ih (column iw) reads, or -1.
 * Rows r0 .. r1 of dx are (image, input row) pairs.
 */
#ifndef FC_DXF_VECS
#define FC_DXF_VECS 4   /* accumulators per input channel (FMA chains) */
#endif

FC_ALWAYS_INLINE void FCN(dx_few_body)(const fc_conv2d_params *p, const FC_T *dy,
                                  const FC_T *kernel, FC_T *dx, const int64_t *row_tab,
                                  const int64_t *col_tab, int64_t r0, int64_t r1, const int CIN)
{
    const int64_t c_out = p->c_out, full = c_out / FC_VL, rest = c_out - full * FC_VL;
    const fc_mask mask = FC_MAKE_MASK(rest > 0 ? (int)rest : FC_VL);
    (void)mask;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / p->h, ih = r - img * p->h;
        const FC_T *dy_img = dy + img * p->out_h * p->out_w * c_out;
        FC_T *out = dx + r * p->w * CIN;
        for (int64_t iw = 0; iw < p->w; ++iw, out += CIN) {
            /* Whole vectors of c_out first, the tail in a loop of its own:
             * a masked load in a loop makes GCC 12 store every accumulator
             * to the stack on each iteration. */
            fc_vec acc[4][FC_DXF_VECS];
            for (int ci = 0; ci < CIN; ++ci)
                for (int v = 0; v < FC_DXF_VECS; ++v)
                    acc[ci][v] = VZERO();
            for (int64_t i = 0; i < p->kh; ++i) {
                const int64_t oh = row_tab[ih * p->kh + i];
                if (oh < 0)
                    continue;
                for (int64_t j = 0; j < p->kw; ++j) {
                    const int64_t ow = col_tab[iw * p->kw + j];
                    if (ow < 0)
                        continue;
                    const FC_T *d = dy_img + (oh * p->out_w + ow) * c_out;
                    const FC_T *wt = kernel + (i * p->kw + j) * CIN * c_out;
                    int64_t q = 0;
                    for (; q + FC_DXF_VECS <= full; q += FC_DXF_VECS)
                        for (int v = 0; v < FC_DXF_VECS; ++v) {
                            const fc_vec dv = VLOAD(d + (q + v) * FC_VL);
                            for (int ci = 0; ci < CIN; ++ci)
                                acc[ci][v] = VFMA(dv, VLOAD(wt + ci * c_out + (q + v) * FC_VL),
                                                  acc[ci][v]);
                        }
                    for (int v = 0; v < FC_DXF_VECS; ++v)
                        if (q + v < full) {
                            const fc_vec dv = VLOAD(d + (q + v) * FC_VL);
                            for (int ci = 0; ci < CIN; ++ci)
                                acc[ci][v] = VFMA(dv, VLOAD(wt + ci * c_out + (q + v) * FC_VL),
                                                  acc[ci][v]);
                        }
                }
            }
            FC_T total[4];
            for (int ci = 0; ci < CIN; ++ci) {
                fc_vec sum = acc[ci][0];
                for (int v = 1; v < FC_DXF_VECS; ++v)
                    sum = VADD(sum, acc[ci][v]);
                total[ci] = VHSUM(sum);
            }
            if (rest > 0) {
                fc_vec tail[4];
                for (int ci = 0; ci < CIN; ++ci)
                    tail[ci] = VZERO();
                for (int64_t i = 0; i < p->kh; ++i) {
                    const int64_t oh = row_tab[ih * p->kh + i];
                    if (oh < 0)
                        continue;
                    for (int64_t j = 0; j < p->kw; ++j) {
                        const int64_t ow = col_tab[iw * p->kw + j];
                        if (ow < 0)
                            continue;
                        const FC_T *d = dy_img + (oh * p->out_w + ow) * c_out + full * FC_VL;
                        const FC_T *wt = kernel + (i * p->kw + j) * CIN * c_out + full * FC_VL;
                        const fc_vec dv = VLOAD_M(d, mask);
                        for (int ci = 0; ci < CIN; ++ci)
                            tail[ci] = VFMA(dv, VLOAD_M(wt + ci * c_out, mask), tail[ci]);
                    }
                }
                for (int ci = 0; ci < CIN; ++ci)
                    total[ci] += VHSUM(tail[ci]);
            }
            for (int ci = 0; ci < CIN; ++ci)
                out[ci] = total[ci];
        }
    }
}

static void FCN(dx_few_rows)(const fc_conv2d_params *p, const FC_T *dy, const FC_T *kernel,
                        FC_T *dx, const int64_t *row_tab, const int64_t *col_tab, int64_t r0,
                        int64_t r1)
{
    switch (p->c_in) {
    case 1: FCN(dx_few_body)(p, dy, kernel, dx, row_tab, col_tab, r0, r1, 1); break;
    case 2: FCN(dx_few_body)(p, dy, kernel, dx, row_tab, col_tab, r0, r1, 2); break;
    case 3: FCN(dx_few_body)(p, dy, kernel, dx, row_tab, col_tab, r0, r1, 3); break;
    case 4: FCN(dx_few_body)(p, dy, kernel, dx, row_tab, col_tab, r0, r1, 4); break;
    default: break;   /* the caller sends 1 to 4 input channels only */
    }
}

/* ---------------------------------------------------------------------------
 * A block transposed: dst[j * ldd + i] = src[i * lds + j] for i < rows,
 * j < cols. Its users: channel planes into pixel-major rows (NCHW rows into
 * an NHWC copy, the staging of the channels-first Winograd weight
 * gradient: rows are channels, lds the plane), and the dense layers' strips
 * (conv2d_impl.h). Square tiles transposed in registers, a fifth of the
 * instructions of scalar moves: FC_VL x FC_VL through the ISA's
 * FC_TRANSPOSE_TILE where it has one, then 8 x 8 floats with AVX2; the
 * edges value by value.
 */
#if !FC_IS_F64 && defined(__AVX2__)
static inline void transpose_tile8_ps(const float *s, int64_t ls, float *d, int64_t ld)
{
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i)
        r[i] = _mm256_loadu_ps(s + i * ls);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* 0 0' 1 1' | 4 4' 5 5' */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* 2 2' 3 3' | 6 6' 7 7' */
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);          /* columns 0, 4 */
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);      /* 1, 5 */
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);  /* 2, 6 */
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);  /* 3, 7 */
    }
    for (int j = 0; j < 4; ++j) {
        _mm256_storeu_ps(d + j * ld, _mm256_permute2f128_ps(r[j], r[j + 4], 0x20));
        _mm256_storeu_ps(d + (j + 4) * ld, _mm256_permute2f128_ps(r[j], r[j + 4], 0x31));
    }
}
#endif

/* Rows i0 .. i1, columns j0 .. j1 of the block: 8 x 8 tiles of floats with
 * AVX2, the rest value by value. */
static void FCN(transpose_edge)(const FC_T *src, int64_t lds, FC_T *FC_RESTRICT dst, int64_t ldd,
                                int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
#if !FC_IS_F64 && defined(__AVX2__)
    for (; i0 + 8 <= i1; i0 += 8) {
        int64_t j = j0;
        for (; j + 8 <= j1; j += 8)
            transpose_tile8_ps(src + i0 * lds + j, lds, dst + j * ldd + i0, ldd);
        for (; j < j1; ++j)
            for (int64_t i = i0; i < i0 + 8; ++i)
                dst[j * ldd + i] = src[i * lds + j];
    }
#endif
    for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < i1; ++i)
            dst[j * ldd + i] = src[i * lds + j];
}

static void FCN(transpose_block)(const FC_T *src, int64_t lds, FC_T *FC_RESTRICT dst,
                                 int64_t ldd, int64_t rows, int64_t cols)
{
    int64_t i0 = 0;
#ifdef FC_TRANSPOSE_TILE
    for (; i0 + FC_VL <= rows; i0 += FC_VL) {
        int64_t j0 = 0;
        for (; j0 + FC_VL <= cols; j0 += FC_VL)
            FC_TRANSPOSE_TILE(src + i0 * lds + j0, lds, dst + j0 * ldd + i0, ldd);
        FCN(transpose_edge)(src, lds, dst, ldd, i0, i0 + FC_VL, j0, cols);
    }
#endif
    FCN(transpose_edge)(src, lds, dst, ldd, i0, rows, 0, cols);
}

/* ---------------------------------------------------------------------------
 * Column sums (the bias gradient): out[ch] = sum of d[r * ld + ch] over rows
 * r = 0 .. n - 1, in row order, the running sums held in registers.
 */
#define FC_COLSUM_VECS 4

static void FCN(colsum_rows)(const FC_T *d, int64_t n, int64_t ld, int64_t c, FC_T *out)
{
    for (int64_t c0 = 0; c0 < c; c0 += FC_COLSUM_VECS * FC_VL) {
        const int64_t left = c - c0;
        const int nv = left >= FC_COLSUM_VECS * FC_VL ? FC_COLSUM_VECS
                                                      : (int)((left + FC_VL - 1) / FC_VL);
        const int tail = left < (int64_t)nv * FC_VL;
        const fc_mask mask = FC_MAKE_MASK(tail ? (int)(left % FC_VL) : FC_VL);
        (void)mask;
        fc_vec acc[FC_COLSUM_VECS];
        for (int v = 0; v < FC_COLSUM_VECS; ++v)
            acc[v] = VZERO();
        const FC_T *row = d + c0;
        for (int64_t r = 0; r < n; ++r, row += ld)
            for (int v = 0; v < nv; ++v)
                acc[v] = VADD(acc[v], (tail && v == nv - 1) ? VLOAD_M(row + v * FC_VL, mask)
                                                            : VLOAD(row + v * FC_VL));
        for (int v = 0; v < nv; ++v) {
            if (tail && v == nv - 1)
                VSTORE_M(out + c0 + v * FC_VL, acc[v], mask);
            else
                VSTORE(out + c0 + v * FC_VL, acc[v]);
        }
    }
}

#if !FC_IS_F64
/* The rest is float32 only: the peak probe and Winograd (whose transforms
 * would lose too much accuracy to be worth a float64 variant). */

/* ---------------------------------------------------------------------------
 * Peak probe: 12 independent FMA chains (enough to cover the FMA latency on
 * two ports), `iters` times; returns a value that depends on every chain so
 * the compiler cannot drop the work. Multiply-adds done: iters * 12 * FC_VL.
 */
static float fma_probe(int64_t iters)
{
    fc_vec acc[12];
    const fc_vec a = VSET1(0.999999f), b = VSET1(1e-7f);
    for (int i = 0; i < 12; ++i)
        acc[i] = VSET1((float)i);
    for (int64_t n = 0; n < iters; ++n)
        for (int i = 0; i < 12; ++i)
            acc[i] = VFMA(acc[i], a, b);
    fc_vec sum = acc[0];
    for (int i = 1; i < 12; ++i)
        sum = VADD(sum, acc[i]);
    float out[FC_VL];
    VSTORE(out, sum);
    return out[0];
}

/* ---------------------------------------------------------------------------
 * Winograd F(2x2, 3x3) transforms, channels in vectors (winograd.c drives
 * them). With the 4x4 input patch d, the transformed 3x3 kernel U and the
 * 2x2 output y of a tile:
 *   V = B^T d B,  M = V (.) U summed over input channels (16 GEMMs),
 *   y = A^T M A,
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1].
 */

/* d (the patch, row-major) := B^T d B, in place */
FC_ALWAYS_INLINE void wino_input_transform(fc_vec *d)
{
    fc_vec t[16];
    for (int col = 0; col < 4; ++col) {          /* B^T d */
        t[0 + col] = VSUB(d[0 + col], d[8 + col]);
        t[4 + col] = VADD(d[4 + col], d[8 + col]);
        t[8 + col] = VSUB(d[8 + col], d[4 + col]);
        t[12 + col] = VSUB(d[4 + col], d[12 + col]);
    }
    for (int row = 0; row < 16; row += 4) {      /* (B^T d) B */
        d[row + 0] = VSUB(t[row + 0], t[row + 2]);
        d[row + 1] = VADD(t[row + 1], t[row + 2]);
        d[row + 2] = VSUB(t[row + 2], t[row + 1]);
        d[row + 3] = VSUB(t[row + 1], t[row + 3]);
    }
}

/* y (the 2x2 output, row-major) = A^T m A */
FC_ALWAYS_INLINE void wino_output_transform(const fc_vec *m, fc_vec *y)
{
    fc_vec s[8];
    for (int col = 0; col < 4; ++col) {          /* A^T M */
        s[col] = VADD(VADD(m[0 + col], m[4 + col]), m[8 + col]);
        s[4 + col] = VSUB(VSUB(m[4 + col], m[8 + col]), m[12 + col]);
    }
    for (int row = 0; row < 2; ++row) {          /* (A^T M) A */
        y[2 * row + 0] = VADD(VADD(s[4 * row + 0], s[4 * row + 1]), s[4 * row + 2]);
        y[2 * row + 1] = VSUB(VSUB(s[4 * row + 1], s[4 * row + 2]), s[4 * row + 3]);
    }
}

/* Whether a sum of (r - r) terms saw a NaN or an infinity: its lanes are 0
 * while every r was finite. */
static int wino_any_nonfinite(fc_vec check)
{
    float lanes[FC_VL];
    VSTORE(lanes, check);
    float sum = 0.0f;
    for (int i = 0; i < FC_VL; ++i)
        sum += lanes[i];
    return sum != 0.0f;   /* NaN != 0 too */
}

/* cells: the 16 input pixels of the patch, row-major, NULL where padding;
 * writes V[e] at v + e * v_stride, c channels each. */
static void wino_input_tile(const float *const *cells, int64_t c, float *v, int64_t v_stride)
{
    for (int64_t ch = 0; ch < c; ch += FC_VL) {
        const int tail = c - ch < FC_VL;
        const fc_mask mask = FC_MAKE_MASK(tail ? (int)(c - ch) : FC_VL);
        (void)mask;
        fc_vec d[16];
        for (int i = 0; i < 16; ++i)
            d[i] = cells[i] == NULL ? VZERO()
                   : tail           ? VLOAD_M(cells[i] + ch, mask)
                                    : VLOAD(cells[i] + ch);
        wino_input_transform(d);
        for (int e = 0; e < 16; ++e) {
            if (tail)
                VSTORE_M(v + e * v_stride + ch, d[e], mask);
            else
                VSTORE(v + e * v_stride + ch, d[e]);
        }
    }
}

/* m: M[e] at m + e * m_stride, c channels each; out: the 4 output pixels of
 * the tile, row-major, NULL where past the output's edge. Adds bias (may be
 * NULL) and applies ReLU if asked. Returns nonzero when an output is NaN or
 * infinite: the transforms mix all 16 cells of a tile, so a non-finite input
 * would reach outputs whose window does not hold it, and the caller then
 * recomputes with the direct algorithm. */
/* The tile's 4 outputs of channels [ch, ch + FC_VL) (masked in a tail),
 * bias added. */
FC_ALWAYS_INLINE void wino_tile_outputs(const float *m, int64_t m_stride, int64_t ch,
                                        const float *bias, int tail, fc_mask mask, fc_vec *y)
{
    (void)mask;
    fc_vec v[16], t[4];
    for (int e = 0; e < 16; ++e)
        v[e] = tail ? VLOAD_M(m + e * m_stride + ch, mask) : VLOAD(m + e * m_stride + ch);
    wino_output_transform(v, t);
    const fc_vec b = bias == NULL ? VZERO()
                     : tail       ? VLOAD_M(bias + ch, mask)
                                  : VLOAD(bias + ch);
    for (int q = 0; q < 4; ++q)
        y[q] = VADD(t[q], b);
}

static int wino_output_tile(const float *m, int64_t m_stride, int64_t c, const float *bias,
                            int relu, float *const *out)
{
    fc_vec check = VZERO();  /* stays 0 while every output is finite (x - x) */
    for (int64_t ch = 0; ch < c; ch += FC_VL) {
        const int tail = c - ch < FC_VL;
        const fc_mask mask = FC_MAKE_MASK(tail ? (int)(c - ch) : FC_VL);
        fc_vec y[4];
        wino_tile_outputs(m, m_stride, ch, bias, tail, mask, y);
        for (int q = 0; q < 4; ++q) {
            if (out[q] == NULL)
                continue;
            fc_vec r = y[q];
            check = VADD(check, VSUB(r, r));
            r = FC_ACTIVATE(r, relu);
            if (tail)
                VSTORE_M(out[q] + ch, r, mask);
            else
                VSTORE(out[q] + ch, r);
        }
    }
    return wino_any_nonfinite(check);
}

/* wino_output_tile's outputs pooled: the max of the outputs (r, c) whose bit
 * 2 r + c is set in `cells` (at least output (0, 0)), in row-major order,
 * the first of equal values kept, as the max-pooling kernels do, stored at
 * out. Returns nonzero when one of those outputs is NaN or infinite. */
static int wino_output_pool_tile(const float *m, int64_t m_stride, int64_t c, const float *bias,
                                 int relu, unsigned cells, float *out)
{
    fc_vec check = VZERO();
    for (int64_t ch = 0; ch < c; ch += FC_VL) {
        const int tail = c - ch < FC_VL;
        const fc_mask mask = FC_MAKE_MASK(tail ? (int)(c - ch) : FC_VL);
        fc_vec y[4];
        wino_tile_outputs(m, m_stride, ch, bias, tail, mask, y);
        fc_vec best = VZERO();
        for (int q = 0; q < 4; ++q) {
            if (!(cells >> q & 1u))
                continue;
            fc_vec r = y[q];
            check = VADD(check, VSUB(r, r));
            r = FC_ACTIVATE(r, relu);
            best = q == 0 ? r : VSEL(VTAKE(r, best), best, r);
        }
        if (tail)
            VSTORE_M(out + ch, best, mask);
        else
            VSTORE(out + ch, best);
    }
    return wino_any_nonfinite(check);
}

/* Weight gradient by F(3x3, 2x2), the transpose of F(2x2, 3x3):
 *   dW = G^T [sum over tiles (A g A^T) (.) (B^T d B)] G
 * with g a 2x2 patch of dy, d the 4x4 patch of x it sees (wino_input_tile)
 * and A = [1 0; 1 1; 1 -1; 0 -1]. This transforms g: cells are dy's 4
 * pixels, row-major, NULL past the edge; writes D[e] at out + e * stride. */
static void wino_dy_tile(const float *const *cells, int64_t c, float *out, int64_t stride)
{
    for (int64_t ch = 0; ch < c; ch += FC_VL) {
        const int tail = c - ch < FC_VL;
        const fc_mask mask = FC_MAKE_MASK(tail ? (int)(c - ch) : FC_VL);
        (void)mask;
        fc_vec g[4], t[8], d[16];
        for (int i = 0; i < 4; ++i)
            g[i] = cells[i] == NULL ? VZERO()
                   : tail           ? VLOAD_M(cells[i] + ch, mask)
                                    : VLOAD(cells[i] + ch);
        const fc_vec zero = VZERO();
        for (int col = 0; col < 2; ++col) {          /* A g: 4 x 2 */
            t[0 + col] = g[col];
            t[2 + col] = VADD(g[col], g[2 + col]);
            t[4 + col] = VSUB(g[col], g[2 + col]);
            t[6 + col] = VSUB(zero, g[2 + col]);
        }
        for (int row = 0; row < 4; ++row) {          /* (A g) A^T: 4 x 4 */
            d[4 * row + 0] = t[2 * row];
            d[4 * row + 1] = VADD(t[2 * row], t[2 * row + 1]);
            d[4 * row + 2] = VSUB(t[2 * row], t[2 * row + 1]);
            d[4 * row + 3] = VSUB(zero, t[2 * row + 1]);
        }
        for (int e = 0; e < 16; ++e) {
            if (tail)
                VSTORE_M(out + e * stride + ch, d[e], mask);
            else
                VSTORE(out + e * stride + ch, d[e]);
        }
    }
}

/* Channels first: the transforms of a row of tiles, tiles in the vector
 * lanes. rows[r] (r < 4) is input row r of the tile row, padded: tile tx
 * reads columns 2tx .. 2tx + 3, split into even and odd values in
 * registers, so each of its 16 cells is one lane of a vector. Writes V[e]
 * of tiles 0 .. n - 1 at v + e * v_stride + tx. Whole vectors are read:
 * each row readable to twice n rounded up to FC_VL, plus 2. */
static void wino_input_row_cf(const float *const *rows, int64_t n, float *v, int64_t v_stride)
{
    for (int64_t tx = 0; tx < n; tx += FC_VL) {
        const int tail = n - tx < FC_VL;
        const fc_mask mask = FC_MAKE_MASK(tail ? (int)(n - tx) : FC_VL);
        (void)mask;
        fc_vec d[16];
        for (int r = 0; r < 4; ++r) {
            const float *cols = rows[r] + 2 * tx;
            d[4 * r + 0] = VLOAD_EVEN(cols);
            d[4 * r + 1] = VLOAD_ODD(cols);
            d[4 * r + 2] = VLOAD_EVEN(cols + 2);
            d[4 * r + 3] = VLOAD_ODD(cols + 2);
        }
        wino_input_transform(d);
        /* one pointer stepped through the 16 rows, hidden from the
         * compiler's induction-variable pass, which would otherwise keep 16
         * row pointers across iterations and spill them to the stack */
        float *o = v + tx;
#if defined(__GNUC__)
        __asm__("" : "+r"(o));
#endif
        for (int e = 0; e < 16; ++e, o += v_stride) {
            if (tail)
                VSTORE_M(o, d[e], mask);
            else
                VSTORE(o, d[e]);
        }
    }
}

/* m: M[e] of tiles 0 .. n - 1 at m + e * m_stride + tx (readable to n rounded
 * up to FC_VL). Writes the tiles' outputs + bias, then ReLU if asked,
 * deinterleaved: output row r, column 2 tx + c at out[2 r + c][tx], n
 * rounded up to FC_VL values each (lanes past n are scratch). Returns
 * nonzero when an output lane is NaN or infinite (see wino_output_tile). */
static int wino_output_row_cf(const float *m, int64_t m_stride, int64_t n, float bias, int relu,
                              float *const *out)
{
    fc_vec check = VZERO();
    const fc_vec b = VSET1(bias);
    for (int64_t tx = 0; tx < n; tx += FC_VL) {
        fc_vec v[16], y[4];
        for (int e = 0; e < 16; ++e)
            v[e] = VLOAD(m + e * m_stride + tx);
        wino_output_transform(v, y);
        for (int q = 0; q < 4; ++q) {
            fc_vec r = VADD(y[q], b);
            check = VADD(check, VSUB(r, r));
            VSTORE(out[q] + tx, FC_ACTIVATE(r, relu));
        }
    }
    return wino_any_nonfinite(check);
}
#endif /* !FC_IS_F64 */

#include "kernels_depthwise_impl.h"
#include "kernels_batchnorm_impl.h"
/* The pooling family (max, average and sum windows, global pooling,
 * upsampling). */
#include "kernels_pool_impl.h"
