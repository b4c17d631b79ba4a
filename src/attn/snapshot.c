/* attn train --snapshot-every K --probe F: the attention, statistics and
 * role scores of fixed probe inputs every K training steps, recorded by the
 * library (at_snapshots_*, include/at_analysis.h) and rewritten to one file
 * after each snapshot, so a run that stops keeps what it recorded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "at_text.h"
#include "attn.h"

struct snapshots {
    const char *who, *out;
    at_snapshots *rec;
};

void snap_close(snapshots *s)
{
    if (!s)
        return;
    at_snapshots_free(s->rec);
    free(s);
}

/* A recorder of the probe src (B, S) / tgt (B, T or 0), pad 0, with its
 * first snapshot taken and written; text (or NULL) the probe's sentences,
 * kept in the metadata. */
static int open_ids(const char *who, const char *name, const char *text, const int32_t *src,
                    const int32_t *tgt, int B, int S, int T, const char *out, int every,
                    at_model *m, snapshots **res)
{
    *res = NULL;
    snapshots *s = calloc(1, sizeof *s);
    if (!s) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    s->who = who, s->out = out;
    if (at_snapshots_create(m, src, tgt, B, S, T, 0, every, &s->rec) != AT_OK) {
        attn_error("%s: the probe: %s", who, at_errmsg(m));
        snap_close(s);
        return ATTN_FAIL;
    }
    if (at_snapshots_set_meta(s->rec, "probe", name) != AT_OK ||
        (text && at_snapshots_set_meta(s->rec, "probe_text", text) != AT_OK)) {
        attn_error("%s: %s", who, at_errmsg(NULL));
        snap_close(s);
        return ATTN_FAIL;
    }
    /* the probe must run on this model: one pass now, which is also step 0's
     * snapshot when the run starts from scratch */
    int rc = snap_take(s, m);
    if (rc != ATTN_OK) {
        snap_close(s);
        return rc;
    }
    *res = s;
    return ATTN_OK;
}

int snap_open(const char *who, const char *probe, const char *out, int every, at_model *m,
              snapshots **res)
{
    *res = NULL;
    int32_t *src = NULL, *tgt = NULL;
    int B = 0, S = 0, T = 0;
    int rc = io_read_input(who, "--probe", probe, false, &src, &tgt, &B, &S, &T);
    if (rc == ATTN_OK)
        rc = open_ids(who, probe, NULL, src, tgt, B, S, T, out, every, m, res);
    free(src);
    free(tgt);
    return rc;
}

/* ---------------------------------------------------------------- --probe-text */

/* The probe's sentences: each "source" or "source ||| target", from the
 * command line or, for a value @F, the lines of file F. */
enum { PROBE_MAX_ROWS = 256 };
typedef struct probe_text {
    const char *v[PROBE_MAX_ROWS];
    size_t len[PROBE_MAX_ROWS];
    int n;
    nmt_lines files[8];
    int nfiles;
} probe_text;

static int add_sentence(const char *who, probe_text *p, const char *v, size_t len)
{
    if (p->n == PROBE_MAX_ROWS) {
        attn_error("%s: --probe-text: more than %d sentences; a probe is a few fixed inputs",
                   who, PROBE_MAX_ROWS);
        return ATTN_FAIL;
    }
    p->v[p->n] = v;
    p->len[p->n++] = len;
    return ATTN_OK;
}

static int gather(const char *who, const opt_list *texts, probe_text *p)
{
    for (int i = 0; i < texts->n; i++) {
        const char *v = texts->v[i];
        if (v[0] != '@') {
            int rc = add_sentence(who, p, v, strlen(v));
            if (rc != ATTN_OK)
                return rc;
            continue;
        }
        if (p->nfiles == (int)(sizeof p->files / sizeof *p->files)) {
            attn_error("%s: --probe-text: at most 8 files", who);
            return ATTN_FAIL;
        }
        nmt_lines *l = &p->files[p->nfiles];
        if (nmt_read_lines(who, v + 1, l) != ATTN_OK)
            return ATTN_FAIL;
        p->nfiles++;
        for (int j = 0; j < l->n; j++) {
            int rc = add_sentence(who, p, l->v[j], l->len[j]);
            if (rc != ATTN_OK)
                return rc;
        }
    }
    return ATTN_OK;
}

/* The ids of every row: src <s> pieces </s>; tgt, the decoder input, the
 * target's <s> pieces (its </s> is what the last position predicts). */
typedef struct probe_ids {
    int32_t *row[2][PROBE_MAX_ROWS];
    int len[2][PROBE_MAX_ROWS];
    int most[2];
    int with_tgt;   /* -1 until the first sentence tells */
} probe_ids;

