/* Pruning curves (Michel et al. 2019, §4): heads removed through their
 * gates in an order, a metric of the host's measured after each step, and
 * the orders themselves (by importance, shuffled) and the copy task's
 * metric. Only the public gates and passes are used; the caller's gates
 * are saved first and put back on every path out. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "model/internal.h"

static const char *const kinds[3] = {"enc_self", "dec_self", "cross"};

static int head_total(const at_model *m)
{
    return 3 * m->dm.layers * m->dm.heads;
}

at_status at_head_count(const at_model *m, int *out)
{
    if (!m)
        return set_error(NULL, AT_E_ARG, "at_head_count: model is NULL");
    if (!out)
        return set_error((at_model *)m, AT_E_ARG, "at_head_count: out is NULL");
    *out = head_total(m);
    return AT_OK;
}

/* Every index of order[0 .. count) a head, none twice. */
static at_status check_order(at_model *m, const int32_t *order, int count, int lo,
                             const char *who)
{
    int n = head_total(m);
    if (count < lo || count > n)
        return set_error(m, AT_E_ARG, "%s: count %d is outside [%d, %d] (the model's heads)",
                         who, count, lo, n);
    if (count > 0 && !order)
        return set_error(m, AT_E_ARG, "%s: the order is NULL", who);
    bool *seen = calloc((size_t)n, sizeof *seen);
    if (!seen)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    at_status s = AT_OK;
    for (int i = 0; s == AT_OK && i < count; i++) {
        int32_t h = order[i];
        if (h < 0 || h >= n)
            s = set_error(m, AT_E_ARG, "%s: order[%d] = %d is not a head index (0 .. %d)", who,
                          i, (int)h, n - 1);
        else if (seen[h])
            s = set_error(m, AT_E_ARG, "%s: head %d is in the order twice (order[%d])", who,
                          (int)h, i);
        else
            seen[h] = true;
    }
    free(seen);
    return s;
}

/* ---- the orders ---- */

typedef struct scored {
    float score;
    int32_t head;
} scored;

/* Ascending score, equal ones by index: the same order on every machine. */
static int by_score(const void *pa, const void *pb)
{
    const scored *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score < b->score ? -1 : 1;
    return (a->head > b->head) - (a->head < b->head);
}

static at_status prune_order(at_model *m, const float *scores, int32_t *order)
{
    const char *who = "at_prune_order";
    if (!scores || !order)
        return set_error(m, AT_E_ARG, "%s: scores and order must not be NULL", who);
    int n = head_total(m);
    for (int i = 0; i < n; i++)
        if (scores[i] != scores[i])
            return set_error(m, AT_E_NUMERIC, "%s: the score of head %d (%s, layer %d, head "
                             "%d) is NaN", who, i, kinds[i / (n / 3)],
                             i / m->dm.heads % m->dm.layers, i % m->dm.heads);
    scored *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    for (int i = 0; i < n; i++)
        v[i] = (scored){scores[i], i};
    qsort(v, (size_t)n, sizeof *v, by_score);
    for (int i = 0; i < n; i++)
        order[i] = v[i].head;
    free(v);
    return AT_OK;
}

at_status at_prune_order(at_model *m, const float *scores, int32_t *order)
{
    GUARDED(m, "at_prune_order", prune_order(m, scores, order));
}

/* splitmix64 (Steele, Lea & Flood 2014): the same stream on every machine. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static at_status prune_shuffle(at_model *m, int32_t *order, int count, uint64_t seed)
{
    at_status s = check_order(m, order, count, 1, "at_prune_shuffle");
    if (s != AT_OK)
        return s;
    uint64_t state = seed ^ 0x70726e65u;   /* "prne": apart from the other streams */
    for (int i = count - 1; i > 0; i--) {
        int j = (int)(splitmix64(&state) % (uint64_t)(i + 1));
        int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return AT_OK;
}

at_status at_prune_shuffle(at_model *m, int32_t *order, int count, uint64_t seed)
{
    GUARDED(m, "at_prune_shuffle", prune_shuffle(m, order, count, seed));
}

/* ---- the curves ---- */

/* The caller's gates, by head index. */
static at_status gates_save(at_model *m, float *g)
{
    int L = m->dm.layers, h = m->dm.heads;
    for (int i = 0; i < head_total(m); i++) {
        at_status s = at_gate_get(m, (at_attn_kind)(i / (L * h)), i / h % L, i % h, &g[i]);
        if (s != AT_OK)
            return s;
    }
    return AT_OK;
}

/* The saved gates, except the first n heads of order at 0. */
static at_status gates_apply(at_model *m, const float *saved, const int32_t *order, int n)
{
    int L = m->dm.layers, h = m->dm.heads;
    at_status s = AT_OK;
    for (int i = 0; s == AT_OK && i < head_total(m); i++)
        s = at_gate_set(m, i / (L * h), i / h % L, i % h, saved[i]);
    for (int i = 0; s == AT_OK && i < n; i++)
        s = at_gate_set(m, order[i] / (L * h), order[i] / h % L, order[i] % h, 0);
    return s;
}

