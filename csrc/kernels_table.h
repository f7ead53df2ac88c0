/*
 * kernels_table.h: instantiates the tile shapes an ISA file lists and
 * publishes them as that ISA's fc_kernel_table. Included at the end of
 * kernels_avx512.c / kernels_avx2.c after FC_TABLE, FC_TABLE_NAME,
 * FC_IGEMM_MR (per nv), FC_NV_MAX, FC_WG_MR_MAX, FC_IGEMM_LIST and FC_WGRAD_LIST.
 */
#define FC_DEFINE_IGEMM(MR, NV) \
    static void igemm_##MR##x##NV(const fc_igemm_args *p) { igemm_body(p, MR, NV, 0); } \
    static void igemm_##MR##x##NV##_tail(const fc_igemm_args *p) { igemm_body(p, MR, NV, 1); }
#define FC_DEFINE_WGRAD(MR, NV) \
    static void wgrad_##MR##x##NV(const fc_wgrad_args *p) { wgrad_body(p, MR, NV, 0); } \
    static void wgrad_##MR##x##NV##_tail(const fc_wgrad_args *p) { wgrad_body(p, MR, NV, 1); }

FC_IGEMM_LIST(FC_DEFINE_IGEMM)
FC_WGRAD_LIST(FC_DEFINE_WGRAD)

#define FC_IGEMM_SLOT(MR, NV) [MR][NV] = {igemm_##MR##x##NV, igemm_##MR##x##NV##_tail},
#define FC_WGRAD_SLOT(MR, NV) [MR][NV] = {wgrad_##MR##x##NV, wgrad_##MR##x##NV##_tail},

const fc_kernel_table FC_TABLE = {
    .name = FC_TABLE_NAME,
    .vl = FC_VL,
    .igemm_mr = FC_IGEMM_MR,
    .nv_max = FC_NV_MAX,
    .wgrad_mr_max = FC_WG_MR_MAX,
    .igemm = {FC_IGEMM_LIST(FC_IGEMM_SLOT)},
    .wgrad = {FC_WGRAD_LIST(FC_WGRAD_SLOT)},
    .igemm_any = 0,
    .wgrad_any = 0,
    .maxpool_fwd = maxpool_fwd_rows,
    .maxpool_bwd = maxpool_bwd_rows,
    .colsum = colsum_rows,
    .dx_few = dx_few_rows,
    .fma_probe = fma_probe,
    .wino_input = wino_input_tile,
    .wino_output = wino_output_tile,
    .wino_dy = wino_dy_tile,
};
