/* attn demo translate: the annotated Transformer's second half on the
 * machine as it is — a Spanish→English model trained on the Bibles Debian
 * packages, for a wall-clock budget, then scored on the test verses and
 * inspected on one of them (docs/translation.md). It is a sequence of the
 * other subcommands (corpus, train, translate) with the settings measured
 * to do best in the budget, so each step can be rerun by hand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "at_text.h"
#include "attn.h"
#include "io/fileio.h"

/* The settings: see the curve in docs/translation.md ("Choosing the demo's
 * model") for why these do best in 20 minutes on 2 cores. */
#define DEMO_MINUTES "20"
static const char *const train_flags[] = {
    "--layers", "3", "--d-model", "64", "--heads", "4", "--d-ff", "256",
    "--vocab-size", "4000", "--batch-tokens", "4000", "--warmup", "400", "--lr", "1",
    "--eval-every", "150", "--epochs", "1000",
};
enum { SHOWN = 3 };   /* test verses printed at the end */

static const char help[] =
    "usage: attn demo translate [--minutes M] [--out DIR] [--seed S] [--threads N]\n"
    "                           [--books LIST] [--quiet] [attn train flags]\n"
    "\n"
    "Train a Spanish->English translation model on the Bibles Debian packages and\n"
    "look inside it:\n"
    "  1. attn corpus bible --out DIR/corpus: Reina-Valera 1909 (sword-text-sparv)\n"
    "     joined with the King James Version (sword-text-kjv) on the verse, about\n"
    "     30,500 training, 302 validation and 302 test pairs (kept when the folder\n"
    "     already has them);\n"
    "  2. attn train --task translate for M minutes (default " DEMO_MINUTES "): a joint\n"
    "     SentencePiece BPE vocabulary of 4000, d_model 64, 3+3 layers, 4 heads,\n"
    "     d_ff 256, batches of 4000 tokens grouped by length, label smoothing 0.1,\n"
    "     Noam warmup 400; validation BLEU every 150 steps; the best model kept;\n"
    "  3. the test verses translated greedily and with beam 4, and scored (BLEU\n"
    "     and chrF2 as sacreBLEU computes them);\n"
    "  4. a few test verses printed, and the attention report of the first one\n"
    "     written (subword pieces on the axes).\n"
    "DIR (default ./attn-demo-translate) then holds:\n"
    "  corpus/                   the corpus (test.src, test.tgt, ...)\n"
    "  model.safetensors         the model of the best validation BLEU, with its\n"
    "                            tokenizer: attn translate --model DIR/model.safetensors\n"
    "  train.safetensors         the last training checkpoint (--resume goes on)\n"
    "  test.greedy.txt, test.beam4.txt   the test translations\n"
    "  report/index.html         the attention of one test verse, offline\n"
    "\n"
    "  --minutes M   the training budget in minutes (evaluations included)\n"
    "  --out DIR     the folder (default ./attn-demo-translate)\n"
    "  --seed S      seed of the initialisation, dropout and batch order (default 0)\n"
    "  --threads N   threads for OpenBLAS and libat (default: as configured)\n"
    "  --books LIST  build the corpus of these books only (attn corpus bible --books)\n"
    "  --quiet       fewer lines\n"
    "  -h, --help    this text\n"
    "Any other option is attn train --task translate's, in place of the demo's\n"
    "value for it (e.g. --d-model 128 --d-ff 512 --vocab-size 8000).\n";

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Runs a subcommand as if typed: argv[0] is its name. */
static int sub(int (*cmd)(int, char **), const char **argv, int argc)
{
    return cmd(argc, (char **)argv);
}

/* Translates the test split with beam K, writes the translations and
 * scores them. */
static int score_test(nmt *t, const nmt_lines *src, const nmt_lines *ref, int beam,
                      const char *out_path, char ***keep, double *bleu, double *chrf,
                      double *seconds)
{
    char **hyp = calloc((size_t)src->n, sizeof *hyp);
    if (!hyp) {
        attn_error("demo: out of memory");
        return ATTN_FAIL;
    }
    nmt_opts o;
    nmt_opts_default(&o);
    o.beam = beam;
    double t0 = copy_now();
    int rc = nmt_translate("demo", t, src->v, src->len, src->n, &o, hyp);
    *seconds = copy_now() - t0;
    if (rc == ATTN_OK)
        rc = nmt_score("demo", hyp, ref, src->n, bleu, chrf);
    if (rc == ATTN_OK) {
        file_out f;
        char err[512];
        rc = file_out_begin(&f, out_path, err, sizeof err) == AT_OK ? ATTN_OK : ATTN_FAIL;
        for (int i = 0; i < src->n && rc == ATTN_OK; i++)
            if (fprintf(f.fp, "%s\n", hyp[i]) < 0)
                rc = ATTN_FAIL;
        if (rc == ATTN_OK && file_out_commit(&f, err, sizeof err) != AT_OK)
            rc = ATTN_FAIL;
        else if (rc != ATTN_OK && f.fp)
            file_out_abort(&f);
        if (rc != ATTN_OK)
            attn_error("demo: cannot write '%s': %s", out_path, err);
    }
    if (rc == ATTN_OK && keep) {
        *keep = hyp;
        return ATTN_OK;
    }
    for (int i = 0; i < src->n; i++)
        free(hyp[i]);
    free(hyp);
    return rc;
}

