/*
 * conv2d.c: work decomposition and threading for the convolution kernels.
 *
 * Forward and backward-input are one indirect GEMM each (fc_igemm_args):
 *   forward:        M = output pixels, K = taps x c_in,  N = c_out, B = the
 *                   HWIO kernel read in place (row stride c_out);
 *   backward-input: M = input pixels,  K = taps x c_out, N = c_in,  B = the
 *                   kernel transposed per tap (packed once per call).
 * A tile of MR pixels gets, per kernel tap, MR pointers to contiguous input
 * rows (or to a shared zero row where the tap falls into padding), so
 * padding, strides and dilation cost no branches in the micro-kernel. Taps
 * that are padding for the whole tile are dropped. With few input channels
 * (the first layer) the forward runs its own row loop instead
 * (few_channel_forward), a whole kernel row per tap.
 *
 * Backward-kernel is a reduction over output pixels. Pixels are cut into
 * chunks of whole output rows whose size depends only on the problem, each
 * chunk's partial dW is computed by whichever thread, and the partials are
 * added in chunk order: the result is bitwise identical for any number of
 * threads.
 *
 * The drivers exist once per element type: conv2d_impl.h is compiled here
 * for float (fc_conv2d_forward, ...) and for double (fc_conv2d_forward_f64,
 * ...); only float32 layers use Winograd. This file holds what does not
 * depend on the element type.
 */
#include <string.h>

#include "fc_internal.h"

/* First-layer paths (few_channel_forward, few_channel_backward_input, the
 * weight gradient's im2col rows) for layers with at most this many input
 * channels (gather_row and dx_few handle 1 to 4). */
#define FC_FEW_CHANNELS 4
/* K is split into blocks of this many floats for single-tap problems (1x1
 * convolutions, dense layers) so that a B block stays in L2. */
#ifndef FC_KC_MAX
#define FC_KC_MAX 512
#endif
/* Target pixels per weight-gradient chunk (rounded to whole output rows). */
#ifndef FC_WGRAD_CHUNK_PIXELS
#define FC_WGRAD_CHUNK_PIXELS 1024
#endif
/* Pixels of a weight-gradient window (wgrad_item): the calls of all the
 * item's row blocks and panels run over one window's rows, then the next.
 * Measured (Zen 5, separate processes alternating 4 times, caches swept,
 * medians), against a call per block over the whole chunk of 1024 pixels:
 * the 3x3 stride-2 bench layer 56x56x64 -> 128 at batch 32 0.90x the time at
 * 1 thread, 0.93x at 2; 28x28x128 -> 256 stride 2 0.83x; the 1x1 bench layer
 * about 0.9x at 1 thread (noisy); the seed's first layer, its dense layer and
 * a ResNet-20 stride-2 layer (8x8x64) alike. Windows of 128 pixels measured
 * no faster than whole chunks, and 256 between the two. */
#ifndef FC_WGRAD_WINDOW_PIXELS
#define FC_WGRAD_WINDOW_PIXELS 512
#endif
/* Weight-gradient pixels at least this many values apart are copied
 * together per item (wgrad_item's pack); dense layers with few units take
 * dense_backward_kernel instead from this many features on. */
#define FC_WGRAD_PACK_STRIDE 1024
/* Row blocks of the weight gradient per work item: a window's rows of x and
 * dy serve all of them (more blocks, fewer passes over dy). Does not change
 * the result (each block sums on its own). Measured against 8 (Zen 5,
 * separate processes alternating, caches swept): the 1x1 bench layer's
 * weight gradient (22 blocks: one item per chunk instead of 3) 0.92x the
 * time at 1 thread, 0.95x at 2; the 3x3 stride-2 layer (11 blocks), the
 * seed's dense layer and a ResNet-20 8x8x64 layer alike. */
#ifndef FC_WGRAD_BLOCKS_PER_ITEM
#define FC_WGRAD_BLOCKS_PER_ITEM 32
#endif
/* Memory for weight-gradient partials held at once. */
#define FC_WGRAD_PARTIAL_BYTES (64ll << 20)

/* Groups of a layer: 0 and 1 both mean one. */
static int64_t groups_of(const fc_conv2d_params *p) { return p->groups > 1 ? p->groups : 1; }

