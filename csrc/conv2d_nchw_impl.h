/*
 * conv2d_nchw_impl.h: channels-first convolutions (NCHW activations, OIHW
 * kernels) for one element type; included by conv2d_impl.h.
 *
 * The GEMMs are the transposes of the NHWC ones: rows are channels and the
 * vector lanes run over pixels, which are contiguous in NCHW; the igemm
 * micro-kernels do the arithmetic, with a bias per row.
 *   forward          y[co][pixels] = sum over taps of W_tap[co][ci] . x_tap[ci][pixels],
 *                    read in place from a padded, stride-phase-split copy of
 *                    each image (nchw_direct, nchw_direct_flat); rows too short
 *                    to fill vectors (strided layers on small maps) go through
 *                    im2col panels instead (nchw_igemm)
 *   backward-input   per stride phase, a stride-1 correlation of dy with the
 *                    taps that reach the phase, flipped, on the forward paths,
 *                    interleaved into dx (nchw_backward_input)
 *   backward-kernel  dW_tap[co][ci] = dy[co][pixels] . x_tap[pixels][ci], over a
 *                    pixel-major packed copy of each image (nchw_wgrad_gemm)
 * per group. The kernel is packed per call ([group][tap][co][ci]). 3x3
 * stride-1 layers with 16+ channels run all three by Winograd instead
 * (winograd.c), as in channels-last.
 */

#ifndef FC_NCHW_NV
#define FC_NCHW_NV 2
#endif
/* Panel columns per block of pixels: two vectors of the widest type (one
 * vector per lane group on the generic path, 16 values). */
static int FCN(nchw_tile_vectors)(const FCN(fc_kernel_table) *t)
{
    return t->vl == 1 ? t->nv_max : (int)min64(FC_NCHW_NV, t->nv_max);
}

/* Element (k, q) of the im2col matrix of image img, for k in [0, nk) with
 * k = (ci, i, j) over the channels from ch0, and q in [0, np) the output
 * pixels from flat pixel p0, goes to dst[k * ld + q]. */
static void FCN(nchw_pack_cols)(const fc_conv2d_params *p, const FC_T *x, int64_t img,
                                int64_t ch0, int64_t nk, int64_t p0, int64_t np,
                                FC_T *FC_RESTRICT dst, int64_t ld)
{
    const int64_t taps = p->kh * p->kw, hw = p->h * p->w, s = p->stride_w;
    const FC_T *image = x + (img * p->c_in + ch0) * hw;
    for (int64_t q0 = 0; q0 < np;) {
        /* one output row's run of the block: pixels q0 .. q0 + len */
        const int64_t pix = p0 + q0, oh = pix / p->out_w, ow0 = pix - oh * p->out_w;
        const int64_t len = min64(p->out_w - ow0, np - q0);
        for (int64_t k = 0; k < nk; ++k) {
            const int64_t ci = k / taps, tap = k - ci * taps;
            const int64_t i = tap / p->kw, j = tap - i * p->kw;
            const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
            const int64_t iw0 = ow0 * s - p->pad_left + j * p->dilation_w;
            FC_T *out = dst + k * ld + q0;
            /* q reads column iw0 + q * s: inside the row for q in [lo, hi) */
            int64_t lo = len, hi = len;
            if ((uint64_t)ih < (uint64_t)p->h && iw0 < p->w) {
                lo = iw0 >= 0 ? 0 : min64(ceil_div(-iw0, s), len);
                hi = max64(lo, min64(len, (p->w - 1 - iw0) / s + 1));
            }
            const FC_T *row = image + (ci * p->h + (lo < hi ? ih : 0)) * p->w;
            int64_t q = 0;
            for (; q < lo; ++q)
                out[q] = 0;
            for (; q < hi; ++q)
                out[q] = row[iw0 + q * s];
            for (; q < len; ++q)
                out[q] = 0;
        }
        q0 += len;
    }
}

/* One channels-first GEMM pass over a block of pixels: for every tile of
 * rows, y rows [r0, r1) (channels, from out_ch0 of image img) of the np
 * pixels from p0 = sum over the nk rows of the panel (ldb values apart) of
 * A[row][k] * panel[k][pixels]; A rows are a_ld apart from a. */
typedef struct FCN(nchw_gemm) {
    const FC_T *a;           /* row 0 of A */
    int64_t a_ld;
    const FC_T *panel;
    int64_t ldb;
    int64_t nk;              /* K */
    int64_t kc;              /* K block */
    int64_t rows;            /* output channels (A rows) */
    int mr;
    const FC_T *bias;        /* per row, or NULL */
    int relu;
    FC_T *out;               /* row 0, pixel 0 of the block */
    int64_t out_ld;          /* values between output rows (pixels per plane) */
    int64_t np;
} FCN(nchw_gemm);

