/* Attention statistics against values computed by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

/* Zeroes the query projection (weight and bias) of every head of encoder
 * layer 0's self-attention: every score is 0, every valid row uniform. */
static void flatten_encoder_layer0(at_model *m)
{
    const char *names[2] = {"encoder.layers.0.self_attn.linears.0.weight",
                            "encoder.layers.0.self_attn.linears.0.bias"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < at_model_tensor_count(m); i++) {
            const char *name;
            at_view v;
            ck_assert_int_eq(at_model_tensor(m, i, &name, &v), AT_OK);
            if (strcmp(name, names[k]))
                continue;
            size_t n = (size_t)(v.shape[0] * v.shape[1]);
            float *zero = calloc(n, sizeof *zero);
            ck_assert_int_eq(at_model_tensor_write(m, i, zero, n), AT_OK);
            free(zero);
        }
}

/* Uniform rows: entropy ln n, normalised 1, max 1/n, top-k k/n, distance the
 * mean |i − j| over valid keys; padded rows and keys left out. */
START_TEST(uniform_rows)
{
    at_model *m = small_model(5);
    flatten_encoder_layer0(m);
    const int32_t src[2 * 5] = {1, 2, 3, 4, 5, 1, 2, 3, 0, 0};   /* row 1: 3 valid */
    ck_assert_int_eq(at_forward(m, src, NULL, 2, 5, 0, 0), AT_OK);
    double st[2 * AT_STAT_COUNT];
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 2, AT_STAT_COUNT, st), AT_OK);
    /* 5 rows with n = 5 and 3 rows with n = 3 */
    double ent = (5 * log(5.0) + 3 * log(3.0)) / 8, mx = (5 * 0.2 + 3 / 3.0) / 8;
    double top2 = (5 * 0.4 + 3 * (2 / 3.0)) / 8;
    double dist5 = 0, dist3 = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            dist5 += abs(i - j) / 5.0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            dist3 += abs(i - j) / 3.0;
    double dist = (dist5 + dist3) / 8;
    for (int h = 0; h < 2; h++) {
        const double *s = st + h * AT_STAT_COUNT;
        printf("head %d: entropy %.6f (want %.6f), max %.6f, top-2 %.6f, distance %.6f\n", h,
               s[AT_STAT_ENTROPY], ent, s[AT_STAT_MAX], s[AT_STAT_TOPK], s[AT_STAT_DISTANCE]);
        ck_assert_double_eq(s[AT_STAT_ROWS], 8);
        ck_assert_double_eq_tol(s[AT_STAT_ENTROPY], ent, 1e-6);
        ck_assert_double_eq_tol(s[AT_STAT_ENTROPY_NORM], 1.0, 1e-6);
        ck_assert_double_eq_tol(s[AT_STAT_MAX], mx, 1e-6);
        ck_assert_double_eq_tol(s[AT_STAT_DISPERSION], 1 - mx, 1e-6);
        ck_assert_double_eq_tol(s[AT_STAT_TOPK], top2, 1e-6);
        ck_assert_double_eq_tol(s[AT_STAT_DISTANCE], dist, 1e-6);
    }
    double js[4];
    ck_assert_int_eq(at_attention_js(m, AT_ATTN_ENC_SELF, 0, js), AT_OK);
    for (int i = 0; i < 4; i++)   /* identical heads, and each head with itself */
        ck_assert_double_eq_tol(js[i], 0.0, 1e-9);
    at_model_free(m);
}
END_TEST

