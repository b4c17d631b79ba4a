/* Linear layers, forward and backward, on the GEMM wrappers they run on:
 * the products cut over the pool (gemm, gemm_rows), the weight gradient's
 * product summed over slices of rows (gemm_sum_tn, which allocates its
 * slices' scratch and reports when it cannot), single rows through sgemv;
 * nn.Linear (y = x·Wᵀ + b) with its fused epilogues (bias, relu, dropout,
 * residual in one pass over y) and their backward kernels. Outputs first,
 * then inputs, then sizes. Each backward kernel says in its comment what it
 * does to the input gradient; the parameter gradients are written, not
 * added (every parameter is used once per pass). */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* ---- large products: libat's kernels in each thread of the pool ----
 * A product worth splitting is cut into blocks of rows (or columns) of C,
 * each a single-threaded product of its own (gemm.c; an OpenBLAS call with
 * LIBAT_GEMM=openblas, OpenBLAS then single-threaded: blas_enter). Neither
 * splits the inner dimension, so with libat's kernels every element of C is
 * the same sum in the same order however C is cut: results do not depend on
 * the thread count (OpenBLAS's do, in the last bits: its sums are its own). Two
 * pools of threads (OpenBLAS's spinning in sched_yield while libat's ran its
 * loops, and the other way round) used to fight over the cores; now one
 * runs. A block of rows can be prepared before its product and followed by
 * an epilogue after it in the same thread, while it is still in the cache.
 * OpenBLAS's own count (the host's: at_set_threads, OPENBLAS_NUM_THREADS) is
 * back in place whenever no libat call is inside a product. */
#define GEMM_UNIT 32                          /* rows or columns: a panel of the kernels */
#define GEMM_PART_MACS ((size_t)1 << 21)      /* least work worth a thread */
#define GEMM_CHUNKS 4                         /* per thread, taken in turn (pool_chunks) */
/* Each block packs the whole of the other operand again (B for a block of
 * rows, A for one of columns): at 500 rows a block that copy costs about 8 %
 * of the block's arithmetic, at 32 rows as much as the arithmetic itself. A
 * block has at least this many rows or columns, unless that would leave a
 * thread without one. */
#define GEMM_BLOCK_MIN 1024
/* Up to FEW_ROWS rows a product reads B from memory once and does little
 * with each value (a decoding step: one row per sequence): a part is worth
 * a thread from 2^17 multiply-adds (512 KiB of B at one row; greedy
 * decoding of the base model, 32 tokens: 81 ms, 106-113 ms at 2^18, which
 * leaves the d_model × d_model products in one thread). */
#define FEW_ROWS 4
#define FEW_ROWS_MACS ((size_t)1 << 17)

static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_users;                        /* threads between enter and leave */
static int blas_host;                         /* OpenBLAS's count outside them */

void blas_enter(void)
{
    pthread_mutex_lock(&blas_lock);
    if (blas_users++ == 0) {
        blas_host = openblas_get_num_threads();
        if (blas_host != 1)
            openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_lock);
}

void blas_leave(void)
{
    pthread_mutex_lock(&blas_lock);
    if (--blas_users == 0 && blas_host != 1)
        openblas_set_num_threads(blas_host);
    pthread_mutex_unlock(&blas_lock);
}

/* OpenBLAS's own count, as at_set_threads sets it: now, or when the products
 * running in other threads are done. */
void blas_set_threads(int n)
{
    pthread_mutex_lock(&blas_lock);
    if (blas_users > 0)
        blas_host = n;
    else
        openblas_set_num_threads(n);
    pthread_mutex_unlock(&blas_lock);
}

typedef struct gemm_job {
    bool ta, tb, by_rows;
    int M, N, K;
    const float *A, *B;
    int lda, ldb, ldc;
    float beta;
    float *C;
    const float *panels;     /* B's packed panels (packed.c), or NULL */
    pool_fn before, after;   /* over rows [r0, r1) of C, before and after their product */
    void *ctx;
    size_t per;              /* units of a chunk */
} gemm_job;

