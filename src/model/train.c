/* Training: the label-smoothed loss, the walk back through the layers, Adam
 * with the Noam rate (SEMANTICS §10–§12). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "model/internal.h"

/* Backward buffers for one (B, S, T). */
typedef struct grads_a {
    float *stream;     /* gradient of the residual stream, (rows, d) */
    float *y;          /* of a norm's output, (rows, d) */
    float *sub;        /* of a sublayer's output before dropout, (rows, d) */
    float *qkv;        /* of q, k, v (self) or q (cross), (rows, 3d) */
    float *ctx;        /* of the concatenated heads, (rows, d) */
    float *h;          /* of the feed-forward hidden layer, (rows, d_ff) */
    float *cross_kv;   /* of every layer's cross k and v, (B·S, layers·2d) */
    float *logits;     /* (B·T, V) */
    float *mem;        /* of the memory, (B·S, d) */
    float *s1, *s2;    /* (Lq, Lk) per pool part */
    float *norm_part;  /* (NORM_CHUNKS, 2d) partial sums of a norm's gradient */
    double *row_loss;  /* (B·T) the loss of each row */
    float *loss_part;  /* (NORM_CHUNKS, V) partial sums of the generator's bias gradient */
    float *sum;        /* a weight gradient's slices (gemm_sum_tn), for the largest weight */
} grads_a;

/* The scratch of the largest weight gradient summed in slices: the
 * generator, a feed-forward matrix, the fused q, k, v, or every layer's
 * cross-attention k and v (out, in). */
static size_t largest_weight_sum(const dims *dm)
{
    size_t d = (size_t)dm->d, shapes[][2] = {{(size_t)dm->tgt_vocab, d}, {(size_t)dm->d_ff, d},
                                            {d, (size_t)dm->d_ff}, {3 * d, d},
                                            {2 * d * (size_t)dm->layers, d}};
    size_t most = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t n = sum_scratch_floats(shapes[i][0], shapes[i][1]);
        most = n > most ? n : most;
    }
    return most;
}

static size_t carve_grads(const at_model *m, float *base, grads_a *g)
{
    const dims *dm = &m->dm;
    size_t B = (size_t)m->B, S = (size_t)m->S, T = (size_t)m->T, d = (size_t)dm->d;
    size_t rows = B * (S > T ? S : T);
    size_t plane = (S > T ? S : T) * (S > T ? S : T) * (size_t)m->scratch_parts;
    size_t sizes[] = {rows * d, rows * d, rows * d, rows * 3 * d, rows * d,
                      rows * (size_t)dm->d_ff, B * S * 2 * d * (size_t)dm->layers,
                      B * T * (size_t)dm->tgt_vocab, B * S * d, plane, plane,
                      NORM_CHUNKS * 2 * d, 2 * B * T, NORM_CHUNKS * (size_t)dm->tgt_vocab,
                      largest_weight_sum(dm)};
    float *row_loss;
    float **slots[] = {&g->stream, &g->y, &g->sub, &g->qkv, &g->ctx, &g->h, &g->cross_kv,
                       &g->logits, &g->mem, &g->s1, &g->s2, &g->norm_part, &row_loss,
                       &g->loss_part, &g->sum};
    size_t used = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *slots[i] = base ? base + used : NULL;
        used += (sizes[i] + 15) & ~(size_t)15;
    }
    g->row_loss = (double *)(void *)row_loss;   /* 64-byte aligned, two floats a double */
    /* ∂L/∂A of every block, when at_attention_gradients asks */
    for (int k = 0; m->tr.keep_agrad && k < 3; k++)
        for (int l = 0; l < dm->layers; l++) {
            size_t lq = k == AT_ATTN_ENC_SELF ? S : T, lk = k == AT_ATTN_DEC_SELF ? T : S;
            m->tr.agrad[k * dm->layers + l] = base ? base + used : NULL;
            used += (B * (size_t)dm->heads * lq * lk + 15) & ~(size_t)15;
        }
    return used;
}

/* Gradient and moment slabs, made by the first training step. */
at_status train_alloc(at_model *m, const char *who)
{
    train_state *t = &m->tr;
    if (t->grad)
        return AT_OK;
    t->grad = slab_calloc(m->w->sh.nparams, sizeof(float));
    t->m1 = slab_calloc(m->w->sh.nparams, sizeof(float));
    t->m2 = slab_calloc(m->w->sh.nparams, sizeof(float));
    if (t->grad)
        t->g = params_rebase(m, t->grad);
    if (!t->grad || !t->m1 || !t->m2 || !t->g.enc) {
        uint64_t step = t->step;
        train_free(t);
        t->step = step;
        return set_error(m, AT_E_NOMEM, "%s: out of memory for gradients and Adam moments "
                         "(%zu MiB)", who, 3 * m->w->sh.nparams * sizeof(float) >> 20);
    }
    return AT_OK;
}

static at_status work_fit(at_model *m, grads_a *g, const char *who)
{
    size_t need = carve_grads(m, NULL, g);
    train_state *t = &m->tr;
    if (need > t->work_cap) {
        free(t->work);
        t->work = slab_alloc(need * sizeof(float));
        t->work_cap = t->work ? need : 0;
        if (!t->work)
            return set_error(m, AT_E_NOMEM, "%s: out of memory for backward buffers (%zu MiB)",
                             who, need * sizeof(float) >> 20);
    }
    carve_grads(m, t->work, g);
    return AT_OK;
}

