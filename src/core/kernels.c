/* Forward kernels over flat float arrays. Outputs first, then inputs, then
 * sizes. None of them allocates. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* (B, L) ids -> (B, L, d): lut[id]·√d + pe[pos]  (paper §3.4, §3.5).
 * The scale is the double √d rounded to float, multiplied, as torch does. */
void embed_forward(float *out, const int32_t *ids, const float *lut, const float *pe,
                   int B, int L, int d)
{
    const float scale = (float)sqrt((double)d);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            const float *row = lut + (size_t)ids[b * L + t] * d;
            const float *pos = pe + (size_t)t * d;
            float *o = out + ((size_t)b * L + t) * d;
            for (int i = 0; i < d; i++)
                o[i] = row[i] * scale + pos[i];
        }
}

/* The reference's LayerNorm (SEMANTICS §3): the unbiased std, eps added to the
 * std, y = a·(x − mean) / (std + eps) + b. The mean and the variance are
 * summed in vectorized float lanes added in double, and the variance is taken
 * around the mean (two passes), which keeps the error near float64's. */
typedef struct norm_job {
    norm_a o;
    const float *x;
    norm p;
    int d;
} norm_job;

/* Σ x[i] and Σ (x[i] − c)² in eight float lanes (which the compiler turns
 * into vector registers), the lanes added in double. */
static void lane_sums(const float *restrict x, int n, float c, double *sum, double *sq)
{
    float s[8] = {0}, q[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int u = 0; u < 8; u++) {
            float v = x[i + u] - c;
            s[u] += v;
            q[u] += v * v;
        }
    double ts = 0, tq = 0;
    for (int u = 0; u < 8; u++)
        ts += s[u], tq += q[u];
    for (; i < n; i++) {
        double v = (double)x[i] - c;
        ts += v, tq += v * v;
    }
    *sum = ts;
    *sq = tq;
}

static void norm_rows(void *ctx, size_t r0, size_t r1, int part)
{
    (void)part;
    norm_job *j = ctx;
    norm_a o = j->o;
    norm p = j->p;
    int d = j->d;
    for (size_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * d;
        float *restrict y = o.y + r * d;
        double sum, sq;
        lane_sums(xr, d, 0.0f, &sum, &sq);
        float mean = (float)(sum / d);
        lane_sums(xr, d, mean, &sum, &sq);
        float denom = (float)sqrt(sq / (d - 1)) + AT_LN_EPS;
        for (int i = 0; i < d; i++)
            y[i] = p.a[i] * (xr[i] - mean) / denom + p.b[i];
        o.mean[r] = mean;
        o.rstd[r] = 1.0f / denom;
    }
}

void norm_forward(norm_a o, const float *x, norm p, int rows, int d)
{
    norm_job j = {o, x, p, d};
    pool_for((size_t)rows, (size_t)(16384 / d + 1), POOL_ANY, norm_rows, &j);
}

/* ---- large products: OpenBLAS in each thread of the pool ----
 * While libat runs a product, OpenBLAS runs single-threaded (blas_enter), and
 * a product worth splitting is cut into one block of rows (or columns) of C
 * per pool thread, each an OpenBLAS call of its own. OpenBLAS never splits
 * the inner dimension, so every element of C is the same sum in the same
 * order however C is cut: results do not depend on the thread count. Two
 * pools of threads (OpenBLAS's spinning in sched_yield while libat's ran its
 * loops, and the other way round) used to fight over the cores; now one
 * runs. A block of rows can be prepared before its product and followed by
 * an epilogue after it in the same thread, while it is still in the cache.
 * OpenBLAS's own count (the host's: at_set_threads, OPENBLAS_NUM_THREADS) is
 * back in place whenever no libat call is inside a product. */
#define GEMM_UNIT 16                          /* rows or columns: the kernels' blocking */
#define GEMM_PART_MACS ((size_t)1 << 21)      /* least work worth a thread */
#define GEMM_CHUNKS 4                         /* per thread, taken in turn (pool_chunks) */
/* Each block packs the whole of the other operand again (B for a block of
 * rows, A for one of columns): at 500 rows a block that copy costs about 8 %
 * of the block's arithmetic, at 32 rows as much as the arithmetic itself. A
 * block has at least this many rows or columns, unless that would leave a
 * thread without one. */