static void gemm_block(const gemm_job *j, size_t lo, size_t hi)
{
    const float *A = j->A, *B = j->B;
    float *C = j->C;
    int M = j->M, N = j->N;
    if (j->by_rows) {
        A += j->ta ? lo : lo * (size_t)j->lda;
        C += lo * (size_t)j->ldc;
        M = (int)(hi - lo);
    } else {
        B += j->tb ? lo * (size_t)j->ldb : lo;
        C += lo;
        N = (int)(hi - lo);
    }
    if (j->panels)
        gemm_serial_packed(M, N, j->K, A, j->lda, B,
                           j->panels + (j->by_rows ? 0 : lo * (size_t)j->K), j->beta != 0.0f,
                           C, j->ldc);
    else
        gemm_serial(j->ta, j->tb, M, N, j->K, A, j->lda, B, j->ldb, j->beta != 0.0f, C,
                    j->ldc);
}

/* Chunk c of a product: units [c·per, (c+1)·per) of GEMM_UNIT rows or
 * columns. */
static void gemm_part(void *ctx, size_t c0, size_t c1, int part)
{
    const gemm_job *j = ctx;
    size_t all = (size_t)(j->by_rows ? j->M : j->N);
    size_t lo = c0 * j->per * GEMM_UNIT, hi = c1 * j->per * GEMM_UNIT;
    hi = hi < all ? hi : all;
    if (j->before)
        j->before(j->ctx, lo, hi, part);
    gemm_block(j, lo, hi);
    if (j->after)
        j->after(j->ctx, lo, hi, part);
}

static void gemm_run(gemm_job *j)
{
    blas_enter();
    size_t all = (size_t)(j->by_rows ? j->M : j->N);
    size_t units = (all + GEMM_UNIT - 1) / GEMM_UNIT;
    size_t unit_macs = (size_t)GEMM_UNIT * (size_t)(j->by_rows ? j->N : j->M) * (size_t)j->K;
    /* GEMM_CHUNKS chunks per thread, each worth a thread's start; a product
     * of a few rows streams B from memory, and is worth a thread sooner */
    size_t grain = j->M <= FEW_ROWS ? FEW_ROWS_MACS : GEMM_PART_MACS;
    size_t least = grain / (unit_macs + 1) + 1;
    size_t threads = (size_t)pool_threads();
    size_t want = threads * GEMM_CHUNKS;
    size_t block = GEMM_BLOCK_MIN / GEMM_UNIT;
    size_t even = (units + threads - 1) / threads;   /* one block per thread */
    if (block > even)
        block = even;
    j->per = units / want > least ? units / want : least;
    if (j->per < block)
        j->per = block;
    /* as many chunks, as even as they can be: 16 units in chunks of 9 would
     * leave one thread 9 and the other 7 */
    size_t chunks = (units + j->per - 1) / j->per;
    j->per = (units + chunks - 1) / chunks;
    pool_chunks((units + j->per - 1) / j->per, POOL_ANY, gemm_part, j);
    blas_leave();
}

/* C (M, N) = op(A)·op(B) + beta·C over the pool, cut along the longer side. */
void gemm(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
          int ldb, float beta, float *C, int ldc)
{
    gemm_job j = {ta, tb, M >= N, M, N, K, A, B, lda, ldb, ldc, beta, C, NULL, NULL, NULL, NULL,
                  0};
    gemm_run(&j);
}

/* y (+)= x·Wᵀ, W (out, in) with its packed panels (or NULL), cut along the
 * longer side. */
static void gemm_w(float *y, int ldy, const float *x, int ldx, const float *w,
                   const float *panels, int rows, int in, int out, bool add)
{
    gemm_job j = {false, true, rows >= out, rows, out, in, x, w, ldx, in, ldy,
                  add ? 1.0f : 0.0f, y, panels, NULL, NULL, NULL, 0};
    gemm_run(&j);
}

/* The same cut by rows, with before(ctx, r0, r1, part) and after(…) around
 * each block's product (either may be NULL). */
void gemm_rows(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc, pool_fn before, pool_fn after,
               void *ctx)
{
    gemm_job j = {ta, tb, true, M, N, K, A, B, lda, ldb, ldc, beta, C, NULL, before, after, ctx,
                  0};
    gemm_run(&j);
}

/* gemm_rows of y = x·Wᵀ (+ y) on W's packed panels. */
static void gemm_rows_w(float *y, int ldy, const float *x, int ldx, const float *w,
                        const float *panels, int rows, int in, int out, pool_fn before,
                        pool_fn after, void *ctx)
{
    gemm_job j = {false, true, true, rows, out, in, x, w, ldx, in, ldy, 1.0f, y, panels, before,
                  after, ctx, 0};
    gemm_run(&j);
}

