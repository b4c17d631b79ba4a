/* Charts as SVG: heatmaps with a tooltip per cell, panels of heatmaps, the
 * statistics grid and the masks. Large panels are drawn as embedded PNG
 * images (one pixel per cell, scaled up without smoothing). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"

enum {
    PAD = 16,
    TITLE_PX = 15,
    SUB_PX = 11,
    LABEL_PX = 11,
    LEGEND_W = 12,
    MAX_RECT_CELLS = 40000   /* above this a chart draws its cells as images */
};

/* ---------------------------------------------------------------- PNG */

/* A PNG being written: base64 output and the CRC table (built per image, so
 * that threads share nothing). */
typedef struct png {
    vb64 b;
    uint32_t crc[256];
} png;

static void crc_init(png *g)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        g->crc[n] = c;
    }
}

static uint32_t crc_update(const png *g, uint32_t crc, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crc = g->crc[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A chunk: length, type and data, CRC; data may come in two pieces. */
static void png_chunk(png *g, const char *type, const unsigned char *d, size_t n)
{
    unsigned char h[8];
    be32(h, (uint32_t)n);
    memcpy(h + 4, type, 4);
    vb64_put(&g->b, h, 8);
    uint32_t crc = crc_update(g, 0xffffffffu, h + 4, 4);
    if (n) {
        vb64_put(&g->b, d, n);
        crc = crc_update(g, crc, d, n);
    }
    be32(h, crc ^ 0xffffffffu);
    vb64_put(&g->b, h, 4);
}

/* A w×h RGB image as a base64 PNG, compressed with stored deflate blocks. */
static void png_base64(vout *o, const unsigned char *rgb, int w, int h)
{
    png *g = calloc(1, sizeof *g);
    if (!g) {
        o->err = true;
        return;
    }
    g->b.o = o;
    crc_init(g);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    vb64_put(&g->b, sig, 8);
    unsigned char ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;    /* bit depth */
    ihdr[9] = 2;    /* RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    png_chunk(g, "IHDR", ihdr, 13);
    /* the raw scanlines: a filter byte 0, then the row */
    size_t row = (size_t)w * 3 + 1, raw = row * (size_t)h;
    size_t nblocks = raw / 65535 + 1;
    size_t zlen = 2 + raw + nblocks * 5 + 4;
    unsigned char *z = malloc(zlen), *p = z;
    if (!z) {
        o->err = true;
        free(g);
        return;
    }
    *p++ = 0x78;
    *p++ = 0x01;
    uint32_t a = 1, s2 = 0;
    size_t done = 0;
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t n = raw - done < 65535 ? raw - done : 65535;
        *p++ = blk + 1 == nblocks ? 1 : 0;
        *p++ = (unsigned char)(n & 0xff);
        *p++ = (unsigned char)(n >> 8);
        *p++ = (unsigned char)(~n & 0xff);
        *p++ = (unsigned char)((~n >> 8) & 0xff);
        for (size_t i = 0; i < n; i++, done++) {
            size_t y = done / row, x = done % row;
            unsigned char v = x == 0 ? 0 : rgb[y * (size_t)w * 3 + x - 1];
            *p++ = v;
            a = (a + v) % 65521;
            s2 = (s2 + a) % 65521;
        }
    }
    be32(p, s2 << 16 | a);
    p += 4;
    png_chunk(g, "IDAT", z, (size_t)(p - z));
    free(z);
    png_chunk(g, "IEND", NULL, 0);
    vb64_end(&g->b);
    free(g);
}

/* ---------------------------------------------------------------- text helpers */

static void text(vout *o, double x, double y, int px, const char *anchor, const char *fill,
                 const char *weight, const char *s)
{
    vo_printf(o, "<text x=\"%.1f\" y=\"%.1f\"", x, y);
    if (px != LABEL_PX)
        vo_printf(o, " font-size=\"%d\"", px);
    if (anchor && strcmp(anchor, "start"))
        vo_printf(o, " text-anchor=\"%s\"", anchor);
    if (fill && strcmp(fill, VIZ_INK))
        vo_printf(o, " fill=\"%s\"", fill);
    if (weight)
        vo_printf(o, " font-weight=\"%s\"", weight);
    vo_puts(o, ">");
    vo_xml(o, s);
    vo_puts(o, "</text>\n");
}

/* Text rotated by −90°, its end at (x, y): it reads bottom to top and hangs
 * below the point. */
static void vtext(vout *o, double x, double y, int px, const char *anchor, const char *s)
{
    vo_printf(o, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"%s\" "
                 "dy=\"0.35em\"", x, y, anchor);
    if (px != LABEL_PX)
        vo_printf(o, " font-size=\"%d\"", px);
    vo_puts(o, ">");
    vo_xml(o, s);
    vo_puts(o, "</text>\n");
}

static double em_px(const char *s, int px)
{
    return viz_text_em(s) * px;
}

/* ---------------------------------------------------------------- document */

typedef struct doc {
    vout *o;
    viz_ctx *c;
    bool html;
    double w, h;
    int gradients;
} doc;

static void doc_begin(doc *d, const char *title)
{
    vout *o = d->o;
    if (d->html) {
        vo_puts(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<title>");
        vo_xml(o, title);
        vo_puts(o, "</title>\n<style>body{margin:0;background:#fff}svg{display:block}</style>\n"
                   "</head>\n<body>\n");
    } else {
        vo_puts(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    }
    vo_printf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" "
                 "xmlns:xlink=\"http://www.w3.org/1999/xlink\" version=\"1.1\" "
                 "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-size=\"%d\" "
                 "fill=\"%s\" font-family=\"",
              ceil(d->w), ceil(d->h), ceil(d->w), ceil(d->h), LABEL_PX, VIZ_INK);
    vo_xml(o, d->c->font);
    vo_puts(o, "\">\n<title>");
    vo_xml(o, title);
    vo_puts(o, "</title>\n");
    vo_printf(o, "<desc>libat %s: %s</desc>\n", at_version_string(), "attention chart");
    vo_puts(o, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
}

static void doc_end(doc *d)
{
    vo_puts(d->o, "</svg>\n");
    if (d->html)
        vo_puts(d->o, "</body>\n</html>\n");
}

/* The title block; returns the y below it. */
static double header_height(const viz_ctx *c, int nsub)
{
    (void)c;
    return PAD + TITLE_PX + 4 + nsub * (SUB_PX + 5) + 10;
}

static double header_width(const char *title, const char *const *sub, int nsub)
{
    double w = em_px(title, TITLE_PX) * 1.05;
    for (int i = 0; i < nsub; i++) {
        double s = em_px(sub[i], SUB_PX);
        if (s > w)
            w = s;
    }
    return 2 * PAD + w;
}

static void header(doc *d, const char *title, const char *const *sub, int nsub)
{
    double y = PAD + TITLE_PX;
    text(d->o, PAD, y, TITLE_PX, "start", VIZ_INK, "bold", title);
    y += 4;
    for (int i = 0; i < nsub; i++) {
        y += SUB_PX + 5;
        text(d->o, PAD, y, SUB_PX, "start", VIZ_MUTED, NULL, sub[i]);
    }
}

/* ---------------------------------------------------------------- legends */

/* Nice ticks in [0, max]: returns the step. */
static double tick_step(double max)
{
    static const double steps[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.05,
                                   0.1,   0.2,   0.25,  0.5,  1.0};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        if (max / steps[i] <= 5.0)
            return steps[i];
    return 1.0;
}

static double legend_width(void)
{
    return 18 + LEGEND_W + 6 + 7 * 0.6 * LABEL_PX + PAD;
}

/* A vertical colour bar at (x, y), h tall, for values 0 .. max (relative:
 * 0 .. "max" of each panel). */
static void legend(doc *d, double x, double y, double h, double max, bool relative,
                   const char *title)
{
    vout *o = d->o;
    int id = d->gradients++;
    vo_printf(o, "<defs><linearGradient id=\"at-scale-%d\" x1=\"0\" y1=\"1\" x2=\"0\" "
                 "y2=\"0\">", id);
    for (int k = 0; k < VIZ_NSTOPS; k++)
        vo_printf(o, "<stop offset=\"%g\" stop-color=\"%s\"/>", k / (double)(VIZ_NSTOPS - 1),
                  viz_stops[k]);
    vo_puts(o, "</linearGradient></defs>\n<g class=\"legend\">\n");
    text(o, x, y - 8, LABEL_PX, "start", VIZ_INK, "bold", title);
    vo_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" "
                 "fill=\"url(#at-scale-%d)\" stroke=\"#999999\" stroke-width=\"0.5\"/>\n",
              x, y, LEGEND_W, h, id);
    if (relative) {
        static const char *const lab[] = {"0", "\xc2\xbd max", "max"};
        for (int k = 0; k < 3; k++) {
            double ty = y + h - h * k / 2.0;
            vo_printf(o, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                         "stroke=\"#555555\"/>\n", x + LEGEND_W, x + LEGEND_W + 3, ty, ty);
            text(o, x + LEGEND_W + 6, ty + 4, LABEL_PX, "start", VIZ_INK, NULL, lab[k]);
        }
    } else {
        double step = tick_step(max > 0 ? max : 1), top = max > 0 ? max : 1;
        int dec = step >= 0.1 ? (step == 0.25 ? 2 : 1) : step >= 0.01 ? (step == 0.025 ? 3 : 2)
                                                                    : 3;
        for (int k = 0; k * step <= top * (1 + 1e-9); k++) {
            double v = k * step, ty = y + h - h * v / top;
            char lab[32];
            snprintf(lab, sizeof lab, "%.*f", dec, v);
            vo_printf(o, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                         "stroke=\"#555555\"/>\n", x + LEGEND_W, x + LEGEND_W + 3, ty, ty);
            text(o, x + LEGEND_W + 6, ty + 4, LABEL_PX, "start", VIZ_INK, NULL, lab);
        }
    }
    vo_puts(o, "</g>\n");
}

static void legend_masks(doc *d, double x, double y)
{
    vout *o = d->o;
    vo_puts(o, "<g class=\"legend\">\n");
    text(o, x, y - 8, LABEL_PX, "start", VIZ_INK, "bold", "mask");
    vo_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", x, y,
              VIZ_MASK_ON);
    text(o, x + 18, y + 10, LABEL_PX, "start", VIZ_INK, NULL, "attended (1)");
    vo_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\" "
                 "stroke=\"#bbbbbb\" stroke-width=\"0.5\"/>\n", x, y + 20, VIZ_MASK_OFF);
    text(o, x + 18, y + 30, LABEL_PX, "start", VIZ_INK, NULL, "masked (0)");
    vo_puts(o, "</g>\n");
}

