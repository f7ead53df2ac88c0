/*
 * kernels_vocab_undef.h: forgets the vector vocabulary (kernels_impl.h) and
 * the table parameters (kernels_table.h) of one instantiation, so an ISA
 * file can define the next element type's. No include guard, on purpose.
 */
#undef FC_T
#undef FCN
#undef FC_IS_F64
#undef fc_vec
#undef fc_mask
#undef fc_cmp
#undef FC_VL
#undef FC_ACC_ROWS
#undef FC_ACC_VECS
#undef FC_IGEMM_VECS
#undef FC_GEMV_NV
#undef FC_DXF_VECS
#undef VZERO
#undef VLOAD
#undef VLOAD_M
#undef VSTORE
#undef VSTORE_M
#undef VBCAST
#undef VFMA
#undef VRELU
#undef FC_MAKE_MASK
#undef VADD
#undef VSUB
#undef VMUL
#undef VSET1
#undef VTAKE
#undef VEQ
#undef VSEL
#undef VPAIRSWAP
#undef FC_ODD_LANES
#undef VDUPHALF
#undef VLOAD_EVEN
#undef VLOAD_ODD
#undef VHSUM
#undef fc_wvec
#undef fc_wmask
#undef FC_WL
#undef VWZERO
#undef VWLOAD
#undef VWLOAD_M
#undef FC_MAKE_WMASK
#undef VWSTORE
#undef VWADD
#undef VWSUB
#undef VWFMA
#undef VWSET1
#undef FC_TABLE
#undef FC_TABLE_NAME
#undef FC_IGEMM_MR
#undef FC_NV_MAX
#undef FC_WG_MR_MAX
#undef FC_IGEMM_LIST
#undef FC_WGRAD_LIST
