/*
 * arena.c: a caching allocator for large, short-lived buffers.
 *
 * A training step allocates and frees the same tens of megabytes of
 * activations and gradients every step. glibc returns such blocks to the OS
 * (munmap, heap trimming), so every step faults them back in page by page:
 * measured, a third of a seed-CNN step went to page faults and zeroing. This
 * cache keeps freed blocks of FC_ARENA_MIN_BYTES or more (up to a cap of idle
 * bytes) and hands them out again for requests of a size they fit.
 *
 * NumPy's arrays (through the NEP 49 handler in _kernels.pyx, inside
 * fastconv's scopes) and the kernels' own scratch (fc_calloc) share it.
 * Each block carries a header with its capacity, so realloc and free need no
 * size from the caller. All entry points are thread-safe (a spin lock guards
 * the free list; the work under it is a few comparisons).
 */
#include <stdlib.h>
#include <string.h>

#include "fc_internal.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#define FC_HUGEPAGE_HINT_BYTES ((size_t)4 << 20)
#endif

#define FC_ARENA_MIN_BYTES ((size_t)256 << 10)   /* smaller: plain malloc */
/* Idle blocks kept at most. 64 were too few for ResNet-20's training step
 * (batch 32): its frees overflowed them, 22 blocks a step came fresh from
 * malloc and it took 1662 page faults a step; with 256, none and 402. */
#define FC_ARENA_SLOTS 256
#define FC_ARENA_HEADER 64                        /* keeps 64-byte alignment */

typedef struct block_header {
    size_t capacity;   /* usable bytes after the header */
} block_header;

static struct {
    void *blocks[FC_ARENA_SLOTS];   /* idle blocks (header addresses) */
    int count;
    size_t idle_bytes;
    size_t cap_bytes;
    size_t hits, misses;
} arena = {{0}, 0, 0, (size_t)256 << 20, 0, 0};

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static volatile long arena_lock_word = 0;
static void arena_lock(void) { while (_InterlockedExchange(&arena_lock_word, 1)) {} }
static void arena_unlock(void) { _InterlockedExchange(&arena_lock_word, 0); }
#else
static volatile int arena_lock_word = 0;
static void arena_lock(void)
{
    while (__atomic_exchange_n(&arena_lock_word, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&arena_lock_word, __ATOMIC_RELAXED)) {}
}
static void arena_unlock(void) { __atomic_store_n(&arena_lock_word, 0, __ATOMIC_RELEASE); }
#endif

/* FASTCONV_ARENA=0 turns caching off (read once): every block then goes
 * straight back to malloc/free. A benign race at most reads it twice. */
static volatile int caching_state = -1;

static int caching(void)
{
    int on = caching_state;
    if (on < 0) {
        const char *env = getenv("FASTCONV_ARENA");
        on = !(env != NULL && strcmp(env, "0") == 0);
        caching_state = on;
    }
    return on;
}

static void *raw_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - FC_ARENA_HEADER - 64)
        return NULL;
    /* Over-allocate for a 64-byte aligned header; the offset is stored just
     * below the header. */
    unsigned char *raw = (unsigned char *)malloc(bytes + FC_ARENA_HEADER + 64);
    if (raw == NULL)
        return NULL;
    unsigned char *head = raw + (64 - ((uintptr_t)raw & 63));
    head[-1] = (unsigned char)(head - raw);
    ((block_header *)head)->capacity = bytes;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* Transparent huge pages for big blocks, as NumPy's own allocator asks:
     * fewer TLB misses when kernels stream tens of megabytes. */
    if (bytes >= FC_HUGEPAGE_HINT_BYTES) {
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        const uintptr_t start = ((uintptr_t)raw + page - 1) & ~(page - 1);
        const uintptr_t end = ((uintptr_t)raw + bytes + FC_ARENA_HEADER) & ~(page - 1);
        if (end > start)
            madvise((void *)start, end - start, MADV_HUGEPAGE);
    }
#endif
    return head;
}

static void raw_free(void *head)
{
    unsigned char *p = (unsigned char *)head;
    free(p - p[-1]);
}

static void *payload(void *head) { return (unsigned char *)head + FC_ARENA_HEADER; }

static block_header *header_of(void *ptr)
{
    return (block_header *)((unsigned char *)ptr - FC_ARENA_HEADER);
}

void *fc_arena_malloc(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    if (bytes >= FC_ARENA_MIN_BYTES && caching()) {
        /* The smallest idle block that fits without wasting over a quarter. */
        void *found = NULL;
        arena_lock();
        int best = -1;
        for (int i = 0; i < arena.count; ++i) {
            const size_t cap = ((block_header *)arena.blocks[i])->capacity;
            if (cap >= bytes && cap - bytes <= bytes / 4 &&
                (best < 0 || cap < ((block_header *)arena.blocks[best])->capacity))
                best = i;
        }
        if (best >= 0) {
            found = arena.blocks[best];
            arena.blocks[best] = arena.blocks[--arena.count];
            arena.idle_bytes -= ((block_header *)found)->capacity;
            ++arena.hits;
        } else {
            ++arena.misses;
        }
        arena_unlock();
        if (found != NULL)
            return payload(found);
    }
    void *head = raw_alloc(bytes);
    return head ? payload(head) : NULL;
}

void *fc_arena_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *p = fc_arena_malloc(count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}

void fc_arena_free(void *ptr)
{
    if (ptr == NULL)
        return;
    block_header *h = header_of(ptr);
    if (h->capacity >= FC_ARENA_MIN_BYTES && caching()) {
        int kept = 0;
        arena_lock();
        if (arena.count < FC_ARENA_SLOTS && arena.idle_bytes + h->capacity <= arena.cap_bytes) {
            arena.blocks[arena.count++] = h;
            arena.idle_bytes += h->capacity;
            kept = 1;
        }
        arena_unlock();
        if (kept)
            return;
    }
    raw_free(h);
}

void *fc_arena_realloc(void *ptr, size_t bytes)
{
    if (ptr == NULL)
        return fc_arena_malloc(bytes);
    block_header *h = header_of(ptr);
    if (bytes <= h->capacity && bytes >= h->capacity / 2)
        return ptr;
    void *fresh = fc_arena_malloc(bytes);
    if (fresh == NULL)
        return NULL;
    memcpy(fresh, ptr, bytes < h->capacity ? bytes : h->capacity);
    fc_arena_free(ptr);
    return fresh;
}

void fc_arena_release(void)
{
    void *blocks[FC_ARENA_SLOTS];
    arena_lock();
    const int n = arena.count;
    memcpy(blocks, arena.blocks, (size_t)n * sizeof(void *));
    arena.count = 0;
    arena.idle_bytes = 0;
    arena_unlock();
    for (int i = 0; i < n; ++i)
        raw_free(blocks[i]);
}

void fc_arena_stats(size_t *idle_bytes, size_t *hits, size_t *misses)
{
    arena_lock();
    *idle_bytes = arena.idle_bytes;
    *hits = arena.hits;
    *misses = arena.misses;
    arena_unlock();
}
