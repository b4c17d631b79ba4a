/* attn viz: charts of a model's attention on an input, as SVG, Vega-Lite and
 * an offline HTML explorer; and the pass that attn viz and attn stats share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_text.h"
#include "io/fileio.h"
#include "report.h"
#include "viz_layers.h"

/* ---------------------------------------------------------------- vocabularies */

static const vocab *sort_vocab;   /* qsort has no context argument */

static int by_token(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    int c = strcmp(sort_vocab->tok[x], sort_vocab->tok[y]);
    return c ? c : (x > y) - (x < y);
}

/* Whether a token occurs on two lines: 1 with the 0-based lines of the first
 * repetition in the file (*again the smallest line repeating an earlier one,
 * *first that earlier one), 0 if none, -1 out of memory. */
static int vocab_duplicate(const vocab *v, int *first, int *again)
{
    int *order = malloc((size_t)v->n * sizeof *order);
    if (!order)
        return -1;
    for (int i = 0; i < v->n; i++)
        order[i] = i;
    sort_vocab = v;
    qsort(order, (size_t)v->n, sizeof *order, by_token);
    *first = *again = -1;
    /* within a run of equal tokens the lines are in order: the run's first
     * line is the earlier one, its second the first repetition */
    for (int i = 1; i < v->n; i++)
        if (strcmp(v->tok[order[i - 1]], v->tok[order[i]]) == 0 &&
            (i < 2 || strcmp(v->tok[order[i - 2]], v->tok[order[i]]) != 0) &&
            (*again < 0 || order[i] < *again))
            *first = order[i - 1], *again = order[i];
    free(order);
    return *again >= 0;
}

int vocab_load(vocab *v, const char *path, const char *who)
{
    memset(v, 0, sizeof *v);
    unsigned char *data;
    size_t len;
    char err[1024];
    /* a regular file only: a FIFO or a device would block or never end */
    at_status s = file_read_all(path, (size_t)1 << 30, &data, &len, err, sizeof err);
    if (s != AT_OK) {
        attn_error("%s: cannot read vocabulary: %s", who, err);
        return ATTN_FAIL;
    }
    char *buf = (char *)data;
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        free(buf);
        attn_error("%s: vocabulary '%s' holds a NUL byte; expected UTF-8 text, one token per "
                   "line", who, path);
        return ATTN_FAIL;
    }
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    if (len > 0 && buf[len - 1] != '\n')
        lines++;
    v->tok = calloc((size_t)lines + 1, sizeof *v->tok);
    if (!v->tok) {
        free(buf);
        attn_error("%s: out of memory for vocabulary '%s'", who, path);
        return ATTN_FAIL;
    }
    char *p = buf;
    for (int i = 0; i < lines; i++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        size_t n = strlen(p);
        if (n > 0 && p[n - 1] == '\r')
            p[n - 1] = '\0';
        v->tok[i] = p;
        p = nl ? nl + 1 : p + n;
    }
    v->n = lines;
    v->buf = buf;
    if (lines == 0) {
        attn_error("%s: vocabulary '%s' is empty", who, path);
        free(v->tok);
        free(buf);
        memset(v, 0, sizeof *v);
        return ATTN_FAIL;
    }
    int first, again;
    int d = vocab_duplicate(v, &first, &again);
    if (d != 0) {
        if (d < 0)
            attn_error("%s: out of memory for vocabulary '%s'", who, path);
        else
            attn_error("%s: vocabulary '%s': line %d repeats line %d ('%.40s'); a token must "
                       "have one id", who, path, again + 1, first + 1, v->tok[first]);
        free(v->tok);
        free(buf);
        memset(v, 0, sizeof *v);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

void vocab_free(vocab *v)
{
    free(v->tok);
    free(v->buf);
    memset(v, 0, sizeof *v);
}

int vocab_find(const vocab *v, const char *tok, size_t len)
{
    for (int i = 0; i < v->n; i++)
        if (strlen(v->tok[i]) == len && memcmp(v->tok[i], tok, len) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- tokens */

static bool is_sep(char c, bool commas)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || (commas && c == ',');
}

/* Parses --src/--tgt text: tokens of the vocabulary separated by white space,
 * or, without one, ids separated by spaces or commas. */
int parse_seq(const char *text, const vocab *v, const char *who, const char *opt,
              int32_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = strlen(text) / 2 + 2;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    const char *p = text;
    bool commas = v->n == 0;
    for (;;) {
        while (*p && is_sep(*p, commas))
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && !is_sep(*e, commas))
            e++;
        int len = (int)(e - p);
        long long id;
        if (v->n) {
            id = vocab_find(v, p, (size_t)len);
            if (id < 0) {
                attn_error("%s: %s: '%.*s' is not in the vocabulary (%d tokens; separate "
                           "tokens with spaces)", who, opt, len < 40 ? len : 40, p, v->n);
                free(ids);
                return ATTN_USAGE;
            }
        } else {
            char *end;
            errno = 0;
            id = strtoll(p, &end, 10);
            if (end != e || errno == ERANGE || id < 0 || id > INT32_MAX) {
                attn_error("%s: %s: '%.*s' is not an id (ids are whole numbers 0 or more, "
                           "separated by spaces or commas; give --%s-vocab to use tokens)",
                           who, opt, len < 40 ? len : 40, p,
                           strcmp(opt, "--tgt") == 0 ? "tgt" : "src");
                free(ids);
                return ATTN_USAGE;
            }
        }
        ids[(*n)++] = (int32_t)id;
        p = e;
    }
    if (*n == 0) {
        attn_error("%s: %s holds no token", who, opt);
        free(ids);
        return ATTN_USAGE;
    }
    *out = ids;
    return ATTN_OK;
}

/* An id given as a number or, with a target vocabulary, as a token. */
int parse_id(const char *s, const vocab *tv, const char *who, const char *opt,
             int32_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s && !*end && errno != ERANGE && v >= INT32_MIN && v <= INT32_MAX) {
        *out = (int32_t)v;
        return ATTN_OK;
    }
    int id = tv->n ? vocab_find(tv, s, strlen(s)) : -1;
    if (id >= 0) {
        *out = id;
        return ATTN_OK;
    }
    attn_error("%s: %s '%.40s' is neither an id nor a token of --tgt-vocab", who, opt, s);
    return ATTN_USAGE;
}

