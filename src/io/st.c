/* safetensors reading and writing; the format is described in st.h.
 *
 * The reader trusts nothing: every length, number and name in a file is
 * checked before it is used, so a malformed file gives AT_E_FORMAT and a
 * one-line message, never a crash. cJSON parses the header; a small lexical
 * pass first rejects what cJSON would accept but safetensors does not. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkstemp, fsync, fchmod, fdopen, fileno, strdup */
#endif

#include "st.h"
#include "fileio.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* safetensors refuses headers above 100 MB; so do we, before parsing. */
#define MAX_HEADER 100000000u
/* cJSON keeps numbers as doubles: whole numbers up to 2^53 are exact, larger
 * ones may have been rounded, so shapes and offsets above it are refused. */
#define MAX_EXACT ((int64_t)1 << 53)

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},    [ST_I8] = {"I8", 1},
    [ST_I16] = {"I16", 2},   [ST_U16] = {"U16", 2},  [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4},  [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},   [ST_I64] = {"I64", 8},  [ST_U64] = {"U64", 8},
    [ST_F64] = {"F64", 8},
};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

static int valid_dtype(st_dtype t)
{
    return (unsigned)t < NDTYPES;
}

size_t st_dtype_size(st_dtype t)
{
    return valid_dtype(t) ? dtypes[t].size : 0;
}

const char *st_dtype_name(st_dtype t)
{
    return valid_dtype(t) ? dtypes[t].name : "unknown";
}

/* ------------------------------------------------------------ messages */

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static at_status fail(char *err, size_t errlen, at_status s, const char *fmt, ...)
{
    if (err && errlen > 0) {
        int n = snprintf(err, errlen, "safetensors: ");
        size_t used = n < 0 ? 0 : (size_t)n < errlen ? (size_t)n : errlen - 1;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + used, errlen - used, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* A name as it may appear in a one-line message: control characters become
 * '?', a long name is cut at a character boundary and ends in "...". */
typedef struct { char s[72]; } shown;

static shown show(const char *name)
{
    shown o;
    size_t i, max = sizeof o.s - 4;
    for (i = 0; name[i] && i < max; i++)
        o.s[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
    if (name[i]) {
        while (i > 0 && ((unsigned char)name[i] & 0xC0) == 0x80)
            i--;
        memcpy(o.s + i, "...", 3);
        i += 3;
    }
    o.s[i] = '\0';
    return o;
}

typedef struct { char s[ST_MAX_DIMS * 22 + 3]; } shape_text;

static shape_text show_shape(const int64_t *shape, int ndim)
{
    shape_text o;
    size_t n = 1;
    o.s[0] = '[';
    for (int i = 0; i < ndim && n < sizeof o.s; i++) {
        int k = snprintf(o.s + n, sizeof o.s - n, "%s%" PRId64, i ? ", " : "", shape[i]);
        n += k > 0 ? (size_t)k : 0;
    }
    if (n < sizeof o.s)
        snprintf(o.s + n, sizeof o.s - n, "]");
    return o;
}

/* ------------------------------------------------------------ bytes and text */

/* n bytes at p, little-endian, whatever the host's byte order. */
static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    while (n--)
        v = v << 8 | p[n];
    return v;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0:
 * overlong forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp, min;
    size_t k;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        k = 2, cp = s[0] & 0x1Fu, min = 0x80;
    else if ((s[0] & 0xF0) == 0xE0)
        k = 3, cp = s[0] & 0x0Fu, min = 0x800;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        k = 4, cp = s[0] & 0x07u, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

int st_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), k;
    for (size_t i = 0; i < n; i += k)
        if (!(k = utf8_len(p + i, n - i)))
            return 0;
    return 1;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* cJSON is lenient where safetensors (serde_json) is strict: it takes any
 * byte up to 0x20 as whitespace, raw control characters and invalid UTF-8 in
 * strings, and turns a bad \u escape or \u0000 into a NUL that silently cuts
 * a name short. This pass rejects all of those before cJSON sees the text. */
static at_status check_text(const unsigned char *s, size_t n, char *err, size_t errlen)
{
    int in_str = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = in_str ? utf8_len(s + i, n - i) : 0;
            if (!k)
                return fail(err, errlen, AT_E_FORMAT, "header byte %zu: %s", i,
                            in_str ? "invalid UTF-8" : "non-ASCII byte outside a string");
            i += k;
            continue;
        }
        if (c < 0x20 && (in_str || !is_ws(c)))
            return fail(err, errlen, AT_E_FORMAT, "header byte %zu: control character 0x%02x",
                        i, c);
        if (in_str && c == '\\') {
            unsigned char e = i + 1 < n ? s[i + 1] : 0;
            if (e == 'u') {
                if (i + 6 > n || !is_hex(s[i + 2]) || !is_hex(s[i + 3]) || !is_hex(s[i + 4]) ||
                    !is_hex(s[i + 5]))
                    return fail(err, errlen, AT_E_FORMAT, "header byte %zu: bad \\u escape", i);
                if (!memcmp(s + i + 2, "0000", 4))
                    return fail(err, errlen, AT_E_FORMAT,
                                "header byte %zu: \\u0000 in a string is not supported", i);
                i += 6;
                continue;
            }
            if (!e || !strchr("\"\\/bfnrt", e))
                return fail(err, errlen, AT_E_FORMAT, "header byte %zu: bad escape", i);
            i += 2;
            continue;
        }
        if (c == '"')
            in_str = !in_str;
        i++;
    }
    return AT_OK;
}

