/* The HTML explorer: one self-contained page (style, script and data
 * inline; a Content-Security-Policy that forbids every network request).
 * The script and style are in viz_assets.c. The attention of every kind,
 * layer and head of the charted batch row travels as base64 of uint16 weights
 * (w·65535, little-endian, (layer, head, query, key) order). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"

static at_status kind_json(viz_ctx *c, vout *o, at_attn_kind kind)
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
    vo_printf(o, "{\"name\":\"%s\",\"title\":\"%s\",\"rows\":\"%s\",\"cols\":\"%s\","
                 "\"nq\":%d,\"nk\":%d,\n\"weights\":\"",
              at_viz_kind_name(kind), viz_kind_title(kind), viz_rows_name(kind),
              viz_cols_name(kind), nq, nk);
    vb64 b = {.o = o};
    for (int l = 0; l < L && s == AT_OK; l++)
        for (int h = 0; h < H && s == AT_OK; h++) {
            viz_panel p;
            s = viz_panel_get(c, kind, l, h, &p);
            if (s != AT_OK)
                break;
            mx[l * H + h] = p.max;
            for (int i = 0; i < nq; i++) {
                for (int j = 0; j < nk; j++) {
                    float w = viz_w(&p, i, j);
                    long q = lroundf((w < 0 ? 0 : w > 1 ? 1 : w) * 65535.0f);
                    buf[2 * j] = (unsigned char)(q & 0xff);
                    buf[2 * j + 1] = (unsigned char)(q >> 8);
                }
                vb64_put(&b, buf, (size_t)nk * 2);
            }
        }
    vb64_end(&b);
    if (s != AT_OK)
        goto done;
    vo_puts(o, "\",\n\"max\":[");
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
               "<p id=\"meta\" class=\"muted\"></p>\n"
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
    int n = 0;
    for (int k = 0; k < 3; k++) {
        if (!viz_kind_ready(c, (at_attn_kind)k))
            continue;
        if (n++)
            vo_puts(o, ",\n");
        at_status s = kind_json(c, o, (at_attn_kind)k);
        if (s != AT_OK)
            return s;
    }
    vo_puts(o, "\n]}\n</script>\n<script>\n");
    vo_puts(o, viz_explorer_js);
    vo_puts(o, "</script>\n</body>\n</html>\n");
    return AT_OK;
}
