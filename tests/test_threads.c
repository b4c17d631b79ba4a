/* Many threads, one set of weights: handles made by at_model_share run at the
 * same time and give what one thread gives. */
#define _GNU_SOURCE /* sched_setaffinity */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

enum { THREADS = 4, PASSES = 400, B = 2, S = 7, T = 6, V = 9 };   /* 100 per thread */

static int32_t src_of(int pass, int i) { return 1 + (pass * 7 + i * 3) % 6; }
static int32_t tgt_of(int pass, int i) { return 1 + (pass * 5 + i) % 8; }

typedef struct job {
    at_model *m;
    int first;            /* passes first, first + THREADS, … */
    float *logp;          /* PASSES × B·T·V, filled for this thread's passes */
    at_status status;
} job;

static at_status one_pass(at_model *m, int pass, float *out)
{
    int32_t src[B * S], tgt[B * T];
    for (int i = 0; i < B * S; i++)
        src[i] = src_of(pass, i);
    for (int i = 0; i < B * T; i++)
        tgt[i] = tgt_of(pass, i);
    at_status s = at_forward(m, src, tgt, B, S, T, 0);
    at_view v;
    if (s == AT_OK)
        s = at_get_output(m, AT_OUT_LOGPROBS, 0, &v);
    if (s == AT_OK)
        memcpy(out, v.data, sizeof(float) * B * T * V);
    return s;
}

static void *run(void *arg)
{
    job *j = arg;
    for (int pass = j->first; pass < PASSES && j->status == AT_OK; pass += THREADS)
        j->status = one_pass(j->m, pass, j->logp + (size_t)pass * B * T * V);
    return NULL;
}

START_TEST(shared_handles_in_threads)
{
    at_model *base = small_model(13);
    size_t each = (size_t)B * T * V;
    float *alone = malloc(PASSES * each * sizeof(float));
    float *together = calloc(PASSES * each, sizeof(float));
    for (int pass = 0; pass < PASSES; pass++)
        ck_assert_int_eq(one_pass(base, pass, alone + pass * each), AT_OK);

    pthread_t tid[THREADS];
    job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (job){.first = t, .logp = together, .status = AT_OK};
        ck_assert_int_eq(at_model_share(base, &jobs[t].m), AT_OK);
        ck_assert_int_eq(pthread_create(&tid[t], NULL, run, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        ck_assert_int_eq(pthread_join(tid[t], NULL), 0);
        ck_assert_int_eq(jobs[t].status, AT_OK);
    }
    ck_assert_msg(!memcmp(alone, together, PASSES * each * sizeof(float)),
                  "4 threads on shared weights differ from one thread");
    printf("threads: %d handles x %d passes equal one thread bit for bit\n", THREADS,
           PASSES / THREADS);

    /* shared weights cannot change; the base's views are its own */
    int32_t x[4] = {1, 2, 3, 4};
    float loss;
    ck_assert_int_eq(at_train_step(base, x, x, 1, 4, 4, 0, &loss, NULL), AT_E_STATE);
    ck_assert_int_eq(at_train_step(jobs[0].m, x, x, 1, 4, 4, 0, &loss, NULL), AT_E_STATE);
    float w[16 * 16] = {0};
    ck_assert_int_eq(at_model_tensor_write(jobs[1].m, 0, w, 256), AT_E_STATE);
    ck_assert_int_eq(at_model_set(jobs[1].m, AT_P_PACKED, 0), AT_E_STATE);
    ck_assert_int_eq(at_model_set(jobs[1].m, AT_P_DROPOUT, 0.2), AT_OK);   /* its own */
    at_view v;
    ck_assert_int_eq(at_get_output(base, AT_OUT_LOGPROBS, 0, &v), AT_OK);
    ck_assert_mem_eq(v.data, alone + (PASSES - 1) * each, each * sizeof(float));

    /* freed in any order: the base first, the shares keep the weights */
    at_model_free(base);
    ck_assert_int_eq(one_pass(jobs[2].m, 0, together), AT_OK);
    ck_assert_mem_eq(together, alone, each * sizeof(float));
    for (int t = 0; t < THREADS - 1; t++)
        at_model_free(jobs[t].m);
    /* the last handle owns the weights alone and may train */
    ck_assert_int_eq(at_train_step(jobs[THREADS - 1].m, x, x, 1, 4, 4, 0, &loss, NULL), AT_OK);
    at_model_free(jobs[THREADS - 1].m);
    free(alone);
    free(together);
}
END_TEST

START_TEST(share_bad_input)
{
    at_model *m = small_model(1), *s = (at_model *)1;
    ck_assert_int_eq(at_model_share(NULL, &s), AT_E_ARG);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(at_model_share(m, NULL), AT_E_ARG);
    at_model_free(m);
}
END_TEST

/* The default thread count is the cores the process may run on, not every
 * core online: a process pinned to one core (taskset, a cpuset, mpirun's
 * binding) runs one thread. The test pins itself to its first allowed core,
 * reads the default, and restores its mask. */
START_TEST(default_threads_follow_affinity)
{
    cpu_set_t all, one;
    ck_assert_int_eq(sched_getaffinity(0, sizeof all, &all), 0);
    ck_assert_int_eq(at_set_threads(0), AT_OK);
    int n = CPU_COUNT(&all);
    ck_assert_int_eq(at_get_threads(), n < 64 ? n : 64); /* the pool holds at most 64 */
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all)) {
            CPU_SET(c, &one);
            break;
        }
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    int pinned = at_get_threads();
    ck_assert_int_eq(sched_setaffinity(0, sizeof all, &all), 0);
    ck_assert_int_eq(pinned, 1);
}
END_TEST

Suite *suite_threads(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("share");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, shared_handles_in_threads);
    tcase_add_test(tc, share_bad_input);
    tcase_add_test(tc, default_threads_follow_affinity);
    suite_add_tcase(s, tc);
    return s;
}