/* ------------------------------------------------------------ reading */

/* A JSON number that is a whole number from 0 to 2^53 (exact in a double). */
static int whole(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= (double)MAX_EXACT) || (double)(int64_t)d != d)
        return 0;
    *out = (int64_t)d;
    return 1;
}

static int find_dtype(const char *name, st_dtype *out)
{
    for (size_t i = 0; i < NDTYPES; i++)
        if (!strcmp(dtypes[i].name, name)) {
            *out = (st_dtype)i;
            return 1;
        }
    return 0;
}

/* Fills t from one header entry; t->name is set last, so a failure leaves
 * nothing to free. */
static at_status read_tensor(st_tensor *t, const cJSON *item, const unsigned char *data,
                             size_t size, char *err, size_t errlen)
{
    const char *name = item->string;
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL, *el;
    int64_t begin, end;
    int i = 0;

    if (!cJSON_IsObject(item))
        return fail(err, errlen, AT_E_FORMAT, "tensor '%s': entry is not a JSON object",
                    show(name).s);
    cJSON_ArrayForEach(el, item) {
        const cJSON **slot = !strcmp(el->string, "dtype")          ? &dtype
                             : !strcmp(el->string, "shape")        ? &shape
                             : !strcmp(el->string, "data_offsets") ? &offs
                                                                   : NULL;
        if (!slot)
            continue; /* unknown fields are ignored, as safetensors does */
        if (*slot)
            return fail(err, errlen, AT_E_FORMAT, "tensor '%s': \"%s\" appears twice",
                        show(name).s, el->string);
        *slot = el;
    }
    if (!dtype || !shape || !offs)
        return fail(err, errlen, AT_E_FORMAT, "tensor '%s': no \"%s\"", show(name).s,
                    !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dtype))
        return fail(err, errlen, AT_E_FORMAT, "tensor '%s': \"dtype\" is not a string",
                    show(name).s);
    if (!find_dtype(dtype->valuestring, &t->dtype))
        return fail(err, errlen, AT_E_FORMAT, "tensor '%s': unknown dtype '%s'", show(name).s,
                    show(dtype->valuestring).s);

    if (!cJSON_IsArray(shape))
        return fail(err, errlen, AT_E_FORMAT, "tensor '%s': \"shape\" is not an array",
                    show(name).s);
    t->ndim = cJSON_GetArraySize(shape);
    if (t->ndim > ST_MAX_DIMS)
        return fail(err, errlen, AT_E_FORMAT, "tensor '%s': shape has %d dimensions, over %d",
                    show(name).s, t->ndim, ST_MAX_DIMS);
    t->numel = 1;
    cJSON_ArrayForEach(el, shape) {
        int64_t d;
        if (!whole(el, &d))
            return fail(err, errlen, AT_E_FORMAT,
                        "tensor '%s': shape entry %d is not a whole number from 0 to 2^53",
                        show(name).s, i);
        if (d != 0 && t->numel > INT64_MAX / d)
            return fail(err, errlen, AT_E_FORMAT, "tensor '%s': shape has over 2^63 elements",
                        show(name).s);
        t->shape[i++] = d;
        t->numel *= d;
    }

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !whole(offs->child, &begin) ||
        !whole(offs->child->next, &end))
        return fail(err, errlen, AT_E_FORMAT,
                    "tensor '%s': \"data_offsets\" is not a pair of whole numbers from 0 to 2^53",
                    show(name).s);
    if (begin > end)
        return fail(err, errlen, AT_E_FORMAT,
                    "tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] are reversed",
                    show(name).s, begin, end);
    if ((uint64_t)end > size)
        return fail(err, errlen, AT_E_FORMAT,
                    "tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                    "] reach past the %zu bytes of data (file truncated?)",
                    show(name).s, begin, end, size);
    int64_t dsize = (int64_t)dtypes[t->dtype].size;
    if (t->numel > INT64_MAX / dsize || end - begin != t->numel * dsize) {
        char want[32] = "over 2^63";
        if (t->numel <= INT64_MAX / dsize)
            snprintf(want, sizeof want, "%" PRId64, t->numel * dsize);
        return fail(err, errlen, AT_E_FORMAT,
                    "tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                    "] do not match shape %s of %s (%s bytes)",
                    show(name).s, begin, end, show_shape(t->shape, t->ndim).s,
                    dtypes[t->dtype].name, want);
    }
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    if (!(t->name = strdup(name)))
        return fail(err, errlen, AT_E_NOMEM, "out of memory");
    return AT_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A string that occurs twice in v (which gets sorted), or NULL. */
