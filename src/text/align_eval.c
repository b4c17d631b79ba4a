/* libat_text: the evaluation object of word alignments (at_align_eval_*,
 * docs/alignment.md), behind attn align-eval and libat.align: line pairs in,
 * padded batches out, the model's maps back in, counts summed over lines.
 * It never calls libat: the caller runs the model on the batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_internal.h"

/* One line pair waiting for (or in) a batch. */
typedef struct pair {
    int64_t line;
    int32_t *src, *ys;           /* <s> pieces </s> */
    int32_t src_len, ys_len;
    int32_t *sword, *tword;      /* the word of each id (-1: <s>, </s>) */
    int32_t sw, tw;
    at_align_link *gold;
    size_t n_gold;
} pair;

/* The methods' counts, in the order of at_align_eval_sums. */
enum { M_AVERAGE, M_ROLLOUT, M_VNORM, M_ATTRIB, M_FIXED };

/* A batch handed out and the maps it has been fed. */
typedef struct batch {
    pair *p;                             /* its pairs, taken from the queue */
    int32_t rows, S, T;
    int32_t *src, *tgt, *ys;             /* what at_align_eval_next lends */
    int64_t *lines;
    int32_t fed_attn, fed_vn, fed_grad, fed_roll;
    bool complete;                       /* every input fed: the lines are counted */
    double **amap;                       /* per row: the mean over all heads (word map) */
    float *vn, *rel;                     /* (rows, T, S): value norms, grad x attn */
    double *scratch;                     /* two word maps of the largest row */
    int32_t *count;                      /* pool's rows per target word */
    at_align_link *links;                /* one scoring's copies of its links (lcap), */
    size_t lcap;                         /* then the proposed links (lcap) */
} batch;

struct at_align_eval {
    atomic_flag busy;
    at_tokenizer *stok, *ttok;
    int32_t layers, heads, max_len;
    int64_t added;                       /* line pairs given, for messages */
    int64_t tally[4];                    /* lines scored, truncated, pieces, no_links */
    at_align_counts *head, *layer;       /* [layers * heads], [layers] */
    at_align_counts fixed[M_FIXED];
    pair *q;                             /* waiting pairs q[qhead .. qn) */
    size_t qn, qcap, qhead;
    batch cur;
};

static void pair_free(pair *p)
{
    free(p->src);
    free(p->ys);
    free(p->sword);
    free(p->tword);
    free(p->gold);
    memset(p, 0, sizeof *p);
}

/* Ends the current batch: frees its pairs and buffers. */
static void batch_clear(at_align_eval *e)
{
    batch *b = &e->cur;
    for (int32_t r = 0; b->p && r < b->rows; r++) {
        pair_free(&b->p[r]);
        if (b->amap)
            free(b->amap[r]);
    }
    void *bufs[] = {b->p, b->amap, b->src, b->tgt, b->ys, b->lines, b->vn, b->rel, b->scratch,
                    b->count, b->links};
    for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++)
        free(bufs[k]);
    memset(b, 0, sizeof *b);
}

AT_TEXT_API at_status at_align_eval_create(at_align_eval **out, at_tokenizer *src,
                                           at_tokenizer *tgt, int32_t layers, int32_t heads,
                                           int32_t max_len)
{
    const char *who = "at_align_eval_create";
    if (out)
        *out = NULL;
    if (!out || !src || !tgt)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who,
                         !out ? "out" : !src ? "the source tokenizer" : "the target tokenizer");
    if (layers < 1 || layers > 4096 || heads < 1 || heads > 4096)
        return text_fail(AT_E_ARG, "%s: %d layers of %d heads; each must be 1 .. 4096", who,
                         (int)layers, (int)heads);
    if (max_len < 2 || max_len > 1 << 24)
        return text_fail(AT_E_ARG, "%s: max_len %d is not 2 .. 2^24", who, (int)max_len);
    at_align_eval *e = calloc(1, sizeof *e);
    if (e) {
        e->head = calloc((size_t)layers * heads, sizeof *e->head);
        e->layer = calloc((size_t)layers, sizeof *e->layer);
    }
    if (!e || !e->head || !e->layer) {
        at_align_eval_free(e);
        return text_fail(AT_E_NOMEM, "%s: out of memory", who);
    }
    atomic_flag_clear(&e->busy);
    e->stok = src;
    e->ttok = tgt;
    e->layers = layers;
    e->heads = heads;
    e->max_len = max_len;
    *out = e;
    return AT_OK;
}

