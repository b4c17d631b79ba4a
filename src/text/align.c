/* libat_text: word alignments against gold links (the group "align" of
 * at_text.h; docs/alignment.md). Links and their scores, pieces to words,
 * and the evaluation object behind attn align-eval and libat.align: line
 * pairs in, padded batches out, the model's maps back in, counts summed over
 * lines. It never calls libat: the caller runs the model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "text_internal.h"

/* ---------------------------------------------------------------- links */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

AT_TEXT_API at_status at_align_words(const char *text, size_t len, int32_t *words)
{
    if ((!text && len) || !words)
        return text_fail(AT_E_ARG, "at_align_words: %s is NULL", words ? "text" : "words");
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += !is_blank(text[i]) && (i == 0 || is_blank(text[i - 1]));
    if (n > INT32_MAX)
        return text_fail(AT_E_RANGE, "at_align_words: more than %d words", INT32_MAX);
    *words = (int32_t)n;
    return AT_OK;
}

/* A whole number of 1 to 6 digits at *s (advanced past all the digits);
 * -1 if there is none or it is longer. */
static long number(const char **s, const char *end)
{
    long v = 0;
    int d = 0;
    for (; *s < end && **s >= '0' && **s <= '9'; (*s)++, d++)
        if (d < 7)
            v = v * 10 + (**s - '0');
    return d == 0 || d > 6 ? -1 : v;
}

/* The link of the token at *s (advanced past it): 1 on success, 0 for a
 * token that is not i-j or i?j (*bad_end marks its end), -1 for a link
 * beyond the words (message set). */
static int parse_one(const char **s, const char *end, int32_t sw, int32_t tw,
                     at_align_link *out, const char **bad_end)
{
    const char *p = *s;
    long i = number(&p, end), j = -1;
    char sep = p < end ? *p : 0;
    if (i >= 0 && (sep == '-' || sep == '?')) {
        p++;
        j = number(&p, end);
    }
    if (i < 0 || j < 0 || (p < end && !is_blank(*p))) {
        while (p < end && !is_blank(*p))
            p++;
        *bad_end = p;
        return 0;
    }
    *s = p;
    if (i >= sw || j >= tw) {
        text_fail(AT_E_FORMAT, "link %ld%c%ld is beyond the line's words (%d source, %d "
                  "target)", i, sep, j, (int)sw, (int)tw);
        return -1;
    }
    *out = (at_align_link){(int32_t)i, (int32_t)j, sep == '-'};
    return 1;
}

/* The parser behind at_align_parse and the files: messages without a
 * function's name (the callers add where). */
static at_status parse_links(const char *line, size_t len, int32_t sw, int32_t tw,
                             at_align_link *out, size_t cap, size_t *n)
{
    const char *s = line, *end = line + len;
    size_t k = 0;
    while (s < end) {
        while (s < end && is_blank(*s))
            s++;
        if (s >= end)
            break;
        const char *tok = s, *bad = s;
        at_align_link l;
        int r = parse_one(&s, end, sw, tw, &l, &bad);
        if (r == 0) {
            int show = bad - tok < 40 ? (int)(bad - tok) : 40;
            return text_fail(AT_E_FORMAT, "'%.*s' is not a link i-j (or i?j; 0-based word "
                             "numbers)", show, tok);
        }
        if (r < 0)
            return AT_E_FORMAT;
        if (out && k < cap)
            out[k] = l;
        k++;
    }
    *n = k;
    if (out && k > cap)
        return text_fail(AT_E_RANGE, "%zu links, room for %zu", k, cap);
    return AT_OK;
}

/* Prefixes the message of the last failure with "who: where" and returns s. */
static at_status with_where(at_status s, const char *who, const char *where)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", at_text_errmsg());
    return text_fail(s, "%s: %s%s%s", who, where, *where ? ": " : "", msg);
}

AT_TEXT_API at_status at_align_parse(const char *line, size_t len, int32_t src_words,
                                     int32_t tgt_words, at_align_link *out, size_t cap,
                                     size_t *n)
{
    if ((!line && len) || !n)
        return text_fail(AT_E_ARG, "at_align_parse: %s is NULL", n ? "line" : "n");
    if (src_words < 0 || tgt_words < 0)
        return text_fail(AT_E_ARG, "at_align_parse: negative word counts (%d, %d)",
                         (int)src_words, (int)tgt_words);
    at_status s = parse_links(line ? line : "", len, src_words, tgt_words, out, cap, n);
    return s == AT_OK ? AT_OK : with_where(s, "at_align_parse", "");
}

/* ---------------------------------------------------------------- scores */

static int cmp_link(const void *a, const void *b)
{
    const at_align_link *x = a, *y = b;
    if (x->tgt != y->tgt)
        return (x->tgt > y->tgt) - (x->tgt < y->tgt);
    return (x->src > y->src) - (x->src < y->src);
}

/* Sorts l by (tgt, src) and removes duplicates, a duplicate's sure flag
 * kept if any copy has it; returns the count left. */
static size_t sort_unique(at_align_link *l, size_t n)
{
    if (n == 0)
        return 0;
    qsort(l, n, sizeof *l, cmp_link);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        if (cmp_link(&l[i], &l[k]) == 0)
            l[k].sure |= l[i].sure;
        else
            l[++k] = l[i];
    }
    return k + 1;
}

static at_status check_links(const char *who, const char *what, const at_align_link *l, size_t n,
                             int32_t sw, int32_t tw)
{
    for (size_t k = 0; k < n; k++)
        if (l[k].src < 0 || l[k].src >= sw || l[k].tgt < 0 || l[k].tgt >= tw)
            return text_fail(AT_E_RANGE, "%s: %s link %zu (%d-%d) is outside the words (%d "
                             "source, %d target)", who, what, k, (int)l[k].src, (int)l[k].tgt,
                             (int)sw, (int)tw);
    return AT_OK;
}

/* Whether the sorted gold links g[0..n) have one on target word j. */
static bool has_target(const at_align_link *g, size_t n, int32_t j)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g[mid].tgt < j)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && g[lo].tgt == j;
}

/* Adds the scores of sorted, unique links: h against g. */
static void count_sorted(at_align_counts *c, const at_align_link *g, size_t ng,
                         const at_align_link *h, size_t nh)
{
    for (size_t k = 0; k < ng; k++)
        c->sure += g[k].sure;
    for (size_t k = 0; k < nh; k++) {
        if (!has_target(g, ng, h[k].tgt))
            continue;
        c->hyp++;
        const at_align_link *m = bsearch(&h[k], g, ng, sizeof *g, cmp_link);
        c->hit_sure += m && m->sure;
        c->hit_possible += m != NULL;
    }
}

/* Scores copies of the links in buf (room for ng + nh links). */
static void score_in(at_align_counts *c, const at_align_link *gold, size_t ng,
                     const at_align_link *hyp, size_t nh, at_align_link *buf)
{
    at_align_link *g = buf, *h = buf + ng;
    if (ng)
        memcpy(g, gold, ng * sizeof *g);
    if (nh)
        memcpy(h, hyp, nh * sizeof *h);
    size_t ug = sort_unique(g, ng), uh = sort_unique(h, nh);
    count_sorted(c, g, ug, h, uh);
}

