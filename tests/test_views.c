/* Views lend library memory: no copy, the right shape and strides, the same
 * memory on a repeated call, and a lifetime that ends at the next forward. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

static const int32_t src[2 * 5] = {1, 3, 4, 5, 6, 1, 3, 4, 0, 0};
static const int32_t tgt[2 * 3] = {1, 2, 3, 1, 5, 0};

static void expect_contiguous(const at_view *v, int ndim, const int64_t *shape)
{
    ck_assert_int_eq(v->ndim, ndim);
    int64_t stride = 1;
    for (int i = 3; i >= 0; i--) {
        ck_assert_int_eq(v->shape[i], i < ndim ? shape[i] : 1);
        ck_assert_int_eq(v->stride[i], stride);
        stride *= v->shape[i];
    }
    ck_assert_int_eq(v->reserved, 0);
}

START_TEST(attention_shapes_and_strides)
{
    at_model *m = small_model(1);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    at_view v;
    const int64_t enc[4] = {2, 2, 5, 5}, dec[4] = {2, 2, 3, 3}, cross[4] = {2, 2, 3, 5};
    for (int l = 0; l < 2; l++) {
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, l, &v), AT_OK);
        expect_contiguous(&v, 4, enc);
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_DEC_SELF, l, &v), AT_OK);
        expect_contiguous(&v, 4, dec);
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, l, &v), AT_OK);
        expect_contiguous(&v, 4, cross);
    }
    const int64_t mem[3] = {2, 5, 16}, logp[3] = {2, 3, 9};
    ck_assert_int_eq(at_get_output(m, AT_OUT_MEMORY, 0, &v), AT_OK);
    expect_contiguous(&v, 3, mem);
    ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &v), AT_OK);
    expect_contiguous(&v, 3, logp);
    at_model_free(m);
}
END_TEST

/* Two views of the same tensor are one memory; a second forward of the same
 * size reuses it; the generation tells a stale view from a current one. */
START_TEST(same_memory_and_generation)
{
    at_model *m = small_model(1);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    at_view a, b;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &a), AT_OK);
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &b), AT_OK);
    ck_assert_ptr_eq(a.data, b.data);
    ck_assert_uint_eq(a.generation, at_model_generation(m));

    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    ck_assert_uint_ne(a.generation, at_model_generation(m));   /* a is stale now */
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &b), AT_OK);
    ck_assert_ptr_eq(a.data, b.data);
    ck_assert_uint_eq(b.generation, at_model_generation(m));
    at_model_free(m);
}
END_TEST

/* The view is the memory the forward pass wrote: a different input changes
 * what the old pointer shows (no hidden copy). */
START_TEST(views_are_not_copies)
{
    at_model *m = small_model(1);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, 0, &v), AT_OK);
    float before = v.data[1];
    int32_t other[2 * 5] = {1, 6, 6, 6, 6, 1, 2, 2, 2, 2};
    ck_assert_int_eq(at_forward(m, other, tgt, 2, 5, 3, 0), AT_OK);
    ck_assert_float_ne(v.data[1], before);
    at_model_free(m);
}
END_TEST

/* After the arena has grown to a size, forward passes of that size (or
 * smaller) allocate nothing. Measured with glibc's allocator statistics, so
 * skipped under AddressSanitizer, which replaces the allocator. */
START_TEST(repeated_forward_allocates_nothing)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("allocation count skipped under AddressSanitizer\n");
#else
    at_model *m = small_model(1);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    struct mallinfo2 before = mallinfo2();
    at_status s1 = at_forward(m, src, tgt, 2, 5, 3, 0);
    at_status s2 = at_forward(m, src, tgt, 1, 4, 2, 0);   /* smaller fits too */
    struct mallinfo2 after = mallinfo2();
    ck_assert_int_eq(s1, AT_OK);
    ck_assert_int_eq(s2, AT_OK);
    ck_assert_uint_eq(after.uordblks, before.uordblks);
    ck_assert_uint_eq(after.hblkhd, before.hblkhd);
    at_model_free(m);
#endif
}
END_TEST

/* One pass, one generation (at.h): at_forward validates its arguments once
 * and ends the views once, whether it runs, runs the encoder only or refuses
 * its input; a greedy decode is one pass too. */