AT_TEXT_API void at_align_eval_free(at_align_eval *e)
{
    if (!e)
        return;
    batch_clear(e);
    for (size_t k = e->qhead; e->q && k < e->qn; k++)
        pair_free(&e->q[k]);
    free(e->q);
    free(e->head);
    free(e->layer);
    free(e);
}

/* <s> pieces </s> of text into *ids (malloc'd); *cut when it has more than
 * max ids (as attn's nmt_encode, which cuts: here the pair is left out). */
static at_status encode(at_tokenizer *t, const char *text, size_t len, int32_t max,
                        int32_t **ids, int32_t *n, bool *cut)
{
    const int32_t *p = NULL;
    size_t k = 0;
    at_status s = at_tokenizer_encode(t, len ? text : "", len, &p, &k);
    if (s != AT_OK)
        return s;
    *cut = k + 2 > (size_t)max;
    if (*cut)
        return AT_OK;
    *ids = malloc((k + 2) * sizeof **ids);
    if (!*ids)
        return text_fail(AT_E_NOMEM, "out of memory");
    (*ids)[0] = AT_TOK_BOS_ID;
    if (k)
        memcpy(*ids + 1, p, k * sizeof **ids);
    (*ids)[k + 1] = AT_TOK_EOS_ID;
    *n = (int32_t)k + 2;
    return AT_OK;
}

static bool queue_push(at_align_eval *e, pair *p)
{
    if (e->qhead > 0 && e->qhead == e->qn)
        e->qhead = e->qn = 0;
    if (e->qn == e->qcap) {
        size_t cap = e->qcap ? e->qcap * 2 : 64;
        pair *q = realloc(e->q, cap * sizeof *q);
        if (!q)
            return false;
        e->q = q;
        e->qcap = cap;
    }
    e->q[e->qn++] = *p;
    return true;
}

/* Encodes one pair whose links are parsed (p->gold, sw, tw set) and queues
 * it, or counts why it is left out. Frees p's arrays unless queued. */
static at_status add_pair(at_align_eval *e, pair *p, const char *src, size_t sl,
                          const char *tgt, size_t tl)
{
    if (p->n_gold == 0) {
        e->tally[3]++;
        pair_free(p);
        return AT_OK;
    }
    bool cut1 = false, cut2 = false;
    at_status s = encode(e->stok, src, sl, e->max_len, &p->src, &p->src_len, &cut1);
    if (s == AT_OK && !cut1)
        s = encode(e->ttok, tgt, tl, e->max_len + 1, &p->ys, &p->ys_len, &cut2);
    if (s == AT_OK && (cut1 || cut2)) {
        e->tally[1]++;
        pair_free(p);
        return AT_OK;
    }
    if (s == AT_OK) {
        p->sword = malloc((size_t)p->src_len * sizeof *p->sword);
        p->tword = malloc((size_t)p->ys_len * sizeof *p->tword);
        if (!p->sword || !p->tword)
            s = text_fail(AT_E_NOMEM, "out of memory");
    }
    int32_t sw = 0, tw = 0;
    if (s == AT_OK)
        s = align_word_map_of(e->stok, p->src, (size_t)p->src_len, p->sword, &sw);
    if (s == AT_OK)
        s = align_word_map_of(e->ttok, p->ys, (size_t)p->ys_len, p->tword, &tw);
    if (s == AT_OK && (sw != p->sw || tw != p->tw)) {
        e->tally[2]++;   /* a normalisation that moved white space */
        pair_free(p);
        return AT_OK;
    }
    if (s == AT_OK && !queue_push(e, p))
        s = text_fail(AT_E_NOMEM, "out of memory");
    if (s != AT_OK)
        pair_free(p);
    return s;
}

/* Parses the links of a pair (words counted from its text) into p. */
static at_status pair_links(pair *p, const char *src, size_t sl, const char *tgt, size_t tl,
                            const char *links, size_t ll)
{
    at_align_words(src, sl, &p->sw);
    at_align_words(tgt, tl, &p->tw);
    size_t n = 0;
    at_status s = align_parse_links(links, ll, p->sw, p->tw, NULL, 0, &n);
    if (s != AT_OK)
        return s;
    p->gold = malloc((n + 1) * sizeof *p->gold);
    if (!p->gold)
        return text_fail(AT_E_NOMEM, "out of memory");
    p->n_gold = n;
    return align_parse_links(links, ll, p->sw, p->tw, p->gold, n, &n);
}

