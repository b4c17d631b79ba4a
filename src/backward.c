/* The backward pass: one kernel per forward kernel, then the walk back
 * through the layers. Kernels add into parameter gradients (zeroing is the
 * caller's step) and say in their comment what they do to the input
 * gradient. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "internal.h"

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

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int rows, int in, int out, bool accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, dy, out, x, in,
                0.0f, dw, in);
    colsum_job j = {db, dy, rows, out};
    pool_for((size_t)out, (size_t)(65536 / rows + 16), POOL_ANY, colsum_part, &j);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dy, out, w,
                    in, accumulate ? 1.0f : 0.0f, dx, in);
}

/* y = a·c/(σ+ε) + b with c = x − mean, σ = √(Σc²/(d−1))  →  dx += …,
 * da = Σ dy·c/(σ+ε), db = Σ dy (written). With g = a·dy/(σ+ε) +
 * dσ·c/((d−1)σ) and dσ = −Σ a·dy·c/(σ+ε)², dx = g − mean(g) (the mean's own
 * gradient). One pass over the rows: the rows fall into NORM_CHUNKS fixed
 * chunks, each summing its part of da and db into partial (NORM_CHUNKS, 2d),
 * and the chunks are added in order, so the result does not depend on the
 * thread count. */
typedef struct norm_bwd_job {
    float *dx;
    const float *dy, *x;
    norm_a o;
    norm p;
    int rows, d;
    float *partial;
} norm_bwd_job;

static void norm_bwd_chunks(void *ctx, size_t c0, size_t c1, int part)
{
    (void)part;
    const norm_bwd_job *j = ctx;
    const int d = j->d;
    const float *a = j->p.a;
    for (size_t c = c0; c < c1; c++) {
        float *pa = j->partial + c * 2 * (size_t)d, *pb = pa + d;
        memset(pa, 0, 2 * (size_t)d * sizeof(float));
        size_t r0 = (size_t)j->rows * c / NORM_CHUNKS, r1 = (size_t)j->rows * (c + 1) / NORM_CHUNKS;
        for (size_t r = r0; r < r1; r++) {
            const float *xr = j->x + r * d, *dyr = j->dy + r * d;
            float *dxr = j->dx + r * d;
            double mean = j->o.mean[r], rstd = j->o.rstd[r];
            double sigma = 1.0 / rstd - AT_LN_EPS;
            double dsigma = 0;
            for (int i = 0; i < d; i++) {
                float c = (float)(xr[i] - mean);
                dsigma -= (double)a[i] * dyr[i] * c * rstd * rstd;
                pa[i] += dyr[i] * (c * (float)rstd);
                pb[i] += dyr[i];
            }
            double k = sigma > 0 ? dsigma / ((d - 1) * sigma) : 0.0;
            double gsum = 0;
            for (int i = 0; i < d; i++)
                gsum += a[i] * dyr[i] * rstd + k * (xr[i] - mean);
            double gmean = gsum / d;
            for (int i = 0; i < d; i++)
                dxr[i] += (float)(a[i] * dyr[i] * rstd + k * (xr[i] - mean) - gmean);
        }
    }
}

void norm_backward(float *dx, norm dp, const float *dy, const float *x, norm_a o, norm p,
                   int rows, int d, float *partial)
{
    norm_bwd_job j = {dx, dy, x, o, p, rows, d, partial};
    size_t per_chunk = (size_t)rows * d / NORM_CHUNKS + 1;
    pool_for(NORM_CHUNKS, 16384 / per_chunk + 1, POOL_ANY, norm_bwd_chunks, &j);
    for (int i = 0; i < d; i++) {
        float sa = 0, sb = 0;
        for (int c = 0; c < NORM_CHUNKS; c++) {
            sa += partial[(size_t)c * 2 * d + i];
            sb += partial[(size_t)c * 2 * d + d + i];
        }
        dp.a[i] = sa;
        dp.b[i] = sb;
    }
}

/* Dropout is its own adjoint: the same mask and scale. */
void dropout_backward(float *dx, size_t n, uint64_t key, float p)
{
    dropout_forward(dx, n, key, p);
}

/* h = dropout(relu(z)), stored  →  dz = dh where h > 0 (times 1/(1−p) for the
 * dropout), else 0. A kept positive is still positive after scaling and a
 * dropped one is 0, so h alone decides. */
