/* attn prune: pruning curves (Michel et al. 2019, "Are Sixteen Heads Really
 * Better than One?", §4): the task metric as more and more attention heads are
 * removed (gate 0), in order of importance and in random orders. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "report.h"

static const char help[] =
    "usage: attn prune --model M.safetensors [--heads H] --input BATCH.safetensors\n"
    "                  [--pad ID] [--metric copy|bleu] [--data DIR] [--split NAME]\n"
    "                  [--limit N] [--seeds K] [--seed S] [--reestimate] [--json]\n"
    "                  [--viz DIR] [--threads N]\n"
    "\n"
    "Pruning curves (Michel et al. 2019): heads are removed (their gate set to 0)\n"
    "in steps of 10% of all heads of all kinds (enc_self, dec_self, cross), and\n"
    "the task metric is measured after each step, for two orders (three with\n"
    "--reestimate):\n"
    "  importance  least important first: |dL/dxi| at xi = 1, from one gradient\n"
    "              pass on BATCH, as attn importance computes it. The importance\n"
    "              is estimated once, on the whole model, as Michel et al. do;\n"
    "              ties keep the order kind, layer, head\n"
    "  random      K random orders (--seeds), the metric's mean and sample sd\n"
    "  re-estimated  (--reestimate) before each step |dL/dxi| is estimated again\n"
    "              on BATCH with the heads removed so far gated off, and the\n"
    "              least important of the heads left go next\n"
    "Step k (0 .. 10) removes round(k * N / 10) of the N heads (halves round up),\n"
    "so 0% is the unpruned model and 100% removes every head.\n"
    "A second table gives the metric with all heads of one kind removed (and\n"
    "the others kept): which kind the model can least do without.\n"
    "\n"
    "Metrics:\n"
    "  copy  (default) the share of BATCH's rows that greedy decoding (start\n"
    "        symbol tgt[:, 0], max_len T+1) reproduces exactly: every label\n"
    "        tgt[:, 1:] that is not --pad, as attn train --task copy counts its\n"
    "        held-out copies\n"
    "  bleu  corpus BLEU (sacreBLEU's defaults, libat_text) of greedy decoding of\n"
    "        DIR/SPLIT.src against DIR/SPLIT.tgt, for a model with a tokenizer\n"
    "\n"
    "  --model M    the checkpoint\n"
    "  --heads H    attention heads, for a checkpoint without libat metadata\n"
    "  --input F    the batch for the importance: src (B, S) and tgt (B, T+1),\n"
    "               integer tensors (and the copy metric's rows)\n"
    "  --pad ID     the padding id of src and tgt (default 0)\n"
    "  --metric M   copy or bleu (default copy)\n"
    "  --data DIR   the corpus folder (bleu; attn corpus bible --out DIR)\n"
    "  --split NAME the split to translate (default valid)\n"
    "  --limit N    only its first N lines (default 100; 0: all), each step\n"
    "               translates them again\n"
    "  --seeds K    random orders (default 5, at least 1)\n"
    "  --seed S     the first of them (default 0): order i uses seed S + i\n"
    "  --reestimate also the re-estimated curve (one gradient pass per step)\n"
    "  --json       one JSON object instead of the tables: {\"metric\", \"heads\",\n"
    "               \"seeds\", \"steps\": [{\"removed\", \"percent\", \"importance\",\n"
    "               \"random_mean\", \"random_sd\"}], \"order\": [[kind, layer, head]]\n"
    "               (1-based, least important first), \"importance\": [|dL/dxi| in\n"
    "               that order], \"kinds\": [{\"kind\", \"heads\", \"metric\"}]};\n"
    "               --reestimate adds \"reestimated\" to each step and\n"
    "               \"reestimated_order\" (the order of removal)\n"
    "  --viz DIR    also chart the curves: DIR/prune.svg\n"
    "  --threads N  threads for OpenBLAS and libat (default: as configured)\n"
    "  -h, --help   this text\n";

enum { STEPS = 11 };   /* 0%, 10%, ..., 100% */