static at_status eval_add(at_align_eval *e, const char *src, size_t sl, const char *tgt,
                          size_t tl, const char *links, size_t ll)
{
    char where[48];
    snprintf(where, sizeof where, "line %lld", (long long)e->added + 1);
    const char *side[] = {"its source", "its target"};
    const char *text[] = {src, tgt};
    size_t len[] = {sl, tl};
    for (int k = 0; k < 2; k++) {
        size_t bad = utf8_invalid_at((const unsigned char *)text[k], len[k]);
        if (bad < len[k])
            return text_fail(AT_E_FORMAT, "at_align_eval_add: %s: %s is not valid UTF-8 "
                             "(byte %zu)", where, side[k], bad + 1);
    }
    pair p = {.line = e->added};
    at_status s = pair_links(&p, src, sl, tgt, tl, links, ll);
    if (s != AT_OK) {
        pair_free(&p);
        return align_where(s, "at_align_eval_add", where);
    }
    if ((s = add_pair(e, &p, src, sl, tgt, tl)) != AT_OK)
        return align_where(s, "at_align_eval_add", where);
    e->added++;
    return AT_OK;
}

AT_TEXT_API at_status at_align_eval_add(at_align_eval *e, const char *src, size_t src_len,
                                        const char *tgt, size_t tgt_len, const char *links,
                                        size_t links_len)
{
    const char *who = "at_align_eval_add";
    if (!e || (!src && src_len) || (!tgt && tgt_len) || (!links && links_len))
        return text_fail(AT_E_ARG, "%s: a NULL pointer", who);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = eval_add(e, src ? src : "", src_len, tgt ? tgt : "", tgt_len,
                           links ? links : "", links_len);
    text_leave(&e->busy);
    return s;
}

/* The pairs of a corpus, all or none: on a failure half-way (out of memory,
 * a tokenizer busy in another thread) what was added is taken back. */
/* Lines [first, first + count) of the n lines of a part of parts: the first
 * n % parts parts get one more line (as attn's mpirun ranks split batches). */
static void part_range(size_t n, int64_t part, int64_t parts, size_t *first, size_t *count)
{
    size_t base = n / (size_t)parts, more = n % (size_t)parts, p = (size_t)part;
    *count = base + (p < more);
    *first = p * base + (p < more ? p : more);
}

static at_status add_corpus(at_align_eval *e, const char *dir, const char *split, int64_t limit,
                            int64_t part, int64_t parts)
{
    align_corpus c;
    at_status s = align_corpus_read(dir, split, &c);
    if (s != AT_OK)
        return s;
    if (e->qhead == e->qn)   /* what queue_push would do: now, so that qn0 stays */
        e->qhead = e->qn = 0;
    size_t qn0 = e->qn;
    int64_t added0 = e->added, tally0[4];
    memcpy(tally0, e->tally, sizeof tally0);
    size_t n = limit > 0 && (uint64_t)limit < c.src.n ? (size_t)limit : c.src.n, first, count;
    part_range(n, part, parts, &first, &count);
    for (size_t k = first; s == AT_OK && k < first + count; k++) {
        size_t ng = c.gold.start[k + 1] - c.gold.start[k];
        pair p = {.line = e->added, .sw = c.gold.sw[k], .tw = c.gold.tw[k], .n_gold = ng,
                  .gold = malloc((ng + 1) * sizeof(at_align_link))};
        if (!p.gold) {
            s = text_fail(AT_E_NOMEM, "out of memory");
            break;
        }
        memcpy(p.gold, c.gold.all + c.gold.start[k], ng * sizeof *p.gold);
        s = add_pair(e, &p, c.src.v[k], c.src.len[k], c.tgt.v[k], c.tgt.len[k]);
        e->added += s == AT_OK;
    }
    align_corpus_free(&c);
    if (s != AT_OK) {
        for (size_t k = qn0; k < e->qn; k++)
            pair_free(&e->q[k]);
        e->qn = qn0;
        e->added = added0;
        memcpy(e->tally, tally0, sizeof tally0);
    }
    return s;
}

AT_TEXT_API at_status at_align_eval_add_corpus(at_align_eval *e, const char *dir,
                                               const char *split, int64_t limit)
{
    const char *who = "at_align_eval_add_corpus";
    if (!e)
        return text_fail(AT_E_ARG, "%s: the evaluation is NULL", who);
    if (limit < 0)
        return text_fail(AT_E_ARG, "%s: limit %lld is negative", who, (long long)limit);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = add_corpus(e, dir, split, limit, 0, 1);
    text_leave(&e->busy);
    return s == AT_OK ? AT_OK : align_where(s, who, "");
}

