/* libat_text: corpus chrF as sacreBLEU 2.x computes it (character n-grams
 * of orders 1..6, white space removed, beta 2, effective-order averaging by
 * default). The definitions are in include/at_text.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text_internal.h"

typedef struct chr_side {
    tbuf text;   /* the segment without white space (or with it) */
    tidx off;    /* offset of every code point, then text.len */
} chr_side;

struct at_chrf {
    atomic_flag busy;
    int order;
    double beta;
    bool eps, whitespace;
    int64_t segments;
    int64_t stats[AT_CHRF_MAX_ORDER][3];   /* hypothesis, reference, matched n-grams */
    chr_side hyp;
    chr_side *refs;
    size_t nrefs_cap;
    ng_table table;
};

atomic_flag *chrf_busy(at_chrf *c)
{
    return &c->busy;
}

AT_TEXT_API at_status at_chrf_create(at_chrf **out)
{
    if (!out)
        return text_fail(AT_E_ARG, "at_chrf_create: out is NULL");
    *out = NULL;
    at_chrf *c = calloc(1, sizeof *c);
    if (!c)
        return text_fail(AT_E_NOMEM, "at_chrf_create: out of memory");
    atomic_flag_clear(&c->busy);
    c->order = 6;
    c->beta = 2;
    *out = c;
    return AT_OK;
}

AT_TEXT_API void at_chrf_free(at_chrf *c)
{
    if (!c)
        return;
    tbuf_free(&c->hyp.text);
    tidx_free(&c->hyp.off);
    for (size_t i = 0; i < c->nrefs_cap; i++) {
        tbuf_free(&c->refs[i].text);
        tidx_free(&c->refs[i].off);
    }
    free(c->refs);
    ng_free(&c->table);
    free(c);
}

AT_TEXT_API at_status at_chrf_set(at_chrf *c, at_chrf_param key, double value)
{
    if (!c)
        return text_fail(AT_E_ARG, "at_chrf_set: the accumulator is NULL");
    if (!text_enter(&c->busy, "at_chrf_set"))
        return AT_E_STATE;
    at_status s = AT_OK;
    if (key < AT_CHRF_CHAR_ORDER || key > AT_CHRF_WHITESPACE)
        s = text_fail(AT_E_ARG, "at_chrf_set: unknown setting %d", (int)key);
    else if (c->segments > 0)
        s = text_fail(AT_E_STATE, "at_chrf_set: settings cannot change after the first "
                                  "segment (at_chrf_reset first)");
    else if (key == AT_CHRF_CHAR_ORDER) {
        if (!(value >= 1 && value <= AT_CHRF_MAX_ORDER) || value != floor(value))
            s = text_fail(AT_E_ARG, "at_chrf_set: the character order is a whole number in "
                                    "1..%d, not %g", AT_CHRF_MAX_ORDER, value);
        else
            c->order = (int)value;
    } else if (key == AT_CHRF_BETA) {
        if (!(value > 0) || !isfinite(value))
            s = text_fail(AT_E_ARG, "at_chrf_set: beta must be positive and finite, not %g",
                          value);
        else
            c->beta = value;
    } else if (value != 0 && value != 1) {
        s = text_fail(AT_E_ARG, "at_chrf_set: %s is 0 or 1, not %g",
                      key == AT_CHRF_EPS_SMOOTHING ? "eps smoothing" : "white space", value);
    } else if (key == AT_CHRF_EPS_SMOOTHING) {
        c->eps = value == 1;
    } else {
        c->whitespace = value == 1;
    }
    text_leave(&c->busy);
    return s;
}

/* The segment without white space ("".join(s.split())), or as it is, and
 * the offset of each code point. */
