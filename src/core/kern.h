/* libat's matrix-product micro-kernels (kern.c) and what the driver
 * (gemm.c) needs to know of them (issue 12: products that do not depend on
 * the CPU detection of a BLAS).
 *
 * A kernel computes one tile of C: mb ≤ MR rows by nb ≤ 32 columns over kc
 * steps of the inner dimension, from packed operands:
 *
 *   a[k·mb + r]   row r of the tile's A, step k (a sliver, k-major)
 *   b[k·32 + c]   column c of the tile's B, step k (a panel is 32 columns
 *                 wide whatever NR; b may point into one at column 16;
 *                 columns past nb hold zeros or anything finite)
 *
 * c[r·ldc + j] = Σ_k a·b for j < nb, plus c's old value when add. Each
 * element's sum runs over k in order in one accumulator, whatever mb, nb or
 * the kernel's position in C: a product's result depends on its sizes and
 * on the kernel, never on how C is cut into tiles or threads. */
#ifndef AT_KERN_H
#define AT_KERN_H

#include <stdbool.h>

#define KERN_NR 32                /* columns of a panel */

typedef void (*kern_fn)(int kc, const float *a, int mb, const float *b, int nb, float *c,
                        int ldc, bool add);

typedef struct kern {
    const char *name;             /* "avx512", "avx2", "generic" */
    int mr;                       /* rows of a tile, at most */
    int nr;                       /* columns of a call when a block has several
                                     slivers: 32, or 16 (half a panel); a lone
                                     sliver is always called with a whole one */
    kern_fn fn;
} kern;

/* The kernels this build has, best first; the last is the portable one.
 * kern_usable(k) says whether the CPU (and the OS) can run k. */
extern const kern kern_table[];
extern const int kern_count;
bool kern_usable(const kern *k);

#endif
