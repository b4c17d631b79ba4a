/* Beam search with a key/value cache per hypothesis.
 *
 * Each source row keeps K hypotheses (beam slots). The encoder runs once per
 * source row; the memory and the cross-attention k and v of every decoder
 * layer are computed once and read by all K slots of the row. Each step
 * computes one new position per slot. The self-attention k and v of each
 * position live in a cache of their own, at (slot, position): written once,
 * by the slot that computed the position, never moved or recomputed. A
 * hypothesis reads its prefix's rows through its ancestry — for each
 * position, the slot that held its prefix then — which is all a surviving
 * hypothesis inherits from its parent (t ints, where copying the parent's
 * cache moved t rows of 2·d_model floats per layer: 8 % of a beam-4 search
 * at batch 32).
 *
 * Everything else a step computes (attention rows, layer outputs,
 * log-probabilities) stays where it was computed, at (slot, position) in the
 * arena, which is laid out for B·K decoder rows. A hypothesis's position t
 * was computed at step t in the slot that held its prefix then, so when the
 * search ends, following each row's best hypothesis back through the parent
 * table and copying its rows to (row, position) gives exactly the
 * activations of a teacher-forced pass over that hypothesis.
 *
 * Scores are GNMT's (Wu et al. 2016, §7): log P(Y|X) / lp(Y) with
 * lp(Y) = ((5 + |Y|) / 6)^α, |Y| the ids after the start, the end id
 * included. There is no coverage penalty. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"

#define BEAM_NONE (-INFINITY)

/* One candidate continuation: cumulative log-probability, slot, next id. */
typedef struct cand {
    double score;
    int32_t slot, id;
} cand;

/* The search's own state, in the arena after the activations (no allocation
 * once the arena is large enough). */
typedef struct beam_state {
    int B, K, R, S, Tl;           /* rows, beam, slots R = B·K, source and layout lengths */
    float *cache;                 /* (layers, R, Tl, 2d): self-attention k | v */
    double *cum, *ncum;           /* (R): cumulative log-probability; BEAM_NONE: slot unused */
    double *best;                 /* (B): the best finished score */
    cand *cands;                  /* (2K): the best continuations of the row being chosen */
    int32_t *tok;                 /* (Tl, R): id fed at each position of each slot */
    int32_t *par;                 /* (Tl, R): the slot the prefix held at the step before */
    int32_t *anc, *nanc;          /* (R, Tl): the slot whose cache row t the slot's
                                     hypothesis reads; the next step's */
    int32_t *npar, *ntok;         /* (R): chosen at this step for the next one */
    int32_t *maxpos;              /* (B): positions to compute, max ids − 1 */
    int32_t *done;                /* (B) */
    int32_t *best_t, *best_s, *best_w;   /* (B): last position, its slot, the final id */
} beam_state;

typedef struct beam_carver {
    char *base;
    size_t used;                  /* bytes */
} beam_carver;

static void *beam_take(beam_carver *c, size_t bytes)
{
    void *p = c->base ? c->base + c->used : NULL;
    c->used += (bytes + 63) & ~(size_t)63;
    return p;
}

/* Lays the state out at base (or, with base NULL, counts its floats). */
static size_t beam_carve(beam_state *st, const at_model *m, void *base)
{
    beam_carver c = {base, 0};
    size_t R = (size_t)st->R, B = (size_t)st->B, Tl = (size_t)st->Tl;
    size_t d = (size_t)m->dm.d, L = (size_t)m->dm.layers;
    st->cache = beam_take(&c, L * R * Tl * 2 * d * sizeof(float));
    st->cum = beam_take(&c, R * sizeof(double));
    st->ncum = beam_take(&c, R * sizeof(double));
    st->best = beam_take(&c, B * sizeof(double));
    st->cands = beam_take(&c, 2 * (size_t)st->K * sizeof(cand));
    st->tok = beam_take(&c, Tl * R * sizeof(int32_t));
    st->par = beam_take(&c, Tl * R * sizeof(int32_t));
    st->anc = beam_take(&c, R * Tl * sizeof(int32_t));
    st->nanc = beam_take(&c, R * Tl * sizeof(int32_t));
    st->npar = beam_take(&c, R * sizeof(int32_t));
    st->ntok = beam_take(&c, R * sizeof(int32_t));
    st->maxpos = beam_take(&c, B * sizeof(int32_t));
    st->done = beam_take(&c, B * sizeof(int32_t));
    st->best_t = beam_take(&c, B * sizeof(int32_t));
    st->best_s = beam_take(&c, B * sizeof(int32_t));
    st->best_w = beam_take(&c, B * sizeof(int32_t));
    return c.used / sizeof(float);
}

