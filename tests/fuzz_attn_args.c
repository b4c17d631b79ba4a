/* libFuzzer target for the attn program's command-line parsing: the option
 * parser (args_parse, src/attn/args.c) over an option table of every kind,
 * then the id parsers its values go to: attn decode's --src rows
 * (parse_rows, cmd_decode.c) and, without a vocabulary, attn viz's --src/--tgt
 * ids and --start/--end (parse_seq, parse_id, cmd_viz.c).
 *   ./build-fuzz/tests/fuzz_attn_args -close_fd_mask=3 corpus/ tests/data/fuzz_attn_args/
 * Input: the arguments after the subcommand, separated by NUL bytes.
 * Checks, besides crashes: what args_parse stores is what its table allows
 * (ranges, whole numbers, finite, non-empty strings that are arguments);
 * a parsed batch has the shape and ids parse_rows promises; parse_seq and
 * parse_id agree with strtoll on what an id is. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_attn_args: check failed: %s\n", what);
        abort();
    }
}

enum { MAXARGS = 64 };

static bool is_arg(char **argv, int argc, const char *p)
{
    for (int i = 1; i < argc; i++)
        if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
            return true;
    return false;
}

/* An id as parse_seq without a vocabulary and parse_rows read one: what
 * strtoll reads whole, 0 .. INT32_MAX. */
static bool id_of(const char *s, size_t n, int32_t *out)
{
    char *z = malloc(n + 1), *end;
    check(z != NULL, "out of memory");
    memcpy(z, s, n);
    z[n] = '\0';
    errno = 0;
    long long v = strtoll(z, &end, 10);
    bool ok = n > 0 && end == z + n && errno != ERANGE && v >= 0 && v <= INT32_MAX;
    free(z);
    *out = ok ? (int32_t)v : -1;
    return ok;
}

/* The pieces of text between separators: their number; each in
 * piece[i] .. piece[i] + plen[i] (up to max). */
static int split(const char *text, const char *seps, const char **piece, size_t *plen, int max)
{
    int n = 0;
    for (const char *p = text;;) {
        while (*p && strchr(seps, *p))
            p++;
        if (!*p)
            return n;
        const char *e = p;
        while (*e && !strchr(seps, *e))
            e++;
        if (n < max)
            piece[n] = p, plen[n] = (size_t)(e - p);
        n++;
        p = e;
    }
}

enum { MAXPIECES = 1 << 16 };
static const char *piece[MAXPIECES];
static size_t plen[MAXPIECES];

/* parse_rows against a reference: each row split at commas and white space,
 * every piece an id; B rows, S the longest, shorter rows filled with pad,
 * refused with a negative pad when lengths differ. */
static void rows(const opt_list *l, int pad)
{
    int32_t *ids = NULL;
    int B = -1, S = -1;
    int rc = parse_rows(l, pad, &ids, &B, &S);
    bool ok = true;
    int longest = 0, shortest = INT_MAX;
    for (int r = 0; r < l->n && ok; r++) {
        int n = split(l->v[r], ", \t\n\v\f\r", piece, plen, MAXPIECES);
        ok = n > 0 && n <= MAXPIECES;
        for (int i = 0; ok && i < n; i++) {
            int32_t v;
            ok = id_of(piece[i], plen[i], &v);
        }
        longest = n > longest ? n : longest;
        shortest = n < shortest ? n : shortest;
    }
    ok = ok && (pad >= 0 || longest == shortest);
    check((rc == ATTN_OK) == ok, "parse_rows: accepts what the reference accepts");
    if (rc != ATTN_OK) {
        check(rc == ATTN_USAGE, "parse_rows: a usage error");
        return;
    }
    check(ids != NULL && B == l->n && S == longest, "parse_rows: the batch's shape");
    for (int r = 0; r < B; r++) {
        int n = split(l->v[r], ", \t\n\v\f\r", piece, plen, MAXPIECES);
        for (int i = 0; i < S; i++) {
            int32_t want = pad;
            if (i < n)
                id_of(piece[i], plen[i], &want);
            check(ids[(size_t)r * S + i] == want, "parse_rows: the ids, then the pad");
        }
    }
    free(ids);
}

