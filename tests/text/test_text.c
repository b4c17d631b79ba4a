/* The Check suite of libat_text (test `text`): published sacreBLEU values,
 * the tokenizer's rules, settings, and bad input (invalid UTF-8, line
 * counts, empty references, a missing file, a FIFO, a directory), and the
 * SentencePiece tokenizer (tokenizer_*: special ids, round trips of Spanish,
 * file = buffer, bad input). The
 * comparison with independent implementations over hundreds of segments is
 * tests/text/check_metrics.py (test `text_metrics`). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "at_text.h"

/* Corpus BLEU of n segments with k references each (refs[i*k + r]). */
static at_bleu_score bleu_of(const char *const *hyps, const char *const *refs, size_t n,
                             size_t k, int tokenize, int smooth)
{
    at_bleu *b;
    ck_assert_int_eq(at_bleu_create(&b), AT_OK);
    ck_assert_int_eq(at_bleu_set(b, AT_BLEU_TOKENIZE, tokenize), AT_OK);
    ck_assert_int_eq(at_bleu_set(b, AT_BLEU_SMOOTH, smooth), AT_OK);
    for (size_t i = 0; i < n; i++) {
        size_t lens[8];
        for (size_t r = 0; r < k; r++)
            lens[r] = strlen(refs[i * k + r]);
        ck_assert_msg(at_bleu_add(b, hyps[i], strlen(hyps[i]), refs + i * k, lens, k) == AT_OK,
                      "%s", at_text_errmsg());
    }
    at_bleu_score s = {.struct_size = sizeof s};
    ck_assert_int_eq(at_bleu_result(b, &s), AT_OK);
    at_bleu_free(b);
    return s;
}

static double chrf_of(const char *const *hyps, const char *const *refs, size_t n, double beta,
                      int eps, int whitespace)
{
    at_chrf *c;
    ck_assert_int_eq(at_chrf_create(&c), AT_OK);
    ck_assert_int_eq(at_chrf_set(c, AT_CHRF_BETA, beta), AT_OK);
    ck_assert_int_eq(at_chrf_set(c, AT_CHRF_EPS_SMOOTHING, eps), AT_OK);
    ck_assert_int_eq(at_chrf_set(c, AT_CHRF_WHITESPACE, whitespace), AT_OK);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(refs[i]);
        ck_assert_msg(at_chrf_add(c, hyps[i], strlen(hyps[i]), refs + i, &l, 1) == AT_OK, "%s",
                      at_text_errmsg());
    }
    at_chrf_score s = {.struct_size = sizeof s};
    ck_assert_int_eq(at_chrf_result(c, &s), AT_OK);
    at_chrf_free(c);
    return s.score;
}

/* sacreBLEU's test/test_bleu.py (mjpost/sacrebleu, test_corpus_bleu_cases:
 * the README example, two references per segment): 48.530827 by default and
 * with tokenize='13a' or smooth_method='none', 49.1919566 with
 * tokenize='none', 0.0 for empty hypotheses; its EPSILON is 1e-8. */
static const char *const readme_hyps[] = {"The dog bit the man.", "It wasn't surprising.",
                                          "The man had just bitten him."};
static const char *const readme_refs[] = {
    "The dog bit the man.",   "The dog had bit the man.", "It was not unexpected.",
    "No one was surprised.", "The man bit him first.",   "The man had bitten the dog."};

START_TEST(bleu_published_readme)
{
    at_bleu_score s = bleu_of(readme_hyps, readme_refs, 3, 2, AT_BLEU_TOK_13A, AT_BLEU_SMOOTH_EXP);
    ck_assert_double_eq_tol(s.score, 48.530827, 1e-8);
    s = bleu_of(readme_hyps, readme_refs, 3, 2, AT_BLEU_TOK_13A, AT_BLEU_SMOOTH_NONE);
    ck_assert_double_eq_tol(s.score, 48.530827, 1e-8);
    s = bleu_of(readme_hyps, readme_refs, 3, 2, AT_BLEU_TOK_NONE, AT_BLEU_SMOOTH_EXP);
    ck_assert_double_eq_tol(s.score, 49.1919566, 1e-7);
    const char *const empty[] = {"", "", ""};
    s = bleu_of(empty, readme_refs, 3, 2, AT_BLEU_TOK_13A, AT_BLEU_SMOOTH_EXP);
    ck_assert_double_eq(s.score, 0.0);
    ck_assert_int_eq(s.hyp_len, 0);
    ck_assert_int_eq(s.segments, 3);
}
END_TEST

/* test_bleu.py's test_case_statistics: counts [4, 2, 1, 0], totals [6, 5, 4, 3]. */
START_TEST(bleu_published_statistics)
{
    const char *h[] = {"am I am a character sequence"};
    const char *r[] = {"I am a symbol string sequence a a"};
    at_bleu_score s = bleu_of(h, r, 1, 1, AT_BLEU_TOK_NONE, AT_BLEU_SMOOTH_EXP);
    const int64_t counts[] = {4, 2, 1, 0}, totals[] = {6, 5, 4, 3};
    for (int n = 0; n < 4; n++) {
        ck_assert_int_eq(s.counts[n], counts[n]);
        ck_assert_int_eq(s.totals[n], totals[n]);
    }
    /* exp smoothing: the 4-gram precision is 100 / (2 * 3) */
    ck_assert_double_eq_tol(s.precisions[3], 100.0 / 6.0, 1e-12);
    s = bleu_of(h, r, 1, 1, AT_BLEU_TOK_NONE, AT_BLEU_SMOOTH_NONE);
    ck_assert_double_eq_tol(s.score, 0.0, 1e-12);
}
END_TEST