static int check_ids(const int32_t *ids, int rows, int cols, int vocab, const char *what,
                     const char *who)
{
    for (int i = 0; i < rows * cols; i++)
        if (ids[i] < 0 || ids[i] >= vocab) {
            attn_error("%s: %s[%d][%d] = %d is outside the model's vocabulary 0 .. %d", who,
                       what, i / cols, i % cols, (int)ids[i], vocab - 1);
            return ATTN_FAIL;
        }
    return ATTN_OK;
}

/* ---------------------------------------------------------------- the pass */

static char **labels_of(const int32_t *ids, int n, const vocab *v)
{
    char **l = calloc((size_t)n + 1, sizeof *l);
    if (!l)
        return NULL;
    for (int i = 0; i < n; i++) {
        char num[16];
        const char *s = num;
        if (ids[i] >= 0 && ids[i] < v->n)
            s = v->tok[ids[i]];
        else
            snprintf(num, sizeof num, "%d", (int)ids[i]);
        if (!(l[i] = strdup(s))) {
            for (int k = 0; k < i; k++)
                free(l[k]);
            free(l);
            return NULL;
        }
    }
    return l;
}

static void labels_free(char **l, int n)
{
    for (int i = 0; l && i < n; i++)
        free(l[i]);
    free(l);
}

void pass_free(pass *p)
{
    if (p->text) {
        nmt_free(p->text);
        free(p->text);
    }
    free(p->translation);
    labels_free(p->src_lab, p->S);
    labels_free(p->tgt_lab, p->T);
    free(p->src);
    free(p->tgt);
    vocab_free(&p->sv);
    vocab_free(&p->tv);
    at_model_free(p->m);
    memset(p, 0, sizeof *p);
}

int pass_opts(pass_args *a, opt *opts)
{
    double hlo = 1, hhi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &hlo, &hhi);
    const opt shared[PASS_NOPTS] = {
        {"model", OPT_STR, &a->model, 0, 0, false},
        {"heads", OPT_INT, &a->heads, hlo, hhi, false},
        {"src", OPT_STR, &a->src, 0, 0, false},
        {"tgt", OPT_STR, &a->tgt, 0, 0, false},
        {"input", OPT_STR, &a->input, 0, 0, false},
        {"decode", OPT_FLAG, &a->decode, 0, 0, false},
        {"max-len", OPT_INT, &a->max_len, 2, 1 << 20, false},
        {"start", OPT_STR, &a->start, 0, 0, false},
        {"end", OPT_STR, &a->end, 0, 0, false},
        {"pad", OPT_INT, &a->pad, INT32_MIN, INT32_MAX, false},
        {"src-vocab", OPT_STR, &a->src_vocab, 0, 0, false},
        {"tgt-vocab", OPT_STR, &a->tgt_vocab, 0, 0, false},
        {"src-text", OPT_STR, &a->src_text, 0, 0, false},
        {"tgt-text", OPT_STR, &a->tgt_text, 0, 0, false},
    };
    memcpy(opts, shared, sizeof shared);
    return PASS_NOPTS;
}

