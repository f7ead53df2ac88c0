/*
 * fuzz_kernels.c: libFuzzer harness for the public C entry points of
 * fastconv (csrc/fastconv.h).
 *
 * Each input is decoded into one call: an op (conv forward, backward-input,
 * backward-kernel, max pool forward, backward), a SIMD path, a thread count
 * and the op's parameter struct. Parameter fields are mostly small (so most
 * calls are real, checkable work) and sometimes extreme (negative, zero,
 * 2**31, 2**62, INT64_MAX, ...).
 *
 * What must hold (the harness aborts otherwise, and ASan/UBSan catch the
 * rest):
 *  - parameters that break the contract (a size below its minimum, a pool
 *    window without a real cell) return a negative FC_ERR_* status;
 *  - for parameters within the contract, buffers are allocated with exactly
 *    the size the contract gives (so any out-of-bounds access is an ASan
 *    report), and the call returns FC_OK when every field is moderate;
 *  - a call that returns FC_OK wrote every output element, equal to a naive
 *    reference loop here (exact: the data are small dyadic values whose sums
 *    are exact in float32), and left its inputs untouched;
 *  - parameters too large to allocate are passed with NULL buffers: the call
 *    returns an error (or FC_OK for an empty problem) and touches nothing.
 *
 * Build and run: tools/run_fuzz.sh. Reproduce one input:
 *   build/fuzz/fuzz_kernels path/to/crash-file
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"

/* Buffers larger than this many floats are not allocated (NULL instead). */
#define MAX_FLOATS (1 << 15)
/* Reference work above this many multiply-adds is not checked. */
#define MAX_WORK (1 << 21)

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static unsigned next_byte(reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static const int64_t EDGES[16] = {
    -1, 0, 1, -2, INT64_MAX, INT64_MIN, INT32_MAX, (int64_t)INT32_MAX + 1,
    (int64_t)1 << 62, -((int64_t)1 << 62), (int64_t)1 << 40, (int64_t)1 << 24,
    65537, INT64_MAX / 2 + 1, 3037000500LL /* sqrt(INT64_MAX) */, (int64_t)1 << 32,
};

/* A field: usually lo + (byte % span), sometimes an extreme value. */
static int64_t field(reader *r, int64_t lo, int64_t span, int *extreme)
{
    const unsigned b = next_byte(r);
    if (b >= 244) {
        *extreme = 1;
        return EDGES[(b - 244) % 16];
    }
    return lo + (int64_t)(b % (unsigned)span);
}

static uint64_t rng_state;

static unsigned rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 11);
}

/* Small dyadic values: products and sums stay exact in float32. */
static float value(int nonfinite)
{
    static const float vals[] = {-2.0f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 2.0f};
    if (nonfinite) {
        const unsigned k = rnd() % 10;
        if (k == 0)
            return NAN;
        if (k == 1)
            return -INFINITY;
        if (k == 2)
            return INFINITY;
    }
    return vals[rnd() % 7];
}

/* n1 * n2 * ... with overflow and negativity checks: -1 when not a size. */
static int64_t count(int k, const int64_t *dims)
{
    __int128 total = 1;
    for (int i = 0; i < k; ++i) {
        if (dims[i] < 0)
            return -1;
        total *= dims[i];
        if (total > ((__int128)1 << 62))
            return -1;
    }
    return (int64_t)total;
}

/* Loop trips of a reference: like count(), a zero extent counting as 1. */
static int64_t trips(int k, const int64_t *dims)
{
    int64_t ones[8];
    for (int i = 0; i < k; ++i)
        ones[i] = dims[i] == 0 ? 1 : dims[i];
    return count(k, ones);
}

static float *alloc_floats(int64_t n, int nonfinite)
{
    /* Exactly n floats: one past the end is an ASan report. */
    float *p = (float *)malloc((size_t)n * sizeof(float));
    if (p == NULL)
        abort();
    for (int64_t i = 0; i < n; ++i)
        p[i] = value(nonfinite);
    return p;
}

static float *dup_floats(const float *src, int64_t n)
{
    float *p = (float *)malloc((size_t)n * sizeof(float));
    if (p == NULL)
        abort();
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

static void fill_sentinel(float *p, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        p[i] = 12345.0f; /* never a result of the dyadic data */
}

static int same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return a == b;
}

