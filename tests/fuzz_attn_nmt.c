/* libFuzzer target (and, through its seeds, the unit test) of the
 * translation layer of the attn program (src/attn/nmt.c): framing,
 * truncation, UTF-8, and the independence of a translation from the order and
 * the batch its sentence came in.
 *   ./build-fuzz/tests/fuzz_attn_nmt -close_fd_mask=2 corpus/ tests/data/fuzz_attn_nmt/
 * Once per process it trains a small BPE tokenizer (the Spanish sentences of
 * tests/text/test_text.c's tok_corpus), creates a tiny untrained model of the
 * same vocabulary with 12 positions, attaches the tokenizer (nmt_attach),
 * saves the model and opens it again (nmt_load): the metadata round trip.
 * Input: lines of text (at most 8 taken). Checks, besides crashes and leaks:
 *   - nmt_encode gives <s> pieces </s>, at most max ids, the pieces a prefix
 *     of the uncut encoding, truncated exactly when they did not fit; invalid
 *     UTF-8 fails (ATTN_FAIL, no ids) exactly when nmt_utf8_invalid says so;
 *   - nmt_translate (greedy and beam 2) gives every sentence the same
 *     translation whatever the order of the lines and the batch size
 *     (1, 3, 32); a failure leaves every output NULL;
 *   - every translation re-encodes: it is valid UTF-8. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "at_text.h"
#include "attn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_attn_nmt: check failed: %s\n", what);
        abort();
    }
}

enum { POSITIONS = 12, MAX_LINES = 8 };
static nmt T;

static void setup(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    char corpus[4096], model[4096];
    snprintf(corpus, sizeof corpus, "%s/fuzz_attn_nmt.%ld.txt", dir, (long)getpid());
    snprintf(model, sizeof model, "%s/fuzz_attn_nmt.%ld.safetensors", dir, (long)getpid());
    FILE *f = fopen(corpus, "w");
    check(f != NULL, "writing the corpus");
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
    check(fclose(f) == 0, "writing the corpus");
    at_tokenizer_options o = {.struct_size = sizeof o, .vocab_size = 120};
    at_tokenizer *tok = NULL;
    const char *paths[] = {corpus};
    check(at_tokenizer_train(paths, 1, &o, &tok) == AT_OK, "training the tokenizer");
    remove(corpus);

    at_config *cfg = NULL;
    at_model *m = NULL;
    check(at_config_create(&cfg) == AT_OK, "at_config_create");
    const struct { at_param k; double v; } set[] = {
        {AT_P_SRC_VOCAB, 120}, {AT_P_TGT_VOCAB, 120}, {AT_P_LAYERS, 1}, {AT_P_D_MODEL, 16},
        {AT_P_HEADS, 2}, {AT_P_D_FF, 32}, {AT_P_MAX_LEN, POSITIONS}, {AT_P_SEED, 7},
    };
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        check(at_config_set(cfg, set[i].k, set[i].v) == AT_OK, "at_config_set");
    check(at_model_create(cfg, &m) == AT_OK, "at_model_create");
    at_config_free(cfg);
    at_set_threads(1);

    /* a model without a tokenizer, and a tokenizer of another size, are refused */
    nmt bad;
    check(nmt_from_model("fuzz", m, "new", &bad) == ATTN_FAIL && !bad.src && !bad.m,
          "a model without a tokenizer is refused");
    check(nmt_attach("fuzz", m, tok, tok) == ATTN_OK, "nmt_attach");
    check(at_model_save(m, model) == AT_OK, "saving the model");
    at_model_free(m);
    at_tokenizer_free(tok);
    check(nmt_load("fuzz", model, &T) == ATTN_OK, "nmt_load");
    remove(model);
    check(T.joint && T.src == T.tgt && T.owns_model && T.max_len == POSITIONS,
          "the loaded model's tokenizer is joint, with its positions");
}