/* out = resid + dropout(x·Wᵀ + b), backward: the residual passes d_out on
 * unchanged (it stays in g->stream); the linear sees d_out through the
 * dropout. dx receives the linear's input gradient. */
static void sublayer_backward(float *dx, linear gw, const float *x, linear w, int rows, int in,
                              int out, const at_model *m, grads_a *g, uint64_t key)
{
    const float *dsub = g->stream;
    if (m->dr.on && m->dr.p > 0) {
        dropout_copy(g->sub, g->stream, (size_t)rows * out, key, m->dr.p,
                     drop_origin(&m->dr, (size_t)(rows / m->B) * out));
        dsub = g->sub;
    }
    linear_backward(dx, gw.w, gw.b, dsub, x, w.w, rows, in, out, false, g->sum);
}

/* x_out = x + FF(LN(x)) backward, given g->stream = d x_out; leaves d x. */
static void ff_backward(const at_model *m, const ff_p *p, const ff_p *gp, const norm *ln,
                        const norm *gln, const norm_a *lna, const float *x, const float *h,
                        int rows, grads_a *g, int stack, int layer)
{
    const dims *dm = &m->dm;
    const float *dsub = g->stream;
    if (m->dr.on && m->dr.p > 0) {
        dropout_copy(g->sub, g->stream, (size_t)rows * dm->d,
                     drop_site(&m->dr, stack, layer, SITE_FF_OUT), m->dr.p,
                     drop_origin(&m->dr, (size_t)(rows / m->B) * dm->d));
        dsub = g->sub;
    }
    ff_out_backward(g->h, gp->w2.w, gp->w2.b, dsub, h, p->w2.w, rows, dm->d_ff, dm->d,
                    m->dr.on ? m->dr.p : 0.0f, g->sum);
    linear_backward(g->y, gp->w1.w, gp->w1.b, g->h, lna->y, p->w1.w, rows, dm->d, dm->d_ff,
                    false, g->sum);
    norm_backward(g->stream, *gln, g->y, x, *lna, *ln, rows, dm->d, g->norm_part);
}

/* ctx = ξ ⊙ hout per head (Michel et al. 2019): ∂L/∂ξ_j = Σ dctx_j · hout_j
 * over the rows and the head's columns; then dctx becomes ∂L/∂hout = ξ dctx.
 * Computed whenever the handle has interventions (one pass over ctx). */
static void gate_backward(const at_model *m, int kind, int layer, float *dctx, const attn_a *a,
                          int rows)
{
    interv *iv = m->iv;
    if (!iv)
        return;
    const int d = m->dm.d, h = m->dm.heads, dk = d / h;
    const float *x = a->hout ? a->hout : a->ctx, *gate = iv_gates(m, kind, layer);
    float *gg = iv->gate_grad + (size_t)blk_index(iv, kind, layer) * h;
    for (int j = 0; j < h; j++) {
        double sum = 0;
        for (int r = 0; r < rows; r++) {
            const float *dr = dctx + (size_t)r * d + (size_t)j * dk;
            const float *xr = x + (size_t)r * d + (size_t)j * dk;
            for (int c = 0; c < dk; c++)
                sum += (double)dr[c] * xr[c];
        }
        gg[j] = (float)sum;
    }
    if (gate)
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < h; j++)
                if (gate[j] != 1.0f)
                    for (int c = 0; c < dk; c++)
                        dctx[(size_t)r * d + (size_t)j * dk + c] *= gate[j];
}

/* The key bias's gradient is exactly 0: it adds q·b to every score of a
 * query, which softmax ignores, so the column sums of dk are float noise
 * around 0 (~1e-10) that Adam's first steps, lr·g/(|g| + ε), would turn into
 * moves of up to lr, different whenever the sums are taken in another order
 * (another thread count, the shards of a data-parallel step). The exact
 * value keeps those runs equal; the reference's noisy moves of this bias do
 * not change any output either. */
static void key_bias_exact(float *db, int d)
{
    memset(db, 0, (size_t)d * sizeof *db);
}

/* x_out = x + SA(LN(x)) backward; q, k, v through their fused (3d, d) block. */
static void self_attention_backward(const at_model *m, const attn_p *p, const attn_p *gp,
                                    const norm *ln, const norm *gln, const norm_a *lna,
                                    const attn_a *a, const float *x, int rows,
                                    const attn_call *c, grads_a *g, int stack, int layer)
{
    int d = m->dm.d;
    sublayer_backward(g->ctx, gp->o, a->ctx, p->o, rows, d, d, m, g,
                      drop_site(&m->dr, stack, layer, SITE_SA_OUT));
    gate_backward(m, stack ? AT_ATTN_DEC_SELF : AT_ATTN_ENC_SELF, layer, g->ctx, a, rows);
    attn_a ga = *a;
    ga.q = g->qkv, ga.k = g->qkv + d, ga.v = g->qkv + 2 * d;
    attention_backward(ga, g->ctx, *a, c, g->s1, g->s2);
    linear_backward(g->y, gp->q.w, gp->q.b, g->qkv, lna->y, p->q.w, rows, d, 3 * d, false,
                    g->sum);
    key_bias_exact(gp->q.b + d, d);
    norm_backward(g->stream, *gln, g->y, x, *lna, *ln, rows, d, g->norm_part);
}

