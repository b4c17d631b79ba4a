/* Private declarations shared by the library's source files. */
#ifndef AT_INTERNAL_H
#define AT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at.h"

#define AT_PARAM_COUNT 11         /* one more than the largest at_param */
#define AT_NAME_MAX 96
#define AT_ERR_MAX 512
#define AT_LN_EPS 1e-6f           /* the reference's LayerNorm eps (added to std) */
#define AT_MASK_FILL (-1e9f)      /* the reference's masked_fill value */

struct at_config {
    double val[AT_PARAM_COUNT];
    uint32_t set;                 /* bit k: key k was set by the caller */
};

/* Hyperparameters as the code uses them. */
typedef struct dims {
    int src_vocab, tgt_vocab, layers, d, heads, d_ff, max_len;
    double dropout, attn_dropout;
    uint64_t seed;
} dims;

/* One entry of the state_dict table. */
typedef struct tensor_info {
    char name[AT_NAME_MAX];
    int ndim;
    int64_t shape[3];
    size_t offset;                /* into params, or into buffers when is_buffer */
    size_t numel;
    bool is_buffer;               /* the pe tables: saved, never trained */
} tensor_info;

/* nn.Linear: y = x·Wᵀ + b, W stored (out, in). */
typedef struct linear { float *w, *b; } linear;
typedef struct norm { float *a, *b; } norm;             /* a_2, b_2 */
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

/* Activations of one attention sublayer (rows Lq of queries, Lk of keys). */
typedef struct attn_a {
    float *q, *k, *v;             /* (B, L, ·) rows; head j owns columns [j·dk, (j+1)·dk) */
    int ldq, ldkv;                /* row strides: q, k, v live inside fused GEMM outputs */
    float *p;                     /* (B, h, Lq, Lk) probabilities: what views show */
    float *ctx;                   /* (B, Lq, d) heads concatenated */
} attn_a;

typedef struct norm_a { float *y, *mean, *rstd; } norm_a;   /* rstd = 1/(std+eps) */

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

typedef struct acts {
    float *src_mask, *tgt_mask;   /* (B, S) and (B, T, T), 1 or 0 */
    float *src_emb, *tgt_emb;
    enc_a *enc;
    dec_a *dec;
    norm_a memory, dec_out;       /* final norms: memory and decoder output */
    float *cross_kv;              /* (B, S, layers·2d): every decoder layer's k and v */
    float *logp;                  /* (B, T, V) */
} acts;

struct at_model {
    dims dm;
    tensor_info *table;
    int ntensors;
    float *param_mem, *buffer_mem;
    size_t nparams, nbuffers;
    params p;

    /* activation arena */
    float *arena;
    size_t arena_cap;             /* floats */
    enc_a *enc_acts;
    dec_a *dec_acts;
    acts a;
    int B, S, T;                  /* shape of the last forward */
    bool have_enc, have_dec;
    uint64_t generation;

    char err[AT_ERR_MAX];
};

/* errors */
at_status at_fail(at_model *m, at_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void at_clear_err(at_model *m);

/* configuration */
void config_defaults(at_config *c);
at_status dims_from_config(const at_config *c, dims *out, char *err, size_t errlen);
void config_from_dims(const dims *dm, at_config *c);

/* model memory */
at_status model_alloc(const dims *dm, at_model **out, char *err, size_t errlen);
at_status model_init_weights(at_model *m);
void pe_fill(float *pe, int max_len, int d);

/* random numbers: splitmix64, the same on every machine */
typedef struct rng { uint64_t s; } rng;
uint64_t rng_next(rng *r);
float rng_uniform(rng *r);        /* [0, 1) with 24 random bits */

/* kernels: outputs first, then inputs, then sizes; no allocation */
void embed_forward(float *out, const int32_t *ids, const float *lut, const float *pe,
                   int B, int L, int d);
void norm_forward(norm_a o, const float *x, norm p, int rows, int d);
void linear_forward(float *y, const float *x, linear p, int rows, int in, int out);
void linear_residual_forward(float *y, const float *x, linear p, const float *resid, int rows,
                             int in, int out);
void attention_forward(attn_a a, const float *mask, int mask_bstride, int mask_qstride,
                       int B, int h,
                       int Lq, int Lk, int d);
void relu_inplace(float *x, size_t n);
void log_softmax_rows(float *x, int rows, int n);

#endif
