/* Activation patching (one head's output taken from a corrupted run) and
 * counterfactual attention (Jain & Wallace 2019: one head's attention
 * permuted or made uniform). Both only call the public passes: patching
 * records and writes the head_out site through taps, the counterfactuals
 * replace a head's attention through at_attention_override. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "model/internal.h"

/* The decoder's input tgt[:, :-1], as the loss passes read it. */
static int32_t *decoder_input(const int32_t *tgt, int B, int Tf)
{
    int32_t *in = malloc((size_t)B * (Tf - 1) * sizeof *in);
    for (int b = 0; in && b < B; b++)
        memcpy(in + (size_t)b * (Tf - 1), tgt + (size_t)b * Tf, (size_t)(Tf - 1) * sizeof *in);
    return in;
}

static int query_len(at_attn_kind k, int S, int T)
{
    return k == AT_ATTN_ENC_SELF ? S : T;
}

static int key_len(at_attn_kind k, int S, int T)
{
    return k == AT_ATTN_DEC_SELF ? T : S;
}

/* ---- activation patching ---- */

/* The chosen value of the last pass, measured with the clean target's
 * labels: the mean NLL over non-pad labels (pos −1), or Σ_b log p of the
 * label at pos over rows whose label there is not pad. */
static at_status value_of(at_model *m, const int32_t *tgt, int B, int Tf, int32_t pad, int pos,
                          double *out)
{
    at_view v;
    at_status s = at_get_output(m, AT_OUT_LOGPROBS, 0, &v);
    if (s != AT_OK)
        return s;
    double sum = 0;
    int64_t n = 0;
    for (int b = 0; b < B; b++)
        for (int t = pos < 0 ? 0 : pos; t < (pos < 0 ? Tf - 1 : pos + 1); t++) {
            int32_t y = tgt[(size_t)b * Tf + t + 1];
            if (y == pad)
                continue;
            sum += v.data[b * v.stride[0] + t * v.stride[1] + y * v.stride[2]];
            n++;
        }
    *out = pos < 0 ? -sum / (double)n : sum;
    return AT_OK;
}

/* What the taps share: one (B, h, Lq, d_k) record per block, and the head
 * that the patching tap writes. */
typedef struct patch_run {
    float **rec;
    int layers, head;
} patch_run;

/* The element offset of (b, j, i, c) in a tap event's (strided) view. */
static int64_t at4(const at_view *v, int64_t b, int64_t j, int64_t i, int64_t c)
{
    return b * v->stride[0] + j * v->stride[1] + i * v->stride[2] + c * v->stride[3];
}

/* The corrupted pass: keep every block's head_out. */
static at_status record_tap(void *user, const at_tap_event *ev)
{
    const patch_run *r = user;
    const at_view *v = &ev->view;
    float *dst = r->rec[ev->kind * r->layers + ev->layer];
    size_t n = 0;
    for (int64_t b = 0; b < v->shape[0]; b++)
        for (int64_t j = 0; j < v->shape[1]; j++)
            for (int64_t i = 0; i < v->shape[2]; i++)
                for (int64_t c = 0; c < v->shape[3]; c++)
                    dst[n++] = ev->data[at4(v, b, j, i, c)];
    return AT_OK;
}

/* A clean pass: head r->head of this block from the record. */
static at_status write_tap(void *user, const at_tap_event *ev)
{
    const patch_run *r = user;
    const at_view *v = &ev->view;
    const float *src = r->rec[ev->kind * r->layers + ev->layer];
    int64_t h = v->shape[1], L = v->shape[2], dk = v->shape[3], j = r->head;
    for (int64_t b = 0; b < v->shape[0]; b++)
        for (int64_t i = 0; i < L; i++)
            for (int64_t c = 0; c < dk; c++)
                ev->data[at4(v, b, j, i, c)] = src[((b * h + j) * L + i) * dk + c];
    return AT_OK;
}

typedef struct patch_args {
    const int32_t *clean_src, *clean_tgt, *corrupt_src, *corrupt_tgt;
    int B, S, Tf, pos;
    int32_t pad;
} patch_args;

