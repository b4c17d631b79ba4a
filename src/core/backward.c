/* Attention's backward kernel (attention_forward is in kernels.c; the other
 * kernels keep their backward beside their forward: linear.c, norm.c,
 * embed.c, elementwise.c, softmax.c). It writes dq, dk and dv (it does not
 * add into them); its comment says what it computes. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/core.h"

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
            dropout_forward_at(s1, plane, c->drop_key, c->drop_p, bh * plane);
            pd = s1;
        }
        mm_tn(g.v + ko, a.ldkv, pd, Lk, dc, d, Lk, dk, Lq);     /* dV = Pdᵀ·dctx */
        mm_nt(s2, Lk, dc, d, a.v + ko, a.ldkv, Lq, Lk, dk);      /* dPd = dctx·Vᵀ */
        if (c->drop_p > 0)
            dropout_forward_at(s2, plane, c->drop_key, c->drop_p, bh * plane);
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
