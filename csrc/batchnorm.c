/*
 * batchnorm.c: work decomposition and threading of batch normalization.
 *
 * A tensor is viewed as (outer, c, inner), value (o, ch, i) at
 * (o * c + ch) * inner + i; the statistics of channel ch run over its
 * M = outer * inner values. Two loop shapes (kernels_batchnorm_impl.h):
 * "rows" when inner < FC_BN_RUN_MIN (channels last: vectors across the
 * channels of a row; rows narrower than FC_BN_GROUP_COLS values go in groups
 * of rows, see bn_plan), "runs" otherwise (channels first: vectors along the
 * inner values of one channel).
 *
 * Passes over memory: the statistics read x once; apply reads x and writes
 * y once; the backward reads dy and x for the sums, then again to write dx
 * (which needs the sums).
 *
 * Reductions (the statistics, the gradient sums of gamma and beta) are cut
 * into chunks that depend only on (outer, c, inner): blocks of outer rows
 * and, in runs mode, spans of inner values. A work item is one chunk of one
 * channel block (rows mode) or of one channel (runs mode); each item writes
 * its own per-channel partials, in float64, and after a barrier every channel
 * folds its partials in chunk order. So any thread count gives bitwise the
 * same results. The element-wise passes (apply, dx) have no reduction: any
 * split gives the same values.
 *
 * batchnorm_impl.h holds the drivers, compiled here for float
 * (fc_batch_norm_stats, ...) and double (fc_batch_norm_stats_f64, ...).
 */
#include <math.h>
#include <string.h>

#include "fc_internal.h"

/* inner >= this: runs mode (a run of 16 fills a float32 AVX-512 vector). */
#define FC_BN_RUN_MIN 16
/* Values of one channel block (rows mode) or channel (runs mode) per work
 * item: enough to amortise an item's fixed cost many times over, few enough
 * that a float64 accumulator lane sums at most ~1000 values. */
#define FC_BN_ITEM 32768
/* Rows mode: columns (c * inner values) per item; rows per chunk between
 * these bounds. */
#define FC_BN_ROW_COLS 2048
#define FC_BN_MIN_ROWS 16
#define FC_BN_MAX_ROWS 1024
/* Rows mode, rows narrower than this: groups of rows count as one row (see
 * bn_plan). */
#define FC_BN_GROUP_COLS 64
/* Element-wise passes in runs mode: values per unit of the thread split. */
#define FC_BN_ELEM_BLOCK 4096

static int check_params(const fc_norm_params *p)
{
    if (p == NULL || p->outer < 0 || p->c < 0 || p->inner < 0)
        return FC_ERR_ARG;
    const int64_t total = fc_mul(fc_mul(p->outer, p->c), p->inner);
    const int64_t m = fc_mul(p->outer, p->inner);
    if (total < 0 || m < 0 || total > (INT64_MAX >> 4) || m > (INT64_MAX >> 4))
        return FC_ERR_OVERFLOW;
    return FC_OK;
}

static int rows_mode(const fc_norm_params *p) { return p->inner < FC_BN_RUN_MIN; }

/* The reduction's chunks and work items, from the shape alone. Chunk k is
 * outer rows [kr * chunk_rows, ...) x inner values [ks * span, ...) with
 * kr = k / n_spans, ks = k % n_spans; item q is chunk q / n_ch_blocks and
 * channel block q % n_ch_blocks (channels [b * ch_block, ...)).
 * Rows mode with narrow rows (ld < FC_BN_GROUP_COLS, e.g. 3 channels last):
 * each `group` consecutive rows go to the loops as one row of group * ld
 * values, whole vectors instead of a few masked lanes and more independent
 * sums; the columns of a group fold back to their channels at the end. The
 * group's width is a multiple of 16, so of every vector length. */
typedef struct bn_plan {
    int64_t outer, c, inner, ld;    /* ld = c * inner values per outer row */
    int rows;                       /* rows mode */
    int64_t chunk_rows, n_row_chunks;
    int64_t span, n_spans;          /* rows mode: inner, 1 */
    int64_t ch_block, n_ch_blocks;  /* runs mode: 1, c */
    int64_t nchunks, nitems;
    int64_t cols;                   /* rows mode: columns of an item (<= ld) */
    int64_t group;                  /* rows mode: rows per group (1: none) */
} bn_plan;

