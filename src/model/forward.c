/* The activation arena, the forward pass, and the views onto it. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/internal.h"

/* Carves the arena for (B, S, T). With base == NULL it only counts floats.
 * Everything backward will need is kept, which is also what a user wants to
 * look at (the normalised inputs, q, k, v, the probabilities). */
typedef struct carver { float *base; size_t used; } carver;

static float *take(carver *c, size_t n)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) & ~(size_t)15;      /* 64-byte steps keep rows aligned */
    return p;
}

static norm_a take_norm(carver *c, size_t rows, size_t d)
{
    norm_a n = {take(c, rows * d), take(c, rows), take(c, rows)};
    return n;
}

/* The probabilities the capture policy keeps, the heads concatenated, and
 * the heads before their gates when some gate of the block is not 1 and a
 * backward pass will need them. */
static void take_heads(carver *c, at_model *m, int kind, int layer, attn_a *a, size_t B,
                       size_t Lq, size_t Lk, size_t d)
{
    iv_layout(m, kind, layer, a);
    a->p = take(c, B * (size_t)a->nkept * Lq * Lk);
    a->ctx = take(c, B * Lq * d);
    a->hout = iv_gates(m, kind, layer) && iv_backward(m) ? take(c, B * Lq * d) : NULL;
}

/* Self-attention: q, k and v are the thirds of one (B, L, 3d) GEMM output. */
static attn_a take_self_attn(carver *c, at_model *m, int kind, int layer, size_t B, size_t L,
                             size_t d)
{
    attn_a a;
    a.q = take(c, B * L * 3 * d);
    a.k = a.q ? a.q + d : NULL;
    a.v = a.q ? a.q + 2 * d : NULL;
    a.ldq = a.ldkv = (int)(3 * d);
    take_heads(c, m, kind, layer, &a, B, L, L, d);
    return a;
}

/* Cross-attention: q of its own; k and v inside the shared (B, S, layers·2d)
 * block computed once from the memory. */
static attn_a take_cross_attn(carver *c, at_model *m, float *cross_kv, int layer, size_t B,
                              size_t T, size_t S, size_t d)
{
    attn_a a;
    a.q = take(c, B * T * d);
    a.ldq = (int)d;
    a.k = cross_kv ? cross_kv + (size_t)layer * 2 * d : NULL;
    a.v = cross_kv ? a.k + d : NULL;
    a.ldkv = m->dm.layers * 2 * (int)d;
    take_heads(c, m, AT_ATTN_CROSS, layer, &a, B, T, S, d);
    return a;
}

/* Bd decoder rows (B except in beam search: B·K hypotheses over B sources,
 * whose memory and cross k, v they share) and extra floats at a->extra for
 * the caller's own buffers. */
static void carve(at_model *m, carver *c, size_t B, size_t Bd, size_t S, size_t T,
                  size_t extra)
{
    const dims *dm = &m->dm;
    size_t d = (size_t)dm->d, ff = (size_t)dm->d_ff;
    size_t rs = B * S, rt = Bd * T;
    acts *a = &m->a;
    a->src_mask = take(c, rs);
    a->tgt_mask = take(c, Bd * T * T);
    a->src_emb = take(c, rs * d);
    a->tgt_emb = take(c, rt * d);
    for (int l = 0; l < dm->layers; l++) {
        enc_a *e = &m->enc_acts[l];
        e->ln[0] = take_norm(c, rs, d);
        e->sa = take_self_attn(c, m, AT_ATTN_ENC_SELF, l, B, S, d);
        e->mid = take(c, rs * d);
        e->ln[1] = take_norm(c, rs, d);
        e->ff_h = take(c, rs * ff);
        e->out = take(c, rs * d);
    }
    a->memory = take_norm(c, rs, d);
    a->cross_kv = take(c, rs * 2 * d * (size_t)dm->layers);
    for (int l = 0; l < dm->layers; l++) {
        dec_a *e = &m->dec_acts[l];
        e->ln[0] = take_norm(c, rt, d);
        e->sa = take_self_attn(c, m, AT_ATTN_DEC_SELF, l, Bd, T, d);
        e->mid1 = take(c, rt * d);
        e->ln[1] = take_norm(c, rt, d);
        e->ca = take_cross_attn(c, m, a->cross_kv, l, Bd, T, S, d);
        e->mid2 = take(c, rt * d);
        e->ln[2] = take_norm(c, rt, d);
        e->ff_h = take(c, rt * ff);
        e->out = take(c, rt * d);
    }
    a->dec_out = take_norm(c, rt, d);
    a->logp = take(c, rt * (size_t)dm->tgt_vocab);
    size_t most = S * S > T * T ? S * S : T * T;
    m->scratch_parts = pool_threads();
    a->scratch = take(c, (most > T * S ? most : T * S) * (size_t)m->scratch_parts);
    a->extra = take(c, extra);
    a->enc = m->enc_acts;
    a->dec = m->dec_acts;
}