static void FCN(nchw_gemm_run)(const FCN(nchw_gemm) *q, const FCN(fc_kernel_table) *t,
                               const FC_T **a, FC_T **c)
{
    const int nv = (int)ceil_div(q->np, t->vl);
    const int tail = q->np % t->vl != 0;
    const int64_t ntile = ceil_div(q->rows, q->mr);
    for (int64_t k0 = 0; k0 < q->nk; k0 += q->kc) {
        const int64_t kc = min64(q->kc, q->nk - k0);
        const FC_T *b = q->panel + k0 * q->ldb;
        const int last = k0 + kc >= q->nk;
        for (int64_t tile = 0; tile < ntile; ++tile) {
            int64_t r0, rows;
            block_of(q->rows, ntile, tile, &r0, &rows);
            for (int64_t r = 0; r < rows; ++r) {
                a[r] = q->a + (r0 + r) * q->a_ld + k0;
                c[r] = q->out + (r0 + r) * q->out_ld;
            }
            FCN(fc_igemm_args) args = {0};
            args.ntaps = 1;
            args.kc = kc;
            args.a = a;
            args.b = &b;
            args.ldb = q->ldb;
            args.nr = q->np;
            args.bias = q->bias ? q->bias + r0 : NULL;
            args.bias_rows = q->bias != NULL;
            args.c = c;
            args.mr = (int)rows;
            args.nv = nv;
            args.accumulate = k0 > 0;
            args.relu = last ? q->relu : 0;
            FCN(igemm_for)(t, (int)rows, nv, tail)(&args);
        }
    }
}

/* K blocks whose panel rows (kc x ldb values) stay within L1. */
static int64_t FCN(nchw_kc)(int64_t nk, int64_t ldb)
{
    const int64_t kc_max = max64(1, FC_B_BLOCK_BYTES / (ldb * (int64_t)sizeof(FC_T)));
    const int64_t nb = ceil_div(max64(nk, 1), kc_max);
    return ceil_div(max64(nk, 1), nb);
}

/*
 * Forward of a channels-first layer through im2col panels, for outputs whose
 * rows are too short to fill the direct paths' vectors: work items are
 * (image, group, block of output pixels across rows), each block packed into
 * the thread's panel and multiplied by the group's rows of the OIHW kernel.
 */
static int FCN(nchw_igemm)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                           const FC_T *x, const FC_T *kernel, const FC_T *bias, int relu,
                           FC_T *y)
{
    const int64_t groups = groups_of(p), taps = p->kh * p->kw;
    const int64_t rows = p->c_out / groups;   /* output channels per group */
    const int64_t nk = p->c_in / groups * taps;
    const int64_t pixels = p->out_h * p->out_w;
    const int nv = FCN(nchw_tile_vectors)(t);
    const int mr = t->igemm_mr[nv];
    const int64_t pb = (int64_t)nv * t->vl;
    const int64_t nblk = ceil_div(pixels, pb);
    const int64_t items = p->n * groups * nblk;
    const double work = (double)p->n * (double)pixels * (double)nk * (double)p->c_out;
    const int nthreads = fc_pick_threads(p->n_threads, work, items);
    const int64_t panel_len = fc_mul(max64(nk, 1), pb);
    const int64_t per_thread = panel_len + 64;   /* values, with slack */
    FC_T *panels = (FC_T *)fc_calloc(fc_mul(per_thread, nthreads), sizeof(FC_T));
    if (panels == NULL)
        return FC_ERR_NOMEM;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        FC_T *panel = panels + per_thread * tid;
        const FC_T *a_rows[FC_MAX_MR];
        FC_T *c_rows[FC_MAX_MR];
        int64_t i0, i1;
        fc_thread_range(items, FC_TEAM_SIZE(), tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t img = item / (groups * nblk), rest = item - img * groups * nblk;
            const int64_t grp = rest / nblk, blk = rest - grp * nblk;
            const int64_t p0 = blk * pb, np = min64(pb, pixels - p0);
            FCN(nchw_pack_cols)(p, x, img, grp * (nk / taps), nk, p0, np, panel, pb);
            FCN(nchw_gemm) q;
            q.a = kernel + grp * rows * nk;
            q.a_ld = nk;
            q.panel = panel;
            q.ldb = pb;
            q.nk = nk;
            q.kc = FCN(nchw_kc)(nk, pb);
            q.rows = rows;
            q.mr = mr;
            q.bias = bias ? bias + grp * rows : NULL;
            q.relu = relu;
            q.out = y + (img * p->c_out + grp * rows) * pixels + p0;
            q.out_ld = pixels;
            q.np = np;
            FCN(nchw_gemm_run)(&q, t, a_rows, c_rows);
        }
        fc_fpmode_leave(fp);
    }
    fc_free(panels);
    return FC_OK;
}

/* ---- Direct paths: the igemm over a padded copy of the image ----------- */

/*
 * The padded, stride-phase-split copy of the rows of images a direct path
 * reads: value (image b, channel ch, padded row r, phase ph, q) is
 * x[ch][r - pad_top][ph + q * s - pad_left] (0 outside x), at
 * buf[((b * c + ch) * hp + r) * s + ph) * wq + q]. A tap (i, j) of output
 * pixel (oh, ow) is then padded row oh * s_h + i * d_h, phase (j * d_w) % s_w,
 * q = ow + (j * d_w) / s_w: consecutive output pixels are consecutive values.
 */
typedef struct FCN(nchw_padded) {
    int64_t c, hp, s, wq;
    int64_t img_stride;      /* c * hp * s * wq */
} FCN(nchw_padded);

/* Whether x itself has the padded copy's layout (stride 1, no padding, the
 * windows covering the image exactly): then every image but the last is
 * read in place, and only the last one, whose final row the tiles read past,
 * is copied. */
static int FCN(nchw_in_place)(const fc_conv2d_params *p, const FCN(nchw_padded) *L)
{
    return L->s == 1 && p->stride_h == 1 && p->pad_top == 0 && p->pad_left == 0 &&
           L->hp == p->h && L->wq == p->w;
}

