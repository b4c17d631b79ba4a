/* attn translate: translate sentences with a model that carries its
 * tokenizer (nmt.c); the attention of the translations on request, as attn
 * dump's tensors or as the attention report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_text.h"
#include "attn.h"
#include "report.h"

static const char help[] =
    "usage: attn translate --model M.safetensors [--beam K] [--alpha A] [--len-a A]\n"
    "                      [--len-b B] [--batch N] [--threads N]\n"
    "                      (TEXT ... | --input F) [--dump F] [--viz DIR [--row R]]\n"
    "                      [--gate KIND:L:H=G ...] [--override F]\n"
    "\n"
    "Translate sentences with a model that carries its SentencePiece tokenizer (what\n"
    "attn train --task translate writes). Prints one translation per line, in the\n"
    "order of the input, and nothing else on standard output. Each sentence is read\n"
    "as <s> pieces </s>; decoding starts at <s> and ends at </s>. Sentences are\n"
    "sorted by length and decoded --batch at a time; a translation does not depend on\n"
    "the batch it was in. A sentence longer than the model's positions is cut to fit\n"
    "(one warning on stderr names the first such line).\n"
    "\n"
    "  --model M    the checkpoint, with its tokenizer in its metadata\n"
    "  TEXT         a sentence to translate (several: one translation line each)\n"
    "  --input F    the sentences instead, one per line, UTF-8; - reads the standard\n"
    "               input. An empty line is an error (it names the line)\n"
    "  --beam K     beam search with K hypotheses (default 4); 1 is greedy decoding\n"
    "  --alpha A    GNMT length penalty ((5 + |Y|) / 6)^A of the beam (default 0.6)\n"
    "  --len-a A, --len-b B  a translation has at most A + B * |x| ids (default 10 and\n"
    "               2; |x| the sentence's source ids, <s> and </s> included; <s> counts),\n"
    "               never more than the model's positions\n"
    "  --batch N    sentences per decoding call (default 32)\n"
    "  --threads N  threads for OpenBLAS and libat (default: as configured)\n"
    "  --dump F     also write the attention of the translations to F: a teacher-forced\n"
    "               pass over every sentence and its translation as one batch, under attn\n"
    "               dump's names (attn.enc_self.{i}, attn.dec_self.{i}, attn.cross.{i},\n"
    "               memory, decoder_out, logprobs, src_mask, tgt_mask), plus the ids, int32:\n"
    "               src (B, S), tgt (B, T), the decoder input, and ys (B, T + 1), the\n"
    "               translation, padded with 0. attn dump --model M --input F\n"
    "               --out G computes the same tensors\n"
    "  --viz DIR    also write the attention report of one sentence (--row R, default 1)\n"
    "               into DIR, as attn viz does: subword pieces on the axes, the sentence\n"
    "               and its translation in the caption\n"
    "  --gate KIND:L:H=G  multiply head H of layer L (from 1; * for every one) of KIND\n"
    "               (enc_self, dec_self, cross) by G, in decoding and in the passes of\n"
    "               --dump and --viz; repeatable\n"
    "  --override F replace attention by F's attn.KIND.i (N,h,Lq,Lk) and\n"
    "               attn.KIND.i.headj (N,Lq,Lk), row n for sentence n of the input (N\n"
    "               sentences): keys beyond a sentence's batch are cut, missing ones 0;\n"
    "               decoding step t uses row t. A --dump file may be given whole. Not\n"
    "               with --dump or --viz (their pass has other lengths: run attn dump\n"
    "               --override over the --dump file instead)\n"
    "  -h, --help   this text\n"
    "\n"
    "Notes on what --dump and --viz wrote go to stderr. Example:\n"
    "  attn translate --model es-en.safetensors \"En el principio creó Dios los cielos.\"\n";

/* The piece of each id (tokenizer memory). */
static const char **pieces_of(at_tokenizer *t, const int32_t *ids, int n)
{
    const char **l = malloc((size_t)(n > 0 ? n : 1) * sizeof *l);
    for (int i = 0; l && i < n; i++)
        if (at_tokenizer_piece(t, ids[i], &l[i]) != AT_OK)
            l[i] = "?";
    return l;
}

