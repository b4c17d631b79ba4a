/* Memory for the large slabs: parameters, gradients, Adam's moments, the
 * activation arena, the backward buffers (not the packed weights: packed.c
 * says why).
 *
 * Each slab of 2 MiB or more is aligned to 2 MiB and offered to the kernel
 * for transparent huge pages (madvise), which Debian's kernels give only to
 * memory that asks (THP "madvise" mode). Why: a base model's training state
 * is 1.7 GB, which 4 KiB pages faulted in 430,000 times before the first
 * step (3.5-4.8 s of system time, measured; 51,000 and 1.15 s now), and
 * the products' packing reads rows of A thousands of floats apart, a page
 * and a TLB entry per row. Where the kernel has no huge pages the advice
 * is ignored and nothing else changes.
 * The memory is the C library's (free() releases it). */
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "core/core.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *slab_alloc(size_t bytes)
{
    if (bytes < HUGE_PAGE) {
        size_t round = (bytes + 63) & ~(size_t)63;
        return aligned_alloc(64, round ? round : 64);
    }
    if (bytes > SIZE_MAX - HUGE_PAGE)
        return NULL;
    size_t round = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p = aligned_alloc(HUGE_PAGE, round);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p)
        (void)madvise(p, round, MADV_HUGEPAGE);   /* advice: its failure changes nothing */
#endif
    return p;
}

void *slab_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = slab_alloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}
