/* attn align-eval: how often cross-attention points at the word that was
 * translated. Word-level alignments from a model's teacher-forced
 * cross-attention (or from a file of alignments) scored against the gold
 * links of a corpus folder (DIR/{split}.align, Pharaoh i-j: the Strong's
 * links of attn corpus bible) with AER, precision and recall
 * (docs/alignment.md). The links, the word maps and the scores are
 * libat_text's (at_align_*, src/text/align.c); this file runs the model on
 * the batches it hands out and prints. */
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "at_text.h"
#include "attn.h"
#include "dist.h"
#include "report.h"

static const char help[] =
    "usage: attn align-eval --model M --data DIR [--split test] [--limit N] [--batch N]\n"
    "                       [--threads N] [--json] [--viz DIR]\n"
    "       attn align-eval --hyp F --data DIR [--split test] [--limit N] [--json]\n"
    "\n"
    "Score word alignments against the gold links DIR/{split}.align (one line per line of\n"
    "DIR/{split}.src and .tgt, pairs i-j of 0-based source word i and target word j, i?j\n"
    "for a possible link, words split at white space; attn corpus bible writes them from\n"
    "Strong's numbers).\n"
    "With --model: the teacher-forced pass on each line pair (source and target pieces as\n"
    "attn translate --dump builds them), cross-attention summed over a source word's\n"
    "pieces and averaged over a target word's pieces (the rows that emit them), and per\n"
    "target word the source word it attends to most: for every layer and head, for each\n"
    "layer's mean over heads and for the mean over all layers. With --hyp: the links of\n"
    "F (Pharaoh, one line per corpus line). Only target words with at least one gold link\n"
    "are scored. AER = 1 - (|A&S| + |A&P|) / (|A| + |S|) (Och & Ney 2003; with sure links\n"
    "only 1 - 2|A&S| / (|A| + |S|)), precision |A&P| / |A|, recall |A&S| / |S|. Lines cut\n"
    "to the model's positions or whose pieces do not make up their words are left out (and\n"
    "counted).\n"
    "\n"
    "  --model M    a translation model that carries its tokenizer\n"
    "  --hyp F      alignments to score instead of a model's\n"
    "  --data DIR   the corpus folder\n"
    "  --split S    which split (default test): DIR/S.src, DIR/S.tgt, DIR/S.align\n"
    "  --limit N    only the first N lines\n"
    "  --batch N    line pairs per forward pass (default 16)\n"
    "  --threads N  threads for OpenBLAS and libat\n"
    "  --json       one JSON object: lines, heads {\"L:H\": {aer, precision, recall}},\n"
    "               layers {\"L\": ...}, average, best {layer, head, aer} (from 1); with\n"
    "               --hyp: lines, alignment {aer, precision, recall}\n"
    "  --viz DIR    with --model: also chart every cross-attention head's AER, precision\n"
    "               and recall as layers x heads heatmaps: DIR/aer.svg, DIR/precision.svg,\n"
    "               DIR/recall.svg\n"
    "  -h, --help   this text\n";

/* Prints libat_text's message (without the name of its function, which the
 * user did not call); returns ATTN_FAIL. */
static int text_failed(void)
{
    const char *m = at_text_errmsg(), *colon = strstr(m, ": ");
    if (strncmp(m, "at_", 3) == 0 && colon && !memchr(m, ' ', (size_t)(colon - m)))
        m = colon + 2;
    attn_error("align-eval: %s", m);
    return ATTN_FAIL;
}

/* ---------------------------------------------------------------- the model's maps */

/* A buffer as a view: (B, h, Lq, Lk), or with ndim 3 (B, Lq, Lk). */
static at_view buffer_view(const float *x, int ndim, int64_t B, int64_t h, int64_t lq,
                           int64_t lk)
{
    at_view v = {.data = x, .ndim = 4, .shape = {B, h, lq, lk},
                 .stride = {h * lq * lk, lq * lk, lk, 1}};
    if (ndim == 3)
        v = (at_view){.data = x, .ndim = 3, .shape = {B, lq, lk}, .stride = {lq * lk, lk, 1}};
    return v;
}

