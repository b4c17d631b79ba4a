/* libFuzzer target for the batch files of attn decode --input and attn
 * viz/stats --input: st_read of the file, then io_read_ids of its integer
 * tensors src (required) and tgt (optional) (src/attn/io.c), as the
 * commands read them; then the row check attn viz makes.
 *   ./build-fuzz/tests/fuzz_attn_input -close_fd_mask=3 corpus/ tests/data/fuzz_attn_input/
 * Input: the bytes of the file (written to a temporary file, as attn reads a
 * path). An input starting with '{' is taken as the header text, and its
 * length is prepended (as fuzz_st does), so the fuzzer can explore the JSON.
 * Checks, besides crashes and leaks: ids read are the tensor's values, a
 * (rows, cols) matrix of int32 with both at least 1, from an integer
 * tensor of two dimensions; a failure leaves no ids. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_attn_input: check failed: %s\n", what);
        abort();
    }
}

static char path[4096];

/* Writes the temporary file (on tmpfs when there is one); it is removed as
 * soon as it is read, since libFuzzer ends a run with _Exit. */
static void put_file(const void *head, size_t hlen, const void *data, size_t size)
{
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/fuzz_attn_input.%ld.safetensors",
                 dir && *dir ? dir : "/tmp", (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    check(f && fwrite(head, 1, hlen, f) == hlen && fwrite(data, 1, size, f) == size &&
              fclose(f) == 0, "writing the input file");
}

static bool is_int_dtype(st_dtype t)
{
    return t != ST_F16 && t != ST_BF16 && t != ST_F32 && t != ST_F64 && t != ST_BOOL;
}

/* io_read_ids of one tensor, against the tensor itself. */
static int read_ids(const st_file *f, const char *name, bool required, int32_t **ids, int *rows,
                    int *cols)
{
    int rc = io_read_ids(f, path, name, required, ids, rows, cols);
    const st_tensor *t = st_find(f, name);
    if (rc != ATTN_OK) {
        check(rc == ATTN_FAIL && *ids == NULL && *rows == 0 && *cols == 0,
              "a failed read leaves no ids");
        check(t != NULL || required, "a missing optional tensor is no error");
        return rc;
    }
    if (!t) {
        check(!required && *ids == NULL && *rows == 0 && *cols == 0,
              "a missing optional tensor reads as none");
        return rc;
    }
    check(is_int_dtype(t->dtype) && t->ndim == 2, "ids come from a matrix of integers");
    check(*ids != NULL && *rows >= 1 && *cols >= 1 && *rows == t->shape[0] &&
              *cols == t->shape[1], "ids have the tensor's shape");
    size_t n = (size_t)*rows * (size_t)*cols;
    int64_t *wide = malloc(n * sizeof *wide);
    check(wide != NULL, "out of memory");
    char err[256];
    check(st_to_i64(t, wide, err, sizeof err) == AT_OK, "the tensor converts");
    for (size_t i = 0; i < n; i++)
        check(wide[i] == (*ids)[i], "ids are the tensor's values");
    free(wide);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t head[8];
    size_t hlen = 0;
    if (size > 0 && data[0] == '{') {
        size_t n = size;
        while (n > 0 && data[n - 1] != '}')
            n--;
        for (int i = 0; i < 8; i++)
            head[i] = (uint8_t)((uint64_t)n >> 8 * i);
        hlen = 8;
    }
    put_file(head, hlen, data, size);
    st_file f;
    char err[512];
    at_status rs = st_read(&f, path, err, sizeof err);
    unlink(path);
    if (rs != AT_OK)
        return 0;
    int32_t *src = NULL, *tgt = NULL;
    int B = 0, S = 0, Bt = 0, T = 0;
    int rc = read_ids(&f, "src", true, &src, &B, &S);
    if (rc == ATTN_OK)
        rc = read_ids(&f, "tgt", false, &tgt, &Bt, &T);
    /* attn viz: the same batch */
    check(rc != ATTN_OK || !tgt || Bt >= 1, "tgt rows");
    st_free(&f);
    free(src);
    free(tgt);
    return 0;
}
