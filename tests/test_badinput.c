#define _GNU_SOURCE
/* Bad input to every public function: a status and a message, never a crash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

#define EXPECT(call, status)                                                          \
    do {                                                                              \
        at_status s_ = (call);                                                        \
        ck_assert_msg(s_ == (status), "%s gave %s, expected %s", #call,               \
                      at_status_string(s_), at_status_string(status));              \
    } while (0)

START_TEST(status_strings)
{
    ck_assert_str_eq(at_status_string(AT_OK), "AT_OK");
    ck_assert_str_eq(at_status_string(AT_E_STATE), "AT_E_STATE");
    ck_assert_str_eq(at_status_string((at_status)999), "unknown status");
    ck_assert_str_eq(at_version_string(), AT_VERSION_STRING);
    ck_assert_uint_eq(at_version_number(), AT_VERSION_NUMBER);
    ck_assert_ptr_nonnull(at_errmsg(NULL));
}
END_TEST

START_TEST(config_bad_input)
{
    at_config *c;
    double v;
    EXPECT(at_config_create(NULL), AT_E_ARG);
    ck_assert_str_ne(at_errmsg(NULL), "");
    EXPECT(at_config_create(&c), AT_OK);
    EXPECT(at_config_set(NULL, AT_P_HEADS, 2), AT_E_ARG);
    EXPECT(at_config_set(c, (at_param)0, 2), AT_E_ARG);
    EXPECT(at_config_set(c, (at_param)999, 2), AT_E_ARG);
    EXPECT(at_config_set(c, AT_P_HEADS, 0), AT_E_ARG);
    EXPECT(at_config_set(c, AT_P_HEADS, -3), AT_E_ARG);
    EXPECT(at_config_set(c, AT_P_HEADS, 2.5), AT_E_ARG);
    EXPECT(at_config_set(c, AT_P_D_MODEL, 1e12), AT_E_ARG);
    EXPECT(at_config_set(c, AT_P_DROPOUT, 1.0), AT_E_ARG);
    EXPECT(at_config_set(c, AT_P_DROPOUT, 0.0 / 0.0), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "dropout"));
    EXPECT(at_config_get(c, AT_P_HEADS, &v), AT_OK);
    ck_assert(v == 8);                       /* unchanged by the refused sets */
    EXPECT(at_config_get(c, AT_P_HEADS, NULL), AT_E_ARG);
    EXPECT(at_config_get(NULL, AT_P_HEADS, &v), AT_E_ARG);
    EXPECT(at_config_get(c, (at_param)77, &v), AT_E_ARG);
    EXPECT(at_param_bounds((at_param)77, &v, &v), AT_E_ARG);
    EXPECT(at_param_bounds(AT_P_HEADS, NULL, NULL), AT_OK);
    ck_assert_ptr_null(at_param_name((at_param)77));
    ck_assert_str_eq(at_param_name(AT_P_D_MODEL), "d_model");
    at_config_free(c);
    at_config_free(NULL);
}
END_TEST

START_TEST(create_bad_input)
{
    at_config *c;
    at_model *m = (at_model *)1;
    EXPECT(at_model_create(NULL, NULL), AT_E_ARG);
    EXPECT(at_config_create(&c), AT_OK);
    EXPECT(at_config_set(c, AT_P_D_MODEL, 30), AT_OK);
    EXPECT(at_config_set(c, AT_P_HEADS, 4), AT_OK);       /* 30 % 4 != 0 */
    EXPECT(at_model_create(c, &m), AT_E_ARG);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "multiple of heads"));
    EXPECT(at_config_set(c, AT_P_D_MODEL, 33), AT_OK);
    EXPECT(at_config_set(c, AT_P_HEADS, 3), AT_OK);       /* odd d_model */
    EXPECT(at_model_create(c, &m), AT_E_ARG);
    at_config_free(c);
    at_model_free(NULL);
}
END_TEST

