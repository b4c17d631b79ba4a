/* safetensors reading and writing (internal).
 *
 * Format: 8 bytes little-endian u64 header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"?: {str: str}},
 * then the raw little-endian data; offsets are relative to the end of the header. */
#ifndef AT_ST_H
#define AT_ST_H

#include <stddef.h>
#include <stdint.h>

#include "at.h"

#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_I64, ST_U64, ST_F64
} st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const unsigned char *data;  /* inside st_file.buf; may be unaligned: use memcpy */
    size_t nbytes;
} st_tensor;

typedef struct st_file {
    unsigned char *buf;         /* whole file, owned */
    size_t len;
    st_tensor *tensors;         /* in file order of data offsets */
    int count;
    char **meta_keys, **meta_vals;
    int meta_count;
} st_file;

/* Parses and validates a whole file held in memory (copied into f->buf).
 * f is overwritten (not freed) first. On failure fills err (one line naming
 * what is wrong; err may be NULL) and leaves f zeroed: AT_E_FORMAT for a
 * malformed file, AT_E_NOMEM, AT_E_ARG. Stricter than the format's letter
 * where C needs it: names must not contain \u0000, shape entries and offsets
 * must be whole numbers up to 2^53 (exact in cJSON's doubles). Tensors must
 * not overlap; gaps and trailing bytes are allowed. st_read adds AT_E_IO and
 * names the path in err. st_free frees and zeroes f; it accepts NULL, a
 * zeroed or an already-freed st_file. */
at_status st_parse(st_file *f, const void *data, size_t len, char *err, size_t errlen);
at_status st_read(st_file *f, const char *path, char *err, size_t errlen);
void st_free(st_file *f);

const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key);
size_t st_dtype_size(st_dtype t);
const char *st_dtype_name(st_dtype t);

/* Copies a tensor of an integer dtype (I8..U64, BOOL) into int64 values,
 * or of F16/BF16/F32/F64 into floats. Returns AT_E_FORMAT for other dtypes.
 * BOOL gives 0 or 1; a U64 value above INT64_MAX gives AT_E_RANGE. F64 is
 * rounded to nearest (±inf beyond float's range); F16/BF16 are exact. */
at_status st_to_i64(const st_tensor *t, int64_t *out, char *err, size_t errlen);
at_status st_to_f32(const st_tensor *t, float *out, char *err, size_t errlen);

/* One tensor to write. */
typedef struct st_out {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;           /* numel * dtype size bytes, little-endian */
} st_out;

/* Writes tensors in the given order with optional metadata (meta_kv holds
 * nmeta key,value pairs: 2*nmeta strings). Atomic: writes path.tmp.XXXXXX in
 * the same directory, fsyncs, renames over path; on any failure removes the
 * temporary file and leaves path untouched (AT_E_IO, err names the step).
 * Header padded with spaces to a multiple of 8 bytes so data are aligned.
 * The new file gets the old file's permissions, else 0644. Anything st_parse
 * would refuse (duplicate or non-UTF-8 names, "__metadata__" as a tensor
 * name, bad dtype or shape) is AT_E_ARG and writes nothing. */
/* Whether the NUL-terminated s is valid UTF-8 (as st_parse requires of names
 * and metadata). */
int st_utf8_ok(const char *s);

at_status st_write(const char *path, const st_out *t, int n,
                   const char *const *meta_kv, int nmeta, char *err, size_t errlen);

#endif