/* ---- the ceiling of the products ----
 * gemm_kernel_rate (gemm.c) on every thread of the pool at once, the rates
 * added: GFLOP/s, or -1 when a thread could not measure (OpenBLAS's
 * products, memory short). */
typedef struct peak_job {
    double seconds;
    double rate[POOL_ANY];
} peak_job;

static void peak_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)i0, (void)i1;
    peak_job *j = ctx;
    j->rate[part] = gemm_kernel_rate(j->seconds);
}

double gemm_peak(double seconds)
{
    if (!gemm_own())
        return -1.0;
    peak_job j = {seconds, {0}};
    pool_for((size_t)pool_threads(), 1, POOL_ANY, peak_part, &j);
    double sum = 0.0;
    for (int i = 0; i < POOL_ANY; i++) {
        if (j.rate[i] < 0)
            return -1.0;
        sum += j.rate[i];
    }
    return sum * 1e-9;
}

/* ---- products that sum over a long side: a weight's gradient ----
 * dW (out, in) = dyᵀ·x sums over every row of the batch: K (4,000 rows) is
 * many times M and N (256). Cut by rows of C, every block packs all of x
 * again (measured on 256·256·4,000, two threads: 58 GFLOP/s in 8 blocks,
 * 102 cut along K). So K is cut instead, into SUM_PARTS slices: each slice
 * of both operands is packed once, the slices' products go to C and to
 * scratch, and are added in a fixed order, so the result depends on K alone,
 * not on the thread count. The column sums of B (db = Σ_rows dy, when asked
 * for) are taken over the same slices in the same threads. The scratch is
 * the caller's (sum_scratch_floats): a step allocates nothing, and cannot
 * fall back to another order of additions when memory is short. */
#define SUM_PARTS 4
#define SUM_MIN_K 1024                        /* rows of a slice, at least */

typedef struct sum_job {
    int M, N, K, lda, ldb, ldc, per;
    const float *A, *B;
    float *C, *scratch;                       /* scratch: parts 1.. of C, then of colsum */
    float *colsum;                            /* Σ over K of A's rows (M), or NULL */
    int parts;
} sum_job;

static float *sum_c(const sum_job *j, int p)
{
    return p == 0 ? j->C : j->scratch + (size_t)(p - 1) * j->M * j->N;
}

static float *sum_col(const sum_job *j, int p)
{
    return p == 0 ? j->colsum
                  : j->scratch + (size_t)(j->parts - 1) * j->M * j->N + (size_t)(p - 1) * j->M;
}

static void sum_part(void *ctx, size_t p0, size_t p1, int part)
{
    (void)part;
    const sum_job *j = ctx;
    for (size_t p = p0; p < p1; p++) {
        int k0 = (int)p * j->per, k1 = k0 + j->per < j->K ? k0 + j->per : j->K;
        const float *A = j->A + (size_t)k0 * j->lda, *B = j->B + (size_t)k0 * j->ldb;
        int ldc = p == 0 ? j->ldc : j->N;
        gemm_serial(true, false, j->M, j->N, k1 - k0, A, j->lda, B, j->ldb, false,
                    sum_c(j, (int)p), ldc);
        if (!j->colsum)
            continue;
        float *restrict s = sum_col(j, (int)p);
        memset(s, 0, (size_t)j->M * sizeof(float));
        for (int k = k0; k < k1; k++) {
            const float *restrict a = j->A + (size_t)k * j->lda;
            for (int i = 0; i < j->M; i++)
                s[i] += a[i];
        }
    }
}

/* Least elements of C per part when the slices' sums are added: adds bound
 * by memory bandwidth, so a part must be large to be worth a thread. */
#define SUM_ROWS_GRAIN 32768

/* C's rows [r0, r1) (and colsum's entries) += the other parts', in order:
 * one pass over each row of C, the parts added while it is in the cache. */
