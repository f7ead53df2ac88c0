/*
 * kernels_depthwise_impl.h: the micro-kernels of the depthwise convolution
 * (depthwise_impl.h drives them), written over the vector vocabulary of
 * kernels_impl.h, which includes this file at its end: compiled once per
 * instruction set and element type. The argument structs are in
 * fc_types_impl.h.
 *
 * Channels last, channels in vectors (one vector = FC_VL channels):
 *   dw_block  P output pixels x V channel vectors in registers, the taps in
 *             the loop: per tap, V kernel vectors loaded once and P x V
 *             source vectors (forward and backward-input).
 *   dw_wgrad  T taps of one kernel row x V channel vectors in registers,
 *             summed over runs of pixels: per pixel, V dy vectors and T x V
 *             source vectors (weight gradient); with 3 taps and stride ==
 *             1 or 2 x dilation, a window of source vectors slides along
 *             the row, 1 or 2 new source vectors per dy vector.
 * Channels first, the output width in vectors:
 *   dw_rows   up to 4 vectors of one output row; per tap one broadcast weight
 *             and one contiguous (unaligned) source load per vector.
 *   dw_dots   the dot products of dy rows with up to FC_DW_MAX_DOTS taps'
 *             source rows, one accumulator vector per tap, the lanes summed
 *             at the end (weight gradient).
 *
 * The shapes are compile-time constants of each instantiation (the loops
 * unroll and the accumulators stay in registers); each entry point picks the
 * instantiation from the shape in its arguments. The channel-vector counts
 * follow the register budget of the igemm tiles (FC_ACC_VECS: 4 with 32
 * registers, 2 with 16).
 */

/* ---------------------------------------------------------------------------
 * Channels-last block (fc_dw_block_args). A masked load in the tap loop only
 * in the tail instantiations (P x 1 vector), where it costs little. THREE
 * (nrows == ncols == 3, no tail): the 9 taps unrolled, stepping through the
 * column progressions, where the loops over the row and column lists keep
 * their offsets in memory. Measured (AVX-512, 2 threads, 32x56x56x64 stride
 * 1, ratios to PyTorch in one run): forward 0.90 -> 0.81, input gradient
 * 1.26 -> 1.15; a block of 4 pixels x 4 vectors in L1 alone runs 1.3-1.6x
 * faster.
 */