static int check_params(const fc_conv2d_params *p)
{
    if (p == NULL)
        return FC_ERR_ARG;
    if (p->n < 0 || p->h < 1 || p->w < 1 || p->c_in < 0 || p->kh < 1 || p->kw < 1 ||
        p->c_out < 0 || p->out_h < 1 || p->out_w < 1 || p->stride_h < 1 ||
        p->stride_w < 1 || p->dilation_h < 1 || p->dilation_w < 1 || p->pad_top < 0 ||
        p->pad_left < 0 || p->relu < FC_ACT_NONE || p->relu > FC_ACT_RELU6)
        return FC_ERR_ARG;
    /* A pad reaching past the dilated kernel only adds output cells that see
     * no input (TensorFlow's pads never do); bounding it keeps every index
     * expression (row + pad, col * stride - pad) far from overflow. */
    const int64_t reach_h = fc_mul(p->kh - 1, p->dilation_h);
    const int64_t reach_w = fc_mul(p->kw - 1, p->dilation_w);
    if (reach_h < 0 || reach_w < 0)
        return FC_ERR_OVERFLOW;
    if (p->pad_top > reach_h || p->pad_left > reach_w)
        return FC_ERR_ARG;
    if (p->groups < 0 || (p->groups > 1 && (p->c_in % p->groups || p->c_out % p->groups)))
        return FC_ERR_ARG;
    const int64_t sizes[] = {
        fc_mul(fc_mul(fc_mul(p->n, p->h), p->w), max64(p->c_in, 1)),
        fc_mul(fc_mul(fc_mul(p->n, p->out_h), p->out_w), max64(p->c_out, 1)),
        fc_mul(fc_mul(fc_mul(p->kh, p->kw), max64(p->c_in, 1)), max64(p->c_out, 1)),
        fc_mul(p->out_h, p->stride_h), fc_mul(p->out_w, p->stride_w),
        fc_mul(p->kh, p->dilation_h), fc_mul(p->kw, p->dilation_w),
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i)
        if (sizes[i] < 0 || sizes[i] > (INT64_MAX >> 4))
            return FC_ERR_OVERFLOW;
    return FC_OK;
}


/* A pixel of the output array of an indirect GEMM, with what tap_row needs. */
typedef struct pixel {
    int64_t img, row, col;   /* of the output array */
    int64_t h0, w0;          /* forward: top-left input cell of its window */
    /* backward: (row + pad_top) = qh * stride_h + rh, same for columns */
    int64_t qh, rh, qw, rw;
    int valid;
} pixel;

/* Forward B is packed into panels from this many tiles on (each packed
 * panel is reused by every tile, so the copy is 1/M of the arithmetic).
 * Read in place, the rows of a panel are c_out floats apart; at 1024+
 * channels that is a 4 KiB stride, every row in the same L1 sets. */
#ifndef FC_PACK_MIN_TILES
#define FC_PACK_MIN_TILES 8
#endif
/* Rows of fewer bytes than this read in place spread over L1's sets (a
 * panel's row is its 4 lines of one kernel row): such a B is packed only
 * from FC_PACK_SHORT_ROW_TILES tiles on, where the copy is amortised. A
 * dense layer's forward at training batches is the case: the copy of the
 * whole kernel is most of the arithmetic's time again. Measured (Xeon with
 * AVX-512, 1 thread, in-process A/B, medians of 9): the seed CNN's dense
 * layer 64x10816 -> 100 0.78x the time read in place; 256x10816 -> 100
 * (43 tiles) 1.02x, in the noise. */
#define FC_PACK_SHORT_ROW_BYTES 512
#define FC_PACK_SHORT_ROW_TILES 32
/* A plain GEMM pass of at most this many tiles asks for the next panel's B
 * block while it runs one (fc_igemm_args.b_next): with few tiles to share
 * it, each block of B is read from memory or L3 by one tile that waits for
 * it (prepared 1x1 layers at batch 1: M of 9 to 144 pixels). */
#ifndef FC_PREFETCH_B_TILES
#define FC_PREFETCH_B_TILES 64
#endif
/* Tiles whose C stays in L2 while every K block passes over them. */
#define FC_TILES_PER_PASS 64
/* A strided input gradient takes half-full row tiles when a tap's B block
 * holds at most this many values (plan_row_tiles). */
