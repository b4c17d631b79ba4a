/* attn eval: corpus BLEU and chrF2 of a file of translations, as sacreBLEU
 * prints them (libat_text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_text.h"
#include "attn.h"
#include "io/fileio.h"
#include "report.h"

static const char help[] =
    "usage: attn eval --hyp F --ref F [--ref F2 ...] [--json]\n"
    "       attn eval --model M --src F --ref F [--ref F2 ...] [--beam K] [--alpha A]\n"
    "                 [--batch N] [--threads N] [--hyp-out F] [--json]\n"
    "\n"
    "Score a file of translations against its references, one segment per line:\n"
    "corpus BLEU as sacreBLEU 2.x prints it by default (13a tokenization, BLEU-4,\n"
    "clipped n-gram counts summed over the corpus, brevity penalty from the corpus\n"
    "lengths, 'exp' smoothing) and chrF2 (character 6-grams, beta 2, white space\n"
    "removed). The files are UTF-8; every reference file has as many lines as the\n"
    "hypothesis file; trailing white space of a line is ignored; an empty\n"
    "reference line is refused (as sacreBLEU refuses it).\n"
    "\n"
    "  --hyp F      the translations\n"
    "  --ref F      the references; give it again for more references per segment\n"
    "               (BLEU clips by the reference with the most of each n-gram and\n"
    "               takes the closest length; chrF takes the best reference)\n"
    "  --json       print one JSON object: bleu, precisions, bp, ratio, hyp_len,\n"
    "               ref_len, chrf, and counts, totals, segments; with --model also\n"
    "               beam, alpha, sentences, seconds, sentences_per_second (the time\n"
    "               translating took, loading the model not counted)\n"
    "  --model M    translate --src with model M (as attn translate --input does) and\n"
    "               score the translations\n"
    "  --src F      the sentences to translate, one per line (no empty line); as many\n"
    "               lines as every --ref\n"
    "  --beam K     beam size (default 4; 1 is greedy decoding), with --model\n"
    "  --alpha A    the beam's length penalty (default 0.6), with --model\n"
    "  --batch N    sentences per decoding call (default 32), with --model\n"
    "  --threads N  threads for OpenBLAS and libat, with --model\n"
    "  --hyp-out F  also write the translations to F, one per line, with --model\n"
    "  -h, --help   this text\n"
    "\n"
    "Output:\n"
    "  BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)\n"
    "  chrF2 = 59.73\n"
    "and with --model a third line, the time translating took:\n"
    "  translated N sentences in S s (R sentences/s), beam K, alpha A\n";

static void json_num(const char *key, double v, bool comma)
{
    printf("  \"%s\": %.17g%s\n", key, v, comma ? "," : "");
}

/* The number of lines of a text as at_text_eval_* count them. */
static size_t count_lines(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    return n + (len > 0 && s[len - 1] != '\n');
}

/* Translates src with model and scores the translations against the refs
 * (read whole, their line counts checked before translating). */
