/* Charts as Vega-Lite v5 specifications, data inline, in the grammar Altair
 * writes (alt.Chart.from_dict reads them back).
 *
 * Attention data is stored one record per query row, its weights as an array:
 *   {"layer": 1, "head": 2, "q": 0, "w": [0.91, 0.09, 0]}
 * and expanded by transforms: flatten gives one record per weight, a window's
 * row_number within (layer, head, q) gives the key position k. Positions are
 * 0-based fields; the tokens come from two parameters (rowTokens, colTokens)
 * so that a token that occurs twice stays two rows. Layers and heads are
 * 1-based, as the titles say. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"

static const char *const schema = "https://vega.github.io/schema/vega-lite/v5.json";

static void json_stops(vout *o)
{
    vo_puts(o, "[");
    for (int k = 0; k < VIZ_NSTOPS; k++)
        vo_printf(o, "%s\"%s\"", k ? "," : "", viz_stops[k]);
    vo_puts(o, "]");
}

/* A colour scale from 0 to max through the nine stops, in RGB. */
static void json_scale(vout *o, double max)
{
    if (!(max > 0))
        max = 1;
    vo_puts(o, "{\"domain\":[");
    for (int k = 0; k < VIZ_NSTOPS; k++) {
        if (k)
            vo_putc(o, ',');
        vo_num(o, max * k / (VIZ_NSTOPS - 1), 6);
    }
    vo_puts(o, "],\"range\":");
    json_stops(o);
    vo_puts(o, ",\"interpolate\":\"rgb\",\"clamp\":true}");
}

static void begin(vout *o, const viz_ctx *c, const char *title, const char *const *sub,
                  int nsub)
{
    vo_printf(o, "{\n\"$schema\":\"%s\",\n\"description\":", schema);
    char desc[160];
    snprintf(desc, sizeof desc, "libat %s: %s chart", at_version_string(),
             at_viz_chart_name(c->chart));
    vo_json(o, desc);
    vo_puts(o, ",\n\"title\":{\"text\":");
    vo_json(o, title);
    vo_puts(o, ",\"subtitle\":[");
    int k = 0;
    for (int i = 0; i < nsub; i++) {
        if (!*sub[i])
            continue;
        if (k++)
            vo_putc(o, ',');
        vo_json(o, sub[i]);
    }
    vo_puts(o, "],\"anchor\":\"start\",\"fontSize\":15,\"subtitleColor\":\"" VIZ_MUTED "\"},\n");
}

static void config(vout *o, const viz_ctx *c)
{
    vo_puts(o, ",\n\"config\":{\"font\":");
    vo_json(o, c->font);
    vo_puts(o, ",\"view\":{\"stroke\":\"#999999\",\"strokeWidth\":0.5},"
               "\"axis\":{\"labelFontSize\":11,\"titleFontSize\":11,\"labelLimit\":140,"
               "\"domain\":false,\"ticks\":false},"
               "\"header\":{\"labelFontSize\":12,\"labelFontWeight\":\"bold\","
               "\"titleFontSize\":12},"
               "\"legend\":{\"gradientLength\":160,\"titleFontSize\":11}}\n}\n");
}

/* The data of some panels, one record per query row. */
static at_status attention_data(vout *o, viz_ctx *c, at_attn_kind kind, const int *layers,
                                const int *heads, int np, double *max_out)
{
    vo_puts(o, "\"data\":{\"values\":[\n");
    double mx = 0;
    for (int k = 0; k < np; k++) {
        viz_panel p;
        at_status s = viz_panel_get(c, kind, layers[k], heads[k], &p);
        if (s != AT_OK)
            return s;
        mx = p.max > mx ? p.max : mx;
        for (int i = 0; i < p.nq; i++) {
            vo_printf(o, "%s{\"layer\":%d,\"head\":%d,\"q\":%d,\"w\":[", k || i ? ",\n" : "",
                      layers[k] + 1, heads[k] + 1, i);
            for (int j = 0; j < p.nk; j++) {
                if (j)
                    vo_putc(o, ',');
                vo_num(o, viz_w(&p, i, j), 4);
            }
            vo_puts(o, "]}");
        }
    }
    vo_puts(o, "\n]},\n");
    *max_out = mx;
    return AT_OK;
}

