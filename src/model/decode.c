/* Greedy decoding with a key/value cache.
 *
 * The reference's greedy_decode re-runs the whole decoder on the prefix at
 * every step (SEMANTICS §14). Here the encoder runs once, the cross-attention
 * k and v are computed once, and each step computes one new position per
 * batch row; the self-attention keys and values of earlier positions are
 * already in the arena. The arena is laid out exactly as a forward pass over
 * the decoded sequence would lay it out, so afterwards every view shows the
 * attention of the whole decoded sequence. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"

/* Row t of batch element b in a (B, Tl, width) buffer. */
static inline size_t row_at(const at_model *m, int b, int t, int width)
{
    return ((size_t)b * m->Tl + t) * width;
}

static void norm_rows(at_model *m, norm_a o, const float *x, norm p, int t)
{
    int d = m->dm.d;
    for (int b = 0; b < m->B; b++) {
        size_t r = row_at(m, b, t, 1);
        norm_a one = {o.y + r * d, o.mean + r, o.rstd + r};
        norm_forward(one, x + r * d, p, 1, d);
    }
}

/* y = resid + x·Wᵀ + b on the rows of position t; a tap on attn_out (kind
 * ≥ 0) sees x·Wᵀ + b before the residual. */
static void out_rows(at_model *m, float *y, const float *x, linear w, const float *resid,
                     int t, int in, int kind, int layer)
{
    int d = m->dm.d;
    linear_forward_ld(y + row_at(m, 0, t, d), m->Tl * d, x + row_at(m, 0, t, in), m->Tl * in,
                      w, m->B, in, d);
    if (kind >= 0 && iv_tapped(m, AT_SITE_ATTN_OUT, kind, layer))
        fire_rows(m, AT_SITE_ATTN_OUT, kind, layer, y + row_at(m, 0, t, d), m->B, 1, d,
                  (int64_t)m->Tl * d, t, t + 1);
    for (int b = 0; b < m->B; b++)
        add_inplace(y + row_at(m, b, t, d), resid + row_at(m, b, t, d), (size_t)d);
}

/* Row t of a (B, Tl, w) buffer for the taps: (B, 1, w). */
static void fire_row(at_model *m, at_site site, int kind, int layer, float *x, int t, int w)
{
    if (iv_tapped(m, site, kind, layer))
        fire_rows(m, site, kind, layer, x + row_at(m, 0, t, w), m->B, 1, w,
                  (int64_t)m->Tl * w, t, t + 1);
}

/* Row t of q (or k, v) for the taps: (B, h, 1, d_k), heads side by side. */
static void fire_head_row(at_model *m, at_site site, int kind, int layer, float *x, int t,
                          int ld)
{
    if (iv_tapped(m, site, kind, layer))
        fire_heads(m, site, kind, layer, x + row_at(m, 0, t, ld), m->B, 1, ld,
                   (int64_t)m->Tl * ld, t, t + 1);
}

/* One step's attention: query t of each (batch row b, head hd) pair. */
typedef struct pairs_job {
    const at_model *m;
    attn_a a;
    int t, nk, Lk;
    const float *mask;
    float scale;
} pairs_job;

static float *pair_p(const pairs_job *j, int b, int hd)
{
    return j->a.p + (((size_t)b * j->m->dm.heads + hd) * j->m->Tl + j->t) * j->Lk;
}

static size_t pair_kv(const pairs_job *j, int b, int hd)
{
    return (size_t)b * j->Lk * j->a.ldkv + (size_t)hd * (j->m->dm.d / j->m->dm.heads);
}

/* Query t of the pair against keys 0 .. nk−1: scores q·k/√dk, masked keys
 * (mask[b·Lk + i] == 0, when mask is given) at −1e9. */
static void pair_scores(const pairs_job *j, int b, int hd)
{
    const int dk = j->m->dm.d / j->m->dm.heads;
    const float *q = j->a.q + row_at(j->m, b, j->t, j->a.ldq) + (size_t)hd * dk;
    float *p = pair_p(j, b, hd);
    const float *mask = j->mask ? j->mask + (size_t)b * j->Lk : NULL;
    mm_nt(p, j->nk, q, dk, j->a.k + pair_kv(j, b, hd), j->a.ldkv, 1, j->nk, dk);
    for (int i = 0; i < j->nk; i++)
        p[i] = mask && mask[i] == 0.0f ? AT_MASK_FILL : p[i] / j->scale;
}

