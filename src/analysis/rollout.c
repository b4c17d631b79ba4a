/* Attention rollout and flow (Abnar & Zuidema 2020) and value-norm attention
 * (Kobayashi et al. 2020) of the last pass: include/at_analysis.h, group
 * rollout, and docs/rollout.md. Everything is read from the pass's views and
 * arena; nothing is written to the handle but its error message. Sums are in
 * double: rollout multiplies N matrices, flow compares residual capacities. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "model/internal.h"

static const char *kind_name(at_attn_kind k)
{
    return k == AT_ATTN_ENC_SELF ? "enc_self" : k == AT_ATTN_DEC_SELF ? "dec_self" : "cross";
}

static bool kind_ok(at_attn_kind k)
{
    return k == AT_ATTN_ENC_SELF || k == AT_ATTN_DEC_SELF || k == AT_ATTN_CROSS;
}

static const attn_a *block_of(const at_model *m, at_attn_kind kind, int layer)
{
    return kind == AT_ATTN_ENC_SELF ? &m->a.enc[layer].sa
           : kind == AT_ATTN_DEC_SELF ? &m->a.dec[layer].sa : &m->a.dec[layer].ca;
}

/* Whether kind's attention of layers [l0, l1) is there with every head: the
 * methods average or weigh all heads, so a capture policy that dropped one
 * leaves nothing to compute from (AT_E_STATE, as the views say). */
static at_status need(at_model *m, at_attn_kind kind, int l0, int l1, const char *who)
{
    bool have = kind == AT_ATTN_ENC_SELF ? m->have_enc : m->have_dec;
    if (!have)
        return set_error(m, AT_E_STATE, "%s: no %s attention has been computed (run "
                         "at_forward%s first)", who, kind_name(kind),
                         kind == AT_ATTN_ENC_SELF ? "" : " with a target");
    for (int l = l0; l < l1; l++)
        if (block_of(m, kind, l)->nkept != m->dm.heads)
            return set_error(m, AT_E_STATE, "%s: the capture policy dropped heads of %s "
                             "layer %d; keep them all (at_capture_set) and run the pass again",
                             who, kind_name(kind), l);
    return AT_OK;
}

/* Query and key lengths of kind in the last pass. */
static void lengths(const at_model *m, at_attn_kind kind, int *lq, int *lk)
{
    *lq = kind == AT_ATTN_ENC_SELF ? m->S : m->T;
    *lk = kind == AT_ATTN_DEC_SELF ? m->T : m->S;
}

/* ---- rollout ---- */

/* out (lq, lk) = the mean over heads of row b of view v. */
static void head_mean(const at_view *v, int64_t b, double *out)
{
    int64_t H = v->shape[1], lq = v->shape[2], lk = v->shape[3];
    memset(out, 0, (size_t)(lq * lk) * sizeof *out);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < lq; i++) {
            const float *p = v->data + b * v->stride[0] + h * v->stride[1] + i * v->stride[2];
            for (int64_t j = 0; j < lk; j++)
                out[i * lk + j] += p[j];
        }
    for (int64_t k = 0; k < lq * lk; k++)
        out[k] /= (double)H;
}

/* Ã = ½·Ā + ½·I, rows renormalised (Abnar & Zuidema §3: the residual
 * connection as an identity of equal weight). Every row, padded queries
 * too: a row that does not sum to 1 (all keys masked) is scaled as well. */
static void add_residual(double *a, int L)
{
    for (int i = 0; i < L; i++) {
        double *r = a + (size_t)i * L, sum = 0;
        for (int j = 0; j < L; j++) {
            r[j] = 0.5 * r[j] + (i == j ? 0.5 : 0.0);
            sum += r[j];
        }
        for (int j = 0; j < L && sum > 0; j++)
            r[j] /= sum;
    }
}

/* c (n, k) = a (n, n) · b (n, k). */
static void matmul(double *c, const double *a, const double *b, int n, int k)
{
    memset(c, 0, (size_t)n * k * sizeof *c);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < n; t++) {
            double x = a[(size_t)i * n + t];
            if (x == 0)
                continue;
            const double *br = b + (size_t)t * k;
            double *cr = c + (size_t)i * k;
            for (int j = 0; j < k; j++)
                cr[j] += x * br[j];
        }
}

static void identity(double *r, int L)
{
    memset(r, 0, (size_t)L * L * sizeof *r);
    for (int i = 0; i < L; i++)
        r[(size_t)i * L + i] = 1;
}

/* Scratch of one rollout: six (L, L) matrices for the largest L (the
 * product, a layer's Ã, a temporary; for cross-attention R_ss, Ā_c·R_ss and
 * the result). */
typedef struct work { double *r, *a, *t, *x, *y, *z; } work;

