/* Pruning curves (at_analysis.h, group "pruning"): at_prune_curve against
 * the same steps done by hand in the test (gates set here, the metric
 * called here); the gates the metric sees at each step; the caller's gates
 * put back after success, after a failing metric and after a metric that
 * changes gates itself; at_prune_order against a sort written here;
 * at_prune_shuffle against the generator as the header documents it;
 * at_metric_copy on targets built to give a known share; the re-estimated
 * curve against its steps (gradients, choice, metric) done by hand; bad
 * input. The
 * curve of `attn prune` against libat.prune is tests/python/test_prune.py. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "suites.h"
#include "testutil.h"

/* small_model: 2 layers, 2 heads, so 3 · 2 · 2 = 12 heads */
enum { LAYERS = 2, HEADS = 2, NH = 3 * LAYERS * HEADS };

static const int32_t src[2 * 5] = {1, 3, 4, 5, 6, 1, 3, 4, 0, 0};
static const int32_t tgt[2 * 4] = {1, 2, 3, 4, 1, 5, 6, 0};   /* full targets, T + 1 = 4 */

/* The metric of these tests: the batch's mean NLL, which every gate moves.
 * It also records the gates it saw and can fail or meddle on request. */
typedef struct probe {
    int calls;
    float seen[64][NH];   /* the gates at each call */
    int fail_at;          /* the call that fails (-1: none) */
    bool meddle;          /* set every gate to 0.25 after measuring */
} probe;

static void gates_of(at_model *m, float *g)
{
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < LAYERS; l++)
            for (int j = 0; j < HEADS; j++)
                ck_assert_int_eq(at_gate_get(m, k, l, j, &g[(k * LAYERS + l) * HEADS + j]),
                                 AT_OK);
}

static at_status nll_metric(at_model *m, void *user, double *value)
{
    probe *p = user;
    if (p->calls < 64)
        gates_of(m, p->seen[p->calls]);
    if (p->calls++ == p->fail_at) {
        at_eval_nll(m, src, tgt, 2, 5, 0, 0, value, NULL);   /* tgt_len 0: fails, says why */
        return AT_E_NUMERIC;
    }
    at_status s = at_eval_nll(m, src, tgt, 2, 5, 4, 0, value, NULL);
    if (p->meddle)
        at_gate_set(m, AT_ALL, AT_ALL, AT_ALL, 0.25f);
    return s;
}

static probe *new_probe(void)
{
    probe *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    p->fail_at = -1;
    return p;
}

/* The caller's gates of these tests: not all 1, so that "put back" means
 * something. */
static void caller_gates(at_model *m)
{
    ck_assert_int_eq(at_gate_set(m, AT_ALL, AT_ALL, AT_ALL, 1), AT_OK);
    ck_assert_int_eq(at_gate_set(m, AT_ATTN_CROSS, 1, 0, 0.5f), AT_OK);
    ck_assert_int_eq(at_gate_set(m, AT_ATTN_ENC_SELF, 0, 1, 2.0f), AT_OK);
}

static void expect_caller_gates(at_model *m)
{
    float g[NH];
    gates_of(m, g);
    for (int i = 0; i < NH; i++) {
        float want = i == (2 * LAYERS + 1) * HEADS + 0 ? 0.5f : (i == 1 ? 2.0f : 1.0f);
        ck_assert_msg(g[i] == want, "gate %d is %g, the caller had %g", i, (double)g[i],
                      (double)want);
    }
}

/* The metric by hand: the caller's gates, then the first n heads of order
 * at 0 (kind, layer, head decoded here from the index), then the NLL. */
static double by_hand(at_model *m, const int32_t *order, int n)
{
    caller_gates(m);
    for (int i = 0; i < n; i++) {
        int h = order[i];
        ck_assert_int_eq(at_gate_set(m, h / (LAYERS * HEADS), h / HEADS % LAYERS, h % HEADS, 0),
                         AT_OK);
    }
    double v;
    ck_assert_int_eq(at_eval_nll(m, src, tgt, 2, 5, 4, 0, &v, NULL), AT_OK);
    caller_gates(m);
    return v;
}

/* A fixed order: 7, 2, 11, 0, 5, 9, 1, 3, 10, 4, 8, 6. */
static const int32_t order12[NH] = {7, 2, 11, 0, 5, 9, 1, 3, 10, 4, 8, 6};
/* The heads removed at each point of 12 heads in 10 steps: round(1.2 k). */
static const int removed10[11] = {0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12};

