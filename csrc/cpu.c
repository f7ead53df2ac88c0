/*
 * cpu.c: pick the SIMD path once from CPUID and XGETBV (the OS must have
 * enabled the register state, not just the CPU have the instructions), and
 * let fc_set_simd override it (FASTCONV_SIMD is read by the Python package).
 */
#include <stddef.h>

#include "fc_internal.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define FC_X86 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static void cpuid(int leaf, int sub, unsigned r[4])
{
    int regs[4];
    __cpuidex(regs, leaf, sub);
    for (int i = 0; i < 4; ++i)
        r[i] = (unsigned)regs[i];
}
static unsigned long long xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void cpuid(int leaf, int sub, unsigned r[4])
{
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif
#endif

static const fc_kernel_table *table_of(int simd)
{
    switch (simd) {
#ifdef FC_HAVE_AVX512
    case FC_SIMD_AVX512: return &fc_kernels_avx512;
#endif
#ifdef FC_HAVE_AVX2
    case FC_SIMD_AVX2: return &fc_kernels_avx2;
#endif
    case FC_SIMD_GENERIC: return &fc_kernels_generic;
    default: return NULL;
    }
}

static int cpu_has(int simd)
{
    if (simd == FC_SIMD_GENERIC)
        return 1;
#ifdef FC_X86
    unsigned r1[4], r7[4], r0[4];
    cpuid(0, 0, r0);
    if (r0[0] < 7)
        return 0;
    cpuid(1, 0, r1);
    cpuid(7, 0, r7);
    const int osxsave = (r1[2] >> 27) & 1, avx = (r1[2] >> 28) & 1, fma = (r1[2] >> 12) & 1;
    if (!osxsave || !avx || !fma)
        return 0;
    const unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* SSE and AVX state */
        return 0;
    const int avx2 = (r7[1] >> 5) & 1;
    if (simd == FC_SIMD_AVX2)
        return avx2;
    if (simd == FC_SIMD_AVX512) {
        const int f = (r7[1] >> 16) & 1, dq = (r7[1] >> 17) & 1;
        const int bw = (r7[1] >> 30) & 1, vl = (r7[1] >> 31) & 1;
        /* opmask, upper ZMM0-15 and ZMM16-31 state */
        return avx2 && f && dq && bw && vl && (xcr0 & 0xE6) == 0xE6;
    }
#endif
    return 0;
}

int fc_simd_supported(int simd)
{
    return table_of(simd) != NULL && cpu_has(simd);
}

/* -1 until first use; then the chosen path. Reads and writes of an int are
 * atomic on every platform we build for; a race only repeats the choice. */
static volatile int active_simd = -1;

static int best_simd(void)
{
    for (int s = FC_SIMD_COUNT - 1; s > FC_SIMD_GENERIC; --s)
        if (fc_simd_supported(s))
            return s;
    return FC_SIMD_GENERIC;
}

int fc_get_simd(void)
{
    int s = active_simd;
    if (s < 0) {
        s = best_simd();
        active_simd = s;
    }
    return s;
}

int fc_set_simd(int simd)
{
    if (simd < 0 || simd >= FC_SIMD_COUNT || !fc_simd_supported(simd))
        return FC_ERR_SIMD;
    active_simd = simd;
    return FC_OK;
}

const char *fc_simd_name(int simd)
{
    switch (simd) {
    case FC_SIMD_GENERIC: return "generic";
    case FC_SIMD_AVX2: return "avx2";
    case FC_SIMD_AVX512: return "avx512";
    default: return "unknown";
    }
}

const fc_kernel_table *fc_active_kernels(void)
{
    return table_of(fc_get_simd());
}

const fc_kernel_table_f64 *fc_active_kernels_f64(void)
{
    switch (fc_get_simd()) {
#ifdef FC_HAVE_AVX512
    case FC_SIMD_AVX512: return &fc_kernels_avx512_f64;
#endif
#ifdef FC_HAVE_AVX2
    case FC_SIMD_AVX2: return &fc_kernels_avx2_f64;
#endif
    default: return &fc_kernels_generic_f64;
    }
}