static at_status work_alloc(at_model *m, work *w, const char *who)
{
    size_t L = (size_t)(m->S > m->T ? m->S : m->T), n = L * L;
    double *p = malloc(6 * n * sizeof *p);
    if (!p)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    *w = (work){p, p + n, p + 2 * n, p + 3 * n, p + 4 * n, p + 5 * n};
    return AT_OK;
}

/* r (L, L) = Ã_N ⋯ Ã_1 of kind's self-attention, row b (uses w->a, w->t). */
static void self_rollout(at_model *m, at_attn_kind kind, int64_t b, int L, double *r, work *w)
{
    identity(r, L);
    for (int l = 0; l < m->dm.layers; l++) {
        at_view v;
        at_get_attention(m, kind, l, &v);   /* need() checked it */
        head_mean(&v, b, w->a);
        add_residual(w->a, L);
        matmul(w->t, w->a, r, L, L);   /* layer l acts after the ones below it */
        memcpy(r, w->t, (size_t)L * L * sizeof *r);
    }
}

/* Target-to-source rollout of row b into rts (T, S): Chefer et al. 2021's
 * encoder–decoder rules (their §3.2: self-attention propagates both the
 * target–target map P and the target–source map R; cross-attention adds the
 * attended source tokens' own encoder map R_ss) with rollout's ½ residual
 * weights instead of their gradient-weighted sums, so every row of [P | R]
 * stays a distribution over the target and source tokens. */
static void cross_rollout(at_model *m, int64_t b, double *rts, work *w)
{
    int S = m->S, T = m->T;
    double *rss = w->x, *p = w->r, *c = w->y;
    self_rollout(m, AT_ATTN_ENC_SELF, b, S, rss, w);
    identity(p, T);
    memset(rts, 0, (size_t)T * S * sizeof *rts);
    for (int l = 0; l < m->dm.layers; l++) {
        at_view v;
        at_get_attention(m, AT_ATTN_DEC_SELF, l, &v);
        head_mean(&v, b, w->a);
        add_residual(w->a, T);
        matmul(w->t, w->a, p, T, T);
        memcpy(p, w->t, (size_t)T * T * sizeof *p);
        matmul(w->t, w->a, rts, T, S);
        memcpy(rts, w->t, (size_t)T * S * sizeof *rts);
        /* cross-attention's residual keeps half of the target's state; the
         * other half is the attended memory, whose tokens carry R_ss */
        at_get_attention(m, AT_ATTN_CROSS, l, &v);
        head_mean(&v, b, w->a);
        for (int i = 0; i < T; i++)
            for (int j = 0; j < S; j++) {
                double s = 0;
                for (int k = 0; k < S; k++)
                    s += w->a[(size_t)i * S + k] * rss[(size_t)k * S + j];
                c[(size_t)i * S + j] = s;
            }
        for (size_t k = 0; k < (size_t)T * S; k++)
            rts[k] = 0.5 * rts[k] + 0.5 * c[k];
        for (size_t k = 0; k < (size_t)T * T; k++)
            p[k] *= 0.5;
    }
}

static at_status rollout_checks(at_model *m, at_attn_kind kind, const void *out,
                                const char *who)
{
    if (!out)
        return set_error(m, AT_E_ARG, "%s: out is NULL", who);
    if (!kind_ok(kind))
        return set_error(m, AT_E_ARG, "%s: unknown kind %d", who, (int)kind);
    int N = m->dm.layers;
    at_status s = need(m, AT_ATTN_ENC_SELF == kind ? kind : AT_ATTN_DEC_SELF, 0, N, who);
    if (s == AT_OK && kind == AT_ATTN_CROSS)
        s = need(m, AT_ATTN_CROSS, 0, N, who);
    if (s == AT_OK && kind == AT_ATTN_CROSS)
        s = need(m, AT_ATTN_ENC_SELF, 0, N, who);
    return s;
}

static at_status rollout_call(at_model *m, at_attn_kind kind, float *out)
{
    const char *who = "at_rollout";
    at_status s = rollout_checks(m, kind, out, who);
    work w = {0};
    if (s != AT_OK || (s = work_alloc(m, &w, who)) != AT_OK)
        return s;
    int lq, lk;
    lengths(m, kind, &lq, &lk);
    size_t n = (size_t)lq * lk;
    for (int64_t b = 0; b < m->B; b++) {
        if (kind == AT_ATTN_CROSS)
            cross_rollout(m, b, w.z, &w);
        else
            self_rollout(m, kind, b, lq, w.z, &w);
        for (size_t k = 0; k < n; k++)
            out[(size_t)b * n + k] = (float)w.z[k];
    }
    free(w.r);
    return AT_OK;
}

