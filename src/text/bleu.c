/* libat_text: corpus BLEU as sacreBLEU 2.x computes it (13a tokenization,
 * clipped n-gram counts summed over the corpus, closest reference length,
 * 'exp' smoothing by default). The definitions are in include/at_text.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text_internal.h"

#define SEG_MAX ((size_t)1 << 31)   /* bytes of one hypothesis or reference */

typedef struct tok_side {
    tbuf text;   /* tokens joined by single spaces */
    tidx start;  /* start offset of every token, then text.len + 1 */
} tok_side;

struct at_bleu {
    atomic_flag busy;
    int smooth;              /* at_bleu_smooth */
    double smooth_value;     /* < 0: the method's default */
    int tokenize;            /* at_bleu_tokenizer */
    bool effective_order;
    int64_t hyp_len, ref_len, segments;
    int64_t counts[AT_BLEU_ORDERS], totals[AT_BLEU_ORDERS];
    /* scratch, reused from segment to segment */
    tbuf a, b;
    tok_side hyp;
    tok_side *refs;
    size_t nrefs_cap;
    ng_table table;
};

/* ---------------------------------------------------------------- 13a */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* mteval-v13a's first rule: ASCII punctuation but ' - . , (and space). */
static bool is_punct13a(unsigned char c)
{
    return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
           (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == 0x2F;
}

/* str.replace(from, to) in place (to is never longer than from). */
static size_t replace_all(char *s, size_t n, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), r = 0, w = 0;
    while (r < n) {
        if (r + fl <= n && memcmp(s + r, from, fl) == 0) {
            memcpy(s + w, to, tl);
            w += tl;
            r += fl;
        } else {
            s[w++] = s[r++];
        }
    }
    return w;
}

/* One pass of a two-character regular expression substitution, left to
 * right and without overlap as Python's re.sub: the classes are ASCII, so
 * running it over UTF-8 bytes gives what it gives over code points (no byte
 * of a multi-byte sequence is a digit, '.', ',' or '-', and each is in
 * [^0-9]). */
enum { RX_NONDIGIT_POINT, RX_POINT_NONDIGIT, RX_DIGIT_DASH };

static bool rx_pass(int rx, const tbuf *in, tbuf *out)
{
    if (!tbuf_reserve(out, 2 * in->len + 1))
        return false;
    const unsigned char *s = (const unsigned char *)in->p;
    size_t n = in->len, w = 0;
    char *o = out->p;
    for (size_t i = 0; i < n;) {
        bool m = false;
        if (i + 1 < n) {
            unsigned char x = s[i], y = s[i + 1];
            if (rx == RX_NONDIGIT_POINT)
                m = !is_digit(x) && (y == '.' || y == ',');
            else if (rx == RX_POINT_NONDIGIT)
                m = (x == '.' || x == ',') && !is_digit(y);
            else
                m = is_digit(x) && y == '-';
        }
        if (!m) {
            o[w++] = (char)s[i++];
            continue;
        }
        if (rx == RX_POINT_NONDIGIT) {          /* ' \1 \2' */
            o[w++] = ' ';
            o[w++] = (char)s[i];
            o[w++] = ' ';
            o[w++] = (char)s[i + 1];
        } else {                                /* '\1 \2 ' */
            o[w++] = (char)s[i];
            o[w++] = ' ';
            o[w++] = (char)s[i + 1];
            o[w++] = ' ';
        }
        i += 2;
    }
    out->len = w;
    return true;
}

/* ' '.join(s.split()) into out, with the start of every token. */
static bool split_join(const unsigned char *s, size_t n, tok_side *out)
{
    if (!tbuf_reserve(&out->text, n + 1) || !tidx_reserve(&out->start, n / 2 + 2))
        return false;
    size_t w = 0, nt = 0, i = 0;
    while (i < n) {
        size_t k = ws_len(s + i, n - i);
        if (k) {
            i += k;
            continue;
        }
        if (nt)
            out->text.p[w++] = ' ';
        out->start.p[nt++] = w;
        while (i < n && !ws_len(s + i, n - i))
            out->text.p[w++] = (char)s[i++];
    }
    out->text.len = w;
    out->start.p[nt] = w + 1;
    out->start.len = nt;
    return true;
}

