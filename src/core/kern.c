/* The micro-kernels of libat's matrix products (kern.h says what a kernel
 * computes), one per vector extension, chosen when the library first
 * multiplies (gemm.c) from what the CPU says it can run — not from a table
 * of CPU models, which is how a BLAS ends up on SSE3 kernels on a CPU it
 * does not know.
 *
 * Each kernel keeps a tile of C in registers while it streams a sliver of A
 * (broadcast, one value per row and step) against a panel of B (two or four
 * vector loads per step): the outer-product form of GotoBLAS's kernels.
 * A tile is MR rows by NR ≤ 32 columns of a 32-column panel:
 *
 *   avx512   12 × 32: 24 accumulators of 16 floats, 2 loads of B per step
 *   avx2      6 × 16, half a panel: 12 accumulators of 8 (the driver runs
 *             every sliver against one half, then against the other, so
 *             that a half panel, 16 KiB, stays in a 32 KiB L1 while the
 *             slivers stream past it); a lone sliver of one or two rows
 *             against the whole panel, 8 accumulators, in one pass
 *   generic   4 × 32 in plain C, for the compiler to vectorize
 *
 * Every kernel is instantiated once per row count 1..MR (a switch on mb), so
 * that a short last sliver, or a product of one row (a decoding step), runs
 * only the rows it has. */
#include <stdint.h>

#include "core/kern.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_X86 1
#include <immintrin.h>
#else
#define HAVE_X86 0
#endif

#define ROWS_CASE(f, n) case n: f(kc, a, n, b, nb, c, ldc, add); break

/* ---------------------------------------------------------------- generic */
#define GEN_MR 4

static inline __attribute__((always_inline)) void gen_tile(int kc, const float *a, const int mb,
                                                           const float *b, int nb, float *c,
                                                           int ldc, bool add)
{
    float acc[GEN_MR][KERN_NR] = {{0}};
    for (int k = 0; k < kc; k++, a += mb, b += KERN_NR)
        for (int r = 0; r < mb; r++)
            for (int j = 0; j < KERN_NR; j++)
                acc[r][j] += a[r] * b[j];
    for (int r = 0; r < mb; r++) {
        float *cr = c + (intptr_t)r * ldc;
        for (int j = 0; j < nb; j++)
            cr[j] = add ? cr[j] + acc[r][j] : acc[r][j];
    }
}

static void gen_kernel(int kc, const float *a, int mb, const float *b, int nb, float *c,
                       int ldc, bool add)
{
    switch (mb) {
        ROWS_CASE(gen_tile, 4);
        ROWS_CASE(gen_tile, 3);
        ROWS_CASE(gen_tile, 2);
        ROWS_CASE(gen_tile, 1);
    default: break;
    }
}

#if HAVE_X86
/* ---------------------------------------------------------------- AVX-512 */
#pragma GCC push_options
#pragma GCC target("avx512f")
#define X512_MR 12
#ifndef X512_AHEAD
#define X512_AHEAD 16
#endif

static inline __attribute__((always_inline)) void x512_tile(int kc, const float *a, const int mb,
                                                            const float *b, int nb, float *c,
                                                            int ldc, bool add)
{
    __m512 c0[X512_MR], c1[X512_MR];
#pragma GCC unroll 16
    for (int r = 0; r < mb; r++) {
        c0[r] = c1[r] = _mm512_setzero_ps();
        /* as in x256_half: C's tile is fetched while the loop runs */
        _mm_prefetch((const char *)(c + (intptr_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (intptr_t)r * ldc + 31), _MM_HINT_T0);
    }
    for (int k = 0; k < kc; k++, a += mb, b += KERN_NR) {
        /* a few rows stream B from memory (a decoding step): ask for it
         * X512_AHEAD steps ahead, which one stream's prefetcher does not */
        if (mb <= 4) {
            _mm_prefetch((const char *)(b + X512_AHEAD * KERN_NR), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + X512_AHEAD * KERN_NR + 16), _MM_HINT_T0);
        }
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 16
        for (int r = 0; r < mb; r++) {
            __m512 x = _mm512_set1_ps(a[r]);
            c0[r] = _mm512_fmadd_ps(x, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(x, b1, c1[r]);
        }
    }
    __mmask16 m0 = nb >= 16 ? 0xFFFF : (__mmask16)((1u << nb) - 1);
    __mmask16 m1 = nb >= 32 ? 0xFFFF : nb > 16 ? (__mmask16)((1u << (nb - 16)) - 1) : 0;
#pragma GCC unroll 16
    for (int r = 0; r < mb; r++) {
        float *cr = c + (intptr_t)r * ldc;
        if (add) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, cr));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        _mm512_mask_storeu_ps(cr, m0, c0[r]);
        _mm512_mask_storeu_ps(cr + 16, m1, c1[r]);
    }
}

static void x512_kernel(int kc, const float *a, int mb, const float *b, int nb, float *c,
                        int ldc, bool add)
{
    switch (mb) {
        ROWS_CASE(x512_tile, 12);
        ROWS_CASE(x512_tile, 11);
        ROWS_CASE(x512_tile, 10);
        ROWS_CASE(x512_tile, 9);
        ROWS_CASE(x512_tile, 8);
        ROWS_CASE(x512_tile, 7);
        ROWS_CASE(x512_tile, 6);
        ROWS_CASE(x512_tile, 5);
        ROWS_CASE(x512_tile, 4);
        ROWS_CASE(x512_tile, 3);
        ROWS_CASE(x512_tile, 2);
        ROWS_CASE(x512_tile, 1);
    default: break;
    }
}
#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX2 + FMA */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define X256_MR 6

