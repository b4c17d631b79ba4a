/* The explorer's analysis layers (at_viz_options_add_headmap, _add_map,
 * _set_links): their checks against the pass when the explorer is written,
 * and their part of the page's data, "analysis":
 *   "grids": [{"title", "kind", "layers", "heads", "diverging", "values":
 *             [numbers or null], "labels": [strings or null] or null}],
 *   "maps":  [{"title", "rows", "cols" ("source"/"target"), "nrows",
 *             "ncols", "diverging", "enc": "f32", "values": base64 of the
 *             float32 values, little-endian, row-major}],
 *   "links": [[target, source], ...],
 *   "gold":  {"rows": n, "mass": [per head], "aer": [per head]}
 * Grids are written with 17 significant digits and maps as their float32
 * bits, so the page holds exactly the caller's numbers. Maps and links are
 * cut to the positions charted. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"

static const char *side_name(int side)
{
    return side == AT_VIZ_SRC ? "source" : "target";
}

static int side_all(const viz_ctx *c, int side)
{
    return side == AT_VIZ_SRC ? c->S_all : c->T_all;
}

static int side_shown(const viz_ctx *c, int side)
{
    return side == AT_VIZ_SRC ? c->S : c->T;
}

static at_status check_map(viz_ctx *c, const viz_layer *a)
{
    const char *who = "at_viz_write";
    int side[2] = {a->rside, a->cside}, n[2] = {a->rows, a->cols};
    for (int d = 0; d < 2; d++) {
        if (side[d] == AT_VIZ_TGT && !c->have_dec)
            return set_error(c->m, AT_E_SHAPE, "%s: map '%.40s' is over the target, and the "
                                               "pass had none", who, a->title);
        int all = side_all(c, side[d]), shown = side_shown(c, side[d]);
        if (n[d] != all && n[d] != shown)
            return set_error(c->m, AT_E_SHAPE, "%s: map '%.40s' has %d %s; the %s of the pass "
                                               "has %d positions (%d charted)", who, a->title,
                             n[d], d ? "columns" : "rows", side_name(side[d]), all, shown);
    }
    return AT_OK;
}

at_status viz_check_analysis(viz_ctx *c)
{
    const at_viz_options *o = c->o;
    if (!o)
        return AT_OK;
    for (int i = 0; i < o->nan; i++) {
        const viz_layer *a = &o->an[i];
        if (a->kind < 0) {
            at_status s = check_map(c, a);
            if (s != AT_OK)
                return s;
        } else if (a->rows != c->layers || a->cols != c->heads) {
            return set_error(c->m, AT_E_SHAPE, "at_viz_write: head grid '%.40s' is %d layers x "
                                               "%d heads; the model has %d x %d", a->title,
                             a->rows, a->cols, c->layers, c->heads);
        }
    }
    for (int i = 0; i < o->nlinks; i++) {
        int t = o->links[2 * i], s = o->links[2 * i + 1];
        if (!c->have_dec || t >= c->T_all || s >= c->S_all)
            return set_error(c->m, AT_E_RANGE, "at_viz_write: gold link %d (target %d, source "
                                               "%d) is beyond the pass (%d target, %d source "
                                               "positions)", i, t, s, c->T_all, c->S_all);
    }
    return AT_OK;
}

static void grid_json(vout *o, const viz_layer *a)
{
    vo_puts(o, "{\"title\":");
    char *t = viz_clean_label(a->title, 0);
    vo_json(o, t ? t : "");
    free(t);
    vo_printf(o, ",\"kind\":\"%s\",\"layers\":%d,\"heads\":%d,\"diverging\":%d,\"values\":[",
              at_viz_kind_name((at_attn_kind)a->kind), a->rows, a->cols, a->diverging);
    int n = a->rows * a->cols;
    for (int i = 0; i < n; i++) {
        if (i)
            vo_putc(o, ',');
        if (isnan(a->v[i]))
            vo_puts(o, "null");
        else
            vo_printf(o, "%.17g", a->v[i]);
    }
    vo_puts(o, "],\"labels\":");
    if (!a->labels) {
        vo_puts(o, "null}");
        return;
    }
    vo_putc(o, '[');
    for (int i = 0; i < n; i++) {
        if (i)
            vo_putc(o, ',');
        char *l = a->labels[i] ? viz_clean_label(a->labels[i], 0) : NULL;
        if (l)
            vo_json(o, l);
        else
            vo_puts(o, "null");
        free(l);
    }
    vo_puts(o, "]}");
}

static void map_json(viz_ctx *c, vout *o, const viz_layer *a)
{
    int nr = side_shown(c, a->rside), nc = side_shown(c, a->cside);
    vo_puts(o, "{\"title\":");
    char *t = viz_clean_label(a->title, 0);
    vo_json(o, t ? t : "");
    free(t);
    vo_printf(o, ",\"rows\":\"%s\",\"cols\":\"%s\",\"nrows\":%d,\"ncols\":%d,\"diverging\":%d,"
                 "\"enc\":\"f32\",\"values\":\"",
              side_name(a->rside), side_name(a->cside), nr, nc, a->diverging);
    vb64 b = {.o = o};
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nc; j++) {
            float v = a->f[(size_t)i * a->cols + j];
            unsigned char le[4];
            uint32_t u;
            memcpy(&u, &v, 4);
            for (int k = 0; k < 4; k++)
                le[k] = (unsigned char)(u >> (8 * k));
            vb64_put(&b, le, 4);
        }
    vb64_end(&b);
    vo_puts(o, "\"}");
}

/* The links inside the chart, each once: a T × S table of flags. */
static unsigned char *gold_cells(const viz_ctx *c, int *count)
{
    unsigned char *g = calloc((size_t)c->T * c->S + 1, 1);
    *count = 0;
    if (!g)
        return NULL;
    for (int i = 0; i < c->o->nlinks; i++) {
        int t = c->o->links[2 * i], s = c->o->links[2 * i + 1];
        if (t < c->T && s < c->S && !g[(size_t)t * c->S + s]) {
            g[(size_t)t * c->S + s] = 1;
            (*count)++;
        }
    }
    return g;
}