/* What the metric needs: the copy batch, or the split to translate. */
typedef struct task {
    at_model *m;
    bool bleu;
    id_batch b;            /* the importance's batch (copy: also the rows decoded) */
    at_copy_task copy;     /* copy: at_metric_copy's rows */
    nmt t;                 /* bleu */
    nmt_lines src, ref;    /* bleu: the split's two sides */
    int n;                 /* bleu: lines translated */
    char **hyp;
    bool printed;          /* bleu: the metric printed why it failed */
} task;

/* Everything measured. Heads are at_analysis.h's indices
 * (kind · layers + layer) · heads + head. */
typedef struct curve {
    int total, seeds, layers, heads;
    const char *metric;
    int32_t *order;                 /* importance order */
    float *order_imp;               /* |dL/dxi| in that order */
    int removed[STEPS];
    double imp[STEPS];              /* the metric along the importance order */
    double mean[STEPS], sd[STEPS];  /* over the random orders */
    double kind_metric[3];          /* all heads of one kind removed */
    int32_t *re_order;              /* --reestimate: the order heads were removed in */
    double re[STEPS];               /* --reestimate: the metric along it */
    double loss;                    /* L of the gradient pass */
} curve;

static at_attn_kind head_kind(const curve *c, int i)
{
    return (at_attn_kind)(i / (c->layers * c->heads));
}

static int head_layer(const curve *c, int i)
{
    return i / c->heads % c->layers;
}

/* ---------------------------------------------------------------- the metrics */

/* Corpus BLEU of greedy decoding (beam 1) of the split's first n lines, an
 * at_metric_fn: nmt_translate decodes on the handle being pruned. */
static at_status bleu_metric(at_model *m, void *user, double *out)
{
    task *k = user;
    (void)m;   /* k->t.m */
    nmt_opts o;
    nmt_opts_default(&o);
    o.beam = 1;
    for (int i = 0; i < k->n; i++) {
        free(k->hyp[i]);
        k->hyp[i] = NULL;
    }
    int rc = nmt_translate("prune", &k->t, k->src.v, k->src.len, k->n, &o, k->hyp);
    double chrf = 0;
    if (rc == ATTN_OK)
        rc = nmt_score("prune", k->hyp, &k->ref, k->n, out, &chrf);
    /* on failure the reason is on stderr already; any status stops the curve */
    k->printed = rc != ATTN_OK;
    return rc == ATTN_OK ? AT_OK : AT_E_CALLBACK;
}

static at_metric_fn metric_of(task *k, void **user)
{
    *user = k->bleu ? (void *)k : (void *)&k->copy;
    return k->bleu ? bleu_metric : at_metric_copy;
}

/* A pruning call's failure, unless the metric said why already. */
static int pruned(task *k, at_status s, const char *what)
{
    if (s == AT_OK)
        return ATTN_OK;
    if (!k->printed)
        attn_error("prune: %s: %s", what, at_errmsg(k->m));
    return ATTN_FAIL;
}

/* ---------------------------------------------------------------- the orders */

/* Every head by |dL/dxi| at xi = 1 on the batch, least important first
 * (at_prune_order: ties in kind, layer, head order). */
