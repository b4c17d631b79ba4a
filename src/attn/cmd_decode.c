/* attn decode: greedy decoding with a trained model; the attention of the
 * decoded sequence on request. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"

static const char help[] =
    "usage: attn decode --model M.safetensors [--heads H] --src \"1 2 3 ...\"\n"
    "                   [--src ...] [--input BATCH.safetensors] [--max-len N]\n"
    "                   [--start ID] [--end ID] [--pad ID] [--dump OUT.safetensors]\n"
    "                   [--threads N] [--gate KIND:L:H=G ...] [--override F]\n"
    "\n"
    "Greedy decoding as the reference's greedy_decode, batched, with a key/value\n"
    "cache: encode the source once, start every row with --start, then append the\n"
    "most probable next id until --max-len ids (the start included) or, with --end,\n"
    "until every row has emitted the end id. Prints one line of ids per row (through\n"
    "its end id, if any).\n"
    "\n"
    "  --model M    the checkpoint (attn train --out, attn demo's model, a PyTorch\n"
    "               export with --heads)\n"
    "  --heads H    attention heads, for a checkpoint without libat metadata\n"
    "  --src IDS    one source row: ids separated by spaces or commas; give it\n"
    "               several times for a batch. Shorter rows are padded with --pad\n"
    "  --input F    read the rows instead from the integer tensor src (B, S) of F\n"
    "               (attn dump's input files and --dump's output have one)\n"
    "  --max-len N  the most ids per row, start included (default: the source length)\n"
    "  --start ID   the first id of every row (default 1, the copy task's start\n"
    "               symbol; the reference's own example uses 0)\n"
    "  --end ID     an id that ends a row (default -1: none)\n"
    "  --pad ID     source padding: positions holding it are masked (default 0, the\n"
    "               copy task's); an id outside the vocabulary, e.g. -1, masks\n"
    "               nothing, as the reference's example does\n"
    "  --dump F     also write the attention of the decoded sequence to F, under attn\n"
    "               dump's names: attn.enc_self.{i}, attn.dec_self.{i}, attn.cross.{i},\n"
    "               memory, decoder_out, logprobs, src_mask, tgt_mask (float32; the\n"
    "               decoder's T = decoded length - 1 positions), plus src (B, S) and\n"
    "               ys (B, T+1), the decoded ids, int32\n"
    "  --threads N  threads for OpenBLAS and libat (default: as configured). The\n"
    "               BLAS may sum in another order with another thread count, so a\n"
    "               run reproduces another bit for bit only with the same N\n"
    "  --gate KIND:L:H=G  multiply head H of layer L (from 1; * for every one) of KIND\n"
    "               (enc_self, dec_self, cross) by G in every step; repeatable\n"
    "  --override F replace attention by F's attn.KIND.i (B,h,Lq,Lk) and\n"
    "               attn.KIND.i.headj (B,Lq,Lk), as attn dump --override does: B the\n"
    "               rows, the source's S keys (and queries, enc_self); step t uses row t\n"
    "               of the decoder's, later steps the model's own. A --dump file may be\n"
    "               given whole\n"
    "  -h, --help   this text\n"
    "\n"
    "Example, the reference's check of the copy task:\n"
    "  attn decode --model copy.safetensors --src \"0 1 2 3 4 5 6 7 8 9\" --start 0 --pad -1\n";

/* What separates two ids: a comma or any white space (a newline too, as in
 * attn viz's --src; white space strtoll would skip otherwise ran into the
 * next id). */
static int is_sep(char c)
{
    return c == ',' || isspace((unsigned char)c);
}

/* Parses one --src row into ids (grown as needed); prints the error. */
static int parse_row(const char *text, int row, int32_t **ids, size_t *n, size_t *cap,
                     int *len)
{
    const char *p = text;
    *len = 0;
    for (;;) {
        while (is_sep(*p))
            p++;
        if (*p == '\0')
            break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || (*end != '\0' && !is_sep(*end))) {
            int w = 0;
            while (p[w] && !is_sep(p[w]) && w < 20)
                w++;
            attn_error("decode: --src row %d: '%.*s' is not an id (ids are whole numbers "
                       "separated by spaces or commas)", row, w, p);
            return ATTN_USAGE;
        }
        if (errno == ERANGE || v < 0 || v > INT32_MAX) {
            attn_error("decode: --src row %d: %.*s is not an id (ids are 0 or more)", row,
                       (int)(end - p < 24 ? end - p : 24), p);
            return ATTN_USAGE;
        }
        if (*n == *cap) {
            size_t c = *cap ? 2 * *cap : 64;
            int32_t *g = realloc(*ids, c * sizeof *g);
            if (!g) {
                attn_error("decode: out of memory for --src");
                return ATTN_FAIL;
            }
            *ids = g, *cap = c;
        }
        (*ids)[(*n)++] = (int32_t)v;
        (*len)++;
        p = end;
    }
    if (*len == 0) {
        attn_error("decode: --src row %d has no ids", row);
        return ATTN_USAGE;
    }
    return ATTN_OK;
}

