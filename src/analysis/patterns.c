/* Head roles: how much each head of the last pass looks like a template
 * (include/at_analysis.h, group patterns). The built-in templates are the
 * roles Voita et al. 2019 found in a translation Transformer's encoder
 * (positional heads on the previous or next token, heads on rare or
 * boundary tokens) with the broad heads that read everything, and a
 * monotonic alignment for cross-attention. Every score reads only the
 * valid region of a head, as stats.c does. */
#include <math.h>
#include <stdlib.h>

#include "at_analysis.h"
#include "model/internal.h"

static const char *const names[AT_PATTERN_COUNT] = {
    "diagonal", "offset", "prev", "next", "first", "eos", "broad", "monotonic",
};

const char *at_pattern_name(int pattern)
{
    return pattern >= 0 && pattern < AT_PATTERN_COUNT ? names[pattern] : NULL;
}

/* The role library: the patterns a head is labelled with, in the order that
 * breaks ties (attn heads, attn viz --roles, snapshots). */
static const struct role {
    const char *name;
    int pattern, k;
} roles[AT_HEAD_ROLES] = {
    {"diagonal", AT_PAT_DIAGONAL, 0}, {"prev", AT_PAT_PREV, 0},   {"next", AT_PAT_NEXT, 0},
    {"prev2", AT_PAT_OFFSET, -2},     {"next2", AT_PAT_OFFSET, 2}, {"first", AT_PAT_FIRST, 0},
    {"eos", AT_PAT_EOS, 0},           {"broad", AT_PAT_BROAD, 0},
    {"monotonic", AT_PAT_MONOTONIC, 0},
};

at_status at_head_role(int index, const char **name, int *pattern, int *k)
{
    if (index < 0 || index >= AT_HEAD_ROLES)
        return set_error(NULL, AT_E_ARG, "at_head_role: index %d is outside [0, %d)", index,
                         AT_HEAD_ROLES);
    if (name)
        *name = roles[index].name;
    if (pattern)
        *pattern = roles[index].pattern;
    if (k)
        *k = roles[index].k;
    return AT_OK;
}

/* What one row is scored against: a built-in pattern (tmpl NULL) or the
 * caller's template, (batch, Lq, Lk) with batch stride tb (0: shared). */
typedef struct spec {
    int pattern, k;
    const float *tmpl;
    int64_t tb;
} spec;

/* One head's valid region: its (B, Lq, Lk) view and the masks (as stats.c). */
typedef struct region {
    at_view v;
    const float *key_mask;        /* key_mask[b·kb + i·kq + j] != 0: key j of row i valid */
    int64_t kb, kq;
    const float *row_mask;        /* row_mask[b·rb + i·rq] != 0: query row i valid */
    int64_t rb, rq;
} region;

static void set_masks(const at_model *m, at_attn_kind kind, region *r)
{
    int64_t S = m->S, Tl = m->Tl;
    const float *src = m->a.src_mask, *tgt = m->a.tgt_mask;
    r->key_mask = kind == AT_ATTN_DEC_SELF ? tgt : src;
    r->kb = kind == AT_ATTN_DEC_SELF ? Tl * Tl : S;
    r->kq = kind == AT_ATTN_DEC_SELF ? Tl : 0;
    /* a target row is valid when its token is no pad: the diagonal of tgt_mask */
    r->row_mask = kind == AT_ATTN_ENC_SELF ? src : tgt;
    r->rb = kind == AT_ATTN_ENC_SELF ? S : Tl * Tl;
    r->rq = kind == AT_ATTN_ENC_SELF ? 1 : Tl + 1;
}

static bool row_valid(const region *r, int64_t b, int64_t i)
{
    return r->row_mask[b * r->rb + i * r->rq] != 0.0f;
}

/* The positions of row i's valid keys, in order; returns their number. */
static int valid_keys(const region *r, int64_t b, int64_t i, int *keys)
{
    int n = 0;
    for (int64_t j = 0; j < r->v.shape[2]; j++)
        if (r->key_mask[b * r->kb + i * r->kq + j] != 0.0f)
            keys[n++] = (int)j;
    return n;
}

/* floor(r·(nk − 1)/(nq − 1) + ½) in integers: the key rank of the r-th of nq
 * query rows on the straight line from (0, 0) to (nq − 1, nk − 1). */
static int monotonic_rank(int r, int nq, int nk)
{
    if (nq < 2)
        return 0;
    return (int)((2 * (int64_t)r * (nk - 1) + (nq - 1)) / (2 * (int64_t)(nq - 1)));
}

/* The template's weight on the t-th valid key (position j) of row i, the
 * rank-th valid row of nq in its batch row b. */