/* One pass on (src, tgt[:, :-1]) and the value measured on the clean labels. */
static at_status pass_value(at_model *m, const patch_args *a, const int32_t *src,
                            const int32_t *in, double *out)
{
    at_status s = at_forward(m, src, in, a->B, a->S, a->Tf - 1, a->pad);
    return s == AT_OK ? value_of(m, a->clean_tgt, a->B, a->Tf, a->pad, a->pos, out) : s;
}

/* The 3·N·h patched passes, each against the clean value. */
static at_status patch_heads(at_model *m, const patch_args *a, const int32_t *clean_in,
                             patch_run *r, double clean, float *out)
{
    int h = m->dm.heads;
    at_status s = AT_OK;
    for (int k = 0; s == AT_OK && k < 3; k++)
        for (int l = 0; s == AT_OK && l < r->layers; l++)
            for (int j = 0; s == AT_OK && j < h; j++) {
                double v = 0;
                r->head = j;
                s = at_tap_add(m, AT_SITE_HEAD_OUT, k, l, write_tap, r);
                if (s == AT_OK)
                    s = pass_value(m, a, a->clean_src, clean_in, &v);
                at_tap_clear(m);
                out[(k * r->layers + l) * h + j] = (float)(v - clean);
            }
    return s;
}

/* Everything but the passes: arguments, records, decoder inputs. */
static at_status patch_check(at_model *m, const patch_args *a, const float *out)
{
    const char *who = "at_activation_patch";
    if (!a->clean_src || !a->clean_tgt || !a->corrupt_src || !a->corrupt_tgt || !out)
        return set_error(m, AT_E_ARG, "%s: the four inputs and out must not be NULL", who);
    if (a->B < 1 || a->S < 1 || a->Tf < 2)
        return set_error(m, AT_E_ARG, "%s: batch %d, src_len %d, tgt_len %d: need batch >= 1, "
                         "src_len >= 1 and a target of at least 2 tokens", who, a->B, a->S,
                         a->Tf);
    if (a->pos < -1 || a->pos >= a->Tf - 1)
        return set_error(m, AT_E_RANGE, "%s: target position %d is outside [-1, %d) (the "
                         "decoder's positions)", who, a->pos, a->Tf - 1);
    if (m->iv && m->iv->ntaps > 0)
        return set_error(m, AT_E_STATE, "%s: the handle has %d taps of its own; patching uses "
                         "(and clears) taps: remove them first (at_tap_clear)", who,
                         m->iv->ntaps);
    int64_t labels = 0;
    for (int b = 0; b < a->B; b++)
        for (int t = a->pos < 0 ? 1 : a->pos + 1; t < (a->pos < 0 ? a->Tf : a->pos + 2); t++)
            labels += a->clean_tgt[(size_t)b * a->Tf + t] != a->pad;
    if (labels == 0)
        return set_error(m, AT_E_ARG, "%s: every label of the clean target%s is pad: no "
                         "value to measure", who, a->pos < 0 ? "" : " at that position");
    return AT_OK;
}

static at_status activation_patch(at_model *m, const patch_args *a, float *out, double *vclean,
                                  double *vcorrupt)
{
    at_status s = patch_check(m, a, out);
    if (s != AT_OK)
        return s;
    int L = m->dm.layers, B = a->B, T = a->Tf - 1, d = m->dm.d;
    int32_t *clean_in = decoder_input(a->clean_tgt, B, a->Tf);
    int32_t *corrupt_in = decoder_input(a->corrupt_tgt, B, a->Tf);
    float **rec = calloc((size_t)3 * L, sizeof *rec);
    for (int k = 0; rec && k < 3; k++)
        for (int l = 0; l < L; l++)
            rec[k * L + l] = malloc((size_t)B * query_len((at_attn_kind)k, a->S, T) * d *
                                    sizeof **rec);
    for (int i = 0; rec && i < 3 * L; i++)
        if (!rec[i])
            s = AT_E_NOMEM;
    if (!clean_in || !corrupt_in || !rec || s != AT_OK)
        s = set_error(m, AT_E_NOMEM, "at_activation_patch: out of memory");
    double clean = 0, corrupt = 0;
    patch_run r = {rec, L, 0};
    if (s == AT_OK)
        s = pass_value(m, a, a->clean_src, clean_in, &clean);
    /* the corrupted run, every head_out recorded */
    if (s == AT_OK && (s = at_tap_add(m, AT_SITE_HEAD_OUT, AT_ALL, AT_ALL, record_tap, &r)) ==
                          AT_OK) {
        s = pass_value(m, a, a->corrupt_src, corrupt_in, &corrupt);
        at_tap_clear(m);
    }
    if (s == AT_OK)
        s = patch_heads(m, a, clean_in, &r, clean, out);
    if (s == AT_OK && vclean)
        *vclean = clean;
    if (s == AT_OK && vcorrupt)
        *vcorrupt = corrupt;
    for (int i = 0; rec && i < 3 * L; i++)
        free(rec[i]);
    free(rec);
    free(clean_in);
    free(corrupt_in);
    return s;
}