/* Makes the arena large enough for (B, S, T) and points every activation into
 * it. Grows only; a call of a size seen before allocates nothing. */
static at_status arena_fit(at_model *m, int B, int Bd, int S, int T, size_t extra,
                           const char *who)
{
    carver c = {0};
    carve(m, &c, (size_t)B, (size_t)Bd, (size_t)S, (size_t)T, extra);
    if (c.used > m->arena_cap) {
        /* a held block (at_view_hold) lives on until its holds are released */
        arena_release(m->blk);
        m->blk = NULL;
        m->arena = NULL;
        m->arena_cap = 0;
        arena_block *b = malloc(sizeof *b);
        float *data = c.used <= SIZE_MAX / sizeof(float) / 2
                          ? slab_alloc(c.used * sizeof(float))
                          : NULL;
        if (!b || !data) {
            free(b);
            free(data);
            return set_error(m, AT_E_NOMEM, "%s: out of memory for activations "
                             "(%zu MiB for batch %d, lengths %d and %d)", who,
                             c.used * sizeof(float) >> 20, B, S, T);
        }
        atomic_init(&b->refs, 1);
        b->data = data;
        m->blk = b;
        m->arena = data;
        m->arena_cap = c.used;
    }
    c = (carver){.base = m->arena};
    carve(m, &c, (size_t)B, (size_t)Bd, (size_t)S, (size_t)T, extra);
    m->B = B, m->S = S, m->T = m->Tl = T;
    m->arena_used = c.used;
    return AT_OK;
}

/* Batch (SEMANTICS §6): src_mask (B, 1, S) = src != pad (see encode_pass);
 * tgt_mask (B, T, T) = (tgt != pad)[:, None, :] & subsequent, where
 * subsequent[i][j] = j <= i. */
static void build_tgt_mask(acts *a, const int32_t *tgt, int B, int T, int32_t pad)
{
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++)
            for (int j = 0; j < T; j++)
                a->tgt_mask[((size_t)b * T + i) * T + j] = j <= i && tgt[b * T + j] != pad;
}

/* A sublayer's last linear and the residual (SEMANTICS §4, §8):
 * out = resid + dropout(x·Wᵀ + b). Without dropout the residual is folded
 * into the GEMM's accumulator, saving a pass over memory. */
static void sublayer_out(float *out, const float *x, linear w, const float *resid, int rows,
                         int in, int outw, const drop *dr, uint64_t key, int B)
{
    if (!dr->on || dr->p == 0) {
        linear_residual_forward(out, x, w, resid, rows, in, outw);
        return;
    }
    epilogue e = {.key = key, .p = dr->p, .resid = resid,
                  .origin = drop_origin(dr, (size_t)(rows / B) * outw)};
    linear_fused(out, x, w, rows, in, outw, &e);
}

/* Where a layer is and how it drops out. */
typedef struct layer_ctx {
    at_model *m;
    const dims *dm;
    const drop *dr;
    int stack, layer, B;
} layer_ctx;

/* The attention call of one sublayer of the current pass: its sizes, mask and
 * dropout. Backward rebuilds the same call to replay the same dropout. */
attn_call attn_call_for(const at_model *m, int stack, int layer, bool cross)
{
    const acts *a = &m->a;
    int S = m->S, T = m->T;
    attn_call c = {.B = m->B, .h = m->dm.heads, .d = m->dm.d, .scratch = a->scratch,
                   .scratch_parts = m->scratch_parts};
    if (stack == 0)
        c.Lq = c.Lk = S, c.mask = a->src_mask, c.mask_bstride = S;
    else if (cross)
        c.Lq = T, c.Lk = S, c.mask = a->src_mask, c.mask_bstride = S;
    else
        c.Lq = c.Lk = T, c.mask = a->tgt_mask, c.mask_bstride = T * T, c.mask_qstride = T;
    const override_blk *ov = iv_override(m, stack == 0 ? AT_ATTN_ENC_SELF : cross ?
                                         AT_ATTN_CROSS : AT_ATTN_DEC_SELF, layer);
    c.frozen = ov ? ov->heads : NULL;
    if (m->tr.keep_agrad)
        c.dp = m->tr.agrad[(stack == 0 ? AT_ATTN_ENC_SELF : cross ? AT_ATTN_CROSS
                                                                  : AT_ATTN_DEC_SELF) *
                               m->dm.layers + layer];
    if (m->dr.on && m->dr.attn_p > 0) {
        c.drop_p = m->dr.attn_p;
        c.drop_key = drop_site(&m->dr, stack, layer, cross ? SITE_CA_P : SITE_SA_P);
        c.drop_origin = drop_origin(&m->dr, (size_t)c.h * c.Lq * c.Lk);
    }
    return c;
}

/* The override's rows in place of the softmax's, head by head. */
static void override_probs(attn_a a, const attn_call *c, const override_blk *ov)
{
    size_t row = (size_t)c->Lk * sizeof(float);
    for (int b = 0; b < c->B; b++)
        for (int j = 0; j < c->h; j++)
            if (ov->heads[j])
                memcpy(attn_plane(a, c, b, j), override_row(ov, b, j, 0), row * c->Lq);
}

