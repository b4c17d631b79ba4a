/* Interventions: taps, head gates, attention overrides and the capture
 * policy of one handle. The passes ask here (iv_*) what to do at each block;
 * with nothing set m->iv is NULL and every question costs one test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"

static const char *const site_names[AT_SITE_COUNT] = {
    "q", "k", "v", "scores", "probs", "head_out", "attn_out", "ff_hidden", "layer_out",
    "src_embed", "tgt_embed", "memory", "decoder", "logprobs"};

static const char *const kind_names[3] = {"enc_self", "dec_self", "cross"};

const char *at_site_name(at_site site)
{
    return (unsigned)site < AT_SITE_COUNT ? site_names[site] : NULL;
}

at_status at_site_from_name(const char *name, at_site *out)
{
    if (!name || !out)
        return set_error(NULL, AT_E_ARG, "at_site_from_name: name or out is NULL");
    for (int s = 0; s < AT_SITE_COUNT; s++)
        if (strcmp(name, site_names[s]) == 0) {
            *out = (at_site)s;
            return AT_OK;
        }
    return set_error(NULL, AT_E_ARG, "at_site_from_name: unknown site '%s' (q, k, v, scores, "
                     "probs, head_out, attn_out, ff_hidden, layer_out, src_embed, tgt_embed, "
                     "memory, decoder, logprobs)", name);
}

static bool attn_site(at_site s) { return s <= AT_SITE_ATTN_OUT; }
static bool layer_site(at_site s) { return s == AT_SITE_FF_HIDDEN || s == AT_SITE_LAYER_OUT; }

void interv_free(interv *iv)
{
    if (!iv)
        return;
    for (int i = 0; i < 3 * iv->layers; i++) {
        free(iv->ov[i].p);
        free(iv->ov[i].heads);
    }
    free(iv->ov);
    free(iv->gate);
    free(iv->gated);
    free(iv->gate_grad);
    free(iv->keep);
    free(iv->slot);
    free(iv->tapped);
    free(iv);
}

/* The handle's interventions, made on first use: every gate 1, every head
 * kept, no override, no tap. */
