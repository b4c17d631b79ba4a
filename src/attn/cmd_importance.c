/* attn importance: how much the loss depends on each attention head, by the
 * gradient of a head gate (Michel et al. 2019) and by removing the head. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

static const char help[] =
    "usage: attn importance --model M.safetensors [--heads H] --input BATCH.safetensors\n"
    "                       [--pad ID] [--only KIND[:L[:H]] ...] [--gate KIND:L:H=G ...]\n"
    "                       [--json] [--viz DIR] [--threads N]\n"
    "\n"
    "The importance of every attention head on a batch. L is the mean negative\n"
    "log-likelihood of tgt[:, 1:] given src and tgt[:, :-1] over the labels that are\n"
    "not --pad (evaluation mode: no dropout, no label smoothing). For each kind,\n"
    "layer and head it prints\n"
    "  importance  |dL/dxi| at the gates, xi the gate that multiplies the head's\n"
    "              output (all 1 unless --gate says otherwise): one forward and one\n"
    "              backward pass for every head together\n"
    "  ablation    L(that head's gate 0) - L: one forward pass per head; positive\n"
    "              when removing the head hurts\n"
    "\n"
    "BATCH holds integer tensors (I32 or I64): src (B, S) and tgt (B, T+1), the whole\n"
    "target as training reads it (attn translate --dump's ys, say).\n"
    "\n"
    "  --model M    the checkpoint\n"
    "  --heads H    attention heads, for a checkpoint without libat metadata (as in\n"
    "               every command)\n"
    "  --input F    the batch\n"
    "  --pad ID     the padding id of src and tgt (default 0, the copy task's and the\n"
    "               translation models')\n"
    "  --only SPEC  ablate only these heads: KIND, KIND:L or KIND:L:H (L, H from 1, *\n"
    "               for every one); repeatable. The others show '-' (null in JSON).\n"
    "               The importance of every head is computed anyway (it costs one pass)\n"
    "  --gate KIND:L:H=G  set gates first (as attn dump --gate): the importance is\n"
    "               taken there and an ablation restores the head's G afterwards\n"
    "  --json       print one JSON object instead of the tables: {\"loss\": L,\n"
    "               \"tokens\": N, \"importance\": {KIND: [[per head] per layer]},\n"
    "               \"ablation\": {the same}} with KIND enc_self, dec_self, cross\n"
    "  --viz DIR    also chart both as layers x heads heatmaps: DIR/importance.svg,\n"
    "               DIR/ablation.svg\n"
    "  --threads N  threads for OpenBLAS and libat (default: as configured)\n"
    "  -h, --help   this text\n";

/* What was measured: [kind][layer][head] each. */
typedef struct measures {
    int layers, heads;
    double loss;
    int64_t tokens;
    float *grad;        /* dL/dxi */
    double *ablation;   /* L(xi = 0) - L; NAN where not asked for */
} measures;

static size_t at3(const measures *r, int k, int l, int h)
{
    return ((size_t)k * r->layers + l) * r->heads + h;
}

/* ---------------------------------------------------------------- the passes */

/* Whether --only (none given: every head) names the head. */
static bool wanted(const head_spec *only, int nonly, int k, int l, int h)
{
    if (nonly == 0)
        return true;
    for (int i = 0; i < nonly; i++)
        if (intv_spec_has(&only[i], k, l, h))
            return true;
    return false;
}

/* The ablation of one head: its gate to 0, L, its gate back. */
static int ablate(at_model *m, const id_batch *b, int k, int l, int h, double base,
                  double *out)
{
    float g = 1;
    double loss = 0;
    if (at_gate_get(m, (at_attn_kind)k, l, h, &g) != AT_OK ||
        at_gate_set(m, k, l, h, 0) != AT_OK ||
        at_eval_nll(m, b->src, b->tgt, b->B, b->S, b->T1, b->pad, &loss, NULL) != AT_OK ||
        at_gate_set(m, k, l, h, g) != AT_OK) {
        attn_error("importance: the ablation of %s layer %d head %d failed: %s",
                   at_viz_kind_name((at_attn_kind)k), l + 1, h + 1, at_errmsg(m));
        return ATTN_FAIL;
    }
    *out = loss - base;
    return ATTN_OK;
}

