/*
 * kernels_avx2.c: micro-kernels for AVX2 with FMA (16 ymm registers), in
 * float32 and float64. Compiled with -mavx2 -mfma (setup.py); reached only
 * when cpu.c found AVX2, FMA and OS-enabled AVX state.
 *
 * Tiles (in vectors of 8 floats or 4 doubles): igemm 6 pixels x 2 vectors
 * or 12 x 1: 12 accumulators + the B vectors + 1 broadcast; wgrad up to 8
 * rows x 1 or 6 rows x 2 vectors.
 */
#include <immintrin.h>

#include "fc_internal.h"

#define FC_AVX2_IGEMM_LIST(X) \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1) X(11, 1) X(12, 1) \
    X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) \
    FC_AVX2_GEMV_LIST(X)
/* The few-row tiles of dense layers on a few samples (gemv_nv): up to 7
 * vectors of one row (accumulators + B vectors + 1 broadcast <= 16). */
#define FC_AVX2_GEMV_LIST(X) \
    X(1, 3) X(1, 4) X(1, 5) X(1, 6) X(1, 7) X(2, 3) X(2, 4) X(2, 5) X(3, 3) X(4, 3)
#define FC_AVX2_WGRAD_LIST(X) \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) \
    X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2)

static inline float fc_hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline double fc_hsum256d(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* An in-register transpose of a 4 x 4 tile of doubles, d[j * ld + i] =
 * s[i * ls + j] (FC_TRANSPOSE_TILE of kernels_impl.h's transpose_block;
 * floats take its AVX2 8 x 8): pairs of rows interleaved, then 128-bit
 * halves swapped across rows two apart. */
static inline void transpose_tile_pd(const double *s, int64_t ls, double *d, int64_t ld)
{
    __m256d r[4], t[4];
    for (int i = 0; i < 4; ++i)
        r[i] = _mm256_loadu_pd(s + i * ls);
    t[0] = _mm256_unpacklo_pd(r[0], r[1]);
    t[1] = _mm256_unpackhi_pd(r[0], r[1]);
    t[2] = _mm256_unpacklo_pd(r[2], r[3]);
    t[3] = _mm256_unpackhi_pd(r[2], r[3]);
    for (int j = 0; j < 2; ++j) {
        _mm256_storeu_pd(d + j * ld, _mm256_permute2f128_pd(t[j], t[j + 2], 0x20));
        _mm256_storeu_pd(d + (j + 2) * ld, _mm256_permute2f128_pd(t[j], t[j + 2], 0x31));
    }
}

/* ---- float32 ---- */
#define FC_T float
#define FCN(name) name
#define FC_IS_F64 0
#define fc_vec __m256
#define fc_mask __m256i
#define FC_VL 8
#define FC_ACC_ROWS 12
#define FC_ACC_VECS 2
#define FC_IGEMM_VECS 7
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VLOAD_M(p, m) _mm256_maskload_ps((p), (m))
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSTORE_M(p, v, m) _mm256_maskstore_ps((p), (m), (v))
/* vmaskmov stores are microcoded on AMD's AVX2 cores: 12 TSC ticks each on
 * Zen 2 (a plain store: under 1.5); hot tails may store through a buffer. */
#define FC_SLOW_MASKED_STORE 1
/* set1 of a plain load, not _mm256_broadcast_ss: GCC 12 treats that builtin
 * as a memory access it cannot see through and then stores every
 * accumulator to the stack on each iteration. Both compile to vbroadcastss. */
#define VBCAST(p) _mm256_set1_ps(*(p))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VRELU(v) _mm256_max_ps(_mm256_setzero_ps(), (v))
/* min_ps returns its second operand when either is NaN: NaN survives. */
#define VMIN(a, b) _mm256_min_ps((a), (b))
#define FC_MAKE_MASK(n) \
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VSUB(a, b) _mm256_sub_ps((a), (b))
#define VMUL(a, b) _mm256_mul_ps((a), (b))
#define VSET1(f) _mm256_set1_ps(f)
#define fc_cmp __m256
#define VTAKE(v, m) \
    _mm256_or_ps(_mm256_cmp_ps((v), (m), _CMP_GT_OQ), \
                 _mm256_and_ps(_mm256_cmp_ps((v), (v), _CMP_UNORD_Q), \
                               _mm256_cmp_ps((m), (m), _CMP_ORD_Q)))
#define VEQ(a, b) _mm256_cmp_ps((a), (b), _CMP_EQ_OQ)
#define VSEL(pred, a, b) _mm256_blendv_ps((a), (b), (pred))
/* pairs of lanes: see kernels_avx512.c */
#define VPAIRSWAP(v) _mm256_permute_ps((v), 0xB1)
#define FC_ODD_LANES _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1))
#define VDUPHALF(p) \
    _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), \
                             _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3))
/* the even and the odd values of 16 at p: shuffle_ps picks them per 128-bit
 * half (lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6), the 64-bit permute orders them */
#define FC_DEINTERLEAVE(p, sel) \
    _mm256_castpd_ps(_mm256_permute4x64_pd( \
        _mm256_castps_pd(_mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps((p) + 8), (sel))), \
        0xD8))
