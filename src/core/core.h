/* The numerics' private declarations (src/core/): the kernels and their
 * arguments, dropout masks, the thread pool and the GEMM wrappers. Nothing
 * here knows the model handle: struct at_model is in model/internal.h,
 * which includes this (docs/internals.md, "Layers"). */
#ifndef AT_CORE_H
#define AT_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/weights.h"

#define AT_LN_EPS 1e-6f           /* the reference's LayerNorm eps (added to std) */
#define AT_MASK_FILL (-1e9f)      /* the reference's masked_fill value */

/* nn.Linear: y = x·Wᵀ + b, W stored (out, in). */
typedef struct linear {
    float *w, *b;
    shared_weights *sh;           /* where a packed copy of w may be */
} linear;
typedef struct norm { float *a, *b; } norm;             /* a_2, b_2 */

/* Activations of one attention sublayer (rows Lq of queries, Lk of keys). */
typedef struct attn_a {
    float *q, *k, *v;             /* (B, L, ·) rows; head j owns columns [j·dk, (j+1)·dk) */
    int ldq, ldkv;                /* row strides: q, k, v live inside fused GEMM outputs */
    float *p;                     /* (B, nkept, Lq, Lk) probabilities: what views show */
    float *ctx;                   /* (B, Lq, d) heads concatenated (gated) */
    float *hout;                  /* (B, Lq, d) the heads before their gates, for ∂L/∂ξ;
                                     NULL when every gate of the block is 1 (hout = ctx) */
    const int *slot;              /* head j's plane in p, −1 for a dropped head (the
                                     capture policy); NULL: every head kept, slot j = j */
    int nkept;                    /* planes in p */
} attn_a;

typedef struct norm_a { float *y, *mean, *rstd; } norm_a;   /* rstd = 1/(std+eps) */

/* Dropout masks (SEMANTICS §8) are not stored: keep(i) is a hash of
 * (site key, i), so backward recomputes them. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Dropout draws 16 random bits per element, four elements per hash:
 * element i survives when its bits are at least drop_threshold(p), i.e.
 * with probability 1 − p to within 2^−17. */
static inline uint32_t drop_threshold(float p)
{
    return (uint32_t)(p * 65536.0f + 0.5f);
}

static inline uint64_t drop_bits(uint64_t key, size_t group)
{
    return mix64(key + 0x9E3779B97F4A7C15ull * (group + 1));
}

static inline bool drop_keep(uint64_t bits, size_t i, uint32_t threshold)
{
    return ((uint32_t)(bits >> (16 * (i & 3))) & 0xFFFFu) >= threshold;
}

/* keep[t] = all ones when element first + t of its site survives, else 0,
 * for t in [t0, t1): a mask to AND with, so that the loops applying it have
 * no branch (a branch on a random bit is mispredicted half the time, and
 * keeps the loop from being vectorized). */
#define DROP_CHUNK 256
static inline void drop_masks_scalar(uint32_t *keep, uint64_t key, size_t first, size_t t0,
                                     size_t t1, uint32_t threshold)
{
    uint64_t bits = drop_bits(key, (first + t0) / 4);
    for (size_t t = t0; t < t1; t++) {
        size_t at = first + t;
        if (t > t0 && (at & 3) == 0)
            bits = drop_bits(key, at / 4);
        keep[t] = -(uint32_t)drop_keep(bits, at, threshold);
    }
}

#if defined(__SSE2__)
/* The same hash, two groups (eight elements) at a time in SSE2's 64-bit
 * lanes: drawing the bits one element at a time took most of dropout's
 * time. a·b mod 2^64 from 32-bit products: lo·lo + (hi·lo + lo·hi)·2^32. */
static inline __m128i mul64_lanes(__m128i a, uint64_t b)
{
    const __m128i blo = _mm_set1_epi64x((long long)(b & 0xFFFFFFFFu));
    const __m128i bhi = _mm_set1_epi64x((long long)(b >> 32));
    __m128i lo = _mm_mul_epu32(a, blo);
    __m128i cross = _mm_add_epi64(_mm_mul_epu32(_mm_srli_epi64(a, 32), blo),
                                  _mm_mul_epu32(a, bhi));
    return _mm_add_epi64(lo, _mm_slli_epi64(cross, 32));
}

