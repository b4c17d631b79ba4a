/* attn viz's analysis layers: the library's analyses of the charted input,
 * attached to the explorer (docs/explorer.md, "Analysis views"). Each is the
 * computation of the command that has it on its own, on the same batch, so
 * the page carries those commands' numbers:
 *   --importance  at_gate_gradients and one at_eval_nll per head with its
 *                 gate at 0 (attn importance: |dL/dxi| and the ablation)
 *   --rollout     at_rollout of each kind (attn rollout)
 *   --relevance   at_relevance_chefer for every target position t: row t of
 *                 R^qs and of R^qq (that output token's relevance)
 *   --patch F     at_activation_patch of the input (clean) against F
 *                 (corrupted), the mean NLL's change per head (attn patch)
 *   --counterfactual  at_counterfactual_attention (seed 0) on the decoder
 *                 input, as attn counterfactual reads the whole target
 *   --ig M        at_integrated_gradients of every layer of each kind, each
 *                 head's attributions of the charted row summed (attn
 *                 attribute --ig M --viz sums them over the batch)
 *   --roles       at_head_pattern_scores on attn heads' built-in templates,
 *                 the best per head (the first of equal ones)
 *   --flow        at_attention_flow of enc_self and dec_self (attn rollout --flow)
 *   --value-norm  at_value_norm of every layer of each kind, the mean of its
 *                 heads (attn rollout --value-norm's vnorm tensors, averaged)
 *   --gold F      links of the charted row, outlined on cross-attention */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "at_text.h"
#include "io/fileio.h"
#include "viz_layers.h"

bool viz_layers_need_loss(const viz_layers_args *a)
{
    if (a->ig > 0 || a->counterfactual || a->patch)
        return true;
    return a->importance || a->relevance;
}

static int lib_failed(at_model *m, const char *what)
{
    attn_error("viz: %s: %s", what, at_errmsg(m));
    return ATTN_FAIL;
}

static int attached(at_status s, const char *what)
{
    if (s == AT_OK)
        return ATTN_OK;
    attn_error("viz: %s: %s", what, at_errmsg(NULL));
    return ATTN_FAIL;
}

/* ---------------------------------------------------------------- importance */

/* [kind][layer][head] values as one head grid per kind. */
static int add_grids(at_viz_options *o, const char *title, const double *v, int L, int H,
                     int nkinds, const char *const *labels, int diverging)
{
    int rc = ATTN_OK;
    for (int k = 0; k < nkinds && rc == ATTN_OK; k++)
        rc = attached(at_viz_options_add_headmap(o, title, (at_attn_kind)k, L, H,
                                                 v + (size_t)k * L * H,
                                                 labels ? labels + (size_t)k * L * H : NULL,
                                                 diverging),
                      title);
    return rc;
}

static int importance(const pass *p, const int32_t *full, int32_t pad, at_viz_options *o)
{
    at_model *m = p->m;
    int L = io_model_int(m, AT_P_LAYERS), H = io_model_int(m, AT_P_HEADS), T1 = p->T + 1;
    size_t n = (size_t)3 * L * H;
    float *grad = malloc(n * sizeof *grad);
    double *imp = malloc(n * sizeof *imp), *abl = malloc(n * sizeof *abl), loss, base;
    int rc = grad && imp && abl ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("viz: out of memory");
    if (rc == ATTN_OK &&
        at_gate_gradients(m, p->src, full, p->B, p->S, T1, pad, &loss, grad) != AT_OK)
        rc = lib_failed(m, "--importance: the gradient pass");
    if (rc == ATTN_OK && at_eval_nll(m, p->src, full, p->B, p->S, T1, pad, &base, NULL) != AT_OK)
        rc = lib_failed(m, "--importance: the forward pass");
    for (size_t i = 0; rc == ATTN_OK && i < n; i++) {
        int k = (int)(i / ((size_t)L * H)), l = (int)(i / H % L), h = (int)(i % H);
        float g = 1;
        double with = 0;
        imp[i] = fabs((double)grad[i]);
        if (at_gate_get(m, (at_attn_kind)k, l, h, &g) != AT_OK ||
            at_gate_set(m, k, l, h, 0) != AT_OK ||
            at_eval_nll(m, p->src, full, p->B, p->S, T1, pad, &with, NULL) != AT_OK ||
            at_gate_set(m, k, l, h, g) != AT_OK)
            rc = lib_failed(m, "--importance: an ablation");
        abl[i] = with - base;
    }
    if (rc == ATTN_OK)
        rc = add_grids(o, "importance |dL/d\xce\xbe| at the gates", imp, L, H, 3, NULL, 0);
    if (rc == ATTN_OK)
        rc = add_grids(o, "ablation L(gate 0) \xe2\x88\x92 L", abl, L, H, 3, NULL, 1);
    free(grad);
    free(imp);
    free(abl);
    return rc;
}