interv *iv_get(at_model *m, const char *who)
{
    if (m->iv)
        return m->iv;
    int L = m->dm.layers, h = m->dm.heads;
    size_t blocks = 3 * (size_t)L, heads = blocks * (size_t)h;
    interv *iv = calloc(1, sizeof *iv);
    if (iv) {
        iv->layers = L, iv->heads = h;
        iv->gate = malloc(heads * sizeof *iv->gate);
        iv->gate_grad = calloc(heads, sizeof *iv->gate_grad);
        iv->keep = malloc(heads * sizeof *iv->keep);
        iv->slot = malloc(heads * sizeof *iv->slot);
        iv->gated = calloc(blocks, sizeof *iv->gated);
        iv->ov = calloc(blocks, sizeof *iv->ov);
        iv->tapped = calloc(blocks, sizeof *iv->tapped);
    }
    if (!iv || !iv->gate || !iv->gate_grad || !iv->keep || !iv->slot || !iv->gated ||
        !iv->ov || !iv->tapped) {
        interv_free(iv);
        set_error(m, AT_E_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    for (size_t i = 0; i < heads; i++) {
        iv->gate[i] = 1.0f;
        iv->keep[i] = true;
    }
    iv->step = -1;
    m->iv = iv;
    return iv;
}

/* ---- arguments ---- */

static at_status check_kind(at_model *m, int kind, bool all, const char *who)
{
    if ((all && kind == AT_ALL) || (kind >= 0 && kind <= AT_ATTN_CROSS))
        return AT_OK;
    return set_error(m, AT_E_ARG, "%s: unknown kind %d (0 enc_self, 1 dec_self, 2 cross%s)",
                     who, kind, all ? ", or AT_ALL" : "");
}

static at_status check_index(at_model *m, const char *what, int i, int n, bool all,
                             const char *who)
{
    if ((all && i == AT_ALL) || (i >= 0 && i < n))
        return AT_OK;
    return set_error(m, AT_E_ARG, "%s: %s %d is outside [0, %d)%s", who, what, i, n,
                     all ? " (or AT_ALL)" : "");
}

static at_status check_khl(at_model *m, int kind, int layer, int head, bool all,
                           const char *who)
{
    at_status s = check_kind(m, kind, all, who);
    if (s == AT_OK)
        s = check_index(m, "layer", layer, m->dm.layers, all, who);
    if (s == AT_OK)
        s = check_index(m, "head", head, m->dm.heads, all, who);
    return s;
}

/* [lo, hi) of an index that may be AT_ALL. */
static void span(int i, int n, int *lo, int *hi)
{
    *lo = i == AT_ALL ? 0 : i;
    *hi = i == AT_ALL ? n : i + 1;
}

/* ---- taps ---- */

static void tapped_rebuild(interv *iv)
{
    memset(iv->tapped, 0, 3 * (size_t)iv->layers * sizeof *iv->tapped);
    iv->model_tapped = 0;
    for (int t = 0; t < iv->ntaps; t++) {
        const tap_entry *e = &iv->taps[t];
        if (!attn_site(e->site) && !layer_site(e->site)) {
            iv->model_tapped |= 1u << e->site;
            continue;
        }
        int k0, k1, l0, l1;
        span(e->kind, 3, &k0, &k1);
        span(e->layer, iv->layers, &l0, &l1);
        for (int k = k0; k < k1; k++)
            for (int l = l0; l < l1; l++)
                iv->tapped[blk_index(iv, k, l)] |= 1u << e->site;
    }
}

static at_status tap_add(at_model *m, at_site site, int kind, int layer, at_tap_fn fn,
                         void *user)
{
    const char *who = "at_tap_add";
    if (!fn)
        return set_error(m, AT_E_ARG, "%s: fn is NULL", who);
    if ((unsigned)site >= AT_SITE_COUNT)
        return set_error(m, AT_E_ARG, "%s: unknown site %d", who, (int)site);
    at_status s = AT_OK;
    if (attn_site(site) || layer_site(site)) {
        s = check_kind(m, kind, true, who);
        if (s == AT_OK && layer_site(site) && kind == AT_ATTN_CROSS)
            s = set_error(m, AT_E_ARG, "%s: site %s belongs to a layer: its kind names the "
                          "stack (enc_self or dec_self), not cross", who, site_names[site]);
        if (s == AT_OK)
            s = check_index(m, "layer", layer, m->dm.layers, true, who);
    } else if (layer != 0 && layer != AT_ALL) {
        s = set_error(m, AT_E_ARG, "%s: site %s belongs to the whole model: layer must be 0, "
                      "not %d", who, site_names[site], layer);
    }
    if (s != AT_OK)
        return s;
    interv *iv = iv_get(m, who);
    if (!iv)
        return AT_E_NOMEM;
    if (iv->ntaps == TAP_MAX)
        return set_error(m, AT_E_NOMEM, "%s: %d taps already (the most a handle takes)", who,
                         TAP_MAX);
    int k = layer_site(site) && kind == AT_ALL ? AT_ALL : kind;
    iv->taps[iv->ntaps++] = (tap_entry){site, attn_site(site) || layer_site(site) ? k : 0,
                                        layer, fn, user};
    tapped_rebuild(iv);
    return AT_OK;
}

at_status at_tap_add(at_model *m, at_site site, int kind, int layer, at_tap_fn fn, void *user)
{
    GUARDED(m, "at_tap_add", tap_add(m, site, kind, layer, fn, user));
}

static at_status tap_clear(at_model *m)
{
    if (m->iv) {
        m->iv->ntaps = 0;
        tapped_rebuild(m->iv);
    }
    return AT_OK;
}

at_status at_tap_clear(at_model *m) { GUARDED(m, "at_tap_clear", tap_clear(m)); }

bool iv_tapped(const at_model *m, at_site site, int kind, int layer)
{
    const interv *iv = m->iv;
    if (!iv || iv->failed != AT_OK)
        return false;
    if (!attn_site(site) && !layer_site(site))
        return iv->model_tapped >> site & 1u;
    return iv->tapped[blk_index(iv, kind, layer)] >> site & 1u;
}

static bool tap_matches(const tap_entry *e, at_site site, int kind, int layer)
{
    if (e->site != site)
        return false;
    if (!attn_site(site) && !layer_site(site))
        return true;
    return (e->kind == AT_ALL || e->kind == kind) && (e->layer == AT_ALL || e->layer == layer);
}

void iv_begin(at_model *m, at_pass pass, bool backward)
{
    if (m->iv) {
        m->iv->pass = pass;
        m->iv->backward = backward;
        m->iv->row0 = 0;
        m->iv->step = -1;
        m->iv->failed = AT_OK;
    }
}

/* AT_E_CALLBACK when a tap failed during the pass (its message is set). */
at_status iv_end(at_model *m, const char *who)
{
    (void)who;
    return m->iv ? m->iv->failed : AT_OK;
}

/* Hands a tensor to every tap of its site, in the order they were added. */
void fire(at_model *m, at_site site, int kind, int layer, float *data, int ndim,
          const int64_t shape[4], const int64_t stride[4], int pos0, int pos1)
{
    interv *iv = m->iv;
    if (!iv || iv->failed != AT_OK)
        return;
    at_tap_event ev = {.site = site, .kind = (at_attn_kind)kind, .layer = layer,
                       .pass = iv->pass, .step = iv->step, .pos_begin = pos0, .pos_end = pos1,
                       .batch = (int32_t)shape[0], .row_begin = iv->row0, .data = data};
    ev.view.data = data;
    ev.view.ndim = ndim;
    for (int i = 0; i < 4; i++) {
        ev.view.shape[i] = i < ndim ? shape[i] : 1;
        ev.view.stride[i] = i < ndim ? stride[i] : 1;
    }
    ev.view.generation = m->generation;
    for (int t = 0; t < iv->ntaps; t++) {
        const tap_entry *e = &iv->taps[t];
        if (!tap_matches(e, site, kind, layer))
            continue;
        at_status s = e->fn(e->user, &ev);
        if (s != AT_OK) {
            char where[64] = "";
            if (attn_site(site) || layer_site(site))
                snprintf(where, sizeof where, " (%s, layer %d)", kind_names[kind], layer);
            iv->failed = set_error(m, AT_E_CALLBACK, "the tap on %s%s returned %s%s: the pass "
                                   "stopped", site_names[site], where, at_status_string(s),
                                   iv->step >= 0 ? " at a decoding step" : "");
            return;
        }
    }
}

/* (B, h, L, d_k) of heads stored side by side in rows ld apart. */
void fire_heads(at_model *m, at_site site, int kind, int layer, float *x, int B, int L,
                int ld, int64_t bstride, int pos0, int pos1)
{
    int h = m->dm.heads, dk = m->dm.d / h;
    int64_t shape[4] = {B, h, L, dk}, stride[4] = {bstride, dk, ld, 1};
    fire(m, site, kind, layer, x, 4, shape, stride, pos0, pos1);
}

/* (B, L, w) rows, batch rows bstride apart. */
void fire_rows(at_model *m, at_site site, int kind, int layer, float *x, int B, int L, int w,
               int64_t bstride, int pos0, int pos1)
{
    int64_t shape[4] = {B, L, w, 1}, stride[4] = {bstride, w, 1, 1};
    fire(m, site, kind, layer, x, 3, shape, stride, pos0, pos1);
}

/* ---- gates ---- */

/* Whether a backward pass follows the pass now running (training, the
 * gates' or the attention's gradients). */
bool iv_backward(const at_model *m)
{
    return m->iv && (m->iv->backward || m->iv->pass == AT_PASS_TRAIN);
}

const float *iv_gates(const at_model *m, int kind, int layer)
{
    const interv *iv = m->iv;
    if (!iv || !iv->gated[blk_index(iv, kind, layer)])
        return NULL;
    return iv->gate + (size_t)blk_index(iv, kind, layer) * iv->heads;
}

/* ctx (B, L, d) rows: head j's columns times gate[j] (Michel et al. 2019),
 * after hout, when given, has kept them ungated for the gates' gradient. */
void gate_heads(float *ctx, float *hout, const float *gate, int B, int L, int d, int h,
                int64_t bstride)
{
    int dk = d / h;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++) {
            float *row = ctx + b * bstride + (int64_t)i * d;
            if (hout)
                memcpy(hout + b * bstride + (int64_t)i * d, row, (size_t)d * sizeof *row);
            for (int j = 0; j < h; j++)
                if (gate[j] != 1.0f)
                    for (int c = 0; c < dk; c++)
                        row[j * dk + c] *= gate[j];
        }
}

static at_status gate_set(at_model *m, int kind, int layer, int head, float value)
{
    const char *who = "at_gate_set";
    at_status s = check_khl(m, kind, layer, head, true, who);
    if (s != AT_OK)
        return s;
    if (!isfinite(value))
        return set_error(m, AT_E_NUMERIC, "%s: gate %g is not finite", who, (double)value);
    interv *iv = iv_get(m, who);
    if (!iv)
        return AT_E_NOMEM;
    int k0, k1, l0, l1, h0, h1;
    span(kind, 3, &k0, &k1);
    span(layer, iv->layers, &l0, &l1);
    span(head, iv->heads, &h0, &h1);
    for (int k = k0; k < k1; k++)
        for (int l = l0; l < l1; l++) {
            int b = blk_index(iv, k, l);
            float *g = iv->gate + (size_t)b * iv->heads;
            for (int j = h0; j < h1; j++)
                g[j] = value;
            iv->gated[b] = false;
            for (int j = 0; j < iv->heads; j++)
                iv->gated[b] |= g[j] != 1.0f;
        }
    return AT_OK;
}

at_status at_gate_set(at_model *m, int kind, int layer, int head, float value)
{
    GUARDED(m, "at_gate_set", gate_set(m, kind, layer, head, value));
}

at_status at_gate_get(const at_model *m, at_attn_kind kind, int layer, int head, float *out)
{
    if (!m)
        return set_error(NULL, AT_E_ARG, "at_gate_get: model is NULL");
    at_model *mm = (at_model *)m;   /* only its message changes */
    at_status s = check_khl(mm, (int)kind, layer, head, false, "at_gate_get");
    if (s == AT_OK && !out)
        s = set_error(mm, AT_E_ARG, "at_gate_get: out is NULL");
    if (s == AT_OK)
        *out = m->iv ? m->iv->gate[(size_t)blk_index(m->iv, kind, layer) * m->iv->heads + head]
                     : 1.0f;
    return s;
}

/* ---- overrides ---- */

const override_blk *iv_override(const at_model *m, int kind, int layer)
{
    const interv *iv = m->iv;
    if (!iv)
        return NULL;
    const override_blk *o = &iv->ov[blk_index(iv, kind, layer)];
    return o->p ? o : NULL;
}

/* Row i of head j of source b, or NULL where the model's own attention
 * stays (a head not overridden, a row past the override's). */
const float *override_row(const override_blk *ov, int b, int j, int i)
{
    if (!ov || !ov->heads[j] || i >= ov->Lq)
        return NULL;
    return ov->p + (((size_t)b * ov->h + j) * ov->Lq + i) * ov->Lk;
}

static void override_clear(override_blk *o)
{
    free(o->p);
    free(o->heads);
    *o = (override_blk){0};
}

/* Decoder self-attention cannot see the future: nothing above the diagonal. */
static at_status check_probs(at_model *m, const float *p, int kind, int planes, int q, int k,
                             const char *who)
{
    for (int n = 0; n < planes; n++)
        for (int i = 0; i < q; i++)
            for (int j = 0; j < k; j++) {
                float v = p[((size_t)n * q + i) * k + j];
                if (!isfinite(v))
                    return set_error(m, AT_E_NUMERIC, "%s: probs[%d][%d][%d] is %g", who, n, i,
                                     j, (double)v);
                if (kind == AT_ATTN_DEC_SELF && j > i && v != 0.0f)
                    return set_error(m, AT_E_ARG, "%s: decoder self-attention cannot look "
                                     "ahead: probs[%d][%d][%d] = %g above the diagonal must be "
                                     "0", who, n, i, j, (double)v);
            }
    return AT_OK;
}

static at_status override_set(at_model *m, int kind, int layer, int head, const float *probs,
                              int B, int q, int k)
{
    const char *who = "at_attention_override";
    /* one head, or AT_ALL for every head */
    at_status s = check_khl(m, kind, layer, head == AT_ALL ? 0 : head, false, who);
    if (s != AT_OK)
        return s;
    interv *iv = iv_get(m, who);
    if (!iv)
        return AT_E_NOMEM;
    override_blk *o = &iv->ov[blk_index(iv, kind, layer)];
    int h = iv->heads;
    if (!probs) {
        if (head == AT_ALL || !o->p)
            override_clear(o);
        else {
            o->heads[head] = false;
            bool any = false;
            for (int j = 0; j < h; j++)
                any |= o->heads[j];
            if (!any)
                override_clear(o);
        }
        return AT_OK;
    }
    if (B < 1 || q < 1 || k < 1)
        return set_error(m, AT_E_ARG, "%s: batch %d, q_len %d, k_len %d must be >= 1", who, B,
                         q, k);
    if (q > m->dm.max_len || k > m->dm.max_len)
        return set_error(m, AT_E_RANGE, "%s: lengths %d and %d; the model's maximum length is %d",
                         who, q, k, m->dm.max_len);
    if (kind == AT_ATTN_DEC_SELF && q != k)
        return set_error(m, AT_E_ARG, "%s: decoder self-attention is square: q_len %d, k_len %d",
                         who, q, k);
    if ((uint64_t)B * (uint64_t)h * (uint64_t)q * (uint64_t)k > (uint64_t)1 << 32)
        return set_error(m, AT_E_RANGE, "%s: batch %d is too large", who, B);
    int planes = head == AT_ALL ? B * h : B;
    if ((s = check_probs(m, probs, kind, planes, q, k, who)) != AT_OK)
        return s;
    if (o->p && head != AT_ALL && (o->B != B || o->Lq != q || o->Lk != k)) {
        bool others = false;
        for (int j = 0; j < h; j++)
            others |= j != head && o->heads[j];
        if (others)
            return set_error(m, AT_E_ARG, "%s: (%d, %d, %d) differs from the override other "
                             "heads of this block have, (%d, %d, %d): remove those first", who,
                             B, q, k, o->B, o->Lq, o->Lk);
    }
    if (!o->p || o->B != B || o->Lq != q || o->Lk != k) {
        override_blk n = {.B = B, .h = h, .Lq = q, .Lk = k};
        n.p = malloc((size_t)B * h * q * k * sizeof *n.p);
        n.heads = calloc((size_t)h, sizeof *n.heads);
        if (!n.p || !n.heads) {
            override_clear(&n);
            return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
        }
        override_clear(o);
        *o = n;
    }
    size_t plane = (size_t)q * k;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < h; j++) {
            if (head != AT_ALL && j != head)
                continue;
            const float *from = head == AT_ALL ? probs + ((size_t)b * h + j) * plane
                                               : probs + (size_t)b * plane;
            memcpy(o->p + ((size_t)b * h + j) * plane, from, plane * sizeof *from);
            o->heads[j] = true;
        }
    return AT_OK;
}