/* Softmax over the nk keys; keys from nk on get exactly 0, as the
 * subsequent mask gives them in a full pass. */
static void pair_softmax(const pairs_job *j, int b, int hd)
{
    float *p = pair_p(j, b, hd);
    softmax_row(p, j->nk);
    for (int i = j->nk; i < j->Lk; i++)
        p[i] = 0.0f;
}

/* ctx row t of the pair = p·v. */
static void pair_values(const pairs_job *j, int b, int hd)
{
    const int dk = j->m->dm.d / j->m->dm.heads;
    float *ctx = j->a.ctx + row_at(j->m, b, j->t, j->m->dm.d) + (size_t)hd * dk;
    mm_nn(ctx, dk, pair_p(j, b, hd), j->nk, j->a.v + pair_kv(j, b, hd), j->a.ldkv, 1, dk,
          j->nk);
}

/* Pairs [i0, i1) of the B·h (batch row, head) pairs, all three steps. The
 * pairs are independent, and a batch's keys and values, read once a step,
 * are most of a step's memory traffic besides the weights: they are
 * shared over the pool (each pair's numbers are the same in any thread). */
static void attend_pairs(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    const pairs_job *j = ctx;
    const int h = j->m->dm.heads;
    for (size_t i = i0; i < i1; i++) {
        int b = (int)(i / (size_t)h), hd = (int)(i % (size_t)h);
        pair_scores(j, b, hd);
        pair_softmax(j, b, hd);
        pair_values(j, b, hd);
    }
}

/* Least multiply-adds of a part of attend_pairs: a thread's wake-up costs
 * a few microseconds, and the rows are read at memory latency. */
#define PAIRS_PART_MACS 32768

/* The attention row of query t over keys 0 .. nk−1 for every (b, head),
 * ctx row t = p·v. With taps on the scores or probs, or an override, the
 * steps run one at a time over every pair, in this thread: row t of the
 * override replaces the softmax's, as in a full pass over the sequence. */
static void attend_row(at_model *m, attn_a a, int t, int nk, int Lk, const float *mask,
                       int kind, int layer)
{
    const int d = m->dm.d, h = m->dm.heads, dk = d / h, Tl = m->Tl;
    const pairs_job j = {m, a, t, nk, Lk, mask, (float)sqrt((double)dk)};
    const override_blk *ov = iv_override(m, kind, layer);
    bool ts = iv_tapped(m, AT_SITE_SCORES, kind, layer);
    bool tp = iv_tapped(m, AT_SITE_PROBS, kind, layer);
    const size_t pairs = (size_t)m->B * h;
    if (!ov && !ts && !tp) {
        pool_for(pairs, PAIRS_PART_MACS / (2 * (size_t)nk * dk) + 1, POOL_ANY, attend_pairs,
                 (void *)&j);
    } else {
        const int64_t shape[4] = {m->B, h, 1, nk}, stride[4] = {(int64_t)h * Tl * Lk,
                                                               (int64_t)Tl * Lk, Lk, 1};
        float *row0 = a.p + (size_t)t * Lk;
        for (size_t i = 0; i < pairs; i++)
            pair_scores(&j, (int)(i / h), (int)(i % h));
        if (ts)
            fire(m, AT_SITE_SCORES, kind, layer, row0, 4, shape, stride, t, t + 1);
        for (size_t i = 0; i < pairs; i++) {
            int b = (int)(i / h), hd = (int)(i % h);
            pair_softmax(&j, b, hd);
            const float *o = override_row(ov, b, hd, t);
            if (o)
                memcpy(pair_p(&j, b, hd), o, (size_t)nk * sizeof(float));
        }
        if (tp)
            fire(m, AT_SITE_PROBS, kind, layer, row0, 4, shape, stride, t, t + 1);
        for (size_t i = 0; i < pairs; i++)
            pair_values(&j, (int)(i / h), (int)(i % h));
    }
    fire_head_row(m, AT_SITE_HEAD_OUT, kind, layer, a.ctx, t, d);
    const float *gate = iv_gates(m, kind, layer);
    if (gate)
        gate_heads(a.ctx + row_at(m, 0, t, d), NULL, gate, m->B, 1, d, h, (int64_t)Tl * d);
}

