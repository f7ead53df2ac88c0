/*
 * fastconv.h: the C interface of fastconv's kernels.
 *
 * Plain C99, no Python. Layouts: activations NHWC, kernels HWIO
 * (kh, kw, c_in, c_out), bias (c_out), C-contiguous. Every kernel exists in
 * float32 (fc_conv2d_forward, ...) and float64 (the same name + _f64, same
 * arguments with double in place of float); float32 layers may run by
 * Winograd (below), float64 ones always directly.
 * The caller resolves sizes and padding (fastconv/shapes.py does it for the
 * Python package) and allocates every output array. The functions allocate
 * only per-call scratch (packed weights, per-thread pointer tables, partial
 * sums of the weight gradient) and free it before returning.
 *
 * Every function returns FC_OK or a negative FC_ERR_* status; on error the
 * outputs are unspecified. Results never depend on n_threads: the backward
 * reductions are split into chunks fixed by the problem's shape and summed
 * in chunk order, so they are bitwise identical for any thread count.
 *
 * All functions are reentrant and may be called from several threads at once.
 */
#ifndef FASTCONV_H
#define FASTCONV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    FC_OK = 0,
    FC_ERR_ARG = -1,      /* a size, stride, pad or pointer is invalid */
    FC_ERR_NOMEM = -2,    /* scratch memory could not be allocated */
    FC_ERR_OVERFLOW = -3, /* a size product overflows 64-bit arithmetic */
    FC_ERR_SIMD = -4,     /* the requested SIMD path is not available */
    FC_DECLINED = -5      /* a fused path does not apply: compute it unfused */
};

/* Values of fc_conv2d_params.relu. */
enum { FC_ACT_NONE = 0, FC_ACT_RELU = 1, FC_ACT_RELU6 = 2 };

/* Geometry of a 2-D convolution. Output sizes and the top/left pads are
 * resolved by the caller; bottom/right pads are implied by out_h/out_w.
 * Pads may not exceed the dilated kernel's reach ((k - 1) * d); TensorFlow's
 * never do. */
typedef struct fc_conv2d_params {
    int64_t n, h, w, c_in;          /* input  (n, h, w, c_in)       */
    int64_t kh, kw, c_out;          /* kernel (kh, kw, c_in, c_out) */
    int64_t out_h, out_w;           /* output (n, out_h, out_w, c_out) */
    int64_t stride_h, stride_w;
    int64_t dilation_h, dilation_w;
    int64_t pad_top, pad_left;
    int relu;                       /* forward only: the fused activation, 0 none,
                                       FC_ACT_RELU max(y, 0), FC_ACT_RELU6
                                       min(max(y, 0), 6) (convolution and depthwise
                                       forward; the transposed one takes 0 or 1) */
    int n_threads;                  /* <= 0: the OpenMP default; at most
                                       max(16, 4 x processors) are used */
    int64_t groups;                 /* 0 or 1: every output channel sees every
                                       input channel; g > 1: c_in and c_out are
                                       multiples of g, output channel o sees the
                                       c_in / g inputs of group o / (c_out / g),
                                       and the kernel is (kh, kw, c_in / g, c_out) */
    int channels_first;             /* x, y, dx, dy are NCHW and the kernel is
                                       OIHW (c_out, c_in / g, kh, kw) */
} fc_conv2d_params;

/* Geometry of a 2-D pooling window op (no dilation). Input (n, h, w, c),
 * output (n, out_h, out_w, c); bottom/right pads are implied by out_h/out_w
 * and every window must hold at least one real cell. */
typedef struct fc_pool2d_params {
    int64_t n, h, w, c;
    int64_t pool_h, pool_w;
    int64_t out_h, out_w;
    int64_t stride_h, stride_w;
    int64_t pad_top, pad_left;
    int n_threads;
    int channels_first;             /* x, y, dx, dy are NCHW (sizes above stay
                                       n, h, w, c) */
    int count_include_pad;          /* average pooling: divide by pool_h * pool_w
                                       instead of the window's real cells */
} fc_pool2d_params;

/* Upsampling by integer factors: input (n, h, w, c), output
 * (n, h * size_h, w * size_w, c), NCHW when channels_first. */
typedef struct fc_upsample_params {
    int64_t n, h, w, c;
    int64_t size_h, size_w;
    int bilinear;                   /* 0: nearest (repeat), else bilinear */
    int channels_first;
    int n_threads;
} fc_upsample_params;

