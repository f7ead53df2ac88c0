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
 * (the first layer) the taps are gathered into a small im2col tile instead,
 * so K = taps x c_in runs as one long loop.
 *
 * Backward-kernel is a reduction over output pixels. Pixels are cut into
 * chunks of whole output rows whose size depends only on the problem, each
 * chunk's partial dW is computed by whichever thread, and the partials are
 * added in chunk order: the result is bitwise identical for any number of
 * threads.
 */
#include <string.h>

#include "fc_internal.h"

/* First-layer path: gather taps into an im2col tile when c_in is this small. */
#define FC_GATHER_MAX_CIN 4
/* K is split into blocks of this many floats for single-tap problems (1x1
 * convolutions, dense layers) so that a B block stays in L2. */
#define FC_KC_MAX 512
/* Target pixels per weight-gradient chunk (rounded to whole output rows). */
#define FC_WGRAD_CHUNK_PIXELS 1024
/* Row blocks of the weight-gradient per work item. */
#define FC_WGRAD_BLOCKS_PER_ITEM 8
/* Memory for weight-gradient partials held at once. */
#define FC_WGRAD_PARTIAL_BYTES (64ll << 20)

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int check_params(const fc_conv2d_params *p)
{
    if (p == NULL)
        return FC_ERR_ARG;
    if (p->n < 0 || p->h < 1 || p->w < 1 || p->c_in < 0 || p->kh < 1 || p->kw < 1 ||
        p->c_out < 0 || p->out_h < 1 || p->out_w < 1 || p->stride_h < 1 ||
        p->stride_w < 1 || p->dilation_h < 1 || p->dilation_w < 1 || p->pad_top < 0 ||
        p->pad_left < 0)
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

static fc_igemm_fn igemm_for(const fc_kernel_table *t, int nv, int tail)
{
    fc_igemm_fn fn = t->igemm[nv][tail];
    return fn ? fn : t->igemm_any;
}

static fc_wgrad_fn wgrad_for(const fc_kernel_table *t, int mr, int nv, int tail)
{
    fc_wgrad_fn fn = t->wgrad[mr][nv][tail];
    return fn ? fn : t->wgrad_any;
}

/* Cache-blocked transpose of a rows x cols matrix (src row stride cols)
 * into dst (row stride rows), for the block rows [r0, r1). */
static void transpose_rows(const float *src, float *dst, int64_t rows, int64_t cols,
                           int64_t r0, int64_t r1)
{
    enum { B = 32 };
    for (int64_t i0 = r0; i0 < r1; i0 += B)
        for (int64_t j0 = 0; j0 < cols; j0 += B)
            for (int64_t i = i0; i < min64(i0 + B, r1); ++i)
                for (int64_t j = j0; j < min64(j0 + B, cols); ++j)
                    dst[j * rows + i] = src[i * cols + j];
}

/* ------------------------------------------------------------------------ */
/* Shared driver of the two indirect GEMMs.                                  */

typedef struct igemm_problem {
    const fc_conv2d_params *p;
    int backward;            /* 0: forward, 1: backward-input */
    const float *a_src;      /* x (forward) or dy (backward) */
    const float *b_src;      /* kernel (forward) or per-tap transposed kernel */
    const float *bias;
    float *out;
    int64_t m;               /* output rows of the GEMM (pixels) */
    int64_t n_cols;          /* columns (c_out forward, c_in backward) */
    int64_t k_row;           /* floats per A row of one tap */
    int64_t ntaps;           /* taps per pixel in the pointer table */
    int gather;              /* forward only: im2col tile instead of taps */
    int64_t kc;              /* K block */
    int64_t nkb;             /* number of K blocks */
    const int64_t *w_order;  /* backward: input columns in stride-phase order */
    const float *zero;       /* a zero row of at least k_row floats */
} igemm_problem;

/* Decompose GEMM row m into image, row and column of the output pixel. */
static void pixel_of(const igemm_problem *g, int64_t m, int64_t *img, int64_t *row,
                     int64_t *col)
{
    const fc_conv2d_params *p = g->p;
    const int64_t hh = g->backward ? p->h : p->out_h;
    const int64_t ww = g->backward ? p->w : p->out_w;
    *img = m / (hh * ww);
    const int64_t rem = m - *img * hh * ww;
    *row = rem / ww;
    *col = rem - *row * ww;
    if (g->backward)
        *col = g->w_order[*col];
}

/* A row pointer for tap (i, j) of pixel (img, row, col), or NULL in padding. */
static const float *tap_row(const igemm_problem *g, int64_t img, int64_t row, int64_t col,
                            int64_t i, int64_t j)
{
    const fc_conv2d_params *p = g->p;
    if (!g->backward) {
        const int64_t ih = row * p->stride_h - p->pad_top + i * p->dilation_h;
        const int64_t iw = col * p->stride_w - p->pad_left + j * p->dilation_w;
        if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w)
            return NULL;
        return g->a_src + ((img * p->h + ih) * p->w + iw) * p->c_in;
    }
    /* dx[row, col] receives dy[oh, ow] through tap (i, j) when
     * oh * s - pad + i * d == row, i.e. oh = (row + pad - i * d) / s exactly. */
    const int64_t nh = row + p->pad_top - i * p->dilation_h;
    const int64_t nw = col + p->pad_left - j * p->dilation_w;
    if (nh < 0 || nw < 0 || nh % p->stride_h != 0 || nw % p->stride_w != 0)
        return NULL;
    const int64_t oh = nh / p->stride_h, ow = nw / p->stride_w;
    if (oh >= p->out_h || ow >= p->out_w)
        return NULL;
    return g->a_src + ((img * p->out_h + oh) * p->out_w + ow) * p->c_out;
}

