/* Training against the PyTorch original (golden/tiny_grad): the loss, every
 * gradient, one Adam step; and the behaviour around it. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "refmodel.h"
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
            free(before[i]);
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

/* ---- the copy task (SEMANTICS §13), small ---- */

static uint64_t lcg = 88172645463325252ull;

static int draw(int n)
{
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((lcg >> 33) % (uint64_t)n);
}

/* data_gen: ids uniform in 1..V−1, first column the start symbol 1 */
static void copy_batch(int32_t *x, int B, int L, int V)
{
    for (int i = 0; i < B * L; i++)
        x[i] = i % L == 0 ? 1 : 1 + draw(V - 1);
}

static at_model *copy_model(int d, int heads, int ff, double lr, int warmup, double dropout)
{
    at_config *cfg;
    ck_assert_int_eq(at_config_create(&cfg), AT_OK);
    const double v[][2] = {{AT_P_LAYERS, 2}, {AT_P_D_MODEL, d}, {AT_P_HEADS, heads},
                           {AT_P_D_FF, ff}, {AT_P_MAX_LEN, 32}, {AT_P_LR, lr},
                           {AT_P_WARMUP, warmup}, {AT_P_DROPOUT, dropout}, {AT_P_SEED, 5}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(at_config_set(cfg, (at_param)v[i][0], v[i][1]), AT_OK);
    at_model *m;
    ck_assert_int_eq(at_model_create(cfg, &m), AT_OK);
    at_config_free(cfg);
    return m;
}

/* AT_TEST_QUICK=1 (the valgrind step of cmake/dev.sh test) shortens the one
 * long test here: the same code paths, fewer steps. */
static bool quick(void)
{
    const char *q = getenv("AT_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

/* A d_model-32 model learns to copy in a few seconds: greedy decoding of
 * held-out sequences gives them back exactly. Quick: 50 steps of 16 rows,
 * in which the loss must fall by a fifth (it falls by a third). */
START_TEST(small_model_learns_to_copy)
{
    at_model *m = copy_model(32, 4, 64, 1.0, 100, 0.1);
    enum { B = 80, L = 10, V = 11 };
    int steps = quick() ? 50 : 300, rows = quick() ? 16 : B;
    int32_t x[B * L];
    float loss = 0, first = 0;
    for (int step = 0; step < steps; step++) {
        copy_batch(x, rows, L, V);
        ck_assert_int_eq(at_train_step(m, x, x, rows, L, L, 0, &loss, NULL), AT_OK);
        if (step == 0)
            first = loss;
    }
    copy_batch(x, rows, L, V);
    float eval;
    ck_assert_int_eq(at_eval_loss(m, x, x, rows, L, L, 0, &eval, NULL), AT_OK);
    int32_t out[B * L];
    int len, exact = 0;
    ck_assert_int_eq(at_greedy_decode(m, x, rows, L, 0, L, 1, -1, out, &len), AT_OK);
    for (int r = 0; r < rows; r++)
        exact += !memcmp(out + r * L, x + r * L, sizeof(int32_t) * L);
    printf("copy task, d_model 32, %d steps of %d rows: loss %.3f -> %.3f, eval %.4f, %d/%d "
           "held-out sequences copied exactly\n", steps, rows, first, loss, eval, exact, rows);
    if (quick()) {
        ck_assert(loss < 0.8f * first && eval < 0.8f * first);
    } else {
        ck_assert(eval < 0.1);
        ck_assert_int_ge(exact, B * 9 / 10);
    }
    at_model_free(m);
}
END_TEST

/* k steps, save, load, k more == 2k steps, bit for bit (dropout on). */
START_TEST(resume_is_exact)
{
    enum { B = 8, L = 7, K = 3, V = 11 };
    int32_t batches[2 * K][B * L];
    lcg = 99;
    for (int i = 0; i < 2 * K; i++)
        copy_batch(batches[i], B, L, V);
    at_model *straight = copy_model(16, 2, 32, 1.0, 10, 0.1);
    at_model *first = copy_model(16, 2, 32, 1.0, 10, 0.1), *resumed;
    float loss;
    for (int i = 0; i < 2 * K; i++)
        ck_assert_int_eq(at_train_step(straight, batches[i], batches[i], B, L, L, 0, &loss,
                                       NULL), AT_OK);
    for (int i = 0; i < K; i++)
        ck_assert_int_eq(at_train_step(first, batches[i], batches[i], B, L, L, 0, &loss, NULL),
                         AT_OK);
    const char *path = tmp_path("train.safetensors");
    ck_assert_int_eq(at_model_save_training(first, path), AT_OK);
    ck_assert_msg(at_model_load(path, NULL, &resumed) == AT_OK, "%s", at_errmsg(NULL));
    ck_assert_uint_eq(at_model_steps(resumed), K);
    for (int i = K; i < 2 * K; i++)
        ck_assert_int_eq(at_train_step(resumed, batches[i], batches[i], B, L, L, 0, &loss,
                                       NULL), AT_OK);
    for (int i = 0; i < at_model_tensor_count(straight); i++) {
        const char *name;
        at_view a, b;
        ck_assert_int_eq(at_model_tensor(straight, i, &name, &a), AT_OK);
        ck_assert_int_eq(at_model_tensor(resumed, i, NULL, &b), AT_OK);
        size_t n = (size_t)(a.shape[0] * a.shape[1] * a.shape[2] * a.shape[3]);
        ck_assert_msg(!memcmp(a.data, b.data, n * sizeof(float)), "%s differs", name);
    }
    ck_assert_uint_eq(at_model_steps(resumed), 2 * K);

    /* the weights-only file of a trained model carries no optimizer state */
    ck_assert_int_eq(at_model_save(first, path), AT_OK);
    at_model *plain;
    ck_assert_int_eq(at_model_load(path, NULL, &plain), AT_OK);
    ck_assert_uint_eq(at_model_steps(plain), 0);
    at_model_free(plain);
    at_model_free(straight);
    at_model_free(first);
    at_model_free(resumed);
    tmp_cleanup();
}
END_TEST

/* Dropout: a training pass differs from evaluation, the same step of the same
 * seed repeats exactly, and with every rate 0 the training loss is the
 * evaluation loss. */
START_TEST(dropout_behaves)
{
    enum { B = 4, L = 6, V = 11 };
    int32_t x[B * L];
    lcg = 7;
    copy_batch(x, B, L, V);
    at_model *a = copy_model(16, 2, 32, 1.0, 10, 0.3), *b = copy_model(16, 2, 32, 1.0, 10, 0.3);
    float ev, ta, tb;
    ck_assert_int_eq(at_eval_loss(a, x, x, B, L, L, 0, &ev, NULL), AT_OK);
    ck_assert_int_eq(at_train_step(a, x, x, B, L, L, 0, &ta, NULL), AT_OK);
    ck_assert_int_eq(at_train_step(b, x, x, B, L, L, 0, &tb, NULL), AT_OK);
    ck_assert(ta != ev);
    ck_assert(ta == tb);
    at_model_free(a);
    at_model_free(b);

    a = copy_model(16, 2, 32, 1.0, 10, 0.0);
    ck_assert_int_eq(at_model_set(a, AT_P_ATTN_DROPOUT, 0), AT_OK);
    ck_assert_int_eq(at_eval_loss(a, x, x, B, L, L, 0, &ev, NULL), AT_OK);
    ck_assert_int_eq(at_train_step(a, x, x, B, L, L, 0, &ta, NULL), AT_OK);
    ck_assert_float_eq(ta, ev);
    /* attention dropout alone (the reference's fixed 0.1) changes the pass */
    ck_assert_int_eq(at_model_set(a, AT_P_ATTN_DROPOUT, 0.5), AT_OK);
    float after, with;
    ck_assert_int_eq(at_eval_loss(a, x, x, B, L, L, 0, &after, NULL), AT_OK);
    ck_assert_int_eq(at_train_step(a, x, x, B, L, L, 0, &with, NULL), AT_OK);
    ck_assert(with != after);
    at_model_free(a);
}
END_TEST

/* Central differences against the analytic gradient, on a small random model
 * with padding in source and target and label smoothing on. The differences
 * are taken of a double-precision reference of the loss (tests/refmodel.c,
 * written from SEMANTICS.md without the library's kernels), so they are exact
 * to ~1e-9 and the library's float32 gradients must meet the golden tolerance
 * (5e-6 + 1e-3·|g|). The reference's loss must also equal the library's. */
/* at_eval_loss computes a loss with the forward arena and the label buffer:
 * on a fresh model it leaves no training state (no gradients, no step) and
 * allocates no backward buffers (once the arena fits, only the labels and
 * the row losses: 4 ids per label, 160 bytes here, against more than 10 KB of
 * backward buffers). It gives the loss of the training step that follows. */
START_TEST(eval_loss_needs_no_training_state)
{
    at_model *m = small_model(17);
    ck_assert_int_eq(at_model_set(m, AT_P_DROPOUT, 0), AT_OK);
    ck_assert_int_eq(at_model_set(m, AT_P_ATTN_DROPOUT, 0), AT_OK);
    const int32_t src[2 * 5] = {1, 3, 4, 5, 6, 1, 3, 2, 0, 0};
    const int32_t tgt[2 * 6] = {1, 2, 5, 7, 8, 3, 1, 4, 4, 6, 0, 0};
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 5, 0), AT_OK);   /* the arena, sized */
    uint64_t g = at_model_generation(m);
#if !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 before = mallinfo2();
#endif
    float eval, loss;
    int64_t ntok = 0;
    ck_assert_int_eq(at_eval_loss(m, src, tgt, 2, 5, 6, 0, &eval, &ntok), AT_OK);
#if !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 after = mallinfo2();
    ck_assert_uint_eq(after.hblkhd, before.hblkhd);
    ck_assert_uint_le(after.uordblks - before.uordblks, 512);
#endif
    ck_assert_int_eq(ntok, 8);
    ck_assert_uint_eq(at_model_generation(m), g + 1);
    ck_assert_uint_eq(at_model_steps(m), 0);
    at_view v;
    ck_assert_int_eq(at_model_grad(m, 0, &v), AT_E_STATE);
    ck_assert_int_eq(at_train_step(m, src, tgt, 2, 5, 6, 0, &loss, NULL), AT_OK);
    ck_assert_float_eq(loss, eval);
    ck_assert_int_eq(at_model_grad(m, 0, &v), AT_OK);
    at_model_free(m);
}
END_TEST

START_TEST(finite_differences)
{
    at_model *m = small_model(17);
    ck_assert_int_eq(at_model_set(m, AT_P_DROPOUT, 0), AT_OK);
    ck_assert_int_eq(at_model_set(m, AT_P_ATTN_DROPOUT, 0), AT_OK);
    ck_assert_int_eq(at_model_set(m, AT_P_SMOOTHING, 0.1), AT_OK);
    ck_assert_int_eq(at_model_set(m, AT_P_LR, 0), AT_OK);   /* the step must not move */
    const int32_t src[2 * 5] = {1, 3, 4, 5, 6, 1, 3, 2, 0, 0};
    const int32_t tgt[2 * 6] = {1, 2, 5, 7, 8, 3, 1, 4, 4, 6, 0, 0};
    const int isrc[2 * 5] = {1, 3, 4, 5, 6, 1, 3, 2, 0, 0};
    const int itgt[2 * 6] = {1, 2, 5, 7, 8, 3, 1, 4, 4, 6, 0, 0};
    float loss, eval;
    ck_assert_int_eq(at_eval_loss(m, src, tgt, 2, 5, 6, 0, &eval, NULL), AT_OK);
    ck_assert_int_eq(at_train_step(m, src, tgt, 2, 5, 6, 0, &loss, NULL), AT_OK);

    int n = at_model_tensor_count(m);
    ref_model r = {.n = n, .d = 16, .heads = 2, .d_ff = 32, .layers = 2, .tgt_vocab = 9};
    r.names = calloc((size_t)n, sizeof *r.names);
    r.data = calloc((size_t)n, sizeof *r.data);
    size_t *sizes = calloc((size_t)n, sizeof *sizes);
    for (int i = 0; i < n; i++) {
        at_view v;
        ck_assert_int_eq(at_model_tensor(m, i, &r.names[i], &v), AT_OK);
        sizes[i] = (size_t)(v.shape[0] * v.shape[1] * v.shape[2] * v.shape[3]);
        r.data[i] = malloc(sizes[i] * sizeof(double));
        for (size_t k = 0; k < sizes[i]; k++)
            r.data[i][k] = v.data[k];
    }
    double ref = ref_loss(&r, isrc, itgt, 2, 5, 6, 0, 0.1);
    printf("finite differences: reference loss %.9f, libat %.9f (eval) %.9f (train)\n", ref,
           eval, loss);
    ck_assert(fabs(ref - eval) < 2e-6 && fabs(ref - loss) < 2e-6);

    int checked = 0, bad = 0;
    double worst = 0;
    const double h = 1e-5;
    for (int i = 0; i < n; i++) {
        if (!at_model_tensor_trainable(m, i))
            continue;
        at_view g;
        ck_assert_int_eq(at_model_grad(m, i, &g), AT_OK);
        size_t pick[3] = {0, sizes[i] / 2, sizes[i] - 1};
        for (int k = 0; k < 3; k++) {
            double *w = &r.data[i][pick[k]], orig = *w;
            *w = orig + h;
            double lp = ref_loss(&r, isrc, itgt, 2, 5, 6, 0, 0.1);
            *w = orig - h;
            double lm = ref_loss(&r, isrc, itgt, 2, 5, 6, 0, 0.1);
            *w = orig;
            double numeric = (lp - lm) / (2 * h), analytic = g.data[pick[k]];
            double err = fabs(numeric - analytic);
            if (err > 5e-6 + 1e-3 * fabs(numeric)) {
                bad++;
                printf("  %s[%zu]: analytic %.9g, numeric %.9g\n", r.names[i], pick[k],
                       analytic, numeric);
            }
            worst = err > worst ? err : worst;
            checked++;
        }
    }
    printf("finite differences: %d elements of every parameter tensor, largest |error| %.3g "
           "(atol 5e-6, rtol 1e-3)\n", checked, worst);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(checked, 3 * (n - 2));
    for (int i = 0; i < n; i++)
        free(r.data[i]);
    free(r.data);
    free(r.names);
    free(sizes);
    at_model_free(m);
}
END_TEST

START_TEST(train_bad_input)
{
    at_model *m = small_model(2);
    int32_t src[3] = {1, 2, 3}, tgt[3] = {1, 2, 3}, pads[3] = {1, 0, 0};
    float loss;
    int64_t nt;
    at_view v;
    ck_assert_int_eq(at_model_grad(m, 0, &v), AT_E_STATE);
    ck_assert_int_eq(at_train_step(NULL, src, tgt, 1, 3, 3, 0, &loss, &nt), AT_E_ARG);
    ck_assert_int_eq(at_train_step(m, NULL, tgt, 1, 3, 3, 0, &loss, &nt), AT_E_ARG);
    ck_assert_int_eq(at_train_step(m, src, NULL, 1, 3, 3, 0, &loss, &nt), AT_E_ARG);
    ck_assert_int_eq(at_train_step(m, src, tgt, 1, 3, 3, 0, NULL, &nt), AT_E_ARG);
    ck_assert_int_eq(at_train_step(m, src, tgt, 1, 3, 1, 0, &loss, &nt), AT_E_ARG);
    ck_assert_int_eq(at_train_step(m, src, tgt, 0, 3, 3, 0, &loss, &nt), AT_E_ARG);
    ck_assert_int_eq(at_train_step(m, src, tgt, 1, 0, 3, 0, &loss, &nt), AT_E_ARG);
    ck_assert_int_eq(at_train_step(m, src, tgt, 1, 3, 3, -1, &loss, &nt), AT_E_RANGE);
    ck_assert_int_eq(at_train_step(m, src, tgt, 1, 3, 3, 9, &loss, &nt), AT_E_RANGE);
    ck_assert_int_eq(at_train_step(m, src, pads, 1, 3, 3, 0, &loss, &nt), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "nothing to learn"));
    tgt[2] = 9;
    ck_assert_int_eq(at_train_step(m, src, tgt, 1, 3, 3, 0, &loss, &nt), AT_E_RANGE);
    ck_assert_int_eq(at_eval_loss(m, src, tgt, 1, 3, 3, 0, &loss, &nt), AT_E_RANGE);
    tgt[2] = 3;
    ck_assert_int_eq(at_train_step(m, src, tgt, 1, 66, 3, 0, &loss, &nt), AT_E_RANGE);
    ck_assert_uint_eq(at_model_steps(m), 0);   /* nothing failed half-way */
    ck_assert_int_eq(at_train_step(m, src, tgt, 1, 3, 3, 0, &loss, &nt), AT_OK);
    ck_assert_int_eq(nt, 2);
    ck_assert_int_eq(at_model_grad(m, -1, &v), AT_E_ARG);
    ck_assert_int_eq(at_model_grad(m, 94, &v), AT_E_ARG);
    ck_assert_int_eq(at_model_grad(m, 0, NULL), AT_E_ARG);
    ck_assert_int_eq(at_model_grad(NULL, 0, &v), AT_E_ARG);
    ck_assert_int_eq(at_model_set(m, AT_P_D_MODEL, 32), AT_E_ARG);
    ck_assert_int_eq(at_model_set(m, AT_P_LR, -1), AT_E_ARG);
    ck_assert_int_eq(at_model_set(m, (at_param)99, 1), AT_E_ARG);
    ck_assert_int_eq(at_model_set(NULL, AT_P_LR, 1), AT_E_ARG);
    ck_assert_int_eq(at_model_save_training(NULL, "x"), AT_E_ARG);
    ck_assert_int_eq(at_model_save_training(m, NULL), AT_E_ARG);
    ck_assert(at_noam_rate(-1, 512, 1, 400) == 0);
    ck_assert(at_noam_rate(1, 0, 1, 400) == 0);
    ck_assert(at_noam_rate(1, 512, 1, 0) == 0);
    ck_assert_uint_eq(at_model_steps(NULL), 0);
    float w[4] = {0};
    ck_assert_int_eq(at_model_tensor_write(m, 0, w, 4), AT_E_SHAPE);
    ck_assert_int_eq(at_model_tensor_write(m, 0, NULL, 4), AT_E_ARG);
    ck_assert_int_eq(at_model_tensor_write(m, 94, w, 4), AT_E_ARG);
    ck_assert_int_eq(at_model_tensor_write(NULL, 0, w, 4), AT_E_ARG);
    at_model_free(m);
}
END_TEST