/* ---------------------------------------------------------------- axes */

/* Font size and label stride for labels spaced `cell` pixels apart. */
static void label_fit(int cell, int *px, int *every)
{
    *px = LABEL_PX;
    if (cell < 13 && cell >= 10)
        *px = cell - 2;
    if (*px < 8)
        *px = 8;
    *every = (int)ceil((*px + 2.0) / cell);
    if (*every < 1)
        *every = 1;
}

/* Whether x labels of `q` fit side by side in cells of this width. */
static bool x_horizontal(const viz_seq *q, int cell, int px)
{
    return q->max_em * px + 4 <= cell;
}

/* Height the x labels need under a grid. */
static double xlabels_height(const viz_seq *q, int cell)
{
    int px, every;
    label_fit(cell, &px, &every);
    return x_horizontal(q, cell, px) ? px + 6 : q->max_em * px + 8;
}

static double ylabels_width(const viz_seq *q, int cell)
{
    int px, every;
    label_fit(cell, &px, &every);
    return q->max_em * px + 8;
}

/* Labels of rows, right-aligned against x. */
static void ylabels(vout *o, const viz_seq *q, double x, double gy, int cell)
{
    int px, every;
    label_fit(cell, &px, &every);
    vo_puts(o, "<g class=\"ylabels\">\n");
    for (int i = 0; i < q->n; i += every)
        text(o, x - 5, gy + (i + 0.5) * cell + px * 0.35, px, "end", VIZ_INK, NULL,
             q->shown[i]);
    vo_puts(o, "</g>\n");
}

