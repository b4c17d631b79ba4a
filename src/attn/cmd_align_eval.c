/* attn align-eval: how often cross-attention points at the word that was
 * translated. Word-level alignments from a model's teacher-forced
 * cross-attention (or from a file of alignments) scored against the gold
 * links of a corpus folder (DIR/{split}.align, Pharaoh i-j: the Strong's
 * links of attn corpus bible) with AER, precision and recall
 * (docs/alignment.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_analysis.h"
#include "at_text.h"
#include "attn.h"
#include "io/fileio.h"

static const char help[] =
    "usage: attn align-eval --model M --data DIR [--split test] [--limit N] [--batch N]\n"
    "                       [--threads N] [--json]\n"
    "       attn align-eval --hyp F --data DIR [--split test] [--limit N] [--json]\n"
    "\n"
    "Score word alignments against the gold links DIR/{split}.align (one line per line of\n"
    "DIR/{split}.src and .tgt, pairs i-j of 0-based source word i and target word j,\n"
    "words split at white space; attn corpus bible writes them from Strong's numbers).\n"
    "With --model: the teacher-forced pass on each line pair (source and target pieces as\n"
    "attn translate --dump builds them), cross-attention summed over a source word's\n"
    "pieces and averaged over a target word's pieces (the rows that emit them), and per\n"
    "target word the source word it attends to most: for every layer and head, for each\n"
    "layer's mean over heads and for the mean over all layers. With --hyp: the links of\n"
    "F (Pharaoh, one line per corpus line). Only target words with at least one gold link\n"
    "are scored. AER = 1 - 2|A&S| / (|A| + |S|) (Och & Ney 2003, sure links only),\n"
    "precision |A&S| / |A|, recall |A&S| / |S|. Lines cut to the model's positions or\n"
    "whose pieces do not make up their words are left out (and counted).\n"
    "\n"
    "  --model M    a translation model that carries its tokenizer\n"
    "  --hyp F      alignments to score instead of a model's\n"
    "  --data DIR   the corpus folder\n"
    "  --split S    which split (default test): DIR/S.src, DIR/S.tgt, DIR/S.align\n"
    "  --limit N    only the first N lines\n"
    "  --batch N    line pairs per forward pass (default 16)\n"
    "  --threads N  threads for OpenBLAS and libat\n"
    "  --json       one JSON object: lines, heads {\"L:H\": {aer, precision, recall}},\n"
    "               layers {\"L\": ...}, average, best {layer, head, aer} (from 1); with\n"
    "               --hyp: lines, alignment {aer, precision, recall}\n"
    "  -h, --help   this text\n";

/* ---------------------------------------------------------------- the gold links */

/* One corpus line: its word counts and links (i, j pairs). */
typedef struct aline {
    int sw, tw;
    int n;
    int32_t *links;
} aline;

/* Counts over a corpus: links proposed (on target words with gold links),
 * gold links, and proposed links that are gold. */
typedef struct counts {
    long long hyp, gold, hit;
} counts;

