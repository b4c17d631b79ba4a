/* attn snapshots: when each head of a training run took its role. Reads the
 * file attn train --snapshot-every writes (at_snapshots_save), finds for
 * every head its role at the last snapshot (the best of the role templates
 * at_snapshots_take scored with at_head_pattern_scores) and the first step
 * from which it kept that role, and prints or charts that with the head's
 * entropy over training. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "io/st.h"
#include "snapchart.h"

static const char help[] =
    "usage: attn snapshots --in SNAPSHOTS.safetensors [--json] [--viz DIR]\n"
    "\n"
    "When each attention head took its role during training (docs/snapshots.md).\n"
    "SNAPSHOTS is what attn train --snapshot-every K --probe F wrote. A head's role at\n"
    "a snapshot is its best template there (attn heads' library: diagonal, prev, next,\n"
    "prev2, next2, first, eos, broad, monotonic); its final role is the one at the\n"
    "last snapshot, and 'since' the first step from which it kept that role.\n"
    "\n"
    "  --in F      the snapshots\n"
    "  --json      print {\"file\", \"steps\": [...], \"roles\": [names], \"heads\": {KIND:\n"
    "              [[{\"role\", \"score\", \"since\", \"best\": [role per snapshot],\n"
    "              \"role_score\": [...], \"entropy_norm\": [...]} per head] per layer]}}\n"
    "  --viz DIR   also write DIR/snapshots.svg (small multiples: per head, its\n"
    "              normalised entropy and final role's score against the step) and\n"
    "              DIR/timeline.html (self-contained: a step slider over every head's\n"
    "              attention of the probe's first row, with its role at that step)\n"
    "  -h, --help  this text\n";

const char *snap_kind(int k)
{
    static const char *const names[3] = {"enc_self", "dec_self", "cross"};
    return k >= 0 && k < 3 ? names[k] : "?";
}

int snap_best(const snap_data *d, const snap_block *b, int i, int h)
{
    if (!b->roles)
        return -1;
    const double *r = b->roles + ((size_t)i * d->heads + h) * AT_SNAPSHOT_ROLES;
    int best = -1;
    for (int c = 0; c < AT_SNAPSHOT_ROLES; c++)
        if (!isnan(r[c]) && (best < 0 || r[c] > r[best]))
            best = c;
    return best;
}

/* ---------------------------------------------------------------- reading */

static void data_free(snap_data *d)
{
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < SNAP_MAX_LAYERS; l++) {
            snap_block *b = &d->blk[k][l];
            free(b->attn);
            free(b->stats);
            free(b->roles);
            free(b->role);
            free(b->since);
        }
    free(d->steps);
    free(d->src);
    free(d->tgt);
}

static int bad(const snap_data *d, const char *what)
{
    attn_error("snapshots: '%s' is not a snapshot file: %s", d->path, what);
    return ATTN_FAIL;
}

static bool shape_is(const st_tensor *t, int ndim, const int64_t *want)
{
    if (t->ndim != ndim)
        return false;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != want[i])
            return false;
    return true;
}

/* An F64 tensor's values (little-endian, as st_write wrote them). */
static double *read_f64(const st_tensor *t)
{
    double *p = t->dtype == ST_F64 ? malloc((size_t)t->numel * sizeof *p + 1) : NULL;
    if (p)
        memcpy(p, t->data, (size_t)t->numel * sizeof *p);
    return p;
}

static int64_t *read_i64(const st_tensor *t)
{
    int64_t *p = malloc((size_t)t->numel * sizeof *p + 1);
    char err[256];
    if (p && st_to_i64(t, p, err, sizeof err) != AT_OK) {
        free(p);
        return NULL;
    }
    return p;
}

