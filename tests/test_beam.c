/* Beam search: the views after it against teacher-forced forward passes over
 * each row's best hypothesis, K = 1 against greedy decoding, the search
 * against exhaustive enumeration and against a beam search written here over
 * at_forward (the prefix re-run at every step), and bad input. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

#define V_TGT 9                   /* small_model's target vocabulary */
#define LAYERS 2

static double lp(double alpha, int n) { return pow((5.0 + n) / 6.0, alpha); }

static at_beam_options opts(int K, double alpha, double a, double b)
{
    at_beam_options o;
    at_beam_options_init(&o);
    o.beam_size = K;
    o.alpha = alpha;
    o.max_len_a = a;
    o.max_len_b = b;
    return o;
}

/* Element (i0, i1, i2, i3) of a view. */
static float at4(const at_view *v, int64_t a, int64_t b, int64_t c, int64_t d)
{
    return v->data[a * v->stride[0] + b * v->stride[1] + c * v->stride[2] + d * v->stride[3]];
}

/* A copy of a view (its shape and strides kept, the data owned). */
typedef struct kept {
    at_view v;
    float *buf;
} kept;

static kept keep(const at_view *v)
{
    kept k = {*v, NULL};
    int64_t n = 0;
    for (int i = 0; i < 4; i++)
        n += (v->shape[i] - 1) * v->stride[i];
    k.buf = malloc((size_t)(n + 1) * sizeof(float));
    memcpy(k.buf, v->data, (size_t)(n + 1) * sizeof(float));
    k.v.data = k.buf;
    return k;
}

enum { K_ENC, K_SELF, K_CROSS, K_OUT, K_LOGP, K_EMB, K_DEC, K_MASK, KINDS };

/* Every view the decoder side shows, and the encoder's self-attention. */
typedef struct snapshot {
    kept x[KINDS][LAYERS];
} snapshot;

static void take_snapshot(at_model *m, snapshot *s)
{
    at_view v;
    for (int l = 0; l < LAYERS; l++) {
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, l, &v), AT_OK);
        s->x[K_ENC][l] = keep(&v);
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_DEC_SELF, l, &v), AT_OK);
        s->x[K_SELF][l] = keep(&v);
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, l, &v), AT_OK);
        s->x[K_CROSS][l] = keep(&v);
        ck_assert_int_eq(at_get_output(m, AT_OUT_DEC_LAYER, l, &v), AT_OK);
        s->x[K_OUT][l] = keep(&v);
    }
    static const at_output single[] = {[K_LOGP] = AT_OUT_LOGPROBS, [K_EMB] = AT_OUT_TGT_EMBED,
                                       [K_DEC] = AT_OUT_DECODER, [K_MASK] = AT_OUT_TGT_MASK};
    for (int k = K_LOGP; k < KINDS; k++) {
        ck_assert_int_eq(at_get_output(m, single[k], 0, &v), AT_OK);
        s->x[k][0] = keep(&v);
        s->x[k][1] = (kept){{0}, NULL};
    }
}

static void free_snapshot(snapshot *s)
{
    for (int k = 0; k < KINDS; k++)
        for (int l = 0; l < LAYERS; l++)
            free(s->x[k][l].buf);
}

static int kind_layers(int k) { return k <= K_OUT ? LAYERS : 1; }

/* The largest |kept[b0, …] − now[b1, …]| over the first n2 × n3 (× heads)
 * entries, 3-d views read as (B, 1, n2, n3). */
static double region_diff(const at_view *kept_v, int b0, const at_view *now, int b1, int n2,
                          int n3)
{
    double worst = 0;
    bool four = kept_v->ndim == 4;
    int64_t h = four ? kept_v->shape[1] : 1;
    for (int64_t j = 0; j < h; j++)
        for (int i = 0; i < n2; i++)
            for (int c = 0; c < n3; c++) {
                double a = four ? at4(kept_v, b0, j, i, c)
                                : kept_v->data[b0 * kept_v->stride[0] + i * kept_v->stride[1] +
                                               c * kept_v->stride[2]];
                double e = four ? at4(now, b1, j, i, c)
                                : now->data[b1 * now->stride[0] + i * now->stride[1] +
                                            c * now->stride[2]];
                worst = fabs(a - e) > worst ? fabs(a - e) : worst;
            }
    return worst;
}

/* The largest |x| of a kept view for row b outside [0, n2) × [0, n3) within
 * its shape: what must be exactly zero (padding, masked keys). */
