# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin binding of the C kernels in ``csrc/``.

Arguments arrive validated and normalised by :mod:`fastconv.ops` (float32
or float64, one dtype per call, C-contiguous, consistent shapes, non-empty); this module only turns them into
pointers, releases the GIL around the kernel and turns a C status code into a
Python exception. It holds no algorithm.
"""
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport int64_t, uint8_t
from libc.string cimport strncpy
from cython.view cimport array as cvarray

cimport numpy as cnp

cnp.import_array()

cdef extern from "fastconv.h" nogil:
    enum:
        FC_OK
        FC_ERR_ARG
        FC_ERR_NOMEM
        FC_ERR_OVERFLOW
        FC_ERR_SIMD
        FC_DECLINED
        FC_SIMD_GENERIC
        FC_SIMD_AVX2
        FC_SIMD_AVX512
        FC_SIMD_COUNT
        FC_RULE_SGD
        FC_RULE_MOMENTUM
        FC_RULE_NESTEROV
        FC_RULE_RMSPROP
        FC_RULE_RMSPROP_CENTERED
        FC_RULE_RMSPROP_MOMENTUM
        FC_RULE_RMSPROP_MOMENTUM_CENTERED
        FC_RULE_ADAGRAD
        FC_RULE_ADADELTA
        FC_RULE_ADAMAX
        FC_RULE_NADAM
        FC_COEF_LR
        FC_COEF_DECAY1
        FC_COEF_ONE_MINUS_DECAY1
        FC_COEF_DECAY2
        FC_COEF_ONE_MINUS_DECAY2
        FC_COEF_EPSILON
        FC_COEF_MOMENTUM
        FC_COEF_GRAD
        FC_COEF_M
        FC_COEF_V_CORRECTION
        FC_COEF_COUNT

    ctypedef struct fc_conv2d_params:
        int64_t n, h, w, c_in
        int64_t kh, kw, c_out
        int64_t out_h, out_w
        int64_t stride_h, stride_w
        int64_t dilation_h, dilation_w
        int64_t pad_top, pad_left
        int relu
        int n_threads
        int64_t groups
        int channels_first

    ctypedef struct fc_pool2d_params:
        int64_t n, h, w, c
        int64_t pool_h, pool_w
        int64_t out_h, out_w
        int64_t stride_h, stride_w
        int64_t pad_top, pad_left
        int n_threads
        int channels_first
        int count_include_pad

    ctypedef struct fc_upsample_params:
        int64_t n, h, w, c
        int64_t size_h, size_w
        int bilinear
        int channels_first
        int n_threads

    int fc_conv2d_forward(const fc_conv2d_params *p, const float *x,
                          const float *kernel, const float *bias, float *y)
    int fc_conv2d_maxpool2x2_fuses(const fc_conv2d_params *p)
    int64_t fc_conv2d_prepared_kernel_floats(const fc_conv2d_params *p)
    int fc_conv2d_prepare_kernel(const fc_conv2d_params *p, const float *kernel, float *prepared)
    int fc_conv2d_forward_prepared(const fc_conv2d_params *p, const float *x,
                                   const float *prepared, const float *bias, float *y,
                                   int64_t pool_h, int64_t pool_w)
    int fc_conv2d_forward_maxpool2x2(const fc_conv2d_params *p, const float *x,
                                     const float *kernel, const float *bias, float *y,
                                     int64_t pool_h, int64_t pool_w)
    int fc_conv2d_backward_input(const fc_conv2d_params *p, const float *dy,
                                 const float *kernel, float *dx)
    int fc_conv2d_transpose(const fc_conv2d_params *p, const float *x, const float *kernel,
                            const float *bias, float *y)
    int fc_conv2d_transpose_f64(const fc_conv2d_params *p, const double *x,
                                const double *kernel, const double *bias, double *y)
    int fc_conv2d_backward_kernel(const fc_conv2d_params *p, const float *dy,
                                  const float *x, float *dkernel, float *dbias)
    int fc_max_pool2d_forward(const fc_pool2d_params *p, const float *x, float *y)
    int fc_max_pool2d_backward(const fc_pool2d_params *p, const float *dy,
                               const float *x, float *dx)
    int fc_relu_forward(const float *x, float *y, int64_t n, int n_threads)
    int fc_relu_backward(const float *dy, const float *y, float *out, int64_t n,
                         int n_threads)
    int fc_add(const float *a, const float *b, float *y, int64_t n, int relu, int n_threads)
    int fc_adam_update(float *param, const float *grad, float *m, float *v, float *vhat,
                       int64_t n, float alpha, float one_minus_beta_1, float one_minus_beta_2,
                       float epsilon, int n_threads)
    int fc_optimizer_update(int rule, float *param, const float *grad, float *slot0,
                            float *slot1, float *slot2, int64_t n, const float *coefficients,
                            int n_threads)
    int fc_conv2d_forward_f64(const fc_conv2d_params *p, const double *x,
                              const double *kernel, const double *bias, double *y)
    int fc_conv2d_backward_input_f64(const fc_conv2d_params *p, const double *dy,
                                     const double *kernel, double *dx)
    int fc_conv2d_backward_kernel_f64(const fc_conv2d_params *p, const double *dy,
                                      const double *x, double *dkernel, double *dbias)
    int fc_max_pool2d_forward_f64(const fc_pool2d_params *p, const double *x, double *y)
    int fc_max_pool2d_backward_f64(const fc_pool2d_params *p, const double *dy,
                                   const double *x, double *dx)
    int fc_relu_forward_f64(const double *x, double *y, int64_t n, int n_threads)
    int fc_relu_backward_f64(const double *dy, const double *y, double *out, int64_t n,
                             int n_threads)
    int fc_add_f64(const double *a, const double *b, double *y, int64_t n, int relu,
                   int n_threads)
    int fc_adam_update_f64(double *param, const double *grad, double *m, double *v,
                           double *vhat, int64_t n, double alpha, double one_minus_beta_1,
                           double one_minus_beta_2, double epsilon, int n_threads)
    int fc_optimizer_update_f64(int rule, double *param, const double *grad, double *slot0,
                                double *slot1, double *slot2, int64_t n,
                                const double *coefficients, int n_threads)
    int fc_depthwise_conv2d_forward(const fc_conv2d_params *p, const float *x,
                                    const float *kernel, const float *bias, float *y)
    int fc_depthwise_conv2d_backward_input(const fc_conv2d_params *p, const float *dy,
                                           const float *kernel, float *dx)
    int fc_depthwise_conv2d_backward_kernel(const fc_conv2d_params *p, const float *dy,
                                            const float *x, float *dkernel, float *dbias)
    int fc_depthwise_conv2d_forward_f64(const fc_conv2d_params *p, const double *x,
                                        const double *kernel, const double *bias, double *y)
    int fc_depthwise_conv2d_backward_input_f64(const fc_conv2d_params *p, const double *dy,
                                               const double *kernel, double *dx)
    int fc_depthwise_conv2d_backward_kernel_f64(const fc_conv2d_params *p, const double *dy,
                                                const double *x, double *dkernel,
                                                double *dbias)
    ctypedef struct fc_norm_params:
        int64_t outer, c, inner
        int n_threads

    int fc_batch_norm_stats(const fc_norm_params *p, const float *x, float *mean, float *var)
    int fc_batch_norm_apply(const fc_norm_params *p, const float *x, const float *mean,
                            const float *var, const float *gamma, const float *beta,
                            float epsilon, int relu, float *y)
    int fc_batch_norm_backward(const fc_norm_params *p, const float *dy, const float *x,
                               const float *mean, const float *var, const float *gamma,
                               float epsilon, float *dx, float *dgamma, float *dbeta)
    int fc_batch_norm_stats_f64(const fc_norm_params *p, const double *x, double *mean,
                                double *var)
    int fc_batch_norm_apply_f64(const fc_norm_params *p, const double *x, const double *mean,
                                const double *var, const double *gamma, const double *beta,
                                double epsilon, int relu, double *y)
    int fc_batch_norm_backward_f64(const fc_norm_params *p, const double *dy, const double *x,
                                   const double *mean, const double *var, const double *gamma,
                                   double epsilon, double *dx, double *dgamma, double *dbeta)
    int fc_avg_pool2d_forward(const fc_pool2d_params *p, const float *x, float *y)
    int fc_avg_pool2d_backward(const fc_pool2d_params *p, const float *dy, float *dx)
    int fc_global_avg_pool2d(const fc_pool2d_params *p, const float *x, float *y)
    int fc_global_avg_pool2d_backward(const fc_pool2d_params *p, const float *dy, float *dx)
    int fc_global_max_pool2d(const fc_pool2d_params *p, const float *x, float *y)
    int fc_global_max_pool2d_backward(const fc_pool2d_params *p, const float *dy,
                                      const float *x, float *dx)
    int fc_upsample2d_forward(const fc_upsample_params *p, const float *x, float *y)
    int fc_upsample2d_backward(const fc_upsample_params *p, const float *dy, float *dx)
    int fc_avg_pool2d_forward_f64(const fc_pool2d_params *p, const double *x, double *y)
    int fc_avg_pool2d_backward_f64(const fc_pool2d_params *p, const double *dy, double *dx)
    int fc_global_avg_pool2d_f64(const fc_pool2d_params *p, const double *x, double *y)
    int fc_global_avg_pool2d_backward_f64(const fc_pool2d_params *p, const double *dy,
                                          double *dx)
    int fc_global_max_pool2d_f64(const fc_pool2d_params *p, const double *x, double *y)
    int fc_global_max_pool2d_backward_f64(const fc_pool2d_params *p, const double *dy,
                                          const double *x, double *dx)
    int fc_upsample2d_forward_f64(const fc_upsample_params *p, const double *x, double *y)
    int fc_upsample2d_backward_f64(const fc_upsample_params *p, const double *dy, double *dx)
    int fc_set_winograd(int mode)
    int fc_get_winograd()
    int fc_simd_supported(int simd)
    int fc_set_simd(int simd)
    int fc_get_simd()
    const char *fc_simd_name(int simd)
    double fc_fma_peak_probe(int64_t iters, int n_threads)
    void *fc_arena_malloc(size_t bytes)
    void *fc_arena_calloc(size_t count, size_t size)
    void *fc_arena_realloc(void *ptr, size_t bytes)
    void fc_arena_free(void *ptr)
    void fc_arena_release()
    void fc_arena_stats(size_t *idle_bytes, size_t *hits, size_t *misses)
    int fc_openmp_enabled()
    int fc_default_num_threads()
    int fc_threads_for(int requested, double work, int64_t items)
    int FC_REGIONS_MAX
    void fc_regions_record(int on)
    int fc_regions_recording()
    void fc_regions_mark()
    int64_t fc_regions_read(double *t, double *work, int64_t *items, int64_t max)
    const char *fc_strerror(int status)


cdef extern from *:
    const char *FC_NUMPY_BUILD_VERSION  # defined by setup.py

NUMPY_BUILD_VERSION = FC_NUMPY_BUILD_VERSION.decode()


cdef int _check(int status) except -1:
    if fc_regions_recording():   # every kernel call ends here: the scaling record's mark
        fc_regions_mark()
    if status == FC_OK:
        return 0
    message = fc_strerror(status).decode()
    if status == FC_ERR_NOMEM:
        raise MemoryError(message)
    if status == FC_ERR_SIMD:
        raise ValueError(message)
    # FC_ERR_ARG / FC_ERR_OVERFLOW: ops.py validates first, so reaching
    # here means sizes the C side cannot index.
    raise ValueError(message)


cdef bint _done_unless_declined(int status) except -1:
    # a fused or prepared call: False when the C kernels declined it (the
    # caller computes it unfused), else _check's verdict
    if status == FC_DECLINED:
        if fc_regions_recording():
            fc_regions_mark()
        return False
    _check(status)
    return True


cdef fc_conv2d_params _conv_params(tuple g, int relu, int n_threads, int64_t groups,
                                   bint channels_first):
    # g is a fastconv.shapes.ConvGeometry: its first 17 fields are sizes (NHWC
    # order whatever the layout) and pads; groups and the layout come as
    # arguments.
    cdef fc_conv2d_params p
    (p.n, p.h, p.w, p.c_in, p.kh, p.kw, p.c_out, p.out_h, p.out_w,
     p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
     p.pad_top, _, p.pad_left, _) = g[:17]
    p.relu = relu
    p.n_threads = n_threads
    p.groups = groups
    p.channels_first = channels_first
    return p


cdef fc_pool2d_params _pool_params(tuple g, int n_threads, bint channels_first=False,
                                   bint count_include_pad=False):
    # g's (n, h, w, c) are the NHWC-order sizes for either layout.
    cdef fc_pool2d_params p
    (p.n, p.h, p.w, p.c, p.pool_h, p.pool_w, _, p.out_h, p.out_w,
     p.stride_h, p.stride_w, _, _, p.pad_top, _, p.pad_left, _) = g[:17]
    p.n_threads = n_threads
    p.channels_first = channels_first
    p.count_include_pad = count_include_pad
    return p


cdef fc_pool2d_params _global_params(tuple x_shape, bint channels_first, int n_threads):
    # x_shape: the 4-D array's shape, (n, c, h, w) or (n, h, w, c); only n, h,
    # w, c and the layout are read by the global kernels.
    cdef fc_pool2d_params p
    p.n = x_shape[0]
    if channels_first:
        p.c, p.h, p.w = x_shape[1], x_shape[2], x_shape[3]
    else:
        p.h, p.w, p.c = x_shape[1], x_shape[2], x_shape[3]
    p.pool_h = p.pool_w = p.out_h = p.out_w = p.stride_h = p.stride_w = 1
    p.pad_top = p.pad_left = 0
    p.n_threads = n_threads
    p.channels_first = channels_first
    p.count_include_pad = 0
    return p


cdef fc_upsample_params _upsample_params(tuple x_shape, int size_h, int size_w, bint bilinear,
                                         bint channels_first, int n_threads):
    cdef fc_upsample_params p
    p.n = x_shape[0]
    if channels_first:
        p.c, p.h, p.w = x_shape[1], x_shape[2], x_shape[3]
    else:
        p.h, p.w, p.c = x_shape[1], x_shape[2], x_shape[3]
    p.size_h = size_h
    p.size_w = size_w
    p.bilinear = bilinear
    p.channels_first = channels_first
    p.n_threads = n_threads
    return p


cdef int _check_shape(tuple actual, tuple expected, str what) except -1:
    # The bindings below take their sizes from one array; the other must match
    # (the geometry-driven ones trust ops.py instead).
    if actual != expected:
        raise ValueError(f"{what} has shape {actual}, expected {expected}")
    return 0


# Each binding takes float32 or float64 arrays (one dtype per call: ops.py
# checks) and calls that element type's C kernel.
ctypedef fused real:
    float
    double


def conv2d_forward(const real[:, :, :, ::1] x, const real[:, :, :, ::1] kernel,
                   const real[::1] bias, real[:, :, :, ::1] y, tuple geometry,
                   int relu, int n_threads, int64_t groups=1, bint channels_first=False):
    cdef fc_conv2d_params p = _conv_params(geometry, relu, n_threads, groups, channels_first)
    cdef const real *bias_ptr = NULL
    if bias is not None:
        bias_ptr = &bias[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_conv2d_forward(&p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], bias_ptr,
                                       &y[0, 0, 0, 0])
        else:
            status = fc_conv2d_forward_f64(&p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], bias_ptr,
                                           &y[0, 0, 0, 0])
    _check(status)


def conv2d_maxpool2x2_fuses(tuple geometry):
    """Whether conv2d_forward_maxpool2x2 computes this float32 channels-last
    layer fused (it declines others, and calls that meet non-finite values)."""
    cdef fc_conv2d_params p = _conv_params(geometry, 0, 1, 1, False)
    return bool(fc_conv2d_maxpool2x2_fuses(&p))


def conv2d_forward_maxpool2x2(const float[:, :, :, ::1] x, const float[:, :, :, ::1] kernel,
                              const float[::1] bias, float[:, :, :, ::1] y, tuple geometry,
                              int relu, int n_threads):
    """y (n, pool_h, pool_w, c_out) = the 2x2 stride-2 max pooling of
    conv2d_forward's output, computed without it; False (y unspecified) when
    the fused kernel declines: the layer is not one Winograd runs, or an
    output is not finite. Then compute it unfused."""
    cdef fc_conv2d_params p = _conv_params(geometry, relu, n_threads, 1, False)
    _check_shape((x.shape[0], x.shape[1], x.shape[2], x.shape[3]), (p.n, p.h, p.w, p.c_in), "x")
    _check_shape((kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]),
                 (p.kh, p.kw, p.c_in, p.c_out), "kernel")
    _check_shape((y.shape[0], y.shape[3]), (p.n, p.c_out), "y's batch and channels")
    cdef const float *bias_ptr = NULL
    if bias is not None:
        _check_shape((bias.shape[0],), (p.c_out,), "bias")
        bias_ptr = &bias[0]
    cdef int status
    with nogil:
        status = fc_conv2d_forward_maxpool2x2(&p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], bias_ptr,
                                              &y[0, 0, 0, 0], y.shape[1], y.shape[2])
    return _done_unless_declined(status)


def conv2d_prepared_kernel_floats(tuple geometry):
    """The floats of a float32 channels-last layer's prepared kernel (its
    Winograd transform for the active SIMD path); 0 when it has none."""
    cdef fc_conv2d_params p = _conv_params(geometry, 0, 1, 1, False)
    return fc_conv2d_prepared_kernel_floats(&p)


def conv2d_prepare_kernel(const float[:, :, :, ::1] kernel, float[::1] prepared,
                          tuple geometry, int n_threads):
    """Writes the prepared kernel of the layer `geometry` describes."""
    cdef fc_conv2d_params p = _conv_params(geometry, 0, n_threads, 1, False)
    _check_shape((kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]),
                 (p.kh, p.kw, p.c_in, p.c_out), "kernel")
    cdef int64_t floats = fc_conv2d_prepared_kernel_floats(&p)
    if floats == 0:
        raise ValueError("this layer has no prepared kernel (conv2d_prepared_kernel_floats is 0)")
    _check_shape((prepared.shape[0],), (floats,), "prepared")
    cdef int status
    with nogil:
        status = fc_conv2d_prepare_kernel(&p, &kernel[0, 0, 0, 0], &prepared[0])
    _check(status)


def conv2d_forward_prepared(const float[:, :, :, ::1] x, const float[::1] prepared,
                            const float[::1] bias, float[:, :, :, ::1] y, tuple geometry,
                            int relu, int n_threads, bint pooled):
    """conv2d_forward (or with `pooled`, conv2d_forward_maxpool2x2) from a
    prepared kernel; False (y unspecified) when the C kernels decline it (an
    output not finite, or `prepared` made under another dispatch: its size
    or header not this layer's now): then compute it from the kernel."""
    cdef fc_conv2d_params p = _conv_params(geometry, relu, n_threads, 1, False)
    _check_shape((x.shape[0], x.shape[1], x.shape[2], x.shape[3]), (p.n, p.h, p.w, p.c_in), "x")
    if prepared.shape[0] != fc_conv2d_prepared_kernel_floats(&p):
        return False
    if pooled:
        _check_shape((y.shape[0], y.shape[3]), (p.n, p.c_out), "y's batch and channels")
    else:
        _check_shape((y.shape[0], y.shape[1], y.shape[2], y.shape[3]),
                     (p.n, p.out_h, p.out_w, p.c_out), "y")
    cdef const float *bias_ptr = NULL
    if bias is not None:
        _check_shape((bias.shape[0],), (p.c_out,), "bias")
        bias_ptr = &bias[0]
    cdef int64_t pool_h = y.shape[1] if pooled else 0
    cdef int64_t pool_w = y.shape[2] if pooled else 0
    cdef int status
    with nogil:
        status = fc_conv2d_forward_prepared(&p, &x[0, 0, 0, 0], &prepared[0], bias_ptr,
                                            &y[0, 0, 0, 0], pool_h, pool_w)
    return _done_unless_declined(status)


# ---- a chain of float32 channels-last forward calls, one Python call ----
#
# An inference plan's chain of layers (fastconv.prepared.PreparedChain):
# each step reads the step before's output. Step by step from Python, every
# layer paid 50-90 us at batch 1 once the weights streaming through the
# caches had evicted the interpreter's and NumPy's working set (the bench
# MobileNet: 29 steps, 1.35 ms of kernels, 3.1 ms a call); here the calls
# are a loop over C structs. The kernels and their arguments are the ones
# the single-layer bindings above pass, so the results are theirs.

cdef enum:
    CHAIN_CONV = 0             # fc_conv2d_forward (any groups; a dense layer as 1x1)
    CHAIN_CONV_PREPARED = 1    # fc_conv2d_forward_prepared (pool_h > 0: 2x2 max-pooled)
    CHAIN_CONV_MAXPOOL = 2     # fc_conv2d_forward_maxpool2x2
    CHAIN_DEPTHWISE = 3        # fc_depthwise_conv2d_forward
    CHAIN_MAX_POOL = 4         # fc_max_pool2d_forward
    CHAIN_AVG_POOL = 5         # fc_avg_pool2d_forward
    CHAIN_GLOBAL_AVG_POOL = 6  # fc_global_avg_pool2d

CHAIN_KINDS = {"conv": CHAIN_CONV, "conv_prepared": CHAIN_CONV_PREPARED,
               "conv_maxpool": CHAIN_CONV_MAXPOOL, "depthwise": CHAIN_DEPTHWISE,
               "max_pool": CHAIN_MAX_POOL, "avg_pool": CHAIN_AVG_POOL,
               "global_avg_pool": CHAIN_GLOBAL_AVG_POOL}

cdef struct chain_step:
    int kind
    fc_conv2d_params conv
    fc_pool2d_params pool
    const float *weights     # kernel or prepared kernel; NULL until bound
    const float *bias
    int64_t pool_h, pool_w   # the pooled output's size (conv with max pooling)


cdef int64_t _step_floats(const chain_step *s, bint output) noexcept nogil:
    # one image's input or output floats of a step
    if s.kind in (CHAIN_MAX_POOL, CHAIN_AVG_POOL, CHAIN_GLOBAL_AVG_POOL):
        if not output:
            return s.pool.h * s.pool.w * s.pool.c
        return s.pool.c if s.kind == CHAIN_GLOBAL_AVG_POOL else s.pool.out_h * s.pool.out_w * s.pool.c
    if not output:
        return s.conv.h * s.conv.w * s.conv.c_in
    if s.pool_h > 0:
        return s.pool_h * s.pool_w * s.conv.c_out
    return s.conv.out_h * s.conv.out_w * s.conv.c_out


cdef class ChainProgram:
    """The steps of one chain: set_step (geometry), bind (weights), run."""
    cdef chain_step *steps
    cdef readonly Py_ssize_t n
    cdef list keep   # the arrays each step points into

    def __cinit__(self, Py_ssize_t n):
        if n < 1:
            raise ValueError(f"a chain has at least one step, got {n}")
        self.steps = <chain_step *>PyMem_Calloc(n, sizeof(chain_step))
        if self.steps == NULL:
            raise MemoryError()
        self.n = n
        self.keep = [None] * n

    def __dealloc__(self):
        PyMem_Free(self.steps)

    def set_step(self, Py_ssize_t i, str kind, tuple geometry, int relu, int64_t groups,
                 int64_t pool_h, int64_t pool_w):
        """Step i's kernel and geometry (a conv geometry tuple; for the global
        pooling the input shape)."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        cdef chain_step *s = &self.steps[i]
        s.kind = CHAIN_KINDS[kind]
        if s.kind in (CHAIN_MAX_POOL, CHAIN_AVG_POOL):
            s.pool = _pool_params(geometry, 1, False, False)
        elif s.kind == CHAIN_GLOBAL_AVG_POOL:
            s.pool = _global_params(geometry, False, 1)
        elif s.kind == CHAIN_DEPTHWISE:
            s.conv = _depthwise_params(geometry, relu, False, 1)
        else:
            s.conv = _conv_params(geometry, relu, 1, groups, False)
        s.pool_h, s.pool_w = pool_h, pool_w
        s.weights = s.bias = NULL
        self.keep[i] = None

    def prepared_fits(self, Py_ssize_t i, const float[::1] prepared):
        """Whether `prepared` has the size of step i's prepared kernel under
        the active dispatch (else the kernel declines it)."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        cdef int64_t floats = fc_conv2d_prepared_kernel_floats(&self.steps[i].conv)
        return floats > 0 and prepared.shape[0] == floats

    def bind(self, Py_ssize_t i, weights, bias):
        """Step i reads these C-contiguous float32 arrays (None: none) until
        the next bind."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        cdef const float[::1] w
        cdef const float[::1] b
        cdef chain_step *s = &self.steps[i]
        s.weights = s.bias = NULL
        if weights is not None:
            w = weights.reshape(-1)
            s.weights = &w[0]
        if bias is not None:
            b = bias
            s.bias = &b[0]
        self.keep[i] = (weights, bias)

    def run(self, Py_ssize_t first, Py_ssize_t stop, int64_t images, const float[::1] x,
            Py_ssize_t x_at, float[::1] scratch, Py_ssize_t even_at, Py_ssize_t odd_at,
            float[::1] y, Py_ssize_t y_at, int n_threads):
        """Steps first .. stop - 1 in turn on `images` images, from x (at
        x_at) to y (at y_at), the results between them in scratch at
        even_at and odd_at by turns; -1, or the index of the step its
        kernel declined (y unspecified: compute the chain otherwise). The
        caller sizes the buffers (fastconv.prepared.PreparedChain)."""
        if not (0 <= first < stop <= self.n and images > 0):
            raise ValueError(f"steps [{first}, {stop}) on {images} images: not in this chain")
        cdef Py_ssize_t i
        cdef const float *src = &x[x_at]
        cdef float *dst
        cdef chain_step *s
        cdef int status = FC_OK
        for i in range(first, stop):
            s = &self.steps[i]
            if s.kind <= CHAIN_DEPTHWISE and s.weights == NULL:
                raise ValueError(f"step {i} of the chain has no weights bound")
            if i < stop - 1 and max(even_at, odd_at) + images * _step_floats(s, True) > \
                    scratch.shape[0]:
                raise ValueError(f"step {i}'s output does not fit the scratch buffer")
        if (x_at < 0 or y_at < 0 or even_at < 0 or odd_at < 0
                or x_at + images * _step_floats(&self.steps[first], False) > x.shape[0]
                or y_at + images * _step_floats(&self.steps[stop - 1], True) > y.shape[0]):
            raise ValueError("x or y does not hold these images")
        for i in range(first, stop):
            s = &self.steps[i]
            if i == stop - 1:
                dst = &y[y_at]
            else:
                dst = &scratch[odd_at if (i - first) % 2 else even_at]
            s.conv.n = images
            s.pool.n = images
            s.conv.n_threads = n_threads
            s.pool.n_threads = n_threads
            with nogil:
                if s.kind == CHAIN_CONV:
                    status = fc_conv2d_forward(&s.conv, src, s.weights, s.bias, dst)
                elif s.kind == CHAIN_CONV_PREPARED:
                    status = fc_conv2d_forward_prepared(&s.conv, src, s.weights, s.bias, dst,
                                                        s.pool_h, s.pool_w)
                elif s.kind == CHAIN_CONV_MAXPOOL:
                    status = fc_conv2d_forward_maxpool2x2(&s.conv, src, s.weights, s.bias, dst,
                                                          s.pool_h, s.pool_w)
                elif s.kind == CHAIN_DEPTHWISE:
                    status = fc_depthwise_conv2d_forward(&s.conv, src, s.weights, s.bias, dst)
                elif s.kind == CHAIN_MAX_POOL:
                    status = fc_max_pool2d_forward(&s.pool, src, dst)
                elif s.kind == CHAIN_AVG_POOL:
                    status = fc_avg_pool2d_forward(&s.pool, src, dst)
                else:
                    status = fc_global_avg_pool2d(&s.pool, src, dst)
            if not _done_unless_declined(status):
                return i
            src = dst
        return -1


def conv2d_backward_input(const real[:, :, :, ::1] dy, const real[:, :, :, ::1] kernel,
                          real[:, :, :, ::1] dx, tuple geometry, int n_threads,
                          int64_t groups=1, bint channels_first=False):
    cdef fc_conv2d_params p = _conv_params(geometry, False, n_threads, groups, channels_first)
    cdef int status
    with nogil:
        if real is float:
            status = fc_conv2d_backward_input(&p, &dy[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                              &dx[0, 0, 0, 0])
        else:
            status = fc_conv2d_backward_input_f64(&p, &dy[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                                  &dx[0, 0, 0, 0])
    _check(status)


def conv2d_transpose(const real[:, :, :, ::1] x, const real[:, :, :, ::1] kernel,
                     const real[::1] bias, real[:, :, :, ::1] y, tuple geometry, bint relu,
                     int n_threads, int64_t groups=1, bint channels_first=False):
    """The transposed convolution of the layer `geometry` describes: x has
    its output's shape, y its input's."""
    cdef fc_conv2d_params p = _conv_params(geometry, relu, n_threads, groups, channels_first)
    cdef const real *bias_ptr = NULL
    if bias is not None:
        bias_ptr = &bias[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_conv2d_transpose(&p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], bias_ptr,
                                         &y[0, 0, 0, 0])
        else:
            status = fc_conv2d_transpose_f64(&p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                             bias_ptr, &y[0, 0, 0, 0])
    _check(status)


def conv2d_backward_kernel(const real[:, :, :, ::1] dy, const real[:, :, :, ::1] x,
                           real[:, :, :, ::1] dkernel, real[::1] dbias, tuple geometry,
                           int n_threads, int64_t groups=1, bint channels_first=False):
    cdef fc_conv2d_params p = _conv_params(geometry, False, n_threads, groups, channels_first)
    cdef real *dbias_ptr = NULL
    if dbias is not None:
        dbias_ptr = &dbias[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_conv2d_backward_kernel(&p, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                               &dkernel[0, 0, 0, 0], dbias_ptr)
        else:
            status = fc_conv2d_backward_kernel_f64(&p, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                                   &dkernel[0, 0, 0, 0], dbias_ptr)
    _check(status)


def max_pool2d_forward(const real[:, :, :, ::1] x, real[:, :, :, ::1] y,
                       tuple geometry, int n_threads, bint channels_first=False):
    cdef fc_pool2d_params p = _pool_params(geometry, n_threads, channels_first)
    cdef int status
    with nogil:
        if real is float:
            status = fc_max_pool2d_forward(&p, &x[0, 0, 0, 0], &y[0, 0, 0, 0])
        else:
            status = fc_max_pool2d_forward_f64(&p, &x[0, 0, 0, 0], &y[0, 0, 0, 0])
    _check(status)


def max_pool2d_backward(const real[:, :, :, ::1] dy, const real[:, :, :, ::1] x,
                        real[:, :, :, ::1] dx, tuple geometry, int n_threads,
                        bint channels_first=False):
    cdef fc_pool2d_params p = _pool_params(geometry, n_threads, channels_first)
    cdef int status
    with nogil:
        if real is float:
            status = fc_max_pool2d_backward(&p, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                            &dx[0, 0, 0, 0])
        else:
            status = fc_max_pool2d_backward_f64(&p, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                                &dx[0, 0, 0, 0])
    _check(status)


def avg_pool2d_forward(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, tuple geometry,
                       bint count_include_pad, bint channels_first, int n_threads):
    cdef fc_pool2d_params p = _pool_params(geometry, n_threads, channels_first,
                                           count_include_pad)
    cdef int status
    with nogil:
        if real is float:
            status = fc_avg_pool2d_forward(&p, &x[0, 0, 0, 0], &y[0, 0, 0, 0])
        else:
            status = fc_avg_pool2d_forward_f64(&p, &x[0, 0, 0, 0], &y[0, 0, 0, 0])
    _check(status)


def avg_pool2d_backward(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx, tuple geometry,
                        bint count_include_pad, bint channels_first, int n_threads):
    cdef fc_pool2d_params p = _pool_params(geometry, n_threads, channels_first,
                                           count_include_pad)
    cdef int status
    with nogil:
        if real is float:
            status = fc_avg_pool2d_backward(&p, &dy[0, 0, 0, 0], &dx[0, 0, 0, 0])
        else:
            status = fc_avg_pool2d_backward_f64(&p, &dy[0, 0, 0, 0], &dx[0, 0, 0, 0])
    _check(status)


def global_avg_pool2d(const real[:, :, :, ::1] x, real[:, ::1] y, bint channels_first,
                      int n_threads):
    cdef tuple shape = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    cdef fc_pool2d_params p = _global_params(shape, channels_first, n_threads)
    _check_shape((y.shape[0], y.shape[1]), (p.n, p.c), "y")
    cdef int status
    with nogil:
        if real is float:
            status = fc_global_avg_pool2d(&p, &x[0, 0, 0, 0], &y[0, 0])
        else:
            status = fc_global_avg_pool2d_f64(&p, &x[0, 0, 0, 0], &y[0, 0])
    _check(status)


def global_avg_pool2d_backward(const real[:, ::1] dy, real[:, :, :, ::1] dx,
                               bint channels_first, int n_threads):
    cdef tuple shape = (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3])
    cdef fc_pool2d_params p = _global_params(shape, channels_first, n_threads)
    _check_shape((dy.shape[0], dy.shape[1]), (p.n, p.c), "dy")
    cdef int status
    with nogil:
        if real is float:
            status = fc_global_avg_pool2d_backward(&p, &dy[0, 0], &dx[0, 0, 0, 0])
        else:
            status = fc_global_avg_pool2d_backward_f64(&p, &dy[0, 0], &dx[0, 0, 0, 0])
    _check(status)


def global_max_pool2d(const real[:, :, :, ::1] x, real[:, ::1] y, bint channels_first,
                      int n_threads):
    cdef tuple shape = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    cdef fc_pool2d_params p = _global_params(shape, channels_first, n_threads)
    _check_shape((y.shape[0], y.shape[1]), (p.n, p.c), "y")
    cdef int status
    with nogil:
        if real is float:
            status = fc_global_max_pool2d(&p, &x[0, 0, 0, 0], &y[0, 0])
        else:
            status = fc_global_max_pool2d_f64(&p, &x[0, 0, 0, 0], &y[0, 0])
    _check(status)


def global_max_pool2d_backward(const real[:, ::1] dy, const real[:, :, :, ::1] x,
                               real[:, :, :, ::1] dx, bint channels_first, int n_threads):
    cdef tuple shape = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    cdef fc_pool2d_params p = _global_params(shape, channels_first, n_threads)
    _check_shape((dy.shape[0], dy.shape[1]), (p.n, p.c), "dy")
    _check_shape((dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]), shape, "dx")
    cdef int status
    with nogil:
        if real is float:
            status = fc_global_max_pool2d_backward(&p, &dy[0, 0], &x[0, 0, 0, 0],
                                                   &dx[0, 0, 0, 0])
        else:
            status = fc_global_max_pool2d_backward_f64(&p, &dy[0, 0], &x[0, 0, 0, 0],
                                                       &dx[0, 0, 0, 0])
    _check(status)


cdef tuple _upsampled(tuple shape, int size_h, int size_w, bint channels_first):
    if channels_first:
        return (shape[0], shape[1], shape[2] * size_h, shape[3] * size_w)
    return (shape[0], shape[1] * size_h, shape[2] * size_w, shape[3])


def upsample2d_forward(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, int size_h,
                       int size_w, bint bilinear, bint channels_first, int n_threads):
    cdef tuple shape = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    cdef fc_upsample_params p = _upsample_params(shape, size_h, size_w, bilinear,
                                                 channels_first, n_threads)
    if size_h >= 1 and size_w >= 1:
        _check_shape((y.shape[0], y.shape[1], y.shape[2], y.shape[3]),
                     _upsampled(shape, size_h, size_w, channels_first), "y")
    cdef int status
    with nogil:
        if real is float:
            status = fc_upsample2d_forward(&p, &x[0, 0, 0, 0], &y[0, 0, 0, 0])
        else:
            status = fc_upsample2d_forward_f64(&p, &x[0, 0, 0, 0], &y[0, 0, 0, 0])
    _check(status)


def upsample2d_backward(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx, int size_h,
                        int size_w, bint bilinear, bint channels_first, int n_threads):
    cdef tuple shape = (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3])
    cdef fc_upsample_params p = _upsample_params(shape, size_h, size_w, bilinear,
                                                 channels_first, n_threads)
    if size_h >= 1 and size_w >= 1:
        _check_shape((dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3]),
                     _upsampled(shape, size_h, size_w, channels_first), "dy")
    cdef int status
    with nogil:
        if real is float:
            status = fc_upsample2d_backward(&p, &dy[0, 0, 0, 0], &dx[0, 0, 0, 0])
        else:
            status = fc_upsample2d_backward_f64(&p, &dy[0, 0, 0, 0], &dx[0, 0, 0, 0])
    _check(status)


def relu_forward(const real[::1] x, real[::1] y, int n_threads):
    cdef int status
    with nogil:
        if real is float:
            status = fc_relu_forward(&x[0], &y[0], x.shape[0], n_threads)
        else:
            status = fc_relu_forward_f64(&x[0], &y[0], x.shape[0], n_threads)
    _check(status)


def add(const real[::1] a, const real[::1] b, real[::1] y, bint relu, int n_threads):
    if a.shape[0] != y.shape[0] or b.shape[0] != y.shape[0]:
        raise ValueError(f"add: operands of {a.shape[0]} and {b.shape[0]} values for "
                         f"{y.shape[0]} outputs")
    if y.shape[0] == 0:
        return
    cdef int status
    with nogil:
        if real is float:
            status = fc_add(&a[0], &b[0], &y[0], y.shape[0], relu, n_threads)
        else:
            status = fc_add_f64(&a[0], &b[0], &y[0], y.shape[0], relu, n_threads)
    _check(status)


def relu_backward(const real[::1] dy, const real[::1] y, real[::1] out, int n_threads):
    cdef int status
    with nogil:
        if real is float:
            status = fc_relu_backward(&dy[0], &y[0], &out[0], dy.shape[0], n_threads)
        else:
            status = fc_relu_backward_f64(&dy[0], &y[0], &out[0], dy.shape[0], n_threads)
    _check(status)




# fastconv.h's optimizer rules and coefficient positions, for fastconv.ops.
UPDATE_RULES = {
    "sgd": FC_RULE_SGD, "momentum": FC_RULE_MOMENTUM, "nesterov": FC_RULE_NESTEROV,
    "rmsprop": FC_RULE_RMSPROP, "rmsprop_centered": FC_RULE_RMSPROP_CENTERED,
    "rmsprop_momentum": FC_RULE_RMSPROP_MOMENTUM,
    "rmsprop_momentum_centered": FC_RULE_RMSPROP_MOMENTUM_CENTERED,
    "adagrad": FC_RULE_ADAGRAD, "adadelta": FC_RULE_ADADELTA, "adamax": FC_RULE_ADAMAX,
    "nadam": FC_RULE_NADAM,
}
UPDATE_COEFFICIENTS = {
    "learning_rate": FC_COEF_LR, "decay_1": FC_COEF_DECAY1,
    "one_minus_decay_1": FC_COEF_ONE_MINUS_DECAY1, "decay_2": FC_COEF_DECAY2,
    "one_minus_decay_2": FC_COEF_ONE_MINUS_DECAY2, "epsilon": FC_COEF_EPSILON,
    "momentum": FC_COEF_MOMENTUM, "grad_coefficient": FC_COEF_GRAD,
    "m_coefficient": FC_COEF_M, "v_correction": FC_COEF_V_CORRECTION,
}
UPDATE_COEFFICIENT_COUNT = FC_COEF_COUNT


def optimizer_update(int rule, real[::1] param, const real[::1] grad, real[::1] slot0,
                     real[::1] slot1, real[::1] slot2, const real[::1] coefficients,
                     int n_threads):
    cdef real *s0 = NULL
    cdef real *s1 = NULL
    cdef real *s2 = NULL
    if slot0 is not None:
        s0 = &slot0[0]
    if slot1 is not None:
        s1 = &slot1[0]
    if slot2 is not None:
        s2 = &slot2[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_optimizer_update(rule, &param[0], &grad[0], s0, s1, s2, param.shape[0],
                                         &coefficients[0], n_threads)
        else:
            status = fc_optimizer_update_f64(rule, &param[0], &grad[0], s0, s1, s2,
                                             param.shape[0], &coefficients[0], n_threads)
    _check(status)


def adam_update(real[::1] param, const real[::1] grad, real[::1] m, real[::1] v,
                real[::1] vhat, real alpha, real one_minus_beta_1, real one_minus_beta_2,
                real epsilon, int n_threads):
    cdef real *vhat_ptr = NULL
    if vhat is not None:
        vhat_ptr = &vhat[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_adam_update(&param[0], &grad[0], &m[0], &v[0], vhat_ptr,
                                    param.shape[0], alpha, one_minus_beta_1, one_minus_beta_2,
                                    epsilon, n_threads)
        else:
            status = fc_adam_update_f64(&param[0], &grad[0], &m[0], &v[0], vhat_ptr,
                                        param.shape[0], alpha, one_minus_beta_1,
                                        one_minus_beta_2, epsilon, n_threads)
    _check(status)


cdef fc_conv2d_params _depthwise_params(tuple g, int relu, bint channels_first, int n_threads):
    # geometry sizes are NHWC-ordered whatever the layout; one group per input channel
    return _conv_params(g, relu, n_threads, g[3], channels_first)


def depthwise_conv2d_forward(const real[:, :, :, ::1] x, const real[:, :, :, ::1] kernel,
                             const real[::1] bias, real[:, :, :, ::1] y, tuple geometry,
                             int relu, bint channels_first, int n_threads):
    cdef fc_conv2d_params p = _depthwise_params(geometry, relu, channels_first, n_threads)
    cdef const real *bias_ptr = NULL
    if bias is not None:
        bias_ptr = &bias[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_depthwise_conv2d_forward(&p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                                 bias_ptr, &y[0, 0, 0, 0])
        else:
            status = fc_depthwise_conv2d_forward_f64(&p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                                     bias_ptr, &y[0, 0, 0, 0])
    _check(status)


def depthwise_conv2d_backward_input(const real[:, :, :, ::1] dy,
                                    const real[:, :, :, ::1] kernel, real[:, :, :, ::1] dx,
                                    tuple geometry, bint channels_first, int n_threads):
    cdef fc_conv2d_params p = _depthwise_params(geometry, False, channels_first, n_threads)
    cdef int status
    with nogil:
        if real is float:
            status = fc_depthwise_conv2d_backward_input(&p, &dy[0, 0, 0, 0],
                                                        &kernel[0, 0, 0, 0], &dx[0, 0, 0, 0])
        else:
            status = fc_depthwise_conv2d_backward_input_f64(&p, &dy[0, 0, 0, 0],
                                                            &kernel[0, 0, 0, 0],
                                                            &dx[0, 0, 0, 0])
    _check(status)


def depthwise_conv2d_backward_kernel(const real[:, :, :, ::1] dy, const real[:, :, :, ::1] x,
                                     real[:, :, :, ::1] dkernel, real[::1] dbias,
                                     tuple geometry, bint channels_first, int n_threads):
    cdef fc_conv2d_params p = _depthwise_params(geometry, False, channels_first, n_threads)
    cdef real *dbias_ptr = NULL
    if dbias is not None:
        dbias_ptr = &dbias[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_depthwise_conv2d_backward_kernel(&p, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                                         &dkernel[0, 0, 0, 0], dbias_ptr)
        else:
            status = fc_depthwise_conv2d_backward_kernel_f64(&p, &dy[0, 0, 0, 0],
                                                             &x[0, 0, 0, 0],
                                                             &dkernel[0, 0, 0, 0], dbias_ptr)
    _check(status)


cdef fc_norm_params _norm_params(int64_t outer, int64_t c, int64_t inner, int n_threads):
    cdef fc_norm_params p
    p.outer = outer
    p.c = c
    p.inner = inner
    p.n_threads = n_threads
    return p


cdef int _check_len(Py_ssize_t got, object want, str name) except -1:
    # The sizes arrive apart from the flat arrays: a mismatch would have the
    # kernel read or write past an array.
    if got != want:
        raise ValueError(f"{name} has {got} values, expected {want}")
    return 0


# Batch normalization over flat arrays (the caller passes arr.reshape(-1)) of
# a tensor viewed as (outer, c, inner); see fc_norm_params in fastconv.h.
def batch_norm_stats(const real[::1] x, real[::1] mean, real[::1] var, int64_t outer,
                     int64_t c, int64_t inner, int n_threads):
    cdef fc_norm_params p = _norm_params(outer, c, inner, n_threads)
    _check_len(x.shape[0], <object>outer * c * inner, "x")
    _check_len(mean.shape[0], c, "mean")
    _check_len(var.shape[0], c, "var")
    cdef int status
    with nogil:
        if real is float:
            status = fc_batch_norm_stats(&p, &x[0], &mean[0], &var[0])
        else:
            status = fc_batch_norm_stats_f64(&p, &x[0], &mean[0], &var[0])
    _check(status)


def batch_norm_apply(const real[::1] x, const real[::1] mean, const real[::1] var,
                     const real[::1] gamma, const real[::1] beta, real epsilon, bint relu,
                     real[::1] y, int64_t outer, int64_t c, int64_t inner, int n_threads):
    cdef fc_norm_params p = _norm_params(outer, c, inner, n_threads)
    _check_len(x.shape[0], <object>outer * c * inner, "x")
    _check_len(y.shape[0], <object>outer * c * inner, "y")
    _check_len(mean.shape[0], c, "mean")
    _check_len(var.shape[0], c, "var")
    cdef const real *gamma_ptr = NULL
    cdef const real *beta_ptr = NULL
    if gamma is not None:
        _check_len(gamma.shape[0], c, "gamma")
        gamma_ptr = &gamma[0]
    if beta is not None:
        _check_len(beta.shape[0], c, "beta")
        beta_ptr = &beta[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_batch_norm_apply(&p, &x[0], &mean[0], &var[0], gamma_ptr, beta_ptr,
                                         epsilon, relu, &y[0])
        else:
            status = fc_batch_norm_apply_f64(&p, &x[0], &mean[0], &var[0], gamma_ptr, beta_ptr,
                                             epsilon, relu, &y[0])
    _check(status)


def batch_norm_backward(const real[::1] dy, const real[::1] x, const real[::1] mean,
                        const real[::1] var, const real[::1] gamma, real epsilon,
                        real[::1] dx, real[::1] dgamma, real[::1] dbeta, int64_t outer,
                        int64_t c, int64_t inner, int n_threads):
    cdef fc_norm_params p = _norm_params(outer, c, inner, n_threads)
    _check_len(dy.shape[0], <object>outer * c * inner, "dy")
    _check_len(x.shape[0], <object>outer * c * inner, "x")
    _check_len(mean.shape[0], c, "mean")
    _check_len(var.shape[0], c, "var")
    _check_len(dgamma.shape[0], c, "dgamma")
    _check_len(dbeta.shape[0], c, "dbeta")
    cdef const real *gamma_ptr = NULL
    cdef real *dx_ptr = NULL
    if gamma is not None:
        _check_len(gamma.shape[0], c, "gamma")
        gamma_ptr = &gamma[0]
    if dx is not None:
        _check_len(dx.shape[0], <object>outer * c * inner, "dx")
        dx_ptr = &dx[0]
    cdef int status
    with nogil:
        if real is float:
            status = fc_batch_norm_backward(&p, &dy[0], &x[0], &mean[0], &var[0], gamma_ptr,
                                            epsilon, dx_ptr, &dgamma[0], &dbeta[0])
        else:
            status = fc_batch_norm_backward_f64(&p, &dy[0], &x[0], &mean[0], &var[0],
                                                gamma_ptr, epsilon, dx_ptr, &dgamma[0],
                                                &dbeta[0])
    _check(status)


WINOGRAD_ALWAYS = 2


def set_winograd(mode):
    """Winograd for eligible layers (3x3, stride 1, 16+ channels): False (off),
    True (on, the default: the weight gradient only where it pays) or
    WINOGRAD_ALWAYS (the weight gradient of every eligible layer too)."""
    if mode is True or mode is False or (type(mode) is int and 0 <= mode <= WINOGRAD_ALWAYS):
        _check(fc_set_winograd(int(mode)))
        return
    raise ValueError(f"`mode` must be False, True or WINOGRAD_ALWAYS ({WINOGRAD_ALWAYS}), "
                     f"got {mode!r}")


def get_winograd():
    """The mode set_winograd set: 0 (off), 1 (on) or WINOGRAD_ALWAYS."""
    return fc_get_winograd()


SIMD_NAMES = tuple(fc_simd_name(i).decode() for i in range(FC_SIMD_COUNT))


def simd_supported():
    """Names of the SIMD paths compiled in and usable on this CPU."""
    return [SIMD_NAMES[i] for i in range(FC_SIMD_COUNT) if fc_simd_supported(i)]


def get_simd():
    return SIMD_NAMES[fc_get_simd()]


def set_simd(str name):
    if name not in SIMD_NAMES:
        raise ValueError(f"unknown SIMD path {name!r}; expected one of {SIMD_NAMES}")
    if fc_set_simd(SIMD_NAMES.index(name)) != FC_OK:
        raise ValueError(f"SIMD path {name!r} is not available here; "
                         f"available: {simd_supported()}")


def openmp_enabled():
    return bool(fc_openmp_enabled())


def default_num_threads():
    return fc_default_num_threads()


def threads_for(int requested, double work, int64_t items):
    """The threads the kernels' policy gives a parallel region of ``work``
    in ``items`` work items when ``requested`` are asked for (no machine cap)."""
    if requested < 1:
        raise ValueError(f"`requested` must be >= 1, got {requested}")
    return fc_threads_for(requested, work, items)


def record_regions(bint on):
    """Start (clearing the log) or stop the record of parallel regions."""
    fc_regions_record(on)


def recorded_regions():
    """The record since ``record_regions(True)``: a list of ``(seconds, work,
    items)``, ``items == -1`` marking the end of a kernel call; and the
    number of entries logged (more than listed when the log overflowed)."""
    cdef int64_t cap = FC_REGIONS_MAX
    cdef double[::1] t = cvarray(shape=(cap,), itemsize=sizeof(double), format="d")
    cdef double[::1] w = cvarray(shape=(cap,), itemsize=sizeof(double), format="d")
    cdef int64_t[::1] items = cvarray(shape=(cap,), itemsize=sizeof(int64_t),
                                                format="q")
    cdef int64_t count = fc_regions_read(&t[0], &w[0], &items[0], cap)
    cdef int64_t kept = min(count, cap)
    return [(t[i], w[i], items[i]) for i in range(kept)], count


def fma_peak_probe(int64_t iters, int n_threads):
    """Multiply-adds done by iters x 12 FMA chains per thread (time the call)."""
    cdef double done
    with nogil:
        done = fc_fma_peak_probe(iters, n_threads)
    return done



# ---------------------------------------------------------------------------
# NumPy allocator (NEP 49) backed by the C caching allocator in csrc/arena.c.

cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyDataMemAllocator:
        void *ctx
        void *(*malloc)(void *ctx, size_t size) noexcept nogil
        void *(*calloc)(void *ctx, size_t nelem, size_t elsize) noexcept nogil
        void *(*realloc)(void *ctx, void *ptr, size_t new_size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil

    ctypedef struct PyDataMem_Handler:
        char name[127]
        uint8_t version
        PyDataMemAllocator allocator

    object PyDataMem_SetHandler(object handler)


cdef void *_arena_malloc(void *ctx, size_t size) noexcept nogil:
    return fc_arena_malloc(size)


cdef void *_arena_calloc(void *ctx, size_t nelem, size_t elsize) noexcept nogil:
    return fc_arena_calloc(nelem, elsize)


cdef void *_arena_realloc(void *ctx, void *ptr, size_t new_size) noexcept nogil:
    return fc_arena_realloc(ptr, new_size)


cdef void _arena_free(void *ctx, void *ptr, size_t size) noexcept nogil:
    fc_arena_free(ptr)


cdef PyDataMem_Handler _arena_handler
strncpy(_arena_handler.name, b"fastconv_arena", 127)
_arena_handler.version = 1
_arena_handler.allocator.ctx = NULL
_arena_handler.allocator.malloc = _arena_malloc
_arena_handler.allocator.calloc = _arena_calloc
_arena_handler.allocator.realloc = _arena_realloc
_arena_handler.allocator.free = _arena_free

# Arrays keep a reference to the capsule of the handler that allocated them.
ARENA_HANDLER = PyCapsule_New(&_arena_handler, "mem_handler", NULL)


def set_numpy_allocator(handler):
    """Make ``handler`` (a NumPy ``mem_handler`` capsule) NumPy's allocator in
    the current context; returns the previous one (to restore it)."""
    return PyDataMem_SetHandler(handler)


def arena_release():
    """Free the caching allocator's idle blocks."""
    fc_arena_release()


def arena_stats():
    """(idle bytes, reuses, fresh allocations) of the caching allocator."""
    cdef size_t idle = 0, hits = 0, misses = 0
    fc_arena_stats(&idle, &hits, &misses)
    return idle, hits, misses
