/* Interventions on the C API: taps fire in the documented order and what
 * they leave is what the pass uses; gates at 1 and an override with the
 * model's own attention change nothing, bit for bit; gate gradients agree
 * with finite differences; an override under the key/value cache equals the
 * teacher-forced pass with the same override; the capture policy keeps a
 * 1,000-token pass inside a budget; bad input gets a status. The numbers
 * against an independent PyTorch model are tests/torch/test_torch_interv.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

static const int32_t src[2 * 5] = {1, 3, 4, 5, 6, 1, 3, 4, 0, 0};
static const int32_t tgt[2 * 4] = {1, 2, 3, 4, 1, 5, 6, 0};   /* full targets, T + 1 = 4 */

/* A copy of a view's tensor, contiguous. */
static float *copy_view(const at_view *v, size_t *n)
{
    size_t count = 1;
    for (int i = 0; i < 4; i++)
        count *= (size_t)v->shape[i];
    float *out = malloc(count * sizeof *out);
    ck_assert_ptr_nonnull(out);
    size_t k = 0;
    for (int64_t a = 0; a < v->shape[0]; a++)
        for (int64_t b = 0; b < v->shape[1]; b++)
            for (int64_t c = 0; c < v->shape[2]; c++)
                for (int64_t d = 0; d < v->shape[3]; d++)
                    out[k++] = v->data[a * v->stride[0] + b * v->stride[1] + c * v->stride[2] +
                                       d * v->stride[3]];
    *n = count;
    return out;
}

static float *logprobs(at_model *m, size_t *n)
{
    at_view v;
    ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &v), AT_OK);
    return copy_view(&v, n);
}

static bool same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* ---- taps ---- */

typedef struct record {
    int n;
    int site[512], kind[512], layer[512], step[512], pos0[512], batch[512], row0[512];
    int64_t dim2[512];
} record;

static at_status note(void *user, const at_tap_event *ev)
{
    record *r = user;
    if (r->n < 512) {
        int i = r->n++;
        r->site[i] = ev->site, r->kind[i] = ev->kind, r->layer[i] = ev->layer;
        r->step[i] = ev->step, r->pos0[i] = ev->pos_begin, r->batch[i] = ev->batch;
        r->row0[i] = ev->row_begin;
        r->dim2[i] = ev->view.shape[2];
    }
    return AT_OK;
}

static void tap_everything(at_model *m, record *r)
{
    for (int s = 0; s < AT_SITE_COUNT; s++) {
        bool model_site = s >= AT_SITE_SRC_EMBED;
        ck_assert_int_eq(at_tap_add(m, (at_site)s, AT_ALL, model_site ? 0 : AT_ALL, note, r),
                         AT_OK);
    }
}

/* The order docs/interventions.md gives, for 2 layers. */
static int expected_forward(int *site, int *kind, int *layer)
{
    int n = 0;
#define PUSH(s, k, l) (site[n] = (s), kind[n] = (k), layer[n] = (l), n++)
    PUSH(AT_SITE_SRC_EMBED, 0, 0);
    for (int l = 0; l < 2; l++) {
        for (int s = AT_SITE_Q; s <= AT_SITE_ATTN_OUT; s++)
            PUSH(s, AT_ATTN_ENC_SELF, l);
        PUSH(AT_SITE_FF_HIDDEN, AT_ATTN_ENC_SELF, l);
        PUSH(AT_SITE_LAYER_OUT, AT_ATTN_ENC_SELF, l);
    }
    PUSH(AT_SITE_MEMORY, 0, 0);
    for (int l = 0; l < 2; l++) {
        PUSH(AT_SITE_K, AT_ATTN_CROSS, l);
        PUSH(AT_SITE_V, AT_ATTN_CROSS, l);
    }
    PUSH(AT_SITE_TGT_EMBED, 0, 0);
    for (int l = 0; l < 2; l++) {
        for (int s = AT_SITE_Q; s <= AT_SITE_ATTN_OUT; s++)
            PUSH(s, AT_ATTN_DEC_SELF, l);
        PUSH(AT_SITE_Q, AT_ATTN_CROSS, l);
        for (int s = AT_SITE_SCORES; s <= AT_SITE_ATTN_OUT; s++)
            PUSH(s, AT_ATTN_CROSS, l);
        PUSH(AT_SITE_FF_HIDDEN, AT_ATTN_DEC_SELF, l);
        PUSH(AT_SITE_LAYER_OUT, AT_ATTN_DEC_SELF, l);
    }
    PUSH(AT_SITE_DECODER, 0, 0);
    PUSH(AT_SITE_LOGPROBS, 0, 0);
#undef PUSH
    return n;
}

