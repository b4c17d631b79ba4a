/* attn eval: corpus BLEU and chrF2 of a file of translations, as sacreBLEU
 * prints them (libat_text). */
#include <stdio.h>
#include <string.h>

#include "at_text.h"
#include "attn.h"

static const char help[] =
    "usage: attn eval --hyp F --ref F [--ref F2 ...] [--json]\n"
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
    "               ref_len, chrf, and counts, totals, segments\n"
    "  --model M, --src F  translate --src with model M and score that: not yet\n"
    "               (it needs the tokenizer and beam search that are still to come)\n"
    "  -h, --help   this text\n"
    "\n"
    "Output:\n"
    "  BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)\n"
    "  chrF2 = 59.73\n";

static void json_num(const char *key, double v, bool comma)
{
    printf("  \"%s\": %.17g%s\n", key, v, comma ? "," : "");
}

int cmd_eval(int argc, char **argv)
{
    const char *hyp = NULL, *model = NULL, *src = NULL;
    static opt_list refs;
    bool json = false;
    refs.n = 0;
    opt opts[] = {
        {"hyp", OPT_STR, &hyp, 0, 0, false},
        {"ref", OPT_LIST, &refs, 0, 0, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"model", OPT_STR, &model, 0, 0, false},
        {"src", OPT_STR, &src, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    if (model || src) {
        attn_error("eval: --%s: translating a source file and scoring it is not available yet "
                   "(it comes with the tokenizer and beam search); score translations with "
                   "--hyp F --ref F", model ? "model" : "src");
        return ATTN_USAGE;
    }
    if ((rc = args_require("eval", &opts[0])) != ATTN_OK ||
        (rc = args_require("eval", &opts[1])) != ATTN_OK)
        return rc;

    at_bleu *b = NULL;
    at_chrf *c = NULL;
    at_status s = at_bleu_create(&b);
    if (s == AT_OK)
        s = at_chrf_create(&c);
    if (s == AT_OK)
        s = at_text_eval_files(hyp, refs.v, (size_t)refs.n, b, c);
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

    if (!json) {
        printf("BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld "
               "ref_len = %lld)\n",
               bs.score, bs.precisions[0], bs.precisions[1], bs.precisions[2],
               bs.precisions[3], bs.bp, bs.ratio, (long long)bs.hyp_len,
               (long long)bs.ref_len);
        printf("chrF%g = %.2f\n", cs.beta, cs.score);
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
    printf("  \"references\": %d\n}\n", refs.n);
    return ATTN_OK;
}
