/* attn patch: activation patching between a clean and a corrupted batch
 * (at_activation_patch): per head, how much a value of the clean run
 * changes when that head's output is the corrupted run's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "report.h"

static const char help[] =
    "usage: attn patch --model M.safetensors [--heads H] --clean F1 --corrupt F2\n"
    "                  [--pad ID] [--target POS] [--json] [--viz DIR] [--threads N]\n"
    "\n"
    "Activation patching. F1 and F2 hold src (B, S) and the whole target tgt (B, T+1)\n"
    "as attn importance reads them, of the same shapes. The value is measured on F1's\n"
    "labels tgt[:, 1:]: the mean negative log-likelihood over labels that are not\n"
    "--pad, or with --target POS the log-probability of the label at decoder\n"
    "position POS (0-based) summed over the rows whose label there is not --pad.\n"
    "For every (kind, layer, head): delta = value(the clean run with that head's\n"
    "output, its P.V before the output projection, taken from the corrupted run)\n"
    "- value(clean); 3 x layers x heads + 2 forward passes.\n"
    "\n"
    "  --model M    the checkpoint\n"
    "  --heads H    attention heads, for a checkpoint without libat metadata\n"
    "  --clean F1   the clean batch\n"
    "  --corrupt F2 the corrupted batch\n"
    "  --pad ID     the padding id (default 0)\n"
    "  --target POS the decoder position of the label (default: the mean NLL)\n"
    "  --json       {\"clean\": v, \"corrupt\": v, \"patch\": {KIND: [[per head] per layer]}}\n"
    "  --viz DIR    also chart the deltas as layers x heads heatmaps: DIR/patch.svg\n"
    "  --threads N  threads for OpenBLAS and libat (default: as configured)\n"
    "  -h, --help   this text\n";

static int check_shapes(const id_batch *a, const id_batch *b)
{
    if (a->B == b->B && a->S == b->S && a->T1 == b->T1)
        return ATTN_OK;
    attn_error("patch: --clean is (%d, %d) / (%d, %d) but --corrupt is (%d, %d) / (%d, %d): "
               "src and tgt must have the same shapes", a->B, a->S, a->B, a->T1, b->B, b->S,
               b->B, b->T1);
    return ATTN_USAGE;
}

static int chart(const float *out, int layers, int heads, int target, double vc, double vx,
                 const char *clean, const char *corrupt, const char *dir);

static int run(at_model *m, const char *clean, const char *corrupt, int pad, int target,
               bool json, const char *viz)
{
    int32_t *cs = NULL, *ct = NULL, *xs = NULL, *xt = NULL;
    id_batch a = {.pad = pad}, b = {.pad = pad};
    int layers = io_model_int(m, AT_P_LAYERS), heads = io_model_int(m, AT_P_HEADS);
    float *out = malloc((size_t)3 * layers * heads * sizeof *out);
    double vc = 0, vx = 0;
    int rc = out ? ATTN_OK : ATTN_FAIL;
    if (!out)
        attn_error("patch: out of memory");
    if (rc == ATTN_OK)
        rc = io_read_batch("patch", clean, &cs, &ct, &a);
    if (rc == ATTN_OK)
        rc = io_read_batch("patch", corrupt, &xs, &xt, &b);
    if (rc == ATTN_OK)
        rc = check_shapes(&a, &b);
    if (rc == ATTN_OK && target >= a.T1 - 1) {
        attn_error("patch: --target %d is beyond the decoder's %d positions (0 .. %d)", target,
                   a.T1 - 1, a.T1 - 2);
        rc = ATTN_USAGE;
    }
    if (rc == ATTN_OK && at_activation_patch(m, a.src, a.tgt, b.src, b.tgt, a.B, a.S, a.T1,
                                             pad, target, out, &vc, &vx) != AT_OK) {
        attn_error("patch: %s", at_errmsg(m));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && json) {
        printf("{\"clean\": %.9g, \"corrupt\": %.9g, \"target\": %d, \"patch\": {", vc, vx,
               target);
        report_json_kinds(out, layers, heads);
        printf("}}\n");
    } else if (rc == ATTN_OK) {
        const char *what = target < 0 ? "mean NLL" : "log-probability at the target";
        printf("%s: clean %.6g, corrupt %.6g\n", what, vc, vx);
        report_kind_tables("delta = patched - clean", out, layers, heads);
    }
    if (rc == ATTN_OK && viz)
        rc = chart(out, layers, heads, target, vc, vx, clean, corrupt, viz);
    if (rc == ATTN_OK && viz && !json)
        printf("wrote %s/patch.svg\n", viz);
    free(out), free(cs), free(ct), free(xs), free(xt);
    return rc;
}

static const char *const chart_files[] = {"patch.svg", NULL};

/* The deltas, red where the corrupted head's output raises the value. */
static int chart(const float *out, int layers, int heads, int target, double vc, double vx,
                 const char *clean, const char *corrupt, const char *dir)
{
    double *v = headmap_values(out, layers, heads);
    if (!v) {
        attn_error("patch: out of memory");
        return ATTN_FAIL;
    }
    char sub[1200];
    snprintf(sub, sizeof sub, "clean %.400s \xc2\xb7 corrupted %.400s \xc2\xb7 %s: clean %.4g, "
             "corrupted %.4g", clean, corrupt, target < 0 ? "mean NLL" : "log-probability",
             vc, vx);
    headmap h = {.who = "patch", .v = v, .layers = layers, .heads = heads, .diverging = true,
                 .title = "activation patching: value(patched) \xe2\x88\x92 value(clean)",
                 .sub = sub,
                 .note = "each head's output (P\xc2\xb7V) in the clean run taken from the "
                         "corrupted run, one head at a time",
                 .what = "\xce\x94", .legend = "\xce\x94", .missing = "-"};
    int rc = headmap_save(dir, &h, chart_files, 1);
    free(v);
    return rc;
}

int cmd_patch(int argc, char **argv)
{
    const char *model = NULL, *clean = NULL, *corrupt = NULL, *viz = NULL;
    int heads = 0, pad = 0, threads = 0, target = -1;
    bool json = false;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"clean", OPT_STR, &clean, 0, 0, false},
        {"corrupt", OPT_STR, &corrupt, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"target", OPT_INT, &target, 0, 1 << 20, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"viz", OPT_STR, &viz, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), help, &rc))
        return rc;
    for (int i = 0; i < 3; i++)
        if (args_require("patch", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    if (viz && outdir_check("patch", viz, chart_files, NULL) != ATTN_OK)   /* before the work */
        return ATTN_FAIL;
    at_model *m = NULL;
    if (threads > 0)
        at_set_threads(threads);
    rc = io_load_model(model, heads, &m, NULL);
    if (rc == ATTN_OK)
        rc = run(m, clean, corrupt, pad, target, json, viz);
    at_model_free(m);
    return rc;
}
