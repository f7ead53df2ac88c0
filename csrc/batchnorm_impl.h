/*
 * batchnorm_impl.h: the batch-normalization drivers for one element type
 * (FC_T, names through FCN), compiled twice by batchnorm.c. No include
 * guard, on purpose.
 */

/* The shift of a channel's values in an item: its first value, or 0 when
 * that is not finite (then an infinity makes the mean infinite, as in a plain
 * sum, instead of inf - inf = NaN). */
static FC_T FCN(bn_shift)(FC_T v) { return isfinite(v) ? v : (FC_T)0; }

/* Repeats value v of channel ch rep times: coefficient rows of rows mode
 * (rep = inner) or per-channel arrays (rep = 1). */
static void FCN(bn_fill)(FC_T *row, int64_t ch, int64_t rep, FC_T v)
{
    for (int64_t i = 0; i < rep; ++i)
        row[ch * rep + i] = v;
}

/* The element-wise passes' split: rows mode by outer rows, runs mode by
 * blocks of FC_BN_ELEM_BLOCK values. Units and the values of units [u0, u1). */
static int64_t FCN(bn_elem_units)(const bn_plan *w)
{
    return w->rows ? w->outer : ceil_div(w->outer * w->ld, FC_BN_ELEM_BLOCK);
}

/* ------------------------------------------------------------------------ */
/* Statistics.                                                               */

/* Work item q: the partials of each of its channels (shifted_partial), at
 * part[(k * c + ch) * 3] for chunk k. Rows mode uses the thread's scratch:
 * shift, s1, s2 of cols_max columns. */
static void FCN(bn_stats_item)(const bn_plan *w, const FCN(fc_kernel_table) *t, const FC_T *x,
                               int64_t q, FC_T *shift, double *s1, double *s2, double *part)
{
    const int64_t k = q / w->n_ch_blocks, b = q - k * w->n_ch_blocks;
    int64_t o0, o1, i0, i1;
    chunk_bounds(w, k, &o0, &o1, &i0, &i1);
    const double n = (double)((o1 - o0) * (i1 - i0));
    if (w->rows) {
        const int64_t inner = w->inner, ch0 = b * w->ch_block;
        const int64_t nch = min64(w->ch_block, w->c - ch0);
        const FC_T *x0 = x + o0 * w->ld + ch0 * inner;
        /* every column of a channel gets the channel's shift, so that the
         * column sums of its inner positions add up directly */
        for (int64_t ch = 0; ch < nch; ++ch)
            FCN(bn_fill)(shift, ch, inner, FCN(bn_shift)(x0[ch * inner]));
        t->bn_stats_rows(x0, o1 - o0, w->ld, nch * inner, shift, s1, s2);
        for (int64_t ch = 0; ch < nch; ++ch) {
            double a1 = s1[ch * inner], a2 = s2[ch * inner];
            for (int64_t i = 1; i < inner; ++i) {
                a1 += s1[ch * inner + i];
                a2 += s2[ch * inner + i];
            }
            shifted_partial((double)shift[ch * inner], a1, a2, n,
                            part + (k * w->c + ch0 + ch) * 3);
        }
    } else {
        const int64_t ch = b;
        const FC_T *x0 = x + (o0 * w->c + ch) * w->inner + i0;
        const FC_T k_ch = FCN(bn_shift)(x0[0]);
        double sums[2];
        t->bn_stats_runs(x0, o1 - o0, w->ld, i1 - i0, k_ch, sums);
        shifted_partial((double)k_ch, sums[0], sums[1], n, part + (k * w->c + ch) * 3);
    }
}

int FCN(fc_batch_norm_stats)(const fc_norm_params *p, const FC_T *x, FC_T *mean, FC_T *var)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->c == 0)
        return FC_OK;
    if (mean == NULL || var == NULL)
        return FC_ERR_ARG;
    if (p->outer == 0 || p->inner == 0) {
        /* the statistics of no values, by definition */
        memset(mean, 0, (size_t)p->c * sizeof(FC_T));
        memset(var, 0, (size_t)p->c * sizeof(FC_T));
        return FC_OK;
    }
    if (x == NULL)
        return FC_ERR_ARG;

    bn_plan w;
    make_plan(p, &w);
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int nthreads = fc_pick_threads(p->n_threads, (double)(w.outer * w.ld), w.nitems);
    const int64_t part_len = w.nchunks * w.c * 3;
    const int64_t per_thread = 3 * w.cols_max + 8;   /* s1, s2, shift; apart by a line */
    double *scratch = fc_malloc(part_len + nthreads * per_thread, sizeof(double));
    if (scratch == NULL)
        return FC_ERR_NOMEM;
    double *part = scratch;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        const int tid = FC_THREAD_ID(), team = BN_TEAM_SIZE();
        double *ts = scratch + part_len + tid * per_thread;
        int64_t q0, q1;
        fc_thread_range(w.nitems, team, tid, &q0, &q1);
        for (int64_t q = q0; q < q1; ++q)
            FCN(bn_stats_item)(&w, t, x, q, (FC_T *)(ts + 2 * w.cols_max), ts, ts + w.cols_max,
                               part);
