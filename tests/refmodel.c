/* A double-precision reference of the annotated Transformer's loss, written
 * from SEMANTICS.md independently of the library's kernels, for the finite-
 * difference test: its loss is accurate to ~1e-15, so central differences of
 * it give gradients to ~1e-9 against which the library's float32 backward
 * pass is checked. Plain loops, no BLAS, no speed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "refmodel.h"

#define P(name) ref_param(r, name)

static const double *ref_param(const ref_model *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->names[i], name))
            return r->data[i];
    return NULL;
}

/* y (rows, out) = x (rows, in) · Wᵀ + b */
static void linear(double *y, const double *x, const double *w, const double *b, int rows,
                   int in, int out)
{
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int i = 0; i < in; i++)
                s += x[(size_t)r * in + i] * w[(size_t)o * in + i];
            y[(size_t)r * out + o] = s;
        }
}

/* the reference's LayerNorm: unbiased std, eps added to the std */
static void norm(double *y, const double *x, const double *a, const double *b, int rows, int d)
{
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * d;
        double mean = 0, var = 0;
        for (int i = 0; i < d; i++)
            mean += xr[i];
        mean /= d;
        for (int i = 0; i < d; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        double sd = sqrt(var / (d - 1)) + 1e-6;
        for (int i = 0; i < d; i++)
            y[(size_t)r * d + i] = a[i] * (xr[i] - mean) / sd + b[i];
    }
}

/* out = x + o(attention(q(xq), k(xkv), v(xkv))) for one batch row;
 * visible(i, j) says whether query i may see key j. */
static void attention(double *out, const double *x, const double *xq, const double *xkv,
                      int Lq, int Lk, const ref_model *r, const char *prefix,
                      const int *key_ok, int causal)
{
    int d = r->d, h = r->heads, dk = d / h;
    char name[128];
    const double *w[4], *b[4];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.linears.%d.weight", prefix, i);
        w[i] = P(name);
        snprintf(name, sizeof name, "%s.linears.%d.bias", prefix, i);
        b[i] = P(name);
    }
    double *q = malloc(sizeof(double) * Lq * d), *k = malloc(sizeof(double) * Lk * d);
    double *v = malloc(sizeof(double) * Lk * d), *ctx = calloc((size_t)Lq * d, sizeof(double));
    double *s = malloc(sizeof(double) * Lk), *o = malloc(sizeof(double) * Lq * d);
    linear(q, xq, w[0], b[0], Lq, d, d);
    linear(k, xkv, w[1], b[1], Lk, d, d);
    linear(v, xkv, w[2], b[2], Lk, d, d);
    for (int hh = 0; hh < h; hh++)
        for (int i = 0; i < Lq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < Lk; j++) {
                double dot = 0;
                for (int e = 0; e < dk; e++)
                    dot += q[(size_t)i * d + hh * dk + e] * k[(size_t)j * d + hh * dk + e];
                int ok = key_ok[j] && (!causal || j <= i);
                s[j] = ok ? dot / sqrt((double)dk) : -1e9;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j < Lk; j++)
                sum += (s[j] = exp(s[j] - mx));
            for (int j = 0; j < Lk; j++)
                for (int e = 0; e < dk; e++)
                    ctx[(size_t)i * d + hh * dk + e] += s[j] / sum * v[(size_t)j * d + hh * dk + e];
        }
    linear(o, ctx, w[3], b[3], Lq, d, d);
    for (int i = 0; i < Lq * d; i++)
        out[i] = x[i] + o[i];
    free(q), free(k), free(v), free(ctx), free(s), free(o);
}

static void feed_forward(double *out, const double *x, const double *y, int L,
                         const ref_model *r, const char *prefix)
{
    char n1[128], n2[128], n3[128], n4[128];
    snprintf(n1, sizeof n1, "%s.feed_forward.w_1.weight", prefix);
    snprintf(n2, sizeof n2, "%s.feed_forward.w_1.bias", prefix);
    snprintf(n3, sizeof n3, "%s.feed_forward.w_2.weight", prefix);
    snprintf(n4, sizeof n4, "%s.feed_forward.w_2.bias", prefix);
    double *hdn = malloc(sizeof(double) * L * r->d_ff), *o = malloc(sizeof(double) * L * r->d);
    linear(hdn, y, P(n1), P(n2), L, r->d, r->d_ff);
    for (int i = 0; i < L * r->d_ff; i++)
        hdn[i] = hdn[i] > 0 ? hdn[i] : 0;
    linear(o, hdn, P(n3), P(n4), L, r->d_ff, r->d);
    for (int i = 0; i < L * r->d; i++)
        out[i] = x[i] + o[i];
    free(hdn), free(o);
}

