/* Heads forming during training (include/at_analysis.h, group snapshots):
 * the attention, the statistics and the role scores of fixed probe inputs,
 * kept in memory every time the caller asks and written to one file.
 * Watching heads take their roles as training goes on is how Voita et al.
 * 2019 (§6) tell the roles that form early from those that form late.
 *
 * A snapshot's pass runs on a handle that shares the model's weights, made
 * for the pass and freed after it: the model's own activations, views,
 * training state and interventions are never touched, so a training run
 * with snapshots is the same bit for bit as one without. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "io/st.h"
#include "model/internal.h"

/* The statistics' top-k, as attn stats and the first snapshots had it. */
#define SNAP_TOPK 3
/* The host's metadata entries a recorder keeps. */
#define SNAP_MAX_META 8

static const char *const kind_names[3] = {"enc_self", "dec_self", "cross"};

struct at_snapshots {
    int32_t *src, *tgt;             /* the probe: src (B, S), tgt (B, T) or NULL */
    int B, S, T, kinds, layers, heads, src_vocab, tgt_vocab, every;
    int32_t pad;
    int n, cap;
    int64_t *steps;
    float **attn;                   /* [kind * layers + l]: cap x (B, h, Lq, Lk) */
    double **stats;                 /* [kind * layers + l]: cap x (h, AT_STAT_COUNT) */
    double **roles;                 /* [kind * layers + l]: cap x (h, AT_SNAPSHOT_ROLES) */
    int nmeta;
    char *meta[2 * SNAP_MAX_META];  /* the host's keys and values */
};

const char *at_snapshot_role_name(int index)
{
    const char *name = NULL;
    return at_head_role(index, &name, NULL, NULL) == AT_OK ? name : NULL;
}

static size_t plane_floats(const at_snapshots *s, int k)
{
    size_t lq = k == AT_ATTN_ENC_SELF ? (size_t)s->S : (size_t)s->T;
    size_t lk = k == AT_ATTN_DEC_SELF ? (size_t)s->T : (size_t)s->S;
    return (size_t)s->B * s->heads * lq * lk;
}

void at_snapshots_free(at_snapshots *s)
{
    if (!s)
        return;
    for (int i = 0; i < 3 * s->layers; i++) {
        free(s->attn ? s->attn[i] : NULL);
        free(s->stats ? s->stats[i] : NULL);
        free(s->roles ? s->roles[i] : NULL);
    }
    for (int i = 0; i < 2 * s->nmeta; i++)
        free(s->meta[i]);
    free(s->attn);
    free(s->stats);
    free(s->roles);
    free(s->steps);
    free(s->src);
    free(s->tgt);
    free(s);
}

static int32_t *copy_ids(const int32_t *ids, size_t n)
{
    int32_t *p = malloc(n * sizeof *p);
    if (p)
        memcpy(p, ids, n * sizeof *p);
    return p;
}

static at_status create(at_model *m, const int32_t *src, const int32_t *tgt, int B, int S,
                        int T, int32_t pad, int every, at_snapshots **out)
{
    static const char who[] = "at_snapshots_create";
    if (!out || !src)
        return set_error(m, AT_E_ARG, "%s: %s is NULL", who, out ? "src" : "out");
    if ((tgt == NULL) != (T == 0))
        return set_error(m, AT_E_ARG, "%s: tgt %s with tgt_len %d: a decoder input needs "
                         "tgt_len >= 1, an encoder-only probe tgt NULL and tgt_len 0", who,
                         tgt ? "given" : "NULL", T);
    if (every < 1)
        return set_error(m, AT_E_RANGE, "%s: every = %d; snapshots are taken every K >= 1 "
                         "steps", who, every);
    at_status st = check_forward_args(m, src, tgt, B, S, T, who);
    if (st != AT_OK)
        return st;
    at_snapshots *s = calloc(1, sizeof *s);
    if (!s)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    s->B = B, s->S = S, s->T = T, s->pad = pad, s->every = every;
    s->kinds = T > 0 ? 3 : 1;
    s->layers = m->dm.layers, s->heads = m->dm.heads;
    s->src_vocab = m->dm.src_vocab, s->tgt_vocab = m->dm.tgt_vocab;
    s->src = copy_ids(src, (size_t)B * S);
    s->tgt = tgt ? copy_ids(tgt, (size_t)B * T) : NULL;
    s->attn = calloc(3 * (size_t)s->layers, sizeof *s->attn);
    s->stats = calloc(3 * (size_t)s->layers, sizeof *s->stats);
    s->roles = calloc(3 * (size_t)s->layers, sizeof *s->roles);
    if (!s->src || (tgt && !s->tgt) || !s->attn || !s->stats || !s->roles) {
        at_snapshots_free(s);
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    }
    *out = s;
    return AT_OK;
}

