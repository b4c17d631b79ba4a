/* at_train_step_reduce without MPI: participants are handles in threads of
 * one process, their allreduce a sum between them behind a barrier. Shards of
 * a batch trained this way give the model one handle gets from the whole
 * batch by at_train_step (dropout on: a row's masks follow its global index);
 * one participant gives it bit for bit; a participant that fails makes every
 * one fail instead of waiting. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

enum { B = 8, L = 7, V = 11, STEPS = 4, PARTS = 2 };

/* ---- the participants' allreduce: a sum over threads ---- */

typedef struct hub {
    pthread_barrier_t bar;
    void *slot[PARTS];
    int calls[PARTS];             /* reductions made by each participant */
    size_t floats[PARTS];         /* floats summed by each participant in all */
} hub;

typedef struct member {
    hub *h;
    int rank;
} member;

/* Each participant sums every slot in rank order (so all get the same
 * bits), into its own copy, and only then, once everyone has read, writes
 * its data. */
static at_status sum_over_threads(void *user, void *data, size_t count, at_reduce_type type)
{
    member *me = user;
    hub *h = me->h;
    size_t size = type == AT_REDUCE_FLOAT ? sizeof(float) : sizeof(double);
    void *sum = malloc(count * size);
    if (!sum)
        return AT_E_NOMEM;
    h->slot[me->rank] = data;
    pthread_barrier_wait(&h->bar);
    for (size_t i = 0; i < count; i++) {
        double acc_d = 0;
        float acc_f = 0;
        for (int r = 0; r < PARTS; r++) {
            if (type == AT_REDUCE_FLOAT)
                acc_f = r ? acc_f + ((float *)h->slot[r])[i] : ((float *)h->slot[r])[i];
            else
                acc_d = r ? acc_d + ((double *)h->slot[r])[i] : ((double *)h->slot[r])[i];
        }
        if (type == AT_REDUCE_FLOAT)
            ((float *)sum)[i] = acc_f;
        else
            ((double *)sum)[i] = acc_d;
    }
    pthread_barrier_wait(&h->bar);
    memcpy(data, sum, count * size);
    free(sum);
    h->calls[me->rank]++;
    h->floats[me->rank] += type == AT_REDUCE_FLOAT ? count : 0;
    return AT_OK;
}

/* One participant: the identity, counting its calls. */
static at_status identity(void *user, void *data, size_t count, at_reduce_type type)
{
    (void)data;
    int *calls = user;
    calls[0]++;
    calls[1] += type == AT_REDUCE_FLOAT ? (int)count : 0;
    return AT_OK;
}

/* ---- data and models ---- */

static int draw(uint64_t *lcg, int n)
{
    *lcg = *lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((*lcg >> 33) % (uint64_t)n);
}

/* Copy-task rows (start symbol 1, ids in 1..V−1) whose tails are padded to
 * different lengths, so the shards' label counts differ; every participant
 * (thread) draws the whole batch of a step alike. */
static void batch_of(int32_t *x, int step)
{
    uint64_t lcg = 1000u + (uint64_t)step;
    for (int r = 0; r < B; r++) {
        int len = L - r % 3;
        for (int i = 0; i < L; i++)
            x[r * L + i] = i == 0 ? 1 : i < len ? 1 + draw(&lcg, V - 1) : 0;
    }
}

static at_model *model(void)
{
    at_config *cfg;
    ck_assert_int_eq(at_config_create(&cfg), AT_OK);
    const double v[][2] = {{AT_P_SRC_VOCAB, V}, {AT_P_TGT_VOCAB, V}, {AT_P_LAYERS, 2},
                           {AT_P_D_MODEL, 16}, {AT_P_HEADS, 2}, {AT_P_D_FF, 32},
                           {AT_P_MAX_LEN, 16}, {AT_P_LR, 1.0}, {AT_P_WARMUP, 10},
                           {AT_P_DROPOUT, 0.1}, {AT_P_ATTN_DROPOUT, 0.1},
                           {AT_P_SMOOTHING, 0.1}, {AT_P_SEED, 3}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(at_config_set(cfg, (at_param)v[i][0], v[i][1]), AT_OK);
    at_model *m;
    ck_assert_int_eq(at_model_create(cfg, &m), AT_OK);
    at_config_free(cfg);
    return m;
}

static size_t numel(const at_view *v)
{
    size_t n = 1;
    for (int i = 0; i < v->ndim; i++)
        n *= (size_t)v->shape[i];
    return n;
}

/* The largest |a − b| over every tensor of two models of one shape. */
static double max_diff(at_model *a, at_model *b)
{
    double most = 0;
    for (int i = 0; i < at_model_tensor_count(a); i++) {
        at_view x, y;
        ck_assert_int_eq(at_model_tensor(a, i, NULL, &x), AT_OK);
        ck_assert_int_eq(at_model_tensor(b, i, NULL, &y), AT_OK);
        for (size_t k = 0; k < numel(&x); k++)
            most = fmax(most, fabs((double)x.data[k] - (double)y.data[k]));
    }
    return most;
}

static size_t trainable_floats(at_model *m)
{
    size_t n = 0;
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        at_view v;
        ck_assert_int_eq(at_model_tensor(m, i, NULL, &v), AT_OK);
        n += at_model_tensor_trainable(m, i) == 1 ? numel(&v) : 0;
    }
    return n;
}