int pass_run(const pass_args *a, const char *who, pass *p)
{
    int rc = pass_load(a, who, p);
    return rc == ATTN_OK ? pass_exec(a, who, p) : rc;
}

/* The tokenizer's pieces as a vocabulary: the token of id i is its piece. */
static int vocab_of_pieces(vocab *v, at_tokenizer *t, const char *who)
{
    memset(v, 0, sizeof *v);
    int n = (int)at_tokenizer_vocab_size(t);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const char *pc = "";
        at_tokenizer_piece(t, i, &pc);
        total += strlen(pc) + 1;
    }
    v->tok = calloc((size_t)n + 1, sizeof *v->tok);
    v->buf = malloc(total + 1);
    if (!v->tok || !v->buf) {
        vocab_free(v);
        attn_error("%s: out of memory for the tokenizer's pieces", who);
        return ATTN_FAIL;
    }
    char *at = v->buf;
    for (int i = 0; i < n; i++) {
        const char *pc = "";
        at_tokenizer_piece(t, i, &pc);
        size_t k = strlen(pc);
        memcpy(at, pc, k + 1);
        v->tok[i] = at;
        at += k + 1;
    }
    v->n = n;
    return ATTN_OK;
}

/* pass_load for --src-text [--tgt-text]. */
static int pass_load_text(const pass_args *a, const char *who, pass *p)
{
    if (!a->src_text) {
        attn_error("%s: --tgt-text goes with --src-text", who);
        return ATTN_USAGE;
    }
    const char *clash = a->src ? "--src" : a->tgt ? "--tgt" : a->input ? "--input"
                      : a->src_vocab ? "--src-vocab" : a->tgt_vocab ? "--tgt-vocab"
                      : a->decode ? "--decode" : a->max_len ? "--max-len"
                      : a->start ? "--start" : a->end ? "--end" : a->pad ? "--pad" : NULL;
    if (clash) {
        attn_error("%s: %s does not go with --src-text (the model's tokenizer gives the ids, "
                   "<s> and </s>, and pad 0)", who, clash);
        return ATTN_USAGE;
    }
    int rc = ATTN_OK;
    size_t sl = strlen(a->src_text), tl = a->tgt_text ? strlen(a->tgt_text) : 0;
    size_t bad = nmt_utf8_invalid(a->src_text, sl);
    if (bad < sl) {
        attn_error("%s: --src-text is not valid UTF-8 (byte %zu)", who, bad + 1);
        return ATTN_USAGE;
    }
    if (a->tgt_text && (bad = nmt_utf8_invalid(a->tgt_text, tl)) < tl) {
        attn_error("%s: --tgt-text is not valid UTF-8 (byte %zu)", who, bad + 1);
        return ATTN_USAGE;
    }
    if (!(p->text = calloc(1, sizeof *p->text))) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    rc = io_load_model(a->model, a->heads, &p->m, NULL);
    if (rc == ATTN_OK)
        rc = nmt_from_model(who, p->m, a->model, p->text);
    if (rc != ATTN_OK) {
        free(p->text);
        p->text = NULL;
        pass_free(p);
        return rc;
    }
    nmt *t = p->text;
    rc = vocab_of_pieces(&p->sv, t->src, who);
    if (rc == ATTN_OK)
        rc = vocab_of_pieces(&p->tv, t->tgt, who);
    p->B = 1;
    p->row = 0;
    if (rc == ATTN_OK && a->tgt_text) {
        bool cut_s = false, cut_t = false;
        int32_t *ys = NULL;
        int n = 0;
        rc = nmt_encode(who, t->src, a->src_text, sl, t->max_len, &p->src, &p->S, &cut_s);
        /* the decoder input <s> pieces: the target framed, its </s> dropped */
        if (rc == ATTN_OK)
            rc = nmt_encode(who, t->tgt, a->tgt_text, tl, t->max_len + 1, &ys, &n, &cut_t);
        if (rc == ATTN_OK) {
            p->tgt = ys;
            p->T = n - 1;
            if (cut_s || cut_t)
                attn_error("%s: warning: %s longer than the model's %d positions; cut to %d "
                           "pieces", who, cut_s && cut_t ? "--src-text and --tgt-text are"
                                          : cut_s   ? "--src-text is"
                                                    : "--tgt-text is",
                           t->max_len, t->max_len - 2);
        }
    } else if (rc == ATTN_OK) {
        nmt_opts o;
        nmt_opts_default(&o);
        o.beam = 1;
        nmt_batch res;
        rc = nmt_translate_ids(who, t, &a->src_text, &sl, 1, &o, 0, &res);
        if (rc == ATTN_OK)
            rc = nmt_detok(who, t, res.ys[0], res.ys_len[0], &p->translation);
        if (rc == ATTN_OK) {
            /* the decoder input: the translation but its last id */
            p->S = res.src_len[0], p->src = res.src[0], res.src[0] = NULL;
            p->T = res.ys_len[0] - 1, p->tgt = res.ys[0], res.ys[0] = NULL;
            p->decoded = true;
            printf("translation: %s\n", p->translation);
            printf("pieces:");
            for (int i = 0; i <= p->T; i++)
                printf(" %s", p->tv.tok[p->tgt[i]]);
            printf("\n");
        }
        nmt_batch_free(&res);
    }
    if (rc != ATTN_OK)
        pass_free(p);
    return rc;
}