static const char *first_dup(const char **v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(v[i - 1], v[i]))
            return v[i];
    return NULL;
}

static at_status read_meta(st_file *g, const cJSON *obj, char *err, size_t errlen)
{
    const cJSON *el;
    if (!cJSON_IsObject(obj))
        return fail(err, errlen, AT_E_FORMAT, "\"__metadata__\" is not a JSON object");
    size_t n = (size_t)cJSON_GetArraySize(obj);
    g->meta_keys = calloc(n ? n : 1, sizeof *g->meta_keys);
    g->meta_vals = calloc(n ? n : 1, sizeof *g->meta_vals);
    if (!g->meta_keys || !g->meta_vals)
        return fail(err, errlen, AT_E_NOMEM, "out of memory");
    cJSON_ArrayForEach(el, obj) {
        if (!cJSON_IsString(el))
            return fail(err, errlen, AT_E_FORMAT, "\"__metadata__\": value of '%s' is not a string",
                        show(el->string).s);
        char *k = strdup(el->string), *v = strdup(el->valuestring);
        if (!k || !v) {
            free(k);
            free(v);
            return fail(err, errlen, AT_E_NOMEM, "out of memory");
        }
        g->meta_keys[g->meta_count] = k;
        g->meta_vals[g->meta_count++] = v;
    }
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys)
        return fail(err, errlen, AT_E_NOMEM, "out of memory");
    memcpy(keys, g->meta_keys, n * sizeof *keys);
    const char *dup = first_dup(keys, n);
    at_status s = dup ? fail(err, errlen, AT_E_FORMAT, "\"__metadata__\": key '%s' appears twice",
                             show(dup).s)
                      : AT_OK;
    free(keys);
    return s;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* File order; ties (empty tensors) by size, then by name, so the order is
 * the same on every libc. */