typedef struct igemm_scratch {
    const float **a;   /* [ntaps * mr] */
    const float **b;   /* [ntaps] */
    int64_t *tap;      /* [ntaps] live tap indices */
    float **c;         /* [mr] */
    float *gather;     /* [mr * k_row] when gathering */
} igemm_scratch;

/* Fill the pointer table of one tile; returns the number of live taps. */
static int64_t build_tile(const igemm_problem *g, int mr, int64_t tile, int64_t k0,
                          igemm_scratch *s, int64_t img[], int64_t row[], int64_t col[],
                          int valid[])
{
    const fc_conv2d_params *p = g->p;
    for (int r = 0; r < mr; ++r) {
        const int64_t m = tile * mr + r;
        valid[r] = m < g->m;
        if (valid[r])
            pixel_of(g, m, &img[r], &row[r], &col[r]);
    }
    if (g->gather) {
        /* im2col of this tile: row r holds taps x c_in floats. */
        for (int r = 0; r < mr; ++r) {
            float *dst = s->gather + r * g->k_row;
            for (int64_t i = 0; i < p->kh; ++i)
                for (int64_t j = 0; j < p->kw; ++j, dst += p->c_in) {
                    const float *src =
                        valid[r] ? tap_row(g, img[r], row[r], col[r], i, j) : NULL;
                    if (src)
                        memcpy(dst, src, (size_t)p->c_in * sizeof(float));
                    else
                        memset(dst, 0, (size_t)p->c_in * sizeof(float));
                }
            s->a[r] = s->gather + r * g->k_row + k0;
        }
        s->tap[0] = 0;
        return 1;
    }
    int64_t live = 0;
    for (int64_t i = 0; i < p->kh; ++i)
        for (int64_t j = 0; j < p->kw; ++j) {
            int any = 0;
            const float **a = s->a + live * mr;
            for (int r = 0; r < mr; ++r) {
                const float *src = valid[r] ? tap_row(g, img[r], row[r], col[r], i, j) : NULL;
                any |= src != NULL;
                a[r] = src ? src + k0 : g->zero;
            }
            if (any)
                s->tap[live++] = i * p->kw + j;
        }
    return live;
}

