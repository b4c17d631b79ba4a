/* libat's own matrix product, one thread: C (M, N) (+)= op(A)·op(B), blocked
 * and packed as GotoBLAS and BLIS do, on the micro-kernels of kern.c.
 *
 * Why not the BLAS: a BLAS built for many CPUs picks its kernels from a
 * table of CPU models, and Debian's OpenBLAS 0.3.21 takes an AVX-512 Xeon it
 * does not know for a Prescott: SSE3 kernels, a batch-32 forward pass 4×
 * slower than it could be (issue 12). Here the kernel is chosen from what the
 * CPU says it can run (cpuid and the OS's register support), once.
 *
 * Blocking (for the caches of one core: 48 KiB L1d, 2 MiB L2 on the Xeons
 * measured; about right for any core since Haswell):
 *
 *   for each block of NC columns of C
 *     for each block of KC steps of the inner dimension
 *       pack op(B)'s block into panels of 32 columns      (L2: 512 KiB)
 *       for each block of MC rows
 *         pack op(A)'s block into slivers of MR rows      (L2: 192 KiB)
 *         for each panel: for each sliver: the kernel     (panel in L1: 32 KiB)
 *
 * The inner dimension is cut only into KC blocks, always at the same steps,
 * and the kernel sums each element over a block in one accumulator, so an
 * element of C is the same sum in the same order however C is cut among
 * threads, and whether its operands came packed by the caller (weights
 * packed once, packed.c) or here. A thread that has no packing buffer
 * (memory was short) packs one sliver and one panel at a time on its stack:
 * slower, and the same numbers.
 *
 * LIBAT_GEMM in the environment names the kernel to use (avx512, avx2,
 * generic), or openblas to hand the products to cblas_sgemm as before: for
 * tests of each kernel on one machine, and benchmarks side by side. */
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "core/kern.h"

#define NR KERN_NR
#define KC 256
#define MC 192                    /* a multiple of every kernel's MR (12, 6, 4) */
#define NC 512
#define MR_MAX 16
_Static_assert(GEMM_BUF_FLOATS == KC * NC + MC * KC, "core.h's GEMM_BUF_FLOATS is gemm.c's blocks");

/* ---------------------------------------------------------------- the kernel */
static const kern *chosen;        /* NULL: OpenBLAS (LIBAT_GEMM=openblas) */
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const char *want = getenv("LIBAT_GEMM");
    int best = kern_count - 1;
    for (int i = kern_count - 1; i >= 0; i--)
        if (kern_usable(&kern_table[i]))
            best = i;
    chosen = &kern_table[best];
    if (!want || !*want)
        return;
    if (strcmp(want, "openblas") == 0) {
        chosen = NULL;
        return;
    }
    for (int i = 0; i < kern_count; i++)
        if (strcmp(want, kern_table[i].name) == 0 && kern_usable(&kern_table[i]))
            chosen = &kern_table[i];
}

static const kern *kernel(void)
{
    pthread_once(&choose_once, choose);
    return chosen;
}

const char *gemm_kernel_name(void)
{
    const kern *k = kernel();
    return k ? k->name : "openblas";
}

bool gemm_own(void)
{
    return kernel() != NULL;
}

/* ---------------------------------------------------------------- buffers */
/* A thread's packing buffer: a pool worker's lies on its stack (pool.c),
 * a host thread's is allocated on its first product (or by gemm_prepare)
 * and freed when the thread ends. */
static _Thread_local float *thread_buf;
static pthread_key_t buf_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;

static void key_init(void)
{
    key_ok = pthread_key_create(&buf_key, free) == 0;
}

void gemm_adopt(float *buf)
{
    thread_buf = buf;
}

bool gemm_prepare(void)
{
    if (thread_buf)
        return true;
    pthread_once(&key_once, key_init);
    if (!key_ok)
        return false;
    float *b = aligned_alloc(64, GEMM_BUF_FLOATS * sizeof(float));
    if (b && pthread_setspecific(buf_key, b) != 0) {
        free(b);
        b = NULL;
    }
    thread_buf = b;
    return b != NULL;
}

/* ---------------------------------------------------------------- packing */
/* GCC turns the copy loops below into calls of memcpy, one per step of a
 * few floats: 4 % of a training step went to the calls. */
#if defined(__GNUC__) && !defined(__clang__)
#define COPY_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define COPY_LOOPS
#endif

static inline int least(int a, int b)
{
    return a < b ? a : b;
}

/* op(B): B itself, or W (N, K) read transposed; panels (optional) holds W's
 * full panels of 32 columns packed over all K steps (packed.c). */
