/* attn heads: the role of every attention head (Voita et al. 2019): each
 * head scored on a library of templates (at_head_pattern_scores, and the
 * user's through at_head_template_scores) and labelled with the best. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "report.h"

static const char help[] =
    "usage: attn heads --model M.safetensors [--heads H] --input BATCH.safetensors\n"
    "                  [--pad ID] [--template NAME=FILE ...] [--json] [--viz DIR]\n"
    "\n"
    "Label every attention head of every kind with the template it follows best on a\n"
    "batch (docs/heads.md). A head's score on a template is the mean over the valid\n"
    "query rows of its attention mass on the template (masked keys left out); for\n"
    "'broad' the normalised entropy of the row. The templates:\n"
    "  diagonal  query i on key i           prev, next   keys i - 1, i + 1\n"
    "  prev2, next2  keys i - 2, i + 2      first        the first key\n"
    "  eos       the last non-pad key       broad        normalised entropy\n"
    "  monotonic cross-attention only: query r of n_q on key round(r (n_k-1)/(n_q-1))\n"
    "\n"
    "BATCH holds integer tensors (I32 or I64) as for attn dump: src (B, S) and,\n"
    "optionally, tgt (B, T), the decoder input; without it only enc_self is scored.\n"
    "\n"
    "  --model M    the checkpoint\n"
    "  --heads H    attention heads, for a checkpoint without libat metadata\n"
    "  --input F    the batch\n"
    "  --pad ID     padding id of src and tgt (default 0)\n"
    "  --template NAME=FILE  a template of yours: FILE (safetensors) holds tensors\n"
    "               named enc_self, dec_self and/or cross, each (Lq, Lk) or (B, Lq, Lk),\n"
    "               non-negative weights; the kinds it lacks get null. Repeatable\n"
    "  --json       print {\"patterns\": [names], \"heads\": {KIND: [[{\"best\": name,\n"
    "               \"score\": s, \"scores\": {name: s}} per head] per layer]}}; a\n"
    "               template that does not apply to a kind scores null\n"
    "  --viz DIR    also chart the labels: DIR/heads-KIND.svg, a layers x heads grid\n"
    "               per kind, each cell coloured by its best template, its score in it\n"
    "  -h, --help   this text\n";

enum { NBUILTIN = 9, MAX_TEMPLATES = 32 };

/* One column of the library: a built-in pattern with its k, or a user file. */
typedef struct column {
    const char *name;
    int pattern, k;               /* pattern −1: user template */
    st_file file;
} column;

static const column builtin[NBUILTIN] = {
    {"diagonal", AT_PAT_DIAGONAL, 0, {0}}, {"prev", AT_PAT_PREV, 0, {0}},
    {"next", AT_PAT_NEXT, 0, {0}},         {"prev2", AT_PAT_OFFSET, -2, {0}},
    {"next2", AT_PAT_OFFSET, 2, {0}},      {"first", AT_PAT_FIRST, 0, {0}},
    {"eos", AT_PAT_EOS, 0, {0}},           {"broad", AT_PAT_BROAD, 0, {0}},
    {"monotonic", AT_PAT_MONOTONIC, 0, {0}},
};

/* Every score: [kind][layer][head][column], NaN where it does not apply. */
typedef struct table {
    int layers, heads, ncol, nkinds;
    column col[NBUILTIN + MAX_TEMPLATES];
    double *s;
} table;

static double *cell(const table *t, int k, int l, int h)
{
    return t->s + (((size_t)k * t->layers + l) * t->heads + h) * (size_t)t->ncol;
}

/* The best column of a head (the first of equal ones), or −1. */
static int best_of(const table *t, const double *sc)
{
    int best = -1;
    for (int c = 0; c < t->ncol; c++)
        if (!isnan(sc[c]) && (best < 0 || sc[c] > sc[best]))
            best = c;
    return best;
}

static const char *kind_name(int k)
{
    return at_viz_kind_name((at_attn_kind)k);
}

/* ---------------------------------------------------------------- templates */

