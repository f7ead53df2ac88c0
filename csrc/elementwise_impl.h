/*
 * elementwise_impl.h: the element-wise helpers for one element type (FC_T,
 * names through FCN, FC_SQRT), compiled twice by elementwise.c. No include
 * guard, on purpose.
 */

int FCN(fc_relu_backward)(const FC_T *FC_RESTRICT dy, const FC_T *FC_RESTRICT y,
                          FC_T *FC_RESTRICT out, int64_t n, int n_threads)
{
    if (n < 0 || (n > 0 && (dy == NULL || y == NULL || out == NULL)))
        return FC_ERR_ARG;
    const int64_t block = 1 << 16;
    const int64_t nblocks = (n + block - 1) / block;
    const int nthreads = fc_pick_threads(n_threads, (double)n / 4.0, nblocks);
    (void)nthreads;   /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
#endif
    for (int64_t b = 0; b < nblocks; ++b) {
        const int64_t end = (b + 1) * block < n ? (b + 1) * block : n;
        for (int64_t i = b * block; i < end; ++i)
            out[i] = dy[i] * (FC_T)FCN(positive)(y[i]);
    }
    return FC_OK;
}

FC_NO_CONTRACT_FN
static void FCN(adam_block)(FC_T *FC_RESTRICT param, const FC_T *FC_RESTRICT grad,
                            FC_T *FC_RESTRICT m, FC_T *FC_RESTRICT v, FC_T *FC_RESTRICT vhat,
                            int64_t i0, int64_t i1, FC_T alpha, FC_T one_minus_beta_1,
                            FC_T one_minus_beta_2, FC_T epsilon)
{
    FC_NO_CONTRACT
    if (vhat == NULL) {
        for (int64_t i = i0; i < i1; ++i) {
            const FC_T g = grad[i];
            const FC_T mi = m[i] + (g - m[i]) * one_minus_beta_1;
            const FC_T vi = v[i] + (g * g - v[i]) * one_minus_beta_2;
            m[i] = mi;
            v[i] = vi;
            param[i] -= (mi * alpha) / (FC_SQRT(vi) + epsilon);
        }
        return;
    }
    for (int64_t i = i0; i < i1; ++i) {
        const FC_T g = grad[i];
        const FC_T mi = m[i] + (g - m[i]) * one_minus_beta_1;
        const FC_T vi = v[i] + (g * g - v[i]) * one_minus_beta_2;
        const FC_T hi = MAX_NAN(vhat[i], vi);
        m[i] = mi;
        v[i] = vi;
        vhat[i] = hi;
        param[i] -= (mi * alpha) / (FC_SQRT(hi) + epsilon);
    }
}

int FCN(fc_adam_update)(FC_T *param, const FC_T *grad, FC_T *m, FC_T *v, FC_T *vhat, int64_t n,
                        FC_T alpha, FC_T one_minus_beta_1, FC_T one_minus_beta_2, FC_T epsilon,
                        int n_threads)
{
    if (n < 0 || (n > 0 && (param == NULL || grad == NULL || m == NULL || v == NULL)))
        return FC_ERR_ARG;
    const int64_t block = 1 << 15;
    const int64_t nblocks = (n + block - 1) / block;
    const int nthreads = fc_pick_threads(n_threads, (double)n, nblocks);
    (void)nthreads;   /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
#endif
    for (int64_t b = 0; b < nblocks; ++b)
        FCN(adam_block)(param, grad, m, v, vhat, b * block,
                        (b + 1) * block < n ? (b + 1) * block : n, alpha, one_minus_beta_1,
                        one_minus_beta_2, epsilon);
    return FC_OK;
}
