/*
 * common.c: thread-count policy, work splitting, overflow-checked sizes,
 * aligned scratch and the floating-point mode of kernel threads.
 */
/* nanosleep (the thread probe's wait) under a strict -std=c99 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fc_internal.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <xmmintrin.h>
#define FC_X86 1
#endif

/* Below this many multiply-adds per thread a parallel region costs more
 * than it saves (fork/join is a few microseconds). */
#define FC_MIN_WORK_PER_THREAD 65536.0

/* Oversubscribing a few times over can make sense (threads waiting on
 * memory); asking for thousands only fails thread creation, which libgomp
 * answers by exiting the process. */
static int thread_cap(void)
{
#ifdef _OPENMP
    int cap = 4 * omp_get_num_procs();
    if (cap < 16)
        cap = 16;
    const int limit = omp_get_thread_limit();
    return limit > 0 && limit < cap ? limit : cap;
#else
    return 1;
#endif
}

#if defined(_OPENMP) && !defined(_WIN32)
#include <pthread.h>

static void *idle_thread(void *arg)
{
    return arg;
}

/* The threads of this process, from /proc/self/status (-1 where unknown). */
static int process_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    int count = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "Threads:", 8) == 0) {
            count = atoi(line + 8);
            break;
        }
    fclose(f);
    return count;
}

/* pthread_join returns when a thread has left its code, a moment before the
 * kernel releases it and stops counting it against RLIMIT_NPROC: a team
 * started at once could be refused the threads the probe just had (seen:
 * libgomp exited in a third of the runs of a 3-thread limit). Wait, at most
 * about 50 ms, until the process is back to `before` threads. */
static void wait_for_release(int before)
{
    const struct timespec step = {0, 200000};   /* 0.2 ms */
    for (int i = 0; i < 250; ++i) {
        const int now = process_threads();
        if (now < 0 || now <= before)
            break;
        nanosleep(&step, NULL);
    }
    nanosleep(&step, NULL);   /* and the release itself, which follows the count */
}

/* How many threads this process can run at once, up to n: libgomp exits the
 * process when the OS refuses it a thread (RLIMIT_NPROC, a cgroup's
 * pids.max), so a team size is tried with plain threads first, once. The
 * answer is kept; a larger request tries again. Racing callers only try
 * twice. */
static int threads_allowed(int n)
{
    static int verified = 1;     /* a team this large is known to start */
    static int refused = 0;      /* the OS refused a thread at this team size */
    if (n <= verified)
        return n;
    if (refused > 0 && n >= refused)
        return verified;
    pthread_t *ids = malloc(sizeof(pthread_t) * (size_t)(n - 1));
    if (ids == NULL)
        return verified;
    const int before = process_threads();
    int made = 0;
    while (made < n - 1 && pthread_create(&ids[made], NULL, idle_thread, NULL) == 0)
        ++made;
    for (int i = 0; i < made; ++i)
        pthread_join(ids[i], NULL);
    free(ids);
    wait_for_release(before);
    if (made == n - 1) {
        verified = n;
        return n;
    }
    /* Leave a margin: the team's threads join those the process already has. */
    if (made + 1 > verified)
        verified = made > 1 ? made : 1;
    refused = n;
    return verified;
}
#else
static int threads_allowed(int n)
{
    return n;
}
#endif

int fc_threads_for(int requested, double work, int64_t items)
{
    int n = requested > 0 ? requested : 1;
    if (items < n)
        n = (int)(items > 0 ? items : 1);
    const double by_work = work / FC_MIN_WORK_PER_THREAD;
    if (by_work < n)
        n = by_work < 1.0 ? 1 : (int)by_work;
    return n;
}

/* ---- the scaling model's record (fastconv.h) ---- */
typedef struct region_entry {
    double t, work;
    int64_t items;
} region_entry;
static region_entry region_log[FC_REGIONS_MAX];
static int64_t region_count;
static volatile int region_recording;

static double monotonic_seconds(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;   /* no regions run in parallel here */
#endif
}

static void region_log_add(double work, int64_t items)
{
    const int64_t i = __atomic_fetch_add(&region_count, 1, __ATOMIC_RELAXED);
    if (i < FC_REGIONS_MAX) {
        region_log[i].t = monotonic_seconds();
        region_log[i].work = work;
        region_log[i].items = items;
    }
}

void fc_regions_record(int on)
{
    if (on)
        region_count = 0;
    region_recording = on != 0;
}

int fc_regions_recording(void) { return region_recording; }

void fc_regions_mark(void)
{
    if (region_recording)
        region_log_add(0.0, -1);
}

