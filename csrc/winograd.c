/*
 * winograd.c: 3x3, stride-1, undilated convolution by Winograd's minimal
 * filtering F(2x2, 3x3): every 2x2 output tile is 16 products per channel
 * pair instead of 36 multiply-adds (2.25x fewer), at the price of cheap
 * add/subtract transforms (coefficients 1 and 1/2, so float32 accuracy stays
 * that of direct convolution to within a small factor).
 *
 * Backward-input of such a layer is itself a 3x3 stride-1 convolution, of dy
 * with the kernel flipped and transposed (W'[a][b][co][ci] = W[2-a][2-b][ci]
 * [co]) and pads 2 - p, so the same driver serves both directions.
 *
 * A non-finite input would reach every output of its tile (the transforms
 * mix the tile's 16 cells), so a call whose outputs are not all finite is
 * recomputed by the direct algorithm: NaN and Inf then propagate exactly as
 * in the reference.
 *
 * Both layouts: channels last with the channels in the vector lanes (below),
 * channels first with the tiles in them (fc_winograd_conv3x3_nchw); the
 * weight gradient (F(3x3, 2x2), at the end) reads channels-first layers a
 * tile row at a time through a pixel-major copy of the rows it needs.
 *
 * Work: blocks of T output tiles (T fixed by the problem, not the thread
 * count, so results do not depend on it). Per block: transform T input
 * patches into V[16][T][c_in], run the 16 GEMMs M[e] = V[e] U[e] with the
 * indirect-GEMM micro-kernels, transform M into the 2x2 outputs (+ bias,
 * ReLU). Each output belongs to one tile and each tile to one block: no
 * races, no reductions.
 */
#include <string.h>

#include "fc_internal.h"

/* Winograd pays once a tile's 16 GEMMs outweigh its transforms. */
#define FC_WINO_MIN_CHANNELS 16
/* Bytes of a block's V and M together (thread-local, L2-resident). */
#define FC_WINO_BLOCK_BYTES (320 * 1024)
/* Channels first: the most V and M of one tile row may take. */
#define FC_WINO_CF_MAX_ROW_BYTES (4.0 * 1024 * 1024)

static int winograd_on = FC_WINOGRAD_ON;   /* an FC_WINOGRAD_* mode */

int fc_set_winograd(int mode)
{
    if (mode != FC_WINOGRAD_OFF && mode != FC_WINOGRAD_ON && mode != FC_WINOGRAD_ALWAYS)
        return FC_ERR_ARG;
    winograd_on = mode;
    return FC_OK;
}

int fc_get_winograd(void) { return winograd_on; }

int fc_winograd_applies(const fc_conv2d_params *p, int backward)
{
    const int64_t c_a = backward ? p->c_out : p->c_in;   /* channels read */
    const int64_t c_b = backward ? p->c_in : p->c_out;   /* channels written */
    if (!(winograd_on && p->groups <= 1 && p->kh == 3 && p->kw == 3 && p->stride_h == 1 &&
          p->stride_w == 1 && p->dilation_h == 1 && p->dilation_w == 1 &&
          c_a >= FC_WINO_MIN_CHANNELS && c_b >= FC_WINO_MIN_CHANNELS))
        return 0;
    if (!p->channels_first)
        return 1;
    /* channels first: a band is whole tile rows, so its scratch (V and M)
     * grows with the width; rows too wide for FC_WINO_CF_MAX_ROW_BYTES run
     * directly */
    const int64_t width = backward ? p->w : p->out_w;
    const double row_bytes = (double)((width + 1) / 2) * 16.0 * (double)(c_a + c_b) * 4.0;
    return row_bytes <= FC_WINO_CF_MAX_ROW_BYTES;
}

/* The channels-last weight gradient by F(3x3, 2x2) on the AVX2 path: only
 * where it beat the direct one. Its costs beside the 16 GEMMs, the
 * transforms of every tile's x and dy (per channel) and the per-chunk
 * partials of 16 x c_in x c_out values, outweigh the 2.25x fewer
 * multiply-adds on small images and with few channels. Measured on Zen 2
 * (in-process, alternating, 1 and 2 threads, Winograd / direct time):
 * 56x56 and 28x28 layers of 64-128 channels 0.76-0.83; 32x32 with 16 -> 64
 * or 64 -> 16 channels 0.87-0.96; 32x32 16 -> 16 1.69-2.02; 26x26 32 -> 64
 * (the seed's conv2d_1) alone 0.97-1.11, but its whole backward in the bench
 * (input gradient first) 1.05-1.06x slower with the direct one, so it keeps
 * Winograd; 22x22 32 -> 64 1.13-1.32; 16x16 32 -> 32 1.31-1.42; 14x14 256 ->
 * 256 1.19-1.24; 8x8 64 -> 64 1.21-1.23; 7x7 512 -> 512 4.1-5.4. The AVX-512
 * path keeps it for every layer fc_winograd_applies to (introduced for the
 * seed's conv2d_1, 26x26: 5.6 -> 3.8 ms at 2 threads; on a Zen 5, 1 thread,
 * the whole backward by Winograd, input and weight gradients together, took
 * 0.82-0.99 of the direct one's time at 32x32 16 -> 16, 16x16 32 -> 32 and
 * 8x8 64 -> 64), and so does channels first. */
#define FC_WINO_WGRAD_AVX2_MIN_PIXELS (24 * 24)
#define FC_WINO_WGRAD_AVX2_MIN_CHANNELS 64   /* c_in + c_out */

int fc_winograd_wgrad_applies(const fc_conv2d_params *p)
{
    if (!fc_winograd_applies(p, 0))
        return 0;
    if (winograd_on == FC_WINOGRAD_ALWAYS || p->channels_first || fc_get_simd() != FC_SIMD_AVX2)
        return 1;
    return p->out_h * p->out_w >= FC_WINO_WGRAD_AVX2_MIN_PIXELS &&
           p->c_in + p->c_out >= FC_WINO_WGRAD_AVX2_MIN_CHANNELS;
}