#define FC_ROW_TILES_B_VALUES 2048
/* Bytes of B a K block of the channels-first GEMMs may hold: most of a
 * 48 KiB L1 (measured: 40 KiB beat 16-32 KiB on 3x3 layers with 32-64 input
 * channels). */
#ifndef FC_B_BLOCK_BYTES
#define FC_B_BLOCK_BYTES (40 * 1024)
#endif
/* Bytes of B a K block of the channels-last indirect GEMM may hold: in L2,
 * not L1. Each K block adds a pass that reads and writes C again, and one
 * call per tile; the kernel streams B from L2 at its full rate. Measured
 * (Zen 5, 2 MiB L2, separate processes alternating 5 times, caches swept,
 * medians), against 40 KiB blocks: 3x3 stride-2 56x56x64 -> 128 at batch 32
 * (9 taps of 16 KiB: one block instead of 5) 0.90x the time at 1 thread,
 * 0.91x at 2; 28x28x128 -> 256 (9 taps of 32 KiB: 2 blocks instead of 9)
 * 0.92x; the input gradients (whose phases already joined the taps) and the
 * seed's conv2d_1 in float64 measured alike. 256 KiB leaves room for the
 * pass's C and A on a 512 KiB L2 too. */
#ifndef FC_TAP_BLOCK_BYTES
#define FC_TAP_BLOCK_BYTES (256 * 1024)
#endif
/* The block of B rows that gemv_forward's tiles share in turn: its bytes
 * of a thread's columns (L2-resident: the later tiles read it from L2, not
 * memory), and at least so many rows (the calls' K, against their fixed
 * cost). */
#define FC_GEMV_BLOCK_BYTES (64 * 1024)
#define FC_GEMV_BLOCK_MIN_ROWS 64

/* The taps along one axis that reach the input positions of phase r (those
 * congruent to r modulo the stride): tap i reaches them when r + pad - i * d
 * divides by s; they are listed in taps[], ascending; returns their count and
 * the output offset (r + pad - i * d) / s of the last. */
static int64_t nchw_phase_taps(int64_t k, int64_t s, int64_t d, int64_t pad, int64_t r,
                               int64_t *taps, int64_t *offset_last)
{
    int64_t count = 0;
    for (int64_t i = 0; i < k; ++i)
        if ((((r + pad - i * d) % s) + s) % s == 0)
            taps[count++] = i;
    if (count > 0) {
        const int64_t at = r + pad - taps[count - 1] * d;   /* a multiple of s */
        *offset_last = at >= 0 ? at / s : -((-at) / s);
    }
    return count;
}

/* Per-thread scratch is carved out of blocks of 8-byte words: the words
 * that n values of the element type take. */
#define FC_WORDS(n) (((n) * (int64_t)sizeof(FC_T) + 7) / 8)

#define FC_T float
#define FCN(name) name
#define FC_IS_F64 0
#include "conv2d_impl.h"
#undef FC_T
#undef FCN
#undef FC_IS_F64

#define FC_T double
#define FCN(name) name##_f64
#define FC_IS_F64 1
#include "conv2d_impl.h"
#undef FC_T
#undef FCN
#undef FC_IS_F64

int fc_conv2d_maxpool2x2_fuses(const fc_conv2d_params *p)
{
    return check_params(p) == FC_OK && !p->channels_first && fc_winograd_applies(p, 0);
}

/* The fused and prepared forward calls: checks, then Winograd with the
 * kernel or its prepared transform u. */
static int winograd_forward_call(const fc_conv2d_params *p, const float *x, const float *kernel,
                                 const float *u, const float *bias, float *y, int64_t pool_h,
                                 int64_t pool_w)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if ((pool_h != 0 || pool_w != 0) &&
        (pool_h < p->out_h / 2 || pool_h > (p->out_h + 1) / 2 || pool_w < p->out_w / 2 ||
         pool_w > (p->out_w + 1) / 2 || pool_h == 0 || pool_w == 0))
        return FC_ERR_ARG;
    if (!fc_conv2d_maxpool2x2_fuses(p))
        return FC_DECLINED;
    if (p->n == 0 || p->c_out == 0)
        return FC_OK;
    if (x == NULL || (kernel == NULL && u == NULL) || y == NULL)
        return FC_ERR_ARG;
    status = fc_winograd_forward_nhwc(p, x, kernel, u, bias, y, pool_h, pool_w);
    return status == FC_WINO_NONFINITE ? FC_DECLINED : status;
}

