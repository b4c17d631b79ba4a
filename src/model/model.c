/* The parameter slab, its state_dict table, and initialisation (make_model). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"

/* Walks the state_dict in the reference's order. With base == NULL it only
 * counts; with memory it also sets the typed pointers in m->w->p.
 *
 * The table keeps the reference's order, but offsets in the slab need not
 * follow it: the q, k and v projections of a self-attention sit side by side
 * (one GEMM computes all three), and the k and v projections of every
 * decoder layer's cross-attention form one block (one GEMM over the memory
 * serves all layers). Gradients and optimizer moments mirror the slab, so the
 * backward pass enjoys the same fusion. */
typedef struct walker {
    at_model *m;
    params *out;                     /* the typed pointers to set (with base) */
    bool record;                     /* fill m->w->table */
    float *base, *bufbase;
    size_t nparams, nbuffers;
    size_t cross_kv_w, cross_kv_b;   /* the cross-attention k/v block */
    int n;
} walker;

static size_t bump(walker *w, bool is_buffer, size_t numel)
{
    size_t *count = is_buffer ? &w->nbuffers : &w->nparams;
    size_t off = *count;
    *count += numel;
    return off;
}

static float *entry(walker *w, bool is_buffer, size_t off, int ndim, int64_t d0, int64_t d1,
                    int64_t d2, const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static float *entry(walker *w, bool is_buffer, size_t off, int ndim, int64_t d0, int64_t d1,
                    int64_t d2, const char *fmt, ...)
{
    if (w->record) {
        tensor_info *t = &w->m->w->table[w->n];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->name, sizeof t->name, fmt, ap);
        va_end(ap);
        t->ndim = ndim;
        t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2;
        t->offset = off;
        t->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1) * (size_t)(ndim > 2 ? d2 : 1);
        t->is_buffer = is_buffer;
    }
    w->n++;
    float *base = is_buffer ? w->bufbase : w->base;
    return base ? base + off : NULL;
}

#define NEXT(w, buf, n) bump(w, buf, (size_t)(n))

/* A linear whose weight and bias live at the given offsets. */
static linear lin_at(walker *w, size_t woff, size_t boff, int in, int out, const char *prefix,
                     int layer, const char *what)
{
    linear l;
    l.sh = &w->m->w->sh;
    l.w = entry(w, false, woff, 2, out, in, 0, "%s.layers.%d.%s.weight", prefix, layer, what);
    l.b = entry(w, false, boff, 1, out, 0, 0, "%s.layers.%d.%s.bias", prefix, layer, what);
    return l;
}

static linear lin(walker *w, int in, int out, const char *prefix, int layer, const char *what)
{
    size_t woff = NEXT(w, false, (size_t)in * out);
    return lin_at(w, woff, NEXT(w, false, out), in, out, prefix, layer, what);
}

/* linears.0..3 = q, k, v, output. Self-attention: q, k, v weights in one
 * (3d, d) block and their biases in one 3d block. Cross-attention: k and v in
 * this layer's part of the shared block. */
static attn_p attn_slots(walker *w, int d, const char *prefix, int layer, const char *name,
                         bool cross)
{
    char what[48];
    size_t dd = (size_t)d * d, wq, bq, wkv, bkv;
    if (cross) {
        wq = NEXT(w, false, dd);
        bq = NEXT(w, false, d);
        wkv = w->cross_kv_w + (size_t)layer * 2 * dd;
        bkv = w->cross_kv_b + (size_t)layer * 2 * d;
    } else {
        wq = NEXT(w, false, 3 * dd);
        bq = NEXT(w, false, 3 * (size_t)d);
        wkv = wq + dd;
        bkv = bq + (size_t)d;
    }
    attn_p a;
    snprintf(what, sizeof what, "%s.linears.0", name);
    a.q = lin_at(w, wq, bq, d, d, prefix, layer, what);
    snprintf(what, sizeof what, "%s.linears.1", name);
    a.k = lin_at(w, wkv, bkv, d, d, prefix, layer, what);
    snprintf(what, sizeof what, "%s.linears.2", name);
    a.v = lin_at(w, wkv + dd, bkv + (size_t)d, d, d, prefix, layer, what);
    snprintf(what, sizeof what, "%s.linears.3", name);
    a.o = lin(w, d, d, prefix, layer, what);
    return a;
}

