/* The Check suite of libat_text's word alignments (test `text_align`): links
 * parsed, scored against hand-made gold links whose AER, precision and
 * recall are worked out by hand in the comments (sure and possible links,
 * duplicates, words without gold), pieces to words and pooling on maps
 * with known answers, and the evaluation object fed synthetic attention of
 * known alignments (a head that aligns word j to j, one that aligns every
 * word to word 0), lines left out, merging and sums, and bad input. The
 * comparison with `attn align-eval` on a trained model is
 * tests/python/test_align.py. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "at_text.h"

#define EPS 1e-15

static size_t parse(const char *line, int32_t sw, int32_t tw, at_align_link *out, size_t cap)
{
    size_t n = 0;
    ck_assert_msg(at_align_parse(line, strlen(line), sw, tw, out, cap, &n) == AT_OK, "%s: %s",
                  line, at_text_errmsg());
    return n;
}

static at_status parse_fails(const char *line, int32_t sw, int32_t tw, const char *msg)
{
    at_align_link l[8];
    size_t n = 0;
    at_status s = at_align_parse(line, strlen(line), sw, tw, l, 8, &n);
    ck_assert_msg(strstr(at_text_errmsg(), msg), "'%s': %s", line, at_text_errmsg());
    return s;
}

START_TEST(parse_links)
{
    at_align_link l[8];
    ck_assert_uint_eq(parse(" 0-0\t1?2  10-3\r", 11, 4, l, 8), 3);
    ck_assert_int_eq(l[0].src, 0);
    ck_assert_int_eq(l[0].tgt, 0);
    ck_assert_int_eq(l[0].sure, 1);
    ck_assert_int_eq(l[1].src, 1);
    ck_assert_int_eq(l[1].tgt, 2);
    ck_assert_int_eq(l[1].sure, 0);
    ck_assert_int_eq(l[2].src, 10);
    ck_assert_int_eq(l[2].tgt, 3);
    ck_assert_uint_eq(parse("", 0, 0, l, 8), 0);
    ck_assert_uint_eq(parse("   ", 0, 0, NULL, 0), 0);
    /* counting first, then a buffer one too small */
    size_t n = 0;
    ck_assert_int_eq(at_align_parse("0-0 1-1", 7, 2, 2, NULL, 0, &n), AT_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(at_align_parse("0-0 1-1", 7, 2, 2, l, 1, &n), AT_E_RANGE);
    ck_assert_uint_eq(n, 2);
    static const char *bad[] = {"0-", "-1", "1--2", "0-1-2", "a-b", "1234567-0", "1:1", "0-1?",
                                "0?", "0 - 1", "٣-1"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        ck_assert_int_eq(parse_fails(bad[k], 100, 100, "is not a link i-j"), AT_E_FORMAT);
    ck_assert_int_eq(parse_fails("0-0 3-0", 2, 2, "link 3-0 is beyond the line's words (2 "
                                 "source, 2 target)"), AT_E_FORMAT);
    ck_assert_int_eq(parse_fails("1?4", 2, 2, "link 1?4 is beyond"), AT_E_FORMAT);
    ck_assert_int_eq(parse_fails("0-0", 0, 0, "beyond"), AT_E_FORMAT);
    ck_assert_int_eq(at_align_parse(NULL, 1, 1, 1, l, 8, &n), AT_E_ARG);
    ck_assert_int_eq(at_align_parse("0-0", 3, 1, 1, l, 8, NULL), AT_E_ARG);
    ck_assert_int_eq(at_align_parse("0-0", 3, -1, 1, l, 8, &n), AT_E_ARG);
    int32_t w = -1;
    ck_assert_int_eq(at_align_words(" a  b\tc\r\n", 9, &w), AT_OK);
    ck_assert_int_eq(w, 4);   /* a, b, c and "\n": only space, tab and CR separate */
    ck_assert_int_eq(at_align_words("", 0, &w), AT_OK);
    ck_assert_int_eq(w, 0);
    ck_assert_int_eq(at_align_words("uno dos", 7, &w), AT_OK);
    ck_assert_int_eq(w, 2);
    ck_assert_int_eq(at_align_words(NULL, 1, &w), AT_E_ARG);
}
END_TEST

static void rates(const at_align_counts *c, double aer, double p, double r)
{
    double a = -1, pp = -1, rr = -1;
    ck_assert_int_eq(at_align_rates(c, &a, &pp, &rr), AT_OK);
    ck_assert_double_eq_tol(a, aer, EPS);
    ck_assert_double_eq_tol(pp, p, EPS);
    ck_assert_double_eq_tol(rr, r, EPS);
}

START_TEST(score_by_hand)
{
    /* Sentence 1 (3 source, 4 target words): gold sure 0-0 1-1, possible
     * 2?1 2?2 and a duplicate 0?0 (sure wins); target word 3 has none.
     * Proposed 0-0 2-1 1-2 0-3 0-0: on target words with gold, the distinct
     * links are 0-0 2-1 1-2 (|A| = 3); |S| = 2; |A&S| = 1 (0-0); |A&P| = 2
     * (0-0, 2-1). AER = 1 - (1 + 2) / (3 + 2) = 0.4, precision 2/3, recall
     * 1/2. */
    at_align_link g[8], h[8];
    size_t ng = parse("0-0 1-1 2?1 2?2 0?0", 3, 4, g, 8);
    size_t nh = parse("0-0 2-1 1-2 0-3 0-0", 3, 4, h, 8);
    at_align_counts c = {0, 0, 0, 0};
    ck_assert_int_eq(at_align_score(&c, g, ng, h, nh, 3, 4), AT_OK);
    ck_assert_int_eq(c.hyp, 3);
    ck_assert_int_eq(c.sure, 2);
    ck_assert_int_eq(c.hit_sure, 1);
    ck_assert_int_eq(c.hit_possible, 2);
    rates(&c, 0.4, 2.0 / 3, 0.5);
    /* Sentence 2, sure links only: gold 0-1 1-0, proposed 0-1 0-0: |A| = 2,
     * |S| = 2, hits 1; alone AER = 1 - 2/4 = 1/2. Summed with sentence 1:
     * |A| = 5, |S| = 4, |A&S| = 2, |A&P| = 3: AER = 1 - 5/9, precision 3/5,
     * recall 2/4. */
    at_align_counts c2 = {0, 0, 0, 0};
    ng = parse("0-1 1-0", 2, 2, g, 8);
    nh = parse("0-1 0-0", 2, 2, h, 8);
    ck_assert_int_eq(at_align_score(&c2, g, ng, h, nh, 2, 2), AT_OK);
    rates(&c2, 0.5, 0.5, 0.5);
    ck_assert_int_eq(at_align_score(&c, g, ng, h, nh, 2, 2), AT_OK);
    rates(&c, 1.0 - 5.0 / 9, 3.0 / 5, 0.5);
    /* nothing at all: AER 1, precision and recall 0 */
    at_align_counts z = {0, 0, 0, 0};
    ck_assert_int_eq(at_align_score(&z, NULL, 0, NULL, 0, 0, 0), AT_OK);
    rates(&z, 1.0, 0.0, 0.0);
    /* proposed links but no gold: none is on a target word with gold */
    ck_assert_int_eq(at_align_score(&z, NULL, 0, h, nh, 2, 2), AT_OK);
    ck_assert_int_eq(z.hyp, 0);
    /* bad input adds nothing */
    at_align_counts before = c;
    at_align_link out = {5, 0, 1};
    ck_assert_int_eq(at_align_score(&c, g, ng, &out, 1, 2, 2), AT_E_RANGE);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "outside the words"));
    ck_assert_int_eq(at_align_score(&c, &out, 1, h, nh, 2, 2), AT_E_RANGE);
    ck_assert_int_eq(memcmp(&before, &c, sizeof c), 0);
    ck_assert_int_eq(at_align_score(NULL, g, ng, h, nh, 2, 2), AT_E_ARG);
    ck_assert_int_eq(at_align_score(&c, NULL, 1, h, nh, 2, 2), AT_E_ARG);
    ck_assert_int_eq(at_align_rates(NULL, NULL, NULL, NULL), AT_E_ARG);
    at_align_counts neg = {-1, 0, 0, 0};
    ck_assert_int_eq(at_align_rates(&neg, NULL, NULL, NULL), AT_E_ARG);
}
END_TEST