/* The demo's own options are parsed here; any other is a flag of attn train
 * --task translate, passed on in place of the demo's value for it. */
static const char *const own_value[] = {"minutes", "out", "seed", "threads", "books"};
static const char *const own_flag[] = {"quiet", "help"};
static const char *const not_passed[] = {"task", "data", "train-src", "train-tgt", "valid-src",
                                         "valid-tgt", "best", "resume"};

/* The option's name in "--name" or "--name=value", in buf; NULL if a is none. */
static const char *option_name(const char *a, char *buf, size_t len)
{
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
        return NULL;
    snprintf(buf, len, "%s", a + 2);
    char *eq = strchr(buf, '=');
    if (eq)
        *eq = '\0';
    return buf;
}

static bool listed(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, list[i]))
            return true;
    return false;
}

#define COUNT(a) (sizeof (a) / sizeof *(a))

/* Splits argv into the demo's own options (own) and attn train's (pass). */
static int split_args(int argc, char **argv, char **own, int *nown, char **pass, int *npass)
{
    *nown = *npass = 0;
    own[(*nown)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        char buf[64];
        const char *name = option_name(argv[i], buf, sizeof buf);
        bool has_eq = name && strchr(argv[i], '=');
        if (!strcmp(argv[i], "-h") || (name && listed(name, own_flag, COUNT(own_flag)))) {
            own[(*nown)++] = argv[i];
        } else if (name && listed(name, own_value, COUNT(own_value))) {
            own[(*nown)++] = argv[i];
            if (!has_eq && i + 1 < argc)
                own[(*nown)++] = argv[++i];
        } else if (name && listed(name, not_passed, COUNT(not_passed))) {
            attn_error("demo: --%s is the demo's to set (it trains on DIR/corpus into "
                       "DIR/model.safetensors); run attn train --task translate for more", name);
            return ATTN_USAGE;
        } else {
            pass[(*npass)++] = argv[i];
            bool flag = name && (!strcmp(name, "separate-vocab") || has_eq);
            if (name && !flag && i + 1 < argc)
                pass[(*npass)++] = argv[++i];
        }
    }
    return ATTN_OK;
}

static bool passed_flag(char **pass, int npass, const char *flag)
{
    for (int i = 0; i < npass; i++) {
        char buf[64];
        const char *name = option_name(pass[i], buf, sizeof buf);
        if (name && !strcmp(name, flag + 2))
            return true;
    }
    return false;
}

