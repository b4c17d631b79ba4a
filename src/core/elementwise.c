/* Elementwise kernels over the pool, forward and backward: dropout (its
 * own adjoint), relu, an in-place add. */
#include <stddef.h>

#include "core/core.h"

/* Inverted dropout as torch applies it: x·(1/(1−p)) where kept, 0 where
 * dropped. first is the index of x[0] within its site, so a site can be
 * processed in pieces. */
void dropout_forward_at(float *x, size_t n, uint64_t key, float p, size_t first)
{
    dropout_range(x, x, 0, n, key, p, first);
}

/* Elementwise loops, split over the pool. The grains (least elements per
 * part) keep each thread's share well above what handing a range to a pool
 * thread costs (microseconds): dropout hashes once per four elements, so its
 * parts can be smaller; add and relu are bound by memory bandwidth, which a
 * second thread adds little to, so theirs are larger. */
#define DROPOUT_GRAIN 32768
#define ADD_GRAIN 65536
#define RELU_GRAIN 65536

typedef struct elem_job {
    float *y;
    const float *x;
    uint64_t key;
    float p;
    size_t origin;                /* dropout: the index of x[0] within its site */
} elem_job;

static void dropout_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    elem_job *j = ctx;
    dropout_range(j->y, j->x, i0, i1, j->key, j->p, j->origin);
}

void dropout_forward(float *x, size_t n, uint64_t key, float p, size_t origin)
{
    elem_job j = {.y = x, .x = x, .key = key, .p = p, .origin = origin};
    pool_for(n, DROPOUT_GRAIN, POOL_ANY, dropout_part, &j);
}

/* dst = dropout(src) in one pass (backward's view of a sublayer's output). */
void dropout_copy(float *dst, const float *src, size_t n, uint64_t key, float p,
                  size_t origin)
{
    elem_job j = {.y = dst, .x = src, .key = key, .p = p, .origin = origin};
    pool_for(n, DROPOUT_GRAIN, POOL_ANY, dropout_part, &j);
}

static void add_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    elem_job *j = ctx;
    float *restrict y = j->y;
    const float *restrict x = j->x;
    for (size_t i = i0; i < i1; i++)
        y[i] += x[i];
}

void add_inplace(float *y, const float *x, size_t n)
{
    elem_job j = {.y = y, .x = x};
    pool_for(n, ADD_GRAIN, POOL_ANY, add_part, &j);
}

static void relu_part(void *ctx, size_t i0, size_t i1, int part)
{
    (void)part;
    float *restrict x = ((elem_job *)ctx)->y;
    for (size_t i = i0; i < i1; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_inplace(float *x, size_t n)
{
    elem_job j = {.y = x};
    pool_for(n, RELU_GRAIN, POOL_ANY, relu_part, &j);
}

/* Dropout is its own adjoint: the same mask and scale. */
void dropout_backward(float *dx, size_t n, uint64_t key, float p, size_t origin)
{
    dropout_forward(dx, n, key, p, origin);
}