int fc_conv2d_forward_maxpool2x2(const fc_conv2d_params *p, const float *x, const float *kernel,
                                 const float *bias, float *y, int64_t pool_h, int64_t pool_w)
{
    if (kernel == NULL || pool_h == 0 || pool_w == 0)
        return FC_ERR_ARG;
    return winograd_forward_call(p, x, kernel, NULL, bias, y, pool_h, pool_w);
}

/* A prepared kernel starts with a header of FC_PREP_HEADER floats (one
 * cache line, so the payload stays aligned) saying what it holds and for
 * which kernel table: a call whose dispatch differs (another SIMD path, or
 * Winograd switched since) declines instead of misreading it. */
#define FC_PREP_HEADER 16
enum { FC_PREP_WINOGRAD = 1, FC_PREP_PACKED = 2 };

static int prepared_kind(const fc_conv2d_params *p)
{
    if (check_params(p) != FC_OK)
        return 0;
    if (fc_conv2d_maxpool2x2_fuses(p))
        return FC_PREP_WINOGRAD;
    return forward_is_igemm(p) ? FC_PREP_PACKED : 0;
}

#define FC_PREP_HEADER_INTS 5
static void prepared_header(const fc_conv2d_params *p, int kind,
                            int32_t header[FC_PREP_HEADER_INTS])
{
    const fc_kernel_table *t = fc_active_kernels();
    header[0] = kind;
    header[1] = t->vl * t->nv_max;   /* the panel width */
    header[2] = (int32_t)(p->c_in & 0x7fffffff);
    header[3] = (int32_t)(p->c_out & 0x7fffffff);
    header[4] = (int32_t)((p->kh * p->kw) & 0x7fffffff);   /* check_params bounds these */
}

int64_t fc_conv2d_prepared_kernel_floats(const fc_conv2d_params *p)
{
    switch (prepared_kind(p)) {
    case FC_PREP_WINOGRAD: return FC_PREP_HEADER + fc_winograd_u_floats(p);
    case FC_PREP_PACKED: return FC_PREP_HEADER + forward_packed_floats(p, fc_active_kernels());
    default: return 0;
    }
}

int fc_conv2d_prepare_kernel(const fc_conv2d_params *p, const float *kernel, float *prepared)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    const int kind = prepared_kind(p);
    if (kind == 0)
        return FC_DECLINED;
    if (kernel == NULL || prepared == NULL)
        return FC_ERR_ARG;
    int32_t header[FC_PREP_HEADER_INTS];
    prepared_header(p, kind, header);
    memset(prepared, 0, FC_PREP_HEADER * sizeof(float));
    memcpy(prepared, header, sizeof header);
    if (kind == FC_PREP_PACKED) {
        forward_pack(p, fc_active_kernels(), kernel, prepared + FC_PREP_HEADER);
        return FC_OK;
    }
    return fc_winograd_prepare_kernel(p, kernel, prepared + FC_PREP_HEADER);
}

int fc_conv2d_forward_prepared(const fc_conv2d_params *p, const float *x, const float *prepared,
                               const float *bias, float *y, int64_t pool_h, int64_t pool_w)
{
    if (prepared == NULL)
        return FC_ERR_ARG;
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    const int kind = prepared_kind(p);
    int32_t header[FC_PREP_HEADER_INTS], held[FC_PREP_HEADER_INTS];
    prepared_header(p, kind, header);
    memcpy(held, prepared, sizeof held);
    if (kind == 0 || memcmp(header, held, sizeof header) != 0)
        return FC_DECLINED;
    if (kind == FC_PREP_WINOGRAD)
        return winograd_forward_call(p, x, NULL, prepared + FC_PREP_HEADER, bias, y, pool_h,
                                     pool_w);
    if (pool_h != 0 || pool_w != 0)
        return FC_DECLINED;   /* the pooled form exists for Winograd layers only */
    if (x == NULL || y == NULL)
        return FC_ERR_ARG;
    return forward_gemm(p, fc_active_kernels(), x, NULL, prepared + FC_PREP_HEADER, bias, y);
}