/* y = act(conv(x, kernel) + bias); bias may be NULL. */
int fc_conv2d_forward(const fc_conv2d_params *p, const float *x,
                      const float *kernel, const float *bias, float *y);

/* y = the 2x2 stride-2 max pooling of act(conv(x, kernel) + bias), of
 * pool_h x pool_w (out_h / 2 and out_w / 2, each rounded down: 'valid'
 * pooling, or up: 'same', windows then clipped), without storing the
 * convolution: for channels-last layers that fc_conv2d_forward runs by
 * Winograd F(2x2, 3x3), whose 2x2 output tiles are the windows. Returns
 * FC_DECLINED for other layers (fc_conv2d_maxpool2x2_fuses(p) is 0) and when
 * an output is NaN or infinite (y is then unspecified): compute it unfused.
 * Equal to the unfused result bit for bit. */
int fc_conv2d_maxpool2x2_fuses(const fc_conv2d_params *p);

/* Prepared kernels of float32 channels-last layers: made once, for calls
 * that reuse the kernel. For the layers above (fc_conv2d_maxpool2x2_fuses)
 * the kernel's Winograd transform; for the other one-group layers the
 * indirect GEMM runs (not the first-layer or few-sample paths) the kernel
 * packed into the GEMM's panels. The prepared array holds
 * fc_conv2d_prepared_kernel_floats(p) floats (0: the layer has none;
 * fc_conv2d_prepare_kernel then returns FC_DECLINED), headed by what it holds
 * and for which SIMD path. fc_conv2d_forward_prepared is fc_conv2d_forward
 * (pool_h = 0) or fc_conv2d_forward_maxpool2x2 (Winograd layers) with it in
 * place of the kernel, bit for bit; FC_DECLINED when an output is NaN or
 * infinite (Winograd), or when the prepared array was made under another
 * dispatch (fc_set_simd, fc_set_winograd since): compute it from the kernel
 * then. */
int64_t fc_conv2d_prepared_kernel_floats(const fc_conv2d_params *p);
int fc_conv2d_prepare_kernel(const fc_conv2d_params *p, const float *kernel, float *prepared);
int fc_conv2d_forward_prepared(const fc_conv2d_params *p, const float *x, const float *prepared,
                               const float *bias, float *y, int64_t pool_h, int64_t pool_w);
int fc_conv2d_forward_maxpool2x2(const fc_conv2d_params *p, const float *x, const float *kernel,
                                 const float *bias, float *y, int64_t pool_h, int64_t pool_w);

/* dx = gradient with respect to x, for the pre-activation gradient dy. */
int fc_conv2d_backward_input(const fc_conv2d_params *p, const float *dy,
                             const float *kernel, float *dx);

/* The transposed convolution of the layer p: y = act(the input gradient
 * of p for x + bias), where x has p's output shape (n, out_h, out_w, c_out),
 * y its input shape (n, h, w, c_in), bias (c_in) or NULL, act is ReLU when
 * p->relu. (Keras' Conv2DTranspose and PyTorch's conv_transpose2d.) */
int fc_conv2d_transpose(const fc_conv2d_params *p, const float *x, const float *kernel,
                        const float *bias, float *y);

/* dkernel (HWIO) and, unless NULL, dbias = dy summed over n, h, w. */
int fc_conv2d_backward_kernel(const fc_conv2d_params *p, const float *dy,
                              const float *x, float *dkernel, float *dbias);

/* Max pooling, NHWC or (p->channels_first) NCHW, the same results in both.
 * Padded cells never win; a NaN in a window wins (and the first NaN gets the
 * gradient); otherwise the first maximum in row-major window order gets the
 * gradient. Overlapping windows accumulate, in row-major window order. */
int fc_max_pool2d_forward(const fc_pool2d_params *p, const float *x, float *y);
int fc_max_pool2d_backward(const fc_pool2d_params *p, const float *dy,
                           const float *x, float *dx);

/* Average pooling. A window's divisor is its number of real (non-padded)
 * cells (Keras 'same'), or pool_h * pool_w with p->count_include_pad. The
 * backward sends dy / divisor to every cell of the window; a cell gets the
 * sum over the windows holding it, in row-major window order (0 where no
 * window holds it). x is not needed. */
