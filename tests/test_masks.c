/* Masks are built as the reference's Batch builds them, and applied with its
 * −1e9 fill: masked keys get exactly zero weight. */
#include <math.h>
#include <stdio.h>

#include "suites.h"
#include "testutil.h"

/* Batch of 2 with pad 2: row 1 of src ends in two pads, row 0 of tgt has a
 * pad in the middle (the mask must follow the ids, not assume suffixes). */
static const int32_t src[2 * 5] = {1, 3, 4, 5, 6, 1, 3, 4, 2, 2};
static const int32_t tgt[2 * 4] = {1, 2, 3, 4, 1, 5, 6, 7};

START_TEST(source_mask_is_src_ne_pad)
{
    at_model *m = small_model(3);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 4, 2), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_output(m, AT_OUT_SRC_MASK, 0, &v), AT_OK);
    ck_assert_int_eq(v.ndim, 3);
    ck_assert(v.shape[0] == 2 && v.shape[1] == 1 && v.shape[2] == 5);
    for (int i = 0; i < 10; i++)
        ck_assert_float_eq(v.data[i], src[i] != 2 ? 1.0f : 0.0f);
    at_model_free(m);
}
END_TEST

START_TEST(target_mask_is_pad_and_subsequent)
{
    at_model *m = small_model(3);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 4, 2), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_output(m, AT_OUT_TGT_MASK, 0, &v), AT_OK);
    ck_assert(v.shape[0] == 2 && v.shape[1] == 4 && v.shape[2] == 4);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                float want = j <= i && tgt[b * 4 + j] != 2;
                ck_assert_float_eq(v.data[b * v.stride[0] + i * v.stride[1] + j], want);
            }
    at_model_free(m);
}
END_TEST

/* Every attention row sums to 1; masked keys hold exactly 0; rows of padded
 * queries are ordinary distributions (only keys are masked). */
static void check_rows(at_model *m, at_attn_kind kind, const float *mask, int mask_bstride,
                       int mask_qstride)
{
    for (int l = 0; l < 2; l++) {
        at_view v;
        ck_assert_int_eq(at_get_attention(m, kind, l, &v), AT_OK);
        for (int b = 0; b < v.shape[0]; b++)
            for (int h = 0; h < v.shape[1]; h++)
                for (int i = 0; i < v.shape[2]; i++) {
                    const float *row = v.data + b * v.stride[0] + h * v.stride[1] +
                                       i * v.stride[2];
                    double sum = 0;
                    for (int j = 0; j < v.shape[3]; j++) {
                        float mk = mask[b * mask_bstride + i * mask_qstride + j];
                        if (mk == 0)
                            ck_assert_msg(row[j] == 0.0f, "kind %d layer %d: masked key "
                                          "%d of query %d has weight %g", kind, l, j, i,
                                          row[j]);
                        sum += row[j];
                    }
                    ck_assert_msg(fabs(sum - 1) < 1e-5, "row sums to %g", sum);
                }
    }
}

START_TEST(masked_keys_get_zero_weight)
{
    at_model *m = small_model(3);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 4, 2), AT_OK);
    at_view sm, tm;
    ck_assert_int_eq(at_get_output(m, AT_OUT_SRC_MASK, 0, &sm), AT_OK);
    ck_assert_int_eq(at_get_output(m, AT_OUT_TGT_MASK, 0, &tm), AT_OK);
    check_rows(m, AT_ATTN_ENC_SELF, sm.data, 5, 0);
    check_rows(m, AT_ATTN_CROSS, sm.data, 5, 0);
    check_rows(m, AT_ATTN_DEC_SELF, tm.data, 16, 4);
    at_model_free(m);
}
END_TEST

/* A row with every key masked: the reference's −1e9 fill gives a uniform
 * distribution, not NaN. */
START_TEST(fully_masked_row_is_uniform)
{
    at_model *m = small_model(3);
    const int32_t pads[4] = {2, 2, 2, 2};
    ck_assert_int_eq(at_forward(m, pads, tgt, 1, 4, 4, 2), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, 1, &v), AT_OK);
    for (int i = 0; i < 2 * 4 * 4; i++)
        ck_assert_float_eq_tol(v.data[i], 0.25f, 1e-7f);
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 0, &v), AT_OK);
    for (int i = 0; i < 2 * 4 * 4; i++)
        ck_assert(isfinite(v.data[i]));
    at_model_free(m);
}
END_TEST

/* A pad id outside the vocabulary masks nothing: only the subsequent mask. */
START_TEST(pad_outside_vocabulary_masks_nothing)
{
    at_model *m = small_model(3);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 4, -1), AT_OK);
    at_view sm, tm;
    ck_assert_int_eq(at_get_output(m, AT_OUT_SRC_MASK, 0, &sm), AT_OK);
    ck_assert_int_eq(at_get_output(m, AT_OUT_TGT_MASK, 0, &tm), AT_OK);
    for (int i = 0; i < 10; i++)
        ck_assert_float_eq(sm.data[i], 1.0f);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                ck_assert_float_eq(tm.data[b * 16 + i * 4 + j], j <= i ? 1.0f : 0.0f);
    at_model_free(m);
}
END_TEST

/* The golden tiny set pads with 0 in row 1: its masks match exactly (also
 * checked in the golden suite) and the decoder's future is hidden. */
START_TEST(decoder_never_sees_the_future)
{
    at_model *m = small_model(3);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 4, 0), AT_OK);
    at_view v;
    for (int l = 0; l < 2; l++) {
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_DEC_SELF, l, &v), AT_OK);
        for (int b = 0; b < 2; b++)
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 4; i++)
                    for (int j = i + 1; j < 4; j++)
                        ck_assert_float_eq(v.data[b * v.stride[0] + h * v.stride[1] +
                                                  i * v.stride[2] + j], 0.0f);
    }
    at_model_free(m);
}
END_TEST

Suite *suite_masks(void)
{
    Suite *s = suite_create("masks");
    TCase *tc = tcase_create("build");
    tcase_add_test(tc, source_mask_is_src_ne_pad);
    tcase_add_test(tc, target_mask_is_pad_and_subsequent);
    tcase_add_test(tc, pad_outside_vocabulary_masks_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("apply");
    tcase_add_test(tc, masked_keys_get_zero_weight);
    tcase_add_test(tc, fully_masked_row_is_uniform);
    tcase_add_test(tc, decoder_never_sees_the_future);
    suite_add_tcase(s, tc);
    return s;
}