#define GEMM_BLOCK_MIN 1024

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
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans,
                j->tb ? CblasTrans : CblasNoTrans, M, N, j->K, 1.0f, A, j->lda, B, j->ldb,
                j->beta, C, j->ldc);
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
    /* GEMM_CHUNKS chunks per thread, each worth a thread's start */
    size_t least = GEMM_PART_MACS / (unit_macs + 1) + 1;
    size_t threads = (size_t)pool_threads();
    size_t want = threads * GEMM_CHUNKS;
    size_t block = GEMM_BLOCK_MIN / GEMM_UNIT;
    size_t even = (units + threads - 1) / threads;   /* one block per thread */
    if (block > even)
        block = even;
    j->per = units / want > least ? units / want : least;
    if (j->per < block)
        j->per = block;
    pool_chunks((units + j->per - 1) / j->per, POOL_ANY, gemm_part, j);
    blas_leave();
}

/* C (M, N) = op(A)·op(B) + beta·C over the pool, cut along the longer side. */
void gemm(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
          int ldb, float beta, float *C, int ldc)
{
    gemm_job j = {ta, tb, M >= N, M, N, K, A, B, lda, ldb, ldc, beta, C, NULL, NULL, NULL, 0};
    gemm_run(&j);
}

/* The same cut by rows, with before(ctx, r0, r1, part) and after(…) around
 * each block's product (either may be NULL). */
void gemm_rows(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc, pool_fn before, pool_fn after,
               void *ctx)
{
    gemm_job j = {ta, tb, true, M, N, K, A, B, lda, ldb, ldc, beta, C, before, after, ctx, 0};
    gemm_run(&j);
}

/* ---- products that sum over a long side: a weight's gradient ----
 * dW (out, in) = dyᵀ·x sums over every row of the batch: K (4,000 rows) is
 * many times M and N (256). Cut by rows of C, every block packs all of x
 * again (measured on 256·256·4,000, two threads: 58 GFLOP/s in 8 blocks,
 * 102 cut along K). So K is cut instead, into SUM_PARTS slices: each slice
 * of both operands is packed once, the slices' products go to C and to
 * scratch, and are added in a fixed order, so the result depends on K alone,
 * not on the thread count. The column sums of B (db = Σ_rows dy, when asked
 * for) are taken over the same slices in the same threads. */
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
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j->M, j->N, k1 - k0, 1.0f, A,
                    j->lda, B, j->ldb, 0.0f, sum_c(j, (int)p), ldc);
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

/* C (M, N) = Aᵀ·B for A (K, M) and B (K, N), and colsum (M) = Σ_k A[k] when
 * not NULL. False (and nothing done) when K is too short to be worth the cut
 * or the scratch cannot be had: the caller cuts C instead. */
bool gemm_sum_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                 float *C, int ldc, float *colsum)
{
    int parts = K / SUM_MIN_K < SUM_PARTS ? K / SUM_MIN_K : SUM_PARTS;
    if (parts < 2)
        return false;
    size_t extra = (size_t)(parts - 1) * ((size_t)M * N + (colsum ? (size_t)M : 0));
    float *scratch = malloc(extra * sizeof(float));
    if (!scratch)
        return false;
    int per = (K + parts - 1) / parts;
    sum_job j = {M, N, K, lda, ldb, ldc, per, A, B, C, scratch, colsum, parts};
    blas_enter();
    pool_chunks((size_t)parts, POOL_ANY, sum_part, &j);
    blas_leave();
    pool_for((size_t)M, (size_t)(32768 / N + 1), POOL_ANY, sum_rows, &j);
    free(scratch);
    return true;
}