static int measure(at_model *m, const id_batch *b, const head_spec *only, int nonly,
                   measures *r)
{
    size_t n = (size_t)3 * r->layers * r->heads;
    r->grad = calloc(n, sizeof *r->grad);
    r->ablation = malloc(n * sizeof *r->ablation);
    if (!r->grad || !r->ablation) {
        attn_error("importance: out of memory");
        return ATTN_FAIL;
    }
    if (at_gate_gradients(m, b->src, b->tgt, b->B, b->S, b->T1, b->pad, &r->loss, r->grad) !=
        AT_OK) {
        attn_error("importance: the gradient pass failed: %s", at_errmsg(m));
        return ATTN_FAIL;
    }
    /* the ablations are differences of at_eval_nll, both taken by the same pass */
    double base = 0;
    if (at_eval_nll(m, b->src, b->tgt, b->B, b->S, b->T1, b->pad, &base, &r->tokens) != AT_OK) {
        attn_error("importance: the forward pass failed: %s", at_errmsg(m));
        return ATTN_FAIL;
    }
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < r->layers; l++)
            for (int h = 0; h < r->heads; h++) {
                double *a = &r->ablation[at3(r, k, l, h)];
                *a = NAN;
                if (wanted(only, nonly, k, l, h) && ablate(m, b, k, l, h, base, a) != ATTN_OK)
                    return ATTN_FAIL;
            }
    return ATTN_OK;
}

/* ---------------------------------------------------------------- printing */

static void print_table(const measures *r, const char *title, bool grad)
{
    printf("%s\n%-9s %5s", title, "kind", "layer");
    for (int h = 0; h < r->heads; h++) {
        char lab[24];
        snprintf(lab, sizeof lab, "head %d", h + 1);
        printf("  %9s", lab);
    }
    putchar('\n');
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < r->layers; l++) {
            printf("%-9s %5d", at_viz_kind_name((at_attn_kind)k), l + 1);
            for (int h = 0; h < r->heads; h++) {
                size_t i = at3(r, k, l, h);
                double v = grad ? fabs((double)r->grad[i]) : r->ablation[i];
                if (isnan(v))
                    printf("  %9s", "-");
                else
                    printf("  %9.6f", v);
            }
            putchar('\n');
        }
}

static void print_text(const measures *r, int B, int S, int T)
{
    printf("loss %.6f over %lld target tokens (batch %d, src_len %d, tgt_len %d)\n\n", r->loss,
           (long long)r->tokens, B, S, T);
    print_table(r, "importance |dL/dxi| at the gates", true);
    putchar('\n');
    print_table(r, "ablation L(gate 0) - L", false);
}

static void json_measure(const measures *r, const char *key, bool grad, bool comma)
{
    printf("  \"%s\": {", key);
    for (int k = 0; k < 3; k++) {
        printf("%s\n    \"%s\": [", k ? "," : "", at_viz_kind_name((at_attn_kind)k));
        for (int l = 0; l < r->layers; l++) {
            printf("%s[", l ? ", " : "");
            for (int h = 0; h < r->heads; h++) {
                size_t i = at3(r, k, l, h);
                double v = grad ? fabs((double)r->grad[i]) : r->ablation[i];
                printf(isnan(v) ? "%snull" : "%s%.9g", h ? ", " : "", v);
            }
            putchar(']');
        }
        putchar(']');
    }
    printf("\n  }%s\n", comma ? "," : "");
}

static void print_json(const measures *r)
{
    printf("{\n  \"loss\": %.17g,\n  \"tokens\": %lld,\n  \"layers\": %d,\n  \"heads\": %d,\n",
           r->loss, (long long)r->tokens, r->layers, r->heads);
    json_measure(r, "importance", true, true);
    json_measure(r, "ablation", false, false);
    printf("}\n");
}

/* ---------------------------------------------------------------- the charts */

/* The library's sequential scale (ColorBrewer YlGnBu, as at_viz.h's charts)
 * for the importance, ColorBrewer RdBu for the ablation: blue where removing
 * the head lowers the loss, red where it raises it. */
