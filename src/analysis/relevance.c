/* Attribution on top of the gradients with respect to attention
 * (at_attention_gradients): integrated gradients on one layer's attention
 * (Hao et al. 2021) and Chefer et al. 2021's relevance propagation for
 * encoder–decoder models. Both only call the public passes; integrated
 * gradients scales a layer's attention through an override. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "at_analysis.h"
#include "model/internal.h"

#define IG_MAX_STEPS 10000

/* A view's tensor, contiguous, into out (shape[0]·…·shape[3] floats). */
static void copy_view(float *out, const at_view *v)
{
    size_t i = 0;
    for (int64_t a = 0; a < v->shape[0]; a++)
        for (int64_t b = 0; b < v->shape[1]; b++)
            for (int64_t c = 0; c < v->shape[2]; c++)
                for (int64_t d = 0; d < v->shape[3]; d++)
                    out[i++] = v->data[a * v->stride[0] + b * v->stride[1] + c * v->stride[2] +
                                       d * v->stride[3]];
}

static size_t numel(const at_view *v)
{
    return (size_t)(v->shape[0] * v->shape[1] * v->shape[2] * v->shape[3]);
}

/* The decoder's input tgt[:, :-1], as the loss passes read it. */
static int32_t *decoder_input(const int32_t *tgt, int B, int Tf)
{
    int32_t *in = malloc((size_t)B * (Tf - 1) * sizeof *in);
    for (int b = 0; in && b < B; b++)
        memcpy(in + (size_t)b * (Tf - 1), tgt + (size_t)b * Tf, (size_t)(Tf - 1) * sizeof *in);
    return in;
}

/* ---- integrated gradients ---- */

typedef struct ig_run {
    at_model *m;
    const int32_t *src, *tgt;
    int B, S, Tf, pos;
    int32_t pad;
    at_attn_kind kind;
    int layer;
    const float *a;           /* the layer's attention, (B, h, Lq, Lk) */
    float *scaled;            /* α·a */
    size_t n;
} ig_run;

/* F(α·A), and with grad ∂F/∂A there added into grad. */
static at_status ig_point(const ig_run *r, double alpha, double *f, double *grad)
{
    for (size_t i = 0; i < r->n; i++)
        r->scaled[i] = (float)(alpha * r->a[i]);
    int Lq = r->kind == AT_ATTN_ENC_SELF ? r->S : r->Tf - 1;
    int Lk = r->kind == AT_ATTN_DEC_SELF ? r->Tf - 1 : r->S;
    at_status s = at_attention_override(r->m, r->kind, r->layer, AT_ALL, r->scaled, r->B, Lq,
                                        Lk);
    if (s == AT_OK)
        s = at_attention_gradients(r->m, r->src, r->tgt, r->B, r->S, r->Tf, r->pad, r->pos, f);
    at_view g;
    if (s == AT_OK && grad && (s = at_get_attention_grad(r->m, r->kind, r->layer, &g)) == AT_OK)
        for (size_t i = 0; i < r->n; i++)
            grad[i] += g.data[i];
    return s;
}

/* Riemann sum over α = k/m, k = 1..m (Hao et al. 2021, eq. 3), then the
 * completeness check against F(A) − F(0). */
static at_status ig_sum(const ig_run *r, int steps, float *out, double *completeness)
{
    double *sum = calloc(r->n, sizeof *sum), f0 = 0, f1 = 0, f;
    if (!sum)
        return set_error(r->m, AT_E_NOMEM, "at_integrated_gradients: out of memory");
    at_status s = ig_point(r, 0.0, &f0, NULL);
    for (int k = 1; s == AT_OK && k <= steps; k++)
        s = ig_point(r, (double)k / steps, k == steps ? &f1 : &f, sum);
    double total = 0;
    for (size_t i = 0; s == AT_OK && i < r->n; i++) {
        out[i] = (float)(r->a[i] * sum[i] / steps);
        total += out[i];
    }
    if (s == AT_OK && completeness)
        *completeness = fabs(total - (f1 - f0));
    free(sum);
    return s;
}

