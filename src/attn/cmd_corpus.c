/* attn corpus bible: a verse-aligned parallel corpus from two SWORD Bibles
 * (libat_text's at_bible_*), with silver word alignments from their Strong's
 * numbers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_text.h"
#include "attn.h"
#include "io/fileio.h"

static const char help[] =
    "usage: attn corpus bible [--src-module M] [--tgt-module M] [--books LIST] --out DIR\n"
    "\n"
    "Build a parallel corpus from two SWORD Bible modules with the same versification,\n"
    "joined on the verse: DIR/{train,valid,test}.{src,tgt} (one verse per line, plain\n"
    "text: markup, notes and headings removed), DIR/{split}.keys (the verse of each\n"
    "line, \"Gen 1:1\") and DIR/{split}.align (per line the links i-j between the\n"
    "0-based words of the .src and .tgt lines that carry the same Strong's number).\n"
    "A verse empty in either module is left out of both. The split: with N verse\n"
    "pairs in book order and k = max(3, N / 300), pair n (from 0) is valid when\n"
    "n mod k = k/2, test when n mod k = k/2 + 1, train otherwise (about 300 each\n"
    "for valid and test). The folder is written whole or not at all.\n"
    "\n"
    "  --src-module M  the source Bible (default spaRV1909eb: Debian sword-text-sparv)\n"
    "  --tgt-module M  the target Bible (default engKJV2006eb: Debian sword-text-kjv)\n"
    "  --books LIST    only these books, OSIS names separated by commas (Gen,Exod)\n"
    "  --out DIR       the corpus folder (created; an existing folder gets the files)\n"
    "  -h, --help      this text\n";

static const char *const split_names[3] = {"train", "valid", "test"};
static const char *const kinds[4] = {"src", "tgt", "keys", "align"};

typedef struct pair {
    char *line[4];   /* src, tgt, keys, align (NUL-terminated, without '\n') */
} pair;

typedef struct pairs {
    pair *p;
    size_t n, cap;
} pairs;

static void pairs_free(pairs *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        for (int k = 0; k < 4; k++)
            free(ps->p[i].line[k]);
    free(ps->p);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* The links "i-j i-j ..." of two verses: word pairs sharing a number. */
static char *links_of(const at_bible_verse *s, const at_bible_verse *t, long *nlinks)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = '\0';
    for (int32_t i = 0; i < s->words; i++) {
        for (int32_t j = 0; j < t->words; j++) {
            bool link = false;
            for (int32_t a = s->strong_start[i]; a < s->strong_start[i + 1] && !link; a++)
                for (int32_t b = t->strong_start[j]; b < t->strong_start[j + 1] && !link; b++)
                    link = s->strongs[a] == t->strongs[b];
            if (!link)
                continue;
            if (len + 32 > cap) {
                char *q = realloc(out, cap *= 2);
                if (!q) {
                    free(out);
                    return NULL;
                }
                out = q;
            }
            len += (size_t)snprintf(out + len, cap - len, "%s%d-%d", len ? " " : "", (int)i,
                                    (int)j);
            (*nlinks)++;
        }
    }
    return out;
}

/* Whether book is in the comma-separated list (NULL: every book). */
static bool book_wanted(const char *list, const char *book, bool *seen_flags)
{
    if (!list)
        return true;
    size_t bl = strlen(book);
    int idx = 0;
    for (const char *p = list;; idx++) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == bl && memcmp(p, book, n) == 0) {
            if (idx < 128)
                seen_flags[idx] = true;
            return true;
        }
        if (!c)
            return false;
        p = c + 1;
    }
}

static int open_bible(const char *name, at_bible **b)
{
    at_status s = at_bible_open(name, b);
    if (s == AT_OK)
        return ATTN_OK;
    attn_error("corpus: %s", at_text_errmsg());
    return s == AT_E_ARG ? ATTN_USAGE : ATTN_FAIL;
}