/* at_align_score without the argument checks. */
static at_status score_links(at_align_counts *c, const at_align_link *gold, size_t ng,
                             const at_align_link *hyp, size_t nh)
{
    at_align_link *buf = malloc((ng + nh + 1) * sizeof *buf);
    if (!buf)
        return text_fail(AT_E_NOMEM, "out of memory (%zu links)", ng + nh);
    score_in(c, gold, ng, hyp, nh, buf);
    free(buf);
    return AT_OK;
}

AT_TEXT_API at_status at_align_score(at_align_counts *counts, const at_align_link *gold,
                                     size_t n_gold, const at_align_link *hyp, size_t n_hyp,
                                     int32_t src_words, int32_t tgt_words)
{
    const char *who = "at_align_score";
    if (!counts || (!gold && n_gold) || (!hyp && n_hyp))
        return text_fail(AT_E_ARG, "%s: %s is NULL", who,
                         !counts ? "counts" : !gold && n_gold ? "gold" : "hyp");
    if (n_gold > (SIZE_MAX / sizeof *gold) / 2 || n_hyp > (SIZE_MAX / sizeof *hyp) / 2)
        return text_fail(AT_E_ARG, "%s: too many links", who);
    at_status s = check_links(who, "gold", gold, n_gold, src_words, tgt_words);
    if (s == AT_OK)
        s = check_links(who, "proposed", hyp, n_hyp, src_words, tgt_words);
    if (s == AT_OK && (s = score_links(counts, gold, n_gold, hyp, n_hyp)) != AT_OK)
        with_where(s, who, "");
    return s;
}

static double aer_of(const at_align_counts *c)
{
    int64_t d = c->hyp + c->sure;
    return d ? 1.0 - (double)(c->hit_sure + c->hit_possible) / (double)d : 1.0;
}

AT_TEXT_API at_status at_align_rates(const at_align_counts *c, double *aer, double *precision,
                                     double *recall)
{
    if (!c)
        return text_fail(AT_E_ARG, "at_align_rates: counts is NULL");
    if (c->hyp < 0 || c->sure < 0 || c->hit_sure < 0 || c->hit_possible < 0)
        return text_fail(AT_E_ARG, "at_align_rates: a negative count");
    if (aer)
        *aer = aer_of(c);
    if (precision)
        *precision = c->hyp ? (double)c->hit_possible / (double)c->hyp : 0.0;
    if (recall)
        *recall = c->sure ? (double)c->hit_sure / (double)c->sure : 0.0;
    return AT_OK;
}

/* ---------------------------------------------------------------- pieces and words */

/* The word map without checks but the ids' range. */
static at_status word_map(const at_tokenizer *t, const int32_t *ids, size_t n, int32_t *word,
                          int32_t *words)
{
    int32_t w = -1, vocab = at_tokenizer_vocab_size(t);
    for (size_t k = 0; k < n; k++) {
        word[k] = -1;
        if (ids[k] == AT_TOK_BOS_ID || ids[k] == AT_TOK_EOS_ID)
            continue;
        if (ids[k] < 0 || ids[k] >= vocab)
            return text_fail(AT_E_RANGE, "id %d at position %zu is outside the vocabulary "
                             "(0..%d)", (int)ids[k], k, (int)vocab - 1);
        const char *p = "";
        if (at_tokenizer_piece(t, ids[k], &p) != AT_OK)
            p = "";
        /* U+2581 (▁) is SentencePiece's mark of a preceding space */
        if (w < 0 || strncmp(p, "\xe2\x96\x81", 3) == 0)
            w++;
        word[k] = w;
    }
    *words = w + 1;
    return AT_OK;
}

AT_TEXT_API at_status at_align_word_map(const at_tokenizer *t, const int32_t *ids, size_t n,
                                        int32_t *word, int32_t *words)
{
    if (!t || (!ids && n) || (!word && n) || !words)
        return text_fail(AT_E_ARG, "at_align_word_map: %s is NULL",
                         !t ? "the tokenizer" : !words ? "words" : !ids ? "ids" : "word");
    if (n > INT32_MAX)
        return text_fail(AT_E_ARG, "at_align_word_map: %zu ids, more than %d", n, INT32_MAX);
    at_status s = word_map(t, ids, n, word, words);
    return s == AT_OK ? AT_OK : with_where(s, "at_align_word_map", "");
}

/* at_align_pool without the checks. */
static void pool(double *out, int32_t tw, int32_t sw, const float *map, int64_t rs, int64_t cs,
                 int32_t rows, int32_t cols, const int32_t *tword, const int32_t *sword,
                 int32_t *count)
{
    memset(out, 0, (size_t)tw * (size_t)sw * sizeof *out);
    memset(count, 0, (size_t)tw * sizeof *count);
    for (int32_t r = 0; r < rows; r++) {
        int32_t j = tword[r];
        if (j < 0)
            continue;
        count[j]++;
        const float *row = map + (int64_t)r * rs;
        for (int32_t c = 0; c < cols; c++)
            if (sword[c] >= 0)
                out[(size_t)j * sw + sword[c]] += row[(int64_t)c * cs];
    }
    for (int32_t j = 0; j < tw; j++)
        for (int32_t i = 0; count[j] > 0 && i < sw; i++)
            out[(size_t)j * sw + i] /= count[j];
}

static at_status check_words(const char *who, const char *what, const int32_t *w, int32_t n,
                             int32_t words)
{
    for (int32_t k = 0; k < n; k++)
        if (w[k] < -1 || w[k] >= words)
            return text_fail(AT_E_RANGE, "%s: %s[%d] is %d, not -1 .. %d", who, what, (int)k,
                             (int)w[k], (int)words - 1);
    return AT_OK;
}

AT_TEXT_API at_status at_align_pool(double *out, int32_t tgt_words, int32_t src_words,
                                    const float *map, int64_t row_stride, int64_t col_stride,
                                    int32_t rows, int32_t cols, const int32_t *tgt_word,
                                    const int32_t *src_word)
{
    const char *who = "at_align_pool";
    if (tgt_words < 0 || src_words < 0 || rows < 0 || cols < 0)
        return text_fail(AT_E_ARG, "%s: a negative size", who);
    if ((!out && tgt_words && src_words) || (!map && rows && cols) || (!tgt_word && rows) ||
        (!src_word && cols))
        return text_fail(AT_E_ARG, "%s: a NULL pointer", who);
    at_status s = check_words(who, "tgt_word", tgt_word, rows, tgt_words);
    if (s == AT_OK)
        s = check_words(who, "src_word", src_word, cols, src_words);
    if (s != AT_OK)
        return s;
    int32_t *count = malloc(((size_t)tgt_words + 1) * sizeof *count);
    if (!count)
        return text_fail(AT_E_NOMEM, "%s: out of memory", who);
    pool(out, tgt_words, src_words, map, row_stride, col_stride, rows, cols, tgt_word,
         src_word, count);
    free(count);
    return AT_OK;
}