/*
 * U[e] = (G g G^T)[e] for `count` 3x3 kernels g, G = [1 0 0; .5 .5 .5;
 * .5 -.5 .5; 0 0 1], computed in double and rounded once. Kernel l's tap
 * (i, j) is g[(3 i + j) * tap_stride + l * step]; its U[e] goes to
 * u[e * e_stride + l * u_step]. The 16 rows of U are e_stride apart, which
 * maps them onto the same cache sets: results are staged in a local block
 * and written out a row at a time.
 */
#define FC_WINO_KT_CHUNK 64
static void transform_kernels(const float *g, int64_t tap_stride, int64_t step, float *u,
                              int64_t e_stride, int64_t u_step, int64_t count)
{
    float staged[16][FC_WINO_KT_CHUNK];
    for (int64_t l0 = 0; l0 < count; l0 += FC_WINO_KT_CHUNK) {
        const int64_t len = min64(FC_WINO_KT_CHUNK, count - l0);
        for (int64_t l = 0; l < len; ++l) {
            const float *gl = g + (l0 + l) * step;
            double t[4][3];   /* G g */
            for (int j = 0; j < 3; ++j) {
                const double g0 = gl[j * tap_stride], g1 = gl[(3 + j) * tap_stride];
                const double g2 = gl[(6 + j) * tap_stride];
                t[0][j] = g0;
                t[1][j] = 0.5 * (g0 + g1 + g2);
                t[2][j] = 0.5 * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (int a = 0; a < 4; ++a) {   /* (G g) G^T */
                staged[4 * a][l] = (float)t[a][0];
                staged[4 * a + 1][l] = (float)(0.5 * (t[a][0] + t[a][1] + t[a][2]));
                staged[4 * a + 2][l] = (float)(0.5 * (t[a][0] - t[a][1] + t[a][2]));
                staged[4 * a + 3][l] = (float)t[a][2];
            }
        }
        for (int e = 0; e < 16; ++e) {
            float *row = u + e * e_stride + l0 * u_step;
            for (int64_t l = 0; l < len; ++l)
                row[l * u_step] = staged[e][l];
        }
    }
}

/* The floats between the 16 matrices V[e] (or M[e]) of `len` floats each:
 * an odd number of 64-byte lines. The transforms touch all 16 at one
 * offset; at a stride of 4 KiB those 16 lines would share one L1 set (12
 * ways), at 6 KiB two; an odd number of lines puts them in 16 sets. */
static int64_t wino_e_stride(int64_t len)
{
    const int64_t lines = ceil_div(len, 16);
    return 16 * (lines % 2 == 0 ? lines + 1 : lines);
}

typedef struct wino_problem {
    int64_t n, h, w, c_in, out_h, out_w, c_out, pad_top, pad_left;
    const float *x, *u, *bias;
    int relu;
    float *y;
    int64_t tiles_w, tiles_per_image, ntiles, block;
    int64_t v_e_stride, m_e_stride;   /* floats between V[e] and V[e + 1], M likewise */
    int64_t pool_h, pool_w;   /* > 0: y is the 2x2 max-pooling of the output, this size */
    int mr;
    int64_t nr_panel, npanels, u_e_stride;
} wino_problem;

/* A zeroed problem with the kernel transform's layout set: U[e][panel]
 * [c_in][nr_panel], panels of the kernel table's widest register tile. */
static void wino_kernel_layout(wino_problem *q, const fc_kernel_table *t, int64_t c_in,
                               int64_t c_out)
{
    memset(q, 0, sizeof *q);
    q->c_in = c_in;
    q->c_out = c_out;
    q->nr_panel = (int64_t)t->nv_max * t->vl;
    q->npanels = ceil_div(c_out, q->nr_panel);
    q->u_e_stride = q->npanels * c_in * q->nr_panel;
}

/* Returns nonzero when an output of the block is not finite. */
static int run_block(const wino_problem *q, const fc_kernel_table *t, int64_t tile0,
                     int64_t count, float *v, float *m)
{
    /* Input transform. */
    for (int64_t i = 0; i < count; ++i) {
        const int64_t tile = tile0 + i;
        const int64_t img = tile / q->tiles_per_image;
        const int64_t rest = tile - img * q->tiles_per_image;
        const int64_t ty = rest / q->tiles_w, tx = rest - ty * q->tiles_w;
        const int64_t r0 = 2 * ty - q->pad_top, c0 = 2 * tx - q->pad_left;
        const float *cells[16];
        for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c) {
                const int64_t ih = r0 + r, iw = c0 + c;
                cells[r * 4 + c] = ((uint64_t)ih < (uint64_t)q->h && (uint64_t)iw < (uint64_t)q->w)
                                       ? q->x + ((img * q->h + ih) * q->w + iw) * q->c_in
                                       : NULL;
            }
        t->wino_input(cells, q->c_in, v + i * q->c_in, q->v_e_stride);
    }
    /* 16 GEMMs: M[e] (count x c_out) = V[e] (count x c_in) U[e] (c_in x c_out),
     * the rows strided: one call for the whole tiles of mr rows, one for the
     * rest. */
    for (int e = 0; e < 16; ++e) {
        for (int64_t panel = 0; panel < q->npanels; ++panel) {
            const int64_t col0 = panel * q->nr_panel;
            const int64_t nr = min64(q->nr_panel, q->c_out - col0);
            const int nv = (int)ceil_div(nr, t->vl);
            for (int64_t k0 = 0; k0 < q->c_in; k0 += 512) {
                const float *a[1] = {v + e * q->v_e_stride + k0};
                const float *b[1] = {q->u + e * q->u_e_stride + panel * q->c_in * q->nr_panel +
                                     k0 * q->nr_panel};
                for (int64_t row0 = 0; row0 < count;) {
                    const int rows = (int)min64(q->mr, count - row0);
                    float *c[1] = {m + e * q->m_e_stride + row0 * q->c_out + col0};
                    fc_igemm_args args = {0};
                    args.ntaps = 1;
                    args.kc = min64(512, q->c_in - k0);
                    args.a = a;
                    args.b = b;
                    args.ldb = q->nr_panel;
                    args.nr = nr;
                    args.c = c;
                    args.mr = rows;
                    args.nv = nv;
                    args.accumulate = k0 > 0;
                    args.a_step = q->c_in;
                    args.c_step = q->c_out;
                    args.m_tiles = rows == q->mr ? (count - row0) / q->mr : 1;
                    args.prefetch_a = 1;
                    fc_igemm_fn fn = t->igemm[rows][nv][nr % t->vl != 0];
                    (fn ? fn : t->igemm_any)(&args);
                    a[0] += args.m_tiles * rows * q->c_in;
                    row0 += args.m_tiles * rows;
                }
            }
        }
    }
    /* Output transform. */
    int nonfinite = 0;
    if (q->pool_h > 0) {
        /* Pooled: a tile is a pooling window (rows and columns 2ty, 2tx on). */
        for (int64_t i = 0; i < count; ++i) {
            const int64_t tile = tile0 + i;
            const int64_t img = tile / q->tiles_per_image;
            const int64_t rest = tile - img * q->tiles_per_image;
            const int64_t ty = rest / q->tiles_w, tx = rest - ty * q->tiles_w;
            if (ty >= q->pool_h || tx >= q->pool_w)
                continue;   /* 'valid' pooling drops an odd last row or column */
            unsigned cells = 0;
            for (int r = 0; r < 2; ++r)
                for (int cc = 0; cc < 2; ++cc)
                    if (2 * ty + r < q->out_h && 2 * tx + cc < q->out_w)
                        cells |= 1u << (2 * r + cc);
            float *out = q->y + ((img * q->pool_h + ty) * q->pool_w + tx) * q->c_out;
            nonfinite |= t->wino_output_pool(m + i * q->c_out, q->m_e_stride, q->c_out, q->bias,
                                             q->relu, cells, out);
        }
        return nonfinite;
    }
    for (int64_t i = 0; i < count; ++i) {
        const int64_t tile = tile0 + i;
        const int64_t img = tile / q->tiles_per_image;
        const int64_t rest = tile - img * q->tiles_per_image;
        const int64_t ty = rest / q->tiles_w, tx = rest - ty * q->tiles_w;
        float *out[4];
        for (int r = 0; r < 2; ++r)
            for (int cc = 0; cc < 2; ++cc) {
                const int64_t oh = 2 * ty + r, ow = 2 * tx + cc;
                out[r * 2 + cc] = (oh < q->out_h && ow < q->out_w)
                                      ? q->y + ((img * q->out_h + oh) * q->out_w + ow) * q->c_out
                                      : NULL;
            }
        nonfinite |= t->wino_output(m + i * q->c_out, q->m_e_stride, q->c_out, q->bias, q->relu,
                                    out);
    }
    return nonfinite;
}