static at_status integrated_gradients(at_model *m, const int32_t *src, const int32_t *tgt,
                                      int B, int S, int Tf, int32_t pad, int pos,
                                      at_attn_kind kind, int layer, int steps, float *out,
                                      double *completeness)
{
    const char *who = "at_integrated_gradients";
    if (!src || !tgt || !out)
        return set_error(m, AT_E_ARG, "%s: src, tgt and out must not be NULL", who);
    if (kind != AT_ATTN_ENC_SELF && kind != AT_ATTN_DEC_SELF && kind != AT_ATTN_CROSS)
        return set_error(m, AT_E_ARG, "%s: unknown kind %d", who, (int)kind);
    if (layer < 0 || layer >= m->dm.layers)
        return set_error(m, AT_E_ARG, "%s: layer %d is outside [0, %d)", who, layer,
                         m->dm.layers);
    if (steps < 1 || steps > IG_MAX_STEPS)
        return set_error(m, AT_E_ARG, "%s: %d steps; between 1 and %d", who, steps,
                         IG_MAX_STEPS);
    if (Tf < 2)
        return set_error(m, AT_E_ARG, "%s: tgt_len %d: the target needs at least 2 tokens",
                         who, Tf);
    at_status s = check_sizes(m, B, S, Tf - 1, who);   /* before copying the target */
    if (s != AT_OK)
        return s;
    int32_t *in = decoder_input(tgt, B, Tf);
    if (!in)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    /* the layer's attention as the handle has it now */
    s = at_forward(m, src, in, B, S, Tf - 1, pad);
    free(in);
    at_view v;
    if (s == AT_OK)
        s = at_get_attention(m, kind, layer, &v);
    if (s != AT_OK)
        return s;
    size_t n = numel(&v);
    float *a = malloc(n * sizeof *a), *scaled = malloc(n * sizeof *scaled);
    if (!a || !scaled) {
        free(a);
        free(scaled);
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    }
    copy_view(a, &v);
    /* the handle's own override of the layer steps aside and comes back */
    interv *iv = m->iv;
    override_blk saved = {0};
    if (iv) {
        saved = iv->ov[blk_index(iv, kind, layer)];
        iv->ov[blk_index(iv, kind, layer)] = (override_blk){0};
    }
    ig_run r = {m, src, tgt, B, S, Tf, pos, pad, kind, layer, a, scaled, n};
    s = ig_sum(&r, steps, out, completeness);
    at_attention_override(m, kind, layer, AT_ALL, NULL, 0, 0, 0);
    if (saved.p)
        m->iv->ov[blk_index(m->iv, kind, layer)] = saved;
    free(a);
    free(scaled);
    return s;
}

at_status at_integrated_gradients(at_model *m, const int32_t *src, const int32_t *tgt,
                                  int batch, int src_len, int tgt_len, int32_t pad,
                                  int target_pos, at_attn_kind kind, int layer, int steps,
                                  float *out, double *completeness)
{
    GUARDED(m, "at_integrated_gradients",
            integrated_gradients(m, src, tgt, batch, src_len, tgt_len, pad, target_pos, kind,
                                 layer, steps, out, completeness));
}

/* ---- Chefer et al. 2021 ---- */

/* Ā = mean over heads of (∇A ⊙ A)⁺ for batch row b, (Lq, Lk) (their eq. 5). */
static void head_mean(double *out, const at_view *a, const at_view *g, int b)
{
    int64_t h = a->shape[1], lq = a->shape[2], lk = a->shape[3];
    for (int64_t i = 0; i < lq * lk; i++)
        out[i] = 0;
    for (int64_t j = 0; j < h; j++)
        for (int64_t i = 0; i < lq; i++)
            for (int64_t k = 0; k < lk; k++) {
                double x = a->data[b * a->stride[0] + j * a->stride[1] + i * a->stride[2] +
                                   k * a->stride[3]] *
                           g->data[((b * h + j) * lq + i) * lk + k];
                out[i * lk + k] += x > 0 ? x / (double)h : 0.0;
            }
}

/* R += Ā·R for Ā (n, n) and R (n, c) (their eqs. 6–9). The products are
 * dgemm's, in double as the rest of the propagation: the triple loops they
 * replace (column-strided in R) took 15.6 s a token at 512 tokens, 6 x 8
 * heads, against about 0.4 s now. */
static void accumulate(double *r, const double *abar, int n, int c, double *tmp)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c, n, 1.0, abar, n, r, c, 0.0,
                tmp, c);
    for (int i = 0; i < n * c; i++)
        r[i] += tmp[i];
}

/* R̄ = Ŝ + I, Ŝ = R − I with rows normalised (their eq. 10). */
static void normalised(double *out, const double *r, int n)
{
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int j = 0; j < n; j++)
            sum += r[i * n + j] - (i == j);
        for (int j = 0; j < n; j++) {
            double s = r[i * n + j] - (i == j);
            out[i * n + j] = (sum != 0 ? s / sum : 0.0) + (i == j);
        }
    }
}