static ff_p ff_slots(walker *w, int d, int d_ff, const char *prefix, int layer)
{
    ff_p f;
    f.w1 = lin(w, d, d_ff, prefix, layer, "feed_forward.w_1");
    f.w2 = lin(w, d_ff, d, prefix, layer, "feed_forward.w_2");
    return f;
}

static norm norm_slots(walker *w, int d, const char *prefix, int layer, int sub)
{
    norm n;
    size_t a = NEXT(w, false, d), b = NEXT(w, false, d);
    if (layer < 0) {   /* the stack's final norm */
        n.a = entry(w, false, a, 1, d, 0, 0, "%s.norm.a_2", prefix);
        n.b = entry(w, false, b, 1, d, 0, 0, "%s.norm.b_2", prefix);
    } else {
        n.a = entry(w, false, a, 1, d, 0, 0, "%s.layers.%d.sublayer.%d.norm.a_2", prefix,
                    layer, sub);
        n.b = entry(w, false, b, 1, d, 0, 0, "%s.layers.%d.sublayer.%d.norm.b_2", prefix,
                    layer, sub);
    }
    return n;
}

/* state_dict order: encoder, decoder, src_embed, tgt_embed, generator
 * (SEMANTICS §15); inside a layer: attention(s), feed_forward, sublayer norms. */
static void walk(walker *w)
{
    const dims *dm = &w->m->dm;
    params *p = w->out;
    int d = dm->d;
    for (int l = 0; l < dm->layers; l++) {
        enc_p e;
        e.sa = attn_slots(w, d, "encoder", l, "self_attn", false);
        e.ff = ff_slots(w, d, dm->d_ff, "encoder", l);
        for (int s = 0; s < 2; s++)
            e.ln[s] = norm_slots(w, d, "encoder", l, s);
        if (w->base)
            p->enc[l] = e;
    }
    norm en = norm_slots(w, d, "encoder", -1, 0);
    w->cross_kv_w = NEXT(w, false, (size_t)dm->layers * 2 * d * d);
    w->cross_kv_b = NEXT(w, false, (size_t)dm->layers * 2 * d);
    for (int l = 0; l < dm->layers; l++) {
        dec_p e;
        e.sa = attn_slots(w, d, "decoder", l, "self_attn", false);
        e.ca = attn_slots(w, d, "decoder", l, "src_attn", true);
        e.ff = ff_slots(w, d, dm->d_ff, "decoder", l);
        for (int s = 0; s < 3; s++)
            e.ln[s] = norm_slots(w, d, "decoder", l, s);
        if (w->base)
            p->dec[l] = e;
    }
    norm dn = norm_slots(w, d, "decoder", -1, 0);
    size_t pe = (size_t)dm->max_len * d;
    float *slut = entry(w, false, NEXT(w, false, (size_t)dm->src_vocab * d), 2, dm->src_vocab,
                        d, 0, "src_embed.0.lut.weight");
    float *spe = entry(w, true, NEXT(w, true, pe), 3, 1, dm->max_len, d, "src_embed.1.pe");
    float *tlut = entry(w, false, NEXT(w, false, (size_t)dm->tgt_vocab * d), 2, dm->tgt_vocab,
                        d, 0, "tgt_embed.0.lut.weight");
    float *tpe = entry(w, true, NEXT(w, true, pe), 3, 1, dm->max_len, d, "tgt_embed.1.pe");
    linear gen;
    gen.sh = &w->m->w->sh;
    gen.w = entry(w, false, NEXT(w, false, (size_t)dm->tgt_vocab * d), 2, dm->tgt_vocab, d, 0,
                  "generator.proj.weight");
    gen.b = entry(w, false, NEXT(w, false, dm->tgt_vocab), 1, dm->tgt_vocab, 0, 0,
                  "generator.proj.bias");
    if (w->base) {
        p->enc_norm = en, p->dec_norm = dn;
        p->src_lut = slut, p->src_pe = spe, p->tgt_lut = tlut, p->tgt_pe = tpe;
        p->gen = gen;
    }
}