static void fail(const char *what, int64_t index, float got, float want)
{
    fprintf(stderr, "fuzz_kernels: %s mismatch at %lld: got %g, want %g\n", what,
            (long long)index, (double)got, (double)want);
    abort();
}

static void check_equal(const char *what, const float *got, const float *want, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        if (!same_float(got[i], want[i]))
            fail(what, i, got[i], want[i]);
}

static void check_untouched(const char *what, const float *now, const float *before, int64_t n)
{
    if (n > 0 && memcmp(now, before, (size_t)n * sizeof(float)) != 0) {
        fprintf(stderr, "fuzz_kernels: input %s was modified\n", what);
        abort();
    }
}

static void expect_status(int status, int allowed_ok)
{
    if (status == FC_OK && allowed_ok)
        return;
    if (status == FC_ERR_ARG || status == FC_ERR_NOMEM || status == FC_ERR_OVERFLOW)
        return;
    fprintf(stderr, "fuzz_kernels: unexpected status %d\n", status);
    abort();
}

/* ------------------------------------------------------------------------ */
/* Convolution                                                               */

typedef __int128 wide;

/* Input row/column of output position o through tap i; wide: no overflow. */
static wide in_pos(int64_t o, int64_t stride, int64_t pad, int64_t i, int64_t dil)
{
    return (wide)o * stride - pad + (wide)i * dil;
}

static void ref_conv_forward(const fc_conv2d_params *p, const float *x, const float *k,
                             const float *bias, float *y)
{
    for (int64_t b = 0; b < p->n; ++b)
        for (int64_t oh = 0; oh < p->out_h; ++oh)
            for (int64_t ow = 0; ow < p->out_w; ++ow)
                for (int64_t co = 0; co < p->c_out; ++co) {
                    float acc = bias ? bias[co] : 0.0f;
                    for (int64_t i = 0; i < p->kh; ++i) {
                        const wide ih = in_pos(oh, p->stride_h, p->pad_top, i, p->dilation_h);
                        if (ih < 0 || ih >= p->h)
                            continue;
                        for (int64_t j = 0; j < p->kw; ++j) {
                            const wide iw = in_pos(ow, p->stride_w, p->pad_left, j, p->dilation_w);
                            if (iw < 0 || iw >= p->w)
                                continue;
                            for (int64_t c = 0; c < p->c_in; ++c)
                                acc += x[((b * p->h + (int64_t)ih) * p->w + (int64_t)iw) * p->c_in +
                                         c] *
                                       k[((i * p->kw + j) * p->c_in + c) * p->c_out + co];
                        }
                    }
                    if (p->relu && acc < 0.0f)
                        acc = 0.0f;
                    y[((b * p->out_h + oh) * p->out_w + ow) * p->c_out + co] = acc;
                }
}

/* dx and dkernel/dbias together: every (output, tap) pair adds its terms. */
static void ref_conv_backward(const fc_conv2d_params *p, const float *dy, const float *x,
                              const float *k, float *dx, float *dk, float *db)
{
    const int64_t nx = p->n * p->h * p->w * p->c_in;
    const int64_t nk = p->kh * p->kw * p->c_in * p->c_out;
    memset(dx, 0, (size_t)nx * sizeof(float));
    memset(dk, 0, (size_t)nk * sizeof(float));
    memset(db, 0, (size_t)p->c_out * sizeof(float));
    for (int64_t b = 0; b < p->n; ++b)
        for (int64_t oh = 0; oh < p->out_h; ++oh)
            for (int64_t ow = 0; ow < p->out_w; ++ow) {
                const float *g = dy + ((b * p->out_h + oh) * p->out_w + ow) * p->c_out;
                for (int64_t co = 0; co < p->c_out; ++co)
                    db[co] += g[co];
                for (int64_t i = 0; i < p->kh; ++i) {
                    const wide ih = in_pos(oh, p->stride_h, p->pad_top, i, p->dilation_h);
                    if (ih < 0 || ih >= p->h)
                        continue;
                    for (int64_t j = 0; j < p->kw; ++j) {
                        const wide iw = in_pos(ow, p->stride_w, p->pad_left, j, p->dilation_w);
                        if (iw < 0 || iw >= p->w)
                            continue;
                        const int64_t xo =
                            ((b * p->h + (int64_t)ih) * p->w + (int64_t)iw) * p->c_in;
                        for (int64_t c = 0; c < p->c_in; ++c)
                            for (int64_t co = 0; co < p->c_out; ++co) {
                                const int64_t ko = ((i * p->kw + j) * p->c_in + c) * p->c_out + co;
                                dx[xo + c] += g[co] * k[ko];
                                dk[ko] += g[co] * x[xo + c];
                            }
                    }
                }
            }
}