static FCN(nchw_padded) FCN(nchw_padded_layout)(const fc_conv2d_params *p)
{
    FCN(nchw_padded) L;
    L.c = p->c_in;
    L.hp = (p->out_h - 1) * p->stride_h + (p->kh - 1) * p->dilation_h + 1;
    L.s = p->stride_w;
    L.wq = ceil_div((p->out_w - 1) * p->stride_w + (p->kw - 1) * p->dilation_w + 1, p->stride_w);
    L.img_stride = L.c * L.hp * L.s * L.wq;
    return L;
}

/* Padded rows [r0, r1) of image img into buf. Only the cells that hold x are
 * written: buf starts zeroed (fc_calloc) and receives nothing but this
 * layout's copies, so its padding cells stay zero from one image to the next. */
static void FCN(nchw_pad_rows)(const fc_conv2d_params *p, const FCN(nchw_padded) *L,
                               const FC_T *x, int64_t img, int64_t r0, int64_t r1, FC_T *buf)
{
    const int64_t s = L->s;
    const int64_t first = max64(r0, p->pad_top), last = min64(r1, p->pad_top + p->h);
    for (int64_t ch = 0; ch < L->c; ++ch) {
        const FC_T *plane = x + (img * p->c_in + ch) * p->h * p->w;
        for (int64_t r = first; r < last; ++r) {
            const FC_T *row = plane + (r - p->pad_top) * p->w;
            for (int64_t ph = 0; ph < s; ++ph) {
                FC_T *FC_RESTRICT dst = buf + ((ch * L->hp + r) * s + ph) * L->wq;
                /* q reads column iw0 + q * s: inside for q in [lo, hi) */
                const int64_t iw0 = ph - p->pad_left;
                if (iw0 >= p->w)
                    continue;
                const int64_t lo = iw0 >= 0 ? 0 : min64(ceil_div(-iw0, s), L->wq);
                const int64_t hi = max64(lo, min64(L->wq, (p->w - 1 - iw0) / s + 1));
                const FC_T *FC_RESTRICT src = row + iw0;
                if (s == 1)
                    for (int64_t q = lo; q < hi; ++q)
                        dst[q] = src[q];
                else
                    for (int64_t q = lo; q < hi; ++q)
                        dst[q] = src[q * s];
            }
        }
    }
}

/* Vectors of a direct tile along an output row, 0 when the row is so short
 * that most lanes would idle (the im2col path packs pixels across rows). */
static int FCN(nchw_direct_vectors)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t)
{
    if (t->vl == 1)
        return (int)min64(t->nv_max, p->out_w);
    const int64_t vecs = ceil_div(p->out_w, t->vl);
    if (4 * p->out_w < 3 * vecs * t->vl)
        return 0;
    return (int)min64(vecs, t->nv_max);
}

/* The OIHW kernel as [group][tap][co][ci]: the A rows of the direct paths. */
static void FCN(nchw_pack_taps)(const fc_conv2d_params *p, const FC_T *kernel, FC_T *wp)
{
    const int64_t groups = groups_of(p), cig = p->c_in / groups, cog = p->c_out / groups;
    const int64_t taps = p->kh * p->kw;
    for (int64_t co = 0; co < p->c_out; ++co) {
        const int64_t grp = co / max64(cog, 1), col = co - grp * cog;
        for (int64_t ci = 0; ci < cig; ++ci)
            for (int64_t tap = 0; tap < taps; ++tap)
                wp[((grp * taps + tap) * cog + col) * cig + ci] =
                    kernel[(co * cig + ci) * taps + tap];
    }
}

/*
 * Forward of a channels-first layer read in place from the padded copy:
 * per output-row segment, group, block of input channels and tile of
 * output channels, one igemm whose taps point into the copy (B rows: the
 * channels, a plane apart) and into the kernel packed as [group][tap][co][ci]
 * (A rows). Work items are (image, output row); each thread copies the rows
 * of an image its items need when it comes to that image.
 */