#ifdef _OPENMP
#pragma omp barrier
#endif
        /* each channel folds its chunks in chunk order */
        int64_t c0, c1;
        fc_thread_range(w.c, team, tid, &c0, &c1);
        const double m = (double)(w.outer * w.inner);
        for (int64_t ch = c0; ch < c1; ++ch) {
            bn_moments acc = {0, 0, 0, 0};
            for (int64_t k = 0; k < w.nchunks; ++k)
                chan_merge(&acc, chunk_count(&w, k), part + (k * w.c + ch) * 3);
            mean[ch] = (FC_T)(acc.base + acc.offset);
            var[ch] = (FC_T)(acc.m2 / m);
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    return FC_OK;
}

/* ------------------------------------------------------------------------ */
/* Normalization with given statistics.                                      */

int FCN(fc_batch_norm_apply)(const fc_norm_params *p, const FC_T *x, const FC_T *mean,
                             const FC_T *var, const FC_T *gamma, const FC_T *beta, FC_T epsilon,
                             int relu, FC_T *y)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->outer == 0 || p->c == 0 || p->inner == 0)
        return FC_OK;
    if (x == NULL || mean == NULL || var == NULL || y == NULL)
        return FC_ERR_ARG;

    bn_plan w;
    make_plan(p, &w);
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    /* Coefficients per column (rows mode) or channel: mean, scale, bias. */
    const int64_t rep = w.rows ? w.inner : 1, ncoef = w.c * rep;
    FC_T *coef = fc_malloc(3 * ncoef, sizeof(FC_T));
    if (coef == NULL)
        return FC_ERR_NOMEM;
    FC_T *mean_row = coef, *scale_row = coef + ncoef, *bias_row = coef + 2 * ncoef;
    for (int64_t ch = 0; ch < w.c; ++ch) {
        const double g = gamma != NULL ? (double)gamma[ch] : 1.0;
        FCN(bn_fill)(mean_row, ch, rep, mean[ch]);
        FCN(bn_fill)(scale_row, ch, rep, (FC_T)(g / sqrt((double)var[ch] + (double)epsilon)));
        FCN(bn_fill)(bias_row, ch, rep, beta != NULL ? beta[ch] : (FC_T)0);
    }
    const int64_t units = FCN(bn_elem_units)(&w), total = w.outer * w.ld;
    const int nthreads = fc_pick_threads(p->n_threads, (double)total, units);
    (void)nthreads;   /* unused without OpenMP */

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t u0, u1;
        fc_thread_range(units, BN_TEAM_SIZE(), FC_THREAD_ID(), &u0, &u1);
        if (w.rows)
            t->bn_apply_rows(x + u0 * w.ld, y + u0 * w.ld, u1 - u0, w.ld, mean_row, scale_row,
                             bias_row, relu);
        else
            t->bn_apply_runs(x, y, u0 * FC_BN_ELEM_BLOCK, min64(u1 * FC_BN_ELEM_BLOCK, total),
                             w.inner, w.c, mean_row, scale_row, bias_row, relu);
        fc_fpmode_leave(fp);
    }
    fc_free(coef);
    return FC_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward.                                                                 */

/* Work item q: per-channel partials (sum dy, sum dy * (x - mean)) at
 * part[(k * c + ch) * 2]; mean_row holds the mean per column (rows mode) or
 * channel. Rows mode uses the thread's scratch (s1, s2 of cols_max). */
static void FCN(bn_sums_item)(const bn_plan *w, const FCN(fc_kernel_table) *t, const FC_T *dy,
                              const FC_T *x, const FC_T *mean_row, int64_t q, double *s1,
                              double *s2, double *part)
{
    const int64_t k = q / w->n_ch_blocks, b = q - k * w->n_ch_blocks;
    int64_t o0, o1, i0, i1;
    chunk_bounds(w, k, &o0, &o1, &i0, &i1);
    if (w->rows) {
        const int64_t inner = w->inner, ch0 = b * w->ch_block;
        const int64_t nch = min64(w->ch_block, w->c - ch0), off = o0 * w->ld + ch0 * inner;
        t->bn_sums_rows(dy + off, x + off, o1 - o0, w->ld, nch * inner, mean_row + ch0 * inner,
                        s1, s2);
        for (int64_t ch = 0; ch < nch; ++ch) {
            double a1 = s1[ch * inner], a2 = s2[ch * inner];
            for (int64_t i = 1; i < inner; ++i) {
                a1 += s1[ch * inner + i];
                a2 += s2[ch * inner + i];
            }
            double *out = part + (k * w->c + ch0 + ch) * 2;
            out[0] = a1;
            out[1] = a2;
        }
    } else {
        const int64_t ch = b, off = (o0 * w->c + ch) * w->inner + i0;
        t->bn_sums_runs(dy + off, x + off, o1 - o0, w->ld, i1 - i0, mean_row[ch],
                        part + (k * w->c + ch) * 2);
    }
}