/* The 13a rules, one by one (the expected tokens follow mteval-v13a's
 * regular expressions as sacreBLEU writes them). */
START_TEST(bleu_tokenizer_13a)
{
    static const struct {
        const char *text;
        int tokens;
    } cases[] = {
        {"1,000.50 dollars.", 3},          /* 1,000.50 | dollars | . */
        {"a.b", 3},                        /* a . b */
        {"3-4", 3},                        /* 3 - 4 */
        {"well-known", 1},                 /* a dash after a letter stays */
        {"it's", 1},                       /* ' is not split */
        {"&quot;hi&quot; &amp; &lt;b&gt;", 7}, /* " hi " & < b > */
        {"x<skipped>y", 1},
        {"  \xc2\xa0 ", 0},                /* white space only, NBSP included */
        {"caf\xc3\xa9.", 2},               /* café . */
        {"(\xe4\xbd\xa0\xe5\xa5\xbd)", 3}, /* ( 你好 ) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *h[] = {cases[i].text};
        const char *r[] = {"x"};
        at_bleu_score s = bleu_of(h, r, 1, 1, AT_BLEU_TOK_13A, AT_BLEU_SMOOTH_EXP);
        int want = cases[i].tokens;
        ck_assert_msg(s.hyp_len == want, "'%s': %lld tokens, expected %d", cases[i].text,
                      (long long)s.hyp_len, want);
    }
}
END_TEST

/* sacreBLEU's test/test_chrf.py (mjpost/sacrebleu): corpus_chrf with
 * char_order 6, word_order 0, beta 3; eps_smoothing=True (test_cases),
 * eps_smoothing=False (test_cases_effective_order), remove_whitespace=False
 * (test_cases_keep_whitespace); sentence_chrf with beta 2 and eps smoothing
 * (test_sentence_level_chrf). Its EPSILON is 1e-4. */
START_TEST(chrf_published)
{
    static const struct {
        const char *h[2], *r[2];
        int n;
        double want;
    } eps[] = {
        {{"abcdefg"}, {"hijklmnop"}, 1, 0.0},
        {{"a"}, {"b"}, 1, 0.0},
        {{""}, {"b"}, 1, 0.0},
        {{""}, {"ref"}, 1, 0.0},
        {{""}, {"reference"}, 1, 0.0},
        {{"aa"}, {"ab"}, 1, 8.3333},
        {{"a", "b"}, {"a", "c"}, 2, 8.3333},
        {{"a"}, {"a"}, 1, 16.6667},
        {{"a b c"}, {"a b c"}, 1, 50.0},
        {{"a b c"}, {"abc"}, 1, 50.0},
        {{" risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."},
         {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."},
         1, 63.361730},
        {{" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. "},
         {"Das Verh\xc3\xa4ltnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."},
         1, 64.1302698},
        {{"Niemand hat die Absicht, eine Mauer zu errichten"},
         {"Niemand hat die Absicht, eine Mauer zu errichten"}, 1, 100.0},
    };
    for (size_t i = 0; i < sizeof eps / sizeof *eps; i++)
        ck_assert_msg(fabs(chrf_of(eps[i].h, eps[i].r, (size_t)eps[i].n, 3, 1, 0) - eps[i].want) < 1e-4,
                      "eps case %zu: %.7f, expected %.7f", i,
                      chrf_of(eps[i].h, eps[i].r, (size_t)eps[i].n, 3, 1, 0), eps[i].want);
    static const struct {
        const char *h[2], *r[2];
        int n;
        double want;
    } eff[] = {
        {{"a"}, {"a"}, 1, 100.0},   {{""}, {"reference"}, 1, 0.0},
        {{"a b c"}, {"a b c"}, 1, 100.0}, {{"a b c"}, {"abc"}, 1, 100.0},
        {{""}, {"c"}, 1, 0.0},      {{"a", "b"}, {"a", "c"}, 2, 50.0},
        {{"aa"}, {"ab"}, 1, 25.0},
    };
    for (size_t i = 0; i < sizeof eff / sizeof *eff; i++)
        ck_assert_msg(fabs(chrf_of(eff[i].h, eff[i].r, (size_t)eff[i].n, 3, 0, 0) - eff[i].want) < 1e-4,
                      "effective-order case %zu", i);
    const char *kh1[] = {"Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."};
    const char *kr1[] = {"Das Verh\xc3\xa4ltnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."};
    ck_assert_double_eq_tol(chrf_of(kh1, kr1, 1, 3, 0, 1), 67.3481606, 1e-4);
    const char *kh2[] = {"risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."};
    const char *kr2[] = {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."};
    ck_assert_double_eq_tol(chrf_of(kh2, kr2, 1, 3, 0, 1), 65.2414427, 1e-4);
    static const struct {
        const char *h, *r;
        double want;
    } sent[] = {
        {"Co n\xc3\xa1s nejv\xc3\xad" "c tr\xc3\xa1p\xc3\xad, proto\xc5\xbe" "e l\xc3\xa9ka\xc5\x99i si vyb\xc3\xadraj\xc3\xad, kdo bude \xc5\xbe\xc3\xadt a kdo zem\xc5\x99" "e.",
         "Nejv\xc3\xad" "ce smutn\xc3\xad jsme z toho, \xc5\xbe" "e mus\xc3\xadme rozhodovat o tom, kdo bude \xc5\xbe\xc3\xadt a kdo zem\xc5\x99" "e.",
         39.14078509},
        {"Nebo prost\xc4\x9b nemaj\xc3\xad vybaven\xc3\xad, kter\xc3\xa9 by jim pomohlo, uvedli l\xc3\xa9ka\xc5\x99i.",
         "A n\xc4\x9bkdy nem\xc3\xa1me ani pot\xc5\x99" "ebn\xc3\xbd materi\xc3\xa1l, abychom jim pomohli, popsali l\xc3\xa9ka\xc5\x99i.",
         31.22557079},
        {"Lapali po dechu, jejich \xc5\xbeivoty skon\xc4\x8dily d\xc5\x99\xc3\xadv, ne\xc5\xbe skute\xc4\x8dn\xc4\x9b za\xc4\x8d" "aly.",
         "Lapali po dechu a pak jejich \xc5\xbeivot skon\xc4\x8dil - d\xc5\x99\xc3\xadv, ne\xc5\xbe skute\xc4\x8dn\xc4\x9b mohl za\xc4\x8d\xc3\xadt, p\xc5\x99ipomn\xc4\x9bli.",
         57.15704367},
    };
    for (size_t i = 0; i < sizeof sent / sizeof *sent; i++)
        ck_assert_msg(fabs(chrf_of(&sent[i].h, &sent[i].r, 1, 2, 1, 0) - sent[i].want) < 1e-4,
                      "sentence case %zu: %.8f", i, chrf_of(&sent[i].h, &sent[i].r, 1, 2, 1, 0));
}
END_TEST

START_TEST(bad_arguments)
{
    at_bleu *b;
    at_chrf *c;
    ck_assert_int_eq(at_bleu_create(NULL), AT_E_ARG);
    ck_assert_int_eq(at_bleu_create(&b), AT_OK);
    ck_assert_int_eq(at_chrf_create(&c), AT_OK);
    const char *r[] = {"a b", ""};
    size_t rl[] = {3, 0};
    /* invalid UTF-8: overlong, surrogate, F5, truncated, lone continuation */
    static const char *const bad[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf5\x80\x80\x80", "ab\xe2\x82",
                                      "\x80", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(at_bleu_add(b, bad[i], strlen(bad[i]), r, rl, 1), AT_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "not valid UTF-8"));
        ck_assert_int_eq(at_chrf_add(c, "x", 1, &bad[i], (size_t[]){strlen(bad[i])}, 1), AT_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "reference 1"));
    }
    /* every reference empty; no reference; NULL */
    ck_assert_int_eq(at_bleu_add(b, "a", 1, r + 1, rl + 1, 1), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "empty"));
    ck_assert_int_eq(at_bleu_add(b, "a", 1, r, rl, 0), AT_E_ARG);
    ck_assert_int_eq(at_bleu_add(b, NULL, 1, r, rl, 1), AT_E_ARG);
    ck_assert_int_eq(at_bleu_add(NULL, "a", 1, r, rl, 1), AT_E_ARG);
    /* an empty reference beside a real one is left out */
    ck_assert_int_eq(at_bleu_add(b, "a b", 3, r, rl, 2), AT_OK);
    at_bleu_score s = {.struct_size = sizeof s};
    ck_assert_int_eq(at_bleu_result(b, &s), AT_OK);
    ck_assert_double_eq_tol(s.score, 0.0, 1e-12);   /* no 3-gram: total 0 ends the sum */
    ck_assert_int_eq(s.ref_len, 2);
    /* settings */
    ck_assert_int_eq(at_bleu_set(b, AT_BLEU_TOKENIZE, AT_BLEU_TOK_NONE), AT_E_STATE);
    ck_assert_int_eq(at_bleu_set(b, AT_BLEU_SMOOTH, 7), AT_E_ARG);
    ck_assert_int_eq(at_bleu_set(b, (at_bleu_param)99, 0), AT_E_ARG);
    ck_assert_int_eq(at_bleu_set(b, AT_BLEU_SMOOTH, AT_BLEU_SMOOTH_FLOOR), AT_OK);
    ck_assert_int_eq(at_bleu_reset(b), AT_OK);
    ck_assert_int_eq(at_bleu_set(b, AT_BLEU_TOKENIZE, AT_BLEU_TOK_NONE), AT_OK);
    s.struct_size = 8;
    ck_assert_int_eq(at_bleu_result(b, &s), AT_E_ARG);
    ck_assert_int_eq(at_chrf_set(c, AT_CHRF_CHAR_ORDER, 0), AT_E_ARG);
    ck_assert_int_eq(at_chrf_set(c, AT_CHRF_CHAR_ORDER, AT_CHRF_MAX_ORDER + 1), AT_E_ARG);
    ck_assert_int_eq(at_chrf_set(c, AT_CHRF_BETA, -1), AT_E_ARG);
    ck_assert_int_eq(at_chrf_add(c, "abc", 3, r, rl, 1), AT_OK);
    ck_assert_int_eq(at_chrf_set(c, AT_CHRF_BETA, 3), AT_E_STATE);
    at_bleu_free(b);
    at_chrf_free(c);
    at_bleu_free(NULL);
    at_chrf_free(NULL);
}
END_TEST

static at_status eval2(const char *h, const char *r, double *bleu)
{
    at_bleu *b;
    at_chrf *c;
    ck_assert_int_eq(at_bleu_create(&b), AT_OK);
    ck_assert_int_eq(at_chrf_create(&c), AT_OK);
    size_t rl = strlen(r);
    const char *names[] = {"hyp.txt", "ref.txt"};
    at_status s = at_text_eval_buffers(h, strlen(h), &r, &rl, 1, names, b, c);
    at_bleu_score bs = {.struct_size = sizeof bs};
    if (s == AT_OK && bleu) {
        ck_assert_int_eq(at_bleu_result(b, &bs), AT_OK);
        *bleu = bs.score;
    }
    at_bleu_free(b);
    at_chrf_free(c);
    return s;
}

START_TEST(eval_lines)
{
    double x = -1, y = -1;
    /* a final newline, \r\n and trailing blanks change nothing */
    ck_assert_int_eq(eval2("a b c d e\nf g h i j", "a b c d e\nf g h i k", &x), AT_OK);
    ck_assert_int_eq(eval2("a b c d e \r\nf g h i j\n", "a b c d e\nf g h i k\r\n", &y), AT_OK);
    ck_assert_double_eq(x, y);
    /* line counts */
    ck_assert_int_eq(eval2("a\nb\nc\n", "a\nb\nc\nd\n", NULL), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "ref.txt has 4 lines but hyp.txt has 3"));
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "line 4 of ref.txt"));
    ck_assert_int_eq(eval2("a\nb\n\n", "a\nb\n", NULL), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "line 3 of hyp.txt"));
    /* invalid UTF-8, named by file and line */
    ck_assert_int_eq(eval2("ok\nok\nbad \xff here\n", "a\nb\nc\n", NULL), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "hyp.txt: line 3 is not valid UTF-8 (byte 5"));
    /* an empty (or blank) reference line; an empty hypothesis line is fine */
    ck_assert_int_eq(eval2("a\n\nc\n", "a\nb\nc\n", NULL), AT_OK);
    ck_assert_int_eq(eval2("a\nb\nc\n", "a\n  \t\nc\n", NULL), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "ref.txt: line 2 is empty"));
    /* no line at all */
    ck_assert_int_eq(eval2("", "", NULL), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "hyp.txt has no line"));
}
END_TEST