static int importance_order(task *k, curve *c)
{
    float *g = calloc((size_t)c->total, sizeof *g);
    c->order = calloc((size_t)c->total, sizeof *c->order);
    c->order_imp = calloc((size_t)c->total, sizeof *c->order_imp);
    const id_batch *b = &k->b;
    int rc = ATTN_OK;
    if (!g || !c->order || !c->order_imp) {
        attn_error("prune: out of memory");
        rc = ATTN_FAIL;
    } else if (at_gate_set(k->m, AT_ALL, AT_ALL, AT_ALL, 1) != AT_OK ||
               at_gate_gradients(k->m, b->src, b->tgt, b->B, b->S, b->T1, b->pad, &c->loss, g) !=
                   AT_OK) {
        attn_error("prune: the gradient pass failed: %s", at_errmsg(k->m));
        rc = ATTN_FAIL;
    } else {
        for (int i = 0; i < c->total; i++)
            g[i] = fabsf(g[i]);
        rc = pruned(k, at_prune_order(k->m, g, c->order), "the importance order");
        for (int i = 0; rc == ATTN_OK && i < c->total; i++)
            c->order_imp[i] = g[c->order[i]];
    }
    free(g);
    return rc;
}

/* ---------------------------------------------------------------- the curves */

/* The random orders (the importance order shuffled with seeds seed0, seed0
 * + 1, ...): the metric at every step for each seed, then the mean and
 * sample sd (0 for one seed). The 0% and 100% points are the same for every
 * order, but are measured anyway (a check that the gates are put back). */
static int random_curves(task *k, curve *c, int seed0)
{
    int32_t *h = malloc((size_t)c->total * sizeof *h);
    double *v = malloc((size_t)c->seeds * STEPS * sizeof *v);
    void *user;
    at_metric_fn f = metric_of(k, &user);
    int rc = h && v ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("prune: out of memory");
    for (int s = 0; rc == ATTN_OK && s < c->seeds; s++) {
        memcpy(h, c->order, (size_t)c->total * sizeof *h);
        rc = pruned(k, at_prune_shuffle(k->m, h, c->total, (uint64_t)seed0 + (uint64_t)s),
                    "a random order");
        if (rc == ATTN_OK)
            rc = pruned(k, at_prune_curve(k->m, h, c->total, STEPS - 1, f, user,
                                          &v[s * STEPS]), "a random order's curve");
    }
    for (int i = 0; rc == ATTN_OK && i < STEPS; i++) {
        double sum = 0, sq = 0;
        for (int s = 0; s < c->seeds; s++)
            sum += v[s * STEPS + i];
        c->mean[i] = sum / c->seeds;
        for (int s = 0; s < c->seeds; s++)
            sq += (v[s * STEPS + i] - c->mean[i]) * (v[s * STEPS + i] - c->mean[i]);
        c->sd[i] = c->seeds > 1 ? sqrt(sq / (c->seeds - 1)) : 0;
    }
    free(h);
    free(v);
    return rc;
}

/* The metric with every head of one kind gated off: Michel et al. find
 * encoder-decoder attention the most sensitive to pruning (their §4.2). */
static int kind_removal(task *k, curve *c)
{
    int32_t *h = malloc((size_t)c->total * sizeof *h);
    if (!h) {
        attn_error("prune: out of memory");
        return ATTN_FAIL;
    }
    void *user;
    at_metric_fn f = metric_of(k, &user);
    int rc = ATTN_OK;
    for (int kind = 0; rc == ATTN_OK && kind < 3; kind++) {
        int n = 0;
        for (int i = 0; i < c->total; i++)
            if ((int)head_kind(c, c->order[i]) == kind)
                h[n++] = c->order[i];
        rc = pruned(k, at_prune_metric(k->m, h, n, f, user, &c->kind_metric[kind]),
                    "a kind removed");
    }
    free(h);
    return rc;
}

/* Michel et al.'s variant: the importance estimated again, at the gates of
 * each step, before the next heads go (at_prune_curve_reestimated). */
static int reestimated(task *k, curve *c)
{
    const id_batch *b = &k->b;
    void *user;
    at_metric_fn f = metric_of(k, &user);
    if (!(c->re_order = calloc((size_t)c->total, sizeof *c->re_order))) {
        attn_error("prune: out of memory");
        return ATTN_FAIL;
    }
    return pruned(k, at_prune_curve_reestimated(k->m, b->src, b->tgt, b->B, b->S, b->T1, b->pad,
                                                STEPS - 1, f, user, c->re_order, c->re),
                  "the re-estimated curve");
}