/* One link per target word to its row's largest entry (the first on ties). */
static size_t argmax_links(at_align_link *out, const double *map, int32_t tw, int32_t sw)
{
    size_t n = 0;
    for (int32_t j = 0; j < tw && sw > 0; j++) {
        const double *row = map + (size_t)j * sw;
        int32_t best = 0;
        for (int32_t i = 1; i < sw; i++)
            best = row[i] > row[best] ? i : best;
        out[n++] = (at_align_link){best, j, 1};
    }
    return n;
}

AT_TEXT_API at_status at_align_argmax(at_align_link *out, size_t *n, const double *map,
                                      int32_t tgt_words, int32_t src_words)
{
    if (tgt_words < 0 || src_words < 0)
        return text_fail(AT_E_ARG, "at_align_argmax: a negative size");
    if (!n || ((!out || !map) && tgt_words && src_words))
        return text_fail(AT_E_ARG, "at_align_argmax: a NULL pointer");
    *n = argmax_links(out, map, tgt_words, src_words);
    return AT_OK;
}

/* ---------------------------------------------------------------- files of lines */

/* A text file split into lines: \n ends a line, a \r before it is dropped,
 * a last line without \n counts. */
typedef struct lines {
    char *buf;
    size_t n;
    const char **v;
    size_t *len;
} lines;

static void lines_free(lines *l)
{
    free(l->buf);
    free(l->v);
    free(l->len);
    memset(l, 0, sizeof *l);
}

static at_status lines_read(const char *path, lines *out)
{
    char err[1024];
    unsigned char *d = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    at_status s = file_read_all(path, (size_t)1 << 30, &d, &len, err, sizeof err);
    if (s != AT_OK)
        return text_fail(s, "%s", err);
    char *b = (char *)d;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += b[i] == '\n';
    n += len > 0 && b[len - 1] != '\n';
    out->buf = b;
    out->n = n;
    out->v = malloc((n + 1) * sizeof *out->v);
    out->len = malloc((n + 1) * sizeof *out->len);
    if (!out->v || !out->len) {
        lines_free(out);
        return text_fail(AT_E_NOMEM, "out of memory for the %zu lines of %s", n, path);
    }
    char *p = b, *end = b + len;
    for (size_t k = 0; k < n; k++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t m = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (m > 0 && p[m - 1] == '\r')
            m--;
        out->v[k] = p;
        out->len[k] = m;
        p = nl ? nl + 1 : end;
    }
    return AT_OK;
}

/* Checks that every line of a sentence file is text a tokenizer takes. */
static at_status check_sentences(const char *path, const lines *l)
{
    if (l->n == 0)
        return text_fail(AT_E_FORMAT, "%s is empty: no line to align", path);
    for (size_t k = 0; k < l->n; k++) {
        const unsigned char *s = (const unsigned char *)l->v[k];
        size_t bad = utf8_invalid_at(s, l->len[k]);
        if (bad < l->len[k])
            return text_fail(AT_E_FORMAT, "%s line %zu is not valid UTF-8 (byte %zu, 0x%02x)",
                             path, k + 1, bad + 1, (unsigned)s[bad]);
        if (memchr(s, '\0', l->len[k]))
            return text_fail(AT_E_FORMAT, "%s line %zu holds a NUL byte", path, k + 1);
        int32_t w = 0;
        at_align_words(l->v[k], l->len[k], &w);
        if (w == 0)
            return text_fail(AT_E_FORMAT, "%s line %zu is empty; give one sentence per line",
                             path, k + 1);
    }
    return AT_OK;
}

/* The links of every line of a file, parsed against the words of a corpus. */
typedef struct link_file {
    at_align_link *all;   /* every line's links, one after the other */
    size_t *start;        /* n + 1 offsets into all */
    int32_t *sw, *tw;     /* the words of each line pair */
    size_t n;
} link_file;

static void link_file_free(link_file *f)
{
    free(f->all);
    free(f->start);
    free(f->sw);
    free(f->tw);
    memset(f, 0, sizeof *f);
}

static at_status link_file_read(const char *path, const lines *src, const lines *tgt,
                                link_file *out)
{
    memset(out, 0, sizeof *out);
    lines l;
    at_status s = lines_read(path, &l);
    if (s != AT_OK)
        return s;
    if (l.n != src->n) {
        s = text_fail(AT_E_FORMAT, "%s has %zu line%s but the corpus has %zu; they must match "
                      "line by line", path, l.n, l.n == 1 ? "" : "s", src->n);
        lines_free(&l);
        return s;
    }
    size_t total = 0;
    for (size_t k = 0; k < l.n; k++)
        total += l.len[k] / 3 + 1;
    out->n = l.n;
    out->all = malloc((total + 1) * sizeof *out->all);
    out->start = malloc((l.n + 1) * sizeof *out->start);
    out->sw = malloc((l.n + 1) * sizeof *out->sw);
    out->tw = malloc((l.n + 1) * sizeof *out->tw);
    if (!out->all || !out->start || !out->sw || !out->tw)
        s = text_fail(AT_E_NOMEM, "out of memory for the links of %s", path);
    size_t at = 0;
    for (size_t k = 0; s == AT_OK && k < l.n; k++) {
        size_t got = 0;
        out->start[k] = at;
        at_align_words(src->v[k], src->len[k], &out->sw[k]);
        at_align_words(tgt->v[k], tgt->len[k], &out->tw[k]);
        s = parse_links(l.v[k], l.len[k], out->sw[k], out->tw[k], out->all + at, total - at,
                        &got);
        if (s != AT_OK) {
            char where[64];
            snprintf(where, sizeof where, " line %zu: ", k + 1);
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", at_text_errmsg());
            s = text_fail(s, "%s%s%s", path, where, msg);
        }
        at += got;
    }
    if (s == AT_OK)
        out->start[l.n] = at;
    lines_free(&l);
    if (s != AT_OK)
        link_file_free(out);
    return s;
}

/* DIR/SPLIT.EXT, malloc'd (NULL when out of memory). */
static char *split_path(const char *dir, const char *split, const char *ext)
{
    size_t n = strlen(dir) + strlen(split) + strlen(ext) + 3;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s.%s", dir, *dir && dir[strlen(dir) - 1] != '/' ? "/" : "",
                 split, ext);
    return p;
}

/* A corpus folder's split: its sentences and gold links, all checked. */
typedef struct corpus {
    lines src, tgt;
    link_file gold;
} corpus;

static void corpus_free(corpus *c)
{
    lines_free(&c->src);
    lines_free(&c->tgt);
    link_file_free(&c->gold);
}

static at_status check_split(const char *dir, const char *split)
{
    if (!dir || !split)
        return text_fail(AT_E_ARG, "%s is NULL", dir ? "split" : "dir");
    if (!*split || strlen(split) > 200 || strchr(split, '/'))
        return text_fail(AT_E_ARG, "'%.200s' is not a split name such as train, valid or test",
                         split);
    return AT_OK;
}