at_status at_attention_override(at_model *m, at_attn_kind kind, int layer, int head,
                                const float *probs, int batch, int q_len, int k_len)
{
    GUARDED(m, "at_attention_override",
            override_set(m, (int)kind, layer, head, probs, batch, q_len, k_len));
}

/* Whether the pass's sizes fit the overrides, and whether a backward pass
 * has what it needs. T < 0: decoding (any number of override rows). */
at_status iv_check_pass(at_model *m, int B, int S, int T, bool backward, const char *who)
{
    const interv *iv = m->iv;
    if (!iv)
        return AT_OK;
    if (backward && iv->drops)
        return set_error(m, AT_E_STATE, "%s: the capture policy drops attention that the "
                         "backward pass needs (at_capture_set to keep it all)", who);
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < iv->layers; l++) {
            const override_blk *o = iv_override(m, k, l);
            if (!o)
                continue;
            if (T == 0 && k != AT_ATTN_ENC_SELF)
                continue;   /* the encoder alone */
            int lq = k == AT_ATTN_ENC_SELF ? S : T, lk = k == AT_ATTN_DEC_SELF ? T : S;
            bool fits = o->B == B && (k == AT_ATTN_ENC_SELF || T >= 0 ? o->Lq == lq : true) &&
                        (k == AT_ATTN_DEC_SELF && T < 0 ? true : o->Lk == lk);
            if (!fits)
                return set_error(m, AT_E_SHAPE, "%s: the override of %s layer %d is (%d, %d, "
                                 "%d) but this pass needs (%d, %d, %d)", who, kind_names[k], l,
                                 o->B, o->Lq, o->Lk, B, T < 0 && k != AT_ATTN_ENC_SELF ? o->Lq
                                 : lq, T < 0 && k == AT_ATTN_DEC_SELF ? o->Lk : lk);
        }
    return AT_OK;
}