/* ---------------------------------------------------------------- relevance */

/* Row t of R^qs and R^qq of the charted batch row, for every target position
 * t (one pass and backward pass each); a position whose labels are all pad
 * has no loss and gets NaN. */
static int relevance(const pass *p, const int32_t *full, int32_t pad, at_viz_options *o)
{
    int B = p->B, S = p->S, T = p->T, T1 = T + 1;
    size_t bqs = (size_t)B * T * S, bqq = (size_t)B * T * T;
    float *rqs = malloc(bqs * sizeof *rqs), *rqq = malloc(bqq * sizeof *rqq);
    float *qs = malloc((size_t)T * S * sizeof *qs), *qq = malloc((size_t)T * T * sizeof *qq);
    int rc = rqs && rqq && qs && qq ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("viz: out of memory");
    for (int t = 0; rc == ATTN_OK && t < T; t++) {
        bool any = false;
        for (int b = 0; b < B; b++)
            any |= full[(size_t)b * T1 + t + 1] != pad;
        if (!any) {
            for (int j = 0; j < S; j++)
                qs[(size_t)t * S + j] = NAN;
            for (int j = 0; j < T; j++)
                qq[(size_t)t * T + j] = NAN;
            continue;
        }
        if (at_relevance_chefer(p->m, p->src, full, B, S, T1, pad, t, NULL, rqq, rqs) != AT_OK) {
            rc = lib_failed(p->m, "--relevance");
            break;
        }
        memcpy(qs + (size_t)t * S, rqs + ((size_t)p->row * T + t) * S, (size_t)S * sizeof *qs);
        memcpy(qq + (size_t)t * T, rqq + ((size_t)p->row * T + t) * T, (size_t)T * sizeof *qq);
    }
    if (rc == ATTN_OK)
        rc = attached(at_viz_options_add_map(o, "relevance R^qs (Chefer et al.) \xc2\xb7 target "
                                                "\xe2\x86\x92 source", AT_VIZ_TGT, AT_VIZ_SRC,
                                             T, S, qs, 0), "--relevance");
    if (rc == ATTN_OK)
        rc = attached(at_viz_options_add_map(o, "relevance R^qq (Chefer et al.) \xc2\xb7 target "
                                                "\xe2\x86\x92 target", AT_VIZ_TGT, AT_VIZ_TGT,
                                             T, T, qq, 0), "--relevance");
    free(rqs);
    free(rqq);
    free(qs);
    free(qq);
    return rc;
}

/* ---------------------------------------------------------------- integrated gradients */

/* Each head's integrated gradients (Hao et al. 2021; zero baseline, steps
 * steps, the mean NLL) summed over its queries and keys of the charted row:
 * the heads of a layer add up to F(A) − F(0), up to the completeness error. */
