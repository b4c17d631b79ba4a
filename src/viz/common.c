/* What the chart writers share (viz_svg.c, viz_vl.c, viz_html.c): the
 * names, the write sink and its escaping, the colour scale, labels and their
 * widths, the data of a chart read from the model's views, base64. Below the
 * writers, which are below viz.c (the options and the entry points
 * at_viz_write / at_viz_save): nothing here calls up into them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* ---------------------------------------------------------------- names */

const char *at_viz_chart_name(at_viz_chart chart)
{
    static const char *const names[AT_VIZ_CHART_COUNT] = {
        "heatmap", "heads", "layers", "model", "stats", "masks", "explorer"};
    return (int)chart >= 0 && chart < AT_VIZ_CHART_COUNT ? names[chart] : NULL;
}

const char *at_viz_kind_name(at_attn_kind kind)
{
    switch (kind) {
    case AT_ATTN_ENC_SELF: return "enc_self";
    case AT_ATTN_DEC_SELF: return "dec_self";
    case AT_ATTN_CROSS: return "cross";
    }
    return NULL;
}

const char *at_viz_format_ext(at_viz_format fmt)
{
    switch (fmt) {
    case AT_VIZ_SVG: return ".svg";
    case AT_VIZ_VEGALITE: return ".vl.json";
    case AT_VIZ_HTML: return ".html";
    }
    return NULL;
}

const char *viz_kind_title(at_attn_kind kind)
{
    return kind == AT_ATTN_ENC_SELF   ? "Encoder self-attention"
           : kind == AT_ATTN_DEC_SELF ? "Decoder self-attention"
                                      : "Cross-attention";
}

const char *viz_kind_short(at_attn_kind kind)
{
    return kind == AT_ATTN_ENC_SELF ? "encoder self" : kind == AT_ATTN_DEC_SELF ? "decoder self"
                                                                               : "cross";
}

const char *viz_rows_name(at_attn_kind kind)
{
    return kind == AT_ATTN_ENC_SELF ? "source" : "target";
}

const char *viz_cols_name(at_attn_kind kind)
{
    return kind == AT_ATTN_DEC_SELF ? "target" : "source";
}

const viz_seq *viz_rows(const viz_ctx *c, at_attn_kind kind)
{
    return kind == AT_ATTN_ENC_SELF ? &c->src : &c->tgt;
}

const viz_seq *viz_cols(const viz_ctx *c, at_attn_kind kind)
{
    return kind == AT_ATTN_DEC_SELF ? &c->tgt : &c->src;
}

/* ---------------------------------------------------------------- output */

void vo_puts(vout *o, const char *s)
{
    if (fputs(s, o->f) == EOF)
        o->err = true;
}

void vo_putc(vout *o, char c)
{
    if (putc(c, o->f) == EOF)
        o->err = true;
}

void vo_printf(vout *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(o->f, fmt, ap) < 0)
        o->err = true;
    va_end(ap);
}

void vo_xml(vout *o, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        case '\n': rep = "&#10;"; break;
        default: continue;
        }
        if (s > run && fwrite(run, 1, (size_t)(s - run), o->f) != (size_t)(s - run))
            o->err = true;
        vo_puts(o, rep);
        run = s + 1;
    }
    if (s > run && fwrite(run, 1, (size_t)(s - run), o->f) != (size_t)(s - run))
        o->err = true;
}

void vo_json(vout *o, const char *s)
{
    vo_putc(o, '"');
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char rep[8];
        if (ch == '"' || ch == '\\')
            snprintf(rep, sizeof rep, "\\%c", ch);
        else if (ch == '\n')
            snprintf(rep, sizeof rep, "\\n");
        else if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&')
            snprintf(rep, sizeof rep, "\\u%04x", ch);
        else
            continue;
        if (s > run && fwrite(run, 1, (size_t)(s - run), o->f) != (size_t)(s - run))
            o->err = true;
        vo_puts(o, rep);
        run = s + 1;
    }
    if (s > run && fwrite(run, 1, (size_t)(s - run), o->f) != (size_t)(s - run))
        o->err = true;
    vo_putc(o, '"');
}