static bool chars(const at_chrf *c, const char *seg, size_t n, chr_side *out)
{
    const unsigned char *s = (const unsigned char *)seg;
    if (!tbuf_reserve(&out->text, n + 1) || !tidx_reserve(&out->off, n + 1))
        return false;
    size_t w = 0, k = 0;
    for (size_t i = 0; i < n;) {
        size_t ws = c->whitespace ? 0 : ws_len(s + i, n - i);
        if (ws) {
            i += ws;
            continue;
        }
        size_t len = utf8_seq_len(s[i]);
        out->off.p[k++] = w;
        memcpy(out->text.p + w, s + i, len);
        w += len;
        i += len;
    }
    out->text.len = w;
    out->off.p[k] = w;
    out->off.len = k;
    return true;
}

/* CHRF._compute_f_score of sacreBLEU 2.x, in the same order of operations.
 * P and R (may be NULL) receive the averaged precision and recall. */
static double f_score(const int64_t (*st)[3], int order, double beta, bool eps, double *P,
                      double *R, int *eff)
{
    const double e = 1e-16;
    double score = 0.0, factor = beta * beta, avg_prec = 0.0, avg_rec = 0.0;
    int effective_order = 0;
    for (int i = 0; i < order; i++) {
        int64_t n_hyp = st[i][0], n_ref = st[i][1], n_match = st[i][2];
        double prec = n_hyp > 0 ? (double)n_match / (double)n_hyp : e;
        double rec = n_ref > 0 ? (double)n_match / (double)n_ref : e;
        double denom = factor * prec + rec;
        score += denom > 0 ? (1 + factor) * prec * rec / denom : e;
        if (n_hyp > 0 && n_ref > 0) {
            avg_prec += prec;
            avg_rec += rec;
            effective_order++;
        }
    }
    if (effective_order == 0) {
        avg_prec = avg_rec = 0.0;
    } else {
        avg_prec /= effective_order;
        avg_rec /= effective_order;
    }
    if (P)
        *P = 100 * avg_prec;
    if (R)
        *R = 100 * avg_rec;
    if (eff)
        *eff = effective_order;
    if (eps)
        return 100 * score / order;
    if (avg_prec + avg_rec != 0) {
        score = (1 + factor) * avg_prec * avg_rec;
        score /= (factor * avg_prec) + avg_rec;
        return 100 * score;
    }
    return 0.0;
}

at_status chrf_add_segment(at_chrf *c, const char *hyp, size_t hyp_len,
                           const char *const *refs, const size_t *ref_lens, size_t n_refs)
{
    at_status s = text_check_segment("at_chrf_add", hyp, hyp_len, refs, ref_lens, n_refs);
    if (s != AT_OK)
        return s;
    if (n_refs > c->nrefs_cap) {
        chr_side *r = realloc(c->refs, n_refs * sizeof *r);
        if (!r)
            return text_fail(AT_E_NOMEM, "at_chrf_add: out of memory");
        memset(r + c->nrefs_cap, 0, (n_refs - c->nrefs_cap) * sizeof *r);
        c->refs = r;
        c->nrefs_cap = n_refs;
    }
    if (!chars(c, hyp, hyp_len, &c->hyp))
        return AT_E_NOMEM;
    ng_table *t = &c->table;
    ng_clear(t);
    const chr_side *h = &c->hyp;
    for (int n = 1; n <= c->order; n++)
        for (size_t i = 0; i + (size_t)n <= h->off.len; i++) {
            ng_entry *g = ng_get(t, h->text.p + h->off.p[i], h->off.p[i + n] - h->off.p[i],
                                 (uint32_t)n);
            if (!g)
                return AT_E_NOMEM;
            g->hyp++;
        }
    int64_t best[AT_CHRF_MAX_ORDER][3], cur[AT_CHRF_MAX_ORDER][3];
    double best_f = -1.0;
    size_t id = 0;
    for (size_t r = 0; r < n_refs; r++) {
        if (ref_lens[r] == 0)
            continue;                    /* an empty reference is left out */
        chr_side *rs = &c->refs[r];
        if (!chars(c, refs[r], ref_lens[r], rs))
            return AT_E_NOMEM;
        id++;
        for (int n = 1; n <= c->order; n++)
            for (size_t i = 0; i + (size_t)n <= rs->off.len; i++) {
                ng_entry *g = ng_get(t, rs->text.p + rs->off.p[i],
                                     rs->off.p[i + n] - rs->off.p[i], (uint32_t)n);
                if (!g)
                    return AT_E_NOMEM;
                if (g->cur_id != id) {
                    g->cur_id = id;
                    g->cur = 0;
                }
                g->cur++;
            }
        for (int n = 1; n <= c->order; n++) {
            int64_t nh = (int64_t)h->off.len - n + 1, nr = (int64_t)rs->off.len - n + 1;
            nh = nh > 0 ? nh : 0;
            nr = nr > 0 ? nr : 0;
            /* sacreBLEU: no hypothesis n-grams are counted where the reference has none */
            cur[n - 1][0] = nr > 0 ? nh : 0;
            cur[n - 1][1] = nr;
            cur[n - 1][2] = 0;
        }
        for (size_t k = 0; k < t->used; k++) {
            const ng_entry *g = &t->slots[t->list[k]];
            if (g->hyp && g->cur_id == id)
                cur[g->n - 1][2] += g->hyp < g->cur ? g->hyp : g->cur;
        }
        double f = f_score((const int64_t (*)[3])cur, c->order, c->beta, c->eps, NULL, NULL,
                           NULL);
        if (f > best_f) {
            best_f = f;
            memcpy(best, cur, sizeof best);
        }
    }
    for (int n = 0; n < c->order; n++)
        for (int j = 0; j < 3; j++)
            c->stats[n][j] += best[n][j];
    c->segments++;
    return AT_OK;
}