static void fuzz_conv(reader *r, int op, int n_threads, unsigned flags)
{
    fc_conv2d_params p;
    int extreme = 0;
    memset(&p, 0, sizeof p);
    p.n = field(r, 0, 4, &extreme);
    p.h = field(r, 0, 12, &extreme);
    p.w = field(r, 0, 12, &extreme);
    p.c_in = field(r, 0, 24, &extreme);
    p.kh = field(r, 0, 6, &extreme);
    p.kw = field(r, 0, 6, &extreme);
    p.c_out = field(r, 0, 80, &extreme);
    p.stride_h = field(r, 0, 5, &extreme);
    p.stride_w = field(r, 0, 5, &extreme);
    p.dilation_h = field(r, 0, 4, &extreme);
    p.dilation_w = field(r, 0, 4, &extreme);
    p.pad_top = field(r, 0, 6, &extreme);
    p.pad_left = field(r, 0, 6, &extreme);
    const int64_t pad_bottom = field(r, 0, 6, &extreme);
    const int64_t pad_right = field(r, 0, 6, &extreme);
    if (flags & 16) {
        /* Any output size the caller likes (the contract allows it). */
        p.out_h = field(r, 0, 14, &extreme);
        p.out_w = field(r, 0, 14, &extreme);
    } else {
        /* The natural size for these pads (TF-style when pads are "same"). */
        const wide ke_h = ((wide)p.kh - 1) * p.dilation_h + 1;
        const wide ke_w = ((wide)p.kw - 1) * p.dilation_w + 1;
        const wide oh =
            p.stride_h > 0 ? ((wide)p.h + p.pad_top + pad_bottom - ke_h) / p.stride_h + 1 : 0;
        const wide ow =
            p.stride_w > 0 ? ((wide)p.w + p.pad_left + pad_right - ke_w) / p.stride_w + 1 : 0;
        p.out_h = oh > INT64_MAX || oh < INT64_MIN ? 0 : (int64_t)oh;
        p.out_w = ow > INT64_MAX || ow < INT64_MIN ? 0 : (int64_t)ow;
    }
    p.relu = (flags >> 5) & 1;
    p.n_threads = n_threads;

    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr,
                "conv op=%d threads=%d simd=%s n=%lld h=%lld w=%lld c_in=%lld kh=%lld kw=%lld "
                "c_out=%lld out_h=%lld out_w=%lld stride=(%lld,%lld) dilation=(%lld,%lld) "
                "pad_top=%lld pad_left=%lld relu=%d bias=%d\n",
                op, n_threads, fc_simd_name(fc_get_simd()), (long long)p.n, (long long)p.h,
                (long long)p.w, (long long)p.c_in, (long long)p.kh, (long long)p.kw,
                (long long)p.c_out, (long long)p.out_h, (long long)p.out_w,
                (long long)p.stride_h, (long long)p.stride_w, (long long)p.dilation_h,
                (long long)p.dilation_w, (long long)p.pad_top, (long long)p.pad_left, p.relu,
                (int)((flags >> 6) & 1));
    const int valid = p.n >= 0 && p.h >= 1 && p.w >= 1 && p.c_in >= 0 && p.kh >= 1 &&
                      p.kw >= 1 && p.c_out >= 0 && p.out_h >= 1 && p.out_w >= 1 &&
                      p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 &&
                      p.dilation_w >= 1 && p.pad_top >= 0 && p.pad_left >= 0 &&
                      /* fastconv.h: pads within the dilated kernel's reach */
                      (wide)p.pad_top <= ((wide)p.kh - 1) * p.dilation_h &&
                      (wide)p.pad_left <= ((wide)p.kw - 1) * p.dilation_w;
    const int64_t dx_dims[] = {p.n, p.h, p.w, p.c_in};
    const int64_t dy_dims[] = {p.n, p.out_h, p.out_w, p.c_out};
    const int64_t k_dims[] = {p.kh, p.kw, p.c_in, p.c_out};
    const int64_t work_dims[] = {p.n, p.out_h, p.out_w, p.kh, p.kw, p.c_in, p.c_out};
    const int64_t nx = count(4, dx_dims), ny = count(4, dy_dims), nk = count(4, k_dims);
    const int64_t work = trips(7, work_dims);
    const int small = valid && nx >= 0 && ny >= 0 && nk >= 0 && work >= 0 &&
                      nx <= MAX_FLOATS && ny <= MAX_FLOATS && nk <= MAX_FLOATS &&
                      work <= MAX_WORK;
    const int with_bias = (flags >> 6) & 1;

    if (!small) {
        /* Contract broken, or too big to allocate: NULL buffers. */
        int status;
        float *none = NULL;
        if (op == 0)
            status = fc_conv2d_forward(&p, none, none, none, none);
        else if (op == 1)
            status = fc_conv2d_backward_input(&p, none, none, none);
        else
            status = fc_conv2d_backward_kernel(&p, none, none, none, with_bias ? none : NULL);
        if (!valid && status == FC_OK) {
            fprintf(stderr, "fuzz_kernels: conv op %d accepted invalid parameters\n", op);
            abort();
        }
        /* Valid but unallocated: FC_OK only for an empty problem. */
        expect_status(status, valid && (p.n == 0 || p.c_out == 0 || p.c_in == 0));
        return;
    }

    float *x = alloc_floats(nx, 0), *k = alloc_floats(nk, 0), *dy = alloc_floats(ny, 0);
    float *bias = alloc_floats(p.c_out, 0);
    float *x0 = dup_floats(x, nx), *k0 = dup_floats(k, nk), *dy0 = dup_floats(dy, ny);
    float *bias0 = dup_floats(bias, p.c_out);
    int status;
    if (op == 0) {
        float *y = (float *)malloc((size_t)ny * sizeof(float));
        float *want = (float *)malloc((size_t)ny * sizeof(float) + 1);
        fill_sentinel(y, ny);
        status = fc_conv2d_forward(&p, x, k, with_bias ? bias : NULL, y);
        expect_status(status, 1);
        if (status == FC_OK) {
            ref_conv_forward(&p, x, k, with_bias ? bias : NULL, want);
            check_equal("conv forward y", y, want, ny);
        } else if (!extreme) {
            fprintf(stderr, "fuzz_kernels: conv forward refused moderate parameters (%d)\n",
                    status);
            abort();
        }
        free(y);
        free(want);
    } else {
        float *got_dx = (float *)malloc((size_t)nx * sizeof(float));
        float *got_dk = (float *)malloc((size_t)nk * sizeof(float));
        float *got_db = (float *)malloc((size_t)p.c_out * sizeof(float));
        float *dx = (float *)malloc((size_t)nx * sizeof(float) + 1);
        float *dk = (float *)malloc((size_t)nk * sizeof(float) + 1);
        float *db = (float *)malloc((size_t)p.c_out * sizeof(float) + 1);
        fill_sentinel(got_dx, nx);
        fill_sentinel(got_dk, nk);
        fill_sentinel(got_db, p.c_out);
        if (op == 1)
            status = fc_conv2d_backward_input(&p, dy, k, got_dx);
        else
            status = fc_conv2d_backward_kernel(&p, dy, x, got_dk, with_bias ? got_db : NULL);
        expect_status(status, 1);
        if (status == FC_OK) {
            ref_conv_backward(&p, dy, x, k, dx, dk, db);
            /* Every output element, empty problems included (zeros). */
            if (op == 1) {
                check_equal("conv backward dx", got_dx, dx, nx);
            } else {
                check_equal("conv backward dkernel", got_dk, dk, nk);
                if (with_bias)
                    check_equal("conv backward dbias", got_db, db, p.c_out);
            }
        } else if (!extreme) {
            fprintf(stderr, "fuzz_kernels: conv backward refused moderate parameters (%d)\n",
                    status);
            abort();
        }
        free(got_dx);
        free(got_dk);
        free(got_db);
        free(dx);
        free(dk);
        free(db);
    }
    check_untouched("x", x, x0, nx);
    check_untouched("kernel", k, k0, nk);
    check_untouched("dy", dy, dy0, ny);
    check_untouched("bias", bias, bias0, p.c_out);
    free(x);
    free(k);
    free(dy);
    free(bias);
    free(x0);
    free(k0);
    free(dy0);
    free(bias0);
}