static int cmp_offset(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    if (x->data != y->data)
        return x->data < y->data ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Names unique (cJSON keeps duplicate keys), byte ranges disjoint. */
static at_status check_layout(st_file *g, const unsigned char *data, char *err, size_t errlen)
{
    size_t n = (size_t)g->count;
    st_tensor *t = g->tensors;
    if (n < 2)
        return AT_OK;
    qsort(t, n, sizeof *t, cmp_name);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(t[i - 1].name, t[i].name))
            return fail(err, errlen, AT_E_FORMAT, "tensor '%s' appears twice", show(t[i].name).s);
    qsort(t, n, sizeof *t, cmp_offset);
    const st_tensor *last = NULL; /* the non-empty tensor reaching furthest so far */
    for (size_t i = 0; i < n; i++) {
        if (t[i].nbytes == 0)
            continue; /* an empty tensor occupies no bytes */
        if (last && t[i].data < last->data + last->nbytes)
            return fail(err, errlen, AT_E_FORMAT,
                        "tensors '%s' [%td, %td] and '%s' [%td, %td] overlap", show(last->name).s,
                        last->data - data, last->data + last->nbytes - data, show(t[i].name).s,
                        t[i].data - data, t[i].data + t[i].nbytes - data);
        if (!last || t[i].data + t[i].nbytes > last->data + last->nbytes)
            last = &t[i];
    }
    return AT_OK;
}

static at_status read_entries(st_file *g, const cJSON *root, const unsigned char *data,
                              size_t size, char *err, size_t errlen)
{
    const cJSON *item;
    size_t count = 0;
    int seen_meta = 0;
    cJSON_ArrayForEach(item, root)
        count += strcmp(item->string, "__metadata__") != 0;
    g->tensors = calloc(count ? count : 1, sizeof *g->tensors);
    if (!g->tensors)
        return fail(err, errlen, AT_E_NOMEM, "out of memory for %zu tensors", count);
    cJSON_ArrayForEach(item, root) {
        at_status s;
        if (!strcmp(item->string, "__metadata__")) {
            if (seen_meta++)
                return fail(err, errlen, AT_E_FORMAT, "\"__metadata__\" appears twice");
            s = read_meta(g, item, err, errlen);
        } else {
            s = read_tensor(&g->tensors[g->count], item, data, size, err, errlen);
            g->count += s == AT_OK;
        }
        if (s != AT_OK)
            return s;
    }
    return check_layout(g, data, err, errlen);
}

/* ---- is the header JSON that cJSON reads? ----
 * cJSON returns NULL both for a syntax error and for a failed allocation.
 * When it does, these functions (which allocate nothing) tell the two apart:
 * strict JSON (RFC 8259) within cJSON's own limits, 1000 nested containers
 * and paired surrogates in \u escapes. Strings have passed check_text. */
#define JSON_DEPTH 1000

static size_t json_ws(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

static unsigned json_hex4(const unsigned char *p)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++)
        v = v << 4 | (unsigned)(p[k] <= '9' ? p[k] - '0' : (p[k] | 0x20) - 'a' + 10);
    return v;
}

/* The string opening at s[i]: the index after its closing quote, 0 if bad. */
static size_t json_string(const unsigned char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '"')
            return i + 1;
        if (s[i] != '\\')
            continue;
        if (i + 1 >= n)
            return 0;
        if (s[i + 1] != 'u') {
            i++;
            continue;
        }
        if (i + 6 > n)
            return 0;
        unsigned u = json_hex4(s + i + 2);
        i += 5;
        if (u >= 0xDC00 && u <= 0xDFFF)
            return 0;   /* a low surrogate first */
        if (u >= 0xD800 && u <= 0xDBFF) {   /* a high one: a low one must follow */
            if (i + 7 > n || s[i + 1] != '\\' || s[i + 2] != 'u' || !is_hex(s[i + 3]) ||
                !is_hex(s[i + 4]) || !is_hex(s[i + 5]) || !is_hex(s[i + 6]))
                return 0;
            u = json_hex4(s + i + 3);
            if (u < 0xDC00 || u > 0xDFFF)
                return 0;
            i += 6;
        }
    }
    return 0;
}

static size_t json_digits(const unsigned char *s, size_t n, size_t i)
{
    size_t b = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i > b ? i : 0;
}

/* The number starting at s[i]: the index after it, 0 if bad. */
static size_t json_number(const unsigned char *s, size_t n, size_t i)
{
    if (s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (!(i = json_digits(s, n, i)))
        return 0;
    if (i < n && s[i] == '.' && !(i = json_digits(s, n, i + 1)))
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        i = json_digits(s, n, i);
    }
    return i;
}