START_TEST(taps_fire_in_order)
{
    at_model *m = small_model(1);
    record *r = calloc(1, sizeof *r);
    tap_everything(m, r);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    int site[128], kind[128], layer[128];
    int n = expected_forward(site, kind, layer);
    ck_assert_int_eq(r->n, n);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(r->site[i] == site[i] && r->layer[i] == layer[i] &&
                          (site[i] >= AT_SITE_SRC_EMBED || r->kind[i] == kind[i]),
                      "event %d: site %s kind %d layer %d; expected %s kind %d layer %d", i,
                      at_site_name(r->site[i]), r->kind[i], r->layer[i],
                      at_site_name(site[i]), kind[i], layer[i]);
        ck_assert_int_eq(r->step[i], -1);
        ck_assert_int_eq(r->batch[i], 2);
    }

    /* greedy decoding: the encoder side once, then the decoder side per step */
    r->n = 0;
    int32_t out[2 * 4];
    int len = 0;
    ck_assert_int_eq(at_greedy_decode(m, src, 2, 5, 0, 4, 1, -1, out, &len), AT_OK);
    ck_assert_int_eq(len, 4);
    int enc = 0;
    while (enc < n && site[enc] != AT_SITE_TGT_EMBED)
        enc++;
    ck_assert_int_eq(r->n, enc + 3 * (n - enc));
    for (int t = 0; t < 3; t++)
        for (int i = enc; i < n; i++) {
            int e = enc + t * (n - enc) + (i - enc);
            ck_assert_int_eq(r->site[e], site[i]);
            ck_assert_int_eq(r->layer[e], layer[i]);
            ck_assert_int_eq(r->step[e], t);
            ck_assert_int_eq(r->pos0[e], t);
            bool heads = r->site[e] <= AT_SITE_PROBS || r->site[e] == AT_SITE_HEAD_OUT;
            ck_assert_int_eq(r->dim2[e], heads ? 1 : r->dim2[e]);
        }

    /* beam search: the live hypotheses are the batch */
    r->n = 0;
    at_beam_options o;
    at_beam_options_init(&o);
    o.beam_size = 3;
    o.max_len_a = 4, o.max_len_b = 0;
    int32_t bout[2 * 4];
    int lens[2];
    double score[2];
    ck_assert_int_eq(at_beam_decode(m, src, 2, 5, 0, 1, -1, &o, bout, 4, lens, score), AT_OK);
    ck_assert_int_eq(r->n, enc + 3 * (n - enc));
    ck_assert_int_eq(r->batch[enc], 6);
    ck_assert_int_eq(r->row0[enc], 0);
    ck_assert_int_eq(r->step[enc + (n - enc)], 1);
    free(r);
    at_model_free(m);
}
END_TEST

static at_status zero_it(void *user, const at_tap_event *ev)
{
    (void)user;
    const at_view *v = &ev->view;
    for (int64_t a = 0; a < v->shape[0]; a++)
        for (int64_t b = 0; b < v->shape[1]; b++)
            for (int64_t c = 0; c < v->shape[2]; c++)
                for (int64_t d = 0; d < v->shape[3]; d++)
                    ev->data[a * v->stride[0] + b * v->stride[1] + c * v->stride[2] +
                             d * v->stride[3]] = 0.0f;
    return AT_OK;
}