/* y (out) = W (out, in)·x (+ y), one row: sgemv on blocks of W's rows. */
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
    pool_for(units, (size_t)(1 << 18) / ((size_t)GEMM_UNIT * in) + 1, POOL_ANY, gemv_part, &j);
    size_t done = units * GEMM_UNIT;
    if (done < (size_t)out)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out - (int)done, in, 1.0f, w + done * in, in,
                    x, 1, beta, y + done, 1);
    blas_leave();
}

/* (rows, in) -> (rows, out): y = x·Wᵀ + b, W stored (out, in) as nn.Linear.
 * A single row goes through sgemv (an sgemm with M = 1 is several times
 * slower), a few rows through the packed kernel (gemm_small.c), many
 * through sgemm, each block of rows prefilled with b (+ resid) just before
 * its product accumulates into it. */
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
    if (rows > SMALL_ROWS) {
        gemm_rows(false, true, rows, out, in, x, ldx, w.w, in, 1.0f, y, ldy, before, after,
                  ctx);
        return;
    }
    if (before)
        before(ctx, 0, (size_t)rows, 0);
    if (rows == 1)
        gemv_rows(y, x, w.w, in, out, 1.0f);
    else if (!small_gemm(y, ldy, x, ldx, w, rows, in, out, true))
        gemm(false, true, rows, out, in, x, ldx, w.w, in, 1.0f, y, ldy);
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

/* Inverted dropout as torch applies it: x·(1/(1−p)) where kept, 0 where
 * dropped. first is the index of x[0] within its site, so a site can be
 * processed in pieces. */
void dropout_forward_at(float *x, size_t n, uint64_t key, float p, size_t first)
{
    dropout_range(x - first, x - first, first, first + n, key, p);
}

/* Elementwise loops, split over the pool. */
typedef struct elem_job {
    float *y;
    const float *x;
    uint64_t key;
    float p;
} elem_job;

static void dropout_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    elem_job *j = ctx;
    dropout_range(j->y, j->x, i0, i1, j->key, j->p);
}

void dropout_forward(float *x, size_t n, uint64_t key, float p)
{
    elem_job j = {.y = x, .x = x, .key = key, .p = p};
    pool_for(n, 32768, POOL_ANY, dropout_part, &j);
}

/* dst = dropout(src) in one pass (backward's view of a sublayer's output). */
void dropout_copy(float *dst, const float *src, size_t n, uint64_t key, float p)
{
    elem_job j = {.y = dst, .x = src, .key = key, .p = p};
    pool_for(n, 32768, POOL_ANY, dropout_part, &j);
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

static void fused_after(void *ctx, size_t r0, size_t r1, int part)
{
    (void)part;
    const fused_job *j = ctx;
    const epilogue *e = j->e;
    const size_t out = (size_t)j->pre.out;
    float *restrict y = j->pre.y;
    if (e->relu)
        for (size_t i = r0 * out; i < r1 * out; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    if (e->p > 0)
        dropout_range(y, y, r0 * out, r1 * out, e->key, e->p);
    if (e->resid)
        for (size_t i = r0 * out; i < r1 * out; i++)
            y[i] += e->resid[i];
}

void linear_fused(float *y, const float *x, linear w, int rows, int in, int out,
                  const epilogue *e)
{
    fused_job j = {{y, w.b, NULL, out, out}, e};
    linear_then(y, out, x, in, w, rows, in, out, fused_before, fused_after, &j);
}

static void add_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    elem_job *j = ctx;
    float *restrict y = j->y;
    const float *restrict x = j->x;
    for (size_t i = i0; i < i1; i++)
        y[i] += x[i];
}

void add_inplace(float *y, const float *x, size_t n)
{
    elem_job j = {.y = y, .x = x};
    pool_for(n, 65536, POOL_ANY, add_part, &j);
}

/* ---- small matrix products for attention ----
 * One (batch, head) pair is a handful of small products (10×10×64 in the
 * copy task). OpenBLAS spends microseconds per call on checks and packing,
 * more than the arithmetic, so below a size these plain loops do the work;
 * they are written so that the compiler vectorizes them (independent
 * accumulators for dot products, axpy form otherwise). */
#define SMALL_MACS 65536

static float dot(const float *restrict a, const float *restrict b, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int u = 0; u < 8; u++)
            acc[u] += a[i + u] * b[i + u];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy(float *restrict y, float a, const float *restrict x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* C (M, N) = A (M, K) · B (N, K)ᵀ */
void mm_nt(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K)
{
    if ((size_t)M * N * K >= SMALL_MACS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb,
                    0.0f, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = dot(A + (size_t)i * lda, B + (size_t)j * ldb, K);
}

/* C (M, N) = A (M, K) · B (K, N) */
void mm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K)
{
    if ((size_t)M * N * K >= SMALL_MACS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb,
                    0.0f, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        memset(c, 0, (size_t)N * sizeof(float));
        for (int k = 0; k < K; k++)
            axpy(c, A[(size_t)i * lda + k], B + (size_t)k * ldb, N);
    }
}

/* C (M, N) = A (K, M)ᵀ · B (K, N) */
void mm_tn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K)
{
    if ((size_t)M * N * K >= SMALL_MACS) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb,
                    0.0f, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++)
        memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
    for (int k = 0; k < K; k++)
        for (int i = 0; i < M; i++)
            axpy(C + (size_t)i * ldc, A[(size_t)k * lda + i], B + (size_t)k * ldb, N);
}