static double outside(const at_view *v, int b, int n2, int n3)
{
    double worst = 0;
    bool four = v->ndim == 4;
    int64_t h = four ? v->shape[1] : 1, L2 = four ? v->shape[2] : v->shape[1],
            L3 = four ? v->shape[3] : v->shape[2];
    for (int64_t j = 0; j < h; j++)
        for (int64_t i = 0; i < L2; i++)
            for (int64_t c = 0; c < L3; c++) {
                if (i < n2 && c < n3)
                    continue;
                double x = four ? at4(v, b, j, i, c)
                                : v->data[b * v->stride[0] + i * v->stride[1] + c * v->stride[2]];
                worst = fabs(x) > worst ? fabs(x) : worst;
            }
    return worst;
}

/* The views after a beam decode against, for every row alone, at_forward
 * over its best hypothesis minus its last id and over its source without
 * the padding (pad −1: nothing masked), as a user checking them would; and,
 * when no hypothesis holds the pad id, against one batched at_forward over
 * the hypotheses padded with pad. Returns the largest difference; fails on
 * anything nonzero where the views must hold zeros. */
static double views_vs_forward(at_model *m, const int32_t *src, int B, int S, int32_t pad,
                               const int32_t *out, int cols, const int *len)
{
    snapshot s;
    take_snapshot(m, &s);
    int T = 0;
    for (int b = 0; b < B; b++)
        T = len[b] - 1 > T ? len[b] - 1 : T;
    ck_assert_int_eq(s.x[K_SELF][0].v.shape[2], T);
    ck_assert_int_eq(s.x[K_CROSS][0].v.shape[0], B);
    double worst = 0;
    for (int b = 0; b < B; b++) {
        int nx = 0, Tb = len[b] - 1;
        while (nx < S && src[b * S + nx] != pad)
            nx++;
        for (int i = nx; i < S; i++)
            ck_assert_int_eq(src[b * S + i], pad);   /* padding at the end only */
        ck_assert_msg(at_forward(m, src + b * S, out + b * cols, 1, nx, Tb, -1) == AT_OK, "%s",
                      at_errmsg(m));
        for (int k = 0; k < KINDS; k++)
            for (int l = 0; l < kind_layers(k); l++) {
                at_view now;
                if (k == K_ENC)
                    ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, l, &now), AT_OK);
                else if (k == K_SELF)
                    ck_assert_int_eq(at_get_attention(m, AT_ATTN_DEC_SELF, l, &now), AT_OK);
                else if (k == K_CROSS)
                    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, l, &now), AT_OK);
                else {
                    static const at_output w[] = {[K_OUT] = AT_OUT_DEC_LAYER,
                                                  [K_LOGP] = AT_OUT_LOGPROBS,
                                                  [K_EMB] = AT_OUT_TGT_EMBED,
                                                  [K_DEC] = AT_OUT_DECODER,
                                                  [K_MASK] = AT_OUT_TGT_MASK};
                    ck_assert_int_eq(at_get_output(m, w[k], l, &now), AT_OK);
                }
                const at_view *kv = &s.x[k][l].v;
                bool four = now.ndim == 4;
                int n2 = k == K_ENC ? nx : Tb;
                int n3 = four ? (int)now.shape[3] : (int)now.shape[2];
                if (k == K_CROSS || k == K_ENC)
                    n3 = nx;
                double e = region_diff(kv, b, &now, 0, n2, n3);
                worst = e > worst ? e : worst;
                /* padded keys, padded query positions: exactly zero (the encoder's
                 * query rows at source padding are computed, as the reference does) */
                double z = outside(kv, b, k == K_ENC ? S : n2, k == K_ENC || k == K_CROSS ? nx
                                              : k == K_SELF || k == K_MASK ? Tb
                                              : (int)(four ? kv->shape[3] : kv->shape[2]));
                ck_assert_msg(z == 0, "kind %d layer %d row %d: %g outside the hypothesis", k,
                              l, b, z);
            }
    }
    bool pad_inside = false;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < len[b]; i++)
            pad_inside |= out[b * cols + i] == pad;
    if (!pad_inside) {
        int32_t *tgt = malloc((size_t)B * T * sizeof *tgt);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < T; i++)
                tgt[b * T + i] = i < len[b] - 1 ? out[b * cols + i] : (pad >= 0 ? pad : 1);
        ck_assert_int_eq(at_forward(m, src, tgt, B, S, T, pad), AT_OK);
        for (int l = 0; l < LAYERS; l++)
            for (int k = K_SELF; k <= K_CROSS; k++) {
                at_view now;
                ck_assert_int_eq(at_get_attention(m, k == K_SELF ? AT_ATTN_DEC_SELF
                                                                 : AT_ATTN_CROSS, l, &now),
                                 AT_OK);
                for (int b = 0; b < B; b++) {
                    double e = region_diff(&s.x[k][l].v, b, &now, b, len[b] - 1,
                                           (int)now.shape[3]);
                    worst = e > worst ? e : worst;
                }
            }
        free(tgt);
    }
    printf("  views vs teacher-forced forward (%s): largest difference %.3g\n",
           pad_inside ? "per row" : "per row and batched", worst);
    free_snapshot(&s);
    return worst;
}

