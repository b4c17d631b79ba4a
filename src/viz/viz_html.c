/* The HTML explorer: one self-contained page (style, script and data
 * inline; a Content-Security-Policy that forbids every network request).
 * The script and style are in viz_assets.c. The attention of every kind,
 * layer and head of the charted batch row travels as base64:
 * - a kind of at most VIZ_U16_MAX weights (layers × heads × queries × keys):
 *   one string of uint16 weights (w·65535, little-endian, (layer, head,
 *   query, key) order), decoded when the page opens;
 * - a larger kind: "enc":"u8", one string per head ((layer, head) order) of
 *   bytes round(255·w / max), max the head's largest weight (its "max"
 *   entry), (query, key) order; the page decodes a head when it first shows
 *   it. The colours of a heatmap are w / max on 256 levels, so they are
 *   exactly what 16 bits would give; a tooltip's weight is within max / 510.
 * The file is bounded: at most VIZ_CAP weights in all (every kind counted,
 * 8-bit ones one byte each). The heads beyond the cap, taken in the order
 * the page first shows (the initial head, the rest of its kind, the other
 * kinds), get an empty string, and the page says how many were left out
 * (docs/explorer.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"

#define VIZ_U16_MAX (1L << 20)      /* weights of one kind still written as uint16 */
#define VIZ_CAP 40000000L           /* weights embedded in one file at most */

/* Which heads of each kind are embedded (1) and how many weights each holds. */
typedef struct viz_budget {
    unsigned char *keep[3];
    int omitted[3];
} viz_budget;

static long kind_cells(viz_ctx *c, int k)
{
    return (long)c->layers * c->heads * viz_rows(c, (at_attn_kind)k)->n *
           viz_cols(c, (at_attn_kind)k)->n;
}

static at_status budget_make(viz_ctx *c, viz_budget *b)
{
    int LH = c->layers * c->heads, first = c->layer * c->heads + c->head;
    long left = VIZ_CAP;
    memset(b, 0, sizeof *b);
    for (int k = 0; k < 3; k++) {
        b->keep[k] = calloc((size_t)LH, 1);
        if (!b->keep[k])
            return set_error(c->m, AT_E_NOMEM, "at_viz_write: out of memory");
    }
    /* the initial kind first, then the others in their order */
    int order[3] = {(int)c->kind, 0, 0}, n = 1;
    for (int k = 0; k < 3; k++)
        if (k != (int)c->kind)
            order[n++] = k;
    for (int r = 0; r < 3; r++) {
        int k = order[r];
        if (!viz_kind_ready(c, (at_attn_kind)k))
            continue;
        long per = (long)viz_rows(c, (at_attn_kind)k)->n * viz_cols(c, (at_attn_kind)k)->n;
        if (kind_cells(c, k) <= VIZ_U16_MAX && kind_cells(c, k) <= left) {
            memset(b->keep[k], 1, (size_t)LH);   /* small: whole, as uint16 */
            left -= kind_cells(c, k);
            continue;
        }
        for (int t = -1; t < LH; t++) {
            int i = t < 0 ? (k == (int)c->kind ? first : 0) : t;
            if (b->keep[k][i])
                continue;
            if (per <= left) {
                b->keep[k][i] = 1;
                left -= per;
            }
        }
        for (int i = 0; i < LH; i++)
            b->omitted[k] += !b->keep[k][i];
    }
    return AT_OK;
}

static void budget_free(viz_budget *b)
{
    for (int k = 0; k < 3; k++)
        free(b->keep[k]);
}