at_status at_activation_patch(at_model *m, const int32_t *clean_src, const int32_t *clean_tgt,
                              const int32_t *corrupt_src, const int32_t *corrupt_tgt, int batch,
                              int src_len, int tgt_len, int32_t pad, int target_pos, float *out,
                              double *clean_value, double *corrupt_value)
{
    patch_args a = {clean_src, clean_tgt, corrupt_src, corrupt_tgt, batch, src_len, tgt_len,
                    target_pos, pad};
    GUARDED(m, "at_activation_patch", activation_patch(m, &a, out, clean_value, corrupt_value));
}

/* ---- counterfactual attention ---- */

/* splitmix64 (Steele et al. 2014): small, and easy to reproduce elsewhere. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint64_t head_stream(uint64_t seed, int kind, int layer, int head, int layers,
                            int heads)
{
    uint64_t index = (uint64_t)((kind * layers + layer) * heads + head);
    return seed ^ (index * 0xD1B54A32D192ED03u);
}

/* Whether key k of query row (b, i) is unmasked, from the pass's masks. */
static bool key_valid(const at_view *mask, at_attn_kind kind, int b, int i, int k)
{
    int64_t row = kind == AT_ATTN_DEC_SELF ? i : 0;
    return mask->data[b * mask->stride[0] + row * mask->stride[1] + k * mask->stride[2]] != 0;
}

/* One head's attention (B, Lq, Lk) with each row's valid weights permuted
 * (Fisher–Yates from the head's stream, rows in order) or made uniform.
 * A row without valid keys keeps the model's weights. */
static void counterfactual(float *out, const float *p, const at_view *mask, at_attn_kind kind,
                           int B, int Lq, int Lk, uint64_t *state, bool uniform, int *idx)
{
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Lq; i++) {
            const float *row = p + ((size_t)b * Lq + i) * Lk;
            float *o = out + ((size_t)b * Lq + i) * Lk;
            int n = 0;
            for (int k = 0; k < Lk; k++)
                if (key_valid(mask, kind, b, i, k))
                    idx[n++] = k;
            if (n == 0) {
                memcpy(o, row, (size_t)Lk * sizeof *o);
                continue;
            }
            memset(o, 0, (size_t)Lk * sizeof *o);
            for (int k = 0; k < n; k++)
                o[idx[k]] = uniform ? 1.0f / (float)n : row[idx[k]];
            for (int j = n - 1; !uniform && j > 0; j--) {
                int r = (int)(splitmix64(state) % (uint64_t)(j + 1));
                float t = o[idx[j]];
                o[idx[j]] = o[idx[r]];
                o[idx[r]] = t;
            }
        }
}

typedef struct cf_args {
    const int32_t *src, *tgt;
    int B, S, T;
    int32_t pad;
    uint64_t seed;
    float *tvp, *tvu;
} cf_args;

/* The mean over non-pad target positions of ½Σ|p − p'|, p the base
 * distribution (probabilities, (B, T, V)), p' the last pass's. */