START_TEST(pool_and_argmax)
{
    /* 3 query rows x 4 source pieces; rows 0 and 1 emit target word 0, row
     * 2 word 1; pieces 0 and 3 are <s> and </s> (-1), pieces 1 and 2 are
     * source words 0 and 1. Stored transposed (col_stride 3) to check the
     * strides. Word 0 = mean of rows 0 and 1: (0.2 + 0.4) / 2 = 0.3 on
     * source word 0, (0.5 + 0.1) / 2 = 0.3 on word 1 (a tie: the first
     * wins); word 1 = row 2: 0.1, 0.7. */
    const float rows[3][4] = {{0.1f, 0.2f, 0.5f, 0.2f}, {0.3f, 0.4f, 0.1f, 0.2f},
                              {0.1f, 0.1f, 0.7f, 0.1f}};
    float t[4][3];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            t[c][r] = rows[r][c];
    const int32_t tw[] = {0, 0, 1}, sw[] = {-1, 0, 1, -1};
    double m[4];
    ck_assert_int_eq(at_align_pool(m, 2, 2, &t[0][0], 1, 3, 3, 4, tw, sw), AT_OK);
    ck_assert_double_eq_tol(m[0], (0.2 + 0.4) / 2, 1e-7);
    ck_assert_double_eq_tol(m[1], (0.5 + 0.1) / 2, 1e-7);
    ck_assert_double_eq_tol(m[2], 0.1, 1e-7);
    ck_assert_double_eq_tol(m[3], 0.7, 1e-7);
    double tie[] = {0.3, 0.3, 0.1, 0.7, 0, 0};
    at_align_link l[3];
    size_t n = 0;
    ck_assert_int_eq(at_align_argmax(l, &n, tie, 3, 2), AT_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(l[0].src, 0);   /* the first on a tie */
    ck_assert_int_eq(l[0].tgt, 0);
    ck_assert_int_eq(l[1].src, 1);
    ck_assert_int_eq(l[1].tgt, 1);
    ck_assert_int_eq(l[2].src, 0);   /* a word without rows: all 0 */
    ck_assert_int_eq(at_align_argmax(l, &n, tie, 3, 0), AT_OK);
    ck_assert_uint_eq(n, 0);
    const int32_t bad[] = {0, 2, 1};
    ck_assert_int_eq(at_align_pool(m, 2, 2, &t[0][0], 1, 3, 3, 4, bad, sw), AT_E_RANGE);
    ck_assert_int_eq(at_align_pool(m, 2, 2, NULL, 1, 3, 3, 4, tw, sw), AT_E_ARG);
    ck_assert_int_eq(at_align_pool(m, -2, 2, &t[0][0], 1, 3, 3, 4, tw, sw), AT_E_ARG);
    ck_assert_int_eq(at_align_argmax(l, NULL, tie, 3, 2), AT_E_ARG);
}
END_TEST

/* ---------------------------------------------------------------- with a tokenizer */

static char tmpdir[64];

/* A joint tokenizer trained on a few Spanish and English words. */
static at_tokenizer *small_tokenizer(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/at_align_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    char path[128];
    snprintf(path, sizeof path, "%s/train.txt", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    static const char *w[] = {"uno", "dos", "tres", "cuatro", "one", "two", "three", "four"};
    for (unsigned i = 0; i < 300; i++) {
        unsigned h = i * 2654435761u;
        fprintf(f, "%s %s %s\n", w[(h >> 5) % 8], w[(h >> 13) % 8], w[(h >> 21) % 8]);
    }
    fclose(f);
    at_tokenizer_options o = {.struct_size = sizeof o, .vocab_size = 40};
    at_tokenizer *t = NULL;
    const char *p = path;
    ck_assert_msg(at_tokenizer_train(&p, 1, &o, &t) == AT_OK, "%s", at_text_errmsg());
    return t;
}

static void write_file(const char *name, const char *text)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void cleanup(void)
{
    static const char *names[] = {"train.txt", "t.src", "t.tgt", "t.align", "h.align",
                                  "b.align"};
    char path[160];
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[k]);
        unlink(path);
    }
    rmdir(tmpdir);
}

