/* Products with few rows (inference on short batches): y = x·Wᵀ with W
 * pre-packed.
 *
 * With 32 rows or so, OpenBLAS spends about as long packing the weight matrix
 * on every call as multiplying with it. Here every weight matrix is packed
 * once, into panels of 32 output columns stored k-major, and an AVX-512
 * kernel streams each panel once per 8 input rows. The packed copy lives
 * beside the parameters (same offsets: a matrix of N rows holds its N/32 full
 * panels where the matrix is, and its last N mod 32 rows are read from W
 * itself), is made on first use and dropped when the parameters change.
 * Machines without AVX-512, and models whose d_model or d_ff is not a
 * multiple of 32, use OpenBLAS throughout. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_KERNEL 1
#else
#define HAVE_KERNEL 0
#endif

#define PANEL 32
#define MBLOCK 8
/* Least multiply-adds per part (whole panels of 32 output columns): 2^20,
 * so that a product of a few rows is not cut into parts smaller than what
 * handing a part to a pool thread costs. */
#define PANEL_GRAIN_MACS ((size_t)1 << 20)

static bool cpu_has_avx512(void)
{
#if HAVE_KERNEL
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return cached == 1;
#else
    return false;
#endif
}

/* Panels of 32 rows of W (N, K), each stored as K rows of 32: wp[p][k][c] =
 * W[32p + c][k]. The tail rows are not packed. */
static void pack_matrix(float *wp, const float *w, int64_t N, int64_t K)
{
    for (int64_t p = 0; p < N / PANEL; p++)
        for (int64_t c = 0; c < PANEL; c++) {
            const float *row = w + (p * PANEL + c) * K;
            float *dst = wp + p * PANEL * K + c;
            for (int64_t k = 0; k < K; k++)
                dst[k * PANEL] = row[k];
        }
}

/* Packs every matrix that serves as a linear layer's weight (all 2-D
 * parameters but the embedding tables). */
static float *pack_all(const shared_weights *sh)
{
    float *wp = malloc(sh->nparams * sizeof(float));
    if (!wp)
        return NULL;
    for (int i = 0; i < sh->ntensors; i++) {
        const tensor_info *t = &sh->table[i];
        if (t->is_buffer || t->ndim != 2 || strstr(t->name, ".lut."))
            continue;
        pack_matrix(wp + t->offset, sh->param_mem + t->offset, t->shape[0], t->shape[1]);
    }
    return wp;
}

/* The packed weights, made on first use by whichever handle gets here first. */
static const float *packed(shared_weights *sh)
{
    const float *wp = atomic_load_explicit(&sh->packed, memory_order_acquire);
    if (wp || !sh->packable)
        return wp;
    pthread_mutex_lock(&sh->lock);
    wp = atomic_load_explicit(&sh->packed, memory_order_relaxed);
    if (!wp) {
        float *made = pack_all(sh);
        atomic_store_explicit(&sh->packed, made, memory_order_release);
        wp = made;
    }
    pthread_mutex_unlock(&sh->lock);
    return wp;
}

void packed_drop(shared_weights *sh)
{
    free(atomic_exchange(&sh->packed, NULL));
}

void packed_enable(shared_weights *sh, bool on)
{
    packed_drop(sh);
    sh->packable = on && sh->shapes_packable;
}

#if HAVE_KERNEL
/* y[r][0..32) (+)= Σ_k xt[k][r] · wp[k][0..32) for r < mb; xt holds 8 rows
 * k-major. 16 accumulators; one FMA per broadcast row and half panel. */
__attribute__((target("avx512f"))) static void kernel(float *y, int ldy, const float *xt,
                                                      int mb, const float *wp, int K,
                                                      bool add, int ncols)
{
    __m512 a0[MBLOCK], a1[MBLOCK];
    for (int r = 0; r < MBLOCK; r++)
        a0[r] = a1[r] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m512 w0 = _mm512_loadu_ps(wp + (size_t)k * PANEL);
        __m512 w1 = _mm512_loadu_ps(wp + (size_t)k * PANEL + 16);
        const float *x = xt + (size_t)k * MBLOCK;
        for (int r = 0; r < MBLOCK; r++) {
            __m512 xb = _mm512_set1_ps(x[r]);
            a0[r] = _mm512_fmadd_ps(xb, w0, a0[r]);
            a1[r] = _mm512_fmadd_ps(xb, w1, a1[r]);
        }
    }
    (void)ncols;
    for (int r = 0; r < mb; r++) {
        float *yr = y + (size_t)r * ldy;
        if (add) {
            a0[r] = _mm512_add_ps(a0[r], _mm512_loadu_ps(yr));
            a1[r] = _mm512_add_ps(a1[r], _mm512_loadu_ps(yr + 16));
        }
        _mm512_storeu_ps(yr, a0[r]);
        _mm512_storeu_ps(yr + 16, a1[r]);
    }
}
#endif