/* One decoder position for every batch row: tokens[b] sits at position t. */
static void decode_position(at_model *m, const int32_t *tokens, int t)
{
    const dims *dm = &m->dm;
    const params *p = &m->w->p;
    acts *a = &m->a;
    int d = dm->d, ff = dm->d_ff, V = dm->tgt_vocab, Tl = m->Tl, S = m->S;
    const int DS = AT_ATTN_DEC_SELF, CA = AT_ATTN_CROSS;
    const float scale = (float)sqrt((double)d);
    for (int b = 0; b < m->B; b++) {
        float *o = a->tgt_emb + row_at(m, b, t, d);
        const float *e = p->tgt_lut + (size_t)tokens[b] * d, *pe = p->tgt_pe + (size_t)t * d;
        for (int i = 0; i < d; i++)
            o[i] = e[i] * scale + pe[i];
    }
    fire_row(m, AT_SITE_TGT_EMBED, 0, 0, a->tgt_emb, t, d);
    const float *x = a->tgt_emb;
    for (int l = 0; l < dm->layers; l++) {
        const dec_p *lp = &p->dec[l];
        dec_a *la = &a->dec[l];
        norm_rows(m, la->ln[0], x, lp->ln[0], t);
        linear_forward_ld(la->sa.q + row_at(m, 0, t, 3 * d), Tl * 3 * d,
                          la->ln[0].y + row_at(m, 0, t, d), Tl * d, lp->sa.q, m->B, d, 3 * d);
        fire_head_row(m, AT_SITE_Q, DS, l, la->sa.q, t, 3 * d);
        fire_head_row(m, AT_SITE_K, DS, l, la->sa.k, t, 3 * d);
        fire_head_row(m, AT_SITE_V, DS, l, la->sa.v, t, 3 * d);
        attend_row(m, la->sa, t, t + 1, Tl, NULL, DS, l);
        out_rows(m, la->mid1, la->sa.ctx, lp->sa.o, x, t, d, DS, l);

        norm_rows(m, la->ln[1], la->mid1, lp->ln[1], t);
        linear_forward_ld(la->ca.q + row_at(m, 0, t, d), Tl * d,
                          la->ln[1].y + row_at(m, 0, t, d), Tl * d, lp->ca.q, m->B, d, d);
        fire_head_row(m, AT_SITE_Q, CA, l, la->ca.q, t, d);
        attend_row(m, la->ca, t, S, S, a->src_mask, CA, l);
        out_rows(m, la->mid2, la->ca.ctx, lp->ca.o, la->mid1, t, d, CA, l);

        norm_rows(m, la->ln[2], la->mid2, lp->ln[2], t);
        linear_forward_ld(la->ff_h + row_at(m, 0, t, ff), Tl * ff,
                          la->ln[2].y + row_at(m, 0, t, d), Tl * d, lp->ff.w1, m->B, d, ff);
        for (int b = 0; b < m->B; b++)
            relu_inplace(la->ff_h + row_at(m, b, t, ff), (size_t)ff);
        fire_row(m, AT_SITE_FF_HIDDEN, DS, l, la->ff_h, t, ff);
        out_rows(m, la->out, la->ff_h, lp->ff.w2, la->mid2, t, ff, -1, l);
        fire_row(m, AT_SITE_LAYER_OUT, DS, l, la->out, t, d);
        x = la->out;
    }
    norm_rows(m, a->dec_out, x, p->dec_norm, t);
    fire_row(m, AT_SITE_DECODER, 0, 0, a->dec_out.y, t, d);
    linear_forward_ld(a->logp + row_at(m, 0, t, V), Tl * V, a->dec_out.y + row_at(m, 0, t, d),
                      Tl * d, p->gen, m->B, d, V);
    for (int b = 0; b < m->B; b++)
        log_softmax_rows(a->logp + row_at(m, b, t, V), 1, V);
    fire_row(m, AT_SITE_LOGPROBS, 0, 0, a->logp, t, V);
}

/* Ties go to the lowest id (torch.max leaves them unspecified). */
static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        best = x[i] > x[best] ? i : best;
    return best;
}