/* Labels of columns under a grid whose bottom is at y. */
static void xlabels(vout *o, const viz_seq *q, double gx, double y, int cell)
{
    int px, every;
    label_fit(cell, &px, &every);
    bool horiz = x_horizontal(q, cell, px);
    vo_puts(o, "<g class=\"xlabels\">\n");
    for (int j = 0; j < q->n; j += every) {
        double x = gx + (j + 0.5) * cell;
        if (horiz)
            text(o, x, y + px + 2, px, "middle", VIZ_INK, NULL, q->shown[j]);
        else
            vtext(o, x, y + 5, px, "end", q->shown[j]);
    }
    vo_puts(o, "</g>\n");
}

/* ---------------------------------------------------------------- cells */

/* A cell's tooltip lines "QWORD QLABEL" and "KWORD KLABEL", escaped, each
 * ending in a newline. Written piece by piece: the labels are whole however
 * long they are (a fixed buffer cut them, and a UTF-8 sequence with them). */
static void tooltip_pair(vout *o, const char *qword, const char *qlabel, const char *kword,
                         const char *klabel)
{
    vo_xml(o, qword);
    vo_putc(o, ' ');
    vo_xml(o, qlabel);
    vo_puts(o, "&#10;");
    vo_xml(o, kword);
    vo_putc(o, ' ');
    vo_xml(o, klabel);
    vo_puts(o, "&#10;");
}

