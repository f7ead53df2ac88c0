/*
 * elementwise_impl.h: the element-wise helpers for one element type (FC_T,
 * names through FCN, FC_SQRT), compiled twice by elementwise.c. No include
 * guard, on purpose.
 */

/* ReLU's pass in blocks of 64 Ki elements over the threads: out =
 * relu(v) for dy == NULL, else dy * (v > 0) (v the ReLU's output). */
static void FCN(relu_pass)(const FC_T *FC_RESTRICT dy, const FC_T *FC_RESTRICT v,
                           FC_T *FC_RESTRICT out, int64_t n, int n_threads)
{
    const int64_t block = 1 << 16;
    const int64_t nblocks = (n + block - 1) / block;
    const int nthreads = fc_pick_threads(n_threads, (double)n / 4.0, nblocks);
    (void)nthreads;   /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
#endif
    for (int64_t b = 0; b < nblocks; ++b) {
        const int64_t end = (b + 1) * block < n ? (b + 1) * block : n;
        if (dy == NULL)
            for (int64_t i = b * block; i < end; ++i)
                out[i] = FCN(relu_value)(v[i]);
        else
            for (int64_t i = b * block; i < end; ++i)
                out[i] = dy[i] * (FC_T)FCN(positive)(v[i]);
    }
}

int FCN(fc_relu_forward)(const FC_T *x, FC_T *y, int64_t n, int n_threads)
{
    if (n < 0 || (n > 0 && (x == NULL || y == NULL)))
        return FC_ERR_ARG;
    FCN(relu_pass)(NULL, x, y, n, n_threads);
    return FC_OK;
}

int FCN(fc_relu_backward)(const FC_T *dy, const FC_T *y, FC_T *out, int64_t n, int n_threads)
{
    if (n < 0 || (n > 0 && (dy == NULL || y == NULL || out == NULL)))
        return FC_ERR_ARG;
    FCN(relu_pass)(dy, y, out, n, n_threads);
    return FC_OK;
}

/* y = a + b (then relu_value), in blocks of 64 Ki elements over the threads
 * as relu_pass. No restrict: y may be a or b (each element is read before
 * it is written, by the same iteration). */
int FCN(fc_add)(const FC_T *a, const FC_T *b, FC_T *y, int64_t n, int relu, int n_threads)
{
    if (n < 0 || (n > 0 && (a == NULL || b == NULL || y == NULL)))
        return FC_ERR_ARG;
    const int64_t block = 1 << 16;
    const int64_t nblocks = (n + block - 1) / block;
    const int nthreads = fc_pick_threads(n_threads, (double)n / 4.0, nblocks);
    (void)nthreads;   /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
#endif
    for (int64_t blk = 0; blk < nblocks; ++blk) {
        const int64_t end = (blk + 1) * block < n ? (blk + 1) * block : n;
        if (relu)
            for (int64_t i = blk * block; i < end; ++i)
                y[i] = FCN(relu_value)(a[i] + b[i]);
        else
            for (int64_t i = blk * block; i < end; ++i)
                y[i] = a[i] + b[i];
    }
    return FC_OK;
}

/* One block of an optimizer rule (fastconv.h lists the rules and their
 * formulas). Each line repeats NumPy's operations in their order, one
 * rounding each, so the C and NumPy backends agree bit for bit. */
