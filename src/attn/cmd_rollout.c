/* attn rollout: attention rollout, flow and value norms of a batch
 * (include/at_analysis.h, group rollout; docs/rollout.md). */
#include <stdio.h>
#include <stdlib.h>

#include "at_analysis.h"
#include "attn.h"

static const char help[] =
    "usage: attn rollout --model M.safetensors [--heads H] --input BATCH.safetensors\n"
    "                    [--pad ID] --out OUT.safetensors [--flow] [--value-norm]\n"
    "\n"
    "Run the forward pass (evaluation mode) on the batch in BATCH, as attn dump does,\n"
    "and write to OUT (float32, atomically) the attention rollout of Abnar & Zuidema\n"
    "2020, with Ã = ½·mean_heads(A) + ½·I, rows renormalised:\n"
    "  rollout.enc_self (B,S,S)  Ã_N ⋯ Ã_1 of the encoder\n"
    "and with a tgt:\n"
    "  rollout.dec_self (B,T,T)  Ã_N ⋯ Ã_1 of the decoder's self-attention\n"
    "  rollout.cross    (B,T,S)  the target positions' share of each source token,\n"
    "                            through self- and cross-attention (docs/rollout.md)\n"
    "\n"
    "BATCH holds src (B,S) and optionally tgt (B,T), the decoder input, as for attn\n"
    "dump (I32 or I64).\n"
    "\n"
    "  --model M     the checkpoint\n"
    "  --heads H     attention heads, for a checkpoint without libat metadata\n"
    "  --input F     the batch\n"
    "  --pad ID      padding id, masked as keys (default 0)\n"
    "  --out F       where to write\n"
    "  --flow        also flow.enc_self (B,S,S) (and flow.dec_self (B,T,T) with a tgt):\n"
    "                the maximum flow from each top-layer position to each input\n"
    "                position over the layers' graph of Ã capacities; at most 64 tokens\n"
    "  --value-norm  also vnorm.{kind}.{i} (B,h,Lq,Lk) = ‖α·f(x)‖ per head (Kobayashi\n"
    "                et al. 2020): f(x_j) the head's value vector through its slice of\n"
    "                the output projection\n"
    "  -h, --help    this text\n";

enum { MAX_OUT = 3 + 2 + 3 * 64 };

typedef struct results {
    st_out t[MAX_OUT];
    float *buf[MAX_OUT];
    char names[MAX_OUT][32];
    int n;
} results;

/* One more tensor of shape (B, a, b[, c]); NULL when out of memory. */
static float *add(results *r, const char *name, int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    float *p = malloc(n * sizeof *p);
    if (!p || r->n == MAX_OUT) {
        free(p);
        attn_error("rollout: out of memory");
        return NULL;
    }
    snprintf(r->names[r->n], sizeof r->names[r->n], "%s", name);
    st_out *t = &r->t[r->n];
    *t = (st_out){r->names[r->n], ST_F32, ndim, {0}, p};
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    r->buf[r->n++] = p;
    return p;
}

static int lib_failed(at_model *m, const char *what)
{
    attn_error("rollout: %s: %s", what, at_errmsg(m));
    return ATTN_FAIL;
}

static const char *const kinds[3] = {"enc_self", "dec_self", "cross"};

static int rollouts(at_model *m, results *r, int B, int S, int T)
{
    int64_t shapes[3][3] = {{B, S, S}, {B, T, T}, {B, T, S}};
    for (int k = 0; k < (T ? 3 : 1); k++) {
        char name[32];
        snprintf(name, sizeof name, "rollout.%s", kinds[k]);
        float *p = add(r, name, 3, shapes[k]);
        if (!p)
            return ATTN_FAIL;
        if (at_rollout(m, (at_attn_kind)k, p) != AT_OK)
            return lib_failed(m, name);
    }
    return ATTN_OK;
}

static int flows(at_model *m, results *r, int B, int S, int T)
{
    int64_t shapes[2][3] = {{B, S, S}, {B, T, T}};
    for (int k = 0; k < (T ? 2 : 1); k++) {
        char name[32];
        snprintf(name, sizeof name, "flow.%s", kinds[k]);
        float *p = add(r, name, 3, shapes[k]);
        if (!p)
            return ATTN_FAIL;
        if (at_attention_flow(m, (at_attn_kind)k, p) != AT_OK)
            return lib_failed(m, name);
    }
    return ATTN_OK;
}

