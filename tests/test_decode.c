/* Greedy decoding with a key/value cache: the reference's ids, and the
 * attention of the decoded sequence equal to a forward pass over it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

/* The golden sets record greedy_decode on row 0 (the reference's loop with no
 * cache) and the attention its last iteration left on the modules: the same
 * as our views after decoding (T = max_len − 1 positions). */
static void greedy_matches(const char *set)
{
    golden g;
    if (!golden_open(&g, set)) {
        printf("golden set '%s' not found: skipped\n", set);
        return;
    }
    int64_t one, S;
    int32_t *src = golden_ids(&g, "greedy.src", &one, &S);
    cJSON *gr = cJSON_GetObjectItemCaseSensitive(g.kase, "greedy");
    int n = cJSON_GetObjectItemCaseSensitive(gr, "max_len")->valueint;
    int start = cJSON_GetObjectItemCaseSensitive(gr, "start_symbol")->valueint;
    int32_t *ys = calloc((size_t)n, sizeof *ys);
    int len = 0;
    /* greedy.src_mask is all ones: no source padding, so pad −1 */
    ck_assert_msg(at_greedy_decode(g.m, src, 1, (int)S, -1, n, start, -1, ys, &len) == AT_OK,
                  "%s", at_errmsg(g.m));
    ck_assert_int_eq(len, n);
    at_view lp;
    ck_assert_int_eq(at_get_output(g.m, AT_OUT_LOGPROBS, 0, &lp), AT_OK);
    at_view flat = lp;   /* (1, T, V) as (T, V) */
    flat.ndim = 2;
    flat.shape[0] = lp.shape[1], flat.shape[1] = lp.shape[2], flat.shape[2] = 1;
    flat.stride[0] = lp.stride[1], flat.stride[1] = lp.stride[2];
    ck_assert_int_eq(golden_check_greedy(&g, ys, n, &flat), 0);
    printf("golden %s: cached greedy decoding gives the reference's %d ids and attention\n",
           set, n);
    free(src);
    free(ys);
    golden_close(&g);
}

START_TEST(tiny_greedy) { greedy_matches("tiny"); }
END_TEST

START_TEST(base_greedy) { greedy_matches("base"); }
END_TEST

/* Copies every view of kind over layers into one buffer (shape given). */
static float *snapshot(at_model *m, at_attn_kind kind, int layer, at_view *shape)
{
    ck_assert_int_eq(at_get_attention(m, kind, layer, shape), AT_OK);
    size_t n = (size_t)(shape->shape[0] * shape->shape[1] * shape->shape[2] * shape->shape[3]);
    float *buf = malloc(n * sizeof *buf), *o = buf;
    for (int64_t a = 0; a < shape->shape[0]; a++)
        for (int64_t b = 0; b < shape->shape[1]; b++)
            for (int64_t c = 0; c < shape->shape[2]; c++)
                for (int64_t d = 0; d < shape->shape[3]; d++)
                    *o++ = shape->data[a * shape->stride[0] + b * shape->stride[1] +
                                       c * shape->stride[2] + d * shape->stride[3]];
    return buf;
}

static double max_diff_with_view(at_model *m, at_attn_kind kind, int layer, const float *want,
                                 const at_view *want_shape)
{
    at_view v;
    ck_assert_int_eq(at_get_attention(m, kind, layer, &v), AT_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(v.shape[i], want_shape->shape[i]);
    double worst = 0;
    size_t n = 0;
    for (int64_t a = 0; a < v.shape[0]; a++)
        for (int64_t b = 0; b < v.shape[1]; b++)
            for (int64_t c = 0; c < v.shape[2]; c++)
                for (int64_t d = 0; d < v.shape[3]; d++) {
                    double e = fabs(v.data[a * v.stride[0] + b * v.stride[1] +
                                           c * v.stride[2] + d * v.stride[3]] - want[n++]);
                    worst = e > worst ? e : worst;
                }
    return worst;
}

/* Decodes, keeps every attention tensor, runs a forward pass over the decoded
 * sequence (minus its last id) and compares. */
static double decode_vs_forward(at_model *m, const int32_t *src, int B, int S, int32_t pad,
                                int max_len, int32_t end, int *len_out, int32_t *out)
{
    int len;
    ck_assert_msg(at_greedy_decode(m, src, B, S, pad, max_len, 1, end, out, &len) == AT_OK,
                  "%s", at_errmsg(m));
    *len_out = len;
    int T = len - 1;
    at_view shapes[2][2];
    float *kept[2][2];
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 2; k++)
            kept[l][k] = snapshot(m, k ? AT_ATTN_CROSS : AT_ATTN_DEC_SELF, l, &shapes[l][k]);
    int32_t *tgt = malloc((size_t)B * T * sizeof *tgt);
    for (int b = 0; b < B; b++)
        memcpy(tgt + b * T, out + b * max_len, (size_t)T * sizeof *tgt);
    ck_assert_int_eq(at_forward(m, src, tgt, B, S, T, pad), AT_OK);
    double worst = 0;
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 2; k++) {
            double e = max_diff_with_view(m, k ? AT_ATTN_CROSS : AT_ATTN_DEC_SELF, l,
                                          kept[l][k], &shapes[l][k]);
            worst = e > worst ? e : worst;
            free(kept[l][k]);
        }
    free(tgt);
    return worst;
}

/* Batch 3, rows ending at different steps (end id 4); no source padding, so
 * pad −1 and ended rows are filled with the end id. */