/* The weights, freed with the last handle that refers to them. */
static void weights_release(weights *w)
{
    if (!w || atomic_fetch_sub(&w->sh.refs, 1) != 1)
        return;
    free(w->table);
    free(w->sh.param_mem);
    free(w->buffer_mem);
    free(w->p.enc);
    free(w->p.dec);
    packed_drop(&w->sh);
    meta_free(&w->sh);
    pthread_mutex_destroy(&w->sh.lock);
    free(w);
}

/* Weights of one owner, without memory yet. */
static weights *weights_new(void)
{
    weights *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    if (pthread_mutex_init(&w->sh.lock, NULL) != 0) {
        free(w);
        return NULL;
    }
    atomic_init(&w->sh.owners, 1);
    atomic_init(&w->sh.refs, 1);
    atomic_init(&w->sh.packed, NULL);
    return w;
}

/* A handle without weights memory yet: its table (names and shapes) is
 * complete, so a file can be checked against it before anything large is
 * allocated. */
at_status model_plan(const at_config *cfg, at_model **out, char *err, size_t errlen)
{
    *out = NULL;
    dims d;
    at_status s = dims_from_config(cfg, &d, err, errlen);
    if (s != AT_OK)
        return s;
    at_model *m = calloc(1, sizeof *m);
    weights *ws = weights_new();
    if (!m || !ws) {
        free(m);
        if (ws)
            weights_release(ws);
        snprintf(err, errlen, "out of memory");
        return AT_E_NOMEM;
    }
    atomic_init(&m->refs, 1);
    m->w = ws;
    m->cfg = *cfg;
    m->cfg.set = 0;
    m->dm = d;
    walker w = {.m = m};
    walk(&w);                                   /* count */
    m->w->sh.ntensors = w.n;
    m->w->sh.nparams = w.nparams;
    m->w->nbuffers = w.nbuffers;
    m->w->table = calloc((size_t)w.n, sizeof *m->w->table);
    m->enc_acts = calloc((size_t)d.layers, sizeof *m->enc_acts);
    m->dec_acts = calloc((size_t)d.layers, sizeof *m->dec_acts);
    if (!m->w->table || !m->enc_acts || !m->dec_acts) {
        at_model_free(m);
        snprintf(err, errlen, "out of memory");
        return AT_E_NOMEM;
    }
    w = (walker){.m = m, .record = true};
    walk(&w);                                   /* name */
    ws->sh.table = ws->table;
    ws->sh.shapes_packable = d.d % 32 == 0 && d.d_ff % 32 == 0;
    ws->sh.packable = ws->sh.shapes_packable && cfg->val[AT_P_PACKED] != 0;
    *out = m;
    return AT_OK;
}

/* The weights memory of a planned handle, and the typed pointers into it. */
at_status model_slabs(at_model *m, char *err, size_t errlen)
{
    const dims *dm = &m->dm;
    weights *ws = m->w;
    size_t n = ws->sh.nparams;
    if (n > SIZE_MAX / sizeof(float) / 4 || ws->nbuffers > SIZE_MAX / sizeof(float)) {
        snprintf(err, errlen, "a model of %zu parameters is too large for this machine", n);
        return AT_E_NOMEM;
    }
    /* one after the other: nothing more is asked for once one fails */
    if (!(ws->sh.param_mem = slab_alloc(n * sizeof(float))) ||
        !(ws->buffer_mem = malloc(ws->nbuffers * sizeof(float))) ||
        !(ws->p.enc = calloc((size_t)dm->layers, sizeof *ws->p.enc)) ||
        !(ws->p.dec = calloc((size_t)dm->layers, sizeof *ws->p.dec))) {
        snprintf(err, errlen, "out of memory for a model of %zu parameters (%zu MiB: %d "
                 "layers, d_model %d, d_ff %d)", n, n * sizeof(float) >> 20, dm->layers, dm->d,
                 dm->d_ff);
        return AT_E_NOMEM;          /* at_model_free frees what was allocated */
    }
    walker w = {.m = m, .out = &ws->p, .base = ws->sh.param_mem, .bufbase = ws->buffer_mem};
    walk(&w);                                   /* point */
    return AT_OK;
}

at_status model_alloc(const at_config *cfg, at_model **out, char *err, size_t errlen)
{
    at_status s = model_plan(cfg, out, err, errlen);
    if (s == AT_OK && (s = model_slabs(*out, err, errlen)) != AT_OK) {
        at_model_free(*out);
        *out = NULL;
    }
    return s;
}