START_TEST(curve_equals_the_steps_by_hand)
{
    at_model *m = small_model(3);
    /* steps and count, and the heads removed at each point, worked out by
     * hand: round(k · count / steps), halves up */
    static const struct {
        int count, steps, removed[11];
    } cases[] = {
        {12, 10, {0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12}},   /* 1.2k: 1.2, 2.4, 3.6, ... */
        {12, 8, {0, 2, 3, 5, 6, 8, 9, 11, 12}},           /* 1.5k: halves up */
        {5, 2, {0, 3, 5}},                                /* 2.5 up to 3 */
        {12, 1, {0, 12}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int count = cases[c].count, steps = cases[c].steps;
        probe *p = new_probe();
        double curve[11];
        caller_gates(m);
        ck_assert_int_eq(at_prune_curve(m, order12, count, steps, nll_metric, p, curve), AT_OK);
        ck_assert_int_eq(p->calls, steps + 1);
        expect_caller_gates(m);
        for (int k = 0; k <= steps; k++) {
            int n = cases[c].removed[k];
            /* the gates the metric saw: exactly the first n heads at 0 */
            float want[NH];
            caller_gates(m);
            gates_of(m, want);
            for (int i = 0; i < n; i++)
                want[order12[i]] = 0;
            for (int i = 0; i < NH; i++)
                ck_assert_msg(p->seen[k][i] == want[i], "case %zu point %d: gate %d is %g, "
                              "not %g", c, k, i, (double)p->seen[k][i], (double)want[i]);
            double hand = by_hand(m, order12, n);
            ck_assert_msg(curve[k] == hand, "case %zu point %d: %.17g, by hand %.17g", c, k,
                          curve[k], hand);
        }
        /* removing heads moves the NLL: the test's metric can tell points apart */
        ck_assert(curve[0] != curve[steps]);
        free(p);
    }
    /* at_prune_metric is one such point; count 0 is the model as it is */
    probe *p = new_probe();
    double v, v0;
    caller_gates(m);
    ck_assert_int_eq(at_prune_metric(m, order12 + 3, 4, nll_metric, p, &v), AT_OK);
    ck_assert_int_eq(at_prune_metric(m, NULL, 0, nll_metric, p, &v0), AT_OK);
    ck_assert_int_eq(p->calls, 2);
    expect_caller_gates(m);
    ck_assert(v == by_hand(m, order12 + 3, 4));
    ck_assert(v0 == by_hand(m, order12, 0));
    free(p);
    at_model_free(m);
}
END_TEST

START_TEST(gates_are_put_back)
{
    at_model *m = small_model(5);
    double curve[11] = {0};
    /* a metric that fails at its fourth call: AT_E_CALLBACK, the status and
     * the message it left in at_errmsg, the three points before it set */
    probe *p = new_probe();
    p->fail_at = 3;
    caller_gates(m);
    ck_assert_int_eq(at_prune_curve(m, order12, NH, 10, nll_metric, p, curve), AT_E_CALLBACK);
    const char *msg = at_errmsg(m);
    ck_assert_msg(strstr(msg, "at_prune_curve") && strstr(msg, "AT_E_NUMERIC") &&
                      strstr(msg, "4 heads removed") && strstr(msg, "at_eval_nll"),
                  "message: %s", msg);
    ck_assert_int_eq(p->calls, 4);
    expect_caller_gates(m);
    for (int k = 0; k < 3; k++)
        ck_assert(curve[k] == by_hand(m, order12, removed10[k]));
    /* a failing metric in at_prune_metric too */
    p->calls = 0;
    p->fail_at = 0;
    double v;
    ck_assert_int_eq(at_prune_metric(m, order12, 2, nll_metric, p, &v), AT_E_CALLBACK);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "at_prune_metric"));
    expect_caller_gates(m);
    /* a metric that sets gates itself changes neither the next point nor
     * what the caller gets back */
    probe *q = new_probe();
    q->meddle = true;
    double meddled[11];
    ck_assert_int_eq(at_prune_curve(m, order12, NH, 10, nll_metric, q, meddled), AT_OK);
    expect_caller_gates(m);
    probe *r = new_probe();
    ck_assert_int_eq(at_prune_curve(m, order12, NH, 10, nll_metric, r, curve), AT_OK);
    for (int k = 0; k <= 10; k++)
        ck_assert(meddled[k] == curve[k]);
    free(p);
    free(q);
    free(r);
    at_model_free(m);
}
END_TEST

