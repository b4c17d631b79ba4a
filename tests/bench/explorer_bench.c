/* Writes the explorer of a long pair for tests/bench/explorer_bench.sh:
 *   explorer_bench OUT.html [S [T [LAYERS [HEADS [analysis]]]]]
 * A model with random (seeded) weights, d_model 64, a vocabulary of 1000
 * words, one forward pass on S source and T target tokens (default
 * 512 x 512, 6 layers x 8 heads), every token labelled "w<id>", and the
 * explorer of that pass saved to OUT.html. With "analysis", the explorer
 * also carries what attn viz --importance --relevance --rollout --roles
 * --gold attaches, computed by the library on the same pair (the time of
 * each is printed on stderr): head importance and ablations, Chefer et al.'s
 * R^qs and R^qq, the three rollouts, the best pattern of every head, and one
 * gold link per target position. The relevance maps are computed for 4
 * output tokens only (the first two, the middle, the last; the other rows
 * NaN, which take as many bytes): one at_relevance_chefer call takes 15 s
 * at 512 x 512 on 6 x 8 heads here, all 512 of them two hours. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "at.h"
#include "at_analysis.h"
#include "at_viz.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void must(at_status s, at_model *m, const char *what)
{
    if (s != AT_OK) {
        fprintf(stderr, "explorer_bench: %s: %s\n", what, at_errmsg(m));
        exit(1);
    }
}

/* [kind][layer][head] values as one grid per kind */
static void grids(at_viz_options *o, const char *title, const double *v, const char **lab,
                  int L, int H, int div)
{
    for (int k = 0; k < 3; k++)
        must(at_viz_options_add_headmap(o, title, (at_attn_kind)k, L, H, v + k * L * H,
                                        lab ? lab + k * L * H : NULL, div), NULL, title);
}

/* The runs that need a loss, on src and the whole target full (T + 1). */
static void loss_layers(at_model *m, at_viz_options *o, const int32_t *src, const int32_t *full,
                        int S, int T, int L, int H)
{
    int n = 3 * L * H;
    float *g = malloc(sizeof *g * (size_t)n);
    double *imp = malloc(sizeof *imp * (size_t)n), *abl = malloc(sizeof *abl * (size_t)n), base;
    double t0 = now();
    must(at_gate_gradients(m, src, full, 1, S, T + 1, 0, &base, g), m, "at_gate_gradients");
    for (int i = 0; i < n; i++)
        imp[i] = fabs((double)g[i]);
    double t1 = now();
    must(at_eval_nll(m, src, full, 1, S, T + 1, 0, &base, NULL), m, "at_eval_nll");
    for (int i = 0; i < n; i++) {
        int k = i / (L * H), l = i / H % L, h = i % H;
        must(at_gate_set(m, k, l, h, 0), m, "at_gate_set");
        must(at_eval_nll(m, src, full, 1, S, T + 1, 0, &abl[i], NULL), m, "at_eval_nll");
        abl[i] -= base;
        must(at_gate_set(m, k, l, h, 1), m, "at_gate_set");
    }
    double t2 = now();
    grids(o, "importance |dL/dxi| at the gates", imp, NULL, L, H, 0);
    grids(o, "ablation L(gate 0) - L", abl, NULL, L, H, 1);
    float *qs = malloc(sizeof *qs * (size_t)T * S), *qq = malloc(sizeof *qq * (size_t)T * T);
    float *rqs = malloc(sizeof *rqs * (size_t)T * S), *rqq = malloc(sizeof *rqq * (size_t)T * T);
    for (size_t i = 0; i < (size_t)T * S; i++)
        qs[i] = NAN;
    for (size_t i = 0; i < (size_t)T * T; i++)
        qq[i] = NAN;
    int rows[4] = {0, T > 1 ? 1 : 0, T / 2, T - 1};
    for (int r = 0; r < 4; r++) {
        int t = rows[r];
        must(at_relevance_chefer(m, src, full, 1, S, T + 1, 0, t, NULL, rqq, rqs), m,
             "at_relevance_chefer");
        memcpy(qs + (size_t)t * S, rqs + (size_t)t * S, sizeof *qs * (size_t)S);
        memcpy(qq + (size_t)t * T, rqq + (size_t)t * T, sizeof *qq * (size_t)T);
    }
    double t3 = now();
    must(at_viz_options_add_map(o, "relevance R^qs (Chefer et al.) - target to source",
                                AT_VIZ_TGT, AT_VIZ_SRC, T, S, qs, 0), NULL, "R^qs");
    must(at_viz_options_add_map(o, "relevance R^qq (Chefer et al.) - target to target",
                                AT_VIZ_TGT, AT_VIZ_TGT, T, T, qq, 0), NULL, "R^qq");
    fprintf(stderr, "analysis: importance %.2f s, %d ablations %.2f s, relevance of 4 "
                    "tokens %.2f s\n", t1 - t0, n, t2 - t1, t3 - t2);
    free(g);
    free(imp);
    free(abl);
    free(qs);
    free(qq);
    free(rqs);
    free(rqq);
}

