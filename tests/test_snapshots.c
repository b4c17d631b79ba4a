/* Heads forming during training (at_snapshots_*): a snapshot at step k
 * against a fresh pass of the checkpoint saved at step k, the file's tensor
 * names and shapes, the model left as it was, and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "io/st.h"
#include "suites.h"
#include "testutil.h"

enum { B = 2, S = 6, T = 5, L = 2, H = 2 };
/* row 1 padded: two pads in src, one in tgt (ids below small_model's 7 / 9) */
static const int32_t probe_src[B * S] = {1, 3, 5, 2, 4, 6, 1, 2, 2, 5, 0, 0};
static const int32_t probe_tgt[B * T] = {1, 3, 5, 2, 4, 1, 2, 2, 5, 0};

/* k training steps on a fixed batch (src ids below 7, targets below 9). */
static void train(at_model *m, int k)
{
    const int32_t src[3 * 5] = {1, 2, 3, 4, 5, 1, 5, 4, 3, 2, 1, 6, 6, 1, 2};
    const int32_t tgt[3 * 6] = {1, 2, 3, 4, 5, 8, 1, 5, 4, 3, 2, 7, 1, 6, 6, 1, 2, 8};
    for (int i = 0; i < k; i++) {
        float loss;
        ck_assert_int_eq(at_train_step(m, src, tgt, 3, 5, 6, 0, &loss, NULL), AT_OK);
    }
}

static const st_tensor *find(const st_file *f, const char *name, st_dtype dt, int ndim,
                             const int64_t *shape)
{
    const st_tensor *t = st_find(f, name);
    ck_assert_msg(t != NULL, "no %s in the file", name);
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_int_eq(t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_int_eq(t->shape[i], shape[i]);
    return t;
}

/* Snapshot 2 (step 4) of a run is what a model loaded from the checkpoint
 * saved at step 4 computes; every tensor of the file has its name and shape. */
START_TEST(step_k_equals_its_checkpoint)
{
    at_model *m = small_model(3);
    at_snapshots *s;
    ck_assert_int_eq(at_snapshots_create(m, probe_src, probe_tgt, B, S, T, 0, 2, &s), AT_OK);
    const char *ckpt = strdup(tmp_path("step4.safetensors"));
    for (int step = 0; step <= 6; step++) {
        if (step > 0)
            train(m, 1);
        ck_assert_int_eq((int64_t)at_model_steps(m), step);
        if (at_snapshots_due(s, step))
            ck_assert_int_eq(at_snapshots_take(s, m, step), AT_OK);
        if (step == 4)
            ck_assert_int_eq(at_model_save(m, ckpt), AT_OK);
    }
    ck_assert_int_eq(at_snapshots_count(s), 4);
    ck_assert_int_eq(at_snapshots_set_meta(s, "probe", "test"), AT_OK);
    const char *path = strdup(tmp_path("snaps.safetensors"));
    ck_assert_int_eq(at_snapshots_save(s, path), AT_OK);
    at_snapshots_free(s);

    at_model *r;
    ck_assert_int_eq(at_model_load(ckpt, NULL, &r), AT_OK);
    ck_assert_int_eq(at_forward(r, probe_src, probe_tgt, B, S, T, 0), AT_OK);
    st_file f;
    char err[256];
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    int64_t steps[4];
    ck_assert_int_eq(st_to_i64(find(&f, "steps", ST_I64, 1, (int64_t[]){4}), steps, err,
                               sizeof err), AT_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(steps[i], 2 * i);
    find(&f, "src", ST_I32, 2, (int64_t[]){B, S});
    find(&f, "tgt", ST_I32, 2, (int64_t[]){B, T});
    ck_assert_str_eq(st_meta(&f, "format"), "attn-snapshots");
    ck_assert_str_eq(st_meta(&f, "every"), "2");
    ck_assert_str_eq(st_meta(&f, "probe"), "test");
    ck_assert_str_eq(st_meta(&f, "roles"), "diagonal,prev,next,prev2,next2,first,eos,broad,"
                                           "monotonic");
    static const char *const kinds[3] = {"enc_self", "dec_self", "cross"};
    double diff = 0, moved = 0;
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < L; l++) {
            int64_t lq = k == 0 ? S : T, lk = k == 1 ? T : S;
            char name[40];
            snprintf(name, sizeof name, "attn.%s.%d", kinds[k], l);
            const st_tensor *a = find(&f, name, ST_F32, 5, (int64_t[]){4, B, H, lq, lk});
            snprintf(name, sizeof name, "stats.%s.%d", kinds[k], l);
            find(&f, name, ST_F64, 3, (int64_t[]){4, H, AT_STAT_COUNT});
            snprintf(name, sizeof name, "roles.%s.%d", kinds[k], l);
            find(&f, name, ST_F64, 3, (int64_t[]){4, H, AT_SNAPSHOT_ROLES});
            float *x = malloc((size_t)a->numel * sizeof *x);
            ck_assert_int_eq(st_to_f32(a, x, err, sizeof err), AT_OK);
            at_view v;
            ck_assert_int_eq(at_get_attention(r, (at_attn_kind)k, l, &v), AT_OK);
            size_t plane = (size_t)B * H * lq * lk, i = 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t q = 0; q < lq; q++)
                        for (int64_t j = 0; j < lk; j++, i++) {
                            float want = v.data[b * v.stride[0] + h * v.stride[1] +
                                                q * v.stride[2] + j * v.stride[3]];
                            diff = fmax(diff, fabs(x[2 * plane + i] - want));
                            moved = fmax(moved, fabs(x[i] - want));
                        }
            free(x);
        }
    ck_assert_msg(diff <= 1e-6, "snapshot at step 4 vs its checkpoint: %g", diff);
    ck_assert_msg(moved > 1e-4, "the attention did not change in training: %g", moved);
    ck_assert_ptr_null(st_find(&f, "attn.enc_self.2"));
    st_free(&f);
    at_model_free(r);
    at_model_free(m);
    free((char *)ckpt);
    free((char *)path);
}
END_TEST