/* ---- one participant ---- */

START_TEST(one_participant_is_train_step)
{
    at_model *plain = model(), *reduced = model();
    int32_t x[B * L];
    int calls[2] = {0, 0};
    for (int s = 0; s < STEPS; s++) {
        float l1, l2;
        int64_t n1, n2;
        batch_of(x, s);
        ck_assert_int_eq(at_train_step(plain, x, x, B, L, L, 0, &l1, &n1), AT_OK);
        ck_assert_msg(at_train_step_reduce(reduced, x, x, B, L, L, 0, 0, identity, calls, &l2,
                                           &n2) == AT_OK, "%s", at_errmsg(reduced));
        ck_assert(l1 == l2);
        ck_assert_int_eq(n1, n2);
    }
    ck_assert(max_diff(plain, reduced) == 0);
    ck_assert_uint_eq(at_model_steps(reduced), STEPS);
    /* three reductions a step; the gradients are every trainable float */
    ck_assert_int_eq(calls[0], 3 * STEPS);
    ck_assert_int_eq((size_t)calls[1], STEPS * trainable_floats(reduced));
    at_model_free(plain);
    at_model_free(reduced);
}
END_TEST

/* ---- participants in threads ---- */

typedef struct part {
    member me;
    at_model *m;
    int rows, offset;             /* this shard: rows offset .. offset + rows − 1 */
    bool corrupt;                 /* an id outside the vocabulary at step 1 */
    at_status status[STEPS];
    float loss[STEPS];
    int64_t ntokens[STEPS];
} part;

static void *train_part(void *arg)
{
    part *p = arg;
    int32_t x[B * L];
    for (int s = 0; s < STEPS; s++) {
        batch_of(x, s);
        int32_t *rows = x + (size_t)p->offset * L;
        if (p->corrupt && s == 1)
            rows[1] = V;
        p->status[s] = at_train_step_reduce(p->m, p->rows ? rows : NULL, rows, p->rows, L, L, 0,
                                            p->offset, sum_over_threads, &p->me, &p->loss[s],
                                            &p->ntokens[s]);
    }
    return NULL;
}

/* Trains PARTS participants on shards of rows[0], rows[1], ... rows. */
static void run_parts(part *parts, hub *h, const int *rows, int corrupt)
{
    pthread_t th[PARTS];
    memset(h, 0, sizeof *h);
    ck_assert_int_eq(pthread_barrier_init(&h->bar, NULL, PARTS), 0);
    for (int r = 0, offset = 0; r < PARTS; offset += rows[r++]) {
        parts[r] = (part){.me = {h, r}, .m = model(), .rows = rows[r], .offset = offset,
                          .corrupt = r == corrupt};
        ck_assert_int_eq(pthread_create(&th[r], NULL, train_part, &parts[r]), 0);
    }
    for (int r = 0; r < PARTS; r++)
        ck_assert_int_eq(pthread_join(th[r], NULL), 0);
    pthread_barrier_destroy(&h->bar);
}

/* Shards of 3 and 5 rows, of 8 and none, against the whole batch: the same
 * losses and label counts, parameters within 1e-6 after four steps, the same
 * parameters on every participant. */