/* Thread tid's share of u = U[e][panel][c_in][nr_panel] (zero beyond c_out:
 * u is calloc'ed): whole input channels forward, whole output channels with
 * `transpose`. Each value is one filter's transform, whoever computes it. */
static void transform_kernel_share(const wino_problem *q, const float *kernel, int transpose,
                                   float *u, int tid, int team)
{
    const int64_t c_in = q->c_in, c_out = q->c_out;
    const int64_t tap_floats = c_in * c_out;   /* one tap of the HWIO kernel */
    int64_t i0, i1;
    fc_thread_range(transpose ? c_out : c_in, team, tid, &i0, &i1);
    if (!transpose) {
        /* g[tap][ci][co]: unit steps over output channels */
        for (int64_t ci = i0; ci < i1; ++ci)
            for (int64_t panel = 0; panel < q->npanels; ++panel) {
                const int64_t c0 = panel * q->nr_panel;
                transform_kernels(kernel + ci * c_out + c0, tap_floats, 1,
                                  u + (panel * c_in + ci) * q->nr_panel, q->u_e_stride, 1,
                                  min64(q->nr_panel, c_out - c0));
            }
        return;
    }
    /* tap (i, j) is the layer's tap (2 - i, 2 - j), laid out [co][ci]:
     * unit steps over input channels */
    for (int64_t co = i0; co < i1; ++co) {
        const int64_t panel = co / q->nr_panel, col = co - panel * q->nr_panel;
        transform_kernels(kernel + 8 * tap_floats + co * c_in, -tap_floats, 1,
                          u + panel * c_in * q->nr_panel + col, q->u_e_stride, q->nr_panel,
                          c_in);
    }
}

/*
 * y (n, out_h, out_w, c_out) = 3x3 stride-1 correlation of x (n, h, w, c_in)
 * with pads (pad_top, pad_left); the kernel is HWIO `kernel` itself, or with
 * `transpose`, the backward-input kernel of a layer whose HWIO kernel is
 * (3, 3, c_out, c_in): flipped in space, input and output channels swapped.
 * With pool_h > 0, y is (n, pool_h, pool_w, c_out): the 2x2 stride-2 max
 * pooling of that output. With u_ready, the kernel's transform is u_ready
 * (fc_winograd_prepare_kernel), not computed from `kernel`.
 */