/* The cells of one panel at (gx, gy): rects with tooltips, or one image. */
static void cells(doc *d, const viz_panel *p, double gx, double gy, int cell, bool rects,
                  const char *prefix)
{
    vout *o = d->o;
    viz_ctx *c = d->c;
    const viz_seq *rows = viz_rows(c, p->kind), *cols = viz_cols(c, p->kind);
    double scale = p->max > 0 ? p->max : 1;
    if (!rects) {
        unsigned char *rgb = malloc((size_t)p->nq * p->nk * 3 + 1);
        if (!rgb) {
            o->err = true;
            return;
        }
        for (int i = 0; i < p->nq; i++)
            for (int j = 0; j < p->nk; j++)
                viz_color(viz_w(p, i, j) / scale, rgb + ((size_t)i * p->nk + j) * 3);
        vo_printf(o, "<image x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
                     "preserveAspectRatio=\"none\" image-rendering=\"optimizeSpeed\" "
                     "style=\"image-rendering:pixelated\" xlink:href=\"data:image/png;base64,",
                  gx, gy, p->nk * cell, p->nq * cell);
        png_base64(o, rgb, p->nk, p->nq);
        vo_puts(o, "\"><title>");
        vo_xml(o, prefix);
        vo_printf(o, "largest weight %.4f</title></image>\n", p->max);
        free(rgb);
        return;
    }
    vo_printf(o, "<g class=\"cells\" transform=\"translate(%.1f,%.1f)\" "
                 "shape-rendering=\"crispEdges\">\n", gx, gy);
    for (int i = 0; i < p->nq; i++)
        for (int j = 0; j < p->nk; j++) {
            double w = viz_w(p, i, j);
            char hex[8], q[24], k[24];
            viz_color_hex(w / scale, hex);
            vo_printf(o, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                         "fill=\"%s\"><title>", j * cell, i * cell, cell, cell, hex);
            snprintf(q, sizeof q, "query #%d", i + 1);
            snprintf(k, sizeof k, "key #%d", j + 1);
            vo_xml(o, prefix);
            tooltip_pair(o, q, rows->full[i], k, cols->full[j]);
            vo_printf(o, "weight %.4f</title></rect>\n", w);
        }
    vo_puts(o, "</g>\n");
}

/* ---------------------------------------------------------------- heatmap */

static at_status heatmap(doc *d)
{
    viz_ctx *c = d->c;
    viz_panel p;
    at_status s = viz_panel_get(c, c->kind, c->layer, c->head, &p);
    if (s != AT_OK)
        return s;
    const viz_seq *rows = viz_rows(c, c->kind), *cols = viz_cols(c, c->kind);
    int n = p.nq > p.nk ? p.nq : p.nk;
    int cell = viz_auto_cell(c, n, 560, 4, 28);
    char title[200], note[200];
    viz_title(c, title, sizeof title);
    viz_axes_note(c, c->kind, note, sizeof note);
    const char *sub[2] = {note, c->caption};
    int nsub = *c->caption ? 2 : 1;
    double top = header_height(c, nsub);
    double gx = PAD + 20 + ylabels_width(rows, cell), gy = top + 6;
    double gw = (double)p.nk * cell, gh = (double)p.nq * cell;
    double xl = xlabels_height(cols, cell);
    double lh = gh < 100 ? 100 : gh > 260 ? 260 : gh;
    d->w = gx + gw + legend_width();
    double hw = header_width(title, sub, nsub);
    if (hw > d->w)
        d->w = hw;
    d->h = gy + (gh > lh ? gh : lh) + xl + 22 + PAD;
    doc_begin(d, title);
    header(d, title, sub, nsub);
    vout *o = d->o;
    bool rects = (int64_t)p.nq * p.nk <= MAX_RECT_CELLS;
    cells(d, &p, gx, gy, cell, rects, "");
    vo_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                 "stroke=\"#999999\" stroke-width=\"0.5\"/>\n", gx, gy, gw, gh);
    ylabels(o, rows, gx, gy, cell);
    xlabels(o, cols, gx, gy + gh, cell);
    char at[80];
    snprintf(at, sizeof at, "query \xc2\xb7 %s", viz_rows_name(c->kind));
    vtext(o, PAD + 4, gy + gh / 2, LABEL_PX, "middle", at);
    snprintf(at, sizeof at, "key \xc2\xb7 %s", viz_cols_name(c->kind));
    text(o, gx + gw / 2, gy + gh + xl + 16, LABEL_PX, "middle", VIZ_INK, NULL, at);
    legend(d, gx + gw + 18, gy + 14, lh - 14, p.max, false, "weight");
    doc_end(d);
    return AT_OK;
}