int pass_load(const pass_args *a, const char *who, pass *p)
{
    memset(p, 0, sizeof *p);
    if (!a->model) {
        attn_error("%s: --model is required (see attn %s --help)", who, who);
        return ATTN_USAGE;
    }
    if (a->src_text || a->tgt_text)
        return pass_load_text(a, who, p);
    if (!a->src == !a->input) {
        attn_error("%s: give the input as --src \"...\", --input FILE or --src-text \"...\" "
                   "(see attn %s --help)", who, who);
        return ATTN_USAGE;
    }
    if (a->tgt && (a->input || a->decode)) {
        attn_error("%s: --tgt goes with --src and without --decode", who);
        return ATTN_USAGE;
    }
    if (!a->decode && (a->max_len || a->start || a->end)) {
        attn_error("%s: --max-len, --start and --end go with --decode", who);
        return ATTN_USAGE;
    }
    int rc = ATTN_OK;
    if (a->src_vocab)
        rc = vocab_load(&p->sv, a->src_vocab, who);
    if (rc == ATTN_OK && a->tgt_vocab)
        rc = vocab_load(&p->tv, a->tgt_vocab, who);
    if (rc == ATTN_OK)
        rc = io_load_model(a->model, a->heads, &p->m, NULL);
    if (rc != ATTN_OK) {
        pass_free(p);
        return rc;
    }
    int Bt = 0;
    if (a->src) {
        p->B = 1;
        rc = parse_seq(a->src, &p->sv, who, "--src", &p->src, &p->S);
        if (rc == ATTN_OK && a->tgt) {
            rc = parse_seq(a->tgt, &p->tv, who, "--tgt", &p->tgt, &p->T);
            Bt = 1;
        }
    } else {
        st_file f;
        char err[512];
        if (st_read(&f, a->input, err, sizeof err) != AT_OK) {
            attn_error("%s: cannot read input: %s", who, err);
            rc = ATTN_FAIL;
        } else {
            rc = io_read_ids(&f, a->input, "src", true, &p->src, &p->B, &p->S);
            if (rc == ATTN_OK && !a->decode)
                rc = io_read_ids(&f, a->input, "tgt", false, &p->tgt, &Bt, &p->T);
            st_free(&f);
        }
        if (rc == ATTN_OK && p->tgt && Bt != p->B) {
            attn_error("%s: %s: src has %d rows but tgt has %d; they must be the same batch",
                       who, a->input, p->B, Bt);
            rc = ATTN_FAIL;
        }
    }
    p->row = a->row > 0 ? a->row - 1 : 0;
    if (rc == ATTN_OK && p->row >= p->B) {
        attn_error("%s: --row %d: the batch has %d row%s", who, a->row, p->B,
                   p->B == 1 ? "" : "s");
        rc = ATTN_USAGE;
    }
    int sv = io_model_int(p->m, AT_P_SRC_VOCAB), tv = io_model_int(p->m, AT_P_TGT_VOCAB);
    if (rc == ATTN_OK)
        rc = check_ids(p->src, p->B, p->S, sv, "src", who);
    if (rc == ATTN_OK && p->tgt)
        rc = check_ids(p->tgt, p->B, p->T, tv, "tgt", who);
    if (rc != ATTN_OK)
        pass_free(p);
    return rc;
}