static at_status corpus_read(const char *dir, const char *split, corpus *c)
{
    memset(c, 0, sizeof *c);
    at_status s = check_split(dir, split);
    if (s != AT_OK)
        return s;
    char *ps = split_path(dir, split, "src"), *pt = split_path(dir, split, "tgt");
    char *pa = split_path(dir, split, "align");
    s = ps && pt && pa ? AT_OK : text_fail(AT_E_NOMEM, "out of memory");
    if (s == AT_OK && (s = lines_read(ps, &c->src)) == AT_OK)
        s = check_sentences(ps, &c->src);
    if (s == AT_OK && (s = lines_read(pt, &c->tgt)) == AT_OK)
        s = check_sentences(pt, &c->tgt);
    if (s == AT_OK && c->tgt.n != c->src.n)
        s = text_fail(AT_E_FORMAT, "%s has %zu lines but %s.tgt has %zu", ps, c->src.n, split,
                      c->tgt.n);
    if (s == AT_OK)
        s = link_file_read(pa, &c->src, &c->tgt, &c->gold);
    free(ps);
    free(pt);
    free(pa);
    if (s != AT_OK)
        corpus_free(c);
    return s;
}

AT_TEXT_API at_status at_align_score_files(const char *dir, const char *split,
                                           const char *hyp_path, int64_t limit,
                                           at_align_counts *out, int64_t *lines_out)
{
    const char *who = "at_align_score_files";
    if (!hyp_path || !out)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, out ? "hyp_path" : "out");
    if (limit < 0)
        return text_fail(AT_E_ARG, "%s: limit %lld is negative", who, (long long)limit);
    corpus c;
    link_file h;
    at_status s = corpus_read(dir, split, &c);
    if (s != AT_OK)
        return with_where(s, who, "");
    if ((s = link_file_read(hyp_path, &c.src, &c.tgt, &h)) != AT_OK) {
        corpus_free(&c);
        return with_where(s, who, "");
    }
    size_t n = limit > 0 && (uint64_t)limit < c.src.n ? (size_t)limit : c.src.n;
    at_align_counts sum = {0, 0, 0, 0};
    for (size_t k = 0; s == AT_OK && k < n; k++)
        s = score_links(&sum, c.gold.all + c.gold.start[k], c.gold.start[k + 1] - c.gold.start[k],
                        h.all + h.start[k], h.start[k + 1] - h.start[k]);
    link_file_free(&h);
    corpus_free(&c);
    if (s != AT_OK)
        return with_where(s, who, "");
    *out = sum;
    if (lines_out)
        *lines_out = (int64_t)n;
    return AT_OK;
}

/* ---------------------------------------------------------------- the evaluation */

/* One line pair waiting for (or in) a batch. */
typedef struct pair {
    int64_t line;
    int32_t *src, *ys;           /* <s> pieces </s> */
    int32_t src_len, ys_len;
    int32_t *sword, *tword;      /* the word of each id (-1: <s>, </s>) */
    int32_t sw, tw;
    at_align_link *gold;
    size_t n_gold;
} pair;

/* The methods' counts, in the order of at_align_eval_sums. */
enum { M_AVERAGE, M_ROLLOUT, M_VNORM, M_ATTRIB, M_FIXED };

struct at_align_eval {
    atomic_flag busy;
    at_tokenizer *stok, *ttok;
    int32_t layers, heads, max_len;
    int64_t added;                       /* line pairs given, for messages */
    int64_t tally[4];                    /* lines scored, truncated, pieces, no_links */
    at_align_counts *head, *layer;       /* [layers * heads], [layers] */
    at_align_counts fixed[M_FIXED];
    pair *q;                             /* waiting pairs q[qhead .. qn) */
    size_t qn, qcap, qhead;
    /* the current batch: its pairs, ids and what has been fed */
    pair *b;
    int32_t rows, S, T;
    int32_t *bsrc, *btgt, *bys;
    int64_t *blines;
    int32_t fed_attn, fed_vn, fed_grad, fed_roll;
    double **amap;                       /* per row: the mean over all heads (word map) */
    float *vn, *rel;                     /* (rows, T, S): value norms, grad x attn */
    bool complete;                       /* every input fed: the lines are counted */
    double *scratch;                     /* two word maps of the largest row */
    int32_t *count;                      /* pool's rows per target word */
    at_align_link *links;                /* one scoring's copies of its links (lcap), */
    size_t lcap;                         /* then the proposed links (lcap) */
};

static void pair_free(pair *p)
{
    free(p->src);
    free(p->ys);
    free(p->sword);
    free(p->tword);
    free(p->gold);
    memset(p, 0, sizeof *p);
}

/* Ends the current batch: frees its pairs and buffers. */
static void batch_clear(at_align_eval *e)
{
    for (int32_t r = 0; e->b && r < e->rows; r++) {
        pair_free(&e->b[r]);
        free(e->amap[r]);
    }
    free(e->b);
    free(e->amap);
    free(e->bsrc);
    free(e->btgt);
    free(e->bys);
    free(e->blines);
    free(e->vn);
    free(e->rel);
    free(e->scratch);
    free(e->count);
    free(e->links);
    e->links = NULL;
    e->complete = false;
    e->b = NULL;
    e->amap = NULL;
    e->bsrc = e->btgt = e->bys = NULL;
    e->blines = NULL;
    e->vn = e->rel = NULL;
    e->scratch = NULL;
    e->count = NULL;
    e->rows = e->S = e->T = 0;
    e->fed_attn = e->fed_vn = e->fed_grad = e->fed_roll = 0;
}

AT_TEXT_API at_status at_align_eval_create(at_align_eval **out, at_tokenizer *src,
                                           at_tokenizer *tgt, int32_t layers, int32_t heads,
                                           int32_t max_len)
{
    const char *who = "at_align_eval_create";
    if (out)
        *out = NULL;
    if (!out || !src || !tgt)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who,
                         !out ? "out" : !src ? "the source tokenizer" : "the target tokenizer");
    if (layers < 1 || layers > 4096 || heads < 1 || heads > 4096)
        return text_fail(AT_E_ARG, "%s: %d layers of %d heads; each must be 1 .. 4096", who,
                         (int)layers, (int)heads);
    if (max_len < 2 || max_len > 1 << 24)
        return text_fail(AT_E_ARG, "%s: max_len %d is not 2 .. 2^24", who, (int)max_len);
    at_align_eval *e = calloc(1, sizeof *e);
    if (e) {
        e->head = calloc((size_t)layers * heads, sizeof *e->head);
        e->layer = calloc((size_t)layers, sizeof *e->layer);
    }
    if (!e || !e->head || !e->layer) {
        at_align_eval_free(e);
        return text_fail(AT_E_NOMEM, "%s: out of memory", who);
    }
    atomic_flag_clear(&e->busy);
    e->stok = src;
    e->ttok = tgt;
    e->layers = layers;
    e->heads = heads;
    e->max_len = max_len;
    *out = e;
    return AT_OK;
}

AT_TEXT_API void at_align_eval_free(at_align_eval *e)
{
    if (!e)
        return;
    batch_clear(e);
    for (size_t k = e->qhead; e->q && k < e->qn; k++)
        pair_free(&e->q[k]);
    free(e->q);
    free(e->head);
    free(e->layer);
    free(e);
}