static inline __m128i mix64_lanes(__m128i z)
{
    z = mul64_lanes(_mm_xor_si128(z, _mm_srli_epi64(z, 30)), 0xBF58476D1CE4E5B9ull);
    z = mul64_lanes(_mm_xor_si128(z, _mm_srli_epi64(z, 27)), 0x94D049BB133111EBull);
    return _mm_xor_si128(z, _mm_srli_epi64(z, 31));
}
#endif

/* keep[0 .. n) for elements first .. first + n − 1 (drop_masks_scalar). An
 * element's 16 bits are lane (i mod 4) of its group's hash, so the eight
 * 16-bit lanes of two groups' hashes are eight elements in order. */
static inline void drop_masks(uint32_t *keep, uint64_t key, size_t first, size_t n,
                              uint32_t threshold)
{
    size_t t = 0;
#if defined(__SSE2__)
    if (threshold <= 0xFFFFu) {
        size_t head = (4 - (first & 3)) & 3;
        head = head < n ? head : n;
        drop_masks_scalar(keep, key, first, 0, head, threshold);
        t = head;
        const uint64_t step = 0x9E3779B97F4A7C15ull;
        const __m128i flip = _mm_set1_epi16((short)0x8000);
        const __m128i thr = _mm_xor_si128(_mm_set1_epi16((short)threshold), flip);
        for (; t + 8 <= n; t += 8) {
            uint64_t g = (first + t) / 4, z0 = key + step * (g + 1);
            __m128i bits = mix64_lanes(_mm_set_epi64x((long long)(z0 + step), (long long)z0));
            /* dropped where threshold > bits, as unsigned 16-bit numbers */
            __m128i drop = _mm_cmpgt_epi16(thr, _mm_xor_si128(bits, flip));
            __m128i kept = _mm_xor_si128(drop, _mm_set1_epi32(-1));
            _mm_storeu_si128((__m128i *)(keep + t), _mm_unpacklo_epi16(kept, kept));
            _mm_storeu_si128((__m128i *)(keep + t + 4), _mm_unpackhi_epi16(kept, kept));
        }
    }
#endif
    drop_masks_scalar(keep, key, first, t, n, threshold);
}

static inline float masked(float v, uint32_t mask)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    b &= mask;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* y[i] = keep(origin + i) ? x[i]·scale : 0 for i in [i0, i1) (y may be x).
 * origin is the index of y[0] within its site: a site split into pieces
 * (attention planes, the rows a data-parallel participant holds of a global
 * batch) draws the mask the whole site would. */
static inline void dropout_range(float *y, const float *x, size_t i0, size_t i1, uint64_t key,
                                 float p, size_t origin)
{
    const uint32_t thr = drop_threshold(p);
    const float scale = 1.0f / (1.0f - p);
    uint32_t keep[DROP_CHUNK];
    for (size_t i = i0; i < i1; i += DROP_CHUNK) {
        size_t n = i1 - i < DROP_CHUNK ? i1 - i : DROP_CHUNK;
        drop_masks(keep, key, origin + i, n, thr);
        for (size_t t = 0; t < n; t++)
            y[i + t] = masked(x[i + t] * scale, keep[t]);
    }
}

/* the thread pool (pool.c): fn(ctx, begin, end, part) over [0, n) */
typedef void (*pool_fn)(void *ctx, size_t begin, size_t end, int part);
void pool_for(size_t n, size_t grain, int max_parts, pool_fn fn, void *ctx);
int pool_threads(void);
int pool_cores(void);
/* 1 when OpenBLAS runs kernels below the CPU (a message in buf), else 0 (cpu.c). */
int cpu_blas_report(char *buf, size_t size);
void pool_set_threads(int n);
#define POOL_ANY 64