static int FCN(nchw_direct)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t, int nv,
                            const FC_T *x, const FC_T *kernel, const FC_T *bias, int relu,
                            FC_T *y)
{
    const int64_t groups = groups_of(p), cig = p->c_in / groups, cog = p->c_out / groups;
    const int64_t taps = p->kh * p->kw;
    const int mr = t->igemm_mr[nv];
    const int64_t seg = (int64_t)nv * t->vl, nseg = ceil_div(p->out_w, seg);
    const FCN(nchw_padded) L = FCN(nchw_padded_layout)(p);
    const int in_place = FCN(nchw_in_place)(p, &L);
    const int64_t ldb = L.hp * L.s * L.wq;   /* between channels of the copy */
    const int64_t kc_max = max64(1, FC_B_BLOCK_BYTES / (taps * seg * (int64_t)sizeof(FC_T)));
    const int64_t nkb = ceil_div(max64(cig, 1), kc_max);
    const int64_t ntile = ceil_div(cog, mr);
    const int64_t items = p->n * p->out_h;
    const double work = (double)items * (double)p->out_w * (double)taps * (double)cig *
                        (double)p->c_out;
    const int nthreads = fc_pick_threads(p->n_threads, work, items);
    const int64_t buf_len = L.img_stride + seg + t->vl;   /* + what tail reads pass */
    const int64_t tables = taps * FC_MAX_MR + taps;        /* pointers */
    FC_T *wp = (FC_T *)fc_malloc(fc_mul(fc_mul(p->c_out, cig), taps) + 1, sizeof(FC_T));
    FC_T *bufs = (FC_T *)fc_calloc(fc_mul(buf_len, nthreads), sizeof(FC_T));
    const FC_T **ptrs = (const FC_T **)fc_malloc(fc_mul(tables, nthreads), sizeof(FC_T *));
    if (wp == NULL || bufs == NULL || ptrs == NULL) {
        fc_free(wp);
        fc_free(bufs);
        fc_free(ptrs);
        return FC_ERR_NOMEM;
    }
    FCN(nchw_pack_taps)(p, kernel, wp);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        FC_T *copy = bufs + buf_len * tid;
        const FC_T *buf = copy;   /* the copy, or the image in place */
        const FC_T **a = ptrs + tables * tid, **b = a + taps * FC_MAX_MR;
        FC_T *c[FC_MAX_MR];
        int64_t i0, i1, have = -1;
        fc_thread_range(items, FC_TEAM_SIZE(), tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t img = item / p->out_h, oh = item - img * p->out_h;
            if (img != have) {
                /* the padded rows this thread's rows of the image read */
                const int64_t last = min64(i1 - 1, (img + 1) * p->out_h - 1) - img * p->out_h;
                if (in_place && img < p->n - 1) {
                    buf = x + img * L.img_stride;
                } else {
                    FCN(nchw_pad_rows)(p, &L, x, img, oh * p->stride_h,
                                       last * p->stride_h + (p->kh - 1) * p->dilation_h + 1,
                                       copy);
                    buf = copy;
                }
                have = img;
            }
            for (int64_t sg = 0; sg < nseg; ++sg) {
                int64_t ow0, len;
                block_of(p->out_w, nseg, sg, &ow0, &len);
                const int tail = len % t->vl != 0;
                const int nvec = (int)ceil_div(len, t->vl);
                for (int64_t grp = 0; grp < groups; ++grp)
                    for (int64_t kb = 0; kb < nkb; ++kb) {
                        int64_t k0, kc;
                        block_of(cig, nkb, kb, &k0, &kc);
                        for (int64_t tap = 0; tap < taps; ++tap) {
                            const int64_t i = tap / p->kw, j = tap - i * p->kw;
                            const int64_t col = j * p->dilation_w;
                            b[tap] = buf + (((grp * cig + k0) * L.hp + oh * p->stride_h +
                                             i * p->dilation_h) * L.s + col % L.s) * L.wq +
                                     ow0 + col / L.s;
                        }
                        for (int64_t tile = 0; tile < ntile; ++tile) {
                            int64_t r0, rows;
                            block_of(cog, ntile, tile, &r0, &rows);
                            for (int64_t tap = 0; tap < taps; ++tap)
                                for (int64_t r = 0; r < rows; ++r)
                                    a[tap * rows + r] =
                                        wp + ((grp * taps + tap) * cog + r0 + r) * cig + k0;
                            for (int64_t r = 0; r < rows; ++r)
                                c[r] = y + ((img * p->c_out + grp * cog + r0 + r) * p->out_h +
                                            oh) * p->out_w + ow0;
                            FCN(fc_igemm_args) args = {0};
                            args.ntaps = taps;
                            args.kc = kc;
                            args.a = a;
                            args.b = b;
                            args.ldb = ldb;
                            args.nr = len;
                            args.bias = bias ? bias + grp * cog + r0 : NULL;
                            args.bias_rows = bias != NULL;
                            args.c = c;
                            args.mr = (int)rows;
                            args.nv = nvec;
                            args.accumulate = kb > 0;
                            args.relu = kb == nkb - 1 ? relu : 0;
                            FCN(igemm_for)(t, (int)rows, nvec, tail)(&args);
                        }
                    }
            }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(wp);
    fc_free(bufs);
    fc_free(ptrs);
    return FC_OK;
}

/*
 * The stride-1 forward over the padded copy seen as flat rows of wq values:
 * output position f = oh * wq + ow reads the copy at f + i * d_h * wq + j * d_w
 * for tap (i, j), so a tile of consecutive positions runs across output
 * rows and fills its vectors. The positions ow >= out_w it computes too
 * (wq - out_w a row, under 10% of the lanes instead of a row's tail) are
 * dropped when the tile leaves its scratch rows for y. Work items are
 * (image, tile of positions); loop order and K blocks as nchw_direct.
 */
static int FCN(nchw_direct_flat)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                 int nv, const FC_T *x, const FC_T *kernel, const FC_T *bias,
                                 int relu, FC_T *y)
{
    const int64_t groups = groups_of(p), cig = p->c_in / groups, cog = p->c_out / groups;
    const int64_t taps = p->kh * p->kw;
    const int mr = t->igemm_mr[nv];
    const int64_t seg = (int64_t)nv * t->vl;
    const FCN(nchw_padded) L = FCN(nchw_padded_layout)(p);   /* L.s == 1 */
    const int in_place = FCN(nchw_in_place)(p, &L);
    const int64_t ldb = L.hp * L.wq;
    const int64_t f_end = (p->out_h - 1) * L.wq + p->out_w;   /* past the last output */
    const int64_t per_img = ceil_div(f_end, seg);
    const int64_t kc_max = max64(1, FC_B_BLOCK_BYTES / (taps * seg * (int64_t)sizeof(FC_T)));
    const int64_t nkb = ceil_div(max64(cig, 1), kc_max);
    const int64_t ntile = ceil_div(cog, mr);
    const int64_t items = p->n * per_img;
    const double work = (double)p->n * (double)f_end * (double)taps * (double)cig *
                        (double)p->c_out;
    const int nthreads = fc_pick_threads(p->n_threads, work, items);
    const int64_t buf_len = L.img_stride + seg + t->vl;   /* + what tail reads pass */
    const int64_t scratch_len = fc_mul(cog, seg) + t->vl; /* a group's rows of a tile */
    /* The A tables (kernel rows per tap) depend only on (group, K block,
     * tile of output channels): made once, shared by every work item. */
    const int64_t a_per = taps * mr, n_a = groups * nkb * ntile;
    FC_T *wp = (FC_T *)fc_malloc(fc_mul(fc_mul(p->c_out, cig), taps) + 1, sizeof(FC_T));
    FC_T *bufs = (FC_T *)fc_calloc(fc_mul(buf_len + scratch_len, nthreads), sizeof(FC_T));
    const FC_T **a_all = (const FC_T **)fc_malloc(fc_mul(a_per, n_a) + 1, sizeof(FC_T *));
    const FC_T **ptrs = (const FC_T **)fc_malloc(fc_mul(taps, nthreads), sizeof(FC_T *));
    if (wp == NULL || bufs == NULL || a_all == NULL || ptrs == NULL) {
        fc_free(wp);
        fc_free(bufs);
        fc_free(a_all);
        fc_free(ptrs);
        return FC_ERR_NOMEM;
    }
    FCN(nchw_pack_taps)(p, kernel, wp);
    for (int64_t grp = 0; grp < groups; ++grp)
        for (int64_t kb = 0; kb < nkb; ++kb)
            for (int64_t tile = 0; tile < ntile; ++tile) {
                int64_t k0, kc, r0, rows;
                block_of(cig, nkb, kb, &k0, &kc);
                block_of(cog, ntile, tile, &r0, &rows);
                const FC_T **a = a_all + ((grp * nkb + kb) * ntile + tile) * a_per;
                for (int64_t tap = 0; tap < taps; ++tap)
                    for (int64_t r = 0; r < rows; ++r)
                        a[tap * rows + r] = wp + ((grp * taps + tap) * cog + r0 + r) * cig + k0;
            }

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        FC_T *copy = bufs + (buf_len + scratch_len) * tid, *scratch = copy + buf_len;
        const FC_T *buf = copy;   /* the copy, or the image in place */
        const FC_T **b = ptrs + taps * tid;
        FC_T *c[FC_MAX_MR];
        int64_t i0, i1, have = -1;
        fc_thread_range(items, FC_TEAM_SIZE(), tid, &i0, &i1);
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t img = item / per_img;
            const int64_t f0 = (item - img * per_img) * seg, len = min64(seg, f_end - f0);
            if (img != have) {
                /* the padded rows this thread's positions of the image read */
                const int64_t last = min64(i1 - 1, (img + 1) * per_img - 1) - img * per_img;
                const int64_t f_last = min64(f_end, (last + 1) * seg) - 1;
                if (in_place && img < p->n - 1) {
                    buf = x + img * L.img_stride;
                } else {
                    FCN(nchw_pad_rows)(p, &L, x, img, f0 / L.wq,
                                       f_last / L.wq + (p->kh - 1) * p->dilation_h + 1, copy);
                    buf = copy;
                }
                have = img;
            }
            const int tail = len % t->vl != 0;
            const int nvec = (int)ceil_div(len, t->vl);
            for (int64_t grp = 0; grp < groups; ++grp) {
                for (int64_t kb = 0; kb < nkb; ++kb) {
                    int64_t k0, kc;
                    block_of(cig, nkb, kb, &k0, &kc);
                    for (int64_t tap = 0; tap < taps; ++tap) {
                        const int64_t i = tap / p->kw, j = tap - i * p->kw;
                        b[tap] = buf + ((grp * cig + k0) * L.hp + i * p->dilation_h) * L.wq +
                                 f0 + j * p->dilation_w;
                    }
                    for (int64_t tile = 0; tile < ntile; ++tile) {
                        int64_t r0, rows;
                        block_of(cog, ntile, tile, &r0, &rows);
                        for (int64_t r = 0; r < rows; ++r)
                            c[r] = scratch + (r0 + r) * seg;
                        FCN(fc_igemm_args) args = {0};
                        args.ntaps = taps;
                        args.kc = kc;
                        args.a = a_all + ((grp * nkb + kb) * ntile + tile) * a_per;
                        args.b = b;
                        args.ldb = ldb;
                        args.nr = len;
                        args.bias = bias ? bias + grp * cog + r0 : NULL;
                        args.bias_rows = bias != NULL;
                        args.c = c;
                        args.mr = (int)rows;
                        args.nv = nvec;
                        args.accumulate = kb > 0;
                        args.relu = kb == nkb - 1 ? relu : 0;
                        FCN(igemm_for)(t, (int)rows, nvec, tail)(&args);
                    }
                }
                /* the tile's real outputs into y: per output row it touches,
                 * the same run of every channel's scratch row */
                for (int64_t q = 0; q < len;) {
                    const int64_t f = f0 + q, oh = f / L.wq, ow = f - oh * L.wq;
                    const int64_t run = min64(len - q, L.wq - ow);
                    const int64_t n_out = ow < p->out_w ? min64(run, p->out_w - ow) : 0;
                    FC_T *FC_RESTRICT out = y + (img * p->c_out + grp * cog) * p->out_h *
                                                    p->out_w + oh * p->out_w + ow;
                    for (int64_t co = 0; co < cog; ++co) {
                        const FC_T *FC_RESTRICT src = scratch + co * seg + q;
                        FC_T *FC_RESTRICT dst = out + co * p->out_h * p->out_w;
                        for (int64_t e = 0; e < n_out; ++e)
                            dst[e] = src[e];
                    }
                    q += run;
                }
            }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(wp);
    fc_free(bufs);
    fc_free(a_all);
    fc_free(ptrs);
    return FC_OK;
}