/* The pass of the batch: cross-attention of every layer, then the
 * rollout to the source and every layer's value norms of that pass. */
static int feed_pass(at_model *m, at_align_eval *e, const at_align_batch *b, int layers,
                     int heads)
{
    if (at_forward(m, b->src, b->tgt, b->rows, b->src_len, b->tgt_len, AT_TOK_PAD_ID) != AT_OK) {
        attn_error("align-eval: the forward pass failed: %s", at_errmsg(m));
        return ATTN_FAIL;
    }
    for (int l = 0; l < layers; l++) {
        at_view v;
        if (at_get_attention(m, AT_ATTN_CROSS, l, &v) != AT_OK) {
            attn_error("align-eval: cross-attention of layer %d: %s", l + 1, at_errmsg(m));
            return ATTN_FAIL;
        }
        if (at_align_eval_feed(e, AT_ALIGN_IN_ATTENTION, l, &v, NULL) != AT_OK)
            return text_failed();
    }
    size_t one = (size_t)b->rows * b->tgt_len * b->src_len;
    float *buf = malloc(one * (size_t)heads * sizeof *buf);
    if (!buf) {
        attn_error("align-eval: out of memory");
        return ATTN_FAIL;
    }
    int rc = ATTN_OK;
    if (at_rollout(m, AT_ATTN_CROSS, buf) != AT_OK) {
        attn_error("align-eval: %s", at_errmsg(m));
        rc = ATTN_FAIL;
    } else {
        at_view v = buffer_view(buf, 3, b->rows, 1, b->tgt_len, b->src_len);
        rc = at_align_eval_feed(e, AT_ALIGN_IN_ROLLOUT, 0, &v, NULL) == AT_OK ? ATTN_OK
                                                                             : text_failed();
    }
    for (int l = 0; rc == ATTN_OK && l < layers; l++) {
        if (at_value_norm(m, AT_ATTN_CROSS, l, buf) != AT_OK) {
            attn_error("align-eval: %s", at_errmsg(m));
            rc = ATTN_FAIL;
            break;
        }
        at_view v = buffer_view(buf, 4, b->rows, heads, b->tgt_len, b->src_len);
        if (at_align_eval_feed(e, AT_ALIGN_IN_VALUE_NORM, l, &v, NULL) != AT_OK)
            rc = text_failed();
    }
    free(buf);
    return rc;
}

/* A pass with the gradients of the batch's mean NLL over the full targets:
 * (-dL/dA * A)+ of every cross layer (Chefer et al.'s gradient weighting). */
static int feed_gradients(at_model *m, at_align_eval *e, const at_align_batch *b, int layers)
{
    if (at_attention_gradients(m, b->src, b->ys, b->rows, b->src_len, b->tgt_len + 1,
                               AT_TOK_PAD_ID, -1, NULL) != AT_OK) {
        attn_error("align-eval: the gradients' pass failed: %s", at_errmsg(m));
        return ATTN_FAIL;
    }
    for (int l = 0; l < layers; l++) {
        at_view a, g;
        if (at_get_attention(m, AT_ATTN_CROSS, l, &a) != AT_OK ||
            at_get_attention_grad(m, AT_ATTN_CROSS, l, &g) != AT_OK) {
            attn_error("align-eval: %s", at_errmsg(m));
            return ATTN_FAIL;
        }
        if (at_align_eval_feed(e, AT_ALIGN_IN_GRADIENT, l, &g, &a) != AT_OK)
            return text_failed();
    }
    return ATTN_OK;
}

/* Adds the corpus to a new evaluation and feeds it the model's maps, batch
 * by batch; *out (the caller frees it before t) is the result. */