static int winograd_nhwc(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t out_h,
                         int64_t out_w, int64_t c_out, int64_t pad_top, int64_t pad_left,
                         const float *x, const float *kernel, const float *u_ready,
                         int transpose, const float *bias, int relu, float *y, int64_t pool_h,
                         int64_t pool_w, int n_threads)
{
    const fc_kernel_table *t = fc_active_kernels();
    wino_problem q;
    wino_kernel_layout(&q, t, c_in, c_out);
    q.n = n;
    q.h = h;
    q.w = w;
    q.c_in = c_in;
    q.out_h = out_h;
    q.out_w = out_w;
    q.c_out = c_out;
    q.pad_top = pad_top;
    q.pad_left = pad_left;
    q.x = x;
    q.bias = bias;
    q.relu = relu;
    q.y = y;
    q.pool_h = pool_h;
    q.pool_w = pool_w;
    q.tiles_w = ceil_div(out_w, 2);
    q.tiles_per_image = ceil_div(out_h, 2) * q.tiles_w;
    q.ntiles = n * q.tiles_per_image;
    q.mr = t->igemm_mr[ceil_div(min64(c_out, q.nr_panel), t->vl)];
    /* Tiles per block: V and M within FC_WINO_BLOCK_BYTES (at most a
     * multiple of the register tile), the tiles shared evenly between the
     * blocks that takes: at batch 1 (169 tiles of 48 at most: 48, 48, 48,
     * 25) the last block's shortfall fell on one of two threads. */
    const int64_t per_tile = 16 * (c_in + c_out) * (int64_t)sizeof(float);
    const int64_t block_max = max64(FC_WINO_BLOCK_BYTES / per_tile / q.mr * q.mr, q.mr);
    q.block = max64(1, ceil_div(q.ntiles, max64(1, ceil_div(q.ntiles, block_max))));

    /* U[e][panel][c_in][nr_panel], zero beyond c_out. */
    float *u = NULL;
    if (u_ready == NULL) {
        u = (float *)fc_calloc(fc_mul(16, q.u_e_stride) + 16, sizeof(float));
        if (u == NULL)
            return FC_ERR_NOMEM;
    }
    q.u = u_ready != NULL ? u_ready : u;

    const int64_t nblocks = ceil_div(q.ntiles, q.block);
    const double work = (double)q.ntiles * 16.0 * (double)c_in * (double)c_out;
    const int nthreads = fc_pick_threads(n_threads, work, nblocks);
    q.v_e_stride = wino_e_stride(q.block * c_in);
    q.m_e_stride = wino_e_stride(q.block * c_out);
    const int64_t per_thread = 16 * (q.v_e_stride + q.m_e_stride) + 64;
    /* not zeroed: every value of V and M a block reads it wrote first
     * (zeroing was a serial tenth of a batch-1 call) */
    float *scratch = (float *)fc_malloc(fc_mul(per_thread, nthreads), sizeof(float));
    if (scratch == NULL) {
        fc_free(u);
        return FC_ERR_NOMEM;
    }
    int nonfinite = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(| : nonfinite)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        /* The kernel's transform, split over the threads first (at batch
         * 1 it took a third of a call done before the team started). */
        if (u != NULL) {
            transform_kernel_share(&q, kernel, transpose, u, tid, FC_TEAM_SIZE());
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        float *v = scratch + per_thread * tid;
        float *m = v + 16 * q.v_e_stride;
        int64_t b0, b1;
        fc_thread_range(nblocks, FC_TEAM_SIZE(), tid, &b0, &b1);
        for (int64_t blk = b0; blk < b1; ++blk) {
            const int64_t tile0 = blk * q.block;
            nonfinite |= run_block(&q, t, tile0, min64(q.block, q.ntiles - tile0), v, m);
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    fc_free(u);
    return nonfinite ? FC_WINO_NONFINITE : FC_OK;
}

int fc_winograd_conv3x3(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t out_h,
                        int64_t out_w, int64_t c_out, int64_t pad_top, int64_t pad_left,
                        const float *x, const float *kernel, int transpose, const float *bias,
                        int relu, float *y, int n_threads)
{
    return winograd_nhwc(n, h, w, c_in, out_h, out_w, c_out, pad_top, pad_left, x, kernel, NULL,
                         transpose, bias, relu, y, 0, 0, n_threads);
}

int fc_winograd_forward_nhwc(const fc_conv2d_params *p, const float *x, const float *kernel,
                             const float *u, const float *bias, float *y, int64_t pool_h,
                             int64_t pool_w)
{
    return winograd_nhwc(p->n, p->h, p->w, p->c_in, p->out_h, p->out_w, p->c_out, p->pad_top,
                         p->pad_left, x, kernel, u, 0, bias, p->relu, y, pool_h, pool_w,
                         p->n_threads);
}

int64_t fc_winograd_u_floats(const fc_conv2d_params *p)
{
    wino_problem q;
    wino_kernel_layout(&q, fc_active_kernels(), p->c_in, p->c_out);
    return fc_mul(16, q.u_e_stride) + 16;
}

int fc_winograd_prepare_kernel(const fc_conv2d_params *p, const float *kernel, float *u)
{
    wino_problem q;
    wino_kernel_layout(&q, fc_active_kernels(), p->c_in, p->c_out);
    memset(u, 0, (size_t)(fc_mul(16, q.u_e_stride) + 16) * sizeof(float));
    const double work = 16.0 * (double)p->c_in * (double)p->c_out;
    const int nthreads = fc_pick_threads(p->n_threads, work, p->c_in);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        transform_kernel_share(&q, kernel, 0, u, FC_THREAD_ID(), FC_TEAM_SIZE());
        fc_fpmode_leave(fp);
    }
    return FC_OK;
}

/* ------------------------------------------------------------------------ */
/* Channels first (NCHW activations, OIHW kernels), F(2x2, 3x3).             */

/* The transposed GEMMs of the NCHW direct path: per tile e, M[e] (c_out x
 * tiles) = U[e] (c_out x c_in) V[e] (c_in x tiles), tiles in the vector
 * lanes (rows of A broadcast, as nchw_direct does with its kernel rows). A
 * work item is a band of tile rows of one image (sized from the shape only):
 * its input rows are staged per channel zero-padded, and the transform
 * splits them into even and odd columns in registers, so each of a tile
 * row's 16 cells is a vector (wino_input_cf); the outputs come back split
 * into even and odd columns and are interleaved into y's rows. */
typedef struct wino_cf {
    int64_t n, h, w, c_in, out_h, out_w, c_out, pad_top, pad_left;
    const float *x, *u, *bias;
    int relu;
    float *y;
    int64_t tiles_w, tiles_h, band, nbands;
    int64_t lp;          /* staged row length */
    int64_t ld;          /* lanes of a V or M row: the band's tiles, padded */
    int64_t v_e, m_e;    /* V[e] and M[e] apart: 16 values more than their
                            rows, so the 16 streams of a transform do not
                            share cache sets when c x ld lands on a multiple
                            of 4 KiB */
    int64_t stage_len;   /* one channel's staged rows */
} wino_cf;

/* The input rows band `item` stages, per channel one contiguous run of x:
 * rows [*ih0, *ih1) of each plane. */
static void band_rows_cf(const wino_cf *q, int64_t item, int64_t *img, int64_t *ih0,
                         int64_t *ih1)
{
    *img = item / q->nbands;
    const int64_t ty0 = (item - *img * q->nbands) * q->band;
    const int64_t ty1 = min64(ty0 + q->band, q->tiles_h);
    *ih0 = max64(0, 2 * ty0 - q->pad_top);
    *ih1 = max64(*ih0, min64(q->h, 2 * ty1 + 2 - q->pad_top));
}

/* Returns nonzero when an output of the band is not finite. `next`: the band
 * this thread runs next (-1: none), whose input is prefetched meanwhile. */
static int run_band_cf(const wino_cf *q, const fc_kernel_table *t, int64_t item, int64_t next,
                       float *v, float *m, float *stage, float *ystage)
{
    const int64_t img = item / q->nbands, ty0 = (item - img * q->nbands) * q->band;
    const int64_t ty1 = min64(ty0 + q->band, q->tiles_h), rows = 2 * (ty1 - ty0) + 2;
    const int64_t tw = q->tiles_w, lp = q->lp, ld = q->ld;
    const int64_t count = (ty1 - ty0) * tw, lanes = ceil_div(count, t->vl) * t->vl;
    /* stage padded rows 2 ty0 .. 2 ty1 + 1 of every channel: input column
     * iw is padded column iw + pad_left; columns past the staged row are
     * dropped (pad_left may be negative) */
    const int64_t lo = max64(0, -q->pad_left), hi = min64(q->w, lp - q->pad_left);
    for (int64_t ci = 0; ci < q->c_in; ++ci) {
        const float *plane = q->x + (img * q->c_in + ci) * q->h * q->w;
        for (int64_t r = 0; r < rows; ++r) {
            float *row = stage + ci * q->stage_len + r * lp;
            const int64_t ih = 2 * ty0 + r - q->pad_top;
            memset(row, 0, (size_t)lp * sizeof(float));
            if (ih >= 0 && ih < q->h && hi > lo)
                memcpy(row + lo + q->pad_left, plane + ih * q->w + lo,
                       (size_t)(hi - lo) * sizeof(float));
        }
    }
    /* V[e][ci][tile] */
    for (int64_t ci = 0; ci < q->c_in; ++ci)
        for (int64_t ty = ty0; ty < ty1; ++ty) {
            const float *cells[4];
            for (int r = 0; r < 4; ++r)
                cells[r] = stage + ci * q->stage_len + (2 * (ty - ty0) + r) * lp;
            t->wino_input_cf(cells, tw, v + ci * ld + (ty - ty0) * tw, q->v_e);
        }
    /* M[e][co][tile]: panels of tile lanes of balanced widths (5 vectors as
     * 3 + 2, not 4 + 1, whose one-vector tiles load a broadcast per
     * multiply-add), tiles of output-channel rows */
    const int64_t vecs = lanes / t->vl, npanels = ceil_div(vecs, t->nv_max);
    const float *a[FC_MAX_MR];
    float *c[FC_MAX_MR];
    const float *b[1];
    /* The next band's input, a sixteenth of its channels per e (c_in >= 16):
     * its first read (staging) otherwise waits on memory, each channel's run
     * too short for the hardware prefetcher to get ahead. */
    int64_t pf_img = 0, pf_ih0 = 0, pf_ih1 = 0;
    if (next >= 0)
        band_rows_cf(q, next, &pf_img, &pf_ih0, &pf_ih1);
    const int64_t pf_lines = ceil_div((pf_ih1 - pf_ih0) * q->w * (int64_t)sizeof(float), 64);
    const int64_t plane_bytes = q->h * q->w * (int64_t)sizeof(float);
    const char *pf_first =
        (const char *)(q->x + ((pf_img * q->c_in) * q->h + pf_ih0) * q->w);
    for (int e = 0; e < 16; ++e) {
        /* channels [e c_in / 16, (e + 1) c_in / 16), every line of each run */
        for (int64_t ci = e * q->c_in / 16; ci < (e + 1) * q->c_in / 16; ++ci) {
            const char *run = pf_first + ci * plane_bytes;
            for (int64_t l = 0; l < pf_lines; ++l)
                FC_PREFETCH(run + l * 64);
        }
        for (int64_t panel = 0; panel < npanels; ++panel) {
            const int64_t v0 = panel * vecs / npanels, col0 = v0 * t->vl;
            const int nv = (int)((panel + 1) * vecs / npanels - v0);
            /* balanced tiles of rows (32 rows by 6: 6 6 5 5 5 5, not 6 x 5 + 2) */
            const int64_t ntr = ceil_div(q->c_out, t->igemm_mr[nv]);
            for (int64_t tr = 0; tr < ntr; ++tr) {
                int64_t co0, rows;
                block_of(q->c_out, ntr, tr, &co0, &rows);
                const int nrows = (int)rows;
                for (int64_t k0 = 0; k0 < q->c_in; k0 += 512) {
                    const int64_t kc = min64(512, q->c_in - k0);
                    for (int r = 0; r < nrows; ++r) {
                        a[r] = q->u + (e * q->c_out + co0 + r) * q->c_in + k0;
                        c[r] = m + e * q->m_e + (co0 + r) * ld + col0;
                    }
                    b[0] = v + e * q->v_e + k0 * ld + col0;
                    fc_igemm_args args = {0};
                    args.ntaps = 1;
                    args.kc = kc;
                    args.a = a;
                    args.b = b;
                    args.ldb = ld;
                    args.nr = (int64_t)nv * t->vl;
                    args.bias = NULL;
                    args.bias_rows = 0;
                    args.c = c;
                    args.mr = nrows;
                    args.nv = nv;
                    args.accumulate = k0 > 0;
                    args.relu = 0;
                    fc_igemm_fn fn = t->igemm[nrows][nv][0];
                    (fn ? fn : t->igemm_any)(&args);
                }
            }
        }
    }
    /* y rows 2 ty, 2 ty + 1 of each output channel, interleaved */
    int nonfinite = 0;
    for (int64_t co = 0; co < q->c_out; ++co) {
        const float bias = q->bias != NULL ? q->bias[co] : 0.0f;
        float *plane = q->y + (img * q->c_out + co) * q->out_h * q->out_w;
        float *out[4];   /* the band's tiles in a row, as M */
        for (int i = 0; i < 4; ++i)
            out[i] = ystage + i * ld;
        nonfinite |= t->wino_output_cf(m + co * ld, q->m_e, count, bias, q->relu, out);
        for (int64_t ty = ty0; ty < ty1; ++ty) {
            for (int r = 0; r < 2 && 2 * ty + r < q->out_h; ++r) {
                float *dst = plane + (2 * ty + r) * q->out_w;
                const float *even = out[2 * r] + (ty - ty0) * tw;
                const float *odd = out[2 * r + 1] + (ty - ty0) * tw;
                const int64_t pairs = q->out_w / 2;
                for (int64_t k = 0; k < pairs; ++k) {
                    dst[2 * k] = even[k];
                    dst[2 * k + 1] = odd[k];
                }
                if (q->out_w & 1)
                    dst[2 * pairs] = even[pairs];
            }
        }
    }
    return nonfinite;
}

/*
 * y (n, c_out, out_h, out_w) = 3x3 stride-1 correlation of x (n, c_in, h, w)
 * with pads (pad_top, pad_left); the kernel is OIHW `kernel` (c_out, c_in, 3,
 * 3) itself, or with `transpose`, the backward-input kernel of a layer whose
 * OIHW kernel is (c_in, c_out, 3, 3): flipped in space, channels swapped.
 */
int fc_winograd_conv3x3_nchw(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t out_h,
                             int64_t out_w, int64_t c_out, int64_t pad_top, int64_t pad_left,
                             const float *x, const float *kernel, int transpose,
                             const float *bias, int relu, float *y, int n_threads)
{
    const fc_kernel_table *t = fc_active_kernels();
    wino_cf q;
    memset(&q, 0, sizeof q);
    q.n = n;
    q.h = h;
    q.w = w;
    q.c_in = c_in;
    q.out_h = out_h;
    q.out_w = out_w;
    q.c_out = c_out;
    q.pad_top = pad_top;
    q.pad_left = pad_left;
    q.x = x;
    q.bias = bias;
    q.relu = relu;
    q.y = y;
    q.tiles_w = ceil_div(out_w, 2);
    q.tiles_h = ceil_div(out_h, 2);
    /* Tile rows per band: the GEMMs run over the band's tiles rounded up to
     * whole vectors, so of the bands whose V and M fit twice
     * FC_WINO_BLOCK_BYTES (L2 holds them), the one that wastes the fewest
     * lanes per tile (13 tiles a row: 6 rows fill 80 lanes to 97%, 4 rows
     * 64 lanes to 81%), the larger on a tie. */
    const int64_t per_tile = 16 * (c_in + c_out) * (int64_t)sizeof(float);
    const int64_t band_max =
        max64(1, min64(q.tiles_h, 2 * FC_WINO_BLOCK_BYTES / per_tile / q.tiles_w));
    q.band = 1;
    for (int64_t b = 2; b <= band_max; ++b) {
        /* vectors per tile row of b rows vs the best so far, cross-multiplied */
        const int64_t vecs_b = ceil_div(b * q.tiles_w, t->vl);
        const int64_t vecs_best = ceil_div(q.band * q.tiles_w, t->vl);
        if (vecs_b * q.band <= vecs_best * b)
            q.band = b;
    }
    q.nbands = ceil_div(q.tiles_h, q.band);
    /* whole-vector reads of a row go up to twice tiles_w rounded up, + 2 */
    q.lp = 2 * ceil_div(q.tiles_w, t->vl) * t->vl + 2 * t->vl;
    q.ld = ceil_div(q.band * q.tiles_w, t->vl) * t->vl + t->vl;
    q.stage_len = (2 * q.band + 2) * q.lp;
    q.v_e = c_in * q.ld + 16;
    q.m_e = c_out * q.ld + 16;

    /* U[e][co][ci] */
    float *u = (float *)fc_malloc(fc_mul(16, fc_mul(c_out, c_in)) + 16, sizeof(float));
    if (u == NULL)
        return FC_ERR_NOMEM;
    for (int64_t co = 0; co < c_out; ++co) {
        if (!transpose)   /* W[co][ci][tap]: kernels 9 apart */
            transform_kernels(kernel + co * c_in * 9, 1, 9, u + co * c_in, c_out * c_in, 1,
                              c_in);
        else              /* W[ci][co][2 - i][2 - j]: kernels 9 c_out apart */
            transform_kernels(kernel + co * 9 + 8, -1, 9 * c_out, u + co * c_in, c_out * c_in,
                              1, c_in);
    }
    q.u = u;

    const int64_t items = n * q.nbands;
    const double work = (double)n * (double)q.tiles_h * (double)q.tiles_w * 16.0 *
                        (double)c_in * (double)c_out;
    const int nthreads = fc_pick_threads(n_threads, work, items);
    const int64_t v_len = 16 * q.v_e, m_len = 16 * q.m_e;
    const int64_t per_thread = v_len + m_len + c_in * q.stage_len + 4 * q.ld + 64;
    /* zeroed: V and M lanes past a band's tiles are read, never used */
    float *scratch = (float *)fc_calloc(fc_mul(per_thread, nthreads), sizeof(float));
    if (scratch == NULL) {
        fc_free(u);
        return FC_ERR_NOMEM;
    }

    int nonfinite = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(| : nonfinite)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        float *v = scratch + per_thread * tid, *m = v + v_len, *stage = m + m_len;
        float *ystage = stage + c_in * q.stage_len;
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item)
            nonfinite |= run_band_cf(&q, t, item, item + 1 < i1 ? item + 1 : -1, v, m, stage,
                                     ystage);
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    fc_free(u);
    return nonfinite ? FC_WINO_NONFINITE : FC_OK;
}