at_status at_snapshots_create(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                              int src_len, int tgt_len, int32_t pad, int every,
                              at_snapshots **out)
{
    if (out)
        *out = NULL;
    GUARDED(m, "at_snapshots_create",
            create(m, src, tgt, batch, src_len, tgt_len, pad, every, out));
}

int at_snapshots_due(const at_snapshots *s, int64_t step)
{
    return s && step >= 0 && step % s->every == 0;
}

int at_snapshots_count(const at_snapshots *s) { return s ? s->n : 0; }

/* Room for one more snapshot. */
static bool grow(at_snapshots *s)
{
    if (s->n < s->cap)
        return true;
    int cap = s->cap ? 2 * s->cap : 16;
    int64_t *steps = realloc(s->steps, (size_t)cap * sizeof *steps);
    if (!steps)
        return false;
    s->steps = steps;
    for (int k = 0; k < s->kinds; k++)
        for (int l = 0; l < s->layers; l++) {
            int i = k * s->layers + l;
            float *a = realloc(s->attn[i], (size_t)cap * plane_floats(s, k) * sizeof *a);
            if (a)
                s->attn[i] = a;
            double *st = realloc(s->stats[i], (size_t)cap * s->heads * AT_STAT_COUNT *
                                                  sizeof *st);
            if (st)
                s->stats[i] = st;
            double *r = realloc(s->roles[i], (size_t)cap * s->heads * AT_SNAPSHOT_ROLES *
                                                 sizeof *r);
            if (r)
                s->roles[i] = r;
            if (!a || !st || !r)
                return false;
        }
    s->cap = cap;
    return true;
}

/* A view's elements, contiguous, into out. */
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

/* Every head's score on every role of block (k, l) of the pass on sh, in
 * out[h * AT_SNAPSHOT_ROLES + r]; NaN where a role does not apply. */
static at_status score_roles(at_model *sh, int k, int l, int heads, double *out, double *hs)
{
    for (int r = 0; r < AT_SNAPSHOT_ROLES; r++) {
        int pattern, pk;
        at_head_role(r, NULL, &pattern, &pk);
        if (pattern == AT_PAT_MONOTONIC && k != AT_ATTN_CROSS) {
            for (int h = 0; h < heads; h++)
                out[h * AT_SNAPSHOT_ROLES + r] = NAN;
            continue;
        }
        at_status st = at_head_pattern_scores(sh, (at_attn_kind)k, l, pattern, pk, hs);
        if (st != AT_OK)
            return st;
        for (int h = 0; h < heads; h++)
            out[h * AT_SNAPSHOT_ROLES + r] = hs[h];
    }
    return AT_OK;
}

/* Snapshot s->n of the pass on sh. */
static at_status record(at_snapshots *s, at_model *sh, double *hs)
{
    for (int k = 0; k < s->kinds; k++)
        for (int l = 0; l < s->layers; l++) {
            int i = k * s->layers + l;
            at_view v;
            at_status st = at_get_attention(sh, (at_attn_kind)k, l, &v);
            if (st == AT_OK)
                st = at_attention_stats(sh, (at_attn_kind)k, l, SNAP_TOPK, AT_STAT_COUNT,
                                        s->stats[i] + (size_t)s->n * s->heads * AT_STAT_COUNT);
            if (st == AT_OK)
                st = score_roles(sh, k, l, s->heads,
                                 s->roles[i] + (size_t)s->n * s->heads * AT_SNAPSHOT_ROLES, hs);
            if (st != AT_OK)
                return st;
            copy_view(s->attn[i] + (size_t)s->n * plane_floats(s, k), &v);
        }
    return AT_OK;
}