static void run_igemm_items(const igemm_problem *g, const fc_kernel_table *t, int nthreads,
                            int tid, igemm_scratch *s)
{
    const fc_conv2d_params *p = g->p;
    const int mr = t->igemm_mr;
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    const int64_t ntiles = ceil_div(g->m, mr);
    const int64_t npanels = ceil_div(g->n_cols, nr_panel);
    int64_t begin, end;
    /* Panel-major items: a thread's consecutive items share one B panel,
     * which then stays in cache (dense layers have wide B, few pixels). */
    fc_thread_range(ntiles * npanels, nthreads, tid, &begin, &end);
    int64_t img[FC_MAX_MR], row[FC_MAX_MR], col[FC_MAX_MR];
    int valid[FC_MAX_MR];

    for (int64_t kb = 0; kb < g->nkb; ++kb) {
        const int64_t k0 = kb * g->kc;
        const int64_t kc = min64(g->kc, g->k_row - k0);
        for (int64_t item = begin; item < end; ++item) {
            const int64_t panel = item / ntiles, tile = item - panel * ntiles;
            const int64_t c0 = panel * nr_panel;
            const int64_t nr = min64(nr_panel, g->n_cols - c0);
            const int nv = (int)ceil_div(nr, t->vl);
            const int tail = nr % t->vl != 0;
            const int64_t live = build_tile(g, mr, tile, k0, s, img, row, col, valid);
            for (int64_t l = 0; l < live; ++l) {
                const int64_t tap = s->tap[l];
                if (g->backward)
                    s->b[l] = g->b_src + (tap * p->c_out + k0) * p->c_in + c0;
                else
                    s->b[l] = g->b_src + (tap * p->c_in + k0) * p->c_out + c0;
            }
            for (int r = 0; r < mr; ++r) {
                float *dst = NULL;
                if (valid[r]) {
                    const int64_t hh = g->backward ? p->h : p->out_h;
                    const int64_t ww = g->backward ? p->w : p->out_w;
                    dst = g->out + ((img[r] * hh + row[r]) * ww + col[r]) * g->n_cols + c0;
                }
                s->c[r] = dst;
            }
            fc_igemm_args args;
            args.ntaps = live;
            args.kc = kc;
            args.a = s->a;
            args.b = s->b;
            args.ldb = g->n_cols;
            args.nr = nr;
            args.bias = g->bias ? g->bias + c0 : NULL;
            args.c = s->c;
            args.mr = mr;
            args.nv = nv;
            args.accumulate = kb > 0;
            args.relu = !g->backward && p->relu && kb == g->nkb - 1;
            igemm_for(t, nv, tail)(&args);
        }
    }
}