static double weight(const spec *s, const region *r, int64_t b, int64_t i, int rank, int nq,
                     int t, int j, int n)
{
    if (s->tmpl)
        return s->tmpl[b * s->tb + i * r->v.shape[2] + j];
    switch (s->pattern) {
    case AT_PAT_DIAGONAL: return j == i;
    case AT_PAT_OFFSET: return j == i + s->k;
    case AT_PAT_PREV: return j == i - 1;
    case AT_PAT_NEXT: return j == i + 1;
    case AT_PAT_FIRST: return t == 0;
    case AT_PAT_EOS: return t == n - 1;
    default: return abs(t - monotonic_rank(rank, nq, n)) <= s->k;   /* AT_PAT_MONOTONIC */
    }
}

/* Σ_j A_ij·T_ij / max_j T_ij over the valid keys; false when the template
 * has no weight there (the row is left out). */
static bool row_mass(const spec *s, const region *r, const float *p, int64_t b, int64_t i,
                     int rank, int nq, const int *keys, int n, double *out)
{
    double mass = 0, top = 0;
    for (int t = 0; t < n; t++) {
        double w = weight(s, r, b, i, rank, nq, t, keys[t], n);
        mass += w * p[keys[t]];
        top = w > top ? w : top;
    }
    *out = top > 0 ? mass / top : 0;
    return top > 0;
}

/* The row's overlap with uniform attention over its n valid keys,
 * Σ_t min(p_t, 1/n) = 1 − TV(p, uniform): 1 for a head that reads every key
 * alike, 1/n for one on a single key. It is on the scale of the templates'
 * masses (a 0/1 template's mass is the overlap with its one-hot row too), so
 * the best pattern of a head compares like with like; normalised entropy,
 * which is not (a head on half its keys has ln(n/2)/ln n, near 1), is in
 * at_attention_stats(). Rows with n < 2 are left out. */
static bool row_spread(const float *p, const int *keys, int n, double *out)
{
    if (n < 2)
        return false;
    double even = 1.0 / n, o = 0;
    for (int t = 0; t < n; t++)
        o += p[keys[t]] < even ? p[keys[t]] : even;
    *out = o;
    return true;
}

/* The number of valid query rows of batch row b. */
static int valid_rows(const region *r, int64_t b)
{
    int n = 0;
    for (int64_t i = 0; i < r->v.shape[1]; i++)
        n += row_valid(r, b, i);
    return n;
}

/* Whether every weight of the row on a valid key is finite. */
static bool row_finite(const float *p, const int *keys, int n)
{
    for (int t = 0; t < n; t++)
        if (!isfinite(p[keys[t]]))
            return false;
    return true;
}

/* One head's score: the mean over its valid rows that the template defines. */
static double head_score(const spec *s, const region *r, int *keys)
{
    double sum = 0;
    int64_t rows = 0;
    for (int64_t b = 0; b < r->v.shape[0]; b++) {
        int nq = valid_rows(r, b), rank = 0;
        for (int64_t i = 0; i < r->v.shape[1]; i++) {
            if (!row_valid(r, b, i))
                continue;
            const float *p = r->v.data + b * r->v.stride[0] + i * r->v.stride[1];
            int n = valid_keys(r, b, i, keys);
            double x = 0;
            if (!row_finite(p, keys, n))
                return NAN;
            bool counts = s->pattern == AT_PAT_BROAD && !s->tmpl
                              ? row_spread(p, keys, n, &x)
                              : row_mass(s, r, p, b, i, rank, nq, keys, n, &x);
            sum += counts ? x : 0;
            rows += counts;
            rank++;
        }
    }
    return rows ? sum / (double)rows : 0.0;
}

/* The checks every score makes first: out, kind, layer, a pass that
 * computed this attention and kept each of its heads. */
static at_status check_block(at_model *m, at_attn_kind kind, int layer, const double *out,
                             const char *who)
{
    if (!out)
        return set_error(m, AT_E_ARG, "%s: out is NULL", who);
    if (kind != AT_ATTN_ENC_SELF && kind != AT_ATTN_DEC_SELF && kind != AT_ATTN_CROSS)
        return set_error(m, AT_E_ARG, "%s: unknown kind %d", who, (int)kind);
    if (layer < 0 || layer >= m->dm.layers)
        return set_error(m, AT_E_ARG, "%s: layer %d is outside [0, %d)", who, layer,
                         m->dm.layers);
    if (!(kind == AT_ATTN_ENC_SELF ? m->have_enc : m->have_dec))
        return set_error(m, AT_E_STATE, "%s: no %s attention has been computed (run a pass%s "
                         "first)", who, kind == AT_ATTN_ENC_SELF ? "encoder" : "decoder",
                         kind == AT_ATTN_ENC_SELF ? "" : " with a target");
    const attn_a *a = kind == AT_ATTN_ENC_SELF ? &m->a.enc[layer].sa
                      : kind == AT_ATTN_DEC_SELF ? &m->a.dec[layer].sa : &m->a.dec[layer].ca;
    for (int h = 0; a->slot && h < m->dm.heads; h++)
        if (a->slot[h] < 0)
            return set_error(m, AT_E_STATE, "%s: the capture policy dropped head %d of %s "
                             "layer %d: no score without its weights (at_capture_set)", who,
                             h, kind == AT_ATTN_CROSS ? "cross" : kind == AT_ATTN_DEC_SELF
                             ? "dec_self" : "enc_self", layer);
    return AT_OK;
}