AT_TEXT_API at_status at_chrf_add(at_chrf *c, const char *hyp, size_t hyp_len,
                                  const char *const *refs, const size_t *ref_lens,
                                  size_t n_refs)
{
    if (!c)
        return text_fail(AT_E_ARG, "at_chrf_add: the accumulator is NULL");
    if (!text_enter(&c->busy, "at_chrf_add"))
        return AT_E_STATE;
    at_status s = chrf_add_segment(c, hyp, hyp_len, refs, ref_lens, n_refs);
    text_leave(&c->busy);
    return s;
}

AT_TEXT_API at_status at_chrf_result(at_chrf *c, at_chrf_score *out)
{
    if (!c || !out)
        return text_fail(AT_E_ARG, "at_chrf_result: %s is NULL", c ? "out" : "the accumulator");
    if (out->struct_size < sizeof(at_chrf_score))
        return text_fail(AT_E_ARG, "at_chrf_result: out->struct_size is %zu, this library "
                                   "needs at least %zu (set it to sizeof(at_chrf_score))",
                         out->struct_size, sizeof(at_chrf_score));
    if (!text_enter(&c->busy, "at_chrf_result"))
        return AT_E_STATE;
    at_chrf_score o;
    memset(&o, 0, sizeof o);
    o.struct_size = out->struct_size;
    int eff = 0;
    o.score = f_score((const int64_t (*)[3])c->stats, c->order, c->beta, c->eps, &o.precision,
                      &o.recall, &eff);
    if (c->segments == 0)
        o.score = 0.0;
    o.effective_order = eff;
    o.beta = c->beta;
    o.char_order = c->order;
    o.segments = c->segments;
    memcpy(out, &o, sizeof o);
    text_leave(&c->busy);
    return AT_OK;
}

AT_TEXT_API at_status at_chrf_reset(at_chrf *c)
{
    if (!c)
        return text_fail(AT_E_ARG, "at_chrf_reset: the accumulator is NULL");
    if (!text_enter(&c->busy, "at_chrf_reset"))
        return AT_E_STATE;
    memset(c->stats, 0, sizeof c->stats);
    c->segments = 0;
    text_leave(&c->busy);
    return AT_OK;
}