static void encoder_backward(const at_model *m, grads_a *g, int l)
{
    const enc_p *p = &m->w->p.enc[l], *gp = &m->tr.g.enc[l];
    const enc_a *a = &m->a.enc[l];
    const float *x = l ? m->a.enc[l - 1].out : m->a.src_emb;
    int rows = m->B * m->S;
    ff_backward(m, &p->ff, &gp->ff, &p->ln[1], &gp->ln[1], &a->ln[1], a->mid, a->ff_h, rows,
                g, 0, l);
    attn_call c = attn_call_for(m, 0, l, false);
    self_attention_backward(m, &p->sa, &gp->sa, &p->ln[0], &gp->ln[0], &a->ln[0], &a->sa, x,
                            rows, &c, g, 0, l);
}

static void decoder_backward(const at_model *m, grads_a *g, int l)
{
    const dec_p *p = &m->w->p.dec[l], *gp = &m->tr.g.dec[l];
    const dec_a *a = &m->a.dec[l];
    const float *x = l ? m->a.dec[l - 1].out : m->a.tgt_emb;
    int rows = m->B * m->T, d = m->dm.d;
    ff_backward(m, &p->ff, &gp->ff, &p->ln[2], &gp->ln[2], &a->ln[2], a->mid2, a->ff_h, rows,
                g, 1, l);

    /* cross-attention: q from LN1(x); k and v into this layer's columns of
     * the shared block, whose weights get their gradient in one GEMM later */
    sublayer_backward(g->ctx, gp->ca.o, a->ca.ctx, p->ca.o, rows, d, d, m, g,
                      drop_site(&m->dr, 1, l, SITE_CA_OUT));
    gate_backward(m, AT_ATTN_CROSS, l, g->ctx, &a->ca, rows);
    attn_a ga = a->ca;
    ga.q = g->qkv;
    ga.k = g->cross_kv + (size_t)l * 2 * d;
    ga.v = ga.k + d;
    attn_call c = attn_call_for(m, 1, l, true);
    attention_backward(ga, g->ctx, a->ca, &c, g->s1, g->s2);
    linear_backward(g->y, gp->ca.q.w, gp->ca.q.b, g->qkv, a->ln[1].y, p->ca.q.w, rows, d, d,
                    false, g->sum);
    norm_backward(g->stream, gp->ln[1], g->y, a->mid1, a->ln[1], p->ln[1], rows, d, g->norm_part);

    c = attn_call_for(m, 1, l, false);
    self_attention_backward(m, &p->sa, &gp->sa, &p->ln[0], &gp->ln[0], &a->ln[0], &a->sa, x,
                            rows, &c, g, 1, l);
}

/* Gradients of loss_sum/ntokens for every parameter, after forward_pass in
 * training mode. Every parameter gradient is written exactly once (the
 * kernels write rather than add; the embedding tables, filled by scatter-add,
 * are zeroed first), so no pass zeroes the gradient slab. Returns loss_sum. */
static double backward(at_model *m, grads_a *g, const int32_t *src, const int32_t *tgt_in,
                       const int32_t *labels, int32_t pad, int64_t ntokens, double smoothing)
{
    const dims *dm = &m->dm;
    const params *p = &m->w->p;
    params *gp = &m->tr.g;
    acts *a = &m->a;
    int B = m->B, S = m->S, T = m->T, d = dm->d, L = dm->layers, V = dm->tgt_vocab;
    int rs = B * S, rt = B * T;

    double loss_sum = loss_grad(g->logits, gp->gen.b, a->logp, labels, rt, V, pad, smoothing,
                                ntokens, g->row_loss, g->loss_part);
    linear_backward(g->y, gp->gen.w, NULL, g->logits, a->dec_out.y, p->gen.w, rt, d, V, false,
                    g->sum);
    memset(g->stream, 0, (size_t)rt * d * sizeof(float));
    norm_backward(g->stream, gp->dec_norm, g->y, a->dec[L - 1].out, a->dec_out, p->dec_norm,
                  rt, d, g->norm_part);
    for (int l = L - 1; l >= 0; l--)
        decoder_backward(m, g, l);
    if (m->dr.on && m->dr.p > 0)
        dropout_backward(g->stream, (size_t)rt * d, drop_site(&m->dr, 1, -1, SITE_EMB),
                         m->dr.p, drop_origin(&m->dr, (size_t)T * d));
    memset(gp->tgt_lut, 0, (size_t)V * d * sizeof(float));   /* the only scatter-add */
    embed_backward(gp->tgt_lut, g->stream, tgt_in, rt, d);

    linear_backward(g->mem, gp->dec[0].ca.k.w, gp->dec[0].ca.k.b, g->cross_kv, a->memory.y,
                    p->dec[0].ca.k.w, rs, d, 2 * d * L, false, g->sum);
    for (int l = 0; l < L; l++)   /* layer l's k, then its v */
        key_bias_exact(gp->dec[0].ca.k.b + (size_t)l * 2 * d, d);
    memset(g->stream, 0, (size_t)rs * d * sizeof(float));
    norm_backward(g->stream, gp->enc_norm, g->mem, a->enc[L - 1].out, a->memory, p->enc_norm,
                  rs, d, g->norm_part);
    for (int l = L - 1; l >= 0; l--)
        encoder_backward(m, g, l);
    if (m->dr.on && m->dr.p > 0)
        dropout_backward(g->stream, (size_t)rs * d, drop_site(&m->dr, 0, -1, SITE_EMB),
                         m->dr.p, drop_origin(&m->dr, (size_t)S * d));
    memset(gp->src_lut, 0, (size_t)dm->src_vocab * d * sizeof(float));
    embed_backward(gp->src_lut, g->stream, src, rs, d);
    return loss_sum;
}

