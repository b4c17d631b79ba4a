/* Attention, paper eq. (1): its forward kernel (whole, or in its three steps
 * for a host that looks between them), its backward, and the small matrix
 * products they run on. The other kernels keep forward and backward side by
 * side too: linear.c (and the GEMM wrappers), norm.c, embed.c, elementwise.c
 * (dropout, relu, add), softmax.c (with the loss). Outputs first, then
 * inputs, then sizes. None of them allocates. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

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

/* Rows of B ahead of the one being read that the loops below ask the
 * memory for: a decoding step reads each key and value row of a batch once
 * (rows d_model or 3·d_model floats apart, out of the caches), and waited
 * for each load in turn (72 % of mm_nt's time on one load, batch 32). */
#define AHEAD 4

static inline void prefetch_row(const float *row, int n)
{
    for (int c = 0; c < n; c += 16)
        __builtin_prefetch(row + c);
}

/* C (M, N) = A (M, K) · B (N, K)ᵀ */
void mm_nt(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K)
{
    if ((size_t)M * N * K >= SMALL_MACS) {
        gemm_serial(false, true, M, N, K, A, lda, B, ldb, false, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            if (i == 0 && j + AHEAD < N)
                prefetch_row(B + (size_t)(j + AHEAD) * ldb, K);
            C[(size_t)i * ldc + j] = dot(A + (size_t)i * lda, B + (size_t)j * ldb, K);
        }
}

/* C (M, N) = A (M, K) · B (K, N) */
void mm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K)
{
    if ((size_t)M * N * K >= SMALL_MACS) {
        gemm_serial(false, false, M, N, K, A, lda, B, ldb, false, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        memset(c, 0, (size_t)N * sizeof(float));
        for (int k = 0; k < K; k++) {
            if (i == 0 && k + AHEAD < K)
                prefetch_row(B + (size_t)(k + AHEAD) * ldb, N);
            axpy(c, A[(size_t)i * lda + k], B + (size_t)k * ldb, N);
        }
    }
}

/* One query row against rows that do not lie at one stride (a beam
 * hypothesis's cached keys and values, each written by the slot that held
 * its prefix then): row i at base + slot[i]·slot_stride + i·ld. The same
 * arithmetic as mm_nt and mm_nn for one row below SMALL_MACS. */
static inline const float *row_at(const float *base, size_t slot_stride, int ld,
                                  const int32_t *slot, int i)
{
    return base + (size_t)slot[i] * slot_stride + (size_t)i * ld;
}

/* c (n) = a (K) · rows (n, K)ᵀ */
void mm_nt_rows(float *c, const float *a, const float *base, size_t slot_stride, int ld,
                const int32_t *slot, int n, int K)
{
    for (int i = 0; i < n; i++) {
        if (i + AHEAD < n)
            prefetch_row(row_at(base, slot_stride, ld, slot, i + AHEAD), K);
        c[i] = dot(a, row_at(base, slot_stride, ld, slot, i), K);
    }
}

/* c (N) = p (n) · rows (n, N) */
void mm_nn_rows(float *c, const float *p, const float *base, size_t slot_stride, int ld,
                const int32_t *slot, int n, int N)
{
    memset(c, 0, (size_t)N * sizeof(float));
    for (int i = 0; i < n; i++) {
        if (i + AHEAD < n)
            prefetch_row(row_at(base, slot_stride, ld, slot, i + AHEAD), N);
        axpy(c, p[i], row_at(base, slot_stride, ld, slot, i), N);
    }
}

/* C (M, N) = A (K, M)ᵀ · B (K, N) */
void mm_tn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K)
{
    if ((size_t)M * N * K >= SMALL_MACS) {
        gemm_serial(true, false, M, N, K, A, lda, B, ldb, false, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++)
        memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
    for (int k = 0; k < K; k++)
        for (int i = 0; i < M; i++)
            axpy(C + (size_t)i * ldc, A[(size_t)k * lda + i], B + (size_t)k * ldb, N);
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
        dropout_forward_at(scratch, plane, c->drop_key, c->drop_p, c->drop_origin + bh * plane);
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

/* (batch, head) pairs per task: at least ATTN_GRAIN_MACS multiply-adds of
 * q·kᵀ each, so a small pass is not cut finer than a thread's start-up. */
#define ATTN_GRAIN_MACS 65536

static void attention_run(attn_a a, const attn_call *c, pool_fn fn)
{
    attn_job j = {a, c};
    size_t work = (size_t)c->Lq * c->Lk * (size_t)(c->d / c->h);
    blas_enter();
    pool_for((size_t)c->B * c->h, work > ATTN_GRAIN_MACS ? 1 : ATTN_GRAIN_MACS / work,
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

/* ---- backward ---- */

/* Attention, paper eq. (1), backward for every (batch, head):
 *   ctx = Pd·V, Pd = dropout(P), P = softmax(S), S = mask(q·kᵀ/√dk)
 *   dPd = dctx·Vᵀ, dV = Pdᵀ·dctx, dP = dropout(dPd),
 *   dS = P ⊙ (dP − rowsum(P ⊙ dP)), zero where masked (the −1e9 fill is a
 *   constant) and for heads whose P the host gave (c->frozen: an override is
 *   a constant too), dQ = dS·K/√dk, dK = dSᵀ·Q/√dk.
 * dq, dk, dv are written (not added), with the strides of q, k, v.
 * s1 and s2 are (Lq, Lk) scratch. */
typedef struct attn_bwd_job {
    attn_a g, a;
    const float *dctx;
    const attn_call *c;
    float *s1, *s2;
} attn_bwd_job;

static void attention_bwd_heads(void *ctx, size_t i0, size_t i1, int part)
{
    const attn_bwd_job *job = ctx;
    const attn_call *c = job->c;
    attn_a g = job->g, a = job->a;
    const int d = c->d, h = c->h, Lq = c->Lq, Lk = c->Lk, dk = d / h;
    const float scale = (float)sqrt((double)dk);
    const size_t plane = (size_t)Lq * Lk;
    float *s1 = job->s1 + (size_t)part * plane, *s2 = job->s2 + (size_t)part * plane;
    for (size_t bh = i0; bh < i1; bh++) {
        int b = (int)(bh / (size_t)h), j = (int)(bh % (size_t)h);
        size_t qo = (size_t)b * Lq * a.ldq + (size_t)j * dk;
        size_t ko = (size_t)b * Lk * a.ldkv + (size_t)j * dk;
        const float *p = a.p + bh * plane;
        const float *dc = job->dctx + (size_t)b * Lq * d + (size_t)j * dk;
        const float *pd = p;
        if (c->drop_p > 0) {
            memcpy(s1, p, plane * sizeof(float));
            dropout_forward_at(s1, plane, c->drop_key, c->drop_p, c->drop_origin + bh * plane);
            pd = s1;
        }
        mm_tn(g.v + ko, a.ldkv, pd, Lk, dc, d, Lk, dk, Lq);     /* dV = Pdᵀ·dctx */
        mm_nt(s2, Lk, dc, d, a.v + ko, a.ldkv, Lq, Lk, dk);      /* dPd = dctx·Vᵀ */
        if (c->drop_p > 0)
            dropout_forward_at(s2, plane, c->drop_key, c->drop_p, c->drop_origin + bh * plane);
        if (c->dp)   /* the gradient that flows into P, before the softmax's */
            memcpy(c->dp + bh * plane, s2, plane * sizeof(float));
        if (c->frozen && c->frozen[j])
            memset(s2, 0, plane * sizeof(float));   /* an override: no gradient to S */
        for (int i = 0; i < Lq && !(c->frozen && c->frozen[j]); i++) {
            const float *pr = p + (size_t)i * Lk;
            const float *mrow = c->mask + (size_t)b * c->mask_bstride +
                                (size_t)i * c->mask_qstride;
            float *ds = s2 + (size_t)i * Lk;
            double dot = 0;
            for (int t = 0; t < Lk; t++)
                dot += (double)pr[t] * ds[t];
            for (int t = 0; t < Lk; t++)
                ds[t] = mrow[t] == 0.0f ? 0.0f : pr[t] * (ds[t] - (float)dot) / scale;
        }
        mm_nn(g.q + qo, a.ldq, s2, Lk, a.k + ko, a.ldkv, Lq, dk, Lk);   /* dQ = dS·K */
        mm_tn(g.k + ko, a.ldkv, s2, Lk, a.q + qo, a.ldq, Lk, dk, Lq);   /* dK = dSᵀ·Q */
    }
}

/* (batch, head) pairs per task: at least ATTN_BWD_GRAIN_MACS multiply-adds
 * of one of its products each; half the forward's grain, as a pair's
 * backward does four products to the forward's two. */
#define ATTN_BWD_GRAIN_MACS 32768

/* The backward above for every (batch, head) pair over the pool; s1 and s2
 * hold c->scratch_parts (Lq, Lk) matrices each. */
void attention_backward(attn_a g, const float *dctx, attn_a a, const attn_call *c, float *s1,
                        float *s2)
{
    attn_bwd_job j = {g, a, dctx, c, s1, s2};
    size_t work = (size_t)c->Lq * c->Lk * (size_t)(c->d / c->h);
    blas_enter();
    pool_for((size_t)c->B * c->h, work > ATTN_BWD_GRAIN_MACS ? 1 : ATTN_BWD_GRAIN_MACS / work,
             c->scratch_parts, attention_bwd_heads, &j);
    blas_leave();
}