/* ------------------------------------------------------------------------ */
/* Weight gradient, F(3x3, 2x2).                                             */

/* Bytes of a sub-block's transformed x and dy together (thread-local). */
#define FC_WINO_WGRAD_CHUNK_BYTES (384 * 1024)
/* Memory for the chunks' partial sums held at once. */
#define FC_WINO_PARTIAL_BYTES (64ll << 20)

typedef struct wgrad_wino {
    const fc_conv2d_params *p;
    const float *dy, *x;
    int64_t tiles_w, tiles_per_image, ntiles;
    int64_t sub;          /* tiles transformed at once (V and D fit L2) */
    int64_t chunk, nchunks;  /* tiles per partial sum: a multiple of sub */
    int64_t mat;          /* 16 * c_in * c_out: the summed products M */
    int64_t partial_len;  /* mat + c_out (dbias) */
    int64_t nr_panel, nblocks;
    int64_t stage_len;    /* channels first: a tile row's x and dy rows, pixel-major */
} wgrad_wino;

/* Channels first: rows 2 ty - pad_top .. + 3 of image img's x to
 * xs[r][iw][ci] (rows outside x are not written: their cells are NULL) and
 * dy rows 2 ty, 2 ty + 1 to ds[a][ow][co], the layout of a channels-last
 * tile row. A staged row of 28 pixels x 64 channels is 7 KiB: it stays in
 * L1 while the transforms read it. */