static void sum_rows(void *ctx, size_t r0, size_t r1, int part)
{
    (void)part;
    const sum_job *j = ctx;
    for (size_t r = r0; r < r1; r++) {
        float *restrict c = j->C + r * j->ldc;
        for (int p = 1; p < j->parts; p++) {
            const float *restrict sr = sum_c(j, p) + r * j->N;
            for (int i = 0; i < j->N; i++)
                c[i] += sr[i];
            if (j->colsum)
                j->colsum[r] += sum_col(j, p)[r];
        }
    }
}

size_t sum_scratch_floats(size_t M, size_t N)
{
    return (SUM_PARTS - 1) * (M * N + M);
}

/* C (M, N) = Aᵀ·B for A (K, M) and B (K, N), and colsum (M) = Σ_k A[k] when
 * not NULL, with sum_scratch_floats(M, N) floats of scratch. False (and
 * nothing done) when K is too short to be worth the cut, or without
 * scratch: the caller cuts C instead. */
bool gemm_sum_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                 float *C, int ldc, float *colsum, float *scratch)
{
    int parts = K / SUM_MIN_K < SUM_PARTS ? K / SUM_MIN_K : SUM_PARTS;
    if (parts < 2 || !scratch)
        return false;
    int per = (K + parts - 1) / parts;
    sum_job j = {M, N, K, lda, ldb, ldc, per, A, B, C, scratch, colsum, parts};
    blas_enter();
    pool_chunks((size_t)parts, POOL_ANY, sum_part, &j);
    blas_leave();
    pool_for((size_t)M, (size_t)(SUM_ROWS_GRAIN / N + 1), POOL_ANY, sum_rows, &j);
    return true;
}

/* y (out) = W (out, in)·x (+ y), one row: sgemv on blocks of W's rows. */
/* Least multiply-adds per part of a one-row product: sgemv streams W from
 * memory, so a block of W's rows is worth a thread only when it is large
 * (2^18 multiply-adds, 1 MiB of W). */
#define GEMV_GRAIN_MACS ((size_t)1 << 18)
typedef struct gemv_job {
    float *y;
    const float *x, *w;
    int in;
    float beta;
} gemv_job;

static void gemv_part(void *ctx, size_t u0, size_t u1, int part)
{
    (void)part;
    const gemv_job *j = ctx;
    size_t lo = u0 * GEMM_UNIT, hi = u1 * GEMM_UNIT;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(hi - lo), j->in, 1.0f, j->w + lo * j->in,
                j->in, j->x, 1, j->beta, j->y + lo, 1);
}

static void gemv_rows(float *y, const float *x, const float *w, int in, int out, float beta)
{
    blas_enter();
    gemv_job j = {y, x, w, in, beta};
    size_t units = (size_t)out / GEMM_UNIT;
    pool_for(units, GEMV_GRAIN_MACS / ((size_t)GEMM_UNIT * in) + 1, POOL_ANY, gemv_part, &j);
    size_t done = units * GEMM_UNIT;
    if (done < (size_t)out)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out - (int)done, in, 1.0f, w + done * in, in,
                    x, 1, beta, y + done, 1);
    blas_leave();
}

/* (rows, in) -> (rows, out): y = x·Wᵀ + b, W stored (out, in) as nn.Linear.
 * Up to SMALL_ROWS rows are cut by columns (prefilled, multiplied, then the
 * epilogue, in the calling thread), more by rows, each block of rows
 * prefilled with b (+ resid) just before its product accumulates into it;
 * both read W's packed panels (packed.c). A single row without them goes
 * through sgemv, which streams W as fast as anything simpler. */
typedef struct prefill_job {
    float *y;
    const float *b, *resid;
    int ldy, out;
} prefill_job;

static void prefill_rows(void *ctx, size_t r0, size_t r1, int part)
{
    (void)part;
    prefill_job *j = ctx;
    for (size_t r = r0; r < r1; r++) {
        float *yr = j->y + r * j->ldy;
        if (!j->resid) {
            memcpy(yr, j->b, (size_t)j->out * sizeof(float));
            continue;
        }
        const float *xr = j->resid + r * j->out;
        for (int i = 0; i < j->out; i++)
            yr[i] = xr[i] + j->b[i];
    }
}

/* y = x·Wᵀ accumulated into rows that before(ctx, r0, r1, part) prepares,
 * then after(…) over the same rows (either may be NULL): few rows in the
 * calling thread, many in blocks of rows over the pool. */