static void sublayer_norm(double *y, const double *x, int L, const ref_model *r,
                          const char *prefix, int sub)
{
    char a[128], b[128];
    snprintf(a, sizeof a, "%s.sublayer.%d.norm.a_2", prefix, sub);
    snprintf(b, sizeof b, "%s.sublayer.%d.norm.b_2", prefix, sub);
    norm(y, x, P(a), P(b), L, r->d);
}

static void embed(double *x, const int *ids, int L, const double *lut, const double *pe, int d)
{
    for (int t = 0; t < L; t++)
        for (int i = 0; i < d; i++)
            x[(size_t)t * d + i] = lut[(size_t)ids[t] * d + i] * sqrt((double)d) +
                                   pe[(size_t)t * d + i];
}

/* loss_sum of one batch row: label-smoothed KL of log_softmax(generator). */
static double row_loss(const ref_model *r, const int *src, const int *tgt_full, int S, int Tf,
                       int pad, double smoothing)
{
    int d = r->d, T = Tf - 1, L = r->layers;
    size_t big = (size_t)(S > T ? S : T) * d;
    double *x = malloc(sizeof(double) * big), *y = malloc(sizeof(double) * big);
    double *mem = malloc(sizeof(double) * S * d), *t = malloc(sizeof(double) * big);
    int *src_ok = malloc(sizeof(int) * S), *tgt_ok = malloc(sizeof(int) * T);
    for (int j = 0; j < S; j++)
        src_ok[j] = src[j] != pad;
    for (int j = 0; j < T; j++)
        tgt_ok[j] = tgt_full[j] != pad;
    char prefix[64];

    embed(x, src, S, P("src_embed.0.lut.weight"), P("src_embed.1.pe"), d);
    for (int l = 0; l < L; l++) {
        snprintf(prefix, sizeof prefix, "encoder.layers.%d", l);
        char sa[96];
        snprintf(sa, sizeof sa, "%s.self_attn", prefix);
        sublayer_norm(y, x, S, r, prefix, 0);
        attention(t, x, y, y, S, S, r, sa, src_ok, 0);
        sublayer_norm(y, t, S, r, prefix, 1);
        feed_forward(x, t, y, S, r, prefix);
    }
    norm(mem, x, P("encoder.norm.a_2"), P("encoder.norm.b_2"), S, d);

    embed(x, tgt_full, T, P("tgt_embed.0.lut.weight"), P("tgt_embed.1.pe"), d);
    for (int l = 0; l < L; l++) {
        snprintf(prefix, sizeof prefix, "decoder.layers.%d", l);
        char sa[96], ca[96];
        snprintf(sa, sizeof sa, "%s.self_attn", prefix);
        snprintf(ca, sizeof ca, "%s.src_attn", prefix);
        sublayer_norm(y, x, T, r, prefix, 0);
        attention(t, x, y, y, T, T, r, sa, tgt_ok, 1);
        sublayer_norm(y, t, T, r, prefix, 1);
        attention(x, t, y, mem, T, S, r, ca, src_ok, 0);
        sublayer_norm(y, x, T, r, prefix, 2);
        feed_forward(t, x, y, T, r, prefix);
        memcpy(x, t, sizeof(double) * T * d);
    }
    norm(y, x, P("decoder.norm.a_2"), P("decoder.norm.b_2"), T, d);
    int V = r->tgt_vocab;
    double *z = malloc(sizeof(double) * V), loss = 0;
    for (int i = 0; i < T; i++) {
        int label = tgt_full[i + 1];
        if (label == pad)
            continue;
        linear(z, y + (size_t)i * d, P("generator.proj.weight"), P("generator.proj.bias"), 1, d,
               V);
        double mx = z[0], sum = 0;
        for (int j = 1; j < V; j++)
            mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < V; j++)
            sum += exp(z[j] - mx);
        for (int j = 0; j < V; j++) {
            double logp = z[j] - mx - log(sum);
            double tj = j == pad ? 0 : j == label ? 1 - smoothing : smoothing / (V - 2);
            if (tj > 0)
                loss += tj * (log(tj) - logp);
        }
    }
    free(x), free(y), free(mem), free(t), free(src_ok), free(tgt_ok), free(z);
    return loss;
}

double ref_loss(const ref_model *r, const int *src, const int *tgt_full, int B, int S, int Tf,
                int pad, double smoothing)
{
    double sum = 0;
    long ntokens = 0;
    for (int b = 0; b < B; b++) {
        sum += row_loss(r, src + (size_t)b * S, tgt_full + (size_t)b * Tf, S, Tf, pad,
                        smoothing);
        for (int i = 1; i < Tf; i++)
            ntokens += tgt_full[(size_t)b * Tf + i] != pad;
    }
    return sum / (double)ntokens;
}