static int measure(task *k, int seed0, bool reestimate, curve *c)
{
    for (int i = 0; i < STEPS; i++)   /* as at_prune_curve: round(i * N / 10), halves up */
        c->removed[i] = (i * c->total + 5) / 10;
    void *user;
    at_metric_fn f = metric_of(k, &user);
    int rc = importance_order(k, c);
    if (rc == ATTN_OK)
        rc = pruned(k, at_prune_curve(k->m, c->order, c->total, STEPS - 1, f, user, c->imp),
                    "the importance curve");
    if (rc == ATTN_OK)
        rc = random_curves(k, c, seed0);
    if (rc == ATTN_OK)
        rc = kind_removal(k, c);
    if (rc == ATTN_OK && reestimate)
        rc = reestimated(k, c);
    return rc;
}

/* ---------------------------------------------------------------- printing */

static int kind_heads(const curve *c)
{
    return c->total / 3;
}

/* kind:layer:head of every head of an order (1-based), eight a line. */
static void print_heads(const curve *c, const int32_t *order)
{
    for (int i = 0; i < c->total; i++)
        printf("%s%s:%d:%d", i % 8 ? " " : "\n  ", at_viz_kind_name(head_kind(c, order[i])),
               head_layer(c, order[i]) + 1, order[i] % c->heads + 1);
    putchar('\n');
}

static void print_text(const curve *c, const char *what)
{
    printf("pruning curve: %s, %d heads (3 kinds), importance |dL/dxi| at xi = 1 "
           "(L = %.6f), %d random order%s\n\n", what, c->total, c->loss, c->seeds,
           c->seeds == 1 ? "" : "s");
    printf("%8s  %7s  %12s  ", "removed", "heads", "importance");
    if (c->re_order)
        printf("%12s  ", "re-estimated");
    printf("%20s\n", "random mean +- sd");
    for (int i = 0; i < STEPS; i++) {
        printf("%7d%%  %7d  %12.4f  ", i * 10, c->removed[i], c->imp[i]);
        if (c->re_order)
            printf("%12.4f  ", c->re[i]);
        printf("%11.4f +- %.4f\n", c->mean[i], c->sd[i]);
    }
    printf("\nall heads of one kind removed (%d heads each; unpruned %.4f)\n%-9s  %10s  %10s\n",
           kind_heads(c), c->imp[0], "kind", c->metric, "change");
    int worst = 0;
    for (int k = 0; k < 3; k++) {
        printf("%-9s  %10.4f  %+10.4f\n", at_viz_kind_name((at_attn_kind)k), c->kind_metric[k],
               c->kind_metric[k] - c->imp[0]);
        worst = c->kind_metric[k] < c->kind_metric[worst] ? k : worst;
    }
    printf("most sensitive: %s\n\nimportance order (least important first):",
           at_viz_kind_name((at_attn_kind)worst));
    print_heads(c, c->order);
    if (c->re_order) {
        printf("re-estimated order (the order of removal):");
        print_heads(c, c->re_order);
    }
}

static void json_heads(const curve *c, const int32_t *order)
{
    for (int i = 0; i < c->total; i++)
        printf("%s[\"%s\", %d, %d]", i ? ", " : "", at_viz_kind_name(head_kind(c, order[i])),
               head_layer(c, order[i]) + 1, order[i] % c->heads + 1);
}

