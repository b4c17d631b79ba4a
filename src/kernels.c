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
 * std, y = a·(x − mean) / (std + eps) + b. Sums in double: the golden files
 * measure the float32 error against float64, so closer to exact is better. */
void norm_forward(norm_a o, const float *x, norm p, int rows, int d)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *y = o.y + (size_t)r * d;
        double sum = 0, sq = 0;
        for (int i = 0; i < d; i++)
            sum += xr[i];
        float mean = (float)(sum / d);
        for (int i = 0; i < d; i++) {
            double c = (double)xr[i] - mean;
            sq += c * c;
        }
        float denom = (float)sqrt(sq / (d - 1)) + AT_LN_EPS;
        for (int i = 0; i < d; i++)
            y[i] = p.a[i] * (xr[i] - mean) / denom + p.b[i];
        o.mean[r] = mean;
        o.rstd[r] = 1.0f / denom;
    }
}

/* (rows, in) -> (rows, out): y = x·Wᵀ + b, W stored (out, in) as nn.Linear.
 * A single row goes through sgemv, which OpenBLAS runs far faster than an
 * sgemm with M = 1. */
static void gemm_accumulate(float *y, const float *x, const float *w, int rows, int in,
                            int out)
{
    if (rows == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 1.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in,
                    w, in, 1.0f, y, out);
}

void linear_forward(float *y, const float *x, linear p, int rows, int in, int out)
{
    for (int r = 0; r < rows; r++)
        memcpy(y + (size_t)r * out, p.b, (size_t)out * sizeof(float));
    gemm_accumulate(y, x, p.w, rows, in, out);
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
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, ldx, p.w,
                    in, 1.0f, y, ldy);
}

/* y = resid + x·Wᵀ + b: the residual add of a sublayer folded into the GEMM's
 * accumulator, saving a pass over memory. */
void linear_residual_forward(float *y, const float *x, linear p, const float *resid, int rows,
                             int in, int out)
{
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * out;
        const float *xr = resid + (size_t)r * out;
        for (int i = 0; i < out; i++)
            yr[i] = xr[i] + p.b[i];
    }
    gemm_accumulate(y, x, p.w, rows, in, out);
}

/* Inverted dropout as torch applies it: x·(1/(1−p)) where kept, 0 where
 * dropped. first is the index of x[0] within its site, so a site can be
 * processed in pieces. */
void dropout_forward_at(float *x, size_t n, uint64_t key, float p, size_t first)
{
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++)
        x[i] = drop_keep(key, first + i, p) ? x[i] * scale : 0.0f;
}

void dropout_forward(float *x, size_t n, uint64_t key, float p)
{
    dropout_forward_at(x, n, key, p, 0);
}

void add_inplace(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
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
void attention_forward(attn_a a, const attn_call *c)
{
    const int d = c->d, h = c->h, Lq = c->Lq, Lk = c->Lk, dk = d / h;
    const float scale = (float)sqrt((double)dk);
    const size_t plane = (size_t)Lq * Lk;
    for (int b = 0; b < c->B; b++)
        for (int j = 0; j < h; j++) {
            const float *q = a.q + (size_t)b * Lq * a.ldq + (size_t)j * dk;
            const float *k = a.k + (size_t)b * Lk * a.ldkv + (size_t)j * dk;
            const float *v = a.v + (size_t)b * Lk * a.ldkv + (size_t)j * dk;
            float *p = a.p + ((size_t)b * h + j) * plane;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Lq, Lk, dk, 1.0f, q, a.ldq, k,
                        a.ldkv, 0.0f, p, Lk);
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
                memcpy(c->scratch, p, plane * sizeof(float));
                dropout_forward_at(c->scratch, plane, c->drop_key, c->drop_p,
                                   ((size_t)b * h + j) * plane);
                pv = c->scratch;
            }
            float *ctx = a.ctx + (size_t)b * Lq * d + (size_t)j * dk;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Lq, dk, Lk, 1.0f, pv, Lk, v,
                        a.ldkv, 0.0f, ctx, d);
        }
}

void relu_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* log_softmax over the last dim of (rows, n), in place. */
void log_softmax_rows(float *x, int rows, int n)
{
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * n;
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