void vo_num(vout *o, double v, int decimals)
{
    char b[40];
    if (!isfinite(v))
        v = 0;
    int n = snprintf(b, sizeof b, "%.*f", decimals, v);
    /* trim trailing zeros: 0.2500 → 0.25, 1.0000 → 1 */
    if (memchr(b, '.', (size_t)n)) {
        while (n > 0 && b[n - 1] == '0')
            b[--n] = '\0';
        if (n > 0 && b[n - 1] == '.')
            b[--n] = '\0';
    }
    if (strcmp(b, "-0") == 0)
        strcpy(b, "0");
    vo_puts(o, b);
}

/* ---------------------------------------------------------------- colours */

/* ColorBrewer YlGnBu, nine classes: light for 0, dark for the largest weight. */
const char *const viz_stops[VIZ_NSTOPS] = {"#ffffd9", "#edf8b1", "#c7e9b4",
                                           "#7fcdbb", "#41b6c4", "#1d91c0",
                                           "#225ea8", "#253494", "#081d58"};

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

void viz_color(double t, unsigned char rgb[3])
{
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double x = t * (VIZ_NSTOPS - 1);
    int k = (int)x;
    if (k >= VIZ_NSTOPS - 1)
        k = VIZ_NSTOPS - 2;
    double f = x - k;
    for (int ch = 0; ch < 3; ch++) {
        const char *a = viz_stops[k] + 1 + 2 * ch, *b = viz_stops[k + 1] + 1 + 2 * ch;
        double va = hexval(a[0]) * 16 + hexval(a[1]), vb = hexval(b[0]) * 16 + hexval(b[1]);
        double v = va + (vb - va) * f;
        rgb[ch] = (unsigned char)lround(v);
    }
}