START_TEST(eval_files)
{
    char dir[] = "/tmp/at_text_test.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char hyp[256], ref[256], fifo[256];
    snprintf(hyp, sizeof hyp, "%s/hyp.txt", dir);
    snprintf(ref, sizeof ref, "%s/ref.txt", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    FILE *f = fopen(hyp, "w");
    fputs("The dog bit the man.\nIt wasn't surprising.\nThe man had just bitten him.\n", f);
    fclose(f);
    f = fopen(ref, "w");
    fputs("The dog bit the man.\nIt was not unexpected.\nThe man bit him first.\n", f);
    fclose(f);
    at_bleu *b;
    ck_assert_int_eq(at_bleu_create(&b), AT_OK);
    const char *refs[] = {ref};
    ck_assert_msg(at_text_eval_files(hyp, refs, 1, b, NULL) == AT_OK, "%s", at_text_errmsg());
    at_bleu_score s = {.struct_size = sizeof s};
    ck_assert_int_eq(at_bleu_result(b, &s), AT_OK);
    ck_assert_int_eq(s.segments, 3);
    ck_assert_int_eq(s.hyp_len, 17);
    /* missing file, FIFO (refused, not waited on), directory */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.txt", dir);
    refs[0] = missing;
    ck_assert_int_eq(at_text_eval_files(hyp, refs, 1, b, NULL), AT_E_IO);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "none.txt"));
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    refs[0] = fifo;
    ck_assert_int_eq(at_text_eval_files(hyp, refs, 1, b, NULL), AT_E_IO);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "fifo"));
    refs[0] = dir;
    ck_assert_int_eq(at_text_eval_files(hyp, refs, 1, b, NULL), AT_E_IO);
    ck_assert_int_eq(at_text_eval_files(hyp, refs, 1, NULL, NULL), AT_E_ARG);
    /* nothing was added by the failures */
    ck_assert_int_eq(at_bleu_result(b, &s), AT_OK);
    ck_assert_int_eq(s.segments, 3);
    at_bleu_free(b);
    unlink(fifo);
    unlink(hyp);
    unlink(ref);
    rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------- SWORD Bibles */