static void attention_params(vout *o, const viz_ctx *c, at_attn_kind kind)
{
    vo_puts(o, "\"params\":[{\"name\":\"rowTokens\",\"value\":");
    viz_json_tokens(o, viz_rows(c, kind));
    vo_puts(o, "},{\"name\":\"colTokens\",\"value\":");
    viz_json_tokens(o, viz_cols(c, kind));
    vo_puts(o, "}],\n");
}

static void attention_transforms(vout *o, bool relative)
{
    vo_puts(o, "\"transform\":[\n"
               "{\"flatten\":[\"w\"],\"as\":[\"weight\"]},\n"
               "{\"window\":[{\"op\":\"row_number\",\"as\":\"kn\"}],"
               "\"groupby\":[\"layer\",\"head\",\"q\"]},\n"
               "{\"calculate\":\"datum.kn - 1\",\"as\":\"k\"},\n"
               "{\"calculate\":\"rowTokens[datum.q]\",\"as\":\"query\"},\n"
               "{\"calculate\":\"colTokens[datum.k]\",\"as\":\"key\"},\n"
               "{\"calculate\":\"datum.q + 1\",\"as\":\"query position\"},\n"
               "{\"calculate\":\"datum.k + 1\",\"as\":\"key position\"}");
    if (relative)
        vo_puts(o, ",\n{\"joinaggregate\":[{\"op\":\"max\",\"field\":\"weight\","
                   "\"as\":\"panel max\"}],\"groupby\":[\"layer\",\"head\"]},\n"
                   "{\"calculate\":\"datum['panel max'] > 0 ? datum.weight / datum['panel max'] "
                   ": 0\",\"as\":\"relative\"}");
    vo_puts(o, "\n],\n");
}

/* The encoding of one rect panel: queries down, keys across. */
static void attention_encoding(vout *o, const viz_ctx *c, at_attn_kind kind, int cell,
                               bool labels, bool relative, double max)
{
    const viz_seq *cols = viz_cols(c, kind);
    bool horiz = cols->max_em * 11 + 4 <= cell;
    vo_puts(o, "\"encoding\":{\n\"y\":{\"field\":\"q\",\"type\":\"ordinal\",\"title\":");
    if (c->chart == AT_VIZ_MODEL)   /* one per row of panels would collide */
        vo_puts(o, "null");
    else
        vo_printf(o, "\"query \xc2\xb7 %s\"", viz_rows_name(kind));
    vo_puts(o, ",\"axis\":");
    if (labels)
        vo_puts(o, "{\"labelExpr\":\"rowTokens[datum.value]\",\"labelOverlap\":\"greedy\"}");
    else
        vo_puts(o, "{\"labels\":false}");
    vo_printf(o, "},\n\"x\":{\"field\":\"k\",\"type\":\"ordinal\",\"title\":\"key \xc2\xb7 %s\","
                 "\"axis\":", viz_cols_name(kind));
    if (labels)
        vo_printf(o, "{\"labelExpr\":\"colTokens[datum.value]\",\"labelAngle\":%d,"
                     "\"labelOverlap\":\"greedy\"}", horiz ? 0 : -90);
    else
        vo_puts(o, "{\"labels\":false}");
    vo_printf(o, "},\n\"color\":{\"field\":\"%s\",\"type\":\"quantitative\",\"title\":\"%s\","
                 "\"scale\":", relative ? "relative" : "weight",
              relative ? "weight \xc3\xb7 panel max" : "weight");
    json_scale(o, relative ? 1.0 : max);
    vo_puts(o, "},\n\"tooltip\":[{\"field\":\"layer\",\"type\":\"ordinal\"},"
               "{\"field\":\"head\",\"type\":\"ordinal\"},"
               "{\"field\":\"query position\",\"type\":\"ordinal\"},"
               "{\"field\":\"query\",\"type\":\"nominal\"},"
               "{\"field\":\"key position\",\"type\":\"ordinal\"},"
               "{\"field\":\"key\",\"type\":\"nominal\"},"
               "{\"field\":\"weight\",\"type\":\"quantitative\",\"format\":\".4f\"}");
    if (relative)
        vo_puts(o, ",{\"field\":\"panel max\",\"type\":\"quantitative\",\"format\":\".4f\"}");
    vo_printf(o, "]\n},\n\"width\":{\"step\":%d},\"height\":{\"step\":%d}", cell, cell);
}