/* A 1x1, stride-1, unpadded layer is a plain GEMM over each image's pixels:
 * seen as one row of h * w pixels, its tiles fill their vectors. */
static fc_conv2d_params FCN(nchw_flat_1x1)(const fc_conv2d_params *p)
{
    fc_conv2d_params q = *p;
    if (p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 &&
        p->pad_top == 0 && p->pad_left == 0 && p->out_h == p->h && p->out_w == p->w) {
        q.w = q.out_w = p->h * p->w;
        q.h = q.out_h = 1;
    }
    return q;
}

/* The forward of a channels-first geometry, direct when its rows fill the
 * vectors, else through im2col panels. Internal sub-problems (the phases of
 * a strided input gradient) may have negative pads: reading starts inside. */
static int FCN(nchw_forward_any)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                 const FC_T *x, const FC_T *kernel, const FC_T *bias, int relu,
                                 FC_T *y)
{
    if (p->stride_h == 1 && p->stride_w == 1)
        return FCN(nchw_direct_flat)(p, t, FCN(nchw_tile_vectors)(t), x, kernel, bias, relu, y);
    const int nv = FCN(nchw_direct_vectors)(p, t);
    if (nv > 0)
        return FCN(nchw_direct)(p, t, nv, x, kernel, bias, relu, y);
    return FCN(nchw_igemm)(p, t, x, kernel, bias, relu, y);
}