/* ---- exp over rows ----
 * The softmaxes (attention, the generator's log-softmax, the loss gradient)
 * spent most of their time in libm's exp, one element at a time. exp_shift_sum
 * computes exp(x − shift) eight elements at a time (AVX2 and FMA, chosen at
 * run time; other CPUs run the same formulas one element at a time): Cephes'
 * expf, the argument reduced by n·ln 2, a degree-7 polynomial, 2^n put into
 * the exponent; within 2 ulp of expf. Arguments below −87.33 (the smallest
 * normal float's logarithm: the −1e9 of masked scores) give exactly 0, NaN
 * stays NaN. The sum is taken in double, as the log-softmax did before. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2 1
#else
#define HAVE_AVX2 0
#endif

#define EXP_LO (-87.3365448f)           /* ln FLT_MIN */
#define EXP_HI 88.0f                    /* keeps 2^n finite */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

static float exp_one(float x)
{
    if (x < EXP_LO)
        return 0.0f;
    if (!(x == x))
        return x;
    x = x < EXP_HI ? x : EXP_HI;
    float n = rintf(x * EXP_LOG2E);
    float r = x - n * EXP_LN2_HI;
    r = r - n * EXP_LN2_LO;
    float p = EXP_P0;
    p = p * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    float y = p * (r * r) + (r + 1.0f);
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

static double exp_sum_generic(float *y, const float *x, float shift, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float e = exp_one(x[i] - shift);
        if (y)
            y[i] = e;
        sum += e;
    }
    return sum;
}

#if HAVE_AVX2
__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);   /* NaN stays (min returns x) */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
    __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                                  23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

__attribute__((target("avx2,fma"))) static double exp_sum_avx2(float *y, const float *x,
                                                               float shift, int n)
{
    const __m256 s = _mm256_set1_ps(shift);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        if (y)
            _mm256_storeu_ps(y + i, e);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    if (i < n) {   /* the tail through a mask, so that every element is computed alike */
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - i), lane);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), s));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        if (y)
            _mm256_maskstore_ps(y + i, mask, e);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}
#endif

static bool cpu_has_avx2(void)
{
#if HAVE_AVX2
    static _Atomic int cached = -1;
    int c = atomic_load_explicit(&cached, memory_order_relaxed);
    if (c < 0) {
        c = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        atomic_store_explicit(&cached, c, memory_order_relaxed);
    }
    return c == 1;
#else
    return false;
#endif
}

/* y[i] = exp(x[i] − shift) for i < n (y may be x; NULL: not stored); returns
 * Σ y[i] in double. */