static at_status heatmap(viz_ctx *c, vout *o)
{
    const viz_seq *rows = viz_rows(c, c->kind), *cols = viz_cols(c, c->kind);
    int n = rows->n > cols->n ? rows->n : cols->n;
    int cell = viz_auto_cell(c, n, 560, 4, 28);
    char title[200], note[200];
    viz_title(c, title, sizeof title);
    viz_axes_note(c, c->kind, note, sizeof note);
    const char *sub[2] = {note, c->caption};
    begin(o, c, title, sub, 2);
    attention_params(o, c, c->kind);
    double max;
    at_status s = attention_data(o, c, c->kind, &c->layer, &c->head, 1, &max);
    if (s != AT_OK)
        return s;
    attention_transforms(o, false);
    vo_puts(o, "\"mark\":{\"type\":\"rect\"},\n");
    attention_encoding(o, c, c->kind, cell, true, false, max);
    config(o, c);
    return AT_OK;
}

static at_status panels(viz_ctx *c, vout *o)
{
    at_attn_kind kind = c->kind;
    const viz_seq *rows = viz_rows(c, kind), *cols = viz_cols(c, kind);
    int n = rows->n > cols->n ? rows->n : cols->n;
    bool model = c->chart == AT_VIZ_MODEL;
    int cell = model ? viz_auto_cell(c, n, 120, 1, 10) : viz_auto_cell(c, n, 220, 2, 16);
    bool labels = !model || cell >= 6;
    int np = c->chart == AT_VIZ_HEADS ? c->heads : c->chart == AT_VIZ_LAYERS
                                                       ? c->layers
                                                       : c->layers * c->heads;
    int *ls = malloc((size_t)np * sizeof *ls), *hs = malloc((size_t)np * sizeof *hs);
    if (!ls || !hs) {
        free(ls);
        free(hs);
        return set_error(c->m, AT_E_NOMEM, "at_viz_write: out of memory");
    }
    for (int k = 0; k < np; k++) {
        ls[k] = c->chart == AT_VIZ_HEADS ? c->layer : c->chart == AT_VIZ_LAYERS ? k
                                                                                : k / c->heads;
        hs[k] = c->chart == AT_VIZ_HEADS ? k : c->chart == AT_VIZ_LAYERS ? c->head
                                                                         : k % c->heads;
    }
    char title[200], note[200];
    viz_title(c, title, sizeof title);
    viz_axes_note(c, kind, note, sizeof note);
    const char *sub[3] = {note, "each panel coloured from 0 to its own largest weight",
                          c->caption};
    begin(o, c, title, sub, 3);
    attention_params(o, c, kind);
    double max;
    at_status s = attention_data(o, c, kind, ls, hs, np, &max);
    free(ls);
    free(hs);
    if (s != AT_OK)
        return s;
    attention_transforms(o, true);
    if (model)
        vo_puts(o, "\"facet\":{\"row\":{\"field\":\"layer\",\"type\":\"ordinal\",\"title\":null,"
                   "\"header\":{\"labelExpr\":\"'layer ' + datum.value\",\"labelAngle\":0,"
                   "\"labelAlign\":\"left\"}},"
                   "\"column\":{\"field\":\"head\",\"type\":\"ordinal\",\"title\":null,"
                   "\"header\":{\"labelExpr\":\"'head ' + datum.value\"}}},\n");
    else
        vo_printf(o, "\"facet\":{\"field\":\"%s\",\"type\":\"ordinal\",\"title\":null,"
                     "\"header\":{\"labelExpr\":\"'%s ' + datum.value\"}},\n\"columns\":%d,\n",
                  c->chart == AT_VIZ_HEADS ? "head" : "layer",
                  c->chart == AT_VIZ_HEADS ? "head" : "layer", np < 4 ? np : 4);
    vo_puts(o, "\"spec\":{\n\"mark\":{\"type\":\"rect\"},\n");
    attention_encoding(o, c, kind, cell, labels, true, 1.0);
    vo_puts(o, "\n}");
    config(o, c);
    return AT_OK;
}