static at_status refuse(void *user, const at_tap_event *ev)
{
    (void)user, (void)ev;
    return AT_E_ARG;
}

/* What a tap leaves is what the pass uses: zeroing every head's output of a
 * cross-attention layer is gating all its heads at 0. */
START_TEST(tap_edits_are_used)
{
    at_model *m = small_model(2);
    ck_assert_int_eq(at_gate_set(m, AT_ATTN_CROSS, 1, AT_ALL, 0.0f), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    size_t n;
    float *gated = logprobs(m, &n);
    ck_assert_int_eq(at_interventions_reset(m), AT_OK);
    ck_assert_int_eq(at_tap_add(m, AT_SITE_HEAD_OUT, AT_ATTN_CROSS, 1, zero_it, NULL), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    float *zeroed = logprobs(m, &n);
    ck_assert(same(gated, zeroed, n));

    /* a tap that fails stops the pass: no views */
    ck_assert_int_eq(at_tap_add(m, AT_SITE_LOGPROBS, 0, 0, refuse, NULL), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_E_CALLBACK);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "logprobs"));
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 0, &v), AT_E_STATE);
    int32_t out[2 * 4];
    int len;
    ck_assert_int_eq(at_greedy_decode(m, src, 2, 5, 0, 4, 1, -1, out, &len), AT_E_CALLBACK);
    ck_assert_int_eq(at_tap_clear(m), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    free(gated);
    free(zeroed);
    at_model_free(m);
}
END_TEST

/* ---- gates ---- */

START_TEST(unit_gates_change_nothing)
{
    at_model *m = small_model(3);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    size_t n;
    float *plain = logprobs(m, &n);
    ck_assert_int_eq(at_gate_set(m, AT_ALL, AT_ALL, AT_ALL, 0.5f), AT_OK);
    ck_assert_int_eq(at_gate_set(m, AT_ALL, AT_ALL, AT_ALL, 1.0f), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    float *ones = logprobs(m, &n);
    ck_assert(same(plain, ones, n));

    /* every cross head at 0: the decoder no longer sees the source */
    ck_assert_int_eq(at_gate_set(m, AT_ATTN_CROSS, AT_ALL, AT_ALL, 0.0f), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    float *a = logprobs(m, &n);
    const int32_t other[2 * 5] = {6, 5, 4, 3, 1, 2, 2, 2, 2, 2};
    ck_assert_int_eq(at_forward(m, other, tgt, 2, 5, 3, 0), AT_OK);
    float *b = logprobs(m, &n);
    ck_assert(same(a, b, n));
    ck_assert(!same(a, plain, n));
    float g;
    ck_assert_int_eq(at_gate_get(m, AT_ATTN_CROSS, 1, 1, &g), AT_OK);
    ck_assert(g == 0.0f);
    ck_assert_int_eq(at_gate_get(m, AT_ATTN_ENC_SELF, 1, 1, &g), AT_OK);
    ck_assert(g == 1.0f);
    free(plain), free(ones), free(a), free(b);
    at_model_free(m);
}
END_TEST

/* ∂L/∂ξ against central differences of at_eval_nll, at ξ = 1 and at a mix. */
START_TEST(gate_gradients_match_differences)
{
    at_model *m = small_model(4);
    float grad[3 * 2 * 2];
    double loss, again;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            ck_assert_int_eq(at_gate_set(m, AT_ATTN_ENC_SELF, 0, 1, 0.0f), AT_OK);
            ck_assert_int_eq(at_gate_set(m, AT_ATTN_CROSS, 1, 0, 0.5f), AT_OK);
        }
        ck_assert_int_eq(at_gate_gradients(m, src, tgt, 2, 5, 4, 0, &loss, grad), AT_OK);
        ck_assert_int_eq(at_eval_nll(m, src, tgt, 2, 5, 4, 0, &again, NULL), AT_OK);
        ck_assert_double_eq_tol(loss, again, 1e-12);
        for (int k = 0; k < 3; k++)
            for (int l = 0; l < 2; l++)
                for (int j = 0; j < 2; j++) {
                    float xi;
                    ck_assert_int_eq(at_gate_get(m, (at_attn_kind)k, l, j, &xi), AT_OK);
                    const float eps = 1e-2f;
                    double up, down;
                    ck_assert_int_eq(at_gate_set(m, k, l, j, xi + eps), AT_OK);
                    ck_assert_int_eq(at_eval_nll(m, src, tgt, 2, 5, 4, 0, &up, NULL), AT_OK);
                    ck_assert_int_eq(at_gate_set(m, k, l, j, xi - eps), AT_OK);
                    ck_assert_int_eq(at_eval_nll(m, src, tgt, 2, 5, 4, 0, &down, NULL), AT_OK);
                    ck_assert_int_eq(at_gate_set(m, k, l, j, xi), AT_OK);
                    double fd = (up - down) / (2 * eps), g = grad[(k * 2 + l) * 2 + j];
                    ck_assert_msg(fabs(fd - g) <= 2e-3 + 2e-2 * fabs(fd),
                                  "gate %d/%d/%d at %g: %g, differences %g", k, l, j,
                                  (double)xi, g, fd);
                }
    }
    at_model_free(m);
}
END_TEST