/* A scalar value at s[i]: the index after it, 0 if bad. */
static size_t json_scalar(const unsigned char *s, size_t n, size_t i)
{
    static const char *const words[] = {"true", "false", "null"};
    if (s[i] == '"')
        return json_string(s, n, i);
    if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9'))
        return json_number(s, n, i);
    for (int w = 0; w < 3; w++) {
        size_t k = strlen(words[w]);
        if (n - i >= k && !memcmp(s + i, words[w], k))
            return i + k;
    }
    return 0;
}

/* Whether s[0, n) begins with one JSON value that cJSON can parse (what
 * follows it is the caller's business). */
static bool json_ok(const unsigned char *s, size_t n)
{
    unsigned char open[JSON_DEPTH];   /* '{' or '[' of each container we are in */
    int depth = 0;
    size_t i = json_ws(s, n, 0);
    bool key = false;                 /* an object key comes next */
    for (;;) {
        /* a value (or, after '{' or ',' in an object, a key and a value) at i */
        if (i >= n)
            return false;
        if (key) {
            if (s[i] != '"' || !(i = json_string(s, n, i)))
                return false;
            i = json_ws(s, n, i);
            if (i >= n || s[i] != ':')
                return false;
            i = json_ws(s, n, i + 1);
            key = false;
            continue;
        }
        if (s[i] == '{' || s[i] == '[') {
            if (depth == JSON_DEPTH)
                return false;
            open[depth++] = s[i];
            i = json_ws(s, n, i + 1);
            if (i < n && s[i] == (open[depth - 1] == '{' ? '}' : ']')) {
                depth--;   /* empty */
                i++;
            } else {
                key = open[depth - 1] == '{';
                continue;
            }
        } else if (!(i = json_scalar(s, n, i))) {
            return false;
        }
        /* after a value: a comma, or the end of containers */
        for (;;) {
            if (depth == 0)
                return true;
            i = json_ws(s, n, i);
            if (i >= n)
                return false;
            if (s[i] == ',') {
                key = open[depth - 1] == '{';
                i = json_ws(s, n, i + 1);
                break;
            }
            if (s[i] != (open[depth - 1] == '{' ? '}' : ']'))
                return false;
            depth--;
            i++;
        }
    }
}

static at_status parse_header(st_file *g, char *err, size_t errlen)
{
    if (g->len < 8)
        return fail(err, errlen, AT_E_FORMAT,
                    "file is %zu bytes, too short for the 8-byte header length", g->len);
    uint64_t n = le(g->buf, 8);
    if (n > MAX_HEADER)
        return fail(err, errlen, AT_E_FORMAT, "header length %" PRIu64 " is over the limit of %u",
                    n, MAX_HEADER);
    if (n > g->len - 8)
        return fail(err, errlen, AT_E_FORMAT,
                    "header length %" PRIu64 " is more than the %zu bytes after it (truncated?)",
                    n, g->len - 8);
    const unsigned char *text = g->buf + 8, *data = text + n;
    at_status s = check_text(text, (size_t)n, err, errlen);
    if (s != AT_OK)
        return s;
    /* The header is not NUL-terminated: the length form stops at its end.
     * (cJSON notes the error position in a global, which we never read.) */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)text, (size_t)n, &end, 0);
    if (!root && json_ok(text, (size_t)n))
        return fail(err, errlen, AT_E_NOMEM, "out of memory for the header's %" PRIu64
                    " bytes of JSON", n);
    if (!root)
        return fail(err, errlen, AT_E_FORMAT,
                    "header is not valid JSON (near byte %td of %" PRIu64 ")",
                    end ? (const unsigned char *)end - text : 0, n);
    const unsigned char *p = (const unsigned char *)end;
    while (p < data && is_ws(*p))
        p++; /* writers pad the header with spaces */
    if (p != data)
        s = fail(err, errlen, AT_E_FORMAT, "header has text after its JSON value (byte %td)",
                 p - text);
    else if (!cJSON_IsObject(root))
        s = fail(err, errlen, AT_E_FORMAT, "header is not a JSON object");
    else
        s = read_entries(g, root, data, g->len - 8 - (size_t)n, err, errlen);
    cJSON_Delete(root);
    return s;
}