static at_status stats(viz_ctx *c, vout *o)
{
    char title[200], note[300];
    viz_title(c, title, sizeof title);
    snprintf(note, sizeof note,
             "means over the valid rows of the whole batch (%d row%s) \xc2\xb7 entropy divided "
             "by ln(valid keys): 0 one key, 1 uniform", c->B, c->B == 1 ? "" : "s");
    const char *sub[2] = {note, c->caption};
    begin(o, c, title, sub, 2);
    vo_puts(o, "\"data\":{\"values\":[\n");
    int first = 1;
    for (int k = 0; k < 3; k++) {
        if (!viz_kind_ready(c, (at_attn_kind)k))
            continue;
        double *st;
        at_status s = viz_stats(c, (at_attn_kind)k, &st);
        if (s != AT_OK)
            return s;
        for (int l = 0; l < c->layers; l++)
            for (int h = 0; h < c->heads; h++) {
                const double *v = st + ((size_t)l * c->heads + h) * AT_STAT_COUNT;
                for (int w = 0; w < 2; w++) {
                    vo_printf(o, "%s{\"kind\":\"%s\",\"layer\":%d,\"head\":%d,"
                                 "\"statistic\":\"%s\",\"value\":",
                              first ? "" : ",\n", viz_kind_short((at_attn_kind)k), l + 1, h + 1,
                              w == 0 ? "entropy \xc3\xb7 ln(keys)" : "max weight");
                    first = 0;
                    vo_num(o, w == 0 ? v[AT_STAT_ENTROPY_NORM] : v[AT_STAT_MAX], 6);
                    vo_puts(o, ",\"entropy (nats)\":");
                    vo_num(o, v[AT_STAT_ENTROPY], 6);
                    vo_printf(o, ",\"top-%d mass\":", c->topk);
                    vo_num(o, v[AT_STAT_TOPK], 6);
                    vo_puts(o, ",\"mean distance\":");
                    vo_num(o, v[AT_STAT_DISTANCE], 6);
                    vo_printf(o, ",\"rows\":%.0f}", v[AT_STAT_ROWS]);
                }
            }
        free(st);
    }
    vo_puts(o, "\n]},\n"
               "\"facet\":{\"row\":{\"field\":\"kind\",\"type\":\"nominal\",\"title\":null,"
               "\"sort\":[\"encoder self\",\"decoder self\",\"cross\"],"
               "\"header\":{\"labelAngle\":0,\"labelAlign\":\"left\",\"labelOrient\":\"top\","
               "\"labelAnchor\":\"start\",\"labelPadding\":4}},"
               "\"column\":{\"field\":\"statistic\",\"type\":\"nominal\",\"title\":null,"
               "\"sort\":[\"entropy \xc3\xb7 ln(keys)\",\"max weight\"]}},\n"
               "\"spec\":{\n"
               "\"encoding\":{\"x\":{\"field\":\"head\",\"type\":\"ordinal\","
               "\"axis\":{\"labelAngle\":0}},"
               "\"y\":{\"field\":\"layer\",\"type\":\"ordinal\",\"title\":null,"
               "\"axis\":{\"labelExpr\":\"'layer ' + datum.value\"}}},\n"
               "\"layer\":[\n"
               "{\"mark\":{\"type\":\"rect\",\"stroke\":\"#ffffff\"},\"encoding\":{"
               "\"color\":{\"field\":\"value\",\"type\":\"quantitative\",\"title\":\"value\","
               "\"scale\":");
    json_scale(o, 1.0);
    vo_printf(o, "},\n\"tooltip\":[{\"field\":\"kind\",\"type\":\"nominal\"},"
                 "{\"field\":\"layer\",\"type\":\"ordinal\"},"
                 "{\"field\":\"head\",\"type\":\"ordinal\"},"
                 "{\"field\":\"statistic\",\"type\":\"nominal\"},"
                 "{\"field\":\"value\",\"type\":\"quantitative\",\"format\":\".4f\"},"
                 "{\"field\":\"entropy (nats)\",\"type\":\"quantitative\",\"format\":\".4f\"},"
                 "{\"field\":\"top-%d mass\",\"type\":\"quantitative\",\"format\":\".4f\"},"
                 "{\"field\":\"mean distance\",\"type\":\"quantitative\",\"format\":\".3f\"},"
                 "{\"field\":\"rows\",\"type\":\"quantitative\"}]}},\n"
                 "{\"mark\":{\"type\":\"text\",\"fontSize\":10},\"encoding\":{"
                 "\"text\":{\"field\":\"value\",\"type\":\"quantitative\",\"format\":\".2f\"},"
                 "\"color\":{\"condition\":{\"test\":\"datum.value > 0.55\","
                 "\"value\":\"#ffffff\"},\"value\":\"" VIZ_INK "\"}}}\n"
                 "],\n\"width\":{\"step\":38},\"height\":{\"step\":22}\n}",
              c->topk);
    config(o, c);
    return AT_OK;
}