/* nmt_encode of one line, checked against the uncut encoding. */
static void check_encode(const char *s, size_t len)
{
    int32_t *ids = NULL, *all = NULL;
    int n = -1, na = -1;
    bool cut = true, cut_all = true;
    int rc = nmt_encode("fuzz", T.src, s, len, POSITIONS, &ids, &n, &cut);
    bool valid = nmt_utf8_invalid(s, len) == len;
    if (!valid) {
        check(rc == ATTN_FAIL && !ids && n == 0 && !cut, "invalid UTF-8 fails, no ids");
        return;
    }
    check(rc == ATTN_OK, "valid UTF-8 encodes");
    check(nmt_encode("fuzz", T.src, s, len, 1 << 20, &all, &na, &cut_all) == ATTN_OK && !cut_all,
          "the uncut encoding");
    check(n >= 2 && n <= POSITIONS, "at most max ids");
    check(ids[0] == AT_TOK_BOS_ID && ids[n - 1] == AT_TOK_EOS_ID, "<s> first, </s> last");
    check(cut == (na > POSITIONS), "truncated exactly when the pieces do not fit");
    check(cut ? n == POSITIONS : n == na, "the length");
    check(memcmp(ids, all, (size_t)(n - 1) * sizeof *ids) == 0, "the pieces are a prefix");
    for (int i = 1; i < n - 1; i++)
        check(ids[i] != AT_TOK_PAD_ID && ids[i] != AT_TOK_BOS_ID && ids[i] != AT_TOK_EOS_ID &&
                  ids[i] >= 0 && ids[i] < 120, "pieces are no pad, <s> or </s>");
    free(ids);
    free(all);
}

/* Translates lines in the order perm with opts o; out[k] is line k's. */
static int translate(const char *const *lines, const size_t *lens, int n, const int *perm,
                     const nmt_opts *o, char **out)
{
    const char *pl[MAX_LINES] = {0};
    size_t pn[MAX_LINES] = {0};
    char *po[MAX_LINES];
    for (int i = 0; i < n; i++)
        pl[i] = lines[perm[i]], pn[i] = lens[perm[i]], po[i] = (char *)1;
    int rc = nmt_translate("fuzz", &T, pl, pn, n, o, po);
    for (int i = 0; i < n; i++) {
        if (rc != ATTN_OK)
            check(po[i] == NULL, "a failure leaves every output NULL");
        out[perm[i]] = po[i];
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    const char *lines[MAX_LINES];
    size_t lens[MAX_LINES];
    int n = 0;
    bool valid = true;
    const char *p = (const char *)data, *e = p + size;
    while (p < e && n < MAX_LINES) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(e - p);
        lines[n] = p, lens[n] = len;
        check_encode(p, len);
        valid = valid && nmt_utf8_invalid(p, len) == len;
        n++;
        p = nl ? nl + 1 : e;
    }
    if (n == 0)
        return 0;
    int fwd[MAX_LINES], rev[MAX_LINES];
    for (int i = 0; i < n; i++)
        fwd[i] = i, rev[i] = n - 1 - i;
    for (int beam = 1; beam <= 2; beam++) {
        nmt_opts o;
        nmt_opts_default(&o);
        o.beam = beam;
        o.batch = 3;
        char *a[MAX_LINES], *b[MAX_LINES], *c[MAX_LINES];
        int ra = translate(lines, lens, n, fwd, &o, a);
        check(ra == (valid ? ATTN_OK : ATTN_FAIL), "translate fails exactly on invalid UTF-8");
        if (ra != ATTN_OK)
            return 0;
        o.batch = 1;
        check(translate(lines, lens, n, rev, &o, b) == ATTN_OK, "reversed, batch 1");
        o.batch = 32;
        check(translate(lines, lens, n, rev, &o, c) == ATTN_OK, "reversed, batch 32");
        for (int i = 0; i < n; i++) {
            if (strcmp(a[i], b[i]) != 0 || strcmp(a[i], c[i]) != 0) {
                fprintf(stderr, "fuzz_attn_nmt: beam %d, line %d: '%s' (batch 3), '%s' "
                        "(reversed, batch 1), '%s' (reversed, batch 32)\n", beam, i + 1, a[i],
                        b[i], c[i]);
                check(false, "a translation does not depend on order or batch");
            }
            check(nmt_utf8_invalid(a[i], strlen(a[i])) == strlen(a[i]),
                  "a translation is UTF-8");
            free(a[i]);
            free(b[i]);
            free(c[i]);
        }
    }
    return 0;
}