at_status at_rollout(at_model *m, at_attn_kind kind, float *out)
{
    GUARDED(m, "at_rollout", rollout_call(m, kind, out));
}

/* ---- flow ---- */

/* The layered graph of Abnar & Zuidema §3 (attention flow), dense: node
 * (l, i) is position i after layer l (l = 0: the input), id l·L + i. Its
 * arcs, numbered k = 0 .. 2L − 1: k < L the edge down to (l − 1, k) with
 * residual capacity cap − f; k ≥ L the reverse of the edge from
 * (l + 1, k − L) down to it, residual f. Dinic's algorithm: BFS levels, then
 * blocking flows by DFS with a current arc per node; O(V²·E) per pair. */
typedef struct flowg {
    int N, L;
    const double *cap;            /* N·L·L: cap[(l − 1)·L² + i·L + j], l = 1 .. N */
    double *f;                    /* the flow on those edges */
    int *level, *arc, *queue;     /* per node */
} flowg;

#define FLOW_EPS 1e-12            /* capacities are products of probabilities ≥ 0 */

/* Residual capacity of arc k of node u; *to the other end, *e the edge,
 * *down whether the arc follows it. */
static double residual(const flowg *g, int u, int k, int *to, size_t *e, bool *down)
{
    int L = g->L, l = u / L, i = u % L;
    size_t L2 = (size_t)L * L;
    if (k < L) {
        if (l == 0)
            return 0;
        *to = (l - 1) * L + k;
        *e = (size_t)(l - 1) * L2 + (size_t)i * L + k;
        *down = true;
        return g->cap[*e] - g->f[*e];
    }
    if (l == g->N)
        return 0;
    *to = (l + 1) * L + (k - L);
    *e = (size_t)l * L2 + (size_t)(k - L) * L + i;
    *down = false;
    return g->f[*e];
}

static bool bfs(flowg *g, int s, int t)
{
    int V = (g->N + 1) * g->L, head = 0, tail = 0;
    for (int u = 0; u < V; u++)
        g->level[u] = -1;
    g->level[s] = 0;
    g->queue[tail++] = s;
    while (head < tail) {
        int u = g->queue[head++];
        for (int k = 0; k < 2 * g->L; k++) {
            int to;
            size_t e;
            bool down;
            if (residual(g, u, k, &to, &e, &down) > FLOW_EPS && g->level[to] < 0) {
                g->level[to] = g->level[u] + 1;
                g->queue[tail++] = to;
            }
        }
    }
    return g->level[t] >= 0;
}

static double dfs(flowg *g, int u, int t, double pushed)
{
    if (u == t)
        return pushed;
    for (; g->arc[u] < 2 * g->L; g->arc[u]++) {
        int to;
        size_t e;
        bool down;
        double r = residual(g, u, g->arc[u], &to, &e, &down);
        if (r <= FLOW_EPS || g->level[to] != g->level[u] + 1)
            continue;
        double d = dfs(g, to, t, pushed < r ? pushed : r);
        if (d > FLOW_EPS) {
            g->f[e] += down ? d : -d;
            return d;
        }
    }
    return 0;
}

static double max_flow(flowg *g, int s, int t)
{
    int V = (g->N + 1) * g->L;
    memset(g->f, 0, (size_t)g->N * g->L * g->L * sizeof *g->f);
    double total = 0;
    while (bfs(g, s, t)) {
        memset(g->arc, 0, (size_t)V * sizeof *g->arc);
        double d;
        while ((d = dfs(g, s, t, INFINITY)) > FLOW_EPS)
            total += d;
    }
    return total;
}

/* The capacities of row b: Ã_l for l = 1 .. N (as at_rollout's). */
static void flow_caps(at_model *m, at_attn_kind kind, int64_t b, int L, double *cap)
{
    size_t L2 = (size_t)L * L;
    for (int l = 0; l < m->dm.layers; l++) {
        at_view v;
        at_get_attention(m, kind, l, &v);
        head_mean(&v, b, cap + (size_t)l * L2);
        add_residual(cap + (size_t)l * L2, L);
    }
}