START_TEST(forward_bad_input)
{
    at_model *m = small_model(2);
    int32_t src[3] = {1, 2, 3}, tgt[2] = {1, 2};
    EXPECT(at_forward(NULL, src, tgt, 1, 3, 2, 0), AT_E_ARG);
    EXPECT(at_forward(m, NULL, tgt, 1, 3, 2, 0), AT_E_ARG);
    EXPECT(at_forward(m, src, NULL, 1, 3, 2, 0), AT_E_ARG);
    EXPECT(at_forward(m, src, tgt, 1, 3, 0, 0), AT_E_ARG);
    EXPECT(at_forward(m, src, tgt, 0, 3, 2, 0), AT_E_ARG);
    EXPECT(at_forward(m, src, tgt, -1, 3, 2, 0), AT_E_ARG);
    EXPECT(at_forward(m, src, tgt, 1, 0, 2, 0), AT_E_ARG);
    EXPECT(at_forward(m, src, tgt, 1, -5, 2, 0), AT_E_ARG);
    EXPECT(at_forward(m, src, tgt, 1, 3, -2, 0), AT_E_ARG);
    EXPECT(at_forward(m, src, tgt, 1, 65, 2, 0), AT_E_RANGE);   /* max_len 64 */
    EXPECT(at_forward(m, src, tgt, 1, 3, 65, 0), AT_E_RANGE);
    EXPECT(at_forward(m, src, tgt, 1 << 30, 3, 2, 0), AT_E_RANGE);
    src[1] = 7;                                                 /* src vocab is 7 */
    EXPECT(at_forward(m, src, tgt, 1, 3, 2, 0), AT_E_RANGE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "src[0][1] = 7"));
    src[1] = -1;
    EXPECT(at_forward(m, src, tgt, 1, 3, 2, -1), AT_E_RANGE);   /* pads must be ids too */
    src[1] = 2;
    tgt[1] = 9;                                                 /* tgt vocab is 9 */
    EXPECT(at_forward(m, src, tgt, 1, 3, 2, 0), AT_E_RANGE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "tgt[0][1]"));
    tgt[1] = 8;
    EXPECT(at_forward(m, src, tgt, 1, 3, 2, 0), AT_OK);
    ck_assert_str_eq(at_errmsg(m), at_errmsg(m));
    at_model_free(m);
}
END_TEST

START_TEST(views_bad_input)
{
    at_model *m = small_model(2);
    at_view v;
    EXPECT(at_get_attention(m, AT_ATTN_ENC_SELF, 0, &v), AT_E_STATE);   /* nothing yet */
    EXPECT(at_get_output(m, AT_OUT_MEMORY, 0, &v), AT_E_STATE);
    int32_t src[3] = {1, 2, 3}, tgt[2] = {1, 2};
    EXPECT(at_forward(m, src, tgt, 1, 3, 2, 0), AT_OK);
    EXPECT(at_get_attention(NULL, AT_ATTN_ENC_SELF, 0, &v), AT_E_ARG);
    EXPECT(at_get_attention(m, AT_ATTN_ENC_SELF, 0, NULL), AT_E_ARG);
    EXPECT(at_get_attention(m, (at_attn_kind)3, 0, &v), AT_E_ARG);
    EXPECT(at_get_attention(m, (at_attn_kind)-1, 0, &v), AT_E_ARG);
    EXPECT(at_get_attention(m, AT_ATTN_CROSS, 2, &v), AT_E_ARG);
    EXPECT(at_get_attention(m, AT_ATTN_CROSS, -1, &v), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "layer -1"));
    EXPECT(at_get_output(NULL, AT_OUT_MEMORY, 0, &v), AT_E_ARG);
    EXPECT(at_get_output(m, AT_OUT_MEMORY, 0, NULL), AT_E_ARG);
    EXPECT(at_get_output(m, (at_output)99, 0, &v), AT_E_ARG);
    EXPECT(at_get_output(m, AT_OUT_MEMORY, 1, &v), AT_E_ARG);
    EXPECT(at_get_output(m, AT_OUT_ENC_LAYER, 2, &v), AT_E_ARG);
    EXPECT(at_get_output(m, AT_OUT_DEC_LAYER, -1, &v), AT_E_ARG);
    EXPECT(at_model_tensor(NULL, 0, NULL, &v), AT_E_ARG);
    EXPECT(at_model_tensor(m, -1, NULL, &v), AT_E_ARG);
    EXPECT(at_model_tensor(m, 94, NULL, &v), AT_E_ARG);
    EXPECT(at_model_tensor(m, 3, NULL, NULL), AT_OK);
    EXPECT(at_model_find_tensor(m, NULL, &v), AT_E_ARG);
    EXPECT(at_model_find_tensor(m, "encoder.layers.9.x", &v), AT_E_SHAPE);
    EXPECT(at_model_find_tensor(NULL, "generator.proj.bias", &v), AT_E_ARG);
    double d;
    EXPECT(at_model_get(m, (at_param)0, &d), AT_E_ARG);
    EXPECT(at_model_get(NULL, AT_P_HEADS, &d), AT_E_ARG);
    EXPECT(at_model_get(m, AT_P_HEADS, NULL), AT_E_ARG);
    ck_assert_int_eq(at_model_tensor_count(NULL), 0);
    ck_assert_uint_eq(at_model_generation(NULL), 0);
    EXPECT(at_set_threads(-1), AT_E_ARG);
    ck_assert_int_ge(at_get_threads(), 1);
    ck_assert(at_kernel_peak(0.0) == -1.0);
    ck_assert(at_kernel_peak(-0.5) == -1.0);
    ck_assert(at_kernel_peak(60.5) == -1.0);
    ck_assert(at_kernel_peak(NAN) == -1.0);
    ck_assert(at_kernel_peak(INFINITY) == -1.0);
    double peak = at_kernel_peak(0.02);
    if (strcmp(at_kernel_name(), "openblas") == 0)
        ck_assert(peak == -1.0);
    else
        ck_assert(peak > 0.0 && isfinite(peak));
    ck_assert_int_eq(at_model_tensor_trainable(m, 0), 1);
    ck_assert_int_eq(at_model_tensor_trainable(m, 89), 0);   /* src_embed.1.pe */
    ck_assert_int_eq(at_model_tensor_trainable(m, 94), -1);
    ck_assert_int_eq(at_model_tensor_trainable(m, -1), -1);
    ck_assert_int_eq(at_model_tensor_trainable(NULL, 0), -1);
    ck_assert(at_model_learning_rate(NULL) == 0.0);
    at_model_free(m);
}
END_TEST