/* Four rows of different source lengths, padded with 0. */
static const int32_t padded_src[4 * 7] = {1, 2, 3, 4, 5, 6, 2, 1, 6, 5, 4, 0, 0, 0,
                                          1, 3, 0, 0, 0, 0, 0, 1, 2, 2, 5, 5, 3, 0};

/* Beam K over the padded batch, with an end id picked so that the best
 * hypotheses have different lengths; views against forward passes. */
static double beam_views_case(int K, double alpha, int seed)
{
    at_model *m = small_model(seed);
    enum { B = 4, S = 7, COLS = 24 };
    int32_t out[B * COLS];
    int len[B];
    double score[B];
    at_beam_options o = opts(K, alpha, 3, 2);
    int32_t chosen = -1;
    for (int32_t end = 2; end < V_TGT && chosen < 0; end++) {
        ck_assert_msg(at_beam_decode(m, padded_src, B, S, 0, 1, end, &o, out, COLS, len,
                                     score) == AT_OK, "%s", at_errmsg(m));
        int lo = len[0], hi = len[0];
        for (int b = 1; b < B; b++)
            lo = len[b] < lo ? len[b] : lo, hi = len[b] > hi ? len[b] : hi;
        if (lo < hi && hi >= 4)
            chosen = end;
    }
    ck_assert_msg(chosen >= 0, "seed %d: no end id gives rows of different lengths", seed);
    printf("beam %d, alpha %.2f, seed %d, end id %d: lengths %d %d %d %d, scores %.4f %.4f "
           "%.4f %.4f\n", K, alpha, seed, (int)chosen, len[0], len[1], len[2], len[3],
           score[0], score[1], score[2], score[3]);
    for (int b = 0; b < B; b++) {
        ck_assert_int_eq(out[b * COLS], 1);
        ck_assert(len[b] >= 2);
        for (int i = 1; i < len[b] - 1; i++)
            ck_assert_int_ne(out[b * COLS + i], chosen);   /* the end id ends it */
        for (int i = len[b]; i < COLS; i++)
            ck_assert_int_eq(out[b * COLS + i], 0);        /* filled with pad */
    }
    double e = views_vs_forward(m, padded_src, B, S, 0, out, COLS, len);
    at_model_free(m);
    return e;
}

START_TEST(views_equal_forward_k1)
{
    double e = beam_views_case(1, 0.6, 5);
    ck_assert(e <= 1e-5);
}
END_TEST

START_TEST(views_equal_forward_k4)
{
    double worst = 0;
    for (int seed = 5; seed < 9; seed++) {
        double e = beam_views_case(4, 0.6, seed);
        worst = e > worst ? e : worst;
    }
    double e = beam_views_case(3, 1.0, 11);
    worst = e > worst ? e : worst;
    e = beam_views_case(5, 0.0, 12);
    worst = e > worst ? e : worst;
    printf("views vs forward, K > 1: worst %.3g\n", worst);
    ck_assert(worst <= 1e-5);
}
END_TEST