static at_status tv_of(at_model *m, const cf_args *a, const double *base, float *out)
{
    at_view v;
    at_status s = at_get_output(m, AT_OUT_LOGPROBS, 0, &v);
    if (s != AT_OK)
        return s;
    int64_t V = v.shape[2], n = 0;
    double sum = 0;
    for (int b = 0; b < a->B; b++)
        for (int t = 0; t < a->T; t++) {
            if (a->tgt[(size_t)b * a->T + t] == a->pad)
                continue;
            const double *p = base + ((size_t)b * a->T + t) * V;
            double d = 0;
            for (int64_t y = 0; y < V; y++)
                d += fabs(p[y] - exp((double)v.data[b * v.stride[0] + t * v.stride[1] +
                                                    y * v.stride[2]]));
            sum += 0.5 * d;
            n++;
        }
    *out = (float)(sum / (double)n);
    return AT_OK;
}

typedef struct cf_block {
    at_attn_kind kind;
    int layer, Lq, Lk;
    float *attn;      /* the block's attention (B, h, Lq, Lk) of the base pass */
    float *probs;     /* one head's counterfactual */
    int *idx;
} cf_block;

/* One head: both counterfactuals, each through one overridden pass. */
static at_status cf_head(at_model *m, const cf_args *a, const cf_block *c, const at_view *mask,
                         const double *base, int j, size_t at)
{
    int h = m->dm.heads;
    const float *p = c->attn + (size_t)j * c->Lq * c->Lk;
    float *head = malloc((size_t)a->B * c->Lq * c->Lk * sizeof *head);
    if (!head)
        return set_error(m, AT_E_NOMEM, "at_counterfactual_attention: out of memory");
    for (int b = 0; b < a->B; b++) /* (B, h, Lq, Lk) → this head's (B, Lq, Lk) */
        memcpy(head + (size_t)b * c->Lq * c->Lk, p + (size_t)b * h * c->Lq * c->Lk,
               (size_t)c->Lq * c->Lk * sizeof *head);
    uint64_t state = head_stream(a->seed, c->kind, c->layer, j, m->dm.layers, h);
    at_status s = AT_OK;
    for (int u = 0; s == AT_OK && u < 2; u++) {
        counterfactual(c->probs, head, mask, c->kind, a->B, c->Lq, c->Lk, &state, u == 1,
                       c->idx);
        s = at_attention_override(m, c->kind, c->layer, j, c->probs, a->B, c->Lq, c->Lk);
        if (s == AT_OK)
            s = at_forward(m, a->src, a->tgt, a->B, a->S, a->T, a->pad);
        at_attention_override(m, c->kind, c->layer, j, NULL, a->B, c->Lq, c->Lk);
        if (s == AT_OK)
            s = tv_of(m, a, base, (u ? a->tvu : a->tvp) + at);
    }
    free(head);
    return s;
}

/* One block: a base pass for its attention and masks, then every head. */
static at_status cf_block_run(at_model *m, const cf_args *a, cf_block *c, const double *base)
{
    int h = m->dm.heads;
    at_status s = at_forward(m, a->src, a->tgt, a->B, a->S, a->T, a->pad);
    at_view v, mask;
    if (s == AT_OK)
        s = at_get_attention(m, c->kind, c->layer, &v);
    if (s == AT_OK)
        s = at_get_output(m, c->kind == AT_ATTN_DEC_SELF ? AT_OUT_TGT_MASK : AT_OUT_SRC_MASK, 0,
                          &mask);
    if (s != AT_OK)
        return s;
    size_t n = 0;
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t j = 0; j < h; j++)
            for (int64_t i = 0; i < c->Lq; i++)
                for (int64_t k = 0; k < c->Lk; k++)
                    c->attn[n++] = v.data[at4(&v, b, j, i, k)];
    /* the masks as well: the overridden passes end the views */
    size_t mn = (size_t)a->B * (c->kind == AT_ATTN_DEC_SELF ? a->T : 1) * c->Lk;
    float *mcopy = malloc(mn * sizeof *mcopy);
    if (!mcopy)
        return set_error(m, AT_E_NOMEM, "at_counterfactual_attention: out of memory");
    n = 0;
    for (int64_t b = 0; b < mask.shape[0]; b++)
        for (int64_t i = 0; i < mask.shape[1]; i++)
            for (int64_t k = 0; k < mask.shape[2]; k++)
                mcopy[n++] = mask.data[b * mask.stride[0] + i * mask.stride[1] +
                                       k * mask.stride[2]];
    at_view mv = {.data = mcopy, .ndim = 3, .shape = {mask.shape[0], mask.shape[1],
                  mask.shape[2], 1}, .stride = {mask.shape[1] * mask.shape[2], mask.shape[2],
                  1, 1}};
    size_t at = ((size_t)c->kind * m->dm.layers + c->layer) * h;
    for (int j = 0; s == AT_OK && j < h; j++)
        s = cf_head(m, a, c, &mv, base, j, at + j);
    free(mcopy);
    return s;
}