AT_TEXT_API at_status at_align_eval_add_corpus_part(at_align_eval *e, const char *dir,
                                                    const char *split, int64_t limit,
                                                    int64_t part, int64_t parts)
{
    const char *who = "at_align_eval_add_corpus_part";
    if (!e)
        return text_fail(AT_E_ARG, "%s: the evaluation is NULL", who);
    if (limit < 0)
        return text_fail(AT_E_ARG, "%s: limit %lld is negative", who, (long long)limit);
    if (parts < 1 || part < 0 || part >= parts)
        return text_fail(AT_E_ARG, "%s: part %lld of %lld (0 <= part < parts)", who,
                         (long long)part, (long long)parts);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = add_corpus(e, dir, split, limit, part, parts);
    text_leave(&e->busy);
    return s == AT_OK ? AT_OK : align_where(s, who, "");
}

/* What the current batch still lacks ("" when complete), and its layer. */
static const char *lacking(const at_align_eval *e, int32_t *layer)
{
    const batch *b = &e->cur;
    const char *what[] = {"cross-attention", "rollout", "value norms", "attention gradients"};
    int32_t fed[] = {b->fed_attn, b->fed_roll, b->fed_vn, b->fed_grad};
    int32_t want[] = {e->layers, 1, e->layers, e->layers};
    for (int k = 0; k < 4; k++)
        if (fed[k] < want[k]) {
            *layer = fed[k];
            return what[k];
        }
    *layer = 0;
    return "";
}

static bool incomplete(const at_align_eval *e)
{
    return e->cur.rows > 0 && !e->cur.complete;
}

static at_status state_error(const at_align_eval *e, const char *who)
{
    int32_t layer;
    const char *what = lacking(e, &layer);
    return text_fail(AT_E_STATE, "%s: the batch of %d rows lacks its %s (layer %d)", who,
                     (int)e->cur.rows, what, (int)layer);
}

/* The buffers of batch b over its pairs b->p[0 .. rows). */
static bool batch_alloc(batch *b)
{
    size_t rows = (size_t)b->rows, S = (size_t)b->S, T = (size_t)b->T;
    size_t cells = 1, tw = 1, links = 1;
    for (size_t r = 0; r < rows; r++) {
        const pair *p = &b->p[r];
        size_t c = (size_t)p->tw * (size_t)p->sw, l = p->n_gold + (size_t)p->tw;
        cells = c > cells ? c : cells;
        tw = (size_t)p->tw > tw ? (size_t)p->tw : tw;
        links = l > links ? l : links;
    }
    b->amap = calloc(rows, sizeof *b->amap);
    b->src = calloc(rows * S, sizeof *b->src);
    b->tgt = calloc(rows * T, sizeof *b->tgt);
    b->ys = calloc(rows * (T + 1), sizeof *b->ys);
    b->lines = malloc(rows * sizeof *b->lines);
    b->vn = calloc(rows * T * S, sizeof *b->vn);
    b->rel = calloc(rows * T * S, sizeof *b->rel);
    b->scratch = malloc(2 * cells * sizeof *b->scratch);
    b->count = malloc((tw + 1) * sizeof *b->count);
    b->lcap = links;
    b->links = malloc(2 * links * sizeof *b->links);
    if (!b->amap || !b->src || !b->tgt || !b->ys || !b->lines || !b->vn || !b->rel ||
        !b->scratch || !b->count || !b->links)
        return false;
    for (size_t r = 0; r < rows; r++) {
        const pair *p = &b->p[r];
        if (!(b->amap[r] = calloc((size_t)p->tw * (size_t)p->sw + 1, sizeof **b->amap)))
            return false;
        memcpy(b->src + r * S, p->src, (size_t)p->src_len * sizeof *b->src);
        memcpy(b->tgt + r * T, p->ys, (size_t)(p->ys_len - 1) * sizeof *b->tgt);
        memcpy(b->ys + r * (T + 1), p->ys, (size_t)p->ys_len * sizeof *b->ys);
        b->lines[r] = p->line;
    }
    return true;
}