/* The model's head gates, on the handle of the probe's pass. */
static at_status copy_gates(at_model *m, at_model *sh, int kinds, int layers, int heads)
{
    for (int k = 0; k < kinds; k++)
        for (int l = 0; l < layers; l++)
            for (int h = 0; h < heads; h++) {
                float g = 1.0f;
                at_status st = at_gate_get(m, (at_attn_kind)k, l, h, &g);
                if (st == AT_OK && g != 1.0f)
                    st = at_gate_set(sh, k, l, h, g);
                if (st != AT_OK)
                    return st;
            }
    return AT_OK;
}

static at_status take(at_snapshots *s, at_model *m, int64_t step)
{
    static const char who[] = "at_snapshots_take";
    if (!s)
        return set_error(m, AT_E_ARG, "%s: the recorder is NULL", who);
    if (m->dm.layers != s->layers || m->dm.heads != s->heads ||
        m->dm.src_vocab != s->src_vocab || m->dm.tgt_vocab != s->tgt_vocab)
        return set_error(m, AT_E_SHAPE, "%s: the model has %d layers of %d heads, vocabularies "
                         "%d/%d; the recorder's model had %d of %d, %d/%d", who, m->dm.layers,
                         m->dm.heads, m->dm.src_vocab, m->dm.tgt_vocab, s->layers, s->heads,
                         s->src_vocab, s->tgt_vocab);
    if (step < 0 || (s->n > 0 && step <= s->steps[s->n - 1]))
        return set_error(m, AT_E_RANGE, "%s: step %lld; it must be >= 0 and after the last "
                         "snapshot's (%lld)", who, (long long)step,
                         s->n > 0 ? (long long)s->steps[s->n - 1] : -1LL);
    double *hs = malloc((size_t)s->heads * sizeof *hs);
    if (!hs || !grow(s)) {
        free(hs);
        return set_error(m, AT_E_NOMEM, "%s: out of memory for snapshot %d", who, s->n + 1);
    }
    at_model *sh = NULL;
    at_status st = at_model_share(m, &sh);
    if (st != AT_OK) {
        free(hs);
        return st;                  /* the message is m's already */
    }
    st = copy_gates(m, sh, s->kinds, s->layers, s->heads);
    if (st == AT_OK)
        st = at_forward(sh, s->src, s->tgt, s->B, s->S, s->T, s->pad);
    if (st == AT_OK)
        st = record(s, sh, hs);
    if (st == AT_OK)
        s->steps[s->n++] = step;
    else
        set_error(m, st, "%s: the probe's pass: %s", who, at_errmsg(sh));
    at_model_free(sh);
    free(hs);
    return st;
}

at_status at_snapshots_take(at_snapshots *s, at_model *m, int64_t step)
{
    GUARDED(m, "at_snapshots_take", take(s, m, step));
}