static int score_model(const nmt *t, const char *data, const char *split, int limit,
                       int batch, at_align_eval **out)
{
    int layers = io_model_int(t->m, AT_P_LAYERS), heads = io_model_int(t->m, AT_P_HEADS);
    at_align_eval *e = NULL;
    int rc = ATTN_OK;
    /* under mpirun each rank takes its contiguous share of the lines */
    if (at_align_eval_create(&e, t->src, t->tgt, layers, heads, t->max_len) != AT_OK ||
        at_align_eval_add_corpus_part(e, data, split, limit, dist_rank(), dist_size()) != AT_OK)
        rc = text_failed();
    at_align_batch b = {.struct_size = sizeof b};
    while (rc == ATTN_OK) {
        if (at_align_eval_next(e, batch, &b) != AT_OK) {
            rc = text_failed();
            break;
        }
        if (b.rows == 0)
            break;
        rc = feed_pass(t->m, e, &b, layers, heads);
        if (rc == ATTN_OK)
            rc = feed_gradients(t->m, e, &b, layers);
    }
    *out = e;
    return rc;
}

/* Under mpirun: every rank's counts become the sums over the ranks (each a
 * count over its lines, so the sums are one process's counts over all). */
static int merge_ranks(at_align_eval *e)
{
    size_t n = 0;
    if (at_align_eval_sums(e, NULL, 0, &n) != AT_OK)
        return text_failed();
    int64_t *own = malloc(n * sizeof *own), *more = malloc(n * sizeof *more);
    double *sum = malloc(n * sizeof *sum);
    int rc = own && more && sum ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("align-eval: out of memory");
    if (rc == ATTN_OK && at_align_eval_sums(e, own, n, &n) != AT_OK)
        rc = text_failed();
    /* counts as doubles: exact below 2^53 */
    for (size_t i = 0; rc == ATTN_OK && i < n; i++)
        sum[i] = (double)own[i];
    if (rc == ATTN_OK && dist_allreduce(NULL, sum, n, AT_REDUCE_DOUBLE) != AT_OK) {
        attn_error("align-eval: the reduction over the ranks failed");
        rc = ATTN_FAIL;
    }
    for (size_t i = 0; rc == ATTN_OK && i < n; i++)
        more[i] = (int64_t)sum[i] - own[i];
    if (rc == ATTN_OK && at_align_eval_add_sums(e, more, n) != AT_OK)
        rc = text_failed();
    free(own);
    free(more);
    free(sum);
    return rc;
}

/* ---------------------------------------------------------------- output */

static void json_counts(const char *key, const at_align_counts *c, bool comma)
{
    double aer, p, r;
    at_align_rates(c, &aer, &p, &r);
    printf("\"%s\": {\"aer\": %.17g, \"precision\": %.17g, \"recall\": %.17g}%s", key, aer, p, r,
           comma ? ", " : "");
}

static void text_counts(const char *what, const at_align_counts *c)
{
    double aer, p, r;
    at_align_rates(c, &aer, &p, &r);
    printf("%-16s %8.4f %10.4f %8.4f\n", what, aer, p, r);
}

static at_align_counts counts(at_align_eval *e, at_align_method m, int layer, int head)
{
    at_align_counts c = {0, 0, 0, 0};
    at_align_eval_counts(e, m, layer, head, &c);
    return c;
}

static const struct {
    at_align_method m;
    const char *key, *text;
} fixed[] = {
    {AT_ALIGN_AVERAGE, "average", "all layers mean"},
    {AT_ALIGN_ROLLOUT, "rollout", "rollout"},
    {AT_ALIGN_VALUE_NORM, "value_norm", "value norm"},
    {AT_ALIGN_ATTRIBUTION, "attribution", "grad x attn"},
};

static void print_json(at_align_eval *e, const at_align_eval_info *in)
{
    char key[48];
    printf("{\"lines\": %lld, \"skipped\": {\"truncated\": %lld, \"pieces\": %lld, "
           "\"no_links\": %lld}, \"gold_links\": %lld,\n \"heads\": {", (long long)in->lines,
           (long long)in->truncated, (long long)in->pieces, (long long)in->no_links,
           (long long)in->gold);
    for (int k = 0; k < in->layers * in->heads; k++) {
        snprintf(key, sizeof key, "%d:%d", k / in->heads + 1, k % in->heads + 1);
        at_align_counts c = counts(e, AT_ALIGN_HEAD, k / in->heads, k % in->heads);
        json_counts(key, &c, k + 1 < in->layers * in->heads);
    }
    printf("},\n \"layers\": {");
    for (int l = 0; l < in->layers; l++) {
        snprintf(key, sizeof key, "%d", l + 1);
        at_align_counts c = counts(e, AT_ALIGN_LAYER, l, 0);
        json_counts(key, &c, l + 1 < in->layers);
    }
    printf("},\n ");
    for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++) {
        at_align_counts c = counts(e, fixed[k].m, 0, 0);
        json_counts(fixed[k].key, &c, true);
    }
    printf("\n \"best\": {\"layer\": %d, \"head\": %d, \"aer\": %.17g}}\n", in->best_layer + 1,
           in->best_head + 1, in->best_aer);
}