/* Scores every head of the block on s. */
static at_status score_heads(at_model *m, at_attn_kind kind, int layer, const spec *s,
                             double *out, const char *who)
{
    region r;
    set_masks(m, kind, &r);
    int lk = kind == AT_ATTN_DEC_SELF ? m->T : m->S;
    int *keys = malloc((size_t)(lk > 0 ? lk : 1) * sizeof *keys);
    if (!keys)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    at_status st = AT_OK;
    for (int h = 0; h < m->dm.heads && st == AT_OK; h++) {
        st = at_get_attention_head(m, kind, layer, h, &r.v);
        if (st == AT_OK)
            out[h] = head_score(s, &r, keys);
    }
    free(keys);
    return st;
}

static at_status pattern_scores(at_model *m, at_attn_kind kind, int layer, int pattern, int k,
                                double *out)
{
    const char *who = "at_head_pattern_scores";
    at_status st = check_block(m, kind, layer, out, who);
    if (st != AT_OK)
        return st;
    if (pattern < 0 || pattern >= AT_PATTERN_COUNT)
        return set_error(m, AT_E_ARG, "%s: unknown pattern %d (0 .. %d)", who, pattern,
                         AT_PATTERN_COUNT - 1);
    if (pattern == AT_PAT_MONOTONIC && kind != AT_ATTN_CROSS)
        return set_error(m, AT_E_ARG, "%s: the monotonic alignment is cross-attention's; on "
                         "self-attention it is AT_PAT_DIAGONAL", who);
    bool k_ok = pattern == AT_PAT_OFFSET ? k != 0 : pattern == AT_PAT_MONOTONIC ? k >= 0 : k == 0;
    if (!k_ok)
        return set_error(m, AT_E_ARG, "%s: k = %d for pattern %s (offset: k != 0; monotonic: "
                         "a band k >= 0; the others: 0)", who, k, names[pattern]);
    spec s = {pattern, k, NULL, 0};
    return score_heads(m, kind, layer, &s, out, who);
}

/* The template's values: finite and non-negative, or an error naming one. */
static at_status check_template(at_model *m, const float *tmpl, int64_t n, int Lq, int Lk,
                                const char *who)
{
    for (int64_t x = 0; x < n; x++)
        if (!isfinite(tmpl[x]) || tmpl[x] < 0)
            return set_error(m, AT_E_NUMERIC, "%s: template value [%lld, %lld, %lld] is %g; "
                             "weights must be finite and >= 0", who,
                             (long long)(x / ((int64_t)Lq * Lk)),
                             (long long)(x / Lk % Lq), (long long)(x % Lk), (double)tmpl[x]);
    return AT_OK;
}

static at_status template_scores(at_model *m, at_attn_kind kind, int layer, const float *tmpl,
                                 int batch, int q_len, int k_len, double *out)
{
    const char *who = "at_head_template_scores";
    at_status st = check_block(m, kind, layer, out, who);
    if (st != AT_OK)
        return st;
    if (!tmpl)
        return set_error(m, AT_E_ARG, "%s: tmpl is NULL", who);
    int Lq = kind == AT_ATTN_ENC_SELF ? m->S : m->T, Lk = kind == AT_ATTN_DEC_SELF ? m->T : m->S;
    if ((batch != 1 && batch != m->B) || q_len != Lq || k_len != Lk)
        return set_error(m, AT_E_SHAPE, "%s: template (%d, %d, %d) for attention (%d, %d, %d): "
                         "batch 1 or %d, q_len %d, k_len %d", who, batch, q_len, k_len, m->B,
                         Lq, Lk, m->B, Lq, Lk);
    st = check_template(m, tmpl, (int64_t)batch * Lq * Lk, Lq, Lk, who);
    if (st != AT_OK)
        return st;
    spec s = {-1, 0, tmpl, batch == 1 ? 0 : (int64_t)Lq * Lk};
    return score_heads(m, kind, layer, &s, out, who);
}

at_status at_head_pattern_scores(at_model *m, at_attn_kind kind, int layer, int pattern, int k,
                                 double *out)
{
    GUARDED(m, "at_head_pattern_scores", pattern_scores(m, kind, layer, pattern, k, out));
}

at_status at_head_template_scores(at_model *m, at_attn_kind kind, int layer, const float *tmpl,
                                  int batch, int q_len, int k_len, double *out)
{
    GUARDED(m, "at_head_template_scores",
            template_scores(m, kind, layer, tmpl, batch, q_len, k_len, out));
}