/* <s> pieces </s> of text into *ids (malloc'd); *cut when it has more than
 * max ids (as attn's nmt_encode, which cuts: here the pair is left out). */
static at_status encode(at_tokenizer *t, const char *text, size_t len, int32_t max,
                        int32_t **ids, int32_t *n, bool *cut)
{
    const int32_t *p = NULL;
    size_t k = 0;
    at_status s = at_tokenizer_encode(t, len ? text : "", len, &p, &k);
    if (s != AT_OK)
        return s;
    *cut = k + 2 > (size_t)max;
    if (*cut)
        return AT_OK;
    *ids = malloc((k + 2) * sizeof **ids);
    if (!*ids)
        return text_fail(AT_E_NOMEM, "out of memory");
    (*ids)[0] = AT_TOK_BOS_ID;
    if (k)
        memcpy(*ids + 1, p, k * sizeof **ids);
    (*ids)[k + 1] = AT_TOK_EOS_ID;
    *n = (int32_t)k + 2;
    return AT_OK;
}

static bool queue_push(at_align_eval *e, pair *p)
{
    if (e->qhead > 0 && e->qhead == e->qn)
        e->qhead = e->qn = 0;
    if (e->qn == e->qcap) {
        size_t cap = e->qcap ? e->qcap * 2 : 64;
        pair *q = realloc(e->q, cap * sizeof *q);
        if (!q)
            return false;
        e->q = q;
        e->qcap = cap;
    }
    e->q[e->qn++] = *p;
    return true;
}

/* Encodes one pair whose links are parsed (p->gold, sw, tw set) and queues
 * it, or counts why it is left out. Frees p's arrays unless queued. */
static at_status add_pair(at_align_eval *e, pair *p, const char *src, size_t sl,
                          const char *tgt, size_t tl)
{
    if (p->n_gold == 0) {
        e->tally[3]++;
        pair_free(p);
        return AT_OK;
    }
    bool cut1 = false, cut2 = false;
    at_status s = encode(e->stok, src, sl, e->max_len, &p->src, &p->src_len, &cut1);
    if (s == AT_OK && !cut1)
        s = encode(e->ttok, tgt, tl, e->max_len + 1, &p->ys, &p->ys_len, &cut2);
    if (s == AT_OK && (cut1 || cut2)) {
        e->tally[1]++;
        pair_free(p);
        return AT_OK;
    }
    if (s == AT_OK) {
        p->sword = malloc((size_t)p->src_len * sizeof *p->sword);
        p->tword = malloc((size_t)p->ys_len * sizeof *p->tword);
        if (!p->sword || !p->tword)
            s = text_fail(AT_E_NOMEM, "out of memory");
    }
    int32_t sw = 0, tw = 0;
    if (s == AT_OK)
        s = word_map(e->stok, p->src, (size_t)p->src_len, p->sword, &sw);
    if (s == AT_OK)
        s = word_map(e->ttok, p->ys, (size_t)p->ys_len, p->tword, &tw);
    if (s == AT_OK && (sw != p->sw || tw != p->tw)) {
        e->tally[2]++;   /* a normalisation that moved white space */
        pair_free(p);
        return AT_OK;
    }
    if (s == AT_OK && !queue_push(e, p))
        s = text_fail(AT_E_NOMEM, "out of memory");
    if (s != AT_OK)
        pair_free(p);
    return s;
}

/* Parses the links of a pair (words counted from its text) into p. */
static at_status pair_links(pair *p, const char *src, size_t sl, const char *tgt, size_t tl,
                            const char *links, size_t ll)
{
    at_align_words(src, sl, &p->sw);
    at_align_words(tgt, tl, &p->tw);
    size_t n = 0;
    at_status s = parse_links(links, ll, p->sw, p->tw, NULL, 0, &n);
    if (s != AT_OK)
        return s;
    p->gold = malloc((n + 1) * sizeof *p->gold);
    if (!p->gold)
        return text_fail(AT_E_NOMEM, "out of memory");
    p->n_gold = n;
    return parse_links(links, ll, p->sw, p->tw, p->gold, n, &n);
}

static at_status eval_add(at_align_eval *e, const char *src, size_t sl, const char *tgt,
                          size_t tl, const char *links, size_t ll)
{
    char where[48];
    snprintf(where, sizeof where, "line %lld", (long long)e->added + 1);
    const char *side[] = {"its source", "its target"};
    const char *text[] = {src, tgt};
    size_t len[] = {sl, tl};
    for (int k = 0; k < 2; k++) {
        size_t bad = utf8_invalid_at((const unsigned char *)text[k], len[k]);
        if (bad < len[k])
            return text_fail(AT_E_FORMAT, "at_align_eval_add: %s: %s is not valid UTF-8 "
                             "(byte %zu)", where, side[k], bad + 1);
    }
    pair p = {.line = e->added};
    at_status s = pair_links(&p, src, sl, tgt, tl, links, ll);
    if (s != AT_OK) {
        pair_free(&p);
        return with_where(s, "at_align_eval_add", where);
    }
    if ((s = add_pair(e, &p, src, sl, tgt, tl)) != AT_OK)
        return with_where(s, "at_align_eval_add", where);
    e->added++;
    return AT_OK;
}

AT_TEXT_API at_status at_align_eval_add(at_align_eval *e, const char *src, size_t src_len,
                                        const char *tgt, size_t tgt_len, const char *links,
                                        size_t links_len)
{
    const char *who = "at_align_eval_add";
    if (!e || (!src && src_len) || (!tgt && tgt_len) || (!links && links_len))
        return text_fail(AT_E_ARG, "%s: a NULL pointer", who);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = eval_add(e, src ? src : "", src_len, tgt ? tgt : "", tgt_len,
                           links ? links : "", links_len);
    text_leave(&e->busy);
    return s;
}

static at_status add_corpus(at_align_eval *e, const char *dir, const char *split, int64_t limit)
{
    corpus c;
    at_status s = corpus_read(dir, split, &c);
    if (s != AT_OK)
        return s;
    size_t n = limit > 0 && (uint64_t)limit < c.src.n ? (size_t)limit : c.src.n;
    for (size_t k = 0; s == AT_OK && k < n; k++) {
        size_t ng = c.gold.start[k + 1] - c.gold.start[k];
        pair p = {.line = e->added, .sw = c.gold.sw[k], .tw = c.gold.tw[k], .n_gold = ng,
                  .gold = malloc((ng + 1) * sizeof(at_align_link))};
        if (!p.gold) {
            s = text_fail(AT_E_NOMEM, "out of memory");
            break;
        }
        memcpy(p.gold, c.gold.all + c.gold.start[k], ng * sizeof *p.gold);
        s = add_pair(e, &p, c.src.v[k], c.src.len[k], c.tgt.v[k], c.tgt.len[k]);
        e->added += s == AT_OK;
    }
    corpus_free(&c);
    return s;
}