/* A snapshot leaves the model's last pass, its views and its generation. */
START_TEST(model_untouched)
{
    at_model *m = small_model(4);
    at_snapshots *s;
    ck_assert_int_eq(at_snapshots_create(m, probe_src, NULL, B, S, 0, 0, 1, &s), AT_OK);
    const int32_t x[4] = {1, 2, 3, 4};
    ck_assert_int_eq(at_forward(m, x, x, 1, 4, 4, 0), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &v), AT_OK);
    float before[2 * 4 * 4];
    memcpy(before, v.data, sizeof before);
    uint64_t gen = at_model_generation(m);
    ck_assert_int_eq(at_snapshots_take(s, m, 0), AT_OK);
    ck_assert_uint_eq(at_model_generation(m), gen);
    at_view w;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &w), AT_OK);
    ck_assert_ptr_eq(w.data, v.data);
    ck_assert_int_eq(memcmp(before, w.data, sizeof before), 0);
    at_snapshots_free(s);
    at_model_free(m);
}
END_TEST

START_TEST(snapshots_bad_input)
{
    at_model *m = small_model(5);
    at_snapshots *s = (at_snapshots *)&s;
    ck_assert_int_eq(at_snapshots_create(NULL, probe_src, NULL, B, S, 0, 0, 1, &s), AT_E_ARG);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(at_snapshots_create(m, NULL, NULL, B, S, 0, 0, 1, &s), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_create(m, probe_src, NULL, B, S, 0, 0, 1, NULL), AT_E_ARG);
    /* a target without its length, a length without its target */
    ck_assert_int_eq(at_snapshots_create(m, probe_src, probe_tgt, B, S, 0, 0, 1, &s), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_create(m, probe_src, NULL, B, S, T, 0, 1, &s), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "tgt_len"));
    ck_assert_int_eq(at_snapshots_create(m, probe_src, NULL, B, S, 0, 0, 0, &s), AT_E_RANGE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "every"));
    ck_assert_int_eq(at_snapshots_create(m, probe_src, NULL, 0, S, 0, 0, 1, &s), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_create(m, probe_src, NULL, 1, 65, 0, 0, 1, &s), AT_E_RANGE);
    const int32_t big[3] = {1, 7, 2};   /* src vocabulary 7 */
    ck_assert_int_eq(at_snapshots_create(m, big, NULL, 1, 3, 0, 0, 1, &s), AT_E_RANGE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "src[0][1] = 7 is outside the vocabulary"));
    const int32_t tbig[3] = {1, 9, 2};  /* target vocabulary 9 */
    ck_assert_int_eq(at_snapshots_create(m, big, tbig, 1, 1, 3, 0, 1, &s), AT_E_RANGE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "tgt[0][1] = 9"));
    ck_assert_ptr_null(s);

    ck_assert_int_eq(at_snapshots_create(m, probe_src, probe_tgt, B, S, T, 0, 3, &s), AT_OK);
    ck_assert_int_eq(at_snapshots_due(s, 0), 1);
    ck_assert_int_eq(at_snapshots_due(s, 4), 0);
    ck_assert_int_eq(at_snapshots_due(s, -3), 0);
    ck_assert_int_eq(at_snapshots_due(NULL, 3), 0);
    ck_assert_int_eq(at_snapshots_save(s, tmp_path("none.safetensors")), AT_E_STATE);
    ck_assert_int_eq(at_snapshots_take(NULL, m, 0), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_take(s, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_take(s, m, -1), AT_E_RANGE);
    ck_assert_int_eq(at_snapshots_take(s, m, 3), AT_OK);
    ck_assert_int_eq(at_snapshots_take(s, m, 3), AT_E_RANGE);   /* steps increase */
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "after the last"));
    at_config *cfg;
    ck_assert_int_eq(at_config_create(&cfg), AT_OK);
    double v[][2] = {{AT_P_LAYERS, 1}, {AT_P_D_MODEL, 16}, {AT_P_HEADS, 2}, {AT_P_D_FF, 32}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(at_config_set(cfg, (at_param)v[i][0], v[i][1]), AT_OK);
    at_model *other;
    ck_assert_int_eq(at_model_create(cfg, &other), AT_OK);
    at_config_free(cfg);
    ck_assert_int_eq(at_snapshots_take(s, other, 6), AT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(other), "layers"));
    ck_assert_int_eq(at_snapshots_count(s), 1);
    ck_assert_int_eq(at_snapshots_save(NULL, "x"), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_save(s, NULL), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_save(s, "/nonexistent/dir/s.safetensors"), AT_E_IO);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "/nonexistent/dir"));
    ck_assert_int_eq(at_snapshots_set_meta(s, "every", "4"), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_set_meta(s, "", "4"), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_set_meta(s, "k", NULL), AT_E_ARG);
    ck_assert_int_eq(at_snapshots_set_meta(NULL, "k", "v"), AT_E_ARG);
    for (int i = 0; i < 8; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(at_snapshots_set_meta(s, key, "v"), AT_OK);
    }
    ck_assert_int_eq(at_snapshots_set_meta(s, "k0", "again"), AT_OK);   /* replaces */
    ck_assert_int_eq(at_snapshots_set_meta(s, "k8", "v"), AT_E_ARG);    /* a ninth */
    ck_assert_str_eq(at_snapshot_role_name(0), "diagonal");
    ck_assert_str_eq(at_snapshot_role_name(AT_SNAPSHOT_ROLES - 1), "monotonic");
    ck_assert_ptr_null(at_snapshot_role_name(AT_SNAPSHOT_ROLES));
    ck_assert_ptr_null(at_snapshot_role_name(-1));
    ck_assert_int_eq(at_snapshots_count(NULL), 0);
    at_snapshots_free(s);
    at_snapshots_free(NULL);
    at_model_free(other);
    at_model_free(m);
}
END_TEST

Suite *suite_snapshots(void)
{
    Suite *s = suite_create("snapshots");
    TCase *tc = tcase_create("recorder");
    tcase_add_test(tc, step_k_equals_its_checkpoint);
    tcase_add_test(tc, model_untouched);
    tcase_add_test(tc, snapshots_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