static int eval_model(const char *model, const char *src, const opt_list *refs,
                      const nmt_opts *o, const char *hyp_out, at_bleu *b, at_chrf *c,
                      int *sentences, double *seconds)
{
    nmt_lines in;
    int rc = nmt_read_lines("eval", src, &in);
    if (rc != ATTN_OK)
        return rc;
    char **rbuf = calloc((size_t)refs->n, sizeof *rbuf);
    size_t *rlen = calloc((size_t)refs->n, sizeof *rlen);
    if (!rbuf || !rlen) {
        attn_error("eval: out of memory");
        rc = ATTN_FAIL;
    }
    for (int r = 0; rc == ATTN_OK && r < refs->n; r++) {
        char err[1024];
        unsigned char *d = NULL;
        if (file_read_all(refs->v[r], (size_t)1 << 30, &d, &rlen[r], err, sizeof err) != AT_OK) {
            attn_error("eval: cannot read references: %s", err);
            rc = ATTN_FAIL;
            break;
        }
        rbuf[r] = (char *)d;
        size_t k = count_lines(rbuf[r], rlen[r]);
        if (k != (size_t)in.n) {
            attn_error("eval: --src %s has %d line%s but --ref %s has %zu; they must match "
                       "line by line", src, in.n, in.n == 1 ? "" : "s", refs->v[r], k);
            rc = ATTN_FAIL;
        }
    }
    nmt t;
    if (rc == ATTN_OK)
        rc = nmt_load("eval", model, &t);
    char **text = NULL;
    char *hyp = NULL;
    size_t hl = 0;
    if (rc == ATTN_OK) {
        double t0 = copy_now();
        nmt_batch res;
        rc = nmt_translate_ids("eval", &t, in.v, in.len, in.n, o, 1, &res);
        text = calloc((size_t)in.n, sizeof *text);
        if (rc == ATTN_OK && !text) {
            attn_error("eval: out of memory");
            rc = ATTN_FAIL;
        }
        for (int i = 0; rc == ATTN_OK && i < in.n; i++) {
            rc = nmt_detok("eval", &t, res.ys[i], res.ys_len[i], &text[i]);
            hl += rc == ATTN_OK ? strlen(text[i]) + 1 : 0;
        }
        *seconds = copy_now() - t0;
        *sentences = in.n;
        nmt_batch_free(&res);
        nmt_free(&t);
    }
    if (rc == ATTN_OK && !(hyp = malloc(hl + 1))) {
        attn_error("eval: out of memory");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK) {
        size_t at = 0;
        for (int i = 0; i < in.n; i++) {
            size_t k = strlen(text[i]);
            memcpy(hyp + at, text[i], k);
            hyp[at + k] = '\n';
            at += k + 1;
        }
        hyp[at] = '\0';
    }
    if (rc == ATTN_OK && hyp_out)
        rc = report_write_file("eval", hyp_out, hyp, hl);
    if (rc == ATTN_OK) {
        const char **names = calloc((size_t)refs->n + 1, sizeof *names);
        char hname[1100];
        snprintf(hname, sizeof hname, "the translations of %.1000s", src);
        if (!names) {
            attn_error("eval: out of memory");
            rc = ATTN_FAIL;
        } else {
            names[0] = hname;
            for (int r = 0; r < refs->n; r++)
                names[r + 1] = refs->v[r];
            if (at_text_eval_buffers(hyp, hl, (const char *const *)rbuf, rlen, (size_t)refs->n,
                                     names, b, c) != AT_OK) {
                attn_error("eval: %s", at_text_errmsg());
                rc = ATTN_FAIL;
            }
            free(names);
        }
    }
    for (int i = 0; text && i < in.n; i++)
        free(text[i]);
    free(text);
    free(hyp);
    for (int r = 0; rbuf && r < refs->n; r++)
        free(rbuf[r]);
    free(rbuf);
    free(rlen);
    nmt_lines_free(&in);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    const char *hyp = NULL, *model = NULL, *src = NULL, *hyp_out = NULL;
    static opt_list refs;
    bool json = false;
    int threads = 0;
    nmt_opts no;
    nmt_opts_default(&no);
    refs.n = 0;
    opt opts[] = {
        {"hyp", OPT_STR, &hyp, 0, 0, false},
        {"ref", OPT_LIST, &refs, 0, 0, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"model", OPT_STR, &model, 0, 0, false},
        {"src", OPT_STR, &src, 0, 0, false},
        {"beam", OPT_INT, &no.beam, 1, AT_BEAM_MAX, false},
        {"alpha", OPT_NUM, &no.alpha, 0, 1e6, false},
        {"batch", OPT_INT, &no.batch, 1, 100000, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"hyp-out", OPT_STR, &hyp_out, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    if (hyp && (model || src)) {
        attn_error("eval: give --hyp F (translations to score) or --model M --src F (translate, "
                   "then score), not both");
        return ATTN_USAGE;
    }
    if (!!model != !!src) {
        attn_error("eval: --%s needs --%s (see attn eval --help)", model ? "model" : "src",
                   model ? "src" : "model");
        return ATTN_USAGE;
    }
    for (int k = 5; !model && k < 10; k++)
        if (opts[k].seen) {
            attn_error("eval: --%s goes with --model M --src F", opts[k].name);
            return ATTN_USAGE;
        }
    if (!model && (rc = args_require("eval", &opts[0])) != ATTN_OK)
        return rc;
    if ((rc = args_require("eval", &opts[1])) != ATTN_OK)
        return rc;
    if (hyp_out && io_check_output("eval", hyp_out) != ATTN_OK)   /* before the work */
        return ATTN_FAIL;
    if (threads > 0)
        at_set_threads(threads);

    at_bleu *b = NULL;
    at_chrf *c = NULL;
    at_status s = at_bleu_create(&b);
    if (s == AT_OK)
        s = at_chrf_create(&c);
    int sentences = 0;
    double seconds = 0;
    if (s == AT_OK && model) {
        rc = eval_model(model, src, &refs, &no, hyp_out, b, c, &sentences, &seconds);
        if (rc != ATTN_OK) {
            at_bleu_free(b);
            at_chrf_free(c);
            return rc;
        }
    } else if (s == AT_OK) {
        s = at_text_eval_files(hyp, refs.v, (size_t)refs.n, b, c);
    }
    at_bleu_score bs = {.struct_size = sizeof bs};
    at_chrf_score cs = {.struct_size = sizeof cs};
    if (s == AT_OK)
        s = at_bleu_result(b, &bs);
    if (s == AT_OK)
        s = at_chrf_result(c, &cs);
    at_bleu_free(b);
    at_chrf_free(c);
    if (s != AT_OK) {
        attn_error("eval: %s", at_text_errmsg());
        return s == AT_E_ARG ? ATTN_USAGE : ATTN_FAIL;
    }

    double sps = seconds > 0 ? sentences / seconds : 0;
    if (!json) {
        printf("BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld "
               "ref_len = %lld)\n",
               bs.score, bs.precisions[0], bs.precisions[1], bs.precisions[2],
               bs.precisions[3], bs.bp, bs.ratio, (long long)bs.hyp_len,
               (long long)bs.ref_len);
        printf("chrF%g = %.2f\n", cs.beta, cs.score);
        if (model)
            printf("translated %d sentence%s in %.2f s (%.2f sentences/s), beam %d, alpha %g\n",
                   sentences, sentences == 1 ? "" : "s", seconds, sps, no.beam, no.alpha);
        return ATTN_OK;
    }
    printf("{\n");
    json_num("bleu", bs.score, true);
    printf("  \"precisions\": [%.17g, %.17g, %.17g, %.17g],\n", bs.precisions[0],
           bs.precisions[1], bs.precisions[2], bs.precisions[3]);
    json_num("bp", bs.bp, true);
    json_num("ratio", bs.ratio, true);
    printf("  \"hyp_len\": %lld,\n  \"ref_len\": %lld,\n", (long long)bs.hyp_len,
           (long long)bs.ref_len);
    printf("  \"counts\": [%lld, %lld, %lld, %lld],\n", (long long)bs.counts[0],
           (long long)bs.counts[1], (long long)bs.counts[2], (long long)bs.counts[3]);
    printf("  \"totals\": [%lld, %lld, %lld, %lld],\n", (long long)bs.totals[0],
           (long long)bs.totals[1], (long long)bs.totals[2], (long long)bs.totals[3]);
    json_num("chrf", cs.score, true);
    printf("  \"segments\": %lld,\n", (long long)bs.segments);
    if (model) {
        printf("  \"beam\": %d,\n", no.beam);
        json_num("alpha", no.alpha, true);
        printf("  \"sentences\": %d,\n", sentences);
        json_num("seconds", seconds, true);
        json_num("sentences_per_second", sps, true);
    }
    printf("  \"references\": %d\n}\n", refs.n);
    return ATTN_OK;
}
