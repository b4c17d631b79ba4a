/* The backward pass: one kernel per forward kernel, then the walk back
 * through the layers. Kernels add into parameter gradients (zeroing is the
 * caller's step) and say in their comment what they do to the input
 * gradient. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/core.h"

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
                          pool_fn after, void *ctx)
{
    colsum_job j = {db, dy, rows, out};
    if (!gemm_sum_tn(out, in, rows, dy, out, x, in, dw, in, db))
        gemm_rows(true, false, out, in, rows, dy, out, x, in, 0.0f, dw, in, NULL, colsum_after,
                  &j);
    if (dx)
        gemm_rows(false, false, rows, in, out, dy, out, w, in, accumulate ? 1.0f : 0.0f, dx, in,
                  NULL, after, ctx);
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int rows, int in, int out, bool accumulate)
{
    linear_backward_then(dx, dw, db, dy, x, w, rows, in, out, accumulate, NULL, NULL);
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
    if (per_chunk >= 16384)
        pool_chunks(NORM_CHUNKS, POOL_ANY, norm_bwd_chunks, &j);
    else
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
                     const float *w, int rows, int d_ff, int d, float p)
{
    relu_rows_job j = {{dh, h, p > 0 ? 1.0f / (1.0f - p) : 1.0f}, (size_t)d_ff};
    linear_backward_then(dh, dw, db, dy, h, w, rows, d_ff, d, false, relu_bwd_rows, &j);
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
    blas_enter();
    pool_for((size_t)c->B * c->h, work > 32768 ? 1 : 32768 / work, c->scratch_parts,
             attention_bwd_heads, &j);
    blas_leave();
}

/* log_softmax then the reference's LabelSmoothing + KLDivLoss(sum) / ntokens
 * (SEMANTICS §11): t = ε/(V−2) everywhere, 1−ε at the label, 0 in the pad
 * column and in rows whose label is pad; loss_sum = Σ_{t>0} t·(ln t − logp),
 * returned; dz = (softmax·Σt − t)/ntokens, Σt being 1 on rows that count.
 * One pass per row over the pool, while the row is in cache. A row's loss
 * is Σ_{t>0} t·ln t − ε/(V−2)·Σ_{j ≠ pad, label} logp_j − (1−ε)·logp_label,
 * kept per row and summed in row order; dz is
 * exp(logp) (exp_shift_sum) − t, over ntokens. With db, also db = Σ_rows dz
 * (the generator's bias gradient): the rows fall into NORM_CHUNKS fixed
 * chunks, each summed into its row of part (NORM_CHUNKS, V), the chunks
 * added in order, so that nothing depends on the thread count. dz NULL:
 * the loss alone (evaluation). row_loss holds rows doubles. */
typedef struct loss_job {
    float *dz, *part;
    double *row_loss;
    const float *logp;
    const int32_t *labels;
    int rows, V;
    int32_t pad;
    double off, on, t_log_t;
    float inv;
} loss_job;

static double sum_double(const float *x, int n)
{
    double acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int u = 0; u < 8; u++)
            acc[u] += x[i + u];
    for (; i < n; i++)
        acc[0] += x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void loss_row(const loss_job *j, int r, float *part)
{
    const int V = j->V;
    const int32_t label = j->labels[r];
    const float *restrict lp = j->logp + (size_t)r * V;
    float *restrict g = j->dz ? j->dz + (size_t)r * V : NULL;
    if (label == j->pad) {
        j->row_loss[r] = 0;
        if (g)
            memset(g, 0, (size_t)V * sizeof(float));
        return;
    }
    double rest = sum_double(lp, V) - lp[label] - lp[j->pad];
    j->row_loss[r] = j->t_log_t - j->off * rest - j->on * lp[label];
    if (!g)
        return;
    exp_shift_sum(g, lp, 0.0f, V);
    float e_label = g[label], e_pad = g[j->pad];
    const float off = (float)j->off, inv = j->inv;
    for (int i = 0; i < V; i++)
        g[i] = (g[i] - off) * inv;
    g[label] = (float)((e_label - j->on) * inv);
    g[j->pad] = e_pad * inv;
    if (part)
        for (int i = 0; i < V; i++)
            part[i] += g[i];
}

static void loss_chunks(void *ctx, size_t c0, size_t c1, int unused)
{
    (void)unused;
    const loss_job *j = ctx;
    for (size_t c = c0; c < c1; c++) {
        float *part = j->part ? j->part + c * (size_t)j->V : NULL;
        if (part)
            memset(part, 0, (size_t)j->V * sizeof(float));
        int r0 = (int)((size_t)j->rows * c / NORM_CHUNKS);
        int r1 = (int)((size_t)j->rows * (c + 1) / NORM_CHUNKS);
        for (int r = r0; r < r1; r++)
            loss_row(j, r, part);
    }
}

double loss_grad(float *dz, float *db, const float *logp, const int32_t *labels, int rows,
                 int V, int32_t pad, double smoothing, int64_t ntokens, double *row_loss,
                 float *part)
{
    const double off = V > 2 ? smoothing / (V - 2) : 0.0, on = 1.0 - smoothing;
    double t_log_t = (off > 0 ? (V - 2) * off * log(off) : 0.0) + (on > 0 ? on * log(on) : 0.0);
    loss_job j = {dz, db ? part : NULL, row_loss, logp, labels, rows, V, pad, off, on, t_log_t,
                  1.0f / (float)ntokens};
    size_t per_chunk = (size_t)rows * V / NORM_CHUNKS + 1;
    if (per_chunk >= 65536)
        pool_chunks(NORM_CHUNKS, POOL_ANY, loss_chunks, &j);
    else
        pool_for(NORM_CHUNKS, 65536 / per_chunk + 1, POOL_ANY, loss_chunks, &j);
    double sum = 0;
    for (int r = 0; r < rows; r++)
        sum += row_loss[r];
    if (db)
        for (int i = 0; i < V; i++) {
            float s = 0;
            for (int c = 0; c < NORM_CHUNKS; c++)
                s += part[(size_t)c * V + i];
            db[i] = s;
        }
    return sum;
}