/* sacreBLEU's preprocessing of one segment: rstrip, then the tokenizer. */
static bool tokenize(at_bleu *b, const char *seg, size_t n, tok_side *out)
{
    n = rstrip_len((const unsigned char *)seg, n);
    if (b->tokenize == AT_BLEU_TOK_NONE)
        return split_join((const unsigned char *)seg, n, out);

    /* language-independent part */
    if (!tbuf_reserve(&b->a, n + 3))
        return false;
    memcpy(b->a.p + 1, seg, n);
    size_t m = n;
    char *t = b->a.p + 1;
    m = replace_all(t, m, "<skipped>", "");
    m = replace_all(t, m, "-\n", "");
    m = replace_all(t, m, "\n", " ");
    m = replace_all(t, m, "&quot;", "\"");
    m = replace_all(t, m, "&amp;", "&");
    m = replace_all(t, m, "&lt;", "<");
    m = replace_all(t, m, "&gt;", ">");
    b->a.p[0] = ' ';
    b->a.p[m + 1] = ' ';
    b->a.len = m + 2;

    /* ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 ' */
    if (!tbuf_reserve(&b->b, 3 * b->a.len + 1))
        return false;
    size_t w = 0;
    for (size_t i = 0; i < b->a.len; i++) {
        unsigned char c = (unsigned char)b->a.p[i];
        if (is_punct13a(c)) {
            b->b.p[w++] = ' ';
            b->b.p[w++] = (char)c;
            b->b.p[w++] = ' ';
        } else {
            b->b.p[w++] = (char)c;
        }
    }
    b->b.len = w;
    /* ([^0-9])([\.,]) -> '\1 \2 ';  ([\.,])([^0-9]) -> ' \1 \2';  ([0-9])(-) -> '\1 \2 ' */
    if (!rx_pass(RX_NONDIGIT_POINT, &b->b, &b->a) || !rx_pass(RX_POINT_NONDIGIT, &b->a, &b->b) ||
        !rx_pass(RX_DIGIT_DASH, &b->b, &b->a))
        return false;
    return split_join((const unsigned char *)b->a.p, b->a.len, out);
}

/* ---------------------------------------------------------------- the accumulator */

AT_TEXT_API at_status at_bleu_create(at_bleu **out)
{
    if (!out)
        return text_fail(AT_E_ARG, "at_bleu_create: out is NULL");
    *out = NULL;
    at_bleu *b = calloc(1, sizeof *b);
    if (!b)
        return text_fail(AT_E_NOMEM, "at_bleu_create: out of memory");
    atomic_flag_clear(&b->busy);
    b->smooth = AT_BLEU_SMOOTH_EXP;
    b->smooth_value = -1;
    b->tokenize = AT_BLEU_TOK_13A;
    *out = b;
    return AT_OK;
}

AT_TEXT_API void at_bleu_free(at_bleu *b)
{
    if (!b)
        return;
    tbuf_free(&b->a);
    tbuf_free(&b->b);
    tbuf_free(&b->hyp.text);
    tidx_free(&b->hyp.start);
    for (size_t i = 0; i < b->nrefs_cap; i++) {
        tbuf_free(&b->refs[i].text);
        tidx_free(&b->refs[i].start);
    }
    free(b->refs);
    ng_free(&b->table);
    free(b);
}