/* Noam (paper §5.3): factor·d^−0.5·min(step^−0.5, step·warmup^−1.5), step 0
 * counted as 1. */
static double noam_rate(const dims *dm, uint64_t step)
{
    double s = step ? (double)step : 1.0;
    return dm->factor * pow(dm->d, -0.5) * fmin(pow(s, -0.5), s * pow(dm->warmup, -1.5));
}

/* LambdaLR evaluates the rate at construction and steps after each update, so
 * optimizer step k (1-based) uses lr·rate(k − 1): steps 1 and 2 share rate(1). */
static double lr_for_step(const dims *dm, uint64_t k)
{
    return dm->lr * noam_rate(dm, k - 1);
}

/* torch.optim.Adam's single-tensor update, in float as torch computes it;
 * bias corrections in double. */
typedef struct adam_job {
    float *p, *g, *m1, *m2;
    float b1, b2, a1, a2, step, bc2s, eps;
    float z[POOL_ANY];            /* adam_check: per part, 0 while all is finite */
} adam_job;

/* One element of the update (paper §5.3); adam_part and adam_check must
 * compute it alike, so they share this. */
static inline void adam_element(const adam_job *j, float p, float g, float m1, float m2,
                                float *np, float *nm1, float *nm2)
{
    *nm1 = m1 * j->b1 + g * j->a1;
    *nm2 = m2 * j->b2 + g * g * j->a2;
    float denom = sqrtf(*nm2) / j->bc2s + j->eps;
    *np = p + -j->step * (*nm1 / denom);
}

static void adam_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    const adam_job *j = ctx;
    float *restrict p = j->p, *restrict m1 = j->m1, *restrict m2 = j->m2;
    const float *restrict g = j->g;
    for (size_t i = i0; i < i1; i++)
        adam_element(j, p[i], g[i], m1[i], m2[i], &p[i], &m1[i], &m2[i]);
}

/* The update computed and dropped: x·0 is 0 for every finite x and NaN for
 * NaN and ±inf, so z stays 0 exactly when every new parameter and moment
 * (and so every gradient) is finite. */
static void adam_check(void *ctx, size_t i0, size_t i1, int part)
{
    adam_job *j = ctx;
    const float *restrict p = j->p, *restrict m1 = j->m1, *restrict m2 = j->m2, *restrict g = j->g;
    float z = 0.0f;
    for (size_t i = i0; i < i1; i++) {
        float np, nm1, nm2;
        adam_element(j, p[i], g[i], m1[i], m2[i], &np, &nm1, &nm2);
        z += (np + nm1 + nm2) * 0.0f;
    }
    j->z[part] = z;
}

/* Adam for optimizer step k (1-based). */
static adam_job adam_for(at_model *m, uint64_t k)
{
    train_state *t = &m->tr;
    const dims *dm = &m->dm;
    double lr = lr_for_step(dm, k);
    double bc1 = 1.0 - pow(dm->beta1, (double)k), bc2 = 1.0 - pow(dm->beta2, (double)k);
    return (adam_job){m->w->sh.param_mem, t->grad, t->m1, t->m2,
                      (float)dm->beta1, (float)dm->beta2, (float)(1.0 - dm->beta1),
                      (float)(1.0 - dm->beta2), (float)(lr / bc1), (float)sqrt(bc2),
                      (float)dm->adam_eps, {0}};
}

/* Least parameters per part of the optimizer step: Adam reads and writes
 * four slabs (params, grad, m1, m2), bound by memory bandwidth, so a part
 * must be large to be worth a pool thread. */
#define ADAM_GRAIN 65536

static void adam_step(at_model *m, adam_job *j)
{
    m->tr.step++;
    pool_for(m->w->sh.nparams, ADAM_GRAIN, POOL_ANY, adam_part, j);
    packed_stale(&m->w->sh);
}

/* x·0 is 0 for every finite x and NaN for NaN and ±inf: one sum tells. */
static bool all_finite(const float *x, size_t n)
{
    float z = 0.0f;
    for (size_t i = 0; i < n; i++)
        z += x[i] * 0.0f;
    return z == 0.0f;
}

/* AT_E_NUMERIC, naming what, when the loss, a gradient, or what the update
 * would make of a parameter or a moment is NaN or infinite (a learning rate
 * that diverges, a gradient whose square overflows the second moment). */
static at_status check_finite_step(at_model *m, double loss, adam_job *j, const char *who)
{
    if (!isfinite(loss))
        return set_error(m, AT_E_NUMERIC, "%s: the loss is %g; the step was not taken (the "
                         "parameters are as before: lower the learning rate?)", who, loss);
    memset(j->z, 0, sizeof j->z);
    pool_for(m->w->sh.nparams, ADAM_GRAIN, POOL_ANY, adam_check, j);
    float z = 0.0f;
    for (int i = 0; i < POOL_ANY; i++)
        z += j->z[i];
    if (z == 0.0f)
        return AT_OK;
    for (int i = 0; i < m->w->sh.ntensors; i++) {
        const tensor_info *t = &m->w->table[i];
        if (!t->is_buffer && !all_finite(m->tr.grad + t->offset, t->numel))
            return set_error(m, AT_E_NUMERIC, "%s: the gradient of '%s' is not finite; the "
                             "step was not taken (the parameters are as before)", who, t->name);
    }
    return set_error(m, AT_E_NUMERIC, "%s: the update would overflow a parameter or an Adam "
                     "moment (a gradient too large for float32); the step was not taken (the "
                     "parameters are as before: lower the learning rate?)", who);
}

