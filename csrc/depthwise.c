/*
 * depthwise.c: depthwise convolution, groups == c_in with a channel
 * multiplier M = c_out / c_in (output channel o = ci * M + m sees input
 * channel ci only), channels last (NHWC, kernel HWIO (kh, kw, 1, c_out)) and
 * channels first (NCHW, kernel OIHW (c_out, 1, kh, kw)). The kernels are
 * memory-bound (kh * kw multiply-adds per output), so each array is read
 * from memory once; the micro-kernels are in kernels_depthwise_impl.h.
 *
 * Channels last, channels in vectors (dw_block, dw_wgrad):
 *   forward: threads own output rows (bands of them). A row's tap rows that
 *     land in the input are listed once; the pixels whose whole window row
 *     is inside run in blocks of 4 pixels x up to 4 channel vectors (a
 *     3-column kernel of stride 1 or 2: the whole run in one call, dw_run,
 *     its source vectors sliding), the few edge pixels one at a time with
 *     their tap columns clipped (a sub-range of the same list), so padding
 *     costs no per-element branch.
 *   backward-input: gathered per dx row (threads own dx rows, nothing
 *     races): the dx pixels of one column phase (iw + pad_left) mod stride
 *     see the same tap columns, reading consecutive dy pixels, so they run
 *     through the same block kernel.
 *   weight gradient: fixed chunks of output rows; per chunk and channel
 *     block, each output row in turn meets every kernel row (its input rows
 *     stay in L1 meanwhile), the taps of up to 5 kernel columns accumulating
 *     in registers over the row's interior pixels (a window of source vectors
 *     slides along the row when stride == 1 or 2 x dilation); the edge pixels
 *     add their clipped taps afterwards; dbias sums each dy row after its
 *     kernel rows.
 *   M > 1: the forward and the weight gradient read the input through rows
 *     expanded to c_out channels (x[.., o / M]), per band of rows, and the
 *     backward-input gathers the c_out products of a dx row into a staging
 *     row summed over m; the vector kernels then run as for M == 1.
 * Channels first, the output width in vectors (dw_rows, dw_dots):
 *   each (image, input channel, band of rows) copies the input plane's
 *   rows, zero-padded and split into stride phases (phase r holds padded
 *   columns r, r + s, ...), into per-thread scratch, so each tap of an
 *   output row is one contiguous unaligned load per vector and a broadcast
 *   weight; all M output planes of the input plane are computed from the
 *   copy. The backward-input copies the M dy planes' rows zero-padded and
 *   gathers each column phase of a dx row as one row of taps (the phase's
 *   taps read consecutive dy columns), interleaving the phases into dx. The
 *   weight gradient runs the forward's copy and dot products of dy rows
 *   with the taps' rows.
 *
 * Weight-gradient chunks (blocks of output rows of one image, sized from
 * the shape only) each give a partial dkernel and dbias, computed by
 * whichever thread and added in chunk order: bitwise identical results for
 * any thread count. Forward and backward-input sum each output in a fixed
 * tap order whatever the work split.
 *
 * depthwise_impl.h holds the drivers, compiled here for float and double.
 */
#include <string.h>

#include "fc_internal.h"

/* Staged rows (channels-first plane copies, expanded channels-last rows) a
 * thread holds per band: a few hundred KiB stay in L2. */
#define FC_DW_STAGE_BYTES (192 * 1024)
/* Target output pixels per weight-gradient chunk (whole output rows). */
#ifndef FC_DW_CHUNK_PIXELS
#define FC_DW_CHUNK_PIXELS 1024
#endif
/* Memory for weight-gradient partials held at once. */
#define FC_DW_PARTIAL_BYTES (64ll << 20)
/* Input channels per channels-first weight-gradient work item. */
#define FC_DW_CF_GROUP 4

static int check_params(const fc_conv2d_params *p)
{
    if (p == NULL)
        return FC_ERR_ARG;
    if (p->n < 0 || p->h < 1 || p->w < 1 || p->c_in < 0 || p->kh < 1 || p->kw < 1 ||
        p->c_out < 0 || p->out_h < 1 || p->out_w < 1 || p->stride_h < 1 ||
        p->stride_w < 1 || p->dilation_h < 1 || p->dilation_w < 1 || p->pad_top < 0 ||
        p->pad_left < 0)
        return FC_ERR_ARG;
    /* As conv2d.c: pads past the dilated kernel's reach only add outputs
     * that see no input, and bounding them keeps index expressions small. */
    const int64_t reach_h = fc_mul(p->kh - 1, p->dilation_h);
    const int64_t reach_w = fc_mul(p->kw - 1, p->dilation_w);
    if (reach_h < 0 || reach_w < 0)
        return FC_ERR_OVERFLOW;
    if (p->pad_top > reach_h || p->pad_left > reach_w)
        return FC_ERR_ARG;
    /* depthwise: one group per input channel, c_out a multiple of c_in */
    if (p->groups != p->c_in)
        return FC_ERR_ARG;
    if (p->c_in == 0 ? p->c_out != 0 : p->c_out % p->c_in != 0)
        return FC_ERR_ARG;
    const int64_t c = max64(p->c_out, 1);
    const int64_t span_w = fc_mul(p->out_w, p->stride_w), span_h = fc_mul(p->out_h, p->stride_h);
    const int64_t sizes[] = {
        fc_mul(fc_mul(fc_mul(p->n, p->h), p->w), max64(p->c_in, 1)),
        fc_mul(fc_mul(fc_mul(p->n, p->out_h), p->out_w), c),
        fc_mul(fc_mul(p->kh, p->kw), c),
        span_h, span_w,
        fc_mul(p->kh, p->dilation_h), fc_mul(p->kw, p->dilation_w),
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i)
        if (sizes[i] < 0 || sizes[i] > (INT64_MAX >> 8))
            return FC_ERR_OVERFLOW;
    /* offsets along a channels-last row (padded width x channels) and the
     * bytes of an expanded row, with room for the staging arithmetic */
    const int64_t more[] = {
        fc_mul(span_w + reach_w + 64, c),
        fc_mul(fc_mul(p->w, c), 64),
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; ++i)
        if (more[i] < 0 || more[i] > (INT64_MAX >> 8))
            return FC_ERR_OVERFLOW;
    return FC_OK;
}