START_TEST(load_save_bad_input)
{
    at_model *m = small_model(2), *out = NULL;
    EXPECT(at_model_load(NULL, NULL, &out), AT_E_ARG);
    EXPECT(at_model_load("x", NULL, NULL), AT_E_ARG);
    EXPECT(at_model_load("/no/such/file.safetensors", NULL, &out), AT_E_IO);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "/no/such/file.safetensors"));
    EXPECT(at_model_load("/", NULL, &out), AT_E_IO);            /* a directory */
    EXPECT(at_model_load_buffer(NULL, 10, NULL, &out), AT_E_ARG);
    EXPECT(at_model_load_buffer("x", 1, NULL, NULL), AT_E_ARG);
    EXPECT(at_model_save(NULL, "x"), AT_E_ARG);
    EXPECT(at_model_save(m, NULL), AT_E_ARG);
    ck_assert_ptr_null(out);
    at_model_free(m);
}
END_TEST

/* ---- corrupt checkpoints, made from a good one ---- */

typedef enum edit { DROP, RETYPE, RESHAPE, EXTRA } edit;

/* Writes the small model's state_dict with one tensor edited and loads it. */
static at_status load_edited(const char *victim, edit how, at_config *hint)
{
    at_model *m = small_model(4);
    int n = at_model_tensor_count(m);
    st_out *outs = calloc((size_t)n + 1, sizeof *outs);
    double *wide = NULL;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *name;
        at_view v;
        ck_assert_int_eq(at_model_tensor(m, i, &name, &v), AT_OK);
        st_out o = {.name = name, .dtype = ST_F32, .ndim = v.ndim, .data = v.data};
        memcpy(o.shape, v.shape, sizeof v.shape);
        if (!strcmp(name, victim)) {
            size_t cnt = (size_t)(v.shape[0] * v.shape[1] * v.shape[2]);
            if (how == DROP)
                continue;
            if (how == RETYPE) {
                wide = malloc(cnt * sizeof *wide);
                for (size_t j = 0; j < cnt; j++)
                    wide[j] = v.data[j];
                o.dtype = ST_F64, o.data = wide;
            }
            if (how == RESHAPE && v.ndim == 2)
                o.shape[0] = v.shape[1], o.shape[1] = v.shape[0];
            if (how == RESHAPE && v.ndim == 1)
                o.ndim = 2, o.shape[0] = 1, o.shape[1] = v.shape[0];
            if (how == EXTRA) {
                outs[k++] = o;
                o.name = "encoder.layers.0.extra.weight";
            }
        }
        outs[k++] = o;
    }
    const char *path = tmp_path("edited.safetensors");
    char err[256];
    const char *kv[] = {"heads", "2"};
    ck_assert_msg(st_write(path, outs, k, kv, 1, err, sizeof err) == AT_OK, "%s", err);
    at_model *back = NULL;
    at_status s = at_model_load(path, hint, &back);
    ck_assert(s == AT_OK || back == NULL);
    at_model_free(back);
    at_model_free(m);
    free(outs);
    free(wide);
    return s;
}

static void expect_named(const char *what)
{
    ck_assert_msg(strstr(at_errmsg(NULL), what), "message '%s' does not name '%s'",
                  at_errmsg(NULL), what);
}

START_TEST(missing_tensor)
{
    const char *v = "decoder.layers.1.src_attn.linears.2.bias";
    EXPECT(load_edited(v, DROP, NULL), AT_E_SHAPE);
    expect_named(v);
    EXPECT(load_edited("src_embed.0.lut.weight", DROP, NULL), AT_E_SHAPE);
    expect_named("src_embed.0.lut.weight");
    EXPECT(load_edited("tgt_embed.1.pe", DROP, NULL), AT_E_SHAPE);
    tmp_cleanup();
}
END_TEST

