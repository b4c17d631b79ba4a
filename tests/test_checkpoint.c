/* Checkpoints: the save → load round trip is bit-exact; PyTorch files load;
 * saving is atomic. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "suites.h"
#include "testutil.h"

static void expect_same_tensors(at_model *a, at_model *b)
{
    ck_assert_int_eq(at_model_tensor_count(a), at_model_tensor_count(b));
    for (int i = 0; i < at_model_tensor_count(a); i++) {
        const char *na, *nb;
        at_view va, vb;
        ck_assert_int_eq(at_model_tensor(a, i, &na, &va), AT_OK);
        ck_assert_int_eq(at_model_tensor(b, i, &nb, &vb), AT_OK);
        ck_assert_str_eq(na, nb);
        ck_assert_mem_eq(va.shape, vb.shape, sizeof va.shape);
        size_t n = (size_t)(va.shape[0] * va.shape[1] * va.shape[2] * va.shape[3]);
        ck_assert_msg(!memcmp(va.data, vb.data, n * sizeof(float)), "%s differs", na);
    }
}

START_TEST(round_trip_is_bit_exact)
{
    at_model *m = small_model(7), *back;
    const char *path = tmp_path("m.safetensors");
    ck_assert_msg(at_model_save(m, path) == AT_OK, "%s", at_errmsg(m));
    ck_assert_msg(at_model_load(path, NULL, &back) == AT_OK, "%s", at_errmsg(NULL));
    expect_same_tensors(m, back);
    for (int k = AT_P_SRC_VOCAB; k <= AT_P_PACKED; k++) {
        double x, y;
        ck_assert_int_eq(at_model_get(m, (at_param)k, &x), AT_OK);
        ck_assert_int_eq(at_model_get(back, (at_param)k, &y), AT_OK);
        ck_assert_msg(x == y, "%s: %g then %g", at_param_name((at_param)k), x, y);
    }
    const int32_t src[4] = {1, 2, 3, 4}, tgt[3] = {1, 5, 6};
    ck_assert_int_eq(at_forward(m, src, tgt, 1, 4, 3, 0), AT_OK);
    ck_assert_int_eq(at_forward(back, src, tgt, 1, 4, 3, 0), AT_OK);
    at_view a, b;
    ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &a), AT_OK);
    ck_assert_int_eq(at_get_output(back, AT_OUT_LOGPROBS, 0, &b), AT_OK);
    ck_assert_mem_eq(a.data, b.data, 3 * 9 * sizeof(float));
    at_model_free(m);
    at_model_free(back);
    tmp_cleanup();
}
END_TEST

/* The saved file is a plain state_dict: the reference's names, F32, in its
 * order, with our metadata, which a reader without it ignores. */
START_TEST(saved_file_is_a_state_dict)
{
    at_model *m = small_model(7);
    const char *path = tmp_path("m.safetensors");
    ck_assert_int_eq(at_model_save(m, path), AT_OK);
    st_file f;
    char err[256];
    ck_assert_msg(st_read(&f, path, err, sizeof err) == AT_OK, "%s", err);
    ck_assert_int_eq(f.count, 94);
    ck_assert_str_eq(st_meta(&f, "heads"), "2");
    ck_assert_str_eq(st_meta(&f, "dropout"), "0.1");
    const st_tensor *pe = st_find(&f, "tgt_embed.1.pe");
    ck_assert_ptr_nonnull(pe);
    ck_assert(pe->dtype == ST_F32 && pe->ndim == 3 && pe->shape[1] == 64);
    st_free(&f);
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

/* A PyTorch export has no metadata: the head count must come from the caller. */
START_TEST(pytorch_file_needs_heads)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/tiny/model.safetensors", AT_TEST_DATA);
    at_model *m = NULL;
    ck_assert_int_eq(at_model_load(path, NULL, &m), AT_E_ARG);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "heads"));

    at_config *hint;
    ck_assert_int_eq(at_config_create(&hint), AT_OK);
    ck_assert_int_eq(at_config_set(hint, AT_P_HEADS, 4), AT_OK);
    ck_assert_int_eq(at_model_load(path, hint, &m), AT_OK);
    double v;
    ck_assert_int_eq(at_model_get(m, AT_P_D_MODEL, &v), AT_OK);
    ck_assert(v == 32);
    ck_assert_int_eq(at_model_get(m, AT_P_MAX_LEN, &v), AT_OK);
    ck_assert(v == 5000);
    at_model_free(m);

    /* a hint that contradicts the shapes is refused, naming the key */
    ck_assert_int_eq(at_config_set(hint, AT_P_D_MODEL, 64), AT_OK);
    ck_assert_int_eq(at_model_load(path, hint, &m), AT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "d_model"));
    /* heads that do not divide d_model */
    at_config_free(hint);
    ck_assert_int_eq(at_config_create(&hint), AT_OK);
    ck_assert_int_eq(at_config_set(hint, AT_P_HEADS, 5), AT_OK);
    ck_assert_int_eq(at_model_load(path, hint, &m), AT_E_ARG);
    at_config_free(hint);
}
END_TEST

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A save that fails half-way (here: the file-size limit is hit, which stops
 * root too) leaves the old file byte for byte and no temporary file. */