START_TEST(shards_equal_the_whole_batch)
{
    static const int splits[][PARTS] = {{3, 5}, {0, 8}, {4, 4}};
    at_model *whole = model();
    float loss[STEPS];
    int64_t nt[STEPS];
    int32_t x[B * L];
    for (int s = 0; s < STEPS; s++) {
        batch_of(x, s);
        ck_assert_int_eq(at_train_step(whole, x, x, B, L, L, 0, &loss[s], &nt[s]), AT_OK);
    }
    for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
        part parts[PARTS];
        hub h;
        run_parts(parts, &h, splits[k], -1);
        for (int r = 0; r < PARTS; r++) {
            for (int s = 0; s < STEPS; s++) {
                ck_assert_msg(parts[r].status[s] == AT_OK, "%s", at_errmsg(parts[r].m));
                ck_assert_int_eq(parts[r].ntokens[s], nt[s]);
                ck_assert_float_eq_tol(parts[r].loss[s], loss[s], 1e-6f);
            }
            ck_assert_int_eq(h.calls[r], 3 * STEPS);
        }
        double d = max_diff(whole, parts[0].m);
        printf("reduce: shards %d + %d vs the whole batch after %d steps: max |difference| "
               "%.3g\n", splits[k][0], splits[k][1], STEPS, d);
        ck_assert(d <= 1e-6);
        ck_assert(max_diff(parts[0].m, parts[1].m) == 0);
        for (int r = 0; r < PARTS; r++)
            at_model_free(parts[r].m);
    }
    at_model_free(whole);
}
END_TEST

/* A participant's bad id at step 1: it fails with AT_E_RANGE, the other with
 * AT_E_STATE, neither waits, and neither takes that step; the next steps go
 * on together. */
START_TEST(a_failing_participant_fails_every_one)
{
    static const int rows[PARTS] = {4, 4};
    part parts[PARTS];
    hub h;
    run_parts(parts, &h, rows, 1);
    ck_assert_int_eq(parts[1].status[1], AT_E_RANGE);
    ck_assert_int_eq(parts[0].status[1], AT_E_STATE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(parts[0].m), "another participant"));
    for (int r = 0; r < PARTS; r++) {
        ck_assert_int_eq(parts[r].status[0], AT_OK);
        ck_assert_int_eq(parts[r].status[2], AT_OK);
        ck_assert_uint_eq(at_model_steps(parts[r].m), STEPS - 1);
        /* the failed step made one reduction */
        ck_assert_int_eq(h.calls[r], 3 * (STEPS - 1) + 1);
    }
    ck_assert(max_diff(parts[0].m, parts[1].m) == 0);
    for (int r = 0; r < PARTS; r++)
        at_model_free(parts[r].m);
}
END_TEST

START_TEST(reduce_arguments)
{
    at_model *m = model();
    int32_t x[B * L];
    int calls[2] = {0, 0};
    float loss;
    batch_of(x, 0);
    ck_assert_int_eq(at_train_step_reduce(NULL, x, x, B, L, L, 0, 0, identity, calls, &loss,
                                          NULL), AT_E_ARG);
    ck_assert_int_eq(at_train_step_reduce(m, x, x, B, L, L, 0, 0, NULL, NULL, &loss, NULL),
                     AT_E_ARG);
    ck_assert_int_eq(at_train_step_reduce(m, x, x, B, L, L, 0, -1, identity, calls, &loss,
                                          NULL), AT_E_ARG);
    ck_assert_int_eq(at_train_step_reduce(m, x, x, -1, L, L, 0, 0, identity, calls, &loss,
                                          NULL), AT_E_ARG);
    /* no rows, but a target too short and a pad outside the vocabulary */
    ck_assert_int_eq(at_train_step_reduce(m, NULL, NULL, 0, L, 1, 0, 0, identity, calls,
                                          &loss, NULL), AT_E_ARG);
    ck_assert_int_eq(at_train_step_reduce(m, NULL, NULL, 0, L, L, V, 0, identity, calls,
                                          &loss, NULL), AT_E_RANGE);
    /* alone with no rows: no label anywhere */
    ck_assert_int_eq(at_train_step_reduce(m, NULL, NULL, 0, L, L, 0, 0, identity, calls,
                                          &loss, NULL), AT_E_ARG);
    ck_assert_uint_eq(at_model_steps(m), 0);
    at_model_free(m);
}
END_TEST

Suite *suite_reduce(void)
{
    Suite *s = suite_create("reduce");
    TCase *tc = tcase_create("reduce");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, one_participant_is_train_step);
    tcase_add_test(tc, shards_equal_the_whole_batch);
    tcase_add_test(tc, a_failing_participant_fails_every_one);
    tcase_add_test(tc, reduce_arguments);
    suite_add_tcase(s, tc);
    return s;
}
