/*
 * conv2d_nchw_impl.h: channels-first convolutions (NCHW activations, OIHW
 * kernels) for one element type; included by conv2d_impl.h.
 *
 * The GEMMs are the transposes of the NHWC ones: rows are channels and the
 * vector lanes run over pixels, which are contiguous in NCHW:
 *   forward          y[co][pixels]  = W[co][K]   . cols[K][pixels],   K  = (ci, i, j)
 *   backward-input   dx[ci][pixels] = Wt[ci][K'] . dcols[K'][pixels], K' = (co, i, j)
 *   backward-kernel  dW[co][K]      = dy[co][pixels] . colsT[pixels][K]
 * per group. W is the OIHW kernel itself (its rows are K-contiguous), Wt its
 * transpose per group (packed once per call). cols, dcols and colsT are
 * packed per block of pixels into per-thread panels, with zeros for padding
 * and with strides and dilation resolved while packing; the igemm
 * micro-kernels do the arithmetic, with a bias per row.
 *
 * A strided backward-input packs the zeros of the output positions that
 * receive nothing from a tap (stride^2 more multiplies than needed); the
 * NHWC driver skips them.
 */

/* Panel columns per block of pixels: two vectors of the widest type (one
 * vector per lane group on the generic path, 16 values). */
static int FCN(nchw_tile_vectors)(const FCN(fc_kernel_table) *t)
{
    return t->vl == 1 ? t->nv_max : (int)min64(2, t->nv_max);
}

/* Element (k, q) of the im2col matrix of image img, for k in [k0, k0 + nk)
 * with k = (ci, i, j) over the channels from ch0, and q in [0, np) the output
 * pixels from flat pixel p0, goes to dst[(k - k0) * sk + q * sq]. */
static void FCN(nchw_pack_cols)(const fc_conv2d_params *p, const FC_T *x, int64_t img,
                                int64_t ch0, int64_t k0, int64_t nk, int64_t p0, int64_t np,
                                FC_T *FC_RESTRICT dst, int64_t sk, int64_t sq)
{
    const int64_t taps = p->kh * p->kw, hw = p->h * p->w, s = p->stride_w;
    const FC_T *image = x + (img * p->c_in + ch0) * hw;
    for (int64_t q0 = 0; q0 < np;) {
        /* one output row's run of the block: pixels q0 .. q0 + len */
        const int64_t pix = p0 + q0, oh = pix / p->out_w, ow0 = pix - oh * p->out_w;
        const int64_t len = min64(p->out_w - ow0, np - q0);
        for (int64_t k = k0; k < k0 + nk; ++k) {
            const int64_t ci = k / taps, tap = k - ci * taps;
            const int64_t i = tap / p->kw, j = tap - i * p->kw;
            const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
            const int64_t iw0 = ow0 * s - p->pad_left + j * p->dilation_w;
            FC_T *out = dst + (k - k0) * sk + q0 * sq;
            /* q reads column iw0 + q * s: inside the row for q in [lo, hi) */
            int64_t lo = len, hi = len;
            if ((uint64_t)ih < (uint64_t)p->h && iw0 < p->w) {
                lo = iw0 >= 0 ? 0 : min64(ceil_div(-iw0, s), len);
                hi = max64(lo, min64(len, (p->w - 1 - iw0) / s + 1));
            }
            const FC_T *row = image + (ci * p->h + (lo < hi ? ih : 0)) * p->w;
            int64_t q = 0;
            for (; q < lo; ++q)
                out[q * sq] = 0;
            if (s == 1 && sq == 1) {
                memcpy(out + lo, row + iw0 + lo, (size_t)(hi - lo) * sizeof(FC_T));
                q = hi;
            }
            for (; q < hi; ++q)
                out[q * sq] = row[iw0 + q * s];
            for (; q < len; ++q)
                out[q * sq] = 0;
        }
        q0 += len;
    }
}

/* Element (k, q) of the backward-input's gathered dy, for k in [0, nk) with
 * k = (co, i, j) over the output channels from co0, and q in [0, np) the
 * input pixels from flat pixel p0 of image img: dy[co][oh][ow] where the
 * pixel (ih, iw) = (oh * s - pad + i * d, ow * s - pad + j * d), else 0; to
 * dst[k * ld + q]. */