/* Row t of slot r in an (R, Tl, width) buffer. */
static inline size_t slot_row(const beam_state *st, int r, int t, int width)
{
    return ((size_t)r * st->Tl + t) * width;
}

/* The cache of layer l, slot r, position 0. */
static inline float *cache_at(const beam_state *st, const at_model *m, int l, int r)
{
    size_t d2 = 2 * (size_t)m->dm.d;
    return st->cache + ((size_t)l * st->R + r) * st->Tl * d2;
}

static void norm_slots(const beam_state *st, const at_model *m, norm_a o, const float *x,
                       norm p, int t, int r0, int r1)
{
    int d = m->dm.d;
    for (int r = r0; r < r1; r++) {
        size_t i = slot_row(st, r, t, 1);
        norm_a one = {o.y + i * d, o.mean + i, o.rstd + i};
        norm_forward(one, x + i * d, p, 1, d);
    }
}

/* y = resid + x·Wᵀ + b on position t of slots r0 .. r1 − 1; a tap on
 * attn_out (kind ≥ 0) sees x·Wᵀ + b before the residual. */
static void out_slots(const beam_state *st, at_model *m, float *y, const float *x,
                      linear w, const float *resid, int t, int in, int r0, int r1, int kind,
                      int layer)
{
    int d = m->dm.d, Tl = st->Tl;
    linear_forward_ld(y + slot_row(st, r0, t, d), Tl * d, x + slot_row(st, r0, t, in), Tl * in, w,
                      r1 - r0, in, d);
    if (kind >= 0 && iv_tapped(m, AT_SITE_ATTN_OUT, kind, layer))
        fire_rows(m, AT_SITE_ATTN_OUT, kind, layer, y + slot_row(st, r0, t, d), r1 - r0, 1, d,
                  (int64_t)Tl * d, t, t + 1);
    for (int r = r0; r < r1; r++)
        add_inplace(y + slot_row(st, r, t, d), resid + slot_row(st, r, t, d), (size_t)d);
}

/* Position t of slots r0 .. r1 − 1 of a (R, Tl, w) buffer for the taps. */
static void fire_slots(const beam_state *st, at_model *m, at_site site, int kind, int layer,
                       float *x, int t, int w, int r0, int r1, bool heads)
{
    if (!iv_tapped(m, site, kind, layer))
        return;
    float *at = x + slot_row(st, r0, t, w);
    if (heads)
        fire_heads(m, site, kind, layer, at, r1 - r0, 1, w, (int64_t)st->Tl * w, t, t + 1);
    else
        fire_rows(m, site, kind, layer, at, r1 - r0, 1, w, (int64_t)st->Tl * w, t, t + 1);
}

/* Where query t of slot r reads its keys and values: key i at
 * k + anc[i]·slot_stride + i·ld (value i likewise from v), or at k + i·ld
 * when anc is NULL. */
typedef struct kv_at {
    const float *k, *v;
    int ld, nk, Lk;               /* row stride; keys used; keys in a row of p */
    const float *mask;            /* NULL, or the source's (S) */
    const int32_t *anc;           /* the slot of each key, or NULL: one slot's rows */
    size_t slot_stride;           /* floats from one slot's cache to the next */
} kv_at;

static kv_at kv_for(const beam_state *st, const at_model *m, attn_a a, int kind, int l, int r,
                    int t)
{
    int d = m->dm.d;
    if (kind == AT_ATTN_DEC_SELF) {
        const float *c = cache_at(st, m, l, 0);
        return (kv_at){c, c + d, 2 * d, t + 1, st->Tl, NULL, st->anc + (size_t)r * st->Tl,
                       (size_t)st->Tl * 2 * d};
    }
    /* the K slots of a source row share its memory's k and v */
    int b = r / st->K;
    const float *k = a.k + (size_t)b * st->S * a.ldkv;
    return (kv_at){k, k + d, a.ldkv, st->S, st->S, m->a.src_mask + (size_t)b * st->S, NULL, 0};
}

static float *p_at(const beam_state *st, const at_model *m, attn_a a, int r, int j, int t,
                   int Lk)
{
    return a.p + (((size_t)r * m->dm.heads + j) * st->Tl + t) * Lk;
}

/* Scores of query t of slot r against its keys (SEMANTICS §5), masked keys
 * at −1e9. */