static at_status kind_json(viz_ctx *c, vout *o, at_attn_kind kind, const viz_budget *bu)
{
    const viz_seq *rows = viz_rows(c, kind), *cols = viz_cols(c, kind);
    int nq = rows->n, nk = cols->n, L = c->layers, H = c->heads;
    double *st = NULL, *js = NULL;
    float *mx = malloc((size_t)L * H * sizeof *mx);
    unsigned char *buf = malloc((size_t)nk * 2 + 2);
    at_status s = mx && buf ? AT_OK : set_error(c->m, AT_E_NOMEM, "at_viz_write: out of memory");
    if (s == AT_OK)
        s = viz_stats(c, kind, &st);
    if (s == AT_OK)
        s = viz_js(c, kind, &js);
    if (s != AT_OK)
        goto done;
    int u8 = kind_cells(c, (int)kind) > VIZ_U16_MAX || bu->omitted[kind] > 0;
    vo_printf(o, "{\"name\":\"%s\",\"title\":\"%s\",\"rows\":\"%s\",\"cols\":\"%s\","
                 "\"nq\":%d,\"nk\":%d,",
              at_viz_kind_name(kind), viz_kind_title(kind), viz_rows_name(kind),
              viz_cols_name(kind), nq, nk);
    if (u8)
        vo_printf(o, "\"enc\":\"u8\",\"cap\":%ld,\"omitted\":%d,", VIZ_CAP, bu->omitted[kind]);
    vo_puts(o, u8 ? "\n\"weights\":[\"" : "\n\"weights\":\"");
    vb64 b = {.o = o};
    for (int l = 0; l < L && s == AT_OK; l++)
        for (int h = 0; h < H && s == AT_OK; h++) {
            viz_panel p;
            s = viz_panel_get(c, kind, l, h, &p);
            if (s != AT_OK)
                break;
            mx[l * H + h] = p.max;
            if (u8 && (l || h))
                vo_puts(o, "\",\"");
            if (u8 && !bu->keep[kind][l * H + h])
                continue;
            float sc = p.max > 0 ? 255.0f / p.max : 0.0f;
            for (int i = 0; i < nq; i++) {
                for (int j = 0; j < nk; j++) {
                    float w = viz_w(&p, i, j);
                    w = w < 0 ? 0 : w > 1 ? 1 : w;
                    if (u8) {
                        long q = lroundf(w * sc);
                        buf[j] = (unsigned char)(q > 255 ? 255 : q);
                    } else {
                        long q = lroundf(w * 65535.0f);
                        buf[2 * j] = (unsigned char)(q & 0xff);
                        buf[2 * j + 1] = (unsigned char)(q >> 8);
                    }
                }
                vb64_put(&b, buf, (size_t)nk * (u8 ? 1 : 2));
            }
            if (u8) {
                vb64_end(&b);
                b = (vb64){.o = o};
            }
        }
    if (!u8)
        vb64_end(&b);
    if (s != AT_OK)
        goto done;
    if (u8)
        vo_puts(o, "\"]");
    vo_puts(o, u8 ? ",\n\"max\":[" : "\",\n\"max\":[");
    for (int k = 0; k < L * H; k++) {
        if (k)
            vo_putc(o, ',');
        vo_num(o, mx[k], 6);
    }
    vo_puts(o, "],\n\"stats\":[");
    for (int k = 0; k < L * H; k++) {
        const double *v = st + (size_t)k * AT_STAT_COUNT;
        vo_puts(o, k ? ",[" : "[");
        for (int q = 0; q < AT_STAT_COUNT; q++) {
            if (q)
                vo_putc(o, ',');
            vo_num(o, v[q], 6);
        }
        vo_putc(o, ']');
    }
    vo_puts(o, "],\n\"js\":[");
    for (int l = 0; l < L; l++) {
        vo_puts(o, l ? ",[" : "[");
        for (int k = 0; k < H * H; k++) {
            if (k)
                vo_putc(o, ',');
            vo_num(o, js[(size_t)l * H * H + k], 6);
        }
        vo_putc(o, ']');
    }
    vo_puts(o, "]}");
done:
    free(st);
    free(js);
    free(mx);
    free(buf);
    return s;
}