/* K = 1, α = 0, no end id: greedy decoding's ids, and the same views. */
START_TEST(k1_is_greedy)
{
    for (int seed = 1; seed < 6; seed++) {
        at_model *m = small_model(seed);
        enum { B = 4, S = 7, N = 12 };
        int32_t g[B * N], out[B * N];
        int glen, len[B];
        ck_assert_int_eq(at_greedy_decode(m, padded_src, B, S, 0, N, 1, -1, g, &glen), AT_OK);
        ck_assert_int_eq(glen, N);
        at_view gv[2][LAYERS];
        kept gk[2][LAYERS];
        for (int l = 0; l < LAYERS; l++) {
            ck_assert_int_eq(at_get_attention(m, AT_ATTN_DEC_SELF, l, &gv[0][l]), AT_OK);
            ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, l, &gv[1][l]), AT_OK);
            gk[0][l] = keep(&gv[0][l]), gk[1][l] = keep(&gv[1][l]);
        }
        at_beam_options o = opts(1, 0, N, 0);
        ck_assert_int_eq(at_beam_decode(m, padded_src, B, S, 0, 1, -1, &o, out, N, len, NULL),
                         AT_OK);
        for (int b = 0; b < B; b++) {
            ck_assert_int_eq(len[b], N);
            for (int i = 0; i < N; i++)
                ck_assert_msg(out[b * N + i] == g[b * N + i], "seed %d row %d id %d: beam %d, "
                              "greedy %d", seed, b, i, out[b * N + i], g[b * N + i]);
        }
        double worst = 0;
        for (int l = 0; l < LAYERS; l++)
            for (int k = 0; k < 2; k++) {
                at_view v;
                ck_assert_int_eq(at_get_attention(m, k ? AT_ATTN_CROSS : AT_ATTN_DEC_SELF, l,
                                                  &v), AT_OK);
                for (int b = 0; b < B; b++) {
                    double e = region_diff(&gk[k][l].v, b, &v, b, N - 1, (int)v.shape[3]);
                    worst = e > worst ? e : worst;
                }
                free(gk[k][l].buf);
            }
        ck_assert_msg(worst <= 1e-6, "seed %d: views differ from greedy's by %g", seed, worst);
        at_model_free(m);
    }
}
END_TEST

/* log P of each id after prefix y[0 .. n), from a forward pass over it. */
static void next_logp(at_model *m, const int32_t *src, int S, const int32_t *y, int n,
                      double *lpv)
{
    ck_assert_int_eq(at_forward(m, src, y, 1, S, n, -1), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_output(m, AT_OUT_LOGPROBS, 0, &v), AT_OK);
    for (int w = 0; w < V_TGT; w++)
        lpv[w] = v.data[(n - 1) * v.stride[1] + w * v.stride[2]];
}

/* Every hypothesis of up to n_max ids after the start, by depth-first search:
 * the best score log P / lp and its ids (second best kept to see ties). */
typedef struct best_seq {
    double score, second;
    int32_t ids[8];
    int len;
} best_seq;

static void enumerate(at_model *m, const int32_t *src, int S, int32_t *y, int n, double cum,
                      int n_max, int32_t end, double alpha, best_seq *best)
{
    double lpv[V_TGT];
    next_logp(m, src, S, y, n, lpv);
    for (int w = 0; w < V_TGT; w++) {
        double c = cum + lpv[w];
        y[n] = w;
        if (w == end || n == n_max) {
            double s = c / lp(alpha, n);
            if (s > best->score) {
                best->second = best->score;
                best->score = s;
                memcpy(best->ids, y, (size_t)(n + 1) * sizeof *y);
                best->len = n + 1;
            } else if (s > best->second) {
                best->second = s;
            }
        } else {
            enumerate(m, src, S, y, n + 1, c, n_max, end, alpha, best);
        }
    }
}

/* With K at least V^(steps − 1), no hypothesis is ever pruned: the beam's
 * answer is the best of all sequences. */