static int read_block(const st_file *f, snap_data *d, int k, int l)
{
    snap_block *b = &d->blk[k][l];
    char name[48];
    snprintf(name, sizeof name, "attn.%s.%d", snap_kind(k), l);
    const st_tensor *a = st_find(f, name);
    b->lq = k == AT_ATTN_ENC_SELF ? d->S : d->T;
    b->lk = k == AT_ATTN_DEC_SELF ? d->T : d->S;
    int64_t ash[5] = {d->n, d->B, d->heads, b->lq, b->lk};
    if (!a || !shape_is(a, 5, ash))
        return bad(d, "an attention tensor is missing or not (n, B, h, Lq, Lk)");
    b->attn = malloc((size_t)a->numel * sizeof *b->attn + 1);
    char err[256];
    if (!b->attn || st_to_f32(a, b->attn, err, sizeof err) != AT_OK)
        return bad(d, "an attention tensor cannot be read as floats");
    snprintf(name, sizeof name, "stats.%s.%d", snap_kind(k), l);
    const st_tensor *s = st_find(f, name);
    int64_t ssh[3] = {d->n, d->heads, AT_STAT_COUNT};
    if (!s || !shape_is(s, 3, ssh) || !(b->stats = read_f64(s)))
        return bad(d, "a stats tensor is missing or not (n, h, 7) F64");
    snprintf(name, sizeof name, "roles.%s.%d", snap_kind(k), l);
    const st_tensor *r = st_find(f, name);
    int64_t rsh[3] = {d->n, d->heads, AT_SNAPSHOT_ROLES};
    if (r && (!shape_is(r, 3, rsh) || !(b->roles = read_f64(r))))
        return bad(d, "a roles tensor is not (n, h, 9) F64");
    if ((r != NULL) != d->has_roles)
        return bad(d, "some blocks have roles tensors and others not");
    return ATTN_OK;
}

static int read_probe(const st_file *f, snap_data *d)
{
    const st_tensor *st = st_find(f, "steps"), *src = st_find(f, "src"), *tgt = st_find(f, "tgt");
    if (!st || st->ndim != 1 || st->shape[0] < 1 || !src || src->ndim != 2)
        return bad(d, "no steps (n >= 1) or src (B, S)");
    if (tgt && (tgt->ndim != 2 || tgt->shape[0] != src->shape[0]))
        return bad(d, "tgt is not (B, T) of src's B");
    if (src->shape[0] > INT32_MAX || src->shape[1] > INT32_MAX || st->shape[0] > INT32_MAX ||
        (tgt && tgt->shape[1] > INT32_MAX))
        return bad(d, "sizes beyond 2^31");
    d->n = (int)st->shape[0], d->B = (int)src->shape[0], d->S = (int)src->shape[1];
    d->T = tgt ? (int)tgt->shape[1] : 0;
    d->kinds = tgt ? 3 : 1;
    d->steps = read_i64(st);
    d->src = read_i64(src);
    d->tgt = tgt ? read_i64(tgt) : NULL;
    if (!d->steps || !d->src || (tgt && !d->tgt))
        return bad(d, "steps, src or tgt is not an integer tensor");
    return ATTN_OK;
}

static int read_all(const st_file *f, snap_data *d)
{
    int rc = read_probe(f, d);
    if (rc != ATTN_OK)
        return rc;
    const st_tensor *a0 = st_find(f, "attn.enc_self.0");
    if (!a0 || a0->ndim != 5 || a0->shape[2] < 1 || a0->shape[2] > 4096)
        return bad(d, "no attn.enc_self.0 (n, B, h, S, S)");
    d->heads = (int)a0->shape[2];
    char name[48];
    for (d->layers = 0; d->layers < SNAP_MAX_LAYERS; d->layers++) {
        snprintf(name, sizeof name, "attn.enc_self.%d", d->layers);
        if (!st_find(f, name))
            break;
    }
    d->has_roles = st_find(f, "roles.enc_self.0") != NULL;
    for (int k = 0; rc == ATTN_OK && k < d->kinds; k++)
        for (int l = 0; rc == ATTN_OK && l < d->layers; l++)
            rc = read_block(f, d, k, l);
    return rc;
}

/* ---------------------------------------------------------------- roles over time */