/* ---------------------------------------------------------------- panels */

/* heads, layers or the model view: a grid of panels, each on its own scale */
static at_status panels(doc *d)
{
    viz_ctx *c = d->c;
    at_attn_kind kind = c->kind;
    const viz_seq *rows = viz_rows(c, kind), *cols = viz_cols(c, kind);
    int np, ncol;
    if (c->chart == AT_VIZ_HEADS)
        np = c->heads, ncol = np < 4 ? np : 4;
    else if (c->chart == AT_VIZ_LAYERS)
        np = c->layers, ncol = np < 4 ? np : 4;
    else
        np = c->layers * c->heads, ncol = c->heads;
    int nrow = (np + ncol - 1) / ncol;
    int n = rows->n > cols->n ? rows->n : cols->n;
    bool model = c->chart == AT_VIZ_MODEL;
    int cell = model ? viz_auto_cell(c, n, 120, 1, 10) : viz_auto_cell(c, n, 220, 2, 16);
    int64_t total = (int64_t)np * rows->n * cols->n;
    bool rects = total <= MAX_RECT_CELLS;
    bool labels = !model || cell >= 6;
    double gw = (double)cols->n * cell, gh = (double)rows->n * cell;
    double yl = labels ? ylabels_width(rows, cell) : 0;
    double xl = labels ? xlabels_height(cols, cell) : 0;
    double rowhead = model ? 62 : 0;      /* "layer N" at the left of each row */
    double panel_title = 20, gapx = model ? 12 : 22, gapy = 10;

    char title[200], note[200], scale_note[200];
    viz_title(c, title, sizeof title);
    viz_axes_note(c, kind, note, sizeof note);
    snprintf(scale_note, sizeof scale_note,
             "each panel coloured from 0 to its own largest weight%s",
             labels ? "" : " \xc2\xb7 token labels: see the heatmaps");
    const char *sub[3] = {note, scale_note, c->caption};
    int nsub = *c->caption ? 3 : 2;
    double top = header_height(c, nsub);
    double x0 = PAD + rowhead + (labels ? 20 + yl : 0), y0 = top + (model ? 18 : 0);
    double pw = gw + gapx;
    double ph = model ? gh + gapy : panel_title + gh + xl + (labels ? 16 : 0) + gapy;
    d->w = x0 + ncol * pw + legend_width();
    double hw = header_width(title, sub, nsub);
    if (hw > d->w)
        d->w = hw;
    double lh = 160;
    double body = nrow * ph + (model ? xl + (labels ? 16 : 0) : 0);
    d->h = y0 + (body > lh + 30 ? body : lh + 30) + PAD;
    doc_begin(d, title);
    header(d, title, sub, nsub);
    vout *o = d->o;
    char prefix[120], at[120];
    for (int k = 0; k < np; k++) {
        int layer = c->chart == AT_VIZ_HEADS ? c->layer : c->chart == AT_VIZ_LAYERS ? k
                                                                                    : k / ncol;
        int head = c->chart == AT_VIZ_HEADS ? k : c->chart == AT_VIZ_LAYERS ? c->head : k % ncol;
        viz_panel p;
        at_status s = viz_panel_get(c, kind, layer, head, &p);
        if (s != AT_OK)
            return s;
        int r = k / ncol, col = k % ncol;
        double gx = x0 + col * pw, gy = y0 + r * ph + (model ? 0 : panel_title);
        if (!model) {
            snprintf(at, sizeof at, "%s %d", c->chart == AT_VIZ_HEADS ? "head" : "layer",
                     (c->chart == AT_VIZ_HEADS ? head : layer) + 1);
            text(o, gx, gy - 6, 12, "start", VIZ_INK, "bold", at);
            snprintf(at, sizeof at, "max %.3f", p.max);
            text(o, gx + gw, gy - 6, 10, "end", VIZ_MUTED, NULL, at);
        } else {
            if (r == 0) {
                snprintf(at, sizeof at, "head %d", head + 1);
                text(o, gx + gw / 2, y0 - 6, 11, "middle", VIZ_INK, "bold", at);
            }
            if (col == 0) {
                snprintf(at, sizeof at, "layer %d", layer + 1);
                text(o, PAD, gy + gh / 2 + 4, 11, "start", VIZ_INK, "bold", at);
            }
        }
        snprintf(prefix, sizeof prefix, "layer %d \xc2\xb7 head %d\n", layer + 1, head + 1);
        cells(d, &p, gx, gy, cell, rects, prefix);
        vo_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                     "stroke=\"#999999\" stroke-width=\"0.5\"/>\n", gx, gy, gw, gh);
        if (labels && col == 0)
            ylabels(o, rows, gx, gy, cell);
        bool last_row = model ? r == nrow - 1 : true;
        if (labels && last_row) {
            xlabels(o, cols, gx, gy + gh, cell);
            snprintf(at, sizeof at, "key \xc2\xb7 %s", viz_cols_name(kind));
            text(o, gx + gw / 2, gy + gh + xl + 14, 10, "middle", VIZ_MUTED, NULL, at);
        }
        if (labels && col == 0 && !model) {
            snprintf(at, sizeof at, "query \xc2\xb7 %s", viz_rows_name(kind));
            vtext(o, PAD + rowhead + 4, gy + gh / 2, 10, "middle", at);
        }
    }
    legend(d, x0 + ncol * pw + 6, y0 + 14, lh, 1, true, "weight");
    doc_end(d);
    return AT_OK;
}