START_TEST(order_by_score)
{
    at_model *m = small_model(1);
    /* ties (0.5 three times, 0 and -0 once each) keep the index order */
    float s[NH] = {0.5f, 0.1f, 0.5f, 3.0f, 0.0f, 0.25f, -0.0f, 0.5f, 2.0f, 1e-9f, 0.1f, 7.0f};
    int32_t got[NH], want[NH];
    ck_assert_int_eq(at_prune_order(m, s, got), AT_OK);
    /* insertion sort by (score, index) */
    for (int i = 0; i < NH; i++) {
        int j = i;
        while (j > 0 && (s[want[j - 1]] > s[i])) {
            want[j] = want[j - 1];
            j--;
        }
        want[j] = i;
    }
    for (int i = 0; i < NH; i++)
        ck_assert_msg(got[i] == want[i], "position %d: head %d, want %d", i, got[i], want[i]);
    ck_assert_int_eq(got[0], 4);   /* 0 before -0: they are equal, 4 < 6 */
    ck_assert_int_eq(got[1], 6);
    ck_assert_int_eq(got[11], 11);
    s[5] = NAN;
    ck_assert_int_eq(at_prune_order(m, s, got), AT_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "head 5 (dec_self, layer 0, head 1)"));
    at_model_free(m);
}
END_TEST