START_TEST(failed_save_keeps_old_file)
{
    at_model *m = small_model(7);
    const char *p = tmp_path("keep.safetensors");
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    const char old[] = "the user's previous checkpoint";
    ck_assert(write_all(path, old, sizeof old));

    struct rlimit saved, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    at_status s = at_model_save(m, path);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, SIG_DFL);

    ck_assert_int_eq(s, AT_E_IO);
    ck_assert_str_ne(at_errmsg(m), "");
    size_t len;
    unsigned char *now = read_all(path, &len);
    ck_assert_uint_eq(len, sizeof old);
    ck_assert_mem_eq(now, old, sizeof old);
    free(now);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    ck_assert_int_eq(count_entries(dir), 1);   /* no temporary file left */

    ck_assert_int_eq(at_model_save(m, path), AT_OK);   /* and a good save replaces it */
    at_model *back;
    ck_assert_int_eq(at_model_load(path, NULL, &back), AT_OK);
    expect_same_tensors(m, back);
    at_model_free(back);
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

START_TEST(save_into_missing_directory)
{
    at_model *m = small_model(7);
    ck_assert_int_eq(at_model_save(m, "/nonexistent-dir-for-libat/m.safetensors"), AT_E_IO);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "nonexistent-dir-for-libat"));
    at_model_free(m);
}
END_TEST

