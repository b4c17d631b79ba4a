/* A program that uses an installed libat as any other project would: built
 * by tests/consumers/cmake (find_package) and tests/consumers/make
 * (pkg-config) against a `cmake --install` prefix, then run. */
#include <math.h>
#include <stdio.h>

#include <at.h>

int main(void)
{
    /* The header and the library come from the same installation. */
    if (at_version_number() != AT_VERSION_NUMBER) {
        fprintf(stderr, "consumer: header %s, library %s\n", AT_VERSION_STRING,
                at_version_string());
        return 1;
    }
    at_config *cfg = NULL;
    at_model *m = NULL;
    if (at_config_create(&cfg) != AT_OK || at_config_set(cfg, AT_P_LAYERS, 1) != AT_OK ||
        at_config_set(cfg, AT_P_D_MODEL, 16) != AT_OK || at_config_set(cfg, AT_P_HEADS, 2) != AT_OK ||
        at_config_set(cfg, AT_P_D_FF, 32) != AT_OK || at_model_create(cfg, &m) != AT_OK) {
        fprintf(stderr, "consumer: %s\n", at_errmsg(NULL));
        at_config_free(cfg);
        return 1;
    }
    at_config_free(cfg);

    int32_t src[5] = {1, 4, 2, 7, 0}, tgt[3] = {1, 4, 2};
    at_view v;
    if (at_forward(m, src, tgt, 1, 5, 3, 0) != AT_OK ||
        at_get_attention(m, AT_ATTN_CROSS, 0, &v) != AT_OK) {
        fprintf(stderr, "consumer: %s\n", at_errmsg(m));
        at_model_free(m);
        return 1;
    }
    double sum = 0;
    for (int64_t k = 0; k < v.shape[3]; k++)
        sum += v.data[1 * v.stride[1] + 2 * v.stride[2] + k * v.stride[3]];
    int ok = v.ndim == 4 && v.shape[1] == 2 && v.shape[2] == 3 && v.shape[3] == 5 &&
             fabs(sum - 1.0) < 1e-5 && v.generation == at_model_generation(m);
    at_model_free(m);
    if (!ok) {
        fprintf(stderr, "consumer: unexpected attention (sum %g)\n", sum);
        return 1;
    }
    printf("consumer: libat %s works\n", at_version_string());
    return 0;
}