int64_t fc_regions_read(double *t, double *work, int64_t *items, int64_t max)
{
    const int64_t kept = region_count < FC_REGIONS_MAX ? region_count : FC_REGIONS_MAX;
    for (int64_t i = 0; i < kept && i < max; ++i) {
        t[i] = region_log[i].t;
        work[i] = region_log[i].work;
        items[i] = region_log[i].items;
    }
    return region_count;
}

int fc_pick_threads(int requested, double work, int64_t items)
{
    if (region_recording)
        region_log_add(work, items);
    int n = requested > 0 ? requested : fc_default_num_threads();
    const int cap = thread_cap();
    if (n > cap)
        n = cap;
    n = fc_threads_for(n, work, items);
#ifndef _OPENMP
    n = 1;
#endif
    return n > 1 ? threads_allowed(n) : n;
}

void fc_thread_range(int64_t total, int nthreads, int tid, int64_t *begin, int64_t *end)
{
    const int64_t base = total / nthreads, extra = total % nthreads;
    *begin = tid * base + (tid < extra ? tid : extra);
    *end = *begin + base + (tid < extra ? 1 : 0);
}

int64_t fc_mul(int64_t a, int64_t b)
{
    if (a < 0 || b < 0)
        return -1;
    if (a != 0 && b > INT64_MAX / a)
        return -1;
    return a * b;
}

unsigned fc_fpmode_enter(void)
{
#ifdef FC_X86
    const unsigned saved = _mm_getcsr();
    /* FTZ (bit 15) and DAZ (bit 6): denormal weights or activations would
     * otherwise slow the FMA loops down by orders of magnitude. */
    _mm_setcsr(saved | 0x8040u);
    return saved;
#else
    return 0;
#endif
}

void fc_fpmode_leave(unsigned saved)
{
#ifdef FC_X86
    _mm_setcsr(saved);
#else
    (void)saved;
#endif
}

/* Scratch comes from the caching allocator (arena.c): kernels called in a
 * loop reuse their blocks instead of faulting fresh pages in every call
 * (measured: a fifth of a batch-1 Winograd call went to page faults). */
void *fc_calloc(int64_t count, int64_t size)
{
    const int64_t bytes = fc_mul(count, size);
    if (bytes < 0 || (uint64_t)bytes > (uint64_t)SIZE_MAX - 64)
        return NULL;
    return fc_arena_calloc((size_t)bytes, 1);
}

/* The same without zeroing, for buffers every element of which is written
 * before it is read (packed weights, weight-gradient partials). */
void *fc_malloc(int64_t count, int64_t size)
{
    const int64_t bytes = fc_mul(count, size);
    if (bytes < 0 || (uint64_t)bytes > (uint64_t)SIZE_MAX - 64)
        return NULL;
    return fc_arena_malloc((size_t)bytes);
}

void fc_free(void *ptr) { fc_arena_free(ptr); }

int fc_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fc_default_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

const char *fc_strerror(int status)
{
    switch (status) {
    case FC_OK: return "success";
    case FC_ERR_ARG: return "invalid argument passed to a fastconv kernel";
    case FC_ERR_NOMEM: return "out of memory for fastconv kernel scratch";
    case FC_ERR_OVERFLOW: return "array sizes overflow 64-bit index arithmetic";
    case FC_ERR_SIMD: return "SIMD path not available on this CPU or build";
    case FC_DECLINED: return "the fused path does not apply to these arguments";
    default: return "unknown fastconv status";
    }
}

double fc_fma_peak_probe(int64_t iters, int n_threads)
{
    const fc_kernel_table *t = fc_active_kernels();
    const int nthreads = n_threads > 0 ? n_threads : fc_default_num_threads();
    volatile float sink = 0.0f;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
        const float r = t->fma_probe(iters);
        if (r == 12345.0f) /* practically never: keeps the result live */
            sink = r;
    }
    (void)sink;
#ifdef _OPENMP
    return (double)iters * 12.0 * t->vl * nthreads;
#else
    return (double)iters * 12.0 * t->vl;
#endif
}

/* One step of an order-fixed reduction, per element type. */
#define FC_DEFINE_FOLD(NAME, T) \
    void NAME(T *FC_RESTRICT dst, const T *FC_RESTRICT src, int64_t e0, int64_t e1, int first) \
    { \
        if (first) { \
            for (int64_t e = e0; e < e1; ++e) \
                dst[e] = src[e]; \
        } else { \
            for (int64_t e = e0; e < e1; ++e) \
                dst[e] += src[e]; \
        } \
    }
FC_DEFINE_FOLD(fc_fold, float)
FC_DEFINE_FOLD(fc_fold_f64, double)