static const char *const seq_stops[9] = {"#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4",
                                         "#1d91c0", "#225ea8", "#253494", "#081d58"};
static const char *const div_stops[9] = {"#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                                         "#fddbc7", "#f4a582", "#d6604d", "#b2182b"};
#define INK "#222222"
#define MUTED "#666666"
#define FONT "'Noto Sans', 'DejaVu Sans', Arial, sans-serif"

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

/* t in [0, 1] through the nine stops, interpolated in RGB. */
static void colour(const char *const *stops, double t, char hex[8])
{
    t = t > 0 ? (t < 1 ? t : 1) : 0;
    double x = t * 8;
    int k = x >= 8 ? 7 : (int)x;
    double f = x - k;
    int c[3];
    for (int ch = 0; ch < 3; ch++) {
        const char *a = stops[k] + 1 + 2 * ch, *b = stops[k + 1] + 1 + 2 * ch;
        double va = hexval(a[0]) * 16 + hexval(a[1]), vb = hexval(b[0]) * 16 + hexval(b[1]);
        c[ch] = (int)lround(va + (vb - va) * f);
    }
    snprintf(hex, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static void xml(tbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': tb_printf(b, "&amp;"); break;
        case '<': tb_printf(b, "&lt;"); break;
        case '>': tb_printf(b, "&gt;"); break;
        case '"': tb_printf(b, "&quot;"); break;
        default:
            if ((unsigned char)*s >= 0x20)
                tb_printf(b, "%c", *s);
        }
    }
}

/* What one chart shows. */
typedef struct chart {
    const measures *r;
    bool grad;          /* importance, else ablation */
    double max;         /* the scale: 0 .. max, or -max .. max */
    const char *title, *sub, *note;
} chart;

static double value_of(const chart *c, int k, int l, int h)
{
    size_t i = at3(c->r, k, l, h);
    return c->grad ? fabs((double)c->r->grad[i]) : c->r->ablation[i];
}

/* The colour of v and whether its text should be white. */
static bool cell_colour(const chart *c, double v, char hex[8])
{
    if (isnan(v)) {
        snprintf(hex, 8, "#eeeeee");
        return false;
    }
    double t = c->max > 0 ? v / c->max : 0;
    colour(c->grad ? seq_stops : div_stops, c->grad ? t : (t + 1) / 2, hex);
    return c->grad ? t > 0.55 : fabs(t) > 0.6;
}

enum { PAD = 16, CW = 56, CH = 24, YLW = 56 };

/* One kind's layers x heads grid at (x, y). */
static void panel(tbuf *b, const chart *c, int k, double x, double y)
{
    const char *kind = at_viz_kind_name((at_attn_kind)k);
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" font-weight=\"bold\">%s</text>\n",
              x + YLW, y - 8, kind);
    for (int l = 0; l < c->r->layers; l++) {
        double gy = y + l * CH;
        tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">layer %d"
                     "</text>\n", x + YLW - 6, gy + CH / 2 + 4, l + 1);
        for (int h = 0; h < c->r->heads; h++) {
            double v = value_of(c, k, l, h), gx = x + YLW + h * CW;
            char hex[8], txt[32];
            bool dark = cell_colour(c, v, hex);
            snprintf(txt, sizeof txt, isnan(v) ? "-" : "%.3g", v);
            tb_printf(b, "<g><title>%s \xc2\xb7 layer %d \xc2\xb7 head %d&#10;%s %s</title>"
                         "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"%s\" "
                         "stroke=\"#ffffff\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                         "text-anchor=\"middle\" fill=\"%s\">%s</text></g>\n",
                      kind, l + 1, h + 1,
                      c->grad ? "|dL/d\xce\xbe|" : "L(\xce\xbe = 0) \xe2\x88\x92 L",
                      isnan(v) ? "not ablated (--only)" : txt, gx, gy, CW, CH, hex,
                      gx + CW / 2.0, gy + CH / 2 + 3.5, dark ? "#ffffff" : INK, txt);
        }
    }
    double below = y + c->r->layers * CH;
    for (int h = 0; h < c->r->heads; h++)
        tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%d"
                     "</text>\n", x + YLW + (h + 0.5) * CW, below + 12, h + 1);
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" "
                 "fill=\"%s\">head</text>\n", x + YLW + c->r->heads * CW / 2.0, below + 25, MUTED);
}