static void stage_tile_row_cf(const wgrad_wino *w, const fc_kernel_table *t, int64_t img,
                              int64_t ty, float *xs, float *ds)
{
    const fc_conv2d_params *p = w->p;
    const int64_t cin = p->c_in, cout = p->c_out;
    for (int r = 0; r < 4; ++r) {
        const int64_t ih = 2 * ty - p->pad_top + r;
        if ((uint64_t)ih < (uint64_t)p->h)   /* other rows' cells stay NULL */
            t->transpose(w->x + (img * cin * p->h + ih) * p->w, p->h * p->w,
                         xs + r * p->w * cin, cin, cin, p->w);
    }
    for (int a = 0; a < 2 && 2 * ty + a < p->out_h; ++a)
        t->transpose(w->dy + (img * cout * p->out_h + 2 * ty + a) * p->out_w,
                     p->out_h * p->out_w, ds + a * p->out_w * cout, cout, cout, p->out_w);
}

static void tile_coords(const wgrad_wino *w, int64_t tile, int64_t *img, int64_t *ty,
                        int64_t *tx)
{
    *img = tile / w->tiles_per_image;
    const int64_t rest = tile - *img * w->tiles_per_image;
    *ty = rest / w->tiles_w;
    *tx = rest - *ty * w->tiles_w;
}