START_TEST(one_generation_per_pass)
{
    at_model *m = small_model(1);
    uint64_t g = at_model_generation(m);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    ck_assert_uint_eq(at_model_generation(m), g + 1);
    ck_assert_int_eq(at_forward(m, src, NULL, 2, 5, 0, 0), AT_OK);
    ck_assert_uint_eq(at_model_generation(m), g + 2);
    int32_t bad[5] = {1, 2, 99, 3, 4};
    ck_assert_int_eq(at_forward(m, bad, tgt, 1, 5, 3, 0), AT_E_RANGE);
    ck_assert_str_eq(at_errmsg(m), "at_forward: src[0][2] = 99 is outside the vocabulary [0, 7)");
    ck_assert_uint_eq(at_model_generation(m), g + 3);
    int32_t out[2 * 4];
    int out_len[2];
    ck_assert_int_eq(at_greedy_decode(m, src, 2, 5, 0, 4, 1, -1, out, out_len), AT_OK);
    ck_assert_uint_eq(at_model_generation(m), g + 4);
    at_model_free(m);
}
END_TEST

/* A failed forward ends the old results: no stale views are handed out. */
START_TEST(failed_forward_clears_results)
{
    at_model *m = small_model(1);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    int32_t bad[5] = {1, 2, 99, 3, 4};
    ck_assert_int_eq(at_forward(m, bad, tgt, 1, 5, 3, 0), AT_E_RANGE);
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, 0, &v), AT_E_STATE);
    ck_assert_int_eq(at_get_output(m, AT_OUT_MEMORY, 0, &v), AT_E_STATE);
    at_model_free(m);
}
END_TEST

/* Encoder only: tgt NULL, tgt_len 0. Encoder views work, decoder ones say
 * AT_E_STATE, and the memory equals the one of a full pass. */
START_TEST(encoder_only)
{
    at_model *m = small_model(1);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_output(m, AT_OUT_MEMORY, 0, &v), AT_OK);
    float full[2 * 5 * 16];
    memcpy(full, v.data, sizeof full);
    ck_assert_int_eq(at_forward(m, src, NULL, 2, 5, 0, 0), AT_OK);
    ck_assert_int_eq(at_get_output(m, AT_OUT_MEMORY, 0, &v), AT_OK);
    ck_assert_mem_eq(full, v.data, sizeof full);
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, 1, &v), AT_OK);
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_DEC_SELF, 0, &v), AT_E_STATE);
    ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &v), AT_E_STATE);
    ck_assert_str_ne(at_errmsg(m), "");
    at_model_free(m);
}
END_TEST

/* Rows of a batch are independent: row 1 alone gives row 1 of the batch. */
START_TEST(batch_rows_are_independent)
{
    at_model *m = small_model(1);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &v), AT_OK);
    float batch_row1[2 * 3 * 5];
    memcpy(batch_row1, v.data + v.stride[0], sizeof batch_row1);
    ck_assert_int_eq(at_forward(m, src + 5, tgt + 3, 1, 5, 3, 0), AT_OK);
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &v), AT_OK);
    for (int i = 0; i < 2 * 3 * 5; i++)
        ck_assert_float_eq_tol(v.data[i], batch_row1[i], 1e-6f);
    at_model_free(m);
}
END_TEST

/* Few rows go through packed weights (when the CPU has AVX-512 and d_model
 * and d_ff are multiples of 32), many through OpenBLAS: the same row gives
 * the same numbers either way, to float rounding; and a weight written by the
 * host is seen by the packed path at once. */
