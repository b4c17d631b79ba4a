/* Softmax and log-softmax over rows on a vectorized exp, and the loss:
 * the reference's label smoothing + KL divergence with its gradient
 * (loss_grad), the backward of log-softmax and the loss in one pass. */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "core/core.h"

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

/* log_softmax over the last dim of (rows, n), in place. Parts of whole rows,
 * at least LOG_SOFTMAX_GRAIN elements each: every element costs an exp and
 * three passes, so fewer elements than an elementwise loop's pay for
 * handing a part to a pool thread. */
#define LOG_SOFTMAX_GRAIN 8192
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
    pool_for((size_t)rows, (size_t)(LOG_SOFTMAX_GRAIN / n + 1), POOL_ANY, log_softmax_part, &j);
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
/* Least elements of logp per part (whole chunks; a chunk that large is worth
 * a thread of its own, taken in turn): the loss reads each once and computes
 * one exp for it, with the gradient, in one pass. */
#define LOSS_GRAIN 65536

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
    if (per_chunk >= LOSS_GRAIN)
        pool_chunks(NORM_CHUNKS, POOL_ANY, loss_chunks, &j);
    else
        pool_for(NORM_CHUNKS, LOSS_GRAIN / per_chunk + 1, POOL_ANY, loss_chunks, &j);
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