static int integrated(const pass *p, const int32_t *full, int32_t pad, int steps,
                      at_viz_options *o)
{
    at_model *m = p->m;
    int L = io_model_int(m, AT_P_LAYERS), H = io_model_int(m, AT_P_HEADS), S = p->S, T = p->T;
    int nq[3] = {S, T, T}, nk[3] = {S, T, S};
    double *v = malloc((size_t)3 * L * H * sizeof *v);
    float *x = malloc((size_t)p->B * H * (S > T ? S : T) * (S > T ? S : T) * sizeof *x);
    int rc = v && x ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("viz: out of memory");
    for (int k = 0; rc == ATTN_OK && k < 3; k++)
        for (int l = 0; rc == ATTN_OK && l < L; l++) {
            double err;
            if (at_integrated_gradients(m, p->src, full, p->B, S, T + 1, pad, -1,
                                        (at_attn_kind)k, l, steps, x, &err) != AT_OK) {
                rc = lib_failed(m, "--ig");
                break;
            }
            size_t plane = (size_t)nq[k] * nk[k];
            for (int h = 0; h < H; h++) {
                const float *a = x + ((size_t)p->row * H + h) * plane;
                double sum = 0;
                for (size_t i = 0; i < plane; i++)
                    sum += a[i];
                v[((size_t)k * L + l) * H + h] = sum;
            }
        }
    char title[96];
    snprintf(title, sizeof title, "integrated gradients (%d steps): \xce\xa3 per head", steps);
    if (rc == ATTN_OK)
        rc = add_grids(o, title, v, L, H, 3, NULL, 1);
    free(v);
    free(x);
    return rc;
}

/* ---------------------------------------------------------------- counterfactual attention */

/* Each head's attention alone permuted over its rows' valid keys (seed 0) or
 * made uniform over them (Jain & Wallace 2019): the total variation of the
 * next-token distribution, as attn counterfactual prints it. */
static int counterfactual(const pass *p, int32_t pad, at_viz_options *o)
{
    at_model *m = p->m;
    int L = io_model_int(m, AT_P_LAYERS), H = io_model_int(m, AT_P_HEADS);
    size_t n = (size_t)3 * L * H;
    float *tvp = malloc(n * sizeof *tvp), *tvu = malloc(n * sizeof *tvu);
    double *vp = malloc(n * sizeof *vp), *vu = malloc(n * sizeof *vu);
    int rc = tvp && tvu && vp && vu ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("viz: out of memory");
    if (rc == ATTN_OK && at_counterfactual_attention(m, p->src, p->tgt, p->B, p->S, p->T, pad,
                                                     0, tvp, tvu) != AT_OK)
        rc = lib_failed(m, "--counterfactual");
    for (size_t i = 0; rc == ATTN_OK && i < n; i++)
        vp[i] = tvp[i], vu[i] = tvu[i];
    if (rc == ATTN_OK)
        rc = add_grids(o, "counterfactual: permuted attention, TV of the next token", vp, L, H,
                       3, NULL, 0);
    if (rc == ATTN_OK)
        rc = add_grids(o, "counterfactual: uniform attention, TV of the next token", vu, L, H,
                       3, NULL, 0);
    free(tvp);
    free(tvu);
    free(vp);
    free(vu);
    return rc;
}

/* ---------------------------------------------------------------- activation patching */

/* The change of the clean input's mean NLL when each head's output is taken
 * from the run on the corrupted batch in path (attn patch --corrupt path),
 * which must have the clean input's shapes. */
