/* Data-parallel training over MPI: see dist.h. The MPI layer lives in the
 * attn program, not in libat (which stays free of MPI) nor in a companion
 * library: its whole surface is one at_allreduce_fn of a dozen lines, which
 * a host with its own communicator writes against its own MPI (Open MPI and
 * MPICH differ in ABI, MPI_Comm being a pointer in one and an int in the
 * other, so a prebuilt libat_mpi would tie libat's ABI to one of them). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "attn.h"
#include "dist.h"

#ifdef AT_HAVE_MPI
#include <mpi.h>
#include <time.h>
#endif

static int rank_of = 0, size_of = 1;
static bool active;
static double reduced_bytes, reduced_seconds, reduced_cpu;

void dist_reduced(double *bytes, double *seconds, double *cpu)
{
    *bytes = reduced_bytes;
    *seconds = reduced_seconds;
    *cpu = reduced_cpu;
}

unsigned long long dist_hash(unsigned long long h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int dist_rank(void) { return rank_of; }
int dist_size(void) { return size_of; }
bool dist_active(void) { return active; }

void dist_shard(int n, int *first, int *count)
{
    int base = n / size_of, extra = n % size_of;
    *count = base + (rank_of < extra);
    *first = rank_of * base + (rank_of < extra ? rank_of : extra);
}

/* Whether a launcher started this process: Open MPI's mpirun, a PMI or PMIx
 * launcher (MPICH's hydra, Slurm's srun). */
static bool launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i]))
            return true;
    return false;
}

#ifdef AT_HAVE_MPI

/* This process's CPU time in seconds (a waiting rank polls: the reductions'
 * CPU time is what waiting cost the machine). */
static double cpu_now(void)
{
    struct timespec t;
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) == 0 ? (double)t.tv_sec + 1e-9 * t.tv_nsec
                                                            : 0.0;
}

int dist_init(const char *who)
{
    if (!launched() || active)
        return ATTN_OK;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        attn_error("%s: MPI_Init failed", who);
        return ATTN_FAIL;
    }
    active = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_of);
    MPI_Comm_size(MPI_COMM_WORLD, &size_of);
    /* rank 0 prints; the others' lines would repeat it K times */
    if (rank_of > 0 && !freopen("/dev/null", "w", stdout)) {
        attn_error("%s: rank %d: cannot send stdout to /dev/null", who, rank_of);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

int dist_end(int rc)
{
    if (!active)
        return rc;
    fflush(stdout);
    if (size_of > 1 && (rc == ATTN_FAIL || rc == ATTN_USAGE)) {
        attn_error("rank %d of %d failed (exit status %d): stopping every rank", rank_of,
                   size_of, rc);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
    active = false;
    return rc;
}

at_status dist_allreduce(void *user, void *data, size_t count, at_reduce_type type)
{
    (void)user;
    if (!active)
        return AT_OK;
    MPI_Datatype t = type == AT_REDUCE_FLOAT ? MPI_FLOAT : MPI_DOUBLE;
    size_t size = type == AT_REDUCE_FLOAT ? sizeof(float) : sizeof(double);
    double t0 = MPI_Wtime(), c0 = cpu_now();
    for (size_t done = 0; done < count;) {
        size_t n = count - done < (size_t)INT_MAX ? count - done : (size_t)INT_MAX;
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)data + done * size, (int)n, t, MPI_SUM,
                          MPI_COMM_WORLD) != MPI_SUCCESS)
            return AT_E_IO;
        done += n;
    }
    reduced_bytes += (double)(count * size);
    reduced_seconds += MPI_Wtime() - t0;
    reduced_cpu += cpu_now() - c0;
    return AT_OK;
}

int dist_agree(unsigned long long h, const char *who, const char *what)
{
    unsigned long long lo = h, hi = h;
    if (!active || size_of == 1)
        return ATTN_OK;
    if (MPI_Allreduce(&h, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD) !=
            MPI_SUCCESS ||
        MPI_Allreduce(&h, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD) !=
            MPI_SUCCESS) {
        attn_error("%s: MPI_Allreduce failed", who);
        return ATTN_FAIL;
    }
    if (lo == hi)
        return ATTN_OK;
    attn_error("%s: the ranks hold different %s (rank %d: hash %016llx); every rank must "
               "read the same files with the same options", who, what, rank_of, h);
    return ATTN_FAIL;
}

int dist_max(int v)
{
    int all = v;
    if (active && MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return v;
    return all;
}

#else /* no MPI: one rank */

/* Each rank would train alone and write the same files: refused. */
int dist_init(const char *who)
{
    if (!launched())
        return ATTN_OK;
    attn_error("%s: started by an MPI launcher, but this attn was built without MPI (cmake "
               "-DAT_MPI=ON, with libopenmpi-dev installed): run it without mpirun", who);
    return ATTN_FAIL;
}

int dist_end(int rc) { return rc; }

at_status dist_allreduce(void *user, void *data, size_t count, at_reduce_type type)
{
    (void)user, (void)data, (void)count, (void)type;
    return AT_OK;
}

int dist_max(int v) { return v; }

int dist_agree(unsigned long long h, const char *who, const char *what)
{
    (void)h, (void)who, (void)what;
    return ATTN_OK;
}

#endif

int dist_threads(void)
{
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int ranks = local ? atoi(local) : size_of;
    if (!active || ranks <= 1)
        return 0;
    int cores = at_get_threads() / ranks;
    return cores > 1 ? cores : 1;
}