/* The plain text of markup, and the Strong's numbers of each word as
 * "H430|G2316,G3588|" ('|' ends a word). */
static void parse_of(at_bible *b, const char *markup, char *text, size_t tn, char *nums,
                     size_t nn)
{
    at_bible_verse v = {.struct_size = sizeof v};
    ck_assert_msg(at_bible_parse(b, markup, strlen(markup), &v) == AT_OK, "%s",
                  at_text_errmsg());
    ck_assert_uint_eq(strlen(v.text), v.text_len);
    snprintf(text, tn, "%s", v.text);
    size_t len = 0;
    nums[0] = '\0';
    for (int32_t i = 0; i < v.words; i++) {
        for (int32_t k = v.strong_start[i]; k < v.strong_start[i + 1]; k++) {
            int32_t c = v.strongs[k];
            len += (size_t)snprintf(nums + len, nn - len, "%s%c%d",
                                    k > v.strong_start[i] ? "," : "",
                                    c >= AT_STRONG_GREEK ? 'G' : 'H',
                                    (int)(c >= AT_STRONG_GREEK ? c - AT_STRONG_GREEK : c));
        }
        len += (size_t)snprintf(nums + len, nn - len, "|");
    }
}

START_TEST(bible_markup)
{
    at_bible *b;
    ck_assert_int_eq(at_bible_open(NULL, &b), AT_OK);
    char t[512], n[512];
    /* the KJV's Gen 1:1 and 1:4: notes dropped, transChange kept, bare words without numbers */
    parse_of(b, "In the <w lemma=\"strong:H7225\">beginning</w> <w lemma=\"strong:H0430\">God</w> "
                "<w lemma=\"strong:H1254\">created</w> the earth.", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "In the beginning God created the earth.");
    ck_assert_str_eq(n, "||H7225|H430|H1254|||");
    parse_of(b, "<div type=\"x-milestone\" subType=\"x-preverse\" sID=\"pv1\"/><div sID=\"gen4\" "
                "type=\"x-p\"/> <div type=\"x-milestone\" eID=\"pv1\"/>¶ And <w "
                "lemma=\"strong:H3588\">that</w> <transChange type=\"added\">it was</transChange> "
                "<w lemma=\"strong:H2896\">good</w>.<note placement=\"foot\"><reference "
                "type=\"annotateRef\">1.4 </reference>Heb. between</note>  <div eID=\"gen3\" "
                "type=\"x-p\"/>", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "And that it was good.");
    ck_assert_str_eq(n, "|H3588|||H2896|");
    /* RV1909: several words in one <w>, several numbers in one lemma, punctuation outside */
    parse_of(b, "<w lemma=\"strong:H7225\">EN el principio</w> <w lemma=\"strong:G2424 G5547\">por "
                "Jesucristo</w>: ¡<w lemma=\"strong:H1121\">OH</w>", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "EN el principio por Jesucristo: ¡OH");
    ck_assert_str_eq(n, "H7225|H7225|H7225|G2424,G5547|G2424,G5547|H1121|");
    /* titles: a canonical one (a psalm's superscription) stays, the others go */
    parse_of(b, "<title canonical=\"true\" type=\"psalm\">A <w lemma=\"strong:H4210\">Psalm</w>."
                "</title><lg sID=\"a\"/><l sID=\"b\"/><divineName><w lemma=\"strong:H3068\">LORD"
                "</w></divineName>, how<l eID=\"b\"/>many", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "A Psalm. LORD, how many");
    ck_assert_str_eq(n, "|H4210|H3068|||");
    parse_of(b, "Amen.  <chapter eID=\"Rom.16\"/> <title>Written to the Romans <transChange "
                "type=\"added\">and sent</transChange> by Phebe.</title> <div eID=\"x\"/>", t,
             sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "Amen.");
    parse_of(b, "<title><foreign>ב BETH.</foreign></title>Wherewithal", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "Wherewithal");
    /* entities, white space of every kind, other lemma schemes, nesting */
    parse_of(b, "\t a &amp; b&lt;c&gt; &#233;&#x263A; &bogus; x\xc2\xa0y\n<w lemma=\"lemma.TR:x "
                "strong:G0001 lemma.TR:G2\">z</w> <w lemma=\"strong:H5\">p <w lemma=\"strong:H6\">q"
                "</w></w> ", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "a & b<c> é☺ &bogus; x y z p q");
    ck_assert_str_eq(n, "|||||||G1|H5|H5,H6|");
    /* nothing, markup only, an unclosed tag, stray end tags */
    parse_of(b, "", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "");
    parse_of(b, "<div sID=\"x\"/> <milestone type=\"x-p\"/>", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "");
    parse_of(b, "</w></note>a <b", t, sizeof t, n, sizeof n);
    ck_assert_str_eq(t, "a <b");
    /* invalid UTF-8 and bad arguments */
    at_bible_verse v = {.struct_size = sizeof v};
    ck_assert_int_eq(at_bible_parse(b, "a\xff", 2, &v), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "byte 1"));
    ck_assert_int_eq(at_bible_parse(b, NULL, 1, &v), AT_E_ARG);
    v.struct_size = 8;
    ck_assert_int_eq(at_bible_parse(b, "a", 1, &v), AT_E_ARG);
    int done = 0;
    v.struct_size = sizeof v;
    ck_assert_int_eq(at_bible_next(b, &v, &done), AT_E_STATE);
    ck_assert_str_eq(at_bible_info(b, "Versification"), "");
    at_bible_free(b);
    at_bible_free(NULL);
    ck_assert_int_eq(at_bible_open(NULL, NULL), AT_E_ARG);
}
END_TEST

