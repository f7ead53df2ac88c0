/*
 * kernels_table.h: instantiates the tile shapes an ISA file lists and
 * publishes them as that ISA's kernel table for the element type being
 * compiled (FC_T / FCN, see kernels_impl.h). Included after kernels_impl.h,
 * once per element type, after FC_TABLE, FC_TABLE_NAME, FC_IGEMM_MR (per
 * nv), FC_NV_MAX, FC_GEMV_NV (per mr), FC_WG_MR_MAX, FC_IGEMM_LIST and FC_WGRAD_LIST.
 */
#define FC_DEFINE_IGEMM(MR, NV) \
    static void FCN(igemm_##MR##x##NV)(const FCN(fc_igemm_args) *p) \
    { FCN(igemm_body)(p, MR, NV, 0); } \
    static void FCN(igemm_##MR##x##NV##_tail)(const FCN(fc_igemm_args) *p) \
    { FCN(igemm_body)(p, MR, NV, 1); }
#define FC_DEFINE_WGRAD(MR, NV) \
    static void FCN(wgrad_##MR##x##NV)(const FCN(fc_wgrad_args) *p) \
    { FCN(wgrad_body)(p, MR, NV, 0); } \
    static void FCN(wgrad_##MR##x##NV##_tail)(const FCN(fc_wgrad_args) *p) \
    { FCN(wgrad_body)(p, MR, NV, 1); }

FC_IGEMM_LIST(FC_DEFINE_IGEMM)
FC_WGRAD_LIST(FC_DEFINE_WGRAD)

#define FC_IGEMM_SLOT(MR, NV) \
    [MR][NV] = {FCN(igemm_##MR##x##NV), FCN(igemm_##MR##x##NV##_tail)},
#define FC_WGRAD_SLOT(MR, NV) \
    [MR][NV] = {FCN(wgrad_##MR##x##NV), FCN(wgrad_##MR##x##NV##_tail)},

const FCN(fc_kernel_table) FC_TABLE = {
    .name = FC_TABLE_NAME,
    .vl = FC_VL,
    .igemm_mr = FC_IGEMM_MR,
    .nv_max = FC_NV_MAX,
    .gemv_nv = FC_GEMV_NV,
    .wgrad_mr_max = FC_WG_MR_MAX,
    .igemm = {FC_IGEMM_LIST(FC_IGEMM_SLOT)},
    .wgrad = {FC_WGRAD_LIST(FC_WGRAD_SLOT)},
    .igemm_any = 0,
    .wgrad_any = 0,
    .maxpool_bwd = FCN(maxpool_bwd_rows),
    .colsum = FCN(colsum_rows),
    .transpose = FCN(transpose_block),
    .dx_few = FCN(dx_few_rows),
#if !FC_IS_F64
    .fma_probe = fma_probe,
    .wino_input = wino_input_tile,
    .wino_output = wino_output_tile,
    .wino_output_pool = wino_output_pool_tile,
    .wino_dy = wino_dy_tile,
    .wino_input_cf = wino_input_row_cf,
    .wino_output_cf = wino_output_row_cf,
#endif
    .dw_v_max = FC_ACC_VECS < FC_DW_MAX_V ? FC_ACC_VECS : FC_DW_MAX_V,
    .dw_block = FCN(dw_block),
    .dw_run = FCN(dw_run),
    .dw_wgrad = FCN(dw_wgrad),
    .dw_rows = FCN(dw_rows),
    .dw_dots = FCN(dw_dots),
    FC_BN_TABLE_ENTRIES
    .pool_reduce = FCN(pool_reduce_rows),
    .maxpool_bwd_nchw = FCN(maxpool_bwd_nchw_rows),
    .avgpool_bwd = FCN(avgpool_bwd_rows),
    .global_max = FCN(global_max_rows),
    .plane_argmax = FCN(plane_argmax),
    .global_sum = FCN(global_sum_rows),
    .plane_sum = FCN(plane_sum),
    .upsample_fwd = FCN(upsample_fwd_rows),
    .upsample_bwd = FCN(upsample_bwd_rows),
};

#undef FC_DEFINE_IGEMM
#undef FC_DEFINE_WGRAD
#undef FC_IGEMM_SLOT
#undef FC_WGRAD_SLOT