static void print_model(at_align_eval *e, bool json)
{
    at_align_eval_info in = {.struct_size = sizeof in};
    at_align_eval_result(e, &in);
    if (json) {
        print_json(e, &in);
        return;
    }
    char key[48];
    printf("%lld lines scored (left out: %lld cut to the model's positions, %lld whose pieces "
           "do not make up their words, %lld without gold links); %lld gold links\n",
           (long long)in.lines, (long long)in.truncated, (long long)in.pieces,
           (long long)in.no_links, (long long)in.gold);
    printf("%-16s %8s %10s %8s\n", "cross-attention", "AER", "precision", "recall");
    for (int k = 0; k < in.layers * in.heads; k++) {
        snprintf(key, sizeof key, "layer %d head %d", k / in.heads + 1, k % in.heads + 1);
        at_align_counts c = counts(e, AT_ALIGN_HEAD, k / in.heads, k % in.heads);
        text_counts(key, &c);
    }
    for (int l = 0; l < in.layers; l++) {
        snprintf(key, sizeof key, "layer %d mean", l + 1);
        at_align_counts c = counts(e, AT_ALIGN_LAYER, l, 0);
        text_counts(key, &c);
    }
    for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++) {
        at_align_counts c = counts(e, fixed[k].m, 0, 0);
        text_counts(fixed[k].text, &c);
    }
    printf("best alignment head: layer %d head %d (AER %.4f)\n", in.best_layer + 1,
           in.best_head + 1, in.best_aer);
}

static const char *const chart_files[] = {"aer.svg", "precision.svg", "recall.svg", NULL};

/* DIR/{aer,precision,recall}.svg: cross-attention's layers x heads, each on
 * the scale 0 .. 1 (the other kinds' panels left out). */
static int chart(at_align_eval *e, const char *model, const char *data, const char *split,
                 const char *dir)
{
    at_align_eval_info in = {.struct_size = sizeof in};
    at_align_eval_result(e, &in);
    size_t n = (size_t)3 * in.layers * in.heads, cross = (size_t)2 * in.layers * in.heads;
    double *v = malloc(3 * n * sizeof *v);
    if (!v) {
        attn_error("align-eval: out of memory");
        return ATTN_FAIL;
    }
    for (size_t i = 0; i < 3 * n; i++)
        v[i] = NAN;
    for (int k = 0; k < in.layers * in.heads; k++) {
        at_align_counts c = counts(e, AT_ALIGN_HEAD, k / in.heads, k % in.heads);
        at_align_rates(&c, &v[cross + (size_t)k], &v[n + cross + (size_t)k],
                       &v[2 * n + cross + (size_t)k]);
    }
    char sub[900], note[200];
    snprintf(sub, sizeof sub, "%.300s on %.300s/%.100s: %lld lines, %lld gold links", model,
             data, split, (long long)in.lines, (long long)in.gold);
    snprintf(note, sizeof note, "each head's argmax alignment of target words to source "
             "words; best head: layer %d head %d (AER %.4f)", in.best_layer + 1,
             in.best_head + 1, in.best_aer);
    headmap base = {.who = "align-eval", .layers = in.layers, .heads = in.heads, .max = 1,
                    .sub = sub, .note = note, .missing = "-", .kinds = 1u << AT_ATTN_CROSS};
    headmap maps[3] = {base, base, base};
    maps[0].v = v, maps[0].title = "alignment error rate per head (lower is better)";
    maps[0].what = maps[0].legend = "AER";
    maps[1].v = v + n, maps[1].title = "alignment precision per head";
    maps[1].what = maps[1].legend = "precision";
    maps[2].v = v + 2 * n, maps[2].title = "alignment recall per head";
    maps[2].what = maps[2].legend = "recall";
    int rc = headmap_save(dir, maps, chart_files, 3);
    free(v);
    return rc;
}