AT_TEXT_API at_status at_bleu_set(at_bleu *b, at_bleu_param key, double value)
{
    if (!b)
        return text_fail(AT_E_ARG, "at_bleu_set: the accumulator is NULL");
    if (!text_enter(&b->busy, "at_bleu_set"))
        return AT_E_STATE;
    at_status s = AT_OK;
    bool whole = isfinite(value) && value == floor(value);
    switch (key) {
    case AT_BLEU_SMOOTH:
        if (!whole || value < AT_BLEU_SMOOTH_EXP || value > AT_BLEU_SMOOTH_ADD_K)
            s = text_fail(AT_E_ARG, "at_bleu_set: %g is not a smoothing method (0 exp, 1 none, "
                                    "2 floor, 3 add-k)", value);
        else
            b->smooth = (int)value;
        break;
    case AT_BLEU_SMOOTH_VALUE:
        if (!isfinite(value))
            s = text_fail(AT_E_ARG, "at_bleu_set: the smoothing value must be finite");
        else
            b->smooth_value = value;
        break;
    case AT_BLEU_TOKENIZE:
        if (!whole || (value != AT_BLEU_TOK_13A && value != AT_BLEU_TOK_NONE))
            s = text_fail(AT_E_ARG, "at_bleu_set: %g is not a tokenizer (0 13a, 1 none)", value);
        else if (b->segments > 0 && (int)value != b->tokenize)
            s = text_fail(AT_E_STATE, "at_bleu_set: the tokenizer cannot change after the "
                                      "first segment (at_bleu_reset first)");
        else
            b->tokenize = (int)value;
        break;
    case AT_BLEU_EFFECTIVE_ORDER:
        if (value != 0 && value != 1)
            s = text_fail(AT_E_ARG, "at_bleu_set: effective order is 0 or 1, not %g", value);
        else
            b->effective_order = value == 1;
        break;
    default:
        s = text_fail(AT_E_ARG, "at_bleu_set: unknown setting %d", (int)key);
    }
    text_leave(&b->busy);
    return s;
}

at_status text_check_segment(const char *who, const char *hyp, size_t hyp_len,
                             const char *const *refs, const size_t *ref_lens, size_t n_refs)
{
    if ((!hyp && hyp_len) || !refs || !ref_lens || n_refs == 0)
        return text_fail(AT_E_ARG, "%s: %s", who,
                         n_refs == 0 ? "a segment needs at least one reference"
                                     : "a NULL text pointer");
    if (hyp_len > SEG_MAX)
        return text_fail(AT_E_ARG, "%s: the hypothesis is longer than 2 GiB", who);
    size_t at = utf8_invalid_at((const unsigned char *)hyp, hyp_len);
    if (at < hyp_len)
        return text_fail(AT_E_FORMAT, "%s: the hypothesis is not valid UTF-8 (byte %zu)", who,
                         at + 1);
    bool any = false;
    for (size_t r = 0; r < n_refs; r++) {
        if (!refs[r] && ref_lens[r])
            return text_fail(AT_E_ARG, "%s: reference %zu is NULL", who, r + 1);
        if (ref_lens[r] > SEG_MAX)
            return text_fail(AT_E_ARG, "%s: reference %zu is longer than 2 GiB", who, r + 1);
        at = utf8_invalid_at((const unsigned char *)refs[r], ref_lens[r]);
        if (at < ref_lens[r])
            return text_fail(AT_E_FORMAT, "%s: reference %zu is not valid UTF-8 (byte %zu)",
                             who, r + 1, at + 1);
        any |= ref_lens[r] > 0;
    }
    if (!any)
        return text_fail(AT_E_ARG, "%s: every reference of the segment is empty (sacreBLEU "
                                   "refuses such a segment too)", who);
    return AT_OK;
}

atomic_flag *bleu_busy(at_bleu *b)
{
    return &b->busy;
}