START_TEST(beam_equals_exhaustive)
{
    enum { B = 3, S = 5, STEPS = 3, COLS = STEPS + 1 };
    const int32_t src[B * S] = {1, 2, 3, 4, 5, 1, 5, 4, 3, 2, 1, 1, 6, 6, 2};
    const struct { double alpha; int32_t end; } cases[] = {{0.6, 3}, {0.0, 3}, {1.5, 5},
                                                           {0.6, -1}};
    double worst = 0;
    int ties = 0;
    for (int seed = 40; seed < 43; seed++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            at_model *m = small_model(seed);
            int32_t out[B * COLS];
            int len[B];
            double score[B];
            at_beam_options o = opts(V_TGT * V_TGT, cases[c].alpha, COLS, 0);
            ck_assert_msg(at_beam_decode(m, src, B, S, -1, 1, cases[c].end, &o, out, COLS,
                                         len, score) == AT_OK, "%s", at_errmsg(m));
            for (int b = 0; b < B; b++) {
                best_seq best = {-INFINITY, -INFINITY, {0}, 0};
                int32_t y[8] = {1};
                enumerate(m, src + b * S, S, y, 1, 0.0, STEPS, cases[c].end, cases[c].alpha,
                          &best);
                double e = fabs(score[b] - best.score);
                worst = e > worst ? e : worst;
                ck_assert_msg(e <= 1e-5, "seed %d case %zu row %d: score %.8f, exhaustive %.8f",
                              seed, c, b, score[b], best.score);
                if (best.score - best.second < 1e-5) {
                    ties++;   /* a near tie: either answer is right */
                    continue;
                }
                ck_assert_int_eq(len[b], best.len);
                for (int i = 0; i < len[b]; i++)
                    ck_assert_int_eq(out[b * COLS + i], best.ids[i]);
            }
            at_model_free(m);
        }
    printf("beam (K 81) vs exhaustive search over %d cases: scores within %.3g, %d near ties\n",
           3 * 4 * B, worst, ties);
}
END_TEST

/* The beam search of at.h written the slow way: every hypothesis re-runs its
 * whole prefix through at_forward (no cache, no reordering), over its
 * source alone, and the search runs to the full length (no early stop). */
typedef struct hyp {
    int32_t ids[32];
    int n;                        /* ids, the start included */
    double cum;
} hyp;

static best_seq slow_beam(at_model *m, const int32_t *src, int S, int K, double alpha,
                          int32_t end, int max_ids)
{
    hyp alive[16], next[16];
    int na = 1;
    alive[0] = (hyp){{1}, 1, 0.0};
    best_seq best = {-INFINITY, -INFINITY, {0}, 0};
    int32_t best_ids[32];
    for (int t = 0; t < max_ids - 1 && na > 0; t++) {
        /* the 2K best (cum, hypothesis, id), ties to the lower hypothesis, id */
        struct { double s; int h, w; } c[32];
        int nc = 0;
        for (int h = 0; h < na; h++) {
            double lpv[V_TGT];
            next_logp(m, src, S, alive[h].ids, alive[h].n, lpv);
            for (int w = 0; w < V_TGT; w++) {
                double s = alive[h].cum + lpv[w];
                if (nc == 2 * K && !(s > c[nc - 1].s))
                    continue;
                int i = nc < 2 * K ? nc++ : 2 * K - 1;
                for (; i > 0 && s > c[i - 1].s; i--)
                    c[i] = c[i - 1];
                c[i].s = s, c[i].h = h, c[i].w = w;
            }
        }
        bool last = t == max_ids - 2;
        int nn = 0;
        for (int i = 0; i < nc && nn < K; i++) {
            if (last || c[i].w == end) {
                if (i < K && c[i].s / lp(alpha, t + 1) > best.score) {
                    best.score = c[i].s / lp(alpha, t + 1);
                    memcpy(best_ids, alive[c[i].h].ids, sizeof best_ids);
                    best_ids[alive[c[i].h].n] = c[i].w;
                    best.len = alive[c[i].h].n + 1;
                }
                if (last && i + 1 >= K)
                    break;
                continue;
            }
            next[nn] = alive[c[i].h];
            next[nn].ids[next[nn].n++] = c[i].w;
            next[nn].cum = c[i].s;
            nn++;
        }
        memcpy(alive, next, sizeof next);
        na = last ? 0 : nn;
    }
    memcpy(best.ids, best_ids, sizeof best.ids);
    return best;
}