/* Parses buf (malloc'd, len bytes), which f then owns; on failure buf is
 * freed and f zeroed. */
static at_status parse_owned(st_file *f, unsigned char *buf, size_t len, char *err,
                             size_t errlen)
{
    st_file g = {0};
    g.buf = buf;
    g.len = len;
    at_status s = parse_header(&g, err, errlen);
    if (s != AT_OK)
        st_free(&g);
    *f = g;
    return s;
}

at_status st_parse(st_file *f, const void *data, size_t len, char *err, size_t errlen)
{
    if (!f)
        return fail(err, errlen, AT_E_ARG, "no st_file given");
    memset(f, 0, sizeof *f);
    if (!data && len)
        return fail(err, errlen, AT_E_ARG, "no data given");
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf)
        return fail(err, errlen, AT_E_NOMEM, "cannot allocate %zu bytes for the file", len);
    if (len)
        memcpy(buf, data, len);
    return parse_owned(f, buf, len, err, errlen);
}

at_status st_read(st_file *f, const char *path, char *err, size_t errlen)
{
    if (!f || !path)
        return fail(err, errlen, AT_E_ARG, "no st_file or path given");
    memset(f, 0, sizeof *f);
    unsigned char *buf;
    size_t len;
    char msg[512];
    at_status s = file_read_all(path, 0, &buf, &len, msg, sizeof msg);
    if (s != AT_OK)
        return fail(err, errlen, s, "%s", msg);
    /* Name the file in a format error: parse into a buffer, then prefix. */
    s = parse_owned(f, buf, len, msg, sizeof msg);
    if (s != AT_OK)
        fail(err, errlen, s, "%s: %s", path, msg + strlen("safetensors: "));
    return s;
}

void st_free(st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++)
        free(f->tensors[i].name);
    for (int i = 0; i < f->meta_count; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->tensors[i].name, name))
            return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->meta_count; i++)
        if (!strcmp(f->meta_keys[i], key))
            return f->meta_vals[i];
    return NULL;
}

/* ------------------------------------------------------------ conversion */

static float bits_to_float(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE binary16 to float; every half value is exact in float. */
static float half_to_float(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16, exp = h >> 10 & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) /* inf, nan (payload kept) */
        return bits_to_float(sign | 0x7f800000u | man << 13);
    if (exp != 0) /* normal: rebias the exponent from 15 to 127 */
        return bits_to_float(sign | (exp + 112) << 23 | man << 13);
    float v = (float)man * 0x1p-24f; /* zero and subnormals: man * 2^-24, exact */
    return sign ? -v : v;
}

/* double to float rounding to nearest; beyond float's range a plain cast
 * would be undefined, so give what IEEE rounding gives: FLT_MAX up to half
 * an ulp above it, inf from there. */
static float narrow(double d)
{
    double a = d < 0 ? -d : d;
    if (a > FLT_MAX) {
        float big = a >= 0x1.ffffffp127 ? INFINITY : FLT_MAX;
        return d < 0 ? -big : big;
    }
    return (float)d;
}

at_status st_to_f32(const st_tensor *t, float *out, char *err, size_t errlen)
{
    if (!t || (!out && t->numel > 0))
        return fail(err, errlen, AT_E_ARG, "st_to_f32: no tensor or output given");
    size_t n = (size_t)t->numel;
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case ST_F32:
        for (size_t i = 0; i < n; i++)
            out[i] = bits_to_float((uint32_t)le(p + 4 * i, 4));
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = le(p + 8 * i, 8);
            double d;
            memcpy(&d, &bits, sizeof d);
            out[i] = narrow(d);
        }
        break;
    case ST_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = half_to_float((uint32_t)le(p + 2 * i, 2));
        break;
    case ST_BF16: /* the top half of a float */
        for (size_t i = 0; i < n; i++)
            out[i] = bits_to_float((uint32_t)le(p + 2 * i, 2) << 16);
        break;
    default:
        return fail(err, errlen, AT_E_FORMAT, "tensor '%s' has dtype %s, not a float type",
                    show(t->name ? t->name : "").s, st_dtype_name(t->dtype));
    }
    return AT_OK;
}

