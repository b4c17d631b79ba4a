/* attn train --snapshot-every K --probe F: the attention, statistics and
 * role scores of fixed probe inputs every K training steps, recorded by the
 * library (at_snapshots_*, include/at_analysis.h) and rewritten to one file
 * after each snapshot, so a run that stops keeps what it recorded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
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
 * first snapshot taken and written. */
static int open_ids(const char *who, const char *name, const int32_t *src, const int32_t *tgt,
                    int B, int S, int T, const char *out, int every, at_model *m,
                    snapshots **res)
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
    if (at_snapshots_set_meta(s->rec, "probe", name) != AT_OK) {
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
        rc = open_ids(who, probe, src, tgt, B, S, T, out, every, m, res);
    free(src);
    free(tgt);
    return rc;
}

int snap_open_ids(const char *who, const char *name, const int32_t *src, const int32_t *tgt,
                  int B, int S, int T, const char *out, int every, at_model *m,
                  snapshots **res)
{
    return open_ids(who, name, src, tgt, B, S, T, out, every, m, res);
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