int fc_avg_pool2d_forward(const fc_pool2d_params *p, const float *x, float *y);
int fc_avg_pool2d_backward(const fc_pool2d_params *p, const float *dy, float *dx);

/* Global pooling over h and w: y and dy are (n, c) in either layout. Only
 * p->n, h, w, c, channels_first and n_threads are read (the pool, stride,
 * pad, out and count_include_pad fields are ignored). The average sums in
 * float64, in a fixed order; the backward spreads dy / (h * w) over the
 * image. The maximum follows max pooling's rules (a NaN wins, else the first
 * maximum in row-major (h, w) order), and its backward sends dy to that one
 * cell, 0 elsewhere. */
int fc_global_avg_pool2d(const fc_pool2d_params *p, const float *x, float *y);
int fc_global_avg_pool2d_backward(const fc_pool2d_params *p, const float *dy, float *dx);
int fc_global_max_pool2d(const fc_pool2d_params *p, const float *x, float *y);
int fc_global_max_pool2d_backward(const fc_pool2d_params *p, const float *dy, const float *x,
                                  float *dx);

/* Upsampling. Nearest repeats each cell size_h x size_w times (Keras
 * UpSampling2D); bilinear is tf.image.resize's with half-pixel centres
 * (= PyTorch's interpolate, align_corners=False): output index d reads the
 * source coordinate (d + 0.5) / size - 0.5 clamped to [0, in - 1], from its
 * floor and the next cell (the last cell alone at the edge), weights linear
 * in the fraction; a whole coordinate reads one cell. The backward is the
 * transpose (dx sums each dy cell times the weight it read dx with). */
int fc_upsample2d_forward(const fc_upsample_params *p, const float *x, float *y);
int fc_upsample2d_backward(const fc_upsample_params *p, const float *dy, float *dx);

/* y = np.maximum(x, 0), element-wise over n floats (NaN stays NaN, -0
 * becomes +0); y and x do not overlap. */
int fc_relu_forward(const float *x, float *y, int64_t n, int n_threads);

/* out = dy * (y > 0), element-wise over n floats; out overlaps neither. */
int fc_relu_backward(const float *dy, const float *y, float *out, int64_t n, int n_threads);

/* y = a + b, element-wise over n floats, then (relu != 0) np.maximum(y, 0)
 * as fc_relu_forward: NumPy's add (and maximum) bit for bit. y may be a or b. */
int fc_add(const float *a, const float *b, float *y, int64_t n, int relu, int n_threads);

/* One Adam step over n floats, in place, as NumPy computes it in float32:
 *   m += (grad - m) * one_minus_beta_1;  v += (grad * grad - v) * one_minus_beta_2;
 *   vhat = max(vhat, v) when vhat is not NULL (AMSGrad), then u = vhat, else u = v;
 *   param -= (m * alpha) / (sqrt(u) + epsilon).
 * The arrays must not overlap. */
int fc_adam_update(float *param, const float *grad, float *m, float *v, float *vhat, int64_t n,
                   float alpha, float one_minus_beta_1, float one_minus_beta_2, float epsilon,
                   int n_threads);

/* Optimizer rules of fc_optimizer_update, element-wise over n values, in
 * place, as NumPy computes them (NumPy's operation order, one rounding each;
 * no FMA). g: grad; p: param; s0, s1, s2: the rule's slots; c[FC_COEF_*]
 * the coefficients below, already rounded to the element type.
 *   SGD               p -= g * lr
 *   MOMENTUM          s0 = s0 * mom - g * lr;  p += s0
 *   NESTEROV          same s0;  p += s0 * mom - g * lr
 *   RMSPROP           s0 = s0 * d1 + om1 * (g * g);  p -= (lr * g) / (sqrt(s0) + eps)
 *   RMSPROP_CENTERED  also s1 = s1 * d1 + om1 * g, and sqrt(s0 - s1 * s1)
 *   RMSPROP_MOMENTUM  s0 += (g * g - s0) * om1;  s1 = s1 * mom + (g * lr) / sqrt(s0 + eps);
 *                     p -= s1
 *   RMSPROP_MOMENTUM_CENTERED  also s2 += (g - s2) * om1, and sqrt((s0 - s2 * s2) + eps)
 *   ADAGRAD           s0 += g * g;  p -= (lr * g) / (sqrt(s0) + eps)
 *   ADADELTA          s0 = s0 * d1 + (g * g) * om1;  u = (sqrt(s1 + eps) / sqrt(s0 + eps)) * g;
 *                     s1 = s1 * d1 + (u * u) * om1;  p -= u * lr
 *   ADAMAX            s0 = s0 * d1 + om1 * g;  s1 = max(s1 * d2, |g|) (NaN wins);
 *                     p -= (lr * s0) / (s1 + eps)
 *   NADAM             s0 = s0 * d1 + om1 * g;  s1 = s1 * d2 + om2 * (g * g);
 *                     p -= (lr * (cg * g + cm * s0)) / (sqrt(s1 / vc) + eps)
 *   ADAM              s0 += (g - s0) * om1;  s1 += (g * g - s1) * om2;
 *                     p -= (s0 * lr) / (sqrt(s1) + eps)  (fc_adam_update's rule)
 *   ADAM_AMSGRAD      also s2 = max(s2, s1) (NaN wins), and sqrt(s2)
 * The arrays must not overlap; unused slots may be NULL. */