static int patch(const pass *p, const int32_t *full, int32_t pad, const char *path,
                 at_viz_options *o)
{
    at_model *m = p->m;
    int L = io_model_int(m, AT_P_LAYERS), H = io_model_int(m, AT_P_HEADS);
    int32_t *xs = NULL, *xt = NULL;
    id_batch x = {.pad = pad};
    int rc = io_read_batch("viz: --patch", path, &xs, &xt, &x);
    if (rc == ATTN_OK && (x.B != p->B || x.S != p->S || x.T1 != p->T + 1)) {
        attn_error("viz: --patch %s holds src (%d, %d) and tgt (%d, %d); the input has (%d, %d) "
                   "and (%d, %d)", path, x.B, x.S, x.B, x.T1, p->B, p->S, p->B, p->T + 1);
        rc = ATTN_USAGE;
    }
    size_t n = (size_t)3 * L * H;
    float *out = rc == ATTN_OK ? malloc(n * sizeof *out) : NULL;
    double *v = rc == ATTN_OK ? malloc(n * sizeof *v) : NULL;
    if (rc == ATTN_OK && (!out || !v)) {
        attn_error("viz: out of memory");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && at_activation_patch(m, p->src, full, xs, xt, p->B, p->S, p->T + 1, pad,
                                             -1, out, NULL, NULL) != AT_OK)
        rc = lib_failed(m, "--patch");
    for (size_t i = 0; rc == ATTN_OK && i < n; i++)
        v[i] = out[i];
    if (rc == ATTN_OK)
        rc = add_grids(o, "activation patching: NLL(patched) \xe2\x88\x92 NLL(clean)", v, L, H,
                       3, NULL, 1);
    free(out);
    free(v);
    free(xs);
    free(xt);
    return rc;
}

int viz_layers_loss(const viz_layers_args *a, const pass *p, const int32_t *full, int32_t pad,
                    at_viz_options *o)
{
    int rc = ATTN_OK;
    if (a->importance)
        rc = importance(p, full, pad, o);
    if (rc == ATTN_OK && a->ig > 0)
        rc = integrated(p, full, pad, a->ig, o);
    if (rc == ATTN_OK && a->counterfactual)
        rc = counterfactual(p, pad, o);
    if (rc == ATTN_OK && a->patch)
        rc = patch(p, full, pad, a->patch, o);
    if (rc == ATTN_OK && a->relevance)
        rc = relevance(p, full, pad, o);
    return rc;
}

/* ---------------------------------------------------------------- rollout, flow, value norms, roles */

static int rollout(const pass *p, at_viz_options *o)
{
    static const char *const titles[3] = {
        "rollout \xc2\xb7 encoder (source \xe2\x86\x92 source)",
        "rollout \xc2\xb7 decoder (target \xe2\x86\x92 target)",
        "rollout \xc2\xb7 target \xe2\x86\x92 source (Chefer et al.'s rules)"};
    int B = p->B, S = p->S, T = p->T, rc = ATTN_OK;
    int nq[3] = {S, T, T}, nk[3] = {S, T, S};
    at_viz_side rs[3] = {AT_VIZ_SRC, AT_VIZ_TGT, AT_VIZ_TGT};
    at_viz_side cs[3] = {AT_VIZ_SRC, AT_VIZ_TGT, AT_VIZ_SRC};
    for (int k = 0; k < (p->tgt ? 3 : 1) && rc == ATTN_OK; k++) {
        size_t per = (size_t)nq[k] * nk[k];
        float *r = malloc((size_t)B * per * sizeof *r);
        if (!r) {
            attn_error("viz: out of memory");
            return ATTN_FAIL;
        }
        if (at_rollout(p->m, (at_attn_kind)k, r) != AT_OK)
            rc = lib_failed(p->m, "--rollout");
        if (rc == ATTN_OK)
            rc = attached(at_viz_options_add_map(o, titles[k], rs[k], cs[k], nq[k], nk[k],
                                                 r + (size_t)p->row * per, 0), "--rollout");
        free(r);
    }
    return rc;
}

/* The maximum flow over the layers' graph (Abnar & Zuidema 2020) of the
 * self-attentions: at most AT_FLOW_MAX_LEN tokens (the library says so). */