/* Per head of cross-attention: the mean mass on the links of the rows that
 * have one, and the AER of the argmax alignment of those rows (the first
 * largest on ties), as attn align-eval scores words (docs/alignment.md). */
static at_status gold_json(viz_ctx *c, vout *o)
{
    int n = 0, T = c->T, S = c->S, LH = c->layers * c->heads;
    unsigned char *g = gold_cells(c, &n);
    double *mass = malloc((size_t)LH * sizeof *mass), *aer = malloc((size_t)LH * sizeof *aer);
    at_status s = g && mass && aer ? AT_OK : set_error(c->m, AT_E_NOMEM, "at_viz_write: out "
                                                                         "of memory");
    int rows = 0;
    for (int t = 0; s == AT_OK && t < T; t++)
        rows += memchr(g + (size_t)t * S, 1, (size_t)S) != NULL;
    for (int x = 0; s == AT_OK && x < LH; x++) {
        viz_panel p;
        s = viz_panel_get(c, AT_ATTN_CROSS, x / c->heads, x % c->heads, &p);
        double m = 0;
        int hit = 0;
        for (int t = 0; s == AT_OK && t < T; t++) {
            const unsigned char *gr = g + (size_t)t * S;
            if (!memchr(gr, 1, (size_t)S))
                continue;
            int best = 0;
            for (int j = 0; j < S; j++) {
                float w = viz_w(&p, t, j);
                if (gr[j])
                    m += w;
                if (w > viz_w(&p, t, best))
                    best = j;
            }
            hit += gr[best];
        }
        mass[x] = rows ? m / rows : NAN;
        aer[x] = rows ? 1.0 - 2.0 * hit / (double)(rows + n) : NAN;
    }
    if (s == AT_OK) {
        vo_printf(o, ",\n\"gold\":{\"rows\":%d,\"links\":%d,\"mass\":[", rows, n);
        for (int x = 0; x < LH; x++)
            vo_printf(o, isnan(mass[x]) ? "%snull" : "%s%.9g", x ? "," : "", mass[x]);
        vo_puts(o, "],\"aer\":[");
        for (int x = 0; x < LH; x++)
            vo_printf(o, isnan(aer[x]) ? "%snull" : "%s%.9g", x ? "," : "", aer[x]);
        vo_puts(o, "]}");
    }
    free(g);
    free(mass);
    free(aer);
    return s;
}

at_status viz_analysis_json(viz_ctx *c, vout *o)
{
    const at_viz_options *op = c->o;
    vo_puts(o, "{\"grids\":[");
    int n = 0;
    for (int i = 0; op && i < op->nan; i++) {
        const viz_layer *a = &op->an[i];
        if (a->kind < 0 || !viz_kind_ready(c, (at_attn_kind)a->kind))
            continue;
        vo_puts(o, n++ ? ",\n" : "\n");
        grid_json(o, a);
    }
    vo_puts(o, "],\n\"maps\":[");
    n = 0;
    for (int i = 0; op && i < op->nan; i++) {
        if (op->an[i].kind >= 0)
            continue;
        vo_puts(o, n++ ? ",\n" : "\n");
        map_json(c, o, &op->an[i]);
    }
    vo_puts(o, "],\n\"links\":[");
    at_status s = AT_OK;
    if (op && op->nlinks && c->have_dec) {
        int count;
        unsigned char *g = gold_cells(c, &count);
        if (!g)
            return set_error(c->m, AT_E_NOMEM, "at_viz_write: out of memory");
        n = 0;
        for (size_t x = 0; x < (size_t)c->T * c->S; x++)
            if (g[x])
                vo_printf(o, "%s[%d,%d]", n++ ? "," : "", (int)(x / c->S), (int)(x % c->S));
        free(g);
        vo_putc(o, ']');
        if (viz_kind_ready(c, AT_ATTN_CROSS))
            s = gold_json(c, o);
    } else {
        vo_putc(o, ']');
    }
    vo_putc(o, '}');
    return s;
}