AT_TEXT_API at_status at_align_eval_add_corpus(at_align_eval *e, const char *dir,
                                               const char *split, int64_t limit)
{
    const char *who = "at_align_eval_add_corpus";
    if (!e)
        return text_fail(AT_E_ARG, "%s: the evaluation is NULL", who);
    if (limit < 0)
        return text_fail(AT_E_ARG, "%s: limit %lld is negative", who, (long long)limit);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = add_corpus(e, dir, split, limit);
    text_leave(&e->busy);
    return s == AT_OK ? AT_OK : with_where(s, who, "");
}

/* What the current batch still lacks ("" when complete). */
static const char *lacking(const at_align_eval *e)
{
    if (e->fed_attn < e->layers)
        return "cross-attention";
    if (!e->fed_roll)
        return "rollout";
    if (e->fed_vn < e->layers)
        return "value norms";
    if (e->fed_grad < e->layers)
        return "attention gradients";
    return "";
}

static bool incomplete(const at_align_eval *e)
{
    return e->rows > 0 && !e->complete;
}

static at_status state_error(const at_align_eval *e, const char *who)
{
    return text_fail(AT_E_STATE, "%s: the batch of %d rows lacks its %s (layer %d)", who,
                     (int)e->rows, lacking(e),
                     (int)(e->fed_attn < e->layers ? e->fed_attn
                           : !e->fed_roll ? 0 : e->fed_vn < e->layers ? e->fed_vn
                           : e->fed_grad) + 1);
}

/* Buffers of a batch of the pairs e->b[0 .. rows). */
static bool batch_alloc(at_align_eval *e)
{
    size_t rows = (size_t)e->rows, S = (size_t)e->S, T = (size_t)e->T;
    size_t cells = 1, tw = 1, links = 1;
    for (size_t r = 0; r < rows; r++) {
        const pair *p = &e->b[r];
        size_t c = (size_t)p->tw * (size_t)p->sw;
        cells = c > cells ? c : cells;
        tw = (size_t)p->tw > tw ? (size_t)p->tw : tw;
        links = p->n_gold + (size_t)p->tw > links ? p->n_gold + (size_t)p->tw : links;
    }
    e->amap = calloc(rows, sizeof *e->amap);
    e->bsrc = calloc(rows * S, sizeof *e->bsrc);
    e->btgt = calloc(rows * T, sizeof *e->btgt);
    e->bys = calloc(rows * (T + 1), sizeof *e->bys);
    e->blines = malloc(rows * sizeof *e->blines);
    e->vn = calloc(rows * T * S, sizeof *e->vn);
    e->rel = calloc(rows * T * S, sizeof *e->rel);
    e->scratch = malloc(2 * cells * sizeof *e->scratch);
    e->count = malloc((tw + 1) * sizeof *e->count);
    e->lcap = links;
    e->links = malloc(2 * links * sizeof *e->links);
    if (!e->amap || !e->bsrc || !e->btgt || !e->bys || !e->blines || !e->vn || !e->rel ||
        !e->scratch || !e->count || !e->links)
        return false;
    for (size_t r = 0; r < rows; r++) {
        const pair *p = &e->b[r];
        if (!(e->amap[r] = calloc((size_t)p->tw * (size_t)p->sw + 1, sizeof **e->amap)))
            return false;
        memcpy(e->bsrc + r * S, p->src, (size_t)p->src_len * sizeof *e->bsrc);
        memcpy(e->btgt + r * T, p->ys, (size_t)(p->ys_len - 1) * sizeof *e->btgt);
        memcpy(e->bys + r * (T + 1), p->ys, (size_t)p->ys_len * sizeof *e->bys);
        e->blines[r] = p->line;
    }
    return true;
}

static at_status eval_next(at_align_eval *e, int32_t max_rows, at_align_batch *out)
{
    const char *who = "at_align_eval_next";
    if (incomplete(e))
        return state_error(e, who);
    batch_clear(e);
    size_t wait = e->qn - e->qhead;
    int32_t rows = wait < (size_t)max_rows ? (int32_t)wait : max_rows;
    size_t size = out->struct_size;
    memset(out, 0, sizeof *out);
    out->struct_size = size;
    if (rows == 0)
        return AT_OK;
    e->b = malloc((size_t)rows * sizeof *e->b);
    if (!e->b)
        return text_fail(AT_E_NOMEM, "%s: out of memory", who);
    memcpy(e->b, e->q + e->qhead, (size_t)rows * sizeof *e->b);
    e->qhead += (size_t)rows;
    e->rows = rows;
    e->S = e->T = 1;
    for (int32_t r = 0; r < rows; r++) {
        e->S = e->b[r].src_len > e->S ? e->b[r].src_len : e->S;
        e->T = e->b[r].ys_len - 1 > e->T ? e->b[r].ys_len - 1 : e->T;
    }
    if (!batch_alloc(e)) {
        batch_clear(e);   /* the pairs are lost with it: the caller gives up */
        return text_fail(AT_E_NOMEM, "%s: out of memory for a batch of %d rows", who,
                         (int)rows);
    }
    out->rows = rows;
    out->src_len = e->S;
    out->tgt_len = e->T;
    out->src = e->bsrc;
    out->tgt = e->btgt;
    out->ys = e->bys;
    out->lines = e->blines;
    return AT_OK;
}

AT_TEXT_API at_status at_align_eval_next(at_align_eval *e, int32_t max_rows, at_align_batch *out)
{
    const char *who = "at_align_eval_next";
    if (!e || !out)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, e ? "out" : "the evaluation");
    if (out->struct_size < sizeof *out)
        return text_fail(AT_E_ARG, "%s: out->struct_size is %zu, this library needs %zu", who,
                         out->struct_size, sizeof *out);
    if (max_rows < 1 || max_rows > 1 << 20)
        return text_fail(AT_E_ARG, "%s: max_rows %d is not 1 .. 2^20", who, (int)max_rows);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = eval_next(e, max_rows, out);
    text_leave(&e->busy);
    return s;
}

/* Links each target word of p to its argmax in map and adds the score. */
static void score_map(at_align_eval *e, at_align_counts *c, const pair *p, const double *map)
{
    at_align_link *h = e->links + e->lcap;
    size_t n = argmax_links(h, map, p->tw, p->sw);
    score_in(c, p->gold, p->n_gold, h, n, e->links);
}

/* Row r, head h of a (rows, heads, T, S) view; for pool, rows are queries. */
static const float *at_row(const at_view *v, int32_t r, int32_t h)
{
    return v->data + (int64_t)r * v->stride[0] + (int64_t)h * v->stride[1];
}

/* Pools row r's (T, S) map at m (strides rs, cs) into out. */
static void pool_row(at_align_eval *e, int32_t r, double *out, const float *m, int64_t rs,
                     int64_t cs)
{
    const pair *p = &e->b[r];
    pool(out, p->tw, p->sw, m, rs, cs, p->ys_len - 1, p->src_len, p->tword + 1, p->sword,
         e->count);
}

/* A layer's cross-attention: every head, their mean, and (last layer) the
 * mean of all; the maps are linear in the attention, so means of word maps. */
