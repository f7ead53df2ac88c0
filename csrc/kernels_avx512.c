/*
 * kernels_avx512.c: micro-kernels for AVX-512 (F, DQ, BW, VL) with FMA, in
 * float32 and float64. Compiled with -mavx512f -mavx512dq -mavx512bw
 * -mavx512vl -mfma (setup.py); reached only when cpu.c found those features
 * enabled by the OS.
 *
 * Tiles (in vectors of 16 floats or 8 doubles): igemm 6 pixels x 4 vectors,
 * 8 x 3 or 12 x 2: 24 zmm accumulators + the B vectors + 1 broadcast; wgrad
 * up to 12 rows x 2 vectors, 8 x 3 or 6 x 4 (accumulators + dy vectors + 1
 * broadcast <= 32 registers).
 */
#include <immintrin.h>

#include "fc_internal.h"

/* Every tile height up to the register limit: row-aligned tiles are
 * balanced cuts of a row, e.g. 26 = 6 + 5 + 5 + 5 + 5. */
#define FC_AVX512_IGEMM_LIST(X) \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1) X(11, 1) X(12, 1) \
    X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2) X(8, 2) X(9, 2) X(10, 2) X(11, 2) X(12, 2) \
    X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(6, 3) X(7, 3) X(8, 3) \
    X(1, 4) X(2, 4) X(3, 4) X(4, 4) X(5, 4) X(6, 4)
/* The few-row tiles of dense layers on a few samples (gemv_nv): up to 8
 * vectors of one row, fewer for more rows (accumulators + B vectors + 1
 * broadcast <= 32 registers). */
#define FC_AVX512_GEMV_LIST(X) \
    X(1, 5) X(1, 6) X(1, 7) X(1, 8) X(2, 5) X(2, 6) X(2, 7) X(2, 8) X(3, 5) X(3, 6) X(3, 7) \
    X(4, 5) X(4, 6)
#define FC_AVX512_IGEMM_GEMV_LIST(X) FC_AVX512_IGEMM_LIST(X) FC_AVX512_GEMV_LIST(X)

/* In-register transposes of a square tile, d[j * ld + i] = s[i * ls + j]:
 * FC_TRANSPOSE_TILE of kernels_impl.h's transpose (the dense layers'
 * strips). Pairs of rows interleaved, then pairs of pairs, then 128-bit
 * lanes gathered across rows four and eight apart. */
static inline void transpose_tile_ps(const float *s, int64_t ls, float *d, int64_t ld)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i)
        r[i] = _mm512_loadu_ps(s + i * ls);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 16; i += 8)
        for (int j = 0; j < 4; ++j) {
            t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
            t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xDD);
        }
    for (int j = 0; j < 8; ++j) {
        _mm512_storeu_ps(d + j * ld, _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88));
        _mm512_storeu_ps(d + (j + 8) * ld, _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD));
    }
}

static inline void transpose_tile_pd(const double *s, int64_t ls, double *d, int64_t ld)
{
    __m512d r[8], t[8];
    for (int i = 0; i < 8; ++i)
        r[i] = _mm512_loadu_pd(s + i * ls);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm512_shuffle_f64x2(t[i], t[i + 2], 0x88);
        r[i + 1] = _mm512_shuffle_f64x2(t[i + 1], t[i + 3], 0x88);
        r[i + 2] = _mm512_shuffle_f64x2(t[i], t[i + 2], 0xDD);
        r[i + 3] = _mm512_shuffle_f64x2(t[i + 1], t[i + 3], 0xDD);
    }
    for (int j = 0; j < 4; ++j) {
        _mm512_storeu_pd(d + j * ld, _mm512_shuffle_f64x2(r[j], r[j + 4], 0x88));
        _mm512_storeu_pd(d + (j + 4) * ld, _mm512_shuffle_f64x2(r[j], r[j + 4], 0xDD));
    }
}

/* ---- float32 ---- */
#define FC_T float
#define FCN(name) name
#define FC_IS_F64 0
#define FC_TRANSPOSE_TILE transpose_tile_ps
#define fc_vec __m512
#define fc_mask __mmask16
#define FC_VL 16
#define FC_ACC_ROWS 12
#define FC_ACC_VECS 4
#define FC_IGEMM_VECS 8
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOAD_M(p, m) _mm512_maskz_loadu_ps((m), (p))
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSTORE_M(p, v, m) _mm512_mask_storeu_ps((p), (m), (v))
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
/* max_ps returns its second operand when either is NaN: NaN survives. */
#define VRELU(v) _mm512_max_ps(_mm512_setzero_ps(), (v))
/* min_ps returns its second operand when either is NaN: NaN survives. */
#define VMIN(a, b) _mm512_min_ps((a), (b))
#define FC_MAKE_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSUB(a, b) _mm512_sub_ps((a), (b))
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VSET1(f) _mm512_set1_ps(f)
#define fc_cmp __mmask16
#define VTAKE(v, m) \
    (_mm512_cmp_ps_mask((v), (m), _CMP_GT_OQ) | \
     (_mm512_cmp_ps_mask((v), (v), _CMP_UNORD_Q) & _mm512_cmp_ps_mask((m), (m), _CMP_ORD_Q)))
#define VEQ(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ)
#define VSEL(pred, a, b) _mm512_mask_blend_ps((pred), (a), (b))
/* pairs of lanes (2-wide windows along a row): swap each pair, the odd
 * lanes, and the first FC_VL / 2 values at p, each in two lanes */
#define VPAIRSWAP(v) _mm512_permute_ps((v), 0xB1)
#define FC_ODD_LANES ((__mmask16)0xAAAA)
#define VDUPHALF(p) \
    _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), \
                          _mm512_castps256_ps512(_mm256_loadu_ps(p)))