static int flow(const pass *p, at_viz_options *o)
{
    static const char *const titles[2] = {
        "flow \xc2\xb7 encoder (source \xe2\x86\x92 source)",
        "flow \xc2\xb7 decoder (target \xe2\x86\x92 target)"};
    int n[2] = {p->S, p->T}, rc = ATTN_OK;
    at_viz_side side[2] = {AT_VIZ_SRC, AT_VIZ_TGT};
    for (int k = 0; k < (p->tgt ? 2 : 1) && rc == ATTN_OK; k++) {
        size_t per = (size_t)n[k] * n[k];
        float *f = malloc((size_t)p->B * per * sizeof *f);
        if (!f) {
            attn_error("viz: out of memory");
            return ATTN_FAIL;
        }
        if (at_attention_flow(p->m, (at_attn_kind)k, f) != AT_OK)
            rc = lib_failed(p->m, "--flow");
        if (rc == ATTN_OK)
            rc = attached(at_viz_options_add_map(o, titles[k], side[k], side[k], n[k], n[k],
                                                 f + (size_t)p->row * per, 0), "--flow");
        free(f);
    }
    return rc;
}

/* Per layer of each kind, the mean over heads of ‖α·f(x)‖ (Kobayashi et
 * al. 2020) for the charted row: the value-weighted counterpart of the
 * attention the main view shows. */
static int value_norm(const pass *p, at_viz_options *o)
{
    static const char *const kinds[3] = {"encoder", "decoder", "cross"};
    int L = io_model_int(p->m, AT_P_LAYERS), H = io_model_int(p->m, AT_P_HEADS), rc = ATTN_OK;
    int nq[3] = {p->S, p->T, p->T}, nk[3] = {p->S, p->T, p->S};
    at_viz_side rs[3] = {AT_VIZ_SRC, AT_VIZ_TGT, AT_VIZ_TGT};
    at_viz_side cs[3] = {AT_VIZ_SRC, AT_VIZ_TGT, AT_VIZ_SRC};
    for (int k = 0; k < (p->tgt ? 3 : 1) && rc == ATTN_OK; k++) {
        size_t plane = (size_t)nq[k] * nk[k];
        float *v = malloc((size_t)p->B * H * plane * sizeof *v);
        float *mean = malloc(plane * sizeof *mean);
        if (!v || !mean) {
            free(v), free(mean);
            attn_error("viz: out of memory");
            return ATTN_FAIL;
        }
        for (int l = 0; l < L && rc == ATTN_OK; l++) {
            if (at_value_norm(p->m, (at_attn_kind)k, l, v) != AT_OK) {
                rc = lib_failed(p->m, "--value-norm");
                break;
            }
            const float *row = v + (size_t)p->row * H * plane;
            for (size_t i = 0; i < plane; i++) {
                double s = 0;
                for (int h = 0; h < H; h++)
                    s += row[(size_t)h * plane + i];
                mean[i] = (float)(s / H);
            }
            char title[96];
            snprintf(title, sizeof title, "value norm \xc2\xb7 %s layer %d (mean of heads)",
                     kinds[k], l + 1);
            rc = attached(at_viz_options_add_map(o, title, rs[k], cs[k], nq[k], nk[k], mean, 0),
                          "--value-norm");
        }
        free(v);
        free(mean);
    }
    return rc;
}