static bool reserved(const char *key)
{
    static const char *const keys[] = {"format", "libat_version", "every", "stats", "roles"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

at_status at_snapshots_set_meta(at_snapshots *s, const char *key, const char *value)
{
    static const char who[] = "at_snapshots_set_meta";
    if (!s || !key || !value)
        return set_error(NULL, AT_E_ARG, "%s: %s is NULL", who,
                         !s ? "the recorder" : !key ? "key" : "value");
    if (!st_utf8_ok(key) || !st_utf8_ok(value) || !key[0] || reserved(key))
        return set_error(NULL, AT_E_ARG, "%s: key '%.40s' is empty, not UTF-8 or libat's own "
                         "(format, libat_version, every, stats, roles)", who, key);
    int i = 0;
    while (i < s->nmeta && strcmp(s->meta[2 * i], key) != 0)
        i++;
    if (i == SNAP_MAX_META)
        return set_error(NULL, AT_E_ARG, "%s: at most %d keys", who, SNAP_MAX_META);
    char *k = i < s->nmeta ? s->meta[2 * i] : strdup(key), *v = strdup(value);
    if (!k || !v) {
        if (i == s->nmeta)
            free(k);
        free(v);
        return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
    }
    if (i < s->nmeta)
        free(s->meta[2 * i + 1]);
    s->meta[2 * i] = k, s->meta[2 * i + 1] = v;
    if (i == s->nmeta)
        s->nmeta++;
    return AT_OK;
}

/* The tensors of the file, in t (room for 3 + 9·layers). */
static int tensors(const at_snapshots *s, st_out *t, char (*names)[40])
{
    int j = 0;
    t[j++] = (st_out){.name = "steps", .dtype = ST_I64, .ndim = 1, .shape = {s->n},
                      .data = s->steps};
    t[j++] = (st_out){.name = "src", .dtype = ST_I32, .ndim = 2, .shape = {s->B, s->S},
                      .data = s->src};
    if (s->tgt)
        t[j++] = (st_out){.name = "tgt", .dtype = ST_I32, .ndim = 2, .shape = {s->B, s->T},
                          .data = s->tgt};
    for (int k = 0; k < s->kinds; k++)
        for (int l = 0; l < s->layers; l++) {
            int i = k * s->layers + l;
            int64_t lq = k == AT_ATTN_ENC_SELF ? s->S : s->T;
            int64_t lk = k == AT_ATTN_DEC_SELF ? s->T : s->S;
            snprintf(names[j], sizeof names[j], "attn.%s.%d", kind_names[k], l);
            t[j] = (st_out){.name = names[j], .dtype = ST_F32, .ndim = 5,
                            .shape = {s->n, s->B, s->heads, lq, lk}, .data = s->attn[i]};
            j++;
            snprintf(names[j], sizeof names[j], "stats.%s.%d", kind_names[k], l);
            t[j] = (st_out){.name = names[j], .dtype = ST_F64, .ndim = 3,
                            .shape = {s->n, s->heads, AT_STAT_COUNT}, .data = s->stats[i]};
            j++;
            snprintf(names[j], sizeof names[j], "roles.%s.%d", kind_names[k], l);
            t[j] = (st_out){.name = names[j], .dtype = ST_F64, .ndim = 3,
                            .shape = {s->n, s->heads, AT_SNAPSHOT_ROLES}, .data = s->roles[i]};
            j++;
        }
    return j;
}

at_status at_snapshots_save(const at_snapshots *s, const char *path)
{
    static const char who[] = "at_snapshots_save";
    if (!s || !path)
        return set_error(NULL, AT_E_ARG, "%s: %s is NULL", who, s ? "path" : "the recorder");
    if (s->n == 0)
        return set_error(NULL, AT_E_STATE, "%s: no snapshot taken yet", who);
    int nt = 3 + 3 * s->kinds * s->layers;
    st_out *t = calloc((size_t)nt, sizeof *t);
    char (*names)[40] = calloc((size_t)nt, sizeof *names);
    if (!t || !names) {
        free(t);
        free(names);
        return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
    }
    int j = tensors(s, t, names);
    char every[24], role_list[128] = "";
    snprintf(every, sizeof every, "%d", s->every);
    for (int r = 0; r < AT_SNAPSHOT_ROLES; r++)
        snprintf(role_list + strlen(role_list), sizeof role_list - strlen(role_list), "%s%s",
                 r ? "," : "", at_snapshot_role_name(r));
    const char *meta[2 * (5 + SNAP_MAX_META)] = {
        "format", "attn-snapshots", "libat_version", at_version_string(), "every", every,
        "stats", "entropy,entropy_norm,max,dispersion,top3,distance,rows", "roles", role_list};
    for (int i = 0; i < 2 * s->nmeta; i++)
        meta[10 + i] = s->meta[i];
    char err[512];
    at_status st = st_write(path, t, j, meta, 5 + s->nmeta, err, sizeof err);
    free(t);
    free(names);
    if (st != AT_OK)
        return set_error(NULL, st, "%s: %s", who, err);
    return AT_OK;
}