typedef struct small_job {
    float *y;
    int ldy;
    const float *xt, *wp;
    int rows, K;
    bool add;
} small_job;

static void panels(void *ctx, size_t p0, size_t p1, int part)
{
    (void)part;
#if HAVE_KERNEL
    const small_job *j = ctx;
    for (size_t p = p0; p < p1; p++)
        for (int m0 = 0; m0 < j->rows; m0 += MBLOCK) {
            int mb = j->rows - m0 < MBLOCK ? j->rows - m0 : MBLOCK;
            kernel(j->y + (size_t)m0 * j->ldy + p * PANEL, j->ldy,
                   j->xt + (size_t)(m0 / MBLOCK) * j->K * MBLOCK, mb,
                   j->wp + p * PANEL * (size_t)j->K, j->K, j->add, PANEL);
        }
#else
    (void)ctx, (void)p0, (void)p1;
#endif
}

/* Each calling thread's scratch for the transposed rows, freed when the
 * thread ends; it only grows, so repeated calls allocate nothing. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

typedef struct scratch { size_t cap; float data[]; } scratch;

static void scratch_init(void)
{
    if (pthread_key_create(&scratch_key, free) != 0)
        abort();   /* only when the process is out of keys */
}

static float *thread_scratch(size_t n)
{
    pthread_once(&scratch_once, scratch_init);
    scratch *s = pthread_getspecific(scratch_key);
    if (s && s->cap >= n)
        return s->data;
    free(s);
    s = malloc(sizeof *s + n * sizeof(float));
    if (s)
        s->cap = n;
    pthread_setspecific(scratch_key, s);
    return s ? s->data : NULL;
}

bool small_prepare(shared_weights *sh, int max_in)
{
    if (!sh || !sh->packable || !cpu_has_avx512())
        return true;
    size_t blocks = (SMALL_ROWS + MBLOCK - 1) / MBLOCK;
    return packed(sh) && thread_scratch(blocks * MBLOCK * (size_t)max_in);
}

bool small_gemm(float *y, int ldy, const float *x, int ldx, linear w, int rows, int in,
                int out, bool add)
{
    if (rows > SMALL_ROWS || !w.sh || !cpu_has_avx512())
        return false;
    const float *wp = packed(w.sh);
    int blocks = (rows + MBLOCK - 1) / MBLOCK;
    float *xt = wp ? thread_scratch((size_t)blocks * MBLOCK * in) : NULL;
    if (!xt)
        return false;
    wp += w.w - w.sh->param_mem;
    /* x transposed in blocks of 8 rows, k-major, so that a block's 8 values
     * of one k sit together; rows past the end are zero */
    for (int b = 0; b < blocks; b++)
        for (int k = 0; k < in; k++)
            for (int r = 0; r < MBLOCK; r++) {
                int row = b * MBLOCK + r;
                xt[((size_t)b * in + k) * MBLOCK + r] =
                    row < rows ? x[(size_t)row * ldx + k] : 0.0f;
            }
    small_job j = {y, ldy, xt, wp, rows, in, add};
    size_t full = (size_t)out / PANEL;
    size_t work = (size_t)rows * in * PANEL;   /* multiply-adds per panel */
    pool_for(full, PANEL_GRAIN_MACS / work + 1, POOL_ANY, panels, &j);
    /* the last out mod 32 columns, from W itself */
    for (size_t o = full * PANEL; o < (size_t)out; o++)
        for (int r = 0; r < rows; r++) {
            const float *wr = w.w + o * (size_t)in, *xr = x + (size_t)r * ldx;
            float s = 0;
            for (int k = 0; k < in; k++)
                s += wr[k] * xr[k];
            float *yo = y + (size_t)r * ldy + o;
            *yo = add ? *yo + s : s;
        }
    return true;
}