static at_status check_decode_args(at_model *m, const int32_t *src, int32_t *out,
                                   int *out_len, int max_len, int32_t start, int32_t end)
{
    const char *who = "at_greedy_decode";
    int V = m->dm.tgt_vocab;
    if (!src || !out || !out_len)
        return set_error(m, AT_E_ARG, "%s: src, out and out_len must not be NULL", who);
    if (max_len < 1)
        return set_error(m, AT_E_ARG, "%s: max_len %d must be >= 1", who, max_len);
    if (max_len - 1 > m->dm.max_len)
        return set_error(m, AT_E_RANGE, "%s: max_len %d; the model's positional table has %d "
                         "positions", who, max_len, m->dm.max_len);
    if (start < 0 || start >= V)
        return set_error(m, AT_E_RANGE, "%s: start id %d is outside the target vocabulary "
                         "[0, %d)", who, (int)start, V);
    if (end < -1 || end >= V)
        return set_error(m, AT_E_RANGE, "%s: end id %d must be -1 (none) or inside the target "
                         "vocabulary [0, %d)", who, (int)end, V);
    return AT_OK;
}

static at_status greedy_decode(at_model *m, const int32_t *src, int batch, int src_len,
                               int32_t pad, int max_len, int32_t start, int32_t end,
                               int32_t *out, int *out_len)
{
    const char *who = "at_greedy_decode";
    invalidate(m);
    at_status s = check_decode_args(m, src, out, out_len, max_len, start, end);
    if (s == AT_OK)
        s = check_forward_args(m, src, NULL, batch, src_len, 0, who);
    if (s != AT_OK)
        return s;
    int Tm = max_len - 1;
    const drop eval = {0};
    iv_begin(m, AT_PASS_GREEDY, false);
    /* the rows' state (the ids fed, whether a row goes on) in the arena, after
     * the activations: ids are the size of floats */
    _Static_assert(sizeof(int32_t) == sizeof(float), "ids in float slots");
    s = encode_rows(m, src, batch, batch, src_len, Tm, 2 * (size_t)batch, pad, &eval,
                    who);
    if (s != AT_OK || (s = pass_end(m, AT_OK, who)) != AT_OK)
        return s;
    int32_t *tokens = (int32_t *)(void *)m->a.extra, *alive = tokens + batch;
    /* after its end, a row is filled with pad (or, when pad is no id, end) */
    int32_t fill = pad >= 0 && pad < m->dm.tgt_vocab ? pad : end;
    for (int b = 0; b < batch; b++) {
        out[(size_t)b * max_len] = start;
        alive[b] = 1;
    }
    int t = 0, living = batch;
    for (; t < Tm && living > 0; t++) {
        for (int b = 0; b < batch; b++)
            tokens[b] = out[(size_t)b * max_len + t];
        if (m->iv)
            m->iv->step = t;
        decode_position(m, tokens, t);
        if ((s = pass_end(m, AT_OK, who)) != AT_OK)
            return s;
        for (int b = 0; b < batch; b++) {
            int32_t next = fill;
            if (alive[b]) {
                const float *row = m->a.logp + row_at(m, b, t, m->dm.tgt_vocab);
                next = argmax(row, m->dm.tgt_vocab);
                /* NaN compares false: a row of NaN would "choose" id 0 */
                if (!isfinite(row[next])) {
                    invalidate(m);
                    return set_error(m, AT_E_NUMERIC, "%s: the log-probabilities of row %d at "
                                     "position %d are not finite (the weights overflow)", who,
                                     b, t + 1);
                }
                if (next == end)
                    alive[b] = 0, living--;
            }
            out[(size_t)b * max_len + t + 1] = next;
        }
    }
    *out_len = t + 1;
    for (int b = 0; b < batch; b++)
        for (int i = t + 1; i < max_len; i++)
            out[(size_t)b * max_len + i] = fill;

    /* the mask a forward pass over the decoded sequence applies here:
     * subsequent only, as the reference's greedy_decode */
    m->T = t;
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < Tm; i++)
            for (int j = 0; j < Tm; j++)
                m->a.tgt_mask[row_at(m, b, i, Tm) + j] = j <= i;
    m->have_dec = t > 0;
    return AT_OK;
}

at_status at_greedy_decode(at_model *m, const int32_t *src, int batch, int src_len,
                           int32_t pad, int max_len, int32_t start, int32_t end, int32_t *out,
                           int *out_len)
{
    GUARDED(m, "at_greedy_decode",
            greedy_decode(m, src, batch, src_len, pad, max_len, start, end, out, out_len));
}