static int add_template(table *t, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        attn_error("heads: --template %s: expected NAME=FILE", arg);
        return ATTN_USAGE;
    }
    if (t->ncol >= NBUILTIN + MAX_TEMPLATES) {
        attn_error("heads: at most %d --template files", MAX_TEMPLATES);
        return ATTN_USAGE;
    }
    column *c = &t->col[t->ncol];
    size_t n = (size_t)(eq - arg);
    char *name = malloc(n + 1);
    if (!name) {
        attn_error("heads: out of memory");
        return ATTN_FAIL;
    }
    memcpy(name, arg, n);
    name[n] = '\0';
    for (int i = 0; i < t->ncol; i++)
        if (strcmp(t->col[i].name, name) == 0) {
            attn_error("heads: --template %s: the name '%s' is taken", arg, name);
            free(name);
            return ATTN_USAGE;
        }
    *c = (column){name, -1, 0, {0}};
    t->ncol++;
    char err[512];
    if (st_read(&c->file, eq + 1, err, sizeof err) != AT_OK) {
        attn_error("heads: --template %s: %s", arg, err);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* A user template of kind k as floats (NULL and ATTN_OK: the file has none). */
static int template_data(const column *c, int k, float **out, int *batch, int *lq, int *lk)
{
    *out = NULL;
    const st_tensor *x = st_find(&c->file, kind_name(k));
    if (!x)
        return ATTN_OK;
    if (x->ndim != 2 && x->ndim != 3) {
        attn_error("heads: template %s: tensor %s has %d dimensions; it must be (Lq, Lk) or "
                   "(B, Lq, Lk)", c->name, kind_name(k), x->ndim);
        return ATTN_FAIL;
    }
    int o = x->ndim - 2;
    *batch = o ? (int)x->shape[0] : 1;
    *lq = (int)x->shape[o];
    *lk = (int)x->shape[o + 1];
    char err[512];
    *out = malloc((size_t)(x->numel ? x->numel : 1) * sizeof **out);
    if (!*out || st_to_f32(x, *out, err, sizeof err) != AT_OK) {
        attn_error("heads: template %s: tensor %s: %s", c->name, kind_name(k),
                   *out ? err : "out of memory");
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* ---------------------------------------------------------------- scoring */

static int score_column(at_model *m, table *t, int k, int l, int c, double *hs)
{
    const column *col = &t->col[c];
    for (int h = 0; h < t->heads; h++)
        hs[h] = NAN;
    if (col->pattern == AT_PAT_MONOTONIC && k != AT_ATTN_CROSS)
        return ATTN_OK;
    if (col->pattern >= 0) {
        if (at_head_pattern_scores(m, (at_attn_kind)k, l, col->pattern, col->k, hs) == AT_OK)
            return ATTN_OK;
        attn_error("heads: %s layer %d, %s: %s", kind_name(k), l + 1, col->name, at_errmsg(m));
        return ATTN_FAIL;
    }
    float *x = NULL;
    int b = 0, lq = 0, lk = 0;
    int rc = template_data(col, k, &x, &b, &lq, &lk);
    if (rc == ATTN_OK && x &&
        at_head_template_scores(m, (at_attn_kind)k, l, x, b, lq, lk, hs) != AT_OK) {
        attn_error("heads: template %s, %s layer %d: %s", col->name, kind_name(k), l + 1,
                   at_errmsg(m));
        rc = ATTN_FAIL;
    }
    free(x);
    return rc;
}

static int score_all(at_model *m, table *t)
{
    size_t n = (size_t)3 * t->layers * t->heads * t->ncol;
    t->s = malloc(n * sizeof *t->s);
    double *hs = malloc((size_t)t->heads * sizeof *hs);
    int rc = t->s && hs ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("heads: out of memory");
    for (size_t i = 0; t->s && i < n; i++)
        t->s[i] = NAN;
    for (int k = 0; rc == ATTN_OK && k < t->nkinds; k++)
        for (int l = 0; rc == ATTN_OK && l < t->layers; l++)
            for (int c = 0; rc == ATTN_OK && c < t->ncol; c++) {
                rc = score_column(m, t, k, l, c, hs);
                for (int h = 0; rc == ATTN_OK && h < t->heads; h++)
                    cell(t, k, l, h)[c] = hs[h];
            }
    free(hs);
    return rc;
}

/* ---------------------------------------------------------------- printing */

static void print_text(const table *t)
{
    printf("%-9s %5s %4s  %-12s %s\n", "kind", "layer", "head", "best", "score");
    for (int k = 0; k < t->nkinds; k++)
        for (int l = 0; l < t->layers; l++)
            for (int h = 0; h < t->heads; h++) {
                const double *sc = cell(t, k, l, h);
                int b = best_of(t, sc);
                printf("%-9s %5d %4d  %-12s %.4f\n", kind_name(k), l + 1, h + 1,
                       b < 0 ? "-" : t->col[b].name, b < 0 ? NAN : sc[b]);
            }
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void json_head(const table *t, const double *sc)
{
    int b = best_of(t, sc);
    printf("{\"best\": ");
    if (b < 0)
        printf("null, \"score\": null");
    else {
        json_string(t->col[b].name);
        printf(", \"score\": %.9g", sc[b]);
    }
    printf(", \"scores\": {");
    for (int c = 0; c < t->ncol; c++) {
        printf("%s", c ? ", " : "");
        json_string(t->col[c].name);
        printf(isnan(sc[c]) ? ": null" : ": %.9g", sc[c]);
    }
    printf("}}");
}

static void print_json(const table *t)
{
    printf("{\n  \"patterns\": [");
    for (int c = 0; c < t->ncol; c++) {
        printf("%s", c ? ", " : "");
        json_string(t->col[c].name);
    }
    printf("],\n  \"layers\": %d,\n  \"heads_per_layer\": %d,\n  \"heads\": {", t->layers,
           t->heads);
    for (int k = 0; k < t->nkinds; k++) {
        printf("%s\n    \"%s\": [", k ? "," : "", kind_name(k));
        for (int l = 0; l < t->layers; l++) {
            printf("%s\n      [", l ? "," : "");
            for (int h = 0; h < t->heads; h++) {
                printf("%s", h ? ", " : "");
                json_head(t, cell(t, k, l, h));
            }
            putchar(']');
        }
        printf("\n    ]");
    }
    printf("\n  }\n}\n");
}

/* ---------------------------------------------------------------- the pass */

static int run_pass(at_model *m, const char *input, int pad, table *t)
{
    st_file f = {0};
    int32_t *src = NULL, *tgt = NULL;
    int B = 0, S = 0, Bt = 0, T = 0, rc = ATTN_OK;
    char err[512];
    if (st_read(&f, input, err, sizeof err) != AT_OK) {
        attn_error("heads: cannot read input: %s", err);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK)
        rc = io_read_ids(&f, input, "src", true, &src, &B, &S);
    if (rc == ATTN_OK)
        rc = io_read_ids(&f, input, "tgt", false, &tgt, &Bt, &T);
    if (rc == ATTN_OK && tgt && Bt != B) {
        attn_error("%s: src has %d rows but tgt has %d; they must be the same batch", input,
                   B, Bt);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && at_forward(m, src, tgt, B, S, T, pad) != AT_OK) {
        attn_error("heads: forward pass on '%s' failed: %s", input, at_errmsg(m));
        rc = ATTN_FAIL;
    }
    t->nkinds = tgt ? 3 : 1;
    free(src);
    free(tgt);
    st_free(&f);
    return rc;
}

static void table_free(table *t)
{
    for (int c = NBUILTIN; c < t->ncol; c++) {
        free((char *)t->col[c].name);
        st_free(&t->col[c].file);
    }
    free(t->s);
}

int cmd_heads(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *viz = NULL;
    int heads = 0, pad = 0;
    bool json = false;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    static opt_list tmpl;
    tmpl.n = 0;
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"template", OPT_LIST, &tmpl, 0, 0, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"viz", OPT_STR, &viz, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    for (int i = 0; i < 2; i++)
        if (args_require("heads", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    static table t;
    memset(&t, 0, sizeof t);
    memcpy(t.col, builtin, sizeof builtin);
    t.ncol = NBUILTIN;
    rc = ATTN_OK;
    for (int i = 0; rc == ATTN_OK && i < tmpl.n; i++)
        rc = add_template(&t, tmpl.v[i]);
    at_model *m = NULL;
    if (rc == ATTN_OK)
        rc = io_load_model(model, heads, &m, NULL);
    t.layers = io_model_int(m, AT_P_LAYERS);
    t.heads = io_model_int(m, AT_P_HEADS);
    if (rc == ATTN_OK)
        rc = run_pass(m, input, pad, &t);
    if (rc == ATTN_OK)
        rc = score_all(m, &t);
    if (rc == ATTN_OK)
        json ? print_json(&t) : print_text(&t);
    if (rc == ATTN_OK && fflush(stdout) != 0) {
        attn_error("heads: cannot write to the standard output");
        rc = ATTN_FAIL;
    }
    at_model_free(m);
    table_free(&t);
    return rc;
}