static void alines_free(aline *a, int n)
{
    for (int i = 0; a && i < n; i++)
        free(a[i].links);
    free(a);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* The white-space-separated words of s[0..len). */
static int count_words(const char *s, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += !is_blank(s[i]) && (i == 0 || is_blank(s[i - 1]));
    return n;
}

/* A whole number of at most 6 digits at s (updated); -1 if there is none. */
static long number(const char **s, const char *end)
{
    long v = 0;
    int d = 0;
    for (; *s < end && **s >= '0' && **s <= '9'; (*s)++, d++)
        if (d < 7)
            v = v * 10 + (**s - '0');
    return d == 0 || d > 6 ? -1 : v;
}

/* Parses one line "i-j i-j ..." into a->links, checking each against the
 * line's words. Prints the error naming file and line; returns an exit code. */
static int parse_links(const char *file, int line, const char *s, const char *end, aline *a)
{
    int cap = 0;
    while (s < end) {
        while (s < end && is_blank(*s))
            s++;
        if (s >= end)
            break;
        const char *tok = s, *p = s;
        long i = number(&p, end), j = -1;
        if (i >= 0 && p < end && *p == '-') {
            p++;
            j = number(&p, end);
        }
        if (i < 0 || j < 0 || (p < end && !is_blank(*p))) {
            const char *e = tok;
            while (e < end && !is_blank(*e))
                e++;
            attn_error("align-eval: %s line %d: '%.*s' is not a link i-j (0-based word "
                       "numbers)", file, line, (int)(e - tok < 40 ? e - tok : 40), tok);
            return ATTN_FAIL;
        }
        if (i >= a->sw || j >= a->tw) {
            attn_error("align-eval: %s line %d: link %ld-%ld is beyond the line's words "
                       "(%d source, %d target)", file, line, i, j, a->sw, a->tw);
            return ATTN_FAIL;
        }
        if (a->n == cap) {
            cap = cap ? cap * 2 : 16;
            int32_t *q = realloc(a->links, (size_t)cap * 2 * sizeof *q);
            if (!q) {
                attn_error("align-eval: out of memory");
                return ATTN_FAIL;
            }
            a->links = q;
        }
        a->links[2 * a->n] = (int32_t)i;
        a->links[2 * a->n + 1] = (int32_t)j;
        a->n++;
        s = p;
    }
    return ATTN_OK;
}

/* Reads a file of links, one line per line of src (whose words, with tgt's,
 * bound the indices). A count of lines other than n is an error. */
static int read_links(const char *path, const nmt_lines *src, const nmt_lines *tgt,
                      aline **out)
{
    char err[1024];
    unsigned char *d = NULL;
    size_t len = 0;
    *out = NULL;
    if (file_read_all(path, (size_t)1 << 30, &d, &len, err, sizeof err) != AT_OK) {
        attn_error("align-eval: %s", err);
        return ATTN_FAIL;
    }
    const char *s = (const char *)d, *end = s + len;
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += s[i] == '\n';
    lines += len > 0 && s[len - 1] != '\n';
    if (lines != src->n) {
        attn_error("align-eval: %s has %d line%s but the corpus has %d; they must match line "
                   "by line", path, lines, lines == 1 ? "" : "s", src->n);
        free(d);
        return ATTN_FAIL;
    }
    aline *a = calloc((size_t)(lines > 0 ? lines : 1), sizeof *a);
    int rc = a ? ATTN_OK : ATTN_FAIL;
    if (!a)
        attn_error("align-eval: out of memory");
    for (int k = 0; rc == ATTN_OK && k < lines; k++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        a[k].sw = count_words(src->v[k], src->len[k]);
        a[k].tw = count_words(tgt->v[k], tgt->len[k]);
        rc = parse_links(path, k + 1, s, e, &a[k]);
        s = nl ? nl + 1 : end;
    }
    free(d);
    if (rc != ATTN_OK) {
        alines_free(a, lines);
        return rc;
    }
    *out = a;
    return ATTN_OK;
}

/* ---------------------------------------------------------------- scoring */

/* The gold links of g as a (tw, sw) 0/1 matrix, and which target words have
 * one; malloc'd (NULL when out of memory). */
static unsigned char *gold_matrix(const aline *g, unsigned char **has)
{
    size_t cells = (size_t)g->tw * (size_t)g->sw;
    unsigned char *m = calloc(cells + (size_t)g->tw + 1, 1);
    if (!m)
        return NULL;
    *has = m + cells;
    for (int k = 0; k < g->n; k++) {
        m[(size_t)g->links[2 * k + 1] * g->sw + g->links[2 * k]] = 1;
        (*has)[g->links[2 * k + 1]] = 1;
    }
    return m;
}

/* Adds the distinct links of h, on target words with a gold link, to c. */
static bool score_links(counts *c, const aline *g, const aline *h)
{
    unsigned char *has, *gm = gold_matrix(g, &has);
    unsigned char *seen = calloc((size_t)g->tw * (size_t)g->sw + 1, 1);
    if (!gm || !seen) {
        free(gm);
        free(seen);
        return false;
    }
    for (int k = 0; k < g->n; k++)
        c->gold += !seen[(size_t)g->links[2 * k + 1] * g->sw + g->links[2 * k]]++;
    memset(seen, 0, (size_t)g->tw * (size_t)g->sw);
    for (int k = 0; k < h->n; k++) {
        size_t at = (size_t)h->links[2 * k + 1] * g->sw + h->links[2 * k];
        if (!has[h->links[2 * k + 1]] || seen[at]++)
            continue;
        c->hyp++;
        c->hit += gm[at];
    }
    free(gm);
    free(seen);
    return true;
}

/* The hook for every attention-derived method (raw heads and their means
 * here; rollout, value-norm and attribution maps can come through it too):
 * map[j * sw + i] says how much target word j draws on source word i. Each
 * target word is aligned to its largest entry (the first, on ties) and the
 * links scored against g. */
static bool align_add_map(counts *c, const aline *g, const double *map)
{
    aline h = {g->sw, g->tw, 0, malloc(((size_t)g->tw + 1) * 2 * sizeof(int32_t))};
    if (!h.links) {
        attn_error("align-eval: out of memory");
        return false;
    }
    for (int j = 0; j < g->tw && g->sw > 0; j++) {
        int best = 0;
        for (int i = 1; i < g->sw; i++)
            best = map[(size_t)j * g->sw + i] > map[(size_t)j * g->sw + best] ? i : best;
        h.links[2 * h.n] = best;
        h.links[2 * h.n + 1] = j;
        h.n++;
    }
    bool ok = score_links(c, g, &h);
    free(h.links);
    if (!ok)
        attn_error("align-eval: out of memory");
    return ok;
}

static double aer_of(const counts *c)
{
    return c->hyp + c->gold ? 1.0 - 2.0 * (double)c->hit / (double)(c->hyp + c->gold) : 1.0;
}

static double precision_of(const counts *c)
{
    return c->hyp ? (double)c->hit / (double)c->hyp : 0.0;
}

static double recall_of(const counts *c)
{
    return c->gold ? (double)c->hit / (double)c->gold : 0.0;
}

/* ---------------------------------------------------------------- pieces and words */

/* The word of each piece of ids (<s> pieces </s>): -1 for <s> and </s>, else
 * the number of word starts before it, a piece starting with U+2581 (▁,
 * SentencePiece's mark of a preceding space) starting a word. Returns the
 * number of words. */
static int piece_words(at_tokenizer *t, const int32_t *ids, int n, int *word)
{
    int w = -1;
    for (int k = 0; k < n; k++) {
        const char *p = "";
        word[k] = -1;
        if (ids[k] == AT_TOK_BOS_ID || ids[k] == AT_TOK_EOS_ID)
            continue;
        if (at_tokenizer_piece(t, ids[k], &p) != AT_OK)
            p = "";
        if (w < 0 || strncmp(p, "\xe2\x96\x81", 3) == 0)
            w++;
        word[k] = w;
    }
    return w + 1;
}

/* ---------------------------------------------------------------- the model's alignments */

/* One line pair ready for the pass: its ids and the word of each piece. */
typedef struct item {
    int line;
    int32_t *src, *ys;
    int src_len, ys_len;
    int *sword, *tword;
} item;

static void item_free(item *it)
{
    free(it->src);
    free(it->ys);
    free(it->sword);
    free(it->tword);
    memset(it, 0, sizeof *it);
}

typedef struct scorer {
    nmt t;
    int layers, heads;
    counts *head, *layer, all;   /* [layers * heads], [layers] */
    /* maps other than raw attention: rollout through the decoder to the
     * source, value-norm attention, gradient-weighted attention */
    counts rollout, vnorm, attrib;
    int scored, truncated, mismatched, unlinked;
} scorer;

/* Encodes line k into it; *use false (and the reason counted) when the line
 * cannot be scored. Returns an exit code (the error printed). */
static int prepare(scorer *sc, const nmt_lines *src, const nmt_lines *tgt, const aline *g,
                   int k, item *it, bool *use)
{
    bool cut1 = false, cut2 = false;
    *use = false;
    memset(it, 0, sizeof *it);
    it->line = k;
    if (g->n == 0) {
        sc->unlinked++;
        return ATTN_OK;
    }
    int rc = nmt_encode("align-eval", sc->t.src, src->v[k], src->len[k], sc->t.max_len,
                        &it->src, &it->src_len, &cut1);
    if (rc == ATTN_OK)
        rc = nmt_encode("align-eval", sc->t.tgt, tgt->v[k], tgt->len[k], sc->t.max_len + 1,
                        &it->ys, &it->ys_len, &cut2);
    if (rc != ATTN_OK)
        return rc;
    if (cut1 || cut2) {
        sc->truncated++;
        item_free(it);
        return ATTN_OK;
    }
    it->sword = malloc((size_t)it->src_len * sizeof *it->sword);
    it->tword = malloc((size_t)it->ys_len * sizeof *it->tword);
    if (!it->sword || !it->tword) {
        attn_error("align-eval: out of memory");
        return ATTN_FAIL;
    }
    if (piece_words(sc->t.src, it->src, it->src_len, it->sword) != g->sw ||
        piece_words(sc->t.tgt, it->ys, it->ys_len, it->tword) != g->tw) {
        sc->mismatched++;   /* a normalisation that moved white space */
        item_free(it);
        return ATTN_OK;
    }
    *use = true;
    return ATTN_OK;
}

/* The word map of row b, head h of a cross-attention view: target word j's
 * rows are those whose query emits one of its pieces (query k - 1 emits
 * ys[k]); their mass on a source word's pieces is summed, then averaged over
 * the word's pieces. */
static void word_map(const at_view *v, int b, int h, const item *it, const aline *g,
                     double *map, int *rows)
{
    memset(map, 0, (size_t)g->tw * g->sw * sizeof *map);
    memset(rows, 0, (size_t)g->tw * sizeof *rows);
    const float *base = v->data + b * v->stride[0] + h * v->stride[1];
    for (int k = 1; k < it->ys_len; k++) {
        int j = it->tword[k];
        if (j < 0)
            continue;
        rows[j]++;
        const float *row = base + (int64_t)(k - 1) * v->stride[2];
        for (int s = 0; s < it->src_len; s++)
            if (it->sword[s] >= 0)
                map[(size_t)j * g->sw + it->sword[s]] += row[s * v->stride[3]];
    }
    for (int j = 0; j < g->tw; j++)
        for (int i = 0; rows[j] > 0 && i < g->sw; i++)
            map[(size_t)j * g->sw + i] /= rows[j];
}

/* Scores row b of the last pass: every head, each layer's mean, the mean of all. */
static int score_row(scorer *sc, int b, const item *it, const aline *g)
{
    size_t cells = (size_t)g->tw * g->sw;
    double *maps = calloc(cells * ((size_t)sc->layers * sc->heads + sc->layers + 1), sizeof *maps);
    int *rows = malloc(((size_t)g->tw + 1) * sizeof *rows);
    if (!maps || !rows) {
        free(maps);
        free(rows);
        attn_error("align-eval: out of memory");
        return ATTN_FAIL;
    }
    int rc = ATTN_OK;
    double *lmap = maps + cells * (size_t)sc->layers * sc->heads;
    double *amap = lmap + cells * (size_t)sc->layers;
    for (int l = 0; rc == ATTN_OK && l < sc->layers; l++) {
        at_view v;
        if (at_get_attention(sc->t.m, AT_ATTN_CROSS, l, &v) != AT_OK) {
            attn_error("align-eval: cross-attention of layer %d: %s", l + 1, at_errmsg(sc->t.m));
            rc = ATTN_FAIL;
            break;
        }
        for (int h = 0; h < sc->heads; h++) {
            double *m = maps + cells * ((size_t)l * sc->heads + h);
            word_map(&v, b, h, it, g, m, rows);
            for (size_t c = 0; c < cells; c++) {
                lmap[cells * l + c] += m[c] / sc->heads;
                amap[c] += m[c] / ((double)sc->heads * sc->layers);
            }
            if (!align_add_map(&sc->head[l * sc->heads + h], g, m))
                rc = ATTN_FAIL;
        }
        if (rc == ATTN_OK && !align_add_map(&sc->layer[l], g, lmap + cells * l))
            rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && !align_add_map(&sc->all, g, amap))
        rc = ATTN_FAIL;
    free(maps);
    free(rows);
    return rc;
}

/* A (B, h, Lq, Lk) buffer of n rows as a view, for word_map. */
static at_view buffer_view(const float *x, int B, int h, int lq, int lk)
{
    at_view v = {.data = x, .ndim = 4, .shape = {B, h, lq, lk},
                 .stride = {(int64_t)h * lq * lk, (int64_t)lq * lk, lk, 1}};
    return v;
}

/* The word map of row b averaged over the heads of v, added into acc with
 * weight w. */
static void add_head_mean(const at_view *v, int b, const item *it, const aline *g, double w,
                          double *acc, double *map, int *rows)
{
    size_t cells = (size_t)g->tw * g->sw;
    for (int h = 0; h < v->shape[1]; h++) {
        word_map(v, b, h, it, g, map, rows);
        for (size_t c = 0; c < cells; c++)
            acc[c] += w * map[c] / (double)v->shape[1];
    }
}

/* Rollout (at_rollout, the decoder's to the source) and value-norm
 * attention (at_value_norm, every cross layer, heads and layers averaged) of
 * the last pass; grad*attn of the next (mean over heads and layers of
 * (-dL/dA * A)+, L the batch's mean NLL: the attention that raised the
 * labels' probability, Chefer et al.'s gradient weighting). */
typedef struct extra_maps {
    float *roll, *vn, *rel;      /* (n, T, S), (n, h, T, S) per layer, (n, T, S) */
} extra_maps;

static int extra_from_pass(scorer *sc, int n, int S, int T, extra_maps *x)
{
    at_model *m = sc->t.m;
    size_t one = (size_t)n * T * S;
    x->roll = malloc(one * sizeof *x->roll);
    x->vn = calloc(one, sizeof *x->vn);
    x->rel = calloc(one, sizeof *x->rel);
    float *per = malloc(one * (size_t)sc->heads * sizeof *per);
    int rc = x->roll && x->vn && x->rel && per ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("align-eval: out of memory");
    if (rc == ATTN_OK && at_rollout(m, AT_ATTN_CROSS, x->roll) != AT_OK)
        rc = ATTN_FAIL;
    for (int l = 0; rc == ATTN_OK && l < sc->layers; l++) {
        if (at_value_norm(m, AT_ATTN_CROSS, l, per) != AT_OK) {
            rc = ATTN_FAIL;
            break;
        }
        /* heads and layers averaged; rows keep their own scale (argmax) */
        for (size_t i = 0; i < one * (size_t)sc->heads; i++) {
            size_t b = i / ((size_t)sc->heads * T * S), r = i % ((size_t)T * S);
            x->vn[b * T * S + r] += per[i] / (float)(sc->heads * sc->layers);
        }
    }
    if (rc != ATTN_OK && x->roll && per)
        attn_error("align-eval: %s", at_errmsg(m));
    free(per);
    return rc;
}

static int extra_from_grads(scorer *sc, int n, int S, int T, const int32_t *src,
                            const int32_t *ys, extra_maps *x)
{
    at_model *m = sc->t.m;
    if (at_attention_gradients(m, src, ys, n, S, T + 1, AT_TOK_PAD_ID, -1, NULL) != AT_OK) {
        attn_error("align-eval: the gradients' pass failed: %s", at_errmsg(m));
        return ATTN_FAIL;
    }
    for (int l = 0; l < sc->layers; l++) {
        at_view a, g;
        if (at_get_attention(m, AT_ATTN_CROSS, l, &a) != AT_OK ||
            at_get_attention_grad(m, AT_ATTN_CROSS, l, &g) != AT_OK) {
            attn_error("align-eval: %s", at_errmsg(m));
            return ATTN_FAIL;
        }
        for (int b = 0; b < n; b++)
            for (int h = 0; h < sc->heads; h++)
                for (int i = 0; i < T; i++)
                    for (int j = 0; j < S; j++) {
                        size_t gi = (((size_t)b * sc->heads + h) * T + i) * S + j;
                        float r = -g.data[gi] * a.data[b * a.stride[0] + h * a.stride[1] +
                                                       i * a.stride[2] + j * a.stride[3]];
                        x->rel[((size_t)b * T + i) * S + j] +=
                            r > 0 ? r / (float)(sc->heads * sc->layers) : 0.0f;
                    }
    }
    return ATTN_OK;
}

static int score_extra(scorer *sc, int n, int S, int T, const item *its, const aline *gold,
                       const extra_maps *x)
{
    at_view roll = buffer_view(x->roll, n, 1, T, S), vn = buffer_view(x->vn, n, 1, T, S);
    at_view rel = buffer_view(x->rel, n, 1, T, S);
    const at_view *views[] = {&roll, &vn, &rel};
    counts *into[] = {&sc->rollout, &sc->vnorm, &sc->attrib};
    int rc = ATTN_OK;
    for (int b = 0; rc == ATTN_OK && b < n; b++) {
        const aline *g = &gold[its[b].line];
        size_t cells = (size_t)g->tw * g->sw;
        double *map = malloc(2 * cells * sizeof *map + 1);
        int *rows = malloc(((size_t)g->tw + 1) * sizeof *rows);
        if (!map || !rows)
            rc = ATTN_FAIL;
        for (int k = 0; rc == ATTN_OK && k < 3; k++) {
            memset(map + cells, 0, cells * sizeof *map);
            add_head_mean(views[k], b, &its[b], g, 1.0, map + cells, map, rows);
            if (!align_add_map(into[k], g, map + cells))
                rc = ATTN_FAIL;
        }
        free(map);
        free(rows);
    }
    if (rc != ATTN_OK)
        attn_error("align-eval: out of memory");
    return rc;
}

/* One teacher-forced pass over n items (padded with AT_TOK_PAD_ID), then
 * their scores. */
static int run_batch(scorer *sc, item *its, int n, const aline *gold)
{
    if (n < 1 || n > 1 << 20)
        return ATTN_OK;
    int S = 1, T = 1;
    for (int b = 0; b < n; b++) {
        S = its[b].src_len > S ? its[b].src_len : S;
        T = its[b].ys_len - 1 > T ? its[b].ys_len - 1 : T;
    }
    int32_t *src = calloc((size_t)n * S, sizeof *src), *tgt = calloc((size_t)n * T, sizeof *tgt);
    int rc = src && tgt ? ATTN_OK : ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("align-eval: out of memory");
    for (int b = 0; rc == ATTN_OK && b < n; b++) {
        memcpy(src + (size_t)b * S, its[b].src, (size_t)its[b].src_len * sizeof *src);
        memcpy(tgt + (size_t)b * T, its[b].ys, (size_t)(its[b].ys_len - 1) * sizeof *tgt);
    }
    if (rc == ATTN_OK && at_forward(sc->t.m, src, tgt, n, S, T, AT_TOK_PAD_ID) != AT_OK) {
        attn_error("align-eval: the forward pass failed: %s", at_errmsg(sc->t.m));
        rc = ATTN_FAIL;
    }
    for (int b = 0; rc == ATTN_OK && b < n; b++) {
        rc = score_row(sc, b, &its[b], &gold[its[b].line]);
        sc->scored++;
    }
    /* the other maps: rollout and value norms of this pass, then a pass with
     * the gradients, over the full targets */
    extra_maps x = {0};
    int32_t *ys = rc == ATTN_OK ? calloc((size_t)n * (T + 1), sizeof *ys) : NULL;
    if (rc == ATTN_OK && !ys) {
        attn_error("align-eval: out of memory");
        rc = ATTN_FAIL;
    }
    for (int b = 0; rc == ATTN_OK && b < n; b++)
        memcpy(ys + (size_t)b * (T + 1), its[b].ys, (size_t)its[b].ys_len * sizeof *ys);
    if (rc == ATTN_OK)
        rc = extra_from_pass(sc, n, S, T, &x);
    if (rc == ATTN_OK)
        rc = extra_from_grads(sc, n, S, T, src, ys, &x);
    if (rc == ATTN_OK)
        rc = score_extra(sc, n, S, T, its, gold, &x);
    free(x.roll);
    free(x.vn);
    free(x.rel);
    free(ys);
    free(src);
    free(tgt);
    return rc;
}

static int score_model(scorer *sc, const char *model, const nmt_lines *src,
                       const nmt_lines *tgt, const aline *gold, int n, int batch)
{
    int rc = nmt_load("align-eval", model, &sc->t);
    if (rc != ATTN_OK)
        return rc;
    sc->layers = io_model_int(sc->t.m, AT_P_LAYERS);
    sc->heads = io_model_int(sc->t.m, AT_P_HEADS);
    sc->head = calloc((size_t)sc->layers * sc->heads + 1, sizeof *sc->head);
    sc->layer = calloc((size_t)sc->layers + 1, sizeof *sc->layer);
    item *its = calloc((size_t)batch, sizeof *its);
    if (!sc->head || !sc->layer || !its) {
        attn_error("align-eval: out of memory");
        rc = ATTN_FAIL;
    }
    int have = 0;
    for (int k = 0; rc == ATTN_OK && k < n; k++) {
        bool use = false;
        rc = prepare(sc, src, tgt, &gold[k], k, &its[have], &use);
        have += rc == ATTN_OK && use;
        if (rc == ATTN_OK && (have == batch || (k == n - 1 && have > 0))) {
            rc = run_batch(sc, its, have, gold);
            for (int b = 0; b < have; b++)
                item_free(&its[b]);
            have = 0;
        }
    }
    for (int b = 0; its && b <= have && b < batch; b++)
        item_free(&its[b]);
    free(its);
    return rc;
}

/* ---------------------------------------------------------------- output */

static void json_counts(const char *key, const counts *c, bool comma)
{
    printf("\"%s\": {\"aer\": %.17g, \"precision\": %.17g, \"recall\": %.17g}%s", key,
           aer_of(c), precision_of(c), recall_of(c), comma ? ", " : "");
}

static void text_counts(const char *what, const counts *c)
{
    printf("%-16s %8.4f %10.4f %8.4f\n", what, aer_of(c), precision_of(c), recall_of(c));
}

static int best_head(const scorer *sc)
{
    int best = 0;
    for (int k = 1; k < sc->layers * sc->heads; k++)
        best = aer_of(&sc->head[k]) < aer_of(&sc->head[best]) ? k : best;
    return best;
}

static void print_model(const scorer *sc, bool json)
{
    int best = best_head(sc);
    char key[48];
    if (json) {
        printf("{\"lines\": %d, \"skipped\": {\"truncated\": %d, \"pieces\": %d, "
               "\"no_links\": %d}, \"gold_links\": %lld,\n \"heads\": {", sc->scored,
               sc->truncated, sc->mismatched, sc->unlinked, sc->all.gold);
        for (int k = 0; k < sc->layers * sc->heads; k++) {
            snprintf(key, sizeof key, "%d:%d", k / sc->heads + 1, k % sc->heads + 1);
            json_counts(key, &sc->head[k], k + 1 < sc->layers * sc->heads);
        }
        printf("},\n \"layers\": {");
        for (int l = 0; l < sc->layers; l++) {
            snprintf(key, sizeof key, "%d", l + 1);
            json_counts(key, &sc->layer[l], l + 1 < sc->layers);
        }
        printf("},\n ");
        json_counts("average", &sc->all, true);
        json_counts("rollout", &sc->rollout, true);
        json_counts("value_norm", &sc->vnorm, true);
        json_counts("attribution", &sc->attrib, true);
        printf("\n \"best\": {\"layer\": %d, \"head\": %d, \"aer\": %.17g}}\n",
               best / sc->heads + 1, best % sc->heads + 1, aer_of(&sc->head[best]));
        return;
    }
    printf("%d lines scored (left out: %d cut to the model's positions, %d whose pieces do "
           "not make up their words, %d without gold links); %lld gold links\n",
           sc->scored, sc->truncated, sc->mismatched, sc->unlinked, sc->all.gold);
    printf("%-16s %8s %10s %8s\n", "cross-attention", "AER", "precision", "recall");
    for (int k = 0; k < sc->layers * sc->heads; k++) {
        snprintf(key, sizeof key, "layer %d head %d", k / sc->heads + 1, k % sc->heads + 1);
        text_counts(key, &sc->head[k]);
    }
    for (int l = 0; l < sc->layers; l++) {
        snprintf(key, sizeof key, "layer %d mean", l + 1);
        text_counts(key, &sc->layer[l]);
    }
    text_counts("all layers mean", &sc->all);
    text_counts("rollout", &sc->rollout);
    text_counts("value norm", &sc->vnorm);
    text_counts("grad x attn", &sc->attrib);
    printf("best alignment head: layer %d head %d (AER %.4f)\n", best / sc->heads + 1,
           best % sc->heads + 1, aer_of(&sc->head[best]));
}

/* ---------------------------------------------------------------- the command */

static int read_corpus(const char *dir, const char *split, nmt_lines *src, nmt_lines *tgt)
{
    char name[300];
    snprintf(name, sizeof name, "%s.src", split);
    char *p = io_join(dir, name);
    int rc = p ? nmt_read_lines("align-eval", p, src) : ATTN_FAIL;
    free(p);
    if (rc != ATTN_OK)
        return rc;
    snprintf(name, sizeof name, "%s.tgt", split);
    p = io_join(dir, name);
    rc = p ? nmt_read_lines("align-eval", p, tgt) : ATTN_FAIL;
    free(p);
    if (rc == ATTN_OK && tgt->n != src->n) {
        attn_error("align-eval: %s/%s.src has %d lines but %s.tgt has %d", dir, split, src->n,
                   split, tgt->n);
        rc = ATTN_FAIL;
    }
    if (rc != ATTN_OK)
        nmt_lines_free(src);
    return rc;
}

static int score_hyp(const char *path, const nmt_lines *src, const nmt_lines *tgt,
                     const aline *gold, int n, bool json)
{
    aline *hyp = NULL;
    int rc = read_links(path, src, tgt, &hyp);
    counts c = {0, 0, 0};
    for (int k = 0; rc == ATTN_OK && k < n; k++)
        if (!score_links(&c, &gold[k], &hyp[k])) {
            attn_error("align-eval: out of memory");
            rc = ATTN_FAIL;
        }
    alines_free(hyp, src->n);
    if (rc != ATTN_OK)
        return rc;
    if (json) {
        printf("{\"lines\": %d, \"gold_links\": %lld, ", n, c.gold);
        json_counts("alignment", &c, false);
        printf("}\n");
    } else {
        printf("%d lines; %lld gold links, %lld links on target words with one, %lld of them "
               "gold\n%-16s %8s %10s %8s\n", n, c.gold, c.hyp, c.hit, "", "AER", "precision",
               "recall");
        text_counts(path, &c);
    }
    return ATTN_OK;
}

int cmd_align_eval(int argc, char **argv)
{
    const char *model = NULL, *hyp = NULL, *data = NULL, *split = "test";
    bool json = false;
    int limit = 0, batch = 16, threads = 0;
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"hyp", OPT_STR, &hyp, 0, 0, false},
        {"data", OPT_STR, &data, 0, 0, false},
        {"split", OPT_STR, &split, 0, 0, false},
        {"json", OPT_FLAG, &json, 0, 0, false},
        {"limit", OPT_INT, &limit, 1, 2147483647.0, false},
        {"batch", OPT_INT, &batch, 1, 4096, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    if ((rc = args_require("align-eval", &opts[2])) != ATTN_OK)
        return rc;
    if (!!model == !!hyp) {
        attn_error("align-eval: give --model M (its cross-attention) or --hyp F (a file of "
                   "alignments), one of them");
        return ATTN_USAGE;
    }
    if (!*split || strlen(split) > 200 || strchr(split, '/')) {
        attn_error("align-eval: --split: a split name such as train, valid or test");
        return ATTN_USAGE;
    }
    if (threads > 0)
        at_set_threads(threads);
    nmt_lines src, tgt;
    if ((rc = read_corpus(data, split, &src, &tgt)) != ATTN_OK)
        return rc;
    char name[300];
    snprintf(name, sizeof name, "%s.align", split);
    char *gpath = io_join(data, name);
    aline *gold = NULL;
    rc = gpath ? read_links(gpath, &src, &tgt, &gold) : ATTN_FAIL;
    free(gpath);
    int n = limit > 0 && limit < src.n ? limit : src.n;
    if (rc == ATTN_OK && hyp) {
        rc = score_hyp(hyp, &src, &tgt, gold, n, json);
    } else if (rc == ATTN_OK) {
        scorer sc;
        memset(&sc, 0, sizeof sc);
        rc = score_model(&sc, model, &src, &tgt, gold, n, batch);
        if (rc == ATTN_OK && sc.scored == 0) {
            attn_error("align-eval: no line could be scored (%d without gold links, %d cut, %d "
                       "whose pieces do not make up their words)", sc.unlinked, sc.truncated,
                       sc.mismatched);
            rc = ATTN_FAIL;
        }
        if (rc == ATTN_OK)
            print_model(&sc, json);
        free(sc.head);
        free(sc.layer);
        if (sc.t.m)
            nmt_free(&sc.t);
    }
    alines_free(gold, src.n);
    nmt_lines_free(&src);
    nmt_lines_free(&tgt);
    return rc;
}
