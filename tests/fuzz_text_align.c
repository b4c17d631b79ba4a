/* libFuzzer target (and, through its seeds, the unit test) of the links
 * parser and the scorer of libat_text's word alignments (src/text/align.c),
 * what attn align-eval reads every .align file with.
 *   ./build-fuzz/tests/fuzz_text_align corpus/ tests/data/fuzz_text_align/
 * Input: up to two lines, gold links and proposed links (Pharaoh i-j, i?j),
 * each scored against the other with word counts taken from the first byte.
 * Checks, besides crashes and leaks:
 *   - at_align_parse counts (out NULL) as many links as it then writes, all
 *     inside the words; a line that fails to count fails to parse;
 *   - the counts obey 0 <= hit_sure <= hit_possible <= hyp, hit_sure <= sure,
 *     and sure is at most the gold links; AER, precision and recall lie in
 *     [0, 1]; the gold against itself has AER 0 (1 when it has no link).
 * The first byte gives the words: its low 4 bits the source's, the high 4
 * the target's. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_text_align: check failed: %s\n", what);
        abort();
    }
}

/* Parses line (len bytes) against sw x tw words into a malloc'd array. */
static at_align_link *parse(const char *line, size_t len, int32_t sw, int32_t tw, size_t *n)
{
    size_t k = 0;
    at_status s = at_align_parse(line, len, sw, tw, NULL, 0, &k);
    at_align_link *l = malloc((k + 1) * sizeof *l);
    check(l != NULL, "memory");
    at_status s2 = at_align_parse(line, len, sw, tw, l, k, n);
    check((s == AT_OK) == (s2 == AT_OK), "counting and parsing agree");
    if (s != AT_OK) {
        check(s == AT_E_FORMAT, "a bad line is AT_E_FORMAT");
        free(l);
        return NULL;
    }
    check(*n == k, "as many links as counted");
    for (size_t i = 0; i < k; i++)
        check(l[i].src >= 0 && l[i].src < sw && l[i].tgt >= 0 && l[i].tgt < tw &&
                  (l[i].sure == 0 || l[i].sure == 1), "links inside the words");
    return l;
}

static void check_counts(const at_align_counts *c, size_t n_gold)
{
    check(c->hit_sure >= 0 && c->hit_sure <= c->hit_possible && c->hit_possible <= c->hyp,
          "hits <= proposed");
    check(c->hit_sure <= c->sure && c->sure <= (int64_t)n_gold, "sure hits <= sure <= gold");
    double aer, p, r;
    check(at_align_rates(c, &aer, &p, &r) == AT_OK, "rates");
    check(aer >= 0 && aer <= 1 && p >= 0 && p <= 1 && r >= 0 && r <= 1, "rates in [0, 1]");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* the words: small counts, so that links beyond them occur */
    int32_t sw = data[0] & 15, tw = data[0] >> 4;
    const char *text = (const char *)data + 1, *end = text + size - 1;
    const char *nl = memchr(text, '\n', size - 1);
    size_t glen = nl ? (size_t)(nl - text) : (size_t)(end - text);
    const char *hyp = nl ? nl + 1 : end;
    size_t hlen = (size_t)(end - hyp), ng = 0, nh = 0;
    at_align_link *g = parse(text, glen, sw, tw, &ng);
    at_align_link *h = parse(hyp, hlen, sw, tw, &nh);
    if (g && h) {
        at_align_counts c = {0, 0, 0, 0}, self = {0, 0, 0, 0};
        check(at_align_score(&c, g, ng, h, nh, sw, tw) == AT_OK, "score");
        check_counts(&c, ng);
        check(at_align_score(&self, g, ng, g, ng, sw, tw) == AT_OK, "score itself");
        check_counts(&self, ng);
        double aer = 1;
        at_align_rates(&self, &aer, NULL, NULL);
        check(ng == 0 ? aer == 1.0 : aer == 0.0, "the gold against itself has AER 0");
    }
    free(g);
    free(h);
    return 0;
}