at_status st_to_i64(const st_tensor *t, int64_t *out, char *err, size_t errlen)
{
    if (!t || (!out && t->numel > 0))
        return fail(err, errlen, AT_E_ARG, "st_to_i64: no tensor or output given");
    int is_signed;
    switch (t->dtype) {
    case ST_BOOL: case ST_U8: case ST_U16: case ST_U32: case ST_U64:
        is_signed = 0;
        break;
    case ST_I8: case ST_I16: case ST_I32: case ST_I64:
        is_signed = 1;
        break;
    default:
        return fail(err, errlen, AT_E_FORMAT, "tensor '%s' has dtype %s, not an integer type",
                    show(t->name ? t->name : "").s, st_dtype_name(t->dtype));
    }
    size_t n = (size_t)t->numel, size = dtypes[t->dtype].size, bits = 8 * size;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = le(t->data + i * size, size);
        if (t->dtype == ST_BOOL) {
            out[i] = u != 0;
        } else if (is_signed) {
            if (bits < 64 && (u >> (bits - 1) & 1))
                u |= ~(uint64_t)0 << bits; /* sign-extend */
            /* two's complement without the implementation-defined cast */
            out[i] = u <= INT64_MAX ? (int64_t)u : -(int64_t)~u - 1;
        } else if (u > INT64_MAX) {
            return fail(err, errlen, AT_E_RANGE,
                        "tensor '%s': element %zu (%" PRIu64 ") does not fit in int64",
                        show(t->name ? t->name : "").s, i, u);
        } else {
            out[i] = (int64_t)u;
        }
    }
    return AT_OK;
}

/* ------------------------------------------------------------ writing */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len <= n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len <= n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put_s(sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_i(sbuf *b, int64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof s, "%" PRId64, v);
    put(b, s, n > 0 ? (size_t)n : 0);
}

/* A JSON string literal; s is valid UTF-8, so only '"', '\\' and control
 * characters need escaping. */
static void put_json(sbuf *b, const char *s)
{
    put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, s, 1);
        }
    }
    put(b, "\"", 1);
}

/* Checks what st_parse will check, so that whatever st_write accepts reads
 * back; sets *total to the data size. */
