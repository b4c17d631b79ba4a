/* The model's private declarations (src/model/ and the layers above it):
 * hyperparameters, the parameters' layout, activations, dropout sites, the
 * training state, the handle (struct at_model) and the passes. The numerics
 * below them are declared in core/core.h. */
#ifndef AT_INTERNAL_H
#define AT_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at.h"

#include "core/core.h"

#define AT_PARAM_COUNT 19         /* one more than the largest at_param */
#define AT_ERR_MAX 512

struct at_config {
    double val[AT_PARAM_COUNT];
    uint32_t set;                 /* bit k: key k was set by the caller */
};

/* Hyperparameters as the code uses them. */
typedef struct dims {
    int src_vocab, tgt_vocab, layers, d, heads, d_ff, max_len;
    double dropout, attn_dropout;
    uint64_t seed;
    double lr, warmup, factor, smoothing, beta1, beta2, adam_eps;   /* training */
} dims;

typedef struct attn_p { linear q, k, v, o; } attn_p;    /* linears.0..3 */
typedef struct ff_p { linear w1, w2; } ff_p;

typedef struct enc_p { attn_p sa; ff_p ff; norm ln[2]; } enc_p;
typedef struct dec_p { attn_p sa, ca; ff_p ff; norm ln[3]; } dec_p;

typedef struct params {
    enc_p *enc;
    dec_p *dec;
    norm enc_norm, dec_norm;
    float *src_lut, *tgt_lut, *src_pe, *tgt_pe;
    linear gen;
} params;

typedef struct enc_a {
    norm_a ln[2];
    attn_a sa;
    float *mid;                   /* x + SA(LN0 x) */
    float *ff_h;                  /* relu(w_1 ·), (B, S, d_ff) */
    float *out;
} enc_a;

typedef struct dec_a {
    norm_a ln[3];
    attn_a sa, ca;
    float *mid1, *mid2;
    float *ff_h;
    float *out;
} dec_a;

/* The dropout of one training pass (SEMANTICS §8). Masks are not stored:
 * keep(i) is a hash of (site key, i), so backward recomputes them. */
typedef struct drop {
    bool on;
    float p, attn_p;              /* sublayer/embedding/FFN rate; attention rate */
    uint64_t key;                 /* differs per training step */
    uint64_t row0;                /* the global batch's index of this batch's row 0: a
                                     data-parallel shard draws the masks of its rows */
} drop;

/* The index within a site of the shard's first element, for sites of
 * per_row elements per batch row. */
static inline size_t drop_origin(const drop *dr, size_t per_row)
{
    return (size_t)dr->row0 * per_row;
}

enum drop_site { SITE_EMB, SITE_SA_P, SITE_SA_OUT, SITE_CA_P, SITE_CA_OUT, SITE_FF_H,
                 SITE_FF_OUT };

/* The key of one dropout site: stack 0 encoder, 1 decoder; layer −1 for the
 * embeddings. */
static inline uint64_t drop_site(const drop *dr, int stack, int layer, int site)
{
    return mix64(dr->key ^ mix64(((uint64_t)stack << 40) ^ ((uint64_t)(layer + 1) << 8) ^
                                 (uint64_t)site));
}

typedef struct acts {
    float *src_mask, *tgt_mask;   /* (B, S) and (B, T, T), 1 or 0 */
    float *src_emb, *tgt_emb;
    enc_a *enc;
    dec_a *dec;
    norm_a memory, dec_out;       /* final norms: memory and decoder output */
    float *cross_kv;              /* (B, S, layers·2d): every decoder layer's k and v */
    float *logp;                  /* (B, T, V) */
    float *scratch;               /* one (Lq, Lk) attention matrix after dropout */
    float *extra;                 /* what the caller of encode_rows asked for (beam.c) */
} acts;

/* Gradients, optimizer state and backward buffers; created by the first
 * training step. grad, m1 and m2 mirror param_mem element for element. */
typedef struct train_state {
    float *grad, *m1, *m2;
    params g;                     /* typed pointers into grad */
    uint64_t step;                /* optimizer steps taken */
    float *work;                  /* backward buffers, sized like the arena */
    size_t work_cap;
    int32_t *ids;                 /* decoder input and labels of the batch */
    size_t ids_cap;
    bool have_grad;
    /* ∂L/∂A of every attention block, [kind][layer], in work (at_attention_gradients);
     * keep_agrad: the backward pass running now writes them */
    float **agrad;
    bool keep_agrad, have_agrad;
} train_state;