/* Training honours the gates: a head at 0 gets no gradient through its q. */
START_TEST(training_with_gates)
{
    at_model *m = small_model(5);
    ck_assert_int_eq(at_gate_set(m, AT_ATTN_ENC_SELF, 0, AT_ALL, 0.0f), AT_OK);
    float loss;
    ck_assert_int_eq(at_train_step(m, src, tgt, 2, 5, 4, 0, &loss, NULL), AT_OK);
    ck_assert(isfinite(loss));
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        const char *name;
        at_view v;
        ck_assert_int_eq(at_model_tensor(m, i, &name, &v), AT_OK);
        if (strncmp(name, "encoder.layers.0.self_attn.linears.0.", 37) != 0)
            continue;
        ck_assert_int_eq(at_model_grad(m, i, &v), AT_OK);
        size_t n;
        float *g = copy_view(&v, &n);
        for (size_t k = 0; k < n; k++)
            ck_assert(g[k] == 0.0f);
        free(g);
    }
    at_model_free(m);
}
END_TEST

/* ---- overrides ---- */

static float *attention_of(at_model *m, at_attn_kind kind, int layer, size_t *n)
{
    at_view v;
    ck_assert_int_eq(at_get_attention(m, kind, layer, &v), AT_OK);
    return copy_view(&v, n);
}

START_TEST(own_attention_changes_nothing)
{
    at_model *m = small_model(6);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    size_t n, np;
    float *plain = logprobs(m, &n);
    float *p[3];
    for (int k = 0; k < 3; k++)
        p[k] = attention_of(m, (at_attn_kind)k, 1, &np);
    int lq[3] = {5, 3, 3}, lk[3] = {5, 3, 5};
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(at_attention_override(m, (at_attn_kind)k, 1, AT_ALL, p[k], 2, lq[k],
                                               lk[k]), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    float *again = logprobs(m, &n);
    ck_assert(same(plain, again, n));

    /* a uniform cross-attention row changes the output, and is what the
     * views then show */
    float *u = calloc(2 * 2 * 3 * 5, sizeof *u);
    for (int i = 0; i < 2 * 2 * 3 * 5; i++)
        u[i] = 0.2f;
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_CROSS, 1, AT_ALL, u, 2, 3, 5), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    float *changed = logprobs(m, &n), *shown = attention_of(m, AT_ATTN_CROSS, 1, &np);
    ck_assert(!same(plain, changed, n));
    ck_assert(same(shown, u, np));
    /* a pass of other sizes does not fit the override */
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 2, 0), AT_E_SHAPE);
    ck_assert_int_eq(at_forward(m, src, NULL, 2, 5, 0, 0), AT_OK);   /* the encoder alone */
    for (int k = 0; k < 3; k++)
        free(p[k]);
    free(plain), free(again), free(u), free(changed), free(shown);
    at_model_free(m);
}
END_TEST