static void print_json(const curve *c)
{
    printf("{\n  \"metric\": \"%s\",\n  \"heads\": %d,\n  \"seeds\": %d,\n  \"loss\": %.17g,\n"
           "  \"steps\": [", c->metric, c->total, c->seeds, c->loss);
    for (int i = 0; i < STEPS; i++) {
        printf("%s\n    {\"removed\": %d, \"percent\": %d, \"importance\": %.9g, ",
               i ? "," : "", c->removed[i], i * 10, c->imp[i]);
        if (c->re_order)
            printf("\"reestimated\": %.9g, ", c->re[i]);
        printf("\"random_mean\": %.9g, \"random_sd\": %.9g}", c->mean[i], c->sd[i]);
    }
    printf("\n  ],\n  \"order\": [");
    json_heads(c, c->order);
    if (c->re_order) {
        printf("],\n  \"reestimated_order\": [");
        json_heads(c, c->re_order);
    }
    printf("],\n  \"importance\": [");
    for (int i = 0; i < c->total; i++)
        printf("%s%.9g", i ? ", " : "", (double)c->order_imp[i]);
    printf("],\n  \"kinds\": [");
    for (int k = 0; k < 3; k++)
        printf("%s{\"kind\": \"%s\", \"heads\": %d, \"metric\": %.9g}", k ? ", " : "",
               at_viz_kind_name((at_attn_kind)k), kind_heads(c), c->kind_metric[k]);
    printf("]\n}\n");
}

/* ---------------------------------------------------------------- the chart */

#define INK "#222222"
#define MUTED "#666666"
#define GRID "#e5e5e5"
#define C_IMP "#d95f02"   /* ColorBrewer Dark2, as the other line charts */
#define C_RND "#1b9e77"
#define C_RE "#7570b3"
#define FONT "'Noto Sans', 'DejaVu Sans', Arial, sans-serif"

enum { W = 760, H = 470, ML = 70, MR = 190, MT = 70, MB = 56 };

typedef struct plot {
    double ymax;   /* the y axis: 0 .. ymax */
} plot;

static double px(int i)
{
    return ML + (W - ML - MR) * i / 10.0;
}

static double py(const plot *p, double v)
{
    double t = p->ymax > 0 ? v / p->ymax : 0;
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    return H - MB - (H - MT - MB) * t;
}

/* 1 for the copy task's share; for BLEU the next multiple of 5 above the top. */
static double axis_top(const curve *c)
{
    if (strcmp(c->metric, "copy") == 0)
        return 1;
    double top = 0;
    for (int i = 0; i < STEPS; i++)
        top = fmax(top, fmax(fmax(c->imp[i], c->mean[i] + c->sd[i]), c->re_order ? c->re[i] : 0));
    return top > 0 ? 5 * ceil(top / 5 + 1e-9) : 5;
}

static void axes(tbuf *b, const plot *p, const char *ylabel)
{
    for (int i = 0; i <= 5; i++) {   /* y ticks and grid */
        double v = p->ymax * i / 5, y = py(p, v);
        tb_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                     "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", ML,
                  W - MR, y, y, GRID, ML - 6, y + 4, v);
    }
    for (int i = 0; i < STEPS; i++)   /* x ticks */
        tb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#555555\"/>"
                     "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", px(i),
                  px(i), H - MB, H - MB + 5, px(i), H - MB + 18, i * 10);
    tb_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#555555\"/>"
                 "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#555555\"/>\n", ML,
              W - MR, H - MB, H - MB, ML, ML, MT, H - MB);
    tb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">heads removed "
                 "(%% of all)</text>\n", (ML + W - MR) / 2.0, H - MB + 38, MUTED);
    tb_printf(b, "<text transform=\"translate(%d %.1f) rotate(-90)\" text-anchor=\"middle\" "
                 "fill=\"%s\">%s</text>\n", 18, (MT + H - MB) / 2.0, MUTED, ylabel);
}