/* the even and the odd values of 32 at p (one two-source permute each) */
#define VLOAD_EVEN(p) \
    _mm512_permutex2var_ps(_mm512_loadu_ps(p), \
                           _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, \
                                             28, 30), \
                           _mm512_loadu_ps((p) + 16))
#define VLOAD_ODD(p) \
    _mm512_permutex2var_ps(_mm512_loadu_ps(p), \
                           _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, \
                                             29, 31), \
                           _mm512_loadu_ps((p) + 16))
#define VHSUM(v) _mm512_reduce_add_ps(v)
/* float64 accumulation of float32 data (kernels_batchnorm_impl.h) */
#define fc_wvec __m512d
#define fc_wmask __mmask8
#define FC_WL 8
#define VWZERO() _mm512_setzero_pd()
#define VWLOAD(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))
#define VWLOAD_M(p, m) _mm512_cvtps_pd(_mm256_maskz_loadu_ps((m), (p)))
#define FC_MAKE_WMASK(n) ((__mmask8)((1u << (n)) - 1u))
#define VWSTORE(p, v) _mm512_storeu_pd((p), (v))
#define VWADD(a, b) _mm512_add_pd((a), (b))
#define VWSUB(a, b) _mm512_sub_pd((a), (b))
#define VWFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VWSET1(f) _mm512_set1_pd(f)
#include "kernels_impl.h"

#define FC_TABLE fc_kernels_avx512
#define FC_TABLE_NAME "avx512"
#define FC_IGEMM_MR {0, 12, 12, 8, 6}
#define FC_NV_MAX 4
#define FC_GEMV_NV {0, 8, 8, 7, 6}
#define FC_WG_MR_MAX {0, 12, 12, 8, 6}
#define FC_IGEMM_LIST FC_AVX512_IGEMM_GEMV_LIST
#define FC_WGRAD_LIST FC_AVX512_IGEMM_LIST
#include "kernels_table.h"
#include "kernels_vocab_undef.h"

/* ---- float64: the same tiles in vectors of 8 doubles ---- */
#define FC_T double
#define FCN(name) name##_f64
#define FC_IS_F64 1
#define FC_TRANSPOSE_TILE transpose_tile_pd
#define fc_vec __m512d
#define fc_mask __mmask8
#define FC_VL 8
#define FC_ACC_ROWS 12
#define FC_ACC_VECS 4
#define FC_IGEMM_VECS 8
#define VZERO() _mm512_setzero_pd()
#define VLOAD(p) _mm512_loadu_pd(p)
#define VLOAD_M(p, m) _mm512_maskz_loadu_pd((m), (p))
#define VSTORE(p, v) _mm512_storeu_pd((p), (v))
#define VSTORE_M(p, v, m) _mm512_mask_storeu_pd((p), (m), (v))
#define VBCAST(p) _mm512_set1_pd(*(p))
#define VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VRELU(v) _mm512_max_pd(_mm512_setzero_pd(), (v))
#define VMIN(a, b) _mm512_min_pd((a), (b))
#define FC_MAKE_MASK(n) ((__mmask8)((1u << (n)) - 1u))
#define VADD(a, b) _mm512_add_pd((a), (b))
#define VSUB(a, b) _mm512_sub_pd((a), (b))
#define VMUL(a, b) _mm512_mul_pd((a), (b))
#define VSET1(f) _mm512_set1_pd(f)
#define fc_cmp __mmask8
#define VTAKE(v, m) \
    (_mm512_cmp_pd_mask((v), (m), _CMP_GT_OQ) | \
     (_mm512_cmp_pd_mask((v), (v), _CMP_UNORD_Q) & _mm512_cmp_pd_mask((m), (m), _CMP_ORD_Q)))
#define VEQ(a, b) _mm512_cmp_pd_mask((a), (b), _CMP_EQ_OQ)
#define VSEL(pred, a, b) _mm512_mask_blend_pd((pred), (a), (b))
#define VPAIRSWAP(v) _mm512_permute_pd((v), 0x55)
#define FC_ODD_LANES ((__mmask8)0xAA)
#define VDUPHALF(p) \
    _mm512_permutexvar_pd(_mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3), \
                          _mm512_castpd256_pd512(_mm256_loadu_pd(p)))
#define VHSUM(v) _mm512_reduce_add_pd(v)
/* float64 accumulation: the vectors above */
#define fc_wvec __m512d
#define fc_wmask __mmask8
#define FC_WL 8
#define VWZERO() _mm512_setzero_pd()
#define VWLOAD(p) _mm512_loadu_pd(p)
#define VWLOAD_M(p, m) _mm512_maskz_loadu_pd((m), (p))
#define FC_MAKE_WMASK(n) ((__mmask8)((1u << (n)) - 1u))
#define VWSTORE(p, v) _mm512_storeu_pd((p), (v))
#define VWADD(a, b) _mm512_add_pd((a), (b))
#define VWSUB(a, b) _mm512_sub_pd((a), (b))
#define VWFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VWSET1(f) _mm512_set1_pd(f)
#include "kernels_impl.h"

#define FC_TABLE fc_kernels_avx512_f64
#define FC_TABLE_NAME "avx512"
#define FC_IGEMM_MR {0, 12, 12, 8, 6}
#define FC_NV_MAX 4
#define FC_GEMV_NV {0, 8, 8, 7, 6}
#define FC_WG_MR_MAX {0, 12, 12, 8, 6}
#define FC_IGEMM_LIST FC_AVX512_IGEMM_GEMV_LIST
#define FC_WGRAD_LIST FC_AVX512_IGEMM_LIST
#include "kernels_table.h"
#include "kernels_vocab_undef.h"
