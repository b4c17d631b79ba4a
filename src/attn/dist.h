/* Data-parallel training over MPI (dist.c): the ranks of an mpirun, the
 * allreduce that at_train_step_reduce calls, and agreement on stopping.
 * Built without MPI (AT_MPI off), or run without mpirun, there is one rank
 * and no MPI call is made. */
#ifndef ATTN_DIST_H
#define ATTN_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "at.h"

/* Joins the mpirun this process was started by, if any (MPI is initialised
 * only when the launcher's environment says so), and from then on sends the
 * stdout of every rank but 0 to /dev/null. Returns ATTN_OK or ATTN_FAIL
 * (with a message). who names the command in messages. */
int dist_init(const char *who);
/* Leaves MPI: rc is this rank's exit status. A failure (ATTN_FAIL,
 * ATTN_USAGE) on any rank of several ends every rank through MPI_Abort,
 * with a message, so that no rank waits forever in a reduction; otherwise
 * MPI_Finalize. Returns rc. */
int dist_end(int rc);

int dist_rank(void);
int dist_size(void);
/* Whether steps go through MPI (mpirun, even with one rank). */
bool dist_active(void);

/* Rank r's contiguous rows of a global batch of n: [*first, *first + *count),
 * the first n % K ranks one row more. Rank 0 of 1 gets them all. */
void dist_shard(int n, int *first, int *count);

/* The at_allreduce_fn of MPI_COMM_WORLD (user unused): MPI_Allreduce with
 * MPI_SUM, in place, in pieces of at most INT_MAX elements. */
at_status dist_allreduce(void *user, void *data, size_t count, at_reduce_type type);

/* The largest of every rank's v (a signal number, or 0): the ranks stop
 * after the same step even when a signal reached only one of them. */
int dist_max(int v);

/* Whether every rank holds the same h (a hash of its data or parameters):
 * ATTN_OK, or ATTN_FAIL with a message naming what differs. */
int dist_agree(unsigned long long h, const char *who, const char *what);

/* This rank's reductions so far: bytes summed, wall and CPU seconds spent
 * in dist_allreduce. */
void dist_reduced(double *bytes, double *seconds, double *cpu);

/* FNV-1a over n bytes, continuing from h (start with DIST_HASH0). */
#define DIST_HASH0 1469598103934665603ull
unsigned long long dist_hash(unsigned long long h, const void *data, size_t n);

/* The threads a rank should use when --threads is not given: the cores
 * shared among the ranks of this machine (at least 1); 0: the default. */
int dist_threads(void);

#endif