static int write_split(outdir *od, const pairs *ps, const int *split, int which, int kind)
{
    char name[32], err[1024];
    snprintf(name, sizeof name, "%s.%s", split_names[which], kinds[kind]);
    char *path = outdir_path(od, name);
    if (!path)
        return ATTN_FAIL;
    file_out f;
    at_status s = file_out_begin(&f, path, err, sizeof err);
    free(path);
    if (s != AT_OK) {
        attn_error("corpus: %s", err);
        return ATTN_FAIL;
    }
    for (size_t i = 0; i < ps->n; i++) {
        if (split[i] != which)
            continue;
        fputs(ps->p[i].line[kind], f.fp);
        fputc('\n', f.fp);
    }
    if (file_out_commit(&f, err, sizeof err) != AT_OK) {
        attn_error("corpus: %s", err);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

static int corpus_bible(int argc, char **argv)
{
    const char *src_mod = "spaRV1909eb", *tgt_mod = "engKJV2006eb", *books = NULL,
               *out = NULL;
    opt opts[] = {
        {"src-module", OPT_STR, &src_mod, 0, 0, false},
        {"tgt-module", OPT_STR, &tgt_mod, 0, 0, false},
        {"books", OPT_STR, &books, 0, 0, false},
        {"out", OPT_STR, &out, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    if ((rc = args_require("corpus", &opts[3])) != ATTN_OK)
        return rc;
    if (books && (!*books || strlen(books) > 4000)) {
        attn_error("corpus: --books: give OSIS book names separated by commas (Gen,Exod)");
        return ATTN_USAGE;
    }
    const char *files[13];
    char names[12][32];
    for (int w = 0; w < 3; w++)
        for (int k = 0; k < 4; k++) {
            snprintf(names[w * 4 + k], sizeof names[0], "%s.%s", split_names[w], kinds[k]);
            files[w * 4 + k] = names[w * 4 + k];
        }
    files[12] = NULL;
    if (outdir_check("corpus", out, files, NULL) != ATTN_OK)
        return ATTN_FAIL;

    double t0 = copy_now();
    at_bible *sb = NULL, *tb = NULL;
    if ((rc = open_bible(src_mod, &sb)) != ATTN_OK)
        return rc;
    if ((rc = open_bible(tgt_mod, &tb)) != ATTN_OK) {
        at_bible_free(sb);
        return rc;
    }
    char sv[64], tv[64];
    snprintf(sv, sizeof sv, "%s", at_bible_info(sb, "Versification"));
    snprintf(tv, sizeof tv, "%s", at_bible_info(tb, "Versification"));
    if (strcmp(sv, tv) != 0) {
        attn_error("corpus: %s follows the %s versification and %s the %s one: verses "
                   "cannot be joined on their numbers (pick two modules of one versification)",
                   src_mod, sv, tgt_mod, tv);
        at_bible_free(sb);
        at_bible_free(tb);
        return ATTN_FAIL;
    }

    pairs ps = {0};
    bool seen[128] = {false};
    long verses = 0, empty_src = 0, empty_tgt = 0, links = 0;
    long long words[2] = {0, 0};
    at_status s = AT_OK;
    rc = ATTN_OK;
    for (;;) {
        at_bible_verse v = {.struct_size = sizeof v}, w = {.struct_size = sizeof w};
        int d1 = 0, d2 = 0;
        if ((s = at_bible_next(sb, &v, &d1)) != AT_OK || (s = at_bible_next(tb, &w, &d2)) != AT_OK)
            break;
        if (d1 || d2) {
            if (d1 != d2) {
                attn_error("corpus: %s has more verses than %s", d1 ? tgt_mod : src_mod,
                           d1 ? src_mod : tgt_mod);
                rc = ATTN_FAIL;
            }
            break;
        }
        if (strcmp(v.ref, w.ref) != 0) {
            attn_error("corpus: the modules disagree on the verse order: %s in %s, %s in %s",
                       v.ref, src_mod, w.ref, tgt_mod);
            rc = ATTN_FAIL;
            break;
        }
        if (!book_wanted(books, v.book, seen))
            continue;
        verses++;
        if (v.text_len == 0 || w.text_len == 0) {
            empty_src += v.text_len == 0;
            empty_tgt += w.text_len == 0;
            continue;
        }
        if (ps.n == ps.cap) {
            size_t cap = ps.cap ? ps.cap * 2 : 1024;
            pair *q = realloc(ps.p, cap * sizeof *q);
            if (!q) {
                s = AT_E_NOMEM;
                break;
            }
            ps.p = q;
            ps.cap = cap;
        }
        pair *p = &ps.p[ps.n];
        p->line[0] = dup_n(v.text, v.text_len);
        p->line[1] = dup_n(w.text, w.text_len);
        p->line[2] = dup_n(v.ref, strlen(v.ref));
        p->line[3] = links_of(&v, &w, &links);
        ps.n++;
        if (!p->line[0] || !p->line[1] || !p->line[2] || !p->line[3]) {
            s = AT_E_NOMEM;
            break;
        }
        words[0] += v.words;
        words[1] += w.words;
    }
    at_bible_free(sb);
    at_bible_free(tb);
    if (s != AT_OK && rc == ATTN_OK) {
        attn_error("corpus: %s", s == AT_E_NOMEM ? "out of memory" : at_text_errmsg());
        rc = ATTN_FAIL;
    }
    /* every book asked for must exist */
    if (rc == ATTN_OK && books) {
        int idx = 0;
        for (const char *p = books;; idx++) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            if (idx >= 128 || !seen[idx]) {
                attn_error("corpus: --books: no book '%.*s' in %s (OSIS names: Gen, Exod, "
                           "Lev, ..., Matt, ..., Rev)", (int)(n < 40 ? n : 40), p, src_mod);
                rc = ATTN_USAGE;
                break;
            }
            if (!c)
                break;
            p = c + 1;
        }
    }
    if (rc == ATTN_OK && ps.n == 0) {
        attn_error("corpus: no verse has text in both %s and %s", src_mod, tgt_mod);
        rc = ATTN_FAIL;
    }
    int *split = NULL;
    size_t count[3] = {0, 0, 0};
    if (rc == ATTN_OK && !(split = malloc(ps.n * sizeof *split))) {
        attn_error("corpus: out of memory");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK) {
        size_t k = ps.n / 300 > 3 ? ps.n / 300 : 3;
        for (size_t i = 0; i < ps.n; i++) {
            size_t r = i % k;
            split[i] = r == k / 2 ? 1 : r == k / 2 + 1 ? 2 : 0;
            count[split[i]]++;
        }
    }
    outdir od = {0};
    if (rc == ATTN_OK)
        rc = outdir_begin(&od, "corpus", out);
    for (int wsplit = 0; wsplit < 3 && rc == ATTN_OK; wsplit++)
        for (int kind = 0; kind < 4 && rc == ATTN_OK; kind++)
            rc = write_split(&od, &ps, split, wsplit, kind);
    if (rc == ATTN_OK)
        rc = outdir_commit(&od);
    else if (od.tmp)
        outdir_abort(&od);
    if (rc == ATTN_OK) {
        printf("corpus: %s -> %s (%s versification): %ld verses, %zu pairs; left out %ld "
               "(empty in %s: %ld, in %s: %ld)\n",
               src_mod, tgt_mod, sv, verses, ps.n, verses - (long)ps.n, src_mod, empty_src,
               tgt_mod, empty_tgt);
        printf("splits: train %zu, valid %zu, test %zu\n", count[0], count[1], count[2]);
        printf("words: %lld source, %lld target; alignment links %ld (%.1f per verse)\n",
               words[0], words[1], links, (double)links / (double)ps.n);
        printf("wrote %s/{train,valid,test}.{src,tgt,keys,align} in %.1f s\n", out,
               copy_now() - t0);
    }
    free(split);
    pairs_free(&ps);
    return rc;
}

int cmd_corpus(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "bible") == 0)
        return corpus_bible(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(help, stdout);
        return ATTN_OK;
    }
    if (argc < 2)
        attn_error("corpus: which corpus? (attn corpus bible --out DIR; see attn corpus --help)");
    else
        attn_error("corpus: unknown corpus '%.40s' (there is: bible; see attn corpus --help)",
                   argv[1]);
    return ATTN_USAGE;
}