enum {
    FC_RULE_SGD, FC_RULE_MOMENTUM, FC_RULE_NESTEROV, FC_RULE_RMSPROP, FC_RULE_RMSPROP_CENTERED,
    FC_RULE_RMSPROP_MOMENTUM, FC_RULE_RMSPROP_MOMENTUM_CENTERED, FC_RULE_ADAGRAD,
    FC_RULE_ADADELTA, FC_RULE_ADAMAX, FC_RULE_NADAM, FC_RULE_ADAM, FC_RULE_ADAM_AMSGRAD,
    FC_RULE_COUNT
};
enum {
    FC_COEF_LR, FC_COEF_DECAY1, FC_COEF_ONE_MINUS_DECAY1, FC_COEF_DECAY2,
    FC_COEF_ONE_MINUS_DECAY2, FC_COEF_EPSILON, FC_COEF_MOMENTUM, FC_COEF_GRAD, FC_COEF_M,
    FC_COEF_V_CORRECTION, FC_COEF_COUNT
};
int fc_optimizer_update(int rule, float *param, const float *grad, float *slot0, float *slot1,
                        float *slot2, int64_t n, const float *coefficients, int n_threads);

/* Batch normalization over a tensor viewed as (outer, c, inner): value
 * (o, ch, i) at (o * c + ch) * inner + i, the statistics of channel ch over
 * its M = outer * inner values. NHWC (channels last, any rank) is
 * outer = N * H * W, inner = 1; NCHW is outer = N, inner = H * W. */
typedef struct fc_norm_params {
    int64_t outer, c, inner;
    int n_threads;
} fc_norm_params;

/* mean[ch] and the biased variance var[ch] (squared deviations / M). Sums
 * run in float64 (for float32 data too) over values shifted by one of them,
 * in chunks fixed by the shape, merged in chunk order by Chan et al.'s
 * formula: accurate when |mean| >> std, the same bits for any n_threads.
 * M == 0: mean = var = 0 (c values written). A NaN makes its channel's mean
 * and var NaN; an infinity makes the mean infinite (or NaN) and var NaN. */
int fc_batch_norm_stats(const fc_norm_params *p, const float *x, float *mean, float *var);

/* y = (x - mean[ch]) * scale[ch] + beta[ch], then max(y, 0) if relu (NaN
 * kept), with scale[ch] = gamma[ch] / sqrt(var[ch] + epsilon) computed in
 * float64 and rounded once, and the rest in the working precision (one
 * subtraction, one fused multiply-add). gamma NULL: 1; beta NULL: 0. Not
 * x * scale + (beta - mean * scale), which loses |mean| / std of the result's
 * digits to cancellation. y may be x (in place), else they do not overlap. */
int fc_batch_norm_apply(const fc_norm_params *p, const float *x, const float *mean,
                        const float *var, const float *gamma, const float *beta, float epsilon,
                        int relu, float *y);

/* Gradients for the pre-activation dy, with r = 1 / sqrt(var + epsilon) and
 * xhat = (x - mean) * r:
 *   dbeta[ch] = sum of dy, dgamma[ch] = sum of dy * xhat (in float64, in
 *   chunks fixed by the shape, added in chunk order),
 *   dx = gamma * r / M * (M * dy - dbeta - xhat * dgamma), evaluated as
 *   dx = (dy - dy_mean) * a + (x - mean) * b with dy_mean = dbeta / M,
 *   a = gamma * r, b = -a * r * dgamma / M (from the float64 sums, rounded
 *   once to the working precision).
 * mean and var are those the forward pass normalised with. gamma NULL: 1.
 * dx NULL: only dgamma and dbeta. dx may be dy (in place). M == 0:
 * dgamma = dbeta = 0. */