int FCN(fc_batch_norm_backward)(const fc_norm_params *p, const FC_T *dy, const FC_T *x,
                                const FC_T *mean, const FC_T *var, const FC_T *gamma,
                                FC_T epsilon, FC_T *dx, FC_T *dgamma, FC_T *dbeta)
{
    int status = check_params(p);
    if (status != FC_OK)
        return status;
    if (p->c == 0)
        return FC_OK;
    if (dgamma == NULL || dbeta == NULL)
        return FC_ERR_ARG;
    if (p->outer == 0 || p->inner == 0) {
        /* sums over no values (and dx has none) */
        memset(dgamma, 0, (size_t)p->c * sizeof(FC_T));
        memset(dbeta, 0, (size_t)p->c * sizeof(FC_T));
        return FC_OK;
    }
    if (dy == NULL || x == NULL || mean == NULL || var == NULL)
        return FC_ERR_ARG;

    bn_plan w;
    make_plan(p, &w);
    const FCN(fc_kernel_table) *t = FCN(fc_active_kernels)();
    const int64_t total = w.outer * w.ld, units = FCN(bn_elem_units)(&w);
    const int nthreads = fc_pick_threads(p->n_threads, 2.0 * (double)total, w.nitems);
    /* Coefficients per column (rows mode) or channel: the mean, and for dx
     * dy_mean, a, b (see fastconv.h). */
    const int64_t rep = w.rows ? w.inner : 1, ncoef = w.c * rep;
    const int64_t part_len = w.nchunks * w.c * 2;
    const int64_t per_thread = 2 * w.cols_max + 8;
    const int64_t coef_doubles = ceil_div((dx != NULL ? 4 : 1) * ncoef * (int64_t)sizeof(FC_T),
                                          (int64_t)sizeof(double));
    double *scratch = fc_malloc(part_len + nthreads * per_thread + coef_doubles, sizeof(double));
    if (scratch == NULL)
        return FC_ERR_NOMEM;
    double *part = scratch;
    FC_T *mean_row = (FC_T *)(scratch + part_len + nthreads * per_thread);
    FC_T *dy_mean_row = mean_row + ncoef, *a_row = mean_row + 2 * ncoef,
         *b_row = mean_row + 3 * ncoef;
    for (int64_t ch = 0; ch < w.c; ++ch)
        FCN(bn_fill)(mean_row, ch, rep, mean[ch]);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        const int tid = FC_THREAD_ID(), team = BN_TEAM_SIZE();
        double *ts = scratch + part_len + tid * per_thread;
        int64_t q0, q1;
        fc_thread_range(w.nitems, team, tid, &q0, &q1);
        for (int64_t q = q0; q < q1; ++q)
            FCN(bn_sums_item)(&w, t, dy, x, mean_row, q, ts, ts + w.cols_max, part);
#ifdef _OPENMP
#pragma omp barrier
#endif
        /* each channel adds its chunks in chunk order, then sets its dx
         * coefficients */
        int64_t c0, c1;
        fc_thread_range(w.c, team, tid, &c0, &c1);
        const double m = (double)(w.outer * w.inner);
        for (int64_t ch = c0; ch < c1; ++ch) {
            double sum_dy = 0, sum_dyx = 0;
            for (int64_t k = 0; k < w.nchunks; ++k) {
                sum_dy += part[(k * w.c + ch) * 2];
                sum_dyx += part[(k * w.c + ch) * 2 + 1];
            }
            const double r = 1.0 / sqrt((double)var[ch] + (double)epsilon);
            const double dg = sum_dyx * r;
            dbeta[ch] = (FC_T)sum_dy;
            dgamma[ch] = (FC_T)dg;
            if (dx != NULL) {
                const double a = (gamma != NULL ? (double)gamma[ch] : 1.0) * r;
                FCN(bn_fill)(dy_mean_row, ch, rep, (FC_T)(sum_dy / m));
                FCN(bn_fill)(a_row, ch, rep, (FC_T)a);
                FCN(bn_fill)(b_row, ch, rep, (FC_T)(-a * r * (dg / m)));
            }
        }
        if (dx != NULL) {
#ifdef _OPENMP
#pragma omp barrier
#endif
            int64_t u0, u1;
            fc_thread_range(units, team, tid, &u0, &u1);
            if (w.rows) {
                const int64_t off = u0 * w.ld;
                t->bn_dx_rows(dy + off, x + off, dx + off, u1 - u0, w.ld, mean_row, dy_mean_row,
                              a_row, b_row);
            } else {
                t->bn_dx_runs(dy, x, dx, u0 * FC_BN_ELEM_BLOCK,
                              min64(u1 * FC_BN_ELEM_BLOCK, total), w.inner, w.c, mean_row,
                              dy_mean_row, a_row, b_row);
            }
        }
        fc_fpmode_leave(fp);
    }
    fc_free(scratch);
    return FC_OK;
}