/* The saved gates back whatever happened before (status s), the first
 * failure's message kept. */
static at_status gates_restore(at_model *m, const float *saved, at_status s)
{
    char msg[AT_ERR_MAX];
    memcpy(msg, m->err, sizeof msg);
    at_status back = gates_apply(m, saved, NULL, 0);
    if (s != AT_OK)
        memcpy(m->err, msg, sizeof msg);
    return s != AT_OK ? s : back;
}

/* One measurement with the first n heads of order removed. The handle's
 * message is cleared first, so that what a failing metric leaves there is
 * its own. */
static at_status measure(at_model *m, const float *saved, const int32_t *order, int n,
                         at_metric_fn metric, void *user, double *out, const char *who)
{
    at_status s = gates_apply(m, saved, order, n);
    if (s != AT_OK)
        return s;
    m->err[0] = '\0';
    s = metric(m, user, out);
    if (s == AT_OK)
        return AT_OK;
    char why[AT_ERR_MAX];
    snprintf(why, sizeof why, "%s", at_errmsg(m));
    return set_error(m, AT_E_CALLBACK, "%s: the metric returned %s with %d head%s removed%s%.400s",
                     who, at_status_string(s), n, n == 1 ? "" : "s", why[0] ? ": " : "", why);
}

/* The metric at each of points, the first removed[p] heads of order gone,
 * between one save and one restore of the caller's gates. */
static at_status run_points(at_model *m, const int32_t *order, const int *removed, int points,
                            at_metric_fn metric, void *user, double *out, const char *who)
{
    float *saved = malloc((size_t)head_total(m) * sizeof *saved);
    if (!saved)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    at_status s = gates_save(m, saved);
    if (s == AT_OK) {
        for (int p = 0; s == AT_OK && p < points; p++)
            s = measure(m, saved, order, removed[p], metric, user, &out[p], who);
        s = gates_restore(m, saved, s);
    }
    free(saved);
    return s;
}

static at_status prune_metric(at_model *m, const int32_t *heads, int count, at_metric_fn metric,
                              void *user, double *value)
{
    const char *who = "at_prune_metric";
    if (!metric || !value)
        return set_error(m, AT_E_ARG, "%s: metric and value must not be NULL", who);
    at_status s = check_order(m, heads, count, 0, who);
    return s == AT_OK ? run_points(m, heads, &count, 1, metric, user, value, who) : s;
}

at_status at_prune_metric(at_model *m, const int32_t *heads, int count, at_metric_fn metric,
                          void *user, double *value)
{
    GUARDED(m, "at_prune_metric", prune_metric(m, heads, count, metric, user, value));
}