START_TEST(word_map_of_pieces)
{
    at_tokenizer *t = small_tokenizer();
    const char *text = "uno cuatro three";
    const int32_t *ids = NULL;
    const char *const *pieces = NULL;
    size_t n = 0, np = 0;
    ck_assert_int_eq(at_tokenizer_encode(t, text, strlen(text), &ids, &n), AT_OK);
    int32_t framed[32] = {AT_TOK_BOS_ID};
    ck_assert_uint_lt(n, 30);
    memcpy(framed + 1, ids, n * sizeof *ids);
    framed[n + 1] = AT_TOK_EOS_ID;
    ck_assert_int_eq(at_tokenizer_encode_pieces(t, text, strlen(text), &pieces, &np), AT_OK);
    /* the expected words: count the pieces that start with U+2581 */
    int32_t word[32], words = -1, expect = -1;
    ck_assert_int_eq(at_align_word_map(t, framed, n + 2, word, &words), AT_OK);
    ck_assert_int_eq(words, 3);
    ck_assert_int_eq(word[0], -1);
    ck_assert_int_eq(word[n + 1], -1);
    for (size_t k = 0; k < np; k++) {
        expect += strncmp(pieces[k], "\xe2\x96\x81", 3) == 0;
        ck_assert_int_eq(word[k + 1], expect);
    }
    framed[1] = 100000;
    ck_assert_int_eq(at_align_word_map(t, framed, n + 2, word, &words), AT_E_RANGE);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "position 1"));
    ck_assert_int_eq(at_align_word_map(NULL, framed, n + 2, word, &words), AT_E_ARG);
    at_tokenizer_free(t);
    cleanup();
}
END_TEST