static int roles(const pass *p, at_viz_options *o)
{
    at_model *m = p->m;
    int L = io_model_int(m, AT_P_LAYERS), H = io_model_int(m, AT_P_HEADS);
    int nkinds = p->tgt ? 3 : 1;
    size_t n = (size_t)nkinds * L * H;
    double *best = malloc(n * sizeof *best), *hs = malloc((size_t)H * sizeof *hs);
    const char **names = calloc(n, sizeof *names);
    int rc = best && hs && names ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("viz: out of memory");
    for (size_t i = 0; rc == ATTN_OK && i < n; i++)
        best[i] = NAN;
    for (int k = 0; rc == ATTN_OK && k < nkinds; k++)
        for (int l = 0; rc == ATTN_OK && l < L; l++)
            /* the library's roles in their order, the first of equal scores
             * the best, as attn heads labels them */
            for (int c = 0; rc == ATTN_OK && c < AT_HEAD_ROLES; c++) {
                const char *name;
                int pattern, pk;
                at_head_role(c, &name, &pattern, &pk);
                if (pattern == AT_PAT_MONOTONIC && k != AT_ATTN_CROSS)
                    continue;
                if (at_head_pattern_scores(m, (at_attn_kind)k, l, pattern, pk, hs) != AT_OK) {
                    rc = lib_failed(m, "--roles");
                    break;
                }
                for (int h = 0; h < H; h++) {
                    size_t x = ((size_t)k * L + l) * H + h;
                    if (!isnan(hs[h]) && (isnan(best[x]) || hs[h] > best[x])) {
                        best[x] = hs[h];
                        names[x] = name;
                    }
                }
            }
    if (rc == ATTN_OK)
        rc = add_grids(o, "role: the best pattern's score (attn heads)", best, L, H, nkinds,
                       names, 0);
    free(best);
    free(hs);
    free(names);
    return rc;
}

/* ---------------------------------------------------------------- gold links */

/* The word of each piece of ids (<s> pieces </s>), as attn align-eval reads
 * them (docs/alignment.md): -1 for <s> and </s>; a piece starting with
 * U+2581 starts a word. Returns the number of words. */
static int piece_words(at_tokenizer *t, const int32_t *ids, int n, int *word)
{
    int w = -1;
    for (int k = 0; k < n; k++) {
        const char *pc = "";
        word[k] = -1;
        if (ids[k] == AT_TOK_BOS_ID || ids[k] == AT_TOK_EOS_ID)
            continue;
        if (at_tokenizer_piece(t, ids[k], &pc) != AT_OK)
            pc = "";
        if (w < 0 || strncmp(pc, "\xe2\x96\x81", 3) == 0)
            w++;
        word[k] = w;
    }
    return w + 1;
}

/* Line `line` (0-based) of text, NUL-terminated in place; NULL when the text
 * has fewer lines (*nlines receives their count). */
static char *nth_line(char *text, int line, int *nlines)
{
    int i = 0;
    char *p = text;
    while (*p || p == text) {
        char *nl = strchr(p, '\n');
        if (i == line) {
            if (nl)
                *nl = '\0';
            size_t k = strlen(p);
            if (k && p[k - 1] == '\r')
                p[k - 1] = '\0';
            return p;
        }
        i++;
        if (!nl)
            break;
        p = nl + 1;
    }
    *nlines = i;
    return NULL;
}

/* Appends the pair (t, s) to a growable list of int32 pairs. */
static bool push_pair(int32_t **v, int *n, int *cap, int t, int s)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        int32_t *g = realloc(*v, (size_t)c * 2 * sizeof *g);
        if (!g)
            return false;
        *v = g;
        *cap = c;
    }
    (*v)[2 * *n] = t;
    (*v)[2 * *n + 1] = s;
    (*n)++;
    return true;
}

typedef struct gold_ctx {
    const pass *p;
    int *sword, *tword;   /* with --src-text: the word of every piece, else NULL */
    int sw, tw;           /* words (or positions) of each side */
    int32_t *pairs;
    int n, cap;
} gold_ctx;