/* Under the key/value cache, row t of the override at step t gives what a
 * teacher-forced pass over the decoded ids with the same override gives. */
START_TEST(decode_override_equals_teacher_forced)
{
    at_model *m = small_model(7);
    const int Tm = 6;
    /* cross layer 0: every head looks at the source positions 0 and 2 */
    float *cross = calloc((size_t)2 * 2 * Tm * 5, sizeof *cross);
    for (int i = 0; i < 2 * 2 * Tm; i++)
        cross[i * 5] = 0.75f, cross[i * 5 + 2] = 0.25f;
    /* decoder self layer 1, head 0: attend to the previous position */
    float *self = calloc((size_t)2 * Tm * Tm, sizeof *self);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < Tm; i++)
            self[(b * Tm + i) * Tm + (i ? i - 1 : 0)] = 1.0f;
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_CROSS, 0, AT_ALL, cross, 2, Tm, 5), AT_OK);
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_DEC_SELF, 1, 0, self, 2, Tm, Tm), AT_OK);
    ck_assert_int_eq(at_gate_set(m, AT_ATTN_DEC_SELF, 0, 1, 0.5f), AT_OK);
    int32_t out[2 * 7];
    int len;
    /* pad -1 masks no source position, in the decode and in the forward */
    ck_assert_int_eq(at_greedy_decode(m, src, 2, 5, -1, Tm + 1, 1, -1, out, &len), AT_OK);
    ck_assert_int_eq(len, Tm + 1);
    size_t n;
    at_view v;
    ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &v), AT_OK);
    float *decoded = copy_view(&v, &n);
    int32_t in[2 * 6];
    for (int b = 0; b < 2; b++)
        memcpy(in + b * Tm, out + b * (Tm + 1), Tm * sizeof *in);
    /* no target padding: the decode masks nothing but the future */
    ck_assert_int_eq(at_forward(m, src, in, 2, 5, Tm, -1), AT_OK);
    float *forced = logprobs(m, &n);
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)decoded[i] - forced[i]));
    fprintf(stderr, "override: decode vs teacher-forced, largest difference %g\n", worst);
    ck_assert_msg(worst <= 1e-5, "decode vs teacher-forced: %g", worst);
    /* beam search with beam 1 takes the same path */
    at_beam_options o;
    at_beam_options_init(&o);
    o.beam_size = 1, o.alpha = 0, o.max_len_a = Tm + 1, o.max_len_b = 0;
    int32_t bout[2 * 7];
    int lens[2];
    double score[2];
    ck_assert_int_eq(at_beam_decode(m, src, 2, 5, -1, 1, -1, &o, bout, Tm + 1, lens, score),
                     AT_OK);
    ck_assert_int_eq(memcmp(bout, out, sizeof out), 0);
    free(cross), free(self), free(decoded), free(forced);
    at_model_free(m);
}
END_TEST

/* ---- the capture policy ---- */