static void FCN(nchw_pack_dcols)(const fc_conv2d_params *p, const FC_T *dy, int64_t img,
                                 int64_t co0, int64_t nk, int64_t p0, int64_t np,
                                 FC_T *FC_RESTRICT dst, int64_t ld)
{
    const int64_t taps = p->kh * p->kw, ohw = p->out_h * p->out_w, s = p->stride_w;
    const FC_T *image = dy + (img * p->c_out + co0) * ohw;
    for (int64_t q0 = 0; q0 < np;) {
        const int64_t pix = p0 + q0, ih = pix / p->w, iw0 = pix - ih * p->w;
        const int64_t len = min64(p->w - iw0, np - q0);
        for (int64_t k = 0; k < nk; ++k) {
            const int64_t co = k / taps, tap = k - co * taps;
            const int64_t i = tap / p->kw, j = tap - i * p->kw;
            FC_T *out = dst + k * ld + q0;
            memset(out, 0, (size_t)len * sizeof(FC_T));
            const int64_t at_h = ih + p->pad_top - i * p->dilation_h;
            if (at_h < 0 || at_h % p->stride_h != 0 || at_h / p->stride_h >= p->out_h)
                continue;
            const FC_T *row = image + (co * p->out_h + at_h / p->stride_h) * p->out_w;
            /* q receives ow = (at0 + q) / s where at0 + q >= 0 divides by s */
            const int64_t at0 = iw0 + p->pad_left - j * p->dilation_w;
            int64_t q = at0 >= 0 ? 0 : -at0;
            if ((at0 + q) % s != 0)
                q += s - (at0 + q) % s;
            for (; q < len; q += s) {
                const int64_t ow = (at0 + q) / s;
                if (ow >= p->out_w)
                    break;
                out[q] = row[ow];
            }
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
            FCN(fc_igemm_args) args;
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
            args.relu = q->relu && last;
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
 * Forward (transposed = 0) or input gradient (transposed = 1, src = dy,
 * a = Wt) of a channels-first layer: work items are (image, group, block of
 * output pixels), each packed into the thread's panel and multiplied by the
 * group's rows of A.
 */
static int FCN(nchw_igemm)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                           int transposed, const FC_T *src, const FC_T *a, const FC_T *bias,
                           int relu, FC_T *out)
{
    const int64_t groups = groups_of(p), taps = p->kh * p->kw;
    const int64_t rows = (transposed ? p->c_in : p->c_out) / groups;   /* per group */
    const int64_t nk = (transposed ? p->c_out : p->c_in) / groups * taps;
    const int64_t planes = transposed ? p->c_in : p->c_out;
    const int64_t pixels = transposed ? p->h * p->w : p->out_h * p->out_w;
    const int nv = FCN(nchw_tile_vectors)(t);
    const int mr = t->igemm_mr[nv];
    const int64_t pb = (int64_t)nv * t->vl;
    const int64_t nblk = ceil_div(pixels, pb);
    const int64_t items = p->n * groups * nblk;
    const double work = (double)p->n * (double)pixels * (double)nk * (double)planes;
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
            if (transposed)
                FCN(nchw_pack_dcols)(p, src, img, grp * (nk / taps), nk, p0, np, panel, pb);
            else
                FCN(nchw_pack_cols)(p, src, img, grp * (nk / taps), 0, nk, p0, np, panel, pb,
                                    1);
            FCN(nchw_gemm) q;
            q.a = a + grp * rows * nk;
            q.a_ld = nk;
            q.panel = panel;
            q.ldb = pb;
            q.nk = nk;
            q.kc = FCN(nchw_kc)(nk, pb);
            q.rows = rows;
            q.mr = mr;
            q.bias = bias ? bias + grp * rows : NULL;
            q.relu = relu;
            q.out = out + (img * planes + grp * rows) * pixels + p0;
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

/* Padded rows [r0, r1) of image img into block b of buf. */
static void FCN(nchw_pad_rows)(const fc_conv2d_params *p, const FCN(nchw_padded) *L,
                               const FC_T *x, int64_t img, int64_t r0, int64_t r1, FC_T *buf)
{
    const int64_t s = L->s;
    for (int64_t ch = 0; ch < L->c; ++ch) {
        const FC_T *plane = x + (img * p->c_in + ch) * p->h * p->w;
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t ih = r - p->pad_top;
            for (int64_t ph = 0; ph < s; ++ph) {
                FC_T *dst = buf + ((ch * L->hp + r) * s + ph) * L->wq;
                /* q reads column iw0 + q * s: inside for q in [lo, hi) */
                const int64_t iw0 = ph - p->pad_left;
                int64_t lo = L->wq, hi = L->wq;
                if ((uint64_t)ih < (uint64_t)p->h && iw0 < p->w) {
                    lo = iw0 >= 0 ? 0 : min64(ceil_div(-iw0, s), L->wq);
                    hi = max64(lo, min64(L->wq, (p->w - 1 - iw0) / s + 1));
                }
                const FC_T *row = plane + (lo < hi ? ih : 0) * p->w + iw0;
                memset(dst, 0, (size_t)lo * sizeof(FC_T));
                if (s == 1)
                    memcpy(dst + lo, row + lo, (size_t)(hi - lo) * sizeof(FC_T));
                else
                    for (int64_t q = lo; q < hi; ++q)
                        dst[q] = row[q * s];
                memset(dst + hi, 0, (size_t)(L->wq - hi) * sizeof(FC_T));
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
    for (int64_t co = 0; co < p->c_out; ++co) {
        const int64_t grp = co / max64(cog, 1), col = co - grp * cog;
        for (int64_t ci = 0; ci < cig; ++ci)
            for (int64_t tap = 0; tap < taps; ++tap)
                wp[((grp * taps + tap) * cog + col) * cig + ci] = kernel[(co * cig + ci) * taps + tap];
    }

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
                            FCN(fc_igemm_args) args;
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
                            args.relu = relu && kb == nkb - 1;
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
    const int nv = FCN(nchw_direct_vectors)(p, t);
    if (nv > 0)
        return FCN(nchw_direct)(p, t, nv, x, kernel, bias, relu, y);
    return FCN(nchw_igemm)(p, t, 0, x, kernel, bias, relu, y);
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
 * Weight gradient of a channels-first layer by dot-product tiles over the
 * padded copy: dW[co][ci][tap] = sum over the chunk's pixels of dy[co] times
 * the copy's pixels under the tap, dot_r x dot_c (co, ci) pairs a tile.
 * Chunks are runs of whole images (about FC_NCHW_DOT_PIXELS pixels), fixed
 * by the shape; a chunk's items (group, co tile, ci tile, tap) write
 * disjoint parts of its partial, and partials are added in chunk order, so
 * results do not depend on the thread count.
 */
#ifndef FC_NCHW_DOT_PIXELS
#define FC_NCHW_DOT_PIXELS 4096
#endif

static int FCN(nchw_wgrad_direct)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                  const FC_T *dy, const FC_T *x, FC_T *dkernel, FC_T *dbias)
{
    const int64_t groups = groups_of(p), cig = p->c_in / groups, cog = p->c_out / groups;
    const int64_t taps = p->kh * p->kw, pixels = p->out_h * p->out_w;
    const int64_t dk_len = p->c_out * cig * taps, partial_len = dk_len + p->c_out;
    const FCN(nchw_padded) L = FCN(nchw_padded_layout)(p);
    const int in_place = FCN(nchw_in_place)(p, &L);
    const int64_t per_chunk = max64(1, min64(p->n, FC_NCHW_DOT_PIXELS / pixels));
    const int64_t nchunks = ceil_div(p->n, per_chunk);
    const int R = t->dot_r, C = t->dot_c;
    const int64_t ntr = ceil_div(cog, R), ntc = ceil_div(cig, C);
    const int64_t items_per_chunk = groups * ntr * ntc * taps;
    const double work = (double)p->n * (double)pixels * (double)dk_len;
    const int nthreads = fc_pick_threads(p->n_threads, work, nchunks * items_per_chunk);
    int64_t wave = max64(1, FC_WGRAD_PARTIAL_BYTES / (partial_len * (int64_t)sizeof(FC_T)));
    wave = min64(wave, nchunks);
    const int64_t buf_len = per_chunk * L.img_stride + L.wq + t->vl;
    FC_T *bufs = (FC_T *)fc_calloc(fc_mul(buf_len, nthreads), sizeof(FC_T));
    FC_T *partials = (FC_T *)fc_malloc(fc_mul(wave, partial_len), sizeof(FC_T));
    /* dy's last plane and a vector: the tiles read whole vectors, and past
     * the end of dy only from there */
    FC_T *last_plane = (FC_T *)fc_calloc(pixels + t->vl, sizeof(FC_T));
    if (bufs == NULL || partials == NULL || last_plane == NULL) {
        fc_free(bufs);
        fc_free(partials);
        fc_free(last_plane);
        return FC_ERR_NOMEM;
    }
    const FC_T *dy_last = dy + (p->n * p->c_out - 1) * pixels;
    memcpy(last_plane, dy_last, (size_t)pixels * sizeof(FC_T));

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        FC_T *copy = bufs + buf_len * tid;
        const FC_T *buf = copy;   /* the copy, or the chunk's images in place */
        const FC_T *a[FC_MAX_MR], *b[FC_MAX_MR];
        for (int64_t first = 0; first < nchunks; first += wave) {
            const int64_t nwave = min64(wave, nchunks - first);
            int64_t i0, i1, have = -1;
            fc_thread_range(nwave * items_per_chunk, FC_TEAM_SIZE(), tid, &i0, &i1);
            for (int64_t item = i0; item < i1; ++item) {
                const int64_t c = item / items_per_chunk;
                int64_t rest = item - c * items_per_chunk;
                const int64_t grp = rest / (ntr * ntc * taps);
                rest -= grp * ntr * ntc * taps;
                const int64_t tr = rest / (ntc * taps);
                rest -= tr * ntc * taps;
                const int64_t tc = rest / taps, tap = rest - tc * taps;
                const int64_t chunk = first + c, img0 = chunk * per_chunk;
                const int64_t nimg = min64(per_chunk, p->n - img0);
                if (chunk != have) {
                    if (in_place && img0 + nimg < p->n) {
                        buf = x + img0 * L.img_stride;
                    } else {
                        for (int64_t k = 0; k < nimg; ++k)
                            FCN(nchw_pad_rows)(p, &L, x, img0 + k, 0, L.hp,
                                               copy + k * L.img_stride);
                        buf = copy;
                    }
                    have = chunk;
                }
                FC_T *partial = partials + c * partial_len;
                int64_t co0, rows, ci0, cols;
                block_of(cog, ntr, tr, &co0, &rows);
                block_of(cig, ntc, tc, &ci0, &cols);
                co0 += grp * cog;
                ci0 += grp * cig;
                const int64_t i = tap / p->kw, j = tap - i * p->kw, col = j * p->dilation_w;
                for (int r = 0; r < R; ++r)
                    a[r] = dy + ((img0 * p->c_out + co0 + min64(r, rows - 1)) * pixels);
                for (int q = 0; q < C; ++q)
                    b[q] = buf + (((ci0 + min64(q, cols - 1)) * L.hp + i * p->dilation_h) * L.s +
                                  col % L.s) * L.wq + col / L.s;
                FCN(fc_dot_args) args;
                args.a = a;
                args.a_ld = p->out_w;
                args.a_bs = p->c_out * pixels;
                args.b = b;
                args.b_ld = p->stride_h * L.s * L.wq;
                args.b_bs = L.img_stride;
                args.nrows = p->out_h;
                args.len = p->out_w;
                args.out = partial + (co0 * cig + (ci0 - grp * cig)) * taps + tap;
                args.out_rs = cig * taps;
                args.out_cs = taps;
                args.rows = (int)rows;
                args.cols = (int)cols;
                args.accumulate = 0;
                /* the chunk holding dy's last plane: its last image apart */
                const int at_end = img0 + nimg == p->n && co0 + rows == p->c_out;
                args.nblocks = nimg - at_end;
                if (args.nblocks > 0)
                    t->dot(&args);
                if (at_end) {
                    for (int r = 0; r < R; ++r) {
                        a[r] += (nimg - 1) * args.a_bs;
                        if (a[r] == dy_last)
                            a[r] = last_plane;
                    }
                    for (int q = 0; q < C; ++q)
                        b[q] += (nimg - 1) * args.b_bs;
                    args.nblocks = 1;
                    args.accumulate = nimg > 1;
                    t->dot(&args);
                }
                if (tc == 0 && tap == 0)
                    for (int64_t r = 0; r < rows; ++r) {
                        FC_T sum = 0;
                        for (int64_t k = 0; k < nimg; ++k) {
                            const FC_T *plane = dy + ((img0 + k) * p->c_out + co0 + r) * pixels;
                            for (int64_t q = 0; q < pixels; ++q)
                                sum += plane[q];
                        }
                        partial[dk_len + co0 + r] = sum;
                    }
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
            int64_t e0, e1;
            fc_thread_range(partial_len, FC_TEAM_SIZE(), tid, &e0, &e1);
            for (int64_t c = 0; c < nwave; ++c) {
                const FC_T *src = partials + c * partial_len;
                const int first_chunk = first + c == 0;
                FCN(fc_fold)(dkernel, src, max64(e0, 0), min64(e1, dk_len), first_chunk);
                if (dbias != NULL)
                    FCN(fc_fold)(dbias, src + dk_len, max64(e0, dk_len) - dk_len, e1 - dk_len,
                                 first_chunk);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        fc_fpmode_leave(fp);
    }
    fc_free(bufs);
    fc_free(partials);
    fc_free(last_plane);
    return FC_OK;
}

/*
 * Weight gradient of a channels-first layer: chunks are (image, block of at
 * most FC_WGRAD_CHUNK_PIXELS output pixels), fixed by the shape; a chunk's
 * partial dW and dbias are one thread's, and partials are added in chunk
 * order, so results do not depend on the thread count. Within a chunk, per
 * group and per panel of K columns, colsT (pixels x K) is packed and
 * multiplied from the left by the chunk's dy rows, the pixels being the
 * GEMM's reduction.
 */
static int FCN(nchw_backward_kernel)(const fc_conv2d_params *p, const FCN(fc_kernel_table) *t,
                                     const FC_T *dy, const FC_T *x, FC_T *dkernel, FC_T *dbias)
{
    const int64_t groups = groups_of(p), taps = p->kh * p->kw;
    const int64_t cig = p->c_in / groups, cog = p->c_out / groups;
    const int64_t nk = cig * taps;                    /* dW columns per row */
    const int64_t dk_len = p->c_out * nk;
    const int64_t pixels = p->out_h * p->out_w;
    const int64_t chunk_px = min64(pixels, FC_WGRAD_CHUNK_PIXELS);
    const int64_t per_img = ceil_div(pixels, chunk_px);
    const int64_t nchunks = p->n * per_img;
    const int64_t nr_panel = (int64_t)t->nv_max * t->vl;
    const int mr = t->igemm_mr[t->nv_max];
    const int64_t partial_len = dk_len + p->c_out;
    const double work = (double)p->n * (double)pixels * (double)dk_len;
    const int nthreads = fc_pick_threads(p->n_threads, work, nchunks);
    int64_t wave = max64(1, FC_WGRAD_PARTIAL_BYTES / (partial_len * (int64_t)sizeof(FC_T)));
    wave = min64(wave, nchunks);
    /* colsT of one panel: chunk_px rows of nr_panel values (+ a vector) */
    const int64_t cols_len = fc_mul(chunk_px, nr_panel) + t->vl;
    FC_T *cols = (FC_T *)fc_calloc(fc_mul(cols_len, nthreads), sizeof(FC_T));
    FC_T *partials = (FC_T *)fc_malloc(fc_mul(wave, partial_len), sizeof(FC_T));
    if (cols == NULL || partials == NULL) {
        fc_free(cols);
        fc_free(partials);
        return FC_ERR_NOMEM;
    }
    /* pixels per K block: a block of colsT rows within L1 */
    const int64_t kc = FCN(nchw_kc)(chunk_px, nr_panel);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const int tid = FC_THREAD_ID();
        const unsigned fp = fc_fpmode_enter();
        FC_T *panel = cols + cols_len * tid;
        const FC_T *a_rows[FC_MAX_MR];
        FC_T *c_rows[FC_MAX_MR];
        for (int64_t first = 0; first < nchunks; first += wave) {
            const int64_t nwave = min64(wave, nchunks - first);
            int64_t c0, c1;
            fc_thread_range(nwave, FC_TEAM_SIZE(), tid, &c0, &c1);
            for (int64_t c = c0; c < c1; ++c) {
                const int64_t chunk = first + c;
                const int64_t img = chunk / per_img;
                const int64_t p0 = (chunk - img * per_img) * chunk_px;
                const int64_t np = min64(chunk_px, pixels - p0);
                FC_T *partial = partials + c * partial_len;
                for (int64_t co = 0; co < p->c_out; ++co) {
                    const FC_T *row = dy + (img * p->c_out + co) * pixels + p0;
                    FC_T sum = 0;
                    for (int64_t q = 0; q < np; ++q)
                        sum += row[q];
                    partial[dk_len + co] = sum;
                }
                for (int64_t grp = 0; grp < groups; ++grp)
                    for (int64_t k0 = 0; k0 < nk; k0 += nr_panel) {
                        const int64_t nr = min64(nr_panel, nk - k0);
                        FCN(nchw_pack_cols)(p, x, img, grp * cig, k0, nr, p0, np, panel, 1,
                                            nr_panel);
                        const int nv = (int)ceil_div(nr, t->vl);
                        const int tail = nr % t->vl != 0;
                        const int64_t ntile = ceil_div(cog, mr);
                        for (int64_t q0 = 0; q0 < np; q0 += kc) {
                            const int64_t kn = min64(kc, np - q0);
                            const FC_T *b = panel + q0 * nr_panel;
                            for (int64_t tile = 0; tile < ntile; ++tile) {
                                int64_t r0, rows;
                                block_of(cog, ntile, tile, &r0, &rows);
                                for (int64_t r = 0; r < rows; ++r) {
                                    const int64_t co = grp * cog + r0 + r;
                                    a_rows[r] = dy + (img * p->c_out + co) * pixels + p0 + q0;
                                    c_rows[r] = partial + co * nk + k0;
                                }
                                FCN(fc_igemm_args) args;
                                args.ntaps = 1;
                                args.kc = kn;
                                args.a = a_rows;
                                args.b = &b;
                                args.ldb = nr_panel;
                                args.nr = nr;
                                args.bias = NULL;
                                args.bias_rows = 0;
                                args.c = c_rows;
                                args.mr = (int)rows;
                                args.nv = nv;
                                args.accumulate = q0 > 0;
                                args.relu = 0;
                                FCN(igemm_for)(t, (int)rows, nv, tail)(&args);
                            }
                        }
                    }
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
            /* Fold this wave's partials into the outputs, in chunk order. */
            int64_t e0, e1;
            fc_thread_range(partial_len, FC_TEAM_SIZE(), tid, &e0, &e1);
            for (int64_t c = 0; c < nwave; ++c) {
                const FC_T *src = partials + c * partial_len;
                const int first_chunk = first + c == 0;
                FCN(fc_fold)(dkernel, src, max64(e0, 0), min64(e1, dk_len), first_chunk);
                if (dbias != NULL)
                    FCN(fc_fold)(dbias, src + dk_len, max64(e0, dk_len) - dk_len, e1 - dk_len,
                                 first_chunk);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        fc_fpmode_leave(fp);
    }
    fc_free(cols);
    fc_free(partials);
    return FC_OK;
}
