/* attn train --snapshot-every K --probe F: the attention and the head
 * statistics of fixed probe inputs every K training steps, in one file
 * rewritten (atomically) after each snapshot, so a run that stops keeps what
 * it recorded. Watching heads take their roles as training goes on is how
 * Voita et al. 2019 (§6) tell the roles that form early from those that
 * form late. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_viz.h"
#include "attn.h"

/* The statistics kept per head, in at_stat order. */
#define SNAP_TOPK 3

struct snapshots {
    const char *who, *out, *probe;
    int every;
    int32_t *src, *tgt;           /* the probe: src (B, S), tgt (B, T) or NULL */
    int B, S, T, kinds, layers, heads;
    int n, cap;
    int64_t *steps;
    float **attn;                 /* [kind * layers + l]: cap x (B, h, Lq, Lk) */
    double **stats;               /* [kind * layers + l]: cap x (h, AT_STAT_COUNT) */
};

static size_t plane_floats(const snapshots *s, int k)
{
    size_t lq = k == AT_ATTN_ENC_SELF ? (size_t)s->S : (size_t)s->T;
    size_t lk = k == AT_ATTN_DEC_SELF ? (size_t)s->T : (size_t)s->S;
    return (size_t)s->B * s->heads * lq * lk;
}

void snap_close(snapshots *s)
{
    if (!s)
        return;
    for (int i = 0; s->attn && s->stats && i < 3 * s->layers; i++) {
        free(s->attn[i]);
        free(s->stats[i]);
    }
    free(s->attn);
    free(s->stats);
    free(s->steps);
    free(s->src);
    free(s->tgt);
    free(s);
}

int snap_open(const char *who, const char *probe, const char *out, int every, at_model *m,
              snapshots **res)
{
    *res = NULL;
    snapshots *s = calloc(1, sizeof *s);
    if (!s) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    s->who = who, s->probe = probe, s->out = out, s->every = every;
    s->layers = io_model_int(m, AT_P_LAYERS);
    s->heads = io_model_int(m, AT_P_HEADS);
    s->attn = calloc(3 * (size_t)s->layers, sizeof *s->attn);
    s->stats = calloc(3 * (size_t)s->layers, sizeof *s->stats);
    int rc = s->attn && s->stats ? io_read_input(who, "--probe", probe, false, &s->src, &s->tgt,
                                                 &s->B, &s->S, &s->T)
                                 : ATTN_FAIL;
    if (!s->attn || !s->stats)
        attn_error("%s: out of memory", who);
    s->kinds = s->T > 0 ? 3 : 1;
    /* the probe must run on this model: one pass now, which is also step 0's
     * snapshot when the run starts from scratch */
    if (rc == ATTN_OK)
        rc = snap_take(s, m);
    if (rc != ATTN_OK) {
        snap_close(s);
        return rc;
    }
    *res = s;
    return ATTN_OK;
}

/* Room for one more snapshot. */
static bool grow(snapshots *s)
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
            if (!a || !st)
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

static int record(snapshots *s, at_model *m)
{
    for (int k = 0; k < s->kinds; k++)
        for (int l = 0; l < s->layers; l++) {
            int i = k * s->layers + l;
            at_view v;
            if (at_get_attention(m, (at_attn_kind)k, l, &v) != AT_OK ||
                at_attention_stats(m, (at_attn_kind)k, l, SNAP_TOPK, AT_STAT_COUNT,
                                   s->stats[i] + (size_t)s->n * s->heads * AT_STAT_COUNT) !=
                    AT_OK) {
                attn_error("%s: snapshot: %s", s->who, at_errmsg(m));
                return ATTN_FAIL;
            }
            copy_view(s->attn[i] + (size_t)s->n * plane_floats(s, k), &v);
        }
    s->steps[s->n++] = (int64_t)at_model_steps(m);
    return ATTN_OK;
}

static int write_file(const snapshots *s)
{
    int nt = 3 + 2 * s->kinds * s->layers, j = 0;
    st_out *t = calloc((size_t)nt, sizeof *t);
    char (*names)[40] = calloc((size_t)nt, sizeof *names);
    if (!t || !names) {
        free(t);
        free(names);
        attn_error("%s: out of memory", s->who);
        return ATTN_FAIL;
    }
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
            const char *kind = at_viz_kind_name((at_attn_kind)k);
            int64_t lq = k == AT_ATTN_ENC_SELF ? s->S : s->T, lk = k == AT_ATTN_DEC_SELF
                                                                       ? s->T : s->S;
            snprintf(names[j], sizeof names[j], "attn.%s.%d", kind, l);
            t[j] = (st_out){.name = names[j], .dtype = ST_F32, .ndim = 5,
                            .shape = {s->n, s->B, s->heads, lq, lk}, .data = s->attn[i]};
            j++;
            snprintf(names[j], sizeof names[j], "stats.%s.%d", kind, l);
            t[j] = (st_out){.name = names[j], .dtype = ST_F64, .ndim = 3,
                            .shape = {s->n, s->heads, AT_STAT_COUNT}, .data = s->stats[i]};
            j++;
        }
    char every[16];
    snprintf(every, sizeof every, "%d", s->every);
    const char *meta[] = {"format", "attn-snapshots", "libat_version", at_version_string(),
                          "probe", s->probe, "every", every,
                          "stats", "entropy,entropy_norm,max,dispersion,top3,distance,rows"};
    char err[512];
    at_status st = st_write(s->out, t, j, meta, 5, err, sizeof err);
    free(t);
    free(names);
    if (st != AT_OK) {
        attn_error("%s: cannot write the snapshots: %s", s->who, err);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

int snap_take(snapshots *s, at_model *m)
{
    if (!grow(s)) {
        attn_error("%s: out of memory for snapshot %d", s->who, s->n + 1);
        return ATTN_FAIL;
    }
    /* an evaluation pass: the weights and the optimizer are not touched */
    if (at_forward(m, s->src, s->tgt, s->B, s->S, s->T, 0) != AT_OK) {
        attn_error("%s: the probe's pass failed: %s", s->who, at_errmsg(m));
        return ATTN_FAIL;
    }
    int rc = record(s, m);
    return rc == ATTN_OK ? write_file(s) : rc;
}

int snap_after_step(snapshots *s, at_model *m)
{
    if (!s || at_model_steps(m) % (uint64_t)s->every != 0)
        return ATTN_OK;
    return snap_take(s, m);
}

int snap_count(const snapshots *s) { return s ? s->n : 0; }

char *snap_default_path(const char *out)
{
    size_t n = strlen(out);
    const char *ext = ".safetensors";
    if (n > strlen(ext) && strcmp(out + n - strlen(ext), ext) == 0)
        n -= strlen(ext);
    char *p = malloc(n + sizeof ".snapshots.safetensors");
    if (p)
        snprintf(p, n + sizeof ".snapshots.safetensors", "%.*s.snapshots.safetensors", (int)n,
                 out);
    return p;
}