at_status viz_explorer(viz_ctx *c, vout *o)
{
    char title[200];
    viz_title(c, title, sizeof title);
    vo_puts(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<meta name=\"generator\" content=\"libat ");
    vo_puts(o, at_version_string());
    vo_puts(o, "\">\n<title>");
    vo_xml(o, title);
    if (*c->caption) {
        vo_puts(o, " \xe2\x80\x94 ");
        vo_xml(o, c->caption);
    }
    vo_puts(o, "</title>\n<style>\n");
    vo_puts(o, viz_explorer_css);
    vo_puts(o, "body { font-family: ");
    vo_puts(o, c->font);   /* safe as it is: at_viz_options_set_font allows no quotes */
    vo_puts(o, "; }\n</style>\n</head>\n<body>\n"
               "<header>\n<h1>Attention explorer</h1>\n<p id=\"caption\" class=\"muted\"></p>\n"
               "<p id=\"meta\" class=\"muted\"></p>\n<p id=\"note\" class=\"note\" hidden></p>\n"
               "<p><b>source</b> <span id=\"src-tokens\"></span></p>\n"
               "<p><b>target</b> <span id=\"tgt-tokens\"></span></p>\n</header>\n"
               "<div id=\"controls\">\n"
               "<label>Attention <select id=\"kind\"></select></label>\n"
               "<label>Layer <select id=\"layer\"></select></label>\n"
               "<label>Head <select id=\"head\"></select></label>\n"
               "<span class=\"views\">View "
               "<label><input type=\"radio\" name=\"view\" value=\"heatmap\" checked> heatmap"
               "</label>"
               "<label><input type=\"radio\" name=\"view\" value=\"lines\"> lines</label>"
               "</span>\n</div>\n"
               "<main>\n<section id=\"chart-wrap\">\n<h2 id=\"chart-title\"></h2>\n"
               "<p id=\"chart-sub\" class=\"muted\"></p>\n<div id=\"chart\"></div>\n</section>\n"
               "<section id=\"side\">\n<h2>Statistics of every head</h2>\n"
               "<p class=\"muted\">means over the valid rows of the whole batch (padding and, "
               "for decoder self-attention, the masked future left out); click a row to show "
               "that head</p>\n"
               "<div id=\"stats-wrap\"><table id=\"stats\"></table></div>\n"
               "<h2 id=\"js-title\">Head similarity</h2>\n"
               "<p class=\"muted\">Jensen\xe2\x80\x93Shannon divergence between heads, in bits: "
               "0 identical, 1 disjoint (darker is more alike)</p>\n"
               "<table id=\"js\"></table>\n</section>\n</main>\n"
               "<section id=\"analysis\" hidden>\n<h2>Analysis</h2>\n"
               "<p class=\"muted\">results computed from the same input and attached to this file "
               "(head importance, ablations, rollout, relevance, head roles, gold links)</p>\n"
               "<div id=\"grids-wrap\"><div id=\"grids\"></div></div>\n"
               "<div id=\"maps-wrap\">\n<div id=\"map-controls\"><label>Map <select id=\"map\">"
               "</select></label><label id=\"out-tok-label\">Output token <select id=\"out-tok\">"
               "</select></label></div>\n<h3 id=\"map-title\"></h3>\n"
               "<p id=\"map-sub\" class=\"muted\"></p>\n<div id=\"map-chart\"></div>\n"
               "<h3 id=\"bars-title\"></h3>\n<div id=\"bars\"></div>\n</div>\n</section>\n"
               "<footer class=\"muted\">Every position is its own row or column, so a repeated "
               "token stays separate. Layers, heads and positions count from 1. Made by libat ");
    vo_puts(o, at_version_string());
    vo_puts(o, "; this page makes no network request.</footer>\n"
               "<div id=\"tip\" role=\"tooltip\" hidden></div>\n"
               "<script type=\"application/json\" id=\"at-data\">\n");
    /* the data */
    vo_printf(o, "{\"libat\":\"%s\",\"layers\":%d,\"heads\":%d,\"dModel\":%d,\"batch\":%d,"
                 "\"row\":%d,\"topk\":%d,\"cell\":%d,\n\"caption\":",
              at_version_string(), c->layers, c->heads, c->d_model, c->B, c->row, c->topk,
              c->cell);
    vo_json(o, c->caption);
    vo_puts(o, ",\n\"src\":");
    viz_json_tokens(o, &c->src);
    vo_puts(o, ",\n\"tgt\":");
    viz_json_tokens(o, &c->tgt);
    vo_puts(o, ",\n\"palette\":[");
    for (int k = 0; k < VIZ_NSTOPS; k++)
        vo_printf(o, "%s\"%s\"", k ? "," : "", viz_stops[k]);
    vo_printf(o, "],\n\"initial\":{\"kind\":\"%s\",\"layer\":%d,\"head\":%d},\n\"kinds\":[\n",
              at_viz_kind_name(c->kind), c->layer, c->head);
    viz_budget bu;
    at_status s = budget_make(c, &bu);
    int n = 0;
    for (int k = 0; k < 3 && s == AT_OK; k++) {
        if (!viz_kind_ready(c, (at_attn_kind)k))
            continue;
        if (n++)
            vo_puts(o, ",\n");
        s = kind_json(c, o, (at_attn_kind)k, &bu);
    }
    budget_free(&bu);
    if (s == AT_OK) {
        vo_puts(o, "\n],\n\"analysis\":");
        s = viz_analysis_json(c, o);
    }
    if (s != AT_OK)
        return s;
    vo_puts(o, "}\n</script>\n<script>\n");
    vo_puts(o, viz_explorer_js);
    vo_puts(o, "</script>\n</body>\n</html>\n");
    return AT_OK;
}