/* Scaled dot-product attention (paper eq. 1) with what the host asked for:
 * taps see scores and probs between the steps, an override replaces the
 * probabilities, taps see each head's output, then the gates scale it. */
static void attention_block(attn_a a, const attn_call *c, const layer_ctx *lc, int kind)
{
    at_model *m = lc->m;
    int l = lc->layer, B = c->B, h = c->h, Lq = c->Lq, Lk = c->Lk, d = c->d;
    if (!m->iv) {
        attention_forward(a, c);
        return;
    }
    const override_blk *ov = iv_override(m, kind, l);
    bool ts = iv_tapped(m, AT_SITE_SCORES, kind, l), tp = iv_tapped(m, AT_SITE_PROBS, kind, l);
    const int64_t shape[4] = {B, h, Lq, Lk}, stride[4] = {(int64_t)h * Lq * Lk,
                                                         (int64_t)Lq * Lk, Lk, 1};
    if (ov || ts || tp) {
        attention_scores(a, c);
        if (ts)
            fire(m, AT_SITE_SCORES, kind, l, a.p, 4, shape, stride, 0, Lq);
        attention_softmax(a, c);
        if (ov)
            override_probs(a, c, ov);
        if (tp)
            fire(m, AT_SITE_PROBS, kind, l, a.p, 4, shape, stride, 0, Lq);
        attention_values(a, c);
    } else {
        attention_forward(a, c);
    }
    if (iv_tapped(m, AT_SITE_HEAD_OUT, kind, l))
        fire_heads(m, AT_SITE_HEAD_OUT, kind, l, a.ctx, B, Lq, d, (int64_t)Lq * d, 0, Lq);
    const float *gate = iv_gates(m, kind, l);
    if (gate)
        gate_heads(a.ctx, a.hout, gate, B, Lq, d, h, (int64_t)Lq * d);
}

/* Attention on q, k, v already projected, then out = resid + dropout(o(ctx)).
 * A tap on attn_out sees o(ctx) before the dropout and the residual, which
 * are then applied apart (the plain pass folds the residual into the GEMM). */
static void attend(float *out, attn_a a, const attn_p *p, const float *resid,
                   const attn_call *c, const layer_ctx *lc, int out_site, int kind)
{
    attention_block(a, c, lc, kind);
    int rows = c->B * c->Lq;
    uint64_t key = drop_site(lc->dr, lc->stack, lc->layer, out_site);
    if (!iv_tapped(lc->m, AT_SITE_ATTN_OUT, kind, lc->layer)) {
        sublayer_out(out, a.ctx, p->o, resid, rows, c->d, c->d, lc->dr, key, c->B);
        return;
    }
    linear_forward(out, a.ctx, p->o, rows, c->d, c->d);
    fire_rows(lc->m, AT_SITE_ATTN_OUT, kind, lc->layer, out, c->B, c->Lq, c->d,
              (int64_t)c->Lq * c->d, 0, c->Lq);
    if (lc->dr->on && lc->dr->p > 0)
        dropout_forward(out, (size_t)rows * c->d, key, lc->dr->p,
                        drop_origin(lc->dr, (size_t)c->Lq * c->d));
    add_inplace(out, resid, (size_t)rows * c->d);
}

/* out = x + dropout(w_2(dropout(relu(w_1 y)))) with y = LN(x) (paper eq. 2). */
static void ff_forward(float *out, float *h, const ff_p *p, const float *y, const float *x,
                       int rows, const layer_ctx *lc)
{
    const dims *dm = lc->dm;
    epilogue e = {.relu = true};
    int kind = lc->stack ? AT_ATTN_DEC_SELF : AT_ATTN_ENC_SELF, L = rows / lc->B;
    if (lc->dr->on && lc->dr->p > 0) {
        e.p = lc->dr->p;
        e.key = drop_site(lc->dr, lc->stack, lc->layer, SITE_FF_H);
        e.origin = drop_origin(lc->dr, (size_t)L * dm->d_ff);
    }
    linear_fused(h, y, p->w1, rows, dm->d, dm->d_ff, &e);
    if (iv_tapped(lc->m, AT_SITE_FF_HIDDEN, kind, lc->layer))
        fire_rows(lc->m, AT_SITE_FF_HIDDEN, kind, lc->layer, h, lc->B, L, dm->d_ff,
                  (int64_t)L * dm->d_ff, 0, L);
    sublayer_out(out, h, p->w2, x, rows, dm->d_ff, dm->d, lc->dr,
                 drop_site(lc->dr, lc->stack, lc->layer, SITE_FF_OUT), lc->B);
    if (iv_tapped(lc->m, AT_SITE_LAYER_OUT, kind, lc->layer))
        fire_rows(lc->m, AT_SITE_LAYER_OUT, kind, lc->layer, out, lc->B, L, dm->d,
                  (int64_t)L * dm->d, 0, L);
}