/* A training checkpoint missing one moment, or without its step, is refused. */
START_TEST(corrupt_training_checkpoint)
{
    at_model *m = small_model(3);
    int32_t x[4] = {1, 2, 3, 4};
    float loss;
    ck_assert_int_eq(at_train_step(m, x, x, 1, 4, 4, 0, &loss, NULL), AT_OK);
    const char *path = tmp_path("t.safetensors");
    ck_assert_int_eq(at_model_save_training(m, path), AT_OK);
    st_file f;
    char err[256];
    ck_assert(st_read(&f, path, err, sizeof err) == AT_OK);
    st_out *outs = calloc((size_t)f.count, sizeof *outs);
    int n = 0;
    for (int i = 0; i < f.count; i++) {
        const st_tensor *t = &f.tensors[i];
        if (!strcmp(t->name, "adam.exp_avg_sq.generator.proj.bias"))
            continue;
        outs[n] = (st_out){.name = t->name, .dtype = t->dtype, .ndim = t->ndim,
                           .data = t->data};
        memcpy(outs[n].shape, t->shape, sizeof t->shape);
        n++;
    }
    const char *kv[] = {"heads", "2", "step", "1"};
    const char *dropped = tmp_path("dropped.safetensors");
    ck_assert(st_write(dropped, outs, n, kv, 2, err, sizeof err) == AT_OK);
    at_model *back = NULL;
    ck_assert_int_eq(at_model_load(dropped, NULL, &back), AT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "adam.exp_avg_sq.generator.proj.bias"));
    outs[n++] = (st_out){0};
    n--;
    ck_assert(st_write(dropped, outs, n, kv, 1, err, sizeof err) == AT_OK);   /* no step */
    ck_assert_int_eq(at_model_load(dropped, NULL, &back), AT_E_FORMAT);
    ck_assert_ptr_null(back);
    free(outs);
    st_free(&f);
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

Suite *suite_train(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, gradients_match_reference);
    tcase_add_test(tc, noam_matches_reference);
    suite_add_tcase(s, tc);
    tc = tcase_create("gradients");
    tcase_add_test(tc, finite_differences);
    suite_add_tcase(s, tc);
    tc = tcase_create("loop");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, small_model_learns_to_copy);
    tcase_add_test(tc, resume_is_exact);
    tcase_add_test(tc, dropout_behaves);
    suite_add_tcase(s, tc);
    tc = tcase_create("badinput");
    tcase_add_test(tc, train_bad_input);
    tcase_add_test(tc, eval_loss_needs_no_training_state);
    tcase_add_test(tc, corrupt_training_checkpoint);
    suite_add_tcase(s, tc);
    return s;
}