/* Appends at most max bytes of s to b (of size cap), cut at a character
 * boundary, with an ellipsis when cut. */
static void append_cut(char *b, size_t cap, const char *s, size_t max)
{
    size_t have = strlen(b), n = strlen(s);
    bool cut = n > max;
    if (cut) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    if (have + n + 4 >= cap)
        return;
    memcpy(b + have, s, n);
    strcpy(b + have + n, cut ? "\xe2\x80\xa6" : "");
}

/* The teacher-forced pass over every sentence and its translation, written
 * under attn dump's names with src, tgt and ys. */
static int write_dump(nmt *t, const nmt_batch *r, const char *path, const char *model,
                      const nmt_opts *o)
{
    int B = r->n > 0 ? r->n : 0, S = 0, T = 0;   /* >= 1; gcc cannot tell */
    for (int i = 0; i < B; i++) {
        S = r->src_len[i] > S ? r->src_len[i] : S;
        T = r->ys_len[i] - 1 > T ? r->ys_len[i] - 1 : T;
    }
    int32_t *src = calloc((size_t)B * S, sizeof *src);
    int32_t *tgt = calloc((size_t)B * T, sizeof *tgt);
    int32_t *ys = calloc((size_t)B * (T + 1), sizeof *ys);
    int rc = ATTN_OK;
    if (!src || !tgt || !ys) {
        attn_error("translate: out of memory for --dump");
        rc = ATTN_FAIL;
    }
    for (int i = 0; rc == ATTN_OK && i < B; i++) {
        memcpy(src + (size_t)i * S, r->src[i], (size_t)r->src_len[i] * sizeof *src);
        memcpy(tgt + (size_t)i * T, r->ys[i], (size_t)(r->ys_len[i] - 1) * sizeof *tgt);
        memcpy(ys + (size_t)i * (T + 1), r->ys[i], (size_t)r->ys_len[i] * sizeof *ys);
    }
    if (rc == ATTN_OK && at_forward(t->m, src, tgt, B, S, T, AT_TOK_PAD_ID) != AT_OK) {
        attn_error("translate: --dump: the forward pass failed: %s", at_errmsg(t->m));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK) {
        char v[8][32];
        snprintf(v[0], sizeof v[0], "%d", B);
        snprintf(v[1], sizeof v[1], "%d", S);
        snprintf(v[2], sizeof v[2], "%d", T);
        snprintf(v[3], sizeof v[3], "%d", o->beam);
        snprintf(v[4], sizeof v[4], "%.17g", o->alpha);
        snprintf(v[5], sizeof v[5], "%d", io_model_int(t->m, AT_P_HEADS));
        snprintf(v[6], sizeof v[6], "%.17g", o->len_a);
        snprintf(v[7], sizeof v[7], "%.17g", o->len_b);
        const char *meta[] = {
            "format", "attn-translate", "libat_version", at_version_string(), "model", model,
            "pad", "0", "start", "2", "end", "3", "batch", v[0], "src_len", v[1],
            "tgt_len", v[2], "beam", v[3], "alpha", v[4], "len_a", v[6], "len_b", v[7],
            "heads", v[5],
        };
        st_out extra[3] = {{"src", ST_I32, 2, {B, S}, src},
                           {"tgt", ST_I32, 2, {B, T}, tgt},
                           {"ys", ST_I32, 2, {B, T + 1}, ys}};
        rc = io_write_outputs(t->m, path, extra, 3, meta, (int)(sizeof meta / sizeof *meta / 2));
        if (rc == ATTN_OK)
            attn_error("translate: wrote %s: the attention of %d translation%s (src_len %d, "
                       "%d decoder positions) and the ids src, tgt, ys", path, B,
                       B == 1 ? "" : "s", S, T);
    }
    free(src);
    free(tgt);
    free(ys);
    return rc;
}

