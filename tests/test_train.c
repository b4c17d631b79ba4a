/* Training against the PyTorch original (golden/tiny_grad): the loss, every
 * gradient, one Adam step; and the behaviour around it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

static double case_number(const golden *g, const char *obj, const char *key)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(g->kase, obj);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "case.json has no %s.%s", obj, key);
    return v->valuedouble;
}

/* The reference's settings for this case: every dropout 0, smoothing 0.1,
 * Adam lr 0.5 · rate(1, 32, 1, 400). */
static void configure(golden *g)
{
    ck_assert_int_eq(at_model_set(g->m, AT_P_DROPOUT, 0), AT_OK);
    ck_assert_int_eq(at_model_set(g->m, AT_P_ATTN_DROPOUT, 0), AT_OK);
    ck_assert_int_eq(at_model_set(g->m, AT_P_SMOOTHING, 0.1), AT_OK);
    ck_assert_int_eq(at_model_set(g->m, AT_P_LR, 0.5), AT_OK);
    ck_assert_int_eq(at_model_set(g->m, AT_P_WARMUP, 400), AT_OK);
    ck_assert_int_eq(at_model_set(g->m, AT_P_FACTOR, 1), AT_OK);
}

START_TEST(gradients_match_reference)
{
    golden g;
    ck_assert(golden_open(&g, "tiny_grad"));
    configure(&g);
    int64_t B, S, B2, Tf;
    int32_t *src = golden_ids(&g, "src", &B, &S);
    int32_t *tgt = golden_ids(&g, "tgt_full", &B2, &Tf);
    int n = at_model_tensor_count(g.m);
    float **before = calloc((size_t)n, sizeof *before);
    for (int i = 0; i < n; i++) {
        at_view v;
        ck_assert_int_eq(at_model_tensor(g.m, i, NULL, &v), AT_OK);
        size_t cnt = (size_t)(v.shape[0] * v.shape[1] * v.shape[2] * v.shape[3]);
        before[i] = malloc(cnt * sizeof(float));
        memcpy(before[i], v.data, cnt * sizeof(float));
    }
    double lr = at_model_learning_rate(g.m);
    double want_lr = case_number(&g, "optimizer", "lr_used_exact");
    ck_assert_msg(fabs(lr - want_lr) < 1e-15, "lr %.17g, reference %.17g", lr, want_lr);

    float loss;
    int64_t ntokens;
    ck_assert_msg(at_train_step(g.m, src, tgt, (int)B, (int)S, (int)Tf, 0, &loss, &ntokens) ==
                  AT_OK, "%s", at_errmsg(g.m));
    ck_assert_int_eq(ntokens, (int64_t)case_number(&g, "loss", "ntokens"));
    double want = case_number(&g, "loss", "value");
    printf("tiny_grad: loss %.9g, reference %.9g, |err| %.3g\n", loss, want, fabs(loss - want));
    ck_assert(fabs(loss - want) <= 5e-6);

    at_view v;
    ck_assert_int_eq(at_get_output(g.m, AT_OUT_LOGPROBS, 0, &v), AT_OK);
    ck_assert_int_eq(compare_view(&v, golden_tensor(&g, "logprobs"), 1e-4, 1e-4, "logprobs",
                                  NULL), 0);

    long bad = 0, noise = 0;
    double worst = 0, worst_step = 0;
    char key[160];
    for (int i = 0; i < n; i++) {
        const char *name;
        at_view p;
        ck_assert_int_eq(at_model_tensor(g.m, i, &name, &p), AT_OK);
        if (strstr(name, ".pe")) {
            ck_assert_int_eq(at_model_grad(g.m, i, &v), AT_E_ARG);
            continue;
        }
        double e;
        ck_assert_int_eq(at_model_grad(g.m, i, &v), AT_OK);
        snprintf(key, sizeof key, "grad.%s", name);
        bad += compare_view(&v, golden_tensor(&g, key), 5e-6, 1e-3, key, &e);
        worst = e > worst ? e : worst;

        /* the step: after − before against the reference's after − before.
         * Where the reference gradient is float noise around an exact 0 (the
         * key biases: softmax ignores a constant added to every score), the
         * first step lr·g/(|g| + ε) depends on that noise (case.json says so);
         * there the step is only bounded by lr. */
        snprintf(key, sizeof key, "after_step.%s", name);
        const st_tensor *t = golden_tensor(&g, key);
        snprintf(key, sizeof key, "grad.%s", name);
        const st_tensor *tg = golden_tensor(&g, key);
        float *after = malloc((size_t)t->numel * sizeof *after);
        float *gref = malloc((size_t)t->numel * sizeof *gref);
        char err[128];
        ck_assert(st_to_f32(t, after, err, sizeof err) == AT_OK);
        ck_assert(st_to_f32(tg, gref, err, sizeof err) == AT_OK);
        for (int64_t k = 0; k < t->numel; k++) {
            double mine = (double)p.data[k] - before[i][k];
            double theirs = (double)after[k] - before[i][k];
            if (gref[k] == 0.0f && v.data[k] == 0.0f) {   /* rows of absent ids */
                ck_assert_msg(mine == 0.0, "%s[%lld] has no gradient but moved %g", name,
                              (long long)k, mine);
                continue;
            }
            if (fabs(gref[k]) < 1e-8) {
                ck_assert_msg(fabs(mine) <= lr * 1.0001, "%s[%lld] moved %g > lr", name,
                              (long long)k, mine);
                noise++;
                continue;
            }
            double de = fabs(mine - theirs);
            worst_step = de > worst_step ? de : worst_step;
            if (de > 1e-7) {
                bad++;
                if (bad < 5)
                    printf("  %s[%lld]: moved %.3g, reference %.3g\n", name, (long long)k,
                           mine, theirs);
            }
        }
        free(after);
        free(gref);
        free(before[i]);
    }
    free(before);
    printf("tiny_grad: largest gradient error %.3g (atol 5e-6, rtol 1e-3); "
           "largest step error %.3g (atol 1e-7); %ld noise-gradient elements bounded by lr\n",
           worst, worst_step, noise);
    ck_assert_msg(bad == 0, "%ld elements out of tolerance", bad);
    ck_assert_uint_eq(at_model_steps(g.m), 1);
    free(src);
    free(tgt);
    golden_close(&g);
}
END_TEST