/* ---------------------------------------------------------------- statistics */

static at_status stats(doc *d)
{
    viz_ctx *c = d->c;
    at_attn_kind kinds[3];
    int nk = 0;
    for (int k = 0; k < 3; k++)
        if (viz_kind_ready(c, (at_attn_kind)k))
            kinds[nk++] = (at_attn_kind)k;
    double *st[3] = {NULL, NULL, NULL};
    at_status s = AT_OK;
    for (int k = 0; k < nk && s == AT_OK; k++)
        s = viz_stats(c, kinds[k], &st[k]);
    if (s != AT_OK) {
        for (int k = 0; k < nk; k++)
            free(st[k]);
        return s;
    }
    const int cw = 38, ch = 22;
    double gw = (double)c->heads * cw, gh = (double)c->layers * ch;
    double ylw = 52, pw = ylw + gw + 30, ph = 22 + gh + 34;
    char title[200], note[300];
    viz_title(c, title, sizeof title);
    snprintf(note, sizeof note,
             "means over the valid rows of the whole batch (%d row%s) \xc2\xb7 entropy divided "
             "by ln(valid keys): 0 one key, 1 uniform", c->B, c->B == 1 ? "" : "s");
    const char *sub[2] = {note, c->caption};
    int nsub = *c->caption ? 2 : 1;
    double top = header_height(c, nsub) + 4;
    d->w = PAD + 2 * pw + legend_width();
    double hw = header_width(title, sub, nsub);
    if (hw > d->w)
        d->w = hw;
    d->h = top + nk * ph + PAD;
    if (d->h < top + 200)
        d->h = top + 200;
    doc_begin(d, title);
    header(d, title, sub, nsub);
    vout *o = d->o;
    static const char *const what[2] = {"entropy \xc3\xb7 ln(keys)", "max weight"};
    char buf[300];
    for (int k = 0; k < nk; k++)
        for (int w = 0; w < 2; w++) {
            double px = PAD + w * pw, gx = px + ylw, gy = top + k * ph + 22;
            snprintf(buf, sizeof buf, "%s \xc2\xb7 %s", viz_kind_short(kinds[k]), what[w]);
            text(o, gx, gy - 8, 12, "start", VIZ_INK, "bold", buf);
            for (int l = 0; l < c->layers; l++) {
                snprintf(buf, sizeof buf, "layer %d", l + 1);
                text(o, gx - 6, gy + l * ch + ch / 2 + 4, 10, "end", VIZ_INK, NULL, buf);
                for (int h = 0; h < c->heads; h++) {
                    const double *v = st[k] + ((size_t)l * c->heads + h) * AT_STAT_COUNT;
                    double val = w == 0 ? v[AT_STAT_ENTROPY_NORM] : v[AT_STAT_MAX];
                    char hex[8];
                    viz_color_hex(val, hex);
                    vo_printf(o, "<g class=\"stat\"><title>%s \xc2\xb7 layer %d \xc2\xb7 head %d"
                                 "&#10;entropy %.4f nats (%.4f of ln keys)&#10;max weight %.4f"
                                 "&#10;top-%d mass %.4f&#10;mean distance %.3f&#10;rows %.0f"
                                 "</title>",
                              viz_kind_short(kinds[k]), l + 1, h + 1, v[AT_STAT_ENTROPY],
                              v[AT_STAT_ENTROPY_NORM], v[AT_STAT_MAX], c->topk, v[AT_STAT_TOPK],
                              v[AT_STAT_DISTANCE], v[AT_STAT_ROWS]);
                    vo_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
                                 "fill=\"%s\" stroke=\"#ffffff\"/>", gx + h * cw, gy + l * ch,
                              cw, ch, hex);
                    snprintf(buf, sizeof buf, "%.2f", val);
                    vo_printf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                                 "text-anchor=\"middle\" fill=\"%s\">%s</text></g>\n",
                              gx + (h + 0.5) * cw, gy + l * ch + ch / 2 + 3.5,
                              viz_color_dark(val) ? "#ffffff" : VIZ_INK, buf);
                }
            }
            for (int h = 0; h < c->heads; h++) {
                snprintf(buf, sizeof buf, "%d", h + 1);
                text(o, gx + (h + 0.5) * cw, gy + gh + 12, 10, "middle", VIZ_INK, NULL, buf);
            }
            text(o, gx + gw / 2, gy + gh + 25, 10, "middle", VIZ_MUTED, NULL, "head");
        }
    legend(d, PAD + 2 * pw + 6, top + 36, 150, 1, false, "value");
    doc_end(d);
    for (int k = 0; k < nk; k++)
        free(st[k]);
    return AT_OK;
}