static void scores_one(const beam_state *st, const at_model *m, attn_a a, int r, int t,
                       const kv_at *kv)
{
    const int d = m->dm.d, h = m->dm.heads, dk = d / h;
    const float scale = (float)sqrt((double)dk);
    for (int j = 0; j < h; j++) {
        const float *q = a.q + slot_row(st, r, t, a.ldq) + (size_t)j * dk;
        float *p = p_at(st, m, a, r, j, t, kv->Lk);
        if (kv->anc)
            mm_nt_rows(p, q, kv->k + (size_t)j * dk, kv->slot_stride, kv->ld, kv->anc, kv->nk,
                       dk);
        else
            mm_nt(p, kv->nk, q, dk, kv->k + (size_t)j * dk, kv->ld, 1, kv->nk, dk);
        for (int i = 0; i < kv->nk; i++)
            p[i] = kv->mask && kv->mask[i] == 0.0f ? AT_MASK_FILL : p[i] / scale;
    }
}

/* Softmax; keys nk .. Lk − 1 get exactly 0, as the subsequent mask gives
 * them in a full pass; row t of an override (its source's) replaces it. */
static void softmax_one(const beam_state *st, const at_model *m, attn_a a, int r, int t,
                        const kv_at *kv, const override_blk *ov)
{
    for (int j = 0; j < m->dm.heads; j++) {
        float *p = p_at(st, m, a, r, j, t, kv->Lk);
        softmax_row(p, kv->nk);
        for (int i = kv->nk; i < kv->Lk; i++)
            p[i] = 0.0f;
        const float *o = override_row(ov, r / st->K, j, t);
        if (o)
            memcpy(p, o, (size_t)kv->nk * sizeof *p);
    }
}

static void values_one(const beam_state *st, const at_model *m, attn_a a, int r, int t,
                       const kv_at *kv)
{
    const int d = m->dm.d, h = m->dm.heads, dk = d / h;
    for (int j = 0; j < h; j++) {
        float *c = a.ctx + slot_row(st, r, t, d) + (size_t)j * dk;
        const float *p = p_at(st, m, a, r, j, t, kv->Lk), *v = kv->v + (size_t)j * dk;
        if (kv->anc)
            mm_nn_rows(c, p, v, kv->slot_stride, kv->ld, kv->anc, kv->nk, dk);
        else
            mm_nn(c, dk, p, kv->nk, v, kv->ld, 1, dk, kv->nk);
    }
}

/* Slots [r0 + i0, r0 + i1) of attend_slots, all three steps each. The slots
 * are independent, and their keys and values, read once a step, are most
 * of a step's memory traffic besides the weights: they are shared over the
 * pool (a slot's numbers are the same in any thread). */
typedef struct slots_job {
    const beam_state *st;
    at_model *m;
    attn_a a;
    int kind, l, t, r0;
} slots_job;

/* Least multiply-adds of a part: a thread's wake-up costs a few
 * microseconds, and the rows are read at memory latency. */
#define SLOTS_PART_MACS 32768

static void attend_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    const slots_job *j = ctx;
    for (int r = j->r0 + (int)i0; r < j->r0 + (int)i1; r++) {
        kv_at kv = kv_for(j->st, j->m, j->a, j->kind, j->l, r, j->t);
        scores_one(j->st, j->m, j->a, r, j->t, &kv);
        softmax_one(j->st, j->m, j->a, r, j->t, &kv, NULL);
        values_one(j->st, j->m, j->a, r, j->t, &kv);
    }
}

/* Attention of position t for slots r0 .. r1 − 1: each step over every
 * slot before the next when a tap looks between them or an override
 * replaces the probabilities; then the taps on the heads' output and the
 * gates. */