/* ------------------------------------------------------------------------ */
/* Max pooling                                                               */

/* Index (into x) of the winner of window (b, oh, ow, c): the first maximum
 * in row-major order, a NaN beating every number and the first NaN kept;
 * padded cells never take part. -1 for a window without a real cell. */
static int64_t ref_pool_winner(const fc_pool2d_params *p, const float *x, int64_t b, int64_t oh,
                               int64_t ow, int64_t c)
{
    int64_t best = -1;
    for (int64_t i = 0; i < p->pool_h; ++i) {
        const wide ih = (wide)oh * p->stride_h - p->pad_top + i;
        if (ih < 0 || ih >= p->h)
            continue;
        for (int64_t j = 0; j < p->pool_w; ++j) {
            const wide iw = (wide)ow * p->stride_w - p->pad_left + j;
            if (iw < 0 || iw >= p->w)
                continue;
            const int64_t at = ((b * p->h + (int64_t)ih) * p->w + (int64_t)iw) * p->c + c;
            if (best < 0) {
                best = at;
                continue;
            }
            const float v = x[at], m = x[best];
            if (v > m || (isnan(v) && !isnan(m)))
                best = at;
        }
    }
    return best;
}

static void fuzz_pool(reader *r, int op, int n_threads, unsigned flags)
{
    fc_pool2d_params p;
    int extreme = 0;
    memset(&p, 0, sizeof p);
    p.n = field(r, 0, 4, &extreme);
    p.h = field(r, 0, 11, &extreme);
    p.w = field(r, 0, 11, &extreme);
    p.c = field(r, 0, 72, &extreme);
    p.pool_h = field(r, 0, 6, &extreme);
    p.pool_w = field(r, 0, 6, &extreme);
    p.stride_h = field(r, 0, 6, &extreme);
    p.stride_w = field(r, 0, 6, &extreme);
    p.pad_top = field(r, 0, 5, &extreme);
    p.pad_left = field(r, 0, 5, &extreme);
    const int64_t pad_bottom = field(r, 0, 5, &extreme);
    const int64_t pad_right = field(r, 0, 5, &extreme);
    if (flags & 16) {
        p.out_h = field(r, 0, 13, &extreme);
        p.out_w = field(r, 0, 13, &extreme);
    } else {
        const wide oh =
            p.stride_h > 0 ? ((wide)p.h + p.pad_top + pad_bottom - p.pool_h) / p.stride_h + 1 : 0;
        const wide ow =
            p.stride_w > 0 ? ((wide)p.w + p.pad_left + pad_right - p.pool_w) / p.stride_w + 1 : 0;
        p.out_h = oh > INT64_MAX || oh < INT64_MIN ? 0 : (int64_t)oh;
        p.out_w = ow > INT64_MAX || ow < INT64_MIN ? 0 : (int64_t)ow;
    }
    p.n_threads = n_threads;

    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr,
                "pool op=%d threads=%d simd=%s n=%lld h=%lld w=%lld c=%lld pool=(%lld,%lld) "
                "out_h=%lld out_w=%lld stride=(%lld,%lld) pad_top=%lld pad_left=%lld "
                "nonfinite=%d\n",
                op, n_threads, fc_simd_name(fc_get_simd()), (long long)p.n, (long long)p.h,
                (long long)p.w, (long long)p.c, (long long)p.pool_h, (long long)p.pool_w,
                (long long)p.out_h, (long long)p.out_w, (long long)p.stride_h,
                (long long)p.stride_w, (long long)p.pad_top, (long long)p.pad_left,
                (int)((flags >> 5) & 1));
    /* fastconv.h: every window must hold a real cell. */
    int valid = p.n >= 0 && p.h >= 1 && p.w >= 1 && p.c >= 0 && p.pool_h >= 1 &&
                p.pool_w >= 1 && p.out_h >= 1 && p.out_w >= 1 && p.stride_h >= 1 &&
                p.stride_w >= 1 && p.pad_top >= 0 && p.pad_left >= 0;
    if (valid)
        valid = p.pad_top < p.pool_h && p.pad_left < p.pool_w &&
                (wide)(p.out_h - 1) * p.stride_h - p.pad_top < p.h &&
                (wide)(p.out_w - 1) * p.stride_w - p.pad_left < p.w;
    const int64_t x_dims[] = {p.n, p.h, p.w, p.c};
    const int64_t y_dims[] = {p.n, p.out_h, p.out_w, p.c};
    const int64_t work_dims[] = {p.n, p.out_h, p.out_w, p.c, p.pool_h, p.pool_w};
    const int64_t nx = count(4, x_dims), ny = count(4, y_dims), work = trips(6, work_dims);
    const int small = valid && nx >= 0 && ny >= 0 && work >= 0 && nx <= MAX_FLOATS &&
                      ny <= MAX_FLOATS && work <= MAX_WORK;

    if (!small) {
        const int status = op == 3 ? fc_max_pool2d_forward(&p, NULL, NULL)
                                   : fc_max_pool2d_backward(&p, NULL, NULL, NULL);
        if (!valid && status == FC_OK) {
            fprintf(stderr, "fuzz_kernels: pool op accepted invalid parameters\n");
            abort();
        }
        expect_status(status, valid && (p.n == 0 || p.c == 0));
        return;
    }

    const int nonfinite = (flags >> 5) & 1;
    float *x = alloc_floats(nx, nonfinite), *dy = alloc_floats(ny, 0);
    float *x0 = dup_floats(x, nx), *dy0 = dup_floats(dy, ny);
    int status;
    if (op == 3) {
        float *y = (float *)malloc((size_t)ny * sizeof(float));
        fill_sentinel(y, ny);
        status = fc_max_pool2d_forward(&p, x, y);
        expect_status(status, 1);
        if (status == FC_OK) {
            for (int64_t b = 0; b < p.n; ++b)
                for (int64_t oh = 0; oh < p.out_h; ++oh)
                    for (int64_t ow = 0; ow < p.out_w; ++ow)
                        for (int64_t c = 0; c < p.c; ++c) {
                            const int64_t at = ((b * p.out_h + oh) * p.out_w + ow) * p.c + c;
                            const int64_t win = ref_pool_winner(&p, x, b, oh, ow, c);
                            if (win < 0)
                                abort(); /* the validity model above is wrong */
                            if (!same_float(y[at], x[win]))
                                fail("max pool forward y", at, y[at], x[win]);
                        }
        } else if (!extreme) {
            fprintf(stderr, "fuzz_kernels: pool forward refused moderate parameters (%d)\n",
                    status);
            abort();
        }
        free(y);
    } else {
        float *dx = (float *)malloc((size_t)nx * sizeof(float));
        float *want = (float *)calloc((size_t)nx + 1, sizeof(float));
        fill_sentinel(dx, nx);
        status = fc_max_pool2d_backward(&p, dy, x, dx);
        expect_status(status, 1);
        if (status == FC_OK) {
            for (int64_t b = 0; b < p.n; ++b)
                for (int64_t oh = 0; oh < p.out_h; ++oh)
                    for (int64_t ow = 0; ow < p.out_w; ++ow)
                        for (int64_t c = 0; c < p.c; ++c) {
                            const int64_t win = ref_pool_winner(&p, x, b, oh, ow, c);
                            if (win < 0)
                                abort();
                            want[win] += dy[((b * p.out_h + oh) * p.out_w + ow) * p.c + c];
                        }
            check_equal("max pool backward dx", dx, want, nx);
        } else if (!extreme) {
            fprintf(stderr, "fuzz_kernels: pool backward refused moderate parameters (%d)\n",
                    status);
            abort();
        }
        free(dx);
        free(want);
    }
    check_untouched("x", x, x0, nx);
    check_untouched("dy", dy, dy0, ny);
    free(x);
    free(dy);
    free(x0);
    free(dy0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    const unsigned op = next_byte(&r) % 5;
    const unsigned simd = next_byte(&r) % FC_SIMD_COUNT;
    const int n_threads = (int)(next_byte(&r) % 4); /* 0: the OpenMP default */
    const unsigned flags = next_byte(&r);
    rng_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)next_byte(&r) << 8 | next_byte(&r));
    if (rng_state == 0)
        rng_state = 1;
    if (fc_set_simd((int)simd) != FC_OK)
        fc_set_simd(FC_SIMD_GENERIC);
    if (op < 3)
        fuzz_conv(&r, (int)op, n_threads, flags);
    else
        fuzz_pool(&r, (int)op, n_threads, flags);
    return 0;
}