/* One mask panel's data and encoding, as an element of hconcat. */
static void mask_chart(vout *o, const char *title, const char *rowf, const char *colf,
                       const char *rowtok, const char *coltok, int nq, int nk, const float *m,
                       int64_t rs, int64_t cs, int cell, int mark)
{
    vo_puts(o, "{\"title\":");
    vo_json(o, title);
    vo_puts(o, ",\"data\":{\"values\":[\n");
    for (int i = 0; i < nq; i++) {
        vo_printf(o, "%s{\"%s\":%d,\"mask\":[", i ? ",\n" : "", rowf, i);
        for (int j = 0; j < nk; j++) {
            bool on = m ? m[(int64_t)i * rs + (int64_t)j * cs] != 0.0f : j <= i;
            vo_printf(o, "%s%d", j ? "," : "", on ? 1 : 0);
        }
        vo_puts(o, "]}");
    }
    vo_printf(o, "\n]},\n\"transform\":[{\"flatten\":[\"mask\"],\"as\":[\"value\"]},"
                 "{\"window\":[{\"op\":\"row_number\",\"as\":\"kn\"}],\"groupby\":[\"%s\"]},"
                 "{\"calculate\":\"datum.kn - 1\",\"as\":\"%s\"},"
                 "{\"calculate\":\"datum.value ? 'attended (1)' : 'masked (0)'\","
                 "\"as\":\"mask\"}",
              rowf, colf);
    const char *rname = rowtok ? "query position" : "batch row";
    const char *cname = coltok ? "key position" : "source position";
    vo_printf(o, ",{\"calculate\":\"datum['%s'] + 1\",\"as\":\"%s\"}", rowf, rname);
    vo_printf(o, ",{\"calculate\":\"datum['%s'] + 1\",\"as\":\"%s\"}", colf, cname);
    if (rowtok)
        vo_printf(o, ",{\"calculate\":\"%s[datum['%s']]\",\"as\":\"query\"}", rowtok, rowf);
    if (coltok)
        vo_printf(o, ",{\"calculate\":\"%s[datum['%s']]\",\"as\":\"key\"}", coltok, colf);
    vo_puts(o, "],\n\"mark\":{\"type\":\"rect\"},\n\"encoding\":{");
    if (rowtok)
        vo_printf(o, "\"y\":{\"field\":\"%s\",\"type\":\"ordinal\",\"title\":\"query\","
                     "\"axis\":{\"labelExpr\":\"%s[datum.value]\",\"labelOverlap\":\"greedy\"}},",
                  rowf, rowtok);
    else
        vo_printf(o, "\"y\":{\"field\":\"%s\",\"type\":\"ordinal\",\"title\":\"batch row\","
                     "\"axis\":{\"labelExpr\":\"(datum.value == %d ? '\xe2\x96\xb8 ' : '') + "
                     "'row ' + (datum.value + 1)\",\"labelOverlap\":\"greedy\"}},", rowf,
                  mark);
    if (coltok)
        vo_printf(o, "\"x\":{\"field\":\"%s\",\"type\":\"ordinal\",\"title\":\"key\","
                     "\"axis\":{\"labelExpr\":\"%s[datum.value]\",\"labelAngle\":-90,"
                     "\"labelOverlap\":\"greedy\"}},", colf, coltok);
    else
        vo_printf(o, "\"x\":{\"field\":\"%s\",\"type\":\"ordinal\",\"title\":\"source position\","
                     "\"axis\":{\"labelExpr\":\"'#' + (datum.value + 1)\",\"labelAngle\":-90,"
                     "\"labelOverlap\":\"greedy\"}},", colf);
    vo_puts(o, "\"color\":{\"field\":\"mask\",\"type\":\"nominal\",\"title\":\"mask\","
               "\"scale\":{\"domain\":[\"attended (1)\",\"masked (0)\"],"
               "\"range\":[\"" VIZ_MASK_ON "\",\"" VIZ_MASK_OFF "\"]}},"
               "\"tooltip\":[");
    vo_printf(o, "{\"field\":\"%s\",\"type\":\"ordinal\"},", rname);
    if (rowtok)
        vo_puts(o, "{\"field\":\"query\",\"type\":\"nominal\"},");
    vo_printf(o, "{\"field\":\"%s\",\"type\":\"ordinal\"},", cname);
    if (coltok)
        vo_puts(o, "{\"field\":\"key\",\"type\":\"nominal\"},");
    vo_printf(o, "{\"field\":\"mask\",\"type\":\"nominal\"}]},\n"
                 "\"width\":{\"step\":%d},\"height\":{\"step\":%d}}", cell, cell);
    (void)nk;
}