START_TEST(wrong_dtype)
{
    EXPECT(load_edited("generator.proj.weight", RETYPE, NULL), AT_E_FORMAT);
    expect_named("generator.proj.weight");
    tmp_cleanup();
}
END_TEST

START_TEST(wrong_shape)
{
    const char *v = "encoder.layers.1.feed_forward.w_2.weight";
    EXPECT(load_edited(v, RESHAPE, NULL), AT_E_SHAPE);
    expect_named(v);
    EXPECT(load_edited("decoder.norm.b_2", RESHAPE, NULL), AT_E_SHAPE);
    expect_named("decoder.norm.b_2");
    EXPECT(load_edited("tgt_embed.0.lut.weight", RESHAPE, NULL), AT_E_SHAPE);
    tmp_cleanup();
}
END_TEST

START_TEST(unexpected_tensor)
{
    EXPECT(load_edited("encoder.norm.a_2", EXTRA, NULL), AT_E_SHAPE);
    expect_named("encoder.layers.0.extra.weight");
    tmp_cleanup();
}
END_TEST

static unsigned char *saved_bytes(size_t *len)
{
    at_model *m = small_model(4);
    const char *path = tmp_path("good.safetensors");
    ck_assert_int_eq(at_model_save(m, path), AT_OK);
    at_model_free(m);
    unsigned char *b = read_all(path, len);
    ck_assert_ptr_nonnull(b);
    return b;
}

START_TEST(truncated_file)
{
    size_t len;
    unsigned char *b = saved_bytes(&len);
    at_model *m = NULL;
    size_t cuts[] = {0, 1, 7, 8, 100, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        EXPECT(at_model_load_buffer(b, cuts[i], NULL, &m), AT_E_FORMAT);
        ck_assert_ptr_null(m);
        ck_assert_str_ne(at_errmsg(NULL), "");
    }
    const char *path = tmp_path("cut.safetensors");
    ck_assert(write_all(path, b, len - 4));
    EXPECT(at_model_load(path, NULL, &m), AT_E_FORMAT);
    free(b);
    tmp_cleanup();
}
END_TEST

START_TEST(corrupt_header)
{
    size_t len;
    unsigned char *b = saved_bytes(&len);
    at_model *m = NULL;
    unsigned char *c = malloc(len);

    memcpy(c, b, len);                      /* header length 2^40: oversized */
    memset(c, 0, 8);
    c[5] = 1;
    EXPECT(at_model_load_buffer(c, len, NULL, &m), AT_E_FORMAT);

    memcpy(c, b, len);                      /* header length all ones */
    memset(c, 0xff, 8);
    EXPECT(at_model_load_buffer(c, len, NULL, &m), AT_E_FORMAT);

    memcpy(c, b, len);                      /* not JSON */
    c[8] = '[';
    c[9] = '[';
    EXPECT(at_model_load_buffer(c, len, NULL, &m), AT_E_FORMAT);

    memcpy(c, b, len);                      /* bytes flipped inside the JSON */
    for (size_t i = 20; i < 200; i += 7)
        c[i] ^= 0x5a;
    at_status s = at_model_load_buffer(c, len, NULL, &m);
    ck_assert(s == AT_E_FORMAT || s == AT_E_SHAPE);
    ck_assert_ptr_null(m);

    memcpy(c, b, len);                      /* metadata with a non-number */
    char *hp = memmem(c, len, "\"heads\":\"2\"", 11);
    ck_assert_ptr_nonnull(hp);
    hp[9] = 'x';
    EXPECT(at_model_load_buffer(c, len, NULL, &m), AT_E_FORMAT);
    expect_named("heads");
    hp[9] = '0';                            /* a number out of bounds (was a division by 0) */
    EXPECT(at_model_load_buffer(c, len, NULL, &m), AT_E_FORMAT);
    expect_named("heads");
    hp[9] = '3';                            /* in bounds, but 16 is no multiple of 3 */
    EXPECT(at_model_load_buffer(c, len, NULL, &m), AT_E_ARG);
    ck_assert_ptr_null(m);
    free(c);
    free(b);
    tmp_cleanup();
}
END_TEST

Suite *suite_badinput(void)
{
    Suite *s = suite_create("badinput");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, status_strings);
    tcase_add_test(tc, config_bad_input);
    tcase_add_test(tc, create_bad_input);
    tcase_add_test(tc, forward_bad_input);
    tcase_add_test(tc, views_bad_input);
    tcase_add_test(tc, load_save_bad_input);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_add_test(tc, missing_tensor);
    tcase_add_test(tc, wrong_dtype);
    tcase_add_test(tc, wrong_shape);
    tcase_add_test(tc, unexpected_tensor);
    tcase_add_test(tc, truncated_file);
    tcase_add_test(tc, corrupt_header);
    suite_add_tcase(s, tc);
    return s;
}