static int encode_row(const char *who, const probe_text *p, int i, struct at_tokenizer *src_tok,
                      struct at_tokenizer *tgt_tok, int max_len, probe_ids *e)
{
    static const char sep[] = " ||| ";
    const char *v = p->v[i], *bar = NULL;
    for (size_t j = 0; j + strlen(sep) <= p->len[i] && !bar; j++)
        if (memcmp(v + j, sep, strlen(sep)) == 0)
            bar = v + j;
    if (e->with_tgt < 0)
        e->with_tgt = bar != NULL;
    if ((bar != NULL) != (e->with_tgt == 1)) {
        attn_error("%s: --probe-text: sentence %d %s a target (' ||| '): every sentence has "
                   "one, or none does", who, i + 1, bar ? "has" : "lacks");
        return ATTN_FAIL;
    }
    size_t slen = bar ? (size_t)(bar - v) : p->len[i];
    bool cut = false;
    int rc = nmt_encode(who, src_tok, v, slen, max_len, &e->row[0][i], &e->len[0][i], &cut);
    if (rc == ATTN_OK && bar) {
        const char *t = bar + strlen(sep);
        rc = nmt_encode(who, tgt_tok, t, p->len[i] - (size_t)(t - v), max_len + 1,
                        &e->row[1][i], &e->len[1][i], &cut);
        e->len[1][i]--;   /* the decoder input: without </s> */
    }
    if (rc == ATTN_OK && cut)
        fprintf(stderr, "attn: %s: --probe-text: sentence %d cut to the model's %d positions\n",
                who, i + 1, max_len);
    for (int k = 0; rc == ATTN_OK && k < 2; k++)
        if (e->len[k][i] > e->most[k])
            e->most[k] = e->len[k][i];
    return rc;
}

/* Rows of different lengths into one (rows, most) array, padded with 0. */
static int32_t *pack(int32_t *const *row, const int *len, int n, int most)
{
    int32_t *out = calloc((size_t)n * (size_t)most, sizeof *out);
    for (int i = 0; out && i < n; i++)
        memcpy(out + (size_t)i * most, row[i], (size_t)len[i] * sizeof *out);
    return out;
}

/* The sentences, one a line, for the file's metadata (malloc'd). */
static char *joined(const probe_text *p)
{
    size_t n = 1;
    for (int i = 0; i < p->n; i++)
        n += p->len[i] + 1;
    char *s = malloc(n), *w = s;
    for (int i = 0; s && i < p->n; i++) {
        memcpy(w, p->v[i], p->len[i]);
        w += p->len[i];
        *w++ = i + 1 < p->n ? '\n' : '\0';
    }
    if (s && p->n == 0)
        *s = '\0';
    return s;
}

int snap_open_text(const char *who, const opt_list *texts, struct at_tokenizer *src_tok,
                   struct at_tokenizer *tgt_tok, const char *out, int every, at_model *m,
                   snapshots **res)
{
    *res = NULL;
    static probe_text p;
    static probe_ids e;
    memset(&p, 0, sizeof p);
    memset(&e, 0, sizeof e);
    int rc = gather(who, texts, &p);
    if (rc == ATTN_OK && p.n == 0) {
        attn_error("%s: --probe-text: no sentence", who);
        rc = ATTN_FAIL;
    }
    e.with_tgt = -1;
    int max_len = io_model_int(m, AT_P_MAX_LEN);
    for (int i = 0; rc == ATTN_OK && i < p.n; i++)
        rc = encode_row(who, &p, i, src_tok, tgt_tok, max_len, &e);
    int32_t *src = NULL, *tgt = NULL;
    char *text = NULL;
    if (rc == ATTN_OK) {
        src = pack(e.row[0], e.len[0], p.n, e.most[0]);
        tgt = e.with_tgt == 1 ? pack(e.row[1], e.len[1], p.n, e.most[1]) : NULL;
        text = joined(&p);
        if (!src || (e.with_tgt == 1 && !tgt) || !text) {
            attn_error("%s: out of memory", who);
            rc = ATTN_FAIL;
        }
    }
    if (rc == ATTN_OK)
        rc = open_ids(who, "--probe-text", text, src, tgt, p.n, e.most[0],
                      e.with_tgt == 1 ? e.most[1] : 0, out, every, m, res);
    free(src);
    free(tgt);
    free(text);
    for (int i = 0; i < p.n; i++) {
        free(e.row[0][i]);
        free(e.row[1][i]);
    }
    for (int i = 0; i < p.nfiles; i++)
        nmt_lines_free(&p.files[i]);
    return rc;
}

int snap_take(snapshots *s, at_model *m)
{
    if (at_snapshots_take(s->rec, m, (int64_t)at_model_steps(m)) != AT_OK) {
        attn_error("%s: snapshot: %s", s->who, at_errmsg(m));
        return ATTN_FAIL;
    }
    if (at_snapshots_save(s->rec, s->out) != AT_OK) {
        attn_error("%s: cannot write the snapshots: %s", s->who, at_errmsg(NULL));
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

int snap_after_step(snapshots *s, at_model *m)
{
    if (!s || !at_snapshots_due(s->rec, (int64_t)at_model_steps(m)))
        return ATTN_OK;
    return snap_take(s, m);
}

int snap_count(const snapshots *s) { return s ? at_snapshots_count(s->rec) : 0; }

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