static int settle(snap_data *d)
{
    for (int k = 0; k < d->kinds; k++)
        for (int l = 0; l < d->layers; l++) {
            snap_block *b = &d->blk[k][l];
            b->role = malloc((size_t)d->heads * sizeof *b->role);
            b->since = malloc((size_t)d->heads * sizeof *b->since);
            if (!b->role || !b->since) {
                attn_error("snapshots: out of memory");
                return ATTN_FAIL;
            }
            for (int h = 0; h < d->heads; h++) {
                int last = snap_best(d, b, d->n - 1, h), i = d->n - 1;
                while (last >= 0 && i > 0 && snap_best(d, b, i - 1, h) == last)
                    i--;
                b->role[h] = last;
                b->since[h] = last >= 0 ? i : -1;
            }
        }
    return ATTN_OK;
}

static double stat_at(const snap_data *d, const snap_block *b, int i, int h, int s)
{
    return b->stats[((size_t)i * d->heads + h) * AT_STAT_COUNT + s];
}

static double role_at(const snap_data *d, const snap_block *b, int i, int h, int r)
{
    return r < 0 ? NAN : b->roles[((size_t)i * d->heads + h) * AT_SNAPSHOT_ROLES + r];
}

/* ---------------------------------------------------------------- printing */

static void print_text(const snap_data *d)
{
    printf("%s: %d snapshots, steps %" PRId64 " .. %" PRId64 "; probe %d x %d%s", d->path, d->n,
           d->steps[0], d->steps[d->n - 1], d->B, d->S, d->T ? "" : " (encoder only)\n");
    if (d->T)
        printf(" -> %d\n", d->T);
    if (!d->has_roles)
        printf("(no roles.* tensors: a file of an older libat; entropies only)\n");
    printf("%-9s %5s %4s  %-9s %6s %8s  %s\n", "kind", "layer", "head", "role", "score", "since",
           "normalised entropy: first -> at 'since' -> last");
    int unsettled = 0;
    for (int k = 0; k < d->kinds; k++)
        for (int l = 0; l < d->layers; l++)
            for (int h = 0; h < d->heads; h++) {
                const snap_block *b = &d->blk[k][l];
                int r = b->role ? b->role[h] : -1, si = r >= 0 ? b->since[h] : 0;
                char score[16] = "-", since[24] = "-";
                if (r >= 0) {
                    snprintf(score, sizeof score, "%.3f", role_at(d, b, d->n - 1, h, r));
                    snprintf(since, sizeof since, "%" PRId64 "%s", d->steps[si],
                             si == d->n - 1 && d->n > 1 ? "*" : "");
                    unsettled += si == d->n - 1 && d->n > 1;
                }
                printf("%-9s %5d %4d  %-9s %6s %8s  %.3f -> %.3f -> %.3f\n", snap_kind(k),
                       l + 1, h + 1, r >= 0 ? at_snapshot_role_name(r) : "-", score, since,
                       stat_at(d, b, 0, h, AT_STAT_ENTROPY_NORM),
                       stat_at(d, b, si, h, AT_STAT_ENTROPY_NORM),
                       stat_at(d, b, d->n - 1, h, AT_STAT_ENTROPY_NORM));
            }
    if (unsettled)
        printf("* %d head%s took %s role only at the last snapshot: not settled yet\n",
               unsettled, unsettled == 1 ? "" : "s", unsettled == 1 ? "its" : "their");
}

static void json_num(double v)
{
    if (isfinite(v))
        printf("%.6g", v);
    else
        printf("null");
}