int cmd_demo_translate(int argc, char **argv)
{
    const char *dir = "attn-demo-translate", *minutes = DEMO_MINUTES, *books = NULL;
    double minutes_v = 0;
    int seed = 0, threads = 0;
    bool quiet = false;
    opt opts[] = {
        {"minutes", OPT_NUM, &minutes_v, 0.001, 1e6, false},
        {"out", OPT_STR, &dir, 0, 0, false},
        {"seed", OPT_INT, &seed, 0, 2147483647, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"books", OPT_STR, &books, 0, 0, false},
        {"quiet", OPT_FLAG, &quiet, 0, 0, false},
    };
    int rc, nown, npass;
    char **own = malloc((size_t)(argc + 1) * sizeof *own);
    char **pass = malloc((size_t)(argc + 1) * sizeof *pass);
    if (!own || !pass) {
        free(own);
        free(pass);
        attn_error("demo: out of memory");
        return ATTN_FAIL;
    }
    if ((rc = split_args(argc, argv, own, &nown, pass, &npass)) != ATTN_OK ||
        !args_command(nown, own, opts, (int)COUNT(opts), help, &rc)) {
        free(own);
        free(pass);
        return rc;
    }
    char s_minutes[32], s_seed[16], s_threads[16];
    if (opts[0].seen) {
        snprintf(s_minutes, sizeof s_minutes, "%g", minutes_v);
        minutes = s_minutes;
    }
    snprintf(s_seed, sizeof s_seed, "%d", seed);
    snprintf(s_threads, sizeof s_threads, "%d", threads);
    if (strlen(dir) > 4000) {
        attn_error("demo: --out path is too long");
        return ATTN_USAGE;
    }
    char *corpus = io_join(dir, "corpus"), *model = io_join(dir, "model.safetensors");
    char *ckpt = io_join(dir, "train.safetensors"), *report = io_join(dir, "report");
    char *greedy_out = io_join(dir, "test.greedy.txt"), *beam_out = io_join(dir, "test.beam4.txt");
    char *probe = corpus ? io_join(corpus, "train.src") : NULL;
    char *test_src = corpus ? io_join(corpus, "test.src") : NULL;
    char *test_tgt = corpus ? io_join(corpus, "test.tgt") : NULL;
    nmt_lines src = {0}, ref = {0};
    char **beam_hyp = NULL;
    nmt t = {0};
    rc = corpus && model && ckpt && report && greedy_out && beam_out && probe && test_src &&
         test_tgt ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("demo: out of memory");
    if (rc == ATTN_OK && mkdir(dir, 0777) != 0 && errno != EEXIST) {
        attn_error("demo: cannot create '%s': %s", dir, strerror(errno));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK) {
        const char *const files[] = {"model.safetensors", "train.safetensors",
                                     "test.greedy.txt", "test.beam4.txt", NULL};
        const char *const dirs[] = {"corpus", "report", NULL};
        rc = outdir_check("demo", dir, files, dirs);
    }
    if (threads > 0)
        at_set_threads(threads);

    /* 1. the corpus */
    if (rc == ATTN_OK && is_file(probe) && is_file(test_src) && is_file(test_tgt)) {
        printf("attn demo translate: 1. the corpus: reusing %s\n", corpus);
    } else if (rc == ATTN_OK) {
        printf("attn demo translate: 1. the corpus (attn corpus bible --out %s)\n", corpus);
        fflush(stdout);
        const char *a[] = {"corpus", "bible", "--out", corpus, "--books", books};
        rc = sub(cmd_corpus, a, books ? 6 : 4);
    }
    /* 2. training */
    if (rc == ATTN_OK) {
        printf("\n2. training for %s minutes (attn train --task translate --data %s ...)\n",
               minutes, corpus);
        fflush(stdout);
        const char **a = malloc((size_t)(npass + 64) * sizeof *a);
        if (!a) {
            attn_error("demo: out of memory");
            rc = ATTN_FAIL;
            goto done;
        }
        const char *first[] = {"train", "--task", "translate", "--data", corpus, "--minutes",
                               minutes, "--out", ckpt, "--best", model, "--seed", s_seed};
        int n = 0;
        for (size_t i = 0; i < COUNT(first); i++)
            a[n++] = first[i];
        for (size_t i = 0; i < COUNT(train_flags); i += 2)
            if (!passed_flag(pass, npass, train_flags[i]))
                a[n++] = train_flags[i], a[n++] = train_flags[i + 1];
        for (int i = 0; i < npass; i++)
            a[n++] = pass[i];
        if (threads > 0)
            a[n++] = "--threads", a[n++] = s_threads;
        if (quiet)
            a[n++] = "--quiet";
        rc = sub(cmd_train, a, n);
        free(a);
    }
    /* 3. the test verses */
    double bleu[2] = {0}, chrf[2] = {0}, secs[2] = {0};
    if (rc == ATTN_OK)
        rc = nmt_load("demo", model, &t);
    if (rc == ATTN_OK)
        rc = nmt_read_lines("demo", test_src, &src);
    if (rc == ATTN_OK)
        rc = nmt_read_lines("demo", test_tgt, &ref);
    if (rc == ATTN_OK && src.n != ref.n) {
        attn_error("demo: '%s' and '%s' differ in length", test_src, test_tgt);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK) {
        printf("\n3. the %d test verses, translated by the best model\n", src.n);
        fflush(stdout);
        rc = score_test(&t, &src, &ref, 1, greedy_out, NULL, &bleu[0], &chrf[0], &secs[0]);
    }
    if (rc == ATTN_OK)
        rc = score_test(&t, &src, &ref, 4, beam_out, &beam_hyp, &bleu[1], &chrf[1], &secs[1]);
    if (rc == ATTN_OK) {
        printf("   greedy:  BLEU %5.2f  chrF2 %5.2f  (%.1f s, %.1f sentences/s)\n", bleu[0],
               chrf[0], secs[0], src.n / secs[0]);
        printf("   beam 4:  BLEU %5.2f  chrF2 %5.2f  (%.1f s, %.1f sentences/s)\n", bleu[1],
               chrf[1], secs[1], src.n / secs[1]);
        for (int i = 0; i < SHOWN && i < src.n; i++)
            printf("\n   es:  %s\n   en:  %s\n   mt:  %s\n", src.v[i], ref.v[i], beam_hyp[i]);
        fflush(stdout);
    }
    /* 4. the report of the first test verse */
    if (rc == ATTN_OK) {
        printf("\n4. the attention of the first test verse (attn translate --viz)\n");
        fflush(stdout);
        const char *a[] = {"translate", "--model", model, "--beam", "4", "--viz", report,
                           "--", src.v[0]};
        rc = sub(cmd_translate, a, 9);
    }
    if (rc == ATTN_OK)
        printf("\nwrote %s/report/index.html (open it in a browser; it works offline),\n"
               "      %s (attn translate --model %s \"...\"),\n"
               "      %s, %s\n", dir, model, model, greedy_out, beam_out);
done:
    if (beam_hyp)
        for (int i = 0; i < src.n; i++)
            free(beam_hyp[i]);
    free(beam_hyp);
    nmt_lines_free(&src);
    nmt_lines_free(&ref);
    nmt_free(&t);
    free(corpus), free(model), free(ckpt), free(report), free(greedy_out), free(beam_out);
    free(probe), free(test_src), free(test_tgt);
    free(own);
    free(pass);
    return rc;
}