typedef struct operand_b {
    const float *b;
    int ldb;
    bool tb;
    const float *panels;
    int K;
} operand_b;

/* Rows [i0, i0 + mb) of op(A), steps [p0, p0 + kc), as a sliver:
 * dst[k·mb + r]. */
COPY_LOOPS static void pack_a(float *restrict dst, const float *A, int lda, bool ta, int i0,
                              int mb, int p0, int kc)
{
    if (ta) {
        for (int k = 0; k < kc; k++, dst += mb) {
            const float *restrict src = A + (size_t)(p0 + k) * lda + i0;
            for (int r = 0; r < mb; r++)
                dst[r] = src[r];
        }
        return;
    }
    /* mb rows read side by side, the sliver written in order */
    const float *rows[MR_MAX];
    for (int r = 0; r < mb; r++)
        rows[r] = A + (size_t)(i0 + r) * lda + p0;
    for (int k = 0; k < kc; k++, dst += mb)
        for (int r = 0; r < mb; r++)
            dst[r] = rows[r][k];
}

/* Rows [i0, i0 + mc) of Aᵀ (A stored (K, M): a weight gradient's dyᵀ), steps
 * [p0, p0 + kc), as the block's slivers of mr rows, sliver s at
 * dst + s·kc. Read a row of A at a time, whole: sliver by sliver, each
 * step's few floats lie a row apart, and a block was read at the memory's
 * latency, one line per step (a TN product 14 % slower than NT, the same
 * sizes). */
COPY_LOOPS static void pack_at_block(float *restrict dst, const float *A, int lda, int i0, int mc,
                                     int mr, int p0, int kc)
{
    for (int k = 0; k < kc; k++) {
        const float *restrict src = A + (size_t)(p0 + k) * lda + i0;
        for (int s = 0; s < mc; s += mr) {
            int mb = least(mr, mc - s);
            float *restrict d = dst + (size_t)s * kc + (size_t)k * mb;
            for (int r = 0; r < mb; r++)
                d[r] = src[s + r];
        }
    }
}

/* Rows [0, nb) of w (each kc long, ldw apart) as a panel of their
 * transpose: dst[k·32 + c] = w[c·ldw + k], zeros past nb. Eight steps at a
 * time, so that the panel's lines being written (8 · 128 bytes) stay in L1
 * while the rows are read. */
COPY_LOOPS void gemm_pack_rows(float *restrict dst, const float *restrict w, size_t ldw, int nb,
                               int kc)
{
    enum { STEPS = 8 };
    for (int k0 = 0; k0 < kc; k0 += STEPS) {
        int ks = least(STEPS, kc - k0);
        float *restrict d = dst + (size_t)k0 * NR;
        for (int c = 0; c < nb; c++) {
            const float *restrict src = w + (size_t)c * ldw + k0;
            for (int k = 0; k < ks; k++)
                d[k * NR + c] = src[k];
        }
        for (int k = 0; k < ks; k++)
            for (int c = nb; c < NR; c++)
                d[k * NR + c] = 0.0f;
    }
}

/* Columns [j0, j0 + nb) of op(B), steps [p0, p0 + kc), as a panel:
 * dst[k·32 + c], zeros past nb. Returns the panel: W's own packed copy
 * where there is one, else dst. */
COPY_LOOPS static const float *pack_b(float *restrict dst, const operand_b *B, int j0, int nb,
                                      int p0, int kc)
{
    if (B->panels && nb == NR)
        return B->panels + (size_t)j0 * B->K + (size_t)p0 * NR;
    if (B->tb) {
        gemm_pack_rows(dst, B->b + (size_t)j0 * B->ldb + p0, (size_t)B->ldb, nb, kc);
        return dst;
    }
    for (int k = 0; k < kc; k++) {
        const float *restrict src = B->b + (size_t)(p0 + k) * B->ldb + j0;
        float *restrict d = dst + (size_t)k * NR;
        for (int c = 0; c < nb; c++)
            d[c] = src[c];
        for (int c = nb; c < NR; c++)
            d[c] = 0.0f;
    }
    return dst;
}

/* Columns [j0, j0 + nc) of op(B), steps [p0, p0 + kc), as panels of 32
 * columns at dst + j·kc (zeros past nc in the last), their addresses in bp.
 * B itself (not transposed) one row at a time, whole, for the reason
 * pack_at_block gives; Wᵀ panel by panel (pack_b). drive_panels, not
 * this, serves a B with packed panels. */