static void feed_attention(at_align_eval *e, int32_t l, const at_view *v)
{
    int32_t H = e->heads;
    for (int32_t r = 0; r < e->rows; r++) {
        const pair *p = &e->b[r];
        size_t cells = (size_t)p->tw * (size_t)p->sw;
        double *m = e->scratch, *lmap = e->scratch + cells, *amap = e->amap[r];
        memset(lmap, 0, cells * sizeof *lmap);
        for (int32_t h = 0; h < H; h++) {
            pool_row(e, r, m, at_row(v, r, h), v->stride[2], v->stride[3]);
            for (size_t c = 0; c < cells; c++) {
                lmap[c] += m[c] / H;
                amap[c] += m[c] / ((double)H * e->layers);
            }
            score_map(e, &e->head[(size_t)l * H + h], p, m);
        }
        score_map(e, &e->layer[l], p, lmap);
        if (l == e->layers - 1)
            score_map(e, &e->fixed[M_AVERAGE], p, amap);
    }
}

/* Scores the (rows, T, S) float maps x (a mean already) into c. */
static void score_means(at_align_eval *e, at_align_counts *c, const float *x)
{
    for (int32_t r = 0; r < e->rows; r++) {
        pool_row(e, r, e->scratch, x + (size_t)r * e->T * e->S, e->S, 1);
        score_map(e, c, &e->b[r], e->scratch);
    }
}

/* Adds a layer's value norms (grad NULL) or (-dL/dA * A)+ (v is dL/dA, a is
 * A) into acc, averaged over heads and layers: the sum runs over layers,
 * then heads, per cell, as attn align-eval always summed it. */
static void add_mean(at_align_eval *e, float *acc, const at_view *v, const at_view *a)
{
    float w = (float)(e->heads * e->layers);
    for (int32_t r = 0; r < e->rows; r++)
        for (int32_t h = 0; h < e->heads; h++) {
            const float *x = at_row(v, r, h), *y = a ? at_row(a, r, h) : NULL;
            for (int32_t t = 0; t < e->T; t++)
                for (int32_t s = 0; s < e->S; s++) {
                    float *o = acc + ((size_t)r * e->T + t) * e->S + s;
                    float g = x[t * v->stride[2] + s * v->stride[3]];
                    if (!y) {
                        *o += g / w;
                        continue;
                    }
                    float rel = -g * y[t * a->stride[2] + s * a->stride[3]];
                    *o += rel > 0 ? rel / w : 0.0f;
                }
        }
}

/* Whether v is (rows, heads, T, S), or for the rollout (rows, T, S) or
 * (rows, 1, T, S); a 3-D view is read as (rows, 1, T, S). */
static at_status check_view(const at_align_eval *e, const char *who, const char *what,
                            const at_view *v, bool rollout, at_view *as4)
{
    if (!v->data)
        return text_fail(AT_E_ARG, "%s: the %s view has no data", who, what);
    *as4 = *v;
    if (rollout && v->ndim == 3) {
        as4->ndim = 4;
        as4->shape[3] = v->shape[2];
        as4->shape[2] = v->shape[1];
        as4->shape[1] = 1;
        as4->stride[3] = v->stride[2];
        as4->stride[2] = v->stride[1];
        as4->stride[1] = 0;
    }
    int64_t h = rollout ? 1 : e->heads;
    if (as4->ndim != 4 || as4->shape[0] != e->rows || as4->shape[1] != h ||
        as4->shape[2] != e->T || as4->shape[3] != e->S)
        return text_fail(AT_E_SHAPE, "%s: the %s view is %d-D (%lld, %lld, %lld, %lld); the "
                         "batch needs (%d, %lld, %d, %d)", who, what, (int)v->ndim,
                         (long long)v->shape[0], (long long)v->shape[1],
                         (long long)v->shape[2], (long long)v->shape[3], (int)e->rows,
                         (long long)h, (int)e->T, (int)e->S);
    return AT_OK;
}

static at_status eval_feed(at_align_eval *e, at_align_input input, int32_t layer,
                           const at_view *map, const at_view *attn)
{
    const char *who = "at_align_eval_feed";
    static const char *names[] = {"cross-attention", "rollout", "value norms",
                                  "attention gradients"};
    if (e->rows == 0 || e->complete)
        return text_fail(AT_E_STATE, "%s: no batch is waiting for its maps "
                         "(at_align_eval_next() gives one)", who);
    int32_t *fed = input == AT_ALIGN_IN_ATTENTION ? &e->fed_attn
                   : input == AT_ALIGN_IN_ROLLOUT ? &e->fed_roll
                   : input == AT_ALIGN_IN_VALUE_NORM ? &e->fed_vn : &e->fed_grad;
    int32_t want = input == AT_ALIGN_IN_ROLLOUT ? 1 : e->layers;
    if (*fed >= want)
        return text_fail(AT_E_STATE, "%s: the batch has all its %s already", who, names[input]);
    if (layer != *fed)
        return text_fail(AT_E_STATE, "%s: the %s of layer %d come next, not of layer %d "
                         "(layers in order, from 0)", who, names[input], (int)*fed, (int)layer);
    at_view v, a;
    at_status s = check_view(e, who, names[input], map, input == AT_ALIGN_IN_ROLLOUT, &v);
    if (s == AT_OK && input == AT_ALIGN_IN_GRADIENT)
        s = check_view(e, who, "attention (of the gradients' pass)", attn, false, &a);
    if (s != AT_OK)
        return s;
    switch (input) {
    case AT_ALIGN_IN_ATTENTION:
        feed_attention(e, layer, &v);
        break;
    case AT_ALIGN_IN_ROLLOUT:
        for (int32_t r = 0; r < e->rows; r++) {
            pool_row(e, r, e->scratch, at_row(&v, r, 0), v.stride[2], v.stride[3]);
            score_map(e, &e->fixed[M_ROLLOUT], &e->b[r], e->scratch);
        }
        break;
    case AT_ALIGN_IN_VALUE_NORM:
        add_mean(e, e->vn, &v, NULL);
        if (layer == e->layers - 1)
            score_means(e, &e->fixed[M_VNORM], e->vn);
        break;
    default:
        add_mean(e, e->rel, &v, &a);
        if (layer == e->layers - 1)
            score_means(e, &e->fixed[M_ATTRIB], e->rel);
        break;
    }
    (*fed)++;
    if (!*lacking(e)) {
        e->complete = true;
        e->tally[0] += e->rows;
    }
    return AT_OK;
}

AT_TEXT_API at_status at_align_eval_feed(at_align_eval *e, at_align_input input, int32_t layer,
                                         const at_view *map, const at_view *attn)
{
    const char *who = "at_align_eval_feed";
    if (!e || !map)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, e ? "map" : "the evaluation");
    if ((int)input < AT_ALIGN_IN_ATTENTION || (int)input > AT_ALIGN_IN_GRADIENT)
        return text_fail(AT_E_ARG, "%s: %d is not an at_align_input", who, (int)input);
    if (input == AT_ALIGN_IN_GRADIENT && !attn)
        return text_fail(AT_E_ARG, "%s: the gradients need their attention (attn is NULL)", who);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = eval_feed(e, input, layer, map, attn);
    text_leave(&e->busy);
    return s;
}

/* ---------------------------------------------------------------- results */

