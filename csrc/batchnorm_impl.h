/*
 * batchnorm_impl.h: the batch-normalization drivers for one element type
 * (FC_T, names through FCN), compiled twice by batchnorm.c. No include
 * guard, on purpose.
 */

/* The shift of a channel's values in an item: its first value, or 0 when
 * that is not finite (then an infinity makes the mean infinite, as in a plain
 * sum, instead of inf - inf = NaN). */
static FC_T FCN(bn_shift)(FC_T v) { return isfinite(v) ? v : (FC_T)0; }

/* Sets channel ch's entries of a coefficient row (coef_len values) to v:
 * rows mode, its inner columns in each row of a group; runs mode, entry ch. */
static void FCN(bn_fill)(FC_T *row, const bn_plan *w, int64_t ch, FC_T v)
{
    if (!w->rows) {
        row[ch] = v;
        return;
    }
    for (int64_t g = 0; g < w->group; ++g)
        for (int64_t i = 0; i < w->inner; ++i)
            row[g * w->ld + ch * w->inner + i] = v;
}

/* Rows of chunk k (o0, o1) through a rows-mode reduction loop: the whole
 * groups, then the remaining rows, into sums s1, s2 of item_sums_len
 * columns. Returns how many cols-wide parts of s1, s2 hold sums. */
static int64_t FCN(bn_rows_reduce)(const bn_plan *w, const FCN(fc_kernel_table) *t,
                                   const FC_T *dy, const FC_T *x, int64_t o0, int64_t o1,
                                   int64_t col0, int64_t cols, const FC_T *k, double *s1,
                                   double *s2)
{
    const int64_t g = w->group, ngroups = (o1 - o0) / g, rest = o0 + ngroups * g;
    const int64_t off = o0 * w->ld + col0, rest_off = rest * w->ld + col0;
    /* (g > 1 only with a single channel block: then cols == ld) */
    if (dy == NULL)
        t->bn_stats_rows(x + off, ngroups, g * w->ld, g * cols, k, s1, s2);
    else
        t->bn_sums_rows(dy + off, x + off, ngroups, g * w->ld, g * cols, k, s1, s2);
    if (rest == o1)
        return g;
    if (dy == NULL)
        t->bn_stats_rows(x + rest_off, o1 - rest, w->ld, cols, k, s1 + g * cols,
                         s2 + g * cols);
    else
        t->bn_sums_rows(dy + rest_off, x + rest_off, o1 - rest, w->ld, cols, k, s1 + g * cols,
                        s2 + g * cols);
    return g + 1;
}

/* Channel ch's (of an item's block) sums out of nparts parts of s1, s2. */
static void FCN(bn_fold_columns)(const bn_plan *w, const double *s1, const double *s2,
                                 int64_t nparts, int64_t cols, int64_t ch, double *a1,
                                 double *a2)
{
    double sum1 = 0, sum2 = 0;
    for (int64_t part = 0; part < nparts; ++part)
        for (int64_t i = 0; i < w->inner; ++i) {
            sum1 += s1[part * cols + ch * w->inner + i];
            sum2 += s2[part * cols + ch * w->inner + i];
        }
    *a1 = sum1;
    *a2 = sum2;
}

/* ------------------------------------------------------------------------ */
/* Statistics.                                                               */

/* Work item q: the partials of each of its channels (shifted_partial), at
 * part[(k * c + ch) * 3] for chunk k. Rows mode uses the thread's scratch:
 * s1, s2 of item_sums_len columns, then the shift row. */
