/* The weights packed once for libat's matrix products (gemm.c): every
 * matrix that serves as a linear layer's weight W (N, K), in panels of 32
 * output columns stored k-major, the layout the kernels read op(B) = Wᵀ in.
 * Without it every product packs W again, once per thread: at 32 rows that
 * copy costs about as much as the arithmetic. The packed copy lives beside
 * the parameters (same offsets: a matrix of N rows holds its N/32 full
 * panels where the matrix is; its last N mod 32 rows are packed by each
 * product), is made on first use and dropped when the parameters change. A
 * product gives the same numbers with or without it, so a copy that cannot
 * be made (memory is short, AT_P_PACKED is 0) only costs time.
 *
 * Training changes the parameters every step: there the copy is only marked
 * stale (packed_stale) and its memory packed again by the next pass, over
 * the pool. Allocating it anew each step cost the base model 170 MB of fresh
 * pages, 43,000 page faults, per step. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define PANEL 32

/* Panels of 32 rows of W (N, K), each stored as K rows of 32: wp[p][k][c] =
 * W[32p + c][k]. The tail rows are not packed. */
static void pack_matrix(float *wp, const float *w, int64_t N, int64_t K)
{
    for (int64_t p = 0; p < N / PANEL; p++)
        gemm_pack_rows(wp + p * PANEL * K, w + p * PANEL * K, (size_t)K, PANEL, (int)K);
}

/* Whether tensor t is a linear layer's weight: a 2-D parameter, not an
 * embedding table. */
static bool is_weight(const tensor_info *t)
{
    return !t->is_buffer && t->ndim == 2 && !strstr(t->name, ".lut.");
}

typedef struct pack_job {
    const shared_weights *sh;
    float *wp;
} pack_job;

static void pack_tensors(void *ctx, size_t t0, size_t t1, int part)
{
    (void)part;
    const pack_job *j = ctx;
    for (size_t i = t0; i < t1; i++) {
        const tensor_info *t = &j->sh->table[i];
        if (is_weight(t))
            pack_matrix(j->wp + t->offset, j->sh->param_mem + t->offset, t->shape[0],
                        t->shape[1]);
    }
}

/* Packs every linear weight, a tensor per chunk of the pool, into the stale
 * copy's memory if there is one. Called with sh->lock held. */
static float *pack_all(shared_weights *sh)
{
    /* malloc, not slab_alloc: glibc's large blocks start 16 bytes past a
     * line, so each step's 128 bytes of a panel span three lines and the
     * avx2 kernel's first pass over one half of a panel fetches every line
     * of it. Aligned (2 MiB, huge pages), each half fetched only its own
     * lines, and a forward pass at batch 1, which streams the panels from
     * memory, took 15-30 % longer (medians of 7-10 alternating runs: 37-39
     * against 45-51 ms). Prefetching the other half from the kernel got it
     * back but cost the products whose panels sit in L2. */
    float *wp = sh->spare ? sh->spare : malloc(sh->nparams * sizeof(float));
    sh->spare = NULL;
    if (!wp)
        return NULL;
    pack_job j = {sh, wp};
    pool_chunks((size_t)sh->ntensors, POOL_ANY, pack_tensors, &j);
    return wp;
}

/* The packed weights, made on first use by whichever handle gets here first. */
static const float *packed(shared_weights *sh)
{
    const float *wp = atomic_load_explicit(&sh->packed, memory_order_acquire);
    if (wp || !sh->packable || !gemm_own())
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
    pthread_mutex_lock(&sh->lock);
    free(atomic_exchange(&sh->packed, NULL));
    free(sh->spare);
    sh->spare = NULL;
    pthread_mutex_unlock(&sh->lock);
}

void packed_stale(shared_weights *sh)
{
    pthread_mutex_lock(&sh->lock);
    float *old = atomic_exchange(&sh->packed, NULL);
    if (old) {
        free(sh->spare);
        sh->spare = old;
    }
    pthread_mutex_unlock(&sh->lock);
}

void packed_enable(shared_weights *sh, bool on)
{
    packed_drop(sh);
    sh->packable = on && sh->shapes_packable;
}

/* W's packed panels, or NULL when there are none. */
const float *packed_panels(linear w)
{
    if (!w.sh)
        return NULL;
    const float *wp = packed(w.sh);
    return wp ? wp + (w.w - w.sh->param_mem) : NULL;
}

void packed_prepare(shared_weights *sh)
{
    if (sh)
        packed(sh);
    gemm_prepare();
}