static void linear_then(float *y, int ldy, const float *x, int ldx, linear w, int rows, int in,
                        int out, pool_fn before, pool_fn after, void *ctx)
{
    const float *panels = packed_panels(w);
    if (rows > SMALL_ROWS) {
        gemm_rows_w(y, ldy, x, ldx, w.w, panels, rows, in, out, before, after, ctx);
        return;
    }
    if (before)
        before(ctx, 0, (size_t)rows, 0);
    if (rows == 1 && !panels)
        gemv_rows(y, x, w.w, in, out, 1.0f);
    else
        gemm_w(y, ldy, x, ldx, w.w, panels, rows, in, out, true);
    if (after)
        after(ctx, 0, (size_t)rows, 0);
}

static void linear_prefilled(float *y, int ldy, const float *x, int ldx, linear w,
                             const float *resid, int rows, int in, int out)
{
    prefill_job j = {y, w.b, resid, ldy, out};
    linear_then(y, ldy, x, ldx, w, rows, in, out, prefill_rows, NULL, &j);
}

void linear_forward(float *y, const float *x, linear p, int rows, int in, int out)
{
    linear_prefilled(y, out, x, in, p, NULL, rows, in, out);
}

/* linear_forward on rows that lie ldx (ldy) floats apart: one row per batch
 * element of a decoding step. */
void linear_forward_ld(float *y, int ldy, const float *x, int ldx, linear p, int rows, int in,
                       int out)
{
    linear_prefilled(y, ldy, x, ldx, p, NULL, rows, in, out);
}

/* y = resid + x·Wᵀ + b: the residual add of a sublayer folded into the GEMM's
 * accumulator, saving a pass over memory. */
void linear_residual_forward(float *y, const float *x, linear p, const float *resid, int rows,
                             int in, int out)
{
    linear_prefilled(y, out, x, in, p, resid, rows, in, out);
}

/* y = resid + dropout(act(y + b)) for rows [r0, r1); dropout indices count
 * elements of the whole (rows, out) tensor, as backward replays them. The
 * bias is in y before the product (prefill_rows); the rest follows it. */
typedef struct fused_job {
    prefill_job pre;
    const epilogue *e;
} fused_job;

static void fused_before(void *ctx, size_t r0, size_t r1, int part)
{
    prefill_rows(&((fused_job *)ctx)->pre, r0, r1, part);
}

/* relu, dropout and the residual of elements [i0, i1) in one pass: a block
 * of rows (4 MiB of the FFN's hidden layer) is larger than L2, and three
 * passes read and wrote it three times. Each element sees the same
 * operations in the same order; the choices are masks (drop_masks). */
static void epilogue_range(float *restrict y, const epilogue *e, size_t i0, size_t i1)
{
    const float *restrict resid = e->resid;
    const bool drop = e->p > 0;
    const uint32_t thr = drop ? drop_threshold(e->p) : 0;
    const float scale = drop ? 1.0f / (1.0f - e->p) : 1.0f;
    uint32_t keep[DROP_CHUNK];
    for (size_t i = i0; i < i1; i += DROP_CHUNK) {
        size_t n = i1 - i < DROP_CHUNK ? i1 - i : DROP_CHUNK;
        float *restrict yc = y + i;
        if (e->relu)
            for (size_t t = 0; t < n; t++)
                yc[t] = masked(yc[t], -(uint32_t)(yc[t] > 0.0f));
        if (drop) {
            drop_masks(keep, e->key, e->origin + i, n, thr);
            for (size_t t = 0; t < n; t++)
                yc[t] = masked(yc[t] * scale, keep[t]);
        }
        if (resid)
            for (size_t t = 0; t < n; t++)
                yc[t] += resid[i + t];
    }
}

static void fused_after(void *ctx, size_t r0, size_t r1, int part)
{
    (void)part;
    const fused_job *j = ctx;
    const size_t out = (size_t)j->pre.out;
    epilogue_range(j->pre.y, j->e, r0 * out, r1 * out);
}

void linear_fused(float *y, const float *x, linear w, int rows, int in, int out,
                  const epilogue *e)
{
    fused_job j = {{y, w.b, NULL, out, out}, e};
    linear_then(y, out, x, in, w, rows, in, out, fused_before, fused_after, &j);
}