static at_status masks(viz_ctx *c, vout *o)
{
    at_view sm, tm;
    bool have_tgt;
    at_status s = viz_masks(c, &sm, &tm, &have_tgt);
    if (s != AT_OK)
        return s;
    int maxn = c->B > c->S_all ? c->B : c->S_all;
    maxn = c->T_all > maxn ? c->T_all : maxn;
    int cell = viz_auto_cell(c, maxn, 240, 3, 22);
    char title[200];
    viz_title(c, title, sizeof title);
    const char *note = have_tgt ? "target mask = no padding AND subsequent; rows are queries, "
                                  "columns keys"
                                : "encoder only: no target mask";
    const char *sub[2] = {note, c->caption};
    begin(o, c, title, sub, 2);
    vo_puts(o, "\"params\":[{\"name\":\"tgtTokens\",\"value\":");
    viz_json_tokens(o, &c->tgt);
    vo_puts(o, "}],\n\"hconcat\":[\n");
    char t1[80], t3[80];
    snprintf(t1, sizeof t1, "subsequent mask (%d \xc3\x97 %d)", c->T_all, c->T_all);
    snprintf(t3, sizeof t3, "target mask of batch row %d", c->row + 1);
    if (have_tgt) {
        mask_chart(o, t1, "q", "k", "tgtTokens", "tgtTokens", c->T_all, c->T_all, NULL, 0, 0,
                   cell, -1);
        vo_puts(o, ",\n");
    }
    mask_chart(o, "source padding mask, whole batch", "b", "s", NULL, NULL, c->B, c->S_all,
               sm.data, sm.stride[0], sm.stride[2], cell, c->B > 1 ? c->row : -1);
    if (have_tgt) {
        vo_puts(o, ",\n");
        mask_chart(o, t3, "q", "k", "tgtTokens", "tgtTokens", c->T_all, c->T_all,
                   tm.data + (int64_t)c->row * tm.stride[0], tm.stride[1], tm.stride[2], cell,
                   -1);
    }
    vo_puts(o, "\n]");
    config(o, c);
    return AT_OK;
}

at_status viz_vegalite(viz_ctx *c, vout *o)
{
    switch (c->chart) {
    case AT_VIZ_HEATMAP: return heatmap(c, o);
    case AT_VIZ_HEADS:
    case AT_VIZ_LAYERS:
    case AT_VIZ_MODEL: return panels(c, o);
    case AT_VIZ_STATS: return stats(c, o);
    case AT_VIZ_MASKS: return masks(c, o);
    default: return set_error(c->m, AT_E_ARG, "at_viz_write: no Vega-Lite form of this chart");
    }
}
