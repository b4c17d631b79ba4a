/* Tests of the safetensors reader and writer (src/io/st.c).
 *
 * Tensor data are written from native arrays, which st_write takes as
 * little-endian bytes: these tests assume a little-endian host. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, setrlimit */
#endif

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/st.h"
#include "suites.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "test_st.c writes native arrays as little-endian data"
#endif

/* ------------------------------------------------------------ helpers */

static char tdir[256];

/* A fresh directory for one test; removed by rm_tdir. */
static const char *mk_tdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tdir, sizeof tdir, "%s/test_st.XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tdir));
    return tdir;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Also the teardown of every TCase, so a failed test leaves nothing. */
static void rm_tdir(void)
{
    if (!tdir[0])
        return;
    chmod(tdir, 0700);
    nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tdir[0] = '\0';
}

static char *path_in(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    ck_assert_int_eq(fclose(fp), 0);
}

/* A file: 8-byte length, the header json as given, then ndata bytes 0,1,2... */
static unsigned char *make_st(const char *json, size_t ndata, size_t *len)
{
    size_t n = strlen(json);
    unsigned char *b = malloc(8 + n + ndata + 1);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> 8 * i);
    memcpy(b + 8, json, n);
    for (size_t i = 0; i < ndata; i++)
        b[8 + n + i] = (unsigned char)i;
    *len = 8 + n + ndata;
    return b;
}

static int is_zeroed(const st_file *f)
{
    static const st_file zero;
    return !memcmp(f, &zero, sizeof zero);
}

static void check_message(const char *err, const char *what)
{
    ck_assert_msg(!strncmp(err, "safetensors: ", 13) && strlen(err) > 13,
                  "%s: message '%s'", what, err);
    ck_assert_msg(!strchr(err, '\n'), "%s: message of more than one line: '%s'", what, err);
}

static uint64_t header_len(const unsigned char *b)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b[i];
    return n;
}

/* ------------------------------------------------------------ round trip */

START_TEST(test_roundtrip)
{
    /* Every dtype, a 0-d scalar, empty tensors and the most dimensions. */
    const float f32[6] = {1, -2, 3.5f, 0, 1e-3f, 65504};
    const int64_t i64[4] = {INT64_MIN, -1, 0, INT64_MAX};
    const uint8_t u8 = 7, bools[3] = {1, 0, 1};
    const uint16_t f16[2] = {0x3C00, 0xC100}, bf16[2] = {0x3F80, 0xC020};
    const double f64[1] = {0.25};
    const int8_t i8[3] = {-128, 0, 127};
    const int16_t i16[2] = {-32768, 32767};
    const uint16_t u16[2] = {0, 65535};
    const int32_t i32[2] = {INT32_MIN, INT32_MAX};
    const uint32_t u32[2] = {0, UINT32_MAX};
    const uint64_t u64[2] = {0, (uint64_t)INT64_MAX};
    const st_out out[] = {
        {"f32", ST_F32, 2, {2, 3}, f32},
        {"i64", ST_I64, 1, {4}, i64},
        {"scalar", ST_U8, 0, {0}, &u8},
        {"empty", ST_F32, 3, {3, 0, 2}, NULL},
        {"f16", ST_F16, 1, {2}, f16},
        {"bf16", ST_BF16, 2, {1, 2}, bf16},
        {"f64", ST_F64, 8, {1, 1, 1, 1, 1, 1, 1, 1}, f64},
        {"bool", ST_BOOL, 1, {3}, bools},
        {"i8", ST_I8, 1, {3}, i8},
        {"i16", ST_I16, 1, {2}, i16},
        {"u16", ST_U16, 1, {2}, u16},
        {"i32", ST_I32, 1, {2}, i32},
        {"u32", ST_U32, 1, {2}, u32},
        {"u64", ST_U64, 1, {2}, u64},
        {"bf16_empty", ST_BF16, 1, {0}, NULL},
    };
    const int n = (int)(sizeof out / sizeof out[0]);
    char path[512], err[256] = "";
    st_file f;

    path_in(path, sizeof path, mk_tdir(), "rt.safetensors");
    ck_assert_int_eq(st_write(path, out, n, NULL, 0, err, sizeof err), AT_OK);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    ck_assert_int_eq(f.count, n);
    ck_assert_int_eq(f.meta_count, 0);
    ck_assert_uint_eq(header_len(f.buf) % 8, 0);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &f.tensors[i];
        size_t nb = st_dtype_size(out[i].dtype);
        /* file order is the order given */
        ck_assert_str_eq(t->name, out[i].name);
        ck_assert_ptr_eq(st_find(&f, out[i].name), t);
        ck_assert_int_eq(t->dtype, out[i].dtype);
        ck_assert_int_eq(t->ndim, out[i].ndim);
        for (int d = 0; d < t->ndim; d++) {
            ck_assert_int_eq(t->shape[d], out[i].shape[d]);
            nb *= (size_t)out[i].shape[d];
        }
        ck_assert_int_eq(t->numel, (int64_t)(nb / st_dtype_size(out[i].dtype)));
        ck_assert_uint_eq(t->nbytes, nb);
        ck_assert(nb == 0 || !memcmp(t->data, out[i].data, nb));
        /* the header is padded: data start 8-aligned in the file */
        if (i == 0)
            ck_assert_uint_eq((size_t)(t->data - f.buf) % 8, 0);
    }
    ck_assert_ptr_null(st_find(&f, "nope"));
    ck_assert_ptr_null(st_find(&f, ""));

    float got[6];
    ck_assert_int_eq(st_to_f32(st_find(&f, "f32"), got, err, sizeof err), AT_OK);
    ck_assert(!memcmp(got, f32, sizeof f32));
    ck_assert_int_eq(st_to_f32(st_find(&f, "f64"), got, err, sizeof err), AT_OK);
    ck_assert(got[0] == 0.25f);
    ck_assert_int_eq(st_to_f32(st_find(&f, "empty"), NULL, err, sizeof err), AT_OK);

    int64_t v[4];
    ck_assert_int_eq(st_to_i64(st_find(&f, "i64"), v, err, sizeof err), AT_OK);
    ck_assert(!memcmp(v, i64, sizeof i64));
    ck_assert_int_eq(st_to_i64(st_find(&f, "scalar"), v, err, sizeof err), AT_OK);
    ck_assert_int_eq(v[0], 7);
    st_free(&f);
    ck_assert(is_zeroed(&f));
    st_free(&f); /* a second free is harmless */
    st_free(NULL);
    rm_tdir();
}
END_TEST