int fc_batch_norm_backward(const fc_norm_params *p, const float *dy, const float *x,
                           const float *mean, const float *var, const float *gamma,
                           float epsilon, float *dx, float *dgamma, float *dbeta);

/* The float64 instantiations of the functions above. */
int fc_conv2d_forward_f64(const fc_conv2d_params *p, const double *x, const double *kernel,
                          const double *bias, double *y);
int fc_conv2d_backward_input_f64(const fc_conv2d_params *p, const double *dy,
                                 const double *kernel, double *dx);
int fc_conv2d_transpose_f64(const fc_conv2d_params *p, const double *x, const double *kernel,
                            const double *bias, double *y);
int fc_conv2d_backward_kernel_f64(const fc_conv2d_params *p, const double *dy, const double *x,
                                  double *dkernel, double *dbias);
int fc_max_pool2d_forward_f64(const fc_pool2d_params *p, const double *x, double *y);
int fc_max_pool2d_backward_f64(const fc_pool2d_params *p, const double *dy, const double *x,
                               double *dx);
int fc_avg_pool2d_forward_f64(const fc_pool2d_params *p, const double *x, double *y);
int fc_avg_pool2d_backward_f64(const fc_pool2d_params *p, const double *dy, double *dx);
int fc_global_avg_pool2d_f64(const fc_pool2d_params *p, const double *x, double *y);
int fc_global_avg_pool2d_backward_f64(const fc_pool2d_params *p, const double *dy, double *dx);
int fc_global_max_pool2d_f64(const fc_pool2d_params *p, const double *x, double *y);
int fc_global_max_pool2d_backward_f64(const fc_pool2d_params *p, const double *dy,
                                      const double *x, double *dx);
int fc_upsample2d_forward_f64(const fc_upsample_params *p, const double *x, double *y);
int fc_upsample2d_backward_f64(const fc_upsample_params *p, const double *dy, double *dx);
int fc_relu_forward_f64(const double *x, double *y, int64_t n, int n_threads);
int fc_relu_backward_f64(const double *dy, const double *y, double *out, int64_t n,
                         int n_threads);
int fc_add_f64(const double *a, const double *b, double *y, int64_t n, int relu, int n_threads);
int fc_adam_update_f64(double *param, const double *grad, double *m, double *v, double *vhat,
                       int64_t n, double alpha, double one_minus_beta_1,
                       double one_minus_beta_2, double epsilon, int n_threads);
int fc_optimizer_update_f64(int rule, double *param, const double *grad, double *slot0,
                            double *slot1, double *slot2, int64_t n,
                            const double *coefficients, int n_threads);
int fc_batch_norm_stats_f64(const fc_norm_params *p, const double *x, double *mean,
                            double *var);
int fc_batch_norm_apply_f64(const fc_norm_params *p, const double *x, const double *mean,
                            const double *var, const double *gamma, const double *beta,
                            double epsilon, int relu, double *y);
int fc_batch_norm_backward_f64(const fc_norm_params *p, const double *dy, const double *x,
                               const double *mean, const double *var, const double *gamma,
                               double epsilon, double *dx, double *dgamma, double *dbeta);

/* Depthwise convolution: groups == c_in (p->groups must equal p->c_in) and
 * c_out a multiple of c_in, the channel multiplier M = c_out / c_in; output
 * channel o = ci * M + m sees input channel ci only. Strides, dilations, any
 * kernel size; pads as for fc_conv2d_forward (padding reads as zeros).
 * Layouts: channels last (p->channels_first == 0): x (n, h, w, c_in),
 * y (n, out_h, out_w, c_out), kernel HWIO (kh, kw, 1, c_out); channels first:
 * x (n, c_in, h, w), y (n, c_out, out_h, out_w), kernel OIHW (c_out, 1, kh,
 * kw). bias (c_out) or NULL, ReLU fused in the forward (NaN kept); dbias may
 * be NULL. Where a padded (zero) cell meets an infinite kernel or gradient
 * value, the product (NaN) may or may not be included, by layout. Results
 * are bitwise identical for any thread count. */