static void attend_slots(const beam_state *st, at_model *m, attn_a a, int kind, int l, int t,
                         int r0, int r1)
{
    const override_blk *ov = iv_override(m, kind, l);
    bool ts = iv_tapped(m, AT_SITE_SCORES, kind, l), tp = iv_tapped(m, AT_SITE_PROBS, kind, l);
    kv_at kv0 = kv_for(st, m, a, kind, l, r0, t);  /* nk and Lk are every slot's */
    if (!ov && !ts && !tp) {
        size_t macs = 2 * (size_t)kv0.nk * (size_t)m->dm.d;    /* a slot's, all heads */
        slots_job j = {st, m, a, kind, l, t, r0};
        pool_for((size_t)(r1 - r0), SLOTS_PART_MACS / macs + 1, POOL_ANY, attend_part, &j);
    } else {
        int h = m->dm.heads, Lk = kv0.Lk;
        const int64_t shape[4] = {r1 - r0, h, 1, kv0.nk};
        const int64_t stride[4] = {(int64_t)h * st->Tl * Lk, (int64_t)st->Tl * Lk, Lk, 1};
        float *row0 = p_at(st, m, a, r0, 0, t, Lk);
        for (int r = r0; r < r1; r++) {
            kv_at kv = kv_for(st, m, a, kind, l, r, t);
            scores_one(st, m, a, r, t, &kv);
        }
        if (ts)
            fire(m, AT_SITE_SCORES, kind, l, row0, 4, shape, stride, t, t + 1);
        for (int r = r0; r < r1; r++) {
            kv_at kv = kv_for(st, m, a, kind, l, r, t);
            softmax_one(st, m, a, r, t, &kv, ov);
        }
        if (tp)
            fire(m, AT_SITE_PROBS, kind, l, row0, 4, shape, stride, t, t + 1);
        for (int r = r0; r < r1; r++) {
            kv_at kv = kv_for(st, m, a, kind, l, r, t);
            values_one(st, m, a, r, t, &kv);
        }
    }
    int d = m->dm.d;
    fire_slots(st, m, AT_SITE_HEAD_OUT, kind, l, a.ctx, t, d, r0, r1, true);
    const float *gate = iv_gates(m, kind, l);
    if (gate)
        gate_heads(a.ctx + slot_row(st, r0, t, d), NULL, gate, r1 - r0, 1, d, m->dm.heads,
                   (int64_t)st->Tl * d);
}

/* Position t of slots r0 .. r1 − 1, each fed st->tok[t][r]. */
static void beam_position(const beam_state *st, at_model *m, int t, int r0, int r1)
{
    const dims *dm = &m->dm;
    const params *p = &m->w->p;
    acts *a = &m->a;
    const int d = dm->d, ff = dm->d_ff, V = dm->tgt_vocab, Tl = st->Tl, n = r1 - r0;
    const int DS = AT_ATTN_DEC_SELF, CA = AT_ATTN_CROSS;
    const float scale = (float)sqrt((double)d);
    const int32_t *tok = st->tok + (size_t)t * st->R;
    for (int r = r0; r < r1; r++)
        st->anc[(size_t)r * Tl + t] = r;   /* position t: this slot's row */
    for (int r = r0; r < r1; r++) {
        float *o = a->tgt_emb + slot_row(st, r, t, d);
        const float *e = p->tgt_lut + (size_t)tok[r] * d, *pe = p->tgt_pe + (size_t)t * d;
        for (int i = 0; i < d; i++)
            o[i] = e[i] * scale + pe[i];
    }
    fire_slots(st, m, AT_SITE_TGT_EMBED, 0, 0, a->tgt_emb, t, d, r0, r1, false);
    const float *x = a->tgt_emb;
    for (int l = 0; l < dm->layers; l++) {
        const dec_p *lp = &p->dec[l];
        dec_a *la = &a->dec[l];
        norm_slots(st, m, la->ln[0], x, lp->ln[0], t, r0, r1);
        linear_forward_ld(la->sa.q + slot_row(st, r0, t, 3 * d), Tl * 3 * d,
                          la->ln[0].y + slot_row(st, r0, t, d), Tl * d, lp->sa.q, n, d, 3 * d);
        fire_slots(st, m, AT_SITE_Q, DS, l, la->sa.q, t, 3 * d, r0, r1, true);
        fire_slots(st, m, AT_SITE_K, DS, l, la->sa.k, t, 3 * d, r0, r1, true);
        fire_slots(st, m, AT_SITE_V, DS, l, la->sa.v, t, 3 * d, r0, r1, true);
        /* the new k and v join the slot's cache, then the query reads it */
        for (int r = r0; r < r1; r++)
            memcpy(cache_at(st, m, l, r) + (size_t)t * 2 * d,
                   la->sa.q + slot_row(st, r, t, 3 * d) + d, 2 * (size_t)d * sizeof(float));
        attend_slots(st, m, la->sa, DS, l, t, r0, r1);
        out_slots(st, m, la->mid1, la->sa.ctx, lp->sa.o, x, t, d, r0, r1, DS, l);

        norm_slots(st, m, la->ln[1], la->mid1, lp->ln[1], t, r0, r1);
        linear_forward_ld(la->ca.q + slot_row(st, r0, t, d), Tl * d,
                          la->ln[1].y + slot_row(st, r0, t, d), Tl * d, lp->ca.q, n, d, d);
        fire_slots(st, m, AT_SITE_Q, CA, l, la->ca.q, t, d, r0, r1, true);
        attend_slots(st, m, la->ca, CA, l, t, r0, r1);
        out_slots(st, m, la->mid2, la->ca.ctx, lp->ca.o, la->mid1, t, d, r0, r1, CA, l);

        norm_slots(st, m, la->ln[2], la->mid2, lp->ln[2], t, r0, r1);
        linear_forward_ld(la->ff_h + slot_row(st, r0, t, ff), Tl * ff,
                          la->ln[2].y + slot_row(st, r0, t, d), Tl * d, lp->ff.w1, n, d, ff);
        for (int r = r0; r < r1; r++)
            relu_inplace(la->ff_h + slot_row(st, r, t, ff), (size_t)ff);
        fire_slots(st, m, AT_SITE_FF_HIDDEN, DS, l, la->ff_h, t, ff, r0, r1, false);
        out_slots(st, m, la->out, la->ff_h, lp->ff.w2, la->mid2, t, ff, r0, r1, -1, l);
        fire_slots(st, m, AT_SITE_LAYER_OUT, DS, l, la->out, t, d, r0, r1, false);
        x = la->out;
    }
    norm_slots(st, m, a->dec_out, x, p->dec_norm, t, r0, r1);
    fire_slots(st, m, AT_SITE_DECODER, 0, 0, a->dec_out.y, t, d, r0, r1, false);
    linear_forward_ld(a->logp + slot_row(st, r0, t, V), Tl * V, a->dec_out.y + slot_row(st, r0, t, d),
                      Tl * d, p->gen, n, d, V);
    for (int r = r0; r < r1; r++)
        log_softmax_rows(a->logp + slot_row(st, r, t, V), 1, V);
    fire_slots(st, m, AT_SITE_LOGPROBS, 0, 0, a->logp, t, V, r0, r1, false);
}

