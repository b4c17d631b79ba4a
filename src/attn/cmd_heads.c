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
    "                  [--gate KIND:L:H=G ...] [--override F]\n"
    "\n"
    "Label every attention head of every kind with the template it follows best on a\n"
    "batch (docs/heads.md). A head's score on a template is the mean over the valid\n"
    "query rows of its attention mass on the template (masked keys left out); for\n"
    "'broad' the row's overlap with uniform attention, sum_j min(a_j, 1/n), on the\n"
    "same scale. The templates:\n"
    "  diagonal  query i on key i           prev, next   keys i - 1, i + 1\n"
    "  prev2, next2  keys i - 2, i + 2      first        the first key\n"
    "  eos       the last non-pad key       broad        every valid key alike\n"
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
    "               per kind, each cell coloured by its best template (a legend), its\n"
    "               name and score in it, every score in its tooltip\n"
    "  --gate, --override  as attn dump's (docs/interventions.md): the heads are\n"
    "               labelled in the pass they change; --override F with a template's\n"
    "               pattern makes a synthetic head of it\n"
    "  -h, --help   this text\n";

enum { NBUILTIN = AT_HEAD_ROLES, MAX_TEMPLATES = 32 };

/* One column of the library: a built-in pattern with its k, or a user file. */
typedef struct column {
    const char *name;
    int pattern, k;               /* pattern −1: user template */
    st_file file;
} column;

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

/* ---------------------------------------------------------------- the charts */

/* Tableau 10, a categorical palette that stays apart for colour-blind
 * readers better than most: one colour per template (cycled past ten). */
static const char *const palette[10] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                        "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
static const bool dark_fill[10] = {true, false, true, false, true, false, true, false, true,
                                   false};
#define INK "#222222"
#define MUTED "#666666"
#define FONT "'Noto Sans', 'DejaVu Sans', Arial, sans-serif"
enum { PAD = 16, CW = 64, CH = 30, YLW = 56, LEGW = 150 };

/* One cell: the best template's colour, its name and score, every score in
 * the tooltip. */
static void viz_cell(tbuf *b, const table *t, int k, int l, int h, double x, double y)
{
    const double *sc = cell(t, k, l, h);
    int best = best_of(t, sc);
    const char *fill = best < 0 ? "#eeeeee" : palette[best % 10];
    const char *ink = best >= 0 && dark_fill[best % 10] ? "#ffffff" : INK;
    tb_printf(b, "<g><title>%s \xc2\xb7 layer %d \xc2\xb7 head %d", kind_name(k), l + 1, h + 1);
    for (int c = 0; c < t->ncol; c++)
        if (!isnan(sc[c])) {
            tb_printf(b, "&#10;");
            tb_xml(b, t->col[c].name);
            tb_printf(b, " %.3f", sc[c]);
        }
    tb_printf(b, "</title><rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"%s\" "
                 "stroke=\"#ffffff\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                 "text-anchor=\"middle\" fill=\"%s\">", x, y, CW, CH, fill, x + CW / 2.0,
              y + 12.5, ink);
    tb_xml(b, best < 0 ? "-" : t->col[best].name);
    tb_printf(b, "</text><text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" "
                 "fill=\"%s\">%.2f</text></g>\n", x + CW / 2.0, y + 25, ink,
              best < 0 ? 0.0 : sc[best]);
}

/* Whether column c scores some head of kind k (monotonic: cross only). */
static bool applies(const table *t, int k, int c)
{
    for (int l = 0; l < t->layers; l++)
        for (int h = 0; h < t->heads; h++)
            if (!isnan(cell(t, k, l, h)[c]))
                return true;
    return false;
}

static void viz_legend(tbuf *b, const table *t, int k, double x, double y)
{
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">best template</text>\n", x,
              y - 8);
    for (int c = 0, row = 0; c < t->ncol; c++) {
        if (!applies(t, k, c))
            continue;
        double ly = y + row++ * 16;
        tb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\">", x, ly, palette[c % 10], x + 18, ly + 10);
        tb_xml(b, t->col[c].name);
        tb_printf(b, "</text>\n");
    }
}

static void viz_draw(tbuf *b, const table *t, int k, const char *sub)
{
    double gw = YLW + t->heads * CW, gh = t->layers * CH, top = PAD + 15 + 20 + 16 + 22;
    double lh = t->ncol * 16.0;
    double w = PAD + gw + 24 + LEGW, h = top + (gh + 30 > lh ? gh + 30 : lh) + PAD;
    static const char note[] = "each head's best template, its score inside: the mean mass on "
                               "the template over valid query rows (broad: the overlap with "
                               "uniform attention)";
    size_t chars = strlen(sub) > sizeof note ? strlen(sub) : sizeof note;
    double tw = PAD * 2 + 6.0 * (double)chars;
    w = tw > w ? tw : w;
    tb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/"
                 "2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f "
                 "%.0f\" font-size=\"11\" fill=\"%s\" font-family=\"%s\">\n<title>head roles: "
                 "%s</title>\n<desc>libat %s: attn heads</desc>\n<rect width=\"100%%\" "
                 "height=\"100%%\" fill=\"#ffffff\"/>\n", ceil(w), ceil(h), ceil(w), ceil(h),
              INK, FONT, kind_name(k), at_version_string());
    tb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\">head roles: %s"
                 "</text>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">", PAD, PAD + 15, kind_name(k),
              PAD, PAD + 35, MUTED);
    tb_xml(b, sub);
    tb_printf(b, "</text>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", PAD, PAD + 51, MUTED,
              note);
    for (int l = 0; l < t->layers; l++) {
        tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">layer %d"
                     "</text>\n", PAD + YLW - 6.0, top + l * CH + CH / 2 + 4.0, l + 1);
        for (int hd = 0; hd < t->heads; hd++)
            viz_cell(b, t, k, l, hd, PAD + YLW + hd * CW, top + l * CH);
    }
    for (int hd = 0; hd < t->heads; hd++)
        tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%d"
                     "</text>\n", PAD + YLW + (hd + 0.5) * CW, top + gh + 12, hd + 1);
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" "
                 "fill=\"%s\">head</text>\n", PAD + YLW + t->heads * CW / 2.0, top + gh + 25,
              MUTED);
    viz_legend(b, t, k, PAD + gw + 24, top);
    tb_printf(b, "</svg>\n");
}