/* Maps of the batch: for each row, (rows, heads, T, S) attention where head
 * 0 gives every query all of its mass on the first piece of the source
 * word with the number of the target word it emits (the diagonal), and
 * head 1 on the first piece of source word 0; the rollout is the
 * diagonal, the value norms the column of word 0 for both heads, and the
 * gradient -A with A the diagonal for head 0 and 0 for head 1. */
typedef struct maps {
    float *diag_col, *roll, *vn, *grad;
} maps;

static void make_maps(at_tokenizer *t, const at_align_batch *b, maps *m)
{
    int R = b->rows, S = b->src_len, T = b->tgt_len;
    size_t one = (size_t)R * T * S;
    m->diag_col = calloc(2 * one, sizeof(float));
    m->roll = calloc(one, sizeof(float));
    m->vn = calloc(2 * one, sizeof(float));
    m->grad = calloc(2 * one, sizeof(float));
    for (int r = 0; r < R; r++) {
        int32_t sword[64], tword[64], sw, tw;
        ck_assert_int_eq(at_align_word_map(t, b->src + (size_t)r * S, (size_t)S, sword, &sw),
                         AT_OK);
        ck_assert_int_eq(at_align_word_map(t, b->ys + (size_t)r * (T + 1), (size_t)T + 1, tword,
                                           &tw), AT_OK);
        for (int q = 0; q < T; q++) {
            int j = tword[q + 1], diag = -1, first = -1;
            for (int s = S - 1; s >= 0; s--) {
                diag = j >= 0 && sword[s] == j ? s : diag;
                first = sword[s] == 0 ? s : first;
            }
            size_t h0 = (((size_t)r * 2 + 0) * T + q) * S, h1 = (((size_t)r * 2 + 1) * T + q) * S;
            size_t rr = ((size_t)r * T + q) * S;
            if (diag >= 0) {
                m->diag_col[h0 + diag] = 1;
                m->roll[rr + diag] = 1;
                m->grad[h0 + diag] = -1;   /* -g * A = 1 */
            }
            m->diag_col[h1 + first] = 1;
            m->vn[h0 + first] = m->vn[h1 + first] = 1;
        }
    }
}

static at_view view4(const float *x, int R, int h, int T, int S)
{
    return (at_view){.data = x, .ndim = 4, .shape = {R, h, T, S},
                     .stride = {(int64_t)h * T * S, (int64_t)T * S, S, 1}};
}

/* Feeds every map of the batch b (1 layer of 2 heads). */
static void feed_all(at_align_eval *e, at_tokenizer *t, const at_align_batch *b)
{
    maps m;
    make_maps(t, b, &m);
    int R = b->rows, S = b->src_len, T = b->tgt_len;
    at_view a = view4(m.diag_col, R, 2, T, S), vn = view4(m.vn, R, 2, T, S);
    at_view g = view4(m.grad, R, 2, T, S);
    at_view roll = {.data = m.roll, .ndim = 3, .shape = {R, T, S},
                    .stride = {(int64_t)T * S, S, 1}};
    ck_assert_msg(at_align_eval_feed(e, AT_ALIGN_IN_ATTENTION, 0, &a, NULL) == AT_OK, "%s",
                  at_text_errmsg());
    ck_assert_int_eq(at_align_eval_feed(e, AT_ALIGN_IN_ATTENTION, 0, &a, NULL), AT_E_STATE);
    ck_assert_int_eq(at_align_eval_feed(e, AT_ALIGN_IN_VALUE_NORM, 1, &vn, NULL), AT_E_STATE);
    at_view wrong = view4(m.vn, R, 1, T, S);
    ck_assert_int_eq(at_align_eval_feed(e, AT_ALIGN_IN_VALUE_NORM, 0, &wrong, NULL), AT_E_SHAPE);
    ck_assert_int_eq(at_align_eval_feed(e, AT_ALIGN_IN_GRADIENT, 0, &g, NULL), AT_E_ARG);
    ck_assert_int_eq(at_align_eval_feed(e, AT_ALIGN_IN_ROLLOUT, 0, &roll, NULL), AT_OK);
    ck_assert_int_eq(at_align_eval_feed(e, AT_ALIGN_IN_VALUE_NORM, 0, &vn, NULL), AT_OK);
    at_align_batch next = {.struct_size = sizeof next};
    ck_assert_int_eq(at_align_eval_next(e, 4, &next), AT_E_STATE);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "attention gradients"));
    at_align_counts c;
    ck_assert_int_eq(at_align_eval_counts(e, AT_ALIGN_HEAD, 0, 0, &c), AT_E_STATE);
    ck_assert_int_eq(at_align_eval_feed(e, AT_ALIGN_IN_GRADIENT, 0, &g, &a), AT_OK);
    free(m.diag_col);
    free(m.roll);
    free(m.vn);
    free(m.grad);
}