START_TEST(beam_equals_slow_beam)
{
    enum { B = 4, S = 7, COLS = 16 };
    const struct { int K; double alpha; int32_t end; } cases[] = {
        {2, 0.6, 4}, {3, 1.0, 2}, {4, 0.0, 6}, {3, 0.6, -1}, {1, 0.6, 3}};
    double worst = 0;
    for (int seed = 60; seed < 63; seed++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            at_model *m = small_model(seed);
            int32_t out[B * COLS];
            int len[B];
            double score[B];
            /* a + b·|x|: rows of 6, 3, 2 and 6 source ids allow 7, 4, 3, 7 ids */
            at_beam_options o = opts(cases[c].K, cases[c].alpha, 1, 1);
            ck_assert_msg(at_beam_decode(m, padded_src, B, S, 0, 1, cases[c].end, &o, out,
                                         COLS, len, score) == AT_OK, "%s", at_errmsg(m));
            for (int b = 0; b < B; b++) {
                int nx = 0;
                while (nx < S && padded_src[b * S + nx] != 0)
                    nx++;
                best_seq want = slow_beam(m, padded_src + b * S, nx, cases[c].K,
                                          cases[c].alpha, cases[c].end, 1 + nx);
                double e = fabs(score[b] - want.score);
                worst = e > worst ? e : worst;
                ck_assert_msg(e <= 1e-5, "seed %d case %zu row %d: score %.8f, slow beam %.8f",
                              seed, c, b, score[b], want.score);
                ck_assert_int_eq(len[b], want.len);
                for (int i = 0; i < len[b]; i++)
                    ck_assert_msg(out[b * COLS + i] == want.ids[i], "seed %d case %zu row %d "
                                  "id %d: %d, slow beam %d", seed, c, b, i, out[b * COLS + i],
                                  want.ids[i]);
            }
            at_model_free(m);
        }
    printf("beam vs a slow beam search over at_forward (%d rows): scores within %.3g\n",
           3 * 5 * B, worst);
}
END_TEST

/* A repeated call of the same sizes allocates nothing (glibc's statistics,
 * so not under AddressSanitizer). */
START_TEST(repeated_beam_allocates_nothing)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("allocation count skipped under AddressSanitizer\n");
#else
    at_model *m = small_model(3);
    int32_t out[4 * 24];
    int len[4];
    at_beam_options o = opts(4, 0.6, 3, 2);
    ck_assert_int_eq(at_beam_decode(m, padded_src, 4, 7, 0, 1, 3, &o, out, 24, len, NULL),
                     AT_OK);
    struct mallinfo2 before = mallinfo2();
    at_status s = at_beam_decode(m, padded_src, 4, 7, 0, 1, 3, &o, out, 24, len, NULL);
    struct mallinfo2 after = mallinfo2();
    ck_assert_int_eq(s, AT_OK);
    ck_assert_uint_eq(after.uordblks, before.uordblks);
    ck_assert_uint_eq(after.hblkhd, before.hblkhd);
    at_model_free(m);
#endif
}
END_TEST

/* Every bad argument: a status, a message naming the call, no views, and
 * the generation one higher after every call. */
