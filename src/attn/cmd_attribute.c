/* attn attribute: the gradient of a loss with respect to every attention
 * tensor, and the relevance A ⊙ ∂L/∂A (Chefer et al. 2021, eq. 5's
 * gradient-weighted attention), from one backward pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "report.h"

static const char help[] =
    "usage: attn attribute --model M.safetensors [--heads H] --input BATCH.safetensors\n"
    "                      [--pad ID] [--target POS] [--gate KIND:L:H=G ...] --out G\n"
    "                      [--ig M] [--chefer] [--viz DIR] [--threads N]\n"
    "\n"
    "Gradients with respect to attention. L is attn importance's loss, the mean\n"
    "negative log-likelihood of tgt[:, 1:] over the labels that are not --pad\n"
    "(evaluation mode), or with --target POS the log-probability of the label at\n"
    "decoder position POS (0-based), summed over the rows whose label there is not\n"
    "--pad. G gets, for every attention tensor A = attn.{kind}.{i} of the pass:\n"
    "  attn.{kind}.{i}       A itself (B, h, Lq, Lk), as attn dump writes it\n"
    "  grad.{kind}.{i}       dL/dA, the gradient that flows into A from downstream\n"
    "  relevance.{kind}.{i}  A * dL/dA\n"
    "and the pass's other tensors (memory, logprobs, ...) as attn dump writes them;\n"
    "its metadata holds L as 'value'. With\n"
    "  --ig M     also ig.{kind}.{i}: integrated gradients on that layer's attention\n"
    "             (Hao et al. 2021; zero baseline, M steps, 3 x layers x (M + 1)\n"
    "             backward passes); the completeness errors |sum - (F(A) - F(0))| are\n"
    "             printed and kept in the metadata (ig_completeness)\n"
    "  --chefer   also Chefer et al. 2021's relevance: with --target, chefer.ss (B,S,S),\n"
    "             chefer.qq (B,T,T) and chefer.qs (B,T,S) of that token; without it,\n"
    "             chefer.tokens (B,T,S) whose row t is token t's R^qs (T passes)\n"
    "\n"
    "BATCH holds integer tensors (I32 or I64): src (B, S) and tgt (B, T+1), the whole\n"
    "target as training reads it.\n"
    "\n"
    "  --model M    the checkpoint\n"
    "  --heads H    attention heads, for a checkpoint without libat metadata\n"
    "  --input F    the batch\n"
    "  --pad ID     the padding id of src and tgt (default 0)\n"
    "  --target POS the decoder position whose label's log-probability is L (default:\n"
    "               L is the mean NLL)\n"
    "  --gate SPEC  set head gates first, as attn dump --gate\n"
    "  --out G      the output file (safetensors, written atomically)\n"
    "  --viz DIR    also chart each head's total relevance, the sum of A * dL/dA over\n"
    "               the batch, queries and keys, as layers x heads heatmaps:\n"
    "               DIR/relevance.svg; with --ig also DIR/ig.svg, the sum of each head's\n"
    "               integrated gradients (over all heads: F(A) - F(0), up to the error)\n"
    "  --threads N  threads for OpenBLAS and libat (default: as configured)\n"
    "  -h, --help   this text\n";

/* grad.{kind}.{i} and relevance.{kind}.{i} of every block (and ig, chefer):
 * names, copies, the tensors to write. */
typedef struct grads_out {
    int n;
    char (*names)[40];
    float **data;
    st_out *outs;
} grads_out;

static void grads_free(grads_out *g)
{
    for (int i = 0; g->data && i < g->n; i++)
        free(g->data[i]);
    free(g->names);
    free(g->data);
    free(g->outs);
}

