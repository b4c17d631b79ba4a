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

static int write_viz(const measures *r, const char *dir, const char *model, const char *input)
{
    size_t n = (size_t)3 * r->layers * r->heads;
    double *imp_v = malloc(n * sizeof *imp_v), *abl_v = malloc(n * sizeof *abl_v);
    if (!imp_v || !abl_v) {
        free(imp_v);
        free(abl_v);
        attn_error("importance: out of memory");
        return ATTN_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        imp_v[i] = fabs((double)r->grad[i]);
        abl_v[i] = r->ablation[i];
    }
    char sub[1200];
    snprintf(sub, sizeof sub, "%.400s \xc2\xb7 %.400s \xc2\xb7 L = %.4f over %lld target tokens",
             model, input, r->loss, (long long)r->tokens);
    headmap imp = {.who = "importance", .v = imp_v, .layers = r->layers, .heads = r->heads,
                   .title = "head importance |\xe2\x88\x82L/\xe2\x88\x82\xce\xbe| at the gates",
                   .sub = sub,
                   .note = "\xce\xbe multiplies a head's output before the output projection; "
                           "L the mean negative log-likelihood (Michel et al. 2019)",
                   .what = "|dL/d\xce\xbe|", .legend = "|dL/d\xce\xbe|", .missing = "-"};
    headmap abl = {.who = "importance", .v = abl_v, .layers = r->layers, .heads = r->heads,
                   .diverging = true, .title = "head ablation: L(\xce\xbe = 0) \xe2\x88\x92 L",
                   .sub = sub,
                   .note = "one head removed at a time: red where the loss rises without it, "
                           "blue where it falls; grey: not ablated (--only)",
                   .what = "L(\xce\xbe = 0) \xe2\x88\x92 L", .legend = "\xce\x94L",
                   .missing = "not ablated (--only)"};
    outdir od;
    int rc = outdir_begin(&od, "importance", dir);
    if (rc == ATTN_OK)
        rc = headmap_write(&od, &imp, "importance.svg");
    if (rc == ATTN_OK)
        rc = headmap_write(&od, &abl, "ablation.svg");
    if (rc == ATTN_OK)
        rc = outdir_commit(&od);
    else
        outdir_abort(&od);
    free(imp_v);
    free(abl_v);
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