/* Taps on q, k and v of a block, heads side by side in rows ld apart. */
static void fire_qkv(const layer_ctx *lc, int kind, attn_a a, int Lq, int Lk, bool kv)
{
    at_model *m = lc->m;
    int l = lc->layer;
    if (!m->iv)
        return;
    if (iv_tapped(m, AT_SITE_Q, kind, l))
        fire_heads(m, AT_SITE_Q, kind, l, a.q, lc->B, Lq, a.ldq, (int64_t)Lq * a.ldq, 0, Lq);
    if (!kv)
        return;
    if (iv_tapped(m, AT_SITE_K, kind, l))
        fire_heads(m, AT_SITE_K, kind, l, a.k, lc->B, Lk, a.ldkv, (int64_t)Lk * a.ldkv, 0, Lk);
    if (iv_tapped(m, AT_SITE_V, kind, l))
        fire_heads(m, AT_SITE_V, kind, l, a.v, lc->B, Lk, a.ldkv, (int64_t)Lk * a.ldkv, 0, Lk);
}

/* A tap on a site of the whole model: (B, L, w) rows of a full pass. */
static void tap_model(at_model *m, at_site site, float *x, int B, int L, int w)
{
    if (iv_tapped(m, site, 0, 0))
        fire_rows(m, site, 0, 0, x, B, L, w, (int64_t)L * w, 0, L);
}

/* Taps on the cross-attention's k and v, computed once from the memory. */
static void fire_qkv_cross(const layer_ctx *lc, attn_a a, int S)
{
    at_model *m = lc->m;
    int l = lc->layer, K = AT_ATTN_CROSS;
    int64_t bs = (int64_t)S * a.ldkv;
    if (iv_tapped(m, AT_SITE_K, K, l))
        fire_heads(m, AT_SITE_K, K, l, a.k, lc->B, S, a.ldkv, bs, 0, S);
    if (iv_tapped(m, AT_SITE_V, K, l))
        fire_heads(m, AT_SITE_V, K, l, a.v, lc->B, S, a.ldkv, bs, 0, S);
}

/* Encoder layer, pre-norm residuals (SEMANTICS §4):
 * x = x + SA(LN0 x); x = x + FF(LN1 x). q, k and v come from one GEMM (their
 * weights are one (3d, d) block). */
static void encoder_layer(const enc_p *p, enc_a *a, const float *x, int S,
                          const layer_ctx *lc)
{
    int d = lc->dm->d, rows = lc->B * S;
    norm_forward(a->ln[0], x, p->ln[0], rows, d);
    linear_forward(a->sa.q, a->ln[0].y, p->sa.q, rows, d, 3 * d);
    fire_qkv(lc, AT_ATTN_ENC_SELF, a->sa, S, S, true);
    attn_call c = attn_call_for(lc->m, 0, lc->layer, false);
    attend(a->mid, a->sa, &p->sa, x, &c, lc, SITE_SA_OUT, AT_ATTN_ENC_SELF);
    norm_forward(a->ln[1], a->mid, p->ln[1], rows, d);
    ff_forward(a->out, a->ff_h, &p->ff, a->ln[1].y, a->mid, rows, lc);
}

/* Decoder layer: x = x + SA(LN0 x, tgt_mask); x = x + CA(LN1 x, memory,
 * src_mask); x = x + FF(LN2 x). The memory is not normalised again; its k
 * and v projections were computed for all layers at once. */
static void decoder_layer(const dec_p *p, dec_a *a, const float *x, int T,
                          const layer_ctx *lc)
{
    int d = lc->dm->d, rows = lc->B * T;
    norm_forward(a->ln[0], x, p->ln[0], rows, d);
    linear_forward(a->sa.q, a->ln[0].y, p->sa.q, rows, d, 3 * d);
    fire_qkv(lc, AT_ATTN_DEC_SELF, a->sa, T, T, true);
    attn_call c = attn_call_for(lc->m, 1, lc->layer, false);
    attend(a->mid1, a->sa, &p->sa, x, &c, lc, SITE_SA_OUT, AT_ATTN_DEC_SELF);
    norm_forward(a->ln[1], a->mid1, p->ln[1], rows, d);
    linear_forward(a->ca.q, a->ln[1].y, p->ca.q, rows, d, d);
    fire_qkv(lc, AT_ATTN_CROSS, a->ca, T, 0, false);
    c = attn_call_for(lc->m, 1, lc->layer, true);
    attend(a->mid2, a->ca, &p->ca, a->mid1, &c, lc, SITE_CA_OUT, AT_ATTN_CROSS);
    norm_forward(a->ln[2], a->mid2, p->ln[2], rows, d);
    ff_forward(a->out, a->ff_h, &p->ff, a->ln[2].y, a->mid2, rows, lc);
}

/* Arguments are validated once, by the public entry points (at_forward,
 * at_train_step, at_eval_loss, the decoders): check_ids, check_sizes and
 * check_forward_args are theirs; the passes below them (forward_pass,
 * encode_pass, encode_rows) trust their callers. */