/* One tensor of (B, h, Lq, Lk): ∂L/∂A, or A ⊙ ∂L/∂A. */
static bool add_tensor(grads_out *g, const char *what, int k, int l, const at_view *grad,
                       const at_view *attn)
{
    size_t n = (size_t)(grad->shape[0] * grad->shape[1] * grad->shape[2] * grad->shape[3]);
    float *x = malloc(n * sizeof *x);
    if (!x)
        return false;
    /* the gradients are contiguous; the attention may keep a longer layout */
    size_t i = 0;
    for (int64_t a = 0; a < grad->shape[0]; a++)
        for (int64_t b = 0; b < grad->shape[1]; b++)
            for (int64_t c = 0; c < grad->shape[2]; c++)
                for (int64_t d = 0; d < grad->shape[3]; d++, i++) {
                    float dg = grad->data[i];
                    x[i] = attn ? attn->data[a * attn->stride[0] + b * attn->stride[1] +
                                             c * attn->stride[2] + d * attn->stride[3]] * dg
                                : dg;
                }
    int j = g->n++;
    snprintf(g->names[j], sizeof g->names[j], "%s.%s.%d", what,
             at_viz_kind_name((at_attn_kind)k), l);
    g->data[j] = x;
    g->outs[j] = (st_out){.name = g->names[j], .dtype = ST_F32, .ndim = 4, .data = x};
    for (int d = 0; d < 4; d++)
        g->outs[j].shape[d] = grad->shape[d];
    return true;
}

/* A tensor of the caller's, taken over (freed with g). */
static void add_owned(grads_out *g, const char *name, float *x, int ndim, const int64_t *shape)
{
    int j = g->n++;
    snprintf(g->names[j], sizeof g->names[j], "%s", name);
    g->data[j] = x;
    g->outs[j] = (st_out){.name = g->names[j], .dtype = ST_F32, .ndim = ndim, .data = x};
    for (int d = 0; d < ndim; d++)
        g->outs[j].shape[d] = shape[d];
}

static int collect(at_model *m, grads_out *g)
{
    int layers = io_model_int(m, AT_P_LAYERS), cap = 9 * layers + 4;
    g->names = calloc((size_t)cap, sizeof *g->names);
    g->data = calloc((size_t)cap, sizeof *g->data);
    g->outs = calloc((size_t)cap, sizeof *g->outs);
    if (!g->names || !g->data || !g->outs) {
        attn_error("attribute: out of memory");
        return ATTN_FAIL;
    }
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < layers; l++) {
            at_view dg, a;
            if (at_get_attention_grad(m, (at_attn_kind)k, l, &dg) != AT_OK ||
                at_get_attention(m, (at_attn_kind)k, l, &a) != AT_OK) {
                attn_error("attribute: %s", at_errmsg(m));
                return ATTN_FAIL;
            }
            if (!add_tensor(g, "grad", k, l, &dg, NULL) ||
                !add_tensor(g, "relevance", k, l, &dg, &a)) {
                attn_error("attribute: out of memory");
                return ATTN_FAIL;
            }
        }
    return ATTN_OK;
}

typedef struct extras {
    int ig;              /* steps, 0: none */
    bool chefer;
    const char *viz;     /* --viz DIR, or NULL */
    char completeness[512];
} extras;

/* ig.{kind}.{i} of every block, after the gradients' pass (which the
 * integrated gradients' own passes end: the tensors were copied). */