/* One valid key per row: one-hot rows, entropy 0, max 1, distance |i − j|. */
START_TEST(one_hot_rows)
{
    at_model *m = small_model(6);
    const int32_t src[4] = {3, 0, 0, 0}, tgt[3] = {1, 2, 3};
    ck_assert_int_eq(at_forward(m, src, tgt, 1, 4, 3, 0), AT_OK);
    double st[2 * AT_STAT_COUNT];
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 1, 3, AT_STAT_COUNT, st), AT_OK);
    for (int h = 0; h < 2; h++) {
        const double *s = st + h * AT_STAT_COUNT;
        ck_assert_double_eq(s[AT_STAT_ROWS], 1);   /* the pad rows are left out */
        ck_assert_double_eq_tol(s[AT_STAT_ENTROPY], 0, 1e-9);
        ck_assert_double_eq_tol(s[AT_STAT_ENTROPY_NORM], 0, 1e-9);
        ck_assert_double_eq_tol(s[AT_STAT_MAX], 1, 1e-6);
        ck_assert_double_eq_tol(s[AT_STAT_DISPERSION], 0, 1e-6);
        ck_assert_double_eq_tol(s[AT_STAT_TOPK], 1, 1e-6);
        ck_assert_double_eq_tol(s[AT_STAT_DISTANCE], 0, 1e-9);
    }
    /* cross-attention: every target row sees the single source key 0 */
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_CROSS, 0, 1, AT_STAT_COUNT, st), AT_OK);
    ck_assert_double_eq(st[AT_STAT_ROWS], 3);
    ck_assert_double_eq_tol(st[AT_STAT_ENTROPY], 0, 1e-9);
    ck_assert_double_eq_tol(st[AT_STAT_DISTANCE], (0 + 1 + 2) / 3.0, 1e-6);
    /* decoder self-attention: the future is excluded, so row 0 is one-hot;
     * its mean over three rows is below the uniform bound ln 1 + ln 2 + ln 3 */
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_DEC_SELF, 0, 1, AT_STAT_COUNT, st), AT_OK);
    ck_assert_double_eq(st[AT_STAT_ROWS], 3);
    ck_assert(st[AT_STAT_ENTROPY] <= (log(2.0) + log(3.0)) / 3 + 1e-9);
    double js[4];
    ck_assert_int_eq(at_attention_js(m, AT_ATTN_CROSS, 0, js), AT_OK);
    ck_assert_double_eq_tol(js[1], 0, 1e-9);   /* both heads one-hot on the same key */
    at_model_free(m);
}
END_TEST

/* JS divergence: symmetric, zero diagonal, in [0, 1], positive for heads that differ. */
START_TEST(js_between_heads)
{
    at_model *m = small_model(8);
    const int32_t src[6] = {1, 2, 3, 4, 5, 6}, tgt[5] = {1, 2, 3, 4, 5};
    ck_assert_int_eq(at_forward(m, src, tgt, 1, 6, 5, 0), AT_OK);
    for (int kind = 0; kind < 3; kind++) {
        double js[4];
        ck_assert_int_eq(at_attention_js(m, (at_attn_kind)kind, 1, js), AT_OK);
        ck_assert_double_eq(js[0], 0);
        ck_assert_double_eq(js[3], 0);
        ck_assert_double_eq(js[1], js[2]);
        ck_assert(js[1] > 0 && js[1] <= 1);
    }
    at_model_free(m);
}
END_TEST

START_TEST(stats_bad_input)
{
    at_model *m = small_model(2);
    double st[2 * AT_STAT_COUNT], js[4];
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 1, AT_STAT_COUNT, st),
                     AT_E_STATE);
    ck_assert_int_eq(at_attention_js(m, AT_ATTN_ENC_SELF, 0, js), AT_E_STATE);
    const int32_t src[3] = {1, 2, 3};
    ck_assert_int_eq(at_forward(m, src, NULL, 1, 3, 0, 0), AT_OK);
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_CROSS, 0, 1, AT_STAT_COUNT, st),
                     AT_E_STATE);
    ck_assert_int_eq(at_attention_stats(NULL, AT_ATTN_ENC_SELF, 0, 1, AT_STAT_COUNT, st),
                     AT_E_ARG);
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 1, AT_STAT_COUNT, NULL),
                     AT_E_ARG);
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 0, AT_STAT_COUNT, st), AT_E_ARG);
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 1, 0, st), AT_E_ARG);
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 1, AT_STAT_COUNT + 1, st),
                     AT_E_ARG);
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 2, 1, AT_STAT_COUNT, st), AT_E_ARG);
    ck_assert_int_eq(at_attention_stats(m, (at_attn_kind)7, 0, 1, AT_STAT_COUNT, st), AT_E_ARG);
    ck_assert_int_eq(at_attention_js(NULL, AT_ATTN_ENC_SELF, 0, js), AT_E_ARG);
    ck_assert_int_eq(at_attention_js(m, AT_ATTN_ENC_SELF, 0, NULL), AT_E_ARG);
    ck_assert_int_eq(at_attention_js(m, AT_ATTN_ENC_SELF, -1, js), AT_E_ARG);
    /* fewer statistics than the library knows: the first ones, densely packed */
    double two[2 * 2];
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 1, AT_STAT_COUNT, st), AT_OK);
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 1, 2, two), AT_OK);
    ck_assert_double_eq(two[2], st[AT_STAT_COUNT]);
    ck_assert_double_eq(two[3], st[AT_STAT_COUNT + 1]);
    at_model_free(m);
}
END_TEST

Suite *suite_stats(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("values");
    tcase_add_test(tc, uniform_rows);
    tcase_add_test(tc, one_hot_rows);
    tcase_add_test(tc, js_between_heads);
    tcase_add_test(tc, stats_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
