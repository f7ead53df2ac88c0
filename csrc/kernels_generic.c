/*
 * kernels_generic.c: the portable path, plain C with no intrinsics, for CPUs
 * without AVX2 and for non-x86 builds. One "vector" is one float; the tile
 * shape is chosen at run time (4 pixels x 16 columns) and the compiler is
 * free to vectorise the column loops with the baseline instruction set.
 */
typedef float fc_vec;
typedef int fc_mask;
#define FC_VL 1
#define FC_ACC_ROWS 8
#define FC_ACC_VECS 16
#define VZERO() 0.0f
#define VLOAD(p) (*(p))
#define VLOAD_M(p, m) ((void)(m), *(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSTORE_M(p, v, m) ((void)(m), *(p) = (v))
#define VBCAST(p) (*(p))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VRELU(v) ((v) < 0.0f ? 0.0f : (v))
#define FC_MAKE_MASK(n) (n)
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VSET1(f) (f)
typedef int fc_cmp;
#define VTAKE(v, m) (((v) > (m)) | (((v) != (v)) & ((m) == (m))))
#define VEQ(a, b) ((a) == (b))
#define VSEL(pred, a, b) ((pred) ? (b) : (a))

#define VHSUM(v) (v)
#include "kernels_impl.h"

static void igemm_any(const fc_igemm_args *p) { igemm_body(p, p->mr, p->nv, 0); }
static void wgrad_any(const fc_wgrad_args *p) { wgrad_body(p, p->mr, p->nv, 0); }

const fc_kernel_table fc_kernels_generic = {
    .name = "generic",
    .vl = 1,
    .igemm_mr = {0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4},
    .nv_max = 16,
    .wgrad_mr_max = {0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4},
    .igemm_any = igemm_any,
    .wgrad_any = wgrad_any,
    .maxpool_fwd = maxpool_fwd_rows,
    .maxpool_bwd = maxpool_bwd_rows,
    .colsum = colsum_rows,
    .dx_few = dx_few_rows,
    .fma_probe = fma_probe,
    .wino_input = wino_input_tile,
    .wino_output = wino_output_tile,
    .wino_dy = wino_dy_tile,
};