void viz_color_hex(double t, char hex[8])
{
    unsigned char c[3];
    viz_color(t, c);
    snprintf(hex, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

bool viz_color_dark(double t)
{
    return t > 0.55;
}

/* ---------------------------------------------------------------- labels */

/* The length of the valid UTF-8 sequence at s (0 if invalid) and its code point. */
static int utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (c >= 0xf5 || n == 0)
        return 0;
    uint32_t v = c & (0x3f >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

static bool is_wide(uint32_t cp)
{
    return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
           (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
           (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
           (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) ||
           (cp >= 0x20000 && cp <= 0x3fffd);
}

static bool is_zero_width(uint32_t cp)
{
    return (cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || cp == 0xfeff ||
           (cp >= 0xfe00 && cp <= 0xfe0f);
}

double viz_text_em(const char *s)
{
    double em = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp = 0xfffd;
        int n = utf8_next(p, &cp);
        if (n == 0)
            n = 1;
        p += n;
        if (is_zero_width(cp))
            continue;
        if (is_wide(cp))
            em += 1.0;
        else if (cp == 'i' || cp == 'l' || cp == 'j' || cp == '.' || cp == ',' || cp == '\'' ||
                 cp == '|' || cp == '!' || cp == ':' || cp == ';')
            em += 0.3;
        else if (cp == 'm' || cp == 'w' || cp == 'M' || cp == 'W' || cp == '@')
            em += 0.9;
        else if (cp >= 'A' && cp <= 'Z')
            em += 0.68;
        else
            em += 0.6;
    }
    return em;
}

/* A clean copy of s: invalid bytes become U+FFFD, control characters a space;
 * with max_chars > 0, cut to that many characters plus an ellipsis. */
char *viz_clean_label(const char *s, int max_chars)
{
    size_t len = strlen(s);
    char *out = malloc(len * 3 + 8), *w = out;   /* U+FFFD is 3 bytes per bad byte */
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    int chars = 0;
    while (*p) {
        if (max_chars > 0 && chars == max_chars) {
            memcpy(w, "\xe2\x80\xa6", 3);    /* … */
            w += 3;
            break;
        }
        uint32_t cp = 0xfffd;
        int n = utf8_next(p, &cp);
        if (n == 0) {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3;
            p++;
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
            *w++ = ' ';
            p += n;
        } else {
            memcpy(w, p, (size_t)n);
            w += n;
            p += n;
        }
        if (!is_zero_width(cp))
            chars++;
    }
    *w = '\0';
    return out;
}

void viz_seq_free(viz_seq *q)
{
    for (int i = 0; i < q->n; i++) {
        if (q->full)
            free(q->full[i]);
        if (q->shown)
            free(q->shown[i]);
    }
    free(q->full);
    free(q->shown);
    free(q->em);
    memset(q, 0, sizeof *q);
}

at_status viz_seq_make(viz_seq *q, const at_viz_options *o, int side, int n)
{
    memset(q, 0, sizeof *q);
    q->full = calloc((size_t)n + 1, sizeof *q->full);
    q->shown = calloc((size_t)n + 1, sizeof *q->shown);
    q->em = calloc((size_t)n + 1, sizeof *q->em);
    if (!q->full || !q->shown || !q->em) {
        viz_seq_free(q);
        return AT_E_NOMEM;
    }
    q->n = n;
    for (int i = 0; i < n; i++) {
        char num[24];
        const char *s = NULL;
        if (o && i < o->nlabels[side] && o->labels[side][i])
            s = o->labels[side][i];
        else if (o && i < o->nids[side])
            snprintf(num, sizeof num, "%d", (int)o->ids[side][i]), s = num;
        else
            snprintf(num, sizeof num, "#%d", i + 1), s = num;
        q->full[i] = viz_clean_label(s, 0);
        q->shown[i] = viz_clean_label(s, VIZ_LABEL_SHOWN);
        if (!q->full[i] || !q->shown[i]) {
            viz_seq_free(q);
            return AT_E_NOMEM;
        }
        q->em[i] = viz_text_em(q->shown[i]);
        if (q->em[i] > q->max_em)
            q->max_em = q->em[i];
    }
    return AT_OK;
}

/* ---------------------------------------------------------------- data */

bool viz_kind_ready(const viz_ctx *c, at_attn_kind kind)
{
    return kind == AT_ATTN_ENC_SELF || c->have_dec;
}

at_status viz_panel_get(viz_ctx *c, at_attn_kind kind, int layer, int head, viz_panel *out)
{
    at_view v;
    at_status s = at_get_attention(c->m, kind, layer, &v);
    if (s != AT_OK)
        return s;
    out->p = v.data + (int64_t)c->row * v.stride[0] + (int64_t)head * v.stride[1];
    out->rs = v.stride[2];
    out->cs = v.stride[3];
    out->nq = viz_rows(c, kind)->n;
    out->nk = viz_cols(c, kind)->n;
    out->kind = kind;
    out->layer = layer;
    out->head = head;
    float mx = 0;
    for (int i = 0; i < out->nq; i++)
        for (int j = 0; j < out->nk; j++) {
            float w = viz_w(out, i, j);
            if (w > mx)
                mx = w;
        }
    out->max = mx;
    return AT_OK;
}

at_status viz_stats(viz_ctx *c, at_attn_kind kind, double **out)
{
    size_t per = (size_t)c->heads * AT_STAT_COUNT;
    double *st = malloc((size_t)c->layers * per * sizeof *st);
    if (!st)
        return set_error(c->m, AT_E_NOMEM, "at_viz_write: out of memory");
    for (int l = 0; l < c->layers; l++) {
        at_status s = at_attention_stats(c->m, kind, l, c->topk, AT_STAT_COUNT, st + l * per);
        if (s != AT_OK) {
            free(st);
            return s;
        }
    }
    *out = st;
    return AT_OK;
}

at_status viz_js(viz_ctx *c, at_attn_kind kind, double **out)
{
    size_t per = (size_t)c->heads * c->heads;
    double *js = malloc((size_t)c->layers * per * sizeof *js);
    if (!js)
        return set_error(c->m, AT_E_NOMEM, "at_viz_write: out of memory");
    for (int l = 0; l < c->layers; l++) {
        at_status s = at_attention_js(c->m, kind, l, js + l * per);
        if (s != AT_OK) {
            free(js);
            return s;
        }
    }
    *out = js;
    return AT_OK;
}

at_status viz_masks(viz_ctx *c, at_view *src_mask, at_view *tgt_mask, bool *have_tgt)
{
    at_status s = at_get_output(c->m, AT_OUT_SRC_MASK, 0, src_mask);
    if (s != AT_OK)
        return s;
    *have_tgt = c->have_dec && at_get_output(c->m, AT_OUT_TGT_MASK, 0, tgt_mask) == AT_OK;
    return AT_OK;
}

void viz_title(const viz_ctx *c, char *buf, size_t len)
{
    switch (c->chart) {
    case AT_VIZ_HEATMAP:
        snprintf(buf, len, "%s \xc2\xb7 layer %d \xc2\xb7 head %d", viz_kind_title(c->kind),
                 c->layer + 1, c->head + 1);
        break;
    case AT_VIZ_HEADS:
        snprintf(buf, len, "%s \xc2\xb7 layer %d \xc2\xb7 every head", viz_kind_title(c->kind),
                 c->layer + 1);
        break;
    case AT_VIZ_LAYERS:
        snprintf(buf, len, "%s \xc2\xb7 head %d \xc2\xb7 every layer", viz_kind_title(c->kind),
                 c->head + 1);
        break;
    case AT_VIZ_MODEL:
        snprintf(buf, len, "%s \xc2\xb7 every layer and head", viz_kind_title(c->kind));
        break;
    case AT_VIZ_STATS:
        snprintf(buf, len, "Attention statistics \xc2\xb7 every layer and head");
        break;
    case AT_VIZ_MASKS:
        snprintf(buf, len, "Masks applied by the pass");
        break;
    default:
        snprintf(buf, len, "Attention explorer");
        break;
    }
}

/* ---------------------------------------------------------------- base64 */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_flush(vb64 *b)
{
    if (b->len && fwrite(b->buf, 1, b->len, b->o->f) != b->len)
        b->o->err = true;
    b->len = 0;
}

static void b64_quad(vb64 *b, const unsigned char *t, int n)
{
    if (b->len + 4 > sizeof b->buf)
        b64_flush(b);
    uint32_t v = (uint32_t)t[0] << 16 | (n > 1 ? (uint32_t)t[1] << 8 : 0) | (n > 2 ? t[2] : 0);
    b->buf[b->len++] = b64_chars[v >> 18 & 63];
    b->buf[b->len++] = b64_chars[v >> 12 & 63];
    b->buf[b->len++] = n > 1 ? b64_chars[v >> 6 & 63] : '=';
    b->buf[b->len++] = n > 2 ? b64_chars[v & 63] : '=';
}

void vb64_put(vb64 *b, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0 && b->ncarry > 0 && b->ncarry < 3) {
        b->carry[b->ncarry++] = *p++;
        len--;
        if (b->ncarry == 3) {
            b64_quad(b, b->carry, 3);
            b->ncarry = 0;
        }
    }
    for (; len >= 3; p += 3, len -= 3)
        b64_quad(b, p, 3);
    while (len > 0) {
        b->carry[b->ncarry++] = *p++;
        len--;
    }
}

void vb64_end(vb64 *b)
{
    if (b->ncarry > 0)
        b64_quad(b, b->carry, b->ncarry);
    b->ncarry = 0;
    b64_flush(b);
}

int viz_auto_cell(const viz_ctx *c, int n, int budget, int lo, int hi)
{
    if (c->cell > 0)
        return c->cell;
    int cell = n > 0 ? budget / n : hi;
    return cell < lo ? lo : cell > hi ? hi : cell;
}

void viz_axes_note(const viz_ctx *c, at_attn_kind kind, char *buf, size_t len)
{
    snprintf(buf, len, "rows: %s tokens (queries) \xc2\xb7 columns: %s tokens (keys) \xc2\xb7 "
                       "batch row %d", viz_rows_name(kind), viz_cols_name(kind), c->row + 1);
}

void viz_json_tokens(vout *o, const viz_seq *q)
{
    vo_putc(o, '[');
    for (int i = 0; i < q->n; i++) {
        if (i)
            vo_putc(o, ',');
        vo_json(o, q->full[i]);
    }
    vo_putc(o, ']');
}