/* The rows of --src as one (B, S) batch, shorter rows padded with pad. */
int parse_rows(const opt_list *rows, int32_t pad, int32_t **out, int *B, int *S)
{
    int32_t *flat = NULL;
    size_t n = 0, cap = 0;
    int *lens = malloc((size_t)rows->n * sizeof *lens), rc = ATTN_OK, longest = 0;
    if (!lens) {
        attn_error("decode: out of memory for --src");
        return ATTN_FAIL;
    }
    for (int r = 0; r < rows->n && rc == ATTN_OK; r++) {
        rc = parse_row(rows->v[r], r + 1, &flat, &n, &cap, &lens[r]);
        longest = rc == ATTN_OK && lens[r] > longest ? lens[r] : longest;
    }
    int32_t *batch = NULL;
    for (int r = 0; r < rows->n && rc == ATTN_OK; r++) {
        if (lens[r] != longest && pad < 0) {
            int l = 0;
            while (lens[l] != longest)
                l++;
            attn_error("decode: --src rows have different lengths (row %d has %d id%s, row %d "
                       "has %d) and --pad %d cannot fill them; give a --pad inside the "
                       "vocabulary (0 for the copy task)", r + 1, lens[r],
                       lens[r] == 1 ? "" : "s", l + 1, longest, (int)pad);
            rc = ATTN_USAGE;
        }
    }
    if (rc == ATTN_OK && !(batch = malloc((size_t)rows->n * (size_t)longest * sizeof *batch))) {
        attn_error("decode: out of memory for --src");
        rc = ATTN_FAIL;
    }
    for (int r = 0, at = 0; r < rows->n && rc == ATTN_OK; at += lens[r], r++)
        for (int i = 0; i < longest; i++)
            batch[(size_t)r * longest + i] = i < lens[r] ? flat[at + i] : pad;
    free(flat);
    free(lens);
    if (rc != ATTN_OK) {
        free(batch);
        return rc;
    }
    *out = batch, *B = rows->n, *S = longest;
    return ATTN_OK;
}

/* Every source id must lie in the vocabulary; says where one does not. */
static int check_ids(const int32_t *src, int B, int S, int vocab, const char *from)
{
    for (int b = 0; b < B; b++)
        for (int i = 0; i < S; i++) {
            int32_t v = src[(size_t)b * S + i];
            if (v < 0 || v >= vocab) {
                attn_error("decode: %s row %d, position %d: id %d is outside the model's "
                           "source vocabulary 0..%d", from, b + 1, i + 1, (int)v, vocab - 1);
                return ATTN_FAIL;
            }
        }
    return ATTN_OK;
}

/* Writes the attention of the decoded sequence, with src and ys. */
static int dump(at_model *m, const char *path, const char *model, const int32_t *src,
                const int32_t *out, int B, int S, int max_len, int len, int32_t start,
                int32_t end, int32_t pad)
{
    int32_t *ys = malloc((size_t)B * (size_t)len * sizeof *ys);
    if (!ys) {
        attn_error("decode: out of memory for --dump");
        return ATTN_FAIL;
    }
    for (int b = 0; b < B; b++)
        memcpy(ys + (size_t)b * len, out + (size_t)b * max_len, (size_t)len * sizeof *ys);
    char v[8][24];
    snprintf(v[0], sizeof v[0], "%d", (int)pad);
    snprintf(v[1], sizeof v[1], "%d", (int)start);
    snprintf(v[2], sizeof v[2], "%d", (int)end);
    snprintf(v[3], sizeof v[3], "%d", max_len);
    snprintf(v[4], sizeof v[4], "%d", B);
    snprintf(v[5], sizeof v[5], "%d", S);
    snprintf(v[6], sizeof v[6], "%d", len);
    snprintf(v[7], sizeof v[7], "%d", io_model_int(m, AT_P_HEADS));
    const char *meta[] = {
        "format", "attn-decode", "libat_version", at_version_string(), "model", model,
        "pad", v[0], "start", v[1], "end", v[2], "max_len", v[3], "batch", v[4],
        "src_len", v[5], "decoded_len", v[6], "heads", v[7],
    };
    st_out extra[2] = {{"src", ST_I32, 2, {B, S}, src}, {"ys", ST_I32, 2, {B, len}, ys}};
    int rc = io_write_outputs(m, path, extra, 2, meta, (int)(sizeof meta / sizeof *meta / 2));
    free(ys);
    return rc;
}

