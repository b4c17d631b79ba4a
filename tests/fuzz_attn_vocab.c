/* libFuzzer target for attn viz's vocabulary files and token parsing
 * (src/attn/cmd_viz.c): vocab_load reads the file, parse_seq turns --src or
 * --tgt text into ids of its tokens, parse_id reads --start/--end as an id or
 * a token.
 *   ./build-fuzz/tests/fuzz_attn_vocab -close_fd_mask=3 corpus/ tests/data/fuzz_attn_vocab/
 * Input: the --src text, a NUL byte, then the bytes of the vocabulary file
 * (written to a temporary file, as attn reads a path). Checks, besides
 * crashes and leaks: a loaded vocabulary has one token per line (without
 * the line's \n and one trailing \r) and no line twice (a repeated line is
 * refused); a failed load leaves it zeroed; the ids parse_seq gives are those
 * of the text's tokens (the line holding each); parse_id gives a number or
 * such an id. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_attn_vocab: check failed: %s\n", what);
        abort();
    }
}

static char path[4096];

/* Writes the temporary file (on tmpfs when there is one); it is removed as
 * soon as it is read, since libFuzzer ends a run with _Exit. */
static void put_file(const void *data, size_t size)
{
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/fuzz_attn_vocab.%ld.txt", dir && *dir ? dir : "/tmp",
                 (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    check(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "writing the vocabulary");
}

static bool is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

typedef struct span {
    const uint8_t *p;
    size_t len;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Whether two lines (without \n and one trailing \r) are equal: vocab_load
 * refuses such a file, naming both lines. */
static bool has_duplicate_lines(const uint8_t *file, size_t flen)
{
    size_t n = 0;
    for (size_t i = 0; i < flen; i++)
        n += file[i] == '\n';
    span *sp = malloc((n + 1) * sizeof *sp);
    check(sp != NULL, "out of memory");
    size_t k = 0;
    for (const uint8_t *line = file; line < file + flen;) {
        const uint8_t *nl = memchr(line, '\n', (size_t)(file + flen - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(file + flen - line);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        sp[k++] = (span){line, len};
        line = nl ? nl + 1 : file + flen;
    }
    qsort(sp, k, sizeof *sp, span_cmp);
    bool dup = false;
    for (size_t i = 1; i < k && !dup; i++)
        dup = span_cmp(&sp[i - 1], &sp[i]) == 0;
    free(sp);
    return dup;
}

static int first_line(const vocab *v, const char *tok, size_t len)
{
    for (int i = 0; i < v->n; i++)
        if (strlen(v->tok[i]) == len && !memcmp(v->tok[i], tok, len))
            return i;
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *text = malloc(tlen + 1);
    check(text != NULL, "out of memory");
    memcpy(text, data, tlen);
    text[tlen] = '\0';
    const uint8_t *file = nul ? nul + 1 : data + size;
    size_t flen = (size_t)(data + size - file);
    put_file(file, flen);

    vocab v;
    memset(&v, 0x55, sizeof v);
    int rc = vocab_load(&v, path, "fuzz");
    unlink(path);
    bool dup = flen > 0 && has_duplicate_lines(file, flen);
    if (rc != ATTN_OK) {
        static const vocab zero;
        check(!memcmp(&v, &zero, sizeof v), "a failed vocab_load leaves it zeroed");
        check(rc == ATTN_FAIL && (flen == 0 || memchr(file, 0, flen) || dup),
              "only an empty file, a NUL byte or a repeated line is refused");
        free(text);
        return 0;
    }
    check(flen > 0 && !memchr(file, 0, flen), "vocab_load refuses empty files and NUL bytes");
    check(!dup, "vocab_load refuses a repeated line");
    int lines = 0;
    for (size_t i = 0; i < flen; i++)
        lines += file[i] == '\n';
    lines += file[flen - 1] != '\n';
    check(v.n == lines, "one token per line");
    const uint8_t *line = file;
    for (int i = 0; i < v.n; i++) {
        const uint8_t *nl = memchr(line, '\n', (size_t)(file + flen - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(file + flen - line);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        check(strlen(v.tok[i]) == len && !memcmp(v.tok[i], line, len),
              "a token is its line without \\n and one trailing \\r");
        line = nl ? nl + 1 : file + flen;
    }

    /* parse_seq with the vocabulary: the text's tokens, by first line */
    int32_t *ids = NULL;
    int n = -1;
    rc = parse_seq(text, &v, "fuzz", "--src", &ids, &n);
    int k = 0;
    bool all_known = true;
    for (const char *p = text;;) {
        while (*p && is_sep(*p))
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && !is_sep(*e))
            e++;
        int id = first_line(&v, p, (size_t)(e - p));
        if (id < 0)
            all_known = false;
        else if (rc == ATTN_OK)
            check(k < n && ids[k] == id, "parse_seq: the id of each token, its first line");
        k++;
        p = e;
    }
    check((rc == ATTN_OK) == (all_known && k > 0), "parse_seq: tokens of the vocabulary");
    check(rc != ATTN_OK || n == k, "parse_seq: one id per token");
    check(rc == ATTN_OK || ids == NULL, "parse_seq: no ids on failure");
    free(ids);

    /* parse_id: a number first, else a token */
    int32_t id = -7;
    rc = parse_id(text, &v, "fuzz", "--start", &id);
    char *end;
    errno = 0;
    long long num = strtoll(text, &end, 10);
    bool is_num = *text && !*end && errno != ERANGE && num >= INT32_MIN && num <= INT32_MAX;
    int tok = first_line(&v, text, tlen);
    check((rc == ATTN_OK) == (is_num || tok >= 0), "parse_id: an id or a token");
    check(rc != ATTN_OK || id == (is_num ? (int32_t)num : tok), "parse_id: its value");
    vocab_free(&v);
    free(text);
    return 0;
}