double exp_shift_sum(float *y, const float *x, float shift, int n)
{
#if HAVE_AVX2
    if (cpu_has_avx2())
        return exp_sum_avx2(y, x, shift, n);
#endif
    return exp_sum_generic(y, x, shift, n);
}

static float row_max(const float *x, int n)
{
    float mx = x[0];
    for (int j = 1; j < n; j++)
        mx = x[j] > mx ? x[j] : mx;
    return mx;
}

/* Softmax of one row in place, max-subtracted. */
void softmax_row(float *x, int n)
{
    float sum = (float)exp_shift_sum(x, x, row_max(x, n), n);
    for (int j = 0; j < n; j++)
        x[j] /= sum;
}

/* Scaled dot-product attention of every (batch, head), paper eq. (1):
 * p = softmax(mask(q·kᵀ / √dk)), ctx = dropout(p)·v.
 * q (B, Lq, ldq), k and v (B, Lk, ldkv), head j in columns [j·dk, (j+1)·dk);
 * p (B, h, Lq, Lk); ctx (B, Lq, d). mask[b·mask_bstride + i·mask_qstride + j]
 * == 0 hides key j from query i; masked scores become −1e9 (not −inf), so
 * their probability is exactly 0 and a fully masked row would be uniform.
 * p keeps the probabilities before dropout (the reference's attribute holds
 * them after; before is what a reader of attention wants, and what backward
 * needs). */
typedef struct attn_job {
    attn_a a;
    const attn_call *c;
} attn_job;

/* The pointers of one (batch, head) pair; p is the part's scratch for a
 * head the capture policy drops. */
typedef struct attn_bh {
    const float *q, *k, *v;
    float *p, *ctx;
} attn_bh;

static attn_bh pair_at(attn_a a, const attn_call *c, size_t bh, int part)
{
    const int d = c->d, h = c->h, Lq = c->Lq, Lk = c->Lk, dk = d / h;
    int b = (int)(bh / (size_t)h), j = (int)(bh % (size_t)h);
    attn_bh x;
    x.q = a.q + (size_t)b * Lq * a.ldq + (size_t)j * dk;
    x.k = a.k + (size_t)b * Lk * a.ldkv + (size_t)j * dk;
    x.v = a.v + (size_t)b * Lk * a.ldkv + (size_t)j * dk;
    x.p = attn_plane(a, c, b, j);
    if (!x.p)
        x.p = c->scratch + (size_t)part * Lq * Lk;
    x.ctx = a.ctx + (size_t)b * Lq * d + (size_t)j * dk;
    return x;
}

/* p = mask(q·kᵀ/√dk), masked entries −1e9. */
static void pair_scores(const attn_bh *x, attn_a a, const attn_call *c, size_t bh)
{
    const int Lq = c->Lq, Lk = c->Lk, dk = c->d / c->h, b = (int)(bh / (size_t)c->h);
    const float scale = (float)sqrt((double)dk);
    mm_nt(x->p, Lk, x->q, a.ldq, x->k, a.ldkv, Lq, Lk, dk);
    for (int i = 0; i < Lq; i++) {
        float *row = x->p + (size_t)i * Lk;
        const float *mrow = c->mask + (size_t)b * c->mask_bstride + (size_t)i * c->mask_qstride;
        for (int t = 0; t < Lk; t++)
            row[t] = mrow[t] == 0.0f ? AT_MASK_FILL : row[t] / scale;
    }
}

static void pair_softmax(const attn_bh *x, const attn_call *c)
{
    for (int i = 0; i < c->Lq; i++)
        softmax_row(x->p + (size_t)i * c->Lk, c->Lk);
}

/* ctx = dropout(p)·v; the dropout on a copy in the part's scratch. */
static void pair_values(const attn_bh *x, attn_a a, const attn_call *c, size_t bh, int part)
{
    const size_t plane = (size_t)c->Lq * c->Lk;
    const float *pv = x->p;
    if (c->drop_p > 0) {
        float *scratch = c->scratch + (size_t)part * plane;
        memcpy(scratch, x->p, plane * sizeof(float));
        dropout_forward_at(scratch, plane, c->drop_key, c->drop_p, bh * plane);
        pv = scratch;
    }
    mm_nn(x->ctx, c->d, pv, c->Lk, x->v, a.ldkv, c->Lq, c->d / c->h, c->Lk);
}