/* One series: its line and its points. */
static void line(tbuf *b, const plot *p, const curve *c, const double *v, const char *col,
                 const char *name, const char *dash)
{
    tb_printf(b, "<g class=\"series-%s\"><polyline fill=\"none\" stroke=\"%s\" "
                 "stroke-width=\"2.5\"%s points=\"", name, col, dash);
    for (int i = 0; i < STEPS; i++)
        tb_printf(b, "%.1f,%.1f ", px(i), py(p, v[i]));
    tb_printf(b, "\"/>\n");
    for (int i = 0; i < STEPS; i++)
        tb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s order"
                     " \xc2\xb7 %d%% (%d heads) removed&#10;%s %.4g</title></circle>\n",
                  px(i), py(p, v[i]), col, name, i * 10, c->removed[i], c->metric, v[i]);
    tb_printf(b, "</g>\n");
}

/* The random orders' mean +- sd band, then the lines with their points. */
static void series(tbuf *b, const plot *p, const curve *c)
{
    tb_printf(b, "<g class=\"random-band\"><polygon fill=\"%s\" fill-opacity=\"0.18\" "
                 "points=\"", C_RND);
    for (int i = 0; i < STEPS; i++)
        tb_printf(b, "%.1f,%.1f ", px(i), py(p, c->mean[i] + c->sd[i]));
    for (int i = STEPS - 1; i >= 0; i--)
        tb_printf(b, "%.1f,%.1f ", px(i), py(p, c->mean[i] - c->sd[i]));
    tb_printf(b, "\"/></g>\n");
    line(b, p, c, c->imp, C_IMP, "importance", "");
    line(b, p, c, c->mean, C_RND, "random", " stroke-dasharray=\"6 4\"");
    if (c->re_order)
        line(b, p, c, c->re, C_RE, "reestimated", " stroke-dasharray=\"2 3\"");
}

static void legend(tbuf *b, const curve *c)
{
    double x = W - MR + 20, y = MT + 10;
    tb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                 "stroke-width=\"2.5\"/><text x=\"%.1f\" y=\"%.1f\">importance order</text>\n"
                 "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"10\">least important "
                 "first</text>\n", x, x + 26, y, y, C_IMP, x + 32, y + 4, x + 32, y + 18, MUTED);
    y += 44;
    tb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"26\" height=\"14\" fill=\"%s\" "
                 "fill-opacity=\"0.18\"/><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                 "stroke=\"%s\" stroke-width=\"2.5\" stroke-dasharray=\"6 4\"/><text x=\"%.1f\" "
                 "y=\"%.1f\">random orders</text>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" "
                 "font-size=\"10\">mean \xc2\xb1 sd over %d seed%s</text>\n", x, y - 7, C_RND,
              x, x + 26, y, y, C_RND, x + 32, y + 4, x + 32, y + 18, MUTED, c->seeds,
              c->seeds == 1 ? "" : "s");
    y += 48;
    if (c->re_order) {
        tb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                     "stroke-width=\"2.5\" stroke-dasharray=\"2 3\"/><text x=\"%.1f\" "
                     "y=\"%.1f\">re-estimated</text>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" "
                     "font-size=\"10\">estimated at each step</text>\n", x, x + 26, y - 10,
                  y - 10, C_RE, x + 32, y - 6, x + 32, y + 8, MUTED);
        y += 38;
    }
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">one kind removed</text>\n",
              x, y);
    for (int k = 0; k < 3; k++)
        tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\">%s: %.4g</text>\n", x, y + 16 * (k + 1),
                  at_viz_kind_name((at_attn_kind)k), c->kind_metric[k]);
}

static void draw(tbuf *b, const curve *c, const char *sub)
{
    plot p = {axis_top(c)};
    const char *ylabel = c->metric[0] == 'c' ? "exact copies (share of rows)" : "BLEU";
    tb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/"
                 "2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "font-size=\"11\" fill=\"%s\" font-family=\"%s\">\n<title>pruning curve: %s"
                 "</title>\n<desc>libat %s: attn prune</desc>\n<rect width=\"100%%\" "
                 "height=\"100%%\" fill=\"#ffffff\"/>\n", W, H, W, H, INK, FONT, ylabel,
              at_version_string());
    tb_printf(b, "<text x=\"16\" y=\"28\" font-size=\"15\" font-weight=\"bold\">pruning "
                 "curve: %s as heads are removed (Michel et al. 2019)</text>\n<text x=\"16\" "
                 "y=\"46\" fill=\"%s\">", ylabel, MUTED);
    tb_xml(b, sub);
    tb_printf(b, "</text>\n");
    axes(b, &p, ylabel);
    series(b, &p, c);
    legend(b, c);
    tb_printf(b, "</svg>\n");
}