static int add_ig(at_model *m, const id_batch *b, int target, int steps, grads_out *g,
                  char *errs, size_t errlen)
{
    int layers = io_model_int(m, AT_P_LAYERS), heads = io_model_int(m, AT_P_HEADS);
    int T = b->T1 - 1, used = 0;
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < layers; l++) {
            int64_t shape[4] = {b->B, heads, k == AT_ATTN_ENC_SELF ? b->S : T,
                                k == AT_ATTN_DEC_SELF ? T : b->S};
            float *x = malloc((size_t)(shape[0] * shape[1] * shape[2] * shape[3]) * sizeof *x);
            double err = 0;
            if (!x || at_integrated_gradients(m, b->src, b->tgt, b->B, b->S, b->T1, b->pad,
                                              target, (at_attn_kind)k, l, steps, x, &err) !=
                          AT_OK) {
                attn_error("attribute: %s", x ? at_errmsg(m) : "out of memory");
                free(x);
                return ATTN_FAIL;
            }
            char name[40];
            snprintf(name, sizeof name, "ig.%s.%d", at_viz_kind_name((at_attn_kind)k), l);
            add_owned(g, name, x, 4, shape);
            used += snprintf(errs + used, errlen - (size_t)used, "%s%s.%d %.3g",
                             used ? ", " : "", at_viz_kind_name((at_attn_kind)k), l, err);
            if ((size_t)used >= errlen)
                used = (int)errlen - 1;
        }
    return ATTN_OK;
}

/* Each head's sum of the tensors named what.{kind}.{i} (B, h, Lq, Lk) in
 * g, [kind][layer][head] as doubles (malloc'd; NULL when out of memory). */
static double *head_sums(const grads_out *g, const char *what, int layers, int heads)
{
    double *v = calloc((size_t)3 * layers * heads, sizeof *v);
    size_t len = strlen(what);
    for (int j = 0; v && j < g->n; j++) {
        int k, l;
        const char *name = g->names[j], *kind = name + len + 1;
        if (strncmp(name, what, len) != 0 || name[len] != '.')
            continue;
        for (k = 0; k < 3; k++) {
            size_t kl = strlen(at_viz_kind_name((at_attn_kind)k));
            if (strncmp(kind, at_viz_kind_name((at_attn_kind)k), kl) == 0 && kind[kl] == '.')
                break;
        }
        if (k == 3 || sscanf(kind + strlen(at_viz_kind_name((at_attn_kind)k)) + 1, "%d", &l) != 1)
            continue;
        const int64_t *sh = g->outs[j].shape;
        size_t plane = (size_t)(sh[2] * sh[3]);
        for (int64_t b = 0; b < sh[0]; b++)
            for (int64_t h = 0; h < sh[1]; h++) {
                const float *x = g->data[j] + ((size_t)b * sh[1] + h) * plane;
                double sum = 0;
                for (size_t i = 0; i < plane; i++)
                    sum += x[i];
                v[((size_t)k * layers + l) * heads + h] += sum;
            }
    }
    return v;
}

static const char *const chart_files[] = {"relevance.svg", "ig.svg", NULL};

/* DIR/relevance.svg and, with --ig, DIR/ig.svg: a diverging layers x heads
 * heatmap per kind of each head's summed attribution. */
static int chart(const grads_out *g, const at_model *m, const char *input, int target,
                 double value, const extras *x)
{
    int layers = io_model_int(m, AT_P_LAYERS), heads = io_model_int(m, AT_P_HEADS);
    double *rel = head_sums(g, "relevance", layers, heads);
    double *ig = x->ig ? head_sums(g, "ig", layers, heads) : NULL;
    if (!rel || (x->ig && !ig)) {
        free(rel), free(ig);
        attn_error("attribute: out of memory");
        return ATTN_FAIL;
    }
    char sub[700], ig_sub[800];
    snprintf(sub, sizeof sub, "%.400s \xc2\xb7 L = %s %.6g", input,
             target < 0 ? "mean NLL" : "log-probability at the target", value);
    snprintf(ig_sub, sizeof ig_sub, "%s \xc2\xb7 %d steps from a zero baseline", sub, x->ig);
    headmap maps[2] = {
        {.who = "attribute", .v = rel, .layers = layers, .heads = heads, .diverging = true,
         .title = "relevance: \xce\xa3 A \xe2\x8a\x99 \xe2\x88\x82L/\xe2\x88\x82" "A per head",
         .sub = sub,
         .note = "summed over the batch, queries and keys; red: raising the head's "
                 "attention where it attends raises L",
         .what = "\xce\xa3 A\xe2\x8a\x99\xe2\x88\x82L/\xe2\x88\x82" "A", .legend = "relevance",
         .missing = "-"},
        {.who = "attribute", .v = ig, .layers = layers, .heads = heads, .diverging = true,
         .title = "integrated gradients on attention per head (Hao et al. 2021)",
         .sub = ig_sub,
         .note = "each head's attributions summed; over every head of a layer they add up "
                 "to F(A) \xe2\x88\x92 F(0) of that layer, up to the completeness error",
         .what = "\xce\xa3 IG", .legend = "attribution", .missing = "-"},
    };
    int rc = headmap_save(x->viz, maps, chart_files, x->ig ? 2 : 1);
    free(rel);
    free(ig);
    return rc;
}