static at_status eval_next(at_align_eval *e, int32_t max_rows, at_align_batch *out)
{
    const char *who = "at_align_eval_next";
    if (incomplete(e))
        return state_error(e, who);
    batch_clear(e);
    size_t wait = e->qn - e->qhead, size = out->struct_size;
    int32_t rows = wait < (size_t)max_rows ? (int32_t)wait : max_rows;
    memset(out, 0, sizeof *out);
    out->struct_size = size;
    if (rows == 0)
        return AT_OK;
    batch *b = &e->cur;
    if (!(b->p = malloc((size_t)rows * sizeof *b->p)))
        return text_fail(AT_E_NOMEM, "%s: out of memory", who);
    memcpy(b->p, e->q + e->qhead, (size_t)rows * sizeof *b->p);
    e->qhead += (size_t)rows;
    b->rows = rows;
    b->S = b->T = 1;
    for (int32_t r = 0; r < rows; r++) {
        b->S = b->p[r].src_len > b->S ? b->p[r].src_len : b->S;
        b->T = b->p[r].ys_len - 1 > b->T ? b->p[r].ys_len - 1 : b->T;
    }
    if (!batch_alloc(b)) {
        batch_clear(e);   /* the pairs are lost with it: the caller gives up */
        return text_fail(AT_E_NOMEM, "%s: out of memory for a batch of %d rows", who,
                         (int)rows);
    }
    *out = (at_align_batch){.struct_size = size, .rows = rows, .src_len = b->S,
                            .tgt_len = b->T, .src = b->src, .tgt = b->tgt, .ys = b->ys,
                            .lines = b->lines};
    return AT_OK;
}

AT_TEXT_API at_status at_align_eval_next(at_align_eval *e, int32_t max_rows, at_align_batch *out)
{
    const char *who = "at_align_eval_next";
    if (!e || !out)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, e ? "out" : "the evaluation");
    if (out->struct_size < sizeof *out)
        return text_fail(AT_E_ARG, "%s: out->struct_size is %zu, this library needs %zu", who,
                         out->struct_size, sizeof *out);
    if (max_rows < 1 || max_rows > 1 << 20)
        return text_fail(AT_E_ARG, "%s: max_rows %d is not 1 .. 2^20", who, (int)max_rows);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = eval_next(e, max_rows, out);
    text_leave(&e->busy);
    return s;
}

/* Links each target word of p to its argmax in map and adds the score. */
static void score_map(at_align_eval *e, at_align_counts *c, const pair *p, const double *map)
{
    at_align_link *h = e->cur.links + e->cur.lcap;
    size_t n = align_argmax_links(h, map, p->tw, p->sw);
    align_score_in(c, p->gold, p->n_gold, h, n, e->cur.links);
}

/* Row r, head h of a (rows, heads, T, S) view; for pool, rows are queries. */
static const float *view_row(const at_view *v, int32_t r, int32_t h)
{
    return v->data + (int64_t)r * v->stride[0] + (int64_t)h * v->stride[1];
}

/* Pools row r's (T, S) map at m (strides rs, cs) into out. */
static void pool_row(at_align_eval *e, int32_t r, double *out, const float *m, int64_t rs,
                     int64_t cs)
{
    const pair *p = &e->cur.p[r];
    align_pool_map(out, p->tw, p->sw, m, rs, cs, p->ys_len - 1, p->src_len, p->tword + 1,
                   p->sword, e->cur.count);
}

/* A layer's cross-attention: every head, their mean, and (last layer) the
 * mean of all; the maps are linear in the attention, so means of word maps. */
static void feed_attention(at_align_eval *e, int32_t l, const at_view *v)
{
    int32_t H = e->heads;
    for (int32_t r = 0; r < e->cur.rows; r++) {
        const pair *p = &e->cur.p[r];
        size_t cells = (size_t)p->tw * (size_t)p->sw;
        double *m = e->cur.scratch, *lmap = e->cur.scratch + cells, *amap = e->cur.amap[r];
        memset(lmap, 0, cells * sizeof *lmap);
        for (int32_t h = 0; h < H; h++) {
            pool_row(e, r, m, view_row(v, r, h), v->stride[2], v->stride[3]);
            for (size_t c = 0; c < cells; c++) {
                lmap[c] += m[c] / H;
                amap[c] += m[c] / ((double)H * e->layers);
            }
            score_map(e, &e->head[(size_t)l * H + h], p, m);
        }
        score_map(e, &e->layer[l], p, lmap);
        if (l == e->layers - 1)
            score_map(e, &e->fixed[M_AVERAGE], p, amap);
    }
}

/* Scores the (rows, T, S) float maps x (a mean already) into c. */
static void score_means(at_align_eval *e, at_align_counts *c, const float *x)
{
    for (int32_t r = 0; r < e->cur.rows; r++) {
        pool_row(e, r, e->cur.scratch, x + (size_t)r * e->cur.T * e->cur.S, e->cur.S, 1);
        score_map(e, c, &e->cur.p[r], e->cur.scratch);
    }
}