/* GNMT's length penalty for n ids after the start. */
static double length_penalty(double alpha, int n)
{
    return alpha == 0 ? 1.0 : pow((5.0 + n) / 6.0, alpha);
}

/* Keeps the best `cap` candidates in c[0 .. *n), best first. A candidate
 * goes after those with an equal score, so ties go to the lower slot, then
 * the lower id (the order they are offered in), as greedy's argmax. */
static void offer(cand *c, int *n, int cap, double score, int32_t slot, int32_t id)
{
    if (*n == cap && !(score > c[cap - 1].score))
        return;
    int i = *n < cap ? (*n)++ : cap - 1;
    for (; i > 0 && score > c[i - 1].score; i--)
        c[i] = c[i - 1];
    c[i] = (cand){score, slot, id};
}

/* One step's choice for row b after position t: the 2K best continuations
 * of its live slots; an end id ranked among the first K finishes a
 * hypothesis, the first K others go on (HF/fairseq's rule); at the row's
 * last position the first K finish whatever they end with. Returns 0, or the
 * slot + 1 whose log-probabilities are not finite. */
static int choose(beam_state *st, const at_model *m, int b, int t, int32_t end, double alpha)
{
    const int K = st->K, V = m->dm.tgt_vocab, rb = b * K;
    int n = 0;
    for (int k = 0; k < K; k++) {
        int r = rb + k;
        if (st->cum[r] == BEAM_NONE)
            continue;
        const float *row = m->a.logp + slot_row(st, r, t, V);
        float top = row[0];
        for (int w = 0; w < V; w++) {
            top = row[w] > top ? row[w] : top;
            offer(st->cands, &n, 2 * K, st->cum[r] + row[w], r, w);
        }
        /* log-softmax makes a row all NaN or none; top starts at row[0] and
         * NaN compares false, so a NaN row keeps top NaN */
        if (!isfinite(top))
            return r + 1;
    }
    bool last = t == st->maxpos[b] - 1;
    double lp = length_penalty(alpha, t + 1);
    int alive = 0;
    for (int i = 0; i < n && alive < K; i++) {
        const cand *c = &st->cands[i];
        if (last || c->id == end) {
            if (i < K && c->score / lp > st->best[b]) {
                st->best[b] = c->score / lp;
                st->best_t[b] = t, st->best_s[b] = c->slot, st->best_w[b] = c->id;
            }
            if (last && i + 1 >= K)
                break;
            continue;
        }
        st->npar[rb + alive] = c->slot;
        st->ntok[rb + alive] = c->id;
        st->ncum[rb + alive] = c->score;
        alive++;
    }
    double reach = BEAM_NONE;     /* the most a live hypothesis can still score */
    for (int k = 0; k < K; k++) {
        if (k >= alive || last) {
            st->npar[rb + k] = rb + k;
            st->ntok[rb + k] = st->tok[rb + k];     /* any id: the slot is not read */
            st->ncum[rb + k] = BEAM_NONE;
        } else if (st->ncum[rb + k] > reach) {
            reach = st->ncum[rb + k];
        }
    }
    /* log P only falls as ids are added and lp(n) grows with n, so a live
     * hypothesis ends at most at reach / lp(longest): when the best finished
     * one already scores that, the row's answer cannot change */
    if (last || alive == 0 || st->best[b] >= reach / length_penalty(alpha, st->maxpos[b]))
        st->done[b] = 1;
    return 0;
}