/* The colour bar at (x, y), h tall, with its lowest, middle and top values. */
static void legend(tbuf *b, const chart *c, double x, double y, double h)
{
    const char *const *stops = c->grad ? seq_stops : div_stops;
    tb_printf(b, "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int k = 0; k < 9; k++)
        tb_printf(b, "<stop offset=\"%g\" stop-color=\"%s\"/>", k / 8.0, stops[k]);
    tb_printf(b, "</linearGradient></defs>\n<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">"
                 "%s</text>\n", x, y - 8, c->grad ? "|dL/d\xce\xbe|" : "\xce\x94L");
    tb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"%.1f\" fill=\"url(#scale)\" "
                 "stroke=\"#999999\" stroke-width=\"0.5\"/>\n", x, y, h);
    double lo = c->grad ? 0 : -c->max;
    for (int k = 0; k < 3; k++) {
        double v = lo + (c->max - lo) * k / 2.0, ty = y + h - h * k / 2.0;
        tb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\">%.3g</text>\n", x + 12, x + 15, ty, ty,
                  x + 18, ty + 4, v);
    }
}

static void draw(tbuf *b, const chart *c)
{
    double pw = YLW + c->r->heads * CW + 30, gh = c->r->layers * CH;
    double lh = gh > 100 ? gh : 100;   /* the colour bar, beside the grids */
    double top = PAD + 15 + 20 + 16 + 22 + 14;
    double w = PAD + 3 * pw + 80, h = top + (gh + 34 > lh + 10 ? gh + 34 : lh + 10) + PAD;
    double tw = PAD * 2 + 6.0 * (double)strlen(c->sub);
    w = tw > w ? tw : w;
    tb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/"
                 "2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f "
                 "%.0f\" font-size=\"11\" fill=\"%s\" font-family=\"%s\">\n<title>", ceil(w),
              ceil(h), ceil(w), ceil(h), INK, FONT);
    xml(b, c->title);
    tb_printf(b, "</title>\n<desc>libat %s: attn importance</desc>\n<rect width=\"100%%\" "
                 "height=\"100%%\" fill=\"#ffffff\"/>\n", at_version_string());
    tb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\">", PAD, PAD + 15);
    xml(b, c->title);
    tb_printf(b, "</text>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">", PAD, PAD + 15 + 20, MUTED);
    xml(b, c->sub);
    tb_printf(b, "</text>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">", PAD, PAD + 15 + 36, MUTED);
    xml(b, c->note);
    tb_printf(b, "</text>\n");
    for (int k = 0; k < 3; k++)
        panel(b, c, k, PAD + k * pw, top);
    legend(b, c, PAD + 3 * pw + 6, top, lh);
    tb_printf(b, "</svg>\n");
}

static int write_chart(const outdir *od, const chart *c, const char *name)
{
    tbuf b = {0};
    draw(&b, c);
    char *path = outdir_path(od, name);
    int rc = ATTN_FAIL;
    if (b.oom || !path)
        attn_error("importance: out of memory for %s", name);
    else
        rc = report_write_file("importance", path, b.p, b.len);
    free(path);
    free(b.p);
    return rc;
}

static int write_viz(const measures *r, const char *dir, const char *model, const char *input)
{
    chart imp = {r, true, 0, "head importance |\xe2\x88\x82L/\xe2\x88\x82\xce\xbe| at the gates",
                 NULL, "\xce\xbe multiplies a head's output before the output projection; "
                       "L the mean negative log-likelihood (Michel et al. 2019)"};
    chart abl = {r, false, 0, "head ablation: L(\xce\xbe = 0) \xe2\x88\x92 L", NULL,
                 "one head removed at a time: red where the loss rises without it, blue "
                 "where it falls; grey: not ablated (--only)"};
    for (size_t i = 0; i < (size_t)3 * r->layers * r->heads; i++) {
        imp.max = fmax(imp.max, fabs((double)r->grad[i]));
        if (!isnan(r->ablation[i]))
            abl.max = fmax(abl.max, fabs(r->ablation[i]));
    }
    char sub[1200];
    snprintf(sub, sizeof sub, "%.400s \xc2\xb7 %.400s \xc2\xb7 L = %.4f over %lld target tokens",
             model, input, r->loss, (long long)r->tokens);
    imp.sub = abl.sub = sub;
    outdir od;
    int rc = outdir_begin(&od, "importance", dir);
    if (rc != ATTN_OK)
        return rc;
    rc = write_chart(&od, &imp, "importance.svg");
    if (rc == ATTN_OK)
        rc = write_chart(&od, &abl, "ablation.svg");
    if (rc == ATTN_OK)
        return outdir_commit(&od);
    outdir_abort(&od);
    return rc;
}

/* ---------------------------------------------------------------- the command */

/* The --only specs, parsed, then checked against the model. */
static int parse_only(const opt_list *l, head_spec **out)
{
    *out = calloc((size_t)(l->n ? l->n : 1), sizeof **out);
    if (!*out) {
        attn_error("importance: out of memory");
        return ATTN_FAIL;
    }
    for (int i = 0; i < l->n; i++)
        if (intv_parse_spec("importance", "only", l->v[i], 1, &(*out)[i]) != ATTN_OK)
            return ATTN_USAGE;
    return ATTN_OK;
}

static int run(at_model *m, intv *iv, const head_spec *only, int nonly, const char *input,
               int pad, bool json, const char *viz, const char *model)
{
    int32_t *src = NULL, *tgt = NULL;
    id_batch b = {.pad = pad};
    measures r = {.layers = io_model_int(m, AT_P_LAYERS), .heads = io_model_int(m, AT_P_HEADS)};
    int rc = intv_apply(iv, m);
    for (int i = 0; rc == ATTN_OK && i < nonly; i++)
        rc = intv_check_spec(iv, "only", &only[i]);
    if (rc == ATTN_OK)
        rc = io_read_batch("importance", input, &src, &tgt, &b);
    if (rc == ATTN_OK)
        rc = measure(m, &b, only, nonly, &r);
    if (rc == ATTN_OK && json)
        print_json(&r);
    else if (rc == ATTN_OK)
        print_text(&r, b.B, b.S, b.T1 - 1);
    if (rc == ATTN_OK && fflush(stdout) != 0) {
        attn_error("importance: cannot write to the standard output");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && viz)
        rc = write_viz(&r, viz, model, input);
    if (rc == ATTN_OK && viz && !json)
        printf("wrote %s/importance.svg and %s/ablation.svg\n", viz, viz);
    free(r.grad);
    free(r.ablation);
    free(src);
    free(tgt);
    return rc;
}

int cmd_importance(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *viz = NULL;
    int heads = 0, pad = 0, threads = 0;
    bool json = false;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    static intv iv;
    static opt_list only_args;
    only_args.n = 0;
    opt opts[9] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"only", OPT_LIST, &only_args, 0, 0, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"viz", OPT_STR, &viz, 0, 0, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
    };
    int nopts = 8 + intv_opts(&iv, "importance", IV_GATE, opts + 8);
    int rc;
    if (!args_command(argc, argv, opts, nopts, help, &rc))
        return rc;
    for (int i = 0; i < 2; i++)
        if (args_require("importance", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    static const char *const files[] = {"importance.svg", "ablation.svg", NULL};
    if (viz && outdir_check("importance", viz, files, NULL) != ATTN_OK)   /* before the work */
        return ATTN_FAIL;
    head_spec *only = NULL;
    rc = intv_parse(&iv);
    if (rc == ATTN_OK)
        rc = parse_only(&only_args, &only);
    at_model *m = NULL;
    if (rc == ATTN_OK && threads > 0)
        at_set_threads(threads);
    if (rc == ATTN_OK)
        rc = io_load_model(model, heads, &m, NULL);
    if (rc == ATTN_OK)
        rc = run(m, &iv, only, only_args.n, input, pad, json, viz, model);
    at_model_free(m);
    free(only);
    intv_free(&iv);
    return rc;
}
