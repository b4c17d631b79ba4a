/* libFuzzer target for the safetensors parser (built by -DAT_BUILD_FUZZ=ON
 * with CC=clang; docs/internals.md, "Fuzzing"), or by hand:
 *   clang -std=c11 -D_DEFAULT_SOURCE -g -fsanitize=fuzzer,address,undefined -Iinclude \
 *       -Isrc tests/fuzz_st.c src/io/st.c src/io/fileio.c $(pkg-config --cflags --libs libcjson) \
 *       -o fuzz_st
 *   ./fuzz_st -max_total_time=60 corpus/ tests/data/fuzz_st/
 * Besides crashes and leaks it checks what st_parse promises: a failure
 * leaves a message and a zeroed st_file; a success gives unique names, data
 * inside the buffer, and tensors that convert. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/st.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* An input starting with '{' cannot be a file (its header length would be
 * far over the limit), so it is taken as header text up to its last '}',
 * then data, and the length is prepended: the fuzzer can then explore the
 * JSON without having to keep the length field right. */
static uint8_t *as_file(const uint8_t *data, size_t size, size_t *len)
{
    size_t n = size;
    while (n > 0 && data[n - 1] != '}')
        n--;
    uint8_t *b = malloc(size + 8);
    if (!b)
        return NULL;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)n >> 8 * i);
    memcpy(b + 8, data, size);
    *len = size + 8;
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const st_file zero;
    st_file f;
    char err[256] = "";
    uint8_t *wrapped = NULL;

    if (size > 0 && data[0] == '{' && (wrapped = as_file(data, size, &size)))
        data = wrapped;
    at_status s = st_parse(&f, data, size, err, sizeof err);
    free(wrapped);
    if (s != AT_OK) {
        check(err[0] != '\0' && !memcmp(&f, &zero, sizeof f));
        return 0;
    }
    for (int i = 0; i < f.count; i++) {
        const st_tensor *t = &f.tensors[i];
        check(st_find(&f, t->name) == t);
        check(t->data >= f.buf && t->nbytes <= f.len &&
              (size_t)(t->data - f.buf) <= f.len - t->nbytes);
        check(t->nbytes == (size_t)t->numel * st_dtype_size(t->dtype));
        /* numel <= nbytes <= size: the buffers stay small */
        size_t n = t->numel > 0 ? (size_t)t->numel : 1;
        int64_t *iv = malloc(n * sizeof *iv);
        float *fv = malloc(n * sizeof *fv);
        if (iv && fv) {
            at_status a = st_to_i64(t, iv, err, sizeof err);
            at_status b = st_to_f32(t, fv, err, sizeof err);
            /* every dtype is an integer or a float type, not both; only a
             * U64 beyond int64 fails otherwise */
            check(a != AT_OK || b != AT_OK);
            check(a == AT_OK || b == AT_OK || (a == AT_E_RANGE && t->dtype == ST_U64));
        }
        free(iv);
        free(fv);
    }
    for (int i = 0; i < f.meta_count; i++)
        check(st_meta(&f, f.meta_keys[i]) == f.meta_vals[i]);
    st_free(&f);
    check(!memcmp(&f, &zero, sizeof f));
    return 0;
}
