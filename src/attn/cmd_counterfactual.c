/* attn counterfactual: Jain & Wallace 2019's counterfactual attention
 * (at_counterfactual_attention): per head, the total variation of the
 * next-token distribution when that head's attention is permuted over
 * each row's valid keys, or made uniform over them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "report.h"

static const char help[] =
    "usage: attn counterfactual --model M.safetensors [--heads H] --input F [--pad ID]\n"
    "                           [--seed N] [--json] [--viz DIR] [--threads N]\n"
    "\n"
    "Counterfactual attention (Jain & Wallace 2019). F holds src (B, S) and the whole\n"
    "target tgt (B, T+1) as attn importance reads it; the decoder reads tgt[:, :-1].\n"
    "For every (kind, layer, head), that head's attention alone is replaced by\n"
    "  permuted  each row's weights on its valid (unmasked) keys shuffled among\n"
    "            them (Fisher-Yates on a splitmix64 stream of --seed, docs/patching.md)\n"
    "  uniform   1/n on each of the row's n valid keys\n"
    "and the change is the total variation 1/2 sum |p - p'| of the next-token\n"
    "distribution, averaged over the decoder positions whose input is not --pad.\n"
    "\n"
    "  --model M    the checkpoint\n"
    "  --heads H    attention heads, for a checkpoint without libat metadata\n"
    "  --input F    the batch\n"
    "  --pad ID     the padding id (default 0)\n"
    "  --seed N     the permutations' seed (default 0)\n"
    "  --json       {\"seed\": N, \"permuted\": {KIND: [[per head] per layer]}, \"uniform\": ...}\n"
    "  --viz DIR    also chart both as layers x heads heatmaps: DIR/permuted.svg,\n"
    "               DIR/uniform.svg\n"
    "  --threads N  threads for OpenBLAS and libat (default: as configured)\n"
    "  -h, --help   this text\n";

static int report(const float *tvp, const float *tvu, int layers, int heads, int seed,
                  bool json)
{
    if (json) {
        printf("{\"seed\": %d, \"permuted\": {", seed);
        report_json_kinds(tvp, layers, heads);
        printf("}, \"uniform\": {");
        report_json_kinds(tvu, layers, heads);
        printf("}}\n");
        return ATTN_OK;
    }
    report_kind_tables("total variation, permuted attention", tvp, layers, heads);
    report_kind_tables("total variation, uniform attention", tvu, layers, heads);
    return ATTN_OK;
}

static const char *const chart_files[] = {"permuted.svg", "uniform.svg", NULL};

/* Both total variations on the charts' sequential scale, from 0 to the
 * largest of either (so the two charts compare). */
static int chart(const float *tvp, const float *tvu, int layers, int heads, int seed,
                 const char *input, const char *dir)
{
    double *p = headmap_values(tvp, layers, heads), *u = headmap_values(tvu, layers, heads);
    int rc = p && u ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("counterfactual: out of memory");
    double max = 0;
    for (size_t i = 0; rc == ATTN_OK && i < (size_t)3 * layers * heads; i++)
        max = fmax(max, fmax(p[i], u[i]));
    char sub[600];
    snprintf(sub, sizeof sub, "%.400s \xc2\xb7 seed %d", input, seed);
    const char *note = "total variation \xc2\xbd\xce\xa3|p \xe2\x88\x92 p\xe2\x80\xb2| of the "
                       "next-token distribution, one head's attention replaced at a time "
                       "(Jain & Wallace 2019)";
    headmap h[2] = {
        {.who = "counterfactual", .v = p, .layers = layers, .heads = heads, .max = max,
         .title = "counterfactual attention: each row's weights permuted over its keys",
         .sub = sub, .note = note, .what = "TV", .legend = "TV", .missing = "-"},
        {.who = "counterfactual", .v = u, .layers = layers, .heads = heads, .max = max,
         .title = "counterfactual attention: uniform over each row's keys", .sub = sub,
         .note = note, .what = "TV", .legend = "TV", .missing = "-"},
    };
    if (rc == ATTN_OK)
        rc = headmap_save(dir, h, chart_files, 2);
    free(p);
    free(u);
    return rc;
}

static int run(at_model *m, const char *input, int pad, int seed, bool json, const char *viz)
{
    int32_t *src = NULL, *tgt = NULL, *in = NULL;
    id_batch b = {.pad = pad};
    int layers = io_model_int(m, AT_P_LAYERS), heads = io_model_int(m, AT_P_HEADS);
    size_t n = (size_t)3 * layers * heads;
    float *tvp = malloc(n * sizeof *tvp), *tvu = malloc(n * sizeof *tvu);
    int rc = tvp && tvu ? ATTN_OK : ATTN_FAIL;
    if (rc == ATTN_OK)
        rc = io_read_batch("counterfactual", input, &src, &tgt, &b);
    int T = b.T1 - 1;
    if (rc == ATTN_OK && !(in = malloc((size_t)b.B * T * sizeof *in)))
        rc = ATTN_FAIL;
    if (!tvp || !tvu || (rc == ATTN_FAIL && src && !in))
        attn_error("counterfactual: out of memory");
    for (int r = 0; rc == ATTN_OK && r < b.B; r++) /* the decoder's input tgt[:, :-1] */
        memcpy(in + (size_t)r * T, tgt + (size_t)r * b.T1, (size_t)T * sizeof *in);
    if (rc == ATTN_OK && at_counterfactual_attention(m, src, in, b.B, b.S, T, pad,
                                                     (uint64_t)seed, tvp, tvu) != AT_OK) {
        attn_error("counterfactual: %s", at_errmsg(m));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK)
        rc = report(tvp, tvu, layers, heads, seed, json);
    if (rc == ATTN_OK && viz)
        rc = chart(tvp, tvu, layers, heads, seed, input, viz);
    if (rc == ATTN_OK && viz && !json)
        printf("wrote %s/permuted.svg and %s/uniform.svg\n", viz, viz);
    free(tvp), free(tvu), free(src), free(tgt), free(in);
    return rc;
}

int cmd_counterfactual(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *viz = NULL;
    int heads = 0, pad = 0, threads = 0;
    int seed = 0;
    bool json = false;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"seed", OPT_INT, &seed, 0, INT32_MAX, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"viz", OPT_STR, &viz, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), help, &rc))
        return rc;
    for (int i = 0; i < 2; i++)
        if (args_require("counterfactual", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    if (viz && outdir_check("counterfactual", viz, chart_files, NULL) != ATTN_OK)
        return ATTN_FAIL;   /* before the work */
    at_model *m = NULL;
    if (threads > 0)
        at_set_threads(threads);
    rc = io_load_model(model, heads, &m, NULL);
    if (rc == ATTN_OK)
        rc = run(m, input, pad, seed, json, viz);
    at_model_free(m);
    return rc;
}