/* The installed Debian modules (sword-text-kjv): the first verses, and a
 * missing module's message. */
START_TEST(bible_modules)
{
    at_bible *b = NULL;
    ck_assert_int_eq(at_bible_open("engKJV2006ebX", &b), AT_E_IO);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "engKJV2006ebX"));
    ck_assert_int_eq(at_bible_open("spaRV1909eb_missing", &b), AT_E_IO);
    if (at_bible_open("engKJV2006eb", &b) != AT_OK) {
        /* not installed: the message names the package */
        ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "sword-text-kjv"));
        return;
    }
    ck_assert_str_eq(at_bible_info(b, "Versification"), "KJV");
    at_bible_verse v = {.struct_size = sizeof v};
    int done = 1;
    ck_assert_int_eq(at_bible_next(b, &v, &done), AT_OK);
    ck_assert_int_eq(done, 0);
    ck_assert_str_eq(v.ref, "Gen 1:1");
    ck_assert_str_eq(v.book, "Gen");
    ck_assert_int_eq(v.book_index, 1);
    ck_assert_str_eq(v.text, "In the beginning God created the heaven and the earth.");
    ck_assert_int_eq(v.words, 10);
    ck_assert_int_eq(v.strong_start[3] + 1, v.strong_start[4]);
    ck_assert_int_eq(v.strongs[v.strong_start[3]], 430);   /* God: H0430 */
    ck_assert_ptr_nonnull(strstr(v.markup, "strong:H0430"));
    ck_assert_int_eq(at_bible_next(b, &v, &done), AT_OK);
    ck_assert_str_eq(v.ref, "Gen 1:2");
    at_bible_free(b);
}
END_TEST

START_TEST(version)
{
    ck_assert_uint_eq(at_text_version_number(), AT_VERSION_NUMBER);
}
END_TEST

/* ---------------------------------------------------------------- tokenizer */

/* A small Spanish text, generated: 400 sentences from a few words with
 * accents, ñ, ¿ ¡ and punctuation. Returns the file's path (static). */