static int write_viz(const curve *c, const char *dir, const char *model)
{
    char sub[700];
    snprintf(sub, sizeof sub, "%.400s \xc2\xb7 %d heads (enc_self, dec_self, cross) \xc2\xb7 "
             "gate \xce\xbe = 0 in steps of 10%% \xc2\xb7 importance |\xe2\x88\x82L/\xe2\x88\x82"
             "\xce\xbe| at \xce\xbe = 1, once", model, c->total);
    tbuf b = {0};
    draw(&b, c, sub);
    if (b.oom) {
        attn_error("prune: out of memory for the chart");
        free(b.p);
        return ATTN_FAIL;
    }
    outdir od;
    int rc = outdir_begin(&od, "prune", dir);
    if (rc != ATTN_OK) {
        free(b.p);
        return rc;
    }
    char *path = outdir_path(&od, "prune.svg");
    rc = path ? report_write_file("prune", path, b.p, b.len) : ATTN_FAIL;
    if (rc == ATTN_OK)
        rc = outdir_commit(&od);
    else
        outdir_abort(&od);
    free(path);
    free(b.p);
    return rc;
}

/* ---------------------------------------------------------------- the command */

/* The split's two sides, their line counts checked, cut to limit lines. */
static int open_split(task *k, const char *model, const char *dir, const char *split,
                      int limit)
{
    char name[256];
    snprintf(name, sizeof name, "%.200s.src", split);
    char *src = io_join(dir, name);
    snprintf(name, sizeof name, "%.200s.tgt", split);
    char *tgt = io_join(dir, name);
    int rc = src && tgt ? nmt_read_lines("prune", src, &k->src) : ATTN_FAIL;
    if (rc == ATTN_OK && (rc = nmt_read_lines("prune", tgt, &k->ref)) == ATTN_OK &&
        k->src.n != k->ref.n) {
        attn_error("prune: %s has %d lines but %s has %d; they must match", src, k->src.n, tgt,
                   k->ref.n);
        rc = ATTN_FAIL;
    }
    free(src);
    free(tgt);
    if (rc != ATTN_OK)
        return rc;
    k->n = limit > 0 && limit < k->src.n ? limit : k->src.n;
    k->hyp = calloc((size_t)k->n, sizeof *k->hyp);
    if (!k->hyp) {
        attn_error("prune: out of memory");
        return ATTN_FAIL;
    }
    return nmt_from_model("prune", k->m, model, &k->t);
}

typedef struct prune_args {
    const char *model, *input, *metric, *data, *split, *viz;
    int heads, pad, limit, seeds, seed, threads;
    bool json, reestimate;
} prune_args;