/* ---- the capture policy ---- */

/* A block whose whole p a tap or an override needs. */
bool iv_whole(const at_model *m, int kind, int layer)
{
    return iv_override(m, kind, layer) || iv_tapped(m, AT_SITE_SCORES, kind, layer) ||
           iv_tapped(m, AT_SITE_PROBS, kind, layer);
}

/* Which planes of p the block keeps (a->slot, a->nkept). */
void iv_layout(at_model *m, int kind, int layer, attn_a *a)
{
    interv *iv = m->iv;
    a->slot = NULL;
    a->nkept = m->dm.heads;
    /* decoding and training keep everything (docs/interventions.md) */
    if (!iv || !iv->drops || iv->pass != AT_PASS_FORWARD || iv->backward ||
        iv_whole(m, kind, layer))
        return;
    int b = blk_index(iv, kind, layer), n = 0;
    int *slot = iv->slot + (size_t)b * iv->heads;
    const bool *keep = iv->keep + (size_t)b * iv->heads;
    for (int j = 0; j < iv->heads; j++)
        slot[j] = keep[j] ? n++ : -1;
    if (n < iv->heads) {
        a->slot = slot;
        a->nkept = n;
    }
}

static at_status capture_set(at_model *m, int kind, int layer, int head, int keep)
{
    const char *who = "at_capture_set";
    at_status s = check_khl(m, kind, layer, head, true, who);
    if (s != AT_OK)
        return s;
    interv *iv = iv_get(m, who);
    if (!iv)
        return AT_E_NOMEM;
    int k0, k1, l0, l1, h0, h1;
    span(kind, 3, &k0, &k1);
    span(layer, iv->layers, &l0, &l1);
    span(head, iv->heads, &h0, &h1);
    for (int k = k0; k < k1; k++)
        for (int l = l0; l < l1; l++)
            for (int j = h0; j < h1; j++)
                iv->keep[(size_t)blk_index(iv, k, l) * iv->heads + j] = keep != 0;
    iv->drops = false;
    for (int i = 0; i < 3 * iv->layers * iv->heads; i++)
        iv->drops |= !iv->keep[i];
    return AT_OK;
}

at_status at_capture_set(at_model *m, int kind, int layer, int head, int keep)
{
    GUARDED(m, "at_capture_set", capture_set(m, kind, layer, head, keep));
}

static at_status reset(at_model *m)
{
    interv *iv = m->iv;
    if (!iv)
        return AT_OK;
    for (int b = 0; b < 3 * iv->layers; b++) {
        override_clear(&iv->ov[b]);
        iv->gated[b] = false;
    }
    for (int i = 0; i < 3 * iv->layers * iv->heads; i++) {
        iv->gate[i] = 1.0f;
        iv->keep[i] = true;
    }
    iv->drops = false;
    return AT_OK;
}

at_status at_interventions_reset(at_model *m)
{
    GUARDED(m, "at_interventions_reset", reset(m));
}

size_t at_model_activation_bytes(const at_model *m)
{
    return m ? m->arena_used * sizeof(float) : 0;
}