/* Runs the GEMM; for backward, first packs the transposed kernel. */
static int igemm_run(igemm_problem *g, const fc_kernel_table *t, float *packed_b)
{
    const fc_conv2d_params *p = g->p;
    const int mr = t->igemm_mr;
    const int64_t ntiles = ceil_div(g->m, mr);
    const int64_t npanels = ceil_div(g->n_cols, (int64_t)t->nv_max * t->vl);
    const double work = (double)g->m * (double)(p->kh * p->kw) * (double)p->c_in *
                        (double)p->c_out;
    const int nthreads = fc_pick_threads(p->n_threads, work, ntiles * npanels);

    /* Per-thread scratch, carved out of one block. */
    const int64_t tbl = g->ntaps * mr;
    const int64_t per_thread = tbl + g->ntaps + g->ntaps + mr + 8 +
                               (g->gather ? (int64_t)mr * g->k_row + 16 : 0);
    char *scratch = (char *)fc_calloc(fc_mul(per_thread, nthreads), 8);
    if (scratch == NULL)
        return FC_ERR_NOMEM;

    const int64_t taps = p->kh * p->kw;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        char *mine = scratch + (size_t)(per_thread * 8) * (size_t)tid;
        igemm_scratch s;
        s.a = (const float **)mine;
        s.b = (const float **)(mine + tbl * 8);
        s.tap = (int64_t *)(mine + (tbl + g->ntaps) * 8);
        s.c = (float **)(mine + (tbl + 2 * g->ntaps) * 8);
        s.gather = g->gather ? (float *)(mine + (tbl + 2 * g->ntaps + mr + 8) * 8) : NULL;

        if (packed_b != NULL) {
            /* Kernel (taps, c_in, c_out) -> (taps, c_out, c_in). */
            int64_t b0, b1;
            fc_thread_range(taps * p->c_in, nthreads, tid, &b0, &b1);
            for (int64_t tap = 0; tap < taps; ++tap) {
                const int64_t r0 = max64(b0 - tap * p->c_in, 0);
                const int64_t r1 = min64(b1 - tap * p->c_in, p->c_in);
                if (r0 < r1)
                    transpose_rows(g->b_src + tap * p->c_in * p->c_out,
                                   packed_b + tap * p->c_in * p->c_out, p->c_in, p->c_out,
                                   r0, r1);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        igemm_problem local = *g;
        if (packed_b != NULL)
            local.b_src = packed_b;
        run_igemm_items(&local, t, nthreads, tid, &s);
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    return FC_OK;
}

int fc_conv2d_forward(const fc_conv2d_params *p, const float *x, const float *kernel,
                      const float *bias, float *y)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c_out == 0)
        return FC_OK;
    if (x == NULL || kernel == NULL || y == NULL)
        return FC_ERR_ARG;
    const fc_kernel_table *t = fc_active_kernels();
    const int64_t taps = p->kh * p->kw;

    igemm_problem g;
    memset(&g, 0, sizeof g);
    g.p = p;
    g.backward = 0;
    g.a_src = x;
    g.b_src = kernel;
    g.bias = bias;
    g.out = y;
    g.m = p->n * p->out_h * p->out_w;
    g.n_cols = p->c_out;
    g.gather = taps > 1 && p->c_in <= FC_GATHER_MAX_CIN;
    g.k_row = g.gather ? taps * p->c_in : p->c_in;
    g.ntaps = g.gather ? 1 : taps;
    g.kc = (g.ntaps == 1 && g.k_row > FC_KC_MAX) ? FC_KC_MAX : g.k_row;
    g.nkb = g.kc > 0 ? ceil_div(g.k_row, g.kc) : 1;

    float *zero = (float *)fc_calloc(max64(g.k_row, 1) + 64, sizeof(float));
    if (zero == NULL)
        return FC_ERR_NOMEM;
    g.zero = zero;
    status = igemm_run(&g, t, NULL);
    fc_free(zero);
    return status;
}

int fc_conv2d_backward_input(const fc_conv2d_params *p, const float *dy, const float *kernel,
                             float *dx)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->n == 0 || p->c_in == 0)
        return FC_OK;
    if (dy == NULL || kernel == NULL || dx == NULL)
        return FC_ERR_ARG;
    const fc_kernel_table *t = fc_active_kernels();
    const int64_t taps = p->kh * p->kw;

    igemm_problem g;
    memset(&g, 0, sizeof g);
    g.p = p;
    g.backward = 1;
    g.a_src = dy;
    g.b_src = kernel;
    g.out = dx;
    g.m = p->n * p->h * p->w;
    g.n_cols = p->c_in;
    g.k_row = p->c_out;
    g.ntaps = taps;
    g.kc = (taps == 1 && g.k_row > FC_KC_MAX) ? FC_KC_MAX : g.k_row;
    g.nkb = g.kc > 0 ? ceil_div(g.k_row, g.kc) : 1;

    /* Input columns in stride-phase order (0, s, 2s, ..., 1, 1 + s, ...): a
     * tile of neighbours then shares which taps are live. */
    int64_t *w_order = (int64_t *)fc_calloc(p->w, sizeof(int64_t));
    float *zero = (float *)fc_calloc(max64(g.k_row, 1) + 64, sizeof(float));
    float *packed = (float *)fc_calloc(fc_mul(fc_mul(taps, p->c_in), max64(p->c_out, 1)) + 16,
                                       sizeof(float));
    if (w_order == NULL || zero == NULL || packed == NULL) {
        fc_free(w_order);
        fc_free(zero);
        fc_free(packed);
        return FC_ERR_NOMEM;
    }
    int64_t q = 0;
    for (int64_t phase = 0; phase < min64(p->stride_w, p->w); ++phase)
        for (int64_t col = phase; col < p->w; col += p->stride_w)
            w_order[q++] = col;
    g.w_order = w_order;
    g.zero = zero;
    status = igemm_run(&g, t, packed);
    fc_free(w_order);
    fc_free(zero);
    fc_free(packed);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Backward-kernel: chunked, order-fixed reduction over output rows.         */