/* ---------------------------------------------------------------- masks */

typedef struct mask_panel {
    const char *title;
    const char *qword, *kword;    /* "query", "key" or "batch", "position" */
    int nq, nk;
    const float *m;          /* element (i, j) at m[i·rs + j·cs]; NULL: subsequent */
    int64_t rs, cs;
    const viz_seq *rows, *cols;
} mask_panel;

static bool mask_on(const mask_panel *p, int i, int j)
{
    return p->m ? p->m[(int64_t)i * p->rs + (int64_t)j * p->cs] != 0.0f : j <= i;
}

/* labels "row 1", … and "#1", … for the padding mask */
static at_status numbered(viz_seq *q, int n, const char *prefix, int mark)
{
    memset(q, 0, sizeof *q);
    q->full = calloc((size_t)n + 1, sizeof *q->full);
    q->shown = calloc((size_t)n + 1, sizeof *q->shown);
    q->em = calloc((size_t)n + 1, sizeof *q->em);
    if (!q->full || !q->shown || !q->em)
        return AT_E_NOMEM;
    q->n = n;
    for (int i = 0; i < n; i++) {
        char b[32];
        snprintf(b, sizeof b, "%s%s%d", i == mark ? "\xe2\x96\xb8 " : "", prefix, i + 1);
        q->full[i] = strdup(b);
        q->shown[i] = strdup(b);
        if (!q->full[i] || !q->shown[i])
            return AT_E_NOMEM;
        q->em[i] = viz_text_em(b);
        if (q->em[i] > q->max_em)
            q->max_em = q->em[i];
    }
    return AT_OK;
}

static void numbered_free(viz_seq *q)
{
    for (int i = 0; i < q->n; i++) {
        free(q->full[i]);
        free(q->shown[i]);
    }
    free(q->full);
    free(q->shown);
    free(q->em);
}