/* the large slabs (mem.c): 2 MiB-aligned and on huge pages from 2 MiB up;
 * free() releases them */
void *slab_alloc(size_t bytes);
void *slab_calloc(size_t n, size_t size);

/* forward kernels (embed.c, norm.c, linear.c, elementwise.c, softmax.c,
 * attention.c): outputs first, then inputs, then sizes */
void embed_forward(float *out, const int32_t *ids, const float *lut, const float *pe,
                   int B, int L, int d);
void norm_forward(norm_a o, const float *x, norm p, int rows, int d);
void linear_forward(float *y, const float *x, linear p, int rows, int in, int out);
void linear_residual_forward(float *y, const float *x, linear p, const float *resid, int rows,
                             int in, int out);

/* What follows a GEMM y = x·Wᵀ in one pass over y:
 * y = resid + dropout(act(y + b)), each step optional. */
typedef struct epilogue {
    bool relu;
    uint64_t key;
    float p;                      /* dropout rate; 0: none */
    size_t origin;                /* the index of y[0] within its dropout site */
    const float *resid;           /* NULL: no residual */
} epilogue;

void linear_fused(float *y, const float *x, linear w, int rows, int in, int out,
                  const epilogue *e);
void dropout_copy(float *dst, const float *src, size_t n, uint64_t key, float p, size_t origin);

/* libat's matrix products on its own kernels (gemm.c, kern.c), one thread:
 * C (M, N) = op(A)·op(B) (+ C when add). gemm_serial_packed multiplies by
 * Wᵀ for W (N, K), reading W's packed panels (packed.c) where it has them;
 * the numbers are the same either way. */
void gemm_serial(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
                 int ldb, bool add, float *C, int ldc);
void gemm_serial_packed(int M, int N, int K, const float *A, int lda, const float *W,
                        const float *panels, bool add, float *C, int ldc);
/* The kernel chosen ("avx512", "avx2", "generic", or "openblas" when
 * LIBAT_GEMM=openblas hands the products to the BLAS); gemm_own: not the
 * BLAS. */
const char *gemm_kernel_name(void);
/* Rows [0, nb ≤ 32) of w, kc steps each, packed as one panel of the kernels
 * (dst[k·32 + c] = w[c·ldw + k], zeros past nb): packed.c's layout. */
void gemm_pack_rows(float *dst, const float *w, size_t ldw, int nb, int kc);
bool gemm_own(void);
double gemm_kernel_rate(double seconds);
double gemm_peak(double seconds);
/* A thread's packing buffer: gemm_adopt gives one (a pool worker's, on its
 * stack), gemm_prepare allocates the calling thread's (false when memory is
 * short: the products then pack piece by piece, slower, same numbers). */
#define GEMM_BUF_FLOATS (256 * 512 + 192 * 256)
void gemm_adopt(float *buf);
bool gemm_prepare(void);
/* W's packed panels (made on first use), or NULL; packed_prepare makes them
 * and the calling thread's packing buffer before a pass. */
const float *packed_panels(linear w);
void packed_prepare(shared_weights *sh);
void packed_drop(shared_weights *sh);
/* The parameters changed and will again (a training step): the copy is no
 * longer used, and its memory is kept for the next. */
void packed_stale(shared_weights *sh);
void packed_enable(shared_weights *sh, bool on);
/* Rows up to which a linear layer's product is cut by columns (with its
 * epilogue in the calling thread), beyond which by rows. */
#define SMALL_ROWS 64
/* One attention call: sizes, the mask and its strides, the dropout. */
typedef struct attn_call {
    int B, h, Lq, Lk, d;
    const float *mask;
    int mask_bstride, mask_qstride;
    uint64_t drop_key;
    size_t drop_origin;           /* the index of batch 0's first element within the site */
    float drop_p;                 /* 0: no dropout */
    float *scratch;               /* scratch_parts (Lq, Lk) matrices: dropout, backward,
                                     dropped heads */
    int scratch_parts;
    const bool *frozen;           /* per head, or NULL: probabilities the host gave (an
                                     override), constants to the backward pass */
    float *dp;                    /* backward: ∂L/∂P (B, h, Lq, Lk) is kept here, or NULL */
} attn_call;

