/* Forward kernels over flat float arrays. Outputs first, then inputs, then
 * sizes. None of them allocates. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "internal.h"

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

/* (rows, in) -> (rows, out): y = x·Wᵀ + b, W stored (out, in) as nn.Linear.
 * A single row goes through sgemv (an sgemm with M = 1 is several times
 * slower), a few rows through the packed kernel (gemm_small.c), many
 * through sgemm. */
static void gemm_accumulate(float *y, const float *x, linear w, int rows, int in, int out)
{
    if (rows == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w.w, in, x, 1, 1.0f, y, 1);
    else if (!small_gemm(y, out, x, in, w, rows, in, out, true))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in,
                    w.w, in, 1.0f, y, out);
}

/* y[r] = b (+ resid[r]) for every row, before a GEMM accumulates into y. */
typedef struct prefill_job {
    float *y;
    const float *b, *resid;
    int out;
} prefill_job;

static void prefill_rows(void *ctx, size_t r0, size_t r1, int part)
{
    (void)part;
    prefill_job *j = ctx;
    for (size_t r = r0; r < r1; r++) {
        float *yr = j->y + r * j->out;
        if (!j->resid) {
            memcpy(yr, j->b, (size_t)j->out * sizeof(float));
            continue;
        }
        const float *xr = j->resid + r * j->out;
        for (int i = 0; i < j->out; i++)
            yr[i] = xr[i] + j->b[i];
    }
}

static void prefill(float *y, const float *b, const float *resid, int rows, int out)
{
    prefill_job j = {y, b, resid, out};
    pool_for((size_t)rows, (size_t)(65536 / out + 1), POOL_ANY, prefill_rows, &j);
}

void linear_forward(float *y, const float *x, linear p, int rows, int in, int out)
{
    prefill(y, p.b, NULL, rows, out);
    gemm_accumulate(y, x, p, rows, in, out);
}

/* linear_forward on rows that lie ldx (ldy) floats apart: one row per batch
 * element of a decoding step. */
void linear_forward_ld(float *y, int ldy, const float *x, int ldx, linear p, int rows, int in,
                       int out)
{
    for (int r = 0; r < rows; r++)
        memcpy(y + (size_t)r * ldy, p.b, (size_t)out * sizeof(float));
    if (rows == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, p.w, in, x, 1, 1.0f, y, 1);
    else if (!small_gemm(y, ldy, x, ldx, p, rows, in, out, true))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, ldx, p.w,
                    in, 1.0f, y, ldy);
}

/* y = resid + x·Wᵀ + b: the residual add of a sublayer folded into the GEMM's
 * accumulator, saving a pass over memory. */
void linear_residual_forward(float *y, const float *x, linear p, const float *resid, int rows,
                             int in, int out)
{
    prefill(y, p.b, resid, rows, out);
    gemm_accumulate(y, x, p, rows, in, out);
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
 * elements of the whole (rows, out) tensor, as backward replays them. */
typedef struct fused_job {
    float *y;
    const float *b;
    const epilogue *e;
    int out;
} fused_job;

static void fused_rows(void *ctx, size_t r0, size_t r1, int part)
{
    (void)part;
    const fused_job *j = ctx;
    const epilogue *e = j->e;
    const size_t out = (size_t)j->out;
    for (size_t r = r0; r < r1; r++) {
        float *restrict y = j->y + r * out;
        for (size_t i = 0; i < out; i++) {
            float v = y[i] + j->b[i];
            y[i] = e->relu && !(v > 0.0f) ? 0.0f : v;
        }
    }
    if (e->p > 0)
        dropout_range(j->y, j->y, r0 * out, r1 * out, e->key, e->p);
    if (e->resid)
        for (size_t i = r0 * out; i < r1 * out; i++)
            j->y[i] += e->resid[i];
}

void linear_fused(float *y, const float *x, linear w, int rows, int in, int out,
                  const epilogue *e)
{
    if (rows == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w.w, in, x, 1, 0.0f, y, 1);
    else if (!small_gemm(y, out, x, in, w, rows, in, out, false))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w.w,
                    in, 0.0f, y, out);
    fused_job j = {y, w.b, e, out};
    pool_for((size_t)rows, (size_t)(65536 / out + 1), POOL_ANY, fused_rows, &j);
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

/* Softmax of one row in place, max-subtracted. */
void softmax_row(float *x, int n)
{
    float mx = x[0];
    for (int j = 1; j < n; j++)
        mx = x[j] > mx ? x[j] : mx;
    float sum = 0;
    for (int j = 0; j < n; j++) {
        x[j] = expf(x[j] - mx);
        sum += x[j];
    }
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

static void attention_heads(void *ctx, size_t i0, size_t i1, int part)
{
    attn_a a = ((attn_job *)ctx)->a;
    const attn_call *c = ((attn_job *)ctx)->c;
    const int d = c->d, h = c->h, Lq = c->Lq, Lk = c->Lk, dk = d / h;
    const float scale = (float)sqrt((double)dk);
    const size_t plane = (size_t)Lq * Lk;
    float *scratch = c->scratch + (size_t)part * plane;
    for (size_t bh = i0; bh < i1; bh++) {
        int b = (int)(bh / (size_t)h), j = (int)(bh % (size_t)h);
        const float *q = a.q + (size_t)b * Lq * a.ldq + (size_t)j * dk;
        const float *k = a.k + (size_t)b * Lk * a.ldkv + (size_t)j * dk;
        const float *v = a.v + (size_t)b * Lk * a.ldkv + (size_t)j * dk;
        float *p = a.p + ((size_t)b * h + j) * plane;
        mm_nt(p, Lk, q, a.ldq, k, a.ldkv, Lq, Lk, dk);
        for (int i = 0; i < Lq; i++) {
            float *row = p + (size_t)i * Lk;
            const float *mrow = c->mask + (size_t)b * c->mask_bstride +
                                (size_t)i * c->mask_qstride;
            for (int t = 0; t < Lk; t++)
                row[t] = mrow[t] == 0.0f ? AT_MASK_FILL : row[t] / scale;
            softmax_row(row, Lk);
        }
        const float *pv = p;
        if (c->drop_p > 0) {
            memcpy(scratch, p, plane * sizeof(float));
            dropout_forward_at(scratch, plane, c->drop_key, c->drop_p, bh * plane);
            pv = scratch;
        }
        float *ctx = a.ctx + (size_t)b * Lq * d + (size_t)j * dk;
        mm_nn(ctx, d, pv, Lk, v, a.ldkv, Lq, dk, Lk);
    }
}

/* One (batch, head) pair per task; each part has its own (Lq, Lk) scratch. */
void attention_forward(attn_a a, const attn_call *c)
{
    attn_job j = {a, c};
    size_t work = (size_t)c->Lq * c->Lk * (size_t)(c->d / c->h);
    pool_for((size_t)c->B * c->h, work > 65536 ? 1 : 65536 / work, c->scratch_parts,
             attention_heads, &j);
}

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
        float mx = row[0];
        for (int j = 1; j < n; j++)
            mx = row[j] > mx ? row[j] : mx;
        double sum = 0;
        for (int j = 0; j < n; j++)
            sum += exp((double)(row[j] - mx));
        float logsum = (float)log(sum);
        for (int j = 0; j < n; j++)
            row[j] = (row[j] - mx) - logsum;
    }
}

void log_softmax_rows(float *x, int rows, int n)
{
    lsm_job j = {x, n};
    pool_for((size_t)rows, (size_t)(8192 / n + 1), POOL_ANY, log_softmax_part, &j);
}