START_TEST(capture_policy_fits_a_budget)
{
    at_config *cfg;
    ck_assert_int_eq(at_config_create(&cfg), AT_OK);
    double v[][2] = {{AT_P_LAYERS, 2}, {AT_P_D_MODEL, 16}, {AT_P_HEADS, 2}, {AT_P_D_FF, 32},
                     {AT_P_SRC_VOCAB, 7}, {AT_P_TGT_VOCAB, 9}, {AT_P_MAX_LEN, 1000}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(at_config_set(cfg, (at_param)v[i][0], v[i][1]), AT_OK);
    at_model *m;
    ck_assert_int_eq(at_model_create(cfg, &m), AT_OK);
    at_config_free(cfg);
    enum { L = 1000 };
    int32_t *ids = malloc(L * sizeof *ids);
    for (int i = 0; i < L; i++)
        ids[i] = 1 + i % 6;
    ck_assert_int_eq(at_forward(m, ids, ids, 1, L, L, 0), AT_OK);
    size_t full = at_model_activation_bytes(m);
    at_view whole;
    ck_assert_int_eq(at_get_attention_head(m, AT_ATTN_CROSS, 1, 1, &whole), AT_OK);
    size_t n;
    float *want = copy_view(&whole, &n);
    float *plain = logprobs(m, &n);

    ck_assert_int_eq(at_capture_set(m, AT_ALL, AT_ALL, AT_ALL, 0), AT_OK);
    ck_assert_int_eq(at_capture_set(m, AT_ATTN_CROSS, 1, 1, 1), AT_OK);
    ck_assert_int_eq(at_forward(m, ids, ids, 1, L, L, 0), AT_OK);
    size_t kept = at_model_activation_bytes(m);
    /* 12 (L, L) planes (3 kinds, 2 layers, 2 heads) kept before, 1 now */
    ck_assert_msg(full - kept == (size_t)11 * L * L * sizeof(float), "full %zu, kept %zu bytes",
                  full, kept);
    fprintf(stderr, "capture: a 1000-token pass: %.1f MiB kept all, %.1f MiB one head\n",
            full / 1048576.0, kept / 1048576.0);
    at_view one;
    ck_assert_int_eq(at_get_attention_head(m, AT_ATTN_CROSS, 1, 1, &one), AT_OK);
    float *got = copy_view(&one, &n);
    ck_assert(same(got, want, n));
    float *again = logprobs(m, &n);
    ck_assert(same(plain, again, n));
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &one), AT_E_STATE);
    ck_assert_int_eq(at_get_attention_head(m, AT_ATTN_CROSS, 1, 0, &one), AT_E_STATE);
    float loss;
    ck_assert_int_eq(at_train_step(m, ids, ids, 1, 8, 8, 0, &loss, NULL), AT_E_STATE);
    free(ids), free(want), free(plain), free(got), free(again);
    at_model_free(m);
}
END_TEST

/* ---- bad input ---- */