at_status bleu_add_segment(at_bleu *b, const char *hyp, size_t hyp_len,
                           const char *const *refs, const size_t *ref_lens, size_t n_refs)
{
    at_status s = text_check_segment("at_bleu_add", hyp, hyp_len, refs, ref_lens, n_refs);
    if (s != AT_OK)
        return s;
    if (n_refs > b->nrefs_cap) {
        tok_side *r = realloc(b->refs, n_refs * sizeof *r);
        if (!r)
            return text_fail(AT_E_NOMEM, "at_bleu_add: out of memory");
        memset(r + b->nrefs_cap, 0, (n_refs - b->nrefs_cap) * sizeof *r);
        b->refs = r;
        b->nrefs_cap = n_refs;
    }
    if (!tokenize(b, hyp, hyp_len, &b->hyp))
        return AT_E_NOMEM;
    int64_t hlen = (int64_t)b->hyp.start.len;
    int64_t best_len = -1, best_diff = -1;
    ng_table *t = &b->table;
    ng_clear(t);
    size_t id = 0;
    for (size_t r = 0; r < n_refs; r++) {
        if (ref_lens[r] == 0)
            continue;                    /* an empty reference is left out */
        tok_side *rs = &b->refs[r];
        if (!tokenize(b, refs[r], ref_lens[r], rs))
            return AT_E_NOMEM;
        int64_t rlen = (int64_t)rs->start.len;
        int64_t diff = rlen > hlen ? rlen - hlen : hlen - rlen;
        if (best_diff < 0 || diff < best_diff || (diff == best_diff && rlen < best_len)) {
            best_diff = diff;
            best_len = rlen;
        }
        id++;
        for (uint32_t n = 1; n <= AT_BLEU_ORDERS; n++)
            for (size_t i = 0; i + n <= rs->start.len; i++) {
                size_t a = rs->start.p[i], e = rs->start.p[i + n] - 1;
                ng_entry *g = ng_get(t, rs->text.p + a, e - a, n);
                if (!g)
                    return AT_E_NOMEM;
                if (g->cur_id != id) {
                    g->cur_id = id;
                    g->cur = 0;
                }
                if (++g->cur > g->ref)
                    g->ref = g->cur;
            }
    }
    int64_t totals[AT_BLEU_ORDERS] = {0}, counts[AT_BLEU_ORDERS] = {0};
    for (uint32_t n = 1; n <= AT_BLEU_ORDERS; n++)
        for (size_t i = 0; i + n <= b->hyp.start.len; i++) {
            size_t a = b->hyp.start.p[i], e = b->hyp.start.p[i + n] - 1;
            ng_entry *g = ng_get(t, b->hyp.text.p + a, e - a, n);
            if (!g)
                return AT_E_NOMEM;
            g->hyp++;
            totals[n - 1]++;
        }
    for (size_t k = 0; k < t->used; k++) {
        const ng_entry *g = &t->slots[t->list[k]];
        if (g->hyp)
            counts[g->n - 1] += g->hyp < g->ref ? g->hyp : g->ref;
    }
    for (int n = 0; n < AT_BLEU_ORDERS; n++) {
        b->totals[n] += totals[n];
        b->counts[n] += counts[n];
    }
    b->hyp_len += hlen;
    b->ref_len += best_len;
    b->segments++;
    return AT_OK;
}

AT_TEXT_API at_status at_bleu_add(at_bleu *b, const char *hyp, size_t hyp_len,
                                  const char *const *refs, const size_t *ref_lens,
                                  size_t n_refs)
{
    if (!b)
        return text_fail(AT_E_ARG, "at_bleu_add: the accumulator is NULL");
    if (!text_enter(&b->busy, "at_bleu_add"))
        return AT_E_STATE;
    at_status s = bleu_add_segment(b, hyp, hyp_len, refs, ref_lens, n_refs);
    text_leave(&b->busy);
    return s;
}

/* sacreBLEU's my_log: log, floored for 0. */
static double my_log(double x)
{
    return x == 0.0 ? -9999999999.0 : log(x);
}