/* Adds the products of tiles [tile0, tile0 + count) to the partial sums
 * (count <= w->sub; accumulate = 0 starts them). */
static void wgrad_sub_block(const wgrad_wino *w, const fc_kernel_table *t, int64_t tile0,
                            int64_t count, int accumulate, float *partial, float *v, float *d,
                            float *stage)
{
    const fc_conv2d_params *p = w->p;
    const int64_t cin = p->c_in, cout = p->c_out, T = w->sub;
    float *db = partial + w->mat;
    if (!accumulate)
        memset(db, 0, (size_t)cout * sizeof(float));
    /* channels first: the staged tile row (xs, ds) stands in for the image */
    float *xs = stage, *ds = stage + 4 * p->w * cin;
    int64_t staged = -1;   /* img * tiles_h + ty of the staged tile row */
    for (int64_t i = 0; i < count; ++i) {
        int64_t img, ty, tx;
        tile_coords(w, tile0 + i, &img, &ty, &tx);
        const int64_t r0 = 2 * ty - p->pad_top, c0 = 2 * tx - p->pad_left;
        /* the tile's rows: x row r0 + r at x_img row x_row0 + r, dy row
         * 2 ty + a at dy_img row dy_row0 + a */
        const float *x_img = w->x + img * p->h * p->w * cin;
        const float *dy_img = w->dy + img * p->out_h * p->out_w * cout;
        int64_t x_row0 = r0, dy_row0 = 2 * ty;
        if (p->channels_first) {
            const int64_t key = tile0 + i - tx;
            if (key != staged) {
                stage_tile_row_cf(w, t, img, ty, xs, ds);
                staged = key;
            }
            x_img = xs;
            dy_img = ds;
            x_row0 = dy_row0 = 0;
        }
        const float *cells[16];
        for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c) {
                const int64_t ih = r0 + r, iw = c0 + c;
                cells[r * 4 + c] = ((uint64_t)ih < (uint64_t)p->h && (uint64_t)iw < (uint64_t)p->w)
                                       ? x_img + ((x_row0 + r) * p->w + iw) * cin
                                       : NULL;
            }
        t->wino_input(cells, cin, v + i * cin, T * cin);
        const float *g[4];
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
                const int64_t oh = 2 * ty + a, ow = 2 * tx + b;
                g[a * 2 + b] = (oh < p->out_h && ow < p->out_w)
                                   ? dy_img + ((dy_row0 + a) * p->out_w + ow) * cout
                                   : NULL;
                if (g[a * 2 + b] != NULL)
                    for (int64_t ch = 0; ch < cout; ++ch)
                        db[ch] += g[a * 2 + b][ch];
            }
        t->wino_dy(g, cout, d + i * cout, T * cout);
    }
    /* M[e] (cin x cout) += V[e]^T D[e] over these tiles. */
    const int64_t npanels = ceil_div(cout, w->nr_panel);
    for (int e = 0; e < 16; ++e)
        for (int64_t panel = 0; panel < npanels; ++panel) {
            const int64_t col0 = panel * w->nr_panel;
            const int64_t nr = min64(w->nr_panel, cout - col0);
            const int nv = (int)ceil_div(nr, t->vl);
            for (int64_t blk = 0; blk < w->nblocks; ++blk) {
                const int64_t k0 = blk * (cin / w->nblocks) + min64(blk, cin % w->nblocks);
                const int mr = (int)(cin / w->nblocks + (blk < cin % w->nblocks ? 1 : 0));
                const float *a_run = v + e * T * cin;
                const float *d_run = d + e * T * cout;
                fc_wgrad_args args;
                args.nruns = 1;
                args.a = &a_run;
                args.d = &d_run;
                args.count = &count;
                args.a_stride = cin;
                args.d_stride = cout;
                args.a_off = k0;
                args.d_off = col0;
                args.nr = nr;
                args.out = partial + ((int64_t)e * cin + k0) * cout + col0;
                args.ldo = cout;
                args.mr = mr;
                args.nv = nv;
                args.accumulate = accumulate;
                fc_wgrad_fn fn = t->wgrad[mr][nv][nr % t->vl != 0];
                (fn ? fn : t->wgrad_any)(&args);
            }
        }
}