/* ---- interventions (interv.c): what the host set on one handle ---- */
typedef struct tap_entry {
    at_site site;
    int kind, layer;              /* AT_ALL or one */
    at_tap_fn fn;
    void *user;
} tap_entry;
#define TAP_MAX 256

/* An override of one block: (B, h, Lq, Lk), the heads it replaces. */
typedef struct override_blk {
    float *p;
    int B, h, Lq, Lk;
    bool *heads;
} override_blk;

typedef struct interv {
    int layers, heads;            /* blocks are [kind][layer], gates [kind][layer][head] */
    float *gate;
    bool *gated;                  /* per block: some gate is not 1 */
    float *gate_grad;             /* ∂L/∂ξ of the last backward pass */
    bool *keep;                   /* per head: the capture policy */
    int *slot;                    /* per head: its plane in the block's p, or −1 */
    bool drops;                   /* some head is dropped */
    override_blk *ov;             /* per block; p NULL: none */
    tap_entry taps[TAP_MAX];
    int ntaps;
    uint32_t *tapped;             /* per block: bit s set when some tap wants site s */
    uint32_t model_tapped;        /* the same for the model sites */
    /* the pass running now, as taps are told */
    at_pass pass;
    int row0;                     /* beam search: the first slot of the rows fired */
    bool backward;                /* a backward pass follows: keep everything */
    int step;
    at_status failed;             /* AT_OK, or AT_E_CALLBACK once a tap returned an error */
} interv;

static inline int blk_index(const interv *iv, int kind, int layer)
{
    return kind * iv->layers + layer;
}

/* The weights, apart from every pass's state (as llama.cpp's model from its
 * contexts): the name table, the parameter slab and the pe buffers, their
 * typed pointers, the packed copy and the host's metadata. One per set of
 * parameters; every handle made by at_model_share points to it, sh.owners
 * counts the open handles (writable only when 1), sh.refs the handles not
 * yet destroyed, and the last one frees it. */
typedef struct weights {
    shared_weights sh;            /* what core/ sees: table, slab, packed copy, counts */
    tensor_info *table;           /* sh.table, writable while the table is made */
    float *buffer_mem;            /* the pe tables: saved, never trained */
    size_t nbuffers;
    params p;                     /* typed pointers into sh.param_mem and buffer_mem */
} weights;

/* A handle is a context on weights: the hyperparameters it runs with, and
 * everything a pass makes — the activation arena, the caches of decoding, the
 * training state (gradients, Adam moments, backward buffers), the
 * interventions, the error message. */
struct at_model {
    at_config cfg;                /* every hyperparameter; dm is its typed copy */
    dims dm;
    weights *w;                   /* shared with the handles of at_model_share */

    /* activation arena: the current block; a view hold (at_view_hold) keeps
     * a block alive past a larger batch, and the handle past at_model_free */
    struct arena_block *blk;
    float *arena;                 /* blk->data */
    size_t arena_cap;             /* floats */
    size_t arena_used;            /* floats the last pass laid out */
    _Atomic int refs;             /* 1 while open, plus one per hold */
    /* one thread at a time (guard.c): the thread inside a call, and how deep */
    _Atomic uintptr_t owner;
    int depth;
    enc_a *enc_acts;
    dec_a *dec_acts;
    acts a;
    int B, S, T;                  /* shape of the last forward */
    int Tl;                       /* the T the arena is laid out for (≥ T after a
                                     decode that stopped early) */
    bool have_enc, have_dec;
    drop dr;                      /* the dropout the last forward applied */
    int scratch_parts;            /* attention scratch matrices in the arena */
    train_state tr;
    uint64_t generation;
    interv *iv;                   /* NULL until the host sets an intervention */

    char err[AT_ERR_MAX];
};

/* An arena block, counted: the handle's reference and one per hold. */
typedef struct arena_block {
    _Atomic int refs;
    float *data;
} arena_block;
void arena_release(arena_block *b);

/* Entering and leaving a public call on a handle (config.c): another thread
 * inside a call on the same handle makes enter fail with AT_E_STATE, its
 * message kept for the caller's thread (see at_errmsg). Calls nest: a public
 * function may call another on the same handle. */
at_status guard_enter(at_model *m, const char *who);
void guard_leave(at_model *m);
#define GUARDED(m, who, call)                                                                 \
    do {                                                                                      \
        if (!(m))                                                                             \
            return set_error(NULL, AT_E_ARG, "%s: model is NULL", who);                       \
        at_status guard_s_ = guard_enter(m, who);                                             \
        if (guard_s_ == AT_OK) {                                                              \
            guard_s_ = (call);                                                                \
            guard_leave(m);                                                                   \
        }                                                                                     \
        return guard_s_;                                                                      \
    } while (0)