int pass_exec(const pass_args *a, const char *who, pass *p)
{
    int rc = ATTN_OK;
    if (a->decode) {
        int32_t start = 1, end = -1;
        int max_len = a->max_len ? a->max_len : p->S;
        if (a->start)
            rc = parse_id(a->start, &p->tv, who, "--start", &start);
        if (rc == ATTN_OK && a->end)
            rc = parse_id(a->end, &p->tv, who, "--end", &end);
        int32_t *out = NULL;
        int out_len = 0;
        if (rc == ATTN_OK && !(out = malloc((size_t)p->B * max_len * sizeof *out))) {
            attn_error("%s: out of memory", who);
            rc = ATTN_FAIL;
        }
        if (rc == ATTN_OK && at_greedy_decode(p->m, p->src, p->B, p->S, a->pad, max_len, start,
                                              end, out, &out_len) != AT_OK) {
            attn_error("%s: decoding failed: %s", who, at_errmsg(p->m));
            rc = ATTN_FAIL;
        }
        if (rc == ATTN_OK && out_len < 2) {
            attn_error("%s: decoding gave only the start id (--max-len %d); nothing to chart "
                       "on the decoder side", who, max_len);
            rc = ATTN_FAIL;
        }
        if (rc == ATTN_OK) {
            /* the decoder input: every decoded id but the last */
            p->T = out_len - 1;
            p->tgt = malloc((size_t)p->B * p->T * sizeof *p->tgt);
            if (!p->tgt) {
                attn_error("%s: out of memory", who);
                rc = ATTN_FAIL;
            } else {
                for (int b = 0; b < p->B; b++)
                    memcpy(p->tgt + (size_t)b * p->T, out + (size_t)b * max_len,
                           (size_t)p->T * sizeof *out);
                p->decoded = true;
                printf("decoded row %d:", p->row + 1);
                for (int i = 0; i < out_len; i++) {
                    int32_t id = out[(size_t)p->row * max_len + i];
                    if (id >= 0 && id < p->tv.n)
                        printf(" %s", p->tv.tok[id]);
                    else
                        printf(" %d", (int)id);
                }
                printf("\n");
            }
        }
        free(out);
    } else if (rc == ATTN_OK && at_forward(p->m, p->src, p->tgt, p->B, p->S, p->tgt ? p->T : 0,
                                           a->pad) != AT_OK) {
        attn_error("%s: forward pass failed: %s", who, at_errmsg(p->m));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK) {
        p->src_lab = labels_of(p->src + (size_t)p->row * p->S, p->S, &p->sv);
        p->tgt_lab = p->tgt ? labels_of(p->tgt + (size_t)p->row * p->T, p->T, &p->tv) : NULL;
        if (!p->src_lab || (p->tgt && !p->tgt_lab)) {
            attn_error("%s: out of memory", who);
            rc = ATTN_FAIL;
        }
    }
    if (rc != ATTN_OK)
        pass_free(p);
    return rc;
}

/* ---------------------------------------------------------------- attn viz */

/* The default limit of --max-mb: the charts of 160 positions on the base
 * model (6 layers, 8 heads) fit, those of thousands do not. */
enum { VIZ_MAX_MB = 1000 };