static at_status flow_call(at_model *m, at_attn_kind kind, float *out)
{
    const char *who = "at_attention_flow";
    if (!out)
        return set_error(m, AT_E_ARG, "%s: out is NULL", who);
    if (kind != AT_ATTN_ENC_SELF && kind != AT_ATTN_DEC_SELF)
        return set_error(m, AT_E_ARG, "%s: kind %d: flow is defined over self-attention "
                         "(enc_self %d or dec_self %d)", who, (int)kind, AT_ATTN_ENC_SELF,
                         AT_ATTN_DEC_SELF);
    int N = m->dm.layers;
    at_status s = need(m, kind, 0, N, who);
    if (s != AT_OK)
        return s;
    int L = kind == AT_ATTN_ENC_SELF ? m->S : m->T;
    if (L > AT_FLOW_MAX_LEN)
        return set_error(m, AT_E_RANGE, "%s: %s length %d: attention flow takes at most %d "
                         "tokens (it solves L^2 maximum flows per row)", who, kind_name(kind),
                         L, AT_FLOW_MAX_LEN);
    size_t L2 = (size_t)L * L, V = (size_t)(N + 1) * L;
    double *mem = malloc(2 * (size_t)N * L2 * sizeof *mem);
    int *imem = malloc(3 * V * sizeof *imem);
    if (!mem || !imem) {
        free(mem);
        free(imem);
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    }
    flowg g = {N, L, mem, mem + (size_t)N * L2, imem, imem + V, imem + 2 * V};
    for (int64_t b = 0; b < m->B; b++) {
        flow_caps(m, kind, b, L, mem);
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++)
                out[(size_t)b * L2 + (size_t)i * L + j] =
                    (float)max_flow(&g, N * L + i, j);
    }
    free(mem);
    free(imem);
    return AT_OK;
}

at_status at_attention_flow(at_model *m, at_attn_kind kind, float *out)
{
    GUARDED(m, "at_attention_flow", flow_call(m, kind, out));
}

/* ---- value norms ---- */

/* The output projection of kind's layer: (d, d) stored (out, in), so head
 * h's slice W_O^h is the columns h·d_k .. (h + 1)·d_k of every row. */
static const float *out_proj(const at_model *m, at_attn_kind kind, int layer)
{
    const params *p = &m->w->p;
    return kind == AT_ATTN_ENC_SELF ? p->enc[layer].sa.o.w
           : kind == AT_ATTN_DEC_SELF ? p->dec[layer].sa.o.w : p->dec[layer].ca.o.w;
}

/* norms[(b·H + h)·lk + j] = ‖v_j^h · W_O^h‖: Kobayashi et al. §3's ‖f(x_j)‖,
 * which does not depend on the query, so one per key and head. */
static void value_norms(const at_model *m, at_attn_kind kind, int layer, int lk,
                        double *norms)
{
    const attn_a *a = block_of(m, kind, layer);
    const float *W = out_proj(m, kind, layer);
    int d = m->dm.d, H = m->dm.heads, dk = d / H;
    /* the layout's key length: the decoder's is Tl after a decode that stopped early */
    int64_t rows = kind == AT_ATTN_DEC_SELF ? m->Tl : m->S;
    for (int64_t b = 0; b < m->B; b++)
        for (int h = 0; h < H; h++)
            for (int j = 0; j < lk; j++) {
                const float *v = a->v + ((size_t)b * rows + j) * (size_t)a->ldkv +
                                 (size_t)h * dk;
                double sq = 0;
                for (int r = 0; r < d; r++) {
                    const float *w = W + (size_t)r * d + (size_t)h * dk;
                    double y = 0;
                    for (int c = 0; c < dk; c++)
                        y += (double)w[c] * v[c];
                    sq += y * y;
                }
                norms[((size_t)b * H + h) * lk + j] = sqrt(sq);
            }
}

static at_status value_norm_call(at_model *m, at_attn_kind kind, int layer, float *out)
{
    const char *who = "at_value_norm";
    if (!out)
        return set_error(m, AT_E_ARG, "%s: out is NULL", who);
    if (!kind_ok(kind))
        return set_error(m, AT_E_ARG, "%s: unknown kind %d", who, (int)kind);
    if (layer < 0 || layer >= m->dm.layers)
        return set_error(m, AT_E_ARG, "%s: layer %d is outside [0, %d)", who, layer,
                         m->dm.layers);
    at_status s = need(m, kind, layer, layer + 1, who);
    if (s != AT_OK)
        return s;
    int lq, lk, H = m->dm.heads;
    lengths(m, kind, &lq, &lk);
    double *norms = malloc((size_t)m->B * H * lk * sizeof *norms);
    if (!norms)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    value_norms(m, kind, layer, lk, norms);
    at_view v;
    at_get_attention(m, kind, layer, &v);
    float *o = out;
    for (int64_t b = 0; b < m->B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < lq; i++) {
                const float *p = v.data + b * v.stride[0] + h * v.stride[1] + i * v.stride[2];
                const double *nb = norms + ((size_t)b * H + h) * lk;
                /* α ≥ 0, so ‖α·f(x)‖ = α·‖f(x)‖ */
                for (int j = 0; j < lk; j++)
                    *o++ = (float)(p[j] * nb[j]);
            }
    free(norms);
    return AT_OK;
}

at_status at_value_norm(at_model *m, at_attn_kind kind, int layer, float *out)
{
    GUARDED(m, "at_value_norm", value_norm_call(m, kind, layer, out));
}