/* Splits the full target Y (B, T+1) into the decoder input Y[:, :-1] and the
 * labels Y[:, 1:] (SEMANTICS §10) and counts the labels that are not pad.
 * The label buffer (the model's id buffer) holds them, then one double per
 * label row for the loss of an evaluation (*row_loss), which thus needs no
 * backward buffers. */
static at_status split_target(at_model *m, const int32_t *tgt, int B, int Tf, int32_t pad,
                              int32_t **in, int32_t **labels, double **row_loss,
                              int64_t *ntokens, const char *who)
{
    for (size_t i = 0; i < (size_t)B * Tf; i++)
        if (tgt[i] < 0 || tgt[i] >= m->dm.tgt_vocab)
            return set_error(m, AT_E_RANGE, "%s: tgt[%zu][%zu] = %d is outside the target "
                             "vocabulary [0, %d)", who, i / (size_t)Tf, i % (size_t)Tf,
                           (int)tgt[i], m->dm.tgt_vocab);
    size_t n = (size_t)B * (Tf - 1);
    /* input and labels, n ids each, then n doubles (two ids' room each:
     * 8-byte aligned, as malloc's memory and 2n ids are) */
    size_t need = 4 * n;
    train_state *t = &m->tr;
    if (need > t->ids_cap) {
        free(t->ids);
        t->ids = malloc(need * sizeof *t->ids);
        t->ids_cap = t->ids ? need : 0;
        if (!t->ids)
            return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    }
    *in = t->ids;
    *labels = t->ids + n;
    *row_loss = (double *)(void *)(t->ids + 2 * n);
    int64_t count = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Tf - 1; i++) {
            (*in)[b * (Tf - 1) + i] = tgt[b * Tf + i];
            (*labels)[b * (Tf - 1) + i] = tgt[b * Tf + i + 1];
            count += tgt[b * Tf + i + 1] != pad;
        }
    *ntokens = count;
    return AT_OK;
}

static at_status check_train_args(at_model *m, const int32_t *src, const int32_t *tgt,
                                  int tgt_len, int32_t pad, const float *loss,
                                  const char *who)
{
    if (!src || !tgt)
        return set_error(m, AT_E_ARG, "%s: src and tgt must not be NULL", who);
    if (!loss)
        return set_error(m, AT_E_ARG, "%s: loss must not be NULL", who);
    if (tgt_len < 2)
        return set_error(m, AT_E_ARG, "%s: tgt_len %d: the target needs at least 2 tokens "
                         "(decoder input tgt[:, :-1], labels tgt[:, 1:])", who, tgt_len);
    if (pad < 0 || pad >= m->dm.tgt_vocab)
        return set_error(m, AT_E_RANGE, "%s: pad id %d must be inside the target vocabulary "
                         "[0, %d) (label smoothing zeroes its column)", who, (int)pad,
                       m->dm.tgt_vocab);
    if (m->dm.smoothing > 0 && m->dm.tgt_vocab <= 2)
        return set_error(m, AT_E_ARG, "%s: label smoothing needs a target vocabulary of more "
                         "than 2 (it spreads over V − 2 classes)", who);
    return AT_OK;
}

/* Only the labels at position pos count: the others become pad. Returns
 * how many rows' labels there are not pad. */
static int64_t keep_position(int32_t *labels, int B, int T, int pos, int32_t pad)
{
    int64_t n = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            int32_t *l = &labels[(size_t)b * T + i];
            if (i != pos)
                *l = pad;
            n += i == pos && *l != pad;
        }
    return n;
}

/* What run_step does after the forward pass. */
typedef enum step_mode {
    STEP_TRAIN,        /* training forward, backward, Adam */
    STEP_EVAL,         /* the training criterion, evaluation mode */
    STEP_NLL,          /* the mean NLL (no smoothing), evaluation mode */
    STEP_GATES         /* that, and its gradient for every parameter and gate */
} step_mode;

/* Forward (training or evaluation), loss and, for training and the gates'
 * gradient, the backward pass; training then takes one Adam step.
 * Evaluation needs the forward arena and the label buffer only: no gradient
 * slabs, no backward buffers. */