START_TEST(test_to_i64)
{
    const uint8_t bools[3] = {0, 1, 2};
    const int8_t i8[3] = {-128, -1, 127};
    const int16_t i16[2] = {-32768, 32767};
    const uint16_t u16[2] = {0, 65535};
    const int32_t i32[2] = {INT32_MIN, -5};
    const uint32_t u32[2] = {7, UINT32_MAX};
    const uint64_t u64_ok[1] = {(uint64_t)INT64_MAX}, u64_big[2] = {1, UINT64_MAX};
    const float f32[1] = {1};
    const st_out out[] = {
        {"bool", ST_BOOL, 1, {3}, bools}, {"i8", ST_I8, 1, {3}, i8},
        {"i16", ST_I16, 1, {2}, i16},     {"u16", ST_U16, 1, {2}, u16},
        {"i32", ST_I32, 1, {2}, i32},     {"u32", ST_U32, 1, {2}, u32},
        {"u64ok", ST_U64, 1, {1}, u64_ok}, {"u64big", ST_U64, 1, {2}, u64_big},
        {"f32", ST_F32, 1, {1}, f32},
    };
    const int64_t want[][3] = {
        {0, 1, 1}, {-128, -1, 127}, {-32768, 32767}, {0, 65535},
        {INT32_MIN, -5}, {7, UINT32_MAX}, {INT64_MAX},
    };
    char path[512], err[256] = "";
    st_file f;
    int64_t v[3];

    path_in(path, sizeof path, mk_tdir(), "ints.safetensors");
    ck_assert_int_eq(st_write(path, out, 9, NULL, 0, err, sizeof err), AT_OK);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    for (int i = 0; i < 7; i++) {
        const st_tensor *t = st_find(&f, out[i].name);
        ck_assert_int_eq(st_to_i64(t, v, err, sizeof err), AT_OK);
        for (int64_t k = 0; k < t->numel; k++)
            ck_assert_msg(v[k] == want[i][k], "%s[%" PRId64 "] = %" PRId64, out[i].name, k, v[k]);
    }
    ck_assert_int_eq(st_to_i64(st_find(&f, "u64big"), v, err, sizeof err), AT_E_RANGE);
    check_message(err, "u64big");
    ck_assert_int_eq(st_to_i64(st_find(&f, "f32"), v, err, sizeof err), AT_E_FORMAT);
    check_message(err, "f32 as i64");
    float x;
    ck_assert_int_eq(st_to_f32(st_find(&f, "i8"), &x, err, sizeof err), AT_E_FORMAT);
    check_message(err, "i8 as f32");
    ck_assert_int_eq(st_to_i64(NULL, v, err, sizeof err), AT_E_ARG);
    st_free(&f);
    rm_tdir();
}
END_TEST