static const char *tok_corpus(char *dir, size_t dirlen)
{
    static char path[512];
    snprintf(dir, dirlen, "/tmp/at_tok_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/train.txt", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    static const char *subj[] = {"El niño", "La mujer", "Nuestro señor", "El pájaro",
                                 "La canción", "José", "María", "El corazón"};
    static const char *verb[] = {"comió", "cantó", "miró", "está en", "llegó a",
                                 "habló con", "bendijo", "oyó"};
    static const char *obj[] = {"la montaña", "el pan", "la mañana", "el árbol",
                                "la nación", "el camión", "su compañía", "la vendimia"};
    static const char *end[] = {".", "?", " hoy.", " también.", " después.", " allí."};
    for (unsigned i = 0; i < 400; i++) {
        unsigned h = i * 2654435761u;
        fprintf(f, "%s%s %s %s%s\n", (h >> 7) % 5 == 0 ? "¿" : "", subj[(h >> 3) % 8],
                verb[(h >> 11) % 8], obj[(h >> 17) % 8], end[(h >> 23) % 6]);
    }
    fclose(f);
    return path;
}

static void tok_cleanup(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static at_tokenizer *tok_train(const char *path, int model, int vocab)
{
    at_tokenizer_options o = {.struct_size = sizeof o, .model = model, .vocab_size = vocab};
    at_tokenizer *t = NULL;
    at_status s = at_tokenizer_train(&path, 1, &o, &t);
    ck_assert_msg(s == AT_OK, "train: %d %s", s, at_text_errmsg());
    ck_assert_ptr_nonnull(t);
    return t;
}

/* encode → decode gives the sentence back; returns the ids' count. */
static size_t tok_round_trip(at_tokenizer *t, const char *text)
{
    const int32_t *ids;
    size_t n;
    ck_assert_msg(at_tokenizer_encode(t, text, strlen(text), &ids, &n) == AT_OK, "%s",
                  at_text_errmsg());
    ck_assert_uint_gt(n, 0);
    int32_t copy[256];
    ck_assert_uint_le(n, 256);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_ge(ids[i], 4);   /* no special id in the encoding */
        ck_assert_int_lt(ids[i], at_tokenizer_vocab_size(t));
        copy[i] = ids[i];
    }
    const char *out;
    size_t len;
    ck_assert_int_eq(at_tokenizer_decode(t, copy, n, &out, &len), AT_OK);
    ck_assert_uint_eq(len, strlen(out));
    ck_assert_str_eq(out, text);
    return n;
}

START_TEST(tokenizer_bpe)
{
    char dir[64];
    const char *path = tok_corpus(dir, sizeof dir);
    at_tokenizer *t = tok_train(path, AT_TOK_BPE, 200);
    ck_assert_int_eq(at_tokenizer_vocab_size(t), 200);
    /* the special ids as documented */
    ck_assert_int_eq(at_tokenizer_special_id(t, AT_TOK_PAD), AT_TOK_PAD_ID);
    ck_assert_int_eq(at_tokenizer_special_id(t, AT_TOK_UNK), AT_TOK_UNK_ID);
    ck_assert_int_eq(at_tokenizer_special_id(t, AT_TOK_BOS), AT_TOK_BOS_ID);
    ck_assert_int_eq(at_tokenizer_special_id(t, AT_TOK_EOS), AT_TOK_EOS_ID);
    ck_assert_int_eq(AT_TOK_PAD_ID, 0);
    static const char *names[] = {"<pad>", "<unk>", "<s>", "</s>"};
    for (int i = 0; i < 4; i++) {
        const char *p;
        int32_t id;
        ck_assert_int_eq(at_tokenizer_piece(t, i, &p), AT_OK);
        ck_assert_str_eq(p, names[i]);
        ck_assert_int_eq(at_tokenizer_id(t, names[i], strlen(names[i]), &id), AT_OK);
        ck_assert_int_eq(id, i);
    }
    /* round trips, accents included */
    tok_round_trip(t, "El niño comió el pan.");
    tok_round_trip(t, "¿María cantó la canción?");
    size_t n = tok_round_trip(t, "José habló con la nación después.");
    ck_assert_uint_lt(n, strlen("José habló con la nación después."));  /* merged */
    /* pieces agree with the ids, and id <-> piece both ways */
    const char *s = "El corazón bendijo la montaña";
    const int32_t *ids;
    size_t ni;
    ck_assert_int_eq(at_tokenizer_encode(t, s, strlen(s), &ids, &ni), AT_OK);
    int32_t keep[64];
    memcpy(keep, ids, ni * sizeof *ids);
    const char *const *pieces;
    size_t np;
    ck_assert_int_eq(at_tokenizer_encode_pieces(t, s, strlen(s), &pieces, &np), AT_OK);
    ck_assert_uint_eq(np, ni);
    ck_assert(strncmp(pieces[0], "\xe2\x96\x81", 3) == 0);   /* ▁ starts a word */
    for (size_t i = 0; i < np; i++) {
        const char *p;
        int32_t id;
        ck_assert_int_eq(at_tokenizer_piece(t, keep[i], &p), AT_OK);
        ck_assert_str_eq(p, pieces[i]);
        ck_assert_int_eq(at_tokenizer_id(t, pieces[i], strlen(pieces[i]), &id), AT_OK);
        ck_assert_int_eq(id, keep[i]);
    }
    int32_t id;
    ck_assert_int_eq(at_tokenizer_id(t, "zzzqqq", 6, &id), AT_OK);
    ck_assert_int_eq(id, AT_TOK_UNK_ID);
    /* special ids are dropped by decoding; an unknown character is <unk> */
    int32_t framed[66] = {AT_TOK_BOS_ID};
    memcpy(framed + 1, keep, ni * sizeof *keep);
    framed[ni + 1] = AT_TOK_EOS_ID;
    framed[ni + 2] = AT_TOK_PAD_ID;
    const char *out;
    size_t len;
    ck_assert_int_eq(at_tokenizer_decode(t, framed, ni + 3, &out, &len), AT_OK);
    ck_assert_str_eq(out, s);
    ck_assert_int_eq(at_tokenizer_encode(t, "El 中 pan", strlen("El 中 pan"), &ids, &ni), AT_OK);
    int unk = 0;
    for (size_t i = 0; i < ni; i++)
        unk += ids[i] == AT_TOK_UNK_ID;
    ck_assert_int_eq(unk, 1);
    /* empty text and white space: no id */
    ck_assert_int_eq(at_tokenizer_encode(t, NULL, 0, &ids, &ni), AT_OK);
    ck_assert_uint_eq(ni, 0);
    ck_assert_int_eq(at_tokenizer_encode(t, "  ", 2, &ids, &ni), AT_OK);
    ck_assert_uint_eq(ni, 0);
    ck_assert_int_eq(at_tokenizer_decode(t, NULL, 0, &out, &len), AT_OK);
    ck_assert_str_eq(out, "");

    /* load from a file == load from the buffer == the trained one */
    char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/m.model", dir);
    ck_assert_int_eq(at_tokenizer_save(t, mpath), AT_OK);
    const void *buf;
    size_t blen;
    ck_assert_int_eq(at_tokenizer_serialize(t, &buf, &blen), AT_OK);
    ck_assert_uint_gt(blen, 100);
    at_tokenizer *tf, *tb, *x;
    ck_assert_msg(at_tokenizer_load(mpath, &tf) == AT_OK, "%s", at_text_errmsg());
    ck_assert_int_eq(at_tokenizer_load_buffer(buf, blen, &tb), AT_OK);
    struct stat st;
    ck_assert_int_eq(stat(mpath, &st), 0);
    ck_assert_uint_eq((size_t)st.st_size, blen);
    static const char *lines[] = {"El niño comió el pan.", "¿María cantó la canción?",
                                  "La mujer llegó a la mañana también.", "Ñandú árbol"};
    for (size_t l = 0; l < 4; l++) {
        int32_t a[64];
        size_t na;
        ck_assert_int_eq(at_tokenizer_encode(t, lines[l], strlen(lines[l]), &ids, &na), AT_OK);
        memcpy(a, ids, na * sizeof *ids);
        ck_assert_int_eq(at_tokenizer_encode(tf, lines[l], strlen(lines[l]), &ids, &ni), AT_OK);
        ck_assert_uint_eq(ni, na);
        ck_assert(memcmp(a, ids, na * sizeof *ids) == 0);
        ck_assert_int_eq(at_tokenizer_encode(tb, lines[l], strlen(lines[l]), &ids, &ni), AT_OK);
        ck_assert_uint_eq(ni, na);
        ck_assert(memcmp(a, ids, na * sizeof *ids) == 0);
    }
    ck_assert_int_eq(at_tokenizer_vocab_size(tb), 200);
    at_tokenizer_free(tf);
    at_tokenizer_free(tb);

    /* base64 (what a checkpoint's metadata carries): its length is RFC
     * 4648's, and it loads back into the same model */
    const char *b64;
    size_t b64len;
    ck_assert_int_eq(at_tokenizer_to_base64(t, &b64, &b64len), AT_OK);
    ck_assert_uint_eq(b64len, (blen + 2) / 3 * 4);
    ck_assert_uint_eq(strlen(b64), b64len);
    ck_assert_int_eq(strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789+/="), b64len);
    ck_assert_msg(at_tokenizer_load_base64(b64, b64len, &tb) == AT_OK, "%s", at_text_errmsg());
    const void *buf3;
    size_t blen3;
    ck_assert_int_eq(at_tokenizer_serialize(tb, &buf3, &blen3), AT_OK);
    ck_assert_uint_eq(blen3, blen);
    ck_assert(memcmp(buf, buf3, blen) == 0);
    at_tokenizer_free(tb);
    x = (at_tokenizer *)1;
    ck_assert_int_eq(at_tokenizer_load_base64("QUJD", 4, &x), AT_E_FORMAT);   /* "ABC" */
    ck_assert_ptr_null(x);
    ck_assert_int_eq(at_tokenizer_load_base64(b64, b64len - 1, &x), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "base64"));
    ck_assert_int_eq(at_tokenizer_load_base64("QU=D", 4, &x), AT_E_FORMAT);
    ck_assert_int_eq(at_tokenizer_load_base64("", 0, &x), AT_E_FORMAT);
    ck_assert_int_eq(at_tokenizer_load_base64(NULL, 4, &x), AT_E_ARG);

    /* training again gives the same model */
    at_tokenizer *t2 = tok_train(path, AT_TOK_BPE, 200);
    const void *buf2;
    size_t blen2;
    ck_assert_int_eq(at_tokenizer_serialize(t2, &buf2, &blen2), AT_OK);
    ck_assert_uint_eq(blen2, blen);
    ck_assert(memcmp(buf, buf2, blen) == 0);
    at_tokenizer_free(t2);

    /* bad input */
    ck_assert_int_eq(at_tokenizer_encode(t, "a\xC3(b", 4, &ids, &ni), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "UTF-8"));
    ck_assert_int_eq(at_tokenizer_encode(t, "\xED\xA0\x80", 3, &ids, &ni), AT_E_FORMAT);
    ck_assert_int_eq(at_tokenizer_encode_pieces(t, "\xFF", 1, &pieces, &np), AT_E_FORMAT);
    ck_assert_int_eq(at_tokenizer_encode(t, NULL, 3, &ids, &ni), AT_E_ARG);
    ck_assert_int_eq(at_tokenizer_encode(NULL, "a", 1, &ids, &ni), AT_E_ARG);
    int32_t bad[] = {10, 200};
    ck_assert_int_eq(at_tokenizer_decode(t, bad, 2, &out, &len), AT_E_RANGE);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "ids[1] = 200"));
    bad[1] = -1;
    ck_assert_int_eq(at_tokenizer_decode(t, bad, 2, &out, &len), AT_E_RANGE);
    const char *p;
    ck_assert_int_eq(at_tokenizer_piece(t, 200, &p), AT_E_RANGE);
    ck_assert_int_eq(at_tokenizer_piece(t, -1, &p), AT_E_RANGE);
    ck_assert_int_eq(at_tokenizer_id(t, "\xC0\x80", 2, &id), AT_E_FORMAT);
    ck_assert_int_eq(at_tokenizer_special_id(NULL, AT_TOK_PAD), -1);
    ck_assert_int_eq(at_tokenizer_vocab_size(NULL), 0);
    x = (at_tokenizer *)1;
    ck_assert_int_eq(at_tokenizer_load_buffer("not a model", 11, &x), AT_E_FORMAT);
    ck_assert_ptr_null(x);
    ck_assert_int_eq(at_tokenizer_load_buffer("", 0, &x), AT_E_FORMAT);
    ck_assert_int_eq(at_tokenizer_load_buffer(buf, blen / 2, &x), AT_E_FORMAT);
    ck_assert_int_eq(at_tokenizer_load(path, &x), AT_E_FORMAT);   /* a text file */
    ck_assert_int_eq(at_tokenizer_load("/nonexistent/m.model", &x), AT_E_IO);
    ck_assert_int_eq(at_tokenizer_load(dir, &x), AT_E_IO);       /* a directory */
    ck_assert_int_eq(at_tokenizer_save(t, "/nonexistent/m.model"), AT_E_IO);
    at_tokenizer_free(t);
    at_tokenizer_free(NULL);
    tok_cleanup(dir);
}
END_TEST