/* The (Lq, Lk) plane of batch b, head j in a.p, or NULL for a dropped head. */
static inline float *attn_plane(attn_a a, const attn_call *c, int b, int j)
{
    int s = a.slot ? a.slot[j] : j;
    return s < 0 ? NULL : a.p + ((size_t)b * a.nkept + s) * (size_t)c->Lq * c->Lk;
}

/* The whole of attention_forward, or its three steps with the host between
 * them (model/interv.c): scores into p, softmax of p, ctx = dropout(p)·v. */
void attention_forward(attn_a a, const attn_call *c);
void attention_scores(attn_a a, const attn_call *c);
void attention_softmax(attn_a a, const attn_call *c);
void attention_values(attn_a a, const attn_call *c);
void dropout_forward(float *x, size_t n, uint64_t key, float p, size_t origin);
void dropout_forward_at(float *x, size_t n, uint64_t key, float p, size_t first);
void add_inplace(float *y, const float *x, size_t n);
void linear_forward_ld(float *y, int ldy, const float *x, int ldx, linear p, int rows, int in,
                       int out);
void softmax_row(float *x, int n);
void mm_nt(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K);
void mm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K);
void mm_tn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N,
           int K);
/* mm_nt and mm_nn of one row against rows gathered by slot: row i at
 * base + slot[i]·slot_stride + i·ld (attention.c) */
void mm_nt_rows(float *c, const float *a, const float *base, size_t slot_stride, int ld,
                const int32_t *slot, int n, int K);
void mm_nn_rows(float *c, const float *p, const float *base, size_t slot_stride, int ld,
                const int32_t *slot, int n, int N);
void relu_inplace(float *x, size_t n);
void log_softmax_rows(float *x, int rows, int n);

/* backward kernels, each in its forward's file */
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int rows, int in, int out, bool accumulate,
                     float *scratch);
#define NORM_CHUNKS 16
void norm_backward(float *dx, norm dp, const float *dy, const float *x, norm_a o, norm p,
                   int rows, int d, float *partial);
void dropout_backward(float *dx, size_t n, uint64_t key, float p, size_t origin);
void relu_dropout_backward(float *dh, const float *h, size_t n, float p);
void embed_backward(float *dlut, const float *dout, const int32_t *ids, int rows, int d);
void attention_backward(attn_a g, const float *dctx, attn_a a, const attn_call *c, float *s1,
                        float *s2);

/* ---- speed (linear.c, pool.c, softmax.c): products over the pool ----
 * Between blas_enter and blas_leave OpenBLAS runs single-threaded, and libat
 * cuts large products into blocks of rows or columns, one per pool thread. */
void pool_chunks(size_t n, int max_parts, pool_fn fn, void *ctx);
void blas_enter(void);
void blas_leave(void);
void blas_set_threads(int n);
void gemm(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
          int ldb, float beta, float *C, int ldc);
void gemm_rows(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc, pool_fn before, pool_fn after,
               void *ctx);
/* The scratch a weight's gradient dW (M, N) (+ db (M)) summed over slices
 * of rows needs (gemm_sum_tn); the backward pass keeps it with its buffers,
 * so a step allocates nothing. */
size_t sum_scratch_floats(size_t M, size_t N);
bool gemm_sum_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                 float *C, int ldc, float *colsum, float *scratch);
void linear_backward_then(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int rows, int in, int out, bool accumulate,
                          float *scratch, pool_fn after, void *ctx);
void ff_out_backward(float *dh, float *dw, float *db, const float *dy, const float *h,
                     const float *w, int rows, int d_ff, int d, float p, float *scratch);
double exp_shift_sum(float *y, const float *x, float shift, int n);
double loss_grad(float *dz, float *db, const float *logp, const int32_t *labels, int rows,
                 int V, int32_t pad, double smoothing, int64_t ntokens, double *row_loss,
                 float *part);
/* ---- end of speed ---- */

#endif