START_TEST(cached_equals_forward_with_early_end)
{
    at_model *m = small_model(22);
    const int32_t src[3 * 6] = {1, 2, 3, 4, 5, 6, 1, 6, 5, 4, 3, 2, 1, 3, 3, 5, 5, 2};
    int32_t out[3 * 12];
    int len = 0;
    double e = 1;
    int32_t end = -1;
    /* pick as end an id whose first appearance differs between rows, so rows
     * stop at different times and at least one goes on for 3 steps */
    ck_assert_int_eq(at_greedy_decode(m, src, 3, 6, -1, 12, 1, -1, out, &len), AT_OK);
    for (int id = 0; id < 9 && end < 0; id++) {
        int first[3], lo = 12, hi = 0;
        for (int b = 0; b < 3; b++) {
            first[b] = 12;
            for (int i = 11; i >= 1; i--)
                if (out[b * 12 + i] == id)
                    first[b] = i;
            lo = first[b] < lo ? first[b] : lo;
            hi = first[b] > hi ? first[b] : hi;
        }
        if (lo < hi && hi >= 3 && lo < 12)
            end = id;
    }
    ck_assert_msg(end >= 0, "no id ends the rows at different steps");
    e = decode_vs_forward(m, src, 3, 6, -1, 12, end, &len, out);
    printf("decode vs forward (batch 3, end id %d, %d columns): largest difference %.3g\n",
           (int)end, len, e);
    ck_assert_int_ge(len, 4);
    ck_assert(e <= 1e-5);
    for (int b = 0; b < 3; b++) {   /* after its end, a row holds the end id only */
        int i = 1;
        while (i < 12 && out[b * 12 + i] != end)
            i++;
        for (; i < 12; i++)
            ck_assert_int_eq(out[b * 12 + i], end);
    }
    at_model_free(m);
}
END_TEST

/* Source padding (pad 0): decode vs forward equal; padded keys get no weight.
 * The forward pass masks target pads too, so the seed is chosen to decode no 0. */
START_TEST(cached_equals_forward_with_source_padding)
{
    const int32_t src[2 * 5] = {1, 3, 4, 5, 6, 1, 3, 4, 0, 0};
    int32_t out[2 * 8];
    for (int seed = 30; seed < 60; seed++) {
        at_model *m = small_model(seed);
        int len;
        ck_assert_int_eq(at_greedy_decode(m, src, 2, 5, 0, 8, 1, -1, out, &len), AT_OK);
        bool zero = false;
        for (int i = 0; i < 2 * 8; i++)
            zero |= out[i] == 0;
        if (zero) {
            at_model_free(m);
            continue;
        }
        at_view v;
        for (int l = 0; l < 2; l++) {
            ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, l, &v), AT_OK);
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 7; i++)
                    for (int k = 3; k < 5; k++)
                        ck_assert_float_eq(v.data[v.stride[0] + h * v.stride[1] +
                                                  i * v.stride[2] + k], 0.0f);
        }
        double e = decode_vs_forward(m, src, 2, 5, 0, 8, -1, &len, out);
        printf("decode vs forward (source padding, seed %d): largest difference %.3g\n", seed,
               e);
        ck_assert(e <= 1e-5);
        at_model_free(m);
        return;
    }
    ck_abort_msg("no seed in 30..59 decodes without the pad id");
}
END_TEST

START_TEST(decode_bad_input)
{
    at_model *m = small_model(2);
    int32_t src[3] = {1, 2, 3}, out[8];
    int len;
    ck_assert_int_eq(at_greedy_decode(NULL, src, 1, 3, 0, 8, 1, -1, out, &len), AT_E_ARG);
    ck_assert_int_eq(at_greedy_decode(m, NULL, 1, 3, 0, 8, 1, -1, out, &len), AT_E_ARG);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 8, 1, -1, NULL, &len), AT_E_ARG);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 8, 1, -1, out, NULL), AT_E_ARG);
    ck_assert_int_eq(at_greedy_decode(m, src, 0, 3, 0, 8, 1, -1, out, &len), AT_E_ARG);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 0, 0, 8, 1, -1, out, &len), AT_E_ARG);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 0, 1, -1, out, &len), AT_E_ARG);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 66, 1, -1, out, &len), AT_E_RANGE);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 8, 9, -1, out, &len), AT_E_RANGE);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 8, -1, -1, out, &len), AT_E_RANGE);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 8, 1, 9, out, &len), AT_E_RANGE);
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 8, 1, -2, out, &len), AT_E_RANGE);
    src[2] = 7;
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 8, 1, -1, out, &len), AT_E_RANGE);
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 0, &v), AT_E_STATE);
    src[2] = 3;
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 3, 0, 1, 1, -1, out, &len), AT_OK);
    ck_assert_int_eq(len, 1);
    ck_assert_int_eq(out[0], 1);
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 0, &v), AT_E_STATE);
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, 0, &v), AT_OK);
    at_model_free(m);
}
END_TEST

Suite *suite_decode(void)
{
    Suite *s = suite_create("decode");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, tiny_greedy);
    tcase_add_test(tc, base_greedy);
    suite_add_tcase(s, tc);
    tc = tcase_create("cache");
    tcase_add_test(tc, cached_equals_forward_with_early_end);
    tcase_add_test(tc, cached_equals_forward_with_source_padding);
    tcase_add_test(tc, decode_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