static int write_viz(const table *t, const char *dir, const char *model, const char *input)
{
    char sub[900];
    snprintf(sub, sizeof sub, "%.400s \xc2\xb7 %.400s", model, input);
    outdir od;
    int rc = outdir_begin(&od, "heads", dir);
    if (rc != ATTN_OK)
        return rc;
    for (int k = 0; rc == ATTN_OK && k < t->nkinds; k++) {
        char name[32];
        snprintf(name, sizeof name, "heads-%s.svg", kind_name(k));
        tbuf b = {0};
        viz_draw(&b, t, k, sub);
        char *path = outdir_path(&od, name);
        if (b.oom || !path) {
            attn_error("heads: out of memory for %s", name);
            rc = ATTN_FAIL;
        } else {
            rc = report_write_file("heads", path, b.p, b.len);
        }
        free(path);
        free(b.p);
    }
    if (rc == ATTN_OK)
        return outdir_commit(&od);
    outdir_abort(&od);
    return rc;
}

/* ---------------------------------------------------------------- the pass */

static int run_pass(at_model *m, intv *iv, const char *input, int pad, table *t)
{
    int32_t *src = NULL, *tgt = NULL;
    int B = 0, S = 0, T = 0;
    int rc = io_read_input("heads", "input", input, false, &src, &tgt, &B, &S, &T);
    /* --gate and --override are checked and set before the pass */
    if (rc == ATTN_OK)
        rc = intv_apply(iv, m);
    if (rc == ATTN_OK)
        rc = intv_load_override(iv, m, B, S, tgt ? T : 0);
    if (rc == ATTN_OK)
        rc = intv_set_override(iv, m);
    if (rc == ATTN_OK && at_forward(m, src, tgt, B, S, T, pad) != AT_OK) {
        attn_error("heads: forward pass on '%s' failed: %s", input, at_errmsg(m));
        rc = ATTN_FAIL;
    }
    t->nkinds = tgt ? 3 : 1;
    free(src);
    free(tgt);
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
    static intv iv;   /* two opt_lists: off the stack */
    opt opts[7 + 4] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"template", OPT_LIST, &tmpl, 0, 0, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"viz", OPT_STR, &viz, 0, 0, false},
    };
    int nopts = 7 + intv_opts(&iv, "heads", IV_GATE | IV_OVERRIDE, opts + 7);
    int rc;
    if (!args_command(argc, argv, opts, nopts, help, &rc))
        return rc;
    for (int i = 0; i < 2; i++)
        if (args_require("heads", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    if ((rc = intv_parse(&iv)) != ATTN_OK) {
        intv_free(&iv);
        return rc;
    }
    static table t;
    memset(&t, 0, sizeof t);
    for (int c = 0; c < NBUILTIN; c++)   /* the library's roles, in their order */
        at_head_role(c, &t.col[c].name, &t.col[c].pattern, &t.col[c].k);
    t.ncol = NBUILTIN;
    static const char *const files[] = {"heads-enc_self.svg", "heads-dec_self.svg",
                                        "heads-cross.svg", NULL};
    if (viz && outdir_check("heads", viz, files, NULL) != ATTN_OK) {   /* before the work */
        intv_free(&iv);
        return ATTN_FAIL;
    }
    rc = ATTN_OK;
    for (int i = 0; rc == ATTN_OK && i < tmpl.n; i++)
        rc = add_template(&t, tmpl.v[i]);
    at_model *m = NULL;
    if (rc == ATTN_OK)
        rc = io_load_model(model, heads, &m, NULL);
    t.layers = io_model_int(m, AT_P_LAYERS);
    t.heads = io_model_int(m, AT_P_HEADS);
    if (rc == ATTN_OK)
        rc = run_pass(m, &iv, input, pad, &t);
    if (rc == ATTN_OK)
        rc = score_all(m, &t);
    if (rc == ATTN_OK)
        json ? print_json(&t) : print_text(&t);
    if (rc == ATTN_OK && fflush(stdout) != 0) {
        attn_error("heads: cannot write to the standard output");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && viz)
        rc = write_viz(&t, viz, model, input);
    if (rc == ATTN_OK && viz && !json)
        printf("wrote %d charts into %s (heads-KIND.svg)\n", t.nkinds, viz);
    at_model_free(m);
    table_free(&t);
    intv_free(&iv);
    return rc;
}