START_TEST(noam_matches_reference)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/noam.json", AT_TEST_DATA);
    size_t len;
    char *text = (char *)read_all(path, &len);
    ck_assert_ptr_nonnull(text);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    ck_assert_ptr_nonnull(j);
    int checked = 0;
    cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(j, "table")) {
        int d = cJSON_GetObjectItemCaseSensitive(row, "model_size")->valueint;
        double factor = cJSON_GetObjectItemCaseSensitive(row, "factor")->valuedouble;
        int warmup = cJSON_GetObjectItemCaseSensitive(row, "warmup")->valueint;
        cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(row, "rate")) {
            int64_t step = strtoll(r->string, NULL, 10);
            double got = at_noam_rate(step, d, factor, warmup);
            ck_assert_msg(fabs(got - r->valuedouble) <= 1e-15 * r->valuedouble,
                          "rate(%lld, %d, %g, %d) = %.17g, reference %.17g", (long long)step,
                          d, factor, warmup, got, r->valuedouble);
            checked++;
        }
    }
    printf("noam: %d rates match the reference\n", checked);
    ck_assert_int_gt(checked, 0);

    /* the copy task's schedule as the optimizer applies it: step k uses
     * 0.5·rate(k − 1), so steps 1 and 2 share a rate */
    at_config *cfg;
    ck_assert_int_eq(at_config_create(&cfg), AT_OK);
    const double v[][2] = {{AT_P_LAYERS, 1}, {AT_P_D_MODEL, 512}, {AT_P_HEADS, 8},
                           {AT_P_D_FF, 8}, {AT_P_MAX_LEN, 8}, {AT_P_LR, 0.5},
                           {AT_P_WARMUP, 400}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(at_config_set(cfg, (at_param)v[i][0], v[i][1]), AT_OK);
    at_model *m;
    ck_assert_int_eq(at_model_create(cfg, &m), AT_OK);
    at_config_free(cfg);
    cJSON *copy = cJSON_GetObjectItemCaseSensitive(j, "lambdalr_copy_task");
    cJSON *lrs = cJSON_GetObjectItemCaseSensitive(copy, "lr_applied_by_optimizer_step_k_1based");
    int32_t src[3] = {1, 2, 3}, tgt[3] = {1, 2, 3};
    cJSON *lr;
    cJSON_ArrayForEach(lr, lrs) {
        ck_assert_msg(fabs(at_model_learning_rate(m) - lr->valuedouble) <= 1e-15 *
                      lr->valuedouble, "step %llu: lr %.17g, reference %.17g",
                      (unsigned long long)at_model_steps(m) + 1, at_model_learning_rate(m),
                      lr->valuedouble);
        float loss;
        ck_assert_int_eq(at_train_step(m, src, tgt, 1, 3, 3, 0, &loss, NULL), AT_OK);
    }
    ck_assert_uint_eq(at_model_steps(m), (uint64_t)cJSON_GetArraySize(lrs));
    at_model_free(m);
    cJSON_Delete(j);
}
END_TEST

Suite *suite_train(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, gradients_match_reference);
    tcase_add_test(tc, noam_matches_reference);
    suite_add_tcase(s, tc);
    return s;
}
