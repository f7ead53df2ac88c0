/*
 * kernels_avx512.c: micro-kernels for AVX-512 (F, DQ, BW, VL) with FMA.
 * Compiled with -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma (setup.py);
 * reached only when cpu.c found those features enabled by the OS.
 *
 * Tiles: igemm 6 pixels x 4 vectors (64 output channels), 8 x 3 or 12 x 2:
 * 24 zmm accumulators + the B vectors + 1 broadcast; wgrad up to 12 rows x 2 vectors,
 * 8 x 3 or 6 x 4 (accumulators + dy vectors + 1 broadcast <= 32 registers).
 */
#include <immintrin.h>

typedef __m512 fc_vec;
typedef __mmask16 fc_mask;
#define FC_VL 16
#define FC_ACC_ROWS 12
#define FC_ACC_VECS 4
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOAD_M(p, m) _mm512_maskz_loadu_ps((m), (p))
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSTORE_M(p, v, m) _mm512_mask_storeu_ps((p), (m), (v))
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
/* max_ps returns its second operand when either is NaN: NaN survives. */
#define VRELU(v) _mm512_max_ps(_mm512_setzero_ps(), (v))
#define FC_MAKE_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSUB(a, b) _mm512_sub_ps((a), (b))
#define VSET1(f) _mm512_set1_ps(f)
typedef __mmask16 fc_cmp;
#define VTAKE(v, m) \
    (_mm512_cmp_ps_mask((v), (m), _CMP_GT_OQ) | \
     (_mm512_cmp_ps_mask((v), (v), _CMP_UNORD_Q) & _mm512_cmp_ps_mask((m), (m), _CMP_ORD_Q)))
#define VEQ(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ)
#define VSEL(pred, a, b) _mm512_mask_blend_ps((pred), (a), (b))

#define VHSUM(v) _mm512_reduce_add_ps(v)
#include "kernels_impl.h"

#define FC_TABLE fc_kernels_avx512
#define FC_TABLE_NAME "avx512"
#define FC_IGEMM_MR {0, 12, 12, 8, 6}
#define FC_NV_MAX 4
#define FC_WG_MR_MAX {0, 12, 12, 8, 6}
/* Every tile height up to the register limit: row-aligned tiles are
 * balanced cuts of a row, e.g. 26 = 6 + 5 + 5 + 5 + 5. */
#define FC_IGEMM_LIST(X) \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1) X(11, 1) X(12, 1) \
    X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2) X(8, 2) X(9, 2) X(10, 2) X(11, 2) X(12, 2) \
    X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(6, 3) X(7, 3) X(8, 3) \
    X(1, 4) X(2, 4) X(3, 4) X(4, 4) X(5, 4) X(6, 4)
#define FC_WGRAD_LIST(X) \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1) X(9, 1) X(10, 1) X(11, 1) X(12, 1) \
    X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2) X(8, 2) X(9, 2) X(10, 2) X(11, 2) X(12, 2) \
    X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(6, 3) X(7, 3) X(8, 3) \
    X(1, 4) X(2, 4) X(3, 4) X(4, 4) X(5, 4) X(6, 4)
#include "kernels_table.h"