FC_ALWAYS_INLINE void FCN(dw_block_body)(const FCN(fc_dw_block_args) *FC_RESTRICT a,
                                         const int P, const int V, const int TAIL,
                                         const int THREE)
{
    fc_vec acc[FC_DW_MAX_P][FC_DW_MAX_V];
    const fc_mask mask = FC_MAKE_MASK(TAIL ? a->tail : FC_VL);
    (void)mask;
    {
        fc_vec init[FC_DW_MAX_V];
        for (int v = 0; v < V; ++v) {
            if (a->bias == NULL)
                init[v] = VZERO();
            else if (TAIL)
                init[v] = VLOAD_M(a->bias + v * FC_VL, mask);
            else
                init[v] = VLOAD(a->bias + v * FC_VL);
        }
        for (int p = 0; p < P; ++p)
            for (int v = 0; v < V; ++v)
                acc[p][v] = init[v];
    }
    const int64_t ss = a->src_step, off = a->src_off, ncols = a->ncols;
    if (THREE) {
        const int64_t cs = a->col_src[1] - a->col_src[0], ck = a->col_k[1] - a->col_k[0];
        for (int r = 0; r < 3; ++r) {
            const FC_T *s = a->row_src[r] + off + a->col_src[0];
            const FC_T *k = a->kernel + a->row_k[r] + a->col_k[0];
            for (int c = 0; c < 3; ++c, s += cs, k += ck) {
                fc_vec kv[FC_DW_MAX_V];
                for (int v = 0; v < V; ++v)
                    kv[v] = VLOAD(k + v * FC_VL);
                for (int p = 0; p < P; ++p)
                    for (int v = 0; v < V; ++v)
                        acc[p][v] = VFMA(VLOAD(s + p * ss + v * FC_VL), kv[v], acc[p][v]);
            }
        }
    }
    for (int64_t r = 0; !THREE && r < a->nrows; ++r) {
        const FC_T *row = a->row_src[r];
        const FC_T *krow = a->kernel + a->row_k[r];
        for (int64_t c = 0; c < ncols; ++c) {
            const FC_T *s = row + (a->col_src[c] + off);
            const FC_T *k = krow + a->col_k[c];
            fc_vec kv[FC_DW_MAX_V];
            for (int v = 0; v < V; ++v)
                kv[v] = TAIL ? VLOAD_M(k + v * FC_VL, mask) : VLOAD(k + v * FC_VL);
            for (int p = 0; p < P; ++p)
                for (int v = 0; v < V; ++v) {
                    const FC_T *sp = s + p * ss + v * FC_VL;
                    acc[p][v] = VFMA(TAIL ? VLOAD_M(sp, mask) : VLOAD(sp), kv[v], acc[p][v]);
                }
        }
    }
    for (int p = 0; p < P; ++p) {
        FC_T *d = a->dst + p * a->dst_step;
        for (int v = 0; v < V; ++v) {
            const fc_vec out = FC_ACTIVATE(acc[p][v], a->relu);
            if (TAIL)
                VSTORE_M(d + v * FC_VL, out, mask);
            else
                VSTORE(d + v * FC_VL, out);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Channels-last weight-gradient tile (fc_dw_wgrad_args). S > 0 (t == 3,
 * x_step == S * tap_step: stride == S x dilation, S = 1 or 2) slides a
 * window along the run. S == 1: tap t of pixel q + 1 reads tap t + 1 of
 * pixel q, so three windows of source vectors rotate through their roles
 * (unrolled by 3, no moves) and each pixel loads one new source vector and
 * one dy vector per channel vector: 2 loads per 3 FMAs where the general
 * loop needs 2 per 1 (GCC folds the dy vector into each FMA), the loads
 * being what bounds it. S == 2: tap 0 of pixel q + 1 is tap 2 of pixel q,
 * 3 loads per 3 FMAs.
 */
/* Keeps v in a register: GCC otherwise folds a vector used by several FMAs
 * into each of them as a memory operand, one load per use. */
#ifndef FC_DW_IN_REGISTER
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#ifdef __AVX512F__
#define FC_DW_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define FC_DW_IN_REGISTER(v) __asm__("" : "+x"(v))
#endif
#else
#define FC_DW_IN_REGISTER(v) ((void)0)
#endif
#endif

FC_ALWAYS_INLINE void FCN(dw_wgrad_body)(const FCN(fc_dw_wgrad_args) *FC_RESTRICT a,
                                         const int T, const int V, const int TAIL, const int S)
{
    fc_vec acc[FC_DW_MAX_T][FC_DW_MAX_V];
    const fc_mask mask = FC_MAKE_MASK(TAIL ? a->tail : FC_VL);
    (void)mask;
    for (int t = 0; t < T; ++t) {
        const FC_T *o = a->out + t * a->ldo;
        for (int v = 0; v < V; ++v) {
            if (!a->accumulate)
                acc[t][v] = VZERO();
            else if (TAIL)
                acc[t][v] = VLOAD_M(o + v * FC_VL, mask);
            else
                acc[t][v] = VLOAD(o + v * FC_VL);
        }
    }
    const int64_t xs = a->x_step, ds = a->d_step, ts = a->tap_step;
#define FC_DW_LD(p) (TAIL ? VLOAD_M((p), mask) : VLOAD(p))
    for (int64_t i = 0; S == 2 && i < a->nruns; ++i) {
        const FC_T *x = a->x[i];
        const FC_T *d = a->d[i];
        fc_vec w0[FC_DW_MAX_V], w2[FC_DW_MAX_V];
        for (int v = 0; v < V; ++v)
            w0[v] = FC_DW_LD(x + v * FC_VL);
        /* one pixel: tap 0 in A (carried), taps 1 and 2 loaded, tap 2 in C */
#define FC_DW_SLIDE2_STEP(A, C) \
        for (int v = 0; v < V; ++v) { \
            const fc_vec b = FC_DW_LD(x + ts + v * FC_VL); \
            C[v] = FC_DW_LD(x + 2 * ts + v * FC_VL); \
            fc_vec dv = FC_DW_LD(d + v * FC_VL); \
            FC_DW_IN_REGISTER(dv); \
            acc[0][v] = VFMA(A[v], dv, acc[0][v]); \
            acc[1][v] = VFMA(b, dv, acc[1][v]); \
            acc[2][v] = VFMA(C[v], dv, acc[2][v]); \
        } \
        x += xs; \
        d += ds;
        int64_t q = a->count[i];
        for (; q >= 2; q -= 2) {
            FC_DW_SLIDE2_STEP(w0, w2)
            FC_DW_SLIDE2_STEP(w2, w0)
        }
        if (q == 1) {
            FC_DW_SLIDE2_STEP(w0, w2)
        }
#undef FC_DW_SLIDE2_STEP
    }
    for (int64_t i = 0; S == 1 && i < a->nruns; ++i) {
        const FC_T *x = a->x[i];
        const FC_T *d = a->d[i];
        fc_vec w0[FC_DW_MAX_V], w1[FC_DW_MAX_V], w2[FC_DW_MAX_V];
        for (int v = 0; v < V; ++v) {
            w0[v] = FC_DW_LD(x + v * FC_VL);
            w1[v] = FC_DW_LD(x + xs + v * FC_VL);
        }
        x += 2 * xs;
        /* one pixel: taps 0, 1, 2 in A, B, C; C newly loaded */
#define FC_DW_SLIDE_STEP(A, B, C) \
        for (int v = 0; v < V; ++v) { \
            C[v] = FC_DW_LD(x + v * FC_VL); \
            fc_vec dv = FC_DW_LD(d + v * FC_VL); \
            FC_DW_IN_REGISTER(dv); \
            acc[0][v] = VFMA(A[v], dv, acc[0][v]); \
            acc[1][v] = VFMA(B[v], dv, acc[1][v]); \
            acc[2][v] = VFMA(C[v], dv, acc[2][v]); \
        } \
        x += xs; \
        d += ds;
        int64_t q = a->count[i];
        for (; q >= 3; q -= 3) {
            FC_DW_SLIDE_STEP(w0, w1, w2)
            FC_DW_SLIDE_STEP(w1, w2, w0)
            FC_DW_SLIDE_STEP(w2, w0, w1)
        }
        if (q >= 1) {
            FC_DW_SLIDE_STEP(w0, w1, w2)
        }
        if (q >= 2) {
            FC_DW_SLIDE_STEP(w1, w2, w0)
        }
#undef FC_DW_SLIDE_STEP
    }
#undef FC_DW_LD
    for (int64_t i = 0; S == 0 && i < a->nruns; ++i) {
        const FC_T *x = a->x[i];
        const FC_T *d = a->d[i];
        for (int64_t q = a->count[i]; q > 0; --q, x += xs, d += ds) {
            fc_vec dv[FC_DW_MAX_V];
            for (int v = 0; v < V; ++v)
                dv[v] = TAIL ? VLOAD_M(d + v * FC_VL, mask) : VLOAD(d + v * FC_VL);
            for (int t = 0; t < T; ++t)
                for (int v = 0; v < V; ++v) {
                    const FC_T *xp = x + t * ts + v * FC_VL;
                    acc[t][v] = VFMA(TAIL ? VLOAD_M(xp, mask) : VLOAD(xp), dv[v], acc[t][v]);
                }
        }
    }
    for (int t = 0; t < T; ++t) {
        FC_T *o = a->out + t * a->ldo;
        for (int v = 0; v < V; ++v) {
            if (TAIL)
                VSTORE_M(o + v * FC_VL, acc[t][v], mask);
            else
                VSTORE(o + v * FC_VL, acc[t][v]);
        }
    }
}

/* The instantiations: P (T) = 1 .. 4 (5) with V = 1 .. FC_DW_MAX_V vectors
 * where the registers allow it, plus the one-vector tails. */
#define FC_DW_SHAPES4(X, V) X(1, V) X(2, V) X(3, V) X(4, V)
#define FC_DW_SHAPES5(X, V) X(1, V) X(2, V) X(3, V) X(4, V) X(5, V)
#if FC_ACC_VECS >= 4
#define FC_DW_BLOCK_LIST(X) \
    FC_DW_SHAPES4(X, 1) FC_DW_SHAPES4(X, 2) FC_DW_SHAPES4(X, 3) FC_DW_SHAPES4(X, 4)
#define FC_DW_WGRAD_LIST(X) \
    FC_DW_SHAPES5(X, 1) FC_DW_SHAPES5(X, 2) FC_DW_SHAPES5(X, 3) FC_DW_SHAPES5(X, 4)
#else
#define FC_DW_BLOCK_LIST(X) FC_DW_SHAPES4(X, 1) FC_DW_SHAPES4(X, 2)
#define FC_DW_WGRAD_LIST(X) FC_DW_SHAPES5(X, 1) FC_DW_SHAPES5(X, 2)
#endif

#define FC_DW_DEFINE_BLOCK(P, V) \
    static void FCN(dw_block_##P##x##V)(const FCN(fc_dw_block_args) *a) \
    { FCN(dw_block_body)(a, P, V, 0, 0); }
#define FC_DW_DEFINE_WGRAD(T, V) \
    static void FCN(dw_wgrad_##T##x##V)(const FCN(fc_dw_wgrad_args) *a) \
    { FCN(dw_wgrad_body)(a, T, V, 0, 0); }
#define FC_DW_DEFINE_BLOCK_TAIL(P, V) \
    static void FCN(dw_block_tail_##P)(const FCN(fc_dw_block_args) *a) \
    { FCN(dw_block_body)(a, P, 1, 1, 0); }
#define FC_DW_DEFINE_WGRAD_TAIL(T, V) \
    static void FCN(dw_wgrad_tail_##T)(const FCN(fc_dw_wgrad_args) *a) \
    { FCN(dw_wgrad_body)(a, T, 1, 1, 0); }
FC_DW_BLOCK_LIST(FC_DW_DEFINE_BLOCK)
FC_DW_WGRAD_LIST(FC_DW_DEFINE_WGRAD)
FC_DW_SHAPES4(FC_DW_DEFINE_BLOCK_TAIL, 1)
FC_DW_SHAPES5(FC_DW_DEFINE_WGRAD_TAIL, 1)

#define FC_DW_DEFINE_WGRAD_SLIDE(V, S) \
    static void FCN(dw_wgrad_slide##S##_##V)(const FCN(fc_dw_wgrad_args) *a) \
    { FCN(dw_wgrad_body)(a, 3, V, 0, S); }
#define FC_DW_DEFINE_WGRAD_SLIDES(S) \
    FC_DW_DEFINE_WGRAD_SLIDE(1, S) FC_DW_DEFINE_WGRAD_SLIDE(2, S) \
    static void FCN(dw_wgrad_slide##S##_tail)(const FCN(fc_dw_wgrad_args) *a) \
    { FCN(dw_wgrad_body)(a, 3, 1, 1, S); }
FC_DW_DEFINE_WGRAD_SLIDES(1)
FC_DW_DEFINE_WGRAD_SLIDES(2)
#if FC_ACC_VECS >= 4
FC_DW_DEFINE_WGRAD_SLIDE(3, 1)
FC_DW_DEFINE_WGRAD_SLIDE(4, 1)
FC_DW_DEFINE_WGRAD_SLIDE(3, 2)
FC_DW_DEFINE_WGRAD_SLIDE(4, 2)
#endif

#define FC_DW_DEFINE_BLOCK3X3(V) \
    static void FCN(dw_block3x3_##V)(const FCN(fc_dw_block_args) *a) \
    { FCN(dw_block_body)(a, FC_DW_MAX_P, V, 0, 1); }
FC_DW_DEFINE_BLOCK3X3(1)
FC_DW_DEFINE_BLOCK3X3(2)
#if FC_ACC_VECS >= 4
FC_DW_DEFINE_BLOCK3X3(3)
FC_DW_DEFINE_BLOCK3X3(4)
#endif

#define FC_DW_SLOT(P, V) [P][V] = FCN(dw_block_##P##x##V),
#define FC_DW_WSLOT(T, V) [T][V] = FCN(dw_wgrad_##T##x##V),
#define FC_DW_TSLOT(P, V) [P] = FCN(dw_block_tail_##P),
#define FC_DW_WTSLOT(T, V) [T] = FCN(dw_wgrad_tail_##T),

/* a->p in 1 .. FC_DW_MAX_P, a->v in 1 .. the table's dw_v_max (1 with a tail) */
static void FCN(dw_block)(const FCN(fc_dw_block_args) *a)
{
    typedef void (*block_fn)(const FCN(fc_dw_block_args) *);
    static const block_fn full[FC_DW_MAX_P + 1][FC_DW_MAX_V + 1] = {FC_DW_BLOCK_LIST(FC_DW_SLOT)};
    static const block_fn tail[FC_DW_MAX_P + 1] = {FC_DW_SHAPES4(FC_DW_TSLOT, 1)};
#if FC_ACC_VECS >= 4
    static const block_fn full3x3[FC_DW_MAX_V + 1] = {
        NULL, FCN(dw_block3x3_1), FCN(dw_block3x3_2), FCN(dw_block3x3_3), FCN(dw_block3x3_4)};
#else
    static const block_fn full3x3[FC_DW_MAX_V + 1] = {
        NULL, FCN(dw_block3x3_1), FCN(dw_block3x3_2), NULL, NULL};
#endif
    if (!a->tail && a->p == FC_DW_MAX_P && a->nrows == 3 && a->ncols == 3)
        full3x3[a->v](a);
    else
        (a->tail ? tail[a->p] : full[a->p][a->v])(a);
}

/* ---------------------------------------------------------------------------
 * Channels-last run (fc_dw_run_args): P pixels x V channel vectors of a
 * 3-column kernel per group, the source vectors sliding along the row. Per
 * kernel row and channel vector, the group loads 3 kernel vectors and the
 * S * (P - 1) + 3 source vectors its pixels share, each once, and feeds
 * each to the FMAs of the pixels it reaches: 9 + 3 loads for 12 FMAs
 * (stride 1, P = 4) where dw_block loads 4 + 16. And a whole run is one
 * call, where dw_block takes one per P pixels and channel block, its
 * arguments, dispatch and accumulator set-up then costing as much as its
 * FMAs (C harness, Zen 5: a 4 x 4 3 x 3 block in L1 ran at 51% of the FMA
 * peak, 1 x 4 at 16%). Whole forward passes, Zen 5, 1 thread, batch 32,
 * time against dw_block's (medians of 15 alternating runs): 0.72-0.94 at
 * 48x48x24 .. 6x6x512 stride 1 and 24x24 / 12x12 stride 2, 1.02-1.05 at
 * 48x48x32 (stride 1, 2), whose rows come from memory either way. Per
 * pixel and channel the taps add up in dw_block's order (row by row,
 * columns in order), so the results are its own bit for bit.
 */
FC_ALWAYS_INLINE void FCN(dw_run_group)(const FCN(fc_dw_run_args) *FC_RESTRICT a, int64_t q,
                                        int64_t ch, const int P, const int V, const int TAIL,
                                        const int S)
{
    const fc_mask mask = FC_MAKE_MASK(TAIL ? a->tail : FC_VL);
    (void)mask;
#define FC_DW_LD(p) (TAIL ? VLOAD_M((p), mask) : VLOAD(p))
    const int64_t C = a->pixel;
    fc_vec acc[FC_DW_MAX_P][FC_DW_MAX_V];
    for (int v = 0; v < V; ++v) {
        const fc_vec init = a->bias == NULL ? VZERO() : FC_DW_LD(a->bias + ch + v * FC_VL);
        for (int p = 0; p < P; ++p)
            acc[p][v] = init;
    }
    for (int64_t r = 0; r < a->nrows; ++r) {
        /* pointers stepped pixel by pixel, not offsets j * C: each of those
         * would hold a register of its own (C is a variable) */
        const FC_T *sp = a->row_src[r] + a->src_off + q * S * C + ch;
        const FC_T *kp = a->kernel + a->row_k[r] + ch;
        if (V <= 2) {
            /* a pixel's vectors one after another, all 3 * V kernel vectors
             * held: the row's lines in address order, which the prefetchers
             * follow once the rows come from memory (vector-major, 48x48x32
             * at batch 32 ran 1.4x dw_block's time) */
            fc_vec kc[3][2];
            for (int c = 0; c < 3; ++c)
                for (int v = 0; v < V; ++v) {
                    kc[c][v] = FC_DW_LD(kp + c * C + v * FC_VL);
                    FC_DW_IN_REGISTER(kc[c][v]);
                }
            for (int j = 0; j < S * (P - 1) + 3; ++j, sp += C)
                for (int v = 0; v < V; ++v) {
                    fc_vec x = FC_DW_LD(sp + v * FC_VL);
                    FC_DW_IN_REGISTER(x);   /* one load, not one per FMA */
                    for (int c = 0; c < 3; ++c) {
                        const int d = j - c;
                        if (d >= 0 && d % S == 0 && d / S < P)
                            acc[d / S][v] = VFMA(x, kc[c][v], acc[d / S][v]);
                    }
                }
        } else {
            /* vector by vector: 3 kernel vectors held, where 3 * V of them
             * and the P * V accumulators would spill (pixel-major with
             * V = 4 ran 1.6x this order's time). Only stride-2 runs come
             * here: stride-1 runs are split into blocks of up to 2 vectors
             * (dw_forward_cl), faster again. */
            for (int v = 0; v < V; ++v) {
                fc_vec kc[3];
                for (int c = 0; c < 3; ++c) {
                    kc[c] = FC_DW_LD(kp + c * C + v * FC_VL);
                    FC_DW_IN_REGISTER(kc[c]);
                }
                const FC_T *sv = sp + v * FC_VL;
                for (int j = 0; j < S * (P - 1) + 3; ++j, sv += C) {
                    fc_vec x = FC_DW_LD(sv);
                    FC_DW_IN_REGISTER(x);
                    for (int c = 0; c < 3; ++c) {
                        const int d = j - c;
                        if (d >= 0 && d % S == 0 && d / S < P)
                            acc[d / S][v] = VFMA(x, kc[c], acc[d / S][v]);
                    }
                }
            }
        }
    }
    FC_T *d = a->dst + q * C + ch;
    for (int p = 0; p < P; ++p, d += C) {
        for (int v = 0; v < V; ++v) {
            const fc_vec out = FC_ACTIVATE(acc[p][v], a->relu);
            if (TAIL)
                VSTORE_M(d + v * FC_VL, out, mask);
            else
                VSTORE(d + v * FC_VL, out);
        }
    }
#undef FC_DW_LD
}

/* Group q of P pixels through every channel block, pixel-major as in
 * dw_forward_row. */
FC_ALWAYS_INLINE void FCN(dw_run_blocks)(const FCN(fc_dw_run_args) *FC_RESTRICT a, int64_t q,
                                         const int P, const int S)
{
    for (int64_t b = 0; b < a->nblocks; ++b) {
        const int64_t ch = a->block_ch[b];
        if (a->tail > 0 && b == a->nblocks - 1) {
            FCN(dw_run_group)(a, q, ch, P, 1, 1, S);
            continue;
        }
        switch (a->block_v[b]) {
        case 1: FCN(dw_run_group)(a, q, ch, P, 1, 0, S); break;
        case 2: FCN(dw_run_group)(a, q, ch, P, 2, 0, S); break;
#if FC_ACC_VECS >= 4
        case 3: FCN(dw_run_group)(a, q, ch, P, 3, 0, S); break;
        case 4: FCN(dw_run_group)(a, q, ch, P, 4, 0, S); break;
#endif
        default: break;
        }
    }
}

FC_ALWAYS_INLINE void FCN(dw_run_body)(const FCN(fc_dw_run_args) *FC_RESTRICT a, const int S)
{
    int64_t q = 0;
    for (; q + FC_DW_MAX_P <= a->n; q += FC_DW_MAX_P)
        FCN(dw_run_blocks)(a, q, FC_DW_MAX_P, S);
    switch (a->n - q) {
    case 1: FCN(dw_run_blocks)(a, q, 1, S); break;
    case 2: FCN(dw_run_blocks)(a, q, 2, S); break;
    case 3: FCN(dw_run_blocks)(a, q, 3, S); break;
    default: break;
    }
}

static void FCN(dw_run_s1)(const FCN(fc_dw_run_args) *a) { FCN(dw_run_body)(a, 1); }
static void FCN(dw_run_s2)(const FCN(fc_dw_run_args) *a) { FCN(dw_run_body)(a, 2); }

/* a->stride 1 or 2 */
static void FCN(dw_run)(const FCN(fc_dw_run_args) *a)
{
    (a->stride == 1 ? FCN(dw_run_s1) : FCN(dw_run_s2))(a);
}

/* a->t in 1 .. FC_DW_MAX_T, a->v as in dw_block */
static void FCN(dw_wgrad)(const FCN(fc_dw_wgrad_args) *a)
{
    typedef void (*wgrad_fn)(const FCN(fc_dw_wgrad_args) *);
    static const wgrad_fn full[FC_DW_MAX_T + 1][FC_DW_MAX_V + 1] = {FC_DW_WGRAD_LIST(FC_DW_WSLOT)};
    static const wgrad_fn tail[FC_DW_MAX_T + 1] = {FC_DW_SHAPES5(FC_DW_WTSLOT, 1)};
#if FC_ACC_VECS >= 4
    static const wgrad_fn slide[3][FC_DW_MAX_V + 1] = {
        {NULL},
        {FCN(dw_wgrad_slide1_tail), FCN(dw_wgrad_slide1_1), FCN(dw_wgrad_slide1_2),
         FCN(dw_wgrad_slide1_3), FCN(dw_wgrad_slide1_4)},
        {FCN(dw_wgrad_slide2_tail), FCN(dw_wgrad_slide2_1), FCN(dw_wgrad_slide2_2),
         FCN(dw_wgrad_slide2_3), FCN(dw_wgrad_slide2_4)}};
#else
    static const wgrad_fn slide[3][FC_DW_MAX_V + 1] = {
        {NULL},
        {FCN(dw_wgrad_slide1_tail), FCN(dw_wgrad_slide1_1), FCN(dw_wgrad_slide1_2), NULL, NULL},
        {FCN(dw_wgrad_slide2_tail), FCN(dw_wgrad_slide2_1), FCN(dw_wgrad_slide2_2), NULL, NULL}};
#endif
    /* the sliding windows (index 0: the tail) for 3 taps, stride = 1 or 2 x dilation */
    const int S = a->x_step == a->tap_step ? 1 : a->x_step == 2 * a->tap_step ? 2 : 0;
    if (a->t == 3 && S > 0)
        slide[S][a->tail ? 0 : a->v](a);
    else
        (a->tail ? tail[a->t] : full[a->t][a->v])(a);
}

/* ---------------------------------------------------------------------------
 * Channels-first row (fc_dw_rows_args): U vectors of the row from q0, the
 * taps in the loop; the vector that crosses len is stored masked.
 */
#define FC_DW_ROW_VECS 4

FC_ALWAYS_INLINE void FCN(dw_rows_body)(const FCN(fc_dw_rows_args) *FC_RESTRICT a, int64_t q0,
                                        const int U)
{
    fc_vec acc[FC_DW_ROW_VECS];
    for (int u = 0; u < U; ++u)
        acc[u] = VSET1(a->bias);
    for (int64_t k = 0; k < a->ntaps; ++k) {
        const fc_vec w = VBCAST(a->wt + k);
        const FC_T *s = a->src[k] + q0;
        for (int u = 0; u < U; ++u)
            acc[u] = VFMA(w, VLOAD(s + u * FC_VL), acc[u]);
    }
    for (int u = 0; u < U; ++u) {
        const fc_vec out = FC_ACTIVATE(acc[u], a->relu);
        const int64_t q = q0 + u * FC_VL, left = a->len - q;
        if (left >= FC_VL)
            VSTORE(a->out + q, out);
        else
            VSTORE_M(a->out + q, out, FC_MAKE_MASK((int)left));
    }
}

static void FCN(dw_rows_1)(const FCN(fc_dw_rows_args) *a, int64_t q0) { FCN(dw_rows_body)(a, q0, 1); }
static void FCN(dw_rows_2)(const FCN(fc_dw_rows_args) *a, int64_t q0) { FCN(dw_rows_body)(a, q0, 2); }
static void FCN(dw_rows_3)(const FCN(fc_dw_rows_args) *a, int64_t q0) { FCN(dw_rows_body)(a, q0, 3); }
static void FCN(dw_rows_4)(const FCN(fc_dw_rows_args) *a, int64_t q0) { FCN(dw_rows_body)(a, q0, 4); }

static void FCN(dw_rows)(const FCN(fc_dw_rows_args) *a)
{
    int64_t left = (a->len + FC_VL - 1) / FC_VL;   /* vectors */
    for (int64_t q0 = 0; left > 0; q0 += FC_DW_ROW_VECS * FC_VL, left -= FC_DW_ROW_VECS) {
        switch (left >= FC_DW_ROW_VECS ? FC_DW_ROW_VECS : (int)left) {
        case 1: FCN(dw_rows_1)(a, q0); break;
        case 2: FCN(dw_rows_2)(a, q0); break;
        case 3: FCN(dw_rows_3)(a, q0); break;
        default: FCN(dw_rows_4)(a, q0); break;
        }
    }
}

/* ---------------------------------------------------------------------------
 * Channels-first weight-gradient tile (fc_dw_dots_args): whole vectors, then
 * the row's last len % FC_VL values by masked loads of both operands (lanes
 * past len would otherwise add garbage products to the sums).
 */
FC_ALWAYS_INLINE void FCN(dw_dots_body)(const FCN(fc_dw_dots_args) *FC_RESTRICT a, const int T)
{
    fc_vec acc[FC_DW_MAX_DOTS];
    fc_vec dsum = VZERO();
    for (int k = 0; k < T; ++k)
        acc[k] = VZERO();
    int64_t off[FC_DW_MAX_DOTS];
    for (int k = 0; k < T; ++k)
        off[k] = a->tap_off[k];
    const int64_t len = a->len, full = len - len % FC_VL;
    for (int64_t i = 0; i < a->nruns; ++i) {
        const FC_T *x = a->x[i];
        const FC_T *d = a->d[i];
        for (int64_t q = 0; q < full; q += FC_VL) {
            const fc_vec dv = VLOAD(d + q);
            dsum = VADD(dsum, dv);
            for (int k = 0; k < T; ++k)
                acc[k] = VFMA(VLOAD(x + off[k] + q), dv, acc[k]);
        }
    }
    if (full < len) {
        const fc_mask mask = FC_MAKE_MASK((int)(len - full));
        (void)mask;
        for (int64_t i = 0; i < a->nruns; ++i) {
            const FC_T *x = a->x[i] + full;
            const fc_vec dv = VLOAD_M(a->d[i] + full, mask);
            dsum = VADD(dsum, dv);
            for (int k = 0; k < T; ++k)
                acc[k] = VFMA(VLOAD_M(x + off[k], mask), dv, acc[k]);
        }
    }
    for (int k = 0; k < T; ++k)
        a->out[k] = VHSUM(acc[k]);
    if (a->db != NULL)
        *a->db = VHSUM(dsum);
}

#define FC_DW_DOTS_LIST(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9)
#define FC_DW_DEFINE_DOTS(T) \
    static void FCN(dw_dots_##T)(const FCN(fc_dw_dots_args) *a) { FCN(dw_dots_body)(a, T); }
#define FC_DW_DOTS_SLOT(T) [T] = FCN(dw_dots_##T),
FC_DW_DOTS_LIST(FC_DW_DEFINE_DOTS)

/* a->ntaps in 1 .. FC_DW_MAX_DOTS */
static void FCN(dw_dots)(const FCN(fc_dw_dots_args) *a)
{
    typedef void (*dots_fn)(const FCN(fc_dw_dots_args) *);
    static const dots_fn fns[FC_DW_MAX_DOTS + 1] = {FC_DW_DOTS_LIST(FC_DW_DOTS_SLOT)};
    fns[a->ntaps](a);
}

#undef FC_DW_SHAPES4
#undef FC_DW_SHAPES5
#undef FC_DW_BLOCK_LIST
#undef FC_DW_WGRAD_LIST
#undef FC_DW_DEFINE_BLOCK
#undef FC_DW_DEFINE_WGRAD
#undef FC_DW_DEFINE_BLOCK_TAIL
#undef FC_DW_DEFINE_WGRAD_TAIL
#undef FC_DW_SLOT
#undef FC_DW_WSLOT
#undef FC_DW_TSLOT
#undef FC_DW_WTSLOT
#undef FC_DW_ROW_VECS
#undef FC_DW_DOTS_LIST
#undef FC_DW_DEFINE_DOTS
#undef FC_DW_DOTS_SLOT