/* Each slot's hypothesis takes its parent's ancestry (positions 0 .. t),
 * built in the other buffer, so that no slot reads one already rewritten.
 * Slots outside [r0, r1) belong to finished rows, which no later step
 * reads. */
static void reorder(beam_state *st, int t, int r0, int r1)
{
    const size_t Tl = (size_t)st->Tl, bytes = (size_t)(t + 1) * sizeof(int32_t);
    for (int r = r0; r < r1; r++)
        memcpy(st->nanc + r * Tl, st->anc + (size_t)st->npar[r] * Tl, bytes);
    int32_t *swap = st->anc;
    st->anc = st->nanc, st->nanc = swap;
    memcpy(st->cum + r0, st->ncum + r0, (size_t)(r1 - r0) * sizeof *st->cum);
}

/* Copies row (from, t) of an (R, Tl, width) tensor to (to, t). */
static void move_row(const beam_state *st, float *x, int width, int from, int to, int t)
{
    if (from != to)
        memcpy(x + slot_row(st, to, t, width), x + slot_row(st, from, t, width),
               (size_t)width * sizeof(float));
}

static void zero_row(const beam_state *st, float *x, int width, int r, int t)
{
    memset(x + slot_row(st, r, t, width), 0, (size_t)width * sizeof(float));
}

/* The views' tensors of position t: slot `from` to row `to`, or zeros when
 * from < 0. Attention (R, h, Tl, Lk) is row (r·h + j, t) of width Lk. */
static void place_position(const beam_state *st, at_model *m, int from, int to, int t)
{
    const int d = m->dm.d, h = m->dm.heads, V = m->dm.tgt_vocab, S = st->S, Tl = st->Tl;
    acts *a = &m->a;
    float *flat[] = {a->tgt_emb, a->dec_out.y, a->logp};
    int width[] = {d, d, V};
    for (int i = 0; i < 3; i++)
        from < 0 ? zero_row(st, flat[i], width[i], to, t)
                 : move_row(st, flat[i], width[i], from, to, t);
    for (int l = 0; l < m->dm.layers; l++) {
        dec_a *la = &a->dec[l];
        from < 0 ? zero_row(st, la->out, d, to, t) : move_row(st, la->out, d, from, to, t);
        for (int j = 0; j < h; j++) {
            float *sp = la->sa.p + (size_t)j * Tl * Tl, *cp = la->ca.p + (size_t)j * Tl * S;
            /* slot r's head j: rows (r·h)·Tl away, so index the slot as r·h */
            if (from < 0) {
                memset(sp + slot_row(st, to * h, t, Tl), 0, (size_t)Tl * sizeof(float));
                memset(cp + slot_row(st, to * h, t, S), 0, (size_t)S * sizeof(float));
            } else if (from != to) {
                memcpy(sp + slot_row(st, to * h, t, Tl), sp + slot_row(st, from * h, t, Tl),
                       (size_t)Tl * sizeof(float));
                memcpy(cp + slot_row(st, to * h, t, S), cp + slot_row(st, from * h, t, S),
                       (size_t)S * sizeof(float));
            }
        }
    }
}

/* Follows each row's best hypothesis back, writes its ids and moves its
 * activations to (row, position). Row b's positions come from slots
 * b·K .. b·K + K − 1 and go to slot b, which belongs to row b / K: a row
 * already done (b / K < b), or row 0 itself, where each position is read
 * once and written once, at the same position. Returns T, the positions of
 * the longest. */