static at_status cf_check(at_model *m, const cf_args *a)
{
    const char *who = "at_counterfactual_attention";
    if (!a->src || !a->tgt || !a->tvp || !a->tvu)
        return set_error(m, AT_E_ARG, "%s: src, tgt_in, tv_permuted and tv_uniform must not "
                         "be NULL", who);
    if (a->B < 1 || a->S < 1 || a->T < 1)
        return set_error(m, AT_E_ARG, "%s: batch %d, src_len %d, tgt_len %d: each must be "
                         ">= 1", who, a->B, a->S, a->T);
    int64_t n = 0;
    for (size_t i = 0; i < (size_t)a->B * a->T; i++)
        n += a->tgt[i] != a->pad;
    if (n == 0)
        return set_error(m, AT_E_ARG, "%s: every target position is pad", who);
    for (int i = 0; m->iv && i < 3 * m->iv->layers; i++)
        if (m->iv->ov[i].p)
            return set_error(m, AT_E_STATE, "%s: the handle has attention overrides of its "
                             "own; the counterfactuals override one head at a time: remove "
                             "them first", who);
    return AT_OK;
}

static at_status counterfactual_attention(at_model *m, const cf_args *a)
{
    at_status s = cf_check(m, a);
    if (s != AT_OK)
        return s;
    int h = m->dm.heads, L = m->dm.layers, n = a->S > a->T ? a->S : a->T;
    size_t V = (size_t)m->dm.tgt_vocab, bt = (size_t)a->B * a->T;
    double *base = malloc(bt * V * sizeof *base);
    cf_block c = {.attn = malloc((size_t)a->B * h * n * n * sizeof(float)),
                  .probs = malloc((size_t)a->B * n * n * sizeof(float)),
                  .idx = malloc((size_t)n * sizeof(int))};
    if (!base || !c.attn || !c.probs || !c.idx)
        s = set_error(m, AT_E_NOMEM, "at_counterfactual_attention: out of memory");
    at_view v;
    if (s == AT_OK && (s = at_forward(m, a->src, a->tgt, a->B, a->S, a->T, a->pad)) == AT_OK &&
        (s = at_get_output(m, AT_OUT_LOGPROBS, 0, &v)) == AT_OK)
        for (size_t i = 0; i < bt; i++)
            for (size_t y = 0; y < V; y++)
                base[i * V + y] = exp((double)v.data[(int64_t)(i / a->T) * v.stride[0] +
                                                     (int64_t)(i % a->T) * v.stride[1] +
                                                     (int64_t)y * v.stride[2]]);
    for (int k = 0; s == AT_OK && k < 3; k++)
        for (int l = 0; s == AT_OK && l < L; l++) {
            c.kind = (at_attn_kind)k, c.layer = l;
            c.Lq = query_len(c.kind, a->S, a->T), c.Lk = key_len(c.kind, a->S, a->T);
            s = cf_block_run(m, a, &c, base);
        }
    free(base);
    free(c.attn);
    free(c.probs);
    free(c.idx);
    return s;
}

at_status at_counterfactual_attention(at_model *m, const int32_t *src, const int32_t *tgt_in,
                                      int batch, int src_len, int tgt_len, int32_t pad,
                                      uint64_t seed, float *tv_permuted, float *tv_uniform)
{
    cf_args a = {src, tgt_in, batch, src_len, tgt_len, pad, seed, tv_permuted, tv_uniform};
    GUARDED(m, "at_counterfactual_attention", counterfactual_attention(m, &a));
}