START_TEST(beam_bad_input)
{
    at_model *m = small_model(2);
    int32_t src[3] = {1, 2, 3}, out[64];
    int len[1];
    at_beam_options o = opts(4, 0.6, 10, 2);
#define BAD(want, ...)                                                                        \
    do {                                                                                      \
        uint64_t g0 = at_model_generation(m);                                                 \
        at_status s_ = at_beam_decode(__VA_ARGS__);                                           \
        ck_assert_msg(s_ == (want), "line %d: %s (%s)", __LINE__, at_status_string(s_),        \
                      at_errmsg(m));                                                          \
        ck_assert_msg(strstr(at_errmsg(m), "at_beam_decode") != NULL, "%s", at_errmsg(m));     \
        ck_assert_int_eq(at_model_generation(m), g0 + 1);                                    \
        at_view v_;                                                                           \
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_ENC_SELF, 0, &v_), AT_E_STATE);         \
    } while (0)
    ck_assert_int_eq(at_beam_decode(NULL, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL),
                     AT_E_ARG);
    BAD(AT_E_ARG, m, NULL, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, NULL, 64, len, NULL);
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, NULL, NULL);
    BAD(AT_E_ARG, m, src, 0, 3, 0, 1, 2, &o, out, 64, len, NULL);
    BAD(AT_E_ARG, m, src, 1, 0, 0, 1, 2, &o, out, 64, len, NULL);
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 4, len, NULL);     /* out_cols */
    o.beam_size = 0;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.beam_size = -3;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.beam_size = AT_BEAM_MAX + 1;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.beam_size = 4;
    o.alpha = -0.1;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.alpha = NAN;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.alpha = INFINITY;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.alpha = 0.6;
    o.max_len_a = NAN;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.max_len_a = 1, o.max_len_b = 0;                                 /* 1 id: too short */
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.max_len_a = 10, o.max_len_b = -1;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);
    o.max_len_b = 2;
    BAD(AT_E_RANGE, m, src, 1, 3, 0, 9, 2, &o, out, 64, len, NULL);   /* start */
    BAD(AT_E_RANGE, m, src, 1, 3, 0, -1, 2, &o, out, 64, len, NULL);
    BAD(AT_E_RANGE, m, src, 1, 3, 0, 1, 9, &o, out, 64, len, NULL);   /* end */
    BAD(AT_E_RANGE, m, src, 1, 3, 0, 1, -2, &o, out, 64, len, NULL);
    BAD(AT_E_RANGE, m, src, 1, 65, 0, 1, 2, &o, out, 64, len, NULL);  /* longer than max_len */
    src[2] = 7;
    BAD(AT_E_RANGE, m, src, 1, 3, 0, 1, 2, &o, out, 64, len, NULL);   /* source id */
    src[2] = 3;
    BAD(AT_E_RANGE, m, src, INT32_MAX / 8, 3, 0, 1, 2, &o, out, 64, len, NULL);
    at_beam_options small = o;
    small.struct_size = sizeof(size_t);
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &small, out, 64, len, NULL);
    /* a newer header's larger struct: accepted while its new fields are zero */
    struct { at_beam_options o; double newer; } big = {o, 0};
    big.o.struct_size = sizeof big;
    ck_assert_int_eq(at_beam_decode(m, src, 1, 3, 0, 1, 2, &big.o, out, 64, len, NULL), AT_OK);
    big.newer = 1;
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, &big.o, out, 64, len, NULL);

    /* and then it works, its generation one higher; NULL options are the defaults */
    uint64_t g0 = at_model_generation(m);
    double score;
    ck_assert_int_eq(at_beam_decode(m, src, 1, 3, 0, 1, 2, NULL, out, 64, len, &score), AT_OK);
    ck_assert_int_eq(at_model_generation(m), g0 + 1);
    ck_assert(len[0] >= 2 && len[0] <= 10 + 2 * 3);
    ck_assert(isfinite(score) && score <= 0);
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &v), AT_OK);
    ck_assert_int_eq(v.shape[2], len[0] - 1);
    /* the defaults: a + b·|x| = 10 + 2·3 ids, so 16 columns are enough, 15 are not */
    ck_assert_int_eq(at_beam_decode(m, src, 1, 3, 0, 1, 2, NULL, out, 16, len, NULL), AT_OK);
    BAD(AT_E_ARG, m, src, 1, 3, 0, 1, 2, NULL, out, 15, len, NULL);
    at_beam_options_init(NULL);
#undef BAD
    at_model_free(m);
}
END_TEST

/* Weights that overflow: AT_E_NUMERIC naming the row, no views, no crash. */
START_TEST(beam_non_finite)
{
    at_model *m = small_model(4);
    at_view g;
    ck_assert_int_eq(at_model_find_tensor(m, "generator.proj.weight", &g), AT_OK);
    int idx = -1;
    for (int i = 0; i < at_model_tensor_count(m) && idx < 0; i++) {
        at_view v;
        ck_assert_int_eq(at_model_tensor(m, i, NULL, &v), AT_OK);
        idx = v.data == g.data ? i : -1;
    }
    size_t n = (size_t)(g.shape[0] * g.shape[1]);
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++)
        w[i] = i % 2 ? 3e38f : -3e38f;
    ck_assert_int_eq(at_model_tensor_write(m, idx, w, n), AT_OK);
    int32_t out[4 * 24];
    int len[4];
    at_beam_options o = opts(3, 0.6, 3, 2);
    ck_assert_int_eq(at_beam_decode(m, padded_src, 4, 7, 0, 1, 2, &o, out, 24, len, NULL),
                     AT_E_NUMERIC);
    ck_assert_msg(strstr(at_errmsg(m), "not finite") != NULL, "%s", at_errmsg(m));
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 0, &v), AT_E_STATE);
    free(w);
    at_model_free(m);
}
END_TEST

Suite *suite_beam(void)
{
    Suite *s = suite_create("beam");
    TCase *tc = tcase_create("views");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, views_equal_forward_k1);
    tcase_add_test(tc, views_equal_forward_k4);
    tcase_add_test(tc, k1_is_greedy);
    suite_add_tcase(s, tc);
    tc = tcase_create("search");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, beam_equals_exhaustive);
    tcase_add_test(tc, beam_equals_slow_beam);
    suite_add_tcase(s, tc);
    tc = tcase_create("input");
    tcase_add_test(tc, repeated_beam_allocates_nothing);
    tcase_add_test(tc, beam_bad_input);
    tcase_add_test(tc, beam_non_finite);
    suite_add_tcase(s, tc);
    return s;
}