START_TEST(test_metadata)
{
    const char *kv[] = {
        "d_model", "512",
        "note", "two\nlines, \"quoted\", back\\slash, tab\t, \x01, caf\xc3\xa9 \xe2\x9c\x93",
        "empty", "",
        "caf\xc3\xa9 \"key\"", "unicode key",
    };
    const float one = 1;
    const st_out out[] = {{"w", ST_F32, 1, {1}, &one}};
    char path[512], err[256] = "";
    st_file f;

    path_in(path, sizeof path, mk_tdir(), "meta.safetensors");
    ck_assert_int_eq(st_write(path, out, 1, kv, 4, err, sizeof err), AT_OK);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    ck_assert_int_eq(f.meta_count, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(st_meta(&f, kv[2 * i]), kv[2 * i + 1]);
    ck_assert_ptr_null(st_meta(&f, "missing"));
    ck_assert_ptr_null(st_meta(&f, NULL));
    ck_assert_int_eq(f.count, 1);
    st_free(&f);

    /* metadata alone, no tensors */
    ck_assert_int_eq(st_write(path, NULL, 0, kv, 1, err, sizeof err), AT_OK);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    ck_assert_int_eq(f.count, 0);
    ck_assert_str_eq(st_meta(&f, "d_model"), "512");
    st_free(&f);
    rm_tdir();
}
END_TEST

START_TEST(test_escaped_names)
{
    static const char *names[] = {
        "quote\"d", "back\\slash", "new\nline", "tab\t", "ctl\x01x\x1f", "caf\xc3\xa9\xe2\x9c\x93",
        "slash/x", "", "__metadata__ ", "{\"dtype\":\"F32\"}",
    };
    enum { N = sizeof names / sizeof names[0] };
    int32_t vals[N];
    st_out out[N];
    char path[512], err[256] = "";
    st_file f;

    memset(out, 0, sizeof out);
    for (int i = 0; i < N; i++) {
        vals[i] = i * 10;
        out[i].name = names[i];
        out[i].dtype = ST_I32;
        out[i].ndim = 0;
        out[i].data = &vals[i];
    }
    path_in(path, sizeof path, mk_tdir(), "names.safetensors");
    ck_assert_int_eq(st_write(path, out, N, NULL, 0, err, sizeof err), AT_OK);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    ck_assert_int_eq(f.count, N);
    for (int i = 0; i < N; i++) {
        const st_tensor *t = st_find(&f, names[i]);
        int64_t v;
        ck_assert_msg(t != NULL, "name %d not found", i);
        ck_assert_int_eq(st_to_i64(t, &v, err, sizeof err), AT_OK);
        ck_assert_int_eq(v, i * 10);
    }
    st_free(&f);
    rm_tdir();
}
END_TEST

/* Tensors listed out of file order come back in file order; empty tensors
 * may sit anywhere; padding after the JSON may be any JSON whitespace. */
START_TEST(test_order_and_padding)
{
    const char *json = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
                       "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[1,1]},"
                       "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                       "\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[6,7],"
                       "\"extra\":[1]}}"
                       " \t\r\n  ";
    size_t len;
    unsigned char *b = make_st(json, 8, &len);
    char err[256] = "";
    st_file f;

    ck_assert_int_eq(st_parse(&f, b, len, err, sizeof err), AT_OK);
    ck_assert_int_eq(f.count, 4);
    ck_assert_str_eq(f.tensors[0].name, "a");
    ck_assert_str_eq(f.tensors[1].name, "e");
    ck_assert_str_eq(f.tensors[2].name, "b");
    ck_assert_str_eq(f.tensors[3].name, "x");
    ck_assert_int_eq(f.tensors[2].data[0], 2);
    ck_assert_int_eq(f.tensors[3].data[0], 6);
    /* the parsed file is a copy: the caller's bytes may go */
    memset(b, 0xAA, len);
    free(b);
    ck_assert_int_eq(f.tensors[3].data[0], 6);
    st_free(&f);
}
END_TEST

/* ------------------------------------------------------------ golden */

START_TEST(test_golden)
{
#ifdef AT_SHARED_GOLDEN
    const char *path = AT_SHARED_GOLDEN "/tiny/model.safetensors";
    const char *io = AT_SHARED_GOLDEN "/tiny/io.safetensors";
    char err[512] = "";
    st_file f;

    if (access(path, R_OK) != 0) {
        fprintf(stderr, "test_st: %s not found, golden test skipped\n", path);
        return;
    }
    ck_assert_msg(st_read(&f, path, err, sizeof err) == AT_OK, "%s", err);
    ck_assert_int_eq(f.count, 94);
    const st_tensor *pe = st_find(&f, "src_embed.1.pe");
    ck_assert_ptr_nonnull(pe);
    ck_assert_int_eq(pe->dtype, ST_F32);
    ck_assert_int_eq(pe->ndim, 3);
    ck_assert_int_eq(pe->shape[0], 1);
    ck_assert_int_eq(pe->shape[1], 5000);
    ck_assert_int_eq(pe->shape[2], 32);
    float *v = malloc((size_t)pe->numel * sizeof *v);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(st_to_f32(pe, v, err, sizeof err), AT_OK);
    /* pe[pos, 2i] = sin(pos / 10000^(2i/d)), pe[pos, 2i+1] = cos(...) */
    ck_assert_float_eq_tol(v[0], 0.0f, 1e-7f);
    ck_assert_float_eq_tol(v[1], 1.0f, 1e-7f);
    ck_assert_float_eq_tol(v[32], 0.84147098f, 1e-6f);
    ck_assert_float_eq_tol(v[33], 0.54030231f, 1e-6f);
    free(v);
    ck_assert_ptr_nonnull(st_find(&f, "tgt_embed.1.pe"));
    ck_assert_ptr_nonnull(st_find(&f, "generator.proj.weight"));
    st_free(&f);

    if (access(io, R_OK) == 0) {
        ck_assert_msg(st_read(&f, io, err, sizeof err) == AT_OK, "%s", err);
        const st_tensor *src = st_find(&f, "src");
        ck_assert_ptr_nonnull(src);
        ck_assert_int_eq(src->dtype, ST_I64);
        int64_t ids[20];
        ck_assert_int_eq(src->numel, 20);
        ck_assert_int_eq(st_to_i64(src, ids, err, sizeof err), AT_OK);
        for (int i = 0; i < 20; i++)
            ck_assert(ids[i] >= 0 && ids[i] < 11);
        st_free(&f);
    }
#else
    fprintf(stderr, "test_st: AT_SHARED_GOLDEN not defined, golden test skipped\n");
#endif
}
END_TEST

/* ------------------------------------------------------------ malformed input */

typedef struct {
    const char *what;
    const char *json; /* header text, followed by `data` bytes */
    size_t data;
    const char *raw; /* or the whole file */
    size_t rawlen;
    size_t cut; /* bytes dropped from the end */
} bad_case;

#define T1(dtype, shape, offs) \
    "{\"a\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}}"
#define J(what, json, data) {what, json, data, NULL, 0, 0}
#define RAW(what, raw, n) {what, NULL, 0, raw, n, 0}

static const bad_case bad[] = {
    RAW("empty file", "", 0),
    RAW("7 bytes", "\x02\0\0\0\0\0\0", 7),
    RAW("header length larger than file", "\x10\0\0\0\0\0\0\0{}", 10),
    RAW("header length 2^63", "\0\0\0\0\0\0\0\x80{}", 10),
    RAW("header length 2^64-1", "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10),
    RAW("header length over 100 MB", "\x01\xe1\xf5\x05\0\0\0\0{}", 10),
    RAW("empty header", "\0\0\0\0\0\0\0\0", 8),
    J("header not JSON", "hello   ", 0),
    J("header JSON array", "[]", 0),
    J("header JSON string", "\"x\"", 0),
    J("header only spaces", "        ", 0),
    J("unterminated object", "{\"a\":", 0),
    J("text after the JSON", "{} x", 0),
    J("two JSON values", "{}{}", 0),
    RAW("NUL padding", "\x04\0\0\0\0\0\0\0{}\0\0", 12),
    J("byte order mark", "\xef\xbb\xbf{}", 0),
    J("control byte between tokens", "{\x01}", 0),
    J("raw tab in a name", "{\"a\tb\":{}}", 0),
    J("invalid UTF-8 in a name", "{\"a\xff\":{}}", 0),
    J("overlong UTF-8 in a name", "{\"a\xc0\xaf\":{}}", 0),
    J("\\u0000 in a name", "{\"a\\u0000b\":{}}", 0),
    J("bad \\u escape", "{\"a\\uZZZZ\":{}}", 0),
    J("bad escape", "{\"a\\x\":{}}", 0),
    J("lone surrogate", "{\"a\\udc00\":{}}", 0),
    J("tensor not an object", "{\"a\":1}", 0),
    J("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
    J("missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4),
    J("missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4),
    J("dtype twice", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
                     "\"data_offsets\":[0,4]}}", 4),
    J("dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
    J("unknown dtype", T1("F8", "[1]", "[0,1]"), 1),
    J("lowercase dtype", T1("f32", "[1]", "[0,4]"), 4),
    J("negative shape", T1("F32", "[-1]", "[0,4]"), 4),
    J("fractional shape", T1("F32", "[1.5]", "[0,4]"), 4),
    J("string in shape", T1("F32", "[\"1\"]", "[0,4]"), 4),
    J("null in shape", T1("F32", "[null]", "[0,4]"), 4),
    J("shape not an array", T1("F32", "1", "[0,4]"), 4),
    J("nine dimensions", T1("U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]"), 1),
    J("shape entry over 2^53", T1("U8", "[0,100000000000000000]", "[0,0]"), 0),
    J("shape entry 1e400", T1("U8", "[0,1e400]", "[0,0]"), 0),
    J("element count over 2^63", T1("U8", "[4294967296,4294967296]", "[0,4]"), 4),
    J("byte count over 2^63", T1("F64", "[1048576,1048576,1048576]", "[0,8]"), 8),
    J("offsets reversed", T1("F32", "[1]", "[4,0]"), 4),
    J("offsets past the end", T1("F32", "[2]", "[0,8]"), 4),
    J("offsets negative", T1("F32", "[1]", "[-4,0]"), 4),
    J("offsets fractional", T1("F32", "[1]", "[0.5,4.5]"), 8),
    J("one offset", T1("F32", "[1]", "[0]"), 4),
    J("three offsets", T1("F32", "[1]", "[0,4,8]"), 8),
    J("offsets not an array", T1("F32", "[1]", "4"), 4),
    J("size mismatch", T1("F32", "[2,3]", "[0,12]"), 12),
    J("overlapping tensors",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
    J("tensor inside another",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 8),
    J("same bytes twice",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4),
    J("duplicate names",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8),
    J("metadata non-string value", "{\"__metadata__\":{\"k\":1}}", 0),
    J("metadata null value", "{\"__metadata__\":{\"k\":null}}", 0),
    J("metadata not an object", "{\"__metadata__\":\"x\"}", 0),
    J("metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0),
    J("metadata key twice", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0),
    {"truncated data", T1("F32", "[2]", "[0,8]"), 8, NULL, 0, 1},
    {"truncated header", T1("F32", "[2]", "[0,8]"), 0, NULL, 0, 3},
};
#define NBAD ((int)(sizeof bad / sizeof bad[0]))

START_TEST(test_bad)
{
    const bad_case *c = &bad[_i];
    unsigned char *b;
    size_t len;
    char err[256] = "";
    st_file f;

    if (c->raw) {
        len = c->rawlen;
        b = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(b);
        memcpy(b, c->raw, len);
    } else {
        b = make_st(c->json, c->data, &len);
        len -= c->cut;
    }
    memset(&f, 0x5A, sizeof f); /* st_parse must not read what was there */
    at_status s = st_parse(&f, b, len, err, sizeof err);
    ck_assert_msg(s == AT_E_FORMAT, "%s: status %d, message '%s'", c->what, (int)s, err);
    check_message(err, c->what);
    ck_assert_msg(is_zeroed(&f), "%s: st_file not zeroed", c->what);
    st_free(&f);

    /* no message buffer at all is fine too */
    ck_assert_int_eq(st_parse(&f, b, len, NULL, 0), AT_E_FORMAT);
    ck_assert_int_eq(st_parse(&f, b, len, err, 0), AT_E_FORMAT);
    free(b);
}
END_TEST

START_TEST(test_err_buffer)
{
    size_t len;
    unsigned char *b = make_st(T1("F32", "[2,3]", "[0,12]"), 12, &len);
    char err[256] = "", small[6] = "xxxxx";
    st_file f;

    ck_assert_int_eq(st_parse(&f, b, len, err, sizeof err), AT_E_FORMAT);
    ck_assert_str_eq(err, "safetensors: tensor 'a': data_offsets [0, 12] do not match shape "
                          "[2, 3] of F32 (24 bytes)");
    ck_assert_int_eq(st_parse(&f, b, len, small, sizeof small), AT_E_FORMAT);
    ck_assert_str_eq(small, "safet");
    free(b);

    /* a long name with a newline is cut and kept on one line */
    char json[600], name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memcpy(name, "new\\nline", 9);
    snprintf(json, sizeof json, "{\"%s\":{\"dtype\":\"F9\",\"shape\":[],\"data_offsets\":[0,0]}}",
             name);
    b = make_st(json, 0, &len);
    ck_assert_int_eq(st_parse(&f, b, len, err, sizeof err), AT_E_FORMAT);
    check_message(err, "long name");
    ck_assert_ptr_nonnull(strstr(err, "new?line"));
    ck_assert_ptr_nonnull(strstr(err, "...'"));
    free(b);

    ck_assert_int_eq(st_parse(NULL, "", 0, err, sizeof err), AT_E_ARG);
    ck_assert_int_eq(st_parse(&f, NULL, 8, err, sizeof err), AT_E_ARG);
    ck_assert(is_zeroed(&f));
}
END_TEST

START_TEST(test_read_errors)
{
    char path[512], err[512] = "";
    st_file f;
    const char *dir = mk_tdir();

    path_in(path, sizeof path, dir, "missing.safetensors");
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_E_IO);
    check_message(err, "missing file");
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert(is_zeroed(&f));

    ck_assert_int_eq(st_read(&f, dir, err, sizeof err), AT_E_IO);
    check_message(err, "directory");

    /* a format error names the file */
    size_t len;
    unsigned char *b = make_st("[]", 0, &len);
    path_in(path, sizeof path, dir, "array.safetensors");
    spit(path, b, len);
    free(b);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_E_FORMAT);
    check_message(err, "format error");
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert(is_zeroed(&f));
    rm_tdir();
}
END_TEST

/* ------------------------------------------------------------ floats */

START_TEST(test_f16_bf16)
{
    /* 1, -2.5, 65504 (largest half), 2^-24 (smallest subnormal),
     * 1023*2^-24 (largest subnormal), inf, -inf, -0, nan */
    const uint16_t f16[9] = {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x03FF,
                             0x7C00, 0xFC00, 0x8000, 0x7E00};
    const float want16[8] = {1.0f, -2.5f, 65504.0f, 0x1p-24f, 1023 * 0x1p-24f,
                             INFINITY, -INFINITY, -0.0f};
    /* 1, -2.5, 65280, 2^-133 (a float subnormal), inf, nan */
    const uint16_t bf16[6] = {0x3F80, 0xC020, 0x477F, 0x0001, 0x7F80, 0x7FC0};
    const float want_bf[5] = {1.0f, -2.5f, 65280.0f, 0x1p-133f, INFINITY};
    /* rounding; FLT_MAX stays; beyond half an ulp above it: inf */
    const double f64[7] = {0.1, -1e300, 1e40, 1e-50, 3.4028235e38, 0x1.fffffefp127, 0x1.ffffffp127};
    const float want64[7] = {0.1f, -INFINITY, INFINITY, 0.0f, 3.4028235e38f, 0x1.fffffep127f,
                             INFINITY};
    const st_out out[] = {
        {"f16", ST_F16, 1, {9}, f16},
        {"bf16", ST_BF16, 1, {6}, bf16},
        {"f64", ST_F64, 1, {7}, f64},
    };
    char path[512], err[256] = "";
    st_file f;
    float v[9];

    path_in(path, sizeof path, mk_tdir(), "floats.safetensors");
    ck_assert_int_eq(st_write(path, out, 3, NULL, 0, err, sizeof err), AT_OK);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);

    ck_assert_int_eq(st_to_f32(st_find(&f, "f16"), v, err, sizeof err), AT_OK);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(v[i] == want16[i], "f16 %d: %a, want %a", i, (double)v[i], (double)want16[i]);
    ck_assert(signbit(v[7]));
    ck_assert(isnan(v[8]));

    ck_assert_int_eq(st_to_f32(st_find(&f, "bf16"), v, err, sizeof err), AT_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(v[i] == want_bf[i], "bf16 %d: %a, want %a", i, (double)v[i],
                      (double)want_bf[i]);
    ck_assert(isnan(v[5]));

    ck_assert_int_eq(st_to_f32(st_find(&f, "f64"), v, err, sizeof err), AT_OK);
    for (int i = 0; i < 7; i++)
        ck_assert_msg(v[i] == want64[i], "f64 %d: %a, want %a", i, (double)v[i], (double)want64[i]);
    st_free(&f);
    rm_tdir();
}
END_TEST

/* ------------------------------------------------------------ atomic writes */

static const float some[4] = {1, 2, 3, 4};
static const st_out one_out[] = {{"x", ST_F32, 1, {4}, some}};

START_TEST(test_write_nodir)
{
    char path[512], err[512] = "";
    const char *dir = mk_tdir();
    path_in(path, sizeof path, dir, "no/such/dir/m.safetensors");
    ck_assert_int_eq(st_write(path, one_out, 1, NULL, 0, err, sizeof err), AT_E_IO);
    check_message(err, "no directory");
    ck_assert_int_eq(count_entries(dir), 0);
    rm_tdir();
}
END_TEST

START_TEST(test_write_replaces)
{
    char path[512], err[512] = "";
    const char *dir = mk_tdir();
    st_file f;

    path_in(path, sizeof path, dir, "m.safetensors");
    spit(path, "old contents", 12);
    ck_assert_int_eq(chmod(path, 0640), 0);
    ck_assert_int_eq(st_write(path, one_out, 1, NULL, 0, err, sizeof err), AT_OK);
    ck_assert_int_eq(count_entries(dir), 1);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    ck_assert_int_eq(f.count, 1);
    st_free(&f);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0640); /* a replaced file keeps its mode */

    /* a new file is 0644, not mkstemp's 0600 */
    path_in(path, sizeof path, dir, "new.safetensors");
    ck_assert_int_eq(st_write(path, one_out, 1, NULL, 0, err, sizeof err), AT_OK);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);
    rm_tdir();
}
END_TEST

/* A directory is refused before anything is written (rename() onto a
 * non-empty one would fail even for root). */
START_TEST(test_write_rename_fails)
{
    char path[512], inner[600], err[512] = "";
    const char *dir = mk_tdir();

    path_in(path, sizeof path, dir, "taken");
    ck_assert_int_eq(mkdir(path, 0755), 0);
    path_in(inner, sizeof inner, path, "keep");
    spit(inner, "keep me", 7);
    ck_assert_int_eq(st_write(path, one_out, 1, NULL, 0, err, sizeof err), AT_E_IO);
    check_message(err, "write onto a directory");
    ck_assert_ptr_nonnull(strstr(err, "is a directory"));
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary file left */
    ck_assert_int_eq(count_entries(path), 1);
    size_t len;
    unsigned char *b = slurp(inner, &len);
    ck_assert(len == 7 && !memcmp(b, "keep me", 7));
    free(b);
    rm_tdir();
}
END_TEST

/* A write that fails half-way (file size limit: EFBIG, also for root)
 * leaves the old file byte-identical and no temporary file. */
START_TEST(test_write_fails_midway)
{
    static float big[4096];
    const st_out out[] = {{"big", ST_F32, 1, {4096}, big}};
    char path[512], err[512] = "";
    const char *dir = mk_tdir();
    struct rlimit old, lim;

    path_in(path, sizeof path, dir, "m.safetensors");
    spit(path, "old contents", 12);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    at_status s = st_write(path, out, 1, NULL, 0, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);

    ck_assert_int_eq(s, AT_E_IO);
    check_message(err, "file size limit");
    ck_assert_msg(strstr(err, "write") || strstr(err, "flush"), "%s", err);
    ck_assert_int_eq(count_entries(dir), 1);
    size_t len;
    unsigned char *b = slurp(path, &len);
    ck_assert(len == 12 && !memcmp(b, "old contents", 12));
    free(b);

    /* a read-only directory (root may write there anyway) */
    if (geteuid() != 0) {
        ck_assert_int_eq(chmod(dir, 0555), 0);
        ck_assert_int_eq(st_write(path, one_out, 1, NULL, 0, err, sizeof err), AT_E_IO);
        check_message(err, "read-only directory");
        ck_assert_int_eq(count_entries(dir), 1);
    }
    rm_tdir();
}
END_TEST

/* What the reader would refuse, the writer refuses too, writing nothing. */
START_TEST(test_write_args)
{
    const uint8_t d[4] = {0};
    const st_out dup[] = {{"a", ST_U8, 1, {4}, d}, {"a", ST_U8, 1, {4}, d}};
    const st_out bad[] = {
        {NULL, ST_U8, 1, {4}, d},
        {"__metadata__", ST_U8, 1, {4}, d},
        {"bad\xff", ST_U8, 1, {4}, d},
        {"a", (st_dtype)99, 1, {4}, d},
        {"a", ST_U8, 9, {1, 1, 1, 1, 1, 1, 1, 1}, d},
        {"a", ST_U8, 1, {-1}, d},
        {"a", ST_U8, 1, {4}, NULL},
        {"a", ST_F64, 3, {1 << 20, 1 << 20, 1 << 20}, d},
    };
    const char *kv_dup[] = {"k", "1", "k", "2"}, *kv_null[] = {"k", NULL};
    char path[512], err[256] = "";
    const char *dir = mk_tdir();

    path_in(path, sizeof path, dir, "m.safetensors");
    ck_assert_int_eq(st_write(path, dup, 2, NULL, 0, err, sizeof err), AT_E_ARG);
    check_message(err, "duplicate");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(st_write(path, &bad[i], 1, NULL, 0, err, sizeof err) == AT_E_ARG,
                      "bad tensor %zu", i);
        check_message(err, "bad tensor");
    }
    ck_assert_int_eq(st_write(path, dup, 1, kv_dup, 2, err, sizeof err), AT_E_ARG);
    ck_assert_int_eq(st_write(path, dup, 1, kv_null, 1, err, sizeof err), AT_E_ARG);
    ck_assert_int_eq(st_write(path, NULL, 1, NULL, 0, err, sizeof err), AT_E_ARG);
    ck_assert_int_eq(st_write(NULL, dup, 1, NULL, 0, err, sizeof err), AT_E_ARG);
    ck_assert_int_eq(st_write(path, dup, -1, NULL, 0, err, sizeof err), AT_E_ARG);
    ck_assert_int_eq(count_entries(dir), 0);

    /* an empty file is fine: "{}" padded to 8 bytes */
    st_file f;
    ck_assert_int_eq(st_write(path, NULL, 0, NULL, 0, err, sizeof err), AT_OK);
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    ck_assert_int_eq(f.count, 0);
    ck_assert_uint_eq(f.len, 16);
    st_free(&f);
    rm_tdir();
}
END_TEST

/* ------------------------------------------------------------ fuzz seeds */

START_TEST(test_fuzz_seeds)
{
#ifdef AT_TEST_DATA
    static const struct {
        const char *name;
        at_status want;
    } seeds[] = {
        {"valid_small.safetensors", AT_OK},
        {"valid_meta_scalar_empty.safetensors", AT_OK},
        {"bad_overlap.safetensors", AT_E_FORMAT},
        /* the fuzz target's JSON form: for st_read, a bad header length */
        {"wrapped_meta.json", AT_E_FORMAT},
    };
    char path[1024], err[512] = "";
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        st_file f;
        snprintf(path, sizeof path, "%s/fuzz_st/%s", AT_TEST_DATA, seeds[i].name);
        at_status s = st_read(&f, path, err, sizeof err);
        ck_assert_msg(s == seeds[i].want, "%s: %d (%s)", seeds[i].name, (int)s, err);
        st_free(&f);
    }
#endif
}
END_TEST

Suite *suite_st(void)
{
    Suite *s = suite_create("st");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"roundtrip", test_roundtrip},
        {"to_i64", test_to_i64},
        {"metadata", test_metadata},
        {"escaped_names", test_escaped_names},
        {"order_and_padding", test_order_and_padding},
        {"golden", test_golden},
        {"err_buffer", test_err_buffer},
        {"read_errors", test_read_errors},
        {"f16_bf16_f64", test_f16_bf16},
        {"write_nodir", test_write_nodir},
        {"write_replaces", test_write_replaces},
        {"write_rename_fails", test_write_rename_fails},
        {"write_fails_midway", test_write_fails_midway},
        {"write_args", test_write_args},
        {"fuzz_seeds", test_fuzz_seeds},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, NULL, rm_tdir);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    TCase *tc = tcase_create("malformed");
    tcase_add_loop_test(tc, test_bad, 0, NBAD);
    suite_add_tcase(s, tc);
    return s;
}