/* Chefer et al.'s R^ss, R^qq, R^qs of the target, or every token's R^qs. */
static int add_chefer(at_model *m, const id_batch *b, int target, grads_out *g)
{
    int64_t B = b->B, S = b->S, T = b->T1 - 1;
    if (target >= 0) {
        float *ss = malloc((size_t)(B * S * S) * sizeof *ss);
        float *qq = malloc((size_t)(B * T * T) * sizeof *qq);
        float *qs = malloc((size_t)(B * T * S) * sizeof *qs);
        if (!ss || !qq || !qs || at_relevance_chefer(m, b->src, b->tgt, b->B, b->S, b->T1,
                                                     b->pad, target, ss, qq, qs) != AT_OK) {
            attn_error("attribute: %s", ss && qq && qs ? at_errmsg(m) : "out of memory");
            free(ss), free(qq), free(qs);
            return ATTN_FAIL;
        }
        add_owned(g, "chefer.ss", ss, 3, (int64_t[]){B, S, S});
        add_owned(g, "chefer.qq", qq, 3, (int64_t[]){B, T, T});
        add_owned(g, "chefer.qs", qs, 3, (int64_t[]){B, T, S});
        return ATTN_OK;
    }
    float *tokens = malloc((size_t)(B * T * S) * sizeof *tokens);
    float *qs = malloc((size_t)(B * T * S) * sizeof *qs);
    int rc = tokens && qs ? ATTN_OK : ATTN_FAIL;
    for (int t = 0; rc == ATTN_OK && t < T; t++) {
        /* a position where every label is pad has no token to explain: zeros */
        bool any = false;
        for (int r = 0; r < b->B; r++)
            any |= b->tgt[(size_t)r * b->T1 + t + 1] != b->pad;
        if (any && at_relevance_chefer(m, b->src, b->tgt, b->B, b->S, b->T1, b->pad, t, NULL,
                                       NULL, qs) != AT_OK)
            rc = ATTN_FAIL;
        for (int64_t r = 0; rc == ATTN_OK && r < B; r++)
            for (int64_t s = 0; s < S; s++)
                tokens[(r * T + t) * S + s] = any ? qs[(r * T + t) * S + s] : 0.0f;
    }
    free(qs);
    if (rc != ATTN_OK) {
        attn_error("attribute: %s", tokens ? at_errmsg(m) : "out of memory");
        free(tokens);
        return rc;
    }
    add_owned(g, "chefer.tokens", tokens, 3, (int64_t[]){B, T, S});
    return ATTN_OK;
}