/* The report of sentence `row` (0-based): a teacher-forced pass over it alone. */
static int write_viz(nmt *t, const nmt_batch *r, const nmt_lines *in, char **text, int row,
                     const char *dir, const char *model)
{
    const int32_t *src = r->src[row], *ys = r->ys[row];
    int S = r->src_len[row], T = r->ys_len[row] - 1;
    int layers = io_model_int(t->m, AT_P_LAYERS), heads = io_model_int(t->m, AT_P_HEADS);
    report_opts ro;
    report_defaults(&ro);
    ro.who = "translate";
    ro.max_bytes = 1e9;
    ro.max_flag = NULL;
    if (report_check_size(&ro, layers, heads, S, T) != ATTN_OK)
        return ATTN_FAIL;
    if (at_forward(t->m, src, ys, 1, S, T, AT_TOK_PAD_ID) != AT_OK) {
        attn_error("translate: --viz: the forward pass failed: %s", at_errmsg(t->m));
        return ATTN_FAIL;
    }
    const char **sl = pieces_of(t->src, src, S), **tl = pieces_of(t->tgt, ys, T);
    if (!sl || !tl) {
        free(sl);
        free(tl);
        attn_error("translate: out of memory");
        return ATTN_FAIL;
    }
    char cap[1001] = "";
    const char *base = strrchr(model, '/');
    base = base ? base + 1 : model;
    append_cut(cap, sizeof cap, base, 120);
    append_cut(cap, sizeof cap, " \xc2\xb7 ", 8);
    append_cut(cap, sizeof cap, in->v[row], 400);
    append_cut(cap, sizeof cap, " \xe2\x86\x92 ", 8);   /* → */
    append_cut(cap, sizeof cap, text[row], 400);
    ro.src_labels = sl;
    ro.nsrc_labels = S;
    ro.tgt_labels = tl;
    ro.ntgt_labels = T;
    ro.src_ids = src;
    ro.nsrc_ids = S;
    ro.tgt_ids = ys;
    ro.ntgt_ids = T;
    ro.caption = cap;
    ro.quiet = true;
    int nfiles = 0;
    int rc = report_write(t->m, &ro, dir, &nfiles);
    if (rc == ATTN_OK)
        attn_error("translate: wrote %d files into %s: the attention of sentence %d (open "
                   "%s/index.html)", nfiles, dir, row + 1, dir);
    free(sl);
    free(tl);
    return rc;
}

/* nmt_opts.before under --override: the rows of the batch's sentences. */
typedef struct override_hook {
    intv *iv;
    at_model *m;
} override_hook;

static int override_batch(void *user, const int *index, int B, int S)
{
    override_hook *h = user;
    return intv_set_override_rows(h->iv, h->m, index, B, S);
}

/* Checks the interventions against the model and sets them (the override's
 * rows are set batch by batch, as the sentences come). */
static int set_interventions(intv *iv, nmt *t, int n, nmt_opts *o, override_hook *hook)
{
    int rc = intv_apply(iv, t->m);
    if (rc == ATTN_OK)
        rc = intv_load_override(iv, t->m, n, -1, -1);
    if (rc == ATTN_OK && iv->nov > 0) {
        hook->iv = iv;
        hook->m = t->m;
        o->before = override_batch;
        o->user = hook;
    }
    return rc;
}