/* y = x·Wᵀ + b  →  dW = dyᵀ·x, db = Σ_rows dy, dx = dy·W (or += with
 * accumulate; dx may be NULL). The parameter gradients are written, not
 * added: every parameter is used once per pass, so a training step needs no
 * pass that zeroes them. */
typedef struct colsum_job {
    float *db;
    const float *dy;
    int rows, out;
} colsum_job;

/* db[i] = Σ_r dy[r][i] for the columns of one part, rows in order. */
static void colsum_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    colsum_job *j = ctx;
    memset(j->db + i0, 0, (i1 - i0) * sizeof(float));
    for (int r = 0; r < j->rows; r++) {
        const float *restrict dr = j->dy + (size_t)r * j->out;
        float *restrict db = j->db;
        for (size_t i = i0; i < i1; i++)
            db[i] += dr[i];
    }
}

/* db for the rows [o0, o1) of dW, in the thread that computed them. */
static void colsum_after(void *ctx, size_t o0, size_t o1, int part)
{
    colsum_job *j = ctx;
    if (j->db)
        colsum_part(j, o0, o1, part);
}

/* linear_backward with after(ctx, r0, r1, part) over each block of rows of
 * dx once it is computed (in the thread that computed it). */
void linear_backward_then(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int rows, int in, int out, bool accumulate,
                          float *scratch, pool_fn after, void *ctx)
{
    colsum_job j = {db, dy, rows, out};
    if (!gemm_sum_tn(out, in, rows, dy, out, x, in, dw, in, db, scratch))
        gemm_rows(true, false, out, in, rows, dy, out, x, in, 0.0f, dw, in, NULL, colsum_after,
                  &j);
    if (dx)
        gemm_rows(false, false, rows, in, out, dy, out, w, in, accumulate ? 1.0f : 0.0f, dx, in,
                  NULL, after, ctx);
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int rows, int in, int out, bool accumulate,
                     float *scratch)
{
    linear_backward_then(dx, dw, db, dy, x, w, rows, in, out, accumulate, scratch, NULL, NULL);
}

/* h = dropout(relu(z)), stored  →  dz = dh where h > 0 (times 1/(1−p) for the
 * dropout), else 0. A kept positive is still positive after scaling and a
 * dropped one is 0, so h alone decides. */
/* Least elements per part: a memory-bound loop, like relu's forward. */
#define RELU_BWD_GRAIN 65536
typedef struct relu_bwd_job { float *dh; const float *h; float scale; } relu_bwd_job;

static void relu_bwd_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    const relu_bwd_job *j = ctx;
    float *restrict dh = j->dh;
    const float *restrict h = j->h;
    const float scale = j->scale;
    /* dh·scale, or +0 where h ≤ 0, chosen by a mask of bits: written as a
     * choice (?:), the loop branched on the sign of h, at random, and ran
     * scalar (6 cycles an element) */
    for (size_t i = i0; i < i1; i++)
        dh[i] = masked(dh[i] * scale, -(uint32_t)(h[i] > 0.0f));
}

void relu_dropout_backward(float *dh, const float *h, size_t n, float p)
{
    relu_bwd_job j = {dh, h, p > 0 ? 1.0f / (1.0f - p) : 1.0f};
    pool_for(n, RELU_BWD_GRAIN, POOL_ANY, relu_bwd_part, &j);
}

/* h (rows, d_ff) = dropout(relu(x·W_1ᵀ + b_1)) and y = h·W_2ᵀ + b_2, given dy:
 * dW_2, db_2, then dh = dy·W_2 with relu_dropout_backward applied to each
 * block of rows in the thread that computed it. */
typedef struct relu_rows_job { relu_bwd_job r; size_t width; } relu_rows_job;

static void relu_bwd_rows(void *ctx, size_t r0, size_t r1, int part)
{
    const relu_rows_job *j = ctx;
    relu_bwd_part((void *)&j->r, r0 * j->width, r1 * j->width, part);
}

void ff_out_backward(float *dh, float *dw, float *db, const float *dy, const float *h,
                     const float *w, int rows, int d_ff, int d, float p, float *scratch)
{
    relu_rows_job j = {{dh, h, p > 0 ? 1.0f / (1.0f - p) : 1.0f}, (size_t)d_ff};
    linear_backward_then(dh, dw, db, dy, h, w, rows, d_ff, d, false, scratch, relu_bwd_rows,
                         &j);
}
