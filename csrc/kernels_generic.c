/*
 * kernels_generic.c: the portable path, plain C with no intrinsics, for CPUs
 * without AVX2 and for non-x86 builds, in float32 and float64. One "vector"
 * is one value; the tile shape is chosen at run time (4 pixels x 16 columns)
 * and the compiler is free to vectorise the column loops with the baseline
 * instruction set.
 */
#include "fc_internal.h"

/* The scalar vocabulary, the same for both element types. */
#define fc_mask int
#define fc_cmp int
#define FC_VL 1
#define FC_ACC_ROWS 8
#define FC_ACC_VECS 16
#define VZERO() 0
#define VLOAD(p) (*(p))
#define VLOAD_M(p, m) ((void)(m), *(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSTORE_M(p, v, m) ((void)(m), *(p) = (v))
#define VBCAST(p) (*(p))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VRELU(v) ((v) < 0 ? 0 : (v))
#define VMIN(a, b) ((a) < (b) ? (a) : (b))   /* b when b is NaN */
#define FC_MAKE_MASK(n) (n)
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VSET1(f) (f)
#define VTAKE(v, m) (((v) > (m)) | (((v) != (v)) & ((m) == (m))))
#define VEQ(a, b) ((a) == (b))
#define VSEL(pred, a, b) ((pred) ? (b) : (a))
#define VHSUM(v) (v)
#define VLOAD_EVEN(p) (*(p))
#define VLOAD_ODD(p) (*((p) + 1))
/* float64 accumulation (kernels_batchnorm_impl.h): one double */
#define fc_wvec double
#define fc_wmask int
#define FC_WL 1
#define VWZERO() 0.0
#define VWLOAD(p) ((double)*(p))
#define VWLOAD_M(p, m) ((void)(m), (double)*(p))
#define FC_MAKE_WMASK(n) (n)
#define VWSTORE(p, v) (*(p) = (v))
#define VWADD(a, b) ((a) + (b))
#define VWSUB(a, b) ((a) - (b))
#define VWFMA(a, b, c) ((a) * (b) + (c))
#define VWSET1(f) ((double)(f))

#define FC_GENERIC_TABLE(TABLE) \
    static void FCN(igemm_any)(const FCN(fc_igemm_args) *p) \
    { FCN(igemm_body)(p, p->mr, p->nv, 0); } \
    static void FCN(wgrad_any)(const FCN(fc_wgrad_args) *p) \
    { FCN(wgrad_body)(p, p->mr, p->nv, 0); } \
    const FCN(fc_kernel_table) TABLE = { \
        .name = "generic", \
        .vl = 1, \
        .igemm_mr = {0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4}, \
        .nv_max = 16, \
        .gemv_nv = {0, 16, 16, 16, 16}, \
        .wgrad_mr_max = {0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4}, \
        .igemm_any = FCN(igemm_any), \
        .wgrad_any = FCN(wgrad_any), \
        .maxpool_bwd = FCN(maxpool_bwd_rows), \
        .colsum = FCN(colsum_rows), \
        .transpose = FCN(transpose_block), \
        .dx_few = FCN(dx_few_rows), \
        FC_BN_TABLE_ENTRIES \
        FC_GENERIC_F32_ONLY \
        .dw_v_max = FC_DW_MAX_V, \
        .dw_block = FCN(dw_block), \
        .dw_run = FCN(dw_run), \
        .dw_wgrad = FCN(dw_wgrad), \
        .dw_rows = FCN(dw_rows), \
        .dw_dots = FCN(dw_dots), \
        .pool_reduce = FCN(pool_reduce_rows), \
        .maxpool_bwd_nchw = FCN(maxpool_bwd_nchw_rows), \
        .avgpool_bwd = FCN(avgpool_bwd_rows), \
        .global_max = FCN(global_max_rows), \
        .plane_argmax = FCN(plane_argmax), \
        .global_sum = FCN(global_sum_rows), \
        .plane_sum = FCN(plane_sum), \
        .upsample_fwd = FCN(upsample_fwd_rows), \
        .upsample_bwd = FCN(upsample_bwd_rows), \
    };

/* ---- float32 ---- */
#define FC_T float
#define FCN(name) name
#define FC_IS_F64 0
#define fc_vec float
#include "kernels_impl.h"
#define FC_GENERIC_F32_ONLY \
    .fma_probe = fma_probe, .wino_input = wino_input_tile, .wino_output = wino_output_tile, \
    .wino_output_pool = wino_output_pool_tile, \
    .wino_dy = wino_dy_tile, .wino_input_cf = wino_input_row_cf, \
    .wino_output_cf = wino_output_row_cf,
FC_GENERIC_TABLE(fc_kernels_generic)
#undef FC_GENERIC_F32_ONLY
#undef FC_T
#undef FCN
#undef FC_IS_F64
#undef fc_vec

/* ---- float64 ---- */
#define FC_T double
#define FCN(name) name##_f64
#define FC_IS_F64 1
#define fc_vec double
#include "kernels_impl.h"
#define FC_GENERIC_F32_ONLY
FC_GENERIC_TABLE(fc_kernels_generic_f64)