/* BLEU.compute_bleu of sacreBLEU 2.x, step by step in the same order. */
static void compute(const at_bleu *b, at_bleu_score *o)
{
    double correct[AT_BLEU_ORDERS], total[AT_BLEU_ORDERS];
    int64_t sys_len = b->hyp_len, ref_len = b->ref_len;
    for (int n = 0; n < AT_BLEU_ORDERS; n++) {
        correct[n] = (double)b->counts[n];
        total[n] = (double)b->totals[n];
        o->counts[n] = b->counts[n];
        o->totals[n] = b->totals[n];
        o->precisions[n] = 0.0;
    }
    double v = b->smooth_value;
    if (v < 0)
        v = b->smooth == AT_BLEU_SMOOTH_FLOOR ? 0.1 : 1.0;
    if (sys_len < ref_len)
        o->bp = sys_len > 0 ? exp(1.0 - (double)ref_len / (double)sys_len) : 0.0;
    else
        o->bp = 1.0;
    o->hyp_len = sys_len;
    o->ref_len = ref_len;
    o->ratio = ref_len ? (double)sys_len / (double)ref_len : 0.0;
    o->segments = b->segments;
    o->score = 0.0;
    bool any = false;
    for (int n = 0; n < AT_BLEU_ORDERS; n++)
        any |= b->counts[n] != 0;
    if (!any)
        return;
    double smooth_mteval = 1.0;
    int eff_order = AT_BLEU_ORDERS;
    for (int n = 1; n <= AT_BLEU_ORDERS; n++) {
        if (b->smooth == AT_BLEU_SMOOTH_ADD_K && n > 1) {
            correct[n - 1] += v;
            total[n - 1] += v;
        }
        if (total[n - 1] == 0)
            break;
        if (b->effective_order)
            eff_order = n;
        if (correct[n - 1] == 0) {
            if (b->smooth == AT_BLEU_SMOOTH_EXP) {
                smooth_mteval *= 2;
                o->precisions[n - 1] = 100. / (smooth_mteval * total[n - 1]);
            } else if (b->smooth == AT_BLEU_SMOOTH_FLOOR) {
                o->precisions[n - 1] = 100. * v / total[n - 1];
            }
        } else {
            o->precisions[n - 1] = 100. * correct[n - 1] / total[n - 1];
        }
    }
    double sum = 0.0;
    for (int n = 0; n < eff_order; n++)
        sum += my_log(o->precisions[n]);
    o->score = o->bp * exp(sum / eff_order);
}

AT_TEXT_API at_status at_bleu_result(at_bleu *b, at_bleu_score *out)
{
    if (!b || !out)
        return text_fail(AT_E_ARG, "at_bleu_result: %s is NULL", b ? "out" : "the accumulator");
    if (out->struct_size < sizeof(at_bleu_score))
        return text_fail(AT_E_ARG, "at_bleu_result: out->struct_size is %zu, this library "
                                   "needs at least %zu (set it to sizeof(at_bleu_score))",
                         out->struct_size, sizeof(at_bleu_score));
    if (!text_enter(&b->busy, "at_bleu_result"))
        return AT_E_STATE;
    size_t size = out->struct_size;
    at_bleu_score o;
    memset(&o, 0, sizeof o);
    compute(b, &o);
    o.struct_size = size;
    memcpy(out, &o, sizeof o);
    text_leave(&b->busy);
    return AT_OK;
}

AT_TEXT_API at_status at_bleu_reset(at_bleu *b)
{
    if (!b)
        return text_fail(AT_E_ARG, "at_bleu_reset: the accumulator is NULL");
    if (!text_enter(&b->busy, "at_bleu_reset"))
        return AT_E_STATE;
    b->hyp_len = b->ref_len = b->segments = 0;
    memset(b->counts, 0, sizeof b->counts);
    memset(b->totals, 0, sizeof b->totals);
    text_leave(&b->busy);
    return AT_OK;
}