START_TEST(tokenizer_unigram_and_bad_training)
{
    char dir[64];
    const char *path = tok_corpus(dir, sizeof dir);
    at_tokenizer *t = tok_train(path, AT_TOK_UNIGRAM, 60);
    ck_assert_int_eq(at_tokenizer_vocab_size(t), 60);
    ck_assert_int_eq(at_tokenizer_special_id(t, AT_TOK_PAD), 0);
    ck_assert_int_eq(at_tokenizer_special_id(t, AT_TOK_EOS), 3);
    tok_round_trip(t, "El pájaro oyó la vendimia allí.");
    at_tokenizer_free(t);

    at_tokenizer *x = (at_tokenizer *)1;
    at_tokenizer_options o = {.struct_size = sizeof o, .vocab_size = 100000};
    /* a vocabulary the text cannot fill */
    ck_assert_int_eq(at_tokenizer_train(&path, 1, &o, &x), AT_E_ARG);
    ck_assert_ptr_null(x);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "SentencePiece"));
    o.vocab_size = 4;
    ck_assert_int_eq(at_tokenizer_train(&path, 1, &o, &x), AT_E_ARG);
    o.vocab_size = 0;
    o.model = 7;
    ck_assert_int_eq(at_tokenizer_train(&path, 1, &o, &x), AT_E_ARG);
    o.model = AT_TOK_BPE;
    o.struct_size = 4;
    ck_assert_int_eq(at_tokenizer_train(&path, 1, &o, &x), AT_E_ARG);
    ck_assert_int_eq(at_tokenizer_train(&path, 0, NULL, &x), AT_E_ARG);
    ck_assert_int_eq(at_tokenizer_train(NULL, 1, NULL, &x), AT_E_ARG);
    ck_assert_int_eq(at_tokenizer_train(&path, 1, NULL, NULL), AT_E_ARG);
    const char *missing = "/nonexistent/train.txt";
    ck_assert_int_eq(at_tokenizer_train(&missing, 1, NULL, &x), AT_E_IO);
    const char *d = dir;
    ck_assert_int_eq(at_tokenizer_train(&d, 1, NULL, &x), AT_E_IO);
    /* invalid UTF-8 on line 2 */
    char bpath[600];
    snprintf(bpath, sizeof bpath, "%s/bad.txt", dir);
    FILE *f = fopen(bpath, "w");
    ck_assert_ptr_nonnull(f);
    fputs("una línea\notra \xC3\x28 línea\n", f);
    fclose(f);
    const char *two[] = {path, bpath};
    ck_assert_int_eq(at_tokenizer_train(two, 2, NULL, &x), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_text_errmsg(), "bad.txt:2"));
    /* no text */
    f = fopen(bpath, "w");
    ck_assert_ptr_nonnull(f);
    fputs("\n\n", f);
    fclose(f);
    ck_assert_int_eq(at_tokenizer_train(&two[1], 1, NULL, &x), AT_E_FORMAT);
    ck_assert_ptr_null(x);
    tok_cleanup(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("text");
    TCase *t = tcase_create("text");
    tcase_add_test(t, bleu_published_readme);
    tcase_add_test(t, bleu_published_statistics);
    tcase_add_test(t, bleu_tokenizer_13a);
    tcase_add_test(t, chrf_published);
    tcase_add_test(t, bad_arguments);
    tcase_add_test(t, eval_lines);
    tcase_add_test(t, eval_files);
    tcase_add_test(t, version);
    tcase_add_test(t, bible_markup);
    tcase_add_test(t, bible_modules);
    suite_add_tcase(s, t);
    TCase *tok = tcase_create("tokenizer");
    tcase_add_test(tok, tokenizer_bpe);
    tcase_add_test(tok, tokenizer_unigram_and_bad_training);
    suite_add_tcase(s, tok);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