typedef struct wgrad_plan {
    const fc_conv2d_params *p;
    const float *dy, *x;
    int gather;
    int64_t k_rows;          /* rows of dW per tap (c_in), or taps x c_in gathered */
    int64_t row_tiles;       /* tap-level work units: taps, or 1 when gathering */
    int64_t rows_per_chunk;  /* output rows (n * out_h) per chunk */
    int64_t nchunks;
    int64_t nblocks;         /* row blocks of dW per tap unit */
    int64_t nitems_per_chunk;
    int64_t partial_len;     /* floats per chunk partial: dW then dbias */
    int64_t nr_panel;
} wgrad_plan;

/* Start and size of balanced row block b of n rows in nb blocks. */
static void block_of(int64_t n, int64_t nb, int64_t b, int64_t *start, int64_t *size)
{
    const int64_t base = n / nb, extra = n % nb;
    *start = b * base + min64(b, extra);
    *size = base + (b < extra ? 1 : 0);
}

typedef struct wgrad_scratch {
    const float **a;
    const float **d;
    int64_t *count;
    float *gather;
} wgrad_scratch;

static void wgrad_item(const wgrad_plan *w, const fc_kernel_table *t, int64_t chunk,
                       int64_t unit, int64_t group, float *partial, wgrad_scratch *s,
                       int want_bias)
{
    const fc_conv2d_params *p = w->p;
    const int64_t row0 = chunk * w->rows_per_chunk;
    const int64_t row1 = min64(row0 + w->rows_per_chunk, p->n * p->out_h);
    int64_t nruns = 0;
    int64_t a_stride, tap_rows0;

    if (w->gather) {
        /* im2col of the chunk: one run over its contiguous output pixels. */
        const int64_t npix = (row1 - row0) * p->out_w;
        float *dst = s->gather;
        for (int64_t r = row0; r < row1; ++r) {
            const int64_t img = r / p->out_h, oh = r - img * p->out_h;
            for (int64_t ow = 0; ow < p->out_w; ++ow)
                for (int64_t i = 0; i < p->kh; ++i)
                    for (int64_t j = 0; j < p->kw; ++j, dst += p->c_in) {
                        const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                        const int64_t iw = ow * p->stride_w - p->pad_left + j * p->dilation_w;
                        if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w)
                            memset(dst, 0, (size_t)p->c_in * sizeof(float));
                        else
                            memcpy(dst, w->x + ((img * p->h + ih) * p->w + iw) * p->c_in,
                                   (size_t)p->c_in * sizeof(float));
                    }
        }
        s->a[0] = s->gather;
        s->d[0] = w->dy + row0 * p->out_w * p->c_out;
        s->count[0] = npix;
        nruns = 1;
        a_stride = w->k_rows;
        tap_rows0 = 0;
    } else {
        const int64_t i = unit / p->kw, j = unit - i * p->kw;
        /* Output columns whose input column for tap j is inside the image:
         * 0 <= ow * s - pad + j * d < w. */
        const int64_t off = j * p->dilation_w - p->pad_left;
        const int64_t lo = off >= 0 ? 0 : ceil_div(-off, p->stride_w);
        const int64_t hi_num = p->w - 1 - off;
        const int64_t hi = hi_num < 0 ? -1 : min64(hi_num / p->stride_w, p->out_w - 1);
        for (int64_t r = row0; r < row1 && hi >= lo; ++r) {
            const int64_t img = r / p->out_h, oh = r - img * p->out_h;
            const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
            if (ih < 0 || ih >= p->h)
                continue;
            s->a[nruns] = w->x + ((img * p->h + ih) * p->w + lo * p->stride_w + off) * p->c_in;
            s->d[nruns] = w->dy + (r * p->out_w + lo) * p->c_out;
            s->count[nruns] = hi - lo + 1;
            ++nruns;
        }
        a_stride = p->stride_w * p->c_in;
        tap_rows0 = unit * p->c_in;
    }

    const int64_t b0 = group * FC_WGRAD_BLOCKS_PER_ITEM;
    const int64_t b1 = min64(b0 + FC_WGRAD_BLOCKS_PER_ITEM, w->nblocks);
    const int64_t npanels = ceil_div(p->c_out, w->nr_panel);
    for (int64_t panel = 0; panel < npanels; ++panel) {
        const int64_t c0 = panel * w->nr_panel;
        const int64_t nr = min64(w->nr_panel, p->c_out - c0);
        const int nv = (int)ceil_div(nr, t->vl);
        const int tail = nr % t->vl != 0;
        for (int64_t b = b0; b < b1; ++b) {
            int64_t k0, mr;
            block_of(w->k_rows, w->nblocks, b, &k0, &mr);
            fc_wgrad_args args;
            args.nruns = nruns;
            args.a = s->a;
            args.d = s->d;
            args.count = s->count;
            args.a_stride = a_stride;
            args.d_stride = p->c_out;
            args.nr = nr;
            args.out = partial + (tap_rows0 + k0) * p->c_out + c0;
            args.ldo = p->c_out;
            args.mr = (int)mr;
            args.nv = nv;
            /* The run pointers are shifted in place and shifted back: one
             * table serves every block and panel. */
            for (int64_t q = 0; q < nruns; ++q) {
                s->a[q] += k0;
                s->d[q] += c0;
            }
            wgrad_for(t, (int)mr, nv, tail)(&args);
            for (int64_t q = 0; q < nruns; ++q) {
                s->a[q] -= k0;
                s->d[q] -= c0;
            }
        }
    }

    if (want_bias) {
        float *db = partial + p->kh * p->kw * p->c_in * p->c_out;
        memset(db, 0, (size_t)p->c_out * sizeof(float));
        const float *d = w->dy + row0 * p->out_w * p->c_out;
        for (int64_t q = (row1 - row0) * p->out_w; q > 0; --q, d += p->c_out)
            for (int64_t c = 0; c < p->c_out; ++c)
                db[c] += d[c];
    }
}