static void json_head(const snap_data *d, const snap_block *b, int h)
{
    int r = b->role ? b->role[h] : -1;
    printf("{\"role\": ");
    if (r >= 0)
        printf("\"%s\", \"score\": ", at_snapshot_role_name(r));
    else
        printf("null, \"score\": ");
    json_num(role_at(d, b, d->n - 1, h, r));
    printf(", \"since\": ");
    if (r >= 0)
        printf("%" PRId64, d->steps[b->since[h]]);
    else
        printf("null");
    printf(", \"best\": [");
    for (int i = 0; i < d->n; i++) {
        int bi = snap_best(d, b, i, h);
        if (bi >= 0)
            printf("%s\"%s\"", i ? ", " : "", at_snapshot_role_name(bi));
        else
            printf("%snull", i ? ", " : "");
    }
    printf("], \"role_score\": [");
    for (int i = 0; i < d->n; i++) {
        printf("%s", i ? ", " : "");
        json_num(role_at(d, b, i, h, r));
    }
    printf("], \"entropy_norm\": [");
    for (int i = 0; i < d->n; i++) {
        printf("%s", i ? ", " : "");
        json_num(stat_at(d, b, i, h, AT_STAT_ENTROPY_NORM));
    }
    printf("]}");
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(const snap_data *d)
{
    printf("{\n  \"file\": ");
    json_string(d->path);
    printf(",\n  \"steps\": [");
    for (int i = 0; i < d->n; i++)
        printf("%s%" PRId64, i ? ", " : "", d->steps[i]);
    printf("],\n  \"roles\": [");
    for (int r = 0; r < AT_SNAPSHOT_ROLES; r++)
        printf("%s\"%s\"", r ? ", " : "", at_snapshot_role_name(r));
    printf("],\n  \"heads\": {");
    for (int k = 0; k < d->kinds; k++) {
        printf("%s\n    \"%s\": [", k ? "," : "", snap_kind(k));
        for (int l = 0; l < d->layers; l++) {
            printf("%s\n      [", l ? "," : "");
            for (int h = 0; h < d->heads; h++) {
                printf("%s\n        ", h ? "," : "");
                json_head(d, &d->blk[k][l], h);
            }
            printf("]");
        }
        printf("]");
    }
    printf("\n  }\n}\n");
}

/* ---------------------------------------------------------------- charts */

static int write_one(const outdir *od, const char *name, const snap_data *d, bool html)
{
    tbuf b = {0};
    if (html)
        snapchart_html(&b, d);
    else
        snapchart_svg(&b, d);
    char *path = outdir_path(od, name);
    int rc;
    if (b.oom || !path) {
        attn_error("snapshots: out of memory for %s", name);
        rc = ATTN_FAIL;
    } else {
        rc = report_write_file("snapshots", path, b.p, b.len);
    }
    free(path);
    free(b.p);
    return rc;
}

static int write_viz(const snap_data *d, const char *dir)
{
    outdir od;
    int rc = outdir_begin(&od, "snapshots", dir);
    if (rc != ATTN_OK)
        return rc;
    rc = write_one(&od, "snapshots.svg", d, false);
    if (rc == ATTN_OK)
        rc = write_one(&od, "timeline.html", d, true);
    if (rc == ATTN_OK)
        return outdir_commit(&od);
    outdir_abort(&od);
    return rc;
}

int cmd_snapshots(int argc, char **argv)
{
    const char *in = NULL, *viz = NULL;
    bool json = false;
    opt opts[] = {
        {"in", OPT_STR, &in, 0, 0, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"viz", OPT_STR, &viz, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    if (args_require("snapshots", &opts[0]) != ATTN_OK)
        return ATTN_USAGE;
    static const char *const files[] = {"snapshots.svg", "timeline.html", NULL};
    if (viz && outdir_check("snapshots", viz, files, NULL) != ATTN_OK)   /* before the work */
        return ATTN_FAIL;
    st_file f;
    char err[512];
    if (st_read(&f, in, err, sizeof err) != AT_OK) {
        attn_error("snapshots: cannot read --in: %s", err);
        return ATTN_FAIL;
    }
    static snap_data d;
    memset(&d, 0, sizeof d);
    d.path = in;
    rc = read_all(&f, &d);
    st_free(&f);
    if (rc == ATTN_OK)
        rc = settle(&d);
    if (rc == ATTN_OK)
        json ? print_json(&d) : print_text(&d);
    if (rc == ATTN_OK && fflush(stdout) != 0) {
        attn_error("snapshots: cannot write to the standard output");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && viz)
        rc = write_viz(&d, viz);
    if (rc == ATTN_OK && viz && !json)
        printf("wrote %s/snapshots.svg and %s/timeline.html\n", viz, viz);
    data_free(&d);
    return rc;
}