static at_status run_step(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                          int src_len, int tgt_len, int32_t pad, int target_pos, double *loss,
                          int64_t *ntokens, step_mode mode, const char *who)
{
    bool train = mode == STEP_TRAIN, back = train || mode == STEP_GATES;
    float dummy = 0;
    at_status s = check_train_args(m, src, tgt, tgt_len, pad, loss ? &dummy : NULL, who);
    if (s != AT_OK)
        return s;
    /* sizes first: nothing is allocated for a batch the model cannot take */
    if ((s = check_sizes(m, batch, src_len, tgt_len - 1, who)) != AT_OK)
        return s;
    int32_t *tgt_in = NULL, *labels = NULL;
    double *row_loss = NULL;
    int64_t count = 0;
    s = split_target(m, tgt, batch, tgt_len, pad, &tgt_in, &labels, &row_loss, &count, who);
    if (s != AT_OK)
        return s;
    if (count == 0)
        return set_error(m, AT_E_ARG, "%s: every label is the pad id %d: nothing to learn from",
                         who, (int)pad);
    if (target_pos >= 0 && (count = keep_position(labels, batch, tgt_len - 1, target_pos,
                                                  pad)) == 0)
        return set_error(m, AT_E_ARG, "%s: every label at position %d is the pad id %d", who,
                         target_pos, (int)pad);
    if (train && (s = weights_writable(m, who)) != AT_OK)
        return s;
    if (back && (s = train_alloc(m, who)) != AT_OK)
        return s;

    drop dr = {0};
    if (train) {
        dr.on = true;
        dr.p = (float)m->dm.dropout;
        dr.attn_p = (float)m->dm.attn_dropout;
        dr.key = mix64(m->dm.seed ^ mix64(m->tr.step + 1));
    }
    double smoothing = mode == STEP_NLL || mode == STEP_GATES ? 0.0 : m->dm.smoothing;
    /* the target was checked whole by split_target; the source is left */
    invalidate(m);
    iv_begin(m, train ? AT_PASS_TRAIN : AT_PASS_FORWARD, back);
    s = check_ids(m, "src", src, batch, src_len, m->dm.src_vocab, who);
    if (s == AT_OK)
        s = forward_pass(m, src, tgt_in, batch, src_len, tgt_len - 1, pad, &dr, who);
    if ((s = pass_end(m, s, who)) != AT_OK)
        return s;
    double loss_sum;
    if (back) {
        grads_a g;
        if ((s = work_fit(m, &g, who)) != AT_OK)
            return s;
        /* L = Σ log p at one position: the NLL's gradient with the sign turned
         * (loss_grad scales by 1/ntokens) */
        loss_sum = backward(m, &g, src, tgt_in, labels, pad, target_pos >= 0 ? -1 : count,
                            smoothing);
        m->tr.have_grad = true;
    } else {
        loss_sum = loss_grad(NULL, NULL, m->a.logp, labels, batch * (tgt_len - 1),
                             m->dm.tgt_vocab, pad, smoothing, count, row_loss, NULL);
    }
    if (train) {
        /* a diverged step leaves the parameters and moments as they were */
        adam_job j = adam_for(m, m->tr.step + 1);
        if ((s = check_finite_step(m, loss_sum / (double)count, &j, who)) != AT_OK)
            return s;
        adam_step(m, &j);
    }
    if (loss && target_pos >= 0)
        *loss = -loss_sum;
    else if (loss)
        *loss = train || mode == STEP_EVAL ? (double)((float)loss_sum / (float)count)
                                           : loss_sum / (double)count;
    if (ntokens)
        *ntokens = count;
    return AT_OK;
}

static at_status float_step(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                            int src_len, int tgt_len, int32_t pad, float *loss,
                            int64_t *ntokens, step_mode mode, const char *who)
{
    if (!loss)
        return set_error(m, AT_E_ARG, "%s: loss must not be NULL", who);
    double l = 0;
    at_status s = run_step(m, src, tgt, batch, src_len, tgt_len, pad, -1, &l, ntokens, mode,
                           who);
    if (s == AT_OK)
        *loss = (float)l;
    return s;
}

at_status at_train_step(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                        int src_len, int tgt_len, int32_t pad, float *loss, int64_t *ntokens)
{
    GUARDED(m, "at_train_step", float_step(m, src, tgt, batch, src_len, tgt_len, pad, loss,
                                           ntokens, STEP_TRAIN, "at_train_step"));
}

/* ---- data-parallel steps (at_train_step_reduce) ---- */

/* The reduce step's local part up to the first reduction: checks, the
 * target split, the training forward pass on this shard and the backward
 * buffers (nothing for a shard of no rows), so that nothing after the first
 * reduction fails but a reduction or the numbers. */
static at_status shard_forward(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                               int src_len, int tgt_len, int32_t pad, int64_t row_offset,
                               int32_t **tgt_in, int32_t **labels, int64_t *count,
                               grads_a *g, const char *who)
{
    static const int32_t none = 0;   /* a shard of no rows needs no ids */
    float dummy = 0;
    at_status s;
    if (batch < 0 || row_offset < 0)
        return set_error(m, AT_E_ARG, "%s: batch %d and row_offset %lld must not be negative",
                         who, batch, (long long)row_offset);
    if ((s = check_train_args(m, batch ? src : &none, batch ? tgt : &none, tgt_len, pad, &dummy,
                              who)) != AT_OK)
        return s;
    if ((s = weights_writable(m, who)) != AT_OK || (s = train_alloc(m, who)) != AT_OK)
        return s;
    if (batch == 0)
        return AT_OK;
    if ((s = check_sizes(m, batch, src_len, tgt_len - 1, who)) != AT_OK)
        return s;
    double *row_loss = NULL;
    s = split_target(m, tgt, batch, tgt_len, pad, tgt_in, labels, &row_loss, count, who);
    if (s != AT_OK)
        return s;
    drop dr = {.on = true, .p = (float)m->dm.dropout, .attn_p = (float)m->dm.attn_dropout,
               .key = mix64(m->dm.seed ^ mix64(m->tr.step + 1)), .row0 = (uint64_t)row_offset};
    invalidate(m);
    iv_begin(m, AT_PASS_TRAIN, true);
    s = check_ids(m, "src", src, batch, src_len, m->dm.src_vocab, who);
    if (s == AT_OK)
        s = forward_pass(m, src, *tgt_in, batch, src_len, tgt_len - 1, pad, &dr, who);
    if ((s = pass_end(m, s, who)) != AT_OK)
        return s;
    return work_fit(m, g, who);
}

