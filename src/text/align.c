/* libat_text: word alignments against gold links (the group "align" of
 * at_text.h; docs/alignment.md): links and their scores, pieces to words,
 * maps pooled to words and their argmax, corpus folders and files of links.
 * The evaluation object is align_eval.c. */
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
at_status align_parse_links(const char *line, size_t len, int32_t sw, int32_t tw,
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
at_status align_where(at_status s, const char *who, const char *where)
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
    at_status s = align_parse_links(line ? line : "", len, src_words, tgt_words, out, cap, n);
    return s == AT_OK ? AT_OK : align_where(s, "at_align_parse", "");
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
void align_score_in(at_align_counts *c, const at_align_link *gold, size_t ng,
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
    align_score_in(c, gold, ng, hyp, nh, buf);
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
        align_where(s, who, "");
    return s;
}

double align_aer(const at_align_counts *c)
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
        *aer = align_aer(c);
    if (precision)
        *precision = c->hyp ? (double)c->hit_possible / (double)c->hyp : 0.0;
    if (recall)
        *recall = c->sure ? (double)c->hit_sure / (double)c->sure : 0.0;
    return AT_OK;
}

/* ---------------------------------------------------------------- pieces and words */

/* The word map without checks but the ids' range. */
at_status align_word_map_of(const at_tokenizer *t, const int32_t *ids, size_t n,
                            int32_t *word, int32_t *words)
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
    at_status s = align_word_map_of(t, ids, n, word, words);
    return s == AT_OK ? AT_OK : align_where(s, "at_align_word_map", "");
}

/* at_align_pool without the checks. */
void align_pool_map(double *out, int32_t tw, int32_t sw, const float *map, int64_t rs,
                    int64_t cs, int32_t rows, int32_t cols, const int32_t *tword,
                    const int32_t *sword, int32_t *count)
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
    align_pool_map(out, tgt_words, src_words, map, row_stride, col_stride, rows, cols,
                   tgt_word, src_word, count);
    free(count);
    return AT_OK;
}

/* One link per target word to its row's largest entry (the first on ties). */
size_t align_argmax_links(at_align_link *out, const double *map, int32_t tw, int32_t sw)
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
    *n = align_argmax_links(out, map, tgt_words, src_words);
    return AT_OK;
}

/* ---------------------------------------------------------------- files of lines */

static void align_lines_free(align_lines *l)
{
    free(l->buf);
    free(l->v);
    free(l->len);
    memset(l, 0, sizeof *l);
}

static at_status lines_read(const char *path, align_lines *out)
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
        align_lines_free(out);
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
static at_status check_sentences(const char *path, const align_lines *l)
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

static void align_link_file_free(align_link_file *f)
{
    free(f->all);
    free(f->start);
    free(f->sw);
    free(f->tw);
    memset(f, 0, sizeof *f);
}

static at_status link_file_read(const char *path, const align_lines *src, const align_lines *tgt,
                                align_link_file *out)
{
    memset(out, 0, sizeof *out);
    align_lines l;
    at_status s = lines_read(path, &l);
    if (s != AT_OK)
        return s;
    if (l.n != src->n) {
        s = text_fail(AT_E_FORMAT, "%s has %zu line%s but the corpus has %zu; they must match "
                      "line by line", path, l.n, l.n == 1 ? "" : "s", src->n);
        align_lines_free(&l);
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
        s = align_parse_links(l.v[k], l.len[k], out->sw[k], out->tw[k], out->all + at, total - at,
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
    align_lines_free(&l);
    if (s != AT_OK)
        align_link_file_free(out);
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

void align_corpus_free(align_corpus *c)
{
    align_lines_free(&c->src);
    align_lines_free(&c->tgt);
    align_link_file_free(&c->gold);
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

at_status align_corpus_read(const char *dir, const char *split, align_corpus *c)
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
        align_corpus_free(c);
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
    align_corpus c;
    align_link_file h;
    at_status s = align_corpus_read(dir, split, &c);
    if (s != AT_OK)
        return align_where(s, who, "");
    if ((s = link_file_read(hyp_path, &c.src, &c.tgt, &h)) != AT_OK) {
        align_corpus_free(&c);
        return align_where(s, who, "");
    }
    size_t n = limit > 0 && (uint64_t)limit < c.src.n ? (size_t)limit : c.src.n;
    at_align_counts sum = {0, 0, 0, 0};
    for (size_t k = 0; s == AT_OK && k < n; k++)
        s = score_links(&sum, c.gold.all + c.gold.start[k], c.gold.start[k + 1] - c.gold.start[k],
                        h.all + h.start[k], h.start[k + 1] - h.start[k]);
    align_link_file_free(&h);
    align_corpus_free(&c);
    if (s != AT_OK)
        return align_where(s, who, "");
    *out = sum;
    if (lines_out)
        *lines_out = (int64_t)n;
    return AT_OK;
}

