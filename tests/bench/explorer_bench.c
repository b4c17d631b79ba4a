/* Writes the explorer of a long pair for tests/bench/explorer_bench.sh:
 *   explorer_bench OUT.html [S [T [LAYERS [HEADS]]]]
 * A model with random (seeded) weights, d_model 64, a vocabulary of 1000
 * words, one forward pass on S source and T target tokens (default
 * 512 x 512, 6 layers x 8 heads), every token labelled "w<id>", and the
 * explorer of that pass saved to OUT.html. */
#include <stdio.h>
#include <stdlib.h>

#include "at.h"
#include "at_viz.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: explorer_bench OUT.html [S [T [LAYERS [HEADS]]]]\n");
        return 2;
    }
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
    int32_t *src = malloc(sizeof *src * (size_t)S), *tgt = malloc(sizeof *tgt * (size_t)T);
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
    if (at_forward(m, src, tgt, 1, S, T, 0) != AT_OK) {
        fprintf(stderr, "explorer_bench: %s\n", at_errmsg(m));
        return 1;
    }
    at_viz_options *o;
    at_viz_options_create(&o);
    at_viz_options_set_labels(o, AT_VIZ_SRC, (const char *const *)sl, S);
    at_viz_options_set_labels(o, AT_VIZ_TGT, (const char *const *)tl, T);
    at_viz_options_set_caption(o, "explorer benchmark: random weights");
    at_status s = at_viz_save(argv[1], m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, L - 1, 0, o);
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
