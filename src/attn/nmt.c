/* Translation models (attn.h, "translation models"): the SentencePiece
 * tokenizers a checkpoint carries in its metadata, the <s> pieces </s>
 * framing, and batched greedy or beam translation of sentences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_text.h"
#include "attn.h"
#include "io/fileio.h"

/* ---------------------------------------------------------------- tokenizers */

/* Loads the base64 tokenizer of metadata key `key`; prints the error. */
static int load_side(const char *who, const char *path, const char *key, const char *b64,
                     at_tokenizer **out)
{
    if (at_tokenizer_load_base64(b64, strlen(b64), out) != AT_OK) {
        attn_error("%s: model '%s': its tokenizer ('%s' in the metadata) cannot be read: %s",
                   who, path, key, at_text_errmsg());
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* The special ids must be the ones the model was trained with: pad 0,
 * <s> 2, </s> 3 (at_tokenizer_train gives them). */
static int check_specials(const char *who, const char *path, const char *side,
                          const at_tokenizer *t)
{
    int32_t pad = at_tokenizer_special_id(t, AT_TOK_PAD),
            bos = at_tokenizer_special_id(t, AT_TOK_BOS),
            eos = at_tokenizer_special_id(t, AT_TOK_EOS);
    if (pad != AT_TOK_PAD_ID || bos != AT_TOK_BOS_ID || eos != AT_TOK_EOS_ID) {
        attn_error("%s: model '%s': the %s tokenizer has pad %d, <s> %d, </s> %d; a "
                   "translation model needs pad %d, <s> %d, </s> %d (as at_tokenizer_train "
                   "makes them)", who, path, side, (int)pad, (int)bos, (int)eos,
                   AT_TOK_PAD_ID, AT_TOK_BOS_ID, AT_TOK_EOS_ID);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* The tokenizer's vocabulary must be the model's, side by side. */
static int check_vocab(const char *who, const char *path, const char *side,
                       const at_tokenizer *t, const at_model *m, at_param key)
{
    int tv = (int)at_tokenizer_vocab_size(t), mv = io_model_int(m, key);
    if (tv != mv) {
        attn_error("%s: model '%s': its %s tokenizer has %d pieces but the model's %s "
                   "vocabulary has %d ids; they must be the same", who, path, side, tv,
                   key == AT_P_SRC_VOCAB ? "source" : "target", mv);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

int nmt_from_model(const char *who, at_model *m, const char *path, nmt *out)
{
    memset(out, 0, sizeof *out);
    const char *joint = NULL, *src = NULL, *tgt = NULL;
    at_model_get_meta(m, AT_TOK_META_JOINT, &joint);
    at_model_get_meta(m, AT_TOK_META_SRC, &src);
    at_model_get_meta(m, AT_TOK_META_TGT, &tgt);
    int rc = ATTN_OK;
    if (joint) {
        rc = load_side(who, path, AT_TOK_META_JOINT, joint, &out->src);
        out->tgt = out->src;
        out->joint = true;
    } else if (src && tgt) {
        rc = load_side(who, path, AT_TOK_META_SRC, src, &out->src);
        if (rc == ATTN_OK)
            rc = load_side(who, path, AT_TOK_META_TGT, tgt, &out->tgt);
    } else if (src || tgt) {
        attn_error("%s: model '%s' has a tokenizer for its %s side ('%s') but none for its "
                   "%s side ('%s')", who, path, src ? "source" : "target",
                   src ? AT_TOK_META_SRC : AT_TOK_META_TGT, src ? "target" : "source",
                   src ? AT_TOK_META_TGT : AT_TOK_META_SRC);
        return ATTN_FAIL;
    } else {
        attn_error("%s: model '%s' has no tokenizer (no '%s' in its metadata), so it cannot "
                   "read text; models trained by attn train --task translate carry theirs",
                   who, path, AT_TOK_META_JOINT);
        return ATTN_FAIL;
    }
    const char *sname = out->joint ? "joint" : "source", *tname = out->joint ? "joint" : "target";
    if (rc == ATTN_OK)
        rc = check_specials(who, path, sname, out->src);
    if (rc == ATTN_OK && !out->joint)
        rc = check_specials(who, path, tname, out->tgt);
    if (rc == ATTN_OK)
        rc = check_vocab(who, path, sname, out->src, m, AT_P_SRC_VOCAB);
    if (rc == ATTN_OK)
        rc = check_vocab(who, path, tname, out->tgt, m, AT_P_TGT_VOCAB);
    out->m = m;
    out->max_len = io_model_int(m, AT_P_MAX_LEN);
    if (rc == ATTN_OK && out->max_len < 2) {
        attn_error("%s: model '%s' has %d positions; a sentence needs at least 2 (<s> and "
                   "</s>)", who, path, out->max_len);
        rc = ATTN_FAIL;
    }
    if (rc != ATTN_OK) {
        nmt_free(out);
        return rc;
    }
    return ATTN_OK;
}

int nmt_load(const char *who, const char *path, nmt *out)
{
    memset(out, 0, sizeof *out);
    at_model *m = NULL;
    char err[512];
    st_file f;
    if (st_read(&f, path, err, sizeof err) != AT_OK) {
        attn_error("%s: cannot read model: %s", who, err);
        return ATTN_FAIL;
    }
    at_status s = at_model_load_buffer(f.buf, f.len, NULL, &m);
    st_free(&f);
    if (s != AT_OK) {
        const char *msg = at_errmsg(NULL), *fn = "at_model_load_buffer: ";
        if (strncmp(msg, fn, strlen(fn)) == 0)   /* the caller knows no such function */
            msg += strlen(fn);
        attn_error("%s: cannot load model '%s': %s", who, path, msg);
        return ATTN_FAIL;
    }
    int rc = nmt_from_model(who, m, path, out);
    if (rc != ATTN_OK) {
        at_model_free(m);
        return rc;
    }
    out->owns_model = true;
    return ATTN_OK;
}

void nmt_free(nmt *t)
{
    if (!t)
        return;
    if (t->tgt != t->src)
        at_tokenizer_free(t->tgt);
    at_tokenizer_free(t->src);
    if (t->owns_model)
        at_model_free(t->m);
    memset(t, 0, sizeof *t);
}

static int set_meta(const char *who, at_model *m, const char *key, at_tokenizer *t)
{
    const char *text = NULL;
    size_t len = 0;
    if (t && at_tokenizer_to_base64(t, &text, &len) != AT_OK) {
        attn_error("%s: cannot serialize the tokenizer: %s", who, at_text_errmsg());
        return ATTN_FAIL;
    }
    if (at_model_set_meta(m, key, text) != AT_OK) {
        attn_error("%s: cannot store the tokenizer in the model's metadata: %s", who,
                   at_errmsg(m));
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

int nmt_attach(const char *who, at_model *m, struct at_tokenizer *src, struct at_tokenizer *tgt)
{
    if (!m || !src || !tgt) {
        attn_error("%s: nmt_attach: a model and two tokenizers are needed", who);
        return ATTN_FAIL;
    }
    bool joint = src == tgt;
    int rc = check_specials(who, "(being built)", joint ? "joint" : "source", src);
    if (rc == ATTN_OK && !joint)
        rc = check_specials(who, "(being built)", "target", tgt);
    if (rc == ATTN_OK)
        rc = check_vocab(who, "(being built)", joint ? "joint" : "source", src, m,
                         AT_P_SRC_VOCAB);
    if (rc == ATTN_OK)
        rc = check_vocab(who, "(being built)", joint ? "joint" : "target", tgt, m,
                         AT_P_TGT_VOCAB);
    if (rc != ATTN_OK)
        return rc;
    if (joint)
        rc = set_meta(who, m, AT_TOK_META_JOINT, src);
    else if ((rc = set_meta(who, m, AT_TOK_META_SRC, src)) == ATTN_OK)
        rc = set_meta(who, m, AT_TOK_META_TGT, tgt);
    /* no stale entry of the other layout is left behind */
    if (rc == ATTN_OK && joint)
        rc = set_meta(who, m, AT_TOK_META_SRC, NULL) == ATTN_OK
                 ? set_meta(who, m, AT_TOK_META_TGT, NULL)
                 : ATTN_FAIL;
    else if (rc == ATTN_OK)
        rc = set_meta(who, m, AT_TOK_META_JOINT, NULL);
    return rc;
}

/* ---------------------------------------------------------------- encoding */

/* The offset of the first byte of s that is not valid UTF-8 (strict, as
 * Python's decoder: no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequence), or len when it is all valid. */
size_t nmt_utf8_invalid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (len - i <= k)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xBF)
                return i;
        i += k + 1;
    }
    return len;
}

/* nmt_encode, naming line `line` (1-based; 0: none) in messages. */
static int encode_line(const char *who, at_tokenizer *t, const char *text, size_t len, int max,
                       int line, int32_t **ids, int *n, bool *truncated)
{
    *ids = NULL;
    *n = 0;
    *truncated = false;
    char where[48] = "the text";
    if (line > 0)
        snprintf(where, sizeof where, "line %d", line);
    if (max < 2) {
        attn_error("%s: a sentence needs at least 2 ids (<s> and </s>); %d allowed", who, max);
        return ATTN_FAIL;
    }
    size_t bad = nmt_utf8_invalid(text, len);
    if (bad < len) {
        attn_error("%s: %s is not valid UTF-8 (byte %zu%s, 0x%02x)", who, where, bad + 1,
                   line > 0 ? " of the line" : "",
                   (unsigned)(unsigned char)text[bad]);
        return ATTN_FAIL;
    }
    const int32_t *pieces = NULL;
    size_t k = 0;
    if (at_tokenizer_encode(t, len ? text : "", len, &pieces, &k) != AT_OK) {
        attn_error("%s: %s: %s", who, where, at_text_errmsg());
        return ATTN_FAIL;
    }
    size_t keep = k;
    if (k + 2 > (size_t)max) {
        keep = (size_t)max - 2;
        *truncated = true;
    }
    int32_t *out = malloc((keep + 2) * sizeof *out);
    if (!out) {
        attn_error("%s: out of memory for %s", who, where);
        return ATTN_FAIL;
    }
    out[0] = AT_TOK_BOS_ID;
    if (keep)
        memcpy(out + 1, pieces, keep * sizeof *out);
    out[keep + 1] = AT_TOK_EOS_ID;
    *ids = out;
    *n = (int)keep + 2;
    return ATTN_OK;
}

int nmt_encode(const char *who, struct at_tokenizer *t, const char *text, size_t len, int max,
               int32_t **ids, int *n, bool *truncated)
{
    return encode_line(who, t, text, len, max, 0, ids, n, truncated);
}

/* ---------------------------------------------------------------- translating */

void nmt_opts_default(nmt_opts *o)
{
    o->beam = 4;
    o->alpha = 0.6;
    o->len_a = 10;
    o->len_b = 2;
    o->batch = 32;
    o->before = NULL;
    o->user = NULL;
}

int nmt_row_limit(const nmt *t, const nmt_opts *o, int src_ids)
{
    double v = floor(o->len_a + o->len_b * src_ids);
    if (v > t->max_len)
        v = t->max_len;
    return v < 2 ? 2 : (int)v;
}

/* Sorting sentences by source length, stably (qsort is not: ties go to the
 * earlier sentence). */
typedef struct by_len {
    int len, index;
} by_len;

static int cmp_len(const void *a, const void *b)
{
    const by_len *x = a, *y = b;
    if (x->len != y->len)
        return (x->len > y->len) - (x->len < y->len);
    return (x->index > y->index) - (x->index < y->index);
}

int nmt_check_opts(const char *who, const nmt_opts *o)
{
    if (o->beam < 1 || o->beam > AT_BEAM_MAX) {
        attn_error("%s: the beam must be 1 (greedy) .. %d; got %d", who, AT_BEAM_MAX, o->beam);
        return ATTN_USAGE;
    }
    if (!(o->alpha >= 0) || !isfinite(o->alpha)) {
        attn_error("%s: the length penalty alpha must be finite and 0 or more; got %g", who,
                   o->alpha);
        return ATTN_USAGE;
    }
    if (!isfinite(o->len_a) || !(o->len_b >= 0) || !isfinite(o->len_b)) {
        attn_error("%s: the longest output a + b * (source ids) needs a finite a and b >= 0; "
                   "got a %g, b %g", who, o->len_a, o->len_b);
        return ATTN_USAGE;
    }
    if (floor(o->len_a + o->len_b * 2) < 2) {   /* the shortest source: <s> </s> */
        attn_error("%s: the longest output a + b * (source ids) must allow 2 ids (<s> and one "
                   "more) for the shortest sentence, 2 source ids; a %g, b %g allow %g", who,
                   o->len_a, o->len_b, floor(o->len_a + o->len_b * 2));
        return ATTN_USAGE;
    }
    if (o->batch < 1) {
        attn_error("%s: the batch must hold at least 1 sentence; got %d", who, o->batch);
        return ATTN_USAGE;
    }
    return ATTN_OK;
}

void nmt_batch_free(nmt_batch *b)
{
    if (!b)
        return;
    for (int i = 0; b->src && i < b->n; i++)
        free(b->src[i]);
    for (int i = 0; b->ys && i < b->n; i++)
        free(b->ys[i]);
    free(b->src);
    free(b->src_len);
    free(b->ys);
    free(b->ys_len);
    memset(b, 0, sizeof *b);
}

/* o->before for the batch order[0 .. B-1]: it is handed the input indices. */
static int before_batch(const char *who, const nmt_opts *o, const by_len *order, int B, int S)
{
    int *index = malloc((size_t)B * sizeof *index);
    if (!index) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    for (int b = 0; b < B; b++)
        index[b] = order[b].index;
    int rc = o->before(o->user, index, B, S);
    free(index);
    return rc;
}

/* Decodes the sentences order[0 .. B-1] as one batch; stores their ids. */
static int decode_batch(const char *who, nmt *t, const nmt_opts *o, const by_len *order, int B,
                        nmt_batch *res)
{
    int S = order[B - 1].len;   /* sorted: the last is the longest */
    int cols = (int)fmin(floor(o->len_a + o->len_b * S), (double)t->max_len + 1) + 1;
    if (cols < 3)
        cols = 3;
    int32_t *src = calloc((size_t)B * (size_t)S, sizeof *src);
    int32_t *out = malloc((size_t)B * (size_t)cols * sizeof *out);
    int *out_len = malloc((size_t)B * sizeof *out_len);
    int rc = ATTN_OK;
    if (!src || !out || !out_len) {
        attn_error("%s: out of memory for a batch of %d sentences", who, B);
        rc = ATTN_FAIL;
    }
    for (int b = 0; rc == ATTN_OK && b < B; b++) {
        int i = order[b].index;
        memcpy(src + (size_t)b * S, res->src[i], (size_t)res->src_len[i] * sizeof *src);
        /* the rest stays AT_TOK_PAD_ID, 0 */
    }
    if (rc == ATTN_OK && o->before)
        rc = before_batch(who, o, order, B, S);
    if (rc == ATTN_OK && o->beam == 1) {
        int max_len = nmt_row_limit(t, o, S), len = 0;
        if (max_len > cols)
            max_len = cols;
        if (at_greedy_decode(t->m, src, B, S, AT_TOK_PAD_ID, max_len, AT_TOK_BOS_ID,
                             AT_TOK_EOS_ID, out, &len) != AT_OK) {
            attn_error("%s: decoding failed: %s", who, at_errmsg(t->m));
            rc = ATTN_FAIL;
        }
        /* a row ends at its </s>, or at its own length limit: the batch it
         * was decoded in does not change a translation */
        for (int b = 0; rc == ATTN_OK && b < B; b++) {
            const int32_t *row = out + (size_t)b * max_len;
            int lim = nmt_row_limit(t, o, order[b].len), k = 1;
            if (lim > len)
                lim = len;
            while (k < lim && row[k] != AT_TOK_EOS_ID)
                k++;
            out_len[b] = k < lim ? k + 1 : lim;
        }
        /* to stride cols, as at_beam_decode writes (cols >= max_len: from the
         * last row down, no row is overwritten before it moved) */
        for (int b = B - 1; rc == ATTN_OK && b > 0; b--)
            memmove(out + (size_t)b * cols, out + (size_t)b * max_len,
                    (size_t)max_len * sizeof *out);
    } else if (rc == ATTN_OK) {
        at_beam_options bo;
        at_beam_options_init(&bo);
        bo.beam_size = o->beam;
        bo.alpha = o->alpha;
        bo.max_len_a = o->len_a;
        bo.max_len_b = o->len_b;
        if (at_beam_decode(t->m, src, B, S, AT_TOK_PAD_ID, AT_TOK_BOS_ID, AT_TOK_EOS_ID, &bo,
                           out, cols, out_len, NULL) != AT_OK) {
            attn_error("%s: beam search failed: %s", who, at_errmsg(t->m));
            rc = ATTN_FAIL;
        }
    }
    for (int b = 0; rc == ATTN_OK && b < B; b++) {
        int i = order[b].index;
        res->ys_len[i] = out_len[b];
        if (!(res->ys[i] = malloc((size_t)out_len[b] * sizeof *res->ys[i]))) {
            attn_error("%s: out of memory", who);
            rc = ATTN_FAIL;
        } else {
            memcpy(res->ys[i], out + (size_t)b * cols, (size_t)out_len[b] * sizeof *out);
        }
    }
    free(src);
    free(out);
    free(out_len);
    return rc;
}

int nmt_translate_ids(const char *who, nmt *t, const char *const *lines, const size_t *lens,
                      int n, const nmt_opts *o, int first_line, nmt_batch *res)
{
    memset(res, 0, sizeof *res);
    int rc = nmt_check_opts(who, o);
    if (rc != ATTN_OK)
        return rc;
    if (n < 1) {
        attn_error("%s: no sentence to translate", who);
        return ATTN_USAGE;
    }
    res->n = n;
    res->src = calloc((size_t)n, sizeof *res->src);
    res->src_len = calloc((size_t)n, sizeof *res->src_len);
    res->ys = calloc((size_t)n, sizeof *res->ys);
    res->ys_len = calloc((size_t)n, sizeof *res->ys_len);
    by_len *order = malloc((size_t)n * sizeof *order);
    if (!res->src || !res->src_len || !res->ys || !res->ys_len || !order) {
        attn_error("%s: out of memory for %d sentences", who, n);
        rc = ATTN_FAIL;
    }
    int cut = 0, first_cut = -1;
    for (int i = 0; rc == ATTN_OK && i < n; i++) {
        bool tr = false;
        rc = encode_line(who, t->src, lines[i], lens[i], t->max_len,
                         first_line > 0 ? first_line + i : 0, &res->src[i], &res->src_len[i],
                         &tr);
        if (rc == ATTN_OK && tr) {
            if (first_cut < 0)
                first_cut = i;
            cut++;
        }
        if (rc == ATTN_OK) {
            order[i].len = res->src_len[i];
            order[i].index = i;
        }
    }
    if (rc == ATTN_OK && cut > 0) {
        if (first_line > 0)
            attn_error("%s: warning: %d sentence%s longer than the model's %d positions, "
                       "cut to %d pieces between <s> and </s> (the first: line %d)", who, cut,
                       cut == 1 ? " is" : "s are", t->max_len, t->max_len - 2,
                       first_line + first_cut);
        else
            attn_error("%s: warning: %d sentence%s longer than the model's %d positions, "
                       "cut to %d pieces between <s> and </s> (the first: sentence %d)", who,
                       cut, cut == 1 ? " is" : "s are", t->max_len, t->max_len - 2,
                       first_cut + 1);
    }
    res->truncated = cut;
    if (rc == ATTN_OK)
        qsort(order, (size_t)n, sizeof *order, cmp_len);
    /* longest first, the short remainder last: the model's activations only
     * grow, so the first batch sizes them for all (ascending, every batch
     * allocated a larger arena and faulted its pages in: a tenth of a beam
     * search's time at batch 32) */
    for (int end = n; rc == ATTN_OK && end > 0; end -= o->batch) {
        int at = end > o->batch ? end - o->batch : 0;
        rc = decode_batch(who, t, o, order + at, end - at, res);
    }
    free(order);
    if (rc != ATTN_OK)
        nmt_batch_free(res);
    return rc;
}

int nmt_detok(const char *who, nmt *t, const int32_t *ys, int len, char **out)
{
    *out = NULL;
    int k = 1;   /* after <s>, up to </s> */
    while (k < len && ys[k] != AT_TOK_EOS_ID)
        k++;
    const char *text = NULL;
    size_t tl = 0;
    if (at_tokenizer_decode(t->tgt, ys + 1, (size_t)(k - 1), &text, &tl) != AT_OK) {
        attn_error("%s: cannot detokenize a translation: %s", who, at_text_errmsg());
        return ATTN_FAIL;
    }
    char *s = malloc(tl + 1);
    if (!s) {
        attn_error("%s: out of memory", who);
        return ATTN_FAIL;
    }
    memcpy(s, text, tl);
    s[tl] = '\0';
    *out = s;
    return ATTN_OK;
}

int nmt_translate(const char *who, nmt *t, const char *const *lines, const size_t *lens, int n,
                  const nmt_opts *o, char **out)
{
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    nmt_batch res;
    int rc = nmt_translate_ids(who, t, lines, lens, n, o, 0, &res);
    for (int i = 0; rc == ATTN_OK && i < n; i++)
        rc = nmt_detok(who, t, res.ys[i], res.ys_len[i], &out[i]);
    if (rc != ATTN_OK)
        for (int i = 0; i < n; i++) {
            free(out[i]);
            out[i] = NULL;
        }
    nmt_batch_free(&res);
    return rc;
}

/* ---------------------------------------------------------------- input sentences */

void nmt_lines_free(nmt_lines *l)
{
    if (!l)
        return;
    free(l->buf);
    free(l->v);
    free(l->len);
    memset(l, 0, sizeof *l);
}

/* Whether the len bytes at s are only spaces and tabs (or nothing). */
static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v')
            return false;
    return true;
}

/* Checks one sentence: UTF-8, not blank. what names it ("line 3"). */
static int check_sentence(const char *who, const char *file, const char *what, const char *s,
                          size_t len)
{
    char pre[1100] = "";
    if (file)
        snprintf(pre, sizeof pre, "%.1000s: ", file);
    size_t bad = nmt_utf8_invalid(s, len);
    if (bad < len) {
        attn_error("%s: %s%s is not valid UTF-8 (byte %zu, 0x%02x)", who, pre, what, bad + 1,
                   (unsigned)(unsigned char)s[bad]);
        return ATTN_FAIL;
    }
    if (memchr(s, '\0', len)) {
        attn_error("%s: %s%s holds a NUL byte", who, pre, what);
        return ATTN_FAIL;
    }
    if (blank(s, len)) {
        attn_error("%s: %s%s is empty; give one sentence per line (an empty line has "
                   "nothing to translate)", who, pre, what);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

static int read_stdin(const char *who, char **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    if (!b) {
        attn_error("%s: out of memory reading the standard input", who);
        return ATTN_FAIL;
    }
    for (;;) {
        if (n == cap) {
            if (cap > ((size_t)1 << 30)) {
                free(b);
                attn_error("%s: the standard input holds more than 1 GiB", who);
                return ATTN_FAIL;
            }
            char *g = realloc(b, 2 * cap + 1);
            if (!g) {
                free(b);
                attn_error("%s: out of memory reading the standard input", who);
                return ATTN_FAIL;
            }
            b = g, cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(b);
        attn_error("%s: cannot read the standard input", who);
        return ATTN_FAIL;
    }
    b[n] = '\0';
    *out = b, *len = n;
    return ATTN_OK;
}

int nmt_read_lines(const char *who, const char *path, nmt_lines *out)
{
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    bool in = strcmp(path, "-") == 0;
    const char *name = in ? "the standard input" : path;
    if (in) {
        if (read_stdin(who, &buf, &len) != ATTN_OK)
            return ATTN_FAIL;
    } else {
        char err[1024];
        unsigned char *data = NULL;
        if (file_read_all(path, (size_t)1 << 30, &data, &len, err, sizeof err) != AT_OK) {
            attn_error("%s: cannot read sentences: %s", who, err);
            return ATTN_FAIL;
        }
        buf = (char *)data;
    }
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    if (len > 0 && buf[len - 1] != '\n')
        lines++;
    if (lines == 0) {
        attn_error("%s: %s is empty: no sentence to translate", who, name);
        free(buf);
        return ATTN_FAIL;
    }
    if (lines > (size_t)INT32_MAX / 2) {
        attn_error("%s: %s has too many lines (%zu)", who, name, lines);
        free(buf);
        return ATTN_FAIL;
    }
    out->buf = buf;
    out->v = malloc(lines * sizeof *out->v);
    out->len = malloc(lines * sizeof *out->len);
    if (!out->v || !out->len) {
        attn_error("%s: out of memory for %zu lines", who, lines);
        nmt_lines_free(out);
        return ATTN_FAIL;
    }
    char *p = buf, *end = buf + len;
    for (size_t i = 0; i < lines; i++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        char what[48];
        snprintf(what, sizeof what, "line %zu", i + 1);
        if (check_sentence(who, name, what, p, n) != ATTN_OK) {
            nmt_lines_free(out);
            return ATTN_FAIL;
        }
        p[n] = '\0';
        out->v[i] = p, out->len[i] = n;
        p = nl ? nl + 1 : end;
    }
    out->n = (int)lines;
    out->from_file = true;
    return ATTN_OK;
}

int nmt_args_lines(const char *who, char **texts, int n, nmt_lines *out)
{
    memset(out, 0, sizeof *out);
    out->v = malloc((size_t)(n > 0 ? n : 1) * sizeof *out->v);
    out->len = malloc((size_t)(n > 0 ? n : 1) * sizeof *out->len);
    if (!out->v || !out->len) {
        attn_error("%s: out of memory", who);
        nmt_lines_free(out);
        return ATTN_FAIL;
    }
    for (int i = 0; i < n; i++) {
        char what[48];
        if (n == 1)
            snprintf(what, sizeof what, "the text");
        else
            snprintf(what, sizeof what, "text %d", i + 1);
        size_t len = strlen(texts[i]);
        if (check_sentence(who, NULL, what, texts[i], len) != ATTN_OK) {
            nmt_lines_free(out);
            return ATTN_USAGE;
        }
        out->v[i] = texts[i], out->len[i] = len;
    }
    out->n = n;
    return ATTN_OK;
}

int nmt_score(const char *who, char *const *hyp, const nmt_lines *ref, int n, double *bleu,
              double *chrf)
{
    at_bleu *b = NULL;
    at_chrf *c = NULL;
    at_status s = at_bleu_create(&b);
    if (s == AT_OK)
        s = at_chrf_create(&c);
    for (int i = 0; i < n && s == AT_OK; i++) {
        const char *r = ref->v[i];
        size_t rl = ref->len[i];
        s = at_bleu_add(b, hyp[i], strlen(hyp[i]), &r, &rl, 1);
        if (s == AT_OK)
            s = at_chrf_add(c, hyp[i], strlen(hyp[i]), &r, &rl, 1);
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
        attn_error("%s: scoring the translations: %s", who, at_text_errmsg());
        return ATTN_FAIL;
    }
    *bleu = bs.score;
    *chrf = cs.score;
    return ATTN_OK;
}