static int finish(beam_state *st, at_model *m, int32_t start, int32_t fill, int32_t *out,
                  int out_cols, int *out_len, double *out_score)
{
    int T = 1;
    for (int b = 0; b < st->B; b++) {
        int tb = st->best_t[b], n = tb + 2;
        int32_t *ids = out + (size_t)b * out_cols;
        int s = st->best_s[b];
        ids[tb + 1] = st->best_w[b];
        for (int t = tb; t >= 0; t--) {
            ids[t] = st->tok[(size_t)t * st->R + s];
            place_position(st, m, s, b, t);
            if (t > 0)
                s = st->par[(size_t)t * st->R + s];
        }
        ids[0] = start;
        for (int i = n; i < out_cols; i++)
            ids[i] = fill;
        out_len[b] = n;
        if (out_score)
            out_score[b] = st->best[b];
        T = n - 1 > T ? n - 1 : T;
    }
    /* positions past a row's end are padding: nothing was computed for them */
    for (int b = 0; b < st->B; b++)
        for (int t = out_len[b] - 1; t < T; t++)
            place_position(st, m, -1, b, t);
    /* the mask of a teacher-forced pass over the hypothesis: the subsequent
     * mask (no id of it is padding, as in greedy decoding), none at padding */
    for (int b = 0; b < st->B; b++)
        for (int i = 0; i < T; i++)
            for (int j = 0; j < T; j++)
                m->a.tgt_mask[slot_row(st, b, i, st->Tl) + j] = j <= i && i < out_len[b] - 1;
    return T;
}

static at_status check_beam_args(at_model *m, const int32_t *src, int batch, int src_len,
                                 int32_t start, int32_t end, const at_beam_options *o,
                                 const int32_t *out, const int *out_len)
{
    const char *who = "at_beam_decode";
    int V = m->dm.tgt_vocab;
    if (!src || !out || !out_len)
        return set_error(m, AT_E_ARG, "%s: src, out and out_len must not be NULL", who);
    if (o->beam_size < 1 || o->beam_size > AT_BEAM_MAX)
        return set_error(m, AT_E_ARG, "%s: beam size %d must be in [1, %d]", who,
                         (int)o->beam_size, AT_BEAM_MAX);
    if (!(o->alpha >= 0) || !isfinite(o->alpha))
        return set_error(m, AT_E_ARG, "%s: length penalty alpha %g must be finite and >= 0",
                         who, o->alpha);
    if (!isfinite(o->max_len_a) || !isfinite(o->max_len_b) || o->max_len_b < 0)
        return set_error(m, AT_E_ARG, "%s: max_len_a %g and max_len_b %g must be finite, "
                         "max_len_b >= 0", who, o->max_len_a, o->max_len_b);
    if (start < 0 || start >= V)
        return set_error(m, AT_E_RANGE, "%s: start id %d is outside the target vocabulary "
                         "[0, %d)", who, (int)start, V);
    if (end < -1 || end >= V)
        return set_error(m, AT_E_RANGE, "%s: end id %d must be -1 (none) or inside the target "
                         "vocabulary [0, %d)", who, (int)end, V);
    at_status s = check_sizes(m, batch, src_len, 0, who);
    if (s == AT_OK && (int64_t)batch * o->beam_size > INT32_MAX / 4 / (m->dm.max_len + 1))
        s = set_error(m, AT_E_RANGE, "%s: batch %d times beam %d is too large", who, batch,
                      (int)o->beam_size);
    return s;
}

/* The options a caller passed, read as far as its struct_size says; fields
 * of a newer header that this library does not know must be zero. */
static at_status read_options(at_model *m, const at_beam_options *in, at_beam_options *o)
{
    at_beam_options_init(o);
    if (!in)
        return AT_OK;
    size_t first = offsetof(at_beam_options, max_len_b) + sizeof in->max_len_b;
    if (in->struct_size < first)
        return set_error(m, AT_E_ARG, "at_beam_decode: options struct_size %zu is smaller than "
                         "the first version's %zu (call at_beam_options_init)", in->struct_size,
                         first);
    size_t n = in->struct_size < sizeof *o ? in->struct_size : sizeof *o;
    for (size_t i = sizeof *o; i < in->struct_size; i++)
        if (((const unsigned char *)in)[i])
            return set_error(m, AT_E_ARG, "at_beam_decode: the options set a field (byte %zu) "
                             "that this version of libat (%s) does not know", i,
                             at_version_string());
    memcpy(o, in, n);
    o->struct_size = sizeof *o;
    return AT_OK;
}