static at_status call_reduce(at_model *m, at_allreduce_fn reduce, void *user, void *data,
                             size_t count, at_reduce_type type, const char *who)
{
    at_status s = reduce(user, data, count, type);
    if (s != AT_OK)
        return set_error(m, s, "%s: the allreduce of %zu %s failed (%s)", who, count,
                         type == AT_REDUCE_FLOAT ? "floats" : "doubles", at_status_string(s));
    return AT_OK;
}

/* The update's check, as check_finite_step makes it, without its message:
 * whether every new parameter and moment is finite. */
static bool update_finite(at_model *m, adam_job *j)
{
    memset(j->z, 0, sizeof j->z);
    pool_for(m->w->sh.nparams, ADAM_GRAIN, POOL_ANY, adam_check, j);
    float z = 0.0f;
    for (int i = 0; i < POOL_ANY; i++)
        z += j->z[i];
    return z == 0.0f;
}

/* The gradients are those of the global loss: backward scales the logits'
 * gradient by 1/(global ntokens), known after the first reduction, so the
 * sum of the shards' gradients is the whole batch's (and one participant's
 * step is at_train_step's, operation for operation). */
static at_status reduce_step(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                             int src_len, int tgt_len, int32_t pad, int64_t row_offset,
                             at_allreduce_fn reduce, void *user, float *loss, int64_t *ntokens)
{
    const char *who = "at_train_step_reduce";
    if (!reduce || !loss)
        return set_error(m, AT_E_ARG, "%s: reduce and loss must not be NULL", who);
    int32_t *tgt_in = NULL, *labels = NULL;
    int64_t count = 0;
    grads_a g;
    at_status s = shard_forward(m, src, tgt, batch, src_len, tgt_len, pad, row_offset, &tgt_in,
                                &labels, &count, &g, who);
    /* (1) every participant learns the global count, and whether any failed */
    double head[2] = {(double)count, s != AT_OK};
    at_status r = call_reduce(m, reduce, user, head, 2, AT_REDUCE_DOUBLE, who);
    if (s != AT_OK || r != AT_OK)
        return s != AT_OK ? s : r;
    if (head[1] > 0)
        return set_error(m, AT_E_STATE, "%s: another participant's step failed (its message "
                         "says why); no step was taken", who);
    int64_t total = (int64_t)head[0];
    if (total == 0)
        return set_error(m, AT_E_ARG, "%s: every label of the global batch is the pad id %d: "
                         "nothing to learn from", who, (int)pad);
    double loss_sum = 0;
    if (batch > 0)
        loss_sum = backward(m, &g, src, tgt_in, labels, pad, total, m->dm.smoothing);
    else
        memset(m->tr.grad, 0, m->w->sh.nparams * sizeof *m->tr.grad);
    m->tr.have_grad = true;
    /* (2) the gradients; (3) the loss and whether the update is finite */
    if ((s = call_reduce(m, reduce, user, m->tr.grad, m->w->sh.nparams, AT_REDUCE_FLOAT,
                         who)) != AT_OK)
        return s;
    adam_job j = adam_for(m, m->tr.step + 1);
    double tail[2] = {loss_sum, !update_finite(m, &j)};
    if ((s = call_reduce(m, reduce, user, tail, 2, AT_REDUCE_DOUBLE, who)) != AT_OK)
        return s;
    loss_sum = tail[0];
    if (!isfinite(loss_sum / (double)total) || tail[1] > 0) {
        s = check_finite_step(m, loss_sum / (double)total, &j, who);
        return s != AT_OK ? s : set_error(m, AT_E_NUMERIC, "%s: another participant's update "
                                          "is not finite; the step was not taken", who);
    }
    adam_step(m, &j);
    *loss = (float)loss_sum / (float)total;
    if (ntokens)
        *ntokens = total;
    return AT_OK;
}

at_status at_train_step_reduce(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                               int src_len, int tgt_len, int32_t pad, int64_t row_offset,
                               at_allreduce_fn reduce, void *user, float *loss,
                               int64_t *ntokens)
{
    GUARDED(m, "at_train_step_reduce", reduce_step(m, src, tgt, batch, src_len, tgt_len, pad,
                                                   row_offset, reduce, user, loss, ntokens));
}

at_status at_eval_loss(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                       int src_len, int tgt_len, int32_t pad, float *loss, int64_t *ntokens)
{
    GUARDED(m, "at_eval_loss", float_step(m, src, tgt, batch, src_len, tgt_len, pad, loss,
                                          ntokens, STEP_EVAL, "at_eval_loss"));
}

static at_status eval_nll(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                          int src_len, int tgt_len, int32_t pad, double *loss, int64_t *ntokens)
{
    if (!loss)
        return set_error(m, AT_E_ARG, "at_eval_nll: loss must not be NULL");
    return run_step(m, src, tgt, batch, src_len, tgt_len, pad, -1, loss, ntokens, STEP_NLL,
                    "at_eval_nll");
}

at_status at_eval_nll(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                      int src_len, int tgt_len, int32_t pad, double *loss, int64_t *ntokens)
{
    GUARDED(m, "at_eval_nll", eval_nll(m, src, tgt, batch, src_len, tgt_len, pad, loss,
                                       ntokens));
}