int fc_depthwise_conv2d_forward(const fc_conv2d_params *p, const float *x, const float *kernel,
                                const float *bias, float *y);
int fc_depthwise_conv2d_backward_input(const fc_conv2d_params *p, const float *dy,
                                       const float *kernel, float *dx);
int fc_depthwise_conv2d_backward_kernel(const fc_conv2d_params *p, const float *dy,
                                        const float *x, float *dkernel, float *dbias);
int fc_depthwise_conv2d_forward_f64(const fc_conv2d_params *p, const double *x,
                                    const double *kernel, const double *bias, double *y);
int fc_depthwise_conv2d_backward_input_f64(const fc_conv2d_params *p, const double *dy,
                                           const double *kernel, double *dx);
int fc_depthwise_conv2d_backward_kernel_f64(const fc_conv2d_params *p, const double *dy,
                                            const double *x, double *dkernel, double *dbias);

/* 3x3 stride-1 undilated layers with 16+ channels run forward and
 * backward-input by Winograd F(2x2, 3x3), and the weight gradient by F(3x3,
 * 2x2) where it pays (on the AVX2 path, channels last, only for large enough
 * layers): mode FC_WINOGRAD_ON, the default. FC_WINOGRAD_OFF runs every layer
 * directly; FC_WINOGRAD_ALWAYS runs the weight gradient by Winograd for
 * every layer the others run by it (tests: the small layers too).
 * fc_set_winograd returns FC_ERR_ARG for another mode. */
enum { FC_WINOGRAD_OFF = 0, FC_WINOGRAD_ON = 1, FC_WINOGRAD_ALWAYS = 2 };
int fc_set_winograd(int mode);
int fc_get_winograd(void);

/* SIMD paths, chosen once from CPUID/XGETBV; fc_set_simd overrides. */
enum { FC_SIMD_GENERIC = 0, FC_SIMD_AVX2 = 1, FC_SIMD_AVX512 = 2, FC_SIMD_COUNT = 3 };
int fc_simd_supported(int simd);   /* compiled in and usable on this CPU */
int fc_set_simd(int simd);         /* FC_OK or FC_ERR_SIMD */
int fc_get_simd(void);
const char *fc_simd_name(int simd);

/* Runs iters x 12 independent vector FMA chains on each of n_threads threads
 * (<= 0: the OpenMP default) with the active SIMD path; returns the number of
 * multiply-adds done, for a measured peak (the caller times the call). */
double fc_fma_peak_probe(int64_t iters, int n_threads);

/* A caching allocator for large short-lived buffers (arena.c): freed blocks
 * of 256 KiB or more are kept (up to 256 MiB idle) and reused for requests
 * they fit, instead of being returned to the OS and faulted in again. The
 * kernels' scratch comes from it too. FASTCONV_ARENA=0 in the environment
 * turns the caching off. */
void *fc_arena_malloc(size_t bytes);
void *fc_arena_calloc(size_t count, size_t size);
void *fc_arena_realloc(void *ptr, size_t bytes);
void fc_arena_free(void *ptr);                /* only pointers from fc_arena_* */
void fc_arena_release(void);                  /* frees every idle block */
void fc_arena_stats(size_t *idle_bytes, size_t *hits, size_t *misses);

/* The thread policy of every kernel: the threads a parallel region of
 * `work` (multiply-adds, or values moved) cut into `items` work items gets
 * when `requested` (> 0) are asked for, before the machine's thread cap. */
int fc_threads_for(int requested, double work, int64_t items);

/* The record of the scaling model (fastconv.bench_scaling). While it is on,
 * every parallel region a kernel sizes logs (time, work, items) when it is
 * sized, and fc_regions_mark logs the end of a kernel call (items -1). One
 * recording at a time, from one thread; entries past FC_REGIONS_MAX are
 * dropped (fc_regions_read returns the number logged, kept or not). */
#define FC_REGIONS_MAX 65536
void fc_regions_record(int on);       /* on: clears the log, then logs */
int fc_regions_recording(void);
void fc_regions_mark(void);
int64_t fc_regions_read(double *t, double *work, int64_t *items, int64_t max);

int fc_openmp_enabled(void);
int fc_default_num_threads(void);  /* omp_get_max_threads(), or 1 */
const char *fc_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif /* FASTCONV_H */