#define VLOAD_EVEN(p) FC_DEINTERLEAVE((p), 0x88)
#define VLOAD_ODD(p) FC_DEINTERLEAVE((p), 0xDD)
#define VHSUM(v) fc_hsum256(v)
/* 16 registers: 2 accumulators per input channel in dx_few_body */
#define FC_DXF_VECS 2
/* float64 accumulation of float32 data (kernels_batchnorm_impl.h) */
#define fc_wvec __m256d
#define fc_wmask __m128i
#define FC_WL 4
#define VWZERO() _mm256_setzero_pd()
#define VWLOAD(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
#define VWLOAD_M(p, m) _mm256_cvtps_pd(_mm_maskload_ps((p), (m)))
#define FC_MAKE_WMASK(n) _mm_cmpgt_epi32(_mm_set1_epi32(n), _mm_setr_epi32(0, 1, 2, 3))
#define VWSTORE(p, v) _mm256_storeu_pd((p), (v))
#define VWADD(a, b) _mm256_add_pd((a), (b))
#define VWSUB(a, b) _mm256_sub_pd((a), (b))
#define VWFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define VWSET1(f) _mm256_set1_pd(f)
#include "kernels_impl.h"

#define FC_TABLE fc_kernels_avx2
#define FC_TABLE_NAME "avx2"
#define FC_IGEMM_MR {0, 12, 6}
#define FC_NV_MAX 2
#define FC_GEMV_NV {0, 7, 5, 3, 3}
#define FC_WG_MR_MAX {0, 8, 6}
#define FC_IGEMM_LIST FC_AVX2_IGEMM_LIST
#define FC_WGRAD_LIST FC_AVX2_WGRAD_LIST
#include "kernels_table.h"
#include "kernels_vocab_undef.h"

/* ---- float64: the same tiles in vectors of 4 doubles ---- */
#define FC_T double
#define FCN(name) name##_f64
#define FC_IS_F64 1
#define FC_TRANSPOSE_TILE transpose_tile_pd
#define fc_vec __m256d
#define fc_mask __m256i
#define FC_VL 4
#define FC_ACC_ROWS 12
#define FC_ACC_VECS 2
#define FC_IGEMM_VECS 7
#define VZERO() _mm256_setzero_pd()
#define VLOAD(p) _mm256_loadu_pd(p)
#define VLOAD_M(p, m) _mm256_maskload_pd((p), (m))
#define VSTORE(p, v) _mm256_storeu_pd((p), (v))
#define VSTORE_M(p, v, m) _mm256_maskstore_pd((p), (m), (v))
#define FC_SLOW_MASKED_STORE 1
#define VBCAST(p) _mm256_set1_pd(*(p))
#define VFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define VRELU(v) _mm256_max_pd(_mm256_setzero_pd(), (v))
#define VMIN(a, b) _mm256_min_pd((a), (b))
#define FC_MAKE_MASK(n) \
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define VADD(a, b) _mm256_add_pd((a), (b))
#define VSUB(a, b) _mm256_sub_pd((a), (b))
#define VMUL(a, b) _mm256_mul_pd((a), (b))
#define VSET1(f) _mm256_set1_pd(f)
#define fc_cmp __m256d
#define VTAKE(v, m) \
    _mm256_or_pd(_mm256_cmp_pd((v), (m), _CMP_GT_OQ), \
                 _mm256_and_pd(_mm256_cmp_pd((v), (v), _CMP_UNORD_Q), \
                               _mm256_cmp_pd((m), (m), _CMP_ORD_Q)))
#define VEQ(a, b) _mm256_cmp_pd((a), (b), _CMP_EQ_OQ)
#define VSEL(pred, a, b) _mm256_blendv_pd((a), (b), (pred))
#define VPAIRSWAP(v) _mm256_permute_pd((v), 0x5)
#define FC_ODD_LANES _mm256_castsi256_pd(_mm256_setr_epi64x(0, -1, 0, -1))
#define VDUPHALF(p) _mm256_permute4x64_pd(_mm256_castpd128_pd256(_mm_loadu_pd(p)), 0x50)
#define VHSUM(v) fc_hsum256d(v)
#define FC_DXF_VECS 2
/* float64 accumulation: the vectors above */
#define fc_wvec __m256d
#define fc_wmask __m256i
#define FC_WL 4
#define VWZERO() _mm256_setzero_pd()
#define VWLOAD(p) _mm256_loadu_pd(p)
#define VWLOAD_M(p, m) _mm256_maskload_pd((p), (m))
#define FC_MAKE_WMASK(n) \
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define VWSTORE(p, v) _mm256_storeu_pd((p), (v))
#define VWADD(a, b) _mm256_add_pd((a), (b))
#define VWSUB(a, b) _mm256_sub_pd((a), (b))
#define VWFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define VWSET1(f) _mm256_set1_pd(f)
#include "kernels_impl.h"

#define FC_TABLE fc_kernels_avx2_f64
#define FC_TABLE_NAME "avx2"
#define FC_IGEMM_MR {0, 12, 6}
#define FC_NV_MAX 2
#define FC_GEMV_NV {0, 7, 5, 3, 3}
#define FC_WG_MR_MAX {0, 8, 6}
#define FC_IGEMM_LIST FC_AVX2_IGEMM_LIST
#define FC_WGRAD_LIST FC_AVX2_WGRAD_LIST
#include "kernels_table.h"
#include "kernels_vocab_undef.h"