typedef struct relu_bwd_job { float *dh; const float *h; float scale; } relu_bwd_job;

static void relu_bwd_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    const relu_bwd_job *j = ctx;
    float *restrict dh = j->dh;
    const float *restrict h = j->h;
    for (size_t i = i0; i < i1; i++)
        dh[i] = h[i] > 0.0f ? dh[i] * j->scale : 0.0f;
}

void relu_dropout_backward(float *dh, const float *h, size_t n, float p)
{
    relu_bwd_job j = {dh, h, p > 0 ? 1.0f / (1.0f - p) : 1.0f};
    pool_for(n, 65536, POOL_ANY, relu_bwd_part, &j);
}

/* out = lut[id]·√d + pe  →  dlut[id] += dout·√d (pe is a buffer). */
void embed_backward(float *dlut, const float *dout, const int32_t *ids, int rows, int d)
{
    const float scale = (float)sqrt((double)d);
    for (int r = 0; r < rows; r++) {
        float *g = dlut + (size_t)ids[r] * d;
        const float *dr = dout + (size_t)r * d;
        for (int i = 0; i < d; i++)
            g[i] += dr[i] * scale;
    }
}

/* Attention, paper eq. (1), backward for every (batch, head):
 *   ctx = Pd·V, Pd = dropout(P), P = softmax(S), S = mask(q·kᵀ/√dk)
 *   dPd = dctx·Vᵀ, dV = Pdᵀ·dctx, dP = dropout(dPd),
 *   dS = P ⊙ (dP − rowsum(P ⊙ dP)), zero where masked (the −1e9 fill is a
 *   constant), dQ = dS·K/√dk, dK = dSᵀ·Q/√dk.
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
        for (int i = 0; i < Lq; i++) {
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

/* Attention, paper eq. (1), backward for every (batch, head):
 *   ctx = Pd·V, Pd = dropout(P), P = softmax(S), S = mask(q·kᵀ/√dk)
 *   dPd = dctx·Vᵀ, dV = Pdᵀ·dctx, dP = dropout(dPd),
 *   dS = P ⊙ (dP − rowsum(P ⊙ dP)), zero where masked (the −1e9 fill is a
 *   constant), dQ = dS·K/√dk, dK = dSᵀ·Q/√dk.
 * dq, dk, dv are written (not added), with the strides of q, k, v.
 * s1 and s2 hold c->scratch_parts (Lq, Lk) matrices each. */
void attention_backward(attn_a g, const float *dctx, attn_a a, const attn_call *c, float *s1,
                        float *s2)
{
    attn_bwd_job j = {g, a, dctx, c, s1, s2};
    size_t work = (size_t)c->Lq * c->Lk * (size_t)(c->d / c->h);
    pool_for((size_t)c->B * c->h, work > 32768 ? 1 : 32768 / work, c->scratch_parts,
             attention_bwd_heads, &j);
}

/* log_softmax then the reference's LabelSmoothing + KLDivLoss(sum) / ntokens
 * (SEMANTICS §11): t = ε/(V−2) everywhere, 1−ε at the label, 0 in the pad
 * column and in rows whose label is pad; loss_sum = Σ_{t>0} t·(ln t − logp).
 * dz = (softmax·Σt − t)/ntokens, Σt being 1 on rows that count.
 * Returns loss_sum. */
double loss_backward(float *dz, const float *logp, const int32_t *labels, int rows, int V,
                     int32_t pad, double smoothing, int64_t ntokens)
{
    const double off = V > 2 ? smoothing / (V - 2) : 0.0, on = 1.0 - smoothing;
    const float inv = 1.0f / (float)ntokens;
    double sum = 0;
    for (int r = 0; r < rows; r++) {
        const float *lp = logp + (size_t)r * V;
        float *g = dz + (size_t)r * V;
        if (labels[r] == pad) {
            memset(g, 0, (size_t)V * sizeof(float));
            continue;
        }
        for (int j = 0; j < V; j++) {
            double t = j == pad ? 0.0 : j == labels[r] ? on : off;
            if (t > 0)
                sum += t * (log(t) - lp[j]);
            g[j] = (float)((exp((double)lp[j]) - t) * inv);
        }
    }
    return sum;
}