int cmd_translate(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *dump = NULL, *viz = NULL;
    nmt_opts o;
    nmt_opts_default(&o);
    int threads = 0, row = 1;
    static intv iv;
    opt opts[13] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"beam", OPT_INT, &o.beam, 1, AT_BEAM_MAX, false},
        {"alpha", OPT_NUM, &o.alpha, 0, 1e6, false},
        {"len-a", OPT_NUM, &o.len_a, -1e6, 1e6, false},
        {"len-b", OPT_NUM, &o.len_b, 0, 1e6, false},
        {"batch", OPT_INT, &o.batch, 1, 100000, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"dump", OPT_STR, &dump, 0, 0, false},
        {"viz", OPT_STR, &viz, 0, 0, false},
        {"row", OPT_INT, &row, 1, INT32_MAX, false},
    };
    static char *pos[OPT_LIST_MAX];
    int npos = 0;
    int nopts = 11 + intv_opts(&iv, "translate", IV_GATE | IV_OVERRIDE, opts + 11);
    int r = args_parse(argc, argv, opts, nopts, pos, OPT_LIST_MAX, &npos);
    if (r == ARGS_HELP) {
        fputs(help, stdout);
        return ATTN_OK;
    }
    if (r != ARGS_OK)
        return ATTN_USAGE;
    if (args_require("translate", &opts[0]) != ATTN_OK)
        return ATTN_USAGE;
    if (!input && npos == 0) {
        attn_error("translate: give the sentences: TEXT ... or --input F (--input - reads the "
                   "standard input; see attn translate --help)");
        return ATTN_USAGE;
    }
    if (input && npos > 0) {
        attn_error("translate: give TEXT or --input, not both");
        return ATTN_USAGE;
    }
    if (opts[10].seen && !viz) {
        attn_error("translate: --row goes with --viz");
        return ATTN_USAGE;
    }
    if (iv.override_path && (dump || viz)) {
        attn_error("translate: --override does not go with --%s (its teacher-forced pass has "
                   "other lengths; run attn dump --override over the --dump file instead)",
                   dump ? "dump" : "viz");
        return ATTN_USAGE;
    }
    if (dump && io_check_output("translate", dump) != ATTN_OK)   /* before the work */
        return ATTN_FAIL;
    if (viz && outdir_check("translate", viz, NULL, NULL) != ATTN_OK)
        return ATTN_FAIL;
    int rc = intv_parse(&iv);
    nmt_lines in;
    if (rc == ATTN_OK)
        rc = input ? nmt_read_lines("translate", input, &in)
                   : nmt_args_lines("translate", pos, npos, &in);
    if (rc != ATTN_OK) {
        intv_free(&iv);
        return rc;
    }
    if (viz && row > in.n) {
        attn_error("translate: --row %d: there %s %d sentence%s", row, in.n == 1 ? "is" : "are",
                   in.n, in.n == 1 ? "" : "s");
        nmt_lines_free(&in);
        intv_free(&iv);
        return ATTN_USAGE;
    }
    if (threads > 0)
        at_set_threads(threads);
    nmt t;
    rc = nmt_load("translate", model, &t);
    if (rc != ATTN_OK) {
        nmt_lines_free(&in);
        intv_free(&iv);
        return rc;
    }
    override_hook hook;
    nmt_batch res = {0};
    rc = set_interventions(&iv, &t, in.n, &o, &hook);
    if (rc == ATTN_OK)
        rc = nmt_translate_ids("translate", &t, in.v, in.len, in.n, &o, in.from_file ? 1 : 0,
                               &res);
    char **text = rc == ATTN_OK ? calloc((size_t)in.n, sizeof *text) : NULL;
    if (rc == ATTN_OK && !text) {
        attn_error("translate: out of memory");
        rc = ATTN_FAIL;
    }
    for (int i = 0; rc == ATTN_OK && i < in.n; i++)
        rc = nmt_detok("translate", &t, res.ys[i], res.ys_len[i], &text[i]);
    for (int i = 0; rc == ATTN_OK && i < in.n; i++)
        printf("%s\n", text[i]);
    if (rc == ATTN_OK && fflush(stdout) != 0) {
        attn_error("translate: cannot write the translations to the standard output");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && dump)
        rc = write_dump(&t, &res, dump, model, &o);
    if (rc == ATTN_OK && viz)
        rc = write_viz(&t, &res, &in, text, row - 1, viz, model);
    for (int i = 0; text && i < in.n; i++)
        free(text[i]);
    free(text);
    nmt_batch_free(&res);
    nmt_free(&t);
    nmt_lines_free(&in);
    intv_free(&iv);
    return rc;
}