/* The typed pointers of another slab laid out as param_mem (gradients,
 * optimizer moments). Its layer arrays are allocated; NULL on failure. */
params params_rebase(const at_model *m, float *slab)
{
    params p = {0};
    p.enc = calloc((size_t)m->dm.layers, sizeof *p.enc);
    p.dec = calloc((size_t)m->dm.layers, sizeof *p.dec);
    if (!p.enc || !p.dec) {
        free(p.enc);
        free(p.dec);
        return (params){0};
    }
    walker w = {.m = (at_model *)m, .out = &p, .base = slab, .bufbase = m->w->buffer_mem};
    walk(&w);
    return p;
}

void arena_release(arena_block *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
        free(b->data);
        free(b);
    }
}

/* Ends the life of every view of activations: a new pass begins. */
void invalidate(at_model *m)
{
    m->have_enc = m->have_dec = false;
    m->tr.have_agrad = false;
    m->generation++;
}

void train_free(train_state *t)
{
    free(t->grad);
    free(t->m1);
    free(t->m2);
    free(t->g.enc);
    free(t->g.dec);
    free(t->work);
    free(t->ids);
    free(t->agrad);
    memset(t, 0, sizeof *t);
}

/* Frees a handle once it is closed and no hold refers to it any more. */
static void model_unref(at_model *m)
{
    if (atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    train_free(&m->tr);
    interv_free(m->iv);
    arena_release(m->blk);
    weights_release(m->w);
    free(m->enc_acts);
    free(m->dec_acts);
    free(m);
}

void at_model_free(at_model *m)
{
    if (!m)
        return;
    /* another handle may write the weights as soon as this one is closed,
     * even while a hold keeps its memory */
    atomic_fetch_sub(&m->w->sh.owners, 1);
    model_unref(m);
}

struct at_hold {
    at_model *m;
    arena_block *blk;
};

static at_status view_hold(at_model *m, at_hold **out)
{
    at_hold *h = malloc(sizeof *h);
    if (!h)
        return set_error(m, AT_E_NOMEM, "at_view_hold: out of memory");
    h->m = m;
    h->blk = m->blk;
    atomic_fetch_add(&m->refs, 1);
    if (h->blk)
        atomic_fetch_add(&h->blk->refs, 1);
    *out = h;
    return AT_OK;
}

at_status at_view_hold(at_model *m, at_hold **out)
{
    if (!out)
        return set_error(m, AT_E_ARG, "at_view_hold: out is NULL");
    *out = NULL;
    GUARDED(m, "at_view_hold", view_hold(m, out));
}

void at_hold_release(at_hold *h)
{
    if (!h)
        return;
    arena_release(h->blk);
    model_unref(h->m);
    free(h);
}

/* ---- random numbers ---- */

uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float rng_uniform(rng *r)
{
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

static void fill_uniform(rng *r, float *x, size_t n, double bound)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
}

/* Positional encoding (paper §3.5): pe[pos, 2i] = sin(pos·w_i), pe[pos, 2i+1] =
 * cos(pos·w_i), w_i = exp(2i·(−ln 10000 / d)). Evaluated in float32 as torch does. */
void pe_fill(float *pe, int max_len, int d)
{
    float c = (float)(-log(10000.0) / d);
    for (int i = 0; i < d / 2; i++) {
        float wi = expf((float)(2 * i) * c);
        for (int pos = 0; pos < max_len; pos++) {
            float a = (float)pos * wi;
            pe[(size_t)pos * d + 2 * i] = sinf(a);
            pe[(size_t)pos * d + 2 * i + 1] = cosf(a);
        }
    }
}

static void fill_norm(norm n, int d)
{
    for (int i = 0; i < d; i++)
        n.a[i] = 1.0f, n.b[i] = 0.0f;
}

static void set_attn_biases(attn_p *a, const float *b, size_t bytes)
{
    memcpy(a->q.b, b, bytes);
    memcpy(a->k.b, b, bytes);
    memcpy(a->v.b, b, bytes);
    memcpy(a->o.b, b, bytes);
}

/* make_model: nn.Linear's default bias U(±1/√in) is drawn once per prototype
 * and deep-copied, so every attention bias in the model is one vector, and so
 * are all w_1 biases and all w_2 biases (SEMANTICS §9); then xavier-uniform
 * U(±√(6/(fan_in+fan_out))) redraws every matrix. */
at_status model_init_weights(at_model *m)
{
    const dims *dm = &m->dm;
    rng r = {dm->seed};
    int d = dm->d;
    params *p = &m->w->p;
    float *proto = malloc((size_t)(2 * d + dm->d_ff) * sizeof(float));
    if (!proto)
        return AT_E_NOMEM;
    float *attn_b = proto, *w2_b = proto + d, *w1_b = proto + 2 * d;
    fill_uniform(&r, attn_b, (size_t)d, 1.0 / sqrt(d));
    fill_uniform(&r, w1_b, (size_t)dm->d_ff, 1.0 / sqrt(d));
    fill_uniform(&r, w2_b, (size_t)d, 1.0 / sqrt(dm->d_ff));
    fill_uniform(&r, p->gen.b, (size_t)dm->tgt_vocab, 1.0 / sqrt(d));
    size_t db = (size_t)d * sizeof(float);
    for (int l = 0; l < dm->layers; l++) {
        enc_p *e = &p->enc[l];
        dec_p *c = &p->dec[l];
        set_attn_biases(&e->sa, attn_b, db);
        set_attn_biases(&c->sa, attn_b, db);
        set_attn_biases(&c->ca, attn_b, db);
        memcpy(e->ff.w1.b, w1_b, (size_t)dm->d_ff * sizeof(float));
        memcpy(c->ff.w1.b, w1_b, (size_t)dm->d_ff * sizeof(float));
        memcpy(e->ff.w2.b, w2_b, db);
        memcpy(c->ff.w2.b, w2_b, db);
        for (int s = 0; s < 2; s++)
            fill_norm(e->ln[s], d);
        for (int s = 0; s < 3; s++)
            fill_norm(c->ln[s], d);
    }
    free(proto);
    fill_norm(p->enc_norm, d);
    fill_norm(p->dec_norm, d);

    for (int i = 0; i < m->w->sh.ntensors; i++) {
        const tensor_info *t = &m->w->table[i];
        if (t->is_buffer || t->ndim < 2)
            continue;
        /* torch's fan_in is size(1), fan_out size(0), for Linear and Embedding alike */
        double bound = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
        fill_uniform(&r, m->w->sh.param_mem + t->offset, t->numel, bound);
    }
    pe_fill(p->src_pe, dm->max_len, d);
    memcpy(p->tgt_pe, p->src_pe, (size_t)dm->max_len * db);
    return AT_OK;
}

at_status at_model_create(const at_config *cfg, at_model **out)
{
    if (!out)
        return set_error(NULL, AT_E_ARG, "at_model_create: out is NULL");
    *out = NULL;
    at_config def;
    if (!cfg) {
        config_defaults(&def);
        cfg = &def;
    }
    char err[AT_ERR_MAX];
    at_status s = model_alloc(cfg, out, err, sizeof err);
    if (s != AT_OK)
        return set_error(NULL, s, "at_model_create: %s", err);
    if (model_init_weights(*out) != AT_OK) {
        at_model_free(*out);
        *out = NULL;
        return set_error(NULL, AT_E_NOMEM, "at_model_create: out of memory");
    }
    return AT_OK;
}

/* ---- the table, for hosts ---- */

static const float *tensor_data(const at_model *m, const tensor_info *t)
{
    return (t->is_buffer ? m->w->buffer_mem : m->w->sh.param_mem) + t->offset;
}

/* A view of one state_dict tensor's shape over data (parameters, gradients). */
void tensor_view(const at_model *m, const tensor_info *t, const float *data, at_view *out)
{
    memset(out, 0, sizeof *out);
    out->data = data;
    out->ndim = t->ndim;
    int64_t stride = 1;
    for (int i = 3; i >= 0; i--) {
        out->shape[i] = i < t->ndim ? t->shape[i] : 1;
        out->stride[i] = stride;
        stride *= out->shape[i];
    }
    out->generation = m->generation;
}

int at_model_tensor_count(const at_model *m) { return m ? m->w->sh.ntensors : 0; }

static at_status tensor_at(at_model *m, int index, const char **name, at_view *out)
{
    if (index < 0 || index >= m->w->sh.ntensors)
        return set_error(m, AT_E_ARG, "at_model_tensor: index %d is outside [0, %d)", index,
                       m->w->sh.ntensors);
    if (name)
        *name = m->w->table[index].name;
    if (out)
        tensor_view(m, &m->w->table[index], tensor_data(m, &m->w->table[index]), out);
    return AT_OK;
}

at_status at_model_tensor(at_model *m, int index, const char **name, at_view *out)
{
    GUARDED(m, "at_model_tensor", tensor_at(m, index, name, out));
}

static at_status find_tensor(at_model *m, const char *name, at_view *out)
{
    if (!name || !out)
        return set_error(m, AT_E_ARG, "at_model_find_tensor: NULL argument");
    for (int i = 0; i < m->w->sh.ntensors; i++)
        if (!strcmp(m->w->table[i].name, name)) {
            tensor_view(m, &m->w->table[i], tensor_data(m, &m->w->table[i]), out);
            return AT_OK;
        }
    return set_error(m, AT_E_SHAPE, "at_model_find_tensor: no tensor named '%s'", name);
}

at_status at_model_find_tensor(at_model *m, const char *name, at_view *out)
{
    GUARDED(m, "at_model_find_tensor", find_tensor(m, name, out));
}

static at_status model_share(at_model *base, at_model **out)
{
    at_model *m = calloc(1, sizeof *m);
    enc_a *enc = calloc((size_t)base->dm.layers, sizeof *enc);
    dec_a *dec = calloc((size_t)base->dm.layers, sizeof *dec);
    if (!m || !enc || !dec) {
        free(m);
        free(enc);
        free(dec);
        return set_error(base, AT_E_NOMEM, "at_model_share: out of memory");
    }
    atomic_init(&m->refs, 1);
    m->cfg = base->cfg;
    m->dm = base->dm;
    m->w = base->w;                 /* the same weights: one more owner */
    atomic_fetch_add(&m->w->sh.owners, 1);
    atomic_fetch_add(&m->w->sh.refs, 1);
    m->enc_acts = enc;
    m->dec_acts = dec;
    *out = m;
    return AT_OK;
}

/* A second handle on the same weights: its own activations, views, training
 * state and error message, no copy of the parameters. */
at_status at_model_share(at_model *base, at_model **out)
{
    if (!out)
        return set_error(NULL, AT_E_ARG, "at_model_share: out is NULL");
    *out = NULL;
    if (!base)
        return set_error(NULL, AT_E_ARG, "at_model_share: base is NULL");
    GUARDED(base, "at_model_share", model_share(base, out));
}

static at_status tensor_write(at_model *m, int index, const float *data, size_t count)
{
    if (weights_writable(m, "at_model_tensor_write") != AT_OK)
        return AT_E_STATE;
    if (!data)
        return set_error(m, AT_E_ARG, "at_model_tensor_write: data is NULL");
    if (index < 0 || index >= m->w->sh.ntensors)
        return set_error(m, AT_E_ARG, "at_model_tensor_write: index %d is outside [0, %d)",
                       index, m->w->sh.ntensors);
    const tensor_info *t = &m->w->table[index];
    if (count != t->numel)
        return set_error(m, AT_E_SHAPE, "at_model_tensor_write: '%s' has %zu elements, not %zu",
                         t->name, t->numel, count);
    for (size_t i = 0; i < count; i++)
        if (!isfinite(data[i]))
            return set_error(m, AT_E_NUMERIC, "at_model_tensor_write: '%s' element %zu is %g; "
                             "weights must be finite", t->name, i, (double)data[i]);
    memcpy((float *)tensor_data(m, t), data, count * sizeof(float));
    packed_drop(&m->w->sh);
    invalidate(m);
    return AT_OK;
}

at_status at_model_tensor_write(at_model *m, int index, const float *data, size_t count)
{
    GUARDED(m, "at_model_tensor_write", tensor_write(m, index, data, count));
}

int at_model_tensor_trainable(const at_model *m, int index)
{
    if (!m || index < 0 || index >= m->w->sh.ntensors)
        return -1;
    return !m->w->table[index].is_buffer;
}