static at_status check_out(const st_out *t, int n, const char *const *kv, int nmeta,
                           int64_t *total, char *err, size_t errlen)
{
    *total = 0;
    for (int i = 0; i < n; i++) {
        const st_out *o = &t[i];
        if (!o->name || !st_utf8_ok(o->name) || !strcmp(o->name, "__metadata__"))
            return fail(err, errlen, AT_E_ARG,
                        "tensor %d: name missing, not UTF-8, or \"__metadata__\"", i);
        if (!valid_dtype(o->dtype) || o->ndim < 0 || o->ndim > ST_MAX_DIMS)
            return fail(err, errlen, AT_E_ARG, "tensor '%s': bad dtype or ndim", show(o->name).s);
        int64_t numel = 1, size = (int64_t)dtypes[o->dtype].size;
        for (int d = 0; d < o->ndim; d++) {
            int64_t k = o->shape[d];
            if (k < 0 || k > MAX_EXACT || (k && numel > INT64_MAX / k))
                return fail(err, errlen, AT_E_ARG, "tensor '%s': bad shape", show(o->name).s);
            numel *= k;
        }
        if (numel > (MAX_EXACT - *total) / size)
            return fail(err, errlen, AT_E_ARG, "tensors hold more than 2^53 bytes");
        if (numel && !o->data)
            return fail(err, errlen, AT_E_ARG, "tensor '%s': no data", show(o->name).s);
        *total += numel * size;
    }
    for (int i = 0; i < 2 * nmeta; i++)
        if (!kv[i] || !st_utf8_ok(kv[i]))
            return fail(err, errlen, AT_E_ARG, "metadata string %d missing or not UTF-8", i);

    size_t most = (size_t)(n > nmeta ? n : nmeta);
    const char **v = malloc((most ? most : 1) * sizeof *v), *dup;
    if (!v)
        return fail(err, errlen, AT_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        v[i] = t[i].name;
    dup = first_dup(v, (size_t)n);
    at_status s = dup ? fail(err, errlen, AT_E_ARG, "tensor '%s' given twice", show(dup).s) : AT_OK;
    if (s == AT_OK) {
        for (int i = 0; i < nmeta; i++)
            v[i] = kv[2 * i];
        dup = first_dup(v, (size_t)nmeta);
        if (dup)
            s = fail(err, errlen, AT_E_ARG, "metadata key '%s' given twice", show(dup).s);
    }
    free(v);
    return s;
}

static size_t out_bytes(const st_out *o)
{
    size_t n = dtypes[o->dtype].size;
    for (int d = 0; d < o->ndim; d++)
        n *= (size_t)o->shape[d];
    return n;
}

static void build_header(sbuf *h, const st_out *t, int n, const char *const *kv, int nmeta)
{
    int64_t off = 0;
    put_s(h, "{");
    if (nmeta > 0) {
        put_s(h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            put_s(h, i ? "," : "");
            put_json(h, kv[2 * i]);
            put_s(h, ":");
            put_json(h, kv[2 * i + 1]);
        }
        put_s(h, "}");
    }
    for (int i = 0; i < n; i++) {
        put_s(h, i || nmeta > 0 ? "," : "");
        put_json(h, t[i].name);
        put_s(h, ":{\"dtype\":\"");
        put_s(h, dtypes[t[i].dtype].name);
        put_s(h, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            put_s(h, d ? "," : "");
            put_i(h, t[i].shape[d]);
        }
        put_s(h, "],\"data_offsets\":[");
        put_i(h, off);
        put_s(h, ",");
        off += (int64_t)out_bytes(&t[i]);
        put_i(h, off);
        put_s(h, "]}");
    }
    put_s(h, "}");
    /* 8 + header then ends on a multiple of 8: data aligned (once a put
     * has failed nothing grows, so stop) */
    while (!h->oom && h->len % 8 != 0)
        put_s(h, " ");
}

static at_status write_atomic(const char *path, const sbuf *h, const st_out *t, int n,
                              char *err, size_t errlen)
{
    file_out f;
    char msg[512];
    at_status s = file_out_begin(&f, path, msg, sizeof msg);
    if (s != AT_OK)
        return fail(err, errlen, s, "%s", msg);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h->len >> 8 * i);
    bool ok = fwrite(len8, 1, 8, f.fp) == 8 && fwrite(h->p, 1, h->len, f.fp) == h->len;
    for (int i = 0; i < n && ok; i++) {
        size_t nb = out_bytes(&t[i]);
        ok = !nb || fwrite(t[i].data, 1, nb, f.fp) == nb;
    }
    if (!ok) {
        int e = errno;
        fail(err, errlen, AT_E_IO, "cannot write the temporary file '%s': %s", f.tmp,
             strerror(e));
        file_out_abort(&f);
        return AT_E_IO;
    }
    s = file_out_commit(&f, msg, sizeof msg);
    return s == AT_OK ? AT_OK : fail(err, errlen, s, "%s", msg);
}

at_status st_write(const char *path, const st_out *t, int n, const char *const *meta_kv,
                   int nmeta, char *err, size_t errlen)
{
    if (!path || n < 0 || nmeta < 0 || (n > 0 && !t) || (nmeta > 0 && !meta_kv))
        return fail(err, errlen, AT_E_ARG, "st_write: bad arguments");
    int64_t total;
    at_status s = check_out(t, n, meta_kv, nmeta, &total, err, errlen);
    if (s != AT_OK)
        return s;
    sbuf h = {0};
    build_header(&h, t, n, meta_kv, nmeta);
    if (h.oom)
        s = fail(err, errlen, AT_E_NOMEM, "out of memory for the header");
    else if (h.len > MAX_HEADER)
        s = fail(err, errlen, AT_E_ARG, "header of %zu bytes is over the limit of %u", h.len,
                 MAX_HEADER);
    else
        s = write_atomic(path, &h, t, n, err, errlen);
    free(h.p);
    return s;
}