static at_align_counts counts(at_align_eval *e, at_align_method m, int l, int h)
{
    at_align_counts c = {-1, -1, -1, -1};
    ck_assert_int_eq(at_align_eval_counts(e, m, l, h, &c), AT_OK);
    return c;
}

static void run(at_align_eval *e, at_tokenizer *t, int rows)
{
    at_align_batch b = {.struct_size = sizeof b};
    for (;;) {
        ck_assert_msg(at_align_eval_next(e, rows, &b) == AT_OK, "%s", at_text_errmsg());
        if (b.rows == 0)
            return;
        feed_all(e, t, &b);
    }
}

/* The corpus: 5 line pairs. Line 1 (3 words each, gold 0-0 1-1 2-2) and
 * line 3 (2 words, gold 0-0 1?1 0-1) are scored; line 2 has no gold link,
 * line 4 is longer than the model's 12 positions, line 5's source has an
 * ideographic space (U+3000) that the tokenizer's NFKC makes a word break
 * while the text has one word there (its pieces make 3 words, the text 2). */
static const char *src_lines[] = {"uno dos tres", "dos", "cuatro uno",
                                  "uno dos tres cuatro uno dos tres cuatro uno dos tres",
                                  "uno\xe3\x80\x80" "dos tres"};
static const char *tgt_lines[] = {"one two three", "two", "four one", "one", "one two"};
static const char *gold_lines[] = {"0-0 1-1 2-2", "", "0-0 1?1 0-1", "0-0", "0-0 1-1"};