static void attention_heads(void *ctx, size_t i0, size_t i1, int part)
{
    attn_a a = ((attn_job *)ctx)->a;
    const attn_call *c = ((attn_job *)ctx)->c;
    for (size_t bh = i0; bh < i1; bh++) {
        attn_bh x = pair_at(a, c, bh, part);
        pair_scores(&x, a, c, bh);
        pair_softmax(&x, c);
        pair_values(&x, a, c, bh, part);
    }
}

static void scores_part(void *ctx, size_t i0, size_t i1, int part)
{
    attn_job *j = ctx;
    for (size_t bh = i0; bh < i1; bh++) {
        attn_bh x = pair_at(j->a, j->c, bh, part);
        pair_scores(&x, j->a, j->c, bh);
    }
}

static void softmax_part(void *ctx, size_t i0, size_t i1, int part)
{
    attn_job *j = ctx;
    for (size_t bh = i0; bh < i1; bh++) {
        attn_bh x = pair_at(j->a, j->c, bh, part);
        pair_softmax(&x, j->c);
    }
}

static void values_part(void *ctx, size_t i0, size_t i1, int part)
{
    attn_job *j = ctx;
    for (size_t bh = i0; bh < i1; bh++) {
        attn_bh x = pair_at(j->a, j->c, bh, part);
        pair_values(&x, j->a, j->c, bh, part);
    }
}

/* (batch, head) pairs per task: at least ATTN_GRAIN_FLOPS multiply-adds of
 * q·kᵀ each, so a small pass is not cut finer than a thread's start-up. */
#define ATTN_GRAIN_FLOPS 65536

static void attention_run(attn_a a, const attn_call *c, pool_fn fn)
{
    attn_job j = {a, c};
    size_t work = (size_t)c->Lq * c->Lk * (size_t)(c->d / c->h);
    blas_enter();
    pool_for((size_t)c->B * c->h, work > ATTN_GRAIN_FLOPS ? 1 : ATTN_GRAIN_FLOPS / work,
             c->scratch_parts, fn, &j);
    blas_leave();
}

/* One (batch, head) pair per task; each part has its own (Lq, Lk) scratch. */
void attention_forward(attn_a a, const attn_call *c) { attention_run(a, c, attention_heads); }

/* The same three steps one at a time over every pair, for a host that looks
 * between them (taps on scores and probs, overrides): every head is kept. */
void attention_scores(attn_a a, const attn_call *c) { attention_run(a, c, scores_part); }
void attention_softmax(attn_a a, const attn_call *c) { attention_run(a, c, softmax_part); }
void attention_values(attn_a a, const attn_call *c) { attention_run(a, c, values_part); }

static void relu_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    float *restrict x = ((elem_job *)ctx)->y;
    for (size_t i = i0; i < i1; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_inplace(float *x, size_t n)
{
    elem_job j = {.y = x};
    pool_for(n, 65536, POOL_ANY, relu_part, &j);
}

/* log_softmax over the last dim of (rows, n), in place. */
typedef struct lsm_job { float *x; int n; } lsm_job;

static void log_softmax_part(void *ctx, size_t r0, size_t r1, int part)
{
    (void)part;
    lsm_job *j = ctx;
    int n = j->n;
    for (size_t r = r0; r < r1; r++) {
        float *row = j->x + r * n;
        float mx = row_max(row, n);
        float logsum = (float)log(exp_shift_sum(NULL, row, mx, n));
        for (int j = 0; j < n; j++)
            row[j] = (row[j] - mx) - logsum;
    }
}

void log_softmax_rows(float *x, int rows, int n)
{
    lsm_job j = {x, n};
    pool_for((size_t)rows, (size_t)(8192 / n + 1), POOL_ANY, log_softmax_part, &j);
}
