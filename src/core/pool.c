/* A small thread pool for the loops OpenBLAS does not run: norms, dropout,
 * attention heads, the optimizer update.
 *
 * One pool serves the process (OpenBLAS's thread count is process-wide too).
 * Between loops a worker spins for a few microseconds, so that loops in quick
 * succession (one per layer of a short batch) start without a wake-up, and
 * then sleeps on a condition variable, so that it does not compete with
 * OpenBLAS's threads for the cores while a long GEMM runs. Work is split into one contiguous range per thread, so every element
 * is computed by one thread in one order: results do not depend on the
 * thread count. A loop started while another host thread is using the pool
 * simply runs in the calling thread. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/core.h"

#define POOL_MAX 64

static struct pool {
    pthread_mutex_t run;          /* held by the host thread that owns a loop */
    pthread_mutex_t lock;         /* guards the fields below */
    pthread_cond_t wake, done;
    int started, wanted;          /* workers running; threads asked for (0: cores) */
    _Atomic uint64_t round;       /* grows by one per loop; published with the job */
    _Atomic int pending;          /* workers still in the current loop */
    pool_fn fn;
    void *ctx;
    size_t n;
    int parts;
    pthread_t tid[POOL_MAX];
    uint64_t born[POOL_MAX];      /* the round a worker was started in */
} pool = {.run = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};
/* pool.fn, ctx, n and parts are written by the owner of pool.run before it
 * publishes a round, and read by workers after they see it. */

static void run_part(pool_fn fn, void *ctx, size_t n, int parts, int i)
{
    size_t begin = n * (size_t)i / (size_t)parts, end = n * (size_t)(i + 1) / (size_t)parts;
    if (begin < end)
        fn(ctx, begin, end, i);
}

/* Spins while *x equals old, for about SPIN_NS; returns whether it changed. */
#define SPIN_NS 50000

static uint64_t nanos(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static bool spin_u64(_Atomic uint64_t *x, uint64_t old)
{
    uint64_t until = nanos() + SPIN_NS;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(x, memory_order_acquire) != old)
            return true;
        if ((i & 63) == 63 && nanos() > until)
            return false;
    }
}

static bool spin_zero(_Atomic int *x)
{
    uint64_t until = nanos() + SPIN_NS;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(x, memory_order_acquire) == 0)
            return true;
        if ((i & 63) == 63 && nanos() > until)
            return false;
    }
}

/* A worker's packing buffer for the matrix products (gemm.c) is on its own
 * stack, which pool.c sizes for it: made with the thread, never a failed
 * allocation, gone with it. */
#define WORKER_STACK (GEMM_BUF_FLOATS * sizeof(float) + ((size_t)1 << 20))

static void *worker(void *arg)
{
    _Alignas(64) float pack[GEMM_BUF_FLOATS];
    gemm_adopt(pack);
    int me = (int)(intptr_t)arg;   /* part me + 1; the caller takes part 0 */
    uint64_t seen = pool.born[me];
    for (;;) {
        if (!spin_u64(&pool.round, seen)) {
            pthread_mutex_lock(&pool.lock);
            while (atomic_load(&pool.round) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = atomic_load_explicit(&pool.round, memory_order_acquire);
        pool_fn fn = pool.fn;
        void *ctx = pool.ctx;
        size_t n = pool.n;
        int parts = pool.parts;
        if (me + 1 < parts)
            run_part(fn, ctx, n, parts, me + 1);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* The cores this process may run on: its affinity mask (taskset, a
 * container's cpuset, an MPI launcher's binding), not every core online, so
 * that a process given one core does not run two threads on it. */
int pool_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

int pool_threads(void)
{
    int n = pool.wanted > 0 ? pool.wanted : pool_cores();
    return n > POOL_MAX ? POOL_MAX : n;
}

void pool_set_threads(int n)
{
    pthread_mutex_lock(&pool.lock);
    pool.wanted = n;
    pthread_mutex_unlock(&pool.lock);
}

/* Starts workers up to the wanted count (they are never stopped: a thread
 * that is not needed sleeps). Returns how many parts a loop may use. */
static int ensure_workers(void)
{
    int want = pool_threads();
    pthread_mutex_lock(&pool.lock);
    while (pool.started < want - 1) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, WORKER_STACK);
        pool.born[pool.started] = atomic_load(&pool.round);
        int err = pthread_create(&pool.tid[pool.started], &attr, worker,
                                 (void *)(intptr_t)pool.started);
        pthread_attr_destroy(&attr);
        if (err)
            break;   /* fewer threads; the loops still run */
        pool.started++;
    }
    int parts = pool.started + 1 < want ? pool.started + 1 : want;
    pthread_mutex_unlock(&pool.lock);
    return parts;
}

/* Runs fn over [0, n) in at most max_parts contiguous parts of at least
 * grain items each; part i of a loop is always the same range for the same
 * number of parts. */
void pool_for(size_t n, size_t grain, int max_parts, pool_fn fn, void *ctx)
{
    if (n == 0)
        return;
    size_t most = grain ? n / grain : n;
    if (most > (size_t)max_parts)
        most = (size_t)max_parts;
    if (most < 2 || pool_threads() < 2 || pthread_mutex_trylock(&pool.run) != 0) {
        fn(ctx, 0, n, 0);
        return;
    }
    int parts = ensure_workers();
    if ((size_t)parts > most)
        parts = (int)most;
    if (parts < 2) {
        pthread_mutex_unlock(&pool.run);
        fn(ctx, 0, n, 0);
        return;
    }
    /* the job first, then the round that publishes it (release) */
    pool.fn = fn, pool.ctx = ctx, pool.n = n, pool.parts = parts;
    atomic_store(&pool.pending, pool.started);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.round, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    run_part(fn, ctx, n, parts, 0);

    if (!spin_zero(&pool.pending)) {
        pthread_mutex_lock(&pool.lock);
        while (atomic_load(&pool.pending) > 0)
            pthread_cond_wait(&pool.done, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.run);
}

/* Chunks taken in turn: fn(ctx, c, c + 1, part) for every c in [0, n), each
 * chunk by whichever thread is free first (part: that thread's index, for
 * its scratch). For work whose result does not depend on which thread does
 * a chunk (a product's blocks, fixed chunks of rows): a thread that the
 * machine's other work delays takes fewer chunks instead of holding the
 * others up. */
typedef struct chunk_job {
    pool_fn fn;
    void *ctx;
    size_t n;
    _Atomic size_t next;
} chunk_job;

static void take_chunks(void *ctx, size_t begin, size_t end, int part)
{
    (void)begin, (void)end;
    chunk_job *j = ctx;
    for (;;) {
        size_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->n)
            return;
        j->fn(j->ctx, c, c + 1, part);
    }
}

void pool_chunks(size_t n, int max_parts, pool_fn fn, void *ctx)
{
    if (n == 0)
        return;
    chunk_job j = {fn, ctx, n, 0};
    int threads = pool_threads();
    size_t parts = n < (size_t)threads ? n : (size_t)threads;
    pool_for(parts, 1, max_parts, take_chunks, &j);
}