static int FCN(nchw_forward)(const fc_conv2d_params *p_user, const FCN(fc_kernel_table) *t,
                             const FC_T *x, const FC_T *kernel, const FC_T *bias, FC_T *y)
{
    const fc_conv2d_params flat = FCN(nchw_flat_1x1)(p_user);
    return FCN(nchw_forward_any)(&flat, t, x, kernel, bias, flat.relu, y);
}

/*
 * dx (+ bias, ReLU for the transposed convolution) of a channels-first
 * layer, as forwards of the direct paths. With stride 1 it is the "full"
 * correlation of dy with the kernel flipped and transposed per group (pads
 * (k - 1) * d - pad, same dilation). With stride s, the input positions of
 * each stride phase (ih = qh * s + rh, iw = qw * s + rw) receive only the
 * taps congruent to it, from consecutive dy rows and columns: a stride-1
 * correlation of dy with that sub-kernel (flipped), written to a phase plane
 * and then interleaved into dx, so no multiply meets an inserted zero.
 */
static int FCN(nchw_backward_input)(const fc_conv2d_params *p_user,
                                    const FCN(fc_kernel_table) *t, const FC_T *dy,
                                    const FC_T *kernel, const FC_T *bias, int relu, FC_T *dx)
{
    const fc_conv2d_params flat = FCN(nchw_flat_1x1)(p_user), *p = &flat;
    const int64_t groups = groups_of(p), taps = p->kh * p->kw;
    const int64_t cig = p->c_in / groups, cog = p->c_out / groups;
    const int64_t sh = p->stride_h, sw = p->stride_w;
    fc_conv2d_params q = *p;   /* the correlation over dy */
    q.h = p->out_h;
    q.w = p->out_w;
    q.c_in = p->c_out;
    q.c_out = p->c_in;
    q.stride_h = q.stride_w = 1;
    const int64_t hq_max = ceil_div(p->h, sh), wq_max = ceil_div(p->w, sw);
    const int64_t planes = p->n * p->c_in;
    int64_t *tap_list = (int64_t *)fc_malloc(p->kh + p->kw, sizeof(int64_t));
    FC_T *sub = (FC_T *)fc_malloc(fc_mul(fc_mul(p->c_in, cog), taps) + 1, sizeof(FC_T));
    FC_T *phase = sh * sw > 1 ? (FC_T *)fc_malloc(fc_mul(fc_mul(planes, hq_max), wq_max) + 1,
                                                  sizeof(FC_T))
                              : NULL;
    int status = FC_OK;
    if (tap_list == NULL || sub == NULL || (sh * sw > 1 && phase == NULL))
        status = FC_ERR_NOMEM;
    for (int64_t rh = 0; rh < min64(sh, p->h) && status == FC_OK; ++rh)
        for (int64_t rw = 0; rw < min64(sw, p->w) && status == FC_OK; ++rw) {
            int64_t off_h = 0, off_w = 0;
            int64_t *ti = tap_list, *tj = tap_list + p->kh;
            const int64_t ni = nchw_phase_taps(p->kh, sh, p->dilation_h, p->pad_top, rh, ti,
                                               &off_h);
            const int64_t nj = nchw_phase_taps(p->kw, sw, p->dilation_w, p->pad_left, rw, tj,
                                               &off_w);
            const int64_t hq = ceil_div(p->h - rh, sh), wq = ceil_div(p->w - rw, sw);
            FC_T *out = sh * sw > 1 ? phase : dx;
            if (ni == 0 || nj == 0) {
                /* no tap reaches this phase: its cells are the bias alone */
                for (int64_t pl = 0; pl < planes; ++pl) {
                    const FC_T b = bias != NULL ? bias[pl % p->c_in] : 0;
                    const FC_T v = relu && b < 0 ? 0 : b;
                    for (int64_t e = 0; e < hq * wq; ++e)
                        out[pl * hq * wq + e] = v;
                }
            } else {
                /* sub[ci][co][i'][j'] = W[co][ci][ti[ni-1-i']][tj[nj-1-j']] */
                for (int64_t ci = 0; ci < p->c_in; ++ci) {
                    const int64_t grp = ci / max64(cig, 1), cl = ci - grp * cig;
                    for (int64_t co = 0; co < cog; ++co) {
                        const FC_T *w = kernel + ((grp * cog + co) * cig + cl) * taps;
                        FC_T *o = sub + (ci * cog + co) * ni * nj;
                        for (int64_t a = 0; a < ni; ++a)
                            for (int64_t b = 0; b < nj; ++b)
                                o[a * nj + b] = w[ti[ni - 1 - a] * p->kw + tj[nj - 1 - b]];
                    }
                }
                q.kh = ni;
                q.kw = nj;
                q.dilation_h = p->dilation_h / gcd64(sh, p->dilation_h);
                q.dilation_w = p->dilation_w / gcd64(sw, p->dilation_w);
                q.pad_top = -off_h;
                q.pad_left = -off_w;
                q.out_h = hq;
                q.out_w = wq;
                status = FCN(nchw_forward_any)(&q, t, dy, sub, bias, relu, out);
            }
            if (status != FC_OK || sh * sw == 1)
                continue;
            /* interleave the phase into dx */
            const int nthreads = fc_pick_threads(p->n_threads, (double)(planes * hq * wq),
                                                 planes);
            (void)nthreads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
#endif
            for (int64_t pl = 0; pl < planes; ++pl)
                for (int64_t a = 0; a < hq; ++a) {
                    const FC_T *src = phase + (pl * hq + a) * wq;
                    FC_T *dst = dx + (pl * p->h + a * sh + rh) * p->w + rw;
                    for (int64_t b = 0; b < wq; ++b)
                        dst[b * sw] = src[b];
                }
        }
    fc_free(tap_list);
    fc_free(sub);
    fc_free(phase);
    return status;
}