typedef struct chefer_buf {
    double *rss, *rqq, *rqs, *abar, *tmp, *nss, *nqq, *mid;
} chefer_buf;

/* One batch row's R^ss, R^qq, R^qs from the views of the last pass. */
static at_status chefer_row(at_model *m, int b, int S, int T, const chefer_buf *w)
{
    int L = m->dm.layers;
    for (int i = 0; i < S * S; i++)
        w->rss[i] = i / S == i % S;
    for (int i = 0; i < T * T; i++)
        w->rqq[i] = i / T == i % T;
    memset(w->rqs, 0, (size_t)T * S * sizeof *w->rqs);
    at_view a, g;
    at_status s = AT_OK;
    for (int l = 0; s == AT_OK && l < L; l++)
        if ((s = at_get_attention(m, AT_ATTN_ENC_SELF, l, &a)) == AT_OK &&
            (s = at_get_attention_grad(m, AT_ATTN_ENC_SELF, l, &g)) == AT_OK) {
            head_mean(w->abar, &a, &g, b);
            accumulate(w->rss, w->abar, S, S, w->tmp);
        }
    if (s == AT_OK)
        normalised(w->nss, w->rss, S);
    for (int l = 0; s == AT_OK && l < L; l++) {
        if ((s = at_get_attention(m, AT_ATTN_DEC_SELF, l, &a)) != AT_OK ||
            (s = at_get_attention_grad(m, AT_ATTN_DEC_SELF, l, &g)) != AT_OK)
            break;
        head_mean(w->abar, &a, &g, b);
        accumulate(w->rqs, w->abar, T, S, w->tmp);
        accumulate(w->rqq, w->abar, T, T, w->tmp);
        if ((s = at_get_attention(m, AT_ATTN_CROSS, l, &a)) != AT_OK ||
            (s = at_get_attention_grad(m, AT_ATTN_CROSS, l, &g)) != AT_OK)
            break;
        /* R^qs += (R̄^qq)ᵀ · Ā · R̄^ss (their eq. 11) */
        head_mean(w->abar, &a, &g, b);
        normalised(w->nqq, w->rqq, T);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, S, S, 1.0, w->abar, S,
                    w->nss, S, 0.0, w->mid, S);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, S, T, 1.0, w->nqq, T, w->mid,
                    S, 1.0, w->rqs, S);
    }
    return s;
}

static void put(float *out, const double *x, size_t n)
{
    for (size_t i = 0; out && i < n; i++)
        out[i] = (float)x[i];
}

static at_status relevance_chefer(at_model *m, const int32_t *src, const int32_t *tgt, int B,
                                  int S, int Tf, int32_t pad, int pos, float *rss, float *rqq,
                                  float *rqs)
{
    const char *who = "at_relevance_chefer";
    if (pos < 0)
        return set_error(m, AT_E_RANGE, "%s: target position %d: Chefer et al.'s relevance "
                         "is of one output token (0 .. T - 1)", who, pos);
    at_status s = at_attention_gradients(m, src, tgt, B, S, Tf, pad, pos, NULL);
    if (s != AT_OK)
        return s;
    int T = Tf - 1, n = S > T ? S : T;
    chefer_buf w;
    double *mem = malloc(((size_t)S * S * 2 + (size_t)T * T * 2 + (size_t)T * S * 2 +
                          (size_t)n * n * 2) * sizeof *mem);
    if (!mem)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    w.rss = mem, w.nss = w.rss + S * S, w.rqq = w.nss + S * S, w.nqq = w.rqq + T * T;
    w.rqs = w.nqq + T * T, w.mid = w.rqs + T * S, w.abar = w.mid + T * S;
    w.tmp = w.abar + n * n;
    for (int b = 0; s == AT_OK && b < B; b++) {
        s = chefer_row(m, b, S, T, &w);
        put(rss ? rss + (size_t)b * S * S : NULL, w.rss, (size_t)S * S);
        put(rqq ? rqq + (size_t)b * T * T : NULL, w.rqq, (size_t)T * T);
        put(rqs ? rqs + (size_t)b * T * S : NULL, w.rqs, (size_t)T * S);
    }
    free(mem);
    return s;
}

at_status at_relevance_chefer(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                              int src_len, int tgt_len, int32_t pad, int target_pos, float *rss,
                              float *rqq, float *rqs)
{
    GUARDED(m, "at_relevance_chefer", relevance_chefer(m, src, tgt, batch, src_len, tgt_len,
                                                       pad, target_pos, rss, rqq, rqs));
}