/* The generator as at_prune_shuffle's documentation gives it. */
static uint64_t next(uint64_t *state)
{
    *state += 0x9E3779B97F4A7C15ull;
    uint64_t z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

START_TEST(shuffle_as_documented)
{
    at_model *m = small_model(1);
    uint64_t seeds[] = {0, 1, 9, 0xFFFFFFFFFFFFFFFFull};
    int32_t first[NH];
    for (size_t t = 0; t < sizeof seeds / sizeof *seeds; t++) {
        int32_t got[NH], want[NH];
        memcpy(got, order12, sizeof got);
        memcpy(want, order12, sizeof want);
        ck_assert_int_eq(at_prune_shuffle(m, got, NH, seeds[t]), AT_OK);
        uint64_t state = seeds[t] ^ 0x70726E65ull;
        for (int i = NH - 1; i > 0; i--) {
            int j = (int)(next(&state) % (uint64_t)(i + 1));
            int32_t x = want[i];
            want[i] = want[j];
            want[j] = x;
        }
        ck_assert_mem_eq(got, want, sizeof got);
        if (t == 0)
            memcpy(first, got, sizeof first);
        else
            ck_assert(memcmp(first, got, sizeof got) != 0);   /* seeds differ */
    }
    int32_t one[1] = {4};
    ck_assert_int_eq(at_prune_shuffle(m, one, 1, 3), AT_OK);
    ck_assert_int_eq(one[0], 4);
    at_model_free(m);
}
END_TEST

START_TEST(copy_metric_counts_exact_rows)
{
    at_model *m = small_model(8);
    /* three rows; what greedy decoding gives for them (6 ids, start 1) */
    enum { B = 3, S = 5, T1 = 6 };
    const int32_t s3[B * S] = {1, 3, 4, 5, 6, 1, 6, 5, 0, 0, 1, 2, 2, 3, 0};
    int32_t ys[B * T1];
    int len;
    ck_assert_int_eq(at_greedy_decode(m, s3, B, S, 0, T1, 1, -1, ys, &len), AT_OK);
    ck_assert_int_eq(len, T1);
    /* targets: row 0 as decoded, row 1 with its last two labels pad (still
     * a copy), row 2 with one label changed (not a copy) */
    int32_t t3[B * T1];
    memcpy(t3, ys, sizeof t3);
    t3[1 * T1 + 4] = t3[1 * T1 + 5] = 0;
    t3[2 * T1 + 2] = t3[2 * T1 + 2] % 8 + 1;   /* another id, never the pad */
    at_copy_task task = {s3, t3, B, S, T1, 0};
    double v = -1;
    ck_assert_int_eq(at_metric_copy(m, &task, &v), AT_OK);
    ck_assert_double_eq(v, 2.0 / 3.0);
    /* a label of row 0 that decoding does not give: one copy left */
    t3[3] = t3[3] % 8 + 1;
    ck_assert_int_eq(at_metric_copy(m, &task, &v), AT_OK);
    ck_assert_double_eq(v, 1.0 / 3.0);
    /* as a pruning metric: the curve's ends are the metric of the model and
     * of the model with every gate at 0 */
    double curve[3], none;
    ck_assert_int_eq(at_prune_curve(m, order12, NH, 2, at_metric_copy, &task, curve), AT_OK);
    ck_assert_double_eq(curve[0], 1.0 / 3.0);
    for (int i = 0; i < NH; i++)
        ck_assert_int_eq(at_gate_set(m, i / 4, i / 2 % 2, i % 2, 0), AT_OK);
    ck_assert_int_eq(at_metric_copy(m, &task, &none), AT_OK);
    ck_assert_double_eq(curve[2], none);
    /* bad tasks */
    task.tgt_len = 1;
    ck_assert_int_eq(at_metric_copy(m, &task, &v), AT_E_ARG);
    task.tgt_len = T1;
    task.src = NULL;
    ck_assert_int_eq(at_metric_copy(m, &task, &v), AT_E_ARG);
    ck_assert_int_eq(at_metric_copy(m, NULL, &v), AT_E_ARG);
    task.src = s3;
    ck_assert_int_eq(at_metric_copy(m, &task, NULL), AT_E_ARG);
    ck_assert_int_eq(at_metric_copy(NULL, &task, &v), AT_E_ARG);
    at_model_free(m);
}
END_TEST

START_TEST(bad_input_gets_a_status)
{
    at_model *m = small_model(2);
    probe *p = new_probe();
    double curve[11];
    int n = 0;
    ck_assert_int_eq(at_head_count(m, &n), AT_OK);
    ck_assert_int_eq(n, NH);
    ck_assert_int_eq(at_head_count(NULL, &n), AT_E_ARG);
    ck_assert_int_eq(at_head_count(m, NULL), AT_E_ARG);
    caller_gates(m);
    int32_t o[NH];
    memcpy(o, order12, sizeof o);
    ck_assert_int_eq(at_prune_curve(NULL, o, NH, 10, nll_metric, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve(m, NULL, NH, 10, nll_metric, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve(m, o, NH, 10, NULL, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve(m, o, NH, 10, nll_metric, p, NULL), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve(m, o, NH, 0, nll_metric, p, curve), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "steps 0"));
    ck_assert_int_eq(at_prune_curve(m, o, NH, 10001, nll_metric, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve(m, o, 0, 10, nll_metric, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve(m, o, NH + 1, 10, nll_metric, p, curve), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "count 13"));
    o[4] = NH;   /* out of range */
    ck_assert_int_eq(at_prune_curve(m, o, NH, 10, nll_metric, p, curve), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "order[4] = 12"));
    o[4] = -1;
    ck_assert_int_eq(at_prune_curve(m, o, NH, 10, nll_metric, p, curve), AT_E_ARG);
    o[4] = o[2];   /* repeated */
    ck_assert_int_eq(at_prune_curve(m, o, NH, 10, nll_metric, p, curve), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "twice"));
    ck_assert_int_eq(at_prune_metric(m, o, NH, nll_metric, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_shuffle(m, o, NH, 1), AT_E_ARG);
    ck_assert_int_eq(at_prune_metric(m, order12, -1, nll_metric, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_metric(m, NULL, 2, nll_metric, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_metric(m, order12, 2, nll_metric, p, NULL), AT_E_ARG);
    ck_assert_int_eq(at_prune_metric(NULL, order12, 2, nll_metric, p, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_shuffle(m, NULL, NH, 1), AT_E_ARG);
    ck_assert_int_eq(at_prune_shuffle(m, o, 0, 1), AT_E_ARG);
    ck_assert_int_eq(at_prune_shuffle(NULL, o, NH, 1), AT_E_ARG);
    float s[NH] = {0};
    ck_assert_int_eq(at_prune_order(m, NULL, o), AT_E_ARG);
    ck_assert_int_eq(at_prune_order(m, s, NULL), AT_E_ARG);
    ck_assert_int_eq(at_prune_order(NULL, s, o), AT_E_ARG);
    /* refused calls neither measure nor touch the gates */
    ck_assert_int_eq(p->calls, 0);
    expect_caller_gates(m);
    free(p);
    at_model_free(m);
}
END_TEST

START_TEST(reestimated_equals_the_steps_by_hand)
{
    at_model *m = small_model(6);
    probe *p = new_probe();
    int32_t order[NH];
    double curve[11];
    caller_gates(m);
    ck_assert_int_eq(at_prune_curve_reestimated(m, src, tgt, 2, 5, 4, 0, 10, nll_metric, p,
                                                order, curve), AT_OK);
    ck_assert_int_eq(p->calls, 11);
    expect_caller_gates(m);
    /* by hand: before each point, |dL/dxi| at that point's predecessor's
     * gates, and the smallest of the heads left (the first of equal ones) */
    int32_t hand[NH];
    bool gone[NH] = {false};
    int placed = 0;
    for (int k = 0; k <= 10; k++) {
        if (removed10[k] > placed) {
            caller_gates(m);
            for (int i = 0; i < placed; i++)
                ck_assert_int_eq(at_gate_set(m, hand[i] / 4, hand[i] / 2 % 2, hand[i] % 2, 0),
                                 AT_OK);
            float g[NH];
            ck_assert_int_eq(at_gate_gradients(m, src, tgt, 2, 5, 4, 0, NULL, g), AT_OK);
            for (; placed < removed10[k]; placed++) {
                int best = -1;
                for (int i = 0; i < NH; i++)
                    if (!gone[i] && (best < 0 || fabsf(g[i]) < fabsf(g[best])))
                        best = i;
                hand[placed] = best;
                gone[best] = true;
            }
        }
        double v = by_hand(m, hand, removed10[k]);
        ck_assert_msg(curve[k] == v, "point %d: %.17g, by hand %.17g", k, curve[k], v);
    }
    for (int i = 0; i < NH; i++)
        ck_assert_msg(order[i] == hand[i], "order[%d] = %d, by hand %d", i, order[i], hand[i]);
    /* the first head is the once-estimated order's first */
    float g[NH];
    int32_t once[NH];
    caller_gates(m);
    ck_assert_int_eq(at_gate_gradients(m, src, tgt, 2, 5, 4, 0, NULL, g), AT_OK);
    for (int i = 0; i < NH; i++)
        g[i] = fabsf(g[i]);
    ck_assert_int_eq(at_prune_order(m, g, once), AT_OK);
    ck_assert_int_eq(order[0], once[0]);
    /* failures: the metric's, the gradients', bad arguments; the gates come back */
    p->calls = 0;
    p->fail_at = 5;
    ck_assert_int_eq(at_prune_curve_reestimated(m, src, tgt, 2, 5, 4, 0, 10, nll_metric, p,
                                                order, curve), AT_E_CALLBACK);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "at_prune_curve_reestimated"));
    expect_caller_gates(m);
    p->fail_at = -1;
    ck_assert_int_eq(at_prune_curve_reestimated(m, src, tgt, 2, 5, 1, 0, 10, nll_metric, p,
                                                order, curve), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "at_gate_gradients"));
    expect_caller_gates(m);
    ck_assert_int_eq(at_prune_curve_reestimated(m, NULL, tgt, 2, 5, 4, 0, 10, nll_metric, p,
                                                order, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve_reestimated(m, src, tgt, 2, 5, 4, 0, 0, nll_metric, p,
                                                order, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve_reestimated(m, src, tgt, 2, 5, 4, 0, 10, NULL, p, order,
                                                curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve_reestimated(m, src, tgt, 2, 5, 4, 0, 10, nll_metric, p,
                                                NULL, curve), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve_reestimated(m, src, tgt, 2, 5, 4, 0, 10, nll_metric, p,
                                                order, NULL), AT_E_ARG);
    ck_assert_int_eq(at_prune_curve_reestimated(NULL, src, tgt, 2, 5, 4, 0, 10, nll_metric, p,
                                                order, curve), AT_E_ARG);
    expect_caller_gates(m);
    free(p);
    at_model_free(m);
}
END_TEST

Suite *suite_prune(void)
{
    Suite *s = suite_create("prune");
    TCase *t = tcase_create("prune");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, curve_equals_the_steps_by_hand);
    tcase_add_test(t, gates_are_put_back);
    tcase_add_test(t, order_by_score);
    tcase_add_test(t, shuffle_as_documented);
    tcase_add_test(t, copy_metric_counts_exact_rows);
    tcase_add_test(t, reestimated_equals_the_steps_by_hand);
    tcase_add_test(t, bad_input_gets_a_status);
    suite_add_tcase(s, t);
    return s;
}