COPY_LOOPS static void pack_b_block(float *restrict dst, const operand_b *B, int j0, int nc,
                                    int p0, int kc, const float **bp)
{
    if (B->tb) {
        for (int j = 0; j < nc; j += NR)
            bp[j / NR] = pack_b(dst + (size_t)j * kc, B, j0 + j, least(NR, nc - j), p0, kc);
        return;
    }
    for (int j = 0; j < nc; j += NR)
        bp[j / NR] = dst + (size_t)j * kc;
    for (int k = 0; k < kc; k++) {
        const float *restrict src = B->b + (size_t)(p0 + k) * B->ldb + j0;
        for (int j = 0; j < nc; j += NR) {
            float *restrict d = dst + (size_t)j * kc + (size_t)k * NR;
            int nb = least(NR, nc - j);
            for (int c = 0; c < nb; c++)
                d[c] = src[j + c];
            for (int c = nb; c < NR; c++)
                d[c] = 0.0f;
        }
    }
}

/* ---------------------------------------------------------------- the driver */
typedef struct product {
    const kern *k;
    int M, N, K;
    const float *A;
    int lda;
    bool ta;
    operand_b B;
    float *C;
    int ldc;
    bool add;
} product;

/* Columns a kernel call covers: a 16-column kernel's half panel when a
 * block has several slivers, so that the half stays in L1 while they pass;
 * the whole panel when there is one sliver (a few rows: the panel streams
 * from memory, and is best read in one pass). */
static int call_width(const product *p, int mc)
{
    return mc > p->k->mr ? p->k->nr : NR;
}

/* The kernel over every sliver of a block against columns [h, h + w) of
 * one panel. */
static void slivers(const product *p, const float *abuf, const float *panel, int h, int w,
                    int nb, int ic, int mc, int col, int kc, bool add)
{
    const int mr = p->k->mr;
    for (int s = 0; s < mc; s += mr)
        p->k->fn(kc, abuf + (size_t)s * kc, least(mr, mc - s), panel + h, least(w, nb - h),
                 p->C + (size_t)(ic + s) * p->ldc + col + h, p->ldc, add);
}

/* One KC block of steps over rows [ic, ic + mc) and columns [jc, jc + nc),
 * with the block's panels in bp and its slivers packed here first when
 * pack_a_first (else abuf already holds them). */
static void block(const product *p, float *abuf, const float *const *bp, int ic, int mc, int jc,
                  int nc, int pc, int kc, bool add, bool pack_a_first)
{
    const int mr = p->k->mr;
    if (pack_a_first && p->ta)
        pack_at_block(abuf, p->A, p->lda, ic, mc, mr, pc, kc);
    for (int s = 0; s < mc && pack_a_first && !p->ta; s += mr)
        pack_a(abuf + (size_t)s * kc, p->A, p->lda, false, ic + s, least(mr, mc - s), pc, kc);
    const int w = call_width(p, mc);
    for (int j = 0; j < nc; j += NR) {
        int nb = least(NR, nc - j);
        for (int h = 0; h < nb; h += w)
            slivers(p, abuf, bp[j / NR], h, w, nb, ic, mc, jc + j, kc, add);
    }
}

/* B packed by the caller (a weight's panels, packed.c): nothing to pack of
 * B but its last partial panel, so each block of A is packed once, for all
 * of N, instead of once per NC columns. */
static void drive_panels(const product *p, float *buf)
{
    float *bbuf = buf, *abuf = buf + (size_t)KC * NC;
    for (int pc = 0; pc < p->K; pc += KC) {
        int kc = least(KC, p->K - pc);
        for (int ic = 0; ic < p->M; ic += MC) {
            int mc = least(MC, p->M - ic);
            const float *bp[NC / NR];
            for (int jc = 0; jc < p->N; jc += NC) {
                int nc = least(NC, p->N - jc);
                for (int j = 0; j < nc; j += NR)
                    bp[j / NR] = pack_b(bbuf, &p->B, jc + j, least(NR, nc - j), pc, kc);
                block(p, abuf, bp, ic, mc, jc, nc, pc, kc, p->add || pc > 0, jc == 0);
            }
        }
    }
}

static void drive(const product *p, float *buf)
{
    if (p->B.panels) {
        drive_panels(p, buf);
        return;
    }
    float *bbuf = buf, *abuf = buf + (size_t)KC * NC;
    const float *bp[NC / NR];
    for (int jc = 0; jc < p->N; jc += NC) {
        int nc = least(NC, p->N - jc);
        for (int pc = 0; pc < p->K; pc += KC) {
            int kc = least(KC, p->K - pc);
            pack_b_block(bbuf, &p->B, jc, nc, pc, kc, bp);
            for (int ic = 0; ic < p->M; ic += MC)
                block(p, abuf, bp, ic, least(MC, p->M - ic), jc, nc, pc, kc, p->add || pc > 0,
                      true);
        }
    }
}