/* Whether m may change its weights (train, write a tensor): only when no
 * other handle shares them. */
at_status weights_writable(at_model *m, const char *who);

/* The host's metadata (meta.c). meta_take copies a loaded file's keys but
 * libat's own; meta_pairs fills kv with 2 * sh->meta_count strings and
 * returns the count; meta_free releases them. */
struct st_file;
bool meta_reserved(const char *key);
at_status meta_take(shared_weights *sh, const struct st_file *f, char *err, size_t errlen);
int meta_pairs(const shared_weights *sh, const char **kv);
void meta_free(shared_weights *sh);

/* errors */
at_status set_error(at_model *m, at_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* configuration */
void config_defaults(at_config *c);
at_status dims_from_config(const at_config *c, dims *out, char *err, size_t errlen);

/* model memory: plan (the table), then slabs; model_alloc does both */
at_status model_plan(const at_config *cfg, at_model **out, char *err, size_t errlen);
at_status model_slabs(at_model *m, char *err, size_t errlen);
at_status model_alloc(const at_config *cfg, at_model **out, char *err, size_t errlen);
at_status model_init_weights(at_model *m);
void pe_fill(float *pe, int max_len, int d);

/* random numbers: splitmix64, the same on every machine */
typedef struct rng { uint64_t s; } rng;
uint64_t rng_next(rng *r);
float rng_uniform(rng *r);        /* [0, 1) with 24 random bits */


attn_call attn_call_for(const at_model *m, int stack, int layer, bool cross);
void tensor_view(const at_model *m, const tensor_info *t, const float *data, at_view *out);
at_status check_sizes(at_model *m, int batch, int src_len, int tgt_len, const char *who);
at_status check_ids(at_model *m, const char *what, const int32_t *ids, int B, int L, int vocab,
                    const char *who);
at_status check_forward_args(at_model *m, const int32_t *src, const int32_t *tgt, int batch,
                             int src_len, int tgt_len, const char *who);
at_status forward_pass(at_model *m, const int32_t *src, const int32_t *tgt, int B, int S,
                       int T, int32_t pad, const drop *dr, const char *who);
void invalidate(at_model *m);
at_status encode_pass(at_model *m, const int32_t *src, int B, int S, int T, int32_t pad,
                      const drop *dr, const char *who);
at_status encode_rows(at_model *m, const int32_t *src, int B, int Bd, int S, int T,
                      size_t extra, int32_t pad, const drop *dr,
                      const char *who);

/* interventions (interv.c) */
void interv_free(interv *iv);
/* The handle's interventions, made on first use (NULL: out of memory, the
 * message set). */
interv *iv_get(at_model *m, const char *who);
bool iv_tapped(const at_model *m, at_site site, int kind, int layer);
const float *iv_gates(const at_model *m, int kind, int layer);
bool iv_backward(const at_model *m);
const override_blk *iv_override(const at_model *m, int kind, int layer);
bool iv_whole(const at_model *m, int kind, int layer);
void iv_layout(at_model *m, int kind, int layer, attn_a *a);
void iv_begin(at_model *m, at_pass pass, bool backward);
at_status pass_end(at_model *m, at_status s, const char *who);
at_status iv_end(at_model *m, const char *who);
void fire(at_model *m, at_site site, int kind, int layer, float *data, int ndim,
          const int64_t shape[4], const int64_t stride[4], int pos0, int pos1);
void fire_heads(at_model *m, at_site site, int kind, int layer, float *x, int B, int L,
                int ld, int64_t bstride, int pos0, int pos1);
void fire_rows(at_model *m, at_site site, int kind, int layer, float *x, int B, int L, int w,
               int64_t bstride, int pos0, int pos1);
void gate_heads(float *ctx, float *hout, const float *gate, int B, int L, int d, int h,
                int64_t bstride);
const float *override_row(const override_blk *ov, int b, int j, int i);
at_status iv_check_pass(at_model *m, int B, int S, int T, bool backward, const char *who);

/* the same walk over the layers for gradients: a params struct whose
 * pointers point into another slab with param_mem's layout */
params params_rebase(const at_model *m, float *slab);
void train_free(train_state *t);
at_status train_alloc(at_model *m, const char *who);

#endif