static const char help[] =
    "usage: attn viz --model M.safetensors [--heads H]\n"
    "                (--src \"...\" [--tgt \"...\"] | --input BATCH.safetensors |\n"
    "                 --src-text \"...\" [--tgt-text \"...\"])\n"
    "                [--decode [--max-len N] [--start ID] [--end ID]] [--pad ID]\n"
    "                [--src-vocab F] [--tgt-vocab F] [--row R] [--layer L] [--head H]\n"
    "                [--font NAME] [--caption TEXT] [--max-mb N]\n"
    "                [--importance] [--rollout] [--relevance] [--ig M] [--roles]\n"
    "                [--counterfactual] [--patch F] [--flow] [--value-norm] [--gold F]\n"
    "                --out DIR\n"
    "\n"
    "Run the model on one input and chart its attention into DIR (created if missing):\n"
    "  index.html                       the explorer: choose kind, layer and head; heatmap\n"
    "                                   and line views, statistics, head similarity. One\n"
    "                                   file, works offline, no network request\n"
    "  masks.svg, masks.vl.json         the subsequent, padding and target masks\n"
    "  stats.svg, stats.vl.json         entropy and max weight of every layer and head\n"
    "and, for each kind computed (enc_self; dec_self and cross with a target):\n"
    "  model-KIND.svg/.vl.json          layers x heads grid of small heatmaps\n"
    "  heads-KIND-lL.svg/.vl.json       every head of layer L side by side\n"
    "  layers-KIND-hH.svg/.vl.json      head H through every layer\n"
    "  heatmap-KIND-lL-hH.svg/.vl.json  one head, a tooltip per cell\n"
    "Layers, heads and rows count from 1. .svg files are self-contained; .vl.json files\n"
    "are Vega-Lite v5 with the data inline (the Vega editor, Jupyter, Altair's\n"
    "alt.Chart.from_dict). Every file is written atomically.\n"
    "\n"
    "  --model M      the checkpoint\n"
    "  --heads H      attention heads, for a checkpoint without libat metadata\n"
    "  --src TEXT     the source: ids separated by spaces or commas, or with --src-vocab\n"
    "                 tokens separated by spaces (e.g. --src \"<s> 猫 が 座った\")\n"
    "  --tgt TEXT     the decoder input (teacher forcing), as --src; without it and\n"
    "                 without --decode only the encoder runs\n"
    "  --src-text S   a sentence instead, read by the model's own tokenizer (a model of\n"
    "                 attn train --task translate): <s> pieces </s>, pieces on the axes\n"
    "  --tgt-text S   with --src-text: its translation, the decoder input <s> pieces\n"
    "                 (teacher forcing); without it the sentence is translated greedily\n"
    "                 and the translation charted\n"
    "  --input F      a batch instead: integer tensors src (B, S) and optional tgt (B, T)\n"
    "                 (attn dump's input files)\n"
    "  --decode       decode the source greedily and chart the decoded sequence\n"
    "  --max-len N    with --decode: the most ids, start included (default: source length)\n"
    "  --start ID     with --decode: the first id, or a token of --tgt-vocab (default 1,\n"
    "                 the copy task's start symbol)\n"
    "  --end ID       with --decode: an id (or token) that ends decoding (default none)\n"
    "  --pad ID       padding id: masked as a key (default 0, the copy task's; -1 masks\n"
    "                 nothing). Trailing padding is left out of the attention charts\n"
    "  --src-vocab F  source tokens, one per line (line 1 is id 0); ids are shown without\n"
    "  --tgt-vocab F  target tokens, likewise\n"
    "  --row R        the batch row charted (default 1); statistics cover the whole batch\n"
    "  --layer L      write heatmaps of layer L only (default: every layer)\n"
    "  --head H       write heatmaps of head H only (default: every head)\n"
    "  --font NAME    a font family to use first, e.g. \"Noto Serif CJK JP\" (letters,\n"
    "                 digits, spaces, - _ .); the default stack renders CJK\n"
    "  --caption TEXT a line under every chart's title (default: the model and input)\n"
    "  --max-mb N     refuse charts that would take more than N MB (default 1000): their\n"
    "                 size grows with the square of the input's length\n"
    "Analysis views in the explorer (its Analysis section; docs/explorer.md):\n"
    "  --importance   head importance |dL/dxi| at the gates and the ablation\n"
    "                 L(gate 0) - L of every head, as attn importance computes them\n"
    "  --relevance    Chefer et al.'s relevance R^qs and R^qq for every output token\n"
    "                 (one at_relevance_chefer call per target position: a short\n"
    "                 input's view; at 512 tokens on 6 x 8 heads one call takes 0.6 s)\n"
    "                 Both, and --ig, need the loss: the target is then read as attn\n"
    "                 importance reads it, the whole target tgt (B, T+1) of --tgt or\n"
    "                 --input, and the pass charted is teacher forcing on its first T\n"
    "                 ids (with --src-text the sentence's pieces as before); not with\n"
    "                 --decode\n"
    "  --rollout      attention rollout of every kind computed, as attn rollout\n"
    "  --roles        each head's best built-in pattern and its score, as attn heads\n"
    "  --ig M         integrated gradients on every layer's attention (M steps, zero\n"
    "                 baseline, the loss of --importance), each head's sum on the\n"
    "                 charted row, as attn attribute --ig M computes them\n"
    "  --counterfactual  each head's attention permuted (seed 0) or made uniform, and\n"
    "                 the total variation of the next-token distribution it causes, as\n"
    "                 attn counterfactual on the same input (which reads its target as\n"
    "                 --importance does)\n"
    "  --patch F      activation patching against the corrupted batch F (src and the\n"
    "                 whole tgt, the input's shapes): each head's change of the mean\n"
    "                 NLL, as attn patch --clean INPUT --corrupt F\n"
    "  --flow         attention flow of the encoder (and the decoder's self-attention),\n"
    "                 as attn rollout --flow: at most 64 tokens\n"
    "  --value-norm   value-norm attention |alpha f(x)| of every layer of each kind, the\n"
    "                 mean of its heads (attn rollout --value-norm's, averaged)\n"
    "  --gold F       gold links of the charted row (line R of F for --row R; with\n"
    "                 --src-text line 1), outlined on cross-attention, with each head's\n"
    "                 attention on them and AER: pairs SOURCE-TARGET as in the corpus's\n"
    "                 .align files. With --src-text they are word numbers, mapped to the\n"
    "                 pieces (docs/alignment.md); otherwise positions: the source\n"
    "                 position and the decoder input position (the cross-attention row)\n"
    "  --out DIR      where to write. DIR is written whole: into a temporary folder\n"
    "                 renamed to DIR (or, if DIR exists, moved into it file by file)\n"
    "                 once every chart is written; a failure leaves nothing behind\n"
    "  -h, --help     this text\n"
    "\n"
    "Example, a trained copy-task model:\n"
    "  attn viz --model copy.safetensors --src \"1 2 3 4 5 6 7 8 9 10\" --decode --out viz\n";

