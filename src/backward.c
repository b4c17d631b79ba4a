/* The backward pass: one kernel per forward kernel, then the walk back
 * through the layers. Kernels add into parameter gradients (zeroing is the
 * caller's step) and say in their comment what they do to the input
 * gradient. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "internal.h"

/* y = x·Wᵀ + b  →  dW += dyᵀ·x, db += Σ_rows dy, dx = dy·W (or += with
 * accumulate; dx may be NULL). */
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int rows, int in, int out, bool accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, dy, out, x, in,
                1.0f, dw, in);
    for (int r = 0; r < rows; r++) {
        const float *dr = dy + (size_t)r * out;
        for (int i = 0; i < out; i++)
            db[i] += dr[i];
    }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dy, out, w,
                    in, accumulate ? 1.0f : 0.0f, dx, in);
}

/* y = a·c/(σ+ε) + b with c = x − mean, σ = √(Σc²/(d−1))  →  dx += …,
 * da += Σ dy·c/(σ+ε), db += Σ dy. With g = a·dy/(σ+ε) + dσ·c/((d−1)σ) and
 * dσ = −Σ a·dy·c/(σ+ε)², dx = g − mean(g) (the mean's own gradient). */
void norm_backward(float *dx, norm dp, const float *dy, const float *x, norm_a o, norm p,
                   int rows, int d)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d, *dyr = dy + (size_t)r * d;
        float *dxr = dx + (size_t)r * d;
        double mean = o.mean[r], rstd = o.rstd[r];
        double sigma = 1.0 / rstd - AT_LN_EPS;
        double dsigma = 0;
        for (int i = 0; i < d; i++) {
            double c = xr[i] - mean;
            dsigma -= (double)p.a[i] * dyr[i] * c * rstd * rstd;
            dp.a[i] += (float)(dyr[i] * c * rstd);
            dp.b[i] += dyr[i];
        }
        double k = sigma > 0 ? dsigma / ((d - 1) * sigma) : 0.0;
        double gsum = 0;
        for (int i = 0; i < d; i++)
            gsum += p.a[i] * dyr[i] * rstd + k * (xr[i] - mean);
        double gmean = gsum / d;
        for (int i = 0; i < d; i++)
            dxr[i] += (float)(p.a[i] * dyr[i] * rstd + k * (xr[i] - mean) - gmean);
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
void relu_dropout_backward(float *dh, const float *h, size_t n, float p)
{
    const float scale = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
    for (size_t i = 0; i < n; i++)
        dh[i] = h[i] > 0.0f ? dh[i] * scale : 0.0f;
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
void attention_backward(attn_a g, const float *dctx, attn_a a, const attn_call *c, float *s1,
                        float *s2)
{
    const int d = c->d, h = c->h, Lq = c->Lq, Lk = c->Lk, dk = d / h;
    const float scale = (float)sqrt((double)dk);
    const size_t plane = (size_t)Lq * Lk;
    for (int b = 0; b < c->B; b++)
        for (int j = 0; j < h; j++) {
            size_t qo = (size_t)b * Lq * a.ldq + (size_t)j * dk;
            size_t ko = (size_t)b * Lk * a.ldkv + (size_t)j * dk;
            const float *p = a.p + ((size_t)b * h + j) * plane;
            const float *dc = dctx + (size_t)b * Lq * d + (size_t)j * dk;
            const float *pd = p;
            if (c->drop_p > 0) {
                memcpy(s1, p, plane * sizeof(float));
                dropout_forward_at(s1, plane, c->drop_key, c->drop_p,
                                   ((size_t)b * h + j) * plane);
                pd = s1;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Lk, dk, Lq, 1.0f, pd, Lk, dc,
                        d, 0.0f, g.v + ko, a.ldkv);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Lq, Lk, dk, 1.0f, dc, d,
                        a.v + ko, a.ldkv, 0.0f, s2, Lk);
            if (c->drop_p > 0)
                dropout_forward_at(s2, plane, c->drop_key, c->drop_p,
                                   ((size_t)b * h + j) * plane);
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Lq, dk, Lk, 1.0f, s2, Lk,
                        a.k + ko, a.ldkv, 0.0f, g.q + qo, a.ldq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Lk, dk, Lq, 1.0f, s2, Lk,
                        a.q + qo, a.ldq, 0.0f, g.k + ko, a.ldkv);
        }
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