static at_status masks(doc *d)
{
    viz_ctx *c = d->c;
    at_view sm, tm;
    bool have_tgt;
    at_status s = viz_masks(c, &sm, &tm, &have_tgt);
    if (s != AT_OK)
        return s;
    viz_seq brow, bpos;
    memset(&bpos, 0, sizeof bpos);
    /* the charted row is marked ▸ */
    if (numbered(&brow, c->B, "row ", c->B > 1 ? c->row : -1) != AT_OK ||
        numbered(&bpos, c->S_all, "#", -1) != AT_OK) {
        numbered_free(&brow);
        numbered_free(&bpos);
        return set_error(c->m, AT_E_NOMEM, "at_viz_write: out of memory");
    }
    char t1[80], t3[80];
    snprintf(t1, sizeof t1, "subsequent mask (%d \xc3\x97 %d)", c->T_all, c->T_all);
    snprintf(t3, sizeof t3, "target mask of batch row %d", c->row + 1);
    mask_panel mp[3];
    int n = 0;
    if (have_tgt)
        mp[n++] = (mask_panel){t1, "query", "key", c->T_all, c->T_all, NULL, 0, 0, &c->tgt,
                               &c->tgt};
    mp[n++] = (mask_panel){"source padding mask, whole batch", "batch", "source position",
                           c->B, c->S_all, sm.data, sm.stride[0], sm.stride[2], &brow, &bpos};
    if (have_tgt)
        mp[n++] = (mask_panel){t3, "query", "key", c->T_all, c->T_all,
                               tm.data + (int64_t)c->row * tm.stride[0], tm.stride[1],
                               tm.stride[2], &c->tgt, &c->tgt};
    int maxn = 1;
    for (int k = 0; k < n; k++) {
        maxn = mp[k].nq > maxn ? mp[k].nq : maxn;
        maxn = mp[k].nk > maxn ? mp[k].nk : maxn;
    }
    int cell = viz_auto_cell(c, maxn, 240, 3, 22);
    char title[200];
    viz_title(c, title, sizeof title);
    const char *note = have_tgt ? "target mask = no padding AND subsequent; rows are queries, "
                                  "columns keys"
                                : "encoder only: no target mask";
    const char *sub[2] = {note, c->caption};
    int nsub = *c->caption ? 2 : 1;
    double top = header_height(c, nsub) + 16;
    double x = PAD, hmax = 0;
    double px[3];
    for (int k = 0; k < n; k++) {
        double yl = ylabels_width(mp[k].rows, cell), xl = xlabels_height(mp[k].cols, cell);
        px[k] = x + yl + 6;
        double pw = yl + 6 + (double)mp[k].nk * cell;
        double tw = em_px(mp[k].title, 12) + 4;
        x += (pw > tw ? pw : tw) + 28;
        double hh = (double)mp[k].nq * cell + xl;
        hmax = hh > hmax ? hh : hmax;
    }
    d->w = x + 120;
    double hw = header_width(title, sub, nsub);
    if (hw > d->w)
        d->w = hw;
    d->h = top + (hmax > 60 ? hmax : 60) + PAD + 8;
    doc_begin(d, title);
    header(d, title, sub, nsub);
    vout *o = d->o;
    bool rects = true;
    int64_t total = 0;
    for (int k = 0; k < n; k++)
        total += (int64_t)mp[k].nq * mp[k].nk;
    rects = total <= MAX_RECT_CELLS * 2;
    for (int k = 0; k < n; k++) {
        const mask_panel *p = &mp[k];
        double gx = px[k], gy = top;
        text(o, gx, gy - 8, 12, "start", VIZ_INK, "bold", p->title);
        vo_printf(o, "<g class=\"cells\" transform=\"translate(%.1f,%.1f)\" "
                     "shape-rendering=\"crispEdges\">\n", gx, gy);
        for (int i = 0; i < p->nq; i++)
            for (int j = 0; j < p->nk; j++) {
                bool on = mask_on(p, i, j);
                vo_printf(o, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                             "fill=\"%s\"", j * cell, i * cell, cell, cell,
                          on ? VIZ_MASK_ON : VIZ_MASK_OFF);
                if (rects) {
                    vo_puts(o, "><title>");
                    tooltip_pair(o, p->qword, p->rows->full[i], p->kword, p->cols->full[j]);
                    vo_puts(o, on ? "attended (1)" : "masked (0)");
                    vo_puts(o, "</title></rect>\n");
                } else {
                    vo_puts(o, "/>\n");
                }
            }
        vo_puts(o, "</g>\n");
        vo_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\" "
                     "stroke=\"#999999\" stroke-width=\"0.5\"/>\n", gx, gy, p->nk * cell,
                  p->nq * cell);
        ylabels(o, p->rows, gx, gy, cell);
        xlabels(o, p->cols, gx, gy + (double)p->nq * cell, cell);
    }
    legend_masks(d, x, top + 6);
    doc_end(d);
    numbered_free(&brow);
    numbered_free(&bpos);
    return AT_OK;
}

/* ---------------------------------------------------------------- entry */

at_status viz_svg(viz_ctx *c, vout *o, bool in_html)
{
    doc d = {o, c, in_html, 0, 0, 0};
    switch (c->chart) {
    case AT_VIZ_HEATMAP: return heatmap(&d);
    case AT_VIZ_HEADS:
    case AT_VIZ_LAYERS:
    case AT_VIZ_MODEL: return panels(&d);
    case AT_VIZ_STATS: return stats(&d);
    case AT_VIZ_MASKS: return masks(&d);
    default: return set_error(c->m, AT_E_ARG, "at_viz_write: no SVG form of this chart");
    }
}