/* drive without a buffer: one panel and one sliver at a time, on the stack;
 * the same kernel calls on the same numbers. */
static void drive_small(const product *p)
{
    float panel_buf[KC * NR], sliver[KC * MR_MAX];
    const int mr = p->k->mr;
    for (int jc = 0; jc < p->N; jc += NR) {
        int nb = least(NR, p->N - jc);
        for (int pc = 0; pc < p->K; pc += KC) {
            int kc = least(KC, p->K - pc);
            const float *panel = pack_b(panel_buf, &p->B, jc, nb, pc, kc);
            for (int i = 0; i < p->M; i += mr) {
                int mb = least(mr, p->M - i);
                pack_a(sliver, p->A, p->lda, p->ta, i, mb, pc, kc);
                slivers(p, sliver, panel, 0, NR, nb, i, mb, jc, kc, p->add || pc > 0);
            }
        }
    }
}

static void run(const product *p)
{
    if (p->M <= 0 || p->N <= 0)
        return;
    if (p->K <= 0) {
        for (int i = 0; i < p->M && !p->add; i++)
            memset(p->C + (size_t)i * p->ldc, 0, (size_t)p->N * sizeof(float));
        return;
    }
    if (!thread_buf)
        gemm_prepare();
    if (thread_buf)
        drive(p, thread_buf);
    else
        drive_small(p);
}

void gemm_serial(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
                 int ldb, bool add, float *C, int ldc)
{
    const kern *k = kernel();
    if (!k) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A, lda, B, ldb, add ? 1.0f : 0.0f, C, ldc);
        return;
    }
    product p = {k, M, N, K, A, lda, ta, {B, ldb, tb, NULL, K}, C, ldc, add};
    run(&p);
}

void gemm_serial_packed(int M, int N, int K, const float *A, int lda, const float *W,
                        const float *panels, bool add, float *C, int ldc)
{
    const kern *k = kernel();
    if (!k || !panels) {
        gemm_serial(false, true, M, N, K, A, lda, W, K, add, C, ldc);
        return;
    }
    product p = {k, M, N, K, A, lda, false, {W, K, true, panels, K}, C, ldc, add};
    run(&p);
}

/* ---------------------------------------------------------------- the ceiling */
/* The kernel's throughput where nothing but the kernel limits it, on this
 * thread: the driver's inner loops (every panel of a KC × NC block of B
 * against every sliver of an MC × KC block of A, accumulating into C) over
 * the same blocks, packed once and held in the core's caches, for about
 * `seconds`. No product can beat it; gemm_peak (linear.c) adds the rates of
 * every thread of the pool. FLOP/s, or -1 when the products are OpenBLAS's
 * or memory is short. */
/* pool.c has a clock too, but gemm.c must not call pool.c (pool.c calls
 * gemm_adopt: the calls test forbids the circle) */
static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double gemm_kernel_rate(double seconds)
{
    const kern *k = kernel();
    if (!k)
        return -1.0;
    float *a = aligned_alloc(64, (size_t)MC * KC * sizeof(float));
    float *b = aligned_alloc(64, (size_t)KC * NC * sizeof(float));
    float *c = aligned_alloc(64, (size_t)MC * NC * sizeof(float));
    double rate = -1.0;
    if (a && b && c) {
        /* small values, so that the sums stay far from overflow however long */
        for (size_t i = 0; i < (size_t)MC * KC; i++)
            a[i] = (float)(i % 7) * 1e-3f;
        for (size_t i = 0; i < (size_t)KC * NC; i++)
            b[i] = (float)(i % 5) * 1e-3f;
        memset(c, 0, (size_t)MC * NC * sizeof(float));
        const int w = k->nr;
        long blocks = 0;
        double t0 = seconds_now(), dt;
        do {
            for (int jc = 0; jc < NC; jc += NR)
                for (int h = 0; h < NR; h += w)
                    for (int s = 0; s < MC; s += k->mr)
                        k->fn(KC, a + (size_t)s * KC, k->mr, b + (size_t)jc * KC + h, w,
                              c + (size_t)s * NC + jc + h, NC, true);
            blocks++;
            dt = seconds_now() - t0;
        } while (dt < seconds);
        rate = 2.0 * MC * NC * KC * (double)blocks / dt;
    }
    free(a);
    free(b);
    free(c);
    return rate;
}