/* Lane j of the store mask of columns [lo, lo + 8) is set when lo + j < nb. */
static inline __m256i x256_mask(int lo, int nb)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(nb - lo), lane);
}

static inline __attribute__((always_inline)) void x256_half(int kc, const float *a, const int mb,
                                                            const float *b, int nb, float *c,
                                                            int ldc, bool add)
{
    __m256 c0[X256_MR], c1[X256_MR];
#pragma GCC unroll 8
    for (int r = 0; r < mb; r++) {
        c0[r] = c1[r] = _mm256_setzero_ps();
        /* the tile's C, read or written after the loop, is often out of
         * the caches (a block of C is larger than L2): ask for it now */
        _mm_prefetch((const char *)(c + (intptr_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (intptr_t)r * ldc + 15), _MM_HINT_T0);
    }
    /* four steps an iteration: 13 % more on Zen 3 (kernel alone, a block of
     * the FFN's shape, 150 alternating runs: 60 → 68 GFLOP/s a core) */
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++, a += mb, b += KERN_NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
        for (int r = 0; r < mb; r++) {
            __m256 x = _mm256_broadcast_ss(a + r);
            c0[r] = _mm256_fmadd_ps(x, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(x, b1, c1[r]);
        }
    }
    if (nb >= 16) {
#pragma GCC unroll 8
        for (int r = 0; r < mb; r++) {
            float *cr = c + (intptr_t)r * ldc;
            if (add) {
                c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(cr));
                c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(cr + 8));
            }
            _mm256_storeu_ps(cr, c0[r]);
            _mm256_storeu_ps(cr + 8, c1[r]);
        }
        return;
    }
    __m256i m0 = x256_mask(0, nb), m1 = x256_mask(8, nb);
#pragma GCC unroll 8
    for (int r = 0; r < mb; r++) {
        float *cr = c + (intptr_t)r * ldc;
        if (add) {
            c0[r] = _mm256_add_ps(c0[r], _mm256_maskload_ps(cr, m0));
            c1[r] = _mm256_add_ps(c1[r], _mm256_maskload_ps(cr + 8, m1));
        }
        _mm256_maskstore_ps(cr, m0, c0[r]);
        _mm256_maskstore_ps(cr + 8, m1, c1[r]);
    }
}

/* One or two rows against a whole panel in one pass: 8 accumulators. A
 * decoding step's product streams its panels from memory, and reads them
 * 1.5 times as fast so as by halves (12 against 8 GB/s, one Zen 3 core). */
static inline __attribute__((always_inline)) void x256_full(int kc, const float *a, const int mb,
                                                            const float *b, int nb, float *c,
                                                            int ldc, bool add)
{
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int r = 0; r < mb; r++)
        acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++, a += mb, b += KERN_NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 b2 = _mm256_loadu_ps(b + 16), b3 = _mm256_loadu_ps(b + 24);
#pragma GCC unroll 2
        for (int r = 0; r < mb; r++) {
            __m256 x = _mm256_broadcast_ss(a + r);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(x, b2, acc[r][2]);
            acc[r][3] = _mm256_fmadd_ps(x, b3, acc[r][3]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < mb; r++) {
        float *cr = c + (intptr_t)r * ldc;
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            __m256i m = x256_mask(8 * q, nb);
            if (add)
                acc[r][q] = _mm256_add_ps(acc[r][q], _mm256_maskload_ps(cr + 8 * q, m));
            _mm256_maskstore_ps(cr + 8 * q, m, acc[r][q]);
        }
    }
}

static void x256_rows(int kc, const float *a, int mb, const float *b, int nb, float *c, int ldc,
                      bool add)
{
    switch (mb) {
        ROWS_CASE(x256_half, 6);
        ROWS_CASE(x256_half, 5);
        ROWS_CASE(x256_half, 4);
        ROWS_CASE(x256_half, 3);
        ROWS_CASE(x256_half, 2);
        ROWS_CASE(x256_half, 1);
    default: break;
    }
}

/* nb ≤ 16: one half; a whole panel (the driver's call for a lone sliver):
 * one pass for one or two rows, else both halves in turn. */
static void x256_kernel(int kc, const float *a, int mb, const float *b, int nb, float *c,
                        int ldc, bool add)
{
    if (nb <= 16) {
        x256_rows(kc, a, mb, b, nb, c, ldc, add);
    } else if (mb == 1) {
        x256_full(kc, a, 1, b, nb, c, ldc, add);
    } else if (mb == 2) {
        x256_full(kc, a, 2, b, nb, c, ldc, add);
    } else {
        x256_rows(kc, a, mb, b, 16, c, ldc, add);
        x256_rows(kc, a, mb, b + 16, nb - 16, c + 16, ldc, add);
    }
}
#pragma GCC pop_options
#endif

const kern kern_table[] = {
#if HAVE_X86
    {"avx512", X512_MR, 32, x512_kernel},
    {"avx2", X256_MR, 16, x256_kernel},
#endif
    {"generic", GEN_MR, 32, gen_kernel},
};
const int kern_count = (int)(sizeof kern_table / sizeof kern_table[0]);

bool kern_usable(const kern *k)
{
#if HAVE_X86
    __builtin_cpu_init();
    if (k->fn == x512_kernel)
        return __builtin_cpu_supports("avx512f");
    if (k->fn == x256_kernel)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return k->fn == gen_kernel;
}