static void FCN(bn_stats_item)(const bn_plan *w, const FCN(fc_kernel_table) *t, const FC_T *x,
                               int64_t q, double *scratch, double *part)
{
    const int64_t k = q / w->n_ch_blocks, b = q - k * w->n_ch_blocks;
    int64_t o0, o1, i0, i1;
    chunk_bounds(w, k, &o0, &o1, &i0, &i1);
    const double n = (double)((o1 - o0) * (i1 - i0));
    if (w->rows) {
        const int64_t inner = w->inner, ch0 = b * w->ch_block;
        const int64_t nch = min64(w->ch_block, w->c - ch0), cols = nch * inner;
        const int64_t len = item_sums_len(w);
        double *s1 = scratch, *s2 = scratch + len;
        FC_T *shift = (FC_T *)(scratch + 2 * len);
        /* every column of a channel, in every row of a group, gets the
         * channel's shift: then all its column sums add up directly */
        const FC_T *x0 = x + o0 * w->ld + ch0 * inner;
        for (int64_t ch = 0; ch < nch; ++ch) {
            const FC_T v = FCN(bn_shift)(x0[ch * inner]);
            for (int64_t g = 0; g < w->group; ++g)
                for (int64_t i = 0; i < inner; ++i)
                    shift[g * cols + ch * inner + i] = v;
        }
        const int64_t nparts =
            FCN(bn_rows_reduce)(w, t, NULL, x, o0, o1, ch0 * inner, cols, shift, s1, s2);
        for (int64_t ch = 0; ch < nch; ++ch) {
            double a1, a2;
            FCN(bn_fold_columns)(w, s1, s2, nparts, cols, ch, &a1, &a2);
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
    /* s1, s2 and the shift row; a line apart from the next thread's */
    const int64_t per_thread = 3 * item_sums_len(&w) + 8;
    double *scratch = fc_malloc(part_len + nthreads * per_thread, sizeof(double));
    if (scratch == NULL)
        return FC_ERR_NOMEM;
    double *part = scratch;

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        const int tid = FC_THREAD_ID(), team = FC_TEAM_SIZE();
        int64_t q0, q1;
        fc_thread_range(w.nitems, team, tid, &q0, &q1);
        for (int64_t q = q0; q < q1; ++q)
            FCN(bn_stats_item)(&w, t, x, q, scratch + part_len + tid * per_thread, part);
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
    const int64_t ncoef = coef_len(&w);
    FC_T *coef = fc_malloc(3 * ncoef, sizeof(FC_T));
    if (coef == NULL)
        return FC_ERR_NOMEM;
    FC_T *mean_row = coef, *scale_row = coef + ncoef, *bias_row = coef + 2 * ncoef;
    for (int64_t ch = 0; ch < w.c; ++ch) {
        const double g = gamma != NULL ? (double)gamma[ch] : 1.0;
        FCN(bn_fill)(mean_row, &w, ch, mean[ch]);
        FCN(bn_fill)(scale_row, &w, ch, (FC_T)(g / sqrt((double)var[ch] + (double)epsilon)));
        FCN(bn_fill)(bias_row, &w, ch, beta != NULL ? beta[ch] : (FC_T)0);
    }
    const int64_t units = elem_units(&w), total = w.outer * w.ld;
    const int nthreads = fc_pick_threads(p->n_threads, (double)total, units);
    (void)nthreads;   /* unused without OpenMP */

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        int64_t u0, u1;
        fc_thread_range(units, FC_TEAM_SIZE(), FC_THREAD_ID(), &u0, &u1);
        if (u0 == u1) {
            /* no work for this thread */
        } else if (w.rows) {
            /* whole groups, then the tensor's last rows one by one */
            const int64_t g = w.group, r0 = u0 * g, r1 = min64(u1 * g, w.outer);
            const int64_t rest = r0 + (r1 - r0) / g * g;
            t->bn_apply_rows(x + r0 * w.ld, y + r0 * w.ld, (r1 - r0) / g, g * w.ld, mean_row,
                             scale_row, bias_row, relu);
            t->bn_apply_rows(x + rest * w.ld, y + rest * w.ld, r1 - rest, w.ld, mean_row,
                             scale_row, bias_row, relu);
        } else {
            t->bn_apply_runs(x, y, u0 * FC_BN_ELEM_BLOCK, min64(u1 * FC_BN_ELEM_BLOCK, total),
                             w.inner, w.c, mean_row, scale_row, bias_row, relu);
        }
        fc_fpmode_leave(fp);
    }
    fc_free(coef);
    return FC_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward.                                                                 */

/* Work item q: per-channel partials (sum dy, sum dy * (x - mean)) at
 * part[(k * c + ch) * 2]; mean_row is a coefficient row of the means. Rows
 * mode uses the thread's scratch (s1, s2 of item_sums_len columns). */
static void FCN(bn_sums_item)(const bn_plan *w, const FCN(fc_kernel_table) *t, const FC_T *dy,
                              const FC_T *x, const FC_T *mean_row, int64_t q, double *scratch,
                              double *part)
{
    const int64_t k = q / w->n_ch_blocks, b = q - k * w->n_ch_blocks;
    int64_t o0, o1, i0, i1;
    chunk_bounds(w, k, &o0, &o1, &i0, &i1);
    if (w->rows) {
        const int64_t inner = w->inner, ch0 = b * w->ch_block;
        const int64_t nch = min64(w->ch_block, w->c - ch0), cols = nch * inner;
        double *s1 = scratch, *s2 = scratch + item_sums_len(w);
        const int64_t nparts = FCN(bn_rows_reduce)(w, t, dy, x, o0, o1, ch0 * inner, cols,
                                                   mean_row + ch0 * inner, s1, s2);
        for (int64_t ch = 0; ch < nch; ++ch) {
            double *out = part + (k * w->c + ch0 + ch) * 2;
            FCN(bn_fold_columns)(w, s1, s2, nparts, cols, ch, &out[0], &out[1]);
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
    const int64_t total = w.outer * w.ld, units = elem_units(&w);
    const int nthreads = fc_pick_threads(p->n_threads, 2.0 * (double)total, w.nitems);
    /* Coefficient rows: the mean, and for dx dy_mean, a, b (fastconv.h). */
    const int64_t ncoef = coef_len(&w);
    const int64_t part_len = w.nchunks * w.c * 2;
    const int64_t per_thread = 2 * item_sums_len(&w) + 8;
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
        FCN(bn_fill)(mean_row, &w, ch, mean[ch]);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const unsigned fp = fc_fpmode_enter();
        const int tid = FC_THREAD_ID(), team = FC_TEAM_SIZE();
        int64_t q0, q1;
        fc_thread_range(w.nitems, team, tid, &q0, &q1);
        for (int64_t q = q0; q < q1; ++q)
            FCN(bn_sums_item)(&w, t, dy, x, mean_row, q, scratch + part_len + tid * per_thread,
                              part);
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
                FCN(bn_fill)(dy_mean_row, &w, ch, (FC_T)(sum_dy / m));
                FCN(bn_fill)(a_row, &w, ch, (FC_T)a);
                FCN(bn_fill)(b_row, &w, ch, (FC_T)(-a * r * (dg / m)));
            }
        }
        if (dx != NULL) {
#ifdef _OPENMP
#pragma omp barrier
#endif
            int64_t u0, u1;
            fc_thread_range(units, team, tid, &u0, &u1);
            if (u0 == u1) {
                /* no work for this thread */
            } else if (w.rows) {
                /* whole groups, then the tensor's last rows one by one */
                const int64_t g = w.group, r0 = u0 * g, r1 = min64(u1 * g, w.outer);
                const int64_t rest = r0 + (r1 - r0) / g * g;
                t->bn_dx_rows(dy + r0 * w.ld, x + r0 * w.ld, dx + r0 * w.ld, (r1 - r0) / g,
                              g * w.ld, mean_row, dy_mean_row, a_row, b_row);
                t->bn_dx_rows(dy + rest * w.ld, x + rest * w.ld, dx + rest * w.ld, r1 - rest,
                              w.ld, mean_row, dy_mean_row, a_row, b_row);
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