/* Adds a layer's value norms (grad NULL) or (-dL/dA * A)+ (v is dL/dA, a is
 * A) into acc, averaged over heads and layers: the sum runs over layers,
 * then heads, per cell, as attn align-eval always summed it. */
static void add_mean(at_align_eval *e, float *acc, const at_view *v, const at_view *a)
{
    float w = (float)(e->heads * e->layers);
    for (int32_t r = 0; r < e->cur.rows; r++)
        for (int32_t h = 0; h < e->heads; h++) {
            const float *x = view_row(v, r, h), *y = a ? view_row(a, r, h) : NULL;
            for (int32_t t = 0; t < e->cur.T; t++)
                for (int32_t s = 0; s < e->cur.S; s++) {
                    float *o = acc + ((size_t)r * e->cur.T + t) * e->cur.S + s;
                    float g = x[t * v->stride[2] + s * v->stride[3]];
                    if (!y) {
                        *o += g / w;
                        continue;
                    }
                    float rel = -g * y[t * a->stride[2] + s * a->stride[3]];
                    *o += rel > 0 ? rel / w : 0.0f;
                }
        }
}

/* Whether v is (rows, heads, T, S), or for the rollout (rows, T, S) or
 * (rows, 1, T, S); a 3-D view is read as (rows, 1, T, S). */
static at_status check_view(const at_align_eval *e, const char *who, const char *what,
                            const at_view *v, bool rollout, at_view *as4)
{
    if (!v->data)
        return text_fail(AT_E_ARG, "%s: the %s view has no data", who, what);
    *as4 = *v;
    if (rollout && v->ndim == 3) {
        as4->ndim = 4;
        as4->shape[3] = v->shape[2];
        as4->shape[2] = v->shape[1];
        as4->shape[1] = 1;
        as4->stride[3] = v->stride[2];
        as4->stride[2] = v->stride[1];
        as4->stride[1] = 0;
    }
    int64_t h = rollout ? 1 : e->heads;
    if (as4->ndim != 4 || as4->shape[0] != e->cur.rows || as4->shape[1] != h ||
        as4->shape[2] != e->cur.T || as4->shape[3] != e->cur.S)
        return text_fail(AT_E_SHAPE, "%s: the %s view is %d-D (%lld, %lld, %lld, %lld); the "
                         "batch needs (%d, %lld, %d, %d)", who, what, (int)v->ndim,
                         (long long)v->shape[0], (long long)v->shape[1],
                         (long long)v->shape[2], (long long)v->shape[3], (int)e->cur.rows,
                         (long long)h, (int)e->cur.T, (int)e->cur.S);
    return AT_OK;
}

static at_status eval_feed(at_align_eval *e, at_align_input input, int32_t layer,
                           const at_view *map, const at_view *attn)
{
    const char *who = "at_align_eval_feed";
    static const char *names[] = {"cross-attention", "rollout", "value norms",
                                  "attention gradients"};
    if (e->cur.rows == 0 || e->cur.complete)
        return text_fail(AT_E_STATE, "%s: no batch is waiting for its maps "
                         "(at_align_eval_next() gives one)", who);
    int32_t *fed = input == AT_ALIGN_IN_ATTENTION ? &e->cur.fed_attn
                   : input == AT_ALIGN_IN_ROLLOUT ? &e->cur.fed_roll
                   : input == AT_ALIGN_IN_VALUE_NORM ? &e->cur.fed_vn : &e->cur.fed_grad;
    int32_t want = input == AT_ALIGN_IN_ROLLOUT ? 1 : e->layers;
    if (*fed >= want)
        return text_fail(AT_E_STATE, "%s: the batch has all its %s already", who, names[input]);
    if (layer != *fed)
        return text_fail(AT_E_STATE, "%s: the %s of layer %d come next, not of layer %d "
                         "(layers in order, from 0)", who, names[input], (int)*fed, (int)layer);
    at_view v, a;
    at_status s = check_view(e, who, names[input], map, input == AT_ALIGN_IN_ROLLOUT, &v);
    if (s == AT_OK && input == AT_ALIGN_IN_GRADIENT)
        s = check_view(e, who, "attention (of the gradients' pass)", attn, false, &a);
    if (s != AT_OK)
        return s;
    switch (input) {
    case AT_ALIGN_IN_ATTENTION:
        feed_attention(e, layer, &v);
        break;
    case AT_ALIGN_IN_ROLLOUT:
        for (int32_t r = 0; r < e->cur.rows; r++) {
            pool_row(e, r, e->cur.scratch, view_row(&v, r, 0), v.stride[2], v.stride[3]);
            score_map(e, &e->fixed[M_ROLLOUT], &e->cur.p[r], e->cur.scratch);
        }
        break;
    case AT_ALIGN_IN_VALUE_NORM:
        add_mean(e, e->cur.vn, &v, NULL);
        if (layer == e->layers - 1)
            score_means(e, &e->fixed[M_VNORM], e->cur.vn);
        break;
    default:
        add_mean(e, e->cur.rel, &v, &a);
        if (layer == e->layers - 1)
            score_means(e, &e->fixed[M_ATTRIB], e->cur.rel);
        break;
    }
    (*fed)++;
    int32_t next;
    if (!*lacking(e, &next)) {
        e->cur.complete = true;
        e->tally[0] += e->cur.rows;
    }
    return AT_OK;
}