START_TEST(small_and_large_batches_agree)
{
    at_config *cfg;
    ck_assert_int_eq(at_config_create(&cfg), AT_OK);
    const double v[][2] = {{AT_P_LAYERS, 2}, {AT_P_D_MODEL, 64}, {AT_P_HEADS, 4},
                           {AT_P_D_FF, 96}, {AT_P_SRC_VOCAB, 50}, {AT_P_TGT_VOCAB, 45},
                           {AT_P_MAX_LEN, 64}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(at_config_set(cfg, (at_param)v[i][0], v[i][1]), AT_OK);
    at_model *m;
    ck_assert_int_eq(at_model_create(cfg, &m), AT_OK);
    at_config_free(cfg);
    enum { S = 10, T = 9, BIG = 9 };                    /* 9 rows of 10: 90 > 64 */
    int32_t src[BIG * S], tgt[BIG * T];
    for (int i = 0; i < BIG * S; i++)
        src[i] = 1 + (i * 7) % 49;
    for (int i = 0; i < BIG * T; i++)
        tgt[i] = 1 + (i * 5) % 44;
    float one[T * 45];
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(at_forward(m, src, tgt, 1, S, T, 0), AT_OK);
        at_view a;
        ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &a), AT_OK);
        memcpy(one, a.data, sizeof one);
        ck_assert_int_eq(at_forward(m, src, tgt, BIG, S, T, 0), AT_OK);
        ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &a), AT_OK);
        for (int i = 0; i < T * 45; i++)
            ck_assert_float_eq_tol(a.data[i], one[i], 2e-5f);
        /* change a weight: both paths must see it */
        float w[45 * 64];
        at_view g;
        ck_assert_int_eq(at_model_find_tensor(m, "generator.proj.weight", &g), AT_OK);
        for (int i = 0; i < 45 * 64; i++)
            w[i] = g.data[i] * 0.5f;
        ck_assert_int_eq(at_model_tensor_write(m, 92, w, 45 * 64), AT_OK);
    }
    /* without the packed copy (AT_P_PACKED 0) the few-row pass goes to OpenBLAS */
    ck_assert_int_eq(at_forward(m, src, tgt, 1, S, T, 0), AT_OK);
    at_view a;
    ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &a), AT_OK);
    memcpy(one, a.data, sizeof one);
    ck_assert_int_eq(at_model_set(m, AT_P_PACKED, 0), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 1, S, T, 0), AT_OK);
    ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &a), AT_OK);
    for (int i = 0; i < T * 45; i++)
        ck_assert_float_eq_tol(a.data[i], one[i], 2e-5f);
    at_model_free(m);
}
END_TEST

/* Parameter views: the state_dict table in the reference's order. */
START_TEST(tensor_table)
{
    at_model *m = small_model(1);
    ck_assert_int_eq(at_model_tensor_count(m), 94);
    const char *name;
    at_view v;
    ck_assert_int_eq(at_model_tensor(m, 0, &name, &v), AT_OK);
    ck_assert_str_eq(name, "encoder.layers.0.self_attn.linears.0.weight");
    ck_assert(v.shape[0] == 16 && v.shape[1] == 16 && v.ndim == 2);
    ck_assert_int_eq(at_model_tensor(m, 93, &name, &v), AT_OK);
    ck_assert_str_eq(name, "generator.proj.bias");
    ck_assert_int_eq(at_model_tensor(m, 89, &name, &v), AT_OK);
    ck_assert_str_eq(name, "src_embed.1.pe");
    ck_assert(v.ndim == 3 && v.shape[0] == 1 && v.shape[1] == 64 && v.shape[2] == 16);
    ck_assert_int_eq(at_model_find_tensor(m, "decoder.layers.1.sublayer.2.norm.a_2", &v),
                     AT_OK);
    for (int i = 0; i < 16; i++)
        ck_assert_float_eq(v.data[i], 1.0f);
    at_model_free(m);
}
END_TEST

Suite *suite_views(void)
{
    Suite *s = suite_create("views");
    TCase *tc = tcase_create("shape");
    tcase_add_test(tc, attention_shapes_and_strides);
    tcase_add_test(tc, tensor_table);
    suite_add_tcase(s, tc);
    tc = tcase_create("lifetime");
    tcase_add_test(tc, same_memory_and_generation);
    tcase_add_test(tc, views_are_not_copies);
    tcase_add_test(tc, repeated_forward_allocates_nothing);
    tcase_add_test(tc, failed_forward_clears_results);
    tcase_add_test(tc, one_generation_per_pass);
    suite_add_tcase(s, tc);
    tc = tcase_create("passes");
    tcase_add_test(tc, encoder_only);
    tcase_add_test(tc, batch_rows_are_independent);
    tcase_add_test(tc, small_and_large_batches_agree);
    suite_add_tcase(s, tc);
    return s;
}