START_TEST(evaluation_by_hand)
{
    at_tokenizer *t = small_tokenizer();
    at_align_eval *e = NULL, *e1 = NULL, *e2 = NULL;
    ck_assert_int_eq(at_align_eval_create(&e, t, t, 1, 2, 12), AT_OK);
    ck_assert_int_eq(at_align_eval_create(&e1, t, t, 1, 2, 12), AT_OK);
    ck_assert_int_eq(at_align_eval_create(&e2, t, t, 1, 2, 12), AT_OK);
    for (int k = 0; k < 5; k++) {
        at_align_eval *part = k < 2 ? e1 : e2;
        at_align_eval *both[] = {e, part};
        for (int i = 0; i < 2; i++)
            ck_assert_msg(at_align_eval_add(both[i], src_lines[k], strlen(src_lines[k]),
                                            tgt_lines[k], strlen(tgt_lines[k]), gold_lines[k],
                                            strlen(gold_lines[k])) == AT_OK,
                          "line %d: %s", k + 1, at_text_errmsg());
    }
    run(e, t, 4);
    run(e1, t, 1);
    run(e2, t, 1);
    at_align_eval_info in = {.struct_size = sizeof in};
    ck_assert_int_eq(at_align_eval_result(e, &in), AT_OK);
    ck_assert_int_eq(in.lines, 2);
    ck_assert_int_eq(in.no_links, 1);
    ck_assert_int_eq(in.truncated, 1);
    ck_assert_int_eq(in.pieces, 1);
    ck_assert_int_eq(in.pending, 0);
    /* |S| = 3 (line 1) + 2 (line 3: 0-0 0-1) = 5 */
    ck_assert_int_eq(in.gold, 5);
    /* Head 0 (diagonal): line 1 links 0-0 1-1 2-2 (3 sure hits); line 3
     * links 0-0 (sure) 1-1 (possible): |A| = 5, |A&S| = 4, |A&P| = 5:
     * AER = 1 - 9/10, precision 1, recall 4/5. */
    at_align_counts c = counts(e, AT_ALIGN_HEAD, 0, 0);
    ck_assert_int_eq(c.hyp, 5);
    ck_assert_int_eq(c.hit_sure, 4);
    ck_assert_int_eq(c.hit_possible, 5);
    rates(&c, 1 - 9.0 / 10, 1.0, 4.0 / 5);
    /* Head 1 (all to word 0): line 1 0-0 0-1 0-2 (1 hit); line 3 0-0 0-1
     * (2 sure hits): |A| = 5, |A&S| = |A&P| = 3: AER 1 - 6/10, precision
     * 3/5, recall 3/5. */
    c = counts(e, AT_ALIGN_HEAD, 0, 1);
    rates(&c, 1 - 6.0 / 10, 3.0 / 5, 3.0 / 5);
    ck_assert_int_eq(in.best_layer, 0);
    ck_assert_int_eq(in.best_head, 0);
    ck_assert_double_eq_tol(in.best_aer, 0.1, EPS);
    /* The mean of the two heads puts 1 on word 0 for target word 0 and a
     * tie (1/2, 1/2) elsewhere, won by word 0: the same links as head 1;
     * so does the average over all (one layer). */
    at_align_counts h1 = c;
    c = counts(e, AT_ALIGN_LAYER, 0, 0);
    ck_assert_int_eq(memcmp(&c, &h1, sizeof c), 0);
    c = counts(e, AT_ALIGN_AVERAGE, 0, 0);
    ck_assert_int_eq(memcmp(&c, &h1, sizeof c), 0);
    /* rollout: the diagonal; value norms: word 0; gradient x attention:
     * head 0's diagonal (head 1 contributes 0) */
    at_align_counts h0 = counts(e, AT_ALIGN_HEAD, 0, 0);
    c = counts(e, AT_ALIGN_ROLLOUT, 0, 0);
    ck_assert_int_eq(memcmp(&c, &h0, sizeof c), 0);
    c = counts(e, AT_ALIGN_VALUE_NORM, 0, 0);
    ck_assert_int_eq(memcmp(&c, &h1, sizeof c), 0);
    c = counts(e, AT_ALIGN_ATTRIBUTION, 0, 0);
    ck_assert_int_eq(memcmp(&c, &h0, sizeof c), 0);
    /* the two parts merged, and the sums of the parts added, are the whole */
    int64_t whole[64], sum[64];
    size_t n = 0, n2 = 0;
    ck_assert_int_eq(at_align_eval_sums(e, NULL, 0, &n), AT_OK);
    ck_assert_uint_eq(n, 4 + 4 * (2 + 1 + 4));
    ck_assert_int_eq(at_align_eval_sums(e, whole, 64, &n), AT_OK);
    ck_assert_int_eq(whole[0], 2);
    ck_assert_int_eq(at_align_eval_sums(e, whole, 3, &n), AT_E_RANGE);
    at_align_eval *m = NULL;
    ck_assert_int_eq(at_align_eval_create(&m, t, t, 1, 2, 12), AT_OK);
    ck_assert_int_eq(at_align_eval_sums(e1, sum, 64, &n2), AT_OK);
    ck_assert_int_eq(at_align_eval_add_sums(m, sum, n2), AT_OK);
    ck_assert_int_eq(at_align_eval_merge(e1, e2), AT_OK);
    ck_assert_int_eq(at_align_eval_sums(e1, sum, 64, &n2), AT_OK);
    ck_assert_int_eq(memcmp(sum, whole, n * sizeof *sum), 0);
    ck_assert_int_eq(at_align_eval_merge(m, e2), AT_OK);
    ck_assert_int_eq(at_align_eval_sums(m, sum, 64, &n2), AT_OK);
    ck_assert_int_eq(memcmp(sum, whole, n * sizeof *sum), 0);
    ck_assert_int_eq(at_align_eval_add_sums(m, sum, n2 - 1), AT_E_SHAPE);
    ck_assert_int_eq(at_align_eval_merge(m, m), AT_E_ARG);
    at_align_eval *other = NULL;
    ck_assert_int_eq(at_align_eval_create(&other, t, t, 2, 2, 12), AT_OK);
    ck_assert_int_eq(at_align_eval_merge(m, other), AT_E_SHAPE);
    ck_assert_int_eq(at_align_eval_counts(e, AT_ALIGN_HEAD, 0, 2, &c), AT_E_RANGE);
    ck_assert_int_eq(at_align_eval_counts(e, AT_ALIGN_LAYER, 1, 0, &c), AT_E_RANGE);
    ck_assert_int_eq(at_align_eval_counts(e, (at_align_method)9, 0, 0, &c), AT_E_ARG);
    /* bad lines: nothing is added */
    ck_assert_int_eq(at_align_eval_add(other, "uno", 3, "one", 3, "0-1", 3), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "line 1: link 0-1 is beyond the line's "
                                                   "words (1 source, 1 target)"));
    ck_assert_int_eq(at_align_eval_add(other, "uno", 3, "one", 3, "0:0", 3), AT_E_FORMAT);
    ck_assert_int_eq(at_align_eval_add(other, "\xff", 1, "one", 3, "0-0", 3), AT_E_FORMAT);
    ck_assert_int_eq(at_align_eval_result(other, &in), AT_OK);
    ck_assert_int_eq(in.pending + in.lines + in.no_links + in.truncated + in.pieces, 0);
    at_align_eval_free(other);
    ck_assert_int_eq(at_align_eval_create(&other, t, t, 0, 2, 12), AT_E_ARG);
    ck_assert_ptr_null(other);
    ck_assert_int_eq(at_align_eval_create(&other, t, t, 1, 2, 1), AT_E_ARG);
    ck_assert_int_eq(at_align_eval_create(&other, NULL, t, 1, 2, 12), AT_E_ARG);
    at_align_eval_free(m);
    at_align_eval_free(e);
    at_align_eval_free(e1);
    at_align_eval_free(e2);
    at_align_eval_free(NULL);
    at_tokenizer_free(t);
    cleanup();
}
END_TEST