/* parse_seq without a vocabulary: ids separated by white space or commas. */
static void seq(const char *text)
{
    static const vocab none;
    int32_t *ids = NULL;
    int n = -1;
    int rc = parse_seq(text, &none, "fuzz", "--src", &ids, &n);
    int want = split(text, " \t\n\r,", piece, plen, MAXPIECES);
    bool ok = want > 0 && want <= MAXPIECES;
    for (int i = 0; ok && i < want; i++) {
        int32_t v;
        ok = id_of(piece[i], plen[i], &v);
    }
    check((rc == ATTN_OK) == ok, "parse_seq: ids are what strtoll reads, 0 .. INT32_MAX");
    if (rc == ATTN_OK) {
        check(ids != NULL && n == want, "parse_seq: one id per piece");
        for (int i = 0; i < n; i++) {
            int32_t v;
            id_of(piece[i], plen[i], &v);
            check(ids[i] == v, "parse_seq: the ids");
        }
    } else {
        check(rc == ATTN_USAGE && ids == NULL, "parse_seq: no ids on failure");
    }
    free(ids);
}

/* parse_id without a vocabulary: any int32 strtoll reads whole. */
static void one_id(const char *s)
{
    static const vocab none;
    int32_t id = 0;
    int rc = parse_id(s, &none, "fuzz", "--start", &id);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    bool ok = *s && !*end && errno != ERANGE && v >= INT32_MIN && v <= INT32_MAX;
    check((rc == ATTN_OK) == ok, "parse_id: an id is an int32 strtoll reads whole");
    check(!ok || id == (int32_t)v, "parse_id: its value");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    check(buf != NULL, "out of memory");
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAXARGS + 2];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (char *p = buf; size > 0 && argc <= MAXARGS && p <= buf + size; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;

    const char *model = NULL, *tgt = NULL, *start = NULL;
    int heads = 0, pad = 0, max_len = 0;
    double dropout = 0.1, lr = 0.5;
    bool quiet = false;
    static opt_list src;   /* 32 KB: off the stack */
    src.n = 0;
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"heads", OPT_INT, &heads, 1, 4096, false},
        {"src", OPT_LIST, &src, 0, 0, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"max-len", OPT_INT, &max_len, 1, 100000, false},
        {"dropout", OPT_NUM, &dropout, 0, 0.999, false},
        {"lr", OPT_NUM, &lr, 0, 1e6, false},
        {"quiet", OPT_FLAG, &quiet, 0, 0, false},
        {"tgt", OPT_STR, &tgt, 0, 0, false},
        {"start", OPT_STR, &start, 0, 0, false},
    };
    char *pos[2] = {NULL, NULL};
    int npos = -1;
    int r = args_parse(argc, argv, opts, (int)(sizeof opts / sizeof *opts), pos, 2, &npos);
    check(r == ARGS_OK || r == ARGS_HELP || r == ARGS_ERROR, "args_parse: its results");
    if (r == ARGS_OK) {
        check(npos >= 0 && npos <= 2, "args_parse: positionals within maxpos");
        for (int i = 0; i < npos; i++)
            check(is_arg(argv, argc, pos[i]), "args_parse: positionals are arguments");
        check(!opts[0].seen || (*model && is_arg(argv, argc, model)),
              "args_parse: a string is a non-empty piece of an argument");
        check(!opts[1].seen || (heads >= 1 && heads <= 4096), "args_parse: int range");
        check(!opts[4].seen || (max_len >= 1 && max_len <= 100000), "args_parse: int range");
        check(isfinite(dropout) && dropout >= 0 && dropout <= 0.999, "args_parse: number range");
        check(isfinite(lr) && lr >= 0 && lr <= 1e6, "args_parse: number range");
        check(src.n <= argc - 1, "args_parse: list entries are arguments");
        for (int i = 0; i < src.n; i++)
            check(*src.v[i] && is_arg(argv, argc, src.v[i]), "args_parse: list entries");
        check(opts[7].seen == quiet, "args_parse: a flag is set when seen");
        if (src.n > 0)
            rows(&src, pad);
        if (tgt)
            seq(tgt);
        if (start)
            one_id(start);
    }
    free(buf);
    return 0;
}