static at_status read_check(at_align_eval *e, const char *who)
{
    if (!e)
        return text_fail(AT_E_ARG, "%s: the evaluation is NULL", who);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    if (incomplete(e)) {
        state_error(e, who);
        text_leave(&e->busy);
        return AT_E_STATE;
    }
    return AT_OK;
}

AT_TEXT_API at_status at_align_eval_counts(at_align_eval *e, at_align_method method,
                                           int32_t layer, int32_t head, at_align_counts *out)
{
    const char *who = "at_align_eval_counts";
    if (!out)
        return text_fail(AT_E_ARG, "%s: out is NULL", who);
    if ((int)method < AT_ALIGN_HEAD || (int)method > AT_ALIGN_ATTRIBUTION)
        return text_fail(AT_E_ARG, "%s: %d is not an at_align_method", who, (int)method);
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    bool per_layer = method == AT_ALIGN_HEAD || method == AT_ALIGN_LAYER;
    if (per_layer && (layer < 0 || layer >= e->layers))
        s = text_fail(AT_E_RANGE, "%s: layer %d is not 0 .. %d", who, (int)layer,
                      (int)e->layers - 1);
    else if (method == AT_ALIGN_HEAD && (head < 0 || head >= e->heads))
        s = text_fail(AT_E_RANGE, "%s: head %d is not 0 .. %d", who, (int)head,
                      (int)e->heads - 1);
    else if (method == AT_ALIGN_HEAD)
        *out = e->head[(size_t)layer * e->heads + head];
    else if (method == AT_ALIGN_LAYER)
        *out = e->layer[layer];
    else
        *out = e->fixed[method - AT_ALIGN_AVERAGE];
    text_leave(&e->busy);
    return s;
}

AT_TEXT_API at_status at_align_eval_result(at_align_eval *e, at_align_eval_info *out)
{
    const char *who = "at_align_eval_result";
    if (!out)
        return text_fail(AT_E_ARG, "%s: out is NULL", who);
    if (out->struct_size < sizeof *out)
        return text_fail(AT_E_ARG, "%s: out->struct_size is %zu, this library needs %zu", who,
                         out->struct_size, sizeof *out);
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    size_t size = out->struct_size, best = 0, n = (size_t)e->layers * e->heads;
    for (size_t k = 1; k < n; k++)
        best = aer_of(&e->head[k]) < aer_of(&e->head[best]) ? k : best;
    memset(out, 0, sizeof *out);
    out->struct_size = size;
    out->lines = e->tally[0];
    out->truncated = e->tally[1];
    out->pieces = e->tally[2];
    out->no_links = e->tally[3];
    out->pending = (int64_t)(e->qn - e->qhead);
    out->gold = e->fixed[M_AVERAGE].sure;
    out->layers = e->layers;
    out->heads = e->heads;
    out->best_layer = (int32_t)(best / (size_t)e->heads);
    out->best_head = (int32_t)(best % (size_t)e->heads);
    out->best_aer = aer_of(&e->head[best]);
    text_leave(&e->busy);
    return AT_OK;
}

/* The number of values of at_align_eval_sums. */
static size_t sums_len(const at_align_eval *e)
{
    return 4 + 4 * ((size_t)e->layers * e->heads + (size_t)e->layers + M_FIXED);
}

/* The k-th counts of e in sums order: heads, layers, the fixed methods. */
static at_align_counts counts_get(const at_align_eval *e, size_t k)
{
    size_t nh = (size_t)e->layers * e->heads;
    return k < nh ? e->head[k] : k < nh + (size_t)e->layers ? e->layer[k - nh]
                                                            : e->fixed[k - nh - e->layers];
}

static void counts_add(at_align_eval *e, size_t k, const at_align_counts *c)
{
    size_t nh = (size_t)e->layers * e->heads;
    at_align_counts *to = k < nh ? &e->head[k] : k < nh + (size_t)e->layers
                                                     ? &e->layer[k - nh]
                                                     : &e->fixed[k - nh - e->layers];
    to->hyp += c->hyp;
    to->sure += c->sure;
    to->hit_sure += c->hit_sure;
    to->hit_possible += c->hit_possible;
}

AT_TEXT_API at_status at_align_eval_sums(at_align_eval *e, int64_t *out, size_t cap, size_t *n)
{
    const char *who = "at_align_eval_sums";
    if (!n)
        return text_fail(AT_E_ARG, "%s: n is NULL", who);
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    *n = sums_len(e);
    if (out && cap < *n) {
        s = text_fail(AT_E_RANGE, "%s: %zu values, room for %zu", who, *n, cap);
    } else if (out) {
        memcpy(out, e->tally, sizeof e->tally);
        for (size_t k = 0; k < (*n - 4) / 4; k++) {
            at_align_counts c = counts_get(e, k);
            int64_t *o = out + 4 + 4 * k;
            o[0] = c.hyp;
            o[1] = c.sure;
            o[2] = c.hit_sure;
            o[3] = c.hit_possible;
        }
    }
    text_leave(&e->busy);
    return s;
}

AT_TEXT_API at_status at_align_eval_add_sums(at_align_eval *e, const int64_t *sums, size_t n)
{
    const char *who = "at_align_eval_add_sums";
    if (!sums)
        return text_fail(AT_E_ARG, "%s: sums is NULL", who);
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    if (n != sums_len(e))
        s = text_fail(AT_E_SHAPE, "%s: %zu values; an evaluation of %d layers of %d heads has "
                      "%zu", who, n, (int)e->layers, (int)e->heads, sums_len(e));
    for (size_t k = 0; s == AT_OK && k < n; k++)
        if (sums[k] < 0)
            s = text_fail(AT_E_ARG, "%s: value %zu is negative (%lld)", who, k,
                          (long long)sums[k]);
    for (size_t k = 0; s == AT_OK && k < 4; k++)
        e->tally[k] += sums[k];
    for (size_t k = 0; s == AT_OK && k < (n - 4) / 4; k++) {
        const int64_t *v = sums + 4 + 4 * k;
        counts_add(e, k, &(at_align_counts){v[0], v[1], v[2], v[3]});
    }
    text_leave(&e->busy);
    return s;
}

AT_TEXT_API at_status at_align_eval_merge(at_align_eval *e, const at_align_eval *from)
{
    const char *who = "at_align_eval_merge";
    if (!from || e == from)
        return text_fail(AT_E_ARG, "%s: %s", who, from ? "an evaluation merged into itself"
                                                       : "from is NULL");
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    if (from->layers != e->layers || from->heads != e->heads)
        s = text_fail(AT_E_SHAPE, "%s: %d layers of %d heads merged into %d of %d", who,
                      (int)from->layers, (int)from->heads, (int)e->layers, (int)e->heads);
    else if (incomplete(from))
        s = state_error(from, who);
    for (size_t k = 0; s == AT_OK && k < 4; k++)
        e->tally[k] += from->tally[k];
    for (size_t k = 0; s == AT_OK && k < (sums_len(e) - 4) / 4; k++) {
        at_align_counts c = counts_get(from, k);
        counts_add(e, k, &c);
    }
    text_leave(&e->busy);
    return s;
}
