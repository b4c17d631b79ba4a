/* The README's API tour: create a model, run the forward pass, read one
 * attention weight through a zero-copy view. */
#include <stdio.h>

#include <at.h>

int main(void)
{
    at_config *cfg;
    at_model *m;
    if (at_config_create(&cfg) != AT_OK || at_config_set(cfg, AT_P_LAYERS, 2) != AT_OK ||
        at_model_create(cfg, &m) != AT_OK) {
        fprintf(stderr, "quickstart: %s\n", at_errmsg(NULL));
        return 1;
    }
    at_config_free(cfg);

    int32_t src[6] = {1, 4, 2, 7, 3, 0}, tgt[4] = {1, 4, 2, 7};   /* pad id 0 */
    if (at_forward(m, src, tgt, 1, 6, 4, 0) != AT_OK) {
        fprintf(stderr, "quickstart: %s\n", at_errmsg(m));
        at_model_free(m);
        return 1;
    }
    at_view v;   /* cross-attention of layer 2: (batch, head, target, source) */
    at_get_attention(m, AT_ATTN_CROSS, 1, &v);
    for (int k = 0; k < v.shape[3]; k++)   /* head 3 (index 2), target position 4 */
        printf("source %d: %.3f\n", k, v.data[2 * v.stride[1] + 3 * v.stride[2] + k]);
    at_model_free(m);
    return 0;
}