/*
 * Weight gradient of a channels-first layer as GEMMs over pixels:
 * dW[co][ci][tap] = sum over pixels p of dy[co][p] * x_tap[ci][p]. Per image
 * (a chunk, fixed by the shape) the input is transposed once into the
 * thread's zero-padded, pixel-major copy xt[row][col][channel]; then every
 * (group, tile of output channels, panel of input channels, tap) is one
 * igemm call that sums over the image's output rows, each row one "tap" of
 * the micro-kernel: A = the tile's dy rows (broadcast; contiguous in NCHW),
 * B = the row's pixels under the tap in xt (ldb = stride x channels). Every
 * multiply is a real one, and C stays in registers for the whole image.
 * Partials [co][tap][ci] per image are folded in image order, so results do
 * not depend on the thread count, then put in OIHW order once.
 */
static int FCN(nchw_wgrad_gemm)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                const FC_T *dy, const FC_T *x, FC_T *dkernel, FC_T *dbias)
{
    const int64_t groups = groups_of(p), cig = p->c_in / groups, cog = p->c_out / groups;
    const int64_t taps = p->kh * p->kw, pixels = p->out_h * p->out_w;
    const int64_t dk_len = p->c_out * cig * taps, partial_len = dk_len + p->c_out;
    const int64_t hp = (p->out_h - 1) * p->stride_h + (p->kh - 1) * p->dilation_h + 1;
    const int64_t wp = (p->out_w - 1) * p->stride_w + (p->kw - 1) * p->dilation_w + 1;
    const int64_t cpad = p->c_in + t->vl;          /* values between pixels of xt */
    const int64_t xt_len = fc_mul(fc_mul(hp, wp), cpad) + t->vl;
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    /* the register tile of the widest panel: rows of output channels */
    const int mr = t->igemm_mr[ceil_div(min64(cig, nr_panel), t->vl)];
    const int64_t npanel = ceil_div(cig, nr_panel), ntr = ceil_div(cog, mr);
    const int64_t per_chunk = groups * ntr * npanel * taps;
    const int64_t nchunks = p->n;
    const double work = (double)p->n * (double)pixels * (double)dk_len;
    const int nthreads = fc_pick_threads(p->n_threads, work, nchunks * per_chunk);
    int64_t wave = max64(1, FC_WGRAD_PARTIAL_BYTES / (partial_len * (int64_t)sizeof(FC_T)));
    wave = min64(wave, nchunks);
    const int64_t tables = fc_mul(p->out_h, FC_MAX_MR + 1);   /* a and b pointers */
    FC_T *xts = (FC_T *)fc_calloc(fc_mul(xt_len, nthreads), sizeof(FC_T));
    const FC_T **ptrs = (const FC_T **)fc_malloc(fc_mul(tables, nthreads), sizeof(FC_T *));
    FC_T *partials = (FC_T *)fc_malloc(fc_mul(wave, partial_len), sizeof(FC_T));
    FC_T *sum = (FC_T *)fc_malloc(dk_len + 1, sizeof(FC_T));   /* [co][tap][ci] */
    if (xts == NULL || ptrs == NULL || partials == NULL || sum == NULL) {
        fc_free(xts);
        fc_free(ptrs);
        fc_free(partials);
        fc_free(sum);
        return FC_ERR_NOMEM;
    }
    /* x's rows and columns the windows read (the rest of a 'valid' input is unread) */
    const int64_t rows_in = min64(p->h, hp - p->pad_top), cols_in = min64(p->w, wp - p->pad_left);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        FC_T *xt = xts + xt_len * tid;
        const FC_T **a = ptrs + tables * tid, **b = a + p->out_h * FC_MAX_MR;
        FC_T *c[FC_MAX_MR];
        for (int64_t first = 0; first < nchunks; first += wave) {
            const int64_t nwave = min64(wave, nchunks - first);
            int64_t i0, i1, have = -1, a_key = -1;
            fc_thread_range(nwave * per_chunk, FC_TEAM_SIZE(), tid, &i0, &i1);
            for (int64_t item = i0; item < i1; ++item) {
                const int64_t cw = item / per_chunk, img = first + cw;
                int64_t rest = item - cw * per_chunk;
                const int64_t grp = rest / (ntr * npanel * taps);
                rest -= grp * ntr * npanel * taps;
                const int64_t tr = rest / (npanel * taps);
                rest -= tr * npanel * taps;
                const int64_t panel = rest / taps, tap = rest - panel * taps;
                FC_T *partial = partials + cw * partial_len;
                if (img != have) {
                    /* row by row, so that the row of xt being written stays
                     * in L1 while each channel's values land in it */
                    for (int64_t r = 0; r < rows_in; ++r)
                        t->transpose(x + (img * p->c_in * p->h + r) * p->w, p->h * p->w,
                                     xt + ((r + p->pad_top) * wp + p->pad_left) * cpad, cpad,
                                     p->c_in, cols_in);
                    have = img;
                }
                int64_t co0, rows;
                block_of(cog, ntr, tr, &co0, &rows);
                co0 += grp * cog;
                const int64_t key = (cw * groups + grp) * ntr + tr;
                if (key != a_key) {   /* the tile's dy rows, one "tap" per output row */
                    for (int64_t oh = 0; oh < p->out_h; ++oh)
                        for (int64_t r = 0; r < rows; ++r)
                            a[oh * rows + r] = dy + ((img * p->c_out + co0 + r) * p->out_h + oh) *
                                                        p->out_w;
                    a_key = key;
                }
                const int64_t ci0 = panel * nr_panel, nr = min64(nr_panel, cig - ci0);
                const int64_t i = tap / p->kw, j = tap - i * p->kw;
                for (int64_t oh = 0; oh < p->out_h; ++oh)
                    b[oh] = xt + ((oh * p->stride_h + i * p->dilation_h) * wp +
                                  j * p->dilation_w) * cpad + grp * cig + ci0;
                for (int64_t r = 0; r < rows; ++r)
                    c[r] = partial + ((co0 + r) * taps + tap) * cig + ci0;
                const int nv = (int)ceil_div(nr, t->vl);
                FCN(fc_igemm_args) args = {0};
                args.ntaps = p->out_h;
                args.kc = p->out_w;
                args.a = a;
                args.b = b;
                args.ldb = p->stride_w * cpad;
                args.nr = nr;
                args.bias = NULL;
                args.bias_rows = 0;
                args.c = c;
                args.mr = (int)rows;
                args.nv = nv;
                args.accumulate = 0;
                args.relu = 0;
                FCN(igemm_for)(t, (int)rows, nv, nr % t->vl != 0)(&args);
                if (dbias != NULL && panel == 0 && tap == 0)
                    for (int64_t r = 0; r < rows; ++r)
                        partial[dk_len + co0 + r] =
                            (FC_T)t->plane_sum(dy + (img * p->c_out + co0 + r) * pixels, pixels);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
            /* Fold the wave's partials in image order. */
            int64_t e0, e1;
            fc_thread_range(partial_len, FC_TEAM_SIZE(), tid, &e0, &e1);
            for (int64_t cw = 0; cw < nwave; ++cw) {
                const FC_T *src = partials + cw * partial_len;
                const int first_chunk = first + cw == 0;
                FCN(fc_fold)(sum, src, max64(e0, 0), min64(e1, dk_len), first_chunk);
                if (dbias != NULL)
                    FCN(fc_fold)(dbias, src + dk_len, max64(e0, dk_len) - dk_len, e1 - dk_len,
                                 first_chunk);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        /* [co][tap][ci] -> OIHW [co][ci][tap] */
        int64_t r0, r1;
        fc_thread_range(p->c_out, FC_TEAM_SIZE(), tid, &r0, &r1);
        for (int64_t co = r0; co < r1; ++co)
            for (int64_t tap = 0; tap < taps; ++tap)
                for (int64_t ci = 0; ci < cig; ++ci)
                    dkernel[(co * cig + ci) * taps + tap] = sum[(co * taps + tap) * cig + ci];
        fc_fpmode_leave(fp);
    }
    fc_free(xts);
    fc_free(ptrs);
    fc_free(partials);
    fc_free(sum);
    return FC_OK;
}