/* Channel blocks of the channels-last kernels over c channels: the whole
 * vectors in nfull balanced blocks of at most vmax vectors, then the tail
 * (c % vl channels) as one masked vector. */
typedef struct dw_cblocks {
    int64_t vl, fv, rest, nfull, n;
} dw_cblocks;

static dw_cblocks dw_cblocks_of(int64_t c, int vl, int vmax)
{
    dw_cblocks b;
    b.vl = vl;
    b.fv = c / vl;
    b.rest = c % vl;
    b.nfull = (b.fv + vmax - 1) / vmax;
    b.n = b.nfull + (b.rest > 0);
    return b;
}

/* Block i: first channel, vectors, tail lanes (0: whole vectors). */
static void dw_cblock(const dw_cblocks *b, int64_t i, int64_t *ch, int *v, int *tail)
{
    if (i < b->nfull) {
        int64_t start, size;
        block_of(b->fv, b->nfull, i, &start, &size);
        *ch = start * b->vl;
        *v = (int)size;
        *tail = 0;
    } else {
        *ch = b->fv * b->vl;
        *v = 1;
        *tail = (int)b->rest;
    }
}

/* Every block's first channel and vectors, as the run kernel takes them
 * (fc_dw_run_args). */
typedef struct dw_run_blocks {
    int64_t *ch;
    int *v;
    int64_t n;   /* blocks, the last one the tail when tail > 0 */
    int tail;    /* lanes of the masked last block (0: none) */
} dw_run_blocks;

static int dw_run_blocks_of(const dw_cblocks *b, dw_run_blocks *out)
{
    out->ch = (int64_t *)fc_malloc(b->n, sizeof(int64_t));
    out->v = (int *)fc_malloc(b->n, sizeof(int));
    if (out->ch == NULL || out->v == NULL) {
        fc_free(out->ch);
        fc_free(out->v);
        out->ch = NULL;
        out->v = NULL;
        return FC_ERR_NOMEM;
    }
    for (int64_t i = 0; i < b->n; ++i) {
        int tail;
        dw_cblock(b, i, &out->ch[i], &out->v[i], &tail);
    }
    out->n = b->n;
    out->tail = (int)b->rest;
    return FC_OK;
}

static void dw_run_blocks_free(dw_run_blocks *r)
{
    fc_free(r->ch);
    fc_free(r->v);
}

/* Weight-gradient chunks: blocks of output rows of one image. */
typedef struct dw_chunks {
    int64_t per_image, n, rows_max;
} dw_chunks;

static dw_chunks dw_chunks_of(const fc_conv2d_params *p)
{
    dw_chunks c;
    const int64_t rows = max64(1, FC_DW_CHUNK_PIXELS / p->out_w);
    c.per_image = (p->out_h + rows - 1) / rows;
    c.n = p->n * c.per_image;
    c.rows_max = (p->out_h + c.per_image - 1) / c.per_image;
    return c;
}

static void dw_chunk(const fc_conv2d_params *p, const dw_chunks *c, int64_t i, int64_t *img,
                     int64_t *oh0, int64_t *oh1)
{
    int64_t start, size;
    *img = i / c->per_image;
    block_of(p->out_h, c->per_image, i - *img * c->per_image, &start, &size);
    *oh0 = start;
    *oh1 = start + size;
}

/* Output rows per band when a band of B rows stages (B - 1) * stride +
 * reach + 1 rows of row_bytes each within the budget (at least one). */
static int64_t dw_band_rows(int64_t row_bytes, int64_t stride, int64_t reach, int64_t out_rows)
{
    const int64_t fit = FC_DW_STAGE_BYTES / max64(row_bytes, 1);
    const int64_t band = fit > reach + 1 ? (fit - reach - 1) / stride + 1 : 1;
    return clamp64(band, 1, out_rows);
}

/* Staged rows for a band of B output rows: (B - 1) * stride + reach + 1, or
 * -1 on overflow. */
static int64_t dw_span(int64_t band, int64_t stride, int64_t reach)
{
    const int64_t a = fc_mul(band - 1, stride);
    return a < 0 || a > INT64_MAX / 2 - reach ? -1 : a + reach + 1;
}

/* Per-thread scratch is carved out of 8-byte words: the words n values of
 * the element type take. */
#define FC_DW_WORDS(n) (((n) * (int64_t)sizeof(FC_T) + 7) / 8)

#define FC_T float
#define FCN(name) name
#include "depthwise_impl.h"
#undef FC_T
#undef FCN

#define FC_T double
#define FCN(name) name##_f64
#include "depthwise_impl.h"
#undef FC_T
#undef FCN
