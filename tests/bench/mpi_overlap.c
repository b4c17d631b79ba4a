/* Whether overlapping the gradients' allreduce with the backward pass pays on
 * this machine (docs/distributed.md, "Overlap"). Each rank runs CHUNKS sgemm
 * products, about the backward pass of half a batch of the d_model 256 copy
 * task (400 x 256 by 256 x 2048 each), and sums the task's 5,797,131 floats:
 *   (a) the products alone,
 *   (b) the products, then MPI_Allreduce (what at_train_step_reduce does),
 *   (c) MPI_Iallreduce started first, MPI_Test between products, MPI_Wait at
 *       the end (the best an overlapped step could do: every gradient ready
 *       at once).
 * Prints, over REPS interleaved repetitions, the best wall time of the
 * slowest rank and rank 0's mean CPU time of each.
 *   mpicc -O2 tests/bench/mpi_overlap.c -o mpi_overlap $(pkg-config --cflags --libs openblas)
 *   OPENBLAS_NUM_THREADS=1 mpirun -np 2 ./mpi_overlap 10 */
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { CHUNKS = 36, ROWS = 400, IN = 256, OUT = 2048 };
static const size_t FLOATS = 5797131;

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, reps = argc > 1 ? atoi(argv[1]) : 10;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    float *g = calloc(FLOATS, sizeof *g), *a = calloc(ROWS * IN, sizeof *a);
    float *w = calloc(OUT * IN, sizeof *w), *c = calloc(ROWS * OUT, sizeof *c);
    if (!g || !a || !w || !c || reps < 1)
        MPI_Abort(MPI_COMM_WORLD, 1);
    double best[3] = {1e9, 1e9, 1e9}, cpu[3] = {0, 0, 0};
    for (int it = 0; it < reps; it++)
        for (int v = 0; v < 3; v++) {
            MPI_Request q;
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime(), c0 = cpu_seconds();
            if (v == 2)
                MPI_Iallreduce(MPI_IN_PLACE, g, (int)FLOATS, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                               &q);
            for (int k = 0; k < CHUNKS; k++) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ROWS, OUT, IN, 1.0f, a, IN,
                            w, IN, 0.0f, c, OUT);
                int done;
                if (v == 2)
                    MPI_Test(&q, &done, MPI_STATUS_IGNORE);
            }
            if (v == 1)
                MPI_Allreduce(MPI_IN_PLACE, g, (int)FLOATS, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (v == 2)
                MPI_Wait(&q, MPI_STATUS_IGNORE);
            double t = MPI_Wtime() - t0, slowest;
            cpu[v] += cpu_seconds() - c0;
            MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            best[v] = slowest < best[v] ? slowest : best[v];
        }
    if (rank == 0)
        printf("wall (best): products %.1f ms, then allreduce %.1f ms, overlapped %.1f ms; "
               "CPU (mean, rank 0): %.1f, %.1f, %.1f ms\n", best[0] * 1e3, best[1] * 1e3,
               best[2] * 1e3, cpu[0] / reps * 1e3, cpu[1] / reps * 1e3, cpu[2] / reps * 1e3);
    free(g), free(a), free(w), free(c);
    MPI_Finalize();
    return 0;
}