/* One link "i-j" (source i, target j): the cells it covers. */
static int gold_link(gold_ctx *g, const char *path, int line, long i, long j)
{
    if (i >= g->sw || j >= g->tw) {
        attn_error("viz: --gold %s line %d: link %ld-%ld is beyond the %s (%d source, %d "
                   "target)", path, line, i, j, g->sword ? "sentence's words"
                                                         : "pass's positions", g->sw, g->tw);
        return ATTN_FAIL;
    }
    bool ok = true;
    if (!g->sword)   /* positions: the source position, the row of cross-attention */
        ok = push_pair(&g->pairs, &g->n, &g->cap, (int)j, (int)i);
    for (int s = 0; g->sword && ok && s < g->p->S; s++)
        for (int k = 1; ok && k <= g->p->T && g->sword[s] == i; k++)
            if (g->tword[k] == j)   /* piece k is emitted by the query at k - 1 */
                ok = push_pair(&g->pairs, &g->n, &g->cap, k - 1, s);
    if (!ok) {
        attn_error("viz: out of memory");
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

static int gold_parse(gold_ctx *g, const char *path, int line, const char *text)
{
    const char *q = text;
    for (;;) {
        while (*q == ' ' || *q == '\t')
            q++;
        if (!*q)
            return ATTN_OK;
        char *e;
        errno = 0;
        long i = *q >= '0' && *q <= '9' ? strtol(q, &e, 10) : -1;
        long j = i >= 0 && *e == '-' && e[1] >= '0' && e[1] <= '9' ? strtol(e + 1, &e, 10) : -1;
        if (i < 0 || j < 0 || errno || i > 999999 || j > 999999 ||
            (*e && *e != ' ' && *e != '\t')) {
            int len = 0;
            while (q[len] && q[len] != ' ' && q[len] != '\t' && len < 40)
                len++;
            attn_error("viz: --gold %s line %d: '%.*s' is not a link SOURCE-TARGET (whole "
                       "numbers from 0, at most 6 digits)", path, line, len, q);
            return ATTN_FAIL;
        }
        if (gold_link(g, path, line, i, j) != ATTN_OK)
            return ATTN_FAIL;
        q = e;
    }
}

static int gold(const char *path, const pass *p, int row_arg, at_viz_options *o)
{
    unsigned char *data = NULL;
    size_t len = 0;
    char err[1024];
    if (file_read_all(path, (size_t)1 << 30, &data, &len, err, sizeof err) != AT_OK) {
        attn_error("viz: --gold: %s", err);
        return ATTN_FAIL;
    }
    char *text = (char *)data;
    text[len] = '\0';
    int nlines = 0, line = p->text ? 0 : p->row;
    char *l = nth_line(text, line, &nlines);
    gold_ctx g = {.p = p, .sw = p->S, .tw = p->T};
    int rc = ATTN_OK;
    if (!l) {
        attn_error("viz: --gold %s has %d line%s; the charted row %d needs line %d", path,
                   nlines, nlines == 1 ? "" : "s", row_arg, line + 1);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && p->text) {   /* words, mapped to the pieces of the pass */
        g.sword = malloc((size_t)p->S * sizeof *g.sword);
        g.tword = malloc(((size_t)p->T + 1) * sizeof *g.tword);
        if (!g.sword || !g.tword) {
            attn_error("viz: out of memory");
            rc = ATTN_FAIL;
        } else {
            g.sw = piece_words(p->text->src, p->src, p->S, g.sword);
            g.tw = piece_words(p->text->tgt, p->tgt, p->T + 1, g.tword);
        }
    }
    if (rc == ATTN_OK)
        rc = gold_parse(&g, path, line + 1, l);
    if (rc == ATTN_OK)
        rc = attached(at_viz_options_set_links(o, g.pairs, g.n), "--gold");
    free(g.pairs);
    free(g.sword);
    free(g.tword);
    free(data);
    return rc;
}

int viz_layers_view(const viz_layers_args *a, const pass *p, int row_arg, at_viz_options *o)
{
    int rc = ATTN_OK;
    if (a->rollout)
        rc = rollout(p, o);
    if (rc == ATTN_OK && a->flow)
        rc = flow(p, o);
    if (rc == ATTN_OK && a->value_norm)
        rc = value_norm(p, o);
    if (rc == ATTN_OK && a->roles)
        rc = roles(p, o);
    if (rc == ATTN_OK && a->gold)
        rc = gold(a->gold, p, row_arg, o);
    return rc;
}