/* Partial sums of one chunk: its sub-blocks in order. */
static void wgrad_chunk(const wgrad_wino *w, const fc_kernel_table *t, int64_t chunk,
                        float *partial, float *v, float *d, float *stage)
{
    const int64_t first = chunk * w->chunk, end = min64(first + w->chunk, w->ntiles);
    for (int64_t tile0 = first; tile0 < end; tile0 += w->sub)
        wgrad_sub_block(w, t, tile0, min64(w->sub, end - tile0), tile0 > first, partial, v, d,
                        stage);
}

int fc_winograd_wgrad3x3(const fc_conv2d_params *p, const float *dy, const float *x,
                         float *dkernel, float *dbias)
{
    const fc_kernel_table *t = fc_active_kernels();
    const int64_t cin = p->c_in, cout = p->c_out;
    wgrad_wino w;
    memset(&w, 0, sizeof w);
    w.p = p;
    w.dy = dy;
    w.x = x;
    w.tiles_w = ceil_div(p->out_w, 2);
    w.tiles_per_image = ceil_div(p->out_h, 2) * w.tiles_w;
    w.ntiles = p->n * w.tiles_per_image;
    /* Sizes depend on the problem only: results must not depend on the
     * thread count. Sub-blocks keep V and D in L2; chunks (about 32 per
     * call) are big enough that their partial sums (16 x c_in x c_out each)
     * cost little to write and fold. */
    w.sub = max64(8, FC_WINO_WGRAD_CHUNK_BYTES / (16 * (cin + cout) * (int64_t)sizeof(float)));
    w.chunk = min64(max64(1, ceil_div(w.ntiles / 32, w.sub)), 64) * w.sub;
    w.nchunks = ceil_div(w.ntiles, w.chunk);
    w.mat = 16 * cin * cout;
    w.partial_len = w.mat + cout;
    w.nr_panel = (int64_t)t->nv_max * t->vl;
    w.stage_len = p->channels_first ? 4 * p->w * cin + 2 * p->out_w * cout : 0;
    {
        const int nv_full = (int)ceil_div(min64(cout, w.nr_panel), t->vl);
        w.nblocks = ceil_div(cin, t->wgrad_mr_max[nv_full]);
    }

    const double work = (double)w.ntiles * 16.0 * (double)cin * (double)cout;
    const int nthreads = fc_pick_threads(p->n_threads, work, w.nchunks);
    int64_t wave = max64(1, FC_WINO_PARTIAL_BYTES / (w.partial_len * 4));
    wave = min64(wave, w.nchunks);
    const int64_t per_thread = 16 * w.sub * (cin + cout) + w.stage_len + 64;
    float *scratch = (float *)fc_calloc(fc_mul(per_thread, nthreads), sizeof(float));
    float *partials = (float *)fc_calloc(fc_mul(wave, w.partial_len), sizeof(float));
    float *sum = (float *)fc_calloc(w.partial_len, sizeof(float));
    if (scratch == NULL || partials == NULL || sum == NULL) {
        fc_free(scratch);
        fc_free(partials);
        fc_free(sum);
        return FC_ERR_NOMEM;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        float *v = scratch + per_thread * tid;
        float *d = v + 16 * w.sub * cin, *stage = d + 16 * w.sub * cout;
        for (int64_t first = 0; first < w.nchunks; first += wave) {
            const int64_t nwave = min64(wave, w.nchunks - first);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t c = 0; c < nwave; ++c)
                wgrad_chunk(&w, t, first + c, partials + c * w.partial_len, v, d, stage);
            /* Fold this wave's partials into the sum, in chunk order. */
            int64_t e0, e1;
            fc_thread_range(w.partial_len, FC_TEAM_SIZE(), tid, &e0, &e1);
            for (int64_t c = 0; c < nwave; ++c)
                fc_fold(sum, partials + c * w.partial_len, e0, e1, first + c == 0);
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        /* dW[i][j][ci][co] = (G^T M G)[i][j], G = [1 0 0; .5 .5 .5; .5 -.5 .5;
         * 0 0 1], for this thread's share of (ci, co); HWIO, or OIHW for a
         * channels-first layer. */
        static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
        int64_t q0, q1;
        fc_thread_range(cin * cout, FC_TEAM_SIZE(), tid, &q0, &q1);
        for (int64_t q = q0; q < q1; ++q) {
            double m[16], tmp[3][4];
            for (int e = 0; e < 16; ++e)
                m[e] = sum[e * cin * cout + q];
            for (int i = 0; i < 3; ++i)
                for (int b = 0; b < 4; ++b)
                    tmp[i][b] = G[0][i] * m[0 * 4 + b] + G[1][i] * m[1 * 4 + b] +
                                G[2][i] * m[2 * 4 + b] + G[3][i] * m[3 * 4 + b];
            const int64_t ci = q / cout, co = q - ci * cout;
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j)
                    dkernel[p->channels_first ? (co * cin + ci) * 9 + i * 3 + j
                                              : (i * 3 + j) * cin * cout + q] =
                        (float)(tmp[i][0] * G[0][j] + tmp[i][1] * G[1][j] +
                                tmp[i][2] * G[2][j] + tmp[i][3] * G[3][j]);
        }
        fc_fpmode_leave(fp);
    }
    if (dbias != NULL)
        memcpy(dbias, sum + w.mat, (size_t)cout * sizeof(float));
    fc_free(scratch);
    fc_free(partials);
    fc_free(sum);
    return FC_OK;
}