/* --importance, --relevance and --ig: the target read (B, T1) is the whole target;
 * *full receives a copy and the pass keeps its first T1 - 1 ids. With
 * --src-text the pass's target (<s> pieces </s>) is whole already. */
static int full_target(pass *p, int32_t **full)
{
    if (!p->tgt) {
        attn_error("viz: --importance, --relevance and --ig need a target (the input has no tgt)");
        return ATTN_FAIL;
    }
    int T1 = p->text ? p->T + 1 : p->T;
    if (T1 < 2) {
        attn_error("viz: --importance, --relevance and --ig need a target of 2 ids or more (the "
                   "start and a label); it has %d", T1);
        return ATTN_FAIL;
    }
    *full = malloc((size_t)p->B * T1 * sizeof **full);
    if (!*full) {
        attn_error("viz: out of memory");
        return ATTN_FAIL;
    }
    memcpy(*full, p->tgt, (size_t)p->B * T1 * sizeof **full);
    if (!p->text) {   /* the decoder input: every row but its last id */
        for (int b = 0; b < p->B; b++)
            memmove(p->tgt + (size_t)b * (T1 - 1), *full + (size_t)b * T1,
                    (size_t)(T1 - 1) * sizeof *p->tgt);
        p->T = T1 - 1;
    }
    return ATTN_OK;
}