/* r_k = round(k · count / steps), halves up, for k = 0 .. steps (malloc'd). */
static int *removed_counts(at_model *m, int count, int steps, const char *who)
{
    int *r = malloc((size_t)(steps + 1) * sizeof *r);
    if (!r) {
        set_error(m, AT_E_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    for (int k = 0; k <= steps; k++)
        r[k] = (int)((2 * (int64_t)k * count + steps) / (2 * (int64_t)steps));
    return r;
}

static at_status prune_curve(at_model *m, const int32_t *order, int count, int steps,
                             at_metric_fn metric, void *user, double *curve)
{
    const char *who = "at_prune_curve";
    if (!metric || !curve)
        return set_error(m, AT_E_ARG, "%s: metric and curve must not be NULL", who);
    if (steps < 1 || steps > 10000)
        return set_error(m, AT_E_ARG, "%s: steps %d is outside [1, 10000]", who, steps);
    at_status s = check_order(m, order, count, 1, who);
    if (s != AT_OK)
        return s;
    int *removed = removed_counts(m, count, steps, who);
    if (!removed)
        return AT_E_NOMEM;
    s = run_points(m, order, removed, steps + 1, metric, user, curve, who);
    free(removed);
    return s;
}

at_status at_prune_curve(at_model *m, const int32_t *order, int count, int steps,
                         at_metric_fn metric, void *user, double *curve)
{
    GUARDED(m, "at_prune_curve", prune_curve(m, order, count, steps, metric, user, curve));
}

/* ---- re-estimated importance ---- */

typedef struct reest {
    const int32_t *src, *tgt;   /* the gradients' batch */
    int B, S, Tf;
    int32_t pad;
    float *saved, *g;           /* the caller's gates; |dL/dxi| */
    bool *gone;                 /* heads in order[0 .. placed) */
    scored *left;               /* the heads not gone, by |dL/dxi| */
} reest;

/* Appends to order[placed ..] the `more` heads not yet in it with the
 * smallest |dL/dxi| at the gates with order[0 .. placed) removed. */
static at_status append_least(at_model *m, reest *r, int32_t *order, int placed, int more,
                              const char *who)
{
    at_status s = gates_apply(m, r->saved, order, placed);
    if (s == AT_OK)
        s = at_gate_gradients(m, r->src, r->tgt, r->B, r->S, r->Tf, r->pad, NULL, r->g);
    if (s != AT_OK)
        return s;
    int n = 0;
    for (int i = 0; i < head_total(m); i++) {
        if (r->gone[i])
            continue;
        if (r->g[i] != r->g[i])
            return set_error(m, AT_E_NUMERIC, "%s: the gradient of head %d is NaN with %d "
                             "heads removed", who, i, placed);
        r->left[n++] = (scored){fabsf(r->g[i]), i};
    }
    qsort(r->left, (size_t)n, sizeof *r->left, by_score);
    for (int i = 0; i < more; i++) {
        order[placed + i] = r->left[i].head;
        r->gone[r->left[i].head] = true;
    }
    return AT_OK;
}

static at_status reest_steps(at_model *m, reest *r, const int *removed, int steps,
                             at_metric_fn metric, void *user, int32_t *order, double *curve,
                             const char *who)
{
    at_status s = gates_save(m, r->saved);
    if (s != AT_OK)
        return s;
    for (int k = 0, placed = 0; s == AT_OK && k <= steps; k++) {
        if (removed[k] > placed) {
            s = append_least(m, r, order, placed, removed[k] - placed, who);
            placed = removed[k];
        }
        if (s == AT_OK)
            s = measure(m, r->saved, order, removed[k], metric, user, &curve[k], who);
    }
    return gates_restore(m, r->saved, s);
}

static at_status prune_reestimated(at_model *m, reest *r, int steps, at_metric_fn metric,
                                   void *user, int32_t *order, double *curve)
{
    const char *who = "at_prune_curve_reestimated";
    if (!r->src || !r->tgt || !metric || !order || !curve)
        return set_error(m, AT_E_ARG, "%s: src, tgt, metric, order and curve must not be "
                         "NULL", who);
    if (steps < 1 || steps > 10000)
        return set_error(m, AT_E_ARG, "%s: steps %d is outside [1, 10000]", who, steps);
    int n = head_total(m);
    int *removed = removed_counts(m, n, steps, who);
    r->saved = malloc((size_t)n * sizeof *r->saved);
    r->g = malloc((size_t)n * sizeof *r->g);
    r->gone = calloc((size_t)n, sizeof *r->gone);
    r->left = malloc((size_t)n * sizeof *r->left);
    at_status s = AT_OK;
    if (!removed || !r->saved || !r->g || !r->gone || !r->left)
        s = set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    else
        s = reest_steps(m, r, removed, steps, metric, user, order, curve, who);
    free(removed);
    free(r->saved);
    free(r->g);
    free(r->gone);
    free(r->left);
    return s;
}

at_status at_prune_curve_reestimated(at_model *m, const int32_t *src, const int32_t *tgt,
                                     int batch, int src_len, int tgt_len, int32_t pad,
                                     int steps, at_metric_fn metric, void *user,
                                     int32_t *order, double *curve)
{
    reest r = {src, tgt, batch, src_len, tgt_len, pad, NULL, NULL, NULL, NULL};
    GUARDED(m, "at_prune_curve_reestimated",
            prune_reestimated(m, &r, steps, metric, user, order, curve));
}

/* ---- the copy task's metric ---- */

static at_status metric_copy(at_model *m, const at_copy_task *t, double *value)
{
    const char *who = "at_metric_copy";
    if (!t || !value || !t->src || !t->tgt)
        return set_error(m, AT_E_ARG, "%s: the task, its src and tgt and value must not be "
                         "NULL", who);
    if (t->batch < 1 || t->src_len < 1 || t->tgt_len < 2)
        return set_error(m, AT_E_ARG, "%s: batch %d, src_len %d, tgt_len %d: need batch >= 1, "
                         "src_len >= 1 and a target of at least 2 tokens", who, (int)t->batch,
                         (int)t->src_len, (int)t->tgt_len);
    int B = t->batch, T1 = t->tgt_len, len = 0;
    int32_t *out = malloc((size_t)B * (size_t)T1 * sizeof *out);
    if (!out)
        return set_error(m, AT_E_NOMEM, "%s: out of memory for %d x %d ids", who, B, T1);
    at_status s = at_greedy_decode(m, t->src, B, t->src_len, t->pad, T1, t->tgt[0], -1, out,
                                   &len);
    int exact = 0;
    for (int r = 0; s == AT_OK && r < B; r++) {
        const int32_t *y = t->tgt + (size_t)r * T1, *d = out + (size_t)r * T1;
        bool same = true;
        for (int i = 1; i < T1 && same; i++)
            same = y[i] == t->pad || (i < len && d[i] == y[i]);
        exact += same;
    }
    free(out);
    if (s == AT_OK)
        *value = (double)exact / B;
    return s;
}

at_status at_metric_copy(at_model *m, void *user, double *value)
{
    GUARDED(m, "at_metric_copy", metric_copy(m, user, value));
}