static int run(at_model *m, intv *iv, const char *model, const char *input, const char *out,
               int pad, int target, extras *x)
{
    int32_t *src = NULL, *tgt = NULL;
    id_batch b = {.pad = pad};
    grads_out g = {0};
    double value = 0;
    int rc = intv_apply(iv, m);
    if (rc == ATTN_OK)
        rc = io_read_batch("attribute", input, &src, &tgt, &b);
    if (rc == ATTN_OK && target >= b.T1 - 1) {
        attn_error("attribute: --target %d is beyond the decoder's %d positions (0 .. %d)",
                   target, b.T1 - 1, b.T1 - 2);
        rc = ATTN_USAGE;
    }
    if (rc == ATTN_OK &&
        at_attention_gradients(m, b.src, b.tgt, b.B, b.S, b.T1, b.pad, target, &value) !=
            AT_OK) {
        attn_error("attribute: %s", at_errmsg(m));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK)
        rc = collect(m, &g);
    if (rc == ATTN_OK && x->ig)
        rc = add_ig(m, &b, target, x->ig, &g, x->completeness, sizeof x->completeness);
    if (rc == ATTN_OK && x->chefer)
        rc = add_chefer(m, &b, target, &g);
    /* the file's attention and other tensors are those of the gradients' pass */
    if (rc == ATTN_OK && (x->ig || x->chefer) &&
        at_attention_gradients(m, b.src, b.tgt, b.B, b.S, b.T1, b.pad, target, &value) !=
            AT_OK) {
        attn_error("attribute: %s", at_errmsg(m));
        rc = ATTN_FAIL;
    }
    char s_value[32], s_target[16], s_pad[16];
    snprintf(s_value, sizeof s_value, "%.9g", value);
    snprintf(s_target, sizeof s_target, "%d", target);
    snprintf(s_pad, sizeof s_pad, "%d", pad);
    const char *meta[] = {"format", "attn-attribute", "libat_version", at_version_string(),
                          "model", model, "input", input, "pad", s_pad,
                          "target", s_target, "value", s_value,
                          "ig_completeness", x->completeness};
    int layers = io_model_int(m, AT_P_LAYERS);
    if (rc == ATTN_OK)
        rc = io_write_outputs(m, out, g.outs, g.n, meta, x->ig ? 8 : 7);
    if (rc == ATTN_OK && x->viz)
        rc = chart(&g, m, input, target, value, x);
    if (rc == ATTN_OK)
        printf("wrote %s: %s = %.6g; dL/dA and A*dL/dA of %d attention tensors\n", out,
               target < 0 ? "mean NLL" : "log-probability at the target", value, 3 * layers);
    if (rc == ATTN_OK && x->ig)
        printf("integrated gradients, %d steps: completeness error %s\n", x->ig,
               x->completeness);
    if (rc == ATTN_OK && x->viz)
        printf("wrote %d chart%s into %s\n", x->ig ? 2 : 1, x->ig ? "s" : "", x->viz);
    grads_free(&g);
    free(src);
    free(tgt);
    return rc;
}

int cmd_attribute(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *out = NULL;
    int heads = 0, pad = 0, threads = 0, target = -1;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    static intv iv;
    static extras x;
    memset(&x, 0, sizeof x);
    opt opts[12] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"out", OPT_STR, &out, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"target", OPT_INT, &target, 0, 1 << 20, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"ig", OPT_INT, &x.ig, 1, 10000, false},
        {"chefer", OPT_FLAG, &x.chefer, 0, 0, false},
        {"viz", OPT_STR, &x.viz, 0, 0, false},
    };
    int nopts = 10 + intv_opts(&iv, "attribute", IV_GATE, opts + 10);
    int rc;
    if (!args_command(argc, argv, opts, nopts, help, &rc))
        return rc;
    for (int i = 0; i < 3; i++)
        if (args_require("attribute", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    rc = intv_parse(&iv);
    if (rc == ATTN_OK && x.viz && outdir_check("attribute", x.viz, chart_files, NULL) != ATTN_OK)
        rc = ATTN_FAIL;   /* before the work */
    at_model *m = NULL;
    if (rc == ATTN_OK && threads > 0)
        at_set_threads(threads);
    if (rc == ATTN_OK)
        rc = io_load_model(model, heads, &m, NULL);
    if (rc == ATTN_OK)
        rc = run(m, &iv, model, input, out, pad, target, &x);
    at_model_free(m);
    intv_free(&iv);
    return rc;
}