static int score_hyp(const char *path, const char *data, const char *split, int limit,
                     bool json)
{
    at_align_counts c;
    int64_t n = 0;
    if (at_align_score_files(data, split, path, limit, &c, &n) != AT_OK)
        return text_failed();
    if (json) {
        printf("{\"lines\": %lld, \"gold_links\": %lld, ", (long long)n, (long long)c.sure);
        json_counts("alignment", &c, false);
        printf("}\n");
    } else {
        printf("%lld lines; %lld gold links, %lld links on target words with one, %lld of them "
               "gold\n%-16s %8s %10s %8s\n", (long long)n, (long long)c.sure, (long long)c.hyp,
               (long long)c.hit_possible, "", "AER", "precision", "recall");
        text_counts(path, &c);
    }
    return ATTN_OK;
}

/* ---------------------------------------------------------------- the command */

static int align_eval_run(int argc, char **argv)
{
    const char *model = NULL, *hyp = NULL, *data = NULL, *split = "test", *viz = NULL;
    bool json = false;
    int limit = 0, batch = 16, threads = 0;
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"hyp", OPT_STR, &hyp, 0, 0, false},
        {"data", OPT_STR, &data, 0, 0, false},
        {"split", OPT_STR, &split, 0, 0, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"limit", OPT_INT, &limit, 1, 2147483647.0, false},
        {"batch", OPT_INT, &batch, 1, 4096, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"viz", OPT_STR, &viz, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    if ((rc = args_require("align-eval", &opts[2])) != ATTN_OK)
        return rc;
    if (!!model == !!hyp) {
        attn_error("align-eval: give --model M (its cross-attention) or --hyp F (a file of "
                   "alignments), one of them");
        return ATTN_USAGE;
    }
    if (!*split || strlen(split) > 200 || strchr(split, '/')) {
        attn_error("align-eval: --split: a split name such as train, valid or test");
        return ATTN_USAGE;
    }
    if (viz && hyp) {
        attn_error("align-eval: --viz charts a model's heads: it goes with --model");
        return ATTN_USAGE;
    }
    if (viz && outdir_check("align-eval", viz, chart_files, NULL) != ATTN_OK)
        return ATTN_FAIL;   /* before the work */
    if (threads > 0)
        at_set_threads(threads);
    else if (dist_threads() > 0)      /* ranks sharing a machine share its cores */
        at_set_threads(dist_threads());
    if (hyp)
        return score_hyp(hyp, data, split, limit, json);
    nmt t;
    if ((rc = nmt_load("align-eval", model, &t)) != ATTN_OK)
        return rc;
    at_align_eval *e = NULL;
    rc = score_model(&t, data, split, limit, batch, &e);
    if (rc == ATTN_OK && dist_size() > 1)
        rc = merge_ranks(e);
    at_align_eval_info in = {.struct_size = sizeof in};
    if (rc == ATTN_OK && at_align_eval_result(e, &in) != AT_OK)
        rc = text_failed();
    if (rc == ATTN_OK && in.lines == 0) {
        attn_error("align-eval: no line could be scored (%lld without gold links, %lld cut, "
                   "%lld whose pieces do not make up their words)", (long long)in.no_links,
                   (long long)in.truncated, (long long)in.pieces);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK)
        print_model(e, json);
    if (rc == ATTN_OK && viz && dist_rank() == 0 &&
        (rc = chart(e, model, data, split, viz)) == ATTN_OK && !json)
        printf("wrote 3 charts into %s\n", viz);
    at_align_eval_free(e);
    nmt_free(&t);
    return rc;
}

int cmd_align_eval(int argc, char **argv)
{
    int rc = dist_init("align-eval");
    if (rc == ATTN_OK)
        rc = align_eval_run(argc, argv);
    return dist_end(rc);
}