/* Needs outer, c, inner >= 1. */
static void make_plan(const fc_norm_params *p, bn_plan *w)
{
    w->outer = p->outer;
    w->c = p->c;
    w->inner = p->inner;
    w->ld = p->c * p->inner;
    w->rows = rows_mode(p);
    if (w->rows) {
        /* Blocks of whole channels, 16 at a time so that blocks start on
         * vector boundaries when inner is 1. */
        w->ch_block = w->ld <= FC_BN_ROW_COLS
                          ? p->c
                          : max64(16, FC_BN_ROW_COLS / p->inner / 16 * 16);
        w->n_ch_blocks = ceil_div(p->c, w->ch_block);
        w->cols = w->ch_block * p->inner;
        w->group = 1;
        if (w->ld < FC_BN_GROUP_COLS) {   /* then one channel block */
            w->group = 16 / gcd64(w->ld, 16);
            while (w->group * w->ld < FC_BN_GROUP_COLS)
                w->group *= 2;
        }
        w->span = p->inner;
        w->n_spans = 1;
        /* at most FC_BN_MAX_ROWS values per column of a loop's sums, whole
         * groups per chunk */
        w->chunk_rows = min64(max64(FC_BN_ITEM / w->cols, FC_BN_MIN_ROWS),
                              FC_BN_MAX_ROWS * w->group);
        w->chunk_rows = max64(w->chunk_rows / w->group, 1) * w->group;
    } else {
        w->ch_block = 1;
        w->n_ch_blocks = p->c;
        w->cols = 0;
        w->group = 1;
        w->span = min64(p->inner, FC_BN_ITEM);
        w->n_spans = ceil_div(p->inner, w->span);
        w->chunk_rows = max64(1, FC_BN_ITEM / w->span);
    }
    w->chunk_rows = min64(w->chunk_rows, p->outer);
    w->n_row_chunks = ceil_div(p->outer, w->chunk_rows);
    w->nchunks = w->n_row_chunks * w->n_spans;
    w->nitems = w->nchunks * w->n_ch_blocks;
}

/* Outer rows [*o0, *o1) and inner values [*i0, *i1) of chunk k. */
static void chunk_bounds(const bn_plan *w, int64_t k, int64_t *o0, int64_t *o1, int64_t *i0,
                         int64_t *i1)
{
    const int64_t kr = k / w->n_spans, ks = k - kr * w->n_spans;
    *o0 = kr * w->chunk_rows;
    *o1 = min64(*o0 + w->chunk_rows, w->outer);
    *i0 = ks * w->span;
    *i1 = min64(*i0 + w->span, w->inner);
}

/* Columns of sums a rows-mode item needs: its groups', then its last rows'. */
static int64_t item_sums_len(const bn_plan *w) { return w->rows ? (w->group + 1) * w->cols : 0; }

/* Length of a coefficient row: per column of a group (rows mode) or per
 * channel (runs mode). */
static int64_t coef_len(const bn_plan *w) { return w->rows ? w->group * w->ld : w->c; }

/* Element-wise passes: rows mode splits by groups of rows, runs mode by
 * blocks of FC_BN_ELEM_BLOCK values. */
static int64_t elem_units(const bn_plan *w)
{
    return w->rows ? ceil_div(w->outer, w->group) : ceil_div(w->outer * w->ld, FC_BN_ELEM_BLOCK);
}

/* Values of one channel in chunk k. */
static double chunk_count(const bn_plan *w, int64_t k)
{
    int64_t o0, o1, i0, i1;
    chunk_bounds(w, k, &o0, &o1, &i0, &i1);
    return (double)((o1 - o0) * (i1 - i0));
}

/* The partial of a channel's n values in one item, from their sums s1, s2
 * of (x - shift): part = {shift, mean - shift, squared deviations}. The mean
 * stays split in two: with |mean| >> std, the means of two chunks differ in
 * bits a rounded mean no longer holds.
 * The shift is one of the values, so (mean - shift)^2 <= m2 and
 * s2 = m2 + n (mean - shift)^2 <= (n + 1) m2: s2 - s1^2 / n = m2 magnifies
 * the rounding errors of s2 at most n + 1 times (an item has <= FC_BN_ITEM
 * values), about twice when the shift is a typical value. */
static void shifted_partial(double shift, double s1, double s2, double n, double part[3])
{
    const double d = s1 / n;
    double m2 = s2 - s1 * d;
    if (m2 < 0)   /* rounding; NaN stays */
        m2 = 0;
    part[0] = shift;
    part[1] = d;
    part[2] = m2;
}

/* A channel's statistics folded over chunks in chunk order: n values with
 * mean base + offset and squared deviations m2. */
typedef struct bn_moments {
    double n, base, offset, m2;
} bn_moments;

/* Absorbs a chunk's nb values with partial part (shifted_partial), by Chan,
 * Golub and LeVeque's pairwise update, the means taken relative to the first
 * chunk's shift: differences of nearby shifts are exact, so the means'
 * difference keeps every bit. */
static void chan_merge(bn_moments *s, double nb, const double part[3])
{
    if (s->n == 0) {
        s->n = nb;
        s->base = part[0];
        s->offset = part[1];
        s->m2 = part[2];
        return;
    }
    const double total = s->n + nb;
    const double delta = ((part[0] - s->base) + part[1]) - s->offset;
    s->offset += delta * (nb / total);
    s->m2 += part[2] + delta * delta * (s->n * (nb / total));
    s->n = total;
}

#define FC_T float
#define FCN(name) name
#include "batchnorm_impl.h"
#undef FC_T
#undef FCN

#define FC_T double
#define FCN(name) name##_f64
#include "batchnorm_impl.h"
#undef FC_T
#undef FCN