static at_status beam_decode(at_model *m, const int32_t *src, int batch, int src_len,
                             int32_t pad, int32_t start, int32_t end,
                             const at_beam_options *opts, int32_t *out, int out_cols,
                             int *out_len, double *out_score)
{
    const char *who = "at_beam_decode";
    at_beam_options o;
    at_status s = read_options(m, opts, &o);
    if (s == AT_OK)
        s = check_beam_args(m, src, batch, src_len, start, end, &o, out, out_len);
    /* the longest hypothesis each row may reach: a + b·|x| ids, the start
     * included, |x| the row's source ids that are not pad */
    int Tl = 0;
    for (int b = 0; s == AT_OK && b < batch; b++) {
        int n = 0;
        for (int i = 0; i < src_len; i++)
            n += src[(size_t)b * src_len + i] != pad;
        double want = floor(o.max_len_a + o.max_len_b * n);
        if (want < 2)
            s = set_error(m, AT_E_ARG, "%s: row %d: the maximum length a + b*|source| = %g + "
                          "%g*%d allows %g ids; it must allow 2 (the start and one more)", who,
                          b, o.max_len_a, o.max_len_b, n, want);
        else if (want - 1 > Tl)
            Tl = want - 1 > m->dm.max_len ? m->dm.max_len : (int)(want - 1);
    }
    if (s == AT_OK && Tl + 1 > out_cols)
        s = set_error(m, AT_E_ARG, "%s: out_cols %d; the longest row may reach %d ids", who,
                      out_cols, Tl + 1);
    if (s == AT_OK)
        s = check_ids(m, "src", src, batch, src_len, m->dm.src_vocab, who);
    invalidate(m);
    if (s != AT_OK)
        return s;

    beam_state st = {.B = batch, .K = o.beam_size, .R = batch * o.beam_size, .S = src_len,
                     .Tl = Tl};
    size_t extra = beam_carve(&st, m, NULL);
    const drop eval = {0};
    iv_begin(m, AT_PASS_BEAM, false);
    s = encode_rows(m, src, batch, st.R, src_len, Tl, extra, pad, &eval, who);
    if (s != AT_OK || (s = pass_end(m, AT_OK, who)) != AT_OK)
        return s;
    beam_carve(&st, m, m->a.extra);

    for (int b = 0; b < batch; b++) {
        int n = 0;
        for (int i = 0; i < src_len; i++)
            n += src[(size_t)b * src_len + i] != pad;
        double want = floor(o.max_len_a + o.max_len_b * n) - 1;
        st.maxpos[b] = want > Tl ? Tl : (int)want;
        st.done[b] = 0;
        st.best[b] = BEAM_NONE;
        st.best_t[b] = 0, st.best_s[b] = b * st.K, st.best_w[b] = start;
    }
    for (int r = 0; r < st.R; r++) {
        st.tok[r] = start;
        st.par[r] = r;
        /* one hypothesis per row to begin with: K copies of it would fill
         * the beam with the same continuations */
        st.cum[r] = r % st.K == 0 ? 0.0 : BEAM_NONE;
    }
    for (int t = 0; t < Tl; t++) {
        int b0 = 0, b1 = batch;
        while (b0 < b1 && st.done[b0])
            b0++;
        while (b1 > b0 && st.done[b1 - 1])
            b1--;
        if (b0 == b1)
            break;
        int r0 = b0 * st.K, r1 = b1 * st.K;
        if (m->iv)
            m->iv->step = t, m->iv->row0 = r0;
        beam_position(&st, m, t, r0, r1);
        if ((s = pass_end(m, AT_OK, who)) != AT_OK)
            return s;
        for (int b = b0; b < b1; b++) {
            int bad = st.done[b] ? 0 : choose(&st, m, b, t, end, o.alpha);
            if (bad) {
                invalidate(m);
                return set_error(m, AT_E_NUMERIC, "%s: the log-probabilities of row %d, "
                                 "hypothesis %d at position %d are not finite (the weights "
                                 "overflow)", who, b, (bad - 1) % st.K, t + 1);
            }
            if (st.done[b])
                for (int r = b * st.K; r < (b + 1) * st.K; r++)
                    st.npar[r] = r;
        }
        if (t + 1 < Tl) {
            reorder(&st, t, r0, r1);
            for (int r = r0; r < r1; r++) {
                st.tok[(size_t)(t + 1) * st.R + r] = st.ntok[r];
                st.par[(size_t)(t + 1) * st.R + r] = st.npar[r];
            }
        }
    }
    int32_t fill = pad >= 0 && pad < m->dm.tgt_vocab ? pad : -1;
    m->T = finish(&st, m, start, fill, out, out_cols, out_len, out_score);
    m->have_dec = true;
    return AT_OK;
}

void at_beam_options_init(at_beam_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->beam_size = 4;
    opts->alpha = 0.6;
    opts->max_len_a = 10;
    opts->max_len_b = 2;
}

at_status at_beam_decode(at_model *m, const int32_t *src, int batch, int src_len, int32_t pad,
                         int32_t start, int32_t end, const at_beam_options *opts, int32_t *out,
                         int out_cols, int *out_len, double *out_score)
{
    GUARDED(m, "at_beam_decode",
            beam_decode(m, src, batch, src_len, pad, start, end, opts, out, out_cols, out_len,
                        out_score));
}