/* The layers read from the pass charted: rollouts, roles, gold links. */
static void view_layers(at_model *m, at_viz_options *o, int S, int T, int L, int H)
{
    double t0 = now();
    int nq[3] = {S, T, T}, nk[3] = {S, T, S};
    at_viz_side rs[3] = {AT_VIZ_SRC, AT_VIZ_TGT, AT_VIZ_TGT}, cs[3] = {AT_VIZ_SRC, AT_VIZ_TGT, AT_VIZ_SRC};
    static const char *const titles[3] = {"rollout - encoder", "rollout - decoder",
                                          "rollout - target to source"};
    for (int k = 0; k < 3; k++) {
        float *r = malloc(sizeof *r * (size_t)nq[k] * nk[k]);
        must(at_rollout(m, (at_attn_kind)k, r), m, "at_rollout");
        must(at_viz_options_add_map(o, titles[k], rs[k], cs[k], nq[k], nk[k], r, 0), NULL,
             titles[k]);
        free(r);
    }
    double t1 = now();
    int n = 3 * L * H;
    double *best = malloc(sizeof *best * (size_t)n), *hs = malloc(sizeof *hs * (size_t)H);
    const char **name = calloc((size_t)n, sizeof *name);
    for (int i = 0; i < n; i++)
        best[i] = NAN;
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < L; l++)
            for (int p = 0; p < AT_PATTERN_COUNT; p++) {
                if (p == AT_PAT_OFFSET || (p == AT_PAT_MONOTONIC && k != AT_ATTN_CROSS))
                    continue;
                must(at_head_pattern_scores(m, (at_attn_kind)k, l, p, 0, hs), m, "patterns");
                for (int h = 0; h < H; h++) {
                    int x = (k * L + l) * H + h;
                    if (!isnan(hs[h]) && (isnan(best[x]) || hs[h] > best[x]))
                        best[x] = hs[h], name[x] = at_pattern_name(p);
                }
            }
    double t2 = now();
    grids(o, "role: the best pattern's score", best, name, L, H, 0);
    int32_t *links = malloc(sizeof *links * 2 * (size_t)T);
    for (int t = 0; t < T; t++)
        links[2 * t] = t, links[2 * t + 1] = (int32_t)((long)t * S / T);
    must(at_viz_options_set_links(o, links, T), NULL, "links");
    fprintf(stderr, "analysis: 3 rollouts %.3f s, roles %.3f s\n", t1 - t0, t2 - t1);
    free(best);
    free(hs);
    free(name);
    free(links);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: explorer_bench OUT.html [S [T [LAYERS [HEADS [analysis]]]]]\n");
        return 2;
    }
    int analysis = argc > 6 && strcmp(argv[6], "analysis") == 0;
    int S = argc > 2 ? atoi(argv[2]) : 512, T = argc > 3 ? atoi(argv[3]) : 512;
    int L = argc > 4 ? atoi(argv[4]) : 6, H = argc > 5 ? atoi(argv[5]) : 8;
    at_config *cfg;
    at_model *m;
    at_config_create(&cfg);
    at_config_set(cfg, AT_P_SRC_VOCAB, 1000);
    at_config_set(cfg, AT_P_TGT_VOCAB, 1000);
    at_config_set(cfg, AT_P_LAYERS, L);
    at_config_set(cfg, AT_P_HEADS, H);
    at_config_set(cfg, AT_P_D_MODEL, 64);
    at_config_set(cfg, AT_P_D_FF, 128);
    at_config_set(cfg, AT_P_MAX_LEN, (S > T ? S : T) + 16);
    at_config_set(cfg, AT_P_SEED, 11);
    if (at_model_create(cfg, &m) != AT_OK) {
        fprintf(stderr, "explorer_bench: %s\n", at_errmsg(NULL));
        return 1;
    }
    at_config_free(cfg);
    int32_t *src = malloc(sizeof *src * (size_t)S), *tgt = malloc(sizeof *tgt * (size_t)(T + 1));
    char **sl = malloc(sizeof *sl * (size_t)S), **tl = malloc(sizeof *tl * (size_t)T);
    unsigned x = 12345;
    for (int i = 0; i < S; i++) {
        x = x * 1103515245u + 12345u;
        src[i] = 3 + (int32_t)((x >> 8) % 997);
        sl[i] = malloc(16);
        snprintf(sl[i], 16, "w%d", (int)src[i]);
    }
    for (int i = 0; i < T; i++) {
        x = x * 1103515245u + 12345u;
        tgt[i] = i ? 3 + (int32_t)((x >> 8) % 997) : 1;
        tl[i] = malloc(16);
        snprintf(tl[i], 16, "w%d", (int)tgt[i]);
    }
    x = x * 1103515245u + 12345u;
    tgt[T] = 3 + (int32_t)((x >> 8) % 997);   /* the last label, for the loss */
    at_viz_options *o;
    at_viz_options_create(&o);
    if (analysis)
        loss_layers(m, o, src, tgt, S, T, L, H);
    if (at_forward(m, src, tgt, 1, S, T, 0) != AT_OK) {
        fprintf(stderr, "explorer_bench: %s\n", at_errmsg(m));
        return 1;
    }
    if (analysis)
        view_layers(m, o, S, T, L, H);
    at_viz_options_set_labels(o, AT_VIZ_SRC, (const char *const *)sl, S);
    at_viz_options_set_labels(o, AT_VIZ_TGT, (const char *const *)tl, T);
    at_viz_options_set_caption(o, "explorer benchmark: random weights");
    double t0 = now();
    at_status s = at_viz_save(argv[1], m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, L - 1, 0, o);
    fprintf(stderr, "explorer written in %.2f s\n", now() - t0);
    if (s != AT_OK) {
        fprintf(stderr, "explorer_bench: %s\n", at_errmsg(m));
        return 1;
    }
    at_viz_options_free(o);
    for (int i = 0; i < S; i++)
        free(sl[i]);
    for (int i = 0; i < T; i++)
        free(tl[i]);
    free(sl);
    free(tl);
    free(src);
    free(tgt);
    at_model_free(m);
    return 0;
}