static int run(const prune_args *a, task *k)
{
    int32_t *src = NULL, *tgt = NULL;
    k->b.pad = a->pad;
    int layers = io_model_int(k->m, AT_P_LAYERS), heads = io_model_int(k->m, AT_P_HEADS);
    curve c = {.total = 3 * layers * heads, .seeds = a->seeds, .layers = layers,
               .heads = heads, .metric = a->metric};
    int rc = io_read_batch("prune", a->input, &src, &tgt, &k->b);
    const id_batch *b = &k->b;
    k->copy = (at_copy_task){b->src, b->tgt, b->B, b->S, b->T1, b->pad};
    if (rc == ATTN_OK && k->bleu)
        rc = open_split(k, a->model, a->data, a->split, a->limit);
    if (rc == ATTN_OK)
        rc = measure(k, a->seed, a->reestimate, &c);
    char what[600];
    if (k->bleu)
        snprintf(what, sizeof what, "BLEU of greedy decoding of %d lines of %.200s/%.100s",
                 k->n, a->data, a->split);
    else
        snprintf(what, sizeof what, "exact copies of the %d rows of %.400s", k->b.B, a->input);
    if (rc == ATTN_OK && a->json)
        print_json(&c);
    else if (rc == ATTN_OK)
        print_text(&c, what);
    if (rc == ATTN_OK && fflush(stdout) != 0) {
        attn_error("prune: cannot write to the standard output");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && a->viz)
        rc = write_viz(&c, a->viz, a->model);
    if (rc == ATTN_OK && a->viz && !a->json)
        printf("wrote %s/prune.svg\n", a->viz);
    free(c.order);
    free(c.order_imp);
    free(c.re_order);
    free(src);
    free(tgt);
    return rc;
}

/* The checks of the command line that need no file. */
static int check_args(const prune_args *a, task *k)
{
    if (strcmp(a->metric, "copy") != 0 && strcmp(a->metric, "bleu") != 0) {
        attn_error("prune: unknown --metric '%.40s' (copy or bleu)", a->metric);
        return ATTN_USAGE;
    }
    k->bleu = a->metric[0] == 'b';
    if (k->bleu && !a->data) {
        attn_error("prune: --metric bleu needs --data DIR (DIR/%.100s.src and .tgt)", a->split);
        return ATTN_USAGE;
    }
    if (!k->bleu && a->data) {
        attn_error("prune: --data is for --metric bleu");
        return ATTN_USAGE;
    }
    static const char *const files[] = {"prune.svg", NULL};
    if (a->viz && outdir_check("prune", a->viz, files, NULL) != ATTN_OK)   /* before the work */
        return ATTN_FAIL;
    return ATTN_OK;
}

int cmd_prune(int argc, char **argv)
{
    prune_args a = {.metric = "copy", .split = "valid", .limit = 100, .seeds = 5};
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    opt opts[] = {
        {"model", OPT_STR, &a.model, 0, 0, false},
        {"input", OPT_STR, &a.input, 0, 0, false},
        {"heads", OPT_INT, &a.heads, lo, hi, false},
        {"pad", OPT_INT, &a.pad, INT32_MIN, INT32_MAX, false},
        {"metric", OPT_STR, &a.metric, 0, 0, false},
        {"data", OPT_STR, &a.data, 0, 0, false},
        {"split", OPT_STR, &a.split, 0, 0, false},
        {"limit", OPT_INT, &a.limit, 0, INT32_MAX, false},
        {"seeds", OPT_INT, &a.seeds, 1, 10000, false},
        {"seed", OPT_INT, &a.seed, 0, INT32_MAX, false},
        {"json", OPT_FLAG, &a.json, 0, 0, false},
        {"reestimate", OPT_FLAG, &a.reestimate, 0, 0, false},
        {"viz", OPT_STR, &a.viz, 0, 0, false},
        {"threads", OPT_INT, &a.threads, 1, 4096, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    for (int i = 0; i < 2; i++)
        if (args_require("prune", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    task k = {0};
    rc = check_args(&a, &k);
    if (rc == ATTN_OK && a.threads > 0)
        at_set_threads(a.threads);
    if (rc == ATTN_OK)
        rc = io_load_model(a.model, a.heads, &k.m, NULL);
    if (rc == ATTN_OK)
        rc = run(&a, &k);
    if (k.bleu) {
        for (int i = 0; k.hyp && i < k.n; i++)
            free(k.hyp[i]);
        free(k.hyp);
        nmt_free(&k.t);
        nmt_lines_free(&k.src);
        nmt_lines_free(&k.ref);
    }
    at_model_free(k.m);
    return rc;
}