/* Loading from memory equals loading from the file. */
START_TEST(load_buffer_equals_load_file)
{
    at_model *m = small_model(9), *a, *b;
    const char *path = tmp_path("m.safetensors");
    ck_assert_int_eq(at_model_save(m, path), AT_OK);
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    ck_assert_int_eq(at_model_load_buffer(bytes, len, NULL, &a), AT_OK);
    ck_assert_int_eq(at_model_load(path, NULL, &b), AT_OK);
    expect_same_tensors(a, b);
    free(bytes);
    at_model_free(a);
    at_model_free(b);
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

/* The host's metadata: kept in order through save, load, share and a
 * training save; libat's own keys refused; a replaced value in place. */
START_TEST(metadata_travels_with_the_weights)
{
    at_model *m = small_model(5), *back, *twin;
    const char *v = NULL;
    ck_assert_int_eq(at_model_meta_count(m), 0);
    ck_assert_int_eq(at_model_get_meta(m, "tokenizer", &v), AT_OK);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(at_model_set_meta(m, "tokenizer", "AAAA"), AT_OK);
    ck_assert_int_eq(at_model_set_meta(m, "corpus", "bible \"é\"\n"), AT_OK);
    ck_assert_int_eq(at_model_set_meta(m, "tokenizer", "QUJD"), AT_OK);   /* replaced */
    ck_assert_int_eq(at_model_set_meta(m, "note", "gone"), AT_OK);
    ck_assert_int_eq(at_model_set_meta(m, "note", NULL), AT_OK);          /* removed */
    ck_assert_int_eq(at_model_set_meta(m, "heads", "9"), AT_E_ARG);
    ck_assert_int_eq(at_model_set_meta(m, "step", "9"), AT_E_ARG);
    ck_assert_int_eq(at_model_set_meta(m, "", "x"), AT_E_ARG);
    ck_assert_int_eq(at_model_set_meta(m, "bad", "\xff"), AT_E_FORMAT);
    ck_assert_int_eq(at_model_set_meta(NULL, "k", "x"), AT_E_ARG);
    ck_assert_int_eq(at_model_meta_count(m), 2);
    ck_assert_str_eq(at_model_meta_key(m, 0), "tokenizer");
    ck_assert_str_eq(at_model_meta_key(m, 1), "corpus");
    ck_assert_ptr_null(at_model_meta_key(m, 2));

    const char *path = tmp_path("meta.safetensors");
    ck_assert_int_eq(at_model_save(m, path), AT_OK);
    ck_assert_msg(at_model_load(path, NULL, &back) == AT_OK, "%s", at_errmsg(NULL));
    ck_assert_int_eq(at_model_meta_count(back), 2);
    ck_assert_str_eq(at_model_meta_key(back, 0), "tokenizer");
    ck_assert_int_eq(at_model_get_meta(back, "tokenizer", &v), AT_OK);
    ck_assert_str_eq(v, "QUJD");
    ck_assert_int_eq(at_model_get_meta(back, "corpus", &v), AT_OK);
    ck_assert_str_eq(v, "bible \"é\"\n");
    double heads = 0;
    ck_assert_int_eq(at_model_get(back, AT_P_HEADS, &heads), AT_OK);
    ck_assert(heads == 2);

    /* a share sees it, and while shared nobody may change it */
    ck_assert_int_eq(at_model_share(back, &twin), AT_OK);
    ck_assert_int_eq(at_model_get_meta(twin, "corpus", &v), AT_OK);
    ck_assert_str_eq(v, "bible \"é\"\n");
    ck_assert_int_eq(at_model_set_meta(twin, "corpus", "x"), AT_E_STATE);
    at_model_free(back);
    ck_assert_int_eq(at_model_set_meta(twin, "corpus", "x"), AT_OK);

    /* a training checkpoint carries it too */
    const int32_t src[4] = {1, 2, 3, 4}, tgt[3] = {1, 5, 6};
    float loss;
    ck_assert_int_eq(at_train_step(twin, src, tgt, 1, 4, 3, 0, &loss, NULL), AT_OK);
    ck_assert_int_eq(at_model_save_training(twin, path), AT_OK);
    ck_assert_int_eq(at_model_load(path, NULL, &back), AT_OK);
    ck_assert_int_eq(at_model_steps(back), 1);
    ck_assert_int_eq(at_model_get_meta(back, "corpus", &v), AT_OK);
    ck_assert_str_eq(v, "x");
    ck_assert_int_eq(at_model_meta_count(back), 2);
    at_model_free(back);
    at_model_free(twin);
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

/* Initialisation as make_model: deep-copied biases are one vector; matrices
 * lie within their xavier bound; the same seed gives the same model. */
START_TEST(initialisation_follows_make_model)
{
    at_model *m = small_model(11), *same = small_model(11), *other = small_model(12);
    expect_same_tensors(m, same);
    at_view a, b;
    ck_assert_int_eq(at_model_find_tensor(m, "encoder.layers.0.self_attn.linears.0.bias", &a),
                     AT_OK);
    ck_assert_int_eq(at_model_find_tensor(m, "decoder.layers.1.src_attn.linears.3.bias", &b),
                     AT_OK);
    ck_assert_mem_eq(a.data, b.data, 16 * sizeof(float));
    ck_assert_int_eq(at_model_find_tensor(m, "encoder.layers.1.self_attn.linears.0.weight",
                                          &a), AT_OK);
    ck_assert_int_eq(at_model_find_tensor(m, "encoder.layers.0.self_attn.linears.0.weight",
                                          &b), AT_OK);
    ck_assert(memcmp(a.data, b.data, 256 * sizeof(float)));   /* xavier redraws each */
    double bound = 0.4330127;                                 /* sqrt(6 / 32) */
    for (int i = 0; i < 256; i++)
        ck_assert(a.data[i] > -bound && a.data[i] < bound);
    ck_assert_int_eq(at_model_find_tensor(other, "encoder.layers.1.self_attn.linears.0.weight",
                                          &b), AT_OK);
    ck_assert(memcmp(a.data, b.data, 256 * sizeof(float)));
    at_model_free(m);
    at_model_free(same);
    at_model_free(other);
}
END_TEST

Suite *suite_checkpoint(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("round_trip");
    tcase_add_test(tc, round_trip_is_bit_exact);
    tcase_add_test(tc, saved_file_is_a_state_dict);
    tcase_add_test(tc, load_buffer_equals_load_file);
    tcase_add_test(tc, initialisation_follows_make_model);
    tcase_add_test(tc, metadata_travels_with_the_weights);
    suite_add_tcase(s, tc);
    tc = tcase_create("pytorch");
    tcase_add_test(tc, pytorch_file_needs_heads);
    suite_add_tcase(s, tc);
    tc = tcase_create("atomic");
    tcase_add_test(tc, failed_save_keeps_old_file);
    tcase_add_test(tc, save_into_missing_directory);
    suite_add_tcase(s, tc);
    return s;
}