static int value_norms(at_model *m, results *r, int B, int S, int T)
{
    int N = io_model_int(m, AT_P_LAYERS), h = io_model_int(m, AT_P_HEADS);
    int64_t shapes[3][4] = {{B, h, S, S}, {B, h, T, T}, {B, h, T, S}};
    for (int k = 0; k < (T ? 3 : 1); k++)
        for (int l = 0; l < N; l++) {
            char name[32];
            snprintf(name, sizeof name, "vnorm.%s.%d", kinds[k], l);
            float *p = add(r, name, 4, shapes[k]);
            if (!p)
                return ATTN_FAIL;
            if (at_value_norm(m, (at_attn_kind)k, l, p) != AT_OK)
                return lib_failed(m, name);
        }
    return ATTN_OK;
}

static int write_results(const results *r, const char *model, const char *input,
                         const char *out, int pad, int B, int S, int T)
{
    char s_pad[16], s_b[16], s_s[16], s_t[16], err[512];
    snprintf(s_pad, sizeof s_pad, "%d", pad);
    snprintf(s_b, sizeof s_b, "%d", B);
    snprintf(s_s, sizeof s_s, "%d", S);
    snprintf(s_t, sizeof s_t, "%d", T);
    const char *meta[] = {"format", "attn-rollout", "libat_version", at_version_string(),
                          "model", model, "input", input, "pad", s_pad, "batch", s_b,
                          "src_len", s_s, "tgt_len", s_t};
    if (st_write(out, r->t, r->n, meta, 8, err, sizeof err) != AT_OK) {
        attn_error("rollout: cannot write %s: %s", out, err);
        return ATTN_FAIL;
    }
    printf("wrote %s: %d tensors, batch %d, src_len %d, tgt_len %d\n", out, r->n, B, S, T);
    return ATTN_OK;
}

int cmd_rollout(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *out = NULL;
    int heads = 0, pad = 0;
    bool flow = false, vnorm = false;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"out", OPT_STR, &out, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"flow", OPT_FLAG, &flow, 0, 0, false},
        {"value-norm", OPT_FLAG, &vnorm, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, 7, help, &rc))
        return rc;
    for (int i = 0; i < 3; i++)
        if (args_require("rollout", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    if (io_check_output("rollout", out) != ATTN_OK)
        return ATTN_FAIL;
    at_model *m = NULL;
    int32_t *src = NULL, *tgt = NULL;
    int B = 0, S = 0, T = 0;
    static results r;   /* large: off the stack */
    r.n = 0;
    rc = io_load_model(model, heads, &m, NULL);
    if (rc == ATTN_OK)
        rc = io_read_input("rollout", "input", input, false, &src, &tgt, &B, &S, &T);
    /* refused before the pass, not after it */
    if (rc == ATTN_OK && flow && (S > AT_FLOW_MAX_LEN || T > AT_FLOW_MAX_LEN)) {
        attn_error("rollout: --flow takes at most %d tokens; %s has src_len %d, tgt_len %d",
                   AT_FLOW_MAX_LEN, input, S, T);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && vnorm && 3 + 2 + 3 * io_model_int(m, AT_P_LAYERS) > MAX_OUT) {
        attn_error("rollout: --value-norm writes at most 64 layers");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && at_forward(m, src, tgt, B, S, T, pad) != AT_OK) {
        attn_error("forward pass on '%s' failed: %s", input, at_errmsg(m));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK)
        rc = rollouts(m, &r, B, S, T);
    if (rc == ATTN_OK && flow)
        rc = flows(m, &r, B, S, T);
    if (rc == ATTN_OK && vnorm)
        rc = value_norms(m, &r, B, S, T);
    if (rc == ATTN_OK)
        rc = write_results(&r, model, input, out, pad, B, S, T);
    for (int i = 0; i < r.n; i++)
        free(r.buf[i]);
    free(src);
    free(tgt);
    at_model_free(m);
    return rc;
}
