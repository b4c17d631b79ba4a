/* Layer norm (the reference's, SEMANTICS §3), forward and backward. */
#include <math.h>
#include <string.h>

#include "core/core.h"

/* The reference's LayerNorm (SEMANTICS §3): the unbiased std, eps added to the
 * std, y = a·(x − mean) / (std + eps) + b. The mean and the variance are
 * summed in vectorized float lanes added in double, and the variance is taken
 * around the mean (two passes), which keeps the error near float64's. */
/* Least elements per part, forward (whole rows) and backward (whole chunks;
 * a chunk that large is worth a thread of its own, taken in turn): a norm
 * reads each element two or three times with double sums, more work per
 * element than an elementwise loop, so fewer elements than theirs pay for
 * handing a part to a pool thread. */
#define NORM_GRAIN 16384

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
    pool_for((size_t)rows, (size_t)(NORM_GRAIN / d + 1), POOL_ANY, norm_rows, &j);
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
    if (per_chunk >= NORM_GRAIN)
        pool_chunks(NORM_CHUNKS, POOL_ANY, norm_bwd_chunks, &j);
    else
        pool_for(NORM_CHUNKS, NORM_GRAIN / per_chunk + 1, POOL_ANY, norm_bwd_chunks, &j);
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