int cmd_viz(int argc, char **argv)
{
    pass_args a = {0};
    const char *out = NULL, *font = NULL, *caption = NULL;
    int layer = 0, head = 0, max_mb = VIZ_MAX_MB;
    a.row = 1;
    viz_layers_args an = {0};
    opt opts[PASS_NOPTS + 17];
    int n = pass_opts(&a, opts);
    const opt own[] = {
        {"out", OPT_STR, &out, 0, 0, false},
        {"row", OPT_INT, &a.row, 1, INT32_MAX, false},
        {"layer", OPT_INT, &layer, 1, 1 << 20, false},
        {"head", OPT_INT, &head, 1, 1 << 20, false},
        {"font", OPT_STR, &font, 0, 0, false},
        {"caption", OPT_STR, &caption, 0, 0, false},
        {"max-mb", OPT_INT, &max_mb, 1, 100000000, false},
        {"importance", OPT_FLAG, &an.importance, 0, 0, false},
        {"rollout", OPT_FLAG, &an.rollout, 0, 0, false},
        {"relevance", OPT_FLAG, &an.relevance, 0, 0, false},
        {"roles", OPT_FLAG, &an.roles, 0, 0, false},
        {"flow", OPT_FLAG, &an.flow, 0, 0, false},
        {"ig", OPT_INT, &an.ig, 1, 10000, false},
        {"counterfactual", OPT_FLAG, &an.counterfactual, 0, 0, false},
        {"patch", OPT_STR, &an.patch, 0, 0, false},
        {"value-norm", OPT_FLAG, &an.value_norm, 0, 0, false},
        {"gold", OPT_STR, &an.gold, 0, 0, false},
    };
    memcpy(opts + n, own, sizeof own);
    n += (int)(sizeof own / sizeof *own);
    int rc;
    if (!args_command(argc, argv, opts, n, help, &rc))
        return rc;
    if (args_require("viz", &opts[0]) != ATTN_OK ||
        args_require("viz", &opts[PASS_NOPTS]) != ATTN_OK)
        return ATTN_USAGE;
    if (font) {   /* refuse a bad font before running anything */
        at_viz_options *o = NULL;
        at_status s = at_viz_options_create(&o);
        if (s == AT_OK)
            s = at_viz_options_set_font(o, font);
        at_viz_options_free(o);
        if (s != AT_OK) {
            attn_error("viz: --font: %s", at_errmsg(NULL));
            return ATTN_USAGE;
        }
    }
    bool loss = viz_layers_need_loss(&an);
    const char *needs = an.importance ? "--importance" : an.relevance ? "--relevance"
                        : an.ig ? "--ig" : an.counterfactual ? "--counterfactual"
                        : an.patch ? "--patch" : "--gold";
    if ((loss && a.decode) ||
        ((loss || an.gold) && !a.decode && !a.tgt && !a.input && !a.src_text)) {
        attn_error("viz: %s needs a target%s: give --tgt, --input with tgt or --src-text", needs,
                   loss ? " the loss can read (not --decode)" : " (or --decode)");
        return ATTN_USAGE;
    }
    if (outdir_check("viz", out, NULL, NULL) != ATTN_OK)   /* before the work */
        return ATTN_FAIL;
    pass p;
    rc = pass_load(&a, "viz", &p);
    if (rc != ATTN_OK)
        return rc;
    int32_t *full = NULL;
    if (loss)
        rc = full_target(&p, &full);
    if (rc != ATTN_OK) {
        pass_free(&p);
        return rc;
    }
    int layers = io_model_int(p.m, AT_P_LAYERS), heads = io_model_int(p.m, AT_P_HEADS);
    if (layer > layers || head > heads) {
        attn_error("viz: --layer must be 1 .. %d and --head 1 .. %d for this model", layers,
                   heads);
        free(full);
        pass_free(&p);
        return ATTN_USAGE;
    }
    report_opts ro;
    report_defaults(&ro);
    ro.layer = layer;
    ro.head = head;
    ro.who = "viz";
    ro.max_bytes = 1e6 * max_mb;
    ro.max_flag = "--max-mb";
    /* too large to chart? Before the pass, which takes time and memory then
     * (decoding: up to --max-len - 1 target positions) */
    int T = p.tgt ? p.T : a.decode ? (a.max_len ? a.max_len : p.S) - 1 : 0;
    if (report_check_size(&ro, layers, heads, p.S, T) != ATTN_OK) {
        free(full);
        pass_free(&p);
        return ATTN_FAIL;
    }
    at_viz_options *vo = NULL;
    if (at_viz_options_create(&vo) != AT_OK) {
        attn_error("viz: out of memory");
        rc = ATTN_FAIL;
    }
    /* the analyses that run passes of their own come before the pass charted */
    if (rc == ATTN_OK && loss)
        rc = viz_layers_loss(&an, &p, full, (int32_t)a.pad, vo);
    free(full);
    if (rc == ATTN_OK)
        rc = pass_exec(&a, "viz", &p);
    else
        pass_free(&p);
    if (rc == ATTN_OK && !p.tgt && an.gold) {
        attn_error("viz: --gold needs a target (the input has no tgt)");
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK)
        rc = viz_layers_view(&an, &p, a.row, vo);
    if (rc != ATTN_OK) {
        if (p.m)
            pass_free(&p);
        at_viz_options_free(vo);
        return rc;
    }
    char cap[1001];
    if (!caption) {
        const char *base = strrchr(a.model, '/');
        base = base ? base + 1 : a.model;
        snprintf(cap, sizeof cap, "model %.200s \xc2\xb7 %s", base,
                 p.text && p.decoded ? "greedy translation"
                 : p.decoded         ? "greedy decoding"
                 : p.tgt             ? "teacher forcing"
                                     : "encoder only");
        if (a.input)
            snprintf(cap + strlen(cap), sizeof cap - strlen(cap), " \xc2\xb7 input %.200s",
                     a.input);
        if (p.text) {   /* the sentence in words: src -> tgt (cut at a character) */
            const char *words[2] = {a.src_text, p.translation ? p.translation : a.tgt_text};
            for (int w = 0; w < 2; w++) {
                size_t have = strlen(cap), k = strlen(words[w]), room = 300;
                strcat(cap, w ? " \xe2\x86\x92 " : " \xc2\xb7 ");
                have = strlen(cap);
                if (k > room) {
                    k = room;
                    while (k > 0 && ((unsigned char)words[w][k] & 0xC0) == 0x80)
                        k--;
                }
                memcpy(cap + have, words[w], k);
                cap[have + k] = '\0';
                if (k < strlen(words[w]))
                    strcat(cap, "\xe2\x80\xa6");
            }
        }
        caption = cap;
    }
    ro.src_labels = (const char *const *)p.src_lab;
    ro.nsrc_labels = p.S;
    ro.tgt_labels = (const char *const *)p.tgt_lab;
    ro.ntgt_labels = p.tgt_lab ? p.T : 0;
    ro.row = p.row;
    ro.font = font;
    ro.caption = caption;
    ro.analysis = vo;
    rc = report_write(p.m, &ro, out, NULL);
    at_viz_options_free(vo);
    pass_free(&p);
    return rc;
}