FC_NO_CONTRACT_FN
static void FCN(update_block)(int rule, FC_T *FC_RESTRICT p, const FC_T *FC_RESTRICT g,
                              FC_T *FC_RESTRICT s0, FC_T *FC_RESTRICT s1, FC_T *FC_RESTRICT s2,
                              int64_t i0, int64_t i1, const FC_T *c)
{
    FC_NO_CONTRACT
    const FC_T lr = c[FC_COEF_LR], d1 = c[FC_COEF_DECAY1], om1 = c[FC_COEF_ONE_MINUS_DECAY1];
    const FC_T d2 = c[FC_COEF_DECAY2], om2 = c[FC_COEF_ONE_MINUS_DECAY2];
    const FC_T eps = c[FC_COEF_EPSILON], mom = c[FC_COEF_MOMENTUM];
    const FC_T cg = c[FC_COEF_GRAD], cm = c[FC_COEF_M], vc = c[FC_COEF_V_CORRECTION];
    switch (rule) {
    case FC_RULE_SGD:
        for (int64_t i = i0; i < i1; ++i)
            p[i] -= g[i] * lr;
        break;
    case FC_RULE_MOMENTUM:
    case FC_RULE_NESTEROV:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T lg = g[i] * lr;
            const FC_T v = s0[i] * mom - lg;
            s0[i] = v;
            p[i] += rule == FC_RULE_NESTEROV ? v * mom - lg : v;
        }
        break;
    case FC_RULE_RMSPROP:
    case FC_RULE_RMSPROP_CENTERED:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T gi = g[i];
            const FC_T ms = s0[i] * d1 + om1 * (gi * gi);
            FC_T den = ms;
            s0[i] = ms;
            if (rule == FC_RULE_RMSPROP_CENTERED) {
                const FC_T mg = s1[i] * d1 + om1 * gi;
                s1[i] = mg;
                den = ms - mg * mg;
            }
            p[i] -= (lr * gi) / (FC_SQRT(den) + eps);
        }
        break;
    case FC_RULE_RMSPROP_MOMENTUM:
    case FC_RULE_RMSPROP_MOMENTUM_CENTERED:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T gi = g[i];
            const FC_T ms = s0[i] + (gi * gi - s0[i]) * om1;
            FC_T den;
            s0[i] = ms;
            if (rule == FC_RULE_RMSPROP_MOMENTUM_CENTERED) {
                const FC_T mg = s2[i] + (gi - s2[i]) * om1;
                s2[i] = mg;
                den = (ms - mg * mg) + eps;
            } else {
                den = ms + eps;
            }
            const FC_T m = s1[i] * mom + (gi * lr) / FC_SQRT(den);
            s1[i] = m;
            p[i] -= m;
        }
        break;
    case FC_RULE_ADAGRAD:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T gi = g[i];
            const FC_T acc = s0[i] + gi * gi;
            s0[i] = acc;
            p[i] -= (lr * gi) / (FC_SQRT(acc) + eps);
        }
        break;
    case FC_RULE_ADADELTA:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T gi = g[i];
            const FC_T acc = s0[i] * d1 + (gi * gi) * om1;
            const FC_T u = (FC_SQRT(s1[i] + eps) / FC_SQRT(acc + eps)) * gi;
            s0[i] = acc;
            s1[i] = s1[i] * d1 + (u * u) * om1;
            p[i] -= u * lr;
        }
        break;
    case FC_RULE_ADAMAX:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T gi = g[i];
            const FC_T m = s0[i] * d1 + om1 * gi;
            const FC_T decayed = s1[i] * d2, magnitude = gi < 0 ? -gi : gi;
            const FC_T u = MAX_NAN(decayed, magnitude);
            s0[i] = m;
            s1[i] = u;
            p[i] -= (lr * m) / (u + eps);
        }
        break;
    case FC_RULE_NADAM:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T gi = g[i];
            const FC_T m = s0[i] * d1 + om1 * gi;
            const FC_T v = s1[i] * d2 + om2 * (gi * gi);
            const FC_T m_bar = cg * gi + cm * m;
            s0[i] = m;
            s1[i] = v;
            p[i] -= (lr * m_bar) / (FC_SQRT(v / vc) + eps);
        }
        break;
    case FC_RULE_ADAM:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T gi = g[i];
            const FC_T m = s0[i] + (gi - s0[i]) * om1;
            const FC_T v = s1[i] + (gi * gi - s1[i]) * om2;
            s0[i] = m;
            s1[i] = v;
            p[i] -= (m * lr) / (FC_SQRT(v) + eps);
        }
        break;
    case FC_RULE_ADAM_AMSGRAD:
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T gi = g[i];
            const FC_T m = s0[i] + (gi - s0[i]) * om1;
            const FC_T v = s1[i] + (gi * gi - s1[i]) * om2;
            const FC_T hat = MAX_NAN(s2[i], v);
            s0[i] = m;
            s1[i] = v;
            s2[i] = hat;
            p[i] -= (m * lr) / (FC_SQRT(hat) + eps);
        }
        break;
    default:
        break;
    }
}

int FCN(fc_optimizer_update)(int rule, FC_T *param, const FC_T *grad, FC_T *slot0,
                             FC_T *slot1, FC_T *slot2, int64_t n, const FC_T *coefficients,
                             int n_threads)
{
    static const int slots_of[FC_RULE_COUNT] = {0, 1, 1, 1, 2, 2, 3, 1, 2, 2, 2, 2, 3};
    if (rule < 0 || rule >= FC_RULE_COUNT || n < 0 || coefficients == NULL)
        return FC_ERR_ARG;
    const int needs = slots_of[rule];
    if (n > 0 && (param == NULL || grad == NULL || (needs > 0 && slot0 == NULL) ||
                  (needs > 1 && slot1 == NULL) || (needs > 2 && slot2 == NULL)))
        return FC_ERR_ARG;
    const int64_t block = 1 << 15;
    const int64_t nblocks = (n + block - 1) / block;
    const int nthreads = fc_pick_threads(n_threads, (double)n, nblocks);
    (void)nthreads;   /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
#endif
    for (int64_t b = 0; b < nblocks; ++b)
        FCN(update_block)(rule, param, grad, slot0, slot1, slot2, b * block,
                          (b + 1) * block < n ? (b + 1) * block : n, coefficients);
    return FC_OK;
}

/* Adam's public entry point: the ADAM (AMSGrad: ADAM_AMSGRAD, vhat the third
 * slot) rule, alpha the step's learning rate. */
int FCN(fc_adam_update)(FC_T *param, const FC_T *grad, FC_T *m, FC_T *v, FC_T *vhat, int64_t n,
                        FC_T alpha, FC_T one_minus_beta_1, FC_T one_minus_beta_2, FC_T epsilon,
                        int n_threads)
{
    FC_T c[FC_COEF_COUNT] = {0};
    c[FC_COEF_LR] = alpha;
    c[FC_COEF_ONE_MINUS_DECAY1] = one_minus_beta_1;
    c[FC_COEF_ONE_MINUS_DECAY2] = one_minus_beta_2;
    c[FC_COEF_EPSILON] = epsilon;
    return FCN(fc_optimizer_update)(vhat == NULL ? FC_RULE_ADAM : FC_RULE_ADAM_AMSGRAD, param,
                                    grad, m, v, vhat, n, c, n_threads);
}