static at_status gate_gradients(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                                int src_len, int tgt_len, int32_t pad, double *loss,
                                float *grad)
{
    const char *who = "at_gate_gradients";
    /* the gates' gradients live with the interventions: make them exist */
    at_status s = iv_get(m, who) ? AT_OK : AT_E_NOMEM;
    double l = 0;
    if (s == AT_OK)
        s = run_step(m, src, tgt, batch, src_len, tgt_len, pad, -1, &l, NULL, STEP_GATES, who);
    if (s != AT_OK)
        return s;
    if (loss)
        *loss = l;
    if (grad)
        memcpy(grad, m->iv->gate_grad, 3 * (size_t)m->dm.layers * m->dm.heads * sizeof *grad);
    return AT_OK;
}

at_status at_gate_gradients(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                            int src_len, int tgt_len, int32_t pad, double *loss, float *grad)
{
    GUARDED(m, "at_gate_gradients", gate_gradients(m, src, tgt, batch, src_len, tgt_len, pad,
                                                   loss, grad));
}

static at_status attention_gradients(at_model *m, const int32_t *src, const int32_t *tgt,
                                     int batch, int src_len, int tgt_len, int32_t pad,
                                     int target_pos, double *value)
{
    const char *who = "at_attention_gradients";
    if (tgt_len >= 2 && (target_pos < -1 || target_pos >= tgt_len - 1))
        return set_error(m, AT_E_RANGE, "%s: target position %d is outside [-1, %d) (the "
                         "decoder reads %d positions)", who, target_pos, tgt_len - 1,
                         tgt_len - 1);
    at_status s = iv_get(m, who) ? AT_OK : AT_E_NOMEM;
    train_state *t = &m->tr;
    if (s == AT_OK && !t->agrad && !(t->agrad = calloc(3 * (size_t)m->dm.layers,
                                                       sizeof *t->agrad)))
        s = set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    if (s != AT_OK)
        return s;
    double l = 0;
    t->keep_agrad = true;
    s = run_step(m, src, tgt, batch, src_len, tgt_len, pad, target_pos, &l, NULL, STEP_GATES,
                 who);
    t->keep_agrad = false;
    t->have_agrad = s == AT_OK;
    if (s == AT_OK && value)
        *value = l;
    return s;
}

at_status at_attention_gradients(at_model *m, const int32_t *src, const int32_t *tgt,
                                 int batch, int src_len, int tgt_len, int32_t pad,
                                 int target_pos, double *value)
{
    GUARDED(m, "at_attention_gradients", attention_gradients(m, src, tgt, batch, src_len,
                                                             tgt_len, pad, target_pos, value));
}

static at_status attention_grad_view(at_model *m, at_attn_kind kind, int layer, at_view *out)
{
    const char *who = "at_get_attention_grad";
    if (!out)
        return set_error(m, AT_E_ARG, "%s: out is NULL", who);
    if (kind != AT_ATTN_ENC_SELF && kind != AT_ATTN_DEC_SELF && kind != AT_ATTN_CROSS)
        return set_error(m, AT_E_ARG, "%s: unknown kind %d", who, (int)kind);
    if (layer < 0 || layer >= m->dm.layers)
        return set_error(m, AT_E_ARG, "%s: layer %d is outside [0, %d)", who, layer,
                         m->dm.layers);
    if (!m->tr.have_agrad)
        return set_error(m, AT_E_STATE, "%s: no attention gradients since the last pass (run "
                         "at_attention_gradients)", who);
    int64_t B = m->B, h = m->dm.heads, lq = kind == AT_ATTN_ENC_SELF ? m->S : m->T;
    int64_t lk = kind == AT_ATTN_DEC_SELF ? m->T : m->S;
    memset(out, 0, sizeof *out);
    out->data = m->tr.agrad[kind * m->dm.layers + layer];
    out->ndim = 4;
    int64_t shape[4] = {B, h, lq, lk}, stride = 1;
    for (int i = 3; i >= 0; i--) {
        out->shape[i] = shape[i];
        out->stride[i] = stride;
        stride *= shape[i];
    }
    out->generation = m->generation;
    return AT_OK;
}

at_status at_get_attention_grad(at_model *m, at_attn_kind kind, int layer, at_view *out)
{
    GUARDED(m, "at_get_attention_grad", attention_grad_view(m, kind, layer, out));
}

uint64_t at_model_steps(const at_model *m) { return m ? m->tr.step : 0; }

double at_model_learning_rate(const at_model *m)
{
    return m ? lr_for_step(&m->dm, m->tr.step + 1) : 0.0;
}

double at_noam_rate(int64_t step, int model_size, double factor, int64_t warmup)
{
    dims dm = {.d = model_size, .factor = factor, .warmup = (double)warmup};
    if (model_size < 1 || warmup < 1 || step < 0)
        return 0.0;
    return noam_rate(&dm, (uint64_t)step);
}

static at_status grad_view(at_model *m, int index, at_view *out)
{
    if (!out)
        return set_error(m, AT_E_ARG, "at_model_grad: out is NULL");
    if (index < 0 || index >= m->w->sh.ntensors)
        return set_error(m, AT_E_ARG, "at_model_grad: index %d is outside [0, %d)", index,
                       m->w->sh.ntensors);
    const tensor_info *t = &m->w->table[index];
    if (t->is_buffer)
        return set_error(m, AT_E_ARG, "at_model_grad: '%s' is a buffer, not trained", t->name);
    if (!m->tr.have_grad)
        return set_error(m, AT_E_STATE, "at_model_grad: no training step has run yet");
    tensor_view(m, t, m->tr.grad + t->offset, out);
    return AT_OK;
}

at_status at_model_grad(at_model *m, int index, at_view *out)
{
    GUARDED(m, "at_model_grad", grad_view(m, index, out));
}