/* dst[e] = src[e] (first chunk) or dst[e] + src[e], for e in [e0, e1). */
static void fold_range(float *FC_RESTRICT dst, const float *FC_RESTRICT src, int64_t e0,
                       int64_t e1, int first_chunk)
{
    if (first_chunk) {
        for (int64_t e = e0; e < e1; ++e)
            dst[e] = src[e];
    } else {
        for (int64_t e = e0; e < e1; ++e)
            dst[e] += src[e];
    }
}

int fc_conv2d_backward_kernel(const fc_conv2d_params *p, const float *dy, const float *x,
                              float *dkernel, float *dbias)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->c_out == 0)
        return FC_OK;
    const int64_t taps = p->kh * p->kw;
    const int64_t dk_len = taps * p->c_in * p->c_out;
    if (dkernel == NULL && dk_len > 0)
        return FC_ERR_ARG;
    if (p->n == 0) {
        if (dk_len > 0)
            memset(dkernel, 0, (size_t)dk_len * sizeof(float));
        if (dbias)
            memset(dbias, 0, (size_t)p->c_out * sizeof(float));
        return FC_OK;
    }
    if (dy == NULL || (x == NULL && p->c_in > 0))
        return FC_ERR_ARG;
    const fc_kernel_table *t = fc_active_kernels();

    wgrad_plan w;
    memset(&w, 0, sizeof w);
    w.p = p;
    w.dy = dy;
    w.x = x;
    w.gather = taps > 1 && p->c_in <= FC_GATHER_MAX_CIN;
    w.k_rows = w.gather ? taps * p->c_in : p->c_in;
    w.row_tiles = w.gather ? 1 : taps;
    w.rows_per_chunk = max64(1, FC_WGRAD_CHUNK_PIXELS / p->out_w);
    w.nchunks = ceil_div(p->n * p->out_h, w.rows_per_chunk);
    w.nr_panel = (int64_t)t->nv_max * t->vl;
    /* Row blocks sized for the widest panel's register tile. */
    {
        const int nv_full = (int)ceil_div(min64(p->c_out, w.nr_panel), t->vl);
        const int64_t mr_max = t->wgrad_mr_max[nv_full];
        w.nblocks = w.k_rows > 0 ? ceil_div(w.k_rows, mr_max) : 0;
    }
    const int64_t ngroups = max64(1, ceil_div(w.nblocks, FC_WGRAD_BLOCKS_PER_ITEM));
    w.nitems_per_chunk = w.row_tiles * ngroups;
    w.partial_len = dk_len + p->c_out;

    const int64_t chunk_pixels = w.rows_per_chunk * p->out_w;
    const double work = (double)p->n * (double)(p->out_h * p->out_w) * (double)dk_len;
    const int nthreads = fc_pick_threads(p->n_threads, work, w.nchunks * w.nitems_per_chunk);
    /* Chunks whose partials are held at once: enough to keep every thread
     * busy, within a memory budget. Does not affect the result. */
    int64_t wave = max64(1, FC_WGRAD_PARTIAL_BYTES / (w.partial_len * 4));
    wave = min64(wave, w.nchunks);

    const int64_t per_thread = 3 * w.rows_per_chunk + 8 +
                               (w.gather ? chunk_pixels * w.k_rows / 2 + 16 : 0);
    char *scratch = (char *)fc_calloc(fc_mul(per_thread, nthreads), 8);
    float *partials = (float *)fc_calloc(fc_mul(wave, w.partial_len), sizeof(float));
    if (scratch == NULL || partials == NULL) {
        fc_free(scratch);
        fc_free(partials);
        return FC_ERR_NOMEM;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        char *mine = scratch + (size_t)(per_thread * 8) * (size_t)tid;
        wgrad_scratch s;
        s.a = (const float **)mine;
        s.d = (const float **)(mine + w.rows_per_chunk * 8);
        s.count = (int64_t *)(mine + 2 * w.rows_per_chunk * 8);
        s.gather = w.gather ? (float *)(mine + (3 * w.rows_per_chunk + 8) * 8) : NULL;

        for (int64_t first = 0; first < w.nchunks; first += wave) {
            const int64_t nwave = min64(wave, w.nchunks - first);
            const int64_t nitems = nwave * w.nitems_per_chunk;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t item = 0; item < nitems; ++item) {
                const int64_t c = item / w.nitems_per_chunk;
                const int64_t rest = item - c * w.nitems_per_chunk;
                const int64_t unit = rest / ngroups, group = rest - unit * ngroups;
                wgrad_item(&w, t, first + c, unit, group, partials + c * w.partial_len, &s,
                           dbias != NULL && unit == 0 && group == 0);
            }
            /* Fold this wave's partials into the outputs, in chunk order. */
            int64_t e0, e1;
            fc_thread_range(w.partial_len, nthreads, tid, &e0, &e1);
            for (int64_t c = 0; c < nwave; ++c) {
                const float *src = partials + c * w.partial_len;
                const int first_chunk = first + c == 0;
                fold_range(dkernel, src, max64(e0, 0), min64(e1, dk_len), first_chunk);
                if (dbias != NULL)
                    fold_range(dbias, src + dk_len, max64(e0, dk_len) - dk_len, e1 - dk_len,
                               first_chunk);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    fc_free(partials);
    return FC_OK;
}