START_TEST(corpus_files)
{
    at_tokenizer *t = small_tokenizer();
    char buf[512] = "";
    for (int k = 0; k < 5; k++)
        strcat(strcat(buf, src_lines[k]), "\n");
    write_file("t.src", buf);
    buf[0] = 0;
    for (int k = 0; k < 5; k++)
        strcat(strcat(buf, tgt_lines[k]), "\r\n");   /* \r\n: the \r is dropped */
    write_file("t.tgt", buf);
    buf[0] = 0;
    for (int k = 0; k < 5; k++)
        strcat(strcat(buf, gold_lines[k]), "\n");
    write_file("t.align", buf);
    /* the same corpus as evaluation_by_hand, from the files */
    at_align_eval *e = NULL;
    ck_assert_int_eq(at_align_eval_create(&e, t, t, 1, 2, 12), AT_OK);
    ck_assert_msg(at_align_eval_add_corpus(e, tmpdir, "t", 0) == AT_OK, "%s", at_text_errmsg());
    run(e, t, 16);
    at_align_eval_info in = {.struct_size = sizeof in};
    ck_assert_int_eq(at_align_eval_result(e, &in), AT_OK);
    ck_assert_int_eq(in.lines, 2);
    ck_assert_int_eq(in.gold, 5);
    at_align_counts c = counts(e, AT_ALIGN_HEAD, 0, 0);
    rates(&c, 1 - 9.0 / 10, 1.0, 4.0 / 5);
    at_align_eval_free(e);
    /* the corpus in 3 parts (lines 1-2, 3-4, 5: n / parts each, the first
     * n % parts one more), merged: the hand-worked figures above again */
    at_align_eval *whole = NULL;
    ck_assert_int_eq(at_align_eval_create(&whole, t, t, 1, 2, 12), AT_OK);
    const int64_t sizes[3] = {2, 2, 1};
    for (int part = 0; part < 3; part++) {
        at_align_eval *q = NULL;
        ck_assert_int_eq(at_align_eval_create(&q, t, t, 1, 2, 12), AT_OK);
        ck_assert_msg(at_align_eval_add_corpus_part(q, tmpdir, "t", 0, part, 3) == AT_OK, "%s",
                      at_text_errmsg());
        ck_assert_int_eq(at_align_eval_result(q, &in), AT_OK);
        ck_assert_int_eq(in.pending + in.lines + in.no_links + in.truncated + in.pieces,
                         sizes[part]);
        run(q, t, 16);
        ck_assert_int_eq(at_align_eval_merge(whole, q), AT_OK);
        at_align_eval_free(q);
    }
    ck_assert_int_eq(at_align_eval_result(whole, &in), AT_OK);
    ck_assert_int_eq(in.lines, 2);
    ck_assert_int_eq(in.gold, 5);
    c = counts(whole, AT_ALIGN_HEAD, 0, 0);
    rates(&c, 1 - 9.0 / 10, 1.0, 4.0 / 5);
    ck_assert_int_eq(at_align_eval_add_corpus_part(whole, tmpdir, "t", 0, 3, 3), AT_E_ARG);
    ck_assert_int_eq(at_align_eval_add_corpus_part(whole, tmpdir, "t", 0, -1, 3), AT_E_ARG);
    ck_assert_int_eq(at_align_eval_add_corpus_part(whole, tmpdir, "t", 0, 0, 0), AT_E_ARG);
    ck_assert_int_eq(at_align_eval_add_corpus_part(NULL, tmpdir, "t", 0, 0, 1), AT_E_ARG);
    ck_assert_int_eq(at_align_eval_add_corpus_part(whole, tmpdir, "t", -1, 0, 1), AT_E_ARG);
    at_align_eval_free(whole);
    /* --limit 1: line 1 only */
    ck_assert_int_eq(at_align_eval_create(&e, t, t, 1, 2, 12), AT_OK);
    ck_assert_int_eq(at_align_eval_add_corpus(e, tmpdir, "t", 1), AT_OK);
    ck_assert_int_eq(at_align_eval_result(e, &in), AT_OK);
    ck_assert_int_eq(in.pending, 1);
    /* a file of proposed links, every line scored (no model, nothing left
     * out but line 2, which has no gold): line 1 "0-0 0-1 2-2" (2 hits of
     * 3), line 3 "1-0" (a miss), line 4 "0-0" (a hit), line 5 none: |A| =
     * 5, |S| = 3 + 2 + 1 + 2 = 8, |A&S| = |A&P| = 3: AER = 1 - 6/13,
     * precision 3/5, recall 3/8. */
    write_file("h.align", "0-0 0-1 2-2\n0-0\n1-0\n0-0\n\n");
    at_align_counts h;
    int64_t lines = 0;
    char hp[160];
    snprintf(hp, sizeof hp, "%s/h.align", tmpdir);
    ck_assert_msg(at_align_score_files(tmpdir, "t", hp, 0, &h, &lines) == AT_OK, "%s",
                  at_text_errmsg());
    ck_assert_int_eq(lines, 5);
    ck_assert_int_eq(h.hyp, 5);   /* line 2 has no gold: its 0-0 is not counted */
    ck_assert_int_eq(h.sure, 8);
    ck_assert_int_eq(h.hit_sure, 3);
    rates(&h, 1 - 6.0 / 13, 3.0 / 5, 3.0 / 8);
    /* bad files: line counts, links beyond a line's words, syntax, no split */
    write_file("b.align", "0-0\n\n");
    snprintf(hp, sizeof hp, "%s/b.align", tmpdir);
    ck_assert_int_eq(at_align_score_files(tmpdir, "t", hp, 0, &h, NULL), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "b.align has 2 lines but the corpus has 5"));
    write_file("b.align", "0-0\n\n0-0\n0-0\n9-0\n");
    ck_assert_int_eq(at_align_score_files(tmpdir, "t", hp, 0, &h, NULL), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "b.align line 5: link 9-0 is beyond the "
                                                   "line's words (2 source, 2 target)"));
    write_file("b.align", "0-0\n\n0-0\n0x0\n0-0\n");
    ck_assert_int_eq(at_align_score_files(tmpdir, "t", hp, 0, &h, NULL), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "b.align line 4: '0x0' is not a link i-j"));
    ck_assert_int_eq(at_align_score_files(tmpdir, "nope", hp, 0, &h, NULL), AT_E_IO);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "nope.src"));
    ck_assert_int_eq(at_align_score_files(tmpdir, "../t", hp, 0, &h, NULL), AT_E_ARG);
    /* the gold file of another length: the evaluation refuses it and adds nothing */
    write_file("t.align", "0-0\n");
    at_align_eval *g = NULL;
    ck_assert_int_eq(at_align_eval_create(&g, t, t, 1, 2, 12), AT_OK);
    ck_assert_int_eq(at_align_eval_add_corpus(g, tmpdir, "t", 0), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "t.align has 1 line but the corpus has 5"));
    write_file("t.align", "0-0\n\n\n\n");
    write_file("t.tgt", "one\n\none\none\none\n");
    ck_assert_int_eq(at_align_eval_add_corpus(g, tmpdir, "t", 0), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "t.tgt line 2 is empty"));
    ck_assert_int_eq(at_align_eval_result(g, &in), AT_OK);
    ck_assert_int_eq(in.pending + in.lines + in.no_links + in.truncated + in.pieces, 0);
    at_align_eval_free(g);
    at_align_eval_free(e);
    at_tokenizer_free(t);
    cleanup();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("text_align");
    TCase *t = tcase_create("align");
    tcase_add_test(t, parse_links);
    tcase_add_test(t, score_by_hand);
    tcase_add_test(t, pool_and_argmax);
    tcase_add_test(t, word_map_of_pieces);
    tcase_add_test(t, evaluation_by_hand);
    tcase_add_test(t, corpus_files);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