AT_TEXT_API at_status at_align_eval_feed(at_align_eval *e, at_align_input input, int32_t layer,
                                         const at_view *map, const at_view *attn)
{
    const char *who = "at_align_eval_feed";
    if (!e || !map)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, e ? "map" : "the evaluation");
    if ((int)input < AT_ALIGN_IN_ATTENTION || (int)input > AT_ALIGN_IN_GRADIENT)
        return text_fail(AT_E_ARG, "%s: %d is not an at_align_input", who, (int)input);
    if (input == AT_ALIGN_IN_GRADIENT && !attn)
        return text_fail(AT_E_ARG, "%s: the gradients need their attention (attn is NULL)", who);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    at_status s = eval_feed(e, input, layer, map, attn);
    text_leave(&e->busy);
    return s;
}

/* ---------------------------------------------------------------- results */

static at_status read_check(at_align_eval *e, const char *who)
{
    if (!e)
        return text_fail(AT_E_ARG, "%s: the evaluation is NULL", who);
    if (!text_enter(&e->busy, who))
        return AT_E_STATE;
    if (incomplete(e)) {
        state_error(e, who);
        text_leave(&e->busy);
        return AT_E_STATE;
    }
    return AT_OK;
}

AT_TEXT_API at_status at_align_eval_counts(at_align_eval *e, at_align_method method,
                                           int32_t layer, int32_t head, at_align_counts *out)
{
    const char *who = "at_align_eval_counts";
    if (!out)
        return text_fail(AT_E_ARG, "%s: out is NULL", who);
    if ((int)method < AT_ALIGN_HEAD || (int)method > AT_ALIGN_ATTRIBUTION)
        return text_fail(AT_E_ARG, "%s: %d is not an at_align_method", who, (int)method);
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    bool per_layer = method == AT_ALIGN_HEAD || method == AT_ALIGN_LAYER;
    if (per_layer && (layer < 0 || layer >= e->layers))
        s = text_fail(AT_E_RANGE, "%s: layer %d is not 0 .. %d", who, (int)layer,
                      (int)e->layers - 1);
    else if (method == AT_ALIGN_HEAD && (head < 0 || head >= e->heads))
        s = text_fail(AT_E_RANGE, "%s: head %d is not 0 .. %d", who, (int)head,
                      (int)e->heads - 1);
    else if (method == AT_ALIGN_HEAD)
        *out = e->head[(size_t)layer * e->heads + head];
    else if (method == AT_ALIGN_LAYER)
        *out = e->layer[layer];
    else
        *out = e->fixed[method - AT_ALIGN_AVERAGE];
    text_leave(&e->busy);
    return s;
}

AT_TEXT_API at_status at_align_eval_result(at_align_eval *e, at_align_eval_info *out)
{
    const char *who = "at_align_eval_result";
    if (!out)
        return text_fail(AT_E_ARG, "%s: out is NULL", who);
    if (out->struct_size < sizeof *out)
        return text_fail(AT_E_ARG, "%s: out->struct_size is %zu, this library needs %zu", who,
                         out->struct_size, sizeof *out);
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    size_t size = out->struct_size, best = 0, n = (size_t)e->layers * e->heads;
    for (size_t k = 1; k < n; k++)
        best = align_aer(&e->head[k]) < align_aer(&e->head[best]) ? k : best;
    memset(out, 0, sizeof *out);
    out->struct_size = size;
    out->lines = e->tally[0];
    out->truncated = e->tally[1];
    out->pieces = e->tally[2];
    out->no_links = e->tally[3];
    out->pending = (int64_t)(e->qn - e->qhead);
    out->gold = e->fixed[M_AVERAGE].sure;
    out->layers = e->layers;
    out->heads = e->heads;
    out->best_layer = (int32_t)(best / (size_t)e->heads);
    out->best_head = (int32_t)(best % (size_t)e->heads);
    out->best_aer = align_aer(&e->head[best]);
    text_leave(&e->busy);
    return AT_OK;
}