at_status check_ids(at_model *m, const char *what, const int32_t *ids, int B, int L, int vocab,
                    const char *who)
{
    for (int i = 0; i < B * L; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return set_error(m, AT_E_RANGE, "%s: %s[%d][%d] = %d is outside the vocabulary "
                             "[0, %d)", who, what, i / L, i % L, (int)ids[i], vocab);
    return AT_OK;
}

/* The sizes of a batch: positive, within the positional table, and rows
 * that the kernels' int counts hold. */
at_status check_sizes(at_model *m, int batch, int src_len, int tgt_len, const char *who)
{
    const dims *dm = &m->dm;
    if (batch < 1 || src_len < 1 || tgt_len < 0)
        return set_error(m, AT_E_ARG, "%s: batch %d, src_len %d, tgt_len %d: need batch >= 1, "
                         "src_len >= 1, tgt_len >= 0", who, batch, src_len, tgt_len);
    if (src_len > dm->max_len || tgt_len > dm->max_len)
        return set_error(m, AT_E_RANGE, "%s: lengths %d and %d; the model's maximum length "
                         "(positional table) is %d", who, src_len, tgt_len, dm->max_len);
    if ((int64_t)batch * src_len > INT32_MAX / 4 || (int64_t)batch * tgt_len > INT32_MAX / 4)
        return set_error(m, AT_E_RANGE, "%s: batch %d is too large", who, batch);
    return AT_OK;
}

at_status check_forward_args(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                             int src_len, int tgt_len, const char *who)
{
    const dims *dm = &m->dm;
    if (!src)
        return set_error(m, AT_E_ARG, "%s: src is NULL", who);
    if ((tgt == NULL) != (tgt_len == 0))
        return set_error(m, AT_E_ARG, "%s: tgt must be NULL exactly when tgt_len is 0", who);
    at_status s = check_sizes(m, batch, src_len, tgt_len, who);
    if (s != AT_OK)
        return s;
    /* pad positions are embedded like any other id, so they too must be in range */
    s = check_ids(m, "src", src, batch, src_len, dm->src_vocab, who);
    if (s == AT_OK && tgt)
        s = check_ids(m, "tgt", tgt, batch, tgt_len, dm->tgt_vocab, who);
    return s;
}

static void embed(float *out, const int32_t *ids, const float *lut, const float *pe, int B,
                  int L, int d, const drop *dr, int stack)
{
    embed_forward(out, ids, lut, pe, B, L, d);
    if (dr->on && dr->p > 0)
        dropout_forward(out, (size_t)B * L * d, drop_site(dr, stack, -1, SITE_EMB), dr->p,
                        drop_origin(dr, (size_t)L * d));
}

/* OpenBLAS (0.3.21) takes a 128 MiB buffer of address space for each of its
 * threads at their first product and, when malloc fails, retries forever:
 * under a tight address-space limit (ulimit -v) the pass would hang. Until a
 * pass has run once in this process, a finite limit is checked first, so
 * the call fails with AT_E_NOMEM instead. After that the buffers exist and
 * are reused; a limit lowered later is not seen (docs/concepts.md). */
#define BLAS_BUFFER_MIB 129
static _Atomic bool blas_warm;

/* Threads that may run OpenBLAS at once: its own, or the pool's that call it
 * (blas_enter). */
static int blas_callers(void)
{
    int n = openblas_get_num_threads();
    return n > pool_threads() ? n : pool_threads() > 0 ? pool_threads() : 1;
}

static at_status blas_headroom(at_model *m, const char *who)
{
    struct rlimit r;
    if (atomic_load_explicit(&blas_warm, memory_order_relaxed) ||
        getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY)
        return AT_OK;
    long page = sysconf(_SC_PAGESIZE);
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    bool known = f && fscanf(f, "%lu", &pages) == 1 && page > 0;
    if (f)
        fclose(f);
    if (!known)
        return AT_OK;
    uint64_t used = (uint64_t)pages * (uint64_t)page;
    uint64_t need = (uint64_t)BLAS_BUFFER_MIB << 20;
    need *= (uint64_t)blas_callers();
    if (r.rlim_cur > used && r.rlim_cur - used >= need)
        return AT_OK;
    return set_error(m, AT_E_NOMEM, "%s: the address-space limit (ulimit -v: %llu MiB, %llu in "
                     "use) leaves too little for OpenBLAS's buffers (%llu MiB for %d threads), "
                     "which it would wait for forever: raise the limit or use fewer threads",
                     who, (unsigned long long)(r.rlim_cur >> 20),
                     (unsigned long long)(used >> 20), (unsigned long long)(need >> 20),
                     blas_callers());
}

/* Lays the arena out for (B, S, T) and runs the encoder; with T > 0 also
 * every decoder layer's cross-attention k and v, in one GEMM over the
 * memory. The source mask is src != pad. The caller has validated the
 * arguments (check_forward_args; T within the positional table) and ended
 * the earlier views (invalidate). */
at_status encode_pass(at_model *m, const int32_t *src, int B, int S, int T, int32_t pad,
                      const drop *dr, const char *who)
{
    return encode_rows(m, src, B, B, S, T, 0, pad, dr, who);
}

/* The packed weights and the calling thread's packing buffer (gemm.c),
 * made before the pass rather than inside its first product. Neither can
 * fail the pass: without them the products pack as they go, slower, and
 * give the same numbers. */
static void products_ready(at_model *m)
{
    packed_prepare(&m->w->sh);
}

/* encode_pass with the arena laid out for Bd decoder rows and extra floats
 * (see carve). */
at_status encode_rows(at_model *m, const int32_t *src, int B, int Bd, int S, int T,
                      size_t extra, int32_t pad, const drop *dr,
                      const char *who)
{
    at_status s = iv_check_pass(m, B, S, m->iv && m->iv->pass != AT_PASS_FORWARD &&
                                m->iv->pass != AT_PASS_TRAIN ? -1 : T,
                                iv_backward(m), who);
    if (s == AT_OK)
        s = blas_headroom(m, who);
    if (s == AT_OK)
        products_ready(m);
    if (s == AT_OK)
        s = arena_fit(m, B, Bd, S, T, extra, who);
    if (s != AT_OK)
        return s;

    const dims *dm = &m->dm;
    const params *p = &m->w->p;
    acts *a = &m->a;
    int d = dm->d;
    m->dr = *dr;
    for (int i = 0; i < B * S; i++)
        a->src_mask[i] = src[i] != pad;
    layer_ctx lc = {.m = m, .dm = dm, .dr = dr, .stack = 0, .B = B};
    embed(a->src_emb, src, p->src_lut, p->src_pe, B, S, d, dr, 0);
    tap_model(m, AT_SITE_SRC_EMBED, a->src_emb, B, S, d);
    const float *x = a->src_emb;
    for (int l = 0; l < dm->layers; l++) {
        lc.layer = l;
        encoder_layer(&p->enc[l], &a->enc[l], x, S, &lc);
        x = a->enc[l].out;
    }
    norm_forward(a->memory, x, p->enc_norm, B * S, d);
    tap_model(m, AT_SITE_MEMORY, a->memory.y, B, S, d);
    m->have_enc = true;
    atomic_store_explicit(&blas_warm, true, memory_order_relaxed);
    if (T > 0) {
        linear cross_kv = p->dec[0].ca.k;   /* the block of every layer's k and v */
        linear_forward(a->cross_kv, a->memory.y, cross_kv, B * S, d, 2 * d * dm->layers);
        for (int l = 0; m->iv && l < dm->layers; l++) {
            lc.layer = l;
            fire_qkv_cross(&lc, a->dec[l].ca, S);
        }
    }
    return AT_OK;
}

/* The whole pass; dr says whether and how to drop out (training). As for
 * encode_rows, the caller has validated and invalidated. */
at_status forward_pass(at_model *m, const int32_t *src, const int32_t *tgt, int B, int S,
                       int T, int32_t pad, const drop *dr, const char *who)
{
    at_status s = encode_pass(m, src, B, S, T, pad, dr, who);
    if (s != AT_OK || T == 0)
        return s;

    const dims *dm = &m->dm;
    const params *p = &m->w->p;
    acts *a = &m->a;
    int d = dm->d;
    build_tgt_mask(a, tgt, B, T, pad);
    layer_ctx lc = {.m = m, .dm = dm, .dr = dr, .stack = 1, .B = B};
    embed(a->tgt_emb, tgt, p->tgt_lut, p->tgt_pe, B, T, d, dr, 1);
    tap_model(m, AT_SITE_TGT_EMBED, a->tgt_emb, B, T, d);
    const float *x = a->tgt_emb;
    for (int l = 0; l < dm->layers; l++) {
        lc.layer = l;
        decoder_layer(&p->dec[l], &a->dec[l], x, T, &lc);
        x = a->dec[l].out;
    }
    norm_forward(a->dec_out, x, p->dec_norm, B * T, d);
    tap_model(m, AT_SITE_DECODER, a->dec_out.y, B, T, d);
    linear_forward(a->logp, a->dec_out.y, p->gen, B * T, d, dm->tgt_vocab);
    log_softmax_rows(a->logp, B * T, dm->tgt_vocab);
    tap_model(m, AT_SITE_LOGPROBS, a->logp, B, T, dm->tgt_vocab);
    m->have_dec = true;
    return AT_OK;
}

/* A pass whose tap failed leaves no views: its tensors are half edited (the
 * generation moved on when the pass began). */
at_status pass_end(at_model *m, at_status s, const char *who)
{
    if (s == AT_OK && (s = iv_end(m, who)) != AT_OK)
        m->have_enc = m->have_dec = false;
    return s;
}

/* One pass, one generation: the views end (even when the arguments are
 * refused), the arguments are checked once, the pass trusts them. */
static at_status forward_call(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                              int src_len, int tgt_len, int32_t pad)
{
    static const drop eval = {0};
    invalidate(m);
    iv_begin(m, AT_PASS_FORWARD, false);
    at_status s = check_forward_args(m, src, tgt, batch, src_len, tgt_len, "at_forward");
    if (s == AT_OK)
        s = forward_pass(m, src, tgt, batch, src_len, tgt_len, pad, &eval, "at_forward");
    return pass_end(m, s, "at_forward");
}

at_status at_forward(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                     int src_len, int tgt_len, int32_t pad)
{
    GUARDED(m, "at_forward", forward_call(m, src, tgt, batch, src_len, tgt_len, pad));
}

/* ---- views ---- */

/* A view of shape over memory laid out as lay (they differ after a decode
 * that stopped before the length it was laid out for). */
static void make_view(const at_model *m, at_view *out, const float *data, int ndim,
                      const int64_t shape[4], const int64_t lay[4])
{
    memset(out, 0, sizeof *out);
    out->data = data;
    out->ndim = ndim;
    int64_t stride = 1;
    for (int i = 3; i >= 0; i--) {
        out->shape[i] = i < ndim ? shape[i] : 1;
        out->stride[i] = stride;
        stride *= i < ndim ? lay[i] : 1;
    }
    out->generation = m->generation;
}

#define SHAPE(...) ((const int64_t[4]){__VA_ARGS__})

static at_status attention_view(at_model *m, at_attn_kind kind, int layer, at_view *out)
{
    if (!out)
        return set_error(m, AT_E_ARG, "at_get_attention: out is NULL");
    if (kind != AT_ATTN_ENC_SELF && kind != AT_ATTN_DEC_SELF && kind != AT_ATTN_CROSS)
        return set_error(m, AT_E_ARG, "at_get_attention: unknown kind %d", (int)kind);
    if (layer < 0 || layer >= m->dm.layers)
        return set_error(m, AT_E_ARG, "at_get_attention: layer %d is outside [0, %d)", layer,
                       m->dm.layers);
    bool have = kind == AT_ATTN_ENC_SELF ? m->have_enc : m->have_dec;
    if (!have)
        return set_error(m, AT_E_STATE, "at_get_attention: no %s attention has been computed "
                         "(run at_forward%s first)", kind == AT_ATTN_ENC_SELF ? "encoder" :
                         "decoder", kind == AT_ATTN_ENC_SELF ? "" : " with a target");
    const attn_a *blk = kind == AT_ATTN_ENC_SELF ? &m->a.enc[layer].sa
                        : kind == AT_ATTN_DEC_SELF ? &m->a.dec[layer].sa : &m->a.dec[layer].ca;
    if (blk->nkept != m->dm.heads)
        return set_error(m, AT_E_STATE, "at_get_attention: the capture policy kept %d of the "
                         "%d heads of this layer (at_get_attention_head gives one)",
                         blk->nkept, m->dm.heads);
    int64_t B = m->B, h = m->dm.heads, S = m->S, T = m->T, Tl = m->Tl;
    if (kind == AT_ATTN_ENC_SELF)
        make_view(m, out, m->a.enc[layer].sa.p, 4, SHAPE(B, h, S, S), SHAPE(B, h, S, S));
    else if (kind == AT_ATTN_DEC_SELF)
        make_view(m, out, m->a.dec[layer].sa.p, 4, SHAPE(B, h, T, T), SHAPE(B, h, Tl, Tl));
    else
        make_view(m, out, m->a.dec[layer].ca.p, 4, SHAPE(B, h, T, S), SHAPE(B, h, Tl, S));
    return AT_OK;
}

at_status at_get_attention(at_model *m, at_attn_kind kind, int layer, at_view *out)
{
    GUARDED(m, "at_get_attention", attention_view(m, kind, layer, out));
}

static at_status attention_head_view(at_model *m, at_attn_kind kind, int layer, int head,
                                     at_view *out)
{
    const char *who = "at_get_attention_head";
    if (!out)
        return set_error(m, AT_E_ARG, "%s: out is NULL", who);
    if (kind != AT_ATTN_ENC_SELF && kind != AT_ATTN_DEC_SELF && kind != AT_ATTN_CROSS)
        return set_error(m, AT_E_ARG, "%s: unknown kind %d", who, (int)kind);
    if (layer < 0 || layer >= m->dm.layers || head < 0 || head >= m->dm.heads)
        return set_error(m, AT_E_ARG, "%s: layer %d, head %d: layers [0, %d), heads [0, %d)",
                         who, layer, head, m->dm.layers, m->dm.heads);
    bool have = kind == AT_ATTN_ENC_SELF ? m->have_enc : m->have_dec;
    if (!have)
        return set_error(m, AT_E_STATE, "%s: no %s attention has been computed", who,
                         kind == AT_ATTN_ENC_SELF ? "encoder" : "decoder");
    const attn_a *a = kind == AT_ATTN_ENC_SELF ? &m->a.enc[layer].sa
                      : kind == AT_ATTN_DEC_SELF ? &m->a.dec[layer].sa : &m->a.dec[layer].ca;
    int slot = a->slot ? a->slot[head] : head;
    if (slot < 0)
        return set_error(m, AT_E_STATE, "%s: the capture policy dropped head %d of layer %d",
                         who, head, layer);
    int64_t B = m->B, Lq = kind == AT_ATTN_ENC_SELF ? m->S : m->T;
    int64_t Lk = kind == AT_ATTN_DEC_SELF ? m->T : m->S;
    /* the layout's lengths (they differ after a decode that stopped early) */
    int64_t lq = kind == AT_ATTN_ENC_SELF ? m->S : m->Tl;
    int64_t lk = kind == AT_ATTN_DEC_SELF ? m->Tl : m->S;
    const float *data = a->p + (size_t)slot * (size_t)(lq * lk);
    make_view(m, out, data, 3, SHAPE(B, Lq, Lk), SHAPE(B, lq, lk));
    out->stride[0] = (int64_t)a->nkept * lq * lk;
    return AT_OK;
}

at_status at_get_attention_head(at_model *m, at_attn_kind kind, int layer, int head,
                                at_view *out)
{
    GUARDED(m, "at_get_attention_head", attention_head_view(m, kind, layer, head, out));
}

static at_status output_view(at_model *m, at_output which, int layer, at_view *out)
{
    if (!out)
        return set_error(m, AT_E_ARG, "at_get_output: out is NULL");
    if ((int)which < AT_OUT_SRC_EMBED || which > AT_OUT_TGT_MASK)
        return set_error(m, AT_E_ARG, "at_get_output: unknown output %d", (int)which);
    bool per_layer = which == AT_OUT_ENC_LAYER || which == AT_OUT_DEC_LAYER;
    if (per_layer ? layer < 0 || layer >= m->dm.layers : layer != 0)
        return set_error(m, AT_E_ARG, "at_get_output: layer %d is invalid for output %d", layer,
                         (int)which);
    bool encoder_side = which == AT_OUT_SRC_EMBED || which == AT_OUT_ENC_LAYER ||
                        which == AT_OUT_MEMORY || which == AT_OUT_SRC_MASK;
    if (!(encoder_side ? m->have_enc : m->have_dec))
        return set_error(m, AT_E_STATE, "at_get_output: output %d has not been computed",
                         (int)which);
    const acts *a = &m->a;
    int64_t B = m->B, S = m->S, T = m->T, Tl = m->Tl, d = m->dm.d, V = m->dm.tgt_vocab;
    const float *src_side[] = {[AT_OUT_SRC_EMBED] = a->src_emb, [AT_OUT_MEMORY] = a->memory.y};
    const float *tgt_side[] = {[AT_OUT_TGT_EMBED] = a->tgt_emb, [AT_OUT_DECODER] = a->dec_out.y};
    switch (which) {
    case AT_OUT_SRC_EMBED:
    case AT_OUT_MEMORY:
        make_view(m, out, src_side[which], 3, SHAPE(B, S, d), SHAPE(B, S, d));
        break;
    case AT_OUT_ENC_LAYER:
        make_view(m, out, a->enc[layer].out, 3, SHAPE(B, S, d), SHAPE(B, S, d));
        break;
    case AT_OUT_TGT_EMBED:
    case AT_OUT_DECODER:
        make_view(m, out, tgt_side[which], 3, SHAPE(B, T, d), SHAPE(B, Tl, d));
        break;
    case AT_OUT_DEC_LAYER:
        make_view(m, out, a->dec[layer].out, 3, SHAPE(B, T, d), SHAPE(B, Tl, d));
        break;
    case AT_OUT_LOGPROBS:
        make_view(m, out, a->logp, 3, SHAPE(B, T, V), SHAPE(B, Tl, V));
        break;
    case AT_OUT_SRC_MASK:
        make_view(m, out, a->src_mask, 3, SHAPE(B, 1, S), SHAPE(B, 1, S));
        break;
    case AT_OUT_TGT_MASK:
        make_view(m, out, a->tgt_mask, 3, SHAPE(B, T, T), SHAPE(B, Tl, Tl));
        break;
    }
    return AT_OK;
}

at_status at_get_output(at_model *m, at_output which, int layer, at_view *out)
{
    GUARDED(m, "at_get_output", output_view(m, which, layer, out));
}

uint64_t at_model_generation(const at_model *m) { return m ? m->generation : 0; }

at_status at_set_threads(int n)
{
    if (n < 0)
        return set_error(NULL, AT_E_ARG, "at_set_threads: %d threads", n);
    /* OpenBLAS's own count, used outside libat's products; inside them it
     * runs in each of the pool's n threads (blas_enter) */
    blas_set_threads(n > 0 ? n : pool_cores());
    pool_set_threads(n);
    return AT_OK;
}

int at_get_threads(void) { return pool_threads(); }