START_TEST(bad_input_gets_a_status)
{
    at_model *m = small_model(8);
    ck_assert_int_eq(at_tap_add(NULL, AT_SITE_Q, 0, 0, note, NULL), AT_E_ARG);
    ck_assert_int_eq(at_tap_add(m, (at_site)99, 0, 0, note, NULL), AT_E_ARG);
    ck_assert_int_eq(at_tap_add(m, AT_SITE_Q, 3, 0, note, NULL), AT_E_ARG);
    ck_assert_int_eq(at_tap_add(m, AT_SITE_Q, 0, 2, note, NULL), AT_E_ARG);
    ck_assert_int_eq(at_tap_add(m, AT_SITE_Q, 0, 0, NULL, NULL), AT_E_ARG);
    ck_assert_int_eq(at_tap_add(m, AT_SITE_FF_HIDDEN, AT_ATTN_CROSS, 0, note, NULL), AT_E_ARG);
    ck_assert_int_eq(at_tap_add(m, AT_SITE_MEMORY, 0, 1, note, NULL), AT_E_ARG);
    at_site s;
    ck_assert_int_eq(at_site_from_name("head_out", &s), AT_OK);
    ck_assert_int_eq(s, AT_SITE_HEAD_OUT);
    ck_assert_int_eq(at_site_from_name("heads", &s), AT_E_ARG);
    ck_assert_ptr_null(at_site_name((at_site)AT_SITE_COUNT));
    ck_assert_int_eq(at_gate_set(m, 0, 0, 2, 1.0f), AT_E_ARG);
    ck_assert_int_eq(at_gate_set(m, 0, -2, 0, 1.0f), AT_E_ARG);
    ck_assert_int_eq(at_gate_set(m, 0, 0, 0, NAN), AT_E_NUMERIC);
    ck_assert_int_eq(at_gate_set(m, 0, 0, 0, INFINITY), AT_E_NUMERIC);
    float g;
    ck_assert_int_eq(at_gate_get(m, AT_ATTN_CROSS, 0, AT_ALL, &g), AT_E_ARG);
    ck_assert_int_eq(at_gate_get(m, AT_ATTN_CROSS, 0, 0, NULL), AT_E_ARG);
    float p[2 * 3 * 3] = {0};
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_DEC_SELF, 0, 0, p, 2, 3, 4), AT_E_ARG);
    p[1] = 0.5f;   /* row 0 looks at position 1 */
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_DEC_SELF, 0, 0, p, 2, 3, 3), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "look"));
    p[1] = NAN;
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_CROSS, 0, 0, p, 2, 3, 3), AT_E_NUMERIC);
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_CROSS, 0, 2, p, 2, 3, 3), AT_E_ARG);
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_CROSS, 0, 0, p, 0, 3, 3), AT_E_ARG);
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_CROSS, 0, 0, p, 2, 3, 65), AT_E_RANGE);
    p[1] = 0.5f;
    /* a cross override for sources of 3, a pass with sources of 5 */
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_CROSS, 0, 0, p, 2, 3, 3), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "cross layer 0"));
    int32_t out[2 * 4];
    int len;
    ck_assert_int_eq(at_greedy_decode(m, src, 2, 5, 0, 4, 1, -1, out, &len), AT_E_SHAPE);
    ck_assert_int_eq(at_attention_override(m, AT_ATTN_CROSS, 0, 0, NULL, 0, 0, 0), AT_OK);
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 5, 3, 0), AT_OK);
    ck_assert_int_eq(at_capture_set(m, 4, 0, 0, 0), AT_E_ARG);
    at_view v;
    ck_assert_int_eq(at_get_attention_head(m, AT_ATTN_CROSS, 0, 2, &v), AT_E_ARG);
    ck_assert_int_eq(at_gate_gradients(m, src, tgt, 2, 5, 1, 0, NULL, NULL), AT_E_ARG);
    double loss;
    ck_assert_int_eq(at_eval_nll(m, src, tgt, 2, 5, 4, 0, NULL, NULL), AT_E_ARG);
    const int32_t badtgt[2 * 4] = {1, 2, 3, 40, 1, 5, 6, 0};
    ck_assert_int_eq(at_eval_nll(m, src, badtgt, 2, 5, 4, 0, &loss, NULL), AT_E_RANGE);
    ck_assert_int_eq(at_interventions_reset(NULL), AT_E_ARG);
    ck_assert_uint_eq(at_model_activation_bytes(NULL), 0);
    at_model_free(m);
}
END_TEST

/* A shared handle starts with none of its base's interventions. */
START_TEST(shared_handles_have_their_own)
{
    at_model *m = small_model(9), *s;
    ck_assert_int_eq(at_gate_set(m, AT_ALL, AT_ALL, AT_ALL, 0.0f), AT_OK);
    ck_assert_int_eq(at_model_share(m, &s), AT_OK);
    float g;
    ck_assert_int_eq(at_gate_get(s, AT_ATTN_CROSS, 1, 1, &g), AT_OK);
    ck_assert(g == 1.0f);
    double loss;
    float grad[12];
    /* the gates' gradient writes nothing to the shared weights */
    ck_assert_int_eq(at_gate_gradients(s, src, tgt, 2, 5, 4, 0, &loss, grad), AT_OK);
    at_model_free(s);
    at_model_free(m);
}
END_TEST

Suite *suite_interv(void)
{
    Suite *s = suite_create("interv");
    TCase *t = tcase_create("interv");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, taps_fire_in_order);
    tcase_add_test(t, tap_edits_are_used);
    tcase_add_test(t, unit_gates_change_nothing);
    tcase_add_test(t, gate_gradients_match_differences);
    tcase_add_test(t, training_with_gates);
    tcase_add_test(t, own_attention_changes_nothing);
    tcase_add_test(t, decode_override_equals_teacher_forced);
    tcase_add_test(t, capture_policy_fits_a_budget);
    tcase_add_test(t, bad_input_gets_a_status);
    tcase_add_test(t, shared_handles_have_their_own);
    suite_add_tcase(s, t);
    return s;
}