/* The number of values of at_align_eval_sums. */
static size_t sums_len(const at_align_eval *e)
{
    return 4 + 4 * ((size_t)e->layers * e->heads + (size_t)e->layers + M_FIXED);
}

/* The k-th counts of e in sums order: heads, layers, the fixed methods. */
static at_align_counts counts_get(const at_align_eval *e, size_t k)
{
    size_t nh = (size_t)e->layers * e->heads;
    return k < nh ? e->head[k] : k < nh + (size_t)e->layers ? e->layer[k - nh]
                                                            : e->fixed[k - nh - e->layers];
}

static void counts_add(at_align_eval *e, size_t k, const at_align_counts *c)
{
    size_t nh = (size_t)e->layers * e->heads;
    at_align_counts *to = k < nh ? &e->head[k] : k < nh + (size_t)e->layers
                                                     ? &e->layer[k - nh]
                                                     : &e->fixed[k - nh - e->layers];
    to->hyp += c->hyp;
    to->sure += c->sure;
    to->hit_sure += c->hit_sure;
    to->hit_possible += c->hit_possible;
}

AT_TEXT_API at_status at_align_eval_sums(at_align_eval *e, int64_t *out, size_t cap, size_t *n)
{
    const char *who = "at_align_eval_sums";
    if (!n)
        return text_fail(AT_E_ARG, "%s: n is NULL", who);
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    *n = sums_len(e);
    if (out && cap < *n) {
        s = text_fail(AT_E_RANGE, "%s: %zu values, room for %zu", who, *n, cap);
    } else if (out) {
        memcpy(out, e->tally, sizeof e->tally);
        for (size_t k = 0; k < (*n - 4) / 4; k++) {
            at_align_counts c = counts_get(e, k);
            int64_t *o = out + 4 + 4 * k;
            o[0] = c.hyp;
            o[1] = c.sure;
            o[2] = c.hit_sure;
            o[3] = c.hit_possible;
        }
    }
    text_leave(&e->busy);
    return s;
}

AT_TEXT_API at_status at_align_eval_add_sums(at_align_eval *e, const int64_t *sums, size_t n)
{
    const char *who = "at_align_eval_add_sums";
    if (!sums)
        return text_fail(AT_E_ARG, "%s: sums is NULL", who);
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    if (n != sums_len(e))
        s = text_fail(AT_E_SHAPE, "%s: %zu values; an evaluation of %d layers of %d heads has "
                      "%zu", who, n, (int)e->layers, (int)e->heads, sums_len(e));
    for (size_t k = 0; s == AT_OK && k < n; k++)
        if (sums[k] < 0)
            s = text_fail(AT_E_ARG, "%s: value %zu is negative (%lld)", who, k,
                          (long long)sums[k]);
    for (size_t k = 0; s == AT_OK && k < 4; k++)
        e->tally[k] += sums[k];
    for (size_t k = 0; s == AT_OK && k < (n - 4) / 4; k++) {
        const int64_t *v = sums + 4 + 4 * k;
        counts_add(e, k, &(at_align_counts){v[0], v[1], v[2], v[3]});
    }
    text_leave(&e->busy);
    return s;
}

AT_TEXT_API at_status at_align_eval_merge(at_align_eval *e, const at_align_eval *from)
{
    const char *who = "at_align_eval_merge";
    if (!from || e == from)
        return text_fail(AT_E_ARG, "%s: %s", who, from ? "an evaluation merged into itself"
                                                       : "from is NULL");
    at_status s = read_check(e, who);
    if (s != AT_OK)
        return s;
    if (from->layers != e->layers || from->heads != e->heads)
        s = text_fail(AT_E_SHAPE, "%s: %d layers of %d heads merged into %d of %d", who,
                      (int)from->layers, (int)from->heads, (int)e->layers, (int)e->heads);
    else if (incomplete(from))
        s = state_error(from, who);
    for (size_t k = 0; s == AT_OK && k < 4; k++)
        e->tally[k] += from->tally[k];
    for (size_t k = 0; s == AT_OK && k < (sums_len(e) - 4) / 4; k++) {
        at_align_counts c = counts_get(from, k);
        counts_add(e, k, &c);
    }
    text_leave(&e->busy);
    return s;
}