int cmd_decode(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *dump_path = NULL;
    static opt_list rows;   /* 32 KB: off the stack */
    int heads = 0, max_len = 0, start = 1, end = -1, pad = 0, threads = 0;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    rows.n = 0;
    static intv iv;
    opt opts[12] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"src", OPT_LIST, &rows, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"max-len", OPT_INT, &max_len, 1, 100000, false},
        {"start", OPT_INT, &start, 0, INT32_MAX, false},
        {"end", OPT_INT, &end, -1, INT32_MAX, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
        {"dump", OPT_STR, &dump_path, 0, 0, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
    };
    int nopts = 10 + intv_opts(&iv, "decode", IV_GATE | IV_OVERRIDE, opts + 10);
    int rc;
    if (!args_command(argc, argv, opts, nopts, help, &rc))
        return rc;
    if (args_require("decode", &opts[0]) != ATTN_OK)
        return ATTN_USAGE;
    if (rows.n == 0 && !input) {
        attn_error("decode: give the source: --src \"1 2 3 ...\" or --input F (see attn "
                   "decode --help)");
        return ATTN_USAGE;
    }
    if (rows.n > 0 && input) {
        attn_error("decode: give --src or --input, not both");
        return ATTN_USAGE;
    }
    if (dump_path && io_check_output("decode", dump_path) != ATTN_OK)   /* before the work */
        return ATTN_FAIL;
    if ((rc = intv_parse(&iv)) != ATTN_OK) {
        intv_free(&iv);
        return rc;
    }

    if (threads > 0)
        at_set_threads(threads);
    int32_t *src = NULL, *out = NULL;
    int B = 0, S = 0;
    rc = ATTN_OK;
    const char *from = "--src";
    if (rows.n > 0)
        rc = parse_rows(&rows, pad, &src, &B, &S);
    at_model *m = NULL;
    if (rc == ATTN_OK)
        rc = io_load_model(model, heads, &m, NULL);
    if (rc == ATTN_OK && input) {
        st_file f;
        char err[512];
        from = input;
        if (st_read(&f, input, err, sizeof err) != AT_OK) {
            attn_error("decode: cannot read input: %s", err);
            rc = ATTN_FAIL;
        } else {
            rc = io_read_ids(&f, input, "src", true, &src, &B, &S);
            st_free(&f);
        }
    }
    if (rc == ATTN_OK)
        rc = check_ids(src, B, S, io_model_int(m, AT_P_SRC_VOCAB), from);
    int vocab = io_model_int(m, AT_P_TGT_VOCAB);
    if (rc == ATTN_OK && start >= vocab) {
        attn_error("decode: --start %d is outside the model's target vocabulary 0..%d", start,
                   vocab - 1);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && end >= vocab) {
        attn_error("decode: --end %d is outside the model's target vocabulary 0..%d", end,
                   vocab - 1);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && max_len == 0)
        max_len = S;
    double limit = 0;
    if (rc == ATTN_OK && at_model_get(m, AT_P_MAX_LEN, &limit) == AT_OK &&
        (max_len > limit || S > limit)) {
        attn_error("decode: the model has positional encodings for %g positions; the source "
                   "has %d and --max-len is %d", limit, S, max_len);
        rc = ATTN_FAIL;
    }
    /* the interventions, checked against the model and the source before decoding */
    if (rc == ATTN_OK)
        rc = intv_apply(&iv, m);
    if (rc == ATTN_OK)
        rc = intv_load_override(&iv, m, B, S, -1);
    if (rc == ATTN_OK)
        rc = intv_set_override(&iv, m);
    if (rc == ATTN_OK && !(out = malloc((size_t)B * (size_t)max_len * sizeof *out))) {
        attn_error("decode: out of memory for %d rows of %d ids", B, max_len);
        rc = ATTN_FAIL;
    }
    int len = 0;
    if (rc == ATTN_OK && at_greedy_decode(m, src, B, S, pad, max_len, start, end, out, &len) !=
                             AT_OK) {
        attn_error("decode: %s", at_errmsg(m));
        rc = ATTN_FAIL;
    }
    for (int b = 0; rc == ATTN_OK && b < B; b++) {
        const int32_t *row = out + (size_t)b * max_len;
        for (int i = 0; i < len; i++) {
            printf(i ? " %d" : "%d", (int)row[i]);
            if (i > 0 && row[i] == end)
                break;
        }
        putchar('\n');
    }
    if (rc == ATTN_OK && dump_path) {
        rc = dump(m, dump_path, model, src, out, B, S, max_len, len, start, end, pad);
        if (rc == ATTN_OK)
            printf("wrote %s: the attention of the decoded sequence (batch %d, src_len %d, "
                   "%d decoder positions) and the ids src, ys\n", dump_path, B, S, len - 1);
    }
    free(src);
    free(out);
    at_model_free(m);
    intv_free(&iv);
    return rc;
}
